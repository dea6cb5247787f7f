import type { EnvOptions, TaskFunctions } from '../core/env.js';
import { ValidationError } from '../core/errors.js';
import { Box } from '../core/spaces.js';
import { BaseEnv, type PlantStep } from './baseEnv.js';
import type { EnvSpec } from './spec.js';

const ID = 'PointGoal2D';
/** Largest displacement per step and coordinate (the action bound). */
const MAX_STEP = 0.1;
const DT = 0.1;
const MAX_EPISODE_STEPS = 30;
/** The episode ends when both coordinates are closer than this to the goal. */
const GOAL_TOLERANCE = 0.01;
const DEFAULT_GOAL: readonly [number, number] = [0, 0];
const DEFAULT_INIT_RANGE: readonly [number, number] = [-2, 2];

/** Options of `PointGoal2D`. */
export interface PointGoal2DOptions extends EnvOptions {
  /** The goal (x, y). Default (0, 0), as MB-MPO's `PointEnv`. Ignored when `goalRange` is set. */
  goal?: readonly [number, number];
  /**
   * When set, a new goal is drawn at every reset with each coordinate ~ U(low, high), from the
   * environment's seeded generator (after the start state). MAML's `PointEnvRandGoal` uses
   * (−0.5, 0.5); ProMP's `MetaPointEnv` uses (−2, 2). Default: unset (fixed goal).
   */
  goalRange?: readonly [number, number];
  /** Each start coordinate is ~ U(low, high). Default (−2, 2), MB-MPO's `init_sampling_boundaries`. */
  initRange?: readonly [number, number];
}

/**
 * A point in the plane moved by bounded displacement commands to a goal: the 2-D point-mass task
 * of MB-MPO (Clavera et al. 2018, https://arxiv.org/abs/1809.05214) and of the MAML/ProMP point
 * environments it descends from.
 *
 * Definition, from MB-MPO's code (github.com/jonasrothfuss/model_ensemble_meta_learning,
 * `sandbox/ours/envs/own_envs/point_2d_env.py` and its goal-parameterised copy
 * `experiments/run_scripts/policy_plasticity/envs/point_2d_env_plasticity.py`):
 * observation `[x, y]` (the goal is not observed), action in [−0.1, 0.1]², `s' = s + clip(a)`,
 * reward `−‖s' − goal‖`, start `U(−2, 2)²`, goal (0, 0), `dt` 0.1.
 *
 * Choices where the sources differ:
 * - Termination when `|x' − gx| < 0.01` and `|y' − gy| < 0.01`, as MAML's
 *   `maml_examples/point_env_randgoal.py` (github.com/cbfinn/maml_rl). MB-MPO tests
 *   `|x'|, |y'| < 0.01` — the same for its goal (0, 0), but the origin rather than the goal when
 *   its plasticity copy moves the goal.
 * - Time limit 30 steps: `path_length_env` of MB-MPO's point-environment runs
 *   (`experiments/run_scripts/policy_plasticity/mb-mpo-train-*.py`). MAML's point runs use 100;
 *   pass `maxEpisodeSteps` to change it.
 * - Goal sampling per reset (`goalRange`) is optional; MB-MPO keeps the goal fixed, MAML and
 *   ProMP (github.com/jonasrothfuss/ProMP, `meta_policy_search/envs/point_envs/point_env_2d_v2.py`)
 *   sample one per task.
 *
 * Physics variants: `actuatorGain` scales the displacement per unit action (after clipping). The
 * point is commanded in displacement and has no inertia or friction, so `massScale` and
 * `frictionScale` ≠ 1 are rejected.
 *
 * @example
 * const env = new PointGoal2D({ goal: [1, -0.5] });
 * const { obs } = env.reset({ seed: 3 });
 * env.step([0.1, -0.1]);
 */
export class PointGoal2D extends BaseEnv {
  readonly id = ID;
  readonly observationSpace = Box.uniform(2, -Infinity, Infinity);
  readonly actionSpace = Box.uniform(2, -MAX_STEP, MAX_STEP);
  readonly dt = DT;
  readonly #goalRange: readonly [number, number] | undefined;
  readonly #initRange: readonly [number, number];
  #goal: [number, number];
  #x = 0;
  #y = 0;

