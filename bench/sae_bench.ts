/**
 * Throughput of {@linkcode fitSAE} (activations/s) on planted synthetic data
 * at the two reference sizes. Compare with
 * `python3 references/python/sae_ref.py --synthetic N,D --d-sae F --k K --steps S`.
 *
 * Run: `deno bench --allow-all bench/sae_bench.ts`
 *
 * @module
 */

import { Rng } from "../lib/rng.ts";
import { fitSAE, type RowSource } from "../lib/sae/train/trainer.ts";

/**
 * The planted data draws from its own stream, never one fitSAE uses (its
 * decoder init is `Rng(seed, 0)`, its batch order `Rng(seed, 1)`): data from
 * `Rng(0)` with as many atoms as latents started the trainer at the true
 * dictionary. The same stream as bench/run.ts's planted data.
 */
const DATA_RNG = () => new Rng(0x5eed, 0xda7a);

function plantedSource(
  n: number,
  dim: number,
  nAtoms: number,
  active: number,
): RowSource {
  const rng = DATA_RNG();
  const atoms = new Float32Array(nAtoms * dim);
  for (let a = 0; a < nAtoms; a++) {
    let s = 0;
    for (let d = 0; d < dim; d++) s += (atoms[a * dim + d] = rng.normal()) ** 2;
    for (let d = 0; d < dim; d++) atoms[a * dim + d] /= Math.sqrt(s);
  }
  const x = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < active; t++) {
      const a = rng.int(nAtoms), c = 0.5 + rng.float();
      for (let d = 0; d < dim; d++) x[i * dim + d] += c * atoms[a * dim + d];
    }
  }
  return {
    n,
    dim,
    rows(ix, out) {
      for (let i = 0; i < ix.length; i++) {
        out.set(x.subarray(ix[i] * dim, (ix[i] + 1) * dim), i * dim);
      }
    },
  };
}

const BATCH = 4096;
const cases = [
  { D: 64, F: 1024, k: 16, n: 16_384, steps: 8 },
  { D: 512, F: 4096, k: 32, n: 8_192, steps: 2 },
];
const best = new Map<string, number>();

for (const { D, F, k, n, steps } of cases) {
  const src = plantedSource(n, D, F, k);
  const name = `fitSAE topk D=${D} F=${F} k=${k} (${steps}×${BATCH} rows)`;
  Deno.bench({ name, n: 3, warmup: 1 }, (b) => {
    const t0 = performance.now();
    b.start();
    fitSAE(src, { d_sae: F, k, batch_size: BATCH, steps, seed: 0 });
    b.end();
    const rate = (steps * BATCH) / ((performance.now() - t0) / 1000);
    best.set(name, Math.max(best.get(name) ?? 0, rate));
  });
}

// deno bench reports time per iteration; also print the rate it implies.
globalThis.addEventListener("unload", () => {
  for (const [name, rate] of best) {
    console.log(`${name}: best ${Math.round(rate)} activations/s`);
  }
});
