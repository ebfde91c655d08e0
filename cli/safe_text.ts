/**
 * Text bound for a terminal, made inert: a run dir named with ESC or OSC
 * bytes (`\x1b]0;…\x07`, `\x1b[2J`) would otherwise act on the terminal when
 * a summary or an error line echoes it. Control characters other than
 * newline and tab, DEL and the C1 controls are written as `\xNN` / `\uNNNN`.
 *
 * @module
 */

/**
 * `text` with every control character except `\n` and `\t` escaped.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { terminalSafe } from "./safe_text.ts";
 * assert.equal(terminalSafe("runs/a\x1b]0;owned\x07b"), "runs/a\\x1b]0;owned\\x07b");
 * assert.equal(terminalSafe("line 1\n\tline 2 \u009b"), "line 1\n\tline 2 \\u009b");
 * ```
 */
export function terminalSafe(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f\u0080-\u009f]/g, (c) => {
    const n = c.charCodeAt(0);
    return n < 0x80
      ? `\\x${n.toString(16).padStart(2, "0")}`
      : `\\u${n.toString(16).padStart(4, "0")}`;
  });
}

/**
 * Why `args` cannot be used as given, or null: Deno decodes arguments that
 * are not valid UTF-8 with U+FFFD, so a folder named with such bytes would be
 * created under another name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { notUtf8 } from "./safe_text.ts";
 * assert.equal(notUtf8(["trace", "--run-dir", "runs/é"]), null);
 * assert.match(notUtf8(["trace", "--run-dir", "runs/\ufffd"])!, /argument 3 .*not valid UTF-8/);
 * ```
 */
export function notUtf8(args: readonly string[]): string | null {
  const i = args.findIndex((a) => a.includes("\ufffd"));
  if (i < 0) return null;
  return `argument ${i + 1} (${
    terminalSafe(args[i].slice(0, 80))
  }) holds bytes that are not valid UTF-8 (shown as U+FFFD), so trminterp cannot name that path exactly; rename it with UTF-8 characters`;
}
