/**
 * Helpers shared by the MuJoCo task tests (test/envs/<task>.test.ts): access to the protected
 * MuJoCo state, seeded rollouts, and the checks every task must pass in the same way
 * (determinism, time limit, action delay, invalid actions, physics variants, `close`). Each
 * helper asserts with `expect`, so a failure points at the line in the task's test that called it.
 */
import type { MjModel } from 'mujoco-js';
import { expect } from 'vitest';
import { NOMINAL_PHYSICS, type Env, type StepResult, type TaskFunctions } from '../../src/core/env.js';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import type { MujocoEnv, MujocoEnvOptions } from '../../src/envs/mujocoEnv.js';
import type { EnvSpec } from '../../src/envs/spec.js';

/** The protected MuJoCo state, read (and set) through a cast: tests only. */
export interface MujocoInternals {
  qpos: Float64Array;
  qvel: Float64Array;
  initQpos: Float64Array;
  initQvel: Float64Array;
  model: MjModel;
  data: { time: number };
  setState(qpos: ArrayLike<number>, qvel: ArrayLike<number>): void;
  bodyXpos(bodyId: number): [number, number, number];
}
export const internals = (env: MujocoEnv): MujocoInternals => env as unknown as MujocoInternals;

/** Copies of the current qpos and qvel. */
export function stateOf(env: MujocoEnv): { qpos: number[]; qvel: number[] } {
  return { qpos: Array.from(internals(env).qpos), qvel: Array.from(internals(env).qvel) };
}

/** Copies of the model's initial qpos and qvel (Gymnasium's `init_qpos`, `init_qvel`). */
export function initStateOf(env: MujocoEnv): { qpos: number[]; qvel: number[] } {
  return { qpos: Array.from(internals(env).initQpos), qvel: Array.from(internals(env).initQvel) };
}

/** A copy of the (possibly scaled) model's `body_mass`. */
export function bodyMassOf(env: MujocoEnv): number[] {
  return Array.from(internals(env).model.body_mass as Float64Array);
}

/** Resets with seed 1, overwrites some qpos/qvel entries, steps once with a zero action. */
export function stepFrom(env: MujocoEnv, qposEdits: Record<number, number>, qvelEdits: Record<number, number> = {}): StepResult {
  env.reset({ seed: 1 });
  const { qpos, qvel } = stateOf(env);
  for (const [i, v] of Object.entries(qposEdits)) qpos[Number(i)] = v;
  for (const [i, v] of Object.entries(qvelEdits)) qvel[Number(i)] = v;
  internals(env).setState(qpos, qvel);
  return env.step(new Float64Array(env.actionSpace.dim));
}

/** Observations and rewards of `steps` seeded random actions (no reset inside). */
export function rollout(env: Env, seed: number, steps: number): { obs: number[][]; rewards: number[] } {
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

export function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Population standard deviation. */
export function std(xs: number[]): number {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / xs.length);
}

/** Every entry of `scaled` is `factor` times the same entry of `base`, to 12 digits. */
export function expectScaled(base: ArrayLike<number>, scaled: ArrayLike<number>, factor: number): void {
  for (let k = 0; k < base.length; k++) expect(scaled[k]).toBeCloseTo(factor * base[k], 12);
}

/**
 * Each column of `samples` (one row per reset) lies in [−s, s] and comes within 10% of both
 * ends, as draws from U(−s, s) do: an end's last 5% of the range stays empty after 300 uniform
 * draws with probability 0.95^300 ≈ 2e−7.
 */
export function expectUniformCoverage(samples: number[][], s: number): void {
  for (let i = 0; i < samples[0].length; i++) {
    const column = samples.map((row) => row[i]);
    const lo = Math.min(...column);
    const hi = Math.max(...column);
    expect(lo).toBeGreaterThanOrEqual(-s);
    expect(hi).toBeLessThanOrEqual(s);
    expect(lo).toBeLessThan(-0.9 * s);
    expect(hi).toBeGreaterThan(0.9 * s);
  }
}

