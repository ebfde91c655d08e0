import assert from "node:assert/strict";
import { StepSelector } from "./address.ts";
import { rowEditHook } from "./hooks.ts";
import type { StepEvent } from "./rollout.ts";

function event(state: Float32Array, halted: number[]): StepEvent {
  return {
    address: { sup: 1, h: 0, l: "H" },
    t: 5,
    latent: "z_H",
    state,
    batch: halted.length,
    positions: 3,
    dim: 2,
    halted: Uint8Array.from(halted),
    examples: halted.map((_, b) => ({ id: `e${b}`, tokens: [], label: [] })),
    offset: 0,
  };
}

Deno.test("rowEditHook: edits only the selected positions of running examples, at matching steps and latent", () => {
  const seen: string[] = [];
  const hook = rowEditHook({
    latent: "z_H",
    selector: StepSelector.parse("s1.*.H"),
    positions: [0, 2],
    edit: (rows, c) => {
      seen.push(`${c.example.id}@${c.t}`);
      rows.fill(9);
    },
  });
  // 2 examples × 3 positions × D=2; example 1 has halted.
  const state = Float32Array.from({ length: 12 }, (_, i) => i);
  hook.onStep!(event(state, [0, 1]));
  assert.deepEqual([...state], [9, 9, 2, 3, 9, 9, 6, 7, 8, 9, 10, 11]);
  assert.deepEqual(seen, ["e0@5"]);
  const other = Float32Array.from({ length: 12 }, (_, i) => i);
  hook.onStep!({ ...event(other, [0, 0]), latent: "z_L" });
  hook.onStep!({ ...event(other, [0, 0]), address: { sup: 0, h: 0, l: "H" } });
  assert.deepEqual([...other], Array.from({ length: 12 }, (_, i) => i));
});

Deno.test("rowEditHook: an edit that returns false leaves the state bit for bit as it was", () => {
  const state = Float32Array.of(1.5, -0, NaN, 4, 5, 6);
  const hook = rowEditHook({
    latent: "z_H",
    selector: StepSelector.parse("all"),
    positions: [0, 1, 2],
    edit: (rows) => {
      rows.fill(0);
      return false;
    },
  });
  hook.onStep!(event(state, [0]));
  assert.ok(Object.is(state[1], -0) && Number.isNaN(state[2]));
  assert.deepEqual([...state.subarray(3)], [4, 5, 6]);
});
