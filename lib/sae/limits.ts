/**
 * The size limit every SAE path checks: construction, training, `sae.pt`.
 *
 * @module
 */

/**
 * The most weights one SAE matrix may hold: `d_in × d_sae ≤ 2^26`. Training
 * keeps eight such float32 matrices (weights, gradients, Adam moments), 2 GiB
 * at the cap; reading an `sae.pt` never allocates more than two.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MAX_SAE_WEIGHTS } from "./limits.ts";
 * assert.equal(MAX_SAE_WEIGHTS / 512, 131072); // F up to 131072 at D=512
 * ```
 */
export const MAX_SAE_WEIGHTS = 2 ** 26;
