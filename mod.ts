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
export { TraceDataset, TraceRows } from "./lib/trace_dataset.ts";
export type { RowInfo, TraceFilter, TraceMeta } from "./lib/trace_dataset.ts";
export { runTrace } from "./lib/trace.ts";
export type { TraceOptions, TraceSummary } from "./lib/trace.ts";
export { loadBundle, readManifest } from "./lib/bundle.ts";
export type { Bundle, LoadBundleOptions } from "./lib/bundle.ts";
export { argmaxRows, runRollout } from "./lib/runner.ts";
export type {
  FloatArray,
  Latent,
  PuzzleBatch,
  ReadoutEvent,
  RolloutOptions,
  RolloutResult,
  StepEvent,
} from "./lib/runner.ts";
export {
  allAddresses,
  formatAddress,
  parseAddress,
  SELECTOR_GRAMMAR,
  stepIndex,
  StepSelector,
} from "./lib/address.ts";
export type { ScheduleShape, StepAddress } from "./lib/address.ts";
export { BACKENDS } from "./lib/backend.ts";
export type {
  BackendName,
  GraphSession,
  HostTensor,
  SessionOptions,
  ValueInfo,
} from "./lib/backend.ts";
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
} from "./lib/schema.ts";
export type { ParseResult, Validator } from "./lib/schema.ts";
export { VERSION } from "./lib/version.ts";
export { SAE } from "./lib/sae.ts";
export type { SAEArch, SAEConfig, SAETensor, SAETensors } from "./lib/sae.ts";
export { fitSAE } from "./lib/sae_train.ts";
export type {
  FitOptions,
  FitProgress,
  FitResult,
  LossPoint,
  RowSource,
} from "./lib/sae_train.ts";
export { saeMetrics } from "./lib/sae_metrics.ts";
export type {
  DensityHistogram,
  Metric,
  SAEMetrics,
} from "./lib/sae_metrics.ts";
export {
  decodeSaePt,
  encodeSaePt,
  readSaePt,
  writeSaeLensFolder,
} from "./lib/sae_io.ts";
export type { SaeFileConfig } from "./lib/sae_io.ts";
export { runSaeFit } from "./lib/sae_fit.ts";
export type {
  SaeFitOptions,
  SaeMetricsJson,
  TaskAccuracy,
} from "./lib/sae_fit.ts";
export {
  AblateFeatures,
  ClampFeatures,
  editActivations,
  PatchFeatures,
  POLICY_NAMES,
} from "./lib/policy.ts";
export type {
  InterventionPolicy,
  PolicyContext,
  PolicyName,
} from "./lib/policy.ts";
export { Evaluator, meanKL } from "./lib/evaluate.ts";
export type {
  Comparison,
  ExampleDelta,
  ExampleOutcome,
  OutcomeTrace,
  SideSummary,
} from "./lib/evaluate.ts";
export { runIntervene } from "./lib/intervene.ts";
export type {
  CausalFeature,
  InterveneOptions,
  Report,
} from "./lib/intervene.ts";
export { rowEditHook } from "./lib/hooks.ts";
export type { RowEditContext, RowEditSpec } from "./lib/hooks.ts";
