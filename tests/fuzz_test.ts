// Seeded fuzzing of every parser that reads untrusted files: .npy, the
// pickle VM, torch .pt archives, safetensors, trace.jsonl records and
// model.json. The contract: each case either returns a value or throws
// InputError (the zod validators' safeParse never throws). Anything else
// (RangeError, TypeError, a case that takes seconds) is a failure, reported
// with the seed, the case number and a hex prefix of the input.
//
// Reproduce a case: FUZZ_SEED=<seed> FUZZ_CASES=<n> deno test -A tests/fuzz_test.ts
// (case i of parser p always uses `new Rng(seed + i, stream of p)`); add
// FUZZ_DUMP=<dir> to write each failing input to <dir>/<parser>-<case>.bin.
// Regressions it caught: npy headers with deeply nested tuples (stack
// overflow), .pt pickles whose memo back-references form a 2^depth DAG
// (a hang), .pt tensors viewed with stride 0 over a huge shape (allocation).
import assert from "node:assert/strict";
import { join } from "node:path";
import { readManifest } from "../lib/model/bundle.ts";
import { InputError } from "../lib/errors.ts";
import { readJsonl } from "../lib/io/jsonl.ts";
import { decodeNpy, encodeNpy, NpyReader } from "../lib/io/npy.ts";
import {
  decodePickle,
  encodePickle,
  type PickleValue,
  PyFloat,
  PyGlobal,
  PyPersistentId,
  PyReduce,
  PyTuple,
} from "../lib/io/pickle.ts";
import { decodeSafetensors, encodeSafetensors } from "../lib/io/safetensors.ts";
import { decodeTorchPt, encodeTorchPt } from "../lib/io/torch_pt.ts";
import { decodeZip, encodeZip, openZip } from "../lib/io/zip.ts";
import { deflateRawSync } from "node:zlib";
import { isPlainName } from "../lib/io/paths.ts";
import { loadPuzzles } from "../lib/trace/inputs.ts";
import { selectExamples } from "../lib/trace/positions.ts";
import { Rng } from "../lib/rng.ts";
import { SAE } from "../lib/sae/sae.ts";
import { encodeSaePt } from "../lib/sae/sae_pt.ts";
import {
  formatZodError,
  MAX_SCHEDULE_STEPS,
  schemas,
} from "../lib/schema/mod.ts";
import { TraceDataset } from "../lib/trace/dataset.ts";
import { FIXTURES, rawZip, type RawZipEntry, ROOT } from "./helpers.ts";

const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 20251125);
const CASES = Number(Deno.env.get("FUZZ_CASES") ?? 3000);
/** Inputs never grow past this, so no case can be slow just by being big. */
const MAX_LEN = 1 << 17;
/** A case slower than this counts as a (potential) hang. */
const SLOW_MS = 2000;
/** When set, failing inputs are written there as `<parser>-<case>.bin`. */
const DUMP = Deno.env.get("FUZZ_DUMP");

// ---------------------------------------------------------------------------
// The harness

interface Tally {
  cases: number;
  inputError: number;
  ok: number;
  other: number;
  failures: string[];
}

function hex(bytes: Uint8Array, n = 48): string {
  const head = [...bytes.subarray(0, n)].map((b) =>
    b.toString(16).padStart(2, "0")
  ).join("");
  return bytes.length > n ? `${head}…` : head;
}

/**
 * Run `cases` cases: `make` builds case i's input from its own seeded Rng,
 * `parse` feeds it to the parser. Prints one summary line and fails the test
 * on any exception other than InputError, or on a slow case.
 */
async function fuzz(
  name: string,
  stream: number,
  make: (rng: Rng, i: number) => Uint8Array,
  parse: (input: Uint8Array, rng: Rng) => unknown,
  cases = CASES,
): Promise<Tally> {
  const t: Tally = { cases: 0, inputError: 0, ok: 0, other: 0, failures: [] };
  for (let i = 0; i < cases; i++) {
    const rng = new Rng(SEED + i, stream);
    // A generator bug is the test's own, not a finding: let it propagate.
    const input = make(rng, i);
    const failed = t.failures.length;
    const started = performance.now();
    try {
      await parse(input, rng);
      t.ok++;
    } catch (err) {
      if (err instanceof InputError) t.inputError++;
      else {
        t.other++;
        const e = err as Error;
        t.failures.push(
          `fuzz ${name}: FUZZ_SEED=${SEED} case ${i}: ${e?.name}: ${
            String(e?.message).slice(0, 200)
          }\n  input (${input.length} bytes): ${hex(input)}`,
        );
      }
    }
    const ms = performance.now() - started;
    if (ms > SLOW_MS) {
      t.failures.push(
        `fuzz ${name}: FUZZ_SEED=${SEED} case ${i} took ${
          ms.toFixed(0)
        } ms (a hang?)\n  input (${input.length} bytes): ${hex(input)}`,
      );
    }
    t.cases++;
    if (DUMP && t.failures.length > failed) {
      Deno.writeFileSync(
        join(DUMP, `${name.replace(/\W/g, "_")}-${i}.bin`),
        input,
      );
    }
  }
  console.log(
    `fuzz ${name}: ${t.cases} cases, ${t.inputError} InputError, ${t.ok} ok, ${t.other} other`,
  );
  for (const f of t.failures.slice(0, 20)) console.log(f);
  assert.equal(
    t.failures.length,
    0,
    `fuzz ${name}: ${t.failures.length} failing cases:\n${
      t.failures.slice(0, 10).join("\n")
    }`,
  );
  return t;
}

