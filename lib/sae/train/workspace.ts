/**
 * The trainer's workspace: parameters, gradients and per-row scratch, with
 * the three hot kernels bound to them, either in plain typed arrays or in
 * WebAssembly memory for the SIMD kernels.
 *
 * @module
 */
import type { LatentKernels } from "../arch/mod.ts";
import { encodeBlock, R, RC, simdModule } from "./kernels.ts";

/**
 * Parameters, gradients and per-row scratch, with the three hot kernels.
 * List 0 is the active latents (`actIdx`/`actVal`, residual `e`, its
 * gradient `ge`); list 1 is AuxK (`auxIdx`/`auxVal`, scaled residual `rr`).
 */
export interface Workspace extends LatentKernels {
  /** Whether the kernels are the WebAssembly SIMD ones. */
  simd: boolean;
  Wd: Float32Array;
  WT: Float32Array;
  be: Float32Array;
  gWd: Float32Array;
  gWT: Float32Array;
  gbe: Float32Array;
  xc: Float32Array;
  pre: Float32Array;
  e: Float32Array;
  ge: Float32Array;
  gxc: Float32Array;
  rr: Float32Array;
  actIdx: Int32Array;
  actVal: Float32Array;
  auxIdx: Int32Array;
  auxVal: Float32Array;
  /** `pre[r] = xc[r] W_encᵀ + b_enc` for the first `nr` rows of the chunk. */
  encode(nr: number): void;
  /** List 0: `e += Σ f_j W_dec[j]`; list 1: `rr += Σ z_j W_dec[j]`. */
  decode(list: 0 | 1, n: number): void;
  /**
   * For each listed latent j with coefficient c and output gradient g
   * (`ge` or `rr`): `gW_dec[j] += c g`, `gpre = g·W_dec[j] + add`,
   * `gb_enc[j] += gpre`, `gW_encᵀ[j] += gpre xc[r]`, `gxc += gpre W_encᵀ[j]`.
   */
  backward(list: 0 | 1, n: number, add: number, r: number): void;
}

/**
 * The workspace in plain typed arrays, for any D and F: `actCap` and `auxCap`
 * entries in the two latent lists.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { jsWorkspace } from "./workspace.ts";
 * const ws = jsWorkspace(2, 2, 2, 0);
 * ws.WT.set([1, 0, 0, 1]); // W_encᵀ: latent j reads dimension j
 * ws.be.set([0, -1]);
 * ws.xc.set([3, 4]);
 * ws.encode(1);
 * assert.deepEqual([...ws.pre.subarray(0, 2)], [3, 3]);
 * ws.Wd.set([1, 1, 0, 2]);
 * ws.actIdx[0] = 1;
 * ws.actVal[0] = 0.5;
 * ws.decode(0, 1); // e += 0.5 * W_dec[1]
 * assert.deepEqual([...ws.e], [0, 1]);
 * ```
 */
export function jsWorkspace(
  D: number,
  F: number,
  actCap: number,
  auxCap: number,
): Workspace {
  const w = {
    Wd: new Float32Array(F * D),
    WT: new Float32Array(F * D),
    be: new Float32Array(F),
    gWd: new Float32Array(F * D),
    gWT: new Float32Array(F * D),
    gbe: new Float32Array(F),
    xc: new Float32Array(RC * D),
    pre: new Float32Array(RC * F),
    e: new Float32Array(D),
    ge: new Float32Array(D),
    gxc: new Float32Array(D),
    rr: new Float32Array(D),
    actIdx: new Int32Array(actCap),
    actVal: new Float32Array(actCap),
    auxIdx: new Int32Array(Math.max(auxCap, 1)),
    auxVal: new Float32Array(Math.max(auxCap, 1)),
  };
  const { Wd, WT, gWd, gWT, gbe, xc, gxc } = w;
  return {
    ...w,
    simd: false,
    encode(nr) {
      for (let b = 0; b * R < nr; b++) {
        encodeBlock(xc, WT, w.be, w.pre, Math.min(R, nr - b * R), D, F, b * R);
      }
    },
    decode(list, n) {
      const idx = list === 0 ? w.actIdx : w.auxIdx;
      const val = list === 0 ? w.actVal : w.auxVal;
      const out = list === 0 ? w.e : w.rr;
      for (let a = 0; a < n; a++) {
        const c = val[a], o = idx[a] * D;
        for (let d = 0; d < D; d++) out[d] += c * Wd[o + d];
      }
    },
    backward(list, n, add, r) {
      const idx = list === 0 ? w.actIdx : w.auxIdx;
      const val = list === 0 ? w.actVal : w.auxVal;
      const g = list === 0 ? w.ge : w.rr;
      const co = r * D;
      for (let a = 0; a < n; a++) {
        const c = val[a], j = idx[a], o = j * D;
        let gp = 0;
        for (let d = 0; d < D; d++) {
          gp += g[d] * Wd[o + d];
          gWd[o + d] += c * g[d];
        }
        gp += add;
        gbe[j] += gp;
        for (let d = 0; d < D; d++) {
          gWT[o + d] += gp * xc[co + d];
          gxc[d] += gp * WT[o + d];
        }
      }
    },
  };
}

