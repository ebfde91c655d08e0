/**
 * What the three commands share: common flags, help layout, value parsers
 * and the provenance command line.
 *
 * @module
 */
import { basename, resolve } from "node:path";
import { type BackendChoice, BACKENDS } from "../lib/model/backend.ts";
import type { Latent } from "../lib/model/rollout.ts";
import { InputError } from "../lib/errors.ts";
import { type FlagSpec, formatFlags, intFlag } from "./flags.ts";
import { LOG_EVERY } from "./progress.ts";

/** Parsed flag values of one command. */
export type FlagValues = Record<string, string | boolean | undefined>;

/** The exit-code table, in every `--help`.  *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EXIT_CODES } from "./common.ts";
 * assert.match(EXIT_CODES, /2  bad input/);
 * ```
 */
export const EXIT_CODES = `exit codes:
  0  success
  1  internal error (a bug: please report it with the command line)
  2  bad input, bad usage, a missing permission or a failing environment (the message names the fix)`;

/**
 * Flags every command takes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { COMMON } from "./common.ts";
 * assert.equal(COMMON["run-dir"].arg, "DIR");
 * ```
 */
export const COMMON: Record<string, FlagSpec> = {
  "run-dir": {
    type: "string",
    arg: "DIR",
    help: "run directory for every output (required)",
  },
  seed: {
    type: "string",
    arg: "N",
    help:
      "seed; the same inputs and seed give byte-identical outputs (default 0)",
  },
  force: {
    type: "boolean",
    help: "overwrite this command's earlier outputs in the run dir",
  },
  progress: {
    type: "boolean",
    help:
      "progress lines every 5 s when stderr is not a terminal (default there: every 30 s on long work)",
  },
  help: { type: "boolean", short: "h", help: "show this help" },
};

/**
 * How the user runs trminterp, the one spelling of the command in every
 * message, `next:` line and `--help`: the compiled binary's name, or the
 * task (the README's Usage spells it the same way).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { invocation } from "./common.ts";
 * assert.equal(invocation(), "deno task trminterp"); // tests run under deno
 * ```
 */
export function invocation(): string {
  const exe = basename(Deno.execPath());
  return exe === "deno" || exe === "deno.exe" ? "deno task trminterp" : exe;
}

/**
 * Every `trminterp <command>` a message quotes in backticks, in the one
 * spelling of {@linkcode invocation}: the library words its advice with the
 * bare name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { respell } from "./common.ts";
 * assert.equal(respell("no sae.pt in a; run `trminterp sae fit --run-dir a` first"),
 *   "no sae.pt in a; run `deno task trminterp sae fit --run-dir a` first");
 * assert.equal(respell("trminterp: error: x"), "trminterp: error: x");
 * ```
 */
export function respell(message: string): string {
  return message.replace(/`trminterp(?= |`)/g, `\`${invocation()}`);
}

/**
 * A command's `--help` text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { usage } from "./common.ts";
 * const text = usage("trace", "--run-dir DIR", { seed: { type: "string", arg: "N", help: "seed" } });
 * assert.match(text, /^usage: deno task trminterp trace --run-dir DIR/);
 * assert.match(text, /--seed N\s+seed/);
 * ```
 */
export function usage(
  name: string,
  synopsis: string,
  flags: Record<string, FlagSpec>,
  extra = "",
): string {
  return `usage: ${invocation()} ${name} ${synopsis}\n\nflags:\n${
    formatFlags(flags)
  }\n${extra ? `\n${extra}\n` : ""}\n${EXIT_CODES}`;
}

/**
 * The `--run-dir` value, required.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { requireRunDir } from "./common.ts";
 * assert.equal(requireRunDir({ "run-dir": "runs/a" }, "trace"), "runs/a");
 * assert.throws(() => requireRunDir({}, "trace"), /--run-dir is required/);
 * assert.throws(() => requireRunDir({ "run-dir": "/proc/x" }, "trace"), /is under \/proc, which Deno opens only with --allow-all/);
 * ```
 */
export function requireRunDir(v: FlagValues, cmd: string): string {
  const dir = v["run-dir"];
  if (typeof dir !== "string" || dir === "") {
    throw new InputError(
      `${cmd}: --run-dir is required; e.g. \`${invocation()} ${cmd} --run-dir runs/demo\``,
    );
  }
  const system = /^\/(proc|sys|dev)(\/|$)/.exec(resolve(dir));
  if (system) {
    throw new InputError(
      `${cmd}: --run-dir ${dir} is under /${
        system[1]
      }, which Deno opens only with --allow-all (trminterp never needs it); choose a run dir in an ordinary folder, e.g. runs/demo`,
    );
  }
  return dir;
}

/**
 * A comma-separated list of latents.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseLatents } from "./common.ts";
 * assert.deepEqual(parseLatents("z_H, z_L"), ["z_H", "z_L"]);
 * assert.throws(() => parseLatents("z_X"), /unknown latent "z_X"/);
 * ```
 */
