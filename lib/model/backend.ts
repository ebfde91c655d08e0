/**
 * onnxruntime sessions behind one small interface, so the runner does not
 * care which execution provider runs the graphs.
 *
 * @module
 */
import type * as OrtTypes from "npm:onnxruntime-web@1.30.0";
import { InputError } from "../errors.ts";

/**
 * Names of the execution backends that run graphs. `wasm` and `webgpu` run in
 * Deno's sandbox; `native` (onnxruntime-node, see `backend_native.ts`) loads a
 * native library and needs `--allow-ffi`: use it on trusted workstations only.
 */
export type BackendName = "wasm" | "webgpu" | "native";

/**
 * A backend as asked for: one of {@linkcode BackendName}, or `auto` (native
 * when `--allow-ffi` is granted and onnxruntime-node loads, else WASM; see
 * {@linkcode resolveBackend}).
 */
export type BackendChoice = BackendName | "auto";

/**
 * The backends trminterp accepts for `--backend`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BACKENDS, resolveBackend } from "./backend.ts";
 * assert.deepEqual(BACKENDS, ["auto", "wasm", "webgpu", "native"]);
 * assert.equal(await resolveBackend(BACKENDS[1]), "wasm");
 * ```
 */
export const BACKENDS: readonly BackendChoice[] = [
  "auto",
  "wasm",
  "webgpu",
  "native",
];

/**
 * The backend `choice` runs on: itself, or for `auto` the native backend when
 * the ffi permission is granted and onnxruntime-node loads, else `wasm`.
 * WebGPU is never chosen: it runs only when asked for. Outputs are
 * byte-identical for the same backend, not across backends, so what ran is
 * recorded (the trace header's `backend`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveBackend } from "./backend.ts";
 * assert.equal(await resolveBackend("wasm"), "wasm");
 * assert.equal(await resolveBackend("auto"), "native"); // doc tests hold --allow-ffi
 * ```
 */
export async function resolveBackend(
  choice: BackendChoice = "auto",
): Promise<BackendName> {
  if (choice !== "auto") return choice;
  if ((await Deno.permissions.query({ name: "ffi" })).state !== "granted") {
    return "wasm";
  }
  try {
    const { loadOrtNode } = await import("./backend_native.ts");
    await loadOrtNode();
    return "native";
  } catch (e) {
    // A command line too long to load it with is refused, not hidden.
    if (e instanceof InputError) throw e;
    // No addon for this platform, or no read grant for it: the sandboxed path.
    return "wasm";
  }
}

/** A dense tensor as the runner sees it. */
export interface HostTensor {
  /** Element type. */
  type: "float32" | "float64" | "int64";
  /** The data, row-major. */
  data: Float32Array | Float64Array | BigInt64Array;
  /** Dimensions. */
  dims: readonly number[];
}

/** The signature of one graph input or output. */
export interface ValueInfo {
  /** The value's name in the graph. */
  name: string;
  /** The element type, e.g. `"float32"`. */
  type: string;
  /** Dimensions: a number when static, a string for a symbolic axis. */
  shape: readonly (number | string)[];
}

/**
 * One loaded ONNX graph.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createSession } from "./backend.ts";
 * const net = new URL("../../references/models/sudoku4-trm/net.onnx", import.meta.url);
 * const s = await createSession(await Deno.readFile(net), { backend: "wasm" });
 * assert.deepEqual(s.inputs.map((v) => v.name), ["hidden", "injection"]);
 * await s.release();
 * ```
 */
export interface GraphSession {
  /** Input signatures, in graph order. */
  readonly inputs: readonly ValueInfo[];
  /** Output signatures, in graph order. */
  readonly outputs: readonly ValueInfo[];
  /** Run the graph on host tensors and return host tensors. */
  run(feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>>;
  /** Free the session. */
  release(): Promise<void>;
}

/** Options for {@linkcode createSession}. */
export interface SessionOptions {
  /** Which execution provider to use. */
  backend: BackendName;
  /** Turn graph optimizations off (needed for float64 graphs: no fused kernels). */
  disableOptimizations?: boolean;
}

type Ort = typeof OrtTypes;
const ortCache = new Map<BackendName, Promise<Ort>>();

/**
 * WASM threads for sessions created from now on; 0 (the default) lets
 * `loadBundle` pick by the model's size (see
 * {@linkcode threadsForModel}). onnxruntime-web fixes the count when its
 * first session is created, so a later call has no effect on this process's
 * sessions. The thread count does not change outputs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { setWasmThreads, wasmThreads } from "./backend.ts";
 * setWasmThreads(2);
 * assert.equal(wasmThreads(), 2);
 * setWasmThreads(0);
 * assert.throws(() => setWasmThreads(1.5), /wasm threads must be a whole number/);
 * ```
 */
export function setWasmThreads(n: number): void {
  if (!Number.isInteger(n) || n < 0) {
    throw new InputError(`wasm threads must be a whole number >= 0, got ${n}`);
  }
  threadsAsked = n;
}

let threadsAsked = 0;
let threadsPicked = 0;
let threadsStarted = 0;

/**
 * The WASM thread count sessions get (or got, once onnxruntime-web started):
 * the count set with {@linkcode setWasmThreads}, else the one picked for the
 * first model loaded, else `min(cores, 4)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { wasmThreads } from "./backend.ts";
 * assert.ok(wasmThreads() >= 1 && wasmThreads() <= 4);
 * ```
 */
export function wasmThreads(): number {
  if (threadsStarted) return threadsStarted;
  return threadsAsked || threadsPicked || maxThreads();
}

function maxThreads(): number {
  return Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 4));
}

