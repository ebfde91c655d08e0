/**
 * The run directory: where every output of a run goes. A run dir is
 * trminterp's: new, empty, or marked by {@linkcode RUN_MARKER}; one command
 * at a time holds its lock (`.trminterp.lock`); nothing in it is followed
 * through a symbolic link; and only temp files trminterp wrote are cleaned up.
 *
 * @module
 */
import { join } from "node:path";
import { InputError, OptionError, StepError } from "../errors.ts";
import { isStaleTemp, writeFileAtomic } from "./atomic.ts";
import { checkRoot, confined, ensureDir } from "./paths.ts";
import { checkPinned, pinFolder } from "./pins.ts";

/**
 * The file that marks a folder as a trminterp run dir.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openRunDir, RUN_MARKER } from "./run_dir.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await (await openRunDir(dir)).release(); // an empty folder becomes a run dir
 *   assert.equal(await Deno.readTextFile(`${dir}/${RUN_MARKER}`), '{"format":"trminterp-run/1"}\n');
 *   await Deno.writeTextFile(`${dir}/notes.txt`, "mine");
 *   await (await openRunDir(dir)).release(); // marked: trminterp's, whatever else it holds
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export const RUN_MARKER = ".trminterp-run";
/** Its content. */
const MARKER_TEXT = '{"format":"trminterp-run/1"}\n';
/** The lock file a command holds while it uses a run dir. */
const RUN_LOCK = ".trminterp.lock";

/**
 * Names a run dir of an earlier trminterp (before the marker existed) can
 * hold; a folder with only these is adopted as a run dir.
 */
const KNOWN_NAMES = new Set([
  ".gitignore",
  RUN_MARKER,
  RUN_LOCK,
  "trace.jsonl",
  "states.npy",
  "sae.pt",
  "sae_metrics.json",
  "report.json",
  "saelens",
  "interventions",
  "shards",
]);

/** Options for {@linkcode openRunDir}. */
export interface OpenRunDirOptions {
  /** Create the directory if missing (trace does; later stages need it to exist). */
  create?: boolean;
  /** Write a `.gitignore` holding `*` when creating the directory (default true). */
  gitignore?: boolean;
}

/** Options for {@linkcode prepareRunDir}. */
export interface PrepareRunDirOptions extends OpenRunDirOptions {
  /** Output files this command writes; if any exists, `force` must be set. */
  outputs: string[];
  /** Overwrite existing outputs. */
  force?: boolean;
}

