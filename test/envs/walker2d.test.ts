import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { WALKER2D_SPEC, WALKER2D_V5, Walker2d, walker2dTask } from '../../src/envs/walker2d.js';
import { HAVE_MJCF, MJCF_DIR } from '../helpers.js';
import {
  compareTrapezoidTask,
  expectCloseIdempotent,
  expectHealthyForwardRewardTerms,
  expectPhysicsVariantsDiverge,
  expectPlanarWalkerReset,
  expectSameSeedSameRollout,
  expectSpecMakes,
  expectTerminationCases,
  expectTruncatesAt,
  expectVelocityClipped,
  initStateOf,
  internals,
  rejectBadActions,
  stateOf,
  stepDelayedAndStill,
} from './mujocoTestUtils.js';

describe.skipIf(!HAVE_MJCF)('Walker2d-v5', () => {
  it("has Gymnasium's sizes, bounds, dt, time limit and observation names", async () => {
    const env = await Walker2d.create();
    expect(env.id).toBe('Walker2d-v5');
    expect(env.observationSpace.dim).toBe(17);
    expect(Array.from(env.observationSpace.low)).toEqual(new Array(17).fill(-Infinity));
    expect(env.actionSpace.dim).toBe(6);
    expect(Array.from(env.actionSpace.low)).toEqual(new Array(6).fill(-1));
    expect(Array.from(env.actionSpace.high)).toEqual(new Array(6).fill(1));
    expect(env.dt).toBe(0.008);
    expect(env.frameSkip).toBe(4);
    expect(env.maxEpisodeSteps).toBe(1000);
    expect(env.obsNames).toHaveLength(17);
    expect(new Set(env.obsNames).size).toBe(17);
    expect(env.obsNames?.[0]).toBe('qpos[1]:rootz');
    expect(env.obsNames?.[8]).toBe('qvel[0]:rootx');
    expect(env.obsNames?.[16]).toBe('qvel[8]:foot_left_joint');
    const { obs } = env.reset({ seed: 0 });
    expect(obs).toBeInstanceOf(Float64Array);
    expect(obs).toHaveLength(17);
    expect(WALKER2D_SPEC).toMatchObject({ obsDim: 17, actDim: 6, actLow: new Array(6).fill(-1), actHigh: new Array(6).fill(1), dt: env.dt, maxEpisodeSteps: 1000, mjcfFile: 'walker2d_v5.xml', kind: 'mujoco' });
    env.close();
    await expectSpecMakes(WALKER2D_SPEC, Walker2d);
  });

  it('resets to the initial state plus U(−5e−3, 5e−3) noise on every qpos and qvel entry', async () => {
    const env = await Walker2d.create();
    const init = initStateOf(env);
    expect(init.qpos).toEqual([0, 1.25, 0, 0, 0, 0, 0, 0, 0]);
    expect(init.qvel).toEqual(new Array(9).fill(0));
    expectPlanarWalkerReset(env, WALKER2D_V5.resetNoiseScale);
    env.close();
  });

  it("computes Gymnasium's reward terms and info, with the control cost on the commanded action", async () => {
    const env = await Walker2d.create();
    expectHealthyForwardRewardTerms(env, { dt: 0.008, ctrlCostWeight: 1e-3, initZ: 1.25 });
    env.close();
  });

  it('clips the observed velocities to ±10', async () => {
    const env = await Walker2d.create();
    expectVelocityClipped(env, 8);
    env.close();
  });

  it('terminates when the height leaves (0.8, 2) or the angle leaves (−1, 1), and not when healthy', async () => {
    const env = await Walker2d.create();
    expectTerminationCases(env, walker2dTask, [
      [{}, false],
      [{ 1: 0.3 }, true],
      [{ 1: 0.6 }, true],
      [{ 1: 2.1 }, true],
      [{ 1: 1.9 }, false],
      [{ 2: 1.05 }, true],
      [{ 2: -1.05 }, true],
      [{ 2: 0.95 }, false],
      [{ 2: -0.95 }, false],
    ]);
    // The bounds are open intervals, as Gymnasium's `min < x < max`.
    env.reset({ seed: 1 });
    const { qvel } = stateOf(env);
    const put = (qpos: number[], v: number[]) => internals(env).setState(qpos, v);
    const at = (z: number, angle: number) => [0, z, angle, 0, 0, 0, 0, 0, 0];
    put(at(0.8, 0), qvel);
    expect(env.isHealthy).toBe(false);
    put(at(2, 0), qvel);
    expect(env.isHealthy).toBe(false);
    put(at(1.2, 1), qvel);
    expect(env.isHealthy).toBe(false);
    put(at(0.8000001, -0.9999999), qvel);
    expect(env.isHealthy).toBe(true);
    // Unlike Hopper, v5's Walker2d has no range on the other joints or the velocities.
    put([0, 1.25, 0, 2, 0, 0, 0, 0, 0], new Array(9).fill(150));
    expect(env.isHealthy).toBe(true);
    expect(walker2dTask.terminatedExact).toBe(true);
    env.close();
  });

  it('task functions: exact healthy and control terms, forward reward within 0.02 on random rollouts, termination agrees', async () => {
    const env = await Walker2d.create();
    // The forward term is the trapezoid of the torso's x velocity, obs[8] before and after.
    const { mae, meanAbsForward, n, terminations } = compareTrapezoidTask(env, walker2dTask, { seed: 7, steps: 3000, vxIndex: 8 });
    env.close();
    console.log(`Walker2d-v5 task reward: MAE ${mae.toExponential(3)} vs mean |forward reward| ${meanAbsForward.toFixed(3)} over ${n} steps, ${terminations} terminations`);
    // Random episodes fall within ~10–50 steps, so 3000 steps give ~150 terminations.
    expect(terminations).toBeGreaterThan(50);
    // Measured 8.1e−3 (seed 7): the trapezoid of the velocities misses only the velocity's
    // curvature within 8 ms (largest at foot impacts). 0.02 is ~2.5× that; dropping the forward
    // term or using one end's velocity fails it (errors ≈ 0.9 and 0.11).
    expect(mae).toBeLessThan(0.02);
  });

  it('is deterministic: the same seed gives the same trajectory', async () => {
    await expectSameSeedSameRollout((options) => Walker2d.create(options));
  });

  it('truncates at maxEpisodeSteps while healthy', async () => {
    const env = await Walker2d.create({ maxEpisodeSteps: 5 });
    expectTruncatesAt(env, 5, () => new Float64Array(6));
    env.close();
  });

  it('applies physics variants: mass, friction, actuator gain; nominal equals default', async () => {
    await expectPhysicsVariantsDiverge((options) => Walker2d.create(options));
  });

  it('under action delay moves with the delayed action but charges the commanded one', async () => {
    const delayed = await Walker2d.create({ physics: { actionDelaySteps: 1 } });
    const still = await Walker2d.create();
    const r = stepDelayedAndStill(delayed, still, 4, [1, -1, 1, -1, 1, -1]);
    expect(r.info.reward_ctrl).toBeCloseTo(-6e-3, 15);
    delayed.close();
    still.close();
  });

  it('rejects a NaN or wrong-length action with a ValidationError naming `action`, leaving the state unchanged', async () => {
    const env = await Walker2d.create();
    const fresh = await Walker2d.create();
    env.reset({ seed: 2 });
    fresh.reset({ seed: 2 });
    rejectBadActions(env, [[0, Number.NaN, 0, 0, 0, 0], [0, 0, 0], new Array(7).fill(0), [0, 0, 0, 0, 0, Infinity]]);
    expect(env.elapsedSteps).toBe(0);
    expect(env.step([0.1, 0.2, 0.3, -0.1, -0.2, -0.3])).toEqual(fresh.step([0.1, 0.2, 0.3, -0.1, -0.2, -0.3]));
    env.close();
    fresh.close();
  });

  it('rejects a model of the wrong size with a ValidationError naming the sizes', async () => {
    const wrong = Walker2d.create({ mjcfPath: `${MJCF_DIR ?? ''}/hopper.xml` });
    await expect(wrong).rejects.toThrow(ValidationError);
    await expect(wrong).rejects.toThrow(/mjcf: expected a model with nq=9, nv=9, nu=6 \(Gymnasium's walker2d_v5.xml\), got nq=6, nv=6, nu=3/);
  });

  it('close() is idempotent', async () => {
    await expectCloseIdempotent(() => Walker2d.create());
  });
});