export function parseLatents(
  v: string | boolean | undefined,
): Latent[] | undefined {
  if (typeof v !== "string") return undefined;
  const list = v.split(",").map((s) => s.trim()).filter(Boolean);
  for (const l of list) {
    if (l !== "z_H" && l !== "z_L") {
      throw new InputError(
        `--latents: unknown latent "${l}"; use z_H, z_L or z_H,z_L`,
      );
    }
  }
  if (!list.length) {
    throw new InputError(`--latents is empty; use z_H, z_L or z_H,z_L`);
  }
  return list as Latent[];
}

/**
 * A `--backend` value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseBackend } from "./common.ts";
 * assert.equal(parseBackend("wasm"), "wasm");
 * assert.throws(() => parseBackend("cuda"), /unknown backend "cuda"/);
 * ```
 */
export function parseBackend(
  v: string | boolean | undefined,
): BackendChoice | undefined {
  if (typeof v !== "string") return undefined;
  if (!(BACKENDS as readonly string[]).includes(v)) {
    throw new InputError(
      `--backend: unknown backend "${v}"; use ${BACKENDS.join(", ")}`,
    );
  }
  return v as BackendChoice;
}

/**
 * A flag that takes one of a few words.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseChoice } from "./common.ts";
 * assert.equal(parseChoice("npy", "--states", ["npy", "inline"]), "npy");
 * assert.throws(() => parseChoice("csv", "--states", ["npy", "inline"]), /--states must be npy or inline, got "csv"/);
 * ```
 */
export function parseChoice<T extends string>(
  v: string | boolean | undefined,
  name: string,
  choices: readonly T[],
): T | undefined {
  if (typeof v !== "string") return undefined;
  if (!(choices as readonly string[]).includes(v)) {
    throw new InputError(
      `${name} must be ${choices.join(" or ")}, got "${v}"`,
    );
  }
  return v as T;
}

/**
 * A `--shard I/N` value: shard I (from 0) of N.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseShard } from "./common.ts";
 * assert.deepEqual(parseShard("2/4"), { index: 2, count: 4 });
 * assert.throws(() => parseShard("4/4"), /--shard 4\/4: I must lie in 0\.\.3/);
 * assert.throws(() => parseShard("1-4"), /--shard takes I\/N/);
 * ```
 */
export function parseShard(
  v: string | boolean | undefined,
): { index: number; count: number } | undefined {
  if (typeof v !== "string") return undefined;
  const m = /^(\d+)\/(\d+)$/.exec(v.trim());
  if (!m) {
    throw new InputError(
      `--shard takes I/N (shard I of N, from 0), e.g. --shard 0/4 or --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT; got "${v}"`,
    );
  }
  const index = Number(m[1]), count = Number(m[2]);
  if (count < 1 || count > 65535) {
    throw new InputError(`--shard ${v}: N must lie in 1..65535`);
  }
  if (index >= count) {
    throw new InputError(
      `--shard ${v}: I must lie in 0..${count - 1} (shards count from 0)`,
    );
  }
  return { index, count };
}

/**
 * A comma-separated list of non-negative integers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { intList } from "./common.ts";
 * assert.deepEqual(intList("3, 17", "--features"), [3, 17]);
 * assert.throws(() => intList("3,x", "--features"), /--features must be an integer/);
 * ```
 */
export function intList(
  v: string | boolean | undefined,
  name: string,
): number[] | undefined {
  if (typeof v !== "string") return undefined;
  const out = v.split(",").map((x) => x.trim()).filter(Boolean).map((x) =>
    intFlag(x, name, 0)!
  );
  if (!out.length) {
    throw new InputError(`${name} is empty; give feature indices like 3,17`);
  }
  return out;
}

/**
 * The command line recorded in provenance: it leaves out what does not change
 * the outputs (where they go, overwriting, progress, and the shard, which the
 * trace header records on its own), so two runs in different dirs, and the
 * shards of one run, hash equal.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { provenanceArgs } from "./common.ts";
 * assert.deepEqual(provenanceArgs(["trace"], ["--run-dir", "a", "--seed", "1", "--force", "--shard", "0/2"]), ["trace", "--seed", "1"]);
 * ```
 */
export function provenanceArgs(cmd: string[], args: string[]): string[] {
  const out = [...cmd];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--run-dir" || a === "--shard") i++;
    else if (
      !a.startsWith("--run-dir=") && !a.startsWith("--shard=") &&
      a !== "--force" && a !== "--progress"
    ) out.push(a);
  }
  return out;
}

/**
 * How to show progress: `true` (on a terminal, or lines every 5 s when asked
 * with `--progress`), else the seconds between lines in a log (30).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { wantProgress } from "./common.ts";
 * assert.equal(wantProgress({ progress: true }), true);
 * if (!Deno.stderr.isTerminal()) assert.equal(wantProgress({}), 30);
 * ```
 */
export function wantProgress(v: FlagValues): true | number {
  return v.progress === true || Deno.stderr.isTerminal() || LOG_EVERY.quiet;
}

/**
 * A string flag's value, or undefined.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { str } from "./common.ts";
 * assert.equal(str({ a: "x", b: true }, "a"), "x");
 * assert.equal(str({ a: "x", b: true }, "b"), undefined);
 * ```
 */
export function str(v: FlagValues, name: string): string | undefined {
  const x = v[name];
  return typeof x === "string" ? x : undefined;
}
