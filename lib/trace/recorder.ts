/**
 * The hook that records a rollout into trace.jsonl (and states.npy): step
 * records for the selected latents, steps and positions, a readout after
 * every z_H update, and one example record per example.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { join } from "node:path";
import {
  formatAddress,
  type ScheduleShape,
  type StepSelector,
} from "../model/address.ts";
import {
  argmaxRows,
  type BatchEndEvent,
  type BatchInfo,
  type FloatArray,
  type Hook,
  type Latent,
  type ReadoutEvent,
  type StepEvent,
} from "../model/rollout.ts";
import { InputError, OptionError } from "../errors.ts";
import { AtomicWriter, OutputSet, Sha256 } from "../io/atomic.ts";
import { NpyRowFile } from "../io/npy.ts";
import {
  checkPayload,
  schemas,
  type TraceExample,
  type TraceHeader,
  type TraceReadout,
  type TraceStep,
} from "../schema/mod.ts";
import { type Puzzle, scorePrediction } from "./inputs.ts";
import {
  type LayoutBlock,
  layoutBlocks,
  type StatesDtype,
  type StatesStorage,
} from "./layout.ts";

/** What a {@linkcode TraceRecorder} records. */
export interface RecordSpec {
  /** Latents to record. */
  latents: readonly Latent[];
  /** Steps to record. */
  selector: StepSelector;
  /** Positions to record (prefix first). */
  positions: readonly number[];
  /** Where the states go: states.npy (`npy`) or the step records (`inline`). */
  states: StatesStorage;
  /** The element type the states are stored in. */
  dtype: StatesDtype;
}

/** The model shapes a recorder needs. */
export interface RecordShape {
  /** Sequence length S. */
  S: number;
  /** Prefix length P. */
  P: number;
  /** State width D. */
  D: number;
  /** Vocabulary size V. */
  V: number;
  /** Initial z_H, for the first step's `delta`. */
  H_init: readonly number[];
  /** Initial z_L, for the first step's `delta`. */
  L_init: readonly number[];
  /** The schedule, for the layout of states.npy. */
  schedule: ScheduleShape;
}

/** Accuracy of the official readout after each supervision step. */
export interface PerSupAccuracy {
  /** Supervision step. */
  sup: number;
  /** Exact accuracy. */
  exact: number;
  /** Token accuracy. */
  token: number;
}

/** What a finished recording reports. */
export interface RecordSummary {
  /** Rows written. */
  rows: number;
  /** Examples recorded. */
  examples: number;
  /** Exact accuracy at the halting step. */
  exact: number;
  /** Token accuracy at the halting step. */
  tokenAcc: number;
  /** Per supervision step (halted examples keep their last readout). */
  perSup: PerSupAccuracy[];
}

