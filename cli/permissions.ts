/**
 * Up-front permission checks: before any work, a command asks Deno whether
 * it holds every grant it needs, and when any is missing names the complete
 * set of flags to run with, in one line. Queries never prompt.
 *
 * @module
 */
import { isAbsolute, join, resolve } from "node:path";
import { InputError } from "../lib/errors.ts";

/** What a command needs. */
export interface PermissionNeeds {
  /** The command, for the message. */
  command: string;
  /** Paths it reads. */
  read: string[];
  /** Paths it writes. */
  write: string[];
  /** Whether it loads a native library (the native backend). */
  ffi?: boolean;
}

const ORT_DIST = [
  "node_modules",
  ".deno",
  "onnxruntime-web@1.30.0",
  "node_modules",
  "onnxruntime-web",
  "dist",
];

/**
 * The onnxruntime-web wasm files a backend loads, when trminterp runs from a
 * local checkout (none when run from a URL).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ortWasmFiles } from "./permissions.ts";
 * assert.match(ortWasmFiles("wasm")[0], /ort-wasm-simd-threaded\.wasm$/);
 * assert.equal(ortWasmFiles("webgpu").length, 2);
 * assert.deepEqual(ortWasmFiles("native"), []);
 * ```
 */
export function ortWasmFiles(backend: string): string[] {
  const here = import.meta.dirname;
  if (!here || backend === "native") return [];
  const dist = join(here, "..", ...ORT_DIST);
  const files = [join(dist, "ort-wasm-simd-threaded.wasm")];
  // The WebGPU build loads its own asyncify variant as well.
  if (backend === "webgpu") {
    files.push(join(dist, "ort-wasm-simd-threaded.asyncify.wasm"));
  }
  return files;
}

async function granted(desc: Deno.PermissionDescriptor): Promise<boolean> {
  return (await Deno.permissions.query(desc)).state === "granted";
}

const abs = (p: string) => isAbsolute(p) ? p : resolve(p);

/**
 * The missing grants of `needs`, as flags; empty when all are held.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { missingGrants } from "./permissions.ts";
 * // Doc tests run with every permission.
 * assert.deepEqual(await missingGrants({ command: "trace", read: ["."], write: ["."] }), []);
 * ```
 */
export async function missingGrants(needs: PermissionNeeds): Promise<string[]> {
  const missing: string[] = [];
  for (const path of needs.read) {
    if (!(await granted({ name: "read", path: abs(path) }))) {
      missing.push(`--allow-read=${path}`);
    }
  }
  for (const path of needs.write) {
    if (!(await granted({ name: "write", path: abs(path) }))) {
      missing.push(`--allow-write=${path}`);
    }
  }
  if (needs.ffi && !(await granted({ name: "ffi" }))) {
    missing.push("--allow-ffi");
  }
  return missing;
}

/**
 * The complete permission flags for `needs`: what to run with.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { permissionFlags } from "./permissions.ts";
 * assert.equal(
 *   permissionFlags({ command: "trace", read: ["m", "in", "run"], write: ["run"], ffi: true }),
 *   "--allow-read=m,in,run --allow-write=run --allow-ffi",
 * );
 * ```
 */
export function permissionFlags(needs: PermissionNeeds): string {
  const uniq = (xs: string[]) => [...new Set(xs)];
  return [
    needs.read.length ? `--allow-read=${uniq(needs.read).join(",")}` : "",
    needs.write.length ? `--allow-write=${uniq(needs.write).join(",")}` : "",
    needs.ffi ? "--allow-ffi" : "",
  ].filter(Boolean).join(" ");
}

/**
 * Throw {@linkcode InputError} naming every missing grant and the complete
 * flag set to rerun with.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkPermissions } from "./permissions.ts";
 * // granted in doc tests; a missing grant throws one InputError naming every flag
 * await assert.doesNotReject(checkPermissions({ command: "trace", read: ["."], write: [] }));
 * ```
 */
export async function checkPermissions(needs: PermissionNeeds): Promise<void> {
  const missing = await missingGrants(needs);
  if (!missing.length) return;
  const ffiNote = needs.ffi && missing.includes("--allow-ffi")
    ? " (--backend native loads onnxruntime's native library: --allow-ffi lifts the sandbox; use it on trusted workstations only, or --backend wasm, which --backend auto picks without it)"
    : "";
  throw new InputError(
    `${needs.command} lacks ${missing.join(" ")}; run with ${
      permissionFlags(needs)
    }${ffiNote}`,
  );
}
