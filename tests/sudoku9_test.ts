// The 9x9 study model (references/models/sudoku9-trm-mlp) end to end: its card's
// subset tables against torch and the runner, its generator, and the loop.
import assert from "node:assert/strict";
import { join } from "node:path";
import { schemas } from "../lib/schema/mod.ts";
import { TraceDataset } from "../lib/trace/dataset.ts";
import { cli, PY, py, python, ROOT, withTempDir } from "./helpers.ts";

const MODEL = join(ROOT, "references", "models", "sudoku9-trm-mlp");
// the official checkpoint the bundle was exported from, as its provenance names it
const CHECKPOINT: string = JSON.parse(
  await Deno.readTextFile(join(MODEL, "source.json")),
).checkpoint;
const N = 64;
const CELLS = 81;
// --backend auto picks native onnxruntime when it may load it (3x faster on
// this model than WASM here), else WASM; both are held to the same counts
const PERMS = ["--allow-read", "--allow-write", "--allow-ffi"];

/** Per supervision step: puzzles solved and cells right, out of N and N·81. */
interface Counts {
  sup: number;
  solved: number;
  cells: number;
}

/** The card's table under `#### <split>, first 64 puzzles`. */
async function cardSubset(split: string): Promise<Counts[]> {
  const card = await Deno.readTextFile(join(MODEL, "MODEL_CARD.md"));
  const section = card.split(`#### ${split}, first ${N} puzzles`)[1]
    ?.split("\n\n|")[1]?.split("\n\n")[0];
  assert.ok(section, `the card has a ${split} subset table`);
  const rows = [
    ...("|" + section).matchAll(
      /^\| (\d) \| (\d+) \| [\d.]+ \| (\d+) \| [\d.]+ \|$/gm,
    ),
  ];
  return rows.map((m) => ({
    sup: Number(m[1]),
    solved: Number(m[2]),
    cells: Number(m[3]),
  }));
}

/** The first N puzzles of a split as a dataset folder of the official layout. */
async function subsetFolder(split: string, dst: string): Promise<void> {
  await py(
    `import json, os, sys, numpy as np
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(dst)
for k in ("inputs", "labels", "puzzle_identifiers"):
    np.save(os.path.join(dst, f"all__{k}.npy"), np.load(os.path.join(src, f"all__{k}.npy"))[:n])
for k in ("puzzle_indices", "group_indices"):
    np.save(os.path.join(dst, f"all__{k}.npy"), np.load(os.path.join(src, f"all__{k}.npy"))[:n + 1])
meta = json.load(open(os.path.join(src, "dataset.json")))
meta.update(total_groups=n, total_puzzles=n)
json.dump(meta, open(os.path.join(dst, "dataset.json"), "w"))`,
    join(MODEL, "data", split),
    dst,
    String(N),
  );
}

for (const split of ["moderate/test", "hard/test"]) {
  Deno.test(`sudoku9: on the first ${N} puzzles of ${split}, the card's per-step counts are torch's, and the runner's`, async () => {
    await withTempDir(async (tmp) => {
      // torch, now: the card's numbers must come from the checkpoint it ships
      const json = join(tmp, "torch.json");
      await python([
        join(PY, "evaluate.py"),
        "--checkpoint",
        join(MODEL, CHECKPOINT),
        "--official-config",
        join(MODEL, "all_config.yaml"),
        "--inputs",
        join(MODEL, "data", split),
        "--limit",
        String(N),
        "--json",
        json,
        "--no-by-blanks",
        // two torch threads spin against each other on a loaded 2-core box
        "--threads",
        "1",
      ]);
      const torch: Counts[] = JSON.parse(await Deno.readTextFile(json))
        .per_step.map((e: { sup: number; exact: number; token: number }) => ({
          sup: e.sup,
          // evaluate.py rounds to 1e-6; counts are multiples of 1/64 and 1/5184
          solved: Math.round(e.exact * N),
          cells: Math.round(e.token * N * CELLS),
        }));
      const card = await cardSubset(split);
      assert.equal(card.length, 8);
      assert.deepEqual(card, torch);

      // the runner, reading the subset as a dataset folder; one recorded
      // state per example, since only the readouts are compared
      const sub = join(tmp, "subset");
      await subsetFolder(split, sub);
      const run = join(tmp, "run");
      const p = await cli([
        "trace",
        "--run-dir",
        run,
        "--model",
        MODEL,
        "--inputs",
        sub,
        "--latents",
        "z_H",
        "--steps",
        "s0.h0.H",
        "--positions",
        "0",
      ], PERMS);
      assert.equal(p.code, 0, p.stderr);
      const ds = await TraceDataset.load(run, { latents: ["z_H"] });
      assert.equal(ds.header.inputs.format, "dataset_dir");
      assert.equal(ds.meta.outcomes.length, N);
      const runner = card.map(({ sup }) => {
        const rs = ds.meta.readouts.filter((r) => r.final && r.sup === sup);
        assert.equal(rs.length, N);
        return {
          sup,
          solved: rs.filter((r) => r.exact).length,
          // token_acc is k/81 per puzzle (every cell is labelled)
          cells: rs.reduce((a, r) => a + Math.round(r.token_acc * CELLS), 0),
        };
      });
      // float32 onnxruntime and float32 torch differ by rounding only. On
      // moderate puzzles no argmax flips, so the counts agree exactly. On the
      // hard split the model fails, its states wander, and a rounding
      // difference grows over the steps until some cells' top two logits
      // swap: with the EMA model (step_500) the runner's cells right were
      // 0, 0, 0, 0, 0, +1, +2, +5 off torch's at s0-s7 here (native), never
      // a solved puzzle; with the first model at most 2. Hence 8.
      const tol = split === "hard/test" ? 8 : 0;
      for (const [i, r] of runner.entries()) {
        assert.equal(r.solved, card[i].solved, `s${r.sup} solved`);
        assert.ok(
          Math.abs(r.cells - card[i].cells) <= tol,
          `s${r.sup}: runner ${r.cells} cells right, torch ${card[i].cells}`,
        );
      }
    });
  });
}

