/**
 * The SAE kernels: the dense encoder matmul in plain typed-array loops, and
 * the three hot loops (dense encode, sparse decode, sparse backward) as
 * WebAssembly SIMD code, specialised on D and F. Fixed order of operations:
 * deterministic.
 *
 * @module
 */
import {
  add,
  brIfLt,
  END,
  F32_ADD,
  F32_LOAD,
  F32_STORE,
  F32X4_ADD,
  F32X4_MUL,
  F32X4_SPLAT,
  get,
  hsum,
  I32_ADD,
  I32_LOAD,
  I32_LT_U,
  I32_MUL,
  i32c,
  inc,
  LOOP,
  section,
  set,
  simd,
  uleb,
  V_LOAD,
  VLOAD,
  VSTORE,
  wasmName,
} from "./wasm_asm.ts";

/**
 * Rows per register block of the dense encoder kernel.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { R, RC } from "./kernels.ts";
 * assert.equal(R, 4);
 * assert.equal(RC % R, 0); // a chunk is whole blocks
 * ```
 */
export const R = 4;
/**
 * Rows per chunk: the weights stream from memory once per chunk, so a chunk
 * is as large as fits in L2 next to a pair of weight rows (64 × D floats).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RC } from "./kernels.ts";
 * import { jsWorkspace } from "./workspace.ts";
 * const ws = jsWorkspace(8, 4, 1, 0);
 * assert.equal(ws.xc.length, RC * 8); // the input rows of one chunk
 * assert.equal(ws.pre.length, RC * 4); // and their pre-activations
 * ```
 */
export const RC = 64;

/**
 * pre[r, j] = b_enc[j] + xc[r] · WT[j] for nr ≤ 4 rows. Four rows share each
 * loaded weight and two latents share each loaded input, with eight
 * independent accumulators so the adds pipeline.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeBlock } from "./kernels.ts";
 * const D = 2, F = 3;
 * const xc = new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]); // four rows
 * const WT = new Float32Array([1, 0, 0, 1, 1, 1]); // latents read x0, x1, x0 + x1
 * const be = new Float32Array([0.5, 0, 0]);
 * const pre = new Float32Array(4 * F);
 * encodeBlock(xc, WT, be, pre, 4, D, F, 0);
 * assert.deepEqual([...pre.subarray(9)], [7.5, 8, 15]); // row 3
 * pre.fill(0);
 * encodeBlock(xc, WT, be, pre, 1, D, F, 2); // one row, row 2
 * assert.deepEqual([...pre.subarray(6, 9)], [5.5, 6, 11]);
 * assert.equal(pre[0], 0);
 * ```
 */
export function encodeBlock(
  xc: Float32Array,
  WT: Float32Array,
  be: Float32Array,
  pre: Float32Array,
  nr: number,
  D: number,
  F: number,
  row0: number,
): void {
  const xo = row0 * D, po = row0 * F;
  if (nr === R) {
    const o1 = D, o2 = 2 * D, o3 = 3 * D;
    let j = 0;
    for (; j + 1 < F; j += 2) {
      const w0 = j * D, w1 = w0 + D;
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0, c0 = 0, c1 = 0, c2 = 0, c3 = 0;
      for (let d = 0; d < D; d++) {
        const u = WT[w0 + d], v = WT[w1 + d];
        const x0 = xc[xo + d],
          x1 = xc[xo + o1 + d],
          x2 = xc[xo + o2 + d],
          x3 = xc[xo + o3 + d];
        a0 += x0 * u;
        a1 += x1 * u;
        a2 += x2 * u;
        a3 += x3 * u;
        c0 += x0 * v;
        c1 += x1 * v;
        c2 += x2 * v;
        c3 += x3 * v;
      }
      const b0 = be[j], b1 = be[j + 1];
      pre[po + j] = a0 + b0;
      pre[po + F + j] = a1 + b0;
      pre[po + 2 * F + j] = a2 + b0;
      pre[po + 3 * F + j] = a3 + b0;
      pre[po + j + 1] = c0 + b1;
      pre[po + F + j + 1] = c1 + b1;
      pre[po + 2 * F + j + 1] = c2 + b1;
      pre[po + 3 * F + j + 1] = c3 + b1;
    }
    for (; j < F; j++) {
      for (let r = 0; r < R; r++) {
        let a = 0;
        for (let d = 0; d < D; d++) a += xc[xo + r * D + d] * WT[j * D + d];
        pre[po + r * F + j] = a + be[j];
      }
    }
    return;
  }
  for (let r = 0; r < nr; r++) {
    for (let j = 0; j < F; j++) {
      let a = 0;
      for (let d = 0; d < D; d++) a += xc[xo + r * D + d] * WT[j * D + d];
      pre[po + r * F + j] = a + be[j];
    }
  }
}

