/**
 * The state store: the states.npy files of a run's parts, each checked
 * against the sha256 and shape its header pins, read row by row through an
 * index from the run's kept rows to (part, row in that part's file).
 *
 * @module
 */
import { dirname } from "node:path";
import { InputError, StepError } from "../errors.ts";
import { sha256File } from "../io/atomic.ts";
import { NpyReader } from "../io/npy.ts";
import { checkRegular, confined } from "../io/paths.ts";
import { checkBlocks, type TracePart, type TraceRun } from "./trace_run.ts";

/** Reads rows from the states.npy files of a run's parts. */
export class StateStore {
  #readers: NpyReader[];
  #partOf: Uint16Array;
  #npyRow: Int32Array;
  #dim: number;
  #half: boolean;

  constructor(
    readers: NpyReader[],
    partOf: Uint16Array,
    npyRow: Int32Array,
    dim: number,
    half: boolean,
  ) {
    this.#readers = readers;
    this.#partOf = partOf;
    this.#npyRow = npyRow;
    this.#dim = dim;
    this.#half = half;
  }

  /** Copy rows `ix` into `out`, reading runs of consecutive rows at once. */
  read(ix: ArrayLike<number>, out: Float32Array): void {
    const D = this.#dim, part = this.#partOf, row = this.#npyRow;
    for (let i = 0; i < ix.length;) {
      let j = i + 1;
      while (
        j < ix.length && j - i < 4096 && part[ix[j]] === part[ix[i]] &&
        row[ix[j]] === row[ix[j - 1]] + 1
      ) j++;
      const dest = out.subarray(i * D, j * D);
      const reader = this.#readers[part[ix[i]]];
      if (this.#half) {
        const half = new Float16Array(dest.length);
        reader.readRowsInto(row[ix[i]], new Uint8Array(half.buffer));
        dest.set(half);
      } else {
        reader.readRowsInto(
          row[ix[i]],
          new Uint8Array(dest.buffer, dest.byteOffset, dest.byteLength),
        );
      }
      i = j;
    }
  }

  /** Every row, in order. */
  readAll(): Float32Array {
    const n = this.#npyRow.length;
    const out = new Float32Array(n * this.#dim);
    const chunk = 4096;
    const ix = new Int32Array(chunk);
    for (let s = 0; s < n; s += chunk) {
      const m = Math.min(chunk, n - s);
      for (let k = 0; k < m; k++) ix[k] = s + k;
      this.read(ix.subarray(0, m), out.subarray(s * this.#dim));
    }
    return out;
  }

  close(): void {
    for (const r of this.#readers) r[Symbol.dispose]();
  }
}

/**
 * Check each part's blocks and open its states.npy. Every row is in
 * states.npy (checked against the header) or in the file as base64, so a
 * header cannot make us allocate more than the files hold.
 */
export async function openParts(run: TraceRun): Promise<NpyReader[]> {
  const header = run.header;
  const bytes = header.state_dim * (header.dtype === "float16" ? 2 : 4);
  const readers: NpyReader[] = [];
  try {
    for (const part of run.parts) {
      checkBlocks(part);
      if (header.states === "npy") readers.push(await openStates(part));
      else {
        const size = (await Deno.stat(part.tracePath)).size;
        if (part.header.rows * bytes > size) {
          throw new InputError(
            `${part.tracePath}: the header claims ${part.header.rows} rows, more than the file holds; the trace is corrupt, re-run trace`,
          );
        }
      }
    }
  } catch (e) {
    readers.forEach((r) => r[Symbol.dispose]());
    throw e;
  }
  return readers;
}

/** The error for a part whose fix is tracing it again (its shard, if one). */
function retrace(part: TracePart, problem: string): StepError {
  const h = part.header;
  return new StepError(
    `${problem}; {fix} again`,
    "trace",
    h.shard
      ? {
        runDir: dirname(dirname(part.dir)),
        shard: `${h.shard.index}/${h.shard.count}`,
      }
      : { runDir: part.dir },
  );
}

/** Open a part's states.npy after checking it is the file its header pins. */
async function openStates(part: TracePart): Promise<NpyReader> {
  const h = part.header;
  const path = await confined(part.dir, "states.npy");
  if (!h.states_npy) {
    throw retrace(
      part,
      `${part.tracePath}: the header says the states are in states.npy but pins none; the trace is corrupt`,
    );
  }
  // The bytes are checked against each example's states_sha256 as the
  // records are scanned (states_check.ts), in the one pass over the file.
  try {
    checkRegular(path, await Deno.lstat(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw retrace(
        part,
        `no states.npy next to ${part.tracePath}, which keeps its states there`,
      );
    }
    throw e;
  }
  const r = await NpyReader.open(path);
  if (
    r.dtype !== h.dtype || r.shape.length !== 2 || r.shape[0] !== h.rows ||
    r.shape[1] !== h.state_dim
  ) {
    r[Symbol.dispose]();
    throw retrace(
      part,
      `${path} holds ${r.dtype} [${r.shape}], not ${h.dtype} [${h.rows}, ${h.state_dim}] as its header says`,
    );
  }
  return r;
}

/**
 * After a states mismatch (see states_check.ts): when states.npy is not even
 * the file its header pins, say that, the likelier story. Hashes the file,
 * so only on that failure path.
 */
export async function checkPin(part: TracePart): Promise<void> {
  const h = part.header;
  if (!h.states_npy) return;
  const path = await confined(part.dir, "states.npy");
  const sha = await sha256File(path);
  if (sha !== h.states_npy.sha256) {
    throw retrace(
      part,
      `${path} is not the states.npy its trace.jsonl pins (sha256 ${
        sha.slice(0, 12)
      }…, header ${
        h.states_npy.sha256.slice(0, 12)
      }…): it was changed or replaced`,
    );
  }
}