/**
 * Records a rollout into `dir/trace.jsonl` and, with `states: "npy"`,
 * `dir/states.npy` (v0-spec §3). Pass it as the last hook of
 * {@linkcode rollout} (hooks before it edit what it sees), then `finish` with
 * the header fields it cannot know, or `abort`.
 *
 * states.npy is laid out by block (latent, then step, then example, then
 * position). Rows are written in place as the rollout produces them, into a
 * file sized for every example at every recorded step; when examples halt
 * early (`halt_mode: "q_halt"`), `finish` moves the rows up over the gaps
 * and renumbers the step records' `row`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runTrace } from "./trace.ts";
 * const demo = new URL("../../references/models/sudoku4-trm", import.meta.url).pathname;
 * const dir = await Deno.makeTempDir();
 * try {
 *   const s = await runTrace({ runDir: dir, model: demo, inputs: `${demo}/test.jsonl`, seed: 0, limit: 3, latents: ["z_H"] });
 *   assert.equal(s.examples, 3);
 *   assert.equal(s.rows, 3 * 16 * 16); // examples × z_H updates × positions
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export class TraceRecorder implements Hook {
  #spec: RecordSpec;
  #shape: RecordShape;
  #puzzles: readonly Puzzle[];
  #indices: readonly number[];
  #body: AtomicWriter;
  #npy: NpyRowFile | null;
  #dir: string;
  #blocks: LayoutBlock[];
  #blockOf = new Map<number, number>();
  #haltStep: Int32Array;
  #exact = 0;
  #tok = 0;
  #perSup: { exact: number; token: number; n: number }[] = [];
  #prev: Record<Latent, FloatArray> | null = null;
  #hashes: Sha256[] = [];
  #rowBuf: Float32Array;
  #batchBytes: Uint8Array | null = null;

  private constructor(
    dir: string,
    spec: RecordSpec,
    shape: RecordShape,
    puzzles: readonly Puzzle[],
    indices: readonly number[],
    body: AtomicWriter,
    npy: NpyRowFile | null,
  ) {
    this.#dir = dir;
    this.#spec = spec;
    this.#shape = shape;
    this.#puzzles = puzzles;
    this.#indices = indices;
    this.#body = body;
    this.#npy = npy;
    this.#rowBuf = new Float32Array(spec.positions.length * shape.D);
    this.#blocks = recordedBlocks(spec, shape);
    this.#blocks.forEach((b, i) => this.#blockOf.set(b.t, i));
    this.#haltStep = new Int32Array(puzzles.length).fill(-1);
  }

  /**
   * Open the temp files in `dir`. `puzzles[i]` is the i-th example rolled
   * out, `indices[i]` its index in the inputs.
   */
  static async open(
    dir: string,
    spec: RecordSpec,
    shape: RecordShape,
    puzzles: readonly Puzzle[],
    indices: readonly number[],
  ): Promise<TraceRecorder> {
    const body = await AtomicWriter.open(join(dir, "trace.body"));
    let npy: NpyRowFile | null = null;
    try {
      if (spec.states === "npy") {
        const capacity = recordedBlocks(spec, shape).length * puzzles.length *
          spec.positions.length;
        npy = await NpyRowFile.open(
          join(dir, "states.npy"),
          shape.D,
          spec.dtype,
          capacity,
        );
      }
    } catch (e) {
      await body.abort();
      throw e;
    }
    return new TraceRecorder(dir, spec, shape, puzzles, indices, body, npy);
  }

  #line(rec: TraceStep | TraceReadout | TraceExample): Promise<void> {
    return this.#body.write(JSON.stringify(rec) + "\n");
  }

  /** The row of example `e`'s first state at block `b` when no example halts. */
  #slot(b: number, e: number): number {
    const n = this.#spec.positions.length;
    return (b * this.#puzzles.length + e) * n;
  }

  /** Reset the `delta` baselines to the initial states. */
  onBatchStart(e: BatchInfo): void {
    const n = e.examples.length * (this.#shape.P + this.#shape.S);
    this.#prev = {
      z_H: broadcast(this.#shape.H_init, n, this.#shape.D),
      z_L: broadcast(this.#shape.L_init, n, this.#shape.D),
    };
    this.#hashes = e.examples.map(() => new Sha256());
  }

  /** Write the step records of the batch's running examples, and their rows. */
  async onStep(e: StepEvent): Promise<void> {
    const { D } = this.#shape;
    const T = e.positions;
    const before = this.#prev![e.latent];
    this.#prev![e.latent] = e.state.slice();
    const spec = this.#spec;
    const block = this.#blockOf.get(e.t);
    if (block === undefined) return;
    const address = this.#blocks[block].text;
    const rowBuf = this.#rowBuf;
    const n = spec.positions.length;
    const rowBytes = n * D * (spec.dtype === "float16" ? 2 : 4);
    if (this.#npy && this.#batchBytes?.length !== e.batch * rowBytes) {
      this.#batchBytes = new Uint8Array(e.batch * rowBytes);
    }
    for (let b = 0; b < e.batch; b++) {
      if (e.halted[b]) continue;
      // A NaN would be written as "norm": null, which no reader accepts.
      nonFinite(
        e.state,
        b * T * D,
        (b + 1) * T * D,
        () =>
          `the ${e.latent} state of example "${
            e.examples[b].id
          }" at ${address}`,
      );
      let normSum = 0, deltaSum = 0;
      spec.positions.forEach((pos, k) => {
        const off = (b * T + pos) * D;
        let n2 = 0, d2 = 0;
        for (let j = 0; j < D; j++) {
          const v = e.state[off + j];
          rowBuf[k * D + j] = v;
          n2 += v * v;
          const d = v - before[off + j];
          d2 += d * d;
        }
        normSum += Math.sqrt(n2);
        deltaSum += Math.sqrt(d2);
      });
      const bytes = this.#stored(rowBuf, e.examples[b].id, address);
      this.#hashes[b].update(bytes);
      if (this.#batchBytes) this.#batchBytes.set(bytes, b * rowBytes);
      const rec: TraceStep = {
        kind: "step",
        example: e.examples[b].id,
        address,
        row: this.#slot(block, e.offset + b),
        rows: n,
        norm: round6(normSum / n),
        delta: round6(deltaSum / n),
      };
      if (spec.states === "inline") rec.data = b64(bytes);
      await this.#line(rec);
    }
    if (!this.#npy) return;
    // One write per run of running examples: their slots are consecutive.
    for (let b = 0; b < e.batch;) {
      if (e.halted[b]) {
        b++;
        continue;
      }
      let end = b + 1;
      while (end < e.batch && !e.halted[end]) end++;
      await this.#npy.writeRows(
        this.#slot(block, e.offset + b),
        this.#batchBytes!.subarray(b * rowBytes, end * rowBytes),
      );
      b = end;
    }
  }

  /** The rows as stored: little-endian bytes of the states dtype. */
  #stored(rows: Float32Array, example: string, address: string): Uint8Array {
    if (this.#spec.dtype === "float32") {
      return new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength);
    }
    const half = new Float16Array(rows);
    for (let i = 0; i < half.length; i++) {
      if (!Number.isFinite(half[i]) && Number.isFinite(rows[i])) {
        throw new OptionError(
          "statesDtype",
          `the state of ${example} at ${address} holds ${
            rows[i]
          }, outside float16's range (±65504); trace with {statesDtype} float32`,
        );
      }
    }
    return new Uint8Array(half.buffer);
  }

  /** Write the readout records of the batch's running examples. */
  async onReadout(e: ReadoutEvent): Promise<void> {
    const { S, V } = this.#shape;
    for (let b = 0; b < e.examples.length; b++) {
      if (e.halted[b]) continue;
      const puzzle = this.#puzzles[e.offset + b];
      const what = () =>
        `the readout of example "${puzzle.id}" at ${formatAddress(e.address)}`;
      nonFinite(e.qHalt, b, b + 1, what);
      nonFinite(e.logits, b * S * V, (b + 1) * S * V, what);
      const pred = Array.from(
        argmaxRows(e.logits.subarray(b * S * V, (b + 1) * S * V), V),
      );
      const { acc, exact } = scorePrediction(pred, puzzle.label);
      if (e.final) {
        const slot = this.#perSup[e.address.sup] ??= {
          exact: 0,
          token: 0,
          n: 0,
        };
        slot.exact += exact ? 1 : 0;
        slot.token += acc;
        slot.n++;
      }
      await this.#line({
        kind: "readout",
        example: puzzle.id,
        address: formatAddress(e.address),
        sup: e.address.sup,
        final: e.final,
        pred,
        token_acc: round6(acc),
        exact,
        q_halt: round6(e.qHalt[b]),
      });
    }
  }

  /** Write one example record per example of the batch. */
  async onBatchEnd(e: BatchEndEvent): Promise<void> {
    for (let b = 0; b < e.outcomes.length; b++) {
      const o = e.outcomes[b];
      const puzzle = this.#puzzles[e.offset + b];
      const pred = Array.from(o.pred);
      const { acc, exact } = scorePrediction(pred, puzzle.label);
      this.#exact += exact ? 1 : 0;
      this.#tok += acc;
      this.#haltStep[e.offset + b] = o.haltStep;
      await this.#line({
        kind: "example",
        example: puzzle.id,
        index: this.#indices[e.offset + b],
        puzzle_identifier: puzzle.puzzleIdentifier,
        tokens: puzzle.tokens,
        label: puzzle.label,
        pred,
        token_acc: round6(acc),
        exact,
        halt_step: o.haltStep,
        logits: b64f32(o.logits),
        states_sha256: this.#hashes[b].hex(),
      });
    }
  }

  /**
   * Write trace.jsonl: `header` (given everything but the row layout) then
   * the records, and rename both files into place, states.npy first, once
   * both are written: a full disk leaves neither. With `outputs`, both are
   * staged there and land when the caller commits.
   */
  async finish(
    header: Omit<TraceHeader, "rows" | "blocks" | "states_npy">,
    outputs?: OutputSet,
  ): Promise<RecordSummary> {
    const layout = this.#layout();
    const staged = outputs ?? new OutputSet();
    try {
      let npy: TraceHeader["states_npy"] = null;
      if (this.#npy) {
        if (layout.remap) await this.#compact(layout);
        npy = {
          file: "states.npy",
          sha256: await this.#npy.stage(layout.rows, staged),
          shape: [layout.rows, this.#shape.D],
        };
      }
      const full: TraceHeader = {
        ...header,
        rows: layout.rows,
        blocks: this.#blocks.map((b, i) => ({
          latent: b.latent,
          address: b.text,
          row: layout.start[i],
          rows: layout.count[i],
        })),
        states_npy: npy,
      };
      checkPayload(schemas.TraceHeader, full, "the trace header");
      await writeWithHeader(
        join(this.#dir, "trace.jsonl"),
        JSON.stringify(full) + "\n",
        this.#body,
        layout.remap,
        staged,
      );
      if (!outputs) await staged.commit();
    } catch (e) {
      if (!outputs) await staged.abort();
      throw e;
    }
    const n = this.#puzzles.length;
    return {
      rows: layout.rows,
      examples: n,
      exact: this.#exact / n,
      tokenAcc: this.#tok / n,
      perSup: this.#perSup.map((p, sup) => ({
        sup,
        exact: p.exact / p.n,
        token: p.token / p.n,
      })),
    };
  }

  /**
   * The final layout: each block holds the examples still running at its
   * supervision step. `remap` maps a slot row to its final row, or is null
   * when no example halted early (the slots are the final rows).
   */
  #layout(): Layout {
    const E = this.#puzzles.length, n = this.#spec.positions.length;
    const sups = this.#blocks.map((b) => b.address.sup);
    // running[sup][e]: examples before e still running at supervision step sup.
    const maxSup = Math.max(0, ...sups);
    const before: Int32Array[] = [];
    for (let sup = 0; sup <= maxSup; sup++) {
      const c = new Int32Array(E + 1);
      for (let e = 0; e < E; e++) {
        c[e + 1] = c[e] + (this.#haltStep[e] >= sup ? 1 : 0);
      }
      before.push(c);
    }
    const start: number[] = [], count: number[] = [];
    let rows = 0, remap = false;
    sups.forEach((sup) => {
      start.push(rows);
      count.push(before[sup][E] * n);
      rows += before[sup][E] * n;
      if (before[sup][E] !== E) remap = true;
    });
    return {
      rows,
      start,
      count,
      running: (b, e) => this.#haltStep[e] >= sups[b],
      remap: remap
        ? (slot) => {
          const per = E * n;
          const b = Math.floor(slot / per);
          const e = Math.floor((slot - b * per) / n);
          return start[b] + before[sups[b]][e] * n;
        }
        : null,
    };
  }

  /** Move each block's rows up over the slots of examples that had halted. */
  async #compact(layout: Layout): Promise<void> {
    const E = this.#puzzles.length, n = this.#spec.positions.length;
    for (let b = 0; b < this.#blocks.length; b++) {
      let to = layout.start[b];
      for (let e = 0; e < E;) {
        if (!layout.running(b, e)) {
          e++;
          continue;
        }
        let end = e + 1;
        while (end < E && layout.running(b, end)) end++;
        await this.#npy!.moveRows(this.#slot(b, e), to, (end - e) * n);
        to += (end - e) * n;
        e = end;
      }
    }
  }

  /** Remove the temp files. */
  async abort(): Promise<void> {
    await this.#npy?.abort();
    await this.#body.abort();
  }
}

