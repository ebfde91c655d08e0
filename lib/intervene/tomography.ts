/**
 * Tomography: each top feature ablated only at the selected steps of one
 * supervision step at a time.
 *
 * @module
 */
import type { Tomography } from "../schema/mod.ts";
import { StepSelector } from "../model/address.ts";
import { concreteSelector } from "../sae/fitted_steps.ts";
import type { AblationRunner } from "./batched.ts";
import { ablationEffect } from "./ranking.ts";

/**
 * The supervision steps of the plan's selected addresses, in order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { supervisionGroups } from "./tomography.ts";
 * assert.deepEqual(supervisionGroups([{ sup: 0 }, { sup: 0 }, { sup: 2 }, { sup: 1 }]), [0, 2, 1]);
 * ```
 */
export function supervisionGroups(
  addresses: readonly { sup: number }[],
): number[] {
  return [...new Set(addresses.map((a) => a.sup))];
}

/**
 * Ablate each of `features` at one supervision step at a time. Each ablation
 * starts from the baseline's carry at its supervision step (or later, where
 * the feature first fires), not from step 0.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { AblationRunner } from "./batched.ts";
 * import { tomography } from "./tomography.ts";
 * // A stand-in runner: one example of 4 positions; feature 7 ablated at
 * // supervision step 1 breaks two of them, anything else breaks nothing.
 * const outcome = (broken: number) => ({ S: 4, V: 2, examples: [{ example: "a", label: [1, 1, 1, 1],
 *   pred: [0, 1, 2, 3].map((s) => s < broken ? 0 : 1), predPerSup: [], haltStep: 0, logits: new Float32Array(8) }] });
 * const runner = {
 *   session: { plan: { addresses: [{ sup: 0, h: 0, l: "H" }, { sup: 1, h: 0, l: "H" }, { sup: 1, h: 1, l: "H" }] } },
 *   baseline: () => Promise.resolve(outcome(0)),
 *   run: (jobs: { features: number[]; where: { text: string } }[]) =>
 *     Promise.resolve(jobs.map((j) => outcome(j.features[0] === 7 && j.where.text.startsWith("s1.") ? 2 : 0))),
 * } as unknown as AblationRunner;
 * const t = await tomography(runner, [5, 7]);
 * assert.deepEqual(t.groups, ["s0", "s1"]);
 * assert.deepEqual(t.effect, [[0, 0], [0, 0.5]]); // effect[group][feature]
 * ```
 */
export async function tomography(
  runner: AblationRunner,
  features: readonly number[],
  onProgress?: (done: number, total: number) => void,
): Promise<Tomography> {
  const { addresses } = runner.session.plan;
  const sups = supervisionGroups(addresses);
  const base = await runner.baseline();
  const wheres = sups.map((sup) => {
    const at = addresses.filter((a) => a.sup === sup);
    return { where: StepSelector.parse(concreteSelector(at)), n: at.length };
  });
  const jobs = wheres.flatMap(({ where }) =>
    features.map((f) => ({ features: [f], where }))
  );
  const outs = await runner.run(jobs, onProgress);
  const effect = sups.map((_, g) =>
    features.map((_, i) =>
      ablationEffect(base, outs[g * features.length + i]).effect
    )
  );
  return {
    metric:
      "drop in token accuracy when the feature is ablated only at the steps of one supervision step",
    groups: sups.map((s) => `s${s}`),
    steps: wheres.map(({ where, n }) => ({
      selector: where.text,
      addresses: n,
    })),
    features: [...features],
    effect,
  };
}

export type { Tomography };
