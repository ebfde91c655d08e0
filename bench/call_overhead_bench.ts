/**
 * One onnxruntime-web (WASM) call of the demo model's net at batch 1, three
 * ways: fresh input tensors and a copied-out output (what `backend.ts` does),
 * reused input tensors, and reused inputs with a preallocated output. The
 * difference bounds what buffer reuse could save per call.
 *
 * Run: `deno bench --allow-read --allow-env bench/call_overhead_bench.ts`
 *
 * @module
 */
import { join } from "node:path";
import { loadOrt } from "../lib/model/backend.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const demo = join(ROOT, "references/models/sudoku4-trm");
const dir = await Deno.stat(join(demo, "model.json")).then(
  () => demo,
  () => join(ROOT, "tests/fixtures/tiny_trm"),
);
const man = JSON.parse(await Deno.readTextFile(join(dir, "model.json")));
const ort = await loadOrt("wasm");
const s = await ort.InferenceSession.create(
  await Deno.readFile(join(dir, man.graphs.net.file)),
  { executionProviders: ["wasm"], graphOptimizationLevel: "all" },
);
const dims = [1, man.seq_len + man.puzzle_emb_len, man.hidden_size];
const n = dims[1] * dims[2];
const h = new Float32Array(n).fill(0.1), inj = new Float32Array(n).fill(0.2);
const feeds = {
  hidden: new ort.Tensor("float32", h, dims),
  injection: new ort.Tensor("float32", inj, dims),
};
const out = {
  hidden_out: new ort.Tensor("float32", new Float32Array(n), dims),
};

Deno.bench({
  name: "net call, fresh tensors + getData",
  group: "call",
  baseline: true,
  warmup: 200,
  async fn() {
    const o = await s.run({
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
    const o = await s.run(feeds);
    await o.hidden_out.getData(true);
  },
});
Deno.bench({
  name: "net call, reused inputs + preallocated output",
  group: "call",
  warmup: 200,
  async fn() {
    await s.run(feeds, out);
  },
});
