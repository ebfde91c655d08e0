/**
 * `TraceDataset`: the states of a trace, or of every shard of a sharded run,
 * as one `[N, D]` matrix of rows in layout order (v0-spec §3.5: by latent,
 * then step, then example, then position), with each row's example, step
 * address, latent and position.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { basename, dirname, join } from "node:path";
import { parseAddress, stepIndex, StepSelector } from "../model/address.ts";
import { InputError } from "../errors.ts";
import { sha256File } from "../io/atomic.ts";
import { readJsonl } from "../io/jsonl.ts";
import { pathExists } from "../io/run_dir.ts";
import { NpyReader } from "../io/npy.ts";
import { checkRegular, confined, confinedFile } from "../io/paths.ts";
import { IGNORE_LABEL, MAX_ID_BYTES } from "./inputs.ts";
import type { Latent, OutcomeTrace, RolloutExample } from "../model/rollout.ts";
import {
  formatZodError,
  type ModelManifest,
  schemas,
  type TraceExample,
  type TraceHeader,
  type TraceReadout,
  type TraceStep,
} from "../schema/mod.ts";
import {
  LATENT_ORDER,
  shardName,
  shardSlice,
  TraceDigest,
  traceSettings,
} from "./layout.ts";

/** Per-row metadata, stored column-wise so large traces stay compact. */
export interface TraceMeta {
  /**
   * The trace header; for a sharded run, the shards' common header with
   * `shard` null, `rows` and `blocks` over all shards and `states_npy` null.
   */
  header: TraceHeader;
  /** Example ids; `exampleOf[i]` indexes into this. */
  examples: string[];
  /** For each row, the index into `examples`. */
  exampleOf: Int32Array;
  /** For each row, the global step index `t`. */
  t: Int32Array;
  /** For each row, 0 for z_H and 1 for z_L. */
  latentOf: Uint8Array;
  /** For each row, the position within the example (prefix first). */
  position: Int32Array;
  /** Step address text by `t`. */
  addressOf: Map<number, string>;
  /** `example` records, in trace order. */
  outcomes: TraceExample[];
  /** `readout` records, in file order. */
  readouts: TraceReadout[];
  /** Where the states came from. */
  source: "states.npy" | "inline";
  /** The trace digest (v0-spec §3.6): the same for any folder, shard count and storage. */
  digest: string;
  /** The run dir, which the header's paths are relative to. */
  runDir: string;
  /** The trace.jsonl files read: one, or one per shard in shard order. */
  files: string[];
}

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

/** Filters for {@linkcode TraceDataset.load}. */
export interface TraceFilter {
  /** Keep only these latents. */
  latents?: Latent[];
  /** Keep only steps matching this selector. */
  steps?: string;
  /** Keep the readout records in `meta.readouts` (default true). */
  readouts?: boolean;
}

const LATENTS = LATENT_ORDER;

/** A query over a trace's rows, for {@linkcode TraceDataset.select}. */
export interface RowQuery {
  /** Only this latent. */
  latent?: Latent;
  /** Only steps matching this selector (text or parsed). */
  steps?: string | StepSelector;
  /** Only these positions (prefix first). */
  positions?: readonly number[];
  /** Only these example ids. */
  examples?: Iterable<string>;
}

/** Row indices of `meta` matching `q`, in trace order. */
function selectRows(meta: TraceMeta, n: number, q: RowQuery): Int32Array {
  const sel = typeof q.steps === "string"
    ? StepSelector.parse(q.steps)
    : q.steps;
  const okT = new Set<number>();
  for (const [t, text] of meta.addressOf) {
    if (!sel || sel.matches(parseAddress(text))) okT.add(t);
  }
  const pos = q.positions ? new Set(q.positions) : null;
  let okEx: Uint8Array | null = null;
  if (q.examples) {
    okEx = new Uint8Array(meta.examples.length);
    const want = new Set(q.examples);
    meta.examples.forEach((id, i) => okEx![i] = want.has(id) ? 1 : 0);
  }
  const lat = q.latent === undefined ? -1 : LATENTS.indexOf(q.latent);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    if (lat >= 0 && meta.latentOf[i] !== lat) continue;
    if (!okT.has(meta.t[i])) continue;
    if (pos && !pos.has(meta.position[i])) continue;
    if (okEx && !okEx[meta.exampleOf[i]]) continue;
    out.push(i);
  }
  return Int32Array.from(out);
}

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

