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
 * Each comparison runs its implementations in interleaved rounds (3, or 5
 * with `--full`, or `--rounds N`) and reports the median with the spread
 * (min–max) over the rounds, never the best round: a best-of favours
 * whichever side caught a quiet moment. Torch runs on 1 and 2 threads and
 * both are printed. Each case is one function pair (measure, rows), and the
 * table is generated from the measured figures; `--cases a,b` runs a subset.
 *
 * Fast mode (default, for CI): batch 2, one supervision step of the full-size
 * models, 100 and 1,000 examples for RSS. `--full`: batch 8, 100 / 1,000 /
 * 10,000 examples. Every trminterp measurement runs in a child process (this
 * file with `--child`), so thread settings and peak RSS are its own.
 *
 * Run: `deno task bench`, `deno run -A bench/run.ts --full --json out.json`,
 * or a quick check: `deno run -A bench/run.ts --cases startup,sae --rounds 1`
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
  torchThreads: readonly number[],
): Promise<{ ts: SaeFigures; torch: Record<number, SaeFigures> }> {
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
  const torch: Record<number, SaeFigures> = {};
  for (const t of torchThreads) {
    torch[t] = { ...await torchRun(t), impl: `torch-${t}t` };
  }
  await Deno.remove(npy);
  return { ts, torch };
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

// ---------------------------------------------------------------- statistics

/** Median and spread of one figure over interleaved rounds. */
interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

function spread(xs: number[]): Spread {
  return {
    median: medianOf(xs),
    min: Math.min(...xs),
    max: Math.max(...xs),
    n: xs.length,
  };
}

/** `median (min–max, n rounds)` with `digits` decimals. */
function fmt(s: Spread, digits: number, unit: string): string {
  const f = (v: number) => v.toFixed(digits);
  return s.n > 1
    ? `${f(s.median)} ${unit} (${f(s.min)}–${f(s.max)}, ${s.n} rounds)`
    : `${f(s.median)} ${unit}`;
}

const ratio = (x: number, y: number) => (x / y).toFixed(2) + "×";

/** One row of the table: what, the figures, trminterp / baseline, the target. */
type Row = [string, string, string, string];

/** What every case sees. */
interface Ctx {
  full: boolean;
  tmp: string;
  demoDir: string;
  /** Interleaved rounds per comparison. */
  rounds: number;
}

/** The torch thread counts every torch comparison prints. */
const TORCH_THREADS = [1, 2] as const;

/**
 * A bench case: `measure` runs it and returns its raw figures (kept in the
 * JSON), `rows` turns those figures into table rows. The table is only ever
 * generated from what was measured.
 */
interface BenchCase<R> {
  name: string;
  measure(ctx: Ctx): Promise<R>;
  rows(r: R, ctx: Ctx): Row[];
}

// ---------------------------------------------------------------- cases

/** Rounds of every implementation on one full-size TRM, interleaved. */
interface RolloutRounds {
  arch: string;
  batch: number;
  /** Every round's figures, by implementation key. */
  rounds: Record<string, RolloutFigures[]>;
}

function rolloutCase(arch: "mlp" | "att"): BenchCase<RolloutRounds> {
  return {
    name: `trm_${arch}`,
    async measure(ctx) {
      const dir = join(ctx.tmp, `trm-${arch}`);
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
        "1",
      ]);
      const B = ctx.full ? 8 : 2, reps = 1;
      const rounds: Record<string, RolloutFigures[]> = {};
      const keep = (f: RolloutFigures, key = f.impl) =>
        (rounds[key] ??= []).push(f);
      for (let r = 0; r < ctx.rounds; r++) {
        log(`TRM-${arch} round ${r + 1}/${ctx.rounds}: batch ${B}`);
        for (const threads of TORCH_THREADS) {
          const py = await pyRollout(dir, "torch,ort", B, reps, {
            fullSup: 16,
            threads,
          });
          for (const f of Object.values(py)) keep(f);
        }
        for (const backend of ["wasm", "native"] as const) {
          for (const threads of [1, 0]) {
            keep(
              await trmRollout(dir, backend, B, reps, { fullSup: 16, threads }),
            );
          }
        }
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
          threads: 2,
          record: true,
        });
        keep(tr["torch-2t"], "torch-2t-rec");
      }
      return { arch, batch: B, rounds };
    },
    rows({ arch, batch, rounds }) {
      const s = (k: string) =>
        spread(rounds[k].map((f) => f.timed_out_s ? 0 : f.net_calls_per_s));
      const calls = (k: string) => fmt(s(k), 2, "calls/s");
      const vs = (k: string, base: string) =>
        ratio(s(k).median, s(base).median);
      const t1 = "torch-1t", t2 = "torch-2t";
      const best = s(t1).median >= s(t2).median ? t1 : t2;
      const fastest = ["native-1t", "native-defaultt"]
        .reduce((x, y) => s(x).median >= s(y).median ? x : y);
      return [
        [
          `TRM-${arch} D512 B${batch}: torch eager, 2 threads`,
          calls(t2),
          "1.00×",
          "",
        ],
        [`  torch eager, 1 thread`, calls(t1), vs(t1, t2), ""],
        [
          `  python onnxruntime, 1 thread`,
          calls("ort-1t"),
          vs("ort-1t", t2),
          "",
        ],
        [
          `  python onnxruntime, 2 threads`,
          calls("ort-2t"),
          vs("ort-2t", t2),
          "",
        ],
        [
          `  trminterp wasm, 1 thread`,
          calls("wasm-1t"),
          vs("wasm-1t", t2),
          "report",
        ],
        [`    same, vs torch 1 thread`, "", vs("wasm-1t", t1), ""],
        [
          `  trminterp wasm, default (${
            rounds["wasm-defaultt"][0].threads
          } threads; sandboxed)`,
          calls("wasm-defaultt"),
          vs("wasm-defaultt", t2),
          "≥ 0.35× torch",
        ],
        [
          `  trminterp native, 1 thread`,
          calls("native-1t"),
          vs("native-1t", t2),
          "lever",
        ],
        [
          `  trminterp native, default threads (auto with --allow-ffi)`,
          calls("native-defaultt"),
          vs("native-defaultt", t2),
          "≥ 1.1× torch",
        ],
        [
          `  trminterp fastest backend (${fastest}) vs torch's best (${best})`,
          "",
          vs(fastest, best),
          "≥ 1.0× best torch",
        ],
        [
          `  recording on: wasm 1 thread / native / torch 2 threads`,
          `${s("wasm-1t-rec").median.toFixed(2)} / ${
            s("native-defaultt-rec").median.toFixed(2)
          } / ${s("torch-2t-rec").median.toFixed(2)} calls/s (medians)`,
          vs("native-defaultt-rec", "torch-2t-rec"),
          "native/torch",
        ],
        [
          `  native vs python onnxruntime (2 threads)`,
          "",
          vs("native-defaultt", "ort-2t"),
          "",
        ],
      ];
    },
  };
}

