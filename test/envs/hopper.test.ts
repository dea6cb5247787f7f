import { describe, expect, it } from 'vitest';
import { NOMINAL_PHYSICS, type Env } from '../../src/core/env.js';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { HOPPER_SPEC, HOPPER_V5, Hopper, hopperTask } from '../../src/envs/hopper.js';
import { loadMujocoContext, type MujocoEnvOptions } from '../../src/envs/mujocoEnv.js';
import { HAVE_MJCF } from '../helpers.js';

/** Opens the protected MuJoCo state, to build states and read them back. */
class ProbeHopper extends Hopper {
  static async open(options: MujocoEnvOptions = {}): Promise<ProbeHopper> {
    return new ProbeHopper(await loadMujocoContext('hopper.xml', options), options);
  }
  put(qpos: ArrayLike<number>, qvel: ArrayLike<number>): void {
    this.setState(qpos, qvel);
  }
  get state(): { qpos: number[]; qvel: number[] } {
    return { qpos: Array.from(this.qpos), qvel: Array.from(this.qvel) };
  }
  get init(): { qpos: number[]; qvel: number[] } {
    return { qpos: Array.from(this.initQpos), qvel: Array.from(this.initQvel) };
  }
  get bodyMass(): number[] {
    return Array.from(this.model.body_mass as Float64Array);
  }
}

/** Resets with `seed`, overwrites some qpos/qvel entries, steps once with zero action. */
function stepFrom(env: ProbeHopper, qposEdits: Record<number, number>, qvelEdits: Record<number, number> = {}) {
  env.reset({ seed: 1 });
  const { qpos, qvel } = env.state;
  for (const [i, v] of Object.entries(qposEdits)) qpos[Number(i)] = v;
  for (const [i, v] of Object.entries(qvelEdits)) qvel[Number(i)] = v;
  env.put(qpos, qvel);
  return env.step(new Float64Array(3));
}

