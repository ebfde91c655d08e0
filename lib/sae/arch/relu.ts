/**
 * The ReLU SAE (SAELens `standard`): ReLU of the pre-activations, trained
 * with an L1 penalty that ramps up linearly over a warm-up.
 *
 * @module
 */
import { InputError } from "../../errors.ts";
import type { ArchTrainer, SaeArchitecture } from "./architecture.ts";

/**
 * ReLU's defaults: its learning rate, the L1 coefficient and the share of
 * the steps its warm-up takes (5%, as in Anthropic's April 2024 update).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RELU_DEFAULTS } from "./relu.ts";
 * assert.equal(RELU_DEFAULTS.l1WarmupFraction, 0.05);
 * ```
 */
export const RELU_DEFAULTS: {
  readonly lr: number;
  readonly l1: number;
  readonly l1WarmupFraction: number;
} = {
  /**
   * Adam learning rate. Ten times TopK's: on inputs normalized to mean
   * ‖x‖ = √D the encoder biases a ReLU SAE needs to reject interference are
   * several units, and Adam moves a bias about lr per step (v0-spec §4.1
   * has the measurements).
   */
  lr: 1e-2,
  /** L1 coefficient, on inputs normalized to mean ‖x‖ = √D. */
  l1: 5,
  /** `l1_warmup_steps = floor(steps · l1WarmupFraction)`. */
  l1WarmupFraction: 0.05,
};

/**
 * ReLU with an L1 penalty. Decoder rows are kept at unit norm, so the
 * SAELens decoder-norm-weighted penalty `Σ f_j ‖W_dec[j]‖` is `Σ f_j`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RELU } from "./relu.ts";
 * const idx = new Int32Array(3), val = new Float32Array(3);
 * const n = RELU.activate(new Float32Array([0.5, -1, 2]), 0, RELU.config(2, 3, {}), idx, val);
 * assert.deepEqual([...idx.subarray(0, n)], [0, 2]);
 * const t = RELU.trainer(RELU.config(2, 3, {}), { D: 2, F: 3, steps: 100, batch: 4 }, {});
 * assert.equal(t.hyper.l1_warmup_steps, 5);
 * ```
 */
export const RELU: SaeArchitecture = {
  name: "relu",
  saelensName: "standard",
  summary: "ReLU with an L1 penalty ramped up linearly",
  defaults: RELU_DEFAULTS,
  checkConfig(): void {},
  config: (D, F) => ({ arch: "relu", d_in: D, d_sae: F }),
  maxActive: (cfg) => cfg.d_sae,
  activate(pre, off, cfg, idx, val) {
    let na = 0;
    for (let j = 0; j < cfg.d_sae; j++) {
      const v = pre[off + j];
      if (v > 0) {
        idx[na] = j;
        val[na++] = v;
      }
    }
    return na;
  },
  trainer(cfg, setup, opts): ArchTrainer {
    const l1 = opts.l1_coefficient ?? RELU_DEFAULTS.l1;
    const warm = opts.l1_warmup_steps ??
      Math.floor(setup.steps * RELU_DEFAULTS.l1WarmupFraction);
    if (!(l1 >= 0) || !(Number.isInteger(warm) && warm >= 0)) {
      throw new InputError(
        `sae fit: bad l1_coefficient/l1_warmup_steps: ${l1}/${warm}`,
      );
    }
    let now = 0, sum = 0;
    return {
      hyper: { l1_coefficient: l1, l1_warmup_steps: warm },
      auxCap: 0,
      beginStep(step) {
        now = l1 * (warm > 0 ? Math.min(1, (step + 1) / warm) : 1);
        sum = 0;
      },
      activate(pre, off, idx, val) {
        const n = RELU.activate(pre, off, cfg, idx, val);
        for (let a = 0; a < n; a++) sum += val[a];
        return n;
      },
      // d(λ Σ f_j)/d pre_j = λ for every active latent, per row of the mean.
      activeGradient: () => now / setup.batch,
      endStep: () => ({ aux: 0, l1: (sum / setup.batch) * now }),
      finish: () => ({}),
    };
  },
  saelensFields: () => ({}),
  saelensTensors: () => ({}),
};
