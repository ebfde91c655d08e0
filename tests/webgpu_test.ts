import assert from "node:assert/strict";
import { join } from "node:path";
import { loadBundle } from "../lib/model/bundle.ts";
import { rollout } from "../lib/model/rollout.ts";
import { allLogits, examplesOf, FIXTURES, maxAbsDiff, npy } from "./helpers.ts";

// CI installs Debian's mesa-vulkan-drivers, whose lavapipe gives a WebGPU
// adapter on CPU machines; without an adapter this test fails, it does not skip.
for (const family of ["trm", "hrm"]) {
  Deno.test(`webgpu: ${family} outputs equal WASM within 1e-4`, async () => {
    const dir = join(FIXTURES, `tiny_${family}`);
    const tok = npy(join(dir, "parity_f32", "tokens.npy"))
      .data as BigInt64Array;
    const pid = npy(join(dir, "parity_f32", "puzzle_identifiers.npy"))
      .data as BigInt64Array;
    const results = [];
    for (const backend of ["wasm", "webgpu"] as const) {
      const bundle = await loadBundle(dir, { backend });
      const states: Float32Array[] = [];
      const res = await rollout(
        bundle,
        examplesOf(tok, bundle.manifest.seq_len, pid),
        {
          hooks: [{
            onStep: (e) => void states.push(Float32Array.from(e.state)),
          }],
        },
      );
      await bundle.release();
      results.push({ res, states });
    }
    const [wasm, gpu] = results;
    // The outputs (logits) are compared absolutely; the states, whose scale
    // grows with random weights, relative to their largest magnitude.
    let stateRel = 0;
    wasm.states.forEach((s, i) => {
      const scale = Math.max(1, ...s.map(Math.abs));
      stateRel = Math.max(stateRel, maxAbsDiff(s, gpu.states[i]) / scale);
    });
    const logitDiff = maxAbsDiff(allLogits(wasm.res), allLogits(gpu.res));
    console.log(
      `  ${family}: webgpu vs wasm: logits max |diff| ${
        logitDiff.toExponential(2)
      }, states max rel ${stateRel.toExponential(2)}`,
    );
    assert.ok(logitDiff <= 1e-4, `logits differ by ${logitDiff}`);
    assert.ok(stateRel <= 1e-4, `states differ by ${stateRel} relative`);
    assert.deepEqual(
      gpu.res.map((o) => Array.from(o.pred)),
      wasm.res.map((o) => Array.from(o.pred)),
    );
  });
}
