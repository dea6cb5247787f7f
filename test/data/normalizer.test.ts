import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { RunningNormalizer } from '../../src/data/normalizer.js';

/** 10,000 seeded rows of 4 dims with large offsets (where naive Σx² − (Σx)²/n loses digits). */
function rows(n = 10_000, seed = 42): Float64Array {
  const rng = new Rng(seed);
  const offsets = [1e4, -3, 0, 1e6];
  const scales = [1, 0.01, 50, 2];
  const flat = new Float64Array(n * 4);
  for (let r = 0; r < n; r++) for (let j = 0; j < 4; j++) flat[r * 4 + j] = offsets[j] + scales[j] * rng.normal();
  return flat;
}

/** Reference: two-pass mean and population variance. */
function twoPass(flat: Float64Array, d: number): { mean: number[]; variance: number[] } {
  const n = flat.length / d;
  const mean = new Array<number>(d).fill(0);
  const variance = new Array<number>(d).fill(0);
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) mean[j] += flat[r * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) variance[j] += (flat[r * d + j] - mean[j]) ** 2;
  for (let j = 0; j < d; j++) variance[j] /= n;
  return { mean, variance };
}

function expectRelClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rel: number): void {
  expect(actual.length).toBe(expected.length);
  for (let j = 0; j < expected.length; j++) {
    expect(Math.abs(actual[j] - expected[j])).toBeLessThanOrEqual(rel * Math.max(Math.abs(expected[j]), 1e-300));
  }
}

describe('RunningNormalizer statistics', () => {
  it('computes a hand-checked mean and variance', () => {
    const norm = new RunningNormalizer({ dim: 2 });
    norm.update([1, 2]);
    norm.update([3, 4]);
    norm.update([5, 9]);
    expect(Array.from(norm.mean)).toEqual([3, 5]);
    // Population variances: ((−2)² + 0 + 2²)/3 = 8/3; ((−3)² + (−1)² + 4²)/3 = 26/3.
    expectRelClose(norm.variance, [8 / 3, 26 / 3], 1e-15);
    expectRelClose(norm.std, [Math.sqrt(8 / 3), Math.sqrt(26 / 3)], 1e-15);
    expect(norm.count).toBe(3);
  });

  it('Welford row by row matches a two-pass computation on 10,000 rows to 1e-9', () => {
    const flat = rows();
    const ref = twoPass(flat, 4);
    const norm = new RunningNormalizer({ dim: 4 });
    for (let r = 0; r < 10_000; r++) norm.update(flat.subarray(r * 4, r * 4 + 4));
    expectRelClose(norm.mean, ref.mean, 1e-9);
    expectRelClose(norm.variance, ref.variance, 1e-9);
  });

  it('batched updates (Chan merge) match a two-pass computation and the row-by-row pass', () => {
    const flat = rows();
    const ref = twoPass(flat, 4);
    const batched = new RunningNormalizer({ dim: 4 });
    for (let r = 0; r < 10_000; r += 337) batched.updateBatch(flat.subarray(r * 4), Math.min(337, 10_000 - r));
    expect(batched.count).toBe(10_000);
    expectRelClose(batched.mean, ref.mean, 1e-9);
    expectRelClose(batched.variance, ref.variance, 1e-9);
  });

  it('merging two halves equals one pass over everything', () => {
    const flat = rows(10_000, 7);
    const whole = new RunningNormalizer({ dim: 4 });
    whole.updateBatch(flat, 10_000);
    const a = new RunningNormalizer({ dim: 4 });
    const b = new RunningNormalizer({ dim: 4 });
    a.updateBatch(flat.subarray(0, 3_000 * 4), 3_000);
    for (let r = 3_000; r < 10_000; r++) b.update(flat.subarray(r * 4, r * 4 + 4));
    a.merge(b);
    expect(a.count).toBe(10_000);
    expectRelClose(a.mean, whole.mean, 1e-12);
    expectRelClose(a.variance, whole.variance, 1e-10);
    // Merging an empty normaliser, or into one, changes nothing / copies.
    const before = a.toJSON();
    a.merge(new RunningNormalizer({ dim: 4 }));
    expect(a.toJSON()).toEqual(before);
    const empty = new RunningNormalizer({ dim: 4 });
    empty.merge(a);
    expect(Array.from(empty.mean)).toEqual(Array.from(a.mean));
    expect(() => a.merge(new RunningNormalizer({ dim: 3 }))).toThrow(/dim/);
  });

  it('rejects bad rows naming the entry, with statistics unchanged', () => {
    const norm = new RunningNormalizer({ dim: 3 });
    norm.update([1, 2, 3]);
    const before = norm.toJSON();
    let e: unknown;
    try {
      norm.update([1, NaN, 3]);
    } catch (err) {
      e = err;
    }
    expect(e).toBeInstanceOf(ValidationError);
    expect((e as ValidationError).field).toBe('row[1]');
    expect(() => norm.update([1, 2])).toThrow(/expected length 3/);
    expect(() => norm.updateBatch([1, 2, 3, 4, Infinity, 6], 2)).toThrow(/flat\[4\].*row 1.*Infinity/);
    expect(() => norm.updateBatch([1, 2, 3], 2)).toThrow(/flat/);
    expect(norm.toJSON()).toEqual(before);
  });
});

