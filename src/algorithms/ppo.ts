/**
 * Proximal Policy Optimization with the clipped surrogate (Schulman et al. 2017,
 * https://arxiv.org/abs/1707.06347), as Stable-Baselines3's `PPO`, read top to bottom:
 * config → the loss → the model-free loop.
 *
 * Each iteration collects `nSteps` steps from each of `numEnvs` copies, computes GAE advantages
 * with the value function, then runs `epochs` passes of Adam over shuffled minibatches of
 *
 *   r_t(θ) = π_θ(u_t|s_t) / π_old(u_t|s_t)
 *   L^CLIP = mean_t min( r_t Â_t, clip(r_t, 1 − ε, 1 + ε) Â_t )                      (eq. 7)
 *   loss   = −L^CLIP + c_vf · mean_t (V_φ(s_t) − R_t)² − c_ent · mean_t H[π_θ(·|s_t)]   (eq. 9)
 *
 * with Â standardised per minibatch, R_t the λ-returns, and the gradient of policy and value
 * parameters together clipped to a global norm (SB3's max_grad_norm).
 */
import * as tf from '@tensorflow/tfjs';
import type { Env, PhysicsParams } from '../core/env.js';
import { ValidationError, describe } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { expHo } from '../core/tfMath.js';
import { RunningNormalizer } from '../data/normalizer.js';
import { envSpec } from '../envs/registry.js';
import { gaussianEntropy } from '../policies/diagGaussian.js';
import { GaussianMlpPolicy, makePolicySpec, policyForward, type GaussianMlpPolicySpec } from '../policies/gaussianMlpPolicy.js';
import { MlpValueFunction, makeValueFunctionConfig, type MlpValueFunctionConfig } from '../policies/mlpValueFunction.js';
import { EnvRolloutSource, batchTensors, collectRollouts, disposeBatchTensors, meanOrNull, policyLogProb } from './policyGradient.js';
import { advantagesOf, checkBool, checkInt, checkPolicyArchitecture, checkUnit, meanLogStd, rejectUnknownKeys, type PolicyArchitecture } from './trpo.js';

// ---------------------------------------------------------------------------------------------
// Config

/** Configuration of a PPO run (Stable-Baselines3's names and defaults unless said). */
export interface PpoConfig {
  /** Always `'ppo'`. */
  kind: 'ppo';
  /** Built-in task id (the caller builds the environments from `env`, `physics`, `maxEpisodeSteps`). */
  env: string;
  seed: number;
  /** Environment steps in total. */
  steps: number;
  /** Steps per copy per iteration (SB3's n_steps). Default 2048. */
  nSteps: number;
  /** Environment copies (SB3's n_envs); a batch is nSteps × numEnvs. Default 1. */
  numEnvs: number;
  /** Rows per Adam step (SB3's batch_size). Default 64. */
  minibatchSize: number;
  /** Passes over each batch (SB3's n_epochs). Default 10. */
  epochs: number;
  /** Adam step size, for policy and value function. Default 3e-4. */
  learningRate: number;
  /** Discount γ. Default 0.99. */
  gamma: number;
  /** GAE λ. Default 0.95. */
  gaeLambda: number;
  /** ε of the clipped ratio. Default 0.2. */
  clipRange: number;
  /** c_ent, the entropy bonus. Default 0. */
  entCoef: number;
  /** c_vf, the weight of the value loss. Default 0.5. */
  vfCoef: number;
  /** Global gradient-norm clip. Default 0.5. */
  maxGradNorm: number;
  /** Stop an iteration's epochs early once the approximate KL exceeds 1.5 × this (SB3's target_kl); null: never. Default null. */
  targetKl: number | null;
  /** Standardise advantages per minibatch. Default true. */
  normalizeAdvantages: boolean;
  /** The policy network. Default [64, 64] tanh, log σ 0 (SB3's MlpPolicy). */
  policy: PolicyArchitecture;
  /** The value network (its own learningRate/epochs/minibatchSize are unused: PPO trains it with the policy). Default [64, 64] tanh. */
  valueFunction: Partial<MlpValueFunctionConfig>;
  /** Normalise observations by running statistics updated between iterations. Default true. */
  normalizeObs: boolean;
  physics: Partial<PhysicsParams>;
  maxEpisodeSteps: number | null;
}

