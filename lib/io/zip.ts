/**
 * A minimal ZIP writer (stored entries, fixed timestamps, optional data
 * alignment as torch.save does) and a validating reader (stored and deflate
 * entries). No zip64, encryption or multi-disk archives.
 *
 * @module
 */

import { inflateRawSync } from "node:zlib";
import { InputError } from "../errors.ts";

/** One file inside a ZIP archive. */
export interface ZipEntry {
  /** Path inside the archive, with `/` separators. */
  name: string;
  /** The uncompressed contents. */
  data: Uint8Array;
}

/** Options for {@linkcode encodeZip}. */
export interface EncodeZipOptions {
  /**
   * Pad each entry's local header so its data starts at a multiple of this many
   * bytes (torch uses 64 so storages can be memory-mapped). 0 or 1: no padding.
   */
  align?: number;
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * CRC-32 (the ZIP / zlib polynomial) of `data`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { crc32 } from "./zip.ts";
 * assert(crc32(new TextEncoder().encode("123456789")) === 0xcbf43926);
 * ```
 */
export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) {
    c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  }
  return (c ^ 0xffffffff) >>> 0;
}

const LOCAL_SIG = 0x04034b50;
const CENTRAL_SIG = 0x02014b50;
const EOCD_SIG = 0x06054b50;
const FLAG_UTF8 = 0x0800;
// 1980-01-01 00:00:00, the earliest DOS date: fixed so output is reproducible.
const DOS_TIME = 0;
const DOS_DATE = (1 << 5) | 1;
// The extra-field id torch uses for its alignment padding ("FB").
const PAD_EXTRA_ID = 0x4246;

/**
 * Build a ZIP archive of stored (uncompressed) entries. Same input, same bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeZip, encodeZip } from "./zip.ts";
 * const data = new TextEncoder().encode("hi");
 * const zip = encodeZip([{ name: "a/b.txt", data }], { align: 64 });
 * assert(decodeZip(zip).get("a/b.txt")?.length === 2);
 * ```
 */
export function encodeZip(
  entries: ZipEntry[],
  options: EncodeZipOptions = {},
): Uint8Array {
  const align = options.align ?? 0;
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  const seen = new Set<string>();
  for (const entry of entries) {
    if (seen.has(entry.name)) {
      throw new Error(`duplicate zip entry name ${entry.name}`);
    }
    seen.add(entry.name);
    const name = enc.encode(entry.name);
    const crc = crc32(entry.data);
    const size = entry.data.length;
    if (size > 0xfffffffe || offset > 0xfffffffe) {
      throw new Error(
        `zip entry ${entry.name} needs zip64, which is not supported`,
      );
    }
    let extra = new Uint8Array(0);
    if (align > 1) {
      const pad = (align - ((offset + 30 + name.length + 4) % align)) % align;
      extra = new Uint8Array(4 + pad);
      const dv = new DataView(extra.buffer);
      dv.setUint16(0, PAD_EXTRA_ID, true);
      dv.setUint16(2, pad, true);
    }
    const local = new Uint8Array(30 + name.length + extra.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, LOCAL_SIG, true);
    lv.setUint16(4, 20, true);
    lv.setUint16(6, FLAG_UTF8, true);
    lv.setUint16(8, 0, true);
    lv.setUint16(10, DOS_TIME, true);
    lv.setUint16(12, DOS_DATE, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, size, true);
    lv.setUint32(22, size, true);
    lv.setUint16(26, name.length, true);
    lv.setUint16(28, extra.length, true);
    local.set(name, 30);
    local.set(extra, 30 + name.length);

    const cen = new Uint8Array(46 + name.length);
    const cv = new DataView(cen.buffer);
    cv.setUint32(0, CENTRAL_SIG, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint16(8, FLAG_UTF8, true);
    cv.setUint16(10, 0, true);
    cv.setUint16(12, DOS_TIME, true);
    cv.setUint16(14, DOS_DATE, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, size, true);
    cv.setUint32(24, size, true);
    cv.setUint16(28, name.length, true);
    cv.setUint32(42, offset, true);
    cen.set(name, 46);

    parts.push(local, entry.data);
    central.push(cen);
    offset += local.length + size;
  }
  const cdSize = central.reduce((n, c) => n + c.length, 0);
  const eocd = new Uint8Array(22);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, EOCD_SIG, true);
  ev.setUint16(8, entries.length, true);
  ev.setUint16(10, entries.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  const out = new Uint8Array(offset + cdSize + 22);
  let pos = 0;
  for (const p of [...parts, ...central, eocd]) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

function corrupt(problem: string): InputError {
  return new InputError(
    `corrupt zip archive: ${problem}; re-create or re-download the file`,
  );
}

function findEocd(bytes: Uint8Array, dv: DataView): number {
  const min = Math.max(0, bytes.length - 22 - 0xffff);
  for (let i = bytes.length - 22; i >= min; i--) {
    if (
      dv.getUint32(i, true) === EOCD_SIG &&
      i + 22 + dv.getUint16(i + 20, true) === bytes.length
    ) {
      return i;
    }
  }
  throw corrupt(
    "no end-of-central-directory record (truncated, or not a zip file)",
  );
}

/** One entry of a ZIP archive's central directory, checked against the file. */
export interface ZipDirEntry {
  /** Path inside the archive. */
  name: string;
  /** 0 (stored) or 8 (deflate). */
  method: number;
  /** CRC-32 of the uncompressed data. */
  crc: number;
  /** Compressed size in bytes. */
  compressedSize: number;
  /** Uncompressed size in bytes, as declared. */
  size: number;
  /** Offset of the entry's data in the file. */
  dataOffset: number;
}

/** Options for {@linkcode openZip} and {@linkcode decodeZip}. */
export interface ZipReadOptions {
  /** Most bytes to inflate over all reads (default 1 GiB). */
  maxBytes?: number;
}

/** The default cap on the bytes one archive may inflate to. */
const ZIP_MAX_BYTES = 2 ** 30;

// Deflate cannot expand more than 1032:1 (a 258-byte match per 2 bits); a
// larger declared size is a lie that no inflation needs to confirm.
const MAX_RATIO = 1032;

/**
 * A ZIP archive whose directory has been read and checked (offsets, sizes,
 * names) without inflating anything: entries are inflated one at a time, on
 * {@linkcode ZipArchive.read}, up to the size they declare and within the
 * archive's total cap, then checked against their CRC-32.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeZip, openZip } from "./zip.ts";
 * const zip = openZip(encodeZip([{ name: "a", data: new Uint8Array(4) }, { name: "b", data: new Uint8Array(8) }]));
 * assert.deepEqual(zip.names(), ["a", "b"]);
 * assert.equal(zip.entry("b")?.size, 8);
 * assert.equal(zip.read("a").length, 4);
 * assert.throws(() => zip.read("b", 4), /declares 8 bytes, expected 4/);
 * ```
 */
export class ZipArchive {
  #bytes: Uint8Array;
  #entries: Map<string, ZipDirEntry>;
  #cap: number;
  #budget: number;

  /** Used by {@linkcode openZip}. */
  constructor(
    bytes: Uint8Array,
    entries: Map<string, ZipDirEntry>,
    maxBytes: number,
  ) {
    this.#bytes = bytes;
    this.#entries = entries;
    this.#cap = maxBytes;
    this.#budget = maxBytes;
  }

  /** Entry names, in directory order. */
  names(): string[] {
    return [...this.#entries.keys()];
  }

  /** The directory entry of `name`, if any. */
  entry(name: string): ZipDirEntry | undefined {
    return this.#entries.get(name);
  }

  /**
   * The uncompressed bytes of `name`. With `expected`, an entry declaring
   * another size is refused before anything is inflated. Stored entries are
   * views into the archive, not copies.
   */
  read(name: string, expected?: number): Uint8Array {
    const e = this.#entries.get(name);
    if (!e) throw corrupt(`no entry ${name}`);
    if (expected !== undefined && e.size !== expected) {
      throw corrupt(`${name} declares ${e.size} bytes, expected ${expected}`);
    }
    const raw = this.#bytes.subarray(
      e.dataOffset,
      e.dataOffset + e.compressedSize,
    );
    let data: Uint8Array;
    if (e.method === 0) data = raw;
    else {
      if (e.size > this.#budget) {
        throw new InputError(
          `zip entry ${name} inflates to ${e.size} bytes, past what is left of the archive's ${this.#cap}-byte cap; the file is not what trminterp reads`,
        );
      }
      this.#budget -= e.size;
      try {
        data = new Uint8Array(
          inflateRawSync(raw, { maxOutputLength: Math.max(e.size, 1) }),
        );
      } catch {
        throw corrupt(`cannot inflate ${name}`);
      }
      if (data.length !== e.size) {
        throw corrupt(`${name} inflates to the wrong size`);
      }
    }
    if (crc32(data) !== e.crc) throw corrupt(`CRC-32 mismatch in ${name}`);
    return data;
  }
}

/**
 * Read and check the central directory of a ZIP archive (stored and deflate
 * entries; no zip64, encryption or multi-disk archives). Every declared
 * offset and size is checked against the file's real size, and deflate
 * sizes against deflate's largest ratio, before any data is touched.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeZip, openZip } from "./zip.ts";
 * const zip = openZip(encodeZip([{ name: "x", data: new Uint8Array([7]) }]));
 * assert.equal(zip.read("x")[0], 7);
 * ```
 */
export function openZip(
  bytes: Uint8Array,
  opts: ZipReadOptions = {},
): ZipArchive {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 22) throw corrupt(`only ${bytes.length} bytes`);
  const eocd = findEocd(bytes, dv);
  const disk = dv.getUint16(eocd + 4, true);
  const count = dv.getUint16(eocd + 10, true);
  const cdSize = dv.getUint32(eocd + 12, true);
  const cdOffset = dv.getUint32(eocd + 16, true);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    throw new InputError(
      "zip64 archives are not supported; re-save the file below 4 GiB",
    );
  }
  if (disk !== 0 || dv.getUint16(eocd + 8, true) !== count) {
    throw new InputError(
      "multi-disk zip archives are not supported; join the parts first",
    );
  }
  if (cdOffset + cdSize > eocd) {
    throw corrupt("central directory lies outside the file");
  }
  const dec = new TextDecoder("utf-8", { fatal: false });
  const out = new Map<string, ZipDirEntry>();
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdOffset + cdSize || dv.getUint32(p, true) !== CENTRAL_SIG) {
      throw corrupt(`bad central directory header for entry ${i}`);
    }
    const flags = dv.getUint16(p + 8, true);
    const method = dv.getUint16(p + 10, true);
    const crc = dv.getUint32(p + 16, true);
    const csize = dv.getUint32(p + 20, true);
    const usize = dv.getUint32(p + 24, true);
    const nameLen = dv.getUint16(p + 28, true);
    const extraLen = dv.getUint16(p + 30, true);
    const commentLen = dv.getUint16(p + 32, true);
    const localOff = dv.getUint32(p + 42, true);
    const next = p + 46 + nameLen + extraLen + commentLen;
    if (next > cdOffset + cdSize) {
      throw corrupt(`central directory entry ${i} overruns`);
    }
    const name = dec.decode(bytes.subarray(p + 46, p + 46 + nameLen));
    p = next;
    if (flags & 1) {
      throw new InputError(
        `zip entry ${name} is encrypted; decrypt the archive first`,
      );
    }
    if (
      csize === 0xffffffff || usize === 0xffffffff || localOff === 0xffffffff
    ) {
      throw new InputError(
        `zip entry ${name} uses zip64, which is not supported`,
      );
    }
    if (
      localOff + 30 > cdOffset || dv.getUint32(localOff, true) !== LOCAL_SIG
    ) {
      throw corrupt(`bad local header for ${name}`);
    }
    const lNameLen = dv.getUint16(localOff + 26, true);
    const lExtraLen = dv.getUint16(localOff + 28, true);
    const lName = dec.decode(
      bytes.subarray(localOff + 30, localOff + 30 + lNameLen),
    );
    if (lName !== name) {
      throw corrupt(`local header name ${lName} does not match ${name}`);
    }
    const start = localOff + 30 + lNameLen + lExtraLen;
    if (start + csize > cdOffset) {
      throw corrupt(`data of ${name} lies outside the file`);
    }
    if (method === 0) {
      if (csize !== usize) {
        throw corrupt(`stored entry ${name} has mismatched sizes`);
      }
    } else if (method === 8) {
      if (usize > csize * MAX_RATIO + 1024) {
        throw corrupt(
          `${name} declares ${usize} bytes from ${csize} compressed, more than deflate can hold`,
        );
      }
    } else {
      throw new InputError(
        `zip entry ${name} uses compression method ${method}; only stored and deflate are supported`,
      );
    }
    if (out.has(name)) throw corrupt(`duplicate entry ${name}`);
    out.set(name, {
      name,
      method,
      crc,
      compressedSize: csize,
      size: usize,
      dataOffset: start,
    });
  }
  return new ZipArchive(bytes, out, opts.maxBytes ?? ZIP_MAX_BYTES);
}

/**
 * Read every entry of a ZIP archive, checking offsets, sizes and CRC-32.
 * Supports stored and deflate entries. Throws `InputError` on any corruption,
 * and when the entries together would inflate past `maxBytes` (checked from
 * their declared sizes, before inflating).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeZip, encodeZip } from "./zip.ts";
 * const zip = encodeZip([{ name: "x", data: new Uint8Array([7]) }]);
 * assert(decodeZip(zip).get("x")?.[0] === 7);
 * ```
 */
export function decodeZip(
  bytes: Uint8Array,
  opts: ZipReadOptions = {},
): Map<string, Uint8Array> {
  const zip = openZip(bytes, opts);
  const cap = opts.maxBytes ?? ZIP_MAX_BYTES;
  let total = 0;
  for (const name of zip.names()) {
    const e = zip.entry(name)!;
    if (e.method !== 0) total += e.size;
  }
  if (total > cap) {
    throw new InputError(
      `zip archive inflates to ${total} bytes, past the ${cap}-byte cap; the file is not what trminterp reads`,
    );
  }
  const out = new Map<string, Uint8Array>();
  for (const name of zip.names()) out.set(name, zip.read(name));
  return out;
}
