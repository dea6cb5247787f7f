import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { ANT_SPEC, ANT_V5, Ant, antTask } from '../../src/envs/ant.js';
import { HAVE_MJCF, MJCF_DIR } from '../helpers.js';
import {
  compareTrapezoidTask,
  expectCloseIdempotent,
  expectPhysicsVariantsDiverge,
  expectSameSeedSameRollout,
  expectSpecMakes,
  expectTruncatesAt,
  expectUniformCoverage,
  initStateOf,
  internals,
  mean,
  rejectBadActions,
  stateOf,
  std,
  stepDelayedAndStill,
  stepFrom,
} from './mujocoTestUtils.js';

/** The torso's x position from `data.xpos` (body 1), as the forward reward reads it. */
const torsoX = (env: Ant): number => internals(env).bodyXpos(1)[0];

describe.skipIf(!HAVE_MJCF)('Ant-v5', () => {
  it("has Gymnasium's sizes, bounds, dt, time limit and observation names", async () => {
    const env = await Ant.create();
    expect(env.id).toBe('Ant-v5');
    // v5 observes the contact forces by default: 13 qpos + 14 qvel + 13 bodies × 6 = 105.
    expect(env.observationSpace.dim).toBe(105);
    expect(Array.from(env.observationSpace.low)).toEqual(new Array(105).fill(-Infinity));
    expect(env.actionSpace.dim).toBe(8);
    expect(Array.from(env.actionSpace.low)).toEqual(new Array(8).fill(-1));
    expect(Array.from(env.actionSpace.high)).toEqual(new Array(8).fill(1));
    expect(env.dt).toBeCloseTo(0.05, 15);
    expect(env.frameSkip).toBe(5);
    expect(env.maxEpisodeSteps).toBe(1000);
    expect(env.obsNames).toHaveLength(105);
    expect(new Set(env.obsNames).size).toBe(105);
    expect(env.obsNames?.[0]).toBe('qpos[2]:root.z');
    expect(env.obsNames?.[13]).toBe('qvel[0]:root.vx');
    expect(env.obsNames?.[27]).toBe('cfrc_ext[1]:torso.torque_x');
    expect(env.obsNames?.[104]).toBe('cfrc_ext[13]:ankle_4.force_z');
    const { obs } = env.reset({ seed: 0 });
    expect(obs).toBeInstanceOf(Float64Array);
    expect(obs).toHaveLength(105);
    expect(ANT_SPEC).toMatchObject({ obsDim: 105, actDim: 8, actLow: new Array(8).fill(-1), actHigh: new Array(8).fill(1), maxEpisodeSteps: 1000, mjcfFile: 'ant.xml', kind: 'mujoco' });
    expect(ANT_SPEC.dt).toBeCloseTo(env.dt, 15);
    env.close();
    await expectSpecMakes(ANT_SPEC, Ant);
  });

  it('resets qpos to init + U(−0.1, 0.1) and qvel to 0.1·N(0, 1)', async () => {
    const env = await Ant.create();
    const init = initStateOf(env);
    expect(init.qpos).toEqual([0, 0, 0.75, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(init.qvel).toEqual(new Array(14).fill(0));
    const s = ANT_V5.resetNoiseScale;
    const posNoise: number[][] = [];
    const v: number[] = [];
    for (let seed = 0; seed < 300; seed++) {
      const { obs, info } = env.reset({ seed });
      const { qpos, qvel } = stateOf(env);
      expect(info).toEqual({ x_position: qpos[0], y_position: qpos[1], distance_from_origin: Math.hypot(qpos[0], qpos[1]) });
      // As in Gymnasium, set_state runs mj_forward only, so the contact forces start at zero.
      expect(Array.from(obs)).toEqual([...qpos.slice(2), ...qvel, ...new Array(78).fill(0)]);
      posNoise.push(qpos.map((q, i) => q - init.qpos[i]));
      v.push(...qvel);
    }
    expect(posNoise[0]).toHaveLength(15);
    expectUniformCoverage(posNoise, s);
    // 4200 normal draws: the mean's standard error is 1.5e−3 and the std's 1.1e−3.
    expect(Math.abs(mean(v))).toBeLessThan(0.006);
    expect(std(v)).toBeGreaterThan(0.095);
    expect(std(v)).toBeLessThan(0.105);
    // Normal, not uniform: about 11 of 4200 draws lie beyond 3σ.
    expect(Math.max(...v.map(Math.abs))).toBeGreaterThan(3 * s);
    env.close();
  });

  it("computes Gymnasium's reward terms and info, with the control cost on the commanded action", async () => {
    const env = await Ant.create();
    env.reset({ seed: 5 });
    let x = 0;
    let xTorso = torsoX(env);
    let sawContact = false;
    const rng = new Rng(5);
    for (let t = 0; t < 20; t++) {
      const a = Array.from(env.actionSpace.sample(rng), (u) => 1.5 * u); // beyond the bounds too
      const r = env.step(a);
      const xAfter = r.info.x_position as number;
      // As Gymnasium, the forward reward differentiates the torso body's data.xpos, which after
      // mj_step lags qpos[0] (info.x_position) slightly.
      expect(r.info.x_velocity).toBeCloseTo((torsoX(env) - xTorso) / env.dt, 12);
      xTorso = torsoX(env);
      if (t > 0) expect(Math.abs((r.info.x_velocity as number) - (xAfter - x) / env.dt)).toBeLessThan(0.1);
      x = xAfter;
      expect(r.info.distance_from_origin).toBeCloseTo(Math.hypot(xAfter, r.info.y_position as number), 15);
      expect(r.info.reward_ctrl).toBeCloseTo(-0.5 * a.reduce((acc, u) => acc + u * u, 0), 12);
      const contact = r.obs.subarray(27);
      expect(contact.every((f) => f >= -1 && f <= 1)).toBe(true);
      if (contact.some((f) => f !== 0)) sawContact = true;
      expect(r.info.reward_contact).toBeCloseTo(-5e-4 * contact.reduce((acc, f) => acc + f * f, 0), 15);
      expect(r.info.reward_forward).toBe(r.info.x_velocity);
      expect(r.info.reward_survive).toBe(1);
      const sum = (r.info.reward_forward as number) + 1 + (r.info.reward_ctrl as number) + (r.info.reward_contact as number);
      expect(r.reward).toBeCloseTo(sum, 12);
      expect(r.terminated).toBe(false);
    }
    expect(sawContact).toBe(true);
    env.close();
  });

  it('terminates when the height leaves [0.2, 1] or the state is not finite, and not when healthy', async () => {
    const env = await Ant.create();
    expect(stepFrom(env, {}).terminated).toBe(false);
    const high = stepFrom(env, { 2: 1.2 });
    expect(high.obs[0]).toBeGreaterThan(1);
    expect(high.terminated).toBe(true);
    expect(high.info.reward_survive).toBe(0);
    const flag = new Uint8Array(1);
    antTask.terminated([], [], high.obs, 1, flag);
    expect(flag[0]).toBe(1);
    // Contacts push a torso set below 0.2 back up within a step, so the low bound is checked on
    // constructed states; the bounds are closed, as Gymnasium's `min_z <= z <= max_z`.
    env.reset({ seed: 1 });
    const { qpos, qvel } = stateOf(env);
    const put = (p: number[], v: number[]) => internals(env).setState(p, v);
    const withZ = (z: number) => qpos.map((q, i) => (i === 2 ? z : q));
    for (const [z, healthy] of [[0.2, true], [1, true], [0.55, true], [0.1999999, false], [1.0000001, false]] as const) {
      put(withZ(z), qvel);
      expect(env.isHealthy, `z = ${z}`).toBe(healthy);
      const obs = new Float64Array(105);
      obs[0] = z;
      antTask.terminated([], [], obs, 1, flag);
      expect(flag[0]).toBe(healthy ? 0 : 1);
    }
    put(withZ(0.55), qvel.map((q, i) => (i === 4 ? Number.NaN : q)));
    expect(env.isHealthy).toBe(false);
    env.close();
  });

  it('task functions: exact healthy, control and contact terms, forward reward within 0.1 on random rollouts, termination agrees', async () => {
    const env = await Ant.create();
    // The forward term is the trapezoid of the torso's x velocity qvel[0], obs[13] before and after.
    const { mae, meanAbsForward, n, terminations } = compareTrapezoidTask(env, antTask, { seed: 7, steps: 3000, vxIndex: 13 });
    env.close();
    console.log(`Ant-v5 task reward: MAE ${mae.toExponential(3)} vs mean |forward reward| ${meanAbsForward.toFixed(3)} over ${n} steps, ${terminations} terminations`);
    // Random actions rarely end an Ant episode (it terminates by bouncing above z = 1).
    expect(terminations).toBeGreaterThanOrEqual(5);
    // Measured 4.3e−2 (seed 7): over a 50 ms step the velocity changes much more than in
    // Hopper's 8 ms, most at leg contacts. 0.1 is ~2.3× that; dropping the forward term or using
    // one end's velocity fails it (errors ≈ 0.39 and 0.13).
    expect(mae).toBeLessThan(0.1);
  });

  it('is deterministic: the same seed gives the same trajectory', async () => {
    await expectSameSeedSameRollout((options) => Ant.create(options));
  });

  it('truncates at maxEpisodeSteps while healthy', async () => {
    const env = await Ant.create({ maxEpisodeSteps: 5 });
    expectTruncatesAt(env, 5, () => new Float64Array(8));
    env.close();
  });

  it('applies physics variants: mass, friction, actuator gain; nominal equals default', async () => {
    await expectPhysicsVariantsDiverge((options) => Ant.create(options));
  });

  it('under action delay moves with the delayed action but charges the commanded one', async () => {
    const delayed = await Ant.create({ physics: { actionDelaySteps: 1 } });
    const still = await Ant.create();
    const r = stepDelayedAndStill(delayed, still, 4, [1, -1, 1, -1, 1, -1, 1, -1]);
    expect(r.info.reward_ctrl).toBeCloseTo(-4, 15);
    delayed.close();
    still.close();
  });

  it('rejects a NaN or wrong-length action with a ValidationError naming `action`, leaving the state unchanged', async () => {
    const env = await Ant.create();
    const fresh = await Ant.create();
    env.reset({ seed: 2 });
    fresh.reset({ seed: 2 });
    rejectBadActions(env, [[0, Number.NaN, 0, 0, 0, 0, 0, 0], [0, 0, 0], new Array(9).fill(0), [0, 0, 0, 0, 0, 0, 0, -Infinity]]);
    expect(env.elapsedSteps).toBe(0);
    expect(env.step([0.1, 0.2, 0.3, 0.4, -0.1, -0.2, -0.3, -0.4])).toEqual(fresh.step([0.1, 0.2, 0.3, 0.4, -0.1, -0.2, -0.3, -0.4]));
    env.close();
    fresh.close();
  });

  it('rejects a model of the wrong size with a ValidationError naming the sizes', async () => {
    const wrong = Ant.create({ mjcfPath: `${MJCF_DIR ?? ''}/half_cheetah.xml` });
    await expect(wrong).rejects.toThrow(ValidationError);
    await expect(wrong).rejects.toThrow(/mjcf: expected a model with nq=15, nv=14, nu=8, nbody=14 \(Gymnasium's ant.xml\), got nq=9, nv=9, nu=6, nbody=8/);
  });

  it('close() is idempotent', async () => {
    await expectCloseIdempotent(() => Ant.create());
  });
});
