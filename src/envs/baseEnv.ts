import type { Env, EnvInfo, EnvOptions, PhysicsParams, ResetOptions, ResetResult, StepResult } from '../core/env.js';
import { NOMINAL_PHYSICS } from '../core/env.js';
import { ValidationError, checkFiniteVector } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import type { Box } from '../core/spaces.js';

/** Stream id of the observation-noise generator (independent of the reset-noise stream). */
const NOISE_STREAM = 1;

/** What a subclass's plant returns for one step (before noise and time limit). */
export interface PlantStep {
  /** The true (noise-free) observation after the step. */
  obs: Float64Array;
  reward: number;
  terminated: boolean;
  info: EnvInfo;
}

/** Which physical parameters a plant can change (observation noise and delay always can). */
export interface PhysicsSupport {
  massScale: boolean;
  frictionScale: boolean;
  actuatorGain: boolean;
}

/**
 * The parts every environment shares: action validation, the time limit, seeding, action delay
 * and observation noise. A subclass implements the plant (`resetPlant`, `stepPlant`) exactly as
 * Gymnasium defines it, and applies mass, friction and actuator gain itself.
 *
 * Under action delay the plant moves with the delayed action, while the reward's control cost
 * is charged on the commanded one: that is what a controller on a real robot is scored on, and
 * what the task's known reward function of (obs, action, nextObs) computes.
 */
export abstract class BaseEnv implements Env {
  abstract readonly id: string;
  abstract readonly observationSpace: Box;
  abstract readonly actionSpace: Box;
  abstract readonly dt: number;
  readonly maxEpisodeSteps: number;
  readonly physics: Readonly<PhysicsParams>;
  get obsNames(): readonly string[] | undefined {
    return undefined;
  }

  /** Generator for reset noise and any stochastic dynamics. */
  protected rng: Rng;
  /** Separate stream for observation noise, so a noisy variant keeps the nominal reset states. */
  #noiseRng: Rng;
  #elapsed = 0;
  #needsReset = true;
  #delayQueue: Float64Array[] = [];
  #commanded: Float64Array | undefined;

  /**
   * @param defaultMaxEpisodeSteps Gymnasium's time limit for the task
   * @param support which of mass, friction and gain the plant implements
   */
  protected constructor(options: EnvOptions, defaultMaxEpisodeSteps: number, support: PhysicsSupport, envId: string) {
    const maxSteps = options.maxEpisodeSteps ?? defaultMaxEpisodeSteps;
    if (!Number.isInteger(maxSteps) || maxSteps <= 0) {
      throw new ValidationError(envId, 'maxEpisodeSteps', `expected a positive integer, got ${String(maxSteps)}`);
    }
    this.maxEpisodeSteps = maxSteps;
    this.physics = Object.freeze(resolvePhysics(options.physics, support, envId));
    const seed = options.seed ?? 0;
    this.rng = new Rng(seed);
    this.#noiseRng = new Rng(seed, NOISE_STREAM);
  }

  /** Samples the initial state (Gymnasium's reset noise) and returns the true observation. */
  protected abstract resetPlant(): Float64Array;

  /** The `info` of `reset` (Gymnasium's `_get_reset_info`); called right after `resetPlant`. */
  protected resetInfo(): EnvInfo {
    return {};
  }

  /**
   * Advances the plant one control step.
   * @param applied the action the actuators apply (after any delay; gain not yet applied)
   * @param commanded the action the controller sent this step (for the control cost)
   */
  protected abstract stepPlant(applied: Float64Array, commanded: Float64Array): PlantStep;

