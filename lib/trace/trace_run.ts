/**
 * Run and shard discovery: which trace.jsonl files make up a run (its own,
 * or one per shard), their headers read and checked, and the shards' headers
 * merged into the run's header.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { parseAddress } from "../model/address.ts";
import { InputError, StepError } from "../errors.ts";
import { readJsonl } from "../io/jsonl.ts";
import { pathExists } from "../io/run_dir.ts";
import { confined, confinedFile } from "../io/paths.ts";
import {
  formatZodError,
  type ModelManifest,
  schemas,
  type TraceHeader,
} from "../schema/mod.ts";
import { shardName, shardSlice, traceSettings } from "./layout.ts";

/** One trace.jsonl of a run: the only one, or one shard's. */
export interface TracePart {
  /** Its folder. */
  dir: string;
  /** Its trace.jsonl. */
  tracePath: string;
  /** Its header. */
  header: TraceHeader;
}

/** A run's trace files, checked to form one trace. */
export interface TraceRun {
  /** The run dir (header paths are relative to it). */
  runDir: string;
  /** trace.jsonl, or the shards/ folder. */
  path: string;
  /** The parts, in shard order. */
  parts: TracePart[];
  /** The run's header (see {@linkcode TraceMeta.header}). */
  header: TraceHeader;
}

const SHARD_DIR = /^(\d+)-of-(\d+)$/;

/**
 * The trace files of a run dir or a trace.jsonl path: the run's trace.jsonl,
 * or every shard's. Refuses a run with missing or unfinished shards, shards
 * of different counts, or both kinds.
 */
async function runFiles(
  path: string,
): Promise<
  { runDir: string; path: string; files: string[]; sharded: boolean }
> {
  // Every file is reached through no symbolic link (see confined).
  const noTrace = (dir: string) => () =>
    new StepError(`no trace.jsonl in ${dir}; {fix} first`, "trace", {
      runDir: dir,
    });
  if (path.endsWith(".jsonl")) {
    const dir = dirname(path);
    const file = await confinedFile(dir, basename(path), {
      missing: noTrace(dir),
    });
    return { runDir: dir, path: file.path, files: [file.path], sharded: false };
  }
  const single = await confined(path, "trace.jsonl");
  const shardsDir = await confined(path, "shards");
  const hasSingle = await pathExists(single);
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(shardsDir)) {
      if (SHARD_DIR.test(e.name)) names.push(e.name);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (hasSingle && names.length) {
    throw new InputError(
      `run dir ${path} holds both trace.jsonl and shards/; move one of them to another run dir`,
    );
  }
  if (hasSingle) {
    const file = await confinedFile(path, "trace.jsonl");
    return {
      runDir: path,
      path: file.path,
      files: [file.path],
      sharded: false,
    };
  }
  if (!names.length) {
    throw new StepError(`no trace.jsonl in ${path}; {fix} first`, "trace", {
      runDir: path,
    });
  }
  const counts = [...new Set(names.map((n) => SHARD_DIR.exec(n)![2]))];
  if (counts.length > 1) {
    throw new InputError(
      `run dir ${path} holds shards of different counts (${
        counts.map((c) => `of-${c}`).join(", ")
      }); a run's shards share one count: remove the stray shards/ folders`,
    );
  }
  const n = Number(counts[0]);
  const files: string[] = [], missing: number[] = [];
  for (let i = 0; i < n; i++) {
    const file = await confined(
      path,
      `shards/${shardName(i, n)}/trace.jsonl`,
    );
    if (await pathExists(file)) {
      files.push(
        (await confinedFile(path, `shards/${shardName(i, n)}/trace.jsonl`))
          .path,
      );
    } else missing.push(i);
  }
  if (missing.length) {
    throw new StepError(
      `run dir ${path} lacks ${missing.length} of its ${n} shards (${
        missing.map((i) => shardName(i, n)).join(", ")
      } have no trace.jsonl); {fix}, and likewise for each`,
      "trace",
      { runDir: path, shard: `${missing[0]}/${n}` },
    );
  }
  return { runDir: path, path: shardsDir, files, sharded: true };
}

