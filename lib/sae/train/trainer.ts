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
 * Losses follow SAELens v6 (squared error summed over the D dimensions and
 * averaged over the batch). AuxK follows Gao et al. 2024 ("Scaling and
 * evaluating sparse autoencoders"): the top `k_aux` dead latents reconstruct
 * the residual `x - x̂` without `b_dec`, scaled by `min(n_dead / k_aux, 1)`
 * as in SAELens, weighted by `aux_coefficient` (1/32). AuxK pre-activations
 * are used raw (no ReLU), as in SAELens v6.
 *
 * The three hot loops (the dense encoder matmul, the sparse decode and the
 * sparse backward) run as small hand-assembled WebAssembly SIMD kernels when
 * D % 4 == 0 and F is even, with a plain typed-array fallback otherwise. The
 * TopK selection, Adam and the decoder renormalization stay in TypeScript.
 *
 * @module
 */

import type { LossPoint } from "../../schema/mod.ts";
import { InputError } from "../../errors.ts";
import { Rng } from "../../rng.ts";
import { SAE } from "../sae.ts";
import { architecture, type SAEArch, selectTopK } from "../arch/mod.ts";
import { SAE_DEFAULTS } from "../defaults.ts";
import { RC } from "./kernels.ts";
import { jsWorkspace, simdWorkspace } from "./workspace.ts";

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
 * Training options. Every field has a default.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { FitOptions } from "./trainer.ts";
 * const opts: FitOptions = { arch: "topk", expansion: 16, k: 16, steps: 100, seed: 0 };
 * assert(opts.k === 16);
 * ```
 */
export interface FitOptions {
  /** `topk` (default) or `relu`. */
  arch?: SAEArch;
  /** Dictionary size F; default `expansion * D`. */
  d_sae?: number;
  /** Used when `d_sae` is not given; default 8. */
  expansion?: number;
  /** Active latents for `topk`; default `SAE_DEFAULTS.k` (capped at F). */
  k?: number;
  /** L1 coefficient for `relu`; default 5. Decoder rows are kept at unit norm, so
   * the SAELens norm-weighted penalty `Σ f_j ‖W_dec[j]‖` equals `Σ f_j`. */
  l1_coefficient?: number;
  /** Steps over which the L1 coefficient ramps linearly from 0; default 5% of steps. */
  l1_warmup_steps?: number;
  /** Adam learning rate; default `SAE_DEFAULTS.lr`. */
  lr?: number;
  /** Adam β1; default 0.9. */
  beta1?: number;
  /** Adam β2; default 0.999. */
  beta2?: number;
  /** Adam ε; default 1e-8. */
  eps?: number;
  /** Rows per step; default `SAE_DEFAULTS.batch` (capped at the number of training rows). */
  batch_size?: number;
  /** Optimiser steps; default from `epochs` when given, else `SAE_DEFAULTS.trainSteps`. */
  steps?: number;
  /** Passes over the training rows, when `steps` is not given. */
  epochs?: number;
  /** Seed for init and minibatch order; default 0. */
  seed?: number;
  /** Training row indices into the source; default all rows. */
  indices?: Int32Array;
  /** `b_dec` init: data mean (default) or geometric median (Weiszfeld), both streamed. */
  b_dec_init?: "mean" | "geometric_median";
  /** AuxK latents; default `floor(D / 2)` as in SAELens. 0 disables AuxK. */
  k_aux?: number;
  /** AuxK loss weight; default 1/32 (Gao et al. 2024). */
  aux_coefficient?: number;
  /** A latent is dead after this many training rows without firing; default
   * `min(10_000_000, training rows)` (10M tokens in Gao et al. 2024). */
  dead_tokens?: number;
  /** Number of loss-curve samples, evenly spaced over the steps; default 100. */
  curve_points?: number;
  /** Use the WASM SIMD kernels when D % 4 == 0 and F is even (default true).
   * They sum in float32 lanes, the plain loops partly in float64, so the two
   * paths give slightly different (each deterministic) results. */
  simd?: boolean;
  /**
   * `expected_average_only_in` (the default, as SAELens): train on inputs
   * scaled so that the mean ‖x‖ over the training rows is √D, which makes
   * the defaults (learning rate, L1) hold at any data scale; the scale is
   * folded into the returned weights, so the SAE reads raw states. `none`:
   * train on the raw states.
   */
  normalize_activations?: "expected_average_only_in" | "none";
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
 * const { sae, curve } = fitSAE(src, { d_sae: 8, k: 2, batch_size: 16, steps: 20, seed: 1 });
 * assert(sae.cfg.d_sae === 8 && curve.length === 20);
 * ```
 */
export function fitSAE(
  source: RowSource,
  opts: FitOptions = {},
  onProgress?: (p: FitProgress) => void,
): FitResult {
  const D = source.dim;
  if (!Number.isInteger(D) || D < 1) {
    throw new InputError(
      `sae fit: source dim must be a positive integer, got ${D}`,
    );
  }
  const arch = architecture(opts.arch ?? SAE_DEFAULTS.arch);
  const F = opts.d_sae ??
    Math.round((opts.expansion ?? SAE_DEFAULTS.expansion) * D);
  posInt("d_sae", F);
  const cfg = arch.config(D, F, { k: opts.k });
  arch.checkConfig(cfg);
  const train = opts.indices ??
    Int32Array.from({ length: source.n }, (_, i) => i);
  const N = train.length;
  if (N < 1) throw new InputError("sae fit: no training rows");
  for (let i = 0; i < N; i++) {
    if (!(train[i] >= 0 && train[i] < source.n)) {
      throw new InputError(
        `sae fit: row index ${train[i]} out of range [0, ${source.n})`,
      );
    }
  }
  const B = Math.min(opts.batch_size ?? SAE_DEFAULTS.batch, N);
  posInt("batch_size", B);
  const steps = opts.steps ??
    (opts.epochs === undefined
      ? SAE_DEFAULTS.trainSteps
      : Math.ceil((opts.epochs * N) / B));
  posInt("steps", steps);
  const lr = opts.lr ?? SAE_DEFAULTS.lr;
  const b1 = opts.beta1 ?? 0.9,
    b2 = opts.beta2 ?? 0.999,
    eps = opts.eps ?? 1e-8;
  if (!(lr > 0)) throw new InputError(`sae fit: lr must be > 0, got ${lr}`);
  const terms = arch.training(D, cfg, steps, opts);
  const l1Coef = terms.l1, l1Warm = terms.l1WarmupSteps, kAuxMax = terms.kAux;
  const auxCoef = opts.aux_coefficient ?? 1 / 32;
  const deadTokens = opts.dead_tokens ?? Math.min(10_000_000, N);
  const seed = opts.seed ?? 0;
  const bad = (name: string, v: number) => {
    throw new InputError(`sae fit: bad ${name}: ${v}`);
  };
  if (!Number.isSafeInteger(seed)) bad("seed (must be an integer)", seed);
  if (!(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1)) bad("Adam beta", b1);
  if (!(eps > 0)) bad("eps", eps);
  if (!(l1Coef >= 0) || !(l1Warm >= 0)) {
    bad("l1_coefficient/l1_warmup_steps", l1Coef);
  }
  if (!Number.isInteger(kAuxMax) || kAuxMax < 0) bad("k_aux", kAuxMax);
  if (!(auxCoef >= 0)) bad("aux_coefficient", auxCoef);
  if (!(deadTokens > 0)) bad("dead_tokens", deadTokens);

  // ---- init --------------------------------------------------------------
  const initRng = new Rng(seed, 0);
  const actCap = arch.maxActive(cfg);
  const ws =
    (opts.simd === false ? null : simdWorkspace(D, F, actCap, kAuxMax)) ??
      jsWorkspace(D, F, actCap, kAuxMax);
  const { Wd, WT, be, gWd, gWT, gbe, xc, pre, e, ge, gxc, rr } = ws;
  const { actIdx, actVal, auxIdx, auxVal } = ws;
  for (let j = 0; j < F; j++) {
    let s = 0;
    for (let d = 0; d < D; d++) {
      const v = initRng.normal();
      Wd[j * D + d] = v;
      s += v * v;
    }
    const inv = 1 / Math.sqrt(s);
    for (let d = 0; d < D; d++) Wd[j * D + d] *= inv;
  }
  // The encoder is kept transposed ([F,D], i.e. W_encᵀ) during training so the
  // dense kernel and the sparse gradient rows are contiguous.
  WT.set(Wd);
  const norm = opts.normalize_activations ?? SAE_DEFAULTS.normalize;
  if (norm !== "expected_average_only_in" && norm !== "none") {
    bad(`normalize_activations (${JSON.stringify(norm)})`, NaN);
  }
  const scale = norm === "none" ? 1 : inputScale(source, train, B);
  if (scale !== 1) {
    const raw = source;
    source = {
      n: raw.n,
      dim: raw.dim,
      rows(ix, out) {
        raw.rows(ix, out);
        for (let i = 0; i < ix.length * D; i++) out[i] *= scale;
      },
    };
  }
  const bd = initBDec(source, train, B, opts.b_dec_init ?? "mean");

  const gbd = new Float64Array(D);
  const gbd32 = new Float32Array(D);
  const mWd = new Float32Array(F * D), vWd = new Float32Array(F * D);
  const mWT = new Float32Array(F * D), vWT = new Float32Array(F * D);
  const mbe = new Float32Array(F), vbe = new Float32Array(F);
  const mbd = new Float32Array(D), vbd = new Float32Array(D);

  // ---- scratch (allocated once) -----------------------------------------
  const xb = new Float32Array(B * D);
  const bix = new Int32Array(B);
  const fired = new Uint8Array(F);
  const dead = new Uint8Array(F);
  const since = new Float64Array(F); // rows since each latent last fired

  // ---- minibatch order ---------------------------------------------------
  const orderRng = new Rng(seed, 1);
  const perm = train.slice();
  let pos = N;
  const nextBatch = () => {
    for (let i = 0; i < B; i++) {
      if (pos === N) {
        for (let a = N - 1; a > 0; a--) {
          const b = orderRng.int(a + 1);
          const t = perm[a];
          perm[a] = perm[b];
          perm[b] = t;
        }
        pos = 0;
      }
      bix[i] = perm[pos++];
    }
  };

  const P = Math.max(1, Math.min(opts.curve_points ?? 100, steps));
  const curveAt = new Set<number>();
  for (let i = 0; i < P; i++) {
    curveAt.add(P === 1 ? steps - 1 : Math.round((i * (steps - 1)) / (P - 1)));
  }
  const curve: LossPoint[] = [];
  const invB = 1 / B;

  for (let step = 0; step < steps; step++) {
    nextBatch();
    source.rows(bix, xb);
    gWd.fill(0);
    gWT.fill(0);
    gbe.fill(0);
    gbd.fill(0);
    fired.fill(0);

    let nDead = 0;
    for (let j = 0; j < F; j++) {
      dead[j] = since[j] >= deadTokens ? 1 : 0;
      nDead += dead[j];
    }
    const kAux = Math.min(kAuxMax, nDead);
    const auxScale = kAux > 0 ? Math.min(nDead / kAuxMax, 1) * auxCoef : 0;
    const l1Now = l1Coef * (l1Warm > 0 ? Math.min(1, (step + 1) / l1Warm) : 1);
    let sse = 0, auxSse = 0, l1Sum = 0;

    for (let r0 = 0; r0 < B; r0 += RC) {
      const nr = Math.min(RC, B - r0);
      for (let r = 0; r < nr; r++) {
        const xo = (r0 + r) * D;
        for (let d = 0; d < D; d++) xc[r * D + d] = xb[xo + d] - bd[d];
      }
      ws.encode(nr);

      for (let r = 0; r < nr; r++) {
        const po = r * F, xo = (r0 + r) * D;
        // ---- forward: active set (positive activations only: a latent
        // that TopK kept but ReLU zeroed gets no gradient anywhere) ----
        const na = arch.activate(pre, po, cfg, actIdx, actVal);
        for (let a = 0; a < na; a++) {
          fired[actIdx[a]] = 1;
          l1Sum += actVal[a];
        }
        // e = x̂ - x with x̂ = b_dec + Σ f_j W_dec[j]
        for (let d = 0; d < D; d++) e[d] = bd[d] - xb[xo + d];
        ws.decode(0, na);
        let s = 0;
        for (let d = 0; d < D; d++) {
          s += e[d] * e[d];
          ge[d] = 2 * e[d] * invB;
          gxc[d] = 0;
        }
        sse += s;
        ws.backward(0, na, l1Now * invB, r);

        // ---- AuxK: top dead latents reconstruct the (detached) residual ----
        if (kAux > 0) {
          const na2 = selectTopK(pre, po, F, kAux, auxIdx, auxVal, dead);
          rr.set(e); // ê - (x - x̂) = ê + e
          ws.decode(1, na2);
          let s2 = 0;
          const c = 2 * auxScale * invB;
          for (let d = 0; d < D; d++) {
            s2 += rr[d] * rr[d];
            rr[d] *= c;
          }
          auxSse += s2;
          ws.backward(1, na2, 0, r);
        }
        for (let d = 0; d < D; d++) gbd[d] += ge[d] - gxc[d];
      }
    }

    const mse = sse * invB,
      aux = auxSse * invB * auxScale,
      l1 = l1Sum * invB * l1Now;
    const loss = mse + aux + l1;
    if (curveAt.has(step)) {
      curve.push({ step, loss, mse, aux, l1 });
      onProgress?.({ step, steps, loss, dead_fraction: nDead / F });
    }

    // ---- decoder: drop the gradient parallel to each unit row ----
    for (let j = 0; j < F; j++) {
      const o = j * D;
      let dot = 0;
      for (let d = 0; d < D; d++) dot += gWd[o + d] * Wd[o + d];
      if (dot !== 0) {
        for (let d = 0; d < D; d++) gWd[o + d] -= dot * Wd[o + d];
      }
    }
    // ---- Adam (PyTorch's formulation) ----
    const t = step + 1;
    const stepSize = lr / (1 - b1 ** t);
    const bc2s = Math.sqrt(1 - b2 ** t);
    adam(Wd, gWd, mWd, vWd, stepSize, bc2s, b1, b2, eps);
    adam(WT, gWT, mWT, vWT, stepSize, bc2s, b1, b2, eps);
    adam(be, gbe, mbe, vbe, stepSize, bc2s, b1, b2, eps);
    for (let d = 0; d < D; d++) gbd32[d] = gbd[d];
    adam(bd, gbd32, mbd, vbd, stepSize, bc2s, b1, b2, eps);
    for (let j = 0; j < F; j++) {
      const o = j * D;
      let s = 0;
      for (let d = 0; d < D; d++) s += Wd[o + d] * Wd[o + d];
      if (s > 0) {
        const inv = 1 / Math.sqrt(s);
        for (let d = 0; d < D; d++) Wd[o + d] *= inv;
      }
    }
    for (let j = 0; j < F; j++) since[j] = fired[j] ? 0 : since[j] + B;
  }

  let nDead = 0;
  for (let j = 0; j < F; j++) if (since[j] >= deadTokens) nDead++;
  const W_enc = new Float32Array(D * F);
  for (let j = 0; j < F; j++) {
    for (let d = 0; d < D; d++) W_enc[d * F + j] = WT[j * D + d];
  }
  // Copies: Wd and be may be views into the kernels' WebAssembly memory.
  const W_dec = Wd.slice();
  if (scale !== 1) {
    // Fold the input scale c into the weights, so the SAE reads raw x:
    // act((cx − b) W + e) = act((x − b/c)(cW) + e), and x̂ = (f W_dec + b)/c.
    for (let i = 0; i < W_enc.length; i++) W_enc[i] *= scale;
    for (let i = 0; i < W_dec.length; i++) W_dec[i] /= scale;
    for (let d = 0; d < D; d++) bd[d] /= scale;
  }
  const sae = new SAE(cfg, { W_enc, W_dec, b_enc: be.slice(), b_dec: bd });
  return {
    sae,
    curve,
    steps,
    rows_seen: steps * B,
    dead_fraction: nDead / F,
    scaling_factor: scale,
  };
}

/** `√D / mean ‖x‖` over the training rows, streamed; 1 for all-zero rows. */
function inputScale(
  source: RowSource,
  train: Int32Array,
  chunk: number,
): number {
  const D = source.dim, N = train.length;
  const buf = new Float32Array(chunk * D);
  let sum = 0;
  for (let s = 0; s < N; s += chunk) {
    const ix = train.subarray(s, Math.min(N, s + chunk));
    source.rows(ix, buf.subarray(0, ix.length * D));
    for (let r = 0; r < ix.length; r++) {
      let n2 = 0;
      for (let d = 0; d < D; d++) n2 += buf[r * D + d] ** 2;
      sum += Math.sqrt(n2);
    }
  }
  const mean = sum / N;
  return mean > 0 && Number.isFinite(mean)
    ? Math.fround(Math.sqrt(D) / mean)
    : 1;
}

function posInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) {
    throw new InputError(
      `sae fit: ${name} must be a positive integer, got ${v}`,
    );
  }
}

