/**
 * Streaming, seeded SAE training with plain typed-array loops.
 *
 * Each minibatch is read through {@linkcode RowSource.rows}, so memory is one
 * batch plus the parameters, their gradients and the Adam moments. TopK
 * sparsity is exploited: only the encoder pre-activations `(x - b_dec) W_enc`
 * are dense; decoding and the whole backward pass touch only the k active
 * (plus the AuxK) latents of each row, because the gradient of every
 * parameter flows through the pre-activations of those latents alone.
 *
 * The trainer is generic: the architecture (`../arch/`) supplies the
 * training activation and its own loss terms (AuxK, L1) through
 * {@linkcode ArchTrainer}. The reconstruction loss follows SAELens v6
 * (squared error summed over the D dimensions and averaged over the batch).
 *
 * The three hot loops (the dense encoder matmul, the sparse decode and the
 * sparse backward) run as small hand-assembled WebAssembly SIMD kernels when
 * D % 4 == 0 and F is even, with a plain typed-array fallback otherwise. The
 * TopK selection, Adam and the decoder renormalization stay in TypeScript.
 *
 * @module
 */

import type { LossPoint } from "../../schema/mod.ts";
import { Rng } from "../../rng.ts";
import { SAE } from "../sae.ts";
import type { ArchTrainer, DeadLatents } from "../arch/mod.ts";
import { RC } from "./kernels.ts";
import { jsWorkspace, simdWorkspace, type Workspace } from "./workspace.ts";
import { adam, adamStep, dropParallel, unitRows } from "./adam.ts";
import { initBDec, initDecoder, inputScale, scaledRows } from "./init.ts";
import {
  type FitOptions,
  type ResolvedFit,
  resolveFitOptions,
} from "./options.ts";

/**
 * Rows of states read by index. `rows` copies the selected rows (row-major,
 * `indices.length * dim` values) into `out`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { RowSource } from "./trainer.ts";
 * const data = new Float32Array([1, 2, 3, 4]);
 * const src: RowSource = {
 *   n: 2,
 *   dim: 2,
 *   rows(ix, out) {
 *     ix.forEach((r, i) => out.set(data.subarray(r * 2, r * 2 + 2), i * 2));
 *   },
 * };
 * assert(src.n === 2);
 * ```
 */
export interface RowSource {
  /** Number of rows. */
  n: number;
  /** Row width D. */
  dim: number;
  /** Copy rows `indices` into `out` (`indices.length * dim` floats). */
  rows(indices: Int32Array, out: Float32Array): void;
}

/**
 * Progress report passed to the optional callback at each curve sample.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { FitProgress } from "./trainer.ts";
 * const p: FitProgress = { step: 9, steps: 10, loss: 0.5, dead_fraction: 0 };
 * assert(p.step < p.steps);
 * ```
 */
export interface FitProgress {
  /** Current step. */
  step: number;
  /** Total steps. */
  steps: number;
  /** Loss at this step. */
  loss: number;
  /** Fraction of latents currently counted as dead. */
  dead_fraction: number;
}

/**
 * What {@linkcode fitSAE} returns.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { FitResult } from "./trainer.ts";
 * const show = (r: FitResult) => `${r.steps} steps, final loss ${r.curve.at(-1)?.loss}`;
 * assert(typeof show === "function");
 * ```
 */
export interface FitResult {
  /** The trained SAE. */
  sae: SAE;
  /** Loss curve samples. */
  curve: LossPoint[];
  /** Steps taken. */
  steps: number;
  /** Rows processed (steps × batch size). */
  rows_seen: number;
  /** Fraction of latents dead (by `dead_tokens`) at the end. */
  dead_fraction: number;
  /** The input scale trained on (`√D / mean ‖x‖`; 1 without normalization). */
  scaling_factor: number;
  /**
   * Every hyperparameter as used, defaults resolved (the architecture's
   * included), and the scaling factor: sae.pt's `cfg.training`.
   */
  training: Record<string, number | string | boolean>;
}

/**
 * Fit an SAE on `source`. Fully deterministic for a given seed: init uses
 * `Rng(seed, 0)` and minibatch order `Rng(seed, 1)` (a fresh shuffle of the
 * training indices each epoch; a batch may straddle two epochs).
 *
 * Init: unit-norm Gaussian decoder rows, `W_enc = W_decᵀ`, `b_enc = 0`,
 * `b_dec` the mean or geometric median. After each Adam step the decoder
 * rows are renormalized; the gradient component parallel to each row is
 * removed before the step.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fitSAE } from "./trainer.ts";
 * const data = new Float32Array(64 * 4).map((_, i) => Math.sin(i));
 * const src = {
 *   n: 64,
 *   dim: 4,
 *   rows(ix: Int32Array, out: Float32Array) {
 *     ix.forEach((r, i) => out.set(data.subarray(r * 4, r * 4 + 4), i * 4));
 *   },
 * };
 * const { sae, curve, training } = fitSAE(src, { d_sae: 8, k: 2, batch_size: 16, steps: 20, seed: 1 });
 * assert(sae.cfg.d_sae === 8 && curve.length === 20);
 * assert.equal(training.k_aux, 2); // D / 2, the default, recorded as used
 * ```
 */
