import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { Box } from '../../src/core/spaces.js';
import { pendulumTask } from '../../src/envs/pendulum.js';
import { ModelEnv } from '../../src/models/modelEnv.js';
import { MPPI_DEFAULTS, MppiOptimizer, makeMppiConfig, mppiWeights, sampleSmoothedSequences, weightedMean } from '../../src/planning/mppi.js';
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

describe('mppiWeights', () => {
  it('computes the weights of 3 samples by hand', () => {
    // R = [−1, −2, −4], λ = 1: exp(R − max R) = [1, e⁻¹, e⁻³], normalised by their sum.
    const z = 1 + Math.exp(-1) + Math.exp(-3);
    const w = mppiWeights([-1, -2, -4], 1) as Float64Array;
    expect(w[0]).toBeCloseTo(1 / z, 15);
    expect(w[1]).toBeCloseTo(Math.exp(-1) / z, 15);
    expect(w[2]).toBeCloseTo(Math.exp(-3) / z, 15);
    // λ = 2 halves the exponents: [1, e^−0.5, e^−1.5].
    const z2 = 1 + Math.exp(-0.5) + Math.exp(-1.5);
    const w2 = mppiWeights([-1, -2, -4], 2) as Float64Array;
    expect(w2[1]).toBeCloseTo(Math.exp(-0.5) / z2, 15);
    // Shifting every return by a constant changes nothing; huge returns do not overflow.
    const w3 = mppiWeights([1e6 - 1, 1e6 - 2, 1e6 - 4], 1) as Float64Array;
    expect(w3[2]).toBeCloseTo(Math.exp(-3) / z, 12);
  });

  it('gives diverged samples weight 0, and no weights when nothing is finite', () => {
    const w = mppiWeights([NaN, -2, Infinity], 1) as Float64Array;
    expect(Array.from(w)).toEqual([0, 1, 0]);
    expect(mppiWeights([NaN, -Infinity], 1)).toBeUndefined();
  });

  it('updates the plan to the weighted mean of the samples', () => {
    // 3 samples of a 2-step 1-D plan with the weights above.
    const samples = [1, 0, /**/ 0, 1, /**/ -1, -1];
    const w = mppiWeights([-1, -2, -4], 1) as Float64Array;
    const z = 1 + Math.exp(-1) + Math.exp(-3);
    const m = weightedMean(samples, w, 2);
    expect(m[0]).toBeCloseTo((1 - Math.exp(-3)) / z, 15);
    expect(m[1]).toBeCloseTo((Math.exp(-1) - Math.exp(-3)) / z, 15);
  });
});

describe('sampleSmoothedSequences', () => {
  it('applies the β filter from the last executed action and clips to the bounds', () => {
    // σ = 0: u_0 = β·μ_0 + (1 − β)·u_prev, u_t = β·μ_t + (1 − β)·u_{t−1}.
    const out = new Float64Array(3);
    sampleSmoothedSequences([1, 1, 1], [0, 0, 0], [-1], 0.5, { low: [-2, -2, -2], high: [2, 2, 2] }, 1, new Rng(0), out);
    expect(Array.from(out)).toEqual([0, 0.5, 0.75]);
    // With noise, every sample stays inside the bounds.
    const many = new Float64Array(500 * 3);
    sampleSmoothedSequences([1.9, -1.9, 0], [4, 4, 4], [2], 0.9, { low: [-2, -2, -2], high: [2, 2, 2] }, 500, new Rng(1), many);
    expect(many.every((x) => x >= -2 && x <= 2)).toBe(true);
  });
});

describe('makeMppiConfig', () => {
  it("returns mbrl-lib's values", () => {
    expect(makeMppiConfig()).toEqual(MPPI_DEFAULTS);
    expect(makeMppiConfig()).toEqual({ kind: 'mppi', horizon: 30, populationSize: 350, numIterations: 5, temperature: 1 / 0.9, sigma: 1, beta: 0.9 });
  });

  it('names the key, the value and the expectation', () => {
    const e = thrown(() => makeMppiConfig({ temperature: 0 }));
    expect(e).toBeInstanceOf(ValidationError);
    expect(e.message).toMatch(/temperature.*\(0, ∞\).*got 0/);
    expect(thrown(() => makeMppiConfig({ beta: 1.5 })).message).toMatch(/beta.*\(0, 1\].*got 1\.5/);
    expect(thrown(() => makeMppiConfig({ sigma: NaN })).message).toMatch(/sigma.*got NaN/);
    expect(thrown(() => makeMppiConfig({ gamma: 0.9 } as never)).message).toMatch(/gamma: unknown key/);
  });
});

describe('MppiOptimizer', () => {
  it('keeps the plan finite and inside the bounds when every return is NaN', async () => {
    const mppi = new MppiOptimizer(makeMppiConfig({ horizon: 4, populationSize: 16 }), new Box([0], [1]), new Rng(0));
    const plan = await mppi.optimize((_s, n) => Promise.resolve(new Float64Array(n).fill(NaN)));
    expect(Array.from(plan)).toEqual([0.5, 0.5, 0.5, 0.5]);
  });

  it('moves the plan towards the best sequences of a quadratic objective', async () => {
    const mppi = new MppiOptimizer(makeMppiConfig({ horizon: 3, populationSize: 300, numIterations: 8, temperature: 0.05, sigma: 0.5, beta: 1 }), new Box([-1], [1]), new Rng(2));
    const target = [0.5, -0.5, 0.2];
    const plan = await mppi.optimize((seqs, n) => {
      const v = new Float64Array(n);
      for (let i = 0; i < n; i++) for (let t = 0; t < 3; t++) v[i] -= (seqs[i * 3 + t] - target[t]) ** 2;
      return Promise.resolve(v);
    });
    for (let t = 0; t < 3; t++) expect(Math.abs(plan[t] - target[t])).toBeLessThan(0.1);
  });
});

describe('MPPI on Pendulum-v1 with the exact model', () => {
  const config = makeMppiConfig({ horizon: 20, populationSize: 200, numIterations: 3 });

  function makeAgent(seed: number): TrajectoryOptimizerAgent {
    const rng = new Rng(seed);
    const modelEnv = new ModelEnv(new PendulumPredictor(), { task: pendulumTask, propagation: 'ts1', rng: rng.fork() });
    return createModelPlanningAgent(modelEnv, config, new Box([-2], [2]), { rng: rng.fork(), particles: 1 });
  }

  it('is deterministic: the same seed gives the same actions', async () => {
    const obs = Float64Array.of(-1, 0, 0.3);
    const run = async (): Promise<number[]> => {
      const agent = makeAgent(3);
      const actions: number[] = [];
      for (let i = 0; i < 4; i++) actions.push((await agent.actAsync(obs))[0]);
      return actions;
    };
    expect(await run()).toEqual(await run());
  });

  it('beats random actions by a wide margin', async () => {
    // Random torques score about −1200 and never hold the pole up; > −400 needs a swing-up.
    const seeds = [0, 1];
    const returns = await runPendulum(makeAgent(0), seeds);
    const random = await randomPendulumReturns(seeds);
    console.log(`MPPI Pendulum-v1 returns ${returns.map((r) => r.toFixed(1)).join(', ')} (mean ${mean(returns).toFixed(1)}); random ${mean(random).toFixed(1)}`);
    expect(mean(returns)).toBeGreaterThan(-400);
    expect(mean(returns)).toBeGreaterThan(mean(random) + 500);
  });
});
