/**
 * The cross-entropy method (CEM) over action sequences, as PETS plans with it: Chua et al. 2018,
 * "Deep Reinforcement Learning in a Handful of Trials using Probabilistic Dynamics Models",
 * https://arxiv.org/abs/1805.12114 (reference code kchua/handful-of-trials,
 * dmbrl/misc/optimizers/cem.py), and mbrl-lib's `CEMOptimizer` (Pineda et al. 2021,
 * https://arxiv.org/abs/2104.10159; "CEM_PETS" in Pinneri et al. 2020,
 * https://arxiv.org/abs/2008.06389, section 2.1).
 *
 * Each call: start from the shifted previous plan μ and σ² = (ub − lb)²/16; for each iteration
 * sample N sequences from a normal truncated at ±2σ whose variance is shrunk to keep 2σ inside the
 * bounds, evaluate them, take the E best (elites), and move
 *   μ ← α·μ + (1 − α)·mean(elites),   σ² ← α·σ² + (1 − α)·var(elites)
 * (α weighs the previous distribution: PETS and mbrl-lib both write it this way).
 */
import type { Rng } from '../core/rng.js';
import type { Box } from '../core/spaces.js';
import {
  checkBoolean,
  checkInteger,
  checkKind,
  checkKnownKeys,
  checkNumber,
  clipPlan,
  evaluateCandidates,
  planBounds,
  sanitizeReturns,
  shiftPlan,
  type PlanBounds,
  type TrajectoryObjective,
  type TrajectoryOptimizer,
} from './planningAgent.js';

/** Configuration of `CemOptimizer`. */
export interface CemConfig {
  kind: 'cem';
  /** Planning horizon H, in control steps. Default 30 (PETS HalfCheetah; mbrl-lib's PETS configs). */
  horizon: number;
  /** Candidate sequences N sampled per iteration. Default 400 (PETS Cartpole and Reacher). */
  populationSize: number;
  /** Elites E kept per iteration (≤ N). Default 40 (PETS: 10% of the population). */
  numElites: number;
  /** CEM iterations per planning call. Default 5 (PETS; mbrl-lib). */
  numIterations: number;
  /**
   * Smoothing α in [0, 1): the weight of the previous mean and variance in each update,
   * μ ← α·μ + (1 − α)·mean(elites). Default 0.1 (PETS; mbrl-lib).
   */
  alpha: number;
  /**
   * Return the final mean μ (PETS; mbrl-lib's PETS config `return_mean_elites: true`) rather than
   * the best sequence sampled over all iterations. Default true.
   */
  returnMeanElites: boolean;
}

/**
 * PETS's CEM settings. Sources: kchua/handful-of-trials dmbrl/config/cartpole.py and reacher.py
 * (popsize 400, num_elites 40, max_iters 5, alpha 0.1); the horizon 30 of its halfcheetah.py and of
 * mbrl-lib's exp/pets overrides (which use population 350–500, elite ratio 0.1, 5 iterations,
 * alpha 0.1).
 */
export const CEM_DEFAULTS = {
  kind: 'cem',
  horizon: 30,
  populationSize: 400,
  numElites: 40,
  numIterations: 5,
  alpha: 0.1,
  returnMeanElites: true,
} as const satisfies CemConfig;

/**
 * Merges `overrides` into `CEM_DEFAULTS` and validates the result.
 * @throws ValidationError naming the key, the bad value and what was expected
 * @example const cfg = makeCemConfig({ horizon: 25, populationSize: 200, numElites: 20 });
 */
export function makeCemConfig(overrides: Partial<CemConfig> = {}): CemConfig {
  const where = 'makeCemConfig';
  checkKnownKeys(where, overrides, CEM_DEFAULTS);
  const c: CemConfig = { ...CEM_DEFAULTS, ...overrides };
  checkKind(where, c.kind, 'cem');
  checkInteger(where, 'horizon', c.horizon, 1);
  checkInteger(where, 'populationSize', c.populationSize, 1);
  checkInteger(where, 'numElites', c.numElites, 1, c.populationSize, ' (at most populationSize)');
  checkInteger(where, 'numIterations', c.numIterations, 1);
  checkNumber(where, 'alpha', c.alpha, 0, 1, { high: true });
  checkBoolean(where, 'returnMeanElites', c.returnMeanElites);
  return c;
}

