/**
 * `trminterp sae fit`: flags, up-front checks, and the summary.
 *
 * @module
 */
import { InputError } from "../lib/errors.ts";
import { ARCHITECTURES, type SAEArch } from "../lib/sae/arch/mod.ts";
import { SAE_DEFAULTS } from "../lib/sae/defaults.ts";
import { runSaeFit, type SaeMetricsJson } from "../lib/sae/fit.ts";
import type { BackendName } from "../lib/model/backend.ts";
import { readTraceHeader, traceRunDir } from "../lib/trace/dataset.ts";
import { headerPath } from "../lib/trace/trace.ts";
import {
  COMMON,
  type FlagValues,
  parseLatents,
  provenanceArgs,
  requireRunDir,
  str,
  usage,
  wantProgress,
} from "./common.ts";
import { type FlagSpec, intFlag, numFlag, parseFlags } from "./flags.ts";
import {
  checkPermissions,
  missingGrants,
  ortWasmFiles,
  permissionFlags,
} from "./permissions.ts";
import { Progress } from "./progress.ts";
import { terminalSafe } from "./safe_text.ts";
import { saeSummary } from "./summary.ts";

const D = SAE_DEFAULTS;

/** The flags of `sae fit`; their defaults come from `SAE_DEFAULTS`.  *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SAE_FLAGS } from "./sae_fit.ts";
 * import { SAE_DEFAULTS } from "../lib/sae/defaults.ts";
 * assert.match(SAE_FLAGS.k.help, new RegExp(`at most ${SAE_DEFAULTS.archs.topk.k}\\)`));
 * assert.match(SAE_FLAGS.lr.help, new RegExp(`default ${SAE_DEFAULTS.lr}`));
 * ```
 */
export const SAE_FLAGS: Record<string, FlagSpec> = {
  "run-dir": COMMON["run-dir"],
  seed: COMMON.seed,
  arch: {
    type: "string",
    arg: "NAME",
    help: `${Object.keys(ARCHITECTURES).join(" | ")} (default ${D.arch}). ${
      Object.values(ARCHITECTURES).map((a) => `${a.name}: ${a.summary}`).join(
        "; ",
      )
    }`,
  },
  features: {
    type: "string",
    arg: "F",
    help: "dictionary size F (default expansion x D)",
  },
  expansion: {
    type: "string",
    arg: "E",
    help: `F = E x D when --features is not given (default ${D.expansion})`,
  },
  k: {
    type: "string",
    arg: "K",
    help:
      `active features per row for topk, per row on average for batchtopk (default round(D/${
        1 / Number(D.archs.topk.kPerD)
      }), at most ${D.archs.topk.k})`,
  },
  l1: {
    type: "string",
    arg: "LAMBDA",
    help:
      `L1 coefficient for relu (default ${D.archs.relu.l1}, ramped up over the first ${
        100 * Number(D.archs.relu.l1WarmupFraction)
      }% of the steps)`,
  },
  lr: {
    type: "string",
    arg: "LR",
    help: `Adam learning rate (default ${D.lr}${
      Object.entries(D.archs).filter(([, a]) => a.lr !== undefined).map((
        [n, a],
      ) => `, ${n} ${a.lr}`).join("")
    }; betas ${D.beta1}, ${D.beta2}, eps ${D.eps}${
      D.lrDecayFraction > 0
        ? `; decays linearly to 0 over the last ${
          100 * D.lrDecayFraction
        }% of the steps`
        : ""
    })`,
  },
  batch: {
    type: "string",
    arg: "N",
    help: `rows per optimiser step (default ${D.batch})`,
  },
  "train-steps": {
    type: "string",
    arg: "N",
    help: `optimiser steps (default ${D.trainSteps})`,
  },
  epochs: {
    type: "string",
    arg: "N",
    help: "passes over the training rows, instead of --train-steps",
  },
  latents: {
    type: "string",
    arg: "LATENT",
    help: `the latent to fit on: z_H or z_L (default ${D.latent})`,
  },
  steps: {
    type: "string",
    arg: "SELECTOR",
    help: `steps whose rows train the SAE (default ${D.steps})`,
  },
  "max-rows": {
    type: "string",
    arg: "N",
    help:
      "fit on at most N of the selected rows, a subsample drawn with --seed (default all)",
  },
  holdout: {
    type: "string",
    arg: "FRAC",
    help:
      `held-out fraction of examples for the metrics (default ${D.holdout})`,
  },
  normalize: {
    type: "string",
    arg: "MODE",
    help:
      `scale inputs to mean |x| = sqrt(D) while training, folded into the saved weights: expected_average_only_in | none (default ${D.normalize})`,
  },
  model: {
    type: "string",
    arg: "BUNDLE",
    help:
      "bundle for task accuracy recovered (default: the trace's model, its path taken relative to DIR)",
  },
  "export-saelens": {
    type: "boolean",
    help: "also write DIR/saelens/ (cfg.json, sae_weights.safetensors)",
  },
  force: COMMON.force,
  progress: COMMON.progress,
  help: COMMON.help,
};

