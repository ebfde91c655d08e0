/**
 * The schema of `model.json`, the manifest of a model bundle (v0-spec §1).
 *
 * @module
 */
import { name, nonNeg, pos, sha, z } from "./common.ts";

/**
 * The graph roles each model family needs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GRAPH_ROLES } from "./model.ts";
 * assert.ok(GRAPH_ROLES.hrm.includes("H_net"));
 * ```
 */
export const GRAPH_ROLES: {
  readonly trm: readonly string[];
  readonly hrm: readonly string[];
} = { trm: ["embed", "net", "head"], hrm: ["embed", "L_net", "H_net", "head"] };

/** A graph file inside a bundle. */
const GraphRefSchema = name(
  z.object({
    // A plain file name: no path, no "..", so a bundle cannot name a file
    // outside itself.
    file: z.string().regex(
      /^(?!\.\.?$)[^/\\\0]+$/,
      "expected a plain file name inside the bundle (no / or ..)",
    ).describe("File name inside the bundle folder (no `/`, not `.` or `..`)."),
    sha256: sha.describe("sha256 of the file, lowercase hex."),
  }),
  "GraphRef",
  "A graph file inside a bundle, with its sha256.",
);

/**
 * The most net calls one rollout of a schedule may make,
 * `halt_max_steps × H_cycles × (L_cycles + 1)`: checked before any step is
 * enumerated (official TRM/HRM schedules make a few hundred).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MAX_SCHEDULE_STEPS, ScheduleSchema } from "./model.ts";
 * assert.equal(MAX_SCHEDULE_STEPS, 65536);
 * assert.ok(!ScheduleSchema.safeParse({ H_cycles: 3, L_cycles: 6, halt_max_steps: 1e9, halt_mode: "max_steps" }).success);
 * ```
 */
export const MAX_SCHEDULE_STEPS = 65536;

/**
 * The schedule fields that step addresses depend on.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ScheduleShapeSchema } from "./model.ts";
 * assert.ok(ScheduleShapeSchema.safeParse({ H_cycles: 3, L_cycles: 6, halt_max_steps: 16 }).success);
 * ```
 */
export const ScheduleShapeSchema = name(
  z.object({
    H_cycles: pos.describe("H cycles per supervision step."),
    L_cycles: pos.describe("z_L updates per H cycle."),
    halt_max_steps: pos.describe("Supervision (ACT) steps."),
  }),
  "ScheduleShape",
  "The schedule fields that step addresses depend on.",
);

/**
 * The recurrence schedule.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ScheduleSchema } from "./model.ts";
 * const s = { H_cycles: 3, L_cycles: 6, halt_max_steps: 16, halt_mode: "max_steps" };
 * assert.deepEqual(ScheduleSchema.parse(s), s);
 * assert.ok(!ScheduleSchema.safeParse({ ...s, halt_mode: "never" }).success);
 * assert.ok(!ScheduleSchema.safeParse({ ...s, L_cycles: 0 }).success);
 * ```
 */
export const ScheduleSchema = name(
  ScheduleShapeSchema.extend({
    halt_mode: z.enum(["max_steps", "q_halt"]).describe(
      "`max_steps`: run every step (official evaluation); `q_halt`: stop once q_halt > 0.",
    ),
  }).refine(
    (s) =>
      s.halt_max_steps * s.H_cycles * (s.L_cycles + 1) <= MAX_SCHEDULE_STEPS,
    `the schedule makes more than ${MAX_SCHEDULE_STEPS} net calls per rollout (halt_max_steps × H_cycles × (L_cycles + 1))`,
  ),
  "Schedule",
  "The recurrence schedule (v0-spec §1.3).",
);

/** Token meanings. */
const TokensSchema = name(
  z.object({
    pad: nonNeg.describe("Padding token id."),
    blank: nonNeg.describe("Blank-cell token id."),
    symbols: z.array(z.string()).describe("Printable symbols."),
    symbol_offset: nonNeg.describe("Token id of `symbols[0]`."),
  }),
  "Tokens",
  "Token meanings: token `symbol_offset + i` means `symbols[i]`.",
);

