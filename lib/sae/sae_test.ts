import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { InputError } from "../errors.ts";
import { splitByGroup } from "./holdout.ts";
import { Rng } from "../rng.ts";
import { SAE } from "./sae.ts";
import { selectTopK } from "./arch/mod.ts";
import { saeMetrics } from "./metrics.ts";
import { encodeSaePt, writeSaeLensFolder } from "./sae_pt.ts";
import { fitSAE, type RowSource } from "./train/trainer.ts";

/** Rows from a planted dictionary: `active` unit atoms per row, coefficients in [0.5, 1.5). */
function planted(
  n: number,
  dim: number,
  nAtoms: number,
  active: number,
  seed: number,
) {
  const rng = new Rng(seed);
  const atoms = new Float32Array(nAtoms * dim);
  for (let a = 0; a < nAtoms; a++) {
    let s = 0;
    for (let d = 0; d < dim; d++) s += (atoms[a * dim + d] = rng.normal()) ** 2;
    for (let d = 0; d < dim; d++) atoms[a * dim + d] /= Math.sqrt(s);
  }
  const x = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    for (const a of rng.sample(nAtoms, active)) {
      const c = 0.5 + rng.float();
      for (let d = 0; d < dim; d++) x[i * dim + d] += c * atoms[a * dim + d];
    }
  }
  return { atoms, x };
}

function arraySource(x: Float32Array, dim: number): RowSource {
  return {
    n: x.length / dim,
    dim,
    rows(ix, out) {
      for (let i = 0; i < ix.length; i++) {
        out.set(x.subarray(ix[i] * dim, (ix[i] + 1) * dim), i * dim);
      }
    },
  };
}

function paramHash(sae: SAE): string {
  const h = createHash("sha256");
  for (const a of [sae.W_enc, sae.W_dec, sae.b_enc, sae.b_dec]) {
    h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  }
  return h.digest("hex");
}

Deno.test("topk SAE recovers a planted sparse dictionary", () => {
  const D = 32, A = 128;
  const { atoms, x } = planted(24_000, D, A, 4, 123);
  const { sae, curve, scaling_factor } = fitSAE(arraySource(x, D), {
    d_sae: 256,
    k: 4,
    batch_size: 256,
    epochs: 20,
    lr: 1e-3,
    seed: 0,
  });
  let total = 0;
  for (let a = 0; a < A; a++) {
    let best = 0;
    for (let j = 0; j < sae.cfg.d_sae; j++) {
      let c = 0, n2 = 0;
      for (let d = 0; d < D; d++) {
        c += atoms[a * D + d] * sae.W_dec[j * D + d];
        n2 += sae.W_dec[j * D + d] ** 2;
      }
      best = Math.max(best, Math.abs(c) / Math.sqrt(n2));
    }
    total += best;
  }
  const score = total / A;
  console.log(`planted recovery: mean best |cos| = ${score.toFixed(4)}`);
  assert.ok(score >= 0.9, `recovery score ${score}`);
  assert.equal(curve.length, 100);
  assert.ok(curve.at(-1)!.loss < curve[0].loss / 2);

  // Parameters own their buffers (not views into the kernels' memory).
  for (const a of [sae.W_enc, sae.W_dec, sae.b_enc, sae.b_dec]) {
    assert.equal(a.buffer.byteLength, a.byteLength);
  }
  // Decoder rows stay unit norm in training; the input scale c is folded into
  // the saved weights, so they come out with norm 1/c.
  assert.ok(scaling_factor !== 1);
  for (let j = 0; j < sae.cfg.d_sae; j++) {
    let s = 0;
    for (let d = 0; d < D; d++) s += sae.W_dec[j * D + d] ** 2;
    assert.ok(
      Math.abs(Math.sqrt(s) * scaling_factor - 1) < 1e-5,
      `row ${j} norm ${Math.sqrt(s)}`,
    );
  }
});

