import assert from "node:assert/strict";
import { join } from "node:path";
import { parseAddress } from "../model/address.ts";
import { loadBundle } from "../model/bundle.ts";
import { Rng } from "../rng.ts";
import { SAE } from "../sae/sae.ts";
import { TraceDataset } from "../trace/dataset.ts";
import { runTrace } from "../trace/trace.ts";
import { editActivations } from "../edit/policy.ts";
import { planIntervention } from "./plan.ts";
import { AblateFeatures, ClampFeatures, PatchFeatures } from "./policy.ts";
import { InterventionSession } from "./session.ts";

const STEP = { sup: 0, h: 0, l: "H" as const };
const CTX = { example: "a", positions: [0] };

/** A ReLU SAE with F=3 on D=2: features read x, y and x+y. */
function toySae(): SAE {
  const sae = new SAE({ arch: "relu", d_in: 2, d_sae: 3 });
  sae.W_enc.set([1, 0, 1, 0, 1, 1]); // [D, F]
  sae.W_dec.set([1, 0, 0, 1, 0.5, 0.5]); // [F, D]
  return sae;
}

Deno.test("policies: ablating a feature removes exactly its decoded contribution and keeps the error term", () => {
  const sae = toySae();
  const h = Float32Array.of(2, 3); // a = [2, 3, 5]
  const out = new AblateFeatures([2]).apply(STEP, h, sae, CTX);
  // h' = h − a_2 W_dec[2] = [2, 3] − 5 [0.5, 0.5]
  assert.deepEqual([...out], [-0.5, 0.5]);
  const mean = new AblateFeatures([0], "mean", Float32Array.of(1, 0, 0))
    .apply(STEP, h, sae, CTX);
  assert.deepEqual([...mean], [1, 3]); // a_0: 2 → 1
});

Deno.test("policies: identity edits return the input array itself, so the state is untouched", () => {
  const sae = toySae();
  const h = Float32Array.of(2, 3);
  assert.equal(
    new ClampFeatures([1], { scale: 1 }).apply(STEP, h, sae, CTX),
    h,
  );
  assert.equal(editActivations(h, sae, () => {}), h);
  // Ablating a feature that does not fire changes nothing either.
  assert.equal(
    new AblateFeatures([0]).apply(STEP, Float32Array.of(-1, 2), sae, CTX)
      .length,
    2,
  );
  const neg = Float32Array.of(-1, 2);
  assert.equal(new AblateFeatures([0]).apply(STEP, neg, sae, CTX), neg);
});

Deno.test("policies: clamp sets or scales; patch copies from the source and leaves rows alone without one", () => {
  const sae = toySae();
  const h = Float32Array.of(2, 3);
  assert.deepEqual(
    [...new ClampFeatures([0], { value: 4 }).apply(STEP, h, sae, CTX)],
    [4, 3],
  );
  assert.deepEqual(
    [...new ClampFeatures([1], { scale: 2 }).apply(STEP, h, sae, CTX)],
    [2, 6],
  );
  const patch = new PatchFeatures([1], { sourceExample: "src" });
  const source = (_: unknown, ex: string) =>
    ex === "src" ? Float32Array.of(0, 7, 0) : undefined;
  assert.deepEqual([...patch.apply(STEP, h, sae, { ...CTX, source })], [2, 7]);
  // Without a source for the example, the rows are left as they are.
  assert.equal(
    new PatchFeatures([1], { sourceExample: "none" }).apply(STEP, h, sae, {
      ...CTX,
      source,
    }),
    h,
  );
  assert.throws(
    () => new ClampFeatures([0], {}),
    /exactly one of value or scale/,
  );
});

/** `act((x − b_dec) W_enc + b_enc)` for ReLU, in float64, written apart from SAE.encode. */
function encodeRelu(sae: SAE, x: Float32Array): Float64Array {
  const { d_in: D, d_sae: F } = sae.cfg;
  const n = x.length / D;
  const out = new Float64Array(n * F);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < F; j++) {
      let z = sae.b_enc[j];
      for (let i = 0; i < D; i++) {
        z += (x[r * D + i] - sae.b_dec[i]) * sae.W_enc[i * F + j];
      }
      out[r * F + j] = Math.max(0, z);
    }
  }
  return out;
}

