/**
 * What a feature means in the task's own variables: how selective its
 * firing is for the answer at a cell (the label token), for the cell being
 * a given clue or a blank, and how its activation runs over the supervision
 * steps. Task-generic: every bundle has per-position labels and inputs.
 *
 * @module
 */
import type { Selectivity } from "../schema/mod.ts";
import type { ModelManifest } from "../schema/mod.ts";
import { round7 } from "../round.ts";
import type { SAE } from "../sae/sae.ts";
import type { TraceDataset } from "../trace/dataset.ts";
import type { Plan } from "./plan.ts";

/** Precision and recall of a binary variable against "the feature fires". */
export interface PrecisionRecall {
  /** P(variable | active). */
  precision: number;
  /** P(active | variable). */
  recall: number;
}

/**
 * Counts of one feature over labelled rows: the pure part of
 * {@linkcode selectivity}, on rows given as (activation, label, input,
 * group) tuples.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { selectivityOf } from "./selectivity.ts";
 * const tokens = { pad: 0, blank: 1, symbols: ["1", "2"], symbol_offset: 2 };
 * // Fires on three rows whose answer is "2" (token 3) and on one whose answer is "1".
 * // Four rows answer "2", four answer "1"; the first three cells are blanks.
 * const rows = [
 *   { act: 1, label: 3, input: 1, group: 0 }, { act: 2, label: 3, input: 1, group: 0 },
 *   { act: 3, label: 3, input: 1, group: 1 }, { act: 0, label: 3, input: 3, group: 1 },
 *   { act: 1, label: 2, input: 2, group: 1 }, { act: 0, label: 2, input: 2, group: 1 },
 *   { act: 0, label: 2, input: 2, group: 1 }, { act: 0, label: 2, input: 2, group: 1 },
 * ];
 * const s = selectivityOf(rows, tokens, 2);
 * assert.deepEqual(s.label, { token: 3, symbol: "2", precision: 0.75, recall: 0.75 });
 * assert.deepEqual(s.input.blank, { precision: 0.75, recall: 1 });
 * assert.deepEqual(s.input.given, { precision: 0.25, recall: 0.2 });
 * assert.deepEqual(s.activation_per_sup, [1.5, 4 / 6].map((x) => Number(x.toPrecision(7))));
 * assert.equal(s.active_fraction, 0.5);
 * ```
 */
export function selectivityOf(
  rows: Iterable<{ act: number; label: number; input: number; group: number }>,
  tokens: ModelManifest["tokens"],
  groups: number,
): Omit<Selectivity["features"][number], "feature"> {
  const c = new Counter(tokens, groups);
  for (const r of rows) c.add(r.act, r.label, r.input, r.group);
  return c.result();
}

/** Running counts of one feature. */
class Counter {
  n = 0;
  active = 0;
  label = new Map<number, number>();
  activeLabel = new Map<number, number>();
  given = 0;
  blank = 0;
  activeGiven = 0;
  activeBlank = 0;
  sum: Float64Array;
  rowsIn: Float64Array;
  constructor(readonly tokens: ModelManifest["tokens"], groups: number) {
    this.sum = new Float64Array(groups);
    this.rowsIn = new Float64Array(groups);
  }
  add(act: number, label: number, input: number, group: number): void {
    const on = act > 0;
    this.n++;
    this.sum[group] += act;
    this.rowsIn[group]++;
    if (on) this.active++;
    // A negative or pad label is "ignore": no answer to match.
    if (label >= 0 && label !== this.tokens.pad) {
      this.label.set(label, (this.label.get(label) ?? 0) + 1);
      if (on) {
        this.activeLabel.set(label, (this.activeLabel.get(label) ?? 0) + 1);
      }
    }
    if (input === this.tokens.blank) {
      this.blank++;
      if (on) this.activeBlank++;
    } else if (input !== this.tokens.pad) {
      this.given++;
      if (on) this.activeGiven++;
    }
  }
  result(): Omit<Selectivity["features"][number], "feature"> {
    const ratio = (a: number, b: number) => (b > 0 ? round7(a / b) : 0);
    // The best answer token: the highest F1 of precision and recall, the
    // lower token id on a tie.
    let best: Selectivity["features"][number]["label"] = null, bestF = -1;
    for (const t of [...this.label.keys()].sort((a, b) => a - b)) {
      const al = this.activeLabel.get(t) ?? 0;
      const f1 = 2 * al / (this.active + this.label.get(t)!);
      if (al > 0 && f1 > bestF) {
        bestF = f1;
        const i = t - this.tokens.symbol_offset;
        best = {
          token: t,
          symbol: i >= 0 && i < this.tokens.symbols.length
            ? this.tokens.symbols[i]
            : `#${t}`,
          precision: ratio(al, this.active),
          recall: ratio(al, this.label.get(t)!),
        };
      }
    }
    return {
      rows: this.n,
      active_fraction: ratio(this.active, this.n),
      label: best,
      input: {
        given: {
          precision: ratio(this.activeGiven, this.active),
          recall: ratio(this.activeGiven, this.given),
        },
        blank: {
          precision: ratio(this.activeBlank, this.active),
          recall: ratio(this.activeBlank, this.blank),
        },
      },
      activation_per_sup: Array.from(
        this.sum,
        (s, g) => ratio(s, this.rowsIn[g]),
      ),
    };
  }
}

/**
 * The selectivity of `features` over the trace's rows of `examples` at the
 * plan's steps and positions (puzzle positions only: the prefix has no
 * label), with the activation averaged per supervision step in `sups`.
 */
export function selectivity(
  ds: TraceDataset,
  sae: SAE,
  plan: Plan,
  examples: readonly string[],
  features: readonly number[],
  manifest: Pick<ModelManifest, "tokens" | "puzzle_emb_len" | "schedule">,
  sups: readonly number[],
): Selectivity {
  const P = manifest.puzzle_emb_len, F = sae.cfg.d_sae;
  const s = manifest.schedule;
  const perSup = s.H_cycles * (s.L_cycles + 1);
  const group = new Map(sups.map((sup, g) => [sup, g]));
  const m = ds.meta;
  const byId = new Map(m.outcomes.map((o) => [o.example, o]));
  const all = ds.select({
    latent: plan.latent,
    steps: plan.selector,
    positions: plan.positions.filter((p) => p >= P),
    examples,
  });
  const counters = features.map(() =>
    new Counter(manifest.tokens, sups.length)
  );
  for (let s0 = 0; s0 < all.length; s0 += 1024) {
    const chunk = all.subarray(s0, s0 + 1024);
    const acts = sae.encode(ds.gather(chunk));
    chunk.forEach((row, r) => {
      const o = byId.get(m.examples[m.exampleOf[row]])!;
      const cell = m.position[row] - P;
      const g = group.get(Math.floor(m.t[row] / perSup))!;
      features.forEach((f, j) =>
        counters[j].add(acts[r * F + f], o.label[cell], o.tokens[cell], g)
      );
    });
  }
  return {
    metric:
      "over the subsample's rows at the selected steps and puzzle positions: label = the answer token at the cell " +
      "with the highest F1 of precision P(label = t | active) and recall P(active | label = t); input: the cell " +
      "is a given clue (not blank) or a blank in the puzzle; activation_per_sup: mean activation (zeros included) " +
      "over the rows of each supervision step",
    groups: sups.map((x) => `s${x}`),
    features: features.map((feature, j) => ({
      feature,
      ...counters[j].result(),
    })),
  };
}
