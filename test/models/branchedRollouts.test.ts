import { describe, expect, it } from 'vitest';
import type { TaskFunctions } from '../../src/core/env.js';
import { Rng } from '../../src/core/rng.js';
import { branchedRollouts, mopoPenalty } from '../../src/models/branchedRollouts.js';
import type { EnsemblePredictor, EnsembleSpec } from '../../src/models/types.js';

describe('mopoPenalty', () => {
  it('maxStd: the largest member std-vector norm; disagreement: the largest distance to the mean (hand-computed)', () => {
    // Member 0: σ² = (1, 4) → ‖σ‖ = √5; member 1: σ² = (9, 16) → ‖σ‖ = 5.
    expect(mopoPenalty('maxStd', [0, 0, 0, 0], [1, 4, 9, 16], 2, 2)).toBeCloseTo(5, 12);
    // Means (0, 0) and (2, 0): ensemble mean (1, 0), both members at distance 1.
    expect(mopoPenalty('disagreement', [0, 0, 2, 0], undefined, 2, 2)).toBeCloseTo(1, 12);
    // Three members on a line: mean 1, farthest member (at 3) is 2 away.
    expect(mopoPenalty('disagreement', [0, 0, 3], undefined, 3, 1)).toBeCloseTo(2, 12);
    expect(() => mopoPenalty('maxStd', [0], undefined, 1, 1)).toThrow(/variances/);
  });
});

/** A 2-member 1-D model: member k predicts s' = s + a + k, variance (k + 1)² on both outputs. */
function fakeModel(): EnsemblePredictor {
  const spec: EnsembleSpec = { numMembers: 2, obsDim: 1, actDim: 1, hidden: [1], activation: 'relu', probabilistic: true, learnReward: true };
  return {
    spec,
    async predict(obs, act, B, outNext, outReward, outVar) {
      for (let k = 0; k < 2; k++) {
        for (let i = 0; i < B; i++) {
          const r = k * B + i;
          outNext[r] = obs[r] + act[r] + k;
          if (outReward) outReward[r] = 10 * k;
          if (outVar) {
            outVar[r * 2] = (k + 1) ** 2;
            outVar[r * 2 + 1] = (k + 1) ** 2;
          }
        }
      }
    },
    dispose() {},
  };
}

describe('branchedRollouts', () => {
  const task: TaskFunctions = {
    reward: (_o, _a, next, n, out) => {
      for (let i = 0; i < n; i++) out[i] = -Math.abs(next[i]);
    },
    terminated: (_o, _a, next, n, out) => {
      for (let i = 0; i < n; i++) out[i] = next[i] >= 3 ? 1 : 0;
    },
    rewardExact: true,
    terminatedExact: true,
  };

  it('steps the chosen member, subtracts λ·u over all members, and stops rows at termination', async () => {
    // Only member 0 (s' = s + a), no sampling: from s = 0 with a = 1 the row reaches 3 at step 3 and stops.
    const r = await branchedRollouts(fakeModel(), [0, 1.5], (_obs, m) => new Float32Array(m).fill(1), {
      horizon: 5,
      members: [0],
      task,
      sample: false,
      penalty: { kind: 'maxStd', lambda: 0.5 },
      rng: new Rng(1),
    });
    // u = max(‖(1, 1)‖, ‖(2, 2)‖) = 2√2 for every transition.
    const u = 2 * Math.SQRT2;
    expect(Array.from(r.penalty)).toEqual(new Array(r.size).fill(Math.fround(u)));
    // Row A: 0→1→2→3 (terminal); row B: 1.5→2.5→3.5 (terminal). Steps are interleaved in step order.
    expect(Array.from(r.obs)).toEqual([0, 1.5, 1, 2.5, 2]);
    expect(Array.from(r.nextObs)).toEqual([1, 2.5, 2, 3.5, 3]);
    expect(Array.from(r.terminated)).toEqual([0, 0, 0, 1, 1]);
    for (let i = 0; i < r.size; i++) expect(r.reward[i]).toBeCloseTo(-Math.abs(r.nextObs[i]) - 0.5 * u, 5);
  });

  it('uses the learned reward without a task, draws members from the given set, and is seeded', async () => {
    const run = (seed: number): ReturnType<typeof branchedRollouts> =>
      branchedRollouts(fakeModel(), new Float32Array(50), (_obs, m) => new Float32Array(m), { horizon: 2, sample: false, rng: new Rng(seed) });
    const a = await run(3);
    const b = await run(3);
    expect(Array.from(a.nextObs)).toEqual(Array.from(b.nextObs));
    // Member 1 adds 1 and rewards 10; member 0 neither: both must occur among 50 rows.
    const fromMember1 = Array.from(a.reward.subarray(0, 50)).filter((x) => x === 10).length;
    expect(fromMember1).toBeGreaterThan(5);
    expect(fromMember1).toBeLessThan(45);
    for (let i = 0; i < 50; i++) expect(a.nextObs[i]).toBe(a.reward[i] === 10 ? 1 : 0);
    expect(a.size).toBe(100);
  });
});
