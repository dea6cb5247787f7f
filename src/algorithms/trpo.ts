/**
 * Trust Region Policy Optimization (Schulman et al. 2015, https://arxiv.org/abs/1502.05477),
 * read top to bottom: config → the update's math (conjugate gradient on Fisher-vector products,
 * the step size from the KL bound, the backtracking line search) → the model-free loop.
 *
 * One update solves, around the current parameters θ_old (eq. 14 with the sample estimates of §5):
 *
 *   maximise_θ  L(θ) = mean_t [ π_θ(u_t|s_t) / π_old(u_t|s_t) · Â_t ]
 *   subject to  KL̄(θ) = mean_t KL(π_old(·|s_t) ‖ π_θ(·|s_t)) ≤ δ
 *
 * by a linear model of L and a quadratic model of KL̄ (Appendix C): g = ∇L(θ_old), F = ∇²KL̄(θ_old)
 * (the Fisher information), x = F⁻¹g by conjugate gradient using only products F·v, the largest
 * step along x inside the quadratic model β = √(2δ / xᵀFx), then a line search on
 * θ_old + 0.8^k β x that accepts the first point where KL̄ ≤ δ and L improved.
 *
 * `trustRegionStep` is the update for any differentiable surrogate and KL (MB-MPO's outer step
 * uses it with its meta-objective); `trpoStep` applies it to a `GaussianMlpPolicy` and a batch;
 * `trainTrpo` runs the model-free loop on real environments (our baseline), resumable exactly from
 * a `TrpoState` (the environments through `ResumableEnvSource`, which PPO shares).
 */
import * as tf from '@tensorflow/tfjs';
import type { Env, PhysicsParams } from '../core/env.js';
import { ValidationError, checkFiniteVector, describe } from '../core/errors.js';
import { Rng, type RngState } from '../core/rng.js';
import { expHo } from '../core/tfMath.js';
import { RunningNormalizer, type RunningNormalizerJSON } from '../data/normalizer.js';
import { envSpec } from '../envs/registry.js';
import { VecEnv } from '../envs/vecEnv.js';
import type { Baseline } from '../policies/baseline.js';
import { gaussianKl } from '../policies/diagGaussian.js';
import { GaussianMlpPolicy, makePolicySpec, policyForward, type PolicyActivation, type PolicyWeights } from '../policies/gaussianMlpPolicy.js';
import { LinearFeatureBaseline } from '../policies/linearFeatureBaseline.js';
import { MlpValueFunction, makeValueFunctionConfig, type MlpValueFunctionConfig } from '../policies/mlpValueFunction.js';
import {
  batchTensors,
  collectRollouts,
  disposeBatchTensors,
  dot,
  gae,
  meanOrNull,
  paramShapes,
  policyLogProb,
  readFlat,
  standardize,
  unflatten,
  valueAndFlatGrad,
  type RolloutSource,
  type RolloutStep,
  type SampleBatch,
} from './policyGradient.js';

// ---------------------------------------------------------------------------------------------
// Config

/** The trust-region update's settings (shared by TRPO, ME-TRPO and MB-MPO's outer step). */
export interface TrustRegionConfig {
  /** δ, the bound on the mean KL divergence per update. Default 0.01 (TRPO, rllab, ME-TRPO, MB-MPO). */
  maxKl: number;
  /** Conjugate-gradient iterations. Default 10 (TRPO's and rllab's). */
  cgIters: number;
  /**
   * Damping added to the Fisher matrix, F + c·I. Default 0.1 (Schulman's modular_rl, Spinning Up,
   * Stable-Baselines3). rllab uses 1e-5 with 50,000-sample batches; with the few thousand samples
   * of a model-free batch the Fisher estimate is noisier and 0.1 keeps CG's solution from blowing
   * up along poorly estimated directions (the line search keeps the KL bound either way).
   */
  cgDamping: number;
  /** CG stops when the residual's squared norm falls below this. Default 1e-10. */
  cgResidualTol: number;
  /** Shrink factor of the line search. Default 0.8 (rllab). */
  backtrackRatio: number;
  /** Line-search points tried (the full step first). Default 15 (rllab). */
  maxBacktracks: number;
  /**
   * Fisher-vector products use every k-th sample of the batch (OpenAI Baselines' TRPO uses 5;
   * rllab's `subsample_factor`): the products dominate an update's cost, and the Fisher matrix of a
   * small policy is well estimated from a fifth of a large batch. The surrogate, its gradient and
   * the line search's KL check always use the whole batch. Default 1 (no subsampling).
   */
  fisherSubsample: number;
}

/** Architecture of the learned policy (see `GaussianMlpPolicySpec`). */
export interface PolicyArchitecture {
  /** Default [32, 32] (rllab's GaussianMLPPolicy; ME-TRPO's and MB-MPO's). */
  hidden: number[];
  /** Default 'tanh'. */
  activation: PolicyActivation;
  /** Initial log σ in normalised action units (σ = 1 spans the bounds). Default 0. */
  initLogStd: number;
}

