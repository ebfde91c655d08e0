/**
 * NumPy `.npy` files: encode/decode in memory, a streaming float32 [N, D]
 * writer that does not need N upfront, and a row reader for files too large to
 * load whole. Output is byte-identical to `numpy.save`.
 *
 * @module
 */

import { InputError } from "../errors.ts";
import { AtomicWriter, type OutputSet } from "./atomic.ts";
import {
  dtypeOf,
  type ElementData,
  type ElementType,
  ITEMSIZE,
  numel,
  viewAs,
} from "./dtype.ts";

/** Element types supported in `.npy` files (`float16` only here, for states). */
export type NpyDtype = ElementType | "float16";

/** Typed arrays that hold `.npy` data (`bool` and `uint8` use `Uint8Array`). */
export type NpyData = ElementData | Float16Array;

/**
 * Bytes per element of an `.npy` dtype.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { npyItemsize } from "./npy.ts";
 * assert.equal(npyItemsize("float16"), 2);
 * ```
 */
export function npyItemsize(dtype: NpyDtype): number {
  return dtype === "float16" ? 2 : ITEMSIZE[dtype];
}

function npyView(dtype: NpyDtype, bytes: Uint8Array): NpyData {
  return dtype === "float16"
    ? new Float16Array(bytes.slice().buffer)
    : viewAs(dtype, bytes);
}

/** A decoded `.npy` array: C-order data with its shape. */
export interface NpyArray {
  /** The element type. */
  dtype: NpyDtype;
  /** The dimensions; `[]` for a scalar. */
  shape: number[];
  /** The elements in C (row-major) order. */
  data: NpyData;
}

const DESCR: Record<NpyDtype, string> = {
  float16: "<f2",
  float32: "<f4",
  float64: "<f8",
  int32: "<i4",
  int64: "<i8",
  uint8: "|u1",
  bool: "|b1",
};
const FROM_DESCR: Record<string, NpyDtype> = Object.fromEntries(
  Object.entries(DESCR).map(([k, v]) => [v, k as NpyDtype]),
);
const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
// numpy leaves room in the header for shape[0] to grow to this many digits.
const GROWTH_AXIS_MAX_DIGITS = 21;

/** The full header (magic, version, length, dict, padding) exactly as numpy 2 writes it. */
function headerBytes(dtype: NpyDtype, shape: number[]): Uint8Array {
  const shapeRepr = shape.length === 1
    ? `(${shape[0]},)`
    : `(${shape.join(", ")})`;
  let dict = `{'descr': '${
    DESCR[dtype]
  }', 'fortran_order': False, 'shape': ${shapeRepr}, }`;
  if (shape.length > 0) {
    dict += " ".repeat(GROWTH_AXIS_MAX_DIGITS - String(shape[0]).length);
  }
  // Pad so magic(6) + version(2) + len(2) + dict + "\n" is a multiple of 64.
  let total = 10 + dict.length + 1;
  let version = 1;
  if (total + ((64 - (total % 64)) % 64) - 10 > 0xffff) {
    version = 2;
    total += 2;
  }
  const pad = (64 - (total % 64)) % 64;
  const text = dict + " ".repeat(pad) + "\n";
  const pre = version === 1 ? 10 : 12;
  const out = new Uint8Array(pre + text.length);
  out.set(MAGIC);
  out[6] = version;
  out[7] = 0;
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, text.length, true);
  else dv.setUint32(8, text.length, true);
  for (let i = 0; i < text.length; i++) out[pre + i] = text.charCodeAt(i);
  return out;
}

/** Options for {@linkcode encodeNpy}. */
export interface EncodeNpyOptions {
  /** Store a `Uint8Array` as `bool` (`|b1`) instead of `uint8`. */
  dtype?: "uint8" | "bool";
}

/**
 * Encode a C-order array as `.npy` bytes (format 1.0, little-endian), the same
 * bytes `numpy.save` writes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeNpy, encodeNpy } from "./npy.ts";
 * const bytes = encodeNpy(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
 * assert(bytes.length === 128 + 24);
 * assert(decodeNpy(bytes).shape[1] === 3);
 * ```
 */
