/**
 * The interface every SAE architecture implements, as in SAELens: one module
 * per architecture (`topk.ts`, `relu.ts`, `batchtopk.ts`). Each owns its
 * activation, its training loss terms, its defaults and its SAELens fields;
 * the encoder, the generic trainer and the exporters ask it instead of
 * switching on a name.
 *
 * @module
 */
import type { SAEConfig } from "../../schema/mod.ts";

/** SAE architectures, from the zod schema `SaeArchSchema`. */
export type SAEArch = SAEConfig["arch"];

export type { SAEConfig };

/**
 * Architecture options a caller may set; each architecture reads its own and
 * fills the rest from its defaults.
 */
export interface ArchOptions {
  /** Active latents per row (topk) or per row on average (batchtopk). */
  k?: number;
  /** L1 coefficient (relu). */
  l1_coefficient?: number;
  /** Steps over which the L1 coefficient ramps up linearly from 0 (relu). */
  l1_warmup_steps?: number;
  /** AuxK latents (topk, batchtopk); 0 disables AuxK. */
  k_aux?: number;
  /** AuxK loss weight (topk, batchtopk). */
  aux_coefficient?: number;
  /** Rate of the moving average that sets the inference threshold (batchtopk). */
  threshold_lr?: number;
}

/** What a training run looks like, as an architecture's loss terms need it. */
export interface TrainSetup {
  /** Input width D. */
  D: number;
  /** Dictionary size F. */
  F: number;
  /** Optimiser steps. */
  steps: number;
  /** Rows per step. */
  batch: number;
}

/**
 * The trainer's per-row buffers and sparse kernels, as loss terms use them.
 * List 0 holds the active latents, list 1 a second list (AuxK). `e` is the
 * row's residual `x̂ − x`; `rr` is list 1's output.
 */
export interface LatentKernels {
  /** Residual `x̂ − x` of the current row. */
  e: Float32Array;
  /** Output of list 1: on entry to {@linkcode decode}, its starting value. */
  rr: Float32Array;
  /** List 1's latents. */
  auxIdx: Int32Array;
  /** List 1's coefficients. */
  auxVal: Float32Array;
  /** List 0: `e += Σ f_j W_dec[j]`; list 1: `rr += Σ z_j W_dec[j]`. */
  decode(list: 0 | 1, n: number): void;
  /**
   * Back-propagate list `list` for chunk row `r`, `rr` (list 1) or the
   * residual gradient (list 0) being the gradient of the output, `add` added
   * to each listed latent's pre-activation gradient.
   */
  backward(list: 0 | 1, n: number, add: number, r: number): void;
}

/** The latents dead at this step (by the trainer's dead window). */
export interface DeadLatents {
  /** 1 for a dead latent. */
  mask: Uint8Array;
  /** How many are dead. */
  count: number;
}

/**
 * One architecture's part of one training run, made by
 * {@linkcode SaeArchitecture.trainer}. The trainer calls, per step:
 * `beginStep`, then `scan` on every chunk of pre-activations when the
 * architecture has one (a batch-level activation sees the whole batch
 * first), then per row `activate`, the reconstruction's backward with
 * `activeGradient()` added, and `afterRow`; finally `endStep`.
 */
export interface ArchTrainer {
  /** The hyperparameters this architecture trains with, as used (for `cfg.training`). */
  readonly hyper: Readonly<Record<string, number>>;
  /** Entries list 1 needs (0: no second list). */
  readonly auxCap: number;
  /** Start of a step. */
  beginStep(step: number, dead: DeadLatents): void;
  /** A first pass over `rows` rows of pre-activations (`[rows, F]`). */
  scan?(pre: Float32Array, rows: number): void;
  /** The training activation of the row `pre[off .. off+F)`, as {@linkcode SaeArchitecture.activate}. */
  activate(
    pre: Float32Array,
    off: number,
    idx: Int32Array,
    val: Float32Array,
  ): number;
  /** Added to the loss gradient of every active latent's pre-activation (an L1 term's). */
  activeGradient(): number;
  /** Extra loss terms of chunk row `r` after its reconstruction's backward. */
  afterRow?(
    kernels: LatentKernels,
    pre: Float32Array,
    off: number,
    r: number,
  ): void;
  /** End of a step: its weighted extra loss terms, averaged over the batch. */
  endStep(): { aux: number; l1: number };
  /** cfg fields learnt in training (BatchTopK's threshold). */
  finish(): Partial<SAEConfig>;
}

/** A tensor an architecture adds to the SAELens export. */
export interface ExtraTensor {
  /** Dimensions. */
  shape: number[];
  /** Values, row-major. */
  data: Float32Array;
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
  /** The SAELens v6 `architecture` name of the exported (inference) SAE. */
  readonly saelensName: string;
  /** One line for `--help`. */
  readonly summary: string;
  /** This architecture's defaults (part of `SAE_DEFAULTS.archs`). */
  readonly defaults: Readonly<Record<string, number | string>>;
  /** Throw unless the architecture's own cfg fields are valid. */
  checkConfig(cfg: SAEConfig): void;
  /** The cfg an SAE of this architecture gets for `D`, `F` and options. */
  config(D: number, F: number, opts: ArchOptions): SAEConfig;
  /** Capacity the active list of one row needs. */
  maxActive(cfg: SAEConfig): number;
  /**
   * Fill `idx`/`val` with the active latents of the pre-activation row
   * `pre[off .. off+F)` (positive activations only, the largest first for
   * TopK) and return their count. This is the inference activation.
   */
  activate(
    pre: Float32Array,
    off: number,
    cfg: SAEConfig,
    idx: Int32Array,
    val: Float32Array,
  ): number;
  /** This architecture's part of a training run. */
  trainer(cfg: SAEConfig, setup: TrainSetup, opts: ArchOptions): ArchTrainer;
  /** Architecture-specific keys of the SAELens v6 `cfg.json`. */
  saelensFields(cfg: SAEConfig): Record<string, unknown>;
  /** Tensors the SAELens export adds to the four (a JumpReLU `threshold`). */
  saelensTensors(cfg: SAEConfig): Record<string, ExtraTensor>;
}
