/**
 * Progress lines on stderr for long work: count, rate and ETA.
 *
 * @module
 */

/**
 * Reports progress on stderr, at most a few times a second. Silent unless
 * enabled (the CLI enables it on a TTY or with `--progress`).
 *
 * @example
 * ```ts
 * import { Progress } from "./progress.ts";
 * const p = new Progress("trace", 100, "examples", false);
 * p.update(50);
 * p.done();
 * ```
 */
export class Progress {
  #label: string;
  #total: number;
  #unit: string;
  #enabled: boolean;
  #start = performance.now();
  #last = 0;
  #tty: boolean;

  /** Create a reporter for `total` units of work. */
  constructor(label: string, total: number, unit: string, enabled: boolean) {
    this.#label = label;
    this.#total = total;
    this.#unit = unit;
    this.#enabled = enabled;
    this.#tty = enabled && Deno.stderr.isTerminal();
  }

  /** Report that `done` units are finished. */
  update(done: number): void {
    if (!this.#enabled) return;
    const now = performance.now();
    if (done < this.#total && now - this.#last < 250) return;
    this.#last = now;
    const secs = (now - this.#start) / 1000;
    const rate = done / Math.max(secs, 1e-9);
    const eta = rate > 0 ? (this.#total - done) / rate : 0;
    const line = `${this.#label}: ${done}/${this.#total} ${this.#unit}, ${
      rate.toFixed(1)
    } ${this.#unit}/s, ETA ${eta.toFixed(0)}s`;
    const enc = new TextEncoder();
    Deno.stderr.writeSync(
      enc.encode(this.#tty ? `\r${line}\x1b[K` : `${line}\n`),
    );
  }

  /** Finish the progress line and return the elapsed seconds. */
  done(): number {
    const secs = (performance.now() - this.#start) / 1000;
    if (this.#enabled && this.#tty) {
      Deno.stderr.writeSync(new TextEncoder().encode("\n"));
    }
    return secs;
  }
}
