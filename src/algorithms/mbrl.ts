/**
 * The model-based RL loop with a planner: PETS (Chua et al. 2018, "Deep Reinforcement Learning in
 * a Handful of Trials using Probabilistic Dynamics Models", https://arxiv.org/abs/1805.12114),
 * read top to bottom as mbrl-lib's `pets.train`:
 *
 *   1. collect `initialRandomSteps` with uniform random actions;
 *   2. repeat until `steps` real steps: fit the ensemble on all data (holdout early stopping,
 *      elites), rebuild the fast ONNX forward path from the elites, run one episode with the
 *      planner (CEM/MPPI/random shooting over TS1/TS∞ particles of the model), add its
 *      transitions, report the episode and a checkpointable state.
 *
 * The task's known reward and termination functions are used (PETS's setting); set
 * `ensemble.learnReward` to learn the reward instead. No file system here: the CLI writes
 * metrics, plots and checkpoints from the `onEpisode` hook.
 */
import type { Env, PhysicsParams } from '../core/env.js';
import { ValidationError, describe } from '../core/errors.js';
import { Rng, type RngState } from '../core/rng.js';
import { RandomAgent } from '../core/agent.js';
import { ReplayBuffer } from '../data/replayBuffer.js';
import { envSpec } from '../envs/registry.js';
import { DynamicsEnsemble, makeEnsembleConfig, type EnsembleConfig } from '../models/ensemble.js';
import { OrtEnsemblePredictor } from '../models/ensembleOnnx.js';
import { ModelEnv, type Propagation } from '../models/modelEnv.js';
import { fitEnsemble, EnsembleFitError, makeEnsembleFitConfig, type EnsembleFitConfig, type EnsembleFitResult, type EnsembleEpochReport } from '../models/trainer.js';
import { selectMembers, type EnsembleWeights } from '../models/types.js';
import { asPlanningAgent, type PlanningAgent } from '../planning/planningAgent.js';
import { CEM_DEFAULTS, makeCemConfig } from '../planning/cem.js';
import { makeMppiConfig } from '../planning/mppi.js';
import { makeRandomShootingConfig } from '../planning/randomShooting.js';
import { createModelPlanningAgent, type PlannerConfig } from '../planning/trajectoryOptimizerAgent.js';

/** Configuration of a PETS run. */
export interface PetsConfig {
  /** Always `'pets'`, so a checkpoint's config can be rebuilt from its JSON. */
  kind: 'pets';
  /** Built-in task id. */
  env: string;
  /** Seeds everything: environment resets, the ensemble's initial weights, data splits, planners. */
  seed: number;
  /** Real environment steps in total (warm-up included). */
  steps: number;
  /** Steps of uniform random actions before the first fit; null = one episode's time limit (mbrl-lib: `initial_exploration_steps = trial_length`). */
  initialRandomSteps: number | null;
  /** Ensemble architecture (defaults: 7 probabilistic members, 5 elites, 4 × 200 SiLU; PETS uses the known reward, so `learnReward` defaults to false here). */
  ensemble: Partial<EnsembleConfig>;
  /** Ensemble training (defaults: MBPO/mbrl-lib's, early stopping with patience 5; Adam restarted at each fit). */
  fit: Partial<EnsembleFitConfig>;
  /** The planner and its settings (default: CEM, population 400, 40 elites, 5 iterations, horizon 30, α 0.1). */
  planner: PlannerConfig;
  /** Particle propagation (PETS: TS∞ and TS1 are its best; default `'ts1'`). */
  propagation: Propagation;
  /** Particles per candidate sequence (PETS: 20). */
  particles: number;
  /** Plan with the elite members only (MBPO/mbrl-lib); false uses every member. Default true. */
  planWithElites: boolean;
  /** Replay buffer capacity (transitions). Default 1,000,000. */
  bufferCapacity: number;
  /** Physical variant of the environment (sim-to-real). Default nominal. */
  physics: Partial<PhysicsParams>;
  /** Time limit per episode; null = the task's. */
  maxEpisodeSteps: number | null;
  /** onnxruntime threads of the planner's forward path; null = all cores. */
  plannerThreads: number | null;
}