/** The CLI as a process, with or without --allow-ffi. */
const cliCmd = (ffi: boolean, args: string[]) => [
  "deno",
  "run",
  "--no-prompt",
  "--allow-read",
  "--allow-write",
  ...(ffi ? ["--allow-ffi"] : []),
  join(ROOT, "cli.ts"),
  ...args,
];

interface DemoTrace {
  seconds: Record<"torch" | "auto" | "sandboxed", number[]>;
  rss_mb: Record<"torch" | "auto" | "sandboxed", number[]>;
  backends: { auto: string; sandboxed: string };
}

/** `trminterp trace` of the demo against bench/trace_torch.py, whole processes, interleaved. */
const demoTraceCase: BenchCase<DemoTrace> = {
  name: "demo_trace",
  async measure(ctx) {
    const rounds = Math.max(ctx.rounds, 3);
    log(
      `demo trace: trminterp (auto, sandboxed) vs bench/trace_torch.py, ${rounds} interleaved rounds`,
    );
    const t: Record<string, Ran[]> = { torch: [], auto: [], sandboxed: [] };
    for (let r = 0; r < rounds; r++) {
      t.torch.push(
        await sh([
          PYTHON,
          join(ROOT, "bench/trace_torch.py"),
          "--bundle",
          ctx.demoDir,
          "--out",
          join(ctx.tmp, "torch-trace"),
        ]),
      );
      for (
        const [key, ffi] of [["auto", true], ["sandboxed", false]] as const
      ) {
        t[key].push(
          await sh(cliCmd(ffi, [
            "trace",
            "--run-dir",
            join(ctx.tmp, `trace-${key}`),
            "--seed",
            "0",
            "--force",
          ])),
        );
      }
    }
    const backendOf = async (key: string) =>
      JSON.parse(
        (await Deno.readTextFile(join(ctx.tmp, `trace-${key}`, "trace.jsonl")))
          .slice(0, 65536).split("\n")[0],
      ).backend;
    const per = (f: (x: Ran) => number) => ({
      torch: t.torch.map(f),
      auto: t.auto.map(f),
      sandboxed: t.sandboxed.map(f),
    });
    return {
      seconds: per((x) => x.seconds),
      rss_mb: per((x) => x.maxrss_mb),
      backends: {
        auto: await backendOf("auto"),
        sandboxed: await backendOf("sandboxed"),
      },
    };
  },
  rows(r) {
    const s = (k: "torch" | "auto" | "sandboxed") => spread(r.seconds[k]);
    return [
      [
        `demo trace, 464 examples, every state: torch script`,
        fmt(s("torch"), 2, "s"),
        "1.00×",
        "",
      ],
      [
        `  trminterp trace (auto: ${r.backends.auto})`,
        fmt(s("auto"), 2, "s"),
        ratio(s("torch").median, s("auto").median),
        "≥ 1.0× torch",
      ],
      [
        `  trminterp trace, sandboxed (${r.backends.sandboxed})`,
        fmt(s("sandboxed"), 2, "s"),
        ratio(s("torch").median, s("sandboxed").median),
        "",
      ],
    ];
  },
};