/**
 * A locked run dir. Hold it for the whole command (`await using`), so no
 * other trminterp command reads or writes the folder meanwhile.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openRunDir } from "./run_dir.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await using run = await openRunDir(`${dir}/run`, { create: true });
 *   assert.equal(await run.file("trace.jsonl"), `${dir}/run/trace.jsonl`);
 *   await run.checkOutputs(["trace.jsonl"]); // not there yet: fine
 *   await Deno.writeTextFile(await run.file("trace.jsonl"), "{}\n");
 *   await assert.rejects(run.checkOutputs(["trace.jsonl"]), /already holds trace\.jsonl/);
 *   await run.checkOutputs(["trace.jsonl"], true); // with force
 *   assert.equal(await run.subdir("interventions"), `${dir}/run/interventions`);
 *   assert.ok((await Deno.lstat(`${dir}/run/interventions`)).isDirectory);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export class RunDir implements AsyncDisposable {
  /** The run dir's path, as given. */
  readonly path: string;
  #lock: DirLock;
  #created: boolean;

  /** Used by {@linkcode openRunDir}; `created`: this command made the folder. */
  constructor(path: string, lock: DirLock, created = false) {
    this.path = path;
    this.#lock = lock;
    this.#created = created;
  }

  /**
   * After a failed command: remove the run dir again if this command created
   * it and it holds nothing but trminterp's bookkeeping (marker, .gitignore,
   * lock, temps), so a refused first run leaves no folder behind. Anything
   * else in it stays.
   */
  async discardIfCreated(): Promise<void> {
    if (!this.#created) return;
    const names: string[] = [];
    for await (const e of Deno.readDir(this.path)) names.push(e.name);
    const ours = [RUN_MARKER, ".gitignore", RUN_LOCK];
    if (!names.every((n) => ours.includes(n) || isTemp(n))) return;
    for (const n of names) {
      if (n === RUN_LOCK) continue;
      checkPinned(join(this.path, n));
      Deno.removeSync(join(this.path, n));
    }
    await this.release(); // removes the lock file
    // Another command may have taken the folder meanwhile: then it stays.
    await Deno.remove(this.path).catch(() => {});
  }

  /**
   * The path of `name` inside the run dir, refusing links on the way
   * (see {@linkcode confined}).
   */
  file(name: string): Promise<string> {
    return confined(this.path, name);
  }

  /**
   * Refuse to overwrite earlier outputs without `force`, and outputs that
   * are links or folders in any case (replacing them would lose what they
   * point at).
   */
  async checkOutputs(outputs: readonly string[], force = false): Promise<void> {
    for (const name of outputs) {
      const path = await confined(this.path, name);
      const st = await Deno.lstat(path).catch((e) => {
        if (e instanceof Deno.errors.NotFound) return null;
        throw e;
      });
      if (!st) continue;
      if (!st.isFile) {
        throw new InputError(
          `${path} is ${
            st.isDirectory ? "a folder" : "not a regular file"
          }, where trminterp writes ${name}; move it away`,
        );
      }
      if (!force) {
        throw new OptionError(
          "force",
          `run dir ${this.path} already holds ${name}; pass {force} to overwrite it, or choose another {runDir}`,
        );
      }
    }
  }

  /**
   * Create the sub-folder `name` as a real folder (no links) and remove
   * the stale temp files in it.
   */
  async subdir(name: string): Promise<string> {
    const dir = await ensureDir(this.path, name);
    await removeStaleTemps(dir);
    return dir;
  }

  /** Release the lock. */
  async release(): Promise<void> {
    await this.#lock.release();
  }

  /** Release the lock (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }
}

/**
 * Open a run dir for one command: create it if asked (with a `.gitignore` of
 * `*`, as Python's venv does), check that it is a real folder and trminterp's
 * (new, empty, marked, or holding only trminterp's outputs), take its lock,
 * mark it, and remove temp files that a killed command left behind.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openRunDir, RUN_MARKER } from "./run_dir.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   {
 *     await using run = await openRunDir(`${dir}/run`, { create: true });
 *     assert.equal(await Deno.readTextFile(`${dir}/run/.gitignore`), "*\n");
 *     await assert.rejects(openRunDir(`${dir}/run`), /in use by trminterp process \d+/);
 *     assert.equal(run.path, `${dir}/run`);
 *   }
 *   assert((await Deno.lstat(`${dir}/run/${RUN_MARKER}`)).isFile);
 *   await Deno.writeTextFile(`${dir}/notes.txt`, "mine");
 *   await assert.rejects(openRunDir(dir), /holds files trminterp did not write \(notes\.txt, run\)/);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function openRunDir(
  dir: string,
  opts: OpenRunDirOptions = {},
): Promise<RunDir> {
  const kind = await runDirKind(dir);
  const created = kind === "missing";
  if (kind === "missing") {
    if (!opts.create) {
      throw new StepError(
        `run dir ${dir} does not exist; {fix} first`,
        "trace",
        { runDir: dir },
      );
    }
    try {
      await Deno.mkdir(dir, { recursive: true });
    } catch (e) {
      throw cannotWrite(dir, e);
    }
    if ((await checkRoot(dir, "run dir")) !== "directory") {
      throw new InputError(`run dir ${dir} changed while it was created`);
    }
  }
  const marked = await checkOwned(dir);
  const lock = await lockDir(dir);
  try {
    await removeStaleTemps(dir);
    const marker = await confined(dir, RUN_MARKER);
    if (!marked) await writeFileAtomic(marker, MARKER_TEXT);
    else if (!(await Deno.lstat(marker)).isFile) {
      throw new InputError(`${marker} is not a regular file; remove it`);
    }
    // A run dir holding nothing but our bookkeeping is one whose creation
    // has not finished (a command killed before its .gitignore landed, say),
    // or a fresh one.
    let bare = true;
    for await (const e of Deno.readDir(dir)) {
      if (e.name !== RUN_LOCK && e.name !== RUN_MARKER) bare = false;
    }
    if (opts.create && opts.gitignore !== false && bare) {
      await writeFileAtomic(await confined(dir, ".gitignore"), "*\n");
    }
  } catch (e) {
    await lock.release();
    throw e;
  }
  return new RunDir(dir, lock, created);
}

/**
 * {@linkcode openRunDir}, then refuse to overwrite earlier `outputs` without
 * `force`. The returned {@linkcode RunDir} holds the lock until released.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { prepareRunDir } from "./run_dir.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   const run = await prepareRunDir(`${dir}/run`, { outputs: ["trace.jsonl"], create: true });
 *   await run.release();
 *   await Deno.writeTextFile(`${dir}/run/trace.jsonl`, "{}\n");
 *   await assert.rejects(prepareRunDir(`${dir}/run`, { outputs: ["trace.jsonl"] }), /already holds trace\.jsonl/);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function prepareRunDir(
  dir: string,
  opts: PrepareRunDirOptions,
): Promise<RunDir> {
  const run = await openRunDir(dir, opts);
  try {
    await run.checkOutputs(opts.outputs, opts.force);
  } catch (e) {
    await run.release();
    throw e;
  }
  return run;
}

/** The run dir's kind, refusing a link or a file where the folder goes. */
async function runDirKind(dir: string): Promise<"missing" | "directory"> {
  const kind = await checkRoot(dir, "run dir");
  if (kind === "file") {
    throw new OptionError(
      "runDir",
      `run dir ${dir} is a file; pass a directory as {runDir}`,
    );
  }
  return kind;
}

/**
 * Check that `dir` is trminterp's: marked, or holding only names trminterp
 * writes. Returns whether it is marked.
 */
async function checkOwned(dir: string): Promise<boolean> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  if (names.includes(RUN_MARKER)) return true;
  const foreign = names.filter((n) => !KNOWN_NAMES.has(n) && !isTemp(n))
    .sort();
  if (foreign.length) {
    const shown = foreign.slice(0, 3).join(", ") +
      (foreign.length > 3 ? `, … (${foreign.length} in all)` : "");
    throw new OptionError(
      "runDir",
      `run dir ${dir} holds files trminterp did not write (${shown}); choose a new or empty {runDir}`,
    );
  }
  return false;
}

