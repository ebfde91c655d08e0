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

import { InputError } from "../errors.ts";
import { Rng } from "../rng.ts";
import { SAE, type SAEArch, selectTopK } from "./sae.ts";

/**
 * Rows of states read by index. `rows` copies the selected rows (row-major,
 * `indices.length * dim` values) into `out`.
 *
 * @example
 * ```ts
 * import type { RowSource } from "./train.ts";
 * const data = new Float32Array([1, 2, 3, 4]);
 * const src: RowSource = {
 *   n: 2,
 *   dim: 2,
 *   rows(ix, out) {
 *     ix.forEach((r, i) => out.set(data.subarray(r * 2, r * 2 + 2), i * 2));
 *   },
 * };
 * console.assert(src.n === 2);
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
 * import type { FitOptions } from "./train.ts";
 * const opts: FitOptions = { arch: "topk", expansion: 16, k: 16, steps: 100, seed: 0 };
 * console.assert(opts.k === 16);
 * ```
 */
export interface FitOptions {
  /** `topk` (default) or `relu`. */
  arch?: SAEArch;
  /** Dictionary size F; default `expansion * D`. */
  d_sae?: number;
  /** Used when `d_sae` is not given; default 8. */
  expansion?: number;
  /** Active latents for `topk`; default 32 (capped at F). */
  k?: number;
  /** L1 coefficient for `relu`; default 5. Decoder rows are kept at unit norm, so
   * the SAELens norm-weighted penalty `Σ f_j ‖W_dec[j]‖` equals `Σ f_j`. */
  l1_coefficient?: number;
  /** Steps over which the L1 coefficient ramps linearly from 0; default 5% of steps. */
  l1_warmup_steps?: number;
  /** Adam learning rate; default 3e-4. */
  lr?: number;
  /** Adam β1; default 0.9. */
  beta1?: number;
  /** Adam β2; default 0.999. */
  beta2?: number;
  /** Adam ε; default 1e-8. */
  eps?: number;
  /** Rows per step; default 4096 (capped at the number of training rows). */
  batch_size?: number;
  /** Optimiser steps; default from `epochs`. */
  steps?: number;
  /** Passes over the training rows when `steps` is not given; default 1. */
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
}

/**
 * One loss-curve sample, computed on that step's minibatch before the update.
 *
 * @example
 * ```ts
 * import type { LossPoint } from "./train.ts";
 * const p: LossPoint = { step: 0, loss: 1, mse: 1, aux: 0, l1: 0 };
 * console.assert(p.loss === p.mse + p.aux + p.l1);
 * ```
 */
export interface LossPoint {
  /** Step index, from 0. */
  step: number;
  /** Total loss: `mse + aux + l1` (terms already weighted). */
  loss: number;
  /** Mean over rows of `‖x - x̂‖²`. */
  mse: number;
  /** Weighted AuxK loss (0 for relu or with no dead latents). */
  aux: number;
  /** Weighted L1 penalty (0 for topk). */
  l1: number;
}

/**
 * Progress report passed to the optional callback at each curve sample.
 *
 * @example
 * ```ts
 * import type { FitProgress } from "./train.ts";
 * const p: FitProgress = { step: 9, steps: 10, loss: 0.5, dead_fraction: 0 };
 * console.assert(p.step < p.steps);
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
 * import type { FitResult } from "./train.ts";
 * const show = (r: FitResult) => `${r.steps} steps, final loss ${r.curve.at(-1)?.loss}`;
 * console.assert(typeof show === "function");
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
}

/** Rows per register block of the dense encoder kernel. */
const R = 4;
/** Rows per chunk: the weights stream from memory once per chunk, so a chunk
 * is as large as fits in L2 next to a pair of weight rows (64 × D floats). */
