/**
 * report.json: its content, and how the parts of an intervention run fill it.
 *
 * @module
 */
import type { Comparison, SideSummary } from "./evaluate.ts";
import type { CausalFeature, RandomReference } from "./ranking.ts";
import type { Tomography } from "./tomography.ts";

/** The content of report.json (v0-spec §5). */
export interface Report {
  /** Format tag. */
  format: "trminterp-report/1";
  /** Provenance. */
  provenance: {
    tool: { name: "trminterp"; version: string };
    command: string[];
    seed: number;
    trace_sha256: string;
    sae_pt_sha256: string;
    model_sha256: string;
    backend: string;
    baseline: "trace.jsonl" | "rerun";
  };
  /** The policy and where it acted. */
  policy: {
    name: string;
    latent: string;
    steps: string;
    positions: number[];
    params: Record<string, unknown>;
  };
  /** Baseline vs intervened over every traced example. */
  comparison: Comparison;
  /** Single-feature ablation ranking. */
  causal: {
    metric: string;
    tie_break: string;
    candidates: { source: "most_active" | "features"; features: number[] };
    subsample: {
      examples: number;
      seed: number;
      baseline_token_acc: number;
      baseline_exact_acc: number;
    };
    ranking: CausalFeature[];
    random_features: RandomReference;
  };
  /** Effect of each top feature ablated at one supervision step at a time. */
  tomography: Tomography;
  /** Where the intervened trace was saved, if it was. */
  saved_trace: string | null;
}

/** The ranking's own part of report.json. */
export interface CausalParts {
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
}

/**
 * The `causal` section of report.json, with the metric and tie-break stated.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { causalSection } from "./report.ts";
 * const c = causalSection({ source: "features", candidates: [3], examples: 8, seed: 0,
 *   base: { exact_acc: 1, token_acc: 1, acc_per_sup: [], mean_halt_step: 7 }, ranking: [],
 *   random: { features: [], effects: [], median_effect: 0, kls: [], median_kl: 0 } });
 * assert.match(c.metric, /token accuracy/);
 * assert.equal(c.subsample.baseline_token_acc, 1);
 * ```
 */
export function causalSection(p: CausalParts): Report["causal"] {
  return {
    metric:
      "effect = baseline token accuracy − token accuracy with the feature ablated to 0 alone, " +
      "at the selected steps and positions, on the subsample",
    tie_break:
      "mean KL(baseline ‖ ablated) of the output softmax at the halting step",
    candidates: { source: p.source, features: p.candidates },
    subsample: {
      examples: p.examples,
      seed: p.seed,
      baseline_token_acc: p.base.token_acc,
      baseline_exact_acc: p.base.exact_acc,
    },
    ranking: p.ranking,
    random_features: p.random,
  };
}
