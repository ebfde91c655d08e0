/**
 * What each command prints on stdout when it is done: a short, readable
 * summary that ends with the next command to run. Progress and diagnostics
 * go to stderr; the payloads stay exactly trace.jsonl and report.json.
 *
 * @module
 */
import { join } from "node:path";
import type { Report } from "../lib/intervene/report.ts";
import type { SaeMetricsJson } from "../lib/sae/fit.ts";
import type { TraceSummary } from "../lib/trace/trace.ts";
import { invocation } from "./common.ts";

const SHADES = [" ", "░", "▒", "▓", "█"];
const EIGHTHS = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];

/**
 * A horizontal bar of `value` in `[0, max]`, `width` cells wide, in eighths.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bar } from "./summary.ts";
 * assert.equal(bar(1, 1, 4), "████");
 * assert.equal(bar(0.5, 1, 4), "██");
 * assert.equal(bar(0, 1, 4), "");
 * ```
 */
export function bar(value: number, max: number, width: number): string {
  if (!(max > 0) || !(value > 0)) return "";
  const eighths = Math.round(Math.min(value / max, 1) * width * 8);
  return "█".repeat(Math.floor(eighths / 8)) + EIGHTHS[eighths % 8];
}

/**
 * A heat map in Unicode shades: one row per label, one cell per column, with
 * the scale printed. Values ≤ 0 are blank; the largest is `█`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { heatmap } from "./summary.ts";
 * const text = heatmap([[0, 0.5], [1, 0.25]], ["f3", "f9"], ["s0", "s1"]);
 * assert.match(text, /f3 +\│ +▒/);
 * assert.match(text, /f9 +\│█+ +░/);
 * assert.match(text, /max 1/);
 * ```
 */
export function heatmap(
  values: number[][],
  rows: string[],
  cols: string[],
): string {
  const max = Math.max(0, ...values.flat());
  const w = Math.max(2, ...cols.map((c) => c.length));
  const lw = Math.max(...rows.map((r) => r.length));
  const shade = (v: number) =>
    max > 0 && v > 0
      ? SHADES[Math.max(1, Math.min(4, Math.ceil((v / max) * 4)))]
      : SHADES[0];
  const lines = [
    `${" ".repeat(lw)} │${cols.map((c) => c.padStart(w)).join(" ")}`,
    ...values.map((r, i) =>
      `${rows[i].padEnd(lw)} │${r.map((v) => shade(v).repeat(w)).join(" ")}`
    ),
    `${" ".repeat(lw)}   scale: ${
      SHADES.slice(1).join("")
    } = (0, ¼], (¼, ½], (½, ¾], (¾, 1] × max ${fmt(max)}; blank = no effect`,
  ];
  return lines.join("\n");
}

function fmt(x: number, digits = 4): string {
  return x === 0
    ? "0"
    : Math.abs(x) < 1e-3
    ? x.toExponential(1)
    : x.toFixed(digits);
}

function pct(x: number): string {
  return `${(x * 100).toFixed(2)}%`;
}

/**
 * The summary `trace` prints: per-step accuracy and where the files are.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { traceSummary } from "./summary.ts";
 * const text = traceSummary({ trace: "r/trace.jsonl", rows: 10, examples: 2, exact: 0.5, tokenAcc: 0.75, seconds: 1,
 *   perSup: [{ sup: 0, exact: 0.5, token: 0.75 }] }, "r");
 * assert.match(text, /s0 +0\.5000 +0\.7500/);
 * assert.match(text, /next: .* sae fit --run-dir r$/);
 * ```
 */
