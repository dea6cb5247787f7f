import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { Box } from '../../src/core/spaces.js';
import { pendulumTask } from '../../src/envs/pendulum.js';
import { ModelEnv } from '../../src/models/modelEnv.js';
import {
  CEM_DEFAULTS,
  CemOptimizer,
  cemUpdate,
  constrainedVariance,
  makeCemConfig,
  sampleTruncatedNormal,
  truncatedStandardNormal,
} from '../../src/planning/cem.js';
import { shiftPlan } from '../../src/planning/planningAgent.js';
import { createModelPlanningAgent, type TrajectoryOptimizerAgent } from '../../src/planning/trajectoryOptimizerAgent.js';
import { PendulumPredictor, mean, randomPendulumReturns, runPendulum } from './pendulumModel.js';

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw, got none');
}

describe('cemUpdate', () => {
  it('computes one elite update by hand (5 samples of a 2-step 1-D plan, 2 elites, α = 0.1)', () => {
    const samples = [0, 1, /**/ 1, 0, /**/ 2, 2, /**/ -1, 1, /**/ 0.5, -0.5];
    const returns = [1, 5, 3, -2, 4];
    // Elites: sample 1 (return 5) = [1, 0] and sample 4 (return 4) = [0.5, −0.5].
    // Elite mean [0.75, −0.25]; elite (population) variance [0.0625, 0.0625].
    // mean = 0.1·[0.2, −0.4] + 0.9·[0.75, −0.25] = [0.695, −0.265]
    // var  = 0.1·[1, 0.5]    + 0.9·[0.0625, 0.0625] = [0.15625, 0.10625]
    const u = cemUpdate(samples, returns, 2, 0.1, [0.2, -0.4], [1, 0.5]);
    expect(Array.from(u.eliteIndices)).toEqual([1, 4]);
    expect(u.mean[0]).toBeCloseTo(0.695, 14);
    expect(u.mean[1]).toBeCloseTo(-0.265, 14);
    expect(u.var[0]).toBeCloseTo(0.15625, 14);
    expect(u.var[1]).toBeCloseTo(0.10625, 14);
  });

  it('never picks a NaN or infinite return as an elite, and keeps the previous distribution when none is finite', () => {
    const samples = [9, 9, /**/ 1, 0, /**/ 7, 7, /**/ 0.5, -0.5];
    const u = cemUpdate(samples, [NaN, 5, Infinity, 4], 2, 0, [0, 0], [1, 1]);
    expect(Array.from(u.eliteIndices)).toEqual([1, 3]);
    expect(Array.from(u.mean)).toEqual([0.75, -0.25]);
    const none = cemUpdate(samples, [NaN, NaN, -Infinity, NaN], 2, 0.1, [0.3, 0.4], [1, 2]);
    expect(none.eliteIndices.length).toBe(0);
    expect(Array.from(none.mean)).toEqual([0.3, 0.4]);
    expect(Array.from(none.var)).toEqual([1, 2]);
  });
});

describe('truncated-normal sampling', () => {
  it('constrains the variance so that mean ± 2σ stays inside the bounds', () => {
    // mean 1.5 in [−2, 2]: (2 − 1.5)/2 = 0.25 → 0.0625; mean 0: min(var 0.5, 1, 1) = 0.5.
    const v = constrainedVariance([1.5, 0, -2], [1, 0.5, 1], [-2, -2, -2], [2, 2, 2]);
    expect(Array.from(v)).toEqual([0.0625, 0.5, 0]);
  });

  it('keeps every sample inside the bounds and within 2σ, with the truncated normal\'s mean and spread', () => {
    const rng = new Rng(3);
    const mu = [1.5, 0, -1.9, 2];
    const n = 20000;
    const out = sampleTruncatedNormal(mu, [1, 1, 1, 1], [-2, -2, -2, -2], [2, 2, 2, 2], n, rng);
    const std = Array.from(constrainedVariance(mu, [1, 1, 1, 1], [-2, -2, -2, -2], [2, 2, 2, 2]), Math.sqrt);
    let outside = 0;
    for (let i = 0; i < n; i++) {
      for (let d = 0; d < 4; d++) {
        const x = out[i * 4 + d];
        if (!(x >= -2 && x <= 2) || Math.abs(x - mu[d]) > 2 * std[d] + 1e-12) outside++;
      }
    }
    expect(outside).toBe(0);
    // Dimension 1 (σ = 1, mean 0): N(0,1) truncated at ±2 has variance 1 − 4φ(2)/(2Φ(2) − 1) = 0.7737.
    let s = 0;
    let ss = 0;
    for (let i = 0; i < n; i++) {
      s += out[i * 4 + 1];
      ss += out[i * 4 + 1] ** 2;
    }
    expect(Math.abs(s / n)).toBeLessThan(0.03);
    expect(ss / n).toBeGreaterThan(0.7737 - 0.03);
    expect(ss / n).toBeLessThan(0.7737 + 0.03);
    // A mean on the bound has no room: every sample equals it.
    expect(Array.from({ length: n }, (_, i) => out[i * 4 + 3]).every((x) => x === 2)).toBe(true);
    const z = truncatedStandardNormal(rng);
    expect(Math.abs(z)).toBeLessThanOrEqual(2);
  });
});

