/**
 * Planning an intervention: the options of `intervene`, checked against the
 * trace and the SAE before anything runs, and turned into where the policy
 * acts and which policy it is.
 *
 * @module
 */
import {
  formatAddress,
  type StepAddress,
  StepSelector,
} from "../model/address.ts";
import { type EditSteps, editSteps } from "../sae/fitted_steps.ts";
import type { BackendChoice } from "../model/backend.ts";
import type { Latent } from "../model/rollout.ts";
import { InputError, OptionError } from "../errors.ts";
import type { SAE } from "../sae/sae.ts";
import type { SaeFileConfig } from "../sae/sae_pt.ts";
import type { TraceDataset } from "../trace/dataset.ts";
import { parsePositions } from "../trace/positions.ts";
import type { AblateTo, RankBy } from "../schema/mod.ts";
import { interveneSettings } from "./defaults.ts";
import type { InterventionPolicy } from "../edit/policy.ts";
import {
  AblateFeatures,
  ClampFeatures,
  PatchFeatures,
  type PolicyName,
} from "./policy.ts";

/** Options of the intervene command. */
export interface InterveneOptions {
  /** Run dir with trace.jsonl and sae.pt. */
  runDir: string;
  /** The policy. */
  policy: PolicyName;
  /** Features to edit and rank; default: rank the most active, edit the top one. */
  features?: number[];
  /** Steps to act on (default the steps the SAE was fitted on; others are warned about). */
  steps?: string;
  /** Positions to act on (default the traced positions). */
  positions?: string;
  /** clamp_features: the value. */
  value?: number;
  /** clamp_features: the scale. */
  scale?: number;
  /** ablate_features: to zero (default) or to the feature's mean over the trace. */
  ablateTo?: AblateTo;
  /** patch_features: the source example id. */
  sourceExample?: string;
  /** patch_features: the source step (one address). */
  sourceSteps?: string;
  /** Top features to report and scan in the tomography (default {@linkcode INTERVENE_DEFAULTS}). */
  rank?: number;
  /** Candidate features to rank when `features` is not given (default {@linkcode INTERVENE_DEFAULTS}). */
  candidates?: number;
  /** Examples in the seeded ranking subsample (default {@linkcode INTERVENE_DEFAULTS}). */
  examples?: number;
  /** Random features ablated for the reference median (default {@linkcode INTERVENE_DEFAULTS}); drawn from the alive features outside the candidates. */
  randomFeatures?: number;
  /** Mass-matched random draws beside each point of the cumulative curve (default {@linkcode INTERVENE_DEFAULTS}). */
  controlDraws?: number;
  /** What the ranking sorts by: token accuracy drop (default), KL, or exact-solution drop. */
  rankBy?: RankBy;
  /** The seed. */
  seed: number;
  /** Model bundle (default: the trace's). */
  model?: string;
  /** Backend (default: the one the trace ran on, so baselines match exactly). */
  backend?: BackendChoice;
  /** Examples per batch (default: the trace's, so baselines match exactly). */
  batch?: number;
  /** Save the intervened trace under interventions/<id>/ (with `name`: beside the report). */
  saveTrace?: boolean;
  /** Name the run: its report goes to interventions/NAME/report.json instead of report.json. */
  name?: string;
  /** Overwrite report.json. */
  force?: boolean;
  /** Progress: example rollouts done of total (ablations that cannot change an example count as done). */
  onProgress?: (done: number, total: number) => void;
  /** The command line for provenance. */
  command?: string[];
  /** Told one line when `steps` edits outside the SAE's fitted steps. */
  onWarning?: (message: string) => void;
}

/** Where and how an intervention acts, checked against the trace and the SAE. */
export interface Plan {
  /** The SAE's latent. */
  latent: Latent;
  /** Steps to act on: a concrete selector, naming exactly `addresses`. */
  selector: StepSelector;
  /** The selected steps of the SAE's latent, in execution order. */
  addresses: StepAddress[];
  /** The steps and how they relate to the SAE's fitted steps. */
  steps: EditSteps;
  /** Positions to act on (prefix first). */
  positions: number[];
  /** patch_features: the one source step, as text. */
  sourceStep?: string;
  /** Build the chosen policy for `features`, with the feature means for `--ablate-to mean`. */
  policy(features: number[], means?: Float32Array): InterventionPolicy;
}

