/**
 * Random shooting: sample N action sequences uniformly in the bounds, keep the best. The baseline
 * planner of Nagabandi et al. 2018, "Neural Network Dynamics for Model-Based Deep Reinforcement
 * Learning with Model-Free Fine-Tuning" (https://arxiv.org/abs/1708.02596), and PETS's `Random`
 * optimizer (kchua/handful-of-trials dmbrl/misc/optimizers/random.py).
 */
import type { Rng } from '../core/rng.js';
import type { Box } from '../core/spaces.js';
import {
  checkInteger,
  checkKind,
  checkKnownKeys,
  clipPlan,
  evaluateCandidates,
  planBounds,
  shiftPlan,
  type PlanBounds,
  type TrajectoryObjective,
  type TrajectoryOptimizer,
} from './planningAgent.js';

/** Configuration of `RandomShootingOptimizer`. */
export interface RandomShootingConfig {
  kind: 'randomShooting';
  /** Planning horizon H, in control steps. Default 30 (as CEM's, so the two compare). */
  horizon: number;
  /**
   * Sequences N sampled per planning call. Default 2000 (PETS's `Random` popsize for Cartpole and
   * Reacher, kchua/handful-of-trials dmbrl/config/cartpole.py and reacher.py: the same model
   * evaluations as CEM's 5 × 400).
   */
  populationSize: number;
}

/** Random-shooting settings (sources in `RandomShootingConfig`). */
export const RANDOM_SHOOTING_DEFAULTS = {
  kind: 'randomShooting',
  horizon: 30,
  populationSize: 2000,
} as const satisfies RandomShootingConfig;

/**
 * Merges `overrides` into `RANDOM_SHOOTING_DEFAULTS` and validates the result.
 * @throws ValidationError naming the key, the bad value and what was expected
 */
export function makeRandomShootingConfig(overrides: Partial<RandomShootingConfig> = {}): RandomShootingConfig {
  const where = 'makeRandomShootingConfig';
  checkKnownKeys(where, overrides, RANDOM_SHOOTING_DEFAULTS);
  const c: RandomShootingConfig = { ...RANDOM_SHOOTING_DEFAULTS, ...overrides };
  checkKind(where, c.kind, 'randomShooting');
  checkInteger(where, 'horizon', c.horizon, 1);
  checkInteger(where, 'populationSize', c.populationSize, 1);
  return c;
}

/** Fills `out` with `count` sequences, each entry uniform in [low_d, high_d). */
export function sampleUniformSequences(bounds: { low: ArrayLike<number>; high: ArrayLike<number> }, count: number, rng: Rng, out: Float64Array): Float64Array {
  const { low, high } = bounds;
  const D = low.length;
  for (let i = 0; i < count; i++) for (let d = 0; d < D; d++) out[i * D + d] = rng.uniform(low[d], high[d]);
  return out;
}

/**
 * Index of the highest finite value (the first on ties), or −1 when none is finite.
 * @example argmaxFinite([1, NaN, 3, 3]) // → 2
 */
export function argmaxFinite(values: ArrayLike<number>): number {
  let best = -1;
  for (let i = 0; i < values.length; i++) {
    if (Number.isFinite(values[i]) && (best < 0 || values[i] > values[best])) best = i;
  }
  return best;
}

/**
 * Random shooting over [horizon, actDim] action sequences. If every candidate diverges, the
 * previous best shifted by the executed steps (at first, the mid-point of the bounds) is returned.
 */
export class RandomShootingOptimizer implements TrajectoryOptimizer {
  readonly config: Readonly<RandomShootingConfig>;
  readonly horizon: number;
  readonly actDim: number;
  readonly #rng: Rng;
  readonly #bounds: PlanBounds;
  readonly #population: Float64Array;
  readonly #plan: Float64Array;
  readonly #fallback: Float64Array;

  constructor(config: RandomShootingConfig, actionSpace: Box, rng: Rng) {
    this.config = Object.freeze(makeRandomShootingConfig(config));
    this.horizon = config.horizon;
    this.actDim = actionSpace.dim;
    this.#rng = rng;
    this.#bounds = planBounds(actionSpace, this.horizon, 'RandomShootingOptimizer');
    this.#population = new Float64Array(config.populationSize * this.#bounds.low.length);
    this.#plan = Float64Array.from(this.#bounds.mid);
    this.#fallback = Float64Array.from(this.#bounds.mid);
  }

  async optimize(objective: TrajectoryObjective): Promise<Float64Array> {
    const N = this.config.populationSize;
    const D = this.#bounds.low.length;
    const pop = this.#population;
    sampleUniformSequences(this.#bounds, N, this.#rng, pop);
    const values = await evaluateCandidates(objective, pop, N, 'RandomShootingOptimizer.optimize');
    const best = argmaxFinite(values);
    this.#plan.set(best < 0 ? this.#fallback : pop.subarray(best * D, (best + 1) * D));
    return clipPlan(this.#plan, this.#bounds.low, this.#bounds.high, this.#bounds.mid);
  }

  advance(steps: number): void {
    shiftPlan(this.#plan, this.actDim, steps, this.#bounds.mid, this.#fallback);
  }

  reset(): void {
    this.#plan.set(this.#bounds.mid);
    this.#fallback.set(this.#bounds.mid);
  }
}
