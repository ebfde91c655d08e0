/**
 * A minimal pickle writer and a safe pickle reader: a small VM that handles
 * exactly the opcodes `torch.save` emits (protocols 2–4) and resolves globals
 * only through a caller-supplied whitelist, so no arbitrary code can run.
 *
 * Python values map to JS as: dict → `Map`, list → array, tuple → frozen array,
 * int → number (bigint beyond 2^53), float → number, str → string,
 * True/False → boolean, None → null.
 *
 * @module
 */

import { InputError } from "../errors.ts";

/**
 * A Python float that must stay a float even when its value is integral.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodePickle, encodePickle, PyFloat } from "./pickle.ts";
 * // 2.0 stays a float: BINFLOAT (G), not an int.
 * const bytes = encodePickle(new PyFloat(2));
 * assert.ok(bytes.includes(0x47));
 * assert.equal(decodePickle(bytes), 2);
 * ```
 */
export class PyFloat {
  /**
   * Wrap `value`.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { PyFloat } from "./pickle.ts";
   * assert(new PyFloat(1).value === 1);
   * ```
   */
  constructor(readonly value: number) {}
}

/**
 * A Python tuple (the writer's counterpart of the reader's frozen arrays).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodePickle, encodePickle, PyTuple } from "./pickle.ts";
 * const back = decodePickle(encodePickle(new PyTuple([1, "a"])));
 * assert.deepEqual(back, [1, "a"]);
 * assert.ok(Object.isFrozen(back));
 * ```
 */
export class PyTuple {
  /**
   * Wrap `items`.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { PyTuple } from "./pickle.ts";
   * assert(new PyTuple([1, 2]).items.length === 2);
   * ```
   */
  constructor(readonly items: PickleValue[]) {}
}

/**
 * A reference to a Python global, `module.name`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodePickle, encodePickle, PyGlobal } from "./pickle.ts";
 * const seen: string[] = [];
 * decodePickle(encodePickle(new PyGlobal("collections", "OrderedDict")), {
 *   findGlobal: (m, n) => (seen.push(`${m}.${n}`), "ok"),
 * });
 * assert.deepEqual(seen, ["collections.OrderedDict"]);
 * ```
 */
export class PyGlobal {
  /**
   * Name a global.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { PyGlobal } from "./pickle.ts";
   * assert(new PyGlobal("collections", "OrderedDict").name === "OrderedDict");
   * ```
   */
  constructor(readonly module: string, readonly name: string) {}
}

/**
 * `callable(*args)` as the unpickler will evaluate it (REDUCE).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodePickle, encodePickle, PyGlobal, PyReduce, PyTuple } from "./pickle.ts";
 * const bytes = encodePickle(new PyReduce(new PyGlobal("m", "f"), new PyTuple([3])));
 * const out = decodePickle(bytes, {
 *   findGlobal: () => (x: number) => x * 2,
 * });
 * assert.equal(out, 6);
 * ```
 */
export class PyReduce {
  /**
   * Describe a call.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { PyGlobal, PyReduce, PyTuple } from "./pickle.ts";
   * const od = new PyReduce(new PyGlobal("collections", "OrderedDict"), new PyTuple([]));
   * assert(od.args.items.length === 0);
   * ```
   */
  constructor(readonly callable: PyGlobal, readonly args: PyTuple) {}
}

/**
 * A persistent id (BINPERSID): the unpickler's `persistent_load` resolves it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodePickle, encodePickle, PyPersistentId, PyTuple } from "./pickle.ts";
 * const bytes = encodePickle(new PyPersistentId(new PyTuple(["storage", "0"])));
 * assert.equal(decodePickle(bytes, { persistentLoad: (pid) => `loaded ${(pid as string[])[1]}` }), "loaded 0");
 * ```
 */
export class PyPersistentId {
  /**
   * Wrap the id value.
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { PyPersistentId, PyTuple } from "./pickle.ts";
   * assert(new PyPersistentId(new PyTuple(["storage"])).id instanceof PyTuple);
   * ```
   */
  constructor(readonly id: PickleValue) {}
}

