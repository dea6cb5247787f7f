import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { PENDULUM_SPEC, Pendulum, pendulumTask } from '../../src/envs/pendulum.js';

/** The error `fn` throws (fails the test when it throws nothing). */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw, got none');
}

/** Gymnasium's angle_normalize: ((x + π) mod 2π) − π with Python's (floored) modulo. */
function gymAngleNormalize(x: number): number {
  const twoPi = 2 * Math.PI;
  return x + Math.PI - twoPi * Math.floor((x + Math.PI) / twoPi) - Math.PI;
}

/** One step of Gymnasium's Pendulum-v1 (g = 10, m = l = 1, dt = 0.05), written out by hand. */
function gymPendulumStep(th: number, thdot: number, action: number): { reward: number; th: number; thdot: number } {
  const u = Math.min(2, Math.max(-2, action));
  const costs = gymAngleNormalize(th) ** 2 + 0.1 * thdot ** 2 + 0.001 * u ** 2;
  let newThdot = thdot + ((3 * 10) / 2 * Math.sin(th) + 3 * u) * 0.05;
  newThdot = Math.min(8, Math.max(-8, newThdot));
  return { reward: -costs, th: th + newThdot * 0.05, thdot: newThdot };
}

describe('Pendulum-v1', () => {
  it("has Gymnasium's spaces, dt and time limit, and the spec agrees", () => {
    const env = new Pendulum();
    expect(Array.from(env.observationSpace.low)).toEqual([-1, -1, -8]);
    expect(Array.from(env.observationSpace.high)).toEqual([1, 1, 8]);
    expect(Array.from(env.actionSpace.low)).toEqual([-2]);
    expect(Array.from(env.actionSpace.high)).toEqual([2]);
    expect(env.dt).toBe(0.05);
    expect(env.maxEpisodeSteps).toBe(200);
    expect(env.id).toBe('Pendulum-v1');
    expect(PENDULUM_SPEC.id).toBe(env.id);
    expect(PENDULUM_SPEC.obsDim).toBe(env.observationSpace.dim);
    expect(PENDULUM_SPEC.actDim).toBe(env.actionSpace.dim);
    expect(PENDULUM_SPEC.actLow).toEqual(Array.from(env.actionSpace.low));
    expect(PENDULUM_SPEC.actHigh).toEqual(Array.from(env.actionSpace.high));
    expect(PENDULUM_SPEC.dt).toBe(env.dt);
    expect(PENDULUM_SPEC.maxEpisodeSteps).toBe(env.maxEpisodeSteps);
  });

  it("matches Gymnasium's reward and next state on hand-computed steps", () => {
    const env = new Pendulum();
    const { obs: obs0 } = env.reset({ seed: 7 });
    const [th0, thdot0] = env.state;
    expect(Array.from(obs0)).toEqual([Math.fround(Math.cos(th0)), Math.fround(Math.sin(th0)), Math.fround(thdot0)]);

    const expected1 = gymPendulumStep(th0, thdot0, 1.3);
    const s1 = env.step([1.3]);
    expect(s1.reward).toBeCloseTo(expected1.reward, 6);
    expect(Math.abs(s1.reward - expected1.reward)).toBeLessThan(1e-6);
    expect(env.state[0]).toBeCloseTo(expected1.th, 12);
    expect(env.state[1]).toBeCloseTo(expected1.thdot, 12);
    expect(s1.obs[0]).toBe(Math.fround(Math.cos(expected1.th)));
    expect(s1.obs[1]).toBe(Math.fround(Math.sin(expected1.th)));
    expect(s1.obs[2]).toBe(Math.fround(expected1.thdot));
    expect(s1.terminated).toBe(false);
    expect(s1.truncated).toBe(false);

    // An out-of-range torque is clipped to 2 for both the dynamics and the cost.
    const expected2 = gymPendulumStep(expected1.th, expected1.thdot, 5);
    const s2 = env.step([5]);
    expect(Math.abs(s2.reward - expected2.reward)).toBeLessThan(1e-6);
    expect(env.state[1]).toBeCloseTo(expected2.thdot, 12);
  });

  it('matches a hand-computed number for a known state', () => {
    // θ = 1, θ̇ = 0.5, u = 1: cost = 1 + 0.025 + 0.001 = 1.026;
    // θ̇' = 0.5 + (15 sin 1 + 3)·0.05 = 0.5 + (12.62206 + 3)·0.05 = 1.2811032.
    const r = gymPendulumStep(1, 0.5, 1);
    expect(r.reward).toBeCloseTo(-1.026, 12);
    expect(r.thdot).toBeCloseTo(0.5 + (15 * Math.sin(1) + 3) * 0.05, 12);
    expect(r.thdot).toBeCloseTo(1.2811032, 6);
  });

  it('samples θ ~ U(−π, π) and θ̇ ~ U(−1, 1) at reset, covering the range', () => {
    const env = new Pendulum();
    let thMin = Infinity;
    let thMax = -Infinity;
    let vMin = Infinity;
    let vMax = -Infinity;
    for (let seed = 0; seed < 2000; seed++) {
      env.reset({ seed });
      const [th, thdot] = env.state;
      expect(th).toBeGreaterThanOrEqual(-Math.PI);
      expect(th).toBeLessThan(Math.PI);
      expect(thdot).toBeGreaterThanOrEqual(-1);
      expect(thdot).toBeLessThan(1);
      thMin = Math.min(thMin, th);
      thMax = Math.max(thMax, th);
      vMin = Math.min(vMin, thdot);
      vMax = Math.max(vMax, thdot);
    }
    // 2,000 uniform draws miss the outer 1% of either end with probability 0.99^2000 ≈ 2e-9.
    expect(thMin).toBeLessThan(-Math.PI + 0.02 * 2 * Math.PI);
    expect(thMax).toBeGreaterThan(Math.PI - 0.02 * 2 * Math.PI);
    expect(vMin).toBeLessThan(-0.96);
    expect(vMax).toBeGreaterThan(0.96);
  });

  it("pendulumTask's reward and termination equal the environment's on a random rollout (to 1e-5)", () => {
    const env = new Pendulum({ seed: 3 });
    const rng = new Rng(11);
    let { obs } = env.reset({ seed: 3 });
    const out = new Float64Array(1);
    const term = new Uint8Array(1);
    let maxErr = 0;
    for (let t = 0; t < 200; t++) {
      const a = [rng.uniform(-3, 3)];
      const step = env.step(a);
      pendulumTask.reward(obs, a, step.obs, 1, out);
      pendulumTask.terminated(obs, a, step.obs, 1, term);
      maxErr = Math.max(maxErr, Math.abs(out[0] - step.reward));
      expect(term[0]).toBe(step.terminated ? 1 : 0);
      obs = step.obs;
    }
    expect(maxErr).toBeLessThan(1e-5);
  });

  it('is deterministic: the same seed gives the same trajectory', () => {
    const run = (): number[] => {
      const env = new Pendulum();
      const rng = new Rng(5);
      const trace = Array.from(env.reset({ seed: 42 }).obs);
      for (let t = 0; t < 50; t++) {
        const s = env.step([rng.uniform(-2, 2)]);
        trace.push(...s.obs, s.reward);
      }
      return trace;
    };
    expect(run()).toEqual(run());
  });

  it('sets truncated at exactly maxEpisodeSteps and then requires a reset', () => {
    const env = new Pendulum({ maxEpisodeSteps: 200 });
    env.reset({ seed: 1 });
    for (let t = 1; t <= 200; t++) {
      const s = env.step([0]);
      expect(s.terminated).toBe(false);
      expect(s.truncated).toBe(t === 200);
    }
    expect(thrown(() => env.step([0]))).toBeInstanceOf(ValidationError);
  });

  it('changes the dynamics as the physics variants say', () => {
    const dThdot = (physics: object): number => {
      const env = new Pendulum({ physics });
      env.reset({ seed: 9 });
      const before = env.state[1];
      env.step([2]);
      return env.state[1] - before;
    };
    const nominal = dThdot({});
    // The torque term 3u/(m l²)·dt = 3·2·0.05 = 0.3 rad/s per step at full torque.
    expect(dThdot({ actuatorGain: 0.5 }) - nominal).toBeCloseTo(-0.15, 10);
    expect(dThdot({ massScale: 2 }) - nominal).toBeCloseTo(-0.15, 10);
    expect(dThdot({ actuatorGain: 2 }) - nominal).toBeCloseTo(0.3, 10);
    const err = thrown(() => new Pendulum({ physics: { frictionScale: 2 } }));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.message).toMatch(/frictionScale/);
  });

  it('applies a delayed action but charges the commanded one', () => {
    const nominal = new Pendulum();
    const delayed = new Pendulum({ physics: { actionDelaySteps: 1 } });
    nominal.reset({ seed: 4 });
    delayed.reset({ seed: 4 });
    const sn = nominal.step([0]);
    const sd = delayed.step([2]);
    expect(Array.from(sd.obs)).toEqual(Array.from(sn.obs)); // the plant got zeros
    expect(sd.reward).toBeCloseTo(sn.reward - 0.001 * 4, 12); // the cost is on u = 2
  });

  it('rejects a NaN or wrong-length action, naming it, and leaves the state unchanged', () => {
    const env = new Pendulum();
    env.reset({ seed: 2 });
    const before = env.state;
    for (const bad of [[Number.NaN], [1, 1], [], [Infinity]]) {
      const err = thrown(() => env.step(bad));
      expect(err).toBeInstanceOf(ValidationError);
      expect(err.message).toMatch(/action/);
      expect(env.state).toEqual(before);
      expect(env.elapsedSteps).toBe(0);
    }
    const reference = new Pendulum();
    reference.reset({ seed: 2 });
    expect(Array.from(env.step([1]).obs)).toEqual(Array.from(reference.step([1]).obs));
  });
});
