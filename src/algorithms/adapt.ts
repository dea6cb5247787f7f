/**
 * Sim-to-real adaptation: a policy and dynamics ensemble trained on the nominal simulator are
 * deployed to a "real" system (a simulator with another physical variant, or a robot behind an
 * `Env`) and adapted online. Every strategy spends the same budget of real steps, and every real
 * episode is recorded (return against real steps), so strategies compare at equal real cost.
 *
 * Strategies, each a loop of whole real episodes until `realSteps`:
 * - `frozen`: the trained policy's mean action, never changed (the baseline to beat).
 * - `mbMpo`: MB-MPO's online adaptation (Clavera et al. 2018, https://arxiv.org/abs/1809.05214,
 *   §4): after each real episode run with the deployed policy θ, one inner policy-gradient step
 *   θ' = θ + α ∇_θ J(θ) on that episode's transitions (`adaptedPolicy`), and θ' is deployed next.
 * - `refit`: the ensemble is refitted on the real transitions (the simulator's transitions kept,
 *   dropped, or down-weighted), then `refit.trpoSteps` ME-TRPO-style TRPO steps on imagined
 *   rollouts from real start states (Kurutach et al. 2018, https://arxiv.org/abs/1802.10592).
 * - `mpc`: PETS-style planning (Chua et al. 2018) with the ensemble refitted after every episode.
 * - `scratch`: ME-TRPO from nothing on the real system (no simulator knowledge).
 *
 * Safety, as on the robot: every action passes the control node's per-action rules (NaN / ±∞ or a
 * wrong length → the safe action; clip to the bounds; limit each dimension's change per step to
 * `maxRatePerSec × dt`), the same checks in the same order as `pipeline/safetyFilter.ts` (kept as
 * a pure function here: algorithms import no RxJS). The transitions that feed refits record the
 * actions actually applied. And the rollback rule: an adapted controller whose real episode return
 * falls below the floor (`rollback`) is discarded and the last good one is deployed again.
 */
import * as tf from '@tensorflow/tfjs';
import type { Env, PhysicsParams, ResetOptions, ResetResult, StepResult } from '../core/env.js';
import { ValidationError, describe } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { ReplayBuffer } from '../data/replayBuffer.js';
import { envSpec } from '../envs/registry.js';
import { DynamicsEnsemble, type EnsembleConfig } from '../models/ensemble.js';
import { OrtEnsemblePredictor } from '../models/ensembleOnnx.js';
import { ModelEnv } from '../models/modelEnv.js';
import { makeEnsembleFitConfig, type EnsembleFitConfig } from '../models/trainer.js';
import type { EnsembleWeights } from '../models/types.js';
import type { PlannerConfig } from '../planning/trajectoryOptimizerAgent.js';
import { GaussianMlpPolicy, makePolicySpec, type GaussianMlpPolicySpec, type PolicyWeights } from '../policies/gaussianMlpPolicy.js';
import { LinearFeatureBaseline } from '../policies/linearFeatureBaseline.js';
import { ActionDelayCompensator, delayedActions, estimateActionDelay, type CommandedEpisode } from './actionDelay.js';
import { adaptedPolicy, samplesOf, taskAdvantages } from './mbMpo.js';
import { makePetsAgent, makePetsConfig, refitKeepingLastGood } from './mbrl.js';
import { makeMeTrpoConfig, trainMeTrpo, type MeTrpoOverrides } from './meTrpo.js';
import { addToBuffer } from './modelBasedPolicy.js';
import { ModelRolloutSource, meanActionSampler } from './modelRollouts.js';
import { collectRollouts, EnvRolloutSource, standardize, type SampleBatch } from './policyGradient.js';
import { TRUST_REGION_DEFAULTS, advantagesOf, checkInt, checkUnit, rejectUnknownKeys, trpoStep, type TrustRegionConfig } from './trpo.js';

// ---------------------------------------------------------------------------------------------
// Config

/** The adaptation strategies `runAdaptation` compares. */
export const ADAPT_STRATEGIES = ['frozen', 'mbMpo', 'refit', 'mpc', 'scratch'] as const;
export type AdaptStrategy = (typeof ADAPT_STRATEGIES)[number];

/**
 * When an adapted controller is rolled back. The floor is the higher of the two rules that are
 * set; with neither set there is no rollback.
 */
export interface RollbackConfig {
  /** Absolute floor on an adapted controller's real episode return; null: none. Default null. */
  floor: number | null;
  /**
   * Largest drop below the pre-adaptation return (the strategy's first real episode), as a
   * fraction of its magnitude: floor = R₀ − f·|R₀| (0.5 with R₀ = −200 gives −300; with R₀ = 1000
   * gives 500). null: none. Default 0.5.
   */
  maxDropFraction: number | null;
}

/** The control node's per-action rules (its `safety` section), applied to every real action. */
export interface AdaptSafetyConfig {
  /** Largest change per second of each action dimension; null (default): no rate limit. */
  maxRatePerSec: number[] | null;
  /** The action sent for a NaN / ±∞ / wrong-length proposal; null (default): the middle of the bounds. */
  safeAction: number[] | null;
}

/** `refit`'s and `mpc`'s ensemble refits and `refit`'s policy steps. */
export interface RefitConfig {
  /**
   * What happens to the simulator's transitions (the checkpoint's buffer) in refits: `keep` all,
   * `drop` them (real data only), or `downweight` them to `simWeight`. Default 'downweight'.
   */
  simData: 'keep' | 'drop' | 'downweight';
  /**
   * The simulator's share under `downweight`: a fixed random `simWeight` fraction of its
   * transitions enters the fit data (in expectation, weighting each sim row by `simWeight` in the
   * MSE). Default 0.1.
   */
  simWeight: number;
  /** Ensemble training per refit. Default `{ maxEpochs: 20, resetOptimizer: true }`. */
  fit: Partial<EnsembleFitConfig>;
  /** TRPO steps on imagined rollouts after each refit (`refit` only). Default 5. */
  trpoSteps: number;
  /** Imagined samples per TRPO step. Default 4000. */
  imaginedSteps: number;
  /** Imagined episodes stepped together. Default 20. */
  imaginedEnvs: number;
  /** Imagined episode length; null (default): the real system's time limit. */
  imaginedHorizon: number | null;
  /** The trust region of those steps. Default `TRUST_REGION_DEFAULTS` (δ = 0.01). */
  trustRegion: TrustRegionConfig;
}

