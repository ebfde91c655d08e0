// Hostile input and a failing machine (issue #10): every probe class gets one
// line, exit code 2, nothing read or written outside what was named, no
// output under a final name, and memory bounded by what was checked. Cases
// that need root (a small tmpfs) or `script` (a pseudo-terminal) are
// reported as ignored where those are missing.
import assert from "node:assert/strict";
import { join } from "node:path";
import { deflateRawSync } from "node:zlib";
import { sha256Hex } from "../lib/io/atomic.ts";
import { decodeSafetensors } from "../lib/io/safetensors.ts";
import { decodeNpy, encodeNpy } from "../lib/io/npy.ts";
import { encodeSaePt } from "../lib/sae/sae_pt.ts";
import { SAE } from "../lib/sae/sae.ts";
import { readJsonl } from "../lib/io/jsonl.ts";
import { decodeZip } from "../lib/io/zip.ts";
import { openRunDir, RUN_MARKER } from "../lib/io/run_dir.ts";
import { InputError } from "../lib/errors.ts";
import { ortWasmFiles } from "../cli/permissions.ts";
import {
  cli,
  FIXTURES,
  listDir,
  type Proc,
  PYTHON,
  rawZip,
  type RawZipEntry,
  ROOT,
  run,
  SYSTEM,
  tmpfsAvailable,
  withTempDir,
  writePuzzles,
} from "./helpers.ts";

const TINY = join(FIXTURES, "tiny_trm");
/** A tmpfs can be mounted (root, and allowed here): else the disk-full test is ignored. */
const CAN_MOUNT = await tmpfsAvailable();
const PUZZLES = join(TINY, "puzzles.jsonl");
const QUICK_SAE = ["--train-steps", "30", "--features", "32", "--k", "4"];
const QUICK_ITV = [
  "--policy",
  "ablate_features",
  "--features",
  "1",
  "--examples",
  "4",
  "--candidates",
  "1",
  "--random-features",
  "1",
  "--rank",
  "1",
];

/** Exit code 2 and exactly one line on stderr matching `pattern`. */
function refused(p: Proc, pattern: RegExp, what: string): void {
  assert.equal(p.code, 2, `${what}: exit ${p.code}\n${p.stderr}`);
  const lines = p.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `${what}: ${p.stderr}`);
  assert.match(lines[0], /^trminterp: error: /, what);
  assert.match(lines[0], pattern, what);
  console.log(`  ${what}: ${lines[0].slice(0, 150)}`);
}

/** The files of `dir` that are outputs (not the marker or .gitignore). */
async function outputs(dir: string): Promise<string[]> {
  return (await listDir(dir).catch(() => [])).filter((n) =>
    n !== ".gitignore" && n !== RUN_MARKER
  );
}

/**
 * Run `fn` on a traced (16 examples) and fitted run dir of its own, removed
 * afterwards; cases copy it before editing.
 */
async function withFittedRun(
  fn: (run: string) => Promise<void>,
): Promise<void> {
  await withTempDir(async (dir) => {
    const run = join(dir, "run");
    const inputs = join(dir, "p.jsonl");
    await writePuzzles(inputs, 16, 3);
    let p = await cli([
      "trace",
      "--run-dir",
      run,
      "--model",
      TINY,
      "--inputs",
      inputs,
    ]);
    assert.equal(p.code, 0, p.stderr);
    p = await cli(["sae", "fit", "--run-dir", run, ...QUICK_SAE]);
    assert.equal(p.code, 0, p.stderr);
    await fn(run);
  }, "hostile_fitted_");
}

async function copyDir(src: string, dst: string): Promise<void> {
  await Deno.mkdir(dst, { recursive: true });
  for await (const e of Deno.readDir(src)) {
    if (e.isFile) await Deno.copyFile(join(src, e.name), join(dst, e.name));
  }
}

async function copyBundle(dst: string): Promise<string> {
  await Deno.mkdir(dst, { recursive: true });
  for await (const e of Deno.readDir(TINY)) {
    if (e.isFile && (e.name.endsWith(".onnx") || e.name === "model.json")) {
      await Deno.copyFile(join(TINY, e.name), join(dst, e.name));
    }
  }
  return dst;
}

// Hand-edited payloads: the edits reach into any field.
// deno-lint-ignore no-explicit-any
type Json = any;

async function editJson(path: string, edit: (v: Json) => void): Promise<void> {
  const v = JSON.parse(await Deno.readTextFile(path));
  edit(v);
  await Deno.writeTextFile(path, JSON.stringify(v));
}

/** Rewrite trace.jsonl record by record. */
async function editTrace(
  run: string,
  edit: (recs: Json[]) => void,
): Promise<void> {
  const path = join(run, "trace.jsonl");
  const recs = (await Deno.readTextFile(path)).split("\n").filter(Boolean)
    .map((l) => JSON.parse(l));
  edit(recs);
  await Deno.writeTextFile(
    path,
    recs.map((r) => JSON.stringify(r) + "\n").join(""),
  );
}

/**
 * Run the CLI and sample the child's peak RSS (VmHWM, MiB) from /proc until
 * it exits; `killAbove` MiB ends it early, so a regression cannot take the
 * machine down.
 */
