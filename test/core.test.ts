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

  it('normal() follows N(0, 1) bin by bin, tails included (the ziggurat\'s layers, wedges and tail)', () => {
    const n = 4_000_000;
    const rng = new Rng(10);
    const chunk = new Float64Array(1_000_000);
    // 32 bins of width 0.25 on [−4, 4] and the two tails beyond, against Φ.
    const edges = [-Infinity, ...Array.from({ length: 33 }, (_, i) => -4 + 0.25 * i), Infinity];
    const counts = new Array<number>(edges.length - 1).fill(0);
    let beyondR = 0;
    let beyond4 = 0;
    for (let done = 0; done < n; done += chunk.length) {
      for (const x of rng.fillNormal(chunk)) {
        counts[Math.min(edges.length - 2, Math.max(0, Math.floor((x + 4) / 0.25) + 1))]++;
        if (Math.abs(x) > 3.442619855899) beyondR++;
        if (Math.abs(x) > 4) beyond4++;
      }
    }
    let chiSquare = 0;
    for (let b = 0; b < counts.length; b++) {
      const expected = n * (standardNormalCdf(edges[b + 1]) - standardNormalCdf(edges[b]));
      chiSquare += (counts[b] - expected) ** 2 / expected;
    }
    // 33 degrees of freedom: mean 33, sd 8.1. Accepting every wedge candidate gives ~900.
    expect(chiSquare).toBeLessThan(33 + 6 * 8.1);
    // Beyond R = 3.4426 the tail sampler takes over: P = 5.76e-4, 2304 ± 48 expected; of those,
    // a fraction P(|z| > 4 | |z| > R) = 0.1100 ± 0.0065 lies beyond 4 (0.147 if the tail's
    // acceptance test were skipped).
    expect(Math.abs(beyondR - 2304)).toBeLessThan(5 * 48);
    expect(Math.abs(beyond4 / beyondR - 0.11)).toBeLessThan(4 * 0.0065);
  });

  it('fillNormal gives the values of repeated normal() calls and leaves the same state', () => {
    for (const out of [new Float64Array(5000), new Float32Array(5000)]) {
      const a = new Rng(11);
      const b = new Rng(11);
      a.fillNormal(out, 0.5, 2);
      const one = Array.from(out, () => b.normal(0.5, 2));
      expect(Array.from(out)).toEqual(out instanceof Float32Array ? one.map(Math.fround) : one);
      expect(a.getState()).toEqual(b.getState());
    }
  });

  it('shuffles a Uint32Array (fast path) exactly as any other array', () => {
    for (const n of [0, 1, 2, 9, 1000]) {
      const a = new Rng(n);
      const b = new Rng(n);
      const fast = a.shuffle(Uint32Array.from({ length: n }, (_, i) => i));
      const generic = b.shuffle(Array.from({ length: n }, (_, i) => i));
      expect(Array.from(fast)).toEqual(generic);
      expect(a.getState()).toEqual(b.getState());
    }
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

  it('round-trips its state', () => {
    const rng = new Rng(4);
    rng.normal();
    const state = rng.getState();
    const next = [rng.normal(), rng.uniform(), rng.normal()];
    const copy = new Rng(0);
    copy.setState(state);
    expect([copy.normal(), copy.uniform(), copy.normal()]).toEqual(next);
    // A state saved with a pending Box–Muller variate (before the ziggurat) restores its words.
    copy.setState({ ...state, spare: 0.25 });
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

/** Φ(x) through erfc's Chebyshev fit (Numerical Recipes' `erfcc`, relative error < 1.2e-7). */
function standardNormalCdf(x: number): number {
  if (x === Infinity) return 1;
  if (x === -Infinity) return 0;
  const a = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * a);
  const erfc =
    t *
    Math.exp(-a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? 1 - erfc / 2 : erfc / 2;
}
