/**
 * The trainer's initial state: the decoder, the input scale and `b_dec`, each
 * from the training rows, streamed.
 *
 * @module
 */
import type { Rng } from "../../rng.ts";

/** Rows of states read by index; see {@linkcode RowSource} in trainer.ts. */
export interface Rows {
  /** Number of rows. */
  n: number;
  /** Row width D. */
  dim: number;
  /** Copy rows `indices` into `out` (`indices.length * dim` floats). */
  rows(indices: Int32Array, out: Float32Array): void;
}

/**
 * Unit-norm Gaussian decoder rows `Wd` `[F, D]` from `rng`, and the
 * (transposed) encoder `WT = Wd`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { initDecoder } from "./init.ts";
 * import { Rng } from "../../rng.ts";
 * const Wd = new Float32Array(6), WT = new Float32Array(6);
 * initDecoder(Wd, WT, 3, 2, new Rng(0));
 * assert.ok(Math.abs(Math.hypot(Wd[0], Wd[1], Wd[2]) - 1) < 1e-6);
 * assert.deepEqual(WT, Wd);
 * ```
 */
export function initDecoder(
  Wd: Float32Array,
  WT: Float32Array,
  D: number,
  F: number,
  rng: Rng,
): void {
  for (let j = 0; j < F; j++) {
    let s = 0;
    for (let d = 0; d < D; d++) {
      const v = rng.normal();
      Wd[j * D + d] = v;
      s += v * v;
    }
    const inv = 1 / Math.sqrt(s);
    for (let d = 0; d < D; d++) Wd[j * D + d] *= inv;
  }
  // The encoder is kept transposed ([F,D], i.e. W_encᵀ) during training so the
  // dense kernel and the sparse gradient rows are contiguous.
  WT.set(Wd);
}

/**
 * `source` with every row multiplied by `scale` (the source itself when 1).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { scaledRows } from "./init.ts";
 * const src = { n: 1, dim: 2, rows: (_: Int32Array, out: Float32Array) => out.set([1, 2]) };
 * const out = new Float32Array(2);
 * scaledRows(src, 2).rows(Int32Array.of(0), out);
 * assert.deepEqual([...out], [2, 4]);
 * ```
 */
export function scaledRows(source: Rows, scale: number): Rows {
  if (scale === 1) return source;
  const D = source.dim;
  return {
    n: source.n,
    dim: D,
    rows(ix, out) {
      source.rows(ix, out);
      for (let i = 0; i < ix.length * D; i++) out[i] *= scale;
    },
  };
}

/**
 * `√D / mean ‖x‖` over the training rows, streamed, as float32; 1 for
 * all-zero rows.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { inputScale } from "./init.ts";
 * const src = { n: 1, dim: 4, rows: (_: Int32Array, out: Float32Array) => out.set([2, 0, 0, 0]) };
 * assert.equal(inputScale(src, Int32Array.of(0), 1), 1); // ‖x‖ = 2 = √4
 * ```
 */
export function inputScale(
  source: Rows,
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

/**
 * The streamed mean of the training rows, optionally refined to the
 * geometric median by Weiszfeld.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { initBDec } from "./init.ts";
 * const x = [[0, 0], [2, 0], [10, 0]];
 * const src = { n: 3, dim: 2, rows: (ix: Int32Array, out: Float32Array) => ix.forEach((r, i) => out.set(x[r], 2 * i)) };
 * assert.equal(initBDec(src, Int32Array.of(0, 1, 2), 2, "mean")[0], 4);
 * assert.ok(Math.abs(initBDec(src, Int32Array.of(0, 1, 2), 2, "geometric_median")[0] - 2) < 1e-3);
 * ```
 */
export function initBDec(
  source: Rows,
  train: Int32Array,
  chunk: number,
  how: "mean" | "geometric_median",
): Float32Array {
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
