/**
 * What ME-TRPO and MB-MPO share around their own loops: the config fields and checks common to
 * both (a deterministic ensemble refitted on real data, a Gaussian policy improved with a trust
 * region on imagined data), the run state a checkpoint holds, and its set-up or resumption. Each
 * algorithm's file keeps its own loop, readable top to bottom.
 */
import type { Env, PhysicsParams } from '../core/env.js';
import { ValidationError, describe } from '../core/errors.js';
import { Rng, type RngState } from '../core/rng.js';
import { RunningNormalizer } from '../data/normalizer.js';
import { ReplayBuffer } from '../data/replayBuffer.js';
import { envSpec } from '../envs/registry.js';
import { DynamicsEnsemble, makeEnsembleConfig, type EnsembleConfig } from '../models/ensemble.js';
import { makeEnsembleFitConfig, type EnsembleFitConfig } from '../models/trainer.js';
import type { EnsembleWeights } from '../models/types.js';
import { GaussianMlpPolicy, makePolicySpec, type GaussianMlpPolicySpec, type PolicyWeights } from '../policies/gaussianMlpPolicy.js';
import { bufferFitData } from './mbrl.js';
import { meanActionSampler, stateBoundsOf } from './modelRollouts.js';
import { EnvRolloutSource, collectRollouts, meanOrNull, type SampleBatch } from './policyGradient.js';
import { checkInt, checkPolicyArchitecture, checkTrustRegionConfig, checkUnit, rejectUnknownKeys, type PolicyArchitecture, type TrustRegionConfig } from './trpo.js';

/** The config fields ME-TRPO and MB-MPO share (each documents their defaults). */
export interface ModelBasedPolicyConfig extends TrustRegionConfig {
  kind: string;
  env: string;
  seed: number;
  /** Real environment steps in total (evaluation episodes not counted). */
  steps: number;
  realEpisodesPerIteration: number;
  ensemble: Partial<EnsembleConfig>;
  fit: Partial<EnsembleFitConfig>;
  policy: PolicyArchitecture;
  /** Imagined episode length T; null: the task's time limit. */
  imaginedHorizon: number | null;
  /**
   * Imagined rollouts end (counted as diverged) when a state leaves the range of the real states
   * in the buffer widened by this fraction of that range on each side; null: only non-finite or
   * huge (|x| ≥ 1e6) states end them. Default null.
   */
  stateBoundMargin: number | null;
  gamma: number;
  gaeLambda: number;
  evalEpisodes: number;
  bufferCapacity: number;
  physics: Partial<PhysicsParams>;
  maxEpisodeSteps: number | null;
}

/** Overrides of such a config (the policy architecture may be partial). */
export type ModelBasedPolicyOverrides<C extends ModelBasedPolicyConfig> = Partial<Omit<C, 'policy'>> & { policy?: Partial<PolicyArchitecture> };

/**
 * Merges per-task overrides and `overrides` into `defaults` (nested objects merged key by key)
 * and checks the shared fields; the caller checks its own.
 * @param name the algorithm's name in messages, e.g. 'ME-TRPO'
 * @throws ValidationError naming the key, the value and what was expected
 */
export function makeModelBasedPolicyConfig<C extends ModelBasedPolicyConfig>(
  where: string,
  name: string,
  defaults: C,
  perTask: Record<string, Partial<C>>,
  overrides: ModelBasedPolicyOverrides<C>,
): C {
  rejectUnknownKeys(where, overrides, defaults);
  if (overrides.kind !== undefined && overrides.kind !== defaults.kind) throw new ValidationError(where, 'kind', `expected '${defaults.kind}', got ${describe(overrides.kind)}`);
  const perEnv = perTask[overrides.env ?? defaults.env] ?? {};
  const c: C = {
    ...defaults,
    ...perEnv,
    ...overrides,
    kind: defaults.kind,
    ensemble: { ...defaults.ensemble, ...perEnv.ensemble, ...overrides.ensemble },
    fit: { ...defaults.fit, ...perEnv.fit, ...overrides.fit },
    policy: { ...defaults.policy, hidden: [...defaults.policy.hidden], ...perEnv.policy, ...overrides.policy },
    physics: { ...overrides.physics },
  };
  envSpec(c.env);
  checkInt(where, 'seed', c.seed, 0);
  checkInt(where, 'steps', c.steps, 1);
  checkInt(where, 'realEpisodesPerIteration', c.realEpisodesPerIteration, 1);
  makeEnsembleConfig(c.ensemble);
  if (c.ensemble.probabilistic) throw new ValidationError(where, 'ensemble.probabilistic', `expected false: ${name} uses deterministic members`);
  makeEnsembleFitConfig(c.fit);
  checkPolicyArchitecture(where, c.policy);
  checkTrustRegionConfig(where, c);
  if (c.imaginedHorizon !== null) checkInt(where, 'imaginedHorizon', c.imaginedHorizon, 1);
  if (c.stateBoundMargin !== null && !(typeof c.stateBoundMargin === 'number' && c.stateBoundMargin >= 0)) {
    throw new ValidationError(where, 'stateBoundMargin', `expected null or a number ≥ 0, got ${describe(c.stateBoundMargin)}`);
  }
  checkUnit(where, 'gamma', c.gamma);
  checkUnit(where, 'gaeLambda', c.gaeLambda);
  checkInt(where, 'evalEpisodes', c.evalEpisodes, 0);
  checkInt(where, 'bufferCapacity', c.bufferCapacity, 1);
  if (c.maxEpisodeSteps !== null) checkInt(where, 'maxEpisodeSteps', c.maxEpisodeSteps, 1);
  return c;
}

