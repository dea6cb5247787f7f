import type { MainModule, MjData, MjModel } from 'mujoco-js';
import type { EnvOptions } from '../core/env.js';
import { ValidationError } from '../core/errors.js';
import { Box } from '../core/spaces.js';
import { BaseEnv } from './baseEnv.js';
import { compileMjcf, loadMujoco, resolveMjcf, type MjcfLocation } from './mujocoRuntime.js';

/** Options of every MuJoCo environment: physics, time limit, seed, and where its MJCF file is. */
export interface MujocoEnvOptions extends EnvOptions, MjcfLocation {}

/** What a MuJoCo task's factory hands to `MujocoEnv`'s constructor. */
export interface MujocoContext {
  mj: MainModule;
  model: MjModel;
  /**
   * The data `MujocoEnv`'s constructor allocated for `model`, recorded here so that
   * `createMujocoEnv` can free it when a task's constructor throws after `super()` (e.g. a
   * missing body).
   */
  data?: MjData;
}

/** The sizes of the compiled model a task is written for (those of Gymnasium's MJCF file). */
export interface MujocoModelSizes {
  nq: number;
  nv: number;
  nu: number;
  /** Checked only where the task indexes bodies by number (Ant's contact forces). */
  nbody?: number;
}

/** What a MuJoCo task tells `MujocoEnv`'s constructor about itself. */
export interface MujocoTaskSpec {
  id: string;
  /** Gymnasium's MJCF file, named in the error when the model has other sizes. */
  mjcfFile: string;
  sizes: MujocoModelSizes;
  frameSkip: number;
  obsDim: number;
  maxEpisodeSteps: number;
}

/**
 * Loads the MuJoCo module and compiles a task's MJCF file (found through `resolveMjcf`).
 * Task classes call this from their async `create` factory.
 */
export async function loadMujocoContext(fileName: string, options: MujocoEnvOptions): Promise<MujocoContext> {
  const path = resolveMjcf(fileName, options);
  const mj = await loadMujoco();
  const model = compileMjcf(mj, path);
  return { mj, model };
}

/**
 * The body of every MuJoCo task's `static create`: loads MuJoCo, compiles `fileName` (found
 * through `resolveMjcf`) and builds the task with `construct`. When `construct` throws (a model
 * of the wrong size, bad physics, a missing body), it frees the model, and the data if the
 * constructor got as far as allocating it, then rethrows.
 * @throws MjcfNotFoundError when the MJCF file cannot be found, and whatever `construct` throws.
 * @example
 * static create(options: MujocoEnvOptions = {}): Promise<Swimmer> {
 *   return createMujocoEnv(MJCF_FILE, options, (ctx) => new Swimmer(ctx, options));
 * }
 */
export async function createMujocoEnv<E extends MujocoEnv>(fileName: string, options: MujocoEnvOptions, construct: (ctx: MujocoContext) => E): Promise<E> {
  const ctx = await loadMujocoContext(fileName, options);
  try {
    return construct(ctx);
  } catch (err) {
    ctx.data?.delete();
    ctx.model.delete();
    throw err;
  }
}

/**
 * Base of the MuJoCo tasks, mirroring Gymnasium's `MujocoEnv`: `frameSkip` physics steps per
 * control step, `mj_rnePostConstraint` after each step (so contact forces are available), the
 * initial `qpos`/`qvel` kept for reset noise, and the action space read from the actuators'
 * control ranges. Physical parameters are applied to the compiled model once:
 * - `massScale` multiplies every body's mass and rotational inertia (scaling mass alone would
 *   make the bodies physically inconsistent);
 * - `frictionScale` multiplies geom friction (all three coefficients), joint damping and
 *   joint friction loss;
 * - `actuatorGain` multiplies the actuator gear (the torque per unit of control).
 */
export abstract class MujocoEnv extends BaseEnv {
  readonly observationSpace: Box;
  readonly actionSpace: Box;
  readonly dt: number;
  readonly frameSkip: number;
  protected readonly mj: MainModule;
  protected readonly model: MjModel;
  protected readonly data: MjData;
  /** `qpos` and `qvel` of the compiled model at rest (Gymnasium's `init_qpos`, `init_qvel`). */
  protected readonly initQpos: Float64Array;
  protected readonly initQvel: Float64Array;
  #closed = false;

