/**
 * Behaviour cloning (BC): supervised regression of the logged actions on the logged observations
 * (Pomerleau 1991; the offline-RL baseline of D4RL, Fu et al. 2020, https://arxiv.org/abs/2004.07219,
 * and d3rlpy's `BC`), read top to bottom: config → the loss → `trainBc`.
 *
 * The policy is a `GaussianMlpPolicy` (clip squash, state-independent log-std), so checkpoints,
 * `mbrl export` and `policyToOnnx` take it unchanged. It is the maximum-likelihood Gaussian policy
 * with a state-independent standard deviation, π_θ,σ(a|s) = N(μ_θ(s), diag σ²), fitted in
 * normalised action units ã = clip((a − mid) / half, −1, 1):
 *
 *   −log L(θ, σ) = Σ_i Σ_j [ (ã_ij − μ_θ(s_i)_j)² / (2σ_j²) + log σ_j ] + const
 *
 * For any σ the θ that minimises it is the least-squares one, so θ is trained on
 *
 *   L(θ) = mean_i mean_j (ã_ij − μ_θ(s_i)_j)²                 (d3rlpy's deterministic BC loss)
 *
 * by Adam on minibatches drawn uniformly with replacement, and σ_j is set to its maximum-likelihood
 * value given θ, σ̂_j² = mean_i (ã_ij − μ_θ(s_i)_j)², estimated after every epoch from that epoch's
 * minibatch residuals. The deterministic controller (`act`, the ONNX `action`) is
 * mid + half · clip(μ_θ(s), −1, 1); σ only matters for a `--stochastic` export.
 *
 * Why clip and not SAC's tanh: the regression targets lie in [−1, 1] and include the bounds
 * (saturated logged actions), which tanh reaches only at infinite pre-activations; with clip the
 * loss is a plain regression on the network's output and the deployment clip never moves a fitted
 * target.
 *
 * Observations are normalised by the dataset's per-dimension mean and standard deviation (stored
 * in the policy's `obsMean`/`obsStd`, so the exported graph normalises raw observations itself)
 * and clipped to ±10.
 */
import * as tf from '@tensorflow/tfjs';
import type { Env } from '../core/env.js';
import { ValidationError, describe } from '../core/errors.js';
import { Rng, type RngState } from '../core/rng.js';
import type { Box } from '../core/spaces.js';
import { envSpec } from '../envs/registry.js';
import { runEpisodes } from '../envs/runEpisodes.js';
import { checkPolicyWeights, GaussianMlpPolicy, makePolicySpec, type GaussianMlpPolicySpec, type PolicyActivation, type PolicyWeights } from '../policies/gaussianMlpPolicy.js';
import type { OfflineData } from './mopo.js';
import { adamStep, sacPolicyForward, SAC_EVAL_SEED, type AdamState } from './sac.js';
import { checkInt, rejectUnknownKeys } from './trpo.js';

// ---------------------------------------------------------------------------------------------
// Config

/** Configuration of a BC run. */
export interface BcConfig {
  /** Always `'bc'`, so a saved run can be rebuilt from its JSON. */
  kind: 'bc';
  /** The task the data came from (its action bounds; the evaluation runs). */
  env: string;
  /** Seeds the initial weights and the minibatches. */
  seed: number;
  /** Epochs of `stepsPerEpoch` gradient steps. Default 100 (100,000 steps). */
  epochs: number;
  /** Gradient steps per epoch (an epoch ends with the σ̂ update, an evaluation and a checkpoint). Default 1000. */
  stepsPerEpoch: number;
  /** Rows per gradient step. Default 100 (d3rlpy's BC). */
  batchSize: number;
  /** Adam step size. Default 1e-3 (d3rlpy's BC). */
  lr: number;
  /** Hidden layer widths. Default [256, 256] (d3rlpy's default encoder). */
  hidden: number[];
  /** Hidden activation. Default 'relu' (d3rlpy). */
  activation: PolicyActivation;
  /** Evaluate in the simulator every this many epochs (and after the last). Default 1. */
  evalEvery: number;
  /** Episodes per evaluation (reset seeds 10000, 10001, …); 0: none. Default 5. */
  evalEpisodes: number;
}

/** BC's defaults (see `BcConfig` for sources). */
export const BC_DEFAULTS = {
  kind: 'bc',
  env: 'Pendulum-v1',
  seed: 0,
  epochs: 100,
  stepsPerEpoch: 1000,
  batchSize: 100,
  lr: 1e-3,
  hidden: [256, 256],
  activation: 'relu',
  evalEvery: 1,
  evalEpisodes: 5,
} as const satisfies BcConfig;

