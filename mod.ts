/**
 * trminterp: a fixed, reproducible trace → SAE → intervene loop for TRM-style
 * recurrent reasoning models (TRM, HRM), running the model as ONNX graphs on
 * onnxruntime-web.
 *
 * The five abstractions: {@linkcode rollout} (with hooks), {@linkcode TraceDataset},
 * {@linkcode SAE}, {@linkcode InterventionPolicy} and {@linkcode Evaluator};
 * the three commands: {@linkcode runTrace}, {@linkcode runSaeFit} and
 * {@linkcode runIntervene}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AblateFeatures, loadBundle, policyHook, rollout, SAE, StepSelector } from "./mod.ts";
 * const bundle = await loadBundle(new URL("./references/models/sudoku4-trm", import.meta.url).pathname);
 * try {
 *   const puzzle = { id: "p", tokens: [1, 3, 4, 1, 4, 1, 1, 3, 3, 1, 1, 4, 1, 4, 3, 1],
 *     label: [2, 3, 4, 5, 4, 5, 2, 3, 3, 2, 5, 4, 5, 4, 3, 2] };
 *   const sae = new SAE({ arch: "relu", d_in: 64, d_sae: 4 });
 *   sae.W_enc[0] = 1; // feature 0 reads dimension 0 of z_H
 *   sae.W_dec[0] = 1;
 *   const ablate = policyHook(new AblateFeatures([0]), sae, {
 *     latent: "z_H", steps: StepSelector.parse("s*.*.H"), positions: [0, 1, 2, 3],
 *   });
 *   const [clean] = await rollout(bundle, [puzzle]);
 *   const [edited] = await rollout(bundle, [puzzle], { hooks: [ablate] });
 *   assert.equal(clean.predPerSup.length, edited.predPerSup.length);
 * } finally {
 *   await bundle.release();
 * }
 * ```
 *
 * @module
 */
export { loadBundle } from "./lib/model/bundle.ts";
export type { Bundle, LoadBundleOptions } from "./lib/model/bundle.ts";
export type {
  BackendChoice,
  BackendName,
  GraphSession,
  HostTensor,
  ValueInfo,
} from "./lib/model/backend.ts";
export {
  resolveBackend,
  setWasmThreads,
  wasmThreads,
} from "./lib/model/backend.ts";
export { rollout } from "./lib/model/rollout.ts";
export { CarryRecorder } from "./lib/model/hooks.ts";
export type {
  BatchEndEvent,
  BatchInfo,
  Carry,
  ExampleOutcome,
  FloatArray,
  Hook,
  Latent,
  OutcomeTrace,
  ReadoutEvent,
  RolloutExample,
  RolloutOptions,
  StepEvent,
  SupervisionEndEvent,
} from "./lib/model/rollout.ts";
export { StepSelector } from "./lib/model/address.ts";
export type { ScheduleShape, StepAddress } from "./lib/model/address.ts";
export { TraceDataset, TraceRows } from "./lib/trace/dataset.ts";
export type {
  RowInfo,
  RowQuery,
  TraceFilter,
  TraceMeta,
} from "./lib/trace/dataset.ts";
export { SAE } from "./lib/sae/sae.ts";
export type {
  SAEArch,
  SAEConfig,
  SAETensor,
  SAETensors,
} from "./lib/sae/sae.ts";
export type { SaeFileConfig } from "./lib/sae/sae_pt.ts";
export type {
  DensityHistogram,
  Metric,
  SAEMetrics,
} from "./lib/sae/metrics.ts";
export type { LossPoint } from "./lib/sae/train/trainer.ts";
export {
  AblateFeatures,
  ClampFeatures,
  PatchFeatures,
} from "./lib/intervene/policy.ts";
export type { AblateTo, PolicyName } from "./lib/intervene/policy.ts";
export { editActivations, policyHook } from "./lib/edit/policy.ts";
export type {
  FeatureDictionary,
  InterventionPolicy,
  PolicyContext,
  PolicySite,
  SourceLookup,
} from "./lib/edit/policy.ts";
export { Evaluator } from "./lib/intervene/evaluate.ts";
export type {
  Comparison,
  ExampleDelta,
  SideSummary,
} from "./lib/intervene/evaluate.ts";
export { runTrace } from "./lib/trace/trace.ts";
export type {
  ShardInfo,
  ShardSpec,
  TraceOptions,
  TraceSummary,
} from "./lib/trace/trace.ts";
export type { StatesDtype, StatesStorage } from "./lib/trace/layout.ts";
export type { PerSupAccuracy } from "./lib/trace/recorder.ts";
export { runSaeFit } from "./lib/sae/fit.ts";
export type {
  SaeFitOptions,
  SaeMetricsJson,
  TaskAccuracy,
} from "./lib/sae/fit.ts";
export { runIntervene } from "./lib/intervene/intervene.ts";
export type { InterveneOptions } from "./lib/intervene/plan.ts";
export type { Report } from "./lib/intervene/report.ts";
export type {
  CausalFeature,
  CumulativeAblation,
  RandomReference,
  RankBy,
} from "./lib/intervene/ranking.ts";
export type {
  CausalSection,
  EditedSteps,
  Grid,
  Landing,
  PositionEffects,
  Selectivity,
} from "./lib/schema/mod.ts";
export type { Tomography } from "./lib/intervene/tomography.ts";
export type {
  GraphRef,
  ModelManifest,
  ParseResult,
  PayloadValidators,
  Schedule,
  Tokens,
  TraceExample,
  TraceHeader,
  TraceReadout,
  TraceStep,
  Validator,
} from "./lib/schema/mod.ts";
export {
  type ArchDefaults,
  SAE_DEFAULTS,
  type SaeDefaults,
} from "./lib/sae/defaults.ts";
export { schemas } from "./lib/schema/mod.ts";
export { InputError, OptionError, StepError } from "./lib/errors.ts";
export type { LoopStep } from "./lib/errors.ts";
export { VERSION } from "./lib/version.ts";