/** Read and check the headers of a run's trace files, and merge them. */
export async function openRun(path: string): Promise<TraceRun> {
  const found = await runFiles(path);
  const parts: TracePart[] = [];
  for (const tracePath of found.files) {
    parts.push({
      dir: dirname(tracePath),
      tracePath,
      header: await readHeaderLine(tracePath),
    });
  }
  let runDir = found.runDir;
  const h0 = parts[0].header;
  if (!found.sharded) {
    // A shard's trace.jsonl opened by path: its paths are relative to the run dir.
    if (h0.shard) runDir = join(dirname(found.files[0]), "..", "..");
    return { runDir, path: found.path, parts, header: h0 };
  }
  const n = parts.length;
  const want = JSON.stringify({ ...traceSettings(h0), states: h0.states });
  for (let i = 0; i < n; i++) {
    const h = parts[i].header;
    const name = shardName(i, n);
    if (!h.shard || h.shard.index !== i || h.shard.count !== n) {
      throw new StepError(
        `${parts[i].tracePath}: its header is not shard ${name}; {fix} again`,
        "trace",
        { runDir: path, shard: `${i}/${n}` },
      );
    }
    const got = JSON.stringify({ ...traceSettings(h), states: h.states });
    if (got !== want) {
      throw new InputError(
        `shard ${name} was traced with different settings than ${
          shardName(0, n)
        } (${
          firstDifference(
            { ...traceSettings(h0), states: h0.states },
            { ...traceSettings(h), states: h.states },
          )
        }); re-trace it with the same flags`,
      );
    }
    if (
      h.blocks.length !== h0.blocks.length ||
      h.blocks.some((b, k) => b.address !== h0.blocks[k].address)
    ) {
      throw new StepError(
        `${parts[i].tracePath}: its blocks are not those of ${
          shardName(0, n)
        }; the trace is corrupt, {fix} again`,
        "trace",
        { runDir: path, shard: `${i}/${n}` },
      );
    }
    const slice = shardSlice(i, n, h0.inputs.selected);
    if (h.shard.first !== slice.first || h.shard.examples !== slice.examples) {
      throw new StepError(
        `${
          parts[i].tracePath
        }: shard ${name} holds examples ${h.shard.first}..${
          h.shard.first + h.shard.examples
        }, not ${slice.first}..${
          slice.first + slice.examples
        } of ${h0.inputs.selected}; {fix} again`,
        "trace",
        { runDir: path, shard: `${i}/${n}` },
      );
    }
  }
  let row = 0;
  const blocks = h0.blocks.map((b, k) => {
    const rows = parts.reduce((a, p) => a + p.header.blocks[k].rows, 0);
    const out = { ...b, row, rows };
    row += rows;
    return out;
  });
  return {
    runDir,
    path: found.path,
    parts,
    header: { ...h0, shard: null, rows: row, blocks, states_npy: null },
  };
}

/** The first key path where two JSON values differ, as text. */
function firstDifference(a: unknown, b: unknown, at = ""): string {
  if (JSON.stringify(a) === JSON.stringify(b)) return "";
  if (
    a && b && typeof a === "object" && typeof b === "object" &&
    !Array.isArray(a) && !Array.isArray(b)
  ) {
    const ao = a as Record<string, unknown>, bo = b as Record<string, unknown>;
    for (const k of new Set([...Object.keys(ao), ...Object.keys(bo)])) {
      const d = firstDifference(ao[k], bo[k], at ? `${at}.${k}` : k);
      if (d) return d;
    }
  }
  return `${at || "(root)"}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`;
}

export async function readHeaderLine(tracePath: string): Promise<TraceHeader> {
  for await (const { line, value } of readJsonl(tracePath)) {
    return parseHeader(value, tracePath, line);
  }
  throw new InputError(`${tracePath} is empty; re-run trace`);
}

export function parseHeader(
  value: unknown,
  tracePath: string,
  line: number,
): TraceHeader {
  const h = schemas.TraceHeader.safeParse(value);
  if (!h.success) {
    throw new InputError(
      `${tracePath}:${line}: not a trace header (${
        formatZodError(h.error)
      }); re-run trace`,
    );
  }
  const header = h.data;
  const bad = (what: string) =>
    new InputError(
      `${tracePath}:${line}: the header's ${what}; the trace was edited or is corrupt: re-run trace`,
    );
  const T = header.model.puzzle_emb_len + header.model.seq_len;
  const pos = header.record.positions;
  for (let i = 0; i < pos.length; i++) {
    if (pos[i] >= T || (i > 0 && pos[i] <= pos[i - 1])) {
      throw bad(
        `record.positions must rise strictly within 0..${T - 1} (P+S), got ${
          pos[i]
        } at index ${i}`,
      );
    }
  }
  if (new Set(header.record.latents).size !== header.record.latents.length) {
    throw bad("record.latents repeats a latent");
  }
  const npy = header.states_npy;
  if ((npy !== null) !== (header.states === "npy")) {
    throw bad(
      `states_npy is ${npy ? "set" : "null"} with states "${header.states}"`,
    );
  }
  if (
    npy && (npy.shape[0] !== header.rows || npy.shape[1] !== header.state_dim)
  ) {
    throw bad(
      `states_npy.shape [${npy.shape}] is not [rows, state_dim] = [${header.rows}, ${header.state_dim}]`,
    );
  }
  const sc = header.model.schedule;
  for (const b of header.blocks) {
    const a = parseAddress(b.address);
    if (
      a.sup >= sc.halt_max_steps || a.h >= sc.H_cycles ||
      (a.l !== "H" && a.l >= sc.L_cycles) ||
      (a.l === "H") !== (b.latent === "z_H") || b.rows % pos.length !== 0
    ) {
      throw bad(
        `block ${b.address} (${b.latent}, ${b.rows} rows) is not a step of the schedule with whole examples`,
      );
    }
  }
  return header;
}

