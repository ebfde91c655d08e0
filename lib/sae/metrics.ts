/**
 * SAE quality metrics on a held-out set, streamed in chunks of rows. Every
 * metric carries its formula so `sae_metrics.json` is self-describing.
 *
 * @module
 */

import type { DensityHistogram, SAEMetrics } from "../schema/mod.ts";
import { InputError } from "../errors.ts";
import type { SAE } from "./sae.ts";
import type { RowSource } from "./train/trainer.ts";

/**
 * A metric value with the formula that produced it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Metric, saeMetrics } from "./metrics.ts";
 * import { SAE } from "./sae.ts";
 * // An all-zero SAE reconstructs every row as 0: FVU = Σ‖x‖² / Σ‖x−x̄‖².
 * const data = new Float32Array([2, 0, 0, 2]); // mean [1, 1]: Σ‖x‖² = 8, Σ‖x−x̄‖² = 4
 * const src = { n: 2, dim: 2, rows: (ix: Int32Array, out: Float32Array) =>
 *   ix.forEach((r, i) => out.set(data.subarray(r * 2, r * 2 + 2), i * 2)) };
 * const fvu: Metric<number> = saeMetrics(new SAE({ arch: "relu", d_in: 2, d_sae: 2 }), src).fvu;
 * assert.equal(fvu.value, 2);
 * assert.match(fvu.formula, /x̂/);
 * ```
 */
export interface Metric<T> {
  /** The value. */
  value: T;
  /** Short human-readable formula. */
  formula: string;
}

/** Histogram edges: −6 to 0 in steps of 0.5. */
const EDGES = Array.from({ length: 13 }, (_, i) => -6 + i * 0.5);

/**
 * Evaluate `sae` on rows `indices` of `source` (default: all rows), in two
 * streamed passes: the first runs the SAE and accumulates everything but the
 * total variance, the second computes `Σ‖x − x̄‖²` around the evaluation-set
 * mean (no SAE work). Memory is one chunk of rows.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SAE } from "./sae.ts";
 * import { saeMetrics } from "./metrics.ts";
 * const data = new Float32Array([1, 0, 0, 1, 1, 1]);
 * const src = {
 *   n: 3,
 *   dim: 2,
 *   rows(ix: Int32Array, out: Float32Array) {
 *     ix.forEach((r, i) => out.set(data.subarray(r * 2, r * 2 + 2), i * 2));
 *   },
 * };
 * const sae = new SAE({ arch: "relu", d_in: 2, d_sae: 2 });
 * sae.W_enc.set([1, 0, 0, 1]);
 * sae.W_dec.set([1, 0, 0, 1]);
 * const m = saeMetrics(sae, src);
 * assert(m.fvu.value === 0 && m.l0.value === 4 / 3);
 * ```
 */
export function saeMetrics(
  sae: SAE,
  source: RowSource,
  indices?: Int32Array,
  chunk = 256,
): SAEMetrics {
  const { d_in: D, d_sae: F } = sae.cfg;
  if (source.dim !== D) {
    throw new InputError(
      `sae metrics: source dim ${source.dim} != sae d_in ${D}`,
    );
  }
  const ix = indices ?? Int32Array.from({ length: source.n }, (_, i) => i);
  const n = ix.length;
  if (n < 1) throw new InputError("sae metrics: no evaluation rows");
  const buf = new Float32Array(chunk * D);
  const fires = new Float64Array(F);
  const sum = new Float64Array(D);
  let sse = 0, l0 = 0, l1 = 0, cosSum = 0, xhatSq = 0, xhatDotX = 0;

  for (let s = 0; s < n; s += chunk) {
    const sub = ix.subarray(s, Math.min(n, s + chunk));
    const m = sub.length;
    const x = buf.subarray(0, m * D);
    source.rows(sub, x);
    const a = sae.encode(x);
    const xh = sae.decode(a);
    for (let r = 0; r < m; r++) {
      for (let j = 0; j < F; j++) {
        const f = a[r * F + j];
        if (f !== 0) {
          fires[j]++;
          l0++;
          l1 += Math.abs(f);
        }
      }
      let xx = 0, hh = 0, hx = 0, ee = 0;
      for (let d = 0; d < D; d++) {
        const xv = x[r * D + d], hv = xh[r * D + d];
        sum[d] += xv;
        xx += xv * xv;
        hh += hv * hv;
        hx += hv * xv;
        ee += (xv - hv) * (xv - hv);
      }
      sse += ee;
      xhatSq += hh;
      xhatDotX += hx;
      cosSum += xx > 0 && hh > 0 ? hx / Math.sqrt(xx * hh) : 0;
    }
  }

  for (let d = 0; d < D; d++) sum[d] /= n;
  let sst = 0;
  for (let s = 0; s < n; s += chunk) {
    const sub = ix.subarray(s, Math.min(n, s + chunk));
    const x = buf.subarray(0, sub.length * D);
    source.rows(sub, x);
    for (let i = 0; i < x.length; i++) {
      const t = x[i] - sum[i % D];
      sst += t * t;
    }
  }

  let dead = 0, dense1 = 0, dense10 = 0;
  const counts = new Array(EDGES.length - 1).fill(0);
  for (let j = 0; j < F; j++) {
    const density = fires[j] / n;
    if (density === 0) {
      dead++;
      continue;
    }
    if (density > 0.01) dense1++;
    if (density > 0.1) dense10++;
    const b = Math.floor((Math.log10(density) - EDGES[0]) / 0.5);
    counts[Math.min(counts.length - 1, Math.max(0, b))]++;
  }

  const fvu = sst > 0 ? sse / sst : (sse === 0 ? 0 : Infinity);
  return {
    n_rows: n,
    mse: { value: sse / (n * D), formula: "Σ_rows ‖x − x̂‖² / (N·D)" },
    fvu: {
      value: fvu,
      formula: "Σ‖x − x̂‖² / Σ‖x − x̄‖², x̄ = mean of x over the evaluation rows",
    },
    explained_variance: { value: 1 - fvu, formula: "1 − FVU" },
    l0: { value: l0 / n, formula: "mean over rows of #{j : f_j ≠ 0}" },
    l1: { value: l1 / n, formula: "mean over rows of Σ_j |f_j|" },
    dead_fraction: {
      value: dead / F,
      formula: "#{j : feature j never fires on the evaluation rows} / F",
    },
    dense_fraction_1pct: {
      value: dense1 / F,
      formula:
        "#{j : density_j > 0.01} / F, density_j = fraction of rows with f_j ≠ 0",
    },
    dense_fraction_10pct: {
      value: dense10 / F,
      formula: "#{j : density_j > 0.1} / F",
    },
    mean_cosine: {
      value: cosSum / n,
      formula:
        "mean over rows of x·x̂ / (‖x‖‖x̂‖) (0 when either is the zero vector)",
    },
    relative_reconstruction_bias: {
      value: xhatDotX !== 0 ? xhatSq / xhatDotX : NaN,
      formula:
        "γ = argmin_γ′ E‖x̂/γ′ − x‖² = E‖x̂‖² / E[x̂·x] (Rajamanoharan et al. 2024); γ < 1 means shrinkage",
    },
    feature_density_histogram: {
      value: { edges: EDGES.slice(), counts, never: dead },
      formula:
        "features binned by log10(density_j) in [−6, 0] by 0.5 (below −6 → first bin); `never`: density_j = 0",
    },
  };
}

export type { DensityHistogram, SAEMetrics };
