import type { TaskFunctions } from '../core/env.js';
import type { PlantStep } from './baseEnv.js';
import { MujocoEnv, createMujocoEnv, type MujocoContext, type MujocoEnvOptions } from './mujocoEnv.js';
import { sumOfSquares, uniformAround } from './mujocoTaskUtils.js';
import type { EnvSpec } from './spec.js';

const ID = 'Reacher-v5';
const MJCF_FILE = 'reacher.xml';
const FRAME_SKIP = 2;
const OBS_DIM = 10;
const ACT_DIM = 2;
const MAX_EPISODE_STEPS = 50;
const REWARD_DIST_WEIGHT = 1;
/**
 * Weight of the control term. Gymnasium's docstring says 0.1, but `ReacherEnv.__init__` defaults
 * `reward_control_weight` to 1 (as v4's unweighted `−Σ a²`); the code is what runs, so 1.
 */
const REWARD_CONTROL_WEIGHT = 1;
/** Reset noise of the arm's joint angles (uniform half-width, rad). */
const ARM_QPOS_NOISE = 0.1;
/** Reset noise of the arm's joint velocities (uniform half-width, rad/s). */
const ARM_QVEL_NOISE = 0.005;
/** The goal is drawn uniformly from the square [−0.2, 0.2]² until its norm is below this (m). */
const GOAL_RADIUS = 0.2;
const MODEL_DIMS = { nq: 4, nv: 4, nu: ACT_DIM };
/** Index of the fingertip − target vector (x, y) in the observation. */
const OBS_VEC = 8;

/**
 * Gymnasium's `Reacher-v5` (gymnasium/envs/mujoco/reacher_v5.py, default arguments): move the
 * fingertip of a two-link planar arm to a random target.
 *
 * - Model `reacher.xml` (RK4), frame skip 2 (dt = 2 × 0.01 = 0.02 s), action: the two joint
 *   torques in [−1, 1] (gear 200).
 * - Observation (10, float64): `cos(qpos[0:2])`, `sin(qpos[0:2])`, `qpos[2:4]` (the target),
 *   `qvel[0:2]`, then `(fingertip − target)[x, y]` from the bodies' `xpos` (v5 dropped the always
 *   zero z).
 * - Reward: `reward_dist + reward_ctrl`, `reward_dist = −1 · ‖fingertip − target‖` after the step
 *   (v5's fix; v4 used the state before it), `reward_ctrl = −1 · Σ a²` on the commanded action
 *   (the code's default weight 1; the docstring's 0.1 is wrong). `info`: `reward_dist`,
 *   `reward_ctrl`.
 * - No termination; 50 steps. Reset: arm `qpos = init + U(−0.1, 0.1)`, arm `qvel = init +
 *   U(−0.005, 0.005)`, target drawn from U(−0.2, 0.2)² until its norm is < 0.2, target velocity 0.
 *
 * As in Gymnasium, `xpos` is read after `mj_step` without a new forward pass, so the distance is
 * that of the last substep's kinematics; observation and reward use the same value.
 *
 * @example
 * const env = await Reacher.create({ mjcfDir: '../shared/mujoco' });
 * const { obs } = env.reset({ seed: 0 });
 * const { reward, info } = env.step([0.1, -0.1]);
 */
export class Reacher extends MujocoEnv {
  readonly id = ID;
  readonly #fingertipId: number;
  readonly #targetId: number;

  private constructor(ctx: MujocoContext, options: MujocoEnvOptions) {
    super(ctx, options, { id: ID, mjcfFile: MJCF_FILE, sizes: MODEL_DIMS, frameSkip: FRAME_SKIP, obsDim: OBS_DIM, maxEpisodeSteps: MAX_EPISODE_STEPS });
    // When a body is missing, `createMujocoEnv` frees the model and the data.
    this.#fingertipId = this.bodyId('fingertip');
    this.#targetId = this.bodyId('target');
  }

  /**
   * Compiles `reacher.xml` (found through `mjcfPath`, `mjcfDir` or `MBRL_MJCF_DIR`) and builds
   * the environment.
   * @param options physics, time limit (default 50), seed (default 0) and MJCF location
   * @throws MjcfNotFoundError when the MJCF file cannot be found; ValidationError for bad physics
   *   or a model of the wrong size; Error when the `fingertip` or `target` body is missing.
   */
  static create(options: MujocoEnvOptions = {}): Promise<Reacher> {
    return createMujocoEnv(MJCF_FILE, options, (ctx) => new Reacher(ctx, options));
  }

  override get obsNames(): readonly string[] {
    return OBS_NAMES;
  }

