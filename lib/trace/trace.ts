/**
 * `trminterp trace`: run the recurrence and record hidden states, readouts
 * and outcomes into `trace.jsonl` (with `states.npy` as a cache).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { join } from "node:path";
import {
  formatAddress,
  type StepAddress,
  StepSelector,
} from "../model/address.ts";
import type { BackendName } from "../model/backend.ts";
import { type Bundle, loadBundle } from "../model/bundle.ts";
import { InputError } from "../errors.ts";
import {
  loadPuzzles,
  type Puzzle,
  type PuzzleSet,
  scorePrediction,
} from "./inputs.ts";
import { AtomicWriter } from "../io/atomic.ts";
import { NpyWriter } from "../io/npy.ts";
import { Progress } from "../../cli/progress.ts";
import { Rng } from "../rng.ts";
import {
  argmaxRows,
  type FloatArray,
  type Latent,
  puzzleBatch,
  runRollout,
  type StepEvent,
} from "../model/rollout.ts";
import { prepareRunDir } from "../io/run_dir.ts";
import { checkPermissions, ortWasmPath } from "../../cli/permissions.ts";
import type {
  TraceExample,
  TraceHeader,
  TraceReadout,
  TraceStep,
} from "../schema/schema.ts";
import { VERSION } from "../version.ts";

/** Options of the trace command. */
export interface TraceOptions {
  /** Output folder. */
  runDir: string;
  /** Bundle folder. */
  model: string;
  /** Puzzles: JSONL file or dataset folder. */
  inputs: string;
  /** Seed (used for `limit` sampling). */
  seed: number;
  /** Trace only this many examples, sampled with the seed. */
  limit?: number;
  /** Latents to record. */
  latents?: Latent[];
  /** Step selector text. */
  steps?: string;
  /** Positions spec: `all`, `puzzle`, `prefix`, or a list/ranges such as `0-3,8`. */
  positions?: string;
  /** Examples per batch. */
  batch?: number;
  /** Execution backend. */
  backend?: BackendName;
  /** Overwrite an existing trace. */
  force?: boolean;
  /** Write the `.gitignore` into a new run dir (default true). */
  gitignore?: boolean;
  /** Also write `states.npy` (default true). */
  statesNpy?: boolean;
  /** Print progress on stderr. */
  progress?: boolean;
  /** The command line, recorded in the header. */
  command?: string[];
}

/** What a finished trace reports. */
export interface TraceSummary {
  /** Path of trace.jsonl. */
  trace: string;
  /** Rows in states.npy. */
  rows: number;
  /** Examples traced. */
  examples: number;
  /** Exact accuracy at the halting step. */
  exact: number;
  /** Token accuracy at the halting step. */
  tokenAcc: number;
  /** Exact and token accuracy of the official readout after each supervision step. */
  perSup: { sup: number; exact: number; token: number }[];
  /** Wall time in seconds (not in any payload). */
  seconds: number;
}

/**
 * Parse a positions spec into sorted indices in `[0, P+S)`; prefix positions
 * come first.
 *
 * @example
 * ```ts
 * import { parsePositions } from "./trace.ts";
 * console.assert(parsePositions("puzzle", 2, 3).join() === "2,3,4");
 * console.assert(parsePositions("0,3-4", 2, 3).join() === "0,3,4");
 * ```
 */
export function parsePositions(spec: string, P: number, S: number): number[] {
  const T = P + S;
  const range = (a: number, b: number) =>
    Array.from({ length: b - a }, (_, i) => a + i);
  if (spec === "all") return range(0, T);
  if (spec === "puzzle") return range(P, T);
  if (spec === "prefix") {
    if (P === 0) {
      throw new InputError(
        `--positions prefix: this model has no puzzle-embedding prefix`,
      );
    }
    return range(0, P);
  }
  const out = new Set<number>();
  for (const part of spec.split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) {
      throw new InputError(
        `bad --positions "${spec}"; use all, puzzle, prefix, or indices like 0-3,8`,
      );
    }
    const lo = Number(m[1]), hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo || hi >= T) {
      throw new InputError(
        `--positions "${spec}": indices must lie in 0..${
          T - 1
        } (P=${P} prefix + S=${S})`,
      );
    }
    for (let i = lo; i <= hi; i++) out.add(i);
  }
  return [...out].sort((a, b) => a - b);
}

/**
 * Choose the examples to trace: all of them, or `limit` sampled with the seed
 * (kept in file order).
 *
 * @example
 * ```ts
 * import { selectExamples } from "./trace.ts";
 * console.assert(selectExamples(10, 3, 0).length === 3);
 * ```
 */
export function selectExamples(
  total: number,
  limit: number | undefined,
  seed: number,
): number[] {
  if (limit === undefined || limit >= total) {
    return Array.from({ length: total }, (_, i) => i);
  }
  return new Rng(seed, 1).sample(total, limit);
}

