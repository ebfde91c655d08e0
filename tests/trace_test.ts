import assert from "node:assert/strict";
import { join } from "node:path";
import { TraceDataset } from "../lib/trace/dataset.ts";
import { allAddresses, formatAddress } from "../lib/model/address.ts";
import { sha256Hex } from "../lib/io/atomic.ts";
import { InputError } from "../lib/errors.ts";
import { loadBundle } from "../lib/model/bundle.ts";
import { rollout } from "../lib/model/rollout.ts";
import {
  cli,
  fileSha,
  FIXTURES,
  listDir,
  python,
  qhaltBundle,
  run as runCmd,
  SYSTEM,
  tmpfsAvailable,
  withTempDir,
  writePuzzles,
} from "./helpers.ts";

const TINY = join(FIXTURES, "tiny_trm");

function traceArgs(
  runDir: string,
  inputs: string,
  extra: string[] = [],
): string[] {
  return [
    "trace",
    "--run-dir",
    runDir,
    "--model",
    TINY,
    "--inputs",
    inputs,
    ...extra,
  ];
}

Deno.test("trace: same seed gives byte-identical outputs; another seed samples other examples", async () => {
  await withTempDir(async (tmp) => {
    const inputs = join(tmp, "p.jsonl");
    await writePuzzles(inputs, 40);
    const hashes: Record<string, string[]> = {};
    for (const [name, seed] of [["a", "0"], ["b", "0"], ["c", "1"]]) {
      const p = await cli(
        traceArgs(join(tmp, name), inputs, [
          "--seed",
          seed,
          "--limit",
          "10",
          "--batch",
          "4",
        ]),
      );
      assert.equal(p.code, 0, p.stderr);
      hashes[name] = [
        await fileSha(join(tmp, name, "trace.jsonl")),
        await fileSha(join(tmp, name, "states.npy")),
      ];
    }
    console.log(
      `  seed 0 run 1: trace ${hashes.a[0].slice(0, 16)} states ${
        hashes.a[1].slice(0, 16)
      }`,
    );
    console.log(
      `  seed 0 run 2: trace ${hashes.b[0].slice(0, 16)} states ${
        hashes.b[1].slice(0, 16)
      }`,
    );
    console.log(
      `  seed 1      : trace ${hashes.c[0].slice(0, 16)} states ${
        hashes.c[1].slice(0, 16)
      }`,
    );
    assert.deepEqual(hashes.a, hashes.b);
    assert.notEqual(hashes.a[0], hashes.c[0]);
    const ids = async (run: string) =>
      (await TraceDataset.load(join(tmp, run))).meta.outcomes.map((o) =>
        o.example
      );
    const [a, c] = [await ids("a"), await ids("c")];
    assert.equal(a.length, 10);
    assert.notDeepEqual(a, c);
  });
});

