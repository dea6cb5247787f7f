/**
 * The learner's policy side (ME-TRPO, MB-MPO), run in the learner's worker thread: after each
 * promoted refit, the algorithm's policy phase on the new ensemble, a promotion gate on imagined
 * returns, and (MB-MPO) the online adaptation of the deployed policy to the newest real data.
 *
 * Read top to bottom:
 *   1. every transition the worker receives also passes through `PolicyLearner.add`: the first
 *      state of each real episode (a row whose state is not the previous row's next state) is kept
 *      as a start state of imagined rollouts, as ME-TRPO and MB-MPO start theirs from the real
 *      system's initial states; the newest `adaptWindow` rows are kept in order for MB-MPO;
 *   2. policy phase (`improve`, after a promoted refit): a copy of the running policy, its
 *      observation normalisation set from the training rows, runs the algorithm's own phase on the
 *      promoted ensemble — ME-TRPO's `policyPhase` (at most `stepsPerRefit` TRPO steps, its
 *      validation rule), or MB-MPO's `metaPolicyPhase` (`stepsPerRefit` meta-steps);
 *   3. gate (`policyGate`): the candidate's weights must be finite, and its imagined mean return
 *      (deterministic policy, `imaginedEvalEpisodes` episodes on the new ensemble) at least the
 *      running policy's plus `promotionMargin`; both are evaluated from the same start states with
 *      the same model draws (`imaginedReturns`). A promoted candidate becomes the running policy;
 *   4. MB-MPO online adaptation (`adapt`): θ' = θ + α ∇_θ J(θ) on the newest `adaptWindow` real
 *      transitions (the inner step of `mbMpo.ts`), recomputed every `adaptEveryTransitions` new rows
 *      and after each promotion; the deployed policy is θ', the running (meta) policy θ stays what
 *      the gate and the checkpoints see.
 *
 * Real transitions carry actions, not the Gaussian samples u the inner step's log π_θ(u | s)
 * needs: u is recovered from the action (`(a − mid) / half`, the inverse of the policy's clip or
 * tanh), which is exact unless the action was clipped at a bound or changed by the safety filter.
 * The rows were drawn by the deployed (adapted) policy, not by θ itself, so the inner step is
 * slightly off-policy; with α small (MB-MPO's 0.001) the two are close. With `deterministic: true`
 * the actions are the mean, u = μ(s), and the inner step has nothing to learn from: MB-MPO needs
 * the controller to sample.
 *
 * Nothing here is kept between phases but the running policy's weights: TRPO and the meta-step
 * keep no optimiser state (the baseline is fitted afresh in every phase), so a checkpoint of the
 * weights resumes the learner exactly.
 */
import * as tf from '@tensorflow/tfjs';
import { adaptedPolicy, makeMbMpoConfig, metaPolicyPhase, samplesOf, taskAdvantages, type MbMpoConfig } from '../algorithms/mbMpo.js';
import { makeMeTrpoConfig, modelReturn, policyPhase, resetLogStd, type MeTrpoConfig } from '../algorithms/meTrpo.js';
import { imaginedStateBounds, normalizePolicyOnBuffer } from '../algorithms/modelBasedPolicy.js';
import type { SampleBatch } from '../algorithms/policyGradient.js';
import type { TaskFunctions } from '../core/env.js';
import { ValidationError, describe } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { ReplayBuffer } from '../data/replayBuffer.js';
import type { Batch } from '../data/transition.js';
import { envSpec } from '../envs/registry.js';
import { OrtEnsemblePredictor } from '../models/ensembleOnnx.js';
import { ModelEnv } from '../models/modelEnv.js';
import type { EnsembleWeights } from '../models/types.js';
import { GaussianMlpPolicy, checkPolicySpec, checkPolicyWeights, type GaussianMlpPolicySpec, type PolicyWeights } from '../policies/gaussianMlpPolicy.js';

