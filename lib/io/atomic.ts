/**
 * Atomic file writes: data goes to a temp file in the target's directory, is
 * fsynced, then renamed over the target, so readers never see a half-written
 * file and a crash leaves the old file intact.
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { checkPinned } from "./pins.ts";

/**
 * The sha256 of `data` as lowercase hex.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sha256Hex } from "./atomic.ts";
 * assert(sha256Hex("").startsWith("e3b0c442"));
 * ```
 */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * An incremental sha256 for data that arrives in chunks.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Sha256, sha256Hex } from "./atomic.ts";
 * const h = new Sha256();
 * h.update("ab");
 * h.update(new TextEncoder().encode("c"));
 * assert(h.hex() === sha256Hex("abc"));
 * ```
 */
export class Sha256 {
  #hash: Hash = createHash("sha256");
  /** Feed more bytes (strings are hashed as UTF-8). */
  update(data: Uint8Array | string): this {
    this.#hash.update(data);
    return this;
  }
  /** The digest as lowercase hex; the hash cannot be updated afterwards. */
  hex(): string {
    return this.#hash.digest("hex");
  }
}

/**
 * The sha256 of a file's bytes, read in chunks so large files are not loaded whole.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sha256File, sha256Hex } from "./atomic.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "abc");
 * assert.equal(await sha256File(path), sha256Hex("abc"));
 * await Deno.remove(path);
 * ```
 */
export async function sha256File(path: string): Promise<string> {
  using file = await Deno.open(path, { read: true });
  return await hashFrom(file, 0);
}

async function hashFrom(file: Deno.FsFile, offset: number): Promise<string> {
  await file.seek(offset, Deno.SeekMode.Start);
  const hash = new Sha256();
  const buf = new Uint8Array(1 << 20);
  for (;;) {
    const n = await file.read(buf);
    if (n === null) break;
    hash.update(buf.subarray(0, n));
  }
  return hash.hex();
}

/**
 * Temp files are named `.<name>.trminterp-<pid>-<12 hex>.tmp`: a name only
 * trminterp makes, carrying the writer's pid, so a later command removes
 * only its own kind of leftovers (see {@linkcode isStaleTemp}).
 */
const TEMP_NAME = /^\..+\.trminterp-(\d+)-[0-9a-f]{12}\.tmp$/;

function tempPathFor(path: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  const tag = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
  return join(
    dirname(path),
    `.${basename(path)}.trminterp-${Deno.pid}-${tag}.tmp`,
  );
}

/**
 * Whether `name` is a temp file that trminterp wrote and whose writer is not
 * this process. Call it only while holding the folder's run-dir lock: any
 * live writer would hold that lock, so the writer of such a file is gone.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isStaleTemp } from "./atomic.ts";
 * assert(isStaleTemp(".trace.jsonl.trminterp-1-0123456789ab.tmp"));
 * assert(!isStaleTemp(`.trace.jsonl.trminterp-${Deno.pid}-0123456789ab.tmp`));
 * assert(!isStaleTemp(".notes.tmp-1"));
 * ```
 */
export function isStaleTemp(name: string): boolean {
  const m = TEMP_NAME.exec(name);
  return m !== null && Number(m[1]) !== Deno.pid;
}

/**
 * Name the file in an OS error that does not (a full disk reports only
 * "No space left on device"), keeping its class and code.
 */
function withPath(err: unknown, path: string): unknown {
  if (err instanceof Error && !err.message.includes(path)) {
    err.message = `${err.message}: writing ${path}`;
  }
  return err;
}

async function writeAll(
  file: Deno.FsFile,
  data: Uint8Array,
  path: string,
): Promise<void> {
  // FsFile.write may write fewer bytes than asked.
  let off = 0;
  try {
    while (off < data.length) off += await file.write(data.subarray(off));
  } catch (err) {
    throw withPath(err, path);
  }
}

/**
 * Remove a file this command wrote, unless its folder was swapped meanwhile
 * (the path would then name someone else's file).
 */
function removeIfPinned(path: string): Promise<void> {
  try {
    checkPinned(path);
    Deno.removeSync(path);
  } catch {
    // gone already, or no longer ours to remove
  }
  return Promise.resolve();
}

