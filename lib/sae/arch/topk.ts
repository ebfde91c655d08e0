/**
 * The TopK SAE (Gao et al. 2024, SAELens `topk`): keep the k largest
 * pre-activations of each row, then ReLU; trained with the AuxK loss on dead
 * latents.
 *
 * @module
 */
import { OptionError } from "../../errors.ts";
import type {
  ArchTrainer,
  SaeArchitecture,
  SAEConfig,
} from "./architecture.ts";
import { AuxK, auxKSettings } from "./auxk.ts";
import { selectTopK } from "./select.ts";

export { selectTopK };

/**
 * TopK's defaults: `k = round(D/8)`, at most 16 (and at most F), and AuxK's
 * `k_aux = D/2` (SAELens) with weight 1/32 (Gao et al. 2024).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TOPK_DEFAULTS } from "./topk.ts";
 * assert.equal(TOPK_DEFAULTS.auxCoefficient, 1 / 32);
 * ```
 */
export const TOPK_DEFAULTS: {
  readonly k: number;
  readonly kPerD: number;
  readonly kAuxPerD: number;
  readonly auxCoefficient: number;
} = {
  /** The most active latents per row a default gives. */
  k: 16,
  /** `k = round(D · kPerD)` below that: a k near the true number of active
   * directions recovers a dictionary, one far above it mixes them. */
  kPerD: 1 / 8,
  /** `k_aux = floor(D · kAuxPerD)` dead latents per row for AuxK. */
  kAuxPerD: 0.5,
  /** AuxK loss weight. */
  auxCoefficient: 1 / 32,
};

/**
 * The default k for width `D` and `F` latents: `round(D · kPerD)`, at least
 * 1, at most `k` and F.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultK, TOPK_DEFAULTS } from "./topk.ts";
 * assert.equal(defaultK(48, 384, TOPK_DEFAULTS), 6);
 * assert.equal(defaultK(64, 512, TOPK_DEFAULTS), 8);
 * assert.equal(defaultK(512, 4096, TOPK_DEFAULTS), 16);
 * ```
 */
export function defaultK(
  D: number,
  F: number,
  d: { k: number; kPerD: number },
): number {
  return Math.min(d.k, F, Math.max(1, Math.round(D * d.kPerD)));
}

/** Check `cfg.k` for the TopK-style architecture `arch`. */
export function checkK(cfg: SAEConfig, arch: string): void {
  const k = cfg.k;
  if (k === undefined || !Number.isInteger(k) || k < 1 || k > cfg.d_sae) {
    throw new OptionError(
      "k",
      `{k} must be an integer in [1, d_sae=${cfg.d_sae}] for ${arch}, got ${k}`,
    );
  }
}

/**
 * TopK: the k largest pre-activations, then ReLU; trained with AuxK.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TOPK } from "./topk.ts";
 * assert.equal(TOPK.config(64, 512, {}).k, 8);
 * assert.throws(() => TOPK.checkConfig({ arch: "topk", d_in: 4, d_sae: 8, k: 9 }), /k must be an integer in \[1, d_sae=8\]/);
 * const cfg = TOPK.config(4, 8, { k: 2 });
 * const t = TOPK.trainer(cfg, { D: 4, F: 8, steps: 10, batch: 2 }, {});
 * assert.deepEqual(t.hyper, { k_aux: 2, aux_coefficient: 1 / 32 });
 * ```
 */
export const TOPK: SaeArchitecture = {
  name: "topk",
  saelensName: "topk",
  summary: "the k largest pre-activations of each row, then ReLU, with AuxK",
  defaults: TOPK_DEFAULTS,
  checkConfig: (cfg) => checkK(cfg, "topk"),
  config(D, F, opts) {
    return {
      arch: "topk",
      d_in: D,
      d_sae: F,
      k: opts.k ?? defaultK(D, F, TOPK_DEFAULTS),
    };
  },
  maxActive: (cfg) => cfg.k!,
  activate(pre, off, cfg, idx, val) {
    const cnt = selectTopK(pre, off, cfg.d_sae, cfg.k!, idx, val);
    // A latent that TopK kept but ReLU zeroes is not active.
    let na = 0;
    for (let a = 0; a < cnt; a++) {
      if (val[a] > 0) {
        idx[na] = idx[a];
        val[na++] = val[a];
      }
    }
    return na;
  },
  trainer(cfg, setup, opts): ArchTrainer {
    const s = auxKSettings(setup, opts, TOPK_DEFAULTS);
    const aux = new AuxK(s, setup);
    return {
      hyper: { k_aux: s.kAux, aux_coefficient: s.coefficient },
      auxCap: s.kAux,
      beginStep: (_step, dead) => aux.begin(dead),
      activate: (pre, off, idx, val) => TOPK.activate(pre, off, cfg, idx, val),
      activeGradient: () => 0,
      afterRow: (ws, pre, off, r) => aux.row(ws, pre, off, r),
      endStep: () => ({ aux: aux.loss(), l1: 0 }),
      finish: () => ({}),
    };
  },
  saelensFields: (cfg) => ({ k: cfg.k }),
  saelensTensors: () => ({}),
};
