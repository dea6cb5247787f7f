import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { HOPPER_SPEC, HOPPER_V5, Hopper, hopperTask } from '../../src/envs/hopper.js';
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
  stepFrom,
} from './mujocoTestUtils.js';

describe.skipIf(!HAVE_MJCF)('Hopper-v5', () => {
  it("has Gymnasium's sizes, bounds, dt, time limit and observation names", async () => {
    const env = await Hopper.create();
    expect(env.id).toBe('Hopper-v5');
    expect(env.observationSpace.dim).toBe(11);
    expect(Array.from(env.observationSpace.low)).toEqual(new Array(11).fill(-Infinity));
    expect(env.actionSpace.dim).toBe(3);
    expect(Array.from(env.actionSpace.low)).toEqual([-1, -1, -1]);
    expect(Array.from(env.actionSpace.high)).toEqual([1, 1, 1]);
    expect(env.dt).toBe(0.008);
    expect(env.frameSkip).toBe(4);
    expect(env.maxEpisodeSteps).toBe(1000);
    expect(env.obsNames).toHaveLength(11);
    expect(new Set(env.obsNames).size).toBe(11);
    expect(env.obsNames?.[0]).toBe('qpos[1]:rootz');
    const { obs } = env.reset({ seed: 0 });
    expect(obs).toBeInstanceOf(Float64Array);
    expect(obs).toHaveLength(11);
    expect(HOPPER_SPEC).toMatchObject({ obsDim: 11, actDim: 3, actLow: [-1, -1, -1], actHigh: [1, 1, 1], dt: env.dt, maxEpisodeSteps: 1000, mjcfFile: 'hopper.xml', kind: 'mujoco' });
    env.close();
    await expectSpecMakes(HOPPER_SPEC, Hopper);
  });

  it('resets to the initial state plus U(−5e−3, 5e−3) noise on every qpos and qvel entry', async () => {
    const env = await Hopper.create();
    const init = initStateOf(env);
    expect(init.qpos).toEqual([0, 1.25, 0, 0, 0, 0]);
    expect(init.qvel).toEqual([0, 0, 0, 0, 0, 0]);
    expectPlanarWalkerReset(env, HOPPER_V5.resetNoiseScale);
    env.close();
  });

  it("computes Gymnasium's reward terms and info, with the control cost on the commanded action", async () => {
    const env = await Hopper.create();
    expectHealthyForwardRewardTerms(env, { dt: 0.008, ctrlCostWeight: 1e-3, initZ: 1.25 });
    env.close();
  });

  it('clips the observed velocities to ±10', async () => {
    const env = await Hopper.create();
    expectVelocityClipped(env, 5);
    env.close();
  });

  it('terminates when the height leaves (0.7, ∞) or the angle leaves (−0.2, 0.2), and not when healthy', async () => {
    const env = await Hopper.create();
    expectTerminationCases(env, hopperTask, [
      [{}, false],
      [{ 1: 0.3 }, true],
      [{ 1: 0.6 }, true],
      [{ 1: 0.75 }, false],
      [{ 2: 0.21 }, true],
      [{ 2: -0.21 }, true],
      [{ 2: 0.19 }, false],
      [{ 2: -0.19 }, false],
    ]);
    // The bounds are open intervals, as Gymnasium's `min < x < max`.
    env.reset({ seed: 1 });
    const { qvel } = stateOf(env);
    const put = (qpos: number[], v: number[]) => internals(env).setState(qpos, v);
    put([0, 0.7, 0, 0, 0, 0], qvel);
    expect(env.isHealthy).toBe(false);
    put([0, 0.7000001, 0.2, 0, 0, 0], qvel);
    expect(env.isHealthy).toBe(false);
    put([0, 0.7000001, 0.1999999, 0, 0, 0], qvel);
    expect(env.isHealthy).toBe(true);
    // A joint angle or unclipped velocity outside (−100, 100) is unhealthy.
    put([0, 1.25, 0, 0, 0, 0], [0, 0, 0, 0, 100, 0]);
    expect(env.isHealthy).toBe(false);
    env.close();
  });

  it('terminates on |qvel| ≥ 100, which the clipped observation cannot show (task terminatedExact is false)', async () => {
    const env = await Hopper.create();
    const r = stepFrom(env, {}, { 0: 150 });
    expect(stateOf(env).qvel[0]).toBeGreaterThan(100);
    expect(r.terminated).toBe(true);
    const flag = new Uint8Array(1);
    hopperTask.terminated([], [], r.obs, 1, flag);
    expect(flag[0]).toBe(0);
    expect(hopperTask.terminatedExact).toBe(false);
    env.close();
  });

  it('task functions: exact healthy and control terms, forward reward within 0.005 on random rollouts, termination agrees', async () => {
    const env = await Hopper.create();
    // The forward term is the trapezoid of the torso's x velocity, obs[5] before and after.
    const { mae, meanAbsForward, n, terminations } = compareTrapezoidTask(env, hopperTask, { seed: 7, steps: 3000, vxIndex: 5 });
    env.close();
    console.log(`Hopper-v5 task reward: MAE ${mae.toExponential(3)} vs mean |forward reward| ${meanAbsForward.toFixed(3)} over ${n} steps, ${terminations} terminations`);
    // Random episodes fall within ~10–50 steps, so 3000 steps give ~130 terminations.
    expect(terminations).toBeGreaterThan(50);
    // Measured 1.6e−3 (seed 7): the trapezoid of the velocities misses only the velocity's
    // curvature within 8 ms (largest at foot impacts). 0.005 is ~3× that and ~5% of the mean
    // |forward reward|; dropping the forward term or using one end's velocity fails it
    // (errors ≈ 0.3 and 0.04).
    expect(mae).toBeLessThan(0.005);
  });

  it('is deterministic: the same seed gives the same trajectory', async () => {
    await expectSameSeedSameRollout((options) => Hopper.create(options));
  });

  it('truncates at maxEpisodeSteps while healthy', async () => {
    const env = await Hopper.create({ maxEpisodeSteps: 5 });
    expectTruncatesAt(env, 5, () => new Float64Array(3));
    env.close();
  });

  it('applies physics variants: mass, friction, actuator gain; nominal equals default', async () => {
    await expectPhysicsVariantsDiverge((options) => Hopper.create(options));
  });

  it('under action delay moves with the delayed action but charges the commanded one', async () => {
    const delayed = await Hopper.create({ physics: { actionDelaySteps: 1 } });
    const still = await Hopper.create();
    const r = stepDelayedAndStill(delayed, still, 4, [1, -1, 1]);
    expect(r.info.reward_ctrl).toBeCloseTo(-3e-3, 15);
    delayed.close();
    still.close();
  });

  it('rejects a NaN or wrong-length action with a ValidationError naming `action`, leaving the state unchanged', async () => {
    const env = await Hopper.create();
    const fresh = await Hopper.create();
    env.reset({ seed: 2 });
    fresh.reset({ seed: 2 });
    rejectBadActions(env, [[0, Number.NaN, 0], [0, 0], [0, 0, 0, 0], [Infinity, 0, 0]]);
    expect(env.elapsedSteps).toBe(0);
    expect(env.step([0.1, 0.2, 0.3])).toEqual(fresh.step([0.1, 0.2, 0.3]));
    env.close();
    fresh.close();
  });

  it('rejects a model of the wrong size with a ValidationError naming the sizes', async () => {
    const wrong = Hopper.create({ mjcfPath: `${MJCF_DIR ?? ''}/walker2d_v5.xml` });
    await expect(wrong).rejects.toThrow(ValidationError);
    await expect(wrong).rejects.toThrow(/mjcf: expected a model with nq=6, nv=6, nu=3 \(Gymnasium's hopper.xml\), got nq=9, nv=9, nu=6/);
  });

  it('close() is idempotent', async () => {
    await expectCloseIdempotent(() => Hopper.create());
  });
});
