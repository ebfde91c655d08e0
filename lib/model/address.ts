/**
 * Step addresses and step selectors (v0-spec §2).
 *
 * One net call is one step, addressed `(sup, h, l)`: `sup` the supervision
 * step, `h` the H cycle, and `l` the z_L update index or `"H"` for the z_H
 * update. Text form: `s3.h1.l4`, `s3.h1.H`.
 *
 * @module
 */
import { InputError } from "../errors.ts";
import type { ScheduleShape } from "../schema/mod.ts";

export type { ScheduleShape };

/** A step address. */
export interface StepAddress {
  /** Supervision (ACT) step, from 0. */
  sup: number;
  /** H cycle, from 0. */
  h: number;
  /** z_L update index, or `"H"` for the z_H update. */
  l: number | "H";
}

/**
 * Format an address as text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatAddress } from "./address.ts";
 * assert(formatAddress({ sup: 3, h: 1, l: "H" }) === "s3.h1.H");
 * ```
 */
export function formatAddress(a: StepAddress): string {
  return `s${a.sup}.h${a.h}.${a.l === "H" ? "H" : `l${a.l}`}`;
}

/**
 * Parse one exact address such as `s0.h1.l2` or `s2.h0.H`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseAddress } from "./address.ts";
 * assert(parseAddress("s2.h0.H").l === "H");
 * ```
 */
export function parseAddress(text: string): StepAddress {
  const m = /^s(\d+)\.h(\d+)\.(?:l(\d+)|(H))$/.exec(text);
  if (!m) {
    throw new InputError(
      `bad step address "${text}"; expected e.g. s0.h1.l2 or s0.h1.H`,
    );
  }
  return { sup: Number(m[1]), h: Number(m[2]), l: m[4] ? "H" : Number(m[3]) };
}

/**
 * The global execution index `t` of an address.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stepIndex } from "./address.ts";
 * const sched = { H_cycles: 2, L_cycles: 2, halt_max_steps: 4 };
 * assert(stepIndex({ sup: 1, h: 0, l: 0 }, sched) === 6);
 * ```
 */
export function stepIndex(a: StepAddress, s: ScheduleShape): number {
  const perH = s.L_cycles + 1;
  return a.sup * s.H_cycles * perH + a.h * perH +
    (a.l === "H" ? s.L_cycles : a.l);
}

/**
 * Every address of a schedule, in execution order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { allAddresses } from "./address.ts";
 * const n = allAddresses({ H_cycles: 2, L_cycles: 2, halt_max_steps: 3 }).length;
 * assert(n === 18);
 * ```
 */
export function allAddresses(s: ScheduleShape): StepAddress[] {
  const out: StepAddress[] = [];
  for (let sup = 0; sup < s.halt_max_steps; sup++) {
    for (let h = 0; h < s.H_cycles; h++) {
      for (let l = 0; l < s.L_cycles; l++) out.push({ sup, h, l });
      out.push({ sup, h, l: "H" });
    }
  }
  return out;
}

type Range = { lo: number; hi: number } | null; // null = any

interface Term {
  sup: Range;
  h: Range;
  /** `"H"` = only the z_H update, `"L"` = only z_L updates (with range), `"any"` = both. */
  l: { kind: "H" } | { kind: "L"; range: Range } | { kind: "any" };
}

/** The grammar, shown in `--help` and errors.  *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SELECTOR_GRAMMAR, StepSelector } from "./address.ts";
 * // Every example the grammar shows parses and selects steps of an 8-step, H2/L2 schedule.
 * const shape = { H_cycles: 2, L_cycles: 2, halt_max_steps: 8 };
 * const counts = SELECTOR_GRAMMAR.split("examples:")[1].trim().split(/\s+/)
 *   .map((ex) => StepSelector.parse(ex).select(shape).length);
 * assert.deepEqual(counts, [48, 16, 24, 3]);
 * ```
 */
export const SELECTOR_GRAMMAR: string = `selector := "all" | term ("," term)*
term     := S "." H "." L
S        := "s" RANGE | "*"        supervision steps
H        := "h" RANGE | "*"        H cycles
L        := "l" RANGE | "H" | "*"  z_L updates, the z_H update, or both
RANGE    := N | N "-" M | "*"      inclusive; "*" is any
examples: all   s*.h*.H   s0-3.*.*   s7.h1.l0-1,s7.h1.H`;

/**
 * A parsed step selector that matches addresses.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StepSelector } from "./address.ts";
 * const sel = StepSelector.parse("s*.h1.H");
 * assert(sel.matches({ sup: 5, h: 1, l: "H" }));
 * assert(!sel.matches({ sup: 5, h: 1, l: 0 }));
 * ```
 */
export class StepSelector {
  readonly #terms: Term[];
  /** The selector's text, as given. */
  readonly text: string;

  private constructor(text: string, terms: Term[]) {
    this.text = text;
    this.#terms = terms;
  }

  /** Parse selector text; throws {@linkcode InputError} with the grammar on failure. */
  static parse(text: string): StepSelector {
    const src = text.trim();
    if (src === "all") {
      return new StepSelector(src, [{
        sup: null,
        h: null,
        l: { kind: "any" },
      }]);
    }
    const terms = src.split(",").map((t) => parseTerm(t.trim(), text));
    return new StepSelector(src, terms);
  }

  /** Whether the selector matches an address. */
  matches(a: StepAddress): boolean {
    return this.#terms.some((t) =>
      inRange(t.sup, a.sup) && inRange(t.h, a.h) &&
      (t.l.kind === "any" || (t.l.kind === "H"
        ? a.l === "H"
        : a.l !== "H" && inRange(t.l.range, a.l)))
    );
  }

  /** The matching addresses of a schedule, in execution order. */
  select(s: ScheduleShape): StepAddress[] {
    return allAddresses(s).filter((a) => this.matches(a));
  }
}

function inRange(r: Range, v: number): boolean {
  return r === null || (v >= r.lo && v <= r.hi);
}

function parseRange(body: string, whole: string): Range {
  if (body === "*") return null;
  const m = /^(\d+)(?:-(\d+))?$/.exec(body);
  if (!m) throw badSelector(whole);
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (hi < lo) {
    throw new InputError(
      `step selector "${whole}": range ${body} runs backwards; write ${hi}-${lo}`,
    );
  }
  return { lo, hi };
}

function parsePart(part: string, prefix: string, whole: string): Range {
  if (part === "*") return null;
  if (!part.startsWith(prefix)) throw badSelector(whole);
  return parseRange(part.slice(1), whole);
}

function parseTerm(term: string, whole: string): Term {
  const parts = term.split(".");
  if (parts.length !== 3) throw badSelector(whole);
  const [s, h, l] = parts;
  let lp: Term["l"];
  if (l === "*") lp = { kind: "any" };
  else if (l === "H") lp = { kind: "H" };
  else if (l.startsWith("l")) {
    lp = { kind: "L", range: parseRange(l.slice(1), whole) };
  } else throw badSelector(whole);
  return { sup: parsePart(s, "s", whole), h: parsePart(h, "h", whole), l: lp };
}

function badSelector(text: string): InputError {
  return new InputError(
    `unknown step selector "${text}"; use "all" or terms like s*.h1.H, s0-3.*.*, s2.h0.l1 (see --help)`,
  );
}
