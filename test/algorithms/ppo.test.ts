import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { makePpoConfig, ppoLoss, trainPpo, PPO_DEFAULTS, type PpoMinibatch } from '../../src/algorithms/ppo.js';
import { policyLogProb } from '../../src/algorithms/policyGradient.js';
import { initBackend } from '../../src/core/backend.js';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { makeEnv } from '../../src/envs/registry.js';
import { GaussianMlpPolicy, makePolicySpec } from '../../src/policies/gaussianMlpPolicy.js';

beforeAll(async () => {
  await initBackend({ log: () => {} });
});

describe('ppoLoss', () => {
  const spec = makePolicySpec({ obsDim: 2, actionLow: [-1], actionHigh: [1], hidden: [8] });
  const cfg = { clipRange: 0.2, vfCoef: 0.5, entCoef: 0, normalizeAdvantages: false };

  /** A minibatch whose old log-probabilities are the policy's own, shifted by `logRatio` (r = e^{logRatio}). */
  function minibatch(policy: GaussianMlpPolicy, adv: number[], logRatio: number): PpoMinibatch {
    return tf.tidy(() => {
      const n = adv.length;
      const rng = new Rng(1);
      const obsNorm = tf.tensor2d(Float32Array.from({ length: n * 2 }, () => rng.normal()), [n, 2]);
      const u = tf.tensor2d(Float32Array.from({ length: n }, () => rng.normal()), [n, 1]);
      const oldLogProb = tf.sub(policyLogProb(spec, policy.variables, obsNorm, u), logRatio) as tf.Tensor1D;
      return { obsNorm, u, oldLogProb, advantages: tf.tensor1d(adv), returns: tf.zeros([n]) as tf.Tensor1D };
    });
  }

  it('at the sampling policy is −mean(Â) with zero KL and no clipping', () => {
    const policy = new GaussianMlpPolicy(spec, { rng: new Rng(0) });
    const mb = minibatch(policy, [1, -2, 0.5, 3], 0);
    const [pl, kl, cf] = tf.tidy(() => {
      const t = ppoLoss(spec, policy.variables, (o) => tf.zeros([o.shape[0]]) as tf.Tensor1D, mb, cfg);
      return [t.policyLoss, t.approxKl, t.clipFraction];
    });
    expect(pl.dataSync()[0]).toBeCloseTo(-(1 - 2 + 0.5 + 3) / 4, 5);
    expect(Math.abs(kl.dataSync()[0])).toBeLessThan(1e-6);
    expect(cf.dataSync()[0]).toBe(0);
    tf.dispose([pl, kl, cf, ...Object.values(mb)]);
    policy.dispose();
  });

  it('clips: with r > 1 + ε and Â > 0 the policy gradient vanishes; with Â < 0 it does not', () => {
    const policy = new GaussianMlpPolicy(spec, { rng: new Rng(0) });
    const gradNorm = (adv: number[]): number => {
      const mb = minibatch(policy, adv, Math.log(1.5));
      const g = tf.tidy(() => {
        const grads = tf.grads((...p: tf.Tensor[]) => ppoLoss(spec, p, (o) => tf.zeros([o.shape[0]]) as tf.Tensor1D, mb, cfg).policyLoss)([...policy.variables]);
        return tf.addN(grads.map((x) => tf.sum(tf.square(x))));
      });
      const v = g.dataSync()[0];
      tf.dispose([g, ...Object.values(mb)]);
      return v;
    };
    // min(rÂ, clip(r)Â): for Â > 0 and r = 1.5 the clipped term (constant in θ) is the smaller.
    expect(gradNorm([1, 2, 1, 3])).toBe(0);
    expect(gradNorm([-1, -2, -1, -3])).toBeGreaterThan(1e-6);
    policy.dispose();
  });
});

describe('makePpoConfig', () => {
  it("has Stable-Baselines3's defaults and rejects bad values", () => {
    // A task without overrides gets the defaults; Pendulum-v1 its own (γ 0.95, lr 1e-3, 4 × 1024).
    const c = makePpoConfig({ env: 'MountainCarContinuous-v0' });
    expect([makePpoConfig().gamma, makePpoConfig().numEnvs]).toEqual([0.95, 4]);
    expect([c.nSteps, c.minibatchSize, c.epochs, c.learningRate, c.gamma, c.gaeLambda, c.clipRange, c.entCoef, c.vfCoef, c.maxGradNorm]).toEqual([2048, 64, 10, 3e-4, 0.99, 0.95, 0.2, 0, 0.5, 0.5]);
    expect(makePpoConfig(JSON.parse(JSON.stringify(c)))).toEqual(c);
    expect(c.policy).toEqual(PPO_DEFAULTS.policy);
    expect(() => makePpoConfig({ clipRange: 0 })).toThrow(/clipRange: expected a finite number > 0, got 0/);
    expect(() => makePpoConfig({ epochs: 0 })).toThrow(/epochs/);
    expect(() => makePpoConfig({ targetKl: -1 })).toThrow(/targetKl/);
    expect(() => makePpoConfig({ nSteps: 1.5 })).toThrow(/nSteps: expected an integer/);
    expect(() => makePpoConfig({ lr: 1 } as never)).toThrow(ValidationError);
  });
});

describe('trainPpo', () => {
  it('is deterministic for a seed, and keeps the tensor count flat over iterations', async () => {
    const run = async (seed: number): Promise<{ params: Float32Array; tensors: number[] }> => {
      const config = makePpoConfig({ env: 'Pendulum-v1', seed, steps: 3 * 256, nSteps: 128, numEnvs: 2, epochs: 2 });
      const tensors: number[] = [];
      const { policy, valueFunction } = await trainPpo(config, [await makeEnv(config.env), await makeEnv(config.env)], {
        onIteration: () => void tensors.push(tf.memory().numTensors),
      });
      const params = policy.getFlatParams();
      policy.dispose();
      valueFunction.dispose();
      return { params, tensors };
    };
    const a = await run(1);
    const b = await run(1);
    const c = await run(2);
    expect(Array.from(a.params)).toEqual(Array.from(b.params));
    expect(Array.from(a.params)).not.toEqual(Array.from(c.params));
    expect(a.tensors[2]).toBe(a.tensors[1]);
  });
});
