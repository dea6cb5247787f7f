/**
 * Soft Actor-Critic with automatic entropy tuning (Haarnoja et al. 2018, "Soft Actor-Critic
 * Algorithms and Applications", https://arxiv.org/abs/1812.05905), read top to bottom:
 * config → the losses (pure functions) → `SacAgent`, which owns the networks and does one update
 * on any batch of transitions → `trainSac`, the model-free loop. MBPO and MOPO reuse `SacAgent`
 * on batches that mix real and model transitions.
 *
 * Networks: a squashed Gaussian policy π_φ (a = tanh(u), u ~ N(μ_φ(s), σ_φ(s)²), in normalised
 * action units −1 … 1; the environment gets mid + half · a), twin critics Q_θ1, Q_θ2 with target
 * copies Q_θ̄1, Q_θ̄2, and the temperature α = exp(log α). One update on a batch (s, a, r, s', d)
 * with d the `terminated` flag (a time-limit truncation is not terminal: it bootstraps):
 *
 *   y        = r + γ (1 − d) ( min_i Q_θ̄i(s', a') − α log π_φ(a'|s') ),   a' ~ π_φ(·|s')   (§4.1–4.2)
 *   J_Q(θ)   = ½ Σ_i mean (Q_θi(s, a) − y)²                                                (§4.2)
 *   J_π(φ)   = mean ( α log π_φ(ã|s) − min_i Q_θi(s, ã) ),   ã = tanh(μ_φ(s) + σ_φ(s) ε)    (§4.2)
 *   J(α)     = mean ( −log α · (log π_φ(ã|s) + H̄) )                                        (§5)
 *   θ̄i      ← τ θi + (1 − τ) θ̄i
 *
 * with ε ~ N(0, I) (the reparameterisation trick) and H̄ the target entropy (−|A| by default).
 * log π carries the tanh Jacobian: log π(a|s) = log N(u; μ, σ²) − Σ_j log(1 − tanh²(u_j))
 * (Appendix C). J(α) is written in log α, as softlearning (the authors' code) and
 * Stable-Baselines3 do; the paper writes it in α, which scales the gradient by α.
 * As in Stable-Baselines3: the critic step comes first, the actor loss is taken with the updated
 * critics, the α used by both is the value before this update's α step, and log π is measured in
 * normalised action units (so H̄ = −|A| means the same on every task).
 */
import * as tf from '@tensorflow/tfjs';
import { RandomAgent, type Agent } from '../core/agent.js';
import type { Env, PhysicsParams } from '../core/env.js';
import { ValidationError, describe } from '../core/errors.js';
import { Rng, type RngState } from '../core/rng.js';
import type { Box } from '../core/spaces.js';
import { ReplayBuffer } from '../data/replayBuffer.js';
import type { Batch } from '../data/transition.js';
import { envSpec } from '../envs/registry.js';
import { runEpisodes } from '../envs/runEpisodes.js';
import { gaussianLogProb, tanhLogDetJacobian } from '../policies/diagGaussian.js';
import { GaussianMlpPolicy, checkPolicyWeights, makePolicySpec, policyHeadDim, type GaussianMlpPolicySpec, type PolicyDistribution, type PolicyWeights } from '../policies/gaussianMlpPolicy.js';
import { QEnsemble, makeQEnsembleSpec, matMulFast, qEnsembleForward } from '../policies/qEnsemble.js';
import { checkBool, checkInt, checkUnit, rejectUnknownKeys } from './trpo.js';

// ---------------------------------------------------------------------------------------------
// Config

/** Configuration of a SAC run (the paper's hyperparameters, Appendix D, unless said). */
export interface SacConfig {
  /** Always `'sac'`, so a saved run can be rebuilt from its JSON. */
  kind: 'sac';
  /** Built-in task id (the caller builds the environment from `env`, `physics`, `maxEpisodeSteps`). */
  env: string;
  /** Seeds the initial weights, the exploration and update noise, minibatches and resets. */
  seed: number;
  /** Environment steps in total. */
  steps: number;
  /** Transitions per gradient step. Default 256. */
  batchSize: number;
  /** Replay buffer size (transitions; capped at `steps`). Default 1,000,000. */
  bufferCapacity: number;
  /**
   * Steps of uniform random actions before the policy acts and updates begin (softlearning's
   * n_initial_exploration_steps; Spinning Up's start_steps). Default 5000.
   */
  learningStartSteps: number;
  /** Gradient steps per environment step (the update-to-data ratio G; MBPO uses 20). Default 1. */
  updatesPerStep: number;
  /** Discount γ. Default 0.99. */
  gamma: number;
  /** Polyak factor τ of the target critics, θ̄ ← τ θ + (1 − τ) θ̄ per gradient step. Default 0.005. */
  tau: number;
  /** Adam step size of the policy. Default 3e-4. */
  actorLr: number;
  /** Adam step size of the critics. Default 3e-4. */
  criticLr: number;
  /** Adam step size of log α. Default 3e-4. */
  alphaLr: number;
  /** Hidden widths of the policy and of each critic (ReLU). Default [256, 256]. */
  hidden: number[];
  /** α at the start. Default 1 (softlearning, Stable-Baselines3). */
  initAlpha: number;
  /**
   * H̄, the entropy the temperature tuning aims at, in nats of the normalised action (−1 … 1);
   * null: −|A| (the paper's heuristic). MBPO sets its own per task (e.g. Hopper −1).
   */
  targetEntropy: number | null;
  /** Tune α by gradient descent on J(α) (§5); false keeps α = `initAlpha`. Default true. */
  learnAlpha: boolean;
  /**
   * Evaluate the deterministic policy (the squashed mean) at the first episode end after every
   * `evalEvery` environment steps, and at the end; 0: never. Default 5000.
   */
  evalEvery: number;
  /** Episodes per evaluation (reset seeds 10000, 10001, …: the same episodes every time). Default 5. */
  evalEpisodes: number;
  /** Physical variant of the environment. Default nominal. */
  physics: Partial<PhysicsParams>;
  /** Time limit per episode; null = the task's. */
  maxEpisodeSteps: number | null;
}

