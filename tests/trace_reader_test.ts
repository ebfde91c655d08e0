import assert from "node:assert/strict";
import { join } from "node:path";
import { TraceDataset } from "../lib/trace/dataset.ts";
import { sha256Hex } from "../lib/io/atomic.ts";
import type { Latent } from "../lib/model/rollout.ts";
import {
  cli,
  FIXTURES,
  PY,
  python,
  qhaltBundle,
  withTempDir,
  writePuzzles,
} from "./helpers.ts";

const TINY = join(FIXTURES, "tiny_trm");

/** sha256 of the states (as float32) and of the row table, as trace_reader.py returns them. */
async function pythonRead(run: string, latent: Latent, steps: string) {
  const out = await python([
    "-c",
    `import sys, hashlib, json, numpy as np
sys.path.insert(0, sys.argv[1])
from trace_reader import load_trace
states, rows = load_trace(sys.argv[2], latent=sys.argv[3], steps=sys.argv[4])
table = "".join(f"{r['example']}|{r['address']}|{r['t']}|{r['position']}\\n" for r in rows)
print(json.dumps({"n": int(states.shape[0]), "dtype": str(states.dtype),
  "states": hashlib.sha256(np.ascontiguousarray(states, dtype="<f4").tobytes()).hexdigest(),
  "rows": hashlib.sha256(table.encode()).hexdigest()}))`,
    PY,
    run,
    latent,
    steps,
  ]);
  return JSON.parse(out);
}

async function denoRead(run: string, latent: Latent, steps: string) {
  const ds = await TraceDataset.load(run, { latents: [latent], steps });
  let table = "";
  for (let i = 0; i < ds.shape[0]; i++) {
    const r = ds.row(i);
    table += `${r.example}|${r.address}|${r.t}|${r.position}\n`;
  }
  const s = ds.states;
  return {
    n: ds.shape[0],
    states: sha256Hex(new Uint8Array(s.buffer, s.byteOffset, s.byteLength)),
    rows: sha256Hex(table),
  };
}

Deno.test("trace_reader.py: load_trace equals TraceDataset (states and row table) for npy, inline, float16, shards and q_halt", async () => {
  await withTempDir(async (tmp) => {
    // The tiny fixture with halting on, so blocks hold different examples.
    const qhalt = await qhaltBundle(TINY, join(tmp, "qhalt"));
    const inputs = join(tmp, "p.jsonl");
    await writePuzzles(inputs, 14, 5);
    const trace = async (run: string, model: string, extra: string[] = []) => {
      const p = await cli([
        "trace",
        "--run-dir",
        run,
        "--model",
        model,
        "--inputs",
        inputs,
        "--batch",
        "4",
        ...extra,
      ]);
      assert.equal(p.code, 0, p.stderr);
    };
    const runs: Record<string, string> = {};
    for (
      const [name, model, extra] of [
        ["npy", TINY, []],
        ["inline", TINY, ["--states", "inline"]],
        ["float16", TINY, ["--states-dtype", "float16"]],
        ["q_halt", qhalt, []],
      ] as [string, string, string[]][]
    ) {
      runs[name] = join(tmp, name);
      await trace(runs[name], model, extra);
    }
    runs["q_halt, 3 shards"] = join(tmp, "qshards");
    for (let i = 0; i < 3; i++) {
      await trace(runs["q_halt, 3 shards"], qhalt, ["--shard", `${i}/3`]);
    }
    for (const [name, run] of Object.entries(runs)) {
      for (
        const [latent, steps] of [["z_H", "s*.h1.H"], ["z_L", "all"]] as const
      ) {
        const [py, ts] = [
          await pythonRead(run, latent, steps),
          await denoRead(run, latent, steps),
        ];
        console.log(
          `  ${name.padEnd(16)} ${latent} ${
            steps.padEnd(7)
          }: ${py.n} rows (${py.dtype}), states ${
            py.states.slice(0, 12)
          }, rows ${py.rows.slice(0, 12)}`,
        );
        assert.equal(py.n, ts.n, `${name} ${latent}`);
        assert.equal(py.states, ts.states, `${name} ${latent} states`);
        assert.equal(py.rows, ts.rows, `${name} ${latent} row table`);
      }
    }
    // A changed states.npy is refused unless verify=False.
    const npyPath = join(runs.npy, "states.npy");
    const bytes = await Deno.readFile(npyPath);
    bytes[bytes.length - 1] ^= 1;
    await Deno.writeFile(npyPath, bytes);
    const out = await python([
      "-c",
      `import sys
sys.path.insert(0, sys.argv[1])
from trace_reader import load_trace
try:
    load_trace(sys.argv[2])
    print("loaded")
except ValueError as e:
    print("refused:", e)
print(load_trace(sys.argv[2], verify=False)[0].shape)`,
      PY,
      runs.npy,
    ]);
    assert.match(
      out,
      /^refused: .*is not the states\.npy its trace\.jsonl pins/m,
    );
    assert.match(out, /^\(\d+, 32\)$/m);
  });
});
