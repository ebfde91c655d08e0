/**
 * The one table of `sae fit` defaults: the library (`fitSAE`, `runSaeFit`),
 * the CLI and its `--help` all read it, so they train the same SAE.
 *
 * @module
 */

/**
 * Defaults of SAE training and of `sae fit`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SAE_DEFAULTS } from "./defaults.ts";
 * assert.equal(SAE_DEFAULTS.arch, "topk");
 * assert.ok(SAE_DEFAULTS.k <= SAE_DEFAULTS.expansion * 64);
 * ```
 */
export const SAE_DEFAULTS: {
  readonly arch: "topk";
  readonly expansion: number;
  readonly k: number;
  readonly l1: number;
  readonly lr: number;
  readonly batch: number;
  readonly trainSteps: number;
  readonly holdout: number;
  readonly latent: "z_H";
  readonly steps: string;
  readonly normalize: "expected_average_only_in";
} = {
  /** TopK needs no sparsity coefficient to tune. */
  arch: "topk",
  /** F = expansion × D. */
  expansion: 8,
  /** Active latents per row for TopK. */
  k: 16,
  /** L1 coefficient for ReLU. */
  l1: 5,
  /** Adam learning rate. */
  lr: 1e-3,
  /** Rows per optimiser step. */
  batch: 1024,
  /** Optimiser steps. */
  trainSteps: 3000,
  /** Held-out fraction of examples for the metrics. */
  holdout: 0.1,
  /** The latent to fit on. */
  latent: "z_H",
  /** Step selector of the training rows. */
  steps: "all",
  /** Scale inputs to mean ‖x‖ = √D while training (folded into the weights). */
  normalize: "expected_average_only_in",
};
