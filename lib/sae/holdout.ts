/**
 * Seeded train / held-out split that keeps whole groups (examples) together,
 * so no example leaks states into both sides.
 *
 * @module
 */

import { InputError } from "../errors.ts";
import { Rng } from "../rng.ts";

/**
 * Split row indices by group: a `holdout` fraction of the distinct groups
 * (rounded, and at least one on each side when there are two or more groups)
 * goes to `heldout`. Both index lists are ascending. Groups are ordered by
 * first appearance before the seeded shuffle, so the split depends only on
 * the ids, their order and the seed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { splitByGroup } from "./holdout.ts";
 * const { train, heldout } = splitByGroup(["a", "a", "b", "b", "c"], 0.34, 0);
 * assert(train.length + heldout.length === 5 && heldout.length > 0);
 * ```
 */
export function splitByGroup(
  groupIds: ArrayLike<string | number>,
  holdout: number,
  seed: number,
): { train: Int32Array; heldout: Int32Array } {
  if (!(holdout >= 0 && holdout < 1)) {
    throw new InputError(
      `holdout must be a fraction in [0, 1), got ${holdout}`,
    );
  }
  const first = new Map<string | number, number>();
  const rowGroup = new Int32Array(groupIds.length);
  for (let i = 0; i < groupIds.length; i++) {
    const g = groupIds[i];
    let id = first.get(g);
    if (id === undefined) first.set(g, id = first.size);
    rowGroup[i] = id;
  }
  const G = first.size;
  let nHeld = Math.round(holdout * G);
  if (holdout > 0 && G >= 2) nHeld = Math.min(G - 1, Math.max(1, nHeld));
  const held = new Uint8Array(G);
  for (const g of new Rng(seed).sample(G, nHeld)) held[g] = 1;
  let nh = 0;
  for (let i = 0; i < rowGroup.length; i++) nh += held[rowGroup[i]];
  const train = new Int32Array(rowGroup.length - nh),
    heldout = new Int32Array(nh);
  let a = 0, b = 0;
  for (let i = 0; i < rowGroup.length; i++) {
    if (held[rowGroup[i]]) heldout[b++] = i;
    else train[a++] = i;
  }
  return { train, heldout };
}