/** What the learner's policy side does (`LearnerConfig.policy`). */
export interface LearnerPolicyConfig {
  /**
   * The algorithm's whole config (`makeMeTrpoConfig` / `makeMbMpoConfig`): its `env` is the task
   * whose reward and termination score the imagined rollouts; its policy-phase settings apply
   * (imagined steps and horizon, trust region, validation rule, inner step size, …).
   */
  algorithm: MeTrpoConfig | MbMpoConfig;
  /** The policy's architecture and action bounds (the node's bounds). */
  spec: GaussianMlpPolicySpec;
  /** Most TRPO steps (ME-TRPO; its validation rule may stop earlier) or meta-steps (MB-MPO) per policy phase. */
  stepsPerRefit: number;
  /** A candidate is promoted only if its imagined mean return ≥ the running policy's + this (return units; may be negative). */
  promotionMargin: number;
  /** Imagined episodes (of the imagined horizon) each of the candidate and the running policy is evaluated on. */
  imaginedEvalEpisodes: number;
  /** MB-MPO: the newest real transitions the inner step adapts on (≥ 2). Ignored by ME-TRPO. */
  adaptWindow: number;
  /** MB-MPO: adapt again after this many new transitions. Ignored by ME-TRPO. */
  adaptEveryTransitions: number;
}

/**
 * Validates a policy config for `obsDim` / `actDim` and rebuilds its algorithm config through the
 * algorithm's own `make…Config` (so a config that travelled as JSON is checked again).
 * @throws ValidationError naming the key, the value and what was expected
 */
export function makeLearnerPolicyConfig(c: LearnerPolicyConfig, dims: { obsDim: number; actDim: number }): LearnerPolicyConfig {
  const where = 'makeLearnerConfig';
  if (c === null || typeof c !== 'object') throw new ValidationError(where, 'policy', `expected an object or null, got ${describe(c)}`);
  const kind = (c.algorithm as { kind?: unknown } | undefined)?.kind;
  const algorithm = kind === 'me-trpo' ? makeMeTrpoConfig(c.algorithm as MeTrpoConfig) : kind === 'mb-mpo' ? makeMbMpoConfig(c.algorithm as MbMpoConfig) : null;
  if (algorithm === null) throw new ValidationError(where, 'policy.algorithm.kind', `expected 'me-trpo' or 'mb-mpo', got ${describe(kind)}`);
  checkPolicySpec(c.spec);
  if (c.spec.obsDim !== dims.obsDim || c.spec.actDim !== dims.actDim) {
    throw new ValidationError(where, 'policy.spec', `expected obsDim ${dims.obsDim} and actDim ${dims.actDim} (the learner's), got ${c.spec.obsDim} and ${c.spec.actDim}`);
  }
  const taskDim = envSpec(algorithm.env).obsDim;
  if (taskDim !== dims.obsDim) throw new ValidationError(where, 'policy.algorithm.env', `${algorithm.env}'s reward reads ${taskDim} observation values; the learner's observations have ${dims.obsDim}`);
  const posInt = (key: 'stepsPerRefit' | 'imaginedEvalEpisodes' | 'adaptEveryTransitions', min = 1): void => {
    if (!(Number.isInteger(c[key]) && c[key] >= min)) throw new ValidationError(where, `policy.${key}`, `expected an integer ≥ ${min}, got ${describe(c[key])}`);
  };
  posInt('stepsPerRefit');
  posInt('imaginedEvalEpisodes');
  posInt('adaptEveryTransitions');
  if (!(Number.isInteger(c.adaptWindow) && c.adaptWindow >= 2)) throw new ValidationError(where, 'policy.adaptWindow', `expected an integer ≥ 2, got ${describe(c.adaptWindow)}`);
  if (!(typeof c.promotionMargin === 'number' && Number.isFinite(c.promotionMargin))) throw new ValidationError(where, 'policy.promotionMargin', `expected a finite number, got ${describe(c.promotionMargin)}`);
  return { ...c, algorithm, spec: { ...c.spec, hidden: [...c.spec.hidden], actionLow: [...c.spec.actionLow], actionHigh: [...c.spec.actionHigh] } };
}

// ---------------------------------------------------------------------------------------------
// The gate

