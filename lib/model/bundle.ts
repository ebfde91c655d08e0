/**
 * Load and verify a model bundle: `model.json` plus its ONNX graphs.
 *
 * @module
 */
import {
  type BackendChoice,
  type BackendName,
  createSession,
  type GraphSession,
  pickWasmThreads,
  resolveBackend,
  type ValueInfo,
} from "./backend.ts";
import { InputError, OptionError } from "../errors.ts";
import { sha256Hex } from "../io/atomic.ts";
import { checkRoot, confinedFile } from "../io/paths.ts";
import {
  formatZodError,
  GRAPH_ROLES,
  type ModelManifest,
  schemas,
} from "../schema/mod.ts";

/** A loaded, verified bundle with one session per graph role. */
export interface Bundle {
  /** The bundle folder. */
  dir: string;
  /** The validated manifest. */
  manifest: ModelManifest;
  /** sha256 of `model.json` (which pins every graph's sha256). */
  sha256: string;
  /** The backend the sessions run on (`auto` resolved). */
  backend: BackendName;
  /** Sessions by graph role (`embed`, `net` | `L_net`/`H_net`, `head`). */
  sessions: Record<string, GraphSession>;
  /** Release every session. */
  release(): Promise<void>;
}

/** Options for {@linkcode loadBundle}. */
export interface LoadBundleOptions {
  /** Execution backend; `wasm` when omitted, `auto` picks one (see `resolveBackend`). */
  backend?: BackendChoice;
}

/**
 * Read and validate `model.json` without loading the graphs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readManifest } from "./bundle.ts";
 * const { manifest, sha256 } = await readManifest(new URL("../../references/models/sudoku4-trm", import.meta.url).pathname);
 * assert.equal(manifest.family, "trm");
 * assert.match(sha256, /^[0-9a-f]{64}$/);
 * ```
 */
export async function readManifest(
  dir: string,
): Promise<{ manifest: ModelManifest; sha256: string }> {
  const kind = await checkRoot(dir, "model bundle");
  if (kind === "file") throw await notAFolder(dir);
  const { path } = await confinedFile(dir, "model.json", {
    maxBytes: MAX_MANIFEST_BYTES,
    missing: () =>
      `no model.json in ${dir}: it is not a model bundle; pass a bundle folder (see references/v0-spec.md §1)`,
  });
  const bytes = await Deno.readFile(path);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new InputError(
      `${path} is not valid JSON; re-export the bundle with references/python/export.py`,
    );
  }
  if (json && typeof json === "object" && "family" in json) {
    const family = (json as { family: unknown }).family;
    if (family !== "trm" && family !== "hrm") {
      throw new InputError(
        `${path}: unknown model family ${
          JSON.stringify(family)
        }; expected "trm" or "hrm"`,
      );
    }
  }
  const parsed = schemas.ModelManifest.safeParse(json);
  if (!parsed.success) {
    throw new InputError(`${path}: ${formatZodError(parsed.error)}`);
  }
  return { manifest: parsed.data, sha256: sha256Hex(bytes) };
}

/**
 * Load a bundle: validate `model.json`, verify each graph's sha256, open the
 * sessions and check their input and output signatures against the manifest.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadBundle } from "./bundle.ts";
 * const bundle = await loadBundle(new URL("../../references/models/sudoku4-trm", import.meta.url).pathname);
 * assert.deepEqual(Object.keys(bundle.sessions).sort(), ["embed", "head", "net"]);
 * await bundle.release();
 * await assert.rejects(loadBundle("/nonexistent"), /no model.json in \/nonexistent/);
 * ```
 */
export async function loadBundle(
  dir: string,
  opts: LoadBundleOptions = {},
): Promise<Bundle> {
  const { manifest, sha256 } = await readManifest(dir);
  const backend = await resolveBackend(opts.backend ?? "wasm");
  if (backend === "wasm") {
    pickWasmThreads(
      manifest.puzzle_emb_len + manifest.seq_len,
      manifest.hidden_size,
    );
  }
  const sessions: Record<string, GraphSession> = {};
  const release = async () => {
    for (const s of Object.values(sessions)) await s.release();
  };
  try {
    for (const role of GRAPH_ROLES[manifest.family]) {
      const ref = manifest.graphs[role];
      // The schema keeps `file` a plain name; confinedFile refuses links and
      // anything but a regular file (a device would be read for ever).
      const { path } = await confinedFile(dir, ref.file, {
        maxBytes: MAX_GRAPH_BYTES,
        missing: (p) =>
          `graph "${role}" is missing: ${p}; restore the file or re-export the bundle`,
      });
      const bytes = await Deno.readFile(path);
      const actual = sha256Hex(bytes);
      if (actual !== ref.sha256) {
        throw new InputError(
          `graph "${role}" (${path}) has sha256 ${
            actual.slice(0, 12)
          }…, but model.json pins ${
            ref.sha256.slice(0, 12)
          }…; the file is corrupt or from another export`,
        );
      }
      sessions[role] = await createSession(bytes, {
        backend,
        disableOptimizations: manifest.dtype === "float64",
      }, `graph "${role}" (${path})`);
      checkSignature(role, sessions[role], manifest);
    }
  } catch (e) {
    await release();
    throw e;
  }
  return { dir, manifest, sha256, backend, sessions, release };
}

