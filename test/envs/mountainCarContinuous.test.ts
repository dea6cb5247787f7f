import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import {
  MOUNTAIN_CAR_CONTINUOUS_SPEC,
  MountainCarContinuous,
  makeMountainCarContinuousTask,
  mountainCarContinuousTask,
} from '../../src/envs/mountainCarContinuous.js';

/** The error `fn` throws (fails the test when it throws nothing). */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw, got none');
}

/**
 * One step of Gymnasium's Continuous_MountainCarEnv.step, written out by hand from
 * gymnasium/envs/classic_control/continuous_mountain_car.py (goal_velocity 0).
 */
function gymMountainCarStep(x: number, v: number, action: number): { x: number; v: number; reward: number; terminated: boolean } {
  const force = Math.min(Math.max(action, -1), 1);
  let velocity = v + (force * 0.0015 - 0.0025 * Math.cos(3 * x));
  if (velocity > 0.07) velocity = 0.07;
  if (velocity < -0.07) velocity = -0.07;
  let position = x + velocity;
  if (position > 0.6) position = 0.6;
  if (position < -1.2) position = -1.2;
  if (position === -1.2 && velocity < 0) velocity = 0;
  const terminated = position >= 0.45 && velocity >= 0;
  const reward = (terminated ? 100 : 0) - action ** 2 * 0.1;
  // Gymnasium stores the state as float32.
  return { x: Math.fround(position), v: Math.fround(velocity), reward, terminated };
}

/** Gymnasium's standard energy-pumping heuristic: push in the direction of motion. */
const pump = (obs: Float64Array): number[] => [obs[1] >= 0 ? 1 : -1];