/** One trace.jsonl of a run: the only one, or one shard's. */
interface TracePart {
  /** Its folder. */
  dir: string;
  /** Its trace.jsonl. */
  tracePath: string;
  /** Its header. */
  header: TraceHeader;
}

/** A run's trace files, checked to form one trace. */
interface TraceRun {
  /** The run dir (header paths are relative to it). */
  runDir: string;
  /** trace.jsonl, or the shards/ folder. */
  path: string;
  /** The parts, in shard order. */
  parts: TracePart[];
  /** The run's header (see {@linkcode TraceMeta.header}). */
  header: TraceHeader;
}

const SHARD_DIR = /^(\d+)-of-(\d+)$/;

/**
 * The trace files of a run dir or a trace.jsonl path: the run's trace.jsonl,
 * or every shard's. Refuses a run with missing or unfinished shards, shards
 * of different counts, or both kinds.
 */
async function runFiles(
  path: string,
): Promise<
  { runDir: string; path: string; files: string[]; sharded: boolean }
> {
  // Every file is reached through no symbolic link (see confined).
  const noTrace = (dir: string) => () =>
    `no trace.jsonl in ${dir}; run \`trminterp trace --run-dir ${dir}\` first`;
  if (path.endsWith(".jsonl")) {
    const dir = dirname(path);
    const file = await confinedFile(dir, basename(path), {
      missing: noTrace(dir),
    });
    return { runDir: dir, path: file.path, files: [file.path], sharded: false };
  }
  const single = await confined(path, "trace.jsonl");
  const shardsDir = await confined(path, "shards");
  const hasSingle = await pathExists(single);
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(shardsDir)) {
      if (SHARD_DIR.test(e.name)) names.push(e.name);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (hasSingle && names.length) {
    throw new InputError(
      `run dir ${path} holds both trace.jsonl and shards/; move one of them to another run dir`,
    );
  }
  if (hasSingle) {
    const file = await confinedFile(path, "trace.jsonl");
    return {
      runDir: path,
      path: file.path,
      files: [file.path],
      sharded: false,
    };
  }
  if (!names.length) {
    throw new InputError(
      `no trace.jsonl in ${path}; run \`trminterp trace --run-dir ${path}\` first`,
    );
  }
  const counts = [...new Set(names.map((n) => SHARD_DIR.exec(n)![2]))];
  if (counts.length > 1) {
    throw new InputError(
      `run dir ${path} holds shards of different counts (${
        counts.map((c) => `of-${c}`).join(", ")
      }); a run's shards share one count: remove the stray shards/ folders`,
    );
  }
  const n = Number(counts[0]);
  const files: string[] = [], missing: number[] = [];
  for (let i = 0; i < n; i++) {
    const file = await confined(
      path,
      `shards/${shardName(i, n)}/trace.jsonl`,
    );
    if (await pathExists(file)) {
      files.push(
        (await confinedFile(path, `shards/${shardName(i, n)}/trace.jsonl`))
          .path,
      );
    } else missing.push(i);
  }
  if (missing.length) {
    throw new InputError(
      `run dir ${path} lacks ${missing.length} of its ${n} shards (${
        missing.map((i) => shardName(i, n)).join(", ")
      } have no trace.jsonl); run \`trminterp trace --run-dir ${path} --shard ${
        missing[0]
      }/${n}\` for each`,
    );
  }
  return { runDir: path, path: shardsDir, files, sharded: true };
}