const RC = 64;

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
 * import { fitSAE } from "./train.ts";
 * const data = new Float32Array(64 * 4).map((_, i) => Math.sin(i));
 * const src = {
 *   n: 64,
 *   dim: 4,
 *   rows(ix: Int32Array, out: Float32Array) {
 *     ix.forEach((r, i) => out.set(data.subarray(r * 4, r * 4 + 4), i * 4));
 *   },
 * };
 * const { sae, curve } = fitSAE(src, { d_sae: 8, k: 2, batch_size: 16, steps: 20, seed: 1 });
 * console.assert(sae.cfg.d_sae === 8 && curve.length === 20);
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
  const arch = opts.arch ?? "topk";
  if (arch !== "topk" && arch !== "relu") {
    throw new InputError(`sae fit: unknown arch ${JSON.stringify(arch)}`);
  }
  const F = opts.d_sae ?? Math.round((opts.expansion ?? 8) * D);
  posInt("d_sae", F);
  const K = arch === "topk" ? Math.min(opts.k ?? 32, F) : 0;
  if (arch === "topk") posInt("k", K);
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
  const B = Math.min(opts.batch_size ?? 4096, N);
  posInt("batch_size", B);
  const steps = opts.steps ?? Math.ceil(((opts.epochs ?? 1) * N) / B);
  posInt("steps", steps);
  const lr = opts.lr ?? 3e-4;
  const b1 = opts.beta1 ?? 0.9,
    b2 = opts.beta2 ?? 0.999,
    eps = opts.eps ?? 1e-8;
  if (!(lr > 0)) throw new InputError(`sae fit: lr must be > 0, got ${lr}`);
  const l1Coef = arch === "relu" ? (opts.l1_coefficient ?? 5) : 0;
  const l1Warm = opts.l1_warmup_steps ?? Math.floor(steps / 20);
  const kAuxMax = arch === "topk"
    ? Math.min(opts.k_aux ?? Math.floor(D / 2), F)
    : 0;
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
  const actCap = arch === "topk" ? K : F;
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
        let na = 0;
        if (arch === "topk") {
          const cnt = selectTopK(pre, po, F, K, actIdx, actVal);
          for (let a = 0; a < cnt; a++) {
            if (actVal[a] > 0) {
              actIdx[na] = actIdx[a];
              actVal[na++] = actVal[a];
            }
          }
        } else {
          for (let j = 0; j < F; j++) {
            const v = pre[po + j];
            if (v > 0) {
              actIdx[na] = j;
              actVal[na++] = v;
            }
          }
        }
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
  const cfg = arch === "topk"
    ? { arch, d_in: D, d_sae: F, k: K }
    : { arch, d_in: D, d_sae: F };
  // Copies: Wd and be may be views into the kernels' WebAssembly memory.
  const sae = new SAE(cfg, {
    W_enc,
    W_dec: Wd.slice(),
    b_enc: be.slice(),
    b_dec: bd,
  });
  return { sae, curve, steps, rows_seen: steps * B, dead_fraction: nDead / F };
}

function posInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) {
    throw new InputError(
      `sae fit: ${name} must be a positive integer, got ${v}`,
    );
  }
}

/**
 * pre[r, j] = b_enc[j] + xc[r] · WT[j] for nr ≤ 4 rows. Four rows share each
 * loaded weight and two latents share each loaded input, with eight
 * independent accumulators so the adds pipeline.
 */
