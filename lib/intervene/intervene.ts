/**
 * `trminterp intervene`: edit SAE features during the rollout and write
 * report.json: baseline vs intervened, the top causal features and the
 * step × feature effect matrix. The parts live beside this module: the plan,
 * the session that rolls out, the ranking, the tomography and the report.
 *
 * @module
 */
import { join } from "node:path";
import { type Bundle, loadBundle, readManifest } from "../model/bundle.ts";
import { InputError, OptionError } from "../errors.ts";
import { OutputSet, sha256Hex } from "../io/atomic.ts";
import { openRunDir, type RunDir } from "../io/run_dir.ts";
import { Rng } from "../rng.ts";
import { SAE } from "../sae/sae.ts";
import {
  checkHeaderModel,
  readTraceHeader,
  TraceDataset,
  traceLocation,
  traceRunDir,
} from "../trace/dataset.ts";
import type { PuzzleSet } from "../trace/inputs.ts";
import { headerPath, writeTrace } from "../trace/trace.ts";
import { StepSelector } from "../model/address.ts";
import { VERSION } from "../version.ts";
import { checkPayload, schemas } from "../schema/mod.ts";
import { firstNonFinite } from "../finite.ts";
import { Evaluator } from "./evaluate.ts";
import { interveneSettings } from "./defaults.ts";
import { type InterveneOptions, type Plan, planIntervention } from "./plan.ts";
import type { InterventionPolicy } from "../edit/policy.ts";
import { AblationRunner } from "./batched.ts";
import {
  cumulativeCurve,
  curveSizes,
  randomReference,
  rankFeatures,
  referenceDraw,
  topIndices,
} from "./ranking.ts";
import { causalSection, type Report } from "./report.ts";
import { controlCurve } from "./control.ts";
import { selectivity } from "./selectivity.ts";
import { type EditedPositions, landing, trackEdits } from "./landing.ts";
import type { Grid } from "../schema/mod.ts";
import { findRanking, namedRunFolder, reportPath } from "./reports.ts";
import type { CausalFeature, SideSummary } from "../schema/mod.ts";
import { InterventionSession } from "./session.ts";
import { supervisionGroups, tomography } from "./tomography.ts";

export type { InterveneOptions };

