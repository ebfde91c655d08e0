import assert from "node:assert/strict";
import { join } from "node:path";
import { StepSelector } from "../model/address.ts";
import { loadBundle } from "../model/bundle.ts";
import { rollout, type RolloutExample } from "../model/rollout.ts";
import {
  editActivations,
  type FeatureDictionary,
  type InterventionPolicy,
  policyHook,
  ReconstructPolicy,
  ZeroPolicy,
} from "./policy.ts";

const STEP = { sup: 0, h: 0, l: "H" as const };

/**
 * A bias-free ReLU dictionary: `a = relu(h W_enc)`, `h' = a W_dec`. lib/edit
 * sits below lib/sae, so its tests bring their own dictionary; the v0
 * policies' tests in lib/intervene use the real SAE.
 */
function reluDictionary(
  D: number,
  F: number,
  W_enc: number[],
  W_dec: number[],
): FeatureDictionary {
  const mul = (x: Float32Array, W: number[], n: number, m: number) => {
    const out = new Float32Array((x.length / n) * m);
    for (let r = 0; r < x.length / n; r++) {
      for (let j = 0; j < m; j++) {
        for (let i = 0; i < n; i++) {
          out[r * m + j] += x[r * n + i] * W[i * m + j];
        }
      }
    }
    return out;
  };
  return {
    cfg: { d_in: D, d_sae: F },
    W_dec: Float32Array.from(W_dec),
    encode: (h) => mul(h, W_enc, D, F).map((v) => Math.max(v, 0)),
    decode: (a) => mul(a, W_dec, F, D),
  };
}

/** F=3 on D=2: features read x, y and x+y. */
function toySae(): FeatureDictionary {
  return reluDictionary(2, 3, [1, 0, 1, 0, 1, 1], [1, 0, 0, 1, 0.5, 0.5]);
}

Deno.test("policies: the splices of task accuracy recovered", () => {
  const sae = toySae();
  const h = Float32Array.of(2, -3); // a = [2, 0, 0]: only x survives
  assert.deepEqual([...new ReconstructPolicy().apply(STEP, h, sae)], [2, 0]);
  assert.deepEqual([...new ZeroPolicy().apply(STEP, h, sae)], [0, 0]);
});

Deno.test("editActivations: an edit adds (a' − a) W_dec to h, keeping the error term; no edit returns h itself", () => {
  const sae = toySae();
  const h = Float32Array.of(2, 3); // a = [2, 3, 5]
  // Zeroing feature 2 subtracts 5 × [0.5, 0.5].
  assert.deepEqual([...editActivations(h, sae, (a) => void (a[2] = 0))], [
    -0.5,
    0.5,
  ]);
  assert.equal(editActivations(h, sae, () => {}), h);
});

Deno.test("policyHook: a user-written policy runs during a rollout; an identity one reproduces the clean run exactly", async () => {
  const bundle = await loadBundle(
    join(import.meta.dirname!, "..", "..", "tests", "fixtures", "tiny_trm"),
  );
  try {
    const examples: RolloutExample[] = [{
      id: "p",
      tokens: [4, 1, 1, 1, 2, 3, 5, 4, 5, 4, 1, 2, 1, 2, 1, 5],
      label: [4, 5, 2, 3, 2, 3, 5, 4, 5, 4, 3, 2, 3, 2, 4, 5],
    }];
    const sae = reluDictionary(
      32,
      4,
      new Array(128).fill(0),
      new Array(128).fill(0),
    );
    const calls: string[] = [];
    const identity: InterventionPolicy = {
      name: "identity",
      params: () => ({}),
      apply: (step, h, _sae, ctx) => {
        calls.push(`${ctx.example}@s${step.sup}`);
        return h;
      },
    };
    const flip: InterventionPolicy = {
      name: "flip",
      params: () => ({}),
      apply: (_step, h) => h.map((v) => -v),
    };
    const site = {
      latent: "z_H" as const,
      steps: StepSelector.parse("s1.*.H"),
      positions: [2, 3, 4],
    };
    const [clean] = await rollout(bundle, examples);
    const [same] = await rollout(bundle, examples, {
      hooks: [policyHook(identity, sae, site)],
    });
    const [flipped] = await rollout(bundle, examples, {
      hooks: [policyHook(flip, sae, site)],
    });
    assert.deepEqual(same.logits, clean.logits);
    assert.deepEqual(calls, ["p@s1", "p@s1"]); // two H cycles in s1
    assert.notDeepEqual(flipped.logits, clean.logits);
  } finally {
    await bundle.release();
  }
});
