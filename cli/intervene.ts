/**
 * `trminterp intervene`: flags, up-front checks, and the summary.
 *
 * @module
 */
import { InputError } from "../lib/errors.ts";
import {
  type InterveneOptions,
  runIntervene,
} from "../lib/intervene/intervene.ts";
import type { BackendChoice } from "../lib/model/backend.ts";
import { POLICY_NAMES, type PolicyName } from "../lib/intervene/policy.ts";
import { RANK_BY, type RankBy } from "../lib/intervene/ranking.ts";
import type { Report } from "../lib/intervene/report.ts";
import { INTERVENE_DEFAULTS } from "../lib/intervene/defaults.ts";
import { ablateTo } from "../lib/schema/report.ts";
import type { AblateTo } from "../lib/schema/mod.ts";

import { readTraceHeader, traceRunDir } from "../lib/trace/dataset.ts";
import { headerPath } from "../lib/trace/trace.ts";
import {
  COMMON,
  type FlagValues,
  intList,
  parseBackend,
  provenanceArgs,
  requireRunDir,
  str,
  usage,
  wantProgress,
} from "./common.ts";
import {
  type FlagSpec,
  intFlag,
  nearest,
  numFlag,
  parseFlags,
} from "./flags.ts";
import { checkPermissions, ortWasmFiles } from "./permissions.ts";
import { Progress } from "./progress.ts";
import { terminalSafe } from "./safe_text.ts";
import { interveneSummary, reportsLine } from "./summary.ts";
import {
  checkRunName,
  listReports,
  reportPath,
} from "../lib/intervene/reports.ts";

/** The table every default below comes from. */
const D = INTERVENE_DEFAULTS;

/** The --ablate-to values, from the zod enum. */
const ABLATE_TO: readonly AblateTo[] = ablateTo.options;

/** The flags of `intervene`.  *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { INTERVENE_FLAGS } from "./intervene.ts";
 * assert.match(INTERVENE_FLAGS.policy.help, /ablate_features/);
 * ```
 */
export const INTERVENE_FLAGS: Record<string, FlagSpec> = {
  "run-dir": COMMON["run-dir"],
  policy: {
    type: "string",
    arg: "NAME",
    help: `${POLICY_NAMES.join(" | ")} (required)`,
  },
  features: {
    type: "string",
    arg: "LIST",
    help:
      "SAE features to edit and rank, e.g. 3,17 (default: rank the most active, edit the top one)",
  },
  steps: {
    type: "string",
    arg: "SELECTOR",
    help:
      "steps to act on (default the steps the SAE was fitted on; steps outside them print a warning)",
  },
  positions: {
    type: "string",
    arg: "SPEC",
    help: "positions to act on (default the traced positions)",
  },
  value: {
    type: "string",
    arg: "V",
    help: "clamp_features: set the features to V",
  },
  scale: {
    type: "string",
    arg: "S",
    help: "clamp_features: multiply the features by S",
  },
  "ablate-to": {
    type: "string",
    arg: ABLATE_TO.join("|"),
    help: `ablate_features: ${
      ABLATE_TO.join(" | ")
    } (mean: the trace mean) (default ${D.ablateTo})`,
  },
  "source-example": {
    type: "string",
    arg: "ID",
    help: "patch_features: take activations from example ID",
  },
  "source-steps": {
    type: "string",
    arg: "SELECTOR",
    help: "patch_features: take them from this one step",
  },
  rank: {
    type: "string",
    arg: "N",
    help: `top features to report and scan per step (default ${D.rank})`,
  },
  candidates: {
    type: "string",
    arg: "N",
    help:
      `most active features to rank when --features is absent (default ${D.candidates})`,
  },
  examples: {
    type: "string",
    arg: "N",
    help: `examples in the seeded ranking subsample (default ${D.examples})`,
  },
  "random-features": {
    type: "string",
    arg: "N",
    help:
      `random alive features, outside the candidates, ablated for the reference median (default ${D.randomFeatures})`,
  },
  "control-draws": {
    type: "string",
    arg: "N",
    help:
      `random draws of matched activation mass beside each point of the cumulative curve (default ${D.controlDraws})`,
  },
  "rank-by": {
    type: "string",
    arg: "token|kl|exact",
    help:
      `rank by token (the drop in token accuracy), kl (the output KL) or exact (the drop in exact solutions) (default ${D.rankBy})`,
  },
  seed: COMMON.seed,
  model: {
    type: "string",
    arg: "BUNDLE",
    help: "model bundle (default: the trace's)",
  },
  backend: {
    type: "string",
    arg: "NAME",
    help:
      "execution backend (default: the trace's, so an identity edit reproduces it exactly)",
  },
  batch: {
    type: "string",
    arg: "N",
    help: "examples per batch (default: the trace's)",
  },
  name: {
    type: "string",
    arg: "NAME",
    help:
      "name this run: write DIR/interventions/NAME/report.json (and its saved trace beside it) instead of DIR/report.json, so several runs sit side by side",
  },
  "save-trace": {
    type: "boolean",
    help: "save the intervened trace under DIR/interventions/<id>/",
  },
  force: COMMON.force,
  progress: COMMON.progress,
  help: COMMON.help,
};

/** `trminterp intervene --help`.  *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { INTERVENE_HELP } from "./intervene.ts";
 * assert.match(INTERVENE_HELP, /^usage: deno task trminterp intervene/);
 * ```
 */
