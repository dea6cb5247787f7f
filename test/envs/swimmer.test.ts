import type { MjModel } from 'mujoco-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PhysicsParams } from '../../src/core/env.js';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { SWIMMER_SPEC, Swimmer, swimmerTask } from '../../src/envs/swimmer.js';
import { HAVE_MJCF, MJCF_SKIP_REASON } from '../helpers.js';

/** The protected MuJoCo state, read (and set) through a cast: tests only. */
interface Internals {
  qpos: Float64Array;
  qvel: Float64Array;
  initQpos: Float64Array;
  initQvel: Float64Array;
  model: MjModel;
  data: { time: number };
  setState(qpos: ArrayLike<number>, qvel: ArrayLike<number>): void;
}
const internals = (env: Swimmer): Internals => env as unknown as Internals;

describe.skipIf(!HAVE_MJCF)(`Swimmer-v5 ${MJCF_SKIP_REASON}`, () => {
  let env: Swimmer;
  beforeAll(async () => {
    env = await Swimmer.create();
  });
  afterAll(() => env.close());

  it("has Gymnasium's spaces, dt and time limit, and the spec agrees", () => {
    expect(env.id).toBe('Swimmer-v5');
    expect(env.observationSpace.dim).toBe(8);
    expect(env.observationSpace.isBounded()).toBe(false);
    expect(env.actionSpace.dim).toBe(2);
    expect(Array.from(env.actionSpace.low)).toEqual([-1, -1]);
    expect(Array.from(env.actionSpace.high)).toEqual([1, 1]);
    expect(env.frameSkip).toBe(4);
    expect(env.dt).toBeCloseTo(0.04, 12);
    expect(env.maxEpisodeSteps).toBe(1000);
    expect(env.obsNames).toEqual([
      'qpos[2]:free_body_rot',
      'qpos[3]:motor1_rot',
      'qpos[4]:motor2_rot',
      'qvel[0]:slider1',
      'qvel[1]:slider2',
      'qvel[2]:free_body_rot',
      'qvel[3]:motor1_rot',
      'qvel[4]:motor2_rot',
    ]);
    const s = SWIMMER_SPEC;
    expect([s.id, s.kind, s.obsDim, s.actDim, s.maxEpisodeSteps, s.mjcfFile]).toEqual([env.id, 'mujoco', 8, 2, 1000, 'swimmer.xml']);
    expect(s.actLow).toEqual(Array.from(env.actionSpace.low));
    expect(s.actHigh).toEqual(Array.from(env.actionSpace.high));
    expect(s.dt).toBeCloseTo(env.dt, 12);
    expect(s.task).toBe(swimmerTask);
    expect(swimmerTask.rewardExact).toBe(false);
  });

  it('spec.make builds a Swimmer', async () => {
    const made = await SWIMMER_SPEC.make();
    expect(made).toBeInstanceOf(Swimmer);
    made.close();
  });

  it('resets qpos and qvel to init + U(−0.1, 0.1) over 300 seeds', () => {
    const { initQpos, initQvel } = internals(env);
    const noise: number[] = [];
    for (let seed = 0; seed < 300; seed++) {
      const { obs, info } = env.reset({ seed });
      const { qpos, qvel } = internals(env);
      expect(Array.from(obs)).toEqual([...qpos.subarray(2), ...qvel]);
      expect(info).toEqual({ x_position: qpos[0], y_position: qpos[1], distance_from_origin: Math.hypot(qpos[0], qpos[1]) });
      for (let i = 0; i < 5; i++) noise.push(qpos[i] - initQpos[i], qvel[i] - initQvel[i]);
    }
    // 3000 uniform draws: bounded by 0.1, reaching both ends, mean ≈ 0 (std of the mean 1e-3).
    expect(Math.max(...noise.map(Math.abs))).toBeLessThanOrEqual(0.1);
    expect(Math.max(...noise)).toBeGreaterThan(0.099);
    expect(Math.min(...noise)).toBeLessThan(-0.099);
    expect(Math.abs(noise.reduce((a, b) => a + b, 0) / noise.length)).toBeLessThan(0.005);
  });

  it("gives Gymnasium's reward from a known state: (x_after − x_before)/dt − 1e-4 Σ a²", () => {
    env.reset({ seed: 0 });
    const { initQpos } = internals(env);
    const qpos = Float64Array.from(initQpos);
    qpos[0] = 0.3;
    qpos[1] = -0.4;
    internals(env).setState(qpos, [0.5, 0, 0, 0, 0]); // gliding along +x, slowed by the fluid
    const s = env.step([0, 0]);
    const [xAfter, yAfter] = internals(env).qpos;
    expect(xAfter).toBeGreaterThan(0.3);
    expect(xAfter).toBeLessThan(0.3 + 0.5 * 0.04);
    expect(s.info.x_position).toBe(xAfter);
    expect(s.info.y_position).toBe(yAfter);
    expect(s.info.distance_from_origin).toBeCloseTo(Math.hypot(xAfter, yAfter), 12);
    expect(s.info.x_velocity).toBeCloseTo((xAfter - 0.3) / 0.04, 12);
    expect(s.info.y_velocity).toBeCloseTo((yAfter + 0.4) / 0.04, 12);
    expect(s.info.reward_forward).toBeCloseTo((xAfter - 0.3) / 0.04, 12);
    expect(s.info.reward_ctrl).toBeCloseTo(0, 15);
    expect(s.reward).toBeCloseTo((xAfter - 0.3) / 0.04, 12);
    expect(s.terminated).toBe(false);

    const x0 = xAfter;
    const s2 = env.step([1, -0.5]);
    const x1 = internals(env).qpos[0];
    expect(s2.info.reward_ctrl).toBeCloseTo(-1e-4 * 1.25, 15);
    expect(s2.reward).toBeCloseTo((x1 - x0) / 0.04 - 1.25e-4, 12);
  });

  it('truncates after 1000 steps and never terminates', () => {
    env.reset({ seed: 0 });
    for (let t = 1; t <= 1000; t++) {
      const s = env.step([Math.sin(0.5 * t), Math.cos(0.5 * t)]);
      expect(s.terminated).toBe(false);
      expect(s.truncated).toBe(t === 1000);
    }
    expect(() => env.step([0, 0])).toThrow(ValidationError);
  });

  it('task reward approximates the forward reward within the measured bound; control cost exact', () => {
    const rng = new Rng(2024);
    let obs = env.reset({ seed: 2024 }).obs;
    const r = new Float64Array(1);
    const d = new Uint8Array(1);
    let absErr = 0;
    let absReward = 0;
    let nextOnlyErr = 0;
    const steps = 1000;
    for (let t = 0; t < steps; t++) {
      const a = env.actionSpace.sample(rng);
      const s = env.step(a);
      swimmerTask.reward(obs, a, s.obs, 1, r);
      swimmerTask.terminated(obs, a, s.obs, 1, d);
      expect(d[0]).toBe(0);
      absErr += Math.abs(r[0] - s.reward);
      absReward += Math.abs(s.reward);
      nextOnlyErr += Math.abs(s.obs[3] + (s.info.reward_ctrl as number) - s.reward);
      obs = s.obs;
    }
    const mae = absErr / steps;
    console.log(`Swimmer task reward: MAE ${mae.toExponential(3)} vs mean |reward| ${(absReward / steps).toFixed(4)}; next-velocity-only MAE ${(nextOnlyErr / steps).toExponential(3)}`);
    // Measured 4–6e-3 on random actions and ≈4e-3 on a sinusoidal gait, against mean |reward|
    // ≈ 0.2–0.4 (RK4 substeps follow the continuous trajectory, so the trapezoid is close).
    // 1e-2 leaves room for other MuJoCo builds; the next-velocity-only estimate (≈7e-2) fails.
    expect(mae).toBeLessThan(1e-2);
    expect(mae).toBeLessThan(0.25 * (nextOnlyErr / steps));

    // Batched, hand-computed: forward term (v + v')/2, control 1e-4 Σ a².
    const o = new Float64Array(16);
    const n = new Float64Array(16);
    o[3] = 1;
    n[3] = 2;
    o[8 + 3] = -1;
    n[8 + 3] = 0;
    const out = new Float64Array(2);
    swimmerTask.reward(o, Float64Array.of(1, 0, 0.5, 0.5), n, 2, out);
    expect(out[0]).toBeCloseTo(1.5 - 1e-4, 12);
    expect(out[1]).toBeCloseTo(-0.5 - 0.5e-4, 12);
  });

  it('under action delay, moves with the delayed action but charges the commanded one', async () => {
    const delayed = await Swimmer.create({ physics: { actionDelaySteps: 1 } });
    try {
      delayed.reset({ seed: 0 });
      const s = delayed.step([1, -0.5]);
      expect(s.info.reward_ctrl).toBeCloseTo(-1e-4 * 1.25, 12);
      env.reset({ seed: 0 });
      const z = env.step([0, 0]);
      expect(Array.from(s.obs)).toEqual(Array.from(z.obs));
    } finally {
      delayed.close();
    }
  });

  it('is deterministic per seed (a fresh instance included), and seeds differ', async () => {
    const run = (e: Swimmer, seed: number): number[] => {
      const rng = new Rng(11);
      const out = Array.from(e.reset({ seed }).obs);
      for (let t = 0; t < 50; t++) {
        const s = e.step(e.actionSpace.sample(rng));
        out.push(...s.obs, s.reward);
      }
      return out;
    };
    const first = run(env, 5);
    expect(run(env, 5)).toEqual(first);
    expect(run(env, 6)).not.toEqual(first);
    // A fresh instance matches one that has run other episodes: reset clears all of MuJoCo's data.
    const fresh = await Swimmer.create();
    expect(run(fresh, 5)).toEqual(first);
    expect(internals(env).data.time).toBeGreaterThan(0);
    env.reset({ seed: 5 });
    expect(internals(env).data.time).toBe(0);
    fresh.close();
  });

  it('physics variants: half gain or double mass swing the rotors less; nominal equals default', async () => {
    const rollout = async (physics: Partial<PhysicsParams>): Promise<{ obs: number[]; rotorPath: number; e: Swimmer }> => {
      const e = await Swimmer.create({ physics });
      const obs = Array.from(e.reset({ seed: 0 }).obs);
      let rotorPath = 0;
      for (let t = 0; t < 100; t++) {
        const s = e.step([Math.sin(0.5 * t), Math.sin(0.5 * t + 1.5)]);
        obs.push(...s.obs);
        rotorPath += (Math.abs(s.obs[6]) + Math.abs(s.obs[7])) * e.dt;
      }
      return { obs, rotorPath, e };
    };
    const nominal = await rollout({});
    const explicitNominal = await rollout({ massScale: 1, frictionScale: 1, actuatorGain: 1, obsNoiseStd: 0, actionDelaySteps: 0 });
    const weak = await rollout({ actuatorGain: 0.5 });
    const heavy = await rollout({ massScale: 2 });
    try {
      console.log(`Swimmer rotor path over 100 steps: nominal ${nominal.rotorPath.toFixed(3)}, gain 0.5 ${weak.rotorPath.toFixed(3)}, mass 2 ${heavy.rotorPath.toFixed(3)}`);
      expect(explicitNominal.obs).toEqual(nominal.obs);
      // Measured 16.5 rad nominal, 11.3 at half gain, 9.1 at double mass (the fluid's drag and the
      // joints' armature keep the response from halving).
      expect(weak.rotorPath).toBeLessThan(0.8 * nominal.rotorPath);
      expect(heavy.rotorPath).toBeLessThan(0.8 * nominal.rotorPath);
      const m0 = internals(nominal.e).model.body_mass as Float64Array;
      const m2 = internals(heavy.e).model.body_mass as Float64Array;
      for (let b = 0; b < m0.length; b++) expect(m2[b]).toBeCloseTo(2 * m0[b], 12);
    } finally {
      for (const r of [nominal, explicitNominal, weak, heavy]) r.e.close();
    }
  });

  it('rejects NaN and wrong-length actions naming `action`, leaving the state unchanged', () => {
    env.reset({ seed: 4 });
    env.step([0.3, -0.3]);
    const before = [...internals(env).qpos, ...internals(env).qvel];
    const fieldOf = (action: number[]): string => {
      try {
        env.step(action);
      } catch (err) {
        expect(err).toBeInstanceOf(ValidationError);
        return (err as ValidationError).field;
      }
      throw new Error('expected a ValidationError');
    };
    expect(fieldOf([NaN, 0])).toBe('action[0]');
    expect(fieldOf([0, 0, 0])).toBe('action');
    expect([...internals(env).qpos, ...internals(env).qvel]).toEqual(before);
    expect(env.elapsedSteps).toBe(1);
  });

  it('close() is idempotent', async () => {
    const e = await Swimmer.create();
    e.close();
    expect(() => e.close()).not.toThrow();
  });
});
