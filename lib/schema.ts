/**
 * zod schemas for every trminterp payload. `references/v0-spec.md` is the
 * authority; `references/schemas/*.json` are generated from these schemas.
 *
 * @module
 */
import { z } from "zod";

const int = z.number().int();
const nonNeg = int.nonnegative();
const pos = int.positive();

/**
 * A graph file inside a bundle, with its sha256.
 *
 * @example
 * ```ts
 * import { GraphRef } from "./schema.ts";
 * GraphRef.parse({ file: "net.onnx", sha256: "0".repeat(64) });
 * ```
 */
export const GraphRef = z.object({
  file: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, "expected 64 lowercase hex digits"),
});

/**
 * The recurrence schedule of a bundle (v0-spec §1.3).
 *
 * @example
 * ```ts
 * import { Schedule } from "./schema.ts";
 * Schedule.parse({ H_cycles: 2, L_cycles: 2, halt_max_steps: 8, halt_mode: "max_steps" });
 * ```
 */
export const Schedule = z.object({
  H_cycles: pos,
  L_cycles: pos,
  halt_max_steps: pos,
  halt_mode: z.enum(["max_steps", "q_halt"]),
});

/**
 * Token meanings of a bundle's vocabulary.
 *
 * @example
 * ```ts
 * import { Tokens } from "./schema.ts";
 * Tokens.parse({ pad: 0, blank: 1, symbols: ["1", "2", "3", "4"], symbol_offset: 2 });
 * ```
 */
export const Tokens = z.object({
  pad: nonNeg,
  blank: nonNeg,
  symbols: z.array(z.string()),
  symbol_offset: nonNeg,
});

const TRM_ROLES = ["embed", "net", "head"] as const;
const HRM_ROLES = ["embed", "L_net", "H_net", "head"] as const;

/**
 * The graph roles that each model family needs.
 *
 * @example
 * ```ts
 * import { GRAPH_ROLES } from "./schema.ts";
 * console.assert(GRAPH_ROLES.hrm.includes("H_net"));
 * ```
 */
export const GRAPH_ROLES: {
  readonly trm: readonly string[];
  readonly hrm: readonly string[];
} = { trm: TRM_ROLES, hrm: HRM_ROLES };

/**
 * `model.json`: the manifest of a model bundle (v0-spec §1.1).
 *
 * @example
 * ```ts
 * import { ModelManifest } from "./schema.ts";
 * const r = ModelManifest.safeParse({ format: "trminterp-bundle/1" });
 * console.assert(!r.success);
 * ```
 */
export const ModelManifest = z.object({
  format: z.literal("trminterp-bundle/1"),
  name: z.string().min(1),
  family: z.enum(["trm", "hrm"]),
  dtype: z.enum(["float32", "float64"]),
  hidden_size: pos,
  seq_len: pos,
  puzzle_emb_len: nonNeg,
  vocab_size: pos,
  num_puzzle_identifiers: pos,
  tokens: Tokens,
  schedule: Schedule,
  H_init: z.array(z.number()),
  L_init: z.array(z.number()),
  graphs: z.record(z.string(), GraphRef),
  source: z.record(z.string(), z.unknown()).optional(),
}).superRefine((m, ctx) => {
  for (const key of ["H_init", "L_init"] as const) {
    if (m[key].length !== m.hidden_size) {
      ctx.addIssue({
        code: "custom",
        path: [key],
        message: `has ${m[key].length} values, but hidden_size is ${m.hidden_size}`,
      });
    }
  }
  const roles = GRAPH_ROLES[m.family];
  for (const role of roles) {
    if (!(role in m.graphs)) {
      ctx.addIssue({
        code: "custom",
        path: ["graphs", role],
        message: `a ${m.family} bundle needs a "${role}" graph`,
      });
    }
  }
  for (const role of Object.keys(m.graphs)) {
    if (!roles.includes(role)) {
      ctx.addIssue({
        code: "custom",
        path: ["graphs", role],
        message: `unknown graph role for family ${m.family}; expected ${roles.join(", ")}`,
      });
    }
  }
  const maxTok = m.tokens.symbol_offset + m.tokens.symbols.length;
  if (maxTok > m.vocab_size || m.tokens.pad >= m.vocab_size || m.tokens.blank >= m.vocab_size) {
    ctx.addIssue({ code: "custom", path: ["tokens"], message: `token ids exceed vocab_size ${m.vocab_size}` });
  }
});

/** The parsed type of {@linkcode ModelManifest}. */
export type ModelManifest = z.infer<typeof ModelManifest>;

/**
 * Format a zod error as one line: the first issue's path and message.
 *
 * @example
 * ```ts
 * import { formatZodError, Schedule } from "./schema.ts";
 * const r = Schedule.safeParse({});
 * if (!r.success) console.log(formatZodError(r.error));
 * ```
 */