type LoopSeconds = { trace: number; sae: number; intervene: number };

/** The demo loop as `deno task demo` runs it, and sandboxed. */
const demoLoopCase: BenchCase<Record<"auto" | "sandboxed", LoopSeconds[]>> = {
  name: "demo_loop",
  async measure(ctx) {
    const rounds = ctx.full ? 3 : 1;
    log(
      `demo loop: trace, sae fit, intervene; auto and sandboxed; ${rounds} round(s)`,
    );
    const loop: Record<"auto" | "sandboxed", LoopSeconds[]> = {
      auto: [],
      sandboxed: [],
    };
    for (let r = 0; r < rounds; r++) {
      for (
        const [key, ffi] of [["auto", true], ["sandboxed", false]] as const
      ) {
        const run = join(ctx.tmp, `loop-${key}`);
        const tr = await sh(
          cliCmd(ffi, ["trace", "--run-dir", run, "--seed", "0", "--force"]),
        );
        const sf = await sh(
          cliCmd(ffi, [
            "sae",
            "fit",
            "--run-dir",
            run,
            "--seed",
            "0",
            "--force",
          ]),
        );
        const iv = await sh(cliCmd(ffi, [
          "intervene",
          "--run-dir",
          run,
          "--policy",
          "ablate_features",
          "--seed",
          "0",
          "--force",
        ]));
        loop[key].push({
          trace: tr.seconds,
          sae: sf.seconds,
          intervene: iv.seconds,
        });
      }
    }
    return loop;
  },
  rows(loop) {
    return (["auto", "sandboxed"] as const).map((key): Row => {
      const m = (f: (x: LoopSeconds) => number) => spread(loop[key].map(f));
      return [
        `demo loop, ${key}: trace / sae fit / intervene`,
        `${m((x) => x.trace).median.toFixed(1)} / ${
          m((x) => x.sae).median.toFixed(1)
        } / ${m((x) => x.intervene).median.toFixed(1)} s (medians); total ${
          fmt(m((x) => x.trace + x.sae + x.intervene), 1, "s")
        }`,
        ratio(m((x) => x.intervene / x.trace).median, 1),
        key === "auto" ? "intervene ≤ 2× trace; total ≤ 30 s" : "",
      ];
    });
  },
};

