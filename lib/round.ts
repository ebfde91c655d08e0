/**
 * The rounding of every figure written to a JSON payload.
 *
 * @module
 */

/**
 * Round to 7 significant digits, as every figure in the JSON payloads is:
 * stable text, and no float noise in byte-compared files.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { round7 } from "./round.ts";
 * assert(round7(1 / 3) === 0.3333333);
 * ```
 */
export function round7(x: number): number {
  return x === 0 ? 0 : Number(x.toPrecision(7));
}
