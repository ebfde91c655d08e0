/**
 * `trminterp intervene`: edit SAE features during the rollout and write
 * report.json: baseline vs intervened, the top causal features and the
 * step × feature effect matrix.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { join } from "node:path";
import {
  formatAddress,
  parseAddress,
  type StepAddress,
  stepIndex,
  StepSelector,
} from "../model/address.ts";
import { type Bundle, loadBundle } from "../model/bundle.ts";
import { InputError } from "../errors.ts";
import {
  Evaluator,
  type ExampleOutcome,
  type OutcomeTrace,
  round7,
} from "./evaluate.ts";
import { rowEditHook } from "../model/hooks.ts";
import type { PuzzleSet } from "../trace/inputs.ts";
import { sha256File, sha256Hex, writeFileAtomic } from "../io/atomic.ts";
import {
  AblateFeatures,
  ClampFeatures,
  type InterventionPolicy,
  PatchFeatures,
  type PolicyContext,
  type PolicyName,
} from "./policy.ts";
import { Progress } from "../../cli/progress.ts";
import { Rng } from "../rng.ts";
import {
  type FloatArray,
  puzzleBatch,
  runRollout,
  type StepEvent,
} from "../model/rollout.ts";
import { pathExists, prepareRunDir } from "../io/run_dir.ts";
import { checkPermissions, ortWasmPath } from "../../cli/permissions.ts";
import type { SAE } from "../sae/sae.ts";
import { readSaePt, type SaeFileConfig } from "../sae/sae_pt.ts";
import type { TraceExample } from "../schema/schema.ts";
import { parsePositions, writeTrace } from "../trace/trace.ts";
import { TraceDataset } from "../trace/dataset.ts";
import { VERSION } from "../version.ts";

/** Options of the intervene command. */
export interface InterveneOptions {
  /** Run dir with trace.jsonl and sae.pt. */
  runDir: string;
  /** The policy. */
  policy: PolicyName;
  /** Features to edit and rank; default: rank the most active, edit the top one. */
  features?: number[];
  /** Steps to act on (default all steps of the SAE's latent). */
  steps?: string;
  /** Positions to act on (default the traced positions). */
  positions?: string;
  /** clamp_features: the value. */
  value?: number;
  /** clamp_features: the scale. */
  scale?: number;
  /** ablate_features: to zero (default) or to the feature's mean over the trace. */
  ablateTo?: "zero" | "mean";
  /** patch_features: the source example id. */
  sourceExample?: string;
  /** patch_features: the source step (one address). */
  sourceSteps?: string;
  /** Top features to report and scan in the tomography (default 5). */
  rank?: number;
  /** Candidate features to rank when `features` is not given (default 16). */
  candidates?: number;
  /** Examples in the seeded ranking subsample (default 64). */
  examples?: number;
  /** Random features ablated for the reference median (default 16). */
  randomFeatures?: number;
  /** The seed. */
  seed: number;
  /** Model bundle (default: the trace's). */
  model?: string;
  /** Save the intervened trace under interventions/<id>/. */
  saveTrace?: boolean;
  /** Overwrite report.json. */
  force?: boolean;
  /** Progress on stderr. */
  progress?: boolean;
  /** The command line for provenance. */
  command?: string[];
}

/** One ranked feature. */
export interface CausalFeature {
  /** Feature index. */
  feature: number;
  /** Drop in token accuracy when ablated alone (baseline − ablated). */
  effect: number;
  /** `effect / baseline token accuracy`. */
  normalized_effect: number;
  /** Mean KL(baseline ‖ ablated) of the outputs, the tie-break. */
  mean_kl: number;
  /** Drop in exact accuracy. */
  exact_drop: number;
  /** Mean activation over the selected rows of the subsample. */
  mean_activation: number;
}