Deno.test("trace: the file layout, record counts and the run dir's .gitignore", async () => {
  await withTempDir(async (tmp) => {
    const run = join(tmp, "run");
    const p = await cli(traceArgs(run, join(TINY, "puzzles.jsonl")));
    assert.equal(p.code, 0, p.stderr);
    assert.deepEqual(await listDir(run), [
      ".gitignore",
      ".trminterp-run",
      "states.npy",
      "trace.jsonl",
    ]);
    assert.equal(await Deno.readTextFile(join(run, ".gitignore")), "*\n");
    const lines = (await Deno.readTextFile(join(run, "trace.jsonl"))).trim()
      .split("\n").map((l) => JSON.parse(l));
    const header = lines[0];
    assert.equal(header.kind, "header");
    const sched = header.model.schedule;
    const nSteps = allAddresses(sched).length;
    const n = header.inputs.selected;
    const count = (k: string) => lines.filter((l) => l.kind === k).length;
    assert.equal(count("step"), n * nSteps);
    assert.equal(count("readout"), n * sched.halt_max_steps * sched.H_cycles);
    assert.equal(count("example"), n);
    assert.equal(header.rows, n * nSteps * 18);
    assert.deepEqual(header.states_npy.shape, [header.rows, 32]);
    assert.equal(
      header.states_npy.sha256,
      await fileSha(join(run, "states.npy")),
    );
    // The row layout: z_H blocks, then z_L blocks, each in execution order,
    // tiling the rows; the step records point into their block.
    assert.deepEqual(
      header.blocks.map((b: { address: string }) => b.address),
      [
        ...allAddresses(sched).filter((a) => a.l === "H"),
        ...allAddresses(sched).filter((a) => a.l !== "H"),
      ].map(formatAddress),
    );
    let row = 0;
    for (const b of header.blocks) {
      assert.equal(b.row, row);
      assert.equal(b.rows, n * 18);
      row += b.rows;
    }
    const blockOf = new Map(
      header.blocks.map((b: { address: string }) => [b.address, b]),
    );
    const steps = lines.filter((l) => l.kind === "step");
    for (const st of steps) {
      const b = blockOf.get(st.address) as { row: number; rows: number };
      assert.ok(st.row >= b.row && st.row + st.rows <= b.row + b.rows);
      assert.equal(st.data, undefined);
    }
    assert.equal(new Set(steps.map((st) => st.row)).size, steps.length);
    // Readouts inside a supervision step are marked; the final one agrees with the example record.
    for (const ex of lines.filter((l) => l.kind === "example")) {
      const rs = lines.filter((l) =>
        l.kind === "readout" && l.example === ex.example
      );
      assert.equal(rs.filter((r) => r.final).length, sched.halt_max_steps);
      const last = rs.filter((r) => r.final).at(-1);
      assert.deepEqual(last.pred, ex.pred);
      assert.equal(last.exact, ex.exact);
    }
    const noIgnore = await cli(
      traceArgs(join(tmp, "plain"), join(TINY, "puzzles.jsonl"), [
        "--no-gitignore",
      ]),
    );
    assert.equal(noIgnore.code, 0);
    assert.deepEqual(await listDir(join(tmp, "plain")), [
      ".trminterp-run",
      "states.npy",
      "trace.jsonl",
    ]);
  });
});

Deno.test("trace: --states npy and inline hold the same states, equal to numpy.load(states.npy); a changed states.npy is refused", async () => {
  await withTempDir(async (tmp) => {
    const run = join(tmp, "run"), inl = join(tmp, "inline");
    const inputs = join(TINY, "puzzles.jsonl");
    assert.equal((await cli(traceArgs(run, inputs))).code, 0);
    const p = await cli(traceArgs(inl, inputs, ["--states", "inline"]));
    assert.equal(p.code, 0, p.stderr);
    assert.deepEqual(await listDir(inl), [
      ".gitignore",
      ".trminterp-run",
      "trace.jsonl",
    ]);
    const npyDs = await TraceDataset.load(run);
    const inlineDs = await TraceDataset.load(join(inl, "trace.jsonl"));
    assert.equal(npyDs.meta.source, "states.npy");
    assert.equal(inlineDs.meta.source, "inline");
    assert.deepEqual(inlineDs.states, npyDs.states);
    assert.deepEqual(inlineDs.meta.t, npyDs.meta.t);
    assert.equal(inlineDs.meta.digest, npyDs.meta.digest);
    const out = await python([
      "-c",
      `import numpy as np, sys, hashlib
a = np.load(sys.argv[1])
print(a.dtype, a.shape[0], a.shape[1], hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest())`,
      join(run, "states.npy"),
    ]);
    const [dtype, n, d, sha] = out.trim().split(" ");
    assert.equal(dtype, "float32");
    assert.deepEqual(npyDs.shape, [Number(n), Number(d)]);
    const bytes = new Uint8Array(
      npyDs.states.buffer,
      npyDs.states.byteOffset,
      npyDs.states.byteLength,
    );
    assert.equal(sha256Hex(bytes), sha);
    // Filters by latent and by step selector.
    const zh = await TraceDataset.load(run, {
      latents: ["z_H"],
      steps: "s*.h1.H",
    });
    assert.equal(zh.shape[0], npyDs.meta.outcomes.length * 3 * 18);
    for (let i = 0; i < zh.shape[0]; i += 17) {
      assert.equal(zh.row(i).latent, "z_H");
      assert.match(zh.row(i).address, /^s\d\.h1\.H$/);
    }
    // A states.npy whose sha256 is not the header's is refused, not used.
    const npyBytes = await Deno.readFile(join(run, "states.npy"));
    npyBytes[npyBytes.length - 1] ^= 0x55;
    await Deno.writeFile(join(run, "states.npy"), npyBytes);
    await assert.rejects(
      TraceDataset.load(run),
      InputError,
      "is not the states.npy its trace.jsonl pins",
    );
    const fit = await cli(["sae", "fit", "--run-dir", run]);
    assert.equal(fit.code, 2, fit.stderr);
    assert.equal(fit.stderr.trim().split("\n").length, 1, fit.stderr);
    assert.match(fit.stderr, /is not the states\.npy its trace\.jsonl pins/);
  });
});

