import assert from "node:assert/strict";
import { join } from "node:path";
import { InputError } from "../errors.ts";
import {
  checkBlocks,
  openRun,
  parseHeader,
  readHeaderLine,
  traceLocation,
  traceRunDir,
} from "./trace_run.ts";
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

Deno.test("openRun finds a single trace and merges a sharded one", async () => {
  const one = await Deno.makeTempDir();
  const sharded = await Deno.makeTempDir();
  try {
    await runTrace({ ...base, runDir: one });
    const r1 = await openRun(one);
    assert.equal(r1.parts.length, 1);
    assert.equal(r1.path, join(one, "trace.jsonl"));
    assert.equal(r1.header.rows, 3 * 2 * 16); // examples × H cycles × positions
    assert.equal(await traceRunDir(join(one, "trace.jsonl")), one);

    await runTrace({ ...base, runDir: sharded, shard: { index: 1, count: 2 } });
    await assert.rejects(openRun(sharded), /lacks 1 of its 2 shards \(0-of-2/);
    await runTrace({ ...base, runDir: sharded, shard: { index: 0, count: 2 } });
    const r2 = await openRun(sharded);
    assert.equal(r2.path, join(sharded, "shards"));
    assert.equal(await traceLocation(sharded), join(sharded, "shards"));
    assert.deepEqual(r2.parts.map((p) => p.header.shard!.examples), [1, 2]);
    // The run's header: the shards' blocks summed, rows laid out anew.
    assert.equal(r2.header.shard, null);
    assert.equal(r2.header.states_npy, null);
    assert.deepEqual(r2.header.blocks, r1.header.blocks);
    // A shard's trace.jsonl opened by path has the shared run dir.
    assert.equal(
      await traceRunDir(join(sharded, "shards/1-of-2/trace.jsonl")),
      join(sharded, "shards/1-of-2/../.."),
    );

    // A run dir with both kinds is refused.
    await Deno.copyFile(join(one, "trace.jsonl"), join(sharded, "trace.jsonl"));
    await assert.rejects(
      openRun(sharded),
      /holds both trace\.jsonl and shards/,
    );
  } finally {
    await Deno.remove(one, { recursive: true });
    await Deno.remove(sharded, { recursive: true });
  }
});

Deno.test("parseHeader and checkBlocks refuse headers that would misplace rows", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await runTrace({ ...base, runDir: dir });
    const path = join(dir, "trace.jsonl");
    const header = await readHeaderLine(path);
    const clone = () => structuredClone(header);

    const falling = clone();
    falling.record.positions = [0, 2, 1];
    assert.throws(
      () => parseHeader(falling, path, 1),
      /record\.positions must rise strictly/,
    );
    const pastEnd = clone();
    pastEnd.blocks[1].address = "s9.h0.H"; // halt_max_steps is 8
    assert.throws(
      () => parseHeader(pastEnd, path, 1),
      /is not a step of the schedule/,
    );
    assert.throws(() => parseHeader({ kind: "header" }, path, 1), InputError);

    const gap = clone();
    gap.blocks[1].row += 16;
    assert.throws(
      () => checkBlocks({ dir, tracePath: path, header: gap }),
      /starts at row 64, not 48/,
    );
    const short = clone();
    short.rows += 16;
    assert.throws(
      () => checkBlocks({ dir, tracePath: path, header: short }),
      /hold 96 rows, not 112/,
    );
    checkBlocks({ dir, tracePath: path, header });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openRun refuses shards traced with different settings", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await runTrace({ ...base, runDir: dir, shard: { index: 0, count: 2 } });
    await runTrace({
      ...base,
      seed: 1,
      runDir: dir,
      shard: { index: 1, count: 2 },
    });
    await assert.rejects(
      openRun(dir),
      /shard 1-of-2 was traced with different settings than 0-of-2 \(seed: 0 vs 1\)/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
