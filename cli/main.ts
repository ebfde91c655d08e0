/**
 * The trminterp command line: `trace`, `sae fit` and `intervene`.
 * Parsing and dispatch only; the work lives in `lib/`.
 *
 * @module
 */
import { join } from "node:path";
import { type BackendName, BACKENDS } from "../lib/model/backend.ts";
import {
  type FlagSpec,
  formatFlags,
  intFlag,
  nearest,
  parseFlags,
} from "./flags.ts";
import { InputError } from "../lib/errors.ts";
import { SELECTOR_GRAMMAR } from "../lib/model/address.ts";
import { runTrace } from "../lib/trace/trace.ts";
import { runSaeFit } from "../lib/sae/fit.ts";
import { runIntervene } from "../lib/intervene/intervene.ts";
import { POLICY_NAMES, type PolicyName } from "../lib/intervene/policy.ts";
import { numFlag } from "./flags.ts";
import type { Latent } from "../lib/model/rollout.ts";
import { VERSION } from "../lib/version.ts";

const HERE = import.meta.dirname ?? ".";
const DEMO_MODEL = join(HERE, "..", "references", "models", "sudoku4-trm");

const EXIT_CODES = `exit codes:
  0  success
  1  internal error (a bug: please report it with the command line)
  2  bad input, bad usage, or a missing permission (the message names the fix)`;

const MAIN_HELP =
  `trminterp ${VERSION}: trace -> SAE -> intervene for TRM/HRM recurrent reasoning models

usage:
  trminterp trace     --run-dir DIR [--model BUNDLE] [--inputs FILE|DIR] [--seed N] ...
  trminterp sae fit   --run-dir DIR [--seed N] ...
  trminterp intervene --run-dir DIR --policy ablate_features|clamp_features|patch_features ...

Run the commands in this order; every output goes under --run-dir.
\`trminterp <command> --help\` lists a command's flags.

${EXIT_CODES}`;

const COMMON: Record<string, FlagSpec> = {
  "run-dir": {
    type: "string",
    arg: "DIR",
    help: "run directory for every output (required)",
  },
  seed: {
    type: "string",
    arg: "N",
    help:
      "seed; the same inputs and seed give byte-identical outputs (default 0)",
  },
  force: {
    type: "boolean",
    help: "overwrite this command's earlier outputs in the run dir",
  },
  progress: {
    type: "boolean",
    help: "print progress to stderr even when it is not a terminal",
  },
  help: { type: "boolean", short: "h", help: "show this help" },
};

const TRACE_FLAGS: Record<string, FlagSpec> = {
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
    help: "latents to record: z_H,z_L (default both)",
  },
  steps: {
    type: "string",
    arg: "SELECTOR",
    help: "steps to record (default all; grammar below)",
  },
  positions: {
    type: "string",
    arg: "SPEC",
    help: "positions: all | puzzle | prefix | 0-3,8 (default all)",
  },
  batch: { type: "string", arg: "N", help: "examples per batch (default 64)" },
  backend: {
    type: "string",
    arg: "NAME",
    help: `execution backend: ${
      BACKENDS.join(" | ")
    } (default wasm, sandboxed; native = onnxruntime-node, needs --allow-ffi: trusted workstations only)`,
  },
  "no-states-npy": {
    type: "boolean",
    help: "do not write the states.npy cache",
  },
  "no-gitignore": {
    type: "boolean",
    help: "do not write a .gitignore of * into a new run dir",
  },
  force: COMMON.force,
  progress: COMMON.progress,
  help: COMMON.help,
};

function usage(
  name: string,
  synopsis: string,
  flags: Record<string, FlagSpec>,
  extra = "",
): string {
  return `usage: trminterp ${name} ${synopsis}\n\nflags:\n${
    formatFlags(flags)
  }\n${extra ? `\n${extra}\n` : ""}\n${EXIT_CODES}`;
}