/**
 * `enc(xc, nb, w, b, pre)`: for `4*nb` rows at `xc` ([4nb,D] f32) and the F
 * rows of `w` ([F,D] f32, i.e. W_encᵀ), writes `pre[r*F + j] = xc[r]·w[j] +
 * b[j]`. Needs D % 4 == 0 and F even; D and F are baked in so row strides are
 * immediate load offsets. Latent pairs are the outer loop so each pair of
 * weight rows stays in L1 while the row chunk (in L2) streams past it: the
 * whole W_encᵀ is read from memory once per chunk instead of once per 4 rows.
 */
// deno-fmt-ignore
function encBody(D: number, F: number): number[] {
  const Db = D * 4, Fb = F * 4;
  const unroll = D % 8 === 0 ? 2 : 1;
  const [XC, NB, W, Bb, PRE] = [0, 1, 2, 3, 4];
  const [WP, JB, DD, RB, XP, PP, WA, XA, P0] = [5, 6, 7, 8, 9, 10, 11, 12, 13];
  const [U, V, XR] = [14, 15, 16];
  const A = [17, 18, 19, 20], C = [21, 22, 23, 24];
  const zero = simd(0x0c, ...new Array(16).fill(0));
  const vload = (off: number) => simd(V_LOAD, 2, ...uleb(off));
  return [
    2, 9, 0x7f, 11, 0x7b, // locals
    ...get(W), ...set(WP), ...i32c(0), ...set(JB),
    ...LOOP, // latent pairs (j, j+1)
      ...get(XC), ...set(XP), ...get(PRE), ...set(PP), ...i32c(0), ...set(RB),
      ...LOOP, // blocks of 4 rows
        ...[...A, ...C].flatMap((a) => [...zero, ...set(a)]),
        ...i32c(0), ...set(DD),
        ...LOOP, // d, 4 lanes at a time
          ...add(WP, DD, WA), ...add(XP, DD, XA),
          ...[...Array(unroll).keys()].flatMap((u) => [
            ...get(WA), ...vload(16 * u), ...set(U),
            ...get(WA), ...vload(Db + 16 * u), ...set(V),
            ...[0, 1, 2, 3].flatMap((r) => [
              ...get(XA), ...vload(r * Db + 16 * u), ...set(XR),
              ...get(A[r]), ...get(XR), ...get(U), ...simd(F32X4_MUL), ...simd(F32X4_ADD), ...set(A[r]),
              ...get(C[r]), ...get(XR), ...get(V), ...simd(F32X4_MUL), ...simd(F32X4_ADD), ...set(C[r]),
            ]),
          ]),
          ...inc(DD, 16 * unroll), ...get(DD), ...i32c(Db), I32_LT_U, 0x0d, 0,
        END,
        ...add(PP, JB, P0),
        ...[0, 1, 2, 3].flatMap((r) => [
          ...get(P0), ...hsum(A[r]), ...get(Bb), ...get(JB), I32_ADD, ...F32_LOAD(0), F32_ADD,
          ...F32_STORE(r * Fb),
          ...get(P0), ...hsum(C[r]), ...get(Bb), ...get(JB), I32_ADD, ...F32_LOAD(4), F32_ADD,
          ...F32_STORE(r * Fb + 4),
        ]),
        ...inc(XP, 4 * Db), ...inc(PP, 4 * Fb),
        ...inc(RB, 1), ...brIfLt(RB, NB),
      END,
      ...inc(WP, 2 * Db),
      ...inc(JB, 8), ...get(JB), ...i32c(Fb), I32_LT_U, 0x0d, 0,
    END,
    END,
  ];
}

/**
 * `dec(n4, idx, coef, out, Wd, Db)`: `out += Σ_a coef[a] Wd[idx[a]]` over
 * `n4 / 4 >= 1` entries (i32 `idx`, f32 `coef`), rows of `Db` bytes.
 */
// deno-fmt-ignore
function decBody(): number[] {
  const [N4, IDX, COEF, OUT, WD, DB] = [0, 1, 2, 3, 4, 5];
  const [AA, O, VV, AD] = [6, 7, 8, 9];
  const CS = 10;
  return [
    2, 4, 0x7f, 1, 0x7b,
    ...i32c(0), ...set(AA),
    ...LOOP,
      ...get(IDX), ...get(AA), I32_ADD, ...I32_LOAD, ...get(DB), I32_MUL, ...get(WD), I32_ADD, ...set(O),
      ...get(COEF), ...get(AA), I32_ADD, ...F32_LOAD(0), ...simd(F32X4_SPLAT), ...set(CS),
      ...i32c(0), ...set(VV),
      ...LOOP,
        ...add(OUT, VV, AD),
        ...get(AD), ...get(AD), ...VLOAD, ...get(CS), ...get(O), ...get(VV), I32_ADD, ...VLOAD,
        ...simd(F32X4_MUL), ...simd(F32X4_ADD), ...VSTORE,
        ...inc(VV, 16), ...brIfLt(VV, DB),
      END,
      ...inc(AA, 4), ...brIfLt(AA, N4),
    END,
    END,
  ];
}