/**
 * Check the options against the trace and the SAE, and plan where the policy
 * acts. Every check that can fail runs here, before any output is written.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { planIntervention } from "./plan.ts";
 * import { TraceDataset } from "../trace/dataset.ts";
 * import { runTrace } from "../trace/trace.ts";
 * import { SAE } from "../sae/sae.ts";
 * const demo = new URL("../../references/models/sudoku4-trm", import.meta.url).pathname;
 * const dir = await Deno.makeTempDir();
 * try {
 *   await runTrace({ runDir: dir, model: demo, inputs: `${demo}/test.jsonl`, seed: 0, limit: 2, latents: ["z_H"] });
 *   const ds = await TraceDataset.load(dir);
 *   const sae = new SAE({ arch: "topk", d_in: 64, d_sae: 32, k: 4 });
 *   const cfg = { ...sae.cfg, latent: "z_H" as const };
 *   const plan = planIntervention({ runDir: dir, policy: "ablate_features", seed: 0, steps: "s0-1.*.H" }, ds, sae, cfg);
 *   assert.equal(plan.addresses.length, 4); // 2 supervision steps × 2 H cycles
 *   assert.throws(() => planIntervention({ runDir: dir, policy: "ablate_features", seed: 0, features: [32] }, ds, sae, cfg),
 *     /feature 32 does not exist/);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export function planIntervention(
  opts: InterveneOptions,
  ds: TraceDataset,
  sae: SAE,
  cfg: Pick<SaeFileConfig, "latent"> & { steps?: string },
): Plan {
  const header = ds.header;
  if (sae.cfg.d_in !== header.state_dim) {
    throw new InputError(
      `sae.pt has d_in ${sae.cfg.d_in}, but the trace's states have D=${header.state_dim}; fit the SAE on this run again`,
    );
  }
  if (!header.record.latents.includes(cfg.latent)) {
    throw new InputError(
      `sae.pt was fitted on ${cfg.latent}, which this trace did not record; fit the SAE on this run again`,
    );
  }
  const F = sae.cfg.d_sae;
  for (const f of opts.features ?? []) {
    if (!Number.isInteger(f) || f < 0 || f >= F) {
      throw new OptionError(
        "features",
        `{features}: feature ${f} does not exist; the SAE has features 0..${
          F - 1
        }`,
      );
    }
  }
  const sched = header.model.schedule;
  const ofLatent = (a: StepAddress) => (a.l === "H") === (cfg.latent === "z_H");
  const steps = editSteps(sched, {
    recorded: header.record.steps,
    fitted: cfg.steps ?? "all",
    latent: cfg.latent,
    requested: opts.steps,
  });
  const { selector, addresses } = steps;
  if (addresses.length === 0) {
    throw opts.steps === undefined
      ? new InputError(
        `sae.pt was fitted on no ${cfg.latent} step that this trace recorded (its steps "${cfg.steps}", the trace's "${header.record.steps}"); fit the SAE on this run again`,
      )
      : new OptionError(
        "steps",
        `{steps} "${opts.steps}" matches no ${cfg.latent} step (the SAE was fitted on ${cfg.latent}); e.g. ${
          cfg.latent === "z_H" ? "s*.*.H" : "s*.*.l*"
        }`,
      );
  }
  if (steps.outside > 0) {
    opts.onWarning?.(
      `warning: ${steps.outside} of the ${addresses.length} edited steps (${selector.text}) lie outside the steps the SAE was fitted on (${
        steps.fitted || "none"
      }); there the SAE encodes states it never saw`,
    );
  }
  const positions = opts.positions
    ? parsePositions(
      opts.positions,
      header.model.puzzle_emb_len,
      header.model.seq_len,
    )
    : header.record.positions;
  const ids = ds.meta.outcomes.map((o) => o.example);
  if (opts.sourceExample !== undefined && !ids.includes(opts.sourceExample)) {
    throw new OptionError(
      "sourceExample",
      `{sourceExample} "${opts.sourceExample}" is not in the trace; pick one of its example ids (e.g. "${
        ids[0]
      }")`,
    );
  }
  let sourceStep: string | undefined;
  if (opts.sourceSteps !== undefined) {
    const src = StepSelector.parse(opts.sourceSteps).select(sched).filter(
      ofLatent,
    );
    if (src.length !== 1) {
      throw new OptionError(
        "sourceSteps",
        `{sourceSteps} "${opts.sourceSteps}" must select exactly one ${cfg.latent} step, it selects ${src.length}`,
      );
    }
    sourceStep = formatAddress(src[0]);
  }
  const recorded = new Set(header.record.positions);
  if (
    opts.policy === "patch_features" && positions.some((p) => !recorded.has(p))
  ) {
    throw new OptionError(
      "positions",
      `patch_features needs traced states at every {positions}; the trace recorded ${[
        ...recorded,
      ]}`,
    );
  }
  if (opts.policy === "patch_features") {
    // The source values come from the trace: a step it did not record would
    // leave the rows unpatched without a word.
    const traced = new Set(
      StepSelector.parse(header.record.steps).select(sched).map(formatAddress),
    );
    const needed = sourceStep !== undefined
      ? [sourceStep]
      : addresses.map(formatAddress);
    const missing = needed.filter((a) => !traced.has(a));
    if (missing.length > 0) {
      const option = sourceStep !== undefined ? "sourceSteps" : "steps";
      throw new OptionError(
        option,
        `patch_features reads its source from the trace, which did not record ${
          missing.slice(0, 3).join(", ")
        }${
          missing.length > 3 ? ` (and ${missing.length - 3} more)` : ""
        }; pick {${option}} among the recorded steps "${header.record.steps}"`,
      );
    }
  }
  const policy = (features: number[], means?: Float32Array) =>
    opts.policy === "ablate_features"
      ? new AblateFeatures(features, interveneSettings(opts).ablateTo, means)
      : opts.policy === "clamp_features"
      ? new ClampFeatures(features, { value: opts.value, scale: opts.scale })
      : new PatchFeatures(features, {
        sourceExample: opts.sourceExample,
        sourceStep,
      });
  // Build the policy once now, so its own checks fail before any work.
  policy([0], opts.ablateTo === "mean" ? new Float32Array(F) : undefined);
  return {
    latent: cfg.latent,
    selector,
    addresses,
    steps,
    positions,
    sourceStep,
    policy,
  };
}