export const INTERVENE_HELP: string = usage(
  "intervene",
  "--run-dir DIR --policy NAME [--features LIST] [flags]",
  INTERVENE_FLAGS,
  `Edits SAE features of the SAE's latent during the rollout, keeping the SAE error term
(h' = h - decode(encode(h)) + decode(a')), and writes DIR/report.json: baseline vs
intervened, the top causal features (each ablated alone on a seeded subsample, ranked
by the drop in token accuracy, KL as tie-break, or as --rank-by says), the top features
ablated together (1, 2, 4, ... all candidates) and the step x feature effect matrix.`,
);

/**
 * Run `trminterp intervene` on its arguments.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { intervene } from "./intervene.ts";
 * import { saeFit } from "./sae_fit.ts";
 * import { trace } from "./trace.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await trace(["--run-dir", dir, "--limit", "4", "--latents", "z_H"]);
 *   await saeFit(["--run-dir", dir, "--train-steps", "20", "--features", "32", "--k", "4"]);
 *   const r = await intervene(["--run-dir", dir, "--policy", "clamp_features", "--scale", "1", "--features", "1",
 *     "--candidates", "1", "--random-features", "1", "--rank", "1"]);
 *   assert.equal(r?.comparison.delta.flipped_fraction, 0);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function intervene(args: string[]): Promise<Report | void> {
  const v: FlagValues = parseFlags("intervene", args, INTERVENE_FLAGS);
  if (v.help) return console.log(INTERVENE_HELP);
  const runDir = requireRunDir(v, "intervene");
  const policy = v.policy;
  if (typeof policy !== "string") {
    throw new InputError(
      `intervene: --policy is required: ${POLICY_NAMES.join(", ")}`,
    );
  }
  if (!(POLICY_NAMES as readonly string[]).includes(policy)) {
    const hint = nearest(policy, [...POLICY_NAMES]);
    throw new InputError(
      `--policy: unknown policy "${policy}"${
        hint ? `; did you mean ${hint}?` : ""
      } (v0 has ${POLICY_NAMES.join(", ")})`,
    );
  }
  const ablate = v["ablate-to"];
  const ablateTo = ABLATE_TO.find((t) => t === ablate);
  if (ablate !== undefined && ablateTo === undefined) {
    throw new InputError(
      `--ablate-to must be ${ABLATE_TO.join(" or ")}, got "${ablate}"`,
    );
  }
  const rankBy = v["rank-by"];
  if (
    rankBy !== undefined && !(RANK_BY as readonly unknown[]).includes(rankBy)
  ) {
    throw new InputError(
      `--rank-by must be ${RANK_BY.join(", ")}, got "${rankBy}"`,
    );
  }
  const progress = new Progress(
    "intervene",
    0,
    "example rollouts",
    wantProgress(v),
  );
  // Every flag value is checked before the run dir is read.
  const options: InterveneOptions = {
    runDir,
    policy: policy as PolicyName,
    features: intList(v.features, "--features"),
    steps: str(v, "steps"),
    positions: str(v, "positions"),
    value: numFlag(v.value, "--value"),
    scale: numFlag(v.scale, "--scale"),
    ablateTo,
    sourceExample: str(v, "source-example"),
    sourceSteps: str(v, "source-steps"),
    rank: intFlag(v.rank, "--rank", 1),
    candidates: intFlag(v.candidates, "--candidates", 1),
    examples: intFlag(v.examples, "--examples", 1),
    randomFeatures: intFlag(v["random-features"], "--random-features", 0),
    controlDraws: intFlag(v["control-draws"], "--control-draws", 0),
    rankBy: rankBy as RankBy | undefined,
    seed: intFlag(v.seed, "--seed") ?? 0,
    model: str(v, "model"),
    batch: intFlag(v.batch, "--batch", 1),
    saveTrace: v["save-trace"] === true,
    name: str(v, "name") === undefined
      ? undefined
      : checkRunName(str(v, "name")!),
    force: v.force === true,
    onProgress: (done, total) => {
      progress.total = total;
      progress.update(done);
    },
    command: provenanceArgs(["intervene"], args),
    onWarning: (m) => console.error(terminalSafe(`intervene: ${m}`)),
  };
  await checkPermissions({
    command: "intervene",
    read: [runDir],
    write: [runDir],
  });
  const header = await readTraceHeader(runDir);
  const model = str(v, "model") ??
    headerPath(await traceRunDir(runDir), header.model.path);
  // Without --allow-ffi, a native trace is intervened on WASM (the README's
  // sandboxed line), which rolls its own baseline out; a note says so.
  const ffi = (await Deno.permissions.query({ name: "ffi" })).state ===
    "granted";
  const asked = parseBackend(v.backend);
  const backend = asked ??
    (header.backend === "native" && !ffi ? "wasm" : header.backend);
  if (!asked && backend !== header.backend) {
    console.error(
      `intervene: the trace ran on ${header.backend}; without --allow-ffi this runs on ${backend} and rolls the baseline out again there (grant --allow-ffi to reuse the trace's)`,
    );
  }
  await checkPermissions({
    command: "intervene",
    read: [runDir, model, ...ortWasmFiles(backend)],
    write: [runDir],
    ffi: backend === "native",
  });
  const r = await runIntervene({
    ...options,
    backend: backend as BackendChoice,
  });
  progress.done();
  const lines = interveneSummary(
    r,
    runDir,
    header.model.seq_len,
    reportPath(options.name),
  ).split("\n");
  // Before the closing `next:` line: every report in the run dir.
  lines.splice(lines.length - 2, 0, "", reportsLine(await listReports(runDir)));
  console.log(terminalSafe(lines.join("\n")));
  return r;
}
