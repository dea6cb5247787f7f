/**
 * MB-MPO: Model-Based Meta-Policy Optimization (Clavera, Rothfuss, Schulman, Fujita, Asfour,
 * Abbeel 2018, https://arxiv.org/abs/1809.05214; original code
 * github.com/jonasrothfuss/model_ensemble_meta_learning).
 *
 * Each ensemble member k is a task. The meta-policy θ is trained so that one policy-gradient step
 * on a member's own imagined trajectories makes it good in that member:
 *
 *   θ'_k = θ + α ∇_θ J_k(θ)                                      (inner step, `adaptParams`)
 *   max_θ (1/K) Σ_k J_k(θ'_k(θ))   s.t.  mean KL(π_θ'_k,old ‖ π_θ'_k(θ)) ≤ δ   (outer TRPO step)
 *
 * The loop, top to bottom:
 *   repeat
 *     collect real episodes, each with the policy adapted to a member (the real system is one more task)
 *     fit the deterministic ensemble on all real data
 *     `metaStepsPerIteration` times: for every member, imagined trajectories with θ (pre-update),
 *       the inner step, trajectories with θ'_k (post-update); then one TRPO step on the meta objective
 *
 * The meta-gradient goes through the inner step exactly (tfjs second-order gradients, with
 * `tfMath`'s higher-order-safe exp and tanh) or first-order (`metaGradient: 'firstOrder'`). The
 * trust region's Fisher matrix is that of the post-update KL with the inner gradient held at its
 * θ_old value (so its Hessian-vector products stay second-order); the line search checks that KL.
 *
 * Online adaptation (`adaptOnRealSystem`): the deployed meta-policy takes the same inner step on
 * fresh real transitions — the robot-side use; `trainMbMpo` evaluates the policy with and
 * without it after every iteration.
 */
import * as tf from '@tensorflow/tfjs';
import type { Env, PhysicsParams, TaskFunctions } from '../core/env.js';
import { ValidationError, describe } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import { envSpec } from '../envs/registry.js';
import { ENSEMBLE_PRESETS, type EnsembleConfig } from '../models/ensemble.js';
import { OrtEnsemblePredictor } from '../models/ensembleOnnx.js';
import { ModelEnv } from '../models/modelEnv.js';
import type { EnsembleFitConfig } from '../models/trainer.js';
import { selectMembers, type EnsembleWeights } from '../models/types.js';
import type { GaussianMlpPolicy } from '../policies/gaussianMlpPolicy.js';
import { LinearFeatureBaseline } from '../policies/linearFeatureBaseline.js';
import { refitKeepingLastGood } from './mbrl.js';
import { addToBuffer, evaluateOnRealSystem, realEvalSeed, imaginedStateBounds, makeModelBasedPolicyConfig, normalizePolicyOnBuffer, startModelBasedPolicyRun, type ModelBasedPolicyOverrides, type ModelBasedPolicyState } from './modelBasedPolicy.js';
import { adaptParams, innerGradient, metaKl, metaObjective, type MetaGradientMode, type MetaTask, type PolicySamples } from './metaGradient.js';
import { ModelRolloutSource, meanActionSampler } from './modelRollouts.js';
import { collectRollouts, concatBatches, EnvRolloutSource, gae, meanOrNull, readFlat, standardize, type SampleBatch } from './policyGradient.js';
import { TRUST_REGION_DEFAULTS, checkInt, meanLogStd, trustRegionStep, type PolicyArchitecture, type TrpoStepStats, type TrustRegionConfig } from './trpo.js';

// ---------------------------------------------------------------------------------------------
// Config