export function encodeNpy(
  data: NpyData,
  shape: number[],
  options: EncodeNpyOptions = {},
): Uint8Array {
  const dtype = data instanceof Uint8Array
    ? options.dtype ?? "uint8"
    : data instanceof Float16Array
    ? "float16"
    : dtypeOf(data);
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new InputError(
      `npy shape [${shape}] is invalid; use non-negative integers`,
    );
  }
  if (numel(shape) !== data.length) {
    throw new InputError(
      `npy shape [${shape}] holds ${
        numel(shape)
      } elements but data has ${data.length}; pass a matching shape`,
    );
  }
  const header = headerBytes(dtype, shape);
  const out = new Uint8Array(header.length + data.byteLength);
  out.set(header);
  out.set(
    new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    header.length,
  );
  return out;
}

interface NpyHeader {
  dtype: NpyDtype;
  shape: number[];
  dataOffset: number;
}

function bad(what: string, problem: string): InputError {
  return new InputError(`${what}: ${problem}; re-create it with numpy.save`);
}

// Real headers nest one tuple deep; this bounds the parser's recursion.
const MAX_HEADER_NESTING = 32;

/** Parse the header dict, a tiny subset of Python literal syntax. */
function parseHeaderDict(text: string, what: string): Record<string, unknown> {
  let i = 0;
  let depth = 0;
  const ws = () => {
    while (i < text.length && " \t\n".includes(text[i])) i++;
  };
  const fail = (): never => {
    throw bad(
      what,
      `unreadable header ${JSON.stringify(text.trim().slice(0, 120))}`,
    );
  };
  const value = (): unknown => {
    ws();
    const c = text[i];
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) fail();
      const s = text.slice(i + 1, end);
      i = end + 1;
      return s;
    }
    if (c === "(") {
      if (++depth > MAX_HEADER_NESTING) {
        throw bad(what, `header tuples nest deeper than ${MAX_HEADER_NESTING}`);
      }
      i++;
      const items: unknown[] = [];
      for (;;) {
        ws();
        if (text[i] === ")") {
          i++;
          depth--;
          return items;
        }
        items.push(value());
        ws();
        if (text[i] === ",") i++;
        else if (text[i] !== ")") fail();
      }
    }
    const m = /^(True|False|\d+)/.exec(text.slice(i));
    if (!m) return fail();
    i += m[0].length;
    return m[0] === "True" ? true : m[0] === "False" ? false : Number(m[0]);
  };
  const dict: Record<string, unknown> = {};
  ws();
  if (text[i++] !== "{") fail();
  for (;;) {
    ws();
    if (text[i] === "}") break;
    const key = value();
    ws();
    if (typeof key !== "string" || text[i++] !== ":") fail();
    dict[key as string] = value();
    ws();
    if (text[i] === ",") i++;
    else if (text[i] !== "}") fail();
  }
  return dict;
}

function parseHeader(bytes: Uint8Array, what: string): NpyHeader {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw bad(what, "not a .npy file (bad magic)");
  }
  const major = bytes[6];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (major !== 1 && major !== 2 && major !== 3) {
    throw bad(what, `unsupported format version ${major}.${bytes[7]}`);
  }
  const pre = major === 1 ? 10 : 12;
  if (bytes.length < pre) throw bad(what, "truncated header");
  const len = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  if (pre + len > bytes.length) throw bad(what, "truncated header");
  const text = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(
    bytes.subarray(pre, pre + len),
  );
  const dict = parseHeaderDict(text, what);
  const { descr, fortran_order: fortran, shape } = dict;
  if (typeof descr !== "string" || !Object.hasOwn(FROM_DESCR, descr)) {
    throw new InputError(
      `${what}: unsupported dtype ${JSON.stringify(descr)}; convert to one of ${
        Object.values(DESCR).join(" ")
      } first`,
    );
  }
  if (fortran !== false) {
    throw new InputError(
      `${what}: fortran_order arrays are not supported; save numpy.ascontiguousarray(a) instead`,
    );
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d))) {
    throw bad(what, "missing or invalid shape");
  }
  return {
    dtype: FROM_DESCR[descr],
    shape: shape as number[],
    dataOffset: pre + len,
  };
}