/** SAC's defaults (see `SacConfig` for sources). */
export const SAC_DEFAULTS = {
  kind: 'sac',
  env: 'Pendulum-v1',
  seed: 0,
  steps: 1_000_000,
  batchSize: 256,
  bufferCapacity: 1_000_000,
  learningStartSteps: 5000,
  updatesPerStep: 1,
  gamma: 0.99,
  tau: 0.005,
  actorLr: 3e-4,
  criticLr: 3e-4,
  alphaLr: 3e-4,
  hidden: [256, 256],
  initAlpha: 1,
  targetEntropy: null,
  learnAlpha: true,
  evalEvery: 5000,
  evalEpisodes: 5,
  physics: {},
  maxEpisodeSteps: null,
} as const satisfies SacConfig;

/**
 * Per-task overrides for CI-size runs on a 2-core machine (measured in
 * test/algorithms/sac.test.ts; deterministic evaluation over 5 episodes, reset seeds 10000–10004).
 * - Pendulum-v1: rl-zoo's direction (lr 1e-3 for every network), with 64 × 64 networks and batches
 *   of 128 because a tfjs-wasm update of the paper's 256 × 256 × batch 256 costs ~70 ms here;
 *   1000 random steps (5 episodes) before learning, 5000 steps in all (4001 gradient steps,
 *   40–70 s on 2 busy cores). Evaluation at 4000 / 5000 steps, seeds 0–3: −325 / −100,
 *   −136 / −100, −135 / −100, −108 / −101 (6000 steps, seeds 0–2: −98, −99, −98; random
 *   actions: ≈ −1200).
 */
export const SAC_ENV_OVERRIDES: Record<string, Partial<SacConfig>> = {
  'Pendulum-v1': { steps: 5000, learningStartSteps: 1000, batchSize: 128, hidden: [64, 64], actorLr: 1e-3, criticLr: 1e-3, alphaLr: 1e-3, evalEvery: 1000 },
};

/** Overrides of a SAC config. */
export type SacOverrides = Partial<SacConfig>;

/**
 * Merges per-task overrides and `overrides` into `SAC_DEFAULTS` and validates.
 * @throws ValidationError naming the key, the value and what was expected
 * @example
 * const config = makeSacConfig({ env: 'HalfCheetah-v5', seed: 1 });
 */
export function makeSacConfig(overrides: SacOverrides = {}): SacConfig {
  const where = 'makeSacConfig';
  rejectUnknownKeys(where, overrides, SAC_DEFAULTS);
  if (overrides.kind !== undefined && overrides.kind !== 'sac') throw new ValidationError(where, 'kind', `expected 'sac', got ${describe(overrides.kind)}`);
  const env = overrides.env ?? SAC_DEFAULTS.env;
  const perEnv = SAC_ENV_OVERRIDES[env] ?? {};
  const c: SacConfig = {
    ...SAC_DEFAULTS,
    ...perEnv,
    ...overrides,
    kind: 'sac',
    hidden: [...(overrides.hidden ?? perEnv.hidden ?? SAC_DEFAULTS.hidden)],
    physics: { ...overrides.physics },
  };
  envSpec(c.env);
  checkInt(where, 'seed', c.seed, 0);
  checkInt(where, 'steps', c.steps, 1);
  checkInt(where, 'batchSize', c.batchSize, 1);
  checkInt(where, 'bufferCapacity', c.bufferCapacity, 1);
  checkInt(where, 'learningStartSteps', c.learningStartSteps, 0);
  checkInt(where, 'updatesPerStep', c.updatesPerStep, 1);
  checkInt(where, 'evalEvery', c.evalEvery, 0);
  checkInt(where, 'evalEpisodes', c.evalEpisodes, 1);
  if (c.maxEpisodeSteps !== null) checkInt(where, 'maxEpisodeSteps', c.maxEpisodeSteps, 1);
  checkSacAgentConfig(where, c);
  return c;
}

/** The settings `SacAgent` uses (a subset of `SacConfig`; MBPO's config carries the same keys). */
export type SacAgentConfig = Pick<SacConfig, 'gamma' | 'tau' | 'actorLr' | 'criticLr' | 'alphaLr' | 'hidden' | 'initAlpha' | 'targetEntropy' | 'learnAlpha'>;

/** The keys of `SacAgentConfig`. */
export const SAC_AGENT_KEYS = ['gamma', 'tau', 'actorLr', 'criticLr', 'alphaLr', 'hidden', 'initAlpha', 'targetEntropy', 'learnAlpha'] as const satisfies readonly (keyof SacAgentConfig)[];

/** The agent's settings out of a larger config (SAC's, MBPO's). */
export function pickSacAgentConfig(c: SacAgentConfig): SacAgentConfig {
  return { gamma: c.gamma, tau: c.tau, actorLr: c.actorLr, criticLr: c.criticLr, alphaLr: c.alphaLr, hidden: [...c.hidden], initAlpha: c.initAlpha, targetEntropy: c.targetEntropy, learnAlpha: c.learnAlpha };
}

