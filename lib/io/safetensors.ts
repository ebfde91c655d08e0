/**
 * The safetensors format: an 8-byte little-endian header length, a JSON header
 * (`dtype`, `shape`, `data_offsets` per tensor, optional `__metadata__`), then
 * the raw little-endian tensor bytes. Output matches the Python `safetensors`
 * package byte for byte.
 *
 * @module
 */

import { InputError } from "../errors.ts";
import { type ElementData, type ElementType, ITEMSIZE } from "./dtype.ts";

/** Element types supported here, in trminterp's naming. */
export type SafetensorsDtype = ElementType;

/** A C-order tensor (`bool` data is a `Uint8Array` of 0/1). */
export interface SafeTensor {
  /** The element type. */
  dtype: SafetensorsDtype;
  /** The dimensions; `[]` for a scalar. */
  shape: number[];
  /** The elements in row-major order. */
  data: ElementData;
}

/** The contents of a safetensors file. */
export interface SafetensorsFile {
  /** Tensors by name. */
  tensors: Record<string, SafeTensor>;
  /** The optional string-to-string `__metadata__` map. */
  metadata?: Record<string, string>;
}

const CODES: Record<SafetensorsDtype, string> = {
  float32: "F32",
  float64: "F64",
  int32: "I32",
  int64: "I64",
  uint8: "U8",
  bool: "BOOL",
};
const FROM_CODE: Record<string, SafetensorsDtype> = Object.fromEntries(
  Object.entries(CODES).map(([k, v]) => [v, k as SafetensorsDtype]),
);
// The Rust crate orders tensors by its Dtype enum, largest first, then by name;
// matching it keeps our bytes identical to `safetensors.torch.save`.
const RANK: Record<SafetensorsDtype, number> = {
  bool: 0,
  uint8: 1,
  int32: 2,
  float32: 3,
  float64: 4,
  int64: 5,
};
const MAX_HEADER = 100_000_000;

function expectedType(dtype: SafetensorsDtype): string {
  return dtype === "float32"
    ? "Float32Array"
    : dtype === "float64"
    ? "Float64Array"
    : dtype === "int32"
    ? "Int32Array"
    : dtype === "int64"
    ? "BigInt64Array"
    : "Uint8Array";
}

/**
 * Encode tensors (and optional string metadata) as safetensors bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
 * const bytes = encodeSafetensors({ b_dec: { dtype: "float32", shape: [2], data: new Float32Array([1, 2]) } });
 * assert(decodeSafetensors(bytes).tensors.b_dec.data[1] === 2);
 * ```
 */
export function encodeSafetensors(
  tensors: Record<string, SafeTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const names = Object.keys(tensors).sort((a, b) => {
    const r = RANK[tensors[b].dtype] - RANK[tensors[a].dtype];
    return r !== 0 ? r : a < b ? -1 : a > b ? 1 : 0;
  });
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (
      t.data.constructor.name !== expectedType(t.dtype) || n !== t.data.length
    ) {
      throw new InputError(
        `tensor ${name}: ${t.data.constructor.name}(${t.data.length}) does not match ${t.dtype} [${t.shape}]; pass matching data`,
      );
    }
    header[name] = {
      dtype: CODES[t.dtype],
      shape: t.shape,
      data_offsets: [offset, offset + t.data.byteLength],
    };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (new TextEncoder().encode(json).length % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let pos = 8 + head.length;
  for (const name of names) {
    const d = tensors[name].data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), pos);
    pos += d.byteLength;
  }
  return out;
}

function bad(problem: string): InputError {
  return new InputError(
    `corrupt safetensors file: ${problem}; re-create or re-download it`,
  );
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Decode safetensors bytes, validating the header and that the tensors exactly
 * cover the data buffer. Throws `InputError` on corruption.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
 * const bytes = encodeSafetensors({ n: { dtype: "int64", shape: [], data: new BigInt64Array([7n]) } }, { format: "pt" });
 * const f = decodeSafetensors(bytes);
 * assert(f.tensors.n.data[0] === 7n && f.metadata?.format === "pt");
 * ```
 */
export function decodeSafetensors(bytes: Uint8Array): SafetensorsFile {
  if (bytes.length < 8) throw bad(`only ${bytes.length} bytes`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = dv.getBigUint64(0, true);
  if (n > BigInt(Math.min(MAX_HEADER, bytes.length - 8))) {
    throw bad(`header length ${n} exceeds the file`);
  }
  let header: unknown;
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(
      bytes.subarray(8, 8 + Number(n)),
    );
    header = JSON.parse(text);
  } catch {
    throw bad("header is not valid UTF-8 JSON");
  }
  if (!isRecord(header)) throw bad("header is not a JSON object");
  const base = 8 + Number(n);
  const bufLen = bytes.length - base;
  let metadata: Record<string, string> | undefined;
  const tensors: [string, SafeTensor][] = [];
  const spans: [number, number, string][] = [];
  const entries: [string, SafetensorsDtype, number[], number, number][] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (
        !isRecord(entry) ||
        !Object.values(entry).every((v) => typeof v === "string")
      ) {
        throw bad("__metadata__ must map strings to strings");
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    if (!isRecord(entry)) throw bad(`entry ${name} is not an object`);
    const { dtype: code, shape, data_offsets: offs } = entry;
    const dtype = typeof code === "string" ? FROM_CODE[code] : undefined;
    if (!dtype) {
      throw new InputError(
        `safetensors tensor ${name} has unsupported dtype ${
          JSON.stringify(code)
        }; convert it to F32, F64, I32, I64, U8 or BOOL`,
      );
    }
    if (
      !Array.isArray(shape) ||
      !shape.every((d) => Number.isSafeInteger(d) && d >= 0)
    ) {
      throw bad(`tensor ${name} has an invalid shape`);
    }
    if (
      !Array.isArray(offs) || offs.length !== 2 ||
      !offs.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offs[0] > offs[1] || offs[1] > bufLen
    ) {
      throw bad(`tensor ${name} has invalid data_offsets`);
    }
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (count * ITEMSIZE[dtype] !== offs[1] - offs[0]) {
      throw bad(
        `tensor ${name}: shape [${shape}] does not match its ${
          offs[1] - offs[0]
        } bytes`,
      );
    }
    spans.push([offs[0], offs[1], name]);
    entries.push([name, dtype, shape as number[], offs[0], offs[1]]);
  }
  // Like the Rust crate: tensors must tile the buffer with no gaps or
  // overlaps. Checked before any copy, so overlapping spans cannot make a
  // small file copy its data many times over.
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let end = 0;
  for (const [s, e, name] of spans) {
    if (s !== end) {
      throw bad(`tensor ${name} leaves a gap or overlaps at byte ${s}`);
    }
    end = e;
  }
  if (end !== bufLen) {
    throw bad(`data is ${bufLen} bytes but tensors cover ${end}`);
  }
  for (const [name, dtype, shape, start, stop] of entries) {
    const raw = bytes.slice(base + start, base + stop).buffer;
    const data = dtype === "float32"
      ? new Float32Array(raw)
      : dtype === "float64"
      ? new Float64Array(raw)
      : dtype === "int32"
      ? new Int32Array(raw)
      : dtype === "int64"
      ? new BigInt64Array(raw)
      : new Uint8Array(raw);
    tensors.push([name, { dtype, shape, data }]);
  }
  // fromEntries defines own properties, so a tensor named "__proto__" is safe.
  const result: SafetensorsFile = { tensors: Object.fromEntries(tensors) };
  if (metadata) result.metadata = metadata;
  return result;
}