Deno.test("sudoku9: the generator is deterministic, its puzzles have unique solutions, splits share no grid, the committed test splits regenerate", async () => {
  await withTempDir(async (tmp) => {
    const out = await python([
      join(PY, "check_sudoku9.py"),
      "--tmp",
      tmp,
      "--committed",
      join(MODEL, "data"),
    ]);
    const res = JSON.parse(out.trim().split("\n").at(-1)!);
    assert.deepEqual(res.errors, []);
    assert.equal(res.ok, true);
    assert.deepEqual(res.reproduced, ["moderate/test", "hard/test[:16]"]);
  });
});

Deno.test("sudoku9: trace -> sae fit -> intervene on the 9x9 bundle (16 puzzles); outputs validate and load", async () => {
  await withTempDir(async (tmp) => {
    const run = join(tmp, "loop");
    let p = await cli([
      "trace",
      "--run-dir",
      run,
      "--model",
      MODEL,
      "--inputs",
      join(MODEL, "data", "moderate", "test"),
      "--limit",
      "16",
      "--seed",
      "0",
      "--latents",
      "z_H",
      "--steps",
      "s*.h2.H",
    ], PERMS);
    assert.equal(p.code, 0, p.stderr);
    const ds = await TraceDataset.load(run, { latents: ["z_H"] });
    assert.deepEqual(ds.shape, [16 * 8 * CELLS, 128]);

    p = await cli([
      "sae",
      "fit",
      "--run-dir",
      run,
      "--seed",
      "0",
      "--features",
      "256",
      "--train-steps",
      "150",
    ], PERMS);
    assert.equal(p.code, 0, p.stderr);
    const metrics = JSON.parse(
      await Deno.readTextFile(join(run, "sae_metrics.json")),
    );
    assert.ok(schemas.SaeMetricsJson.safeParse(metrics).success);
    assert.equal(metrics.config.d_in, 128);
    assert.equal(metrics.config.d_sae, 256);
    // a fitted dictionary explains most of the variance even after 150 steps
    assert.ok(
      metrics.metrics.fvu.value < 0.5,
      `FVU ${metrics.metrics.fvu.value}`,
    );

    p = await cli([
      "intervene",
      "--run-dir",
      run,
      "--policy",
      "ablate_features",
      "--seed",
      "0",
      "--examples",
      "8",
      "--candidates",
      "4",
      "--random-features",
      "2",
      "--rank",
      "2",
      // the last two supervision steps only: every ablated rollout starts
      // from the baseline's carry at s6, a quarter of the work
      "--steps",
      "s6-7.h2.H",
    ], PERMS);
    assert.equal(p.code, 0, p.stderr);
    const report = JSON.parse(
      await Deno.readTextFile(join(run, "report.json")),
    );
    assert.ok(schemas.Report.safeParse(report).success);
    const c = report.causal;
    assert.equal(c.ranking.length, 4);
    assert.deepEqual(c.cumulative.points.map((q: { k: number }) => q.k), [
      1,
      2,
      4,
    ]);
    assert.equal(report.policy.steps, "s6-7.h2.H");
    assert.deepEqual(report.tomography.groups, ["s6", "s7"]);
    // the baseline the report compares against is the trace's own outcome
    const exact = ds.meta.outcomes.filter((o) => o.exact).length / 16;
    assert.equal(report.comparison.baseline.exact_acc, exact);

    // sae.pt opens in torch and states.npy in the numpy reader
    const out = await py(
      `import sys, torch
sys.path.insert(0, sys.argv[2])
from trace_reader import load_trace
sd = torch.load(sys.argv[1] + "/sae.pt", weights_only=True)["state_dict"]
x, rows = load_trace(sys.argv[1], latent="z_H", steps="s7.h2.H")
print(tuple(sd["W_enc"].shape), tuple(x.shape))`,
      run,
      PY,
    );
    assert.equal(out.trim(), "(128, 256) (1296, 128)");
  });
});
