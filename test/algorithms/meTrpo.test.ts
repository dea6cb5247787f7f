import { describe, expect, it } from 'vitest';
import { makeMeTrpoConfig, meTrpoValidation, type ValidationState } from '../../src/algorithms/meTrpo.js';
import { ValidationError } from '../../src/core/errors.js';

describe('ME-TRPO stopping rule', () => {
  it('passes at ≥ 70 % of members improved, stops after `patience` failures in a row (scripted returns)', () => {
    let s: ValidationState = { reference: null, strikes: 0 };
    const run = (returns: number[]): ReturnType<typeof meTrpoValidation> => {
      const d = meTrpoValidation(s, returns, 0.7, 2);
      s = d.next;
      return d;
    };
    // First validation: the reference.
    expect(run([0, 0, 0, 0, 0])).toMatchObject({ passed: true, stop: false });
    // 4 of 5 improved (0.8 ≥ 0.7): pass, new reference.
    expect(run([1, 1, 1, 1, -1])).toMatchObject({ improvedFraction: 0.8, passed: true, stop: false });
    expect(s.reference).toEqual([1, 1, 1, 1, -1]);
    // 3 of 5 (0.6): a strike; the reference stays.
    expect(run([2, 2, 2, 0, -2])).toMatchObject({ improvedFraction: 0.6, passed: false, stop: false });
    expect(s).toEqual({ reference: [1, 1, 1, 1, -1], strikes: 1 });
    // A pass clears the strikes.
    expect(run([2, 2, 2, 2, 0])).toMatchObject({ improvedFraction: 1, passed: true, stop: false });
    expect(s.strikes).toBe(0);
    // Equal returns count as not worse (the original marks only strictly worse members).
    expect(run([2, 2, 2, 2, 0])).toMatchObject({ improvedFraction: 1, passed: true, stop: false });
    // Two failures in a row stop.
    expect(run([1, 1, 1, 2, 0])).toMatchObject({ improvedFraction: 0.4, passed: false, stop: false });
    expect(run([3, 1, 1, 1, -1])).toMatchObject({ improvedFraction: 0.2, passed: false, stop: true });
  });

  it('rejects a member count that changed', () => {
    const d = meTrpoValidation({ reference: null, strikes: 0 }, [1, 2, 3], 0.7, 3);
    expect(() => meTrpoValidation(d.next, [1, 2], 0.7, 3)).toThrow(/expected 3 member returns, got 2/);
  });
});

describe('makeMeTrpoConfig', () => {
  it('applies the task overrides and validates', () => {
    const c = makeMeTrpoConfig({ env: 'Pendulum-v1' });
    expect(c.kind).toBe('me-trpo');
    expect(c.ensemble.probabilistic).toBe(false);
    expect(c.ensemble.numMembers).toBe(5);
    expect(c.improvementRatio).toBe(0.7);
    expect(() => makeMeTrpoConfig({ improvementRatio: 1.5 })).toThrow(ValidationError);
    expect(() => makeMeTrpoConfig({ ensemble: { probabilistic: true } })).toThrow(/deterministic members/);
    expect(() => makeMeTrpoConfig({ bogus: 1 } as never)).toThrow(/bogus/);
  });
});
