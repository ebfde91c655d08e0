import assert from "node:assert/strict";
import { join } from "node:path";
import { loadBundle } from "./bundle.ts";
import { formatAddress } from "./address.ts";
import { type Hook, rollout, type RolloutExample } from "./rollout.ts";
import { OptionError } from "../errors.ts";

const TINY = join(import.meta.dirname!, "..", "..", "tests", "fixtures");

async function puzzles(family: string): Promise<RolloutExample[]> {
  const text = await Deno.readTextFile(
    join(TINY, `tiny_${family}`, "puzzles.jsonl"),
  );
  return text.trim().split("\n").map((l) => {
    const p = JSON.parse(l);
    return {
      id: p.id,
      tokens: p.tokens,
      label: p.label,
      puzzleIdentifier: p.puzzle_identifier,
    };
  });
}

Deno.test("rollout: hooks run in the order given, so an edit is what a later hook sees", async () => {
  const bundle = await loadBundle(join(TINY, "tiny_trm"));
  try {
    const examples = (await puzzles("trm")).slice(0, 3);
    const order: string[] = [];
    let seenAfterEdit = -1;
    const zero: Hook = {
      onStep(e) {
        order.push("edit");
        if (e.t === 4) e.state.fill(0);
      },
    };
    const look: Hook = {
      onStep(e) {
        order.push("look");
        if (e.t === 4) seenAfterEdit = Math.max(...e.state.map(Math.abs));
      },
    };
    await rollout(bundle, examples, { hooks: [zero, look] });
    assert.equal(seenAfterEdit, 0);
    assert.deepEqual(order.slice(0, 4), ["edit", "look", "edit", "look"]);
  } finally {
    await bundle.release();
  }
});

Deno.test("rollout: batch events bracket each batch with offsets, and outcomes come back in input order", async () => {
  const bundle = await loadBundle(join(TINY, "tiny_hrm"));
  try {
    const four = await puzzles("hrm");
    const examples = [...four, { ...four[0], id: "again" }];
    const events: string[] = [];
    const out = await rollout(bundle, examples, {
      batch: 2,
      hooks: [{
        onBatchStart: (e) =>
          void events.push(`start ${e.offset} ${e.examples.length}`),
        onBatchEnd: (e) =>
          void events.push(`end ${e.offset} ${e.outcomes.length}`),
      }],
    });
    assert.deepEqual(events, [
      "start 0 2",
      "end 0 2",
      "start 2 2",
      "end 2 2",
      "start 4 1",
      "end 4 1",
    ]);
    assert.deepEqual(out.map((o) => o.example), examples.map((e) => e.id));
    assert.deepEqual(await rollout(bundle, examples, { collect: false }), []);
  } finally {
    await bundle.release();
  }
});

Deno.test("rollout: outcomes do not depend on the batch size (within float32 rounding)", async () => {
  const bundle = await loadBundle(join(TINY, "tiny_trm"));
  try {
    const examples = await puzzles("trm");
    const whole = await rollout(bundle, examples);
    const ones = await rollout(bundle, examples, { batch: 1 });
    whole.forEach((o, i) => {
      assert.deepEqual(Array.from(o.pred), Array.from(ones[i].pred));
      for (let j = 0; j < o.logits.length; j++) {
        assert.ok(Math.abs(o.logits[j] - ones[i].logits[j]) < 1e-5);
      }
    });
  } finally {
    await bundle.release();
  }
});

Deno.test("rollout: readouts come after every z_H update on request, and only the last of a step is final", async () => {
  const bundle = await loadBundle(join(TINY, "tiny_trm"));
  try {
    const { H_cycles, halt_max_steps } = bundle.manifest.schedule;
    const examples = (await puzzles("trm")).slice(0, 1);
    for (const readouts of ["final", "every_H"] as const) {
      const seen: string[] = [];
      await rollout(bundle, examples, {
        readouts,
        hooks: [{
          onReadout: (e) =>
            void seen.push(`${formatAddress(e.address)}${e.final ? "!" : ""}`),
        }],
      });
      const perSup = readouts === "final" ? 1 : H_cycles;
      assert.equal(seen.length, halt_max_steps * perSup);
      assert.equal(seen.filter((s) => s.endsWith("!")).length, halt_max_steps);
      assert.equal(seen.at(-1), `s${halt_max_steps - 1}.h${H_cycles - 1}.H!`);
    }
  } finally {
    await bundle.release();
  }
});

Deno.test("rollout: a bad batch size is an OptionError naming the option", async () => {
  const bundle = await loadBundle(join(TINY, "tiny_trm"));
  try {
    await assert.rejects(
      rollout(bundle, await puzzles("trm"), { batch: 0 }),
      (e) => e instanceof OptionError && e.option === "batch",
    );
  } finally {
    await bundle.release();
  }
});

Deno.test("rollout: progress counts each batch's examples by its graph calls, rising to whole batches", async () => {
  const bundle = await loadBundle(join(TINY, "tiny_trm"));
  try {
    const examples = await puzzles("trm");
    const { H_cycles, L_cycles, halt_max_steps, halt_mode } =
      bundle.manifest.schedule;
    assert.equal(halt_mode, "max_steps");
    let calls = 0;
    for (const s of Object.values(bundle.sessions)) {
      const run = s.run.bind(s);
      s.run = (feeds) => (calls++, run(feeds));
    }
    const seen: [number, number][] = [];
    await rollout(bundle, examples, {
      batch: 3,
      readouts: "every_H",
      onProgress: (done, total) => seen.push([done, total]),
    });
    assert.equal(examples.length, 4);
    assert.ok(seen.every(([, t]) => t === 4));
    const done = seen.map(([d]) => d);
    for (let i = 1; i < done.length; i++) assert.ok(done[i] > done[i - 1]);
    // One report per graph call: fractions within a batch, whole at its end.
    const perBatch = 1 + halt_max_steps * H_cycles * (L_cycles + 2);
    assert.equal(calls, 2 * perBatch);
    assert.equal(done.length, calls);
    assert.deepEqual(done.filter(Number.isInteger), [3, 4]);
    assert.ok(Math.abs(done[0] - 3 / perBatch) < 1e-12);
    assert.ok(Math.abs(done[perBatch] - (3 + 1 / perBatch)) < 1e-12);
  } finally {
    await bundle.release();
  }
});