/** Configuration of a model-free TRPO run. */
export interface TrpoConfig extends TrustRegionConfig {
  /** Always `'trpo'`, so a saved run can be rebuilt from its JSON. */
  kind: 'trpo';
  /** Built-in task id (the caller builds the environments from `env`, `physics`, `maxEpisodeSteps`). */
  env: string;
  /** Seeds the environments' resets, the initial weights and the action noise. */
  seed: number;
  /** Environment steps in total. */
  steps: number;
  /** Environment steps per update (over all copies). Default 5000 (rllab's benchmarks, Duan et al. 2016). */
  batchSize: number;
  /** Environment copies stepped together (one policy call per lockstep step). Default 1. */
  numEnvs: number;
  /** Discount γ. Default 0.99. */
  gamma: number;
  /**
   * GAE λ. Default 0.97 (Schulman's modular_rl; the GAE paper's best values lie in 0.92–0.99);
   * rllab, ME-TRPO and MB-MPO use 1 (Monte-Carlo returns minus the baseline).
   */
  gaeLambda: number;
  /** Standardise advantages per batch (rllab's center_adv). Default true. */
  normalizeAdvantages: boolean;
  /** The policy network. */
  policy: PolicyArchitecture;
  /** 'linear': rllab's `LinearFeatureBaseline` (the original code's); 'mlp': `MlpValueFunction`. Default 'linear'. */
  baseline: 'linear' | 'mlp';
  /** The MLP value function, when `baseline` is 'mlp' (see `VALUE_FUNCTION_DEFAULTS`). */
  valueFunction: Partial<MlpValueFunctionConfig>;
  /**
   * Normalise the policy's (and the MLP value function's) inputs by the running mean and std of
   * all observations collected so far, updated between iterations. Default true.
   */
  normalizeObs: boolean;
  /** Physical variant of the environment. Default nominal. */
  physics: Partial<PhysicsParams>;
  /** Time limit per episode; null = the task's. */
  maxEpisodeSteps: number | null;
}

export const TRUST_REGION_DEFAULTS = {
  maxKl: 0.01,
  cgIters: 10,
  cgDamping: 0.1,
  cgResidualTol: 1e-10,
  backtrackRatio: 0.8,
  maxBacktracks: 15,
  fisherSubsample: 1,
} as const satisfies TrustRegionConfig;

/** TRPO's defaults (see `TrpoConfig` for sources). */
export const TRPO_DEFAULTS = {
  kind: 'trpo',
  env: 'Pendulum-v1',
  seed: 0,
  steps: 1_000_000,
  batchSize: 5000,
  numEnvs: 1,
  ...TRUST_REGION_DEFAULTS,
  gamma: 0.99,
  gaeLambda: 0.97,
  normalizeAdvantages: true,
  policy: { hidden: [32, 32], activation: 'tanh', initLogStd: 0 },
  baseline: 'linear',
  valueFunction: {},
  normalizeObs: true,
  physics: {},
  maxEpisodeSteps: null,
} as const satisfies TrpoConfig;

/**
 * Per-task overrides for CI-size runs on a 2-core machine (measured in
 * test/algorithms/policyLearning.test.ts; deterministic evaluation over 5 episodes).
 * - Pendulum-v1: γ = 0.95 (rl-zoo uses 0.9 here: the swing-up pays off within ~2 s, and γ = 0.99
 *   learned about half as fast — stochastic training return −745 vs −421 at 100k steps, seed 0);
 *   4 copies × 1000 steps per batch. 100k steps: evaluation −161/−184/−163/−107 (seeds 0–3).
 * - InvertedPendulum-v5: small batches (episodes are short until it balances): 2 × 500 steps.
 *   25k steps: evaluation 1000/1000/1000/244/1000/1000/1000/1000 (seeds 0–7).
 */
export const TRPO_ENV_OVERRIDES: Record<string, Partial<TrpoConfig>> = {
  'Pendulum-v1': { steps: 100_000, batchSize: 4000, numEnvs: 4, gamma: 0.95 },
  'InvertedPendulum-v5': { steps: 50_000, batchSize: 1000, numEnvs: 2 },
};

/** Overrides of a TRPO config (the policy architecture may be partial). */
export type TrpoOverrides = Partial<Omit<TrpoConfig, 'policy'>> & { policy?: Partial<PolicyArchitecture> };

/**
 * Merges per-task overrides and `overrides` into `TRPO_DEFAULTS` and validates.
 * @throws ValidationError naming the key, the value and what was expected
 */
export function makeTrpoConfig(overrides: TrpoOverrides = {}): TrpoConfig {
  const where = 'makeTrpoConfig';
  rejectUnknownKeys(where, overrides, TRPO_DEFAULTS);
  if (overrides.kind !== undefined && overrides.kind !== 'trpo') throw new ValidationError(where, 'kind', `expected 'trpo', got ${describe(overrides.kind)}`);
  const env = overrides.env ?? TRPO_DEFAULTS.env;
  const perEnv = TRPO_ENV_OVERRIDES[env] ?? {};
  const c: TrpoConfig = {
    ...TRPO_DEFAULTS,
    ...perEnv,
    ...overrides,
    kind: 'trpo',
    policy: { ...TRPO_DEFAULTS.policy, hidden: [...TRPO_DEFAULTS.policy.hidden], ...perEnv.policy, ...overrides.policy },
    valueFunction: { ...perEnv.valueFunction, ...overrides.valueFunction },
    physics: { ...overrides.physics },
  };
  envSpec(c.env);
  checkInt(where, 'seed', c.seed, 0);
  checkInt(where, 'steps', c.steps, 1);
  checkInt(where, 'batchSize', c.batchSize, 1);
  checkInt(where, 'numEnvs', c.numEnvs, 1);
  if (c.maxEpisodeSteps !== null) checkInt(where, 'maxEpisodeSteps', c.maxEpisodeSteps, 1);
  checkTrustRegionConfig(where, c);
  checkUnit(where, 'gamma', c.gamma);
  checkUnit(where, 'gaeLambda', c.gaeLambda);
  checkBool(where, 'normalizeAdvantages', c.normalizeAdvantages);
  checkBool(where, 'normalizeObs', c.normalizeObs);
  checkPolicyArchitecture(where, c.policy);
  if (c.baseline !== 'linear' && c.baseline !== 'mlp') throw new ValidationError(where, 'baseline', `expected 'linear' or 'mlp', got ${describe(c.baseline)}`);
  makeValueFunctionConfig(c.valueFunction);
  return c;
}

