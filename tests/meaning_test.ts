// What a ranked feature means and what the cumulative curve is read against,
// on the bundled 4x4 TRM: report.json's selectivity recomputed here from the
// trace's rows with plain loops, and the mass-matched control checked
// against the features' activity.
import assert from "node:assert/strict";
import { join } from "node:path";
import { Rng } from "../lib/rng.ts";
import { SAE } from "../lib/sae/sae.ts";
import { schemas } from "../lib/schema/mod.ts";
import { TraceDataset } from "../lib/trace/dataset.ts";
import { cli, DEMO, withTempDir } from "./helpers.ts";

Deno.test("meaning: selectivity and the cumulative curve's control in report.json, recomputed independently", async () => {
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
      "32",
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
      "300",
      "--features",
      "128",
      "--k",
      "8",
    ]);
    assert.equal(p.code, 0, p.stderr);
    p = await cli([
      "intervene",
      "--run-dir",
      run,
      "--policy",
      "ablate_features",
      "--examples",
      "12",
      "--candidates",
      "4",
      "--random-features",
      "2",
      "--rank",
      "1",
      "--seed",
      "3",
    ]);
    assert.equal(p.code, 0, p.stderr);
    const r = JSON.parse(await Deno.readTextFile(join(run, "report.json")));
    assert.ok(schemas.Report.safeParse(r).success);

    // The subsample, the SAE and every row, read without the report's code.
    const ds = await TraceDataset.load(run);
    const sae = await SAE.load(run);
    const ids = new Set(
      new Rng(3, 2).sample(32, 12).map((i) => ds.meta.outcomes[i].example),
    );
    const byId = new Map(ds.meta.outcomes.map((o) => [o.example, o]));
    const F = sae.cfg.d_sae, D = ds.header.state_dim;
    const sums = new Float64Array(F);
    let nRows = 0;
    type Count = {
      active: number;
      lab: Map<number, number>;
      blank: number;
      perSup: number[];
    };
    const ranked: number[] = r.causal.ranking.map((f: { feature: number }) =>
      f.feature
    );
    const counts: Count[] = ranked.map(() => ({
      active: 0,
      lab: new Map(),
      blank: 0,
      perSup: Array(8).fill(0),
    }));
    const labelTotal = new Map<number, number>();
    let blanks = 0;
    for (let i = 0; i < ds.shape[0]; i++) {
      const row = ds.row(i);
      if (row.latent !== "z_H" || !ids.has(row.example)) continue;
      const a = sae.encode(ds.states.slice(i * D, (i + 1) * D));
      nRows++;
      for (let f = 0; f < F; f++) sums[f] += a[f];
      const o = byId.get(row.example)!;
      const label = o.label[row.position], input = o.tokens[row.position];
      labelTotal.set(label, (labelTotal.get(label) ?? 0) + 1);
      if (input === 1) blanks++;
      const sup = Number(/^s(\d+)/.exec(row.address)![1]);
      ranked.forEach((f, j) => {
        counts[j].perSup[sup] += a[f];
        if (a[f] <= 0) return;
        counts[j].active++;
        counts[j].lab.set(label, (counts[j].lab.get(label) ?? 0) + 1);
        if (input === 1) counts[j].blank++;
      });
    }
    const near = (a: number, b: number, what: string) =>
      assert.ok(
        Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b)),
        `${what}: ${a} vs ${b}`,
      );
    const sel = r.causal.selectivity;
    assert.deepEqual(sel.groups, [
      "s0",
      "s1",
      "s2",
      "s3",
      "s4",
      "s5",
      "s6",
      "s7",
    ]);
    sel.features.forEach((s: Record<string, never>, j: number) => {
      const c = counts[j], f = ranked[j];
      assert.equal(s.feature, f);
      assert.equal(s.rows, nRows);
      near(s.active_fraction, c.active / nRows, `f${f} active`);
      // Best answer by F1, recomputed.
      let best = -1, bestF = -1;
      for (const [t, n] of [...c.lab].sort((x, y) => x[0] - y[0])) {
        const f1 = 2 * n / (c.active + labelTotal.get(t)!);
        if (f1 > bestF) [best, bestF] = [t, f1];
      }
      const L = s.label as unknown as {
        token: number;
        symbol: string;
        precision: number;
        recall: number;
      };
      assert.equal(L.token, best);
      assert.equal(L.symbol, String(best - 1)); // tokens 2..5 are digits 1..4
      near(L.precision, c.lab.get(best)! / c.active, `f${f} precision`);
      near(L.recall, c.lab.get(best)! / labelTotal.get(best)!, `f${f} recall`);
      const blank =
        (s.input as unknown as { blank: { precision: number; recall: number } })
          .blank;
      near(blank.precision, c.blank / c.active, `f${f} blank precision`);
      near(blank.recall, c.blank / blanks, `f${f} blank recall`);
      (s.activation_per_sup as unknown as number[]).forEach((v, g) =>
        near(v, c.perSup[g] / (nRows / 8), `f${f} s${g}`)
      );
    });

    // The control: alive non-candidates whose summed mean activation is the
    // stated mass, matching the top k's within 5 % or taking more features.
    const activity = Array.from(sums, (s) => s / nRows);
    const cand = new Set(r.causal.candidates.features);
    const massOf = (fs: number[]) => fs.reduce((s, f) => s + activity[f], 0);
    const pool = activity.filter((a, f) => a > 0 && !cand.has(f));
    for (const pt of r.causal.cumulative.points) {
      near(pt.mass, massOf(ranked.slice(0, pt.k)), `mass at k=${pt.k}`);
      assert.equal(pt.control.draws.length, 3);
      for (const d of pt.control.draws) {
        assert.ok(
          d.features.every((f: number) => activity[f] > 0 && !cand.has(f)),
        );
        near(d.mass, massOf(d.features), `draw mass at k=${pt.k}`);
        const within = Math.abs(d.mass - pt.mass) <= 0.05 * pt.mass;
        const more = d.features.length > pt.k &&
          (d.mass >= 0.95 * pt.mass || d.features.length === pool.length);
        assert.ok(
          within || more,
          `k=${pt.k}: ${d.features.length} features, mass ${d.mass} vs ${pt.mass}`,
        );
      }
      const effects = pt.control.draws.map((d: { effect: number }) => d.effect)
        .sort((a: number, b: number) => a - b);
      assert.equal(pt.control.median_effect, effects[1]);
    }
    assert.match(p.stdout, /control: the median of 3 draws/);
    assert.match(
      p.stdout,
      /f\d+: answer \d \(precision \d\.\d\d, recall \d\.\d\d\)/,
    );
  });
});
