/**
 * MBPO: Model-Based Policy Optimization (Janner, Fu, Zhang, Levine 2019, "When to Trust Your
 * Model", https://arxiv.org/abs/1906.08253; the authors' code github.com/jannerm/mbpo), online:
 * SAC trained mostly on short model rollouts branched from real states. Read top to bottom:
 *
 *   `initialRandomSteps` real steps with uniform random actions
 *   every real step t (counting from the end of the random phase):
 *     every `modelTrainFreq` steps: fit the probabilistic ensemble on all real data (7 members,
 *       5 elites, learned reward; the last good model kept if a fit fails); set h from the schedule
 *     every `rolloutEvery` steps: branch M · `rolloutEvery` rollouts of h steps from uniformly
 *       drawn real states, π sampled, each step's next state from one elite drawn at random, rows
 *       stopping at a predicted termination; into the model buffer, which keeps the last
 *       `modelRetainEpochs` epochs of rollouts
 *     one real step with a sample of π, stored in the real buffer
 *     G = `updatesPerStep` SAC updates on batches of ⌊`realRatio`·B⌋ real and the rest model rows
 *   after the first episode end in each epoch (`epochLength` steps), evaluate the deterministic policy
 *     (the same environment, reset seeds 10000, 10001, …; not counted in `steps`)
 *
 * The paper's Algorithm 2 branches M rollouts after every real step; its code branches M·250 of
 * them after every model fit (`rollout_batch_size` 100,000 with `model_train_freq` 250), which is
 * `rolloutEvery` 250 here. The rollout length follows the paper's linear schedule (Appendix C):
 *
 *   h(e) = ⌊ hMin + clip((e − epochA) / (epochB − epochA), 0, 1) · (hMax − hMin) ⌋,
 *
 * e the epoch (⌊(t − initialRandomSteps) / epochLength⌋), and the model buffer holds
 * `modelRetainEpochs` · `epochLength` · M · h rows (its `_reallocate_model_pool`, re-sized,
 * newest rows kept, when h changes).
 *
 * Parts shared with the rest of the project: `branchedRollouts` (models/), `SacAgent` (sac.ts),
 * `refitKeepingLastGood` (mbrl.ts). No file system here: the caller checkpoints from `onEpisode`.
 */
import { RandomAgent } from '../core/agent.js';
import type { Env, PhysicsParams, TaskFunctions } from '../core/env.js';
import { ValidationError, describe } from '../core/errors.js';
import { Rng, type RngState } from '../core/rng.js';
import { ReplayBuffer } from '../data/replayBuffer.js';
import { allocBatch, batchView, type Batch } from '../data/transition.js';
import { envSpec } from '../envs/registry.js';
import { runEpisodes } from '../envs/runEpisodes.js';
import { branchedRollouts } from '../models/branchedRollouts.js';
import { DynamicsEnsemble, ENSEMBLE_PRESETS, makeEnsembleConfig, type EnsembleConfig } from '../models/ensemble.js';
import { OrtEnsemblePredictor } from '../models/ensembleOnnx.js';
import { makeEnsembleFitConfig, type EnsembleFitConfig } from '../models/trainer.js';
import { selectMembers, type EnsembleWeights } from '../models/types.js';
import { refitKeepingLastGood } from './mbrl.js';
import { SAC_AGENT_KEYS, SAC_DEFAULTS, SAC_ENV_OVERRIDES, SAC_EVAL_SEED, SacAgent, checkSacAgentConfig, pickSacAgentConfig, type SacAgentConfig, type SacAgentState } from './sac.js';
import { checkInt, checkUnit, rejectUnknownKeys } from './trpo.js';

// ---------------------------------------------------------------------------------------------
// Config

/** The paper's rollout-length schedule [epochA, epochB, hMin, hMax]: hMin up to epoch A, hMax from epoch B, linear between. */
export type RolloutSchedule = readonly [epochA: number, epochB: number, hMin: number, hMax: number];

