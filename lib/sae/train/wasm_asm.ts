/**
 * A tiny WebAssembly assembler: LEB128 integers, sections, and the few
 * instructions the SAE kernels use. The dense pre-activation matmul is nearly
 * all of an SAE's arithmetic and plain JS numbers cannot use SIMD, so the
 * kernels are hand-assembled WebAssembly (f32x4); assembling them in source
 * keeps them reviewable and needs no build step or binary blob.
 *
 * @module
 */
/**
 * Encode a non-negative integer as unsigned LEB128 (7 bits a byte, low
 * group first, high bit set on every byte but the last).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { uleb } from "./wasm_asm.ts";
 * assert.deepEqual(uleb(0), [0]);
 * assert.deepEqual(uleb(127), [0x7f]);
 * assert.deepEqual(uleb(624485), [0xe5, 0x8e, 0x26]);
 * ```
 */
export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Encode an integer as signed LEB128 (two's complement, sign-extended). */
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

/**
 * Encode a name as WebAssembly does: its UTF-8 byte length, then the bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { wasmName } from "./wasm_asm.ts";
 * assert.deepEqual(wasmName("enc"), [3, 0x65, 0x6e, 0x63]);
 * ```
 */
export function wasmName(s: string): number[] {
  return [...uleb(s.length), ...new TextEncoder().encode(s)];
}

/**
 * A module section: its id, its byte length, then its body.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { section, uleb } from "./wasm_asm.ts";
 * const header = [0, 0x61, 0x73, 0x6d, 1, 0, 0, 0];
 * const types = section(1, [1, 0x60, 0, 0]); // one type: () -> ()
 * assert.deepEqual(types, [1, 4, 1, 0x60, 0, 0]);
 * assert.ok(WebAssembly.validate(new Uint8Array([...header, ...types])));
 * assert.ok(!WebAssembly.validate(new Uint8Array([...header, 1, 9, 1, 0x60, 0, 0])));
 * assert.deepEqual(section(10, new Array(200).fill(0)).slice(0, 3), [10, ...uleb(200)]);
 * ```
 */
export function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

/**
 * `local.get i`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { get } from "./wasm_asm.ts";
 * assert.deepEqual(get(2), [0x20, 2]);
 * assert.deepEqual(get(200), [0x20, 0xc8, 0x01]);
 * ```
 */
export const get = (i: number) => [0x20, ...uleb(i)];
/**
 * `local.set i`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { set } from "./wasm_asm.ts";
 * assert.deepEqual(set(3), [0x21, 3]);
 * ```
 */
export const set = (i: number) => [0x21, ...uleb(i)];
/**
 * A SIMD instruction: the `0xfd` prefix, the opcode as LEB128, then its
 * immediates.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { F32X4_ADD, simd, V_LOAD } from "./wasm_asm.ts";
 * assert.deepEqual(simd(V_LOAD, 2, 0), [0xfd, 0x00, 2, 0]);
 * assert.deepEqual(simd(F32X4_ADD), [0xfd, 0xe4, 0x01]); // opcodes above 127 take two bytes
 * ```
 */
export const simd = (
  op: number,
  ...imm: number[]
) => [0xfd, ...uleb(op), ...imm];
/**
 * `i32.const n` (signed LEB128 immediate).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { i32c } from "./wasm_asm.ts";
 * assert.deepEqual(i32c(3), [0x41, 3]);
 * assert.deepEqual(i32c(-1), [0x41, 0x7f]);
 * assert.deepEqual(i32c(64), [0x41, 0xc0, 0x00]); // 64 needs a second byte: bit 6 is the sign
 * ```
 */
export const i32c = (n: number) => [0x41, ...sleb(n)];
/**
 * SIMD opcodes (after the `0xfd` prefix): `v128.load`, `v128.store`,
 * `f32x4.splat`, `f32x4.extract_lane`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EXTRACT, F32X4_SPLAT, simd, V_LOAD, V_STORE } from "./wasm_asm.ts";
 * assert.deepEqual([V_LOAD, V_STORE, F32X4_SPLAT, EXTRACT], [0x00, 0x0b, 0x13, 0x1f]);
 * assert.deepEqual(simd(EXTRACT, 3), [0xfd, 0x1f, 3]);
 * ```
 */
export const V_LOAD = 0x00, V_STORE = 0x0b, F32X4_SPLAT = 0x13, EXTRACT = 0x1f;
/**
 * SIMD opcodes `f32x4.add` and `f32x4.mul`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { F32X4_ADD, F32X4_MUL, simd } from "./wasm_asm.ts";
 * assert.deepEqual(simd(F32X4_MUL), [0xfd, 0xe6, 0x01]);
 * assert.equal(F32X4_ADD, 0xe4);
 * ```
 */
export const F32X4_ADD = 0xe4, F32X4_MUL = 0xe6;
/**
 * Scalar opcodes: `i32.add`, `i32.mul`, `i32.lt_u`, `f32.add`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { F32_ADD, I32_ADD, I32_LT_U, I32_MUL } from "./wasm_asm.ts";
 * assert.deepEqual([I32_ADD, I32_MUL, I32_LT_U, F32_ADD], [0x6a, 0x6c, 0x49, 0x92]);
 * ```
 */
export const I32_ADD = 0x6a,
  I32_MUL = 0x6c,
  I32_LT_U = 0x49,
  F32_ADD = 0x92;
/**
 * `i32.load` at offset 0, and `f32.load` at a byte offset (both 4-byte
 * aligned).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { F32_LOAD, I32_LOAD } from "./wasm_asm.ts";
 * assert.deepEqual(I32_LOAD, [0x28, 2, 0]);
 * assert.deepEqual(F32_LOAD(256), [0x2a, 2, 0x80, 0x02]);
 * ```
 */
export const I32_LOAD = [0x28, 2, 0],
  F32_LOAD = (off: number) => [0x2a, 2, ...uleb(off)];
/**
 * `f32.store` at a byte offset (4-byte aligned).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { F32_STORE } from "./wasm_asm.ts";
 * assert.deepEqual(F32_STORE(4), [0x38, 2, 4]);
 * ```
 */
export const F32_STORE = (off: number) => [0x38, 2, ...uleb(off)];
/**
 * `v128.load` and `v128.store` at offset 0, 4-byte aligned.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { simd, V_LOAD, VLOAD, VSTORE } from "./wasm_asm.ts";
 * assert.deepEqual(VLOAD, simd(V_LOAD, 2, 0));
 * assert.deepEqual(VSTORE, [0xfd, 0x0b, 2, 0]);
 * ```
 */
export const VLOAD = simd(V_LOAD, 2, 0), VSTORE = simd(V_STORE, 2, 0);
/**
 * `loop` with no result, and `end`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { brIfLt, END, get, inc, LOOP, section, uleb, wasmName } from "./wasm_asm.ts";
 * const fn = (params: number[], result: number[], locals: number[], code: number[]) => {
 *   const body = [...locals, ...code, END];
 *   return WebAssembly.instantiate(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
 *     ...section(1, [1, 0x60, params.length, ...params, result.length, ...result]),
 *     ...section(3, [1, 0]), ...section(5, [1, 0, 1]),
 *     ...section(7, [2, ...wasmName("f"), 0, 0, ...wasmName("m"), 2, 0]),
 *     ...section(10, [1, ...uleb(body.length), ...body])]));
 * };
 * // f(n): count up by 3 until the count reaches n
 * const { instance } = await fn([0x7f], [0x7f], [1, 1, 0x7f],
 *   [...LOOP, ...inc(1, 3), ...brIfLt(1, 0), END, ...get(1)]);
 * assert.equal((instance.exports.f as (n: number) => number)(10), 12);
 * ```
 */
export const LOOP = [0x03, 0x40], END = 0x0b;
/**
 * Branch to the enclosing loop while local `a` < local `b` (unsigned).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { brIfLt, END, get, inc, LOOP, section, uleb, wasmName } from "./wasm_asm.ts";
 * const fn = (params: number[], result: number[], locals: number[], code: number[]) => {
 *   const body = [...locals, ...code, END];
 *   return WebAssembly.instantiate(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
 *     ...section(1, [1, 0x60, params.length, ...params, result.length, ...result]),
 *     ...section(3, [1, 0]), ...section(5, [1, 0, 1]),
 *     ...section(7, [2, ...wasmName("f"), 0, 0, ...wasmName("m"), 2, 0]),
 *     ...section(10, [1, ...uleb(body.length), ...body])]));
 * };
 * // f(n): double local 1 (from 1) while it is below n
 * const { instance } = await fn([0x7f], [0x7f], [1, 1, 0x7f],
 *   [...inc(1, 1), ...LOOP, ...get(1), ...get(1), 0x6a, 0x21, 1, ...brIfLt(1, 0), END, ...get(1)]);
 * assert.equal((instance.exports.f as (n: number) => number)(100), 128);
 * ```
 */
export const brIfLt = (
  a: number,
  b: number,
) => [...get(a), ...get(b), I32_LT_U, 0x0d, 0];
/**
 * Local `out` = local `a` + local `b` (i32).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { add, END, get, section, uleb, wasmName } from "./wasm_asm.ts";
 * const fn = (params: number[], result: number[], locals: number[], code: number[]) => {
 *   const body = [...locals, ...code, END];
 *   return WebAssembly.instantiate(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
 *     ...section(1, [1, 0x60, params.length, ...params, result.length, ...result]),
 *     ...section(3, [1, 0]), ...section(5, [1, 0, 1]),
 *     ...section(7, [2, ...wasmName("f"), 0, 0, ...wasmName("m"), 2, 0]),
 *     ...section(10, [1, ...uleb(body.length), ...body])]));
 * };
 * const { instance } = await fn([0x7f, 0x7f], [0x7f], [1, 1, 0x7f], [...add(0, 1, 2), ...get(2)]);
 * assert.equal((instance.exports.f as (a: number, b: number) => number)(2, 40), 42);
 * ```
 */
export const add = (
  a: number,
  b: number,
  out: number,
) => [...get(a), ...get(b), I32_ADD, ...set(out)];
/**
 * Local `a` += `n` (i32).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { END, get, inc, section, uleb, wasmName } from "./wasm_asm.ts";
 * const fn = (params: number[], result: number[], locals: number[], code: number[]) => {
 *   const body = [...locals, ...code, END];
 *   return WebAssembly.instantiate(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
 *     ...section(1, [1, 0x60, params.length, ...params, result.length, ...result]),
 *     ...section(3, [1, 0]), ...section(5, [1, 0, 1]),
 *     ...section(7, [2, ...wasmName("f"), 0, 0, ...wasmName("m"), 2, 0]),
 *     ...section(10, [1, ...uleb(body.length), ...body])]));
 * };
 * const { instance } = await fn([0x7f], [0x7f], [0], [...inc(0, -5), ...get(0)]);
 * assert.equal((instance.exports.f as (a: number) => number)(47), 42);
 * ```
 */
export const inc = (
  a: number,
  n: number,
) => [...get(a), ...i32c(n), I32_ADD, ...set(a)];
/**
 * Push the sum of the four lanes of the f32x4 local `v` (lanes 0 to 3 in
 * order).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { END, get, hsum, section, set, uleb, VLOAD, wasmName } from "./wasm_asm.ts";
 * const fn = (params: number[], result: number[], locals: number[], code: number[]) => {
 *   const body = [...locals, ...code, END];
 *   return WebAssembly.instantiate(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
 *     ...section(1, [1, 0x60, params.length, ...params, result.length, ...result]),
 *     ...section(3, [1, 0]), ...section(5, [1, 0, 1]),
 *     ...section(7, [2, ...wasmName("f"), 0, 0, ...wasmName("m"), 2, 0]),
 *     ...section(10, [1, ...uleb(body.length), ...body])]));
 * };
 * // f(p): load four floats at byte p, sum them
 * const { instance } = await fn([0x7f], [0x7d], [1, 1, 0x7b], [...get(0), ...VLOAD, ...set(1), ...hsum(1)]);
 * new Float32Array((instance.exports.m as WebAssembly.Memory).buffer, 16, 4).set([1, 2, 3, 4.5]);
 * assert.equal((instance.exports.f as (p: number) => number)(16), 10.5);
 * ```
 */
export const hsum = (v: number) => [
  ...get(v),
  ...simd(EXTRACT, 0),
  ...get(v),
  ...simd(EXTRACT, 1),
  F32_ADD,
  ...get(v),
  ...simd(EXTRACT, 2),
  F32_ADD,
  ...get(v),
  ...simd(EXTRACT, 3),
  F32_ADD,
];