function encodeBlock(
  xc: Float32Array,
  WT: Float32Array,
  be: Float32Array,
  pre: Float32Array,
  nr: number,
  D: number,
  F: number,
  row0: number,
): void {
  const xo = row0 * D, po = row0 * F;
  if (nr === R) {
    const o1 = D, o2 = 2 * D, o3 = 3 * D;
    let j = 0;
    for (; j + 1 < F; j += 2) {
      const w0 = j * D, w1 = w0 + D;
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0, c0 = 0, c1 = 0, c2 = 0, c3 = 0;
      for (let d = 0; d < D; d++) {
        const u = WT[w0 + d], v = WT[w1 + d];
        const x0 = xc[xo + d],
          x1 = xc[xo + o1 + d],
          x2 = xc[xo + o2 + d],
          x3 = xc[xo + o3 + d];
        a0 += x0 * u;
        a1 += x1 * u;
        a2 += x2 * u;
        a3 += x3 * u;
        c0 += x0 * v;
        c1 += x1 * v;
        c2 += x2 * v;
        c3 += x3 * v;
      }
      const b0 = be[j], b1 = be[j + 1];
      pre[po + j] = a0 + b0;
      pre[po + F + j] = a1 + b0;
      pre[po + 2 * F + j] = a2 + b0;
      pre[po + 3 * F + j] = a3 + b0;
      pre[po + j + 1] = c0 + b1;
      pre[po + F + j + 1] = c1 + b1;
      pre[po + 2 * F + j + 1] = c2 + b1;
      pre[po + 3 * F + j + 1] = c3 + b1;
    }
    for (; j < F; j++) {
      for (let r = 0; r < R; r++) {
        let a = 0;
        for (let d = 0; d < D; d++) a += xc[xo + r * D + d] * WT[j * D + d];
        pre[po + r * F + j] = a + be[j];
      }
    }
    return;
  }
  for (let r = 0; r < nr; r++) {
    for (let j = 0; j < F; j++) {
      let a = 0;
      for (let d = 0; d < D; d++) a += xc[xo + r * D + d] * WT[j * D + d];
      pre[po + r * F + j] = a + be[j];
    }
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

// ---- WASM SIMD encoder kernel ---------------------------------------------
// The dense pre-activation matmul is nearly all of the arithmetic, and plain
// JS numbers cannot use SIMD, so this one kernel is hand-assembled
// WebAssembly (f32x4). Assembling it here keeps the source reviewable and
// needs no build step or binary blob. Fixed order of operations: deterministic.

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function wasmName(s: string): number[] {
  return [...uleb(s.length), ...new TextEncoder().encode(s)];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

// Instruction helpers for the hand-assembled module.
const get = (i: number) => [0x20, ...uleb(i)];
const set = (i: number) => [0x21, ...uleb(i)];
const simd = (op: number, ...imm: number[]) => [0xfd, ...uleb(op), ...imm];
const i32c = (n: number) => [0x41, ...sleb(n)];
const V_LOAD = 0x00, V_STORE = 0x0b, F32X4_SPLAT = 0x13, EXTRACT = 0x1f;
const F32X4_ADD = 0xe4, F32X4_MUL = 0xe6;
const I32_ADD = 0x6a,
  I32_MUL = 0x6c,
  I32_LT_U = 0x49,
  F32_ADD = 0x92;
const I32_LOAD = [0x28, 2, 0],
  F32_LOAD = (off: number) => [0x2a, 2, ...uleb(off)];
const F32_STORE = (off: number) => [0x38, 2, ...uleb(off)];
const VLOAD = simd(V_LOAD, 2, 0), VSTORE = simd(V_STORE, 2, 0);
const LOOP = [0x03, 0x40], END = 0x0b;
const brIfLt = (
  a: number,
  b: number,
) => [...get(a), ...get(b), I32_LT_U, 0x0d, 0];
const add = (
  a: number,
  b: number,
  out: number,
) => [...get(a), ...get(b), I32_ADD, ...set(out)];
const inc = (
  a: number,
  n: number,
) => [...get(a), ...i32c(n), I32_ADD, ...set(a)];
const hsum = (v: number) => [
  ...get(v),
  ...simd(EXTRACT, 0),
  ...get(v),
  ...simd(EXTRACT, 1),
  F32_ADD,
  ...get(v),
  ...simd(EXTRACT, 2),
  F32_ADD,
  ...get(v),
  ...simd(EXTRACT, 3),
  F32_ADD,
];

/**
 * `enc(xc, nb, w, b, pre)`: for `4*nb` rows at `xc` ([4nb,D] f32) and the F
 * rows of `w` ([F,D] f32, i.e. W_encᵀ), writes `pre[r*F + j] = xc[r]·w[j] +
 * b[j]`. Needs D % 4 == 0 and F even; D and F are baked in so row strides are
 * immediate load offsets. Latent pairs are the outer loop so each pair of
 * weight rows stays in L1 while the row chunk (in L2) streams past it: the
 * whole W_encᵀ is read from memory once per chunk instead of once per 4 rows.
 */
// deno-fmt-ignore
function encBody(D: number, F: number): number[] {
  const Db = D * 4, Fb = F * 4;
  const unroll = D % 8 === 0 ? 2 : 1;
  const [XC, NB, W, Bb, PRE] = [0, 1, 2, 3, 4];
  const [WP, JB, DD, RB, XP, PP, WA, XA, P0] = [5, 6, 7, 8, 9, 10, 11, 12, 13];
  const [U, V, XR] = [14, 15, 16];
  const A = [17, 18, 19, 20], C = [21, 22, 23, 24];
  const zero = simd(0x0c, ...new Array(16).fill(0));
  const vload = (off: number) => simd(V_LOAD, 2, ...uleb(off));
  return [
    2, 9, 0x7f, 11, 0x7b, // locals
    ...get(W), ...set(WP), ...i32c(0), ...set(JB),
    ...LOOP, // latent pairs (j, j+1)
      ...get(XC), ...set(XP), ...get(PRE), ...set(PP), ...i32c(0), ...set(RB),
      ...LOOP, // blocks of 4 rows
        ...[...A, ...C].flatMap((a) => [...zero, ...set(a)]),
        ...i32c(0), ...set(DD),
        ...LOOP, // d, 4 lanes at a time
          ...add(WP, DD, WA), ...add(XP, DD, XA),
          ...[...Array(unroll).keys()].flatMap((u) => [
            ...get(WA), ...vload(16 * u), ...set(U),
            ...get(WA), ...vload(Db + 16 * u), ...set(V),
            ...[0, 1, 2, 3].flatMap((r) => [
              ...get(XA), ...vload(r * Db + 16 * u), ...set(XR),
              ...get(A[r]), ...get(XR), ...get(U), ...simd(F32X4_MUL), ...simd(F32X4_ADD), ...set(A[r]),
              ...get(C[r]), ...get(XR), ...get(V), ...simd(F32X4_MUL), ...simd(F32X4_ADD), ...set(C[r]),
            ]),
          ]),
          ...inc(DD, 16 * unroll), ...get(DD), ...i32c(Db), I32_LT_U, 0x0d, 0,
        END,
        ...add(PP, JB, P0),
        ...[0, 1, 2, 3].flatMap((r) => [
          ...get(P0), ...hsum(A[r]), ...get(Bb), ...get(JB), I32_ADD, ...F32_LOAD(0), F32_ADD,
          ...F32_STORE(r * Fb),
          ...get(P0), ...hsum(C[r]), ...get(Bb), ...get(JB), I32_ADD, ...F32_LOAD(4), F32_ADD,
          ...F32_STORE(r * Fb + 4),
        ]),
        ...inc(XP, 4 * Db), ...inc(PP, 4 * Fb),
        ...inc(RB, 1), ...brIfLt(RB, NB),
      END,
      ...inc(WP, 2 * Db),
      ...inc(JB, 8), ...get(JB), ...i32c(Fb), I32_LT_U, 0x0d, 0,
    END,
    END,
  ];
}

/**
 * `dec(n4, idx, coef, out, Wd, Db)`: `out += Σ_a coef[a] Wd[idx[a]]` over
 * `n4 / 4 >= 1` entries (i32 `idx`, f32 `coef`), rows of `Db` bytes.
 */
// deno-fmt-ignore
function decBody(): number[] {
  const [N4, IDX, COEF, OUT, WD, DB] = [0, 1, 2, 3, 4, 5];
  const [AA, O, VV, AD] = [6, 7, 8, 9];
  const CS = 10;
  return [
    2, 4, 0x7f, 1, 0x7b,
    ...i32c(0), ...set(AA),
    ...LOOP,
      ...get(IDX), ...get(AA), I32_ADD, ...I32_LOAD, ...get(DB), I32_MUL, ...get(WD), I32_ADD, ...set(O),
      ...get(COEF), ...get(AA), I32_ADD, ...F32_LOAD(0), ...simd(F32X4_SPLAT), ...set(CS),
      ...i32c(0), ...set(VV),
      ...LOOP,
        ...add(OUT, VV, AD),
        ...get(AD), ...get(AD), ...VLOAD, ...get(CS), ...get(O), ...get(VV), I32_ADD, ...VLOAD,
        ...simd(F32X4_MUL), ...simd(F32X4_ADD), ...VSTORE,
        ...inc(VV, 16), ...brIfLt(VV, DB),
      END,
      ...inc(AA, 4), ...brIfLt(AA, N4),
    END,
    END,
  ];
}

/**
 * `bwd(n4, idx, coef, g, xc, gxc, Wd, gWd, WT, gWT, gbe, Db, add)`: the
 * sparse backward pass of {@linkcode Workspace.backward} over `n4 / 4 >= 1`
 * latents.
 */
// deno-fmt-ignore
function bwdBody(): number[] {
  const [N4, IDX, COEF, G, XC, GXC, WD, GWD, WT, GWT, GBE, DB, ADD] =
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  const [AA, O, VV, JB, AD] = [13, 14, 15, 16, 17];
  const GF = 18;
  const [CS, ACC, GS, GV] = [19, 20, 21, 22];
  return [
    3, 5, 0x7f, 1, 0x7d, 4, 0x7b,
    ...i32c(0), ...set(AA),
    ...LOOP,
      ...get(IDX), ...get(AA), I32_ADD, ...I32_LOAD, ...set(JB),
      ...get(JB), ...get(DB), I32_MUL, ...set(O),
      ...get(JB), ...i32c(4), I32_MUL, ...set(JB),
      ...get(COEF), ...get(AA), I32_ADD, ...F32_LOAD(0), ...simd(F32X4_SPLAT), ...set(CS),
      ...simd(0x0c, ...new Array(16).fill(0)), ...set(ACC),
      ...i32c(0), ...set(VV),
      ...LOOP, // gpre partial sums and gW_dec[j] += c g
        ...get(G), ...get(VV), I32_ADD, ...VLOAD, ...set(GV),
        ...get(ACC), ...get(GV), ...get(WD), ...get(O), I32_ADD, ...get(VV), I32_ADD, ...VLOAD,
        ...simd(F32X4_MUL), ...simd(F32X4_ADD), ...set(ACC),
        ...get(GWD), ...get(O), I32_ADD, ...get(VV), I32_ADD, ...set(AD),
        ...get(AD), ...get(AD), ...VLOAD, ...get(CS), ...get(GV), ...simd(F32X4_MUL), ...simd(F32X4_ADD), ...VSTORE,
        ...inc(VV, 16), ...brIfLt(VV, DB),
      END,
      ...hsum(ACC), ...get(ADD), F32_ADD, ...set(GF),
      ...get(GBE), ...get(JB), I32_ADD, ...set(AD),
      ...get(AD), ...get(AD), ...F32_LOAD(0), ...get(GF), F32_ADD, ...F32_STORE(0),
      ...get(GF), ...simd(F32X4_SPLAT), ...set(GS),
      ...i32c(0), ...set(VV),
      ...LOOP, // gW_encᵀ[j] += gpre xc; gxc += gpre W_encᵀ[j]
        ...get(GWT), ...get(O), I32_ADD, ...get(VV), I32_ADD, ...set(AD),
        ...get(AD), ...get(AD), ...VLOAD, ...get(GS), ...get(XC), ...get(VV), I32_ADD, ...VLOAD,
        ...simd(F32X4_MUL), ...simd(F32X4_ADD), ...VSTORE,
        ...get(GXC), ...get(VV), I32_ADD, ...set(AD),
        ...get(AD), ...get(AD), ...VLOAD, ...get(GS), ...get(WT), ...get(O), I32_ADD, ...get(VV), I32_ADD, ...VLOAD,
        ...simd(F32X4_MUL), ...simd(F32X4_ADD), ...VSTORE,
        ...inc(VV, 16), ...brIfLt(VV, DB),
      END,
      ...inc(AA, 4), ...brIfLt(AA, N4),
    END,
    END,
  ];
}

/** The module: imports memory `e.m`, exports `enc`, `dec` and `bwd`. */
// deno-fmt-ignore
function simdModule(D: number, F: number): Uint8Array<ArrayBuffer> {
  const fn = (params: number[]) => [0x60, params.length, ...params, 0];
  const I = 0x7f;
  const bodies = [encBody(D, F), decBody(), bwdBody()].map((b) => [...uleb(b.length), ...b]);
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [3, ...fn(new Array(5).fill(I)), ...fn(new Array(6).fill(I)),
      ...fn([...new Array(12).fill(I), 0x7d])]),
    ...section(2, [1, ...wasmName("e"), ...wasmName("m"), 0x02, 0x00, 1]),
    ...section(3, [3, 0, 1, 2]),
    ...section(7, [3, ...wasmName("enc"), 0x00, 0, ...wasmName("dec"), 0x00, 1,
      ...wasmName("bwd"), 0x00, 2]),
    ...section(10, [3, ...bodies.flat()]),
  ]);
}