/** Result of `cemUpdate`. */
export interface CemUpdate {
  mean: Float64Array;
  var: Float64Array;
  /** Indices of the elites, best first. */
  eliteIndices: Uint32Array;
}

/**
 * One CEM update: the elites are the `numElites` samples of highest return; the new distribution
 * is α·previous + (1 − α)·(elite mean, elite population variance). Non-finite returns rank last and
 * are never elites: with fewer finite returns than `numElites`, only the finite ones are used, and
 * with none the previous distribution is returned unchanged.
 *
 * @param samples row-major [populationSize, D]
 * @param returns populationSize values, higher is better
 * @param prevMean D entries; `prevVar` likewise
 * @example
 * // 5 samples of a 2-step 1-D plan, 2 elites (returns 5 and 4), α = 0.1:
 * cemUpdate([0,1, 1,0, 2,2, -1,1, 0.5,-0.5], [1,5,3,-2,4], 2, 0.1, [0.2,-0.4], [1,0.5])
 * // → mean [0.695, -0.265], var [0.15625, 0.10625]
 */
export function cemUpdate(
  samples: ArrayLike<number>,
  returns: ArrayLike<number>,
  numElites: number,
  alpha: number,
  prevMean: ArrayLike<number>,
  prevVar: ArrayLike<number>,
): CemUpdate {
  const D = prevMean.length;
  const N = returns.length;
  const order: number[] = [];
  for (let i = 0; i < N; i++) if (Number.isFinite(returns[i])) order.push(i);
  order.sort((a, b) => returns[b] - returns[a] || a - b);
  const E = Math.min(numElites, order.length);
  const eliteIndices = Uint32Array.from(order.slice(0, E));
  const mean = Float64Array.from(prevMean);
  const variance = Float64Array.from(prevVar);
  if (E === 0) return { mean, var: variance, eliteIndices };
  for (let d = 0; d < D; d++) {
    let m = 0;
    for (let e = 0; e < E; e++) m += samples[eliteIndices[e] * D + d];
    m /= E;
    let v = 0;
    for (let e = 0; e < E; e++) v += (samples[eliteIndices[e] * D + d] - m) ** 2;
    v /= E;
    mean[d] = alpha * prevMean[d] + (1 - alpha) * m;
    variance[d] = alpha * prevVar[d] + (1 - alpha) * v;
  }
  return { mean, var: variance, eliteIndices };
}

/**
 * The variance actually sampled with, so that mean ± 2σ stays inside the bounds (PETS's and
 * mbrl-lib's `constrained_var`): min(var, ((ub − mean)/2)², ((mean − lb)/2)²).
 */
export function constrainedVariance(
  mean: ArrayLike<number>,
  variance: ArrayLike<number>,
  low: ArrayLike<number>,
  high: ArrayLike<number>,
  out: Float64Array = new Float64Array(mean.length),
): Float64Array {
  for (let i = 0; i < mean.length; i++) {
    const toLow = (mean[i] - low[i]) / 2;
    const toHigh = (high[i] - mean[i]) / 2;
    out[i] = Math.max(0, Math.min(variance[i], toLow * toLow, toHigh * toHigh));
  }
  return out;
}

/**
 * A standard normal truncated to [−2, 2], by rejection (acceptance 95.4%), as mbrl-lib's
 * `truncated_normal_` and scipy's `truncnorm(-2, 2)` in PETS.
 */
export function truncatedStandardNormal(rng: Rng): number {
  for (;;) {
    const z = rng.normal();
    if (z >= -2 && z <= 2) return z;
  }
}

/**
 * Fills `out` with `count` rows of mean + sqrt(constrained var)·z, z ~ N(0, 1) truncated at ±2:
 * every sample lies in [mean − 2σ, mean + 2σ] ⊆ [low, high] (then clipped against float rounding).
 * @param mean, variance, low, high D entries each
 * @param out count·D entries
 */
