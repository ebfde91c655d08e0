/**
 * The planted-dictionary table: MMCS of `fitSAE` with default flags (only
 * the architecture and the seed given) on issue 24's heavy-tailed shapes,
 * for every architecture, at E‖x‖² = 0.01·D, 1·D and 100·D. tests/sae_scale_test.ts
 * asserts the two ends; this prints all three.
 *
 * Run: `deno run --allow-read bench/sae_planted.ts [--arch A] [--shape 0|1]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fitSAE } from "../lib/sae/train/trainer.ts";
import { ARCHITECTURES, type SAEArch } from "../lib/sae/arch/mod.ts";
import { mmcs, planted, type PlantedShape } from "../tests/planted.ts";

const SHAPES: PlantedShape[] = [
  { dim: 48, atoms: 192, active: 3, rows: 16_384 },
  { dim: 128, atoms: 512, active: 5, rows: 16_384 },
];
const SCALES = [0.01, 1, 100];

const { values } = parseArgs({
  options: { arch: { type: "string" }, shape: { type: "string" } },
});
const archs = values.arch
  ? [values.arch as SAEArch]
  : Object.keys(ARCHITECTURES) as SAEArch[];
const shapes = values.shape ? [SHAPES[Number(values.shape)]] : SHAPES;

console.log(
  `| arch | shape | ${SCALES.map((s) => `MMCS at ${s}·D`).join(" | ")} |`,
);
console.log(`| --- | --- | ${SCALES.map(() => "---").join(" | ")} |`);
for (const shape of shapes) {
  for (const arch of archs) {
    const cells = SCALES.map((scale) => {
      const { atoms, source } = planted(shape, scale);
      const fit = fitSAE(source, { arch, seed: 0 });
      return mmcs(atoms, fit.sae.W_dec, shape.dim).toFixed(4);
    });
    console.log(
      `| ${arch} | D=${shape.dim}, ${shape.atoms} atoms, ${shape.active} active | ${
        cells.join(" | ")
      } |`,
    );
  }
}