const TRACE_HELP = usage(
  "trace",
  "--run-dir DIR [flags]",
  TRACE_FLAGS,
  `Runs the model's recurrence step by step and writes DIR/trace.jsonl (header, step,
readout and example records; states inline as base64 float32) and DIR/states.npy
([rows, D] float32, a cache checked by sha256).

step selectors:
${SELECTOR_GRAMMAR.replace(/^/gm, "  ")}`,
);

const SAE_FLAGS: Record<string, FlagSpec> = {
  "run-dir": COMMON["run-dir"],
  seed: COMMON.seed,
  arch: { type: "string", arg: "NAME", help: "topk (default) or relu" },
  features: {
    type: "string",
    arg: "F",
    help: "dictionary size F (default expansion x D)",
  },
  expansion: {
    type: "string",
    arg: "E",
    help: "F = E x D when --features is not given (default 8)",
  },
  k: {
    type: "string",
    arg: "K",
    help: "active features per row for topk (default 16)",
  },
  l1: {
    type: "string",
    arg: "LAMBDA",
    help: "L1 coefficient for relu (default 5, with a warm-up)",
  },
  lr: { type: "string", arg: "LR", help: "Adam learning rate (default 1e-3)" },
  batch: {
    type: "string",
    arg: "N",
    help: "rows per optimiser step (default 1024)",
  },
  steps: { type: "string", arg: "N", help: "optimiser steps (default 3000)" },
  epochs: {
    type: "string",
    arg: "N",
    help: "passes over the training rows, instead of --steps",
  },
  latents: {
    type: "string",
    arg: "LATENT",
    help: "the latent to fit on: z_H (default) or z_L",
  },
  select: {
    type: "string",
    arg: "SELECTOR",
    help: "steps whose rows train the SAE (default all)",
  },
  holdout: {
    type: "string",
    arg: "FRAC",
    help: "held-out fraction of examples for the metrics (default 0.1)",
  },
  model: {
    type: "string",
    arg: "BUNDLE",
    help: "bundle for task accuracy recovered (default: the trace's model)",
  },
  "export-saelens": {
    type: "boolean",
    help: "also write DIR/saelens/ (cfg.json, sae_weights.safetensors)",
  },
  force: COMMON.force,
  progress: COMMON.progress,
  help: COMMON.help,
};

const SAE_HELP = usage(
  "sae fit",
  "--run-dir DIR [flags]",
  SAE_FLAGS,
  `Fits a sparse autoencoder (SAELens v6 conventions) on the trace's states and writes
DIR/sae.pt (torch.load(path, weights_only=True) opens it) and DIR/sae_metrics.json
(held-out metrics with their formulas, the loss curve and task accuracy recovered).`,
);

const INTERVENE_FLAGS: Record<string, FlagSpec> = {
  "run-dir": COMMON["run-dir"],
  policy: {
    type: "string",
    arg: "NAME",
    help: `${POLICY_NAMES.join(" | ")} (required)`,
  },
  features: {
    type: "string",
    arg: "LIST",
    help:
      "SAE features to edit and rank, e.g. 3,17 (default: rank the most active, edit the top one)",
  },
  steps: {
    type: "string",
    arg: "SELECTOR",
    help: "steps to act on (default all steps of the SAE's latent)",
  },
  positions: {
    type: "string",
    arg: "SPEC",
    help: "positions to act on (default the traced positions)",
  },
  value: {
    type: "string",
    arg: "V",
    help: "clamp_features: set the features to V",
  },
  scale: {
    type: "string",
    arg: "S",
    help: "clamp_features: multiply the features by S",
  },
  "ablate-to": {
    type: "string",
    arg: "zero|mean",
    help: "ablate_features: to 0 (default) or to the trace mean",
  },
  "source-example": {
    type: "string",
    arg: "ID",
    help: "patch_features: take activations from example ID",
  },
  "source-steps": {
    type: "string",
    arg: "SELECTOR",
    help: "patch_features: take them from this one step",
  },
  rank: {
    type: "string",
    arg: "N",
    help: "top features to report and scan per step (default 5)",
  },
  candidates: {
    type: "string",
    arg: "N",
    help: "most active features to rank when --features is absent (default 16)",
  },
  examples: {
    type: "string",
    arg: "N",
    help: "examples in the seeded ranking subsample (default 64)",
  },
  "random-features": {
    type: "string",
    arg: "N",
    help: "random features ablated for the reference median (default 16)",
  },
  seed: COMMON.seed,
  model: {
    type: "string",
    arg: "BUNDLE",
    help: "model bundle (default: the trace's)",
  },
  "save-trace": {
    type: "boolean",
    help: "save the intervened trace under DIR/interventions/<id>/",
  },
  force: COMMON.force,
  progress: COMMON.progress,
  help: COMMON.help,
};

