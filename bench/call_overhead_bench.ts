/**
 * One onnxruntime-web (WASM) call of the demo model's net at batch 1, three
 * ways: fresh input tensors with onnxruntime-web's defaults (no memory arena,
 * no memory pattern), the same with reused input tensors, and with the arena
 * and memory pattern on (what `backend.ts` does). Preallocated outputs are
 * not measured: onnxruntime-web 1.30 leaves a preallocated CPU output
 * unwritten (it hands back the caller's tensor, still holding its old data),
 * so a call with one does not deliver its result.
 *
 * Run: `deno bench --allow-read --allow-env bench/call_overhead_bench.ts`
 *
 * @module
 */
import { join } from "node:path";
import { loadOrt, setWasmThreads } from "../lib/model/backend.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const demo = join(ROOT, "references/models/sudoku4-trm");
const dir = await Deno.stat(join(demo, "model.json")).then(
  () => demo,
  () => join(ROOT, "tests/fixtures/tiny_trm"),
);
const man = JSON.parse(await Deno.readTextFile(join(dir, "model.json")));
setWasmThreads(1);
const ort = await loadOrt("wasm");
ort.env.wasm.numThreads = 1;
const bytes = await Deno.readFile(join(dir, man.graphs.net.file));
const plain = await ort.InferenceSession.create(bytes, {
  executionProviders: ["wasm"],
  graphOptimizationLevel: "all",
});
const arena = await ort.InferenceSession.create(bytes, {
  executionProviders: ["wasm"],
  graphOptimizationLevel: "all",
  enableCpuMemArena: true,
  enableMemPattern: true,
});
const dims = [1, man.seq_len + man.puzzle_emb_len, man.hidden_size];
const n = dims[1] * dims[2];
const h = new Float32Array(n).fill(0.1), inj = new Float32Array(n).fill(0.2);
const feeds = {
  hidden: new ort.Tensor("float32", h, dims),
  injection: new ort.Tensor("float32", inj, dims),
};

Deno.bench({
  name: "net call, fresh tensors, onnxruntime-web defaults",
  group: "call",
  baseline: true,
  warmup: 200,
  async fn() {
    const o = await plain.run({
      hidden: new ort.Tensor("float32", h, dims),
      injection: new ort.Tensor("float32", inj, dims),
    });
    await o.hidden_out.getData(true);
  },
});
Deno.bench({
  name: "net call, reused input tensors",
  group: "call",
  warmup: 200,
  async fn() {
    const o = await plain.run(feeds);
    await o.hidden_out.getData(true);
  },
});
Deno.bench({
  name: "net call, memory arena and pattern (backend.ts)",
  group: "call",
  warmup: 200,
  async fn() {
    const o = await arena.run({
      hidden: new ort.Tensor("float32", h, dims),
      injection: new ort.Tensor("float32", inj, dims),
    });
    await o.hidden_out.getData(true);
  },
});
