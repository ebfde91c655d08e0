/**
 * The one table of `intervene` defaults: the library (`runIntervene`), the
 * CLI and its `--help` read it, and tests/defaults_test.ts holds the spec to
 * it.
 *
 * @module
 */
import type { AblateTo, RankBy } from "../schema/mod.ts";

/**
 * Defaults of `intervene`'s ranking, controls and policies.
 * {@linkcode interveneSettings} applies them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { INTERVENE_DEFAULTS } from "./defaults.ts";
 * import { AblateFeatures } from "./policy.ts";
 * // The default ablation sets features to zero, as AblateFeatures does.
 * assert.equal(new AblateFeatures([0]).to, INTERVENE_DEFAULTS.ablateTo);
 * assert.ok(INTERVENE_DEFAULTS.rank <= INTERVENE_DEFAULTS.candidates);
 * ```
 */
export const INTERVENE_DEFAULTS: {
  readonly rank: number;
  readonly candidates: number;
  readonly examples: number;
  readonly randomFeatures: number;
  readonly controlDraws: number;
  readonly rankBy: RankBy;
  readonly ablateTo: AblateTo;
} = {
  /** Top features reported and scanned in the tomography. */
  rank: 5,
  /** Most active features ranked when no features are given. */
  candidates: 16,
  /** Examples in the seeded ranking subsample. */
  examples: 64,
  /** Random alive features ablated for the reference median. */
  randomFeatures: 16,
  /** Mass-matched random draws beside each point of the cumulative curve. */
  controlDraws: 3,
  /** The drop in token accuracy; KL breaks ties. */
  rankBy: "token",
  /** ablate_features sets features to zero. */
  ablateTo: "zero",
};

/** The intervene options that have defaults, as {@linkcode interveneSettings} resolves them. */
export interface InterveneSettings {
  /** Top features reported and scanned. */
  rank: number;
  /** Most active features ranked. */
  candidates: number;
  /** Examples in the ranking subsample. */
  examples: number;
  /** Random features for the reference median. */
  randomFeatures: number;
  /** Mass-matched draws per point of the cumulative curve. */
  controlDraws: number;
  /** What the ranking sorts by. */
  rankBy: RankBy;
  /** ablate_features: zero or mean. */
  ablateTo: AblateTo;
}

/**
 * Apply {@linkcode INTERVENE_DEFAULTS} to the options given: the one place
 * `intervene` fills in what was not asked for.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { INTERVENE_DEFAULTS, interveneSettings } from "./defaults.ts";
 * assert.deepEqual(interveneSettings({}), INTERVENE_DEFAULTS);
 * assert.equal(interveneSettings({ rankBy: "kl" }).rankBy, "kl");
 * ```
 */
export function interveneSettings(
  opts: Partial<InterveneSettings>,
): InterveneSettings {
  return {
    rank: opts.rank ?? INTERVENE_DEFAULTS.rank,
    candidates: opts.candidates ?? INTERVENE_DEFAULTS.candidates,
    examples: opts.examples ?? INTERVENE_DEFAULTS.examples,
    randomFeatures: opts.randomFeatures ?? INTERVENE_DEFAULTS.randomFeatures,
    controlDraws: opts.controlDraws ?? INTERVENE_DEFAULTS.controlDraws,
    rankBy: opts.rankBy ?? INTERVENE_DEFAULTS.rankBy,
    ablateTo: opts.ablateTo ?? INTERVENE_DEFAULTS.ablateTo,
  };
}