/** Turn a failed safeParse into the InputError its callers throw. */
function validate(
  v: { safeParse(x: unknown): unknown },
  value: unknown,
): unknown {
  const r = v.safeParse(value) as {
    success: boolean;
    data?: unknown;
    error?: { issues: { path: PropertyKey[]; message: string }[] };
  };
  if (!r.success) throw new InputError(formatZodError(r.error!));
  return r.data;
}

// ---------------------------------------------------------------------------
// Byte-level mutations

const INTERESTING = [
  0,
  1,
  2,
  0x7f,
  0x80,
  0xff,
  0x100,
  0x7fff,
  0xffff,
  0x10000,
  0x7fffffff,
  0x80000000,
  0xfffffffe,
  0xffffffff,
];

function randomBytes(rng: Rng, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = rng.int(256);
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function mutateOnce(rng: Rng, b: Uint8Array, others: Uint8Array[]) {
  const pos = () => rng.int(b.length + 1);
  switch (rng.int(10)) {
    case 0: // truncate
      return b.slice(0, pos());
    case 1: { // flip bits
      const c = b.slice();
      const n = 1 + rng.int(8);
      for (let k = 0; k < n && c.length; k++) {
        c[rng.int(c.length)] ^= 1 << rng.int(8);
      }
      return c;
    }
    case 2: { // overwrite bytes with random values
      const c = b.slice();
      const n = 1 + rng.int(4);
      for (let k = 0; k < n && c.length; k++) {
        c[rng.int(c.length)] = rng.int(256);
      }
      return c;
    }
    case 3: { // insert bytes
      const at = pos();
      const ins = rng.int(2)
        ? randomBytes(rng, 1 + rng.int(16))
        : new Uint8Array(1 + rng.int(64)).fill(rng.int(256));
      return concat(b.subarray(0, at), ins, b.subarray(at));
    }
    case 4: { // delete a range
      const at = pos();
      const end = Math.min(b.length, at + 1 + rng.int(32));
      return concat(b.subarray(0, at), b.subarray(end));
    }
    case 5: { // splice with another seed
      const o = others[rng.int(others.length)];
      return concat(b.subarray(0, pos()), o.subarray(rng.int(o.length + 1)));
    }
    case 6: { // an interesting 16/32/64-bit little-endian integer
      const c = b.slice();
      const width = [2, 4, 8][rng.int(3)];
      if (c.length < width) return c;
      const at = rng.int(c.length - width + 1);
      const dv = new DataView(c.buffer);
      const v = INTERESTING[rng.int(INTERESTING.length)];
      if (width === 2) dv.setUint16(at, v & 0xffff, true);
      else if (width === 4) dv.setUint32(at, v >>> 0, true);
      else dv.setBigUint64(at, BigInt(v) << BigInt(8 * rng.int(5)), true);
      return c;
    }
    case 7: { // duplicate a chunk elsewhere
      const s = pos();
      const chunk = b.slice(s, s + 1 + rng.int(64));
      const at = pos();
      return concat(b.subarray(0, at), chunk, b.subarray(at));
    }
    case 8: { // an interesting byte
      const c = b.slice();
      if (c.length) c[rng.int(c.length)] = [0, 0x7f, 0x80, 0xff][rng.int(4)];
      return c;
    }
    default: // append garbage
      return concat(b, randomBytes(rng, 1 + rng.int(32)));
  }
}

function mutateBytes(
  rng: Rng,
  seed: Uint8Array,
  others: Uint8Array[],
): Uint8Array {
  let b = seed;
  const n = rng.int(2) ? 1 : 1 + rng.int(4);
  for (let k = 0; k < n; k++) b = mutateOnce(rng, b, others);
  return b.length > MAX_LEN ? b.slice(0, MAX_LEN) : b;
}

/** Random bytes, a mutated seed, or random bytes after a seed's first bytes. */
function bytesCase(rng: Rng, seeds: Uint8Array[]): Uint8Array {
  const r = rng.int(20);
  if (r === 0) return randomBytes(rng, rng.int(512));
  const seed = seeds[rng.int(seeds.length)];
  if (r === 1) {
    return concat(
      seed.subarray(0, rng.int(Math.min(seed.length, 64) + 1)),
      randomBytes(rng, rng.int(256)),
    );
  }
  return mutateBytes(rng, seed, seeds);
}

// ---------------------------------------------------------------------------
// JSON-level mutations

const enc = new TextEncoder();
const RAW = "@@RAW@@";

/** A value spliced into the JSON text verbatim (placeholder until then). */
function raw(text: string): string {
  return `${RAW}${text}${RAW}`;
}

function deep(rng: Rng): string {
  const d = 1 + rng.int(rng.int(2) ? 50 : 50000);
  return rng.int(2)
    ? "[".repeat(d) + "]".repeat(d)
    : '{"a":'.repeat(d) + "1" + "}".repeat(d);
}

function randomJsonValue(rng: Rng): unknown {
  switch (rng.int(24)) {
    case 0:
      return null;
    case 1:
      return rng.int(2) === 0;
    case 2:
      return rng.int(201) - 100;
    case 3:
      return 2 ** 53 + 2;
    case 4:
      return -1;
    case 5:
      return 0.5;
    case 6:
      return 1e308;
    case 7:
      return -1e308;
    case 8:
      return raw(
        [
          "1e400",
          "-1e400",
          "1e-400",
          "-0",
          "123456789012345678901234567890",
        ][rng.int(5)],
      );
    case 9:
      return ["NaN", "Infinity", "-Infinity", "nan", "1e999"][rng.int(5)];
    case 10:
      return "";
    case 11:
      return "x".repeat(rng.int(2) ? 10 : 20000);
    case 12:
      return "\u0000\ud800\uffff é 🙂";
    case 13:
      return [];
    case 14:
      return {};
    case 15:
      return Array.from({ length: rng.int(2) ? 3 : 5000 }, (_, i) => i);
    case 16:
      return raw(deep(rng));
    case 17:
      return { kind: "step", a: [1, "2", null] };
    case 18:
      return [
        "z_H",
        "z_L",
        "trm",
        "hrm",
        "float32",
        "header",
        "step",
        "example",
        "readout",
      ][rng.int(9)];
    case 19:
      return "s0.h1.l2";
    case 20:
      return "a".repeat(64);
    case 21:
      return 2 ** 31;
    case 22:
      return rng.int(2) ? 0 : 1;
    default:
      return rng.float() * 1e6;
  }
}

function containers(v: unknown, out: unknown[] = [], depth = 0): unknown[] {
  if (typeof v === "object" && v !== null && depth < 64) {
    out.push(v);
    for (const x of Object.values(v)) containers(x, out, depth + 1);
  }
  return out;
}

function mutateValue(rng: Rng, root: unknown): unknown {
  const nodes = containers(root);
  if (nodes.length === 0) return randomJsonValue(rng);
  const node = nodes[rng.int(nodes.length)] as Record<string, unknown>;
  const keys = Object.keys(node);
  const key = keys.length ? keys[rng.int(keys.length)] : "0";
  switch (rng.int(9)) {
    case 0: // drop a key / element
      if (Array.isArray(node)) node.splice(Number(key), 1);
      else delete node[key];
      break;
    case 1: // change a member's type or value
    case 2:
      node[key] = randomJsonValue(rng);
      break;
    case 3: // a new key (arrays get a new element)
      if (Array.isArray(node)) {
        node.push(randomJsonValue(rng));
        break;
      }
      node[["extra", "__proto__", "constructor", "kind", "0", ""][rng.int(6)]] =
        randomJsonValue(rng);
      break;
    case 4: // numbers get extreme
      for (const k of keys) {
        if (typeof node[k] === "number" && rng.int(2)) {
          node[k] = [-1, 0, 1e308, 2 ** 53 + 2, 0.5, raw("1e400")][rng.int(6)];
        }
      }
      break;
    case 5: // wrap in an array / object
      node[key] = rng.int(2) ? [node[key]] : { v: node[key] };
      break;
    case 6: // empty a container
      if (Array.isArray(node)) node.length = 0;
      else for (const k of keys) delete node[k];
      break;
    case 7: // grow an array
      if (Array.isArray(node)) {
        const n = rng.int(2) ? 2 : 2000;
        const first = typeof node[0] === "object" ? 0 : node[0] ?? 0;
        for (let k = 0; k < n; k++) node.push(k % 2 ? first : k);
      } else node[key] = raw(deep(rng));
      break;
    default: // the whole thing becomes something else
      return randomJsonValue(rng);
  }
  return root;
}

/** Serialize a (mutated) value, splicing in raw text and duplicate keys. */
function toJsonText(rng: Rng, v: unknown): string {
  // JSON.stringify would make "__proto__" an ordinary key anyway; keep it.
  let text = JSON.stringify(v) ?? "null";
  text = text.replace(
    new RegExp(`"${RAW}(.*?)${RAW}"`, "g"),
    (_, s: string) => s,
  );
  if (rng.int(8) === 0 && text.endsWith("}") && text.length > 2) {
    // A duplicate top-level key (JSON.parse keeps the last one).
    const m = [...text.matchAll(/"([A-Za-z_]+)":/g)];
    if (m.length) {
      const k = m[rng.int(m.length)][1];
      text = `${text.slice(0, -1)},"${k}":${
        JSON.stringify(randomJsonValue(rng))?.replace(
          new RegExp(`"${RAW}(.*?)${RAW}"`, "g"),
          (_, s: string) => s,
        )
      }}`;
    }
  }
  return text;
}

/** A mutated JSON document: structural mutations, then maybe byte damage. */
function jsonCase(rng: Rng, seeds: unknown[], seedBytes: Uint8Array[]) {
  const r = rng.int(10);
  if (r === 0) return bytesCase(rng, seedBytes);
  let v = structuredClone(seeds[rng.int(seeds.length)]);
  const n = 1 + rng.int(3);
  for (let k = 0; k < n; k++) v = mutateValue(rng, v);
  const text = toJsonText(rng, v);
  let bytes: Uint8Array = enc.encode(
    text.length > 4 * MAX_LEN ? text.slice(0, 4 * MAX_LEN) : text,
  );
  if (r === 1) bytes = mutateBytes(rng, bytes, seedBytes);
  return bytes;
}

// ---------------------------------------------------------------------------
// Seeds

function sae(): SAE {
  const s = new SAE({ arch: "topk", d_in: 4, d_sae: 8, k: 2 });
  const rng = new Rng(1);
  for (const a of [s.W_enc, s.W_dec, s.b_enc, s.b_dec]) {
    for (let i = 0; i < a.length; i++) a[i] = rng.normal();
  }
  return s;
}

function saePt(): Uint8Array {
  const s = sae();
  return encodeSaePt(s, {
    ...s.cfg,
    format: "trminterp-sae/1",
    latent: "z_H",
    steps: "all",
    trace_digest: "0".repeat(64),
    model_sha256: "1".repeat(64),
    seed: 0,
    training: { lr: new PyFloat(0.001) as unknown as number, epochs: 2 },
  });
}

function npySeeds(): Uint8Array[] {
  return [
    encodeNpy(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]),
    encodeNpy(new Float64Array([1.5, -2]), [2]),
    encodeNpy(new Int32Array([7]), []),
    encodeNpy(new BigInt64Array([1n, -2n, 3n, 4n]), [2, 1, 2]),
    encodeNpy(new Uint8Array([0, 1, 1]), [3], { dtype: "bool" }),
    encodeNpy(new Uint8Array(0), [0, 5]),
    encodeNpy(new Float32Array(64), [4, 16]),
  ];
}

