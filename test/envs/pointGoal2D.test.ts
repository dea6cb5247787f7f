import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { POINT_GOAL_2D_SPEC, PointGoal2D, makePointGoal2DTask, pointGoal2DTask } from '../../src/envs/pointGoal2D.js';

/** The error `fn` throws (fails the test when it throws nothing). */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw, got none');
}

const clip = (x: number): number => Math.min(0.1, Math.max(-0.1, x));

/** Greedy controller: the largest allowed step straight at the goal, per coordinate. */
const greedy = (obs: Float64Array, goal: readonly number[]): number[] => [clip(goal[0] - obs[0]), clip(goal[1] - obs[1])];

describe('PointGoal2D', () => {
  it("has MB-MPO's spaces, dt and time limit, and the spec agrees", () => {
    const env = new PointGoal2D();
    expect(env.id).toBe('PointGoal2D');
    expect(Array.from(env.observationSpace.low)).toEqual([-Infinity, -Infinity]);
    expect(Array.from(env.observationSpace.high)).toEqual([Infinity, Infinity]);
    expect(Array.from(env.actionSpace.low)).toEqual([-0.1, -0.1]);
    expect(Array.from(env.actionSpace.high)).toEqual([0.1, 0.1]);
    expect(env.dt).toBe(0.1);
    expect(env.maxEpisodeSteps).toBe(30);
    expect(env.goal).toEqual([0, 0]);
    expect(env.obsNames).toEqual(['x', 'y']);
    const spec = POINT_GOAL_2D_SPEC;
    expect(spec.id).toBe('PointGoal2D');
    expect(spec.kind).toBe('classic');
    expect(spec.obsDim).toBe(2);
    expect(spec.actDim).toBe(2);
    expect(spec.actLow).toEqual([-0.1, -0.1]);
    expect(spec.actHigh).toEqual([0.1, 0.1]);
    expect(spec.dt).toBe(0.1);
    expect(spec.maxEpisodeSteps).toBe(30);
    expect(spec.task).toBe(pointGoal2DTask);
  });

  it('builds through its spec', async () => {
    const env = await POINT_GOAL_2D_SPEC.make({ seed: 1 });
    expect(env).toBeInstanceOf(PointGoal2D);
    expect(env.reset().obs.length).toBe(2);
  });

  it('moves by the clipped action and pays the distance to the goal (hand-computed)', () => {
    const env = new PointGoal2D();
    const { obs: obs0 } = env.reset({ seed: 1 });
    const [x0, y0] = env.state;
    expect(Array.from(obs0)).toEqual([x0, y0]);
    // (0.05, −0.3) → displacement (0.05, −0.1).
    const s1 = env.step([0.05, -0.3]);
    expect(s1.obs[0]).toBe(x0 + 0.05);
    expect(s1.obs[1]).toBe(y0 - 0.1);
    expect(s1.reward).toBe(-Math.sqrt((x0 + 0.05) ** 2 + (y0 - 0.1) ** 2));
    expect(s1.info.distance).toBe(-s1.reward);
    expect(s1.info.goal).toEqual([0, 0]);
    expect(s1.terminated).toBe(false);

    // A fixed goal elsewhere: s = (0, 0) is not a special point any more.
    const moved = new PointGoal2D({ goal: [1, -0.5], initRange: [0, 0] });
    moved.reset({ seed: 1 });
    expect(moved.state).toEqual([0, 0]);
    const s = moved.step([0.1, 0.1]);
    expect(Array.from(s.obs)).toEqual([0.1, 0.1]);
    // ‖(0.1, 0.1) − (1, −0.5)‖ = ‖(−0.9, 0.6)‖ = √1.17.
    expect(s.reward).toBeCloseTo(-Math.sqrt(1.17), 12);
  });

  it('samples the start ~ U(−2, 2)², covering the square', () => {
    const env = new PointGoal2D();
    const lo = [Infinity, Infinity];
    const hi = [-Infinity, -Infinity];
    for (let seed = 0; seed < 2000; seed++) {
      const { obs } = env.reset({ seed });
      for (let i = 0; i < 2; i++) {
        expect(obs[i]).toBeGreaterThanOrEqual(-2);
        expect(obs[i]).toBeLessThan(2);
        lo[i] = Math.min(lo[i], obs[i]);
        hi[i] = Math.max(hi[i], obs[i]);
      }
    }
    // 2,000 uniform draws miss the outer 1% at either end with probability 0.99^2000 ≈ 2e-9.
    for (let i = 0; i < 2; i++) {
      expect(lo[i]).toBeLessThan(-1.96);
      expect(hi[i]).toBeGreaterThan(1.96);
    }
    const custom = new PointGoal2D({ initRange: [2, 6] });
    for (let seed = 0; seed < 200; seed++) {
      const { obs } = custom.reset({ seed });
      expect(Math.min(obs[0], obs[1])).toBeGreaterThanOrEqual(2);
      expect(Math.max(obs[0], obs[1])).toBeLessThan(6);
    }
  });

  it('samples a goal per reset when goalRange is set, keeping the start states of the fixed-goal task', () => {
    const fixed = new PointGoal2D();
    const sampled = new PointGoal2D({ goalRange: [-0.5, 0.5] });
    const goals = new Set<string>();
    for (let seed = 0; seed < 200; seed++) {
      const a = fixed.reset({ seed }).obs;
      const b = sampled.reset({ seed }).obs;
      expect(Array.from(b)).toEqual(Array.from(a));
      const [gx, gy] = sampled.goal;
      expect(Math.abs(gx)).toBeLessThanOrEqual(0.5);
      expect(Math.abs(gy)).toBeLessThanOrEqual(0.5);
      goals.add(`${gx},${gy}`);
      const s = sampled.step([0, 0]);
      expect(s.info.goal).toEqual([gx, gy]);
      expect(s.reward).toBeCloseTo(-Math.hypot(b[0] - gx, b[1] - gy), 12);
    }
    expect(goals.size).toBe(200);
  });

  it('terminates when both coordinates are within 0.01 of the goal: the greedy controller gets there', () => {
    // From U(−2, 2)² each coordinate needs at most 27 steps of 0.1 to these goals, inside the limit;
    // a random walk of ±0.1 steps essentially never lands within 0.01 of the goal.
    for (const goal of [[0, 0], [0.7, -0.6]] as const) {
      for (let seed = 0; seed < 20; seed++) {
        const env = new PointGoal2D({ goal });
        let { obs } = env.reset({ seed });
        const stepsNeeded = Math.ceil(Math.max(Math.abs(goal[0] - obs[0]), Math.abs(goal[1] - obs[1])) / 0.1);
        let s;
        do {
          s = env.step(greedy(obs, goal));
          const close = Math.abs(s.obs[0] - goal[0]) < 0.01 && Math.abs(s.obs[1] - goal[1]) < 0.01;
          expect(s.terminated).toBe(close);
          obs = s.obs;
        } while (!s.terminated && !s.truncated);
        expect(s.terminated).toBe(true);
        expect(s.truncated).toBe(false);
        expect(env.elapsedSteps).toBeLessThanOrEqual(stepsNeeded + 1);
        expect(s.reward).toBeGreaterThan(-0.01 * Math.SQRT2);
      }
    }
  });

  it("the task functions equal the environment's reward and termination exactly", () => {
    for (const goal of [undefined, [0.3, 0.4] as const]) {
      const env = new PointGoal2D({ goal });
      const task = goal === undefined ? pointGoal2DTask : makePointGoal2DTask(goal);
      const rng = new Rng(17);
      let { obs } = env.reset({ seed: 17 });
      const out = new Float64Array(1);
      const term = new Uint8Array(1);
      for (let t = 0; t < 30; t++) {
        const a = [rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2)];
        const s = env.step(a);
        task.reward(obs, a, s.obs, 1, out);
        task.terminated(obs, a, s.obs, 1, term);
        expect(out[0]).toBe(s.reward);
        expect(term[0]).toBe(s.terminated ? 1 : 0);
        obs = s.obs;
      }
    }
    // Batched, by hand: rows (0.005, −0.009) (terminal), (0.01, 0) (not: strict <), (3, 4).
    const next = [0.005, -0.009, 0.01, 0, 3, 4];
    const out = new Float64Array(3);
    const term = new Uint8Array(3);
    pointGoal2DTask.reward(new Float64Array(6), new Float64Array(6), next, 3, out);
    pointGoal2DTask.terminated(new Float64Array(6), new Float64Array(6), next, 3, term);
    expect(Array.from(term)).toEqual([1, 0, 0]);
    expect(out[2]).toBe(-5);
    expect(out[1]).toBeCloseTo(-0.01, 15);
  });

  it('is deterministic: the same seed gives the same trajectory', () => {
    const run = (): number[] => {
      const env = new PointGoal2D({ goalRange: [-2, 2] });
      const rng = new Rng(2);
      const trace = Array.from(env.reset({ seed: 99 }).obs);
      trace.push(...env.goal);
      for (let t = 0; t < 30; t++) {
        const s = env.step([rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1)]);
        trace.push(...s.obs, s.reward);
      }
      return trace;
    };
    expect(run()).toEqual(run());
  });

  it('sets truncated at exactly maxEpisodeSteps', () => {
    const env = new PointGoal2D();
    env.reset({ seed: 5 });
    for (let t = 1; t <= 30; t++) {
      const s = env.step([0, 0]);
      expect(s.terminated).toBe(false);
      expect(s.truncated).toBe(t === 30);
    }
    expect(thrown(() => env.step([0, 0]))).toBeInstanceOf(ValidationError);
    const long = new PointGoal2D({ maxEpisodeSteps: 100 });
    long.reset({ seed: 5 });
    for (let t = 1; t < 100; t++) expect(long.step([0, 0]).truncated).toBe(false);
    expect(long.step([0, 0]).truncated).toBe(true);
  });

  it('scales the displacement with actuatorGain and rejects mass and friction', () => {
    const step = (physics: object, a: number[]): number[] => {
      const env = new PointGoal2D({ physics, initRange: [0, 0] });
      env.reset({ seed: 0 });
      return Array.from(env.step(a).obs);
    };
    expect(step({}, [0.1, -0.1])).toEqual([0.1, -0.1]);
    expect(step({ actuatorGain: 0.5 }, [0.1, -0.1])).toEqual([0.05, -0.05]);
    // The action is clipped first, then scaled.
    expect(step({ actuatorGain: 2 }, [0.3, -0.04])).toEqual([0.2, -0.08]);
    for (const key of ['massScale', 'frictionScale']) {
      const err = thrown(() => new PointGoal2D({ physics: { [key]: 2 } }));
      expect(err).toBeInstanceOf(ValidationError);
      expect(err.message).toMatch(new RegExp(key));
    }
  });

  it('applies a delayed action', () => {
    const env = new PointGoal2D({ physics: { actionDelaySteps: 1 }, initRange: [0, 0], goal: [1, 1] });
    env.reset({ seed: 0 });
    expect(Array.from(env.step([0.1, 0.1]).obs)).toEqual([0, 0]);
    expect(Array.from(env.step([0, 0]).obs)).toEqual([0.1, 0.1]);
  });

  it('rejects bad options, naming them', () => {
    const cases: [object, RegExp][] = [
      [{ goal: [Number.NaN, 0] }, /goal/],
      [{ goal: [1] }, /goal/],
      [{ goalRange: [1, -1] }, /goalRange/],
      [{ initRange: [2, -2] }, /initRange/],
      [{ initRange: [0, Infinity] }, /initRange/],
    ];
    for (const [options, pattern] of cases) {
      const err = thrown(() => new PointGoal2D(options));
      expect(err).toBeInstanceOf(ValidationError);
      expect(err.message).toMatch(pattern);
    }
  });

  it('rejects a NaN or wrong-length action, naming it, and leaves the state unchanged', () => {
    const env = new PointGoal2D();
    env.reset({ seed: 3 });
    env.step([0.05, 0.05]);
    const before = env.state;
    for (const bad of [[Number.NaN, 0], [0.1], [0.1, 0.1, 0.1], [0, Infinity]]) {
      const err = thrown(() => env.step(bad));
      expect(err).toBeInstanceOf(ValidationError);
      expect(err.message).toMatch(/action/);
      expect(env.state).toEqual(before);
      expect(env.elapsedSteps).toBe(1);
    }
  });
});
