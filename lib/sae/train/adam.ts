/**
 * The optimiser: Adam in PyTorch's formulation, and the decoder's unit-norm
 * constraint around it.
 *
 * @module
 */

/** Adam's settings and its bias corrections at step `t` (from 1). */
export interface AdamStep {
  /** `lr / (1 − β1^t)`. */
  stepSize: number;
  /** `√(1 − β2^t)`. */
  bc2s: number;
  /** β1. */
  b1: number;
  /** β2. */
  b2: number;
  /** ε. */
  eps: number;
}

/**
 * The Adam step at step `t` (from 1) with learning rate `lr`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { adam, adamStep } from "./adam.ts";
 * const p = new Float32Array([1]), m = new Float32Array(1), v = new Float32Array(1);
 * adam(p, new Float32Array([2]), m, v, adamStep(1, 0.1, 0.9, 0.999, 1e-8));
 * assert.ok(Math.abs(p[0] - 0.9) < 1e-6); // the first step moves by lr
 * ```
 */
export function adamStep(
  t: number,
  lr: number,
  b1: number,
  b2: number,
  eps: number,
): AdamStep {
  return {
    stepSize: lr / (1 - b1 ** t),
    bc2s: Math.sqrt(1 - b2 ** t),
    b1,
    b2,
    eps,
  };
}

/** One Adam update of `p` from gradient `g` and moments `m`, `v`. See {@linkcode adamStep}. */
export function adam(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  s: AdamStep,
): void {
  const { stepSize, bc2s, b1, b2, eps } = s;
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

/**
 * Drop from each row of `gW` `[F, D]` its component along the unit row of `W`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dropParallel } from "./adam.ts";
 * const g = new Float32Array([3, 4]);
 * dropParallel(g, new Float32Array([1, 0]), 2, 1);
 * assert.deepEqual([...g], [0, 4]);
 * ```
 */
export function dropParallel(
  gW: Float32Array,
  W: Float32Array,
  D: number,
  F: number,
): void {
  for (let j = 0; j < F; j++) {
    const o = j * D;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += gW[o + d] * W[o + d];
    if (dot !== 0) {
      for (let d = 0; d < D; d++) gW[o + d] -= dot * W[o + d];
    }
  }
}

/**
 * Scale each non-zero row of `W` `[F, D]` to unit norm.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unitRows } from "./adam.ts";
 * const W = new Float32Array([0, 2, 0, 0]);
 * unitRows(W, 2, 2);
 * assert.deepEqual([...W], [0, 1, 0, 0]); // a zero row stays zero
 * ```
 */
export function unitRows(W: Float32Array, D: number, F: number): void {
  for (let j = 0; j < F; j++) {
    const o = j * D;
    let s = 0;
    for (let d = 0; d < D; d++) s += W[o + d] * W[o + d];
    if (s > 0) {
      const inv = 1 / Math.sqrt(s);
      for (let d = 0; d < D; d++) W[o + d] *= inv;
    }
  }
}
