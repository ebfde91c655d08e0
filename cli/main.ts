/**
 * The trminterp command line: dispatch to `trace`, `sae fit` and
 * `intervene`, and the mapping of errors to one line and an exit code.
 *
 * @module
 */
import {
  InputError,
  type LoopStep,
  OptionError,
  StepError,
} from "../lib/errors.ts";
import { argvTooLong } from "../lib/model/argv.ts";
import { notUtf8, terminalSafe } from "./safe_text.ts";
import { VERSION } from "../lib/version.ts";
import { EXIT_CODES, invocation, respell } from "./common.ts";
import { nearest } from "./flags.ts";
import { intervene } from "./intervene.ts";
import { SAE_HELP, saeFit } from "./sae_fit.ts";
import { trace } from "./trace.ts";

const MAIN_HELP =
  `trminterp ${VERSION}: trace -> SAE -> intervene for TRM/HRM recurrent reasoning models

usage:
  ${invocation()} trace     --run-dir DIR [--model BUNDLE] [--inputs FILE|DIR] [--seed N] ...
  ${invocation()} sae fit   --run-dir DIR [--seed N] ...
  ${invocation()} intervene --run-dir DIR --policy ablate_features|clamp_features|patch_features ...

Run the commands in this order; every output goes under --run-dir.
\`${invocation()} <command> --help\` lists a command's flags.

${EXIT_CODES}`;

async function sae(args: string[]): Promise<unknown> {
  const [sub, ...rest] = args;
  if (sub === "fit") return await saeFit(rest);
  if (sub === undefined || sub === "--help" || sub === "-h") {
    return console.log(SAE_HELP);
  }
  throw new InputError(
    sub.startsWith("-")
      ? `sae: the subcommand comes first: \`trminterp sae fit ${
        args.join(" ")
      }\``
      : `unknown command "sae ${sub}"; the only sae command is \`trminterp sae fit\``,
  );
}

const COMMANDS: Record<string, (args: string[]) => Promise<unknown>> = {
  trace,
  sae,
  intervene,
};

// API option names whose flag is not their kebab-case form.
const FLAG_OF: Record<string, string> = { latent: "--latents" };

/**
 * The flag that sets an API option: `trainSteps` → `--train-steps`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { flagOf } from "./main.ts";
 * assert.equal(flagOf("trainSteps"), "--train-steps");
 * assert.equal(flagOf("sourceExample"), "--source-example");
 * assert.equal(flagOf("latent"), "--latents");
 * ```
 */
export function flagOf(option: string): string {
  return FLAG_OF[option] ??
    `--${option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/**
 * The command line that runs a step of the loop with the given API options.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { commandOf } from "./main.ts";
 * assert.equal(commandOf("trace", { runDir: "runs/a", shard: "1/4" }), "`trminterp trace --run-dir runs/a --shard 1/4`");
 * assert.equal(commandOf("sae fit", {}), "`trminterp sae fit`");
 * ```
 */
export function commandOf(
  step: LoopStep,
  options: Readonly<Record<string, string>>,
): string {
  const args = Object.entries(options).map(([k, v]) => `${flagOf(k)} ${v}`);
  return `\`${["trminterp", step, ...args].join(" ")}\``;
}

/**
 * The one line and the exit code for an error: library errors worded with
 * flags, a failing environment (disk full, read-only, no permission) as a
 * problem to fix (exit 2), anything else as a bug (exit 1).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeError } from "./main.ts";
 * import { OptionError } from "../lib/errors.ts";
 * assert.deepEqual(describeError(new OptionError("trainSteps", "{trainSteps} must be >= 1")),
 *   { line: "trminterp: error: --train-steps must be >= 1", code: 2 });
 * assert.equal(describeError(new TypeError("x is undefined")).code, 1);
 * assert.equal(describeError(new Deno.errors.NotCapable(`Requires all access to "/proc/x", run again with the --allow-all flag`)).line,
 *   "trminterp: error: /proc/x is a special system path that Deno opens only with --allow-all, which trminterp never needs; choose a path in an ordinary folder");
 * ```
 */
export function describeError(e: unknown): { line: string; code: number } {
  const { line, code } = describe(e);
  return { line: respell(line), code };
}

function describe(e: unknown): { line: string; code: number } {
  if (e instanceof StepError) {
    return { line: `trminterp: error: ${e.format(commandOf)}`, code: 2 };
  }
  if (e instanceof OptionError) {
    return { line: `trminterp: error: ${e.format(flagOf)}`, code: 2 };
  }
  if (e instanceof InputError) {
    return { line: `trminterp: error: ${e.message}`, code: e.exitCode };
  }
  const special = /Requires all access to "([^"]+)"/.exec(firstLine(e));
  if (e instanceof Deno.errors.NotCapable && special) {
    return {
      line: `trminterp: error: ${
        special[1]
      } is a special system path that Deno opens only with --allow-all, which trminterp never needs; choose a path in an ordinary folder`,
      code: 2,
    };
  }
  if (
    e instanceof Deno.errors.NotCapable ||
    e instanceof Deno.errors.PermissionDenied
  ) {
    return {
      line: `trminterp: error: ${firstLine(e)}`,
      code: 2,
    };
  }
  const code = (e as { code?: unknown })?.code;
  if (typeof code === "string" && code in ENVIRONMENT) {
    return {
      line: `trminterp: error: ${firstLine(e)}; ${ENVIRONMENT[code]}`,
      code: 2,
    };
  }
  if (
    e instanceof RangeError &&
    /allocation failed|Invalid typed array length|Array buffer/i.test(e.message)
  ) {
    return {
      line: `trminterp: error: out of memory (${
        firstLine(e)
      }); use smaller inputs or sizes, or a machine with more memory`,
      code: 2,
    };
  }
  return {
    line: `trminterp: internal error: ${
      e instanceof Error ? e.stack ?? e.message : String(e)
    }`,
    code: 1,
  };
}

