/**
 * The causal ranking of `intervene`: each candidate feature ablated alone on
 * a seeded subsample, random alive features for a reference median, and the
 * cumulative curve of the top-ranked features ablated together. Every
 * ablation runs through one {@linkcode AblationRunner}, batched.
 *
 * @module
 */
import type {
  CausalFeature,
  CumulativeAblation,
  RandomReference,
  SideSummary,
} from "../schema/mod.ts";
import type { OutcomeTrace } from "../model/rollout.ts";
import { Rng } from "../rng.ts";
import type { AblationRunner } from "./batched.ts";
import { Evaluator } from "./evaluate.ts";
import { round7 } from "../round.ts";
import { rankBy } from "../schema/report.ts";
import type { RankBy } from "../schema/mod.ts";

/** The cumulative curve before its control is added (see control.ts). */
export interface BareCumulative {
  /** What the curve measures. */
  metric: string;
  /** The points, without `mass` and `control`. */
  points: Omit<
    CumulativeAblation["points"][number],
    "mass" | "mass_fraction" | "control"
  >[];
  /** See {@linkcode CumulativeAblation}. */
  half_effect_k: number | null;
}

/** The effect of an ablation. */
export interface AblationEffect {
  /** Drop in token accuracy. */
  effect: number;
  /** Mean KL(baseline ‖ ablated). */
  kl: number;
  /** Drop in exact accuracy. */
  exact: number;
}

export type { RankBy };

/**
 * The `--rank-by` values.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RANK_BY, sortRanking } from "./ranking.ts";
 * assert.deepEqual(RANK_BY, ["token", "kl", "exact"]);
 * const r = (feature: number, effect: number, mean_kl: number) =>
 *   ({ feature, effect, mean_kl, normalized_effect: 0, exact_drop: 0, mean_activation: 0 });
 * const orders = RANK_BY.map((by) => sortRanking([r(0, 0.5, 0), r(1, 0, 0.2)], by).map((x) => x.feature));
 * assert.deepEqual(orders, [[0, 1], [1, 0], [0, 1]]);
 * ```
 */
export const RANK_BY: readonly RankBy[] = rankBy.options;

/**
 * The effect of an ablated rollout `out` against the baseline `base`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ablationEffect } from "./ranking.ts";
 * const base = { S: 1, V: 2, examples: [{ example: "a", label: [1], pred: [1], predPerSup: [[1]], haltStep: 0,
 *   logits: new Float32Array([0, 1]) }] };
 * assert.deepEqual(ablationEffect(base, base), { effect: 0, kl: 0, exact: 0 });
 * ```
 */
export function ablationEffect(
  base: OutcomeTrace,
  out: OutcomeTrace,
): AblationEffect {
  const c = Evaluator.compare(base, out);
  return {
    effect: round7(-c.delta.token_acc),
    kl: c.delta.mean_kl,
    exact: round7(-c.delta.exact_acc),
  };
}

/**
 * Sort a ranking by `rankBy` (default `token`): token accuracy drop, then KL,
 * then the lower index; `kl`: KL, then token drop, then index; `exact`: exact
 * drop, then token drop, then KL, then index.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sortRanking } from "./ranking.ts";
 * const r = (feature: number, effect: number, mean_kl: number) =>
 *   ({ feature, effect, mean_kl, normalized_effect: 0, exact_drop: 0, mean_activation: 0 });
 * assert.deepEqual(sortRanking([r(1, 0, 0.1), r(2, 0.5, 0), r(0, 0, 0.1)]).map((x) => x.feature), [2, 0, 1]);
 * assert.deepEqual(sortRanking([r(1, 0, 0.1), r(2, 0.5, 0), r(0, 0, 0.2)], "kl").map((x) => x.feature), [0, 1, 2]);
 * ```
 */
