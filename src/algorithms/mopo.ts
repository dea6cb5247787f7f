/**
 * MOPO: Model-based Offline Policy Optimization (Yu, Thomas, Yu, Ermon, Zou, Levine, Finn, Ma
 * 2020, https://arxiv.org/abs/2005.13239), and offline MBPO as its λ = 0 special case.
 *
 * From logged data alone, top to bottom:
 *   fit a probabilistic ensemble (7 members, 5 elites, learned reward) on the dataset
 *   every epoch:
 *     branch `rolloutBatchSize` rollouts of length h from dataset states with the current SAC
 *     policy through the elites, reward penalised by the ensemble's uncertainty,
 *       r̃(s, a) = r̂(s, a) − λ · u(s, a),   u = max_k ‖σ_k(s, a)‖₂   (the paper's choice)
 *     keep the last `modelRetainEpochs` epochs of rollouts in a model buffer
 *     `sacUpdatesPerEpoch` SAC updates on batches of `realRatio` dataset + (1 − realRatio) model data
 *     evaluate the deterministic policy in the simulator (for reporting only: never trained on)
 *
 * λ = 0 is MBPO on the same data without the penalty (the baseline MOPO is compared with).
 * `onEpoch` hands out a `MopoState` after every epoch; passed back as `resume`, the run continues
 * exactly as it would have uninterrupted (`mbrl offline` checkpoints it).
 */
import type { Env, TaskFunctions } from '../core/env.js';
import { ValidationError, describe } from '../core/errors.js';
import { Rng, type RngState } from '../core/rng.js';
import { ReplayBuffer } from '../data/replayBuffer.js';
import { allocBatch } from '../data/transition.js';
import { envSpec } from '../envs/registry.js';
import { branchedRollouts, type PenaltyKind } from '../models/branchedRollouts.js';
import { DynamicsEnsemble, ENSEMBLE_PRESETS, makeEnsembleConfig, type EnsembleConfig } from '../models/ensemble.js';
import { OrtEnsemblePredictor } from '../models/ensembleOnnx.js';
import { fitEnsemble, makeEnsembleFitConfig, type EnsembleFitConfig, type EnsembleFitResult } from '../models/trainer.js';
import type { EnsembleWeights } from '../models/types.js';
import { meanOrNull } from './policyGradient.js';
import { checkSacAgentConfig, pickSacAgentConfig, SAC_DEFAULTS, SacAgent, type SacAgentConfig, type SacAgentState, type SacBatch } from './sac.js';
import { checkInt, checkUnit, rejectUnknownKeys } from './trpo.js';

/** Logged transitions with D4RL's field names (a subset: what MOPO reads). */
export interface OfflineData {
  size: number;
  obsDim: number;
  actDim: number;
  observations: Float32Array;
  actions: Float32Array;
  rewards: Float32Array;
  next_observations: Float32Array;
  terminals: Uint8Array;
}

/** Configuration of a MOPO (or offline MBPO, `penaltyCoef` 0) run. */
export interface MopoConfig {
  kind: 'mopo';
  /** The task the data came from (for its termination function and the evaluation runs). */
  env: string;
  seed: number;
  /** Epochs of (rollouts, SAC updates). */
  epochs: number;
  /** SAC gradient steps per epoch. Default 1000 (MOPO's epoch). */
  sacUpdatesPerEpoch: number;
  /** Rollouts branched per epoch. Default 5000 (MOPO: 50,000; scaled to this machine). */
  rolloutBatchSize: number;
  /** Rollout length h. Default 5 (MOPO's halfcheetah-random/medium-replay/medium-expert). */
  rolloutLength: number;
  /** λ of r̃ = r − λ·u. Default 1. 0 gives offline MBPO. */
  penaltyCoef: number;
  /** u: 'maxStd' (the paper's) or 'disagreement'. */
  penalty: PenaltyKind;
  /** Fraction of each SAC batch drawn from the dataset. Default 0.05 (MBPO/MOPO). */
  realRatio: number;
  /** Epochs of model rollouts kept. Default 5 (MOPO's `model_retain_epochs`). */
  modelRetainEpochs: number;
  /** SAC batch size. Default 256. */
  batchSize: number;
  /** The ensemble: MBPO's probabilistic 7 members, 5 elites, learned reward. */
  ensemble: Partial<EnsembleConfig>;
  fit: Partial<EnsembleFitConfig>;
  /** SAC's networks and learning rates (SAC_DEFAULTS' paper values by default). */
  sac: Partial<SacAgentConfig>;
  /** 'model' (MOPO: the learned reward) or 'task' (the task's known reward). */
  rewardFrom: 'model' | 'task';
  /** Evaluate in the simulator every this many epochs (and after the last). Default 1. */
  evalEvery: number;
  evalEpisodes: number;
}