  /**
   * @param options physics, time limit (default 30), seed (default 0), `goal` (default (0, 0)),
   *   `goalRange` (default unset), `initRange` (default (−2, 2))
   */
  constructor(options: PointGoal2DOptions = {}) {
    super(options, MAX_EPISODE_STEPS, { massScale: false, frictionScale: false, actuatorGain: true }, ID);
    const goal = options.goal ?? DEFAULT_GOAL;
    checkPair(goal, 'goal', false);
    this.#goal = [goal[0], goal[1]];
    if (options.goalRange !== undefined) checkPair(options.goalRange, 'goalRange', true);
    this.#goalRange = options.goalRange && [options.goalRange[0], options.goalRange[1]];
    const initRange = options.initRange ?? DEFAULT_INIT_RANGE;
    checkPair(initRange, 'initRange', true);
    this.#initRange = [initRange[0], initRange[1]];
  }

  override get obsNames(): readonly string[] {
    return ['x', 'y'];
  }

  /** The position (x, y), for tests and renderers. */
  get state(): [number, number] {
    return [this.#x, this.#y];
  }

  /** The current goal (x, y). */
  get goal(): [number, number] {
    return [this.#goal[0], this.#goal[1]];
  }

  protected resetPlant(): Float64Array {
    const [lo, hi] = this.#initRange;
    this.#x = this.rng.uniform(lo, hi);
    this.#y = this.rng.uniform(lo, hi);
    if (this.#goalRange) {
      const [glo, ghi] = this.#goalRange;
      this.#goal = [this.rng.uniform(glo, ghi), this.rng.uniform(glo, ghi)];
    }
    return Float64Array.of(this.#x, this.#y);
  }

  protected stepPlant(applied: Float64Array): PlantStep {
    const gain = this.physics.actuatorGain;
    this.#x += clip(applied[0], -MAX_STEP, MAX_STEP) * gain;
    this.#y += clip(applied[1], -MAX_STEP, MAX_STEP) * gain;
    const dx = this.#x - this.#goal[0];
    const dy = this.#y - this.#goal[1];
    const distance = Math.sqrt(dx * dx + dy * dy);
    const terminated = Math.abs(dx) < GOAL_TOLERANCE && Math.abs(dy) < GOAL_TOLERANCE;
    return {
      obs: Float64Array.of(this.#x, this.#y),
      reward: -distance,
      terminated,
      info: { distance, goal: [this.#goal[0], this.#goal[1]] },
    };
  }
}

function clip(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}

function checkPair(pair: readonly [number, number], field: string, ordered: boolean): void {
  if (!Array.isArray(pair) || pair.length !== 2 || !pair.every((v) => typeof v === 'number' && Number.isFinite(v))) {
    throw new ValidationError(ID, field, `expected two finite numbers, got ${JSON.stringify(pair)}`);
  }
  if (ordered && !(pair[0] <= pair[1])) {
    throw new ValidationError(ID, field, `expected low ≤ high, got [${pair[0]}, ${pair[1]}]`);
  }
}

/**
 * PointGoal2D's reward `−‖s' − goal‖` and termination (both coordinates within 0.01 of the goal)
 * from (obs, action, nextObs), for a fixed goal. Exact (the observation is the double-precision
 * state). An environment that samples its goal per reset needs the functions for that goal.
 * @param goal default (0, 0)
 */
export function makePointGoal2DTask(goal: readonly [number, number] = DEFAULT_GOAL): TaskFunctions {
  checkPair(goal, 'goal', false);
  const [gx, gy] = goal;
  return {
    reward(_obs, _act, nextObs, n, out) {
      for (let i = 0; i < n; i++) {
        const dx = nextObs[2 * i] - gx;
        const dy = nextObs[2 * i + 1] - gy;
        out[i] = -Math.sqrt(dx * dx + dy * dy);
      }
    },
    terminated(_obs, _act, nextObs, n, out) {
      for (let i = 0; i < n; i++) {
        const close = Math.abs(nextObs[2 * i] - gx) < GOAL_TOLERANCE && Math.abs(nextObs[2 * i + 1] - gy) < GOAL_TOLERANCE;
        out[i] = close ? 1 : 0;
      }
    },
    rewardExact: true,
    terminatedExact: true,
  };
}

/** PointGoal2D's reward and termination for the default goal (0, 0). */
export const pointGoal2DTask: TaskFunctions = makePointGoal2DTask(DEFAULT_GOAL);

/** `PointGoal2D` in the registry. */
export const POINT_GOAL_2D_SPEC: EnvSpec = {
  id: ID,
  kind: 'classic',
  obsDim: 2,
  actDim: 2,
  actLow: [-MAX_STEP, -MAX_STEP],
  actHigh: [MAX_STEP, MAX_STEP],
  dt: DT,
  maxEpisodeSteps: MAX_EPISODE_STEPS,
  description: 'Move a point to a goal in the plane (MB-MPO point_2d_env.py, Clavera et al. 2018).',
  task: pointGoal2DTask,
  make: (options = {}) => Promise.resolve(new PointGoal2D(options)),
};