/** An .npy file with an arbitrary header dict text (and version). */
function npyRaw(dict: string, data: Uint8Array, version: number): Uint8Array {
  const text = enc.encode(dict + "\n");
  const pre = version === 1 ? 10 : 12;
  const out = new Uint8Array(pre + text.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, text.length & 0xffff, true);
  else dv.setUint32(8, text.length, true);
  out.set(text, pre);
  out.set(data, pre + text.length);
  return out;
}

const DIMS = [
  "0",
  "1",
  "2",
  "3",
  "4",
  "6",
  "65536",
  "2147483648",
  "4294967296",
  "9007199254740991",
  "9007199254740993",
  "99999999999999999999999999",
  "-1",
  "1.5",
  "'2'",
  "None",
  "()",
  "(2,)",
];
const DESCRS = [
  "<f4",
  "<f8",
  "<i4",
  "<i8",
  "|u1",
  "|b1",
  ">f4",
  "|O",
  "<U4",
  "toString",
  "__proto__",
  "constructor",
  "hasOwnProperty",
  "",
];

/** A structurally mutated .npy header (shape, dtype, nesting, keys). */
function npyStructCase(rng: Rng): Uint8Array {
  const ndim = rng.int(5);
  const dims = Array.from({ length: ndim }, () => DIMS[rng.int(DIMS.length)]);
  let shape = ndim === 1 ? `(${dims[0]},)` : `(${dims.join(", ")})`;
  if (rng.int(10) === 0) {
    const d = 1 + rng.int(rng.int(2) ? 100 : 30000);
    shape = "(".repeat(d) + ")".repeat(d);
  }
  const descr = DESCRS[rng.int(DESCRS.length)];
  const fortran =
    ["False", "True", "0", "'False'"][rng.int(2) ? 0 : rng.int(4)];
  const items = [
    `'descr': '${descr}'`,
    `'fortran_order': ${fortran}`,
    `'shape': ${shape}`,
  ];
  switch (rng.int(8)) {
    case 0:
      items.splice(rng.int(items.length), 1);
      break;
    case 1:
      items.push(items[rng.int(items.length)]);
      break;
    case 2:
      items.push(`'__proto__': ${["(1,)", "'x'", "True"][rng.int(3)]}`);
      break;
    case 3:
      items.push(`'extra': ${shape}`);
      break;
  }
  rng.shuffle(items);
  let dict = `{${items.join(", ")}, }`;
  if (rng.int(6) === 0) dict = dict.slice(0, rng.int(dict.length + 1));
  const dataLen = [0, 1, 4, 8, 12, 24, 48, 96][rng.int(8)];
  const version = [1, 1, 2, 3][rng.int(4)];
  const b = npyRaw(dict, randomBytes(rng, dataLen), version);
  return rng.int(4) === 0 ? mutateBytes(rng, b, [b]) : b;
}

