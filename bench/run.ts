/**
 * `deno task bench [--full]`: trminterp against the tools a researcher would
 * use instead, in one run on one machine, on the same weights and graphs.
 *
 * - trminterp's runner on onnxruntime-web WASM (the sandboxed path, with the
 *   threads loadBundle picks, and on 1 thread) and on the native backend
 *   (onnxruntime-node: what `--backend auto` picks with --allow-ffi);
 * - PyTorch eager CPU running the reference TRM (references/python/trm_model.py);
 * - Python onnxruntime on the same .onnx files
 *   (references/python/bench_runner.py);
 * - the demo trace written by hand in PyTorch (bench/trace_torch.py).
 *
 * Measures rollout throughput (net calls/s, examples/s, recording off and
 * on), the demo trace and the demo loop as whole processes (`deno task
 * trminterp ...` with --allow-ffi, and sandboxed), per-call time, startup,
 * `sae fit` throughput and FVU against references/python/sae_ref.py (data
 * drawn from a stream no trainer uses), and the peak RSS of `trace` and
 * `sae fit` as the data grows. Prints a table of ratios (trminterp /
 * baseline; > 1 is faster for throughput) and writes the raw figures as
 * JSON to `--json FILE` when asked.
 *
 * Fast mode (default, for CI): batch 2, one supervision step of the full-size
 * models, 100 and 1,000 examples for RSS. `--full`: batch 8, two reps,
 * 100 / 1,000 / 10,000 examples. Every trminterp measurement runs in a child
 * process (this file with `--child`), so thread settings and peak RSS are its own.
 *
 * Run: `deno task bench` or `deno run -A bench/run.ts --full --json out.json`
 *
 * @module
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { loadBundle } from "../lib/model/bundle.ts";
import {
  type BackendName,
  type HostTensor,
  setWasmThreads,
  wasmThreads,
} from "../lib/model/backend.ts";
import { rollout, type RolloutExample } from "../lib/model/rollout.ts";
import { fitSAE, type RowSource } from "../lib/sae/train/trainer.ts";
import { encodeNpy } from "../lib/io/npy.ts";
import { Rng } from "../lib/rng.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const PY = join(ROOT, "references/python");
const PYTHON = Deno.env.get("TRMINTERP_PYTHON") ??
  (existsSync(join(ROOT, ".venv/bin/python"))
    ? join(ROOT, ".venv/bin/python")
    : "python3");
/** A trminterp child gets this long before it is killed and reported as timed out. */
let CHILD_TIMEOUT_S = 120;

// ---------------------------------------------------------------- child mode

interface RolloutFigures {
  impl: string;
  batch: number;
  record: boolean;
  threads: number;
  net_calls: number;
  seconds: number;
  net_calls_per_s: number;
  ms_per_call: number;
  examples_per_s: number;
  first_call_s: number;
  process_to_first_call_s?: number;
  peak_rss_mb?: number;
  timed_out_s?: number;
}

function inputs(S: number, V: number, B: number): BigInt64Array {
  // Shared with bench_runner.py: token i = 2 + (7 i + 3) mod (V - 2).
  const t = new BigInt64Array(B * S);
  for (let i = 0; i < t.length; i++) t[i] = BigInt(2 + (7 * i + 3) % (V - 2));
  return t;
}

async function childRollout(a: Record<string, string>): Promise<void> {
  const backend = a.backend as BackendName;
  // 0: the backend's own default (WASM: what loadBundle picks for the model).
  const threads = Number(a.threads ?? 1);
  if (backend === "wasm") {
    setWasmThreads(threads);
  } else if (backend === "native") {
    const { setNativeThreads } = await import("../lib/model/backend_native.ts");
    setNativeThreads(threads);
  }
  const B = Number(a.batch), reps = Number(a.reps), record = a.record === "1";
  const fullSup = Number(a["full-sup"] ?? 0);
  const t0 = performance.now();
  const bundle = await loadBundle(a.bundle, { backend });
  const m = bundle.manifest;
  const tokens = inputs(m.seq_len, m.vocab_size, B);
  const callsPerSup = m.schedule.H_cycles * (m.schedule.L_cycles + 1);
  const calls = callsPerSup * m.schedule.halt_max_steps;
  let first = 0;
  const once = async () => {
    const kept: Float32Array[] = [];
    await rollout(bundle, asExamples(tokens, m.seq_len), {
      batch: B,
      hooks: record
        ? [{ onStep: (e) => void kept.push((e.state as Float32Array).slice()) }]
        : [],
      collect: false,
    });
    return kept.length;
  };
  // Warm-up: embed, one net call (timed from process start), head.
  {
    const S = m.seq_len, T = S + m.puzzle_emb_len, D = m.hidden_size;
    const feeds: Record<string, HostTensor> = {
      tokens: { type: "int64", data: tokens, dims: [B, S] },
    };
    if (m.puzzle_emb_len > 0) {
      feeds.puzzle_identifiers = {
        type: "int64",
        data: new BigInt64Array(B),
        dims: [B],
      };
    }
    const x = (await bundle.sessions.embed.run(feeds)).x;
    const net = bundle.sessions.net ?? bundle.sessions.L_net;
    const z = (await net.run({ hidden: x, injection: x })).hidden_out;
    first = performance.now();
    await bundle.sessions.head.run({ z_H: { ...z, dims: [B, T, D] } });
  }
  const firstCall = (first - t0) / 1000;
  const fromStart = first / 1000;
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const s = performance.now();
    await once();
    best = Math.min(best, (performance.now() - s) / 1000);
  }
  await bundle.release();
  const full = fullSup ? callsPerSup * fullSup : calls;
  const out: RolloutFigures = {
    impl: `${backend}-${threads || "default"}t`,
    batch: B,
    record,
    threads: backend === "wasm" ? wasmThreads() : threads,
    net_calls: calls,
    seconds: best,
    net_calls_per_s: calls / best,
    ms_per_call: 1000 * best / calls,
    examples_per_s: B / (best * full / calls),
    first_call_s: firstCall,
    process_to_first_call_s: fromStart,
  };
  console.log(JSON.stringify(out));
}