export function traceSummary(s: TraceSummary, runDir: string): string {
  const lines = [
    `trace: ${s.examples} examples, ${
      s.rows.toLocaleString("en-US")
    } state rows, ${s.seconds.toFixed(1)} s -> ${s.trace}`,
    "",
    "  accuracy of the official readout after each supervision step",
    "  step   exact   token",
    ...s.perSup.map((p) =>
      `  s${String(p.sup).padEnd(4)} ${p.exact.toFixed(4)}  ${
        p.token.toFixed(4)
      }  ${bar(p.exact, 1, 20)}`
    ),
    `  at the halting step: exact ${s.exact.toFixed(4)}, token ${
      s.tokenAcc.toFixed(4)
    }`,
    "",
    s.shard
      ? `next, once all ${s.shard.count} shards are traced: ${invocation()} sae fit --run-dir ${runDir}`
      : `next: ${invocation()} sae fit --run-dir ${runDir}`,
  ];
  return lines.join("\n");
}

/**
 * The summary `sae fit` prints: the held-out metrics.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { saeSummary } from "./summary.ts";
 * const m = (value: number) => ({ value, formula: "" });
 * const text = saeSummary({
 *   config: { arch: "topk", d_in: 64, d_sae: 512, k: 16, latent: "z_H", training: { steps_taken: 10 } },
 *   split: { train_rows: 90, heldout_rows: 10, heldout_examples: 1 },
 *   metrics: { fvu: m(0.01), explained_variance: m(0.99), l0: m(16), dead_fraction: m(0.1), mean_cosine: m(0.99),
 *     dense_fraction_10pct: m(0) },
 *   task_accuracy_recovered: { value: null, reason: "model not at hand" },
 * } as never, "r");
 * assert.match(text, /FVU 0\.0100/);
 * assert.match(text, /task accuracy recovered: n\/a \(model not at hand\)/);
 * assert.match(text, /next: .* intervene --run-dir r --policy ablate_features$/);
 * ```
 */
export function saeSummary(m: SaeMetricsJson, runDir: string): string {
  const c = m.config, x = m.metrics, t = m.task_accuracy_recovered;
  const task = "reason" in t
    ? `n/a (${t.reason})`
    : `${t.value === null ? "n/a" : t.value.toFixed(4)} (token accuracy clean ${
      t.acc_clean.toFixed(4)
    }, with the SAE ${t.acc_sae.toFixed(4)}, zeroed ${
      t.acc_zero.toFixed(4)
    }; ${t.examples} held-out examples)`;
  return [
    `sae fit: ${c.arch} SAE, F=${c.d_sae}${
      c.k ? `, k=${c.k}` : ""
    } on ${c.latent}; ${
      m.split.train_rows.toLocaleString("en-US")
    } training rows, ${c.training.steps_taken} steps -> ${
      join(runDir, "sae.pt")
    }`,
    "",
    `  held-out (${
      m.split.heldout_rows.toLocaleString("en-US")
    } rows of ${m.split.heldout_examples} examples):`,
    `    FVU ${x.fvu.value.toFixed(4)} (explained variance ${
      x.explained_variance.value.toFixed(4)
    }), L0 ${x.l0.value.toFixed(2)}, mean cosine ${
      x.mean_cosine.value.toFixed(4)
    }`,
    `    dead features ${pct(x.dead_fraction.value)}, dense (>10% of rows) ${
      pct(x.dense_fraction_10pct.value)
    }`,
    `  task accuracy recovered: ${task}`,
    "",
    `next: ${invocation()} intervene --run-dir ${runDir} --policy ablate_features`,
  ].join("\n");
}

/**
 * The cumulative curve with its control: each point's effect beside the
 * median effect of random features of matched activation mass.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cumulativeLines } from "./summary.ts";
 * const control = { draws: [], median_effect: 0.2, median_kl: 0.5, median_exact_drop: 0.9 };
 * const text = cumulativeLines({ metric: "", half_effect_k: 2, points: [
 *   { k: 1, effect: 0.01, normalized_effect: 0, mean_kl: 0.1, exact_drop: 0.1, mass: 1, mass_fraction: 0.1, control },
 *   { k: 2, effect: 0.21, normalized_effect: 0, mean_kl: 0.6, exact_drop: 0.9, mass: 5, mass_fraction: 0.52, control },
 * ] }).join("\n");
 * assert.match(text, /2 +0\.2100 +0\.6000 +0\.9000 +52\.0% +0\.2000/);
 * assert.match(cumulativeLines({ metric: "", half_effect_k: 2, points: [
 *   { k: 1, effect: 0.01, normalized_effect: 0, mean_kl: 0.1, exact_drop: 0.1, mass: 1, mass_fraction: 0.1, control }] },
 *   1 / 1024).join("\n"), /one cell = 9\.8e-4/);
 * ```
 */
