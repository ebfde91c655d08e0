/**
 * The three v0 intervention policies that `intervene --policy` offers. Each
 * rewrites SAE feature activations and keeps the SAE error term,
 * `h' = h − decode(encode(h)) + decode(a')`. The interface they implement and
 * the hook that runs them live in lib/edit.
 *
 * @module
 */
import { parseAddress, type StepAddress } from "../model/address.ts";
import { InputError, OptionError } from "../errors.ts";
import type { SAE } from "../sae/sae.ts";
import {
  editActivations,
  type InterventionPolicy,
  type PolicyContext,
} from "../edit/policy.ts";
import { policyName } from "../schema/report.ts";
import type { AblateTo, PolicyName } from "../schema/mod.ts";

export type { AblateTo, PolicyName };

/**
 * The v0 policy names, for `--policy`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AblateFeatures, ClampFeatures, PatchFeatures, POLICY_NAMES } from "./policy.ts";
 * const policies = [new AblateFeatures([0]), new ClampFeatures([0], { value: 1 }), new PatchFeatures([0], { sourceExample: "p" })];
 * assert.deepEqual(policies.map((p) => p.name), POLICY_NAMES);
 * ```
 */
export const POLICY_NAMES: readonly PolicyName[] = policyName.options;

function checkFeatures(features: readonly number[], F?: number): void {
  for (const f of features) {
    if (!Number.isInteger(f) || f < 0 || (F !== undefined && f >= F)) {
      throw new InputError(
        `feature ${f} does not exist; the SAE has features 0..${(F ?? 1) - 1}`,
      );
    }
  }
}

/**
 * `ablate_features`: set features to 0, or to their mean activation.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AblateFeatures } from "./policy.ts";
 * const p = new AblateFeatures([1, 2], "mean", new Float32Array([0, 0.5, 0.25]));
 * assert(p.params().to === "mean");
 * ```
 */
export class AblateFeatures implements InterventionPolicy {
  /** The policy's name. */
  readonly name = "ablate_features" as const;
  /** The features it edits. */
  readonly features: readonly number[];
  /** `zero` or `mean`. */
  readonly to: AblateTo;
  #means?: Float32Array;

  /** Ablate `features` to zero, or to `means[f]` with `to = "mean"`. */
  constructor(
    features: readonly number[],
    to: AblateTo = "zero",
    means?: Float32Array,
  ) {
    checkFeatures(features, means?.length);
    if (to === "mean" && !means) {
      throw new InputError(`ablate_features to mean needs the feature means`);
    }
    this.features = features;
    this.to = to;
    this.#means = means;
  }

  /** Recorded parameters. */
  params(): Record<string, unknown> {
    return { features: this.features, to: this.to };
  }

  /** Edit the rows of one example. */
  apply(
    _step: StepAddress,
    h: Float32Array,
    sae: SAE,
    _context?: PolicyContext,
  ): Float32Array {
    const F = sae.cfg.d_sae;
    if (this.to === "zero" && !this.#mayFire(h, sae)) return h;
    return editActivations(h, sae, (a) => {
      for (let r = 0; r < a.length / F; r++) {
        for (const f of this.features) {
          a[r * F + f] = this.to === "mean" ? this.#means![f] : 0;
        }
      }
    });
  }

  /** False when no feature can be active in any row: zeroing then changes nothing. */
  #mayFire(h: Float32Array, sae: SAE): boolean {
    const n = h.length / sae.cfg.d_in;
    for (let r = 0; r < n; r++) {
      for (const f of this.features) {
        if (sae.preActivation(h, r, f) > 0) return true;
      }
    }
    return false;
  }
}

/**
 * `clamp_features`: set features to a value, or multiply them by a scale.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClampFeatures } from "./policy.ts";
 * assert(new ClampFeatures([0], { scale: 2 }).params().scale === 2);
 * ```
 */
export class ClampFeatures implements InterventionPolicy {
  /** The policy's name. */
  readonly name = "clamp_features" as const;
  /** The features it edits. */
  readonly features: readonly number[];
  /** The value to set, if any. */
  readonly value?: number;
  /** The scale to apply, if any. */
  readonly scale?: number;

