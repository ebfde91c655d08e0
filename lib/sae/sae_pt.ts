/**
 * The SAE file formats: `sae.pt` (a real `torch.save` archive) and the
 * SAELens v6 folder layout (`cfg.json` + `sae_weights.safetensors`). This
 * module reads files into tensors and a cfg; {@linkcode SAE} (sae.ts) builds
 * an SAE from them, so sae.ts imports this module and never the reverse.
 *
 * @module
 */
import { formatZodError, type SaeFileConfig, schemas } from "../schema/mod.ts";
import { basename, dirname, join } from "node:path";
import { InputError, StepError } from "../errors.ts";
import { type OutputSet, sha256Hex, writeFileAtomic } from "../io/atomic.ts";
import { confinedFile } from "../io/paths.ts";
import { encodeSafetensors } from "../io/safetensors.ts";
import {
  decodeTorchPt,
  encodeTorchPt,
  isTorchTensor,
  type TorchValue,
} from "../io/torch_pt.ts";
import type { SAE, SAETensors } from "./sae.ts";
import { MAX_SAE_WEIGHTS } from "./limits.ts";
import { architecture } from "./arch/mod.ts";

const TENSORS = ["W_enc", "W_dec", "b_enc", "b_dec"] as const;

/**
 * Encode an SAE as `sae.pt` bytes: `{"state_dict": {W_enc, W_dec, b_enc,
 * b_dec}, "cfg": {...}}`, loadable with `torch.load(path, weights_only=True)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SAE } from "./sae.ts";
 * import { decodeSaePt, encodeSaePt } from "./sae_pt.ts";
 * const sae = new SAE({ arch: "topk", d_in: 4, d_sae: 8, k: 2 });
 * const cfg = { ...sae.cfg, format: "trminterp-sae/1" as const, latent: "z_H" as const, steps: "all",
 *   trace_digest: "0".repeat(64), model_sha256: "0".repeat(64), seed: 0, training: {} };
 * const back = decodeSaePt(encodeSaePt(sae, cfg), "sae.pt");
 * assert.deepEqual(back.tensors.W_dec.shape, [8, 4]);
 * ```
 */
export function encodeSaePt(sae: SAE, cfg: SaeFileConfig): Uint8Array {
  const t = sae.toTensors();
  const state: Record<string, TorchValue> = {};
  for (const name of TENSORS) {
    state[name] = {
      dtype: "float32",
      shape: t[name].shape,
      data: t[name].data,
    };
  }
  const plain: Record<string, TorchValue> = {};
  for (const [k, v] of Object.entries(cfg)) {
    if (v !== undefined) plain[k] = v as TorchValue;
  }
  return encodeTorchPt({ state_dict: state, cfg: plain }, {
    archiveName: "sae",
  });
}

/**
 * Decode `sae.pt` bytes (ours, or any `torch.save` of the same layout) into
 * its four tensors and its cfg; `SAE.fromTensors` checks the values.
 * Throws {@linkcode InputError} naming `label` when the file is not one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeSaePt } from "./sae_pt.ts";
 * try {
 *   decodeSaePt(new Uint8Array([1, 2, 3]), "sae.pt");
 * } catch (e) {
 *   assert((e as Error).message.includes("sae.pt"));
 * }
 * ```
 */
