/**
 * Load and verify a model bundle: `model.json` plus its ONNX graphs.
 *
 * @module
 */
import { join } from "node:path";
import {
  type BackendName,
  createSession,
  type GraphSession,
  type ValueInfo,
} from "./backend.ts";
import { InputError } from "../errors.ts";
import { sha256Hex } from "../io/atomic.ts";
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
  /** The backend the sessions run on. */
  backend: BackendName;
  /** Sessions by graph role (`embed`, `net` | `L_net`/`H_net`, `head`). */
  sessions: Record<string, GraphSession>;
  /** Release every session. */
  release(): Promise<void>;
}

/** Options for {@linkcode loadBundle}. */
export interface LoadBundleOptions {
  /** Execution backend; `wasm` when omitted. */
  backend?: BackendName;
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
  const path = join(dir, "model.json");
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new InputError(
        `no model.json in ${dir}; pass --model with a bundle folder (see references/v0-spec.md §1)`,
      );
    }
    throw e;
  }
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
  const backend = opts.backend ?? "wasm";
  const { manifest, sha256 } = await readManifest(dir);
  const sessions: Record<string, GraphSession> = {};
  const release = async () => {
    for (const s of Object.values(sessions)) await s.release();
  };
  try {
    for (const role of GRAPH_ROLES[manifest.family]) {
      const ref = manifest.graphs[role];
      const path = join(dir, ref.file);
      let bytes: Uint8Array;
      try {
        bytes = await Deno.readFile(path);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) {
          throw new InputError(
            `graph "${role}" is missing: ${path}; restore the file or re-export the bundle`,
          );
        }
        throw e;
      }
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