export function cumulativeLines(
  cum: Report["causal"]["cumulative"],
  cell?: number,
): string[] {
  if (!cum.points.length) return [];
  const all = cum.points[cum.points.length - 1];
  const max = Math.max(...cum.points.map((p) => p.effect), 1e-12);
  return [
    "",
    `  cumulative: the top k features ablated together (k = ${all.k}: every candidate)${
      cum.half_effect_k === null
        ? ""
        : `; half the all-feature effect at k = ${cum.half_effect_k}`
    }`,
    `  control: the median of ${all.control.draws.length} draws of random non-candidate features with the same activation mass${
      cell ? `; one cell = ${fmt(cell)}` : ""
    }`,
    "  k         effect    KL        exact drop  mass    control",
    ...cum.points.map((p) =>
      `  ${String(p.k).padEnd(9)} ${fmt(p.effect).padEnd(9)} ${
        fmt(p.mean_kl).padEnd(9)
      } ${fmt(p.exact_drop).padEnd(11)} ${
        `${(p.mass_fraction * 100).toFixed(1)}%`.padEnd(7)
      } ${fmt(p.control.median_effect).padEnd(9)} ${
        bar(Math.max(p.effect, 0), max, 16)
      }`
    ),
  ];
}

const SPARK = "▁▂▃▄▅▆▇█";

/**
 * What the ranked features mean: one line each with the answer it is most
 * selective for, its selectivity for given clues or blanks, and its mean
 * activation per supervision step as a sparkline.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { selectivityLines } from "./summary.ts";
 * const text = selectivityLines({ metric: "", groups: ["s0", "s1"], features: [{ feature: 812, rows: 10,
 *   active_fraction: 0.1, label: { token: 5, symbol: "4", precision: 0.951, recall: 0.993 },
 *   input: { given: { precision: 0.2, recall: 0.1 }, blank: { precision: 0.8, recall: 0.12 } },
 *   activation_per_sup: [0.5, 1] }] }, 8).join("\n");
 * assert.match(text, /f812: answer 4 \(precision 0\.95, recall 0\.99\); blank cells \(precision 0\.80, recall 0\.12\); fires on 10\.0% of rows; per step ▄█/);
 * ```
 */
export function selectivityLines(
  s: Report["causal"]["selectivity"],
  top: number,
): string[] {
  if (!s.features.length) return [];
  const spark = (xs: number[]) => {
    const max = Math.max(0, ...xs);
    return xs.map((x) =>
      max > 0 ? SPARK[Math.min(7, Math.floor((x / max) * 7.999))] : " "
    ).join("");
  };
  return [
    "",
    `  what the ranked features mean (their rows in the subsample; per step: mean activation ${
      s.groups[0] ?? ""
    }..${s.groups.at(-1) ?? ""})`,
    ...s.features.slice(0, top).map((f) => {
      const inp = f.input.blank.precision >= f.input.given.precision
        ? ["blank cells", f.input.blank] as const
        : ["given clues", f.input.given] as const;
      const answer = f.label
        ? `answer ${f.label.symbol} (precision ${
          f.label.precision.toFixed(2)
        }, recall ${f.label.recall.toFixed(2)})`
        : "never fires";
      return `  f${f.feature}: ${answer}; ${inp[0]} (precision ${
        inp[1].precision.toFixed(2)
      }, recall ${inp[1].recall.toFixed(2)}); fires on ${
        (f.active_fraction * 100).toFixed(1)
      }% of rows; per step ${spark(f.activation_per_sup)}`;
    }),
  ];
}

