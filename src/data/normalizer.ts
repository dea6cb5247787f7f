import { ValidationError, checkFiniteVector, describe } from '../core/errors.js';

/** Options of `new RunningNormalizer`. */
export interface RunningNormalizerOptions {
  /** Number of dimensions (entries per row). A positive integer. */
  dim: number;
  /**
   * Dimensions whose standard deviation is below this are treated as constant and get a std
   * of 1 (they are centred but not scaled). Default 1e-6.
   */
  minStd?: number;
}

/** The JSON form of a `RunningNormalizer` (`toJSON` / `fromJSON`). */
export interface RunningNormalizerJSON {
  kind: 'RunningNormalizer';
  version: 1;
  dim: number;
  minStd: number;
  count: number;
  mean: number[];
  /** Sum of squared deviations from the mean, per dimension (Welford's M2). */
  m2: number[];
}

/**
 * Per-dimension running mean and standard deviation, for normalising model inputs and targets.
 *
 * Single rows use Welford's update (Welford 1962; Knuth TAOCP vol. 2, 4.2.2):
 *   n ← n + 1,  δ = x − μ,  μ ← μ + δ/n,  M2 ← M2 + δ·(x − μ).
 * Batches and other normalisers are merged with Chan, Golub & LeVeque's parallel formula
 * (1979, https://doi.org/10.1007/978-3-642-51461-6_3):
 *   n = nA + nB,  δ = μB − μA,  μ = μA + δ·nB/n,  M2 = M2A + M2B + δ²·nA·nB/n.
 * Both avoid the cancellation of the naive Σx² − (Σx)²/n. Statistics are kept in float64.
 *
 * `std` is the population standard deviation √(M2/n). A dimension with std below `minStd`
 * (default 1e-6) gets std 1 instead, as mbrl-lib's `Normalizer` does: a constant input (a
 * fixed joint, a padding entry) is then only centred. Flooring it at a small epsilon instead
 * would divide any later change in that input by ~1e-8 and blow the model's input up. Before
 * any update, mean is 0 and std 1, so normalising is the identity.
 *
 * @example
 * const norm = new RunningNormalizer({ dim: 3 });
 * norm.updateBatch(batch.obs, batch.size);
 * const x = norm.normalize(batch.obs, batch.size, new Float32Array(batch.obs.length));
 * const saved = JSON.stringify(norm); const again = RunningNormalizer.fromJSON(JSON.parse(saved));
 */
export class RunningNormalizer {
  readonly dim: number;
  readonly minStd: number;
  #count = 0;
  #mean: Float64Array;
  #m2: Float64Array;

  constructor(options: RunningNormalizerOptions) {
    const { dim, minStd = 1e-6 } = options ?? ({} as RunningNormalizerOptions);
    if (!Number.isInteger(dim) || dim <= 0) throw new ValidationError('RunningNormalizer', 'dim', `expected a positive integer, got ${describe(dim)}`);
    if (typeof minStd !== 'number' || !Number.isFinite(minStd) || minStd < 0) {
      throw new ValidationError('RunningNormalizer', 'minStd', `expected a finite number >= 0, got ${describe(minStd)}`);
    }
    this.dim = dim;
    this.minStd = minStd;
    this.#mean = new Float64Array(dim);
    this.#m2 = new Float64Array(dim);
  }

  /** Rows seen. */
  get count(): number {
    return this.#count;
  }

  /** Per-dimension mean (a copy). */
  get mean(): Float64Array {
    return this.#mean.slice();
  }