/** What the policy gate decided. */
export type PolicyGateDecision = { kind: 'promoted' } | { kind: 'rejected'; reason: string };

/**
 * The policy promotion gate: a candidate with a non-finite weight is rejected, so is one whose
 * imagined mean return is not finite or below `runningReturn + margin`. A running policy whose
 * own return is not finite (it diverges in the model) loses to any finite candidate.
 * @example policyGate(spec, candidate.getWeights(), -120, -150, 0) // { kind: 'promoted' }
 */
export function policyGate(spec: GaussianMlpPolicySpec, candidate: PolicyWeights, candidateReturn: number, runningReturn: number, margin: number): PolicyGateDecision {
  const problem = policyWeightsProblem(spec, candidate);
  if (problem !== null) return { kind: 'rejected', reason: problem };
  if (!Number.isFinite(candidateReturn)) return { kind: 'rejected', reason: `the candidate's imagined return is ${candidateReturn} (it diverges in the model)` };
  if (Number.isFinite(runningReturn) && candidateReturn < runningReturn + margin) {
    return {
      kind: 'rejected',
      reason: `imagined return ${fmt(candidateReturn)} is below the running policy's ${fmt(runningReturn)} + margin ${fmt(margin)}`,
    };
  }
  return { kind: 'promoted' };
}

/** Why `weights` cannot be promoted (a non-finite or misshapen entry), or null. */
function policyWeightsProblem(spec: GaussianMlpPolicySpec, weights: PolicyWeights): string | null {
  try {
    checkPolicyWeights(spec, weights);
    return null;
  } catch (err) {
    return `non-finite policy weights: ${(err as Error).message}`;
  }
}

/** Options of `imaginedReturns`. */
export interface ImaginedEvalOptions {
  /** Episodes per policy. */
  episodes: number;
  /** Steps per episode at most (an episode ends earlier where the task terminates). */
  horizon: number;
  /** The task's reward and termination. */
  task: TaskFunctions;
  /** Seeds the start-state draw and the model's member draws (the same for every policy). */
  seed: number;
}

/**
 * Each policy's mean undiscounted return over `episodes` imagined episodes in the ensemble
 * (every step through a member drawn at random, TS1), deterministic actions (the mean). Every
 * policy gets the same start states (drawn from `startStates`) and the same member draws, so the
 * returns compare like with like. A non-finite return is −∞ (`modelReturn`).
 * @param startStates real start states, row-major [m, obsDim]
 */