/** `trminterp sae fit --help`.  *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SAE_HELP } from "./sae_fit.ts";
 * assert.match(SAE_HELP, /--train-steps N/);
 * ```
 */
export const SAE_HELP: string = usage(
  "sae fit",
  "--run-dir DIR [flags]",
  SAE_FLAGS,
  `Fits a sparse autoencoder (SAELens v6 conventions) on the trace's states and writes
DIR/sae.pt (torch.load(path, weights_only=True) opens it) and DIR/sae_metrics.json
(held-out metrics with their formulas, the loss curve and task accuracy recovered).
A sharded run (DIR/shards/) is read shard by shard; the result does not depend on
the shard count.`,
);

/**
 * Run `trminterp sae fit` on its arguments (after `sae fit`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { saeFit } from "./sae_fit.ts";
 * import { trace } from "./trace.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await trace(["--run-dir", dir, "--limit", "4", "--latents", "z_H"]);
 *   const m = await saeFit(["--run-dir", dir, "--train-steps", "20", "--features", "32", "--k", "4"]);
 *   assert.equal(m?.config.d_sae, 32);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function saeFit(args: string[]): Promise<SaeMetricsJson | void> {
  const v: FlagValues = parseFlags("sae fit", args, SAE_FLAGS);
  if (v.help) return console.log(SAE_HELP);
  const runDir = requireRunDir(v, "sae fit");
  const latents = parseLatents(v.latents);
  if (latents && latents.length !== 1) {
    throw new InputError(`sae fit: --latents takes one latent, z_H or z_L`);
  }
  await checkPermissions({
    command: "sae fit",
    read: [runDir],
    write: [runDir],
  });
  // The model is optional: without its grant, task accuracy recovered is
  // recorded as null with the reason, and nothing prompts.
  const header = await readTraceHeader(runDir);
  const model = str(v, "model") ??
    headerPath(await traceRunDir(runDir), header.model.path);
  // A native trace's task accuracy runs on WASM without --allow-ffi (the
  // README's sandboxed line): all three of its rollouts on the same backend.
  const ffi = (await Deno.permissions.query({ name: "ffi" })).state ===
    "granted";
  const taskBackend = header.backend === "native" && !ffi
    ? "wasm"
    : header.backend;
  const needs = {
    command: "sae fit",
    read: [runDir, model, ...ortWasmFiles(taskBackend)],
    write: [runDir],
    ffi: taskBackend === "native",
  };
  const missing = await missingGrants(needs);
  const progress = new Progress("sae fit", 0, "steps", wantProgress(v));
  // Task accuracy recovered rolls the held-out examples out after training.
  let task: Progress | undefined;
  const m = await runSaeFit({
    runDir,
    seed: intFlag(v.seed, "--seed") ?? 0,
    arch: str(v, "arch") as SAEArch | undefined,
    features: intFlag(v.features, "--features", 1),
    expansion: numFlag(v.expansion, "--expansion"),
    k: intFlag(v.k, "--k", 1),
    l1: numFlag(v.l1, "--l1"),
    lr: numFlag(v.lr, "--lr"),
    batch: intFlag(v.batch, "--batch", 1),
    trainSteps: intFlag(v["train-steps"], "--train-steps", 1),
    epochs: intFlag(v.epochs, "--epochs", 1),
    latent: latents?.[0],
    steps: str(v, "steps"),
    holdout: numFlag(v.holdout, "--holdout"),
    normalize: parseNormalize(v.normalize),
    maxRows: intFlag(v["max-rows"], "--max-rows", 1),
    model,
    taskBackend: taskBackend as BackendName,
    skipTaskAccuracy: missing.length
      ? `model not at hand: no ${missing.join(" ")}; run with ${
        permissionFlags(needs)
      } to measure it`
      : undefined,
    exportSaeLens: v["export-saelens"] === true,
    force: v.force === true,
    onProgress: (done, total) => {
      progress.total = total;
      progress.update(done);
    },
    onTaskProgress: (done, total) => {
      if (!task) progress.done(); // the training line ends
      task ??= new Progress(
        "sae fit: task accuracy",
        total,
        "example rollouts",
        wantProgress(v),
      );
      task.update(done);
    },
    command: provenanceArgs(["sae", "fit"], args),
  });
  (task ?? progress).done();
  console.log(terminalSafe(saeSummary(m, runDir)));
  return m;
}

function parseNormalize(
  v: string | boolean | undefined,
): "expected_average_only_in" | "none" | undefined {
  if (v === undefined) return undefined;
  if (v !== "expected_average_only_in" && v !== "none") {
    throw new InputError(
      `--normalize must be expected_average_only_in or none, got "${v}"`,
    );
  }
  return v;
}
