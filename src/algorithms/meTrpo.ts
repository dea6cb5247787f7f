/**
 * ME-TRPO: Model-Ensemble Trust-Region Policy Optimization (Kurutach, Clavera, Duan, Tamar,
 * Abbeel 2018, https://arxiv.org/abs/1802.10592; original code github.com/thanard/me-trpo).
 *
 * Algorithm 1 of the paper, top to bottom:
 *   repeat
 *     collect real episodes with the current (stochastic) policy, add them to D
 *     fit every member f_φk of a deterministic ensemble on D (next-state change, MSE)
 *     repeat
 *       imagined rollouts from real start states, each step through a member drawn at random
 *       one TRPO step on them
 *       every `evalEvery` steps: the policy's return η̂(θ; φ_k) in each member k; stop when it
 *         improved in fewer than `improvementRatio` (70 %) of the members `patience` times running
 *     until stopped
 *
 * Choices where the paper leaves room, each a config field: the policy keeps the parameters of
 * the last validation that passed (the original `NNPolicy` keeps its best validated policy); the
 * policy's log-std is reset to its initial value before each policy phase (the original's
 * `trpo.reset: true`), which keeps exploring once the model has been refitted; real data comes from
 * the stochastic policy itself (the original adds parameter and action noise on top).
 */
