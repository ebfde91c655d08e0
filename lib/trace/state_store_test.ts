import assert from "node:assert/strict";
import { join } from "node:path";
import { encodeNpy, NpyReader } from "../io/npy.ts";
import { openParts, StateStore } from "./state_store.ts";
import { openRun } from "./trace_run.ts";
import { runTrace } from "./trace.ts";

const demo = new URL("../../references/models/sudoku4-trm", import.meta.url)
  .pathname;

/** An npy file whose element (r, j) is r * 1000 + j: every row says where it came from. */
async function known(dir: string, name: string, rows: number, D: number) {
  const data = new Float32Array(rows * D);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < D; j++) data[r * D + j] = r * 1000 + j;
  }
  const path = join(dir, name);
  await Deno.writeFile(path, encodeNpy(data, [rows, D]));
  return path;
}

Deno.test("StateStore reads each kept row from its part and npy row", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const D = 3;
    const a = await NpyReader.open(await known(dir, "a.npy", 5, D));
    const b = await NpyReader.open(await known(dir, "b.npy", 4, D));
    // Kept rows 0..5: part a rows 3, 4, then part b rows 0, 1, 2, then a row 0.
    const partOf = Uint16Array.of(0, 0, 1, 1, 1, 0);
    const npyRow = Int32Array.of(3, 4, 0, 1, 2, 0);
    const store = new StateStore([a, b], partOf, npyRow, D, false);
    try {
      const out = new Float32Array(3 * D);
      store.read(Int32Array.of(5, 1, 3), out);
      assert.deepEqual([...out], [0, 1, 2, 4000, 4001, 4002, 1000, 1001, 1002]);
      const all = store.readAll();
      assert.deepEqual(
        Array.from({ length: 6 }, (_, i) => all[i * D]),
        [3000, 4000, 0, 1000, 2000, 0],
      );
    } finally {
      store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("StateStore widens float16 rows to float32", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const half = Float16Array.of(0.5, -2, 1024, 3.25);
    await Deno.writeFile(join(dir, "h.npy"), encodeNpy(half, [2, 2]));
    const r = await NpyReader.open(join(dir, "h.npy"));
    const store = new StateStore(
      [r],
      Uint16Array.of(0, 0),
      Int32Array.of(1, 0),
      2,
      true,
    );
    try {
      assert.deepEqual([...store.readAll()], [1024, 3.25, 0.5, -2]);
    } finally {
      store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openParts opens the states.npy its header pins, and refuses a missing or misshapen one", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await runTrace({
      runDir: dir,
      model: demo,
      inputs: `${demo}/test.jsonl`,
      seed: 0,
      limit: 2,
      latents: ["z_H"],
      steps: "s0.*.H",
    });
    const run = await openRun(dir);
    const readers = await openParts(run);
    assert.equal(readers.length, 1);
    assert.deepEqual(readers[0].shape, [64, 64]);
    readers.forEach((r) => r[Symbol.dispose]());

    const npy = join(dir, "states.npy");
    await known(dir, "states.npy", 63, 64); // one row short
    await assert.rejects(
      openParts(run),
      /holds float32 \[63,64\], not float32 \[64, 64\]/,
    );

    await Deno.remove(npy);
    await assert.rejects(openParts(run), /no states\.npy next to/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
