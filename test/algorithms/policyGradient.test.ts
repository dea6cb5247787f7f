import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { collectRollouts, concatBatches, discountedCumsum, EnvRolloutSource, gae, standardize, unflatten, readFlat } from '../../src/algorithms/policyGradient.js';
import { initBackend } from '../../src/core/backend.js';
import { NOMINAL_PHYSICS, type Env, type StepResult } from '../../src/core/env.js';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { Box } from '../../src/core/spaces.js';
import { GaussianMlpPolicy, makePolicySpec } from '../../src/policies/gaussianMlpPolicy.js';
import { LinearFeatureBaseline } from '../../src/policies/linearFeatureBaseline.js';
import { MlpValueFunction } from '../../src/policies/mlpValueFunction.js';

beforeAll(async () => {
  await initBackend({ log: () => {} });
});

/**
 * A scripted task: the observation is the step count t of the episode, every step pays 1 + t/10,
 * and the episode ends after `length` steps — by termination, or by the time limit (truncation).
 */
class CounterEnv implements Env {
  readonly id = 'Counter';
  readonly observationSpace = new Box([0], [100]);
  readonly actionSpace = new Box([-1], [1]);
  readonly dt = 1;
  readonly obsNames = ['t'];
  readonly physics = NOMINAL_PHYSICS;
  readonly maxEpisodeSteps: number;
  #t = 0;
  constructor(
    readonly length: number,
    readonly ending: 'terminal' | 'timeLimit',
  ) {
    this.maxEpisodeSteps = ending === 'timeLimit' ? length : 1000;
  }
  reset(): { obs: Float64Array; info: Record<string, never> } {
    this.#t = 0;
    return { obs: Float64Array.of(0), info: {} };
  }
  step(): StepResult {
    const reward = 1 + this.#t / 10;
    this.#t++;
    const end = this.#t === this.length;
    return { obs: Float64Array.of(this.#t), reward, terminated: end && this.ending === 'terminal', truncated: end && this.ending === 'timeLimit', info: {} };
  }
  close(): void {}
}

describe('gae', () => {
  it('matches a 3-step trajectory computed by hand: a time-limit cut, then a terminal', () => {
    // Step 1 ends an episode by the time limit (bootstrap with V(s₂') = 4); step 2 is terminal.
    const gamma = 0.9;
    const lambda = 0.8;
    const { advantages, returns } = gae([1, 2, 3], [0.5, 1, 1.5], [1, 4, 9], [0, 0, 1], [0, 1, 0], gamma, lambda);
    // δ₂ = 3 − 1.5 = 1.5 (no bootstrap);  Â₂ = 1.5
    // δ₁ = 2 + 0.9·4 − 1 = 4.6;           Â₁ = 4.6 (its episode ends: nothing carried from step 2)
    // δ₀ = 1 + 0.9·1 − 0.5 = 1.4;         Â₀ = 1.4 + 0.9·0.8·4.6 = 4.712
    expect(Array.from(advantages)).toEqual([expect.closeTo(4.712, 12), expect.closeTo(4.6, 12), expect.closeTo(1.5, 12)]);
    expect(Array.from(returns)).toEqual([expect.closeTo(5.212, 12), expect.closeTo(5.6, 12), expect.closeTo(3, 12)]);
  });

  it('with λ = 1 gives discounted Monte-Carlo returns minus V, and with λ = 0 the TD errors', () => {
    const r = [1, -2, 0.5];
    const v = [0.3, -0.1, 0.7];
    const vNext = [-0.1, 0.7, 123];
    const mc = discountedCumsum(r, 0.95);
    const one = gae(r, v, vNext, [0, 0, 1], [0, 0, 0], 0.95, 1).advantages;
    const zero = gae(r, v, vNext, [0, 0, 1], [0, 0, 0], 0.95, 0).advantages;
    for (let t = 0; t < 3; t++) expect(one[t]).toBeCloseTo(mc[t] - v[t], 12);
    expect(Array.from(zero)).toEqual([1 + 0.95 * -0.1 - 0.3, -2 + 0.95 * 0.7 + 0.1, 0.5 - 0.7].map((x) => expect.closeTo(x, 12)));
    expect(() => gae([1, 2], [0], [0, 0], [0, 0], [0, 0], 0.9, 0.9)).toThrow(ValidationError);
  });

  it('discountedCumsum restarts after episode ends; standardize centres and scales', () => {
    expect(Array.from(discountedCumsum([1, 1, 1, 1], 0.5, [0, 1, 0, 0]))).toEqual([1.5, 1, 1.5, 1]);
    const s = standardize([1, 2, 3, 4]);
    expect(s.reduce((a, b) => a + b, 0)).toBeCloseTo(0, 12);
    expect(Math.sqrt(s.reduce((a, b) => a + b * b, 0) / 4)).toBeCloseTo(1, 6);
  });
});

describe('collectRollouts', () => {
  const spec = makePolicySpec({ obsDim: 1, actionLow: [-1], actionHigh: [1], hidden: [4] });

  it('lays out segments per copy, keeps the true next state at episode ends, and cuts the batch with a truncation', async () => {
    const policy = new GaussianMlpPolicy(spec, { rng: new Rng(0) });
    const source = new EnvRolloutSource([new CounterEnv(3, 'terminal'), new CounterEnv(3, 'timeLimit')], { seed: 0 });
    const b = await collectRollouts(source, policy, new Rng(1), { steps: 8 });
    expect(b.size).toBe(8);
    // Copy 0: t = 0, 1, 2 (terminal), then 0 (cut); copy 1 the same with a time limit.
    expect(Array.from(b.obs)).toEqual([0, 1, 2, 0, 0, 1, 2, 0]);
    expect(Array.from(b.nextObs)).toEqual([1, 2, 3, 1, 1, 2, 3, 1]);
    expect(Array.from(b.timesteps)).toEqual([0, 1, 2, 0, 0, 1, 2, 0]);
    expect(Array.from(b.terminated)).toEqual([0, 0, 1, 0, 0, 0, 0, 0]);
    expect(Array.from(b.truncated)).toEqual([0, 0, 0, 1, 0, 0, 1, 1]);
    expect(Array.from(b.rewards)).toEqual([1, 1.1, 1.2, 1, 1, 1.1, 1.2, 1].map((x) => expect.closeTo(x, 12)));
    expect(b.episodeReturns.map((x) => +x.toFixed(9))).toEqual([3.3, 3.3]);
    expect(b.episodeLengths).toEqual([3, 3]);
    // Actions are the clipped samples; the recorded mean/log-std are the policy's.
    for (let k = 0; k < b.size; k++) expect(b.actions[k]).toBeCloseTo(Math.max(-1, Math.min(1, b.u[k])), 6);
    expect(Array.from(b.oldLogStd)).toEqual(new Array(8).fill(0));

    // The next batch continues the open episodes: their returns count the steps of both batches.
    const b2 = await collectRollouts(source, policy, new Rng(2), { steps: 4 });
    expect(Array.from(b2.timesteps)).toEqual([1, 2, 1, 2]);
    expect(b2.episodeLengths).toEqual([3, 3]);
    expect(b2.episodeReturns.map((x) => +x.toFixed(9))).toEqual([3.3, 3.3]);
    policy.dispose();
  });

  it('in episodes mode keeps whole episodes only, and concatenates batches', async () => {
    const policy = new GaussianMlpPolicy(spec, { rng: new Rng(0) });
    const source = new EnvRolloutSource([new CounterEnv(2, 'terminal'), new CounterEnv(3, 'terminal')], { seed: 0 });
    const b = await collectRollouts(source, policy, new Rng(1), { episodes: 2 });
    // Copy 0 ends at step 2 and begins another episode, dropped when copy 1 ends at step 3.
    expect(Array.from(b.obs)).toEqual([0, 1, 0, 1, 2]);
    expect(Array.from(b.terminated)).toEqual([0, 1, 0, 0, 1]);
    expect(Array.from(b.truncated)).toEqual([0, 0, 0, 0, 0]);
    expect(b.episodeLengths).toEqual([2, 3]);
    const c = concatBatches([b, b]);
    expect(c.size).toBe(10);
    expect(Array.from(c.obs.subarray(5))).toEqual([0, 1, 0, 1, 2]);
    expect(c.episodeLengths).toEqual([2, 3, 2, 3]);
    await expect(collectRollouts(source, policy, new Rng(1), { steps: 0 })).rejects.toThrow(ValidationError);
    policy.dispose();
  });

  it('is deterministic for a seed', async () => {
    const run = async (seed: number): Promise<Float32Array> => {
      const policy = new GaussianMlpPolicy(spec, { rng: new Rng(0) });
      const source = new EnvRolloutSource([new CounterEnv(5, 'timeLimit')], { seed: 0 });
      const b = await collectRollouts(source, policy, new Rng(seed), { steps: 12 });
      policy.dispose();
      return b.u;
    };
    expect(Array.from(await run(3))).toEqual(Array.from(await run(3)));
    expect(Array.from(await run(3))).not.toEqual(Array.from(await run(4)));
  });
});

describe('flat parameters', () => {
  it('unflatten and readFlat round-trip', () => {
    const shapes = [[2, 3], [3], [1]];
    const flat = Float32Array.from({ length: 10 }, (_, i) => i - 4.5);
    const ts = unflatten(flat, shapes);
    expect(ts.map((t) => t.shape)).toEqual(shapes);
    expect(Array.from(readFlat(ts))).toEqual(Array.from(flat));
    const fromTensor = tf.tidy(() => unflatten(tf.tensor1d(flat), shapes));
    expect(Array.from(readFlat(fromTensor))).toEqual(Array.from(flat));
    expect(() => unflatten(new Float32Array(9), shapes)).toThrow(/expected 10 values/);
    tf.dispose([...ts, ...fromTensor]);
  });
});

describe('baselines', () => {
  it('LinearFeatureBaseline recovers a function in its feature span, and predicts 0 before a fit', () => {
    const rng = new Rng(0);
    const n = 200;
    const obs = Float64Array.from({ length: n * 2 }, () => rng.normal(0, 3));
    const t = Float64Array.from({ length: n }, () => rng.int(300));
    // y = 2 o₀ − o₁ + 0.5 o₀² + 3 (t/100) − (t/100)³ + 7, with o₀ clipped at ±10 (the features clip)
    const y = Float64Array.from({ length: n }, (_, r) => {
      const o0 = Math.max(-10, Math.min(10, obs[2 * r]));
      const a = t[r] / 100;
      return 2 * o0 - obs[2 * r + 1] + 0.5 * o0 * o0 + 3 * a - a ** 3 + 7;
    });
    const baseline = new LinearFeatureBaseline({ obsDim: 2 });
    expect(Array.from(baseline.predict(obs, t, n))).toEqual(new Array(n).fill(0));
    const mseBefore = baseline.fit(obs, t, y, n);
    expect(mseBefore).toBeGreaterThan(1);
    const pred = baseline.predict(obs, t, n);
    for (let r = 0; r < n; r++) expect(pred[r]).toBeCloseTo(y[r], 4);
    // Degenerate data (a constant observation duplicates the bias feature): ridge keeps it finite.
    const flat = new LinearFeatureBaseline({ obsDim: 2 });
    flat.fit(new Float64Array(n * 2).fill(1), new Float64Array(n), new Float64Array(n).fill(5), n);
    expect(flat.predict(new Float64Array(2).fill(1), [0], 1)[0]).toBeCloseTo(5, 3);
  });

  it('MlpValueFunction fits a smooth target and leaks no tensors', () => {
    const rng = new Rng(1);
    const n = 512;
    const obs = Float64Array.from({ length: n }, () => rng.uniform(-2, 2));
    const y = Float64Array.from(obs, (x) => Math.sin(2 * x) + x);
    const vf = new MlpValueFunction({ obsDim: 1, rng, config: { epochs: 30, learningRate: 3e-3 } });
    const first = vf.fit(obs, new Float64Array(n), y, n);
    const before = tf.memory().numTensors;
    vf.fit(obs, new Float64Array(n), y, n);
    expect(tf.memory().numTensors).toBe(before);
    const after = vf.fit(obs, new Float64Array(n), y, n);
    // A constant fit leaves the target's variance (≈ 1.9); the MLP is far below it.
    expect(first).toBeGreaterThan(1);
    expect(after).toBeLessThan(0.02);
    vf.dispose();
  });
});
