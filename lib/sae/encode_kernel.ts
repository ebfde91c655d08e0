/**
 * The SAE encoder's pre-activations, `(x − b_dec) W_enc + b_enc`, as a
 * WebAssembly SIMD kernel that gives the same bits as the scalar loop in
 * {@linkcode SAE.encode}: both accumulate in float64, one input dimension at a
 * time, with a separate multiply and add (f64x2 lanes hold two features, so
 * each lane runs the scalar loop's exact sequence of roundings). The trainer's
 * float32 kernels are faster but round differently, and interventions and
 * metrics must not change when the encoder gets faster.
 *
 * @module
 */
import {
  END,
  get,
  i32c,
  inc,
  LOOP,
  section,
  set,
  simd,
  uleb,
  wasmName,
} from "./train/wasm_asm.ts";

const V_LOAD64_SPLAT = 0x0a, V_STORE = 0x0b;
const F64X2_ADD = 0xf0, F64X2_MUL = 0xf2, F64X2_PROMOTE_LOW = 0x5f;
const I32_ADD = 0x6a, I32_LT_U = 0x49;

/** Rows per register block. */
const R = 4;
/** Rows per call: the weights stream from cache once per block of rows. */
const CHUNK = 64;

/**
 * `enc(xc, nb, w, b, pre)`: for `4*nb` rows of `xc` (`[4nb, D]` f64) writes
 * `pre[r, j] = b[j] + Σ_d xc[r, d] · w[d, j]` (`[4nb, Fp]` f64), summing `d`
 * in order. `w` is W_enc as float32 (`[D, Fp]`) and `b` b_enc (`[Fp]`): two
 * neighbouring features' weights load as one 8-byte pair and widen exactly
 * to f64x2. Four rows × four features (eight f64x2 accumulators) per block;
 * D and Fp are baked in so strides are immediate offsets.
 */
// deno-fmt-ignore
function encBody(D: number, Fp: number): number[] {
  const Dx = D * 8, Fx = Fp * 8, Fw = Fp * 4;
  const [XC, NB, W, B, PRE] = [0, 1, 2, 3, 4];
  const [JB, DD, RB, XP, PP, WA, XA, WB] = [5, 6, 7, 8, 9, 10, 11, 12];
  const [U0, U1, XR] = [13, 14, 15];
  const A = [16, 17, 18, 19], C = [20, 21, 22, 23];
  // Two float32 at `off`, widened to f64x2.
  const pair = (off: number) => [...simd(V_LOAD64_SPLAT, 2, ...uleb(off)), ...simd(F64X2_PROMOTE_LOW)];
  const splat = (off: number) => simd(V_LOAD64_SPLAT, 3, ...uleb(off));
  const store = (off: number) => simd(V_STORE, 3, ...uleb(off));
  const add = (a: number, b: number, out: number) => [...get(a), ...get(b), I32_ADD, ...set(out)];
  return [
    2, 8, 0x7f, 11, 0x7b, // locals: 8 i32, 11 v128
    ...i32c(0), ...set(JB),
    ...LOOP, // blocks of four features
      ...add(W, JB, WB),
      ...get(XC), ...set(XP), ...get(JB), ...get(JB), I32_ADD, ...get(PRE), I32_ADD, ...set(PP),
      ...i32c(0), ...set(RB),
      ...LOOP, // blocks of four rows
        ...[0, 1, 2, 3].flatMap((r) => [
          ...get(B), ...get(JB), I32_ADD, ...pair(0), ...set(A[r]),
          ...get(B), ...get(JB), I32_ADD, ...pair(8), ...set(C[r]),
        ]),
        ...i32c(0), ...set(DD), ...get(WB), ...set(WA),
        ...LOOP, // d, one at a time, in order
          ...add(XP, DD, XA),
          ...get(WA), ...pair(0), ...set(U0),
          ...get(WA), ...pair(8), ...set(U1),
          ...[0, 1, 2, 3].flatMap((r) => [
            ...get(XA), ...splat(r * Dx), ...set(XR),
            ...get(A[r]), ...get(XR), ...get(U0), ...simd(F64X2_MUL), ...simd(F64X2_ADD), ...set(A[r]),
            ...get(C[r]), ...get(XR), ...get(U1), ...simd(F64X2_MUL), ...simd(F64X2_ADD), ...set(C[r]),
          ]),
          ...inc(WA, Fw),
          ...inc(DD, 8), ...get(DD), ...i32c(Dx), I32_LT_U, 0x0d, 0,
        END,
        ...[0, 1, 2, 3].flatMap((r) => [
          ...get(PP), ...get(A[r]), ...store(r * Fx),
          ...get(PP), ...get(C[r]), ...store(r * Fx + 16),
        ]),
        ...inc(XP, R * Dx), ...inc(PP, R * Fx),
        ...inc(RB, 1), ...get(RB), ...get(NB), I32_LT_U, 0x0d, 0,
      END,
      ...inc(JB, 16), ...get(JB), ...i32c(Fw), I32_LT_U, 0x0d, 0,
    END,
    END,
  ];
}