export async function imaginedReturns(weights: EnsembleWeights, policies: readonly GaussianMlpPolicy[], startStates: ArrayLike<number>, options: ImaginedEvalOptions): Promise<number[]> {
  const D = weights.spec.obsDim;
  const m = startStates.length / D;
  if (!(Number.isInteger(m) && m >= 1)) throw new ValidationError('imaginedReturns', 'startStates', `expected a non-empty array of rows of obsDim ${D}, got length ${startStates.length}`);
  const n = options.episodes;
  const pick = new Rng(options.seed, 1);
  const starts = new Float64Array(n * D);
  for (let i = 0; i < n; i++) {
    const s = m === 1 ? 0 : pick.int(m);
    for (let d = 0; d < D; d++) starts[i * D + d] = startStates[s * D + d];
  }
  const predictor = await OrtEnsemblePredictor.create(weights, { intraOpThreads: 1 });
  try {
    const out: number[] = [];
    for (const policy of policies) {
      const modelEnv = new ModelEnv(predictor, { task: options.task, propagation: 'ts1', rng: new Rng(options.seed, 2) });
      out.push(await modelReturn(modelEnv, policy, starts, n, options.horizon));
    }
    return out;
  } finally {
    predictor.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// MB-MPO's online adaptation on real transitions

/**
 * Real transitions (in the order they happened) as a `SampleBatch` for the inner step: u is
 * recovered from the actions (see the file comment), a row starts a new segment where its state is
 * not the previous row's next state (or the previous row ended its episode), timesteps count from
 * there, and a segment that stops without a terminal state is truncated (bootstrapped).
 * `oldMean` / `oldLogStd` are `policy`'s.
 */
export function transitionsBatch(rows: Batch, policy: GaussianMlpPolicy): SampleBatch {
  const n = rows.size;
  const D = rows.obsDim;
  const A = rows.actDim;
  const { actionLow, actionHigh, squash } = policy.spec;
  const u = new Float32Array(n * A);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < A; j++) {
      const half = (actionHigh[j] - actionLow[j]) / 2;
      const x = Math.min(1, Math.max(-1, (rows.action[i * A + j] - (actionHigh[j] + actionLow[j]) / 2) / half));
      u[i * A + j] = squash === 'tanh' ? Math.atanh(Math.min(1 - 1e-6, Math.max(-1 + 1e-6, x))) : x;
    }
  }
  const starts = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    if (i === 0 || rows.terminated[i - 1] === 1 || rows.truncated[i - 1] === 1) starts[i] = 1;
    else for (let d = 0; d < D; d++) if (rows.obs[i * D + d] !== rows.nextObs[(i - 1) * D + d]) starts[i] = 1;
  }
  const timesteps = new Float64Array(n);
  const terminated = new Uint8Array(n);
  const truncated = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    timesteps[i] = starts[i] ? 0 : timesteps[i - 1] + 1;
    terminated[i] = rows.terminated[i];
    truncated[i] = terminated[i] === 0 && (i === n - 1 || starts[i + 1] === 1) ? 1 : 0;
  }
  const { mean, logStd } = policy.forwardFast(rows.obs, n);
  return {
    size: n,
    obsDim: D,
    actDim: A,
    obs: Float32Array.from(rows.obs),
    nextObs: Float32Array.from(rows.nextObs),
    timesteps,
    u,
    actions: Float64Array.from(rows.action),
    rewards: Float64Array.from(rows.reward),
    terminated,
    truncated,
    oldMean: mean,
    oldLogStd: logStd,
    episodeReturns: [],
    episodeLengths: [],
  };
}

/**
 * MB-MPO's inner step on real transitions: θ' = θ + α ∇_θ J(θ), J the policy-gradient surrogate
 * on `rows` with advantages from a linear baseline fitted on them (`taskAdvantages`), α
 * `config.innerStepSize` (`adaptedPolicy`, as `adaptOnRealSystem` does on episodes it collects).
 * @returns the adapted weights (`policy` is unchanged)
 */
export function adaptToTransitions(policy: GaussianMlpPolicy, rows: Batch, config: Pick<MbMpoConfig, 'gamma' | 'gaeLambda' | 'innerStepSize'>): PolicyWeights {
  const batch = transitionsBatch(rows, policy);
  const samples = samplesOf(policy, batch, taskAdvantages(batch, config.gamma, config.gaeLambda));
  try {
    const adapted = adaptedPolicy(policy, samples, config.innerStepSize);
    try {
      return adapted.getWeights();
    } finally {
      adapted.dispose();
    }
  } finally {
    tf.dispose([samples.obsNorm, samples.u, samples.adv]);
  }
}

// ---------------------------------------------------------------------------------------------
// The policy side of the worker

/** A promoted policy, as the worker sends it. */
export interface PromotedPolicy {
  weights: PolicyWeights;
  /** Imagined mean returns of the gate's evaluation. */
  imaginedReturn: number;
  runningReturn: number;
  /** TRPO steps or meta-steps the phase took. */
  steps: number;
  seconds: number;
}

/** What one policy phase decided. */
export type PolicyOutcome =
  | { kind: 'policyPromoted'; policy: PromotedPolicy }
  | { kind: 'policyRejected'; reason: string; candidateReturn: number | null; runningReturn: number | null; steps: number };

/** Test faults of the policy side: a candidate with a NaN weight. */
export type PolicyFault = 'nanPolicy';

/** Most start states kept (the newest). */
const MAX_START_STATES = 10_000;

/**
 * The worker's policy state and decisions (see the file comment). Holds weights only between
 * calls: the tfjs policies live inside `improve` and `adapt`, which need the tfjs backend
 * (`initBackend`).
 */