import * as tf from '@tensorflow/tfjs';
import type { Env, PhysicsParams } from '../core/env.js';
import { ValidationError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { envSpec } from '../envs/registry.js';
import { ENSEMBLE_PRESETS, type EnsembleConfig } from '../models/ensemble.js';
import { OrtEnsemblePredictor } from '../models/ensembleOnnx.js';
import { ModelEnv } from '../models/modelEnv.js';
import type { EnsembleFitConfig } from '../models/trainer.js';
import { selectMembers, type EnsembleWeights } from '../models/types.js';
import type { GaussianMlpPolicy } from '../policies/gaussianMlpPolicy.js';
import { LinearFeatureBaseline } from '../policies/linearFeatureBaseline.js';
import { refitKeepingLastGood } from './mbrl.js';
import { addToBuffer, evaluateOnRealSystem, imaginedStateBounds, makeModelBasedPolicyConfig, normalizePolicyOnBuffer, startModelBasedPolicyRun, type ModelBasedPolicyOverrides, type ModelBasedPolicyState } from './modelBasedPolicy.js';
import { ModelRolloutSource } from './modelRollouts.js';
import { collectRollouts, EnvRolloutSource, meanOrNull, standardize } from './policyGradient.js';
import { TRUST_REGION_DEFAULTS, advantagesOf, checkBool, checkInt, checkUnit, meanLogStd, trpoStep, type PolicyArchitecture, type TrustRegionConfig } from './trpo.js';

// ---------------------------------------------------------------------------------------------
// Config

/** Configuration of an ME-TRPO run. */
export interface MeTrpoConfig extends TrustRegionConfig {
  /** Always `'me-trpo'`. */
  kind: 'me-trpo';
  /** Built-in task id. */
  env: string;
  seed: number;
  /** Real environment steps in total (evaluation episodes not counted). */
  steps: number;
  /** Real episodes collected per iteration. Default 3 (the original's 3,000 steps per iteration at horizon 1000). */
  realEpisodesPerIteration: number;
  /** Deterministic ensemble (default `ENSEMBLE_PRESETS.meTrpo`: K = 5, MSE) and its width. */
  ensemble: Partial<EnsembleConfig>;
  /** Ensemble training (early stopping on a holdout, as PETS). */
  fit: Partial<EnsembleFitConfig>;
  /** The policy network. Default 32 × 32 tanh, log σ 0 (the original's). */
  policy: PolicyArchitecture;
  /** Imagined steps per TRPO step. Default 50,000 (the original's batch). */
  imaginedSteps: number;
  /** Imagined episodes stepped together. Default 50. */
  imaginedEnvs: number;
  /** Imagined episode length T; null: the task's time limit. */
  imaginedHorizon: number | null;
  /**
   * Imagined rollouts end (counted as diverged) when a state leaves the range of the real states
   * seen so far widened by this fraction of it on each side; null (default): only non-finite or
   * |x| ≥ 1e6 states end them.
   */
  stateBoundMargin: number | null;
  /** Discount γ. Default 0.99 (the original uses 1 with T = 100). */
  gamma: number;
  /** GAE λ. Default 1 (rllab's Monte-Carlo advantages, as the original). */
  gaeLambda: number;
  /** TRPO steps per policy phase at most. Default 100. */
  maxPolicyIterations: number;
  /** Validate in every member after this many TRPO steps. Default 5 (the paper's). */
  evalEvery: number;
  /** A validation passes when the return improved in at least this fraction of members. Default 0.7 (the paper's). */
  improvementRatio: number;
  /** Failed validations in a row that end the policy phase. Default 5 (the original's 25 iterations / 5). */
  patience: number;
  /** Start states per member in a validation (deterministic policy, length T). Default 10. */
  validationStarts: number;
  /** Reset the policy's log σ to `policy.initLogStd` before each policy phase. Default true. */
  resetLogStd: boolean;
  /** Real evaluation episodes of the deterministic policy after each iteration (not counted in `steps`). Default 3. */
  evalEpisodes: number;
  bufferCapacity: number;
  physics: Partial<PhysicsParams>;
  maxEpisodeSteps: number | null;
}

/** ME-TRPO's defaults (see `MeTrpoConfig` for sources). */
export const ME_TRPO_DEFAULTS = {
  kind: 'me-trpo',
  env: 'Pendulum-v1',
  seed: 0,
  steps: 200_000,
  realEpisodesPerIteration: 3,
  ensemble: { ...ENSEMBLE_PRESETS.meTrpo, learnReward: false, hidden: [200, 200, 200] },
  // Each fit starts Adam afresh: a resumed run then equals an uninterrupted one (as PETS).
  fit: { resetOptimizer: true },
  ...TRUST_REGION_DEFAULTS,
  // Imagined batches are large: Fisher-vector products on every 5th sample (Baselines' TRPO) make
  // a TRPO step ~3.4× faster here (measured side by side on 10,000-sample batches).
  fisherSubsample: 5,
  policy: { hidden: [32, 32], activation: 'tanh', initLogStd: 0 },
  imaginedSteps: 50_000,
  imaginedEnvs: 50,
  imaginedHorizon: null,
  stateBoundMargin: null,
  gamma: 0.99,
  gaeLambda: 1,
  maxPolicyIterations: 100,
  evalEvery: 5,
  improvementRatio: 0.7,
  patience: 5,
  validationStarts: 10,
  resetLogStd: true,
  evalEpisodes: 3,
  bufferCapacity: 1_000_000,
  physics: {},
  maxEpisodeSteps: null,
} as const satisfies MeTrpoConfig;

/**
 * Per-task overrides that keep a run affordable on two cores. Pendulum: 3-D dynamics fit by
 * 3 × 64 members (as PETS's), one episode per iteration, 10,000 imagined steps per TRPO step.
 */
export const ME_TRPO_ENV_OVERRIDES: Record<string, Partial<MeTrpoConfig>> = {
  'Pendulum-v1': {
    steps: 3000,
    realEpisodesPerIteration: 1,
    ensemble: { ...ENSEMBLE_PRESETS.meTrpo, learnReward: false, hidden: [64, 64, 64] },
    imaginedSteps: 10_000,
    maxPolicyIterations: 60,
  },
  // 4-D dynamics; imagined episodes of 100 steps (a policy that balances that long in the model
  // balances far longer on the real pole), five real episodes per iteration (early ones last ~5 steps).
  'InvertedPendulum-v5': {
    steps: 3000,
    realEpisodesPerIteration: 5,
    ensemble: { ...ENSEMBLE_PRESETS.meTrpo, learnReward: false, hidden: [64, 64, 64] },
    imaginedHorizon: 100,
    imaginedSteps: 5000,
    maxPolicyIterations: 30,
  },
};

export type MeTrpoOverrides = ModelBasedPolicyOverrides<MeTrpoConfig>;

/**
 * Merges per-task overrides and `overrides` into `ME_TRPO_DEFAULTS` and validates.
 * @throws ValidationError naming the key, the value and what was expected
 */
export function makeMeTrpoConfig(overrides: MeTrpoOverrides = {}): MeTrpoConfig {
  const where = 'makeMeTrpoConfig';
  const c = makeModelBasedPolicyConfig<MeTrpoConfig>(where, 'ME-TRPO', ME_TRPO_DEFAULTS, ME_TRPO_ENV_OVERRIDES, overrides);
  checkInt(where, 'imaginedSteps', c.imaginedSteps, 1);
  checkInt(where, 'imaginedEnvs', c.imaginedEnvs, 1);
  checkInt(where, 'maxPolicyIterations', c.maxPolicyIterations, 1);
  checkInt(where, 'evalEvery', c.evalEvery, 1);
  checkUnit(where, 'improvementRatio', c.improvementRatio);
  checkInt(where, 'patience', c.patience, 1);
  checkInt(where, 'validationStarts', c.validationStarts, 1);
  checkBool(where, 'resetLogStd', c.resetLogStd);
  return c;
}

// ---------------------------------------------------------------------------------------------
// The stopping rule

/** Where the policy phase's validation stands. */
export interface ValidationState {
  /** Per-member returns of the last validation that passed (the first validation always passes). */
  reference: number[] | null;
  /** Failed validations in a row. */
  strikes: number;
}

/** What one validation decided. */
export interface ValidationDecision {
  /** Fraction of members whose return did not get worse than the reference (see `meTrpoValidation`). */
  improvedFraction: number;
  /** The validation passed: keep these parameters and returns as the new reference. */
  passed: boolean;
  /** Stop the policy phase (and go back to the last passed parameters). */
  stop: boolean;
  next: ValidationState;
}

/**
 * ME-TRPO's stopping rule (Kurutach et al. 2018, §4.4; the original's `stop_critereon` in
 * vector mode): the validation passes when the policy's return improved in at least `ratio` of
 * the members; `patience` failures in a row stop the policy phase. As in the original code, a
 * member "improved" unless its return got strictly worse (`loss_new > loss_old` marks the
 * failures), so a return already at its maximum (e.g. surviving the whole imagined horizon) counts.
 * @param returns η̂(θ; φ_k) for each member k
 */
export function meTrpoValidation(state: ValidationState, returns: readonly number[], ratio: number, patience: number): ValidationDecision {
  if (state.reference === null) {
    return { improvedFraction: 1, passed: true, stop: false, next: { reference: [...returns], strikes: 0 } };
  }
  const ref = state.reference;
  if (ref.length !== returns.length) throw new ValidationError('meTrpoValidation', 'returns', `expected ${ref.length} member returns, got ${returns.length}`);
  const improved = returns.filter((r, k) => !(r < ref[k])).length / returns.length;
  if (improved >= ratio) return { improvedFraction: improved, passed: true, stop: false, next: { reference: [...returns], strikes: 0 } };
  const strikes = state.strikes + 1;
  return { improvedFraction: improved, passed: false, stop: strikes >= patience, next: { reference: ref, strikes } };
}

// ---------------------------------------------------------------------------------------------
// State, metrics, hooks

/** What one iteration (collect → fit → policy phase) reports. */
export interface MeTrpoIterationMetrics {
  iteration: number;
  /** Real environment steps so far. */
  envSteps: number;
  /** Mean return of this iteration's real (stochastic-policy) episodes. */
  collectReturn: number;
  /** Mean return of the deterministic policy over `evalEpisodes` real episodes after the policy phase (null when 0). */
  evalReturn: number | null;
  /** Holdout MSE of each member after the fit (null when the fit failed and the last model was kept). */
  holdoutLoss: number[] | null;
  fitError?: string;
  /** TRPO steps taken in the model and the validations' improved fractions. */
  policyIterations: number;
  improvedFractions: number[];
  /** Why the policy phase ended. */
  stopReason: 'validation' | 'maxPolicyIterations';
  /** Imagined episodes cut because the model diverged. */
  divergedRollouts: number;
  meanLogStd: number;
  seconds: number;
}

/** Everything needed to continue a run (a checkpoint's content). */
export type MeTrpoState = ModelBasedPolicyState<MeTrpoConfig, MeTrpoIterationMetrics>;

export interface MeTrpoHooks {
  /** After every iteration, with the state to checkpoint (awaited). */
  onIteration?: (metrics: MeTrpoIterationMetrics, state: MeTrpoState) => Promise<void> | void;
  log?: (line: string) => void;
}

// ---------------------------------------------------------------------------------------------
// The loop

/**
 * Runs (or resumes) ME-TRPO on `env` until `config.steps` real steps.
 * @param env the real system, made by the caller from `config.env` (and its physics)
 * @param resume a state from a checkpoint; its config must equal `config`
 * @returns the final state; `state.policy` holds the trained policy's weights
 * @example
 * const config = makeMeTrpoConfig({ env: 'Pendulum-v1', seed: 1 });
 * const state = await trainMeTrpo(config, await makeEnv(config.env));
 */
export async function trainMeTrpo(config: MeTrpoConfig, env: Env, hooks: MeTrpoHooks = {}, resume?: MeTrpoState): Promise<MeTrpoState> {
  const log = hooks.log ?? (() => {});
  const task = envSpec(config.env).task;
  const { state, rng, policy, ensemble, horizon } = startModelBasedPolicyRun('trainMeTrpo', config, env, resume);
  try {
    while (state.envSteps < config.steps) {
      const start = performance.now();
      state.iteration += 1;

      // 1. Real episodes with the stochastic policy (whole episodes: each iteration starts fresh,
      //    so a resumed run equals an uninterrupted one).
      const real = await collectRollouts(new EnvRolloutSource(env, { seed: config.seed * 100_003 + state.iteration }), policy, rng, {
        episodes: config.realEpisodesPerIteration,
      });
      addToBuffer(state, real);
      state.envSteps += real.size;

      // 2. Refit the ensemble (a failed fit keeps the last good model).
      const refit = await refitKeepingLastGood(ensemble, state.buffer, config.fit, rng.fork(), state.ensemble !== null);
      const holdoutLoss = refit.fit ? refit.fit.bestHoldoutLoss : null;
      const fitError = refit.error;
      if (refit.fit) {
        state.ensemble = ensemble.toWeights();
        log(`me-trpo it ${state.iteration}: fit ${refit.fit.epochs} epochs (${refit.fit.stopReason}), holdout [${refit.fit.bestHoldoutLoss.map((x) => x.toPrecision(3)).join(', ')}]`);
      } else {
        log(`me-trpo it ${state.iteration}: fit failed, keeping the previous model: ${refit.error}`);
      }

      // 3. Policy phase in the model.
      normalizePolicyOnBuffer(policy, state.buffer);
      if (config.resetLogStd) resetLogStd(policy, config.policy.initLogStd);
      const phase = await policyPhase(config, policy, state.ensemble as EnsembleWeights, Float64Array.from(state.startStates), horizon, task, rng, log, imaginedStateBounds(config, state.buffer));
      state.policy = policy.getWeights();

      // 4. Evaluate the deterministic policy on the real system.
      const evalReturn = await evaluateOnRealSystem(config, policy, env, state.iteration, rng);
      const metrics: MeTrpoIterationMetrics = {
        iteration: state.iteration,
        envSteps: state.envSteps,
        collectReturn: meanOrNull(real.episodeReturns) ?? 0,
        evalReturn,
        holdoutLoss,
        ...(fitError ? { fitError } : {}),
        policyIterations: phase.iterations,
        improvedFractions: phase.improvedFractions,
        stopReason: phase.stopReason,
        divergedRollouts: phase.diverged,
        meanLogStd: meanLogStd(policy),
        seconds: (performance.now() - start) / 1000,
      };
      state.history.push(metrics);
      state.rng = rng.getState();
      log(
        `me-trpo it ${state.iteration}: steps ${state.envSteps}, collect ${metrics.collectReturn.toFixed(1)}, eval ${evalReturn?.toFixed(1) ?? '-'}, ${phase.iterations} TRPO steps (${phase.stopReason}), ${metrics.seconds.toFixed(0)} s`,
      );
      await hooks.onIteration?.(metrics, state);
    }
  } finally {
    policy.dispose();
    ensemble.dispose();
  }
  return state;
}

/**
 * ME-TRPO's policy phase: TRPO in the ensemble until the validation rule stops it (or
 * `maxPolicyIterations` steps); leaves the last validated parameters in `policy`. `trainMeTrpo`
 * runs it after each refit; the control node's learner runs it after each promoted refit.
 * @param weights the ensemble (every member is validated)
 * @param startStates real start states, row-major [m, obsDim]
 * @param onStep called after every TRPO step with the steps taken so far (a heartbeat; a throw aborts the phase)
 */
export async function policyPhase(
  config: MeTrpoConfig,
  policy: GaussianMlpPolicy,
  weights: EnsembleWeights,
  startStates: Float64Array,
  horizon: number,
  task: ReturnType<typeof envSpec>['task'],
  rng: Rng,
  log: (line: string) => void,
  stateBounds?: { low: Float64Array; high: Float64Array },
  onStep?: (steps: number) => void,
): Promise<{ iterations: number; improvedFractions: number[]; stopReason: 'validation' | 'maxPolicyIterations'; diverged: number }> {
  const K = weights.spec.numMembers;
  const all = await OrtEnsemblePredictor.create(weights, { intraOpThreads: 1 });
  const members = await Promise.all(Array.from({ length: K }, (_, k) => OrtEnsemblePredictor.create(selectMembers(weights, [k]), { intraOpThreads: 1 })));
  const baseline = new LinearFeatureBaseline({ obsDim: policy.obsDim });
  try {
    const source = new ModelRolloutSource(new ModelEnv(all, { task, propagation: 'ts1', rng: rng.fork() }), {
      numEnvs: config.imaginedEnvs,
      horizon,
      startStates,
      rng: rng.fork(),
      stateBounds,
    });
    // Validation start states: a fixed draw for the whole phase, so returns compare like with like.
    const D = policy.obsDim;
    const valRng = rng.fork();
    const numStarts = startStates.length / D;
    const valStarts = new Float64Array(config.validationStarts * D);
    for (let i = 0; i < config.validationStarts; i++) {
      const s = valRng.int(numStarts);
      valStarts.set(startStates.subarray(s * D, (s + 1) * D), i * D);
    }
    const memberEnvs = members.map((p) => new ModelEnv(p, { task, rng: new Rng(0) }));
    const validate = async (): Promise<number[]> => {
      const out: number[] = [];
      for (const m of memberEnvs) out.push(await modelReturn(m, policy, valStarts, config.validationStarts, horizon));
      return out;
    };
    let val: ValidationState = { reference: null, strikes: 0 };
    let best = policy.getFlatParams();
    const improvedFractions: number[] = [];
    let stopReason: 'validation' | 'maxPolicyIterations' = 'maxPolicyIterations';
    let it = 0;
    while (it < config.maxPolicyIterations) {
      if (it % config.evalEvery === 0) {
        const d = meTrpoValidation(val, await validate(), config.improvementRatio, config.patience);
        val = d.next;
        if (it > 0) improvedFractions.push(d.improvedFraction);
        if (d.passed) best = policy.getFlatParams();
        if (d.stop) {
          stopReason = 'validation';
          break;
        }
      }
      const batch = await collectRollouts(source, policy, rng, { steps: config.imaginedSteps });
      const { advantages, returns } = advantagesOf(batch, baseline, config.gamma, config.gaeLambda);
      trpoStep(policy, batch, standardize(advantages), config);
      baseline.fit(batch.obs, batch.timesteps, returns, batch.size);
      it++;
      onStep?.(it);
    }
    if (stopReason === 'maxPolicyIterations') {
      // A last validation decides between the final parameters and the last validated ones.
      const d = meTrpoValidation(val, await validate(), config.improvementRatio, Infinity);
      improvedFractions.push(d.improvedFraction);
      if (d.passed) best = policy.getFlatParams();
    }
    policy.setFlatParams(best);
    log(`  policy phase: ${it} TRPO steps, improved fractions [${improvedFractions.map((f) => f.toFixed(1)).join(', ')}], ${source.diverged} diverged rollouts`);
    return { iterations: it, improvedFractions, stopReason, diverged: source.diverged };
  } finally {
    all.dispose();
    for (const p of members) p.dispose();
  }
}

/**
 * Mean undiscounted return of the deterministic policy over `n` episodes of `horizon` steps in a
 * model, from the given start states (a terminated row collects nothing more).
 */
export async function modelReturn(modelEnv: ModelEnv, policy: GaussianMlpPolicy, starts: Float64Array, n: number, horizon: number): Promise<number> {
  modelEnv.reset(starts, n);
  let obs: ArrayLike<number> = starts;
  let total = 0;
  for (let t = 0; t < horizon; t++) {
    const r = await modelEnv.step(policy.actBatchFast(obs, n));
    let alive = 0;
    for (let i = 0; i < n; i++) {
      total += r.rewards[i];
      if (!r.dones[i]) alive++;
    }
    if (alive === 0) break;
    obs = r.obs;
  }
  return Number.isFinite(total) ? total / n : -Infinity;
}

/** Sets a parameter-mode policy's log σ to `value` in every dimension (ME-TRPO's `resetLogStd`). */
export function resetLogStd(policy: GaussianMlpPolicy, value: number): void {
  if (policy.spec.stdMode !== 'parameter') return;
  const v = policy.variables[policy.variables.length - 1];
  tf.tidy(() => v.assign(tf.fill(v.shape, value)));
}