/** The content of report.json. */
export interface Report {
  /** Format tag. */
  format: "trminterp-report/1";
  /** Provenance. */
  provenance: {
    tool: { name: "trminterp"; version: string };
    command: string[];
    seed: number;
    trace_sha256: string;
    sae_pt_sha256: string;
    model_sha256: string;
    backend: string;
    baseline: "trace.jsonl" | "rerun";
  };
  /** The policy and where it acted. */
  policy: {
    name: PolicyName;
    latent: string;
    steps: string;
    positions: number[];
    params: Record<string, unknown>;
  };
  /** Baseline vs intervened over every traced example. */
  comparison: ReturnType<typeof Evaluator.compare>;
  /** Single-feature ablation ranking. */
  causal: {
    metric: string;
    tie_break: string;
    candidates: { source: "most_active" | "features"; features: number[] };
    subsample: {
      examples: number;
      seed: number;
      baseline_token_acc: number;
      baseline_exact_acc: number;
    };
    ranking: CausalFeature[];
    random_features: {
      features: number[];
      effects: number[];
      median_effect: number;
      kls: number[];
      median_kl: number;
    };
  };
  /** Effect of each top feature ablated at one supervision step at a time. */
  tomography: {
    metric: string;
    groups: string[];
    features: number[];
    effect: number[][];
  };
  /** Where the intervened trace was saved, if it was. */
  saved_trace: string | null;
}

interface Ctx {
  bundle: Bundle;
  sae: SAE;
  cfg: SaeFileConfig;
  ds: TraceDataset;
  positions: number[];
  latentSelector: StepSelector;
  batch: number;
}

/**
 * Run the intervene command.
 *
 * @example
 * ```ts ignore
 * import { runIntervene } from "./intervene.ts";
 * const report = await runIntervene({ runDir: "runs/demo", policy: "ablate_features", features: [3], seed: 0 });
 * console.log(report.causal.ranking[0]);
 * ```
 */
