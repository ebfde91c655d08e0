/**
 * Up-front permission checks: each command asks Deno for exactly the access
 * it needs before any work, and names the missing flag in one line.
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

/**
 * The onnxruntime-web wasm file the default import loads, when trminterp runs
 * from a local checkout (null when run from a URL).
 *
 * @example
 * ```ts
 * import { ortWasmPath } from "./permissions.ts";
 * console.log(ortWasmPath());
 * ```
 */
export function ortWasmPath(): string | null {
  const here = import.meta.dirname;
  if (!here) return null;
  return join(
    here,
    "..",
    "node_modules",
    ".deno",
    "onnxruntime-web@1.30.0",
    "node_modules",
    "onnxruntime-web",
    "dist",
    "ort-wasm-simd-threaded.wasm",
  );
}

async function granted(desc: Deno.PermissionDescriptor): Promise<boolean> {
  return (await Deno.permissions.query(desc)).state === "granted";
}

/**
 * Throw {@linkcode InputError} naming the first missing permission.
 *
 * @example
 * ```ts
 * import { checkPermissions } from "./permissions.ts";
 * await checkPermissions({ command: "trace", read: ["."], write: [] }).catch((e) => console.log(e.message));
 * ```
 */
export async function checkPermissions(needs: PermissionNeeds): Promise<void> {
  const abs = (p: string) => isAbsolute(p) ? p : resolve(p);
  for (const path of needs.read) {
    if (!(await granted({ name: "read", path: abs(path) }))) {
      throw new InputError(
        `${needs.command} needs read access to ${path}; run with --allow-read=${path}`,
      );
    }
  }
  for (const path of needs.write) {
    if (!(await granted({ name: "write", path: abs(path) }))) {
      throw new InputError(
        `${needs.command} needs write access to the run dir ${path}; run with --allow-write=${path} (or choose a --run-dir inside the granted path)`,
      );
    }
  }
  if (needs.ffi && !(await granted({ name: "ffi" }))) {
    throw new InputError(
      `${needs.command} --backend native loads onnxruntime's native library and needs --allow-ffi; use the default --backend wasm in sandboxes`,
    );
  }
}