/** @throws ValidationError for an out-of-range agent setting */
export function checkSacAgentConfig(where: string, c: SacAgentConfig): void {
  checkUnit(where, 'gamma', c.gamma);
  checkUnit(where, 'tau', c.tau);
  for (const key of ['actorLr', 'criticLr', 'alphaLr', 'initAlpha'] as const) {
    const v = c[key];
    if (typeof v !== 'number' || !(v > 0 && Number.isFinite(v))) throw new ValidationError(where, key, `expected a finite number > 0, got ${describe(v)}`);
  }
  if (!Array.isArray(c.hidden) || c.hidden.length === 0 || !c.hidden.every((h) => Number.isInteger(h) && h > 0)) {
    throw new ValidationError(where, 'hidden', `expected a non-empty array of positive integers, got ${describe(c.hidden)}`);
  }
  if (c.targetEntropy !== null && (typeof c.targetEntropy !== 'number' || !Number.isFinite(c.targetEntropy))) {
    throw new ValidationError(where, 'targetEntropy', `expected a finite number or null (−|A|), got ${describe(c.targetEntropy)}`);
  }
  checkBool(where, 'learnAlpha', c.learnAlpha);
}

// ---------------------------------------------------------------------------------------------
// The losses (pure functions of tensors; call them inside tf.tidy or a gradient function)

/**
 * `policyForward` (the same definition, so `GaussianMlpPolicy`'s `act`, `sample` and ONNX export
 * agree with what SAC trains) built on `matMulFast`: with tfjs's own matMul gradient, the actor
 * step of a 256 × 256 policy is several times slower on tfjs-wasm.
 */
export function sacPolicyForward(spec: GaussianMlpPolicySpec, params: readonly tf.Tensor[], obsNorm: tf.Tensor2D): PolicyDistribution {
  const L = spec.hidden.length + 1;
  let h: tf.Tensor2D = obsNorm;
  for (let i = 0; i < L; i++) {
    const z = tf.add(matMulFast(h, params[2 * i] as tf.Tensor2D), params[2 * i + 1]) as tf.Tensor2D;
    h = i < L - 1 ? (spec.activation === 'tanh' ? tf.tanh(z) : tf.relu(z)) : z;
  }
  if (spec.stdMode === 'parameter') return { mean: h, logStd: params[2 * L] };
  const [mean, rawLogStd] = tf.split(h, 2, 1) as [tf.Tensor2D, tf.Tensor2D];
  return { mean, logStd: tf.clipByValue(rawLogStd, spec.logStdMin, spec.logStdMax) };
}

/**
 * The reparameterised squashed-Gaussian sample: u = μ_φ(s) + σ_φ(s) ε, a = tanh(u), and
 * log π(a|s) = log N(u; μ, σ²) − Σ_j log(1 − tanh²(u_j)). Differentiable w.r.t. `params`
 * (gradients flow through a and through log π).
 * @param obsNorm normalised observations [n, obsDim] (`policy.normalizeObs`)
 * @param eps standard normal noise [n, actDim]
 * @returns the action in normalised units [n, actDim] and log π [n]
 */
export function squashedGaussianSample(spec: GaussianMlpPolicySpec, params: readonly tf.Tensor[], obsNorm: tf.Tensor2D, eps: tf.Tensor2D): { actionNorm: tf.Tensor2D; logProb: tf.Tensor1D } {
  const { mean, logStd } = sacPolicyForward(spec, params, obsNorm);
  const u = tf.add(mean, tf.mul(tf.exp(logStd), eps)) as tf.Tensor2D;
  const logProb = tf.sub(gaussianLogProb(u, mean, logStd), tanhLogDetJacobian(u)) as tf.Tensor1D;
  return { actionNorm: tf.tanh(u), logProb };
}

/**
 * The soft Bellman target y = r + γ (1 − d) (min_i Q̄_i(s', a') − α log π(a'|s')).
 * @param reward r [n]
 * @param terminated d [n], 1 where s' is terminal (never for a time-limit cut)
 * @param nextQ Q̄_i(s', a') of the target critics [K, n]
 * @param nextLogProb log π(a'|s') [n]
 * @param alpha α (a number or a scalar tensor)
 * @returns y [n]
 */
export function softQTarget(reward: tf.Tensor1D, terminated: tf.Tensor1D, nextQ: tf.Tensor2D, nextLogProb: tf.Tensor1D, alpha: number | tf.Scalar, gamma: number): tf.Tensor1D {
  const softValue = tf.sub(tf.min(nextQ, 0), tf.mul(alpha, nextLogProb));
  return tf.add(reward, tf.mul(tf.mul(tf.sub(1, terminated), gamma), softValue)) as tf.Tensor1D;
}

/** J_Q = ½ Σ_i mean_n (Q_i − y)² for Q [K, n] and targets y [n] (held constant). */
export function criticLoss(q: tf.Tensor2D, target: tf.Tensor1D): tf.Scalar {
  return tf.mul(tf.sum(tf.mean(tf.square(tf.sub(q, target)), 1)), 0.5) as tf.Scalar;
}

/** J_π = mean_n (α log π(ã|s) − min_i Q_i(s, ã)) for Q [K, n] at the policy's actions and log π [n]. */
export function actorLoss(qPi: tf.Tensor2D, logProb: tf.Tensor1D, alpha: number | tf.Scalar): tf.Scalar {
  return tf.mean(tf.sub(tf.mul(alpha, logProb), tf.min(qPi, 0))) as tf.Scalar;
}

/**
 * ∂J(α)/∂log α for J(α) = −log α · (mean log π + H̄) (log π held constant): −(mean log π + H̄).
 * Positive when the policy's entropy −mean log π exceeds H̄, so gradient descent shrinks α;
 * below H̄ α grows.
 */
export function temperatureGradient(meanLogProb: number, targetEntropy: number): number {
  return -(meanLogProb + targetEntropy);
}

