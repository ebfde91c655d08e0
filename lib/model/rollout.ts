/**
 * The rollout driver: runs a bundle's recurrence on a list of examples, in
 * batches, and hands every net call and every head readout to the hooks the
 * caller passes. trace, sae fit and intervene all roll out through
 * {@linkcode rollout}; what differs between them is only their hooks.
 *
 * A hook is a small object, as in nnsight and pyvene: `onStep` sees the state
 * a net call wrote and may edit it in place before the recurrence uses it,
 * `onReadout` sees the head's logits, and `onBatchStart`/`onBatchEnd` bracket
 * each batch. Hooks run in the order given, so an edit placed before a
 * recorder is what the recorder sees.
 *
 * @module
 */
import type { GraphSession, HostTensor } from "./backend.ts";
import type { Bundle } from "./bundle.ts";
import { type StepAddress, stepIndex } from "./address.ts";
import { InputError, OptionError } from "../errors.ts";
import type { Latent } from "../schema/mod.ts";

/** Float storage for states and logits, matching the bundle's dtype. */
export type FloatArray = Float32Array | Float64Array;

export type { Latent };

/** One example to roll out, in the bundle's token ids. */
export interface RolloutExample {
  /** Stable example id. */
  id: string;
  /** Input tokens, length S. */
  tokens: readonly number[];
  /** Target tokens, length S (−100 = ignored); used to score outcomes. */
  label: readonly number[];
  /** Puzzle identifier for the puzzle embedding (default 0). */
  puzzleIdentifier?: number;
  /**
   * Start at a supervision-step boundary from this carry instead of at
   * step 0 from `H_init`/`L_init` (see {@linkcode CarryRecorder}).
   */
  start?: Carry;
}

/**
 * The recurrent state of one example between two supervision steps: what
 * the next step starts from. Rolling out from a recorded carry gives the
 * bits the full rollout would have given.
 */
export interface Carry {
  /** The supervision step that starts from this carry (≥ 1). */
  sup: number;
  /** z_H, `[P+S, D]`. */
  zH: FloatArray;
  /** z_L, `[P+S, D]`. */
  zL: FloatArray;
  /** Predictions of the supervision steps before `sup`, each of length S. */
  predPerSup: readonly Int32Array[];
}

/** What the hooks of one batch share: its examples and where they start. */
export interface BatchInfo {
  /** The batch's examples, in order; index `b` of a state is `examples[b]`. */
  examples: readonly RolloutExample[];
  /** Index of `examples[0]` in the list passed to {@linkcode rollout}. */
  offset: number;
}

/** What `onStep` sees. Editing `state` in place replaces the state. */
export interface StepEvent extends BatchInfo {
  /** The step's address. */
  address: StepAddress;
  /** Global execution index. */
  t: number;
  /** The latent this step wrote. */
  latent: Latent;
  /** The new state, `[B, P+S, D]`; the hook may edit it in place. */
  state: FloatArray;
  /** Batch size B. */
  batch: number;
  /** Positions per example (P + S). */
  positions: number;
  /** State width D. */
  dim: number;
  /** 1 where the example had halted in an earlier supervision step. */
  halted: Uint8Array;
}

