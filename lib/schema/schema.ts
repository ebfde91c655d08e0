/**
 * zod schemas for every trminterp payload. `references/v0-spec.md` is the
 * authority; `references/schemas/*.json` are generated from these schemas.
 *
 * @module
 */
import { z } from "npm:zod@4.6.7";

const int = z.number().int();
const nonNeg = int.nonnegative();
const pos = int.positive();

const GraphRefSchema = z.object({
  file: z.string().min(1),
  sha256: z.string().regex(
    /^[0-9a-f]{64}$/,
    "expected 64 lowercase hex digits",
  ),
});

const ScheduleSchema = z.object({
  H_cycles: pos,
  L_cycles: pos,
  halt_max_steps: pos,
  halt_mode: z.enum(["max_steps", "q_halt"]),
});

const TokensSchema = z.object({
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
 * import assert from "node:assert/strict";
 * import { GRAPH_ROLES } from "./schema.ts";
 * assert(GRAPH_ROLES.hrm.includes("H_net"));
 * ```
 */
export const GRAPH_ROLES: {
  readonly trm: readonly string[];
  readonly hrm: readonly string[];
} = { trm: TRM_ROLES, hrm: HRM_ROLES };

const ModelManifestSchema = z.object({
  format: z.literal("trminterp-bundle/1"),
  name: z.string().min(1),
  family: z.enum(["trm", "hrm"]),
  dtype: z.enum(["float32", "float64"]),
  hidden_size: pos,
  seq_len: pos,
  puzzle_emb_len: nonNeg,
  vocab_size: pos,
  num_puzzle_identifiers: pos,
  tokens: TokensSchema,
  schedule: ScheduleSchema,
  H_init: z.array(z.number()),
  L_init: z.array(z.number()),
  graphs: z.record(z.string(), GraphRefSchema),
  source: z.record(z.string(), z.unknown()).optional(),
}).superRefine((m, ctx) => {
  for (const key of ["H_init", "L_init"] as const) {
    if (m[key].length !== m.hidden_size) {
      ctx.addIssue({
        code: "custom",
        path: [key],
        message: `has ${
          m[key].length
        } values, but hidden_size is ${m.hidden_size}`,
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
        message: `unknown graph role for family ${m.family}; expected ${
          roles.join(", ")
        }`,
      });
    }
  }
  const maxTok = m.tokens.symbol_offset + m.tokens.symbols.length;
  if (
    maxTok > m.vocab_size || m.tokens.pad >= m.vocab_size ||
    m.tokens.blank >= m.vocab_size
  ) {
    ctx.addIssue({
      code: "custom",
      path: ["tokens"],
      message: `token ids exceed vocab_size ${m.vocab_size}`,
    });
  }
});

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
export function formatZodError(
  error: {
    issues: readonly { path: readonly PropertyKey[]; message: string }[];
  },
): string {
  const first = error.issues[0];
  const path = first.path.length ? first.path.map(String).join(".") : "(root)";
  const more = error.issues.length > 1
    ? ` (and ${error.issues.length - 1} more)`
    : "";
  return `${path}: ${first.message}${more}`;
}

// ---------------------------------------------------------------------------
// trace.jsonl (v0-spec §3)

const addressText = z.string().regex(
  /^s\d+\.h\d+\.(l\d+|H)$/,
  "expected a step address like s0.h1.l2 or s0.h1.H",
);
const sha = z.string().regex(
  /^[0-9a-f]{64}$/,
  "expected 64 lowercase hex digits",
);

const TraceHeaderSchema = z.object({
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
    schedule: ScheduleSchema,
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
  states_npy: z.object({
    file: z.literal("states.npy"),
    sha256: sha,
    shape: z.tuple([nonNeg, pos]),
  }).nullable(),
});

const TraceStepSchema = z.object({
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

const TraceReadoutSchema = z.object({
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

const TraceExampleSchema = z.object({
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
  logits: z.string(),
});

const TraceRecordSchema = z.discriminatedUnion("kind", [
  TraceStepSchema,
  TraceReadoutSchema,
  TraceExampleSchema,
]);

/** The result of {@linkcode Validator.safeParse}. */
export type ParseResult<T> =
  | { success: true; data: T }
  | {
    success: false;
    error: {
      issues: readonly { path: readonly PropertyKey[]; message: string }[];
    };
  };

/**
 * A payload validator (a zod schema seen through the two methods trminterp uses).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Schedule, type Validator } from "./schema.ts";
 * const v: Validator<unknown> = Schedule;
 * assert(!v.safeParse({}).success);
 * ```
 */
export interface Validator<T> {
  /** Parse or throw. */
  parse(value: unknown): T;
  /** Parse without throwing. */
  safeParse(value: unknown): ParseResult<T>;
}

// Explicit interfaces document each payload; `Validator<X>` below makes the
// compiler check that each schema's output matches its interface.

/** A graph file inside a bundle, with its sha256. */
export interface GraphRef {
  /** File name inside the bundle folder. */
  file: string;
  /** sha256 of the file, lowercase hex. */
  sha256: string;
}

/** The recurrence schedule (v0-spec §1.3). */
export interface Schedule {
  /** H cycles per supervision step. */
  H_cycles: number;
  /** z_L updates per H cycle. */
  L_cycles: number;
  /** Supervision (ACT) steps. */
  halt_max_steps: number;
  /** `max_steps`: run every step (official evaluation); `q_halt`: stop once q_halt > 0. */
  halt_mode: "max_steps" | "q_halt";
}

/** Token meanings: token `symbol_offset + i` means `symbols[i]`. */
export interface Tokens {
  /** Padding token id. */
  pad: number;
  /** Blank-cell token id. */
  blank: number;
  /** Printable symbols. */
  symbols: string[];
  /** Token id of `symbols[0]`. */
  symbol_offset: number;
}

/** `model.json` (v0-spec §1.1). */
export interface ModelManifest {
  /** Manifest version. */
  format: "trminterp-bundle/1";
  /** Model name. */
  name: string;
  /** Recurrence family. */
  family: "trm" | "hrm";
  /** Float type of the graphs. */
  dtype: "float32" | "float64";
  /** State width D. */
  hidden_size: number;
  /** Puzzle tokens S. */
  seq_len: number;
  /** Prefix positions P of the puzzle embedding. */
  puzzle_emb_len: number;
  /** Vocabulary size V. */
  vocab_size: number;
  /** Puzzle identifiers the embed graph accepts. */
  num_puzzle_identifiers: number;
  /** Token meanings. */
  tokens: Tokens;
  /** Recurrence schedule. */
  schedule: Schedule;
  /** Initial z_H, length D. */
  H_init: number[];
  /** Initial z_L, length D. */
  L_init: number[];
  /** Graphs by role. */
  graphs: Record<string, GraphRef>;
  /** Free-form provenance. */
  source?: Record<string, unknown>;
}

/** The header line of trace.jsonl (v0-spec §3.1). */
export interface TraceHeader {
  /** Record kind. */
  kind: "header";
  /** Format version. */
  format: "trminterp-trace/1";
  /** The tool that wrote the trace. */
  tool: { name: "trminterp"; version: string };
  /** The command line after `trminterp`. */
  command: string[];
  /** The seed. */
  seed: number;
  /** Model provenance. */
  model: {
    name: string;
    family: "trm" | "hrm";
    path: string;
    sha256: string;
    dtype: "float32" | "float64";
    seq_len: number;
    puzzle_emb_len: number;
    vocab_size: number;
    schedule: Schedule;
  };
  /** Execution backend. */
  backend: string;
  /** Inputs provenance. */
  inputs: {
    path: string;
    format: "jsonl" | "dataset_dir";
    sha256: string;
    total: number;
    selected: number;
    limit: number | null;
  };
  /** What was recorded. */
  record: {
    latents: ("z_H" | "z_L")[];
    steps: string;
    positions: number[];
    readouts: "every_H";
    batch: number;
  };
  /** State width D. */
  state_dim: number;
  /** Element type of the states. */
  dtype: "float32";
  /** Encoding of the inline states. */
  encoding: "base64-f32le";
  /** Total state rows. */
  rows: number;
  /** The states.npy cache, when written. */
  states_npy:
    | { file: "states.npy"; sha256: string; shape: [number, number] }
    | null;
}

/** A `step` record (v0-spec §3.2). */
export interface TraceStep {
  /** Record kind. */
  kind: "step";
  /** Example id. */
  example: string;
  /** Example index in the inputs. */
  index: number;
  /** Step address text. */
  address: string;
  /** Global step index. */
  t: number;
  /** Which latent. */
  latent: "z_H" | "z_L";
  /** First row in states.npy. */
  row: number;
  /** Number of rows (recorded positions). */
  rows: number;
  /** Mean L2 norm over the recorded positions. */
  norm: number;
  /** Mean L2 norm of the change since the previous state of this latent. */
  delta: number | null;
  /** base64 float32 little-endian `[rows, D]`. */
  data: string;
}

/** A `readout` record (v0-spec §3.3). */
export interface TraceReadout {
  /** Record kind. */
  kind: "readout";
  /** Example id. */
  example: string;
  /** Example index in the inputs. */
  index: number;
  /** Address of the z_H update read out. */
  address: string;
  /** Global step index. */
  t: number;
  /** Supervision step. */
  sup: number;
  /** True at the end of a supervision step (the official readout). */
  final: boolean;
  /** Predicted tokens. */
  pred: number[];
  /** Token accuracy against the label. */
  token_acc: number;
  /** Whether every labelled token is right. */
  exact: boolean;
  /** q_halt logit. */
  q_halt: number;
}

/** An `example` record (v0-spec §3.4). */
export interface TraceExample {
  /** Record kind. */
  kind: "example";
  /** Example id. */
  example: string;
  /** Example index in the inputs. */
  index: number;
  /** Puzzle identifier. */
  puzzle_identifier: number;
  /** Input tokens. */
  tokens: number[];
  /** Label tokens (-100 = ignored). */
  label: number[];
  /** Prediction at the halting step. */
  pred: number[];
  /** Token accuracy at the halting step. */
  token_acc: number;
  /** Exact at the halting step. */
  exact: boolean;
  /** Supervision step at which the example halted. */
  halt_step: number;
  /** base64 float32 little-endian logits `[S, V]` at the halting step. */
  logits: string;
}

/** Any record after the trace header. */
export type TraceRecord = TraceStep | TraceReadout | TraceExample;

/**
 * A graph file inside a bundle, with its sha256.
 *
 * @example
 * ```ts
 * import { GraphRef } from "./schema.ts";
 * GraphRef.parse({ file: "net.onnx", sha256: "0".repeat(64) });
 * ```
 */
export const GraphRef: Validator<GraphRef> = GraphRefSchema;

/**
 * The recurrence schedule of a bundle (v0-spec §1.3).
 *
 * @example
 * ```ts
 * import { Schedule } from "./schema.ts";
 * Schedule.parse({ H_cycles: 2, L_cycles: 2, halt_max_steps: 8, halt_mode: "max_steps" });
 * ```
 */
export const Schedule: Validator<Schedule> = ScheduleSchema;

/**
 * Token meanings of a bundle's vocabulary.
 *
 * @example
 * ```ts
 * import { Tokens } from "./schema.ts";
 * Tokens.parse({ pad: 0, blank: 1, symbols: ["1", "2", "3", "4"], symbol_offset: 2 });
 * ```
 */
export const Tokens: Validator<Tokens> = TokensSchema;

/**
 * `model.json`: the manifest of a model bundle (v0-spec §1.1).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ModelManifest } from "./schema.ts";
 * const r = ModelManifest.safeParse({ format: "trminterp-bundle/1" });
 * assert(!r.success);
 * ```
 */
export const ModelManifest: Validator<ModelManifest> = ModelManifestSchema;

/**
 * The first line of trace.jsonl.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TraceHeader } from "./schema.ts";
 * assert(!TraceHeader.safeParse({ kind: "header" }).success);
 * ```
 */
export const TraceHeader: Validator<TraceHeader> = TraceHeaderSchema;

/**
 * A `step` record: one latent of one example after one net call.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TraceStep } from "./schema.ts";
 * assert(!TraceStep.safeParse({ kind: "step" }).success);
 * ```
 */
export const TraceStep: Validator<TraceStep> = TraceStepSchema;

/**
 * A `readout` record: the head applied after a z_H update.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TraceReadout } from "./schema.ts";
 * assert(!TraceReadout.safeParse({ kind: "readout" }).success);
 * ```
 */
export const TraceReadout: Validator<TraceReadout> = TraceReadoutSchema;

/**
 * An `example` record: the outcome for one example.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TraceExample } from "./schema.ts";
 * assert(!TraceExample.safeParse({ kind: "example" }).success);
 * ```
 */
export const TraceExample: Validator<TraceExample> = TraceExampleSchema;

/**
 * Any record after the header.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TraceRecord } from "./schema.ts";
 * assert(!TraceRecord.safeParse({ kind: "nope" }).success);
 * ```
 */
export const TraceRecord: Validator<TraceRecord> = TraceRecordSchema;

// ---------------------------------------------------------------------------
// sae_metrics.json and report.json (v0-spec §4, §5)

const metric = <T extends z.ZodType>(v: T) =>
  z.object({ value: v, formula: z.string().min(1) });
const num = z.number();
const provenanceBase = {
  tool: z.object({ name: z.literal("trminterp"), version: z.string() }),
  command: z.array(z.string()),
  seed: int,
};
const lossPoint = z.object({
  step: nonNeg,
  loss: num,
  mse: num,
  aux: num,
  l1: num,
});

const SaeMetricsFileSchema = z.object({
  format: z.literal("trminterp-sae-metrics/1"),
  provenance: z.object({
    ...provenanceBase,
    trace_sha256: sha,
    model_sha256: sha,
    sae_pt_sha256: sha,
  }),
  config: z.object({
    format: z.literal("trminterp-sae/1"),
    arch: z.enum(["topk", "relu"]),
    d_in: pos,
    d_sae: pos,
    k: pos.optional(),
    latent: z.enum(["z_H", "z_L"]),
    steps: z.string(),
    trace_sha256: sha,
    model_sha256: sha,
    seed: int,
    training: z.record(z.string(), z.union([num, z.string(), z.boolean()])),
  }),
  split: z.object({
    holdout: num,
    train_rows: nonNeg,
    heldout_rows: nonNeg,
    heldout_examples: nonNeg,
    heldout_example_ids: z.array(z.string()),
  }),
  metrics: z.object({
    n_rows: nonNeg,
    mse: metric(num),
    fvu: metric(num),
    explained_variance: metric(num),
    l0: metric(num),
    l1: metric(num),
    dead_fraction: metric(num),
    dense_fraction_1pct: metric(num),
    dense_fraction_10pct: metric(num),
    mean_cosine: metric(num),
    relative_reconstruction_bias: metric(num),
    feature_density_histogram: metric(
      z.object({ edges: z.array(num), counts: z.array(nonNeg), never: nonNeg }),
    ),
  }),
  task_accuracy_recovered: z.union([
    z.object({
      formula: z.string(),
      value: num.nullable(),
      acc_clean: num,
      acc_sae: num,
      acc_zero: num,
      exact: z.object({ clean: num, sae: num, zero: num }),
      examples: nonNeg,
    }),
    z.object({ value: z.null(), reason: z.string() }),
  ]),
  loss_curve: z.array(lossPoint),
  train_dead_fraction: num,
});

const side = z.object({
  exact_acc: num,
  token_acc: num,
  acc_per_sup: z.array(z.object({ sup: nonNeg, exact: num, token: num })),
  mean_halt_step: num,
});
const outcome = z.object({
  exact: z.boolean(),
  token_acc: num,
  halt_step: nonNeg,
});

const ReportSchema = z.object({
  format: z.literal("trminterp-report/1"),
  provenance: z.object({
    ...provenanceBase,
    trace_sha256: sha,
    sae_pt_sha256: sha,
    model_sha256: sha,
    backend: z.string(),
    baseline: z.enum(["trace.jsonl", "rerun"]),
  }),
  policy: z.object({
    name: z.enum(["ablate_features", "clamp_features", "patch_features"]),
    latent: z.enum(["z_H", "z_L"]),
    steps: z.string(),
    positions: z.array(nonNeg),
    params: z.record(z.string(), z.unknown()),
  }),
  comparison: z.object({
    examples: pos,
    baseline: side,
    intervened: side,
    delta: z.object({
      exact_acc: num,
      token_acc: num,
      mean_halt_step: num,
      mean_kl: num,
      flipped_fraction: num,
    }),
    per_example: z.array(z.object({
      example: z.string(),
      baseline: outcome,
      intervened: outcome,
      delta_token_acc: num,
      kl: num,
      flipped: nonNeg,
    })),
  }),
  causal: z.object({
    metric: z.string(),
    tie_break: z.string(),
    candidates: z.object({
      source: z.enum(["most_active", "features"]),
      features: z.array(nonNeg),
    }),
    subsample: z.object({
      examples: pos,
      seed: int,
      baseline_token_acc: num,
      baseline_exact_acc: num,
    }),
    ranking: z.array(z.object({
      feature: nonNeg,
      effect: num,
      normalized_effect: num,
      mean_kl: num,
      exact_drop: num,
      mean_activation: num,
    })),
    random_features: z.object({
      features: z.array(nonNeg),
      effects: z.array(num),
      median_effect: num,
      kls: z.array(num),
      median_kl: num,
    }),
  }),
  tomography: z.object({
    metric: z.string(),
    groups: z.array(z.string()),
    features: z.array(nonNeg),
    effect: z.array(z.array(num)),
  }),
  saved_trace: z.string().nullable(),
});

/**
 * Validator for `sae_metrics.json`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SaeMetricsFile } from "./schema.ts";
 * assert(!SaeMetricsFile.safeParse({}).success);
 * ```
 */
export const SaeMetricsFile: Validator<unknown> = SaeMetricsFileSchema;

/**
 * Validator for `report.json`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ReportFile } from "./schema.ts";
 * assert(!ReportFile.safeParse({}).success);
 * ```
 */
export const ReportFile: Validator<unknown> = ReportSchema;

/**
 * JSON Schemas of every payload, generated from the zod schemas. The files in
 * `references/schemas/` are this object, one file per key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { jsonSchemas } from "./schema.ts";
 * assert("model.json" in jsonSchemas());
 * ```
 */
export function jsonSchemas(): Record<string, unknown> {
  const gen = (schema: z.ZodType, title: string) => ({
    ...z.toJSONSchema(schema, {
      target: "draft-2020-12",
      unrepresentable: "any",
    }),
    title,
  });
  return {
    "model.json": gen(
      ModelManifestSchema,
      "trminterp model bundle manifest (model.json)",
    ),
    "trace.header": gen(
      TraceHeaderSchema,
      "trminterp trace.jsonl header record",
    ),
    "trace.record": gen(
      TraceRecordSchema,
      "trminterp trace.jsonl step/readout/example record",
    ),
    "sae_metrics.json": gen(SaeMetricsFileSchema, "trminterp sae_metrics.json"),
    "report.json": gen(ReportSchema, "trminterp report.json"),
  };
}