/** Per-call overhead at batch 1 and throughput at batch 64 on the demo model, 1 thread each, interleaved. */
const demoCallsCase: BenchCase<Record<string, RolloutFigures[]>> = {
  name: "demo_calls",
  async measure(ctx) {
    const dreps = ctx.full ? 50 : 20, reps64 = ctx.full ? 10 : 4;
    log(
      `demo model ${ctx.demoDir}: batch 1, ${dreps} rollouts; batch 64; ${ctx.rounds} rounds`,
    );
    const out: Record<string, RolloutFigures[]> = {};
    const keep = (key: string, f: RolloutFigures) => (out[key] ??= []).push(f);
    for (let r = 0; r < ctx.rounds; r++) {
      const py = await pyRollout(ctx.demoDir, "torch,ort", 1, dreps, {
        threads: 1,
      });
      keep("torch-1t", py["torch-1t"]);
      keep("ort-1t", py["ort-1t"]);
      keep("wasm", await trmRollout(ctx.demoDir, "wasm", 1, dreps));
      keep(
        "wasm-rec",
        await trmRollout(ctx.demoDir, "wasm", 1, dreps, { record: true }),
      );
      keep(
        "native",
        await trmRollout(ctx.demoDir, "native", 1, dreps, { threads: 1 }),
      );
      const py64 = await pyRollout(ctx.demoDir, "torch,ort", 64, reps64, {
        threads: 1,
      });
      keep("torch-1t-64", py64["torch-1t"]);
      keep("ort-1t-64", py64["ort-1t"]);
      keep("wasm-64", await trmRollout(ctx.demoDir, "wasm", 64, reps64));
      keep(
        "native-64",
        await trmRollout(ctx.demoDir, "native", 64, reps64, { threads: 1 }),
      );
    }
    return out;
  },
  rows(r, ctx) {
    const us = (k: string) => spread(r[k].map((f) => f.ms_per_call * 1000));
    const ex = (k: string) => spread(r[k].map((f) => f.examples_per_s));
    const name = ctx.demoDir.split("/").at(-1);
    const call = (label: string, k: string, target = ""): Row => [
      label,
      fmt(us(k), 0, "µs/call"),
      ratio(us(k).median, us("ort-1t").median),
      target,
    ];
    const b64 = (label: string, k: string): Row => [
      label,
      fmt(ex(k), 0, "ex/s"),
      ratio(ex(k).median, ex("torch-1t-64").median),
      "",
    ];
    return [
      [
        `demo (${name}) B1, 1 thread: python onnxruntime`,
        fmt(us("ort-1t"), 0, "µs/call"),
        "1.00×",
        "",
      ],
      call(`  trminterp wasm per-call time`, "wasm", "≤ 1.5× native ort"),
      call(`  trminterp wasm, recording on`, "wasm-rec"),
      call(`  trminterp native per-call time`, "native", "≤ 1.5× native ort"),
      call(`  torch eager per-call time`, "torch-1t"),
      [
        `demo B64, 1 thread: torch eager`,
        fmt(ex("torch-1t-64"), 0, "ex/s"),
        "1.00×",
        "",
      ],
      b64(`  python onnxruntime`, "ort-1t-64"),
      b64(`  trminterp wasm`, "wasm-64"),
      b64(`  trminterp native`, "native-64"),
    ];
  },
};

type Micro = {
  graph: string;
  impl: string;
  us_per_call: number;
  gflops: number | null;
};

