/**
 * Task rewards as differentiable tfjs functions of (s, a, s'), for Model Gradient
 * (modelGradient.ts): the model's policy gradient depends on the model parameters through the
 * rewards of the imagined states, so the known reward must be a tensor function, not the
 * plain-JS `TaskFunctions.reward` the planners use. Each one equals its task's `reward` (tested
 * against it on random inputs in test/algorithms/modelGradient.test.ts).
 */
import * as tf from '@tensorflow/tfjs';

/** r(s, a, s') for n rows: obs [n, obsDim], act [n, actDim], nextObs [n, obsDim] → [n]. Differentiable in all three. */
export type DifferentiableReward = (obs: tf.Tensor2D, act: tf.Tensor2D, nextObs: tf.Tensor2D) => tf.Tensor1D;

/**
 * Pendulum-v1: −(θ² + 0.1 θ̇² + 0.001 u²) with θ = atan2(sin θ, cos θ) of the state before the
 * step and u clipped to ±2 (`pendulumTask.reward`).
 */
export const pendulumReward: DifferentiableReward = (obs, act) => {
  const cos = tf.slice(obs, [0, 0], [-1, 1]);
  const sin = tf.slice(obs, [0, 1], [-1, 1]);
  const thdot = tf.slice(obs, [0, 2], [-1, 1]);
  const th = tf.atan2(sin, cos);
  const u = tf.clipByValue(tf.slice(act, [0, 0], [-1, 1]), -2, 2);
  const cost = tf.add(tf.add(tf.square(th), tf.mul(tf.square(thdot), 0.1)), tf.mul(tf.square(u), 0.001));
  return tf.reshape(tf.neg(cost), [-1]) as tf.Tensor1D;
};

/**
 * HalfCheetah-v5 as `halfCheetahTask.reward`: forward velocity 0.4·obs[8] + 0.6·nextObs[8] (the
 * root's x velocity before and after the step, weighted for the 5 Euler substeps) minus
 * 0.1·Σ a².
 */
export const halfCheetahReward: DifferentiableReward = (obs, act, nextObs) => {
  const before = tf.slice(obs, [0, 8], [-1, 1]);
  const after = tf.slice(nextObs, [0, 8], [-1, 1]);
  const forward = tf.add(tf.mul(before, 0.4), tf.mul(after, 0.6));
  const ctrl = tf.mul(tf.sum(tf.square(act), 1, true), 0.1);
  return tf.reshape(tf.sub(forward, ctrl), [-1]) as tf.Tensor1D;
};

/** The built-in tasks with a differentiable reward (the others need `reward: 'learned'`). */
export const DIFFERENTIABLE_REWARDS: Readonly<Record<string, DifferentiableReward>> = Object.freeze({
  'Pendulum-v1': pendulumReward,
  'HalfCheetah-v5': halfCheetahReward,
});
