// Where an effect lands, on the bundled 4x4 TRM: a clamp at one cell
// (--positions 5: row 1, column 1, box 0) is the interaction-locality
// measurement. report.json's per-position drops and locality profile are
// recomputed here from the saved intervened trace against the baseline.
import assert from "node:assert/strict";
import { join } from "node:path";
import { schemas } from "../lib/schema/mod.ts";
import { TraceDataset } from "../lib/trace/dataset.ts";
import { cli, DEMO, withTempDir } from "./helpers.ts";

Deno.test("landing: one edited cell gives the locality profile, recomputed from the saved trace", async () => {
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
      "200",
      "--features",
      "64",
      "--k",
      "8",
    ]);
    assert.equal(p.code, 0, p.stderr);
    p = await cli([
      "intervene",
      "--run-dir",
      run,
      "--policy",
      "clamp_features",
      "--features",
      "0,1,2,3",
      "--value",
      "8",
      "--positions",
      "5",
      "--examples",
      "8",
      "--random-features",
      "2",
      "--rank",
      "1",
      "--control-draws",
      "1",
      "--save-trace",
    ]);
    assert.equal(p.code, 0, p.stderr);
    const r = JSON.parse(await Deno.readTextFile(join(run, "report.json")));
    assert.ok(schemas.Report.safeParse(r).success);
    const l = r.landing;
    assert.deepEqual(l.grid, { rows: 4, cols: 4, box: { rows: 2, cols: 2 } });

    // Independently: baseline and saved intervened outcomes, per cell.
    const base = (await TraceDataset.load(run)).outcomes().examples;
    const edited = (await TraceDataset.load(join(run, r.saved_trace)))
      .outcomes().examples;
    const byId = new Map(edited.map((e) => [e.example, e]));
    const n = base.length;
    const drop = Array(16).fill(0);
    const rel = (q: number) => {
      const [r0, c0] = [Math.floor(q / 4), q % 4];
      if (q === 5) return "same_cell";
      if (r0 === 1) return "same_row";
      if (c0 === 1) return "same_column";
      if (r0 < 2 && c0 < 2) return "same_box";
      return "elsewhere";
    };
    const sums = new Map<
      string,
      { cells: number; drop: number; flip: number }
    >();
    for (const b of base) {
      const o = byId.get(b.example)!;
      for (let q = 0; q < 16; q++) {
        const d = Number(b.pred[q] === b.label[q]) -
          Number(o.pred[q] === b.label[q]);
        drop[q] += d;
        const s = sums.get(rel(q)) ?? { cells: 0, drop: 0, flip: 0 };
        s.cells++;
        s.drop += d;
        s.flip += Number(b.pred[q] !== o.pred[q]);
        sums.set(rel(q), s);
      }
    }
    const near = (a: number, b: number, what: string) =>
      assert.ok(Math.abs(a - b) <= 1e-6, `${what}: ${a} vs ${b}`);
    l.policy.token_drop.forEach((v: number, q: number) =>
      near(v, drop[q] / n, `token_drop at ${q}`)
    );
    // Clamping to 8 changes the state at cell 5 in every example.
    assert.equal(l.policy.edited_examples, n);
    assert.equal(l.policy.edited_cells, 1);
    assert.deepEqual(
      l.policy.locality.map((x: { relation: string; cells: number }) => [
        x.relation,
        x.cells,
      ]),
      [
        ["same_cell", n],
        ["same_row", 3 * n],
        ["same_column", 3 * n],
        ["same_box", n],
        ["elsewhere", 8 * n],
      ],
    );
    for (const x of l.policy.locality) {
      const s = sums.get(x.relation)!;
      near(x.token_drop, s.drop / s.cells, `${x.relation} drop`);
      near(x.flipped, s.flip / s.cells, `${x.relation} flipped`);
    }
    // The clamp does something, at its own cell at least.
    assert.ok(l.policy.locality[0].flipped > 0, JSON.stringify(l.policy));
    // Each ranked feature's ablation at cell 5 edits cell 5 only.
    assert.equal(l.features.length, 4);
    for (const f of l.features) {
      if (f.edited_examples === 0) continue;
      assert.equal(f.edited_cells, 1);
      assert.equal(f.locality[0].cells, f.edited_examples);
    }
    assert.match(p.stdout, /where the effect lands/);
    assert.match(p.stdout, /policy +1\.0 /);
  });
});