async function cliPeak(
  args: string[],
  killAbove = 3000,
): Promise<Proc & { peakMiB: number }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-read",
      "--allow-write",
      join(ROOT, "cli.ts"),
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let peak = 0, done = false;
  const out = child.output().finally(() => done = true);
  while (!done) {
    try {
      const status = await Deno.readTextFile(`/proc/${child.pid}/status`);
      const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
      peak = Math.max(peak, kb >> 10);
      if (peak > killAbove) child.kill("SIGKILL");
    } catch {
      // The child has exited.
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const o = await out;
  const dec = new TextDecoder();
  return {
    code: o.code,
    stdout: dec.decode(o.stdout),
    stderr: dec.decode(o.stderr),
    peakMiB: peak,
  };
}

const hasProc = (() => {
  try {
    Deno.statSync("/proc/self/status");
    return true;
  } catch {
    return false;
  }
})();
const hasScript = (await run("sh", ["-c", "command -v script"])).code === 0;

// ---------------------------------------------------------------------------
// 1. Confinement: no symbolic link is followed, for reads or writes.

Deno.test("hostile: symbolic links out of the run dir are refused for writes (saelens/, interventions/, the run dir itself)", async () => {
  await withFittedRun(async (base) => {
    await withTempDir(async (tmp) => {
      const elsewhere = join(tmp, "elsewhere");
      await Deno.mkdir(elsewhere);
      const run = join(tmp, "run");
      await copyDir(base, run);
      await Deno.symlink(elsewhere, join(run, "saelens"));
      const sha = sha256Hex(await Deno.readFile(join(run, "sae.pt")));
      let p = await cli([
        "sae",
        "fit",
        "--run-dir",
        run,
        ...QUICK_SAE,
        "--force",
        "--export-saelens",
      ]);
      refused(p, /saelens is a symbolic link/, "RUN/saelens -> elsewhere");
      assert.deepEqual(await listDir(elsewhere), []);
      assert.equal(sha256Hex(await Deno.readFile(join(run, "sae.pt"))), sha);

      await Deno.remove(join(run, "saelens"));
      await Deno.symlink(elsewhere, join(run, "interventions"));
      p = await cli([
        "intervene",
        "--run-dir",
        run,
        ...QUICK_ITV,
        "--save-trace",
      ]);
      refused(
        p,
        /interventions is a symbolic link/,
        "RUN/interventions -> elsewhere",
      );
      assert.deepEqual(await listDir(elsewhere), []);
      assert.ok(!(await listDir(run)).includes("report.json"));

      const link = join(tmp, "linkrun");
      await Deno.symlink(elsewhere, link);
      p = await cli([
        "trace",
        "--run-dir",
        link,
        "--model",
        TINY,
        "--inputs",
        PUZZLES,
      ]);
      refused(p, /linkrun is a symbolic link/, "RUN -> elsewhere");
      assert.deepEqual(await listDir(elsewhere), []);

      const dangling = join(tmp, "dangling");
      await Deno.symlink(join(tmp, "nowhere"), dangling);
      p = await cli([
        "trace",
        "--run-dir",
        dangling,
        "--model",
        TINY,
        "--inputs",
        PUZZLES,
      ]);
      refused(p, /dangling is a symbolic link/, "RUN -> nowhere (dangling)");
      assert.ok(!(await listDir(tmp)).includes("nowhere"));
    });
  });
});

Deno.test("hostile: symbolic links out of the bundle and the run dir are refused for reads, and no file text is printed", async () => {
  await withFittedRun(async (base) => {
    await withTempDir(async (tmp) => {
      const bundle = await copyBundle(join(tmp, "bundle"));
      const outside = join(tmp, "outside");
      await Deno.mkdir(outside);
      await Deno.rename(join(bundle, "net.onnx"), join(outside, "net.onnx"));
      await Deno.symlink(join(outside, "net.onnx"), join(bundle, "net.onnx"));
      const runA = join(tmp, "a");
      const scoped = [
        "--no-prompt",
        `--allow-read=${bundle},${PUZZLES},${runA},${ROOT}/node_modules`,
        `--allow-write=${runA}`,
      ];
      let p = await cli(
        ["trace", "--run-dir", runA, "--model", bundle, "--inputs", PUZZLES],
        scoped,
      );
      refused(p, /net\.onnx is a symbolic link/, "BUNDLE/net.onnx -> outside");
      assert.deepEqual(await outputs(runA), []);

      const runB = join(tmp, "b");
      await copyDir(base, runB);
      const secret = join(tmp, "secret.txt");
      await Deno.writeTextFile(secret, "TOPSECRET-7f3a the launch codes\n");
      await Deno.remove(join(runB, "trace.jsonl"));
      await Deno.symlink(secret, join(runB, "trace.jsonl"));
      p = await cli(["sae", "fit", "--run-dir", runB, ...QUICK_SAE, "--force"]);
      refused(
        p,
        /trace\.jsonl is a symbolic link/,
        "RUN/trace.jsonl -> secret",
      );
      assert.ok(!p.stderr.includes("TOPSECRET"));

      // A JSON error names the place, never the text around it.
      const bad = join(tmp, "bad.jsonl");
      await Deno.writeTextFile(bad, "TOPSECRET-7f3a\n{}\n");
      await assert.rejects(
        async () => {
          for await (const _ of readJsonl(bad));
        },
        (e: Error) =>
          e instanceof InputError && !e.message.includes("TOPSECRET"),
      );
    });
  });
});

Deno.test("hostile: graph file names in model.json are plain names inside the bundle", async () => {
  await withTempDir(async (tmp) => {
    for (
      const file of [
        "../../../../../../etc/passwd",
        "/dev/zero",
        "sub/net.onnx",
        "..",
      ]
    ) {
      const bundle = await copyBundle(join(tmp, "b"));
      await editJson(
        join(bundle, "model.json"),
        (m) => m.graphs.net.file = file,
      );
      const p = await cli([
        "trace",
        "--run-dir",
        join(tmp, "run"),
        "--model",
        bundle,
        "--inputs",
        PUZZLES,
      ], ["--no-prompt", "--allow-read", "--allow-write"]);
      refused(
        p,
        /graphs\.net\.file: expected a plain file name/,
        `file ${file}`,
      );
      assert.ok(!(await listDir(tmp)).includes("run"));
    }
  });
});

Deno.test({
  name:
    "hostile: on a terminal, a traversal bundle and a missing webgpu grant end in exit 2 within seconds, with no prompt",
  ignore: !hasScript,
  async fn() {
    await withTempDir(async (tmp) => {
      const bundle = await copyBundle(join(tmp, "b"));
      await editJson(
        join(bundle, "model.json"),
        (m) => m.graphs.net.file = "../../../../../../etc/passwd",
      );
      const runDir = join(tmp, "run");
      const wasm = join(
        ROOT,
        "node_modules/.deno/onnxruntime-web@1.30.0/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm",
      );
      const q = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
      const line = (flags: string, model: string, extra: string) =>
        [
          q(Deno.execPath()),
          "run",
          "--quiet",
          flags,
          `--allow-read=${model},${PUZZLES},${runDir},${wasm}`,
          `--allow-write=${runDir}`,
          q(join(ROOT, "cli.ts")),
          `trace --run-dir ${runDir} --model ${model} --inputs ${PUZZLES}`,
          extra,
        ].join(" ");
      // Without --no-prompt too: the bundle is refused before anything
      // outside it is touched, so Deno has nothing to ask.
      for (
        const [flags, model, extra, pattern] of [
          ["", bundle, "", /plain file name/],
          ["--no-prompt", bundle, "", /plain file name/],
          ["--no-prompt", TINY, "--backend webgpu", /asyncify\.wasm/],
        ] as const
      ) {
        const start = performance.now();
        const p = await run("timeout", [
          "20",
          "script",
          "-qec",
          line(flags, model, extra),
          "/dev/null",
        ]);
        const secs = (performance.now() - start) / 1000;
        assert.notEqual(p.code, 124, `hung on a prompt: ${p.stdout}`);
        assert.ok(secs < 15, `took ${secs}s`);
        assert.match(p.stdout, /trminterp: error: /);
        assert.match(p.stdout, pattern);
        console.log(
          `  pty ${flags || "(prompts allowed)"} ${extra}: exit after ${
            secs.toFixed(1)
          }s`,
        );
      }
    });
    // Every documented and task command line passes --no-prompt.
    const readme = await Deno.readTextFile(join(ROOT, "README.md"));
    for (
      const l of readme.split("\n").filter((l) =>
        /^deno run .*--allow-read=/.test(l)
      )
    ) {
      assert.match(l, /--no-prompt/, l);
    }
    const tasks =
      JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json"))).tasks;
    for (const name of ["trminterp", "demo", "compile"]) {
      // Every deno invocation in the task; an `export VAR=…` part runs none.
      const parts = String(tasks[name]).split("&&").filter((part) =>
        /\bdeno (run|compile)\b/.test(part)
      );
      assert.ok(parts.length > 0, `task ${name} runs deno`);
      for (const part of parts) {
        assert.match(part, /--no-prompt/, `task ${name}`);
      }
    }
  },
});

// ---------------------------------------------------------------------------
// 2. The run dir is trminterp's; user files survive; one command at a time.

Deno.test("hostile: a folder of unrelated files is refused; a user's .notes.tmp-1 survives while trminterp's own stale temps go", async () => {
  await withFittedRun(async (base) => {
    await withTempDir(async (tmp) => {
      const mine = join(tmp, "mine");
      await Deno.mkdir(mine);
      await Deno.writeTextFile(join(mine, "thesis.tex"), "x");
      let p = await cli([
        "trace",
        "--run-dir",
        mine,
        "--model",
        TINY,
        "--inputs",
        PUZZLES,
      ]);
      refused(
        p,
        /holds files trminterp did not write \(thesis\.tex\)/,
        "run dir of user files",
      );
      assert.deepEqual(await listDir(mine), ["thesis.tex"]);
      // The root of the file system is such a folder (checked in-process, so a
      // regression cannot write there).
      await assert.rejects(
        openRunDir("/"),
        /holds files trminterp did not write/,
      );

      const runDir = join(tmp, "run");
      await copyDir(base, runDir);
      await Deno.writeTextFile(join(runDir, ".notes.tmp-1"), "x\n");
      await Deno.writeTextFile(
        join(runDir, ".report.json.tmp-0123456789ab"),
        "legacy",
      );
      const stale = ".trace.jsonl.trminterp-999999999-0123456789ab.tmp";
      await Deno.writeTextFile(join(runDir, stale), "left by a killed run");
      p = await cli([
        "trace",
        "--run-dir",
        runDir,
        "--model",
        TINY,
        "--inputs",
        PUZZLES,
        "--force",
      ]);
      assert.equal(p.code, 0, p.stderr);
      const names = await listDir(runDir);
      assert.ok(names.includes(".notes.tmp-1"), `${names}`);
      assert.ok(names.includes(".report.json.tmp-0123456789ab"), `${names}`);
      assert.ok(!names.includes(stale), `${names}`);
      assert.equal(
        await Deno.readTextFile(join(runDir, ".notes.tmp-1")),
        "x\n",
      );
    });
  });
});

Deno.test("hostile: a second command on a busy run dir exits 2 naming the holder's pid; a dead holder's lock is taken over", async () => {
  await withFittedRun(async (base) => {
    await withTempDir(async (tmp) => {
      const runDir = join(tmp, "run");
      await copyDir(base, runDir);
      const long = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--quiet",
          "-A",
          join(ROOT, "cli.ts"),
          "sae",
          "fit",
          "--run-dir",
          runDir,
          "--force",
          "--train-steps",
          "2500",
          "--features",
          "64",
        ],
        stdout: "null",
        stderr: "piped",
      }).spawn();
      try {
        const lock = join(runDir, ".trminterp.lock");
        for (let i = 0; i < 300; i++) {
          const text = await Deno.readTextFile(lock).catch(() => "");
          if (text.trim() === String(long.pid)) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        for (
          const args of [
            [
              "sae",
              "fit",
              "--run-dir",
              runDir,
              "--force",
              "--seed",
              "1",
              ...QUICK_SAE,
            ],
            [
              "trace",
              "--run-dir",
              runDir,
              "--model",
              TINY,
              "--inputs",
              PUZZLES,
              "--force",
            ],
          ]
        ) {
          const p = await cli(args);
          refused(
            p,
            new RegExp(`in use by trminterp process ${long.pid}`),
            `${args[0]} while busy`,
          );
        }
      } finally {
        const st = await long.output();
        assert.equal(st.code, 0, new TextDecoder().decode(st.stderr));
      }
      const m = JSON.parse(
        await Deno.readTextFile(join(runDir, "sae_metrics.json")),
      );
      assert.equal(m.provenance.seed, 0, "the busy run's outputs stand");
      assert.ok(!(await listDir(runDir)).includes(".trminterp.lock"));
      // A lock file left by a killed command (its flock died with it).
      await Deno.writeTextFile(join(runDir, ".trminterp.lock"), "999999999\n");
      const p = await cli(["intervene", "--run-dir", runDir, ...QUICK_ITV]);
      assert.equal(p.code, 0, p.stderr);
    });
  });
});

