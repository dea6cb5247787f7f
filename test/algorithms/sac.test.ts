import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  SAC_DEFAULTS,
  SAC_EVAL_SEED,
  SacAgent,
  actorLoss,
  adamStep,
  criticLoss,
  makeSacConfig,
  polyakAverage,
  sacPolicyForward,
  softQTarget,
  squashedGaussianSample,
  temperatureGradient,
  trainSac,
  type SacBatch,
} from '../../src/algorithms/sac.js';
import { RandomAgent } from '../../src/core/agent.js';
import { initBackend } from '../../src/core/backend.js';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { Box } from '../../src/core/spaces.js';
import { makeEnv } from '../../src/envs/registry.js';
import { runEpisodes } from '../../src/envs/runEpisodes.js';
import { GaussianMlpPolicy, makePolicySpec, policyForward } from '../../src/policies/gaussianMlpPolicy.js';
import { QEnsemble, makeQEnsembleSpec, matMulFast } from '../../src/policies/qEnsemble.js';

beforeAll(async () => {
  await initBackend({ log: () => {} });
});

const LOG_2PI = Math.log(2 * Math.PI);

/** A batch of `n` random transitions (obs ~ N(0, 1), actions uniform in [−2, 2], every 4th row terminal). */
function randomBatch(n: number, obsDim: number, actDim: number, rng: Rng): SacBatch {
  return {
    size: n,
    obs: rng.fillNormal(new Float32Array(n * obsDim)),
    action: rng.fillUniform(new Float32Array(n * actDim), -2, 2),
    reward: rng.fillNormal(new Float32Array(n)),
    nextObs: rng.fillNormal(new Float32Array(n * obsDim)),
    terminated: Uint8Array.from({ length: n }, (_, i) => (i % 4 === 3 ? 1 : 0)),
  };
}