/**
 * Merges `overrides` into `BC_DEFAULTS` and validates.
 * @throws ValidationError naming the key, the value and what was expected
 * @example
 * const config = makeBcConfig({ env: 'HalfCheetah-v5', epochs: 50 });
 */
export function makeBcConfig(overrides: Partial<BcConfig> = {}): BcConfig {
  const where = 'makeBcConfig';
  rejectUnknownKeys(where, overrides, BC_DEFAULTS);
  if (overrides.kind !== undefined && overrides.kind !== 'bc') throw new ValidationError(where, 'kind', `expected 'bc', got ${describe(overrides.kind)}`);
  const c: BcConfig = { ...BC_DEFAULTS, ...overrides, kind: 'bc', hidden: [...(overrides.hidden ?? BC_DEFAULTS.hidden)] };
  envSpec(c.env);
  checkInt(where, 'seed', c.seed, 0);
  checkInt(where, 'epochs', c.epochs, 1);
  checkInt(where, 'stepsPerEpoch', c.stepsPerEpoch, 1);
  checkInt(where, 'batchSize', c.batchSize, 1);
  if (typeof c.lr !== 'number' || !(c.lr > 0 && Number.isFinite(c.lr))) throw new ValidationError(where, 'lr', `expected a finite number > 0, got ${describe(c.lr)}`);
  if (!Array.isArray(c.hidden) || c.hidden.length === 0 || !c.hidden.every((h) => Number.isInteger(h) && h > 0)) {
    throw new ValidationError(where, 'hidden', `expected a non-empty array of positive integers, got ${describe(c.hidden)}`);
  }
  if (c.activation !== 'relu' && c.activation !== 'tanh') throw new ValidationError(where, 'activation', `expected 'relu' or 'tanh', got ${describe(c.activation)}`);
  checkInt(where, 'evalEvery', c.evalEvery, 1);
  checkInt(where, 'evalEpisodes', c.evalEpisodes, 0);
  return c;
}

/** The policy BC fits: the config's MLP, clip squash, a state-independent log-std, observations clipped to ±10. */
export function bcPolicySpec(config: Pick<BcConfig, 'hidden' | 'activation'>, obsDim: number, actionSpace: Box): GaussianMlpPolicySpec {
  return makePolicySpec({ obsDim, actionSpace, hidden: [...config.hidden], activation: config.activation, squash: 'clip', stdMode: 'parameter', initLogStd: 0, obsClip: 10 });
}

// ---------------------------------------------------------------------------------------------
// The loss

/** L = mean over rows and action dimensions of (ã − μ)², for μ and ã [n, actDim] (normalised units). */
export function bcLoss(mean: tf.Tensor2D, target: tf.Tensor2D): tf.Scalar {
  return tf.mean(tf.square(tf.sub(mean, target))) as tf.Scalar;
}

/**
 * Per-dimension mean and standard deviation of the dataset's observations (float64 sums), the
 * policy's input normalisation. Standard deviations are floored at 1e-6 (as `setObsNormalization`),
 * so a constant dimension normalises to 0.
 */
export function observationMoments(data: Pick<OfflineData, 'size' | 'obsDim' | 'observations'>): { mean: Float32Array; std: Float32Array } {
  const { size: n, obsDim: D, observations: x } = data;
  const sum = new Float64Array(D);
  for (let i = 0; i < n; i++) for (let d = 0; d < D; d++) sum[d] += x[i * D + d];
  const mean = Float64Array.from(sum, (s) => s / n);
  const sq = new Float64Array(D);
  for (let i = 0; i < n; i++) for (let d = 0; d < D; d++) sq[d] += (x[i * D + d] - mean[d]) ** 2;
  return { mean: Float32Array.from(mean), std: Float32Array.from(sq, (s) => Math.max(Math.sqrt(s / n), 1e-6)) };
}

// ---------------------------------------------------------------------------------------------
// The loop

/** What one epoch reports. */
export interface BcEpochMetrics {
  epoch: number;
  /** Gradient steps so far. */
  gradientSteps: number;
  /** Mean L over the epoch's steps (normalised action units squared). */
  loss: number;
  /** σ̂ per action dimension after the epoch (normalised units). */
  actionStd: number[];
  /** Mean deterministic return in the simulator (null between evaluations). */
  evalReturn: number | null;
  seconds: number;
}