Deno.test("patch_features: the source step's values come from the trace's states at that step (alone and with a source example)", async () => {
  const tiny = join(
    import.meta.dirname!,
    "..",
    "..",
    "tests",
    "fixtures",
    "tiny_trm",
  );
  const dir = await Deno.makeTempDir();
  const bundle = await loadBundle(tiny, { backend: "wasm" });
  try {
    await runTrace({
      runDir: dir,
      model: tiny,
      inputs: join(tiny, "puzzles.jsonl"),
      seed: 0,
      latents: ["z_H"],
      backend: "wasm",
    });
    const ds = await TraceDataset.load(dir);
    const D = ds.header.state_dim, F = 24;
    const sae = new SAE({ arch: "relu", d_in: D, d_sae: F });
    const rng = new Rng(7, 0);
    for (const w of [sae.W_enc, sae.W_dec]) {
      for (let i = 0; i < w.length; i++) w[i] = rng.normal() / Math.sqrt(D);
    }
    const features = [1, 5, 9, 13, 17, 21];
    const ids = ds.meta.outcomes.map((o) => o.example);
    const target = "s2.h1.H";
    const rowsOf = (example: string, step: string) =>
      ds.gather(ds.select({ latent: "z_H", steps: step, examples: [example] }));
    for (const sourceExample of [undefined, ids[1]]) {
      const plan = planIntervention(
        {
          runDir: dir,
          policy: "patch_features",
          seed: 0,
          features,
          sourceSteps: "s0.h0.H",
          sourceExample,
          steps: target,
        },
        ds,
        sae,
        { latent: "z_H" },
      );
      assert.equal(plan.sourceStep, "s0.h0.H");
      const session = new InterventionSession(bundle, sae, ds, plan, 8);
      const policy = plan.policy(features);
      let changed = 0;
      for (const example of ids) {
        const h = rowsOf(example, target);
        const src = rowsOf(sourceExample ?? example, "s0.h0.H");
        const out = policy.apply(parseAddress(target), h, sae, {
          example,
          positions: plan.positions,
          source: session.source(),
        });
        // h' = h + Σ_f (a_src,f − a_h,f) W_dec[f], with both encodings done here.
        const a = encodeRelu(sae, h), b = encodeRelu(sae, src);
        let worst = 0;
        for (let r = 0; r < h.length / D; r++) {
          for (let i = 0; i < D; i++) {
            let want = h[r * D + i];
            for (const f of features) {
              want += (b[r * F + f] - a[r * F + f]) * sae.W_dec[f * D + i];
            }
            worst = Math.max(worst, Math.abs(out[r * D + i] - want));
            if (out[r * D + i] !== h[r * D + i]) changed++;
          }
        }
        assert.ok(worst < 1e-4, `${example}: off by ${worst}`);
      }
      // The source step differs from the target: the patch moved states.
      assert.ok(changed > 0, "patching from s0.h0.H changed no value");
    }
    // A source step the trace did not record is refused, not skipped.
    await Deno.remove(dir, { recursive: true });
    await runTrace({
      runDir: dir,
      model: tiny,
      inputs: join(tiny, "puzzles.jsonl"),
      seed: 0,
      latents: ["z_H"],
      steps: "s2.*.H",
      backend: "wasm",
    });
    const partial = await TraceDataset.load(dir);
    assert.throws(
      () =>
        planIntervention(
          {
            runDir: dir,
            policy: "patch_features",
            seed: 0,
            features,
            sourceSteps: "s0.h0.H",
            steps: target,
          },
          partial,
          sae,
          { latent: "z_H" },
        ),
      /did not record s0\.h0\.H/,
    );
  } finally {
    await bundle.release();
    await Deno.remove(dir, { recursive: true });
  }
});
