/**
 * The row index: one pass over a run's trace files (`scanTrace`) that checks
 * every record and yields, for each kept state row, its example, step,
 * latent and position, plus the example and readout records and the trace
 * digest; and the queries over that index.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { parseAddress, stepIndex, StepSelector } from "../model/address.ts";
import { InputError } from "../errors.ts";
import { readJsonl } from "../io/jsonl.ts";
import { IGNORE_LABEL, MAX_ID_BYTES } from "./inputs.ts";
import type { Latent } from "../model/rollout.ts";
import {
  formatZodError,
  schemas,
  type TraceExample,
  type TraceHeader,
  type TraceReadout,
  type TraceStep,
} from "../schema/mod.ts";
import { LATENT_ORDER, TraceDigest, traceSettings } from "./layout.ts";
import { openRun, type TraceRun } from "./trace_run.ts";
import { checkPin, openParts, StateStore } from "./state_store.ts";
import { ExampleStates, StatesMismatch } from "./states_check.ts";

/** Per-row metadata, stored column-wise so large traces stay compact. */
export interface TraceMeta {
  /**
   * The trace header; for a sharded run, the shards' common header with
   * `shard` null, `rows` and `blocks` over all shards and `states_npy` null.
   */
  header: TraceHeader;
  /** Example ids; `exampleOf[i]` indexes into this. */
  examples: string[];
  /** For each row, the index into `examples`. */
  exampleOf: Int32Array;
  /** For each row, the global step index `t`. */
  t: Int32Array;
  /** For each row, 0 for z_H and 1 for z_L. */
  latentOf: Uint8Array;
  /** For each row, the position within the example (prefix first). */
  position: Int32Array;
  /** Step address text by `t`. */
  addressOf: Map<number, string>;
  /** `example` records, in trace order. */
  outcomes: TraceExample[];
  /** `readout` records, in file order. */
  readouts: TraceReadout[];
  /** Where the states came from. */
  source: "states.npy" | "inline";
  /** The trace digest (v0-spec §3.6): the same for any folder, shard count and storage. */
  digest: string;
  /** The run dir, which the header's paths are relative to. */
  runDir: string;
  /** The trace.jsonl files read: one, or one per shard in shard order. */
  files: string[];
}

/** Filters for {@linkcode TraceDataset.load}. */
export interface TraceFilter {
  /** Keep only these latents. */
  latents?: Latent[];
  /** Keep only steps matching this selector. */
  steps?: string;
  /** Keep the readout records in `meta.readouts` (default true). */
  readouts?: boolean;
}

const LATENTS = LATENT_ORDER;

/** A query over a trace's rows, for {@linkcode TraceDataset.select}. */
export interface RowQuery {
  /** Only this latent. */
  latent?: Latent;
  /** Only steps matching this selector (text or parsed). */
  steps?: string | StepSelector;
  /** Only these positions (prefix first). */
  positions?: readonly number[];
  /** Only these example ids. */
  examples?: Iterable<string>;
}

/** Row indices of `meta` matching `q`, in trace order. */
export function selectRows(
  meta: TraceMeta,
  n: number,
  q: RowQuery,
): Int32Array {
  const sel = typeof q.steps === "string"
    ? StepSelector.parse(q.steps)
    : q.steps;
  const okT = new Set<number>();
  for (const [t, text] of meta.addressOf) {
    if (!sel || sel.matches(parseAddress(text))) okT.add(t);
  }
  const pos = q.positions ? new Set(q.positions) : null;
  let okEx: Uint8Array | null = null;
  if (q.examples) {
    okEx = new Uint8Array(meta.examples.length);
    const want = new Set(q.examples);
    meta.examples.forEach((id, i) => okEx![i] = want.has(id) ? 1 : 0);
  }
  const lat = q.latent === undefined ? -1 : LATENTS.indexOf(q.latent);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    if (lat >= 0 && meta.latentOf[i] !== lat) continue;
    if (!okT.has(meta.t[i])) continue;
    if (pos && !pos.has(meta.position[i])) continue;
    if (okEx && !okEx[meta.exampleOf[i]]) continue;
    out.push(i);
  }
  return Int32Array.from(out);
}

/** What one pass over a run's trace files yields. */
export interface Scan {
  /** trace.jsonl, or the shards/ folder. */
  path: string;
  /** Kept rows. */
  n: number;
  /** State width. */
  dim: number;
  /** Row metadata. */
  meta: TraceMeta;
  /** The states.npy files, when the states are there. */
  store: StateStore | null;
  /** The kept rows decoded from the inline data, otherwise. */
  inline: Float32Array | null;
}