/** @throws ValidationError for an out-of-range trust-region setting */
export function checkTrustRegionConfig(where: string, c: TrustRegionConfig): void {
  if (!(c.maxKl > 0 && Number.isFinite(c.maxKl))) throw new ValidationError(where, 'maxKl', `expected a finite number > 0, got ${describe(c.maxKl)}`);
  checkInt(where, 'cgIters', c.cgIters, 1);
  if (!(c.cgDamping >= 0 && Number.isFinite(c.cgDamping))) throw new ValidationError(where, 'cgDamping', `expected a finite number ≥ 0, got ${describe(c.cgDamping)}`);
  if (!(c.cgResidualTol >= 0 && Number.isFinite(c.cgResidualTol))) throw new ValidationError(where, 'cgResidualTol', `expected a finite number ≥ 0, got ${describe(c.cgResidualTol)}`);
  if (!(c.backtrackRatio > 0 && c.backtrackRatio < 1)) throw new ValidationError(where, 'backtrackRatio', `expected a number in (0, 1), got ${describe(c.backtrackRatio)}`);
  checkInt(where, 'fisherSubsample', c.fisherSubsample, 1);
  checkInt(where, 'maxBacktracks', c.maxBacktracks, 1);
}

// ---------------------------------------------------------------------------------------------
// The update

/**
 * Conjugate gradient for A x = b with A symmetric positive definite, given only products A·v
 * (Hestenes & Stiefel 1952; TRPO Appendix C). Starts at x = 0; stops after `iters` iterations
 * or when ‖r‖² < `residualTol`. Pure (given a pure `Avp`), float64.
 *
 * @param Avp v ↦ A v
 * @param iters default 10
 * @param residualTol default 1e-10
 * @example
 * const x = conjugateGradient((v) => Float64Array.of(4 * v[0] + v[1], v[0] + 3 * v[1]), Float64Array.of(1, 2));
 */
export function conjugateGradient(Avp: (v: Float64Array) => ArrayLike<number>, b: ArrayLike<number>, iters = 10, residualTol = 1e-10): Float64Array {
  const n = b.length;
  const x = new Float64Array(n);
  const r = Float64Array.from(b);
  const p = Float64Array.from(b);
  let rr = dot(r, r);
  for (let i = 0; i < iters && rr >= residualTol; i++) {
    const z = Avp(p);
    const pz = dot(p, z);
    // Not positive along p (a broken product or an indefinite matrix): keep what we have.
    if (!(pz > 0)) break;
    const alpha = rr / pz;
    for (let k = 0; k < n; k++) {
      x[k] += alpha * p[k];
      r[k] -= alpha * z[k];
    }
    const rrNew = dot(r, r);
    const mu = rrNew / rr;
    for (let k = 0; k < n; k++) p[k] = r[k] + mu * p[k];
    rr = rrNew;
  }
  return x;
}

/**
 * The damped Fisher-vector product (F + c I) v with F = ∇²_θ KL̄(θ) at `params`, by
 * differentiating twice (Pearlmutter's trick): F v = ∇_θ [ (∇_θ KL̄(θ))ᵀ v ]. At the current
 * parameters the KL's Hessian equals the Fisher information of the policy (TRPO Appendix C.1).
 * `meanKl` must be differentiable twice: use `expHo`/`tanhHo` rather than tfjs's `exp`/`tanh`
 * (core/tfMath.ts).
 *
 * @param meanKl θ ↦ mean KL(π_old ‖ π_θ), with π_old held constant
 * @param params θ (tensors; not modified)
 * @param v the vector, in the flat layout of `params`
 * @param damping c ≥ 0
 */
export function fisherVectorProduct(meanKl: (params: readonly tf.Tensor[]) => tf.Scalar, params: readonly tf.Tensor[], v: ArrayLike<number>, damping: number): Float64Array {
  const shapes = paramShapes(params);
  const hv = tf.tidy(() => {
    const vs = unflatten(v, shapes);
    const gradDotV = (...p: tf.Tensor[]): tf.Scalar => {
      const g = tf.grads((...q: tf.Tensor[]) => meanKl(q))(p);
      return tf.addN(g.map((gi, i) => tf.sum(tf.mul(gi, vs[i])))) as tf.Scalar;
    };
    return tf.grads(gradDotV)([...params]);
  });
  const out = readFlat(hv);
  tf.dispose(hv);
  for (let k = 0; k < out.length; k++) out[k] += damping * v[k];
  return out;
}

/** A constrained policy update: a surrogate to maximise and the mean KL from the current policy. */
export interface TrustRegionProblem {
  /** θ_old (not modified). */
  params: readonly tf.Tensor[];
  /** θ ↦ L(θ), the surrogate advantage to maximise (a scalar tensor). */
  surrogate: (params: readonly tf.Tensor[]) => tf.Scalar;
  /** θ ↦ mean KL(π_old ‖ π_θ): zero, with zero gradient, at θ_old; differentiable twice. */
  meanKl: (params: readonly tf.Tensor[]) => tf.Scalar;
  /** The same KL on a subsample, for the Fisher-vector products only (default `meanKl`). */
  fisherKl?: (params: readonly tf.Tensor[]) => tf.Scalar;
}

/** What one trust-region update did. */
export interface TrpoStepStats {
  /** Whether a line-search point met both conditions (else the parameters are unchanged). */
  accepted: boolean;
  /** Shrinks before the accepted point (0: the full step); `maxBacktracks` when none was accepted. */
  backtracks: number;
  surrogateBefore: number;
  /** L at the new parameters (= before when rejected). */
  surrogateAfter: number;
  /** Mean KL between the old and the new policy (0 when rejected). */
  klAfter: number;
  /** gᵀ(βx): the improvement the linear model predicts for the full step. */
  expectedImprovement: number;
  /** ‖g‖ */
  gradNorm: number;
}

