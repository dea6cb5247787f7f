import * as tf from '@tensorflow/tfjs';
import { expHo } from '../core/tfMath.js';

/**
 * Diagonal Gaussian distribution math on tensors, shared by the policy-gradient algorithms
 * (TRPO, PPO, ME-TRPO, MB-MPO) and SAC. All functions are pure and differentiable; call them
 * inside `tf.tidy` or a gradient function. `exp` is `expHo`, so gradients of gradients (MB-MPO) are right.
 *
 * Shapes: `mean` [n, d]; `logStd` [d] (state-independent, broadcast) or [n, d]; `x` [n, d].
 */

const LOG_2PI = Math.log(2 * Math.PI);

/**
 * log N(x; mean, diag(exp(logStd)²)) summed over the action dimensions:
 * −½ Σ_j ((x_j − μ_j)/σ_j)² − Σ_j log σ_j − (d/2) log 2π. Returns [n].
 */
export function gaussianLogProb(x: tf.Tensor2D, mean: tf.Tensor2D, logStd: tf.Tensor): tf.Tensor1D {
  const d = mean.shape[1];
  const z = tf.div(tf.sub(x, mean), expHo(logStd));
  const perDim = tf.add(tf.mul(tf.square(z), 0.5), logStd);
  return tf.sub(tf.neg(tf.sum(perDim, 1)), (d / 2) * LOG_2PI) as tf.Tensor1D;
}

/**
 * KL(old ‖ new) between diagonal Gaussians, summed over dimensions:
 * Σ_j [log σ'_j − log σ_j + (σ_j² + (μ_j − μ'_j)²) / (2σ'_j²) − ½]. Returns [n].
 */
export function gaussianKl(oldMean: tf.Tensor2D, oldLogStd: tf.Tensor, newMean: tf.Tensor2D, newLogStd: tf.Tensor): tf.Tensor1D {
  const oldVar = expHo(tf.mul(oldLogStd, 2));
  const newVar = expHo(tf.mul(newLogStd, 2));
  const num = tf.add(oldVar, tf.square(tf.sub(oldMean, newMean)));
  const perDim = tf.sub(tf.add(tf.sub(newLogStd, oldLogStd), tf.div(num, tf.mul(newVar, 2))), 0.5);
  return tf.sum(perDim, 1) as tf.Tensor1D;
}

/** Entropy of a diagonal Gaussian: Σ_j (log σ_j + ½ log 2πe). Returns a scalar for 1-D `logStd`, else [n]. */
export function gaussianEntropy(logStd: tf.Tensor): tf.Tensor {
  const perDim = tf.add(logStd, 0.5 * (LOG_2PI + 1));
  return logStd.rank === 1 ? tf.sum(perDim) : tf.sum(perDim, -1);
}

/**
 * Log-determinant correction of a tanh squashing, summed over dimensions, in the numerically
 * stable form of SAC's reference code: log(1 − tanh(u)²) = 2 (log 2 − u − softplus(−2u)).
 * Returns [n]; subtract it from the Gaussian log-probability of `u`.
 */
export function tanhLogDetJacobian(u: tf.Tensor2D): tf.Tensor1D {
  const perDim = tf.mul(tf.sub(tf.sub(Math.log(2), u), tf.softplus(tf.mul(u, -2))), 2);
  return tf.sum(perDim, 1) as tf.Tensor1D;
}
