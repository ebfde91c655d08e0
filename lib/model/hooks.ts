/**
 * Step hooks that rewrite selected state rows during a rollout: the shared
 * mechanism behind SAE splicing in `sae fit` and the policies of `intervene`.
 *
 * @module
 */
import type { StepAddress, StepSelector } from "./address.ts";
import type { Latent, StepEvent } from "./rollout.ts";

/** Where a row edit applies, passed to the edit callback. */
export interface RowEditContext {
  /** The step's address. */
  address: StepAddress;
  /** Global step index. */
  t: number;
  /** Index of the example within the batch. */
  b: number;
}

/** What {@linkcode rowEditHook} edits. */
export interface RowEditSpec {
  /** The latent to edit. */
  latent: Latent;
  /** Steps to edit. */
  selector: StepSelector;
  /** Positions (prefix first) to edit. */
  positions: readonly number[];
  /**
   * Edit `rows` (`[positions.length, D]`, float32) in place. Return false to
   * leave the example's state untouched.
   */
  edit: (rows: Float32Array, ctx: RowEditContext) => boolean | void;
}

/**
 * Build an `onStep` hook that gathers the selected rows of each example,
 * hands them to `edit`, and writes them back into the state.
 *
 * @example
 * ```ts
 * import { rowEditHook } from "./hooks.ts";
 * import { StepSelector } from "./address.ts";
 * const hook = rowEditHook({
 *   latent: "z_H",
 *   selector: StepSelector.parse("all"),
 *   positions: [0],
 *   edit: (rows) => void rows.fill(0),
 * });
 * const state = new Float32Array([1, 2, 3, 4]);
 * hook({ address: { sup: 0, h: 0, l: "H" }, t: 0, latent: "z_H", state, batch: 1, positions: 2, dim: 2,
 *   halted: new Uint8Array(1) });
 * console.assert(state[0] === 0 && state[2] === 3);
 * ```
 */
export function rowEditHook(spec: RowEditSpec): (e: StepEvent) => void {
  return (e) => {
    if (e.latent !== spec.latent || !spec.selector.matches(e.address)) return;
    const D = e.dim, T = e.positions;
    const rows = new Float32Array(spec.positions.length * D);
    for (let b = 0; b < e.batch; b++) {
      if (e.halted[b]) continue;
      spec.positions.forEach((p, k) => {
        const off = (b * T + p) * D;
        for (let j = 0; j < D; j++) rows[k * D + j] = e.state[off + j];
      });
      if (spec.edit(rows, { address: e.address, t: e.t, b }) === false) {
        continue;
      }
      spec.positions.forEach((p, k) => {
        const off = (b * T + p) * D;
        for (let j = 0; j < D; j++) e.state[off + j] = rows[k * D + j];
      });
    }
  };
}
