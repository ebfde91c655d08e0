/**
 * Rollout time of the demo model through {@linkcode rollout}, on the WASM
 * backend (default) and the native one (onnxruntime-node, needs --allow-ffi),
 * at batch 1 (per-call overhead) and batch 64. For the comparison with
 * PyTorch and Python onnxruntime run `deno task bench`.
 *
 * Run: `deno bench --allow-read --allow-env --allow-ffi bench/runner_bench.ts`
 *
 * @module
 */
import { join } from "node:path";
import { type BackendName, BACKENDS } from "../lib/model/backend.ts";
import { type Bundle, loadBundle } from "../lib/model/bundle.ts";
import { rollout, type RolloutExample } from "../lib/model/rollout.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const demo = join(ROOT, "references/models/sudoku4-trm");
const dir = await Deno.stat(join(demo, "model.json")).then(
  () => demo,
  () => join(ROOT, "tests/fixtures/tiny_trm"),
);
const ffi = (await Deno.permissions.query({ name: "ffi" })).state === "granted";

for (const backend of BACKENDS.filter((b) => b !== "webgpu") as BackendName[]) {
  if (backend === "native" && !ffi) continue; // the native backend needs --allow-ffi
  const bundle: Bundle = await loadBundle(dir, { backend });
  const m = bundle.manifest;
  const calls = m.schedule.halt_max_steps * m.schedule.H_cycles *
    (m.schedule.L_cycles + 1);
  for (const B of [1, 64]) {
    const tokens = new BigInt64Array(B * m.seq_len);
    for (let i = 0; i < tokens.length; i++) {
      tokens[i] = BigInt(2 + (7 * i + 3) % (m.vocab_size - 2));
    }
    const examples = asExamples(tokens, m.seq_len);
    Deno.bench({
      name: `rollout ${
        dir.split("/").at(-1)
      } ${backend} B=${B} (${calls} net calls)`,
      group: `B=${B}`,
      baseline: backend === "wasm",
      warmup: 3,
      n: B === 1 ? 50 : 5,
      async fn() {
        await rollout(bundle, examples, { batch: B, collect: false });
      },
    });
  }
}

function asExamples(tokens: BigInt64Array, S: number): RolloutExample[] {
  return Array.from({ length: tokens.length / S }, (_, b) => {
    const t = Array.from(tokens.subarray(b * S, (b + 1) * S), Number);
    return { id: String(b), tokens: t, label: t };
  });
}