/** Configuration of an MB-MPO run. */
export interface MbMpoConfig extends TrustRegionConfig {
  /** Always `'mb-mpo'`. */
  kind: 'mb-mpo';
  env: string;
  seed: number;
  /** Real environment steps in total (evaluation episodes not counted). */
  steps: number;
  /** Real episodes per iteration, each with the policy adapted to one member (round robin). Default 3. */
  realEpisodesPerIteration: number;
  /** Deterministic ensemble, default `ENSEMBLE_PRESETS.mbMpo` (K = 5). */
  ensemble: Partial<EnsembleConfig>;
  fit: Partial<EnsembleFitConfig>;
  /** Default 32 × 32 tanh, log σ 0 (the original's). */
  policy: PolicyArchitecture;
  /** α, the inner policy-gradient step size. Default 0.001 (the original's). */
  innerStepSize: number;
  /** 'exact' (second order through the inner step) or 'firstOrder'. Default 'exact'. */
  metaGradient: MetaGradientMode;
  /** Imagined trajectories per member per meta-step, before and after adaptation. Default 20 (the original's). */
  trajectoriesPerTask: number;
  /** Imagined trajectory length T; null: the task's time limit. */
  imaginedHorizon: number | null;
  /**
   * Imagined rollouts end (counted as diverged) when a state leaves the range of the real states
   * seen so far widened by this fraction of it on each side; null (default): only non-finite or
   * |x| ≥ 1e6 states end them.
   */
  stateBoundMargin: number | null;
  /** Meta (outer TRPO) steps after each refit. Default 30. */
  metaStepsPerIteration: number;
  /** Discount γ. Default 0.99. */
  gamma: number;
  /** GAE λ. Default 1 (rllab's). */
  gaeLambda: number;
  /** Real evaluation episodes after each iteration, with and without online adaptation (not counted in `steps`). Default 3. */
  evalEpisodes: number;
  bufferCapacity: number;
  physics: Partial<PhysicsParams>;
  maxEpisodeSteps: number | null;
}

export const MB_MPO_DEFAULTS = {
  kind: 'mb-mpo',
  env: 'Pendulum-v1',
  seed: 0,
  steps: 200_000,
  realEpisodesPerIteration: 3,
  ensemble: { ...ENSEMBLE_PRESETS.mbMpo, learnReward: false, hidden: [200, 200, 200] },
  // Each fit starts Adam afresh: a resumed run then equals an uninterrupted one (as PETS).
  fit: { resetOptimizer: true },
  ...TRUST_REGION_DEFAULTS,
  policy: { hidden: [32, 32], activation: 'tanh', initLogStd: 0 },
  innerStepSize: 0.001,
  metaGradient: 'exact',
  trajectoriesPerTask: 20,
  imaginedHorizon: null,
  stateBoundMargin: null,
  metaStepsPerIteration: 30,
  gamma: 0.99,
  gaeLambda: 1,
  evalEpisodes: 3,
  bufferCapacity: 1_000_000,
  physics: {},
  maxEpisodeSteps: null,
} as const satisfies MbMpoConfig;

/** Per-task overrides that keep a run affordable on two cores. */
export const MB_MPO_ENV_OVERRIDES: Record<string, Partial<MbMpoConfig>> = {
  'Pendulum-v1': {
    steps: 3000,
    realEpisodesPerIteration: 1,
    ensemble: { ...ENSEMBLE_PRESETS.mbMpo, learnReward: false, hidden: [64, 64, 64] },
  },
  // As ME-TRPO's: 4-D dynamics, imagined episodes of 100 steps, five real episodes per iteration.
  'InvertedPendulum-v5': {
    steps: 3000,
    realEpisodesPerIteration: 5,
    ensemble: { ...ENSEMBLE_PRESETS.mbMpo, learnReward: false, hidden: [64, 64, 64] },
    imaginedHorizon: 100,
    metaStepsPerIteration: 10,
  },
};

export type MbMpoOverrides = ModelBasedPolicyOverrides<MbMpoConfig>;

/**
 * Merges per-task overrides and `overrides` into `MB_MPO_DEFAULTS` and validates.
 * @throws ValidationError naming the key, the value and what was expected
 */