export async function runIntervene(opts: InterveneOptions): Promise<Report> {
  await checkPermissions({
    command: "intervene",
    read: [opts.runDir],
    write: [opts.runDir],
  });
  for (const f of ["trace.jsonl"]) {
    if (!(await pathExists(join(opts.runDir, f)))) {
      throw new InputError(
        `no ${f} in ${opts.runDir}; run \`trminterp trace --run-dir ${opts.runDir}\` first`,
      );
    }
  }
  const { sae, cfg, sha256: saeSha } = await readSaePt(opts.runDir);
  const ds = await TraceDataset.load(opts.runDir, { latents: [cfg.latent] });
  const header = ds.meta.header;
  if (sae.cfg.d_in !== header.state_dim) {
    throw new InputError(
      `sae.pt has d_in ${sae.cfg.d_in}, but the trace's states have D=${header.state_dim}; fit the SAE on this run (\`trminterp sae fit --run-dir ${opts.runDir} --force\`)`,
    );
  }
  if (!header.record.latents.includes(cfg.latent)) {
    throw new InputError(
      `sae.pt was fitted on ${cfg.latent}, which this trace did not record; re-run sae fit`,
    );
  }
  const F = sae.cfg.d_sae;
  for (const f of opts.features ?? []) {
    if (!Number.isInteger(f) || f < 0 || f >= F) {
      throw new InputError(
        `--features: feature ${f} does not exist; the SAE has features 0..${
          F - 1
        }`,
      );
    }
  }
  const selector = StepSelector.parse(opts.steps ?? "all");
  const latentSelector = selector;
  const sched = header.model.schedule;
  const addresses = selector.select(sched).filter((a) =>
    (a.l === "H") === (cfg.latent === "z_H")
  );
  if (addresses.length === 0) {
    throw new InputError(
      `--steps "${selector.text}" matches no ${cfg.latent} step (the SAE was fitted on ${cfg.latent}); e.g. ${
        cfg.latent === "z_H" ? "s*.*.H" : "s*.*.l*"
      }`,
    );
  }
  const positions = opts.positions
    ? parsePositions(
      opts.positions,
      header.model.puzzle_emb_len,
      header.model.seq_len,
    )
    : header.record.positions;
  const recorded = new Set(header.record.positions);
  const ids = ds.meta.outcomes.map((o) => o.example);
  if (opts.sourceExample !== undefined && !ids.includes(opts.sourceExample)) {
    throw new InputError(
      `--source-example "${opts.sourceExample}" is not in the trace; pick one of its example ids (e.g. "${
        ids[0]
      }")`,
    );
  }
  let sourceStep: string | undefined;
  if (opts.sourceSteps !== undefined) {
    const src = StepSelector.parse(opts.sourceSteps).select(sched).filter((a) =>
      (a.l === "H") === (cfg.latent === "z_H")
    );
    if (src.length !== 1) {
      throw new InputError(
        `--source-steps "${opts.sourceSteps}" must select exactly one ${cfg.latent} step, it selects ${src.length}`,
      );
    }
    sourceStep = formatAddress(src[0]);
  }
  if (
    opts.policy === "patch_features" && positions.some((p) => !recorded.has(p))
  ) {
    throw new InputError(
      `patch_features needs traced states at every --positions; the trace recorded ${[
        ...recorded,
      ]}`,
    );
  }

  const wasm = header.backend === "wasm" ? ortWasmPath() : null;
  await checkPermissions({
    command: "intervene",
    read: [opts.model ?? header.model.path, ...(wasm ? [wasm] : [])],
    write: [],
    ffi: header.backend === "native",
  });
  // Check the policy's own flags before anything is written or run.
  if (opts.policy === "clamp_features") {
    new ClampFeatures([0], { value: opts.value, scale: opts.scale });
  }
  if (opts.policy === "patch_features") {
    new PatchFeatures([0], { sourceExample: opts.sourceExample, sourceStep });
  }
  await prepareRunDir(opts.runDir, {
    outputs: ["report.json"],
    force: opts.force,
  });
  const bundle = await loadBundle(opts.model ?? header.model.path, {
    backend: header.backend as "wasm" | "webgpu",
  });
  try {
    if (bundle.sha256 !== header.model.sha256) {
      throw new InputError(
        `the bundle at ${bundle.dir} is not the traced model (model.json sha256 differs)`,
      );
    }
    const ctx: Ctx = {
      bundle,
      sae,
      cfg,
      ds,
      positions,
      latentSelector,
      batch: header.record.batch,
    };
    const source = sourceLookup(ctx, positions);
    const means = opts.ablateTo === "mean"
      ? featureMeans(ctx, null)
      : undefined;
    const makePolicy = (features: number[]): InterventionPolicy =>
      opts.policy === "ablate_features"
        ? new AblateFeatures(features, opts.ablateTo ?? "zero", means)
        : opts.policy === "clamp_features"
        ? new ClampFeatures(features, { value: opts.value, scale: opts.scale })
        : new PatchFeatures(features, {
          sourceExample: opts.sourceExample,
          sourceStep,
        });

    const rank = opts.rank ?? 5;
    const nCand = opts.candidates ?? 16;
    const nRandom = opts.randomFeatures ?? 16;
    const sub = new Rng(opts.seed, 2).sample(
      ds.meta.outcomes.length,
      Math.min(opts.examples ?? 64, ds.meta.outcomes.length),
    )
      .map((i) => ds.meta.outcomes[i]);
    const rollouts = 2 + 1 + nCand + nRandom +
      rank * new Set(addresses.map((a) => a.sup)).size;
    const progress = new Progress(
      "intervene",
      rollouts,
      "rollouts",
      opts.progress ?? false,
    );
    let done = 0;
    const tick = () => progress.update(++done);

    // Ranking on a seeded subsample, each candidate ablated alone.
    const subBase = await rollout(ctx, sub, null);
    tick();
    const baseScore = Evaluator.compare(subBase, subBase).baseline;
    const activity = featureMeans(ctx, new Set(sub.map((o) => o.example)));
    const candidates = opts.features
      ? [...new Set(opts.features)]
      : topIndices(activity, nCand).filter((f) => activity[f] > 0);
    const ablateEffect = async (feature: number, where: StepSelector) => {
      const p: InterventionPolicy = new AblateFeatures([feature]);
      const out = await rollout(
        { ...ctx, latentSelector: where },
        sub,
        (step, rows, example) =>
          p.apply(step, rows, sae, { example, positions }),
      );
      tick();
      const c = Evaluator.compare(subBase, out);
      return {
        effect: round7(-c.delta.token_acc),
        kl: c.delta.mean_kl,
        exact: round7(-c.delta.exact_acc),
      };
    };
    const ranking: CausalFeature[] = [];
    for (const f of candidates) {
      const e = await ablateEffect(f, selector);
      ranking.push({
        feature: f,
        effect: e.effect,
        normalized_effect: baseScore.token_acc > 0
          ? round7(e.effect / baseScore.token_acc)
          : 0,
        mean_kl: e.kl,
        exact_drop: e.exact,
        mean_activation: round7(activity[f]),
      });
    }
    ranking.sort((a, b) =>
      b.effect - a.effect || b.mean_kl - a.mean_kl || a.feature - b.feature
    );

    // Baseline over every example: reuse trace.jsonl when the schedule matches.
    const sameSchedule =
      JSON.stringify(bundle.manifest.schedule) === JSON.stringify(sched);
    const baseline = sameSchedule
      ? outcomesFromTrace(ds)
      : await rollout(ctx, ds.meta.outcomes, null);
    tick();
    // Without --features the policy edits the top-ranked feature.
    if (!opts.features && ranking.length === 0) {
      throw new InputError(
        `no SAE feature fires at --steps "${selector.text}" on the subsample; pass --features or widen --steps`,
      );
    }
    const policy = makePolicy(
      opts.features ?? ranking.slice(0, 1).map((r) => r.feature),
    );
    const policyEdit = (
      step: StepAddress,
      rows: Float32Array,
      example: string,
    ) => policy.apply(step, rows, sae, { example, positions, source });
    const intervened = await rollout(ctx, ds.meta.outcomes, policyEdit);
    tick();
    const comparison = Evaluator.compare(baseline, intervened);

    // Random alive features give the reference median.
    const alive = Array.from({ length: F }, (_, i) => i).filter((f) =>
      activity[f] > 0
    );
    const randomFeatures = new Rng(opts.seed, 3).sample(
      alive.length,
      Math.min(nRandom, alive.length),
    ).map((i) => alive[i]);
    const randomEffects: number[] = [], randomKls: number[] = [];
    for (const f of randomFeatures) {
      const e = await ablateEffect(f, selector);
      randomEffects.push(e.effect);
      randomKls.push(e.kl);
    }

    // Tomography: each top feature ablated at one supervision step at a time.
    const sups = [...new Set(addresses.map((a) => a.sup))];
    const top = ranking.slice(0, rank).map((r) => r.feature);
    const effect: number[][] = [];
    for (const sup of sups) {
      const group = StepSelector.parse(
        addresses.filter((a) => a.sup === sup).map(formatAddress).join(","),
      );
      const row: number[] = [];
      for (const f of top) row.push((await ablateEffect(f, group)).effect);
      effect.push(row);
    }
    progress.done();

    let savedTrace: string | null = null;
    if (opts.saveTrace) {
      savedTrace = await saveIntervenedTrace(ctx, policy, opts);
    }

    const report: Report = {
      format: "trminterp-report/1",
      provenance: {
        tool: { name: "trminterp", version: VERSION },
        command: opts.command ?? [],
        seed: opts.seed,
        trace_sha256: await sha256File(ds.path),
        sae_pt_sha256: saeSha,
        model_sha256: bundle.sha256,
        backend: bundle.backend,
        baseline: sameSchedule ? "trace.jsonl" : "rerun",
      },
      policy: {
        name: policy.name,
        latent: cfg.latent,
        steps: selector.text,
        positions,
        params: policy.params(),
      },
      comparison,
      causal: {
        metric:
          "effect = baseline token accuracy − token accuracy with the feature ablated to 0 alone, " +
          "at the selected steps and positions, on the subsample",
        tie_break:
          "mean KL(baseline ‖ ablated) of the output softmax at the halting step",
        candidates: {
          source: opts.features ? "features" : "most_active",
          features: candidates,
        },
        subsample: {
          examples: sub.length,
          seed: opts.seed,
          baseline_token_acc: baseScore.token_acc,
          baseline_exact_acc: baseScore.exact_acc,
        },
        ranking,
        random_features: {
          features: randomFeatures,
          effects: randomEffects,
          median_effect: median(randomEffects),
          kls: randomKls,
          median_kl: median(randomKls),
        },
      },
      tomography: {
        metric:
          "drop in token accuracy when the feature is ablated only at the steps of one supervision step",
        groups: sups.map((s) => `s${s}`),
        features: top,
        effect,
      },
      saved_trace: savedTrace,
    };
    await writeFileAtomic(
      join(opts.runDir, "report.json"),
      JSON.stringify(report, null, 2) + "\n",
    );
    return report;
  } finally {
    await bundle.release();
  }
}

