/**
 * `trminterp trace`: roll the model out over the inputs and record hidden
 * states, readouts and outcomes into `trace.jsonl` (with `states.npy`).
 *
 * @module
 */
import { join, relative, resolve } from "node:path";
import { StepSelector } from "../model/address.ts";
import type { BackendChoice } from "../model/backend.ts";
import { type Bundle, loadBundle } from "../model/bundle.ts";
import { type Hook, type Latent, rollout } from "../model/rollout.ts";
import { InputError, OptionError } from "../errors.ts";
import type { OutputSet } from "../io/atomic.ts";
import { openShardDir, pathExists, prepareRunDir } from "../io/run_dir.ts";
import { VERSION } from "../version.ts";
import { TRACE_DEFAULTS, traceSettings } from "./defaults.ts";
import { loadPuzzles, type PuzzleSet } from "./inputs.ts";
import { parsePositions, selectExamples } from "./positions.ts";
import {
  type PerSupAccuracy,
  type RecordSpec,
  TraceRecorder,
} from "./recorder.ts";
import {
  layoutBlocks,
  shardName,
  shardSlice,
  type StatesDtype,
  type StatesStorage,
} from "./layout.ts";

/** One shard of a sharded run: `index` of `count` (v0-spec §3.7). */
export interface ShardSpec {
  /** From 0. */
  index: number;
  /** The number of shards. */
  count: number;
}

/** Options of the trace command. */
export interface TraceOptions {
  /** Output folder. */
  runDir: string;
  /** Bundle folder. */
  model: string;
  /** Puzzles: JSONL file or dataset folder. */
  inputs: string;
  /** Seed (used for `limit` sampling). */
  seed: number;
  /** Trace only this many examples, sampled with the seed. */
  limit?: number;
  /** Latents to record (default {@linkcode TRACE_DEFAULTS}: both). */
  latents?: Latent[];
  /** Step selector text (default `all`). */
  steps?: string;
  /** Positions spec: `all` (default), `puzzle`, `prefix`, or `0-3,8`. */
  positions?: string;
  /** Examples per batch (default {@linkcode TRACE_DEFAULTS}). */
  batch?: number;
  /** Execution backend (default `auto`: native when --allow-ffi is granted and it loads, else WASM); the header records what ran. */
  backend?: BackendChoice;
  /** Overwrite an existing trace. */
  force?: boolean;
  /** Write the `.gitignore` into a new run dir (default true). */
  gitignore?: boolean;
  /** Where the states go (default `npy`: states.npy; `inline`: base64 in trace.jsonl). */
  states?: StatesStorage;
  /** Element type of the stored states (default float32). */
  statesDtype?: StatesDtype;
  /** Trace only this shard of the selected examples, into `runDir/shards/<i>-of-<n>/`. */
  shard?: ShardSpec;
  /** Hooks run before the recorder, so the trace records what they leave. */
  hooks?: Hook[];
  /** Progress: examples done of total. */
  onProgress?: (done: number, total: number) => void;
  /** The command line, recorded in the header. */
  command?: string[];
}

/** What a finished trace reports. */
export interface TraceSummary {
  /** Path of trace.jsonl. */
  trace: string;
  /** State rows written. */
  rows: number;
  /** Examples traced. */
  examples: number;
  /** Exact accuracy at the halting step. */
  exact: number;
  /** Token accuracy at the halting step. */
  tokenAcc: number;
  /** Exact and token accuracy of the official readout after each supervision step. */
  perSup: PerSupAccuracy[];
  /** Wall time in seconds (not in any payload). */
  seconds: number;
  /** The shard this trace is, when traced with `shard`. */
  shard?: ShardInfo | null;
}

