import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PhysicsParams } from '../../src/core/env.js';
import { SWIMMER_SPEC, Swimmer, swimmerTask } from '../../src/envs/swimmer.js';
import { HAVE_MJCF, MJCF_SKIP_REASON } from '../helpers.js';
import {
  expectCloseIdempotent,
  expectDeterministicPerSeed,
  expectGymnasiumFacts,
  expectScaled,
  expectSpecMakes,
  expectTruncatesAt,
  forwardRewardErrors,
  internals,
  rejectBadActions,
  stepDelayedAndStill,
} from './mujocoTestUtils.js';

describe.skipIf(!HAVE_MJCF)(`Swimmer-v5 ${MJCF_SKIP_REASON}`, () => {
  let env: Swimmer;
  beforeAll(async () => {
    env = await Swimmer.create();
  });
  afterAll(() => env.close());

  it("has Gymnasium's spaces, dt and time limit, and the spec agrees", () => {
    expectGymnasiumFacts(env, SWIMMER_SPEC, {
      id: 'Swimmer-v5',
      obsDim: 8,
      actLow: [-1, -1],
      actHigh: [1, 1],
      frameSkip: 4,
      dt: 0.04,
      maxEpisodeSteps: 1000,
      mjcfFile: 'swimmer.xml',
    });
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
    expect(SWIMMER_SPEC.task).toBe(swimmerTask);
    expect(swimmerTask.rewardExact).toBe(false);
  });

  it('spec.make builds a Swimmer', async () => {
    await expectSpecMakes(SWIMMER_SPEC, Swimmer);
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
    expectTruncatesAt(env, 1000, (t) => [Math.sin(0.5 * t), Math.cos(0.5 * t)]);
  });

  it('task reward approximates the forward reward within the measured bound; control cost exact', () => {
    // The tip's x velocity is obs[3].
    const { mae, meanAbsReward, nextOnlyMae } = forwardRewardErrors(env, swimmerTask, { seed: 2024, steps: 1000, vxIndex: 3 });
    console.log(`Swimmer task reward: MAE ${mae.toExponential(3)} vs mean |reward| ${meanAbsReward.toFixed(4)}; next-velocity-only MAE ${nextOnlyMae.toExponential(3)}`);
    // Measured 4–6e-3 on random actions and ≈4e-3 on a sinusoidal gait, against mean |reward|
    // ≈ 0.2–0.4 (RK4 substeps follow the continuous trajectory, so the trapezoid is close).
    // 1e-2 leaves room for other MuJoCo builds; the next-velocity-only estimate (≈7e-2) fails.
    expect(mae).toBeLessThan(1e-2);
    expect(mae).toBeLessThan(0.25 * nextOnlyMae);

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
      const s = stepDelayedAndStill(delayed, env, 0, [1, -0.5]);
      expect(s.info.reward_ctrl).toBeCloseTo(-1e-4 * 1.25, 12);
    } finally {
      delayed.close();
    }
  });

  it('is deterministic per seed (a fresh instance included), and seeds differ', async () => {
    await expectDeterministicPerSeed(env, () => Swimmer.create(), { steps: 50 });
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
      expectScaled(internals(nominal.e).model.body_mass as Float64Array, internals(heavy.e).model.body_mass as Float64Array, 2);
    } finally {
      for (const r of [nominal, explicitNominal, weak, heavy]) r.e.close();
    }
  });

  it('rejects NaN and wrong-length actions naming `action`, leaving the state unchanged', () => {
    env.reset({ seed: 4 });
    env.step([0.3, -0.3]);
    expect(rejectBadActions(env, [[NaN, 0], [0, 0, 0]])).toEqual(['action[0]', 'action']);
    expect(env.elapsedSteps).toBe(1);
  });

  it('close() is idempotent', async () => {
    await expectCloseIdempotent(() => Swimmer.create());
  });
});
