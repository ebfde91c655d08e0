/**
 * `TraceDataset.load`: the states of a trace as one `[N, D]` matrix, with
 * each row's example, step address, latent and position.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { basename, dirname } from "node:path";
import { parseAddress, stepIndex, StepSelector } from "../model/address.ts";
import { InputError } from "../errors.ts";
import { sha256File } from "../io/atomic.ts";
import { confined, confinedFile } from "../io/paths.ts";
import { readJsonl } from "../io/jsonl.ts";
import { NpyReader } from "../io/npy.ts";
import type { Latent, OutcomeTrace, RolloutExample } from "../model/rollout.ts";
import { IGNORE_LABEL, MAX_ID_BYTES } from "./inputs.ts";
import {
  formatZodError,
  type ModelManifest,
  schemas,
  type TraceExample,
  type TraceHeader,
  type TraceReadout,
  type TraceStep,
} from "../schema/mod.ts";

/** Per-row metadata, stored column-wise so large traces stay compact. */
export interface TraceMeta {
  /** The trace header. */
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
  /** `example` records, in file order. */
  outcomes: TraceExample[];
  /** `readout` records, in file order. */
  readouts: TraceReadout[];
  /** Where the states came from. */
  source: "states.npy" | "inline";
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

const LATENTS: Latent[] = ["z_H", "z_L"];

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
 * A loaded trace: `states` is `[N, D]` float32, rows in trace order.
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
  /** Path of trace.jsonl. */
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
   * Load a trace from a run dir or a trace.jsonl path into memory. States come
   * from `states.npy` when its sha256 matches the header (read straight into
   * one `[N, D]` array), else from the inline data.
   */
  static async load(
    path: string,
    filter: TraceFilter = {},
  ): Promise<TraceDataset> {
    const scan = await scanTrace(path, filter);
    try {
      const states = scan.npy ? readAllRows(scan) : scan.inline!;
      checkFinite(states, scan);
      return new TraceDataset(
        scan.tracePath,
        states,
        [scan.n, scan.dim],
        scan.meta,
      );
    } finally {
      scan.npy?.[Symbol.dispose]();
    }
  }