const INTERVENE_HELP = usage(
  "intervene",
  "--run-dir DIR --policy NAME [--features LIST] [flags]",
  INTERVENE_FLAGS,
  `Edits SAE features of the SAE's latent during the rollout, keeping the SAE error term
(h' = h - decode(encode(h)) + decode(a')), and writes DIR/report.json: baseline vs
intervened, the top causal features (each ablated alone on a seeded subsample, ranked
by the drop in token accuracy, KL as tie-break) and the step x feature effect matrix.`,
);

function requireRunDir(
  v: Record<string, string | boolean | undefined>,
  cmd: string,
): string {
  const dir = v["run-dir"];
  if (typeof dir !== "string" || dir === "") {
    throw new InputError(
      `${cmd}: --run-dir is required; e.g. \`trminterp ${cmd} --run-dir runs/demo\``,
    );
  }
  return dir;
}

function parseLatents(v: string | boolean | undefined): Latent[] | undefined {
  if (typeof v !== "string") return undefined;
  const list = v.split(",").map((s) => s.trim()).filter(Boolean);
  for (const l of list) {
    if (l !== "z_H" && l !== "z_L") {
      throw new InputError(
        `--latents: unknown latent "${l}"; use z_H, z_L or z_H,z_L`,
      );
    }
  }
  if (!list.length) {
    throw new InputError(`--latents is empty; use z_H, z_L or z_H,z_L`);
  }
  return list as Latent[];
}

function parseBackend(
  v: string | boolean | undefined,
): BackendName | undefined {
  if (typeof v !== "string") return undefined;
  if (!(BACKENDS as readonly string[]).includes(v)) {
    throw new InputError(
      `--backend: unknown backend "${v}"; use ${BACKENDS.join(" or ")}`,
    );
  }
  return v as BackendName;
}

// The recorded command leaves out what does not change the outputs (where
// they go, overwriting, progress), so two runs in different dirs hash equal.
function provenanceArgs(cmd: string[], args: string[]): string[] {
  const out = [...cmd];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--run-dir") i++;
    else if (
      !a.startsWith("--run-dir=") && a !== "--force" && a !== "--progress"
    ) out.push(a);
  }
  return out;
}

function print(text: string): void {
  console.log(text);
}

async function trace(args: string[]): Promise<void> {
  const v = parseFlags("trace", args, TRACE_FLAGS);
  if (v.help) return print(TRACE_HELP);
  const runDir = requireRunDir(v, "trace");
  const model = typeof v.model === "string" ? v.model : DEMO_MODEL;
  let inputs = typeof v.inputs === "string" ? v.inputs : undefined;
  if (!inputs) {
    if (typeof v.model === "string") {
      throw new InputError(
        `trace: --inputs is required with --model; pass a puzzles .jsonl file or a dataset folder`,
      );
    }
    inputs = join(DEMO_MODEL, "test.jsonl");
  }
  const summary = await runTrace({
    runDir,
    model,
    inputs,
    seed: intFlag(v.seed, "--seed") ?? 0,
    limit: intFlag(v.limit, "--limit", 1),
    latents: parseLatents(v.latents),
    steps: typeof v.steps === "string" ? v.steps : undefined,
    positions: typeof v.positions === "string" ? v.positions : undefined,
    batch: intFlag(v.batch, "--batch", 1),
    backend: parseBackend(v.backend),
    force: v.force === true,
    gitignore: v["no-gitignore"] !== true,
    statesNpy: v["no-states-npy"] !== true,
    progress: v.progress === true || Deno.stderr.isTerminal(),
    command: provenanceArgs(["trace"], args),
  });
  console.error(
    `trace: ${summary.examples} examples, ${summary.rows} state rows, exact ${
      summary.exact.toFixed(4)
    }, token acc ${summary.tokenAcc.toFixed(4)}, ${
      summary.seconds.toFixed(2)
    }s -> ${summary.trace}`,
  );
  console.error(
    `per supervision step (exact / token): ${
      summary.perSup.map((p) =>
        `s${p.sup} ${p.exact.toFixed(4)}/${p.token.toFixed(4)}`
      ).join("  ")
    }`,
  );
}

