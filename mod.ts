/**
 * trminterp: a fixed, reproducible trace → SAE → intervene loop for TRM-style
 * recurrent reasoning models (TRM, HRM), running the model as ONNX graphs on
 * onnxruntime-web.
 *
 * @example
 * ```ts ignore
 * import { TraceDataset } from "./mod.ts";
 * const { states, shape } = await TraceDataset.load("runs/demo");
 * console.log(shape, states.length);
 * ```
 *
 * @module
 */
export { TraceDataset, TraceRows } from "./lib/trace/dataset.ts";
export type { RowInfo, TraceFilter, TraceMeta } from "./lib/trace/dataset.ts";
export { runTrace } from "./lib/trace/trace.ts";
export type { TraceOptions, TraceSummary } from "./lib/trace/trace.ts";
export { loadBundle, readManifest } from "./lib/model/bundle.ts";
export type { Bundle, LoadBundleOptions } from "./lib/model/bundle.ts";
export { argmaxRows, runRollout } from "./lib/model/rollout.ts";
export type {
  FloatArray,
  Latent,
  PuzzleBatch,
  ReadoutEvent,
  RolloutOptions,
  RolloutResult,
  StepEvent,
} from "./lib/model/rollout.ts";
export {
  allAddresses,
  formatAddress,
  parseAddress,
  SELECTOR_GRAMMAR,
  stepIndex,
  StepSelector,
} from "./lib/model/address.ts";
export type { ScheduleShape, StepAddress } from "./lib/model/address.ts";
export { BACKENDS } from "./lib/model/backend.ts";
export type {
  BackendName,
  GraphSession,
  HostTensor,
  SessionOptions,
  ValueInfo,
} from "./lib/model/backend.ts";
export { InputError } from "./lib/errors.ts";
export { Rng } from "./lib/rng.ts";
export {
  formatZodError,
  GRAPH_ROLES,
  GraphRef,
  jsonSchemas,
  ModelManifest,
  ReportFile,
  SaeMetricsFile,
  Schedule,
  Tokens,
  TraceExample,
  TraceHeader,
  TraceReadout,
  TraceRecord,
  TraceStep,
} from "./lib/schema/schema.ts";
export type { ParseResult, Validator } from "./lib/schema/schema.ts";
export { VERSION } from "./lib/version.ts";
export { SAE } from "./lib/sae/sae.ts";
export type {
  SAEArch,
  SAEConfig,
  SAETensor,
  SAETensors,
} from "./lib/sae/sae.ts";
export { fitSAE } from "./lib/sae/train.ts";
export type {
  FitOptions,
  FitProgress,
  FitResult,
  LossPoint,
  RowSource,
} from "./lib/sae/train.ts";
export { saeMetrics } from "./lib/sae/metrics.ts";
export type {
  DensityHistogram,
  Metric,
  SAEMetrics,
} from "./lib/sae/metrics.ts";
export {
  decodeSaePt,
  encodeSaePt,
  readSaePt,
  writeSaeLensFolder,
} from "./lib/sae/sae_pt.ts";
export type { SaeFileConfig } from "./lib/sae/sae_pt.ts";
export { runSaeFit } from "./lib/sae/fit.ts";
export type {
  SaeFitOptions,
  SaeMetricsJson,
  TaskAccuracy,
} from "./lib/sae/fit.ts";
export {
  AblateFeatures,
  ClampFeatures,
  editActivations,
  PatchFeatures,
  POLICY_NAMES,
} from "./lib/intervene/policy.ts";
export type {
  InterventionPolicy,
  PolicyContext,
  PolicyName,
} from "./lib/intervene/policy.ts";
export { Evaluator, meanKL } from "./lib/intervene/evaluate.ts";
export type {
  Comparison,
  ExampleDelta,
  ExampleOutcome,
  OutcomeTrace,
  SideSummary,
} from "./lib/intervene/evaluate.ts";
export { runIntervene } from "./lib/intervene/intervene.ts";
export type {
  CausalFeature,
  InterveneOptions,
  Report,
} from "./lib/intervene/intervene.ts";
export { rowEditHook } from "./lib/model/hooks.ts";
export type { RowEditContext, RowEditSpec } from "./lib/model/hooks.ts";