/**
 * Parameters, gradients and per-row scratch, with the three hot kernels.
 * List 0 is the active latents (`actIdx`/`actVal`, residual `e`, its
 * gradient `ge`); list 1 is AuxK (`auxIdx`/`auxVal`, scaled residual `rr`).
 */
interface Workspace {
  Wd: Float32Array;
  WT: Float32Array;
  be: Float32Array;
  gWd: Float32Array;
  gWT: Float32Array;
  gbe: Float32Array;
  xc: Float32Array;
  pre: Float32Array;
  e: Float32Array;
  ge: Float32Array;
  gxc: Float32Array;
  rr: Float32Array;
  actIdx: Int32Array;
  actVal: Float32Array;
  auxIdx: Int32Array;
  auxVal: Float32Array;
  /** `pre[r] = xc[r] W_encᵀ + b_enc` for the first `nr` rows of the chunk. */
  encode(nr: number): void;
  /** List 0: `e += Σ f_j W_dec[j]`; list 1: `rr += Σ z_j W_dec[j]`. */
  decode(list: 0 | 1, n: number): void;
  /**
   * For each listed latent j with coefficient c and output gradient g
   * (`ge` or `rr`): `gW_dec[j] += c g`, `gpre = g·W_dec[j] + add`,
   * `gb_enc[j] += gpre`, `gW_encᵀ[j] += gpre xc[r]`, `gxc += gpre W_encᵀ[j]`.
   */
  backward(list: 0 | 1, n: number, add: number, r: number): void;
}