/** Values the writer can encode. Plain objects and `Map`s become dicts. */
export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | PyFloat
  | PyTuple
  | PyGlobal
  | PyReduce
  | PyPersistentId
  | PickleValue[]
  | Map<PickleValue, PickleValue>
  | { [key: string]: PickleValue };

const enc = new TextEncoder();

class ByteSink {
  #buf = new Uint8Array(256);
  #len = 0;
  #ensure(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }
  byte(...bs: number[]): void {
    this.#ensure(bs.length);
    for (const b of bs) this.#buf[this.#len++] = b;
  }
  bytes(b: Uint8Array): void {
    this.#ensure(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
  }
  u32(n: number): void {
    this.byte(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
  }
  result(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

function longBytes(v: bigint): number[] {
  // Minimal little-endian two's complement, as Python's encode_long.
  const out: number[] = [];
  let x = v;
  for (;;) {
    const b = Number(x & 0xffn);
    out.push(b);
    x >>= 8n;
    if ((x === 0n && (b & 0x80) === 0) || (x === -1n && (b & 0x80) !== 0)) {
      break;
    }
  }
  return out;
}

/**
 * Encode a value as a protocol-2 pickle, the way `torch.save` writes its
 * `data.pkl`. Strings and globals are memoized so repeats become back-references.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodePickle, encodePickle } from "./pickle.ts";
 * const bytes = encodePickle({ a: [1, 2.5, "x", null, true] });
 * const back = decodePickle(bytes) as Map<string, unknown>;
 * assert((back.get("a") as unknown[])[1] === 2.5);
 * ```
 */
export function encodePickle(value: PickleValue): Uint8Array {
  const out = new ByteSink();
  const memo = new Map<string, number>();
  const put = (key: string) => {
    const i = memo.size;
    memo.set(key, i);
    if (i < 256) out.byte(0x71, i); // BINPUT
    else {
      out.byte(0x72); // LONG_BINPUT
      out.u32(i);
    }
  };
  const get = (key: string): boolean => {
    const i = memo.get(key);
    if (i === undefined) return false;
    if (i < 256) out.byte(0x68, i); // BINGET
    else {
      out.byte(0x6a); // LONG_BINGET
      out.u32(i);
    }
    return true;
  };
  const int = (v: number | bigint) => {
    if (typeof v === "number" && v >= 0 && v < 256) out.byte(0x4b, v); // BININT1
    else if (typeof v === "number" && v >= 0 && v < 65536) {
      out.byte(0x4d, v & 0xff, v >> 8); // BININT2
    } else if (typeof v === "number" && v >= -(2 ** 31) && v < 2 ** 31) {
      out.byte(0x4a); // BININT
      out.u32(v >>> 0);
    } else {
      const bs = longBytes(BigInt(v));
      out.byte(0x8a, bs.length, ...bs); // LONG1
    }
  };
  const tuple = (items: PickleValue[]) => {
    if (items.length === 0) return out.byte(0x29); // EMPTY_TUPLE
    if (items.length > 3) out.byte(0x28); // MARK
    for (const it of items) emit(it);
    out.byte(items.length > 3 ? 0x74 : 0x84 + items.length); // TUPLE or TUPLE1..3
  };
  const emit = (v: PickleValue): void => {
    if (v === null) out.byte(0x4e);
    else if (v === true) out.byte(0x88);
    else if (v === false) out.byte(0x89);
    else if (typeof v === "bigint") int(v);
    else if (typeof v === "number") {
      // Integral doubles beyond 2^53 are not exact ints: keep them floats.
      if (Number.isSafeInteger(v) && !Object.is(v, -0)) int(v);
      else emit(new PyFloat(v));
    } else if (v instanceof PyFloat) {
      const b = new Uint8Array(9);
      b[0] = 0x47; // BINFLOAT, big-endian
      new DataView(b.buffer).setFloat64(1, v.value, false);
      out.bytes(b);
    } else if (typeof v === "string") {
      if (get(`s:${v}`)) return;
      const b = enc.encode(v);
      out.byte(0x58); // BINUNICODE
      out.u32(b.length);
      out.bytes(b);
      put(`s:${v}`);
    } else if (v instanceof PyTuple) tuple(v.items);
    else if (v instanceof PyGlobal) {
      const key = `g:${v.module}\n${v.name}`;
      if (get(key)) return;
      out.byte(0x63); // GLOBAL
      out.bytes(enc.encode(`${v.module}\n${v.name}\n`));
      put(key);
    } else if (v instanceof PyReduce) {
      emit(v.callable);
      tuple(v.args.items);
      out.byte(0x52); // REDUCE
    } else if (v instanceof PyPersistentId) {
      emit(v.id);
      out.byte(0x51); // BINPERSID
    } else if (Array.isArray(v)) {
      out.byte(0x5d); // EMPTY_LIST
      if (v.length === 0) return;
      out.byte(0x28);
      for (const it of v) emit(it);
      out.byte(0x65); // APPENDS
    } else {
      const entries = v instanceof Map ? [...v.entries()] : Object.entries(v);
      out.byte(0x7d); // EMPTY_DICT
      if (entries.length === 0) return;
      out.byte(0x28);
      for (const [k, val] of entries) {
        emit(k);
        emit(val);
      }
      out.byte(0x75); // SETITEMS
    }
  };
  out.byte(0x80, 2); // PROTO 2
  emit(value);
  out.byte(0x2e); // STOP
  return out.result();
}

/** Hooks that give globals and persistent ids meaning while unpickling. */
export interface UnpickleHooks {
  /**
   * Resolve `module.name`; return `undefined` to reject it. A returned function
   * is what REDUCE calls with the argument tuple's items.
   */
  findGlobal?: (module: string, name: string) => unknown;
  /** Resolve a BINPERSID id (torch: a storage reference). */
  persistentLoad?: (id: unknown) => unknown;
}

function fail(problem: string): never {
  throw new InputError(
    `unreadable pickle: ${problem}; re-save the file with torch.save`,
  );
}

/**
 * Safely unpickle `bytes`. Only the opcodes torch.save uses are accepted, and
 * globals resolve only through `hooks.findGlobal`; anything else throws
 * `InputError`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodePickle, encodePickle, PyTuple } from "./pickle.ts";
 * const v = decodePickle(encodePickle(new PyTuple([1, "a"]))) as readonly unknown[];
 * assert(Object.isFrozen(v) && v[1] === "a");
 * ```
 */
export function decodePickle(
  bytes: Uint8Array,
  hooks: UnpickleHooks = {},
): unknown {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dec = new TextDecoder("utf-8", { fatal: true });
  let pos = 0;
  let stack: unknown[] = [];
  const metastack: unknown[][] = [];
  const memo = new Map<number, unknown>();

  const need = (n: number) => {
    if (n < 0 || pos + n > bytes.length) fail("truncated data");
  };
  const u8 = () => (need(1), bytes[pos++]);
  const u16 = () => (need(2), pos += 2, dv.getUint16(pos - 2, true));
  const u32 = () => (need(4), pos += 4, dv.getUint32(pos - 4, true));
  const u64 = () => {
    need(8);
    pos += 8;
    const v = dv.getBigUint64(pos - 8, true);
    if (v > BigInt(bytes.length)) fail("length field exceeds the data");
    return Number(v);
  };
  const str = (n: number) => {
    need(n);
    pos += n;
    try {
      return dec.decode(bytes.subarray(pos - n, pos));
    } catch {
      return fail("invalid UTF-8 in a string");
    }
  };
  const line = () => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail("unterminated GLOBAL name");
    return str(end - pos + 1).slice(0, -1);
  };
  const pop = () => {
    if (stack.length === 0) fail("stack underflow");
    return stack.pop();
  };
  const top = () => {
    if (stack.length === 0) fail("stack underflow");
    return stack[stack.length - 1];
  };
  const popMark = () => {
    const items = stack;
    const prev = metastack.pop();
    if (!prev) fail("MARK missing");
    stack = prev;
    return items;
  };
  const tuple = (items: unknown[]) => Object.freeze(items);
  const resolve = (module: string, name: string) => {
    const g = hooks.findGlobal?.(module, name);
    if (g === undefined) {
      throw new InputError(
        `pickle refers to ${module}.${name}, which is not allowed; only plain tensors, dicts, lists and scalars can be loaded`,
      );
    }
    return g;
  };
  const setItems = (d: unknown, items: unknown[]) => {
    if (!(d instanceof Map)) fail("SETITEM(S) on a non-dict");
    if (items.length % 2) fail("odd number of SETITEMS values");
    for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
  };
  const appendItems = (l: unknown, items: unknown[]) => {
    if (!Array.isArray(l) || Object.isFrozen(l)) {
      fail("APPEND(S) on a non-list");
    }
    // A loop, not push(...items): spreading a long list overflows the call stack.
    for (const it of items) l.push(it);
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail("unsupported protocol");
        break;
      case 0x95: // FRAME: a hint for buffered readers; contents follow inline.
        u64();
        break;
      case 0x2e: // STOP
        if (stack.length !== 1 || metastack.length) {
          fail("stack not empty at STOP");
        }
        return stack[0];
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(tuple([]));
        break;
      case 0x28: // MARK
        metastack.push(stack);
        stack = [];
        break;
      case 0x58: // BINUNICODE
        stack.push(str(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(str(u8()));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(str(u64()));
        break;
      case 0x4a: // BININT
        need(4);
        pos += 4;
        stack.push(dv.getInt32(pos - 4, true));
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: { // LONG1
        const n = u8();
        need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[pos + i]);
        if (n > 0 && bytes[pos + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        pos += n;
        const asNum = Number(v);
        stack.push(Number.isSafeInteger(asNum) ? asNum : v);
        break;
      }
      case 0x47: // BINFLOAT
        need(8);
        pos += 8;
        stack.push(dv.getFloat64(pos - 8, false));
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x74: // TUPLE
        { // popMark swaps `stack`, so read it only after the call.
          const items = tuple(popMark());
          stack.push(items);
        }
        break;
      case 0x85: // TUPLE1
      case 0x86: // TUPLE2
      case 0x87: { // TUPLE3
        const n = op - 0x84;
        if (stack.length < n) fail("stack underflow");
        stack.push(tuple(stack.splice(stack.length - n, n)));
        break;
      }
      case 0x73: { // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x61: { // APPEND
        const v = pop();
        appendItems(top(), [v]);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: { // LONG_BINGET
        const i = op === 0x68 ? u8() : u32();
        if (!memo.has(i)) fail(`memo key ${i} is missing`);
        stack.push(memo.get(i));
        break;
      }
      case 0x63: { // GLOBAL
        const module = line();
        stack.push(resolve(module, line()));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== "string" || typeof name !== "string") {
          fail("STACK_GLOBAL needs two strings");
        }
        stack.push(resolve(module, name));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop();
        const fn = pop();
        if (typeof fn !== "function") fail("REDUCE target is not callable");
        if (!Array.isArray(args)) fail("REDUCE arguments are not a tuple");
        // The whitelisted callables take a handful of arguments.
        if (args.length > 16) fail("REDUCE with too many arguments");
        stack.push(fn(...args));
        break;
      }
      case 0x51: { // BINPERSID
        const id = pop();
        if (!hooks.persistentLoad) {
          fail("persistent ids are not supported here");
        }
        stack.push(hooks.persistentLoad(id));
        break;
      }
      case 0x62: { // BUILD
        const state = pop();
        const obj = top();
        // Only dicts carry extra state in torch files (state_dict._metadata);
        // it is an attribute, not an item, so it is dropped.
        if (
          !(obj instanceof Map) || !(state instanceof Map || state === null)
        ) {
          fail("BUILD is only supported on dicts");
        }
        break;
      }
      default:
        fail(
          `opcode 0x${op.toString(16).padStart(2, "0")} at byte ${
            pos - 1
          } is not supported`,
        );
    }
  }
}
