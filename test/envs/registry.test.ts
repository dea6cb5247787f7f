// Checks that hold for every built-in task: the registry's facts match the instances, seeding is
// deterministic, physics variants behave generically (delay, noise), the batched task functions
// agree row by row, and VecEnv's autoreset.
import { describe, expect, it } from 'vitest';
import { RandomAgent } from '../../src/core/agent.js';
import type { Env } from '../../src/core/env.js';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { MjcfNotFoundError, resolveMjcf } from '../../src/envs/mujocoRuntime.js';
import { ENV_IDS, ENV_SPECS, envSpec, makeEnv } from '../../src/envs/registry.js';
import { VecEnv } from '../../src/envs/vecEnv.js';
import { HAVE_MJCF } from '../helpers.js';

const available = ENV_SPECS.filter((s) => s.kind === 'classic' || HAVE_MJCF);

/** Runs `steps` random steps (resetting on episode end) and records everything observable. */
function trajectory(env: Env, seed: number, steps: number, actions?: Float64Array[]): { obs: number[]; rewards: number[]; done: number[] } {
  const agent = new RandomAgent(env.actionSpace, new Rng(seed + 1000));
  const obs: number[] = [...env.reset({ seed }).obs];
  const rewards: number[] = [];
  const done: number[] = [];
  for (let t = 0; t < steps; t++) {
    const a = actions ? actions[t] : agent.act();
    const s = env.step(a);
    obs.push(...s.obs);
    rewards.push(s.reward);
    done.push(s.terminated ? 1 : s.truncated ? 2 : 0);
    if (s.terminated || s.truncated) obs.push(...env.reset().obs);
  }
  return { obs, rewards, done };
}

describe('registry', () => {
  it('lists the ten built-in tasks with unique ids', () => {
    expect(ENV_IDS).toEqual([
      'Pendulum-v1',
      'MountainCarContinuous-v0',
      'PointGoal2D',
      'InvertedPendulum-v5',
      'HalfCheetah-v5',
      'Hopper-v5',
      'Walker2d-v5',
      'Swimmer-v5',
      'Reacher-v5',
      'Ant-v5',
    ]);
  });

  it('rejects an unknown id with the list of known ones', () => {
    expect(() => envSpec('Pendulum-v0')).toThrow(/unknown environment "Pendulum-v0"; expected one of Pendulum-v1/);
  });

  it('reports a missing MJCF file with every path tried, in order', async () => {
    expect(() => resolveMjcf('half_cheetah.xml', { mjcfPath: '/no/a.xml', mjcfDir: '/no/dir' }, { MBRL_MJCF_DIR: '/no/env' })).toThrow(
      /half_cheetah\.xml not found\. Tried:\n {2}- \/no\/a\.xml\n {2}- \/no\/dir\/half_cheetah\.xml\n {2}- \/no\/env\/half_cheetah\.xml\n.*MBRL_MJCF_DIR/,
    );
    const saved = process.env.MBRL_MJCF_DIR;
    delete process.env.MBRL_MJCF_DIR;
    try {
      await expect(makeEnv('HalfCheetah-v5', { mjcfDir: '/nonexistent/mjcf' })).rejects.toThrow(MjcfNotFoundError);
    } finally {
      if (saved !== undefined) process.env.MBRL_MJCF_DIR = saved;
    }
  });

  it.skipIf(!HAVE_MJCF)('falls back from a config directory without the file to MBRL_MJCF_DIR', () => {
    expect(resolveMjcf('hopper.xml', { mjcfDir: '/nonexistent' })).toMatch(/hopper\.xml$/);
  });
});

