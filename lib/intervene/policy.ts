/**
 * Intervention policies: the interface, the hook that runs one during a
 * rollout, the three v0 policies (each rewrites SAE feature activations and
 * keeps the SAE error term, `h' = h − decode(encode(h)) + decode(a')`), and
 * the two splices that `sae fit` measures (the SAE reconstruction, zeros).
 *
 * @module
 */
import type { StepAddress, StepSelector } from "../model/address.ts";
import { rowEditHook } from "../model/hooks.ts";
import type { Hook, Latent } from "../model/rollout.ts";
import { InputError, OptionError } from "../errors.ts";
import type { SAE } from "../sae/sae.ts";

/** Source activations for `patch_features`: `[rows, F]` of `example` at `step`, or undefined. */
export type SourceLookup = (
  step: StepAddress,
  example: string,
) => Float32Array | undefined;

/** What a policy may consult besides the state. */
export interface PolicyContext {
  /** Example id. */
  example: string;
  /** Positions of the rows in `h` (prefix first). */
  positions: readonly number[];
  /** Source activations, for policies that patch from elsewhere. */
  source?: SourceLookup;
}

/** The names of the three v0 policies that the CLI offers. */
export type PolicyName =
  | "ablate_features"
  | "clamp_features"
  | "patch_features";

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
export const POLICY_NAMES: readonly PolicyName[] = [
  "ablate_features",
  "clamp_features",
  "patch_features",
];

/**
 * An intervention policy: `apply(step, h, sae, context) -> h'`. Users write
 * their own by implementing it, and run any policy during a rollout with
 * {@linkcode policyHook}. Returning `h` itself means "no change", and the
 * state is then left bit for bit as it was.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { InterventionPolicy } from "./policy.ts";
 * import { SAE } from "../sae/sae.ts";
 * const negate: InterventionPolicy = {
 *   name: "negate",
 *   params: () => ({}),
 *   apply: (_step, h) => h.map((v) => -v),
 * };
 * const out = negate.apply({ sup: 0, h: 0, l: "H" }, new Float32Array([1, -2]),
 *   new SAE({ arch: "relu", d_in: 2, d_sae: 2 }), { example: "a", positions: [0] });
 * assert.deepEqual([...out], [-1, 2]);
 * ```
 */