export function fitSAE(
  source: RowSource,
  opts: FitOptions = {},
  onProgress?: (p: FitProgress) => void,
): FitResult {
  return trainSAE(source, resolveFitOptions(source, opts), onProgress);
}

/**
 * Fit an SAE with options already resolved by {@linkcode resolveFitOptions}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { trainSAE } from "./trainer.ts";
 * import { resolveFitOptions } from "./options.ts";
 * const src = { n: 8, dim: 4, rows: (ix: Int32Array, out: Float32Array) => ix.forEach((r, i) => out.set([r, 1, 0, -r], 4 * i)) };
 * const r = resolveFitOptions(src, { arch: "relu", d_sae: 8, steps: 5 });
 * const fit = trainSAE(src, r);
 * assert.equal(fit.training.l1_warmup_steps, 0);
 * assert.equal(fit.training.l1_coefficient, 5); // defaulted, and recorded
 * assert.equal(fit.training.lr, 1e-2); // relu's own default
 * assert.equal(fit.training.steps, 5);
 * ```
 */
export function trainSAE(
  source: RowSource,
  r: ResolvedFit,
  onProgress?: (p: FitProgress) => void,
): FitResult {
  const { D, F, B } = { D: source.dim, F: r.cfg.d_sae, B: r.batch };
  const at = r.arch.trainer(r.cfg, { D, F, steps: r.steps, batch: B }, {
    ...r.archOptions,
  });
  const ws = workspace(r, D, F, at.auxCap);
  initDecoder(ws.Wd, ws.WT, D, F, new Rng(r.seed, 0));
  const scale = r.normalize === "none" ? 1 : inputScale(source, r.train, B);
  const rows = scaledRows(source, scale);
  const bd = initBDec(rows, r.train, B, r.bDecInit);
  const st = new TrainState(ws, bd, r, D, F);
  const nextBatch = batchOrder(r.train, B, new Rng(r.seed, 1), st.bix);
  const curveAt = curveSteps(r.curvePoints, r.steps);
  const curve: LossPoint[] = [];
  for (let step = 0; step < r.steps; step++) {
    nextBatch();
    rows.rows(st.bix, st.xb);
    const p = trainStep(st, at, step);
    if (curveAt.has(step)) {
      curve.push({ step, ...p });
      onProgress?.({
        step,
        steps: r.steps,
        loss: p.loss,
        dead_fraction: st.dead.count / F,
      });
    }
    update(st, r, step);
  }
  const sae = finalSAE(st, r, at, scale);
  return {
    sae,
    curve,
    steps: r.steps,
    rows_seen: r.steps * B,
    dead_fraction: st.deadCount() / F,
    scaling_factor: scale,
    training: trainingRecord(r, at, ws, scale),
  };
}

/** The workspace: SIMD kernels when they apply and are allowed. */
function workspace(
  r: ResolvedFit,
  D: number,
  F: number,
  auxCap: number,
): Workspace {
  const actCap = r.arch.maxActive(r.cfg);
  return (r.simd ? simdWorkspace(D, F, actCap, auxCap) : null) ??
    jsWorkspace(D, F, actCap, auxCap);
}

/** Everything a step reads and writes besides the workspace's kernels. */
class TrainState {
  readonly ws: Workspace;
  readonly D: number;
  readonly F: number;
  readonly B: number;
  readonly invB: number;
  /** `b_dec` (float32) and its gradient (float64 sums). */
  readonly bd: Float32Array;
  readonly gbd: Float64Array;
  readonly gbd32: Float32Array;
  /** Adam moments. */
  readonly mWd: Float32Array;
  readonly vWd: Float32Array;
  readonly mWT: Float32Array;
  readonly vWT: Float32Array;
  readonly mbe: Float32Array;
  readonly vbe: Float32Array;
  readonly mbd: Float32Array;
  readonly vbd: Float32Array;
  /** The batch's rows and their indices. */
  readonly xb: Float32Array;
  readonly bix: Int32Array;
  /** Which latents fired this step, and the rows since each last fired. */
  readonly fired: Uint8Array;
  readonly since: Float64Array;
  readonly deadTokens: number;
  readonly dead: DeadLatents;

