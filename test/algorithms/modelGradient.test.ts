import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  ensembleDynamics,
  ensembleLikelihoodLoss,
  ensembleMemberParams,
  ensembleMemberShapes,
  fitSegmentBaseline,
  makeModelGradientConfig,
  modelGradientLoss,
  realPolicyGradient,
  segmentAdvantages,
  segmentsFromBatch,
  setEnsembleMemberParams,
  trainModelGradient,
  type DifferentiableDynamics,
  type GradientMatchingProblem,
  type PolicyGradientSegments,
} from '../../src/algorithms/modelGradient.js';
import { halfCheetahReward, pendulumReward } from '../../src/algorithms/modelGradientRewards.js';
import { collectRollouts, EnvRolloutSource, type SampleBatch } from '../../src/algorithms/policyGradient.js';
import { meanActionSampler } from '../../src/algorithms/modelRollouts.js';
import { initBackend } from '../../src/core/backend.js';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { halfCheetahTask } from '../../src/envs/halfCheetah.js';
import { pendulumTask } from '../../src/envs/pendulum.js';
import { makeEnv } from '../../src/envs/registry.js';
import { randomEnsembleWeights, referenceForward } from '../../src/models/referenceForward.js';
import type { EnsembleSpec } from '../../src/models/types.js';
import { GaussianMlpPolicy, makePolicySpec } from '../../src/policies/gaussianMlpPolicy.js';

beforeAll(async () => {
  await initBackend({ log: () => {} });
});

function norm(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return Math.sqrt(s);
}
function angleDeg(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0;
  for (let i = 0; i < a.length; i++) ab += a[i] * b[i];
  return (Math.acos(Math.max(-1, Math.min(1, ab / (norm(a) * norm(b))))) * 180) / Math.PI;
}

describe('makeModelGradientConfig', () => {
  it('applies the task overrides and names a bad key', () => {
    const c = makeModelGradientConfig({ env: 'Pendulum-v1' });
    expect(c.kind).toBe('model-gradient');
    expect(c.modelLoss).toBe('mg');
    expect(c.ensemble.numMembers).toBe(3);
    expect(makeModelGradientConfig({ env: 'HalfCheetah-v5' }).imaginedHorizon).toBe(100);
    expect(JSON.parse(JSON.stringify(c))).toEqual(c);
    expect(() => makeModelGradientConfig({ distance: 'l1' as never })).toThrow(/distance.*'cosine' or 'squared'/);
    expect(() => makeModelGradientConfig({ likelihoodWeight: -1 })).toThrow(ValidationError);
    expect(() => makeModelGradientConfig({ env: 'InvertedPendulum-v5' })).toThrow(/reward.*'learned'/);
    expect(() => makeModelGradientConfig({ env: 'InvertedPendulum-v5', reward: 'learned' })).toThrow(/learnReward/);
    expect(() => makeModelGradientConfig({ modelLoss: 'likelihood', warmStart: 'first-iteration' })).toThrow(/warmStart/);
    expect(() => makeModelGradientConfig({ bogus: 1 } as never)).toThrow(/bogus/);
  });
});

