/**
 * `trminterp sae fit`: fit a sparse autoencoder on a trace's states and write
 * `sae.pt` and `sae_metrics.json` (plus an optional SAELens folder).
 *
 * @module
 */
import { join } from "node:path";
import { StepSelector } from "../model/address.ts";
import { type Bundle, loadBundle } from "../model/bundle.ts";
import { InputError } from "../errors.ts";
import { splitByGroup } from "./holdout.ts";
import { rowEditHook } from "../model/hooks.ts";
import { round7 } from "../intervene/evaluate.ts";
import { scorePrediction } from "../trace/inputs.ts";
import { sha256File, sha256Hex, writeFileAtomic } from "../io/atomic.ts";
import { Progress } from "../../cli/progress.ts";
import { type Latent, puzzleBatch, runRollout } from "../model/rollout.ts";
import { pathExists, prepareRunDir } from "../io/run_dir.ts";
import { checkPermissions, ortWasmPath } from "../../cli/permissions.ts";
import type { SAE, SAEArch } from "./sae.ts";
import {
  encodeSaePt,
  type SaeFileConfig,
  writeSaeLensFolder,
} from "./sae_pt.ts";
import { type SAEMetrics, saeMetrics } from "./metrics.ts";
import { type FitOptions, fitSAE, type LossPoint } from "./train.ts";
import type { TraceExample } from "../schema/schema.ts";
import { TraceDataset, type TraceRows } from "../trace/dataset.ts";
import { VERSION } from "../version.ts";

/** Options of the `sae fit` command. */
export interface SaeFitOptions {
  /** Run dir holding trace.jsonl. */
  runDir: string;
  /** Seed for init, batch order and the held-out split. */
  seed: number;
  /** `topk` (default) or `relu`. */
  arch?: SAEArch;
  /** Dictionary size F. */
  features?: number;
  /** F = expansion × D when `features` is not given (default 8). */
  expansion?: number;
  /** TopK k (default 16, at most F). */
  k?: number;
  /** L1 coefficient for relu. */
  l1?: number;
  /** Adam learning rate. */
  lr?: number;
  /** Rows per step. */
  batch?: number;
  /** Optimiser steps. */
  steps?: number;
  /** Epochs, when `steps` is not given. */
  epochs?: number;
  /** The latent to fit on (default z_H). */
  latent?: Latent;
  /** Step selector of the training rows (default all). */
  select?: string;
  /** Held-out fraction of examples (default 0.1). */
  holdout?: number;
  /** Also write a SAELens v6 folder under `<run-dir>/saelens/`. */
  exportSaeLens?: boolean;
  /** Model bundle for task accuracy recovered (default: the trace's). */
  model?: string;
  /** Overwrite existing sae.pt / sae_metrics.json. */
  force?: boolean;
  /** Progress on stderr. */
  progress?: boolean;
  /** The command line, recorded in provenance. */
  command?: string[];
}

/** Task accuracy with the SAE spliced in, against clean and zero-ablated runs. */
export interface TaskAccuracy {
  /** The formula used. */
  formula: string;
  /** `(acc_sae − acc_zero) / (acc_clean − acc_zero)` on token accuracy; null when undefined. */
  value: number | null;
  /** Token accuracy of the clean model on the held-out examples. */
  acc_clean: number;
  /** Token accuracy with the SAE reconstruction spliced in. */
  acc_sae: number;
  /** Token accuracy with the traced rows set to zero. */
  acc_zero: number;
  /** The same three for exact accuracy. */
  exact: { clean: number; sae: number; zero: number };
  /** Held-out examples evaluated. */
  examples: number;
}

/** The content of `sae_metrics.json`. */
export interface SaeMetricsJson {
  /** Format tag. */
  format: "trminterp-sae-metrics/1";
  /** Provenance of the fit. */
  provenance: {
    tool: { name: "trminterp"; version: string };
    command: string[];
    seed: number;
    trace_sha256: string;
    model_sha256: string;
    sae_pt_sha256: string;
  };
  /** The SAE and training configuration, as used. */
  config: SaeFileConfig;
  /** Sizes of the split. */
  split: {
    holdout: number;
    train_rows: number;
    heldout_rows: number;
    heldout_examples: number;
    heldout_example_ids: string[];
  };
  /** Metrics on the held-out rows. */
  metrics: SAEMetrics;
  /** Task accuracy recovered, or null with the reason. */
  task_accuracy_recovered: TaskAccuracy | { value: null; reason: string };
  /** Loss curve (sampled training minibatch losses). */
  loss_curve: LossPoint[];
  /** Training dead fraction at the end (window-based). */
  train_dead_fraction: number;
}