function jsWorkspace(
  D: number,
  F: number,
  actCap: number,
  auxCap: number,
): Workspace {
  const w = {
    Wd: new Float32Array(F * D),
    WT: new Float32Array(F * D),
    be: new Float32Array(F),
    gWd: new Float32Array(F * D),
    gWT: new Float32Array(F * D),
    gbe: new Float32Array(F),
    xc: new Float32Array(RC * D),
    pre: new Float32Array(RC * F),
    e: new Float32Array(D),
    ge: new Float32Array(D),
    gxc: new Float32Array(D),
    rr: new Float32Array(D),
    actIdx: new Int32Array(actCap),
    actVal: new Float32Array(actCap),
    auxIdx: new Int32Array(Math.max(auxCap, 1)),
    auxVal: new Float32Array(Math.max(auxCap, 1)),
  };
  const { Wd, WT, gWd, gWT, gbe, xc, gxc } = w;
  return {
    ...w,
    encode(nr) {
      for (let b = 0; b * R < nr; b++) {
        encodeBlock(xc, WT, w.be, w.pre, Math.min(R, nr - b * R), D, F, b * R);
      }
    },
    decode(list, n) {
      const idx = list === 0 ? w.actIdx : w.auxIdx;
      const val = list === 0 ? w.actVal : w.auxVal;
      const out = list === 0 ? w.e : w.rr;
      for (let a = 0; a < n; a++) {
        const c = val[a], o = idx[a] * D;
        for (let d = 0; d < D; d++) out[d] += c * Wd[o + d];
      }
    },
    backward(list, n, add, r) {
      const idx = list === 0 ? w.actIdx : w.auxIdx;
      const val = list === 0 ? w.actVal : w.auxVal;
      const g = list === 0 ? w.ge : w.rr;
      const co = r * D;
      for (let a = 0; a < n; a++) {
        const c = val[a], j = idx[a], o = j * D;
        let gp = 0;
        for (let d = 0; d < D; d++) {
          gp += g[d] * Wd[o + d];
          gWd[o + d] += c * g[d];
        }
        gp += add;
        gbe[j] += gp;
        for (let d = 0; d < D; d++) {
          gWT[o + d] += gp * xc[co + d];
          gxc[d] += gp * WT[o + d];
        }
      }
    },
  };
}

