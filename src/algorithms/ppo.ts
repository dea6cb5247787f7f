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
import { Rng, type RngState } from '../core/rng.js';
import { expHo } from '../core/tfMath.js';
import { RunningNormalizer, type RunningNormalizerJSON } from '../data/normalizer.js';
import { envSpec } from '../envs/registry.js';
import { gaussianEntropy } from '../policies/diagGaussian.js';
import { GaussianMlpPolicy, makePolicySpec, policyForward, type GaussianMlpPolicySpec, type PolicyWeights } from '../policies/gaussianMlpPolicy.js';
import { MlpValueFunction, makeValueFunctionConfig, type MlpValueFunctionConfig } from '../policies/mlpValueFunction.js';
import { batchTensors, collectRollouts, disposeBatchTensors, meanOrNull, policyLogProb } from './policyGradient.js';
import {
  ResumableEnvSource,
  advantagesOf,
  assignVariables,
  checkBool,
  checkInt,
  checkPolicyArchitecture,
  checkResumeConfig,
  checkUnit,
  meanLogStd,
  rejectUnknownKeys,
  type EnvSourceState,
  type PolicyArchitecture,
} from './trpo.js';

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

/**
 * Everything needed to continue a PPO run exactly where it stopped (a checkpoint's content):
 * `trainPpo(config, envs, hooks, state)` then produces what the uninterrupted run would have.
 */
export interface PpoState {
  config: PpoConfig;
  /** Iterations done (the next one's index). */
  iteration: number;
  envSteps: number;
  episodes: number;
  /** The policy's weights, with its observation normalisation. */
  policy: PolicyWeights;
  /** The value network's parameters, in `valueFunction.variables` order. */
  valueFunction: Float32Array[];
  /** The shared Adam's moments and step count. */
  optimizer: AdamSnapshot;
  /** The running observation statistics (null without `normalizeObs`). */
  obsNormalizer: RunningNormalizerJSON | null;
  /** The generator of the action noise and the minibatch order. */
  rng: RngState;
  /** Where the environment copies stand (mid-episode copies are rebuilt by replaying their actions). */
  envs: EnvSourceState;
  history: PpoIterationMetrics[];
}

/** A tfjs Adam optimizer's state: moments in the order of the variables it updates. */
export interface AdamSnapshot {
  /** Steps taken. */
  iterations: number;
  /** β₁ᵗ⁺¹ and β₂ᵗ⁺¹ as Adam keeps them (running float32 products). */
  accBeta1: number;
  accBeta2: number;
  m: Float32Array[];
  v: Float32Array[];
}

export interface PpoHooks {
  onIteration?: (metrics: PpoIterationMetrics, policy: GaussianMlpPolicy) => Promise<void> | void;
  /** After every iteration and `onIteration`, the state to checkpoint (awaited; built only when this hook is given). */
  onCheckpoint?: (state: PpoState) => Promise<void> | void;
  log?: (line: string) => void;
}

export interface PpoResult {
  config: PpoConfig;
  policy: GaussianMlpPolicy;
  valueFunction: MlpValueFunction;
  obsNormalizer: RunningNormalizer | null;
  history: PpoIterationMetrics[];
  /** The final state (to continue the run with a larger `steps`). */
  state: PpoState;
}

/**
 * Model-free PPO on real environments. Deterministic for a seed; a run resumed from a `PpoState`
 * continues exactly as the uninterrupted run.
 * @param env `config.numEnvs` copies of the environment, made by the caller (`makeEnvCopies`);
 *   when resuming, fresh copies (they are rebuilt from `resume.envs`)
 * @param resume a state from `onCheckpoint` or a result; its config must equal `config`
 * @example
 * const config = makePpoConfig({ env: 'InvertedPendulum-v5', steps: 50_000 });
 * const { policy } = await trainPpo(config, await makeEnvCopies(config));
 */