/**
 * The WASM threads for a model whose net call holds `positions × width`
 * values per example: one thread below 8192 (a net call there is too short
 * for the threads' hand-offs to pay: the demo model, 16 × 64, ran 2 to 4
 * times slower on 2 threads on our 2-core machine), else `min(cores, 4)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { threadsForModel } from "./backend.ts";
 * assert.equal(threadsForModel(16, 64), 1);
 * assert.ok(threadsForModel(97, 512) >= 1);
 * ```
 */
export function threadsForModel(positions: number, width: number): number {
  return positions * width < 8192 ? 1 : maxThreads();
}

/**
 * Pick the WASM threads for a model about to load, unless a count was set
 * or onnxruntime-web already started (then this does nothing).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pickWasmThreads, setWasmThreads, wasmThreads } from "./backend.ts";
 * pickWasmThreads(16, 64); // the demo model: 16 positions × 64 wide
 * assert.equal(wasmThreads(), 1); // too short a net call to share
 * setWasmThreads(3);
 * pickWasmThreads(97, 512); // a count was set: no effect
 * assert.equal(wasmThreads(), 3);
 * setWasmThreads(0);
 * ```
 */
export function pickWasmThreads(positions: number, width: number): void {
  if (!threadsStarted && !threadsAsked) {
    threadsPicked = threadsForModel(positions, width);
  }
}

/**
 * Pages of onnxruntime-web's shared wasm memory when it runs threads (1 GiB;
 * the build starts at 16 MiB). Growing that memory while a worker thread runs
 * is a race in the threaded build: the worker can touch the new pages before
 * it learns the new size, traps ("memory access out of bounds") and exits,
 * and the main thread then waits for it forever, one core at 100% (the hang
 * of a threaded run). Starting large means runs do not grow it; untouched
 * pages cost no resident memory.
 */
const THREADED_MEMORY_PAGES = 16384;

/**
 * Create onnxruntime-web's first session with the shared memory its module
 * makes starting at {@linkcode THREADED_MEMORY_PAGES}: the module takes no
 * memory size option, so the constructor is wrapped for that one call.
 */
async function withLargeMemory<T>(f: () => Promise<T>): Promise<T> {
  const Memory = WebAssembly.Memory;
  const sized = function (d: WebAssembly.MemoryDescriptor) {
    if (d.shared && (d.maximum ?? 0) > THREADED_MEMORY_PAGES) {
      d = { ...d, initial: Math.max(d.initial, THREADED_MEMORY_PAGES) };
    }
    return new Memory(d);
  } as unknown as typeof WebAssembly.Memory;
  sized.prototype = Memory.prototype;
  WebAssembly.Memory = sized;
  try {
    return await f();
  } finally {
    WebAssembly.Memory = Memory;
  }
}

/**
 * Load the onnxruntime-web module for a backend. WASM uses the default
 * import, which finds its own `.wasm`; WebGPU needs the `/webgpu` build.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadOrt } from "./backend.ts";
 * const ort = await loadOrt("wasm");
 * assert.equal(ort.env.versions.web, "1.30.0");
 * ```
 */
export function loadOrt(backend: BackendName): Promise<Ort> {
  if (backend === "native") {
    throw new Error(
      "loadOrt serves onnxruntime-web; native uses backend_native.ts",
    );
  }
  let p = ortCache.get(backend);
  if (!p) {
    p = (backend === "webgpu"
      ? import("npm:onnxruntime-web@1.30.0/webgpu")
      : import("npm:onnxruntime-web@1.30.0")).then(
        (mod) => {
          const ort = ((mod as { default?: Ort }).default ?? mod) as Ort;
          ort.env.wasm.numThreads = wasmThreads();
          ort.env.logLevel = "error";
          return ort;
        },
      );
    ortCache.set(backend, p);
  }
  return p;
}

