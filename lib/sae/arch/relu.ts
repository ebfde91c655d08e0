/**
 * The ReLU SAE (SAELens `standard`): ReLU of the pre-activations, trained
 * with an L1 penalty that ramps up linearly over a warm-up.
 *
 * @module
 */
import { SAE_DEFAULTS } from "../defaults.ts";
import type { SaeArchitecture } from "./architecture.ts";

/**
 * ReLU with an L1 penalty.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RELU } from "./relu.ts";
 * const idx = new Int32Array(3), val = new Float32Array(3);
 * const n = RELU.activate(new Float32Array([0.5, -1, 2]), 0, RELU.config(2, 3, {}), idx, val);
 * assert.deepEqual([...idx.subarray(0, n)], [0, 2]);
 * assert.equal(RELU.training(2, RELU.config(2, 3, {}), 100, {}).l1WarmupSteps, 5);
 * ```
 */
export const RELU: SaeArchitecture = {
  name: "relu",
  saelensName: "standard",
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
  training(_D, _cfg, steps, opts) {
    return {
      l1: opts.l1_coefficient ?? SAE_DEFAULTS.l1,
      // 5% of the steps, as SAELens' default L1 warm-up.
      l1WarmupSteps: opts.l1_warmup_steps ?? Math.floor(steps / 20),
      kAux: 0,
    };
  },
  saelensFields: () => ({}),
};