function adam(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  stepSize: number,
  bc2s: number,
  b1: number,
  b2: number,
  eps: number,
): void {
  const c1 = 1 - b1, c2 = 1 - b2;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i];
    const mi = b1 * m[i] + c1 * gi;
    const vi = b2 * v[i] + c2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] -= (stepSize * mi) / (Math.sqrt(vi) / bc2s + eps);
  }
}

/** Streamed mean, optionally refined to the geometric median by Weiszfeld. */
function initBDec(
  source: RowSource,
  train: Int32Array,
  chunk: number,
  how: "mean" | "geometric_median",
): Float32Array {
  if (how !== "mean" && how !== "geometric_median") {
    throw new InputError(
      `sae fit: b_dec_init must be "mean" or "geometric_median", got ${
        JSON.stringify(how)
      }`,
    );
  }
  const D = source.dim, N = train.length;
  const buf = new Float32Array(chunk * D);
  const forEachChunk = (fn: (rows: Float32Array, n: number) => void) => {
    for (let s = 0; s < N; s += chunk) {
      const ix = train.subarray(s, Math.min(N, s + chunk));
      const out = buf.subarray(0, ix.length * D);
      source.rows(ix, out);
      fn(out, ix.length);
    }
  };
  const y = new Float64Array(D);
  forEachChunk((rows, n) => {
    for (let i = 0; i < n; i++) {
      for (let d = 0; d < D; d++) y[d] += rows[i * D + d];
    }
  });
  for (let d = 0; d < D; d++) y[d] /= N;
  if (how === "geometric_median") {
    const num = new Float64Array(D);
    for (let it = 0; it < 100; it++) {
      num.fill(0);
      let den = 0;
      forEachChunk((rows, n) => {
        for (let i = 0; i < n; i++) {
          let s = 0;
          for (let d = 0; d < D; d++) {
            const t = rows[i * D + d] - y[d];
            s += t * t;
          }
          // Floor the distance so a point sitting on the estimate cannot blow up.
          const w = 1 / Math.max(Math.sqrt(s), 1e-12);
          den += w;
          for (let d = 0; d < D; d++) num[d] += w * rows[i * D + d];
        }
      });
      let moved = 0, norm = 0;
      for (let d = 0; d < D; d++) {
        const nv = num[d] / den;
        moved += (nv - y[d]) ** 2;
        norm += nv * nv;
        y[d] = nv;
      }
      if (Math.sqrt(moved) <= 1e-6 * (1 + Math.sqrt(norm))) break;
    }
  }
  return Float32Array.from(y);
}

export type { LossPoint };
