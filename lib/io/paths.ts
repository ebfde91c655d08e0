/**
 * Path confinement. Deno's permissions check the path string a program
 * passes, not where the file system leads it: a symbolic link inside a
 * granted folder reads or writes outside the grant. trminterp therefore
 * resolves every path it reads or writes under the folder it came through
 * (the bundle, the run dir, the inputs) and refuses any that goes through a
 * symbolic link or outside that folder, before opening it.
 *
 * The checks use `lstat` on each component, so a link planted between the
 * check and the open can still win a race; what they close is the standing
 * link, which is what a hostile bundle or run dir can ship. Writes inside a
 * run dir are checked once more, just before each create and rename, against
 * the folder identities pinned when the command opened it (see pins.ts).
 *
 * @module
 */
import { join } from "node:path";
import { InputError } from "../errors.ts";
import { checkPinned } from "./pins.ts";

/**
 * Whether `name` is a plain relative path: no empty, `.` or `..` component,
 * not absolute, no NUL or backslash. `isPlainName(name, true)` also refuses
 * `/` (a single file name, as model.json's graph `file` values are).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isPlainName } from "./paths.ts";
 * assert(isPlainName("net.onnx", true));
 * assert(isPlainName("interventions/x/trace.jsonl"));
 * assert(!isPlainName("../../etc/passwd"));
 * assert(!isPlainName("a/net.onnx", true));
 * assert(!isPlainName("/dev/zero"));
 * ```
 */
export function isPlainName(name: string, single = false): boolean {
  if (name === "" || /[\0\\]/.test(name) || name.startsWith("/")) return false;
  const parts = name.split("/");
  if (single && parts.length !== 1) return false;
  return parts.every((p) => p !== "" && p !== "." && p !== "..");
}

async function lstatOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

async function linkTarget(path: string): Promise<string> {
  try {
    return ` (to ${await Deno.readLink(path)})`;
  } catch {
    return "";
  }
}

async function linkError(path: string, what: string): Promise<InputError> {
  return new InputError(
    `${path} is a symbolic link${await linkTarget(
      path,
    )}; trminterp does not follow links ${what}: use the real path`,
  );
}

/** What a root path holds, for {@linkcode checkRoot}. */
export type RootKind = "file" | "directory" | "missing";