interface Layout {
  rows: number;
  start: number[];
  count: number[];
  running: (block: number, example: number) => boolean;
  remap: ((slot: number) => number) | null;
}

function recordedBlocks(spec: RecordSpec, shape: RecordShape): LayoutBlock[] {
  return layoutBlocks(shape.schedule, spec.latents, spec.selector);
}

// The header needs the sha256 of states.npy, known only at the end, so the
// body streams to a temp file and is copied behind the header. With `remap`,
// each step record's `row` (a slot) is rewritten to its final row: the first
// `,"row":` of a line is that key, as JSON escapes every quote inside strings.
async function writeWithHeader(
  path: string,
  header: string,
  body: AtomicWriter,
  remap: ((slot: number) => number) | null,
  outputs: OutputSet,
): Promise<void> {
  const bodyPath = body.tempPath;
  await body.writeAt(0, new Uint8Array(0)); // flush buffered lines to disk
  const out = await AtomicWriter.open(path);
  try {
    await out.write(header);
    using f = await Deno.open(bodyPath, { read: true });
    const buf = new Uint8Array(1 << 20);
    const decoder = new TextDecoder();
    let tail = "";
    for (;;) {
      const n = await f.read(buf);
      if (n === null) break;
      if (!remap) {
        await out.write(buf.subarray(0, n));
        continue;
      }
      const text = tail + decoder.decode(buf.subarray(0, n), { stream: true });
      const cut = text.lastIndexOf("\n") + 1;
      tail = text.slice(cut);
      await out.write(renumber(text.slice(0, cut), remap));
    }
    if (remap) await out.write(renumber(tail + decoder.decode(), remap));
    await outputs.adopt(out);
  } catch (e) {
    await out.abort();
    throw e;
  } finally {
    await body.abort();
  }
}