function pickleSeeds(pt: Uint8Array): Uint8Array[] {
  const storage = (dtype: string, n: number) =>
    new PyPersistentId(
      new PyTuple(["storage", new PyGlobal("torch", dtype), "0", "cpu", n]),
    );
  return [
    encodePickle({ a: [1, 2.5, "x", null, true], b: { c: 2n ** 70n } }),
    encodePickle(new PyTuple([1, "a", new PyFloat(2), [], {}])),
    encodePickle(
      new PyReduce(
        new PyGlobal("torch._utils", "_rebuild_tensor_v2"),
        new PyTuple([
          storage("FloatStorage", 6),
          0,
          new PyTuple([2, 3]),
          new PyTuple([3, 1]),
          false,
          new PyReduce(
            new PyGlobal("collections", "OrderedDict"),
            new PyTuple([]),
          ),
        ]),
      ),
    ),
    encodePickle(Array.from({ length: 300 }, (_, i) => `s${i % 280}`)),
    decodeZip(pt).get("sae/data.pkl")!,
  ];
}

const OPS = [
  0x80,
  0x95,
  0x2e,
  0x7d,
  0x5d,
  0x29,
  0x28,
  0x58,
  0x8c,
  0x8d,
  0x4a,
  0x4b,
  0x4d,
  0x8a,
  0x47,
  0x88,
  0x89,
  0x4e,
  0x74,
  0x85,
  0x86,
  0x87,
  0x73,
  0x75,
  0x61,
  0x65,
  0x71,
  0x72,
  0x94,
  0x68,
  0x6a,
  0x63,
  0x93,
  0x52,
  0x51,
  0x62,
  0x6c,
  0x8e,
  0x00,
  0xff,
];