describe.each(available.map((s) => [s.id, s] as const))('%s', (id, spec) => {
  it('matches its registry facts', async () => {
    const env = await makeEnv(id);
    try {
      expect(env.id).toBe(id);
      expect(env.observationSpace.dim).toBe(spec.obsDim);
      expect(env.actionSpace.dim).toBe(spec.actDim);
      expect(Array.from(env.actionSpace.low)).toEqual(spec.actLow);
      expect(Array.from(env.actionSpace.high)).toEqual(spec.actHigh);
      expect(env.dt).toBeCloseTo(spec.dt, 12);
      expect(env.maxEpisodeSteps).toBe(spec.maxEpisodeSteps);
      if (env.obsNames) expect(env.obsNames).toHaveLength(spec.obsDim);
      const { obs } = env.reset({ seed: 3 });
      expect(obs).toHaveLength(spec.obsDim);
    } finally {
      env.close();
    }
  });

  it('gives the same trajectory for the same seed, twice, and another for another seed', async () => {
    const [a, b, c] = [await makeEnv(id), await makeEnv(id), await makeEnv(id)];
    try {
      const ta = trajectory(a, 7, 300);
      const tb = trajectory(b, 7, 300);
      expect(tb).toEqual(ta);
      const tc = trajectory(c, 8, 300);
      expect(tc.obs).not.toEqual(ta.obs);
    } finally {
      for (const e of [a, b, c]) e.close();
    }
  });

  it('nominal physics given explicitly equals the default', async () => {
    const a = await makeEnv(id);
    const b = await makeEnv(id, { physics: { massScale: 1, frictionScale: 1, actuatorGain: 1, obsNoiseStd: 0, actionDelaySteps: 0 } });
    try {
      expect(trajectory(b, 2, 100)).toEqual(trajectory(a, 2, 100));
    } finally {
      a.close();
      b.close();
    }
  });

  it('with one step of action delay, moves as the nominal system under actions shifted by one step', async () => {
    const nominal = await makeEnv(id, { maxEpisodeSteps: 10_000 });
    const delayed = await makeEnv(id, { maxEpisodeSteps: 10_000, physics: { actionDelaySteps: 1 } });
    try {
      const rng = new Rng(5);
      const space = nominal.actionSpace;
      const actions = Array.from({ length: 40 }, () => space.sample(rng, new Float64Array(space.dim)));
      const shifted = [new Float64Array(space.dim), ...actions.slice(0, -1)];
      // Compare while both episodes run (a terminating task stops at its first termination).
      nominal.reset({ seed: 11 });
      delayed.reset({ seed: 11 });
      for (let t = 0; t < actions.length; t++) {
        const sn = nominal.step(shifted[t]);
        const sd = delayed.step(actions[t]);
        expect(Array.from(sd.obs)).toEqual(Array.from(sn.obs));
        expect(sd.terminated).toBe(sn.terminated);
        if (sn.terminated) break;
      }
    } finally {
      nominal.close();
      delayed.close();
    }
  });

  it('observation noise perturbs observations but not the reset state', async () => {
    const clean = await makeEnv(id);
    const noisy = await makeEnv(id, { physics: { obsNoiseStd: 0.05 } });
    try {
      const o1 = clean.reset({ seed: 4 }).obs;
      const o2 = noisy.reset({ seed: 4 }).obs;
      const diffs = Array.from(o1, (v, i) => o2[i] - v);
      expect(diffs.some((d) => d !== 0)).toBe(true);
      // The noise is N(0, 0.05²) per entry: no entry should be off by more than 6σ.
      for (const d of diffs) expect(Math.abs(d)).toBeLessThan(0.3);
    } finally {
      clean.close();
      noisy.close();
    }
  });

  it('batched task functions agree with row-by-row calls', async () => {
    const env = await makeEnv(id);
    try {
      const rng = new Rng(9);
      const agent = new RandomAgent(env.actionSpace, rng);
      const n = 5;
      const od = env.observationSpace.dim;
      const ad = env.actionSpace.dim;
      const obs = new Float64Array(n * od);
      const act = new Float64Array(n * ad);
      const next = new Float64Array(n * od);
      let o = env.reset({ seed: 1 }).obs;
      for (let i = 0; i < n; i++) {
        const a = agent.act();
        const s = env.step(a);
        obs.set(o, i * od);
        act.set(a, i * ad);
        next.set(s.obs, i * od);
        o = s.terminated || s.truncated ? env.reset().obs : s.obs;
      }
      const rBatch = new Float64Array(n);
      const dBatch = new Uint8Array(n);
      spec.task.reward(obs, act, next, n, rBatch);
      spec.task.terminated(obs, act, next, n, dBatch);
      for (let i = 0; i < n; i++) {
        const r = new Float64Array(1);
        const d = new Uint8Array(1);
        const row = (x: Float64Array, dim: number): Float64Array => x.subarray(i * dim, (i + 1) * dim);
        spec.task.reward(row(obs, od), row(act, ad), row(next, od), 1, r);
        spec.task.terminated(row(obs, od), row(act, ad), row(next, od), 1, d);
        expect(r[0]).toBe(rBatch[i]);
        expect(d[0]).toBe(dBatch[i]);
        expect(Number.isFinite(r[0])).toBe(true);
      }
    } finally {
      env.close();
    }
  });

  it('rejects bad actions without stepping', async () => {
    const env = await makeEnv(id);
    try {
      env.reset({ seed: 0 });
      const zero = new Float64Array(env.actionSpace.dim);
      const bad = Float64Array.from(zero);
      bad[bad.length - 1] = Number.NaN;
      expect(() => env.step(bad)).toThrow(ValidationError);
      expect(() => env.step(bad)).toThrow(new RegExp(`action\\[${bad.length - 1}\\]: expected a finite number, got NaN`));
      expect(() => env.step(new Float64Array(env.actionSpace.dim + 1))).toThrow(/action: expected length/);
      const ref = await makeEnv(id);
      try {
        ref.reset({ seed: 0 });
        expect(Array.from(env.step(zero).obs)).toEqual(Array.from(ref.step(zero).obs));
      } finally {
        ref.close();
      }
    } finally {
      env.close();
    }
  });
});