/**
 * Open the folder of one shard of a sharded trace, `dir/shards/<name>/`,
 * as a run dir of its own (locked, marked) and refuse to overwrite its
 * trace.jsonl without `force`. Many machines may do this at once in one
 * shared run dir: each writes only inside its own shard folder, and the
 * `.gitignore` and marker of a new run dir are written by the one process
 * whose `mkdir` created it. Refuses a run dir that is not trminterp's, holds
 * an unsharded trace.jsonl, or holds shards of another count.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openShardDir, RUN_MARKER } from "./run_dir.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   {
 *     await using shard = await openShardDir(`${dir}/run`, "0-of-2", {});
 *     assert.equal(shard.path, `${dir}/run/shards/0-of-2`);
 *   }
 *   assert.equal(await Deno.readTextFile(`${dir}/run/.gitignore`), "*\n");
 *   assert((await Deno.lstat(`${dir}/run/${RUN_MARKER}`)).isFile);
 *   await assert.rejects(openShardDir(`${dir}/run`, "0-of-3", {}), /shards of another count/);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function openShardDir(
  dir: string,
  name: string,
  opts: { force?: boolean; gitignore?: boolean },
): Promise<RunDir> {
  const kind = await runDirKind(dir);
  let created = false;
  if (kind === "missing") {
    try {
      // Not recursive, so that `mkdir` tells the one creator (below). A
      // missing parent is made by a recursive mkdir of the run dir itself,
      // which Deno checks against the run dir's grant alone (the README's
      // scoped line); two shards racing there both write the same marker
      // bytes, each atomically.
      try {
        await Deno.mkdir(dir);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
        await Deno.mkdir(dir, { recursive: true });
      }
      created = true;
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw cannotWrite(dir, e);
    }
    if ((await checkRoot(dir, "run dir")) !== "directory") {
      throw new InputError(`run dir ${dir} changed while it was created`);
    }
  }
  const unpin = pinFolder(dir);
  try {
    return await openShard(dir, name, created, opts);
  } finally {
    unpin(); // the shard's own lock pins the path through dir from here on
  }
}

async function openShard(
  dir: string,
  name: string,
  created: boolean,
  opts: { force?: boolean; gitignore?: boolean },
): Promise<RunDir> {
  if (created) {
    // Only the creator writes these, so no two shards write one file.
    if (opts.gitignore !== false) {
      await writeFileAtomic(await confined(dir, ".gitignore"), "*\n");
    }
    await writeFileAtomic(await confined(dir, RUN_MARKER), MARKER_TEXT);
  } else await checkOwned(dir);
  if (await pathExists(await confined(dir, "trace.jsonl"))) {
    throw new InputError(
      `run dir ${dir} holds an unsharded trace.jsonl; trace the shards into another run dir`,
    );
  }
  const count = name.split("-of-")[1];
  try {
    for await (const e of Deno.readDir(await confined(dir, "shards"))) {
      const m = /^\d+-of-(\d+)$/.exec(e.name);
      if (m && m[1] !== count) {
        throw new OptionError(
          "shard",
          `run dir ${dir} holds shards of another count (shards/${e.name}); a run's shards share one count: use {shard} i/${
            m[1]
          } or another {runDir}`,
        );
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  let shard: string;
  try {
    shard = await ensureDir(dir, `shards/${name}`);
  } catch (e) {
    throw cannotWrite(dir, e);
  }
  const run = await openRunDir(shard, { gitignore: false });
  try {
    await run.checkOutputs(["trace.jsonl"], opts.force);
  } catch (e) {
    await run.release();
    throw e;
  }
  return run;
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

function isTemp(name: string): boolean {
  // The second form is what trminterp before the run-dir marker wrote; such
  // files let a run dir be adopted, but carry no pid, so they are kept.
  return /^\..+\.trminterp-\d+-[0-9a-f]{12}\.tmp$/.test(name) ||
    /^\..+\.tmp-[0-9a-f]{12}$/.test(name);
}

/**
 * Remove the temp files trminterp left in `dir` (by name, see
 * {@linkcode isStaleTemp}); other files are left alone, whatever their name.
 * Call it only while holding the run dir's lock.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { removeStaleTemps } from "./run_dir.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await Deno.writeTextFile(`${dir}/.notes.tmp-1`, "mine");
 *   await Deno.writeTextFile(`${dir}/.trace.jsonl.trminterp-1-0123456789ab.tmp`, "");
 *   await removeStaleTemps(dir);
 *   assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [".notes.tmp-1"]);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function removeStaleTemps(dir: string): Promise<void> {
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && isStaleTemp(entry.name)) {
      try {
        checkPinned(join(dir, entry.name));
        Deno.removeSync(join(dir, entry.name));
      } catch {
        // gone, or the folder was swapped: then it is not ours
      }
    }
  }
}

/** A held lock on a folder. */
export interface DirLock {
  /** Remove the lock file and release the lock. */
  release(): Promise<void>;
}

