import type { EnvOptions, TaskFunctions } from '../core/env.js';
import { Box } from '../core/spaces.js';
import { BaseEnv, type PlantStep } from './baseEnv.js';
import type { EnvSpec } from './spec.js';

const MAX_SPEED = 8;
const MAX_TORQUE = 2;
const DT = 0.05;
const LENGTH = 1;
const MASS = 1;

/** Options of `Pendulum-v1`. */
export interface PendulumOptions extends EnvOptions {
  /** Gravitational acceleration (m/s²). Default 10, as Gymnasium. */
  g?: number;
}

/**
 * Gymnasium's `Pendulum-v1` (gymnasium/envs/classic_control/pendulum.py): swing a rod up and hold
 * it. Observation `[cos θ, sin θ, θ̇]` (float32 as Gymnasium), action torque in [−2, 2],
 * reward −(θ² + 0.1 θ̇² + 0.001 u²) with θ normalised to [−π, π) before the step, no
 * termination, 200 steps. Reset: θ ~ U(−π, π), θ̇ ~ U(−1, 1).
 *
 * Physics variants: `massScale` scales m (the torque term 3u/(m l²); gravity on a uniform rod
 * does not depend on m), `actuatorGain` scales the applied torque. The task has no friction.
 */
export class Pendulum extends BaseEnv {
  readonly id = 'Pendulum-v1';
  readonly observationSpace = new Box([-1, -1, -MAX_SPEED], [1, 1, MAX_SPEED]);
  readonly actionSpace = new Box([-MAX_TORQUE], [MAX_TORQUE]);
  readonly dt = DT;
  readonly g: number;
  #th = 0;
  #thdot = 0;

  constructor(options: PendulumOptions = {}) {
    super(options, 200, { massScale: true, frictionScale: false, actuatorGain: true }, 'Pendulum-v1');
    this.g = options.g ?? 10;
  }

  override get obsNames(): readonly string[] {
    return ['cos(theta)', 'sin(theta)', 'theta_dot'];
  }

  /** The true state (θ, θ̇), for tests and renderers. */
  get state(): [number, number] {
    return [this.#th, this.#thdot];
  }

  protected resetPlant(): Float64Array {
    this.#th = this.rng.uniform(-Math.PI, Math.PI);
    this.#thdot = this.rng.uniform(-1, 1);
    return this.#obs();
  }

  protected stepPlant(applied: Float64Array, commanded: Float64Array): PlantStep {
    const u = clip(applied[0], -MAX_TORQUE, MAX_TORQUE) * this.physics.actuatorGain;
    const uCost = clip(commanded[0], -MAX_TORQUE, MAX_TORQUE);
    const th = this.#th;
    const thdot = this.#thdot;
    const m = MASS * this.physics.massScale;
    const costs = angleNormalize(th) ** 2 + 0.1 * thdot * thdot + 0.001 * uCost * uCost;
    let newThdot = thdot + ((3 * this.g) / (2 * LENGTH) * Math.sin(th) + (3 / (m * LENGTH * LENGTH)) * u) * DT;
    newThdot = clip(newThdot, -MAX_SPEED, MAX_SPEED);
    this.#th = th + newThdot * DT;
    this.#thdot = newThdot;
    return { obs: this.#obs(), reward: -costs, terminated: false, info: {} };
  }

  #obs(): Float64Array {
    return Float64Array.of(Math.fround(Math.cos(this.#th)), Math.fround(Math.sin(this.#th)), Math.fround(this.#thdot));
  }
}

/** θ wrapped into [−π, π), as Gymnasium's `angle_normalize`. */
export function angleNormalize(x: number): number {
  return ((((x + Math.PI) % (2 * Math.PI)) + 2 * Math.PI) % (2 * Math.PI)) - Math.PI;
}

function clip(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}

/**
 * Pendulum-v1's reward and termination from (obs, action, nextObs): θ = atan2(sin θ, cos θ) of
 * the observation before the step. Equal to the environment's reward up to the float32 rounding
 * of the observation (|error| < 1e-5).
 */
export const pendulumTask: TaskFunctions = {
  reward(obs, act, _nextObs, n, out) {
    for (let i = 0; i < n; i++) {
      const th = Math.atan2(obs[3 * i + 1], obs[3 * i]);
      const thdot = obs[3 * i + 2];
      const u = clip(act[i], -MAX_TORQUE, MAX_TORQUE);
      out[i] = -(th * th + 0.1 * thdot * thdot + 0.001 * u * u);
    }
  },
  terminated(_obs, _act, _nextObs, n, out) {
    out.fill(0, 0, n);
  },
  rewardExact: true,
  rewardNote: 'exact up to the float32 rounding of the observation',
  terminatedExact: true,
};

/** `Pendulum-v1` in the registry. */
export const PENDULUM_SPEC: EnvSpec = {
  id: 'Pendulum-v1',
  kind: 'classic',
  obsDim: 3,
  actDim: 1,
  actLow: [-MAX_TORQUE],
  actHigh: [MAX_TORQUE],
  dt: DT,
  maxEpisodeSteps: 200,
  description: 'Swing up and balance a rod (Gymnasium classic_control/pendulum.py).',
  task: pendulumTask,
  make: (options = {}) => Promise.resolve(new Pendulum(options)),
};