/** A task's sizes, bounds and timing as Gymnasium defines them. */
export interface GymnasiumFacts {
  id: string;
  obsDim: number;
  actLow: number[];
  actHigh: number[];
  frameSkip: number;
  /** Seconds per step (checked to 12 digits). */
  dt: number;
  maxEpisodeSteps: number;
  mjcfFile: string;
}

/**
 * A constructed instance has Gymnasium's spaces (the observation unbounded), frame skip, dt and
 * time limit, and `spec` states the same facts.
 */
export function expectGymnasiumFacts(env: MujocoEnv, spec: EnvSpec, facts: GymnasiumFacts): void {
  expect(env.id).toBe(facts.id);
  expect(env.observationSpace.dim).toBe(facts.obsDim);
  expect(env.observationSpace.isBounded()).toBe(false);
  expect(Array.from(env.observationSpace.low)).toEqual(new Array(facts.obsDim).fill(-Infinity));
  expect(Array.from(env.observationSpace.high)).toEqual(new Array(facts.obsDim).fill(Infinity));
  expect(env.actionSpace.dim).toBe(facts.actLow.length);
  expect(Array.from(env.actionSpace.low)).toEqual(facts.actLow);
  expect(Array.from(env.actionSpace.high)).toEqual(facts.actHigh);
  expect(env.frameSkip).toBe(facts.frameSkip);
  expect(env.dt).toBeCloseTo(facts.dt, 12);
  expect(env.maxEpisodeSteps).toBe(facts.maxEpisodeSteps);
  const s = spec;
  expect([s.id, s.kind, s.obsDim, s.actDim, s.maxEpisodeSteps, s.mjcfFile]).toEqual([env.id, 'mujoco', facts.obsDim, facts.actLow.length, facts.maxEpisodeSteps, facts.mjcfFile]);
  expect(s.actLow).toEqual(Array.from(env.actionSpace.low));
  expect(s.actHigh).toEqual(Array.from(env.actionSpace.high));
  expect(s.dt).toBeCloseTo(env.dt, 12);
}

/** `spec.make()` builds an instance of `cls` (a task class; typed by its prototype, as most have private constructors). */
export async function expectSpecMakes(spec: EnvSpec, cls: { prototype: Env }): Promise<void> {
  const made = await spec.make();
  expect(made).toBeInstanceOf(cls);
  made.close();
}

/**
 * From reset seed 0, `steps` steps with `action(t)` (t = 1…steps) neither terminate nor
 * truncate before the last, which truncates; stepping on afterwards throws a ValidationError.
 */
export function expectTruncatesAt(env: Env, steps: number, action: (t: number) => ArrayLike<number>): void {
  env.reset({ seed: 0 });
  for (let t = 1; t <= steps; t++) {
    const s = env.step(action(t));
    expect(s.terminated).toBe(false);
    expect(s.truncated).toBe(t === steps);
  }
  expect(() => env.step(new Float64Array(env.actionSpace.dim))).toThrow(ValidationError);
}

/**
 * Resets `delayed` (one step of action delay) and `still` with `seed`, steps `delayed` with
 * `action` and `still` with zeros, and expects the same observation: the plant moved with the
 * delayed (zero) action. Returns `delayed`'s step, whose control cost the caller checks against
 * the commanded action.
 */
export function stepDelayedAndStill(delayed: Env, still: Env, seed: number, action: ArrayLike<number>): StepResult {
  delayed.reset({ seed });
  still.reset({ seed });
  const r = delayed.step(action);
  const s = still.step(new Float64Array(still.actionSpace.dim));
  expect(Array.from(r.obs)).toEqual(Array.from(s.obs));
  return r;
}

/**
 * Steps `env` with each invalid action: each must throw a ValidationError naming `action` (or an
 * entry of it) and leave qpos, qvel and the step count unchanged. Returns the fields named.
 */
