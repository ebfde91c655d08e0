/**
 * Seeded pseudo-random numbers. Every random choice in trminterp goes through
 * {@linkcode Rng} so that the same seed gives byte-identical artifacts.
 *
 * The generator is xoshiro128** seeded through splitmix32: small, fast with
 * 32-bit integer math, and the same on every platform.
 *
 * @module
 */

function splitmix32(state: number): [number, number] {
  state = (state + 0x9e3779b9) | 0;
  let z = state;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return [state, (z ^ (z >>> 16)) >>> 0];
}

/**
 * A seeded xoshiro128** generator.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Rng } from "./rng.ts";
 * const a = new Rng(7), b = new Rng(7);
 * assert(a.next() === b.next());
 * ```
 */
export class Rng {
  #s = new Uint32Array(4);
  #spare: number | null = null;

  /**
   * Create a generator from an integer seed (any safe integer; negative
   * seeds are allowed) and an optional stream number that derives an
   * independent sequence from the same seed.
   */
  constructor(seed: number, stream = 0) {
    if (!Number.isSafeInteger(seed)) {
      throw new RangeError(`seed must be an integer, got ${seed}`);
    }
    let st = (seed | 0) ^ Math.imul(stream + 1, 0x27d4eb2f);
    let hi = Math.floor(seed / 2 ** 32) | 0;
    for (let i = 0; i < 4; i++) {
      let v: number;
      [st, v] = splitmix32(st ^ hi);
      hi = 0;
      this.#s[i] = v;
    }
    if ((this.#s[0] | this.#s[1] | this.#s[2] | this.#s[3]) === 0) {
      this.#s[0] = 1;
    }
  }

  /** Next 32-bit unsigned integer. */
  next(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform float in [0, 1) with 32 bits of randomness. */
  float(): number {
    return this.next() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!(n > 0) || n > 4294967296) {
      throw new RangeError(`int(n) needs 0 < n <= 2^32, got ${n}`);
    }
    // Rejection sampling keeps the result exactly uniform.
    const limit = 4294967296 - (4294967296 % n);
    let x: number;
    do x = this.next(); while (x >= limit);
    return x % n;
  }

  /** Standard normal sample (Box–Muller, caching the second value). */
  normal(): number {
    if (this.#spare !== null) {
      const v = this.#spare;
      this.#spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.float();
    const v = this.float();
    const r = Math.sqrt(-2 * Math.log(u));
    this.#spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Shuffle an array in place (Fisher–Yates) and return it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }

  /** `k` distinct indices from `[0, n)`, in ascending order. */
  sample(n: number, k: number): number[] {
    if (k > n) throw new RangeError(`cannot sample ${k} of ${n}`);
    const idx = Array.from({ length: n }, (_, i) => i);
    for (let i = 0; i < k; i++) {
      const j = i + this.int(n - i);
      [idx[i], idx[j]] = [idx[j], idx[i]];
    }
    return idx.slice(0, k).sort((a, b) => a - b);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
