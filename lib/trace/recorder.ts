/**
 * The hook that records a rollout into trace.jsonl (and states.npy): step
 * records for the selected latents, steps and positions, a readout after
 * every z_H update, and one example record per example.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { join } from "node:path";
import { formatAddress, type StepSelector } from "../model/address.ts";
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
import { AtomicWriter, OutputSet } from "../io/atomic.ts";
import { InputError } from "../errors.ts";
import { NpyWriter } from "../io/npy.ts";
import {
  checkPayload,
  schemas,
  type TraceExample,
  type TraceHeader,
  type TraceReadout,
  type TraceStep,
} from "../schema/mod.ts";
import { type Puzzle, scorePrediction } from "./inputs.ts";

/** What a {@linkcode TraceRecorder} records. */
export interface RecordSpec {
  /** Latents to record. */
  latents: readonly Latent[];
  /** Steps to record. */
  selector: StepSelector;
  /** Positions to record (prefix first). */
  positions: readonly number[];
  /** Also write states.npy. */
  statesNpy: boolean;
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
 * Records a rollout into `dir/trace.jsonl` and `dir/states.npy`. Pass it as
 * the last hook of {@linkcode rollout} (hooks before it edit what it sees),
 * then `finish` with the header fields it cannot know, or `abort`.
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
  #npy: NpyWriter | null;
  #dir: string;
  #rows = 0;
  #exact = 0;
  #tok = 0;
  #perSup: { exact: number; token: number; n: number }[] = [];
  #prev: Record<Latent, FloatArray> | null = null;
  #rowBuf: Float32Array;

  private constructor(
    dir: string,
    spec: RecordSpec,
    shape: RecordShape,
    puzzles: readonly Puzzle[],
    indices: readonly number[],
    body: AtomicWriter,
    npy: NpyWriter | null,
  ) {
    this.#dir = dir;
    this.#spec = spec;
    this.#shape = shape;
    this.#puzzles = puzzles;
    this.#indices = indices;
    this.#body = body;
    this.#npy = npy;
    this.#rowBuf = new Float32Array(spec.positions.length * shape.D);
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
    let npy: NpyWriter | null = null;
    try {
      npy = spec.statesNpy
        ? await NpyWriter.open(join(dir, "states.npy"), shape.D)
        : null;
    } catch (e) {
      await body.abort();
      throw e;
    }
    return new TraceRecorder(dir, spec, shape, puzzles, indices, body, npy);
  }

  #line(rec: TraceStep | TraceReadout | TraceExample): Promise<void> {
    return this.#body.write(JSON.stringify(rec) + "\n");
  }

  /** Reset the `delta` baselines to the initial states. */
  onBatchStart(e: BatchInfo): void {
    const n = e.examples.length * (this.#shape.P + this.#shape.S);
    this.#prev = {
      z_H: broadcast(this.#shape.H_init, n, this.#shape.D),
      z_L: broadcast(this.#shape.L_init, n, this.#shape.D),
    };
  }

  /** Write the step records of the batch's running examples. */
  async onStep(e: StepEvent): Promise<void> {
    const { D } = this.#shape;
    const T = e.positions;
    const before = this.#prev![e.latent];
    this.#prev![e.latent] = e.state.slice();
    const spec = this.#spec;
    if (!spec.latents.includes(e.latent) || !spec.selector.matches(e.address)) {
      return;
    }
    const address = formatAddress(e.address);
    const rowBuf = this.#rowBuf;
    const n = spec.positions.length;
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
      await this.#line({
        kind: "step",
        example: e.examples[b].id,
        index: this.#indices[e.offset + b],
        address,
        t: e.t,
        latent: e.latent,
        row: this.#rows,
        rows: n,
        norm: round6(normSum / n),
        delta: round6(deltaSum / n),
        data: b64(rowBuf),
      });
      if (this.#npy) await this.#npy.writeRows(rowBuf);
      this.#rows += n;
    }
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
        index: this.#indices[e.offset + b],
        address: formatAddress(e.address),
        t: e.t,
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
        logits: b64(o.logits),
      });
    }
  }

  /**
   * Write trace.jsonl: `header` (given everything but `rows` and
   * `states_npy`) then the records, and rename both files into place,
   * states.npy first, once both are written: a full disk leaves neither.
   * With `outputs`, both are staged there and land when the caller commits.
   */
  async finish(
    header: Omit<TraceHeader, "rows" | "states_npy">,
    outputs?: OutputSet,
  ): Promise<RecordSummary> {
    const staged = outputs ?? new OutputSet();
    try {
      const npySha = this.#npy ? await this.#npy.stage(staged) : null;
      const full: TraceHeader = {
        ...header,
        rows: this.#rows,
        states_npy: npySha
          ? {
            file: "states.npy",
            sha256: npySha,
            shape: [this.#rows, this.#shape.D],
          }
          : null,
      };
      checkPayload(schemas.TraceHeader, full, "the trace header");
      await writeWithHeader(
        join(this.#dir, "trace.jsonl"),
        JSON.stringify(full) + "\n",
        this.#body,
        staged,
      );
      if (!outputs) await staged.commit();
    } catch (e) {
      if (!outputs) await staged.abort();
      throw e;
    }
    const n = this.#puzzles.length;
    return {
      rows: this.#rows,
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

  /** Remove the temp files. */
  async abort(): Promise<void> {
    await this.#npy?.abort();
    await this.#body.abort();
  }
}

// The header needs the sha256 of states.npy, known only at the end, so the
// body streams to a temp file and is copied behind the header.
async function writeWithHeader(
  path: string,
  header: string,
  body: AtomicWriter,
  outputs: OutputSet,
): Promise<void> {
  const bodyPath = body.tempPath;
  await body.writeAt(0, new Uint8Array(0)); // flush buffered lines to disk
  const out = await AtomicWriter.open(path);
  try {
    await out.write(header);
    using f = await Deno.open(bodyPath, { read: true });
    const buf = new Uint8Array(1 << 20);
    for (;;) {
      const n = await f.read(buf);
      if (n === null) break;
      await out.write(buf.subarray(0, n));
    }
    await outputs.adopt(out);
  } catch (e) {
    await out.abort();
    throw e;
  } finally {
    await body.abort();
  }
}

function b64(data: Float32Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString(
    "base64",
  );
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
