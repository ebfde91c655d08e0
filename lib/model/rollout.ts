/**
 * The recurrence driver: runs a bundle's graphs step by step on a batch of
 * examples, with one hook at every step that can read or replace the state.
 *
 * @module
 */
import type { HostTensor } from "./backend.ts";
import type { Bundle } from "./bundle.ts";
import { type StepAddress, stepIndex } from "./address.ts";

/** Float storage for states and logits, matching the bundle's dtype. */
export type FloatArray = Float32Array | Float64Array;

/** Which latent a step updates. */
export type Latent = "z_H" | "z_L";

/** A batch of puzzles, in the bundle's token ids. */
export interface PuzzleBatch {
  /** Token ids, `[B, S]` row-major. */
  tokens: BigInt64Array;
  /** Puzzle identifiers, `[B]` (only used when the bundle has a puzzle embedding). */
  puzzleIdentifiers?: BigInt64Array;
  /** Batch size B. */
  size: number;
}

/**
 * Build a {@linkcode PuzzleBatch} from puzzles' token ids and puzzle ids.
 *
 * @example
 * ```ts
 * import { puzzleBatch } from "./rollout.ts";
 * const b = puzzleBatch([{ tokens: [1, 2], puzzleIdentifier: 0 }], 2);
 * console.assert(b.size === 1 && b.tokens[1] === 2n);
 * ```
 */
export function puzzleBatch(
  puzzles: readonly { tokens: readonly number[]; puzzleIdentifier: number }[],
  S: number,
): PuzzleBatch {
  const tokens = new BigInt64Array(puzzles.length * S);
  const puzzleIdentifiers = new BigInt64Array(puzzles.length);
  puzzles.forEach((p, b) => {
    p.tokens.forEach((v, i) => tokens[b * S + i] = BigInt(v));
    puzzleIdentifiers[b] = BigInt(p.puzzleIdentifier);
  });
  return { tokens, puzzleIdentifiers, size: puzzles.length };
}

/** What a step hook sees. Editing `state` in place replaces the state. */
export interface StepEvent {
  /** The step's address. */
  address: StepAddress;
  /** Global execution index. */
  t: number;
  /** The latent this step wrote. */
  latent: Latent;
  /** The new state, `[B, P+S, D]`; the hook may edit it in place. */
  state: FloatArray;
  /** Batch size. */
  batch: number;
  /** Positions per example (P + S). */
  positions: number;
  /** State width D. */
  dim: number;
  /** 1 where the example had halted in an earlier supervision step. */
  halted: Uint8Array;
}

/** A readout of the head on the current z_H. */
export interface ReadoutEvent {
  /** Address of the z_H update the readout follows. */
  address: StepAddress;
  /** Global index of that z_H update. */
  t: number;
  /** True at the end of a supervision step (the official readout). */
  final: boolean;
  /** Logits `[B, S, V]`. */
  logits: FloatArray;
  /** q_halt logits `[B]`. */
  qHalt: FloatArray;
  /** 1 where the example had halted in an earlier supervision step. */
  halted: Uint8Array;
}

/** Hooks and options for {@linkcode runRollout}. */
export interface RolloutOptions {
  /** Called after every net call, before the state is used further. */
  onStep?: (e: StepEvent) => void | Promise<void>;
  /** Called after head readouts. */
  onReadout?: (e: ReadoutEvent) => void | Promise<void>;
  /** Read out after every z_H update, not only at the end of each supervision step. */
  readoutEveryH?: boolean;
}

/** Outcome of a rollout. */
export interface RolloutResult {
  /** Predicted tokens at the halting step, `[B, S]`. */
  predictions: Int32Array;
  /** Logits at the halting step, `[B, S, V]`. */
  logits: FloatArray;
  /** Supervision step at which each example halted. */
  haltStep: Int32Array;
  /** Predicted tokens after every supervision step, `[sup][B*S]`. */
  predictionsPerSup: Int32Array[];
}

/**
 * Argmax over the last axis of `[rows, V]` logits.
 *
 * @example
 * ```ts
 * import { argmaxRows } from "./rollout.ts";
 * console.assert(argmaxRows(new Float32Array([0, 2, 1, 5, 0, 0]), 3)[1] === 0);
 * ```
 */
export function argmaxRows(logits: FloatArray, V: number): Int32Array {
  const rows = logits.length / V;
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0, bv = logits[r * V];
    for (let v = 1; v < V; v++) {
      const lv = logits[r * V + v];
      if (lv > bv) {
        bv = lv;
        best = v;
      }
    }
    out[r] = best;
  }
  return out;
}

/**
 * Run the full evaluation rollout of a bundle on a batch.
 *
 * The schedule is v0-spec §1.3: z_H and z_L start from `H_init`/`L_init`;
 * each supervision step runs `H_cycles` times (`L_cycles` z_L updates, then a
 * z_H update), carrying the states on. With `halt_mode: "q_halt"` an example
 * stops after the first supervision step whose `q_halt > 0`.
 *
 * @example
 * ```ts ignore
 * import { loadBundle } from "./bundle.ts";
 * import { runRollout } from "./rollout.ts";
 * const bundle = await loadBundle("references/models/sudoku4-trm");
 * const tokens = new BigInt64Array(16).fill(1n);
 * const res = await runRollout(bundle, { tokens, size: 1 }, {
 *   onStep: (e) => console.log(e.t, e.latent),
 * });
 * console.log(res.predictions);
 * ```
 */
