/**
 * What every rollout of one `intervene` run shares: the bundle, the SAE, the
 * trace and the plan, with one method to roll examples out under a policy.
 *
 * @module
 */
import type { StepSelector } from "../model/address.ts";
import { stepIndex } from "../model/address.ts";
import type { Bundle } from "../model/bundle.ts";
import {
  type Hook,
  type OutcomeTrace,
  rollout,
  type RolloutExample,
} from "../model/rollout.ts";
import type { SAE } from "../sae/sae.ts";
import type { TraceDataset } from "../trace/dataset.ts";
import type { Plan } from "./plan.ts";
import {
  type InterventionPolicy,
  policyHook,
  type SourceLookup,
} from "../edit/policy.ts";

/**
 * The shared state of one intervention run.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { InterventionSession } from "./session.ts";
 * import { planIntervention } from "./plan.ts";
 * import { AblateFeatures } from "./policy.ts";
 * import { loadBundle } from "../model/bundle.ts";
 * import { TraceDataset } from "../trace/dataset.ts";
 * import { runTrace } from "../trace/trace.ts";
 * import { SAE } from "../sae/sae.ts";
 * const demo = new URL("../../references/models/sudoku4-trm", import.meta.url).pathname;
 * const dir = await Deno.makeTempDir();
 * const bundle = await loadBundle(demo);
 * try {
 *   await runTrace({ runDir: dir, model: demo, inputs: `${demo}/test.jsonl`, seed: 0, limit: 2, latents: ["z_H"], backend: "wasm" });
 *   const ds = await TraceDataset.load(dir);
 *   const sae = new SAE({ arch: "relu", d_in: 64, d_sae: 8 });
 *   const plan = planIntervention({ runDir: dir, policy: "ablate_features", seed: 0 }, ds, sae, { latent: "z_H" });
 *   const session = new InterventionSession(bundle, sae, ds, plan, 64);
 *   // An all-zero SAE has no active feature: ablating one changes nothing.
 *   const out = await session.run(ds.examples(), new AblateFeatures([0]));
 *   assert.deepEqual(out.examples.map((e) => [...e.logits]), ds.outcomes().examples.map((e) => [...e.logits]));
 * } finally {
 *   await bundle.release();
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export class InterventionSession {
  /** The model. */
  readonly bundle: Bundle;
  /** The SAE. */
  readonly sae: SAE;
  /** The trace. */
  readonly ds: TraceDataset;
  /** Where the policy acts. */
  readonly plan: Plan;
  /** Examples per batch. */
  readonly batch: number;
  #source?: SourceLookup;

  /** Bind the parts of one run. */
  constructor(
    bundle: Bundle,
    sae: SAE,
    ds: TraceDataset,
    plan: Plan,
    batch: number,
  ) {
    this.bundle = bundle;
    this.sae = sae;
    this.ds = ds;
    this.plan = plan;
    this.batch = batch;
  }

  /**
   * Roll `examples` out with `policy` acting at `where` (default: the plan's
   * steps) and the plan's positions; `null` runs the clean model. `wrap`
   * may wrap the policy's hook (to watch what it changes).
   */
  async run(
    examples: readonly RolloutExample[],
    policy: InterventionPolicy | null,
    where: StepSelector = this.plan.selector,
    onProgress?: (done: number, total: number) => void,
    wrap: (h: Hook) => Hook = (h) => h,
  ): Promise<OutcomeTrace> {
    const m = this.bundle.manifest;
    const hooks = policy ? [wrap(this.hook(policy, where))] : [];
    return {
      S: m.seq_len,
      V: m.vocab_size,
      examples: await rollout(this.bundle, examples, {
        batch: this.batch,
        hooks,
        onProgress,
      }),
    };
  }

  /** The hook that applies `policy` at `where` and the plan's positions. */
  hook(policy: InterventionPolicy, where: StepSelector = this.plan.selector) {
    return policyHook(policy, this.sae, {
      latent: this.plan.latent,
      steps: where,
      positions: this.plan.positions,
      source: this.source(),
    });
  }

  /** Source activations `[positions, F]` of an example at a step, from the trace. */
  source(): SourceLookup {
    if (this.#source) return this.#source;
    const cache = new Map<string, Float32Array | undefined>();
    const sched = this.ds.header.model.schedule;
    this.#source = (step, example) => {
      const t = stepIndex(step, sched);
      const key = `${example}|${t}`;
      if (cache.has(key)) return cache.get(key);
      const rows = this.ds.rowsAt(example, t, this.plan.positions);
      const acts = rows ? this.sae.encode(this.ds.gather(rows)) : undefined;
      cache.set(key, acts);
      return acts;
    };
    return this.#source;
  }

  /**
   * Mean activation of every feature over the trace's rows at the plan's
   * steps and positions (of the `only` examples, when given).
   */
  featureMeans(only?: Iterable<string>): Float32Array {
    const F = this.sae.cfg.d_sae;
    const rows = this.ds.select({
      latent: this.plan.latent,
      steps: this.plan.selector,
      positions: this.plan.positions,
      examples: only,
    });
    const sum = new Float64Array(F);
    for (let s = 0; s < rows.length; s += 1024) {
      const a = this.sae.encode(this.ds.gather(rows.subarray(s, s + 1024)));
      for (let i = 0; i < a.length; i++) if (a[i] !== 0) sum[i % F] += a[i];
    }
    return Float32Array.from(sum, (v) => rows.length ? v / rows.length : 0);
  }
}