/** What limits WASM: fixed cost per call and GEMM speed, 1 thread. */
const microCase: BenchCase<Micro[]> = {
  name: "micro",
  async measure(ctx) {
    log("micro: one-node graphs (fixed per-call cost, GEMM GFLOP/s)");
    const dir = join(ctx.tmp, "micro");
    const py = jsonLines<Micro>(
      (await sh([PYTHON, join(PY, "bench_runner.py"), "micro", "--out", dir]))
        .stdout,
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
    return [...py, ...ts];
  },
  rows(all) {
    const get = (g: string, impl: string) =>
      all.find((m) => m.graph === g && m.impl === impl)!;
    const [addO, addW, addN] = ["ort", "wasm", "native"].map((i) =>
      get("add", i)
    );
    const [mmT, mmO, mmW, mmN] = ["torch", "ort", "wasm", "native"].map((i) =>
      get("matmul", i)
    );
    return [
      [
        `limit: fixed cost per call (Add [1,18,32])`,
        `wasm ${addW.us_per_call.toFixed(1)} µs, native ${
          addN.us_per_call.toFixed(1)
        } µs, python ort ${addO.us_per_call.toFixed(1)} µs`,
        ratio(addW.us_per_call, addO.us_per_call),
        "wasm / python ort",
      ],
      [
        `limit: GEMM 194×512×1536, 1 thread`,
        `wasm ${mmW.gflops!.toFixed(0)}, native ${
          mmN.gflops!.toFixed(0)
        }, python ort ${mmO.gflops!.toFixed(0)}, torch ${
          mmT.gflops!.toFixed(0)
        } GFLOP/s`,
        ratio(mmW.gflops!, mmT.gflops!),
        "wasm / torch",
      ],
    ];
  },
};

interface Startup {
  help: number[];
  pyHelp: number[];
  trmToFirst: number[];
  torchToFirst: number[];
}

/** Process start: `--help`, and process start to the first net call, interleaved rounds. */
const startupCase: BenchCase<Startup> = {
  name: "startup",
  async measure(ctx) {
    const rounds = Math.max(ctx.rounds, 3);
    log(`startup, ${rounds} interleaved rounds`);
    const out: Startup = {
      help: [],
      pyHelp: [],
      trmToFirst: [],
      torchToFirst: [],
    };
    for (let r = 0; r < rounds; r++) {
      out.help.push(
        (await sh([
          "deno",
          "run",
          "--allow-read",
          "--allow-write",
          join(ROOT, "cli.ts"),
          "--help",
        ])).seconds,
      );
      out.pyHelp.push(
        (await sh([PYTHON, join(PY, "export.py"), "--help"])).seconds,
      );
      out.trmToFirst.push(
        (await trmRollout(ctx.demoDir, "wasm", 1, 0)).process_to_first_call_s!,
      );
      out.torchToFirst.push(
        jsonLines<{ process_to_first_call_s: number }>(
          (await sh([
            PYTHON,
            join(PY, "bench_runner.py"),
            "startup",
            "--bundle",
            ctx.demoDir,
            "--impl",
            "torch",
          ])).stdout,
        )[0].process_to_first_call_s,
      );
    }
    return out;
  },
  rows(r) {
    const [h, p, t, q] = [r.help, r.pyHelp, r.trmToFirst, r.torchToFirst].map(
      spread,
    );
    return [
      [
        `startup: trminterp --help`,
        `${fmt(h, 2, "s")} vs export.py --help ${fmt(p, 2, "s")}`,
        ratio(h.median, p.median),
        "lower is better",
      ],
      [
        `  process start to first net call (demo)`,
        `${fmt(t, 2, "s")} vs torch ${fmt(q, 2, "s")}`,
        ratio(t.median, q.median),
        "lower is better",
      ],
    ];
  },
};

interface SaeRounds {
  D: number;
  F: number;
  k: number;
  n: number;
  steps: number;
  /** Per round: trminterp, then torch on each of TORCH_THREADS. */
  rounds: { ts: SaeFigures; torch: Record<number, SaeFigures> }[];
}

/** `sae fit` throughput and FVU against sae_ref.py (torch, 1 and 2 threads), interleaved rounds. */
const saeFitCase: BenchCase<SaeRounds[]> = {
  name: "sae",
  async measure(ctx) {
    const shapes = [
      { D: 64, F: 1024, k: 16, n: 16_384, steps: ctx.full ? 300 : 30 },
      { D: 512, F: 4096, k: 32, n: 8_192, steps: ctx.full ? 10 : 3 },
    ];
    const out: SaeRounds[] = [];
    for (const c of shapes) {
      const rounds: SaeRounds["rounds"] = [];
      for (let r = 0; r < ctx.rounds; r++) {
        log(
          `sae fit D=${c.D} F=${c.F} k=${c.k} steps=${c.steps}, round ${
            r + 1
          }/${ctx.rounds}`,
        );
        rounds.push(
          await saeCase(
            ctx.tmp,
            c.D,
            c.F,
            c.k,
            c.n,
            c.steps,
            4096,
            TORCH_THREADS,
          ),
        );
      }
      out.push({ ...c, rounds });
    }
    return out;
  },
  rows(all) {
    return all.flatMap((c): Row[] => {
      const ts = spread(c.rounds.map((r) => r.ts.activations_per_s));
      const fvu = medianOf(c.rounds.map((r) => r.ts.fvu));
      const torch = (t: number) =>
        spread(c.rounds.map((r) => r.torch[t].activations_per_s));
      const torchFvu = (t: number) =>
        medianOf(c.rounds.map((r) => r.torch[t].fvu));
      return [
        [
          `sae fit D${c.D} F${c.F} k${c.k} ${c.steps} steps: trminterp`,
          `${fmt(ts, 0, "act/s")}, FVU ${fvu.toFixed(4)}`,
          "",
          "≥ 1.5× torch, equal FVU",
        ],
        ...TORCH_THREADS.map((t): Row => {
          const equal =
            Math.abs(fvu - torchFvu(t)) <= 0.02 * Math.max(fvu, torchFvu(t));
          return [
            `  vs torch, ${t} thread${t > 1 ? "s" : ""}`,
            `${fmt(torch(t), 0, "act/s")}, FVU ${torchFvu(t).toFixed(4)} (${
              equal ? "equal within 2%" : "NOT equal"
            })`,
            ratio(ts.median, torch(t).median),
            "",
          ];
        }),
      ];
    });
  },
};

/** Peak RSS of `trace` and `sae fit` as the data grows. */
const rssCase: BenchCase<
  {
    n: number;
    trace: { s: number; mb: number };
    sae: { s: number; mb: number };
  }[]
> = {
  name: "rss",
  async measure(ctx) {
    const sizes = ctx.full ? [100, 1000, 10000] : [100, 1000];
    const rss = [];
    for (const n of sizes) {
      log(`peak RSS: trace + sae fit on ${n} examples (demo model)`);
      const p = await puzzlesFile(ctx.tmp, n);
      const run = join(ctx.tmp, `run_${n}`);
      const cli = (args: string[]) =>
        sh([
          "deno",
          "run",
          "--allow-read",
          "--allow-write",
          join(ROOT, "cli.ts"),
          ...args,
        ]);
      const tr = await cli([
        "trace",
        "--run-dir",
        run,
        "--model",
        ctx.demoDir,
        "--inputs",
        p,
        "--latents",
        "z_H",
        "--force",
        "--no-gitignore",
      ]);
      const sf = await cli([
        "sae",
        "fit",
        "--run-dir",
        run,
        "--train-steps",
        ctx.full ? "300" : "50",
        "--force",
      ]);
      rss.push({
        n,
        trace: { s: tr.seconds, mb: tr.maxrss_mb },
        sae: { s: sf.seconds, mb: sf.maxrss_mb },
      });
      await Deno.remove(run, { recursive: true });
    }
    return rss;
  },
  rows(rss) {
    return rss.map((r): Row => [
      `peak RSS, ${r.n} examples`,
      `trace ${r.trace.mb.toFixed(0)} MB (${r.trace.s.toFixed(1)} s), sae fit ${
        r.sae.mb.toFixed(0)
      } MB`,
      ratio(r.trace.mb, rss[0].trace.mb),
      "flat",
    ]);
  },
};

/** Every case, in table order. `--cases a,b` runs a subset. */
// deno-lint-ignore no-explicit-any
const CASES: BenchCase<any>[] = [
  rolloutCase("mlp"),
  rolloutCase("att"),
  demoTraceCase,
  demoLoopCase,
  demoCallsCase,
  microCase,
  startupCase,
  saeFitCase,
  rssCase,
];

// ---------------------------------------------------------------- main

async function main() {
  const a = parseArgs(Deno.args);
  if (a.child === "rollout") return await childRollout(a);
  if (a.child === "micro") return await childMicro(a);
  const full = a.full === "1";
  CHILD_TIMEOUT_S = full ? 240 : 120;
  const names = a.cases?.split(",") ?? CASES.map((c) => c.name);
  const unknown = names.filter((n) => !CASES.some((c) => c.name === n));
  if (unknown.length) {
    console.error(
      `unknown case ${unknown.join(", ")}; the cases: ${
        CASES.map((c) => c.name).join(", ")
      }`,
    );
    Deno.exit(2);
  }
  const tmp = await Deno.makeTempDir({ prefix: "trminterp-bench-" });
  const demoDir =
    await exists(join(ROOT, "references/models/sudoku4-trm/model.json"))
      ? join(ROOT, "references/models/sudoku4-trm")
      : join(ROOT, "tests/fixtures/tiny_trm");
  const ctx: Ctx = {
    full,
    tmp,
    demoDir,
    rounds: Number(a.rounds ?? (full ? 5 : 3)),
  };
  const results: Record<string, unknown> = {
    mode: full ? "full" : "fast",
    demo: demoDir,
    rounds: ctx.rounds,
  };
  const rows: Row[] = [];
  const started = performance.now();
  try {
    for (const c of CASES.filter((c) => names.includes(c.name))) {
      const r = await c.measure(ctx);
      results[c.name] = r;
      rows.push(...c.rows(r, ctx));
    }
  } catch (e) {
    // Keep what was measured: a failing case still prints the rows before it.
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
