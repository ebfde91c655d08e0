/**
 * The schema of report.json (v0-spec §5).
 *
 * @module
 */
import {
  backendName,
  int,
  latent,
  name,
  nonNeg,
  num,
  pos,
  sha,
  z,
} from "./common.ts";
import { GridSchema } from "./model.ts";

/** One side of a comparison. */
const SideSummarySchema = name(
  z.object({
    exact_acc: num.describe("Fraction of examples solved exactly."),
    token_acc: num.describe("Mean token accuracy."),
    acc_per_sup: z.array(z.object({ sup: nonNeg, exact: num, token: num }))
      .describe("Exact and token accuracy after each supervision step."),
    mean_halt_step: num.describe("Mean halting step."),
  }),
  "SideSummary",
  "Summary scores of one side of a comparison.",
);

const outcome = z.object({
  exact: z.boolean(),
  token_acc: num,
  halt_step: nonNeg,
});

/** One example's deltas. */
const ExampleDeltaSchema = name(
  z.object({
    example: z.string().describe("Example id."),
    baseline: outcome.describe("Baseline exact, token accuracy, halting step."),
    intervened: outcome.describe(
      "Intervened exact, token accuracy, halting step.",
    ),
    delta_token_acc: num.describe("Intervened minus baseline token accuracy."),
    kl: num.describe("Mean over positions of KL(baseline ‖ intervened), nats."),
    flipped: nonNeg.describe("Positions whose predicted token changed."),
  }),
  "ExampleDelta",
  "One example's deltas.",
);

/** Evaluator.compare's result. */
const ComparisonSchema = name(
  z.object({
    examples: pos.describe("Examples compared."),
    baseline: SideSummarySchema.describe("Baseline scores."),
    intervened: SideSummarySchema.describe("Intervened scores."),
    delta: z.object({
      exact_acc: num,
      token_acc: num,
      mean_halt_step: num,
      mean_kl: num,
      flipped_fraction: num,
    }).describe(
      "Intervened minus baseline; mean_kl = mean KL(p_baseline ‖ p_intervened) of the output softmax; flipped_fraction of positions whose argmax changed.",
    ),
    per_example: z.array(ExampleDeltaSchema).describe(
      "Per-example deltas, in baseline order.",
    ),
  }),
  "Comparison",
  "Baseline versus intervened outcomes, as Evaluator.compare returns them.",
);

/** Where an edit acted. */
const EditedStepsSchema = name(
  z.object({
    selector: z.string().describe(
      "A concrete step selector naming exactly the edited addresses (v0-spec §2).",
    ),
    addresses: nonNeg.describe("How many step addresses it names."),
  }),
  "EditedSteps",
  "The steps an edit acted at: a concrete selector and the number of addresses it names.",
);

/** One ranked feature. */
const CausalFeatureSchema = name(
  z.object({
    feature: nonNeg.describe("Feature index."),
    effect: num.describe(
      "Drop in token accuracy when ablated alone (baseline − ablated).",
    ),
    normalized_effect: num.describe("effect / baseline token accuracy."),
    mean_kl: num.describe("Mean KL(baseline ‖ ablated) of the outputs."),
    exact_drop: num.describe("Drop in exact accuracy."),
    mean_activation: num.describe(
      "Mean activation over the selected rows of the subsample.",
    ),
  }),
  "CausalFeature",
  "One ranked feature.",
);

/** The random reference. */
const RandomReferenceSchema = name(
  z.object({
    features: z.array(nonNeg).describe("The random alive features drawn."),
    effects: z.array(num).describe("Their effects."),
    median_effect: num.describe("Median effect."),
    kls: z.array(num).describe("Their mean KLs."),
    median_kl: num.describe("Median KL."),
  }),
  "RandomReference",
  "Random alive features, not among the candidates, ablated alone: the reference a ranked feature is read against.",
);

