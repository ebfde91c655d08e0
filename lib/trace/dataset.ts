/**
 * `TraceDataset`: the states of a trace, or of every shard of a sharded run,
 * as one `[N, D]` matrix of rows in layout order (v0-spec §3.5: by latent,
 * then step, then example, then position), with each row's example, step
 * address, latent and position.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { InputError } from "../errors.ts";
import type { Latent, OutcomeTrace, RolloutExample } from "../model/rollout.ts";
import type { TraceHeader } from "../schema/mod.ts";
import { LATENT_ORDER } from "./layout.ts";
import {
  firstRows,
  type RowQuery,
  type Scan,
  scanTrace,
  selectRows,
  type TraceFilter,
  type TraceMeta,
} from "./row_index.ts";

export type { RowQuery, TraceFilter, TraceMeta } from "./row_index.ts";
export {
  checkHeaderModel,
  readTraceHeader,
  traceLocation,
  traceRunDir,
} from "./trace_run.ts";

/** One row's metadata, as returned by {@linkcode TraceDataset.row}. */
export interface RowInfo {
  /** Example id. */
  example: string;
  /** Step address text. */
  address: string;
  /** Global step index. */
  t: number;
  /** The latent. */
  latent: Latent;
  /** Position within the example. */
  position: number;
}

const LATENTS = LATENT_ORDER;

/** The traced examples as rollout inputs, in trace order. */
function examplesOf(meta: TraceMeta): RolloutExample[] {
  return meta.outcomes.map((o) => ({
    id: o.example,
    tokens: o.tokens,
    label: o.label,
    puzzleIdentifier: o.puzzle_identifier,
  }));
}

/** The traced outcomes (baseline), from the example and final readout records. */
function outcomesOf(meta: TraceMeta): OutcomeTrace {
  const h = meta.header;
  const perSup = new Map<string, number[][]>();
  for (const r of meta.readouts) {
    if (!r.final) continue;
    const list = perSup.get(r.example) ?? [];
    list[r.sup] = r.pred;
    perSup.set(r.example, list);
  }
  return {
    S: h.model.seq_len,
    V: h.model.vocab_size,
    examples: meta.outcomes.map((o) => ({
      example: o.example,
      label: o.label,
      pred: o.pred,
      predPerSup: perSup.get(o.example) ?? [o.pred],
      haltStep: o.halt_step,
      logits: decodeF32(o.logits),
    })),
  };
}

function decodeF32(b64: string): Float32Array {
  const buf = Buffer.from(b64, "base64");
  const out = new Float32Array(buf.length / 4);
  new Uint8Array(out.buffer).set(buf);
  return out;
}

