/**
 * Model predictive path integral control (MPPI): Williams et al. 2017, "Information Theoretic MPC
 * for Model-Based Reinforcement Learning" (ICRA 2017; the derivation mbrl-lib points to is
 * https://arxiv.org/abs/2102.09027), in the form PDDM (Nagabandi et al. 2019, "Deep Dynamics Models
 * for Learning Dexterous Manipulation", https://arxiv.org/abs/1909.11652) and mbrl-lib's
 * `MPPIOptimizer` use: temporally smoothed noise and refinement iterations.
 *
 * Each iteration samples N sequences around the current plan μ with filtered noise,
 *   ε ~ N(0, σ²) truncated at ±2σ (σ² shrunk to keep μ ± 2σ inside the bounds),
 *   u_0 = β(μ_0 + ε_0) + (1 − β)·u_prev,   u_t = β(μ_t + ε_t) + (1 − β)·u_{t−1},
 * clips them to the bounds, evaluates their returns R_i and sets
 *   μ ← Σ_i w_i u_i / Σ_i w_i,   w_i = exp((R_i − max_j R_j) / λ),
 * i.e. μ plus the reward-weighted average of the perturbations actually applied.
 *
 * Deviations from mbrl-lib, on purpose: (1) the temperature λ divides (mbrl-lib's `gamma`
 * multiplies: γ = 1/λ); (2) the noise is scaled by σ as its docstring says — mbrl-lib's code adds
 * the unscaled truncated normal, so its `sigma` has no effect; (3) diverged (NaN) returns get weight
 * 0 (mbrl-lib maps them to −1e−10, which can make them the heaviest).
 */
import type { Rng } from '../core/rng.js';
import type { Box } from '../core/spaces.js';
import { constrainedVariance, truncatedStandardNormal } from './cem.js';
import {
  checkInteger,
  checkKind,
  checkKnownKeys,
  checkNumber,
  clipPlan,
  evaluateCandidates,
  planBounds,
  shiftPlan,
  type PlanBounds,
  type TrajectoryObjective,
  type TrajectoryOptimizer,
} from './planningAgent.js';

/** Configuration of `MppiOptimizer`. */
export interface MppiConfig {
  kind: 'mppi';
  /** Planning horizon H, in control steps. Default 30 (mbrl-lib pets_mppi_halfcheetah). */
  horizon: number;
  /** Sequences N sampled per iteration. Default 350 (mbrl-lib pets_mppi_halfcheetah). */
  populationSize: number;
  /** Refinement iterations per planning call. Default 5 (mbrl-lib pets_mppi_halfcheetah). */
  numIterations: number;
  /**
   * Temperature λ > 0, in return units: weights exp((R − max R)/λ). Small λ follows the best
   * sample, large λ averages. Default 1/0.9 ≈ 1.11 (mbrl-lib pets_mppi_halfcheetah `gamma: 0.9`,
   * which multiplies: γ = 1/λ).
   */
  temperature: number;
  /** Noise standard deviation σ, in action units. Default 1.0 (mbrl-lib pets_mppi_halfcheetah). */
  sigma: number;
  /**
   * Smoothing β in (0, 1]: u_t = β(μ_t + ε_t) + (1 − β)u_{t−1}; 1 means no smoothing.
   * Default 0.9 (mbrl-lib pets_mppi_halfcheetah; PDDM's β).
   */
  beta: number;
}

/** mbrl-lib's MPPI settings for PETS (mbrl/examples/conf/overrides/pets_mppi_halfcheetah.yaml). */
export const MPPI_DEFAULTS = {
  kind: 'mppi',
  horizon: 30,
  populationSize: 350,
  numIterations: 5,
  temperature: 1 / 0.9,
  sigma: 1.0,
  beta: 0.9,
} as const satisfies MppiConfig;

/**
 * Merges `overrides` into `MPPI_DEFAULTS` and validates the result.
 * @throws ValidationError naming the key, the bad value and what was expected
 * @example const cfg = makeMppiConfig({ horizon: 20, temperature: 0.5 });
 */
export function makeMppiConfig(overrides: Partial<MppiConfig> = {}): MppiConfig {
  const where = 'makeMppiConfig';
  checkKnownKeys(where, overrides, MPPI_DEFAULTS);
  const c: MppiConfig = { ...MPPI_DEFAULTS, ...overrides };
  checkKind(where, c.kind, 'mppi');
  checkInteger(where, 'horizon', c.horizon, 1);
  checkInteger(where, 'populationSize', c.populationSize, 1);
  checkInteger(where, 'numIterations', c.numIterations, 1);
  checkNumber(where, 'temperature', c.temperature, 0, Infinity, { low: true });
  checkNumber(where, 'sigma', c.sigma, 0, Infinity);
  checkNumber(where, 'beta', c.beta, 0, 1, { low: true });
  return c;
}

/**
 * MPPI's normalised weights w_i = exp((R_i − max R)/λ) / Σ_j exp((R_j − max R)/λ). Subtracting the
 * maximum keeps the exponentials in range. Non-finite returns get weight 0; when no return is
 * finite, `undefined` (no information: keep the current plan).
 *
 * @param returns one value per sample, higher is better
 * @param temperature λ > 0
 * @example mppiWeights([-1, -2, -4], 1) // → [1, e⁻¹, e⁻³] / (1 + e⁻¹ + e⁻³)
 */
