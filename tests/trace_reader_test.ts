import assert from "node:assert/strict";
import { join } from "node:path";
import { TraceDataset } from "../lib/trace/dataset.ts";
import { sha256Hex } from "../lib/io/atomic.ts";
import type { Latent } from "../lib/model/rollout.ts";
import {
  cli,
  FIXTURES,
  PY,
  PYTHON,
  python,
  qhaltBundle,
  run,
  withTempDir,
  writePuzzles,
} from "./helpers.ts";

const TINY = join(FIXTURES, "tiny_trm");

// Hand-edited payloads reach into any field.
// deno-lint-ignore no-explicit-any
type Json = any;

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

/** What load_trace says about `target`: "loaded N" or "refused: <message>", within 30 s. */
async function pythonVerdict(target: string): Promise<string> {
  const p = await run("timeout", [
    "30",
    PYTHON,
    "-c",
    `import sys
sys.path.insert(0, sys.argv[1])
from trace_reader import load_trace
try:
    print("loaded", load_trace(sys.argv[2], latent="z_H")[0].shape[0])
except ValueError as e:
    print("refused:", e)`,
    PY,
    target,
  ]);
  assert.notEqual(p.code, 124, `${target}: trace_reader.py hung`);
  assert.equal(p.code, 0, p.stderr);
  return p.stdout.trim();
}

Deno.test("trace_reader.py makes the CLI's checks: no FIFO waited on, no link followed, swapped blocks, an endless header line and NaN states refused", async () => {
  await withTempDir(async (tmp) => {
    const base = join(tmp, "base");
    const p = await cli([
      "trace",
      "--run-dir",
      base,
      "--model",
      TINY,
      "--inputs",
      join(TINY, "puzzles.jsonl"),
    ]);
    assert.equal(p.code, 0, p.stderr);
    assert.match(await pythonVerdict(base), /^loaded \d+$/);
    let n = 0;
    const copy = async () => {
      const dir = join(tmp, `case${n++}`);
      await Deno.mkdir(dir);
      for (const f of ["trace.jsonl", "states.npy"]) {
        await Deno.copyFile(join(base, f), join(dir, f));
      }
      return dir;
    };
    const header = async (dir: string, edit: (h: Json) => void) => {
      const path = join(dir, "trace.jsonl");
      const lines = (await Deno.readTextFile(path)).split("\n");
      const h = JSON.parse(lines[0]);
      edit(h);
      lines[0] = JSON.stringify(h);
      await Deno.writeTextFile(path, lines.join("\n"));
    };
    const cases: [string, (dir: string) => Promise<string>, RegExp][] = [
      ["states.npy is a FIFO", async (d) => {
        await Deno.remove(join(d, "states.npy"));
        assert.equal((await run("mkfifo", [join(d, "states.npy")])).code, 0);
        return d;
      }, /states\.npy is not a regular file/],
      ["trace.jsonl is a FIFO", async (d) => {
        await Deno.remove(join(d, "trace.jsonl"));
        assert.equal((await run("mkfifo", [join(d, "trace.jsonl")])).code, 0);
        return d;
      }, /trace\.jsonl is not a regular file/],
      ["two blocks' rows swapped in the header", async (d) => {
        await header(d, (h) => {
          const zh = h.blocks.filter((b: Json) => b.latent === "z_H");
          [zh[0].row, zh[1].row] = [zh[1].row, zh[0].row];
        });
        return d;
      }, /header block s0\.h0\.H .* does not follow the blocks before it/],
      [
        "a block moved past the schedule",
        async (d) => {
          await header(d, (h) => {
            h.blocks[0].address = `s${h.model.schedule.halt_max_steps}.h0.H`;
          });
          return d;
        },
        /does not follow the blocks before it at row 0 as a step of the schedule/,
      ],
      ["a 20 MB header line", async (d) => {
        await header(d, (h) => {
          h.padding = "x".repeat(20 * 2 ** 20);
        });
        return d;
      }, /the header line is longer than 16777216 bytes/],
      ["the run dir is a link", async (d) => {
        await Deno.symlink(d, `${d}-link`);
        return `${d}-link`;
      }, /-link is a symbolic link/],
      ["trace.jsonl is a link", async (d) => {
        await Deno.rename(join(d, "trace.jsonl"), join(tmp, "elsewhere.jsonl"));
        await Deno.symlink(
          join(tmp, "elsewhere.jsonl"),
          join(d, "trace.jsonl"),
        );
        return d;
      }, /trace\.jsonl is a symbolic link/],
      ["states.npy is a link", async (d) => {
        await Deno.rename(join(d, "states.npy"), join(tmp, "elsewhere.npy"));
        await Deno.symlink(join(tmp, "elsewhere.npy"), join(d, "states.npy"));
        return d;
      }, /states\.npy is a symbolic link/],
      ["NaN states, header re-pinned", async (d) => {
        const f = join(d, "states.npy");
        const b = await Deno.readFile(f);
        const h0 = JSON.parse(
          (await Deno.readTextFile(join(d, "trace.jsonl"))).split("\n")[0],
        );
        const data = b.length - h0.rows * h0.state_dim * 4; // row 0: z_H at the first step
        new DataView(b.buffer).setFloat32(data + 8, NaN, true);
        await Deno.writeFile(f, b);
        await header(d, (h) => h.states_npy.sha256 = sha256Hex(b));
        return d;
      }, /are not finite; the model diverged or the trace is corrupt/],
    ];
    for (const [what, make, pattern] of cases) {
      const verdict = await pythonVerdict(await make(await copy()));
      console.log(`  ${what}: ${verdict.slice(0, 140)}`);
      assert.match(verdict, /^refused: /, what);
      assert.match(verdict, pattern, what);
    }
  });
});
