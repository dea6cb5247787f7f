import type { TaskFunctions } from '../core/env.js';
import type { PlantStep } from './baseEnv.js';
import { MujocoEnv, createMujocoEnv, type MujocoContext, type MujocoEnvOptions } from './mujocoEnv.js';
import { uniformAround } from './mujocoTaskUtils.js';
import type { EnvSpec } from './spec.js';

const ID = 'InvertedPendulum-v5';
const MJCF_FILE = 'inverted_pendulum.xml';
const FRAME_SKIP = 2;
const OBS_DIM = 4;
const MAX_EPISODE_STEPS = 1000;
const RESET_NOISE_SCALE = 0.01;
/** The pole is healthy while |hinge angle| ≤ this (rad). */
const MAX_POLE_ANGLE = 0.2;
const MODEL_DIMS = { nq: 2, nv: 2, nu: 1 };

/**
 * Gymnasium's `InvertedPendulum-v5` (gymnasium/envs/mujoco/inverted_pendulum_v5.py, default
 * arguments): balance a pole hinged on a cart by pushing the cart along a rail.
 *
 * - Model `inverted_pendulum.xml`, frame skip 2 (dt = 2 × 0.02 = 0.04 s), action: the force on the
 *   cart in [−3, 3] (actuator gear 100).
 * - Observation (4, float64): `[qpos (cart x, pole angle), qvel (cart ẋ, pole angular velocity)]`.
 * - Reward: 1 while the pole is healthy, 0 on the terminating step (v5's fix of the v4 bug that
 *   paid the survival reward after falling); `info.reward_survive` holds it.
 * - Termination: an observation entry is not finite, or |pole angle| > 0.2 rad.
 * - Reset: `qpos = init + U(−0.01, 0.01)`, `qvel = init + U(−0.01, 0.01)`; 1000 steps.
 *
 * Physics variants act through the model (see `MujocoEnv`): `actuatorGain` scales the gear,
 * `massScale` the cart and pole, `frictionScale` the joint damping.
 *
 * @example
 * const env = await InvertedPendulum.create({ mjcfDir: '../shared/mujoco' });
 * let { obs } = env.reset({ seed: 0 });
 * const { reward, terminated } = env.step([0.5]);
 */
export class InvertedPendulum extends MujocoEnv {
  readonly id = ID;

  private constructor(ctx: MujocoContext, options: MujocoEnvOptions) {
    super(ctx, options, { id: ID, mjcfFile: MJCF_FILE, sizes: MODEL_DIMS, frameSkip: FRAME_SKIP, obsDim: OBS_DIM, maxEpisodeSteps: MAX_EPISODE_STEPS });
  }

  /**
   * Compiles `inverted_pendulum.xml` (found through `mjcfPath`, `mjcfDir` or `MBRL_MJCF_DIR`) and
   * builds the environment.
   * @param options physics, time limit (default 1000), seed (default 0) and MJCF location
   * @throws MjcfNotFoundError when the MJCF file cannot be found; ValidationError for bad physics
   *   or a model of the wrong size.
   */
  static create(options: MujocoEnvOptions = {}): Promise<InvertedPendulum> {
    return createMujocoEnv(MJCF_FILE, options, (ctx) => new InvertedPendulum(ctx, options));
  }

  override get obsNames(): readonly string[] {
    return OBS_NAMES;
  }

  protected resetPlant(): Float64Array {
    this.resetData();
    const qpos = uniformAround(this.initQpos, RESET_NOISE_SCALE, this.rng);
    const qvel = uniformAround(this.initQvel, RESET_NOISE_SCALE, this.rng);
    this.setState(qpos, qvel);
    return this.#obs();
  }

  protected stepPlant(applied: Float64Array): PlantStep {
    this.doSimulation(applied);
    const obs = this.#obs();
    const terminated = !isHealthy(obs, 0);
    const reward = terminated ? 0 : 1;
    return { obs, reward, terminated, info: { reward_survive: reward } };
  }

  #obs(): Float64Array {
    const qpos = this.qpos;
    const qvel = this.qvel;
    return Float64Array.of(qpos[0], qpos[1], qvel[0], qvel[1]);
  }
}

const OBS_NAMES: readonly string[] = Object.freeze(['qpos[0]:slider', 'qpos[1]:hinge', 'qvel[0]:slider', 'qvel[1]:hinge']);

/** Gymnasium's health test on the observation row starting at `offset`. */
function isHealthy(obs: ArrayLike<number>, offset: number): boolean {
  for (let j = 0; j < OBS_DIM; j++) if (!Number.isFinite(obs[offset + j])) return false;
  return Math.abs(obs[offset + 1]) <= MAX_POLE_ANGLE;
}

/**
 * InvertedPendulum-v5's reward and termination from (obs, action, nextObs). Both depend only on
 * the next observation, which holds the full state, so they equal the environment's exactly:
 * terminated = some entry of s' not finite or |s'[1]| > 0.2; reward = 1 − terminated.
 */
export const invertedPendulumTask: TaskFunctions = {
  reward(_obs, _act, nextObs, n, out) {
    for (let i = 0; i < n; i++) out[i] = isHealthy(nextObs, i * OBS_DIM) ? 1 : 0;
  },
  terminated(_obs, _act, nextObs, n, out) {
    for (let i = 0; i < n; i++) out[i] = isHealthy(nextObs, i * OBS_DIM) ? 0 : 1;
  },
  rewardExact: true,
  terminatedExact: true,
};

/** `InvertedPendulum-v5` in the registry. */
export const INVERTED_PENDULUM_SPEC: EnvSpec = {
  id: ID,
  kind: 'mujoco',
  obsDim: OBS_DIM,
  actDim: 1,
  actLow: [-3],
  actHigh: [3],
  dt: 0.04,
  maxEpisodeSteps: MAX_EPISODE_STEPS,
  mjcfFile: MJCF_FILE,
  description: 'Balance a pole on a cart, MuJoCo (Gymnasium mujoco/inverted_pendulum_v5.py).',
  task: invertedPendulumTask,
  make: (options = {}) => InvertedPendulum.create(options),
};
