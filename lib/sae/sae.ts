/**
 * Sparse autoencoder parameters and the forward pass, in the SAELens v6
 * convention: `f = act((x - b_dec) W_enc + b_enc)`, `x̂ = f W_dec + b_dec`,
 * with `W_enc [D,F]`, `W_dec [F,D]`, `b_enc [F]`, `b_dec [D]`, row-major.
 *
 * @module
 */

import { InputError } from "../errors.ts";
import { architecture, type SAEArch, type SAEConfig } from "./arch/mod.ts";
import { preActivations } from "./encode_kernel.ts";
import { MAX_SAE_WEIGHTS } from "./limits.ts";
import { decodeSaePt, readSaePt, type SaeFileConfig } from "./sae_pt.ts";

/** Rows from which {@linkcode SAE.encode} uses the SIMD kernel. */
const SIMD_MIN_ROWS = 8;

export type { SAEArch, SAEConfig };
export { MAX_SAE_WEIGHTS };

/**
 * A row-major float32 tensor.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SAE, type SAETensor } from "./sae.ts";
 * const sae = new SAE({ arch: "relu", d_in: 2, d_sae: 3 });
 * sae.W_enc[1] = 0.5; // row 0, column 1 of [D, F]
 * const t: SAETensor = sae.toTensors().W_enc;
 * assert.deepEqual(t.shape, [2, 3]);
 * assert.equal(t.data[0 * 3 + 1], 0.5); // row-major
 * // A tensor of the wrong shape is refused, naming it.
 * assert.throws(() => SAE.fromTensors({ ...sae.toTensors(), W_enc: { shape: [3, 2], data: t.data } }, sae.cfg), /W_enc has shape \[3,2\]/);
 * ```
 */
export interface SAETensor {
  /** Dimensions, outermost first. */
  shape: number[];
  /** Values in row-major order. */
  data: Float32Array;
}

/**
 * The four SAE parameter tensors, named as in SAELens.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SAE, type SAETensors } from "./sae.ts";
 * const t: SAETensors = new SAE({ arch: "relu", d_in: 2, d_sae: 3 }).toTensors();
 * assert(t.W_enc.shape[1] === 3);
 * ```
 */
export interface SAETensors {
  /** Encoder `[D,F]`. */
  W_enc: SAETensor;
  /** Decoder `[F,D]`. */
  W_dec: SAETensor;
  /** Encoder bias `[F]`. */
  b_enc: SAETensor;
  /** Decoder bias `[D]`, also subtracted from the input. */
  b_dec: SAETensor;
}

function checkConfig(cfg: SAEConfig): void {
  for (const key of ["d_in", "d_sae"] as const) {
    const v = cfg[key];
    if (!Number.isInteger(v) || v < 1) {
      throw new InputError(
        `sae cfg.${key} must be a positive integer, got ${v}`,
      );
    }
  }
  if (cfg.d_in * cfg.d_sae > MAX_SAE_WEIGHTS) {
    throw new InputError(
      `sae cfg d_in=${cfg.d_in} × d_sae=${cfg.d_sae} is more than the ${MAX_SAE_WEIGHTS} weights per matrix trminterp handles; use d_sae ≤ ${
        Math.floor(MAX_SAE_WEIGHTS / cfg.d_in)
      }`,
    );
  }
  architecture(cfg.arch).checkConfig(cfg);
}

/**
 * A sparse autoencoder with float32 parameters in the SAELens v6 layout.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SAE } from "./sae.ts";
 * const sae = new SAE({ arch: "topk", d_in: 2, d_sae: 2, k: 1 });
 * sae.W_enc.set([1, 0, 0, 1]);
 * sae.W_dec.set([1, 0, 0, 1]);
 * const a = sae.encode(new Float32Array([3, 1]));
 * assert(a[0] === 3 && a[1] === 0);
 * assert(sae.decode(a)[0] === 3);
 * ```
 */
export class SAE {
  /** The configuration (validated). */
  readonly cfg: SAEConfig;
  /** Encoder `[D,F]`. */
  readonly W_enc: Float32Array;
  /** Decoder `[F,D]`. */
  readonly W_dec: Float32Array;
  /** Encoder bias `[F]`. */
  readonly b_enc: Float32Array;
  /** Decoder bias `[D]`. */
  readonly b_dec: Float32Array;

