/**
 * The AuxK loss of Gao et al. 2024 ("Scaling and evaluating sparse
 * autoencoders"), shared by the TopK-style architectures: the top `k_aux`
 * dead latents of each row reconstruct the row's residual `x − x̂` without
 * `b_dec`, weighted by `aux_coefficient` and scaled by
 * `min(n_dead / k_aux, 1)` as in SAELens. Their pre-activations are used raw
 * (no ReLU), as in SAELens v6.
 *
 * @module
 */
import type { DeadLatents, LatentKernels, TrainSetup } from "./architecture.ts";
import { selectTopK } from "./select.ts";
import { InputError } from "../../errors.ts";

/** The AuxK settings every TopK-style architecture shares. */
export interface AuxKSettings {
  /** AuxK latents per row (0: no AuxK). */
  kAux: number;
  /** AuxK loss weight. */
  coefficient: number;
}

/**
 * Resolve `k_aux` (default `floor(D · kAuxPerD)`, at most F) and the
 * coefficient, checking both.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { auxKSettings } from "./auxk.ts";
 * const s = auxKSettings({ D: 48, F: 384, steps: 10, batch: 8 }, {}, { kAuxPerD: 0.5, auxCoefficient: 1 / 32 });
 * assert.deepEqual(s, { kAux: 24, coefficient: 1 / 32 });
 * assert.throws(() => auxKSettings({ D: 4, F: 8, steps: 1, batch: 1 }, { k_aux: -1 }, { kAuxPerD: 0.5, auxCoefficient: 1 }), /k_aux/);
 * ```
 */
export function auxKSettings(
  setup: TrainSetup,
  opts: { k_aux?: number; aux_coefficient?: number },
  defaults: { kAuxPerD: number; auxCoefficient: number },
): AuxKSettings {
  const kAux = Math.min(
    opts.k_aux ?? Math.floor(setup.D * defaults.kAuxPerD),
    setup.F,
  );
  const coefficient = opts.aux_coefficient ?? defaults.auxCoefficient;
  if (!Number.isInteger(kAux) || kAux < 0) {
    throw new InputError(`sae fit: bad k_aux: ${opts.k_aux}`);
  }
  if (!(coefficient >= 0)) {
    throw new InputError(`sae fit: bad aux_coefficient: ${coefficient}`);
  }
  return { kAux, coefficient };
}

/**
 * The AuxK term of one training run.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AuxK } from "./auxk.ts";
 * const aux = new AuxK({ kAux: 2, coefficient: 1 / 32 }, { D: 2, F: 4, steps: 1, batch: 1 });
 * aux.begin({ mask: new Uint8Array(4), count: 0 });
 * assert.equal(aux.loss(), 0); // no dead latent, no term
 * ```
 */
export class AuxK {
  #s: AuxKSettings;
  #setup: TrainSetup;
  #dead: DeadLatents = { mask: new Uint8Array(0), count: 0 };
  #k = 0;
  #scale = 0;
  #sse = 0;

  /** An AuxK term with `settings` for a run of `setup`. */
  constructor(settings: AuxKSettings, setup: TrainSetup) {
    this.#s = settings;
    this.#setup = setup;
  }

  /** Start a step with this step's dead latents. */
  begin(dead: DeadLatents): void {
    const { kAux, coefficient } = this.#s;
    this.#dead = dead;
    this.#k = Math.min(kAux, dead.count);
    this.#scale = this.#k > 0
      ? Math.min(dead.count / kAux, 1) * coefficient
      : 0;
    this.#sse = 0;
  }

  /** The term for chunk row `r`: its dead latents reconstruct the (detached) residual. */
  row(ws: LatentKernels, pre: Float32Array, off: number, r: number): void {
    if (this.#k === 0) return;
    const { D, F, batch } = this.#setup;
    const n = selectTopK(
      pre,
      off,
      F,
      this.#k,
      ws.auxIdx,
      ws.auxVal,
      this.#dead.mask,
    );
    const rr = ws.rr;
    rr.set(ws.e); // ê − (x − x̂) = ê + e
    ws.decode(1, n);
    let s = 0;
    const c = (2 * this.#scale) / batch;
    for (let d = 0; d < D; d++) {
      s += rr[d] * rr[d];
      rr[d] *= c;
    }
    this.#sse += s;
    ws.backward(1, n, 0, r);
  }

  /** The step's weighted AuxK loss, averaged over the batch. */
  loss(): number {
    return (this.#sse / this.#setup.batch) * this.#scale;
  }
}
