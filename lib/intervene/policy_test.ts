import assert from "node:assert/strict";
import { SAE } from "../sae/sae.ts";
import { editActivations } from "../edit/policy.ts";
import { AblateFeatures, ClampFeatures, PatchFeatures } from "./policy.ts";

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
  assert.equal(
    new PatchFeatures([1], { sourceStep: "s0.h0.H" }).apply(STEP, h, sae, {
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