/**
 * Run the `sae fit` command.
 *
 * @example
 * ```ts ignore
 * import { runSaeFit } from "./fit.ts";
 * const m = await runSaeFit({ runDir: "runs/demo", seed: 0 });
 * console.log(m.metrics.fvu.value);
 * ```
 */
export async function runSaeFit(opts: SaeFitOptions): Promise<SaeMetricsJson> {
  const holdout = opts.holdout ?? 0.1;
  if (!(holdout > 0 && holdout < 1)) {
    throw new InputError(`--holdout must lie in (0, 1), got ${holdout}`);
  }
  const latent = opts.latent ?? "z_H";
  const select = opts.select ?? "all";
  const selector = StepSelector.parse(select);
  await checkPermissions({
    command: "sae fit",
    read: [opts.runDir],
    write: [opts.runDir],
  });
  if (!(await pathExists(join(opts.runDir, "trace.jsonl")))) {
    throw new InputError(
      `no trace.jsonl in ${opts.runDir}; run \`trminterp trace --run-dir ${opts.runDir}\` first`,
    );
  }
  // Streams rows from states.npy when the trace is large, so memory stays
  // bounded by the batch and the parameters.
  const ds = await TraceDataset.open(opts.runDir, {
    latents: [latent],
    steps: select,
    readouts: false,
  });
  try {
    return await fitAndWrite(opts, ds, { holdout, latent, select, selector });
  } finally {
    ds.close();
  }
}