export function rejectBadActions(env: MujocoEnv, actions: ArrayLike<number>[]): string[] {
  const before = stateOf(env);
  const elapsed = env.elapsedSteps;
  const fields = actions.map((action) => {
    let caught: unknown;
    try {
      env.step(action);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    expect(stateOf(env)).toEqual(before);
    return (caught as ValidationError).field;
  });
  for (const field of fields) expect(field).toMatch(/^action/);
  expect(env.elapsedSteps).toBe(elapsed);
  return fields;
}

/** `close()` may be called twice, on a fresh instance and on one that has been reset. */
export async function expectCloseIdempotent(create: () => Promise<Env>): Promise<void> {
  const fresh = await create();
  fresh.close();
  expect(() => fresh.close()).not.toThrow();
  const used = await create();
  used.reset();
  used.close();
  expect(() => used.close()).not.toThrow();
}

/**
 * Determinism across instances: instances built with different construction seeds give the
 * same `rollout` for the same reset seed, a rerun on the same instance repeats it, and another
 * seed starts elsewhere.
 */
export async function expectSameSeedSameRollout(create: (options?: MujocoEnvOptions) => Promise<Env>): Promise<void> {
  const a = await create();
  const b = await create({ seed: 99 });
  const ra = rollout(a, 11, 60);
  const rb = rollout(b, 11, 60);
  expect(ra).toEqual(rb);
  expect(rollout(a, 11, 60)).toEqual(ra);
  expect(rollout(a, 12, 60).obs[0]).not.toEqual(ra.obs[0]);
  a.close();
  b.close();
}

/**
 * Determinism per seed on an instance that has already run episodes: the same reset seed (with
 * the same action stream) repeats the trajectory, another seed differs, a fresh instance matches
 * (reset clears all of MuJoCo's data, the simulated time included).
 * @param run.steps steps per run (stopping early on termination)
 * @param run.actionScale multiplies the uniformly sampled actions (default 1)
 */
export async function expectDeterministicPerSeed(env: MujocoEnv, create: () => Promise<MujocoEnv>, run: { steps: number; actionScale?: number }): Promise<void> {
  const scale = run.actionScale ?? 1;
  const trajectory = (e: MujocoEnv, seed: number): number[] => {
    const rng = new Rng(11);
    const out = Array.from(e.reset({ seed }).obs);
    for (let t = 0; t < run.steps; t++) {
      const s = e.step(e.actionSpace.sample(rng).map((x) => scale * x));
      out.push(...s.obs, s.reward);
      if (s.terminated) break;
    }
    return out;
  };
  const first = trajectory(env, 5);
  expect(trajectory(env, 5)).toEqual(first);
  expect(trajectory(env, 6)).not.toEqual(first);
  const fresh = await create();
  expect(trajectory(fresh, 5)).toEqual(first);
  expect(internals(env).data.time).toBeGreaterThan(0);
  env.reset({ seed: 5 });
  expect(internals(env).data.time).toBe(0);
  fresh.close();
}

/**
 * Mass, friction and actuator-gain variants change the trajectory (by more than 1e-4 within 30
 * random steps) but not the reset state; `massScale` scales every body's mass; explicit nominal
 * physics equals the default; a gain of 0 is rejected by resolvePhysics (scales must be > 0).
 */
export async function expectPhysicsVariantsDiverge(create: (options?: MujocoEnvOptions) => Promise<MujocoEnv>): Promise<void> {
  const nominal = await create();
  const heavy = await create({ physics: { massScale: 1.3 } });
  expectScaled(bodyMassOf(nominal), bodyMassOf(heavy), 1.3);
  expect(bodyMassOf(nominal)[1]).toBeGreaterThan(0);
  const base = rollout(nominal, 3, 30);
  const explicit = await create({ physics: { ...NOMINAL_PHYSICS } });
  expect(rollout(explicit, 3, 30)).toEqual(base);
  for (const physics of [{ massScale: 1.3 }, { frictionScale: 0.5 }, { actuatorGain: 0.5 }]) {
    const env = await create({ physics });
    const r = rollout(env, 3, 30);
    const steps = Math.min(r.obs.length, base.obs.length);
    let diff = 0;
    for (let t = 0; t < steps; t++) for (let i = 0; i < env.observationSpace.dim; i++) diff = Math.max(diff, Math.abs(r.obs[t][i] - base.obs[t][i]));
    expect(diff, JSON.stringify(physics)).toBeGreaterThan(1e-4);
    expect(r.obs[0]).toEqual(base.obs[0]); // same reset state
    env.close();
  }
  await expect(create({ physics: { actuatorGain: 0 } })).rejects.toThrow(ValidationError);
  for (const e of [nominal, heavy, explicit]) e.close();
}

/**
 * Runs `steps` seeded random actions from reset seed `seed` (resetting after each episode) and
 * compares `task` with the environment row by row: with the environment's forward term swapped
 * for the trapezoid (obs[vx] + nextObs[vx]) / 2 of the x velocity, the task reward is exact (to
 * 12 digits), and termination agrees. Returns the task reward's mean absolute error, the mean
 * |forward reward| and the number of steps and terminations, for the caller's bounds.
 */
export function compareTrapezoidTask(env: Env, task: TaskFunctions, opts: { seed: number; steps: number; vxIndex: number }): { mae: number; meanAbsForward: number; n: number; terminations: number } {
  const rng = new Rng(opts.seed);
  const rows: { o: number[]; a: number[]; o2: number[]; r: number; fwd: number; term: boolean }[] = [];
  let { obs } = env.reset({ seed: opts.seed });
  for (let t = 0; t < opts.steps; t++) {
    const a = env.actionSpace.sample(rng);
    const s = env.step(a);
    rows.push({ o: Array.from(obs), a: Array.from(a), o2: Array.from(s.obs), r: s.reward, fwd: s.info.reward_forward as number, term: s.terminated });
    obs = s.terminated || s.truncated ? env.reset().obs : s.obs;
  }
  const n = rows.length;
  const out = new Float64Array(n);
  const flags = new Uint8Array(n);
  const o = rows.flatMap((x) => x.o);
  const a = rows.flatMap((x) => x.a);
  const o2 = rows.flatMap((x) => x.o2);
  task.reward(o, a, o2, n, out);
  task.terminated(o, a, o2, n, flags);
  let absErr = 0;
  let absFwd = 0;
  let terminations = 0;
  for (let i = 0; i < n; i++) {
    const { r, fwd, term } = rows[i];
    const approxFwd = 0.5 * (rows[i].o[opts.vxIndex] + rows[i].o2[opts.vxIndex]);
    // Everything but the forward term is exact.
    expect(out[i] - approxFwd).toBeCloseTo(r - fwd, 12);
    expect(flags[i]).toBe(term ? 1 : 0);
    absErr += Math.abs(out[i] - r);
    absFwd += Math.abs(fwd);
    if (term) terminations++;
  }
  return { mae: absErr / n, meanAbsForward: absFwd / n, n, terminations };
}

/**
 * For a task that never terminates: runs `steps` seeded random actions one row at a time and
 * returns the mean absolute error of `task`'s reward, the mean |reward|, and the error of the
 * next-velocity-only estimate `nextObs[vx] + reward_ctrl`, for the caller's bounds.
 */
export function forwardRewardErrors(env: Env, task: TaskFunctions, opts: { seed: number; steps: number; vxIndex: number }): { mae: number; meanAbsReward: number; nextOnlyMae: number } {
  const rng = new Rng(opts.seed);
  let obs = env.reset({ seed: opts.seed }).obs;
  const r = new Float64Array(1);
  const d = new Uint8Array(1);
  let absErr = 0;
  let absReward = 0;
  let nextOnlyErr = 0;
  for (let t = 0; t < opts.steps; t++) {
    const a = env.actionSpace.sample(rng);
    const s = env.step(a);
    task.reward(obs, a, s.obs, 1, r);
    task.terminated(obs, a, s.obs, 1, d);
    expect(d[0]).toBe(0);
    absErr += Math.abs(r[0] - s.reward);
    absReward += Math.abs(s.reward);
    nextOnlyErr += Math.abs(s.obs[opts.vxIndex] + (s.info.reward_ctrl as number) - s.reward);
    obs = s.obs;
  }
  return { mae: absErr / opts.steps, meanAbsReward: absReward / opts.steps, nextOnlyMae: nextOnlyErr / opts.steps };
}

/**
 * Hopper's and Walker2d's reset (the same code in Gymnasium) over 300 seeds: obs = [qpos[1:],
 * qvel], the reset `info` holds x_position and z_distance_from_origin, and every qpos and qvel
 * entry is its initial value plus U(−s, s) noise.
 */
export function expectPlanarWalkerReset(env: MujocoEnv, s: number): void {
  const init = initStateOf(env);
  const noise: number[][] = [];
  for (let seed = 0; seed < 300; seed++) {
    const { obs, info } = env.reset({ seed });
    const { qpos, qvel } = stateOf(env);
    expect(Array.from(obs)).toEqual([...qpos.slice(1), ...qvel]);
    expect(info).toEqual({ x_position: qpos[0], z_distance_from_origin: qpos[1] - init.qpos[1] });
    noise.push([...qpos.map((q, i) => q - init.qpos[i]), ...qvel.map((v, i) => v - init.qvel[i])]);
  }
  expectUniformCoverage(noise, s);
}

/**
 * Hopper's and Walker2d's reward and `info` over 10 seeded random steps (actions up to 1.5×
 * beyond the bounds): x_velocity = Δx_position / dt, reward_ctrl = −w Σ a² of the commanded
 * action, reward_forward = x_velocity, reward_survive = 1 (healthy), reward = their sum, and
 * z_distance_from_origin = height − its initial value; the state stays finite.
 */
export function expectHealthyForwardRewardTerms(env: MujocoEnv, expected: { dt: number; ctrlCostWeight: number; initZ: number }): void {
  let { obs } = env.reset({ seed: 5 });
  let x = 0;
  const rng = new Rng(5);
  for (let t = 0; t < 10; t++) {
    const a = Array.from(env.actionSpace.sample(rng), (v) => 1.5 * v); // beyond the bounds too
    const r = env.step(a);
    const xAfter = r.info.x_position as number;
    if (t > 0) expect(r.info.x_velocity).toBeCloseTo((xAfter - x) / expected.dt, 9);
    x = xAfter;
    expect(r.info.reward_ctrl).toBeCloseTo(-expected.ctrlCostWeight * a.reduce((acc, v) => acc + v * v, 0), 15);
    expect(r.info.reward_forward).toBe(r.info.x_velocity);
    expect(r.info.reward_survive).toBe(1);
    expect(r.reward).toBeCloseTo((r.info.reward_forward as number) + 1 + (r.info.reward_ctrl as number), 12);
    expect(r.info.z_distance_from_origin).toBeCloseTo(r.obs[0] - expected.initZ, 15);
    expect(r.terminated).toBe(false);
    obs = r.obs;
  }
  expect(obs.every(Number.isFinite)).toBe(true);
}

/**
 * For each case (qpos edits on the seed-1 reset state, and whether that state is unhealthy),
 * one zero-action step terminates exactly when unhealthy, pays the survival reward exactly when
 * healthy, `isHealthy` agrees, and so does `task.terminated` on the next observation.
 */
export function expectTerminationCases(env: MujocoEnv & { readonly isHealthy: boolean }, task: TaskFunctions, cases: [Record<number, number>, boolean][]): void {
  const flag = new Uint8Array(1);
  for (const [edits, unhealthy] of cases) {
    const r = stepFrom(env, edits);
    expect(r.terminated, JSON.stringify(edits)).toBe(unhealthy);
    expect(r.info.reward_survive).toBe(unhealthy ? 0 : 1);
    expect(env.isHealthy).toBe(!unhealthy);
    task.terminated([], [], r.obs, 1, flag);
    expect(flag[0]).toBe(unhealthy ? 1 : 0);
  }
}

/** With qvel[0] = 50 and qvel[3] = −50 set before a step, the observation shows them clipped to ±10 at `qvel0Index` and `qvel0Index + 3`. */
export function expectVelocityClipped(env: MujocoEnv, qvel0Index: number): void {
  const r = stepFrom(env, {}, { 0: 50, 3: -50 });
  expect(stateOf(env).qvel[0]).toBeGreaterThan(10);
  expect(r.obs[qvel0Index]).toBe(10);
  expect(stateOf(env).qvel[3]).toBeLessThan(-10);
  expect(r.obs[qvel0Index + 3]).toBe(-10);
}