/** What `onReadout` sees: the head on the current z_H. */
export interface ReadoutEvent extends BatchInfo {
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

/** What `onSupervisionEnd` sees: the carry after one supervision step. */
export interface SupervisionEndEvent extends BatchInfo {
  /** The supervision step that ended. */
  sup: number;
  /** z_H `[B, P+S, D]` that the next step starts from (do not edit). */
  zH: FloatArray;
  /** z_L `[B, P+S, D]` that the next step starts from (do not edit). */
  zL: FloatArray;
  /** The step's predictions, `[B, S]`. */
  pred: Int32Array;
  /** 1 where the example has halted (at this step or before). */
  halted: Uint8Array;
  /** Positions per example (P + S). */
  positions: number;
  /** State width D. */
  dim: number;
}

/** What `onBatchEnd` sees: the batch's outcomes. */
export interface BatchEndEvent extends BatchInfo {
  /** One outcome per example of the batch, in order. */
  outcomes: readonly ExampleOutcome[];
}

/**
 * A rollout hook. Every method is optional; async methods are awaited before
 * the recurrence goes on.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Hook, rollout } from "./rollout.ts";
 * import { loadBundle } from "./bundle.ts";
 * import { allAddresses, formatAddress } from "./address.ts";
 * const bundle = await loadBundle(new URL("../../tests/fixtures/tiny_trm", import.meta.url).pathname);
 * try {
 *   const seen: string[] = [];
 *   const record: Hook = { onStep: (e) => void seen.push(`${formatAddress(e.address)} ${e.latent}`) };
 *   const ex = { id: "p", tokens: new Array(16).fill(1), label: new Array(16).fill(2) };
 *   await rollout(bundle, [ex], { hooks: [record] });
 *   // Every net call of the (max_steps) schedule, in execution order: z_L updates, then z_H.
 *   const all = allAddresses(bundle.manifest.schedule);
 *   assert.deepEqual(seen, all.map((a) => `${formatAddress(a)} ${a.l === "H" ? "z_H" : "z_L"}`));
 * } finally {
 *   await bundle.release();
 * }
 * ```
 */
export interface Hook {
  /** Before a batch runs. */
  onBatchStart?(e: BatchInfo): void | Promise<void>;
  /** After every net call, before the state is used further. */
  onStep?(e: StepEvent): void | Promise<void>;
  /** After each head readout (see {@linkcode RolloutOptions.readouts}). */
  onReadout?(e: ReadoutEvent): void | Promise<void>;
  /** After each supervision step, with the carry the next one starts from. */
  onSupervisionEnd?(e: SupervisionEndEvent): void | Promise<void>;
  /** After a batch has finished, with its outcomes. */
  onBatchEnd?(e: BatchEndEvent): void | Promise<void>;
}

/**
 * Examples per batch when {@linkcode RolloutOptions.batch} is not given.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadBundle } from "./bundle.ts";
 * import { rollout, ROLLOUT_BATCH } from "./rollout.ts";
 * const bundle = await loadBundle(new URL("../../tests/fixtures/tiny_trm", import.meta.url).pathname);
 * try {
 *   const ex = { id: "p", tokens: new Array(16).fill(1), label: new Array(16).fill(2) };
 *   const sizes: number[] = [];
 *   await rollout(bundle, Array.from({ length: ROLLOUT_BATCH + 1 }, (_, i) => ({ ...ex, id: `p${i}` })),
 *     { hooks: [{ onBatchEnd: (e) => void sizes.push(e.outcomes.length) }] });
 *   assert.deepEqual(sizes, [ROLLOUT_BATCH, 1]);
 * } finally {
 *   await bundle.release();
 * }
 * ```
 */
export const ROLLOUT_BATCH = 64;

/** Options for {@linkcode rollout}. */
export interface RolloutOptions {
  /**
   * Examples per batch (default {@linkcode ROLLOUT_BATCH}). Outcomes do not depend on it. Examples
   * that start at different supervision steps never share a batch, so a list
   * sorted by start step fills its batches.
   */
  batch?: number;
  /** Hooks, run in this order at every event. */
  hooks?: readonly Hook[];
  /**
   * `final` (default): read the head out at the end of each supervision step;
   * `every_H`: after every z_H update (a logit lens over the recursion).
   */
  readouts?: "final" | "every_H";
  /** Keep and return the outcomes (default true); false returns `[]`. */
  collect?: boolean;
  /**
   * Called with the examples done so far and the total: after each batch
   * (a whole number), and within a batch after each graph call, with the
   * batch's examples counted by the fraction of its planned calls done (a
   * batch of large examples can take minutes).
   */
  onProgress?: (done: number, total: number) => void;
}

/** The outcome of one example in a rollout. */
export interface ExampleOutcome {
  /** Example id. */
  example: string;
  /** Target tokens (−100 = ignored). */
  label: readonly number[];
  /** Prediction at the halting step. */
  pred: ArrayLike<number>;
  /** Prediction after each supervision step, up to the halting step. */
  predPerSup: ArrayLike<number>[];
  /** Supervision step at which the example halted. */
  haltStep: number;
  /** Logits at the halting step, `[S, V]`. */
  logits: Float32Array;
}

/** Outcomes of a set of examples, with the shapes to read their logits. */
export interface OutcomeTrace {
  /** Sequence length. */
  S: number;
  /** Vocabulary size. */
  V: number;
  /** Outcomes, in a fixed order. */
  examples: ExampleOutcome[];
}

/**
 * Argmax over the last axis of `[rows, V]` logits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { argmaxRows } from "./rollout.ts";
 * assert.deepEqual([...argmaxRows(new Float32Array([0, 2, 1, 5, 0, 0]), 3)], [1, 0]);
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
 * Roll out `examples` through the bundle's recurrence, `batch` at a time,
 * calling the hooks at every event, and return each example's outcome in
 * input order.
 *
 * The schedule is v0-spec §1.3: z_H and z_L start from `H_init`/`L_init`;
 * each supervision step runs `H_cycles` times (`L_cycles` z_L updates, then a
 * z_H update), carrying the states on. With `halt_mode: "q_halt"` an example
 * stops after the first supervision step whose `q_halt > 0`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadBundle } from "./bundle.ts";
 * import { rollout } from "./rollout.ts";
 * const bundle = await loadBundle(new URL("../../references/models/sudoku4-trm", import.meta.url).pathname);
 * try {
 *   let zH = 0;
 *   const [out] = await rollout(bundle, [
 *     { id: "p0", tokens: [1, 3, 4, 1, 4, 1, 1, 3, 3, 1, 1, 4, 1, 4, 3, 1], label: [2, 3, 4, 5, 4, 5, 2, 3, 3, 2, 5, 4, 5, 4, 3, 2] },
 *   ], { hooks: [{ onStep: (e) => void (e.latent === "z_H" && zH++) }] });
 *   assert.equal(zH, 8 * 2); // 8 supervision steps of 2 H cycles
 *   assert.equal(out.predPerSup.length, 8);
 * } finally {
 *   await bundle.release();
 * }
 * ```
 */
export async function rollout(
  bundle: Bundle,
  examples: readonly RolloutExample[],
  opts: RolloutOptions = {},
): Promise<ExampleOutcome[]> {
  const size = opts.batch ?? ROLLOUT_BATCH;
  if (!Number.isInteger(size) || size < 1) {
    throw new OptionError(
      "batch",
      `{batch} must be a positive integer, got ${size}`,
    );
  }
  const hooks = opts.hooks ?? [];
  const collect = opts.collect !== false;
  const out: ExampleOutcome[] = [];
  const startOf = (ex: RolloutExample) => ex.start?.sup ?? 0;
  for (let offset = 0; offset < examples.length;) {
    let end = offset + 1;
    while (
      end < examples.length && end - offset < size &&
      startOf(examples[end]) === startOf(examples[offset])
    ) end++;
    const batch = examples.slice(offset, end);
    const info: BatchInfo = { examples: batch, offset };
    for (const h of hooks) await h.onBatchStart?.(info);
    const n = end - offset;
    const outcomes = await runBatch(
      bundle,
      info,
      hooks,
      opts.readouts === "every_H",
      opts.onProgress &&
        ((part: number) =>
          opts.onProgress!(offset + n * part, examples.length)),
    );
    for (const h of hooks) await h.onBatchEnd?.({ ...info, outcomes });
    if (collect) out.push(...outcomes);
    opts.onProgress?.(end, examples.length);
    offset = end;
  }
  return out;
}

/**
 * Refuse an example the graphs cannot take: a token outside the vocabulary
 * or a puzzle id outside the embedding would fail inside onnxruntime (or, for
 * a wrong length, shift every later example of the batch).
 */
function checkExample(ex: RolloutExample, m: Bundle["manifest"]): void {
  const bad = (what: string) =>
    new InputError(`example "${ex.id.slice(0, 64)}": ${what}`);
  if (ex.tokens.length !== m.seq_len) {
    throw bad(`${ex.tokens.length} tokens, but the model takes ${m.seq_len}`);
  }
  for (const v of ex.tokens) {
    if (!(Number.isInteger(v) && v >= 0 && v < m.vocab_size)) {
      throw bad(`token ${v} is outside the vocabulary 0..${m.vocab_size - 1}`);
    }
  }
  const pid = ex.puzzleIdentifier ?? 0;
  if (!(Number.isInteger(pid) && pid >= 0 && pid < m.num_puzzle_identifiers)) {
    throw bad(
      `puzzle identifier ${pid} is outside 0..${m.num_puzzle_identifiers - 1}`,
    );
  }
}

/**
 * Run one graph and check that every output has the length model.json's
 * shapes give: a graph whose symbolic dims do not follow the spec would
 * otherwise return the wrong number of values, and the recurrence would
 * misread them.
 */
async function runChecked(
  role: string,
  session: GraphSession,
  feeds: Record<string, HostTensor>,
  want: Record<string, number>,
  B: number,
): Promise<Record<string, HostTensor>> {
  let out: Record<string, HostTensor>;
  try {
    out = await session.run(feeds);
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(
      `graph "${role}" failed at run time (${
        String((e as Error)?.message ?? e).split("\n")[0].slice(0, 200)
      }); check the bundle against references/v0-spec.md §1.2`,
    );
  }
  for (const [name, n] of Object.entries(want)) {
    const got = out[name]?.data.length;
    if (got !== n) {
      throw new InputError(
        `graph "${role}" returned ${got} values for "${name}", expected ${n} (batch ${B}, model.json's shapes); its symbolic dims do not follow the spec (references/v0-spec.md §1.2)`,
      );
    }
  }
  return out;
}

/** The embed graph's feeds for a batch, each example checked first. */
function embedFeeds(
  examples: readonly RolloutExample[],
  m: Bundle["manifest"],
): Record<string, HostTensor> {
  const B = examples.length, S = m.seq_len;
  const tokens = new BigInt64Array(B * S);
  const puzzleIds = new BigInt64Array(B);
  examples.forEach((ex, b) => {
    checkExample(ex, m);
    for (let i = 0; i < S; i++) tokens[b * S + i] = BigInt(ex.tokens[i]);
    puzzleIds[b] = BigInt(ex.puzzleIdentifier ?? 0);
  });
  const feeds: Record<string, HostTensor> = {
    tokens: { type: "int64", data: tokens, dims: [B, S] },
  };
  if (m.puzzle_emb_len > 0) {
    feeds.puzzle_identifiers = { type: "int64", data: puzzleIds, dims: [B] };
  }
  return feeds;
}

/**
 * The states a batch starts from: each example's carry when it has one (all
 * examples of a batch share its supervision step), else H_init/L_init at
 * every position.
 */
function startStates(
  examples: readonly RolloutExample[],
  m: Bundle["manifest"],
  alloc: (n: number) => FloatArray,
): { zH: FloatArray; zL: FloatArray } {
  const T = m.puzzle_emb_len + m.seq_len, D = m.hidden_size;
  const { halt_max_steps } = m.schedule;
  const zH = alloc(examples.length * T * D),
    zL = alloc(examples.length * T * D);
  examples.forEach((ex, b) => {
    const c = ex.start;
    if (c) {
      if (
        c.zH.length !== T * D || c.zL.length !== T * D ||
        !(c.sup >= 1 && c.sup < halt_max_steps) || c.predPerSup.length !== c.sup
      ) {
        throw new Error(
          `carry of ${ex.id}: expected [${T}, ${D}] states and predictions for supervision steps 0..${
            c.sup - 1
          } of 0..${halt_max_steps - 1}`,
        );
      }
      zH.set(c.zH, b * T * D);
      zL.set(c.zL, b * T * D);
      return;
    }
    for (let i = 0; i < T; i++) {
      zH.set(m.H_init, (b * T + i) * D);
      zL.set(m.L_init, (b * T + i) * D);
    }
  });
  return { zH, zL };
}

/** One batch through the schedule: the only recurrence loop in trminterp. */
async function runBatch(
  bundle: Bundle,
  info: BatchInfo,
  hooks: readonly Hook[],
  readoutEveryH: boolean,
  onPart?: (fraction: number) => void,
): Promise<ExampleOutcome[]> {
  const m = bundle.manifest;
  const { H_cycles, L_cycles, halt_max_steps } = m.schedule;
  const sched = m.schedule;
  const B = info.examples.length,
    S = m.seq_len,
    T = m.puzzle_emb_len + S,
    D = m.hidden_size,
    V = m.vocab_size;
  const f64 = m.dtype === "float64";
  const alloc = (n: number): FloatArray =>
    f64 ? new Float64Array(n) : new Float32Array(n);
  const stateDims = [B, T, D];
  const tensor = (data: FloatArray): HostTensor => ({
    type: f64 ? "float64" : "float32",
    data,
    dims: stateDims,
  });
  const s = bundle.sessions;
  const Lnet = m.family === "trm" ? s.net : s.L_net;
  const Hnet = m.family === "trm" ? s.net : s.H_net;
  const sup0 = info.examples[0]?.start?.sup ?? 0;
  // Progress within the batch: graph calls done of those planned (embed,
  // then per supervision step the net calls and the readouts); an early halt
  // leaves the rest to the batch's end.
  const planned = 1 +
    (halt_max_steps - sup0) *
      (H_cycles * (L_cycles + 1) + (readoutEveryH ? H_cycles : 1));
  let calls = 0;
  const run = async (
    role: string,
    session: GraphSession,
    feeds: Record<string, HostTensor>,
    want: Record<string, number>,
  ) => {
    const out = await runChecked(role, session, feeds, want, B);
    if (++calls < planned) onPart?.(calls / planned);
    return out;
  };
  const lnRole = m.family === "trm" ? "net" : "L_net";
  const hnRole = m.family === "trm" ? "net" : "H_net";
  const x = (await run("embed", s.embed, embedFeeds(info.examples, m), {
    x: B * T * D,
  })).x.data as FloatArray;

  let { zH, zL } = startStates(info.examples, m, alloc);
  const injection = alloc(B * T * D);
  const halted = new Uint8Array(B);
  const haltStep = new Int32Array(B).fill(halt_max_steps - 1);
  const predictions = new Int32Array(B * S);
  const finalLogits = new Float32Array(B * S * V);
  const perSup: Int32Array[] = [];

  const step = async (
    address: StepAddress,
    latent: Latent,
    state: FloatArray,
  ) => {
    if (!hooks.some((h) => h.onStep)) return;
    const e: StepEvent = {
      ...info,
      address,
      t: stepIndex(address, sched),
      latent,
      state,
      batch: B,
      positions: T,
      dim: D,
      halted,
    };
    for (const h of hooks) await h.onStep?.(e);
  };

  for (let sup = sup0; sup < halt_max_steps; sup++) {
    for (let h = 0; h < H_cycles; h++) {
      for (let l = 0; l < L_cycles; l++) {
        for (let i = 0; i < injection.length; i++) injection[i] = zH[i] + x[i];
        zL = (await run(lnRole, Lnet, {
          hidden: tensor(zL),
          injection: tensor(injection),
        }, { hidden_out: B * T * D })).hidden_out.data as FloatArray;
        await step({ sup, h, l }, "z_L", zL);
      }
      zH = (await run(hnRole, Hnet, {
        hidden: tensor(zH),
        injection: tensor(zL),
      }, { hidden_out: B * T * D })).hidden_out.data as FloatArray;
      const address: StepAddress = { sup, h, l: "H" };
      await step(address, "z_H", zH);
      const last = h === H_cycles - 1;
      if (!last && !readoutEveryH) continue;
      const head = await run("head", s.head, { z_H: tensor(zH) }, {
        logits: B * S * V,
        q_halt: B,
      });
      const logits = head.logits.data as FloatArray,
        qHalt = head.q_halt.data as FloatArray;
      const e: ReadoutEvent = {
        ...info,
        address,
        t: stepIndex(address, sched),
        final: last,
        logits,
        qHalt,
        halted,
      };
      for (const hk of hooks) await hk.onReadout?.(e);
      if (!last) continue;
      const pred = argmaxRows(logits, V);
      perSup.push(pred);
      for (let b = 0; b < B; b++) {
        if (halted[b]) continue;
        predictions.set(pred.subarray(b * S, (b + 1) * S), b * S);
        finalLogits.set(logits.subarray(b * S * V, (b + 1) * S * V), b * S * V);
        if (
          sched.halt_mode === "q_halt" && qHalt[b] > 0 &&
          sup < halt_max_steps - 1
        ) {
          haltStep[b] = sup;
        }
      }
    }
    if (sched.halt_mode === "q_halt") {
      for (let b = 0; b < B; b++) if (haltStep[b] === sup) halted[b] = 1;
    }
    if (hooks.some((h) => h.onSupervisionEnd)) {
      const e: SupervisionEndEvent = {
        ...info,
        sup,
        zH,
        zL,
        pred: perSup[perSup.length - 1],
        halted,
        positions: T,
        dim: D,
      };
      for (const hk of hooks) await hk.onSupervisionEnd?.(e);
    }
    if (halted.every((v) => v === 1)) break;
  }
  return info.examples.map((ex, b) => ({
    example: ex.id,
    label: ex.label,
    pred: predictions.slice(b * S, (b + 1) * S),
    // Up to the halting step: what a halted example's rows compute while
    // its batch runs on depends on the batch, and is not its outcome.
    predPerSup: [
      ...(ex.start?.predPerSup ?? []),
      ...perSup.slice(0, haltStep[b] - sup0 + 1).map((p) =>
        p.slice(b * S, (b + 1) * S)
      ),
    ],
    haltStep: haltStep[b],
    logits: finalLogits.slice(b * S * V, (b + 1) * S * V),
  }));
}
