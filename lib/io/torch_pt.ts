/**
 * Read and write `torch.save` zip archives (`.pt`) without Python: tensors of
 * plain dtypes inside dicts, lists and scalars. Files we write load with
 * `torch.load(path, weights_only=True)`; files torch writes load here through
 * the safe pickle VM, which only knows the handful of globals torch uses.
 *
 * @module
 */

import { InputError } from "../errors.ts";
import {
  decodePickle,
  encodePickle,
  type PickleValue,
  PyFloat,
  PyGlobal,
  PyPersistentId,
  PyReduce,
  PyTuple,
} from "./pickle.ts";
import { encodeZip, openZip, type ZipEntry } from "./zip.ts";
import { type ElementType, ITEMSIZE, numel, viewAs } from "./dtype.ts";

export { PyFloat };

/** Tensor element types supported in `.pt` files. */
export type TorchDtype = ElementType;

/** A dense CPU tensor in C order (`bool` data is a `Uint8Array` of 0/1). */
export interface TorchTensor {
  /** The element type. */
  dtype: TorchDtype;
  /** The dimensions; `[]` for a scalar. */
  shape: number[];
  /** The elements in row-major order. */
  data: Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;
}

/**
 * What a `.pt` file can hold here: tensors, dicts with string keys, lists and
 * scalars. Integral numbers are written as Python ints; wrap a number in
 * `PyFloat` to force a float. Decoding never returns `PyFloat`.
 */
export type TorchValue =
  | null
  | boolean
  | number
  | string
  | PyFloat
  | TorchTensor
  | TorchValue[]
  | { [key: string]: TorchValue };

/** Options for {@linkcode encodeTorchPt}. */
export interface EncodeTorchPtOptions {
  /** The archive's top folder name, as torch derives from the file stem. Default `archive`. */
  archiveName?: string;
}

const STORAGE: Record<TorchDtype, string> = {
  float32: "FloatStorage",
  float64: "DoubleStorage",
  int32: "IntStorage",
  int64: "LongStorage",
  uint8: "ByteStorage",
  bool: "BoolStorage",
};
const ARRAY_TYPE: Record<TorchDtype, string> = {
  float32: "Float32Array",
  float64: "Float64Array",
  int32: "Int32Array",
  int64: "BigInt64Array",
  uint8: "Uint8Array",
  bool: "Uint8Array",
};

/**
 * Whether `v` is a {@linkcode TorchTensor}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isTorchTensor } from "./torch_pt.ts";
 * assert(isTorchTensor({ dtype: "float32", shape: [1], data: new Float32Array(1) }));
 * assert(!isTorchTensor({ dtype: "float32" }));
 * ```
 */
export function isTorchTensor(v: unknown): v is TorchTensor {
  if (typeof v !== "object" || v === null) return false;
  const t = v as Partial<TorchTensor>;
  return typeof t.dtype === "string" && t.dtype in STORAGE &&
    Array.isArray(t.shape) &&
    ArrayBuffer.isView(t.data);
}

