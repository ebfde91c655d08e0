/**
 * Every trminterp payload, declared once as a zod schema (`model.ts`,
 * `trace.ts`, `sae.ts`, `report.ts`). `references/v0-spec.md` is the
 * authority; `deno task schemas` generates from these schemas both the JSON
 * Schemas in `references/schemas/` and the TypeScript types in `types.ts`,
 * and a test keeps all three in agreement.
 *
 * @module
 */
import type {
  ModelManifest,
  Report,
  SaeFileConfig,
  SaeMetricsJson,
  Schedule,
  TraceExample,
  TraceHeader,
  TraceReadout,
  TraceStep,
} from "./types.ts";
import { type Validator, z } from "./common.ts";
import { ModelManifestSchema, ScheduleSchema } from "./model.ts";
import {
  TraceExampleSchema,
  TraceHeaderSchema,
  TraceReadoutSchema,
  TraceRecordSchema,
  TraceStepSchema,
} from "./trace.ts";
import { SaeFileConfigSchema, SaeMetricsJsonSchema } from "./sae.ts";
import { ReportSchema } from "./report.ts";

export type * from "./types.ts";
export { formatZodError, type ParseResult, type Validator } from "./common.ts";
export { GRAPH_ROLES, MAX_SCHEDULE_STEPS } from "./model.ts";

/** The validators of {@linkcode schemas}. */
export interface PayloadValidators {
  /** The recurrence schedule of a bundle. */
  readonly Schedule: Validator<Schedule>;
  /** `model.json`. */
  readonly ModelManifest: Validator<ModelManifest>;
  /** The header line of trace.jsonl. */
  readonly TraceHeader: Validator<TraceHeader>;
  /** A `step` record. */
  readonly TraceStep: Validator<TraceStep>;
  /** A `readout` record. */
  readonly TraceReadout: Validator<TraceReadout>;
  /** An `example` record. */
  readonly TraceExample: Validator<TraceExample>;
  /** Any record after the trace header. */
  readonly TraceRecord: Validator<TraceStep | TraceReadout | TraceExample>;
  /** The `cfg` stored in sae.pt. */
  readonly SaeFileConfig: Validator<SaeFileConfig>;
  /** sae_metrics.json. */
  readonly SaeMetricsJson: Validator<SaeMetricsJson>;
  /** report.json. */
  readonly Report: Validator<Report>;
}

/**
 * A validator for every payload, by the name of its type.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { schemas } from "./mod.ts";
 * const json = JSON.parse(await Deno.readTextFile(new URL("../../references/models/sudoku4-trm/model.json", import.meta.url)));
 * assert.ok(schemas.ModelManifest.safeParse(json).success);
 * assert.ok(!schemas.ModelManifest.safeParse({ ...json, hidden_size: 3 }).success);
 * assert.ok(!schemas.TraceRecord.safeParse({ kind: "nope" }).success);
 * assert.ok(!schemas.Report.safeParse({ format: "trminterp-report/1" }).success);
 * ```
 */
export const schemas: PayloadValidators = {
  Schedule: ScheduleSchema,
  ModelManifest: ModelManifestSchema,
  TraceHeader: TraceHeaderSchema,
  TraceStep: TraceStepSchema,
  TraceReadout: TraceReadoutSchema,
  TraceExample: TraceExampleSchema,
  TraceRecord: TraceRecordSchema,
  SaeFileConfig: SaeFileConfigSchema,
  SaeMetricsJson: SaeMetricsJsonSchema,
  Report: ReportSchema,
};

/**
 * Validate a payload before it is written, so a bug cannot write a file that
 * its own reader rejects. Throws with the first issue.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkPayload, schemas } from "./mod.ts";
 * assert.throws(() => checkPayload(schemas.Schedule, {} as never, "model.json schedule"), /model.json schedule does not match its schema: H_cycles/);
 * ```
 */
export function checkPayload<T>(
  validator: Validator<T>,
  value: T,
  what: string,
): void {
  const r = validator.safeParse(value);
  if (!r.success) {
    const first = r.error.issues[0];
    throw new Error(
      `${what} does not match its schema: ${
        first.path.map(String).join(".")
      }: ${first.message}`,
    );
  }
}

/**
 * JSON Schemas of every file payload, generated from the zod schemas: the
 * files in `references/schemas/` are this object, one file per key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { jsonSchemas } from "./mod.ts";
 * const s = jsonSchemas();
 * assert.deepEqual(Object.keys(s), ["model.json", "trace.header", "trace.record", "sae.pt.cfg", "sae_metrics.json", "report.json"]);
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
    "sae.pt.cfg": gen(SaeFileConfigSchema, "trminterp sae.pt cfg"),
    "sae_metrics.json": gen(
      SaeMetricsJsonSchema,
      "trminterp sae_metrics.json",
    ),
    "report.json": gen(ReportSchema, "trminterp report.json"),
  };
}