/** `mpc`'s planner: PETS's config fields (defaults: PETS's for the task). */
export interface MpcConfig {
  planner: Partial<PlannerConfig>;
  propagation: 'ts1' | 'tsinf' | 'mean';
  /** Particles per candidate; null: PETS's for the task. */
  particles: number | null;
  /**
   * Control steps between a command and its effect on the real system, compensated by the
   * planner (`actionDelay.ts`: fits on the command that acted, plans from the state the pending
   * commands lead to): a number when known (measured latency / control period), `'estimate'` to
   * estimate it from the real episodes (after each one, the model's one-step error over the
   * candidates 0 … `maxActionDelaySteps`). Default 0 (none).
   */
  actionDelaySteps: number | 'estimate';
  /** The largest delay `'estimate'` considers. Default 3. */
  maxActionDelaySteps: number;
}

/**
 * The like-for-like measure of a controller: the mean return of its deterministic action (the
 * policy's mean, or the planner's plan) over `episodes` episodes whose start states are fixed by
 * the seeds `seed`, `seed + 1`, … — the same start states for the nominal simulator, every
 * strategy and every adaptation seed. A single Pendulum episode ranges from −5 to −1,500 with its
 * start state, so training episodes (one start each, exploration noise on) cannot rank strategies.
 * Run on a separate copy of the real system, behind the same safety rules; these steps are not
 * part of the adaptation budget (as a benchmark's evaluation episodes).
 */
export interface EvaluationConfig {
  /** Episodes (start states); 0 disables the evaluation. Default 10. */
  episodes: number;
  /** The first start state's seed. Default 1,000,000 (disjoint from the adaptation seeds' episodes). */
  seed: number;
}

/** Configuration of an adaptation run. */
export interface AdaptConfig {
  /** Always `'adapt'`. */
  kind: 'adapt';
  /** Built-in task id (must be the checkpoint's). */
  env: string;
  /** The "real" system's physical variant. Default `{}` (nominal: no gap). */
  physics: Partial<PhysicsParams>;
  /** Strategies to run, in order. Default all of `ADAPT_STRATEGIES`. */
  strategies: AdaptStrategy[];
  /** Real environment steps per strategy (whole episodes: the last one may run past it). Default 2000. */
  realSteps: number;
  /** Seed of the real system's episodes and of the adaptation's randomness. Default 0. */
  seed: number;
  /** α of `mbMpo`'s inner step; null (default): the checkpoint config's `innerStepSize`, else 0.001. */
  innerStepSize: number | null;
  /** Discount γ and GAE λ of the policy-gradient steps. Defaults 0.99 and 1. */
  gamma: number;
  gaeLambda: number;
  refit: RefitConfig;
  mpc: MpcConfig;
  /** ME-TRPO overrides for `scratch` (env, seed, steps, physics are set here). Default: one real episode per iteration, no evaluation episodes. */
  scratch: MeTrpoOverrides;
  rollback: RollbackConfig;
  safety: AdaptSafetyConfig;
  /** The fixed-start evaluation of each strategy's final controller (`EvaluationConfig`). */
  evaluation: EvaluationConfig;
  /** Overrides the real system's time limit; null (default): the task's. */
  maxEpisodeSteps: number | null;
}

/** The defaults of an adaptation run; the perturbation of issue 10's example is `ISSUE_10_PHYSICS`. */
export const ADAPT_DEFAULTS = {
  kind: 'adapt',
  env: 'Pendulum-v1',
  physics: {},
  strategies: [...ADAPT_STRATEGIES],
  realSteps: 2000,
  seed: 0,
  innerStepSize: null,
  gamma: 0.99,
  gaeLambda: 1,
  refit: {
    simData: 'downweight',
    simWeight: 0.1,
    fit: { maxEpochs: 20, resetOptimizer: true },
    trpoSteps: 5,
    imaginedSteps: 4000,
    imaginedEnvs: 20,
    imaginedHorizon: null,
    trustRegion: { ...TRUST_REGION_DEFAULTS },
  },
  mpc: { planner: {}, propagation: 'ts1', particles: null, actionDelaySteps: 0, maxActionDelaySteps: 3 },
  scratch: { realEpisodesPerIteration: 1, evalEpisodes: 0 },
  rollback: { floor: null, maxDropFraction: 0.5 },
  safety: { maxRatePerSec: null, safeAction: null },
  evaluation: { episodes: 10, seed: 1_000_000 },
  maxEpisodeSteps: null,
} as const satisfies AdaptConfig;

/** Mass × 1.3, friction × 0.7, actuator gain × 0.8, one step of action delay (issue 10's example). */
export const ISSUE_10_PHYSICS: Readonly<Partial<PhysicsParams>> = Object.freeze({ massScale: 1.3, frictionScale: 0.7, actuatorGain: 0.8, actionDelaySteps: 1 });

/** Overrides of an adaptation config; nested sections merge key by key. */
export type AdaptOverrides = Partial<Omit<AdaptConfig, 'refit' | 'mpc' | 'rollback' | 'safety' | 'evaluation'>> & {
  evaluation?: Partial<EvaluationConfig>;
  refit?: Partial<Omit<RefitConfig, 'trustRegion'>> & { trustRegion?: Partial<TrustRegionConfig> };
  mpc?: Partial<MpcConfig>;
  rollback?: Partial<RollbackConfig>;
  safety?: Partial<AdaptSafetyConfig>;
};

/**
 * Merges `overrides` into `ADAPT_DEFAULTS` and validates.
 * @throws ValidationError naming the key, the value and what was expected
 * @example
 * const config = makeAdaptConfig({ physics: ISSUE_10_PHYSICS, strategies: ['frozen', 'mbMpo'], realSteps: 2000 });
 */
