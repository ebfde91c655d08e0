/**
 * A tiny WebAssembly assembler: LEB128 integers, sections, and the few
 * instructions the SAE kernels use. The dense pre-activation matmul is nearly
 * all of an SAE's arithmetic and plain JS numbers cannot use SIMD, so the
 * kernels are hand-assembled WebAssembly (f32x4); assembling them in source
 * keeps them reviewable and needs no build step or binary blob.
 *
 * @module
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

export function wasmName(s: string): number[] {
  return [...uleb(s.length), ...new TextEncoder().encode(s)];
}

export function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

// Instruction helpers for the hand-assembled module.
export const get = (i: number) => [0x20, ...uleb(i)];
export const set = (i: number) => [0x21, ...uleb(i)];
export const simd = (
  op: number,
  ...imm: number[]
) => [0xfd, ...uleb(op), ...imm];
export const i32c = (n: number) => [0x41, ...sleb(n)];
export const V_LOAD = 0x00, V_STORE = 0x0b, F32X4_SPLAT = 0x13, EXTRACT = 0x1f;
export const F32X4_ADD = 0xe4, F32X4_MUL = 0xe6;
export const I32_ADD = 0x6a,
  I32_MUL = 0x6c,
  I32_LT_U = 0x49,
  F32_ADD = 0x92;
export const I32_LOAD = [0x28, 2, 0],
  F32_LOAD = (off: number) => [0x2a, 2, ...uleb(off)];
export const F32_STORE = (off: number) => [0x38, 2, ...uleb(off)];
export const VLOAD = simd(V_LOAD, 2, 0), VSTORE = simd(V_STORE, 2, 0);
export const LOOP = [0x03, 0x40], END = 0x0b;
export const brIfLt = (
  a: number,
  b: number,
) => [...get(a), ...get(b), I32_LT_U, 0x0d, 0];
export const add = (
  a: number,
  b: number,
  out: number,
) => [...get(a), ...get(b), I32_ADD, ...set(out)];
export const inc = (
  a: number,
  n: number,
) => [...get(a), ...i32c(n), I32_ADD, ...set(a)];
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