  constructor(
    ws: Workspace,
    bd: Float32Array,
    r: ResolvedFit,
    D: number,
    F: number,
  ) {
    this.ws = ws;
    this.D = D;
    this.F = F;
    this.B = r.batch;
    this.invB = 1 / r.batch;
    this.bd = bd;
    this.gbd = new Float64Array(D);
    this.gbd32 = new Float32Array(D);
    this.mWd = new Float32Array(F * D);
    this.vWd = new Float32Array(F * D);
    this.mWT = new Float32Array(F * D);
    this.vWT = new Float32Array(F * D);
    this.mbe = new Float32Array(F);
    this.vbe = new Float32Array(F);
    this.mbd = new Float32Array(D);
    this.vbd = new Float32Array(D);
    this.xb = new Float32Array(r.batch * D);
    this.bix = new Int32Array(r.batch);
    this.fired = new Uint8Array(F);
    this.since = new Float64Array(F);
    this.deadTokens = r.deadTokens;
    this.dead = { mask: new Uint8Array(F), count: 0 };
  }

  /** Latents dead by the window now. */
  deadCount(): number {
    let n = 0;
    for (let j = 0; j < this.F; j++) if (this.since[j] >= this.deadTokens) n++;
    return n;
  }

  /** Zero the gradients and mark this step's dead latents. */
  beginStep(): void {
    const { ws, dead } = this;
    ws.gWd.fill(0);
    ws.gWT.fill(0);
    ws.gbe.fill(0);
    this.gbd.fill(0);
    this.fired.fill(0);
    dead.count = 0;
    for (let j = 0; j < this.F; j++) {
      dead.mask[j] = this.since[j] >= this.deadTokens ? 1 : 0;
      dead.count += dead.mask[j];
    }
  }
}

/**
 * A closure filling `bix` with the next batch: a fresh seeded shuffle of the
 * training indices each epoch; a batch may straddle two epochs.
 */
function batchOrder(
  train: Int32Array,
  B: number,
  rng: Rng,
  bix: Int32Array,
): () => void {
  const N = train.length;
  const perm = train.slice();
  let pos = N;
  return () => {
    for (let i = 0; i < B; i++) {
      if (pos === N) {
        for (let a = N - 1; a > 0; a--) {
          const b = rng.int(a + 1);
          const t = perm[a];
          perm[a] = perm[b];
          perm[b] = t;
        }
        pos = 0;
      }
      bix[i] = perm[pos++];
    }
  };
}

/** `points` steps evenly spaced over `steps`, the last one included. */
function curveSteps(points: number, steps: number): Set<number> {
  const P = Math.max(1, Math.min(points, steps));
  const at = new Set<number>();
  for (let i = 0; i < P; i++) {
    at.add(P === 1 ? steps - 1 : Math.round((i * (steps - 1)) / (P - 1)));
  }
  return at;
}

/** Center chunk rows `[r0, r0 + nr)` of the batch on `b_dec` and encode them. */
function encodeChunk(st: TrainState, r0: number, nr: number): void {
  const { ws, D, xb, bd } = st;
  for (let r = 0; r < nr; r++) {
    const xo = (r0 + r) * D;
    for (let d = 0; d < D; d++) ws.xc[r * D + d] = xb[xo + d] - bd[d];
  }
  ws.encode(nr);
}

/**
 * Forward and backward over the batch in `st.xb`: gradients accumulate in
 * the workspace and `st.gbd`. Returns the step's loss terms.
 */
function trainStep(
  st: TrainState,
  at: ArchTrainer,
  step: number,
): Omit<LossPoint, "step"> {
  st.beginStep();
  at.beginStep(step, st.dead);
  const { B } = st;
  if (at.scan) {
    for (let r0 = 0; r0 < B; r0 += RC) {
      const nr = Math.min(RC, B - r0);
      encodeChunk(st, r0, nr);
      at.scan(st.ws.pre, nr);
    }
  }
  let sse = 0;
  for (let r0 = 0; r0 < B; r0 += RC) {
    const nr = Math.min(RC, B - r0);
    encodeChunk(st, r0, nr);
    for (let r = 0; r < nr; r++) sse += trainRow(st, at, r0, r);
  }
  const mse = sse * st.invB;
  const { aux, l1 } = at.endStep();
  return { loss: mse + aux + l1, mse, aux, l1 };
}

/**
 * One row: its active latents (positive activations only: a latent the
 * activation kept but ReLU zeroed gets no gradient anywhere), the
 * reconstruction's forward and backward, then the architecture's extra
 * terms. Returns the row's squared error.
 */