export function sortRanking(
  ranking: CausalFeature[],
  rankBy: RankBy = "token",
): CausalFeature[] {
  const key: Record<RankBy, (a: CausalFeature, b: CausalFeature) => number> = {
    token: (a, b) => b.effect - a.effect || b.mean_kl - a.mean_kl,
    kl: (a, b) => b.mean_kl - a.mean_kl || b.effect - a.effect,
    exact: (a, b) =>
      b.exact_drop - a.exact_drop || b.effect - a.effect ||
      b.mean_kl - a.mean_kl,
  };
  return ranking.sort((a, b) => key[rankBy](a, b) || a.feature - b.feature);
}

/**
 * Each candidate ablated alone on the runner's examples, ranked by `rankBy`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { AblationRunner } from "./batched.ts";
 * // A stand-in runner: one example of 8 positions, all right at baseline;
 * // ablating features breaks hurt[f] of its positions each.
 * const hurt = [0, 1, 3, 2];
 * const outcome = (broken: number) => ({ S: 8, V: 2, examples: [{ example: "a", label: [1, 1, 1, 1, 1, 1, 1, 1],
 *   pred: [0, 1, 2, 3, 4, 5, 6, 7].map((s) => s < broken ? 0 : 1), predPerSup: [], haltStep: 0,
 *   logits: new Float32Array(16) }] });
 * const runner = {
 *   session: { plan: { selector: null } },
 *   baseline: () => Promise.resolve(outcome(0)),
 *   run: (jobs: { features: number[] }[]) =>
 *     Promise.resolve(jobs.map((j) => outcome(j.features.reduce((n, f) => n + hurt[f], 0)))),
 * } as unknown as AblationRunner;
 * import { rankFeatures } from "./ranking.ts";
 * const baseScore = { exact_acc: 1, token_acc: 0.5, acc_per_sup: [], mean_halt_step: 0 };
 * const activity = new Float32Array([0.1, 0.2, 0.3, 0.4]);
 * const ranking = await rankFeatures(runner, baseScore, [0, 1, 2, 3], activity, "token");
 * assert.deepEqual(ranking.map((f) => f.feature), [2, 3, 1, 0]);
 * assert.deepEqual(ranking[0], { feature: 2, effect: 0.375, normalized_effect: 0.75, mean_kl: 0,
 *   exact_drop: 1, mean_activation: 0.3 });
 * assert.equal(ranking[3].exact_drop, 0); // feature 0 breaks nothing
 * ```
 */
export async function rankFeatures(
  runner: AblationRunner,
  baseScore: SideSummary,
  candidates: readonly number[],
  activity: Float32Array,
  rankBy: RankBy,
  onProgress?: (done: number, total: number) => void,
): Promise<CausalFeature[]> {
  const base = await runner.baseline();
  const where = runner.session.plan.selector;
  const outs = await runner.run(
    candidates.map((f) => ({ features: [f], where })),
    onProgress,
  );
  const ranking = candidates.map((f, i): CausalFeature => {
    const e = ablationEffect(base, outs[i]);
    return {
      feature: f,
      effect: e.effect,
      normalized_effect: normalized(e.effect, baseScore),
      mean_kl: e.kl,
      exact_drop: e.exact,
      mean_activation: round7(activity[f]),
    };
  });
  return sortRanking(ranking, rankBy);
}

function normalized(effect: number, base: SideSummary): number {
  return base.token_acc > 0 ? round7(effect / base.token_acc) : 0;
}

/**
 * The `n` reference features drawn (seeded) from {@linkcode referencePool}:
 * the features the random reference ablates.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { referenceDraw } from "./ranking.ts";
 * const a = new Float32Array([0, 1, 2, 0.5, 3]);
 * assert.deepEqual(referenceDraw(a, [2], 5, 0).sort(), [1, 3, 4]); // only 3 alive outside the candidates
 * assert.deepEqual(referenceDraw(a, [2], 2, 7), referenceDraw(a, [2], 2, 7));
 * ```
 */