/**
 * Decode `.npy` bytes (versions 1.0–3.0, little-endian, C order; dtypes
 * `<f4 <f8 <i4 <i8 |u1 |b1`). Throws `InputError` on anything malformed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeNpy, encodeNpy } from "./npy.ts";
 * const a = decodeNpy(encodeNpy(new Int32Array([5, 6]), [2]));
 * assert(a.dtype === "int32" && a.data[1] === 6);
 * ```
 */
export function decodeNpy(bytes: Uint8Array, name = "npy data"): NpyArray {
  const { dtype, shape, dataOffset } = parseHeader(bytes, name);
  const size = numel(shape) * npyItemsize(dtype);
  const have = bytes.length - dataOffset;
  if (have !== size) {
    throw bad(
      name,
      `shape [${shape}] needs ${size} data bytes but the file has ${have} (${
        have < size ? "truncated" : "trailing bytes"
      })`,
    );
  }
  return { dtype, shape, data: npyView(dtype, bytes.subarray(dataOffset)) };
}

/**
 * Streams float32 rows of width `D` into a `.npy` file without knowing the row
 * count upfront: the header is written with room for any N and patched on
 * `close()`. The file is written atomically; `close()` returns its sha256.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NpyWriter, decodeNpy } from "./npy.ts";
 * const dir = await Deno.makeTempDir();
 * const w = await NpyWriter.open(`${dir}/states.npy`, 2);
 * await w.writeRows(new Float32Array([1, 2, 3, 4]));
 * const sha = await w.close();
 * const a = decodeNpy(await Deno.readFile(`${dir}/states.npy`));
 * assert(a.shape[0] === 2 && sha.length === 64);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class NpyWriter implements AsyncDisposable {
  /** Row width. */
  readonly cols: number;
  #writer: AtomicWriter;
  #rows = 0;

  private constructor(writer: AtomicWriter, cols: number) {
    this.#writer = writer;
    this.cols = cols;
  }

  /** Start writing `path` with rows of `cols` float32 values. */
  static async open(path: string, cols: number): Promise<NpyWriter> {
    const writer = await AtomicWriter.open(path);
    // The header length does not depend on N (numpy's growth padding), so a
    // placeholder of the same length can be patched in place at the end.
    await writer.write(headerBytes("float32", [0, cols]));
    return new NpyWriter(writer, cols);
  }

  /** Rows written so far. */
  get rows(): number {
    return this.#rows;
  }

  /** Append one or more whole rows (`data.length` must be a multiple of `cols`). */
  async writeRows(data: Float32Array): Promise<void> {
    if (this.cols === 0 ? data.length !== 0 : data.length % this.cols !== 0) {
      throw new RangeError(
        `${data.length} values is not a whole number of rows of ${this.cols}`,
      );
    }
    await this.#writer.write(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
    if (this.cols > 0) this.#rows += data.length / this.cols;
  }

  /** Patch the header with the final shape, commit the file and return its sha256 hex. */
  async close(): Promise<string> {
    await this.#patchHeader();
    return await this.#writer.commit();
  }

  /**
   * Patch the header with the final shape and stage the file in `outputs`
   * (it lands when `outputs` commits); returns its sha256 hex.
   */
  async stage(outputs: OutputSet): Promise<string> {
    await this.#patchHeader();
    return await outputs.adopt(this.#writer);
  }

  async #patchHeader(): Promise<void> {
    await this.#writer.writeAt(
      0,
      headerBytes("float32", [this.#rows, this.cols]),
    );
  }

  /** Discard the partial file. */
  async abort(): Promise<void> {
    await this.#writer.abort();
  }

  /** Abort unless closed. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#writer[Symbol.asyncDispose]();
  }
}

/**
 * Writes rows of a 2-D `.npy` file at any row index, for writers whose rows
 * do not arrive in file order: the file is sized for `capacity` rows up front
 * (a sparse hole until written), rows may be moved towards the front, and
 * `close(rows)` cuts it to `rows`, patches the header and commits it
 * atomically. Rows are passed as little-endian bytes of `dtype`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NpyRowFile, decodeNpy } from "./npy.ts";
 * const dir = await Deno.makeTempDir();
 * const f = await NpyRowFile.open(`${dir}/a.npy`, 2, "float32", 3);
 * const row = (a: number, b: number) => new Uint8Array(new Float32Array([a, b]).buffer);
 * await f.writeRows(2, row(5, 6));
 * await f.writeRows(0, row(1, 2));
 * await f.moveRows(2, 1, 1);
 * await f.close(2);
 * assert.deepEqual([...decodeNpy(await Deno.readFile(`${dir}/a.npy`)).data], [1, 2, 5, 6]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class NpyRowFile {
  /** Row width. */
  readonly cols: number;
  /** Element type. */
  readonly dtype: "float32" | "float16";
  #writer: AtomicWriter;
  #offset: number;
  #rowBytes: number;
  #capacity: number;

  private constructor(
    writer: AtomicWriter,
    cols: number,
    dtype: "float32" | "float16",
    offset: number,
    capacity: number,
  ) {
    this.#writer = writer;
    this.cols = cols;
    this.dtype = dtype;
    this.#offset = offset;
    this.#rowBytes = cols * npyItemsize(dtype);
    this.#capacity = capacity;
  }

  /** Start writing `path` with room for `capacity` rows of `cols` values. */
  static async open(
    path: string,
    cols: number,
    dtype: "float32" | "float16",
    capacity: number,
  ): Promise<NpyRowFile> {
    const writer = await AtomicWriter.open(path);
    try {
      const header = headerBytes(dtype, [0, cols]);
      await writer.write(header);
      await writer.resize(header.length + capacity * cols * npyItemsize(dtype));
      return new NpyRowFile(writer, cols, dtype, header.length, capacity);
    } catch (e) {
      await writer.abort();
      throw e;
    }
  }

  /** Write whole rows (`bytes`, a multiple of the row size) from row `row` on. */
  async writeRows(row: number, bytes: Uint8Array): Promise<void> {
    const count = bytes.length / this.#rowBytes;
    if (!Number.isInteger(count) || row < 0 || row + count > this.#capacity) {
      throw new RangeError(
        `writeRows(${row}, ${bytes.length} bytes): not whole rows inside the ${this.#capacity} rows`,
      );
    }
    await this.#writer.writeAt(this.#offset + row * this.#rowBytes, bytes);
  }

  /** Copy `count` rows from row `from` to row `to` (`to <= from`; the ranges may overlap). */
  async moveRows(from: number, to: number, count: number): Promise<void> {
    if (to > from) throw new RangeError(`moveRows moves rows forward only`);
    if (to === from || count === 0) return;
    const chunk = Math.max(1, Math.floor((8 << 20) / this.#rowBytes));
    for (let done = 0; done < count; done += chunk) {
      const n = Math.min(chunk, count - done);
      const bytes = await this.#writer.readAt(
        this.#offset + (from + done) * this.#rowBytes,
        n * this.#rowBytes,
      );
      await this.#writer.writeAt(
        this.#offset + (to + done) * this.#rowBytes,
        bytes,
      );
    }
  }

  /** Keep the first `rows` rows, patch the header, commit; returns the sha256 hex. */
  async close(rows: number): Promise<string> {
    await this.#finalize(rows);
    return await this.#writer.commit();
  }

  /**
   * Keep the first `rows` rows, patch the header and stage the file in
   * `outputs` (it lands when `outputs` commits); returns its sha256 hex.
   */
  async stage(rows: number, outputs: OutputSet): Promise<string> {
    await this.#finalize(rows);
    return await outputs.adopt(this.#writer);
  }

  async #finalize(rows: number): Promise<void> {
    if (rows > this.#capacity) {
      throw new RangeError(`close(${rows}) is past the ${this.#capacity} rows`);
    }
    await this.#writer.resize(this.#offset + rows * this.#rowBytes);
    await this.#writer.writeAt(0, headerBytes(this.dtype, [rows, this.cols]));
  }

  /** Discard the partial file. */
  async abort(): Promise<void> {
    await this.#writer.abort();
  }
}

