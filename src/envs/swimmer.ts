import type { EnvInfo, TaskFunctions } from '../core/env.js';
import type { PlantStep } from './baseEnv.js';
import { MujocoEnv, createMujocoEnv, type MujocoContext, type MujocoEnvOptions } from './mujocoEnv.js';
import { positionVelocityNames, positionVelocityObs, sumOfSquares, uniformAround } from './mujocoTaskUtils.js';
import type { EnvSpec } from './spec.js';

const ID = 'Swimmer-v5';
const MJCF_FILE = 'swimmer.xml';
const FRAME_SKIP = 4;
const OBS_DIM = 8;
const ACT_DIM = 2;
const MAX_EPISODE_STEPS = 1000;
const FORWARD_REWARD_WEIGHT = 1;
const CTRL_COST_WEIGHT = 1e-4;
const RESET_NOISE_SCALE = 0.1;
const MODEL_DIMS = { nq: 5, nv: 5, nu: ACT_DIM };
/** Index of the tip's x velocity (qvel[0]) in the observation. */
const OBS_X_VELOCITY = 3;

/**
 * Gymnasium's `Swimmer-v5` (gymnasium/envs/mujoco/swimmer_v5.py, default arguments): a
 * three-link swimmer in a viscous fluid, rewarded for moving forward along x.
 *
 * - Model `swimmer.xml` (RK4, viscosity 0.1), frame skip 4 (dt = 4 × 0.01 = 0.04 s), action: the
 *   two rotor torques in [−1, 1].
 * - Observation (8, float64): `qpos[2:]` (the tip's x and y excluded) then `qvel` (5).
 * - Reward: `forward_reward − ctrl_cost` with `forward_reward = 1 · (x_after − x_before) / dt`
 *   (x = qpos[0]) and `ctrl_cost = 1e-4 · Σ a²` on the commanded action. `info`: `x_position`,
 *   `y_position`, `distance_from_origin`, `x_velocity`, `y_velocity`, `reward_forward`,
 *   `reward_ctrl` (= −ctrl_cost); the reset's `info` holds the three positions, as v5.
 * - No termination; 1000 steps. Reset: `qpos = init + U(−0.1, 0.1)`, `qvel = init + U(−0.1, 0.1)`.
 *
 * @example
 * const env = await Swimmer.create({ mjcfDir: '../shared/mujoco' });
 * env.reset({ seed: 0 });
 * const { reward, info } = env.step([1, -1]);
 */
export class Swimmer extends MujocoEnv {
  readonly id = ID;

  private constructor(ctx: MujocoContext, options: MujocoEnvOptions) {
    super(ctx, options, { id: ID, mjcfFile: MJCF_FILE, sizes: MODEL_DIMS, frameSkip: FRAME_SKIP, obsDim: OBS_DIM, maxEpisodeSteps: MAX_EPISODE_STEPS });
  }

  /**
   * Compiles `swimmer.xml` (found through `mjcfPath`, `mjcfDir` or `MBRL_MJCF_DIR`) and builds
   * the environment.
   * @param options physics, time limit (default 1000), seed (default 0) and MJCF location
   * @throws MjcfNotFoundError when the MJCF file cannot be found; ValidationError for bad physics
   *   or a model of the wrong size.
   */
  static create(options: MujocoEnvOptions = {}): Promise<Swimmer> {
    return createMujocoEnv(MJCF_FILE, options, (ctx) => new Swimmer(ctx, options));
  }

  override get obsNames(): readonly string[] {
    return OBS_NAMES;
  }

  /** As `BaseEnv.reset`, with v5's reset `info` (`x_position`, `y_position`, `distance_from_origin`). */
  protected override resetInfo(): EnvInfo {
    const [x, y] = this.qpos;
    return { x_position: x, y_position: y, distance_from_origin: Math.hypot(x, y) };
  }

  protected resetPlant(): Float64Array {
    this.resetData();
    const qpos = uniformAround(this.initQpos, RESET_NOISE_SCALE, this.rng);
    const qvel = uniformAround(this.initQvel, RESET_NOISE_SCALE, this.rng);
    this.setState(qpos, qvel);
    return this.#obs();
  }

  protected stepPlant(applied: Float64Array, commanded: Float64Array): PlantStep {
    const [xBefore, yBefore] = this.qpos;
    this.doSimulation(applied);
    const [xAfter, yAfter] = this.qpos;
    const xVelocity = (xAfter - xBefore) / this.dt;
    const yVelocity = (yAfter - yBefore) / this.dt;
    const forwardReward = FORWARD_REWARD_WEIGHT * xVelocity;
    const ctrlCost = CTRL_COST_WEIGHT * sumOfSquares(commanded, 0, ACT_DIM);
    return {
      obs: this.#obs(),
      reward: forwardReward - ctrlCost,
      terminated: false,
      info: {
        x_position: xAfter,
        y_position: yAfter,
        distance_from_origin: Math.hypot(xAfter, yAfter),
        x_velocity: xVelocity,
        y_velocity: yVelocity,
        reward_forward: forwardReward,
        reward_ctrl: -ctrlCost,
      },
    };
  }

  /** `qpos[2:]` (the tip's x and y excluded) then `qvel`. */
  #obs(): Float64Array {
    return positionVelocityObs(this.qpos, this.qvel, 2);
  }
}

const JOINTS = ['slider1', 'slider2', 'free_body_rot', 'motor1_rot', 'motor2_rot'];
const OBS_NAMES = positionVelocityNames(JOINTS, 2);

/**
 * Swimmer-v5's reward and termination from (obs, action, nextObs). The environment's forward
 * reward is the tip's mean x velocity over the step, (x_after − x_before)/dt, but x is not
 * observed. The model integrates with RK4, which follows the continuous trajectory closely, so
 * the mean velocity is estimated by the trapezoid (obs[3] + nextObs[3])/2 of the x velocity
 * before and after the step (measured error in the test). The control cost 1e-4 Σ a² is exact.
 * The task never terminates.
 */
export const swimmerTask: TaskFunctions = {
  reward(obs, act, nextObs, n, out) {
    for (let i = 0; i < n; i++) {
      const vx = 0.5 * (obs[i * OBS_DIM + OBS_X_VELOCITY] + nextObs[i * OBS_DIM + OBS_X_VELOCITY]);
      out[i] = FORWARD_REWARD_WEIGHT * vx - CTRL_COST_WEIGHT * sumOfSquares(act, i * ACT_DIM, ACT_DIM);
    }
  },
  terminated(_obs, _act, _nextObs, n, out) {
    out.fill(0, 0, n);
  },
  rewardExact: false,
  rewardNote:
    'forward reward (x_after − x_before)/dt approximated by the trapezoid (obs[3] + nextObs[3])/2 of the tip x velocity before and after the step, since x is not observed; control cost exact',
  terminatedExact: true,
};

/** `Swimmer-v5` in the registry. */
export const SWIMMER_SPEC: EnvSpec = {
  id: ID,
  kind: 'mujoco',
  obsDim: OBS_DIM,
  actDim: ACT_DIM,
  actLow: [-1, -1],
  actHigh: [1, 1],
  dt: 0.04,
  maxEpisodeSteps: MAX_EPISODE_STEPS,
  mjcfFile: MJCF_FILE,
  description: 'Three-link swimmer in a viscous fluid rewarded for moving forward, MuJoCo (Gymnasium mujoco/swimmer_v5.py).',
  task: swimmerTask,
  make: (options = {}) => Swimmer.create(options),
};