describe('Model Gradient building blocks', () => {
  it('the differentiable rewards equal the tasks’ rewards', () => {
    const rng = new Rng(1);
    for (const [reward, task, D, A] of [
      [pendulumReward, pendulumTask, 3, 1],
      [halfCheetahReward, halfCheetahTask, 17, 6],
    ] as const) {
      const n = 16;
      const obs = rng.fillNormal(new Float32Array(n * D), 0, 2);
      const act = rng.fillNormal(new Float32Array(n * A), 0, 1.5);
      const next = rng.fillNormal(new Float32Array(n * D), 0, 2);
      const want = new Float64Array(n);
      task.reward(obs, act, next, n, want);
      const got = tf.tidy(() => reward(tf.tensor2d(obs, [n, D]), tf.tensor2d(act, [n, A]), tf.tensor2d(next, [n, D])).dataSync());
      for (let i = 0; i < n; i++) expect(got[i]).toBeCloseTo(want[i], 3);
    }
  });

  it('an ensemble member as differentiable dynamics is the documented forward pass', () => {
    const spec: EnsembleSpec = { numMembers: 3, obsDim: 3, actDim: 2, hidden: [5, 4], activation: 'silu', probabilistic: false, learnReward: true };
    const w = randomEnsembleWeights(spec, new Rng(2));
    const rng = new Rng(3);
    const B = 4;
    const obs = rng.fillNormal(new Float32Array(B * 3));
    const act = rng.fillNormal(new Float32Array(B * 2));
    const dyn = ensembleDynamics(w);
    const k = 1;
    const { next, reward } = tf.tidy(() => {
      const phi = ensembleMemberParams(w, k).map((p, l) => tf.tensor(p, ensembleMemberShapes(spec)[l]));
      const out = dyn.step(phi, tf.tensor2d(obs, [B, 3]), tf.tensor2d(act, [B, 2]));
      return { next: out.nextObs.dataSync(), reward: (out.reward as tf.Tensor1D).dataSync() };
    });
    // The reference runs member k on rows [k·B, (k+1)·B).
    const refNext = new Float64Array(3 * B * 3);
    const refReward = new Float64Array(3 * B);
    const tile = (x: Float32Array): Float32Array => Float32Array.from({ length: 3 * x.length }, (_, i) => x[i % x.length]);
    referenceForward(w, tile(obs), tile(act), B, refNext, refReward);
    for (let i = 0; i < B * 3; i++) expect(next[i]).toBeCloseTo(refNext[k * B * 3 + i], 4);
    for (let i = 0; i < B; i++) expect(reward[i]).toBeCloseTo(refReward[k * B + i], 4);
    // Member parameters round-trip through the EnsembleWeights layout.
    const copy = randomEnsembleWeights(spec, new Rng(9));
    setEnsembleMemberParams(copy, k, ensembleMemberParams(w, k));
    expect(ensembleMemberParams(copy, k)).toEqual(ensembleMemberParams(w, k));
    expect(ensembleMemberParams(copy, 0)).not.toEqual(ensembleMemberParams(w, 0));
  });

  it('segments: windows of whole episodes, time-major, with the noise that drew each sample; hand-computed advantages', () => {
    // Two episodes of 5 and 4 steps; windows of 2: three from the first (its last step dropped), two from the second.
    const lengths = [5, 4];
    const size = 9;
    const batch = {
      size,
      obsDim: 1,
      actDim: 1,
      obs: Float32Array.from({ length: size }, (_, r) => r),
      nextObs: new Float32Array(size),
      timesteps: Float64Array.from([0, 1, 2, 3, 4, 0, 1, 2, 3]),
      u: Float32Array.from({ length: size }, (_, r) => 1 + r),
      actions: new Float64Array(size),
      rewards: Float64Array.from({ length: size }, (_, r) => 10 * r),
      terminated: new Uint8Array(size),
      truncated: Uint8Array.from([0, 0, 0, 0, 1, 0, 0, 0, 1]),
      oldMean: new Float32Array(size).fill(0.5),
      oldLogStd: new Float32Array(size).fill(Math.log(2)),
      episodeReturns: [],
      episodeLengths: lengths,
    } satisfies SampleBatch;
    const seg = segmentsFromBatch(batch, 2);
    expect(seg.count).toBe(4);
    // Windows start at rows 0, 2, 5, 7; row t·N + i is step t of window i.
    expect(Array.from(seg.obs)).toEqual([0, 2, 5, 7, 1, 3, 6, 8]);
    expect(Array.from(seg.rewards)).toEqual([0, 20, 50, 70, 10, 30, 60, 80]);
    expect(seg.noise[0]).toBeCloseTo((1 - 0.5) / 2, 6);
    expect(() => segmentsFromBatch(batch, 6)).toThrow(/none has 6 steps/);

    // Â_t = r_t + γ r_{t+1} − b(s_t, t) with b = 1 + 2 s (coefficients on [o, o², t/100, …, 1]).
    const adv = tf.tidy(() =>
      segmentAdvantages(tf.tensor2d(seg.rewards, [2, 4]), tf.tensor2d(seg.obs, [8, 1]), tf.tensor1d([2, 0, 0, 0, 0, 1]), 0.5).dataSync(),
    );
    const want = [0 + 0.5 * 10 - 1, 20 + 15 - 5, 50 + 30 - 11, 70 + 40 - 15, 10 - 3, 30 - 7, 60 - 13, 80 - 17];
    for (let i = 0; i < 8; i++) expect(adv[i]).toBeCloseTo(want[i], 4);
  });
});

