/**
 * The opt-in native backend: the same ONNX graphs on `onnxruntime-node`
 * (onnxruntime's C++ CPU execution provider, multithreaded, loaded as a
 * Node-API addon). It is for trusted workstations: loading a native library
 * needs `--allow-ffi`, which lifts Deno's sandbox. WASM stays the default and
 * the sandboxed path. {@linkcode ./backend.ts} imports this module only when
 * `--backend native` is asked for, so the WASM path never loads it.
 *
 * @module
 */
import type * as OrtNodeTypes from "npm:onnxruntime-node@1.30.0";
import { argvTooLong } from "./argv.ts";
import {
  type GraphSession,
  invalidGraph,
  type SessionOptions,
  wrapSession,
} from "./graph_session.ts";
import { InputError, OptionError } from "../errors.ts";

type OrtNode = typeof OrtNodeTypes;
let ortNode: Promise<OrtNode> | null = null;
let intraOpThreads = 0;

/**
 * Threads per native session for sessions created after the call; 0 (the
 * default) lets onnxruntime pick one per physical core. The thread count
 * does not change outputs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { setNativeThreads } from "./backend_native.ts";
 * setNativeThreads(1);
 * setNativeThreads(0);
 * assert.throws(() => setNativeThreads(-1), /native threads must be a whole number/);
 * ```
 */
export function setNativeThreads(n: number): void {
  if (!Number.isInteger(n) || n < 0) {
    throw new InputError(
      `native threads must be a whole number >= 0, got ${n}`,
    );
  }
  intraOpThreads = n;
}

/** The message when `--allow-ffi` is missing; `{backend}` names the option. */
const FFI_MESSAGE =
  "{backend} native loads onnxruntime's native library (npm:onnxruntime-node) and needs Deno's --allow-ffi, " +
  "which lifts the sandbox; run it only on a trusted workstation, or use {backend} wasm (what {backend} auto picks without --allow-ffi)";

/**
 * Throw {@linkcode InputError} unless `--allow-ffi` is granted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkFfi } from "./backend_native.ts";
 * await assert.doesNotReject(checkFfi()); // doc tests run with every permission
 * ```
 */
export async function checkFfi(): Promise<void> {
  const st = await Deno.permissions.query({ name: "ffi" });
  if (st.state !== "granted") throw new OptionError("backend", FFI_MESSAGE);
}

/**
 * onnxruntime's native library writes a device id and a telemetry database
 * under ~/.cache/Microsoft/DeveloperTools/.onnxruntime (or $XDG_CACHE_HOME)
 * unless ORT_DISABLE_TELEMETRY is set when it loads. The `deno task` lines
 * set it; here it is set too where env access is granted (nothing is asked).
 */
async function quietTelemetry(): Promise<void> {
  const desc = { name: "env", variable: "ORT_DISABLE_TELEMETRY" } as const;
  if ((await Deno.permissions.query(desc)).state === "granted") {
    Deno.env.set("ORT_DISABLE_TELEMETRY", "1");
  }
}

/**
 * Load onnxruntime-node once (after the `--allow-ffi` check).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadOrtNode } from "./backend_native.ts";
 * const ort = await loadOrtNode();
 * assert.equal(typeof ort.InferenceSession.create, "function");
 * ```
 */
export function loadOrtNode(): Promise<OrtNode> {
  const long = argvTooLong(Deno.args);
  if (long) return Promise.reject(new InputError(long));
  if (!ortNode) {
    ortNode = checkFfi().then(quietTelemetry).then(() =>
      import("npm:onnxruntime-node@1.30.0")
    ).then(
      (mod) =>
        ((mod as unknown as { default?: OrtNode }).default ?? mod) as OrtNode,
    );
    ortNode.catch(() => {
      ortNode = null;
    });
  }
  return ortNode;
}

/**
 * Create a native session for one graph; the same contract as
 * `createSession` in `backend.ts`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNativeSession } from "./backend_native.ts";
 * const net = new URL("../../references/models/sudoku4-trm/net.onnx", import.meta.url);
 * const s = await createNativeSession(await Deno.readFile(net), { backend: "native" });
 * assert.deepEqual(s.outputs.map((v) => v.name), ["hidden_out"]);
 * await s.release();
 * ```
 */
export async function createNativeSession(
  bytes: Uint8Array,
  opts: SessionOptions,
  label = "graph",
): Promise<GraphSession> {
  const ort = await loadOrtNode();
  let session: OrtNodeTypes.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, {
      executionProviders: ["cpu"],
      ...(intraOpThreads ? { intraOpNumThreads: intraOpThreads } : {}),
      graphOptimizationLevel: opts.disableOptimizations ? "disabled" : "all",
      logSeverityLevel: 3,
      // Idle threads sleep instead of spinning: on a machine shared with
      // other work, spinning threads fight it for the cores (the demo's
      // batch-64 net call on 2 threads: 6.4 ms spinning, 4.1 ms not, 3.8 ms
      // on 1 thread, with the machine's 2 cores busy elsewhere).
      extra: { session: { intra_op: { allow_spinning: "0" } } },
    });
  } catch (e) {
    throw invalidGraph(label, e);
  }
  return wrapSession(session, ort.Tensor);
}