export function decodeSaePt(
  bytes: Uint8Array,
  label: string,
  opts: { dIn?: number } = {},
): { tensors: SAETensors; cfg: SaeFileConfig } {
  const decode = (o: { shapesOnly?: boolean; maxBytes?: number }) => {
    try {
      return decodeTorchPt(bytes, o);
    } catch (e) {
      throw new InputError(
        `${label} is not a readable torch archive (${
          (e as Error).message
        }); fit the SAE again`,
      );
    }
  };
  // First what the file declares (the pickle only): storages are inflated
  // only once the cfg and shapes are known to be an SAE of a size we handle.
  const declared = checkLayout(decode({ shapesOnly: true }), label, opts.dIn);
  const obj = decode({ maxBytes: declared });
  const root = obj as Record<string, TorchValue>;
  const state = root?.state_dict as Record<string, TorchValue> | undefined;
  const cfg = root?.cfg as unknown as SaeFileConfig | undefined;
  if (!state || typeof state !== "object" || !cfg || typeof cfg !== "object") {
    throw new InputError(
      `${label} has no state_dict and cfg; it is not an sae.pt that trminterp writes`,
    );
  }
  // A flipped byte can rename or retype a cfg key while the pickle still
  // parses: every field is checked before any is used or printed.
  const checked = schemas.SaeFileConfig.safeParse(cfg);
  if (!checked.success) {
    throw new InputError(
      `${label}: its cfg is not one trminterp writes (${
        formatZodError(checked.error)
      }); the file was edited or is corrupt: fit the SAE again`,
    );
  }
  const tensors: Partial<SAETensors> = {};
  for (const name of TENSORS) {
    const t = state[name];
    if (!isTorchTensor(t) || t.dtype !== "float32") {
      throw new InputError(
        `${label}: state_dict.${name} is missing or not a float32 tensor`,
      );
    }
    tensors[name] = { shape: t.shape, data: t.data as Float32Array };
  }
  return { tensors: tensors as SAETensors, cfg };
}

/**
 * Check the layout an `sae.pt` declares (cfg and tensor shapes, read with
 * empty data) and return the bytes its four tensors take.
 */
function checkLayout(
  obj: TorchValue,
  label: string,
  dIn: number | undefined,
): number {
  const root = obj as Record<string, TorchValue>;
  const state = root?.state_dict as Record<string, TorchValue> | undefined;
  const cfg = root?.cfg as Record<string, TorchValue> | undefined;
  if (!state || typeof state !== "object" || !cfg || typeof cfg !== "object") {
    throw new InputError(
      `${label} has no state_dict and cfg; it is not an sae.pt that trminterp writes`,
    );
  }
  const D = cfg.d_in, F = cfg.d_sae;
  if (
    !Number.isSafeInteger(D) || !Number.isSafeInteger(F) || (D as number) < 1 ||
    (F as number) < 1 || (D as number) * (F as number) > MAX_SAE_WEIGHTS
  ) {
    throw new InputError(
      `${label}: cfg d_in=${D}, d_sae=${F} is not an SAE trminterp handles (positive, d_in × d_sae ≤ ${MAX_SAE_WEIGHTS})`,
    );
  }
  if (dIn !== undefined && D !== dIn) {
    throw new InputError(
      `${label} has d_in ${D}, but the trace's states have D=${dIn}; fit the SAE on this run again`,
    );
  }
  const [d, f] = [D as number, F as number];
  const want = { W_enc: [d, f], W_dec: [f, d], b_enc: [f], b_dec: [d] };
  let bytes = 0;
  for (const [name, shape] of Object.entries(want)) {
    const t = state[name];
    if (
      !isTorchTensor(t) || t.dtype !== "float32" ||
      t.shape.join() !== shape.join()
    ) {
      throw new InputError(
        `${label}: state_dict.${name} is missing or not a float32 [${shape}] tensor`,
      );
    }
    bytes += shape.reduce((a, b) => a * b, 1) * 4;
  }
  return bytes;
}

/** The largest `sae.pt` read: two matrices at the cap, their biases, the rest. */
const MAX_SAE_PT_BYTES = 2 * MAX_SAE_WEIGHTS * 4 + 64 * 2 ** 20;