/**
 * Where the effects land: the locality profile of the policy and of the top
 * ranked features (mean drop in token accuracy per cell by relation to the
 * edited cells, with the number of cells, so one flipped cell's weight is
 * plain), or, without a grid, the positions where the policy hurt most.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { landingLines } from "./summary.ts";
 * const loc = (relation: string, cells: number, token_drop: number) => ({ relation, cells, token_drop, kl: 0, flipped: 0 });
 * const eff = { examples: 2, token_drop: [0.5, 0, 0, 0], kl: [0.1, 0, 0, 0], edited_examples: 2, edited_cells: 1,
 *   locality: [loc("same_cell", 2, 0.5), loc("same_row", 2, 0), loc("same_column", 2, 0), loc("elsewhere", 2, 0)] };
 * const text = landingLines({ metric: "", grid: { rows: 2, cols: 2 }, policy: eff,
 *   features: [{ feature: 3, ...eff }] } as never, 3).join("\n");
 * assert.match(text, /policy +1\.0 +0\.5000 \(2\) +0 \(2\) +0 \(2\) +- +0 \(2\)/);
 * assert.match(text, /f3 +1\.0 +0\.5000/);
 * assert.doesNotMatch(text, /--positions CELL/); // one cell edited already
 * const many = landingLines({ metric: "", grid: { rows: 2, cols: 2 }, policy: { ...eff, edited_cells: 3 },
 *   features: [] } as never, 3).join("\n");
 * assert.match(many, /changed 3\.0 cells a puzzle.*--positions CELL gives one cell's interaction locality/);
 * ```
 */
export function landingLines(l: Report["landing"], top: number): string[] {
  const rows = [
    ["policy", l.policy] as const,
    ...l.features.slice(0, top).map((f) => [`f${f.feature}`, f] as const),
  ];
  if (!l.grid) {
    const worst = l.policy.token_drop.map((d, s) => [d, s]).sort((a, b) =>
      b[0] - a[0] || a[1] - b[1]
    ).slice(0, 5).filter(([d]) => d > 0);
    return [
      "",
      "  where the policy's effect lands (model.json declares no grid: no locality profile)",
      `  positions with the largest drop in token accuracy: ${
        worst.length
          ? worst.map(([d, s]) => `${s} (${fmt(d)})`).join(", ")
          : "none"
      }`,
    ];
  }
  const rel = ["same_cell", "same_row", "same_column", "same_box", "elsewhere"];
  const cell = (e: typeof l.policy, r: string) => {
    const x = e.locality?.find((y) => y.relation === r);
    return (x ? `${fmt(x.token_drop)} (${x.cells})` : "-").padEnd(16);
  };
  return [
    "",
    `  where the effect lands: mean drop in token accuracy per cell, by relation to the cells whose state the edit changed`,
    `  (${l.grid.rows}x${l.grid.cols} grid; (n) = cells counted, one flipped cell moves its mean by 1/n)`,
    `  ${"edit".padEnd(8)} ${"edited".padEnd(7)} ${
      ["same cell", "same row", "same column", "same box", "elsewhere"].map((
        h,
      ) => h.padEnd(16)).join("")
    }`.trimEnd(),
    ...rows.map(([name, e]) =>
      `  ${name.padEnd(8)} ${e.edited_cells.toFixed(1).padEnd(7)} ${
        rel.map((r) => cell(e, r)).join("")
      }`.trimEnd()
    ),
    ...(l.policy.edited_cells > 1
      ? [
        `  (the policy changed ${
          l.policy.edited_cells.toFixed(1)
        } cells a puzzle, so most cells share a row or column with one; --positions CELL gives one cell's interaction locality)`,
      ]
      : []),
  ];
}