/** θ̄ ← τ θ + (1 − τ) θ̄, in place on flat parameter vectors. */
export function polyakAverage(target: Float32Array, source: ArrayLike<number>, tau: number): void {
  for (let i = 0; i < target.length; i++) target[i] = tau * source[i] + (1 - tau) * target[i];
}

/** Adam's moments and step count for one parameter vector. */
export interface AdamState {
  m: Float32Array;
  v: Float32Array;
  /** Steps taken. */
  step: number;
}

/** β₁, β₂ and ε of every SAC optimiser (PyTorch's and softlearning's defaults). */
export const SAC_ADAM = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8 } as const;

/**
 * One Adam step in place (Kingma & Ba 2015, https://arxiv.org/abs/1412.6980, in PyTorch's form):
 * m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², p ← p − lr · m̂ / (√v̂ + ε) with m̂ = m/(1−β₁ᵗ),
 * v̂ = v/(1−β₂ᵗ). Runs in JavaScript on the float32 parameters: tfjs's Adam costs ~15 kernel
 * launches per variable, which on tfjs-wasm was a third of a SAC update (see `SacAgent`).
 */
export function adamStep(p: Float32Array, g: ArrayLike<number>, state: AdamState, lr: number): void {
  const { beta1, beta2, epsilon } = SAC_ADAM;
  const t = ++state.step;
  const c1 = 1 - beta1 ** t;
  const c2Sqrt = Math.sqrt(1 - beta2 ** t);
  const { m, v } = state;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i];
    m[i] = beta1 * m[i] + (1 - beta1) * gi;
    v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
    p[i] -= (lr / c1) * (m[i] / (Math.sqrt(v[i]) / c2Sqrt + epsilon));
  }
}

// ---------------------------------------------------------------------------------------------
// The agent

/** The columns `SacAgent.update` reads (a `ReplayBuffer` batch has them; model rollouts can too). */
export type SacBatch = Pick<Batch, 'size' | 'obs' | 'action' | 'reward' | 'nextObs' | 'terminated'>;

/** What one gradient step measured (before its own parameter changes). */
export interface SacUpdateStats {
  /** J_Q. */
  criticLoss: number;
  /** J_π (with the updated critics). */
  actorLoss: number;
  /** α used in this step. */
  alpha: number;
  /** −mean log π(ã|s) on the batch (nats, normalised action units). */
  entropy: number;
  /** Mean of Q_i(s, a) over the batch and the critics. */
  meanQ: number;
}

/** Options of `new SacAgent`. */
export interface SacAgentOptions {
  obsDim: number;
  /** The environment's action space (finite bounds). */
  actionSpace: Box;
  /** Defaults: `SAC_DEFAULTS`' values. */
  config?: Partial<SacAgentConfig>;
  /** Draws the initial weights, then the update noise ε and the exploration noise. */
  rng: Rng;
}

/**
 * Everything a `SacAgent` needs to continue exactly where it was (for checkpoints). Parameters
 * are flat, in `policy.variables` and `critics.variables` order.
 */
export interface SacAgentState {
  kind: 'sac-agent';
  obsDim: number;
  actionLow: number[];
  actionHigh: number[];
  config: SacAgentConfig;
  actor: Float32Array;
  critic: Float32Array;
  targetCritic: Float32Array;
  logAlpha: number;
  adam: { actor: AdamState; critic: AdamState; alpha: AdamState };
  updates: number;
  rng: RngState;
  actRng: RngState;
}

/**
 * A SAC learner: the policy, the twin critics and their targets, log α, and their Adam states.
 * `update` takes one gradient step on any batch of transitions (real, model or mixed), so MBPO
 * and MOPO drive it with their own data; `act` is the deterministic controller (the squashed
 * mean) or, with `deterministic = false`, an exploration sample. Owns tfjs variables: call
 * `dispose()`.
 *
 * The parameters live in flat float32 arrays here (Adam and the Polyak average run in JavaScript)
 * and are copied into the networks' tfjs variables after every step; change them through
 * `setState`, not through `policy` or `critics`. An update is two tidy'd gradient computations
 * (critics, then the actor against the updated critics), each read back once: tfjs-wasm spends
 * more on each kernel launch than on the arithmetic of these sizes.
 *
 * @example
 * const agent = new SacAgent({ obsDim: 3, actionSpace: env.actionSpace, rng: new Rng(0) });
 * const stats = agent.update(buffer.sample(256, rng));
 * const action = agent.act(obs, false);
 */
export class SacAgent implements Agent {
  readonly obsDim: number;
  readonly actDim: number;
  readonly config: Readonly<SacAgentConfig>;
  readonly policy: GaussianMlpPolicy;
  readonly critics: QEnsemble;
  readonly targetCritics: QEnsemble;
  /** H̄ in use (`config.targetEntropy` or −|A|). */
  readonly targetEntropy: number;
  readonly #actor: Float32Array;
  readonly #critic: Float32Array;
  readonly #target: Float32Array;
  #logAlpha: number;
  readonly #adam: { actor: AdamState; critic: AdamState; alpha: AdamState };
  readonly #rng: Rng;
  readonly #actRng: Rng;
  readonly #mid: Float64Array;
  readonly #half: Float64Array;
  readonly #actionLow: number[];
  readonly #actionHigh: number[];
  #updates = 0;
  #disposed = false;

