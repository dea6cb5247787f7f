import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { collectRollouts, EnvRolloutSource, readFlat, unflatten, valueAndFlatGrad, type SampleBatch } from '../../src/algorithms/policyGradient.js';
import { conjugateGradient, fisherVectorProduct, makeTrpoConfig, trainTrpo, trpoStep, TRPO_DEFAULTS, TRUST_REGION_DEFAULTS } from '../../src/algorithms/trpo.js';
import { initBackend } from '../../src/core/backend.js';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { makeEnv } from '../../src/envs/registry.js';
import { gaussianKl } from '../../src/policies/diagGaussian.js';
import { GaussianMlpPolicy, makePolicySpec, policyForward, type GaussianMlpPolicySpec } from '../../src/policies/gaussianMlpPolicy.js';

beforeAll(async () => {
  await initBackend({ log: () => {} });
});

/** θ ↦ mean KL(π_θ0 ‖ π_θ) on `obsNorm`, with π_θ0 evaluated once and held constant. */
function meanKlFrom(spec: GaussianMlpPolicySpec, theta0: readonly tf.Tensor[], obsNorm: tf.Tensor2D): { meanKl: (p: readonly tf.Tensor[]) => tf.Scalar; dispose: () => void } {
  const old = tf.tidy(() => {
    const d = policyForward(spec, theta0, obsNorm);
    return { mean: d.mean, logStd: tf.clone(d.logStd) };
  });
  return {
    meanKl: (p) => {
      const d = policyForward(spec, p, obsNorm);
      return tf.mean(gaussianKl(old.mean, old.logStd, d.mean, d.logStd)) as tf.Scalar;
    },
    dispose: () => tf.dispose([old.mean, old.logStd]),
  };
}

describe('conjugateGradient', () => {
  it('solves a 2 × 2 symmetric positive definite system in two iterations', () => {
    // A = [[4, 1], [1, 3]], b = [1, 2]:  A⁻¹ = (1/11)[[3, −1], [−1, 4]],  x = [1/11, 7/11]
    let products = 0;
    const Avp = (v: Float64Array): Float64Array => {
      products++;
      return Float64Array.of(4 * v[0] + v[1], v[0] + 3 * v[1]);
    };
    const x = conjugateGradient(Avp, Float64Array.of(1, 2), 10, 1e-20);
    expect(x[0]).toBeCloseTo(1 / 11, 14);
    expect(x[1]).toBeCloseTo(7 / 11, 14);
    expect(products).toBe(2);
    // One iteration: the exact line minimum along b: x = (bᵀb / bᵀAb) b = (5/20)·b.
    const one = conjugateGradient(Avp, Float32Array.of(1, 2), 1);
    expect(one[0]).toBeCloseTo(0.25, 14);
    expect(one[1]).toBeCloseTo(0.5, 14);
    expect(Array.from(conjugateGradient(Avp, [0, 0]))).toEqual([0, 0]);
  });
});

describe('fisherVectorProduct', () => {
  it('equals the analytic Fisher matrix of a linear Gaussian policy', () => {
    // μ = sᵀW + b, log σ = ℓ (one action): F = mean_i [x_i x_iᵀ/σ²] for (W, b), x_i = (s_i, 1), and 2 for ℓ.
    const spec = makePolicySpec({ obsDim: 2, actionLow: [-1], actionHigh: [1], hidden: [] });
    const logStd = 0.3;
    const sigma2 = Math.exp(2 * logStd);
    const params = [tf.tensor2d([[0.5], [-0.2]]), tf.tensor1d([0.1]), tf.tensor1d([logStd])];
    const rng = new Rng(0);
    const n = 5;
    const s = Float32Array.from({ length: n * 2 }, () => rng.normal());
    const obs = tf.tensor2d(s, [n, 2]);
    const { meanKl, dispose } = meanKlFrom(spec, params, obs);
    const v = Float64Array.of(0.7, -1.3, 0.4, 2);
    const damping = 0.1;
    const Fv = fisherVectorProduct(meanKl, params, v, damping);
    const expected = new Float64Array(4);
    for (let i = 0; i < n; i++) {
      const x = [s[2 * i], s[2 * i + 1], 1];
      const xv = x[0] * v[0] + x[1] * v[1] + x[2] * v[2];
      for (let k = 0; k < 3; k++) expected[k] += (x[k] * xv) / sigma2 / n;
    }
    expected[3] = 2 * v[3];
    for (let k = 0; k < 4; k++) expect(Fv[k]).toBeCloseTo(expected[k] + damping * v[k], 4);
    dispose();
    tf.dispose([...params, obs]);
  });

  it('matches a finite difference of the KL gradient for a tanh MLP', () => {
    const spec = makePolicySpec({ obsDim: 3, actionLow: [-1, -2], actionHigh: [1, 2], hidden: [8, 8] });
    const policy = new GaussianMlpPolicy(spec, { rng: new Rng(2) });
    // A larger output layer than the initialisation's, so the mean depends visibly on every weight.
    const w = policy.getWeights();
    w.layers[2].W = w.layers[2].W.map((x) => x * 50);
    policy.setWeights(w);
    const rng = new Rng(3);
    const n = 16;
    const obs = tf.tensor2d(Float32Array.from({ length: n * 3 }, () => rng.normal()), [n, 3]);
    const { meanKl, dispose } = meanKlFrom(spec, policy.variables, obs);
    const theta0 = readFlat(policy.variables);
    const shapes = policy.variables.map((x) => x.shape);
    const v = Float64Array.from(theta0, () => rng.normal());
    const Fv = fisherVectorProduct(meanKl, policy.variables, v, 0);
    // (∇KL(θ0 + εv) − ∇KL(θ0 − εv)) / 2ε
    const eps = 1e-2;
    const gradAt = (sign: number): Float64Array => {
      const p = unflatten(
        theta0.map((x, k) => x + sign * eps * v[k]),
        shapes,
      );
      const g = valueAndFlatGrad(meanKl, p).grad;
      tf.dispose(p);
      return g;
    };
    const gp = gradAt(1);
    const gm = gradAt(-1);
    const fd = gp.map((x, k) => (x - gm[k]) / (2 * eps));
    let err = 0;
    let norm = 0;
    for (let k = 0; k < fd.length; k++) {
      err += (Fv[k] - fd[k]) ** 2;
      norm += fd[k] ** 2;
    }
    expect(Math.sqrt(norm)).toBeGreaterThan(0.1);
    expect(Math.sqrt(err / norm)).toBeLessThan(5e-3);
    dispose();
    obs.dispose();
    policy.dispose();
  });
});