export async function trainPpo(config: PpoConfig, env: Env | readonly Env[], hooks: PpoHooks = {}, resume?: PpoState): Promise<PpoResult> {
  const envs: readonly Env[] = Array.isArray(env) ? (env as readonly Env[]) : [env as Env];
  if (envs.length !== config.numEnvs) throw new ValidationError('trainPpo', 'env', `expected ${config.numEnvs} environment copies (config.numEnvs), got ${envs.length}`);
  checkResumeConfig('trainPpo', config, resume);
  // First: rebuilding the environments from a state can fail, before anything needs disposing.
  const source = new ResumableEnvSource(envs, { seed: config.seed, ...(resume ? { state: resume.envs } : {}) });
  const first = envs[0];
  const obsDim = first.observationSpace.dim;
  const rng = new Rng(config.seed);
  const policySpec = makePolicySpec({ obsDim, actionSpace: first.actionSpace, ...config.policy });
  const policy = new GaussianMlpPolicy(policySpec, resume ? { weights: resume.policy } : { rng: new Rng(config.seed, 1) });
  const valueFunction = new MlpValueFunction({ obsDim, config: config.valueFunction, rng: new Rng(config.seed, 2) });
  const spec = policy.spec;
  // One Adam over both networks, as SB3's shared optimiser (eps 1e-5, SB3's for PPO).
  const optimizer = tf.train.adam(config.learningRate, 0.9, 0.999, 1e-5);
  const variables = [...policy.variables, ...valueFunction.variables];
  const obsNormalizer = config.normalizeObs ? (resume?.obsNormalizer ? RunningNormalizer.fromJSON(resume.obsNormalizer) : new RunningNormalizer({ dim: obsDim })) : null;
  const history: PpoIterationMetrics[] = resume ? [...resume.history] : [];
  let envSteps = resume?.envSteps ?? 0;
  let episodes = resume?.episodes ?? 0;
  let iteration = resume?.iteration ?? 0;
  const snapshot = (): PpoState => ({
    config,
    iteration,
    envSteps,
    episodes,
    policy: policy.getWeights(),
    valueFunction: valueFunction.variables.map((v) => Float32Array.from(v.dataSync())),
    optimizer: adamSnapshot(optimizer),
    obsNormalizer: obsNormalizer?.toJSON() ?? null,
    rng: rng.getState(),
    envs: source.getState(),
    history: [...history],
  });
  try {
    if (resume) {
      rng.setState(resume.rng);
      assignVariables('trainPpo', 'resume.valueFunction', valueFunction.variables, resume.valueFunction);
      if (obsNormalizer && obsNormalizer.count > 0) valueFunction.setObsNormalization(obsNormalizer.mean, obsNormalizer.std);
      await restoreAdam(optimizer, resume.optimizer, variables);
    }
    while (envSteps < config.steps) {
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
      iteration++;
      hooks.log?.(`ppo it ${metrics.iteration}: steps ${envSteps}, return ${metrics.meanReturn?.toFixed(1) ?? '-'}, kl ${metrics.approxKl.toExponential(2)}, clip ${metrics.clipFraction.toFixed(3)}`);
      await hooks.onIteration?.(metrics, policy);
      if (hooks.onCheckpoint) await hooks.onCheckpoint(snapshot());
    }
    return { config, policy, valueFunction, obsNormalizer, history, state: snapshot() };
  } finally {
    optimizer.dispose();
  }
}

/** The fields of tfjs's `AdamOptimizer` (4.x) that its public `getWeights`/`setWeights` do not carry exactly. */
interface AdamInternals {
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: { variable: tf.Variable }[];
  accumulatedSecondMoment: { variable: tf.Variable }[];
}

function adamInternals(optimizer: tf.AdamOptimizer): AdamInternals {
  const a = optimizer as unknown as Partial<AdamInternals>;
  if (!(a.accBeta1 instanceof tf.Variable) || !(a.accBeta2 instanceof tf.Variable) || !Array.isArray(a.accumulatedFirstMoment) || !Array.isArray(a.accumulatedSecondMoment)) {
    throw new Error(`trainPpo: this tfjs version's AdamOptimizer lacks accBeta1/accBeta2/accumulatedFirstMoment/accumulatedSecondMoment (written for tfjs 4.x; tfjs is ${tf.version.tfjs})`);
  }
  return a as AdamInternals;
}

/** Reads an Adam optimizer's state (plain arrays). */
export function adamSnapshot(optimizer: tf.AdamOptimizer): AdamSnapshot {
  const a = adamInternals(optimizer);
  const read = (list: { variable: tf.Variable }[]): Float32Array[] => list.map((x) => Float32Array.from(x.variable.dataSync()));
  return {
    iterations: optimizer.iterations,
    accBeta1: a.accBeta1.dataSync()[0],
    accBeta2: a.accBeta2.dataSync()[0],
    m: read(a.accumulatedFirstMoment),
    v: read(a.accumulatedSecondMoment),
  };
}

/**
 * Gives a fresh Adam optimizer the state of `adamSnapshot`, so that its next steps equal the
 * saved optimizer's. `setWeights` restores the moments and the step count but recomputes β₁ᵗ, β₂ᵗ
 * as powers, which round differently from the running products Adam keeps: those are set as saved.
 * @param variables what the optimizer updates, in the order of its moments
 * @throws ValidationError for moments that do not fit the variables
 */
export async function restoreAdam(optimizer: tf.AdamOptimizer, state: AdamSnapshot, variables: readonly tf.Variable[]): Promise<void> {
  const where = 'restoreAdam';
  checkInt(where, 'iterations', state?.iterations, 0);
  for (const key of ['m', 'v'] as const) {
    const list = state[key];
    if (!Array.isArray(list) || list.length !== variables.length) throw new ValidationError(where, key, `expected ${variables.length} arrays (one per variable), got ${describe(list)}`);
    list.forEach((x, i) => {
      if (x?.length !== variables[i].size) throw new ValidationError(where, `${key}[${i}]`, `expected ${variables[i].size} values, got ${describe(x)}`);
    });
  }
  for (const key of ['accBeta1', 'accBeta2'] as const) {
    if (!(state[key] > 0 && state[key] < 1)) throw new ValidationError(where, key, `expected a number in (0, 1), got ${describe(state[key])}`);
  }
  const named = [
    { name: 'iter', tensor: tf.scalar(state.iterations, 'int32') },
    ...state.m.map((x, i) => ({ name: `${variables[i].name}/m`, tensor: tf.tensor(x, variables[i].shape) })),
    ...state.v.map((x, i) => ({ name: `${variables[i].name}/v`, tensor: tf.tensor(x, variables[i].shape) })),
  ];
  await optimizer.setWeights(named);
  // The moment variables share the tensors' data (reference-counted): these handles can go.
  tf.dispose(named.map((n) => n.tensor));
  const a = adamInternals(optimizer);
  tf.tidy(() => {
    a.accBeta1.assign(tf.scalar(state.accBeta1));
    a.accBeta2.assign(tf.scalar(state.accBeta2));
  });
}