/**
 * OS errors that a failing environment causes, not trminterp: the message
 * (which names the operation and the path) gets the fix, and exit code 2.
 */
const ENVIRONMENT: Record<string, string> = {
  ENOSPC: "the disk is full: free space or choose a --run-dir on another disk",
  EDQUOT: "the disk quota is used up: free space or choose another --run-dir",
  EROFS: "the file system is read-only: choose a writable --run-dir",
  EACCES: "permission denied: check the file's owner and mode",
  EPERM: "operation not permitted: check the file's owner and mode",
  EIO: "the disk reported an I/O error: check the device",
  ENOTDIR: "a component of the path is a file, not a folder: fix the path",
  EISDIR: "the path is a folder where a file belongs: fix the path",
  ELOOP: "the path has too many symbolic links: use the real path",
  ENAMETOOLONG: "the path is too long: choose a shorter one",
  EMFILE: "too many open files: raise the limit (ulimit -n)",
  ENFILE: "too many open files on the system: retry later",
  EFBIG: "the file is too large for this file system: choose another --run-dir",
  ENOENT:
    "a file went missing while trminterp used it: check what else writes there, then rerun",
};

function firstLine(e: unknown): string {
  return String(e instanceof Error ? e.message : e).split("\n")[0];
}

/**
 * Run the CLI on `args` and return the exit code.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { main } from "./main.ts";
 * assert.equal(await main(["--version"]), 0);
 * assert.equal(await main(["tracee"]), 2);
 * ```
 */
export async function main(args: string[]): Promise<number> {
  try {
    const [cmd, ...rest] = args;
    if (
      cmd === undefined || cmd === "--help" || cmd === "-h" || cmd === "help"
    ) {
      console.log(MAIN_HELP);
      return cmd === undefined ? 2 : 0;
    }
    if (cmd === "--version" || cmd === "-V") {
      console.log(`trminterp ${VERSION}`);
      return 0;
    }
    // Before anything loads onnxruntime-node, which aborts on long ones.
    const long = argvTooLong(args);
    if (long) throw new InputError(long);
    const lossy = notUtf8(args);
    if (lossy) throw new InputError(lossy);
    const run = COMMANDS[cmd];
    if (!run) {
      const hint = nearest(cmd, Object.keys(COMMANDS));
      throw new InputError(
        `unknown command "${cmd}"${
          hint ? `; did you mean "${hint === "sae" ? "sae fit" : hint}"?` : ""
        } (see \`trminterp --help\`)`,
      );
    }
    await run(rest);
    return 0;
  } catch (e) {
    const { line, code } = describeError(e);
    console.error(terminalSafe(line));
    return code;
  }
}