/** A synthetic batch from the policy itself: random states, u drawn from the policy, random advantages. */
function syntheticBatch(policy: GaussianMlpPolicy, n: number, rng: Rng): { batch: SampleBatch; advantages: Float64Array } {
  const D = policy.obsDim;
  const A = policy.actDim;
  const obs = Float32Array.from({ length: n * D }, () => rng.normal());
  const s = policy.sample(obs, n, rng);
  const batch: SampleBatch = {
    size: n,
    obsDim: D,
    actDim: A,
    obs,
    nextObs: obs,
    timesteps: new Float64Array(n),
    u: s.u,
    actions: s.actions,
    rewards: new Float64Array(n),
    terminated: new Uint8Array(n),
    truncated: new Uint8Array(n).fill(1),
    oldMean: s.mean,
    oldLogStd: s.logStd,
    episodeReturns: [],
    episodeLengths: [],
  };
  // Advantages that reward one direction of u (a learnable signal), plus noise.
  const advantages = Float64Array.from({ length: n }, (_, i) => s.u[i * A] - s.mean[i * A] + 0.5 * rng.normal());
  return { batch, advantages };
}

describe('trpoStep', () => {
  it('never exceeds the KL bound and always improves the surrogate when it steps (several seeds, bounds and dampings)', () => {
    const spec = makePolicySpec({ obsDim: 3, actionLow: [-1, -1], actionHigh: [1, 1], hidden: [16, 16] });
    let accepted = 0;
    let cases = 0;
    for (let seed = 0; seed < 4; seed++) {
      for (const [maxKl, cgDamping] of [
        [0.01, 0.1],
        [0.01, 1e-5],
        [0.05, 0.1],
        [1e-4, 0.1],
      ]) {
        const policy = new GaussianMlpPolicy(spec, { rng: new Rng(seed) });
        const rng = new Rng(100 + seed);
        for (let it = 0; it < 3; it++) {
          const { batch, advantages } = syntheticBatch(policy, 256, rng);
          const stats = trpoStep(policy, batch, advantages, { ...TRUST_REGION_DEFAULTS, maxKl, cgDamping });
          // KL(old ‖ new) recomputed from the batch's recorded distribution and the updated policy.
          const kl = tf.tidy(() => {
            const d = policy.distribution(tf.tensor2d(batch.obs, [batch.size, 3]));
            return tf.mean(gaussianKl(tf.tensor2d(batch.oldMean, [batch.size, 2]), tf.tensor2d(batch.oldLogStd, [batch.size, 2]), d.mean, d.logStd));
          });
          const klValue = kl.dataSync()[0];
          kl.dispose();
          expect(klValue).toBeLessThanOrEqual(maxKl * (1 + 1e-4));
          if (stats.accepted) {
            accepted++;
            expect(stats.surrogateAfter).toBeGreaterThan(stats.surrogateBefore);
            expect(stats.klAfter).toBeLessThanOrEqual(maxKl);
          } else {
            expect(klValue).toBeLessThan(1e-6);
          }
          cases++;
        }
        policy.dispose();
      }
    }
    // The steps are real: nearly all are accepted.
    expect(accepted).toBeGreaterThanOrEqual(cases - 2);
  });

  it('steps to KL ≈ δ·0.8^(2k) after k backtracks (the quadratic model is right near θ_old), and leaks no tensors', () => {
    const spec = makePolicySpec({ obsDim: 2, actionLow: [-1], actionHigh: [1], hidden: [8] });
    const policy = new GaussianMlpPolicy(spec, { rng: new Rng(7) });
    const rng = new Rng(8);
    const { maxKl, backtrackRatio } = TRUST_REGION_DEFAULTS;
    for (let it = 0; it < 3; it++) {
      const { batch, advantages } = syntheticBatch(policy, 512, rng);
      const before = tf.memory().numTensors;
      const stats = trpoStep(policy, batch, advantages, { ...TRUST_REGION_DEFAULTS, cgDamping: 1e-3 });
      expect(tf.memory().numTensors).toBe(before);
      expect(stats.accepted).toBe(true);
      expect(stats.backtracks).toBeLessThanOrEqual(2);
      // β = √(2δ / xᵀFx) puts the full step on KL = δ in the quadratic model; k shrinks scale it by 0.8^(2k).
      const predicted = maxKl * backtrackRatio ** (2 * stats.backtracks);
      expect(stats.klAfter / predicted).toBeGreaterThan(0.7);
      expect(stats.klAfter / predicted).toBeLessThan(1.3);
      expect(stats.expectedImprovement).toBeGreaterThan(0);
    }
    policy.dispose();
  });
});