/** For each (example, t), the first row of that step record. */
export function firstRows(meta: TraceMeta, n: number): Map<string, number> {
  const start = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const key = `${meta.examples[meta.exampleOf[i]]}|${meta.t[i]}`;
    if (!start.has(key)) start.set(key, i);
  }
  return start;
}

/**
 * The kept blocks of a (possibly sharded) run and where each part's rows of
 * each block land among the kept rows, parts in order within a block.
 */
export function blockLayout(run: TraceRun, filter: TraceFilter) {
  const header = run.header;
  const sched = header.model.schedule;
  const selector = filter.steps ? StepSelector.parse(filter.steps) : null;
  const keepLatents = filter.latents ?? LATENTS;
  const blockIdx = new Map<string, number>();
  const addressOf = new Map<number, string>();
  const tOf: number[] = [];
  header.blocks.forEach((b, k) => {
    blockIdx.set(b.address, k);
    const t = stepIndex(parseAddress(b.address), sched);
    tOf.push(t);
    addressOf.set(t, b.address);
  });
  const kept = header.blocks.map((b) =>
    keepLatents.includes(b.latent) &&
    (!selector || selector.matches(parseAddress(b.address)))
  );
  const landAt: number[][] = run.parts.map(() => []);
  let n = 0;
  header.blocks.forEach((_, k) => {
    for (let p = 0; p < run.parts.length; p++) {
      landAt[p][k] = n;
      if (kept[k]) n += run.parts[p].header.blocks[k].rows;
    }
  });
  return { blockIdx, addressOf, tOf, kept, landAt, n };
}

export async function scanTrace(
  path: string,
  filter: TraceFilter,
): Promise<Scan> {
  const run = await openRun(path);
  const header = run.header;
  const D = header.state_dim;
  const positions = header.record.positions;
  const npos = positions.length;
  const P = run.parts.length;
  const { blockIdx, addressOf, tOf, kept, landAt, n } = blockLayout(
    run,
    filter,
  );
  const half = header.dtype === "float16";
  const readers = await openParts(run);
  const closeAll = () => readers.forEach((r) => r[Symbol.dispose]());
  const inline = header.states === "inline" ? new Float32Array(n * D) : null;
  const exampleOf = new Int32Array(n),
    t = new Int32Array(n),
    latentOf = new Uint8Array(n),
    position = new Int32Array(n),
    filled = new Uint8Array(n);
  const partOf = new Uint16Array(inline ? 0 : n),
    npyRow = new Int32Array(inline ? 0 : n);
  const examples: string[] = [], exampleIdx = new Map<string, number>();
  const outcomes: TraceExample[] = [], readouts: TraceReadout[] = [];
  const digest = new TraceDigest(traceSettings(header));
  let p = 0;
  try {
    for (; p < P; p++) {
      const part = run.parts[p];
      const check = new ExampleStates(
        part.tracePath,
        inline ? null : readers[p],
        D * (half ? 2 : 4),
        part.header.shard?.examples ?? part.header.inputs.selected,
        header.record.batch * npos,
      );
      let first = true;
      for await (const { line, value } of readJsonl(part.tracePath)) {
        if (first) {
          first = false;
          continue;
        }
        const r = schemas.TraceRecord.safeParse(value);
        if (!r.success) {
          throw new InputError(
            `${part.tracePath}:${line}: ${formatZodError(r.error)}`,
          );
        }
        const rec = r.data;
        checkRecord(rec, part.header, `${part.tracePath}:${line}`);
        if (rec.kind === "example") {
          check.example(rec, `${part.tracePath}:${line}`);
          outcomes.push(rec);
          digest.add(rec);
          continue;
        }
        if (rec.kind === "readout") {
          if (filter.readouts !== false) readouts.push(rec);
          continue;
        }
        const k = blockIdx.get(rec.address);
        const where = `${part.tracePath}:${line}`;
        if (k === undefined) {
          throw new InputError(
            `${where}: step ${rec.address} is not among the header's blocks; the trace is corrupt, re-run trace`,
          );
        }
        const block = part.header.blocks[k];
        const local = rec.row - block.row;
        if (rec.rows !== npos || local < 0 || local + npos > block.rows) {
          throw new InputError(
            `${where}: rows ${rec.row}..${
              rec.row + rec.rows
            } lie outside block ${rec.address} (rows ${block.row}..${
              block.row + block.rows
            }); the trace is corrupt, re-run trace`,
          );
        }
        check.step(rec, where);
        if (!kept[k]) continue;
        let ex = exampleIdx.get(rec.example);
        if (ex === undefined) {
          ex = examples.length;
          examples.push(rec.example);
          exampleIdx.set(rec.example, ex);
        }
        const at = landAt[p][k] + local;
        for (let j = 0; j < npos; j++) {
          if (filled[at + j]) {
            throw new InputError(
              `${where}: row ${
                rec.row + j
              } belongs to two step records; the trace is corrupt, re-run trace`,
            );
          }
          filled[at + j] = 1;
          exampleOf[at + j] = ex;
          t[at + j] = tOf[k];
          latentOf[at + j] = block.latent === "z_H" ? 0 : 1;
          position[at + j] = positions[j];
          if (!inline) {
            partOf[at + j] = p;
            npyRow[at + j] = rec.row + j;
          }
        }
        if (inline) decodeInline(rec.data, inline, at, npos, D, half, where);
      }
      check.finish();
    }
  } catch (e) {
    closeAll();
    if (e instanceof StatesMismatch && !inline) await checkPin(run.parts[p]);
    throw e;
  }
  const unfilled = filled.indexOf(0);
  if (unfilled >= 0) {
    closeAll();
    throw new InputError(
      `${run.path}: state row ${unfilled} of the kept rows has no step record; the trace is corrupt, re-run trace`,
    );
  }
  return {
    path: run.path,
    n,
    dim: D,
    store: inline ? null : new StateStore(readers, partOf, npyRow, D, half),
    inline,
    meta: {
      header,
      examples,
      exampleOf,
      t,
      latentOf,
      position,
      addressOf,
      outcomes,
      readouts,
      source: inline ? "inline" : "states.npy",
      digest: digest.hex(),
      runDir: run.runDir,
      files: run.parts.map((p) => p.tracePath),
    },
  };
}