/** PPO's defaults: Stable-Baselines3's (see `PpoConfig`). */
export const PPO_DEFAULTS = {
  kind: 'ppo',
  env: 'Pendulum-v1',
  seed: 0,
  steps: 1_000_000,
  nSteps: 2048,
  numEnvs: 1,
  minibatchSize: 64,
  epochs: 10,
  learningRate: 3e-4,
  gamma: 0.99,
  gaeLambda: 0.95,
  clipRange: 0.2,
  entCoef: 0,
  vfCoef: 0.5,
  maxGradNorm: 0.5,
  targetKl: null,
  normalizeAdvantages: true,
  policy: { hidden: [64, 64], activation: 'tanh', initLogStd: 0 },
  valueFunction: { hidden: [64, 64] },
  normalizeObs: true,
  physics: {},
  maxEpisodeSteps: null,
} as const satisfies PpoConfig;

/**
 * Per-task overrides for CI-size runs (measured in test/algorithms/policyLearning.test.ts;
 * deterministic evaluation over 5 episodes).
 * - InvertedPendulum-v5: 2 copies × 512 steps per iteration. 25k steps: evaluation
 *   1000/1000/1000/1000 (seeds 0–3).
 * - Pendulum-v1: rl-zoo's direction (short horizon, larger steps): γ = 0.95, learning rate 1e-3,
 *   4 copies × 1024 steps. 100k steps: evaluation −113 (seed 0; 196 s on 2 busy cores, so not a
 *   CI test).
 */
export const PPO_ENV_OVERRIDES: Record<string, Partial<PpoConfig>> = {
  'Pendulum-v1': { steps: 100_000, nSteps: 1024, numEnvs: 4, gamma: 0.95, learningRate: 1e-3 },
  'InvertedPendulum-v5': { steps: 50_000, nSteps: 512, numEnvs: 2 },
};

export type PpoOverrides = Partial<Omit<PpoConfig, 'policy'>> & { policy?: Partial<PolicyArchitecture> };

/**
 * Merges per-task overrides and `overrides` into `PPO_DEFAULTS` and validates.
 * @throws ValidationError naming the key, the value and what was expected
 */