describe('Model Gradient: ∇_φ of the gradient-matching loss', () => {
  // A tiny case: 3 segments of 4 steps, a 2-D system, a tanh policy with one hidden layer of 3,
  // two ensemble members with one SiLU layer of 4 and non-trivial normalisation statistics.
  const spec: EnsembleSpec = { numMembers: 2, obsDim: 2, actDim: 1, hidden: [4], activation: 'silu', probabilistic: false, learnReward: true };
  const w = randomEnsembleWeights(spec, new Rng(11));
  // Keep the random statistics mild so four steps stay in range.
  w.inputMean.fill(0.2);
  w.inputStd.fill(1.5);
  w.targetMean.fill(0.05);
  w.targetStd.fill(0.3);
  const shapes = ensembleMemberShapes(spec);
  const policySpec = makePolicySpec({ obsDim: 2, actionLow: [-2], actionHigh: [2], hidden: [3] });
  const policy = new GaussianMlpPolicy(policySpec, { rng: new Rng(12) });
  const rngP = new Rng(13);
  policy.setFlatParams(Float32Array.from({ length: policy.numParams }, (_, i) => (i === policy.numParams - 1 ? -0.5 : rngP.normal(0, 0.6))));
  policy.setObsNormalization([0.1, -0.1], [1.2, 0.8]);
  const rng = new Rng(14);
  const N = 3;
  const H = 4;
  const seg: PolicyGradientSegments = {
    count: N,
    length: H,
    obsDim: 2,
    actDim: 1,
    obs: rng.fillNormal(new Float32Array(H * N * 2), 0, 0.7),
    u: rng.fillNormal(new Float32Array(H * N), 0, 0.5),
    noise: rng.fillNormal(new Float32Array(H * N)),
    rewards: rng.fillNormal(new Float32Array(H * N)),
  };
  const baseline = fitSegmentBaseline(seg, 0.9);
  const quadratic = (obs: tf.Tensor2D, act: tf.Tensor2D): tf.Tensor1D =>
    tf.neg(tf.add(tf.sum(tf.square(obs), 1), tf.mul(tf.sum(tf.square(act), 1), 0.1))) as tf.Tensor1D;
  const likX = tf.keep(tf.tensor2d(rng.fillNormal(new Float32Array(5 * 3)), [5, 3]));
  const likY = tf.keep(tf.tensor2d(rng.fillNormal(new Float32Array(5 * 3)), [5, 3]));
  const phis = [0, 1].map((k) => ensembleMemberParams(w, k));

  const cases = [
    { name: 'cosine, per member, known reward', distance: 'cosine', gradientTarget: 'perMember', reward: quadratic, likelihood: false },
    { name: 'squared, mean gradient, learned reward, with the likelihood term', distance: 'squared', gradientTarget: 'mean', reward: null, likelihood: true },
  ] as const;
  for (const c of cases) {
    it(`matches central finite differences (${c.name})`, () => {
      const target = realPolicyGradient(policy, seg, baseline, 0.9);
      const dynamics = ensembleDynamics(w);
      const problem: GradientMatchingProblem = {
        policy,
        segments: seg,
        target,
        baseline,
        gamma: 0.9,
        dynamics,
        reward: c.reward,
        distance: c.distance,
        gradientTarget: c.gradientTarget,
        ...(c.likelihood ? { likelihood: { weight: 0.3, loss: (p: readonly (readonly tf.Tensor[])[]) => ensembleLikelihoodLoss(dynamics, p, likX, likY) } } : {}),
      };
      const before = tf.memory().numTensors;
      const { value, grads } = modelGradientLoss(problem, phis, shapes);
      expect(tf.memory().numTensors).toBe(before);
      expect(value.mgLoss).toBeGreaterThan(1e-3);
      const analytic = grads!.flatMap((member) => member.flatMap((g) => Array.from(g)));
      const eps = 3e-3;
      const fd: number[] = [];
      for (let k = 0; k < phis.length; k++) {
        for (let l = 0; l < shapes.length; l++) {
          for (let j = 0; j < phis[k][l].length; j++) {
            const at = (delta: number): number => {
              const p = phis.map((m) => m.map((x) => x.slice()));
              p[k][l][j] += delta;
              return modelGradientLoss(problem, p, shapes, false).value.loss;
            };
            fd.push((at(eps) - at(-eps)) / (2 * eps));
          }
        }
      }
      target.dispose();
      const diff = analytic.map((x, i) => x - fd[i]);
      console.log(`∇_φ L (${c.name}): ‖FD‖ = ${norm(fd).toExponential(3)}, relative error ${(norm(diff) / norm(fd)).toExponential(2)}`);
      expect(norm(fd)).toBeGreaterThan(1e-2);
      // Measured 8e-5 and 2e-4; with tfjs's own tanh in the policy (a wrong second derivative) 3e-2 and 2e-2.
      expect(norm(diff) / norm(fd)).toBeLessThan(2e-3);
    }, 60_000);
  }
});

