/**
 * Training options and their resolution: {@linkcode resolveFitOptions}
 * applies `SAE_DEFAULTS` once and checks every value, so the trainer, the
 * `sae fit` command and sae.pt's `cfg.training` see the same numbers.
 *
 * @module
 */
import { InputError } from "../../errors.ts";
import {
  architecture,
  type ArchOptions,
  type SAEArch,
  type SaeArchitecture,
  type SAEConfig,
} from "../arch/mod.ts";
import { SAE_DEFAULTS } from "../defaults.ts";

/**
 * Training options. Every field has a default in `SAE_DEFAULTS` (or in the
 * architecture's own defaults, `SAE_DEFAULTS.archs`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { FitOptions } from "./options.ts";
 * const opts: FitOptions = { arch: "topk", expansion: 16, k: 16, steps: 100, seed: 0 };
 * assert.equal(opts.k, 16);
 * ```
 */
export interface FitOptions extends ArchOptions {
  /** The architecture; default `SAE_DEFAULTS.arch`. */
  arch?: SAEArch;
  /** Dictionary size F; default `round(expansion · D)`. */
  d_sae?: number;
  /** Used when `d_sae` is not given; default `SAE_DEFAULTS.expansion`. */
  expansion?: number;
  /** Adam learning rate; default the architecture's own (`SAE_DEFAULTS.archs.relu.lr`), else `SAE_DEFAULTS.lr`. */
  lr?: number;
  /** Final steps over which the learning rate decays linearly to 0; default `floor(steps · SAE_DEFAULTS.lrDecayFraction)`. */
  lr_decay_steps?: number;
  /** Adam β1; default `SAE_DEFAULTS.beta1`. */
  beta1?: number;
  /** Adam β2; default `SAE_DEFAULTS.beta2`. */
  beta2?: number;
  /** Adam ε; default `SAE_DEFAULTS.eps`. */
  eps?: number;
  /** Rows per step; default `SAE_DEFAULTS.batch`, capped at the training rows. */
  batch_size?: number;
  /** Optimiser steps; default from `epochs` when given, else `SAE_DEFAULTS.trainSteps`. */
  steps?: number;
  /** Passes over the training rows, when `steps` is not given. */
  epochs?: number;
  /** Seed for init and minibatch order; default 0. */
  seed?: number;
  /** Training row indices into the source; default all rows. */
  indices?: Int32Array;
  /** `b_dec` init: the data mean (default) or geometric median (Weiszfeld), both streamed. */
  b_dec_init?: "mean" | "geometric_median";
  /** A latent is dead after this many training rows without firing; default
   * `min(SAE_DEFAULTS.deadTokens, training rows)`. */
  dead_tokens?: number;
  /** Loss-curve samples, evenly spaced over the steps; default `SAE_DEFAULTS.curvePoints`. */
  curve_points?: number;
  /** Use the WASM SIMD kernels when D % 4 == 0 and F is even (default true).
   * They sum in float32 lanes, the plain loops partly in float64, so the two
   * paths give slightly different (each deterministic) results. */
  simd?: boolean;
  /**
   * `expected_average_only_in` (the default, as SAELens): train on inputs
   * scaled so that the mean ‖x‖ over the training rows is √D, which makes
   * the defaults hold at any data scale; the scale is folded into the
   * returned weights, so the SAE reads raw states. `none`: the raw states.
   */
  normalize_activations?: "expected_average_only_in" | "none";
}

/** The options with every default applied and checked. */
export interface ResolvedFit {
  /** The architecture. */
  arch: SaeArchitecture;
  /** The SAE's cfg. */
  cfg: SAEConfig;
  /** The architecture's own options, as given (it applies its defaults). */
  archOptions: ArchOptions;
  /** Training row indices. */
  train: Int32Array;
  /** Adam learning rate. */
  lr: number;
  /** Final steps of linear decay to 0. */
  lrDecaySteps: number;
  /** Adam β1. */
  beta1: number;
  /** Adam β2. */
  beta2: number;
  /** Adam ε. */
  eps: number;
  /** Rows per step. */
  batch: number;
  /** Optimiser steps. */
  steps: number;
  /** Passes over the training rows, when given. */
  epochs?: number;
  /** Seed. */
  seed: number;
  /** `b_dec` init. */
  bDecInit: "mean" | "geometric_median";
  /** Dead window, in rows. */
  deadTokens: number;
  /** Loss-curve samples. */
  curvePoints: number;
  /** Whether the SIMD kernels may be used. */
  simd: boolean;
  /** Input normalization. */
  normalize: "expected_average_only_in" | "none";
}

/**
 * The dictionary size the options give for width `D`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dictionarySize } from "./options.ts";
 * assert.equal(dictionarySize(48, {}), 384);
 * assert.equal(dictionarySize(48, { expansion: 2.5 }), 120);
 * assert.equal(dictionarySize(48, { d_sae: 100 }), 100);
 * ```
 */
export function dictionarySize(
  D: number,
  opts: { d_sae?: number; expansion?: number },
): number {
  return opts.d_sae ??
    Math.round((opts.expansion ?? SAE_DEFAULTS.expansion) * D);
}