// ---------------------------------------------------------------------------
// 3. Allocations bounded by what was checked.

/** `zip`'s entries, plus `extra` added or replacing entries of the same name. */
function withDeflatedEntries(
  zip: Uint8Array,
  extra: { name: string; data: Uint8Array; size: number; replace?: boolean }[],
): Uint8Array {
  const entries: RawZipEntry[] = [...decodeZip(zip)].map(([name, data]) => ({
    name,
    data,
  }));
  for (const e of extra) {
    const entry = { name: e.name, data: e.data, method: 8, size: e.size };
    const k = entries.findIndex((x) => x.name === e.name);
    if (e.replace && k >= 0) entries[k] = entry;
    else entries.push(entry);
  }
  return rawZip(entries);
}

Deno.test({
  name:
    "hostile: sae.pt zip bombs (unreferenced 1 GiB entries, a storage declaring 1 GiB) stay under 600 MiB peak RSS",
  ignore: !hasProc,
  async fn() {
    await withFittedRun(async (base) => {
      // 1 GiB of zeros deflates to about 1 MB; the zero pages are never touched.
      const gib = deflateRawSync(new Uint8Array(2 ** 30), { level: 9 });
      await withTempDir(async (tmp) => {
        const runDir = join(tmp, "run");
        await copyDir(base, runDir);
        const pt = await Deno.readFile(join(runDir, "sae.pt"));
        // Unreferenced entries are never inflated: the SAE loads, intervene runs.
        const extra = withDeflatedEntries(pt, [
          { name: "sae/extra/0", data: gib, size: 2 ** 30 },
          { name: "sae/extra/1", data: gib, size: 2 ** 30 },
        ]);
        await Deno.writeFile(join(runDir, "sae.pt"), extra);
        let p = await cliPeak(["intervene", "--run-dir", runDir, ...QUICK_ITV]);
        assert.equal(p.code, 0, p.stderr);
        assert.ok(p.peakMiB < 600, `peak RSS ${p.peakMiB} MiB`);
        console.log(
          `  unreferenced 1 GiB entries (${
            extra.length >> 10
          } KiB file): exit 0, peak ${p.peakMiB} MiB`,
        );
        // A storage whose entry declares 1 GiB where the pickle declares 4 KiB.
        const ref = withDeflatedEntries(pt, [
          { name: "sae/data/0", data: gib, size: 2 ** 30, replace: true },
        ]);
        await Deno.writeFile(join(runDir, "sae.pt"), ref);
        p = await cliPeak([
          "intervene",
          "--run-dir",
          runDir,
          ...QUICK_ITV,
          "--force",
        ]);
        refused(
          p,
          /storage 0 has 1073741824 bytes, expected 4096/,
          "referenced 1 GiB storage",
        );
        assert.ok(p.peakMiB < 600, `peak RSS ${p.peakMiB} MiB`);
        console.log(`  referenced 1 GiB storage: peak ${p.peakMiB} MiB`);
      });
    });
  },
});