  /**
   * Create an SAE with all-zero parameters, or adopt the given arrays (not
   * copied). Throws {@linkcode InputError} on a bad config or wrong lengths.
   */
  constructor(
    cfg: SAEConfig,
    params?: {
      W_enc: Float32Array;
      W_dec: Float32Array;
      b_enc: Float32Array;
      b_dec: Float32Array;
    },
  ) {
    checkConfig(cfg);
    this.cfg = { ...cfg };
    const { d_in: D, d_sae: F } = cfg;
    this.W_enc = params?.W_enc ?? new Float32Array(D * F);
    this.W_dec = params?.W_dec ?? new Float32Array(F * D);
    this.b_enc = params?.b_enc ?? new Float32Array(F);
    this.b_dec = params?.b_dec ?? new Float32Array(D);
    const want = { W_enc: D * F, W_dec: F * D, b_enc: F, b_dec: D };
    for (const [name, len] of Object.entries(want)) {
      const got = this[name as keyof typeof want].length;
      if (got !== len) {
        throw new InputError(`sae ${name}: ${got} values, expected ${len}`);
      }
    }
  }

  /**
   * Feature activations `[n,F]` for states `h` `[n,D]` (row-major).
   * TopK follows SAELens v6: keep the k largest pre-activations, then ReLU.
   * From 8 rows on, the pre-activations come from a WebAssembly SIMD kernel
   * that rounds exactly as the scalar loop does (float64 sums in input
   * order), so the result never depends on how many rows a call holds.
   */
  encode(h: Float32Array): Float32Array {
    const { d_in: D, d_sae: F } = this.cfg;
    if (h.length % D !== 0) {
      throw new InputError(
        `sae encode: ${h.length} values is not a whole number of rows of width ${D}`,
      );
    }
    const n = h.length / D;
    const out = new Float32Array(n * F);
    const arch = architecture(this.cfg.arch);
    const cap = arch.maxActive(this.cfg);
    const idx = new Int32Array(cap), val = new Float32Array(cap);
    // The SIMD kernel rounds exactly as the loop below; it pays off once its
    // per-call conversion of W_enc is shared by a few rows.
    const simd = n >= SIMD_MIN_ROWS &&
      preActivations(h, D, F, this.W_enc, this.b_dec, this.b_enc, out);
    const xc = new Float64Array(simd ? 0 : D);
    const acc = new Float64Array(simd ? 0 : F);
    for (let r = 0; r < n; r++) {
      const o = r * F;
      if (!simd) {
        for (let d = 0; d < D; d++) xc[d] = h[r * D + d] - this.b_dec[d];
        for (let j = 0; j < F; j++) acc[j] = this.b_enc[j];
        // i-k-j order: stream contiguous rows of W_enc.
        for (let d = 0; d < D; d++) {
          const x = xc[d];
          if (x === 0) continue;
          const w = d * F;
          for (let j = 0; j < F; j++) acc[j] += x * this.W_enc[w + j];
        }
        for (let j = 0; j < F; j++) out[o + j] = acc[j];
      }
      const cnt = arch.activate(out, o, this.cfg, idx, val);
      out.fill(0, o, o + F);
      for (let a = 0; a < cnt; a++) out[o + idx[a]] = val[a];
    }
    return out;
  }

  /**
   * The pre-activation of `feature` for row `row` of `h` (`[n,D]`), as
   * {@linkcode SAE.encode} computes it before the activation: bit for bit
   * the same value. Its activation is 0 whenever this is not positive (TopK
   * applies ReLU after selecting), which lets a caller skip the full encode.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { SAE } from "./sae.ts";
   * const sae = new SAE({ arch: "relu", d_in: 2, d_sae: 2 });
   * sae.W_enc.set([1, 0, 0, -1]);
   * assert.equal(sae.preActivation(new Float32Array([3, 1]), 0, 1), -1);
   * ```
   */
  preActivation(h: Float32Array, row: number, feature: number): number {
    const { d_in: D, d_sae: F } = this.cfg;
    let acc = this.b_enc[feature];
    for (let d = 0; d < D; d++) {
      const x = h[row * D + d] - this.b_dec[d];
      if (x === 0) continue;
      acc += x * this.W_enc[d * F + feature];
    }
    return Math.fround(acc);
  }