async function saeFit(args: string[]): Promise<void> {
  const v = parseFlags("sae fit", args, SAE_FLAGS);
  if (v.help) return print(SAE_HELP);
  const runDir = requireRunDir(v, "sae fit");
  const latents = parseLatents(v.latents);
  if (latents && latents.length !== 1) {
    throw new InputError(`sae fit: --latents takes one latent, z_H or z_L`);
  }
  const arch = v.arch;
  if (arch !== undefined && arch !== "topk" && arch !== "relu") {
    throw new InputError(
      `--arch: unknown architecture "${arch}"; use topk or relu`,
    );
  }
  const m = await runSaeFit({
    runDir,
    seed: intFlag(v.seed, "--seed") ?? 0,
    arch: arch as "topk" | "relu" | undefined,
    features: intFlag(v.features, "--features", 1),
    expansion: numFlag(v.expansion, "--expansion"),
    k: intFlag(v.k, "--k", 1),
    l1: numFlag(v.l1, "--l1"),
    lr: numFlag(v.lr, "--lr"),
    batch: intFlag(v.batch, "--batch", 1),
    steps: intFlag(v.steps, "--steps", 1),
    epochs: intFlag(v.epochs, "--epochs", 1),
    latent: latents?.[0],
    select: typeof v.select === "string" ? v.select : undefined,
    holdout: numFlag(v.holdout, "--holdout"),
    model: typeof v.model === "string" ? v.model : undefined,
    exportSaeLens: v["export-saelens"] === true,
    force: v.force === true,
    progress: v.progress === true || Deno.stderr.isTerminal(),
    command: provenanceArgs(["sae", "fit"], args),
  });
  const t = m.task_accuracy_recovered;
  console.error(
    `sae fit: F=${m.config.d_sae} FVU ${m.metrics.fvu.value.toFixed(4)}, L0 ${
      m.metrics.l0.value.toFixed(2)
    }, dead ${
      m.metrics.dead_fraction.value.toFixed(3)
    }, task accuracy recovered ${
      t.value === null ? "n/a" : t.value.toFixed(4)
    } -> ${join(runDir, "sae.pt")}`,
  );
}

async function sae(args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === "fit") return await saeFit(rest);
  if (sub === undefined || sub === "--help" || sub === "-h") {
    return print(SAE_HELP);
  }
  throw new InputError(
    `unknown command "sae ${sub}"; the only sae command is \`trminterp sae fit\``,
  );
}

function intList(
  v: string | boolean | undefined,
  name: string,
): number[] | undefined {
  if (typeof v !== "string") return undefined;
  const out = v.split(",").map((x) => x.trim()).filter(Boolean).map((x) =>
    intFlag(x, name, 0)!
  );
  if (!out.length) {
    throw new InputError(`${name} is empty; give feature indices like 3,17`);
  }
  return out;
}