Deno.test("fitSAE is deterministic per seed", () => {
  const { x } = planted(2000, 16, 32, 3, 5);
  const src = arraySource(x, 16);
  const opts = {
    d_sae: 64,
    k: 3,
    batch_size: 100,
    steps: 60,
    seed: 11,
    dead_tokens: 500,
  };
  const a = paramHash(fitSAE(src, opts).sae);
  const b = paramHash(fitSAE(src, opts).sae);
  const c = paramHash(fitSAE(src, { ...opts, seed: 12 }).sae);
  assert.equal(a, b);
  assert.notEqual(a, c);
  const g1 = paramHash(
    fitSAE(src, { ...opts, b_dec_init: "geometric_median", arch: "relu" }).sae,
  );
  const g2 = paramHash(
    fitSAE(src, { ...opts, b_dec_init: "geometric_median", arch: "relu" }).sae,
  );
  assert.equal(g1, g2);
  // The scalar fallback agrees with the WASM SIMD kernels up to float32
  // rounding, AuxK included (4 atoms for 64 latents: most latents die).
  // D = 16 runs the 2× unrolled encoder kernel, D = 12 the plain one.
  for (const dim of [16, 12]) {
    const few = arraySource(planted(2000, dim, 4, 2, 6).x, dim);
    const o2 = { ...opts, steps: 20, curve_points: 20 };
    const fast = fitSAE(few, o2);
    const slow = fitSAE(few, { ...o2, simd: false });
    assert.ok(fast.curve.some((p) => p.aux > 0));
    for (let i = 0; i < fast.curve.length; i++) {
      const [p, q] = [fast.curve[i], slow.curve[i]];
      assert.ok(
        Math.abs(p.loss - q.loss) <= 1e-4 * q.loss,
        `${p.loss} vs ${q.loss}`,
      );
      assert.ok(
        Math.abs(p.aux - q.aux) <= 1e-4 * q.loss,
        `${p.aux} vs ${q.aux}`,
      );
    }
  }
});

Deno.test("encode/decode match a hand computation (SAELens v6 convention)", () => {
  // D=2, F=3. pre = (x − b_dec) W_enc + b_enc.
  const cfg = { arch: "topk" as const, d_in: 2, d_sae: 3, k: 2 };
  const sae = new SAE(cfg, {
    W_enc: new Float32Array([1, -1, 2, 0.5, 1, -3]), // [D,F]
    W_dec: new Float32Array([1, 0, 0, 1, 1, 1]), // [F,D]
    b_enc: new Float32Array([0, 0.5, -1]),
    b_dec: new Float32Array([1, 1]),
  });
  // x = (3, 1): x − b_dec = (2, 0) → pre = (2, −2 + 0.5, 4 − 1) = (2, −1.5, 3)
  // x = (1, 3): x − b_dec = (0, 2) → pre = (1, 2.5, −7)
  const x = new Float32Array([3, 1, 1, 3]);
  const a = sae.encode(x);
  assert.deepEqual(Array.from(a), [2, 0, 3, 1, 2.5, 0]);
  // decode: f W_dec + b_dec
  const xh = sae.decode(a);
  assert.deepEqual(Array.from(xh), [2 + 3 + 1, 3 + 1, 1 + 1, 2.5 + 1]);
  // k = 3 keeps a negative pre-activation in the top-k set, then ReLU zeroes it.
  const sae3 = SAE.fromTensors(sae.toTensors(), { ...cfg, k: 3 });
  assert.deepEqual(Array.from(sae3.encode(x)), [2, 0, 3, 1, 2.5, 0]);
  // ReLU arch keeps every positive pre-activation.
  const relu = SAE.fromTensors(sae.toTensors(), {
    arch: "relu",
    d_in: 2,
    d_sae: 3,
  });
  assert.deepEqual(Array.from(relu.encode(new Float32Array([3, 1]))), [
    2,
    0,
    3,
  ]);
});

