/**
 * The interface every SAE architecture implements, as in SAELens: one module
 * per architecture (`topk.ts`, `relu.ts`), and the code that encodes, trains
 * and exports an SAE asks its architecture instead of switching on a name.
 *
 * @module
 */

/** SAE architectures: TopK (the default) or ReLU trained with an L1 penalty. */
export type SAEArch = "topk" | "relu";

/**
 * The SAE configuration stored next to the tensors.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { SAEConfig } from "./architecture.ts";
 * const cfg: SAEConfig = { arch: "topk", d_in: 64, d_sae: 1024, k: 16 };
 * assert.equal(cfg.k, 16);
 * ```
 */
export interface SAEConfig {
  /** Activation: `topk` keeps the k largest pre-activations, then ReLU. */
  arch: SAEArch;
  /** Input width D. */
  d_in: number;
  /** Dictionary size F. */
  d_sae: number;
  /** Active latents per row; required for `topk`. */
  k?: number;
}

/** Training settings an architecture contributes, resolved from options and defaults. */
export interface ArchTraining {
  /** L1 coefficient (0: no L1 term). */
  l1: number;
  /** Steps over which L1 ramps up linearly from 0. */
  l1WarmupSteps: number;
  /** AuxK latents (0: no AuxK term). */
  kAux: number;
}

/**
 * One SAE architecture.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { architecture } from "./mod.ts";
 * const arch = architecture("topk");
 * const idx = new Int32Array(2), val = new Float32Array(2);
 * const n = arch.activate(new Float32Array([0.5, -1, 2, 1]), 0, { arch: "topk", d_in: 2, d_sae: 4, k: 2 }, idx, val);
 * assert.equal(n, 2);
 * assert.deepEqual([...idx], [2, 3]);
 * ```
 */
export interface SaeArchitecture {
  /** The name stored in `cfg.arch`. */
  readonly name: SAEArch;
  /** The SAELens v6 `architecture` name. */
  readonly saelensName: string;
  /** Throw unless the architecture's own cfg fields are valid. */
  checkConfig(cfg: SAEConfig): void;
  /** The cfg an SAE of this architecture gets for `D`, `F` and options. */
  config(D: number, F: number, opts: { k?: number }): SAEConfig;
  /** Capacity the active list of one row needs. */
  maxActive(cfg: SAEConfig): number;
  /**
   * Fill `idx`/`val` with the active latents of the pre-activation row
   * `pre[off .. off+F)` (positive activations only, the largest first for
   * TopK) and return their count.
   */
  activate(
    pre: Float32Array,
    off: number,
    cfg: SAEConfig,
    idx: Int32Array,
    val: Float32Array,
  ): number;
  /** The training terms this architecture adds to the reconstruction loss. */
  training(
    D: number,
    cfg: SAEConfig,
    steps: number,
    opts: { l1_coefficient?: number; l1_warmup_steps?: number; k_aux?: number },
  ): ArchTraining;
  /** Architecture-specific keys of the SAELens v6 `cfg.json`. */
  saelensFields(cfg: SAEConfig): Record<string, unknown>;
}