export function mppiWeights(returns: ArrayLike<number>, temperature: number): Float64Array | undefined {
  let max = -Infinity;
  for (let i = 0; i < returns.length; i++) if (Number.isFinite(returns[i]) && returns[i] > max) max = returns[i];
  if (max === -Infinity) return undefined;
  const w = new Float64Array(returns.length);
  let sum = 0;
  for (let i = 0; i < returns.length; i++) {
    w[i] = Number.isFinite(returns[i]) ? Math.exp((returns[i] - max) / temperature) : 0;
    sum += w[i];
  }
  for (let i = 0; i < w.length; i++) w[i] /= sum;
  return w;
}

/**
 * The weighted mean of the samples, Σ_i w_i u_i (weights already normalised).
 * @param samples row-major [N, D]
 */
export function weightedMean(samples: ArrayLike<number>, weights: ArrayLike<number>, D: number, out: Float64Array = new Float64Array(D)): Float64Array {
  out.fill(0);
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i];
    if (w === 0) continue;
    for (let d = 0; d < D; d++) out[d] += w * samples[i * D + d];
  }
  return out;
}

/**
 * Fills `out` with N smoothed, clipped samples around `mean` (see the file's equations).
 * @param mean [H, A]; `variance` [H, A] (σ², constrained here); `pastAction` [A]
 */
export function sampleSmoothedSequences(
  mean: ArrayLike<number>,
  variance: ArrayLike<number>,
  pastAction: ArrayLike<number>,
  beta: number,
  bounds: { low: ArrayLike<number>; high: ArrayLike<number> },
  count: number,
  rng: Rng,
  out: Float64Array,
): Float64Array {
  const { low, high } = bounds;
  const D = mean.length;
  const A = pastAction.length;
  const std = constrainedVariance(mean, variance, low, high).map(Math.sqrt);
  const prev = new Float64Array(A);
  for (let i = 0; i < count; i++) {
    // The filter runs on the unclipped sequence, as mbrl-lib's; clipping comes after.
    for (let a = 0; a < A; a++) prev[a] = pastAction[a];
    for (let d = 0; d < D; d++) {
      const a = d % A;
      const u = beta * (mean[d] + std[d] * truncatedStandardNormal(rng)) + (1 - beta) * prev[a];
      prev[a] = u;
      out[i * D + d] = Math.min(high[d], Math.max(low[d], u));
    }
  }
  return out;
}

/**
 * MPPI over [horizon, actDim] action sequences (mbrl-lib's `MPPIOptimizer`). Owns the plan μ, which
 * is its own warm start: after the controller executes k steps, μ shifts k steps and the tail
 * repeats the last action (as mbrl-lib), and the last executed action seeds the noise filter.
 *
 * Plans are always finite and inside the bounds; an iteration in which every return is non-finite
 * leaves μ unchanged.
 *
 * @example
 * const mppi = new MppiOptimizer(makeMppiConfig({ horizon: 20 }), env.actionSpace, rng.fork());
 */
export class MppiOptimizer implements TrajectoryOptimizer {
  readonly config: Readonly<MppiConfig>;
  readonly horizon: number;
  readonly actDim: number;
  readonly #rng: Rng;
  readonly #bounds: PlanBounds;
  readonly #variance: Float64Array;
  readonly #population: Float64Array;
  readonly #mean: Float64Array;
  readonly #pastAction: Float64Array;

  /**
   * @param config a config from `makeMppiConfig` (validated again here)
   * @param actionSpace finite action bounds
   * @param rng sampling generator
   */
  constructor(config: MppiConfig, actionSpace: Box, rng: Rng) {
    this.config = Object.freeze(makeMppiConfig(config));
    this.horizon = config.horizon;
    this.actDim = actionSpace.dim;
    this.#rng = rng;
    this.#bounds = planBounds(actionSpace, this.horizon, 'MppiOptimizer');
    this.#variance = new Float64Array(this.#bounds.low.length).fill(config.sigma ** 2);
    this.#population = new Float64Array(config.populationSize * this.#bounds.low.length);
    this.#mean = Float64Array.from(this.#bounds.mid);
    this.#pastAction = this.#bounds.mid.slice(0, this.actDim);
  }

  async optimize(objective: TrajectoryObjective): Promise<Float64Array> {
    const { populationSize: N, numIterations, temperature, beta } = this.config;
    const D = this.#mean.length;
    const pop = this.#population;
    for (let it = 0; it < numIterations; it++) {
      sampleSmoothedSequences(this.#mean, this.#variance, this.#pastAction, beta, this.#bounds, N, this.#rng, pop);
      const values = await evaluateCandidates(objective, pop, N, 'MppiOptimizer.optimize');
      const w = mppiWeights(values, temperature);
      if (w !== undefined) weightedMean(pop, w, D, this.#mean);
    }
    return clipPlan(this.#mean, this.#bounds.low, this.#bounds.high, this.#bounds.mid);
  }

  advance(steps: number): void {
    if (steps < 1) return;
    const A = this.actDim;
    const k = Math.min(steps, this.horizon);
    for (let a = 0; a < A; a++) this.#pastAction[a] = this.#mean[(k - 1) * A + a];
    shiftPlan(this.#mean, A, k, 'repeatLast', this.#mean);
  }

  reset(): void {
    this.#mean.set(this.#bounds.mid);
    this.#pastAction.set(this.#bounds.mid.subarray(0, this.actDim));
  }
}
