/**
 * The causal ranking of `intervene`: each candidate feature ablated alone on
 * a seeded subsample, and random alive features for a reference median.
 *
 * @module
 */
import type { CausalFeature, RandomReference } from "../schema/mod.ts";
import type { StepSelector } from "../model/address.ts";
import type { OutcomeTrace, RolloutExample } from "../model/rollout.ts";
import { Rng } from "../rng.ts";
import { Evaluator, round7 } from "./evaluate.ts";
import type { SideSummary } from "../schema/mod.ts";
import { AblateFeatures } from "./policy.ts";
import type { InterventionSession } from "./session.ts";

/** The effect of ablating one feature. */
export interface AblationEffect {
  /** Drop in token accuracy. */
  effect: number;
  /** Mean KL(baseline ‖ ablated). */
  kl: number;
  /** Drop in exact accuracy. */
  exact: number;
}

/**
 * Ablate `feature` alone at `where` on `examples` and compare with `base`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ablationEffect } from "./ranking.ts";
 * const same = { run: async () => base } as never;
 * const base = { S: 1, V: 2, examples: [{ example: "a", label: [1], pred: [1], predPerSup: [[1]], haltStep: 0,
 *   logits: new Float32Array([0, 1]) }] };
 * assert.deepEqual(await ablationEffect(same, base, [], 3, undefined as never), { effect: 0, kl: 0, exact: 0 });
 * ```
 */
export async function ablationEffect(
  session: InterventionSession,
  base: OutcomeTrace,
  examples: readonly RolloutExample[],
  feature: number,
  where: StepSelector,
): Promise<AblationEffect> {
  const out = await session.run(examples, new AblateFeatures([feature]), where);
  const c = Evaluator.compare(base, out);
  return {
    effect: round7(-c.delta.token_acc),
    kl: c.delta.mean_kl,
    exact: round7(-c.delta.exact_acc),
  };
}

/**
 * Rank `candidates` by the drop in token accuracy when each is ablated alone,
 * KL as the tie-break, then the lower index.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sortRanking } from "./ranking.ts";
 * const r = (feature: number, effect: number, mean_kl: number) =>
 *   ({ feature, effect, mean_kl, normalized_effect: 0, exact_drop: 0, mean_activation: 0 });
 * assert.deepEqual(sortRanking([r(1, 0, 0.1), r(2, 0.5, 0), r(0, 0, 0.1)]).map((x) => x.feature), [2, 0, 1]);
 * ```
 */
export function sortRanking(ranking: CausalFeature[]): CausalFeature[] {
  return ranking.sort((a, b) =>
    b.effect - a.effect || b.mean_kl - a.mean_kl || a.feature - b.feature
  );
}

/** Rank candidates on the subsample; `tick` is called after each rollout. */
export async function rankFeatures(
  session: InterventionSession,
  sub: { examples: readonly RolloutExample[]; base: OutcomeTrace },
  baseScore: SideSummary,
  candidates: readonly number[],
  activity: Float32Array,
  tick: () => void,
): Promise<CausalFeature[]> {
  const ranking: CausalFeature[] = [];
  for (const f of candidates) {
    const e = await ablationEffect(
      session,
      sub.base,
      sub.examples,
      f,
      session.plan.selector,
    );
    tick();
    ranking.push({
      feature: f,
      effect: e.effect,
      normalized_effect: baseScore.token_acc > 0
        ? round7(e.effect / baseScore.token_acc)
        : 0,
      mean_kl: e.kl,
      exact_drop: e.exact,
      mean_activation: round7(activity[f]),
    });
  }
  return sortRanking(ranking);
}

/**
 * Ablate `n` alive features (activity > 0) drawn with `Rng(seed, 3)`, for the
 * reference median a ranked feature is read against.
 */
export async function randomReference(
  session: InterventionSession,
  sub: { examples: readonly RolloutExample[]; base: OutcomeTrace },
  activity: Float32Array,
  n: number,
  seed: number,
  tick: () => void,
): Promise<RandomReference> {
  const alive = Array.from(activity.keys()).filter((f) => activity[f] > 0);
  const features = new Rng(seed, 3).sample(
    alive.length,
    Math.min(n, alive.length),
  )
    .map((i) => alive[i]);
  const effects: number[] = [], kls: number[] = [];
  for (const f of features) {
    const e = await ablationEffect(
      session,
      sub.base,
      sub.examples,
      f,
      session.plan.selector,
    );
    tick();
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

export type { CausalFeature, RandomReference };
