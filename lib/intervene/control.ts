/**
 * The control of the cumulative curve: at each point, random alive features
 * outside the candidates whose summed activation mass matches the top k's,
 * ablated together. A drop the control also shows is expected of any
 * ablation that removes that much of the SAE's activation; only the excess
 * over it is specific to the ranked features.
 *
 * @module
 */
import type { CumulativeAblation } from "../schema/mod.ts";
import type { BareCumulative } from "./ranking.ts";
import { Rng } from "../rng.ts";
import { round7 } from "../round.ts";
import type { AblationRunner } from "./batched.ts";
import { ablationEffect, median, referencePool } from "./ranking.ts";

/** Relative mass mismatch a k-feature draw may keep before it takes more features. */
const MASS_TOLERANCE = 0.05;

/**
 * Draw a set of features from `pool` whose summed `activity` matches
 * `target`: `k` features, improved by seeded swaps towards the target; when
 * no `k` of the pool come within 5 % of it, more features are added at
 * random until the mass reaches it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { matchedDraw } from "./control.ts";
 * import { Rng } from "../rng.ts";
 * const activity = new Float32Array([0, 4, 1, 1, 1, 1, 2, 2, 0.5, 0.5]);
 * const pool = [2, 3, 4, 5, 6, 7, 8, 9]; // not feature 1 (a candidate), not the dead 0
 * const d = matchedDraw(activity, pool, 2, 3, new Rng(0));
 * assert.equal(d.length, 2);
 * assert.equal(d.reduce((s, f) => s + activity[f], 0), 3); // a 2 and a 1
 * // 4 in one feature is out of reach: it takes more features.
 * const e = matchedDraw(activity, pool, 1, 4, new Rng(0));
 * assert.ok(e.length > 1 && e.reduce((s, f) => s + activity[f], 0) >= 4);
 * ```
 */
export function matchedDraw(
  activity: Float32Array,
  pool: readonly number[],
  k: number,
  target: number,
  rng: Rng,
): number[] {
  const n = Math.min(k, pool.length);
  const pick = rng.sample(pool.length, n);
  const inSet = new Set(pick);
  let mass = pick.reduce((s, i) => s + activity[pool[i]], 0);
  // Seeded local search: swap one member for an outsider when it brings
  // the mass closer to the target.
  const outside = () => pool.length - inSet.size;
  for (let it = 0; it < 64 * pool.length && outside() > 0; it++) {
    if (Math.abs(mass - target) <= MASS_TOLERANCE * target) break;
    const slot = rng.int(pick.length);
    let j = rng.int(pool.length);
    while (inSet.has(j)) j = (j + 1) % pool.length;
    const next = mass - activity[pool[pick[slot]]] + activity[pool[j]];
    if (Math.abs(next - target) < Math.abs(mass - target)) {
      inSet.delete(pick[slot]);
      inSet.add(j);
      pick[slot] = j;
      mass = next;
    }
  }
  // Too little mass in any k of the pool: add features until it matches.
  if (mass < (1 - MASS_TOLERANCE) * target) {
    const rest = rng.shuffle(
      Array.from(pool.keys()).filter((i) => !inSet.has(i)),
    );
    for (const i of rest) {
      if (mass >= (1 - MASS_TOLERANCE) * target) break;
      pick.push(i);
      mass += activity[pool[i]];
    }
  }
  return pick.map((i) => pool[i]).sort((a, b) => a - b);
}

/**
 * Add the control to each point of `curve`: the top k of `ranked` (the
 * ranking's order) carry a mass (their summed mean activation); `draws`
 * mass-matched sets drawn with `Rng(seed, 5)` from the alive features
 * outside `ranked` are each ablated together at the curve's steps, and
 * their median effects are reported beside the point.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { AblationRunner } from "./batched.ts";
 * import { controlCurve } from "./control.ts";
 * // A stand-in runner: one example of 8 positions, all right at baseline;
 * // ablating features breaks one position per feature.
 * const outcome = (broken: number) => ({ S: 8, V: 2, examples: [{ example: "a", label: [1, 1, 1, 1, 1, 1, 1, 1],
 *   pred: [0, 1, 2, 3, 4, 5, 6, 7].map((s) => s < broken ? 0 : 1), predPerSup: [], haltStep: 0,
 *   logits: new Float32Array(16) }] });
 * const runner = {
 *   session: { plan: { selector: null } },
 *   baseline: () => Promise.resolve(outcome(0)),
 *   run: (jobs: { features: number[] }[]) => Promise.resolve(jobs.map((j) => outcome(j.features.length))),
 * } as unknown as AblationRunner;
 * const activity = new Float32Array([3, 1, 1, 1, 1, 1, 1]);
 * const curve = { metric: "", half_effect_k: 1, points: [{ k: 1, effect: 0.125, normalized_effect: 0.125, mean_kl: 0,
 *   exact_drop: 1 }] };
 * const c = await controlCurve(runner, curve, [0], activity, 2, 0);
 * const p = c.points[0];
 * assert.equal(p.mass, 3); // feature 0's
 * assert.equal(p.control.draws.length, 2);
 * assert.ok(p.control.draws.every((d) => d.features.length === 3)); // three of mass 1
 * assert.equal(p.control.median_effect, 0.375);
 * ```
 */
export async function controlCurve(
  runner: AblationRunner,
  curve: BareCumulative,
  ranked: readonly number[],
  activity: Float32Array,
  draws: number,
  seed: number,
  onProgress?: (done: number, total: number) => void,
): Promise<CumulativeAblation> {
  const pool = referencePool(activity, ranked);
  const rng = new Rng(seed, 5);
  const total = Array.from(activity).reduce((s, a) => s + a, 0);
  const sets = curve.points.map((p) => {
    const mass = ranked.slice(0, p.k).reduce((s, f) => s + activity[f], 0);
    return {
      mass,
      draws: pool.length && mass > 0
        ? Array.from(
          { length: draws },
          () => matchedDraw(activity, pool, p.k, mass, rng),
        )
        : [],
    };
  });
  const base = await runner.baseline();
  const where = runner.session.plan.selector;
  const outs = await runner.run(
    sets.flatMap((s) => s.draws.map((features) => ({ features, where }))),
    onProgress,
  );
  let o = 0;
  const points = curve.points.map((p, i) => {
    const d = sets[i].draws.map((features) => {
      const e = ablationEffect(base, outs[o++]);
      return {
        features,
        mass: round7(features.reduce((s, f) => s + activity[f], 0)),
        effect: e.effect,
        mean_kl: e.kl,
        exact_drop: e.exact,
      };
    });
    return {
      ...p,
      mass: round7(sets[i].mass),
      mass_fraction: total > 0 ? round7(sets[i].mass / total) : 0,
      control: {
        draws: d,
        median_effect: median(d.map((x) => x.effect)),
        median_kl: median(d.map((x) => x.mean_kl)),
        median_exact_drop: median(d.map((x) => x.exact_drop)),
      },
    };
  });
  return { ...curve, points };
}