export function formatZodError(error: z.ZodError): string {
  const first = error.issues[0];
  const path = first.path.length ? first.path.join(".") : "(root)";
  const more = error.issues.length > 1 ? ` (and ${error.issues.length - 1} more)` : "";
  return `${path}: ${first.message}${more}`;
}

// ---------------------------------------------------------------------------
// trace.jsonl (v0-spec §3)

const addressText = z.string().regex(/^s\d+\.h\d+\.(l\d+|H)$/, "expected a step address like s0.h1.l2 or s0.h1.H");
const sha = z.string().regex(/^[0-9a-f]{64}$/, "expected 64 lowercase hex digits");

/**
 * The first line of trace.jsonl.
 *
 * @example
 * ```ts
 * import { TraceHeader } from "./schema.ts";
 * console.assert(!TraceHeader.safeParse({ kind: "header" }).success);
 * ```
 */
export const TraceHeader = z.object({
  kind: z.literal("header"),
  format: z.literal("trminterp-trace/1"),
  tool: z.object({ name: z.literal("trminterp"), version: z.string() }),
  command: z.array(z.string()),
  seed: int,
  model: z.object({
    name: z.string(),
    family: z.enum(["trm", "hrm"]),
    path: z.string(),
    sha256: sha,
    dtype: z.enum(["float32", "float64"]),
    seq_len: pos,
    puzzle_emb_len: nonNeg,
    vocab_size: pos,
    schedule: Schedule,
  }),
  backend: z.string(),
  inputs: z.object({
    path: z.string(),
    format: z.enum(["jsonl", "dataset_dir"]),
    sha256: sha,
    total: nonNeg,
    selected: nonNeg,
    limit: pos.nullable(),
  }),
  record: z.object({
    latents: z.array(z.enum(["z_H", "z_L"])).min(1),
    steps: z.string(),
    positions: z.array(nonNeg).min(1),
    readouts: z.literal("every_H"),
    batch: pos,
  }),
  state_dim: pos,
  dtype: z.literal("float32"),
  encoding: z.literal("base64-f32le"),
  rows: nonNeg,
  states_npy: z.object({ file: z.literal("states.npy"), sha256: sha, shape: z.tuple([nonNeg, pos]) }).nullable(),
});
/** The parsed type of {@linkcode TraceHeader}. */
export type TraceHeader = z.infer<typeof TraceHeader>;

/**
 * A `step` record: one latent of one example after one net call.
 *
 * @example
 * ```ts
 * import { TraceStep } from "./schema.ts";
 * console.assert(!TraceStep.safeParse({ kind: "step" }).success);
 * ```
 */
export const TraceStep = z.object({
  kind: z.literal("step"),
  example: z.string(),
  index: nonNeg,
  address: addressText,
  t: nonNeg,
  latent: z.enum(["z_H", "z_L"]),
  row: nonNeg,
  rows: pos,
  norm: z.number(),
  delta: z.number().nullable(),
  data: z.string(),
});
/** The parsed type of {@linkcode TraceStep}. */
export type TraceStep = z.infer<typeof TraceStep>;

/**
 * A `readout` record: the head applied after a z_H update.
 *
 * @example
 * ```ts
 * import { TraceReadout } from "./schema.ts";
 * console.assert(!TraceReadout.safeParse({ kind: "readout" }).success);
 * ```
 */
export const TraceReadout = z.object({
  kind: z.literal("readout"),
  example: z.string(),
  index: nonNeg,
  address: addressText,
  t: nonNeg,
  sup: nonNeg,
  final: z.boolean(),
  pred: z.array(int),
  token_acc: z.number().min(0).max(1),
  exact: z.boolean(),
  q_halt: z.number(),
});
/** The parsed type of {@linkcode TraceReadout}. */
export type TraceReadout = z.infer<typeof TraceReadout>;

/**
 * An `example` record: the outcome for one example.
 *
 * @example
 * ```ts
 * import { TraceExample } from "./schema.ts";
 * console.assert(!TraceExample.safeParse({ kind: "example" }).success);
 * ```
 */
export const TraceExample = z.object({
  kind: z.literal("example"),
  example: z.string(),
  index: nonNeg,
  puzzle_identifier: nonNeg,
  tokens: z.array(int),
  label: z.array(int),
  pred: z.array(int),
  token_acc: z.number().min(0).max(1),
  exact: z.boolean(),
  halt_step: nonNeg,
});
/** The parsed type of {@linkcode TraceExample}. */
export type TraceExample = z.infer<typeof TraceExample>;

/**
 * Any record after the header.
 *
 * @example
 * ```ts
 * import { TraceRecord } from "./schema.ts";
 * console.assert(!TraceRecord.safeParse({ kind: "nope" }).success);
 * ```
 */
export const TraceRecord = z.discriminatedUnion("kind", [TraceStep, TraceReadout, TraceExample]);
/** The parsed type of {@linkcode TraceRecord}. */
export type TraceRecord = z.infer<typeof TraceRecord>;
