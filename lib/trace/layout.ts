/**
 * Where a trace's states live (v0-spec §3.5): states.npy rows are grouped in
 * blocks, one per recorded step, ordered by latent (z_H, then z_L), then by
 * step in execution order; within a block, by example (trace order), then
 * position. A sharded run (§3.7) splits the examples into contiguous slices,
 * so each block of the run is the shards' blocks concatenated in shard order.
 *
 * @module
 */
import {
  formatAddress,
  type ScheduleShape,
  type StepAddress,
  stepIndex,
  type StepSelector,
} from "../model/address.ts";
import type { Latent } from "../model/rollout.ts";
import { sha256Hex } from "../io/atomic.ts";
import type { StatesDtype, StatesStorage, TraceHeader } from "../schema/mod.ts";

export type { StatesDtype, StatesStorage };

/**
 * The latents, in block order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StepSelector } from "../model/address.ts";
 * import { LATENT_ORDER, layoutBlocks } from "./layout.ts";
 * assert.deepEqual(LATENT_ORDER, ["z_H", "z_L"]);
 * const sched = { H_cycles: 1, L_cycles: 2, halt_max_steps: 1 };
 * const blocks = layoutBlocks(sched, ["z_L", "z_H"], StepSelector.parse("all"));
 * assert.deepEqual(blocks.map((b) => b.latent), ["z_H", "z_L", "z_L"]); // by latent first, whatever the order asked
 * ```
 */
export const LATENT_ORDER: readonly Latent[] = ["z_H", "z_L"];

/** One recorded step: its rows form one block of states.npy. */
export interface LayoutBlock {
  /** The latent the step writes. */
  latent: Latent;
  /** The step address. */
  address: StepAddress;
  /** Its text. */
  text: string;
  /** Global step index. */
  t: number;
}

/**
 * The latent a step writes: z_H for `H` updates, z_L otherwise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { latentOf } from "./layout.ts";
 * assert.equal(latentOf({ sup: 0, h: 1, l: "H" }), "z_H");
 * assert.equal(latentOf({ sup: 0, h: 1, l: 0 }), "z_L");
 * ```
 */
export function latentOf(a: StepAddress): Latent {
  return a.l === "H" ? "z_H" : "z_L";
}

/**
 * The blocks of a trace that records `latents` at the steps `selector`
 * matches, in states.npy order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StepSelector } from "../model/address.ts";
 * import { layoutBlocks } from "./layout.ts";
 * const sched = { H_cycles: 2, L_cycles: 1, halt_max_steps: 1 };
 * const blocks = layoutBlocks(sched, ["z_L", "z_H"], StepSelector.parse("all"));
 * assert.deepEqual(blocks.map((b) => b.text), ["s0.h0.H", "s0.h1.H", "s0.h0.l0", "s0.h1.l0"]);
 * ```
 */
export function layoutBlocks(
  schedule: ScheduleShape,
  latents: readonly Latent[],
  selector: StepSelector,
): LayoutBlock[] {
  const all = selector.select(schedule).map((address) => ({
    latent: latentOf(address),
    address,
    text: formatAddress(address),
    t: stepIndex(address, schedule),
  })).filter((b) => latents.includes(b.latent));
  return LATENT_ORDER.flatMap((l) => all.filter((b) => b.latent === l));
}

/**
 * The slice of `total` selected examples that shard `index` of `count`
 * traces: `[first, first + examples)`, contiguous, so that the shards in
 * order hold the examples in trace order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shardSlice } from "./layout.ts";
 * assert.deepEqual([0, 1, 2].map((i) => shardSlice(i, 3, 10)), [
 *   { first: 0, examples: 3 }, { first: 3, examples: 3 }, { first: 6, examples: 4 },
 * ]);
 * ```
 */
export function shardSlice(
  index: number,
  count: number,
  total: number,
): { first: number; examples: number } {
  const first = Math.floor(index * total / count);
  return { first, examples: Math.floor((index + 1) * total / count) - first };
}

/**
 * The name of shard `index` of `count`: its folder under `RUN/shards/`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shardName } from "./layout.ts";
 * assert.equal(shardName(0, 4), "0-of-4");
 * assert.deepEqual([0, 1, 2].map((i) => shardName(i, 3)), ["0-of-3", "1-of-3", "2-of-3"]);
 * ```
 */
export function shardName(index: number, count: number): string {
  return `${index}-of-${count}`;
}

/**
 * The settings of a trace: its header without what depends on where and how
 * the run was stored: the command line, the paths, the shard, the storage
 * (inline or npy) and the row layout. Two shards of one run have equal
 * settings; so do a sharded run and its unsharded twin.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { traceSettings } from "./layout.ts";
 * const h = { kind: "header", command: ["trace"], model: { name: "m", path: "../m" },
 *   inputs: { path: "in.jsonl", total: 3 }, shard: null, rows: 9, blocks: [], states: "npy", states_npy: null };
 * assert.deepEqual(traceSettings(h as never), { kind: "header", model: { name: "m" }, inputs: { total: 3 } });
 * ```
 */
export function traceSettings(h: TraceHeader): Record<string, unknown> {
  const {
    command: _c,
    shard: _s,
    rows: _r,
    blocks: _b,
    states: _st,
    states_npy: _n,
    model,
    inputs,
    ...rest
  } = h;
  const { path: _mp, ...m } = model;
  const { path: _ip, ...i } = inputs;
  return { ...rest, model: m, inputs: i };
}

/**
 * The trace digest (v0-spec §3.6): sha256 over the trace's settings and its
 * example records in trace order. Each example record carries the sha256 of
 * that example's states, so the digest covers every state, yet it does not
 * depend on the folder, the shard count or the storage.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TraceDigest } from "./layout.ts";
 * const a = new TraceDigest({ seed: 0 });
 * a.add({ example: "p0" });
 * assert.match(a.hex(), /^[0-9a-f]{64}$/);
 * assert.notEqual(a.hex(), new TraceDigest({ seed: 0 }).hex());
 * ```
 */
export class TraceDigest {
  #parts: string[];

  /** Start from the trace's settings ({@linkcode traceSettings}). */
  constructor(settings: Record<string, unknown>) {
    this.#parts = [sha256Hex(JSON.stringify(settings))];
  }

  /** Add the next example record, in trace order. */
  add(example: unknown): void {
    this.#parts.push(sha256Hex(JSON.stringify(example)));
  }

  /** The digest so far, as hex. */
  hex(): string {
    return sha256Hex(this.#parts.join("\n"));
  }
}