/** Configuration of an MBPO run (the authors' values unless said; see `MBPO_ENV_OVERRIDES` for the per-task ones). */
export interface MbpoConfig {
  /** Always `'mbpo'`, so a saved run can be rebuilt from its JSON. */
  kind: 'mbpo';
  /** Built-in task id (the caller builds the environment from `env`, `physics`, `maxEpisodeSteps`). */
  env: string;
  /** Seeds everything: initial weights, random actions, resets, fits, rollouts, minibatches. */
  seed: number;
  /** Real environment steps in total, random phase included (evaluation episodes not counted). */
  steps: number;
  /** Real steps per epoch E, the unit of the rollout schedule, of model retention and of evaluation. Default 1000. */
  epochLength: number;
  /** Steps of uniform random actions before the first fit (softlearning's `n_initial_exploration_steps`). Default 5000. */
  initialRandomSteps: number;
  /** Refit the ensemble every this many real steps (`model_train_freq`). Default 250. */
  modelTrainFreq: number;
  /** M, model rollouts per real step. Default 400 (the paper's). */
  rolloutsPerStep: number;
  /** Branch the rollouts of this many steps at once, every this many steps (the authors' code: at each fit, 250). Default 250. */
  rolloutEvery: number;
  /** h: a fixed length, or the paper's linear schedule [epochA, epochB, hMin, hMax]. Default 1. */
  rolloutLength: number | RolloutSchedule;
  /** Epochs of model rollouts the model buffer keeps (`model_retain_epochs`; 1 in every MuJoCo config of the authors'). Default 1. */
  modelRetainEpochs: number;
  /** Fraction of each SAC batch drawn from real data (`real_ratio`). Default 0.05. */
  realRatio: number;
  /**
   * G, SAC gradient steps per real step (`n_train_repeat`: 20 in the paper, 40 for HalfCheetah).
   * Default 10: a 256 × 256 update costs ~70 ms on tfjs-wasm, so the paper's 20 is ~1.4 s per
   * real step on a 2-core machine; the per-task overrides restore the paper's values.
   */
  updatesPerStep: number;
  /** SAC batch size. Default 256. */
  batchSize: number;
  /** Real replay buffer size (transitions). Default 1,000,000. */
  bufferCapacity: number;
  /** The ensemble: MBPO's 7 probabilistic members of 4 × 200 SiLU, 5 elites, learned reward. */
  ensemble: Partial<EnsembleConfig>;
  /**
   * Ensemble training (MBPO's: holdout 0.2, patience 5). Adam restarts at each fit
   * (`resetOptimizer`), so a run resumed from a checkpoint equals an uninterrupted one; the
   * weights carry over from fit to fit, as in the authors' code.
   */
  fit: Partial<EnsembleFitConfig>;
  /** SAC's networks and learning rates (SAC_DEFAULTS' values, 256 × 256, 3e-4; H̄ per task as the authors'). */
  sac: Partial<SacAgentConfig>;
  /** 'model' (MBPO: the learned reward) or 'task' (the task's known reward). Default 'model'. */
  rewardFrom: 'model' | 'task';
  /** Evaluation episodes of the deterministic policy per epoch (reset seeds 10000, …). Default 5 (the authors': 1). */
  evalEpisodes: number;
  /** onnxruntime threads of the rollouts' forward passes; null = all cores. Default null. */
  rolloutThreads: number | null;
  /** Physical variant of the environment. Default nominal. */
  physics: Partial<PhysicsParams>;
  /** Time limit per episode; null = the task's. */
  maxEpisodeSteps: number | null;
}

/** MBPO's defaults (see `MbpoConfig` for sources). */
export const MBPO_DEFAULTS = {
  kind: 'mbpo',
  env: 'Pendulum-v1',
  seed: 0,
  steps: 100_000,
  epochLength: 1000,
  initialRandomSteps: 5000,
  modelTrainFreq: 250,
  rolloutsPerStep: 400,
  rolloutEvery: 250,
  rolloutLength: 1,
  modelRetainEpochs: 1,
  realRatio: 0.05,
  updatesPerStep: 10,
  batchSize: 256,
  bufferCapacity: 1_000_000,
  ensemble: { ...ENSEMBLE_PRESETS.mbpo },
  fit: { resetOptimizer: true },
  sac: {},
  rewardFrom: 'model',
  evalEpisodes: 5,
  rolloutThreads: null,
  physics: {},
  maxEpisodeSteps: null,
} as const satisfies MbpoConfig;

