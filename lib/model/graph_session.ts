/**
 * The one small interface every backend's sessions implement, and the
 * wrapper that adapts an onnxruntime session (web or node) to it. Both
 * backend.ts (WASM, WebGPU) and backend_native.ts build on this module, so
 * neither imports the other at load time.
 *
 * @module
 */
import type * as OrtTypes from "npm:onnxruntime-web@1.30.0";
import { InputError } from "../errors.ts";
import type { BackendName } from "../schema/mod.ts";

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

/** Options for creating a session (`createSession` in backend.ts). */
export interface SessionOptions {
  /** Which execution provider to use. */
  backend: BackendName;
  /** Turn graph optimizations off (needed for float64 graphs: no fused kernels). */
  disableOptimizations?: boolean;
}

/**
 * Wrap an onnxruntime session (web or node: both implement
 * onnxruntime-common's interface) as a {@linkcode GraphSession}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadOrt } from "./backend.ts";
 * import { wrapSession } from "./graph_session.ts";
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
 * import { invalidGraph } from "./graph_session.ts";
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
 * The first line of an error's message, at most 200 characters: onnxruntime's
 * errors run to many lines, and trminterp's messages are one line.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { firstLine } from "./graph_session.ts";
 * assert.equal(firstLine(new Error("bad graph\nat node 3")), "bad graph");
 * ```
 */
export function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split("\n")[0].slice(0, 200);
}
