/**
 * The steps an SAE was fitted on: the addresses of its latent that both the
 * trace recorded and the fit's step selector chose. Every SAE-based edit
 * (sae fit's task accuracy, intervene's policy and ranking) acts there by
 * default, because elsewhere the SAE never saw the state it encodes.
 *
 * @module
 */
import {
  formatAddress,
  type ScheduleShape,
  type StepAddress,
  StepSelector,
} from "../model/address.ts";
import type { Latent } from "../model/rollout.ts";

/** Whether an address updates `latent`. */
function ofLatent(a: StepAddress, latent: Latent): boolean {
  return (a.l === "H") === (latent === "z_H");
}

/**
 * The addresses of `latent`, in execution order, that the trace recorded
 * (`recorded`, the header's `record.steps`) and the fit selected (`fitted`,
 * sae.pt's `cfg.steps`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fittedAddresses } from "./fitted_steps.ts";
 * const sched = { H_cycles: 3, L_cycles: 2, halt_max_steps: 2 };
 * // The study: z_H recorded at the last H cycle only; the fit took "all".
 * const a = fittedAddresses(sched, "s*.h2.H", "all", "z_H");
 * assert.deepEqual(a, [{ sup: 0, h: 2, l: "H" }, { sup: 1, h: 2, l: "H" }]);
 * assert.equal(fittedAddresses(sched, "all", "all", "z_H").length, 6);
 * ```
 */
export function fittedAddresses(
  sched: ScheduleShape,
  recorded: string,
  fitted: string,
  latent: Latent,
): StepAddress[] {
  const rec = StepSelector.parse(recorded), fit = StepSelector.parse(fitted);
  return rec.select(sched).filter((a) => fit.matches(a) && ofLatent(a, latent));
}

/**
 * A selector whose text names exactly `addresses`, compact: supervision
 * steps and H cycles as ranges where they run on. `StepSelector.parse` of
 * the text selects the same addresses (of a schedule that holds them), so
 * the text can be recorded and rerun as it is.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { concreteSelector } from "./fitted_steps.ts";
 * import { allAddresses, StepSelector } from "../model/address.ts";
 * const sched = { H_cycles: 2, L_cycles: 2, halt_max_steps: 8 };
 * const zH = allAddresses(sched).filter((a) => a.l === "H");
 * assert.equal(concreteSelector(zH), "s0-7.h0-1.H");
 * const some = [{ sup: 0, h: 1, l: "H" as const }, { sup: 2, h: 1, l: "H" as const }, { sup: 3, h: 1, l: "H" as const }];
 * assert.equal(concreteSelector(some), "s0.h1.H,s2-3.h1.H");
 * assert.deepEqual(StepSelector.parse(concreteSelector(some)).select(sched), some);
 * assert.equal(concreteSelector([]), "");
 * ```
 */
export function concreteSelector(addresses: readonly StepAddress[]): string {
  // Per (h, l): the supervision steps, as ranges.
  const byHL = new Map<string, { h: number; l: string; sups: number[] }>();
  for (const a of addresses) {
    const l = a.l === "H" ? "H" : `l${a.l}`;
    const key = `${a.h}|${l}`;
    if (!byHL.has(key)) byHL.set(key, { h: a.h, l, sups: [] });
    byHL.get(key)!.sups.push(a.sup);
  }
  // Then per (sup ranges, l): the H cycles, as ranges.
  const bySL = new Map<string, { s: string; l: string; hs: number[] }>();
  for (const { h, l, sups } of byHL.values()) {
    const s = ranges([...new Set(sups)]).map((r) => `s${r}`).join("|");
    const key = `${s}|${l}`;
    if (!bySL.has(key)) bySL.set(key, { s, l, hs: [] });
    bySL.get(key)!.hs.push(h);
  }
  const terms: string[] = [];
  for (const { s, l, hs } of bySL.values()) {
    for (const sr of s.split("|")) {
      for (const hr of ranges([...new Set(hs)])) {
        terms.push(`${sr}.h${hr}.${l}`);
      }
    }
  }
  return terms.join(",");
}

/** Sorted integers as "a-b" / "a" runs. */
function ranges(xs: number[]): string[] {
  const s = [...xs].sort((a, b) => a - b), out: string[] = [];
  for (let i = 0; i < s.length;) {
    let j = i;
    while (j + 1 < s.length && s[j + 1] === s[j] + 1) j++;
    out.push(i === j ? `${s[i]}` : `${s[i]}-${s[j]}`);
    i = j + 1;
  }
  return out;
}

/**
 * Where an SAE-based edit acts: the requested steps (or, without a request,
 * the fitted ones), as a concrete selector, with how many of its addresses
 * lie outside the fitted steps.
 */
export interface EditSteps {
  /** The concrete selector of the edited addresses. */
  selector: StepSelector;
  /** The edited addresses, in execution order. */
  addresses: StepAddress[];
  /** `fitted` when no steps were requested, else `requested`. */
  source: "fitted" | "requested";
  /** The concrete selector of the SAE's fitted steps. */
  fitted: string;
  /** Edited addresses outside the fitted steps. */
  outside: number;
}

/**
 * Resolve the steps an SAE-based edit acts on: `requested` (a selector, of
 * `latent`'s addresses) or by default the fitted steps.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { editSteps } from "./fitted_steps.ts";
 * const sched = { H_cycles: 3, L_cycles: 2, halt_max_steps: 8 };
 * const d = editSteps(sched, { recorded: "s*.h2.H", fitted: "all", latent: "z_H" });
 * assert.equal(d.selector.text, "s0-7.h2.H");
 * assert.equal(d.outside, 0);
 * const all = editSteps(sched, { recorded: "s*.h2.H", fitted: "all", latent: "z_H", requested: "all" });
 * assert.equal(all.addresses.length, 24);
 * assert.equal(all.selector.text, "s0-7.h0-2.H");
 * assert.equal(all.outside, 16); // h0 and h1 were never recorded
 * ```
 */
export function editSteps(
  sched: ScheduleShape,
  o: { recorded: string; fitted: string; latent: Latent; requested?: string },
): EditSteps {
  const fitted = fittedAddresses(sched, o.recorded, o.fitted, o.latent);
  const addresses = o.requested === undefined
    ? fitted
    : StepSelector.parse(o.requested).select(sched).filter((a) =>
      ofLatent(a, o.latent)
    );
  const inFit = new Set(fitted.map(formatAddress));
  return {
    // No address: the caller reports it; the selector is the request's.
    selector: StepSelector.parse(
      concreteSelector(addresses) || (o.requested ?? o.fitted),
    ),
    addresses,
    source: o.requested === undefined ? "fitted" : "requested",
    fitted: concreteSelector(fitted),
    outside: addresses.filter((a) => !inFit.has(formatAddress(a))).length,
  };
}