/**
 * One TRPO update on an arbitrary problem (see the file comment for the math).
 * @returns the new parameters (flat, `params`' layout; θ_old when rejected) and what happened
 */
export function trustRegionStep(problem: TrustRegionProblem, config: TrustRegionConfig): { params: Float32Array; stats: TrpoStepStats } {
  const { params, surrogate, meanKl } = problem;
  const shapes = paramShapes(params);
  const theta0 = readFlat(params);
  const { value: surrogateBefore, grad: g } = valueAndFlatGrad(surrogate, params);
  const gradNorm = Math.sqrt(dot(g, g));
  const rejected = (expectedImprovement: number): { params: Float32Array; stats: TrpoStepStats } => ({
    params: Float32Array.from(theta0),
    stats: { accepted: false, backtracks: config.maxBacktracks, surrogateBefore, surrogateAfter: surrogateBefore, klAfter: 0, expectedImprovement, gradNorm },
  });
  if (!(gradNorm > 0) || !Number.isFinite(surrogateBefore)) return rejected(0);

  // Natural gradient direction x ≈ F⁻¹ g, and the step β x that reaches ½ βx ᵀ F βx = δ.
  const Fv = (v: Float64Array): Float64Array => fisherVectorProduct(problem.fisherKl ?? meanKl, params, v, config.cgDamping);
  const x = conjugateGradient(Fv, g, config.cgIters, config.cgResidualTol);
  const xFx = dot(x, Fv(x));
  if (!(xFx > 0) || !Number.isFinite(xFx)) return rejected(0);
  const beta = Math.sqrt((2 * config.maxKl) / xFx);
  const expectedImprovement = beta * dot(g, x);

  // Backtracking line search: the first of β x, 0.8 β x, 0.8² β x, … with KL ≤ δ and L improved.
  const candidate = new Float32Array(theta0.length);
  for (let k = 0; k < config.maxBacktracks; k++) {
    const frac = beta * config.backtrackRatio ** k;
    for (let i = 0; i < candidate.length; i++) candidate[i] = theta0[i] + frac * x[i];
    const [lT, klT] = tf.tidy(() => {
      const p = unflatten(candidate, shapes);
      return [surrogate(p), meanKl(p)];
    });
    const L = lT.dataSync()[0];
    const kl = klT.dataSync()[0];
    tf.dispose([lT, klT]);
    if (Number.isFinite(L) && Number.isFinite(kl) && kl <= config.maxKl && L > surrogateBefore) {
      return {
        params: Float32Array.from(candidate),
        stats: { accepted: true, backtracks: k, surrogateBefore, surrogateAfter: L, klAfter: kl, expectedImprovement, gradNorm },
      };
    }
  }
  return rejected(expectedImprovement);
}

/**
 * One TRPO update of a Gaussian policy on a batch it collected: the importance-sampled surrogate
 * L(θ) = mean_t exp(log π_θ(u_t|s_t) − log π_old(u_t|s_t)) Â_t (π_old: the batch's means and
 * log-stds) under the bound mean_t KL(π_θold(·|s_t) ‖ π_θ(·|s_t)) ≤ δ. Sets the policy's
 * parameters when the line search accepts. Observations are normalised by the policy's
 * current normalisation, so keep it fixed between collecting the batch and this update.
 *
 * @param advantages Â_t, one per sample (standardised or not, as the caller chooses)
 * @example
 * const { advantages } = gae(batch.rewards, v, vNext, batch.terminated, batch.truncated, 0.99, 0.97);
 * const stats = trpoStep(policy, batch, standardize(advantages), TRUST_REGION_DEFAULTS);
 */
export function trpoStep(policy: GaussianMlpPolicy, batch: SampleBatch, advantages: ArrayLike<number>, config: TrustRegionConfig): TrpoStepStats {
  const spec = policy.spec;
  const t = batchTensors(batch, (o) => policy.normalizeObs(o), advantages);
  // π_θold on the batch, held constant: the reference of the KL (and of the Fisher matrix).
  const old = tf.tidy(() => {
    const d = policyForward(spec, policy.variables, t.obsNorm);
    // A copy: in parameter mode logStd is the policy's variable itself.
    return { mean: d.mean, logStd: tf.clone(d.logStd) };
  });
  // Every k-th sample for the Fisher-vector products (see `fisherSubsample`).
  const k = config.fisherSubsample;
  const sub =
    k > 1 && batch.size >= 2 * k
      ? tf.tidy(() => {
          const idx = tf.tensor1d(Int32Array.from({ length: Math.ceil(batch.size / k) }, (_, i) => i * k), 'int32');
          return { obsNorm: tf.gather(t.obsNorm, idx), mean: tf.gather(old.mean, idx), logStd: old.logStd.rank === 2 ? tf.gather(old.logStd, idx) : tf.clone(old.logStd) };
        })
      : null;
  try {
    const result = trustRegionStep(
      {
        params: policy.variables,
        surrogate: (p) => tf.mean(tf.mul(expHo(tf.sub(policyLogProb(spec, p, t.obsNorm, t.u), t.oldLogProb)), t.advantages)) as tf.Scalar,
        meanKl: (p) => {
          const d = policyForward(spec, p, t.obsNorm);
          return tf.mean(gaussianKl(old.mean, old.logStd, d.mean, d.logStd)) as tf.Scalar;
        },
        ...(sub
          ? {
              fisherKl: (p: readonly tf.Tensor[]) => {
                const d = policyForward(spec, p, sub.obsNorm);
                return tf.mean(gaussianKl(sub.mean, sub.logStd, d.mean, d.logStd)) as tf.Scalar;
              },
            }
          : {}),
      },
      config,
    );
    if (result.stats.accepted) policy.setFlatParams(result.params);
    return result.stats;
  } finally {
    tf.dispose([old.mean, old.logStd]);
    if (sub) tf.dispose([sub.obsNorm, sub.mean, sub.logStd]);
    disposeBatchTensors(t);
  }
}

