/**
 * A hook that rewrites selected state rows of each example during a rollout:
 * the mechanism under policies (`policyHook`), SAE splicing and any custom
 * edit.
 *
 * @module
 */
import type { StepAddress, StepSelector } from "./address.ts";
import type {
  Carry,
  Hook,
  Latent,
  RolloutExample,
  SupervisionEndEvent,
} from "./rollout.ts";

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

/**
 * A hook that keeps each example's carry at supervision-step boundaries, so
 * later rollouts that differ only from step `sup` on start there instead of
 * recomputing the shared prefix. Carries are keyed by the example's index in
 * the list passed to `rollout`; halted examples get none (nothing they do
 * changes after halting).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadBundle } from "./bundle.ts";
 * import { rollout } from "./rollout.ts";
 * import { CarryRecorder } from "./hooks.ts";
 * const bundle = await loadBundle(new URL("../../references/models/sudoku4-trm", import.meta.url).pathname);
 * try {
 *   const ex = { id: "p0", tokens: [1, 3, 4, 1, 4, 1, 1, 3, 3, 1, 1, 4, 1, 4, 3, 1], label: [2, 3, 4, 5, 4, 5, 2, 3, 3, 2, 5, 4, 5, 4, 3, 2] };
 *   const carries = new CarryRecorder([5]);
 *   const [full] = await rollout(bundle, [ex], { hooks: [carries] });
 *   const [resumed] = await rollout(bundle, [{ ...ex, start: carries.carry(0, 5) }]);
 *   assert.deepEqual([...resumed.logits], [...full.logits]);
 *   assert.equal(resumed.predPerSup.length, 8);
 * } finally {
 *   await bundle.release();
 * }
 * ```
 */
export class CarryRecorder implements Hook {
  readonly #sups?: ReadonlySet<number>;
  readonly #carries = new Map<number, Map<number, Carry>>();
  readonly #preds = new Map<number, Int32Array[]>();

  /** Keep the carries that start the supervision steps `sups` (default: every step). */
  constructor(sups?: Iterable<number>) {
    if (sups) this.#sups = new Set(sups);
  }

  /** Record the carry after a supervision step. */
  onSupervisionEnd(e: SupervisionEndEvent): void {
    const B = e.examples.length, S = e.pred.length / B;
    const n = e.positions * e.dim;
    const next = e.sup + 1;
    for (let b = 0; b < B; b++) {
      const i = e.offset + b;
      let preds = this.#preds.get(i);
      if (!preds) {
        preds = [...(e.examples[b].start?.predPerSup ?? [])];
        this.#preds.set(i, preds);
      }
      preds.push(e.pred.slice(b * S, (b + 1) * S));
      if (e.halted[b] || (this.#sups && !this.#sups.has(next))) continue;
      let m = this.#carries.get(i);
      if (!m) this.#carries.set(i, m = new Map());
      m.set(next, {
        sup: next,
        zH: e.zH.slice(b * n, (b + 1) * n),
        zL: e.zL.slice(b * n, (b + 1) * n),
        predPerSup: [...preds],
      });
    }
  }

  /** The carry of example `index` that starts supervision step `sup`, if kept. */
  carry(index: number, sup: number): Carry | undefined {
    return this.#carries.get(index)?.get(sup);
  }
}