describe('RunningNormalizer normalize / denormalize', () => {
  it('is the identity before any update', () => {
    const norm = new RunningNormalizer({ dim: 2 });
    expect(Array.from(norm.normalize([3, -4], 1))).toEqual([3, -4]);
    expect(Array.from(norm.std)).toEqual([1, 1]);
  });

  it('standardises, inverts, works in place and into float32', () => {
    const flat = rows(1000, 3);
    const norm = new RunningNormalizer({ dim: 4 });
    norm.updateBatch(flat, 1000);
    const z = norm.normalize(flat, 1000);
    const check = new RunningNormalizer({ dim: 4 });
    check.updateBatch(z, 1000);
    expectRelClose(check.variance, [1, 1, 1, 1], 1e-9);
    for (const m of check.mean) expect(Math.abs(m)).toBeLessThan(1e-9);
    const back = norm.denormalize(z, 1000);
    for (let i = 0; i < flat.length; i++) expect(back[i]).toBeCloseTo(flat[i], 6);
    const inPlace = flat.slice(0, 8);
    expect(norm.normalize(inPlace, 2, inPlace)).toBe(inPlace);
    expect(Array.from(inPlace)).toEqual(Array.from(z.subarray(0, 8)));
    const f32 = norm.normalize(flat, 2, new Float32Array(8));
    expect(f32).toBeInstanceOf(Float32Array);
    expect(f32[1]).toBe(Math.fround(z[1]));
    expect(() => norm.normalize(flat, 2, new Float32Array(7))).toThrow(/out/);
  });

  it('gives a constant dimension std 1, so it is centred and a later change does not blow up', () => {
    const norm = new RunningNormalizer({ dim: 2 });
    for (let i = 0; i < 100; i++) norm.update([i, 5]);
    expect(norm.std[1]).toBe(1);
    expect(norm.std[0]).toBeCloseTo(Math.sqrt((100 * 100 - 1) / 12), 9);
    const out = norm.normalize([49.5, 5.01], 1);
    expect(out[0]).toBe(0);
    expect(out[1]).toBeCloseTo(0.01, 12); // with a 1e-8 floor this would be 1e6
    const custom = new RunningNormalizer({ dim: 1, minStd: 0.5 });
    custom.updateBatch([0, 0.4], 2); // std 0.2 < 0.5
    expect(custom.std[0]).toBe(1);
  });
});

describe('RunningNormalizer JSON', () => {
  it('round-trips exactly and keeps updating identically', () => {
    const flat = rows(500, 9);
    const norm = new RunningNormalizer({ dim: 4, minStd: 1e-5 });
    norm.updateBatch(flat, 250);
    const again = RunningNormalizer.fromJSON(JSON.parse(JSON.stringify(norm)));
    expect(again.toJSON()).toEqual(norm.toJSON());
    expect(again.minStd).toBe(1e-5);
    norm.updateBatch(flat.subarray(1000), 250);
    again.updateBatch(flat.subarray(1000), 250);
    expect(Array.from(again.mean)).toEqual(Array.from(norm.mean));
    expect(Array.from(again.std)).toEqual(Array.from(norm.std));
  });

  it('rejects malformed objects, naming the bad key', () => {
    const good = new RunningNormalizer({ dim: 3 });
    good.updateBatch([1, 2, 3, 4, 5, 6], 2);
    const json = good.toJSON();
    const cases: [unknown, string][] = [
      [null, '(root)'],
      [[1, 2], '(root)'],
      [{ ...json, kind: 'Other' }, 'kind'],
      [{ ...json, version: 2 }, 'version'],
      [{ ...json, dim: 0 }, 'dim'],
      [{ ...json, minStd: 'small' }, 'minStd'],
      [{ ...json, count: -1 }, 'count'],
      [{ ...json, count: 1.5 }, 'count'],
      [{ ...json, mean: [1, 2] }, 'mean'],
      [{ ...json, mean: 'x' }, 'mean'],
      [{ ...json, mean: [1, 2, null] }, 'mean[2]'],
      [{ ...json, m2: [0, -1, 0] }, 'm2[1]'],
      [{ ...json, count: 0 }, 'count'],
    ];
    for (const [bad, field] of cases) {
      let e: unknown;
      try {
        RunningNormalizer.fromJSON(bad);
      } catch (err) {
        e = err;
      }
      expect(e, `expected ${JSON.stringify(bad)} to be rejected`).toBeInstanceOf(ValidationError);
      expect((e as ValidationError).field).toBe(field);
      expect((e as ValidationError).message).toContain('RunningNormalizer.fromJSON');
    }
  });

  it('rejects bad constructor options', () => {
    expect(() => new RunningNormalizer({ dim: 0 })).toThrow(/dim/);
    expect(() => new RunningNormalizer({ dim: 2, minStd: -1 })).toThrow(/minStd/);
  });
});
