/**
 * Tomography: each top feature ablated only at the selected steps of one
 * supervision step at a time.
 *
 * @module
 */
import type { Tomography } from "../schema/mod.ts";
import { formatAddress, StepSelector } from "../model/address.ts";
import type { OutcomeTrace, RolloutExample } from "../model/rollout.ts";
import { ablationEffect } from "./ranking.ts";
import type { InterventionSession } from "./session.ts";

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

/** Ablate each of `features` at one supervision step at a time. */
export async function tomography(
  session: InterventionSession,
  sub: { examples: readonly RolloutExample[]; base: OutcomeTrace },
  features: readonly number[],
  tick: () => void,
): Promise<Tomography> {
  const { addresses } = session.plan;
  const sups = supervisionGroups(addresses);
  const effect: number[][] = [];
  for (const sup of sups) {
    const group = StepSelector.parse(
      addresses.filter((a) => a.sup === sup).map(formatAddress).join(","),
    );
    const row: number[] = [];
    for (const f of features) {
      row.push(
        (await ablationEffect(session, sub.base, sub.examples, f, group))
          .effect,
      );
      tick();
    }
    effect.push(row);
  }
  return {
    metric:
      "drop in token accuracy when the feature is ablated only at the steps of one supervision step",
    groups: sups.map((s) => `s${s}`),
    features: [...features],
    effect,
  };
}

export type { Tomography };