export class PolicyLearner {
  readonly config: LearnerPolicyConfig;
  readonly task: TaskFunctions;
  /** The imagined horizon T: `imaginedHorizon`, else `maxEpisodeSteps`, else the task's time limit. */
  readonly horizon: number;
  #running: PolicyWeights;
  #starts: number[] = [];
  #prevNextObs: Float32Array | null = null;
  #prevEnded = true;
  #window: ReplayBuffer;
  #sinceAdapt = 0;
  #baseChanged = true;
  #phases = 0;
  #rng: Rng;
  #fault: PolicyFault | null = null;

  /**
   * @param running the policy the control side runs (its meta-policy, for MB-MPO)
   * @param seed seeds the policy phases and the gate's evaluations
   */
  constructor(config: LearnerPolicyConfig, running: PolicyWeights, seed: number) {
    this.config = config;
    checkPolicyWeights(config.spec, running);
    this.#running = running;
    const spec = envSpec(config.algorithm.env);
    this.task = spec.task;
    this.horizon = config.algorithm.imaginedHorizon ?? config.algorithm.maxEpisodeSteps ?? spec.maxEpisodeSteps;
    this.#window = new ReplayBuffer({ obsDim: config.spec.obsDim, actDim: config.spec.actDim, capacity: config.adaptWindow });
    this.#rng = new Rng(seed, 13);
  }

  /** The running policy's weights (the last promoted, or the one it started with). */
  get running(): PolicyWeights {
    return this.#running;
  }

  /** Start states collected (rows). */
  get startStates(): number {
    return this.#starts.length / this.config.spec.obsDim;
  }

  /** Sets a fault for the next candidate. @internal */
  inject(fault: PolicyFault): void {
    this.#fault = fault;
  }

