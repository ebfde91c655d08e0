/**
 * The three v0 intervention policies. Each rewrites SAE feature activations
 * and keeps the SAE error term: `h' = h − decode(encode(h)) + decode(a')`.
 *
 * @module
 */
import type { StepAddress } from "../model/address.ts";
import { InputError } from "../errors.ts";
import type { SAE } from "../sae/sae.ts";

/** What a policy may consult besides the state. */
export interface PolicyContext {
  /** Example id. */
  example: string;
  /** Positions of the rows in `h` (prefix first). */
  positions: readonly number[];
  /**
   * Source activations for `patch_features`: `[rows, F]` for this example's
   * rows, or undefined when the source has no state at this step.
   */
  source?: (step: StepAddress, example: string) => Float32Array | undefined;
}

/** The policy names of v0. */
export type PolicyName =
  | "ablate_features"
  | "clamp_features"
  | "patch_features";

/** The v0 policy names, for `--policy`. */
export const POLICY_NAMES: readonly PolicyName[] = [
  "ablate_features",
  "clamp_features",
  "patch_features",
];

/**
 * An intervention policy: `apply(step, h, sae, context) -> h'`.
 *
 * @example
 * ```ts
 * import { AblateFeatures, type InterventionPolicy } from "./policy.ts";
 * const p: InterventionPolicy = new AblateFeatures([3]);
 * console.assert(p.name === "ablate_features");
 * ```
 */
export interface InterventionPolicy {
  /** The policy's name. */
  readonly name: PolicyName;
  /** The features it edits. */
  readonly features: readonly number[];
  /** Its parameters, as recorded in report.json. */
  params(): Record<string, unknown>;
  /** Return edited states for the rows `h` (`[n, D]`) of one example at `step`. */
  apply(
    step: StepAddress,
    h: Float32Array,
    sae: SAE,
    context: PolicyContext,
  ): Float32Array;
}

/**
 * Apply an edit of the activations while keeping the SAE error term:
 * `h' = h + (a' − a) W_dec`, which equals `h − decode(a) + decode(a')`.
 * When the edit changes nothing, `h` is returned as is, so an identity
 * policy reproduces the baseline exactly.
 *
 * @example
 * ```ts
 * import { SAE } from "../sae/sae.ts";
 * import { editActivations } from "./policy.ts";
 * const sae = new SAE({ arch: "relu", d_in: 2, d_sae: 2 });
 * sae.W_enc.set([1, 0, 0, 1]);
 * sae.W_dec.set([1, 0, 0, 1]);
 * const h = new Float32Array([3, 1]);
 * const out = editActivations(h, sae, (a) => void (a[0] = 0));
 * console.assert(out[0] === 0 && out[1] === 1);
 * ```
 */
export function editActivations(
  h: Float32Array,
  sae: SAE,
  edit: (a: Float32Array) => void,
): Float32Array {
  const { d_in: D, d_sae: F } = sae.cfg;
  const a = sae.encode(h);
  const edited = a.slice();
  edit(edited);
  const n = h.length / D;
  let out: Float32Array | null = null;
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < F; j++) {
      const d = edited[r * F + j] - a[r * F + j];
      if (d === 0) continue;
      out ??= h.slice();
      const o = j * D;
      for (let i = 0; i < D; i++) out[r * D + i] += d * sae.W_dec[o + i];
    }
  }
  return out ?? h;
}

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
 * import { AblateFeatures } from "./policy.ts";
 * const p = new AblateFeatures([1, 2], "mean", new Float32Array([0, 0.5, 0.25]));
 * console.assert(p.params().to === "mean");
 * ```
 */
export class AblateFeatures implements InterventionPolicy {
  /** The policy's name. */
  readonly name = "ablate_features" as const;
  /** The features it edits. */
  readonly features: readonly number[];
  /** `zero` or `mean`. */
  readonly to: "zero" | "mean";
  #means?: Float32Array;

  /** Ablate `features` to zero, or to `means[f]` with `to = "mean"`. */
  constructor(
    features: readonly number[],
    to: "zero" | "mean" = "zero",
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
  apply(_step: StepAddress, h: Float32Array, sae: SAE): Float32Array {
    const F = sae.cfg.d_sae;
    return editActivations(h, sae, (a) => {
      for (let r = 0; r < a.length / F; r++) {
        for (const f of this.features) {
          a[r * F + f] = this.to === "mean" ? this.#means![f] : 0;
        }
      }
    });
  }
}

/**
 * `clamp_features`: set features to a value, or multiply them by a scale.
 *
 * @example
 * ```ts
 * import { ClampFeatures } from "./policy.ts";
 * console.assert(new ClampFeatures([0], { scale: 2 }).params().scale === 2);
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
      throw new InputError(
        `clamp_features needs exactly one of --value V or --scale S`,
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
  apply(_step: StepAddress, h: Float32Array, sae: SAE): Float32Array {
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
 * example at the same address, or other steps of the same example.
 *
 * @example
 * ```ts
 * import { PatchFeatures } from "./policy.ts";
 * console.assert(new PatchFeatures([4], { sourceExample: "p1" }).params().source_example === "p1");
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

  /** Patch `features` from `sourceExample` (same address) and/or `sourceStep` (same example). */
  constructor(
    features: readonly number[],
    source: { sourceExample?: string; sourceStep?: string },
  ) {
    checkFeatures(features);
    if (source.sourceExample === undefined && source.sourceStep === undefined) {
      throw new InputError(
        `patch_features needs --source-example ID and/or --source-steps SELECTOR`,
      );
    }
    this.features = features;
    this.sourceExample = source.sourceExample;
    this.sourceStep = source.sourceStep;
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
    const src = context.source?.(step, this.sourceExample ?? context.example);
    if (!src) return h;
    const F = sae.cfg.d_sae;
    return editActivations(h, sae, (a) => {
      for (let r = 0; r < a.length / F; r++) {
        for (const f of this.features) a[r * F + f] = src[r * F + f];
      }
    });
  }
}