function contiguousStrides(shape: number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/**
 * Encode `obj` as the bytes of a `torch.save` zip archive (protocol-2 pickle,
 * storages 64-byte aligned, deterministic: same input, same bytes).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeTorchPt, encodeTorchPt, isTorchTensor } from "./torch_pt.ts";
 * const W = { dtype: "float32" as const, shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) };
 * const bytes = encodeTorchPt({ state_dict: { W_enc: W }, cfg: { d_sae: 2, act: "topk" } }, { archiveName: "sae" });
 * const back = decodeTorchPt(bytes) as { state_dict: Record<string, unknown> };
 * assert(isTorchTensor(back.state_dict.W_enc));
 * ```
 */
export function encodeTorchPt(
  obj: TorchValue,
  options: EncodeTorchPtOptions = {},
): Uint8Array {
  const root = options.archiveName ?? "archive";
  const storages: Uint8Array[] = [];
  const rebuild = new PyGlobal("torch._utils", "_rebuild_tensor_v2");
  const toPickle = (v: TorchValue, path: string): PickleValue => {
    if (v === null || typeof v !== "object" || v instanceof PyFloat) return v;
    if (Array.isArray(v)) return v.map((x, i) => toPickle(x, `${path}[${i}]`));
    if (isTorchTensor(v)) {
      if (
        v.data.constructor.name !== ARRAY_TYPE[v.dtype] ||
        numel(v.shape) !== v.data.length
      ) {
        throw new InputError(
          `tensor ${path}: ${v.data.constructor.name}(${v.data.length}) does not match ${v.dtype} [${v.shape}]; pass matching data`,
        );
      }
      const key = String(storages.length);
      storages.push(
        new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength),
      );
      const storage = new PyPersistentId(
        new PyTuple([
          "storage",
          new PyGlobal("torch", STORAGE[v.dtype]),
          key,
          "cpu",
          v.data.length,
        ]),
      );
      const hooks = new PyReduce(
        new PyGlobal("collections", "OrderedDict"),
        new PyTuple([]),
      );
      return new PyReduce(
        rebuild,
        new PyTuple([
          storage,
          0,
          new PyTuple(v.shape),
          new PyTuple(contiguousStrides(v.shape)),
          false,
          hooks,
        ]),
      );
    }
    const out: Record<string, PickleValue> = {};
    for (const [k, x] of Object.entries(v)) {
      // Like JSON.stringify, undefined members are left out.
      if (x !== undefined) out[k] = toPickle(x, path ? `${path}.${k}` : k);
    }
    return out;
  };
  const pkl = encodePickle(toPickle(obj, ""));
  const text = (s: string) => new TextEncoder().encode(s);
  // Same records, in the same order, as torch 2.x writes (minus the random
  // .data/serialization_id, which would break reproducibility).
  const entries: ZipEntry[] = [
    { name: `${root}/data.pkl`, data: pkl },
    { name: `${root}/.format_version`, data: text("1") },
    { name: `${root}/.storage_alignment`, data: text("64") },
    { name: `${root}/byteorder`, data: text("little") },
    ...storages.map((data, i) => ({ name: `${root}/data/${i}`, data })),
    { name: `${root}/version`, data: text("3\n") },
  ];
  return encodeZip(entries, { align: 64 });
}

class StorageType {
  constructor(readonly dtype: TorchDtype) {}
}

interface Storage {
  dtype: TorchDtype;
  numel: number;
  /** The data; null when only shapes are read. */
  bytes: Uint8Array | null;
}

function bad(problem: string): InputError {
  return new InputError(
    `unreadable .pt file: ${problem}; re-save it with torch.save`,
  );
}

// Largest overlapping (expanded) view rebuilt, in elements.
const MAX_EXPANDED_NUMEL = 1 << 22;

const isIntTuple = (v: unknown): v is number[] =>
  Array.isArray(v) && v.every((x) => Number.isSafeInteger(x) && x >= 0);

