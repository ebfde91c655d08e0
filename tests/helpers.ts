// Shared helpers for the test suite (not a test file itself).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { decodeNpy, type NpyArray } from "../lib/io/npy.ts";
import { crc32 } from "../lib/io/zip.ts";
import { Rng } from "../lib/rng.ts";
import type { ExampleOutcome, RolloutExample } from "../lib/model/rollout.ts";

export const ROOT: string = join(import.meta.dirname!, "..");
export const FIXTURES: string = join(ROOT, "tests", "fixtures");
export const DEMO: string = join(ROOT, "references", "models", "sudoku4-trm");
export const PY: string = join(ROOT, "references", "python");
/**
 * Whether the system tests run: those that need root or system packages
 * (Slurm, a Vulkan driver, mounts). `deno task test:system` and .ci/run set
 * TRMINTERP_SYSTEM_TESTS=1; under `deno task test` they report ignored.
 */
export const SYSTEM: boolean = Deno.env.get("TRMINTERP_SYSTEM_TESTS") === "1";

/**
 * The Python that runs the reference tooling: `TRMINTERP_PYTHON`, else the
 * venv that `.ci/setup` makes at `.venv`, else `python3` on PATH.
 */
export const PYTHON: string = Deno.env.get("TRMINTERP_PYTHON") ??
  (existsSync(join(ROOT, ".venv", "bin", "python"))
    ? join(ROOT, ".venv", "bin", "python")
    : "python3");

