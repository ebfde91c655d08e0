/**
 * The edit machinery that `sae fit` and `intervene` share: the policy
 * interface, the hook that runs a policy during a rollout, the splice that
 * keeps the SAE error term, and the two splices that `sae fit` measures (the
 * SAE reconstruction, zeros). It sits below both commands and knows an SAE
 * only as a {@linkcode FeatureDictionary}, so lib/sae never imports
 * lib/intervene.
 *
 * @module
 */
import type { StepAddress, StepSelector } from "../model/address.ts";
import { rowEditHook } from "../model/hooks.ts";
import type { Hook, Latent } from "../model/rollout.ts";

/**
 * What the edit machinery needs of an SAE: its widths, its decoder and its
 * encode/decode. lib/sae's `SAE` is one; so is any dictionary a user brings.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SAE } from "../sae/sae.ts";
 * import type { FeatureDictionary } from "./policy.ts";
 * const dict: FeatureDictionary = new SAE({ arch: "relu", d_in: 2, d_sae: 3 });
 * assert.equal(dict.W_dec.length, dict.cfg.d_sae * dict.cfg.d_in);
 * ```
 */
export interface FeatureDictionary {
  /** Widths: `d_in` (D, the state) and `d_sae` (F, the features). */
  readonly cfg: { readonly d_in: number; readonly d_sae: number };
  /** Decoder `[F,D]`. */
  readonly W_dec: Float32Array;
  /** Feature activations `[n,F]` for states `[n,D]`. */
  encode(h: Float32Array): Float32Array;
  /** Reconstruction `[n,D]` from activations `[n,F]`. */
  decode(a: Float32Array): Float32Array;
}

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
    sae: FeatureDictionary,
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
  sae: FeatureDictionary,
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
  sae: FeatureDictionary,
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
    sae: FeatureDictionary,
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
    _sae: FeatureDictionary,
    _context?: PolicyContext,
  ): Float32Array {
    return new Float32Array(h.length);
  }
}