/** Read and check the headers of a run's trace files, and merge them. */
async function openRun(path: string): Promise<TraceRun> {
  const found = await runFiles(path);
  const parts: TracePart[] = [];
  for (const tracePath of found.files) {
    parts.push({
      dir: dirname(tracePath),
      tracePath,
      header: await readHeaderLine(tracePath),
    });
  }
  let runDir = found.runDir;
  const h0 = parts[0].header;
  if (!found.sharded) {
    // A shard's trace.jsonl opened by path: its paths are relative to the run dir.
    if (h0.shard) runDir = join(dirname(found.files[0]), "..", "..");
    return { runDir, path: found.path, parts, header: h0 };
  }
  const n = parts.length;
  const want = JSON.stringify({ ...traceSettings(h0), states: h0.states });
  for (let i = 0; i < n; i++) {
    const h = parts[i].header;
    const name = shardName(i, n);
    if (!h.shard || h.shard.index !== i || h.shard.count !== n) {
      throw new InputError(
        `${
          parts[i].tracePath
        }: its header is not shard ${name}; re-run \`trminterp trace --shard ${i}/${n}\``,
      );
    }
    const got = JSON.stringify({ ...traceSettings(h), states: h.states });
    if (got !== want) {
      throw new InputError(
        `shard ${name} was traced with different settings than ${
          shardName(0, n)
        } (${
          firstDifference(
            { ...traceSettings(h0), states: h0.states },
            { ...traceSettings(h), states: h.states },
          )
        }); re-trace it with the same flags`,
      );
    }
    if (
      h.blocks.length !== h0.blocks.length ||
      h.blocks.some((b, k) => b.address !== h0.blocks[k].address)
    ) {
      throw new InputError(
        `${parts[i].tracePath}: its blocks are not those of ${
          shardName(0, n)
        }; the trace is corrupt, re-run \`trminterp trace --shard ${i}/${n}\``,
      );
    }
    const slice = shardSlice(i, n, h0.inputs.selected);
    if (h.shard.first !== slice.first || h.shard.examples !== slice.examples) {
      throw new InputError(
        `${
          parts[i].tracePath
        }: shard ${name} holds examples ${h.shard.first}..${
          h.shard.first + h.shard.examples
        }, not ${slice.first}..${
          slice.first + slice.examples
        } of ${h0.inputs.selected}; re-run \`trminterp trace --shard ${i}/${n}\``,
      );
    }
  }
  let row = 0;
  const blocks = h0.blocks.map((b, k) => {
    const rows = parts.reduce((a, p) => a + p.header.blocks[k].rows, 0);
    const out = { ...b, row, rows };
    row += rows;
    return out;
  });
  return {
    runDir,
    path: found.path,
    parts,
    header: { ...h0, shard: null, rows: row, blocks, states_npy: null },
  };
}

/** The first key path where two JSON values differ, as text. */
function firstDifference(a: unknown, b: unknown, at = ""): string {
  if (JSON.stringify(a) === JSON.stringify(b)) return "";
  if (
    a && b && typeof a === "object" && typeof b === "object" &&
    !Array.isArray(a) && !Array.isArray(b)
  ) {
    const ao = a as Record<string, unknown>, bo = b as Record<string, unknown>;
    for (const k of new Set([...Object.keys(ao), ...Object.keys(bo)])) {
      const d = firstDifference(ao[k], bo[k], at ? `${at}.${k}` : k);
      if (d) return d;
    }
  }
  return `${at || "(root)"}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`;
}

async function readHeaderLine(tracePath: string): Promise<TraceHeader> {
  for await (const { line, value } of readJsonl(tracePath)) {
    return parseHeader(value, tracePath, line);
  }
  throw new InputError(`${tracePath} is empty; re-run trace`);
}

