/**
 * The schemas of the sae.pt config and of sae_metrics.json (v0-spec §4).
 *
 * @module
 */
import { int, latent, name, nonNeg, num, pos, sha, z } from "./common.ts";

/**
 * The SAE architectures: TopK (the default), ReLU trained with an L1
 * penalty, and BatchTopK (TopK over the whole batch while training, a
 * threshold at inference).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SaeArchSchema } from "./sae.ts";
 * assert.deepEqual(SaeArchSchema.options, ["topk", "relu", "batchtopk"]);
 * ```
 */
export const SaeArchSchema: z.ZodEnum<
  { topk: "topk"; relu: "relu"; batchtopk: "batchtopk" }
> = z.enum(["topk", "relu", "batchtopk"]);

const saeConfigShape = {
  arch: SaeArchSchema.describe("SAE architecture."),
  d_in: pos.describe("Input width D."),
  d_sae: pos.describe("Dictionary size F."),
  k: pos.optional().describe(
    "Active latents per row (topk), or per row on average over a training batch (batchtopk).",
  ),
  threshold: z.number().nonnegative().optional().describe(
    "Inference threshold (batchtopk): a latent is active when its pre-activation exceeds it.",
  ),
};

/**
 * The configuration an SAE's forward pass needs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SAEConfigSchema } from "./sae.ts";
 * assert.ok(SAEConfigSchema.safeParse({ arch: "topk", d_in: 4, d_sae: 8, k: 2 }).success);
 * assert.ok(!SAEConfigSchema.safeParse({ arch: "jumprelu", d_in: 4, d_sae: 8 }).success);
 * ```
 */
export const SAEConfigSchema = name(
  z.object(saeConfigShape),
  "SAEConfig",
  "The configuration of an SAE's forward pass: architecture, sizes and its own fields.",
);

/**
 * The `cfg` stored in sae.pt next to the tensors.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SaeFileConfigSchema } from "./sae.ts";
 * const cfg = { arch: "topk", d_in: 64, d_sae: 256, k: 8, format: "trminterp-sae/1", latent: "z_H",
 *   steps: "s*.*.H", trace_digest: "ab".repeat(32), model_sha256: "cd".repeat(32), seed: 0,
 *   training: { lr: 0.0003, steps: 2000 } };
 * assert.deepEqual(SaeFileConfigSchema.parse(cfg), cfg);
 * assert.ok(!SaeFileConfigSchema.safeParse({ ...cfg, arch: "jumprelu" }).success);
 * ```
 */
export const SaeFileConfigSchema = name(
  z.object({
    ...saeConfigShape,
    format: z.literal("trminterp-sae/1").describe("File format tag."),
    latent: latent.describe("The latent the SAE was fitted on."),
    steps: z.string().describe("Step selector of the training rows."),
    trace_digest: sha.describe(
      "The digest of the trace it was fitted on (v0-spec §3.6).",
    ),
    model_sha256: sha.describe("sha256 of the model bundle's model.json."),
    seed: int.describe("The seed."),
    training: z.record(z.string(), z.union([num, z.string(), z.boolean()]))
      .describe(
        "Every training hyperparameter, as used (defaults resolved), and what training measured (scaling_factor).",
      ),
  }),
  "SaeFileConfig",
  "The configuration trminterp stores in sae.pt next to the tensors (v0-spec §4.1).",
);

const metric = <T extends z.ZodType>(v: T) =>
  z.object({ value: v, formula: z.string().min(1) });

/** A log10 feature-density histogram. */
const DensityHistogramSchema = name(
  z.object({
    edges: z.array(num).describe("Bin edges in log10(density), ascending."),
    counts: z.array(nonNeg).describe("Features per bin."),
    never: nonNeg.describe("Features with density 0."),
  }),
  "DensityHistogram",
  "A log10 feature-density histogram: bin i counts features with edges[i] <= log10(density) < edges[i+1].",
);