Deno.test("trace: --states-dtype float16 stores half the bytes; the states are the float32 ones rounded", async () => {
  await withTempDir(async (tmp) => {
    const inputs = join(TINY, "puzzles.jsonl");
    const f32 = join(tmp, "f32"), f16 = join(tmp, "f16");
    assert.equal((await cli(traceArgs(f32, inputs))).code, 0);
    const p = await cli(traceArgs(f16, inputs, ["--states-dtype", "float16"]));
    assert.equal(p.code, 0, p.stderr);
    const [a, b] = [await TraceDataset.load(f32), await TraceDataset.load(f16)];
    assert.equal(b.header.dtype, "float16");
    for (let i = 0; i < a.states.length; i++) {
      assert.equal(b.states[i], Math.f16round(a.states[i]));
    }
    assert.notEqual(a.meta.digest, b.meta.digest);
    const size = async (d: string) =>
      (await Deno.stat(join(d, "states.npy"))).size;
    assert.equal((await size(f16)) - 128, ((await size(f32)) - 128) / 2);
    const out = await python([
      "-c",
      `import numpy as np, sys; a = np.load(sys.argv[1]); print(a.dtype, a.shape)`,
      join(f16, "states.npy"),
    ]);
    assert.equal(out.trim(), `float16 (${a.shape[0]}, 32)`);
    const bad = await cli(
      traceArgs(join(tmp, "x"), inputs, ["--states-dtype", "bfloat16"]),
    );
    assert.equal(bad.code, 2);
    assert.match(
      bad.stderr,
      /--states-dtype must be float32 or float16, got "bfloat16"/,
    );
  });
});

Deno.test("trace: recording options select latents, steps and positions", async () => {
  await withTempDir(async (tmp) => {
    const run = join(tmp, "run");
    const p = await cli(
      traceArgs(run, join(TINY, "puzzles.jsonl"), [
        "--latents",
        "z_L",
        "--steps",
        "s0.*.*",
        "--positions",
        "puzzle",
      ]),
    );
    assert.equal(p.code, 0, p.stderr);
    const ds = await TraceDataset.load(run);
    // 4 examples x (2 H cycles x 2 z_L updates in s0) x 16 puzzle positions.
    assert.deepEqual(ds.shape, [4 * 4 * 16, 32]);
    assert.equal(ds.row(0).position, 2);
    assert.equal(ds.row(0).latent, "z_L");
  });
});