describe('SAC losses (hand-computed)', () => {
  it('softQTarget: y = r + γ(1 − d)(min_i Q̄_i − α log π)', () => {
    const y = tf.tidy(() =>
      softQTarget(tf.tensor1d([1, 2, -1]), tf.tensor1d([0, 1, 0]), tf.tensor2d([[3, 5, -2], [4, 1, -3]]), tf.tensor1d([-0.5, 0.7, 1]), 0.2, 0.9),
    );
    // Row 0: min(3, 4) = 3; 1 + 0.9 (3 + 0.2 · 0.5) = 3.79. Row 1 is terminal: y = r = 2.
    // Row 2: min(−2, −3) = −3; −1 + 0.9 (−3 − 0.2) = −3.88.
    const v = Array.from(y.dataSync());
    y.dispose();
    expect(v[0]).toBeCloseTo(3.79, 5);
    expect(v[1]).toBeCloseTo(2, 6);
    expect(v[2]).toBeCloseTo(-3.88, 5);
  });

  it('criticLoss, actorLoss and the temperature gradient', () => {
    const [cl, al] = tf.tidy(() => {
      const q = tf.tensor2d([[1, 2], [0, 4]]);
      return [criticLoss(q, tf.tensor1d([1, 1])), actorLoss(q, tf.tensor1d([-1, 0.5]), 0.1)];
    });
    // ½ (mean(0, 1) + mean(1, 9)) = ½ (0.5 + 5) = 2.75; mean(0.1·(−1) − 0, 0.1·0.5 − 2) = −1.025.
    expect(cl.dataSync()[0]).toBeCloseTo(2.75, 6);
    expect(al.dataSync()[0]).toBeCloseTo(-1.025, 6);
    tf.dispose([cl, al]);
    // Entropy 1 nat (mean log π = −1) above the target −1: the gradient is +2, so descent lowers α.
    expect(temperatureGradient(-1, -1)).toBe(2);
    expect(temperatureGradient(2, -1)).toBe(-1);
  });

  it('polyakAverage and adamStep', () => {
    const target = Float32Array.of(1, 2);
    polyakAverage(target, [3, -2], 0.25);
    expect(Array.from(target)).toEqual([1.5, 1]);
    // First Adam step: m̂ = g, v̂ = g², so p moves by lr · g/(|g| + ε) ≈ lr against the sign of g.
    const p = Float32Array.of(1, 1);
    const s = { m: new Float32Array(2), v: new Float32Array(2), step: 0 };
    adamStep(p, [0.5, -2], s, 0.1);
    expect(p[0]).toBeCloseTo(0.9, 6);
    expect(p[1]).toBeCloseTo(1.1, 6);
    // Second step with g = (0.5, 0): m = (0.095, −0.38·… ) by hand for the first entry:
    // m = 0.9·0.05 + 0.1·0.5 = 0.095, v = 0.999·0.00025 + 0.001·0.25 = 0.00049975,
    // m̂ = 0.095/0.19 = 0.5, v̂ = 0.00049975/0.001999 = 0.25 → another step of 0.1.
    adamStep(p, [0.5, 0], s, 0.1);
    expect(p[0]).toBeCloseTo(0.8, 5);
    expect(s.step).toBe(2);
  });

  it('squashedGaussianSample matches policyForward and the policy’s log π (tanh Jacobian included)', () => {
    const spec = makePolicySpec({ obsDim: 3, actionLow: [-2, -1], actionHigh: [2, 1], hidden: [8, 8], activation: 'relu', squash: 'tanh', stdMode: 'state', obsClip: null });
    const policy = new GaussianMlpPolicy(spec, { rng: new Rng(4) });
    // A larger output layer than the initialisation's, so mean and log σ vary visibly.
    const w = policy.getWeights();
    w.layers[2].W = w.layers[2].W.map((x) => x * 100);
    policy.setWeights(w);
    const rng = new Rng(5);
    const n = 6;
    const [diff, lpOurs, lpPolicy, aOurs, aTanh] = tf.tidy(() => {
      const obs = tf.tensor2d(rng.fillNormal(new Float32Array(n * 3)), [n, 3]);
      const eps = tf.tensor2d(rng.fillNormal(new Float32Array(n * 2)), [n, 2]);
      const ref = policyForward(spec, policy.variables, obs);
      const ours = sacPolicyForward(spec, policy.variables, obs);
      const s = squashedGaussianSample(spec, policy.variables, obs, eps);
      const u = tf.add(ref.mean, tf.mul(tf.exp(ref.logStd), eps)) as tf.Tensor2D;
      return [tf.max(tf.abs(tf.concat([tf.sub(ref.mean, ours.mean), tf.sub(ref.logStd, ours.logStd)]))), s.logProb, policy.logProb(obs, u), s.actionNorm, tf.tanh(u)];
    });
    expect(diff.dataSync()[0]).toBeLessThan(1e-5);
    const a = Array.from(lpOurs.dataSync());
    const b = Array.from(lpPolicy.dataSync());
    for (let i = 0; i < n; i++) expect(a[i]).toBeCloseTo(b[i], 4);
    expect(Array.from(aOurs.dataSync())).toEqual(Array.from(aTanh.dataSync()));
    tf.dispose([diff, lpOurs, lpPolicy, aOurs, aTanh]);
    policy.dispose();
  });

  it('matMulFast has tfjs matMul’s value and gradients', () => {
    const rng = new Rng(6);
    const a = tf.tensor2d(rng.fillNormal(new Float32Array(5 * 4)), [5, 4]);
    const b = tf.tensor2d(rng.fillNormal(new Float32Array(4 * 3)), [4, 3]);
    const diffs = tf.tidy(() => {
      const f = (mm: (x: tf.Tensor2D, y: tf.Tensor2D) => tf.Tensor2D) => (x: tf.Tensor, y: tf.Tensor): tf.Scalar => tf.sum(tf.square(mm(x as tf.Tensor2D, y as tf.Tensor2D)));
      const [ga, gb] = tf.grads(f((x, y) => tf.matMul(x, y)))([a, b]);
      const [fa, fb] = tf.grads(f(matMulFast))([a, b]);
      return [tf.sub(tf.matMul(a, b), matMulFast(a, b)), tf.sub(ga, fa), tf.sub(gb, fb)].map((d) => tf.max(tf.abs(d)));
    });
    for (const d of diffs) expect(d.dataSync()[0]).toBeLessThan(1e-5);
    tf.dispose([...diffs, a, b]);
  });
});

