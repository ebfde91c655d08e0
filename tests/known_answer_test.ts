// Known answer: a hand-built bundle (references/python/make_known_answer.py) in which one
// planted direction u decides output cell 5. The SAE must learn a feature aligned with u,
// and intervene's causal ranking must put that feature first, with a real effect, while
// random features do nothing.
import assert from "node:assert/strict";
import { join } from "node:path";
import { SAE } from "../lib/sae/sae.ts";
import { cli, FIXTURES, npy, type Proc } from "./helpers.ts";

const KA = join(FIXTURES, "known_answer");
const CELL = 5;

interface Ranked {
  feature: number;
  effect: number;
  mean_kl: number;
}
interface KnownReport {
  comparison: {
    examples: number;
    baseline: { token_acc: number; exact_acc: number };
    delta: { token_acc: number; exact_acc: number; flipped_fraction: number };
  };
  causal: {
    candidates: { source: string; features: number[] };
    ranking: Ranked[];
    random_features: {
      features: number[];
      effects: number[];
      median_effect: number;
    };
  };
  policy: { params: unknown };
}

function ok(p: Proc, what: string): void {
  assert.equal(p.code, 0, `${what} failed (${p.code}):\n${p.stderr}`);
}

Deno.test("known answer: the SAE feature aligned with the planted direction ranks first", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "trminterp_known_answer_" });
  try {
    const run = join(tmp, "run");
    ok(
      await cli([
        "trace",
        "--run-dir",
        run,
        "--model",
        KA,
        "--inputs",
        join(KA, "puzzles.jsonl"),
        "--latents",
        "z_H",
      ]),
      "trace",
    );
    // A ReLU SAE: its L1 penalty prefers one feature per direction. (TopK has no
    // pressure below k active features, and on this data it often spreads u over
    // several features that each have |cos| ~0.6-0.8 with u.)
    ok(
      await cli([
        "sae",
        "fit",
        "--run-dir",
        run,
        "--arch",
        "relu",
        "--l1",
        "0.3",
        "--features",
        "32",
        "--train-steps",
        "2000",
      ]),
      "sae fit",
    );

    // The decoder row best aligned with +u.
    const u = npy(join(KA, "u.npy")).data as Float32Array;
    const sae = await SAE.load(run);
    const D = sae.cfg.d_in, F = sae.cfg.d_sae;
    assert.equal(D, u.length);
    let uFeature = -1, best = -Infinity;
    for (let f = 0; f < F; f++) {
      let dot = 0, nn = 0;
      for (let d = 0; d < D; d++) {
        const w = sae.W_dec[f * D + d];
        dot += w * u[d];
        nn += w * w;
      }
      const cos = dot / Math.sqrt(nn);
      if (cos > best) [best, uFeature] = [cos, f];
    }

    ok(
      await cli(["intervene", "--run-dir", run, "--policy", "ablate_features"]),
      "intervene",
    );
    const report: KnownReport = JSON.parse(
      await Deno.readTextFile(join(run, "report.json")),
    );
    const { causal, comparison } = report;
    const top = causal.ranking[0];
    // The answer key: the puzzles whose cell 5 is decided by +u.
    const labels = (await Deno.readTextFile(join(KA, "puzzles.jsonl")))
      .trim().split("\n").map((l) => JSON.parse(l).label as number[]);
    const onFraction = labels.filter((l) => l[CELL] === 3).length /
      labels.length;
    const S = labels[0].length;
    console.log(
      `known answer: cos(W_dec[${uFeature}], u) = ${best.toFixed(4)}; ` +
        `ranking[0] = feature ${top.feature} (effect ${top.effect}, next ${
          causal.ranking[1]?.effect
        }); random median ${causal.random_features.median_effect}; ` +
        `full-set token_acc delta ${comparison.delta.token_acc} ` +
        `(flipping cell ${CELL} of every +u puzzle: ${
          (-onFraction / S).toFixed(5)
        })`,
    );

    assert.ok(best >= 0.9, `no SAE feature aligned with u: best cos ${best}`);
    assert.equal(comparison.baseline.token_acc, 1, "the clean model is exact");
    assert.ok(
      causal.candidates.features.includes(uFeature),
      `u-feature ${uFeature} is not among the candidates ${causal.candidates.features}`,
    );
    assert.equal(
      top.feature,
      uFeature,
      `ranking[0] is feature ${top.feature}, not the u-feature ${uFeature}: ${
        JSON.stringify(causal.ranking.slice(0, 3))
      }`,
    );
    // Its effect is about that of flipping cell 5 in every +u puzzle of the subsample
    // (about onFraction/S; the subsample's own +u fraction varies around onFraction).
    assert.ok(
      top.effect >= 0.5 * onFraction / S,
      `u-feature effect ${top.effect} < ${0.5 * onFraction / S}`,
    );
    // No other feature comes close, and random features do nothing.
    assert.ok(
      (causal.ranking[1]?.effect ?? 0) <= 0.25 * top.effect,
      `runner-up effect ${causal.ranking[1]?.effect} vs ${top.effect}`,
    );
    assert.ok(
      Math.abs(causal.random_features.median_effect) <= 1e-3,
      `random median ${causal.random_features.median_effect}`,
    );
    // The policy (the top feature, over every example) flips cell 5 of (nearly) every
    // +u puzzle and nothing else.
    assert.ok(
      comparison.delta.exact_acc <= -0.8 * onFraction,
      `exact drop ${comparison.delta.exact_acc} vs +u fraction ${onFraction}`,
    );
    assert.ok(
      comparison.delta.flipped_fraction <= onFraction / S + 1e-6,
      `flipped ${comparison.delta.flipped_fraction} > ${onFraction / S}`,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
