/**
 * JSON Lines: a streaming reader that names the file and line of any bad
 * record, and an atomic streaming writer.
 *
 * @module
 */

import { InputError } from "../errors.ts";
import { AtomicWriter } from "./atomic.ts";

/** One parsed line of a JSONL file. */
export interface JsonlRecord {
  /** 1-based line number in the file. */
  line: number;
  /** The parsed JSON value. */
  value: unknown;
}

/**
 * Stream the records of a JSONL file without loading it whole. Empty lines are
 * skipped. Invalid JSON, invalid UTF-8 or a missing file throw `InputError`
 * naming `<file>:<line>`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readJsonl } from "./jsonl.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.jsonl`, '{"id":1}\n{"id":2}\n');
 * const ids = [];
 * for await (const { value } of readJsonl(`${dir}/a.jsonl`)) ids.push((value as { id: number }).id);
 * assert(ids.join() === "1,2");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function* readJsonl(path: string): AsyncGenerator<JsonlRecord> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new InputError(
        `cannot read ${path}: file not found; check the path`,
      );
    }
    throw err;
  }
  const text = file.readable.pipeThrough(
    new TextDecoderStream("utf-8", { fatal: true }),
  );
  const reader = text.getReader();
  let buf = "";
  let line = 0;
  const parse = (raw: string, last: boolean): JsonlRecord | null => {
    line++;
    const s = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (s.trim() === "") return null;
    try {
      return { line, value: JSON.parse(s) };
    } catch (err) {
      const why = (err as Error).message;
      throw new InputError(
        last
          ? `truncated or invalid JSON at ${path}:${line}; the last line has no newline, so the file was probably cut off: re-create it`
          : `invalid JSON at ${path}:${line} (${why}); fix or remove that line`,
      );
    }
  };
  try {
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (err) {
        if (err instanceof TypeError) {
          throw new InputError(
            `invalid UTF-8 in ${path} after line ${line}; re-encode the file as UTF-8`,
          );
        }
        throw err;
      }
      if (chunk.done) break;
      buf += chunk.value;
      let start = 0;
      let nl;
      while ((nl = buf.indexOf("\n", start)) >= 0) {
        const rec = parse(buf.slice(start, nl), false);
        start = nl + 1;
        if (rec) yield rec;
      }
      buf = buf.slice(start);
    }
    if (buf.length > 0) {
      const rec = parse(buf, true);
      if (rec) yield rec;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

const FLUSH_CHARS = 1 << 16;

/**
 * Writes one JSON value per line into a file, atomically: nothing appears at
 * `path` until `commit()`, which returns the file's sha256.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JsonlWriter } from "./jsonl.ts";
 * const dir = await Deno.makeTempDir();
 * const w = await JsonlWriter.open(`${dir}/trace.jsonl`);
 * await w.write({ kind: "header" });
 * const sha = await w.commit();
 * assert(sha.length === 64);
 * assert(await Deno.readTextFile(`${dir}/trace.jsonl`) === '{"kind":"header"}\n');
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class JsonlWriter implements AsyncDisposable {
  #writer: AtomicWriter;
  #buf: string[] = [];
  #chars = 0;
  #lines = 0;

  private constructor(writer: AtomicWriter) {
    this.#writer = writer;
  }

  /** Start writing `path` (via a temp file in the same directory). */
  static async open(path: string): Promise<JsonlWriter> {
    return new JsonlWriter(await AtomicWriter.open(path));
  }

  /** Lines written so far. */
  get lines(): number {
    return this.#lines;
  }

  /** Append `value` as one line of JSON. */
  async write(value: unknown): Promise<void> {
    const s = JSON.stringify(value);
    if (s === undefined) {
      throw new TypeError(`cannot write ${typeof value} as a JSON line`);
    }
    this.#buf.push(s, "\n");
    this.#chars += s.length + 1;
    this.#lines++;
    if (this.#chars >= FLUSH_CHARS) await this.#flush();
  }

  /** Flush, fsync and rename into place; returns the file's sha256 hex. */
  async commit(): Promise<string> {
    await this.#flush();
    return await this.#writer.commit();
  }

  /** Discard the partial file. */
  async abort(): Promise<void> {
    await this.#writer.abort();
  }

  /** Abort unless committed. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#writer[Symbol.asyncDispose]();
  }

  async #flush(): Promise<void> {
    if (this.#chars === 0) return;
    const s = this.#buf.join("");
    this.#buf = [];
    this.#chars = 0;
    await this.#writer.write(s);
  }
}
