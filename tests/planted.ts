/**
 * Planted dictionaries: rows that are sparse non-negative mixes of known unit
 * atoms, so an SAE's decoder can be scored against the truth (MMCS).
 *
 * @module
 */
import { Rng } from "../lib/rng.ts";
import type { RowSource } from "../lib/sae/train/trainer.ts";

/** The shape of a planted dictionary. */
export interface PlantedShape {
  /** Row width D. */
  dim: number;
  /** Number of true atoms. */
  atoms: number;
  /** Distinct atoms active in each row. */
  active: number;
  /** Rows. */
  rows: number;
}

/** A planted dataset: the true atoms `[atoms, D]` and the rows. */
export interface Planted {
  atoms: Float32Array;
  source: RowSource;
}

/**
 * Rows `x = Σ c_a atom_a` over `active` distinct atoms drawn uniformly, with
 * magnitudes `c` Pareto(α = 2.5, x_m = 1) (non-negative, heavy-tailed; the
 * default) or `0.5 + |N(0, 1)|` (`"halfnormal"`), scaled so that
 * `E‖x‖² = scale · D`. `seed` feeds the data's own stream (stream 11), never
 * one the trainer uses (`Rng(seed, 0)` and `Rng(seed, 1)`).
 */
export function planted(
  shape: PlantedShape,
  scale: number,
  opts: { magnitudes?: "pareto" | "halfnormal"; seed?: number } = {},
): Planted {
  const { dim: D, atoms: A, active: K, rows: N } = shape;
  const alpha = 2.5;
  const pareto = (opts.magnitudes ?? "pareto") === "pareto";
  const rng = new Rng(opts.seed ?? 7, 11);
  const atoms = new Float32Array(A * D);
  for (let a = 0; a < A; a++) {
    let s = 0;
    for (let d = 0; d < D; d++) {
      const v = rng.normal();
      atoms[a * D + d] = v;
      s += v * v;
    }
    for (let d = 0; d < D; d++) atoms[a * D + d] /= Math.sqrt(s);
  }
  const x = new Float32Array(N * D);
  for (let r = 0; r < N; r++) {
    const used = new Set<number>();
    while (used.size < K) used.add(rng.int(A));
    for (const a of used) {
      // Inverse CDF of Pareto(α, 1): (1 − u)^(−1/α), u in [0, 1).
      const c = pareto
        ? (1 - rng.float()) ** (-1 / alpha)
        : 0.5 + Math.abs(rng.normal());
      for (let d = 0; d < D; d++) x[r * D + d] += c * atoms[a * D + d];
    }
  }
  let e2 = 0;
  for (const v of x) e2 += v * v;
  const f = Math.sqrt((scale * D) / (e2 / N));
  for (let i = 0; i < x.length; i++) x[i] *= f;
  return {
    atoms,
    source: {
      n: N,
      dim: D,
      rows(ix, out) {
        for (let i = 0; i < ix.length; i++) {
          out.set(x.subarray(ix[i] * D, (ix[i] + 1) * D), i * D);
        }
      },
    },
  };
}

/** Mean over the true atoms of the best cosine with a decoder row (MMCS). */
export function mmcs(
  atoms: Float32Array,
  W_dec: Float32Array,
  D: number,
): number {
  const A = atoms.length / D, F = W_dec.length / D;
  const inv = new Float64Array(F);
  for (let j = 0; j < F; j++) {
    let n2 = 0;
    for (let d = 0; d < D; d++) n2 += W_dec[j * D + d] ** 2;
    inv[j] = n2 > 0 ? 1 / Math.sqrt(n2) : 0;
  }
  let total = 0;
  for (let a = 0; a < A; a++) {
    let best = 0;
    for (let j = 0; j < F; j++) {
      let dot = 0;
      for (let d = 0; d < D; d++) dot += atoms[a * D + d] * W_dec[j * D + d];
      best = Math.max(best, Math.abs(dot) * inv[j]);
    }
    total += best;
  }
  return total / A;
}