export function makePpoConfig(overrides: PpoOverrides = {}): PpoConfig {
  const where = 'makePpoConfig';
  rejectUnknownKeys(where, overrides, PPO_DEFAULTS);
  if (overrides.kind !== undefined && overrides.kind !== 'ppo') throw new ValidationError(where, 'kind', `expected 'ppo', got ${describe(overrides.kind)}`);
  const env = overrides.env ?? PPO_DEFAULTS.env;
  const perEnv = PPO_ENV_OVERRIDES[env] ?? {};
  const c: PpoConfig = {
    ...PPO_DEFAULTS,
    ...perEnv,
    ...overrides,
    kind: 'ppo',
    policy: { ...PPO_DEFAULTS.policy, hidden: [...PPO_DEFAULTS.policy.hidden], ...perEnv.policy, ...overrides.policy },
    valueFunction: { ...PPO_DEFAULTS.valueFunction, hidden: [...PPO_DEFAULTS.valueFunction.hidden], ...perEnv.valueFunction, ...overrides.valueFunction },
    physics: { ...overrides.physics },
  };
  envSpec(c.env);
  checkInt(where, 'seed', c.seed, 0);
  checkInt(where, 'steps', c.steps, 1);
  checkInt(where, 'nSteps', c.nSteps, 1);
  checkInt(where, 'numEnvs', c.numEnvs, 1);
  checkInt(where, 'minibatchSize', c.minibatchSize, 1);
  checkInt(where, 'epochs', c.epochs, 1);
  if (c.maxEpisodeSteps !== null) checkInt(where, 'maxEpisodeSteps', c.maxEpisodeSteps, 1);
  const positive = (key: keyof PpoConfig, v: number): void => {
    if (!(v > 0 && Number.isFinite(v))) throw new ValidationError(where, key, `expected a finite number > 0, got ${describe(v)}`);
  };
  const nonNegative = (key: keyof PpoConfig, v: number): void => {
    if (!(v >= 0 && Number.isFinite(v))) throw new ValidationError(where, key, `expected a finite number ≥ 0, got ${describe(v)}`);
  };
  positive('learningRate', c.learningRate);
  positive('clipRange', c.clipRange);
  positive('maxGradNorm', c.maxGradNorm);
  nonNegative('entCoef', c.entCoef);
  nonNegative('vfCoef', c.vfCoef);
  if (c.targetKl !== null) positive('targetKl', c.targetKl);
  checkUnit(where, 'gamma', c.gamma);
  checkUnit(where, 'gaeLambda', c.gaeLambda);
  checkBool(where, 'normalizeAdvantages', c.normalizeAdvantages);
  checkBool(where, 'normalizeObs', c.normalizeObs);
  checkPolicyArchitecture(where, c.policy);
  makeValueFunctionConfig(c.valueFunction);
  return c;
}

// ---------------------------------------------------------------------------------------------
// The loss

/** One minibatch as tensors. */
export interface PpoMinibatch {
  obsNorm: tf.Tensor2D;
  u: tf.Tensor2D;
  oldLogProb: tf.Tensor1D;
  advantages: tf.Tensor1D;
  returns: tf.Tensor1D;
}

/** The terms of the PPO loss for one minibatch (scalars). */
export interface PpoLossTerms {
  loss: tf.Scalar;
  policyLoss: tf.Scalar;
  valueLoss: tf.Scalar;
  entropy: tf.Scalar;
  /** mean (r − 1) − log r: the low-variance KL(π_old ‖ π_θ) estimate SB3 reports. */
  approxKl: tf.Scalar;
  clipFraction: tf.Scalar;
}

/**
 * The clipped PPO loss (eqs. 7 and 9) of a minibatch, a pure function of the policy and value
 * parameters.
 * @param valueOf φ-dependent V of the minibatch's normalised observations
 */
export function ppoLoss(
  spec: GaussianMlpPolicySpec,
  policyParams: readonly tf.Tensor[],
  valueOf: (obsNorm: tf.Tensor2D) => tf.Tensor1D,
  mb: PpoMinibatch,
  config: Pick<PpoConfig, 'clipRange' | 'vfCoef' | 'entCoef' | 'normalizeAdvantages'>,
): PpoLossTerms {
  let adv: tf.Tensor1D = mb.advantages;
  if (config.normalizeAdvantages && adv.size > 1) {
    const { mean, variance } = tf.moments(adv);
    adv = tf.div(tf.sub(adv, mean), tf.add(tf.sqrt(variance), 1e-8)) as tf.Tensor1D;
  }
  const logRatio = tf.sub(policyLogProb(spec, policyParams, mb.obsNorm, mb.u), mb.oldLogProb);
  const ratio = expHo(logRatio);
  const eps = config.clipRange;
  const clipped = tf.clipByValue(ratio, 1 - eps, 1 + eps);
  const policyLoss = tf.neg(tf.mean(tf.minimum(tf.mul(ratio, adv), tf.mul(clipped, adv)))) as tf.Scalar;
  const valueLoss = tf.mean(tf.square(tf.sub(valueOf(mb.obsNorm), mb.returns))) as tf.Scalar;
  const entropy = gaussianEntropy(policyForward(spec, policyParams, mb.obsNorm).logStd);
  const meanEntropy = tf.mean(entropy) as tf.Scalar;
  const loss = tf.addN([policyLoss, tf.mul(valueLoss, config.vfCoef), tf.mul(meanEntropy, -config.entCoef)]) as tf.Scalar;
  const approxKl = tf.mean(tf.sub(tf.sub(ratio, 1), logRatio)) as tf.Scalar;
  const clipFraction = tf.mean(tf.cast(tf.greater(tf.abs(tf.sub(ratio, 1)), eps), 'float32')) as tf.Scalar;
  return { loss, policyLoss, valueLoss, entropy: meanEntropy, approxKl, clipFraction };
}