export function referenceDraw(
  activity: Float32Array,
  exclude: readonly number[],
  n: number,
  seed: number,
): number[] {
  const pool = referencePool(activity, exclude);
  return new Rng(seed, 3).sample(pool.length, Math.min(n, pool.length))
    .map((i) => pool[i]);
}

/**
 * The alive features (activity > 0) that the reference draws from: every
 * alive feature except `exclude` (the ranked candidates), so the reference
 * is read against features the ranking did not pick.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { referencePool } from "./ranking.ts";
 * assert.deepEqual(referencePool(new Float32Array([0, 1, 2, 0.5]), [2]), [1, 3]);
 * ```
 */
export function referencePool(
  activity: Float32Array,
  exclude: readonly number[],
): number[] {
  const skip = new Set(exclude);
  return Array.from(activity.keys()).filter((f) =>
    activity[f] > 0 && !skip.has(f)
  );
}

/**
 * Ablate `n` features drawn with `Rng(seed, 3)` from {@linkcode referencePool},
 * for the reference median a ranked feature is read against.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { AblationRunner } from "./batched.ts";
 * // A stand-in runner: one example of 8 positions, all right at baseline;
 * // ablating features breaks hurt[f] of its positions each.
 * const hurt = [0, 1, 3, 2];
 * const outcome = (broken: number) => ({ S: 8, V: 2, examples: [{ example: "a", label: [1, 1, 1, 1, 1, 1, 1, 1],
 *   pred: [0, 1, 2, 3, 4, 5, 6, 7].map((s) => s < broken ? 0 : 1), predPerSup: [], haltStep: 0,
 *   logits: new Float32Array(16) }] });
 * const runner = {
 *   session: { plan: { selector: null } },
 *   baseline: () => Promise.resolve(outcome(0)),
 *   run: (jobs: { features: number[] }[]) =>
 *     Promise.resolve(jobs.map((j) => outcome(j.features.reduce((n, f) => n + hurt[f], 0)))),
 * } as unknown as AblationRunner;
 * import { randomReference } from "./ranking.ts";
 * const activity = new Float32Array([0, 1, 1, 1]); // feature 0 is dead
 * const ref = await randomReference(runner, activity, [3], 5, 0); // the pool is [1, 2]
 * assert.deepEqual([...ref.features].sort(), [1, 2]);
 * assert.deepEqual(ref.effects, ref.features.map((f) => hurt[f] / 8));
 * assert.equal(ref.median_effect, 0.25);
 * assert.deepEqual(await randomReference(runner, activity, [3], 5, 0), ref); // seeded
 * ```
 */
export async function randomReference(
  runner: AblationRunner,
  activity: Float32Array,
  exclude: readonly number[],
  n: number,
  seed: number,
  onProgress?: (done: number, total: number) => void,
): Promise<RandomReference> {
  const features = referenceDraw(activity, exclude, n, seed);
  const base = await runner.baseline();
  const where = runner.session.plan.selector;
  const outs = await runner.run(
    features.map((f) => ({ features: [f], where })),
    onProgress,
  );
  const effects: number[] = [], kls: number[] = [];
  for (const out of outs) {
    const e = ablationEffect(base, out);
    effects.push(e.effect);
    kls.push(e.kl);
  }
  return {
    features,
    effects,
    median_effect: median(effects),
    kls,
    median_kl: median(kls),
  };
}

/**
 * The prefix sizes of the cumulative curve: 1, 2, 4, 8, … below `n`, then `n`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { curveSizes } from "./ranking.ts";
 * assert.deepEqual(curveSizes(16), [1, 2, 4, 8, 16]);
 * assert.deepEqual(curveSizes(5), [1, 2, 4, 5]);
 * assert.deepEqual(curveSizes(0), []);
 * ```
 */
export function curveSizes(n: number): number[] {
  const out: number[] = [];
  for (let k = 1; k < n; k *= 2) out.push(k);
  if (n > 0) out.push(n);
  return out;
}