Deno.test("trace: the official dataset folder layout gives the same states as the JSONL", async () => {
  await withTempDir(async (tmp) => {
    const inputs = join(tmp, "p.jsonl");
    await writePuzzles(inputs, 6);
    const ds = join(tmp, "dataset", "test");
    await python([
      "-c",
      `import json, sys, os, numpy as np
rows = [json.loads(l) for l in open(sys.argv[1])]
out = sys.argv[2]; os.makedirs(out, exist_ok=True)
np.save(os.path.join(out, "all__inputs.npy"), np.array([r["tokens"] for r in rows], dtype=np.int32))
np.save(os.path.join(out, "all__labels.npy"), np.array([r["label"] for r in rows], dtype=np.int32))
np.save(os.path.join(out, "all__puzzle_identifiers.npy"), np.array([r["puzzle_identifier"] for r in rows], dtype=np.int32))
np.save(os.path.join(out, "all__puzzle_indices.npy"), np.arange(len(rows) + 1, dtype=np.int32))
np.save(os.path.join(out, "all__group_indices.npy"), np.arange(len(rows) + 1, dtype=np.int32))
json.dump({"pad_id": 0, "ignore_label_id": -100, "blank_identifier_id": 0, "vocab_size": 6, "seq_len": 16,
           "num_puzzle_identifiers": 3, "total_groups": len(rows), "mean_puzzle_examples": 1, "total_puzzles": len(rows),
           "sets": ["all"]}, open(os.path.join(out, "dataset.json"), "w"))`,
      inputs,
      ds,
    ]);
    assert.equal((await cli(traceArgs(join(tmp, "a"), inputs))).code, 0);
    const p = await cli(traceArgs(join(tmp, "b"), join(tmp, "dataset")));
    assert.equal(p.code, 0, p.stderr);
    assert.equal(
      await fileSha(join(tmp, "a", "states.npy")),
      await fileSha(join(tmp, "b", "states.npy")),
    );
    const header = JSON.parse(
      (await Deno.readTextFile(join(tmp, "b", "trace.jsonl"))).split("\n")[0],
    );
    assert.equal(header.inputs.format, "dataset_dir");
  });
});

const badInputs: [string, (path: string) => Promise<void>, RegExp][] = [
  [
    "a puzzle of the wrong length",
    (p) =>
      Deno.writeTextFile(
        p,
        JSON.stringify({ id: "x", tokens: [1, 2, 3], label: [1, 2, 3] }) + "\n",
      ),
    /has 3 tokens, but model tiny_trm takes seq_len 16/,
  ],
  [
    "a token outside the vocabulary",
    (p) =>
      Deno.writeTextFile(
        p,
        JSON.stringify({
          id: "x",
          tokens: Array(16).fill(9),
          label: Array(16).fill(2),
        }) + "\n",
      ),
    /tokens value 9 is outside the vocabulary 0\.\.5/,
  ],
  [
    "truncated JSONL",
    (p) =>
      Deno.writeTextFile(
        p,
        JSON.stringify({
          id: "x",
          tokens: Array(16).fill(1),
          label: Array(16).fill(2),
        }) + '\n{"id": "y", "tok',
      ),
    /truncated|invalid JSON/,
  ],
  [
    "a label shape that disagrees with the input",
    (p) =>
      Deno.writeTextFile(
        p,
        JSON.stringify({
          id: "x",
          tokens: Array(16).fill(1),
          label: Array(15).fill(2),
        }) + "\n",
      ),
    /label of length 15 for 16 tokens/,
  ],
];

for (const [name, write, pattern] of badInputs) {
  Deno.test(`trace: ${name} gives one line, exit code 2 and no output`, async () => {
    await withTempDir(async (tmp) => {
      const inputs = join(tmp, "bad.jsonl");
      await write(inputs);
      const p = await cli(traceArgs(join(tmp, "run"), inputs));
      assert.equal(p.code, 2, p.stderr);
      assert.equal(p.stderr.trim().split("\n").length, 1, p.stderr);
      assert.match(p.stderr, pattern);
      assert.deepEqual(await listDir(tmp), ["bad.jsonl"]);
    });
  });
}

