/**
 * `TraceDataset.load`: the states of a trace as one `[N, D]` matrix, with
 * each row's example, step address, latent and position.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { join } from "node:path";
import { parseAddress, StepSelector } from "./address.ts";
import { InputError } from "./errors.ts";
import { sha256File } from "./io/atomic.ts";
import { readJsonl } from "./io/jsonl.ts";
import { NpyReader } from "./io/npy.ts";
import type { Latent } from "./runner.ts";
import {
  formatZodError,
  type TraceExample,
  TraceHeader,
  type TraceReadout,
  TraceRecord,
  type TraceStep,
} from "./schema.ts";

/** Per-row metadata, stored column-wise so large traces stay compact. */
export interface TraceMeta {
  /** The trace header. */
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
  /** `example` records, in file order. */
  outcomes: TraceExample[];
  /** `readout` records, in file order. */
  readouts: TraceReadout[];
  /** Where the states came from. */
  source: "states.npy" | "inline";
}

/** One row's metadata, as returned by {@linkcode TraceDataset.row}. */
export interface RowInfo {
  /** Example id. */
  example: string;
  /** Step address text. */
  address: string;
  /** Global step index. */
  t: number;
  /** The latent. */
  latent: Latent;
  /** Position within the example. */
  position: number;
}

/** Filters for {@linkcode TraceDataset.load}. */
export interface TraceFilter {
  /** Keep only these latents. */
  latents?: Latent[];
  /** Keep only steps matching this selector. */
  steps?: string;
}

const LATENTS: Latent[] = ["z_H", "z_L"];

/**
 * A loaded trace: `states` is `[N, D]` float32, rows in trace order.
 *
 * @example
 * ```ts ignore
 * import { TraceDataset } from "./trace_dataset.ts";
 * const ds = await TraceDataset.load("runs/demo", { latents: ["z_H"] });
 * console.log(ds.shape, ds.row(0));
 * ```
 */
export class TraceDataset {
  /** Row-major `[N, D]` states. */
  readonly states: Float32Array;
  /** `[N, D]`. */
  readonly shape: [number, number];
  /** Row metadata and the trace's other records. */
  readonly meta: TraceMeta;
  /** Path of trace.jsonl. */
  readonly path: string;

  private constructor(
    path: string,
    states: Float32Array,
    shape: [number, number],
    meta: TraceMeta,
  ) {
    this.path = path;
    this.states = states;
    this.shape = shape;
    this.meta = meta;
  }

  /** Metadata of row `i`. */
  row(i: number): RowInfo {
    const m = this.meta;
    return {
      example: m.examples[m.exampleOf[i]],
      address: m.addressOf.get(m.t[i])!,
      t: m.t[i],
      latent: LATENTS[m.latentOf[i]],
      position: m.position[i],
    };
  }