describe('QEnsemble', () => {
  it('computes each member’s MLP([s, a_n]) as a plain-JS reference does; weights round-trip; clones are independent', () => {
    const spec = makeQEnsembleSpec({ obsDim: 2, actDim: 1, numQ: 3, hidden: [5] });
    const q = new QEnsemble(spec, { rng: new Rng(11) });
    const w = q.getWeights();
    for (const m of w.members) m.layers[0].b = m.layers[0].b.map((_, i) => 0.1 * i - 0.2);
    q.setWeights(w);
    expect(q.getWeights()).toEqual(w);
    const obs = [0.5, -1, 2, 0.3];
    const act = [0.7, -0.4];
    const out = tf.tidy(() => q.forward(tf.tensor2d(obs, [2, 2]), tf.tensor2d(act, [2, 1])));
    const got = Array.from(out.dataSync());
    out.dispose();
    for (let k = 0; k < 3; k++) {
      const [l0, l1] = w.members[k].layers;
      for (let r = 0; r < 2; r++) {
        const x = [obs[2 * r], obs[2 * r + 1], act[r]];
        let y = l1.b[0];
        for (let j = 0; j < 5; j++) {
          let z = l0.b[j];
          for (let i = 0; i < 3; i++) z += x[i] * l0.W[i * 5 + j];
          y += Math.max(0, z) * l1.W[j];
        }
        expect(got[k * 2 + r]).toBeCloseTo(y, 5);
      }
    }
    const copy = q.clone();
    q.setWeights({ members: w.members.map((m) => ({ layers: m.layers.map((l) => ({ W: l.W.map(() => 0), b: l.b.map(() => 0) })) })) });
    expect(copy.getWeights()).toEqual(w);
    expect(() => makeQEnsembleSpec({ obsDim: 2, actDim: 0 })).toThrow(/actDim: expected a positive integer, got 0/);
    expect(() => makeQEnsembleSpec({ obsDim: 2, actDim: 1, width: 3 } as never)).toThrow(/width: unknown key/);
    expect(() => q.setWeights({ members: w.members.slice(1) })).toThrow(/members: expected 3 members/);
    q.dispose();
    copy.dispose();
  });
});