/** Baseline outcomes straight from the trace's example and readout records. */
function outcomesFromTrace(ds: TraceDataset): OutcomeTrace {
  const h = ds.meta.header;
  const perSup = new Map<string, number[][]>();
  for (const r of ds.meta.readouts) {
    if (!r.final) continue;
    const list = perSup.get(r.example) ?? [];
    list[r.sup] = r.pred;
    perSup.set(r.example, list);
  }
  return {
    S: h.model.seq_len,
    V: h.model.vocab_size,
    examples: ds.meta.outcomes.map((o) => ({
      example: o.example,
      label: o.label,
      pred: o.pred,
      predPerSup: perSup.get(o.example) ?? [o.pred],
      haltStep: o.halt_step,
      logits: decodeF32(o.logits),
    })),
  };
}

function decodeF32(b64: string): Float32Array {
  const buf = Buffer.from(b64, "base64");
  const out = new Float32Array(buf.length / 4);
  new Uint8Array(out.buffer).set(buf);
  return out;
}

type RowEdit = (
  step: StepAddress,
  rows: Float32Array,
  example: string,
) => Float32Array;

/** Roll out `examples` in trace batches, optionally editing the SAE latent. */
async function rollout(
  ctx: Ctx,
  examples: TraceExample[],
  edit: RowEdit | null,
): Promise<OutcomeTrace> {
  const m = ctx.bundle.manifest;
  const S = m.seq_len, V = m.vocab_size;
  const out: ExampleOutcome[] = [];
  for (let start = 0; start < examples.length; start += ctx.batch) {
    const batch = examples.slice(start, start + ctx.batch);
    const res = await runRollout(
      ctx.bundle,
      puzzleBatch(
        batch.map((ex) => ({
          tokens: ex.tokens,
          puzzleIdentifier: ex.puzzle_identifier,
        })),
        S,
      ),
      {
        onStep: edit
          ? editHook(ctx, batch.map((ex) => ex.example), edit)
          : undefined,
      },
    );
    batch.forEach((ex, b) => {
      out.push({
        example: ex.example,
        label: ex.label,
        pred: res.predictions.subarray(b * S, (b + 1) * S),
        predPerSup: res.predictionsPerSup.map((p) =>
          p.subarray(b * S, (b + 1) * S)
        ),
        haltStep: res.haltStep[b],
        logits: Float32Array.from(
          res.logits.subarray(b * S * V, (b + 1) * S * V) as FloatArray,
        ),
      });
    });
  }
  return { S, V, examples: out };
}

