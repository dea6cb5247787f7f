import { describe, expect, it } from 'vitest';
import type { TaskFunctions } from '../../src/core/env.js';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { Pendulum, pendulumTask } from '../../src/envs/pendulum.js';
import { ModelEnv, aggregateParticles, type Propagation } from '../../src/models/modelEnv.js';
import type { EnsemblePredictor, EnsembleSpec } from '../../src/models/types.js';
import { PendulumPredictor } from '../planning/pendulumModel.js';

/**
 * A toy ensemble on 2-D states: member k maps (s, a) to s + b_k + [a, 0], learns reward r_k, and
 * (when probabilistic) reports a constant variance.
 */
class AdditivePredictor implements EnsemblePredictor {
  readonly spec: EnsembleSpec;
  readonly calls: { rowsPerMember: number; rows: number }[] = [];
  constructor(
    readonly biases: number[],
    readonly options: { rewards?: number[]; variance?: number } = {},
  ) {
    this.spec = {
      numMembers: biases.length,
      obsDim: 2,
      actDim: 1,
      hidden: [],
      activation: 'silu',
      probabilistic: options.variance !== undefined,
      learnReward: options.rewards !== undefined,
    };
  }
  predict(obs: Float32Array, act: Float32Array, B: number, outNext: Float32Array, outReward?: Float32Array, outVar?: Float32Array): Promise<void> {
    const rows = obs.length / 2;
    this.calls.push({ rowsPerMember: B, rows });
    const O = 2 + (this.spec.learnReward ? 1 : 0);
    for (let i = 0; i < rows; i++) {
      const k = Math.floor(i / B);
      outNext[2 * i] = obs[2 * i] + this.biases[k] + act[i];
      outNext[2 * i + 1] = obs[2 * i + 1] + this.biases[k];
      if (outReward && this.options.rewards) outReward[i] = this.options.rewards[k];
      if (outVar && this.options.variance !== undefined) for (let d = 0; d < O; d++) outVar[i * O + d] = this.options.variance;
    }
    return Promise.resolve();
  }
  dispose(): void {}
}

/** Reward s'[0] each step; terminal once s'[0] ≥ 3. */
const thresholdTask: TaskFunctions = {
  reward(_obs, _act, next, n, out) {
    for (let i = 0; i < n; i++) out[i] = next[2 * i];
  },
  terminated(_obs, _act, next, n, out) {
    for (let i = 0; i < n; i++) out[i] = next[2 * i] >= 3 ? 1 : 0;
  },
  rewardExact: true,
  terminatedExact: true,
};

/** Random Pendulum observations, one per row. */
function pendulumStates(n: number, rng: Rng): Float32Array {
  const obs = new Float32Array(3 * n);
  for (let r = 0; r < n; r++) {
    const th = rng.uniform(-Math.PI, Math.PI);
    obs.set([Math.cos(th), Math.sin(th), rng.uniform(-1, 1)], 3 * r);
  }
  return obs;
}

/**
 * Steps a biased Pendulum ensemble (member k adds 0.1·k to its next observation) and decodes which
 * member served each row, by comparing with the unbiased prediction from the same input.
 */
async function memberTrace(propagation: Propagation, K: number, n: number, steps: number, seed: number): Promise<{ members: Int32Array; predictor: PendulumPredictor }> {
  const predictor = new PendulumPredictor({ numMembers: K, biases: Array.from({ length: K }, (_, k) => 0.1 * k) });
  const exact = new PendulumPredictor();
  const env = new ModelEnv(predictor, { task: pendulumTask, propagation, rng: new Rng(seed) });
  const rng = new Rng(seed + 100);
  const members = new Int32Array(steps * n);
  const before = new Float32Array(3 * n);
  const act = new Float32Array(n);
  const expected = new Float32Array(3 * n);
  let obs = pendulumStates(n, rng);
  env.reset(obs, n);
  for (let t = 0; t < steps; t++) {
    before.set(obs);
    for (let r = 0; r < n; r++) act[r] = rng.uniform(-2, 2);
    await exact.predict(before, act, n, expected);
    obs = (await env.step(act)).obs;
    for (let r = 0; r < n; r++) {
      const delta = obs[3 * r + 2] - expected[3 * r + 2];
      const k = Math.round(delta / 0.1);
      expect(Math.abs(delta - 0.1 * k)).toBeLessThan(1e-4);
      members[t * n + r] = k;
    }
    // Keep the states bounded: start the next step from fresh random states.
    obs = pendulumStates(n, rng);
    env.reset(obs, n);
  }
  return { members, predictor };
}