export function makeMbMpoConfig(overrides: MbMpoOverrides = {}): MbMpoConfig {
  const where = 'makeMbMpoConfig';
  const c = makeModelBasedPolicyConfig<MbMpoConfig>(where, 'MB-MPO', MB_MPO_DEFAULTS, MB_MPO_ENV_OVERRIDES, overrides);
  if (!(c.innerStepSize >= 0 && Number.isFinite(c.innerStepSize))) throw new ValidationError(where, 'innerStepSize', `expected a finite number ≥ 0, got ${describe(c.innerStepSize)}`);
  if (c.metaGradient !== 'exact' && c.metaGradient !== 'firstOrder') throw new ValidationError(where, 'metaGradient', `expected 'exact' or 'firstOrder', got ${describe(c.metaGradient)}`);
  checkInt(where, 'trajectoriesPerTask', c.trajectoriesPerTask, 1);
  checkInt(where, 'metaStepsPerIteration', c.metaStepsPerIteration, 1);
  return c;
}

// ---------------------------------------------------------------------------------------------
// One meta-step

/** Advantages of a batch with a linear baseline fitted on that batch (rllab's MAML sampler). */
export function taskAdvantages(batch: SampleBatch, gamma: number, lambda: number): Float64Array {
  const baseline = new LinearFeatureBaseline({ obsDim: batch.obsDim });
  // Fit on discounted returns first, so the baseline describes this task's own trajectories.
  const { returns } = gae(batch.rewards, new Float64Array(batch.size), new Float64Array(batch.size), batch.terminated, batch.truncated, gamma, 1);
  baseline.fit(batch.obs, batch.timesteps, returns, batch.size);
  const values = baseline.predict(batch.obs, batch.timesteps, batch.size);
  const nextValues = baseline.predict(batch.nextObs, batch.timesteps.map((t) => t + 1), batch.size);
  return standardize(gae(batch.rewards, values, nextValues, batch.terminated, batch.truncated, gamma, lambda).advantages);
}

/** A batch as `PolicySamples` tensors (observations normalised as the policy does). */
export function samplesOf(policy: GaussianMlpPolicy, batch: SampleBatch, adv: Float64Array): PolicySamples {
  return tf.tidy(() => ({
    obsNorm: policy.normalizeObs(tf.tensor2d(batch.obs, [batch.size, batch.obsDim])),
    u: tf.tensor2d(batch.u, [batch.size, batch.actDim]),
    adv: tf.tensor1d(Float32Array.from(adv)),
  }));
}

/** A policy whose parameters are θ'_k (a clone; dispose it). */
export function adaptedPolicy(policy: GaussianMlpPolicy, pre: PolicySamples, innerStepSize: number): GaussianMlpPolicy {
  const adapted = tf.tidy(() => adaptParams(policy.spec, policy.variables, pre, innerStepSize, 'firstOrder'));
  const clone = policy.clone();
  clone.setFlatParams(readFlat(adapted));
  tf.dispose(adapted);
  return clone;
}

/** What one meta-step reports. */
export interface MetaStepStats extends TrpoStepStats {
  /** Mean imagined return per member before and after adaptation. */
  preReturns: number[];
  postReturns: number[];
  /** Wall-clock seconds spent on imagined rollouts and on the outer update. */
  rolloutSeconds: number;
  updateSeconds: number;
}

/**
 * One MB-MPO meta-step: pre-update trajectories in each member, the inner step, post-update
 * trajectories, and the outer TRPO step (which updates `policy` when accepted).
 * @param sources one imagined-rollout source per member
 */