function trainRow(
  st: TrainState,
  at: ArchTrainer,
  r0: number,
  r: number,
): number {
  const { ws, D, F, xb, bd, fired, gbd, invB } = st;
  const { pre, e, ge, gxc, actIdx, actVal } = ws;
  const po = r * F, xo = (r0 + r) * D;
  const na = at.activate(pre, po, actIdx, actVal);
  for (let a = 0; a < na; a++) fired[actIdx[a]] = 1;
  // e = x̂ - x with x̂ = b_dec + Σ f_j W_dec[j]
  for (let d = 0; d < D; d++) e[d] = bd[d] - xb[xo + d];
  ws.decode(0, na);
  let s = 0;
  for (let d = 0; d < D; d++) {
    s += e[d] * e[d];
    ge[d] = 2 * e[d] * invB;
    gxc[d] = 0;
  }
  ws.backward(0, na, at.activeGradient(), r);
  at.afterRow?.(ws, pre, po, r);
  for (let d = 0; d < D; d++) gbd[d] += ge[d] - gxc[d];
  return s;
}

/**
 * The learning rate at `step`: `lr`, decaying linearly to 0 over the last
 * `lrDecaySteps` steps.
 */
function lrAt(r: ResolvedFit, step: number): number {
  const left = r.steps - step;
  return r.lrDecaySteps > 0 && left <= r.lrDecaySteps
    ? (r.lr * left) / r.lrDecaySteps
    : r.lr;
}

/** The Adam update of every parameter, with the decoder's unit-norm constraint. */
function update(st: TrainState, r: ResolvedFit, step: number): void {
  const { ws, D, F } = st;
  // The decoder moves within its rows' tangent space, then back to unit norm.
  dropParallel(ws.gWd, ws.Wd, D, F);
  const s = adamStep(step + 1, lrAt(r, step), r.beta1, r.beta2, r.eps);
  adam(ws.Wd, ws.gWd, st.mWd, st.vWd, s);
  adam(ws.WT, ws.gWT, st.mWT, st.vWT, s);
  adam(ws.be, ws.gbe, st.mbe, st.vbe, s);
  for (let d = 0; d < D; d++) st.gbd32[d] = st.gbd[d];
  adam(st.bd, st.gbd32, st.mbd, st.vbd, s);
  unitRows(ws.Wd, D, F);
  for (let j = 0; j < F; j++) {
    st.since[j] = st.fired[j] ? 0 : st.since[j] + st.B;
  }
}

/** The trained SAE, reading raw states: the input scale folded into its weights. */
function finalSAE(
  st: TrainState,
  r: ResolvedFit,
  at: ArchTrainer,
  scale: number,
): SAE {
  const { ws, D, F, bd } = st;
  const W_enc = new Float32Array(D * F);
  for (let j = 0; j < F; j++) {
    for (let d = 0; d < D; d++) W_enc[d * F + j] = ws.WT[j * D + d];
  }
  // Copies: Wd and be may be views into the kernels' WebAssembly memory.
  const W_dec = ws.Wd.slice();
  if (scale !== 1) {
    // act((cx − b) W + e) = act((x − b/c)(cW) + e), and x̂ = (f W_dec + b)/c:
    // the pre-activations, and so any threshold on them, are unchanged.
    for (let i = 0; i < W_enc.length; i++) W_enc[i] *= scale;
    for (let i = 0; i < W_dec.length; i++) W_dec[i] /= scale;
    for (let d = 0; d < D; d++) bd[d] /= scale;
  }
  const cfg = { ...r.cfg, ...at.finish() };
  return new SAE(cfg, { W_enc, W_dec, b_enc: ws.be.slice(), b_dec: bd });
}

/** sae.pt's `cfg.training`: every hyperparameter as used. */
function trainingRecord(
  r: ResolvedFit,
  at: ArchTrainer,
  ws: Workspace,
  scale: number,
): Record<string, number | string | boolean> {
  const out: Record<string, number | string | boolean> = {
    arch: r.arch.name,
    d_sae: r.cfg.d_sae,
    ...(r.cfg.k === undefined ? {} : { k: r.cfg.k }),
    ...at.hyper,
    lr: r.lr,
    lr_decay_steps: r.lrDecaySteps,
    beta1: r.beta1,
    beta2: r.beta2,
    eps: r.eps,
    batch_size: r.batch,
    steps: r.steps,
    ...(r.epochs === undefined ? {} : { epochs: r.epochs }),
    seed: r.seed,
    b_dec_init: r.bDecInit,
    dead_tokens: r.deadTokens,
    curve_points: Math.min(r.curvePoints, r.steps),
    simd: ws.simd,
    normalize_activations: r.normalize,
    scaling_factor: scale,
  };
  return out;
}

export type { FitOptions, LossPoint };
export { resolveFitOptions };
