/**
 * The run directory: where every output of a run goes.
 *
 * @module
 */
import { join } from "node:path";
import { InputError } from "../errors.ts";
import { writeFileAtomic } from "./atomic.ts";

/** Options for {@linkcode prepareRunDir}. */
export interface PrepareRunDirOptions {
  /** Output files this command writes; if any exists, `force` must be set. */
  outputs: string[];
  /** Overwrite existing outputs. */
  force?: boolean;
  /** Write a `.gitignore` holding `*` when creating the directory (default true). */
  gitignore?: boolean;
  /** Create the directory if missing (trace does; later stages need it to exist). */
  create?: boolean;
}

/**
 * Make sure a run dir can take this command's outputs: create it (with a
 * `.gitignore` of `*`, as Python's venv does), refuse to overwrite earlier
 * outputs without `force`, check it is writable, and remove temp files that a
 * killed run left behind.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { prepareRunDir } from "./run_dir.ts";
 * const dir = await Deno.makeTempDir();
 * await prepareRunDir(`${dir}/run`, { outputs: ["trace.jsonl"], create: true });
 * assert((await Deno.readTextFile(`${dir}/run/.gitignore`)) === "*\n");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function prepareRunDir(
  dir: string,
  opts: PrepareRunDirOptions,
): Promise<void> {
  let exists = false;
  try {
    const st = await Deno.stat(dir);
    if (!st.isDirectory) {
      throw new InputError(`--run-dir ${dir} is a file; pass a directory`);
    }
    exists = true;
  } catch (e) {
    if (e instanceof InputError) throw e;
    if (e instanceof Deno.errors.PermissionDenied) throw denied(dir, e);
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (!exists) {
    if (!opts.create) {
      throw new InputError(
        `run dir ${dir} does not exist; run \`trminterp trace --run-dir ${dir}\` first`,
      );
    }
    try {
      await Deno.mkdir(dir, { recursive: true });
    } catch (e) {
      if (e instanceof Deno.errors.PermissionDenied) throw denied(dir, e);
      throw e;
    }
  }
  if (!opts.force) {
    for (const name of opts.outputs) {
      if (await pathExists(join(dir, name))) {
        throw new InputError(
          `run dir ${dir} already holds ${name}; pass --force to overwrite it, or choose another --run-dir`,
        );
      }
    }
  }
  // Probe writability before any work, so a long run does not fail at the end.
  const probe = join(dir, `.write-probe-${crypto.randomUUID().slice(0, 8)}`);
  try {
    await Deno.writeFile(probe, new Uint8Array(0), { createNew: true });
    await Deno.remove(probe);
  } catch (e) {
    if (
      e instanceof Deno.errors.PermissionDenied ||
      e instanceof Deno.errors.NotCapable
    ) throw denied(dir, e);
    throw e;
  }
  await removeStaleTemps(dir);
  // An empty run dir is one whose creation has not finished (a command killed
  // before its .gitignore landed, say), or a fresh one: give it its .gitignore.
  if (opts.create && opts.gitignore !== false && await isEmptyDir(dir)) {
    await writeFileAtomic(join(dir, ".gitignore"), "*\n");
  }
}

/**
 * Whether a path exists.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pathExists } from "./run_dir.ts";
 * assert(!(await pathExists("/definitely/not/here")));
 * ```
 */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function isEmptyDir(dir: string): Promise<boolean> {
  for await (const _ of Deno.readDir(dir)) return false;
  return true;
}

async function removeStaleTemps(dir: string): Promise<void> {
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && /^\..+\.tmp-[0-9a-f]+$/.test(entry.name)) {
      await Deno.remove(join(dir, entry.name)).catch(() => {});
    }
  }
}

function denied(dir: string, e: Error): InputError {
  return new InputError(
    `cannot write to run dir ${dir} (${e.name}); choose a writable --run-dir or grant --allow-write=${dir}`,
  );
}