// ---------------------------------------------------------------------------------------------
// The model-free loop

/** What one iteration reports. */
export interface TrpoIterationMetrics extends TrpoStepStats {
  iteration: number;
  /** Environment steps so far, this batch included. */
  envSteps: number;
  /** Episodes ended so far. */
  episodes: number;
  /** Mean undiscounted return of the episodes that ended in this batch (null if none). */
  meanReturn: number | null;
  meanLength: number | null;
  /** The baseline's mean squared error on this batch's targets before its fit. */
  baselineMse: number;
  /** Mean log σ of the policy after the update. */
  meanLogStd: number;
  seconds: number;
}

/**
 * Everything needed to continue a TRPO run exactly where it stopped (a checkpoint's content):
 * `trainTrpo(config, envs, hooks, state)` then produces what the uninterrupted run would have.
 */
export interface TrpoState {
  config: TrpoConfig;
  /** Iterations done (the next one's index). */
  iteration: number;
  envSteps: number;
  episodes: number;
  /** The policy's weights, with its observation normalisation. */
  policy: PolicyWeights;
  baseline: BaselineState;
  /** The running observation statistics (null without `normalizeObs`). */
  obsNormalizer: RunningNormalizerJSON | null;
  /** The generator of the action noise. */
  rng: RngState;
  /** Where the environment copies stand (mid-episode copies are rebuilt by replaying their actions). */
  envs: EnvSourceState;
  history: TrpoIterationMetrics[];
}

/** Hooks of `trainTrpo`. */
export interface TrpoHooks {
  /** After every iteration (awaited). */
  onIteration?: (metrics: TrpoIterationMetrics, policy: GaussianMlpPolicy) => Promise<void> | void;
  /** After every iteration and `onIteration`, the state to checkpoint (awaited; built only when this hook is given). */
  onCheckpoint?: (state: TrpoState) => Promise<void> | void;
  log?: (line: string) => void;
}

/** What `trainTrpo` returns; the caller owns (and disposes) the policy and baseline. */
export interface TrpoResult {
  config: TrpoConfig;
  policy: GaussianMlpPolicy;
  baseline: Baseline;
  /** The running observation statistics (null without `normalizeObs`). */
  obsNormalizer: RunningNormalizer | null;
  history: TrpoIterationMetrics[];
  /** The final state (to continue the run with a larger `steps`). */
  state: TrpoState;
}

/**
 * Model-free TRPO on real environments: collect `batchSize` steps → baseline values → GAE →
 * `trpoStep` → fit the baseline on the λ-returns → update the observation normalisation.
 * Deterministic for a seed; a run resumed from a `TrpoState` continues exactly as the
 * uninterrupted run (with the MLP baseline, up to its Adam moments: see `restoreBaseline`).
 *
 * @param env `config.numEnvs` copies of the environment, made by the caller (`makeEnvCopies`);
 *   when resuming, fresh copies (they are rebuilt from `resume.envs`)
 * @param resume a state from `onCheckpoint` or a result; its config must equal `config`
 * @example
 * const config = makeTrpoConfig({ env: 'InvertedPendulum-v5', steps: 50_000 });
 * const { policy, history } = await trainTrpo(config, await makeEnvCopies(config));
 */
export async function trainTrpo(config: TrpoConfig, env: Env | readonly Env[], hooks: TrpoHooks = {}, resume?: TrpoState): Promise<TrpoResult> {
  const envs: readonly Env[] = Array.isArray(env) ? (env as readonly Env[]) : [env as Env];
  if (envs.length !== config.numEnvs) throw new ValidationError('trainTrpo', 'env', `expected ${config.numEnvs} environment copies (config.numEnvs), got ${envs.length}`);
  checkResumeConfig('trainTrpo', config, resume);
  // First: rebuilding the environments from a state can fail, before anything needs disposing.
  const source = new ResumableEnvSource(envs, { seed: config.seed, ...(resume ? { state: resume.envs } : {}) });
  const first = envs[0];
  const obsDim = first.observationSpace.dim;
  const rng = new Rng(config.seed);
  const spec = makePolicySpec({ obsDim, actionSpace: first.actionSpace, ...config.policy });
  const policy = new GaussianMlpPolicy(spec, resume ? { weights: resume.policy } : { rng: new Rng(config.seed, 1) });
  // The MLP baseline's generator (initial weights, then minibatch order) is kept to be saved.
  const baselineRng = new Rng(config.seed, 2);
  const baseline: Baseline =
    config.baseline === 'linear' ? new ResumableLinearBaseline({ obsDim }) : new MlpValueFunction({ obsDim, config: config.valueFunction, rng: baselineRng });
  const obsNormalizer = config.normalizeObs ? (resume?.obsNormalizer ? RunningNormalizer.fromJSON(resume.obsNormalizer) : new RunningNormalizer({ dim: obsDim })) : null;
  const history: TrpoIterationMetrics[] = resume ? [...resume.history] : [];
  let envSteps = resume?.envSteps ?? 0;
  let episodes = resume?.episodes ?? 0;
  let iteration = resume?.iteration ?? 0;
  if (resume) {
    rng.setState(resume.rng);
    restoreBaseline(baseline, resume.baseline, baselineRng, hooks.log);
    if (obsNormalizer && obsNormalizer.count > 0) baseline.setObsNormalization?.(obsNormalizer.mean, obsNormalizer.std);
  }
  const snapshot = (): TrpoState => ({
    config,
    iteration,
    envSteps,
    episodes,
    policy: policy.getWeights(),
    baseline: baselineState(baseline, baselineRng),
    obsNormalizer: obsNormalizer?.toJSON() ?? null,
    rng: rng.getState(),
    envs: source.getState(),
    history: [...history],
  });
  while (envSteps < config.steps) {
    const start = performance.now();
    const batch = await collectRollouts(source, policy, rng, { steps: Math.min(config.batchSize, config.steps - envSteps) });
    envSteps += batch.size;
    episodes += batch.episodeReturns.length;

    // Advantages Â (GAE) from the baseline fitted on earlier batches, then refit it on this one.
    const { advantages, returns } = advantagesOf(batch, baseline, config.gamma, config.gaeLambda);
    const stats = trpoStep(policy, batch, config.normalizeAdvantages ? standardize(advantages) : advantages, config);
    const baselineMse = baseline.fit(batch.obs, batch.timesteps, returns, batch.size);

    if (obsNormalizer) {
      obsNormalizer.updateBatch(batch.obs, batch.size);
      policy.setObsNormalization(obsNormalizer.mean, obsNormalizer.std);
      baseline.setObsNormalization?.(obsNormalizer.mean, obsNormalizer.std);
    }
    const metrics: TrpoIterationMetrics = {
      iteration,
      envSteps,
      episodes,
      meanReturn: meanOrNull(batch.episodeReturns),
      meanLength: meanOrNull(batch.episodeLengths),
      baselineMse,
      meanLogStd: meanLogStd(policy),
      seconds: (performance.now() - start) / 1000,
      ...stats,
    };
    history.push(metrics);
    iteration++;
    hooks.log?.(
      `trpo it ${metrics.iteration}: steps ${envSteps}, return ${metrics.meanReturn?.toFixed(1) ?? '-'}, kl ${stats.klAfter.toExponential(2)}, backtracks ${stats.backtracks}${stats.accepted ? '' : ' (rejected)'}`,
    );
    await hooks.onIteration?.(metrics, policy);
    if (hooks.onCheckpoint) await hooks.onCheckpoint(snapshot());
  }
  return { config, policy, baseline, obsNormalizer, history, state: snapshot() };
}

