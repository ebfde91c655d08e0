/**
 * The schemas of trace.jsonl records (v0-spec §3).
 *
 * @module
 */
import {
  addressText,
  backendName,
  int,
  latent,
  name,
  nonNeg,
  pos,
  sha,
  z,
} from "./common.ts";
import { ScheduleSchema } from "./model.ts";

/**
 * Where a trace keeps its states: `npy` (states.npy) or `inline` (base64 in
 * the step records).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { statesStorage } from "./trace.ts";
 * assert.deepEqual(statesStorage.options, ["npy", "inline"]);
 * ```
 */
export const statesStorage: z.ZodEnum<{ npy: "npy"; inline: "inline" }> = name(
  z.enum(["npy", "inline"]),
  "StatesStorage",
  "Where the states are: states.npy (`npy`), or base64 in the step records (`inline`).",
);

/**
 * The element type a trace stores its states in.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { statesDtype } from "./trace.ts";
 * assert.deepEqual(statesDtype.options, ["float32", "float16"]);
 * ```
 */
export const statesDtype: z.ZodEnum<
  { float32: "float32"; float16: "float16" }
> = name(
  z.enum(["float32", "float16"]),
  "StatesDtype",
  "The element type the states are stored in, little-endian.",
);

/**
 * The header line.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TraceHeaderSchema } from "./trace.ts";
 * const r = TraceHeaderSchema.safeParse({ kind: "header", format: "trminterp-trace/2" });
 * assert.ok(!r.success);
 * assert.deepEqual(r.error.issues.map((i) => i.path.join(".")), [
 *   "tool", "command", "seed", "model", "backend", "inputs", "record", "shard",
 *   "state_dim", "states", "dtype", "rows", "blocks", "states_npy",
 * ]);
 * assert.ok(!TraceHeaderSchema.safeParse({ kind: "header", format: "trminterp-trace/1" }).success);
 * ```
 */
export const TraceHeaderSchema = name(
  z.object({
    kind: z.literal("header").describe("Record kind."),
    format: z.literal("trminterp-trace/2").describe("Format version."),
    tool: z.object({ name: z.literal("trminterp"), version: z.string() })
      .describe("The tool that wrote the trace."),
    command: z.array(z.string()).describe(
      "The arguments after `trminterp`, minus `--run-dir`, `--force`, `--progress` and `--shard`.",
    ),
    seed: int.describe("The seed (used to sample `--limit` examples)."),
    model: z.object({
      name: z.string(),
      family: z.enum(["trm", "hrm"]),
      path: z.string(),
      sha256: sha,
      dtype: z.enum(["float32", "float64"]),
      seq_len: pos,
      puzzle_emb_len: nonNeg,
      vocab_size: pos,
      schedule: ScheduleSchema,
    }).describe(
      "Model provenance: name, family, path (relative to the run dir), sha256 of model.json, dtype, shapes and schedule.",
    ),
    backend: backendName.describe("The execution backend that ran."),
    inputs: z.object({
      path: z.string(),
      format: z.enum(["jsonl", "dataset_dir"]),
      sha256: sha,
      total: nonNeg,
      selected: nonNeg,
      limit: pos.nullable(),
    }).describe(
      "Inputs provenance: path (relative to the run dir), format, sha256, total, selected (over all shards), limit.",
    ),
    record: z.object({
      latents: z.array(latent).min(1),
      steps: z.string(),
      positions: z.array(nonNeg).min(1),
      readouts: z.literal("every_H"),
      batch: pos,
    }).describe(
      "What was recorded: latents, step selector, positions (prefix first), readouts, batch size.",
    ),
    shard: z.object({
      index: nonNeg,
      count: pos,
      first: nonNeg,
      examples: pos,
    }).nullable().describe(
      "For a shard of a sharded run: its index and the shard count, and the slice of the selected examples it holds (`first`, `examples`); null for an unsharded trace.",
    ),
    state_dim: pos.describe("State width D."),
    states: statesStorage.describe(
      "Where the states are: states.npy (`npy`), or base64 in the step records (`inline`).",
    ),
    dtype: statesDtype.describe(
      "Element type the states are stored in, little-endian (float64 bundles are recorded as float32).",
    ),
    rows: nonNeg.describe("Total state rows over all `step` records."),
    blocks: z.array(z.object({
      latent,
      address: addressText,
      row: nonNeg,
      rows: nonNeg,
    })).describe(
      "The row layout: one block per recorded step, in row order (by latent, then step); each holds that step's rows, by example then position.",
    ),
    states_npy: z.object({
      file: z.literal("states.npy"),
      sha256: sha,
      shape: z.tuple([nonNeg, pos]),
    }).nullable().describe(
      "states.npy when `states` is `npy`: its file name, sha256 and shape; null otherwise.",
    ),
  }),
  "TraceHeader",
  "The header line of trace.jsonl (v0-spec §3.1).",
);