describe('warm start', () => {
  it('shifts the previous plan and appends the mid-point', () => {
    // 3 steps of a 2-D action, bounds [−1, 3] × [0, 2] → mid-point [1, 1].
    const mid = [1, 1, 1, 1, 1, 1];
    expect(Array.from(shiftPlan([1, 2, 3, 4, 5, 6], 2, 1, mid))).toEqual([3, 4, 5, 6, 1, 1]);
    expect(Array.from(shiftPlan([1, 2, 3, 4, 5, 6], 2, 2, mid))).toEqual([5, 6, 1, 1, 1, 1]);
    expect(Array.from(shiftPlan([1, 2, 3, 4, 5, 6], 2, 1, 'repeatLast'))).toEqual([3, 4, 5, 6, 5, 6]);
    const inPlace = Float64Array.of(1, 2, 3);
    shiftPlan(inPlace, 1, 1, [0, 0, 0], inPlace);
    expect(Array.from(inPlace)).toEqual([2, 3, 0]);
  });

  it('starts the next optimization from the shifted plan', async () => {
    const cem = new CemOptimizer(makeCemConfig({ horizon: 3, populationSize: 10, numElites: 2, numIterations: 1 }), new Box([-1], [3]), new Rng(0));
    const means: number[][] = [];
    // An objective that records the sample mean of each population (≈ the warm start).
    const objective = (seqs: Float64Array, n: number): Promise<Float64Array> => {
      const m = [0, 0, 0];
      for (let i = 0; i < n; i++) for (let t = 0; t < 3; t++) m[t] += seqs[i * 3 + t] / n;
      means.push(m);
      const v = new Float64Array(n);
      for (let i = 0; i < n; i++) v[i] = -((seqs[i * 3] - 3) ** 2 + (seqs[i * 3 + 1] - 3) ** 2 + (seqs[i * 3 + 2] - 3) ** 2);
      return Promise.resolve(v);
    };
    const plan = Float64Array.from(await cem.optimize(objective));
    cem.advance(1);
    await cem.optimize(objective);
    expect(means[0].every((m) => Math.abs(m - 1) < 1)).toBe(true);
    // Sampling is centred on [plan[1], plan[2], mid]; variance is reset to (ub − lb)²/16 = 1.
    expect(Math.abs(means[1][0] - plan[1])).toBeLessThan(0.8);
    expect(Math.abs(means[1][2] - 1)).toBeLessThan(0.8);
  });
});

describe('makeCemConfig', () => {
  it('returns the defaults, PETS values', () => {
    expect(makeCemConfig()).toEqual({ kind: 'cem', horizon: 30, populationSize: 400, numElites: 40, numIterations: 5, alpha: 0.1, returnMeanElites: true });
    expect(makeCemConfig()).toEqual(CEM_DEFAULTS);
    expect(JSON.parse(JSON.stringify(makeCemConfig({ horizon: 12 })))).toEqual(makeCemConfig({ horizon: 12 }));
  });

  it('names the key, the value and the expectation', () => {
    const e1 = thrown(() => makeCemConfig({ numElites: 500 }));
    expect(e1).toBeInstanceOf(ValidationError);
    expect(e1.message).toContain('numElites');
    expect(e1.message).toContain('500');
    expect(e1.message).toContain('[1, 400]');
    const e2 = thrown(() => makeCemConfig({ alpha: 1 }));
    expect(e2.message).toMatch(/alpha.*\[0, 1\).*got 1/);
    const e3 = thrown(() => makeCemConfig({ horizon: 2.5 }));
    expect(e3.message).toMatch(/horizon.*integer ≥ 1.*got 2\.5/);
    const e4 = thrown(() => makeCemConfig({ popSize: 3 } as never));
    expect(e4.message).toMatch(/popSize: unknown key; expected one of kind, horizon, populationSize/);
    expect(thrown(() => makeCemConfig({ kind: 'mppi' } as never)).message).toMatch(/kind.*"cem".*"mppi"/);
  });
});