describe('Model Gradient on a linear-quadratic system with a known policy gradient', () => {
  // The system (2-D state, 1-D action, T = 20 steps, γ = 1):
  //   s1' = 0.95 s1 + 0.5 a            the controlled coordinate the reward depends on
  //   s2' = 0.3 s2 + w,  w ~ N(0, 0.5²)  an uncontrolled coordinate the reward ignores
  //   s0 ~ N(0, diag(1, 3²)),  r = −(s1² + 0.1 a²)
  // The policy: a = 10 u, u ~ N(θ_w · (s1, s2/3) + θ_b, e^{2θ_σ}) at θ = (−0.03, 0, 0, log 0.05),
  // i.e. a = −0.3 s1 + 0.5 ξ; the bounds ±10 never clip it.
  // Both models have the same two parameters: s1' = m s1 + β a, s2' = m s2 — one decay rate m
  // for both coordinates, which cannot be right for both. Least squares (the Gaussian maximum
  // likelihood) weighs the coordinates by their spread, and s2's is the larger, so m lands
  // between 0.3 and 0.95 and the model's s1 decays too fast: its policy gradient is off.
  // Gradient matching can put m where the gradient needs it (s1's decay), since s2 only enters
  // the estimator through the baseline. The true ∇J is exact (below); its θ_w2 and θ_b entries
  // are 0 by symmetry, so the angles are those in the (θ_w1, θ_σ) plane.
  // Measured with the data of Rng(7): likelihood model 29.1°, MG model 1.4° (g_real itself, the
  // noisy real-data estimate the model was matched to, 12.1°); with Rng(1), (2), (3): 23.7° vs
  // 0.7°, 27.1° vs 3.0°, 24.3° vs 3.0°.
  const A1 = 0.95;
  const A2 = 0.3;
  const B1 = 0.5;
  const W2 = 0.5;
  const S0 = [1, 3];
  const RC = 0.1;
  const T = 20;
  const HALF = 10;
  const THETA = [-0.03, 0, 0, Math.log(0.05)];

  /**
   * J(θ) = Σ_{t<T} E r_t exactly, by propagating the state's mean and covariance through the
   * closed loop s' = (A + B K) s + B (c + σ ξ) + w (float64).
   */
  function exactReturn(a: [number, number], b: number, w2: number, theta: readonly number[]): number {
    const K = [HALF * theta[0], (HALF * theta[1]) / S0[1]];
    const c = HALF * theta[2];
    const sigma = HALF * Math.exp(theta[3]);
    const Acl = [a[0] + b * K[0], b * K[1], 0, a[1]];
    let mu = [0, 0];
    let S = [S0[0] ** 2, 0, 0, S0[1] ** 2];
    let J = 0;
    for (let t = 0; t < T; t++) {
      const KSK = K[0] * (K[0] * S[0] + K[1] * S[2]) + K[1] * (K[0] * S[1] + K[1] * S[3]);
      const meanAction = K[0] * mu[0] + K[1] * mu[1] + c;
      J -= S[0] + mu[0] ** 2 + RC * (KSK + meanAction ** 2 + sigma ** 2);
      mu = [Acl[0] * mu[0] + Acl[1] * mu[1] + b * c, Acl[2] * mu[0] + Acl[3] * mu[1]];
      const AS = [Acl[0] * S[0] + Acl[1] * S[2], Acl[0] * S[1] + Acl[1] * S[3], Acl[2] * S[0] + Acl[3] * S[2], Acl[2] * S[1] + Acl[3] * S[3]];
      S = [
        AS[0] * Acl[0] + AS[1] * Acl[1] + sigma ** 2 * b * b,
        AS[0] * Acl[2] + AS[1] * Acl[3],
        AS[2] * Acl[0] + AS[3] * Acl[1],
        AS[2] * Acl[2] + AS[3] * Acl[3] + w2 * w2,
      ];
    }
    return J;
  }
  /** ∇_θ J by central differences of the exact J (h = 1e-5; float64, error ~1e-8 relative). */
  const exactGradient = (a: [number, number], b: number, w2: number): number[] =>
    THETA.map((_, i) => {
      const p = [...THETA];
      const m = [...THETA];
      p[i] += 1e-5;
      m[i] -= 1e-5;
      return (exactReturn(a, b, w2, p) - exactReturn(a, b, w2, m)) / 2e-5;
    });

  it('the MG-trained model’s policy gradient points within 10° of the true one, and ≥ 15° closer than the likelihood model’s', () => {
    const t0 = performance.now();
    const policy = new GaussianMlpPolicy(makePolicySpec({ obsDim: 2, actionLow: [-HALF], actionHigh: [HALF], hidden: [] }), { rng: new Rng(0) });
    policy.setFlatParams(THETA);
    policy.setObsNormalization([0, 0], [1, S0[1]]);
    // 100 real episodes of T steps, each one segment.
    const rng = new Rng(7);
    const N = 100;
    const seg: PolicyGradientSegments = { count: N, length: T, obsDim: 2, actDim: 1, obs: new Float32Array(T * N * 2), u: new Float32Array(T * N), noise: new Float32Array(T * N), rewards: new Float32Array(T * N) };
    const nextObs = new Float64Array(T * N * 2);
    for (let i = 0; i < N; i++) {
      let s1 = rng.normal(0, S0[0]);
      let s2 = rng.normal(0, S0[1]);
      for (let t = 0; t < T; t++) {
        const row = t * N + i;
        const xi = rng.normal();
        const u = THETA[0] * s1 + THETA[1] * (s2 / S0[1]) + THETA[2] + Math.exp(THETA[3]) * xi;
        const a = HALF * u;
        seg.obs.set([s1, s2], 2 * row);
        seg.u[row] = u;
        seg.noise[row] = xi;
        seg.rewards[row] = -(s1 * s1 + RC * a * a);
        s1 = A1 * s1 + B1 * a;
        s2 = A2 * s2 + rng.normal(0, W2);
        nextObs.set([s1, s2], 2 * row);
      }
    }
    // Maximum likelihood in the model class: least squares for (m, β) on rows [s1, a] → s1' and [s2, 0] → s2'.
    let [xx, xa, aa, xy, ay] = [0, 0, 0, 0, 0];
    for (let r = 0; r < T * N; r++) {
      const [s1, s2] = [seg.obs[2 * r], seg.obs[2 * r + 1]];
      const a = HALF * seg.u[r];
      xx += s1 * s1 + s2 * s2;
      xa += s1 * a;
      aa += a * a;
      xy += s1 * nextObs[2 * r] + s2 * nextObs[2 * r + 1];
      ay += a * nextObs[2 * r];
    }
    const det = xx * aa - xa * xa;
    const mle = [(aa * xy - xa * ay) / det, (xx * ay - xa * xy) / det];

    // Gradient matching from the likelihood model: Adam on the cosine distance (λ = 0).
    const dynamics: DifferentiableDynamics = {
      step(phi, obs, act) {
        const s1 = tf.slice(obs, [0, 0], [-1, 1]);
        const s2 = tf.slice(obs, [0, 1], [-1, 1]);
        return { nextObs: tf.concat([tf.add(tf.mul(s1, phi[0]), tf.mul(act, phi[1])), tf.mul(s2, phi[0])], 1) as tf.Tensor2D };
      },
    };
    const reward = (obs: tf.Tensor2D, act: tf.Tensor2D): tf.Tensor1D =>
      tf.neg(tf.add(tf.square(tf.reshape(tf.slice(obs, [0, 0], [-1, 1]), [-1])), tf.mul(tf.square(tf.reshape(act, [-1])), RC))) as tf.Tensor1D;
    const baseline = fitSegmentBaseline(seg, 1);
    const target = realPolicyGradient(policy, seg, baseline, 1);
    const problem: GradientMatchingProblem = { policy, segments: seg, target, baseline, gamma: 1, dynamics, reward, distance: 'cosine', gradientTarget: 'perMember' };
    const phi = [Float32Array.of(mle[0]), Float32Array.of(mle[1])];
    const adam = [0, 0, 0, 0];
    let first = 0;
    let last = 0;
    for (let step = 1; step <= 60; step++) {
      const { value, grads } = modelGradientLoss(problem, [phi], [[1], [1]]);
      if (step === 1) first = value.mgLoss;
      last = value.mgLoss;
      for (let j = 0; j < 2; j++) {
        const g = grads![0][j][0];
        adam[j] = 0.9 * adam[j] + 0.1 * g;
        adam[2 + j] = 0.999 * adam[2 + j] + 0.001 * g * g;
        phi[j][0] -= (0.03 * (adam[j] / (1 - 0.9 ** step))) / (Math.sqrt(adam[2 + j] / (1 - 0.999 ** step)) + 1e-8);
      }
    }
    const sampleAngle = angleDeg(target.dataSync(), exactGradient([A1, A2], B1, W2));
    target.dispose();
    policy.dispose();

    const trueGrad = exactGradient([A1, A2], B1, W2);
    const mleAngle = angleDeg(exactGradient([mle[0], mle[0]], mle[1], 0), trueGrad);
    const mgAngle = angleDeg(exactGradient([phi[0][0], phi[0][0]], phi[1][0], 0), trueGrad);
    console.log(
      `LQR: true ∇J = [${trueGrad.map((x) => x.toFixed(3)).join(', ')}]; likelihood model (m, β) = (${mle.map((x) => x.toFixed(3)).join(', ')}): angle ${mleAngle.toFixed(1)}°; ` +
        `MG model (${phi[0][0].toFixed(3)}, ${phi[1][0].toFixed(3)}): angle ${mgAngle.toFixed(1)}° (L_MG ${first.toExponential(2)} → ${last.toExponential(2)}); ` +
        `the real-data estimate g_real itself: ${sampleAngle.toFixed(1)}°; ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    expect(last).toBeLessThan(first);
    expect(mgAngle).toBeLessThan(10);
    expect(mleAngle).toBeGreaterThan(mgAngle + 15);
  }, 120_000);
});

describe('Model Gradient loop on Pendulum-v1', () => {
  /** Mean return of the deterministic policy over 10 fixed real episodes (the same start states for every policy). */
  async function fixedStartsReturn(env: Awaited<ReturnType<typeof makeEnv>>, policy: GaussianMlpPolicy): Promise<number> {
    const batch = await collectRollouts(new EnvRolloutSource(env, { seed: 4242 }), meanActionSampler(policy), new Rng(0), { episodes: 10 });
    return batch.episodeReturns.reduce((a, b) => a + b, 0) / batch.episodeReturns.length;
  }

  it('improves the return of the initial policy by ≥ 150 within 600 real steps, with a constant tensor count', async () => {
    // Chance, on the same 10 start states (measured): the deterministic initial policies of seeds
    // 0–19 score −1148 on average (best −1100), 20 random networks with a 100× larger output
    // layer −1497 (best −1214), uniformly random torques −1156 (best −1102). Seed 0's initial
    // policy scores −1146, so the threshold −996 is ~100 above the best of those 60 policies:
    // only a policy that has learned to pump energy into the swing reaches it.
    // Measured here: −1146 → −877 (seed 0; the likelihood-model variant of the same loop: −1058).
    const t0 = performance.now();
    const config = makeModelGradientConfig({ env: 'Pendulum-v1', seed: 0, steps: 600, realEpisodesPerIteration: 1, mgSteps: 5, imaginedSteps: 2000, evalEpisodes: 0 });
    const env = await makeEnv(config.env);
    const spec = makePolicySpec({ obsDim: 3, actionSpace: env.actionSpace, ...config.policy });
    const initial = new GaussianMlpPolicy(spec, { rng: new Rng(config.seed, 1) });
    const before = await fixedStartsReturn(env, initial);
    initial.dispose();
    const tensors: number[] = [];
    const state = await trainModelGradient(config, env, { onIteration: () => void tensors.push(tf.memory().numTensors) });
    const trained = new GaussianMlpPolicy(spec, { weights: state.policy });
    const after = await fixedStartsReturn(env, trained);
    trained.dispose();
    env.close();
    console.log(
      `Pendulum MG seed 0: fixed-start return ${before.toFixed(1)} → ${after.toFixed(1)}; cos(g_model, g_real) per iteration ` +
        state.history.map((h) => `[${h.cosineBefore.map((c) => c.toFixed(3)).join(', ')}] → [${h.cosineAfter.map((c) => c.toFixed(3)).join(', ')}]`).join(', ') +
        `; tensors after each iteration ${tensors.join(', ')}; ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    expect(state.history).toHaveLength(3);
    for (const h of state.history) {
      expect(h.mgStepsTaken).toBe(5);
      expect(h.mgLossAfter).toBeLessThan(h.mgLossBefore as number);
    }
    expect(tensors.every((n) => n === tensors[0])).toBe(true);
    expect(after).toBeGreaterThanOrEqual(before + 150);
  }, 180_000);

  it('a run resumed from its state after one iteration ends where the uninterrupted run ends', async () => {
    const tiny = { env: 'Pendulum-v1', seed: 3, realEpisodesPerIteration: 1, mgSteps: 2, policyIterations: 2, imaginedSteps: 400, evalEpisodes: 0, ensemble: { numMembers: 2, numElites: 2, probabilistic: false, learnReward: false, hidden: [16, 16] } };
    const full = makeModelGradientConfig({ ...tiny, steps: 400 });
    const env = await makeEnv(full.env);
    const straight = await trainModelGradient(full, env);
    const half = await trainModelGradient(makeModelGradientConfig({ ...tiny, steps: 200 }), env);
    // What the CLI does on --resume: the checkpoint's state under the run's (longer) config.
    const resumed = await trainModelGradient(full, env, {}, { ...half, config: full });
    env.close();
    expect(resumed.iteration).toBe(2);
    expect(resumed.envSteps).toBe(straight.envSteps);
    expect(resumed.policy).toEqual(straight.policy);
    expect(resumed.ensemble).toEqual(straight.ensemble);
  }, 180_000);
});