  /** Per-dimension population variance M2/n (a copy; zeros before any update). */
  get variance(): Float64Array {
    const v = new Float64Array(this.dim);
    if (this.#count > 0) for (let j = 0; j < this.dim; j++) v[j] = this.#m2[j] / this.#count;
    return v;
  }

  /** Per-dimension std used for normalising: √variance, or 1 where that is below `minStd`. */
  get std(): Float64Array {
    const s = this.variance;
    for (let j = 0; j < this.dim; j++) {
      const sd = Math.sqrt(s[j]);
      s[j] = this.#count === 0 || sd < this.minStd ? 1 : sd;
    }
    return s;
  }

  /**
   * Adds one row (Welford).
   * @throws ValidationError (statistics unchanged) for a wrong length or a NaN/Inf entry
   */
  update(row: ArrayLike<number>): void {
    checkFiniteVector(row, this.dim, 'RunningNormalizer.update', 'row');
    this.#count++;
    for (let j = 0; j < this.dim; j++) {
      const delta = row[j] - this.#mean[j];
      this.#mean[j] += delta / this.#count;
      this.#m2[j] += delta * (row[j] - this.#mean[j]);
    }
  }

  /**
   * Adds `n` rows stored row-major in `flat`: their mean and M2 in two passes, then Chan's merge.
   * @throws ValidationError (statistics unchanged) naming `flat[i]` for a NaN/Inf entry
   */
  updateBatch(flat: ArrayLike<number>, n: number): void {
    const d = this.dim;
    checkRowCount(flat, n, d, 'RunningNormalizer.updateBatch');
    if (n === 0) return;
    for (let i = 0; i < n * d; i++) {
      if (typeof flat[i] !== 'number' || !Number.isFinite(flat[i])) {
        throw new ValidationError('RunningNormalizer.updateBatch', `flat[${i}]`, `expected a finite number (row ${Math.floor(i / d)}), got ${describe(flat[i])}`);
      }
    }
    const mean = new Float64Array(d);
    const m2 = new Float64Array(d);
    for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) mean[j] += flat[r * d + j];
    for (let j = 0; j < d; j++) mean[j] /= n;
    for (let r = 0; r < n; r++) {
      for (let j = 0; j < d; j++) {
        const dev = flat[r * d + j] - mean[j];
        m2[j] += dev * dev;
      }
    }
    this.#merge(n, mean, m2);
  }

  /**
   * Adds another normaliser's statistics (Chan's merge), e.g. from a parallel worker.
   * @throws ValidationError if the dims differ
   */
  merge(other: RunningNormalizer): void {
    if (other.dim !== this.dim) throw new ValidationError('RunningNormalizer.merge', 'dim', `expected ${this.dim}, got ${other.dim}`);
    this.#merge(other.#count, other.#mean, other.#m2);
  }

  /**
   * Writes (x − mean)/std for `n` rows of `flat` into `out` (may be `flat` itself).
   * @param out default a new Float64Array
   * @example norm.normalize(obs, 1, obs); // in place
   */
  normalize<T extends Float32Array | Float64Array = Float64Array>(flat: ArrayLike<number>, n: number, out?: T): T {
    return this.#affine(flat, n, out, 'normalize', true);
  }

  /**
   * Inverse of `normalize`: writes x·std + mean for `n` rows into `out` (may be `flat` itself).
   * @param out default a new Float64Array
   */
  denormalize<T extends Float32Array | Float64Array = Float64Array>(flat: ArrayLike<number>, n: number, out?: T): T {
    return this.#affine(flat, n, out, 'denormalize', false);
  }