// ---------------------------------------------------------------------------------------------
// The model-free loop

/** What one iteration reports (losses averaged over its minibatches). */
export interface PpoIterationMetrics {
  iteration: number;
  envSteps: number;
  episodes: number;
  meanReturn: number | null;
  meanLength: number | null;
  policyLoss: number;
  valueLoss: number;
  entropy: number;
  approxKl: number;
  clipFraction: number;
  /** Epochs run (fewer than `epochs` when `targetKl` stopped them). */
  epochsRun: number;
  meanLogStd: number;
  seconds: number;
}

export interface PpoHooks {
  onIteration?: (metrics: PpoIterationMetrics, policy: GaussianMlpPolicy) => Promise<void> | void;
  log?: (line: string) => void;
}

export interface PpoResult {
  config: PpoConfig;
  policy: GaussianMlpPolicy;
  valueFunction: MlpValueFunction;
  obsNormalizer: RunningNormalizer | null;
  history: PpoIterationMetrics[];
}

/**
 * Model-free PPO on real environments. Deterministic for a seed.
 * @param env `config.numEnvs` copies of the environment, made by the caller (`makeEnvCopies`)
 * @example
 * const config = makePpoConfig({ env: 'InvertedPendulum-v5', steps: 50_000 });
 * const { policy } = await trainPpo(config, await makeEnvCopies(config));
 */