/**
 * The cells' layout.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GridSchema } from "./model.ts";
 * assert.ok(GridSchema.safeParse({ rows: 9, cols: 9, box: { rows: 3, cols: 3 } }).success);
 * assert.ok(!GridSchema.safeParse({ rows: 0, cols: 9 }).success);
 * ```
 */
export const GridSchema = name(
  z.object({
    rows: pos.describe("Rows of the grid."),
    cols: pos.describe("Columns of the grid; rows × cols = seq_len."),
    box: z.object({ rows: pos, cols: pos }).optional().describe(
      "Sudoku's boxes: rows × cols cells each, tiling the grid.",
    ),
  }),
  "Grid",
  "The layout of the puzzle positions: position P + r·cols + c is the cell at row r, column c.",
);

/**
 * `model.json`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ModelManifestSchema } from "./model.ts";
 * const url = new URL("../../references/models/sudoku4-trm/model.json", import.meta.url);
 * const m = ModelManifestSchema.parse(JSON.parse(await Deno.readTextFile(url)));
 * assert.equal(m.family, "trm");
 * assert.equal(m.H_init.length, m.hidden_size);
 * const bad = ModelManifestSchema.safeParse({ ...m, H_init: [0] }); // not length D
 * assert.ok(!bad.success && bad.error.issues[0].path[0] === "H_init");
 * assert.deepEqual(m.grid, { rows: 4, cols: 4, box: { rows: 2, cols: 2 } });
 * const badGrid = ModelManifestSchema.safeParse({ ...m, grid: { rows: 4, cols: 5 } }); // 20 ≠ seq_len 16
 * assert.ok(!badGrid.success && badGrid.error.issues[0].path[0] === "grid");
 * ```
 */
export const ModelManifestSchema = name(
  z.object({
    format: z.literal("trminterp-bundle/1").describe("Manifest version."),
    name: z.string().min(1).describe("Model name, used in provenance."),
    family: z.enum(["trm", "hrm"]).describe("Recurrence family."),
    dtype: z.enum(["float32", "float64"]).describe(
      "Float type of every float tensor in the graphs.",
    ),
    hidden_size: pos.describe("State width D."),
    seq_len: pos.describe("Puzzle tokens S."),
    puzzle_emb_len: nonNeg.describe(
      "Prefix positions P of the puzzle embedding (0 without one).",
    ),
    vocab_size: pos.describe("Vocabulary size V (logits width)."),
    num_puzzle_identifiers: pos.describe(
      "Puzzle identifiers the embed graph accepts (1 when unused).",
    ),
    tokens: TokensSchema.describe("Token meanings."),
    grid: GridSchema.optional().describe(
      "The cells' layout (optional): rows × cols and, for Sudoku, the box size; intervene's locality profile needs it.",
    ),
    schedule: ScheduleSchema.describe("Recurrence schedule."),
    H_init: z.array(z.number()).describe(
      "Initial z_H, length D, broadcast to every position.",
    ),
    L_init: z.array(z.number()).describe(
      "Initial z_L, length D, broadcast to every position.",
    ),
    graphs: z.record(z.string(), GraphRefSchema).describe(
      "Graphs by role: TRM `embed`, `net`, `head`; HRM `embed`, `L_net`, `H_net`, `head`.",
    ),
    source: z.record(z.string(), z.unknown()).optional().describe(
      "Free-form provenance (training command, seed, accuracy).",
    ),
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
    const g = m.grid;
    if (g && g.rows * g.cols !== m.seq_len) {
      ctx.addIssue({
        code: "custom",
        path: ["grid"],
        message: `rows × cols is ${
          g.rows * g.cols
        }, but seq_len is ${m.seq_len}`,
      });
    }
    if (g?.box && (g.rows % g.box.rows !== 0 || g.cols % g.box.cols !== 0)) {
      ctx.addIssue({
        code: "custom",
        path: ["grid", "box"],
        message:
          `${g.box.rows}x${g.box.cols} boxes do not tile a ${g.rows}x${g.cols} grid`,
      });
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
  }),
  "ModelManifest",
  "`model.json`: the manifest of a model bundle (v0-spec §1.1).",
);