/**
 * Run the trace command: validate, roll out, record.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runTrace } from "./trace.ts";
 * const demo = new URL("../../references/models/sudoku4-trm", import.meta.url).pathname;
 * const dir = await Deno.makeTempDir();
 * try {
 *   const s = await runTrace({ runDir: `${dir}/run`, model: demo, inputs: `${demo}/test.jsonl`, seed: 0, limit: 8 });
 *   assert.equal(s.examples, 8);
 *   assert.equal(s.perSup.length, 8);
 *   assert.ok(s.perSup[7].token > 0.9);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function runTrace(opts: TraceOptions): Promise<TraceSummary> {
  const settings = traceSettings(opts);
  const latents = [...settings.latents];
  const selector = StepSelector.parse(settings.steps);
  const bundle = await loadBundle(opts.model, { backend: settings.backend });
  try {
    const m = bundle.manifest;
    const positions = parsePositions(
      settings.positions,
      m.puzzle_emb_len,
      m.seq_len,
    );
    if (selector.select(m.schedule).length === 0) {
      throw new InputError(
        `step selector "${selector.text}" matches no step of this model's schedule`,
      );
    }
    if (layoutBlocks(m.schedule, latents, selector).length === 0) {
      throw new InputError(
        `step selector "${selector.text}" matches no step that writes ${
          latents.join(" or ")
        }`,
      );
    }
    let selected = 0;
    let shard: ShardInfo | null = null;
    const set = await loadPuzzles(opts.inputs, m, (total) => {
      const chosen = selectExamples(total, opts.limit, opts.seed);
      selected = chosen.length;
      if (!opts.shard) return chosen;
      const { index, count } = opts.shard;
      const slice = shardSlice(index, count, selected);
      if (slice.examples === 0) {
        throw new OptionError(
          "shard",
          `{shard} ${index}/${count} gets no examples: ${selected} are selected; use at most ${selected} shards`,
        );
      }
      shard = { index, count, ...slice };
      return chosen.slice(slice.first, slice.first + slice.examples);
    });
    // A shard's own folder is its run dir (locked, marked); header paths
    // stay relative to the run dir all shards share.
    await using run = opts.shard
      ? await openShardDir(
        opts.runDir,
        shardName(opts.shard.index, opts.shard.count),
        { force: opts.force, gitignore: opts.gitignore },
      )
      : await prepareRunDir(opts.runDir, {
        // trace.jsonl lands last and marks a finished run; a states.npy
        // without it is an orphaned file of a killed run and may be replaced.
        outputs: ["trace.jsonl"],
        force: opts.force,
        gitignore: opts.gitignore,
        create: true,
      });
    if (!opts.shard && await pathExists(await run.file("shards"))) {
      throw new OptionError(
        "shard",
        `run dir ${opts.runDir} holds a sharded trace (shards/); trace without {shard} into another {runDir}`,
      );
    }
    try {
      await run.checkOutputs(["states.npy"], true);
      return await writeTrace(bundle, set, set.indices, run.path, {
        latents,
        selector,
        positions,
        states: settings.states,
        dtype: settings.statesDtype,
      }, { ...opts, batch: settings.batch, shard, selected });
    } catch (e) {
      await run.discardIfCreated().catch(() => {});
      throw e;
    }
  } finally {
    await bundle.release();
  }
}

/** The `shard` of a trace header. */
export interface ShardInfo extends ShardSpec {
  /** Index of the shard's first example among the selected ones. */
  first: number;
  /** Examples in the shard. */
  examples: number;
}

/** What {@linkcode writeTrace} needs besides the record spec. */
export interface WriteTraceOptions extends
  Omit<
    TraceOptions,
    "force" | "gitignore" | "states" | "statesDtype" | "shard"
  > {
  /** The shard this trace is, or null. */
  shard?: ShardInfo | null;
  /** Examples selected over all shards (default `chosen.length`). */
  selected?: number;
}

