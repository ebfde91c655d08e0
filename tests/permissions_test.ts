import assert from "node:assert/strict";
import { join } from "node:path";
import { ortWasmFiles } from "../cli/permissions.ts";
import { cli, FIXTURES, listDir, ROOT, run } from "./helpers.ts";

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
      ".trminterp-run",
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
    // The fix is the complete flag set, whatever is missing.
    const fix =
      `; run with --allow-read=${TINY},${puzzles},${run},${WASM} --allow-write=${run}`;
    const cases: [string, string[], RegExp][] = [
      [
        "model",
        [readBut(TINY), `--allow-write=${run}`],
        /^trminterp: error: trace lacks --allow-read=\S*tiny_trm;/,
      ],
      [
        "inputs",
        [readBut(puzzles), `--allow-write=${run}`],
        /lacks --allow-read=\S*puzzles\.jsonl;/,
      ],
      [
        "wasm",
        [readBut(WASM), `--allow-write=${run}`],
        /lacks --allow-read=\S*ort-wasm-simd-threaded\.wasm;/,
      ],
      [
        "run dir (read)",
        [readBut(run), `--allow-write=${run}`],
        /lacks --allow-read=\S*run;/,
      ],
      ["run dir (write)", [readBut("")], /lacks --allow-write=\S*run;/],
      ["run dir outside the granted write path", [
        readBut(""),
        `--allow-write=${side}`,
      ], /lacks --allow-write=\S*run;/],
      // Every missing grant in the one line, not one per try.
      [
        "model and run dir",
        [readBut(TINY)],
        /lacks --allow-read=\S*tiny_trm --allow-write=\S*run;/,
      ],
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
      assert.ok(p.stderr.trim().endsWith(fix), `${name}: ${p.stderr}`);
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
    assert.match(sae.stderr, /sae fit lacks --allow-write=\S*run;/);
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
      /intervene lacks --allow-read=\S*run; run with --allow-read=\S*run --allow-write=\S*run$/m,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
    await Deno.remove(side, { recursive: true });
  }
});

Deno.test("permissions: the README's three scoped lines run as printed (MODEL, INPUTS, RUN and WASM filled in)", async () => {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const block = readme.split("### Sandboxed runs")[1]?.split("```sh\n")[1]
    ?.split("```")[0];
  assert.ok(block, "the README has the scoped lines");
  const lines = block.trim().split("\n");
  assert.equal(lines.length, 3);
  const tmp = await Deno.makeTempDir();
  try {
    const values: Record<string, string> = {
      MODEL: TINY,
      INPUTS: PUZZLES,
      RUN: join(tmp, "run"),
      WASM,
    };
    for (const line of lines) {
      const args = line.split(" ").map((a) =>
        a.replace(/\b(MODEL|INPUTS|RUN|WASM)\b/g, (k) => values[k])
      );
      assert.equal(args[0], "deno");
      const p = await run(Deno.execPath(), args.slice(1), { cwd: ROOT });
      assert.equal(p.code, 0, `${line}\n${p.stderr}`);
    }
    assert.ok(
      (await listDir(join(tmp, "run"))).includes("report.json"),
      "the three lines ran the whole loop",
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
