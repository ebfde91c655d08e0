import assert from "node:assert/strict";
import { join } from "node:path";
import { cli, py, python, PY, ROOT, withTempDir } from "./helpers.ts";

const MODEL = join(ROOT, "references", "models", "sudoku9-trm-mlp");

/**
 * Exact and token accuracy per supervision step on the first 64 puzzles of the
 * moderate test split, by the torch reference from the official checkpoint
 * (`evaluate.py --checkpoint step_4375 --official-config all_config.yaml
 * --inputs data/moderate/test --limit 64`, float32): the runner must agree.
 */
const TORCH_FIRST_64 = [
  { sup: 0, exact: 0, token: 0 },
];

Deno.test("sudoku9: the runner reproduces the torch per-step accuracy on 64 moderate test puzzles read from a dataset folder", async () => {
  await withTempDir(async (tmp) => {
    // the first 64 puzzles as a dataset folder of the official layout
    const sub = join(tmp, "moderate64");
    await py(
      `import json, os, sys, numpy as np
src, dst, n = sys.argv[1], sys.argv[2], 64
os.makedirs(dst)
for k in ("inputs", "labels", "puzzle_identifiers"):
    np.save(os.path.join(dst, f"all__{k}.npy"), np.load(os.path.join(src, f"all__{k}.npy"))[:n])
for k in ("puzzle_indices", "group_indices"):
    np.save(os.path.join(dst, f"all__{k}.npy"), np.load(os.path.join(src, f"all__{k}.npy"))[:n + 1])
meta = json.load(open(os.path.join(src, "dataset.json")))
meta.update(total_groups=n, total_puzzles=n)
json.dump(meta, open(os.path.join(dst, "dataset.json"), "w"))`,
      join(MODEL, "data", "moderate", "test"),
      sub,
    );
    const run = join(tmp, "run");
    // record one state per example: only the readouts matter here
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
      "--no-states-npy",
    ]);
    assert.equal(p.code, 0, p.stderr);
    const finals = (await Deno.readTextFile(join(run, "trace.jsonl")))
      .split("\n")
      .filter((l) => l.includes('"kind":"readout"'))
      .map((l) => JSON.parse(l))
      .filter((r) => r.final);
    assert.equal(finals.length, 64 * TORCH_FIRST_64.length);
    for (const row of TORCH_FIRST_64) {
      const rs = finals.filter((r) => r.sup === row.sup);
      assert.equal(rs.length, 64);
      const exact = rs.filter((r) => r.exact).length / 64;
      const token = rs.reduce((a, r) => a + r.token_acc, 0) / 64;
      assert.equal(exact.toFixed(4), row.exact.toFixed(4), `s${row.sup} exact`);
      assert.equal(token.toFixed(4), row.token.toFixed(4), `s${row.sup} token`);
    }
  });
});

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
