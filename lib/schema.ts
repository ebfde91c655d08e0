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
