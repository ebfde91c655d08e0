/**
 * The trminterp command line: dispatch to `trace`, `sae fit` and
 * `intervene`, and the mapping of errors to one line and an exit code.
 *
 * @module
 */
import { InputError, OptionError } from "../lib/errors.ts";
import { VERSION } from "../lib/version.ts";
import { EXIT_CODES } from "./common.ts";
import { nearest } from "./flags.ts";
import { intervene } from "./intervene.ts";
import { SAE_HELP, saeFit } from "./sae_fit.ts";
import { trace } from "./trace.ts";

const MAIN_HELP =
  `trminterp ${VERSION}: trace -> SAE -> intervene for TRM/HRM recurrent reasoning models

usage:
  trminterp trace     --run-dir DIR [--model BUNDLE] [--inputs FILE|DIR] [--seed N] ...
  trminterp sae fit   --run-dir DIR [--seed N] ...
  trminterp intervene --run-dir DIR --policy ablate_features|clamp_features|patch_features ...

Run the commands in this order; every output goes under --run-dir.
\`trminterp <command> --help\` lists a command's flags.

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
 * ```
 */
export function describeError(e: unknown): { line: string; code: number } {
  if (e instanceof OptionError) {
    return { line: `trminterp: error: ${e.format(flagOf)}`, code: 2 };
  }
  if (e instanceof InputError) {
    return { line: `trminterp: error: ${e.message}`, code: e.exitCode };
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
  return {
    line: `trminterp: internal error: ${
      e instanceof Error ? e.stack ?? e.message : String(e)
    }`,
    code: 1,
  };
}

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
    console.error(line);
    return code;
  }
}