/**
 * `bwd(n4, idx, coef, g, xc, gxc, Wd, gWd, WT, gWT, gbe, Db, add)`: the
 * sparse backward pass of {@linkcode Workspace.backward} over `n4 / 4 >= 1`
 * latents.
 */
// deno-fmt-ignore
function bwdBody(): number[] {
  const [N4, IDX, COEF, G, XC, GXC, WD, GWD, WT, GWT, GBE, DB, ADD] =
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  const [AA, O, VV, JB, AD] = [13, 14, 15, 16, 17];
  const GF = 18;
  const [CS, ACC, GS, GV] = [19, 20, 21, 22];
  return [
    3, 5, 0x7f, 1, 0x7d, 4, 0x7b,
    ...i32c(0), ...set(AA),
    ...LOOP,
      ...get(IDX), ...get(AA), I32_ADD, ...I32_LOAD, ...set(JB),
      ...get(JB), ...get(DB), I32_MUL, ...set(O),
      ...get(JB), ...i32c(4), I32_MUL, ...set(JB),
      ...get(COEF), ...get(AA), I32_ADD, ...F32_LOAD(0), ...simd(F32X4_SPLAT), ...set(CS),
      ...simd(0x0c, ...new Array(16).fill(0)), ...set(ACC),
      ...i32c(0), ...set(VV),
      ...LOOP, // gpre partial sums and gW_dec[j] += c g
        ...get(G), ...get(VV), I32_ADD, ...VLOAD, ...set(GV),
        ...get(ACC), ...get(GV), ...get(WD), ...get(O), I32_ADD, ...get(VV), I32_ADD, ...VLOAD,
        ...simd(F32X4_MUL), ...simd(F32X4_ADD), ...set(ACC),
        ...get(GWD), ...get(O), I32_ADD, ...get(VV), I32_ADD, ...set(AD),
        ...get(AD), ...get(AD), ...VLOAD, ...get(CS), ...get(GV), ...simd(F32X4_MUL), ...simd(F32X4_ADD), ...VSTORE,
        ...inc(VV, 16), ...brIfLt(VV, DB),
      END,
      ...hsum(ACC), ...get(ADD), F32_ADD, ...set(GF),
      ...get(GBE), ...get(JB), I32_ADD, ...set(AD),
      ...get(AD), ...get(AD), ...F32_LOAD(0), ...get(GF), F32_ADD, ...F32_STORE(0),
      ...get(GF), ...simd(F32X4_SPLAT), ...set(GS),
      ...i32c(0), ...set(VV),
      ...LOOP, // gW_encᵀ[j] += gpre xc; gxc += gpre W_encᵀ[j]
        ...get(GWT), ...get(O), I32_ADD, ...get(VV), I32_ADD, ...set(AD),
        ...get(AD), ...get(AD), ...VLOAD, ...get(GS), ...get(XC), ...get(VV), I32_ADD, ...VLOAD,
        ...simd(F32X4_MUL), ...simd(F32X4_ADD), ...VSTORE,
        ...get(GXC), ...get(VV), I32_ADD, ...set(AD),
        ...get(AD), ...get(AD), ...VLOAD, ...get(GS), ...get(WT), ...get(O), I32_ADD, ...get(VV), I32_ADD, ...VLOAD,
        ...simd(F32X4_MUL), ...simd(F32X4_ADD), ...VSTORE,
        ...inc(VV, 16), ...brIfLt(VV, DB),
      END,
      ...inc(AA, 4), ...brIfLt(AA, N4),
    END,
    END,
  ];
}

// deno-fmt-ignore
/**
 * The module: imports memory `e.m`, exports `enc`, `dec` and `bwd`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { simdModule } from "./kernels.ts";
 * const bytes = simdModule(8, 4);
 * assert.ok(WebAssembly.validate(bytes));
 * const m = new WebAssembly.Module(bytes);
 * assert.deepEqual(WebAssembly.Module.exports(m).map((e) => e.name).sort(), ["bwd", "dec", "enc"]);
 * assert.deepEqual(WebAssembly.Module.imports(m).map((i) => `${i.module}.${i.name}:${i.kind}`), ["e.m:memory"]);
 * ```
 */
export function simdModule(D: number, F: number): Uint8Array<ArrayBuffer> {
  const fn = (params: number[]) => [0x60, params.length, ...params, 0];
  const I = 0x7f;
  const bodies = [encBody(D, F), decBody(), bwdBody()].map((b) => [...uleb(b.length), ...b]);
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [3, ...fn(new Array(5).fill(I)), ...fn(new Array(6).fill(I)),
      ...fn([...new Array(12).fill(I), 0x7d])]),
    ...section(2, [1, ...wasmName("e"), ...wasmName("m"), 0x02, 0x00, 1]),
    ...section(3, [3, 0, 1, 2]),
    ...section(7, [3, ...wasmName("enc"), 0x00, 0, ...wasmName("dec"), 0x00, 1,
      ...wasmName("bwd"), 0x00, 2]),
    ...section(10, [3, ...bodies.flat()]),
  ]);
}
