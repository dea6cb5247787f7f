import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { INVERTED_PENDULUM_SPEC, InvertedPendulum, invertedPendulumTask } from '../../src/envs/invertedPendulum.js';
import { HAVE_MJCF, MJCF_DIR, MJCF_SKIP_REASON } from '../helpers.js';
import {
  expectCloseIdempotent,
  expectDeterministicPerSeed,
  expectGymnasiumFacts,
  expectScaled,
  expectSpecMakes,
  internals,
  rejectBadActions,
} from './mujocoTestUtils.js';

describe.skipIf(!HAVE_MJCF)(`InvertedPendulum-v5 ${MJCF_SKIP_REASON}`, () => {
  let env: InvertedPendulum;
  beforeAll(async () => {
    env = await InvertedPendulum.create();
  });
  afterAll(() => env.close());

  it("has Gymnasium's spaces, dt and time limit, and the spec agrees", () => {
    expectGymnasiumFacts(env, INVERTED_PENDULUM_SPEC, {
      id: 'InvertedPendulum-v5',
      obsDim: 4,
      actLow: [-3],
      actHigh: [3],
      frameSkip: 2,
      dt: 0.04,
      maxEpisodeSteps: 1000,
      mjcfFile: 'inverted_pendulum.xml',
    });
    expect(env.obsNames).toEqual(['qpos[0]:slider', 'qpos[1]:hinge', 'qvel[0]:slider', 'qvel[1]:hinge']);
  });

  it('spec.make builds an InvertedPendulum', async () => {
    await expectSpecMakes(INVERTED_PENDULUM_SPEC, InvertedPendulum);
  });

  it('resets qpos and qvel to init + U(−0.01, 0.01) over 300 seeds', () => {
    const { initQpos, initQvel } = internals(env);
    const noise: number[] = [];
    for (let seed = 0; seed < 300; seed++) {
      const { obs } = env.reset({ seed });
      const { qpos, qvel } = internals(env);
      expect(Array.from(obs)).toEqual([qpos[0], qpos[1], qvel[0], qvel[1]]);
      for (let i = 0; i < 2; i++) noise.push(qpos[i] - initQpos[i], qvel[i] - initQvel[i]);
    }
    expect(Math.max(...noise.map(Math.abs))).toBeLessThanOrEqual(0.01);
    // Uniform on ±0.01: 1200 draws reach past 0.0095 and have mean ≈ 0 (std of the mean 1.7e-4).
    expect(Math.max(...noise)).toBeGreaterThan(0.0095);
    expect(Math.min(...noise)).toBeLessThan(-0.0095);
    expect(Math.abs(noise.reduce((a, b) => a + b, 0) / noise.length)).toBeLessThan(1e-3);
  });

  it('pays 1 per healthy step, from a known state with a zero action', () => {
    env.reset({ seed: 0 });
    internals(env).setState([0, 0.1], [0, 0]);
    const step = env.step([0]);
    expect(step.obs[1]).toBeGreaterThan(0.1); // gravity pulls a tilted pole further over
    expect(step.reward).toBe(1);
    expect(step.terminated).toBe(false);
    expect(step.info).toEqual({ reward_survive: 1 });
  });

  it('terminates with reward 0 once |angle| > 0.2 under a constant push', () => {
    for (const force of [3, -3]) {
      let prev = env.reset({ seed: 1 }).obs;
      let steps = 0;
      for (;;) {
        const s = env.step([force]);
        steps++;
        if (s.terminated) {
          expect(Math.abs(s.obs[1])).toBeGreaterThan(0.2);
          expect(Math.abs(prev[1])).toBeLessThanOrEqual(0.2);
          // Pushing the cart tips the pole the other way.
          expect(Math.sign(s.obs[1])).toBe(-Math.sign(force));
          expect(s.reward).toBe(0);
          expect(s.info.reward_survive).toBe(0);
          expect(s.truncated).toBe(false);
          break;
        }
        expect(s.reward).toBe(1);
        expect(steps).toBeLessThan(100);
        prev = s.obs;
      }
      expect(() => env.step([0])).toThrow(ValidationError);
    }
  });

  it('truncates at the time limit', async () => {
    const short = await InvertedPendulum.create({ maxEpisodeSteps: 3 });
    short.reset({ seed: 0 });
    expect(short.step([0]).truncated).toBe(false);
    expect(short.step([0]).truncated).toBe(false);
    const last = short.step([0]);
    expect(last.truncated).toBe(true);
    expect(last.terminated).toBe(false);
    short.close();
  });

  it('task functions equal the environment exactly on a seeded random rollout', () => {
    const rng = new Rng(7);
    let obs = env.reset({ seed: 3 }).obs;
    const r = new Float64Array(1);
    const d = new Uint8Array(1);
    let terminations = 0;
    for (let t = 0; t < 400; t++) {
      const a = env.actionSpace.sample(rng);
      const s = env.step(a);
      invertedPendulumTask.reward(obs, a, s.obs, 1, r);
      invertedPendulumTask.terminated(obs, a, s.obs, 1, d);
      expect(Math.abs(r[0] - s.reward)).toBeLessThanOrEqual(1e-9);
      expect(d[0]).toBe(s.terminated ? 1 : 0);
      obs = s.obs;
      if (s.terminated) {
        terminations++;
        obs = env.reset({ seed: 100 + t }).obs;
      }
    }
    expect(terminations).toBeGreaterThan(3);
    // Batched rows, including a non-finite one.
    const next = Float64Array.of(0, 0.1, 0, 0, 0, -0.25, 0, 0, 0, 0, NaN, 0);
    const out = new Float64Array(3);
    const term = new Uint8Array(3);
    invertedPendulumTask.reward(new Float64Array(12), new Float64Array(3), next, 3, out);
    invertedPendulumTask.terminated(new Float64Array(12), new Float64Array(3), next, 3, term);
    expect(Array.from(out)).toEqual([1, 0, 0]);
    expect(Array.from(term)).toEqual([0, 1, 1]);
  });

  it('is deterministic per seed (a fresh instance included), and seeds differ', async () => {
    // Small actions, so the pole stays up for most of the 30 steps.
    await expectDeterministicPerSeed(env, () => InvertedPendulum.create(), { steps: 30, actionScale: 0.2 });
  });

  it('physics variants: half the gain moves the cart less, mass scales body_mass, nominal equals default', async () => {
    const cartTravel = async (physics: Record<string, number>): Promise<number[]> => {
      const e = await InvertedPendulum.create({ physics });
      e.reset({ seed: 0 });
      internals(e).setState([0, 0], [0, 0]);
      const xs: number[] = [];
      // Two steps of a full push: the pole stays within 0.2 rad, so the episode does not end.
      for (let t = 0; t < 2; t++) {
        const s = e.step([3]);
        expect(s.terminated).toBe(false);
        xs.push(s.obs[0]);
      }
      e.close();
      return xs;
    };
    const nominal = await cartTravel({});
    const explicitNominal = await cartTravel({ massScale: 1, frictionScale: 1, actuatorGain: 1, obsNoiseStd: 0, actionDelaySteps: 0 });
    const weak = await cartTravel({ actuatorGain: 0.5 });
    const heavy = await cartTravel({ massScale: 2 });
    expect(explicitNominal).toEqual(nominal);
    expect(nominal[1]).toBeGreaterThan(0);
    expect(weak[1]).toBeGreaterThan(0);
    // Force and inertia are nearly linear over two steps: half the gear or twice the mass
    // gives about half the travel.
    expect(weak[1] / nominal[1]).toBeGreaterThan(0.4);
    expect(weak[1] / nominal[1]).toBeLessThan(0.6);
    expect(heavy[1] / nominal[1]).toBeGreaterThan(0.4);
    expect(heavy[1] / nominal[1]).toBeLessThan(0.6);

    const scaled = await InvertedPendulum.create({ physics: { massScale: 2 } });
    expectScaled(internals(env).model.body_mass as Float64Array, internals(scaled).model.body_mass as Float64Array, 2);
    scaled.close();
  });

  it('rejects NaN and wrong-length actions naming `action`, leaving the state unchanged', () => {
    env.reset({ seed: 4 });
    expect(rejectBadActions(env, [[NaN], [1, 2]])).toEqual(['action[0]', 'action']);
    expect(env.elapsedSteps).toBe(0);
  });

  it('rejects a model of the wrong size and unknown physics', async () => {
    await expect(InvertedPendulum.create({ mjcfPath: `${MJCF_DIR ?? ''}/reacher.xml` })).rejects.toThrow(/nq=2, nv=2, nu=1/);
    await expect(InvertedPendulum.create({ physics: { massScale: -1 } })).rejects.toThrow(ValidationError);
  });

  it('close() is idempotent', async () => {
    await expectCloseIdempotent(() => InvertedPendulum.create());
  });
});
