import type { EnvInfo } from '../core/env.js';
import type { Rng } from '../core/rng.js';

/**
 * Small pieces that Gymnasium's MuJoCo tasks repeat word for word in each `*_v5.py`: the reset
 * noise, the `qpos[k:]` + `qvel` observation, the control cost's Σ a², and the reward of the
 * planar walkers. Each task file still reads top to bottom as its Gymnasium definition; only
 * these building blocks live here.
 */

/** Σ a[i]² over `len` entries from `start` (the control cost of row `start / len` of a batch). */
export function sumOfSquares(a: ArrayLike<number>, start: number, len: number): number {
  let s = 0;
  for (let i = start; i < start + len; i++) s += a[i] * a[i];
  return s;
}

/** `x` limited to [lo, hi] (NaN stays NaN), as `np.clip`. */
export function clip(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}

/**
 * `init + U(−scale, scale)` entry by entry, drawn in order: Gymnasium's
 * `init + np_random.uniform(low=−scale, high=scale, size=n)` reset noise.
 */
export function uniformAround(init: ArrayLike<number>, scale: number, rng: Rng): Float64Array {
  const out = new Float64Array(init.length);
  for (let i = 0; i < out.length; i++) out[i] = init[i] + rng.uniform(-scale, scale);
  return out;
}

/** `init + scale · N(0, 1)` entry by entry: Gymnasium's `init + scale * np_random.standard_normal(n)`. */
export function normalAround(init: ArrayLike<number>, scale: number, rng: Rng): Float64Array {
  const out = new Float64Array(init.length);
  for (let i = 0; i < out.length; i++) out[i] = init[i] + scale * rng.normal();
  return out;
}

/**
 * The locomotion tasks' observation `concatenate(qpos[skip:], qvel)`, with qvel clipped to
 * ±`velocityClip` (Hopper and Walker2d clip at 10; the default leaves it as is).
 */
export function positionVelocityObs(qpos: Float64Array, qvel: Float64Array, skip: number, velocityClip = Infinity): Float64Array {
  const nPos = qpos.length - skip;
  const obs = new Float64Array(nPos + qvel.length);
  for (let i = skip; i < qpos.length; i++) obs[i - skip] = qpos[i];
  for (let i = 0; i < qvel.length; i++) obs[nPos + i] = clip(qvel[i], -velocityClip, velocityClip);
  return obs;
}

/** Names of `positionVelocityObs`'s entries, `qpos[i]:joint` then `qvel[i]:joint`, from the model's joint order. */
export function positionVelocityNames(joints: readonly string[], skip: number): readonly string[] {
  return Object.freeze([...joints.slice(skip).map((j, i) => `qpos[${i + skip}]:${j}`), ...joints.map((j, i) => `qvel[${i}]:${j}`)]);
}

/** The weights of a reward `healthy_reward + forward_reward − ctrl_cost` (Gymnasium's constructor arguments). */
export interface HealthyForwardWeights {
  forwardRewardWeight: number;
  ctrlCostWeight: number;
  healthyReward: number;
}

/**
 * Gymnasium's `_get_rew` of Hopper-v5 and Walker2d-v5 (the same code in both): forward_reward
 * = weight · x velocity, healthy_reward paid only while healthy (v5), ctrl_cost = weight · Σ a²
 * of the commanded action. Returns the reward and its terms under v5's `info` keys.
 */
export function healthyForwardReward(w: HealthyForwardWeights, xVelocity: number, healthy: boolean, action: ArrayLike<number>): { reward: number; info: EnvInfo } {
  const forwardReward = w.forwardRewardWeight * xVelocity;
  const healthyReward = healthy ? w.healthyReward : 0;
  const ctrlCost = w.ctrlCostWeight * sumOfSquares(action, 0, action.length);
  return {
    reward: forwardReward + healthyReward - ctrlCost,
    info: { reward_forward: forwardReward, reward_ctrl: -ctrlCost, reward_survive: healthyReward },
  };
}
