/**
 * The contracts of the planners (random shooting, CEM, MPPI) and the small pieces they share:
 * warm start, bounds, the treatment of diverged returns, config checks.
 */
import type { Agent } from '../core/agent.js';
import { ValidationError, describe } from '../core/errors.js';
import type { Box } from '../core/spaces.js';

/**
 * An agent whose action needs asynchronous work: a model-predictive controller that evaluates
 * candidate plans on a learned ensemble.
 *
 * Why not `Agent` (src/core/agent.ts)? `Agent.act` is synchronous, but the ensemble's forward pass
 * (`EnsemblePredictor.predict`, tfjs `data()` or onnxruntime-node `run`) returns a Promise and must
 * not block the event loop of a control node. Blocking on it is impossible in Node without
 * worker/Atomics tricks, so planners expose `actAsync` and the training loop and control node
 * `await` it. Synchronous agents (policies, random, constant) stay `Agent`s; `asPlanningAgent`
 * lifts one into this interface so a loop can treat both alike.
 */
export interface PlanningAgent {
  /** The action for `obs`, inside the action bounds; the returned array may be reused by the next call. */
  actAsync(obs: Float64Array): Promise<Float64Array>;
  /** Called at the start of each episode: drops the warm start and any queued actions. */
  reset(): void;
}

/**
 * Lifts a synchronous `Agent` (a policy, `RandomAgent`) into a `PlanningAgent`, so a loop that
 * awaits `actAsync` can run either.
 */
export function asPlanningAgent(agent: Agent): PlanningAgent {
  return {
    actAsync: (obs) => Promise.resolve(agent.act(obs)),
    reset: () => agent.reset?.(),
  };
}

/**
 * Values of a batch of candidate action sequences, higher is better (e.g. the mean particle return
 * from `ModelEnv.evaluateActionSequences`). NaN or ±∞ entries mean "diverged" and rank last.
 * @param actionSequences row-major [populationSize, horizon, actDim]
 */
export type TrajectoryObjective = (actionSequences: Float64Array, populationSize: number) => Promise<Float64Array>;

/**
 * An optimizer of open-loop action sequences of a fixed horizon within box bounds, with a warm start
 * carried between calls (mbrl-lib's `Optimizer` + `TrajectoryOptimizer`).
 */
export interface TrajectoryOptimizer {
  readonly horizon: number;
  readonly actDim: number;
  /**
   * Optimizes from the warm start and returns the plan, row-major [horizon, actDim], every entry
   * finite and inside the bounds. The array belongs to the optimizer (valid until the next call).
   */
  optimize(objective: TrajectoryObjective): Promise<Float64Array>;
  /** The controller executed the first `steps` actions of the last plan: shift the warm start. */
  advance(steps: number): void;
  /** Forgets the warm start (new episode). */
  reset(): void;
}

/** Action bounds tiled over the horizon, and the mid-point plan (mbrl-lib's initial solution). */
export interface PlanBounds {
  /** Lower bounds [horizon, actDim]. */
  low: Float64Array;
  /** Upper bounds [horizon, actDim]. */
  high: Float64Array;
  /** (low + high) / 2, the initial solution and the fill of the warm start. */
  mid: Float64Array;
}

/**
 * Tiles a bounded action space over the horizon.
 * @throws ValidationError when a bound is infinite (planners sample inside the box)
 */
export function planBounds(actionSpace: Box, horizon: number, where: string): PlanBounds {
  if (!actionSpace.isBounded()) {
    throw new ValidationError(where, 'actionSpace', `expected finite action bounds, got low ${JSON.stringify(Array.from(actionSpace.low))}, high ${JSON.stringify(Array.from(actionSpace.high))}`);
  }
  const A = actionSpace.dim;
  const low = new Float64Array(horizon * A);
  const high = new Float64Array(horizon * A);
  const mid = new Float64Array(horizon * A);
  for (let t = 0; t < horizon; t++) {
    for (let a = 0; a < A; a++) {
      low[t * A + a] = actionSpace.low[a];
      high[t * A + a] = actionSpace.high[a];
      mid[t * A + a] = (actionSpace.low[a] + actionSpace.high[a]) / 2;
    }
  }
  return { low, high, mid };
}