/** The header's blocks must tile its rows in order. */
export function checkBlocks(part: TracePart): void {
  let row = 0;
  for (const b of part.header.blocks) {
    if (b.row !== row) {
      throw new InputError(
        `${part.tracePath}: header block ${b.address} starts at row ${b.row}, not ${row}; the trace is corrupt, re-run trace`,
      );
    }
    row += b.rows;
  }
  if (row !== part.header.rows) {
    throw new InputError(
      `${part.tracePath}: the header's blocks hold ${row} rows, not ${part.header.rows}; the trace is corrupt, re-run trace`,
    );
  }
}

/**
 * Check that a trace header's model fields equal a bundle's manifest: a
 * header edited after the trace (a longer schedule, another vocabulary)
 * would make readers walk steps and positions the model does not have.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkHeaderModel, readTraceHeader } from "./trace_run.ts";
 * import { readManifest } from "../model/bundle.ts";
 * import { runTrace } from "./trace.ts";
 * const demo = new URL("../../references/models/sudoku4-trm", import.meta.url).pathname;
 * const dir = await Deno.makeTempDir();
 * try {
 *   await runTrace({ runDir: dir, model: demo, inputs: `${demo}/test.jsonl`, seed: 0, limit: 1, latents: ["z_H"] });
 *   const h = await readTraceHeader(dir);
 *   const { manifest } = await readManifest(demo);
 *   checkHeaderModel(h, manifest, "trace.jsonl");
 *   h.model.schedule.halt_max_steps = 1000;
 *   assert.throws(() => checkHeaderModel(h, manifest, "trace.jsonl"), /schedule/);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export function checkHeaderModel(
  header: TraceHeader,
  m: ModelManifest,
  where: string,
): void {
  const h = header.model;
  const pairs: [string, unknown, unknown][] = [
    ["name", h.name, m.name],
    ["family", h.family, m.family],
    ["dtype", h.dtype, m.dtype],
    ["seq_len", h.seq_len, m.seq_len],
    ["puzzle_emb_len", h.puzzle_emb_len, m.puzzle_emb_len],
    ["vocab_size", h.vocab_size, m.vocab_size],
    ["state_dim", header.state_dim, m.hidden_size],
    ...(["H_cycles", "L_cycles", "halt_max_steps", "halt_mode"] as const).map((
      k,
    ): [string, unknown, unknown] => [
      `schedule.${k}`,
      h.schedule[k],
      m.schedule[k],
    ]),
  ];
  for (const [key, a, b] of pairs) {
    if (a !== b) {
      throw new InputError(
        `${where}: the header's model ${key} is ${
          JSON.stringify(a)
        }, but the bundle's model.json says ${
          JSON.stringify(b)
        }; the trace was edited or comes from another model: re-run trace`,
      );
    }
  }
}

/**
 * Read and check only the header line of a trace (a run dir or a trace.jsonl
 * path), without reading its records. For a sharded run, every shard's
 * header is read and checked, and the run's header is returned (see
 * {@linkcode TraceMeta.header}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readTraceHeader } from "./trace_run.ts";
 * import { runTrace } from "./trace.ts";
 * const demo = new URL("../../references/models/sudoku4-trm", import.meta.url).pathname;
 * const dir = await Deno.makeTempDir();
 * try {
 *   await runTrace({ runDir: dir, model: demo, inputs: `${demo}/test.jsonl`, seed: 0, limit: 1, latents: ["z_H"] });
 *   const h = await readTraceHeader(dir);
 *   assert.equal(h.model.name, "sudoku4-trm");
 *   assert.deepEqual(h.record.latents, ["z_H"]);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function readTraceHeader(path: string): Promise<TraceHeader> {
  return (await openRun(path)).header;
}

/**
 * Where a run's trace is, for messages: its trace.jsonl, or the `shards/`
 * folder of a sharded run (whose shards are checked to form one trace).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { traceLocation } from "./trace_run.ts";
 * import { runTrace } from "./trace.ts";
 * const demo = new URL("../../references/models/sudoku4-trm", import.meta.url).pathname;
 * const dir = await Deno.makeTempDir();
 * try {
 *   await runTrace({ runDir: dir, model: demo, inputs: `${demo}/test.jsonl`, seed: 0, limit: 2, shard: { index: 1, count: 2 } });
 *   await assert.rejects(traceLocation(dir), /lacks 1 of its 2 shards/);
 *   await runTrace({ runDir: dir, model: demo, inputs: `${demo}/test.jsonl`, seed: 0, limit: 2, shard: { index: 0, count: 2 } });
 *   assert.equal(await traceLocation(dir), `${dir}/shards`);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function traceLocation(path: string): Promise<string> {
  return (await openRun(path)).path;
}

/**
 * The run dir a trace's header paths are relative to: `path` itself for a
 * run dir, the folder of a trace.jsonl, or the run dir of a shard's
 * trace.jsonl.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { traceRunDir } from "./trace_run.ts";
 * assert.equal(await traceRunDir("runs/a"), "runs/a");
 * ```
 */
export async function traceRunDir(path: string): Promise<string> {
  if (!path.endsWith(".jsonl")) return path;
  return (await openRun(path)).runDir;
}