async function fitAndWrite(
  opts: SaeFitOptions,
  ds: TraceRows,
  c: {
    holdout: number;
    latent: Latent;
    select: string;
    selector: StepSelector;
  },
): Promise<SaeMetricsJson> {
  const { holdout, latent, select, selector } = c;
  const N = ds.n, D = ds.dim;
  if (N === 0) {
    throw new InputError(
      `the trace in ${opts.runDir} has no ${latent} rows at steps "${select}"; trace that latent or change --select`,
    );
  }
  const F = opts.features ?? Math.round((opts.expansion ?? 8) * D);
  const arch = opts.arch ?? "topk";
  const k = arch === "topk" ? opts.k ?? Math.min(16, F) : undefined;
  if (k !== undefined && (k < 1 || k > F)) {
    throw new InputError(`--k ${k} must lie in 1..F (F = ${F})`);
  }
  await prepareRunDir(opts.runDir, {
    // sae.pt lands last and marks a finished fit (see the writes below).
    outputs: ["sae.pt"],
    force: opts.force,
  });
  if (ds.meta.examples.length < 2) {
    throw new InputError(
      `the trace holds ${ds.meta.examples.length} example; a held-out split needs at least 2`,
    );
  }
  const split = splitByGroup(ds.meta.exampleOf, holdout, opts.seed);
  const source = {
    n: N,
    dim: D,
    rows: (ix: Int32Array, out: Float32Array) => ds.rows(ix, out),
  };
  const fitOpts: FitOptions = {
    arch,
    d_sae: F,
    k,
    l1_coefficient: opts.l1,
    lr: opts.lr ?? 1e-3,
    batch_size: opts.batch ?? 1024,
    steps: opts.steps ?? (opts.epochs === undefined ? 3000 : undefined),
    epochs: opts.epochs,
    seed: opts.seed,
    indices: split.train,
  };
  const steps = fitOpts.steps ??
    Math.ceil((opts.epochs! * split.train.length) / fitOpts.batch_size!);
  const progress = new Progress(
    "sae fit",
    steps,
    "steps",
    opts.progress ?? false,
  );
  const fit = fitSAE(source, fitOpts, (p) => progress.update(p.step + 1));
  progress.done();
  const metrics = saeMetrics(fit.sae, source, split.heldout);

  const header = ds.meta.header;
  const traceSha = await sha256File(ds.path);
  const cfg: SaeFileConfig = {
    ...fit.sae.cfg,
    format: "trminterp-sae/1",
    latent,
    steps: select,
    trace_sha256: traceSha,
    model_sha256: header.model.sha256,
    seed: opts.seed,
    training: Object.fromEntries(
      Object.entries({
        ...fitOpts,
        indices: undefined,
        holdout,
        steps_taken: fit.steps,
      }).filter(([, v]) => v !== undefined),
    ) as Record<string, number | string | boolean>,
  };
  const heldoutExamples = new Set<string>();
  for (const r of split.heldout) {
    heldoutExamples.add(ds.meta.examples[ds.meta.exampleOf[r]]);
  }
  const task = await taskAccuracy(
    opts.model ?? header.model.path,
    header.model.sha256,
    fit.sae,
    {
      latent,
      selector,
      positions: header.record.positions,
      examples: ds.meta.outcomes.filter((o) => heldoutExamples.has(o.example)),
    },
  );
  const ptBytes = encodeSaePt(fit.sae, cfg);
  const out: SaeMetricsJson = {
    format: "trminterp-sae-metrics/1",
    provenance: {
      tool: { name: "trminterp", version: VERSION },
      command: opts.command ?? [],
      seed: opts.seed,
      trace_sha256: traceSha,
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
  if (opts.exportSaeLens) {
    await writeSaeLensFolder(
      join(opts.runDir, "saelens"),
      fit.sae,
      cfg,
      header.model.name,
    );
  }
  await writeFileAtomic(
    join(opts.runDir, "sae_metrics.json"),
    JSON.stringify(out, null, 2) + "\n",
  );
  await writeFileAtomic(join(opts.runDir, "sae.pt"), ptBytes);
  return out;
}

interface SpliceSpec {
  latent: Latent;
  selector: StepSelector;
  positions: number[];
  examples: TraceExample[];
}

async function taskAccuracy(
  modelPath: string,
  modelSha: string,
  sae: SAE,
  spec: SpliceSpec,
): Promise<TaskAccuracy | { value: null; reason: string }> {
  let bundle: Bundle;
  try {
    const wasm = ortWasmPath();
    await checkPermissions({
      command: "sae fit",
      read: [modelPath, ...(wasm ? [wasm] : [])],
      write: [],
    });
    bundle = await loadBundle(modelPath);
  } catch (e) {
    return {
      value: null,
      reason: `model not at hand (${(e as Error).message})`,
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
    const modes = ["clean", "sae", "zero"] as const;
    const acc: Record<string, { tok: number; exact: number }> = {};
    for (const mode of modes) {
      const r = await evalExamples(
        bundle,
        spec,
        mode === "clean" ? null : (rows) => {
          if (mode === "zero") rows.fill(0);
          else rows.set(sae.decode(sae.encode(rows)));
        },
      );
      acc[mode] = r;
    }
    const denom = acc.clean.tok - acc.zero.tok;
    return {
      formula:
        "(acc_sae - acc_zero) / (acc_clean - acc_zero), token accuracy at the halting step on the held-out " +
        "examples; the SAE reconstruction (sae) or zeros (zero) replace the fitted latent at the fitted steps and positions",
      value: Math.abs(denom) > 1e-12
        ? round7((acc.sae.tok - acc.zero.tok) / denom)
        : null,
      acc_clean: round7(acc.clean.tok),
      acc_sae: round7(acc.sae.tok),
      acc_zero: round7(acc.zero.tok),
      exact: {
        clean: round7(acc.clean.exact),
        sae: round7(acc.sae.exact),
        zero: round7(acc.zero.exact),
      },
      examples: spec.examples.length,
    };
  } finally {
    await bundle.release();
  }
}

/**
 * Token and exact accuracy of a rollout over `examples`, with an optional
 * edit of the selected rows.
 */
async function evalExamples(
  bundle: Bundle,
  spec: SpliceSpec,
  edit: ((rows: Float32Array) => void) | null,
): Promise<{ tok: number; exact: number }> {
  const S = bundle.manifest.seq_len;
  let tok = 0, exact = 0;
  const B = 64;
  for (let start = 0; start < spec.examples.length; start += B) {
    const batch = spec.examples.slice(start, start + B);
    const res = await runRollout(
      bundle,
      puzzleBatch(
        batch.map((ex) => ({
          tokens: ex.tokens,
          puzzleIdentifier: ex.puzzle_identifier,
        })),
        S,
      ),
      {
        onStep: edit
          ? rowEditHook({
            latent: spec.latent,
            selector: spec.selector,
            positions: spec.positions,
            edit,
          })
          : undefined,
      },
    );
    batch.forEach((ex, b) => {
      const s = scorePrediction(
        res.predictions.subarray(b * S, (b + 1) * S),
        ex.label,
      );
      tok += s.acc;
      if (s.exact) exact++;
    });
  }
  return {
    tok: tok / spec.examples.length,
    exact: exact / spec.examples.length,
  };
}