/**
 * GAE advantages and λ-returns of a batch under a baseline: V(s_t) and V(s_{t+1}) (at time t+1)
 * from `baseline.predict`, then `gae`.
 */
export function advantagesOf(batch: SampleBatch, baseline: Baseline, gamma: number, lambda: number): { advantages: Float64Array; returns: Float64Array; values: Float64Array } {
  const values = baseline.predict(batch.obs, batch.timesteps, batch.size);
  const nextValues = baseline.predict(
    batch.nextObs,
    batch.timesteps.map((t) => t + 1),
    batch.size,
  );
  return { ...gae(batch.rewards, values, nextValues, batch.terminated, batch.truncated, gamma, lambda), values };
}

/** Mean of the policy's state-independent log σ (0 for a state-dependent one). */
export function meanLogStd(policy: GaussianMlpPolicy): number {
  if (policy.spec.stdMode !== 'parameter') return 0;
  const ls = Array.from(policy.variables[policy.variables.length - 1].dataSync());
  return ls.reduce((a, b) => a + b, 0) / ls.length;
}

// ---------------------------------------------------------------------------------------------
// Resumable state (shared with ppo.ts)

/**
 * Where the environment copies of a `ResumableEnvSource` stand, as JSON. An environment's
 * internals (its generator, a MuJoCo state) cannot be read through `Env`, so they are rebuilt by
 * replay: copy i is reset with `seed + i`, reset `resets[i]` more times (the episodes it finished:
 * resets draw only from the environment's own generator), then stepped through `actions[i]`, the
 * actions of its unfinished episode. Observation noise draws at every step, so with noise no
 * episode is skipped: `resets` stays 0 and `actions` holds every action since the seeded reset
 * (the state then grows with the run).
 */
export interface EnvSourceState {
  /** Reset seed of copy 0 (copy i: seed + i). */
  seed: number;
  /** Per copy: resets after the seeded one that the replay repeats without their steps. */
  resets: number[];
  /** Per copy: the actions the replay steps through after those resets, flat [steps × actDim]. */
  actions: number[][];
  /** The observations the next step starts from [numEnvs × obsDim]; the replay must reproduce them exactly. */
  obs: number[];
  /** Steps so far in each copy's current episode. */
  timesteps: number[];
  /** Undiscounted return so far of each copy's current episode. */
  returns: number[];
}

/**
 * Real environments as a `RolloutSource` whose position can be saved (`getState`) and restored
 * (the `state` option) exactly. Steps as `EnvRolloutSource` does — copy i reset with `seed + i`
 * once, same-step autoreset, later episodes continuing each copy's own generator — so a fresh
 * source yields the same samples. The environments stay the caller's (no `close`).
 *
 * @throws ValidationError when a state does not fit the environments, or when its replay does
 *   not reproduce the saved observations (environments that are not the saved run's, or not
 *   deterministic given their seed and actions)
 * @example
 * const source = new ResumableEnvSource(envs, { seed: 0 });
 * await collectRollouts(source, policy, rng, { steps: 1000 });
 * const again = new ResumableEnvSource(freshEnvs, { seed: 0, state: source.getState() });
 */
export class ResumableEnvSource implements RolloutSource {
  readonly numEnvs: number;
  readonly obsDim: number;
  readonly actDim: number;
  readonly #vec: VecEnv;
  readonly #seed: number;
  /** Keep every action (observation noise: see `EnvSourceState`). */
  readonly #keepAll: boolean;
  #obs: Float64Array;
  readonly #nextObs: Float64Array;
  readonly #timesteps: Float64Array;
  readonly #returns: Float64Array;
  readonly #resets: number[];
  readonly #actions: number[][];

