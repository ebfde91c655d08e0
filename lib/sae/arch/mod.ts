/**
 * The SAE architectures by name.
 *
 * @module
 */
import { OptionError } from "../../errors.ts";
import type { SAEArch, SaeArchitecture } from "./architecture.ts";
import { BATCHTOPK } from "./batchtopk.ts";
import { RELU } from "./relu.ts";
import { TOPK } from "./topk.ts";

export type {
  ArchOptions,
  ArchTrainer,
  DeadLatents,
  ExtraTensor,
  LatentKernels,
  SAEArch,
  SaeArchitecture,
  SAEConfig,
  TrainSetup,
} from "./architecture.ts";
export { selectTopK } from "./select.ts";

/**
 * Every architecture, by `cfg.arch` name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ARCHITECTURES } from "./mod.ts";
 * import { SaeArchSchema } from "../../schema/sae.ts";
 * assert.deepEqual(Object.keys(ARCHITECTURES).sort(), [...SaeArchSchema.options].sort());
 * ```
 */
export const ARCHITECTURES: Readonly<Record<SAEArch, SaeArchitecture>> = {
  topk: TOPK,
  relu: RELU,
  batchtopk: BATCHTOPK,
};

/**
 * The architecture called `name`; an {@linkcode OptionError} on `arch` for
 * an unknown name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { architecture } from "./mod.ts";
 * assert.equal(architecture("relu").saelensName, "standard");
 * assert.throws(() => architecture("jumprelu"), /unknown architecture "jumprelu"; use topk or relu or batchtopk/);
 * ```
 */
export function architecture(name: string): SaeArchitecture {
  const a = (ARCHITECTURES as Record<string, SaeArchitecture>)[name];
  if (!a || !Object.hasOwn(ARCHITECTURES, name)) {
    throw new OptionError(
      "arch",
      `{arch}: unknown architecture ${JSON.stringify(name)}; use ${
        Object.keys(ARCHITECTURES).join(" or ")
      }`,
    );
  }
  return a;
}