  /** Reconstruction `[n,D]` from activations `a` `[n,F]`; zeros are skipped. */
  decode(a: Float32Array): Float32Array {
    const { d_in: D, d_sae: F } = this.cfg;
    if (a.length % F !== 0) {
      throw new InputError(
        `sae decode: ${a.length} values is not a whole number of rows of width ${F}`,
      );
    }
    const n = a.length / F;
    const out = new Float32Array(n * D);
    const acc = new Float64Array(D);
    for (let r = 0; r < n; r++) {
      for (let d = 0; d < D; d++) acc[d] = this.b_dec[d];
      for (let j = 0; j < F; j++) {
        const f = a[r * F + j];
        if (f === 0) continue;
        const o = j * D;
        for (let d = 0; d < D; d++) acc[d] += f * this.W_dec[o + d];
      }
      for (let d = 0; d < D; d++) out[r * D + d] = acc[d];
    }
    return out;
  }

  /** Copies of the parameters as named, shaped tensors. */
  toTensors(): SAETensors {
    const { d_in: D, d_sae: F } = this.cfg;
    return {
      W_enc: { shape: [D, F], data: this.W_enc.slice() },
      W_dec: { shape: [F, D], data: this.W_dec.slice() },
      b_enc: { shape: [F], data: this.b_enc.slice() },
      b_dec: { shape: [D], data: this.b_dec.slice() },
    };
  }

  /**
   * Build an SAE from tensors (copied). Throws {@linkcode InputError} when a
   * tensor is missing, has the wrong shape, or holds NaN or infinity.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { SAE } from "./sae.ts";
   * const a = new SAE({ arch: "topk", d_in: 4, d_sae: 8, k: 2 });
   * const b = SAE.fromTensors(a.toTensors(), a.cfg);
   * assert(b.W_dec.length === 32);
   * ```
   */
  static fromTensors(tensors: Partial<SAETensors>, cfg: SAEConfig): SAE {
    return fromTensors(tensors, cfg);
  }

  /**
   * Load an SAE from `sae.pt`: a run dir, or a path ending in `.pt`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { SAE } from "./sae.ts";
   * import { encodeSaePt } from "./sae_pt.ts";
   * const sae = new SAE({ arch: "relu", d_in: 2, d_sae: 3 });
   * sae.W_dec[4] = 0.5;
   * const cfg = { ...sae.cfg, format: "trminterp-sae/1" as const, latent: "z_H" as const, steps: "all",
   *   trace_digest: "0".repeat(64), model_sha256: "0".repeat(64), seed: 0, training: {} };
   * const path = await Deno.makeTempFile({ suffix: ".pt" });
   * try {
   *   await Deno.writeFile(path, encodeSaePt(sae, cfg));
   *   assert.equal((await SAE.load(path)).W_dec[4], 0.5);
   * } finally {
   *   await Deno.remove(path);
   * }
   * ```
   */
  static async load(path: string): Promise<SAE> {
    return (await SAE.read(path)).sae;
  }

  /**
   * Read `sae.pt` (a run dir, or a path ending in `.pt`) with its file cfg
   * and sha256. With `dIn`, an SAE of another width is refused before its
   * weights are read.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { SAE } from "./sae.ts";
   * import { encodeSaePt } from "./sae_pt.ts";
   * const sae = new SAE({ arch: "topk", d_in: 4, d_sae: 8, k: 2 });
   * const cfg = { ...sae.cfg, format: "trminterp-sae/1" as const, latent: "z_H" as const, steps: "all",
   *   trace_digest: "0".repeat(64), model_sha256: "0".repeat(64), seed: 0, training: {} };
   * const dir = await Deno.makeTempDir();
   * try {
   *   await Deno.writeFile(`${dir}/sae.pt`, encodeSaePt(sae, cfg));
   *   const back = await SAE.read(dir);
   *   assert.equal(back.cfg.latent, "z_H");
   *   assert.equal(back.sae.cfg.d_sae, 8);
   *   await assert.rejects(SAE.read(dir, { dIn: 5 }), /d_in 4/);
   * } finally {
   *   await Deno.remove(dir, { recursive: true });
   * }
   * ```
   */
  static async read(
    path: string,
    opts: { dIn?: number } = {},
  ): Promise<{ sae: SAE; cfg: SaeFileConfig; sha256: string }> {
    const file = await readSaePt(path, opts);
    return {
      sae: fromFile(file.tensors, file.cfg, file.path),
      cfg: file.cfg,
      sha256: file.sha256,
    };
  }