/** Everything needed to continue a run (a checkpoint's content); `M` is the algorithm's iteration metrics. */
export interface ModelBasedPolicyState<C extends ModelBasedPolicyConfig, M> {
  config: C;
  envSteps: number;
  iteration: number;
  buffer: ReplayBuffer;
  /** Initial states of the real episodes so far, row-major. */
  startStates: number[];
  policy: PolicyWeights;
  ensemble: EnsembleWeights | null;
  rng: RngState;
  history: M[];
}

/** A run's live objects: the run generator, the policy and ensemble (dispose both), the imagined horizon. */
export interface ModelBasedPolicyRun<C extends ModelBasedPolicyConfig, M> {
  state: ModelBasedPolicyState<C, M>;
  rng: Rng;
  policySpec: GaussianMlpPolicySpec;
  policy: GaussianMlpPolicy;
  ensemble: DynamicsEnsemble;
  /** T: `imaginedHorizon`, else the run's or the task's time limit. */
  horizon: number;
}

/**
 * Starts a run (initial policy from stream 1 of the seed, ensemble from stream 2) or resumes one
 * from a checkpoint's state, whose config must equal `config`.
 */
export function startModelBasedPolicyRun<C extends ModelBasedPolicyConfig, M>(
  where: string,
  config: C,
  env: Env,
  resume?: ModelBasedPolicyState<C, M>,
): ModelBasedPolicyRun<C, M> {
  const obsDim = env.observationSpace.dim;
  const actDim = env.actionSpace.dim;
  const rng = new Rng(config.seed);
  const policySpec = makePolicySpec({ obsDim, actionSpace: env.actionSpace, ...config.policy });
  let state: ModelBasedPolicyState<C, M>;
  if (resume) {
    if (JSON.stringify(resume.config) !== JSON.stringify(config)) throw new ValidationError(where, 'resume.config', "differs from the config of this run; resume with the checkpoint's own config");
    state = resume;
    rng.setState(resume.rng);
  } else {
    const init = new GaussianMlpPolicy(policySpec, { rng: new Rng(config.seed, 1) });
    state = {
      config,
      envSteps: 0,
      iteration: 0,
      buffer: new ReplayBuffer({ obsDim, actDim, capacity: config.bufferCapacity }),
      startStates: [],
      policy: init.getWeights(),
      ensemble: null,
      rng: rng.getState(),
      history: [],
    };
    init.dispose();
  }
  const policy = new GaussianMlpPolicy(policySpec, { weights: state.policy });
  const ensemble = state.ensemble
    ? DynamicsEnsemble.fromWeights(state.ensemble, { config: config.ensemble })
    : new DynamicsEnsemble({ obsDim, actDim, rng: new Rng(config.seed, 2), config: config.ensemble });
  const horizon = config.imaginedHorizon ?? config.maxEpisodeSteps ?? env.maxEpisodeSteps;
  return { state, rng, policySpec, policy, ensemble, horizon };
}

/** Adds a batch's transitions to the replay buffer and records its episodes' start states. */
export function addToBuffer(state: { buffer: ReplayBuffer; startStates: number[] }, batch: SampleBatch): void {
  const D = batch.obsDim;
  const A = batch.actDim;
  for (let i = 0; i < batch.size; i++) {
    const obs = batch.obs.subarray(i * D, (i + 1) * D);
    if (batch.timesteps[i] === 0) for (let d = 0; d < D; d++) state.startStates.push(obs[d]);
    state.buffer.add({
      obs,
      action: batch.actions.subarray(i * A, (i + 1) * A),
      reward: batch.rewards[i],
      nextObs: batch.nextObs.subarray(i * D, (i + 1) * D),
      terminated: batch.terminated[i] === 1,
      truncated: batch.truncated[i] === 1,
    });
  }
}

/** Sets the policy's observation normalisation to the mean and std of every state in the buffer. */
export function normalizePolicyOnBuffer(policy: GaussianMlpPolicy, buffer: ReplayBuffer): void {
  const normalizer = new RunningNormalizer({ dim: policy.obsDim });
  const data = bufferFitData(buffer);
  normalizer.updateBatch(data.obs, data.n);
  policy.setObsNormalization(normalizer.mean, normalizer.std);
}

/** The plausible-state bounds of `config.stateBoundMargin` over the buffer's states, or undefined when it is null. */
export function imaginedStateBounds(config: ModelBasedPolicyConfig, buffer: ReplayBuffer): { low: Float64Array; high: Float64Array } | undefined {
  if (config.stateBoundMargin === null || buffer.size === 0) return undefined;
  return stateBoundsOf(bufferFitData(buffer).nextObs, buffer.obsDim, config.stateBoundMargin);
}

/** The seed of iteration `iteration`'s real evaluation episodes (apart from every training seed). */
export function realEvalSeed(config: ModelBasedPolicyConfig, iteration: number): number {
  return 1_000_000 + config.seed * 1009 + iteration;
}

/**
 * The deterministic policy's mean return over `config.evalEpisodes` real episodes seeded with
 * `realEvalSeed`, or null when `evalEpisodes` is 0 (then `rng` is not touched).
 */
export async function evaluateOnRealSystem(config: ModelBasedPolicyConfig, policy: GaussianMlpPolicy, env: Env, iteration: number, rng: Rng): Promise<number | null> {
  if (config.evalEpisodes === 0) return null;
  const ev = await collectRollouts(new EnvRolloutSource(env, { seed: realEvalSeed(config, iteration) }), meanActionSampler(policy), rng.fork(), { episodes: config.evalEpisodes });
  return meanOrNull(ev.episodeReturns);
}
