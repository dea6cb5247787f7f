import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/core/backend.js';
import { Rng } from '../../src/core/rng.js';
import { Box } from '../../src/core/spaces.js';
import { ValidationError } from '../../src/core/errors.js';
import { gaussianEntropy, gaussianKl, gaussianLogProb, tanhLogDetJacobian } from '../../src/policies/diagGaussian.js';
import { GaussianMlpPolicy, makePolicySpec, referencePolicyForward } from '../../src/policies/gaussianMlpPolicy.js';

beforeAll(async () => {
  await initBackend({ log: () => {} });
});

describe('diagGaussian', () => {
  it('log-probability, KL and entropy match hand computations', () => {
    const [lp, kl, ent, jac] = tf.tidy(() => {
      const x = tf.tensor2d([[1, -1]]);
      const mean = tf.tensor2d([[0, 0]]);
      const logStd = tf.tensor1d([0, Math.log(2)]);
      return [
        gaussianLogProb(x, mean, logStd),
        gaussianKl(mean, tf.tensor1d([0, 0]), tf.tensor2d([[1, 0]]), tf.tensor1d([Math.log(2), 0])),
        gaussianEntropy(logStd),
        tanhLogDetJacobian(tf.tensor2d([[0.3, -2]])),
      ];
    });
    // N(1; 0, 1) and N(−1; 0, 4): −½·1 − ½log2π  +  −½·¼ − log 2 − ½log2π
    expect(lp.dataSync()[0]).toBeCloseTo(-0.5 - 0.125 - Math.log(2) - Math.log(2 * Math.PI), 5);
    // dim 0: log2 − 0 + (1 + 1)/(2·4) − ½ ; dim 1: 0
    expect(kl.dataSync()[0]).toBeCloseTo(Math.log(2) + 0.25 - 0.5, 5);
    expect(ent.dataSync()[0]).toBeCloseTo(Math.log(2) + (Math.log(2 * Math.PI) + 1), 5);
    expect(jac.dataSync()[0]).toBeCloseTo(Math.log(1 - Math.tanh(0.3) ** 2) + Math.log(1 - Math.tanh(-2) ** 2), 5);
    tf.dispose([lp, kl, ent, jac]);
  });
});

describe('GaussianMlpPolicy', () => {
  const space = new Box([-2, 0], [2, 1]);

  it('matches the float64 reference forward, in clip and tanh/state modes, and stays in bounds', () => {
    for (const opts of [{}, { squash: 'tanh' as const, stdMode: 'state' as const, activation: 'relu' as const, hidden: [16] }]) {
      const spec = makePolicySpec({ obsDim: 3, actionSpace: space, ...opts });
      const policy = new GaussianMlpPolicy(spec, { rng: new Rng(1) });
      // Scale the output layer up so actions saturate at the bounds for some inputs.
      const w = policy.getWeights();
      const last = w.layers[w.layers.length - 1];
      last.W = last.W.map((v) => v * 300);
      policy.setWeights(w);
      policy.setObsNormalization([1, 0, -1], [2, 0.5, 1]);
      const rng = new Rng(2);
      const n = 200;
      const obs = Float64Array.from({ length: n * 3 }, () => rng.normal(0, 30));
      const ref = referencePolicyForward(spec, policy.getWeights(), obs, n);
      const acts = policy.actBatch(obs, n);
      for (let k = 0; k < acts.length; k++) {
        expect(Math.abs(acts[k] - ref.action[k])).toBeLessThan(1e-5);
        const j = k % 2;
        expect(acts[k]).toBeGreaterThanOrEqual(space.low[j]);
        expect(acts[k]).toBeLessThanOrEqual(space.high[j]);
      }
      // Inputs far outside the data drive the clip policy onto its bounds (the case exports must keep).
      if (spec.squash === 'clip') expect(ref.action.some((a, k) => a === space.high[k % 2])).toBe(true);
      policy.dispose();
    }
  });

  it('round-trips weights and flat parameters, and rejects wrong shapes', () => {
    const spec = makePolicySpec({ obsDim: 3, actionSpace: space });
    const a = new GaussianMlpPolicy(spec, { rng: new Rng(1) });
    const b = new GaussianMlpPolicy(spec, { rng: new Rng(9) });
    b.setFlatParams(a.getFlatParams());
    expect(Array.from(b.getFlatParams())).toEqual(Array.from(a.getFlatParams()));
    expect(a.numParams).toBe(3 * 32 + 32 + 32 * 32 + 32 + 32 * 2 + 2 + 2);
    expect(() => b.setFlatParams(new Float32Array(3))).toThrow(ValidationError);
    expect(() => a.act(new Float64Array(2))).toThrow(/expected 1 × 3 = 3 values, got 2/);
    expect(() => makePolicySpec({ obsDim: 3, actionLow: [0], actionHigh: [Infinity] })).toThrow(/finite bounds/);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 50; i++) a.act(new Float64Array([0.1, 0.2, 0.3]));
    a.sample(new Float64Array(30), 10, new Rng(3));
    expect(tf.memory().numTensors).toBe(before);
    a.dispose();
    b.dispose();
  });

  it('log-probabilities of samples agree with the Gaussian density', () => {
    const spec = makePolicySpec({ obsDim: 3, actionSpace: space, initLogStd: -0.5 });
    const policy = new GaussianMlpPolicy(spec, { rng: new Rng(1) });
    const obs = new Float64Array([0.5, -0.2, 1.0]);
    const { u, mean, logStd } = policy.sample(obs, 1, new Rng(4));
    const lp = tf.tidy(() => policy.logProb(tf.tensor2d(Float32Array.from(obs), [1, 3]), tf.tensor2d(u, [1, 2])));
    let want = 0;
    for (let j = 0; j < 2; j++) want += -0.5 * ((u[j] - mean[j]) / Math.exp(logStd[j])) ** 2 - logStd[j] - 0.5 * Math.log(2 * Math.PI);
    expect(lp.dataSync()[0]).toBeCloseTo(want, 4);
    lp.dispose();
    policy.dispose();
  });

  it('forwardFast agrees with the tfjs forward and follows every parameter change', () => {
    const spec = makePolicySpec({ obsDim: 3, actionSpace: space });
    const policy = new GaussianMlpPolicy(spec, { rng: new Rng(1) });
    const obs = Float64Array.from({ length: 30 }, (_, i) => Math.sin(i) * 3);
    const check = (): void => {
      const fast = policy.forwardFast(obs, 10).mean;
      const slow = policy.meanBatch(obs, 10);
      for (let k = 0; k < fast.length; k++) expect(Math.abs(fast[k] - slow[k])).toBeLessThan(1e-5);
    };
    check();
    policy.setFlatParams(policy.getFlatParams().map((x) => x * 1.5 + 0.01));
    check();
    // An optimizer-style in-place assign is seen too.
    tf.tidy(() => policy.variables[0].assign(tf.mul(policy.variables[0], -2)));
    check();
    policy.setObsNormalization([1, 2, 3], [2, 2, 2]);
    check();
    policy.dispose();
  });
});