Deno.test("hostile: sizes are checked before allocation: schedule cap, header vs bundle, safetensors spans, JSONL lines, ids, SAE size", async () => {
  await withFittedRun(async (base) => {
    await withTempDir(async (tmp) => {
      // A schedule of 1e9 supervision steps is refused before enumeration.
      const bundle = await copyBundle(join(tmp, "b"));
      await editJson(
        join(bundle, "model.json"),
        (m) => m.schedule.halt_max_steps = 1e9,
      );
      let p = await cli([
        "trace",
        "--run-dir",
        join(tmp, "r0"),
        "--model",
        bundle,
        "--inputs",
        PUZZLES,
      ]);
      refused(p, /more than 65536 net calls per rollout/, "halt_max_steps 1e9");

      // A trace header edited after the trace: over the cap, or unlike the bundle.
      const runDir = join(tmp, "run");
      await copyDir(base, runDir);
      await editTrace(runDir, (r) => r[0].model.schedule.halt_max_steps = 1e6);
      p = await cli(["intervene", "--run-dir", runDir, ...QUICK_ITV]);
      refused(p, /more than 65536 net calls/, "header halt_max_steps 1e6");
      await editTrace(runDir, (r) => r[0].model.schedule.halt_max_steps = 4);
      p = await cli(["intervene", "--run-dir", runDir, ...QUICK_ITV]);
      refused(
        p,
        /schedule\.halt_max_steps is 4, but the bundle's model\.json says 3/,
        "header schedule edited",
      );

      // 200 overlapping spans over 10 MB: refused before any copy.
      const n = 10 << 20;
      const header: Record<string, unknown> = {};
      for (let i = 0; i < 200; i++) {
        header[`t${i}`] = { dtype: "U8", shape: [n], data_offsets: [0, n] };
      }
      let h = JSON.stringify(header);
      h += " ".repeat((8 - (h.length % 8)) % 8);
      const st = new Uint8Array(8 + h.length + n);
      new DataView(st.buffer).setBigUint64(0, BigInt(h.length), true);
      st.set(new TextEncoder().encode(h), 8);
      const before = Deno.memoryUsage().rss;
      assert.throws(() => decodeSafetensors(st), /overlaps at byte 0/);
      assert.ok(
        Deno.memoryUsage().rss - before < 200 * 2 ** 20,
        "copied spans",
      );

      // A 32 MB line reads in linear time (it took minutes when quadratic).
      const long = join(tmp, "long.jsonl");
      await Deno.writeTextFile(
        long,
        `{"id":"${"y".repeat(32 << 20)}"}\n{"id":1}\n`,
      );
      const t0 = performance.now();
      let lines = 0;
      for await (const _ of readJsonl(long)) lines++;
      assert.equal(lines, 2);
      assert.ok(performance.now() - t0 < 5000, `${performance.now() - t0} ms`);
      // As puzzle inputs, such a line is refused unread, and so is a long id.
      p = await cli([
        "trace",
        "--run-dir",
        join(tmp, "r1"),
        "--model",
        TINY,
        "--inputs",
        long,
      ]);
      refused(
        p,
        /long\.jsonl:1 is longer than 1048576 characters/,
        "32 MB puzzle line",
      );
      const ids = join(tmp, "ids.jsonl");
      const good = JSON.parse(
        (await Deno.readTextFile(PUZZLES)).split("\n")[0],
      );
      await Deno.writeTextFile(
        ids,
        JSON.stringify({ ...good, id: "x".repeat(257) }) + "\n",
      );
      p = await cli([
        "trace",
        "--run-dir",
        join(tmp, "r2"),
        "--model",
        TINY,
        "--inputs",
        ids,
      ]);
      refused(p, /"id" is longer than 256 bytes/, "257-byte id");

      // An SAE too large to allocate is refused by its size, not by V8.
      const fit = join(tmp, "fit");
      await copyDir(base, fit);
      p = await cli([
        "sae",
        "fit",
        "--run-dir",
        fit,
        "--features",
        "100000000",
        "--force",
      ]);
      refused(
        p,
        /--features gives F=100000000 features; with D=32 the SAE may have at most 2097152/,
        "--features 1e8",
      );
      for (const d of ["r0", "r1", "r2"]) {
        assert.ok(!(await listDir(tmp)).includes(d), `${d} was created`);
      }
    });
  });
});

Deno.test({
  name:
    "hostile: a dataset folder is read by offset: --limit 8 of a 128 MB folder stays near the baseline RSS",
  ignore: !hasProc,
  async fn() {
    await withTempDir(async (tmp) => {
      const data = join(tmp, "data");
      await Deno.mkdir(data);
      const N = 500_000, S = 16;
      const rows = new BigInt64Array(N * S).fill(2n);
      await Deno.writeFile(
        join(data, "all__inputs.npy"),
        encodeNpy(rows, [N, S]),
      );
      await Deno.writeFile(
        join(data, "all__labels.npy"),
        encodeNpy(rows, [N, S]),
      );
      await Deno.writeFile(
        join(data, "all__puzzle_identifiers.npy"),
        encodeNpy(new Int32Array(N), [N]),
      );
      await Deno.writeTextFile(join(data, "dataset.json"), "{}");
      const p = await cliPeak([
        "trace",
        "--run-dir",
        join(tmp, "run"),
        "--model",
        TINY,
        "--inputs",
        data,
        "--limit",
        "8",
      ]);
      assert.equal(p.code, 0, p.stderr);
      assert.ok(p.peakMiB < 400, `peak RSS ${p.peakMiB} MiB`);
      console.log(`  --limit 8 of ${N} rows: peak ${p.peakMiB} MiB`);
      // Gaps in all__puzzle_indices.npy give no example the wrong puzzle.
      const gap = join(tmp, "gap");
      await Deno.mkdir(gap);
      const ten = new BigInt64Array(10 * S).fill(3n);
      await Deno.writeFile(
        join(gap, "all__inputs.npy"),
        encodeNpy(ten, [10, S]),
      );
      await Deno.writeFile(
        join(gap, "all__labels.npy"),
        encodeNpy(ten, [10, S]),
      );
      await Deno.writeFile(
        join(gap, "all__puzzle_identifiers.npy"),
        encodeNpy(new Int32Array([1, 2]), [2]),
      );
      await Deno.writeFile(
        join(gap, "all__puzzle_indices.npy"),
        encodeNpy(new Int32Array([0, 3, 6]), [3]),
      );
      await Deno.writeTextFile(join(gap, "dataset.json"), "{}");
      const q = await cli([
        "trace",
        "--run-dir",
        join(tmp, "gaprun"),
        "--model",
        TINY,
        "--inputs",
        gap,
      ]);
      refused(
        q,
        /all__puzzle_indices\.npy: it ends at 6, leaving examples without a puzzle/,
        "puzzle index gap",
      );
    });
  },
});

// ---------------------------------------------------------------------------
// 4. A failing machine: one line, exit 2, no output under a final name.

Deno.test({
  name:
    "hostile: disk full (2 MiB tmpfs) in trace and sae fit, and a read-only file system: exit 2, no output under a final name",
  // Mounting needs root: a system test (deno task test:system).
  ignore: !CAN_MOUNT || !SYSTEM,
  async fn() {
    await withTempDir(async (tmp) => {
      const fs = join(tmp, "fs");
      await Deno.mkdir(fs);
      const mount = await run("mount", [
        "-t",
        "tmpfs",
        "-o",
        "size=2m",
        "tmpfs",
        fs,
      ]);
      // The probe mounted one: a failure now is a failure of the test.
      assert.equal(mount.code, 0, mount.stderr);
      try {
        // sae fit with room for sae_metrics.json but not for sae.pt as well.
        const fitDir = join(fs, "fit");
        let p = await cli([
          "trace",
          "--run-dir",
          fitDir,
          "--model",
          TINY,
          "--inputs",
          PUZZLES,
          "--latents",
          "z_H",
          "--states",
          "inline",
        ]);
        assert.equal(p.code, 0, p.stderr);
        const df = await run("df", ["-B1", "--output=avail", fs]);
        const free = Number(df.stdout.trim().split("\n")[1]);
        await Deno.writeFile(
          join(fs, "filler"),
          new Uint8Array(Math.max(0, free - (96 << 10))),
        );
        p = await cli([
          "sae",
          "fit",
          "--run-dir",
          fitDir,
          "--train-steps",
          "30",
          "--features",
          "1024",
        ]);
        refused(
          p,
          /No space left on device.*the disk is full/,
          "sae fit, disk full",
        );
        assert.deepEqual(
          await outputs(fitDir),
          ["trace.jsonl"],
          "no sae_metrics.json without sae.pt",
        );
        await Deno.remove(join(fs, "filler"));

        const inputs = join(tmp, "p.jsonl");
        await writePuzzles(inputs, 200, 5);
        const big = join(fs, "big");
        p = await cli([
          "trace",
          "--run-dir",
          big,
          "--model",
          TINY,
          "--inputs",
          inputs,
        ]);
        refused(
          p,
          /No space left on device.*writing .*the disk is full/,
          "trace, disk full",
        );
        assert.deepEqual(await outputs(big), []);

        const ro = await run("mount", ["-o", "remount,ro", fs]);
        assert.equal(ro.code, 0, ro.stderr);
        p = await cli(["sae", "fit", "--run-dir", fitDir, ...QUICK_SAE]);
        refused(p, /EROFS|Read-only file system/, "sae fit, read-only");
      } finally {
        await run("umount", [fs]);
      }
    });
  },
});