Deno.test("encode: the SIMD kernel gives the scalar loop's bits, for both architectures and odd shapes", () => {
  const rng = new Rng(7);
  for (
    const cfg of [
      { arch: "topk" as const, d_in: 64, d_sae: 512, k: 16 },
      { arch: "relu" as const, d_in: 12, d_sae: 10 },
      { arch: "topk" as const, d_in: 5, d_sae: 7, k: 3 },
    ]
  ) {
    const sae = new SAE(cfg);
    for (const a of [sae.W_enc, sae.b_enc, sae.b_dec]) {
      for (let i = 0; i < a.length; i++) a[i] = rng.normal() * 0.5;
    }
    const n = 67; // not a multiple of the kernel's 4-row blocks
    const h = new Float32Array(n * cfg.d_in).map(() => rng.normal());
    h.fill(0, 0, cfg.d_in); // a zero row: the scalar loop skips zero inputs
    const batched = sae.encode(h); // n >= 8 rows: the SIMD kernel
    const F = cfg.d_sae, D = cfg.d_in;
    let active = 0;
    for (let r = 0; r < n; r++) {
      const one = sae.encode(h.subarray(r * D, (r + 1) * D)); // 1 row: scalar
      for (let j = 0; j < F; j++) {
        assert.ok(
          Object.is(batched[r * F + j], one[j]),
          `${cfg.arch} row ${r} feature ${j}: ${batched[r * F + j]} vs ${
            one[j]
          }`,
        );
        if (one[j] !== 0) active++;
      }
    }
    assert.ok(active > n, "the check must see active features");
  }
});

Deno.test("TopK keeps at most k nonzeros", () => {
  const rng = new Rng(1);
  const D = 8, F = 40, k = 5;
  const sae = new SAE({ arch: "topk", d_in: D, d_sae: F, k });
  for (const w of [sae.W_enc, sae.W_dec, sae.b_enc]) {
    for (let i = 0; i < w.length; i++) {
      w[i] = rng.normal();
    }
  }
  const x = new Float32Array(50 * D).map(() => rng.normal());
  const a = sae.encode(x);
  for (let r = 0; r < 50; r++) {
    const row = a.subarray(r * F, (r + 1) * F);
    const nz = row.filter((v) => v !== 0).length;
    assert.ok(nz <= k && nz >= 1);
    assert.ok(row.every((v) => v >= 0));
  }
  const idx = new Int32Array(3), val = new Float32Array(3);
  assert.equal(
    selectTopK(new Float32Array([NaN, 1, 1, 0]), 0, 4, 3, idx, val),
    3,
  );
  assert.deepEqual(Array.from(idx), [1, 2, 3]);
});

Deno.test("fromTensors validates shapes and values", () => {
  const cfg = { arch: "topk" as const, d_in: 4, d_sae: 8, k: 2 };
  const t = new SAE(cfg).toTensors();
  assert.throws(
    () =>
      SAE.fromTensors(
        { ...t, W_enc: { shape: [8, 4], data: t.W_enc.data } },
        cfg,
      ),
    InputError,
  );
  const bad = t.b_dec.data.slice();
  bad[1] = NaN;
  assert.throws(
    () => SAE.fromTensors({ ...t, b_dec: { shape: [4], data: bad } }, cfg),
    InputError,
  );
  const { W_dec: _, ...missing } = t;
  assert.throws(() => SAE.fromTensors(missing, cfg), InputError);
  assert.throws(() => SAE.fromTensors(t, { ...cfg, k: 9 }), InputError);
  const back = SAE.fromTensors(t, cfg);
  assert.deepEqual(back.toTensors(), t);
});

Deno.test("fitSAE rejects bad options with InputError", () => {
  const src = arraySource(new Float32Array(40), 4);
  assert.throws(() => fitSAE(src, { k: 0, d_sae: 8 }), InputError);
  assert.throws(
    () => fitSAE(src, { d_sae: 8, k: 2, indices: Int32Array.of(10) }),
    InputError,
  );
  assert.throws(() => fitSAE(src, { d_sae: 8, k: 2, lr: -1 }), InputError);
  assert.throws(() => fitSAE(src, { d_sae: 8, k: 2, seed: 0.5 }), InputError);
});