export function sampleTruncatedNormal(
  mean: ArrayLike<number>,
  variance: ArrayLike<number>,
  low: ArrayLike<number>,
  high: ArrayLike<number>,
  count: number,
  rng: Rng,
  out: Float64Array = new Float64Array(count * mean.length),
): Float64Array {
  const D = mean.length;
  const std = constrainedVariance(mean, variance, low, high).map(Math.sqrt);
  for (let i = 0; i < count; i++) {
    for (let d = 0; d < D; d++) {
      const x = mean[d] + std[d] * truncatedStandardNormal(rng);
      out[i * D + d] = Math.min(high[d], Math.max(low[d], x));
    }
  }
  return out;
}

/**
 * PETS's CEM planner over [horizon, actDim] action sequences, with mbrl-lib's warm start (the
 * previous plan shifted by the executed steps, the tail filled with the mid-point of the bounds).
 * Owns the warm start and its sample buffers.
 *
 * Plans are always finite and inside the bounds: if every candidate of an iteration diverges
 * (non-finite value) the distribution is not updated, and if nothing finite is ever seen the warm
 * start (at first, the mid-point) is returned.
 *
 * @example
 * const cem = new CemOptimizer(makeCemConfig({ horizon: 25 }), env.actionSpace, rng.fork());
 * const plan = await cem.optimize((seqs, n) => modelEnv.evaluateActionSequences(obs, seqs, 25, 20));
 */
export class CemOptimizer implements TrajectoryOptimizer {
  readonly config: Readonly<CemConfig>;
  readonly horizon: number;
  readonly actDim: number;
  readonly #rng: Rng;
  readonly #bounds: PlanBounds;
  readonly #initialVar: Float64Array;
  readonly #population: Float64Array;
  readonly #warm: Float64Array;
  readonly #plan: Float64Array;

  /**
   * @param config a config from `makeCemConfig` (validated again here)
   * @param actionSpace finite action bounds
   * @param rng sampling generator (give each planner its own, e.g. `rng.fork()`)
   */
  constructor(config: CemConfig, actionSpace: Box, rng: Rng) {
    this.config = Object.freeze(makeCemConfig(config));
    this.horizon = config.horizon;
    this.actDim = actionSpace.dim;
    this.#rng = rng;
    this.#bounds = planBounds(actionSpace, this.horizon, 'CemOptimizer');
    const { low, high, mid } = this.#bounds;
    this.#initialVar = low.map((lo, i) => (high[i] - lo) ** 2 / 16);
    this.#population = new Float64Array(config.populationSize * low.length);
    this.#warm = Float64Array.from(mid);
    this.#plan = Float64Array.from(mid);
  }

  async optimize(objective: TrajectoryObjective): Promise<Float64Array> {
    const { populationSize: N, numElites, numIterations, alpha, returnMeanElites } = this.config;
    const { low, high } = this.#bounds;
    const D = low.length;
    const pop = this.#population;
    let mean: Float64Array = Float64Array.from(this.#warm);
    let variance: Float64Array = Float64Array.from(this.#initialVar);
    let bestValue = -Infinity;
    let best: Float64Array | undefined;
    for (let it = 0; it < numIterations; it++) {
      sampleTruncatedNormal(mean, variance, low, high, N, this.#rng, pop);
      const values = Float64Array.from(await evaluateCandidates(objective, pop, N, 'CemOptimizer.optimize'));
      if (sanitizeReturns(values) === 0) continue;
      const update = cemUpdate(pop, values, numElites, alpha, mean, variance);
      mean = update.mean;
      variance = update.var;
      const top = update.eliteIndices[0];
      if (values[top] > bestValue) {
        bestValue = values[top];
        best = pop.slice(top * D, (top + 1) * D);
      }
    }
    const found = bestValue > -Infinity;
    this.#plan.set(!found ? this.#warm : returnMeanElites ? mean : (best as Float64Array));
    return clipPlan(this.#plan, low, high, this.#warm);
  }

  advance(steps: number): void {
    shiftPlan(this.#plan, this.actDim, steps, this.#bounds.mid, this.#warm);
  }

  reset(): void {
    this.#warm.set(this.#bounds.mid);
    this.#plan.set(this.#bounds.mid);
  }
}