  /**
   * @throws ValidationError when the compiled model's sizes are not `spec.sizes` (e.g. another
   *   task's MJCF file), or for bad physics or time limit
   */
  protected constructor(ctx: MujocoContext, options: MujocoEnvOptions, spec: MujocoTaskSpec) {
    checkModelSizes(ctx.model, spec);
    super(options, spec.maxEpisodeSteps, { massScale: true, frictionScale: true, actuatorGain: true }, spec.id);
    this.mj = ctx.mj;
    this.model = ctx.model;
    this.frameSkip = spec.frameSkip;
    const scaled = this.#applyPhysics();
    this.data = new ctx.mj.MjData(this.model);
    ctx.data = this.data;
    // Recompute the model's derived constants (subtree masses, inverse weights, actuator_acc0)
    // from the scaled masses, as compiling the scaled model would; nominal models are untouched.
    // mj_setConst uses the data as workspace and leaves qpos zeroed, so reset it afterwards.
    if (scaled) {
      this.mj.mj_setConst(this.model, this.data);
      this.mj.mj_resetData(this.model, this.data);
    }
    this.initQpos = Float64Array.from(this.data.qpos as Float64Array);
    this.initQvel = Float64Array.from(this.data.qvel as Float64Array);
    this.dt = this.model.opt.timestep * this.frameSkip;
    const range = this.model.actuator_ctrlrange as Float64Array;
    const nu = this.model.nu;
    const low = new Float64Array(nu);
    const high = new Float64Array(nu);
    for (let i = 0; i < nu; i++) {
      // Gymnasium casts the bounds to float32; do the same so the spaces agree bit for bit.
      low[i] = Math.fround(range[2 * i]);
      high[i] = Math.fround(range[2 * i + 1]);
    }
    this.actionSpace = new Box(low, high);
    this.observationSpace = Box.uniform(spec.obsDim, -Infinity, Infinity);
  }

  /** Sets `qpos` and `qvel` and recomputes derived quantities (Gymnasium's `set_state`). */
  protected setState(qpos: ArrayLike<number>, qvel: ArrayLike<number>): void {
    (this.data.qpos as Float64Array).set(qpos);
    (this.data.qvel as Float64Array).set(qvel);
    this.mj.mj_forward(this.model, this.data);
  }

  /** Resets MuJoCo's data to the model defaults (`mj_resetData`), before the task's reset noise. */
  protected resetData(): void {
    this.mj.mj_resetData(this.model, this.data);
  }

  /** Writes `ctrl` and runs `frameSkip` physics steps, then `mj_rnePostConstraint` (as Gymnasium). */
  protected doSimulation(ctrl: ArrayLike<number>): void {
    (this.data.ctrl as Float64Array).set(ctrl);
    for (let i = 0; i < this.frameSkip; i++) this.mj.mj_step(this.model, this.data);
    this.mj.mj_rnePostConstraint(this.model, this.data);
  }

  /**
   * `doSimulation(ctrl)`, measuring the root's move along x (x = qpos[0]) as Gymnasium's
   * HalfCheetah, Hopper and Walker2d `step` do: returns `x_position_after` and
   * `x_velocity = (x_position_after − x_position_before) / dt`.
   */
  protected doSimulationTrackingX(ctrl: ArrayLike<number>): { xAfter: number; xVelocity: number } {
    const xBefore = this.qpos[0];
    this.doSimulation(ctrl);
    const xAfter = this.qpos[0];
    return { xAfter, xVelocity: (xAfter - xBefore) / this.dt };
  }

  /** Views of MuJoCo's arrays; taken fresh on each call because WASM memory can grow. */
  protected get qpos(): Float64Array {
    return this.data.qpos as Float64Array;
  }
  protected get qvel(): Float64Array {
    return this.data.qvel as Float64Array;
  }

  /** Cartesian position of a body by index (Gymnasium's `get_body_com`, i.e. `data.xpos`). */
  protected bodyXpos(bodyId: number): [number, number, number] {
    const x = this.data.xpos as Float64Array;
    return [x[3 * bodyId], x[3 * bodyId + 1], x[3 * bodyId + 2]];
  }

  /** Index of a named body. @throws Error naming the body and the model when it is missing. */
  protected bodyId(name: string): number {
    const id = this.mj.mj_name2id(this.model, this.mj.mjtObj.mjOBJ_BODY.value, name);
    if (id < 0) throw new Error(`${this.id}: body "${name}" not found in the MJCF model`);
    return id;
  }

  override close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.data.delete();
    this.model.delete();
  }

  /** Applies mass, friction and gain scales to the model; returns whether anything changed. */
  #applyPhysics(): boolean {
    const { massScale, frictionScale, actuatorGain } = this.physics;
    const m = this.model;
    if (massScale !== 1) {
      scale(m.body_mass as Float64Array, massScale);
      scale(m.body_inertia as Float64Array, massScale);
    }
    if (frictionScale !== 1) {
      scale(m.geom_friction as Float64Array, frictionScale);
      scale(m.dof_damping as Float64Array, frictionScale);
      scale(m.dof_frictionloss as Float64Array, frictionScale);
    }
    if (actuatorGain !== 1) scale(m.actuator_gear as Float64Array, actuatorGain);
    return massScale !== 1 || frictionScale !== 1 || actuatorGain !== 1;
  }
}

/** @throws ValidationError naming the task, the MJCF file, and the expected and actual sizes. */
function checkModelSizes(model: MjModel, spec: MujocoTaskSpec): void {
  const keys = (['nq', 'nv', 'nu', 'nbody'] as const).filter((k) => spec.sizes[k] !== undefined);
  if (keys.every((k) => model[k] === spec.sizes[k])) return;
  const list = (sizes: Partial<Record<(typeof keys)[number], number>>): string => keys.map((k) => `${k}=${sizes[k]}`).join(', ');
  throw new ValidationError(spec.id, 'mjcf', `expected a model with ${list(spec.sizes)} (Gymnasium's ${spec.mjcfFile}), got ${list(model)}`);
}

function scale(a: Float64Array, s: number): void {
  for (let i = 0; i < a.length; i++) a[i] *= s;
}