/** PETS's defaults (see `PetsConfig` for sources). */
export const PETS_DEFAULTS = {
  kind: 'pets',
  env: 'Pendulum-v1',
  seed: 0,
  steps: 5000,
  initialRandomSteps: null,
  ensemble: { learnReward: false },
  // Each fit starts Adam afresh: a run then depends only on what a checkpoint holds (weights,
  // buffer, RNG state), so a resumed run equals an uninterrupted one.
  fit: { resetOptimizer: true },
  planner: { ...CEM_DEFAULTS },
  propagation: 'ts1',
  particles: 20,
  planWithElites: true,
  bufferCapacity: 1_000_000,
  physics: {},
  maxEpisodeSteps: null,
  plannerThreads: null,
} as const satisfies PetsConfig;

/**
 * Per-task overrides that make a run affordable on a 2-core machine while keeping PETS's
 * structure. Pendulum: 3-D dynamics need far less than 4 × 200 (3 × 64 members fit them to the
 * noise floor), a 20-step horizon (1 s) covers the swing-up's useful look-ahead, and a smaller
 * population and 5 particles keep a planned step near 50 ms.
 */
export const PETS_ENV_OVERRIDES: Record<string, Partial<PetsConfig>> = {
  'Pendulum-v1': {
    // Solved within ~1,200 steps (see test/algorithms/pets.test.ts); 2,000 leaves margin.
    steps: 2000,
    ensemble: { learnReward: false, numMembers: 5, numElites: 5, hidden: [64, 64, 64] },
    planner: { ...CEM_DEFAULTS, populationSize: 200, numElites: 20, horizon: 20, numIterations: 5 },
    particles: 5,
    // 1,000-row forward passes of a 3 × 64 net are too small to gain from a second thread
    // (measured 1.5 ms on one thread vs 4.5 ms on two).
    plannerThreads: 1,
  },
};

/** Overrides of a PETS config: any field, and a partial planner (its `kind` picks the planner). */
export type PetsOverrides = Partial<Omit<PetsConfig, 'planner'>> & { planner?: Partial<PlannerConfig> };

/**
 * Merges per-task overrides and `overrides` into `PETS_DEFAULTS` and validates.
 * @throws ValidationError naming the key, the value and what was expected
 */
