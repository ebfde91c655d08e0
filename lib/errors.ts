/**
 * Error types that map to trminterp's exit codes.
 *
 * @module
 */

/**
 * Bad input or usage: the CLI prints its one-line message and exits with code 2.
 * The message names the problem and, where possible, the fix.
 *
 * @example
 * ```ts
 * import { InputError } from "./errors.ts";
 * const err = new InputError("puzzles.jsonl line 3: 15 tokens, expected 16; fix the puzzle or pass the right --model");
 * console.assert(err.exitCode === 2);
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
