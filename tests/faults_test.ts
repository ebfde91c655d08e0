import assert from "node:assert/strict";
import { join } from "node:path";
import {
  cli,
  fileSha,
  FIXTURES,
  listDir,
  ROOT,
  withTempDir,
  writePuzzles,
} from "./helpers.ts";

const TINY = join(FIXTURES, "tiny_trm");

/** Start the CLI, wait until `ready()` holds (or a delay passes), then SIGKILL it. */
async function killMidway(
  args: string[],
  ready: () => Promise<boolean>,
  minMs: number,
): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "-A", join(ROOT, "cli.ts"), ...args],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const start = performance.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, 50));
    if (performance.now() - start > minMs && await ready()) break;
    if (performance.now() - start > 60_000) break;
  }
  child.kill("SIGKILL");
  const status = await child.status;
  assert.equal(
    status.signal,
    "SIGKILL",
    "the command finished before it could be killed; give it more work",
  );
}

const hasTemp = (dir: string) => async () =>
  (await listDir(dir).catch(() => [])).some((n) => n.endsWith(".tmp"));

Deno.test("faults: SIGKILL mid-command leaves no output under a final name, keeps earlier outputs, and a rerun matches a clean run", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const inputs = join(tmp, "big.jsonl");
    await writePuzzles(inputs, 1500, 7, "k");
    const traceArgs = (
      dir: string,
    ) => [
      "trace",
      "--run-dir",
      dir,
      "--model",
      TINY,
      "--inputs",
      inputs,
      "--batch",
      "16",
    ];
    const saeArgs = (
      dir: string,
    ) => [
      "sae",
      "fit",
      "--run-dir",
      dir,
      "--train-steps",
      "400",
      "--features",
      "64",
      "--k",
      "4",
    ];
    const itvArgs = (dir: string) => [
      "intervene",
      "--run-dir",
      dir,
      "--policy",
      "ablate_features",
      "--examples",
      "32",
      "--candidates",
      "4",
      "--random-features",
      "4",
    ];
    // The clean reference run.
    const clean = join(tmp, "clean");
    for (const args of [traceArgs(clean), saeArgs(clean), itvArgs(clean)]) {
      const p = await cli(args);
      assert.equal(p.code, 0, p.stderr);
    }

    const run = join(tmp, "killed");
    // trace: killed while its temp files are being written.
    await killMidway(traceArgs(run), hasTemp(run), 0);
    let names = await listDir(run);
    // trace.jsonl lands last and marks a finished trace; a states.npy can only
    // be there whole (atomic rename), as an orphaned cache the rerun replaces.
    assert.ok(!names.includes("trace.jsonl"), `after kill: ${names}`);
    console.log(`  trace killed: left ${names.join(", ")}`);
    assert.equal((await cli(traceArgs(run))).code, 0);
    assert.deepEqual(await listDir(run), [
      ".gitignore",
      ".trminterp-run",
      "states.npy",
      "trace.jsonl",
    ]);
    const traceSha = await fileSha(join(run, "trace.jsonl"));
    assert.equal(traceSha, await fileSha(join(clean, "trace.jsonl")));

    // sae fit: killed mid-training; the trace stays intact.
    await killMidway(saeArgs(run), () => Promise.resolve(true), 1500);
    names = await listDir(run);
    assert.ok(!names.includes("sae.pt"), `after kill: ${names}`);
    assert.equal(await fileSha(join(run, "trace.jsonl")), traceSha);
    console.log(`  sae fit killed: left ${names.join(", ")}`);
    assert.equal((await cli(saeArgs(run))).code, 0);
    for (const f of ["sae.pt", "sae_metrics.json"]) {
      assert.equal(
        await fileSha(join(run, f)),
        await fileSha(join(clean, f)),
        f,
      );
    }

    // intervene: killed mid-ranking; everything before it stays intact.
    const saeSha = await fileSha(join(run, "sae.pt"));
    await killMidway(itvArgs(run), () => Promise.resolve(true), 1500);
    names = await listDir(run);
    assert.ok(!names.includes("report.json"), `after kill: ${names}`);
    assert.equal(await fileSha(join(run, "sae.pt")), saeSha);
    console.log(`  intervene killed: left ${names.join(", ")}`);
    assert.equal((await cli(itvArgs(run))).code, 0);
    assert.equal(
      await fileSha(join(run, "report.json")),
      await fileSha(join(clean, "report.json")),
    );
    assert.ok(
      !(await listDir(run)).some((n) => n.endsWith(".tmp")),
      "stale temp files were removed",
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("faults: corrupt sae.pt and a states.npy whose hash does not match", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const run = join(tmp, "run");
    let p = await cli([
      "trace",
      "--run-dir",
      run,
      "--model",
      TINY,
      "--inputs",
      join(TINY, "puzzles.jsonl"),
    ]);
    assert.equal(p.code, 0);
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
    ]);
    assert.equal(p.code, 0);
    const pt = await Deno.readFile(join(run, "sae.pt"));
    await Deno.writeFile(join(run, "sae.pt"), pt.subarray(0, pt.length - 100));
    p = await cli([
      "intervene",
      "--run-dir",
      run,
      "--policy",
      "ablate_features",
    ]);
    assert.equal(p.code, 2, p.stderr);
    assert.equal(p.stderr.trim().split("\n").length, 1);
    assert.match(p.stderr, /sae\.pt is not a readable torch archive/);
    assert.ok(!(await listDir(run)).includes("report.json"));
    // A states.npy that does not match the header is refused: one line, exit
    // code 2, and the earlier outputs stay.
    const fitted = await fileSha(join(run, "sae_metrics.json"));
    const npyBytes = await Deno.readFile(join(run, "states.npy"));
    npyBytes[200] ^= 0xff;
    await Deno.writeFile(join(run, "states.npy"), npyBytes);
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
      "--force",
    ]);
    assert.equal(p.code, 2, p.stderr);
    assert.equal(p.stderr.trim().split("\n").length, 1);
    assert.match(
      p.stderr,
      /states\.npy is not the states\.npy its trace\.jsonl pins \(sha256 [0-9a-f]{12}…, header [0-9a-f]{12}…\): it was changed or replaced; run `deno task trminterp trace --run-dir [^`]+` again$/m,
    );
    assert.equal(await fileSha(join(run, "sae_metrics.json")), fitted);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("faults: a run dir whose creation was cut short still gets its .gitignore on the rerun", async () => {
  await withTempDir(async (tmp) => {
    const run = join(tmp, "run");
    // As a kill between mkdir and the .gitignore rename leaves it.
    await Deno.mkdir(run);
    await Deno.writeTextFile(
      join(run, ".gitignore.trminterp-999999999-0123456789ab.tmp"),
      "*",
    );
    const p = await cli([
      "trace",
      "--run-dir",
      run,
      "--model",
      TINY,
      "--inputs",
      join(TINY, "puzzles.jsonl"),
    ]);
    assert.equal(p.code, 0, p.stderr);
    assert.deepEqual(await listDir(run), [
      ".gitignore",
      ".trminterp-run",
      "states.npy",
      "trace.jsonl",
    ]);
    assert.equal(await Deno.readTextFile(join(run, ".gitignore")), "*\n");
  });
});

Deno.test("faults: an orphaned states.npy (no trace.jsonl) is replaced without --force", async () => {
  await withTempDir(async (tmp) => {
    const run = join(tmp, "run");
    await Deno.mkdir(run);
    await Deno.writeTextFile(join(run, ".gitignore"), "*\n");
    await Deno.writeFile(join(run, "states.npy"), new Uint8Array([1, 2, 3]));
    const p = await cli([
      "trace",
      "--run-dir",
      run,
      "--model",
      TINY,
      "--inputs",
      join(TINY, "puzzles.jsonl"),
    ]);
    assert.equal(p.code, 0, p.stderr);
    const header = JSON.parse(
      (await Deno.readTextFile(join(run, "trace.jsonl"))).split("\n")[0],
    );
    assert.equal(
      header.states_npy.sha256,
      await fileSha(join(run, "states.npy")),
    );
  });
});