export async function trainPpo(config: PpoConfig, env: Env | readonly Env[], hooks: PpoHooks = {}): Promise<PpoResult> {
  const envs: readonly Env[] = Array.isArray(env) ? (env as readonly Env[]) : [env as Env];
  if (envs.length !== config.numEnvs) throw new ValidationError('trainPpo', 'env', `expected ${config.numEnvs} environment copies (config.numEnvs), got ${envs.length}`);
  const first = envs[0];
  const obsDim = first.observationSpace.dim;
  const rng = new Rng(config.seed);
  const policy = new GaussianMlpPolicy(makePolicySpec({ obsDim, actionSpace: first.actionSpace, ...config.policy }), { rng: new Rng(config.seed, 1) });
  const valueFunction = new MlpValueFunction({ obsDim, config: config.valueFunction, rng: new Rng(config.seed, 2) });
  const spec = policy.spec;
  // One Adam over both networks, as SB3's shared optimiser (eps 1e-5, SB3's for PPO).
  const optimizer = tf.train.adam(config.learningRate, 0.9, 0.999, 1e-5);
  const variables = [...policy.variables, ...valueFunction.variables];
  const obsNormalizer = config.normalizeObs ? new RunningNormalizer({ dim: obsDim }) : null;
  const source = new EnvRolloutSource(envs, { seed: config.seed });
  const history: PpoIterationMetrics[] = [];
  let envSteps = 0;
  let episodes = 0;
  try {
    for (let iteration = 0; envSteps < config.steps; iteration++) {
      const start = performance.now();
      const batch = await collectRollouts(source, policy, rng, { steps: config.nSteps * config.numEnvs });
      envSteps += batch.size;
      episodes += batch.episodeReturns.length;
      const { advantages, returns } = advantagesOf(batch, valueFunction, config.gamma, config.gaeLambda);
      const t = batchTensors(batch, (o) => policy.normalizeObs(o), advantages);
      const returnsT = tf.tensor1d(Float32Array.from(returns));

      const sums = { policyLoss: 0, valueLoss: 0, entropy: 0, approxKl: 0, clipFraction: 0 };
      let count = 0;
      let epochsRun = 0;
      const n = batch.size;
      const mbSize = Math.min(config.minibatchSize, n);
      for (let epoch = 0; epoch < config.epochs; epoch++) {
        epochsRun++;
        const perm = rng.permutation(n);
        let epochKl = 0;
        let epochCount = 0;
        for (let s = 0; s < n; s += mbSize) {
          const idx = tf.tensor1d(Int32Array.from(perm.subarray(s, Math.min(s + mbSize, n))), 'int32');
          const terms = tf.tidy(() => {
            const mb: PpoMinibatch = {
              obsNorm: tf.gather(t.obsNorm, idx),
              u: tf.gather(t.u, idx),
              oldLogProb: tf.gather(t.oldLogProb, idx),
              advantages: tf.gather(t.advantages, idx),
              returns: tf.gather(returnsT, idx),
            };
            // variableGrads disposes what its function made except the loss: keep the reported terms.
            let report: tf.Tensor | undefined;
            const { grads } = tf.variableGrads(() => {
              const o = ppoLoss(spec, policy.variables, (x) => valueFunction.valueOf(x), mb, config);
              report = tf.keep(tf.stack([o.policyLoss, o.valueLoss, o.entropy, o.approxKl, o.clipFraction]));
              return o.loss;
            }, variables);
            // Clip the global gradient norm (policy and value together), as SB3's clip_grad_norm_.
            const list = variables.map((v) => grads[v.name]);
            const norm = tf.sqrt(tf.addN(list.map((g) => tf.sum(tf.square(g)))));
            const scale = tf.minimum(1, tf.div(config.maxGradNorm, tf.add(norm, 1e-6)));
            optimizer.applyGradients(variables.map((v, i) => ({ name: v.name, tensor: tf.mul(list[i], scale) })));
            return report as tf.Tensor;
          });
          idx.dispose();
          const [pl, vl, ent, kl, cf] = terms.dataSync();
          terms.dispose();
          sums.policyLoss += pl;
          sums.valueLoss += vl;
          sums.entropy += ent;
          sums.approxKl += kl;
          sums.clipFraction += cf;
          count++;
          epochKl += kl;
          epochCount++;
        }
        if (config.targetKl !== null && epochKl / epochCount > 1.5 * config.targetKl) break;
      }
      disposeBatchTensors(t);
      returnsT.dispose();

      if (obsNormalizer) {
        obsNormalizer.updateBatch(batch.obs, batch.size);
        policy.setObsNormalization(obsNormalizer.mean, obsNormalizer.std);
        valueFunction.setObsNormalization(obsNormalizer.mean, obsNormalizer.std);
      }
      const metrics: PpoIterationMetrics = {
        iteration,
        envSteps,
        episodes,
        meanReturn: meanOrNull(batch.episodeReturns),
        meanLength: meanOrNull(batch.episodeLengths),
        policyLoss: sums.policyLoss / count,
        valueLoss: sums.valueLoss / count,
        entropy: sums.entropy / count,
        approxKl: sums.approxKl / count,
        clipFraction: sums.clipFraction / count,
        epochsRun,
        meanLogStd: meanLogStd(policy),
        seconds: (performance.now() - start) / 1000,
      };
      history.push(metrics);
      hooks.log?.(`ppo it ${iteration}: steps ${envSteps}, return ${metrics.meanReturn?.toFixed(1) ?? '-'}, kl ${metrics.approxKl.toExponential(2)}, clip ${metrics.clipFraction.toFixed(3)}`);
      await hooks.onIteration?.(metrics, policy);
    }
  } finally {
    optimizer.dispose();
  }
  return { config, policy, valueFunction, obsNormalizer, history };
}
