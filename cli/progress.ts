/**
 * Progress lines on stderr for long work: count, rate and ETA.
 *
 * @module
 */

/** Where progress lines go; tests pass their own. */
export interface ProgressSink {
  /** Whether the sink is a terminal (a line is then redrawn in place). */
  tty: boolean;
  /** Write raw text. */
  write(text: string): void;
}

const stderrSink: ProgressSink = {
  tty: Deno.stderr.isTerminal(),
  write: (text) => void Deno.stderr.writeSync(new TextEncoder().encode(text)),
};

/** Seconds between plain progress lines in a log, by default and with `--progress`. */
export const LOG_EVERY = { quiet: 30, asked: 5 } as const;

/**
 * Reports progress on stderr: on a terminal, one line redrawn at most four
 * times a second; otherwise (a log file, CI) a new line at most every
 * `enabled` seconds (`true`: five), so a long run leaves a short log that
 * still shows it is alive. With the quiet default of {@linkcode LOG_EVERY}
 * (30 s), work that ends before its first line writes nothing at all.
 * Silent when `enabled` is false.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Progress } from "./progress.ts";
 * const lines: string[] = [];
 * const p = new Progress("trace", 100, "examples", true, { tty: false, write: (t) => void lines.push(t) });
 * for (let i = 1; i <= 100; i++) p.update(i);
 * p.done();
 * assert.equal(lines.length, 1); // only the final line: the run took under five seconds
 * assert.match(lines[0], /^trace: 100\/100 examples/);
 *
 * // A slow run: a line every five seconds, with parts of a unit and an ETA.
 * let now = 0;
 * const slow: string[] = [];
 * const q = new Progress("trace", 16, "examples", true, { tty: false, write: (t) => void slow.push(t) }, () => now);
 * for (let s = 1; s <= 64; s++) {
 *   now = 1875 * s; // ms: a quarter example every 1.875 s
 *   q.update(s / 4);
 * }
 * assert.equal(slow[0], "trace: 0.75/16 examples, 0.13 examples/s, ETA 1m54s\n");
 * assert.equal(slow[1], "trace: 1.5/16 examples, 0.13 examples/s, ETA 1m49s\n");
 * assert.equal(slow.length, 22); // at least 5 s apart over two minutes, and the last
 * assert.equal(slow.at(-1), "trace: 16/16 examples, 0.13 examples/s, 2m00s\n");
 *
 * // The default in a log: a line every 30 s, nothing for short work.
 * now = 0;
 * const log: string[] = [];
 * const r = new Progress("sae fit", 100, "steps", 30, { tty: false, write: (t) => void log.push(t) }, () => now);
 * for (let s = 1; s <= 100; s++) {
 *   now = 1000 * s; // a step a second
 *   r.update(s);
 * }
 * assert.deepEqual(log.map((l) => l.split(",")[0]), ["sae fit: 30/100 steps", "sae fit: 60/100 steps", "sae fit: 90/100 steps", "sae fit: 100/100 steps"]);
 * const short: string[] = [];
 * const t = new Progress("sae fit", 10, "steps", 30, { tty: false, write: (x) => void short.push(x) });
 * for (let s = 1; s <= 10; s++) t.update(s);
 * assert.equal(short.length, 0);
 * ```
 */
export class Progress {
  #label: string;
  #total: number;
  #unit: string;
  #enabled: boolean;
  #every: number;
  #quietStart: boolean;
  #lines = 0;
  #sink: ProgressSink;
  #clock: () => number;
  #start: number;
  #last: number;

  /**
   * Create a reporter for `total` units of work. `enabled`: false (silent),
   * true (a log line every 5 s), or the seconds between log lines; `clock`
   * (milliseconds, default `performance.now`) is for tests.
   */
  constructor(
    label: string,
    total: number,
    unit: string,
    enabled: boolean | number,
    sink: ProgressSink = stderrSink,
    clock: () => number = () => performance.now(),
  ) {
    this.#label = label;
    this.#total = total;
    this.#unit = unit;
    this.#enabled = enabled !== false;
    const every = enabled === true ? LOG_EVERY.asked : Number(enabled);
    this.#every = every * 1000;
    this.#quietStart = every >= LOG_EVERY.quiet;
    this.#sink = sink;
    this.#clock = clock;
    this.#start = this.#last = clock();
  }

  /** Change the total (when it becomes known later). */
  set total(n: number) {
    this.#total = n;
  }

  /**
   * Report that `done` units are finished; a fraction (part of a batch) is
   * shown to two decimals.
   */
  update(done: number): void {
    if (!this.#enabled) return;
    const now = this.#clock();
    const every = this.#sink.tty ? 250 : this.#every;
    if (done < this.#total && now - this.#last < every) return;
    // Quiet logs: short work (done before the first line was due) stays silent.
    if (
      !this.#sink.tty && this.#quietStart && this.#lines === 0 &&
      now - this.#last < every
    ) return;
    this.#last = now;
    this.#lines++;
    const secs = (now - this.#start) / 1000;
    const rate = done / Math.max(secs, 1e-9);
    const eta = rate > 0 ? (this.#total - done) / rate : 0;
    const line = `${this.#label}: ${
      formatCount(done)
    }/${this.#total} ${this.#unit}, ${formatRate(rate)} ${this.#unit}/s, ${
      done < this.#total
        ? `ETA ${formatSeconds(eta)}`
        : `${formatSeconds(secs)}`
    }`;
    this.#sink.write(this.#sink.tty ? `\r${line}\x1b[K` : `${line}\n`);
  }

  /** Finish the progress line and return the elapsed seconds. */
  done(): number {
    const secs = (this.#clock() - this.#start) / 1000;
    if (this.#enabled && this.#sink.tty) this.#sink.write("\n");
    return secs;
  }
}

/** A count: whole, or to two decimals without trailing zeros. */
function formatCount(n: number): string {
  return Number.isInteger(n) ? String(n) : String(Number(n.toFixed(2)));
}

/** A rate: one decimal, or two significant digits below 1. */
function formatRate(r: number): string {
  return r >= 1 || r === 0 ? r.toFixed(1) : r.toPrecision(2);
}

/**
 * Seconds as `42s`, `3m07s` or `1h02m`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatSeconds } from "./progress.ts";
 * assert.equal(formatSeconds(42.4), "42s");
 * assert.equal(formatSeconds(187), "3m07s");
 * assert.equal(formatSeconds(3720), "1h02m");
 * ```
 */
export function formatSeconds(s: number): string {
  const t = Math.round(s);
  if (t < 60) return `${t}s`;
  if (t < 3600) {
    return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, "0")}s`;
  }
  return `${Math.floor(t / 3600)}h${
    String(Math.floor(t % 3600 / 60)).padStart(2, "0")
  }m`;
}