export async function metaStep(policy: GaussianMlpPolicy, sources: readonly ModelRolloutSource[], config: MbMpoConfig, rng: Rng): Promise<MetaStepStats> {
  const tasks: MetaTask[] = [];
  const preReturns: number[] = [];
  const postReturns: number[] = [];
  const t0 = performance.now();
  try {
    for (const source of sources) {
      const preBatch = await collectRollouts(source, policy, rng, { episodes: config.trajectoriesPerTask });
      const pre = samplesOf(policy, preBatch, taskAdvantages(preBatch, config.gamma, config.gaeLambda));
      const adapted = adaptedPolicy(policy, pre, config.innerStepSize);
      try {
        const postBatch = await collectRollouts(source, adapted, rng, { episodes: config.trajectoriesPerTask });
        const postSamples = samplesOf(policy, postBatch, taskAdvantages(postBatch, config.gamma, config.gaeLambda));
        const old = tf.tidy(() => ({
          oldMean: tf.tensor2d(postBatch.oldMean, [postBatch.size, postBatch.actDim]),
          oldLogStd: tf.tensor2d(postBatch.oldLogStd, [postBatch.size, postBatch.actDim]),
        }));
        tasks.push({ pre, post: { ...postSamples, ...old }, innerGrad: innerGradient(policy.spec, policy.variables, pre) });
        preReturns.push(meanOrNull(preBatch.episodeReturns) ?? NaN);
        postReturns.push(meanOrNull(postBatch.episodeReturns) ?? NaN);
      } finally {
        adapted.dispose();
      }
    }
    const spec = policy.spec;
    const t1 = performance.now();
    const { params, stats } = trustRegionStep(
      {
        params: policy.variables,
        surrogate: (p) => metaObjective(spec, p, tasks, config.innerStepSize, config.metaGradient),
        meanKl: (p) => metaKl(spec, p, tasks, config.innerStepSize, 'firstOrder'),
      },
      config,
    );
    if (stats.accepted) policy.setFlatParams(params);
    return { ...stats, preReturns, postReturns, rolloutSeconds: (t1 - t0) / 1000, updateSeconds: (performance.now() - t1) / 1000 };
  } finally {
    for (const t of tasks) tf.dispose([...(t.innerGrad ?? []), t.pre.obsNorm, t.pre.u, t.pre.adv, t.post.obsNorm, t.post.u, t.post.adv, t.post.oldMean, t.post.oldLogStd]);
  }
}

/**
 * Online adaptation on the real system: the inner step θ' = θ + α ∇J(θ) on real trajectories
 * collected with θ (the robot-side use of a meta-policy).
 * @returns the adapted policy (a clone; dispose it) and the batch it adapted on
 */
export async function adaptOnRealSystem(
  policy: GaussianMlpPolicy,
  env: Env,
  options: { episodes: number; seed: number; innerStepSize: number; gamma: number; gaeLambda: number; rng: Rng },
): Promise<{ adapted: GaussianMlpPolicy; batch: SampleBatch }> {
  const batch = await collectRollouts(new EnvRolloutSource(env, { seed: options.seed }), policy, options.rng, { episodes: options.episodes });
  const samples = samplesOf(policy, batch, taskAdvantages(batch, options.gamma, options.gaeLambda));
  try {
    return { adapted: adaptedPolicy(policy, samples, options.innerStepSize), batch };
  } finally {
    tf.dispose([samples.obsNorm, samples.u, samples.adv]);
  }
}

/**
 * MB-MPO's policy phase: `metaStepsPerIteration` meta-steps over the members of `weights` (each
 * member one task, imagined trajectories from real start states). `trainMbMpo` runs it after each
 * refit; the control node's learner runs it after each promoted refit.
 * @param startStates real start states, row-major [m, obsDim]
 * @param onStep called after every meta-step with the steps taken so far (a heartbeat; a throw aborts the phase)
 * @returns the last meta-step's statistics (undefined for none), the accepted steps, the diverged imagined rollouts
 */