describe('makeTrpoConfig', () => {
  it('merges defaults and rejects bad values with the key and what was expected', () => {
    const c = makeTrpoConfig({ env: 'Pendulum-v1', policy: { hidden: [16] } });
    expect(c.kind).toBe('trpo');
    expect(c.maxKl).toBe(0.01);
    expect(c.policy).toEqual({ ...TRPO_DEFAULTS.policy, hidden: [16] });
    expect(makeTrpoConfig(JSON.parse(JSON.stringify(c)))).toEqual(c);
    // Per-task overrides apply under the caller's.
    expect([c.gamma, c.numEnvs]).toEqual([0.95, 4]);
    expect(makeTrpoConfig({ env: 'Pendulum-v1', gamma: 0.99 }).gamma).toBe(0.99);
    expect(makeTrpoConfig({ env: 'MountainCarContinuous-v0' }).gamma).toBe(TRPO_DEFAULTS.gamma);
    expect(() => makeTrpoConfig({ maxKl: 0 })).toThrow(/maxKl: expected a finite number > 0, got 0/);
    expect(() => makeTrpoConfig({ backtrackRatio: 1 })).toThrow(/backtrackRatio/);
    expect(() => makeTrpoConfig({ gaeLambda: 1.5 })).toThrow(/gaeLambda: expected a number in \[0, 1\]/);
    expect(() => makeTrpoConfig({ baseline: 'quadratic' as 'linear' })).toThrow(/baseline/);
    expect(() => makeTrpoConfig({ stepSize: 0.01 } as never)).toThrow(ValidationError);
    expect(() => makeTrpoConfig({ policy: { width: 3 } as never })).toThrow(/policy.width: unknown key/);
    expect(() => makeTrpoConfig({ env: 'Nope-v0' })).toThrow(/unknown environment/);
    expect(() => makeTrpoConfig({ valueFunction: { epochs: -1 } })).toThrow(/epochs/);
  });
});

describe('trainTrpo', () => {
  it('is deterministic for a seed, and keeps the tensor count flat over iterations', async () => {
    const run = async (seed: number, baseline: 'linear' | 'mlp'): Promise<{ params: Float32Array; tensors: number[] }> => {
      const config = makeTrpoConfig({ env: 'Pendulum-v1', seed, steps: 3 * 400, batchSize: 400, numEnvs: 2, baseline });
      const envs = [await makeEnv(config.env), await makeEnv(config.env)];
      const tensors: number[] = [];
      const { policy, baseline: b } = await trainTrpo(config, envs, { onIteration: () => void tensors.push(tf.memory().numTensors) });
      const params = policy.getFlatParams();
      policy.dispose();
      b.dispose?.();
      return { params, tensors };
    };
    const a = await run(1, 'mlp');
    const b = await run(1, 'mlp');
    expect(Array.from(a.params)).toEqual(Array.from(b.params));
    expect(a.tensors[2]).toBe(a.tensors[1]);
    const c = await run(2, 'linear');
    const d = await run(2, 'linear');
    expect(Array.from(c.params)).toEqual(Array.from(d.params));
    expect(Array.from(c.params)).not.toEqual(Array.from(a.params));
  });

  it('rejects a number of environments that differs from the config', async () => {
    const config = makeTrpoConfig({ numEnvs: 2 });
    await expect(trainTrpo(config, await makeEnv(config.env))).rejects.toThrow(/expected 2 environment copies/);
  });

  it('collects through EnvRolloutSource the batches it trains on', async () => {
    // A smoke check of the pieces the loop assembles: 2 copies × 100 steps, every segment closed.
    const env = await makeEnv('Pendulum-v1');
    const policy = new GaussianMlpPolicy(makePolicySpec({ obsDim: 3, actionSpace: env.actionSpace }), { rng: new Rng(0) });
    const batch = await collectRollouts(new EnvRolloutSource([env, await makeEnv('Pendulum-v1')], { seed: 0 }), policy, new Rng(0), { steps: 200 });
    expect(batch.size).toBe(200);
    expect(batch.truncated[99]).toBe(1);
    expect(batch.truncated[199]).toBe(1);
    policy.dispose();
  });
});