/**
 * The warm start for the next step: the previous plan shifted `steps` steps earlier, the freed tail
 * filled from `fill` (the mid-point plan in PETS and mbrl-lib's `TrajectoryOptimizer`), or with
 * copies of the plan's last action when `fill` is `'repeatLast'` (mbrl-lib's MPPI).
 *
 * @param plan [horizon, actDim]
 * @param fill a [horizon, actDim] plan whose tail rows are copied, or `'repeatLast'`
 * @param out may alias `plan`
 * @example shiftPlan([1, 2, 3], 1, 1, [0, 0, 0]) // → [2, 3, 0]
 */
export function shiftPlan(
  plan: ArrayLike<number>,
  actDim: number,
  steps: number,
  fill: ArrayLike<number> | 'repeatLast',
  out: Float64Array = new Float64Array(plan.length),
): Float64Array {
  const len = plan.length;
  const shift = Math.min(steps, len / actDim) * actDim;
  const last = new Float64Array(actDim);
  for (let a = 0; a < actDim; a++) last[a] = plan[len - actDim + a];
  for (let i = 0; i + shift < len; i++) out[i] = plan[i + shift];
  for (let i = len - shift; i < len; i++) out[i] = fill === 'repeatLast' ? last[i % actDim] : fill[i];
  return out;
}

/**
 * Replaces NaN and ±∞ values by −∞ in place, so a diverged rollout ranks last and never wins
 * (mbrl-lib maps NaN to −1e−10, which can rank a NaN candidate first; we do not). +∞ is treated
 * the same way: a finite model cannot earn it honestly, and it would make MPPI's weights NaN.
 * @returns the number of finite values
 */
export function sanitizeReturns(returns: Float64Array): number {
  let finite = 0;
  for (let i = 0; i < returns.length; i++) {
    if (Number.isFinite(returns[i])) finite++;
    else returns[i] = -Infinity;
  }
  return finite;
}

/** Clips `plan` into [low, high] in place; a non-finite entry becomes `fallback`'s entry. */
export function clipPlan(plan: Float64Array, low: ArrayLike<number>, high: ArrayLike<number>, fallback: ArrayLike<number>): Float64Array {
  for (let i = 0; i < plan.length; i++) {
    const v = plan[i];
    plan[i] = Number.isFinite(v) ? Math.min(high[i], Math.max(low[i], v)) : fallback[i];
  }
  return plan;
}

/** Calls `objective` and checks the length of its answer. */
export async function evaluateCandidates(objective: TrajectoryObjective, population: Float64Array, populationSize: number, where: string): Promise<Float64Array> {
  const values = await objective(population, populationSize);
  if (values.length !== populationSize) {
    throw new ValidationError(where, 'objective', `expected ${populationSize} values (one per candidate), got ${values.length}`);
  }
  return values;
}

// ——— config checks shared by makeCemConfig, makeMppiConfig, makeRandomShootingConfig ———

/** Rejects keys that are not in `defaults` (typos would otherwise be silently ignored). */
export function checkKnownKeys(where: string, overrides: object, defaults: object): void {
  for (const key of Object.keys(overrides)) {
    if (!(key in defaults)) {
      throw new ValidationError(where, key, `unknown key; expected one of ${Object.keys(defaults).join(', ')}`);
    }
  }
}

/** Checks an integer ≥ `min` (and ≤ `max` when given). */
export function checkInteger(where: string, key: string, value: unknown, min: number, max = Infinity, maxNote = ''): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Infinity ? `≥ ${min}` : `in [${min}, ${max}]${maxNote}`;
    throw new ValidationError(where, key, `expected an integer ${range}, got ${describe(value)}`);
  }
}

/** Checks a finite number in the given range; `low`/`high` are inclusive unless `open` says so. */
export function checkNumber(
  where: string,
  key: string,
  value: unknown,
  low: number,
  high: number,
  open: { low?: boolean; high?: boolean } = {},
): void {
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (open.low ? value > low : value >= low) &&
    (open.high ? value < high : value <= high);
  if (!ok) {
    const lo = `${open.low ? '(' : '['}${low}`;
    const hi = `${high === Infinity ? '∞)' : `${high}${open.high ? ')' : ']'}`}`;
    throw new ValidationError(where, key, `expected a finite number in ${lo}, ${hi}, got ${describe(value)}`);
  }
}

/** Checks a boolean. */
export function checkBoolean(where: string, key: string, value: unknown): void {
  if (typeof value !== 'boolean') throw new ValidationError(where, key, `expected true or false, got ${describe(value)}`);
}

/** Checks the `kind` tag. */
export function checkKind(where: string, value: unknown, kind: string): void {
  if (value !== kind) throw new ValidationError(where, 'kind', `expected ${JSON.stringify(kind)}, got ${describe(value)}`);
}
