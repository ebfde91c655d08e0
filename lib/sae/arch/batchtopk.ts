/**
 * The BatchTopK SAE (Bussmann, Leask and Nanda 2024, SAELens `batchtopk`):
 * while training, the `k · B` largest positive pre-activations of the whole
 * batch of B rows are kept, so a row may use more or fewer than k latents;
 * AuxK as TopK. At inference a row cannot see its batch, so a latent is
 * active when its pre-activation exceeds one threshold: a moving average,
 * over the training steps, of the smallest activation each batch kept.
 * SAELens saves such an SAE as a JumpReLU SAE with that threshold for every
 * latent, and so does the SAELens export here.
 *
 * @module
 */
import { InputError } from "../../errors.ts";
import type { ArchTrainer, SaeArchitecture } from "./architecture.ts";
import { AuxK, auxKSettings } from "./auxk.ts";
import { checkK, defaultK, TOPK_DEFAULTS } from "./topk.ts";

/**
 * BatchTopK's defaults: k (on average per row) and AuxK as TopK, and the rate
 * of the threshold's moving average (SAELens' `topk_threshold_lr`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BATCHTOPK_DEFAULTS } from "./batchtopk.ts";
 * assert.equal(BATCHTOPK_DEFAULTS.thresholdLr, 0.01);
 * ```
 */
export const BATCHTOPK_DEFAULTS: {
  readonly k: number;
  readonly kPerD: number;
  readonly kAuxPerD: number;
  readonly auxCoefficient: number;
  readonly thresholdLr: number;
} = {
  ...TOPK_DEFAULTS,
  /** Each step: threshold ← (1 − rate) · threshold + rate · (smallest kept activation). */
  thresholdLr: 0.01,
};

/**
 * The `m` largest values seen, as a binary min-heap: its root is the m-th
 * largest once full. Only the value matters, so ties need no order.
 */
class LargestValues {
  #h: Float32Array;
  #n = 0;
  constructor(m: number) {
    this.#h = new Float32Array(m);
  }
  reset(): void {
    this.#n = 0;
  }
  get size(): number {
    return this.#n;
  }
  /** The smallest value kept (the m-th largest once full); 0 when empty. */
  get min(): number {
    return this.#n > 0 ? this.#h[0] : 0;
  }
  get full(): boolean {
    return this.#n === this.#h.length;
  }
  offer(v: number): void {
    const h = this.#h;
    if (this.#n < h.length) {
      let i = this.#n++;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
      }
      h[i] = v;
      return;
    }
    if (!(v > h[0])) return;
    const n = this.#n;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && h[c + 1] < h[c]) c++;
      if (h[c] >= v) break;
      h[i] = h[c];
      i = c;
    }
    h[i] = v;
  }
}

/**
 * BatchTopK: the k·B largest positive pre-activations of a training batch;
 * a threshold at inference.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BATCHTOPK } from "./batchtopk.ts";
 * // Training: a batch of two rows, k = 1: the two largest of the batch.
 * const cfg = BATCHTOPK.config(2, 3, { k: 1 });
 * const t = BATCHTOPK.trainer(cfg, { D: 2, F: 3, steps: 1, batch: 2 }, {});
 * const pre = new Float32Array([5, 4, -1, 0.5, 3, 0]);
 * t.beginStep(0, { mask: new Uint8Array(3), count: 0 });
 * t.scan!(pre, 2);
 * const idx = new Int32Array(3), val = new Float32Array(3);
 * assert.equal(t.activate(pre, 0, idx, val), 2); // row 0 keeps 5 and 4
 * assert.equal(t.activate(pre, 3, idx, val), 0); // row 1 keeps nothing
 * t.endStep();
 * assert.equal(t.finish().threshold, Math.fround(0.04)); // 0.01 × the smallest kept (4)
 * // Inference: the threshold alone.
 * const n = BATCHTOPK.activate(new Float32Array([0.03, 0.05, -1]), 0, { ...cfg, threshold: 0.04 }, idx, val);
 * assert.deepEqual([...idx.subarray(0, n)], [1]);
 * ```
 */
export const BATCHTOPK: SaeArchitecture = {
  name: "batchtopk",
  saelensName: "jumprelu",
  summary:
    "the k x B largest pre-activations of a batch of B rows in training, a learnt threshold at inference, with AuxK",
  defaults: BATCHTOPK_DEFAULTS,
  checkConfig(cfg) {
    checkK(cfg, "batchtopk");
    const t = cfg.threshold;
    if (t !== undefined && !(Number.isFinite(t) && t >= 0)) {
      throw new InputError(
        `sae cfg.threshold must be a finite number >= 0 for batchtopk, got ${t}`,
      );
    }
  },
  config(D, F, opts) {
    return {
      arch: "batchtopk",
      d_in: D,
      d_sae: F,
      k: opts.k ?? defaultK(D, F, BATCHTOPK_DEFAULTS),
      threshold: 0,
    };
  },
  maxActive: (cfg) => cfg.d_sae,
  activate(pre, off, cfg, idx, val) {
    const thr = cfg.threshold ?? 0;
    let na = 0;
    for (let j = 0; j < cfg.d_sae; j++) {
      const v = pre[off + j];
      if (v > thr && v > 0) {
        idx[na] = j;
        val[na++] = v;
      }
    }
    return na;
  },
  trainer(cfg, setup, opts): ArchTrainer {
    const s = auxKSettings(setup, opts, BATCHTOPK_DEFAULTS);
    const aux = new AuxK(s, setup);
    const rate = opts.threshold_lr ?? BATCHTOPK_DEFAULTS.thresholdLr;
    if (!(rate >= 0 && rate <= 1)) {
      throw new InputError(`sae fit: bad threshold_lr: ${rate}`);
    }
    const kept = new LargestValues(cfg.k! * setup.batch);
    let threshold = 0; // the moving average, in float64
    let cut = 0; // this batch's: keep v >= cut (v > 0 when not full)
    return {
      hyper: {
        k_aux: s.kAux,
        aux_coefficient: s.coefficient,
        threshold_lr: rate,
      },
      auxCap: s.kAux,
      beginStep(_step, dead) {
        aux.begin(dead);
        kept.reset();
      },
      scan(pre, rows) {
        const n = rows * setup.F;
        for (let i = 0; i < n; i++) {
          const v = pre[i];
          if (v > 0) kept.offer(v);
        }
        cut = kept.full ? kept.min : 0;
      },
      activate(pre, off, idx, val) {
        let na = 0;
        for (let j = 0; j < setup.F; j++) {
          const v = pre[off + j];
          // Ties at the cut are all kept: the value, not an index, decides.
          if (v > 0 && v >= cut) {
            idx[na] = j;
            val[na++] = v;
          }
        }
        return na;
      },
      activeGradient: () => 0,
      afterRow: (ws, pre, off, r) => aux.row(ws, pre, off, r),
      endStep() {
        if (kept.size > 0) {
          threshold = (1 - rate) * threshold + rate * kept.min;
        }
        return { aux: aux.loss(), l1: 0 };
      },
      finish: () => ({ threshold: Math.fround(threshold) }),
    };
  },
  // SAELens loads a BatchTopK SAE for inference as JumpReLU: no k.
  saelensFields: () => ({}),
  saelensTensors: (cfg) => ({
    threshold: {
      shape: [cfg.d_sae],
      data: new Float32Array(cfg.d_sae).fill(cfg.threshold ?? 0),
    },
  }),
};