  /**
   * Decode `sae.pt` bytes into an SAE and its file cfg. Throws
   * {@linkcode InputError} naming `label` when the bytes are not one.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { SAE } from "./sae.ts";
   * import { encodeSaePt } from "./sae_pt.ts";
   * const sae = new SAE({ arch: "topk", d_in: 4, d_sae: 8, k: 2 });
   * sae.b_dec[3] = 1.5;
   * const cfg = { ...sae.cfg, format: "trminterp-sae/1" as const, latent: "z_H" as const, steps: "all",
   *   trace_digest: "0".repeat(64), model_sha256: "0".repeat(64), seed: 0, training: {} };
   * assert.equal(SAE.decode(encodeSaePt(sae, cfg), "sae.pt").sae.b_dec[3], 1.5);
   * assert.throws(() => SAE.decode(new Uint8Array([1, 2, 3]), "sae.pt"), /sae\.pt/);
   * ```
   */
  static decode(
    bytes: Uint8Array,
    label: string,
    opts: { dIn?: number } = {},
  ): { sae: SAE; cfg: SaeFileConfig } {
    const { tensors, cfg } = decodeSaePt(bytes, label, opts);
    return { sae: fromFile(tensors, cfg, label), cfg };
  }
}

/** The SAE a file's tensors and cfg describe; errors name the file. */
function fromFile(
  tensors: SAETensors,
  cfg: SaeFileConfig,
  label: string,
): SAE {
  try {
    return fromTensors(tensors, {
      arch: cfg.arch,
      d_in: cfg.d_in,
      d_sae: cfg.d_sae,
      k: cfg.k,
      threshold: cfg.threshold,
    });
  } catch (e) {
    throw new InputError(`${label}: ${(e as Error).message}`);
  }
}

function fromTensors(tensors: Partial<SAETensors>, cfg: SAEConfig): SAE {
  {
    checkConfig(cfg);
    const { d_in: D, d_sae: F } = cfg;
    const want: Record<keyof SAETensors, number[]> = {
      W_enc: [D, F],
      W_dec: [F, D],
      b_enc: [F],
      b_dec: [D],
    };
    const got: Partial<Record<keyof SAETensors, Float32Array>> = {};
    for (
      const [name, shape] of Object.entries(want) as [
        keyof SAETensors,
        number[],
      ][]
    ) {
      const t = tensors[name];
      if (t === undefined) throw new InputError(`sae tensors: missing ${name}`);
      if (
        t.shape.length !== shape.length ||
        t.shape.some((s, i) => s !== shape[i])
      ) {
        throw new InputError(
          `sae tensors: ${name} has shape [${t.shape}], expected [${shape}] for cfg d_in=${D} d_sae=${F}`,
        );
      }
      const size = shape.reduce((p, s) => p * s, 1);
      if (t.data.length !== size) {
        throw new InputError(
          `sae tensors: ${name} holds ${t.data.length} values, shape [${shape}] needs ${size}`,
        );
      }
      for (let i = 0; i < size; i++) {
        if (!Number.isFinite(t.data[i])) {
          throw new InputError(
            `sae tensors: ${name} has a non-finite value (${
              t.data[i]
            }) at flat index ${i}`,
          );
        }
      }
      got[name] = Float32Array.from(t.data);
    }
    return new SAE(cfg, got as Record<keyof SAETensors, Float32Array>);
  }
}
