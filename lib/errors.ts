/**
 * Typed errors. The library throws them with messages in its own terms (API
 * option names, file paths); the CLI words them for a command line (flag
 * names) and maps them to exit code 2.
 *
 * @module
 */

/**
 * Bad input or a failing environment: a file that is not what it claims, a
 * value out of range, a disk that is full. The message is one line naming the
 * problem and, where possible, the fix.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { InputError } from "./errors.ts";
 * const err = new InputError("puzzles.jsonl line 3: 15 tokens, expected 16");
 * assert.equal(err.exitCode, 2);
 * ```
 */
export class InputError extends Error {
  /** The process exit code for this error. */
  readonly exitCode = 2;
  /** Create an input error with a one-line message. */
  constructor(message: string) {
    super(message);
    this.name = "InputError";
  }
}

/**
 * A bad value for options of a library call. The template names each option
 * in braces, by its name in the API (`{holdout}`, `{trainSteps}`); `message`
 * drops the braces, and the CLI words the template with its flags
 * (`--holdout`, `--train-steps`) through {@linkcode OptionError.format}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { OptionError } from "./errors.ts";
 * const err = new OptionError("holdout", "{holdout} must lie in (0, 1), got 2");
 * assert.equal(err.message, "holdout must lie in (0, 1), got 2");
 * assert.equal(err.format((o) => `--${o}`), "--holdout must lie in (0, 1), got 2");
 * ```
 */
export class OptionError extends InputError {
  /** The API option at fault. */
  readonly option: string;
  /** The message with each option name in braces. */
  readonly template: string;
  /** Create an error for `option` from a template naming options in braces. */
  constructor(option: string, template: string) {
    super(template.replace(/\{(\w+)\}/g, "$1"));
    this.name = "OptionError";
    this.option = option;
    this.template = template;
  }
  /** The message with each `{option}` replaced by `name(option)`. */
  format(name: (option: string) => string): string {
    return this.template.replace(/\{(\w+)\}/g, (_, o: string) => name(o));
  }
}

/** A step of the loop: what makes the files the next step reads. */
export type LoopStep = "trace" | "sae fit";

/** The library function that runs each {@linkcode LoopStep}. */
const STEP_FUNCTION: Record<LoopStep, string> = {
  trace: "runTrace",
  "sae fit": "runSaeFit",
};

/**
 * Something a step of the loop makes is missing or stale, and the fix is to
 * run that step (again). The template marks the fix as `{fix}`; `message`
 * words it as the library call (`runTrace({ runDir: "r" })`), and the CLI
 * words it as a command line through {@linkcode StepError.format}, as it does
 * flags for {@linkcode OptionError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StepError } from "./errors.ts";
 * const err = new StepError("no trace.jsonl in r; {fix} first", "trace", { runDir: "r" });
 * assert.equal(err.message, `no trace.jsonl in r; run runTrace({ runDir: "r" }) first`);
 * assert.equal(
 *   err.format((step, o) => `\`trminterp ${step} --run-dir ${o.runDir}\``),
 *   "no trace.jsonl in r; run `trminterp trace --run-dir r` first",
 * );
 * assert.equal(err.exitCode, 2);
 * ```
 */
export class StepError extends InputError {
  /** The step to run. */
  readonly step: LoopStep;
  /** Its options, by their API names (`runDir`, `shard`). */
  readonly options: Readonly<Record<string, string>>;
  /** The message with the fix as `{fix}`. */
  readonly template: string;
  /** Create an error whose fix is running `step` with `options`. */
  constructor(
    template: string,
    step: LoopStep,
    options: Record<string, string>,
  ) {
    const args = Object.entries(options)
      .map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(", ");
    super(
      template.replace("{fix}", `run ${STEP_FUNCTION[step]}({ ${args} })`),
    );
    this.name = "StepError";
    this.step = step;
    this.options = options;
    this.template = template;
  }
  /** The message with `{fix}` replaced by `"run " + command(step, options)`. */
  format(
    command: (
      step: LoopStep,
      options: Readonly<Record<string, string>>,
    ) => string,
  ): string {
    return this.template.replace(
      "{fix}",
      `run ${command(this.step, this.options)}`,
    );
  }
}
