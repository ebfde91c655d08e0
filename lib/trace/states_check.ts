/**
 * Binding the states to the digest (v0-spec §3.6): each `example` record
 * carries the sha256 of that example's states, in step-record order, and the
 * digest covers the example records. {@linkcode ExampleStates} hashes the
 * states a reader actually reads, as the step records pass, and compares
 * them with each example record when it arrives; it also checks that every
 * example has exactly one example record and that a part holds as many as
 * its header selected.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { InputError } from "../errors.ts";
import { Sha256 } from "../io/atomic.ts";
import type { NpyReader } from "../io/npy.ts";
import type { TraceExample, TraceStep } from "../schema/mod.ts";

/** The states read do not match an example record's `states_sha256`. */
export class StatesMismatch extends InputError {}

/**
 * The states of one trace part's examples, hashed as their step records
 * pass: from the base64 `data` of an inline trace, or from states.npy (read
 * once, a step record's rows at a time: this replaces a separate hash of
 * the whole file).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Buffer } from "node:buffer";
 * import { sha256Hex } from "../io/atomic.ts";
 * import { ExampleStates } from "./states_check.ts";
 * const rows = new Uint8Array([1, 2, 3, 4]);
 * const data = Buffer.from(rows).toString("base64");
 * const step = { kind: "step", example: "p0", address: "s0.h0.H", row: 0, rows: 1, norm: 0, delta: 0, data } as const;
 * const check = new ExampleStates("trace.jsonl", null, 4, 1);
 * check.step(step, "trace.jsonl:2");
 * check.example({ example: "p0", states_sha256: sha256Hex(rows) } as never, "trace.jsonl:3");
 * check.finish();
 * const bad = new ExampleStates("trace.jsonl", null, 4, 1);
 * bad.step(step, "trace.jsonl:2");
 * assert.throws(
 *   () => bad.example({ example: "p0", states_sha256: "0".repeat(64) } as never, "trace.jsonl:3"),
 *   /do not match the states_sha256 of its example record/,
 * );
 * ```
 */
export class ExampleStates {
  #path: string;
  #reader: NpyReader | null;
  #rowBytes: number;
  #expected: number;
  #open = new Map<string, Sha256>();
  #done = new Set<string>();
  #readAhead: number;
  #cache = new Uint8Array(0);
  #cacheRow = 0;
  #cacheRows = 0;

  /**
   * `path`: the part's trace.jsonl, for messages; `reader`: its states.npy,
   * or null for inline states; `rowBytes`: bytes of one stored row;
   * `expected`: how many examples the part's header selected;
   * `readAhead`: rows read at once (a batch's rows of one step lie
   * together in states.npy, and their step records follow one another).
   */
  constructor(
    path: string,
    reader: NpyReader | null,
    rowBytes: number,
    expected: number,
    readAhead = 1,
  ) {
    this.#path = path;
    this.#reader = reader;
    this.#rowBytes = rowBytes;
    this.#expected = expected;
    this.#readAhead = Math.max(1, Math.min(readAhead, 2 ** 22 / rowBytes | 0));
  }

  /** Hash a step record's states (any step, kept by a filter or not). */
  step(rec: TraceStep, where: string): void {
    if (this.#done.has(rec.example)) {
      throw new InputError(
        `${where}: a step record of "${
          rec.example.slice(0, 64)
        }" follows its example record; the trace was edited: re-run trace`,
      );
    }
    let hash = this.#open.get(rec.example);
    if (!hash) this.#open.set(rec.example, hash = new Sha256());
    if (!this.#reader) {
      hash.update(Buffer.from(rec.data ?? "", "base64"));
      return;
    }
    hash.update(this.#rows(rec.row, rec.rows));
  }

  /** Rows `row .. row + rows` of states.npy, through the read-ahead cache. */
  #rows(row: number, rows: number): Uint8Array {
    const rb = this.#rowBytes;
    if (row < this.#cacheRow || row + rows > this.#cacheRow + this.#cacheRows) {
      const total = this.#reader!.rows;
      const want = Math.max(rows, Math.min(this.#readAhead, total - row));
      if (this.#cache.length < want * rb) {
        this.#cache = new Uint8Array(want * rb);
      }
      this.#reader!.readRowsInto(row, this.#cache.subarray(0, want * rb));
      this.#cacheRow = row;
      this.#cacheRows = want;
    }
    const at = (row - this.#cacheRow) * rb;
    return this.#cache.subarray(at, at + rows * rb);
  }

  /** Compare an example record's `states_sha256` with the states hashed. */
  example(rec: TraceExample, where: string): void {
    const id = JSON.stringify(rec.example.slice(0, 64));
    if (this.#done.has(rec.example)) {
      throw new InputError(
        `${where}: example ${id} has a second example record; the trace was edited: re-run trace`,
      );
    }
    this.#done.add(rec.example);
    const got = (this.#open.get(rec.example) ?? new Sha256()).hex();
    this.#open.delete(rec.example);
    if (got !== rec.states_sha256) {
      throw new StatesMismatch(
        `${where}: the states of example ${id} ${
          this.#reader ? "in states.npy" : "in the step records"
        } do not match the states_sha256 of its example record (sha256 ${
          got.slice(0, 12)
        }…, record ${
          rec.states_sha256.slice(0, 12)
        }…): the states were changed or replaced; re-run trace`,
      );
    }
  }

  /** After the part's last record: every example complete, none missing. */
  finish(): void {
    for (const id of this.#open.keys()) {
      throw new InputError(
        `${this.#path}: example ${
          JSON.stringify(id.slice(0, 64))
        } has step records but no example record; the trace is incomplete: re-run trace`,
      );
    }
    if (this.#done.size !== this.#expected) {
      throw new InputError(
        `${this.#path}: holds ${this.#done.size} example records, but its header selected ${this.#expected} examples; the trace is incomplete or was edited: re-run trace`,
      );
    }
  }
}