function editHook(
  ctx: Ctx,
  ids: string[],
  edit: RowEdit,
): (e: StepEvent) => void {
  return rowEditHook({
    latent: ctx.cfg.latent,
    selector: ctx.latentSelector,
    positions: ctx.positions,
    edit: (rows, c) => {
      const next = edit(c.address, rows, ids[c.b]);
      if (next === rows) return false;
      rows.set(next);
    },
  });
}

/** Source activations `[positions, F]` of an example at an address, from the trace. */
function sourceLookup(ctx: Ctx, positions: number[]): PolicyContext["source"] {
  const { ds, sae } = ctx;
  const D = ds.shape[1];
  // Built on first use: only patch_features asks for sources.
  let start: Map<string, number> | null = null;
  const firstRow = () => {
    if (start) return start;
    start = new Map<string, number>();
    for (let i = 0; i < ds.shape[0]; i++) {
      const key = `${ds.meta.examples[ds.meta.exampleOf[i]]}|${ds.meta.t[i]}`;
      if (!start.has(key)) start.set(key, i);
    }
    return start;
  };
  const recorded = ds.meta.header.record.positions;
  const cache = new Map<string, Float32Array | undefined>();
  const sched = ds.meta.header.model.schedule;
  return (step, example) => {
    const t = stepIndex(step, sched);
    const key = `${example}|${t}`;
    if (cache.has(key)) return cache.get(key);
    const s = firstRow().get(key);
    let acts: Float32Array | undefined;
    if (s !== undefined) {
      const rows = new Float32Array(positions.length * D);
      positions.forEach((p, k) => {
        const r = s + recorded.indexOf(p);
        rows.set(ds.states.subarray(r * D, (r + 1) * D), k * D);
      });
      acts = sae.encode(rows);
    }
    cache.set(key, acts);
    return acts;
  };
}

