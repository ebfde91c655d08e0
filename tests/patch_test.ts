import assert from "node:assert/strict";
import { join } from "node:path";
import { SAE } from "../lib/sae/sae.ts";
import { TraceDataset } from "../lib/trace/dataset.ts";
import { cli } from "./helpers.ts";

const QUICK = [
  "--examples",
  "8",
  "--candidates",
  "2",
  "--random-features",
  "2",
  "--rank",
  "1",
];

/** Mean activation of every feature over the rows of `ds` at `step`. */
function meanAt(
  ds: TraceDataset,
  encode: (h: Float32Array) => Float32Array,
  F: number,
  step: string,
): Float64Array {
  const rows = ds.select({ latent: "z_H", steps: step });
  const a = encode(ds.gather(rows));
  const out = new Float64Array(F);
  for (let i = 0; i < a.length; i++) out[i % F] += a[i] / rows.length;
  return out;
}

Deno.test("patch_features: patching s0's value of an active feature into s7 changes the outcome; --source-steps is not ignored", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const run = join(tmp, "run");
    let p = await cli([
      "trace",
      "--run-dir",
      run,
      "--limit",
      "32",
      "--latents",
      "z_H",
      "--seed",
      "0",
    ]);
    assert.equal(p.code, 0, p.stderr);
    p = await cli([
      "sae",
      "fit",
      "--run-dir",
      run,
      "--seed",
      "0",
      "--train-steps",
      "400",
      "--features",
      "64",
    ]);
    assert.equal(p.code, 0, p.stderr);
    // The feature active at s0 whose mean moves most by s7.
    const ds = await TraceDataset.load(run, { latents: ["z_H"] });
    const { sae } = await SAE.read(run, { dIn: ds.header.state_dim });
    const F = sae.cfg.d_sae;
    const s0 = meanAt(ds, (h) => sae.encode(h), F, "s0.h1.H");
    const s7 = meanAt(ds, (h) => sae.encode(h), F, "s7.h1.H");
    let f = -1;
    for (let j = 0; j < F; j++) {
      if (s0[j] > 0 && (f < 0 || s0[j] - s7[j] > s0[f] - s7[f])) f = j;
    }
    assert.ok(f >= 0 && s0[f] - s7[f] > 0, "some feature fires more at s0");
    console.log(
      `  feature ${f}: mean ${s0[f].toFixed(3)} at s0.h1.H, ${
        s7[f].toFixed(3)
      } at s7.h1.H`,
    );

    const intervene = async (extra: string[]) => {
      const r = await cli([
        "intervene",
        "--run-dir",
        run,
        "--force",
        "--policy",
        "patch_features",
        "--features",
        String(f),
        "--steps",
        "s7.*.H",
        ...QUICK,
        ...extra,
      ]);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(await Deno.readTextFile(join(run, "report.json")));
    };
    const fromS0 = await intervene(["--source-steps", "s0.h1.H"]);
    const d = fromS0.comparison.delta;
    console.log(`  s0.h1.H -> s7.*.H: delta ${JSON.stringify(d)}`);
    assert.equal(fromS0.policy.params.source_step, "s0.h1.H");
    assert.ok(
      fromS0.comparison.per_example.some((e: { kl: number }) => e.kl > 0),
    );
    assert.ok(
      d.flipped_fraction > 0,
      "patching s0's value into s7 flips some output cell",
    );

    // With a source example too, the result is neither the same-step patch
    // from that example nor the source-step patch from each example itself.
    const other = ds.meta.outcomes[1].example;
    const both = await intervene([
      "--source-steps",
      "s0.h1.H",
      "--source-example",
      other,
    ]);
    const exampleOnly = await intervene(["--source-example", other]);
    const kls = (r: { comparison: { per_example: { kl: number }[] } }) =>
      r.comparison.per_example.map((e) => e.kl);
    assert.notDeepEqual(kls(both), kls(exampleOnly));
    assert.notDeepEqual(kls(both), kls(fromS0));
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