/**
 * Where the policy acted, in words: the concrete selector, how many steps it
 * names, and whether they are the SAE's fitted steps.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { editedStepsText } from "./summary.ts";
 * const p = { steps: "s0-7.h2.H", addresses: 8, steps_source: "fitted" as const, fitted_steps: "s0-7.h2.H", outside_fitted: 0 };
 * assert.equal(editedStepsText(p), "s0-7.h2.H (8 steps: the SAE's fitted steps)");
 * assert.equal(editedStepsText({ ...p, steps: "s0-7.h0-2.H", addresses: 24, steps_source: "requested", outside_fitted: 16 }),
 *   "s0-7.h0-2.H (24 steps, 16 of them outside the SAE's fitted steps s0-7.h2.H)");
 * ```
 */
export function editedStepsText(
  p: Pick<
    Report["policy"],
    "steps" | "addresses" | "steps_source" | "fitted_steps" | "outside_fitted"
  >,
): string {
  const n = `${p.addresses} step${p.addresses === 1 ? "" : "s"}`;
  return p.outside_fitted > 0
    ? `${p.steps} (${n}, ${p.outside_fitted} of them outside the SAE's fitted steps ${p.fitted_steps})`
    : p.steps_source === "fitted"
    ? `${p.steps} (${n}: the SAE's fitted steps)`
    : `${p.steps} (${n}, within the SAE's fitted steps)`;
}

/**
 * Where the causal ranking came from, when this run reused another report's.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reusedNote } from "./summary.ts";
 * assert.deepEqual(reusedNote({ provenance: { causal_from: null } }, "r"), []);
 * assert.match(reusedNote({ provenance: { causal_from: "report.json" } }, "r")[0],
 *   /reused from r\/report\.json .*not recomputed/);
 * ```
 */
export function reusedNote(
  r: { provenance?: { causal_from?: string | null } },
  runDir: string,
): string[] {
  const from = r.provenance?.causal_from;
  return from === null || from === undefined ? [] : [
    `  the ranking, its references, the tomography and where each feature lands are reused from ${
      join(runDir, from)
    } (same trace, SAE, model, seed, steps, candidates and subsample; not recomputed)`,
  ];
}

/**
 * The line that lists the reports of a run dir, each with its policy.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reportsLine } from "./summary.ts";
 * const r = (name: string) => ({ policy: { name } });
 * assert.equal(reportsLine([{ path: "report.json", report: r("ablate_features") }, { path: "interventions/c/report.json", report: r("clamp_features") }]),
 *   "reports in this run dir: report.json (ablate_features), interventions/c/report.json (clamp_features)");
 * ```
 */
export function reportsLine(
  found: readonly { path: string; report: { policy: { name: string } } }[],
): string {
  return `reports in this run dir: ${
    found.map((f) => `${f.path} (${f.report.policy.name})`).join(", ")
  }`;
}

/** Shades of {@linkcode cellHeatmap}: upper bounds on the fraction of all cells, fixed. */
const CELL_SCALE = [0.01, 0.1, 0.5, Infinity];

/**
 * A heat map of token-accuracy drops on an absolute scale: each value is a
 * fraction of `cells` output cells (examples × positions), shaded by fixed
 * decades of that fraction, never by the map's own maximum, so a single
 * flipped cell stays faint. The legend names the shades, the size of one
 * cell and the largest value in cells.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cellHeatmap } from "./summary.ts";
 * // 1,024 cells; one cell = 0.000977. f3 flips one cell at s1, f9 three quarters of them at s0.
 * const text = cellHeatmap([[0, 1 / 1024], [0.75, 0]], ["f3", "f9"], ["s0", "s1"], 1024);
 * assert.match(text, /f3 +│ +░░/);
 * assert.match(text, /f9 +│██ +$/m);
 * assert.match(text, /one cell = 1\/1,024 = 0\.000977/);
 * assert.match(text, /largest 768 cells/);
 * ```
 */