async function intervene(args: string[]): Promise<void> {
  const v = parseFlags("intervene", args, INTERVENE_FLAGS);
  if (v.help) return print(INTERVENE_HELP);
  const runDir = requireRunDir(v, "intervene");
  const policy = v.policy;
  if (typeof policy !== "string") {
    throw new InputError(
      `intervene: --policy is required: ${POLICY_NAMES.join(", ")}`,
    );
  }
  if (!(POLICY_NAMES as readonly string[]).includes(policy)) {
    const hint = nearest(policy, [...POLICY_NAMES]);
    throw new InputError(
      `--policy: unknown policy "${policy}"${
        hint ? `; did you mean ${hint}?` : ""
      } (v0 has ${POLICY_NAMES.join(", ")})`,
    );
  }
  const ablateTo = v["ablate-to"];
  if (ablateTo !== undefined && ablateTo !== "zero" && ablateTo !== "mean") {
    throw new InputError(`--ablate-to must be zero or mean, got "${ablateTo}"`);
  }
  const r = await runIntervene({
    runDir,
    policy: policy as PolicyName,
    features: intList(v.features, "--features"),
    steps: typeof v.steps === "string" ? v.steps : undefined,
    positions: typeof v.positions === "string" ? v.positions : undefined,
    value: numFlag(v.value, "--value"),
    scale: numFlag(v.scale, "--scale"),
    ablateTo: ablateTo as "zero" | "mean" | undefined,
    sourceExample: typeof v["source-example"] === "string"
      ? v["source-example"]
      : undefined,
    sourceSteps: typeof v["source-steps"] === "string"
      ? v["source-steps"]
      : undefined,
    rank: intFlag(v.rank, "--rank", 1),
    candidates: intFlag(v.candidates, "--candidates", 1),
    examples: intFlag(v.examples, "--examples", 1),
    randomFeatures: intFlag(v["random-features"], "--random-features", 0),
    seed: intFlag(v.seed, "--seed") ?? 0,
    model: typeof v.model === "string" ? v.model : undefined,
    saveTrace: v["save-trace"] === true,
    force: v.force === true,
    progress: v.progress === true || Deno.stderr.isTerminal(),
    command: provenanceArgs(["intervene"], args),
  });
  const c = r.comparison, top = r.causal.ranking[0];
  console.error(
    `intervene: ${r.policy.name} on ${c.examples} examples: token acc ${
      c.baseline.token_acc.toFixed(4)
    } -> ${c.intervened.token_acc.toFixed(4)}, exact ${
      c.baseline.exact_acc.toFixed(4)
    } -> ${c.intervened.exact_acc.toFixed(4)}, KL ${
      c.delta.mean_kl.toExponential(2)
    }; top feature ${
      top ? `${top.feature} (effect ${top.effect.toFixed(4)})` : "n/a"
    }, random median ${r.causal.random_features.median_effect.toFixed(4)} -> ${
      join(runDir, "report.json")
    }`,
  );
}

const COMMANDS: Record<string, (args: string[]) => Promise<void>> = {
  trace,
  sae,
  intervene,
};

/**
 * Run the CLI on `args` and return the exit code.
 *
 * @example
 * ```ts ignore
 * import { main } from "./main.ts";
 * Deno.exit(await main(["--version"]));
 * ```
 */
export async function main(args: string[]): Promise<number> {
  try {
    const [cmd, ...rest] = args;
    if (
      cmd === undefined || cmd === "--help" || cmd === "-h" || cmd === "help"
    ) {
      print(MAIN_HELP);
      return cmd === undefined ? 2 : 0;
    }
    if (cmd === "--version" || cmd === "-V") {
      print(`trminterp ${VERSION}`);
      return 0;
    }
    const run = COMMANDS[cmd];
    if (!run) {
      const hint = nearest(cmd, Object.keys(COMMANDS));
      throw new InputError(
        `unknown command "${cmd}"${
          hint ? `; did you mean "${hint}"?` : ""
        } (see \`trminterp --help\`)`,
      );
    }
    await run(rest);
    return 0;
  } catch (e) {
    if (e instanceof InputError) {
      console.error(`trminterp: error: ${e.message}`);
      return e.exitCode;
    }
    if (
      e instanceof Deno.errors.NotCapable ||
      e instanceof Deno.errors.PermissionDenied
    ) {
      console.error(
        `trminterp: error: ${String((e as Error).message).split("\n")[0]}`,
      );
      return 2;
    }
    console.error(
      `trminterp: internal error: ${
        e instanceof Error ? e.stack ?? e.message : String(e)
      }`,
    );
    return 1;
  }
}
