import type { EnvOptions, TaskFunctions } from '../core/env.js';
import { ValidationError } from '../core/errors.js';
import { Box } from '../core/spaces.js';
import { BaseEnv, type PlantStep } from './baseEnv.js';
import type { EnvSpec } from './spec.js';

const ID = 'MountainCarContinuous-v0';
const MIN_ACTION = -1;
const MAX_ACTION = 1;
const MIN_POSITION = -1.2;
const MAX_POSITION = 0.6;
const MAX_SPEED = 0.07;
const GOAL_POSITION = 0.45;
const POWER = 0.0015;
/** Coefficient of the slope term −0.0025 cos(3x) (gravity along the track). */
const GRAVITY = 0.0025;
/** One step is one unit of the task's time: Gymnasium integrates `position += velocity`. */
const DT = 1;
const MAX_EPISODE_STEPS = 999;
const GOAL_REWARD = 100;
const CONTROL_COST = 0.1;
const RESET_LOW = -0.6;
const RESET_HIGH = -0.4;

/** Options of `MountainCarContinuous-v0`. */
export interface MountainCarContinuousOptions extends EnvOptions {
  /** Velocity the car must have at the goal position (Gymnasium's `goal_velocity`). Default 0. */
  goalVelocity?: number;
}

/**
 * Gymnasium's `MountainCarContinuous-v0`
 * (gymnasium/envs/classic_control/continuous_mountain_car.py, time limit 999 in
 * gymnasium/envs/__init__.py): drive an under-powered car up the right hill.
 *
 * Observation `[position, velocity]` (float32 as Gymnasium), action force in [−1, 1]. One step:
 * `v += clip(a, −1, 1)·0.0015 − 0.0025·cos(3x)`, `v` clipped to [−0.07, 0.07], `x += v`, `x` clipped
 * to [−1.2, 0.6], and `v = 0` when the car hits the left wall moving left. Terminated when
 * `x ≥ 0.45` and `v ≥ goalVelocity`. Reward `−0.1·a²` on the action as sent (Gymnasium squares
 * `action[0]` before clipping it), plus 100 on the step that reaches the goal. Reset:
 * `x ~ U(−0.6, −0.4)`, `v = 0`. `dt` is 1: the task is in its own time units.
 *
 * Numerics: like Gymnasium, the state is stored as float32 after each step (the reset state is
 * kept in double until the first step) and the step's arithmetic is done in double (NumPy 1.x
 * semantics; NumPy ≥ 2 with float32 actions does parts of it in float32, a difference of
 * float32 rounding).
 *
 * Physics variants: `actuatorGain` multiplies the engine force (power·a), `massScale` divides
 * the engine's acceleration (a = F/m; the slope term does not depend on the mass). The task has
 * no friction, so `frictionScale` ≠ 1 is rejected.
 *
 * @example
 * const env = new MountainCarContinuous({ physics: { actuatorGain: 0.8 } });
 * let { obs } = env.reset({ seed: 0 });
 * ({ obs } = env.step([obs[1] >= 0 ? 1 : -1]));
 */
export class MountainCarContinuous extends BaseEnv {
  readonly id = ID;
  // Gymnasium's Box is float32, so its bounds are the float32 nearest -1.2, 0.6 and ±0.07:
  // an observation at a wall (float32 of the clipped double) then lies inside the box.
  readonly observationSpace = new Box(
    [Math.fround(MIN_POSITION), Math.fround(-MAX_SPEED)],
    [Math.fround(MAX_POSITION), Math.fround(MAX_SPEED)],
  );
  readonly actionSpace = new Box([MIN_ACTION], [MAX_ACTION]);
  readonly dt = DT;
  /** Velocity the car must have at the goal position. */
  readonly goalVelocity: number;
  #position = 0;
  #velocity = 0;

  /** @param options physics, time limit (default 999), seed (default 0), `goalVelocity` (default 0) */
  constructor(options: MountainCarContinuousOptions = {}) {
    super(options, MAX_EPISODE_STEPS, { massScale: true, frictionScale: false, actuatorGain: true }, ID);
    const goalVelocity = options.goalVelocity ?? 0;
    if (typeof goalVelocity !== 'number' || !Number.isFinite(goalVelocity)) {
      throw new ValidationError(ID, 'goalVelocity', `expected a finite number, got ${String(goalVelocity)}`);
    }
    this.goalVelocity = goalVelocity;
  }

