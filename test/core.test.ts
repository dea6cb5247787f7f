import { describe, expect, it } from 'vitest';
import { ValidationError, checkFiniteVector } from '../src/core/errors.js';
import { Rng } from '../src/core/rng.js';
import { Box } from '../src/core/spaces.js';

describe('Rng', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const a = new Rng(123);
    const b = new Rng(123);
    const c = new Rng(124);
    const xa = Array.from({ length: 50 }, () => a.nextUint32());
    expect(Array.from({ length: 50 }, () => b.nextUint32())).toEqual(xa);
    expect(Array.from({ length: 50 }, () => c.nextUint32())).not.toEqual(xa);
  });

  it('distinguishes seeds beyond 32 bits', () => {
    expect(new Rng(2 ** 32).nextUint32()).not.toBe(new Rng(0).nextUint32());
  });

  it('has uniform and normal moments within sampling error', () => {
    const rng = new Rng(1);
    const n = 200_000;
    let su = 0;
    let sn = 0;
    let sn2 = 0;
    let outside = 0;
    for (let i = 0; i < n; i++) {
      const u = rng.random();
      if (!(u >= 0 && u < 1)) outside++;
      su += u;
      const z = rng.normal();
      sn += z;
      sn2 += z * z;
    }
    expect(outside).toBe(0);
    // Standard errors: uniform mean 0.29/√n ≈ 6.5e-4, normal mean 1/√n ≈ 2.2e-3; bounds are 5σ.
    expect(Math.abs(su / n - 0.5)).toBeLessThan(3.3e-3);
    expect(Math.abs(sn / n)).toBeLessThan(0.011);
    expect(Math.abs(sn2 / n - 1)).toBeLessThan(0.016);
  });

  it('int(n) is unbiased over a small range and rejects bad n', () => {
    const rng = new Rng(2);
    const counts = new Array<number>(6).fill(0);
    for (let i = 0; i < 60_000; i++) counts[rng.int(6)]++;
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(500);
    expect(() => rng.int(0)).toThrow(RangeError);
    expect(() => rng.int(1.5)).toThrow(/expected an integer/);
  });

  it('permutation contains every index once', () => {
    const p = new Rng(3).permutation(100);
    expect(Array.from(p).sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('round-trips its state, including the spare normal', () => {
    const rng = new Rng(4);
    rng.normal();
    const state = rng.getState();
    const next = [rng.normal(), rng.uniform(), rng.normal()];
    const copy = new Rng(0);
    copy.setState(state);
    expect([copy.normal(), copy.uniform(), copy.normal()]).toEqual(next);
    expect(() => copy.setState({ s: [1, 2, 3, -1], spare: null })).toThrow(/4 unsigned 32-bit integers/);
  });

  it('rejects a non-finite seed', () => {
    expect(() => new Rng(Number.NaN)).toThrow(/finite number, got NaN/);
  });
});

describe('Box', () => {
  it('samples inside its bounds and clips', () => {
    const box = new Box([-1, 0], [1, 5]);
    const rng = new Rng(0);
    for (let i = 0; i < 1000; i++) expect(box.contains(box.sample(rng))).toBe(true);
    expect(Array.from(box.clip([-3, 7]))).toEqual([-1, 5]);
    expect(() => new Box([1], [0])).toThrow(/expected low ≤ high/);
    expect(() => new Box([0, 0], [1])).toThrow(/length/);
  });
});

describe('checkFiniteVector', () => {
  it('names the field, index and bad value', () => {
    expect(() => checkFiniteVector([1, Number.NaN], 2, 'here', 'obs')).toThrow(new ValidationError('here', 'obs[1]', 'expected a finite number, got NaN'));
    expect(() => checkFiniteVector([1], 2, 'here', 'obs')).toThrow(/here: obs: expected length 2, got length 1/);
    expect(() => checkFiniteVector(undefined, 2, 'here', 'obs')).toThrow(/got undefined/);
  });
});
