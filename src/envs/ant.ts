import type { EnvInfo, TaskFunctions } from '../core/env.js';
import type { PlantStep } from './baseEnv.js';
import { MujocoEnv, createMujocoEnv, type MujocoContext, type MujocoEnvOptions } from './mujocoEnv.js';
import { clip, normalAround, sumOfSquares, uniformAround } from './mujocoTaskUtils.js';
import type { EnvSpec } from './spec.js';

/**
 * Gymnasium's `Ant-v5` constructor defaults (gymnasium/envs/mujoco/ant_v5.py, commit 3f0476a8)
 * and its time limit (gymnasium/envs/__init__.py). `Ant` implements exactly these.
 */
export const ANT_V5 = Object.freeze({
  /** MJCF file (Gymnasium's `xml_file`). */
  mjcfFile: 'ant.xml',
  /** Physics steps per control step; with the model's 0.01 s timestep, dt = 0.05 s. */
  frameSkip: 5,
  /** Weight of the forward reward (x velocity of the torso body, m/s). */
  forwardRewardWeight: 1,
  /** Weight of the control cost Σ a². */
  ctrlCostWeight: 0.5,
  /** Weight of the contact cost Σ clip(cfrc_ext)². */
  contactCostWeight: 5e-4,
  /** Reward per step while healthy (v5: only while healthy). */
  healthyReward: 1,
  /** Closed interval for the torso height qpos[2] (m). */
  healthyZRange: [0.2, 1] as readonly [number, number],
  /** Contact forces are clipped to this range, in the cost and in the observation. */
  contactForceRange: [-1, 1] as readonly [number, number],
  /** Reset noise: qpos + U(−s, s), qvel + s·N(0, 1). */
  resetNoiseScale: 0.1,
  maxEpisodeSteps: 1000,
});

const ID = 'Ant-v5';
const NQ = 15;
const NV = 14;
const NU = 8;
const NBODY = 14;
/** qpos[2:], qvel, then cfrc_ext[1:] (13 bodies × 6). */
const OBS_DIM = NQ - 2 + NV + (NBODY - 1) * 6;
const CFRC_OFFSET = NQ - 2 + NV;
const LEG_JOINTS = ['hip_1', 'ankle_1', 'hip_2', 'ankle_2', 'hip_3', 'ankle_3', 'hip_4', 'ankle_4'];
/** Body names as in Gymnasium's docstring table (the ankle bodies are unnamed in ant.xml). */
const BODIES = ['torso', 'front_left_leg', 'aux_1', 'ankle_1', 'front_right_leg', 'aux_2', 'ankle_2', 'back_leg', 'aux_3', 'ankle_3', 'right_back_leg', 'aux_4', 'ankle_4'];
/** MuJoCo's spatial vectors put the rotational part first: cfrc_ext = [torque; force]. */
const CFRC_PARTS = ['torque_x', 'torque_y', 'torque_z', 'force_x', 'force_y', 'force_z'];

const OBS_NAMES: readonly string[] = Object.freeze([
  ...['root.z', 'root.qw', 'root.qx', 'root.qy', 'root.qz', ...LEG_JOINTS].map((j, i) => `qpos[${i + 2}]:${j}`),
  ...['root.vx', 'root.vy', 'root.vz', 'root.wx', 'root.wy', 'root.wz', ...LEG_JOINTS].map((j, i) => `qvel[${i}]:${j}`),
  ...BODIES.flatMap((b, i) => CFRC_PARTS.map((p) => `cfrc_ext[${i + 1}]:${b}.${p}`)),
]);

/**
 * Gymnasium's `Ant-v5` (gymnasium/envs/mujoco/ant_v5.py) on real MuJoCo: a four-legged robot
 * with a free-floating torso that should walk in +x.
 *
 * - Observation (105, float64): `qpos[2:]` (torso height, orientation quaternion, eight joint
 *   angles), `qvel` (unclipped), and the external contact forces `cfrc_ext[1:]` of the 13 bodies
 *   clipped to [−1, 1] (v5's `include_cfrc_ext_in_observation` is true by default).
 * - Action (8): joint torques in [−1, 1] (gear 150).
 * - Reward: `healthy_reward + forward_reward − ctrl_cost − contact_cost` with
 *   forward_reward = Δx / dt of the torso body's `xpos` (as Gymnasium, `data.xpos` as MuJoCo left
 *   it after the step), healthy_reward = 1 only while healthy, ctrl_cost = 0.5 Σ a² charged on the
 *   commanded action, contact_cost = 5e−4 Σ clip(cfrc_ext, −1, 1)² over all bodies.
 * - Healthy while every qpos and qvel entry is finite and 0.2 ≤ qpos[2] ≤ 1 (closed interval, as
 *   Gymnasium); terminates when unhealthy.
 * - Reset: qpos = initial + U(−0.1, 0.1) (the quaternion too, unnormalised, as Gymnasium),
 *   qvel = initial + 0.1·N(0, 1); frame skip 5, dt 0.05 s, 1000 steps.
 * - `info`: `x_position`, `y_position`, `distance_from_origin`, `x_velocity`, `y_velocity`,
 *   `reward_forward`, `reward_ctrl`, `reward_contact`, `reward_survive`; `reset` returns the first
 *   three, as v5.
 *
 * @example
 * const env = await Ant.create({ mjcfDir: '../shared/mujoco' });
 * let { obs } = env.reset({ seed: 0 });
 * const step = env.step(new Float64Array(8));
 * env.close();
 */