/** SAC's own per-task agent settings (`SAC_ENV_OVERRIDES`), so MBPO's SAC is tuned as SAC's. */
function sacAgentOverrides(env: string): Partial<SacAgentConfig> {
  const o = SAC_ENV_OVERRIDES[env] ?? {};
  const out: Record<string, unknown> = {};
  for (const key of SAC_AGENT_KEYS) if (o[key] !== undefined) out[key] = o[key];
  return out as Partial<SacAgentConfig>;
}

/**
 * Per-task overrides. HalfCheetah, Hopper and Walker2d: the authors' configs
 * (examples/config/<task>/0.py: `n_train_repeat`, `rollout_schedule`, `target_entropy`) and the
 * budgets of the paper's curves (mbrl-lib's mbpo_<task>.yaml `num_steps`); expect hours per
 * 10,000 steps on 2 cores.
 * InvertedPendulum-v5: the authors' (epochs of 250 steps, 500 random steps, G 10, h 1, H̄ −0.05,
 * 200-wide members) at a quarter of their 20,000 steps and M 100. Pendulum-v1: sized for a 2-core
 * test (test/algorithms/mbpo.test.ts): SAC's Pendulum networks (64 × 64, lr 1e-3, batch 128), a
 * 3 × 64 ensemble, G 5, M 20, h 1, a refit every 100 steps, and
 * - 1000 random steps (5 episodes; they cost no updates): with 200, the first models were poor
 *   and SAC on their rollouts learned to spin the pendulum for ~1000 steps before swinging it up
 *   (solved only at 1,800–2,200 steps, where SAC alone at G 5 needed 1,200); with 1000 it is
 *   solved 600 steps later;
 * - model minibatches of 32 rows: MBPO's 256 leave a 1,000-row buffer 3 steps per epoch, so
 *   patience 5 stopped fits after ~15 steps (holdout MSE 0.05–0.2 instead of 0.002–0.01).
 */
export const MBPO_ENV_OVERRIDES: Record<string, Partial<MbpoConfig>> = {
  'HalfCheetah-v5': { steps: 400_000, updatesPerStep: 40, rolloutLength: [20, 150, 1, 1], sac: { targetEntropy: -3 } },
  'Hopper-v5': { steps: 125_000, updatesPerStep: 20, rolloutLength: [20, 150, 1, 15], sac: { targetEntropy: -1 } },
  'Walker2d-v5': { steps: 300_000, updatesPerStep: 20, rolloutLength: [20, 150, 1, 1], sac: { targetEntropy: -3 } },
  'InvertedPendulum-v5': {
    steps: 5000,
    epochLength: 250,
    initialRandomSteps: 500,
    updatesPerStep: 10,
    rolloutsPerStep: 100,
    ensemble: { hidden: [200, 200, 200, 200] },
    sac: { targetEntropy: -0.05 },
  },
  'Pendulum-v1': {
    steps: 1600,
    epochLength: 200,
    initialRandomSteps: 1000,
    modelTrainFreq: 100,
    rolloutEvery: 50,
    rolloutsPerStep: 20,
    rolloutLength: 1,
    updatesPerStep: 5,
    batchSize: 128,
    ensemble: { hidden: [64, 64, 64] },
    fit: { batchSize: 32 },
    sac: sacAgentOverrides('Pendulum-v1'),
  },
};

/** Overrides of an MBPO config. */
export type MbpoOverrides = Partial<MbpoConfig>;

/**
 * Merges per-task overrides and `overrides` into `MBPO_DEFAULTS` (nested objects key by key) and
 * validates.
 * @throws ValidationError naming the key, the value and what was expected
 * @example
 * const config = makeMbpoConfig({ env: 'Hopper-v5', seed: 1, updatesPerStep: 5 });
 */
