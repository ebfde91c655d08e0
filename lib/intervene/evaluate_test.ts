import assert from "node:assert/strict";
import type { ExampleOutcome, OutcomeTrace } from "../model/rollout.ts";
import { Evaluator, meanKL } from "./evaluate.ts";

function outcome(
  example: string,
  pred: number[],
  perSup: number[][],
  logits: number[],
  haltStep = 1,
): ExampleOutcome {
  return {
    example,
    label: [1, 0],
    pred,
    predPerSup: perSup,
    haltStep,
    logits: Float32Array.from(logits),
  };
}

const trace = (examples: ExampleOutcome[]): OutcomeTrace => ({
  S: 2,
  V: 2,
  examples,
});

Deno.test("Evaluator.compare: identical traces give zero deltas", () => {
  const t = trace([
    outcome("a", [1, 0], [[0, 0], [1, 0]], [0, 1, 1, 0]),
    outcome("b", [1, 1], [[1, 1], [1, 1]], [0, 2, 0, 3]),
  ]);
  const c = Evaluator.compare(t, t);
  assert.deepEqual(c.delta, {
    exact_acc: 0,
    token_acc: 0,
    mean_halt_step: 0,
    mean_kl: 0,
    flipped_fraction: 0,
  });
  assert.equal(c.baseline.exact_acc, 0.5);
  assert.deepEqual(c.baseline.acc_per_sup.map((s) => s.exact), [0, 0.5]);
});

Deno.test("Evaluator.compare: known deltas, KL and flips", () => {
  const base = trace([outcome("a", [1, 0], [[1, 0], [1, 0]], [0, 0, 0, 0])]);
  const next = trace([
    outcome("a", [1, 1], [[1, 0], [1, 1]], [0, 0, 0, Math.log(3)], 0),
  ]);
  const c = Evaluator.compare(base, next);
  assert.equal(c.delta.exact_acc, -1);
  assert.equal(c.delta.token_acc, -0.5);
  assert.equal(c.delta.mean_halt_step, -1);
  assert.equal(c.delta.flipped_fraction, 0.5);
  // KL(uniform ‖ [1/4, 3/4]) at position 1, 0 at position 0, averaged.
  const kl1 = 0.5 * Math.log(0.5 / 0.25) + 0.5 * Math.log(0.5 / 0.75);
  assert.ok(Math.abs(c.delta.mean_kl - kl1 / 2) < 1e-6);
  assert.equal(c.per_example[0].flipped, 1);
});

Deno.test("Evaluator.compare: only shared examples count, and none shared is an input error", () => {
  const a = trace([outcome("a", [1, 0], [[1, 0]], [0, 1, 1, 0])]);
  const b = trace([outcome("b", [1, 0], [[1, 0]], [0, 1, 1, 0])]);
  assert.throws(() => Evaluator.compare(a, b), /share no example/);
});

Deno.test("meanKL: zero for equal logits, positive otherwise, invariant to a shift", () => {
  const p = Float32Array.of(1, 2, 3);
  assert.equal(meanKL(p, p, 3), 0);
  assert.ok(meanKL(p, Float32Array.of(3, 2, 1), 3) > 0);
  assert.ok(meanKL(p, Float32Array.of(11, 12, 13), 3) < 1e-9);
});