/**
 * Wrap an onnxruntime session (web or node: both implement
 * onnxruntime-common's interface) as a {@linkcode GraphSession}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadOrt, wrapSession } from "./backend.ts";
 * const ort = await loadOrt("wasm");
 * const head = new URL("../../references/models/sudoku4-trm/head.onnx", import.meta.url);
 * const s = wrapSession(await ort.InferenceSession.create(await Deno.readFile(head)), ort.Tensor);
 * const out = await s.run({ z_H: { type: "float32", data: new Float32Array(16 * 64), dims: [1, 16, 64] } });
 * assert.deepEqual(out.logits.dims, [1, 16, 6]);
 * await s.release();
 * ```
 */
export function wrapSession(
  session: OrtTypes.InferenceSession,
  Tensor: typeof OrtTypes.Tensor,
): GraphSession {
  return {
    inputs: session.inputMetadata.map(toInfo),
    outputs: session.outputMetadata.map(toInfo),
    async run(feeds) {
      const ortFeeds: Record<string, OrtTypes.Tensor> = {};
      for (const [name, t] of Object.entries(feeds)) {
        ortFeeds[name] = new Tensor(t.type, t.data, t.dims);
      }
      const out = await session.run(ortFeeds);
      const result: Record<string, HostTensor> = {};
      for (const [name, t] of Object.entries(out)) {
        // getData(true) also downloads GPU-resident outputs (WebGPU).
        const data = t.location === "cpu" ? t.data : await t.getData(true);
        result[name] = {
          type: t.type as HostTensor["type"],
          data: data as HostTensor["data"],
          dims: t.dims,
        };
      }
      return result;
    },
    release: () => session.release(),
  };
}

/**
 * The one-line error for graph bytes onnxruntime cannot load.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { invalidGraph } from "./backend.ts";
 * assert(invalidGraph("net", new Error("bad\nmore")).message.includes("net is not a valid ONNX graph (bad)"));
 * ```
 */
export function invalidGraph(label: string, e: unknown): InputError {
  return new InputError(
    `${label} is not a valid ONNX graph (${
      firstLine(e)
    }); re-export the bundle with references/python/export.py`,
  );
}

function toInfo(meta: OrtTypes.InferenceSession.ValueMetadata): ValueInfo {
  return meta.isTensor
    ? { name: meta.name, type: meta.type, shape: meta.shape }
    : { name: meta.name, type: "non-tensor", shape: [] };
}

/**
 * Create a session for one graph. Throws {@linkcode InputError} when the bytes
 * are not a graph onnxruntime can load.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createSession } from "./backend.ts";
 * await assert.rejects(createSession(new Uint8Array(8), { backend: "wasm" }, "net.onnx"), /net.onnx is not a valid ONNX graph/);
 * ```
 */
export async function createSession(
  bytes: Uint8Array,
  opts: SessionOptions,
  label = "graph",
): Promise<GraphSession> {
  if (opts.backend === "native") {
    // Imported only here, so the sandboxed backends never load the addon.
    const { createNativeSession } = await import("./backend_native.ts");
    return createNativeSession(bytes, opts, label);
  }
  const ort = await loadOrt(opts.backend);
  let session: OrtTypes.InferenceSession;
  // The module starts at the first session: its thread count and memory are
  // set then, once for the process.
  if (opts.backend === "wasm" && !threadsStarted) {
    ort.env.wasm.numThreads = wasmThreads();
  }
  const threaded = opts.backend === "wasm" && !threadsStarted &&
    ort.env.wasm.numThreads! > 1;
  try {
    const create = () =>
      ort.InferenceSession.create(bytes, {
        executionProviders: [opts.backend],
        graphOptimizationLevel: opts.disableOptimizations ? "disabled" : "all",
        // onnxruntime-web turns both off unless asked; with them a call
        // reuses its buffers instead of allocating each intermediate (the
        // demo's batch-1 net call: about 40% less time). Outputs are equal.
        enableCpuMemArena: true,
        enableMemPattern: opts.backend === "wasm",
        // Node-placement notices are not errors; keep stderr to our one-line messages.
        logSeverityLevel: 3,
      });
    session = threaded ? await withLargeMemory(create) : await create();
    if (opts.backend === "wasm") threadsStarted ||= ort.env.wasm.numThreads!;
  } catch (e) {
    const denied = /Requires read access to "([^"]+)"/.exec(String(e));
    if (denied) {
      throw new InputError(
        `onnxruntime-web cannot read ${denied[1]}; run with --allow-read=${
          denied[1]
        }`,
      );
    }
    if (opts.backend === "webgpu" && /adapter|webgpu/i.test(String(e))) {
      throw new InputError(
        `WebGPU is not available here (${
          firstLine(e)
        }); use --backend wasm, or install a Vulkan driver (Debian: mesa-vulkan-drivers)`,
      );
    }
    throw invalidGraph(label, e);
  }
  return wrapSession(session, ort.Tensor);
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split("\n")[0].slice(0, 200);
}
