/**
 * onnxruntime sessions behind one small interface, so the runner does not
 * care which execution provider runs the graphs.
 *
 * @module
 */
import type * as OrtTypes from "npm:onnxruntime-web@1.30.0";
import { InputError, OptionError } from "../errors.ts";
import { backendName } from "../schema/common.ts";
import type { BackendName } from "../schema/mod.ts";
import {
  firstLine,
  type GraphSession,
  invalidGraph,
  type SessionOptions,
  wrapSession,
} from "./graph_session.ts";

export type { BackendName };

export type {
  GraphSession,
  HostTensor,
  SessionOptions,
  ValueInfo,
} from "./graph_session.ts";

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
  ...backendName.options,
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
      throw new OptionError(
        "backend",
        `WebGPU is not available here (${
          firstLine(e)
        }); use {backend} wasm, or install a Vulkan driver (Debian: mesa-vulkan-drivers)`,
      );
    }
    throw invalidGraph(label, e);
  }
  return wrapSession(session, ort.Tensor);
}
