import assert from "node:assert/strict";
import { fitSAE } from "../lib/sae/train/trainer.ts";
import { ARCHITECTURES, type SAEArch } from "../lib/sae/arch/mod.ts";
import { mmcs, planted, type PlantedShape } from "./planted.ts";

// Planted dictionaries (tests/planted.ts): rows are positive mixes of a few
// unit atoms; the data's random stream is not the SAE's. Every fit uses the
// default flags: only the architecture and the seed are given.
const ARCHS = Object.keys(ARCHITECTURES) as SAEArch[];

/** Fit with the defaults at each scale; return the MMCS of each. */
function recover(
  arch: SAEArch,
  shape: PlantedShape,
  magnitudes: "pareto" | "halfnormal",
  scales: number[],
): number[] {
  return scales.map((scale) => {
    const { atoms, source } = planted(shape, scale, { magnitudes });
    const fit = fitSAE(source, { arch, seed: 0 });
    const m = mmcs(atoms, fit.sae.W_dec, shape.dim);
    console.log(
      `  ${arch} D=${shape.dim} ${shape.atoms} atoms ${shape.active} active (${magnitudes}), E‖x‖²=${scale}·D: MMCS ${
        m.toFixed(4)
      } (input scale ${fit.scaling_factor.toPrecision(4)})`,
    );
    return m;
  });
}

// The first shape: moderate magnitudes 0.5 + |N(0, 1)|.
const MODERATE: PlantedShape = { dim: 48, atoms: 96, active: 3, rows: 16_384 };

for (const arch of ARCHS) {
  Deno.test(`sae defaults hold at any data scale: ${arch} recovers a planted dictionary at E‖x‖² = 0.1·D and 10·D`, () => {
    const seen = recover(arch, MODERATE, "halfnormal", [0.1, 10]);
    for (const m of seen) assert.ok(m >= 0.9, `${arch}: MMCS ${seen}`);
    // The normalization makes training scale-free: both ends learn alike.
    assert.ok(Math.abs(seen[0] - seen[1]) < 0.01, `${seen}`);
  });
}

// Issue 24's shapes: heavy-tailed non-negative magnitudes, Pareto(α = 2.5).
const HEAVY: PlantedShape[] = [
  { dim: 48, atoms: 192, active: 3, rows: 16_384 },
  { dim: 128, atoms: 512, active: 5, rows: 16_384 },
];

for (const shape of HEAVY) {
  Deno.test(`sae defaults recover a heavy-tailed dictionary: topk, D=${shape.dim}, ${shape.atoms} atoms, ${shape.active} active, at E‖x‖² = 0.01·D and 100·D`, () => {
    const seen = recover("topk", shape, "pareto", [0.01, 100]);
    for (const m of seen) assert.ok(m >= 0.9, `topk: MMCS ${seen}`);
    assert.ok(Math.abs(seen[0] - seen[1]) < 0.01, `${seen}`);
  });
}

// ReLU does not reach 0.9 on these shapes with its defaults (0.89 and 0.84 at
// 1·D, v0-spec §4.1; issue 24 item 2 stays open for it): this guards what
// the defaults reach today, one scale per shape, and says so in its name.
const RELU_FLOOR = [0.87, 0.82];
HEAVY.forEach((shape, i) => {
  const scale = i === 0 ? 0.01 : 100;
  Deno.test(
    `relu defaults on a heavy-tailed dictionary, D=${shape.dim}: MMCS >= ${
      RELU_FLOOR[i]
    } at E‖x‖² = ${scale}·D (short of the 0.9 target)`,
    () => {
      const [m] = recover("relu", shape, "pareto", [scale]);
      assert.ok(m >= RELU_FLOOR[i], `relu: MMCS ${m}`);
    },
  );
});