  override get obsNames(): readonly string[] {
    return ['position', 'velocity'];
  }

  /** The true state (position, velocity), for tests and renderers. */
  get state(): [number, number] {
    return [this.#position, this.#velocity];
  }

  protected resetPlant(): Float64Array {
    this.#position = this.rng.uniform(RESET_LOW, RESET_HIGH);
    this.#velocity = 0;
    return this.#obs();
  }

  protected stepPlant(applied: Float64Array, commanded: Float64Array): PlantStep {
    const { actuatorGain, massScale } = this.physics;
    const force = clip(applied[0], MIN_ACTION, MAX_ACTION) * actuatorGain;
    let position = this.#position;
    // Gymnasium evaluates the right-hand side first: v += (F·power − 0.0025 cos 3x).
    let velocity = this.#velocity + ((force * POWER) / massScale - GRAVITY * Math.cos(3 * position));
    velocity = clip(velocity, -MAX_SPEED, MAX_SPEED);
    position = clip(position + velocity, MIN_POSITION, MAX_POSITION);
    if (position === MIN_POSITION && velocity < 0) velocity = 0;
    const terminated = position >= GOAL_POSITION && velocity >= this.goalVelocity;
    const a = commanded[0];
    const reward = (terminated ? GOAL_REWARD : 0) - a * a * CONTROL_COST;
    this.#position = Math.fround(position);
    this.#velocity = Math.fround(velocity);
    return { obs: this.#obs(), reward, terminated, info: {} };
  }

  #obs(): Float64Array {
    return Float64Array.of(Math.fround(this.#position), Math.fround(this.#velocity));
  }
}

function clip(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}

/**
 * MountainCarContinuous-v0's reward and termination from (obs, action, nextObs) for a given goal
 * velocity: terminated when nextObs has `x ≥ 0.45` and `v ≥ goalVelocity`; reward
 * `100·terminated − 0.1·a²`. Exact except on a step whose double-precision position lies within
 * float32 rounding (≈3e-8) of 0.45, where the float32 observation can fall on the other side.
 * @param goalVelocity default 0, as Gymnasium
 */
export function makeMountainCarContinuousTask(goalVelocity = 0): TaskFunctions {
  const isGoal = (nextObs: ArrayLike<number>, i: number): boolean =>
    nextObs[2 * i] >= GOAL_POSITION && nextObs[2 * i + 1] >= goalVelocity;
  return {
    reward(_obs, act, nextObs, n, out) {
      for (let i = 0; i < n; i++) {
        const a = act[i];
        out[i] = (isGoal(nextObs, i) ? GOAL_REWARD : 0) - a * a * CONTROL_COST;
      }
    },
    terminated(_obs, _act, nextObs, n, out) {
      for (let i = 0; i < n; i++) out[i] = isGoal(nextObs, i) ? 1 : 0;
    },
    rewardExact: true,
    rewardNote: 'exact up to the float32 rounding of the position at the goal threshold',
    terminatedExact: true,
    terminatedNote: 'exact up to the float32 rounding of the position at the goal threshold',
  };
}

/** MountainCarContinuous-v0's reward and termination with Gymnasium's default goal velocity 0. */
export const mountainCarContinuousTask: TaskFunctions = makeMountainCarContinuousTask(0);

/** `MountainCarContinuous-v0` in the registry. */
export const MOUNTAIN_CAR_CONTINUOUS_SPEC: EnvSpec = {
  id: ID,
  kind: 'classic',
  obsDim: 2,
  actDim: 1,
  actLow: [MIN_ACTION],
  actHigh: [MAX_ACTION],
  dt: DT,
  maxEpisodeSteps: MAX_EPISODE_STEPS,
  description: 'Drive an under-powered car up a hill (Gymnasium classic_control/continuous_mountain_car.py).',
  task: mountainCarContinuousTask,
  make: (options = {}) => Promise.resolve(new MountainCarContinuous(options)),
};