export interface InterventionPolicy {
  /** The policy's name, as recorded in report.json. */
  readonly name: string;
  /** The SAE features it edits, if it edits features. */
  readonly features?: readonly number[];
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

/** Where {@linkcode policyHook} applies a policy. */
export interface PolicySite {
  /** The SAE's latent. */
  latent: Latent;
  /** Steps to act on. */
  steps: StepSelector;
  /** Positions to act on (prefix first). */
  positions: readonly number[];
  /** Source activations, for patching policies. */
  source?: SourceLookup;
}

/**
 * A rollout hook that applies `policy` to the rows of every running example
 * at the site's steps and positions.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadBundle } from "../model/bundle.ts";
 * import { rollout } from "../model/rollout.ts";
 * import { StepSelector } from "../model/address.ts";
 * import { SAE } from "../sae/sae.ts";
 * import { policyHook, ZeroPolicy } from "./policy.ts";
 * const bundle = await loadBundle(new URL("../../references/models/sudoku4-trm", import.meta.url).pathname);
 * try {
 *   const ex = { id: "p0", tokens: [1, 3, 4, 1, 4, 1, 1, 3, 3, 1, 1, 4, 1, 4, 3, 1], label: [2, 3, 4, 5, 4, 5, 2, 3, 3, 2, 5, 4, 5, 4, 3, 2] };
 *   const sae = new SAE({ arch: "relu", d_in: 64, d_sae: 8 });
 *   const hook = policyHook(new ZeroPolicy(), sae, {
 *     latent: "z_H", steps: StepSelector.parse("s*.*.H"), positions: Array.from({ length: 16 }, (_, i) => i),
 *   });
 *   const [clean] = await rollout(bundle, [ex]);
 *   const [zeroed] = await rollout(bundle, [ex], { hooks: [hook] });
 *   assert.notDeepEqual([...zeroed.logits], [...clean.logits]);
 * } finally {
 *   await bundle.release();
 * }
 * ```
 */
export function policyHook(
  policy: InterventionPolicy,
  sae: SAE,
  site: PolicySite,
): Hook {
  return rowEditHook({
    latent: site.latent,
    selector: site.steps,
    positions: site.positions,
    edit: (rows, c) => {
      const next = policy.apply(c.address, rows, sae, {
        example: c.example.id,
        positions: site.positions,
        source: site.source,
      });
      if (next === rows) return false;
      rows.set(next);
    },
  });
}

/**
 * Apply an edit of the activations while keeping the SAE error term:
 * `h' = h + (a' − a) W_dec`, which equals `h − decode(a) + decode(a')`.
 * When the edit changes nothing, `h` is returned as is, so an identity
 * policy reproduces the baseline exactly.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SAE } from "../sae/sae.ts";
 * import { editActivations } from "./policy.ts";
 * const sae = new SAE({ arch: "relu", d_in: 2, d_sae: 2 });
 * sae.W_enc.set([1, 0, 0, 1]);
 * sae.W_dec.set([1, 0, 0, 1]);
 * const h = new Float32Array([3, 1]);
 * const out = editActivations(h, sae, (a) => void (a[0] = 0));
 * assert(out[0] === 0 && out[1] === 1);
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
 * example at the same address, or other steps of the same example.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PatchFeatures } from "./policy.ts";
 * assert(new PatchFeatures([4], { sourceExample: "p1" }).params().source_example === "p1");
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
      throw new OptionError(
        "sourceExample",
        `patch_features needs {sourceExample} and/or {sourceSteps}`,
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

/**
 * Replace the rows by their SAE reconstruction `decode(encode(h))` (no error
 * term): what "task accuracy recovered" splices in.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SAE } from "../sae/sae.ts";
 * import { ReconstructPolicy } from "./policy.ts";
 * const sae = new SAE({ arch: "relu", d_in: 2, d_sae: 2 });
 * sae.W_enc.set([1, 0, 0, 1]);
 * sae.W_dec.set([1, 0, 0, 1]);
 * const out = new ReconstructPolicy().apply({ sup: 0, h: 0, l: "H" }, new Float32Array([3, -1]), sae);
 * assert.deepEqual([...out], [3, 0]);
 * ```
 */
export class ReconstructPolicy implements InterventionPolicy {
  /** The policy's name. */
  readonly name = "sae_reconstruction";
  /** Recorded parameters. */
  params(): Record<string, unknown> {
    return {};
  }
  /** The reconstruction of the rows. */
  apply(
    _step: StepAddress,
    h: Float32Array,
    sae: SAE,
    _context?: PolicyContext,
  ): Float32Array {
    return sae.decode(sae.encode(h));
  }
}

/**
 * Replace the rows by zeros: the floor "task accuracy recovered" is measured
 * against.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SAE } from "../sae/sae.ts";
 * import { ZeroPolicy } from "./policy.ts";
 * const sae = new SAE({ arch: "relu", d_in: 2, d_sae: 2 });
 * const out = new ZeroPolicy().apply({ sup: 0, h: 0, l: "H" }, new Float32Array([3, -1]), sae);
 * assert.deepEqual([...out], [0, 0]);
 * ```
 */
export class ZeroPolicy implements InterventionPolicy {
  /** The policy's name. */
  readonly name = "zero";
  /** Recorded parameters. */
  params(): Record<string, unknown> {
    return {};
  }
  /** Zeros of the rows' shape. */
  apply(
    _step: StepAddress,
    h: Float32Array,
    _sae: SAE,
    _context?: PolicyContext,
  ): Float32Array {
    return new Float32Array(h.length);
  }
}
