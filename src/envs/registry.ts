import type { Env } from '../core/env.js';
import { ValidationError } from '../core/errors.js';
import { ANT_SPEC } from './ant.js';
import { HALF_CHEETAH_SPEC } from './halfCheetah.js';
import { HOPPER_SPEC } from './hopper.js';
import { INVERTED_PENDULUM_SPEC } from './invertedPendulum.js';
import { MOUNTAIN_CAR_CONTINUOUS_SPEC } from './mountainCarContinuous.js';
import { PENDULUM_SPEC } from './pendulum.js';
import { POINT_GOAL_2D_SPEC } from './pointGoal2D.js';
import { REACHER_SPEC } from './reacher.js';
import type { EnvSpec, MakeEnvOptions } from './spec.js';
import { SWIMMER_SPEC } from './swimmer.js';
import { WALKER2D_SPEC } from './walker2d.js';

/** Every built-in task, classic control first. */
export const ENV_SPECS: readonly EnvSpec[] = Object.freeze([
  PENDULUM_SPEC,
  MOUNTAIN_CAR_CONTINUOUS_SPEC,
  POINT_GOAL_2D_SPEC,
  INVERTED_PENDULUM_SPEC,
  HALF_CHEETAH_SPEC,
  HOPPER_SPEC,
  WALKER2D_SPEC,
  SWIMMER_SPEC,
  REACHER_SPEC,
  ANT_SPEC,
]);

/** The ids of the built-in tasks. */
export const ENV_IDS: readonly string[] = ENV_SPECS.map((s) => s.id);

/**
 * The spec of a built-in task.
 * @throws ValidationError listing the known ids when `id` is not one of them.
 */
export function envSpec(id: string): EnvSpec {
  const spec = ENV_SPECS.find((s) => s.id === id);
  if (!spec) throw new ValidationError('envs', 'id', `unknown environment ${JSON.stringify(id)}; expected one of ${ENV_IDS.join(', ')}`);
  return spec;
}

/**
 * Builds a built-in environment by id.
 * @example
 * const env = await makeEnv('HalfCheetah-v5', { physics: { massScale: 1.3 }, mjcfDir: '../shared/mujoco' });
 * const { obs } = env.reset({ seed: 1 });
 */
export function makeEnv(id: string, options: MakeEnvOptions = {}): Promise<Env> {
  return envSpec(id).make(options);
}