/**
 * A loaded trace: `states` is `[N, D]` float32, rows in layout order. A run
 * dir with `shards/` is read shard by shard, as one trace.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TraceDataset } from "./dataset.ts";
 * import { runTrace } from "./trace.ts";
 * const demo = new URL("../../references/models/sudoku4-trm", import.meta.url).pathname;
 * const dir = await Deno.makeTempDir();
 * try {
 *   await runTrace({ runDir: dir, model: demo, inputs: `${demo}/test.jsonl`, seed: 0, limit: 2 });
 *   const ds = await TraceDataset.load(dir, { latents: ["z_H"] });
 *   assert.deepEqual(ds.shape, [2 * 16 * 16, 64]); // examples × z_H updates × positions, D
 *   assert.equal(ds.row(0).address, "s0.h0.H");
 *   assert.equal(ds.row(16).example, ds.meta.examples[1]); // by step, then example
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export class TraceDataset {
  /** Row-major `[N, D]` states. */
  readonly states: Float32Array;
  /** `[N, D]`. */
  readonly shape: [number, number];
  /** Row metadata and the trace's other records. */
  readonly meta: TraceMeta;
  /** Path of trace.jsonl, or of the `shards/` folder of a sharded run. */
  readonly path: string;

  private constructor(
    path: string,
    states: Float32Array,
    shape: [number, number],
    meta: TraceMeta,
  ) {
    this.path = path;
    this.states = states;
    this.shape = shape;
    this.meta = meta;
  }

  /** Metadata of row `i`. */
  row(i: number): RowInfo {
    const m = this.meta;
    return {
      example: m.examples[m.exampleOf[i]],
      address: m.addressOf.get(m.t[i])!,
      t: m.t[i],
      latent: LATENTS[m.latentOf[i]],
      position: m.position[i],
    };
  }

  /** The trace header. */
  get header(): TraceHeader {
    return this.meta.header;
  }

  /**
   * Row indices matching a query, in trace order.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { TraceDataset } from "./dataset.ts";
   * import { runTrace } from "./trace.ts";
   * const demo = new URL("../../references/models/sudoku4-trm", import.meta.url).pathname;
   * const dir = await Deno.makeTempDir();
   * try {
   *   await runTrace({ runDir: dir, model: demo, inputs: `${demo}/test.jsonl`, seed: 0, limit: 3 });
   *   const ds = await TraceDataset.load(dir);
   *   const rows = ds.select({ latent: "z_H", steps: "s0.*.H", positions: [0, 5] });
   *   assert.equal(rows.length, 3 * 2 * 2); // examples × H cycles × positions
   *   for (const i of rows) assert.equal(ds.row(i).latent, "z_H");
   *   assert.equal(ds.gather(rows).length, rows.length * 64);
   * } finally {
   *   await Deno.remove(dir, { recursive: true });
   * }
   * ```
   */
  select(q: RowQuery = {}): Int32Array {
    return selectRows(this.meta, this.shape[0], q);
  }

  /** Copy the given rows out as one `[rows.length, D]` array. */
  gather(rows: Int32Array): Float32Array {
    const D = this.shape[1];
    const out = new Float32Array(rows.length * D);
    rows.forEach((r, i) =>
      out.set(this.states.subarray(r * D, (r + 1) * D), i * D)
    );
    return out;
  }

  /**
   * The rows of one example at step `t`, at `positions` (which must have been
   * recorded), or undefined when the trace holds no such step.
   */
  rowsAt(
    example: string,
    t: number,
    positions: readonly number[],
  ): Int32Array | undefined {
    this.#firstRow ??= firstRows(this.meta, this.shape[0]);
    const start = this.#firstRow.get(`${example}|${t}`);
    if (start === undefined) return undefined;
    const recorded = this.meta.header.record.positions;
    const out = new Int32Array(positions.length);
    for (let k = 0; k < positions.length; k++) {
      const j = recorded.indexOf(positions[k]);
      if (j < 0) return undefined;
      out[k] = start + j;
    }
    return out;
  }
  #firstRow?: Map<string, number>;

  /** The traced examples as inputs for {@linkcode rollout}, in trace order. */
  examples(): RolloutExample[] {
    return examplesOf(this.meta);
  }

  /** The traced outcomes, for {@linkcode Evaluator.compare}. */
  outcomes(): OutcomeTrace {
    return outcomesOf(this.meta);
  }

  /**
   * Load a trace from a run dir (every shard of a sharded run) or a
   * trace.jsonl path into memory. A states.npy whose sha256 differs from the
   * one its header pins is refused.
   */
  static async load(
    path: string,
    filter: TraceFilter = {},
  ): Promise<TraceDataset> {
    const scan = await scanTrace(path, filter);
    try {
      const states = scan.inline ?? scan.store!.readAll();
      checkFinite(states, scan);
      return new TraceDataset(scan.path, states, [scan.n, scan.dim], scan.meta);
    } finally {
      scan.store?.close();
    }
  }

  /**
   * Open a trace for streaming: when its states would take more than
   * `maxResidentBytes` (default 256 MiB) and they are in states.npy, rows are
   * read from the files on demand (and checked for NaN/Inf as they are
   * read), so memory does not grow with the trace; otherwise they are
   * loaded. Call `close()` when done.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { TraceDataset } from "./dataset.ts";
   * import { runTrace } from "./trace.ts";
   * const demo = new URL("../../references/models/sudoku4-trm", import.meta.url).pathname;
   * const dir = await Deno.makeTempDir();
   * try {
   *   await runTrace({ runDir: dir, model: demo, inputs: `${demo}/test.jsonl`, seed: 0, limit: 2 });
   *   const all = await TraceDataset.load(dir, { latents: ["z_H"] });
   *   const rows = await TraceDataset.open(dir, { latents: ["z_H"] }, { maxResidentBytes: 0 });
   *   assert.equal(rows.residence, "states.npy");
   *   const out = new Float32Array(2 * rows.dim);
   *   rows.rows(Int32Array.of(0, 7), out);
   *   assert.deepEqual(out, all.gather(Int32Array.of(0, 7)));
   *   rows.close();
   * } finally {
   *   await Deno.remove(dir, { recursive: true });
   * }
   * ```
   */
  static async open(
    path: string,
    filter: TraceFilter = {},
    opts: { maxResidentBytes?: number } = {},
  ): Promise<TraceRows> {
    const scan = await scanTrace(path, filter);
    const bytes = scan.n * scan.dim * 4;
    const D = scan.dim;
    if (!scan.store || bytes <= (opts.maxResidentBytes ?? 256 * 2 ** 20)) {
      let states: Float32Array;
      try {
        states = scan.inline ?? scan.store!.readAll();
      } finally {
        scan.store?.close();
      }
      checkFinite(states, scan);
      return new TraceRows(scan, "memory", (ix, out) => {
        for (let i = 0; i < ix.length; i++) {
          out.set(states.subarray(ix[i] * D, (ix[i] + 1) * D), i * D);
        }
      });
    }
    const store = scan.store;
    return new TraceRows(scan, "states.npy", (ix, out) => {
      store.read(ix, out);
      for (let i = 0; i < out.length; i++) {
        if (!Number.isFinite(out[i])) {
          throw notFinite(scan, ix[Math.floor(i / D)], out[i]);
        }
      }
    }, () => store.close());
  }
}