// deno-fmt-ignore
function encModule(D: number, Fp: number): Uint8Array<ArrayBuffer> {
  const body = encBody(D, Fp);
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 5, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0]),
    ...section(2, [1, ...wasmName("e"), ...wasmName("m"), 0x02, 0x00, 1]),
    ...section(3, [1, 0]),
    ...section(7, [1, ...wasmName("enc"), 0x00, 0]),
    ...section(10, [1, ...uleb(body.length), ...body]),
  ]);
}

/** A compiled kernel and its memory for one (D, F), reused across calls. */
interface Kernel {
  Fp: number;
  enc: (xc: number, nb: number, w: number, b: number, pre: number) => void;
  w: Float32Array;
  b: Float32Array;
  xc: Float64Array;
  pre: Float64Array;
  offsets: { w: number; b: number; xc: number; pre: number };
}

const kernels = new Map<string, Kernel | null>();

function kernel(D: number, F: number): Kernel | null {
  const key = `${D}x${F}`;
  if (kernels.has(key)) return kernels.get(key)!;
  let k: Kernel | null = null;
  const Fp = Math.ceil(F / 4) * 4;
  const bytes = encModule(D, Fp);
  if (WebAssembly.validate(bytes)) {
    let top = 0;
    const alloc = (n: number, bytes: number) => {
      const off = top;
      top += Math.ceil((n * bytes) / 16) * 16;
      return off;
    };
    const offsets = {
      w: alloc(Fp * D, 4),
      b: alloc(Fp, 4),
      xc: alloc(CHUNK * D, 8),
      pre: alloc(CHUNK * Fp, 8),
    };
    if (top <= 2 ** 31) {
      const memory = new WebAssembly.Memory({
        initial: Math.ceil(top / 65536),
      });
      const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
        e: { m: memory },
      });
      const buf = memory.buffer;
      k = {
        Fp,
        enc: inst.exports.enc as Kernel["enc"],
        w: new Float32Array(buf, offsets.w, Fp * D),
        b: new Float32Array(buf, offsets.b, Fp),
        xc: new Float64Array(buf, offsets.xc, CHUNK * D),
        pre: new Float64Array(buf, offsets.pre, CHUNK * Fp),
        offsets,
      };
    }
  }
  kernels.set(key, k);
  return k;
}

/**
 * Pre-activations `pre[r, j]` (float32, `[n, F]`) of the rows `h` (`[n, D]`)
 * for an SAE's parameters, with the SIMD kernel; false when WebAssembly SIMD
 * is unavailable (the caller then runs the scalar loop). Equal bit for bit
 * to the scalar loop when `W_enc` is finite.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { preActivations } from "./encode_kernel.ts";
 * const D = 4, F = 3, W = new Float32Array(D * F).map((_, i) => i / 7);
 * const pre = new Float32Array(2 * F);
 * const h = new Float32Array([1, 2, 3, 4, 0, 0, 0, 1]);
 * assert.ok(preActivations(h, D, F, W, new Float32Array(D), new Float32Array(F), pre));
 * let want = 0;
 * for (let d = 0; d < D; d++) want += h[d] * W[d * F + 2];
 * assert.equal(pre[2], Math.fround(want));
 * ```
 */
export function preActivations(
  h: Float32Array,
  D: number,
  F: number,
  W_enc: Float32Array,
  b_dec: Float32Array,
  b_enc: Float32Array,
  pre: Float32Array,
): boolean {
  const k = kernel(D, F);
  if (!k) return false;
  const { Fp, w, b, xc } = k;
  // Copied per call (a memcpy when F is a multiple of 4), so a caller that
  // edits W_enc between calls is never served stale weights.
  if (Fp === F) w.set(W_enc);
  else {for (let d = 0; d < D; d++) {
      w.set(W_enc.subarray(d * F, (d + 1) * F), d * Fp);
    }}
  b.set(b_enc);
  const n = h.length / D;
  for (let r0 = 0; r0 < n; r0 += CHUNK) {
    const nr = Math.min(CHUNK, n - r0);
    for (let r = 0; r < nr; r++) {
      const ho = (r0 + r) * D, xo = r * D;
      for (let d = 0; d < D; d++) xc[xo + d] = h[ho + d] - b_dec[d];
    }
    const nb = Math.ceil(nr / R);
    xc.fill(0, nr * D, nb * R * D); // pad rows: finite, results unused
    k.enc(k.offsets.xc, nb, k.offsets.w, k.offsets.b, k.offsets.pre);
    for (let r = 0; r < nr; r++) {
      pre.set(k.pre.subarray(r * Fp, r * Fp + F), (r0 + r) * F);
    }
  }
  return true;
}