  constructor(envs: readonly Env[], options: { seed: number; state?: EnvSourceState }) {
    this.#vec = new VecEnv([...envs]);
    const n = this.#vec.numEnvs;
    this.numEnvs = n;
    this.obsDim = this.#vec.obsDim;
    this.actDim = this.#vec.actDim;
    this.#seed = options.seed;
    this.#keepAll = envs.some((e) => e.physics.obsNoiseStd > 0);
    this.#nextObs = new Float64Array(n * this.obsDim);
    const state = options.state;
    if (state === undefined) {
      this.#obs = this.#vec.reset({ seed: options.seed });
      this.#timesteps = new Float64Array(n);
      this.#returns = new Float64Array(n);
      this.#resets = new Array<number>(n).fill(0);
      this.#actions = Array.from({ length: n }, () => []);
    } else {
      this.#checkState(state);
      this.#obs = this.#replay(envs, state);
      this.#timesteps = Float64Array.from(state.timesteps);
      this.#returns = Float64Array.from(state.returns);
      this.#resets = [...state.resets];
      this.#actions = state.actions.map((a) => [...a]);
    }
  }

  get obs(): Float64Array {
    return this.#obs;
  }
  get timesteps(): Float64Array {
    return this.#timesteps;
  }
  get episodeReturns(): Float64Array {
    return this.#returns;
  }

