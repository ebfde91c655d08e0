// Several interventions side by side in one run dir (`intervene --name`):
// where they go, the ranking a clamp or patch run reuses (the same bytes a
// recompute gives), and the run-dir rules a named report keeps.
import assert from "node:assert/strict";
import { join } from "node:path";
import { schemas } from "../lib/schema/mod.ts";
import { cli, FIXTURES, listDir } from "./helpers.ts";

const TINY = join(FIXTURES, "tiny_trm");
const QUICK = [
  "--examples",
  "4",
  "--candidates",
  "4",
  "--random-features",
  "4",
  "--rank",
  "2",
];

async function intervene(run: string, args: string[]) {
  const p = await cli(["intervene", "--run-dir", run, ...QUICK, ...args]);
  return p;
}

async function readReport(run: string, rel: string) {
  const r = JSON.parse(await Deno.readTextFile(join(run, rel)));
  assert.ok(schemas.Report.safeParse(r).success, rel);
  return r;
}

Deno.test("intervene --name: runs side by side; clamp and patch reuse the ranking of a matching report, byte for byte what a recompute gives", async () => {
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
    assert.equal(p.code, 0, p.stderr);
    p = await cli([
      "sae",
      "fit",
      "--run-dir",
      run,
      "--train-steps",
      "300",
      "--features",
      "64",
      "--k",
      "8",
    ]);
    assert.equal(p.code, 0, p.stderr);
    // A copy of the run before any report: there the clamp must recompute.
    const bare = join(tmp, "bare");
    await Deno.mkdir(bare);
    for (const f of await listDir(run)) {
      await Deno.copyFile(join(run, f), join(bare, f));
    }

    p = await intervene(run, ["--policy", "ablate_features"]);
    assert.equal(p.code, 0, p.stderr);
    const ablate = await readReport(run, "report.json");
    assert.equal(ablate.provenance.causal_from, null);

    p = await intervene(run, [
      "--policy",
      "clamp_features",
      "--scale",
      "2",
      "--name",
      "clamp",
    ]);
    assert.equal(p.code, 0, p.stderr);
    assert.match(
      p.stdout,
      /reused from .*\/run\/report\.json \(same trace, SAE, model, seed, steps, candidates and subsample; not recomputed\)/,
    );
    assert.match(
      p.stdout,
      /reports in this run dir: report\.json \(ablate_features\), interventions\/clamp\/report\.json \(clamp_features\)/,
    );
    const clamp = await readReport(run, "interventions/clamp/report.json");
    assert.equal(clamp.provenance.causal_from, "report.json");
    assert.deepEqual(clamp.causal, ablate.causal);
    assert.deepEqual(clamp.tomography, ablate.tomography);
    // report.json, the default run, is untouched.
    assert.deepEqual(await readReport(run, "report.json"), ablate);

    // The same clamp where no report exists computes the ranking itself,
    // and gets the same section.
    p = await intervene(bare, [
      "--policy",
      "clamp_features",
      "--scale",
      "2",
      "--name",
      "clamp",
    ]);
    assert.equal(p.code, 0, p.stderr);
    assert.doesNotMatch(p.stdout, /reused from/);
    const fresh = await readReport(bare, "interventions/clamp/report.json");
    assert.equal(fresh.provenance.causal_from, null);
    assert.deepEqual(fresh.causal, clamp.causal);
    assert.deepEqual(fresh.tomography, clamp.tomography);
    assert.deepEqual(fresh.comparison, clamp.comparison);

    // Other settings: no reuse.
    p = await intervene(run, [
      "--policy",
      "clamp_features",
      "--scale",
      "2",
      "--seed",
      "1",
      "--name",
      "clamp-seed1",
    ]);
    assert.equal(p.code, 0, p.stderr);
    assert.equal(
      (await readReport(run, "interventions/clamp-seed1/report.json"))
        .provenance.causal_from,
      null,
    );

    // A patch run with its saved trace beside its report.
    p = await intervene(run, [
      "--policy",
      "patch_features",
      "--source-steps",
      "s0.h1.H",
      "--name",
      "patch",
      "--save-trace",
    ]);
    assert.equal(p.code, 0, p.stderr);
    const patch = await readReport(run, "interventions/patch/report.json");
    assert.equal(patch.provenance.causal_from, "report.json");
    assert.equal(patch.saved_trace, "interventions/patch/trace.jsonl");
    assert.deepEqual(await listDir(join(run, "interventions", "patch")), [
      "report.json",
      "states.npy",
      "trace.jsonl",
    ]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("intervene --name: a bad name, an existing report without --force, a link or a folder where the report goes: one line, exit 2, nothing written", async () => {
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
      "--latents",
      "z_H",
    ]);
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
    ]);
    assert.equal(p.code, 0, p.stderr);
    const clamp = ["--policy", "clamp_features", "--features", "1", "--scale"];
    p = await intervene(run, [...clamp, "2", "--name", "a"]);
    assert.equal(p.code, 0, p.stderr);
    await Deno.mkdir(join(run, "interventions", "dir", "report.json"), {
      recursive: true,
    });
    const outside = join(tmp, "outside");
    await Deno.mkdir(outside);
    await Deno.symlink(outside, join(run, "interventions", "link"));
    const before = await listDir(join(run, "interventions"));
    const cases: [string, RegExp][] = [
      ["../x", /--name "\.\.\/x" is not a plain name/],
      [".hidden", /--name "\.hidden" is not a plain name/],
      ["a", /already holds interventions\/a\/report\.json; pass --force/],
      [
        "dir",
        /is a folder, where trminterp writes interventions\/dir\/report\.json/,
      ],
      ["link", /is a symbolic link/],
    ];
    for (const [name, want] of cases) {
      p = await intervene(run, [...clamp, "3", "--name", name]);
      assert.equal(p.code, 2, `${name}: ${p.stderr}`);
      assert.equal(p.stderr.trim().split("\n").length, 1, p.stderr);
      assert.match(p.stderr, want);
    }
    assert.deepEqual(await listDir(join(run, "interventions")), before);
    assert.deepEqual(await listDir(outside), []);
    // --force replaces the named report, and only it.
    const sha = await Deno.readTextFile(
      join(run, "interventions/a/report.json"),
    );
    p = await intervene(run, [...clamp, "3", "--name", "a", "--force"]);
    assert.equal(p.code, 0, p.stderr);
    assert.notEqual(
      await Deno.readTextFile(join(run, "interventions/a/report.json")),
      sha,
    );
    assert.ok(!(await listDir(run)).includes("report.json"));
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