/** The held-out metrics. */
const SAEMetricsSchema = name(
  z.object({
    n_rows: nonNeg.describe("Rows evaluated."),
    mse: metric(num).describe("Mean squared error per element."),
    fvu: metric(num).describe(
      "Fraction of variance unexplained, Σ‖x−x̂‖²/Σ‖x−x̄‖².",
    ),
    explained_variance: metric(num).describe("1 − FVU."),
    l0: metric(num).describe("Mean number of active features per row."),
    l1: metric(num).describe("Mean Σ|f| per row."),
    dead_fraction: metric(num).describe(
      "Fraction of features that never fire on the held-out rows.",
    ),
    dense_fraction_1pct: metric(num).describe(
      "Fraction of features firing on more than 1% of rows.",
    ),
    dense_fraction_10pct: metric(num).describe(
      "Fraction of features firing on more than 10% of rows.",
    ),
    mean_cosine: metric(num).describe(
      "Mean cosine similarity between x and x̂.",
    ),
    relative_reconstruction_bias: metric(num).describe(
      "Relative reconstruction bias γ (1 = unbiased, < 1 = shrinkage).",
    ),
    feature_density_histogram: metric(DensityHistogramSchema).describe(
      "log10 feature-density histogram.",
    ),
  }),
  "SAEMetrics",
  "SAE quality metrics on the held-out rows, each with its formula.",
);

/** Task accuracy recovered. */
const TaskAccuracySchema = name(
  z.object({
    formula: z.string().describe("The formula used."),
    value: num.nullable().describe(
      "(acc_sae − acc_zero) / (acc_clean − acc_zero) on token accuracy; null when undefined.",
    ),
    acc_clean: num.describe("Token accuracy of the clean model."),
    acc_sae: num.describe("Token accuracy with the SAE reconstruction."),
    acc_zero: num.describe("Token accuracy with the rows set to zero."),
    exact: z.object({ clean: num, sae: num, zero: num }).describe(
      "The same three for exact accuracy.",
    ),
    examples: nonNeg.describe("Held-out examples evaluated."),
  }),
  "TaskAccuracy",
  "Task accuracy with the SAE spliced in, against clean and zero-ablated runs.",
);

/** One loss-curve sample. */
const LossPointSchema = name(
  z.object({
    step: nonNeg.describe("Step index, from 0."),
    loss: num.describe("Total loss: mse + aux + l1 (terms already weighted)."),
    mse: num.describe("Mean over rows of ‖x − x̂‖²."),
    aux: num.describe(
      "Weighted AuxK loss (0 for relu or with no dead latents).",
    ),
    l1: num.describe("Weighted L1 penalty (0 for topk)."),
  }),
  "LossPoint",
  "One loss-curve sample, computed on that step's minibatch before the update.",
);

/**
 * sae_metrics.json.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SaeMetricsJsonSchema } from "./sae.ts";
 * const r = SaeMetricsJsonSchema.safeParse({ format: "trminterp-sae-metrics/1" });
 * assert.ok(!r.success);
 * assert.deepEqual(r.error.issues.map((i) => i.path.join(".")), [
 *   "provenance", "config", "split", "metrics", "task_accuracy_recovered", "loss_curve",
 *   "train_dead_fraction",
 * ]);
 * ```
 */
export const SaeMetricsJsonSchema = name(
  z.object({
    format: z.literal("trminterp-sae-metrics/1").describe("Format tag."),
    provenance: z.object({
      tool: z.object({ name: z.literal("trminterp"), version: z.string() }),
      command: z.array(z.string()),
      seed: int,
      trace_digest: sha,
      model_sha256: sha,
      sae_pt_sha256: sha,
    }).describe(
      "Provenance: tool, command, seed, the trace digest, and the sha256 of the model and sae.pt.",
    ),
    config: SaeFileConfigSchema.describe("The cfg stored in sae.pt."),
    split: z.object({
      holdout: num,
      train_rows: nonNeg,
      heldout_rows: nonNeg,
      heldout_examples: nonNeg,
      heldout_example_ids: z.array(z.string()),
    }).describe(
      "Sizes of the split, and the held-out example ids in trace order.",
    ),
    metrics: SAEMetricsSchema.describe("Metrics on the held-out rows."),
    task_accuracy_recovered: z.union([
      TaskAccuracySchema,
      z.object({ value: z.null(), reason: z.string() }),
    ]).describe("Task accuracy recovered, or null with the reason."),
    loss_curve: z.array(LossPointSchema).describe(
      "Loss curve: sampled training minibatch losses.",
    ),
    train_dead_fraction: num.describe(
      "Latents dead by the training window at the end.",
    ),
  }),
  "SaeMetricsJson",
  "The content of sae_metrics.json (v0-spec §4.2).",
);
