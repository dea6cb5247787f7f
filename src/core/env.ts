import type { Box } from './spaces.js';

/** What `Env.reset` returns (Gymnasium's `(obs, info)`). */
export interface ResetResult {
  obs: Float64Array;
  info: EnvInfo;
}

/** What `Env.step` returns (Gymnasium's five-tuple). */
export interface StepResult {
  obs: Float64Array;
  reward: number;
  /** The task ended (a terminal state: fallen over, goal reached). Do not bootstrap past it. */
  terminated: boolean;
  /** The episode was cut by the time limit; the state is not terminal. */
  truncated: boolean;
  info: EnvInfo;
}

/** Per-step diagnostics: reward terms, positions not in the observation, etc. */
export type EnvInfo = Record<string, number | boolean | string | number[]>;

/** Options of `Env.reset`. */
export interface ResetOptions {
  /** Re-seeds the environment's generator before resetting (Gymnasium's `reset(seed=...)`). */
  seed?: number;
}

/**
 * A simulated (or real) system with Gymnasium's API. Observations and actions are `Float64Array`s
 * of fixed length. `step` throws a `ValidationError` for an action of the wrong length or with
 * NaN/Inf entries, and leaves the environment unchanged.
 */
export interface Env {
  readonly id: string;
  readonly observationSpace: Box;
  readonly actionSpace: Box;
  /** Seconds of simulated time per `step` (frame skip × physics timestep). */
  readonly dt: number;
  /** Steps after which `truncated` is set (Gymnasium's TimeLimit). */
  readonly maxEpisodeSteps: number;
  /** Names of the observation's entries, in order, where known (e.g. `"qpos[1]:rootz"`). */
  readonly obsNames: readonly string[] | undefined;
  /** The physical parameters this instance simulates (nominal unless overridden). */
  readonly physics: Readonly<PhysicsParams>;
  reset(options?: ResetOptions): ResetResult;
  step(action: ArrayLike<number>): StepResult;
  /** Releases native resources (MuJoCo model and data). Idempotent. */
  close(): void;
}

/**
 * Physical parameters that let a "real" system differ from the nominal simulator (sim-to-real).
 * Nominal values (all scales 1, no noise, no delay) reproduce Gymnasium exactly.
 */
export interface PhysicsParams {
  /** Multiplies every body's mass (and, for MuJoCo, its rotational inertia). Default 1. */
  massScale: number;
  /** Multiplies friction coefficients and joint damping. Default 1. */
  frictionScale: number;
  /** Multiplies the actuator's strength (MuJoCo gear, classic-control torque/force). Default 1. */
  actuatorGain: number;
  /** Standard deviation of Gaussian noise added to each returned observation entry. Default 0. */
  obsNoiseStd: number;
  /**
   * Steps between a command and its effect: the plant applies the action sent `actionDelaySteps`
   * steps earlier (zeros before the first). Default 0.
   */
  actionDelaySteps: number;
}

/** Nominal physics: Gymnasium's systems unchanged. */
export const NOMINAL_PHYSICS: Readonly<PhysicsParams> = Object.freeze({
  massScale: 1,
  frictionScale: 1,
  actuatorGain: 1,
  obsNoiseStd: 0,
  actionDelaySteps: 0,
});

/** Options every environment constructor accepts. */
export interface EnvOptions {
  /** Physical parameters (partial; the rest are nominal). */
  physics?: Partial<PhysicsParams>;
  /** Overrides the time limit. Default: Gymnasium's for the task. */
  maxEpisodeSteps?: number;
  /** Seed of the environment's generator until `reset({ seed })` is called. Default 0. */
  seed?: number;
}

/**
 * The task's reward and termination as pure functions of (obs, action, nextObs), batched over
 * `n` rows stored row-major in flat arrays (as mbrl-lib's `reward_fns`/`termination_fns`).
 * Models and planners use them instead of learning the reward.
 */
export interface TaskFunctions {
  /** Writes r(s, a, s') for each row into `out[0..n)`. */
  reward(obs: ArrayLike<number>, act: ArrayLike<number>, nextObs: ArrayLike<number>, n: number, out: Float32Array | Float64Array): void;
  /** Writes 1 where s' is terminal, else 0, into `out[0..n)`. */
  terminated(obs: ArrayLike<number>, act: ArrayLike<number>, nextObs: ArrayLike<number>, n: number, out: Uint8Array): void;
  /**
   * Whether `reward` equals the environment's reward exactly. False where the environment uses
   * state that is not in the observation (e.g. HalfCheetah's x position); `rewardNote` says how
   * it is approximated.
   */
  rewardExact: boolean;
  rewardNote?: string;
  /** Likewise for `terminated`. */
  terminatedExact: boolean;
  terminatedNote?: string;
}