/**
 * Write `data` to `path` atomically: temp file in the same directory, fsync, rename.
 * The temp file is removed if anything fails.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeFileAtomic } from "./atomic.ts";
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/a.txt`, "hello\n");
 * assert(await Deno.readTextFile(`${dir}/a.txt`) === "hello\n");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
): Promise<void> {
  const writer = await AtomicWriter.open(path);
  try {
    await writer.write(data);
    await writer.commit();
  } catch (err) {
    await writer.abort();
    throw err;
  }
}

const FLUSH_BYTES = 1 << 20;

/**
 * Streams a large file into a temp file and renames it into place on `commit()`.
 * Writes are buffered; `writeAt` may patch bytes already written (e.g. a header
 * whose final contents are known only at the end). `commit()` returns the sha256
 * of the final file. Use `await using` to abort automatically on error.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AtomicWriter, sha256Hex } from "./atomic.ts";
 * const dir = await Deno.makeTempDir();
 * const w = await AtomicWriter.open(`${dir}/out.bin`);
 * await w.write(new Uint8Array([0, 0, 3]));
 * await w.writeAt(0, new Uint8Array([1, 2]));
 * const sha = await w.commit();
 * assert(sha === sha256Hex(new Uint8Array([1, 2, 3])));
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class AtomicWriter implements AsyncDisposable {
  /** The final path the file is renamed to on commit. */
  readonly path: string;
  /** The temp file being written. */
  readonly tempPath: string;
  #file: Deno.FsFile;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #flushed = 0;
  #hash: Sha256 | null = new Sha256();
  #done = false;
  #prepared = false;

  private constructor(path: string, tempPath: string, file: Deno.FsFile) {
    this.path = path;
    this.tempPath = tempPath;
    this.#file = file;
  }

  /** Create the temp file next to `path`. */
  static open(path: string): Promise<AtomicWriter> {
    const tempPath = tempPathFor(path);
    // A fresh name, created new: nothing is written into an existing file
    // (a hard link to one elsewhere, say). Synchronous, right after the
    // check that the folder is still the one the command opened.
    try {
      checkPinned(tempPath);
      const file = Deno.openSync(tempPath, {
        read: true, // commit() re-reads the file to hash it after writeAt
        write: true,
        createNew: true,
      });
      return Promise.resolve(new AtomicWriter(path, tempPath, file));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Total bytes written so far (the current file length). */
  get size(): number {
    return this.#flushed + this.#pendingBytes;
  }

  /** Append bytes (strings are written as UTF-8). */
  async write(chunk: Uint8Array | string): Promise<void> {
    this.#checkOpen();
    const bytes = typeof chunk === "string"
      ? new TextEncoder().encode(chunk)
      : chunk;
    if (bytes.length === 0) return;
    if (bytes.length >= FLUSH_BYTES) {
      // Large chunks go straight to disk, skipping the buffer copy.
      await this.#flush();
      this.#hash?.update(bytes);
      await writeAll(this.#file, bytes, this.path);
      this.#flushed += bytes.length;
      return;
    }
    // Copy: the caller may reuse its buffer before we flush.
    this.#pending.push(bytes.slice());
    this.#pendingBytes += bytes.length;
    if (this.#pendingBytes >= FLUSH_BYTES) await this.#flush();
  }

  /** Overwrite bytes already written, starting at `offset`; the file does not grow. */
  async writeAt(offset: number, bytes: Uint8Array): Promise<void> {
    this.#checkOpen();
    if (offset < 0 || offset + bytes.length > this.size) {
      throw new RangeError(
        `writeAt(${offset}, ${bytes.length} bytes) is outside the ${this.size} bytes written`,
      );
    }
    await this.#flush();
    // A patched prefix invalidates the running hash; commit() re-reads the file.
    this.#hash = null;
    await this.#file.seek(offset, Deno.SeekMode.Start);
    await writeAll(this.#file, bytes, this.path);
    await this.#file.seek(0, Deno.SeekMode.End);
  }

  /**
   * Set the file's length: growing leaves a hole (zeros, sparse on most file
   * systems) that `writeAt` may fill; shrinking drops the bytes past `size`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { AtomicWriter, sha256Hex } from "./atomic.ts";
   * const dir = await Deno.makeTempDir();
   * const w = await AtomicWriter.open(`${dir}/out.bin`);
   * await w.resize(4);
   * await w.writeAt(2, new Uint8Array([7, 8]));
   * assert.deepEqual(await w.readAt(1, 3), new Uint8Array([0, 7, 8]));
   * await w.resize(3);
   * assert.equal(await w.commit(), sha256Hex(new Uint8Array([0, 0, 7])));
   * await Deno.remove(dir, { recursive: true });
   * ```
   */
  async resize(size: number): Promise<void> {
    this.#checkOpen();
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new RangeError(`resize(${size}): not a file length`);
    }
    await this.#flush();
    this.#hash = null;
    await this.#file.truncate(size);
    this.#flushed = size;
    await this.#file.seek(0, Deno.SeekMode.End);
  }

  /** Read `length` bytes already written, from `offset`. */
  async readAt(offset: number, length: number): Promise<Uint8Array> {
    this.#checkOpen();
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new RangeError(
        `readAt(${offset}, ${length} bytes) is outside the ${this.size} bytes written`,
      );
    }
    await this.#flush();
    await this.#file.seek(offset, Deno.SeekMode.Start);
    const out = new Uint8Array(length);
    let got = 0;
    while (got < length) {
      const n = await this.#file.read(out.subarray(got));
      if (n === null) throw new Error(`${this.tempPath} shrank while reading`);
      got += n;
    }
    await this.#file.seek(0, Deno.SeekMode.End);
    return out;
  }

  /** Flush, fsync, close and rename over `path`; returns the final file's sha256 hex. */
  async commit(): Promise<string> {
    const sha = await this.prepare();
    await this.publish();
    return sha;
  }

  /**
   * Flush, fsync and close the temp file without renaming it: the part of
   * {@linkcode AtomicWriter.commit} that can run out of space. Returns the
   * sha256 hex; {@linkcode AtomicWriter.publish} renames it into place.
   */
  async prepare(): Promise<string> {
    this.#checkOpen();
    try {
      await this.#flush();
      const sha = this.#hash ? this.#hash.hex() : await hashFrom(this.#file, 0);
      await this.#file.sync();
      this.#file.close();
      this.#done = true;
      this.#prepared = true;
      return sha;
    } catch (err) {
      await this.abort();
      throw withPath(err, this.path);
    }
  }

  /** Rename the prepared temp file over `path`. */
  async publish(): Promise<void> {
    if (!this.#prepared) {
      throw new Error(`AtomicWriter for ${this.path} is not prepared`);
    }
    try {
      checkPinned(this.path);
      Deno.renameSync(this.tempPath, this.path);
      this.#prepared = false;
    } catch (err) {
      await this.abort();
      throw err;
    }
  }

  /** Discard everything: close and remove the temp file. Safe to call twice. */
  async abort(): Promise<void> {
    if (!this.#done) {
      this.#done = true;
      try {
        this.#file.close();
      } catch {
        // already closed
      }
    }
    await removeIfPinned(this.tempPath);
  }

  /** Abort unless committed, so `await using` cleans up after errors. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#done || this.#prepared) await this.abort();
  }

  #checkOpen(): void {
    if (this.#done) {
      throw new Error(`AtomicWriter for ${this.path} is already closed`);
    }
  }

  async #flush(): Promise<void> {
    if (this.#pendingBytes === 0) return;
    const buf = new Uint8Array(this.#pendingBytes);
    let off = 0;
    for (const p of this.#pending) {
      buf.set(p, off);
      off += p.length;
    }
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#hash?.update(buf);
    await writeAll(this.#file, buf, this.path);
    this.#flushed += buf.length;
  }
}

/**
 * The outputs of one command, landing together: each file is written and
 * synced to its temp file when staged (where a full disk shows), and
 * {@linkcode OutputSet.commit} renames them into place in staging order. A
 * failure before the renames leaves no new file under a final name; a failed
 * rename removes the files this set already renamed, so no half-finished set
 * of outputs remains.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { OutputSet } from "./atomic.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await using out = new OutputSet();
 *   await out.add(`${dir}/a.json`, "{}\n");
 *   await out.add(`${dir}/b.pt`, new Uint8Array([1]));
 *   assert.equal([...Deno.readDirSync(dir)].filter((e) => !e.name.startsWith(".")).length, 0);
 *   await out.commit();
 *   assert.equal(Deno.readTextFileSync(`${dir}/a.json`), "{}\n");
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export class OutputSet implements AsyncDisposable {
  #staged: AtomicWriter[] = [];
  #done = false;

  /** Stage `data` for `path`; returns its sha256 hex. */
  async add(path: string, data: Uint8Array | string): Promise<string> {
    const w = await AtomicWriter.open(path);
    try {
      await w.write(data);
    } catch (e) {
      await w.abort();
      throw e;
    }
    return await this.adopt(w);
  }

  /** Stage a writer the caller streamed into (prepared now); returns its sha256 hex. */
  async adopt(writer: AtomicWriter): Promise<string> {
    const sha = await writer.prepare();
    this.#staged.push(writer);
    return sha;
  }

  /** Rename every staged file into place, in staging order. */
  async commit(): Promise<void> {
    this.#done = true;
    const published: AtomicWriter[] = [];
    try {
      for (const w of this.#staged) {
        await w.publish();
        published.push(w);
      }
    } catch (e) {
      for (const w of published) await removeIfPinned(w.path);
      await this.abort();
      throw e;
    }
  }

  /** Remove every staged temp file. */
  async abort(): Promise<void> {
    this.#done = true;
    for (const w of this.#staged) await w.abort();
  }

  /** Abort unless committed. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#done) await this.abort();
  }
}
