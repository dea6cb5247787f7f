import type { EnvInfo, TaskFunctions } from '../core/env.js';
import type { PlantStep } from './baseEnv.js';
import { MujocoEnv, createMujocoEnv, type MujocoContext, type MujocoEnvOptions } from './mujocoEnv.js';
import { healthyForwardReward, positionVelocityNames, positionVelocityObs, sumOfSquares, uniformAround } from './mujocoTaskUtils.js';
import type { EnvSpec } from './spec.js';

/**
 * Gymnasium's `Walker2d-v5` constructor defaults (gymnasium/envs/mujoco/walker2d_v5.py, commit
 * 3f0476a8) and its time limit (gymnasium/envs/__init__.py). `Walker2d` implements exactly these.
 */
export const WALKER2D_V5 = Object.freeze({
  /** MJCF file (Gymnasium's `xml_file`); v5 uses `walker2d_v5.xml`, `walker2d.xml` is v4's model. */
  mjcfFile: 'walker2d_v5.xml',
  /** Physics steps per control step; with the model's 0.002 s timestep, dt = 0.008 s. */
  frameSkip: 4,
  /** Weight of the forward reward (x velocity of the torso, m/s). */
  forwardRewardWeight: 1,
  /** Weight of the control cost Σ a². */
  ctrlCostWeight: 1e-3,
  /** Reward per step while healthy (v5: only while healthy). */
  healthyReward: 1,
  /** Open interval for the torso height qpos[1] (m). */
  healthyZRange: [0.8, 2] as readonly [number, number],
  /** Open interval for the torso angle qpos[2] (rad). */
  healthyAngleRange: [-1, 1] as readonly [number, number],
  /** Half-width of the uniform reset noise on qpos and qvel. */
  resetNoiseScale: 5e-3,
  /** The observation clips qvel to ±this. */
  velocityClip: 10,
  maxEpisodeSteps: 1000,
});

const ID = 'Walker2d-v5';
const NQ = 9;
const NV = 9;
const NU = 6;
const OBS_DIM = NQ - 1 + NV;
const JOINTS = ['rootx', 'rootz', 'rooty', 'thigh_joint', 'leg_joint', 'foot_joint', 'thigh_left_joint', 'leg_left_joint', 'foot_left_joint'];

const OBS_NAMES = positionVelocityNames(JOINTS, 1);

/**
 * Gymnasium's `Walker2d-v5` (gymnasium/envs/mujoco/walker2d_v5.py) on real MuJoCo: a planar
 * biped (torso and two legs of thigh, leg and foot) that should walk forward.
 *
 * - Observation (17, float64): `qpos[1:]` (height, torso angle, six joint angles) then `qvel`
 *   clipped to ±10.
 * - Action (6): joint torques in [−1, 1] (gear 100), right leg then left leg.
 * - Reward: `healthy_reward + forward_reward − ctrl_cost` with forward_reward = Δx_torso / dt
 *   (x = qpos[0]), healthy_reward = 1 only while healthy (v5), ctrl_cost = 1e−3 Σ a² charged on
 *   the commanded action.
 * - Healthy while 0.8 < qpos[1] < 2 and −1 < qpos[2] < 1; terminates when unhealthy. (The
 *   docstring also mentions finiteness, but v5's `is_healthy` checks only height and angle; a NaN
 *   height or angle fails the comparisons, so it is unhealthy anyway.)
 * - Reset: qpos and qvel = initial + U(−5e−3, 5e−3) each; frame skip 4, dt 0.008 s, 1000 steps.
 * - `info`: `x_position`, `z_distance_from_origin`, `x_velocity`, `reward_forward`, `reward_ctrl`,
 *   `reward_survive`; `reset` returns `x_position` and `z_distance_from_origin`, as v5.
 *
 * @example
 * const env = await Walker2d.create({ mjcfDir: '../shared/mujoco' });
 * let { obs } = env.reset({ seed: 0 });
 * const step = env.step(new Float64Array(6));
 * env.close();
 */
export class Walker2d extends MujocoEnv {
  readonly id = ID;

  /**
   * @param ctx a MuJoCo module and the compiled `walker2d_v5.xml` (see `loadMujocoContext`)
   * @param options physics, time limit (default 1000), seed (default 0)
   * @throws ValidationError when the model's sizes are not the walker's (nq 9, nv 9, nu 6)
   */
  constructor(ctx: MujocoContext, options: MujocoEnvOptions = {}) {
    super(ctx, options, {
      id: ID,
      mjcfFile: WALKER2D_V5.mjcfFile,
      sizes: { nq: NQ, nv: NV, nu: NU },
      frameSkip: WALKER2D_V5.frameSkip,
      obsDim: OBS_DIM,
      maxEpisodeSteps: WALKER2D_V5.maxEpisodeSteps,
    });
  }

