/**
 * report.json: its content, and how the parts of an intervention run fill it.
 *
 * @module
 */
import type {
  CausalFeature,
  CumulativeAblation,
  EditedSteps,
  RandomReference,
  Report,
  Selectivity,
  SideSummary,
} from "../schema/mod.ts";
import type { RankBy } from "../schema/mod.ts";

export type { Report };

/** The ranking's own part of report.json. */
export interface CausalParts {
  /** Where every ablation acted. */
  steps: EditedSteps;
  /** Where the candidates came from. */
  source: "most_active" | "features";
  /** The candidates. */
  candidates: number[];
  /** Subsample size. */
  examples: number;
  /** The seed. */
  seed: number;
  /** Baseline scores on the subsample. */
  base: SideSummary;
  /** The ranking. */
  ranking: CausalFeature[];
  /** The random reference. */
  random: RandomReference;
  /** What the ranking sorts by (default `token`). */
  rankBy: RankBy;
  /** The cumulative curve. */
  cumulative: CumulativeAblation;
  /** What the ranked features mean. */
  selectivity: Selectivity;
}

const RANK_METRIC: Record<RankBy, { metric: string; tie_break: string }> = {
  token: {
    metric:
      "effect = baseline token accuracy − token accuracy with the feature ablated to 0 alone, " +
      "at the selected steps and positions, on the subsample",
    tie_break:
      "mean KL(baseline ‖ ablated) of the output softmax at the halting step",
  },
  kl: {
    metric:
      "mean_kl = mean KL(baseline ‖ ablated) of the output softmax at the halting step with the feature " +
      "ablated to 0 alone, at the selected steps and positions, on the subsample",
    tie_break: "effect (drop in token accuracy), then the lower feature index",
  },
  exact: {
    metric:
      "exact_drop = baseline exact accuracy − exact accuracy with the feature ablated to 0 alone, " +
      "at the selected steps and positions, on the subsample",
    tie_break:
      "effect (drop in token accuracy), then mean KL, then the lower feature index",
  },
};

/**
 * The `causal` section of report.json, with the metric and tie-break stated.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { causalSection } from "./report.ts";
 * const c = causalSection({ steps: { selector: "s0-7.h0-1.H", addresses: 16 }, source: "features", candidates: [3], examples: 8, seed: 0,
 *   base: { exact_acc: 1, token_acc: 1, acc_per_sup: [], mean_halt_step: 7 }, ranking: [],
 *   random: { features: [], effects: [], median_effect: 0, kls: [], median_kl: 0 },
 *   cumulative: { metric: "", points: [], half_effect_k: null },
 *   selectivity: { metric: "", groups: [], features: [] }, rankBy: "token" });
 * assert.match(c.metric, /token accuracy/);
 * assert.equal(c.rank_by, "token");
 * assert.equal(c.subsample.baseline_token_acc, 1);
 * ```
 */
export function causalSection(p: CausalParts): Report["causal"] {
  const rankBy = p.rankBy;
  return {
    ...RANK_METRIC[rankBy],
    rank_by: rankBy,
    steps: p.steps,
    candidates: { source: p.source, features: p.candidates },
    subsample: {
      examples: p.examples,
      seed: p.seed,
      baseline_token_acc: p.base.token_acc,
      baseline_exact_acc: p.base.exact_acc,
    },
    ranking: p.ranking,
    random_features: p.random,
    cumulative: p.cumulative,
    selectivity: p.selectivity,
  };
}
