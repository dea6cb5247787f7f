/**
 * Resampling of timestamped signals onto a fixed control grid (pure functions, for bag import).
 *
 * Times are nanoseconds as float64 numbers relative to a base the caller chooses (exact integers
 * up to 2^53 ns ≈ 104 days from the base).
 *
 * Rules:
 * - `latest` (zero-order hold): the value at t is that of the last message with stamp ≤ t.
 * - `linear`: the value at t is interpolated between the last message with stamp ≤ t and the
 *   first with stamp > t; exactly the message's value when a stamp equals t.
 * - Out of order: a message whose stamp is earlier than its predecessor's (in the order the bag
 *   logged them) counts as one; messages are then sorted by stamp (stable). Of messages with
 *   equal stamps, the last logged is kept (each other one counts as a duplicate).
 * - A gap is two consecutive messages (by stamp) more than `maxGapNs` apart; grid times strictly
 *   between them are "in the gap" (their value would be a stale hold or a long interpolation).
 */
import { ValidationError } from '../core/errors.js';
import type { ResampleRule } from './bagMapping.js';

/** One topic's messages, sorted by stamp with unique stamps: `values` is [n, dim] row-major. */
export interface Signal {
  stampsNs: Float64Array;
  values: Float64Array;
  dim: number;
}

/** What `orderByStamp` returns. */
export interface StampOrder {
  /** Indices into the input, ascending by stamp, one per distinct stamp (the last logged). */
  order: number[];
  /** Messages whose stamp is earlier than their predecessor's. */
  outOfOrder: number;
  /** Messages dropped because a later-logged one has the same stamp. */
  duplicates: number;
}

/**
 * Sorts messages given in log order by stamp (see the file comment for the counting rules).
 * @example orderByStamp([10n, 30n, 20n, 30n]) // { order: [0, 2, 3], outOfOrder: 1, duplicates: 1 }
 */
export function orderByStamp(stampsNs: readonly bigint[]): StampOrder {
  let outOfOrder = 0;
  for (let i = 1; i < stampsNs.length; i++) if (stampsNs[i] < stampsNs[i - 1]) outOfOrder++;
  const idx = stampsNs.map((_, i) => i).sort((a, b) => (stampsNs[a] < stampsNs[b] ? -1 : stampsNs[a] > stampsNs[b] ? 1 : a - b));
  const order: number[] = [];
  for (let k = 0; k < idx.length; k++) {
    if (k + 1 < idx.length && stampsNs[idx[k + 1]] === stampsNs[idx[k]]) continue;
    order.push(idx[k]);
  }
  return { order, outOfOrder, duplicates: stampsNs.length - order.length };
}

/** Grid times t0, t0 + period, … ≤ t1. */
export function makeGrid(t0: number, t1: number, periodNs: number): Float64Array {
  if (!(periodNs > 0)) throw new ValidationError('makeGrid', 'periodNs', `expected a positive period, got ${periodNs}`);
  const n = t1 < t0 ? 0 : Math.floor((t1 - t0) / periodNs) + 1;
  return Float64Array.from({ length: n }, (_, k) => t0 + k * periodNs);
}

/**
 * Writes the signal's value at each grid time into `out` (row k at `k * stride + offset`).
 * The grid must be ascending and within [first stamp, last stamp].
 * @throws ValidationError for a grid time outside the signal's range
 */
export function resampleSignal(signal: Signal, grid: Float64Array, rule: ResampleRule, out: Float32Array | Float64Array, stride: number, offset: number): void {
  const { stampsNs: s, values: v, dim } = signal;
  const n = s.length;
  let j = 0; // s[j] ≤ t < s[j + 1]
  for (let k = 0; k < grid.length; k++) {
    const t = grid[k];
    if (n === 0 || t < s[0] || t > s[n - 1]) throw new ValidationError('resampleSignal', `grid[${k}]`, `time ${t} ns is outside the signal's range [${s[0]}, ${s[n - 1]}]`);
    while (j + 1 < n && s[j + 1] <= t) j++;
    const o = k * stride + offset;
    if (rule === 'latest' || s[j] === t || j + 1 >= n) {
      for (let d = 0; d < dim; d++) out[o + d] = v[j * dim + d];
    } else {
      const w = (t - s[j]) / (s[j + 1] - s[j]);
      for (let d = 0; d < dim; d++) out[o + d] = v[j * dim + d] + w * (v[(j + 1) * dim + d] - v[j * dim + d]);
    }
  }
}

/** Pairs of consecutive stamps more than `maxGapNs` apart, as [from, to]. */
export function gapIntervals(stampsNs: Float64Array, maxGapNs: number): [number, number][] {
  const out: [number, number][] = [];
  for (let j = 0; j + 1 < stampsNs.length; j++) if (stampsNs[j + 1] - stampsNs[j] > maxGapNs) out.push([stampsNs[j], stampsNs[j + 1]]);
  return out;
}

/** Marks (1) the grid times strictly inside any of `gaps`; both ascending. */
export function markGaps(grid: Float64Array, gaps: readonly [number, number][], mask: Uint8Array): void {
  let g = 0;
  for (let k = 0; k < grid.length; k++) {
    const t = grid[k];
    while (g < gaps.length && gaps[g][1] <= t) g++;
    if (g < gaps.length && gaps[g][0] < t && t < gaps[g][1]) mask[k] = 1;
  }
}

/** Maximal runs [start, end) of grid indices whose mask is 0. */
export function validRuns(mask: Uint8Array): [number, number][] {
  const runs: [number, number][] = [];
  let start = -1;
  for (let k = 0; k <= mask.length; k++) {
    const ok = k < mask.length && mask[k] === 0;
    if (ok && start < 0) start = k;
    if (!ok && start >= 0) {
      runs.push([start, k]);
      start = -1;
    }
  }
  return runs;
}