  constructor(options: SacAgentOptions) {
    const where = 'SacAgent';
    const { obsDim, actionSpace, rng } = options;
    checkInt(where, 'obsDim', obsDim, 1);
    if (!actionSpace.isBounded()) throw new ValidationError(where, 'actionSpace', 'expected finite action bounds (SAC squashes into them)');
    const defaults = pickSacAgentConfig({ ...SAC_DEFAULTS, hidden: [...SAC_DEFAULTS.hidden] });
    for (const key of Object.keys(options.config ?? {})) {
      if (!(SAC_AGENT_KEYS as readonly string[]).includes(key)) throw new ValidationError(where, `config.${key}`, `unknown key; expected one of ${SAC_AGENT_KEYS.join(', ')}`);
    }
    const config: SacAgentConfig = { ...defaults, ...options.config };
    config.hidden = [...config.hidden];
    checkSacAgentConfig(where, config);
    this.config = Object.freeze(config);
    this.obsDim = obsDim;
    this.actDim = actionSpace.dim;
    this.targetEntropy = config.targetEntropy ?? -actionSpace.dim;
    this.#actionLow = Array.from(actionSpace.low);
    this.#actionHigh = Array.from(actionSpace.high);
    this.#mid = Float64Array.from(actionSpace.low, (lo, j) => (actionSpace.high[j] + lo) / 2);
    this.#half = Float64Array.from(actionSpace.low, (lo, j) => (actionSpace.high[j] - lo) / 2);
    this.policy = new GaussianMlpPolicy(sacPolicySpec(obsDim, actionSpace.low, actionSpace.high, config.hidden), { rng });
    this.critics = new QEnsemble(makeQEnsembleSpec({ obsDim, actDim: this.actDim, hidden: config.hidden }), { rng });
    this.targetCritics = this.critics.clone();
    this.#actor = readVariables(this.policy.variables);
    this.#critic = readVariables(this.critics.variables);
    this.#target = Float32Array.from(this.#critic);
    this.#logAlpha = Math.log(config.initAlpha);
    const adam = (n: number): AdamState => ({ m: new Float32Array(n), v: new Float32Array(n), step: 0 });
    this.#adam = { actor: adam(this.#actor.length), critic: adam(this.#critic.length), alpha: adam(1) };
    this.#rng = rng.fork();
    this.#actRng = rng.fork();
  }