export function makePetsConfig(overrides: PetsOverrides = {}): PetsConfig {
  const env = overrides.env ?? PETS_DEFAULTS.env;
  const perEnv = PETS_ENV_OVERRIDES[env] ?? {};
  // A planner of another kind starts from that kind's own defaults; the same kind refines the task's.
  const basePlanner: PlannerConfig = perEnv.planner ?? PETS_DEFAULTS.planner;
  const plannerOverrides = overrides.planner ?? {};
  const sameKind = plannerOverrides.kind === undefined || plannerOverrides.kind === basePlanner.kind;
  const c: PetsConfig = {
    ...PETS_DEFAULTS,
    ...perEnv,
    ...overrides,
    ensemble: { ...PETS_DEFAULTS.ensemble, ...perEnv.ensemble, ...overrides.ensemble },
    fit: { ...PETS_DEFAULTS.fit, ...perEnv.fit, ...overrides.fit },
    physics: { ...overrides.physics },
    kind: 'pets',
    planner: makePlanner((sameKind ? { ...basePlanner, ...plannerOverrides } : plannerOverrides) as PlannerConfig),
  };
  const where = 'makePetsConfig';
  for (const key of Object.keys(overrides)) {
    if (!(key in PETS_DEFAULTS)) throw new ValidationError(where, key, `unknown key; expected one of ${Object.keys(PETS_DEFAULTS).join(', ')}`);
  }
  if (overrides.kind !== undefined && overrides.kind !== 'pets') throw new ValidationError(where, 'kind', `expected 'pets', got ${describe(overrides.kind)}`);
  // Validate the nested parts now, so a bad value fails at start rather than at the first refit.
  makeEnsembleConfig(c.ensemble);
  makeEnsembleFitConfig(c.fit);
  envSpec(c.env);
  const int = (key: keyof PetsConfig, v: unknown, min: number): void => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new ValidationError(where, key, `expected an integer ≥ ${min}, got ${describe(v)}`);
  };
  int('seed', c.seed, 0);
  int('steps', c.steps, 1);
  if (c.initialRandomSteps !== null) int('initialRandomSteps', c.initialRandomSteps, 1);
  int('particles', c.particles, 1);
  int('bufferCapacity', c.bufferCapacity, 1);
  if (c.maxEpisodeSteps !== null) int('maxEpisodeSteps', c.maxEpisodeSteps, 1);
  if (c.plannerThreads !== null) int('plannerThreads', c.plannerThreads, 1);
  if (!['ts1', 'tsinf', 'mean'].includes(c.propagation)) throw new ValidationError(where, 'propagation', `expected 'ts1', 'tsinf' or 'mean', got ${describe(c.propagation)}`);
  if (typeof c.planWithElites !== 'boolean') throw new ValidationError(where, 'planWithElites', `expected a boolean, got ${describe(c.planWithElites)}`);
  return c;
}

function makePlanner(p: PlannerConfig): PlannerConfig {
  switch (p.kind) {
    case 'cem':
      return makeCemConfig(p);
    case 'mppi':
      return makeMppiConfig(p);
    case 'randomShooting':
      return makeRandomShootingConfig(p);
    default:
      throw new ValidationError('makePetsConfig', 'planner.kind', `expected 'cem', 'mppi' or 'randomShooting', got ${describe((p as { kind: unknown }).kind)}`);
  }
}

/** What one episode reports (one line of `metrics.jsonl`). */
export interface PetsEpisodeMetrics {
  episode: number;
  /** Real environment steps so far, this episode included. */
  envSteps: number;
  /** `random` for warm-up episodes, else the planner's kind. */
  policy: string;
  episodeReturn: number;
  episodeLength: number;
  /** Holdout MSE per member after the fit before this episode (normalised targets); null for warm-up. */
  holdoutLoss: number[] | null;
  elites: number[] | null;
  fitEpochs: number | null;
  fitSeconds: number | null;
  fitSamplesPerSec: number | null;
  /** Mean wall-clock milliseconds per planned action. */
  planMsPerStep: number | null;
  /** Set when a refit failed and the previous model was kept. */
  fitError?: string;
}

/** Everything needed to continue a run exactly where it stopped (a checkpoint's content). */
export interface PetsState {
  config: PetsConfig;
  envSteps: number;
  episodes: number;
  buffer: ReplayBuffer;
  /** The last good ensemble weights and elites (null before the first fit). */
  weights: EnsembleWeights | null;
  elites: number[] | null;
  rng: RngState;
  history: PetsEpisodeMetrics[];
}

/** Hooks of `trainPets`. */
export interface PetsHooks {
  /** After every episode, with the state to checkpoint (awaited: a checkpoint completes before the next episode). */
  onEpisode?: (metrics: PetsEpisodeMetrics, state: PetsState) => Promise<void> | void;
  /** Progress within an episode: steps done of the episode's limit. */
  onStep?: (episodeStep: number, maxSteps: number, envSteps: number) => void;
  /** Log lines (fit summaries, warnings). */
  log?: (line: string) => void;
}