/**
 * Check a record against the header: shapes, token ids and step addresses
 * that a reader would otherwise use out of range (a short label changing
 * a score, a position editing the neighbouring example).
 */
function checkRecord(
  rec: TraceStep | TraceReadout | TraceExample,
  h: TraceHeader,
  where: string,
): void {
  const m = h.model, S = m.seq_len, V = m.vocab_size;
  const bad = (what: string) =>
    new InputError(
      `${where}: ${rec.kind} record of "${
        rec.example.slice(0, 64)
      }": ${what}; the trace was edited or is corrupt: re-run trace`,
    );
  // A UTF-16 unit takes at most 3 UTF-8 bytes: most ids need no encoding.
  if (
    rec.example.length * 3 > MAX_ID_BYTES &&
    new TextEncoder().encode(rec.example).length > MAX_ID_BYTES
  ) {
    throw bad(`the example id is longer than ${MAX_ID_BYTES} bytes`);
  }
  const ids = (name: string, a: readonly number[], label = false) => {
    if (a.length !== S) throw bad(`${name} has ${a.length} entries, S is ${S}`);
    for (const v of a) {
      if (!((v >= 0 && v < V) || (label && v === IGNORE_LABEL))) {
        throw bad(`${name} holds ${v}, outside the vocabulary 0..${V - 1}`);
      }
    }
  };
  if (rec.kind === "example") {
    ids("tokens", rec.tokens);
    ids("label", rec.label, true);
    ids("pred", rec.pred);
    if (rec.halt_step >= m.schedule.halt_max_steps) {
      throw bad(`halt_step ${rec.halt_step} is past halt_max_steps`);
    }
    const n = Buffer.byteLength(rec.logits, "base64");
    if (n !== S * V * 4) {
      throw bad(`logits hold ${n} bytes, expected S×V float32 = ${S * V * 4}`);
    }
    return;
  }
  const a = parseAddress(rec.address), sc = m.schedule;
  if (
    a.sup >= sc.halt_max_steps || a.h >= sc.H_cycles ||
    (a.l !== "H" && a.l >= sc.L_cycles)
  ) {
    throw bad(`address ${rec.address} is not a step of the schedule`);
  }
  if (rec.kind === "readout") {
    ids("pred", rec.pred);
    if (a.l !== "H" || rec.sup !== a.sup) {
      throw bad(`a readout follows a z_H update of its own sup`);
    }
    return;
  }
  if (rec.rows !== h.record.positions.length) {
    throw bad(
      `${rec.rows} rows, but the header records ${h.record.positions.length} positions`,
    );
  }
}

function decodeInline(
  data: string | undefined,
  out: Float32Array,
  row: number,
  rows: number,
  D: number,
  half: boolean,
  where: string,
): void {
  const buf = Buffer.from(data ?? "", "base64");
  const size = half ? 2 : 4;
  if (buf.length !== rows * D * size) {
    throw new InputError(
      `${where}: step data holds ${buf.length} bytes, expected ${rows}x${D} ${
        half ? "float16" : "float32"
      }; the trace is corrupt, re-run trace`,
    );
  }
  const bytes = new Uint8Array(buf.length);
  bytes.set(buf);
  out.set(
    half ? new Float16Array(bytes.buffer) : new Float32Array(bytes.buffer),
    row * D,
  );
}