/** The cumulative ablation curve. */
const CumulativeAblationSchema = name(
  z.object({
    metric: z.string().describe("What the curve measures."),
    points: z.array(
      z.object({
        k: pos.describe("The top k ranked features, ablated together."),
        effect: num.describe(
          "Drop in token accuracy (baseline − ablated).",
        ),
        normalized_effect: num.describe("effect / baseline token accuracy."),
        mean_kl: num.describe("Mean KL(baseline ‖ ablated) of the outputs."),
        exact_drop: num.describe("Drop in exact accuracy."),
        mass: num.describe(
          "The top k's activation mass: the sum of their mean activations over the subsample's selected rows.",
        ),
        mass_fraction: num.describe(
          "mass / the summed mean activation of every feature.",
        ),
        control: z.object({
          draws: z.array(z.object({
            features: z.array(nonNeg).describe(
              "Alive features outside the candidates, ablated together.",
            ),
            mass: num.describe("Their summed mean activation."),
            effect: num,
            mean_kl: num,
            exact_drop: num,
          })).describe(
            "Mass-matched random draws (Rng(seed, 5)): k features whose mass comes within 5% of the point's, or more features where no k of them reach it.",
          ),
          median_effect: num.describe("Median effect of the draws."),
          median_kl: num.describe("Median mean_kl of the draws."),
          median_exact_drop: num.describe("Median exact_drop of the draws."),
        }).describe(
          "The control: random features of matched activation mass ablated together at the same steps and positions.",
        ),
      }),
    ).describe(
      "k = 1, 2, 4, … and, last, the number of ranked candidates: the all-feature ablation.",
    ),
    half_effect_k: pos.nullable().describe(
      "The smallest k on the curve whose effect reaches half the all-feature effect; null when that effect is not positive.",
    ),
  }),
  "CumulativeAblation",
  "The top-ranked features ablated together: how many carry the causal mass.",
);

const precisionRecall = z.object({
  precision: num.describe("P(variable | active)."),
  recall: num.describe("P(active | variable)."),
});

/** What the ranked features mean. */
const SelectivitySchema = name(
  z.object({
    metric: z.string().describe("What the figures measure, in words."),
    groups: z.array(z.string()).describe(
      "Labels of activation_per_sup: s0, s1, …",
    ),
    features: z.array(z.object({
      feature: nonNeg.describe("Feature index."),
      rows: nonNeg.describe("Rows counted."),
      active_fraction: num.describe("Fraction of the rows where it fires."),
      label: z.object({
        token: nonNeg.describe("The answer token t."),
        symbol: z.string().describe("Its symbol (model.json tokens)."),
        precision: num.describe("P(label = t | active)."),
        recall: num.describe("P(active | label = t)."),
      }).nullable().describe(
        "The answer token with the highest F1 of precision and recall (the lower id on a tie); null when it never fires.",
      ),
      input: z.object({
        given: precisionRecall.describe("The cell is a given clue."),
        blank: precisionRecall.describe("The cell is blank in the puzzle."),
      }).describe("Selectivity for the cell's input."),
      activation_per_sup: z.array(num).describe(
        "Mean activation (zeros included) over the rows of each supervision step in groups.",
      ),
    })).describe("One entry per ranked feature, in ranking order."),
  }),
  "Selectivity",
  "What each ranked feature means in the task's own variables.",
);

/** The causal section of report.json. */
/**
 * What `intervene` ranks candidate features by: token accuracy drop, KL, or
 * exact-solution drop (`--rank-by`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rankBy } from "./report.ts";
 * assert.deepEqual(rankBy.options, ["token", "kl", "exact"]);
 * ```
 */
export const rankBy: z.ZodEnum<{ token: "token"; kl: "kl"; exact: "exact" }> =
  name(
    z.enum(["token", "kl", "exact"]),
    "RankBy",
    "What the ranking sorts by: token accuracy drop, KL, or exact-solution drop.",
  );

/**
 * The three v0 policies `intervene --policy` offers. report.json records any
 * policy's name as a string, since users write their own.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { policyName } from "./report.ts";
 * assert.deepEqual(policyName.options, ["ablate_features", "clamp_features", "patch_features"]);
 * ```
 */
