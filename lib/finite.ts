/**
 * JSON has no NaN or Infinity, and the payload schemas refuse them: a number
 * that overflowed float32 somewhere upstream (a huge edit, states or weights
 * near float32's limit) is found here, by its place in the payload, so that
 * it is refused as bad input rather than failing the schema as a bug.
 *
 * @module
 */

/** Where a payload holds a non-finite number, and which. */
export interface NonFinite {
  /** The key path, as `a.b[3].c`. */
  path: string;
  /** The value: NaN, Infinity or -Infinity. */
  value: number;
}

/**
 * The first non-finite number in a JSON-like value, depth first in key
 * order, or null when every number is finite. Typed arrays are searched too.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { firstNonFinite } from "./finite.ts";
 * assert.equal(firstNonFinite({ a: [1, { b: 2 }], c: "x" }), null);
 * assert.deepEqual(firstNonFinite({ a: [1, { b: NaN }] }), { path: "a[1].b", value: NaN });
 * assert.deepEqual(firstNonFinite({ kl: -Infinity }), { path: "kl", value: -Infinity });
 * ```
 */
export function firstNonFinite(value: unknown, path = ""): NonFinite | null {
  if (typeof value === "number") {
    return Number.isFinite(value) ? null : { path: path || "(root)", value };
  }
  if (value === null || typeof value !== "object") return null;
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    const a = value as unknown as ArrayLike<number | bigint>;
    for (let i = 0; i < a.length; i++) {
      const v = a[i];
      if (typeof v === "number" && !Number.isFinite(v)) {
        return { path: `${path}[${i}]`, value: v };
      }
    }
    return null;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const r = firstNonFinite(value[i], `${path}[${i}]`);
      if (r) return r;
    }
    return null;
  }
  for (const [k, v] of Object.entries(value)) {
    const r = firstNonFinite(v, path ? `${path}.${k}` : k);
    if (r) return r;
  }
  return null;
}