Deno.test("metrics: perfect reconstruction and the zero decoder", () => {
  const { x } = planted(500, 6, 6, 2, 3);
  const src = arraySource(x, 6);
  // Identity SAE on nonnegative-ish data is not exact (ReLU); use data with
  // x ≥ 0 by shifting, so f = x − b_dec ≥ 0 reconstructs perfectly.
  const min = Math.min(...x);
  const xs = x.map((v) => v - min);
  const srcPos = arraySource(xs, 6);
  const id = new SAE({ arch: "relu", d_in: 6, d_sae: 6 });
  for (let i = 0; i < 6; i++) id.W_enc[i * 6 + i] = id.W_dec[i * 6 + i] = 1;
  const m = saeMetrics(id, srcPos);
  assert.equal(m.fvu.value, 0);
  assert.equal(m.explained_variance.value, 1);
  assert.equal(m.mse.value, 0);
  assert.ok(Math.abs(m.mean_cosine.value - 1) < 1e-6);
  assert.ok(Math.abs(m.relative_reconstruction_bias.value - 1) < 1e-6);

  // Zero decoder with b_dec = the evaluation mean: x̂ = x̄ everywhere → FVU 1.
  const zero = new SAE({ arch: "topk", d_in: 6, d_sae: 4, k: 2 });
  const mean = new Float64Array(6);
  for (let i = 0; i < x.length; i++) mean[i % 6] += x[i] / 500;
  zero.b_dec.set(mean);
  zero.b_enc.set([1, 1, -1, 0]); // W_enc = 0: pre = b_enc → latents 0 and 1 always fire
  const z = saeMetrics(zero, src);
  assert.ok(Math.abs(z.fvu.value - 1) < 1e-5, `fvu ${z.fvu.value}`);
  assert.equal(z.l0.value, 2);
  assert.equal(z.l1.value, 2);
  assert.equal(z.dead_fraction.value, 0.5);
  assert.equal(z.dense_fraction_10pct.value, 0.5);
  assert.deepEqual(z.feature_density_histogram.value.counts.at(-1), 2);
  assert.equal(z.feature_density_histogram.value.never, 2);
  // Shrinkage: x̂ = x/2 gives γ = 0.5.
  const half = new SAE({ arch: "relu", d_in: 6, d_sae: 6 });
  for (let i = 0; i < 6; i++) {
    (half.W_enc[i * 6 + i] = 1, half.W_dec[i * 6 + i] = 0.5);
  }
  assert.ok(
    Math.abs(
      saeMetrics(half, srcPos).relative_reconstruction_bias.value - 0.5,
    ) < 1e-6,
  );
  for (const [name, v] of Object.entries(z)) {
    if (name !== "n_rows") assert.equal(typeof v.formula, "string");
  }
});

Deno.test("relu SAE trains and reduces FVU", () => {
  const { x } = planted(4000, 16, 48, 3, 9);
  const src = arraySource(x, 16);
  const { train, heldout } = splitByGroup(
    Array.from({ length: 4000 }, (_, i) => i >> 3),
    0.2,
    0,
  );
  const before = new SAE({ arch: "relu", d_in: 16, d_sae: 64 });
  const mean = new Float64Array(16);
  for (const i of train) {
    for (let d = 0; d < 16; d++) mean[d] += x[i * 16 + d] / train.length;
  }
  before.b_dec.set(mean);
  const fvu0 = saeMetrics(before, src, heldout).fvu.value;
  const { sae, curve } = fitSAE(src, {
    arch: "relu",
    d_sae: 64,
    l1_coefficient: 0.05,
    batch_size: 128,
    epochs: 8,
    lr: 2e-3,
    seed: 3,
    indices: train,
  });
  const fvu = saeMetrics(sae, src, heldout).fvu.value;
  console.log(`relu: held-out FVU ${fvu0.toFixed(3)} → ${fvu.toFixed(3)}`);
  assert.ok(fvu < 0.5 * fvu0, `fvu ${fvu} vs ${fvu0}`);
  assert.ok(curve.some((p) => p.l1 > 0));
});