export const policyName: z.ZodEnum<
  {
    ablate_features: "ablate_features";
    clamp_features: "clamp_features";
    patch_features: "patch_features";
  }
> = name(
  z.enum(["ablate_features", "clamp_features", "patch_features"]),
  "PolicyName",
  "The names of the three v0 policies that the CLI offers.",
);

/**
 * What `ablate_features` sets its features to: zero, or the feature's mean
 * over the trace (`--ablate-to`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ablateTo } from "./report.ts";
 * assert.deepEqual(ablateTo.options, ["zero", "mean"]);
 * ```
 */
export const ablateTo: z.ZodEnum<{ zero: "zero"; mean: "mean" }> = name(
  z.enum(["zero", "mean"]),
  "AblateTo",
  "What ablate_features sets its features to: zero, or the feature's mean over the trace.",
);

const CausalSectionSchema = name(
  z.object({
    metric: z.string().describe("What `effect` measures."),
    tie_break: z.string().describe("How ties in the ranking are broken."),
    rank_by: rankBy.describe(
      "What the ranking sorts by: token accuracy drop, KL, or exact-solution drop.",
    ),
    steps: EditedStepsSchema.describe(
      "Where every ablation of this section acted.",
    ),
    candidates: z.object({
      source: z.enum(["most_active", "features"]),
      features: z.array(nonNeg),
    }).describe("The ranked candidates and where they came from."),
    subsample: z.object({
      examples: pos,
      seed: int,
      baseline_token_acc: num,
      baseline_exact_acc: num,
    }).describe("The seeded subsample every ablation runs on."),
    ranking: z.array(CausalFeatureSchema).describe(
      "Each candidate ablated alone, sorted by rank_by.",
    ),
    random_features: RandomReferenceSchema.describe(
      "Random alive features outside the candidates, ablated alone.",
    ),
    cumulative: CumulativeAblationSchema.describe(
      "The top-ranked features ablated together.",
    ),
    selectivity: SelectivitySchema.describe(
      "What each ranked feature means: its selectivity for the answer and the input at a cell, and its activation per supervision step.",
    ),
  }),
  "CausalSection",
  "The single-feature ablation ranking on a seeded subsample, its random reference and its cumulative curve.",
);

/** Where one edit's effect lands. */
const PositionEffectsSchema = name(
  z.object({
    examples: nonNeg.describe(
      "Examples compared; one example flipping at a position moves token_drop there by 1/examples.",
    ),
    token_drop: z.array(num).describe(
      "Per output position (S): baseline − edited token accuracy, mean over the examples.",
    ),
    kl: z.array(num).describe(
      "Per output position (S): KL(baseline ‖ edited) of the output softmax at the halting step, mean over the examples.",
    ),
    edited_examples: nonNeg.describe(
      "Examples whose state the edit changed at some position.",
    ),
    edited_cells: num.describe(
      "Mean number of cells (puzzle positions) it changed in those examples, over all edited steps.",
    ),
    locality: z.array(z.object({
      relation: z.enum([
        "same_cell",
        "same_row",
        "same_column",
        "same_box",
        "elsewhere",
      ]),
      cells: nonNeg.describe(
        "(example, cell) pairs in this relation; one flipped cell moves token_drop by 1/cells.",
      ),
      token_drop: num.describe("Mean drop in token accuracy over them."),
      kl: num.describe("Mean KL over them."),
      flipped: num.describe("Fraction whose predicted token changed."),
    })).nullable().describe(
      "Over the edited examples, each cell under its relation to that example's edited cells (the first of same_cell, same_row, same_column, same_box that holds, else elsewhere); same_box only for a grid with boxes; null without a grid in model.json.",
    ),
  }),
  "PositionEffects",
  "Where an edit's effect lands: per output position, and as a locality profile over the grid.",
);