export function cellHeatmap(
  values: number[][],
  rows: string[],
  cols: string[],
  cells: number,
): string {
  const w = Math.max(2, ...cols.map((c) => c.length));
  const lw = Math.max(...rows.map((r) => r.length));
  const shade = (v: number) =>
    v > 0 ? SHADES[1 + CELL_SCALE.findIndex((t) => v <= t)] : SHADES[0];
  const max = Math.max(0, ...values.flat());
  const n = (x: number) => x.toLocaleString("en-US");
  return [
    `${" ".repeat(lw)} │${cols.map((c) => c.padStart(w)).join(" ")}`,
    ...values.map((r, i) =>
      `${rows[i].padEnd(lw)} │${r.map((v) => shade(v).repeat(w)).join(" ")}`
    ),
    `${" ".repeat(lw)}   absolute scale, share of the ${
      n(cells)
    } cells: ░ ≤ 1%, ▒ ≤ 10%, ▓ ≤ 50%, █ > 50%; blank = no drop`,
    `${" ".repeat(lw)}   one cell = 1/${n(cells)} = ${
      (1 / cells).toPrecision(3)
    }; largest ${n(Math.round(max * cells))} cell${
      Math.round(max * cells) === 1 ? "" : "s"
    } (${fmt(max)})`,
  ].join("\n");
}

/**
 * What the top of the ranking rests on: the resolution of its metric (one
 * cell = 1/(examples × positions), one puzzle = 1/examples) and, when
 * features tie at the top, how many, at how many cells, and the tie-break
 * that ordered them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rankingTieNote } from "./summary.ts";
 * const f = (feature: number, effect: number, mean_kl: number) =>
 *   ({ feature, effect, mean_kl, exact_drop: 0, normalized_effect: 0, mean_activation: 1 });
 * const causal = { rank_by: "token" as const, subsample: { examples: 64 },
 *   ranking: [f(102, 1 / 1024, 0.003), f(7, 1 / 1024, 0.002), f(5, 1 / 1024, 0.001), f(9, 0, 0.01)] };
 * const [res, tie] = rankingTieNote(causal, 16);
 * assert.match(res, /one cell = 1\/\(64 examples × 16 positions\) = 0\.000977/);
 * assert.match(tie, /the top 3 features \(102, 7, 5\) tie at 1 cell/);
 * assert.match(tie, /KL breaks the tie/);
 * assert.equal(rankingTieNote({ ...causal, ranking: causal.ranking.slice(2) }, 16).length, 1);
 * ```
 */
export function rankingTieNote(
  causal: {
    rank_by: Report["causal"]["rank_by"];
    subsample: { examples: number };
    ranking: readonly {
      feature: number;
      effect: number;
      exact_drop: number;
    }[];
  },
  positions: number,
): string[] {
  const examples = causal.subsample.examples;
  const cells = examples * positions;
  const top = causal.ranking[0];
  const lines = [
    `  resolution: one cell = 1/(${examples} examples × ${positions} positions) = ${
      (1 / cells).toPrecision(3)
    } of token accuracy; one puzzle = 1/${examples} = ${
      (1 / examples).toPrecision(3)
    } of exact accuracy`,
  ];
  if (!top || causal.rank_by === "kl") return lines;
  const byExact = causal.rank_by === "exact";
  const unit = byExact ? examples : cells;
  const count = (f: { effect: number; exact_drop: number }) =>
    Math.round((byExact ? f.exact_drop : f.effect) * unit);
  const tied = causal.ranking.filter((f) => count(f) === count(top));
  if (tied.length < 2) return lines;
  const k = count(top);
  const what = byExact
    ? `puzzle${k === 1 ? "" : "s"}`
    : `cell${k === 1 ? "" : "s"}`;
  const ids = tied.slice(0, 8).map((f) => f.feature).join(", ") +
    (tied.length > 8 ? ", …" : "");
  lines.push(
    `  tie: the top ${tied.length} features (${ids}) tie at ${k} ${what} of ${
      unit.toLocaleString("en-US")
    }; ${
      byExact ? "the token drop, then KL," : "KL"
    } breaks the tie, then the lower index: their order is not a finding`,
  );
  return lines;
}

