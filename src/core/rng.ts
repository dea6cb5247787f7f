/**
 * Seeded pseudo-random numbers for everything stochastic in mbrl-node.
 *
 * Generator: xoshiro128** (Blackman & Vigna, https://prng.di.unimi.it/), seeded through
 * SplitMix32 so that nearby seeds give unrelated streams. All arithmetic is 32-bit integer
 * math, so streams are identical on every platform and Node version.
 *
 * `Math.random` is never used in the library: pass an `Rng` explicitly.
 *
 * @example
 * const rng = new Rng(42);
 * rng.uniform(-0.1, 0.1); rng.normal(); rng.int(10);
 */
export class Rng {
  #s0 = 0;
  #s1 = 0;
  #s2 = 0;
  #s3 = 0;
  /** Second Box–Muller variate, kept so that `normal()` uses both; part of the state. */
  #spare = 0;
  #hasSpare = false;

  /**
   * @param seed any finite number (non-integers are truncated; bits beyond 32 are mixed in)
   * @param stream selects one of many independent streams for the same seed. Default 0.
   */
  constructor(seed: number, stream = 0) {
    this.seed(seed, stream);
  }

  /** Re-seeds in place; the stream then equals `new Rng(seed, stream)`'s. */
  seed(seed: number, stream = 0): void {
    if (!Number.isFinite(seed)) {
      throw new RangeError(`Rng seed: expected a finite number, got ${String(seed)}`);
    }
    let x = Math.trunc(seed) >>> 0;
    // Mix in the high bits of seeds beyond 32 bits so 2**32 and 0 differ.
    const high = Math.floor(Math.abs(Math.trunc(seed)) / 4294967296) >>> 0;
    x = (x ^ Math.imul(high, 0x9e3779b9) ^ Math.imul(stream >>> 0, 0x85ebca6b)) >>> 0;
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#s0 = next();
    this.#s1 = next();
    this.#s2 = next();
    this.#s3 = next();
    if ((this.#s0 | this.#s1 | this.#s2 | this.#s3) === 0) this.#s0 = 1;
    this.#hasSpare = false;
    this.#spare = 0;
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  nextUint32(): number {
    const s0 = this.#s0;
    const s1 = this.#s1;
    const s2 = this.#s2;
    const s3 = this.#s3;
    const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = (s1 << 9) >>> 0;
    let n2 = (s2 ^ s0) >>> 0;
    let n3 = (s3 ^ s1) >>> 0;
    const n1 = (s1 ^ n2) >>> 0;
    const n0 = (s0 ^ n3) >>> 0;
    n2 = (n2 ^ t) >>> 0;
    n3 = rotl(n3, 11);
    this.#s0 = n0;
    this.#s1 = n1;
    this.#s2 = n2;
    this.#s3 = n3;
    return r;
  }

  /** A double in [0, 1) with 53 random bits. */
  random(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** A double in [low, high). @param low default 0 @param high default 1 */
  uniform(low = 0, high = 1): number {
    return low + (high - low) * this.random();
  }

  /** A standard normal variate (Box–Muller), scaled: mean + std · N(0, 1). */
  normal(mean = 0, std = 1): number {
    if (this.#hasSpare) {
      this.#hasSpare = false;
      return mean + std * this.#spare;
    }
    let u = 0;
    while (u === 0) u = this.random();
    const v = this.random();
    const r = Math.sqrt(-2 * Math.log(u));
    const theta = 2 * Math.PI * v;
    this.#spare = r * Math.sin(theta);
    this.#hasSpare = true;
    return mean + std * r * Math.cos(theta);
  }

  /** An integer uniform on [0, n), without modulo bias. @param n a positive integer ≤ 2**32 */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 4294967296) {
      throw new RangeError(`Rng.int: expected an integer in [1, 2**32], got ${String(n)}`);
    }
    if (n === 4294967296) return this.nextUint32();
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /** Fills `out` with uniforms in [low, high); returns `out`. */
  fillUniform<T extends Float32Array | Float64Array>(out: T, low = 0, high = 1): T {
    for (let i = 0; i < out.length; i++) out[i] = this.uniform(low, high);
    return out;
  }

  /** Fills `out` with normals of the given mean and std; returns `out`. */
  fillNormal<T extends Float32Array | Float64Array>(out: T, mean = 0, std = 1): T {
    for (let i = 0; i < out.length; i++) out[i] = this.normal(mean, std);
    return out;
  }

  /** Shuffles `arr` in place (Fisher–Yates) and returns it. */
  shuffle<T extends { length: number; [i: number]: unknown }>(arr: T): T {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = arr[i];
      arr[i] = arr[j];
      arr[j] = tmp;
    }
    return arr;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): Uint32Array {
    const p = new Uint32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    return this.shuffle(p);
  }

  /** A new generator seeded from this one's stream: independent child streams for sub-components. */
  fork(): Rng {
    return new Rng(this.nextUint32() * 4294967296 + this.nextUint32());
  }

  /** The full state, for checkpoints. */
  getState(): RngState {
    return { s: [this.#s0, this.#s1, this.#s2, this.#s3], spare: this.#hasSpare ? this.#spare : null };
  }

  /** Restores a state from `getState()`. */
  setState(state: RngState): void {
    const [a, b, c, d] = state.s;
    if (state.s.length !== 4 || [a, b, c, d].some((x) => !Number.isInteger(x) || x < 0 || x > 0xffffffff)) {
      throw new RangeError(`Rng.setState: expected s to be 4 unsigned 32-bit integers, got ${JSON.stringify(state.s)}`);
    }
    this.#s0 = a;
    this.#s1 = b;
    this.#s2 = c;
    this.#s3 = d;
    this.#hasSpare = state.spare !== null;
    this.#spare = state.spare ?? 0;
  }
}

/** Serializable generator state (see `Rng.getState`). */
export interface RngState {
  s: [number, number, number, number];
  spare: number | null;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