  /** Clamp `features` to `value`, or scale them by `scale` (exactly one). */
  constructor(
    features: readonly number[],
    opts: { value?: number; scale?: number },
  ) {
    checkFeatures(features);
    if ((opts.value === undefined) === (opts.scale === undefined)) {
      throw new OptionError(
        "value",
        `clamp_features needs exactly one of {value} or {scale}`,
      );
    }
    this.features = features;
    this.value = opts.value;
    this.scale = opts.scale;
  }

  /** Recorded parameters. */
  params(): Record<string, unknown> {
    return this.value !== undefined
      ? { features: this.features, value: this.value }
      : { features: this.features, scale: this.scale };
  }

  /** Edit the rows of one example. */
  apply(
    _step: StepAddress,
    h: Float32Array,
    sae: SAE,
    _context?: PolicyContext,
  ): Float32Array {
    const F = sae.cfg.d_sae;
    return editActivations(h, sae, (a) => {
      for (let r = 0; r < a.length / F; r++) {
        for (const f of this.features) {
          a[r * F + f] = this.value !== undefined
            ? this.value
            : a[r * F + f] * this.scale!;
        }
      }
    });
  }
}

/**
 * `patch_features`: take the features' activations from a source: another
 * example (`sourceExample`), another step (`sourceStep`, one address), or
 * both. The unnamed half of the source is the edited row's own: its example,
 * its step. The values come from the policy context's `source` lookup (the
 * clean trace, in `intervene`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PatchFeatures } from "./policy.ts";
 * import { SAE } from "../sae/sae.ts";
 * const sae = new SAE({ arch: "relu", d_in: 2, d_sae: 2 });
 * sae.W_enc.set([1, 0, 0, 1]);
 * sae.W_dec.set([1, 0, 0, 1]);
 * // The source holds feature 1's value 9 only at s0.h0.H of example "a".
 * const source = (s: { sup: number }, ex: string) =>
 *   s.sup === 0 && ex === "a" ? Float32Array.of(0, 9) : Float32Array.of(0, 0);
 * const patch = new PatchFeatures([1], { sourceStep: "s0.h0.H" });
 * const out = patch.apply({ sup: 3, h: 1, l: "H" }, Float32Array.of(2, 1), sae, { example: "a", positions: [0], source });
 * assert.deepEqual([...out], [2, 9]);
 * ```
 */
export class PatchFeatures implements InterventionPolicy {
  /** The policy's name. */
  readonly name = "patch_features" as const;
  /** The features it edits. */
  readonly features: readonly number[];
  /** Source example id, if patching across examples. */
  readonly sourceExample?: string;
  /** Source step address text, if patching across steps. */
  readonly sourceStep?: string;
  #sourceAddress?: StepAddress;

  /** Patch `features` from `sourceExample` (same address) and/or `sourceStep` (same example). */
  constructor(
    features: readonly number[],
    source: { sourceExample?: string; sourceStep?: string },
  ) {
    checkFeatures(features);
    if (source.sourceExample === undefined && source.sourceStep === undefined) {
      throw new OptionError(
        "sourceExample",
        `patch_features needs {sourceExample} and/or {sourceSteps}`,
      );
    }
    this.features = features;
    this.sourceExample = source.sourceExample;
    this.sourceStep = source.sourceStep;
    if (source.sourceStep !== undefined) {
      this.#sourceAddress = parseAddress(source.sourceStep);
    }
  }

  /** Recorded parameters. */
  params(): Record<string, unknown> {
    return {
      features: this.features,
      source_example: this.sourceExample ?? null,
      source_step: this.sourceStep ?? null,
    };
  }

  /** Edit the rows of one example. */
  apply(
    step: StepAddress,
    h: Float32Array,
    sae: SAE,
    context: PolicyContext,
  ): Float32Array {
    const src = context.source?.(
      this.#sourceAddress ?? step,
      this.sourceExample ?? context.example,
    );
    if (!src) return h;
    const F = sae.cfg.d_sae;
    return editActivations(h, sae, (a) => {
      for (let r = 0; r < a.length / F; r++) {
        for (const f of this.features) a[r * F + f] = src[r * F + f];
      }
    });
  }
}
