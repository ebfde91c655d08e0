/**
 * The element types shared by the npy, torch .pt and safetensors codecs.
 *
 * @module
 */

/** Element types trminterp reads and writes (`bool` is stored as `Uint8Array` of 0/1). */
export type ElementType =
  | "float32"
  | "float64"
  | "int32"
  | "int64"
  | "uint8"
  | "bool";

/** Typed arrays that hold elements of an {@linkcode ElementType}. */
export type ElementData =
  | Float32Array
  | Float64Array
  | Int32Array
  | BigInt64Array
  | Uint8Array;

/**
 * Bytes per element.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ITEMSIZE } from "./dtype.ts";
 * assert(ITEMSIZE.int64 === 8);
 * ```
 */
export const ITEMSIZE: Readonly<Record<ElementType, number>> = {
  float32: 4,
  float64: 8,
  int32: 4,
  int64: 8,
  uint8: 1,
  bool: 1,
};

/**
 * The element type a typed array holds (`Uint8Array` reads as `uint8`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dtypeOf } from "./dtype.ts";
 * assert(dtypeOf(new Float64Array(1)) === "float64");
 * ```
 */
export function dtypeOf(data: ElementData): ElementType {
  if (data instanceof Float32Array) return "float32";
  if (data instanceof Float64Array) return "float64";
  if (data instanceof Int32Array) return "int32";
  if (data instanceof BigInt64Array) return "int64";
  return "uint8";
}

/**
 * Copy little-endian bytes into a fresh, aligned typed array of `dtype`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { viewAs } from "./dtype.ts";
 * assert(viewAs("int32", new Uint8Array([1, 0, 0, 0]))[0] === 1);
 * ```
 */
export function viewAs(dtype: ElementType, bytes: Uint8Array): ElementData {
  // Copy so the result is aligned and independent of the input buffer.
  const buf = bytes.slice().buffer;
  switch (dtype) {
    case "float32":
      return new Float32Array(buf);
    case "float64":
      return new Float64Array(buf);
    case "int32":
      return new Int32Array(buf);
    case "int64":
      return new BigInt64Array(buf);
    default:
      return new Uint8Array(buf);
  }
}

/**
 * Number of elements of a shape (1 for a scalar).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { numel } from "./dtype.ts";
 * assert(numel([2, 3]) === 6 && numel([]) === 1);
 * ```
 */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
