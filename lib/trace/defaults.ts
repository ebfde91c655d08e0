/**
 * The one table of `trace` defaults: the library (`runTrace`), the CLI and
 * its `--help` read it, and tests/defaults_test.ts holds the spec to it.
 *
 * @module
 */
import type { BackendChoice } from "../model/backend.ts";
import { ROLLOUT_BATCH } from "../model/rollout.ts";
import type { Latent, StatesDtype, StatesStorage } from "../schema/mod.ts";

/**
 * Defaults of `trace`. {@linkcode traceSettings} applies them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TRACE_DEFAULTS } from "./defaults.ts";
 * import { StepSelector } from "../model/address.ts";
 * import { parsePositions } from "./positions.ts";
 * // The defaults select every step and every position of a schedule.
 * const schedule = { H_cycles: 3, L_cycles: 6, halt_max_steps: 16 };
 * assert.equal(StepSelector.parse(TRACE_DEFAULTS.steps).select(schedule).length, 16 * 3 * 7);
 * assert.deepEqual(parsePositions(TRACE_DEFAULTS.positions, 1, 16), Array.from({ length: 17 }, (_, i) => i));
 * ```
 */
export const TRACE_DEFAULTS: {
  readonly latents: readonly Latent[];
  readonly steps: string;
  readonly positions: string;
  readonly batch: number;
  readonly backend: BackendChoice;
  readonly states: StatesStorage;
  readonly statesDtype: StatesDtype;
} = {
  /** Both latents. */
  latents: ["z_H", "z_L"],
  /** Every step of the schedule. */
  steps: "all",
  /** Every position, prefix first. */
  positions: "all",
  /** Examples per batch: rollout's own default. */
  batch: ROLLOUT_BATCH,
  /** Native when `--allow-ffi` is granted and it loads, else WASM. */
  backend: "auto",
  /** states.npy beside trace.jsonl. */
  states: "npy",
  /** Full precision. */
  statesDtype: "float32",
};

/** The trace options that have defaults, as {@linkcode traceSettings} resolves them. */
export interface TraceSettings {
  /** Latents to record. */
  latents: readonly Latent[];
  /** Step selector text. */
  steps: string;
  /** Positions spec. */
  positions: string;
  /** Examples per batch. */
  batch: number;
  /** Execution backend asked for. */
  backend: BackendChoice;
  /** Where the states go. */
  states: StatesStorage;
  /** Element type of the stored states. */
  statesDtype: StatesDtype;
}

/**
 * Apply {@linkcode TRACE_DEFAULTS} to the options given: the one place
 * `trace` fills in what was not asked for.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TRACE_DEFAULTS, traceSettings } from "./defaults.ts";
 * assert.deepEqual(traceSettings({}), TRACE_DEFAULTS);
 * assert.equal(traceSettings({ batch: 8, latents: undefined }).batch, 8);
 * assert.deepEqual(traceSettings({ latents: ["z_L"] }).latents, ["z_L"]);
 * ```
 */
export function traceSettings(opts: Partial<TraceSettings>): TraceSettings {
  return {
    latents: opts.latents ?? TRACE_DEFAULTS.latents,
    steps: opts.steps ?? TRACE_DEFAULTS.steps,
    positions: opts.positions ?? TRACE_DEFAULTS.positions,
    batch: opts.batch ?? TRACE_DEFAULTS.batch,
    backend: opts.backend ?? TRACE_DEFAULTS.backend,
    states: opts.states ?? TRACE_DEFAULTS.states,
    statesDtype: opts.statesDtype ?? TRACE_DEFAULTS.statesDtype,
  };
}