/** model.json is a few kilobytes; a much larger one is not a manifest. */
const MAX_MANIFEST_BYTES = 64 * 2 ** 20;
/** protobuf, and so a single-file ONNX graph, stops at 2 GiB. */
const MAX_GRAPH_BYTES = 2 ** 31;

/** The error for a file passed where a bundle folder belongs. */
async function notAFolder(path: string): Promise<InputError> {
  let head = new Uint8Array(0);
  try {
    using f = await Deno.open(path, { read: true });
    head = new Uint8Array(4);
    const n = await f.read(head);
    head = head.subarray(0, n ?? 0);
  } catch {
    // The plain message below still applies.
  }
  // torch.save writes a zip (PK\x03\x04) or, before torch 1.6, a pickle (0x80).
  const zip = head[0] === 0x50 && head[1] === 0x4b;
  const checkpoint = zip || head[0] === 0x80 ||
    /\.(pt|pth|ckpt|bin|safetensors)$/.test(path) || /step_\d+$/.test(path);
  return new OptionError(
    "model",
    checkpoint
      ? `{model} ${path} is a checkpoint file, not a bundle folder; export it to a bundle with references/python/export.py (see references/python/README.md), then pass the folder`
      : `{model} ${path} is a file; pass the bundle folder that holds model.json (see references/v0-spec.md §1)`,
  );
}

type Expect = { name: string; type: string; shape: (number | "B")[] };

function expectedSignature(
  role: string,
  m: ModelManifest,
): { inputs: Expect[]; outputs: Expect[] } {
  const T = m.puzzle_emb_len + m.seq_len, D = m.hidden_size, f = m.dtype;
  const state = (name: string): Expect => ({
    name,
    type: f,
    shape: ["B", T, D],
  });
  if (role === "embed") {
    const inputs: Expect[] = [{
      name: "tokens",
      type: "int64",
      shape: ["B", m.seq_len],
    }];
    if (m.puzzle_emb_len > 0) {
      inputs.push({ name: "puzzle_identifiers", type: "int64", shape: ["B"] });
    }
    return { inputs, outputs: [state("x")] };
  }
  if (role === "head") {
    return {
      inputs: [state("z_H")],
      outputs: [
        { name: "logits", type: f, shape: ["B", m.seq_len, m.vocab_size] },
        { name: "q_halt", type: f, shape: ["B"] },
      ],
    };
  }
  return {
    inputs: [state("hidden"), state("injection")],
    outputs: [state("hidden_out")],
  };
}

function checkSignature(role: string, s: GraphSession, m: ModelManifest): void {
  const want = expectedSignature(role, m);
  const check = (
    kind: string,
    have: readonly ValueInfo[],
    expect: Expect[],
  ) => {
    const names = have.map((v) => v.name);
    for (const e of expect) {
      const v = have.find((x) => x.name === e.name);
      if (!v) {
        throw new InputError(
          `graph "${role}" has no ${kind} "${e.name}" (it has ${
            names.join(", ")
          }); see references/v0-spec.md §1.2`,
        );
      }
      if (v.type !== e.type) {
        throw new InputError(
          `graph "${role}" ${kind} "${e.name}" is ${v.type}, expected ${e.type}`,
        );
      }
      const dims = v.shape;
      const fmt = (d: readonly (number | string)[]) => `[${d.join(",")}]`;
      const ok = dims.length === e.shape.length &&
        e.shape.every((d, i) =>
          d === "B" ? true : typeof dims[i] !== "number" || dims[i] === d
        );
      if (!ok) {
        throw new InputError(
          `graph "${role}" ${kind} "${e.name}" has shape ${
            fmt(dims)
          }, but model.json implies ${fmt(e.shape)}`,
        );
      }
    }
    if (have.length !== expect.length) {
      const extra = names.filter((n) => !expect.some((e) => e.name === n));
      throw new InputError(
        `graph "${role}" has unexpected ${kind}s ${
          extra.join(", ")
        }; see references/v0-spec.md §1.2`,
      );
    }
  };
  check("input", s.inputs, want.inputs);
  check("output", s.outputs, want.outputs);
}
