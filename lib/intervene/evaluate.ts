/**
 * `Evaluator.compare`: baseline versus intervened outcomes.
 *
 * @module
 */
import type { Comparison, ExampleDelta, SideSummary } from "../schema/mod.ts";
import { InputError } from "../errors.ts";
import { round7 } from "../round.ts";
import type { ExampleOutcome, OutcomeTrace } from "../model/rollout.ts";
import { scorePrediction } from "../trace/inputs.ts";
import { TraceDataset } from "../trace/dataset.ts";

function summarize(t: OutcomeTrace): SideSummary {
  const n = t.examples.length;
  let exact = 0, tok = 0, halt = 0;
  const sups = Math.max(0, ...t.examples.map((e) => e.predPerSup.length));
  const perSup = Array.from(
    { length: sups },
    (_, sup) => ({ sup, exact: 0, token: 0 }),
  );
  for (const e of t.examples) {
    const s = scorePrediction(e.pred, e.label);
    exact += s.exact ? 1 : 0;
    tok += s.acc;
    halt += e.haltStep;
    for (let sup = 0; sup < sups; sup++) {
      // After halting, an example keeps its halting prediction.
      const p = e.predPerSup[Math.min(sup, e.predPerSup.length - 1)];
      const r = scorePrediction(p, e.label);
      perSup[sup].exact += r.exact ? 1 : 0;
      perSup[sup].token += r.acc;
    }
  }
  return {
    exact_acc: round7(exact / n),
    token_acc: round7(tok / n),
    acc_per_sup: perSup.map((p) => ({
      sup: p.sup,
      exact: round7(p.exact / n),
      token: round7(p.token / n),
    })),
    mean_halt_step: round7(halt / n),
  };
}

/**
 * KL(softmax(p) ‖ softmax(q)) at each of the S positions of `[S, V]` logits,
 * clipped at 0 against rounding.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { klPerPosition } from "./evaluate.ts";
 * // Position 0 is unchanged; position 1 moves all mass from token 0 to 1.
 * const p = new Float32Array([0, 1, 50, 0]), q = new Float32Array([0, 1, 0, 50]);
 * const kl = klPerPosition(p, q, 2);
 * assert.equal(kl[0], 0);
 * assert(Math.abs(kl[1] - 50) < 1e-9);
 * ```
 */
export function klPerPosition(
  p: ArrayLike<number>,
  q: ArrayLike<number>,
  V: number,
): Float64Array {
  const S = p.length / V, out = new Float64Array(S);
  for (let s = 0; s < S; s++) {
    const o = s * V;
    let mp = -Infinity, mq = -Infinity;
    for (let v = 0; v < V; v++) {
      mp = Math.max(mp, p[o + v]);
      mq = Math.max(mq, q[o + v]);
    }
    let zp = 0, zq = 0;
    for (let v = 0; v < V; v++) {
      zp += Math.exp(p[o + v] - mp);
      zq += Math.exp(q[o + v] - mq);
    }
    const lzp = Math.log(zp) + mp, lzq = Math.log(zq) + mq;
    let kl = 0;
    for (let v = 0; v < V; v++) {
      const lp = p[o + v] - lzp, lq = q[o + v] - lzq;
      kl += Math.exp(lp) * (lp - lq);
    }
    out[s] = Math.max(0, kl);
  }
  return out;
}

/**
 * Mean over positions of KL(softmax(p) ‖ softmax(q)) for `[S, V]` logits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { meanKL } from "./evaluate.ts";
 * const a = new Float32Array([0, 1, 2, 0]);
 * assert(meanKL(a, a, 2) === 0);
 * ```
 */
export function meanKL(p: Float32Array, q: Float32Array, V: number): number {
  const kl = klPerPosition(p, q, V);
  let total = 0;
  for (let s = 0; s < kl.length; s++) total += kl[s];
  return total / kl.length;
}

/**
 * Compares a baseline with an intervened rollout.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Evaluator } from "./evaluate.ts";
 * import type { OutcomeTrace } from "../model/rollout.ts";
 * const t: OutcomeTrace = { S: 1, V: 2, examples: [{ example: "a", label: [1], pred: [1], predPerSup: [[1]],
 *   haltStep: 0, logits: new Float32Array([0, 1]) }] };
 * assert(Evaluator.compare(t, t).delta.mean_kl === 0);
 * ```
 */
export class Evaluator {
  /**
   * Compare two trace.jsonl files (or run dirs), for example an intervened
   * trace saved with `--save-trace` against its baseline.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Evaluator } from "./evaluate.ts";
   * import { runTrace } from "../trace/trace.ts";
   * const demo = new URL("../../references/models/sudoku4-trm", import.meta.url).pathname;
   * const dir = await Deno.makeTempDir();
   * try {
   *   await runTrace({ runDir: `${dir}/a`, model: demo, inputs: `${demo}/test.jsonl`, seed: 0, limit: 4, latents: ["z_H"] });
   *   const c = await Evaluator.compareFiles(`${dir}/a`, `${dir}/a/trace.jsonl`);
   *   assert.equal(c.delta.mean_kl, 0);
   *   assert.equal(c.examples, 4);
   * } finally {
   *   await Deno.remove(dir, { recursive: true });
   * }
   * ```
   */
  static async compareFiles(
    baselineTrace: string,
    newTrace: string,
  ): Promise<Comparison> {
    const load = async (p: string) =>
      (await TraceDataset.load(p, { latents: [], readouts: true })).outcomes();
    return Evaluator.compare(await load(baselineTrace), await load(newTrace));
  }