function parseHeader(
  value: unknown,
  tracePath: string,
  line: number,
): TraceHeader {
  const h = schemas.TraceHeader.safeParse(value);
  if (!h.success) {
    throw new InputError(
      `${tracePath}:${line}: not a trace header (${
        formatZodError(h.error)
      }); re-run trace`,
    );
  }
  const header = h.data;
  const bad = (what: string) =>
    new InputError(
      `${tracePath}:${line}: the header's ${what}; the trace was edited or is corrupt: re-run trace`,
    );
  const T = header.model.puzzle_emb_len + header.model.seq_len;
  const pos = header.record.positions;
  for (let i = 0; i < pos.length; i++) {
    if (pos[i] >= T || (i > 0 && pos[i] <= pos[i - 1])) {
      throw bad(
        `record.positions must rise strictly within 0..${T - 1} (P+S), got ${
          pos[i]
        } at index ${i}`,
      );
    }
  }
  if (new Set(header.record.latents).size !== header.record.latents.length) {
    throw bad("record.latents repeats a latent");
  }
  const npy = header.states_npy;
  if ((npy !== null) !== (header.states === "npy")) {
    throw bad(
      `states_npy is ${npy ? "set" : "null"} with states "${header.states}"`,
    );
  }
  if (
    npy && (npy.shape[0] !== header.rows || npy.shape[1] !== header.state_dim)
  ) {
    throw bad(
      `states_npy.shape [${npy.shape}] is not [rows, state_dim] = [${header.rows}, ${header.state_dim}]`,
    );
  }
  const sc = header.model.schedule;
  for (const b of header.blocks) {
    const a = parseAddress(b.address);
    if (
      a.sup >= sc.halt_max_steps || a.h >= sc.H_cycles ||
      (a.l !== "H" && a.l >= sc.L_cycles) ||
      (a.l === "H") !== (b.latent === "z_H") || b.rows % pos.length !== 0
    ) {
      throw bad(
        `block ${b.address} (${b.latent}, ${b.rows} rows) is not a step of the schedule with whole examples`,
      );
    }
  }
  return header;
}

/**
 * Check a record against the header: shapes, token ids and step addresses
 * that a reader would otherwise use out of range (a short label changing
 * a score, a position editing the neighbouring example).
 */
function checkRecord(
  rec: TraceStep | TraceReadout | TraceExample,
  h: TraceHeader,
  where: string,
): void {
  const m = h.model, S = m.seq_len, V = m.vocab_size;
  const bad = (what: string) =>
    new InputError(
      `${where}: ${rec.kind} record of "${
        rec.example.slice(0, 64)
      }": ${what}; the trace was edited or is corrupt: re-run trace`,
    );
  // A UTF-16 unit takes at most 3 UTF-8 bytes: most ids need no encoding.
  if (
    rec.example.length * 3 > MAX_ID_BYTES &&
    new TextEncoder().encode(rec.example).length > MAX_ID_BYTES
  ) {
    throw bad(`the example id is longer than ${MAX_ID_BYTES} bytes`);
  }
  const ids = (name: string, a: readonly number[], label = false) => {
    if (a.length !== S) throw bad(`${name} has ${a.length} entries, S is ${S}`);
    for (const v of a) {
      if (!((v >= 0 && v < V) || (label && v === IGNORE_LABEL))) {
        throw bad(`${name} holds ${v}, outside the vocabulary 0..${V - 1}`);
      }
    }
  };
  if (rec.kind === "example") {
    ids("tokens", rec.tokens);
    ids("label", rec.label, true);
    ids("pred", rec.pred);
    if (rec.halt_step >= m.schedule.halt_max_steps) {
      throw bad(`halt_step ${rec.halt_step} is past halt_max_steps`);
    }
    const n = Buffer.byteLength(rec.logits, "base64");
    if (n !== S * V * 4) {
      throw bad(`logits hold ${n} bytes, expected S×V float32 = ${S * V * 4}`);
    }
    return;
  }
  const a = parseAddress(rec.address), sc = m.schedule;
  if (
    a.sup >= sc.halt_max_steps || a.h >= sc.H_cycles ||
    (a.l !== "H" && a.l >= sc.L_cycles)
  ) {
    throw bad(`address ${rec.address} is not a step of the schedule`);
  }
  if (rec.kind === "readout") {
    ids("pred", rec.pred);
    if (a.l !== "H" || rec.sup !== a.sup) {
      throw bad(`a readout follows a z_H update of its own sup`);
    }
    return;
  }
  if (rec.rows !== h.record.positions.length) {
    throw bad(
      `${rec.rows} rows, but the header records ${h.record.positions.length} positions`,
    );
  }
}