Deno.test("hostile: bad values and wrong kinds of path: exit 2 with one line naming the problem", async () => {
  await withTempDir(async (tmp) => {
    const frac = join(tmp, "frac.jsonl");
    const good = JSON.parse((await Deno.readTextFile(PUZZLES)).split("\n")[0]);
    await Deno.writeTextFile(
      frac,
      JSON.stringify({ ...good, puzzle_identifier: 1.5 }) + "\n",
    );
    const trace = (runDir: string, model: string, inputs = PUZZLES) =>
      cli(["trace", "--run-dir", runDir, "--model", model, "--inputs", inputs]);
    refused(
      await trace(join(tmp, "r"), TINY, frac),
      /"puzzle_identifier" must be an integer/,
      "puzzle_identifier 1.5",
    );
    refused(
      await trace(join(tmp, "r"), join(TINY, "checkpoint.pt")),
      /checkpoint\.pt is a checkpoint file, not a bundle folder; export it to a bundle with references\/python\/export\.py/,
      "checkpoint as --model",
    );
    const dirGraph = await copyBundle(join(tmp, "dg"));
    await Deno.remove(join(dirGraph, "net.onnx"));
    await Deno.mkdir(join(dirGraph, "net.onnx"));
    refused(
      await trace(join(tmp, "r"), dirGraph),
      /net\.onnx is a folder, not a file/,
      "graph is a folder",
    );
    const dirManifest = await copyBundle(join(tmp, "dm"));
    await Deno.remove(join(dirManifest, "model.json"));
    await Deno.mkdir(join(dirManifest, "model.json"));
    refused(
      await trace(join(tmp, "r"), dirManifest),
      /model\.json is a folder, not a file/,
      "model.json is a folder",
    );
    await Deno.writeTextFile(join(tmp, "file"), "x");
    refused(
      await trace(join(tmp, "file", "run"), TINY),
      /Not a directory.*fix the path/,
      "run dir under a file",
    );
    assert.ok(!(await listDir(tmp)).includes("r"));
  });
});

Deno.test("hostile: graphs that return NaN or the wrong number of values: exit 2 naming the example, step or graph", async () => {
  await withTempDir(async (tmp) => {
    const code = `
import sys, onnx
from onnx import helper, TensorProto as P
kind, out = sys.argv[1:3]
h = helper.make_tensor_value_info("hidden", P.FLOAT, ["B", 18, 32])
j = helper.make_tensor_value_info("injection", P.FLOAT, ["B", 18, 32])
n = [helper.make_node("Add", ["hidden", "injection"], ["s"])]
if kind == "nan":
    n += [helper.make_node("Constant", [], ["c"], value=helper.make_tensor("c", P.FLOAT, [], [float("nan")])),
          helper.make_node("Mul", ["s", "c"], ["hidden_out"])]
else:  # appends a data-dependent number of positions: the dim stays symbolic
    n += [helper.make_node("Constant", [], ["ax"], value=helper.make_tensor("ax", P.INT64, [2], [0, 2])),
          helper.make_node("ReduceSum", ["s", "ax"], ["a"], keepdims=0),
          helper.make_node("IsNaN", ["a"], ["isn"]), helper.make_node("Not", ["isn"], ["m"]),
          helper.make_node("NonZero", ["m"], ["nz"]),
          helper.make_node("Constant", [], ["z"], value=helper.make_tensor("z", P.INT64, [1], [0])),
          helper.make_node("Squeeze", ["nz", "z"], ["idx"]),
          helper.make_node("Gather", ["s", "idx"], ["g"], axis=1),
          helper.make_node("Concat", ["s", "g"], ["hidden_out"], axis=1)]
o = helper.make_tensor_value_info("hidden_out", P.FLOAT, ["B", "T2", 32])
m = helper.make_model(helper.make_graph(n, kind, [h, j], [o]), opset_imports=[helper.make_opsetid("", 17)])
m.ir_version = 8
onnx.save(m, out)
`;
    for (
      const [kind, pattern] of [
        [
          "nan",
          /the z_L state of example "p0-g197-b6" at s0\.h0\.l0 contains NaN/,
        ],
        [
          "wide",
          /graph "net" returned \d+ values for "hidden_out", expected \d+/,
        ],
      ] as const
    ) {
      const bundle = await copyBundle(join(tmp, kind));
      const made = await run(PYTHON, [
        "-c",
        code,
        kind,
        join(bundle, "net.onnx"),
      ]);
      assert.equal(made.code, 0, made.stderr);
      const sha = sha256Hex(await Deno.readFile(join(bundle, "net.onnx")));
      await editJson(
        join(bundle, "model.json"),
        (m) => m.graphs.net.sha256 = sha,
      );
      const runDir = join(tmp, `run-${kind}`);
      const p = await cli([
        "trace",
        "--run-dir",
        runDir,
        "--model",
        bundle,
        "--inputs",
        PUZZLES,
      ]);
      refused(p, pattern, `net.onnx ${kind}`);
      // The run dir this trace created is gone again: a refused first run
      // leaves no folder behind.
      assert.equal(await Deno.lstat(runDir).catch(() => null), null);
    }
  });
});

// ---------------------------------------------------------------------------
// 5. No silent wrong results.

Deno.test("hostile: intervene refuses an sae.pt fitted on another trace, and traces edited out of range", async () => {
  await withFittedRun(async (base) => {
    await withTempDir(async (tmp) => {
      const runDir = join(tmp, "run");
      await copyDir(base, runDir);
      const inputs = join(tmp, "p.jsonl");
      await writePuzzles(inputs, 16, 3);
      let p = await cli([
        "trace",
        "--run-dir",
        runDir,
        "--model",
        TINY,
        "--inputs",
        inputs,
        "--limit",
        "12",
        "--force",
      ]);
      assert.equal(p.code, 0, p.stderr);
      p = await cli(["intervene", "--run-dir", runDir, ...QUICK_ITV]);
      refused(
        p,
        /sae\.pt in .* was fitted on another trace .* fit the SAE again \(sae fit with --force\)/,
        "stale sae.pt",
      );
      assert.ok(!(await listDir(runDir)).includes("report.json"));

      const edits: [string, (r: Json[]) => void, RegExp][] = [
        [
          "position 40 of T=18",
          (r) => r[0].record.positions[17] = 40,
          /record\.positions must rise strictly within 0\.\.17/,
        ],
        [
          "a short label",
          (r) => r.find((x) => x.kind === "example").label.pop(),
          /label has 15 entries, S is 16/,
        ],
        [
          "logits of 3 floats",
          (r) =>
            r.find((x) => x.kind === "example").logits = "AAAAAAAAAAAAAAAA",
          /logits hold 12 bytes, expected S×V float32 = 384/,
        ],
        [
          "token 99 of V=6",
          (r) => r.find((x) => x.kind === "example").tokens[0] = 99,
          /tokens holds 99, outside the vocabulary 0\.\.5/,
        ],
        [
          "a header whose backend is unknown",
          (r) => r[0].backend = "cuda",
          /backend.*"wasm".*"webgpu".*"native"/,
        ],
      ];
      for (const [what, edit, pattern] of edits) {
        const d = join(tmp, what.replace(/\W+/g, "_"));
        await copyDir(base, d);
        await editTrace(d, edit);
        p = await cli(["sae", "fit", "--run-dir", d, ...QUICK_SAE, "--force"]);
        refused(p, pattern, what);
      }
    });
  });
});

// ---------------------------------------------------------------------------
// Issue #21: the last escapes. One case per cause; each takes the class of
// the problem (several payloads), not only the probe that found it.

/** A file outside every run dir, with text the test checks is untouched. */
async function victim(dir: string, name = "victim.txt"): Promise<string> {
  const path = join(dir, name);
  await Deno.writeTextFile(path, "the user's own data\n");
  return path;
}

async function intact(path: string, what: string): Promise<void> {
  assert.equal(
    await Deno.readTextFile(path),
    "the user's own data\n",
    `${what}: ${path} was written`,
  );
}