export function makeMbpoConfig(overrides: MbpoOverrides = {}): MbpoConfig {
  const where = 'makeMbpoConfig';
  rejectUnknownKeys(where, overrides, MBPO_DEFAULTS);
  if (overrides.kind !== undefined && overrides.kind !== 'mbpo') throw new ValidationError(where, 'kind', `expected 'mbpo', got ${describe(overrides.kind)}`);
  const perEnv = MBPO_ENV_OVERRIDES[overrides.env ?? MBPO_DEFAULTS.env] ?? {};
  const schedule = overrides.rolloutLength ?? perEnv.rolloutLength ?? MBPO_DEFAULTS.rolloutLength;
  const c: MbpoConfig = {
    ...MBPO_DEFAULTS,
    ...perEnv,
    ...overrides,
    kind: 'mbpo',
    rolloutLength: Array.isArray(schedule) ? ([...schedule] as unknown as RolloutSchedule) : schedule,
    ensemble: { ...MBPO_DEFAULTS.ensemble, ...perEnv.ensemble, ...overrides.ensemble },
    fit: { ...MBPO_DEFAULTS.fit, ...perEnv.fit, ...overrides.fit },
    sac: { ...perEnv.sac, ...overrides.sac },
    physics: { ...overrides.physics },
  };
  if (c.sac.hidden) c.sac.hidden = [...c.sac.hidden];
  envSpec(c.env);
  checkInt(where, 'seed', c.seed, 0);
  checkInt(where, 'steps', c.steps, 1);
  checkInt(where, 'epochLength', c.epochLength, 1);
  checkInt(where, 'initialRandomSteps', c.initialRandomSteps, 1);
  checkInt(where, 'modelTrainFreq', c.modelTrainFreq, 1);
  checkInt(where, 'rolloutsPerStep', c.rolloutsPerStep, 1);
  checkInt(where, 'rolloutEvery', c.rolloutEvery, 1);
  checkRolloutLength(where, c.rolloutLength);
  checkInt(where, 'modelRetainEpochs', c.modelRetainEpochs, 1);
  checkUnit(where, 'realRatio', c.realRatio);
  checkInt(where, 'updatesPerStep', c.updatesPerStep, 1);
  checkInt(where, 'batchSize', c.batchSize, 1);
  checkInt(where, 'bufferCapacity', c.bufferCapacity, 1);
  const ens = makeEnsembleConfig(c.ensemble);
  if (c.rewardFrom !== 'model' && c.rewardFrom !== 'task') throw new ValidationError(where, 'rewardFrom', `expected 'model' or 'task', got ${describe(c.rewardFrom)}`);
  if (c.rewardFrom === 'model' && !ens.learnReward) throw new ValidationError(where, 'rewardFrom', "'model' needs ensemble.learnReward (or use 'task', the task's known reward)");
  makeEnsembleFitConfig(c.fit);
  for (const key of Object.keys(c.sac)) {
    if (!(SAC_AGENT_KEYS as readonly string[]).includes(key)) throw new ValidationError(where, `sac.${key}`, `unknown key; expected one of ${SAC_AGENT_KEYS.join(', ')}`);
  }
  checkSacAgentConfig(where, { ...pickSacAgentConfig(SAC_DEFAULTS), ...c.sac });
  checkInt(where, 'evalEpisodes', c.evalEpisodes, 0);
  if (c.rolloutThreads !== null) checkInt(where, 'rolloutThreads', c.rolloutThreads, 1);
  if (c.maxEpisodeSteps !== null) checkInt(where, 'maxEpisodeSteps', c.maxEpisodeSteps, 1);
  return c;
}

function checkRolloutLength(where: string, h: unknown): void {
  if (typeof h === 'number') return checkInt(where, 'rolloutLength', h, 1);
  const ok = Array.isArray(h) && h.length === 4 && h.every((x) => Number.isInteger(x)) && h[0] >= 0 && h[1] > h[0] && h[2] >= 1 && h[3] >= 1;
  if (!ok) throw new ValidationError(where, 'rolloutLength', `expected an integer ≥ 1 or [epochA, epochB, hMin, hMax] with integers 0 ≤ epochA < epochB and hMin, hMax ≥ 1, got ${Array.isArray(h) ? JSON.stringify(h) : describe(h)}`);
}