/**
 * Check that a trace header's model fields equal a bundle's manifest: a
 * header edited after the trace (a longer schedule, another vocabulary)
 * would make readers walk steps and positions the model does not have.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkHeaderModel, readTraceHeader } from "./dataset.ts";
 * import { readManifest } from "../model/bundle.ts";
 * import { runTrace } from "./trace.ts";
 * const demo = new URL("../../references/models/sudoku4-trm", import.meta.url).pathname;
 * const dir = await Deno.makeTempDir();
 * try {
 *   await runTrace({ runDir: dir, model: demo, inputs: `${demo}/test.jsonl`, seed: 0, limit: 1, latents: ["z_H"] });
 *   const h = await readTraceHeader(dir);
 *   const { manifest } = await readManifest(demo);
 *   checkHeaderModel(h, manifest, "trace.jsonl");
 *   h.model.schedule.halt_max_steps = 1000;
 *   assert.throws(() => checkHeaderModel(h, manifest, "trace.jsonl"), /schedule/);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export function checkHeaderModel(
  header: TraceHeader,
  m: ModelManifest,
  where: string,
): void {
  const h = header.model;
  const pairs: [string, unknown, unknown][] = [
    ["name", h.name, m.name],
    ["family", h.family, m.family],
    ["dtype", h.dtype, m.dtype],
    ["seq_len", h.seq_len, m.seq_len],
    ["puzzle_emb_len", h.puzzle_emb_len, m.puzzle_emb_len],
    ["vocab_size", h.vocab_size, m.vocab_size],
    ["state_dim", header.state_dim, m.hidden_size],
    ...(["H_cycles", "L_cycles", "halt_max_steps", "halt_mode"] as const).map((
      k,
    ): [string, unknown, unknown] => [
      `schedule.${k}`,
      h.schedule[k],
      m.schedule[k],
    ]),
  ];
  for (const [key, a, b] of pairs) {
    if (a !== b) {
      throw new InputError(
        `${where}: the header's model ${key} is ${
          JSON.stringify(a)
        }, but the bundle's model.json says ${
          JSON.stringify(b)
        }; the trace was edited or comes from another model: re-run trace`,
      );
    }
  }
}

/** Reads rows from the states.npy files of a run's parts. */
class StateStore {
  #readers: NpyReader[];
  #partOf: Uint16Array;
  #npyRow: Int32Array;
  #dim: number;
  #half: boolean;

  constructor(
    readers: NpyReader[],
    partOf: Uint16Array,
    npyRow: Int32Array,
    dim: number,
    half: boolean,
  ) {
    this.#readers = readers;
    this.#partOf = partOf;
    this.#npyRow = npyRow;
    this.#dim = dim;
    this.#half = half;
  }

  /** Copy rows `ix` into `out`, reading runs of consecutive rows at once. */
  read(ix: ArrayLike<number>, out: Float32Array): void {
    const D = this.#dim, part = this.#partOf, row = this.#npyRow;
    for (let i = 0; i < ix.length;) {
      let j = i + 1;
      while (
        j < ix.length && j - i < 4096 && part[ix[j]] === part[ix[i]] &&
        row[ix[j]] === row[ix[j - 1]] + 1
      ) j++;
      const dest = out.subarray(i * D, j * D);
      const reader = this.#readers[part[ix[i]]];
      if (this.#half) {
        const half = new Float16Array(dest.length);
        reader.readRowsInto(row[ix[i]], new Uint8Array(half.buffer));
        dest.set(half);
      } else {
        reader.readRowsInto(
          row[ix[i]],
          new Uint8Array(dest.buffer, dest.byteOffset, dest.byteLength),
        );
      }
      i = j;
    }
  }

