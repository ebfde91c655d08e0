/**
 * Explain one SAE feature by where it fires: the steps and cells where its
 * mean activation is highest, and a grid of the cells at its peak step.
 * A study script on the library (TraceDataset, SAE), not a fourth command.
 *
 *     deno run --allow-read examples/explain_feature.ts --run-dir runs/study [--feature N]
 *
 * Without --feature it explains the top-ranked feature of the run's report.json.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join, resolve } from "node:path";
import { SAE, TraceDataset } from "../mod.ts";

/** Where a feature fires: mean activation per (step address, position). */
export interface FeatureProfile {
  /** The feature. */
  feature: number;
  /** Rows of the SAE's latent read. */
  rows: number;
  /** Fraction of those rows where the feature fires. */
  density: number;
  /** `[address, position, mean activation, firing fraction]`, highest mean first. */
  top: [string, number, number, number][];
  /** For each top cell: the most common target token when the feature fires there, and its share. */
  answers: [number, number][];
  /** Mean activation per position at the address with the highest total. */
  peak: { address: string; byPosition: Float64Array };
}

/**
 * Profile `feature` of `sae` over the rows of `ds` (the SAE's latent).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { profileFeature } from "./explain_feature.ts";
 * import { runTrace, SAE, TraceDataset } from "../mod.ts";
 * const demo = new URL("../references/models/sudoku4-trm", import.meta.url).pathname;
 * const dir = await Deno.makeTempDir();
 * try {
 *   await runTrace({ runDir: dir, model: demo, inputs: `${demo}/test.jsonl`, seed: 0, limit: 4, latents: ["z_H"] });
 *   const ds = await TraceDataset.load(dir, { latents: ["z_H"] });
 *   // Feature 0 reads dimension 0 of z_H; it fires wherever that is positive.
 *   const sae = new SAE({ arch: "relu", d_in: 64, d_sae: 2 });
 *   sae.W_enc[0] = 1;
 *   const p = profileFeature(ds, sae, 0, 3);
 *   assert.equal(p.rows, 4 * 16 * 16);
 *   assert.equal(p.top.length, 3);
 *   assert.ok(p.top[0][2] >= p.top[1][2]);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export function profileFeature(
  ds: TraceDataset,
  sae: SAE,
  feature: number,
  topN = 10,
): FeatureProfile {
  const [N, D] = ds.shape, F = sae.cfg.d_sae;
  const sum = new Map<string, { s: number; fired: number; n: number }>();
  const P = ds.header.model.puzzle_emb_len;
  const labels = new Map(ds.meta.outcomes.map((o) => [o.example, o.label]));
  const answerCounts = new Map<string, Map<number, number>>();
  let fired = 0;
  const chunk = 2048;
  for (let start = 0; start < N; start += chunk) {
    const n = Math.min(chunk, N - start);
    const a = sae.encode(ds.states.subarray(start * D, (start + n) * D));
    for (let r = 0; r < n; r++) {
      const v = a[r * F + feature];
      const info = ds.row(start + r);
      const key = `${info.address}|${info.position}`;
      const slot = sum.get(key) ?? { s: 0, fired: 0, n: 0 };
      slot.s += v;
      slot.n++;
      if (v > 0) {
        slot.fired++;
        fired++;
        const label = labels.get(info.example)?.[info.position - P];
        if (label !== undefined) {
          const counts = answerCounts.get(key) ?? new Map<number, number>();
          counts.set(label, (counts.get(label) ?? 0) + 1);
          answerCounts.set(key, counts);
        }
      }
      sum.set(key, slot);
    }
  }
  const cells = [...sum].map(([key, v]) => {
    const [address, pos] = key.split("|");
    return [address, Number(pos), v.s / v.n, v.fired / v.n] as [
      string,
      number,
      number,
      number,
    ];
  });
  cells.sort((x, y) => y[2] - x[2] || x[1] - y[1]);
  const byAddress = new Map<string, number>();
  for (const [address, , mean] of cells) {
    byAddress.set(address, (byAddress.get(address) ?? 0) + mean);
  }
  const peakAddress = [...byAddress].sort((x, y) => y[1] - x[1])[0]?.[0] ?? "";
  const T = P + ds.header.model.seq_len;
  const byPosition = new Float64Array(T);
  for (const [address, pos, mean] of cells) {
    if (address === peakAddress) byPosition[pos] = mean;
  }
  return {
    feature,
    rows: N,
    density: N ? fired / N : 0,
    top: cells.slice(0, topN),
    answers: cells.slice(0, topN).map(([address, pos]) => {
      const counts = [...(answerCounts.get(`${address}|${pos}`) ?? [])];
      const total = counts.reduce((t, [, c]) => t + c, 0);
      const best = counts.sort((x, y) => y[1] - x[1] || x[0] - y[0])[0];
      return best ? [best[0], best[1] / total] : [-1, 0];
    }),
    peak: { address: peakAddress, byPosition },
  };
}

/** A cell's name: `r3c5` on a square grid of puzzle cells, else `pos N`. */
function cellName(pos: number, P: number, S: number): string {
  const side = Math.round(Math.sqrt(S));
  if (pos < P) return `prefix ${pos}`;
  const c = pos - P;
  return side * side === S
    ? `r${Math.floor(c / side) + 1}c${(c % side) + 1}`
    : `pos ${pos}`;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "run-dir": { type: "string" },
      feature: { type: "string" },
      top: { type: "string" },
    },
  });
  const runDir = values["run-dir"];
  if (!runDir) {
    console.error(
      "usage: explain_feature.ts --run-dir DIR [--feature N] [--top N]",
    );
    Deno.exit(2);
  }
  let feature = values.feature === undefined ? NaN : Number(values.feature);
  if (Number.isNaN(feature)) {
    const report = JSON.parse(
      await Deno.readTextFile(join(runDir, "report.json")),
    );
    feature = report.causal.ranking[0].feature;
  }
  const sae = await SAE.load(runDir);
  // The SAE reads the latent it was fitted on, recorded in sae_metrics.json.
  const latent = JSON.parse(
    await Deno.readTextFile(join(runDir, "sae_metrics.json")),
  ).config.latent;
  const ds = await TraceDataset.load(runDir, { latents: [latent] });
  const p = profileFeature(ds, sae, feature, Number(values.top ?? 10));
  const P = ds.header.model.puzzle_emb_len, S = ds.header.model.seq_len;
  console.log(
    `feature ${feature} on ${latent}: fires on ${
      (p.density * 100).toFixed(2)
    }% of ${p.rows} rows`,
  );
  // The header records the model's path relative to the run dir.
  const tokens = JSON.parse(
    await Deno.readTextFile(
      join(resolve(runDir, ds.header.model.path), "model.json"),
    ),
  ).tokens as { symbols: string[]; symbol_offset: number };
  const symbol = (t: number) =>
    tokens.symbols[t - tokens.symbol_offset] ?? `token ${t}`;
  console.log(
    "  highest mean activation (step, cell, mean, fires on, answer there when it fires):",
  );
  p.top.forEach(([address, pos, mean, frac], i) => {
    const [answer, share] = p.answers[i];
    console.log(
      `    ${address.padEnd(10)} ${cellName(pos, P, S).padEnd(9)} ${
        mean.toFixed(3).padStart(7)
      }  ${(frac * 100).toFixed(0).padStart(3)}%   ${
        answer < 0 ? "-" : `${symbol(answer)} (${(share * 100).toFixed(0)}%)`
      }`,
    );
  });
  const side = Math.round(Math.sqrt(S));
  if (side * side === S) {
    const cells = p.peak.byPosition.subarray(P);
    const max = Math.max(...cells);
    const shade = (v: number) =>
      max > 0 && v > 0 ? " ░▒▓█"[Math.max(1, Math.ceil((v / max) * 4))] : "·";
    console.log(
      `  mean activation per cell at ${p.peak.address} (█ = ${
        max.toFixed(3)
      }):`,
    );
    for (let r = 0; r < side; r++) {
      console.log(
        "    " +
          Array.from(cells.subarray(r * side, (r + 1) * side), shade).join(" "),
      );
    }
  }
}
