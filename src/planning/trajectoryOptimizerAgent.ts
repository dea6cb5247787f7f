/**
 * Model-predictive control with any trajectory optimizer: plan a sequence, execute its first
 * action(s), re-plan (mbrl-lib's `TrajectoryOptimizerAgent` and
 * `create_trajectory_optim_agent_for_model`).
 */
import { ValidationError, checkFiniteVector, describe } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import type { Box } from '../core/spaces.js';
import type { ModelEnv } from '../models/modelEnv.js';
import { CemOptimizer, type CemConfig } from './cem.js';
import { MppiOptimizer, type MppiConfig } from './mppi.js';
import type { PlanningAgent, TrajectoryOptimizer } from './planningAgent.js';
import { RandomShootingOptimizer, type RandomShootingConfig } from './randomShooting.js';

/** Any planner's config; `kind` selects the optimizer. */
export type PlannerConfig = CemConfig | MppiConfig | RandomShootingConfig;

/**
 * Builds the optimizer that `config.kind` names.
 * @param rng the optimizer's own generator
 */
export function makeTrajectoryOptimizer(config: PlannerConfig, actionSpace: Box, rng: Rng): TrajectoryOptimizer {
  switch (config.kind) {
    case 'cem':
      return new CemOptimizer(config, actionSpace, rng);
    case 'mppi':
      return new MppiOptimizer(config, actionSpace, rng);
    case 'randomShooting':
      return new RandomShootingOptimizer(config, actionSpace, rng);
    default:
      throw new ValidationError('makeTrajectoryOptimizer', 'kind', `expected 'cem', 'mppi' or 'randomShooting', got ${describe((config as { kind: unknown }).kind)}`);
  }
}

/**
 * Values of candidate sequences from observation `obs` (e.g. a `ModelEnv` rollout).
 * @param actionSequences row-major [populationSize, horizon, actDim]
 */
export type ActionSequenceEvaluator = (
  obs: Float64Array,
  actionSequences: Float64Array,
  populationSize: number,
  horizon: number,
) => Promise<Float64Array>;

/** Options of `TrajectoryOptimizerAgent`. */
export interface TrajectoryOptimizerAgentOptions {
  /**
   * Re-plan every k steps, executing the first k actions of each plan (mbrl-lib's `replan_freq`).
   * Default 1 (PETS: re-plan at every step). At most the horizon.
   */
  replanEvery?: number;
}

/**
 * A `PlanningAgent` that re-plans with a `TrajectoryOptimizer` and returns the plan's first
 * action(s). The warm start (the previous plan, shifted) is kept between steps and dropped by
 * `reset()`. One `actAsync` at a time.
 *
 * @example
 * const agent = new TrajectoryOptimizerAgent(cem, (obs, seqs, n, h) => modelEnv.evaluateActionSequences(obs, seqs, h, 20));
 * const action = await agent.actAsync(obs);
 */
export class TrajectoryOptimizerAgent implements PlanningAgent {
  readonly optimizer: TrajectoryOptimizer;
  readonly replanEvery: number;
  readonly #evaluate: ActionSequenceEvaluator;
  readonly #queue: Float64Array;
  readonly #out: Float64Array;
  #obs = new Float64Array(0);
  #queued = 0;
  #next = 0;
  #busy = false;

  constructor(optimizer: TrajectoryOptimizer, evaluate: ActionSequenceEvaluator, options: TrajectoryOptimizerAgentOptions = {}) {
    const replanEvery = options.replanEvery ?? 1;
    if (!Number.isInteger(replanEvery) || replanEvery < 1 || replanEvery > optimizer.horizon) {
      throw new ValidationError('TrajectoryOptimizerAgent', 'replanEvery', `expected an integer in [1, ${optimizer.horizon}] (the horizon), got ${describe(replanEvery)}`);
    }
    this.optimizer = optimizer;
    this.replanEvery = replanEvery;
    this.#evaluate = evaluate;
    this.#queue = new Float64Array(replanEvery * optimizer.actDim);
    this.#out = new Float64Array(optimizer.actDim);
  }