  /** Every row, in order. */
  readAll(): Float32Array {
    const n = this.#npyRow.length;
    const out = new Float32Array(n * this.#dim);
    const chunk = 4096;
    const ix = new Int32Array(chunk);
    for (let s = 0; s < n; s += chunk) {
      const m = Math.min(chunk, n - s);
      for (let k = 0; k < m; k++) ix[k] = s + k;
      this.read(ix.subarray(0, m), out.subarray(s * this.#dim));
    }
    return out;
  }

  close(): void {
    for (const r of this.#readers) r[Symbol.dispose]();
  }
}

/** What one pass over a run's trace files yields. */
interface Scan {
  /** trace.jsonl, or the shards/ folder. */
  path: string;
  /** Kept rows. */
  n: number;
  /** State width. */
  dim: number;
  /** Row metadata. */
  meta: TraceMeta;
  /** The states.npy files, when the states are there. */
  store: StateStore | null;
  /** The kept rows decoded from the inline data, otherwise. */
  inline: Float32Array | null;
}

/** For each (example, t), the first row of that step record. */
function firstRows(meta: TraceMeta, n: number): Map<string, number> {
  const start = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const key = `${meta.examples[meta.exampleOf[i]]}|${meta.t[i]}`;
    if (!start.has(key)) start.set(key, i);
  }
  return start;
}

/**
 * The kept blocks of a (possibly sharded) run and where each part's rows of
 * each block land among the kept rows, parts in order within a block.
 */
function blockLayout(run: TraceRun, filter: TraceFilter) {
  const header = run.header;
  const sched = header.model.schedule;
  const selector = filter.steps ? StepSelector.parse(filter.steps) : null;
  const keepLatents = filter.latents ?? LATENTS;
  const blockIdx = new Map<string, number>();
  const addressOf = new Map<number, string>();
  const tOf: number[] = [];
  header.blocks.forEach((b, k) => {
    blockIdx.set(b.address, k);
    const t = stepIndex(parseAddress(b.address), sched);
    tOf.push(t);
    addressOf.set(t, b.address);
  });
  const kept = header.blocks.map((b) =>
    keepLatents.includes(b.latent) &&
    (!selector || selector.matches(parseAddress(b.address)))
  );
  const landAt: number[][] = run.parts.map(() => []);
  let n = 0;
  header.blocks.forEach((_, k) => {
    for (let p = 0; p < run.parts.length; p++) {
      landAt[p][k] = n;
      if (kept[k]) n += run.parts[p].header.blocks[k].rows;
    }
  });
  return { blockIdx, addressOf, tOf, kept, landAt, n };
}

/**
 * Check each part's blocks and open its states.npy. Every row is in
 * states.npy (checked against the header) or in the file as base64, so a
 * header cannot make us allocate more than the files hold.
 */
async function openParts(run: TraceRun): Promise<NpyReader[]> {
  const header = run.header;
  const bytes = header.state_dim * (header.dtype === "float16" ? 2 : 4);
  const readers: NpyReader[] = [];
  try {
    for (const part of run.parts) {
      checkBlocks(part);
      if (header.states === "npy") readers.push(await openStates(part));
      else {
        const size = (await Deno.stat(part.tracePath)).size;
        if (part.header.rows * bytes > size) {
          throw new InputError(
            `${part.tracePath}: the header claims ${part.header.rows} rows, more than the file holds; the trace is corrupt, re-run trace`,
          );
        }
      }
    }
  } catch (e) {
    readers.forEach((r) => r[Symbol.dispose]());
    throw e;
  }
  return readers;
}

async function scanTrace(path: string, filter: TraceFilter): Promise<Scan> {
  const run = await openRun(path);
  const header = run.header;
  const D = header.state_dim;
  const positions = header.record.positions;
  const npos = positions.length;
  const P = run.parts.length;
  const { blockIdx, addressOf, tOf, kept, landAt, n } = blockLayout(
    run,
    filter,
  );
  const half = header.dtype === "float16";
  const readers = await openParts(run);
  const closeAll = () => readers.forEach((r) => r[Symbol.dispose]());
  const inline = header.states === "inline" ? new Float32Array(n * D) : null;
  const exampleOf = new Int32Array(n),
    t = new Int32Array(n),
    latentOf = new Uint8Array(n),
    position = new Int32Array(n),
    filled = new Uint8Array(n);
  const partOf = new Uint16Array(inline ? 0 : n),
    npyRow = new Int32Array(inline ? 0 : n);
  const examples: string[] = [], exampleIdx = new Map<string, number>();
  const outcomes: TraceExample[] = [], readouts: TraceReadout[] = [];
  const digest = new TraceDigest(traceSettings(header));
  try {
    for (let p = 0; p < P; p++) {
      const part = run.parts[p];
      let first = true;
      for await (const { line, value } of readJsonl(part.tracePath)) {
        if (first) {
          first = false;
          continue;
        }
        const r = schemas.TraceRecord.safeParse(value);
        if (!r.success) {
          throw new InputError(
            `${part.tracePath}:${line}: ${formatZodError(r.error)}`,
          );
        }
        const rec = r.data;
        checkRecord(rec, part.header, `${part.tracePath}:${line}`);
        if (rec.kind === "example") {
          outcomes.push(rec);
          digest.add(rec);
          continue;
        }
        if (rec.kind === "readout") {
          if (filter.readouts !== false) readouts.push(rec);
          continue;
        }
        const k = blockIdx.get(rec.address);
        const where = `${part.tracePath}:${line}`;
        if (k === undefined) {
          throw new InputError(
            `${where}: step ${rec.address} is not among the header's blocks; the trace is corrupt, re-run trace`,
          );
        }
        if (!kept[k]) continue;
        const block = part.header.blocks[k];
        const local = rec.row - block.row;
        if (rec.rows !== npos || local < 0 || local + npos > block.rows) {
          throw new InputError(
            `${where}: rows ${rec.row}..${
              rec.row + rec.rows
            } lie outside block ${rec.address} (rows ${block.row}..${
              block.row + block.rows
            }); the trace is corrupt, re-run trace`,
          );
        }
        let ex = exampleIdx.get(rec.example);
        if (ex === undefined) {
          ex = examples.length;
          examples.push(rec.example);
          exampleIdx.set(rec.example, ex);
        }
        const at = landAt[p][k] + local;
        for (let j = 0; j < npos; j++) {
          if (filled[at + j]) {
            throw new InputError(
              `${where}: row ${
                rec.row + j
              } belongs to two step records; the trace is corrupt, re-run trace`,
            );
          }
          filled[at + j] = 1;
          exampleOf[at + j] = ex;
          t[at + j] = tOf[k];
          latentOf[at + j] = block.latent === "z_H" ? 0 : 1;
          position[at + j] = positions[j];
          if (!inline) {
            partOf[at + j] = p;
            npyRow[at + j] = rec.row + j;
          }
        }
        if (inline) decodeInline(rec.data, inline, at, npos, D, half, where);
      }
    }
  } catch (e) {
    closeAll();
    throw e;
  }
  const unfilled = filled.indexOf(0);
  if (unfilled >= 0) {
    closeAll();
    throw new InputError(
      `${run.path}: state row ${unfilled} of the kept rows has no step record; the trace is corrupt, re-run trace`,
    );
  }
  return {
    path: run.path,
    n,
    dim: D,
    store: inline ? null : new StateStore(readers, partOf, npyRow, D, half),
    inline,
    meta: {
      header,
      examples,
      exampleOf,
      t,
      latentOf,
      position,
      addressOf,
      outcomes,
      readouts,
      source: inline ? "inline" : "states.npy",
      digest: digest.hex(),
      runDir: run.runDir,
      files: run.parts.map((p) => p.tracePath),
    },
  };
}

/** The header's blocks must tile its rows in order. */
function checkBlocks(part: TracePart): void {
  let row = 0;
  for (const b of part.header.blocks) {
    if (b.row !== row) {
      throw new InputError(
        `${part.tracePath}: header block ${b.address} starts at row ${b.row}, not ${row}; the trace is corrupt, re-run trace`,
      );
    }
    row += b.rows;
  }
  if (row !== part.header.rows) {
    throw new InputError(
      `${part.tracePath}: the header's blocks hold ${row} rows, not ${part.header.rows}; the trace is corrupt, re-run trace`,
    );
  }
}

/** Open a part's states.npy after checking it is the file its header pins. */
async function openStates(part: TracePart): Promise<NpyReader> {
  const h = part.header;
  const path = await confined(part.dir, "states.npy");
  const rerun = h.shard
    ? `\`trminterp trace --shard ${h.shard.index}/${h.shard.count}\``
    : "trace";
  if (!h.states_npy) {
    throw new InputError(
      `${part.tracePath}: the header says the states are in states.npy but pins none; the trace is corrupt, re-run ${rerun}`,
    );
  }
  let sha: string;
  try {
    checkRegular(path, await Deno.lstat(path));
    sha = await sha256File(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new InputError(
        `no states.npy next to ${part.tracePath}, which keeps its states there; re-run ${rerun}`,
      );
    }
    throw e;
  }
  if (sha !== h.states_npy.sha256) {
    throw new InputError(
      `${path} is not the states.npy its trace.jsonl pins (sha256 ${
        sha.slice(0, 12)
      }…, header ${
        h.states_npy.sha256.slice(0, 12)
      }…): it was changed or replaced; re-run ${rerun}`,
    );
  }
  const r = await NpyReader.open(path);
  if (
    r.dtype !== h.dtype || r.shape.length !== 2 || r.shape[0] !== h.rows ||
    r.shape[1] !== h.state_dim
  ) {
    r[Symbol.dispose]();
    throw new InputError(
      `${path} holds ${r.dtype} [${r.shape}], not ${h.dtype} [${h.rows}, ${h.state_dim}] as its header says; re-run ${rerun}`,
    );
  }
  return r;
}

function decodeInline(
  data: string | undefined,
  out: Float32Array,
  row: number,
  rows: number,
  D: number,
  half: boolean,
  where: string,
): void {
  const buf = Buffer.from(data ?? "", "base64");
  const size = half ? 2 : 4;
  if (buf.length !== rows * D * size) {
    throw new InputError(
      `${where}: step data holds ${buf.length} bytes, expected ${rows}x${D} ${
        half ? "float16" : "float32"
      }; the trace is corrupt, re-run trace`,
    );
  }
  const bytes = new Uint8Array(buf.length);
  bytes.set(buf);
  out.set(
    half ? new Float16Array(bytes.buffer) : new Float32Array(bytes.buffer),
    row * D,
  );
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

/**
 * Read and check only the header line of a trace (a run dir or a trace.jsonl
 * path), without reading its records. For a sharded run, every shard's
 * header is read and checked, and the run's header is returned (see
 * {@linkcode TraceMeta.header}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readTraceHeader } from "./dataset.ts";
 * import { runTrace } from "./trace.ts";
 * const demo = new URL("../../references/models/sudoku4-trm", import.meta.url).pathname;
 * const dir = await Deno.makeTempDir();
 * try {
 *   await runTrace({ runDir: dir, model: demo, inputs: `${demo}/test.jsonl`, seed: 0, limit: 1, latents: ["z_H"] });
 *   const h = await readTraceHeader(dir);
 *   assert.equal(h.model.name, "sudoku4-trm");
 *   assert.deepEqual(h.record.latents, ["z_H"]);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function readTraceHeader(path: string): Promise<TraceHeader> {
  return (await openRun(path)).header;
}

/**
 * Where a run's trace is, for messages: its trace.jsonl, or the `shards/`
 * folder of a sharded run (whose shards are checked to form one trace).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { traceLocation } from "./dataset.ts";
 * import { runTrace } from "./trace.ts";
 * const demo = new URL("../../references/models/sudoku4-trm", import.meta.url).pathname;
 * const dir = await Deno.makeTempDir();
 * try {
 *   await runTrace({ runDir: dir, model: demo, inputs: `${demo}/test.jsonl`, seed: 0, limit: 2, shard: { index: 1, count: 2 } });
 *   await assert.rejects(traceLocation(dir), /lacks 1 of its 2 shards/);
 *   await runTrace({ runDir: dir, model: demo, inputs: `${demo}/test.jsonl`, seed: 0, limit: 2, shard: { index: 0, count: 2 } });
 *   assert.equal(await traceLocation(dir), `${dir}/shards`);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function traceLocation(path: string): Promise<string> {
  return (await openRun(path)).path;
}

/**
 * The run dir a trace's header paths are relative to: `path` itself for a
 * run dir, the folder of a trace.jsonl, or the run dir of a shard's
 * trace.jsonl.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { traceRunDir } from "./dataset.ts";
 * assert.equal(await traceRunDir("runs/a"), "runs/a");
 * ```
 */
export async function traceRunDir(path: string): Promise<string> {
  if (!path.endsWith(".jsonl")) return path;
  return (await openRun(path)).runDir;
}