export interface Proc {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command and capture its output. */
export async function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Promise<Proc> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: opts.cwd ?? ROOT,
    env: opts.env,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

/** Run the reference Python and fail loudly when it fails. */
export async function python(args: string[]): Promise<string> {
  const p = await run(PYTHON, args);
  if (p.code !== 0) {
    throw new Error(
      `${PYTHON} ${args.join(" ")} failed (${p.code}):\n${p.stderr}`,
    );
  }
  return p.stdout;
}

/** Run the CLI in a subprocess with the given Deno permission flags. */
export function cli(
  args: string[],
  perms: string[] = ["--allow-read", "--allow-write"],
  cwd?: string,
): Promise<Proc> {
  return run(Deno.execPath(), [
    "run",
    "--quiet",
    ...perms,
    join(ROOT, "cli.ts"),
    ...args,
  ], { cwd });
}

/** Read an .npy file. */
export function npy(path: string): NpyArray {
  return decodeNpy(Deno.readFileSync(path), path);
}

/** Max |a - b| over two equally long arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) {
    throw new Error(`length ${a.length} != ${b.length}`);
  }
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** sha256 of a file as hex. */
export async function fileSha(path: string): Promise<string> {
  const buf = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/** List a directory's entries (names), sorted. */
export async function listDir(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

/** Run `fn` with a fresh temp dir that is removed afterwards. */
export async function withTempDir(
  fn: (dir: string) => Promise<void>,
  prefix?: string,
): Promise<void> {
  const dir = await Deno.makeTempDir(prefix ? { prefix } : undefined);
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Run a Python snippet with arguments; fails loudly when it fails. */
export function py(code: string, ...args: string[]): Promise<string> {
  return python(["-c", code, ...args]);
}

/** Write `n` seeded random puzzles valid for the tiny fixture bundles (S=16, V=6, 3 puzzle ids). */
export async function writePuzzles(
  path: string,
  n: number,
  seed = 1,
  prefix = "q",
): Promise<void> {
  const rng = new Rng(seed);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const label = Array.from({ length: 16 }, () => 2 + rng.int(4));
    const tokens = label.map((v) => rng.float() < 0.6 ? 1 : v);
    lines.push(
      JSON.stringify({
        id: `${prefix}${i}`,
        tokens,
        label,
        puzzle_identifier: rng.int(3),
      }),
    );
  }
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
}

/** Rollout inputs from `[B, S]` token ids (and puzzle ids); labels are the tokens. */
export function examplesOf(
  tokens: BigInt64Array,
  S: number,
  puzzleIds?: BigInt64Array,
): RolloutExample[] {
  const B = tokens.length / S;
  return Array.from({ length: B }, (_, b) => {
    const t = Array.from(tokens.subarray(b * S, (b + 1) * S), Number);
    return {
      id: `ex${b}`,
      tokens: t,
      label: t,
      puzzleIdentifier: puzzleIds ? Number(puzzleIds[b]) : 0,
    };
  });
}

/** The outcomes' logits, concatenated in order. */
export function allLogits(outcomes: readonly ExampleOutcome[]): Float32Array {
  const out = new Float32Array(
    outcomes.reduce((n, o) => n + o.logits.length, 0),
  );
  let off = 0;
  for (const o of outcomes) {
    out.set(o.logits, off);
    off += o.logits.length;
  }
  return out;
}

// lavapipe (the CPU WebGPU adapter of the WebGPU tests) warns on every
// process start without a runtime dir; give the tests and their
// subprocesses one, as a desktop session would.
if (!Deno.env.get("XDG_RUNTIME_DIR")) {
  const dir = Deno.makeTempDirSync({ prefix: "xdg-" });
  Deno.chmodSync(dir, 0o700);
  Deno.env.set("XDG_RUNTIME_DIR", dir);
}

/** An entry for {@linkcode rawZip}: data as stored, with the header's claims. */
export interface RawZipEntry {
  name: string;
  /** The bytes stored in the archive (already deflated when `method` is 8). */
  data: Uint8Array;
  /** 0 stored (default) or 8 deflate. */
  method?: number;
  /** The uncompressed size the headers declare (default `data.length`). */
  size?: number;
  /** The CRC-32 the headers declare (default: the stored data's, or 0 when deflated). */
  crc?: number;
}

/**
 * A ZIP archive whose headers say whatever the entries claim (sizes, method,
 * CRC), for building hostile archives such as zip bombs.
 */
export function rawZip(entries: RawZipEntry[]): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [], central: Uint8Array[] = [];
  let off = 0;
  for (const e of entries) {
    const name = enc.encode(e.name);
    const method = e.method ?? 0, size = e.size ?? e.data.length;
    const crc = e.crc ?? (method === 0 ? crc32(e.data) : 0);
    const head = (sig: number, n: number) => {
      const b = new Uint8Array(n + name.length);
      const v = new DataView(b.buffer);
      v.setUint32(0, sig, true);
      return { b, v };
    };
    const l = head(0x04034b50, 30);
    l.v.setUint16(4, 20, true);
    l.v.setUint16(8, method, true);
    l.v.setUint32(14, crc, true);
    l.v.setUint32(18, e.data.length, true);
    l.v.setUint32(22, size, true);
    l.v.setUint16(26, name.length, true);
    l.b.set(name, 30);
    const c = head(0x02014b50, 46);
    c.v.setUint16(4, 20, true);
    c.v.setUint16(6, 20, true);
    c.v.setUint16(10, method, true);
    c.v.setUint32(16, crc, true);
    c.v.setUint32(20, e.data.length, true);
    c.v.setUint32(24, size, true);
    c.v.setUint16(28, name.length, true);
    c.v.setUint32(42, off, true);
    c.b.set(name, 46);
    parts.push(l.b, e.data);
    central.push(c.b);
    off += l.b.length + e.data.length;
  }
  const cdSize = central.reduce((n, c) => n + c.length, 0);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, entries.length, true);
  ev.setUint16(10, entries.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, off, true);
  const out = new Uint8Array(off + cdSize + 22);
  let q = 0;
  for (const x of [...parts, ...central, end]) {
    out.set(x, q);
    q += x.length;
  }
  return out;
}

/**
 * A copy of the bundle `from` in `dir` with `halt_mode: "q_halt"`, so that
 * examples halt at different steps (the tiny fixture's random q_head halts
 * some early).
 */
export async function qhaltBundle(from: string, dir: string): Promise<string> {
  await Deno.mkdir(dir);
  for (const f of ["embed.onnx", "net.onnx", "head.onnx"]) {
    await Deno.copyFile(join(from, f), join(dir, f));
  }
  const manifest = JSON.parse(
    await Deno.readTextFile(join(from, "model.json")),
  );
  manifest.schedule.halt_mode = "q_halt";
  await Deno.writeTextFile(join(dir, "model.json"), JSON.stringify(manifest));
  return dir;
}

/**
 * Whether this process can mount a tmpfs: root, on a kernel and in a
 * container that allow it. Tests that need one register as ignored when not.
 */
export async function tmpfsAvailable(): Promise<boolean> {
  if (Deno.uid() !== 0) return false;
  const dir = await Deno.makeTempDir({ prefix: "tmpfs_probe_" });
  try {
    const m = await run("mount", [
      "-t",
      "tmpfs",
      "-o",
      "size=64k",
      "tmpfs",
      dir,
    ])
      .catch(() => null);
    if (!m || m.code !== 0) return false;
    await run("umount", [dir]);
    return true;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
