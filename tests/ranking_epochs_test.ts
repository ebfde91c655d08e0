// End to end through the CLI: `intervene --rank-by kl|exact` orders the
// ranking by what it names and edits the top feature of that order, and
// `sae fit --epochs N` trains ceil(N × training rows / batch) steps.
import assert from "node:assert/strict";
import { join } from "node:path";
import { cli, FIXTURES, withTempDir, writePuzzles } from "./helpers.ts";
import type {
  CausalFeature,
  Report,
  SaeMetricsJson,
} from "../lib/schema/mod.ts";

const TINY = join(FIXTURES, "tiny_trm");

/** Trace 24 seeded puzzles on the tiny TRM and fit a small SAE; returns the run dir. */
async function fitted(tmp: string, fit: string[]): Promise<string> {
  const run = join(tmp, "run");
  const inputs = join(tmp, "p.jsonl");
  await writePuzzles(inputs, 24, 7);
  let p = await cli([
    "trace",
    "--run-dir",
    run,
    "--model",
    TINY,
    "--inputs",
    inputs,
    "--latents",
    "z_H",
  ]);
  assert.equal(p.code, 0, p.stderr);
  p = await cli([
    "sae",
    "fit",
    "--run-dir",
    run,
    "--features",
    "16",
    "--k",
    "4",
    "--seed",
    "0",
    ...fit,
  ]);
  assert.equal(p.code, 0, p.stderr);
  return run;
}

Deno.test("intervene --rank-by token|kl|exact: the ranking is sorted by the named key (ties as the spec says), and the policy edits its top feature", async () => {
  await withTempDir(async (tmp) => {
    const run = await fitted(tmp, ["--train-steps", "200"]);
    const orders: Record<string, number[]> = {};
    for (const by of ["token", "kl", "exact"] as const) {
      const p = await cli([
        "intervene",
        "--run-dir",
        run,
        "--policy",
        "ablate_features",
        "--rank-by",
        by,
        "--candidates",
        "8",
        "--random-features",
        "2",
        "--rank",
        "2",
        "--examples",
        "24",
        "--control-draws",
        "1",
        "--seed",
        "0",
        "--force",
      ]);
      assert.equal(p.code, 0, p.stderr);
      const r: Report = JSON.parse(
        await Deno.readTextFile(join(run, "report.json")),
      );
      assert.equal(r.causal.rank_by, by);
      const ranking: CausalFeature[] = r.causal.ranking;
      assert.equal(ranking.length, 8);
      const key = {
        token: (f: CausalFeature) => [f.effect, f.mean_kl],
        kl: (f: CausalFeature) => [f.mean_kl, f.effect],
        exact: (f: CausalFeature) => [f.exact_drop, f.effect, f.mean_kl],
      }[by];
      for (let i = 1; i < ranking.length; i++) {
        const [a, b] = [key(ranking[i - 1]), key(ranking[i])];
        const j = a.findIndex((v, k) => v !== b[k]);
        const ok = j === -1
          ? ranking[i - 1].feature < ranking[i].feature
          : a[j] > b[j];
        assert.ok(
          ok,
          `--rank-by ${by}: entry ${i - 1} (${a}) before ${i} (${b})`,
        );
      }
      assert.deepEqual(r.policy.params.features, [ranking[0].feature]);
      orders[by] = ranking.map((f) => f.feature);
    }
    // The same candidates each time, ranked three ways.
    assert.deepEqual([...orders.kl].sort(), [...orders.token].sort());
    assert.deepEqual([...orders.exact].sort(), [...orders.token].sort());
  });
});

Deno.test("sae fit --epochs N trains ceil(N × training rows / batch) steps, and --epochs with --train-steps is refused", async () => {
  await withTempDir(async (tmp) => {
    const run = await fitted(tmp, ["--epochs", "3", "--batch", "64"]);
    const m: SaeMetricsJson = JSON.parse(
      await Deno.readTextFile(join(run, "sae_metrics.json")),
    );
    const rows = m.split.train_rows;
    assert.ok(rows > 64, `${rows} training rows`);
    assert.equal(m.config.training.steps_taken, Math.ceil((3 * rows) / 64));
    assert.equal(m.config.training.epochs, 3);
    const p = await cli([
      "sae",
      "fit",
      "--run-dir",
      run,
      "--epochs",
      "2",
      "--train-steps",
      "10",
      "--force",
    ]);
    assert.equal(p.code, 2, p.stderr);
    assert.equal(p.stderr.trim().split("\n").length, 1, p.stderr);
    assert.match(p.stderr, /--epochs.*--train-steps|--train-steps.*--epochs/);
  });
});