/**
 * Apply the defaults to `opts` for rows of `source` and check every value;
 * an {@linkcode InputError} names a bad one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveFitOptions } from "./options.ts";
 * const r = resolveFitOptions({ n: 100, dim: 8 }, { epochs: 2, batch_size: 30 });
 * assert.equal(r.cfg.d_sae, 64);
 * assert.equal(r.steps, 7); // ceil(2 · 100 / 30)
 * assert.equal(r.deadTokens, 100);
 * assert.throws(() => resolveFitOptions({ n: 100, dim: 8 }, { lr: 0 }), /lr must be > 0/);
 * ```
 */
export function resolveFitOptions(
  source: { n: number; dim: number },
  opts: FitOptions,
): ResolvedFit {
  const D = source.dim;
  if (!Number.isInteger(D) || D < 1) {
    throw new InputError(
      `sae fit: source dim must be a positive integer, got ${D}`,
    );
  }
  const arch = architecture(opts.arch ?? SAE_DEFAULTS.arch);
  const F = dictionarySize(D, opts);
  posInt("d_sae", F);
  const cfg = arch.config(D, F, opts);
  arch.checkConfig(cfg);
  const train = trainIndices(source.n, opts.indices);
  const N = train.length;
  const batch = Math.min(opts.batch_size ?? SAE_DEFAULTS.batch, N);
  posInt("batch_size", batch);
  const steps = opts.steps ??
    (opts.epochs === undefined
      ? SAE_DEFAULTS.trainSteps
      : Math.ceil((opts.epochs * N) / batch));
  posInt("steps", steps);
  const r: ResolvedFit = {
    arch,
    cfg,
    archOptions: opts,
    train,
    lr: opts.lr ?? defaultLr(arch),
    lrDecaySteps: opts.lr_decay_steps ??
      Math.floor(steps * SAE_DEFAULTS.lrDecayFraction),
    beta1: opts.beta1 ?? SAE_DEFAULTS.beta1,
    beta2: opts.beta2 ?? SAE_DEFAULTS.beta2,
    eps: opts.eps ?? SAE_DEFAULTS.eps,
    batch,
    steps,
    epochs: opts.epochs,
    seed: opts.seed ?? 0,
    bDecInit: opts.b_dec_init ?? SAE_DEFAULTS.bDecInit,
    deadTokens: opts.dead_tokens ?? Math.min(SAE_DEFAULTS.deadTokens, N),
    curvePoints: opts.curve_points ?? SAE_DEFAULTS.curvePoints,
    simd: opts.simd ?? true,
    normalize: opts.normalize_activations ?? SAE_DEFAULTS.normalize,
  };
  check(r);
  return r;
}

/**
 * The learning rate `arch` trains with by default: its own, when its
 * defaults name one, else `SAE_DEFAULTS.lr`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultLr } from "./options.ts";
 * import { architecture } from "../arch/mod.ts";
 * import { SAE_DEFAULTS } from "../defaults.ts";
 * assert.equal(defaultLr(architecture("topk")), SAE_DEFAULTS.lr);
 * ```
 */
export function defaultLr(arch: SaeArchitecture): number {
  const own = arch.defaults.lr;
  return typeof own === "number" ? own : SAE_DEFAULTS.lr;
}

function trainIndices(n: number, indices?: Int32Array): Int32Array {
  const train = indices ?? Int32Array.from({ length: n }, (_, i) => i);
  if (train.length < 1) throw new InputError("sae fit: no training rows");
  for (let i = 0; i < train.length; i++) {
    if (!(train[i] >= 0 && train[i] < n)) {
      throw new InputError(
        `sae fit: row index ${train[i]} out of range [0, ${n})`,
      );
    }
  }
  return train;
}

function check(r: ResolvedFit): void {
  const bad = (what: string, v: unknown) => {
    throw new InputError(`sae fit: bad ${what}: ${JSON.stringify(v)}`);
  };
  if (!(r.lr > 0)) {
    throw new InputError(`sae fit: lr must be > 0, got ${r.lr}`);
  }
  if (!(Number.isInteger(r.lrDecaySteps) && r.lrDecaySteps >= 0)) {
    bad("lr_decay_steps", r.lrDecaySteps);
  }
  if (!Number.isSafeInteger(r.seed)) bad("seed (must be an integer)", r.seed);
  if (!(r.beta1 >= 0 && r.beta1 < 1)) bad("Adam beta1", r.beta1);
  if (!(r.beta2 >= 0 && r.beta2 < 1)) bad("Adam beta2", r.beta2);
  if (!(r.eps > 0)) bad("eps", r.eps);
  if (!(r.deadTokens > 0)) bad("dead_tokens", r.deadTokens);
  posInt("curve_points", r.curvePoints);
  if (r.bDecInit !== "mean" && r.bDecInit !== "geometric_median") {
    throw new InputError(
      `sae fit: b_dec_init must be "mean" or "geometric_median", got ${
        JSON.stringify(r.bDecInit)
      }`,
    );
  }
  if (r.normalize !== "expected_average_only_in" && r.normalize !== "none") {
    bad("normalize_activations", r.normalize);
  }
}

function posInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) {
    throw new InputError(
      `sae fit: ${name} must be a positive integer, got ${v}`,
    );
  }
}