Deno.test("batchtopk: k·B latents per training batch, a threshold at inference, sae.pt and SAELens carry it", async () => {
  const D = 16, F = 64, k = 3, B = 128;
  const { x } = planted(4000, D, 48, 3, 5);
  const src = arraySource(x, D);
  const fit = fitSAE(src, {
    arch: "batchtopk",
    d_sae: F,
    k,
    batch_size: B,
    steps: 300,
    seed: 2,
  });
  const thr = fit.sae.cfg.threshold!;
  assert.ok(thr > 0, `threshold ${thr}`);
  assert.equal(fit.training.threshold_lr, 0.01);
  assert.equal(fit.training.k_aux, D / 2);
  // At inference a latent is on exactly when its pre-activation exceeds the
  // threshold, and the rows then use k latents on average, give or take.
  const acts = fit.sae.encode(x.subarray(0, 1000 * D));
  let on = 0;
  for (let r = 0; r < 1000; r++) {
    for (let j = 0; j < F; j++) {
      const a = acts[r * F + j];
      const pre = fit.sae.preActivation(x, r, j);
      assert.equal(a > 0, pre > thr, `row ${r} latent ${j}`);
      if (a > 0) on++;
    }
  }
  const l0 = on / 1000;
  console.log(`batchtopk: threshold ${thr.toFixed(4)}, inference L0 ${l0}`);
  assert.ok(l0 > k / 2 && l0 < 2 * k, `L0 ${l0}`);
  // sae.pt keeps the threshold; the SAELens folder is a JumpReLU SAE.
  const cfg = {
    ...fit.sae.cfg,
    format: "trminterp-sae/1" as const,
    latent: "z_H" as const,
    steps: "all",
    trace_digest: "0".repeat(64),
    model_sha256: "0".repeat(64),
    seed: 2,
    training: fit.training,
  };
  const back = SAE.decode(encodeSaePt(fit.sae, cfg), "sae.pt");
  assert.equal(back.sae.cfg.threshold, thr);
  assert.deepEqual(
    back.sae.encode(x.subarray(0, 64 * D)),
    fit.sae.encode(x.subarray(0, 64 * D)),
  );
  const dir = await Deno.makeTempDir();
  try {
    await writeSaeLensFolder(dir, fit.sae, cfg, "demo");
    const j = JSON.parse(await Deno.readTextFile(`${dir}/cfg.json`));
    assert.equal(j.architecture, "jumprelu");
    assert.equal(j.k, undefined);
    const bytes = await Deno.readFile(`${dir}/sae_weights.safetensors`);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = JSON.parse(
      new TextDecoder().decode(bytes.subarray(8, 8 + n)),
    );
    assert.deepEqual(header.threshold.shape, [F]);
    const [a, b] = header.threshold.data_offsets;
    const t = new Float32Array(bytes.slice(8 + n + a, 8 + n + b).buffer);
    assert.ok(t.every((v) => v === thr));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  // Training bytes are seeded.
  const again = fitSAE(src, {
    arch: "batchtopk",
    d_sae: F,
    k,
    batch_size: B,
    steps: 300,
    seed: 2,
  });
  assert.equal(paramHash(again.sae), paramHash(fit.sae));
  assert.equal(again.sae.cfg.threshold, thr);
});

Deno.test("splitByGroup keeps groups whole and is seeded", () => {
  const groups = Array.from(
    { length: 200 },
    (_, i) => `ex${Math.floor(i / 7)}`,
  );
  const a = splitByGroup(groups, 0.25, 4);
  const b = splitByGroup(groups, 0.25, 4);
  const c = splitByGroup(groups, 0.25, 5);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.heldout, c.heldout);
  assert.equal(a.train.length + a.heldout.length, 200);
  const heldGroups = new Set(Array.from(a.heldout, (i) => groups[i]));
  for (const i of a.train) assert.ok(!heldGroups.has(groups[i]));
  assert.equal(heldGroups.size, Math.round(0.25 * 29));
  // Two groups and a tiny fraction: still one on each side.
  const t = splitByGroup([1, 1, 2, 2, 2], 0.01, 0);
  assert.ok(t.train.length > 0 && t.heldout.length > 0);
  assert.throws(() => splitByGroup([1, 2], 1, 0), InputError);
});