/**
 * Roll out the puzzles of `set` (`chosen[i]` is the index in the inputs of
 * `set.puzzles[i]`) and record them into `dir`, which must exist and be
 * locked: the part of {@linkcode runTrace} that intervene's `--save-trace`
 * shares, with its policy among `opts.hooks`. The header records the model
 * and inputs paths relative to `opts.runDir`. With `outputs`, the files are
 * staged there and land when the caller commits it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeTrace } from "./trace.ts";
 * import { loadPuzzles } from "./inputs.ts";
 * import { TraceDataset } from "./dataset.ts";
 * import { loadBundle } from "../model/bundle.ts";
 * import { StepSelector } from "../model/address.ts";
 * import { openRunDir } from "../io/run_dir.ts";
 * const demo = new URL("../../references/models/sudoku4-trm", import.meta.url).pathname;
 * const dir = await Deno.makeTempDir();
 * const bundle = await loadBundle(demo, { backend: "wasm" });
 * try {
 *   await using _run = await openRunDir(dir);
 *   const set = await loadPuzzles(`${demo}/test.jsonl`, bundle.manifest, () => [4, 7]);
 *   const spec = { latents: ["z_H"] as const, selector: StepSelector.parse("s0.*.H"), positions: [0, 1],
 *     states: "npy" as const, dtype: "float32" as const };
 *   const summary = await writeTrace(bundle, set, set.indices, dir, spec,
 *     { runDir: dir, model: demo, inputs: `${demo}/test.jsonl`, seed: 0 });
 *   assert.equal(summary.examples, 2);
 *   assert.equal(summary.rows, 2 * 2 * 2); // examples × H cycles of s0 × positions
 *   const ds = await TraceDataset.load(dir);
 *   assert.deepEqual(ds.meta.examples, set.puzzles.map((p) => p.id));
 * } finally {
 *   await bundle.release();
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function writeTrace(
  bundle: Bundle,
  set: PuzzleSet,
  chosen: readonly number[],
  dir: string,
  spec: RecordSpec,
  opts: WriteTraceOptions,
  outputs?: OutputSet,
): Promise<TraceSummary> {
  const m = bundle.manifest;
  const start = performance.now();
  const puzzles = set.puzzles;
  const batch = opts.batch ?? TRACE_DEFAULTS.batch;
  const recorder = await TraceRecorder.open(
    dir,
    spec,
    {
      S: m.seq_len,
      P: m.puzzle_emb_len,
      D: m.hidden_size,
      V: m.vocab_size,
      H_init: m.H_init,
      L_init: m.L_init,
      schedule: m.schedule,
    },
    puzzles,
    chosen,
  );
  try {
    await rollout(
      bundle,
      puzzles.map((p) => ({
        id: p.id,
        tokens: p.tokens,
        label: p.label,
        puzzleIdentifier: p.puzzleIdentifier,
      })),
      {
        batch,
        hooks: [...(opts.hooks ?? []), recorder],
        readouts: "every_H",
        collect: false,
        onProgress: opts.onProgress,
      },
    );
    const s = await recorder.finish({
      kind: "header",
      format: "trminterp-trace/2",
      tool: { name: "trminterp", version: VERSION },
      command: opts.command ?? [],
      seed: opts.seed,
      model: {
        name: m.name,
        family: m.family,
        path: relativePath(opts.runDir, opts.model),
        sha256: bundle.sha256,
        dtype: m.dtype,
        seq_len: m.seq_len,
        puzzle_emb_len: m.puzzle_emb_len,
        vocab_size: m.vocab_size,
        schedule: m.schedule,
      },
      backend: bundle.backend,
      inputs: {
        path: relativePath(opts.runDir, opts.inputs),
        format: set.format,
        sha256: set.sha256,
        total: set.total,
        selected: opts.selected ?? chosen.length,
        limit: opts.limit ?? null,
      },
      record: {
        latents: [...spec.latents],
        steps: spec.selector.text,
        positions: [...spec.positions],
        readouts: "every_H",
        batch,
      },
      shard: opts.shard ?? null,
      state_dim: m.hidden_size,
      states: spec.states,
      dtype: spec.dtype,
    }, outputs);
    return {
      ...s,
      shard: opts.shard ?? null,
      trace: join(dir, "trace.jsonl"),
      seconds: (performance.now() - start) / 1000,
    };
  } catch (e) {
    await recorder.abort();
    throw e;
  }
}

/**
 * `path` as the trace header records it: relative to the run dir, with `/`
 * separators, so the same run in another folder writes the same bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { relativePath } from "./trace.ts";
 * assert.equal(relativePath("work/runs/a", "work/models/m"), "../../models/m");
 * assert.equal(relativePath("/r/run", "/r/run/in.jsonl"), "in.jsonl");
 * ```
 */
export function relativePath(runDir: string, path: string): string {
  return relative(resolve(runDir), resolve(path)).split("\\").join("/") || ".";
}

/**
 * A path from a trace header, resolved against the run dir it is relative
 * to (absolute paths stay as they are).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { headerPath } from "./trace.ts";
 * assert.equal(headerPath("/r/runs/a", "../../models/m"), "/r/models/m");
 * ```
 */
export function headerPath(runDir: string, path: string): string {
  return resolve(runDir, path);
}
