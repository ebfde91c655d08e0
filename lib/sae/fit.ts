/**
 * `trminterp sae fit`: fit a sparse autoencoder on a trace's states and write
 * `sae.pt` and `sae_metrics.json` (plus an optional SAELens folder).
 *
 * @module
 */
import { firstNonFinite } from "../finite.ts";
import {
  checkPayload,
  type SaeMetricsJson,
  schemas,
  type TaskAccuracy,
} from "../schema/mod.ts";
import { join } from "node:path";
import { StepSelector } from "../model/address.ts";
import { editSteps } from "./fitted_steps.ts";
import { type Bundle, loadBundle } from "../model/bundle.ts";
import { InputError, OptionError } from "../errors.ts";
import { SAE_DEFAULTS } from "./defaults.ts";
import { splitByGroup } from "./holdout.ts";
import { round7 } from "../round.ts";
import { scorePrediction } from "../trace/inputs.ts";
import { OutputSet, sha256Hex } from "../io/atomic.ts";
import { type Latent, rollout, type RolloutExample } from "../model/rollout.ts";
import type { BackendName } from "../model/backend.ts";
import {
  type InterventionPolicy,
  policyHook,
  ReconstructPolicy,
  ZeroPolicy,
} from "../edit/policy.ts";
import { openRunDir, type RunDir } from "../io/run_dir.ts";
import { Rng } from "../rng.ts";
import { headerPath } from "../trace/trace.ts";
import { MAX_SAE_WEIGHTS, type SAE, type SAEArch } from "./sae.ts";
import {
  encodeSaePt,
  type SaeFileConfig,
  writeSaeLensFolder,
} from "./sae_pt.ts";
import { saeMetrics } from "./metrics.ts";
import { trainSAE } from "./train/trainer.ts";
import { dictionarySize, resolveFitOptions } from "./train/options.ts";
import { TraceDataset, type TraceRows } from "../trace/dataset.ts";
import { VERSION } from "../version.ts";

/** Options of the `sae fit` command. */
export interface SaeFitOptions {
  /** Run dir holding trace.jsonl. */
  runDir: string;
  /** Seed for init, batch order and the held-out split. */
  seed: number;
  /** Architecture (default `SAE_DEFAULTS.arch`). */
  arch?: SAEArch;
  /** Dictionary size F (default expansion × D). */
  features?: number;
  /** F = expansion × D when `features` is not given (default `SAE_DEFAULTS.expansion`). */
  expansion?: number;
  /** Active latents for topk and batchtopk (default `round(D · SAE_DEFAULTS.archs.topk.kPerD)`, at most `SAE_DEFAULTS.archs.topk.k` and F). */
  k?: number;
  /** L1 coefficient for relu (default `SAE_DEFAULTS.archs.relu.l1`). */
  l1?: number;
  /** Adam learning rate (default `SAE_DEFAULTS.lr`). */
  lr?: number;
  /** Rows per optimiser step (default `SAE_DEFAULTS.batch`). */
  batch?: number;
  /** Optimiser steps (default `SAE_DEFAULTS.trainSteps`). */
  trainSteps?: number;
  /** Passes over the training rows, instead of `trainSteps`. */
  epochs?: number;
  /** The latent to fit on (default `SAE_DEFAULTS.latent`). */
  latent?: Latent;
  /** Step selector of the training rows (default `all`). */
  steps?: string;
  /** Held-out fraction of examples (default `SAE_DEFAULTS.holdout`). */
  holdout?: number;
  /** Input normalization while training (default `SAE_DEFAULTS.normalize`); folded into the saved weights. */
  normalize?: "expected_average_only_in" | "none";
  /** Use at most this many of the selected rows, a subsample drawn with the seed (default all). */
  maxRows?: number;
  /** Also write a SAELens v6 folder under `<run-dir>/saelens/`. */
  exportSaeLens?: boolean;
  /** Model bundle for task accuracy recovered (default: the trace's, its header path resolved against the run dir). */
  model?: string;
  /**
   * The backend for task accuracy recovered (default: the trace's). All of
   * its rollouts (clean, spliced, zeroed) run on it, so the ratio stays
   * comparable; a sandboxed run of a native trace passes `wasm`.
   */
  taskBackend?: BackendName;
  /** When set, task accuracy recovered is not measured; this reason is recorded instead. */
  skipTaskAccuracy?: string;
  /** Overwrite existing sae.pt / sae_metrics.json. */
  force?: boolean;
  /** Progress: optimiser steps done of total. */
  onProgress?: (done: number, total: number) => void;
  /**
   * Progress of task accuracy recovered, after training: held-out example
   * rollouts done of total (three per example: clean, SAE, zeros), in parts
   * of a batch as {@linkcode rollout} reports them.
   */
  onTaskProgress?: (done: number, total: number) => void;
  /** The command line, recorded in provenance. */
  command?: string[];
}