/**
 * A trace opened for streaming with {@linkcode TraceDataset.open}: the row
 * metadata, and `rows()` to copy selected rows out.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TraceDataset } from "./dataset.ts";
 * import { runTrace } from "./trace.ts";
 * const demo = new URL("../../references/models/sudoku4-trm", import.meta.url).pathname;
 * const dir = await Deno.makeTempDir();
 * try {
 *   await runTrace({ runDir: dir, model: demo, inputs: `${demo}/test.jsonl`, seed: 0, limit: 2, latents: ["z_H"] });
 *   const rows = await TraceDataset.open(dir);
 *   try {
 *     assert.equal(rows.residence, "memory"); // small enough to hold
 *     assert.equal(rows.n, 2 * 16 * 16); // examples × z_H updates × positions
 *     assert.equal(rows.dim, 64);
 *     assert.equal(rows.select({ steps: "s0.h0.H" }).length, 2 * 16);
 *     assert.equal(rows.examples().length, 2);
 *     assert.equal(rows.outcomes().S, 16);
 *     const out = new Float32Array(rows.dim);
 *     rows.rows(Int32Array.of(5), out);
 *     assert.ok(out.some((v) => v !== 0));
 *   } finally {
 *     rows.close();
 *   }
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export class TraceRows {
  /** Path of trace.jsonl, or of the `shards/` folder of a sharded run. */
  readonly path: string;
  /** Number of rows N. */
  readonly n: number;
  /** Row width D. */
  readonly dim: number;
  /** Row metadata and the trace's other records. */
  readonly meta: TraceMeta;
  /** Where rows are read from. */
  readonly residence: "memory" | "states.npy";
  #read: (indices: Int32Array, out: Float32Array) => void;
  #close: () => void;

  /** Used by {@linkcode TraceDataset.open}. */
  constructor(
    source: { path: string; n: number; dim: number; meta: TraceMeta },
    residence: "memory" | "states.npy",
    read: (indices: Int32Array, out: Float32Array) => void,
    close: () => void = () => {},
  ) {
    this.path = source.path;
    this.n = source.n;
    this.dim = source.dim;
    this.meta = source.meta;
    this.residence = residence;
    this.#read = read;
    this.#close = close;
  }

  /** The trace header. */
  get header(): TraceHeader {
    return this.meta.header;
  }

  /** Row indices matching a query, in trace order. */
  select(q: RowQuery = {}): Int32Array {
    return selectRows(this.meta, this.n, q);
  }

  /** The traced examples as inputs for {@linkcode rollout}, in trace order. */
  examples(): RolloutExample[] {
    return examplesOf(this.meta);
  }

  /** The traced outcomes, for {@linkcode Evaluator.compare}. */
  outcomes(): OutcomeTrace {
    return outcomesOf(this.meta);
  }

  /** Copy rows `indices` into `out` (`indices.length × D` floats). */
  rows(indices: Int32Array, out: Float32Array): void {
    this.#read(indices, out);
  }

  /** Release the file handles, if any. */
  close(): void {
    this.#close();
  }
}

function checkFinite(data: Float32Array, scan: Scan): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      throw notFinite(scan, Math.floor(i / scan.dim), data[i]);
    }
  }
}

function notFinite(scan: Scan, r: number, value: number): InputError {
  const m = scan.meta;
  return new InputError(
    `${scan.path}: the states of ${m.examples[m.exampleOf[r]]} at ${
      m.addressOf.get(m.t[r])
    } (${
      LATENTS[m.latentOf[r]]
    }) contain ${value}; the model diverged or the trace is corrupt`,
  );
}