/**
 * Run the intervene command.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runIntervene } from "./intervene.ts";
 * import { runSaeFit } from "../sae/fit.ts";
 * import { runTrace } from "../trace/trace.ts";
 * const demo = new URL("../../references/models/sudoku4-trm", import.meta.url).pathname;
 * const dir = await Deno.makeTempDir();
 * try {
 *   await runTrace({ runDir: dir, model: demo, inputs: `${demo}/test.jsonl`, seed: 0, limit: 8, latents: ["z_H"] });
 *   await runSaeFit({ runDir: dir, seed: 0, trainSteps: 50, features: 64, k: 4 });
 *   const r = await runIntervene({ runDir: dir, policy: "clamp_features", scale: 1, features: [3], seed: 0,
 *     candidates: 2, randomFeatures: 1, rank: 1 });
 *   assert.equal(r.comparison.delta.mean_kl, 0); // clamping by ×1 changes nothing
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function runIntervene(opts: InterveneOptions): Promise<Report> {
  // Held for the whole command: no other command replaces the trace or the
  // SAE meanwhile.
  await using run = await openRunDir(opts.runDir);
  const reportRel = reportPath(opts.name);
  // A link where the report or the saved trace goes is refused before the work.
  await run.file(reportRel);
  if (opts.saveTrace) await run.file("interventions/trace.jsonl");
  // Everything the trace header claims (every shard's, for a sharded run)
  // is checked against the bundle before the schedule it names is used.
  const header = await readTraceHeader(opts.runDir);
  const tracePath = await traceLocation(opts.runDir);
  const modelDir = opts.model ??
    headerPath(await traceRunDir(opts.runDir), header.model.path);
  const { manifest, sha256: modelSha } = await readManifest(modelDir);
  if (modelSha !== header.model.sha256) {
    throw new InputError(
      `the bundle at ${modelDir} is not the traced model (model.json sha256 differs)`,
    );
  }
  checkHeaderModel(header, manifest, tracePath);
  const { sae, cfg, sha256: saeSha } = await SAE.read(opts.runDir, {
    dIn: header.state_dim,
  });
  const ds = await TraceDataset.load(opts.runDir, { latents: [cfg.latent] });
  const traceDigest = ds.meta.digest;
  if (cfg.trace_digest !== traceDigest) {
    throw new OptionError(
      "force",
      `sae.pt in ${opts.runDir} was fitted on another trace (its trace_digest is ${
        String(cfg.trace_digest).slice(0, 12)
      }…, the trace's is ${
        traceDigest.slice(0, 12)
      }…): the trace was replaced after the fit; fit the SAE again (sae fit with {force})`,
    );
  }
  const plan = planIntervention(opts, ds, sae, cfg);
  await run.checkOutputs(
    opts.name !== undefined && opts.saveTrace
      ? [reportRel, ...savedTraceFiles(opts.name)]
      : [reportRel],
    opts.force,
  );
  const bundle = await loadBundle(modelDir, {
    backend: opts.backend ?? header.backend,
  });
  try {
    if (bundle.sha256 !== header.model.sha256) {
      throw new InputError(
        `the bundle at ${bundle.dir} is not the traced model (model.json sha256 differs)`,
      );
    }
    return await intervene(
      opts,
      run,
      new InterventionSession(
        bundle,
        sae,
        ds,
        plan,
        opts.batch ?? header.record.batch,
      ),
      saeSha,
      traceDigest,
    );
  } finally {
    await bundle.release();
  }
}

async function intervene(
  opts: InterveneOptions,
  run: RunDir,
  session: InterventionSession,
  saeSha: string,
  traceDigest: string,
): Promise<Report> {
  const { ds, plan, bundle } = session;
  const header = ds.header;
  const outcomes = ds.outcomes();
  const examples = ds.examples();
  const settings = interveneSettings(opts);
  const rank = settings.rank;
  const nCand = settings.candidates;
  const nRandom = settings.randomFeatures;
  const rankBy = settings.rankBy;

  const subIdx = new Rng(opts.seed, 2).sample(
    examples.length,
    Math.min(settings.examples, examples.length),
  );
  const subExamples = subIdx.map((i) => examples[i]);
  // Every ablation of the subsample runs through one runner: batched, and
  // each from the baseline's carry where it first changes anything.
  const runner = new AblationRunner(session, subExamples);
  // The trace's outcomes are the baseline only when this rollout runs as
  // the trace did: same schedule, same backend (a sandboxed run of a native
  // trace runs on WASM and rolls its own baseline out).
  const sameSchedule = JSON.stringify(bundle.manifest.schedule) ===
      JSON.stringify(header.model.schedule) &&
    bundle.backend === header.backend;
  // Progress counts example rollouts; an ablation that cannot change an
  // example is counted done without one.
  const n = subExamples.length;
  const draws = settings.controlDraws;
  const total = n * (1 + nCand + nRandom +
        curveSizes(nCand).length * (1 + draws) +
        rank * supervisionGroups(plan.addresses).length) +
    examples.length * (sameSchedule ? 1 : 2);
  const phase = phases(total, opts.onProgress);

  const means = opts.ablateTo === "mean" ? session.featureMeans() : undefined;
  const activity = session.featureMeans(subExamples.map((e) => e.id));
  const candidates = opts.features
    ? [...new Set(opts.features)]
    : topIndices(activity, nCand).filter((f) => activity[f] > 0);
  // A clamp or patch run takes the ranking of a report computed under the
  // same settings, when the run dir holds one: the same bytes, no rollouts.
  const reused = opts.policy === "ablate_features"
    ? null
    : await findRanking(opts.runDir, {
      traceDigest,
      saeSha,
      modelSha: bundle.sha256,
      backend: bundle.backend,
      seed: opts.seed,
      steps: plan.selector.text,
      positions: plan.positions,
      source: opts.features ? "features" : "most_active",
      candidates,
      examples: subExamples.length,
      rankBy,
      random: referenceDraw(activity, candidates, nRandom, opts.seed),
      rank,
      controlDraws: draws,
    });
  if (reused) {
    // Only the policy's rollouts remain to count.
    phase(total - examples.length * (sameSchedule ? 1 : 2)).end();
  }
  let p = phase(reused ? 0 : n);
  const subBase = reused ? null : await runner.baseline(p.progress);
  p.end();
  const baseScore = subBase && Evaluator.compare(subBase, subBase).baseline;
  p = phase(reused ? 0 : n * nCand);
  const ranking = reused ? reused.report.causal.ranking : await rankFeatures(
    runner,
    baseScore!,
    candidates,
    activity,
    rankBy,
    p.progress,
  );
  p.end();

  // Baseline over every example: reuse trace.jsonl when the schedule matches
  // (no rollouts, none counted in the total).
  p = phase(sameSchedule ? 0 : examples.length);
  const baseline = sameSchedule
    ? outcomes
    : await session.run(examples, null, undefined, p.progress);
  p.end();
  if (!opts.features && ranking.length === 0) {
    throw new InputError(
      `no SAE feature fires at the selected steps "${plan.selector.text}" on the subsample; name features to edit, or widen the steps`,
    );
  }
  // Without features the policy edits the top-ranked feature.
  const policy = plan.policy(
    opts.features ?? ranking.slice(0, 1).map((r) => r.feature),
    means,
  );
  p = phase(examples.length);
  const M = bundle.manifest;
  // Where the policy changed the state: its locality profile's edited cells.
  let policyEdits: EditedPositions = [];
  const intervened = await session.run(
    examples,
    policy,
    undefined,
    p.progress,
    (h) => {
      const t = trackEdits(h, plan.latent, M.seq_len + M.puzzle_emb_len);
      policyEdits = t.masks;
      return t.hook;
    },
  );
  p.end();
  const comparison = Evaluator.compare(baseline, intervened);

  const refs = reused ? null : await causalReferences(
    runner,
    {
      ranking,
      activity,
      candidates,
      baseScore: baseScore!,
      rank,
      nRandom,
      nCand,
      draws,
    },
    plan,
    opts.seed,
    phase,
  );

  // The saved trace and report.json land together, after both are written.
  await using folder = await namedRunFolder(opts.runDir, opts.name);
  await using outputs = new OutputSet();
  const savedTrace = opts.saveTrace
    ? await saveIntervenedTrace(session, policy, opts, run, outputs)
    : null;
  const report: Report = {
    format: "trminterp-report/1",
    provenance: {
      tool: { name: "trminterp", version: VERSION },
      command: opts.command ?? [],
      seed: opts.seed,
      trace_digest: traceDigest,
      sae_pt_sha256: saeSha,
      model_sha256: bundle.sha256,
      backend: bundle.backend,
      baseline: sameSchedule ? "trace.jsonl" : "rerun",
      causal_from: reused?.path ?? null,
    },
    policy: {
      name: policy.name,
      latent: plan.latent,
      steps: plan.selector.text,
      addresses: plan.addresses.length,
      steps_source: plan.steps.source,
      fitted_steps: plan.steps.fitted,
      outside_fitted: plan.steps.outside,
      positions: plan.positions,
      params: policy.params(),
    },
    comparison,
    causal: reused ? reused.report.causal : causalSection({
      steps: { selector: plan.selector.text, addresses: plan.addresses.length },
      source: opts.features ? "features" : "most_active",
      candidates,
      examples: subExamples.length,
      seed: opts.seed,
      base: baseScore!,
      ranking,
      random: refs!.random,
      rankBy,
      cumulative: refs!.cumulative,
      selectivity: selectivity(
        ds,
        session.sae,
        plan,
        subExamples.map((e) => e.id),
        ranking.map((f) => f.feature),
        bundle.manifest,
        supervisionGroups(plan.addresses),
      ),
    }),
    tomography: reused ? reused.report.tomography : refs!.tomo,
    landing: {
      metric:
        "token_drop = baseline − edited token accuracy and kl = KL(baseline ‖ edited) of the output softmax at the " +
        "halting step, per output position, mean over the examples; locality: the same over the (example, cell) " +
        "pairs of the examples the edit changed, by each cell's relation to the cells whose state it changed at any " +
        "edited step",
      grid: M.grid ?? null,
      policy: landing(
        baseline,
        intervened,
        policyEdits,
        M.grid,
        M.puzzle_emb_len,
      ),
      // Each ranked feature's ablation lands where it did in the reused
      // report's run: it does not depend on the policy.
      features: reused
        ? reused.report.landing.features
        : await featureLandings(runner, ranking, M.grid, M.puzzle_emb_len),
    },
    saved_trace: savedTrace,
  };
  const inf = firstNonFinite(report);
  if (inf) {
    throw new InputError(
      `report.json would hold ${inf.value} at ${inf.path}: the edit, sae.pt or the trace's states drive values past float32's range (±3.4e38); edit with a smaller value or scale, or check sae.pt and the trace for values near that limit`,
    );
  }
  checkPayload(schemas.Report, report, "report.json");
  if (opts.name !== undefined) await run.subdir(`interventions/${opts.name}`);
  await outputs.add(
    join(opts.runDir, reportPath(opts.name)),
    JSON.stringify(report, null, 2) + "\n",
  );
  await outputs.commit();
  folder.keep();
  return report;
}

/**
 * Progress over the phases of a run: each phase reports its own count on top
 * of what the phases before it planned.
 */