/**
 * Runs (or resumes) PETS on `env` until `config.steps` real steps.
 * @param env the real system: a built-in task (possibly a physical variant), made by the caller
 * @param resume a state from a checkpoint; its config is used and `config` must equal it
 * @example
 * const config = makePetsConfig({ env: 'Pendulum-v1', steps: 3000, seed: 1 });
 * const env = await makeEnv(config.env);
 * const { history } = await trainPets(config, env, { onEpisode: (m) => console.log(m.episodeReturn) });
 */
export async function trainPets(config: PetsConfig, env: Env, hooks: PetsHooks = {}, resume?: PetsState): Promise<PetsState> {
  const log = hooks.log ?? (() => {});
  const obsDim = env.observationSpace.dim;
  const actDim = env.actionSpace.dim;
  const rng = new Rng(config.seed);
  const ensembleRng = new Rng(config.seed, 1);
  let state: PetsState;
  if (resume) {
    if (JSON.stringify(resume.config) !== JSON.stringify(config)) throw new ValidationError('trainPets', 'resume.config', 'differs from the config of this run; resume with the checkpoint\'s own config');
    state = resume;
    rng.setState(resume.rng);
  } else {
    state = { config, envSteps: 0, episodes: 0, buffer: new ReplayBuffer({ obsDim, actDim, capacity: config.bufferCapacity }), weights: null, elites: null, rng: rng.getState(), history: [] };
  }
  const ensemble = state.weights
    ? DynamicsEnsemble.fromWeights(state.weights, { config: config.ensemble, elites: state.elites ?? undefined })
    : new DynamicsEnsemble({ obsDim, actDim, rng: ensembleRng, config: config.ensemble });
  const warmup = config.initialRandomSteps ?? env.maxEpisodeSteps;
  let predictor: OrtEnsemblePredictor | undefined;
  try {
    while (state.envSteps < config.steps) {
      const random = state.envSteps < warmup;
      let agent: PlanningAgent;
      let fit: EnsembleFitResult | null = null;
      let fitError: string | undefined;
      const fitStart = performance.now();
      if (random) {
        agent = asPlanningAgent(new RandomAgent(env.actionSpace, rng.fork()));
      } else {
        const refit = await refitKeepingLastGood(ensemble, state.buffer, config.fit, rng.fork(), state.weights !== null);
        fit = refit.fit;
        if (fit) {
          state.weights = ensemble.toWeights();
          state.elites = [...ensemble.elites];
          log(`fit: ${fit.epochs} epochs (${fit.stopReason}), holdout ${fmtList(fit.bestHoldoutLoss)}, elites [${fit.elites.join(', ')}], ${fit.samplesPerSec.toFixed(0)} samples/s`);
        } else {
          fitError = refit.error;
          log(`fit failed, keeping the previous model: ${refit.error}`);
        }
        predictor?.dispose();
        ({ agent, predictor } = await makePetsAgent(config, state.weights as EnsembleWeights, state.elites, env, rng));
      }
      const fitSeconds = (performance.now() - fitStart) / 1000;

      // One episode on the real system.
      let { obs } = env.reset({ seed: config.seed * 100_003 + state.episodes });
      agent.reset();
      let ret = 0;
      let len = 0;
      let planMs = 0;
      const limit = Math.min(env.maxEpisodeSteps, config.steps - state.envSteps);
      for (;;) {
        const t0 = performance.now();
        const action = Float64Array.from(await agent.actAsync(obs));
        planMs += performance.now() - t0;
        const s = env.step(action);
        len++;
        ret += s.reward;
        // Cut at the step budget: the last transition is then truncated, never terminal by mistake.
        const truncated = s.truncated || len >= limit;
        state.buffer.add({ obs, action, reward: s.reward, nextObs: s.obs, terminated: s.terminated, truncated });
        obs = s.obs;
        hooks.onStep?.(len, env.maxEpisodeSteps, state.envSteps + len);
        if (s.terminated || truncated) break;
      }
      state.envSteps += len;
      state.episodes += 1;
      const metrics: PetsEpisodeMetrics = {
        episode: state.episodes,
        envSteps: state.envSteps,
        policy: random ? 'random' : config.planner.kind,
        episodeReturn: ret,
        episodeLength: len,
        holdoutLoss: fit ? fit.bestHoldoutLoss : null,
        elites: fit ? fit.elites : null,
        fitEpochs: fit ? fit.epochs : null,
        fitSeconds: random ? null : fitSeconds,
        fitSamplesPerSec: fit ? fit.samplesPerSec : null,
        planMsPerStep: random ? null : planMs / len,
        ...(fitError ? { fitError } : {}),
      };
      state.history.push(metrics);
      state.rng = rng.getState();
      await hooks.onEpisode?.(metrics, state);
    }
  } finally {
    predictor?.dispose();
    ensemble.dispose();
  }
  return state;
}

