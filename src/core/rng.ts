/*
 * Ziggurat tables for `Rng.normal` (Marsaglia & Tsang 2000, `zigset`): 128 layers of equal area V
 * under the half-normal density f(x) = exp(−x²/2). Layer i ≥ 1 spans x ∈ [0, x_i] between
 * f(x_i) and f(x_{i−1}) (F[0] = f(0) = 1); x_i grows with i up to x₁₂₇ = R; layer 0 is the base, a
 * rectangle of width V/f(R) whose part beyond R stands for the tail.
 *
 * A 32-bit draw gives a layer i (low 7 bits) and a magnitude u ∈ (−2²⁴, 2²⁴) (the high 25 bits as a
 * signed integer, plus ½ so that the distribution is symmetric). The candidate is z = u·W[i],
 * W[i] = x_i / 2²⁴; it is accepted at once when |u| < K[i], i.e. |z| < x_{i−1}, where the whole
 * column lies under the density (K[0]: |z| < R; K[1] = 0 sends the top layer to the wedge test).
 */
const ZIG_INDEX_BITS = 7;
const ZIG_INDEX_MASK = (1 << ZIG_INDEX_BITS) - 1;
const ZIG_LAYERS = 1 << ZIG_INDEX_BITS;
const ZIG_R = 3.442619855899;
const ZIG_V = 9.91256303526217e-3;
const ZIG_K = new Float64Array(ZIG_LAYERS);
const ZIG_W = new Float64Array(ZIG_LAYERS);
const ZIG_F = new Float64Array(ZIG_LAYERS);
{
  const m = 2 ** 24;
  const last = ZIG_LAYERS - 1;
  let x = ZIG_R;
  const q = ZIG_V / Math.exp(-0.5 * x * x);
  ZIG_K[0] = (x / q) * m;
  ZIG_K[1] = 0;
  ZIG_W[0] = q / m;
  ZIG_W[last] = x / m;
  ZIG_F[0] = 1;
  ZIG_F[last] = Math.exp(-0.5 * x * x);
  for (let i = last - 1; i >= 1; i--) {
    const above = x;
    x = Math.sqrt(-2 * Math.log(ZIG_V / above + Math.exp(-0.5 * above * above)));
    ZIG_K[i + 1] = (x / above) * m;
    ZIG_F[i] = Math.exp(-0.5 * x * x);
    ZIG_W[i] = x / m;
  }
}