/**
 * Read `sae.pt` from a run dir, or from a path ending in `.pt`, into its
 * tensors, cfg and sha256 (`SAE.read` builds the SAE). With `dIn`, an SAE of
 * another width is refused before its weights are read.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SAE } from "./sae.ts";
 * import { encodeSaePt, readSaePt } from "./sae_pt.ts";
 * const sae = new SAE({ arch: "topk", d_in: 4, d_sae: 8, k: 2 });
 * const cfg = { ...sae.cfg, format: "trminterp-sae/1" as const, latent: "z_H" as const, steps: "all",
 *   trace_digest: "0".repeat(64), model_sha256: "0".repeat(64), seed: 0, training: {} };
 * const dir = await Deno.makeTempDir();
 * try {
 *   await Deno.writeFile(`${dir}/sae.pt`, encodeSaePt(sae, cfg));
 *   const back = await readSaePt(dir);
 *   assert.equal(back.cfg.latent, "z_H");
 *   assert.deepEqual(back.tensors.W_enc.shape, [4, 8]);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function readSaePt(
  runDir: string,
  opts: { dIn?: number } = {},
): Promise<
  { tensors: SAETensors; cfg: SaeFileConfig; sha256: string; path: string }
> {
  const [root, name] = runDir.endsWith(".pt")
    ? [dirname(runDir), basename(runDir)]
    : [runDir, "sae.pt"];
  const { path } = await confinedFile(root, name, {
    maxBytes: MAX_SAE_PT_BYTES,
    missing: () =>
      new StepError(`no sae.pt in ${runDir}; {fix} first`, "sae fit", {
        runDir,
      }),
  });
  const bytes = await Deno.readFile(path);
  return { ...decodeSaePt(bytes, path, opts), sha256: sha256Hex(bytes), path };
}

/**
 * Write the SAELens v6 folder: `cfg.json` and `sae_weights.safetensors`.
 * With `outputs`, `dir` must exist and the files are staged there, landing
 * when the caller commits it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SAE } from "./sae.ts";
 * import { writeSaeLensFolder } from "./sae_pt.ts";
 * const sae = new SAE({ arch: "topk", d_in: 4, d_sae: 8, k: 2 });
 * const cfg = { ...sae.cfg, format: "trminterp-sae/1" as const, latent: "z_H" as const, steps: "all",
 *   trace_digest: "0".repeat(64), model_sha256: "0".repeat(64), seed: 0, training: {} };
 * const dir = await Deno.makeTempDir();
 * try {
 *   await writeSaeLensFolder(dir, sae, cfg, "demo");
 *   const saelens = JSON.parse(await Deno.readTextFile(`${dir}/cfg.json`));
 *   assert.equal(saelens.architecture, "topk");
 *   assert.equal(saelens.k, 2);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function writeSaeLensFolder(
  dir: string,
  sae: SAE,
  cfg: SaeFileConfig,
  modelName: string,
  outputs?: OutputSet,
): Promise<void> {
  if (!outputs) await Deno.mkdir(dir, { recursive: true });
  const t = sae.toTensors();
  const tensors: Record<
    string,
    { dtype: "float32"; shape: number[]; data: Float32Array }
  > = {};
  for (const name of TENSORS) {
    tensors[name] = {
      dtype: "float32",
      shape: t[name].shape,
      data: t[name].data,
    };
  }
  const saelensCfg: Record<string, unknown> = {
    architecture: architecture(cfg.arch).saelensName,
    d_in: cfg.d_in,
    d_sae: cfg.d_sae,
    dtype: "float32",
    device: "cpu",
    apply_b_dec_to_input: true,
    normalize_activations: "none",
    reshape_activations: "none",
    metadata: {
      sae_lens_version: "6.0.0",
      sae_lens_training_version: "6.0.0",
      model_name: modelName,
      hook_name: `trm.${cfg.latent}`,
      model_class_name: "trminterp",
      hook_head_index: null,
      prepend_bos: false,
      context_size: null,
      dataset_path: null,
    },
  };
  const arch = architecture(cfg.arch);
  Object.assign(saelensCfg, arch.saelensFields(cfg));
  for (const [name, t] of Object.entries(arch.saelensTensors(cfg))) {
    tensors[name] = { dtype: "float32", shape: t.shape, data: t.data };
  }
  const write = (path: string, data: Uint8Array | string) =>
    outputs ? outputs.add(path, data) : writeFileAtomic(path, data);
  await write(join(dir, "sae_weights.safetensors"), encodeSafetensors(tensors));
  await write(
    join(dir, "cfg.json"),
    JSON.stringify(saelensCfg, null, 2) + "\n",
  );
}

export type { SaeFileConfig };