describe('ModelEnv propagation', () => {
  it('TS1 draws each row\'s member uniformly every step, in balanced groups of B rows per member', async () => {
    const K = 4;
    const n = 10; // not a multiple of K: padded to 12 slots, B = 3
    const steps = 1200;
    const { members, predictor } = await memberTrace('ts1', K, n, steps, 1);
    // Every call gives the predictor K·B rows, B = ceil(n / K).
    expect(predictor.calls.every((c) => c.rowsPerMember === 3 && c.rows === 12)).toBe(true);
    const counts = Array.from({ length: n }, () => new Array<number>(K).fill(0));
    let changes = 0;
    for (let t = 0; t < steps; t++) {
      const perMember = new Array<number>(K).fill(0);
      for (let r = 0; r < n; r++) {
        const k = members[t * n + r];
        counts[r][k]++;
        perMember[k]++;
        if (t > 0 && k !== members[(t - 1) * n + r]) changes++;
      }
      // Balanced: no member gets more than B = 3 real rows.
      expect(Math.max(...perMember)).toBeLessThanOrEqual(3);
    }
    // Uniform: each (row, member) count is Binomial(1200, 1/4): mean 300, sd 15; allow 5 sd.
    for (const row of counts) for (const c of row) expect(Math.abs(c - 300)).toBeLessThan(75);
    // Redrawn every step: a row changes member with probability 3/4.
    expect(changes / ((steps - 1) * n)).toBeGreaterThan(0.7);
    expect(changes / ((steps - 1) * n)).toBeLessThan(0.8);
  });

  it('TS∞ keeps each particle on one member (row r on member r mod K) for the whole rollout', async () => {
    const K = 3;
    const n = 7;
    const predictor = new PendulumPredictor({ numMembers: K, biases: [0, 0.1, 0.2] });
    const exact = new PendulumPredictor();
    const env = new ModelEnv(predictor, { task: pendulumTask, propagation: 'tsinf', rng: new Rng(0) });
    const rng = new Rng(5);
    let obs = pendulumStates(n, rng);
    env.reset(obs, n);
    const before = new Float32Array(3 * n);
    const expected = new Float32Array(3 * n);
    const act = new Float32Array(n).fill(0.5);
    for (let t = 0; t < 20; t++) {
      before.set(obs);
      await exact.predict(before, act, n, expected);
      obs = (await env.step(act)).obs;
      for (let r = 0; r < n; r++) expect(obs[3 * r] - expected[3 * r]).toBeCloseTo(0.1 * (r % K), 4);
    }
    expect(predictor.calls.every((c) => c.rowsPerMember === 3 && c.rows === 9)).toBe(true);
  });

  it('handles fewer rows than members (padding to one row per member)', async () => {
    const predictor = new AdditivePredictor([0, 10, 20, 30]);
    for (const propagation of ['ts1', 'tsinf'] as const) {
      const env = new ModelEnv(predictor, { task: thresholdTask, propagation, rng: new Rng(2) });
      env.reset([0, 0], 2);
      const { obs } = await env.step(Float32Array.of(0, 0));
      expect([0, 10, 20, 30]).toContain(obs[1]);
      expect([0, 10, 20, 30]).toContain(obs[3]);
      expect(obs[1]).not.toBe(obs[3]); // two rows never share a member when B = 1
    }
    expect(predictor.calls.every((c) => c.rows === 4 && c.rowsPerMember === 1)).toBe(true);
  });

  it('mean propagation runs every member on every row and averages', async () => {
    const predictor = new AdditivePredictor([0, 1, 5], { rewards: [1, 2, 6] });
    const env = new ModelEnv(predictor, { propagation: 'mean', rng: new Rng(0) });
    env.reset([1, -1, 2, 0], 2);
    const { obs, rewards } = await env.step(Float32Array.of(0.5, 0));
    expect(Array.from(obs)).toEqual([1 + 2 + 0.5, -1 + 2, 2 + 2, 0 + 2]);
    expect(Array.from(rewards)).toEqual([3, 3]);
    expect(predictor.calls).toEqual([{ rowsPerMember: 2, rows: 6 }]);
  });

  it('samples next states from the Gaussian when asked, and uses the means otherwise', async () => {
    const n = 20000;
    const predictor = new AdditivePredictor([1], { rewards: [2], variance: 0.25 });
    const sampled = new ModelEnv(predictor, { rng: new Rng(9) });
    expect(sampled.sample).toBe(true); // default for probabilistic members
    sampled.reset([0, 0], n);
    const { obs, rewards } = await sampled.step(new Float32Array(n));
    let m = 0;
    let v = 0;
    let rm = 0;
    for (let r = 0; r < n; r++) {
      m += (obs[2 * r] - 1) / n;
      v += (obs[2 * r] - 1) ** 2 / n;
      rm += (rewards[r] - 2) ** 2 / n;
    }
    expect(Math.abs(m)).toBeLessThan(0.015);
    expect(Math.abs(v - 0.25)).toBeLessThan(0.015);
    expect(Math.abs(rm - 0.25)).toBeLessThan(0.015);

    // Mean propagation samples around the members' mean (biases 0 and 2: 1) with the variance
    // exp(mean log var) = 0.25.
    const averaged = new ModelEnv(new AdditivePredictor([0, 2], { rewards: [2, 2], variance: 0.25 }), { propagation: 'mean', rng: new Rng(9) });
    averaged.reset([0, 0], n);
    const mean = (await averaged.step(new Float32Array(n))).obs;
    let mm = 0;
    let mv = 0;
    for (let r = 0; r < n; r++) {
      mm += (mean[2 * r + 1] - 1) / n;
      mv += (mean[2 * r + 1] - 1) ** 2 / n;
    }
    expect(Math.abs(mm)).toBeLessThan(0.015);
    expect(Math.abs(mv - 0.25)).toBeLessThan(0.015);

    const meanOnly = new ModelEnv(predictor, { rng: new Rng(9), sample: false });
    meanOnly.reset([0, 0], 3);
    expect(Array.from((await meanOnly.step(new Float32Array(3))).obs)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(() => new ModelEnv(new AdditivePredictor([0], { rewards: [0] }), { rng: new Rng(0), sample: true })).toThrow(/sample.*deterministic/);
  });

  it('is deterministic for a seed', async () => {
    const a = await memberTrace('ts1', 3, 6, 30, 4);
    const b = await memberTrace('ts1', 3, 6, 30, 4);
    expect(Array.from(a.members)).toEqual(Array.from(b.members));
    // Sampled next states too, for every propagation.
    for (const propagation of ['ts1', 'tsinf', 'mean'] as const) {
      const rollout = async (seed: number): Promise<number[]> => {
        const env = new ModelEnv(new AdditivePredictor([0, 1, 2], { variance: 0.5 }), { task: thresholdTask, propagation, rng: new Rng(seed) });
        env.reset([0, 0], 7);
        await env.step(new Float32Array(7).fill(0.1));
        return Array.from((await env.step(new Float32Array(7).fill(-0.1))).obs);
      };
      expect(await rollout(6)).toEqual(await rollout(6));
      expect(await rollout(7)).not.toEqual(await rollout(6));
    }
  });
});

describe('ModelEnv rewards and termination', () => {
  it('freezes a row once it terminates: reward 0 and state unchanged afterwards', async () => {
    const env = new ModelEnv(new AdditivePredictor([1]), { task: thresholdTask, rng: new Rng(0) });
    env.reset([0, 0, 1.5, 0], 2);
    const act = new Float32Array(2);
    const trace: { s0: number; s1: number; r: number[]; d: number[] }[] = [];
    for (let t = 0; t < 4; t++) {
      const { obs, rewards, dones } = await env.step(act);
      trace.push({ s0: obs[0], s1: obs[2], r: Array.from(rewards), d: Array.from(dones) });
    }
    // Row 0: 1, 2, 3 (terminal, reward 3 counted), then frozen. Row 1: 2.5, 3.5 (terminal), frozen.
    expect(trace).toEqual([
      { s0: 1, s1: 2.5, r: [1, 2.5], d: [0, 0] },
      { s0: 2, s1: 3.5, r: [2, 3.5], d: [0, 1] },
      { s0: 3, s1: 3.5, r: [3, 0], d: [1, 1] },
      { s0: 3, s1: 3.5, r: [0, 0], d: [1, 1] },
    ]);
  });

  it('uses the learned reward when there is no task, and refuses to run with neither', async () => {
    const learned = new PendulumPredictor({ learnReward: true });
    const env = new ModelEnv(learned, { rng: new Rng(0) });
    const obs = pendulumStates(5, new Rng(1));
    const act = Float32Array.of(-2, -1, 0, 1, 2);
    env.reset(obs, 5);
    const { rewards } = await env.step(act);
    const known = new Float32Array(5);
    pendulumTask.reward(obs, act, obs, 5, known);
    for (let r = 0; r < 5; r++) expect(rewards[r]).toBeCloseTo(known[r], 5);
    // The task's reward wins over a learned one when both exist.
    const both = new ModelEnv(new AdditivePredictor([0], { rewards: [42] }), { task: thresholdTask, rng: new Rng(0) });
    both.reset([7, 0], 1);
    expect((await both.step(new Float32Array(1))).rewards[0]).toBe(7);
    const e = (() => {
      try {
        new ModelEnv(new PendulumPredictor(), { rng: new Rng(0) });
      } catch (err) {
        return err as Error;
      }
      return undefined;
    })();
    expect(e).toBeInstanceOf(ValidationError);
    expect(e?.message).toMatch(/task: no reward available/);
  });
});

describe('ModelEnv.evaluateActionSequences', () => {
  it('matches Pendulum-v1 rollouts with the exact model', async () => {
    const env = new ModelEnv(new PendulumPredictor(), { task: pendulumTask, rng: new Rng(0) });
    const H = 15;
    const rng = new Rng(3);
    const seqs = new Float64Array(4 * H);
    for (let i = 0; i < seqs.length; i++) seqs[i] = rng.uniform(-2, 2);
    const real = new Pendulum();
    const { obs } = real.reset({ seed: 11 });
    const values = await env.evaluateActionSequences(obs, seqs, H, 3);
    for (let c = 0; c < 4; c++) {
      const sim = new Pendulum();
      sim.reset({ seed: 11 });
      let ret = 0;
      for (let t = 0; t < H; t++) ret += sim.step([seqs[c * H + t]]).reward;
      expect(values[c]).toBeCloseTo(ret, 2);
    }
  });

  it('averages particles, or takes the minimum or mean − k·std', async () => {
    // Two members (biases 0 and 1), TS∞ with 2 particles: particle p uses member p.
    // Candidate 0 (actions 0): particle returns 0+0+0 = 0 and 1+2+3 = 6.
    // Candidate 1 (actions 1): particle returns 1+2+3 = 6 and 2+4+6 = 12.
    const seqs = Float64Array.of(0, 0, 0, 1, 1, 1);
    const values = async (objective: ConstructorParameters<typeof ModelEnv>[1]['objective']): Promise<number[]> => {
      const env = new ModelEnv(new AdditivePredictor([0, 1]), { task: { ...thresholdTask, terminated: (_o, _a, _n, n, out) => out.fill(0, 0, n) }, propagation: 'tsinf', rng: new Rng(0), objective });
      return Array.from(await env.evaluateActionSequences([0, 0], seqs, 3, 2));
    };
    expect(await values(undefined)).toEqual([3, 9]);
    expect(await values({ kind: 'min' })).toEqual([0, 6]);
    expect(await values({ kind: 'meanMinusStd', k: 1 })).toEqual([0, 6]);
    expect(Array.from(aggregateParticles([1, NaN, 2, 4], 2, 2, { kind: 'min' }))).toEqual([NaN, 2]);
  });

  it('does not count rewards after termination', async () => {
    // Member bias 1 from 0: s' = 1, 2, 3 (terminal), then frozen: 1 + 2 + 3 + 0 + 0.
    const env = new ModelEnv(new AdditivePredictor([1]), { task: thresholdTask, rng: new Rng(0) });
    expect(Array.from(await env.evaluateActionSequences([0, 0], new Float64Array(5), 5, 2))).toEqual([6]);
  });
});

describe('ModelEnv buffers and checks', () => {
  it('reuses its buffers from step to step (no per-step allocation)', async () => {
    const env = new ModelEnv(new AdditivePredictor([0, 1, 2]), { task: thresholdTask, rng: new Rng(0) });
    env.reset([0, 0], 5);
    const act = new Float32Array(5);
    const r0 = await env.step(act);
    const r1 = await env.step(act);
    const r2 = await env.step(act);
    expect(r2.obs).toBe(r0.obs); // two state buffers, swapped
    expect(r1.obs).not.toBe(r0.obs);
    expect(r1.rewards).toBe(r0.rewards);
    expect(r2.dones).toBe(r0.dones);
    env.reset([0, 0], 5);
    expect((await env.step(act)).rewards).toBe(r0.rewards); // same n: same buffers
  });

  it('validates its inputs and refuses concurrent use', async () => {
    const env = new ModelEnv(new AdditivePredictor([0, 1]), { task: thresholdTask, rng: new Rng(0) });
    await expect(env.step(new Float32Array(1))).rejects.toThrow(/before reset/);
    expect(() => env.reset([0, 0, 0], 2)).toThrow(/initialObs: expected length 2 \(one observation\) or 4/);
    expect(() => env.reset([0, NaN], 2)).toThrow(/initialObs\[1\]: expected a finite number, got NaN/);
    expect(() => env.reset([0, 0], 0)).toThrow(/n: expected an integer ≥ 1, got 0/);
    env.reset([0, 0], 2);
    await expect(env.step(new Float32Array(3))).rejects.toThrow(/actions: expected length 2/);
    await expect(env.evaluateActionSequences([0, 0], new Float64Array(5), 2, 1)).rejects.toThrow(/actionSeqs: expected length/);
    const pending = env.step(new Float32Array(2));
    await expect(env.step(new Float32Array(2))).rejects.toThrow(/another step/);
    await pending;
    expect(() => new ModelEnv(new AdditivePredictor([0]), { task: thresholdTask, rng: new Rng(0), propagation: 'ts2' as never })).toThrow(/propagation.*got "ts2"/);
  });
});