export const MOPO_DEFAULTS = {
  kind: 'mopo',
  env: 'Pendulum-v1',
  seed: 0,
  epochs: 100,
  sacUpdatesPerEpoch: 1000,
  rolloutBatchSize: 5000,
  rolloutLength: 5,
  penaltyCoef: 1,
  penalty: 'maxStd',
  realRatio: 0.05,
  modelRetainEpochs: 5,
  batchSize: 256,
  ensemble: { ...ENSEMBLE_PRESETS.mbpo },
  fit: {},
  sac: {},
  rewardFrom: 'model',
  evalEvery: 1,
  evalEpisodes: 5,
} as const satisfies MopoConfig;

/**
 * The paper's (h, λ) per D4RL dataset (MOPO Table 8, as the issue lists them); pass the pair for
 * your dataset as `rolloutLength` and `penaltyCoef`.
 */
export const MOPO_PAPER_SETTINGS: Record<string, { rolloutLength: number; penaltyCoef: number }> = {
  'halfcheetah-random': { rolloutLength: 5, penaltyCoef: 0.5 },
  'halfcheetah-medium': { rolloutLength: 1, penaltyCoef: 1 },
  'halfcheetah-medium-replay': { rolloutLength: 5, penaltyCoef: 1 },
  'halfcheetah-medium-expert': { rolloutLength: 5, penaltyCoef: 5 },
};

/**
 * Merges `overrides` into `MOPO_DEFAULTS` and validates.
 * @throws ValidationError naming the key, the value and what was expected
 */
export function makeMopoConfig(overrides: Partial<MopoConfig> = {}): MopoConfig {
  const where = 'makeMopoConfig';
  rejectUnknownKeys(where, overrides, MOPO_DEFAULTS);
  if (overrides.kind !== undefined && overrides.kind !== 'mopo') throw new ValidationError(where, 'kind', `expected 'mopo', got ${describe(overrides.kind)}`);
  const c: MopoConfig = {
    ...MOPO_DEFAULTS,
    ...overrides,
    kind: 'mopo',
    ensemble: { ...MOPO_DEFAULTS.ensemble, ...overrides.ensemble },
    fit: { ...overrides.fit },
    sac: { ...overrides.sac },
  };
  envSpec(c.env);
  checkInt(where, 'seed', c.seed, 0);
  checkInt(where, 'epochs', c.epochs, 1);
  checkInt(where, 'sacUpdatesPerEpoch', c.sacUpdatesPerEpoch, 1);
  checkInt(where, 'rolloutBatchSize', c.rolloutBatchSize, 1);
  checkInt(where, 'rolloutLength', c.rolloutLength, 1);
  if (!(c.penaltyCoef >= 0 && Number.isFinite(c.penaltyCoef))) throw new ValidationError(where, 'penaltyCoef', `expected a finite number ≥ 0, got ${describe(c.penaltyCoef)}`);
  if (c.penalty !== 'maxStd' && c.penalty !== 'disagreement') throw new ValidationError(where, 'penalty', `expected 'maxStd' or 'disagreement', got ${describe(c.penalty)}`);
  checkUnit(where, 'realRatio', c.realRatio);
  checkInt(where, 'modelRetainEpochs', c.modelRetainEpochs, 1);
  checkInt(where, 'batchSize', c.batchSize, 1);
  const ens = makeEnsembleConfig(c.ensemble);
  if (c.penalty === 'maxStd' && !ens.probabilistic) throw new ValidationError(where, 'penalty', "'maxStd' needs probabilistic members (ensemble.probabilistic)");
  if (c.rewardFrom === 'model' && !ens.learnReward) throw new ValidationError(where, 'rewardFrom', "'model' needs ensemble.learnReward");
  if (c.rewardFrom !== 'model' && c.rewardFrom !== 'task') throw new ValidationError(where, 'rewardFrom', `expected 'model' or 'task', got ${describe(c.rewardFrom)}`);
  makeEnsembleFitConfig(c.fit);
  checkSacAgentConfig(where, { ...pickSacAgentConfig(SAC_DEFAULTS), ...c.sac });
  checkInt(where, 'evalEvery', c.evalEvery, 1);
  checkInt(where, 'evalEpisodes', c.evalEpisodes, 0);
  return c;
}