/**
 * A `step` record.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TraceStepSchema } from "./trace.ts";
 * const step = { kind: "step", example: "p0", address: "s0.h0.l1", row: 0, rows: 16, norm: 7.5, delta: null };
 * assert.deepEqual(TraceStepSchema.parse(step), step);
 * assert.ok(!TraceStepSchema.safeParse({ ...step, rows: 0 }).success);
 * ```
 */
export const TraceStepSchema = name(
  z.object({
    kind: z.literal("step").describe("Record kind."),
    example: z.string().describe("Example id."),
    address: addressText.describe(
      "Step address text (it gives the latent, z_H for `H`, and the index t).",
    ),
    row: nonNeg.describe(
      "First row in states.npy (with inline states: in the row layout).",
    ),
    rows: pos.describe("Number of rows (recorded positions)."),
    norm: z.number().describe(
      "Mean L2 norm over the recorded positions (rounded to 1e-6).",
    ),
    delta: z.number().nullable().describe(
      "Mean L2 norm of the change since the previous state of this latent.",
    ),
    data: z.string().optional().describe(
      "Inline states only: base64 of the `[rows, D]` states, little-endian, in the header's dtype.",
    ),
  }),
  "TraceStep",
  "A `step` record: one latent of one example after one net call (v0-spec §3.2).",
);

/**
 * A `readout` record.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TraceReadoutSchema } from "./trace.ts";
 * const r = { kind: "readout", example: "p0", address: "s0.h2.H", sup: 0, final: true,
 *   pred: [2, 3, 4, 5], token_acc: 0.75, exact: false, q_halt: -1.5 };
 * assert.deepEqual(TraceReadoutSchema.parse(r), r);
 * assert.ok(!TraceReadoutSchema.safeParse({ ...r, token_acc: 1.5 }).success);
 * ```
 */
export const TraceReadoutSchema = name(
  z.object({
    kind: z.literal("readout").describe("Record kind."),
    example: z.string().describe("Example id."),
    address: addressText.describe("Address of the z_H update read out."),
    sup: nonNeg.describe("Supervision step."),
    final: z.boolean().describe(
      "True after the last H cycle of a supervision step: the official readout.",
    ),
    pred: z.array(int).describe("Argmax tokens, length S."),
    token_acc: z.number().min(0).max(1).describe(
      "Fraction of labelled positions predicted right.",
    ),
    exact: z.boolean().describe("All labelled positions right."),
    q_halt: z.number().describe("The q_halt logit."),
  }),
  "TraceReadout",
  "A `readout` record: the head after a z_H update (v0-spec §3.3).",
);

/**
 * An `example` record.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TraceExampleSchema } from "./trace.ts";
 * const e = { kind: "example", example: "p0", index: 0, puzzle_identifier: 0, tokens: [1, 3],
 *   label: [-100, 2], pred: [2, 2], token_acc: 1, exact: true, halt_step: 15, logits: "",
 *   states_sha256: "ab".repeat(32) };
 * assert.deepEqual(TraceExampleSchema.parse(e), e);
 * assert.ok(!TraceExampleSchema.safeParse({ ...e, states_sha256: "x" }).success);
 * ```
 */
export const TraceExampleSchema = name(
  z.object({
    kind: z.literal("example").describe("Record kind."),
    example: z.string().describe("Example id."),
    index: nonNeg.describe("Example index in the inputs."),
    puzzle_identifier: nonNeg.describe("Puzzle identifier."),
    tokens: z.array(int).describe("Input tokens."),
    label: z.array(int).describe("Target tokens (−100 = ignored)."),
    pred: z.array(int).describe("Prediction at the halting step."),
    token_acc: z.number().min(0).max(1).describe(
      "Token accuracy at the halting step.",
    ),
    exact: z.boolean().describe("Exact at the halting step."),
    halt_step: nonNeg.describe(
      "Supervision step at which the example halted.",
    ),
    logits: z.string().describe(
      "base64 float32 little-endian logits `[S, V]` at the halting step.",
    ),
    states_sha256: sha.describe(
      "sha256 of this example's states as stored, in step order, then position order.",
    ),
  }),
  "TraceExample",
  "An `example` record: the outcome for one example (v0-spec §3.4).",
);

/**
 * Any record after the header: `step`, `readout` or `example`, told apart by
 * `kind`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TraceRecordSchema } from "./trace.ts";
 * const step = { kind: "step", example: "p0", address: "s0.h0.H", row: 0, rows: 1, norm: 1, delta: null };
 * assert.equal(TraceRecordSchema.parse(step).kind, "step");
 * const r = TraceRecordSchema.safeParse({ ...step, kind: "header" });
 * assert.ok(!r.success && r.error.issues[0].path[0] === "kind");
 * ```
 */
export const TraceRecordSchema = z.discriminatedUnion("kind", [
  TraceStepSchema,
  TraceReadoutSchema,
  TraceExampleSchema,
]);