Deno.test("hostile #21.1: a lock file that is a hard link is never written through (deno task flags, scoped wasm, shard locks, a link to trace.jsonl)", async () => {
  await withFittedRun(async (base) => {
    const wasm = ortWasmFiles("wasm")[0];
    await withTempDir(async (tmp) => {
      const outside = await Deno.makeTempDir({ prefix: "hostile_outside_" });
      try {
        const taskFlags = ["--allow-read", "--allow-write", "--allow-ffi"];
        // The run dir's lock, hard-linked to a file outside the run dir.
        const runA = join(tmp, "a");
        await copyDir(base, runA);
        const v1 = await victim(outside, "v1.txt");
        await Deno.link(v1, join(runA, ".trminterp.lock"));
        let p = await cli(
          ["sae", "fit", "--run-dir", runA, "--force", ...QUICK_SAE],
          taskFlags,
        );
        assert.equal(p.code, 0, p.stderr);
        await intact(v1, "sae fit, deno task flags");
        // The scoped line (wasm): the linked file lies outside --allow-write.
        const runB = join(tmp, "b");
        await copyDir(base, runB);
        const v2 = await victim(outside, "v2.txt");
        await Deno.link(v2, join(runB, ".trminterp.lock"));
        p = await cli(
          [
            "trace",
            "--run-dir",
            runB,
            "--model",
            TINY,
            "--inputs",
            PUZZLES,
            "--backend",
            "wasm",
            "--force",
          ],
          [
            `--allow-read=${TINY},${PUZZLES},${runB},${wasm}`,
            `--allow-write=${runB}`,
          ],
        );
        assert.equal(p.code, 0, p.stderr);
        await intact(v2, "scoped trace");
        // A shard's lock.
        const runC = join(tmp, "c");
        const shard = join(runC, "shards", "0-of-2");
        await Deno.mkdir(shard, { recursive: true });
        await Deno.writeTextFile(
          join(runC, RUN_MARKER),
          '{"format":"trminterp-run/1"}\n',
        );
        await Deno.writeTextFile(
          join(shard, RUN_MARKER),
          '{"format":"trminterp-run/1"}\n',
        );
        const v3 = await victim(outside, "v3.txt");
        await Deno.link(v3, join(shard, ".trminterp.lock"));
        p = await cli(
          [
            "trace",
            "--run-dir",
            runC,
            "--model",
            TINY,
            "--inputs",
            PUZZLES,
            "--shard",
            "0/2",
          ],
          taskFlags,
        );
        assert.equal(p.code, 0, p.stderr);
        await intact(v3, "shard lock");
        // The lock, a hard link to the run dir's own trace.jsonl.
        const runD = join(tmp, "d");
        await copyDir(base, runD);
        const before = await Deno.readFile(join(runD, "trace.jsonl"));
        await Deno.link(
          join(runD, "trace.jsonl"),
          join(runD, ".trminterp.lock"),
        );
        p = await cli(
          ["intervene", "--run-dir", runD, ...QUICK_ITV],
          taskFlags,
        );
        assert.equal(p.code, 0, p.stderr);
        assert.deepEqual(
          await Deno.readFile(join(runD, "trace.jsonl")),
          before,
        );
        for (const r of [runA, runB, runC, shard, runD]) {
          assert.ok(!(await listDir(r)).includes(".trminterp.lock"), r);
        }
      } finally {
        await Deno.remove(outside, { recursive: true });
      }
    });
  });
});

Deno.test("hostile #21.2: a run dir swapped for a symbolic link while the command runs: exit 2, nothing written where the link points", async () => {
  await withTempDir(async (tmp) => {
    const outside = await Deno.makeTempDir({ prefix: "hostile_outside_" });
    try {
      const grant = join(tmp, "grant");
      await Deno.mkdir(grant);
      const inputs = join(tmp, "p.jsonl");
      await writePuzzles(inputs, 256, 3);
      // The user's own files, where the link will point.
      const mine = await victim(outside, "trace.jsonl");
      const wasm = ortWasmFiles("wasm")[0];
      // "swap": the link points at another folder (the user's files);
      // "move": the run dir itself is moved outside the grant, the link
      // points at it, so the renames would land there.
      for (
        const [when, how] of [
          ["states.npy", "swap"],
          ["trace.jsonl", "swap"],
          ["states.npy", "move"],
        ]
      ) {
        const runDir = join(grant, `run-${when}-${how}`);
        const moved = join(outside, `moved-${when}`);
        const child = new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--quiet",
            "--no-prompt",
            `--allow-read=${TINY},${inputs},${grant},${wasm}`,
            `--allow-write=${grant}`,
            join(ROOT, "cli.ts"),
            "trace",
            "--run-dir",
            runDir,
            "--model",
            TINY,
            "--inputs",
            inputs,
            "--backend",
            "wasm",
          ],
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const out = child.output();
        // Swap as soon as the command streams into its temp file.
        let swapped = false;
        for (let i = 0; i < 4000 && !swapped; i++) {
          const names = await listDir(runDir).catch(() => []);
          if (names.some((n) => n.startsWith(`.${when}.trminterp-`))) {
            if (how === "swap") {
              await Deno.rename(runDir, `${runDir}.orig`);
              await Deno.symlink(outside, runDir);
            } else {
              await Deno.rename(runDir, moved);
              await Deno.symlink(moved, runDir);
            }
            swapped = true;
          } else await new Promise((r) => setTimeout(r, 2));
        }
        const o = await out;
        assert.ok(swapped, `${when}: the command finished before the swap`);
        refused(
          {
            code: o.code,
            stdout: "",
            stderr: new TextDecoder().decode(o.stderr),
          },
          // Which check sees the swap first depends on when it lands: the
          // identity re-check, the no-link walk, or Deno's grant (the link
          // leads outside it). Each refuses before anything is written there.
          /was moved or replaced while trminterp was using it|is a symbolic link|Requires (read|write) access to/,
          `${how} during ${when}`,
        );
        await intact(mine, `swap during ${when}`);
        if (how === "swap") {
          assert.deepEqual(await listDir(outside), ["trace.jsonl"], when);
        } else {
          const landed = (await listDir(moved)).filter((n) =>
            n === "trace.jsonl" || n === "states.npy"
          );
          assert.deepEqual(
            landed,
            [],
            "nothing renamed into the moved run dir",
          );
        }
      }
    } finally {
      await Deno.remove(outside, { recursive: true });
    }
  });
});

/** Point a trace.jsonl's header pin at the states.npy now beside it. */
async function repin(dir: string): Promise<void> {
  const path = join(dir, "trace.jsonl");
  const lines = (await Deno.readTextFile(path)).split("\n");
  const h = JSON.parse(lines[0]);
  h.states_npy.sha256 = sha256Hex(await Deno.readFile(join(dir, "states.npy")));
  lines[0] = JSON.stringify(h);
  await Deno.writeTextFile(path, lines.join("\n"));
}