  /** Loads MuJoCo and `walker2d_v5.xml` (from `mjcfPath`, `mjcfDir` or `$MBRL_MJCF_DIR`) and builds the env. */
  static create(options: MujocoEnvOptions = {}): Promise<Walker2d> {
    return createMujocoEnv(WALKER2D_V5.mjcfFile, options, (ctx) => new Walker2d(ctx, options));
  }

  override get obsNames(): readonly string[] {
    return OBS_NAMES;
  }

  /** Gymnasium's `is_healthy`: height and torso angle of the current state. */
  get isHealthy(): boolean {
    return healthy(this.qpos[1], this.qpos[2]);
  }

  /** As `BaseEnv.reset`, with v5's reset `info` (`x_position`, `z_distance_from_origin`). */
  protected override resetInfo(): EnvInfo {
    return { x_position: this.qpos[0], z_distance_from_origin: this.qpos[1] - this.initQpos[1] };
  }

  protected resetPlant(): Float64Array {
    this.resetData();
    const s = WALKER2D_V5.resetNoiseScale;
    // Gymnasium draws all of qpos's noise, then all of qvel's.
    const qpos = uniformAround(this.initQpos, s, this.rng);
    const qvel = uniformAround(this.initQvel, s, this.rng);
    this.setState(qpos, qvel);
    return this.#obs();
  }

  protected stepPlant(applied: Float64Array, commanded: Float64Array): PlantStep {
    const { xAfter, xVelocity } = this.doSimulationTrackingX(applied);
    const obs = this.#obs();
    const isHealthy = this.isHealthy;
    const { reward, info } = healthyForwardReward(WALKER2D_V5, xVelocity, isHealthy, commanded);
    return {
      obs,
      reward,
      terminated: !isHealthy,
      info: { x_position: xAfter, z_distance_from_origin: this.qpos[1] - this.initQpos[1], x_velocity: xVelocity, ...info },
    };
  }

  /** `qpos[1:]` then `qvel` clipped to ±10. */
  #obs(): Float64Array {
    return positionVelocityObs(this.qpos, this.qvel, 1, WALKER2D_V5.velocityClip);
  }
}

function healthy(z: number, angle: number): boolean {
  const [minZ, maxZ] = WALKER2D_V5.healthyZRange;
  const [minAngle, maxAngle] = WALKER2D_V5.healthyAngleRange;
  return minZ < z && z < maxZ && minAngle < angle && angle < maxAngle;
}

/**
 * Walker2d-v5's reward and termination from (obs, action, nextObs).
 *
 * The forward reward is Δx/dt with x = qpos[0], which the observation excludes; it is
 * approximated by the trapezoid (v_x + v_x')/2 of the torso's x velocity before and after the
 * step (obs[8], nextObs[8]). On a seeded 3000-step random-action rollout the mean absolute reward
 * error is 8.1e−3 (max 0.10; mean |forward reward| 0.91), against 0.11 for the end velocity
 * alone; it is largest at foot impacts, where the velocity jumps within a step, and wherever
 * |v_x| > 10 is clipped. The healthy reward and the control cost are
 * exact. Termination is exact: height and angle are nextObs[0] and nextObs[1], unclipped.
 */
export const walker2dTask: TaskFunctions = {
  reward(obs, act, nextObs, n, out) {
    for (let i = 0; i < n; i++) {
      const o = i * OBS_DIM;
      const vx = 0.5 * (obs[o + NQ - 1] + nextObs[o + NQ - 1]);
      const survive = healthy(nextObs[o], nextObs[o + 1]) ? WALKER2D_V5.healthyReward : 0;
      out[i] = WALKER2D_V5.forwardRewardWeight * vx + survive - WALKER2D_V5.ctrlCostWeight * sumOfSquares(act, i * NU, NU);
    }
  },
  terminated(_obs, _act, nextObs, n, out) {
    for (let i = 0; i < n; i++) out[i] = healthy(nextObs[i * OBS_DIM], nextObs[i * OBS_DIM + 1]) ? 0 : 1;
  },
  rewardExact: false,
  rewardNote:
    'forward reward Δx/dt approximated by the mean of the x velocities (obs[8] + nextObs[8])/2, because x = qpos[0] is not observed; healthy reward and control cost exact',
  terminatedExact: true,
  terminatedNote: 'height nextObs[0] in (0.8, 2) and torso angle nextObs[1] in (−1, 1), as Gymnasium',
};

/** `Walker2d-v5` in the registry. */
export const WALKER2D_SPEC: EnvSpec = {
  id: ID,
  kind: 'mujoco',
  obsDim: OBS_DIM,
  actDim: NU,
  actLow: [-1, -1, -1, -1, -1, -1],
  actHigh: [1, 1, 1, 1, 1, 1],
  dt: 0.008,
  maxEpisodeSteps: WALKER2D_V5.maxEpisodeSteps,
  mjcfFile: WALKER2D_V5.mjcfFile,
  description: 'Walk forward with a planar biped (Gymnasium mujoco/walker2d_v5.py).',
  task: walker2dTask,
  make: (options = {}) => Walker2d.create(options),
};