/**
 * The summary `intervene` prints: the effect of the policy, per-step
 * accuracy as bars, the top causal features against the random reference,
 * the cumulative ablation curve, and the tomography as a heat map.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { interveneSummary } from "./summary.ts";
 * const side = (e: number) => ({ exact_acc: e, token_acc: e, mean_halt_step: 1, acc_per_sup: [{ sup: 0, exact: e, token: e }] });
 * const text = interveneSummary({
 *   policy: { name: "ablate_features", latent: "z_H", steps: "s0.h0.H", addresses: 1, steps_source: "fitted",
 *     fitted_steps: "s0.h0.H", outside_fitted: 0, positions: [0], params: { features: [3] } },
 *   comparison: { examples: 2, baseline: side(1), intervened: side(0.5),
 *     delta: { exact_acc: -0.5, token_acc: -0.5, mean_halt_step: 0, mean_kl: 0.1, flipped_fraction: 0.25 }, per_example: [] },
 *   causal: { subsample: { examples: 2 }, ranking: [{ feature: 3, effect: 0.5, normalized_effect: 0.5, mean_kl: 0.1,
 *     exact_drop: 0.5, mean_activation: 1 }], random_features: { features: [1], median_effect: 0, median_kl: 0 },
 *     rank_by: "token", cumulative: { metric: "", half_effect_k: 1, points: [
 *       { k: 1, effect: 0.5, normalized_effect: 0.5, mean_kl: 0.1, exact_drop: 0.5, mass: 1, mass_fraction: 0.5,
 *         control: { draws: [], median_effect: 0, median_kl: 0, median_exact_drop: 0 } }] },
 *     selectivity: { metric: "", groups: [], features: [] } },
 *   landing: { metric: "", grid: null, policy: { examples: 2, token_drop: [0.5], kl: [0.1], edited_examples: 2,
 *     edited_cells: 1, locality: null }, features: [] },
 *   tomography: { groups: ["s0"], features: [3], effect: [[0.5]] },
 * } as never, "r");
 * assert.match(text, /token accuracy 1\.0000 -> 0\.5000/);
 * assert.match(text, /3 +0\.5000/);
 * assert.match(text, /f3 +│█/);
 * assert.match(text, /half the all-feature effect at k = 1/);
 * ```
 */