/** A random opcode stream (mostly well-formed operands). */
function pickleOpsCase(rng: Rng): Uint8Array {
  const out: number[] = [0x80, 2];
  const n = rng.int(80);
  const u32 = (v: number) =>
    out.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24);
  const len = () =>
    rng.int(8) === 0 ? INTERESTING[rng.int(INTERESTING.length)] : rng.int(6);
  for (let k = 0; k < n; k++) {
    const op = OPS[rng.int(OPS.length)];
    out.push(op);
    switch (op) {
      case 0x58: {
        const l = len();
        u32(l);
        for (let j = 0; j < Math.min(l, 8); j++) out.push(97 + rng.int(26));
        break;
      }
      case 0x8c:
      case 0x4b:
      case 0x71:
      case 0x68:
      case 0x80:
        out.push(rng.int(8));
        break;
      case 0x8d:
      case 0x95:
        u32(len());
        u32(rng.int(4) ? 0 : 0xffffffff);
        break;
      case 0x4a:
      case 0x72:
      case 0x6a:
        u32(len());
        break;
      case 0x4d:
        out.push(rng.int(256), rng.int(256));
        break;
      case 0x8a: {
        const l = rng.int(12);
        out.push(l);
        for (let j = 0; j < l; j++) out.push(rng.int(256));
        break;
      }
      case 0x47:
        for (let j = 0; j < 8; j++) out.push(rng.int(256));
        break;
      case 0x63: {
        const g = [
          "collections\nOrderedDict\n",
          "torch._utils\n_rebuild_tensor_v2\n",
          "torch\nFloatStorage\n",
          "builtins\neval\n",
          "os\nsystem",
        ][rng.int(5)];
        out.push(...enc.encode(g));
        break;
      }
    }
  }
  if (rng.int(4)) out.push(0x2e);
  return new Uint8Array(out);
}

/** A pickle of nested lists sharing one child per level: 2^depth paths. */
function dagPickle(depth: number): Uint8Array {
  // MARK, [] -> memo 0, the levels, then TUPLE gathers them all.
  const out: number[] = [0x80, 2, 0x28, 0x5d, 0x71, 0];
  for (let d = 1; d <= depth; d++) {
    // [memo[d-1], memo[d-1]] -> memo d
    out.push(0x5d, 0x28, 0x68, d - 1, 0x68, d - 1, 0x65, 0x71, d);
  }
  out.push(0x74, 0x2e);
  return new Uint8Array(out);
}

const STORAGES = [
  "FloatStorage",
  "DoubleStorage",
  "IntStorage",
  "LongStorage",
  "ByteStorage",
  "BoolStorage",
  "HalfStorage",
];
const BIG = [0, 1, 2, 3, 7, 1000, 65536, 2 ** 31, 2 ** 40, 2 ** 53 - 1];

/** A .pt whose tensor has random (often absurd) shape, stride and offset. */
function tensorPtCase(rng: Rng): Uint8Array {
  const pick = () => rng.int(3) ? rng.int(5) : BIG[rng.int(BIG.length)];
  const ndim = rng.int(4);
  const shape = Array.from({ length: ndim }, pick);
  const stride = Array.from(
    { length: rng.int(6) ? ndim : rng.int(4) },
    () => rng.int(3) ? rng.int(4) : pick(),
  );
  const count = rng.int(4) ? rng.int(33) : pick();
  const dtype = STORAGES[rng.int(STORAGES.length)];
  const size = ({ DoubleStorage: 8, LongStorage: 8, FloatStorage: 4 } as Record<
    string,
    number
  >)[dtype] ?? (dtype === "IntStorage" ? 4 : 1);
  const bytes = Math.min(rng.int(4) ? count * size : rng.int(300), 4096);
  const tensor = new PyReduce(
    new PyGlobal("torch._utils", "_rebuild_tensor_v2"),
    new PyTuple([
      new PyPersistentId(
        new PyTuple([
          "storage",
          new PyGlobal("torch", dtype),
          rng.int(8) ? "0" : "1",
          "cpu",
          count,
        ]),
      ),
      rng.int(4) ? 0 : pick(),
      new PyTuple(shape),
      new PyTuple(stride),
      false,
      new PyReduce(new PyGlobal("collections", "OrderedDict"), new PyTuple([])),
    ]),
  );
  const value: PickleValue = rng.int(2) ? { t: tensor, u: tensor } : [tensor];
  return encodeZip([
    { name: "a/data.pkl", data: encodePickle(value) },
    { name: "a/byteorder", data: enc.encode("little") },
    { name: "a/data/0", data: randomBytes(rng, bytes) },
  ]);
}

/** A seed .pt with its pickle or storages mutated and the zip rebuilt (so CRCs pass). */
function rezipCase(rng: Rng, seed: Uint8Array, pkls: Uint8Array[]) {
  const files = decodeZip(seed);
  const entries = [...files].map(([name, data]) => ({ name, data }));
  const e = entries[rng.int(entries.length)];
  const pkl = entries.find((x) => x.name.endsWith("/data.pkl"))!;
  switch (rng.int(4)) {
    case 0:
      pkl.data = pickleOpsCase(rng);
      break;
    case 1:
      pkl.data = rng.int(3) ? mutateBytes(rng, pkl.data, pkls) : dagPickle(
        1 + rng.int(60),
      );
      break;
    case 2:
      e.data = mutateBytes(rng, e.data, pkls);
      break;
    default:
      if (rng.int(2)) entries.splice(rng.int(entries.length), 1);
      else {e.name =
          ["x/data.pkl", "sae/data/9", "sae/byteorder", ""][rng.int(4)];}
  }
  const unique = entries.filter((x, k) =>
    entries.findIndex((y) => y.name === x.name) === k
  );
  return encodeZip(unique, { align: rng.int(2) ? 64 : 0 });
}

function safetensorsSeeds(): Uint8Array[] {
  return [
    encodeSafetensors({
      W: { dtype: "float32", shape: [2, 3], data: new Float32Array(6) },
      b: { dtype: "int64", shape: [], data: new BigInt64Array([7n]) },
      m: { dtype: "bool", shape: [3], data: new Uint8Array([1, 0, 1]) },
    }, { format: "pt" }),
    encodeSafetensors({
      e: { dtype: "float64", shape: [0, 4], data: new Float64Array(0) },
      i: { dtype: "int32", shape: [2], data: new Int32Array([1, -1]) },
    }),
  ];
}

