/**
 * Shared pieces of the payload schemas: zod, the registry that names the
 * schemas whose TypeScript types `deno task schemas` generates, small field
 * types, and the one-line error format.
 *
 * @module
 */
import { z } from "npm:zod@4.6.7";

export { z };

/** Metadata of a named schema: its type name and what it is. */
export interface SchemaMeta {
  /** The TypeScript type name generated for it. */
  id: string;
  /** One sentence: what the payload or part is. */
  description: string;
}

/**
 * The named schemas, in generation order: each gets an interface in
 * `types.ts` and, when it is a file payload, a JSON Schema in
 * `references/schemas/`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { named } from "./common.ts";
 * import "./mod.ts";
 * assert.ok(named.size >= 10);
 * ```
 */
export const named: Map<z.ZodType, SchemaMeta> = new Map();

/**
 * Name a schema: it becomes an interface of that name in `types.ts`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { name, named, z } from "./common.ts";
 * const s = name(z.object({ a: z.number().describe("An a.") }), "Example", "An example.");
 * assert.equal(named.get(s)?.id, "Example");
 * named.delete(s);
 * ```
 */
export function name<T extends z.ZodType>(
  schema: T,
  id: string,
  description: string,
): T {
  named.set(schema, { id, description });
  return schema;
}

/**
 * An integer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { int } from "./common.ts";
 * assert.ok(int.safeParse(-3).success);
 * assert.ok(!int.safeParse(1.5).success);
 * ```
 */
export const int: z.ZodNumber = z.number().int();
/**
 * A non-negative integer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nonNeg } from "./common.ts";
 * assert.ok(nonNeg.safeParse(0).success);
 * assert.ok(!nonNeg.safeParse(-1).success);
 * ```
 */
export const nonNeg: z.ZodNumber = int.nonnegative();
/**
 * A positive integer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pos } from "./common.ts";
 * assert.ok(pos.safeParse(1).success);
 * assert.ok(!pos.safeParse(0).success);
 * ```
 */
export const pos: z.ZodNumber = int.positive();
/**
 * Any finite number.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { num } from "./common.ts";
 * assert.ok(num.safeParse(-0.25).success);
 * assert.ok(!num.safeParse(Infinity).success);
 * assert.ok(!num.safeParse(NaN).success);
 * ```
 */
export const num: z.ZodNumber = z.number();
/**
 * A sha256 as 64 lowercase hex digits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sha } from "./common.ts";
 * assert.ok(sha.safeParse("ab".repeat(32)).success);
 * assert.ok(!sha.safeParse("AB".repeat(32)).success);
 * assert.ok(!sha.safeParse("ab".repeat(31)).success);
 * ```
 */
export const sha: z.ZodString = z.string().regex(
  /^[0-9a-f]{64}$/,
  "expected 64 lowercase hex digits",
);
/**
 * A step address such as `s0.h1.l2` or `s0.h1.H`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { addressText } from "./common.ts";
 * assert.ok(addressText.safeParse("s0.h1.l2").success);
 * assert.ok(addressText.safeParse("s15.h2.H").success);
 * assert.ok(!addressText.safeParse("s*.*.H").success); // a selector, not an address
 * ```
 */
export const addressText: z.ZodString = z.string().regex(
  /^s\d+\.h\d+\.(l\d+|H)$/,
  "expected a step address like s0.h1.l2 or s0.h1.H",
);
/**
 * A latent name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { latent } from "./common.ts";
 * assert.equal(latent.parse("z_L"), "z_L");
 * assert.ok(!latent.safeParse("z_X").success);
 * ```
 */
export const latent: z.ZodEnum<{ z_H: "z_H"; z_L: "z_L" }> = name(
  z.enum(["z_H", "z_L"]),
  "Latent",
  "A recurrent state the model carries: `z_H` (high level) or `z_L` (low level).",
);

/**
 * The execution backends that run graphs: `wasm` and `webgpu` run in Deno's
 * sandbox; `native` (onnxruntime-node) loads a native library and needs
 * `--allow-ffi`. The one source of `BackendName`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { backendName } from "./common.ts";
 * assert.deepEqual(backendName.options, ["wasm", "webgpu", "native"]);
 * assert.ok(!backendName.safeParse("cuda").success);
 * ```
 */
export const backendName: z.ZodEnum<
  { wasm: "wasm"; webgpu: "webgpu"; native: "native" }
> = name(
  z.enum(["wasm", "webgpu", "native"]),
  "BackendName",
  "An execution backend: `wasm` and `webgpu` run in Deno's sandbox; `native` (onnxruntime-node) loads a native library and needs `--allow-ffi`: use it on trusted workstations only.",
);
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
 * A payload validator: a zod schema seen through the two methods trminterp
 * uses.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { Validator } from "./common.ts";
 * import { schemas } from "./mod.ts";
 * const v: Validator<unknown> = schemas.Schedule;
 * assert.equal(v.safeParse({}).success, false);
 * ```
 */
export interface Validator<T> {
  /** Parse or throw. */
  parse(value: unknown): T;
  /** Parse without throwing. */
  safeParse(value: unknown): ParseResult<T>;
}

/**
 * Format a zod error as one line: the first issue's path and message.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatZodError } from "./common.ts";
 * import { schemas } from "./mod.ts";
 * const r = schemas.Schedule.safeParse({ H_cycles: 0, L_cycles: 1, halt_max_steps: 1, halt_mode: "max_steps" });
 * assert.ok(!r.success && /^H_cycles: /.test(formatZodError(r.error)));
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