/**
 * Reads a 2-D (or higher) `.npy` file row by row from disk, so large files need
 * not be loaded whole. A "row" is one slice along the first axis.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NpyReader, encodeNpy } from "./npy.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeFile(`${dir}/a.npy`, encodeNpy(new Float32Array([1, 2, 3, 4, 5, 6]), [3, 2]));
 * using r = await NpyReader.open(`${dir}/a.npy`);
 * const rows = await r.readRows(1, 2);
 * assert(rows[0] === 3 && rows.length === 4);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class NpyReader implements Disposable {
  /** The element type. */
  readonly dtype: NpyDtype;
  /** The full shape; `shape[0]` is the row count. */
  readonly shape: number[];
  /** Elements per row. */
  readonly rowSize: number;
  #file: Deno.FsFile;
  #dataOffset: number;
  #path: string;

  private constructor(file: Deno.FsFile, header: NpyHeader, path: string) {
    this.#file = file;
    this.dtype = header.dtype;
    this.shape = header.shape;
    this.rowSize = numel(header.shape.slice(1));
    this.#dataOffset = header.dataOffset;
    this.#path = path;
  }

  /** Open `path`, parse its header and check the file size matches the shape. */
  static async open(path: string): Promise<NpyReader> {
    const file = await Deno.open(path, { read: true });
    try {
      const size = (await file.stat()).size;
      let head = await readAt(file, 0, Math.min(size, 4096));
      if (head.length >= 12) {
        // Headers longer than the first read (many dims, or v2+) need a second read.
        const hv = new DataView(head.buffer);
        const full = head[6] === 1
          ? 10 + hv.getUint16(8, true)
          : 12 + hv.getUint32(8, true);
        if (full > head.length && full <= size) {
          head = await readAt(file, 0, full);
        }
      }
      const header = parseHeader(head, path);
      if (header.shape.length === 0) throw bad(path, "a scalar has no rows");
      const need = header.dataOffset +
        numel(header.shape) * npyItemsize(header.dtype);
      if (need !== size) {
        throw bad(
          path,
          `shape [${header.shape}] needs ${need} bytes but the file has ${size}`,
        );
      }
      return new NpyReader(file, header, path);
    } catch (err) {
      file.close();
      throw err;
    }
  }

  /** Number of rows (`shape[0]`). */
  get rows(): number {
    return this.shape[0];
  }

  /** Read `count` rows starting at row `start`, as one flat typed array. */
  async readRows(start: number, count: number): Promise<NpyData> {
    if (start < 0 || count < 0 || start + count > this.rows) {
      throw new InputError(
        `${this.#path}: rows ${start}..${
          start + count
        } are outside the ${this.rows} rows; check the row range`,
      );
    }
    const rowBytes = this.rowSize * npyItemsize(this.dtype);
    const bytes = await readAt(
      this.#file,
      this.#dataOffset + start * rowBytes,
      count * rowBytes,
    );
    if (bytes.length !== count * rowBytes) {
      throw bad(this.#path, "file shrank while reading");
    }
    return npyView(this.dtype, bytes);
  }

  /**
   * Read whole rows starting at row `start` into `dest` (its byte length sets
   * the row count), synchronously: for hot loops that cannot await.
   */
  readRowsInto(start: number, dest: Uint8Array): void {
    const rowBytes = this.rowSize * npyItemsize(this.dtype);
    const count = dest.length / rowBytes;
    if (!Number.isInteger(count) || start < 0 || start + count > this.rows) {
      throw new InputError(
        `${this.#path}: rows ${start}..${
          start + count
        } are outside the ${this.rows} rows; check the row range`,
      );
    }
    this.#file.seekSync(
      this.#dataOffset + start * rowBytes,
      Deno.SeekMode.Start,
    );
    let off = 0;
    while (off < dest.length) {
      const n = this.#file.readSync(dest.subarray(off));
      if (n === null || n === 0) {
        throw bad(this.#path, "file shrank while reading");
      }
      off += n;
    }
  }

  /** Iterate over the file in chunks of up to `chunkRows` rows. */
  async *chunks(
    chunkRows = 4096,
  ): AsyncGenerator<{ start: number; data: NpyData }> {
    for (let start = 0; start < this.rows; start += chunkRows) {
      const count = Math.min(chunkRows, this.rows - start);
      yield { start, data: await this.readRows(start, count) };
    }
  }

  /** Close the file. */
  close(): void {
    this.#file.close();
  }

  /** Close the file (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }
}

async function readAt(
  file: Deno.FsFile,
  offset: number,
  length: number,
): Promise<Uint8Array> {
  await file.seek(offset, Deno.SeekMode.Start);
  const out = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const n = await file.read(out.subarray(got));
    if (n === null) break;
    got += n;
  }
  return out.subarray(0, got);
}
