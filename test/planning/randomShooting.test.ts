import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { Box } from '../../src/core/spaces.js';
import { pendulumTask } from '../../src/envs/pendulum.js';
import { ModelEnv } from '../../src/models/modelEnv.js';
import {
  RANDOM_SHOOTING_DEFAULTS,
  RandomShootingOptimizer,
  argmaxFinite,
  makeRandomShootingConfig,
  sampleUniformSequences,
} from '../../src/planning/randomShooting.js';
import { TrajectoryOptimizerAgent, createModelPlanningAgent, makeTrajectoryOptimizer } from '../../src/planning/trajectoryOptimizerAgent.js';
import { PendulumPredictor, mean, randomPendulumReturns, runPendulum } from './pendulumModel.js';

describe('random shooting pieces', () => {
  it('samples uniformly inside per-dimension bounds', () => {
    const out = new Float64Array(4000 * 2);
    sampleUniformSequences({ low: [-1, 10], high: [1, 12] }, 4000, new Rng(0), out);
    let m0 = 0;
    let m1 = 0;
    let inside = true;
    for (let i = 0; i < 4000; i++) {
      inside &&= out[2 * i] >= -1 && out[2 * i] < 1 && out[2 * i + 1] >= 10 && out[2 * i + 1] < 12;
      m0 += out[2 * i] / 4000;
      m1 += out[2 * i + 1] / 4000;
    }
    expect(inside).toBe(true);
    expect(Math.abs(m0)).toBeLessThan(0.05);
    expect(Math.abs(m1 - 11)).toBeLessThan(0.05);
  });

  it('picks the best finite value, the first on ties', () => {
    expect(argmaxFinite([1, NaN, 3, 3, Infinity])).toBe(2);
    expect(argmaxFinite([NaN, -Infinity])).toBe(-1);
  });

  it('returns the best sampled sequence, or the mid-point when everything diverges', async () => {
    const rs = new RandomShootingOptimizer(makeRandomShootingConfig({ horizon: 2, populationSize: 5 }), new Box([-1], [1]), new Rng(4));
    let seen = new Float64Array(0);
    const plan = await rs.optimize((seqs, n) => {
      seen = seqs.slice();
      return Promise.resolve(Float64Array.from({ length: n }, (_, i) => (i === 3 ? 10 : i)));
    });
    expect(Array.from(plan)).toEqual([seen[6], seen[7]]);
    const rs2 = new RandomShootingOptimizer(makeRandomShootingConfig({ horizon: 2, populationSize: 5 }), new Box([0], [1]), new Rng(4));
    expect(Array.from(await rs2.optimize((_s, n) => Promise.resolve(new Float64Array(n).fill(NaN))))).toEqual([0.5, 0.5]);
  });
});

describe('makeRandomShootingConfig', () => {
  it('validates and names the key', () => {
    expect(makeRandomShootingConfig()).toEqual(RANDOM_SHOOTING_DEFAULTS);
    expect(() => makeRandomShootingConfig({ populationSize: 0 })).toThrow(ValidationError);
    expect(() => makeRandomShootingConfig({ populationSize: 0 })).toThrow(/populationSize.*integer ≥ 1.*got 0/);
    expect(() => makeTrajectoryOptimizer({ kind: 'ilqr' } as never, new Box([-1], [1]), new Rng(0))).toThrow(/kind.*'cem', 'mppi' or 'randomShooting'.*"ilqr"/);
  });
});

describe('TrajectoryOptimizerAgent', () => {
  it('re-plans every k steps, executing the first k actions of each plan', async () => {
    const rs = new RandomShootingOptimizer(makeRandomShootingConfig({ horizon: 4, populationSize: 3 }), new Box([-1], [1]), new Rng(0));
    let calls = 0;
    let lastBest = new Float64Array(0);
    const agent = new TrajectoryOptimizerAgent(
      rs,
      (_obs, seqs, n, h) => {
        calls++;
        expect(h).toBe(4);
        lastBest = seqs.slice(0, 4);
        return Promise.resolve(Float64Array.from({ length: n }, (_, i) => (i === 0 ? 1 : 0)));
      },
      { replanEvery: 2 },
    );
    const obs = Float64Array.of(0);
    const a0 = (await agent.actAsync(obs))[0];
    expect(a0).toBe(lastBest[0]);
    expect((await agent.actAsync(obs))[0]).toBe(lastBest[1]);
    expect(calls).toBe(1);
    await agent.actAsync(obs);
    expect(calls).toBe(2);
    agent.reset();
    await agent.actAsync(obs);
    expect(calls).toBe(3);
    expect(() => new TrajectoryOptimizerAgent(rs, () => Promise.resolve(new Float64Array(3)), { replanEvery: 5 })).toThrow(/replanEvery.*\[1, 4\].*got 5/);
  });

  it('refuses a second actAsync while the first is planning', async () => {
    const rs = new RandomShootingOptimizer(makeRandomShootingConfig({ horizon: 2, populationSize: 2 }), new Box([-1], [1]), new Rng(0));
    const agent = new TrajectoryOptimizerAgent(rs, (_o, _s, n) => new Promise((r) => setTimeout(() => r(new Float64Array(n)), 5)));
    const first = agent.actAsync(Float64Array.of(0));
    await expect(agent.actAsync(Float64Array.of(0))).rejects.toThrow(/still planning/);
    await first;
  });
});

describe('random shooting on Pendulum-v1 with the exact model', () => {
  const config = makeRandomShootingConfig({ horizon: 20, populationSize: 500 });

  function makeAgent(seed: number): TrajectoryOptimizerAgent {
    const rng = new Rng(seed);
    const modelEnv = new ModelEnv(new PendulumPredictor(), { task: pendulumTask, rng: rng.fork() });
    return createModelPlanningAgent(modelEnv, config, new Box([-2], [2]), { rng: rng.fork(), particles: 1 });
  }

  it('is deterministic: the same seed gives the same actions', async () => {
    const obs = Float64Array.of(-1, 0, 0.3);
    const run = async (): Promise<number[]> => {
      const agent = makeAgent(5);
      const actions: number[] = [];
      for (let i = 0; i < 4; i++) actions.push((await agent.actAsync(obs))[0]);
      return actions;
    };
    expect(await run()).toEqual(await run());
  });

  it('beats random actions by a wide margin', async () => {
    // Random torques score about −1200 and never hold the pole up.
    const seeds = [0, 1];
    const returns = await runPendulum(makeAgent(0), seeds);
    const random = await randomPendulumReturns(seeds);
    console.log(`Random shooting Pendulum-v1 returns ${returns.map((r) => r.toFixed(1)).join(', ')} (mean ${mean(returns).toFixed(1)}); random ${mean(random).toFixed(1)}`);
    expect(mean(returns)).toBeGreaterThan(mean(random) + 500);
  });
});