describe('SacAgent', () => {
  const space = new Box([-2], [2]);

  it('computes the critic target of a hand-made case: known Q̄, α, log π, a terminal row', () => {
    // All hidden weights zero: every network outputs its last bias. The policy's head gives
    // μ = 0.3, log σ = −0.5 everywhere; critics Q_1 = 1, Q_2 = 2; target critics Q̄_1 = −4, Q̄_2 = −3.
    const agent = new SacAgent({ obsDim: 2, actionSpace: space, config: { hidden: [4], gamma: 0.9, initAlpha: 0.5 }, rng: new Rng(7) });
    const state = agent.getState();
    state.actor.fill(0);
    state.actor.set([0.3, -0.5], state.actor.length - 2);
    const per = state.critic.length / 2;
    state.critic.fill(0);
    state.critic[per - 1] = 1;
    state.critic[2 * per - 1] = 2;
    state.targetCritic.fill(0);
    state.targetCritic[per - 1] = -4;
    state.targetCritic[2 * per - 1] = -3;
    agent.setState(state);
    // The update's noise: ε for s, then ε' for s' (the agent's own generator, read from its state).
    const noise = new Rng(0);
    noise.setState(state.rng);
    const n = 3;
    const eps = noise.fillNormal(new Float32Array(n));
    const epsNext = noise.fillNormal(new Float32Array(n));
    const logPi = (e: number): number => {
      const u = 0.3 + Math.exp(-0.5) * e;
      return -0.5 * e * e - -0.5 - 0.5 * LOG_2PI - Math.log(1 - Math.tanh(u) ** 2);
    };
    const batch: SacBatch = {
      size: n,
      obs: Float32Array.of(0.1, 0.2, -1, 1, 3, 0),
      action: Float32Array.of(1, -2, 0.5),
      reward: Float32Array.of(1, -1, 0.5),
      nextObs: Float32Array.of(0, 0, 1, 1, -2, 2),
      terminated: Uint8Array.of(0, 1, 0),
    };
    // y = r + 0.9 (1 − d)(min(−4, −3) − 0.5 log π(a'|s')); row 1 is terminal.
    const y = [0, 1, 2].map((i) => batch.reward[i] + (batch.terminated[i] ? 0 : 0.9 * (-4 - 0.5 * logPi(epsNext[i]))));
    const expectedCriticLoss = 0.5 * ((1 / n) * y.reduce((s, yi) => s + (1 - yi) ** 2, 0) + (1 / n) * y.reduce((s, yi) => s + (2 - yi) ** 2, 0));
    const expectedEntropy = -(eps.reduce((s, e) => s + logPi(e), 0) / n);
    const stats = agent.update(batch);
    expect(stats.criticLoss).toBeCloseTo(expectedCriticLoss, 4);
    expect(stats.meanQ).toBeCloseTo(1.5, 6);
    expect(stats.alpha).toBeCloseTo(0.5, 7);
    expect(stats.entropy).toBeCloseTo(expectedEntropy, 4);
    agent.dispose();
  });

  it('moves the target critics by Polyak averaging with τ, and α by one Adam step in the right direction', () => {
    const rng = new Rng(8);
    const batch = randomBatch(32, 3, 1, rng);
    for (const [targetEntropy, sign] of [
      [-5, -1],
      [5, 1],
    ] as const) {
      const agent = new SacAgent({ obsDim: 3, actionSpace: space, config: { hidden: [8], tau: 0.1, targetEntropy }, rng: new Rng(9) });
      const before = agent.getState();
      const stats = agent.update(batch);
      const after = agent.getState();
      for (let i = 0; i < after.targetCritic.length; i++) {
        expect(after.targetCritic[i]).toBeCloseTo(0.1 * after.critic[i] + 0.9 * before.targetCritic[i], 6);
      }
      expect(after.critic).not.toEqual(before.critic);
      // The initial policy's entropy (≈ 0.65 nats) is above −5 and below 5: α shrinks for the
      // first and grows for the second, by exactly one Adam step of lr on log α.
      expect(stats.entropy).toBeGreaterThan(-5);
      expect(stats.entropy).toBeLessThan(5);
      expect(after.logAlpha - before.logAlpha).toBeCloseTo(sign * SAC_DEFAULTS.alphaLr, 8);
      agent.dispose();
    }
  });

  it('is deterministic for a seed, resumes exactly from getState, and leaks no tensors', () => {
    const batches = Array.from({ length: 6 }, (_, k) => randomBatch(16, 3, 1, new Rng(100 + k)));
    const config = { hidden: [8, 8] };
    const run = (seed: number, count: number, from?: SacAgent): SacAgent => {
      const agent = new SacAgent({ obsDim: 3, actionSpace: space, config, rng: new Rng(seed) });
      if (from) agent.setState(from.getState());
      for (let k = 0; k < count; k++) agent.update(batches[agent.updates % batches.length]);
      return agent;
    };
    const a = run(1, 6);
    const b = run(1, 6);
    const c = run(2, 6);
    expect(a.getState()).toEqual(b.getState());
    expect(a.getState().actor).not.toEqual(c.getState().actor);
    // Resume: 3 updates, a state round trip into an agent of another seed, 3 more = 6 in one go.
    const half = run(1, 3);
    const resumed = run(3, 3, half);
    expect(resumed.getState()).toEqual(a.getState());
    expect(Array.from(resumed.act(Float64Array.of(0.1, 0.2, 0.3)))).toEqual(Array.from(a.act(Float64Array.of(0.1, 0.2, 0.3))));

    const before = tf.memory().numTensors;
    for (let k = 0; k < 30; k++) {
      a.update(batches[k % batches.length]);
      a.act(Float64Array.of(0, 1, 0), k % 2 === 0);
      a.actBatch(new Float32Array(5 * 3), 5);
    }
    expect(tf.memory().numTensors).toBe(before);
    for (const agent of [a, b, c, half, resumed]) agent.dispose();
    expect(() => a.update(batches[0])).toThrow(/after dispose/);
  });

  it('acts inside the bounds; samples differ from the mean; rejects bad input', () => {
    const agent = new SacAgent({ obsDim: 3, actionSpace: new Box([-2, 0], [2, 10]), config: { hidden: [8] }, rng: new Rng(10) });
    const obs = Float64Array.of(0.5, -0.5, 1);
    const det = Array.from(agent.act(obs));
    expect(Array.from(agent.act(obs))).toEqual(det);
    const samples = agent.actBatch(Float64Array.from({ length: 100 * 3 }, (_, k) => obs[k % 3]), 100);
    let differs = false;
    for (let i = 0; i < 100; i++) {
      expect(samples[2 * i]).toBeGreaterThanOrEqual(-2);
      expect(samples[2 * i]).toBeLessThanOrEqual(2);
      expect(samples[2 * i + 1]).toBeGreaterThanOrEqual(0);
      expect(samples[2 * i + 1]).toBeLessThanOrEqual(10);
      if (Math.abs(samples[2 * i] - det[0]) > 1e-3) differs = true;
    }
    expect(differs).toBe(true);
    expect(Array.from(agent.actBatch(Float64Array.from(obs), 1, true))[0]).toBeCloseTo(det[0], 5);
    expect(() => agent.update({ ...randomBatch(4, 3, 2, new Rng(0)), obs: new Float32Array(5) })).toThrow(/batch.obs: expected at least 12 values/);
    expect(() => new SacAgent({ obsDim: 3, actionSpace: space, config: { lr: 1 } as never, rng: new Rng(0) })).toThrow(/config.lr: unknown key/);
    expect(() => new SacAgent({ obsDim: 3, actionSpace: new Box([-Infinity], [Infinity]), rng: new Rng(0) })).toThrow(/finite action bounds/);
    const wrong = new SacAgent({ obsDim: 3, actionSpace: new Box([-2, 0], [2, 10]), config: { hidden: [4] }, rng: new Rng(10) });
    expect(() => wrong.setState(agent.getState())).toThrow(ValidationError);
    agent.dispose();
    wrong.dispose();
  });
});

