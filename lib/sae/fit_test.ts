import assert from "node:assert/strict";
import { runSaeFit } from "./fit.ts";
import { runTrace } from "../trace/trace.ts";

const DEMO = new URL("../../references/models/sudoku4-trm", import.meta.url)
  .pathname;

Deno.test("runSaeFit: task accuracy reports its held-out rollouts, three per example, in parts of a batch", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await runTrace({
      runDir: dir,
      model: DEMO,
      inputs: `${DEMO}/test.jsonl`,
      seed: 0,
      limit: 20,
      latents: ["z_H"],
      batch: 4,
    });
    const steps: number[] = [];
    const seen: [number, number][] = [];
    const m = await runSaeFit({
      runDir: dir,
      seed: 0,
      trainSteps: 10,
      features: 32,
      k: 4,
      onProgress: (d) => steps.push(d),
      onTaskProgress: (d, t) => {
        assert.equal(steps.at(-1), 10, "after training");
        seen.push([d, t]);
      },
    });
    const n = m.split.heldout_examples;
    assert.ok(n >= 1);
    assert.ok(seen.every(([, t]) => t === 3 * n));
    const done = seen.map(([d]) => d);
    for (let i = 1; i < done.length; i++) assert.ok(done[i] > done[i - 1]);
    assert.equal(done.at(-1), 3 * n);
    assert.ok(done.some((d) => !Number.isInteger(d)), "parts of a batch");
    // Whole examples at the end of each of the three rollouts (batches of 4).
    for (let k = 1; k <= 3; k++) assert.ok(done.includes(k * n));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