/** The landing section of report.json. */
const LandingSchema = name(
  z.object({
    metric: z.string().describe("What the figures measure, in words."),
    grid: GridSchema.nullable().describe(
      "The bundle's grid (model.json), or null: no locality profile.",
    ),
    policy: PositionEffectsSchema.describe(
      "The policy over every traced example; edited cells are where it changed the state.",
    ),
    features: z.array(
      PositionEffectsSchema.extend({ feature: nonNeg }),
    ).describe(
      "Each ranked feature ablated alone on the subsample (as in causal.ranking), in ranking order; edited cells are where the ablation changed the state.",
    ),
  }),
  "Landing",
  "Where the effects land (v0-spec §5.4).",
);

/** The tomography. */
const TomographySchema = name(
  z.object({
    metric: z.string().describe("What `effect` measures."),
    groups: z.array(z.string()).describe("Row labels: s0, s1, …"),
    steps: z.array(EditedStepsSchema).describe(
      "Where each group's ablations acted, in the order of groups.",
    ),
    features: z.array(nonNeg).describe("Column labels: the top features."),
    effect: z.array(z.array(num)).describe("effect[group][feature]."),
  }),
  "Tomography",
  "Each top feature ablated only at the selected steps of one supervision step.",
);

/**
 * report.json.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ReportSchema } from "./report.ts";
 * const r = ReportSchema.safeParse({ format: "trminterp-report/1" });
 * assert.ok(!r.success);
 * assert.deepEqual(r.error.issues.map((i) => i.path.join(".")), [
 *   "provenance", "policy", "comparison", "causal", "tomography", "landing", "saved_trace",
 * ]);
 * assert.ok(!ReportSchema.safeParse({ format: "trminterp-report/0" }).success);
 * ```
 */
export const ReportSchema = name(
  z.object({
    format: z.literal("trminterp-report/1").describe("Format tag."),
    provenance: z.object({
      tool: z.object({ name: z.literal("trminterp"), version: z.string() }),
      command: z.array(z.string()),
      seed: int,
      trace_digest: sha,
      sae_pt_sha256: sha,
      model_sha256: sha,
      backend: backendName,
      baseline: z.enum(["trace.jsonl", "rerun"]),
      causal_from: z.string().nullable().describe(
        "null when this run computed its causal section and tomography; otherwise the report (path relative to the run dir) it copied them from, one computed from the same trace, SAE, model, backend, seed, steps, positions, candidates, subsample, metric and references.",
      ),
    }).describe(
      "Provenance; baseline is trace.jsonl when the baseline outcomes were read from the trace.",
    ),
    policy: z.object({
      name: z.string(),
      latent: latent,
      steps: z.string().describe(
        "A concrete step selector naming exactly the edited addresses.",
      ),
      addresses: nonNeg.describe("How many step addresses `steps` names."),
      steps_source: z.enum(["fitted", "requested"]).describe(
        "`fitted`: the steps the SAE was fitted on (the default); `requested`: --steps.",
      ),
      fitted_steps: z.string().describe(
        "A concrete selector of the steps the SAE was fitted on (trace-recorded and chosen by sae.pt's cfg.steps).",
      ),
      outside_fitted: nonNeg.describe(
        "Edited addresses outside the fitted steps (a warning was printed when > 0).",
      ),
      positions: z.array(nonNeg),
      params: z.record(z.string(), z.unknown()),
    }).describe("The policy and where it acted."),
    comparison: ComparisonSchema.describe(
      "Baseline vs intervened over every traced example.",
    ),
    causal: CausalSectionSchema.describe(
      "The causal ranking on a seeded subsample.",
    ),
    tomography: TomographySchema.describe(
      "Effect of each top feature ablated at one supervision step at a time.",
    ),
    landing: LandingSchema.describe(
      "Where the effects of the policy and of each ranked feature land.",
    ),
    saved_trace: z.string().nullable().describe(
      "Where the intervened trace was saved, if it was.",
    ),
  }),
  "Report",
  "The content of report.json (v0-spec §5).",
);