describe('makeSacConfig', () => {
  it('has the paper’s defaults, per-task overrides, and rejects bad values', () => {
    const c = makeSacConfig({ env: 'HalfCheetah-v5' });
    expect([c.batchSize, c.gamma, c.tau, c.actorLr, c.criticLr, c.alphaLr, c.hidden, c.initAlpha, c.targetEntropy, c.updatesPerStep]).toEqual([256, 0.99, 0.005, 3e-4, 3e-4, 3e-4, [256, 256], 1, null, 1]);
    expect(c.kind).toBe('sac');
    expect(makeSacConfig(JSON.parse(JSON.stringify(c)))).toEqual(c);
    const p = makeSacConfig();
    expect(p.env).toBe('Pendulum-v1');
    expect(p.hidden).toEqual([64, 64]);
    expect(makeSacConfig({ hidden: [32] }).hidden).toEqual([32]);
    expect(makeSacConfig({ targetEntropy: -3, updatesPerStep: 20 }).targetEntropy).toBe(-3);
    expect(() => makeSacConfig({ tau: 1.5 })).toThrow(/tau: expected a number in \[0, 1\], got 1.5/);
    expect(() => makeSacConfig({ gamma: -0.1 })).toThrow(/gamma/);
    expect(() => makeSacConfig({ updatesPerStep: 0 })).toThrow(/updatesPerStep: expected an integer ≥ 1/);
    expect(() => makeSacConfig({ actorLr: 0 })).toThrow(/actorLr: expected a finite number > 0/);
    expect(() => makeSacConfig({ targetEntropy: Number.NaN })).toThrow(/targetEntropy/);
    expect(() => makeSacConfig({ hidden: [] })).toThrow(/hidden/);
    expect(() => makeSacConfig({ learnAlpha: 'yes' as never })).toThrow(/learnAlpha: expected a boolean/);
    expect(() => makeSacConfig({ kind: 'ppo' as never })).toThrow(/kind: expected 'sac'/);
    expect(() => makeSacConfig({ env: 'NoSuchEnv-v0' })).toThrow(/unknown environment/);
    expect(() => makeSacConfig({ lr: 1 } as never)).toThrow(ValidationError);
  });
});