/**
 * Take the lock of `dir`: `.trminterp.lock`, created if missing, locked
 * exclusively with `flock` (which the kernel releases when the holder dies,
 * so a lock left by a killed command is simply taken over) and holding the
 * holder's pid. A folder locked by a live process is refused, naming it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lockDir } from "./run_dir.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   const lock = await lockDir(dir);
 *   await assert.rejects(lockDir(dir), new RegExp(`in use by trminterp process ${Deno.pid}`));
 *   await lock.release();
 *   await (await lockDir(dir)).release();
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function lockDir(dir: string): Promise<DirLock> {
  const path = await confined(dir, RUN_LOCK);
  // The lock pins the folder (see pins.ts): every later create, rename and
  // remove in it first checks that it is still the folder locked here.
  const unpin = pinFolder(dir);
  try {
    return await takeLock(dir, path, unpin);
  } catch (e) {
    unpin();
    throw e;
  }
}

async function takeLock(
  dir: string,
  path: string,
  unpin: () => void,
): Promise<DirLock> {
  for (let attempt = 0; attempt < 8; attempt++) {
    let file: Deno.FsFile;
    let fresh = true;
    try {
      // createNew does not follow a link and never opens an existing file.
      checkPinned(path);
      file = Deno.openSync(path, { read: true, write: true, createNew: true });
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw cannotWrite(dir, e);
      fresh = false;
      const st = await Deno.lstat(path).catch(() => null);
      if (!st) continue;
      if (!st.isFile) {
        throw new InputError(`${path} is not a regular file; remove it`);
      }
      try {
        // Read-only: an existing lock file is never written to, since it
        // may be a hard link to a file elsewhere; flock needs no write.
        file = await Deno.open(path, { read: true });
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) continue;
        throw cannotWrite(dir, e);
      }
    }
    if (!(await file.tryLock(true))) {
      const holder = await readHolder(file);
      file.close();
      throw new InputError(
        `run dir ${dir} is in use by trminterp process ${holder}; wait for it to finish, or choose another run dir`,
      );
    }
    // The holder before us may have removed the file after we opened it:
    // only a lock on the inode the path still names counts.
    const [mine, now] = [
      await file.stat(),
      await Deno.lstat(path).catch(() => null),
    ];
    if (!now || now.ino !== mine.ino || now.dev !== mine.dev) {
      file.close();
      continue;
    }
    if (!fresh) {
      // A lock left by a killed command: unlink it while holding it (its
      // other links, if any, keep their data) and create a fresh one.
      try {
        checkPinned(path);
        Deno.removeSync(path);
      } finally {
        file.close();
      }
      continue;
    }
    if ((mine.nlink ?? 1) > 1) {
      file.close();
      throw new InputError(
        `${path} gained a second link while trminterp created it; something else writes to run dir ${dir}: stop it, then re-run`,
      );
    }
    try {
      await file.truncate(0);
      await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
    } catch (e) {
      await Deno.remove(path).catch(() => {});
      file.close();
      throw cannotWrite(dir, e);
    }
    let released = false;
    return {
      release() {
        if (released) return Promise.resolve();
        released = true;
        // Remove before unlocking, so the path never names a free lock
        // that a waiting command could take while we still clean up; but
        // not through a folder swapped meanwhile.
        try {
          checkPinned(path);
          Deno.removeSync(path);
        } catch {
          // gone, or no longer ours
        }
        file.close();
        unpin();
        return Promise.resolve();
      },
    };
  }
  throw new InputError(
    `run dir ${dir}: could not take its lock ${RUN_LOCK}; another command keeps replacing it`,
  );
}

async function readHolder(file: Deno.FsFile): Promise<string> {
  // The holder writes its pid just after it takes the lock: give it a moment.
  for (let tries = 0; tries < 25; tries++) {
    try {
      const buf = new Uint8Array(32);
      await file.seek(0, Deno.SeekMode.Start);
      const n = await file.read(buf);
      const pid = new TextDecoder().decode(buf.subarray(0, n ?? 0)).trim();
      if (/^\d+$/.test(pid)) return pid;
    } catch {
      return "(pid unreadable)";
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return "(pid not yet written)";
}

function cannotWrite(dir: string, e: unknown): Error {
  if (e instanceof InputError) return e;
  const err = e as Error & { code?: string };
  const why = err.code ?? err.name;
  const known = e instanceof Deno.errors.PermissionDenied ||
    e instanceof Deno.errors.NotCapable ||
    e instanceof Deno.errors.NotADirectory ||
    e instanceof Deno.errors.AlreadyExists ||
    ["EROFS", "EACCES", "EPERM", "ENOSPC", "EDQUOT", "ENOTDIR"].includes(
      err.code ?? "",
    );
  if (!known) return err;
  return new OptionError(
    "runDir",
    `cannot write to run dir ${dir} (${why}: ${
      err.message.split("\n")[0]
    }); choose a writable {runDir}`,
  );
}
