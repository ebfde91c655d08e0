import assert from "node:assert/strict";
import { join } from "node:path";
import { sha256File } from "../io/atomic.ts";
import { scanTrace, selectRows } from "./row_index.ts";
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

Deno.test("scanTrace indexes rows by step, then example, then position", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await runTrace({ ...base, runDir: dir });
    const scan = await scanTrace(dir, {});
    try {
      const m = scan.meta;
      assert.equal(scan.n, 2 * 3 * 16); // H cycles × examples × positions
      assert.equal(scan.dim, 64);
      assert.equal(m.examples.length, 3);
      assert.equal(m.outcomes.length, 3);
      for (let i = 0; i < scan.n; i++) {
        assert.equal(m.t[i], i < 48 ? 2 : 5, `t of row ${i}`); // H after two L steps
        assert.equal(
          m.exampleOf[i],
          Math.floor(i / 16) % 3,
          `example of row ${i}`,
        );
        assert.equal(m.position[i], i % 16);
        assert.equal(m.latentOf[i], 0);
      }
      assert.deepEqual([...m.addressOf], [[2, "s0.h0.H"], [5, "s0.h1.H"]]);
      assert.equal(
        selectRows(m, scan.n, { steps: "s0.h1.H", positions: [3] }).length,
        3,
      );
      assert.deepEqual(
        [...selectRows(m, scan.n, {
          examples: [m.examples[2]],
          positions: [0],
        })],
        [32, 80],
      );
      assert.equal(selectRows(m, scan.n, { latent: "z_L" }).length, 0);
      // A filter keeps only its steps; the readouts can be left out.
      const one = await scanTrace(dir, { steps: "s0.h1.H", readouts: false });
      one.store?.close();
      assert.equal(one.n, 48);
      assert.equal(one.meta.readouts.length, 0);
      assert.ok(m.readouts.length > 0);
    } finally {
      scan.store?.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("scanTrace gives one digest and the same rows for npy, inline and sharded storage", async () => {
  const npy = await Deno.makeTempDir();
  const inline = await Deno.makeTempDir();
  const sharded = await Deno.makeTempDir();
  try {
    await runTrace({ ...base, runDir: npy });
    await runTrace({ ...base, runDir: inline, states: "inline" });
    for (const index of [0, 1, 2]) {
      await runTrace({ ...base, runDir: sharded, shard: { index, count: 3 } });
    }
    const a = await scanTrace(npy, {});
    const b = await scanTrace(inline, {});
    const c = await scanTrace(sharded, {});
    try {
      assert.equal(b.store, null);
      assert.equal(b.meta.source, "inline");
      assert.equal(a.meta.digest, b.meta.digest);
      assert.equal(a.meta.digest, c.meta.digest);
      assert.deepEqual(a.store!.readAll(), b.inline);
      assert.deepEqual(c.store!.readAll(), b.inline);
      assert.deepEqual(c.meta.exampleOf, a.meta.exampleOf);
      assert.equal(c.meta.files.length, 3);
    } finally {
      a.store?.close();
      c.store?.close();
    }
  } finally {
    for (const d of [npy, inline, sharded]) {
      await Deno.remove(d, { recursive: true });
    }
  }
});

Deno.test("scanTrace refuses a step record twice over or outside the header's blocks", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await runTrace({ ...base, runDir: dir });
    const path = join(dir, "trace.jsonl");
    const lines = (await Deno.readTextFile(path)).trimEnd().split("\n");
    const step = lines.findIndex((l) => l.includes('"kind":"step"'));
    const write = (ls: string[]) =>
      Deno.writeTextFile(path, ls.join("\n") + "\n");

    await write([...lines.slice(0, step + 1), ...lines.slice(step)]);
    await assert.rejects(scanTrace(dir, {}), /belongs to two step records/);
    await write([...lines, lines[step]]);
    await assert.rejects(scanTrace(dir, {}), /follows its example record/);

    const moved = JSON.parse(lines[step]);
    moved.address = "s1.h0.H";
    await write([
      ...lines.slice(0, step),
      JSON.stringify(moved),
      ...lines.slice(step + 1),
    ]);
    await assert.rejects(
      scanTrace(dir, {}),
      /step s1\.h0\.H is not among the header's blocks/,
    );

    await write([...lines.slice(0, step), ...lines.slice(step + 1)]);
    await assert.rejects(scanTrace(dir, {}), /do not match the states_sha256/); // a removed step record
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("scanTrace binds the states read to each example's states_sha256, and wants every example record once", async () => {
  const dir = await Deno.makeTempDir();
  const other = await Deno.makeTempDir();
  try {
    await runTrace({ ...base, runDir: dir });
    await runTrace({ ...base, seed: 1, runDir: other });
    const npy = join(dir, "states.npy");
    const path = join(dir, "trace.jsonl");
    const good = await Deno.readFile(npy);
    const text = await Deno.readTextFile(path);
    // A header whose pin was updated to the new file changes nothing.
    const repin = async () => {
      const lines = text.split("\n");
      const h = JSON.parse(lines[0]);
      h.states_npy.sha256 = await sha256File(npy);
      await Deno.writeTextFile(
        path,
        [JSON.stringify(h), ...lines.slice(1)].join("\n"),
      );
    };
    const nudged = good.slice();
    nudged[nudged.length - 1] ^= 1; // the last state of the last example
    await Deno.writeFile(npy, nudged);
    await assert.rejects(
      scanTrace(dir, {}),
      /is not the states\.npy its trace\.jsonl pins/,
    );
    await repin();
    await assert.rejects(
      scanTrace(dir, { steps: "s0.h0.H" }), // even when that step is filtered out
      /states of example "[^"]+" in states\.npy do not match the states_sha256/,
    );
    // Another trace's states (same shape).
    await Deno.copyFile(join(other, "states.npy"), npy);
    await repin();
    await assert.rejects(scanTrace(dir, {}), /do not match the states_sha256/);
    await Deno.writeFile(npy, good);
    await Deno.writeTextFile(path, text);
    (await scanTrace(dir, {})).store?.close();

    const lines = text.trimEnd().split("\n");
    const last = lines.findLastIndex((l) => l.includes('"kind":"example"'));
    await Deno.writeTextFile(
      path,
      [...lines.slice(0, last), ...lines.slice(last + 1)].join("\n") + "\n",
    );
    await assert.rejects(
      scanTrace(dir, {}),
      /has step records but no example record|holds 2 example records, but its header selected 3/,
    );
    await Deno.writeTextFile(path, [...lines, lines[last]].join("\n") + "\n");
    await assert.rejects(scanTrace(dir, {}), /has a second example record/);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(other, { recursive: true });
  }
});
