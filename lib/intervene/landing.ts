/**
 * Where an edit's effect lands: the drop in token accuracy and the KL at
 * each output position, and, where the bundle declares a grid, the same
 * aggregated by each cell's relation to the cells the edit changed (the same
 * cell, row, column or box, or elsewhere): a locality profile.
 *
 * @module
 */
import type { Grid, PositionEffects } from "../schema/mod.ts";
import type { Hook, OutcomeTrace } from "../model/rollout.ts";
import type { Latent } from "../model/rollout.ts";
import { round7 } from "../round.ts";
import { klPerPosition } from "./evaluate.ts";

/** The relations of the locality profile, in precedence order. */
export const RELATIONS = [
  "same_cell",
  "same_row",
  "same_column",
  "same_box",
  "elsewhere",
] as const;

/** Per example (in outcome order), the positions an edit changed: 1 where it did. */
export type EditedPositions = readonly (Uint8Array | undefined)[];

/**
 * Wrap `inner` so that it records, per example of the rollout's list and
 * per position, whether it changed the `latent` state there. The masks have
 * `positions` entries (P + S).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { trackEdits } from "./landing.ts";
 * const inner = { onStep: (e: { state: Float32Array }) => { e.state[3] += 1; } }; // position 1 of example 0 (D = 2)
 * const t = trackEdits(inner as never, "z_H", 4);
 * const state = new Float32Array(2 * 4 * 2);
 * await t.hook.onStep!({ latent: "z_H", state, batch: 2, positions: 4, dim: 2, offset: 0 } as never);
 * assert.deepEqual([...t.masks[0]!], [0, 1, 0, 0]);
 * assert.equal(t.masks[1], undefined); // example 1 was not changed
 * ```
 */
export function trackEdits(
  inner: Hook,
  latent: Latent,
  positions: number,
): { hook: Hook; masks: (Uint8Array | undefined)[] } {
  const masks: (Uint8Array | undefined)[] = [];
  const hook: Hook = {
    ...inner,
    onStep: async (e) => {
      if (e.latent !== latent || !inner.onStep) return inner.onStep?.(e);
      const before = e.state.slice();
      await inner.onStep(e);
      const T = e.positions, D = e.dim;
      for (let b = 0; b < e.batch; b++) {
        for (let p = 0; p < T; p++) {
          const o = (b * T + p) * D;
          for (let i = 0; i < D; i++) {
            if (e.state[o + i] !== before[o + i]) {
              (masks[e.offset + b] ??= new Uint8Array(positions))[p] = 1;
              break;
            }
          }
        }
      }
    },
  };
  return { hook, masks };
}

/** The relation of cell `q` to the edited cells `E` of a grid. */
function relationOf(
  q: number,
  e: {
    cells: Set<number>;
    rows: Set<number>;
    cols: Set<number>;
    boxes: Set<number>;
  },
  grid: Grid,
): number {
  const r = Math.floor(q / grid.cols), c = q % grid.cols;
  if (e.cells.has(q)) return 0;
  if (e.rows.has(r)) return 1;
  if (e.cols.has(c)) return 2;
  if (grid.box && e.boxes.has(boxOf(r, c, grid))) return 3;
  return 4;
}

function boxOf(r: number, c: number, grid: Grid): number {
  const b = grid.box!;
  return Math.floor(r / b.rows) * (grid.cols / b.cols) + Math.floor(c / b.cols);
}

/**
 * Where the effect of `out` against `base` lands: per output position the
 * drop in token accuracy and the mean KL over the examples; and, with a
 * `grid`, the locality profile over the examples the edit changed, each
 * cell counted under its relation to that example's edited cells (the
 * first that holds of same cell, same row, same column, same box,
 * elsewhere). `edited[i]` marks the positions (P + S) of `base`'s example
 * `i` the edit changed; `P` prefix positions are no cells.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { landing } from "./landing.ts";
 * // A 2x2 grid, one example edited at cell 0; the edit breaks cells 0 and 3.
 * const ex = (pred: number[]) => ({ example: "a", label: [1, 1, 1, 1], pred, predPerSup: [], haltStep: 0,
 *   logits: new Float32Array(8) });
 * const base = { S: 4, V: 2, examples: [ex([1, 1, 1, 1])] };
 * const out = { S: 4, V: 2, examples: [ex([0, 1, 1, 0])] };
 * const l = landing(base, out, [Uint8Array.from([1, 0, 0, 0])], { rows: 2, cols: 2 }, 0);
 * assert.deepEqual(l.token_drop, [1, 0, 0, 1]);
 * assert.deepEqual(l.locality!.map((x) => [x.relation, x.cells, x.token_drop]), [
 *   ["same_cell", 1, 1], ["same_row", 1, 0], ["same_column", 1, 0], ["elsewhere", 1, 1]]);
 * ```
 */
export function landing(
  base: OutcomeTrace,
  out: OutcomeTrace,
  edited: EditedPositions,
  grid: Grid | undefined,
  P: number,
): PositionEffects {
  const S = base.S, V = base.V;
  const byId = new Map(out.examples.map((e) => [e.example, e]));
  const drop = new Float64Array(S), kl = new Float64Array(S);
  const rel = RELATIONS.map(() => ({ cells: 0, drop: 0, kl: 0, flipped: 0 }));
  let n = 0, editedExamples = 0, editedCells = 0;
  base.examples.forEach((b, i) => {
    const o = byId.get(b.example);
    if (!o) return;
    n++;
    const k = klPerPosition(b.logits, o.logits, V);
    const mask = edited[i];
    const cells = new Set<number>();
    if (mask) {
      for (let p = P; p < mask.length; p++) if (mask[p]) cells.add(p - P);
    }
    const e = grid && mask
      ? {
        cells,
        rows: new Set([...cells].map((q) => Math.floor(q / grid.cols))),
        cols: new Set([...cells].map((q) => q % grid.cols)),
        boxes: new Set(
          grid.box
            ? [...cells].map((q) =>
              boxOf(Math.floor(q / grid.cols), q % grid.cols, grid)
            )
            : [],
        ),
      }
      : null;
    if (mask) {
      editedExamples++;
      editedCells += cells.size;
    }
    for (let s = 0; s < S; s++) {
      const d = Number(b.pred[s] === b.label[s]) -
        Number(o.pred[s] === b.label[s]);
      drop[s] += d;
      kl[s] += k[s];
      if (e) {
        const x = rel[relationOf(s, e, grid!)];
        x.cells++;
        x.drop += d;
        x.kl += k[s];
        x.flipped += Number(b.pred[s] !== o.pred[s]);
      }
    }
  });
  const mean = (a: Float64Array) => Array.from(a, (v) => round7(n ? v / n : 0));
  return {
    examples: n,
    token_drop: mean(drop),
    kl: mean(kl),
    edited_examples: editedExamples,
    edited_cells: round7(editedExamples ? editedCells / editedExamples : 0),
    locality: grid
      ? RELATIONS.flatMap((relation, j) =>
        relation === "same_box" && !grid.box ? [] : [{
          relation,
          cells: rel[j].cells,
          token_drop: round7(rel[j].cells ? rel[j].drop / rel[j].cells : 0),
          kl: round7(rel[j].cells ? rel[j].kl / rel[j].cells : 0),
          flipped: round7(rel[j].cells ? rel[j].flipped / rel[j].cells : 0),
        }]
      )
      : null,
  };
}