  /** The state as plain JSON (float64 values survive JSON exactly). */
  toJSON(): RunningNormalizerJSON {
    return {
      kind: 'RunningNormalizer',
      version: 1,
      dim: this.dim,
      minStd: this.minStd,
      count: this.#count,
      mean: Array.from(this.#mean),
      m2: Array.from(this.#m2),
    };
  }

  /**
   * Rebuilds a normaliser from `toJSON()`'s output, checking every key.
   * @throws ValidationError naming the bad key (`mean[2]`, `count`, ...) and its value
   */
  static fromJSON(json: unknown): RunningNormalizer {
    const where = 'RunningNormalizer.fromJSON';
    if (json === null || typeof json !== 'object' || Array.isArray(json)) {
      throw new ValidationError(where, '(root)', `expected an object, got ${describe(json)}`);
    }
    const o = json as Record<string, unknown>;
    if (o.kind !== 'RunningNormalizer') throw new ValidationError(where, 'kind', `expected "RunningNormalizer", got ${describe(o.kind)}`);
    if (o.version !== 1) throw new ValidationError(where, 'version', `expected 1, got ${describe(o.version)}`);
    if (!Number.isInteger(o.dim) || (o.dim as number) <= 0) throw new ValidationError(where, 'dim', `expected a positive integer, got ${describe(o.dim)}`);
    const dim = o.dim as number;
    if (typeof o.minStd !== 'number' || !Number.isFinite(o.minStd) || o.minStd < 0) {
      throw new ValidationError(where, 'minStd', `expected a finite number >= 0, got ${describe(o.minStd)}`);
    }
    if (!Number.isSafeInteger(o.count) || (o.count as number) < 0) {
      throw new ValidationError(where, 'count', `expected a non-negative integer, got ${describe(o.count)}`);
    }
    for (const key of ['mean', 'm2'] as const) {
      if (!Array.isArray(o[key])) throw new ValidationError(where, key, `expected an array of ${dim} numbers, got ${describe(o[key])}`);
      checkFiniteVector(o[key] as number[], dim, where, key);
    }
    const m2 = o.m2 as number[];
    for (let j = 0; j < dim; j++) {
      if (m2[j] < 0) throw new ValidationError(where, `m2[${j}]`, `expected a sum of squares >= 0, got ${m2[j]}`);
      if (o.count === 0 && (m2[j] !== 0 || (o.mean as number[])[j] !== 0)) {
        throw new ValidationError(where, 'count', `is 0 but mean/m2 are not all zero (at [${j}])`);
      }
    }
    const norm = new RunningNormalizer({ dim, minStd: o.minStd });
    norm.#count = o.count as number;
    norm.#mean.set(o.mean as number[]);
    norm.#m2.set(m2);
    return norm;
  }

  #merge(nB: number, meanB: ArrayLike<number>, m2B: ArrayLike<number>): void {
    if (nB === 0) return;
    const nA = this.#count;
    const n = nA + nB;
    for (let j = 0; j < this.dim; j++) {
      const delta = meanB[j] - this.#mean[j];
      this.#mean[j] += (delta * nB) / n;
      this.#m2[j] += m2B[j] + (delta * delta * nA * nB) / n;
    }
    this.#count = n;
  }

  #affine<T extends Float32Array | Float64Array>(flat: ArrayLike<number>, n: number, out: T | undefined, op: string, forward: boolean): T {
    const d = this.dim;
    const where = `RunningNormalizer.${op}`;
    checkRowCount(flat, n, d, where);
    const dst = out ?? (new Float64Array(n * d) as T);
    if (!(dst instanceof Float32Array || dst instanceof Float64Array) || dst.length < n * d) {
      throw new ValidationError(where, 'out', `expected a Float32Array or Float64Array of length >= ${n * d}, got ${describe(dst)}`);
    }
    const mean = this.#mean;
    const std = this.std;
    for (let r = 0; r < n; r++) {
      for (let j = 0; j < d; j++) {
        const i = r * d + j;
        dst[i] = forward ? (flat[i] - mean[j]) / std[j] : flat[i] * std[j] + mean[j];
      }
    }
    return dst;
  }
}

function checkRowCount(flat: ArrayLike<number>, n: number, d: number, where: string): void {
  if (!Number.isInteger(n) || n < 0) throw new ValidationError(where, 'n', `expected a non-negative integer row count, got ${describe(n)}`);
  if (flat === null || flat === undefined || typeof flat.length !== 'number' || flat.length < n * d) {
    throw new ValidationError(where, 'flat', `expected at least ${n} rows × ${d} = ${n * d} numbers, got ${describe(flat)}${flat && typeof flat.length === 'number' ? ` of length ${flat.length}` : ''}`);
  }
}