  /** The goal (target x, y) of the current episode. */
  get goal(): [number, number] {
    const qpos = this.qpos;
    return [qpos[2], qpos[3]];
  }

  protected resetPlant(): Float64Array {
    this.resetData();
    // Gymnasium's draw order: noise for all of qpos (the target's two entries are then
    // overwritten), the goal by rejection, then noise for all of qvel.
    const qpos = uniformAround(this.initQpos, ARM_QPOS_NOISE, this.rng);
    let gx: number;
    let gy: number;
    do {
      gx = this.rng.uniform(-GOAL_RADIUS, GOAL_RADIUS);
      gy = this.rng.uniform(-GOAL_RADIUS, GOAL_RADIUS);
    } while (!(Math.hypot(gx, gy) < GOAL_RADIUS));
    qpos[2] = gx;
    qpos[3] = gy;
    const qvel = uniformAround(this.initQvel, ARM_QVEL_NOISE, this.rng);
    qvel[2] = 0;
    qvel[3] = 0;
    this.setState(qpos, qvel);
    return this.#obs();
  }

  protected stepPlant(applied: Float64Array, commanded: Float64Array): PlantStep {
    this.doSimulation(applied);
    const [dx, dy, dz] = this.#fingertipMinusTarget();
    const rewardDist = -Math.hypot(dx, dy, dz) * REWARD_DIST_WEIGHT;
    const rewardCtrl = -sumOfSquares(commanded, 0, ACT_DIM) * REWARD_CONTROL_WEIGHT;
    return { obs: this.#obs(), reward: rewardDist + rewardCtrl, terminated: false, info: { reward_dist: rewardDist, reward_ctrl: rewardCtrl } };
  }

  #fingertipMinusTarget(): [number, number, number] {
    const f = this.bodyXpos(this.#fingertipId);
    const t = this.bodyXpos(this.#targetId);
    return [f[0] - t[0], f[1] - t[1], f[2] - t[2]];
  }

  #obs(): Float64Array {
    const qpos = this.qpos;
    const qvel = this.qvel;
    const [dx, dy] = this.#fingertipMinusTarget();
    return Float64Array.of(Math.cos(qpos[0]), Math.cos(qpos[1]), Math.sin(qpos[0]), Math.sin(qpos[1]), qpos[2], qpos[3], qvel[0], qvel[1], dx, dy);
  }
}

const OBS_NAMES: readonly string[] = Object.freeze([
  'cos(qpos[0]:joint0)',
  'cos(qpos[1]:joint1)',
  'sin(qpos[0]:joint0)',
  'sin(qpos[1]:joint1)',
  'qpos[2]:target_x',
  'qpos[3]:target_y',
  'qvel[0]:joint0',
  'qvel[1]:joint1',
  'fingertip_x-target_x',
  'fingertip_y-target_y',
]);

/**
 * Reacher-v5's reward and termination from (obs, action, nextObs):
 * `−‖nextObs[8:10]‖ − Σ a²`. v5 measures the distance after the step, and the next observation
 * carries exactly that fingertip − target vector; its dropped z entry is 0 in `reacher.xml` (arm
 * and target both move in the plane z = 0.01), so the reward is exact. Never terminates.
 */
export const reacherTask: TaskFunctions = {
  reward(_obs, act, nextObs, n, out) {
    for (let i = 0; i < n; i++) {
      const dist = Math.hypot(nextObs[i * OBS_DIM + OBS_VEC], nextObs[i * OBS_DIM + OBS_VEC + 1]);
      out[i] = -dist * REWARD_DIST_WEIGHT - sumOfSquares(act, i * ACT_DIM, ACT_DIM) * REWARD_CONTROL_WEIGHT;
    }
  },
  terminated(_obs, _act, _nextObs, n, out) {
    out.fill(0, 0, n);
  },
  rewardExact: true,
  rewardNote: "exact for reacher.xml, whose fingertip and target share z; the observation omits the z difference",
  terminatedExact: true,
};

/** `Reacher-v5` in the registry. */
export const REACHER_SPEC: EnvSpec = {
  id: ID,
  kind: 'mujoco',
  obsDim: OBS_DIM,
  actDim: ACT_DIM,
  actLow: [-1, -1],
  actHigh: [1, 1],
  dt: 0.02,
  maxEpisodeSteps: MAX_EPISODE_STEPS,
  mjcfFile: MJCF_FILE,
  description: 'Two-link planar arm reaching a random target, MuJoCo (Gymnasium mujoco/reacher_v5.py).',
  task: reacherTask,
  make: (options = {}) => Reacher.create(options),
};
