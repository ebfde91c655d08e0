// WASM threads: the hang of a threaded run, and thread-count independence.
//
// The hang: onnxruntime-web's threaded build grows its shared wasm memory on
// the main thread while a worker thread runs; the worker can touch the new
// pages before it learns the new size, traps ("memory access out of
// bounds") and exits, and the main thread then waits for it forever. A cold
// process whose first run needs more than the build's 16 MiB start hit it
// about half the time. backend.ts starts that memory at 1 GiB.
import assert from "node:assert/strict";
import { join } from "node:path";
import { DEMO, ROOT } from "./helpers.ts";

/** A child that loads the demo with `threads` WASM threads and prints a hash of every state. */
const CHILD = `
import { createHash } from "node:crypto";
import { setWasmThreads } from "${join(ROOT, "lib/model/backend.ts")}";
import { loadBundle } from "${join(ROOT, "lib/model/bundle.ts")}";
import { rollout } from "${join(ROOT, "lib/model/rollout.ts")}";
const [threads, batch, n] = Deno.args.map(Number);
setWasmThreads(threads);
const bundle = await loadBundle(${JSON.stringify(DEMO)}, { backend: "wasm" });
const lines = Deno.readTextFileSync(${
  JSON.stringify(join(DEMO, "test.jsonl"))
}).trim().split("\\n");
const examples = Array.from({ length: n }, (_, i) => {
  const o = JSON.parse(lines[i % lines.length]);
  return { id: String(i), tokens: o.tokens, label: o.label };
});
const h = createHash("sha256");
await rollout(bundle, examples, { batch, collect: false, hooks: [{
  onStep: (e) => void h.update(new Uint8Array(e.state.buffer, e.state.byteOffset, e.state.byteLength)),
}] });
await bundle.release();
console.log(h.digest("hex"));
`;

async function child(
  file: string,
  threads: number,
  batch: number,
  n: number,
): Promise<{ hash: string; code: number; stderr: string; timedOut: boolean }> {
  // A hung child spins in wasm forever: a time bound, not a speed check.
  const signal = AbortSignal.timeout(240_000);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", file, String(threads), String(batch), String(n)],
    stdout: "piped",
    stderr: "piped",
    signal,
  }).output();
  const dec = new TextDecoder();
  return {
    hash: dec.decode(out.stdout).trim(),
    code: out.code,
    stderr: dec.decode(out.stderr),
    timedOut: signal.aborted,
  };
}

Deno.test("threads: cold threaded runs whose first net call grows the memory finish, and match one thread bit for bit", async () => {
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(file, CHILD);
    // 1024 examples in one batch: 4 MiB states, well past the build's 16 MiB
    // start once intermediates are counted.
    const single = await child(file, 1, 1024, 1024);
    assert.equal(single.code, 0, single.stderr);
    const runs = 6;
    for (let i = 0; i < runs; i++) {
      const r = await child(file, 2, 1024, 1024);
      assert.ok(
        !r.timedOut,
        `threaded run ${i + 1}/${runs} hung (no result within 240 s)`,
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.hash, single.hash, "2 threads changed the states");
    }
  } finally {
    await Deno.remove(file);
  }
});