/** Safetensors with a structurally mutated JSON header. */
function safetensorsStructCase(rng: Rng, seeds: Uint8Array[]): Uint8Array {
  const seed = seeds[rng.int(seeds.length)];
  const n = Number(new DataView(seed.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(seed.subarray(8, 8 + n)));
  let v = header;
  for (let k = 1 + rng.int(3); k > 0; k--) v = mutateValue(rng, v);
  const text = toJsonText(rng, v);
  const head = enc.encode(text.length > 4 * MAX_LEN ? "{}" : text);
  const out = new Uint8Array(8 + head.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  return concat(out, seed.subarray(8 + n));
}

// ---------------------------------------------------------------------------
// The tests

Deno.test("fuzz npy: decodeNpy returns or throws InputError", async () => {
  const seeds = npySeeds();
  await fuzz(
    "npy",
    1,
    (rng) => rng.int(3) === 0 ? npyStructCase(rng) : bytesCase(rng, seeds),
    (b) => decodeNpy(b),
  );
});

Deno.test("fuzz npy reader: NpyReader.open/readRows return or throw InputError", async () => {
  const seeds = npySeeds();
  const dir = await Deno.makeTempDir({ prefix: "fuzz_npy_" });
  const path = join(dir, "a.npy");
  try {
    await fuzz(
      "npy reader",
      2,
      (rng) => rng.int(3) === 0 ? npyStructCase(rng) : bytesCase(rng, seeds),
      async (b, rng) => {
        await Deno.writeFile(path, b);
        using r = await NpyReader.open(path);
        const start = rng.int(r.rows + 2);
        await r.readRows(start, rng.int(r.rows + 2));
      },
      Math.ceil(CASES / 3),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fuzz pickle: decodePickle returns or throws InputError", async () => {
  const seeds = pickleSeeds(saePt());
  const hooks = {
    findGlobal: (m: string, n: string) =>
      m === "collections" && n === "OrderedDict"
        ? () => new Map()
        : m === "torch._utils"
        ? (...a: unknown[]) => a
        : undefined,
    persistentLoad: (id: unknown) => id,
  };
  await fuzz(
    "pickle",
    3,
    (rng) => rng.int(3) === 0 ? pickleOpsCase(rng) : bytesCase(rng, seeds),
    (b, rng) => decodePickle(b, rng.int(2) ? hooks : {}),
  );
});

Deno.test("fuzz pt: decodeTorchPt returns or throws InputError", async () => {
  const pt = saePt();
  const seeds = [
    pt,
    encodeTorchPt({
      x: { dtype: "int64", shape: [2], data: new BigInt64Array([1n, 2n]) },
      y: [1, "a", null, true, new PyFloat(2)],
      z: { dtype: "bool", shape: [0], data: new Uint8Array(0) },
    }),
  ];
  const pkls = pickleSeeds(pt);
  await fuzz(
    "pt",
    4,
    (rng) => {
      const r = rng.int(4);
      if (r === 0) return tensorPtCase(rng);
      if (r === 1) return rezipCase(rng, seeds[rng.int(seeds.length)], pkls);
      return bytesCase(rng, seeds);
    },
    (b) => {
      const v = decodeTorchPt(b);
      // sae.pt's own reader may only add InputErrors on top.
      if (v && typeof v === "object" && "state_dict" in v) {
        SAE.decode(b, "sae.pt");
      }
      return v;
    },
  );
});

Deno.test("fuzz safetensors: decodeSafetensors returns or throws InputError", async () => {
  const seeds = safetensorsSeeds();
  await fuzz(
    "safetensors",
    5,
    (rng) =>
      rng.int(2) === 0
        ? safetensorsStructCase(rng, seeds)
        : bytesCase(rng, seeds),
    (b) => decodeSafetensors(b),
  );
});

/**
 * Run `trace` on the tiny fixture into a folder of the test's own, removed
 * afterwards; its trace.jsonl seeds the JSONL fuzzers.
 */
async function withRealTrace(
  fn: (t: { dir: string; lines: string[] }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fuzz_trace_" });
  try {
    const model = join(FIXTURES, "tiny_trm");
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        join(ROOT, "cli.ts"),
        "trace",
        "--run-dir",
        dir,
        "--model",
        model,
        "--inputs",
        join(model, "puzzles.jsonl"),
        // One example: small enough to fuzz whole, so unmutated cases load.
        "--limit",
        "1",
      ],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const text = await Deno.readTextFile(join(dir, "trace.jsonl"));
    await fn({ dir, lines: text.split("\n").filter((l) => l !== "") });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The whole one-example trace: every state row needs its step record, so a sample would not load. */
function traceSample(lines: string[]): string[] {
  return lines;
}

Deno.test("fuzz trace records: TraceHeader/schemas.TraceRecord.safeParse never throw", async () => {
  await withRealTrace(async ({ lines }) => {
    const values = traceSample(lines).map((l) => JSON.parse(l));
    const seedBytes = values.map((v) => enc.encode(JSON.stringify(v)));
    const dec = new TextDecoder();
    await fuzz(
      "trace records",
      6,
      (rng) => jsonCase(rng, values, seedBytes),
      (b) => {
        let v: unknown;
        try {
          v = JSON.parse(dec.decode(b));
        } catch {
          throw new InputError("not JSON");
        }
        schemas.TraceHeader.safeParse(v);
        return validate(schemas.TraceRecord, v);
      },
    );
  });
});

Deno.test("fuzz jsonl: TraceDataset.load of a mutated trace.jsonl returns or throws InputError", async () => {
  await withRealTrace(async ({ dir: traceDir, lines }) => {
    const sample = traceSample(lines);
    const values = sample.map((l) => JSON.parse(l));
    const seedBytes = sample.map((l) => enc.encode(l));
    const dir = await Deno.makeTempDir({ prefix: "fuzz_jsonl_" });
    await Deno.copyFile(join(traceDir, "states.npy"), join(dir, "states.npy"));
    const path = join(dir, "trace.jsonl");
    const whole = enc.encode(sample.join("\n") + "\n");
    try {
      await fuzz(
        "jsonl",
        7,
        (rng) => {
          const r = rng.int(5);
          if (r === 0) return mutateBytes(rng, whole, seedBytes);
          // Line-wise: keep, drop, duplicate or mutate each record.
          const out: Uint8Array[] = [];
          for (let k = 0; k < sample.length; k++) {
            const c = rng.int(12);
            if (c === 0) continue;
            const line = c === 1
              ? jsonCase(rng, [values[k]], seedBytes)
              : c === 2 && k > 0
              ? enc.encode(sample[rng.int(sample.length)])
              : seedBytes[k];
            out.push(line, enc.encode(rng.int(20) ? "\n" : "\r\n"));
          }
          if (rng.int(10) === 0) out.pop(); // no final newline
          if (rng.int(20) === 0) out.push(new Uint8Array([0xff, 0xfe, 0x0a]));
          return concat(...out);
        },
        async (b, rng) => {
          await Deno.writeFile(path, b);
          const ds = await TraceDataset.load(
            rng.int(2) ? path : dir,
            rng.int(4) ? {} : { latents: ["z_H"], steps: "s0.h0.H" },
          );
          if (ds.shape[0] > 0) ds.row(ds.shape[0] - 1);
          // What loads stays inside the header's shapes (issue #10's bounds).
          const h = ds.header, T = h.model.puzzle_emb_len + h.model.seq_len;
          for (const o of ds.meta.outcomes) {
            if (
              o.tokens.length !== h.model.seq_len ||
              o.label.length !== h.model.seq_len ||
              new TextEncoder().encode(o.example).length > 256
            ) throw new Error(`example ${o.example.slice(0, 20)} out of shape`);
          }
          for (const p of ds.meta.position) {
            if (p >= T) throw new Error(`position ${p} of T=${T} loaded`);
          }
          // The bare reader must agree: InputError or records.
          for await (const _ of readJsonl(path));
        },
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("fuzz model.json: readManifest returns or throws InputError", async () => {
  const text = await Deno.readTextFile(
    join(FIXTURES, "tiny_trm", "model.json"),
  );
  const seeds = [JSON.parse(text)];
  const hrm = join(FIXTURES, "tiny_hrm", "model.json");
  try {
    seeds.push(JSON.parse(await Deno.readTextFile(hrm)));
  } catch {
    // The hrm fixture is optional here.
  }
  const seedBytes = seeds.map((s) => enc.encode(JSON.stringify(s)));
  const dir = await Deno.makeTempDir({ prefix: "fuzz_manifest_" });
  try {
    await fuzz(
      "model.json",
      8,
      (rng) => jsonCase(rng, seeds, seedBytes),
      async (b) => {
        await Deno.writeFile(join(dir, "model.json"), b);
        let v: unknown = null;
        try {
          v = JSON.parse(new TextDecoder().decode(b));
        } catch { /* readManifest reports it */ }
        schemas.ModelManifest.safeParse(v); // never throws
        return await readManifest(dir);
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------
// The bounds of issue #10: what a file declares is checked before it is paid for.

/** A zip of deflate entries whose headers declare random, often lying, sizes. */
function zipBombCase(rng: Rng): Uint8Array {
  const entries: RawZipEntry[] = [];
  for (let k = 1 + rng.int(4); k > 0; k--) {
    const real = [0, 1, 100, 4096, 1 << 20, 8 << 20][rng.int(6)];
    const data = deflateRawSync(
      rng.int(2)
        ? new Uint8Array(real)
        : randomBytes(rng, Math.min(real, 4096)),
    );
    const size = rng.int(3)
      ? [0, real, real + 1, real - 1, 2 ** 30, 0xfffffffe][rng.int(6)]
      : rng.int(16 << 20);
    entries.push({
      name: rng.int(4) ? `e${k}` : "e1",
      data: rng.int(8) ? data : mutateBytes(rng, data, [data]),
      method: rng.int(10) ? 8 : 0,
      size: Math.max(0, size),
      crc: rng.int(2) ? undefined : rng.int(2 ** 31),
    });
  }
  return rawZip(entries);
}

Deno.test("fuzz zip bounds: openZip reads never inflate past the declared size, the expected size or the cap", async () => {
  await fuzz(
    "zip bounds",
    9,
    (rng) => rng.int(4) ? zipBombCase(rng) : bytesCase(rng, [zipBombCase(rng)]),
    (b, rng) => {
      const cap = rng.int(2) ? 1 << 20 : rng.int(32 << 20);
      const zip = openZip(b, { maxBytes: cap });
      let inflated = 0;
      for (const name of zip.names()) {
        const e = zip.entry(name)!;
        const expected = rng.int(2)
          ? undefined
          : rng.int(2)
          ? e.size
          : rng.int(1 << 20);
        try {
          const data = zip.read(name, expected);
          if (
            data.length !== e.size ||
            (expected !== undefined && data.length !== expected)
          ) {
            throw new Error(
              `read ${data.length} bytes of ${name}, declared ${e.size}, expected ${expected}`,
            );
          }
          if (e.method === 8) inflated += data.length;
        } catch (err) {
          if (!(err instanceof InputError)) throw err;
        }
      }
      if (inflated > cap) {
        throw new Error(`inflated ${inflated} bytes past the cap ${cap}`);
      }
    },
    Math.ceil(CASES / 6),
  );
});

const NAMES = [
  "net.onnx",
  "../net.onnx",
  "../../../../etc/passwd",
  "/dev/zero",
  "a/net.onnx",
  "..",
  ".",
  "",
  "net\0.onnx",
  "n\\et.onnx",
  "my net.onnx",
  "...",
];
const SIZES = [
  0,
  1,
  2,
  3,
  7,
  16,
  255,
  256,
  4096,
  65536,
  65537,
  1e6,
  1e9,
  2 ** 31,
  2 ** 53,
];

Deno.test("fuzz model.json bounds: a manifest that loads names plain graph files and a schedule under the cap", async () => {
  const text = await Deno.readTextFile(
    join(FIXTURES, "tiny_trm", "model.json"),
  );
  const seed = JSON.parse(text);
  const dir = await Deno.makeTempDir({ prefix: "fuzz_bounds_" });
  try {
    await fuzz(
      "model.json bounds",
      10,
      (rng) => {
        const m = structuredClone(seed);
        for (const role of Object.keys(m.graphs)) {
          if (rng.int(3) === 0) {
            m.graphs[role].file = NAMES[rng.int(NAMES.length)];
          }
        }
        for (const k of ["H_cycles", "L_cycles", "halt_max_steps"]) {
          if (rng.int(2)) m.schedule[k] = SIZES[rng.int(SIZES.length)];
        }
        return enc.encode(JSON.stringify(m));
      },
      async (b) => {
        await Deno.writeFile(join(dir, "model.json"), b);
        const { manifest: m } = await readManifest(dir);
        const s = m.schedule;
        if (
          s.halt_max_steps * s.H_cycles * (s.L_cycles + 1) > MAX_SCHEDULE_STEPS
        ) {
          throw new Error(
            `schedule over the cap accepted: ${JSON.stringify(s)}`,
          );
        }
        for (const g of Object.values(m.graphs)) {
          if (!isPlainName(g.file, true)) {
            throw new Error(`graph file ${g.file} accepted`);
          }
        }
      },
      Math.ceil(CASES / 6),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fuzz jsonl lines: readJsonl yields only lines within maxLineChars, in linear time", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fuzz_lines_" });
  const path = join(dir, "a.jsonl");
  try {
    await fuzz(
      "jsonl lines",
      11,
      (rng) => {
        const lines: string[] = [];
        for (let k = rng.int(6); k > 0; k--) {
          const n = rng.int(3) ? rng.int(64) : rng.int(MAX_LEN);
          lines.push(JSON.stringify({ id: "x".repeat(n) }));
        }
        return enc.encode(
          lines.join(rng.int(4) ? "\n" : "\r\n") + (rng.int(2) ? "\n" : ""),
        );
      },
      async (b, rng) => {
        await Deno.writeFile(path, b);
        const max = rng.int(2) ? 64 : rng.int(MAX_LEN);
        for await (const { value } of readJsonl(path, { maxLineChars: max })) {
          const n = JSON.stringify(value).length;
          if (n > max) {
            throw new Error(`a ${n}-character line passed the ${max} cap`);
          }
        }
      },
      Math.ceil(CASES / 6),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fuzz dataset folders: every loaded example gets the puzzle its all__puzzle_indices range names, or InputError", async () => {
  const { manifest } = await readManifest(join(FIXTURES, "tiny_trm"));
  const dir = await Deno.makeTempDir({ prefix: "fuzz_dataset_" });
  const N = 12, S = manifest.seq_len;
  const tokens = new Int32Array(N * S).fill(2);
  await Deno.writeFile(join(dir, "all__inputs.npy"), encodeNpy(tokens, [N, S]));
  await Deno.writeFile(join(dir, "all__labels.npy"), encodeNpy(tokens, [N, S]));
  await Deno.writeTextFile(join(dir, "dataset.json"), "{}");
  try {
    await fuzz(
      "dataset folders",
      12,
      (rng) => {
        const puzzles = 1 + rng.int(6);
        const cuts = Array.from({ length: puzzles - 1 }, () => rng.int(N + 1))
          .sort((a, b) => a - b);
        let starts = [0, ...cuts, N];
        if (rng.int(3) === 0) {
          starts = starts.map((v) => rng.int(4) ? v : v + rng.int(5) - 2);
        }
        if (rng.int(8) === 0) starts.pop();
        const ids = Array.from(
          { length: puzzles },
          () => rng.int(4) ? rng.int(3) : rng.int(9) - 3,
        );
        return enc.encode(JSON.stringify({ starts, ids }));
      },
      async (b, rng) => {
        const { starts, ids } = JSON.parse(new TextDecoder().decode(b));
        await Deno.writeFile(
          join(dir, "all__puzzle_indices.npy"),
          encodeNpy(Int32Array.from(starts), [starts.length]),
        );
        await Deno.writeFile(
          join(dir, "all__puzzle_identifiers.npy"),
          encodeNpy(Int32Array.from(ids), [ids.length]),
        );
        const limit = rng.int(N) + 1;
        const set = await loadPuzzles(
          dir,
          manifest,
          (n) => selectExamples(n, limit, rng.int(100)),
        );
        set.puzzles.forEach((p, k) => {
          const i = set.indices[k];
          const puzzle = starts.findIndex((s: number, q: number) =>
            q + 1 < starts.length && s <= i && i < starts[q + 1]
          );
          if (puzzle < 0 || p.puzzleIdentifier !== ids[puzzle]) {
            throw new Error(
              `example ${i} got puzzle id ${p.puzzleIdentifier}, its range names ${
                ids[puzzle]
              }`,
            );
          }
        });
      },
      Math.ceil(CASES / 10),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