/** What one epoch reports. */
export interface MopoEpochMetrics {
  epoch: number;
  /** Mean deterministic return in the simulator (null between evaluations). */
  evalReturn: number | null;
  /** Model transitions made this epoch, and their mean penalty u and mean penalised reward. */
  modelTransitions: number;
  meanPenalty: number;
  meanModelReward: number;
  criticLoss: number;
  alpha: number;
  seconds: number;
}

/**
 * Everything a MOPO run needs to continue exactly where it stopped after an epoch (for
 * checkpoints): with it, `trainMopo` skips the model fit and goes on as the uninterrupted run would.
 */
export interface MopoState {
  config: MopoConfig;
  /** Epochs done. */
  epoch: number;
  /** The fitted ensemble (never refitted: the data are fixed). */
  ensemble: EnsembleWeights;
  /** The fit's report; its `elites` are the members rollouts draw from. */
  fit: EnsembleFitResult;
  agent: SacAgentState;
  /**
   * The model buffer. In `onEpoch` this is the run's live buffer: save it before the hook returns.
   * On resume its rows are copied, oldest first, into a buffer of the run's capacity.
   */
  modelBuffer: ReplayBuffer;
  /** The run's generator (start states, member choice, model noise, batches). */
  rng: RngState;
  history: MopoEpochMetrics[];
}

export interface MopoHooks {
  /** After every epoch (awaited), with the state to checkpoint. */
  onEpoch?: (m: MopoEpochMetrics, state: MopoState) => Promise<void> | void;
  log?: (line: string) => void;
}

export interface MopoResult {
  config: MopoConfig;
  agent: SacAgent;
  ensemble: EnsembleWeights;
  fit: EnsembleFitResult;
  history: MopoEpochMetrics[];
}

/**
 * Runs MOPO (or offline MBPO with `penaltyCoef` 0) on logged data.
 * @param data the dataset (D4RL fields)
 * @param env the task, for evaluation only (never trained on)
 * @param resume a state from `onEpoch` of a run with the same config (only `epochs` may differ):
 *   the run continues after its epoch, exactly as it would have without the interruption (its
 *   history keeps the evaluation a shorter run made after its last epoch, which with
 *   `evalEvery` > 1 the longer run would have skipped; evaluations change no training state)
 * @returns the trained SAC agent (dispose it) and the ensemble
 * @throws ValidationError for data that do not fit the task, or a resume state of another run
 * @example
 * const r = await trainMopo(makeMopoConfig({ env: 'Pendulum-v1', epochs: 20 }), data, await makeEnv('Pendulum-v1'));
 */
