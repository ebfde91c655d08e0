/**
 * onnxruntime sessions behind one small interface, so the runner does not
 * care which execution provider runs the graphs.
 *
 * @module
 */
import type * as OrtTypes from "npm:onnxruntime-web@1.30.0";
import { InputError } from "../errors.ts";

/**
 * Names of the execution backends. `wasm` (the default) and `webgpu` run in
 * Deno's sandbox; `native` (onnxruntime-node, see `backend_native.ts`) loads a
 * native library and needs `--allow-ffi`: use it on trusted workstations only.
 */
export type BackendName = "wasm" | "webgpu" | "native";

/** The backends trminterp accepts for `--backend`. */
export const BACKENDS: readonly BackendName[] = ["wasm", "webgpu", "native"];

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
          // One thread: multithreaded WASM is slower at small batches, and it
          // needs workers that a sandboxed run may not be allowed to start.
          ort.env.wasm.numThreads = 1;
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
        const data = await t.getData(true);
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
  try {
    session = await ort.InferenceSession.create(bytes, {
      executionProviders: [opts.backend],
      graphOptimizationLevel: opts.disableOptimizations ? "disabled" : "all",
      // Node-placement notices are not errors; keep stderr to our one-line messages.
      logSeverityLevel: 3,
    });
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