/** The same workspace in WASM memory with SIMD kernels, or null if unusable. */
function simdWorkspace(
  D: number,
  F: number,
  actCap: number,
  auxCap: number,
): Workspace | null {
  if (D % 4 !== 0 || F % 2 !== 0) return null;
  const bytes = simdModule(D, F);
  if (!WebAssembly.validate(bytes)) return null;
  let top = 0;
  const alloc = (n: number) => {
    const off = top;
    top += Math.ceil((n * 4) / 16) * 16;
    return off;
  };
  const o = {
    Wd: alloc(F * D),
    WT: alloc(F * D),
    be: alloc(F),
    gWd: alloc(F * D),
    gWT: alloc(F * D),
    gbe: alloc(F),
    xc: alloc(RC * D),
    pre: alloc(RC * F),
    e: alloc(D),
    ge: alloc(D),
    gxc: alloc(D),
    rr: alloc(D),
    actIdx: alloc(actCap),
    actVal: alloc(actCap),
    auxIdx: alloc(Math.max(auxCap, 1)),
    auxVal: alloc(Math.max(auxCap, 1)),
  };
  if (top > 2 ** 31) return null;
  const memory = new WebAssembly.Memory({ initial: Math.ceil(top / 65536) });
  const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
    e: { m: memory },
  });
  const { enc, dec, bwd } = inst.exports as Record<
    string,
    (...a: number[]) => void
  >;
  const buf = memory.buffer;
  const f32 = (off: number, n: number) => new Float32Array(buf, off, n);
  const w = {
    Wd: f32(o.Wd, F * D),
    WT: f32(o.WT, F * D),
    be: f32(o.be, F),
    gWd: f32(o.gWd, F * D),
    gWT: f32(o.gWT, F * D),
    gbe: f32(o.gbe, F),
    xc: f32(o.xc, RC * D),
    pre: f32(o.pre, RC * F),
    e: f32(o.e, D),
    ge: f32(o.ge, D),
    gxc: f32(o.gxc, D),
    rr: f32(o.rr, D),
    actIdx: new Int32Array(buf, o.actIdx, actCap),
    actVal: f32(o.actVal, actCap),
    auxIdx: new Int32Array(buf, o.auxIdx, Math.max(auxCap, 1)),
    auxVal: f32(o.auxVal, Math.max(auxCap, 1)),
  };
  const Db = D * 4;
  return {
    ...w,
    encode(nr) {
      const nb = Math.ceil(nr / R);
      w.xc.fill(0, nr * D, nb * R * D); // pad rows: finite values, results unused
      enc(o.xc, nb, o.WT, o.be, o.pre);
    },
    decode(list, n) {
      if (n === 0) return;
      if (list === 0) dec(n * 4, o.actIdx, o.actVal, o.e, o.Wd, Db);
      else dec(n * 4, o.auxIdx, o.auxVal, o.rr, o.Wd, Db);
    },
    backward(list, n, add, r) {
      if (n === 0) return;
      const x = o.xc + r * Db;
      if (list === 0) {
        bwd(
          n * 4,
          o.actIdx,
          o.actVal,
          o.ge,
          x,
          o.gxc,
          o.Wd,
          o.gWd,
          o.WT,
          o.gWT,
          o.gbe,
          Db,
          add,
        );
      } else {bwd(
          n * 4,
          o.auxIdx,
          o.auxVal,
          o.rr,
          x,
          o.gxc,
          o.Wd,
          o.gWd,
          o.WT,
          o.gWT,
          o.gbe,
          Db,
          add,
        );}
    },
  };
}