export function interveneSummary(
  r: Report,
  runDir: string,
  positions?: number,
  reportRel = "report.json",
): string {
  const c = r.comparison, d = c.delta;
  const params = Object.entries(r.policy.params).map(([k, v]) =>
    `${k} ${Array.isArray(v) ? v.join(",") : v}`
  ).join(", ");
  const lines = [
    `intervene: ${r.policy.name} (${params}) on ${r.policy.latent} at ${
      editedStepsText(r.policy)
    }, ${c.examples} examples -> ${join(runDir, reportRel)}`,
    "",
    `  token accuracy ${c.baseline.token_acc.toFixed(4)} -> ${
      c.intervened.token_acc.toFixed(4)
    }, exact ${c.baseline.exact_acc.toFixed(4)} -> ${
      c.intervened.exact_acc.toFixed(4)
    }, mean KL ${fmt(d.mean_kl)}, flipped ${pct(d.flipped_fraction)}`,
    "",
    "  exact accuracy per supervision step (baseline ▕ intervened)",
    ...c.baseline.acc_per_sup.map((b, i) => {
      const n = c.intervened.acc_per_sup[i]?.exact ?? 0;
      return `  s${String(b.sup).padEnd(3)} ${b.exact.toFixed(3)} ${
        bar(b.exact, 1, 16).padEnd(16)
      }▕ ${n.toFixed(3)} ${bar(n, 1, 16)}`;
    }),
  ];
  const causal = r.causal;
  if (causal.ranking.length) {
    const rf = causal.random_features;
    lines.push(
      "",
      ...reusedNote(r, runDir),
      `  top causal features: each ablated alone on ${causal.subsample.examples} examples`,
      `  (effect = drop in token accuracy; reference: the median of ${rf.features.length} random features ablated alone, effect ${
        fmt(rf.median_effect)
      }, KL ${fmt(rf.median_kl)})`,
      `  ranked by ${causal.rank_by}`,
      "  feature   effect    KL        exact drop",
      ...causal.ranking.slice(0, 8).map((f) =>
        `  ${String(f.feature).padEnd(9)} ${fmt(f.effect).padEnd(9)} ${
          fmt(f.mean_kl).padEnd(9)
        } ${fmt(f.exact_drop)}`
      ),
      ...(positions ? rankingTieNote(causal, positions) : []),
    );
    const S = r.landing?.policy.token_drop.length ?? 0;
    lines.push(
      ...cumulativeLines(
        causal.cumulative,
        S ? 1 / (causal.subsample.examples * S) : undefined,
      ),
    );
    lines.push(...selectivityLines(causal.selectivity, 8));
    lines.push(...landingLines(r.landing, 3));
  }
  const tomo = r.tomography;
  if (tomo.features.length && tomo.groups.length) {
    const byFeature = tomo.features.map((_, j) =>
      tomo.groups.map((_, g) => tomo.effect[g][j])
    );
    lines.push(
      "",
      "  tomography: drop in token accuracy when a feature is ablated at one supervision step only",
      (positions
        ? cellHeatmap(
          byFeature,
          tomo.features.map((f) => `f${f}`),
          tomo.groups,
          causal.subsample.examples * positions,
        )
        : heatmap(byFeature, tomo.features.map((f) => `f${f}`), tomo.groups))
        .split("\n").map((l) => `  ${l}`).join("\n"),
    );
  }
  const top = causal.ranking[0]?.feature;
  lines.push(
    "",
    `next: open ${join(runDir, reportRel)}${
      top === undefined
        ? ""
        : `, or steer feature ${top}: ${invocation()} intervene --run-dir ${runDir} --policy clamp_features${
          steerArgs(r, top)
        } --scale 2 --name clamp-f${top}`
    }`,
  );
  return lines.join("\n");
}

/** The flags a ranking depends on, as this run gave them. */
const RANKING_FLAGS = [
  "--steps",
  "--positions",
  "--examples",
  "--candidates",
  "--random-features",
  "--control-draws",
  "--rank",
  "--rank-by",
  "--seed",
  "--backend",
];

/**
 * The flags of the suggested clamp: this run's ranking flags, so the clamp
 * reuses its ranking (spec §5.5) and edits its top feature, which is `top`;
 * with named `--features`, that feature alone.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { steerArgs } from "./summary.ts";
 * const r = (command: string[], source: string) => ({ provenance: { command }, causal: { candidates: { source } } });
 * assert.equal(steerArgs(r(["intervene", "--policy", "ablate_features", "--examples", "32", "--seed", "0"], "most_active"), 7),
 *   " --examples 32 --seed 0");
 * assert.equal(steerArgs(r(["intervene", "--features", "3,7", "--examples=8"], "features"), 7), " --examples=8 --features 7");
 * ```
 */
export function steerArgs(
  r: {
    provenance?: { command?: readonly string[] };
    causal: { candidates?: { source: string } };
  },
  top: number,
): string {
  const out: string[] = [];
  const cmd = r.provenance?.command ?? [];
  for (let i = 0; i < cmd.length; i++) {
    const [flag] = cmd[i].split("=");
    if (!RANKING_FLAGS.includes(flag)) continue;
    if (cmd[i].includes("=")) out.push(cmd[i]);
    else if (i + 1 < cmd.length) out.push(cmd[i], cmd[++i]);
  }
  if (r.causal.candidates?.source === "features") {
    out.push("--features", `${top}`);
  }
  return out.map((a) => ` ${/^[\w.,=/*-]+$/.test(a) ? a : `'${a}'`}`).join("");
}
