import assert from "node:assert/strict";
import { join } from "node:path";
import { StepSelector } from "../model/address.ts";
import { loadBundle } from "../model/bundle.ts";
import { rollout, type RolloutExample } from "../model/rollout.ts";
import { SAE } from "../sae/sae.ts";
import {
  type InterventionPolicy,
  policyHook,
  ReconstructPolicy,
  ZeroPolicy,
} from "./policy.ts";

const STEP = { sup: 0, h: 0, l: "H" as const };

/** A ReLU SAE with F=3 on D=2: features read x, y and x+y. */
function toySae(): SAE {
  const sae = new SAE({ arch: "relu", d_in: 2, d_sae: 3 });
  sae.W_enc.set([1, 0, 1, 0, 1, 1]); // [D, F]
  sae.W_dec.set([1, 0, 0, 1, 0.5, 0.5]); // [F, D]
  return sae;
}

Deno.test("policies: the splices of task accuracy recovered", () => {
  const sae = toySae();
  const h = Float32Array.of(2, -3); // a = [2, 0, 0]: only x survives
  assert.deepEqual([...new ReconstructPolicy().apply(STEP, h, sae)], [2, 0]);
  assert.deepEqual([...new ZeroPolicy().apply(STEP, h, sae)], [0, 0]);
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
    const sae = new SAE({ arch: "relu", d_in: 32, d_sae: 4 });
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