const STEP_PREFIX = '{"kind":"step",';
const ROW_KEY = ',"row":';

function renumber(lines: string, remap: (slot: number) => number): string {
  if (!lines) return lines;
  return lines.split("\n").map((line) => {
    if (!line.startsWith(STEP_PREFIX)) return line;
    const at = line.indexOf(ROW_KEY) + ROW_KEY.length;
    const end = line.indexOf(",", at);
    const slot = Number(line.slice(at, end));
    return line.slice(0, at) + remap(slot) + line.slice(end);
  }).join("\n");
}

function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    .toString("base64");
}

function b64f32(data: Float32Array): string {
  return b64(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}

function broadcast(
  init: readonly number[],
  rows: number,
  D: number,
): Float32Array {
  const out = new Float32Array(rows * D);
  for (let i = 0; i < rows; i++) out.set(init, i * D);
  return out;
}

/**
 * Throw {@linkcode InputError} when `data[start..end)` holds a NaN or an
 * infinity; `what()` names where, for the message.
 */
function nonFinite(
  data: ArrayLike<number>,
  start: number,
  end: number,
  what: () => string,
): void {
  for (let i = start; i < end; i++) {
    const v = data[i];
    // v - v is 0 for every finite v, NaN for NaN and ±Infinity.
    if (v - v !== 0) {
      throw new InputError(
        `${what()} contains ${v}; the model's graphs or weights diverge on this input, so no trace was written`,
      );
    }
  }
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