Deno.test("trace: an unknown selector, an existing run and an unwritable run dir are refused", async () => {
  await withTempDir(async (tmp) => {
    const inputs = join(TINY, "puzzles.jsonl");
    const sel = await cli(
      traceArgs(join(tmp, "x"), inputs, ["--steps", "s0.q1.H"]),
    );
    assert.equal(sel.code, 2);
    assert.match(sel.stderr, /unknown step selector "s0\.q1\.H"/);
    const none = await cli(
      traceArgs(join(tmp, "x"), inputs, ["--steps", "s9.*.*"]),
    );
    assert.equal(none.code, 2);
    assert.match(none.stderr, /matches no step/);
    assert.deepEqual(await listDir(tmp), []);

    const run = join(tmp, "run");
    assert.equal((await cli(traceArgs(run, inputs))).code, 0);
    const before = await fileSha(join(run, "trace.jsonl"));
    const again = await cli(traceArgs(run, inputs, ["--seed", "5"]));
    assert.equal(again.code, 2);
    assert.match(again.stderr, /already holds trace\.jsonl; pass --force/);
    assert.equal(await fileSha(join(run, "trace.jsonl")), before);
    assert.equal((await cli(traceArgs(run, inputs, ["--force"]))).code, 0);

    // Denied by Deno's permissions: write access only elsewhere.
    const elsewhere = join(tmp, "granted");
    await Deno.mkdir(elsewhere);
    const denied = await cli(traceArgs(join(tmp, "denied"), inputs), [
      "--allow-read",
      `--allow-write=${elsewhere}`,
    ]);
    assert.equal(denied.code, 2, denied.stderr);
    assert.equal(denied.stderr.trim().split("\n").length, 1, denied.stderr);
    assert.match(denied.stderr, /--allow-write/);
    assert.ok(!(await listDir(tmp)).includes("denied"));
  });
});

// A user's chmod stops a non-root writer; root ignores file modes, so as root
// the run dir is a read-only tmpfs, a system test (deno task test:system).
// Neither possible: the test is ignored.
const READ_ONLY = Deno.uid() !== 0
  ? "chmod"
  : SYSTEM && await tmpfsAvailable()
  ? "tmpfs"
  : null;

Deno.test({
  name: `trace: a read-only run dir is refused before any output (${
    READ_ONLY ?? "no way to make one here"
  })`,
  ignore: READ_ONLY === null,
  async fn() {
    await withTempDir(async (tmp) => {
      const run = join(tmp, "ro");
      await Deno.mkdir(run);
      if (READ_ONLY === "chmod") {
        await Deno.chmod(run, 0o555);
      } else {
        const m = await runCmd("mount", [
          "-t",
          "tmpfs",
          "-o",
          "ro,size=1m",
          "tmpfs",
          run,
        ]);
        assert.equal(m.code, 0, m.stderr);
      }
      try {
        const p = await cli(traceArgs(run, join(TINY, "puzzles.jsonl")));
        assert.equal(p.code, 2, p.stderr);
        const lines = p.stderr.trim().split("\n");
        assert.equal(lines.length, 1, p.stderr);
        assert.match(lines[0], /cannot write to run dir|Read-only file system/);
        assert.deepEqual(await listDir(run), []);
      } finally {
        if (READ_ONLY === "chmod") await Deno.chmod(run, 0o755);
        else await runCmd("umount", [run]);
      }
    });
  },
});

