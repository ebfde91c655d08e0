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

/**
 * Reports progress on stderr: on a terminal, one line redrawn at most four
 * times a second; otherwise (a log file, CI) a new line at most every five
 * seconds, so a long run leaves a short log. Silent unless enabled.
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
 * ```
 */
export class Progress {
  #label: string;
  #total: number;
  #unit: string;
  #enabled: boolean;
  #sink: ProgressSink;
  #start = performance.now();
  #last = 0;

  /** Create a reporter for `total` units of work. */
  constructor(
    label: string,
    total: number,
    unit: string,
    enabled: boolean,
    sink: ProgressSink = stderrSink,
  ) {
    this.#label = label;
    this.#total = total;
    this.#unit = unit;
    this.#enabled = enabled;
    this.#sink = sink;
    this.#last = this.#start;
  }

  /** Change the total (when it becomes known later). */
  set total(n: number) {
    this.#total = n;
  }

  /** Report that `done` units are finished. */
  update(done: number): void {
    if (!this.#enabled) return;
    const now = performance.now();
    const every = this.#sink.tty ? 250 : 5000;
    if (done < this.#total && now - this.#last < every) return;
    this.#last = now;
    const secs = (now - this.#start) / 1000;
    const rate = done / Math.max(secs, 1e-9);
    const eta = rate > 0 ? (this.#total - done) / rate : 0;
    const line = `${this.#label}: ${done}/${this.#total} ${this.#unit}, ${
      rate.toFixed(1)
    } ${this.#unit}/s, ${
      done < this.#total
        ? `ETA ${formatSeconds(eta)}`
        : `${formatSeconds(secs)}`
    }`;
    this.#sink.write(this.#sink.tty ? `\r${line}\x1b[K` : `${line}\n`);
  }

  /** Finish the progress line and return the elapsed seconds. */
  done(): number {
    const secs = (performance.now() - this.#start) / 1000;
    if (this.#enabled && this.#sink.tty) this.#sink.write("\n");
    return secs;
  }
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
