import { describe, expect, it } from 'vitest';
import type { TaskFunctions } from '../../src/core/env.js';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { ModelRolloutSource, stateBoundsOf } from '../../src/algorithms/modelRollouts.js';
import { ModelEnv } from '../../src/models/modelEnv.js';
import type { EnsemblePredictor, EnsembleSpec } from '../../src/models/types.js';

/** One member on 1-D states that doubles the state each step (a model that runs away). */
class DoublingPredictor implements EnsemblePredictor {
  readonly spec: EnsembleSpec = { numMembers: 1, obsDim: 1, actDim: 1, hidden: [], activation: 'silu', probabilistic: false, learnReward: false };
  predict(obs: Float32Array, _act: Float32Array, _B: number, outNext: Float32Array): Promise<void> {
    for (let i = 0; i < obs.length; i++) outNext[i] = 2 * obs[i];
    return Promise.resolve();
  }
  dispose(): void {}
}

/** Reward = next state; never terminates. */
const task: TaskFunctions = {
  reward(_o, _a, next, n, out) {
    for (let i = 0; i < n; i++) out[i] = next[i];
  },
  terminated(_o, _a, _n, n, out) {
    out.fill(0, 0, n);
  },
  rewardExact: true,
  terminatedExact: true,
};

describe('stateBoundsOf', () => {
  it('widens each dimension by margin × its data range', () => {
    const { low, high } = stateBoundsOf([0, 10, 2, -10, 1, 0], 2, 0.5);
    expect(Array.from(low)).toEqual([-1, -20]);
    expect(Array.from(high)).toEqual([3, 20]);
  });
  it('rejects a negative margin and ragged rows', () => {
    expect(() => stateBoundsOf([1, 2], 2, -1)).toThrow(ValidationError);
    expect(() => stateBoundsOf([1, 2, 3], 2, 0)).toThrow(/obsDim 2/);
  });
});

describe('ModelRolloutSource state bounds', () => {
  async function run(stateBounds?: { low: number[]; high: number[] }): Promise<{ diverged: number; rewards: number[] }> {
    const env = new ModelEnv(new DoublingPredictor(), { task, rng: new Rng(1) });
    const src = new ModelRolloutSource(env, { numEnvs: 1, horizon: 50, startStates: [1], rng: new Rng(2), ...(stateBounds ? { stateBounds } : {}) });
    const rewards: number[] = [];
    for (let t = 0; t < 6; t++) {
      const r = await src.step(new Float64Array([0]));
      rewards.push(r.rewards[0]);
    }
    return { diverged: src.diverged, rewards };
  }

  it('ends a rollout whose state leaves the bounds, with reward 0, and restarts it', async () => {
    // 1 → 2 → 4 → 8 → 16: with high 10 the 4th step (16) leaves the bounds.
    const bounded = await run({ low: [-10], high: [10] });
    expect(bounded.rewards).toEqual([2, 4, 8, 0, 2, 4]);
    expect(bounded.diverged).toBe(1);
    // Without bounds the same rollout runs on (only |x| ≥ 1e6 would stop it).
    const free = await run();
    expect(free.rewards).toEqual([2, 4, 8, 16, 32, 64]);
    expect(free.diverged).toBe(0);
  });

  it('rejects bounds of the wrong size or with low > high', () => {
    const env = new ModelEnv(new DoublingPredictor(), { task, rng: new Rng(1) });
    expect(() => new ModelRolloutSource(env, { numEnvs: 1, horizon: 5, startStates: [1], rng: new Rng(2), stateBounds: { low: [0, 0], high: [1, 1] } })).toThrow(/obsDim 1/);
    expect(() => new ModelRolloutSource(env, { numEnvs: 1, horizon: 5, startStates: [1], rng: new Rng(2), stateBounds: { low: [2], high: [1] } })).toThrow(/low ≤ high/);
  });
});