  /**
   * The action for `obs`: the next queued action of the last plan, re-planning first when the
   * queue is empty. Finite and inside the action bounds.
   * @throws ValidationError for a non-finite observation or a concurrent call
   */
  async actAsync(obs: Float64Array): Promise<Float64Array> {
    if (this.#busy) {
      throw new ValidationError('TrajectoryOptimizerAgent.actAsync', 'state', 'called while the previous actAsync is still planning; await it first');
    }
    const A = this.optimizer.actDim;
    if (this.#next >= this.#queued) {
      checkFiniteVector(obs, obs.length, 'TrajectoryOptimizerAgent.actAsync', 'obs');
      // The caller may reuse its observation array while we plan.
      if (this.#obs.length !== obs.length) this.#obs = new Float64Array(obs.length);
      const start = this.#obs;
      start.set(obs);
      this.#busy = true;
      try {
        const H = this.optimizer.horizon;
        const plan = await this.optimizer.optimize((seqs, n) => this.#evaluate(start, seqs, n, H));
        this.#queue.set(plan.subarray(0, this.replanEvery * A));
        this.optimizer.advance(this.replanEvery);
      } finally {
        this.#busy = false;
      }
      this.#queued = this.replanEvery;
      this.#next = 0;
    }
    this.#out.set(this.#queue.subarray(this.#next * A, (this.#next + 1) * A));
    this.#next++;
    return this.#out;
  }

  reset(): void {
    this.optimizer.reset();
    this.#queued = 0;
    this.#next = 0;
  }
}

/** Options of `createModelPlanningAgent`. */
export interface ModelPlanningAgentOptions {
  /** Generator of the optimizer's samples. */
  rng: Rng;
  /**
   * Particles P per candidate. Default 20 (PETS; mbrl-lib's pets.yaml `num_particles: 20`). With
   * TS∞ use a multiple of the ensemble size.
   */
  particles?: number;
  /** See `TrajectoryOptimizerAgentOptions.replanEvery`. Default 1. */
  replanEvery?: number;
}

/**
 * A planning agent whose objective is the mean particle return on a `ModelEnv` (mbrl-lib's
 * `create_trajectory_optim_agent_for_model`): PETS when `config` is CEM and the model an ensemble.
 *
 * @example
 * const modelEnv = new ModelEnv(ensemble, { task: pendulumTask, propagation: 'ts1', rng: rng.fork() });
 * const agent = createModelPlanningAgent(modelEnv, makeCemConfig({ horizon: 25 }), env.actionSpace, { rng: rng.fork() });
 * const action = await agent.actAsync(obs);
 */
export function createModelPlanningAgent(
  modelEnv: ModelEnv,
  config: PlannerConfig,
  actionSpace: Box,
  options: ModelPlanningAgentOptions,
): TrajectoryOptimizerAgent {
  const particles = options.particles ?? 20;
  if (!Number.isInteger(particles) || particles < 1) {
    throw new ValidationError('createModelPlanningAgent', 'particles', `expected an integer ≥ 1, got ${describe(particles)}`);
  }
  if (actionSpace.dim !== modelEnv.actDim) {
    throw new ValidationError('createModelPlanningAgent', 'actionSpace', `expected dimension ${modelEnv.actDim} (the model's actDim), got ${actionSpace.dim}`);
  }
  const optimizer = makeTrajectoryOptimizer(config, actionSpace, options.rng);
  const evaluate: ActionSequenceEvaluator = (obs, seqs, _n, horizon) => modelEnv.evaluateActionSequences(obs, seqs, horizon, particles);
  return new TrajectoryOptimizerAgent(optimizer, evaluate, { replanEvery: options.replanEvery });
}