/** Time add.onnx and matmul.onnx (from `bench_runner.py micro`) on one thread. */
async function childMicro(a: Record<string, string>): Promise<void> {
  const backend = a.backend as BackendName;
  if (backend === "native") {
    const { setNativeThreads } = await import("../lib/model/backend_native.ts");
    setNativeThreads(1);
  }
  const { createSession } = await import("../lib/model/backend.ts");
  for (const name of ["add", "matmul"]) {
    const s = await createSession(
      await Deno.readFile(join(a.dir, `${name}.onnx`)),
      { backend },
    );
    const rng = new Rng(0);
    const feeds: Record<string, HostTensor> = name === "add"
      ? {
        hidden: {
          type: "float32",
          data: new Float32Array(18 * 32).fill(1),
          dims: [1, 18, 32],
        },
        injection: {
          type: "float32",
          data: new Float32Array(18 * 32).fill(1),
          dims: [1, 18, 32],
        },
      }
      : {
        hidden: {
          type: "float32",
          data: new Float32Array(2 * 97 * 512).map(() => rng.normal()),
          dims: [2, 97, 512],
        },
      };
    const n = name === "add" ? 2000 : 20,
      flops = name === "add" ? 0 : 2 * 194 * 512 * 1536;
    for (let i = 0; i < n / 4; i++) await s.run(feeds);
    let best = Infinity;
    for (let r = 0; r < 10; r++) {
      const t = performance.now();
      for (let i = 0; i < n / 10; i++) await s.run(feeds);
      best = Math.min(best, (performance.now() - t) / 1000 / (n / 10));
    }
    await s.release();
    console.log(JSON.stringify({
      graph: name,
      impl: backend,
      us_per_call: best * 1e6,
      gflops: flops ? flops / best / 1e9 : null,
    }));
  }
}

// ---------------------------------------------------------------- helpers

function parseArgs(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (!k.startsWith("--")) continue;
    const next = argv[i + 1];
    if (next === undefined || next.startsWith("--")) out[k.slice(2)] = "1";
    else out[k.slice(2)] = argv[++i];
  }
  return out;
}

interface Ran {
  stdout: string;
  stderr: string;
  seconds: number;
  maxrss_mb: number;
}

/** Run a command under /usr/bin/time (peak RSS of the process tree's largest). */
async function sh(
  cmd: string[],
  opts: { env?: Record<string, string>; timeoutS?: number } = {},
): Promise<Ran> {
  const rssFile = await Deno.makeTempFile();
  const t0 = performance.now();
  const limit = opts.timeoutS
    ? ["timeout", "-s", "KILL", String(opts.timeoutS)]
    : [];
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "%M", "-o", rssFile, ...limit, ...cmd],
    cwd: ROOT,
    env: opts.env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - t0) / 1000;
  const dec = new TextDecoder();
  const stdout = dec.decode(out.stdout), stderr = dec.decode(out.stderr);
  if (opts.timeoutS && (out.code === 137 || out.code === 124)) {
    await Deno.remove(rssFile).catch(() => {});
    throw new TimeoutError(`${cmd.join(" ")} ran past ${opts.timeoutS} s`);
  }
  if (!out.success) {
    throw new Error(
      `${cmd.join(" ")} failed (${out.code}):\n${stderr.slice(-2000)}`,
    );
  }
  const kb = Number(
    (await Deno.readTextFile(rssFile)).trim().split("\n").at(-1),
  );
  await Deno.remove(rssFile);
  return { stdout, stderr, seconds, maxrss_mb: kb / 1024 };
}

class TimeoutError extends Error {}

function jsonLines<T>(s: string): T[] {
  return s.split("\n").filter((l) => l.startsWith("{")).map((l) =>
    JSON.parse(l) as T
  );
}

const log = (msg: string) =>
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);