export async function metaPolicyPhase(
  config: MbMpoConfig,
  policy: GaussianMlpPolicy,
  weights: EnsembleWeights,
  startStates: Float64Array,
  horizon: number,
  task: TaskFunctions,
  rng: Rng,
  log: (line: string) => void,
  stateBounds?: { low: Float64Array; high: Float64Array },
  onStep?: (steps: number) => void,
): Promise<{ last: MetaStepStats | undefined; accepted: number; diverged: number }> {
  const K = weights.spec.numMembers;
  const predictors = await Promise.all(Array.from({ length: K }, (_, k) => OrtEnsemblePredictor.create(selectMembers(weights, [k]), { intraOpThreads: 1 })));
  let last: MetaStepStats | undefined;
  let accepted = 0;
  try {
    const sources = predictors.map(
      (p) => new ModelRolloutSource(new ModelEnv(p, { task, rng: rng.fork() }), { numEnvs: config.trajectoriesPerTask, horizon, startStates, rng: rng.fork(), stateBounds }),
    );
    for (let m = 0; m < config.metaStepsPerIteration; m++) {
      const t0 = performance.now();
      last = await metaStep(policy, sources, config, rng);
      if (last.accepted) accepted++;
      log(`  meta-step ${m + 1}: imagined return pre ${fmtMean(last.preReturns)} post ${fmtMean(last.postReturns)}, kl ${last.klAfter.toExponential(2)}${last.accepted ? '' : ' (rejected)'}, ${((performance.now() - t0) / 1000).toFixed(1)} s (rollouts ${last.rolloutSeconds.toFixed(1)} s, update ${last.updateSeconds.toFixed(1)} s)`);
      onStep?.(m + 1);
    }
    return { last, accepted, diverged: sources.reduce((s, x) => s + x.diverged, 0) };
  } finally {
    for (const p of predictors) p.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// The loop

export interface MbMpoIterationMetrics {
  iteration: number;
  envSteps: number;
  /** Mean return of this iteration's real episodes (adapted policies). */
  collectReturn: number;
  /** Deterministic meta-policy on the real system, without and with online adaptation (null when evalEpisodes is 0). */
  evalReturn: number | null;
  evalReturnAdapted: number | null;
  holdoutLoss: number[] | null;
  fitError?: string;
  /** Mean over members of the imagined return before / after adaptation, at the last meta-step. */
  preUpdateReturn: number;
  postUpdateReturn: number;
  metaStepsAccepted: number;
  divergedRollouts: number;
  meanLogStd: number;
  seconds: number;
}

export type MbMpoState = ModelBasedPolicyState<MbMpoConfig, MbMpoIterationMetrics>;

export interface MbMpoHooks {
  onIteration?: (metrics: MbMpoIterationMetrics, state: MbMpoState) => Promise<void> | void;
  log?: (line: string) => void;
}

/**
 * Runs (or resumes) MB-MPO on `env` until `config.steps` real steps.
 * @example
 * const config = makeMbMpoConfig({ env: 'Pendulum-v1', seed: 1 });
 * const state = await trainMbMpo(config, await makeEnv(config.env));
 */
export async function trainMbMpo(config: MbMpoConfig, env: Env, hooks: MbMpoHooks = {}, resume?: MbMpoState): Promise<MbMpoState> {
  const log = hooks.log ?? (() => {});
  const task: TaskFunctions = envSpec(config.env).task;
  const { state, rng, policy, ensemble, horizon } = startModelBasedPolicyRun('trainMbMpo', config, env, resume);
  const K = ensemble.spec.numMembers;
  try {
    while (state.envSteps < config.steps) {
      const start = performance.now();
      state.iteration += 1;

      // 1. Real episodes, each with the policy adapted to one member (before the first fit: θ itself).
      const batches: SampleBatch[] = [];
      for (let e = 0; e < config.realEpisodesPerIteration; e++) {
        const source = new EnvRolloutSource(env, { seed: config.seed * 100_003 + state.iteration * 101 + e });
        let actor = policy;
        let predictor: OrtEnsemblePredictor | undefined;
        if (state.ensemble !== null) {
          const k = (state.iteration + e) % K;
          predictor = await OrtEnsemblePredictor.create(selectMembers(state.ensemble, [k]), { intraOpThreads: 1 });
          const src = new ModelRolloutSource(new ModelEnv(predictor, { task, rng: rng.fork() }), { numEnvs: config.trajectoriesPerTask, horizon, startStates: state.startStates, rng: rng.fork(), stateBounds: imaginedStateBounds(config, state.buffer) });
          const pre = await collectRollouts(src, policy, rng, { episodes: config.trajectoriesPerTask });
          const samples = samplesOf(policy, pre, taskAdvantages(pre, config.gamma, config.gaeLambda));
          actor = adaptedPolicy(policy, samples, config.innerStepSize);
          tf.dispose([samples.obsNorm, samples.u, samples.adv]);
        }
        try {
          batches.push(await collectRollouts(source, actor, rng, { episodes: 1 }));
        } finally {
          if (actor !== policy) actor.dispose();
          predictor?.dispose();
        }
      }
      const real = concatBatches(batches);
      addToBuffer(state, real);
      state.envSteps += real.size;

      // 2. Refit (a failed fit keeps the last good model).
      const refit = await refitKeepingLastGood(ensemble, state.buffer, config.fit, rng.fork(), state.ensemble !== null);
      const holdoutLoss = refit.fit ? refit.fit.bestHoldoutLoss : null;
      const fitError = refit.error;
      if (refit.fit) {
        state.ensemble = ensemble.toWeights();
      } else {
        log(`mb-mpo it ${state.iteration}: fit failed, keeping the previous model: ${refit.error}`);
      }

      // 3. Meta-policy optimisation over the members.
      normalizePolicyOnBuffer(policy, state.buffer);
      const { last, accepted, diverged } = await metaPolicyPhase(config, policy, state.ensemble as EnsembleWeights, Float64Array.from(state.startStates), horizon, task, rng, log, imaginedStateBounds(config, state.buffer));
      state.policy = policy.getWeights();

      // 4. Evaluate on the real system without and with online adaptation.
      let evalReturn: number | null = null;
      let evalReturnAdapted: number | null = null;
      if (config.evalEpisodes > 0) {
        const seed = realEvalSeed(config, state.iteration);
        evalReturn = await evaluateOnRealSystem(config, policy, env, state.iteration, rng);
        const { adapted } = await adaptOnRealSystem(policy, env, { episodes: 1, seed: seed + 7, innerStepSize: config.innerStepSize, gamma: config.gamma, gaeLambda: config.gaeLambda, rng: rng.fork() });
        try {
          const evA = await collectRollouts(new EnvRolloutSource(env, { seed }), meanActionSampler(adapted), rng.fork(), { episodes: config.evalEpisodes });
          evalReturnAdapted = meanOrNull(evA.episodeReturns);
        } finally {
          adapted.dispose();
        }
      }
      const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
      const metrics: MbMpoIterationMetrics = {
        iteration: state.iteration,
        envSteps: state.envSteps,
        collectReturn: meanOrNull(real.episodeReturns) ?? 0,
        evalReturn,
        evalReturnAdapted,
        holdoutLoss,
        ...(fitError ? { fitError } : {}),
        preUpdateReturn: last ? mean(last.preReturns) : NaN,
        postUpdateReturn: last ? mean(last.postReturns) : NaN,
        metaStepsAccepted: accepted,
        divergedRollouts: diverged,
        meanLogStd: meanLogStd(policy),
        seconds: (performance.now() - start) / 1000,
      };
      state.history.push(metrics);
      state.rng = rng.getState();
      log(
        `mb-mpo it ${state.iteration}: steps ${state.envSteps}, collect ${metrics.collectReturn.toFixed(1)}, eval ${evalReturn?.toFixed(1) ?? '-'} (adapted ${evalReturnAdapted?.toFixed(1) ?? '-'}), imagined pre ${metrics.preUpdateReturn.toFixed(1)} post ${metrics.postUpdateReturn.toFixed(1)}, ${accepted}/${config.metaStepsPerIteration} meta-steps accepted, ${metrics.seconds.toFixed(0)} s`,
      );
      await hooks.onIteration?.(metrics, state);
    }
  } finally {
    policy.dispose();
    ensemble.dispose();
  }
  return state;
}

function fmtMean(xs: readonly number[]): string {
  return (xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)).toFixed(1);
}
