/**
 * The one table of `sae fit` defaults. `resolveFitOptions` applies it once;
 * the library (`fitSAE`, `runSaeFit`), the CLI's `--help` and the spec read
 * it, so they all train the same SAE. Each architecture's own defaults come
 * from its module under `arch/` and appear here under `archs`.
 *
 * @module
 */
import { ARCHITECTURES, type SAEArch } from "./arch/mod.ts";

/** The defaults of one architecture, by its own keys. */
export type ArchDefaults = Readonly<Record<string, number | string>>;

/** The type of {@linkcode SAE_DEFAULTS}. */
export interface SaeDefaults {
  /** The architecture. */
  readonly arch: "topk";
  /** F = expansion × D. */
  readonly expansion: number;
  /** Adam learning rate. */
  readonly lr: number;
  /** Share of the steps, at the end, over which the learning rate decays linearly to 0. */
  readonly lrDecayFraction: number;
  /** Adam β1. */
  readonly beta1: number;
  /** Adam β2. */
  readonly beta2: number;
  /** Adam ε. */
  readonly eps: number;
  /** Rows per optimiser step (capped at the training rows). */
  readonly batch: number;
  /** Optimiser steps. */
  readonly trainSteps: number;
  /** `b_dec` init. */
  readonly bDecInit: "mean";
  /** A latent is dead after this many training rows without firing (capped at the training rows). */
  readonly deadTokens: number;
  /** Loss-curve samples, evenly spaced over the steps. */
  readonly curvePoints: number;
  /** Held-out fraction of examples for the metrics. */
  readonly holdout: number;
  /** The latent to fit on. */
  readonly latent: "z_H";
  /** Step selector of the training rows. */
  readonly steps: string;
  /** Scale inputs to mean ‖x‖ = √D while training (folded into the weights). */
  readonly normalize: "expected_average_only_in";
  /** Each architecture's own defaults. */
  readonly archs: Readonly<Record<SAEArch, ArchDefaults>>;
}

/**
 * Defaults of SAE training and of `sae fit`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SAE_DEFAULTS } from "./defaults.ts";
 * import { architecture } from "./arch/mod.ts";
 * assert.equal(SAE_DEFAULTS.arch, "topk");
 * assert.equal(architecture("topk").config(64, 512, {}).k, 64 * Number(SAE_DEFAULTS.archs.topk.kPerD));
 * ```
 */
export const SAE_DEFAULTS: SaeDefaults = {
  arch: "topk",
  expansion: 8,
  lr: 1e-3,
  lrDecayFraction: 0,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  batch: 1024,
  trainSteps: 3000,
  bDecInit: "mean",
  // 10M tokens, as Gao et al. 2024.
  deadTokens: 10_000_000,
  curvePoints: 100,
  holdout: 0.1,
  latent: "z_H",
  steps: "all",
  normalize: "expected_average_only_in",
  archs: Object.fromEntries(
    Object.entries(ARCHITECTURES).map(([n, a]) => [n, a.defaults]),
  ) as Record<SAEArch, ArchDefaults>,
};