/** Observations and rewards of `steps` seeded random actions (no reset inside). */
function rollout(env: Env, seed: number, steps: number): { obs: number[][]; rewards: number[] } {
  const rng = new Rng(seed);
  const obs = [Array.from(env.reset({ seed }).obs)];
  const rewards: number[] = [];
  for (let t = 0; t < steps; t++) {
    const r = env.step(env.actionSpace.sample(rng));
    obs.push(Array.from(r.obs));
    rewards.push(r.reward);
    if (r.terminated || r.truncated) break;
  }
  return { obs, rewards };
}

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
    const made = await HOPPER_SPEC.make();
    expect(made).toBeInstanceOf(Hopper);
    made.close();
  });

  it('resets to the initial state plus U(−5e−3, 5e−3) noise on every qpos and qvel entry', async () => {
    const env = await ProbeHopper.open();
    const init = env.init;
    expect(init.qpos).toEqual([0, 1.25, 0, 0, 0, 0]);
    expect(init.qvel).toEqual([0, 0, 0, 0, 0, 0]);
    const s = HOPPER_V5.resetNoiseScale;
    const lo = new Array(12).fill(Infinity);
    const hi = new Array(12).fill(-Infinity);
    for (let seed = 0; seed < 300; seed++) {
      const { obs, info } = env.reset({ seed });
      const { qpos, qvel } = env.state;
      expect(Array.from(obs)).toEqual([...qpos.slice(1), ...qvel]);
      expect(info).toEqual({ x_position: qpos[0], z_distance_from_origin: qpos[1] - 1.25 });
      const d = [...qpos.map((q, i) => q - init.qpos[i]), ...qvel];
      d.forEach((x, i) => {
        lo[i] = Math.min(lo[i], x);
        hi[i] = Math.max(hi[i], x);
      });
    }
    for (let i = 0; i < 12; i++) {
      expect(lo[i]).toBeGreaterThanOrEqual(-s);
      expect(hi[i]).toBeLessThanOrEqual(s);
      // Each end's last 5% of the range stays empty after 300 uniform draws with probability
      // 0.95^300 ≈ 2e−7.
      expect(lo[i]).toBeLessThan(-0.9 * s);
      expect(hi[i]).toBeGreaterThan(0.9 * s);
    }
    env.close();
  });

  it("computes Gymnasium's reward terms and info, with the control cost on the commanded action", async () => {
    const env = await Hopper.create();
    let { obs } = env.reset({ seed: 5 });
    let x = 0;
    const rng = new Rng(5);
    for (let t = 0; t < 10; t++) {
      const a = Array.from(env.actionSpace.sample(rng), (v) => 1.5 * v); // beyond the bounds too
      const r = env.step(a);
      const xAfter = r.info.x_position as number;
      if (t > 0) expect(r.info.x_velocity).toBeCloseTo((xAfter - x) / 0.008, 9);
      x = xAfter;
      expect(r.info.reward_ctrl).toBeCloseTo(-1e-3 * (a[0] ** 2 + a[1] ** 2 + a[2] ** 2), 15);
      expect(r.info.reward_forward).toBe(r.info.x_velocity);
      expect(r.info.reward_survive).toBe(1);
      expect(r.reward).toBeCloseTo((r.info.reward_forward as number) + 1 + (r.info.reward_ctrl as number), 12);
      expect(r.info.z_distance_from_origin).toBeCloseTo(r.obs[0] - 1.25, 15);
      expect(r.terminated).toBe(false);
      obs = r.obs;
    }
    expect(obs.every(Number.isFinite)).toBe(true);
    env.close();
  });

  it('clips the observed velocities to ±10', async () => {
    const env = await ProbeHopper.open();
    const r = stepFrom(env, {}, { 0: 50, 3: -50 });
    expect(env.state.qvel[0]).toBeGreaterThan(10);
    expect(r.obs[5]).toBe(10);
    expect(env.state.qvel[3]).toBeLessThan(-10);
    expect(r.obs[8]).toBe(-10);
    env.close();
  });

  it('terminates when the height leaves (0.7, ∞) or the angle leaves (−0.2, 0.2), and not when healthy', async () => {
    const env = await ProbeHopper.open();
    const cases: [Record<number, number>, boolean][] = [
      [{}, false],
      [{ 1: 0.3 }, true],
      [{ 1: 0.6 }, true],
      [{ 1: 0.75 }, false],
      [{ 2: 0.21 }, true],
      [{ 2: -0.21 }, true],
      [{ 2: 0.19 }, false],
      [{ 2: -0.19 }, false],
    ];
    const flag = new Uint8Array(1);
    for (const [edits, unhealthy] of cases) {
      const r = stepFrom(env, edits);
      expect(r.terminated, JSON.stringify(edits)).toBe(unhealthy);
      expect(r.info.reward_survive).toBe(unhealthy ? 0 : 1);
      expect(env.isHealthy).toBe(!unhealthy);
      hopperTask.terminated([], [], r.obs, 1, flag);
      expect(flag[0]).toBe(unhealthy ? 1 : 0);
    }
    // The bounds are open intervals, as Gymnasium's `min < x < max`.
    env.reset({ seed: 1 });
    const { qvel } = env.state;
    env.put([0, 0.7, 0, 0, 0, 0], qvel);
    expect(env.isHealthy).toBe(false);
    env.put([0, 0.7000001, 0.2, 0, 0, 0], qvel);
    expect(env.isHealthy).toBe(false);
    env.put([0, 0.7000001, 0.1999999, 0, 0, 0], qvel);
    expect(env.isHealthy).toBe(true);
    // A joint angle or unclipped velocity outside (−100, 100) is unhealthy.
    env.put([0, 1.25, 0, 0, 0, 0], [0, 0, 0, 0, 100, 0]);
    expect(env.isHealthy).toBe(false);
    env.close();
  });

  it('terminates on |qvel| ≥ 100, which the clipped observation cannot show (task terminatedExact is false)', async () => {
    const env = await ProbeHopper.open();
    const r = stepFrom(env, {}, { 0: 150 });
    expect(env.state.qvel[0]).toBeGreaterThan(100);
    expect(r.terminated).toBe(true);
    const flag = new Uint8Array(1);
    hopperTask.terminated([], [], r.obs, 1, flag);
    expect(flag[0]).toBe(0);
    expect(hopperTask.terminatedExact).toBe(false);
    env.close();
  });

  it('task functions: exact healthy and control terms, forward reward within 0.005 on random rollouts, termination agrees', async () => {
    const env = await Hopper.create();
    const rng = new Rng(7);
    const rows: { o: number[]; a: number[]; o2: number[]; r: number; fwd: number; term: boolean }[] = [];
    let { obs } = env.reset({ seed: 7 });
    for (let t = 0; t < 3000; t++) {
      const a = env.actionSpace.sample(rng);
      const s = env.step(a);
      rows.push({ o: Array.from(obs), a: Array.from(a), o2: Array.from(s.obs), r: s.reward, fwd: s.info.reward_forward as number, term: s.terminated });
      obs = s.terminated || s.truncated ? env.reset().obs : s.obs;
    }
    env.close();
    const n = rows.length;
    const out = new Float64Array(n);
    const flags = new Uint8Array(n);
    const o = rows.flatMap((x) => x.o);
    const a = rows.flatMap((x) => x.a);
    const o2 = rows.flatMap((x) => x.o2);
    hopperTask.reward(o, a, o2, n, out);
    hopperTask.terminated(o, a, o2, n, flags);
    let absErr = 0;
    let absFwd = 0;
    let terminations = 0;
    for (let i = 0; i < n; i++) {
      const { r, fwd, term } = rows[i];
      const approxFwd = 0.5 * (rows[i].o[5] + rows[i].o2[5]);
      // Everything but the forward term is exact.
      expect(out[i] - approxFwd).toBeCloseTo(r - fwd, 12);
      expect(flags[i]).toBe(term ? 1 : 0);
      absErr += Math.abs(out[i] - r);
      absFwd += Math.abs(fwd);
      if (term) terminations++;
    }
    const mae = absErr / n;
    console.log(`Hopper-v5 task reward: MAE ${mae.toExponential(3)} vs mean |forward reward| ${(absFwd / n).toFixed(3)} over ${n} steps, ${terminations} terminations`);
    // Random episodes fall within ~10–50 steps, so 3000 steps give ~130 terminations.
    expect(terminations).toBeGreaterThan(50);
    // Measured 1.6e−3 (seed 7): the trapezoid of the velocities misses only the velocity's
    // curvature within 8 ms (largest at foot impacts). 0.005 is ~3× that and ~5% of the mean
    // |forward reward|; dropping the forward term or using one end's velocity fails it
    // (errors ≈ 0.3 and 0.04).
    expect(mae).toBeLessThan(0.005);
  });

  it('is deterministic: the same seed gives the same trajectory', async () => {
    const a = await Hopper.create();
    const b = await Hopper.create({ seed: 99 });
    const ra = rollout(a, 11, 60);
    const rb = rollout(b, 11, 60);
    expect(ra).toEqual(rb);
    expect(rollout(a, 11, 60)).toEqual(ra);
    expect(rollout(a, 12, 60).obs[0]).not.toEqual(ra.obs[0]);
    a.close();
    b.close();
  });

  it('truncates at maxEpisodeSteps while healthy', async () => {
    const env = await Hopper.create({ maxEpisodeSteps: 5 });
    env.reset({ seed: 0 });
    const zero = new Float64Array(3);
    for (let t = 1; t <= 5; t++) {
      const r = env.step(zero);
      expect(r.terminated).toBe(false);
      expect(r.truncated).toBe(t === 5);
    }
    expect(() => env.step(zero)).toThrow(ValidationError);
    env.close();
  });

  it('applies physics variants: mass, friction, actuator gain; nominal equals default', async () => {
    const nominal = await ProbeHopper.open();
    const heavy = await ProbeHopper.open({ physics: { massScale: 1.3 } });
    nominal.bodyMass.forEach((m, i) => expect(heavy.bodyMass[i]).toBeCloseTo(1.3 * m, 12));
    expect(nominal.bodyMass[1]).toBeGreaterThan(0);
    const base = rollout(nominal, 3, 30);
    const explicit = await Hopper.create({ physics: { ...NOMINAL_PHYSICS } });
    expect(rollout(explicit, 3, 30)).toEqual(base);
    for (const physics of [{ massScale: 1.3 }, { frictionScale: 0.5 }, { actuatorGain: 0.5 }]) {
      const env = await Hopper.create({ physics });
      const r = rollout(env, 3, 30);
      const steps = Math.min(r.obs.length, base.obs.length);
      let diff = 0;
      for (let t = 0; t < steps; t++) for (let i = 0; i < 11; i++) diff = Math.max(diff, Math.abs(r.obs[t][i] - base.obs[t][i]));
      expect(diff, JSON.stringify(physics)).toBeGreaterThan(1e-4);
      expect(r.obs[0]).toEqual(base.obs[0]); // same reset state
      env.close();
    }
    // A gain of 0 is rejected by resolvePhysics (scales must be > 0).
    await expect(Hopper.create({ physics: { actuatorGain: 0 } })).rejects.toThrow(ValidationError);
    for (const e of [nominal, heavy, explicit]) e.close();
  });

  it('under action delay moves with the delayed action but charges the commanded one', async () => {
    const delayed = await Hopper.create({ physics: { actionDelaySteps: 1 } });
    const still = await Hopper.create();
    delayed.reset({ seed: 4 });
    still.reset({ seed: 4 });
    const r = delayed.step([1, -1, 1]);
    const s = still.step([0, 0, 0]);
    expect(r.obs).toEqual(s.obs);
    expect(r.info.reward_ctrl).toBeCloseTo(-3e-3, 15);
    delayed.close();
    still.close();
  });

  it('rejects a NaN or wrong-length action with a ValidationError naming `action`, leaving the state unchanged', async () => {
    const env = await ProbeHopper.open();
    const fresh = await Hopper.create();
    env.reset({ seed: 2 });
    fresh.reset({ seed: 2 });
    const before = env.state;
    for (const bad of [[0, Number.NaN, 0], [0, 0], [0, 0, 0, 0], [Infinity, 0, 0]]) {
      let caught: unknown;
      try {
        env.step(bad);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(ValidationError);
      expect((caught as ValidationError).field).toMatch(/^action/);
      expect(env.state).toEqual(before);
    }
    expect(env.elapsedSteps).toBe(0);
    expect(env.step([0.1, 0.2, 0.3])).toEqual(fresh.step([0.1, 0.2, 0.3]));
    env.close();
    fresh.close();
  });

  it('close() is idempotent', async () => {
    const env = await Hopper.create();
    env.reset();
    env.close();
    expect(() => env.close()).not.toThrow();
  });
});
