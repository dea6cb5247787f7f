import type { EnvInfo, TaskFunctions } from '../core/env.js';
import type { PlantStep } from './baseEnv.js';
import { MujocoEnv, createMujocoEnv, type MujocoContext, type MujocoEnvOptions } from './mujocoEnv.js';
import { healthyForwardReward, positionVelocityNames, positionVelocityObs, sumOfSquares, uniformAround } from './mujocoTaskUtils.js';
import type { EnvSpec } from './spec.js';

/**
 * Gymnasium's `Hopper-v5` constructor defaults (gymnasium/envs/mujoco/hopper_v5.py, commit
 * 3f0476a8) and its time limit (gymnasium/envs/__init__.py). `Hopper` implements exactly these.
 */
export const HOPPER_V5 = Object.freeze({
  /** MJCF file (Gymnasium's `xml_file`). */
  mjcfFile: 'hopper.xml',
  /** Physics steps per control step; with the model's 0.002 s timestep, dt = 0.008 s. */
  frameSkip: 4,
  /** Weight of the forward reward (x velocity of the torso, m/s). */
  forwardRewardWeight: 1,
  /** Weight of the control cost Σ a². */
  ctrlCostWeight: 1e-3,
  /** Reward per step while healthy (v5: only while healthy). */
  healthyReward: 1,
  /** Open interval that every entry of `state_vector()[2:]` (qpos[2:], unclipped qvel) must lie in. */
  healthyStateRange: [-100, 100] as readonly [number, number],
  /** Open interval for the torso height qpos[1] (m). */
  healthyZRange: [0.7, Infinity] as readonly [number, number],
  /** Open interval for the torso angle qpos[2] (rad). */
  healthyAngleRange: [-0.2, 0.2] as readonly [number, number],
  /** Half-width of the uniform reset noise on qpos and qvel. */
  resetNoiseScale: 5e-3,
  /** The observation clips qvel to ±this. */
  velocityClip: 10,
  maxEpisodeSteps: 1000,
});

const ID = 'Hopper-v5';
const NQ = 6;
const NV = 6;
const NU = 3;
const OBS_DIM = NQ - 1 + NV;
const JOINTS = ['rootx', 'rootz', 'rooty', 'thigh_joint', 'leg_joint', 'foot_joint'];

const OBS_NAMES = positionVelocityNames(JOINTS, 1);

/**
 * Gymnasium's `Hopper-v5` (gymnasium/envs/mujoco/hopper_v5.py) on real MuJoCo: a planar
 * one-legged robot (torso, thigh, leg, foot) that should hop forward.
 *
 * - Observation (11, float64): `qpos[1:]` (height, torso angle, three joint angles) then `qvel`
 *   clipped to ±10.
 * - Action (3): joint torques in [−1, 1] (gear 200).
 * - Reward: `healthy_reward + forward_reward − ctrl_cost` with forward_reward = Δx_torso / dt
 *   (x = qpos[0]), healthy_reward = 1 only while healthy (v5), ctrl_cost = 1e−3 Σ a² charged on
 *   the commanded action.
 * - Healthy while 0.7 < qpos[1], −0.2 < qpos[2] < 0.2 and every entry of
 *   `[qpos[2:], qvel]` (unclipped) lies in (−100, 100); terminates when unhealthy.
 * - Reset: qpos and qvel = initial + U(−5e−3, 5e−3) each; frame skip 4, dt 0.008 s, 1000 steps.
 * - `info`: `x_position`, `z_distance_from_origin`, `x_velocity`, `reward_forward`, `reward_ctrl`,
 *   `reward_survive`; `reset` returns `x_position` and `z_distance_from_origin`, as v5.
 *
 * @example
 * const env = await Hopper.create({ mjcfDir: '../shared/mujoco' });
 * let { obs } = env.reset({ seed: 0 });
 * const step = env.step([0, 0, 0]);
 * env.close();
 */
export class Hopper extends MujocoEnv {
  readonly id = ID;

  /**
   * @param ctx a MuJoCo module and the compiled `hopper.xml` (see `loadMujocoContext`)
   * @param options physics, time limit (default 1000), seed (default 0)
   * @throws ValidationError when the model's sizes are not the hopper's (nq 6, nv 6, nu 3)
   */
  constructor(ctx: MujocoContext, options: MujocoEnvOptions = {}) {
    super(ctx, options, {
      id: ID,
      mjcfFile: HOPPER_V5.mjcfFile,
      sizes: { nq: NQ, nv: NV, nu: NU },
      frameSkip: HOPPER_V5.frameSkip,
      obsDim: OBS_DIM,
      maxEpisodeSteps: HOPPER_V5.maxEpisodeSteps,
    });
  }

  /** Loads MuJoCo and `hopper.xml` (from `mjcfPath`, `mjcfDir` or `$MBRL_MJCF_DIR`) and builds the env. */
  static create(options: MujocoEnvOptions = {}): Promise<Hopper> {
    return createMujocoEnv(HOPPER_V5.mjcfFile, options, (ctx) => new Hopper(ctx, options));
  }

  override get obsNames(): readonly string[] {
    return OBS_NAMES;
  }

  /** Gymnasium's `is_healthy`: height, angle and state-range checks on the current state. */
  get isHealthy(): boolean {
    const qpos = this.qpos;
    const qvel = this.qvel;
    const [minZ, maxZ] = HOPPER_V5.healthyZRange;
    const [minAngle, maxAngle] = HOPPER_V5.healthyAngleRange;
    const [minState, maxState] = HOPPER_V5.healthyStateRange;
    for (let i = 2; i < NQ; i++) if (!(minState < qpos[i] && qpos[i] < maxState)) return false;
    for (let i = 0; i < NV; i++) if (!(minState < qvel[i] && qvel[i] < maxState)) return false;
    return minZ < qpos[1] && qpos[1] < maxZ && minAngle < qpos[2] && qpos[2] < maxAngle;
  }