describe('CemOptimizer', () => {
  it('finds the maximum of a quadratic inside the bounds, and clips a target outside them', async () => {
    const cem = new CemOptimizer(makeCemConfig({ horizon: 4, populationSize: 300, numElites: 30, numIterations: 10 }), new Box([-1], [1]), new Rng(1));
    const target = [0.3, -0.6, 0.9, 1.7];
    const plan = await cem.optimize((seqs, n) => {
      const v = new Float64Array(n);
      for (let i = 0; i < n; i++) for (let t = 0; t < 4; t++) v[i] -= (seqs[i * 4 + t] - target[t]) ** 2;
      return Promise.resolve(v);
    });
    expect(plan[0]).toBeCloseTo(0.3, 1);
    expect(plan[1]).toBeCloseTo(-0.6, 1);
    expect(plan[2]).toBeCloseTo(0.9, 1);
    expect(plan[3]).toBeGreaterThan(0.9);
    expect(plan[3]).toBeLessThanOrEqual(1);
  });

  it('falls back to the mid-point when every value is NaN, and rejects a wrong-length answer', async () => {
    const cem = new CemOptimizer(makeCemConfig({ horizon: 3, populationSize: 20, numElites: 4 }), new Box([0], [4]), new Rng(1));
    const plan = await cem.optimize((_s, n) => Promise.resolve(new Float64Array(n).fill(NaN)));
    expect(Array.from(plan)).toEqual([2, 2, 2]);
    await expect(cem.optimize(() => Promise.resolve(new Float64Array(3)))).rejects.toThrow(/expected 20 values/);
  });

  it('rejects unbounded action spaces', () => {
    expect(() => new CemOptimizer(makeCemConfig(), new Box([-Infinity], [1]), new Rng(0))).toThrow(/finite action bounds/);
  });
});

describe('CEM on Pendulum-v1 with the exact model', () => {
  const config = makeCemConfig({ horizon: 20, populationSize: 200, numElites: 20, numIterations: 4 });

  function makeAgent(seed: number): TrajectoryOptimizerAgent {
    const rng = new Rng(seed);
    const modelEnv = new ModelEnv(new PendulumPredictor(), { task: pendulumTask, propagation: 'ts1', rng: rng.fork() });
    return createModelPlanningAgent(modelEnv, config, new Box([-2], [2]), { rng: rng.fork(), particles: 1 });
  }

  it('is deterministic: the same seed gives the same actions', async () => {
    const obs = Float64Array.of(-1, 0, 0.3); // hanging down
    const run = async (): Promise<number[]> => {
      const agent = makeAgent(7);
      const actions: number[] = [];
      for (let i = 0; i < 5; i++) actions.push((await agent.actAsync(obs))[0]);
      return actions;
    };
    const a = await run();
    expect(await run()).toEqual(a);
    const other = makeAgent(8);
    expect((await other.actAsync(obs))[0]).not.toBe(a[0]);
  });

  it('swings the pendulum up: mean return over 3 seeded episodes ≥ −300', async () => {
    // Uniform random torques score about −1200 on Pendulum-v1 and never hold the pole up; −300
    // needs a swing-up within a few seconds and balancing for the rest of the 200 steps.
    const seeds = [0, 1, 2];
    const returns = await runPendulum(makeAgent(0), seeds);
    const random = await randomPendulumReturns(seeds);
    console.log(`CEM Pendulum-v1 returns ${returns.map((r) => r.toFixed(1)).join(', ')} (mean ${mean(returns).toFixed(1)}); random ${mean(random).toFixed(1)}`);
    expect(mean(returns)).toBeGreaterThanOrEqual(-300);
    expect(mean(random)).toBeLessThan(-800);
  });
});
