/**
 * Top-k selection over a row of pre-activations, shared by TopK's activation
 * and the AuxK loss.
 *
 * @module
 */

/**
 * Select the `k` largest values of `pre[off .. off+n)` into `idx`/`val`,
 * largest first; ties keep the lower index, NaN never wins. Returns the count
 * (`min(k, n)`). Only indices with `mask[i] !== 0` compete when a mask is given.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { selectTopK } from "./select.ts";
 * const idx = new Int32Array(2), val = new Float32Array(2);
 * const n = selectTopK(new Float32Array([1, 5, 3, 5]), 0, 4, 2, idx, val);
 * assert(n === 2 && idx[0] === 1 && idx[1] === 3);
 * ```
 */
export function selectTopK(
  pre: Float32Array,
  off: number,
  n: number,
  k: number,
  idx: Int32Array,
  val: Float32Array,
  mask?: Uint8Array,
): number {
  // A sorted insertion buffer beats a heap for the small k used by SAEs: most
  // candidates are rejected by one compare against the current k-th value.
  // The mask test and the filling phase are kept out of the hot loop.
  let cnt = 0;
  let i = 0;
  for (; i < n && cnt < k; i++) {
    if (mask !== undefined && mask[i] === 0) continue;
    const v = pre[off + i];
    if (v !== v) continue;
    insert(idx, val, cnt++, v, i);
  }
  if (cnt < k) return cnt;
  let thr = val[k - 1];
  if (mask === undefined) {
    for (; i < n; i++) {
      const v = pre[off + i];
      if (v > thr) {
        insert(idx, val, k - 1, v, i);
        thr = val[k - 1];
      }
    }
  } else {
    for (; i < n; i++) {
      const v = pre[off + i];
      if (v > thr && mask[i] !== 0) {
        insert(idx, val, k - 1, v, i);
        thr = val[k - 1];
      }
    }
  }
  return cnt;
}

/** Put (v, i) at slot p or earlier, keeping `val` descending. */
function insert(
  idx: Int32Array,
  val: Float32Array,
  p: number,
  v: number,
  i: number,
): void {
  // Strict compare: an equal value already kept (lower index) stays ahead.
  while (p > 0 && val[p - 1] < v) {
    val[p] = val[p - 1];
    idx[p] = idx[p - 1];
    p--;
  }
  val[p] = v;
  idx[p] = i;
}