export class Ant extends MujocoEnv {
  readonly id = ID;
  /** Gymnasium's `main_body` (1, "torso"): its displacement gives the forward reward. */
  readonly #mainBody: number;

  /**
   * @param ctx a MuJoCo module and the compiled `ant.xml` (see `loadMujocoContext`)
   * @param options physics, time limit (default 1000), seed (default 0)
   * @throws ValidationError when the model's sizes are not the ant's (nq 15, nv 14, nu 8, 14 bodies);
   *   Error when it has no `torso` body
   */
  constructor(ctx: MujocoContext, options: MujocoEnvOptions = {}) {
    super(ctx, options, {
      id: ID,
      mjcfFile: ANT_V5.mjcfFile,
      sizes: { nq: NQ, nv: NV, nu: NU, nbody: NBODY },
      frameSkip: ANT_V5.frameSkip,
      obsDim: OBS_DIM,
      maxEpisodeSteps: ANT_V5.maxEpisodeSteps,
    });
    this.#mainBody = this.bodyId('torso');
  }

  /** Loads MuJoCo and `ant.xml` (from `mjcfPath`, `mjcfDir` or `$MBRL_MJCF_DIR`) and builds the env. */
  static create(options: MujocoEnvOptions = {}): Promise<Ant> {
    return createMujocoEnv(ANT_V5.mjcfFile, options, (ctx) => new Ant(ctx, options));
  }

  override get obsNames(): readonly string[] {
    return OBS_NAMES;
  }

  /** Gymnasium's `is_healthy`: a finite state and 0.2 ≤ torso height ≤ 1. */
  get isHealthy(): boolean {
    const qpos = this.qpos;
    const qvel = this.qvel;
    for (let i = 0; i < NQ; i++) if (!Number.isFinite(qpos[i])) return false;
    for (let i = 0; i < NV; i++) if (!Number.isFinite(qvel[i])) return false;
    return heightHealthy(qpos[2]);
  }

  /** Gymnasium's `contact_cost`: weight × Σ over every body (world included) of clip(cfrc_ext)². */
  get contactCost(): number {
    const f = this.data.cfrc_ext as Float64Array;
    const [lo, hi] = ANT_V5.contactForceRange;
    let s = 0;
    for (let i = 0; i < NBODY * 6; i++) {
      const c = clip(f[i], lo, hi);
      s += c * c;
    }
    return ANT_V5.contactCostWeight * s;
  }

  /** As `BaseEnv.reset`, with v5's reset `info` (`x_position`, `y_position`, `distance_from_origin`). */
  protected override resetInfo(): EnvInfo {
    const qpos = this.qpos;
    return { x_position: qpos[0], y_position: qpos[1], distance_from_origin: Math.hypot(qpos[0], qpos[1]) };
  }

  protected resetPlant(): Float64Array {
    this.resetData();
    const s = ANT_V5.resetNoiseScale;
    // Gymnasium draws all of qpos's (uniform) noise, then all of qvel's (normal).
    const qpos = uniformAround(this.initQpos, s, this.rng);
    const qvel = normalAround(this.initQvel, s, this.rng);
    this.setState(qpos, qvel);
    return this.#obs();
  }

