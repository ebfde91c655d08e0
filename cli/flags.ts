/**
 * Argument parsing for the CLI on top of `node:util` parseArgs, with
 * one-line errors that suggest the nearest valid flag.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { InputError } from "../lib/errors.ts";

/** One flag of a command. */
export interface FlagSpec {
  /** `string` flags take a value; `boolean` flags do not. */
  type: "string" | "boolean";
  /** One-letter alias. */
  short?: string;
  /** Help text. */
  help: string;
  /** Placeholder shown in help, e.g. `DIR`. */
  arg?: string;
}

/**
 * Edit distance between two strings (for "did you mean").
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { editDistance } from "./flags.ts";
 * assert(editDistance("--rundir", "--run-dir") === 1);
 * ```
 */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j];
      row[j] = Math.min(
        row[j] + 1,
        row[j - 1] + 1,
        diag + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      diag = tmp;
    }
  }
  return row[b.length];
}

/**
 * The closest candidate to `word`, if any is reasonably close.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nearest } from "./flags.ts";
 * assert(nearest("--sed", ["--seed", "--steps"]) === "--seed");
 * ```
 */
export function nearest(
  word: string,
  candidates: string[],
): string | undefined {
  // A unique prefix ("ablate" for "ablate_features") is the clearest hint.
  const prefixed = candidates.filter((c) => c.startsWith(word));
  if (word.length >= 3 && prefixed.length === 1) return prefixed[0];
  let best: string | undefined, bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestD) [best, bestD] = [c, d];
  }
  return bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

/**
 * Parse a command's arguments; unknown flags and bad values raise
 * {@linkcode InputError} with a suggestion.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseFlags } from "./flags.ts";
 * const v = parseFlags("trace", ["--seed", "3"], { seed: { type: "string", help: "seed" } });
 * assert(v.seed === "3");
 * ```
 */
export function parseFlags(
  command: string,
  args: string[],
  specs: Record<string, FlagSpec>,
): Record<string, string | boolean | undefined> {
  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string }
  > = {};
  for (const [name, s] of Object.entries(specs)) {
    options[name] = s.short
      ? { type: s.type, short: s.short }
      : { type: s.type };
  }
  // A value that starts with "-" (a negative --value, or a bad --features
  // -3) reaches its own check instead of parseArgs' "ambiguous" error.
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = args[i].startsWith("--") ? args[i].slice(2) : undefined;
    const next = args[i + 1];
    if (
      name && specs[name]?.type === "string" && next !== undefined &&
      /^-[\d.]/.test(next)
    ) {
      joined.push(`${args[i]}=${next}`);
      i++;
    } else joined.push(args[i]);
  }
  try {
    const { values, positionals } = parseArgs({
      args: joined,
      options,
      strict: true,
      allowPositionals: true,
    });
    if (positionals.length) {
      throw new InputError(
        `${command}: unexpected argument "${
          positionals[0]
        }"; see \`trminterp ${command} --help\``,
      );
    }
    return values as Record<string, string | boolean | undefined>;
  } catch (e) {
    if (e instanceof InputError) throw e;
    const msg = e instanceof Error ? e.message : String(e);
    const unknown = /Unknown option '([^']+)'/.exec(msg);
    if (unknown) {
      const flag = unknown[1].split("=")[0];
      const hint = nearest(flag, Object.keys(specs).map((n) => `--${n}`));
      throw new InputError(
        `${command}: unknown flag ${flag}${
          hint ? `; did you mean ${hint}?` : ""
        } (see \`trminterp ${command} --help\`)`,
      );
    }
    const ambiguous = /Option '([^']+)' argument is ambiguous/.exec(msg);
    if (ambiguous) {
      throw new InputError(
        `${command}: ${
          ambiguous[1]
        } needs a value, but the next argument is a flag; give it one, e.g. ${
          ambiguous[1]
        }=VALUE (see \`trminterp ${command} --help\`)`,
      );
    }
    throw new InputError(
      `${command}: ${msg.split("\n")[0]} (see \`trminterp ${command} --help\`)`,
    );
  }
}

/**
 * Format a command's flags for `--help`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatFlags } from "./flags.ts";
 * assert.equal(formatFlags({ seed: { type: "string", arg: "N", help: "seed" } }), "      --seed N  seed");
 * ```
 */
export function formatFlags(specs: Record<string, FlagSpec>): string {
  const rows = Object.entries(specs).map(([name, s]) => {
    const left = `${s.short ? `-${s.short}, ` : "    "}--${name}${
      s.type === "string" ? ` ${s.arg ?? "VALUE"}` : ""
    }`;
    return [left, s.help] as const;
  });
  const w = Math.max(...rows.map(([l]) => l.length)) + 2;
  return rows.map(([l, h]) => `  ${l.padEnd(w)}${h}`).join("\n");
}

/**
 * Read an integer flag value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { intFlag } from "./flags.ts";
 * assert(intFlag("3", "--seed") === 3);
 * ```
 */
export function intFlag(
  v: string | boolean | undefined,
  name: string,
  min = -Infinity,
): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (
    typeof v !== "string" || !/^-?\d+$/.test(v.trim()) ||
    !Number.isSafeInteger(n) || n < min
  ) {
    throw new InputError(
      `${name} must be an integer${
        min > -Infinity ? ` >= ${min}` : ""
      }, got "${v}"`,
    );
  }
  return n;
}

/**
 * Read a number flag value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { numFlag } from "./flags.ts";
 * assert(numFlag("0.5", "--holdout") === 0.5);
 * ```
 */
export function numFlag(
  v: string | boolean | undefined,
  name: string,
): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== "string" || v.trim() === "" || !Number.isFinite(n)) {
    throw new InputError(`${name} must be a finite number, got "${v}"`);
  }
  return n;
}
