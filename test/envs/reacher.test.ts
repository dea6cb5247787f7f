import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PhysicsParams } from '../../src/core/env.js';
import { Rng } from '../../src/core/rng.js';
import { REACHER_SPEC, Reacher, reacherTask } from '../../src/envs/reacher.js';
import { HAVE_MJCF, MJCF_SKIP_REASON } from '../helpers.js';
import {
  expectCloseIdempotent,
  expectDeterministicPerSeed,
  expectGymnasiumFacts,
  expectScaled,
  expectSpecMakes,
  expectTruncatesAt,
  internals,
  rejectBadActions,
  stepDelayedAndStill,
} from './mujocoTestUtils.js';

/** The fingertip's (x, y) by hand: links of 0.1 m and 0.11 m from the origin (reacher.xml). */
function fingertip(q0: number, q1: number): [number, number] {
  return [0.1 * Math.cos(q0) + 0.11 * Math.cos(q0 + q1), 0.1 * Math.sin(q0) + 0.11 * Math.sin(q0 + q1)];
}

describe.skipIf(!HAVE_MJCF)(`Reacher-v5 ${MJCF_SKIP_REASON}`, () => {
  let env: Reacher;
  beforeAll(async () => {
    env = await Reacher.create();
  });
  afterAll(() => env.close());

  it("has Gymnasium's spaces, dt and time limit, and the spec agrees", () => {
    expectGymnasiumFacts(env, REACHER_SPEC, {
      id: 'Reacher-v5',
      obsDim: 10,
      actLow: [-1, -1],
      actHigh: [1, 1],
      frameSkip: 2,
      dt: 0.02,
      maxEpisodeSteps: 50,
      mjcfFile: 'reacher.xml',
    });
    expect(env.obsNames).toHaveLength(10);
    expect(env.obsNames?.[0]).toBe('cos(qpos[0]:joint0)');
    expect(env.obsNames?.[4]).toBe('qpos[2]:target_x');
    expect(env.obsNames?.[9]).toBe('fingertip_y-target_y');
    expect(REACHER_SPEC.task).toBe(reacherTask);
    expect(reacherTask.rewardExact).toBe(true);
  });

  it('spec.make builds a Reacher', async () => {
    await expectSpecMakes(REACHER_SPEC, Reacher);
  });

  it('resets the arm with U(±0.1) angles and U(±0.005) speeds, and the goal uniformly in the 0.2 disc, over 400 seeds', () => {
    const { initQpos, initQvel } = internals(env);
    expect(Array.from(initQpos)).toEqual([0, 0, 0.1, -0.1]); // the target joints' ref
    const armPos: number[] = [];
    const armVel: number[] = [];
    const goals: [number, number][] = [];
    for (let seed = 0; seed < 400; seed++) {
      const { obs } = env.reset({ seed });
      const { qpos, qvel } = internals(env);
      armPos.push(qpos[0] - initQpos[0], qpos[1] - initQpos[1]);
      armVel.push(qvel[0] - initQvel[0], qvel[1] - initQvel[1]);
      expect([qvel[2], qvel[3]]).toEqual([0, 0]);
      goals.push([qpos[2], qpos[3]]);
      expect(env.goal).toEqual([qpos[2], qpos[3]]);
      // Observation layout, the fingertip by hand (reset runs mj_forward, so xpos is current).
      const [fx, fy] = fingertip(qpos[0], qpos[1]);
      const expected = [Math.cos(qpos[0]), Math.cos(qpos[1]), Math.sin(qpos[0]), Math.sin(qpos[1]), qpos[2], qpos[3], qvel[0], qvel[1], fx - qpos[2], fy - qpos[3]];
      for (let j = 0; j < 10; j++) expect(obs[j]).toBeCloseTo(expected[j], 12);
    }
    expect(Math.max(...armPos.map(Math.abs))).toBeLessThanOrEqual(0.1);
    expect(Math.max(...armPos)).toBeGreaterThan(0.098);
    expect(Math.min(...armPos)).toBeLessThan(-0.098);
    expect(Math.max(...armVel.map(Math.abs))).toBeLessThanOrEqual(0.005);
    expect(Math.max(...armVel)).toBeGreaterThan(0.0049);
    const norms = goals.map(([x, y]) => Math.hypot(x, y));
    expect(Math.max(...norms)).toBeLessThan(0.2);
    // Uniform in the disc: P(r > 0.19) = 1 − 0.95² ≈ 0.1, and every quadrant gets about a quarter.
    const outer = norms.filter((r) => r > 0.19).length / norms.length;
    expect(outer).toBeGreaterThan(0.05);
    expect(outer).toBeLessThan(0.15);
    for (const [sx, sy] of [[1, 1], [1, -1], [-1, 1], [-1, -1]]) {
      const share = goals.filter(([x, y]) => Math.sign(x) === sx && Math.sign(y) === sy).length / goals.length;
      expect(share).toBeGreaterThan(0.18);
      expect(share).toBeLessThan(0.32);
    }
  });

  it("gives Gymnasium's reward from a known resting state: −‖fingertip − target‖ − Σ a²", () => {
    // Gravity acts along −z and every joint turns about or slides along the plane, so an arm at
    // rest stays put under a zero action: the fingertip is where the hand computation puts it.
    for (const [q0, q1, tx, ty] of [
      [0, 0, 0.1, -0.1],
      [Math.PI / 2, 0, -0.05, 0.12],
      [0.3, Math.PI / 2, 0.15, 0.05],
    ]) {
      env.reset({ seed: 0 });
      internals(env).setState([q0, q1, tx, ty], [0, 0, 0, 0]);
      const s = env.step([0, 0]);
      const [fx, fy] = fingertip(q0, q1);
      expect(s.info.reward_dist).toBeCloseTo(-Math.hypot(fx - tx, fy - ty), 12);
      expect(s.info.reward_ctrl).toBeCloseTo(0, 15);
      expect(s.reward).toBeCloseTo(-Math.hypot(fx - tx, fy - ty), 12);
      expect(s.obs[8]).toBeCloseTo(fx - tx, 12);
      expect(s.obs[9]).toBeCloseTo(fy - ty, 12);
      expect(Object.keys(s.info).sort()).toEqual(['reward_ctrl', 'reward_dist']);
    }
    // Control term: weight 1 (the code's default, not the docstring's 0.1), on the raw action.
    env.reset({ seed: 0 });
    const s = env.step([0.5, -2]);
    expect(s.info.reward_ctrl).toBeCloseTo(-(0.25 + 4), 12);
    expect(s.reward).toBeCloseTo((s.info.reward_dist as number) - 4.25, 12);
  });

  it('measures the distance after the step (v5), not before it (v4)', () => {
    env.reset({ seed: 0 });
    const [tx, ty] = [0.15, 0.1];
    internals(env).setState([0, 0, tx, ty], [5, 0, 0, 0]); // swinging at 5 rad/s
    const before = Math.hypot(...sub(fingertip(0, 0), [tx, ty]));
    const s = env.step([0, 0]);
    const { qpos } = internals(env);
    const after = Math.hypot(...sub(fingertip(qpos[0], qpos[1]), [tx, ty]));
    expect(qpos[0]).toBeGreaterThan(0.05);
    expect(Math.abs(after - before)).toBeGreaterThan(0.005);
    // xpos comes from MuJoCo's last RK4 stage (no forward pass after mj_step), as in Gymnasium:
    // measured 7.5e-8 from the final pose's distance, against 0.018 from the pre-step one.
    expect(Math.abs(-(s.info.reward_dist as number) - after)).toBeLessThan(1e-5);
    expect(s.info.reward_dist).toBeCloseTo(-Math.hypot(s.obs[8], s.obs[9]), 12);
  });

  it('task functions equal the environment exactly on a seeded random rollout', () => {
    const rng = new Rng(2024);
    let obs = env.reset({ seed: 2024 }).obs;
    const r = new Float64Array(1);
    const d = new Uint8Array(1);
    let maxErr = 0;
    // The observation's fingertip − target vector drops z, which is 0 here (measured: the task
    // reward equals the environment's bit for bit).
    for (let t = 0; t < 200; t++) {
      const a = env.actionSpace.sample(rng);
      const s = env.step(a);
      reacherTask.reward(obs, a, s.obs, 1, r);
      reacherTask.terminated(obs, a, s.obs, 1, d);
      expect(d[0]).toBe(0);
      maxErr = Math.max(maxErr, Math.abs(r[0] - s.reward));
      obs = s.truncated ? env.reset({ seed: 3000 + t }).obs : s.obs;
    }
    expect(maxErr).toBeLessThanOrEqual(1e-9);
    // Batched, hand-computed.
    const next = new Float64Array(20);
    next[8] = 0.3;
    next[9] = 0.4;
    next[18] = -0.06;
    next[19] = 0.08;
    const out = new Float64Array(2);
    reacherTask.reward(new Float64Array(20), Float64Array.of(1, 0, 0.1, 0.2), next, 2, out);
    expect(out[0]).toBeCloseTo(-0.5 - 1, 12);
    expect(out[1]).toBeCloseTo(-0.1 - 0.05, 12);
  });

  it('truncates after 50 steps and never terminates', () => {
    expectTruncatesAt(env, 50, () => [1, -1]);
  });

  it('under action delay, moves with the delayed action but charges the commanded one', async () => {
    const delayed = await Reacher.create({ physics: { actionDelaySteps: 1 } });
    try {
      const s = stepDelayedAndStill(delayed, env, 0, [0.5, -1]);
      expect(s.info.reward_ctrl).toBeCloseTo(-1.25, 12);
    } finally {
      delayed.close();
    }
  });

  it('is deterministic per seed (a fresh instance included), and seeds differ', async () => {
    await expectDeterministicPerSeed(env, () => Reacher.create(), { steps: 50 });
  });

  it('physics variants: half the gain turns the arm about half as far; mass scales body_mass; nominal equals default', async () => {
    const swing = async (physics: Partial<PhysicsParams>): Promise<{ angles: number[]; e: Reacher }> => {
      const e = await Reacher.create({ physics });
      e.reset({ seed: 0 });
      internals(e).setState([0, 0, 0.1, -0.1], [0, 0, 0, 0]);
      const angles: number[] = [];
      for (let t = 0; t < 5; t++) {
        e.step([0.2, 0]);
        angles.push(internals(e).qpos[0]);
      }
      return { angles, e };
    };
    const nominal = await swing({});
    const explicitNominal = await swing({ massScale: 1, frictionScale: 1, actuatorGain: 1, obsNoiseStd: 0, actionDelaySteps: 0 });
    const weak = await swing({ actuatorGain: 0.5 });
    const heavy = await swing({ massScale: 2 });
    try {
      expect(explicitNominal.angles).toEqual(nominal.angles);
      expect(nominal.angles[4]).toBeGreaterThan(0.1);
      const ratio = weak.angles[4] / nominal.angles[4];
      expect(ratio).toBeGreaterThan(0.4);
      expect(ratio).toBeLessThan(0.6);
      // The joints' armature (1) dominates the links' inertia, so twice the mass slows the arm
      // only a little.
      expect(heavy.angles[4]).toBeLessThan(nominal.angles[4]);
      expectScaled(internals(nominal.e).model.body_mass as Float64Array, internals(heavy.e).model.body_mass as Float64Array, 2);
    } finally {
      for (const r of [nominal, explicitNominal, weak, heavy]) r.e.close();
    }
  });

  it('rejects NaN and wrong-length actions naming `action`, leaving the state unchanged', () => {
    env.reset({ seed: 4 });
    env.step([0.3, -0.3]);
    expect(rejectBadActions(env, [[0, NaN], [0]])).toEqual(['action[1]', 'action']);
    expect(env.elapsedSteps).toBe(1);
  });

  it('rejects a model without a fingertip body, naming it', async () => {
    const xml = `<mujoco><worldbody>
      <body name="arm"><joint name="a" type="hinge" axis="0 0 1"/><geom size=".01" fromto="0 0 0 .1 0 0" type="capsule"/>
        <body name="arm2" pos=".1 0 0"><joint name="b" type="hinge" axis="0 0 1"/><geom size=".01" fromto="0 0 0 .1 0 0" type="capsule"/></body></body>
      <body name="target"><joint name="tx" type="slide" axis="1 0 0"/><joint name="ty" type="slide" axis="0 1 0"/><geom size=".01"/></body>
    </worldbody><actuator><motor joint="a"/><motor joint="b"/></actuator></mujoco>`;
    const dir = mkdtempSync(join(tmpdir(), 'reacher-'));
    try {
      writeFileSync(join(dir, 'no_fingertip.xml'), xml);
      await expect(Reacher.create({ mjcfPath: join(dir, 'no_fingertip.xml') })).rejects.toThrow(/body "fingertip" not found/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('close() is idempotent', async () => {
    await expectCloseIdempotent(() => Reacher.create());
  });
});

function sub(a: [number, number], b: [number, number]): [number, number] {
  return [a[0] - b[0], a[1] - b[1]];
}