  /**
   * Open a trace for streaming: when its states would take more than
   * `maxResidentBytes` (default 256 MiB) and `states.npy` is valid, rows are
   * read from the file on demand, so memory does not grow with the trace;
   * otherwise they are loaded. Call `close()` when done.
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
    if (!scan.npy || bytes <= (opts.maxResidentBytes ?? 256 * 2 ** 20)) {
      const states = scan.npy ? readAllRows(scan) : scan.inline!;
      scan.npy?.[Symbol.dispose]();
      checkFinite(states, scan);
      return new TraceRows(scan, "memory", (ix, out) => {
        for (let i = 0; i < ix.length; i++) {
          out.set(
            states.subarray(ix[i] * scan.dim, (ix[i] + 1) * scan.dim),
            i * scan.dim,
          );
        }
      });
    }
    checkFiniteStreaming(scan);
    const npy = scan.npy, npyRow = scan.npyRow!, D = scan.dim;
    return new TraceRows(scan, "states.npy", (ix, out) => {
      const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
      // Runs of consecutive rows are read in one call.
      for (let i = 0; i < ix.length;) {
        let j = i + 1;
        while (j < ix.length && npyRow[ix[j]] === npyRow[ix[j - 1]] + 1) j++;
        npy.readRowsInto(npyRow[ix[i]], bytes.subarray(i * D * 4, j * D * 4));
        i = j;
      }
    }, () => npy[Symbol.dispose]());
  }
}

/**
 * A trace opened for streaming with {@linkcode TraceDataset.open}: the row
 * metadata, and `rows()` to copy selected rows out.
 */
export class TraceRows {
  /** Path of trace.jsonl. */
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
    source: { tracePath: string; n: number; dim: number; meta: TraceMeta },
    residence: "memory" | "states.npy",
    read: (indices: Int32Array, out: Float32Array) => void,
    close: () => void = () => {},
  ) {
    this.path = source.tracePath;
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

  /** Release the file handle, if any. */
  close(): void {
    this.#close();
  }
}

/** What one pass over trace.jsonl yields. */
interface Scan {
  /** Path of trace.jsonl. */
  tracePath: string;
  /** Kept rows. */
  n: number;
  /** State width. */
  dim: number;
  /** Row metadata. */
  meta: TraceMeta;
  /** The valid states.npy cache, if any. */
  npy: NpyReader | null;
  /** For each kept row, its row in states.npy (with `npy`). */
  npyRow: Int32Array | null;
  /** The kept rows decoded from the inline data (without `npy`). */
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

async function scanTrace(path: string, filter: TraceFilter): Promise<Scan> {
  const { tracePath, dir } = await traceFile(path);
  const selector = filter.steps ? StepSelector.parse(filter.steps) : null;
  const keepLatents = filter.latents ?? LATENTS;

  let header: TraceHeader | null = null;
  let npy: NpyReader | null = null;
  const chunks: Float32Array[] = [];
  let rows = 0;
  const examples: string[] = [], exampleIdx = new Map<string, number>();
  const exampleOf = new GrowableInt32(),
    tOf = new GrowableInt32(),
    latentOf = new GrowableInt32();
  const position = new GrowableInt32(), npyRow = new GrowableInt32();
  const addressOf = new Map<number, string>();
  const outcomes: TraceExample[] = [], readouts: TraceReadout[] = [];
  try {
    for await (const { line, value } of readJsonl(tracePath)) {
      if (!header) {
        header = parseHeader(value, tracePath, line);
        npy = await openCache(dir, header);
        continue;
      }
      const r = schemas.TraceRecord.safeParse(value);
      if (!r.success) {
        throw new InputError(
          `${tracePath}:${line}: ${formatZodError(r.error)}`,
        );
      }
      const rec = r.data;
      checkRecord(rec, header, `${tracePath}:${line}`);
      if (rec.kind === "example") outcomes.push(rec);
      else if (rec.kind === "readout") {
        if (filter.readouts !== false) readouts.push(rec);
      } else {
        addressOf.set(rec.t, rec.address);
        if (!keepLatents.includes(rec.latent)) continue;
        if (selector && !selector.matches(parseAddress(rec.address))) continue;
        if (npy) {
          if (rec.row + rec.rows > npy.rows) {
            throw new InputError(
              `${tracePath}:${line}: rows ${rec.row}..${
                rec.row + rec.rows
              } are past states.npy`,
            );
          }
          for (let k = 0; k < rec.rows; k++) npyRow.push(rec.row + k);
        } else {
          chunks.push(decodeInline(rec, header.state_dim, tracePath, line));
        }
        let ex = exampleIdx.get(rec.example);
        if (ex === undefined) {
          ex = examples.length;
          examples.push(rec.example);
          exampleIdx.set(rec.example, ex);
        }
        const pos = header.record.positions;
        for (let k = 0; k < rec.rows; k++) {
          exampleOf.push(ex);
          tOf.push(rec.t);
          latentOf.push(rec.latent === "z_H" ? 0 : 1);
          position.push(pos[k]);
        }
        rows += rec.rows;
      }
    }
  } catch (e) {
    npy?.[Symbol.dispose]();
    throw e;
  }
  if (!header) throw new InputError(`${tracePath} is empty; re-run trace`);
  const D = header.state_dim;
  let inline: Float32Array | null = null;
  if (!npy) {
    inline = new Float32Array(rows * D);
    let off = 0;
    for (const c of chunks) {
      inline.set(c, off);
      off += c.length;
    }
  }
  return {
    tracePath,
    n: rows,
    dim: D,
    npy,
    npyRow: npy ? npyRow.toArray() : null,
    inline,
    meta: {
      header,
      examples,
      exampleOf: exampleOf.toArray(),
      t: tOf.toArray(),
      latentOf: Uint8Array.from(latentOf.toArray()),
      position: position.toArray(),
      addressOf,
      outcomes,
      readouts,
      source: npy ? "states.npy" : "inline",
    },
  };
}

/** An Int32Array that grows by doubling (plain arrays of millions of numbers cost more). */
class GrowableInt32 {
  #buf = new Int32Array(1024);
  #n = 0;
  push(v: number): void {
    if (this.#n === this.#buf.length) {
      const next = new Int32Array(this.#buf.length * 2);
      next.set(this.#buf);
      this.#buf = next;
    }
    this.#buf[this.#n++] = v;
  }
  toArray(): Int32Array {
    return this.#buf.slice(0, this.#n);
  }
}

/** Read every kept row from states.npy into one `[N, D]` array, in runs. */
function readAllRows(scan: Scan): Float32Array {
  const { npy, npyRow, n, dim } = scan;
  const out = new Float32Array(n * dim);
  const bytes = new Uint8Array(out.buffer);
  for (let i = 0; i < n;) {
    let j = i + 1;
    while (j < n && j - i < 4096 && npyRow![j] === npyRow![j - 1] + 1) j++;
    npy!.readRowsInto(npyRow![i], bytes.subarray(i * dim * 4, j * dim * 4));
    i = j;
  }
  return out;
}

/** NaN/Inf check over streamed rows, in bounded chunks. */
function checkFiniteStreaming(scan: Scan): void {
  const chunk = 4096;
  const buf = new Float32Array(chunk * scan.dim);
  const bytes = new Uint8Array(buf.buffer);
  for (let start = 0; start < scan.n; start += chunk) {
    const m = Math.min(chunk, scan.n - start);
    for (let k = 0; k < m;) {
      let j = k + 1;
      while (
        j < m && scan.npyRow![start + j] === scan.npyRow![start + j - 1] + 1
      ) j++;
      scan.npy!.readRowsInto(
        scan.npyRow![start + k],
        bytes.subarray(k * scan.dim * 4, j * scan.dim * 4),
      );
      k = j;
    }
    checkFinite(buf.subarray(0, m * scan.dim), scan, start);
  }
}

/**
 * trace.jsonl of a run dir, or a path to a `.jsonl`: a regular file, reached
 * through no symbolic link.
 */
async function traceFile(
  path: string,
): Promise<{ tracePath: string; dir: string }> {
  const [dir, name] = path.endsWith(".jsonl")
    ? [dirname(path), basename(path)]
    : [path, "trace.jsonl"];
  const { path: tracePath } = await confinedFile(dir, name, {
    missing: () =>
      `no trace.jsonl in ${dir}; run \`trminterp trace --run-dir ${dir}\` first`,
  });
  return { tracePath, dir };
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
  if (
    npy && (npy.shape[0] !== header.rows || npy.shape[1] !== header.state_dim)
  ) {
    throw bad(
      `states_npy.shape [${npy.shape}] is not [rows, state_dim] = [${header.rows}, ${header.state_dim}]`,
    );
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
    (a.l !== "H" && a.l >= sc.L_cycles) || stepIndex(a, sc) !== rec.t
  ) {
    throw bad(
      `address ${rec.address} (t=${rec.t}) is not a step of the schedule`,
    );
  }
  if (rec.kind === "readout") {
    ids("pred", rec.pred);
    if (a.l !== "H" || rec.sup !== a.sup) {
      throw bad(`a readout follows a z_H update of its own sup`);
    }
    return;
  }
  if ((a.l === "H") !== (rec.latent === "z_H")) {
    throw bad(`${rec.latent} is not the latent of ${rec.address}`);
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

async function openCache(
  dir: string,
  header: TraceHeader,
): Promise<NpyReader | null> {
  if (!header.states_npy) return null;
  const path = await confined(dir, header.states_npy.file);
  try {
    const st = await Deno.lstat(path);
    if (!st.isFile) return null;
    if ((await sha256File(path)) !== header.states_npy.sha256) return null;
    const r = await NpyReader.open(path);
    if (r.dtype !== "float32" || r.shape[1] !== header.state_dim) {
      r[Symbol.dispose]();
      return null;
    }
    return r;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof InputError) {
      return null;
    }
    throw e;
  }
}

function decodeInline(
  rec: TraceStep,
  D: number,
  path: string,
  line: number,
): Float32Array {
  const buf = Buffer.from(rec.data, "base64");
  if (buf.length !== rec.rows * D * 4) {
    throw new InputError(
      `${path}:${line}: step data holds ${buf.length} bytes, expected ${rec.rows}x${D} float32; the trace is corrupt, re-run trace`,
    );
  }
  const out = new Float32Array(rec.rows * D);
  new Uint8Array(out.buffer).set(buf);
  return out;
}

function checkFinite(data: Float32Array, scan: Scan, rowOffset = 0): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      const r = rowOffset + Math.floor(i / scan.dim), m = scan.meta;
      throw new InputError(
        `${scan.tracePath}: the states of ${m.examples[m.exampleOf[r]]} at ${
          m.addressOf.get(m.t[r])
        } (${LATENTS[m.latentOf[r]]}) contain ${
          data[i]
        }; the model diverged or the trace is corrupt`,
      );
    }
  }
}

/**
 * Read and validate only the header line of a trace (a run dir or a
 * trace.jsonl path), without reading its records.
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
  const { tracePath } = await traceFile(path);
  for await (const { line, value } of readJsonl(tracePath)) {
    return parseHeader(value, tracePath, line);
  }
  throw new InputError(`${tracePath} is empty; re-run trace`);
}