  /** Takes one transition in stream order (see the file comment, 1). */
  add(obs: Float32Array, action: Float32Array, reward: number, nextObs: Float32Array, terminated: boolean, truncated: boolean): void {
    const D = obs.length;
    let start = this.#prevEnded || this.#prevNextObs === null;
    if (!start) for (let d = 0; d < D; d++) if (obs[d] !== (this.#prevNextObs as Float32Array)[d]) start = true;
    if (start) {
      for (let d = 0; d < D; d++) this.#starts.push(obs[d]);
      if (this.#starts.length > MAX_START_STATES * D) this.#starts.splice(0, this.#starts.length - MAX_START_STATES * D);
    }
    this.#prevNextObs = Float32Array.from(nextObs);
    this.#prevEnded = terminated || truncated;
    if (this.config.algorithm.kind === 'mb-mpo') {
      this.#window.add({ obs, action, reward, nextObs, terminated, truncated });
      this.#sinceAdapt++;
    }
  }

  /**
   * Runs the policy phase on a promoted ensemble and the gate (see the file comment, 2–3).
   * @param train the training rows (observation normalisation, state bounds)
   * @param onStep after every TRPO or meta-step (a heartbeat; a throw aborts the phase)
   */
  async improve(weights: EnsembleWeights, train: ReplayBuffer, onStep?: (steps: number) => void, log: (line: string) => void = () => undefined): Promise<PolicyOutcome> {
    const t0 = performance.now();
    if (this.#starts.length === 0) return { kind: 'policyRejected', reason: 'no real start states yet', candidateReturn: null, runningReturn: null, steps: 0 };
    const c = this.config;
    const algo = c.algorithm;
    const starts = Float64Array.from(this.#starts);
    const phase = ++this.#phases;
    const candidate = new GaussianMlpPolicy(c.spec, { weights: this.#running });
    try {
      normalizePolicyOnBuffer(candidate, train);
      const bounds = imaginedStateBounds(algo, train);
      let steps: number;
      if (algo.kind === 'me-trpo') {
        if (algo.resetLogStd) resetLogStd(candidate, algo.policy.initLogStd);
        const r = await policyPhase({ ...algo, maxPolicyIterations: c.stepsPerRefit }, candidate, weights, starts, this.horizon, this.task, this.#rng, log, bounds, onStep);
        steps = r.iterations;
      } else {
        await metaPolicyPhase({ ...algo, metaStepsPerIteration: c.stepsPerRefit }, candidate, weights, starts, this.horizon, this.task, this.#rng, log, bounds, onStep);
        steps = c.stepsPerRefit;
      }
      const cw = candidate.getWeights();
      if (this.#fault === 'nanPolicy') {
        this.#fault = null;
        cw.layers[0].W[0] = Number.NaN;
      }
      const { decision, candidateReturn, runningReturn } = await this.gate(weights, cw, algo.seed * 1009 + phase);
      if (decision.kind === 'rejected') return { kind: 'policyRejected', reason: decision.reason, candidateReturn, runningReturn, steps };
      this.#running = cw;
      this.#baseChanged = true;
      return {
        kind: 'policyPromoted',
        policy: { weights: cw, imaginedReturn: candidateReturn as number, runningReturn: runningReturn as number, steps, seconds: (performance.now() - t0) / 1000 },
      };
    } finally {
      candidate.dispose();
    }
  }

  /**
   * The gate (see the file comment, 3): `candidate` against the running policy on the ensemble
   * `weights`, over `imaginedEvalEpisodes` episodes from the start states collected. Weights with
   * a non-finite entry are rejected before any rollout. Changes nothing.
   * @param seed seeds the evaluation's start states and member draws (the same for both policies)
   * @returns the decision and the imagined mean returns (null when not evaluated)
   */
  async gate(weights: EnsembleWeights, candidate: PolicyWeights, seed: number): Promise<{ decision: PolicyGateDecision; candidateReturn: number | null; runningReturn: number | null }> {
    const c = this.config;
    const problem = policyWeightsProblem(c.spec, candidate);
    if (problem !== null) return { decision: { kind: 'rejected', reason: problem }, candidateReturn: null, runningReturn: null };
    if (this.#starts.length === 0) return { decision: { kind: 'rejected', reason: 'no real start states yet' }, candidateReturn: null, runningReturn: null };
    const policies = [new GaussianMlpPolicy(c.spec, { weights: candidate }), new GaussianMlpPolicy(c.spec, { weights: this.#running })];
    try {
      const [candidateReturn, runningReturn] = await imaginedReturns(weights, policies, this.#starts, { episodes: c.imaginedEvalEpisodes, horizon: this.horizon, task: this.task, seed });
      return { decision: policyGate(c.spec, candidate, candidateReturn, runningReturn, c.promotionMargin), candidateReturn, runningReturn };
    } finally {
      for (const p of policies) p.dispose();
    }
  }

  /**
   * Whether an MB-MPO adaptation is due: `adaptEveryTransitions` rows since the last one, or a new
   * running policy, with at least min(`adaptWindow`, `adaptEveryTransitions`, ≥ 2) rows held.
   */
  get adaptDue(): boolean {
    const c = this.config;
    if (c.algorithm.kind !== 'mb-mpo' || this.#window.size < Math.max(2, Math.min(c.adaptWindow, c.adaptEveryTransitions))) return false;
    return this.#baseChanged || this.#sinceAdapt >= c.adaptEveryTransitions;
  }

  /**
   * MB-MPO: the running policy adapted on the newest `adaptWindow` transitions (see the file
   * comment, 4), or null when not due or when the step gave a non-finite weight.
   */
  adapt(): { weights: PolicyWeights; rows: number } | null {
    if (!this.adaptDue) return null;
    const algo = this.config.algorithm as MbMpoConfig;
    const rows = this.#window.slice();
    this.#sinceAdapt = 0;
    this.#baseChanged = false;
    const meta = new GaussianMlpPolicy(this.config.spec, { weights: this.#running });
    try {
      const weights = adaptToTransitions(meta, rows, algo);
      try {
        checkPolicyWeights(this.config.spec, weights);
      } catch {
        return null;
      }
      return { weights, rows: rows.size };
    } finally {
      meta.dispose();
    }
  }
}

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toPrecision(4);
}