function phases(
  total: number,
  onProgress?: (done: number, total: number) => void,
): (planned: number) => { progress(d: number): void; end(): void } {
  let done = 0;
  return (planned) => {
    const start = done;
    return {
      progress: (d) => onProgress?.(start + d, total),
      end: () => onProgress?.(done = start + planned, total),
    };
  };
}

/**
 * What puts the ranking in context: the random reference, the cumulative
 * curve and the tomography of the top `rank` features.
 */
async function causalReferences(
  runner: AblationRunner,
  r: {
    ranking: CausalFeature[];
    activity: Float32Array;
    candidates: number[];
    baseScore: SideSummary;
    rank: number;
    nRandom: number;
    nCand: number;
    draws: number;
  },
  plan: Plan,
  seed: number,
  phase: ReturnType<typeof phases>,
) {
  const n = runner.examples.length;
  let p = phase(n * r.nRandom);
  const random = await randomReference(
    runner,
    r.activity,
    r.candidates,
    r.nRandom,
    seed,
    p.progress,
  );
  p.end();
  p = phase(n * curveSizes(r.nCand).length);
  const bare = await cumulativeCurve(
    runner,
    r.ranking,
    r.baseScore,
    p.progress,
  );
  p.end();
  p = phase(n * curveSizes(r.nCand).length * r.draws);
  const cumulative = await controlCurve(
    runner,
    bare,
    r.ranking.map((f) => f.feature),
    r.activity,
    r.draws,
    seed,
    p.progress,
  );
  p.end();
  p = phase(n * r.rank * supervisionGroups(plan.addresses).length);
  const tomo = await tomography(
    runner,
    r.ranking.slice(0, r.rank).map((f) => f.feature),
    p.progress,
  );
  p.end();
  return { random, cumulative, tomo };
}