function b64(data: Float32Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString(
    "base64",
  );
}

/**
 * Run the trace command.
 *
 * @example
 * ```ts ignore
 * import { runTrace } from "./trace.ts";
 * await runTrace({ runDir: "runs/demo", model: "references/models/sudoku4-trm",
 *   inputs: "references/models/sudoku4-trm/test.jsonl", seed: 0 });
 * ```
 */
export async function runTrace(opts: TraceOptions): Promise<TraceSummary> {
  const latents = opts.latents ?? ["z_H", "z_L"];
  const selector = StepSelector.parse(opts.steps ?? "all");
  const batchSize = opts.batch ?? 64;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new InputError(`--batch must be a positive integer`);
  }
  const wasm = (opts.backend ?? "wasm") === "wasm" ? ortWasmPath() : null;
  await checkPermissions({
    command: "trace",
    // Atomic renames need read access to the run dir as well (Deno.rename).
    read: [opts.model, opts.inputs, opts.runDir, ...(wasm ? [wasm] : [])],
    write: [opts.runDir],
    ffi: opts.backend === "native",
  });
  const bundle = await loadBundle(opts.model, {
    backend: opts.backend ?? "wasm",
  });
  try {
    const m = bundle.manifest;
    const positions = parsePositions(
      opts.positions ?? "all",
      m.puzzle_emb_len,
      m.seq_len,
    );
    if (selector.select(m.schedule).length === 0) {
      throw new InputError(
        `step selector "${selector.text}" matches no step of this model's schedule`,
      );
    }
    const set = await loadPuzzles(opts.inputs, m);
    const chosen = selectExamples(set.puzzles.length, opts.limit, opts.seed);
    await prepareRunDir(opts.runDir, {
      // trace.jsonl lands last and marks a finished run; a states.npy without
      // it is an orphaned cache (a killed run) and may be replaced.
      outputs: ["trace.jsonl"],
      force: opts.force,
      gitignore: opts.gitignore,
      create: true,
    });
    return await writeTrace(bundle, set, chosen, {
      ...opts,
      latents,
      selector,
      positionList: positions,
      batchSize,
    });
  } finally {
    await bundle.release();
  }
}

/** Resolved recording options, plus an optional edit applied before recording. */
export interface ResolvedTraceOptions {
  /** Latents to record. */
  latents: Latent[];
  /** Steps to record. */
  selector: StepSelector;
  /** Positions to record. */
  positionList: number[];
  /** Examples per batch. */
  batchSize: number;
  /** Rewrites the state before it is recorded (intervene's saved traces). */
  edit?: (e: StepEvent, examples: string[]) => void;
}

/**
 * Write trace.jsonl and states.npy for the `chosen` puzzles of `set` into
 * `opts.runDir`, which must exist.
 *
 * @example
 * ```ts ignore
 * import { writeTrace } from "./trace.ts";
 * await writeTrace(bundle, set, [0, 1], { ...opts, latents: ["z_H"], selector, positionList: [0], batchSize: 8 });
 * ```
 */