  /** As `BaseEnv.reset`, with v5's reset `info` (`x_position`, `z_distance_from_origin`). */
  protected override resetInfo(): EnvInfo {
    return { x_position: this.qpos[0], z_distance_from_origin: this.qpos[1] - this.initQpos[1] };
  }

  protected resetPlant(): Float64Array {
    this.resetData();
    const s = HOPPER_V5.resetNoiseScale;
    // Gymnasium draws all of qpos's noise, then all of qvel's.
    const qpos = uniformAround(this.initQpos, s, this.rng);
    const qvel = uniformAround(this.initQvel, s, this.rng);
    this.setState(qpos, qvel);
    return this.#obs();
  }

  protected stepPlant(applied: Float64Array, commanded: Float64Array): PlantStep {
    const { xAfter, xVelocity } = this.doSimulationTrackingX(applied);
    const obs = this.#obs();
    const healthy = this.isHealthy;
    const { reward, info } = healthyForwardReward(HOPPER_V5, xVelocity, healthy, commanded);
    return {
      obs,
      reward,
      terminated: !healthy,
      info: { x_position: xAfter, z_distance_from_origin: this.qpos[1] - this.initQpos[1], x_velocity: xVelocity, ...info },
    };
  }

  /** `qpos[1:]` then `qvel` clipped to ±10. */
  #obs(): Float64Array {
    return positionVelocityObs(this.qpos, this.qvel, 1, HOPPER_V5.velocityClip);
  }
}

/**
 * Whether row `row` of a flat batch of Hopper observations is healthy, as far as the observation
 * shows: height obs[0], angle obs[1], and the (−100, 100) range on obs[1..10]. The velocities in
 * the observation are clipped to ±10, so a |qvel| ≥ 100 that Gymnasium counts as unhealthy is
 * invisible here (NaN still is).
 */
function healthyFromObs(obs: ArrayLike<number>, row: number): boolean {
  const o = row * OBS_DIM;
  const [minZ, maxZ] = HOPPER_V5.healthyZRange;
  const [minAngle, maxAngle] = HOPPER_V5.healthyAngleRange;
  const [minState, maxState] = HOPPER_V5.healthyStateRange;
  for (let i = 1; i < OBS_DIM; i++) if (!(minState < obs[o + i] && obs[o + i] < maxState)) return false;
  return minZ < obs[o] && obs[o] < maxZ && minAngle < obs[o + 1] && obs[o + 1] < maxAngle;
}

/**
 * Hopper-v5's reward and termination from (obs, action, nextObs).
 *
 * The forward reward is Δx/dt with x = qpos[0], which the observation excludes; it is
 * approximated by the trapezoid (v_x + v_x')/2 of the torso's x velocity before and after the
 * step (obs[5], nextObs[5]). On a seeded 3000-step random-action rollout the mean absolute reward
 * error is 1.6e−3 (max 0.05; mean |forward reward| 0.35), against 0.039 for the end velocity
 * alone; it is largest at foot impacts, where the velocity jumps within a step, and wherever
 * |v_x| > 10 is clipped. The healthy reward and the control cost
 * are exact. Termination uses nextObs (height, angle, ranges) and agrees with the environment
 * except when an unclipped |qvel| ≥ 100 (not visible in the clipped observation).
 */
export const hopperTask: TaskFunctions = {
  reward(obs, act, nextObs, n, out) {
    for (let i = 0; i < n; i++) {
      const vx = 0.5 * (obs[i * OBS_DIM + NQ - 1] + nextObs[i * OBS_DIM + NQ - 1]);
      const healthy = healthyFromObs(nextObs, i) ? HOPPER_V5.healthyReward : 0;
      out[i] = HOPPER_V5.forwardRewardWeight * vx + healthy - HOPPER_V5.ctrlCostWeight * sumOfSquares(act, i * NU, NU);
    }
  },
  terminated(_obs, _act, nextObs, n, out) {
    for (let i = 0; i < n; i++) out[i] = healthyFromObs(nextObs, i) ? 0 : 1;
  },
  rewardExact: false,
  rewardNote:
    'forward reward Δx/dt approximated by the mean of the x velocities (obs[5] + nextObs[5])/2, because x = qpos[0] is not observed; healthy reward and control cost exact',
  terminatedExact: false,
  terminatedNote:
    "Gymnasium's healthy_state_range (−100, 100) applies to the unclipped qvel, but the observation clips qvel to ±10, so a state unhealthy only through |qvel| ≥ 100 is not detected; height and angle checks are exact",
};

/** `Hopper-v5` in the registry. */
export const HOPPER_SPEC: EnvSpec = {
  id: ID,
  kind: 'mujoco',
  obsDim: OBS_DIM,
  actDim: NU,
  actLow: [-1, -1, -1],
  actHigh: [1, 1, 1],
  dt: 0.008,
  maxEpisodeSteps: HOPPER_V5.maxEpisodeSteps,
  mjcfFile: HOPPER_V5.mjcfFile,
  description: 'Hop forward with a planar one-legged robot (Gymnasium mujoco/hopper_v5.py).',
  task: hopperTask,
  make: (options = {}) => Hopper.create(options),
};