describe('trainSac', () => {
  it('is deterministic for a seed, keeps the tensor count flat, and stores time-limit ends as not terminal', async () => {
    const run = async (seed: number) => {
      const config = makeSacConfig({ env: 'Pendulum-v1', seed, steps: 400, learningStartSteps: 300, batchSize: 32, hidden: [16, 16], evalEvery: 200, evalEpisodes: 1 });
      const tensors: number[] = [];
      const env = await makeEnv(config.env);
      const result = await trainSac(config, env, { onEpisode: () => void tensors.push(tf.memory().numTensors) });
      const state = result.agent.getState();
      result.agent.dispose();
      return { state, tensors, result };
    };
    const a = await run(1);
    const b = await run(1);
    const c = await run(2);
    expect(a.state).toEqual(b.state);
    expect(a.state.actor).not.toEqual(c.state.actor);
    expect(a.result.history.evaluations.map((e) => e.meanReturn)).toEqual(b.result.history.evaluations.map((e) => e.meanReturn));
    expect(a.tensors[1]).toBe(a.tensors[0]);
    // 400 steps with updates from step 300: 101 gradient steps; 2 episodes, each evaluated.
    expect(a.state.updates).toBe(101);
    expect(a.result.history.episodes.map((e) => e.envSteps)).toEqual([200, 400]);
    expect(a.result.history.evaluations.map((e) => e.envSteps)).toEqual([200, 400]);
    const buf = a.result.buffer;
    const ends = [buf.get(199), buf.get(399)];
    expect(ends.map((t) => [t.truncated, t.terminated])).toEqual([
      [true, false],
      [true, false],
    ]);
  });
});

describe('SAC (learning test)', () => {
  it('swings up and holds Pendulum-v1: mean deterministic return ≥ −400 after 5,000 steps', async () => {
    // Chance fails: without swinging the rod up and holding it, a step near the bottom costs ~π²,
    // and uniform random torques (or the untrained policy's near-zero mean torque) score ≈ −1200
    // over the 200 steps (measured below on the same 5 episodes). −400 over 5 episodes needs a
    // controller that swings up from most starts and balances.
    // Measured with SAC_ENV_OVERRIDES['Pendulum-v1'] (64 × 64, batch 128, lr 1e-3, 1000 random
    // steps), 5000 steps (40–70 s on 2 busy cores): seeds 0/1/2/3 → −99.7/−100.4/−100.4/−100.7;
    // at 4000 steps −325/−136/−135/−108, so 5000 leaves a margin.
    const config = makeSacConfig({ env: 'Pendulum-v1', seed: 0, steps: 5000, evalEvery: 0 });
    const start = performance.now();
    const { agent } = await trainSac(config, await makeEnv(config.env));
    const seconds = (performance.now() - start) / 1000;
    const env = await makeEnv(config.env);
    const EVAL = { episodes: 5, seed: SAC_EVAL_SEED };
    const random = runEpisodes(env, new RandomAgent(env.actionSpace, new Rng(0)), EVAL).mean;
    const untrained = new SacAgent({ obsDim: 3, actionSpace: env.actionSpace, config: { hidden: config.hidden }, rng: new Rng(0) });
    const zero = runEpisodes(env, untrained, EVAL).mean;
    untrained.dispose();
    const stats = runEpisodes(env, agent, EVAL);
    console.log(`SAC Pendulum-v1 5k (${seconds.toFixed(0)} s): eval returns ${stats.returns.map((r) => r.toFixed(1)).join(', ')}; mean ${stats.mean.toFixed(1)} (random ${random.toFixed(1)}, untrained ${zero.toFixed(1)})`);
    expect(Math.max(random, zero)).toBeLessThan(-900);
    expect(stats.mean).toBeGreaterThanOrEqual(-400);
    agent.dispose();
  }, 300_000);
});
