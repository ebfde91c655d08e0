/**
 * A hook that rewrites selected state rows of each example during a rollout:
 * the mechanism under policies (`policyHook`), SAE splicing and any custom
 * edit.
 *
 * @module
 */
import type { StepAddress, StepSelector } from "./address.ts";
import type { Hook, Latent, RolloutExample } from "./rollout.ts";

/** Where a row edit applies, passed to the edit callback. */
export interface RowEditContext {
  /** The step's address. */
  address: StepAddress;
  /** Global step index. */
  t: number;
  /** Index of the example within the batch. */
  b: number;
  /** The example. */
  example: RolloutExample;
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
 * A hook that gathers the selected rows of each running example, hands them
 * to `edit`, and writes them back into the state. Halted examples are left
 * alone.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rowEditHook } from "./hooks.ts";
 * import { StepSelector } from "./address.ts";
 * const hook = rowEditHook({
 *   latent: "z_H",
 *   selector: StepSelector.parse("all"),
 *   positions: [0],
 *   edit: (rows) => void rows.fill(0),
 * });
 * const state = new Float32Array([1, 2, 3, 4]);
 * hook.onStep!({
 *   address: { sup: 0, h: 0, l: "H" }, t: 0, latent: "z_H", state, batch: 1, positions: 2, dim: 2,
 *   halted: new Uint8Array(1), examples: [{ id: "a", tokens: [], label: [] }], offset: 0,
 * });
 * assert.deepEqual([...state], [0, 0, 3, 4]);
 * ```
 */
export function rowEditHook(spec: RowEditSpec): Hook {
  return {
    onStep(e) {
      if (e.latent !== spec.latent || !spec.selector.matches(e.address)) {
        return;
      }
      const D = e.dim, T = e.positions;
      const rows = new Float32Array(spec.positions.length * D);
      for (let b = 0; b < e.batch; b++) {
        if (e.halted[b]) continue;
        spec.positions.forEach((p, k) => {
          const off = (b * T + p) * D;
          for (let j = 0; j < D; j++) rows[k * D + j] = e.state[off + j];
        });
        const ctx = { address: e.address, t: e.t, b, example: e.examples[b] };
        if (spec.edit(rows, ctx) === false) continue;
        spec.positions.forEach((p, k) => {
          const off = (b * T + p) * D;
          for (let j = 0; j < D; j++) e.state[off + j] = rows[k * D + j];
        });
      }
    },
  };
}
