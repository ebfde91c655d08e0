import assert from "node:assert/strict";
import { runIntervene } from "./intervene.ts";
import { runSaeFit } from "../sae/fit.ts";
import { runTrace } from "../trace/trace.ts";

const DEMO = new URL("../../references/models/sudoku4-trm", import.meta.url)
  .pathname;

Deno.test("runIntervene: progress rises from the subsample's baseline, in parts of a batch, to its total", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await runTrace({
      runDir: dir,
      model: DEMO,
      inputs: `${DEMO}/test.jsonl`,
      seed: 0,
      limit: 8,
      latents: ["z_H"],
    });
    await runSaeFit({
      runDir: dir,
      seed: 0,
      trainSteps: 50,
      features: 64,
      k: 4,
    });
    const seen: [number, number][] = [];
    await runIntervene({
      runDir: dir,
      policy: "ablate_features",
      seed: 0,
      candidates: 2,
      randomFeatures: 1,
      rank: 1,
      onProgress: (d, t) => seen.push([d, t]),
    });
    const total = seen[0][1];
    assert.ok(seen.every(([, t]) => t === total));
    const done = seen.map(([d]) => d);
    for (let i = 1; i < done.length; i++) assert.ok(done[i] >= done[i - 1]);
    assert.equal(done.at(-1), total); // the traced baseline is reused, not counted
    // The baseline of the 8-example subsample reports each graph call.
    assert.ok(done[0] > 0 && done[0] < 1, `first report ${done[0]}`);
    assert.ok(done.indexOf(8) > 8, "parts before the baseline's end");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