function rebuildTensor(
  storage: unknown,
  offset: unknown,
  size: unknown,
  stride: unknown,
): TorchTensor {
  if (
    typeof storage !== "object" || storage === null || !("bytes" in storage)
  ) {
    throw bad("tensor without a storage");
  }
  const st = storage as Storage;
  if (
    !Number.isSafeInteger(offset) || (offset as number) < 0 ||
    !isIntTuple(size) || !isIntTuple(stride)
  ) {
    throw bad("tensor with invalid offset, size or stride");
  }
  if (size.length !== stride.length) {
    throw bad("tensor size and stride differ in length");
  }
  const off = offset as number;
  const shape = [...size];
  const n = numel(shape);
  const es = ITEMSIZE[st.dtype];
  if (n === 0 || !st.bytes) {
    if (n > 0 && lastElement(off, shape, stride) >= st.numel) {
      throw bad(`tensor view reaches past its ${st.numel}-element storage`);
    }
    return {
      dtype: st.dtype,
      shape,
      data: viewAs(st.dtype, new Uint8Array(0)),
    };
  }
  const bytes = st.bytes;
  const last = lastElement(off, shape, stride);
  if (last >= st.numel) {
    throw bad(
      `tensor view reaches element ${last} of a ${st.numel}-element storage`,
    );
  }
  const want = contiguousStrides(shape);
  if (shape.every((d, i) => d === 1 || stride[i] === want[i])) {
    return {
      dtype: st.dtype,
      shape,
      data: viewAs(st.dtype, bytes.subarray(off * es, (off + n) * es)),
    };
  }
  // An overlapping view (stride 0, as from expand()) can name far more
  // elements than its storage holds; materializing it must stay bounded.
  if (n > st.numel && n > MAX_EXPANDED_NUMEL) {
    throw bad(
      `tensor view of ${n} elements over a ${st.numel}-element storage is too large to expand; save tensor.contiguous() instead`,
    );
  }
  // A strided view (e.g. a saved transpose): gather the elements in C order.
  const out = new Uint8Array(n * es);
  const idx = new Array<number>(shape.length).fill(0);
  for (let k = 0; k < n; k++) {
    let src = off;
    for (let d = 0; d < shape.length; d++) src += idx[d] * stride[d];
    out.set(bytes.subarray(src * es, (src + 1) * es), k * es);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return { dtype: st.dtype, shape, data: viewAs(st.dtype, out) };
}

function lastElement(off: number, shape: number[], stride: number[]): number {
  return off + shape.reduce((acc, d, i) => acc + (d - 1) * stride[i], 0);
}

const MAX_DEPTH = 1000;

/**
 * Convert the unpickled value. `seen` holds the ancestors (a cycle check);
 * `done` maps each converted container to its result, so an object the
 * pickle references many times (memo) is converted once and stays shared,
 * as in Python: without it, a few hundred bytes of nested back-references
 * would take 2^depth steps.
 */
function toPlain(
  v: unknown,
  seen: Set<unknown>,
  done: Map<unknown, TorchValue>,
): TorchValue {
  if (
    v === null || typeof v === "boolean" || typeof v === "number" ||
    typeof v === "string"
  ) return v;
  if (typeof v === "bigint") throw bad(`integer ${v} does not fit in a double`);
  if (isTorchTensor(v)) return v;
  const converted = done.get(v);
  if (converted !== undefined) return converted;
  if (seen.has(v)) throw bad("recursive structure");
  // `seen` holds the ancestors, so its size is the nesting depth.
  if (seen.size >= MAX_DEPTH) {
    throw bad(`nesting deeper than ${MAX_DEPTH} levels`);
  }
  seen.add(v);
  let out: TorchValue;
  try {
    if (Array.isArray(v)) out = v.map((x) => toPlain(x, seen, done));
    else if (v instanceof Map) {
      const entries: [string, TorchValue][] = [];
      for (const [k, x] of v) {
        if (typeof k !== "string" && typeof k !== "number") {
          throw bad("dict with a non-string key");
        }
        entries.push([String(k), toPlain(x, seen, done)]);
      }
      // fromEntries defines own properties, so a key "__proto__" is safe.
      out = Object.fromEntries(entries);
    } else throw bad("unsupported object in the pickle");
  } finally {
    seen.delete(v);
  }
  done.set(v, out);
  return out;
}

/** Options for {@linkcode decodeTorchPt}. */
export interface DecodeTorchPtOptions {
  /** Most bytes of compressed storages to inflate (default 1 GiB). */
  maxBytes?: number;
  /**
   * Read the pickle only: tensors come back with their dtype and shape and
   * empty `data`, and no storage is inflated (to check what a file declares
   * before paying for it).
   */
  shapesOnly?: boolean;
}

/** The default cap on the storage bytes a `.pt` file may inflate to (1 GiB). */
const TORCH_PT_MAX_BYTES = 2 ** 30;
const MAX_PICKLE_BYTES = 64 * 2 ** 20;

/**
 * Decode a `torch.save` zip archive into tensors, plain objects, arrays and
 * scalars. Only dense CPU tensors of the supported dtypes are accepted; any
 * other Python object throws `InputError`. Only the storages the pickle
 * references are read, each only when its declared size matches.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeTorchPt, encodeTorchPt } from "./torch_pt.ts";
 * const bytes = encodeTorchPt({ cfg: { k: 32, lr: 0.001, tags: ["a"], ok: true, none: null } });
 * const back = decodeTorchPt(bytes) as { cfg: { k: number } };
 * assert(back.cfg.k === 32);
 * ```
 */
export function decodeTorchPt(
  bytes: Uint8Array,
  opts: DecodeTorchPtOptions = {},
): TorchValue {
  if (bytes[0] === 0x80 || (bytes[0] === 0x1f && bytes[1] === 0x8b)) {
    throw new InputError(
      "legacy (pre-1.6, non-zip) torch files are not supported; re-save with a current torch.save",
    );
  }
  // Only the entries the pickle references are inflated, each only after its
  // declared size matches the storage the pickle declares.
  const zip = openZip(bytes, { maxBytes: opts.maxBytes ?? TORCH_PT_MAX_BYTES });
  const pkls = zip.names().filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length !== 1) {
    throw bad("expected exactly one <name>/data.pkl entry");
  }
  const root = pkls[0].slice(0, -"data.pkl".length);
  const small = (name: string, max: number): Uint8Array | undefined => {
    const e = zip.entry(name);
    if (!e) return undefined;
    if (e.size > max) throw bad(`${name} is ${e.size} bytes, more than ${max}`);
    return zip.read(name);
  };
  const order = small(`${root}byteorder`, 16);
  if (order && new TextDecoder().decode(order) !== "little") {
    throw new InputError(
      "big-endian .pt files are not supported; re-save on a little-endian machine",
    );
  }
  const pickle = small(pkls[0], MAX_PICKLE_BYTES)!;
  const storages = new Map<string, Storage>();
  const value = decodePickle(pickle, {
    findGlobal(module, name) {
      if (module === "collections" && name === "OrderedDict") {
        return () => new Map();
      }
      if (module === "torch._utils" && name === "_rebuild_tensor_v2") {
        return rebuildTensor;
      }
      if (module === "torch._utils" && name === "_rebuild_parameter") {
        return (t: unknown) => t;
      }
      if (module === "torch") {
        const dtype = (Object.keys(STORAGE) as TorchDtype[]).find((d) =>
          STORAGE[d] === name
        );
        if (dtype) return new StorageType(dtype);
      }
      return undefined;
    },
    persistentLoad(id) {
      if (!Array.isArray(id) || id.length !== 5 || id[0] !== "storage") {
        throw bad("unknown persistent id");
      }
      const [, type, key, , count] = id;
      if (
        !(type instanceof StorageType) || typeof key !== "string" ||
        !Number.isSafeInteger(count)
      ) {
        throw bad("malformed storage reference");
      }
      const known = storages.get(key);
      if (known) {
        if (known.dtype !== type.dtype) {
          throw bad(`storage ${key} is used with two dtypes`);
        }
        return known;
      }
      const entry = zip.entry(`${root}data/${key}`);
      if (!entry) throw bad(`storage entry ${root}data/${key} is missing`);
      const want = count * ITEMSIZE[type.dtype];
      if (entry.size !== want) {
        throw bad(`storage ${key} has ${entry.size} bytes, expected ${want}`);
      }
      const st = {
        dtype: type.dtype,
        numel: count,
        bytes: opts.shapesOnly ? null : zip.read(entry.name, want),
      };
      storages.set(key, st);
      return st;
    },
  });
  return toPlain(value, new Set(), new Map());
}
