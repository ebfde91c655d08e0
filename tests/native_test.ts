import assert from "node:assert/strict";
import { join } from "node:path";
import { loadBundle } from "../lib/model/bundle.ts";
import { rollout } from "../lib/model/rollout.ts";
import {
  allLogits,
  cli,
  examplesOf,
  FIXTURES,
  maxAbsDiff,
  npy,
  withTempDir,
} from "./helpers.ts";

for (const family of ["trm", "hrm"]) {
  Deno.test(`native: ${family} outputs match WASM within the float32 rollout tolerance (1e-3)`, async () => {
    const dir = join(FIXTURES, `tiny_${family}`);
    const tok = npy(join(dir, "parity_f32", "tokens.npy"))
      .data as BigInt64Array;
    const pid = npy(join(dir, "parity_f32", "puzzle_identifiers.npy"))
      .data as BigInt64Array;
    const out = [];
    for (const backend of ["wasm", "native"] as const) {
      const bundle = await loadBundle(dir, { backend });
      out.push(
        await rollout(bundle, examplesOf(tok, bundle.manifest.seq_len, pid)),
      );
      await bundle.release();
    }
    const d = maxAbsDiff(allLogits(out[0]), allLogits(out[1]));
    console.log(
      `  ${family}: native vs wasm logits max |diff| ${d.toExponential(2)}`,
    );
    assert.ok(d <= 1e-3, `logits differ by ${d}`);
    assert.deepEqual(
      out[1].map((o) => Array.from(o.pred)),
      out[0].map((o) => Array.from(o.pred)),
    );
  });
}

Deno.test("native: without --allow-ffi the trace is refused up front, naming the flag", async () => {
  await withTempDir(async (tmp) => {
    const p = await cli([
      "trace",
      "--run-dir",
      join(tmp, "run"),
      "--model",
      join(FIXTURES, "tiny_trm"),
      "--inputs",
      join(FIXTURES, "tiny_trm", "puzzles.jsonl"),
      "--backend",
      "native",
    ]);
    assert.equal(p.code, 2);
    assert.equal(p.stderr.trim().split("\n").length, 1);
    assert.match(p.stderr, /lacks --allow-ffi;.*--allow-ffi lifts the sandbox/);
    const ok = await cli([
      "trace",
      "--run-dir",
      join(tmp, "run"),
      "--model",
      join(FIXTURES, "tiny_trm"),
      "--inputs",
      join(FIXTURES, "tiny_trm", "puzzles.jsonl"),
      "--backend",
      "native",
    ], ["--allow-read", "--allow-write", "--allow-ffi"]);
    assert.equal(ok.code, 0, ok.stderr);
  });
});

Deno.test("auto (the default): native with --allow-ffi, wasm without; the header records which, and the same backend repeats byte for byte", async () => {
  await withTempDir(async (tmp) => {
    const model = join(FIXTURES, "tiny_trm");
    const trace = async (
      run: string,
      perms: string[],
      extra: string[] = [],
    ) => {
      const p = await cli([
        "trace",
        "--run-dir",
        join(tmp, run),
        "--model",
        model,
        "--inputs",
        join(model, "puzzles.jsonl"),
        ...extra,
      ], perms);
      assert.equal(p.code, 0, p.stderr);
      const text = await Deno.readTextFile(join(tmp, run, "trace.jsonl"));
      return { text, backend: JSON.parse(text.split("\n")[0]).backend };
    };
    const rw = ["--allow-read", "--allow-write"];
    const sandboxed = await trace("a", rw);
    assert.equal(sandboxed.backend, "wasm");
    const wasm = await trace("b", rw, ["--backend", "wasm"]);
    // Same backend, same states: only the recorded command differs.
    const body = (t: string) => t.slice(t.indexOf("\n"));
    assert.equal(body(wasm.text), body(sandboxed.text));
    const native = await trace("c", [...rw, "--allow-ffi"]);
    assert.equal(native.backend, "native");
    const again = await trace("d", [...rw, "--allow-ffi"]);
    assert.equal(again.text, native.text);
  });
});