export async function trainMopo(config: MopoConfig, data: OfflineData, env: Env, hooks: MopoHooks = {}, resume?: MopoState): Promise<MopoResult> {
  const where = 'trainMopo';
  const log = hooks.log ?? (() => {});
  const { obsDim, actDim, size } = data;
  if (obsDim !== env.observationSpace.dim || actDim !== env.actionSpace.dim) {
    throw new ValidationError(where, 'data', `expected obsDim ${env.observationSpace.dim} and actDim ${env.actionSpace.dim} (${config.env}), got ${obsDim} and ${actDim}`);
  }
  if (size < 2) throw new ValidationError(where, 'data.size', `expected at least 2 transitions, got ${size}`);
  if (resume) checkMopoResume(config, resume, obsDim, actDim);
  const task: TaskFunctions = envSpec(config.env).task;
  const rng = new Rng(config.seed);
  const capacity = config.rolloutBatchSize * config.rolloutLength * config.modelRetainEpochs;

  // 1. The model, fitted once on the logged data (a resumed run has it).
  let fit: EnsembleFitResult;
  let weights: EnsembleWeights;
  if (resume) {
    ({ fit, ensemble: weights } = resume);
  } else {
    const ensemble = new DynamicsEnsemble({ obsDim, actDim, rng: new Rng(config.seed, 1), config: config.ensemble });
    try {
      fit = await fitEnsemble(ensemble, { obs: data.observations, act: data.actions, nextObs: data.next_observations, reward: data.rewards, n: size }, config.fit, rng.fork(), (e) =>
        log(`mopo: ensemble fit epoch ${e.epoch}: holdout [${e.holdoutLoss.map((x) => x.toFixed(4)).join(', ')}], ${e.seconds.toFixed(1)} s`),
      );
      weights = ensemble.toWeights();
    } finally {
      ensemble.dispose();
    }
    log(`mopo: ensemble fit ${fit.epochs} epochs (${fit.stopReason}), elites [${fit.elites.join(', ')}]`);
  }
  const predictor = await OrtEnsemblePredictor.create(weights, { intraOpThreads: 1 });

  // 2. SAC on real + penalised model data.
  const agent = new SacAgent({ obsDim, actionSpace: env.actionSpace, config: { ...pickSacAgentConfig(SAC_DEFAULTS), ...config.sac }, rng: new Rng(config.seed, 2) });
  const modelBuffer = new ReplayBuffer({ obsDim, actDim, capacity });
  const history: MopoEpochMetrics[] = [];
  if (resume) {
    agent.setState(resume.agent);
    if (resume.modelBuffer.size > 0) modelBuffer.addColumns(resume.modelBuffer.slice(0, resume.modelBuffer.size));
    rng.setState(resume.rng);
    history.push(...resume.history);
  }
  try {
    for (let epoch = (resume?.epoch ?? 0) + 1; epoch <= config.epochs; epoch++) {
      const start = performance.now();
      const starts = new Float32Array(config.rolloutBatchSize * obsDim);
      for (let i = 0; i < config.rolloutBatchSize; i++) {
        const j = rng.int(size);
        starts.set(data.observations.subarray(j * obsDim, (j + 1) * obsDim), i * obsDim);
      }
      const rollouts = await branchedRollouts(predictor, starts, (obs, m) => agent.actBatch(obs, m, false), {
        horizon: config.rolloutLength,
        members: fit.elites,
        task,
        rewardFrom: config.rewardFrom,
        ...(config.penaltyCoef > 0 ? { penalty: { kind: config.penalty, lambda: config.penaltyCoef } } : {}),
        rng,
      });
      for (let i = 0; i < rollouts.size; i++) {
        modelBuffer.add({
          obs: rollouts.obs.subarray(i * obsDim, (i + 1) * obsDim),
          action: rollouts.action.subarray(i * actDim, (i + 1) * actDim),
          reward: rollouts.reward[i],
          nextObs: rollouts.nextObs.subarray(i * obsDim, (i + 1) * obsDim),
          terminated: rollouts.terminated[i] === 1,
          truncated: false,
        });
      }
      let criticLoss = 0;
      for (let u = 0; u < config.sacUpdatesPerEpoch; u++) {
        criticLoss = agent.update(mixedBatch(data, modelBuffer, config.batchSize, config.realRatio, rng)).criticLoss;
      }
      let evalReturn: number | null = null;
      if (config.evalEpisodes > 0 && (epoch % config.evalEvery === 0 || epoch === config.epochs)) evalReturn = evaluate(agent, env, config.evalEpisodes, 10_000);
      const mean = (a: Float32Array): number => (a.length === 0 ? 0 : a.reduce((s, x) => s + x, 0) / a.length);
      const m: MopoEpochMetrics = {
        epoch,
        evalReturn,
        modelTransitions: rollouts.size,
        meanPenalty: mean(rollouts.penalty),
        meanModelReward: mean(rollouts.reward),
        criticLoss,
        alpha: agent.alpha,
        seconds: (performance.now() - start) / 1000,
      };
      history.push(m);
      log(`mopo epoch ${epoch}: eval ${evalReturn?.toFixed(1) ?? '-'}, ${rollouts.size} model transitions, mean u ${m.meanPenalty.toFixed(3)}, mean r̃ ${m.meanModelReward.toFixed(3)}, ${m.seconds.toFixed(1)} s`);
      await hooks.onEpoch?.(m, { config, epoch, ensemble: weights, fit, agent: agent.getState(), modelBuffer, rng: rng.getState(), history: [...history] });
    }
  } catch (err) {
    agent.dispose();
    throw err;
  } finally {
    predictor.dispose();
  }
  return { config, agent, ensemble: weights, fit, history };
}