export async function runRollout(
  bundle: Bundle,
  batch: PuzzleBatch,
  opts: RolloutOptions = {},
): Promise<RolloutResult> {
  const m = bundle.manifest;
  const { H_cycles, L_cycles, halt_max_steps } = m.schedule;
  const B = batch.size,
    S = m.seq_len,
    P = m.puzzle_emb_len,
    T = P + S,
    D = m.hidden_size,
    V = m.vocab_size;
  const f64 = m.dtype === "float64";
  const alloc = (n: number): FloatArray =>
    f64 ? new Float64Array(n) : new Float32Array(n);
  const tensor = (data: FloatArray, dims: number[]): HostTensor => ({
    type: f64 ? "float64" : "float32",
    data,
    dims,
  });
  const stateDims = [B, T, D];
  const s = bundle.sessions;
  const Lnet = m.family === "trm" ? s.net : s.L_net;
  const Hnet = m.family === "trm" ? s.net : s.H_net;

  const embedFeeds: Record<string, HostTensor> = {
    tokens: { type: "int64", data: batch.tokens, dims: [B, S] },
  };
  if (P > 0) {
    embedFeeds.puzzle_identifiers = {
      type: "int64",
      data: batch.puzzleIdentifiers ?? new BigInt64Array(B),
      dims: [B],
    };
  }
  const x = (await s.embed.run(embedFeeds)).x.data as FloatArray;

  let zH = alloc(B * T * D), zL = alloc(B * T * D);
  for (let i = 0; i < B * T; i++) {
    zH.set(m.H_init, i * D);
    zL.set(m.L_init, i * D);
  }
  const injection = alloc(B * T * D);
  const halted = new Uint8Array(B);
  const haltStep = new Int32Array(B).fill(halt_max_steps - 1);
  const predictions = new Int32Array(B * S);
  const finalLogits = alloc(B * S * V);
  const predictionsPerSup: Int32Array[] = [];
  const sched = m.schedule;

  const readout = async (address: StepAddress, final: boolean) => {
    const out = await s.head.run({ z_H: tensor(zH, stateDims) });
    const logits = out.logits.data as FloatArray,
      qHalt = out.q_halt.data as FloatArray;
    if (opts.onReadout) {
      await opts.onReadout({
        address,
        t: stepIndex(address, sched),
        final,
        logits,
        qHalt,
        halted,
      });
    }
    return { logits, qHalt };
  };

  for (let sup = 0; sup < halt_max_steps; sup++) {
    for (let h = 0; h < H_cycles; h++) {
      for (let l = 0; l < L_cycles; l++) {
        for (let i = 0; i < injection.length; i++) injection[i] = zH[i] + x[i];
        zL = (await Lnet.run({
          hidden: tensor(zL, stateDims),
          injection: tensor(injection, stateDims),
        }))
          .hidden_out.data as FloatArray;
        const address = { sup, h, l };
        if (opts.onStep) {
          await opts.onStep({
            address,
            t: stepIndex(address, sched),
            latent: "z_L",
            state: zL,
            batch: B,
            positions: T,
            dim: D,
            halted,
          });
        }
      }
      zH = (await Hnet.run({
        hidden: tensor(zH, stateDims),
        injection: tensor(zL, stateDims),
      }))
        .hidden_out.data as FloatArray;
      const address: StepAddress = { sup, h, l: "H" };
      if (opts.onStep) {
        await opts.onStep({
          address,
          t: stepIndex(address, sched),
          latent: "z_H",
          state: zH,
          batch: B,
          positions: T,
          dim: D,
          halted,
        });
      }
      const last = h === H_cycles - 1;
      if (!last && !opts.readoutEveryH) continue;
      const { logits, qHalt } = await readout(address, last);
      if (!last) continue;
      const pred = argmaxRows(logits, V);
      predictionsPerSup.push(pred);
      for (let b = 0; b < B; b++) {
        if (halted[b]) continue;
        predictions.set(pred.subarray(b * S, (b + 1) * S), b * S);
        finalLogits.set(logits.subarray(b * S * V, (b + 1) * S * V), b * S * V);
        if (
          m.schedule.halt_mode === "q_halt" && qHalt[b] > 0 &&
          sup < halt_max_steps - 1
        ) {
          haltStep[b] = sup;
        }
      }
    }
    if (m.schedule.halt_mode === "q_halt") {
      for (let b = 0; b < B; b++) if (haltStep[b] === sup) halted[b] = 1;
      if (halted.every((v) => v === 1)) break;
    }
  }
  return { predictions, logits: finalLogits, haltStep, predictionsPerSup };
}