Deno.test("hostile #21.3: the digest binds the states read: replaced states (re-pinned), states swapped between shards, missing or repeated example records", async () => {
  await withFittedRun(async (base) => {
    await withTempDir(async (tmp) => {
      const cases: [string, (run: string) => Promise<void>, RegExp][] = [
        ["one value nudged, header re-pinned", async (run) => {
          const f = join(run, "states.npy");
          const b = await Deno.readFile(f);
          b[b.length - 2] ^= 0x10;
          await Deno.writeFile(f, b);
          await repin(run);
        }, /do not match the states_sha256 of its example record/],
        ["another trace's states, header re-pinned", async (run) => {
          const other = join(tmp, "other");
          await Deno.remove(other, { recursive: true }).catch(() => {});
          const inputs = join(tmp, "p.jsonl");
          await writePuzzles(inputs, 16, 4);
          const p = await cli([
            "trace",
            "--run-dir",
            other,
            "--model",
            TINY,
            "--inputs",
            inputs,
            "--seed",
            "7",
            "--force",
          ]);
          assert.equal(p.code, 0, p.stderr);
          await Deno.copyFile(
            join(other, "states.npy"),
            join(run, "states.npy"),
          );
          await repin(run);
        }, /do not match the states_sha256 of its example record/],
        [
          "the last example record removed",
          (run) =>
            editTrace(run, (recs) => {
              const i = recs.findLastIndex((r: Json) => r.kind === "example");
              recs.splice(i, 1);
            }),
          /has step records but no example record|example records, but its header selected/,
        ],
        ["an example record repeated", (run) =>
          editTrace(run, (recs) => {
            recs.push(recs.find((r: Json) => r.kind === "example"));
          }), /has a second example record/],
      ];
      for (const [what, edit, pattern] of cases) {
        for (
          const cmd of [["sae", "fit", ...QUICK_SAE], [
            "intervene",
            ...QUICK_ITV,
          ]]
        ) {
          const run = join(tmp, `run-${cmd[0]}`);
          await Deno.remove(run, { recursive: true }).catch(() => {});
          await copyDir(base, run);
          await edit(run);
          const before = await listDir(run);
          const p = await cli([
            cmd[0],
            ...(cmd[0] === "sae" ? ["fit"] : []),
            "--run-dir",
            run,
            "--force",
            ...cmd.slice(cmd[0] === "sae" ? 2 : 1),
          ]);
          refused(p, pattern, `${cmd[0]}: ${what}`);
          assert.deepEqual(await listDir(run), before, `${what}: no output`);
        }
      }
      // Two shards' states swapped, each header re-pinned.
      const run = join(tmp, "sharded");
      for (const i of [0, 1]) {
        const p = await cli([
          "trace",
          "--run-dir",
          run,
          "--model",
          TINY,
          "--inputs",
          PUZZLES,
          "--shard",
          `${i}/2`,
        ]);
        assert.equal(p.code, 0, p.stderr);
      }
      const [a, b] = [0, 1].map((i) => join(run, "shards", `${i}-of-2`));
      const sa = await Deno.readFile(join(a, "states.npy"));
      const sb = await Deno.readFile(join(b, "states.npy"));
      assert.equal(sa.length, sb.length, "equal shards for a clean swap");
      await Deno.writeFile(join(a, "states.npy"), sb);
      await Deno.writeFile(join(b, "states.npy"), sa);
      await repin(a);
      await repin(b);
      const p = await cli(["sae", "fit", "--run-dir", run, ...QUICK_SAE]);
      refused(
        p,
        /do not match the states_sha256 of its example record/,
        "states swapped between shards",
      );
    });
  });
});

/** Scale states.npy so its largest |value| is `mag`, then re-seal the trace as a forger would. */
async function hugeStates(run: string, mag: number): Promise<void> {
  const f = join(run, "states.npy");
  const npy = decodeNpy(await Deno.readFile(f));
  const d = npy.data as Float32Array;
  let m = 0;
  for (const v of d) m = Math.max(m, Math.abs(v));
  for (let i = 0; i < d.length; i++) d[i] = d[i] / m * mag;
  await Deno.writeFile(f, encodeNpy(d, npy.shape));
  const D = npy.shape[1], raw = new Uint8Array(d.buffer);
  const parts = new Map<string, Uint8Array[]>();
  await editTrace(run, (recs) => {
    for (const r of recs) {
      if (r.kind === "step") {
        const list = parts.get(r.example) ?? [];
        list.push(raw.subarray(r.row * D * 4, (r.row + r.rows) * D * 4));
        parts.set(r.example, list);
      } else if (r.kind === "example") {
        const list = parts.get(r.example)!;
        const all = new Uint8Array(list.reduce((a, b) => a + b.length, 0));
        let o = 0;
        for (const b of list) all.set(b, (o += b.length) - b.length);
        r.states_sha256 = sha256Hex(all);
      }
    }
  });
  await repin(run);
}

/** Scale one tensor of sae.pt so its largest |value| is `mag`. */
async function hugeSae(run: string, tensor: "W_enc" | "W_dec", mag: number) {
  const f = join(run, "sae.pt");
  const { sae, cfg } = SAE.decode(await Deno.readFile(f), f);
  const t = sae[tensor];
  let m = 0;
  for (const v of t) m = Math.max(m, Math.abs(v));
  for (let i = 0; i < t.length; i++) t[i] = t[i] / m * mag;
  await Deno.writeFile(f, encodeSaePt(sae, cfg));
}

