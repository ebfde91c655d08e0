/**
 * Which positions and which examples a trace records.
 *
 * @module
 */
import { OptionError } from "../errors.ts";
import { Rng } from "../rng.ts";

/**
 * Parse a positions spec into sorted indices in `[0, P+S)`; prefix positions
 * come first. Specs: `all`, `puzzle` (the S puzzle cells), `prefix` (the P
 * puzzle-embedding positions), or indices and ranges such as `0-3,8`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePositions } from "./positions.ts";
 * assert.deepEqual(parsePositions("puzzle", 2, 3), [2, 3, 4]);
 * assert.deepEqual(parsePositions("0,3-4", 2, 3), [0, 3, 4]);
 * assert.throws(() => parsePositions("9", 2, 3), /positions "9": indices must lie in 0..4/);
 * ```
 */
export function parsePositions(spec: string, P: number, S: number): number[] {
  const T = P + S;
  const range = (a: number, b: number) =>
    Array.from({ length: b - a }, (_, i) => a + i);
  if (spec === "all") return range(0, T);
  if (spec === "puzzle") return range(P, T);
  if (spec === "prefix") {
    if (P === 0) {
      throw new OptionError(
        "positions",
        `{positions} prefix: this model has no puzzle-embedding prefix`,
      );
    }
    return range(0, P);
  }
  const out = new Set<number>();
  for (const part of spec.split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) {
      throw new OptionError(
        "positions",
        `bad {positions} "${spec}"; use all, puzzle, prefix, or indices like 0-3,8`,
      );
    }
    const lo = Number(m[1]), hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo || hi >= T) {
      throw new OptionError(
        "positions",
        `{positions} "${spec}": indices must lie in 0..${
          T - 1
        } (P=${P} prefix + S=${S})`,
      );
    }
    for (let i = lo; i <= hi; i++) out.add(i);
  }
  return [...out].sort((a, b) => a - b);
}

/**
 * Choose the examples to trace: all of them, or `limit` sampled with the seed
 * (kept in file order).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { selectExamples } from "./positions.ts";
 * const a = selectExamples(10, 3, 0);
 * assert.equal(a.length, 3);
 * assert.deepEqual(a, selectExamples(10, 3, 0));
 * assert.deepEqual(a, [...a].sort((x, y) => x - y));
 * ```
 */
export function selectExamples(
  total: number,
  limit: number | undefined,
  seed: number,
): number[] {
  if (limit === undefined || limit >= total) {
    return Array.from({ length: total }, (_, i) => i);
  }
  return new Rng(seed, 1).sample(total, limit);
}
