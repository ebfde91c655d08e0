import assert from "node:assert/strict";
import { join } from "node:path";
import { cli, fileSha, listDir, ROOT, run } from "./helpers.ts";

// `deno compile` downloads denort from the internet, which our machines cannot
// reach. The compiled binary is tested wherever DENORT_BIN points at a denort
// (or one sits next to deno); elsewhere the test is reported as ignored.
const denortBin = Deno.env.get("DENORT_BIN") ??
  (() => {
    const candidate = join(Deno.execPath(), "..", "denort");
    try {
      Deno.statSync(candidate);
      return candidate;
    } catch {
      return undefined;
    }
  })();

Deno.test({
  name:
    "compile: the standalone binary runs the demo trace with read/write permissions only",
  ignore: denortBin === undefined,
  fn: async () => {
    const tmp = await Deno.makeTempDir();
    try {
      const bin = join(tmp, "trminterp");
      const c = await new Deno.Command(Deno.execPath(), {
        args: [
          "compile",
          "--allow-read",
          "--allow-write",
          "--include",
          "node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm",
          "--include",
          "references/models/sudoku4-trm",
          "-o",
          bin,
          "cli.ts",
        ],
        cwd: ROOT,
        env: { DENORT_BIN: denortBin! },
      }).output();
      assert.equal(c.code, 0, new TextDecoder().decode(c.stderr));
      const p = await run(bin, [
        "trace",
        "--run-dir",
        join(tmp, "run"),
        "--limit",
        "8",
      ], { cwd: tmp });
      assert.equal(p.code, 0, p.stderr);
      const local = await cli([
        "trace",
        "--run-dir",
        join(tmp, "local"),
        "--limit",
        "8",
      ]);
      assert.equal(local.code, 0);
      assert.equal(
        await fileSha(join(tmp, "run", "states.npy")),
        await fileSha(join(tmp, "local", "states.npy")),
      );
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test("compile: what the binary relies on works here: assets found next to the module from any working directory", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    // No --model/--inputs: the demo bundle and puzzles are found through
    // import.meta.dirname, not the working directory.
    const p = await cli(["trace", "--run-dir", "out", "--limit", "3"], [
      "--allow-read",
      "--allow-write",
    ], tmp);
    assert.equal(p.code, 0, p.stderr);
    assert.deepEqual(await listDir(join(tmp, "out")), [
      ".gitignore",
      ".trminterp-run",
      "states.npy",
      "trace.jsonl",
    ]);
    const header = JSON.parse(
      (await Deno.readTextFile(join(tmp, "out", "trace.jsonl"))).split("\n")[0],
    );
    assert.equal(header.model.name, "sudoku4-trm");
    const v = await cli(["--version"], [], tmp);
    assert.match(v.stdout, /^trminterp \d+\.\d+\.\d+/);
    const compileTask = JSON.parse(
      await Deno.readTextFile(join(ROOT, "deno.json")),
    ).tasks.compile as string;
    for (
      const asset of [
        "ort-wasm-simd-threaded.wasm",
        "references/models/sudoku4-trm",
      ]
    ) {
      assert.ok(
        compileTask.includes(asset),
        `the compile task embeds ${asset}`,
      );
    }
    assert.ok(
      !/--allow-(net|env|run|ffi|sys)/.test(compileTask),
      "the binary gets read and write only",
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