  /**
   * Compare two outcome traces over the baseline's examples. Either side may
   * be what {@linkcode rollout} returned, as it is: an array of outcomes, whose
   * `[S, V]` shape is read from the labels and logits.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Evaluator } from "./evaluate.ts";
   * import { editActivations, type InterventionPolicy, policyHook } from "../edit/policy.ts";
   * import { loadBundle } from "../model/bundle.ts";
   * import { StepSelector } from "../model/address.ts";
   * import { rollout } from "../model/rollout.ts";
   * import { SAE } from "../sae/sae.ts";
   * const bundle = await loadBundle(new URL("../../references/models/sudoku4-trm", import.meta.url).pathname);
   * try {
   *   const puzzle = { id: "p", tokens: [1, 3, 4, 1, 4, 1, 1, 3, 3, 1, 1, 4, 1, 4, 3, 1],
   *     label: [2, 3, 4, 5, 4, 5, 2, 3, 3, 2, 5, 4, 5, 4, 3, 2] };
   *   // Feature 0 reads and writes dimension 0 of z_H.
   *   const sae = new SAE({ arch: "relu", d_in: 64, d_sae: 2 });
   *   sae.W_enc[0] = 1;
   *   sae.W_dec[0] = 1;
   *   // A feature-level policy in a few lines: editActivations keeps the error term.
   *   const boost: InterventionPolicy = {
   *     name: "boost_f0",
   *     params: () => ({ feature: 0, factor: 50 }),
   *     apply: (_step, h, dict) =>
   *       editActivations(h, dict, (a) => {
   *         for (let i = 0; i < a.length; i += dict.cfg.d_sae) a[i] *= 50;
   *       }),
   *   };
   *   const site = { latent: "z_H" as const, steps: StepSelector.parse("s*.*.H"), positions: [...Array(16).keys()] };
   *   const clean = await rollout(bundle, [puzzle]);
   *   const boosted = await rollout(bundle, [puzzle], { hooks: [policyHook(boost, sae, site)] });
   *   const same = Evaluator.compare(clean, clean);
   *   assert.equal(same.delta.mean_kl, 0);
   *   const c = Evaluator.compare(clean, boosted); // rollout's results, unwrapped
   *   assert.equal(c.examples, 1);
   *   assert.ok(c.delta.mean_kl > 0);
   * } finally {
   *   await bundle.release();
   * }
   * ```
   */
  static compare(
    baseline: OutcomeTrace | readonly ExampleOutcome[],
    intervened: OutcomeTrace | readonly ExampleOutcome[],
  ): Comparison {
    const baselineTrace = asOutcomeTrace(baseline);
    const newTrace = asOutcomeTrace(intervened);
    const byId = new Map(newTrace.examples.map((e) => [e.example, e]));
    const base = baselineTrace.examples.filter((e) => byId.has(e.example));
    if (base.length === 0) {
      throw new InputError(
        `the two traces share no example; compare runs of the same inputs`,
      );
    }
    const other = base.map((e) => byId.get(e.example)!);
    const V = baselineTrace.V;
    for (
      const [side, list] of [["baseline", base], ["edited", other]] as const
    ) {
      for (const e of list) {
        const i = e.logits.findIndex((v) => !Number.isFinite(v));
        if (i >= 0) {
          throw new InputError(
            `the ${side} logits of example "${e.example.slice(0, 64)}" hold ${
              e.logits[i]
            } at position ${Math.floor(i / V)}: ${
              side === "edited"
                ? "the edit drives the model past float32's range (±3.4e38); edit with a smaller value or scale, or check sae.pt and the trace for values near that limit"
                : "the model overflows float32 on these states; check the trace and the model"
            }`,
          );
        }
      }
    }
    let kl = 0, flipped = 0, positions = 0;
    const perExample: ExampleDelta[] = base.map((b, i) => {
      const n = other[i];
      const sb = scorePrediction(b.pred, b.label),
        sn = scorePrediction(n.pred, n.label);
      const k = meanKL(b.logits, n.logits, V);
      let f = 0;
      for (let s = 0; s < b.pred.length; s++) if (b.pred[s] !== n.pred[s]) f++;
      kl += k;
      flipped += f;
      positions += b.pred.length;
      return {
        example: b.example,
        baseline: {
          exact: sb.exact,
          token_acc: round7(sb.acc),
          halt_step: b.haltStep,
        },
        intervened: {
          exact: sn.exact,
          token_acc: round7(sn.acc),
          halt_step: n.haltStep,
        },
        delta_token_acc: round7(sn.acc - sb.acc),
        kl: round7(k),
        flipped: f,
      };
    });
    const bs = summarize({ ...baselineTrace, examples: base });
    const ns = summarize({ ...newTrace, examples: other });
    return {
      examples: base.length,
      baseline: bs,
      intervened: ns,
      delta: {
        exact_acc: round7(ns.exact_acc - bs.exact_acc),
        token_acc: round7(ns.token_acc - bs.token_acc),
        mean_halt_step: round7(ns.mean_halt_step - bs.mean_halt_step),
        mean_kl: round7(kl / base.length),
        flipped_fraction: round7(flipped / positions),
      },
      per_example: perExample,
    };
  }
}

/** An outcome trace as it is, or rollout's outcomes with their shape read off. */
function asOutcomeTrace(
  t: OutcomeTrace | readonly ExampleOutcome[],
): OutcomeTrace {
  if (!Array.isArray(t)) return t as OutcomeTrace;
  const examples = t as ExampleOutcome[];
  const first = examples[0];
  if (!first) return { S: 0, V: 0, examples };
  const S = first.label.length;
  const V = first.logits.length / S;
  if (!Number.isInteger(V)) {
    throw new InputError(
      `outcome ${first.example}: ${first.logits.length} logits is not a whole number per ${S} labels`,
    );
  }
  return { S, V, examples };
}

export type { ExampleOutcome, OutcomeTrace };

export type { Comparison, ExampleDelta, SideSummary };