/**
 * Refits the ensemble on the whole buffer. A failed fit (`EnsembleFitError`: diverged, or no
 * finite holdout loss) leaves the ensemble as it was, so when a previous fit succeeded the caller
 * keeps that model and reports `error`; before any good fit it rethrows.
 * @param rng the fit's generator (pass a fork, so the caller's stream advances the same either way)
 * @param onEpoch called after every epoch (a learner thread's heartbeat)
 */
export async function refitKeepingLastGood(
  ensemble: DynamicsEnsemble,
  buffer: ReplayBuffer,
  fitConfig: Partial<EnsembleFitConfig>,
  rng: Rng,
  hasLastGood: boolean,
  onEpoch?: (report: EnsembleEpochReport) => void,
): Promise<{ fit: EnsembleFitResult; error?: undefined } | { fit: null; error: string }> {
  try {
    return { fit: await fitEnsemble(ensemble, bufferFitData(buffer), fitConfig, rng, onEpoch) };
  } catch (err) {
    if (!(err instanceof EnsembleFitError) || !hasLastGood) throw err;
    return { fit: null, error: err.message };
  }
}

/**
 * The whole buffer as fit data. The holdout is drawn from single rows, as mbrl-lib and MBPO do:
 * with the few episodes of early training, holding out a whole episode often holds out the only
 * visit to a region (the first swing-up), which makes the early-stopping signal meaningless.
 */
export function bufferFitData(buffer: ReplayBuffer): { obs: Float32Array; act: Float32Array; nextObs: Float32Array; reward: Float32Array; n: number } {
  const n = buffer.size;
  const b = buffer.toBatch(Uint32Array.from({ length: n }, (_, i) => i));
  return { obs: b.obs, act: b.action, nextObs: b.nextObs, reward: b.reward, n };
}

/**
 * The PETS controller for trained weights: the elites (or all members) as an onnxruntime graph,
 * a `ModelEnv` over it with the task's known functions, and the configured planner. The training
 * loop builds one after every fit; `mbrl eval` builds one from a checkpoint. Dispose the returned
 * predictor when done.
 * @param rng forked twice (model sampling, then the planner); default a stream of `config.seed`
 */
export async function makePetsAgent(
  config: PetsConfig,
  weights: EnsembleWeights,
  elites: number[] | null,
  env: Env,
  rng: Rng = new Rng(config.seed, 2),
): Promise<{ agent: PlanningAgent; predictor: OrtEnsemblePredictor }> {
  const w = config.planWithElites && elites ? selectMembers(weights, elites) : weights;
  const predictor = await OrtEnsemblePredictor.create(w, config.plannerThreads === null ? {} : { intraOpThreads: config.plannerThreads });
  const modelEnv = new ModelEnv(predictor, { task: envSpec(config.env).task, propagation: config.propagation, rng: rng.fork() });
  const agent = createModelPlanningAgent(modelEnv, config.planner, env.actionSpace, { rng: rng.fork(), particles: config.particles });
  return { agent, predictor };
}

function fmtList(xs: number[]): string {
  return `[${xs.map((x) => x.toPrecision(3)).join(', ')}]`;
}