  /** The current temperature α. */
  get alpha(): number {
    return Math.exp(this.#logAlpha);
  }

  /** Gradient steps taken. */
  get updates(): number {
    return this.#updates;
  }

  /**
   * One gradient step of the critics, the policy and α on `batch`, then the Polyak step of the
   * target critics (see the file comment). Actions are in environment units; `terminated`
   * rows do not bootstrap.
   * @throws ValidationError for an empty batch or columns of the wrong length
   */
  update(batch: SacBatch): SacUpdateStats {
    this.#checkLive('update');
    const n = batch.size;
    const D = this.obsDim;
    const A = this.actDim;
    const where = 'SacAgent.update';
    if (!Number.isInteger(n) || n < 1) throw new ValidationError(where, 'batch.size', `expected a positive integer, got ${describe(n)}`);
    const want: [string, ArrayLike<number>, number][] = [
      ['obs', batch.obs, n * D],
      ['action', batch.action, n * A],
      ['reward', batch.reward, n],
      ['nextObs', batch.nextObs, n * D],
      ['terminated', batch.terminated, n],
    ];
    for (const [key, col, len] of want) if (col?.length < len) throw new ValidationError(where, `batch.${key}`, `expected at least ${len} values (${n} rows), got ${describe(col)}`);
    const actionNorm = new Float32Array(n * A);
    for (let i = 0; i < n; i++) for (let j = 0; j < A; j++) actionNorm[i * A + j] = (batch.action[i * A + j] - this.#mid[j]) / this.#half[j];
    const eps = this.#rng.fillNormal(new Float32Array(n * A));
    const epsNext = this.#rng.fillNormal(new Float32Array(n * A));
    const { gamma, tau, learnAlpha } = this.config;
    const spec = this.policy.spec;
    const qSpec = this.critics.spec;
    const alpha = this.alpha;

    const t = {
      obs: tf.tensor2d(Float32Array.from(batch.obs.subarray(0, n * D)), [n, D]),
      nextObs: tf.tensor2d(Float32Array.from(batch.nextObs.subarray(0, n * D)), [n, D]),
      action: tf.tensor2d(actionNorm, [n, A]),
      reward: tf.tensor1d(Float32Array.from(batch.reward.subarray(0, n))),
      terminated: tf.tensor1d(Float32Array.from(batch.terminated.subarray(0, n))),
      eps: tf.tensor2d(eps, [n, A]),
      epsNext: tf.tensor2d(epsNext, [n, A]),
    };
    const kept: tf.Tensor[] = [];
    try {
      // Critics: y from the target critics and a fresh a' ~ π(·|s'), both held constant.
      const criticOut = tf.tidy(() => {
        const next = squashedGaussianSample(spec, this.policy.variables, this.policy.normalizeObs(t.nextObs), t.epsNext);
        const y = softQTarget(t.reward, t.terminated, qEnsembleForward(qSpec, this.targetCritics.variables, t.nextObs, next.actionNorm), next.logProb, alpha, gamma);
        let meanQ: tf.Tensor = tf.scalar(0);
        const { value, grads } = tf.variableGrads(() => {
          const q = qEnsembleForward(qSpec, this.critics.variables, t.obs, t.action);
          meanQ = tf.keep(tf.mean(q));
          kept.push(meanQ);
          return criticLoss(q, y);
        }, this.critics.variables);
        return flatOutputs([value, meanQ], this.critics.variables, grads);
      });
      const c = criticOut.dataSync() as Float32Array;
      criticOut.dispose();
      adamStep(this.#critic, c.subarray(2), this.#adam.critic, this.config.criticLr);
      writeVariables(this.critics.variables, this.#critic);

      // Actor, against the updated critics.
      const actorOut = tf.tidy(() => {
        let meanLogProb: tf.Tensor = tf.scalar(0);
        const obsNorm = this.policy.normalizeObs(t.obs);
        const { value, grads } = tf.variableGrads(() => {
          const pi = squashedGaussianSample(spec, this.policy.variables, obsNorm, t.eps);
          meanLogProb = tf.keep(tf.mean(pi.logProb));
          kept.push(meanLogProb);
          return actorLoss(qEnsembleForward(qSpec, this.critics.variables, t.obs, pi.actionNorm), pi.logProb, alpha);
        }, this.policy.variables);
        return flatOutputs([value, meanLogProb], this.policy.variables, grads);
      });
      const a = actorOut.dataSync() as Float32Array;
      actorOut.dispose();
      adamStep(this.#actor, a.subarray(2), this.#adam.actor, this.config.actorLr);
      writeVariables(this.policy.variables, this.#actor);

      // Temperature, on the log π the actor step measured; then the target critics.
      if (learnAlpha) {
        const logAlpha = Float32Array.of(this.#logAlpha);
        adamStep(logAlpha, [temperatureGradient(a[1], this.targetEntropy)], this.#adam.alpha, this.config.alphaLr);
        this.#logAlpha = logAlpha[0];
      }
      polyakAverage(this.#target, this.#critic, tau);
      writeVariables(this.targetCritics.variables, this.#target);
      this.#updates++;
      return { criticLoss: c[0], actorLoss: a[0], alpha, entropy: -a[1], meanQ: c[1] };
    } finally {
      tf.dispose(kept);
      tf.dispose(Object.values(t));
    }
  }

  /**
   * The action for one observation: the squashed mean (`deterministic`, the default: evaluation
   * and deployment) or a sample of π (exploration, drawn from the agent's own generator).
   */
  act(obs: Float64Array, deterministic = true): Float64Array {
    this.#checkLive('act');
    return deterministic ? this.policy.actBatchFast(obs, 1) : this.policy.sample(obs, 1, this.#actRng).actions;
  }

  /**
   * Actions for `n` observations (row-major [n, obsDim]) in one tfjs call, e.g. MBPO's model
   * rollouts from many states; samples unless `deterministic`. A new array [n, actDim].
   */
  actBatch(obs: ArrayLike<number>, n: number, deterministic = false): Float64Array {
    this.#checkLive('actBatch');
    if (obs.length !== n * this.obsDim) throw new ValidationError('SacAgent.actBatch', 'obs', `expected ${n} × ${this.obsDim} values, got ${obs.length}`);
    const out = tf.tidy(() => {
      const d = this.policy.distribution(tf.tensor2d(Float32Array.from(obs), [n, this.obsDim]));
      return tf.stack([d.mean, d.logStd]);
    });
    const md = out.dataSync();
    out.dispose();
    const u = new Float32Array(n * this.actDim);
    const m = u.length;
    for (let k = 0; k < m; k++) u[k] = deterministic ? md[k] : md[k] + Math.exp(md[m + k]) * this.#actRng.normal();
    return this.policy.toActions(u, n);
  }

  /** A copy of the whole learner state as plain arrays. */
  getState(): SacAgentState {
    this.#checkLive('getState');
    const adam = (s: AdamState): AdamState => ({ m: Float32Array.from(s.m), v: Float32Array.from(s.v), step: s.step });
    return {
      kind: 'sac-agent',
      obsDim: this.obsDim,
      actionLow: [...this.#actionLow],
      actionHigh: [...this.#actionHigh],
      config: { ...this.config, hidden: [...this.config.hidden] },
      actor: Float32Array.from(this.#actor),
      critic: Float32Array.from(this.#critic),
      targetCritic: Float32Array.from(this.#target),
      logAlpha: this.#logAlpha,
      adam: { actor: adam(this.#adam.actor), critic: adam(this.#adam.critic), alpha: adam(this.#adam.alpha) },
      updates: this.#updates,
      rng: this.#rng.getState(),
      actRng: this.#actRng.getState(),
    };
  }

  /**
   * Restores a state from `getState` of an agent with the same sizes and config; updates then
   * continue exactly as the saved agent's would.
   * @throws ValidationError (agent unchanged) when the state does not fit this agent
   */
  setState(state: SacAgentState): void {
    this.#checkLive('setState');
    const where = 'SacAgent.setState';
    if (state?.kind !== 'sac-agent') throw new ValidationError(where, 'kind', `expected 'sac-agent', got ${describe(state?.kind)}`);
    if (state.obsDim !== this.obsDim || state.actionLow?.length !== this.actDim) {
      throw new ValidationError(where, 'obsDim/actDim', `expected ${this.obsDim} and ${this.actDim}, got ${describe(state.obsDim)} and ${describe(state.actionLow?.length)}`);
    }
    if (JSON.stringify(state.config) !== JSON.stringify(this.config)) throw new ValidationError(where, 'config', `expected this agent's config ${JSON.stringify(this.config)}, got ${JSON.stringify(state.config)}`);
    const vec = (key: string, a: ArrayLike<number> | undefined, len: number): void => {
      if (a?.length !== len) throw new ValidationError(where, key, `expected ${len} values, got ${describe(a)}`);
      for (let i = 0; i < len; i++) if (!Number.isFinite(a[i])) throw new ValidationError(where, `${key}[${i}]`, `expected a finite number, got ${a[i]}`);
    };
    const sizes = { actor: this.#actor.length, critic: this.#critic.length, alpha: 1 };
    vec('actor', state.actor, sizes.actor);
    vec('critic', state.critic, sizes.critic);
    vec('targetCritic', state.targetCritic, sizes.critic);
    vec('logAlpha', [state.logAlpha], 1);
    for (const key of ['actor', 'critic', 'alpha'] as const) {
      const s = state.adam?.[key];
      vec(`adam.${key}.m`, s?.m, sizes[key]);
      vec(`adam.${key}.v`, s?.v, sizes[key]);
      checkInt(where, `adam.${key}.step`, s.step, 0);
    }
    checkInt(where, 'updates', state.updates, 0);
    this.#actor.set(state.actor);
    this.#critic.set(state.critic);
    this.#target.set(state.targetCritic);
    this.#logAlpha = state.logAlpha;
    for (const key of ['actor', 'critic', 'alpha'] as const) {
      const s = state.adam[key];
      this.#adam[key].m.set(s.m);
      this.#adam[key].v.set(s.v);
      this.#adam[key].step = s.step;
    }
    writeVariables(this.policy.variables, this.#actor);
    writeVariables(this.critics.variables, this.#critic);
    writeVariables(this.targetCritics.variables, this.#target);
    this.#updates = state.updates;
    this.#rng.setState(state.rng);
    this.#actRng.setState(state.actRng);
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.policy.dispose();
    this.critics.dispose();
    this.targetCritics.dispose();
  }

  #checkLive(where: string): void {
    if (this.#disposed) throw new ValidationError(`SacAgent.${where}`, 'agent', 'used after dispose()');
  }
}

/**
 * The architecture of a SAC actor as a Gaussian MLP policy: ReLU hidden layers, a state-dependent
 * log-std head, tanh squashing. SAC feeds raw observations (obsClip null; the normalisation stays
 * the identity).
 */
export function sacPolicySpec(obsDim: number, actionLow: ArrayLike<number>, actionHigh: ArrayLike<number>, hidden: readonly number[]): GaussianMlpPolicySpec {
  return makePolicySpec({ obsDim, actionLow, actionHigh, hidden: [...hidden], activation: 'relu', squash: 'tanh', stdMode: 'state', obsClip: null });
}

/**
 * The actor of a saved `SacAgentState` as a Gaussian MLP policy (spec and weights), the form
 * `policyToOnnx`, `GaussianMlpPolicy` and policy checkpoints take: so a SAC, MBPO or MOPO run
 * exports from its state without building an agent. The actor's flat parameters are in
 * `policy.variables` order (W0, b0, …, WL, bL); the observation normalisation is the identity.
 * @throws ValidationError when the actor's length does not fit the state's sizes and config
 * @example
 * const { spec, weights } = sacStatePolicy(agent.getState());
 * const bytes = policyToOnnx(spec, weights);
 */
export function sacStatePolicy(state: SacAgentState): { spec: GaussianMlpPolicySpec; weights: PolicyWeights } {
  const spec = sacPolicySpec(state.obsDim, state.actionLow, state.actionHigh, state.config.hidden);
  const dims = [spec.obsDim, ...spec.hidden, policyHeadDim(spec)];
  const want = dims.slice(1).reduce((s, out, i) => s + dims[i] * out + out, 0);
  if (state.actor?.length !== want) throw new ValidationError('sacStatePolicy', 'state.actor', `expected ${want} parameters for layers [${dims.join(', ')}], got ${describe(state.actor)}`);
  const layers: PolicyWeights['layers'] = [];
  let o = 0;
  for (let l = 0; l + 1 < dims.length; l++) {
    const nW = dims[l] * dims[l + 1];
    layers.push({ W: state.actor.slice(o, o + nW), b: state.actor.slice(o + nW, o + nW + dims[l + 1]) });
    o += nW + dims[l + 1];
  }
  const weights: PolicyWeights = { layers, logStd: null, obsMean: new Float32Array(spec.obsDim), obsStd: new Float32Array(spec.obsDim).fill(1) };
  checkPolicyWeights(spec, weights);
  return { spec, weights };
}

/** [scalars…, the gradients flattened in the variables' order] as one tensor, read back in one call. */
function flatOutputs(scalars: tf.Tensor[], vars: readonly tf.Variable[], grads: tf.NamedTensorMap): tf.Tensor1D {
  return tf.concat([tf.stack(scalars), ...vars.map((v) => tf.reshape(grads[v.name], [-1]))]) as tf.Tensor1D;
}

/** The variables' values concatenated. */
function readVariables(vars: readonly tf.Variable[]): Float32Array {
  const out = new Float32Array(vars.reduce((s, v) => s + v.size, 0));
  let o = 0;
  for (const v of vars) {
    out.set(v.dataSync(), o);
    o += v.size;
  }
  return out;
}

/** Assigns consecutive slices of `flat` to the variables. */
function writeVariables(vars: readonly tf.Variable[], flat: Float32Array): void {
  tf.tidy(() => {
    let o = 0;
    for (const v of vars) {
      // A copy: the cpu backend would keep a view of `flat`, which Adam then changes in place.
      v.assign(tf.tensor(flat.slice(o, o + v.size), v.shape));
      o += v.size;
    }
  });
}

// ---------------------------------------------------------------------------------------------
// The model-free loop

/** What one finished training episode reports (update statistics averaged over its steps; an episode cut by the end of training is not reported). */
export interface SacEpisodeMetrics {
  episode: number;
  /** Environment steps so far, this episode included. */
  envSteps: number;
  return: number;
  length: number;
  /** Gradient steps so far. */
  updates: number;
  /** Means over this episode's gradient steps (null before learning starts). */
  criticLoss: number | null;
  actorLoss: number | null;
  alpha: number | null;
  entropy: number | null;
  meanQ: number | null;
  /** Wall time of the episode, evaluation excluded. */
  seconds: number;
}

/** One evaluation of the deterministic policy. */
export interface SacEvalMetrics {
  envSteps: number;
  meanReturn: number;
  returns: number[];
}

/** Hooks of `trainSac`. */
export interface SacHooks {
  /** After every training episode (awaited). */
  onEpisode?: (metrics: SacEpisodeMetrics, agent: SacAgent) => Promise<void> | void;
  /** After every evaluation (awaited). */
  onEvaluation?: (metrics: SacEvalMetrics, agent: SacAgent) => Promise<void> | void;
  log?: (line: string) => void;
}

/** What `trainSac` returns; the caller owns (and disposes) the agent. */
export interface SacResult {
  config: SacConfig;
  agent: SacAgent;
  buffer: ReplayBuffer;
  history: { episodes: SacEpisodeMetrics[]; evaluations: SacEvalMetrics[] };
}

/** Reset seeds of evaluation episodes: the same episodes at every evaluation. */
export const SAC_EVAL_SEED = 10_000;

/**
 * Model-free SAC on a real environment: `learningStartSteps` uniform random actions, then
 * actions sampled from π; every step is stored and followed by `updatesPerStep` gradient steps
 * on uniform minibatches of the buffer. Training episodes are reset with seeds drawn from the
 * run's seed, so evaluations in the same environment (at episode ends) do not change them.
 * Deterministic for a seed.
 *
 * @example
 * const config = makeSacConfig({ env: 'Pendulum-v1', seed: 0 });
 * const { agent, history } = await trainSac(config, await makeEnv(config.env));
 */
export async function trainSac(config: SacConfig, env: Env, hooks: SacHooks = {}): Promise<SacResult> {
  const obsDim = env.observationSpace.dim;
  const agent = new SacAgent({ obsDim, actionSpace: env.actionSpace, config: pickSacAgentConfig(config), rng: new Rng(config.seed, 1) });
  const buffer = new ReplayBuffer({ capacity: Math.min(config.bufferCapacity, config.steps), obsDim, actDim: env.actionSpace.dim });
  const batchRng = new Rng(config.seed, 2);
  const random = new RandomAgent(env.actionSpace, new Rng(config.seed, 3));
  const resetRng = new Rng(config.seed, 4);
  const episodes: SacEpisodeMetrics[] = [];
  const evaluations: SacEvalMetrics[] = [];
  const evaluate = async (envSteps: number): Promise<void> => {
    const s = runEpisodes(env, agent, { episodes: config.evalEpisodes, seed: SAC_EVAL_SEED });
    const m: SacEvalMetrics = { envSteps, meanReturn: s.mean, returns: s.returns };
    evaluations.push(m);
    hooks.log?.(`sac eval at ${envSteps} steps: mean return ${s.mean.toFixed(1)}`);
    await hooks.onEvaluation?.(m, agent);
  };
  try {
    let obs = Float64Array.from(env.reset({ seed: config.seed }).obs);
    let nextEval = config.evalEvery;
    let ret = 0;
    let len = 0;
    let start = performance.now();
    const sums = { criticLoss: 0, actorLoss: 0, alpha: 0, entropy: 0, meanQ: 0, count: 0 };
    for (let t = 1; t <= config.steps; t++) {
      const action = Float64Array.from(t <= config.learningStartSteps ? random.act() : agent.act(obs, false));
      const step = env.step(action);
      buffer.add({ obs, action, reward: step.reward, nextObs: step.obs, terminated: step.terminated, truncated: step.truncated });
      ret += step.reward;
      len++;
      obs = Float64Array.from(step.obs);
      if (t >= config.learningStartSteps) {
        for (let k = 0; k < config.updatesPerStep; k++) {
          const s = agent.update(buffer.sample(config.batchSize, batchRng));
          sums.criticLoss += s.criticLoss;
          sums.actorLoss += s.actorLoss;
          sums.alpha += s.alpha;
          sums.entropy += s.entropy;
          sums.meanQ += s.meanQ;
          sums.count++;
        }
      }
      const done = step.terminated || step.truncated;
      if (done) {
        const c = sums.count;
        const mean = (x: number): number | null => (c > 0 ? x / c : null);
        const m: SacEpisodeMetrics = {
          episode: episodes.length,
          envSteps: t,
          return: ret,
          length: len,
          updates: agent.updates,
          criticLoss: mean(sums.criticLoss),
          actorLoss: mean(sums.actorLoss),
          alpha: mean(sums.alpha),
          entropy: mean(sums.entropy),
          meanQ: mean(sums.meanQ),
          seconds: (performance.now() - start) / 1000,
        };
        episodes.push(m);
        hooks.log?.(`sac ep ${m.episode}: steps ${t}, return ${ret.toFixed(1)}, alpha ${m.alpha?.toFixed(3) ?? '-'}, entropy ${m.entropy?.toFixed(2) ?? '-'}, Q ${m.meanQ?.toFixed(1) ?? '-'}`);
        await hooks.onEpisode?.(m, agent);
      }
      // Evaluations run between training episodes (they reset the same environment), and once at the end.
      if (config.evalEvery > 0 && ((done && t >= nextEval) || t === config.steps)) {
        await evaluate(t);
        while (nextEval <= t) nextEval += config.evalEvery;
      }
      if (done && t < config.steps) {
        Object.assign(sums, { criticLoss: 0, actorLoss: 0, alpha: 0, entropy: 0, meanQ: 0, count: 0 });
        ret = 0;
        len = 0;
        start = performance.now();
        obs = Float64Array.from(env.reset({ seed: resetRng.int(2 ** 31) }).obs);
      }
    }
  } catch (err) {
    agent.dispose();
    throw err;
  }
  return { config, agent, buffer, history: { episodes, evaluations } };
}
