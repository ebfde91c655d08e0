/**
 * A bound on the command line. Loading onnxruntime-node (the native backend)
 * with a long command line overflows the main thread's stack and aborts the
 * whole process (SIGABRT): on our machines from about 26–30 KB of arguments
 * in all, in one argument or spread over several. No flag needs that much.
 *
 * @module
 */

/** The most bytes of arguments (UTF-8, one NUL each) trminterp accepts. */
export const MAX_ARGV_BYTES = 16 * 1024;

/**
 * The bytes `args` take on the command line: UTF-8, plus one NUL each.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { argvBytes, MAX_ARGV_BYTES } from "./argv.ts";
 * assert.equal(argvBytes(["trace", "--seed", "0"]), 6 + 7 + 2);
 * assert.ok(argvBytes(["--seed", "0" + " ".repeat(40_000)]) > MAX_ARGV_BYTES);
 * ```
 */
export function argvBytes(args: readonly string[]): number {
  const enc = new TextEncoder();
  return args.reduce((n, a) => n + enc.encode(a).length + 1, 0);
}

/**
 * Why `args` are too long to run with, or null when they fit.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { argvTooLong } from "./argv.ts";
 * assert.equal(argvTooLong(["trace"]), null);
 * assert.match(argvTooLong(["x".repeat(20_000)])!, /20001 bytes/);
 * ```
 */
export function argvTooLong(args: readonly string[]): string | null {
  const n = argvBytes(args);
  if (n <= MAX_ARGV_BYTES) return null;
  return `the command line holds ${n} bytes of arguments, more than the ${MAX_ARGV_BYTES} trminterp accepts (onnxruntime-node aborts the process on long command lines); shorten the flags' values (a path, a list of features)`;
}
