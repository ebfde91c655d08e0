import assert from "node:assert/strict";
import { join } from "node:path";
import { decodeNpy, encodeNpy } from "../io/npy.ts";
import { sha256File, sha256Hex } from "../io/atomic.ts";
import { TraceDataset } from "./dataset.ts";
import { runTrace } from "./trace.ts";

const demo = new URL("../../references/models/sudoku4-trm", import.meta.url)
  .pathname;
const base = {
  model: demo,
  inputs: `${demo}/test.jsonl`,
  seed: 0,
  limit: 3,
  latents: ["z_H" as const],
  steps: "s0.*.H",
};

Deno.test("TraceDataset holds states.npy's rows; TraceRows streams the same rows", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await runTrace({ ...base, runDir: dir });
    const npy = decodeNpy(await Deno.readFile(join(dir, "states.npy")));
    const ds = await TraceDataset.load(dir);
    assert.deepEqual(ds.shape, [96, 64]);
    assert.deepEqual(ds.states, npy.data); // one part, no filter: file order
    assert.deepEqual(ds.row(17), {
      example: ds.meta.examples[1],
      address: "s0.h0.H",
      t: 2, // after s0.h0.L0 and s0.h0.L1
      latent: "z_H",
      position: 1,
    });
    assert.deepEqual([...ds.rowsAt(ds.meta.examples[2], 5, [0, 15])!], [
      80,
      95,
    ]);
    assert.equal(ds.rowsAt(ds.meta.examples[2], 7, [0]), undefined);
    assert.deepEqual(ds.examples().map((e) => e.id), ds.meta.examples);
    assert.equal(ds.outcomes().examples[0].logits.length, 16 * 6);

    const rows = await TraceDataset.open(dir, {}, { maxResidentBytes: 0 });
    try {
      assert.equal(rows.residence, "states.npy");
      const ix = Int32Array.of(95, 0, 1, 2, 50);
      const out = new Float32Array(ix.length * 64);
      rows.rows(ix, out);
      assert.deepEqual(out, ds.gather(ix));
    } finally {
      rows.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TraceDataset refuses a non-finite state, naming its example and step", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await runTrace({ ...base, runDir: dir });
    const file = join(dir, "states.npy");
    const npy = decodeNpy(await Deno.readFile(file));
    const data = npy.data as Float32Array;
    data[50 * 64 + 3] = NaN; // row 50: example 0 at s0.h1.H
    await Deno.writeFile(file, encodeNpy(data, npy.shape));
    // Re-pin the header and the example's states_sha256 (its rows at
    // s0.h0.H, then at s0.h1.H), so that only the NaN check stands in the way.
    const bytes = new Uint8Array(data.buffer);
    const ex0 = new Uint8Array(32 * 64 * 4);
    ex0.set(bytes.subarray(0, 16 * 64 * 4));
    ex0.set(bytes.subarray(48 * 64 * 4, 64 * 64 * 4), 16 * 64 * 4);
    const path = join(dir, "trace.jsonl");
    const lines = (await Deno.readTextFile(path)).trimEnd().split("\n").map((
      l,
    ) => JSON.parse(l));
    lines[0].states_npy.sha256 = await sha256File(file);
    lines.find((r) => r.kind === "example").states_sha256 = sha256Hex(ex0);
    await Deno.writeTextFile(
      path,
      lines.map((r) => JSON.stringify(r) + "\n").join(""),
    );
    const ds = await TraceDataset.load(dir, { steps: "s0.h0.H" });
    assert.equal(ds.shape[0], 48); // the NaN is not among the kept rows
    const ex = ds.meta.examples[0];
    const msg = new RegExp(
      `states of ${ex} at s0\\.h1\\.H \\(z_H\\) contain NaN`,
    );
    await assert.rejects(TraceDataset.load(dir), msg);
    const rows = await TraceDataset.open(dir, {}, { maxResidentBytes: 0 });
    try {
      const out = new Float32Array(64);
      rows.rows(Int32Array.of(49), out);
      assert.throws(() => rows.rows(Int32Array.of(50), out), msg);
    } finally {
      rows.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
