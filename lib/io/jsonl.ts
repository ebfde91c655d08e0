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

/** Options for {@linkcode readJsonl}. */
export interface ReadJsonlOptions {
  /** Longest line accepted, in UTF-16 units (default 2 ** 28: 256 Mi). */
  maxLineChars?: number;
}

/**
 * The default longest JSONL line: 256 Mi characters, below V8's largest
 * string, so a longer line is one clear error rather than an allocation
 * failure.
 */
const MAX_LINE_CHARS = 2 ** 28;

/**
 * Stream the records of a JSONL file without loading it whole, in time linear
 * in its size however long its lines. Empty lines are skipped. Invalid JSON,
 * invalid UTF-8, a line over `maxLineChars` or a missing file throw
 * `InputError` naming `<file>:<line>`; messages never quote the file's text.
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
 * await Deno.writeTextFile(`${dir}/b.jsonl`, `{"id":"${"x".repeat(100)}"}\n`);
 * await assert.rejects(async () => { for await (const _ of readJsonl(`${dir}/b.jsonl`, { maxLineChars: 50 })); }, /longer than 50 characters/);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function* readJsonl(
  path: string,
  opts: ReadJsonlOptions = {},
): AsyncGenerator<JsonlRecord> {
  const maxLine = opts.maxLineChars ?? MAX_LINE_CHARS;
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
  // The current line's pieces: each chunk is searched once for newlines, so
  // a long line costs its length, not its length squared.
  let pieces: string[] = [];
  let pending = 0;
  let line = 0;
  const parse = (raw: string, last: boolean): JsonlRecord | null => {
    line++;
    const s = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (s.trim() === "") return null;
    try {
      return { line, value: JSON.parse(s) };
    } catch (err) {
      // V8 quotes the text around the error; the message names the place only.
      const why = (err as Error).message
        .replace(/, ".*" is not valid JSON$/s, "")
        .replace(/token '.*?'/, "character")
        .replace(/"[^"]*"/g, "…");
      throw new InputError(
        last
          ? `truncated or invalid JSON at ${path}:${line}; the last line has no newline, so the file was probably cut off: re-create it`
          : `invalid JSON at ${path}:${line} (${why}); fix or remove that line`,
      );
    }
  };
  const tooLong = () =>
    new InputError(
      `${path}:${
        line + 1
      } is longer than ${maxLine} characters; this is not a file trminterp reads`,
    );
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
      const c = chunk.value;
      let start = 0;
      let nl;
      while ((nl = c.indexOf("\n", start)) >= 0) {
        if (pending + nl - start > maxLine) throw tooLong();
        pieces.push(c.slice(start, nl));
        const raw = pieces.length === 1 ? pieces[0] : pieces.join("");
        pieces = [];
        pending = 0;
        start = nl + 1;
        const rec = parse(raw, false);
        if (rec) yield rec;
      }
      if (start < c.length) {
        pending += c.length - start;
        if (pending > maxLine) throw tooLong();
        pieces.push(c.slice(start));
      }
    }
    if (pending > 0) {
      const rec = parse(pieces.join(""), true);
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