/** Where each ranked feature's ablation lands (its ranking run, reused). */
async function featureLandings(
  runner: AblationRunner,
  ranking: readonly CausalFeature[],
  grid: Grid | undefined,
  P: number,
) {
  const base = await runner.baseline();
  const where = runner.session.plan.selector;
  const jobs = ranking.map((f) => ({ features: [f.feature], where }));
  const outs = await runner.run(jobs);
  return ranking.map((f, i) => ({
    feature: f.feature,
    ...landing(base, outs[i], runner.edited(jobs[i]), grid, P),
  }));
}

/** The files a named run's saved trace writes, relative to the run dir. */
function savedTraceFiles(name: string): string[] {
  return ["trace.jsonl", "states.npy"].map((f) => `interventions/${name}/${f}`);
}

/** Record the intervened rollout of every traced example, as trace does. */
async function saveIntervenedTrace(
  session: InterventionSession,
  policy: InterventionPolicy,
  opts: InterveneOptions,
  run: RunDir,
  outputs: OutputSet,
): Promise<string> {
  const id = `${policy.name}-${
    sha256Hex(
      JSON.stringify({ p: policy.params(), s: session.plan.selector.text }),
    )
      .slice(0, 12)
  }`;
  // A named run's trace goes beside its report; an unnamed one's under an id
  // of the policy and its steps, which only the same edit overwrites.
  const rel = `interventions/${opts.name ?? id}`;
  const dir = await run.subdir(rel);
  await run.checkOutputs(
    [`${rel}/trace.jsonl`, `${rel}/states.npy`],
    opts.name === undefined || opts.force,
  );
  const h = session.ds.header;
  const runDir = session.ds.meta.runDir;
  const n = session.ds.meta.outcomes.length;
  const set: PuzzleSet = {
    path: headerPath(runDir, h.inputs.path),
    format: h.inputs.format,
    sha256: h.inputs.sha256,
    total: n,
    indices: Array.from({ length: n }, (_, i) => i),
    puzzles: session.ds.meta.outcomes.map((o) => ({
      id: o.example,
      tokens: o.tokens,
      label: o.label,
      puzzleIdentifier: o.puzzle_identifier,
    })),
  };
  await writeTrace(
    session.bundle as Bundle,
    set,
    set.indices,
    dir,
    {
      latents: h.record.latents,
      selector: StepSelector.parse(h.record.steps),
      positions: h.record.positions,
      states: h.states,
      dtype: h.dtype,
    },
    {
      runDir: dir,
      model: headerPath(runDir, h.model.path),
      inputs: headerPath(runDir, h.inputs.path),
      seed: opts.seed,
      command: opts.command,
      batch: h.record.batch,
      hooks: [session.hook(policy)],
    },
    outputs,
  );
  return join("interventions", opts.name ?? id, "trace.jsonl");
}