/** Mean activation of every feature over the selected rows (of `only` examples). */
function featureMeans(ctx: Ctx, only: Set<string> | null): Float32Array {
  const { ds, sae } = ctx;
  const [N, D] = ds.shape;
  const F = sae.cfg.d_sae;
  const sum = new Float64Array(F);
  let count = 0;
  const pos = new Set(ctx.positions);
  const chunk: number[] = [];
  const flush = () => {
    if (!chunk.length) return;
    const rows = new Float32Array(chunk.length * D);
    chunk.forEach((r, k) =>
      rows.set(ds.states.subarray(r * D, (r + 1) * D), k * D)
    );
    const a = sae.encode(rows);
    for (let i = 0; i < a.length; i++) if (a[i] !== 0) sum[i % F] += a[i];
    count += chunk.length;
    chunk.length = 0;
  };
  // Match each step once, not once per row.
  const selectedT = new Set<number>();
  for (const [t, text] of ds.meta.addressOf) {
    if (ctx.latentSelector.matches(parseAddress(text))) selectedT.add(t);
  }
  for (let i = 0; i < N; i++) {
    if (!pos.has(ds.meta.position[i])) continue;
    if (!selectedT.has(ds.meta.t[i])) continue;
    if (only && !only.has(ds.meta.examples[ds.meta.exampleOf[i]])) continue;
    chunk.push(i);
    if (chunk.length === 1024) flush();
  }
  flush();
  return Float32Array.from(sum, (s) => count ? s / count : 0);
}

async function saveIntervenedTrace(
  ctx: Ctx,
  policy: InterventionPolicy,
  opts: InterveneOptions,
): Promise<string> {
  const id = `${policy.name}-${
    sha256Hex(JSON.stringify({ p: policy.params(), s: opts.steps ?? "all" }))
      .slice(0, 12)
  }`;
  const dir = join(opts.runDir, "interventions", id);
  await prepareRunDir(dir, {
    outputs: ["trace.jsonl", "states.npy"],
    force: true,
    create: true,
    gitignore: false,
  });
  const h = ctx.ds.meta.header;
  const set: PuzzleSet = {
    path: h.inputs.path,
    format: h.inputs.format,
    sha256: h.inputs.sha256,
    puzzles: ctx.ds.meta.outcomes.map((o) => ({
      id: o.example,
      tokens: o.tokens,
      label: o.label,
      puzzleIdentifier: o.puzzle_identifier,
    })),
  };
  const examples = ctx.ds.meta.outcomes;
  const source = sourceLookup(ctx, ctx.positions);
  const edit: RowEdit = (step, rows, example) =>
    policy.apply(step, rows, ctx.sae, {
      example,
      positions: ctx.positions,
      source,
    });
  const hook = (e: StepEvent, ids: string[]) => editHook(ctx, ids, edit)(e);
  await writeTrace(ctx.bundle, set, examples.map((_, i) => i), {
    runDir: dir,
    model: h.model.path,
    inputs: h.inputs.path,
    seed: opts.seed,
    command: opts.command,
    latents: h.record.latents,
    selector: StepSelector.parse(h.record.steps),
    positionList: h.record.positions,
    batchSize: h.record.batch,
    edit: hook,
  });
  return join("interventions", id, "trace.jsonl");
}

function topIndices(values: Float32Array, n: number): number[] {
  return Array.from(values.keys()).sort((a, b) =>
    values[b] - values[a] || a - b
  ).slice(0, n);
}

function median(xs: number[]): number {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return round7(s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2);
}
