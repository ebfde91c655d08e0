// SAE-based edits act where the SAE was fitted unless asked otherwise: a
// trace that records z_H at the last H cycle only (as `deno task study`
// does), an SAE fitted on it, and intervene/sae fit on the bundled 4x4 TRM.
import assert from "node:assert/strict";
import { join } from "node:path";
import { schemas } from "../lib/schema/mod.ts";
import { cli, DEMO, withTempDir } from "./helpers.ts";

const QUICK = [
  "--examples",
  "8",
  "--candidates",
  "4",
  "--random-features",
  "2",
  "--rank",
  "2",
  "--seed",
  "0",
];

Deno.test("edit steps: intervene and sae fit default to the SAE's fitted steps; others need --steps and warn", async () => {
  await withTempDir(async (tmp) => {
    const run = join(tmp, "run");
    let p = await cli([
      "trace",
      "--run-dir",
      run,
      "--model",
      DEMO,
      "--inputs",
      join(DEMO, "test.jsonl"),
      "--limit",
      "24",
      "--latents",
      "z_H",
      "--steps",
      "s*.h1.H",
    ]);
    assert.equal(p.code, 0, p.stderr);
    p = await cli([
      "sae",
      "fit",
      "--run-dir",
      run,
      "--train-steps",
      "200",
      "--features",
      "64",
      "--k",
      "8",
    ]);
    assert.equal(p.code, 0, p.stderr);
    const metrics = JSON.parse(
      await Deno.readTextFile(join(run, "sae_metrics.json")),
    );
    // The splice of task accuracy recovered names the 8 fitted steps.
    assert.match(
      metrics.task_accuracy_recovered.formula,
      /at the fitted steps \(s0-7\.h1\.H\)/,
    );

    const report = async (args: string[]) => {
      const q = await cli([
        "intervene",
        "--run-dir",
        run,
        "--policy",
        "ablate_features",
        "--force",
        ...QUICK,
        ...args,
      ]);
      assert.equal(q.code, 0, q.stderr);
      const r = JSON.parse(await Deno.readTextFile(join(run, "report.json")));
      assert.ok(schemas.Report.safeParse(r).success);
      return { r, stderr: q.stderr, stdout: q.stdout };
    };
    const byDefault = await report([]);
    assert.doesNotMatch(byDefault.stderr, /warning/);
    assert.deepEqual(
      [
        byDefault.r.policy.steps,
        byDefault.r.policy.addresses,
        byDefault.r.policy.steps_source,
        byDefault.r.policy.outside_fitted,
      ],
      ["s0-7.h1.H", 8, "fitted", 0],
    );
    assert.deepEqual(byDefault.r.causal.steps, {
      selector: "s0-7.h1.H",
      addresses: 8,
    });
    assert.deepEqual(byDefault.r.tomography.steps[3], {
      selector: "s3.h1.H",
      addresses: 1,
    });
    assert.match(
      byDefault.stdout,
      /at s0-7\.h1\.H \(8 steps: the SAE's fitted steps\)/,
    );

    // The same steps asked for by name: the same edit, no warning.
    const named = await report(["--steps", "s*.h1.H"]);
    assert.doesNotMatch(named.stderr, /warning/);
    assert.equal(named.r.policy.steps_source, "requested");
    assert.deepEqual(named.r.comparison, byDefault.r.comparison);
    assert.deepEqual(named.r.causal.ranking, byDefault.r.causal.ranking);

    // Every z_H update: 8 of the 16 were never recorded. One warning line.
    const all = await report(["--steps", "s*.*.H"]);
    const warnings = all.stderr.split("\n").filter((l) => /warning/.test(l));
    assert.equal(warnings.length, 1, all.stderr);
    assert.match(
      warnings[0],
      /8 of the 16 edited steps \(s0-7\.h0-1\.H\) lie outside the steps the SAE was fitted on \(s0-7\.h1\.H\)/,
    );
    assert.deepEqual(
      [all.r.policy.steps, all.r.policy.addresses, all.r.policy.outside_fitted],
      ["s0-7.h0-1.H", 16, 8],
    );
    assert.equal(all.r.causal.steps.addresses, 16);
    assert.match(
      all.stdout,
      /16 steps, 8 of them outside the SAE's fitted steps s0-7\.h1\.H/,
    );
  });
});