export function makeAdaptConfig(overrides: AdaptOverrides = {}): AdaptConfig {
  const where = 'makeAdaptConfig';
  const d = ADAPT_DEFAULTS;
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (!isObj(overrides)) throw new ValidationError(where, 'config', `expected an object, got ${describe(overrides)}`);
  rejectUnknownKeys(where, overrides, d);
  for (const key of ['refit', 'mpc', 'rollback', 'safety', 'physics', 'scratch', 'evaluation'] as const) {
    const v = overrides[key];
    if (v !== undefined && !isObj(v)) throw new ValidationError(where, key, `expected an object, got ${describe(v)}`);
  }
  rejectUnknownKeys(`${where}: refit`, overrides.refit ?? {}, d.refit);
  rejectUnknownKeys(`${where}: mpc`, overrides.mpc ?? {}, d.mpc);
  rejectUnknownKeys(`${where}: rollback`, overrides.rollback ?? {}, d.rollback);
  rejectUnknownKeys(`${where}: safety`, overrides.safety ?? {}, d.safety);
  rejectUnknownKeys(`${where}: evaluation`, overrides.evaluation ?? {}, d.evaluation);
  if (overrides.kind !== undefined && overrides.kind !== 'adapt') throw new ValidationError(where, 'kind', `expected 'adapt', got ${describe(overrides.kind)}`);
  const c: AdaptConfig = {
    ...d,
    ...overrides,
    kind: 'adapt',
    physics: { ...overrides.physics },
    strategies: [...(overrides.strategies ?? d.strategies)],
    refit: {
      ...d.refit,
      ...overrides.refit,
      fit: { ...d.refit.fit, ...overrides.refit?.fit },
      trustRegion: { ...d.refit.trustRegion, ...overrides.refit?.trustRegion },
    },
    mpc: { ...d.mpc, ...overrides.mpc, planner: { ...overrides.mpc?.planner } },
    scratch: { ...d.scratch, ...overrides.scratch },
    rollback: { ...d.rollback, ...overrides.rollback },
    safety: { ...d.safety, ...overrides.safety },
    evaluation: { ...d.evaluation, ...overrides.evaluation },
  };
  envSpec(c.env);
  if (!Array.isArray(c.strategies) || c.strategies.length === 0) throw new ValidationError(where, 'strategies', `expected a non-empty list of ${ADAPT_STRATEGIES.join(', ')}, got ${describe(c.strategies)}`);
  c.strategies.forEach((s, i) => {
    if (!ADAPT_STRATEGIES.includes(s)) throw new ValidationError(where, `strategies[${i}]`, `expected one of ${ADAPT_STRATEGIES.join(', ')}, got ${describe(s)}`);
  });
  if (new Set(c.strategies).size !== c.strategies.length) throw new ValidationError(where, 'strategies', `expected each strategy once, got ${c.strategies.join(', ')}`);
  checkInt(where, 'realSteps', c.realSteps, 1);
  checkInt(where, 'seed', c.seed, 0);
  if (c.innerStepSize !== null && !(typeof c.innerStepSize === 'number' && c.innerStepSize >= 0 && Number.isFinite(c.innerStepSize))) {
    throw new ValidationError(where, 'innerStepSize', `expected null or a finite number ≥ 0, got ${describe(c.innerStepSize)}`);
  }
  checkUnit(where, 'gamma', c.gamma);
  checkUnit(where, 'gaeLambda', c.gaeLambda);
  if (!['keep', 'drop', 'downweight'].includes(c.refit.simData)) throw new ValidationError(where, 'refit.simData', `expected 'keep', 'drop' or 'downweight', got ${describe(c.refit.simData)}`);
  checkUnit(where, 'refit.simWeight', c.refit.simWeight);
  makeEnsembleFitConfig(c.refit.fit);
  checkInt(where, 'refit.trpoSteps', c.refit.trpoSteps, 0);
  checkInt(where, 'refit.imaginedSteps', c.refit.imaginedSteps, 1);
  checkInt(where, 'refit.imaginedEnvs', c.refit.imaginedEnvs, 1);
  if (c.refit.imaginedHorizon !== null) checkInt(where, 'refit.imaginedHorizon', c.refit.imaginedHorizon, 1);
  if (!['ts1', 'tsinf', 'mean'].includes(c.mpc.propagation)) throw new ValidationError(where, 'mpc.propagation', `expected 'ts1', 'tsinf' or 'mean', got ${describe(c.mpc.propagation)}`);
  if (c.mpc.particles !== null) checkInt(where, 'mpc.particles', c.mpc.particles, 1);
  if (c.mpc.actionDelaySteps !== 'estimate') checkInt(where, 'mpc.actionDelaySteps', c.mpc.actionDelaySteps, 0);
  checkInt(where, 'mpc.maxActionDelaySteps', c.mpc.maxActionDelaySteps, 0);
  const { floor, maxDropFraction } = c.rollback;
  if (floor !== null && !(typeof floor === 'number' && Number.isFinite(floor))) throw new ValidationError(where, 'rollback.floor', `expected null or a finite number, got ${describe(floor)}`);
  if (maxDropFraction !== null && !(typeof maxDropFraction === 'number' && maxDropFraction >= 0 && Number.isFinite(maxDropFraction))) {
    throw new ValidationError(where, 'rollback.maxDropFraction', `expected null or a finite number ≥ 0, got ${describe(maxDropFraction)}`);
  }
  for (const key of ['maxRatePerSec', 'safeAction'] as const) {
    const v = c.safety[key];
    if (v !== null && !(Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number' && Number.isFinite(x)))) {
      throw new ValidationError(where, `safety.${key}`, `expected null or a non-empty list of finite numbers, got ${describe(v)}`);
    }
  }
  if (c.safety.maxRatePerSec?.some((r) => r <= 0)) throw new ValidationError(where, 'safety.maxRatePerSec', `expected rates > 0, got ${describe(c.safety.maxRatePerSec)}`);
  if (c.maxEpisodeSteps !== null) checkInt(where, 'maxEpisodeSteps', c.maxEpisodeSteps, 1);
  checkInt(where, 'evaluation.episodes', c.evaluation.episodes, 0);
  checkInt(where, 'evaluation.seed', c.evaluation.seed, 0);
  // The scratch run's own checks, now rather than after the other strategies have run.
  if (c.strategies.includes('scratch')) makeMeTrpoConfig(scratchOverrides(c));
  if (c.strategies.includes('mpc')) makePetsConfig(petsOverrides(c));
  return c;
}

function scratchOverrides(c: AdaptConfig, seed = c.seed): MeTrpoOverrides {
  return { ...c.scratch, env: c.env, seed, steps: c.realSteps, physics: c.physics, maxEpisodeSteps: c.maxEpisodeSteps };
}

function petsOverrides(c: AdaptConfig, seed = c.seed): Parameters<typeof makePetsConfig>[0] {
  return { env: c.env, seed, planner: c.mpc.planner, propagation: c.mpc.propagation, ...(c.mpc.particles === null ? {} : { particles: c.mpc.particles }), planWithElites: false, plannerThreads: 1 };
}

// ---------------------------------------------------------------------------------------------
// Safety and rollback: pure rules

/** What the per-action rules changed (the names of `safetyFilter`'s `InterventionReason`s). */
export type ActionIntervention = 'nonFinite' | 'badLength' | 'clip' | 'rateLimit';

/** The per-action rules' parameters, in the real system's units. */
export interface ActionRules {
  low: ArrayLike<number>;
  high: ArrayLike<number>;
  /** Largest change per step of each dimension (maxRatePerSec × dt), or null. */
  maxStep: ArrayLike<number> | null;
  safeAction: ArrayLike<number>;
}

/**
 * The control node's per-action checks (`safetyFilter` steps 4–5), in its order: a wrong length
 * or a NaN / ±∞ entry → the safe action (sent as is: stopping comes first); otherwise clip to the
 * bounds, then limit each dimension's change since `last` to `maxStep`.
 * @param last the action applied at the previous step (the safe action at an episode's start)
 * @example
 * safeActionFor([3], Float64Array.of(0), { low: [-2], high: [2], maxStep: [0.5], safeAction: [0] })
 * // → { action: [0.5], interventions: ['clip', 'rateLimit'] }
 */
export function safeActionFor(proposed: ArrayLike<number>, last: ArrayLike<number>, rules: ActionRules): { action: Float64Array; interventions: ActionIntervention[] } {
  const dim = rules.safeAction.length;
  if (proposed.length !== dim) return { action: Float64Array.from(rules.safeAction), interventions: ['badLength'] };
  for (let i = 0; i < dim; i++) if (!Number.isFinite(proposed[i])) return { action: Float64Array.from(rules.safeAction), interventions: ['nonFinite'] };
  const interventions: ActionIntervention[] = [];
  const action = Float64Array.from(proposed);
  let clipped = false;
  for (let i = 0; i < dim; i++) {
    const v = Math.min(rules.high[i], Math.max(rules.low[i], action[i]));
    if (v !== action[i]) clipped = true;
    action[i] = v;
  }
  if (clipped) interventions.push('clip');
  if (rules.maxStep) {
    let limited = false;
    for (let i = 0; i < dim; i++) {
      const v = Math.min(last[i] + rules.maxStep[i], Math.max(last[i] - rules.maxStep[i], action[i]));
      if (v !== action[i]) limited = true;
      action[i] = v;
    }
    if (limited) interventions.push('rateLimit');
  }
  return { action, interventions };
}

/**
 * The return below which an adapted controller is rolled back: the higher of `rule.floor` and
 * R₀ − maxDropFraction·|R₀|; null when neither is set.
 * @param preReturn R₀, the real return before adaptation
 * @example rollbackFloor(-200, { floor: null, maxDropFraction: 0.5 }) // → -300
 */
export function rollbackFloor(preReturn: number, rule: RollbackConfig): number | null {
  const floors: number[] = [];
  if (rule.floor !== null) floors.push(rule.floor);
  if (rule.maxDropFraction !== null) floors.push(preReturn - rule.maxDropFraction * Math.abs(preReturn));
  return floors.length === 0 ? null : Math.max(...floors);
}

/** Whether an adapted controller's real return calls for a rollback (below the floor, or not finite). */
export function shouldRollBack(episodeReturn: number, floor: number | null): boolean {
  return !Number.isFinite(episodeReturn) || (floor !== null && episodeReturn < floor);
}

// ---------------------------------------------------------------------------------------------
// The real system behind the safety rules

/**
 * The real system with the per-action rules in front of it: every `step` applies `safeActionFor`
 * to the proposed action, counts real steps and interventions, and logs the applied actions (so
 * transitions record what the plant actually received).
 */
export class SafeRealSystem implements Env {
  readonly #env: Env;
  readonly #rules: ActionRules;
  #last: Float64Array;
  #applied: number[] = [];
  /** Real steps taken so far. */
  steps = 0;
  /** Interventions per reason so far. */
  readonly interventions: Record<ActionIntervention, number> = { nonFinite: 0, badLength: 0, clip: 0, rateLimit: 0 };

  constructor(env: Env, safety: AdaptSafetyConfig) {
    const { low, high, dim } = env.actionSpace;
    const where = 'SafeRealSystem';
    const safe = safety.safeAction ?? Array.from({ length: dim }, (_, i) => (low[i] + high[i]) / 2);
    if (safe.length !== dim) throw new ValidationError(where, 'safety.safeAction', `expected ${dim} values (the action's dimension), got ${safe.length}`);
    for (let i = 0; i < dim; i++) if (!(safe[i] >= low[i] && safe[i] <= high[i])) throw new ValidationError(where, `safety.safeAction[${i}]`, `expected a value in [${low[i]}, ${high[i]}], got ${describe(safe[i])}`);
    if (safety.maxRatePerSec && safety.maxRatePerSec.length !== dim) throw new ValidationError(where, 'safety.maxRatePerSec', `expected ${dim} rates, got ${safety.maxRatePerSec.length}`);
    this.#env = env;
    this.#rules = { low, high, maxStep: safety.maxRatePerSec ? safety.maxRatePerSec.map((r) => r * env.dt) : null, safeAction: safe };
    this.#last = Float64Array.from(safe);
  }

  get id(): string {
    return this.#env.id;
  }
  get observationSpace(): Env['observationSpace'] {
    return this.#env.observationSpace;
  }
  get actionSpace(): Env['actionSpace'] {
    return this.#env.actionSpace;
  }
  get dt(): number {
    return this.#env.dt;
  }
  get maxEpisodeSteps(): number {
    return this.#env.maxEpisodeSteps;
  }
  get obsNames(): readonly string[] | undefined {
    return this.#env.obsNames;
  }
  get physics(): Env['physics'] {
    return this.#env.physics;
  }
  /** The action sent for a bad proposal, and taken as the last one sent at an episode's start. */
  get safeAction(): Float64Array {
    return Float64Array.from(this.#rules.safeAction);
  }

  reset(options?: ResetOptions): ResetResult {
    // As the node before its first tick: the last sent action is taken to be the safe action.
    this.#last = Float64Array.from(this.#rules.safeAction);
    return this.#env.reset(options);
  }

  step(action: ArrayLike<number>): StepResult {
    const { action: safe, interventions } = safeActionFor(action, this.#last, this.#rules);
    for (const r of interventions) this.interventions[r]++;
    const result = this.#env.step(safe);
    this.#last = safe;
    for (let i = 0; i < safe.length; i++) this.#applied.push(safe[i]);
    this.steps++;
    return result;
  }

  /** The applied actions since the last call (row-major), and forgets them. */
  takeAppliedActions(): Float64Array {
    const out = Float64Array.from(this.#applied);
    this.#applied = [];
    return out;
  }

  close(): void {
    this.#env.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Records, hooks, inputs

/** One real episode of one strategy (one line of `adapt.jsonl`). */
export interface AdaptEpisodeRecord {
  strategy: AdaptStrategy;
  seed: number;
  /** 1-based episode index within this strategy's run. */
  episode: number;
  /** Real steps so far, this episode included (the plot's x). */
  realSteps: number;
  episodeReturn: number;
  episodeLength: number;
  /**
   * The last good controller after this episode: 0 the one trained in simulation, +1 for every
   * adaptation accepted (`scratch`: the ME-TRPO iteration). A rolled-back trial leaves it unchanged.
   */
  version: number;
  /** The episode ran an adapted controller that was not accepted yet (its trial episode). */
  trial: boolean;
  /** The trial's return fell below the floor: the last good controller was deployed again. */
  rolledBack: boolean;
  /** Rollbacks so far in this run. */
  rollbacks: number;
  /** The rollback floor in force (null: none or not applicable). */
  floor: number | null;
  /** Safety-rule interventions during this episode. */
  interventions: Record<ActionIntervention, number>;
  /** Holdout loss per member after this episode's refit (`refit`, `mpc`); absent otherwise. */
  holdoutLoss?: number[] | null;
  /** `mpc`: the action delay compensated from the next episode on (estimated or configured), and with `'estimate'` the one-step errors per candidate delay. */
  actionDelaySteps?: number;
  delayErrors?: number[];
  fitError?: string;
}

/** The summary of one strategy's run. */
export interface AdaptRunSummary {
  strategy: AdaptStrategy;
  seed: number;
  realSteps: number;
  episodes: number;
  /** The first episode's return (the controller before adaptation). */
  preReturn: number;
  /** The last episode's return, and the mean of the last three. */
  finalReturn: number;
  finalReturnMean3: number;
  rollbacks: number;
  /**
   * The final controller's returns on the fixed start states (`config.evaluation`; empty when
   * disabled), and their mean (NaN when empty).
   */
  evalReturns: number[];
  evalReturn: number;
}

export interface AdaptHooks {
  /** After every real episode (awaited): e.g. appends the record to `adapt.jsonl`. */
  onEpisode?: (record: AdaptEpisodeRecord) => Promise<void> | void;
  log?: (line: string) => void;
}

/** What the simulator gave: the trained policy, the ensemble and (optionally) the sim transitions. */
export interface TrainedInSim {
  policySpec: GaussianMlpPolicySpec;
  policyWeights: PolicyWeights;
  /** The dynamics ensemble; required by `refit` and `mpc`. */
  ensemble: EnsembleWeights | null;
  /** Its construction config (the checkpoint config's `ensemble`), for refits. */
  ensembleConfig?: Partial<EnsembleConfig>;
  /** The simulator's transitions (the checkpoint's buffer), for `refit.simData` keep / downweight. */
  simBuffer?: ReplayBuffer;
  /** The training config's inner step size α (MB-MPO), used when the adapt config's is null. */
  innerStepSize?: number;
}

/** Everything `runAdaptation` needs. */
export interface AdaptInputs {
  config: AdaptConfig;
  trained: TrainedInSim;
  /** Builds a fresh real system (called once per strategy and seed; closed after). */
  makeRealEnv: () => Promise<Env>;
}

export interface AdaptResult {
  records: AdaptEpisodeRecord[];
  summaries: AdaptRunSummary[];
  /** The controller deployed at the end of each policy strategy's run (`frozen`, `mbMpo`, `refit`), by strategy. */
  finalPolicies: Partial<Record<AdaptStrategy, PolicyWeights>>;
}

// ---------------------------------------------------------------------------------------------
// The loop

/**
 * Runs every configured strategy for `config.realSteps` real steps on a fresh real system, seed
 * `config.seed`, and returns every episode's record and each run's summary.
 * @throws ValidationError when a strategy needs the ensemble and none was given, or the policy
 *   does not fit the real system
 * @example
 * const config = makeAdaptConfig({ physics: ISSUE_10_PHYSICS, strategies: ['frozen', 'mbMpo'] });
 * const ckpt = await loadPolicyCheckpoint('runs/pendulum-mbmpo');
 * const { summaries } = await runAdaptation({ config, trained: { policySpec: ckpt.policySpec, policyWeights: ckpt.policyWeights, ensemble: ckpt.ensemble },
 *   makeRealEnv: () => makeEnv(config.env, { physics: config.physics }) });
 */
export async function runAdaptation(inputs: AdaptInputs, hooks: AdaptHooks = {}): Promise<AdaptResult> {
  const { config, trained } = inputs;
  const records: AdaptEpisodeRecord[] = [];
  const summaries: AdaptRunSummary[] = [];
  const finalPolicies: AdaptResult['finalPolicies'] = {};
  for (const strategy of config.strategies) {
    if ((strategy === 'refit' || strategy === 'mpc') && !trained.ensemble) throw new ValidationError('runAdaptation', 'trained.ensemble', `strategy '${strategy}' needs the dynamics ensemble; the checkpoint has none`);
  }
  for (const strategy of config.strategies) {
    const env = new SafeRealSystem(await inputs.makeRealEnv(), config.safety);
    const run: AdaptEpisodeRecord[] = [];
    const record = async (r: Omit<AdaptEpisodeRecord, 'strategy' | 'seed' | 'episode' | 'realSteps' | 'interventions'>, seen: Record<ActionIntervention, number>): Promise<void> => {
      const interventions = { ...env.interventions };
      for (const k of Object.keys(interventions) as ActionIntervention[]) interventions[k] -= seen[k];
      Object.assign(seen, env.interventions);
      const full: AdaptEpisodeRecord = { strategy, seed: config.seed, episode: run.length + 1, realSteps: env.steps, ...r, interventions };
      run.push(full);
      records.push(full);
      hooks.log?.(`adapt ${strategy} s${config.seed} ep ${full.episode}: steps ${full.realSteps}, return ${full.episodeReturn.toFixed(1)}${full.trial ? ' (trial)' : ''}${full.rolledBack ? ' → rolled back' : ''}`);
      await hooks.onEpisode?.(full);
    };
    let evalReturns: number[] = [];
    try {
      const final = await runStrategy(strategy, config, trained, env, record);
      if (final.policy) finalPolicies[strategy] = final.policy.weights;
      if (config.evaluation.episodes > 0) {
        const evalEnv = new SafeRealSystem(await inputs.makeRealEnv(), config.safety);
        try {
          evalReturns = await evaluateFinal(final, config, trained, evalEnv);
        } finally {
          evalEnv.close();
        }
        hooks.log?.(`adapt ${strategy} s${config.seed}: evaluation on ${evalReturns.length} fixed starts ${meanOf(evalReturns).toFixed(1)}`);
      }
    } finally {
      env.close();
    }
    const returns = run.map((r) => r.episodeReturn);
    const last3 = returns.slice(-3);
    summaries.push({
      strategy,
      seed: config.seed,
      realSteps: env.steps,
      episodes: run.length,
      preReturn: returns[0] ?? NaN,
      finalReturn: returns[returns.length - 1] ?? NaN,
      finalReturnMean3: last3.reduce((a, b) => a + b, 0) / Math.max(1, last3.length),
      rollbacks: run[run.length - 1]?.rollbacks ?? 0,
      evalReturns,
      evalReturn: meanOf(evalReturns),
    });
  }
  return { records, summaries, finalPolicies };
}

function meanOf(xs: readonly number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** A strategy's final controller: a policy (with its spec), or the planner's ensemble (`mpc`). */
interface FinalController {
  policy?: { spec: GaussianMlpPolicySpec; weights: PolicyWeights };
  ensemble?: EnsembleWeights;
  /** The action delay the planner compensates (`mpc`). */
  actionDelaySteps?: number;
}

/**
 * Returns of `act` (deterministic) on `evaluation.episodes` episodes of `env` started from the
 * seeds `evaluation.seed + i` (see `EvaluationConfig`); `reset` runs before each episode.
 * @example
 * const returns = await evaluateOnFixedStarts(env, (obs) => policy.act(obs), () => {}, { episodes: 10, seed: 1_000_000 });
 */
export async function evaluateOnFixedStarts(
  env: Env,
  act: (obs: Float64Array) => ArrayLike<number> | Promise<ArrayLike<number>>,
  reset: () => void,
  evaluation: EvaluationConfig,
): Promise<number[]> {
  const returns: number[] = [];
  for (let i = 0; i < evaluation.episodes; i++) {
    let { obs } = env.reset({ seed: evaluation.seed + i });
    reset();
    let ret = 0;
    for (;;) {
      const r = env.step(await act(obs));
      ret += r.reward;
      obs = r.obs;
      if (r.terminated || r.truncated) break;
    }
    returns.push(ret);
  }
  return returns;
}

/**
 * The fixed-start evaluation of a trained policy (the policy's mean action) on `env`: e.g. on the
 * nominal simulator, the level that adaptation is measured against, with the same start states.
 */
export async function evaluatePolicyOnFixedStarts(env: Env, spec: GaussianMlpPolicySpec, weights: PolicyWeights, evaluation: EvaluationConfig): Promise<number[]> {
  const policy = new GaussianMlpPolicy(spec, { weights });
  try {
    return await evaluateOnFixedStarts(env, (obs) => policy.act(obs), () => {}, evaluation);
  } finally {
    policy.dispose();
  }
}

async function evaluateFinal(final: FinalController, config: AdaptConfig, trained: TrainedInSim, env: SafeRealSystem): Promise<number[]> {
  if (final.policy) return evaluatePolicyOnFixedStarts(env, final.policy.spec, final.policy.weights, config.evaluation);
  if (!final.ensemble) return [];
  const pets = makePetsConfig(petsOverrides(config));
  const { agent, predictor } = await makePetsAgent(pets, final.ensemble, null, env, new Rng(config.seed, 12));
  const delay = new ActionDelayCompensator(final.actionDelaySteps ?? 0, env.safeAction);
  try {
    const act = async (obs: Float64Array): Promise<Float64Array> => {
      // The command the safety rules let through at the previous step (none at an episode's start).
      const applied = env.takeAppliedActions();
      if (applied.length > 0) delay.push(applied);
      return agent.actAsync(await delay.predictAhead(predictor, obs));
    };
    const reset = (): void => {
      env.takeAppliedActions();
      delay.reset();
      agent.reset();
    };
    return await evaluateOnFixedStarts(env, act, reset, config.evaluation);
  } finally {
    predictor.dispose();
  }
}

type RecordEpisode = (r: Omit<AdaptEpisodeRecord, 'strategy' | 'seed' | 'episode' | 'realSteps' | 'interventions'>, seen: Record<ActionIntervention, number>) => Promise<void>;

/** One strategy's episodes; returns the finally deployed policy's weights (policy strategies). */
async function runStrategy(strategy: AdaptStrategy, config: AdaptConfig, trained: TrainedInSim, env: SafeRealSystem, record: RecordEpisode): Promise<FinalController> {
  const seen: Record<ActionIntervention, number> = { nonFinite: 0, badLength: 0, clip: 0, rateLimit: 0 };
  const rng = new Rng(config.seed, 11);
  if (strategy === 'scratch') {
    const meConfig = makeMeTrpoConfig(scratchOverrides(config));
    let before = 0;
    const state = await trainMeTrpo(meConfig, env, {
      onIteration: async (m) => {
        env.takeAppliedActions();
        await record({ episodeReturn: m.collectReturn, episodeLength: m.envSteps - before, version: m.iteration, trial: false, rolledBack: false, rollbacks: 0, floor: null, holdoutLoss: m.holdoutLoss }, seen);
        before = m.envSteps;
      },
    });
    const spec = makePolicySpec({ obsDim: env.observationSpace.dim, actionSpace: env.actionSpace, ...meConfig.policy });
    return { policy: { spec, weights: state.policy } };
  }
  if (strategy === 'mpc') return await runMpc(config, trained, env, rng, record, seen);
  const policy = new GaussianMlpPolicy(trained.policySpec, { weights: trained.policyWeights });
  const source = new EnvRolloutSource(env, { seed: config.seed * 7919 + 17 });
  try {
    if (strategy === 'frozen') {
      while (env.steps < config.realSteps) {
        const b = await collectRollouts(source, meanActionSampler(policy), rng, { episodes: 1 });
        env.takeAppliedActions();
        await record({ episodeReturn: b.episodeReturns[0], episodeLength: b.size, version: 0, trial: false, rolledBack: false, rollbacks: 0, floor: null }, seen);
      }
      return { policy: { spec: trained.policySpec, weights: policy.getWeights() } };
    }
    const weights = strategy === 'mbMpo' ? await runMbMpo(config, trained, policy, env, source, rng, record, seen) : await runRefit(config, trained, policy, env, source, rng, record, seen);
    return { policy: { spec: trained.policySpec, weights } };
  } finally {
    policy.dispose();
  }
}

/**
 * The rollback bookkeeping shared by the adapting strategies: the deployed controller is either
 * the last good one or a trial; a trial whose episode return is below the floor is discarded.
 */
class RollbackGuard<T> {
  lastGood: T;
  version = 0;
  rollbacks = 0;
  trial = false;
  floor: number | null = null;
  readonly #rule: RollbackConfig;
  constructor(initial: T, rule: RollbackConfig) {
    this.lastGood = initial;
    this.#rule = rule;
  }
  /**
   * Judges the episode just run with `current`; returns whether it was rolled back. The first
   * episode sets the pre-adaptation return (and the floor).
   */
  judge(episodeReturn: number, current: () => T): boolean {
    if (this.floor === null && this.version === 0 && !this.trial) this.floor = rollbackFloor(episodeReturn, this.#rule);
    if (!this.trial) return false;
    this.trial = false;
    if (shouldRollBack(episodeReturn, this.floor)) {
      this.rollbacks++;
      return true;
    }
    this.lastGood = current();
    this.version++;
    return false;
  }
  /** An adaptation that produced non-finite parameters: rolled back before it reaches the real system. */
  reject(): void {
    this.rollbacks++;
  }
}

function allFinite(xs: ArrayLike<number>): boolean {
  for (let i = 0; i < xs.length; i++) if (!Number.isFinite(xs[i])) return false;
  return true;
}

/** `mbMpo`: θ' = θ + α∇J(θ) on each episode's real transitions, deployed for the next episode. */
async function runMbMpo(config: AdaptConfig, trained: TrainedInSim, policy: GaussianMlpPolicy, env: SafeRealSystem, source: EnvRolloutSource, rng: Rng, record: RecordEpisode, seen: Record<ActionIntervention, number>): Promise<PolicyWeights> {
  const alpha = config.innerStepSize ?? trained.innerStepSize ?? 0.001;
  const guard = new RollbackGuard(policy.getFlatParams(), config.rollback);
  while (env.steps < config.realSteps) {
    const trial = guard.trial;
    const batch = await collectRollouts(source, policy, rng, { episodes: 1 });
    env.takeAppliedActions();
    const ret = batch.episodeReturns[0];
    const rolledBack = guard.judge(ret, () => policy.getFlatParams());
    await record({ episodeReturn: ret, episodeLength: batch.size, version: guard.version, trial, rolledBack, rollbacks: guard.rollbacks, floor: guard.floor }, seen);
    if (rolledBack) {
      // The trial's data were drawn by the discarded policy: the last good one runs again first.
      policy.setFlatParams(guard.lastGood);
      continue;
    }
    const samples = samplesOf(policy, batch, taskAdvantages(batch, config.gamma, config.gaeLambda));
    let next: Float32Array;
    try {
      const adapted = adaptedPolicy(policy, samples, alpha);
      next = adapted.getFlatParams();
      adapted.dispose();
    } finally {
      tf.dispose([samples.obsNorm, samples.u, samples.adv]);
    }
    if (!allFinite(next)) {
      // A step that overflowed never reaches the real system: the last good policy runs again.
      guard.reject();
      policy.setFlatParams(guard.lastGood);
      continue;
    }
    policy.setFlatParams(next);
    guard.trial = true;
  }
  // A trial never judged is not deployed: the last good policy is.
  if (guard.trial) policy.setFlatParams(guard.lastGood);
  return policy.getWeights();
}

/** The fit data of `refit` and `mpc`: the simulator's share (fixed once) plus every real transition. */
function makeFitBuffer(config: AdaptConfig, trained: TrainedInSim, env: Env, rng: Rng): ReplayBuffer {
  const obsDim = env.observationSpace.dim;
  const actDim = env.actionSpace.dim;
  const sim = config.refit.simData === 'drop' ? undefined : trained.simBuffer;
  const keep = !sim ? 0 : config.refit.simData === 'keep' ? sim.size : Math.round(config.refit.simWeight * sim.size);
  const buffer = new ReplayBuffer({ obsDim, actDim, capacity: keep + config.realSteps + env.maxEpisodeSteps + 1 });
  if (sim && keep > 0) {
    const idx = rng.permutation(sim.size).subarray(0, keep);
    const b = sim.toBatch(idx);
    for (let i = 0; i < keep; i++) {
      buffer.add({
        obs: b.obs.subarray(i * obsDim, (i + 1) * obsDim),
        action: b.action.subarray(i * actDim, (i + 1) * actDim),
        reward: b.reward[i],
        nextObs: b.nextObs.subarray(i * obsDim, (i + 1) * obsDim),
        terminated: b.terminated[i] === 1,
        truncated: b.truncated[i] === 1,
      });
    }
  }
  return buffer;
}

/** `refit`: refit the ensemble on real data, then a few TRPO steps on imagined rollouts. */
async function runRefit(config: AdaptConfig, trained: TrainedInSim, policy: GaussianMlpPolicy, env: SafeRealSystem, source: EnvRolloutSource, rng: Rng, record: RecordEpisode, seen: Record<ActionIntervention, number>): Promise<PolicyWeights> {
  const weights = trained.ensemble as EnsembleWeights;
  const ensemble = DynamicsEnsemble.fromWeights(weights, { config: trained.ensembleConfig ?? {} });
  const fitState = { buffer: makeFitBuffer(config, trained, env, rng.fork()), startStates: [] as number[] };
  const task = envSpec(config.env).task;
  const horizon = config.refit.imaginedHorizon ?? config.maxEpisodeSteps ?? env.maxEpisodeSteps;
  const baseline = new LinearFeatureBaseline({ obsDim: policy.obsDim });
  const guard = new RollbackGuard(policy.getFlatParams(), config.rollback);
  try {
    while (env.steps < config.realSteps) {
      const trial = guard.trial;
      const batch = await collectRollouts(source, policy, rng, { episodes: 1 });
      recordApplied(batch, env);
      addToBuffer(fitState, batch);
      const ret = batch.episodeReturns[0];
      const rolledBack = guard.judge(ret, () => policy.getFlatParams());
      // The model learns from every real transition, the trial's included.
      const refit = await refitKeepingLastGood(ensemble, fitState.buffer, config.refit.fit, rng.fork(), true);
      await record({ episodeReturn: ret, episodeLength: batch.size, version: guard.version, trial, rolledBack, rollbacks: guard.rollbacks, floor: guard.floor, holdoutLoss: refit.fit ? refit.fit.bestHoldoutLoss : null, ...(refit.error ? { fitError: refit.error } : {}) }, seen);
      if (rolledBack) {
        // The last good policy runs the next episode; the policy steps resume after it.
        policy.setFlatParams(guard.lastGood);
        continue;
      }
      if (env.steps >= config.realSteps || config.refit.trpoSteps === 0) continue;
      const predictor = await OrtEnsemblePredictor.create(ensemble.toWeights(), { intraOpThreads: 1 });
      try {
        const imagined = new ModelRolloutSource(new ModelEnv(predictor, { task, propagation: 'ts1', rng: rng.fork() }), {
          numEnvs: config.refit.imaginedEnvs,
          horizon,
          startStates: Float64Array.from(fitState.startStates),
          rng: rng.fork(),
        });
        for (let s = 0; s < config.refit.trpoSteps; s++) {
          const b = await collectRollouts(imagined, policy, rng, { steps: config.refit.imaginedSteps });
          const { advantages, returns } = advantagesOf(b, baseline, config.gamma, config.gaeLambda);
          trpoStep(policy, b, standardize(advantages), config.refit.trustRegion);
          baseline.fit(b.obs, b.timesteps, returns, b.size);
        }
      } finally {
        predictor.dispose();
      }
      if (!allFinite(policy.getFlatParams())) {
        guard.reject();
        policy.setFlatParams(guard.lastGood);
        continue;
      }
      guard.trial = true;
    }
    if (guard.trial) policy.setFlatParams(guard.lastGood);
    return policy.getWeights();
  } finally {
    ensemble.dispose();
  }
}

/** Replaces a one-episode batch's proposed actions with those the safety rules applied. */
function recordApplied(batch: SampleBatch, env: SafeRealSystem): void {
  const applied = env.takeAppliedActions();
  if (applied.length !== batch.actions.length) throw new Error(`adapt: ${applied.length / batch.actDim} actions applied but the batch holds ${batch.size} steps`);
  batch.actions.set(applied);
}

/**
 * `mpc`: PETS planning with the ensemble refitted after every episode; a refit whose episode falls
 * below the floor is reverted. With an action delay (`mpc.actionDelaySteps`), the fit data pairs
 * each state with the command that acted and the planner plans from the state the pending
 * commands lead to (`actionDelay.ts`); `'estimate'` re-estimates the delay after every episode.
 */
async function runMpc(config: AdaptConfig, trained: TrainedInSim, env: SafeRealSystem, rng: Rng, record: RecordEpisode, seen: Record<ActionIntervention, number>): Promise<FinalController> {
  const pets = makePetsConfig(petsOverrides(config));
  let ensemble = DynamicsEnsemble.fromWeights(trained.ensemble as EnsembleWeights, { config: trained.ensembleConfig ?? {} });
  const obsDim = env.observationSpace.dim;
  const actDim = env.actionSpace.dim;
  const initial = env.safeAction;
  const sim = makeFitBuffer(config, trained, env, rng.fork());
  const real: (CommandedEpisode & { rewards: number[]; terminated: boolean[]; truncated: boolean[] })[] = [];
  let delaySteps = config.mpc.actionDelaySteps === 'estimate' ? 0 : config.mpc.actionDelaySteps;
  /** The fit data: the simulator's share (the same rows each time) and every real step, paired with the command that acted. */
  const fitBuffer = (): ReplayBuffer => {
    const buffer = new ReplayBuffer({ obsDim, actDim, capacity: sim.capacity });
    if (sim.size > 0) buffer.addColumns(sim.slice());
    for (const e of real) {
      const acted = delayedActions(e.actions, actDim, delaySteps, initial);
      for (let t = 0; t < e.rewards.length; t++) {
        buffer.add({
          obs: e.obs.subarray(t * obsDim, (t + 1) * obsDim),
          action: acted.subarray(t * actDim, (t + 1) * actDim),
          reward: e.rewards[t],
          nextObs: e.nextObs.subarray(t * obsDim, (t + 1) * obsDim),
          terminated: e.terminated[t],
          truncated: e.truncated[t],
        });
      }
    }
    return buffer;
  };
  const guard = new RollbackGuard<EnsembleWeights>(ensemble.toWeights(), config.rollback);
  let current = guard.lastGood;
  let first = true;
  try {
    while (env.steps < config.realSteps) {
      const trial = guard.trial;
      const { agent, predictor } = await makePetsAgent(pets, current, null, env, rng.fork());
      const delay = new ActionDelayCompensator(delaySteps, initial);
      const episode = { obs: [] as number[], actions: [] as number[], nextObs: [] as number[], rewards: [] as number[], terminated: [] as boolean[], truncated: [] as boolean[] };
      let ret = 0;
      try {
        let { obs } = env.reset(first ? { seed: config.seed * 7919 + 17 } : undefined);
        first = false;
        agent.reset();
        for (;;) {
          const action = Float64Array.from(await agent.actAsync(await delay.predictAhead(predictor, obs)));
          const r = env.step(action);
          const applied = env.takeAppliedActions();
          delay.push(applied);
          episode.obs.push(...obs);
          episode.actions.push(...applied);
          episode.nextObs.push(...r.obs);
          episode.rewards.push(r.reward);
          episode.terminated.push(r.terminated);
          episode.truncated.push(r.truncated);
          ret += r.reward;
          obs = r.obs;
          if (r.terminated || r.truncated) break;
        }
      } finally {
        predictor.dispose();
      }
      const length = episode.rewards.length;
      real.push({ ...episode, obs: Float64Array.from(episode.obs), actions: Float64Array.from(episode.actions), nextObs: Float64Array.from(episode.nextObs) });
      const rolledBack = guard.judge(ret, () => current);
      if (rolledBack) {
        // The last good model plans the next episode; the refit on all data (the trial's too) follows it.
        ensemble.dispose();
        ensemble = DynamicsEnsemble.fromWeights(guard.lastGood, { config: trained.ensembleConfig ?? {} });
        current = guard.lastGood;
        await record({ episodeReturn: ret, episodeLength: length, version: guard.version, trial, rolledBack, rollbacks: guard.rollbacks, floor: guard.floor, actionDelaySteps: delaySteps }, seen);
        continue;
      }
      // The delay under the model that planned this episode, from all real data so far.
      let delayErrors: number[] | undefined;
      if (config.mpc.actionDelaySteps === 'estimate') {
        const predictor = await OrtEnsemblePredictor.create(current, { intraOpThreads: 1 });
        try {
          const estimate = await estimateActionDelay(predictor, real, config.mpc.maxActionDelaySteps, initial);
          delaySteps = estimate.delaySteps;
          delayErrors = estimate.errors;
        } finally {
          predictor.dispose();
        }
      }
      const refit = await refitKeepingLastGood(ensemble, fitBuffer(), config.refit.fit, rng.fork(), true);
      current = ensemble.toWeights();
      await record({ episodeReturn: ret, episodeLength: length, version: guard.version, trial, rolledBack, rollbacks: guard.rollbacks, floor: guard.floor, holdoutLoss: refit.fit ? refit.fit.bestHoldoutLoss : null, ...(refit.error ? { fitError: refit.error } : {}), actionDelaySteps: delaySteps, ...(delayErrors ? { delayErrors } : {}) }, seen);
      guard.trial = true;
    }
    // A refit never judged on a real episode is not deployed: the last good model is.
    return { ensemble: guard.trial ? guard.lastGood : current, actionDelaySteps: delaySteps };
  } finally {
    ensemble.dispose();
  }
}

/**
 * Mean return of the trained policy's mean action over `episodes` episodes of `env` (the nominal
 * simulator: the level adaptation is measured against). Not real steps: no safety rules.
 */
export async function nominalReturn(env: Env, trained: Pick<TrainedInSim, 'policySpec' | 'policyWeights'>, options: { episodes: number; seed: number }): Promise<number> {
  const policy = new GaussianMlpPolicy(trained.policySpec, { weights: trained.policyWeights });
  try {
    const b = await collectRollouts(new EnvRolloutSource(env, { seed: options.seed }), meanActionSampler(policy), new Rng(options.seed), { episodes: options.episodes });
    return b.episodeReturns.reduce((a, x) => a + x, 0) / b.episodeReturns.length;
  } finally {
    policy.dispose();
  }
}