async function trmRollout(
  bundle: string,
  backend: BackendName,
  batch: number,
  reps: number,
  o: {
    record?: boolean;
    threads?: number;
    fullSup?: number;
    timeoutS?: number;
  } = {},
): Promise<RolloutFigures> {
  const args = [
    "deno",
    "run",
    "--allow-read",
    "--allow-env",
    "--allow-ffi",
    join(ROOT, "bench/run.ts"),
    "--child",
    "rollout",
    "--bundle",
    bundle,
    "--backend",
    backend,
    "--batch",
    String(batch),
    "--reps",
    String(reps),
    "--threads",
    String(o.threads ?? 1),
    "--record",
    o.record ? "1" : "0",
    "--full-sup",
    String(o.fullSup ?? 0),
  ];
  const timeoutS = o.timeoutS ?? CHILD_TIMEOUT_S;
  let r: Ran;
  try {
    r = await sh(args, { timeoutS });
  } catch (e) {
    if (!(e instanceof TimeoutError)) throw e;
    log(
      `  ${backend} ${
        o.threads ?? 1
      } threads batch ${batch}: no result within ${timeoutS} s`,
    );
    return {
      impl: `${backend}-${o.threads || "default"}t`,
      batch,
      record: !!o.record,
      threads: o.threads ?? 1,
      net_calls: 0,
      seconds: Infinity,
      net_calls_per_s: 0,
      ms_per_call: Infinity,
      examples_per_s: 0,
      first_call_s: Infinity,
      timed_out_s: timeoutS,
    };
  }
  const f = jsonLines<RolloutFigures>(r.stdout)[0];
  f.peak_rss_mb = r.maxrss_mb;
  return f;
}

async function pyRollout(
  bundle: string,
  impls: string,
  batch: number,
  reps: number,
  o: { record?: boolean; fullSup?: number; threads?: number } = {},
): Promise<Record<string, RolloutFigures>> {
  const r = await sh([
    PYTHON,
    join(PY, "bench_runner.py"),
    "time",
    "--bundle",
    bundle,
    "--impl",
    impls,
    "--batch",
    String(batch),
    "--reps",
    String(reps),
    "--full-sup-steps",
    String(o.fullSup ?? 0),
    "--threads",
    String(o.threads ?? 0),
    ...(o.record ? ["--record"] : []),
  ]);
  const out: Record<string, RolloutFigures> = {};
  for (const f of jsonLines<RolloutFigures>(r.stdout)) {
    f.impl = `${f.impl}-${o.threads || "default"}t`;
    out[f.impl] = f;
  }
  return out;
}

// ---------------------------------------------------------------- SAE

/**
 * The planted data draws from its own stream, never one the trainers use:
 * fitSAE initialises its decoder from `Rng(seed, 0)`, so data from `Rng(0)`
 * with as many atoms as latents handed trminterp's trainer the true
 * dictionary as its starting point (and a lower FVU than torch's).
 */
const DATA_RNG = () => new Rng(0x5eed, 0xda7a);

function planted(
  n: number,
  dim: number,
  nAtoms: number,
  active: number,
): Float32Array {
  const rng = DATA_RNG();
  const atoms = new Float32Array(nAtoms * dim);
  for (let a = 0; a < nAtoms; a++) {
    let s = 0;
    for (let d = 0; d < dim; d++) s += (atoms[a * dim + d] = rng.normal()) ** 2;
    for (let d = 0; d < dim; d++) atoms[a * dim + d] /= Math.sqrt(s);
  }
  const x = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < active; t++) {
      const a = rng.int(nAtoms), c = 0.5 + rng.float();
      for (let d = 0; d < dim; d++) x[i * dim + d] += c * atoms[a * dim + d];
    }
  }
  return x;
}

interface SaeFigures {
  impl: string;
  activations_per_s: number;
  seconds: number;
  fvu: number;
}

async function saeCase(
  tmp: string,
  D: number,
  F: number,
  k: number,
  n: number,
  steps: number,
  batch: number,
  threads: number,
): Promise<{ ts: SaeFigures; torch: SaeFigures; torchAll: SaeFigures }> {
  const x = planted(n, D, F, k);
  const npy = join(tmp, `sae_${D}_${F}.npy`);
  await Deno.writeFile(npy, encodeNpy(x, [n, D]));
  const src: RowSource = {
    n,
    dim: D,
    rows(ix, out) {
      for (let i = 0; i < ix.length; i++) {
        out.set(x.subarray(ix[i] * D, (ix[i] + 1) * D), i * D);
      }
    },
  };
  const lr = 1e-3;
  const t0 = performance.now();
  const { sae } = fitSAE(src, {
    d_sae: F,
    k,
    batch_size: batch,
    steps,
    seed: 0,
    lr,
  });
  const seconds = (performance.now() - t0) / 1000;
  // FVU on the training rows, as sae_ref.py reports it.
  const stride = 1;
  let sse = 0, vv = 0;
  const mean = new Float64Array(D);
  for (let i = 0; i < n; i++) {
    for (let d = 0; d < D; d++) mean[d] += x[i * D + d] / n;
  }
  const evalRows = new Float32Array(Math.ceil(n / stride) * D);
  for (let i = 0, j = 0; i < n; i += stride, j++) {
    evalRows.set(x.subarray(i * D, (i + 1) * D), j * D);
  }
  const rec = sae.decode(sae.encode(evalRows));
  for (let j = 0; j < evalRows.length; j++) {
    sse += (rec[j] - evalRows[j]) ** 2;
    vv += (evalRows[j] - mean[j % D]) ** 2;
  }
  const ts = {
    impl: "trminterp",
    activations_per_s: steps * batch / seconds,
    seconds,
    fvu: sse / vv,
  };
  const torchRun = async (t: number) =>
    jsonLines<SaeFigures>(
      (await sh([
        PYTHON,
        join(PY, "sae_ref.py"),
        "--states",
        npy,
        "--d-sae",
        String(F),
        "--k",
        String(k),
        "--batch",
        String(batch),
        "--steps",
        String(steps),
        "--lr",
        String(lr),
        "--seed",
        "0",
        "--threads",
        String(t),
        "--warmup-steps",
        "0",
      ])).stdout,
    )[0];
  const py = await torchRun(threads);
  const pyAll = await torchRun(navigator.hardwareConcurrency || 1);
  await Deno.remove(npy);
  return {
    ts,
    torch: { ...py, impl: "torch" },
    torchAll: { ...pyAll, impl: "torch" },
  };
}

