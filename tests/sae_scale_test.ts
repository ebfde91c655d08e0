import assert from "node:assert/strict";
import { fitSAE, type RowSource } from "../lib/sae/train/trainer.ts";
import { Rng } from "../lib/rng.ts";

// A planted dictionary: 96 unit atoms in D=48, each row a positive mix of 3
// of them, scaled so that E‖x‖² = scale·D. The data's random stream
// (Rng(7, 11)) is not the SAE init's (Rng(seed, 0)).
const D = 48, ATOMS = 96, ACTIVE = 3, N = 16_384;

function planted(scale: number): { atoms: Float32Array; source: RowSource } {
  const rng = new Rng(7, 11);
  const atoms = new Float32Array(ATOMS * D);
  for (let a = 0; a < ATOMS; a++) {
    let s = 0;
    for (let d = 0; d < D; d++) {
      const v = rng.normal();
      atoms[a * D + d] = v;
      s += v * v;
    }
    for (let d = 0; d < D; d++) atoms[a * D + d] /= Math.sqrt(s);
  }
  const x = new Float32Array(N * D);
  for (let r = 0; r < N; r++) {
    const used = new Set<number>();
    while (used.size < ACTIVE) used.add(rng.int(ATOMS));
    for (const a of used) {
      const c = 0.5 + Math.abs(rng.normal());
      for (let d = 0; d < D; d++) x[r * D + d] += c * atoms[a * D + d];
    }
  }
  let e2 = 0;
  for (const v of x) e2 += v * v;
  const f = Math.sqrt((scale * D) / (e2 / N));
  for (let i = 0; i < x.length; i++) x[i] *= f;
  return {
    atoms,
    source: {
      n: N,
      dim: D,
      rows(ix, out) {
        ix.forEach((r, i) => out.set(x.subarray(r * D, (r + 1) * D), i * D));
      },
    },
  };
}

/** Mean over true atoms of the best |cos| with a decoder row. */
function mmcs(atoms: Float32Array, W_dec: Float32Array, F: number): number {
  let total = 0;
  for (let a = 0; a < ATOMS; a++) {
    let best = 0;
    for (let j = 0; j < F; j++) {
      let dot = 0, n2 = 0;
      for (let d = 0; d < D; d++) {
        dot += atoms[a * D + d] * W_dec[j * D + d];
        n2 += W_dec[j * D + d] ** 2;
      }
      best = Math.max(best, Math.abs(dot) / Math.sqrt(n2));
    }
    total += best;
  }
  return total / ATOMS;
}

for (const arch of ["topk", "relu", "batchtopk"] as const) {
  Deno.test(`sae defaults hold at any data scale: ${arch} recovers a planted dictionary at E‖x‖² = 0.1·D and 10·D`, () => {
    const seen: number[] = [];
    for (const scale of [0.1, 10]) {
      const { atoms, source } = planted(scale);
      // Default flags: only the architecture and the seed are given.
      const fit = fitSAE(source, { arch, seed: 0 });
      const m = mmcs(atoms, fit.sae.W_dec, fit.sae.cfg.d_sae);
      console.log(
        `  ${arch} E‖x‖²=${scale}·D: MMCS ${m.toFixed(4)} (input scale ${
          fit.scaling_factor.toFixed(4)
        })`,
      );
      assert.ok(m >= 0.9, `${arch} at ${scale}·D: MMCS ${m}`);
      seen.push(m);
    }
    // The normalization makes training scale-free: both ends learn alike.
    assert.ok(Math.abs(seen[0] - seen[1]) < 0.01, `${seen}`);
  });
}