/** Everything a BC run needs to continue exactly where it stopped after an epoch (for checkpoints). */
export interface BcState {
  config: BcConfig;
  /** Epochs done. */
  epoch: number;
  /** The policy's architecture and action bounds (`bcPolicySpec`). */
  spec: GaussianMlpPolicySpec;
  /** The policy's weights, normalisation and log σ̂ included. */
  policy: PolicyWeights;
  /** Adam's moments over the network's weights and biases (`policy.variables` order, log-std excluded). */
  adam: AdamState;
  /** The minibatch generator. */
  rng: RngState;
  history: BcEpochMetrics[];
}

export interface BcHooks {
  /** After every epoch (awaited), with the state to checkpoint. */
  onEpoch?: (m: BcEpochMetrics, state: BcState) => Promise<void> | void;
  log?: (line: string) => void;
}

/** What `trainBc` returns; the caller owns (and disposes) the policy. */
export interface BcResult {
  config: BcConfig;
  policy: GaussianMlpPolicy;
  history: BcEpochMetrics[];
}

/**
 * Fits a BC policy to the dataset's (observation, action) pairs; deterministic for a seed.
 * @param data the dataset (observations and actions are read)
 * @param env the task: its action bounds, and the evaluation runs (never trained on)
 * @param resume a state from `onEpoch` of a run with the same config (only `epochs` may differ)
 * @throws ValidationError for data that do not fit the task, or a resume state of another run
 * @example
 * const { policy, history } = await trainBc(makeBcConfig({ env: 'Pendulum-v1', epochs: 5 }), data, new Pendulum());
 */