export async function writeTrace(
  bundle: Bundle,
  set: PuzzleSet,
  chosen: number[],
  opts: TraceOptions & ResolvedTraceOptions,
): Promise<TraceSummary> {
  const m = bundle.manifest;
  const S = m.seq_len,
    P = m.puzzle_emb_len,
    T = P + S,
    D = m.hidden_size,
    V = m.vocab_size;
  const tracePath = join(opts.runDir, "trace.jsonl");
  const wantNpy = opts.statesNpy !== false;
  const body = await AtomicWriter.open(join(opts.runDir, "trace.body"));
  const npy = wantNpy
    ? await NpyWriter.open(join(opts.runDir, "states.npy"), D)
    : null;
  const progress = new Progress(
    "trace",
    chosen.length,
    "examples",
    opts.progress ?? false,
  );
  const line = (rec: TraceStep | TraceReadout | TraceExample) =>
    body.write(JSON.stringify(rec) + "\n");
  let rows = 0, exactSum = 0, tokSum = 0;
  // Official end-of-step readouts, summed per supervision step (halted examples keep theirs).
  const perSup: { exact: number; token: number; n: number }[] = [];
  const rowBuf = new Float32Array(opts.positionList.length * D);
  try {
    for (let start = 0; start < chosen.length; start += opts.batchSize) {
      const idx = chosen.slice(start, start + opts.batchSize);
      const puzzles: Puzzle[] = idx.map((i) => set.puzzles[i]);
      const B = puzzles.length;
      // The state each latent had before the current step, for `delta`.
      const prev: Record<Latent, FloatArray> = {
        z_H: broadcast(m.H_init, B * T, D),
        z_L: broadcast(m.L_init, B * T, D),
      };
      const result = await runRollout(bundle, puzzleBatch(puzzles, S), {
        readoutEveryH: true,
        onStep: async (e) => {
          opts.edit?.(e, puzzles.map((p) => p.id));
          const before = prev[e.latent];
          prev[e.latent] = e.state.slice();
          if (
            !opts.latents.includes(e.latent) ||
            !opts.selector.matches(e.address)
          ) return;
          const address = formatAddress(e.address);
          for (let b = 0; b < B; b++) {
            if (e.halted[b]) continue;
            let normSum = 0, deltaSum = 0;
            opts.positionList.forEach((pos, k) => {
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
            const n = opts.positionList.length;
            await line({
              kind: "step",
              example: puzzles[b].id,
              index: idx[b],
              address,
              t: e.t,
              latent: e.latent,
              row: rows,
              rows: n,
              norm: round6(normSum / n),
              delta: round6(deltaSum / n),
              data: b64(rowBuf),
            });
            if (npy) await npy.writeRows(rowBuf);
            rows += n;
          }
        },
        onReadout: async (e) => {
          for (let b = 0; b < B; b++) {
            if (e.halted[b]) continue;
            const pred = Array.from(
              argmaxRows(e.logits.subarray(b * S * V, (b + 1) * S * V), V),
            );
            const { acc, exact } = scorePrediction(pred, puzzles[b].label);
            if (e.final) {
              const slot = perSup[e.address.sup] ??= {
                exact: 0,
                token: 0,
                n: 0,
              };
              slot.exact += exact ? 1 : 0;
              slot.token += acc;
              slot.n++;
            }
            await line({
              kind: "readout",
              example: puzzles[b].id,
              index: idx[b],
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
        },
      });
      for (let b = 0; b < B; b++) {
        const pred = Array.from(
          result.predictions.subarray(b * S, (b + 1) * S),
        );
        const { acc, exact } = scorePrediction(pred, puzzles[b].label);
        exactSum += exact ? 1 : 0;
        tokSum += acc;
        await line({
          kind: "example",
          example: puzzles[b].id,
          index: idx[b],
          puzzle_identifier: puzzles[b].puzzleIdentifier,
          tokens: puzzles[b].tokens,
          label: puzzles[b].label,
          pred,
          token_acc: round6(acc),
          exact,
          halt_step: result.haltStep[b],
          logits: b64(
            Float32Array.from(
              result.logits.subarray(b * S * V, (b + 1) * S * V),
            ),
          ),
        });
      }
      progress.update(Math.min(start + opts.batchSize, chosen.length));
    }
    const npySha = npy ? await npy.close() : null;
    const header: TraceHeader = {
      kind: "header",
      format: "trminterp-trace/1",
      tool: { name: "trminterp", version: VERSION },
      command: opts.command ?? [],
      seed: opts.seed,
      model: {
        name: m.name,
        family: m.family,
        path: opts.model,
        sha256: bundle.sha256,
        dtype: m.dtype,
        seq_len: S,
        puzzle_emb_len: P,
        vocab_size: V,
        schedule: m.schedule,
      },
      backend: bundle.backend,
      inputs: {
        path: opts.inputs,
        format: set.format,
        sha256: set.sha256,
        total: set.puzzles.length,
        selected: chosen.length,
        limit: opts.limit ?? null,
      },
      record: {
        latents: opts.latents,
        steps: opts.selector.text,
        positions: opts.positionList,
        readouts: "every_H",
        batch: opts.batchSize,
      },
      state_dim: D,
      dtype: "float32",
      encoding: "base64-f32le",
      rows,
      states_npy: npySha
        ? { file: "states.npy", sha256: npySha, shape: [rows, D] }
        : null,
    };
    await writeWithHeader(tracePath, JSON.stringify(header) + "\n", body);
  } catch (e) {
    await npy?.abort();
    await body.abort();
    throw e;
  }
  const seconds = progress.done();
  return {
    trace: tracePath,
    rows,
    examples: chosen.length,
    exact: exactSum / chosen.length,
    tokenAcc: tokSum / chosen.length,
    perSup: perSup.map((p, sup) => ({
      sup,
      exact: p.exact / p.n,
      token: p.token / p.n,
    })),
    seconds,
  };
}

// The header needs the sha256 of states.npy, known only at the end, so the
// body streams to a temp file and is copied behind the header.
async function writeWithHeader(
  path: string,
  header: string,
  body: AtomicWriter,
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
    await out.commit();
  } catch (e) {
    await out.abort();
    throw e;
  } finally {
    await body.abort();
  }
}

function broadcast(init: number[], rows: number, D: number): Float32Array {
  const out = new Float32Array(rows * D);
  for (let i = 0; i < rows; i++) out.set(init, i * D);
  return out;
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

/** Re-exported for callers that format addresses of trace rows. */
export type { StepAddress };