describe('VecEnv', () => {
  it('steps copies in lockstep, seeds copy i with seed + i, and autoresets', async () => {
    const vec = await VecEnv.make('Pendulum-v1', 3, { maxEpisodeSteps: 5 });
    const single = await makeEnv('Pendulum-v1', { maxEpisodeSteps: 5 });
    try {
      const obs = vec.reset({ seed: 10 });
      expect(Array.from(obs.subarray(3, 6))).toEqual(Array.from(single.reset({ seed: 11 }).obs));
      const actions = Float64Array.of(0.5, -1, 2);
      let r = vec.step(actions);
      let s = single.step([-1]);
      expect(Array.from(r.obs.subarray(3, 6))).toEqual(Array.from(s.obs));
      expect(r.rewards[1]).toBe(s.reward);
      for (let t = 1; t < 5; t++) {
        r = vec.step(actions);
        s = single.step([-1]);
      }
      expect(Array.from(r.truncated)).toEqual([1, 1, 1]);
      expect(Array.from(r.finalObs[1] ?? [])).toEqual(Array.from(s.obs));
      expect(Array.from(r.obs.subarray(3, 6))).toEqual(Array.from(single.reset().obs));
    } finally {
      vec.close();
      single.close();
    }
  });

  it('rejects a bad action row before stepping any copy', async () => {
    const vec = await VecEnv.make('Pendulum-v1', 2);
    try {
      vec.reset({ seed: 0 });
      expect(() => vec.step([0, Number.POSITIVE_INFINITY])).toThrow(/VecEnv\.step: actions\[1\]: expected a finite number, got Infinity/);
      expect(() => vec.step([0])).toThrow(/expected length 2, got length 1/);
      expect((vec.envs[0] as unknown as { elapsedSteps: number }).elapsedSteps).toBe(0);
    } finally {
      vec.close();
    }
  });
});
