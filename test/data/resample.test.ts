// The resampling rules on hand-made signals, each answer computed by hand.
import { describe, expect, it } from 'vitest';
import { gapIntervals, makeGrid, markGaps, orderByStamp, resampleSignal, validRuns } from '../../src/data/resample.js';

describe('resample', () => {
  it('orderByStamp counts descents and keeps the last logged of equal stamps', () => {
    expect(orderByStamp([10n, 30n, 20n, 30n])).toEqual({ order: [0, 2, 3], outOfOrder: 1, duplicates: 1 });
    expect(orderByStamp([5n, 4n, 3n])).toEqual({ order: [2, 1, 0], outOfOrder: 2, duplicates: 0 });
    expect(orderByStamp([])).toEqual({ order: [], outOfOrder: 0, duplicates: 0 });
  });

  it('latest holds, linear interpolates, both exact at a stamp', () => {
    // Two-dimensional signal: (0 ns → [0, 10]), (10 → [1, 20]), (30 → [5, 0]).
    const signal = { stampsNs: Float64Array.from([0, 10, 30]), values: Float64Array.from([0, 10, 1, 20, 5, 0]), dim: 2 };
    const grid = makeGrid(0, 30, 5); // 0, 5, …, 30
    expect(Array.from(grid)).toEqual([0, 5, 10, 15, 20, 25, 30]);
    const latest = new Float64Array(7 * 3);
    resampleSignal(signal, grid, 'latest', latest, 3, 1); // stride 3, offset 1: leaves column 0
    expect(Array.from(latest)).toEqual([0, 0, 10, 0, 0, 10, 0, 1, 20, 0, 1, 20, 0, 1, 20, 0, 1, 20, 0, 5, 0]);
    const linear = new Float64Array(7 * 2);
    resampleSignal(signal, grid, 'linear', linear, 2, 0);
    // t = 5: halfway 0→1 and 10→20; t = 15, 20, 25: a quarter, half, three quarters of 1→5 and 20→0.
    expect(Array.from(linear)).toEqual([0, 10, 0.5, 15, 1, 20, 2, 15, 3, 10, 4, 5, 5, 0]);
    expect(() => resampleSignal(signal, Float64Array.from([31]), 'latest', linear, 2, 0)).toThrow("grid[0]: time 31 ns is outside the signal's range [0, 30]");
  });

  it('gaps: grid times strictly inside a long silence; runs between them', () => {
    const stamps = Float64Array.from([0, 10, 20, 80, 90]);
    const gaps = gapIntervals(stamps, 50);
    expect(gaps).toEqual([[20, 80]]);
    const grid = makeGrid(0, 90, 10);
    const mask = new Uint8Array(grid.length);
    markGaps(grid, gaps, mask);
    // 30…70 are inside (20, 80); 20 and 80 are messages, not inside.
    expect(Array.from(mask)).toEqual([0, 0, 0, 1, 1, 1, 1, 1, 0, 0]);
    expect(validRuns(mask)).toEqual([[0, 3], [8, 10]]);
    expect(validRuns(new Uint8Array(3))).toEqual([[0, 3]]);
    expect(makeGrid(10, 5, 1).length).toBe(0);
  });
});