/**
 * Check a path the user passed (a bundle, inputs, a run dir): it may sit
 * under linked folders (the user named it), but must not itself be a
 * symbolic link, whose target lies outside what was granted. Returns what it
 * is. `label` names it in messages ("--model", "run dir").
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkRoot } from "./paths.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   assert.equal(await checkRoot(dir, "run dir"), "directory");
 *   assert.equal(await checkRoot(`${dir}/new`, "run dir"), "missing");
 *   await Deno.symlink(dir, `${dir}/link`);
 *   await assert.rejects(checkRoot(`${dir}/link`, "run dir"), /is a symbolic link/);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function checkRoot(
  path: string,
  label: string,
): Promise<RootKind> {
  const st = await lstatOrNull(path);
  if (!st) return "missing";
  if (st.isSymlink) throw await linkError(path, `for the ${label}`);
  if (st.isDirectory) return "directory";
  if (st.isFile) return "file";
  throw new InputError(
    `${label} ${path} is neither a file nor a folder; pass a regular path`,
  );
}

/**
 * The path of `name` under `root`, after checking that no component from
 * `root` down is a symbolic link and that `name` stays inside `root`
 * (no `..`, not absolute). Components that do not exist yet are fine (a file
 * about to be written); a component that exists but is not a folder is not.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { confined } from "./paths.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   assert.equal(await confined(dir, "trace.jsonl"), `${dir}/trace.jsonl`);
 *   await assert.rejects(confined(dir, "../x"), /outside/);
 *   await Deno.symlink("/etc", `${dir}/saelens`);
 *   await assert.rejects(confined(dir, "saelens/cfg.json"), /saelens is a symbolic link/);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function confined(root: string, name: string): Promise<string> {
  if (!isPlainName(name)) {
    throw new InputError(
      `${JSON.stringify(name)} leads outside ${root}; name a file inside it`,
    );
  }
  const rootSt = await lstatOrNull(root);
  if (rootSt?.isSymlink) throw await linkError(root, "");
  let path = root;
  const parts = name.split("/");
  for (let i = 0; i < parts.length; i++) {
    path = join(path, parts[i]);
    const st = await lstatOrNull(path);
    if (!st) break;
    if (st.isSymlink) throw await linkError(path, `inside ${root}`);
    if (i < parts.length - 1 && !st.isDirectory) {
      throw new InputError(`${path} is not a folder; remove or rename it`);
    }
  }
  return path;
}

/**
 * {@linkcode confined}, for a file about to be read: it must exist, be a
 * regular file (not a folder, device or pipe) and, when `maxBytes` is given,
 * be at most that large. Returns the path and the size. `missing` words the
 * not-found message, or makes the error (a {@linkcode StepError} when a step
 * of the loop makes the file).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { confinedFile } from "./paths.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await Deno.writeTextFile(`${dir}/a.json`, "{}");
 *   assert.equal((await confinedFile(dir, "a.json")).size, 2);
 *   await Deno.mkdir(`${dir}/d.json`);
 *   await assert.rejects(confinedFile(dir, "d.json"), /is a folder, not a file/);
 *   await assert.rejects(confinedFile(dir, "a.json", { maxBytes: 1 }), /larger than/);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function confinedFile(
  root: string,
  name: string,
  opts: {
    maxBytes?: number;
    missing?: (path: string) => string | InputError;
  } = {},
): Promise<{ path: string; size: number }> {
  const path = await confined(root, name);
  const st = await lstatOrNull(path);
  if (!st) {
    const missing = opts.missing?.(path) ?? `${path} is missing; restore it`;
    throw typeof missing === "string" ? new InputError(missing) : missing;
  }
  checkRegular(path, st, opts.maxBytes);
  return { path, size: st.size };
}

/**
 * Throw unless `st` (of `path`) is a regular file of at most `maxBytes`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkRegular } from "./paths.ts";
 * assert.throws(() => checkRegular("/tmp", Deno.statSync("/tmp")), /is a folder, not a file/);
 * ```
 */
export function checkRegular(
  path: string,
  st: Deno.FileInfo,
  maxBytes?: number,
): void {
  if (st.isDirectory) {
    throw new InputError(`${path} is a folder, not a file; pass the file`);
  }
  if (!st.isFile) {
    throw new InputError(
      `${path} is not a regular file (a device, pipe or socket); pass a file`,
    );
  }
  if (maxBytes !== undefined && st.size > maxBytes) {
    throw new InputError(
      `${path} is ${st.size} bytes, larger than the ${maxBytes} trminterp reads for it; check the file`,
    );
  }
}

/**
 * Create `name` (and the folders above it) under `root` as real folders:
 * an existing component that is a link or a file is refused, so nothing is
 * written through a link. Returns the folder's path.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ensureDir } from "./paths.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   assert.equal(await ensureDir(dir, "interventions/a"), `${dir}/interventions/a`);
 *   assert((await Deno.lstat(`${dir}/interventions/a`)).isDirectory);
 *   await Deno.symlink("/tmp", `${dir}/saelens`);
 *   await assert.rejects(ensureDir(dir, "saelens"), /symbolic link/);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function ensureDir(root: string, name: string): Promise<string> {
  await confined(root, name);
  let path = root;
  for (const part of name.split("/")) {
    path = join(path, part);
    try {
      checkPinned(path);
      Deno.mkdirSync(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
    const st = await Deno.lstat(path);
    if (st.isSymlink) throw await linkError(path, `inside ${root}`);
    if (!st.isDirectory) {
      throw new InputError(`${path} is not a folder; remove or rename it`);
    }
  }
  return path;
}
