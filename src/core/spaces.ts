import { checkFiniteVector } from './errors.js';
import type { Rng } from './rng.js';

/**
 * A box in R^n: the observation and action spaces of every environment (Gymnasium's `Box`,
 * one-dimensional). Bounds may be infinite for observations.
 */
export class Box {
  readonly low: Float64Array;
  readonly high: Float64Array;
  readonly dim: number;

  /**
   * @param low lower bounds, one per dimension (may be `-Infinity`)
   * @param high upper bounds, same length, each ≥ its lower bound
   */
  constructor(low: ArrayLike<number>, high: ArrayLike<number>) {
    if (low.length !== high.length) {
      throw new RangeError(`Box: low has length ${low.length} but high has length ${high.length}`);
    }
    this.dim = low.length;
    this.low = Float64Array.from(low);
    this.high = Float64Array.from(high);
    for (let i = 0; i < this.dim; i++) {
      if (Number.isNaN(this.low[i]) || Number.isNaN(this.high[i]) || this.low[i] > this.high[i]) {
        throw new RangeError(`Box: bound ${i} is [${this.low[i]}, ${this.high[i]}]; expected low ≤ high, no NaN`);
      }
    }
  }

  /** A box with the same bound on every dimension. */
  static uniform(dim: number, low: number, high: number): Box {
    return new Box(new Float64Array(dim).fill(low), new Float64Array(dim).fill(high));
  }

  /** Whether `x` has the right length and lies inside the bounds (inclusive). */
  contains(x: ArrayLike<number>): boolean {
    if (x.length !== this.dim) return false;
    for (let i = 0; i < this.dim; i++) if (!(x[i] >= this.low[i] && x[i] <= this.high[i])) return false;
    return true;
  }

  /** Clips `x` into the box, writing into `out` (default: a new array). */
  clip(x: ArrayLike<number>, out: Float64Array = new Float64Array(this.dim)): Float64Array {
    for (let i = 0; i < this.dim; i++) out[i] = Math.min(this.high[i], Math.max(this.low[i], x[i]));
    return out;
  }

  /** Whether every bound is finite (required to sample uniformly). */
  isBounded(): boolean {
    for (let i = 0; i < this.dim; i++) if (!Number.isFinite(this.low[i]) || !Number.isFinite(this.high[i])) return false;
    return true;
  }

  /** A uniform sample; unbounded dimensions draw from N(0, 1) shifted to stay inside a half-bound. */
  sample(rng: Rng, out: Float64Array = new Float64Array(this.dim)): Float64Array {
    for (let i = 0; i < this.dim; i++) {
      const lo = this.low[i];
      const hi = this.high[i];
      if (Number.isFinite(lo) && Number.isFinite(hi)) out[i] = rng.uniform(lo, hi);
      else if (Number.isFinite(lo)) out[i] = lo - Math.log(1 - rng.random());
      else if (Number.isFinite(hi)) out[i] = hi + Math.log(1 - rng.random());
      else out[i] = rng.normal();
    }
    return out;
  }

  /** Validates a vector for this space: length and finiteness (not bounds). */
  check(x: ArrayLike<number>, where: string, field: string): void {
    checkFiniteVector(x, this.dim, where, field);
  }

  toJSON(): { low: number[]; high: number[] } {
    return { low: Array.from(this.low), high: Array.from(this.high) };
  }
}