  /**
   * Load a trace from a run dir or a trace.jsonl path. States come from
   * `states.npy` when its sha256 matches the header, else from the inline data.
   */
  static async load(
    path: string,
    filter: TraceFilter = {},
  ): Promise<TraceDataset> {
    const tracePath = path.endsWith(".jsonl")
      ? path
      : join(path, "trace.jsonl");
    const dir = path.endsWith(".jsonl") ? join(tracePath, "..") : path;
    const selector = filter.steps ? StepSelector.parse(filter.steps) : null;
    const keepLatents = filter.latents ?? LATENTS;

    let header: TraceHeader | null = null;
    let npy: NpyReader | null = null;
    const chunks: Float32Array[] = [];
    let rows = 0;
    const examples: string[] = [], exampleIdx = new Map<string, number>();
    const exampleOf: number[] = [],
      tOf: number[] = [],
      latentOf: number[] = [],
      position: number[] = [];
    const addressOf = new Map<number, string>();
    const outcomes: TraceExample[] = [], readouts: TraceReadout[] = [];
    try {
      for await (const { line, value } of readJsonlOrMissing(tracePath)) {
        if (!header) {
          const h = TraceHeader.safeParse(value);
          if (!h.success) {
            throw new InputError(
              `${tracePath}:${line}: not a trace header (${
                formatZodError(h.error)
              }); re-run trace`,
            );
          }
          header = h.data;
          npy = await openCache(dir, header);
          continue;
        }
        const r = TraceRecord.safeParse(value);
        if (!r.success) {
          throw new InputError(
            `${tracePath}:${line}: ${formatZodError(r.error)}`,
          );
        }
        const rec = r.data;
        if (rec.kind === "example") outcomes.push(rec);
        else if (rec.kind === "readout") readouts.push(rec);
        else {
          addressOf.set(rec.t, rec.address);
          if (!keepLatents.includes(rec.latent)) continue;
          if (selector && !selector.matches(parseAddress(rec.address))) {
            continue;
          }
          const D = header.state_dim;
          const data = npy
            ? await npy.readRows(rec.row, rec.rows) as Float32Array
            : decodeInline(rec, D, tracePath, line);
          checkFinite(data, tracePath, line, rec);
          chunks.push(data);
          let ex = exampleIdx.get(rec.example);
          if (ex === undefined) {
            ex = examples.length;
            examples.push(rec.example);
            exampleIdx.set(rec.example, ex);
          }
          const pos = header.record.positions;
          for (let k = 0; k < rec.rows; k++) {
            exampleOf.push(ex);
            tOf.push(rec.t);
            latentOf.push(rec.latent === "z_H" ? 0 : 1);
            position.push(pos[k]);
          }
          rows += rec.rows;
        }
      }
    } finally {
      npy?.[Symbol.dispose]();
    }
    if (!header) throw new InputError(`${tracePath} is empty; re-run trace`);
    const D = header.state_dim;
    const states = new Float32Array(rows * D);
    let off = 0;
    for (const c of chunks) {
      states.set(c, off);
      off += c.length;
    }
    return new TraceDataset(tracePath, states, [rows, D], {
      header,
      examples,
      exampleOf: Int32Array.from(exampleOf),
      t: Int32Array.from(tOf),
      latentOf: Uint8Array.from(latentOf),
      position: Int32Array.from(position),
      addressOf,
      outcomes,
      readouts,
      source: npy ? "states.npy" : "inline",
    });
  }
}

async function* readJsonlOrMissing(path: string) {
  try {
    await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new InputError(
        `no trace at ${path}; run \`trminterp trace --run-dir <dir>\` first`,
      );
    }
    throw e;
  }
  yield* readJsonl(path);
}

async function openCache(
  dir: string,
  header: TraceHeader,
): Promise<NpyReader | null> {
  if (!header.states_npy) return null;
  const path = join(dir, header.states_npy.file);
  try {
    if ((await sha256File(path)) !== header.states_npy.sha256) return null;
    const r = await NpyReader.open(path);
    if (r.dtype !== "float32" || r.shape[1] !== header.state_dim) {
      r[Symbol.dispose]();
      return null;
    }
    return r;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof InputError) {
      return null;
    }
    throw e;
  }
}

function decodeInline(
  rec: TraceStep,
  D: number,
  path: string,
  line: number,
): Float32Array {
  const buf = Buffer.from(rec.data, "base64");
  if (buf.length !== rec.rows * D * 4) {
    throw new InputError(
      `${path}:${line}: step data holds ${buf.length} bytes, expected ${rec.rows}x${D} float32; the trace is corrupt, re-run trace`,
    );
  }
  const out = new Float32Array(rec.rows * D);
  new Uint8Array(out.buffer).set(buf);
  return out;
}

function checkFinite(
  data: Float32Array,
  path: string,
  line: number,
  rec: TraceStep,
): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      throw new InputError(
        `${path}:${line}: the states of ${rec.example} at ${rec.address} (${rec.latent}) contain ${
          data[i]
        }; the model diverged or the trace is corrupt`,
      );
    }
  }
}