  reset(options: ResetOptions = {}): ResetResult {
    if (options.seed !== undefined) {
      if (!Number.isFinite(options.seed)) {
        throw new ValidationError(`${this.id}.reset`, 'seed', `expected a finite number, got ${String(options.seed)}`);
      }
      this.rng.seed(options.seed);
      this.#noiseRng.seed(options.seed, NOISE_STREAM);
    }
    this.#elapsed = 0;
    this.#needsReset = false;
    const actDim = this.actionSpace.dim;
    this.#delayQueue = Array.from({ length: this.physics.actionDelaySteps }, () => new Float64Array(actDim));
    this.#commanded = new Float64Array(actDim);
    const obs = this.resetPlant();
    return { obs: this.#observe(obs), info: this.resetInfo() };
  }

  step(action: ArrayLike<number>): StepResult {
    if (this.#needsReset) {
      throw new ValidationError(`${this.id}.step`, 'state', 'step() called before reset() or after the episode ended; call reset() first');
    }
    checkFiniteVector(action, this.actionSpace.dim, `${this.id}.step`, 'action');
    const commanded = this.#commanded ?? new Float64Array(this.actionSpace.dim);
    for (let i = 0; i < commanded.length; i++) commanded[i] = action[i];
    let applied = commanded;
    if (this.#delayQueue.length > 0) {
      applied = this.#delayQueue.shift() as Float64Array;
      this.#delayQueue.push(Float64Array.from(commanded));
    }
    const plant = this.stepPlant(applied, commanded);
    this.#elapsed++;
    // As Gymnasium's TimeLimit: truncated at the limit even when the last step also terminated.
    const truncated = this.#elapsed >= this.maxEpisodeSteps;
    if (plant.terminated || truncated) this.#needsReset = true;
    return { obs: this.#observe(plant.obs), reward: plant.reward, terminated: plant.terminated, truncated, info: plant.info };
  }

  /** Steps taken since the last reset. */
  get elapsedSteps(): number {
    return this.#elapsed;
  }

  close(): void {
    // Classic-control plants hold no native resources.
  }

  #observe(obs: Float64Array): Float64Array {
    const std = this.physics.obsNoiseStd;
    if (std > 0) for (let i = 0; i < obs.length; i++) obs[i] += this.#noiseRng.normal(0, std);
    return obs;
  }
}

/**
 * Merges partial physics with the nominal values and validates them.
 * @throws ValidationError for a non-positive scale, negative noise, a non-integer delay, or a
 *   parameter the plant has no counterpart for (e.g. friction in Pendulum-v1).
 */
export function resolvePhysics(partial: Partial<PhysicsParams> | undefined, support: PhysicsSupport, envId: string): PhysicsParams {
  // Keys given as undefined mean "nominal", as if absent.
  const given = Object.fromEntries(Object.entries(partial ?? {}).filter(([, v]) => v !== undefined));
  const p: PhysicsParams = { ...NOMINAL_PHYSICS, ...given };
  const where = `${envId} physics`;
  for (const key of Object.keys(partial ?? {})) {
    if (!(key in NOMINAL_PHYSICS)) {
      throw new ValidationError(where, key, `unknown parameter; expected one of ${Object.keys(NOMINAL_PHYSICS).join(', ')}`);
    }
  }
  for (const key of ['massScale', 'frictionScale', 'actuatorGain'] as const) {
    const v = p[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw new ValidationError(where, key, `expected a finite number > 0, got ${String(v)}`);
    }
    if (v !== 1 && !support[key]) {
      throw new ValidationError(where, key, `${envId} has no ${key === 'frictionScale' ? 'friction or damping' : key === 'massScale' ? 'mass' : 'actuator gain'} to scale (got ${v}); expected 1`);
    }
  }
  if (typeof p.obsNoiseStd !== 'number' || !Number.isFinite(p.obsNoiseStd) || p.obsNoiseStd < 0) {
    throw new ValidationError(where, 'obsNoiseStd', `expected a finite number ≥ 0, got ${String(p.obsNoiseStd)}`);
  }
  if (!Number.isInteger(p.actionDelaySteps) || p.actionDelaySteps < 0) {
    throw new ValidationError(where, 'actionDelaySteps', `expected an integer ≥ 0, got ${String(p.actionDelaySteps)}`);
  }
  return p;
}