  protected stepPlant(applied: Float64Array, commanded: Float64Array): PlantStep {
    const [xBefore, yBefore] = this.bodyXpos(this.#mainBody);
    this.doSimulation(applied);
    const [xAfter, yAfter] = this.bodyXpos(this.#mainBody);
    const xVelocity = (xAfter - xBefore) / this.dt;
    const yVelocity = (yAfter - yBefore) / this.dt;
    const obs = this.#obs();
    const isHealthy = this.isHealthy;
    const forwardReward = xVelocity * ANT_V5.forwardRewardWeight;
    const healthyReward = isHealthy ? ANT_V5.healthyReward : 0;
    const ctrlCost = ANT_V5.ctrlCostWeight * sumOfSquares(commanded, 0, NU);
    const contactCost = this.contactCost;
    const qpos = this.qpos;
    return {
      obs,
      reward: forwardReward + healthyReward - (ctrlCost + contactCost),
      terminated: !isHealthy,
      info: {
        x_position: qpos[0],
        y_position: qpos[1],
        distance_from_origin: Math.hypot(qpos[0], qpos[1]),
        x_velocity: xVelocity,
        y_velocity: yVelocity,
        reward_forward: forwardReward,
        reward_ctrl: -ctrlCost,
        reward_contact: -contactCost,
        reward_survive: healthyReward,
      },
    };
  }

  #obs(): Float64Array {
    const qpos = this.qpos;
    const qvel = this.qvel;
    const f = this.data.cfrc_ext as Float64Array;
    const [lo, hi] = ANT_V5.contactForceRange;
    const obs = new Float64Array(OBS_DIM);
    for (let i = 2; i < NQ; i++) obs[i - 2] = qpos[i];
    for (let i = 0; i < NV; i++) obs[NQ - 2 + i] = qvel[i];
    for (let i = 6; i < NBODY * 6; i++) obs[CFRC_OFFSET + i - 6] = clip(f[i], lo, hi);
    return obs;
  }
}

function heightHealthy(z: number): boolean {
  const [minZ, maxZ] = ANT_V5.healthyZRange;
  return minZ <= z && z <= maxZ;
}

/** Healthy as far as row `row` of nextObs shows: finite qpos[2:] and qvel, and the height range. */
function healthyFromObs(obs: ArrayLike<number>, row: number): boolean {
  const o = row * OBS_DIM;
  for (let i = 0; i < CFRC_OFFSET; i++) if (!Number.isFinite(obs[o + i])) return false;
  return heightHealthy(obs[o]);
}

/**
 * Ant-v5's reward and termination from (obs, action, nextObs).
 *
 * The forward reward is Δx/dt of the torso, whose x position the observation excludes; it is
 * approximated by the trapezoid (v_x + v_x')/2 of the torso's x velocity qvel[0] before and after
 * the step (obs[13], nextObs[13]). On a seeded 3000-step random-action rollout the mean absolute
 * reward error is 0.043 (max 0.46; mean |forward reward| 0.39), against 0.13 for the end
 * velocity alone: a 50 ms step spans leg impacts. The control cost is exact; the contact cost is exact because
 * the observation holds every body's clipped contact force except the world body's, which MuJoCo
 * keeps at zero. Termination is exact: the height is nextObs[0], and qpos[0:2] (not observed) is
 * finite whenever the observed velocities that integrate it are.
 */
export const antTask: TaskFunctions = {
  reward(obs, act, nextObs, n, out) {
    const w = ANT_V5.contactCostWeight;
    for (let i = 0; i < n; i++) {
      const o = i * OBS_DIM;
      const vx = 0.5 * (obs[o + NQ - 2] + nextObs[o + NQ - 2]);
      const survive = healthyFromObs(nextObs, i) ? ANT_V5.healthyReward : 0;
      const ctrlCost = ANT_V5.ctrlCostWeight * sumOfSquares(act, i * NU, NU);
      const contactCost = w * sumOfSquares(nextObs, o + CFRC_OFFSET, OBS_DIM - CFRC_OFFSET);
      out[i] = vx * ANT_V5.forwardRewardWeight + survive - (ctrlCost + contactCost);
    }
  },
  terminated(_obs, _act, nextObs, n, out) {
    for (let i = 0; i < n; i++) out[i] = healthyFromObs(nextObs, i) ? 0 : 1;
  },
  rewardExact: false,
  rewardNote:
    "forward reward Δx/dt of the torso approximated by the mean of its x velocities (obs[13] + nextObs[13])/2, because x is not observed; healthy reward, control cost and contact cost (from nextObs's clipped cfrc_ext) exact",
  terminatedExact: true,
  terminatedNote: 'height nextObs[0] in [0.2, 1] and finite qpos[2:], qvel; the unobserved x, y are finite whenever the velocities are',
};

/** `Ant-v5` in the registry. */
export const ANT_SPEC: EnvSpec = {
  id: ID,
  kind: 'mujoco',
  obsDim: OBS_DIM,
  actDim: NU,
  actLow: new Array<number>(NU).fill(-1),
  actHigh: new Array<number>(NU).fill(1),
  dt: 0.05,
  maxEpisodeSteps: ANT_V5.maxEpisodeSteps,
  mjcfFile: ANT_V5.mjcfFile,
  description: 'Walk forward with a four-legged robot, contact forces observed (Gymnasium mujoco/ant_v5.py).',
  task: antTask,
  make: (options = {}) => Ant.create(options),
};