/**
 * Seeded pseudo-random numbers for everything stochastic in mbrl-node.
 *
 * Generator: xoshiro128** (Blackman & Vigna, https://prng.di.unimi.it/), seeded through
 * SplitMix32 so that nearby seeds give unrelated streams. The generator is 32-bit integer math,
 * so its streams are identical on every platform and Node version.
 *
 * Normals come from the ziggurat method (Marsaglia & Tsang 2000, "The Ziggurat Method for
 * Generating Random Variables", https://doi.org/10.18637/jss.v005.i08), one 32-bit draw per
 * variate in 98.8% of cases. Following Doornik 2005 ("An Improved Ziggurat Method to Generate
 * Normal Random Samples"), the layer index and the magnitude come from disjoint bits of the draw:
 * the low 7 bits pick one of 128 layers and the high 25 bits give a signed magnitude, so the two
 * are independent (the original RNOR reused the index bits in the magnitude).
 *
 * The platform's unseeded generator is never used in the library (lint bans it): pass an `Rng`.
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

  /** A normal variate mean + std · N(0, 1) (ziggurat, see the class comment). */
  normal(mean = 0, std = 1): number {
    const bits = this.nextUint32() | 0;
    const layer = bits & ZIG_INDEX_MASK;
    const u = (bits >> ZIG_INDEX_BITS) + 0.5;
    const z = Math.abs(u) < ZIG_K[layer] ? u * ZIG_W[layer] : this.#normalSlow(layer, u);
    return mean + std * z;
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

  /**
   * Fills `out` with normals of the given mean and std; returns `out`. The same values as `out.length`
   * calls of `normal(mean, std)`, several times faster: the generator runs in locals here.
   */
  fillNormal<T extends Float32Array | Float64Array>(out: T, mean = 0, std = 1): T {
    const n = out.length;
    // Local copies: read through the module scope, the tables cost ~40% more per variate.
    const zigK = ZIG_K;
    const zigW = ZIG_W;
    const indexMask = ZIG_INDEX_MASK;
    const indexBits = ZIG_INDEX_BITS;
    // xoshiro128** as in nextUint32, on int32 locals (the state fields hold the same bits unsigned).
    let s0 = this.#s0 | 0;
    let s1 = this.#s1 | 0;
    let s2 = this.#s2 | 0;
    let s3 = this.#s3 | 0;
    for (let i = 0; i < n; i++) {
      const m5 = Math.imul(s1, 5);
      const bits = Math.imul((m5 << 7) | (m5 >>> 25), 9);
      const t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = (s3 << 11) | (s3 >>> 21);
      const layer = bits & indexMask;
      const u = (bits >> indexBits) + 0.5;
      if (Math.abs(u) < zigK[layer]) {
        out[i] = mean + std * (u * zigW[layer]);
      } else {
        // Rare (1.2%): the slow path draws through the fields, so hand the state over and back.
        this.#setWords(s0, s1, s2, s3);
        out[i] = mean + std * this.#normalSlow(layer, u);
        s0 = this.#s0 | 0;
        s1 = this.#s1 | 0;
        s2 = this.#s2 | 0;
        s3 = this.#s3 | 0;
      }
    }
    this.#setWords(s0, s1, s2, s3);
    return out;
  }

  /** Shuffles `arr` in place (Fisher–Yates, drawing `int(i + 1)` for i = length−1 … 1) and returns it. */
  shuffle<T extends { length: number; [i: number]: unknown }>(arr: T): T {
    // ModelEnv's TS1 permutes a Uint32Array of every step's rows: same draws, generator inlined.
    if (arr instanceof Uint32Array) {
      this.#shuffleUint32(arr);
      return arr;
    }
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
    return { s: [this.#s0, this.#s1, this.#s2, this.#s3], spare: null };
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
  }

  /** `shuffle` of a Uint32Array, with `int` and `nextUint32` inlined: the same draws and result. */
  #shuffleUint32(arr: Uint32Array): void {
    let s0 = this.#s0 | 0;
    let s1 = this.#s1 | 0;
    let s2 = this.#s2 | 0;
    let s3 = this.#s3 | 0;
    for (let i = arr.length - 1; i > 0; i--) {
      const m = i + 1;
      let x: number;
      for (;;) {
        const m5 = Math.imul(s1, 5);
        x = Math.imul((m5 << 7) | (m5 >>> 25), 9) >>> 0;
        const t = s1 << 9;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = (s3 << 11) | (s3 >>> 21);
        // int's rejection of x ≥ 2³² − (2³² mod m); the first test (2³² − m < that limit) skips the
        // modulo for nearly every draw.
        if (x < 4294967296 - m || x < 4294967296 - (4294967296 % m)) break;
      }
      const j = x % m;
      const tmp = arr[i];
      arr[i] = arr[j];
      arr[j] = tmp;
    }
    this.#setWords(s0, s1, s2, s3);
  }

  #setWords(s0: number, s1: number, s2: number, s3: number): void {
    this.#s0 = s0 >>> 0;
    this.#s1 = s1 >>> 0;
    this.#s2 = s2 >>> 0;
    this.#s3 = s3 >>> 0;
  }

  /**
   * The ziggurat's slow path for a draw that missed its layer's rectangle core: the wedge test,
   * or the tail beyond R for the base layer (Marsaglia's `nfix`), retrying with fresh draws.
   */
  #normalSlow(layer: number, u: number): number {
    for (;;) {
      const x = u * ZIG_W[layer];
      if (layer === 0) {
        // Tail |z| > R (Marsaglia 1964): x = −ln(U₁)/R, accepted when −2 ln(U₂) > x²; U ∈ (0, 1].
        let tx: number;
        let ty: number;
        do {
          tx = -Math.log(1 - this.random()) / ZIG_R;
          ty = -Math.log(1 - this.random());
        } while (ty + ty < tx * tx);
        return u > 0 ? ZIG_R + tx : -ZIG_R - tx;
      }
      if (ZIG_F[layer] + this.random() * (ZIG_F[layer - 1] - ZIG_F[layer]) < Math.exp(-0.5 * x * x)) return x;
      const bits = this.nextUint32() | 0;
      layer = bits & ZIG_INDEX_MASK;
      u = (bits >> ZIG_INDEX_BITS) + 0.5;
      if (Math.abs(u) < ZIG_K[layer]) return u * ZIG_W[layer];
    }
  }
}

/** Serializable generator state (see `Rng.getState`). */
export interface RngState {
  s: [number, number, number, number];
  /**
   * Always null, and ignored by `setState`. Kept so that saved states keep their shape: it held the
   * pending second variate of the Box–Muller sampler that the ziggurat replaced.
   */
  spare: number | null;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