Deno.test("trace: TraceDataset.open streams rows from states.npy and agrees with load", async () => {
  await withTempDir(async (tmp) => {
    const run = join(tmp, "run");
    assert.equal(
      (await cli(traceArgs(run, join(TINY, "puzzles.jsonl")))).code,
      0,
    );
    const filter = { latents: ["z_L" as const], steps: "s1-2.*.*" };
    const ds = await TraceDataset.load(run, filter);
    const streamed = await TraceDataset.open(run, filter, {
      maxResidentBytes: 0,
    });
    const resident = await TraceDataset.open(run, filter);
    try {
      assert.equal(streamed.residence, "states.npy");
      assert.equal(resident.residence, "memory");
      assert.equal(streamed.n, ds.shape[0]);
      const D = ds.shape[1];
      const ix = Int32Array.of(5, 6, 7, 0, ds.shape[0] - 1, 3);
      for (const src of [streamed, resident]) {
        const out = new Float32Array(ix.length * D);
        src.rows(ix, out);
        ix.forEach((r, i) =>
          assert.deepEqual(
            out.subarray(i * D, (i + 1) * D),
            ds.states.subarray(r * D, (r + 1) * D),
          )
        );
      }
      assert.deepEqual(streamed.meta.t, ds.meta.t);
    } finally {
      streamed.close();
      resident.close();
    }
  });
});

Deno.test("trace: with q_halt, each step's block holds only the examples still running; rows match the rollout, in any storage and shard count", async () => {
  await withTempDir(async (tmp) => {
    // The tiny fixture with halting on: its random q_head halts some examples early.
    const model = await qhaltBundle(TINY, join(tmp, "qhalt"));
    const inputs = join(tmp, "p.jsonl");
    await writePuzzles(inputs, 24, 5);
    const args = (run: string, extra: string[] = []) => [
      "trace",
      "--run-dir",
      run,
      "--model",
      model,
      "--inputs",
      inputs,
      "--batch",
      "5",
      ...extra,
    ];
    const run = join(tmp, "run");
    let p = await cli(args(run));
    assert.equal(p.code, 0, p.stderr);
    const ds = await TraceDataset.load(run);
    const halts = ds.meta.outcomes.map((o) => o.halt_step);
    console.log(`  halt steps: ${halts.join(" ")}`);
    assert.ok(halts.some((h) => h < 2) && halts.some((h) => h === 2));
    const npos = ds.header.record.positions.length;
    for (const b of ds.header.blocks) {
      const sup = Number(b.address.split(".")[0].slice(1));
      assert.equal(b.rows, halts.filter((h) => h >= sup).length * npos);
    }
    // Every row equals the state the rollout computed (batch 1, no recorder).
    const bundle = await loadBundle(model);
    const positions = ds.header.record.positions;
    try {
      let checked = 0;
      for (const ex of ds.examples()) {
        const seen = new Set<number>();
        await rollout(bundle, [ex], {
          hooks: [{
            onStep: (e) => {
              if (e.halted[0]) return;
              seen.add(e.t);
              const rows = ds.rowsAt(ex.id, e.t, positions)!;
              const got = ds.gather(rows);
              positions.forEach((pos, k) => {
                for (let j = 0; j < 32; j++) {
                  assert.equal(got[k * 32 + j], e.state[pos * 32 + j]);
                }
              });
              checked += rows.length;
            },
          }],
        });
        // No rows past the halting step.
        for (let t = 0; t < 18; t++) {
          if (!seen.has(t)) {
            assert.equal(ds.rowsAt(ex.id, t, positions), undefined);
          }
        }
      }
      assert.equal(checked, ds.shape[0]);
    } finally {
      await bundle.release();
    }
    // Inline storage and 3 shards hold the same rows in the same order.
    p = await cli(args(join(tmp, "inline"), ["--states", "inline"]));
    assert.equal(p.code, 0, p.stderr);
    for (let i = 0; i < 3; i++) {
      p = await cli(args(join(tmp, "sharded"), ["--shard", `${i}/3`]));
      assert.equal(p.code, 0, p.stderr);
    }
    for (const other of ["inline", "sharded"]) {
      const o = await TraceDataset.load(join(tmp, other));
      assert.deepEqual(o.states, ds.states, other);
      assert.deepEqual(o.meta.exampleOf, ds.meta.exampleOf, other);
      assert.equal(o.meta.digest, ds.meta.digest, other);
    }
  });
});