export async function trainBc(config: BcConfig, data: Pick<OfflineData, 'size' | 'obsDim' | 'actDim' | 'observations' | 'actions'>, env: Env, hooks: BcHooks = {}, resume?: BcState): Promise<BcResult> {
  const where = 'trainBc';
  const log = hooks.log ?? (() => {});
  const { size: N, obsDim: D, actDim: A } = data;
  if (D !== env.observationSpace.dim || A !== env.actionSpace.dim) {
    throw new ValidationError(where, 'data', `expected obsDim ${env.observationSpace.dim} and actDim ${env.actionSpace.dim} (${config.env}), got ${D} and ${A}`);
  }
  if (N < 1) throw new ValidationError(where, 'data.size', `expected at least 1 transition, got ${N}`);
  if (!env.actionSpace.isBounded()) throw new ValidationError(where, 'env.actionSpace', 'expected finite action bounds (the targets are normalised to them)');
  const spec = bcPolicySpec(config, D, env.actionSpace);
  if (resume) checkBcResume(config, resume, spec);

  // Regression targets in normalised units, computed once.
  const lo = env.actionSpace.low;
  const hi = env.actionSpace.high;
  const target = new Float32Array(N * A);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < A; j++) target[i * A + j] = Math.min(1, Math.max(-1, (data.actions[i * A + j] - (hi[j] + lo[j]) / 2) / ((hi[j] - lo[j]) / 2)));
  }

  const policy = resume ? new GaussianMlpPolicy(spec, { weights: resume.policy }) : new GaussianMlpPolicy(spec, { rng: new Rng(config.seed, 1) });
  if (!resume) {
    const { mean, std } = observationMoments(data);
    policy.setObsNormalization(mean, std);
  }
  const rng = new Rng(config.seed, 2);
  // The trained variables: W0, b0, …, WL, bL (the log-std is set from the residuals, not by gradient).
  const vars = policy.variables.slice(0, 2 * (spec.hidden.length + 1));
  const params = new Float32Array(vars.reduce((s, v) => s + v.size, 0));
  let o = 0;
  for (const v of vars) {
    params.set(v.dataSync(), o);
    o += v.size;
  }
  const adam: AdamState = { m: new Float32Array(params.length), v: new Float32Array(params.length), step: 0 };
  const history: BcEpochMetrics[] = [];
  if (resume) {
    adam.m.set(resume.adam.m);
    adam.v.set(resume.adam.v);
    adam.step = resume.adam.step;
    rng.setState(resume.rng);
    history.push(...resume.history);
  }

  const B = config.batchSize;
  const obsBatch = new Float32Array(B * D);
  const targetBatch = new Float32Array(B * A);
  try {
    for (let epoch = (resume?.epoch ?? 0) + 1; epoch <= config.epochs; epoch++) {
      const start = performance.now();
      let lossSum = 0;
      const sqResidual = new Float64Array(A);
      for (let s = 0; s < config.stepsPerEpoch; s++) {
        for (let r = 0; r < B; r++) {
          const i = rng.int(N);
          obsBatch.set(data.observations.subarray(i * D, (i + 1) * D), r * D);
          targetBatch.set(target.subarray(i * A, (i + 1) * A), r * A);
        }
        // [L, mean residual² per action dimension, ∂L/∂θ flattened], read back once.
        const out = tf.tidy(() => {
          const obsNorm = policy.normalizeObs(tf.tensor2d(obsBatch, [B, D]));
          const y = tf.tensor2d(targetBatch, [B, A]);
          let perDim: tf.Tensor = tf.zeros([A]);
          const { value, grads } = tf.variableGrads(() => {
            const mu = sacPolicyForward(spec, policy.variables, obsNorm).mean;
            perDim = tf.keep(tf.mean(tf.square(tf.sub(mu, y)), 0));
            return bcLoss(mu, y);
          }, vars);
          const flat = tf.concat([tf.reshape(value, [1]), perDim, ...vars.map((v) => tf.reshape(grads[v.name], [-1]))]);
          perDim.dispose();
          return flat;
        });
        const r = out.dataSync() as Float32Array;
        out.dispose();
        lossSum += r[0];
        for (let j = 0; j < A; j++) sqResidual[j] += r[1 + j];
        adamStep(params, r.subarray(1 + A), adam, config.lr);
        writeVariables(vars, params);
      }
      // σ̂_j² from this epoch's residuals (see the file comment), written as the policy's log-std.
      const steps = config.stepsPerEpoch;
      const logStd = Float32Array.from(sqResidual, (q) => 0.5 * Math.log(Math.max(q / steps, 1e-12)));
      tf.tidy(() => policy.variables[vars.length].assign(tf.tensor1d(logStd)));
      let evalReturn: number | null = null;
      if (config.evalEpisodes > 0 && (epoch % config.evalEvery === 0 || epoch === config.epochs)) {
        evalReturn = runEpisodes(env, policy, { episodes: config.evalEpisodes, seed: SAC_EVAL_SEED }).mean;
      }
      const m: BcEpochMetrics = {
        epoch,
        gradientSteps: epoch * steps,
        loss: lossSum / steps,
        actionStd: Array.from(logStd, (l) => Math.exp(l)),
        evalReturn,
        seconds: (performance.now() - start) / 1000,
      };
      history.push(m);
      log(`bc epoch ${epoch}: loss ${m.loss.toExponential(3)}, eval ${evalReturn?.toFixed(1) ?? '-'}, ${m.seconds.toFixed(1)} s`);
      const adamCopy: AdamState = { m: Float32Array.from(adam.m), v: Float32Array.from(adam.v), step: adam.step };
      await hooks.onEpoch?.(m, { config, epoch, spec, policy: policy.getWeights(), adam: adamCopy, rng: rng.getState(), history: [...history] });
    }
  } catch (err) {
    policy.dispose();
    throw err;
  }
  return { config, policy, history };
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

/** @throws ValidationError when `resume` is not a state of a run with `config` (all keys but `epochs` must agree) */
function checkBcResume(config: BcConfig, resume: BcState, spec: GaussianMlpPolicySpec): void {
  const where = 'trainBc(resume)';
  const same = (c: BcConfig): string => JSON.stringify({ ...c, epochs: 0 });
  if (same(resume.config) !== same(config)) throw new ValidationError(where, 'config', `expected the resumed run's config (only epochs may change), got ${JSON.stringify(resume.config)} for a run of ${JSON.stringify(config)}`);
  checkInt(where, 'epoch', resume.epoch, 0);
  if (resume.history.length !== resume.epoch) throw new ValidationError(where, 'history', `expected ${resume.epoch} entries (one per epoch done), got ${resume.history.length}`);
  if (JSON.stringify(resume.spec) !== JSON.stringify(spec)) throw new ValidationError(where, 'spec', `expected ${JSON.stringify(spec)} (this config and task), got ${JSON.stringify(resume.spec)}`);
  checkPolicyWeights(spec, resume.policy);
  const n = resume.policy.layers.reduce((s, l) => s + l.W.length + l.b.length, 0);
  for (const key of ['m', 'v'] as const) {
    if (resume.adam?.[key]?.length !== n) throw new ValidationError(where, `adam.${key}`, `expected ${n} values (the network's weights and biases), got ${describe(resume.adam?.[key])}`);
  }
  checkInt(where, 'adam.step', resume.adam.step, 0);
}