/**
 * The cumulative ablation curve: the top `k` ranked features ablated
 * together, for `k` in {@linkcode curveSizes} of the ranking's length (the
 * last point is every ranked candidate at once: the all-feature ablation),
 * and the smallest `k` on the curve whose effect reaches half the
 * all-feature effect (`null` when that effect is not positive).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { AblationRunner } from "./batched.ts";
 * // A stand-in runner: one example of 8 positions, all right at baseline;
 * // ablating features breaks hurt[f] of its positions each.
 * const hurt = [0, 1, 3, 2];
 * const outcome = (broken: number) => ({ S: 8, V: 2, examples: [{ example: "a", label: [1, 1, 1, 1, 1, 1, 1, 1],
 *   pred: [0, 1, 2, 3, 4, 5, 6, 7].map((s) => s < broken ? 0 : 1), predPerSup: [], haltStep: 0,
 *   logits: new Float32Array(16) }] });
 * const runner = {
 *   session: { plan: { selector: null } },
 *   baseline: () => Promise.resolve(outcome(0)),
 *   run: (jobs: { features: number[] }[]) =>
 *     Promise.resolve(jobs.map((j) => outcome(j.features.reduce((n, f) => n + hurt[f], 0)))),
 * } as unknown as AblationRunner;
 * import { cumulativeCurve, rankFeatures } from "./ranking.ts";
 * const baseScore = { exact_acc: 1, token_acc: 1, acc_per_sup: [], mean_halt_step: 0 };
 * const ranking = await rankFeatures(runner, baseScore, [0, 1, 2, 3], new Float32Array(4), "token");
 * const curve = await cumulativeCurve(runner, ranking, baseScore); // top 1, 2 and all 4: [2], [2, 3], [2, 3, 1, 0]
 * assert.deepEqual(curve.points.map((p) => [p.k, p.effect]), [[1, 0.375], [2, 0.625], [4, 0.75]]);
 * assert.equal(curve.half_effect_k, 1); // 0.375 is half of 0.75
 * ```
 */
export async function cumulativeCurve(
  runner: AblationRunner,
  ranking: readonly CausalFeature[],
  baseScore: SideSummary,
  onProgress?: (done: number, total: number) => void,
): Promise<BareCumulative> {
  const base = await runner.baseline();
  const where = runner.session.plan.selector;
  const sizes = curveSizes(ranking.length);
  const outs = await runner.run(
    sizes.map((k) => ({
      features: ranking.slice(0, k).map((r) => r.feature),
      where,
    })),
    onProgress,
  );
  const points = sizes.map((k, i) => {
    const e = ablationEffect(base, outs[i]);
    return {
      k,
      effect: e.effect,
      normalized_effect: normalized(e.effect, baseScore),
      mean_kl: e.kl,
      exact_drop: e.exact,
    };
  });
  const all = points.at(-1)?.effect ?? 0;
  const half = points.find((p) => p.effect >= all / 2);
  return {
    metric:
      "the top k ranked features ablated to 0 together at the selected steps and positions on the subsample, " +
      "k = 1, 2, 4, … and the number of ranked candidates (the all-feature ablation); effect, mean_kl and " +
      "exact_drop as in the ranking",
    points,
    half_effect_k: all > 0 && half ? half.k : null,
  };
}

/**
 * Indices of the `n` largest values, largest first, ties to the lower index.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { topIndices } from "./ranking.ts";
 * assert.deepEqual(topIndices(new Float32Array([1, 3, 3, 0]), 2), [1, 2]);
 * ```
 */
export function topIndices(values: Float32Array, n: number): number[] {
  return Array.from(values.keys()).sort((a, b) =>
    values[b] - values[a] || a - b
  ).slice(0, n);
}

/**
 * The median, rounded to 7 significant digits (0 for an empty list).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { median } from "./ranking.ts";
 * assert.equal(median([3, 1, 2, 10]), 2.5);
 * assert.equal(median([]), 0);
 * ```
 */
export function median(xs: number[]): number {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return round7(s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2);
}

export type { CausalFeature, CumulativeAblation, RandomReference };