/**
 * @throws ValidationError when `resume` is not a state of a run with `config` (all keys but
 *   `epochs` must agree) on data of these sizes
 */
function checkMopoResume(config: MopoConfig, resume: MopoState, obsDim: number, actDim: number): void {
  const where = 'trainMopo(resume)';
  const same = (c: MopoConfig): string => JSON.stringify({ ...c, epochs: 0 });
  if (same(resume.config) !== same(config)) throw new ValidationError(where, 'config', `expected the resumed run's config (only epochs may change), got ${JSON.stringify(resume.config)} for a run of ${JSON.stringify(config)}`);
  checkInt(where, 'epoch', resume.epoch, 0);
  if (resume.history.length !== resume.epoch) throw new ValidationError(where, 'history', `expected ${resume.epoch} entries (one per epoch done), got ${resume.history.length}`);
  const spec = resume.ensemble.spec;
  if (spec.obsDim !== obsDim || spec.actDim !== actDim) throw new ValidationError(where, 'ensemble', `expected obsDim ${obsDim} and actDim ${actDim}, got ${spec.obsDim} and ${spec.actDim}`);
  if (!resume.fit.elites.every((k) => Number.isInteger(k) && k >= 0 && k < spec.numMembers) || resume.fit.elites.length === 0) {
    throw new ValidationError(where, 'fit.elites', `expected member indices in [0, ${spec.numMembers}), got [${resume.fit.elites.join(', ')}]`);
  }
  const buf = resume.modelBuffer;
  if (buf.obsDim !== obsDim || buf.actDim !== actDim) throw new ValidationError(where, 'modelBuffer', `expected obsDim ${obsDim} and actDim ${actDim}, got ${buf.obsDim} and ${buf.actDim}`);
  const capacity = config.rolloutBatchSize * config.rolloutLength * config.modelRetainEpochs;
  if (buf.size > capacity) throw new ValidationError(where, 'modelBuffer', `expected at most ${capacity} rows (the run's capacity), got ${buf.size}`);
}

/** A SAC batch of `realRatio`·n dataset rows and the rest from the model buffer (all real while it is empty). */
export function mixedBatch(data: OfflineData, model: ReplayBuffer, n: number, realRatio: number, rng: Rng): SacBatch {
  const { obsDim: D, actDim: A } = data;
  const nReal = model.size === 0 ? n : Math.round(n * realRatio);
  const b = allocBatch(n, D, A);
  for (let i = 0; i < nReal; i++) {
    const j = rng.int(data.size);
    b.obs.set(data.observations.subarray(j * D, (j + 1) * D), i * D);
    b.action.set(data.actions.subarray(j * A, (j + 1) * A), i * A);
    b.reward[i] = data.rewards[j];
    b.nextObs.set(data.next_observations.subarray(j * D, (j + 1) * D), i * D);
    b.terminated[i] = data.terminals[j];
  }
  if (nReal < n) {
    const m = model.sample(n - nReal, rng);
    b.obs.set(m.obs, nReal * D);
    b.action.set(m.action, nReal * A);
    b.reward.set(m.reward, nReal);
    b.nextObs.set(m.nextObs, nReal * D);
    b.terminated.set(m.terminated, nReal);
  }
  return b;
}

/** Mean return of the agent's deterministic policy over `episodes` seeded episodes. */
export function evaluate(agent: SacAgent, env: Env, episodes: number, seed: number): number {
  const returns: number[] = [];
  for (let e = 0; e < episodes; e++) {
    let { obs } = env.reset({ seed: seed + e });
    let ret = 0;
    for (;;) {
      const s = env.step(agent.act(obs, true));
      ret += s.reward;
      obs = s.obs;
      if (s.terminated || s.truncated) break;
    }
    returns.push(ret);
  }
  return meanOrNull(returns) ?? NaN;
}
