/**
 * Many feature ablations of one subsample in few large rollouts: every
 * (ablation, example) pair is one row of the batch, and a pair starts at the
 * first supervision step where its ablation changes anything, from the
 * baseline's carry there. Before that step the ablated rollout is the
 * baseline bit for bit (ablating an inactive feature returns the state
 * untouched), so the shared prefix is computed once, by the baseline; a pair
 * whose features never fire keeps the baseline outcome without a rollout.
 * Outcomes equal those of one full rollout per ablation.
 *
 * @module
 */
import type { StepSelector } from "../model/address.ts";
import { stepIndex } from "../model/address.ts";
import { CarryRecorder } from "../model/hooks.ts";
import {
  type ExampleOutcome,
  type Hook,
  type OutcomeTrace,
  rollout,
  type RolloutExample,
  type StepEvent,
} from "../model/rollout.ts";
import type { InterventionSession } from "./session.ts";

/** One ablation: `features` set to 0 at the plan's positions at the steps `where`. */
export interface AblationJob {
  /** The features ablated together. */
  features: readonly number[];
  /** The steps to ablate at (a subset of the plan's steps). */
  where: StepSelector;
}

/**
 * Runs zero-ablations of SAE features on a fixed list of examples, sharing
 * the baseline's prefix. Outcomes are those of `session.run(examples, new
 * AblateFeatures(features), where)`, bit for bit.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AblationRunner } from "./batched.ts";
 * import { InterventionSession } from "./session.ts";
 * import { planIntervention } from "./plan.ts";
 * import { AblateFeatures } from "./policy.ts";
 * import { loadBundle } from "../model/bundle.ts";
 * import { TraceDataset } from "../trace/dataset.ts";
 * import { runTrace } from "../trace/trace.ts";
 * import { runSaeFit } from "../sae/fit.ts";
 * import { SAE } from "../sae/sae.ts";
 * const demo = new URL("../../references/models/sudoku4-trm", import.meta.url).pathname;
 * const dir = await Deno.makeTempDir();
 * const bundle = await loadBundle(demo);
 * try {
 *   await runTrace({ runDir: dir, model: demo, inputs: `${demo}/test.jsonl`, seed: 0, limit: 6, latents: ["z_H"], backend: "wasm" });
 *   await runSaeFit({ runDir: dir, seed: 0, trainSteps: 30, features: 32, k: 4 });
 *   const sae = await SAE.load(dir);
 *   const ds = await TraceDataset.load(dir);
 *   const plan = planIntervention({ runDir: dir, policy: "ablate_features", seed: 0 }, ds, sae, { latent: "z_H" });
 *   const session = new InterventionSession(bundle, sae, ds, plan, 64);
 *   const runner = new AblationRunner(session, ds.examples());
 *   await runner.baseline();
 *   const [batched] = await runner.run([{ features: [0, 1], where: plan.selector }]);
 *   const alone = await session.run(ds.examples(), new AblateFeatures([0, 1]));
 *   assert.deepEqual(batched.examples.map((e) => [...e.logits]), alone.examples.map((e) => [...e.logits]));
 * } finally {
 *   await bundle.release();
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export class AblationRunner {
  /** The session. */
  readonly session: InterventionSession;
  /** The examples every ablation runs on. */
  readonly examples: readonly RolloutExample[];
  #base?: OutcomeTrace;
  #carries = new CarryRecorder();
  /** Active features per example and step index, on the baseline. */
  #active = new Map<number, Map<number, Int32Array>>();
  /** Outcomes of the jobs run so far. */
  #done = new Map<string, OutcomeTrace>();
  /** Per job run so far, per example, the positions its ablation changed. */
  #edits = new Map<string, (Uint8Array | undefined)[]>();

  /** Ablations of `session`'s SAE features on `examples`. */
  constructor(
    session: InterventionSession,
    examples: readonly RolloutExample[],
  ) {
    this.session = session;
    this.examples = examples;
  }

  /**
   * Roll out the baseline once, keeping its carries and active features;
   * `onProgress` counts its examples (as in {@linkcode rollout}).
   */
  async baseline(
    onProgress?: (done: number, total: number) => void,
  ): Promise<OutcomeTrace> {
    if (this.#base) return this.#base;
    const { plan, sae } = this.session;
    const m = this.session.bundle.manifest;
    const sched = m.schedule;
    const F = sae.cfg.d_sae;
    const probe: Hook = {
      onStep: (e) => {
        if (e.latent !== plan.latent || !plan.selector.matches(e.address)) {
          return;
        }
        const rows = gatherRows(e, [...e.examples.keys()], plan.positions);
        const acts = sae.encode(rows.data);
        const t = stepIndex(e.address, sched);
        const P = plan.positions.length;
        rows.examples.forEach((b, k) => {
          const on = new Set<number>();
          for (let r = k * P; r < (k + 1) * P; r++) {
            for (let f = 0; f < F; f++) if (acts[r * F + f] !== 0) on.add(f);
          }
          const i = e.offset + b;
          let byT = this.#active.get(i);
          if (!byT) this.#active.set(i, byT = new Map());
          byT.set(t, Int32Array.from(on));
        });
      },
    };
    this.#base = {
      S: m.seq_len,
      V: m.vocab_size,
      examples: await rollout(this.session.bundle, this.examples, {
        batch: this.session.batch,
        hooks: [probe, this.#carries],
        onProgress,
      }),
    };
    return this.#base;
  }

  /**
   * The supervision step at which `job` first changes example `i`'s state on
   * the baseline trajectory, or -1 when it never does.
   */
  #startOf(job: AblationJob, i: number): number {
    const { plan } = this.session;
    const sched = this.session.bundle.manifest.schedule;
    const halt = this.#base!.examples[i].haltStep;
    const want = new Set(job.features);
    for (const a of plan.addresses) {
      if (!job.where.matches(a)) continue;
      // Hooks leave an example alone after the step it halted at.
      if (sched.halt_mode === "q_halt" && a.sup > halt) break;
      const on = this.#active.get(i)?.get(stepIndex(a, sched));
      if (on?.some((f) => want.has(f))) return a.sup;
    }
    return -1;
  }

  /**
   * Run `jobs`; one outcome trace per job, in the examples' order. A job run
   * before (the same features at the same steps) is not run again.
   * `onProgress` counts (job, example) rollouts.
   */
  async run(
    jobs: readonly AblationJob[],
    onProgress?: (done: number, total: number) => void,
  ): Promise<OutcomeTrace[]> {
    const key = jobKey;
    const fresh = [
      ...new Map(
        jobs.filter((j) => !this.#done.has(key(j))).map((j) => [key(j), j]),
      ).values(),
    ];
    const { outs, edits } = await this.#run(fresh, onProgress);
    fresh.forEach((j, i) => {
      this.#done.set(key(j), outs[i]);
      this.#edits.set(key(j), edits[i]);
    });
    return jobs.map((j) => this.#done.get(key(j))!);
  }

  /**
   * Per example (in the runner's order), the positions where a job run
   * before changed the state at some step; `undefined` where it changed
   * nothing.
   */
  edited(job: AblationJob): (Uint8Array | undefined)[] {
    const e = this.#edits.get(jobKey(job));
    if (!e) throw new Error(`the job ${jobKey(job)} has not run`);
    return e;
  }

  async #run(
    jobs: readonly AblationJob[],
    onProgress?: (done: number, total: number) => void,
  ): Promise<{ outs: OutcomeTrace[]; edits: (Uint8Array | undefined)[][] }> {
    const base = await this.baseline();
    const out = jobs.map(() => [...base.examples]);
    const T = this.session.bundle.manifest.seq_len +
      this.session.bundle.manifest.puzzle_emb_len;
    const edits: (Uint8Array | undefined)[][] = jobs.map(() =>
      new Array(this.examples.length)
    );
    const pairs: { job: number; i: number; sup: number }[] = [];
    jobs.forEach((job, j) => {
      for (let i = 0; i < this.examples.length; i++) {
        const sup = this.#startOf(job, i);
        if (sup >= 0) pairs.push({ job: j, i, sup });
      }
    });
    // Same start step, same batch: sort so the batches fill.
    pairs.sort((a, b) => a.sup - b.sup || a.job - b.job || a.i - b.i);
    const list = pairs.map(({ i, sup }) => {
      const ex = this.examples[i];
      if (sup === 0) return ex;
      const start = this.#carries.carry(i, sup);
      if (!start) {
        throw new Error(`no baseline carry of example ${i} at s${sup}`);
      }
      return { ...ex, start };
    });
    const features = jobs.map((j) =>
      [...new Set(j.features)].sort((a, b) => a - b)
    );
    const outcomes: ExampleOutcome[] = await rollout(
      this.session.bundle,
      list,
      {
        batch: this.session.batch,
        hooks: [
          this.#ablate(
            (k) => jobs[pairs[k].job].where,
            (k) => features[pairs[k].job],
            (k, p) => {
              const { job, i } = pairs[k];
              (edits[job][i] ??= new Uint8Array(T))[p] = 1;
            },
          ),
        ],
        onProgress,
      },
    );
    outcomes.forEach((o, k) => (out[pairs[k].job][pairs[k].i] = o));
    return {
      outs: out.map((examples) => ({ S: base.S, V: base.V, examples })),
      edits,
    };
  }

  /**
   * The hook that ablates, for the example at list index `k`, `features(k)`
   * at `where(k)`: as `AblateFeatures` through `policyHook` does it, with one
   * encode for the whole batch.
   */
  #ablate(
    where: (k: number) => StepSelector,
    features: (k: number) => readonly number[],
    mark: (k: number, position: number) => void,
  ): Hook {
    const { plan, sae } = this.session;
    const { d_in: D, d_sae: F } = sae.cfg;
    const P = plan.positions.length;
    return {
      onStep: (e) => {
        if (e.latent !== plan.latent) return;
        const chosen: number[] = [];
        for (let b = 0; b < e.batch; b++) {
          if (!e.halted[b] && where(e.offset + b).matches(e.address)) {
            chosen.push(b);
          }
        }
        if (!chosen.length) return;
        const rows = gatherRows(e, chosen, plan.positions);
        // A feature whose pre-activation is not positive is inactive: only
        // rows where an ablated feature's is need the full encode. Checking
        // costs a dot product per feature, so a set of more than a quarter
        // of the features (the control's mass-matched draws) skips the check.
        const full: number[] = [];
        chosen.forEach((b, k) => {
          const fs = features(e.offset + b);
          const check = fs.length * 4 < F;
          for (let r = k * P; r < (k + 1) * P; r++) {
            if (
              !check || fs.some((f) => sae.preActivation(rows.data, r, f) > 0)
            ) {
              full.push(r);
            }
          }
        });
        if (!full.length) return;
        const sub = new Float32Array(full.length * D);
        full.forEach((r, i) =>
          sub.set(rows.data.subarray(r * D, (r + 1) * D), i * D)
        );
        const encoded = sae.encode(sub);
        const slot = new Map(full.map((r, i) => [r, i]));
        chosen.forEach((b, k) => {
          const h = rows.data.subarray(k * P * D, (k + 1) * P * D);
          let changed = false;
          // editActivations' order: row by row, features ascending, each
          // product added into float32 storage.
          for (let r = 0; r < P; r++) {
            const i = slot.get(k * P + r);
            if (i === undefined) continue;
            for (const f of features(e.offset + b)) {
              const a = encoded[i * F + f];
              if (a === 0) continue;
              changed = true;
              mark(e.offset + b, plan.positions[r]);
              const d = 0 - a, o = f * D;
              for (let i = 0; i < D; i++) h[r * D + i] += d * sae.W_dec[o + i];
            }
          }
          if (!changed) return;
          const T = e.positions;
          plan.positions.forEach((p, r) => {
            e.state.set(h.subarray(r * D, (r + 1) * D), (b * T + p) * D);
          });
        });
      },
    };
  }
}

/** A job's identity: its features as a set, and its steps. */
function jobKey(j: AblationJob): string {
  return `${[...new Set(j.features)].sort((a, b) => a - b)}|${j.where.text}`;
}

/** The plan positions' rows of the batch examples `chosen`, as float32 (as `rowEditHook` gathers them). */
function gatherRows(
  e: StepEvent,
  chosen: readonly number[],
  positions: readonly number[],
): { data: Float32Array; examples: readonly number[] } {
  const D = e.dim, T = e.positions, P = positions.length;
  const data = new Float32Array(chosen.length * P * D);
  chosen.forEach((b, k) => {
    positions.forEach((p, r) => {
      const src = (b * T + p) * D;
      data.set(e.state.subarray(src, src + D), (k * P + r) * D);
    });
  });
  return { data, examples: chosen };
}
