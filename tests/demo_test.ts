import assert from "node:assert/strict";
import { join } from "node:path";
import { schemas } from "../lib/schema/mod.ts";
import { TraceDataset } from "../lib/trace/dataset.ts";
import { cli, DEMO } from "./helpers.ts";

/** The table under "Measured by trminterp's own runner" in the model card. */
async function cardTable(): Promise<
  { sup: number; exact: number; token: number }[]
> {
  const card = await Deno.readTextFile(join(DEMO, "MODEL_CARD.md"));
  const section = card.split("### Measured by trminterp's own runner")[1];
  assert.ok(section, "the model card has a trminterp table");
  const rows = [...section.matchAll(/^\| (\d+) \| ([\d.]+) \| ([\d.]+) \|$/gm)];
  return rows.map((m) => ({
    sup: Number(m[1]),
    exact: Number(m[2]),
    token: Number(m[3]),
  }));
}

Deno.test("demo: the whole loop on the bundled model; readouts match the model card, the SAE is good, the top feature matters", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const run = join(tmp, "demo");
    let p = await cli(["trace", "--run-dir", run, "--seed", "0"]);
    assert.equal(p.code, 0, p.stderr);
    const ds = await TraceDataset.load(run, {
      latents: ["z_H"],
      steps: "s0.h0.H",
    });
    const n = ds.meta.outcomes.length;
    assert.equal(n, 464);
    const table = await cardTable();
    assert.equal(table.length, 8);
    for (const row of table) {
      const rs = ds.meta.readouts.filter((r) => r.final && r.sup === row.sup);
      assert.equal(rs.length, n);
      const exact: number = rs.filter((r) => r.exact).length / n;
      const token: number = rs.reduce((a: number, r) => a + r.token_acc, 0) / n;
      assert.equal(
        exact.toFixed(4),
        row.exact.toFixed(4),
        `sup ${row.sup} exact`,
      );
      assert.equal(
        token.toFixed(4),
        row.token.toFixed(4),
        `sup ${row.sup} token`,
      );
    }
    assert.ok(table[7].exact >= 0.9 && table[0].exact < table[7].exact - 0.1);

    p = await cli(["sae", "fit", "--run-dir", run, "--seed", "0"]);
    assert.equal(p.code, 0, p.stderr);
    const metrics = JSON.parse(
      await Deno.readTextFile(join(run, "sae_metrics.json")),
    );
    assert.ok(schemas.SaeMetricsJson.safeParse(metrics).success);
    const m = metrics.metrics;
    console.log(
      `  demo SAE: FVU ${m.fvu.value.toFixed(4)}, L0 ${m.l0.value}, dead ${
        m.dead_fraction.value.toFixed(3)
      }, ` +
        `accuracy recovered ${metrics.task_accuracy_recovered.value}`,
    );
    assert.ok(m.fvu.value < 0.1, `FVU ${m.fvu.value}`);
    assert.ok(m.dead_fraction.value < 0.5);
    assert.ok(metrics.task_accuracy_recovered.value > 0.9);

    p = await cli([
      "intervene",
      "--run-dir",
      run,
      "--policy",
      "ablate_features",
      "--seed",
      "0",
    ]);
    assert.equal(p.code, 0, p.stderr);
    const report = JSON.parse(
      await Deno.readTextFile(join(run, "report.json")),
    );
    assert.ok(schemas.Report.safeParse(report).success);
    const top = report.causal.ranking[0];
    const rnd = report.causal.random_features;
    console.log(
      `  top feature ${top.feature}: effect ${top.effect}, KL ${top.mean_kl}; random median effect ${rnd.median_effect}, KL ${rnd.median_kl}`,
    );
    assert.ok(top.effect > 0, "ablating the top feature costs accuracy");
    assert.ok(
      top.effect >= 3 * Math.max(rnd.median_effect, 0) + 1e-3,
      "well above the random median effect",
    );
    assert.ok(
      top.mean_kl >= 10 * rnd.median_kl,
      "and its KL well above the random median KL",
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
