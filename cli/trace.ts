/**
 * `trminterp trace`: flags, up-front checks, and the summary.
 *
 * @module
 */
import { join } from "node:path";
import { BACKENDS } from "../lib/model/backend.ts";
import { SELECTOR_GRAMMAR } from "../lib/model/address.ts";
import { InputError } from "../lib/errors.ts";
import { runTrace, type TraceSummary } from "../lib/trace/trace.ts";
import { TRACE_DEFAULTS } from "../lib/trace/defaults.ts";

import {
  COMMON,
  type FlagValues,
  parseBackend,
  parseChoice,
  parseLatents,
  parseShard,
  provenanceArgs,
  requireRunDir,
  str,
  usage,
  wantProgress,
} from "./common.ts";
import { type FlagSpec, intFlag, parseFlags } from "./flags.ts";
import { checkPermissions, ortWasmFiles } from "./permissions.ts";
import { Progress } from "./progress.ts";
import { terminalSafe } from "./safe_text.ts";
import { traceSummary } from "./summary.ts";

/** The table every default below comes from. */
const D = TRACE_DEFAULTS;

/** The bundled demo model, the default `--model`.  *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEMO_MODEL } from "./trace.ts";
 * assert.ok((await Deno.stat(`${DEMO_MODEL}/model.json`)).isFile);
 * ```
 */
export const DEMO_MODEL: string = join(
  import.meta.dirname ?? ".",
  "..",
  "references",
  "models",
  "sudoku4-trm",
);

/** The flags of `trace`.  *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TRACE_FLAGS } from "./trace.ts";
 * assert.equal(TRACE_FLAGS.steps.arg, "SELECTOR");
 * ```
 */
export const TRACE_FLAGS: Record<string, FlagSpec> = {
  "run-dir": COMMON["run-dir"],
  model: {
    type: "string",
    arg: "BUNDLE",
    help: "model bundle folder (default: the bundled 4x4 Sudoku TRM)",
  },
  inputs: {
    type: "string",
    arg: "FILE|DIR",
    help:
      "puzzles .jsonl or an official dataset folder (default: the demo's test.jsonl)",
  },
  seed: COMMON.seed,
  limit: {
    type: "string",
    arg: "N",
    help: "trace N examples sampled with --seed (default: all)",
  },
  latents: {
    type: "string",
    arg: "LIST",
    help: `latents to record: z_H,z_L (default ${D.latents.join(",")})`,
  },
  steps: {
    type: "string",
    arg: "SELECTOR",
    help: `steps to record, grammar below (default ${D.steps})`,
  },
  positions: {
    type: "string",
    arg: "SPEC",
    help: `positions: all | puzzle | prefix | 0-3,8 (default ${D.positions})`,
  },
  batch: {
    type: "string",
    arg: "N",
    help: `examples per batch (default ${D.batch})`,
  },
  backend: {
    type: "string",
    arg: "NAME",
    help: `execution backend: ${
      BACKENDS.join(" | ")
    } (default ${D.backend}: native onnxruntime-node when --allow-ffi is granted and it loads, else wasm with threads, sandboxed; the header records what ran, and the same backend gives byte-identical outputs)`,
  },
  states: {
    type: "string",
    arg: "WHERE",
    help:
      `npy: states in DIR/states.npy, trace.jsonl points at their rows; inline: base64 in trace.jsonl, one self-contained file (default ${D.states})`,
  },
  "states-dtype": {
    type: "string",
    arg: "TYPE",
    help:
      `float32, or float16: half the bytes; see the spec for the cost (default ${D.statesDtype})`,
  },
  shard: {
    type: "string",
    arg: "I/N",
    help:
      "trace only shard I of N of the selected examples, into DIR/shards/I-of-N/ (for job arrays; sae fit and intervene read every shard)",
  },
  "no-gitignore": {
    type: "boolean",
    help: "do not write a .gitignore of * into a new run dir",
  },
  force: COMMON.force,
  progress: COMMON.progress,
  help: COMMON.help,
};

/** `trminterp trace --help`.  *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TRACE_HELP } from "./trace.ts";
 * assert.match(TRACE_HELP, /^usage: deno task trminterp trace/);
 * assert.match(TRACE_HELP, /step selectors:/);
 * ```
 */
export const TRACE_HELP: string = usage(
  "trace",
  "--run-dir DIR [flags]",
  TRACE_FLAGS,
  `Runs the model's recurrence step by step and writes DIR/trace.jsonl (header, step,
readout and example records) and DIR/states.npy ([rows, D], rows grouped by latent,
then step, then example and position; the header gives each step's row range and
pins the file by sha256). With --shard I/N it writes DIR/shards/I-of-N/ instead.

step selectors:
${SELECTOR_GRAMMAR.replace(/^/gm, "  ")}`,
);

/**
 * Run `trminterp trace` on its arguments.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { trace } from "./trace.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   const s = await trace(["--run-dir", `${dir}/run`, "--limit", "2", "--latents", "z_H"]);
 *   assert.equal(s?.examples, 2);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function trace(args: string[]): Promise<TraceSummary | void> {
  const v: FlagValues = parseFlags("trace", args, TRACE_FLAGS);
  if (v.help) return console.log(TRACE_HELP);
  const runDir = requireRunDir(v, "trace");
  const model = str(v, "model") ?? DEMO_MODEL;
  let inputs = str(v, "inputs");
  if (!inputs) {
    if (str(v, "model") !== undefined) {
      throw new InputError(
        `trace: --inputs is required with --model; pass a puzzles .jsonl file or a dataset folder`,
      );
    }
    inputs = join(DEMO_MODEL, "test.jsonl");
  }
  const backend = parseBackend(v.backend) ?? "auto";
  await checkPermissions({
    command: "trace",
    // Atomic renames need read access to the run dir as well (Deno.rename).
    read: [model, inputs, runDir, ...ortWasmFiles(backend)],
    write: [runDir],
    ffi: backend === "native",
  });
  const progress = new Progress("trace", 0, "examples", wantProgress(v));
  const summary = await runTrace({
    runDir,
    model,
    inputs,
    seed: intFlag(v.seed, "--seed") ?? 0,
    limit: intFlag(v.limit, "--limit", 1),
    latents: parseLatents(v.latents),
    steps: str(v, "steps"),
    positions: str(v, "positions"),
    batch: intFlag(v.batch, "--batch", 1),
    backend,
    force: v.force === true,
    gitignore: v["no-gitignore"] !== true,
    states: parseChoice(v.states, "--states", ["npy", "inline"]),
    statesDtype: parseChoice(v["states-dtype"], "--states-dtype", [
      "float32",
      "float16",
    ]),
    shard: parseShard(v.shard),
    onProgress: (done, total) => {
      progress.total = total;
      progress.update(done);
    },
    command: provenanceArgs(["trace"], args),
  });
  progress.done();
  console.log(terminalSafe(traceSummary(summary, runDir)));
  return summary;
}