describe('MountainCarContinuous-v0', () => {
  it("has Gymnasium's spaces (float32 bounds), dt and time limit, and the spec agrees", () => {
    const env = new MountainCarContinuous();
    expect(env.id).toBe('MountainCarContinuous-v0');
    expect(Array.from(env.observationSpace.low)).toEqual([Math.fround(-1.2), Math.fround(-0.07)]);
    expect(Array.from(env.observationSpace.high)).toEqual([Math.fround(0.6), Math.fround(0.07)]);
    expect(env.observationSpace.low[0]).toBeCloseTo(-1.2, 6);
    expect(env.observationSpace.high[1]).toBeCloseTo(0.07, 6);
    expect(Array.from(env.actionSpace.low)).toEqual([-1]);
    expect(Array.from(env.actionSpace.high)).toEqual([1]);
    expect(env.dt).toBe(1);
    expect(env.maxEpisodeSteps).toBe(999);
    expect(env.obsNames).toEqual(['position', 'velocity']);
    const spec = MOUNTAIN_CAR_CONTINUOUS_SPEC;
    expect(spec.id).toBe(env.id);
    expect(spec.kind).toBe('classic');
    expect(spec.obsDim).toBe(2);
    expect(spec.actDim).toBe(1);
    expect(spec.actLow).toEqual([-1]);
    expect(spec.actHigh).toEqual([1]);
    expect(spec.dt).toBe(env.dt);
    expect(spec.maxEpisodeSteps).toBe(999);
    expect(spec.task).toBe(mountainCarContinuousTask);
  });

  it('builds through its spec', async () => {
    const env = await MOUNTAIN_CAR_CONTINUOUS_SPEC.make({ seed: 1 });
    expect(env).toBeInstanceOf(MountainCarContinuous);
    expect(env.reset().obs.length).toBe(2);
  });

  it("matches Gymnasium's step on hand-computed steps, charging the unclipped action", () => {
    const env = new MountainCarContinuous();
    const { obs: obs0 } = env.reset({ seed: 12 });
    const [x0, v0] = env.state;
    expect(v0).toBe(0);
    expect(Array.from(obs0)).toEqual([Math.fround(x0), 0]);

    const e1 = gymMountainCarStep(x0, v0, 0.7);
    const s1 = env.step([0.7]);
    expect(s1.reward).toBeCloseTo(-0.049, 12);
    expect(s1.reward).toBe(e1.reward);
    expect(Array.from(s1.obs)).toEqual([e1.x, e1.v]);
    expect(env.state).toEqual([e1.x, e1.v]);
    // By hand: v1 = 0.7·0.0015 − 0.0025·cos(3·x0); x1 = x0 + v1.
    const v1 = 0.7 * 0.0015 - 0.0025 * Math.cos(3 * x0);
    expect(s1.obs[1]).toBeCloseTo(v1, 7);
    expect(s1.obs[0]).toBeCloseTo(x0 + v1, 7);

    // |a| > 1: the force is clipped to −1 but Gymnasium's cost squares action[0] as sent.
    const e2 = gymMountainCarStep(e1.x, e1.v, -1.5);
    const s2 = env.step([-1.5]);
    expect(s2.reward).toBeCloseTo(-0.225, 12);
    expect(Array.from(s2.obs)).toEqual([e2.x, e2.v]);
    expect(s2.obs[1] - s1.obs[1]).toBeCloseTo(-0.0015 - 0.0025 * Math.cos(3 * e1.x), 7);
    expect(s2.terminated).toBe(false);
  });

  it('stops the car at the left wall (position −1.2, velocity 0)', () => {
    // Pushing left from rest drives the car into the wall within 200 steps.
    const env = new MountainCarContinuous();
    env.reset({ seed: 0 });
    let hit = false;
    for (let t = 0; t < 200; t++) {
      const { obs } = env.step([-1]);
      expect(obs[0]).toBeGreaterThanOrEqual(Math.fround(-1.2));
      if (obs[0] === Math.fround(-1.2)) {
        expect(obs[1]).toBe(0);
        hit = true;
      }
    }
    expect(hit).toBe(true);
  });

  it('samples the start position ~ U(−0.6, −0.4) with zero velocity, covering the range', () => {
    const env = new MountainCarContinuous();
    let lo = Infinity;
    let hi = -Infinity;
    for (let seed = 0; seed < 2000; seed++) {
      const { obs } = env.reset({ seed });
      const [x, v] = env.state;
      expect(x).toBeGreaterThanOrEqual(-0.6);
      expect(x).toBeLessThan(-0.4);
      expect(v).toBe(0);
      expect(obs[0]).toBe(Math.fround(x));
      expect(env.observationSpace.contains(obs)).toBe(true);
      lo = Math.min(lo, x);
      hi = Math.max(hi, x);
    }
    // 2,000 uniform draws miss the outer 1% at either end with probability 0.99^2000 ≈ 2e-9.
    expect(lo).toBeLessThan(-0.598);
    expect(hi).toBeGreaterThan(-0.402);
  });

  it('reaches the goal with the energy-pumping policy: +100, terminated, within the time limit', () => {
    for (let seed = 0; seed < 5; seed++) {
      const env = new MountainCarContinuous();
      let { obs } = env.reset({ seed });
      const out = new Float64Array(1);
      const term = new Uint8Array(1);
      let steps = 0;
      let last;
      do {
        const a = pump(obs);
        last = env.step(a);
        mountainCarContinuousTask.reward(obs, a, last.obs, 1, out);
        mountainCarContinuousTask.terminated(obs, a, last.obs, 1, term);
        expect(out[0]).toBe(last.reward);
        expect(term[0]).toBe(last.terminated ? 1 : 0);
        // Gymnasium's rule: position ≥ 0.45 and velocity ≥ goal_velocity (0).
        expect(last.terminated).toBe(last.obs[0] >= 0.45 && last.obs[1] >= 0);
        expect(Math.abs(last.obs[1])).toBeLessThanOrEqual(Math.fround(0.07));
        expect(env.observationSpace.contains(last.obs)).toBe(true);
        obs = last.obs;
        steps++;
      } while (!last.terminated && !last.truncated);
      expect(last.terminated).toBe(true);
      expect(last.truncated).toBe(false);
      expect(steps).toBeLessThan(200);
      expect(obs[0]).toBeGreaterThanOrEqual(0.45);
      expect(obs[1]).toBeGreaterThanOrEqual(0);
      expect(last.reward).toBeCloseTo(100 - 0.1, 12);
      expect(thrown(() => env.step([0]))).toBeInstanceOf(ValidationError);
    }
  });

  it('is not solved by a random policy (why the pumping test above means something)', () => {
    // Uniform random forces average out: the car jiggles near the valley floor for all 999 steps.
    for (let seed = 0; seed < 3; seed++) {
      const env = new MountainCarContinuous();
      const rng = new Rng(100 + seed);
      env.reset({ seed });
      let s;
      do s = env.step([rng.uniform(-1, 1)]);
      while (!s.terminated && !s.truncated);
      expect(s.terminated).toBe(false);
      expect(env.elapsedSteps).toBe(999);
    }
  });

  it("mountainCarContinuousTask's reward and termination equal the environment's on a random rollout", () => {
    const env = new MountainCarContinuous();
    const rng = new Rng(21);
    let { obs } = env.reset({ seed: 21 });
    const n = 300;
    const obsB = new Float64Array(2 * n);
    const actB = new Float64Array(n);
    const nextB = new Float64Array(2 * n);
    const rewards = new Float64Array(n);
    const dones = new Uint8Array(n);
    for (let t = 0; t < n; t++) {
      const a = rng.uniform(-1.5, 1.5);
      const s = env.step([a]);
      obsB.set(obs, 2 * t);
      actB[t] = a;
      nextB.set(s.obs, 2 * t);
      rewards[t] = s.reward;
      dones[t] = s.terminated ? 1 : 0;
      obs = s.obs;
    }
    // Batched: n rows at once.
    const out = new Float64Array(n);
    const term = new Uint8Array(n);
    mountainCarContinuousTask.reward(obsB, actB, nextB, n, out);
    mountainCarContinuousTask.terminated(obsB, actB, nextB, n, term);
    expect(Array.from(out)).toEqual(Array.from(rewards));
    expect(Array.from(term)).toEqual(Array.from(dones));
    expect(mountainCarContinuousTask.rewardExact).toBe(true);
  });

  it('computes the goal bonus and control cost by hand', () => {
    const rows = [
      [0.45, 0], // exactly at the goal, at rest: terminal
      [0.449, 0.01], // just short: not terminal
      [0.5, -0.001], // past the goal but rolling back: not terminal
      [0.6, 0.07],
    ];
    const next = Float64Array.from(rows.flat());
    const act = [0.5, -2, 0, 1];
    const out = new Float64Array(4);
    const term = new Uint8Array(4);
    mountainCarContinuousTask.reward(new Float64Array(8), act, next, 4, out);
    mountainCarContinuousTask.terminated(new Float64Array(8), act, next, 4, term);
    expect(Array.from(term)).toEqual([1, 0, 0, 1]);
    expect(out[0]).toBeCloseTo(100 - 0.025, 12);
    expect(out[1]).toBeCloseTo(-0.4, 12);
    expect(out[2]).toBe(0);
    expect(out[3]).toBeCloseTo(99.9, 12);
  });

  it('is deterministic: the same seed gives the same trajectory', () => {
    const run = (): number[] => {
      const env = new MountainCarContinuous({ seed: 8 });
      const rng = new Rng(3);
      const trace = Array.from(env.reset().obs);
      for (let t = 0; t < 100; t++) {
        const s = env.step([rng.uniform(-1, 1)]);
        trace.push(...s.obs, s.reward);
      }
      return trace;
    };
    const a = run();
    expect(run()).toEqual(a);
    const other = new MountainCarContinuous({ seed: 9 });
    expect(Array.from(other.reset().obs)).not.toEqual(a.slice(0, 2));
  });

  it('sets truncated at exactly maxEpisodeSteps (999), and honours an override', () => {
    const env = new MountainCarContinuous();
    env.reset({ seed: 2 });
    for (let t = 1; t <= 999; t++) {
      const s = env.step([0]); // no force: the car never leaves the valley
      expect(s.terminated).toBe(false);
      if (s.truncated !== (t === 999)) throw new Error(`truncated=${s.truncated} at step ${t}`);
    }
    const short = new MountainCarContinuous({ maxEpisodeSteps: 5 });
    short.reset({ seed: 2 });
    const flags = Array.from({ length: 5 }, () => short.step([0]).truncated);
    expect(flags).toEqual([false, false, false, false, true]);
  });

  it('requires the goal velocity when goalVelocity is set', () => {
    // 0.5 is above the speed limit 0.07: the car reaches x ≥ 0.45 but never terminates.
    const env = new MountainCarContinuous({ goalVelocity: 0.5 });
    let { obs } = env.reset({ seed: 0 });
    let maxX = -Infinity;
    let s;
    do {
      s = env.step(pump(obs));
      obs = s.obs;
      maxX = Math.max(maxX, obs[0]);
    } while (!s.terminated && !s.truncated);
    expect(s.truncated).toBe(true);
    expect(maxX).toBeGreaterThanOrEqual(0.45);
    const task = makeMountainCarContinuousTask(0.5);
    const term = new Uint8Array(1);
    task.terminated([0.4, 0], [1], [0.5, 0.06], 1, term);
    expect(term[0]).toBe(0);
    mountainCarContinuousTask.terminated([0.4, 0], [1], [0.5, 0.06], 1, term);
    expect(term[0]).toBe(1);
    expect(thrown(() => new MountainCarContinuous({ goalVelocity: Number.NaN })).message).toMatch(/goalVelocity/);
  });

  it('changes the dynamics as the physics variants say', () => {
    const firstVelocity = (physics: object): number => {
      const env = new MountainCarContinuous({ physics });
      env.reset({ seed: 5 });
      return env.step([1]).obs[1];
    };
    const nominal = firstVelocity({});
    // Half the gain or twice the mass halves the engine's 0.0015 per step: 0.00075 less.
    expect(firstVelocity({ actuatorGain: 0.5 }) - nominal).toBeCloseTo(-0.00075, 7);
    expect(firstVelocity({ massScale: 2 })).toBe(firstVelocity({ actuatorGain: 0.5 }));
    expect(firstVelocity({ actuatorGain: 2 }) - nominal).toBeCloseTo(0.0015, 7);

    // A weaker engine moves the car less: after 30 steps of full throttle it is further left.
    const positionAfter = (physics: object): number => {
      const env = new MountainCarContinuous({ physics });
      env.reset({ seed: 5 });
      let x = 0;
      for (let t = 0; t < 30; t++) x = env.step([1]).obs[0];
      return x;
    };
    expect(positionAfter({ actuatorGain: 0.5 })).toBeLessThan(positionAfter({}));
    expect(positionAfter({ massScale: 1.5 })).toBeLessThan(positionAfter({}));

    const err = thrown(() => new MountainCarContinuous({ physics: { frictionScale: 0.5 } }));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.message).toMatch(/frictionScale/);
  });

  it('applies a delayed action but charges the commanded one', () => {
    const nominal = new MountainCarContinuous();
    const delayed = new MountainCarContinuous({ physics: { actionDelaySteps: 2 } });
    nominal.reset({ seed: 6 });
    delayed.reset({ seed: 6 });
    for (let t = 0; t < 2; t++) {
      const sn = nominal.step([0]);
      const sd = delayed.step([1]);
      expect(Array.from(sd.obs)).toEqual(Array.from(sn.obs));
      expect(sd.reward).toBeCloseTo(-0.1, 12);
    }
    nominal.step([1]);
    delayed.step([0]); // now the first commanded 1 arrives
    expect(delayed.state).toEqual(nominal.state);
  });

  it('adds observation noise without changing the true trajectory', () => {
    const clean = new MountainCarContinuous();
    const noisy = new MountainCarContinuous({ physics: { obsNoiseStd: 0.01 } });
    const o1 = clean.reset({ seed: 4 }).obs;
    const o2 = noisy.reset({ seed: 4 }).obs;
    expect(o2[0]).not.toBe(o1[0]);
    for (let t = 0; t < 10; t++) {
      clean.step([0.5]);
      noisy.step([0.5]);
    }
    expect(noisy.state).toEqual(clean.state);
  });

  it('rejects a NaN or wrong-length action, naming it, and leaves the state unchanged', () => {
    const env = new MountainCarContinuous();
    env.reset({ seed: 2 });
    env.step([0.3]);
    const before = env.state;
    for (const bad of [[Number.NaN], [0.5, 0.5], [], [-Infinity]]) {
      const err = thrown(() => env.step(bad));
      expect(err).toBeInstanceOf(ValidationError);
      expect(err.message).toMatch(/action/);
      expect(env.state).toEqual(before);
      expect(env.elapsedSteps).toBe(1);
    }
    const reference = new MountainCarContinuous();
    reference.reset({ seed: 2 });
    reference.step([0.3]);
    expect(Array.from(env.step([1]).obs)).toEqual(Array.from(reference.step([1]).obs));
  });
});