/**
 * The same workspace in WASM memory with SIMD kernels, or null if unusable
 * (D not a multiple of 4, F odd, or no WebAssembly SIMD).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { jsWorkspace, simdWorkspace } from "./workspace.ts";
 * assert.equal(simdWorkspace(6, 4, 1, 0), null);
 * const simd = simdWorkspace(4, 2, 1, 0);
 * assert.ok(simd !== null);
 * const js = jsWorkspace(4, 2, 1, 0);
 * for (const ws of [simd, js]) {
 *   ws.WT.set([1, 2, 3, 4, -1, 0, 1, 0]);
 *   ws.be.set([0.5, 0]);
 *   ws.xc.set([1, 1, 1, 1, 0, 1, 0, 2]); // two rows
 *   ws.encode(2);
 * }
 * assert.deepEqual([...simd.pre.subarray(0, 4)], [10.5, 0, 10.5, 0]);
 * assert.deepEqual([...simd.pre.subarray(0, 4)], [...js.pre.subarray(0, 4)]);
 * ```
 */
export function simdWorkspace(
  D: number,
  F: number,
  actCap: number,
  auxCap: number,
): Workspace | null {
  if (D % 4 !== 0 || F % 2 !== 0) return null;
  const bytes = simdModule(D, F);
  if (!WebAssembly.validate(bytes)) return null;
  let top = 0;
  const alloc = (n: number) => {
    const off = top;
    top += Math.ceil((n * 4) / 16) * 16;
    return off;
  };
  const o = {
    Wd: alloc(F * D),
    WT: alloc(F * D),
    be: alloc(F),
    gWd: alloc(F * D),
    gWT: alloc(F * D),
    gbe: alloc(F),
    xc: alloc(RC * D),
    pre: alloc(RC * F),
    e: alloc(D),
    ge: alloc(D),
    gxc: alloc(D),
    rr: alloc(D),
    actIdx: alloc(actCap),
    actVal: alloc(actCap),
    auxIdx: alloc(Math.max(auxCap, 1)),
    auxVal: alloc(Math.max(auxCap, 1)),
  };
  if (top > 2 ** 31) return null;
  const memory = new WebAssembly.Memory({ initial: Math.ceil(top / 65536) });
  const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
    e: { m: memory },
  });
  const { enc, dec, bwd } = inst.exports as Record<
    string,
    (...a: number[]) => void
  >;
  const buf = memory.buffer;
  const f32 = (off: number, n: number) => new Float32Array(buf, off, n);
  const w = {
    Wd: f32(o.Wd, F * D),
    WT: f32(o.WT, F * D),
    be: f32(o.be, F),
    gWd: f32(o.gWd, F * D),
    gWT: f32(o.gWT, F * D),
    gbe: f32(o.gbe, F),
    xc: f32(o.xc, RC * D),
    pre: f32(o.pre, RC * F),
    e: f32(o.e, D),
    ge: f32(o.ge, D),
    gxc: f32(o.gxc, D),
    rr: f32(o.rr, D),
    actIdx: new Int32Array(buf, o.actIdx, actCap),
    actVal: f32(o.actVal, actCap),
    auxIdx: new Int32Array(buf, o.auxIdx, Math.max(auxCap, 1)),
    auxVal: f32(o.auxVal, Math.max(auxCap, 1)),
  };
  const Db = D * 4;
  return {
    ...w,
    simd: true,
    encode(nr) {
      const nb = Math.ceil(nr / R);
      w.xc.fill(0, nr * D, nb * R * D); // pad rows: finite values, results unused
      enc(o.xc, nb, o.WT, o.be, o.pre);
    },
    decode(list, n) {
      if (n === 0) return;
      if (list === 0) dec(n * 4, o.actIdx, o.actVal, o.e, o.Wd, Db);
      else dec(n * 4, o.auxIdx, o.auxVal, o.rr, o.Wd, Db);
    },
    backward(list, n, add, r) {
      if (n === 0) return;
      const x = o.xc + r * Db;
      if (list === 0) {
        bwd(
          n * 4,
          o.actIdx,
          o.actVal,
          o.ge,
          x,
          o.gxc,
          o.Wd,
          o.gWd,
          o.WT,
          o.gWT,
          o.gbe,
          Db,
          add,
        );
      } else {bwd(
          n * 4,
          o.auxIdx,
          o.auxVal,
          o.rr,
          x,
          o.gxc,
          o.Wd,
          o.gWd,
          o.WT,
          o.gWT,
          o.gbe,
          Db,
          add,
        );}
    },
  };
}
