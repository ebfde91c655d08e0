import assert from "node:assert/strict";
import { join } from "node:path";
import { ortWasmFiles } from "../cli/permissions.ts";
import { cli, FIXTURES, listDir } from "./helpers.ts";

const TINY = join(FIXTURES, "tiny_trm");
const PUZZLES = join(TINY, "puzzles.jsonl");
const WASM = ortWasmFiles("wasm")[0];

Deno.test("permissions: the full loop runs with only the scoped read/write flags", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const run = join(tmp, "run");
    const read = `--allow-read=${TINY},${WASM},${run}`;
    const write = `--allow-write=${run}`;
    let p = await cli([
      "trace",
      "--run-dir",
      run,
      "--model",
      TINY,
      "--inputs",
      PUZZLES,
    ], [read, write]);
    assert.equal(p.code, 0, p.stderr);
    p = await cli([
      "sae",
      "fit",
      "--run-dir",
      run,
      "--train-steps",
      "50",
      "--features",
      "32",
      "--k",
      "4",
    ], [read, write]);
    assert.equal(p.code, 0, p.stderr);
    const metrics = JSON.parse(
      await Deno.readTextFile(join(run, "sae_metrics.json")),
    );
    assert.equal(typeof metrics.task_accuracy_recovered.value, "number");
    const quick = [
      "--examples",
      "4",
      "--candidates",
      "2",
      "--random-features",
      "2",
    ];
    p = await cli([
      "intervene",
      "--run-dir",
      run,
      "--policy",
      "ablate_features",
      ...quick,
    ], [read, write]);
    assert.equal(p.code, 0, p.stderr);
    assert.deepEqual(await listDir(run), [
      ".gitignore",
      "report.json",
      "sae.pt",
      "sae_metrics.json",
      "states.npy",
      "trace.jsonl",
    ]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("permissions: each missing permission is named in one line with exit code 2, before any output", async () => {
  const tmp = await Deno.makeTempDir();
  const side = await Deno.makeTempDir();
  try {
    const run = join(tmp, "run");
    // Puzzles outside the model folder, so the two grants are separate.
    const puzzles = join(side, "puzzles.jsonl");
    await Deno.copyFile(PUZZLES, puzzles);
    const args = [
      "trace",
      "--run-dir",
      run,
      "--model",
      TINY,
      "--inputs",
      puzzles,
    ];
    const all = [TINY, puzzles, WASM, run];
    const readBut = (skip: string) =>
      `--allow-read=${all.filter((p) => p !== skip).join(",")}`;
    const cases: [string, string[], RegExp][] = [
      [
        "model",
        [readBut(TINY), `--allow-write=${run}`],
        /trace needs read access to .*tiny_trm; run with --allow-read=/,
      ],
      [
        "inputs",
        [readBut(puzzles), `--allow-write=${run}`],
        /read access to .*puzzles\.jsonl; run with --allow-read=/,
      ],
      [
        "wasm",
        [readBut(WASM), `--allow-write=${run}`],
        /read access to .*ort-wasm-simd-threaded\.wasm; run with/,
      ],
      [
        "run dir (read)",
        [readBut(run), `--allow-write=${run}`],
        /read access to .*run; run with --allow-read=/,
      ],
      [
        "run dir (write)",
        [readBut("")],
        /needs write access to the run dir .*; run with --allow-write=/,
      ],
      ["run dir outside the granted write path", [
        readBut(""),
        `--allow-write=${side}`,
      ], /--allow-write=/],
    ];
    for (const [name, perms, pattern] of cases) {
      const p = await cli(args, perms);
      assert.equal(p.code, 2, `${name}: ${p.stderr}`);
      assert.equal(
        p.stderr.trim().split("\n").length,
        1,
        `${name}: ${p.stderr}`,
      );
      assert.match(p.stderr, pattern, name);
      assert.deepEqual(await listDir(tmp), [], `${name} wrote something`);
      console.log(
        `  ${name}: exit ${p.code}: ${p.stderr.trim().slice(0, 100)}`,
      );
    }
    // Later stages need the run dir (and the model for intervene).
    const ok = await cli(args, [readBut(""), `--allow-write=${run}`]);
    assert.equal(ok.code, 0, ok.stderr);
    const sae = await cli(["sae", "fit", "--run-dir", run], [
      `--allow-read=${run}`,
    ]);
    assert.equal(sae.code, 2);
    assert.match(sae.stderr, /sae fit needs write access to the run dir/);
    const itv = await cli([
      "intervene",
      "--run-dir",
      run,
      "--policy",
      "ablate_features",
    ], [`--allow-write=${run}`]);
    assert.equal(itv.code, 2);
    assert.match(
      itv.stderr,
      /intervene needs read access to .*run; run with --allow-read=/,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
    await Deno.remove(side, { recursive: true });
  }
});