  step(actions: Float64Array): RolloutStep {
    const r = this.#vec.step(actions);
    const D = this.obsDim;
    const A = this.actDim;
    for (let i = 0; i < this.numEnvs; i++) {
      const final = r.finalObs[i];
      this.#nextObs.set(final ?? r.obs.subarray(i * D, (i + 1) * D), i * D);
      if (final && !this.#keepAll) {
        this.#resets[i] += 1;
        this.#actions[i].length = 0;
      } else {
        for (let j = 0; j < A; j++) this.#actions[i].push(actions[i * A + j]);
      }
      if (final) {
        this.#timesteps[i] = 0;
        this.#returns[i] = 0;
      } else {
        this.#timesteps[i] += 1;
        this.#returns[i] += r.rewards[i];
      }
    }
    this.#obs = r.obs;
    return { nextObs: this.#nextObs, rewards: r.rewards, terminated: r.terminated, truncated: r.truncated };
  }

  /** Where the copies stand (a copy, JSON-ready). */
  getState(): EnvSourceState {
    return {
      seed: this.#seed,
      resets: [...this.#resets],
      actions: this.#actions.map((a) => [...a]),
      obs: Array.from(this.#obs),
      timesteps: Array.from(this.#timesteps),
      returns: Array.from(this.#returns),
    };
  }

  #checkState(s: EnvSourceState): void {
    const where = 'ResumableEnvSource';
    const n = this.numEnvs;
    if (s?.seed !== this.#seed) throw new ValidationError(where, 'state.seed', `expected ${this.#seed} (this run's seed), got ${describe(s?.seed)}`);
    const list = (key: 'resets' | 'actions' | 'timesteps' | 'returns' | 'obs', len: number): void => {
      if (!Array.isArray(s[key]) || s[key].length !== len) throw new ValidationError(where, `state.${key}`, `expected an array of ${len} entries, got ${describe(s[key])}`);
    };
    list('resets', n);
    list('actions', n);
    list('timesteps', n);
    list('returns', n);
    list('obs', n * this.obsDim);
    for (let i = 0; i < n; i++) {
      checkInt(where, `state.resets[${i}]`, s.resets[i], 0);
      checkInt(where, `state.timesteps[${i}]`, s.timesteps[i], 0);
      const a = s.actions[i];
      if (!Array.isArray(a) || a.length % this.actDim !== 0) throw new ValidationError(where, `state.actions[${i}]`, `expected whole actions of ${this.actDim} values, got ${describe(a)}`);
    }
  }

  /** Rebuilds every copy from the state (see `EnvSourceState`); returns the observations reached. */
  #replay(envs: readonly Env[], s: EnvSourceState): Float64Array {
    const D = this.obsDim;
    const A = this.actDim;
    const out = new Float64Array(this.numEnvs * D);
    envs.forEach((env, i) => {
      let obs = env.reset({ seed: s.seed + i }).obs;
      for (let k = 0; k < s.resets[i]; k++) obs = env.reset().obs;
      const a = s.actions[i];
      for (let t = 0; t < a.length; t += A) {
        const r = env.step(a.slice(t, t + A));
        obs = r.terminated || r.truncated ? env.reset().obs : r.obs;
      }
      out.set(obs, i * D);
      for (let d = 0; d < D; d++) {
        if (out[i * D + d] !== s.obs[i * D + d]) {
          throw new ValidationError(
            'ResumableEnvSource',
            `state.obs[${i * D + d}]`,
            `replaying copy ${i} (seed ${s.seed + i}, ${s.resets[i]} resets, ${a.length / A} actions) gave ${out[i * D + d]}, expected the saved ${s.obs[i * D + d]}: ` +
              'the environment is not the one the state was saved from (task, physics, time limit) or not deterministic given its seed and actions',
          );
        }
      }
    });
    return out;
  }
}

/** A baseline's part of a `TrpoState`: the linear baseline's coefficients, or the MLP value function's weights and generator. */
export type BaselineState = { kind: 'linear'; coeffs: number[] | null } | { kind: 'mlp'; weights: Float32Array[]; rng: RngState };

/**
 * rllab's `LinearFeatureBaseline` whose fitted coefficients can be restored (the class keeps
 * them private): restored coefficients serve `predict` until the next successful fit.
 */
class ResumableLinearBaseline extends LinearFeatureBaseline {
  #restored: Float64Array | null = null;

  /** @throws ValidationError for a wrong length or a non-finite coefficient */
  restore(coeffs: readonly number[] | null): void {
    if (coeffs === null) {
      this.#restored = null;
      return;
    }
    checkFiniteVector(coeffs, this.numFeatures, 'trainTrpo', 'resume.baseline.coeffs');
    this.#restored = Float64Array.from(coeffs);
  }

  override get coeffs(): Float64Array | null {
    return this.#restored ? Float64Array.from(this.#restored) : super.coeffs;
  }

  override predict(obs: ArrayLike<number>, timesteps: ArrayLike<number>, n: number): Float64Array {
    const w = this.#restored;
    if (w === null) return super.predict(obs, timesteps, n);
    // LinearFeatureBaseline.predict's arithmetic, with the restored weights.
    const F = this.numFeatures;
    const phi = this.features(obs, timesteps, n);
    const out = new Float64Array(n);
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let k = 0; k < F; k++) s += phi[r * F + k] * w[k];
      out[r] = s;
    }
    return out;
  }

  override fit(obs: ArrayLike<number>, timesteps: ArrayLike<number>, targets: ArrayLike<number>, n: number): number {
    const mse = super.fit(obs, timesteps, targets, n);
    // A fit that fails every ridge retry keeps the last good weights: here the restored ones.
    if (super.coeffs !== null) this.#restored = null;
    return mse;
  }
}

function baselineState(baseline: Baseline, rng: Rng): BaselineState {
  if (baseline instanceof ResumableLinearBaseline) {
    const c = baseline.coeffs;
    return { kind: 'linear', coeffs: c ? Array.from(c) : null };
  }
  return { kind: 'mlp', weights: (baseline as MlpValueFunction).variables.map((v) => Float32Array.from(v.dataSync())), rng: rng.getState() };
}

/**
 * Restores a baseline from its `BaselineState`. The MLP value function keeps its Adam optimizer
 * private, so its moments start afresh: from its first fit after resuming, such a run can differ
 * slightly from the uninterrupted one (the linear baseline, the default, resumes exactly).
 */
function restoreBaseline(baseline: Baseline, state: BaselineState, rng: Rng, log: ((line: string) => void) | undefined): void {
  const where = 'trainTrpo';
  if (baseline instanceof ResumableLinearBaseline) {
    if (state?.kind !== 'linear') throw new ValidationError(where, 'resume.baseline.kind', `expected 'linear' (config.baseline), got ${describe(state?.kind)}`);
    baseline.restore(state.coeffs);
    return;
  }
  if (state?.kind !== 'mlp') throw new ValidationError(where, 'resume.baseline.kind', `expected 'mlp' (config.baseline), got ${describe(state?.kind)}`);
  assignVariables(where, 'resume.baseline.weights', (baseline as MlpValueFunction).variables, state.weights);
  rng.setState(state.rng);
  log?.('trpo: resumed the MLP baseline from its weights; its Adam moments start afresh (MlpValueFunction keeps them private), so the run may differ slightly from an uninterrupted one');
}

/**
 * Assigns saved values to variables of the same sizes.
 * @throws ValidationError naming the entry whose size does not match
 */
export function assignVariables(where: string, field: string, variables: readonly tf.Variable[], values: readonly ArrayLike<number>[]): void {
  if (!Array.isArray(values) || values.length !== variables.length) throw new ValidationError(where, field, `expected ${variables.length} arrays, got ${describe(values)}`);
  variables.forEach((v, i) => {
    if (values[i]?.length !== v.size) throw new ValidationError(where, `${field}[${i}]`, `expected ${v.size} values (shape ${JSON.stringify(v.shape)}), got ${describe(values[i])}`);
  });
  tf.tidy(() => variables.forEach((v, i) => v.assign(tf.tensor(Float32Array.from(values[i]), v.shape))));
}

/** @throws ValidationError when a resumed state's config is not this run's */
export function checkResumeConfig(where: string, config: object, resume: { config: object } | undefined): void {
  if (resume && JSON.stringify(resume.config) !== JSON.stringify(config)) {
    throw new ValidationError(where, 'resume.config', "differs from the config of this run; resume with the checkpoint's own config (only steps may change, in both)");
  }
}

// ---------------------------------------------------------------------------------------------
// Validation helpers (shared with ppo.ts)

export function rejectUnknownKeys(where: string, overrides: object, defaults: object): void {
  for (const key of Object.keys(overrides)) {
    if (!(key in defaults)) throw new ValidationError(where, key, `unknown key; expected one of ${Object.keys(defaults).join(', ')}`);
  }
}

export function checkInt(where: string, key: string, v: unknown, min: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new ValidationError(where, key, `expected an integer ≥ ${min}, got ${describe(v)}`);
}

export function checkUnit(where: string, key: string, v: unknown): void {
  if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw new ValidationError(where, key, `expected a number in [0, 1], got ${describe(v)}`);
}

export function checkBool(where: string, key: string, v: unknown): void {
  if (typeof v !== 'boolean') throw new ValidationError(where, key, `expected a boolean, got ${describe(v)}`);
}

export function checkPolicyArchitecture(where: string, p: PolicyArchitecture): void {
  const keys = ['hidden', 'activation', 'initLogStd'];
  for (const key of Object.keys(p)) if (!keys.includes(key)) throw new ValidationError(where, `policy.${key}`, `unknown key; expected one of ${keys.join(', ')}`);
  if (!Array.isArray(p.hidden) || !p.hidden.every((h) => Number.isInteger(h) && h > 0)) throw new ValidationError(where, 'policy.hidden', `expected an array of positive integers, got ${describe(p.hidden)}`);
  if (p.activation !== 'tanh' && p.activation !== 'relu') throw new ValidationError(where, 'policy.activation', `expected 'tanh' or 'relu', got ${describe(p.activation)}`);
  if (!Number.isFinite(p.initLogStd)) throw new ValidationError(where, 'policy.initLogStd', `expected a finite number, got ${describe(p.initLogStd)}`);
}