// ---------------------------------------------------------------------------------------------
// Parts (pure functions)

/**
 * h at epoch `epoch`: the fixed length, or the paper's schedule
 * ⌊hMin + clip((e − A)/(B − A), 0, 1)·(hMax − hMin)⌋ (the authors' `_set_rollout_length`).
 * @example rolloutLengthAt([20, 150, 1, 15], 85) // 8
 */
export function rolloutLengthAt(rolloutLength: number | RolloutSchedule, epoch: number): number {
  if (typeof rolloutLength === 'number') return rolloutLength;
  const [a, b, hMin, hMax] = rolloutLength;
  const x = Math.min(Math.max((epoch - a) / (b - a), 0), 1);
  return Math.floor(x * (hMax - hMin) + hMin);
}

/** Rows the model buffer keeps for rollouts of length h: `modelRetainEpochs` · E · M · h (the authors' pool size). */
export function modelBufferCapacity(config: Pick<MbpoConfig, 'modelRetainEpochs' | 'epochLength' | 'rolloutsPerStep'>, h: number): number {
  return config.modelRetainEpochs * config.epochLength * config.rolloutsPerStep * h;
}

/**
 * A SAC batch of ⌊`realRatio`·n⌋ uniform rows of the real buffer followed by uniform rows of the
 * model buffer (the authors' `_training_batch`); all real while the model buffer is empty. The
 * online counterpart of MOPO's `mixedBatch`, whose real data is a dataset.
 * @param out a batch from `allocBatch(n, obsDim, actDim)`, reused between calls
 */
export function mixedReplayBatch(real: ReplayBuffer, model: ReplayBuffer, realRatio: number, rng: Rng, out: Batch): Batch {
  const n = out.size;
  const nReal = model.size === 0 ? n : Math.floor(n * realRatio);
  if (nReal > 0) real.sample(nReal, rng, batchView(out, 0, nReal));
  if (nReal < n) model.sample(n - nReal, rng, batchView(out, nReal, n));
  return out;
}

// ---------------------------------------------------------------------------------------------
// The loop

/** What one real episode reports (one line of `metrics.jsonl`). */
export interface MbpoEpisodeMetrics {
  episode: number;
  /** Real steps so far, this episode included. */
  envSteps: number;
  /** The schedule's epoch at the episode's end (0 during the random phase). */
  epoch: number;
  /** `'random'` if the episode began in the random phase, else `'sac'`. */
  policy: 'random' | 'sac';
  return: number;
  length: number;
  /** SAC gradient steps so far. */
  updates: number;
  /** Means over this episode's gradient steps (null without any). */
  criticLoss: number | null;
  actorLoss: number | null;
  alpha: number | null;
  entropy: number | null;
  meanQ: number | null;
  /** h in use at the episode's end, and the model buffer's rows. */
  rolloutLength: number;
  modelBufferSize: number;
  /** Model transitions added during the episode. */
  modelTransitions: number;
  /** Fits during the episode, the holdout loss per member and elites of the last one (null without a fit). */
  fits: number;
  holdoutLoss: number[] | null;
  elites: number[] | null;
  /** Set when a refit failed and the previous model was kept. */
  fitError?: string;
  /** Mean deterministic return over `evalEpisodes` (null when not evaluated after this episode). */
  evalReturn: number | null;
  /** Wall time of the episode (evaluation excluded), and of its fits, rollouts and SAC updates. */
  seconds: number;
  fitSeconds: number;
  rolloutSeconds: number;
  updateSeconds: number;
}

/** Everything needed to continue a run exactly where it stopped (a checkpoint's content). */
export interface MbpoState {
  config: MbpoConfig;
  envSteps: number;
  episodes: number;
  /** Real transitions. */
  buffer: ReplayBuffer;
  /** Model rollouts (capacity `modelBufferCapacity(config, rolloutLength)`). */
  modelBuffer: ReplayBuffer;
  /** The SAC learner (networks, targets, α, Adam moments, its generators). */
  agent: SacAgentState;
  /** The last good ensemble and its elites (null before the first fit). */
  ensemble: EnsembleWeights | null;
  elites: number[] | null;
  /** h of the last fit. */
  rolloutLength: number;
  rng: RngState;
  history: MbpoEpisodeMetrics[];
}