// ---------------------------------------------------------------- RSS growth

async function puzzlesFile(tmp: string, n: number): Promise<string> {
  // The 4x4 Sudoku training puzzles, repeated to n lines with fresh ids.
  const src = (await Deno.readTextFile(
    join(ROOT, "references/models/sudoku4-trm/train.jsonl"),
  ))
    .split("\n").filter(Boolean);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const o = JSON.parse(src[i % src.length]);
    o.id = `b${i}`;
    lines.push(JSON.stringify(o));
  }
  const p = join(tmp, `puzzles_${n}.jsonl`);
  await Deno.writeTextFile(p, lines.join("\n") + "\n");
  return p;
}

// ---------------------------------------------------------------- main

async function main() {
  const a = parseArgs(Deno.args);
  if (a.child === "rollout") return await childRollout(a);
  if (a.child === "micro") return await childMicro(a);
  const full = a.full === "1";
  CHILD_TIMEOUT_S = full ? 240 : 120;
  const tmp = await Deno.makeTempDir({ prefix: "trminterp-bench-" });
  const results: Record<string, unknown> = { mode: full ? "full" : "fast" };
  const rows: [string, string, string, string][] = [];
  const ratio = (x: number, y: number) => (x / y).toFixed(2) + "×";
  const add = (what: string, figs: string, r: string, target: string) =>
    rows.push([what, figs, r, target]);
  const started = performance.now();
  try {
    // ---- models
    const demoDir =
      await exists(join(ROOT, "references/models/sudoku4-trm/model.json"))
        ? join(ROOT, "references/models/sudoku4-trm")
        : join(ROOT, "tests/fixtures/tiny_trm");
    results.demo = demoDir;
    const B = full ? 8 : 2, reps = 1, sup = 1, rounds = full ? 3 : 2;
    const fig = (f: RolloutFigures) =>
      f.timed_out_s
        ? `no result within ${f.timed_out_s} s`
        : `${f.net_calls_per_s.toFixed(2)} calls/s, ${
          f.examples_per_s.toFixed(4)
        } ex/s`;
    for (const arch of ["mlp", "att"]) {
      const dir = join(tmp, `trm-${arch}`);
      log(`export full-size TRM-${arch} (random weights) to ${dir}`);
      await sh([
        PYTHON,
        join(PY, "bench_runner.py"),
        "gen",
        "--arch",
        arch,
        "--out",
        dir,
        "--halt-max-steps",
        String(sup),
      ]);
      // Rounds of every implementation, interleaved; each keeps its best round
      // (a shared machine's noise only ever slows a run down).
      const best: Record<string, RolloutFigures> = {};
      const keep = (f: RolloutFigures, key = f.impl) => {
        if (!best[key] || f.seconds < best[key].seconds) best[key] = f;
      };
      for (let r = 0; r < rounds; r++) {
        log(
          `TRM-${arch} round ${
            r + 1
          }/${rounds}: torch eager, python onnxruntime, trminterp wasm + native; batch ${B}`,
        );
        for (const threads of [1, 0]) {
          for (
            const f of Object.values(
              await pyRollout(dir, "torch,ort", B, reps, {
                fullSup: 16,
                threads,
              }),
            )
          ) keep(f);
        }
        keep(
          await trmRollout(dir, "wasm", B, reps, { fullSup: 16, threads: 1 }),
        );
        // the sandboxed default: WASM with the threads loadBundle picks
        keep(
          await trmRollout(dir, "wasm", B, reps, { fullSup: 16, threads: 0 }),
        );
        keep(
          await trmRollout(dir, "native", B, reps, { fullSup: 16, threads: 1 }),
        );
        keep(
          await trmRollout(dir, "native", B, reps, { fullSup: 16, threads: 0 }),
        );
        // recording on: every state copied out at every net call
        keep(
          await trmRollout(dir, "wasm", B, reps, {
            fullSup: 16,
            threads: 1,
            record: true,
          }),
          "wasm-1t-rec",
        );
        keep(
          await trmRollout(dir, "native", B, reps, {
            fullSup: 16,
            threads: 0,
            record: true,
          }),
          "native-defaultt-rec",
        );
        const tr = await pyRollout(dir, "torch", B, reps, {
          fullSup: 16,
          threads: 0,
          record: true,
        });
        keep(tr["torch-defaultt"], "torch-defaultt-rec");
      }
      results[`trm_${arch}`] = best;
      const t1 = best["torch-1t"], t = best["torch-defaultt"];
      add(
        `TRM-${arch} D512 B${B}: torch eager, ${t.threads} threads`,
        fig(t),
        "1.00×",
        "",
      );
      add(
        `  torch eager, 1 thread`,
        fig(t1),
        ratio(t1.net_calls_per_s, t.net_calls_per_s),
        "",
      );
      add(
        `  python onnxruntime, ${best["ort-defaultt"].threads} threads`,
        fig(best["ort-defaultt"]),
        ratio(best["ort-defaultt"].net_calls_per_s, t.net_calls_per_s),
        "",
      );
      add(
        `  trminterp wasm, 1 thread`,
        fig(best["wasm-1t"]),
        ratio(best["wasm-1t"].net_calls_per_s, t.net_calls_per_s),
        "report",
      );
      add(
        `    same, vs torch 1 thread`,
        "",
        ratio(best["wasm-1t"].net_calls_per_s, t1.net_calls_per_s),
        "",
      );
      add(
        `  trminterp wasm, default (${
          best["wasm-defaultt"].threads
        } threads; sandboxed)`,
        fig(best["wasm-defaultt"]),
        ratio(best["wasm-defaultt"].net_calls_per_s, t.net_calls_per_s),
        "≥ 0.35× torch",
      );
      add(
        `  trminterp native, 1 thread`,
        fig(best["native-1t"]),
        ratio(best["native-1t"].net_calls_per_s, t.net_calls_per_s),
        "lever",
      );
      add(
        `  trminterp native, default threads (auto with --allow-ffi)`,
        fig(best["native-defaultt"]),
        ratio(best["native-defaultt"].net_calls_per_s, t.net_calls_per_s),
        "≥ 1.1× torch",
      );
      const fastest = ["native-1t", "native-defaultt"].map((k) => best[k])
        .reduce((x, y) => x.seconds < y.seconds ? x : y);
      add(
        `  trminterp fastest backend (${
          fastest.impl.replace(/-defaultt$/, ", default threads")
            .replace(/-(\d+)t$/, ", $1 threads")
        })`,
        "",
        ratio(
          fastest.net_calls_per_s,
          Math.max(t.net_calls_per_s, t1.net_calls_per_s),
        ),
        "≥ 1.0× best torch",
      );
      add(
        `  recording on: wasm / native / torch`,
        `${best["wasm-1t-rec"].net_calls_per_s.toFixed(2)} / ${
          best["native-defaultt-rec"].net_calls_per_s.toFixed(2)
        } / ${best["torch-defaultt-rec"].net_calls_per_s.toFixed(2)} calls/s`,
        ratio(
          best["native-defaultt-rec"].net_calls_per_s,
          best["torch-defaultt-rec"].net_calls_per_s,
        ),
        "native/torch",
      );
      add(
        `  native vs python onnxruntime (default threads)`,
        "",
        ratio(
          best["native-defaultt"].net_calls_per_s,
          best["ort-defaultt"].net_calls_per_s,
        ),
        "",
      );
    }

    // ---- the demo trace: `deno task trminterp trace` against the same trace
    // written by hand in PyTorch (bench/trace_torch.py), whole processes,
    // interleaved rounds, medians.
    {
      const rounds = 3;
      log(
        `demo trace: trminterp (auto, sandboxed) vs bench/trace_torch.py, ${rounds} interleaved rounds`,
      );
      const cli = (ffi: boolean, args: string[]) => [
        "deno",
        "run",
        "--no-prompt",
        "--allow-read",
        "--allow-write",
        ...(ffi ? ["--allow-ffi"] : []),
        join(ROOT, "cli.ts"),
        ...args,
      ];
      const t: Record<string, Ran[]> = { torch: [], auto: [], sandboxed: [] };
      for (let r = 0; r < rounds; r++) {
        t.torch.push(
          await sh([
            PYTHON,
            join(ROOT, "bench/trace_torch.py"),
            "--bundle",
            demoDir,
            "--out",
            join(tmp, "torch-trace"),
          ]),
        );
        for (
          const [key, ffi] of [["auto", true], ["sandboxed", false]] as const
        ) {
          t[key].push(
            await sh(
              cli(ffi, [
                "trace",
                "--run-dir",
                join(tmp, `trace-${key}`),
                "--seed",
                "0",
                "--force",
              ]),
            ),
          );
        }
      }
      const backendOf = async (key: string) =>
        JSON.parse(
          (await Deno.readTextFile(join(tmp, `trace-${key}`, "trace.jsonl")))
            .slice(0, 65536).split("\n")[0],
        ).backend;
      const med = (xs: Ran[]) => medianOf(xs.map((x) => x.seconds));
      const demoTrace = {
        torch: t.torch.map((x) => x.seconds),
        auto: t.auto.map((x) => x.seconds),
        sandboxed: t.sandboxed.map((x) => x.seconds),
        backends: {
          auto: await backendOf("auto"),
          sandboxed: await backendOf("sandboxed"),
        },
        rss_mb: {
          torch: t.torch.map((x) => x.maxrss_mb),
          auto: t.auto.map((x) => x.maxrss_mb),
          sandboxed: t.sandboxed.map((x) => x.maxrss_mb),
        },
      };
      results.demo_trace = demoTrace;
      add(
        `demo trace, 464 examples, every state (median of ${rounds}): torch script`,
        `${med(t.torch).toFixed(2)} s`,
        "1.00×",
        "",
      );
      add(
        `  trminterp trace (auto: ${demoTrace.backends.auto})`,
        `${med(t.auto).toFixed(2)} s`,
        ratio(med(t.torch), med(t.auto)),
        "≥ 1.0× torch",
      );
      add(
        `  trminterp trace, sandboxed (${demoTrace.backends.sandboxed})`,
        `${med(t.sandboxed).toFixed(2)} s`,
        ratio(med(t.torch), med(t.sandboxed)),
        "",
      );

      // ---- the demo loop, as `deno task demo` runs it, and sandboxed
      const loopRounds = full ? 3 : 1;
      log(
        `demo loop: trace, sae fit, intervene; auto and sandboxed; ${loopRounds} round(s)`,
      );
      const loop: Record<
        string,
        { trace: number; sae: number; intervene: number }[]
      > = { auto: [], sandboxed: [] };
      for (let r = 0; r < loopRounds; r++) {
        for (
          const [key, ffi] of [["auto", true], ["sandboxed", false]] as const
        ) {
          const run = join(tmp, `loop-${key}`);
          const tr = await sh(
            cli(ffi, ["trace", "--run-dir", run, "--seed", "0", "--force"]),
          );
          const sf = await sh(
            cli(ffi, [
              "sae",
              "fit",
              "--run-dir",
              run,
              "--seed",
              "0",
              "--force",
            ]),
          );
          const iv = await sh(
            cli(ffi, [
              "intervene",
              "--run-dir",
              run,
              "--policy",
              "ablate_features",
              "--seed",
              "0",
              "--force",
            ]),
          );
          loop[key].push({
            trace: tr.seconds,
            sae: sf.seconds,
            intervene: iv.seconds,
          });
        }
      }
      results.demo_loop = loop;
      for (const key of ["auto", "sandboxed"] as const) {
        const m = (
          f: (x: { trace: number; sae: number; intervene: number }) => number,
        ) => medianOf(loop[key].map(f));
        add(
          `demo loop, ${key} (median of ${loopRounds}): trace / sae fit / intervene`,
          `${m((x) => x.trace).toFixed(1)} / ${m((x) => x.sae).toFixed(1)} / ${
            m((x) => x.intervene).toFixed(1)
          } s, total ${m((x) => x.trace + x.sae + x.intervene).toFixed(1)} s`,
          ratio(m((x) => x.intervene / x.trace), 1),
          key === "auto" ? "intervene ≤ 2× trace; total ≤ 30 s" : "",
        );
      }
    }

    // ---- demo model: per-call overhead at batch 1 (every implementation on 1 thread)
    {
      const dreps = full ? 50 : 20;
      log(`demo model ${demoDir}: batch 1, ${dreps} rollouts; batch 64`);
      const py = await pyRollout(demoDir, "torch,ort", 1, dreps, {
        threads: 1,
      });
      const wasm = await trmRollout(demoDir, "wasm", 1, dreps);
      const native = await trmRollout(demoDir, "native", 1, dreps, {
        threads: 1,
      });
      const wasmRec = await trmRollout(demoDir, "wasm", 1, dreps, {
        record: true,
      });
      const wasm64 = await trmRollout(demoDir, "wasm", 64, full ? 10 : 4);
      const native64 = await trmRollout(demoDir, "native", 64, full ? 10 : 4, {
        threads: 1,
      });
      const py64 = await pyRollout(demoDir, "torch,ort", 64, full ? 10 : 4, {
        threads: 1,
      });
      results.demo = {
        dir: demoDir,
        py,
        wasm,
        native,
        wasmRec,
        wasm64,
        native64,
        py64,
      };
      const ort1 = py["ort-1t"], t1 = py["torch-1t"];
      const us = (f: RolloutFigures) =>
        `${(f.ms_per_call * 1000).toFixed(0)} µs/call`;
      const name = demoDir.split("/").at(-1);
      add(
        `demo (${name}) B1, 1 thread: python onnxruntime`,
        us(ort1),
        "1.00×",
        "",
      );
      add(
        `  trminterp wasm per-call time`,
        us(wasm),
        ratio(wasm.ms_per_call, ort1.ms_per_call),
        "≤ 1.5× native ort",
      );
      add(
        `  trminterp wasm, recording on`,
        us(wasmRec),
        ratio(wasmRec.ms_per_call, ort1.ms_per_call),
        "",
      );
      add(
        `  trminterp native per-call time`,
        us(native),
        ratio(native.ms_per_call, ort1.ms_per_call),
        "≤ 1.5× native ort",
      );
      add(
        `  torch eager per-call time`,
        us(t1),
        ratio(t1.ms_per_call, ort1.ms_per_call),
        "",
      );
      const ex = (f: RolloutFigures) => `${f.examples_per_s.toFixed(0)} ex/s`;
      add(`demo B64, 1 thread: torch eager`, ex(py64["torch-1t"]), "1.00×", "");
      add(
        `  python onnxruntime`,
        ex(py64["ort-1t"]),
        ratio(py64["ort-1t"].examples_per_s, py64["torch-1t"].examples_per_s),
        "",
      );
      add(
        `  trminterp wasm`,
        ex(wasm64),
        ratio(wasm64.examples_per_s, py64["torch-1t"].examples_per_s),
        "",
      );
      add(
        `  trminterp native`,
        ex(native64),
        ratio(native64.examples_per_s, py64["torch-1t"].examples_per_s),
        "",
      );
    }

    // ---- what limits WASM: fixed cost per call and GEMM speed, 1 thread
    {
      log("micro: one-node graphs (fixed per-call cost, GEMM GFLOP/s)");
      const dir = join(tmp, "micro");
      type Micro = {
        graph: string;
        impl: string;
        us_per_call: number;
        gflops: number | null;
      };
      const py = jsonLines<Micro>(
        (await sh([
          PYTHON,
          join(PY, "bench_runner.py"),
          "micro",
          "--out",
          dir,
        ])).stdout,
      );
      const ts: Micro[] = [];
      for (const backend of ["wasm", "native"]) {
        ts.push(
          ...jsonLines<Micro>(
            (await sh([
              "deno",
              "run",
              "--allow-read",
              "--allow-env",
              "--allow-ffi",
              join(ROOT, "bench/run.ts"),
              "--child",
              "micro",
              "--dir",
              dir,
              "--backend",
              backend,
            ])).stdout,
          ),
        );
      }
      results.micro = [...py, ...ts];
      const get = (g: string, impl: string) =>
        [...py, ...ts].find((m) => m.graph === g && m.impl === impl)!;
      const addOrt = get("add", "ort"),
        addW = get("add", "wasm"),
        addN = get("add", "native");
      add(
        `limit: fixed cost per call (Add [1,18,32])`,
        `wasm ${addW.us_per_call.toFixed(1)} µs, native ${
          addN.us_per_call.toFixed(1)
        } µs, python ort ${addOrt.us_per_call.toFixed(1)} µs`,
        ratio(addW.us_per_call, addOrt.us_per_call),
        "wasm / python ort",
      );
      const mmT = get("matmul", "torch"),
        mmO = get("matmul", "ort"),
        mmW = get("matmul", "wasm"),
        mmN = get("matmul", "native");
      add(
        `limit: GEMM 194×512×1536, 1 thread`,
        `wasm ${mmW.gflops!.toFixed(0)}, native ${
          mmN.gflops!.toFixed(0)
        }, python ort ${mmO.gflops!.toFixed(0)}, torch ${
          mmT.gflops!.toFixed(0)
        } GFLOP/s`,
        ratio(mmW.gflops!, mmT.gflops!),
        "wasm / torch",
      );
    }

    // ---- startup
    {
      log("startup");
      const help = await bestOf(
        3,
        () =>
          sh([
            "deno",
            "run",
            "--allow-read",
            "--allow-write",
            join(ROOT, "cli.ts"),
            "--help",
          ]),
      );
      const pyHelp = await bestOf(
        3,
        () => sh([PYTHON, join(PY, "export.py"), "--help"]),
      );
      const trmFirst = await trmRollout(demoDir, "wasm", 1, 0);
      const pyFirst =
        jsonLines<{ impl: string; process_to_first_call_s: number }>(
          (await sh([
            PYTHON,
            join(PY, "bench_runner.py"),
            "startup",
            "--bundle",
            demoDir,
            "--impl",
            "torch",
          ])).stdout,
        )[0];
      const trmToFirst = trmFirst.process_to_first_call_s!;
      results.startup = { help, pyHelp, trmFirst, pyFirst };
      add(
        `startup: trminterp --help`,
        `${help.seconds.toFixed(2)} s vs export.py --help ${
          pyHelp.seconds.toFixed(2)
        } s`,
        ratio(help.seconds, pyHelp.seconds),
        "lower is better",
      );
      add(
        `  process start to first net call (demo)`,
        `${trmToFirst.toFixed(2)} s vs torch ${
          pyFirst.process_to_first_call_s.toFixed(2)
        } s`,
        ratio(trmToFirst, pyFirst.process_to_first_call_s),
        "lower is better",
      );
    }

    // ---- SAE
    {
      const cases = full
        ? [{ D: 64, F: 1024, k: 16, n: 16_384, steps: 300 }, {
          D: 512,
          F: 4096,
          k: 32,
          n: 8_192,
          steps: 10,
        }]
        : [{ D: 64, F: 1024, k: 16, n: 16_384, steps: 30 }, {
          D: 512,
          F: 4096,
          k: 32,
          n: 8_192,
          steps: 3,
        }];
      const sae: unknown[] = [];
      for (const c of cases) {
        log(`sae fit D=${c.D} F=${c.F} k=${c.k} steps=${c.steps}`);
        const r = await saeCase(tmp, c.D, c.F, c.k, c.n, c.steps, 4096, 1);
        sae.push({ ...c, ...r });
        const equal = Math.abs(r.ts.fvu - r.torch.fvu) <=
          0.02 * Math.max(r.ts.fvu, r.torch.fvu);
        add(
          `sae fit D${c.D} F${c.F} k${c.k} ${c.steps} steps: trminterp`,
          `${Math.round(r.ts.activations_per_s)} act/s, FVU ${
            r.ts.fvu.toFixed(4)
          } (torch 1 thread ${
            Math.round(r.torch.activations_per_s)
          } act/s, FVU ${r.torch.fvu.toFixed(4)}; FVU ${
            equal ? "equal within 2%" : "NOT equal"
          })`,
          ratio(r.ts.activations_per_s, r.torch.activations_per_s),
          "≥ 1.5× torch, equal FVU",
        );
        add(
          `  vs torch, ${navigator.hardwareConcurrency} threads`,
          `${Math.round(r.torchAll.activations_per_s)} act/s, FVU ${
            r.torchAll.fvu.toFixed(4)
          }`,
          ratio(r.ts.activations_per_s, r.torchAll.activations_per_s),
          "",
        );
      }
      results.sae = sae;
    }

    // ---- peak RSS as the data grows
    {
      const sizes = full ? [100, 1000, 10000] : [100, 1000];
      const rss: unknown[] = [];
      for (const n of sizes) {
        log(`peak RSS: trace + sae fit on ${n} examples (demo model)`);
        const p = await puzzlesFile(tmp, n);
        const run = join(tmp, `run_${n}`);
        const tr = await sh([
          "deno",
          "run",
          "--allow-read",
          "--allow-write",
          join(ROOT, "cli.ts"),
          "trace",
          "--run-dir",
          run,
          "--model",
          demoDir,
          "--inputs",
          p,
          "--latents",
          "z_H",
          "--force",
          "--no-gitignore",
        ]);
        const sf = await sh([
          "deno",
          "run",
          "--allow-read",
          "--allow-write",
          join(ROOT, "cli.ts"),
          "sae",
          "fit",
          "--run-dir",
          run,
          "--train-steps",
          full ? "300" : "50",
          "--force",
        ]);
        rss.push({
          n,
          trace: { s: tr.seconds, mb: tr.maxrss_mb },
          sae: { s: sf.seconds, mb: sf.maxrss_mb },
        });
        add(
          `peak RSS, ${n} examples`,
          `trace ${tr.maxrss_mb.toFixed(0)} MB (${
            tr.seconds.toFixed(1)
          } s), sae fit ${sf.maxrss_mb.toFixed(0)} MB`,
          n === sizes[0] ? "1.00×" : ratio(
            tr.maxrss_mb,
            (rss[0] as { trace: { mb: number } }).trace.mb,
          ),
          "flat",
        );
        await Deno.remove(run, { recursive: true });
      }
      results.rss = rss;
    }
  } catch (e) {
    // Keep what was measured: a failing section still prints the rows before it.
    results.error = String(e);
    log(`stopped: ${String(e).split("\n")[0]}`);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
  results.seconds = (performance.now() - started) / 1000;
  results.machine = await machine();
  results.load = await Deno.readTextFile("/proc/loadavg").catch(() => "");
  if (a.json) {
    await Deno.writeTextFile(a.json, JSON.stringify(results, null, 1) + "\n");
  }
  printTable(rows, results);
  if (results.error) Deno.exit(1);
}

function medianOf(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function bestOf(n: number, f: () => Promise<Ran>): Promise<Ran> {
  let best: Ran | null = null;
  for (let i = 0; i < n; i++) {
    const r = await f();
    if (!best || r.seconds < best.seconds) best = r;
  }
  return best!;
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}

async function machine(): Promise<string> {
  let cpu = "unknown CPU";
  try {
    const info = await Deno.readTextFile("/proc/cpuinfo");
    cpu = /model name\s*:\s*(.*)/.exec(info)?.[1] ?? cpu;
  } catch { /* not Linux */ }
  return `${cpu}, ${navigator.hardwareConcurrency} logical cores, deno ${Deno.version.deno}, ${Deno.build.os}-${Deno.build.arch}`;
}

function printTable(
  rows: [string, string, string, string][],
  results: Record<string, unknown>,
) {
  const head: [string, string, string, string] = [
    "measurement",
    "figures",
    "ratio",
    "target",
  ];
  const all = [head, ...rows];
  const w = [0, 1, 2, 3].map((i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r: string[]) =>
    "| " + r.map((c, i) => c.padEnd(w[i])).join(" | ") + " |";
  console.log(
    `trminterp bench (${results.mode} mode, ${
      (results.seconds as number).toFixed(0)
    } s): ${results.machine}; load average at the end ${
      String(results.load).split(" ").slice(0, 3).join(" ")
    }`,
  );
  console.log(line(head));
  console.log("|" + w.map((n) => "-".repeat(n + 2)).join("|") + "|");
  for (const r of rows) console.log(line(r));
  console.log(
    "ratios: throughput = trminterp / baseline (> 1 is faster); per-call time and RSS = trminterp / baseline (< 1 is better)",
  );
}

if (import.meta.main) await main();

function asExamples(tokens: BigInt64Array, S: number): RolloutExample[] {
  return Array.from({ length: tokens.length / S }, (_, b) => {
    const t = Array.from(tokens.subarray(b * S, (b + 1) * S), Number);
    return { id: String(b), tokens: t, label: t };
  });
}