Deno.test("hostile #21.4: edits, weights or states that overflow float32 are refused with one line (exit 2), never a report with NaN or exit 1", async () => {
  await withFittedRun(async (base) => {
    await withTempDir(async (tmp) => {
      const clamp = ["--policy", "clamp_features", ...QUICK_ITV.slice(2)];
      const cases: [string, (run: string) => Promise<void>, string[]][] = [
        ["--scale 1e38", () => Promise.resolve(), [
          ...clamp,
          "--scale",
          "1e38",
        ]],
        ["--scale 1e30", () => Promise.resolve(), [
          ...clamp,
          "--scale",
          "1e30",
        ]],
        ["--value 1e30", () => Promise.resolve(), [
          ...clamp,
          "--value",
          "1e30",
        ]],
        ["--value=-1e25", () => Promise.resolve(), [...clamp, "--value=-1e25"]],
        ["sae.pt W_enc near 3e38", (r) => hugeSae(r, "W_enc", 3e38), QUICK_ITV],
        ["sae.pt W_dec near 3e38", (r) => hugeSae(r, "W_dec", 3e38), QUICK_ITV],
        ["states near 3e38, clamp --value 1e20", async (r) => {
          await hugeStates(r, 3e38);
          const p = await cli([
            "sae",
            "fit",
            "--run-dir",
            r,
            "--force",
            ...QUICK_SAE,
          ]);
          assert.equal(p.code === 0 || p.code === 2, true, p.stderr);
          if (p.code === 2) {
            refused(p, /float32/, "sae fit on states near 3e38");
          } else await hugeSae(r, "W_dec", 3e38); // fitted: make the edit overflow too
        }, [...clamp, "--value", "1e20"]],
      ];
      for (const [what, edit, args] of cases) {
        const run = join(tmp, "run");
        await Deno.remove(run, { recursive: true }).catch(() => {});
        await copyDir(base, run);
        await edit(run);
        const p = await cli([
          "intervene",
          "--run-dir",
          run,
          "--force",
          ...args,
        ]);
        refused(p, /(NaN|Infinity).*float32's range|float32/, what);
        assert.ok(!(await listDir(run)).includes("report.json"), what);
      }
    });
  });
});

Deno.test("hostile #21.5: a long command line is refused with one line before onnxruntime-node loads (it would abort the process)", async () => {
  await withTempDir(async (tmp) => {
    const taskFlags = ["--allow-read", "--allow-write", "--allow-ffi"];
    const run = join(tmp, "run");
    const trace = [
      "trace",
      "--run-dir",
      run,
      "--model",
      TINY,
      "--inputs",
      PUZZLES,
    ];
    const cases: [string, string[]][] = [
      ["--seed padded with 40,000 spaces", [
        ...trace,
        "--seed",
        "0" + " ".repeat(40_000),
      ]],
      ["two 15 KB arguments", [
        ...trace,
        "--seed",
        "0" + " ".repeat(15_000),
        "--steps",
        "s*.*.H" + " ".repeat(15_000),
      ]],
      ["--backend native, 30 KB", [
        ...trace,
        "--backend",
        "native",
        "--seed",
        " ".repeat(30_000) + "0",
      ]],
      ["sae fit with 20,000 features listed", [
        "sae",
        "fit",
        "--run-dir",
        run,
        "--features",
        Array(20_000).fill("1").join(","),
      ]],
    ];
    for (const [what, args] of cases) {
      const p = await cli(args, taskFlags);
      refused(
        p,
        /bytes of arguments, more than the 16384 trminterp accepts/,
        what,
      );
      assert.ok(!(await listDir(tmp)).includes("run"), `${what}: no run dir`);
    }
    // 10 KB still runs, on the native backend.
    const p = await cli(
      [...trace, "--seed", "0" + " ".repeat(10_000)],
      taskFlags,
    );
    assert.equal(p.code, 0, p.stderr);
  });
});

Deno.test("hostile #21.6: the README's scoped trace line with --shard, into a run dir that does not exist yet, needs only the run dir's grant", async () => {
  const wasm = ortWasmFiles("wasm")[0];
  await withTempDir(async (tmp) => {
    for (const run of [join(tmp, "run"), join(tmp, "new", "deeper", "run")]) {
      for (const i of [0, 1]) {
        const p = await cli(
          [
            "trace",
            "--run-dir",
            run,
            "--model",
            TINY,
            "--inputs",
            PUZZLES,
            "--shard",
            `${i}/2`,
          ],
          [
            "--no-prompt",
            `--allow-read=${TINY},${PUZZLES},${run},${wasm}`,
            `--allow-write=${run}`,
          ],
        );
        assert.equal(p.code, 0, `${run} shard ${i}: ${p.stderr}`);
      }
      assert.deepEqual(await listDir(join(run, "shards")), [
        "0-of-2",
        "1-of-2",
      ]);
      const p = await cli(
        ["sae", "fit", "--run-dir", run, ...QUICK_SAE],
        [
          "--no-prompt",
          `--allow-read=${run},${TINY},${wasm}`,
          `--allow-write=${run}`,
        ],
      );
      assert.equal(p.code, 0, p.stderr);
    }
    assert.deepEqual(await listDir(tmp), ["new", "run"]);
  });
});

Deno.test("hostile #21.7: the README's scoped sae fit and intervene lines work on a run traced with deno task (native recorded)", async () => {
  const wasm = ortWasmFiles("wasm")[0];
  await withTempDir(async (tmp) => {
    const run = join(tmp, "run");
    let p = await cli(
      ["trace", "--run-dir", run, "--model", TINY, "--inputs", PUZZLES],
      ["--no-prompt", "--allow-read", "--allow-write", "--allow-ffi"],
    );
    assert.equal(p.code, 0, p.stderr);
    const header = JSON.parse(
      (await Deno.readTextFile(join(run, "trace.jsonl"))).split("\n")[0],
    );
    assert.equal(header.backend, "native");
    // The README's lines, as printed (RUN, MODEL and WASM filled in).
    const scoped = [
      "--no-prompt",
      `--allow-read=${run},${TINY},${wasm}`,
      `--allow-write=${run}`,
    ];
    p = await cli(["sae", "fit", "--run-dir", run, ...QUICK_SAE], scoped);
    assert.equal(p.code, 0, p.stderr);
    const m = JSON.parse(
      await Deno.readTextFile(join(run, "sae_metrics.json")),
    );
    assert.equal(
      typeof m.task_accuracy_recovered.acc_clean,
      "number",
      JSON.stringify(m.task_accuracy_recovered),
    );
    assert.match(
      m.task_accuracy_recovered.formula,
      /rolled out on wasm \(the trace ran on native\)/,
    );
    p = await cli(["intervene", "--run-dir", run, ...QUICK_ITV], scoped);
    assert.equal(p.code, 0, p.stderr);
    assert.match(
      p.stderr,
      /the trace ran on native; without --allow-ffi this runs on wasm/,
    );
    const r = JSON.parse(await Deno.readTextFile(join(run, "report.json")));
    assert.equal(r.provenance.backend, "wasm");
    assert.equal(r.provenance.baseline, "rerun");
    assert.equal(r.comparison.examples, header.inputs.selected); // every traced example
  });
});

/** Every byte of `text` that would act on a terminal (C0 but \n and \t, DEL, C1). */
function rawControls(text: string): string[] {
  // deno-lint-ignore no-control-regex
  return text.match(/[\x00-\x08\x0b-\x1f\x7f\u0080-\u009f]/g) ?? [];
}

/** sae.pt with one byte of its pickle flipped inside `key`, the zip re-sealed (CRCs right). */
async function flipCfgKey(run: string, key: string): Promise<void> {
  const f = join(run, "sae.pt");
  const entries = [...decodeZip(await Deno.readFile(f))].map(([name, data]) => {
    if (!name.endsWith("data.pkl")) return { name, data };
    const d = data.slice();
    const at = new TextDecoder("latin1").decode(d).indexOf(key);
    assert.ok(at >= 0, `${key} in the pickle`);
    d[at + key.length - 1] ^= 1;
    return { name, data: d };
  });
  await Deno.writeFile(f, rawZip(entries));
}

Deno.test("hostile #21.9: terminal escapes in paths are printed inert, non-UTF-8 paths, --epochs with --train-steps and a re-sealed flipped pickle byte are refused with one clear line", async () => {
  await withFittedRun(async (base) => {
    await withTempDir(async (tmp) => {
      // ESC (OSC title, CSI clear screen), BEL and C1 CSI in --run-dir: a
      // summary and an error line both echo it.
      for (
        const name of [
          "x\x1b]0;PWNED\x07y",
          "c\x1b[2Jd",
          "e\u009b31mf",
          "g\rh\x7f",
        ]
      ) {
        const run = join(tmp, name);
        let p = await cli([
          "trace",
          "--run-dir",
          run,
          "--model",
          TINY,
          "--inputs",
          PUZZLES,
        ]);
        assert.equal(p.code, 0, p.stderr);
        assert.deepEqual(
          rawControls(p.stdout + p.stderr),
          [],
          JSON.stringify(name),
        );
        assert.match(p.stdout, /next: .*\\x1b|\\u009b|\\x0d/);
        p = await cli([
          "intervene",
          "--run-dir",
          run,
          "--policy",
          "ablate_features",
        ]);
        assert.equal(p.code, 2, p.stderr);
        assert.deepEqual(rawControls(p.stderr), [], JSON.stringify(p.stderr));
      }
      // Bytes that are not UTF-8 (Deno would read them as U+FFFD).
      for (const bytes of ["\\377\\376", "\\300\\257", "ab\\355\\240\\200"]) {
        const p = await run("sh", [
          "-c",
          `exec "$0" run --quiet -A "$1" trace --run-dir "$2/$(printf 'r${bytes}')" --model "$3" --inputs "$4"`,
          Deno.execPath(),
          join(ROOT, "cli.ts"),
          tmp,
          TINY,
          PUZZLES,
        ]);
        refused(
          p,
          /not valid UTF-8 \(shown as U\+FFFD\)/,
          `non-UTF-8 ${bytes}`,
        );
      }
      assert.deepEqual(
        (await listDir(tmp)).filter((n) => n.startsWith("r")),
        [],
        "no folder under another name",
      );
      // Two ways to say how long to train.
      const r = join(tmp, "fit");
      await copyDir(base, r);
      for (const [e, t] of [["2", "30"], ["1", "1"]]) {
        const p = await cli([
          "sae",
          "fit",
          "--run-dir",
          r,
          "--force",
          "--epochs",
          e,
          "--train-steps",
          t,
        ]);
        refused(
          p,
          /--epochs and --train-steps both set how long to train; give one/,
          `--epochs ${e} --train-steps ${t}`,
        );
      }
      // A flipped pickle byte in a cfg key, the zip re-sealed.
      for (const key of ["latent", "trace_digest", "steps", "model_sha256"]) {
        const run = join(tmp, `flip-${key}`);
        await copyDir(base, run);
        await flipCfgKey(run, key);
        const p = await cli(["intervene", "--run-dir", run, ...QUICK_ITV]);
        refused(
          p,
          /sae\.pt: its cfg is not one trminterp writes .*fit the SAE again/,
          `flipped byte in ${key}`,
        );
        assert.match(p.stderr, new RegExp(`\\(${key}: `), "names the field");
      }
    });
  });
});