/**
 * Run the `sae fit` command.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runSaeFit } from "./fit.ts";
 * import { runTrace } from "../trace/trace.ts";
 * const demo = new URL("../../references/models/sudoku4-trm", import.meta.url).pathname;
 * const dir = await Deno.makeTempDir();
 * try {
 *   await runTrace({ runDir: dir, model: demo, inputs: `${demo}/test.jsonl`, seed: 0, limit: 16, latents: ["z_H"] });
 *   const m = await runSaeFit({ runDir: dir, seed: 0, trainSteps: 100, features: 128, k: 8 });
 *   assert.ok(m.metrics.fvu.value < 0.5, `FVU ${m.metrics.fvu.value}`);
 *   assert.equal(m.config.latent, "z_H");
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function runSaeFit(opts: SaeFitOptions): Promise<SaeMetricsJson> {
  if (opts.epochs !== undefined && opts.trainSteps !== undefined) {
    throw new OptionError(
      "epochs",
      "{epochs} and {trainSteps} both set how long to train; give one",
    );
  }
  const holdout = opts.holdout ?? SAE_DEFAULTS.holdout;
  if (!(holdout > 0 && holdout < 1)) {
    throw new OptionError(
      "holdout",
      `{holdout} must lie in (0, 1), got ${holdout}`,
    );
  }
  const latent = opts.latent ?? SAE_DEFAULTS.latent;
  const select = opts.steps ?? SAE_DEFAULTS.steps;
  // A bad selector fails here, before the run dir is touched.
  StepSelector.parse(select);
  if (
    opts.maxRows !== undefined &&
    !(Number.isInteger(opts.maxRows) && opts.maxRows >= 1)
  ) {
    throw new OptionError(
      "maxRows",
      `{maxRows} must be a positive integer, got ${opts.maxRows}`,
    );
  }
  // Held for the whole fit: no other command replaces the trace meanwhile.
  await using run = await openRunDir(opts.runDir);
  // A link where the export goes is refused before the work, not after it.
  if (opts.exportSaeLens) await run.file("saelens/cfg.json");
  // Reads every shard of a sharded run. Streams rows from states.npy when
  // the trace is large, so memory stays bounded by the batch and the
  // parameters (plus a few bytes of metadata per row).
  const ds = await TraceDataset.open(opts.runDir, {
    latents: [latent],
    steps: select,
    readouts: false,
  });
  try {
    return await fitAndWrite(opts, run, ds, {
      holdout,
      latent,
      select,
    });
  } finally {
    ds.close();
  }
}

async function fitAndWrite(
  opts: SaeFitOptions,
  run: RunDir,
  ds: TraceRows,
  c: {
    holdout: number;
    latent: Latent;
    select: string;
  },
): Promise<SaeMetricsJson> {
  const { holdout, latent, select } = c;
  const D = ds.dim;
  // --max-rows: a seeded subsample of the rows, in trace order.
  const pick = opts.maxRows !== undefined && opts.maxRows < ds.n
    ? Int32Array.from(
      new Rng(opts.seed, 3).sample(ds.n, opts.maxRows).sort((a, b) => a - b),
    )
    : null;
  const N = pick ? pick.length : ds.n;
  if (N === 0) {
    throw new OptionError(
      "steps",
      `the trace in ${opts.runDir} has no ${latent} rows at {steps} "${select}"; trace that latent or change {steps}`,
    );
  }
  const F = dictionarySize(D, {
    d_sae: opts.features,
    expansion: opts.expansion,
  });
  if (!(F >= 1 && F * D <= MAX_SAE_WEIGHTS)) {
    throw new OptionError(
      opts.features === undefined ? "expansion" : "features",
      `{${
        opts.features === undefined ? "expansion" : "features"
      }} gives F=${F} features; with D=${D} the SAE may have at most ${
        Math.floor(MAX_SAE_WEIGHTS / D)
      } (D × F ≤ ${MAX_SAE_WEIGHTS} weights per matrix)`,
    );
  }
  if (ds.meta.examples.length < 2) {
    throw new InputError(
      `the trace holds ${ds.meta.examples.length} example; a held-out split needs at least 2`,
    );
  }
  const exampleOf = pick
    ? pick.map((r) => ds.meta.exampleOf[r])
    : ds.meta.exampleOf;
  const split = splitByGroup(exampleOf, holdout, opts.seed);
  const source = {
    n: N,
    dim: D,
    rows: pick
      ? (ix: Int32Array, out: Float32Array) =>
        ds.rows(ix.map((i) => pick[i]), out)
      : (ix: Int32Array, out: Float32Array) => ds.rows(ix, out),
  };
  // Only what the caller set: resolveFitOptions applies the defaults, once.
  const resolved = resolveFitOptions(source, {
    arch: opts.arch,
    d_sae: F,
    k: opts.k,
    l1_coefficient: opts.l1,
    lr: opts.lr,
    batch_size: opts.batch,
    steps: opts.trainSteps,
    epochs: opts.epochs,
    seed: opts.seed,
    indices: split.train,
    normalize_activations: opts.normalize,
  });
  // sae.pt lands last and marks a finished fit (see the writes below).
  await run.checkOutputs(["sae.pt"], opts.force);
  await run.checkOutputs(["sae_metrics.json"], true);
  const fit = trainSAE(
    source,
    resolved,
    (p) => opts.onProgress?.(p.step + 1, p.steps),
  );
  const metrics = saeMetrics(fit.sae, source, split.heldout);

  const header = ds.meta.header;
  const traceDigest = ds.meta.digest;
  const cfg: SaeFileConfig = {
    ...fit.sae.cfg,
    format: "trminterp-sae/1",
    latent,
    steps: select,
    trace_digest: traceDigest,
    model_sha256: header.model.sha256,
    seed: opts.seed,
    training: {
      ...fit.training,
      holdout,
      ...(opts.maxRows === undefined ? {} : { max_rows: opts.maxRows }),
      steps_taken: fit.steps,
    },
  };
  const heldoutExamples = new Set<string>();
  for (const r of split.heldout) {
    heldoutExamples.add(ds.meta.examples[exampleOf[r]]);
  }
  const task = opts.skipTaskAccuracy !== undefined
    ? { value: null, reason: opts.skipTaskAccuracy }
    : await taskAccuracy(
      opts.model ?? headerPath(ds.meta.runDir, header.model.path),
      header.model.sha256,
      fit.sae,
      {
        latent,
        // The splice acts where the SAE was fitted: the recorded steps its
        // selector chose, never the updates the trace did not record.
        selector: editSteps(header.model.schedule, {
          recorded: header.record.steps,
          fitted: select,
          latent,
        }).selector,
        positions: header.record.positions,
        examples: ds.examples().filter((e) => heldoutExamples.has(e.id)),
        backend: opts.taskBackend ?? header.backend,
        traced: header.backend,
        batch: header.record.batch,
      },
      opts.onTaskProgress,
    );
  checkPayload(schemas.SaeFileConfig, cfg, "the sae.pt cfg");
  const ptBytes = encodeSaePt(fit.sae, cfg);
  const out: SaeMetricsJson = {
    format: "trminterp-sae-metrics/1",
    provenance: {
      tool: { name: "trminterp", version: VERSION },
      command: opts.command ?? [],
      seed: opts.seed,
      trace_digest: traceDigest,
      model_sha256: header.model.sha256,
      sae_pt_sha256: sha256Hex(ptBytes),
    },
    config: cfg,
    split: {
      holdout,
      train_rows: split.train.length,
      heldout_rows: split.heldout.length,
      heldout_examples: heldoutExamples.size,
      heldout_example_ids: ds.meta.examples.filter((e) =>
        heldoutExamples.has(e)
      ),
    },
    metrics,
    task_accuracy_recovered: task,
    loss_curve: fit.curve.map((p) => ({
      step: p.step,
      loss: round7(p.loss),
      mse: round7(p.mse),
      aux: round7(p.aux),
      l1: round7(p.l1),
    })),
    train_dead_fraction: fit.dead_fraction,
  };
  const inf = firstNonFinite({
    W_enc: fit.sae.W_enc,
    W_dec: fit.sae.W_dec,
    b_enc: fit.sae.b_enc,
    b_dec: fit.sae.b_dec,
  }) ?? firstNonFinite(out);
  if (inf) {
    throw new InputError(
      `the fitted SAE would hold ${inf.value} at ${inf.path}: the trace's states are too large for float32 arithmetic (near ±3.4e38); check the trace and re-trace, or fit with a smaller --lr`,
    );
  }
  checkPayload(schemas.SaeMetricsJson, out, "sae_metrics.json");
  // Every file is written before any lands, so a full disk leaves no
  // sae_metrics.json without its sae.pt.
  await using outputs = new OutputSet();
  if (opts.exportSaeLens) {
    const dir = await run.subdir("saelens");
    await run.checkOutputs(
      ["saelens/cfg.json", "saelens/sae_weights.safetensors"],
      true,
    );
    await writeSaeLensFolder(dir, fit.sae, cfg, header.model.name, outputs);
  }
  await outputs.add(
    join(opts.runDir, "sae_metrics.json"),
    JSON.stringify(out, null, 2) + "\n",
  );
  await outputs.add(join(opts.runDir, "sae.pt"), ptBytes);
  await outputs.commit();
  return out;
}

interface SpliceSpec {
  latent: Latent;
  selector: StepSelector;
  positions: number[];
  examples: RolloutExample[];
  backend: BackendName;
  traced: BackendName;
  batch: number;
}

async function taskAccuracy(
  modelPath: string,
  modelSha: string,
  sae: SAE,
  spec: SpliceSpec,
  onProgress?: (done: number, total: number) => void,
): Promise<TaskAccuracy | { value: null; reason: string }> {
  let bundle: Bundle;
  try {
    bundle = await loadBundle(modelPath, { backend: spec.backend });
  } catch (e) {
    return {
      value: null,
      reason: `model not at hand (${(e as Error).message.split("\n")[0]})`,
    };
  }
  try {
    if (bundle.sha256 !== modelSha) {
      return {
        value: null,
        reason:
          `the bundle at ${modelPath} is not the traced model (sha256 differs)`,
      };
    }
    const site = {
      latent: spec.latent,
      steps: spec.selector,
      positions: spec.positions,
    };
    const n = spec.examples.length;
    const acc = async (policy: InterventionPolicy | null, k: number) => {
      const outcomes = await rollout(bundle, spec.examples, {
        batch: spec.batch,
        hooks: policy ? [policyHook(policy, sae, site)] : [],
        onProgress: onProgress && ((d) => onProgress(k * n + d, 3 * n)),
      });
      let tok = 0, exact = 0;
      for (const o of outcomes) {
        const s = scorePrediction(o.pred, o.label);
        tok += s.acc;
        if (s.exact) exact++;
      }
      return { tok: tok / outcomes.length, exact: exact / outcomes.length };
    };
    const clean = await acc(null, 0);
    const spliced = await acc(new ReconstructPolicy(), 1);
    const zero = await acc(new ZeroPolicy(), 2);
    const denom = clean.tok - zero.tok;
    return {
      formula:
        "(acc_sae - acc_zero) / (acc_clean - acc_zero), token accuracy at the halting step on the held-out " +
        `examples; the SAE reconstruction (sae) or zeros (zero) replace the fitted latent at the fitted steps (${spec.selector.text}) and positions` +
        (spec.backend === spec.traced
          ? ""
          : `; rolled out on ${spec.backend} (the trace ran on ${spec.traced})`),
      value: Math.abs(denom) > 1e-12
        ? round7((spliced.tok - zero.tok) / denom)
        : null,
      acc_clean: round7(clean.tok),
      acc_sae: round7(spliced.tok),
      acc_zero: round7(zero.tok),
      exact: {
        clean: round7(clean.exact),
        sae: round7(spliced.exact),
        zero: round7(zero.exact),
      },
      examples: spec.examples.length,
    };
  } finally {
    await bundle.release();
  }
}

export type { SaeMetricsJson, TaskAccuracy };