/** Hooks of `trainMbpo`. */
export interface MbpoHooks {
  /**
   * After every real episode (and its evaluation, if any), with the state to checkpoint (awaited:
   * a checkpoint completes before the next episode). The buffers are the live ones: write or
   * copy them before returning.
   */
  onEpisode?: (metrics: MbpoEpisodeMetrics, state: MbpoState) => Promise<void> | void;
  /** Log lines (fits, episode summaries). */
  log?: (line: string) => void;
}

/** What `trainMbpo` returns: the final state and the live agent (the caller disposes it). */
export interface MbpoResult {
  state: MbpoState;
  agent: SacAgent;
}

/**
 * Runs (or resumes) MBPO on `env` until `config.steps` real steps. Deterministic for a seed;
 * a run resumed from a state given to `onEpisode` continues exactly as the uninterrupted one.
 * @param env the real system, made by the caller (also used for the evaluation episodes)
 * @param resume a state from `onEpisode` (a checkpoint); its config must equal `config` but for
 *   `steps`, which may be raised
 * @example
 * const config = makeMbpoConfig({ env: 'Pendulum-v1', seed: 0 });
 * const { state, agent } = await trainMbpo(config, await makeEnv(config.env), { log: console.log });
 * agent.dispose();
 */
export async function trainMbpo(config: MbpoConfig, env: Env, hooks: MbpoHooks = {}, resume?: MbpoState): Promise<MbpoResult> {
  const where = 'trainMbpo';
  const log = hooks.log ?? (() => {});
  const D = env.observationSpace.dim;
  const A = env.actionSpace.dim;
  const task: TaskFunctions = envSpec(config.env).task;
  const rng = new Rng(config.seed);

  // 1. Components: the SAC learner, the ensemble, the two buffers (or the checkpoint's).
  const agent = new SacAgent({ obsDim: D, actionSpace: env.actionSpace, config: { ...pickSacAgentConfig(SAC_DEFAULTS), ...config.sac }, rng: new Rng(config.seed, 1) });
  let state: MbpoState;
  if (resume) {
    // `steps` alone may differ: a run may be continued past its budget (the real buffer grown to fit).
    if (JSON.stringify({ ...resume.config, steps: config.steps }) !== JSON.stringify(config)) {
      agent.dispose();
      throw new ValidationError(where, 'resume.config', "differs from the config of this run (other than steps); resume with the checkpoint's own config");
    }
    state = { ...resume, config };
    const capacity = Math.min(config.bufferCapacity, config.steps);
    if (state.buffer.capacity < capacity) state.buffer = resizedBuffer(state.buffer, capacity);
    agent.setState(resume.agent);
    rng.setState(resume.rng);
  } else {
    const h = rolloutLengthAt(config.rolloutLength, 0);
    state = {
      config,
      envSteps: 0,
      episodes: 0,
      buffer: new ReplayBuffer({ obsDim: D, actDim: A, capacity: Math.min(config.bufferCapacity, config.steps) }),
      modelBuffer: new ReplayBuffer({ obsDim: D, actDim: A, capacity: modelBufferCapacity(config, h) }),
      agent: agent.getState(),
      ensemble: null,
      elites: null,
      rolloutLength: h,
      rng: rng.getState(),
      history: [],
    };
  }
  const ensemble = state.ensemble
    ? DynamicsEnsemble.fromWeights(state.ensemble, { config: config.ensemble, elites: state.elites ?? undefined })
    : new DynamicsEnsemble({ obsDim: D, actDim: A, rng: new Rng(config.seed, 2), config: config.ensemble });
  const threads = config.rolloutThreads === null ? {} : { intraOpThreads: config.rolloutThreads };
  const elitePredictor = async (): Promise<OrtEnsemblePredictor> => OrtEnsemblePredictor.create(selectMembers(state.ensemble as EnsembleWeights, state.elites as number[]), threads);
  let predictor = state.ensemble ? await elitePredictor() : undefined;
  const random = new RandomAgent(env.actionSpace, rng);
  const batch = allocBatch(config.batchSize, D, A);
  // Epochs count from the end of the random phase (the authors' `_epoch`); negative before it.
  const epochIndex = (t: number): number => Math.floor((t - config.initialRandomSteps) / config.epochLength);
  const epochAt = (t: number): number => Math.max(0, epochIndex(t));

  try {
    while (state.envSteps < config.steps) {
      const startSteps = state.envSteps;
      const start = performance.now();
      const m = { fits: 0, holdoutLoss: null as number[] | null, elites: null as number[] | null, fitError: undefined as string | undefined, modelTransitions: 0, fitSeconds: 0, rolloutSeconds: 0, updateSeconds: 0 };
      const sums = { criticLoss: 0, actorLoss: 0, alpha: 0, entropy: 0, meanQ: 0, count: 0 };
      let { obs } = env.reset({ seed: rng.int(2 ** 31) });
      let ret = 0;
      let len = 0;
      const limit = config.steps - state.envSteps;
      for (;;) {
        const t = state.envSteps;
        const learning = t >= config.initialRandomSteps;
        if (learning && (t - config.initialRandomSteps) % config.modelTrainFreq === 0) {
          // 2. Refit the model on all real data; h for the epoch; the model buffer re-sized to it.
          const t0 = performance.now();
          const refit = await refitKeepingLastGood(ensemble, state.buffer, config.fit, rng.fork(), state.ensemble !== null);
          if (refit.fit) {
            state.ensemble = ensemble.toWeights();
            state.elites = [...ensemble.elites];
            predictor?.dispose();
            predictor = undefined;
            predictor = await elitePredictor();
            m.holdoutLoss = refit.fit.bestHoldoutLoss;
            m.elites = refit.fit.elites;
            log(`mbpo fit at ${t} steps: ${refit.fit.epochs} epochs (${refit.fit.stopReason}), holdout [${refit.fit.bestHoldoutLoss.map((x) => x.toPrecision(3)).join(', ')}], elites [${refit.fit.elites.join(', ')}]`);
          } else {
            m.fitError = refit.error;
            log(`mbpo fit at ${t} steps failed, keeping the previous model: ${refit.error}`);
          }
          m.fits++;
          const h = rolloutLengthAt(config.rolloutLength, epochAt(t));
          if (h !== state.rolloutLength) {
            state.modelBuffer = resizedBuffer(state.modelBuffer, modelBufferCapacity(config, h));
            state.rolloutLength = h;
          }
          m.fitSeconds += (performance.now() - t0) / 1000;
        }
        if (learning && (t - config.initialRandomSteps) % config.rolloutEvery === 0) {
          // 3. Branch M · rolloutEvery rollouts of length h from real states with the current policy.
          const t0 = performance.now();
          const n = config.rolloutsPerStep * config.rolloutEvery;
          const idx = new Uint32Array(n);
          for (let i = 0; i < n; i++) idx[i] = rng.int(state.buffer.size);
          const starts = state.buffer.toBatch(idx).obs;
          const r = await branchedRollouts(predictor as OrtEnsemblePredictor, starts, (o, k) => agent.actBatch(o, k, false), {
            horizon: state.rolloutLength,
            task,
            rewardFrom: config.rewardFrom,
            rng,
          });
          if (r.size > 0) {
            const b = allocBatch(r.size, D, A);
            b.obs.set(r.obs);
            b.action.set(r.action);
            b.reward.set(r.reward);
            b.nextObs.set(r.nextObs);
            b.terminated.set(r.terminated);
            state.modelBuffer.addColumns(b);
          }
          m.modelTransitions += r.size;
          m.rolloutSeconds += (performance.now() - t0) / 1000;
        }

        // 4. One real step: random in the warm-up, then a sample of π.
        const action = Float64Array.from(learning ? agent.act(obs, false) : random.act());
        const s = env.step(action);
        len++;
        ret += s.reward;
        state.envSteps++;
        // Cut at the step budget: the last transition is then truncated, never terminal by mistake.
        const truncated = s.truncated || len >= limit;
        state.buffer.add({ obs, action, reward: s.reward, nextObs: s.obs, terminated: s.terminated, truncated });
        obs = s.obs;

        // 5. G SAC updates on mixed real and model batches.
        if (learning) {
          const t0 = performance.now();
          for (let g = 0; g < config.updatesPerStep; g++) {
            const u = agent.update(mixedReplayBatch(state.buffer, state.modelBuffer, config.realRatio, rng, batch));
            sums.criticLoss += u.criticLoss;
            sums.actorLoss += u.actorLoss;
            sums.alpha += u.alpha;
            sums.entropy += u.entropy;
            sums.meanQ += u.meanQ;
            sums.count++;
          }
          m.updateSeconds += (performance.now() - t0) / 1000;
        }
        if (s.terminated || truncated) break;
      }
      const seconds = (performance.now() - start) / 1000;

      // 6. Evaluate after the first episode end in each epoch (the first at the end of the random
      // phase: the untrained policy's baseline), and at the end.
      let evalReturn: number | null = null;
      const crossed = state.envSteps >= config.initialRandomSteps && epochIndex(state.envSteps) > epochIndex(startSteps);
      if (config.evalEpisodes > 0 && (crossed || state.envSteps >= config.steps)) {
        evalReturn = runEpisodes(env, agent, { episodes: config.evalEpisodes, seed: SAC_EVAL_SEED }).mean;
      }
      const mean = (x: number): number | null => (sums.count > 0 ? x / sums.count : null);
      const metrics: MbpoEpisodeMetrics = {
        episode: state.episodes,
        envSteps: state.envSteps,
        epoch: epochAt(state.envSteps),
        policy: startSteps < config.initialRandomSteps ? 'random' : 'sac',
        return: ret,
        length: len,
        updates: agent.updates,
        criticLoss: mean(sums.criticLoss),
        actorLoss: mean(sums.actorLoss),
        alpha: mean(sums.alpha),
        entropy: mean(sums.entropy),
        meanQ: mean(sums.meanQ),
        rolloutLength: state.rolloutLength,
        modelBufferSize: state.modelBuffer.size,
        modelTransitions: m.modelTransitions,
        fits: m.fits,
        holdoutLoss: m.holdoutLoss,
        elites: m.elites,
        ...(m.fitError ? { fitError: m.fitError } : {}),
        evalReturn,
        seconds,
        fitSeconds: m.fitSeconds,
        rolloutSeconds: m.rolloutSeconds,
        updateSeconds: m.updateSeconds,
      };
      state.episodes++;
      state.history.push(metrics);
      state.agent = agent.getState();
      state.rng = rng.getState();
      log(
        `mbpo ep ${metrics.episode}: steps ${state.envSteps}, return ${ret.toFixed(1)}, eval ${evalReturn?.toFixed(1) ?? '-'}, h ${state.rolloutLength}, ` +
          `model rows ${state.modelBuffer.size}, alpha ${metrics.alpha?.toFixed(3) ?? '-'}, ${seconds.toFixed(1)} s (fit ${m.fitSeconds.toFixed(1)}, rollouts ${m.rolloutSeconds.toFixed(1)}, updates ${m.updateSeconds.toFixed(1)})`,
      );
      await hooks.onEpisode?.(metrics, state);
    }
  } catch (err) {
    agent.dispose();
    throw err;
  } finally {
    predictor?.dispose();
    ensemble.dispose();
  }
  return { state, agent };
}

/** A buffer of `capacity` rows holding the newest rows of `buffer` (MBPO's pool re-allocation when h changes). */
function resizedBuffer(buffer: ReplayBuffer, capacity: number): ReplayBuffer {
  const out = new ReplayBuffer({ obsDim: buffer.obsDim, actDim: buffer.actDim, capacity });
  const keep = Math.min(buffer.size, capacity);
  if (keep > 0) out.addColumns(buffer.slice(buffer.size - keep, buffer.size));
  return out;
}
