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
 * `trainTrpo` runs the model-free loop on real environments (our baseline).
 */
import * as tf from '@tensorflow/tfjs';
import type { Env, PhysicsParams } from '../core/env.js';
import { ValidationError, describe } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { expHo } from '../core/tfMath.js';
import { RunningNormalizer } from '../data/normalizer.js';
import { envSpec } from '../envs/registry.js';
import type { Baseline } from '../policies/baseline.js';
import { gaussianKl } from '../policies/diagGaussian.js';
import { GaussianMlpPolicy, makePolicySpec, policyForward, type PolicyActivation } from '../policies/gaussianMlpPolicy.js';
import { LinearFeatureBaseline } from '../policies/linearFeatureBaseline.js';
import { MlpValueFunction, makeValueFunctionConfig, type MlpValueFunctionConfig } from '../policies/mlpValueFunction.js';
import {
  EnvRolloutSource,
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

/** Hooks of `trainTrpo`. */
export interface TrpoHooks {
  /** After every iteration (awaited). */
  onIteration?: (metrics: TrpoIterationMetrics, policy: GaussianMlpPolicy) => Promise<void> | void;
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
}

/**
 * Model-free TRPO on real environments: collect `batchSize` steps → baseline values → GAE →
 * `trpoStep` → fit the baseline on the λ-returns → update the observation normalisation.
 * Deterministic for a seed.
 *
 * @param env `config.numEnvs` copies of the environment, made by the caller (`makeEnvCopies`)
 * @example
 * const config = makeTrpoConfig({ env: 'InvertedPendulum-v5', steps: 50_000 });
 * const { policy, history } = await trainTrpo(config, await makeEnvCopies(config));
 */
export async function trainTrpo(config: TrpoConfig, env: Env | readonly Env[], hooks: TrpoHooks = {}): Promise<TrpoResult> {
  const envs: readonly Env[] = Array.isArray(env) ? (env as readonly Env[]) : [env as Env];
  if (envs.length !== config.numEnvs) throw new ValidationError('trainTrpo', 'env', `expected ${config.numEnvs} environment copies (config.numEnvs), got ${envs.length}`);
  const first = envs[0];
  const obsDim = first.observationSpace.dim;
  const rng = new Rng(config.seed);
  const policy = new GaussianMlpPolicy(makePolicySpec({ obsDim, actionSpace: first.actionSpace, ...config.policy }), { rng: new Rng(config.seed, 1) });
  const baseline: Baseline =
    config.baseline === 'linear' ? new LinearFeatureBaseline({ obsDim }) : new MlpValueFunction({ obsDim, config: config.valueFunction, rng: new Rng(config.seed, 2) });
  const obsNormalizer = config.normalizeObs ? new RunningNormalizer({ dim: obsDim }) : null;
  const source = new EnvRolloutSource(envs, { seed: config.seed });
  const history: TrpoIterationMetrics[] = [];
  let envSteps = 0;
  let episodes = 0;
  for (let iteration = 0; envSteps < config.steps; iteration++) {
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
    hooks.log?.(
      `trpo it ${iteration}: steps ${envSteps}, return ${metrics.meanReturn?.toFixed(1) ?? '-'}, kl ${stats.klAfter.toExponential(2)}, backtracks ${stats.backtracks}${stats.accepted ? '' : ' (rejected)'}`,
    );
    await hooks.onIteration?.(metrics, policy);
  }
  return { config, policy, baseline, obsNormalizer, history };
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
