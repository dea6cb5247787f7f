import * as tf from '@tensorflow/tfjs';
import { gaussianKl, gaussianLogProb } from '../policies/diagGaussian.js';
import { policyForward, type GaussianMlpPolicySpec } from '../policies/gaussianMlpPolicy.js';

/**
 * The meta-learning math of MB-MPO (Clavera et al. 2018, "Model-Based Reinforcement Learning via
 * Meta-Policy Optimization", https://arxiv.org/abs/1809.05214), as pure tfjs functions of the
 * policy parameters θ (in `GaussianMlpPolicy.variables` order):
 *
 *   θ'_k = θ + α ∇_θ J_k(θ),       J_k(θ) = (1/n) Σ_t log π_θ(u_t | s_t) · Â_t   (one VPG step on model k)
 *   max_θ (1/K) Σ_k J_k^post(θ'_k(θ)),  J^post(φ) = (1/n) Σ_t [π_φ(u_t|s_t) / π_old(u_t|s_t)] · Â_t
 *   s.t. (1/K) Σ_k mean_t KL(π_old,k ‖ π_{θ'_k(θ)}) ≤ δ
 *
 * as in the original code (rllab's MAML-TRPO with the KL on the post-update policies). The meta
 * gradient flows through the inner step exactly (second order, tfjs differentiates the inner
 * gradient) or with the first-order approximation (∂θ'_k/∂θ taken as the identity).
 */

/** One task's samples. Observations are already normalised by the policy (`normalizeObs`). */
export interface PolicySamples {
  /** [n, obsDim] normalised observations */
  obsNorm: tf.Tensor2D;
  /** [n, actDim] raw Gaussian samples (normalised action units) */
  u: tf.Tensor2D;
  /** [n] advantages */
  adv: tf.Tensor1D;
}

/** Post-update samples with the distribution that drew them. */
export interface PostUpdateSamples extends PolicySamples {
  /** [n, actDim] means and log-stds of π_{θ'_k} at sampling time */
  oldMean: tf.Tensor2D;
  oldLogStd: tf.Tensor2D;
}

/** Pre- and post-update samples of one ensemble member (an MB-MPO task). */
export interface MetaTask {
  pre: PolicySamples;
  post: PostUpdateSamples;
  /**
   * ∇_θ J_k at θ_old, when already computed (`innerGradient`): the 'firstOrder' adaptation then
   * uses it instead of recomputing it at every evaluation (the trust region's Fisher products).
   */
  innerGrad?: tf.Tensor[];
}

/** 'exact': differentiate through the inner step; 'firstOrder': treat ∂θ'/∂θ as the identity. */
export type MetaGradientMode = 'exact' | 'firstOrder';

/** log π_θ(u | s) for explicit parameters. [n] */
export function logProbWith(spec: GaussianMlpPolicySpec, params: readonly tf.Tensor[], obsNorm: tf.Tensor2D, u: tf.Tensor2D): tf.Tensor1D {
  const { mean, logStd } = policyForward(spec, params, obsNorm);
  return gaussianLogProb(u, mean, logStd);
}

/** The vanilla policy-gradient surrogate J(θ) = mean_t log π_θ(u_t|s_t) Â_t (its gradient is the policy gradient). */
export function vpgSurrogate(spec: GaussianMlpPolicySpec, params: readonly tf.Tensor[], s: PolicySamples): tf.Scalar {
  return tf.mean(tf.mul(logProbWith(spec, params, s.obsNorm, s.u), s.adv)) as tf.Scalar;
}

/**
 * The adapted parameters θ' = θ + α ∇_θ J(θ). In 'exact' mode the result stays differentiable
 * w.r.t. `params` (call it inside a gradient function); in 'firstOrder' mode the inner gradient
 * is computed on a separate tape and enters as a constant.
 */
export function adaptParams(spec: GaussianMlpPolicySpec, params: readonly tf.Tensor[], pre: PolicySamples, innerStepSize: number, mode: MetaGradientMode): tf.Tensor[] {
  let grads: tf.Tensor[];
  if (mode === 'exact') {
    grads = tf.grads((...p: tf.Tensor[]) => vpgSurrogate(spec, p, pre))([...params]);
  } else {
    // Leaves made from the values alone: the inner gradient then enters the caller's tape as a constant.
    const detached = params.map((p) => tf.tensor(p.dataSync(), p.shape));
    grads = tf.grads((...p: tf.Tensor[]) => vpgSurrogate(spec, p, pre))(detached);
  }
  return params.map((p, i) => tf.add(p, tf.mul(grads[i], innerStepSize)));
}

/** ∇_θ J(θ) on a task's pre-update samples, as constants (keep them; dispose when done). */
export function innerGradient(spec: GaussianMlpPolicySpec, params: readonly tf.Tensor[], pre: PolicySamples): tf.Tensor[] {
  return tf.tidy(() => {
    const detached = params.map((p) => tf.tensor(p.dataSync(), p.shape));
    return tf.grads((...p: tf.Tensor[]) => vpgSurrogate(spec, p, pre))(detached);
  });
}

/** θ + α·g for a constant gradient g (the first-order adapted parameters). */
function shifted(params: readonly tf.Tensor[], grad: readonly tf.Tensor[], innerStepSize: number): tf.Tensor[] {
  return params.map((p, i) => tf.add(p, tf.mul(grad[i], innerStepSize)));
}

/** The meta objective (1/K) Σ_k J_k^post(θ'_k(θ)) (to maximise). */
export function metaObjective(spec: GaussianMlpPolicySpec, params: readonly tf.Tensor[], tasks: readonly MetaTask[], innerStepSize: number, mode: MetaGradientMode): tf.Scalar {
  const terms = tasks.map((task) => {
    const adapted = adaptParams(spec, params, task.pre, innerStepSize, mode);
    const { mean, logStd } = policyForward(spec, adapted, task.post.obsNorm);
    const logp = gaussianLogProb(task.post.u, mean, logStd);
    const oldLogp = gaussianLogProb(task.post.u, task.post.oldMean, task.post.oldLogStd);
    return tf.mean(tf.mul(tf.exp(tf.sub(logp, oldLogp)), task.post.adv));
  });
  return tf.div(tf.addN(terms), tasks.length) as tf.Scalar;
}

/** The mean KL between the sampling post-update policies and π_{θ'_k(θ)}, averaged over tasks. */
export function metaKl(spec: GaussianMlpPolicySpec, params: readonly tf.Tensor[], tasks: readonly MetaTask[], innerStepSize: number, mode: MetaGradientMode): tf.Scalar {
  const terms = tasks.map((task) => {
    const adapted = mode === 'firstOrder' && task.innerGrad ? shifted(params, task.innerGrad, innerStepSize) : adaptParams(spec, params, task.pre, innerStepSize, mode);
    const { mean, logStd } = policyForward(spec, adapted, task.post.obsNorm);
    return tf.mean(gaussianKl(task.post.oldMean, task.post.oldLogStd, mean, logStd));
  });
  return tf.div(tf.addN(terms), tasks.length) as tf.Scalar;
}
