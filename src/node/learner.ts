/**
 * The control side of the learner: the control loop hands it transitions and reads the current
 * model; the refits run in a `worker_thread` (`learnerWorker.ts`), so the loop never waits for
 * training.
 *
 * - `add(t)` copies the transition into a replica buffer and a pending batch of typed arrays; a
 *   full batch (or one `flushMs` old) is posted to the worker with its buffers transferred. O(dims),
 *   no allocation per step beyond the batch arrays, never awaits.
 * - The worker refits on its schedule and sends back only models that pass its promotion gate
 *   (finite weights, gate loss within the margin of the current model's). `current` is then
 *   replaced by the new `LearnerModel` object in one assignment: a reader holds either the old
 *   model or the new one, never a mix, and keeps the one it has as long as it likes.
 * - Supervision: a worker that throws, exits, or sends no heartbeat for `timeoutSec`
 *   (`fitTimeoutSec` while it reports a fit in progress) is terminated and started again after a
 *   delay (doubling per consecutive failure, at most 30 s) with the last good state: the current
 *   model and every transition in the replica. Meanwhile `current` stays the last good model.
 *
 * Worker entry: the thread runs compiled JavaScript. From `dist/` (the package, `bin/mbrl.js`)
 * that is `dist/node/learnerWorker.js` next to this file. Under vitest this file is the
 * TypeScript source, which a worker thread cannot load, so the default points at the build output
 * `dist/node/learnerWorker.js` instead: run `npm run build` before the tests (`npm test` does).
 * `workerUrl` overrides both.
 *
 * Policies (ME-TRPO, MB-MPO; `config.policy`): after each promoted model the worker runs the
 * algorithm's policy phase on it and sends a policy only when it passes the policy gate (finite
 * weights, imagined mean return ≥ the running policy's + `promotionMargin`; `learnerPolicy.ts`).
 * `currentPolicy` is then replaced by a new `LearnerPolicy` object in one assignment, as models
 * are. With MB-MPO the worker also sends the running (meta-)policy adapted to the newest real
 * transitions; it replaces `currentPolicy` likewise (`adapted: true`, `base` still the
 * meta-policy). A restarted worker starts from `currentPolicy.base`; a crash or hang in the
 * middle of a policy phase loses that phase only.
 */
import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ValidationError, describe } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { ReplayBuffer } from '../data/replayBuffer.js';
import type { Transition } from '../data/transition.js';
import { makeEnsembleConfig, type EnsembleConfig } from '../models/ensemble.js';
import { makeEnsembleFitConfig, type EnsembleFitConfig } from '../models/trainer.js';
import type { EnsembleWeights } from '../models/types.js';
import { initialPolicyWeights, type PolicyWeights } from '../policies/gaussianMlpPolicy.js';
import { makeLearnerPolicyConfig, type LearnerPolicyConfig } from './learnerPolicy.js';
import type { FromWorker, GoodModel, LearnerFault, PromotedModel, ToWorker, TransitionColumns } from './learnerWorker.js';

/** Configuration of the learner (both sides). */
export interface LearnerConfig {
  /** Always `'learner'`, so a saved node config can be rebuilt from its JSON. */
  kind: 'learner';
  obsDim: number;
  actDim: number;
  /** Ensemble architecture (overrides of `ENSEMBLE_DEFAULTS`: 7 probabilistic members, 4 × 200 SiLU). Default: those, with `learnReward: false` (PETS: the task's reward is known). */
  ensemble: Partial<EnsembleConfig>;
  /** Ensemble training. Default: MBPO's, on one thread (`parallelism: 1`: the control loop needs the other core), Adam restarted at each fit. */
  fit: Partial<EnsembleFitConfig>;
  /** Refit after this many new transitions. Default 1000 (20 s at 50 Hz). */
  refitEveryTransitions: number;
  /** Also refit after this many seconds when any transition is new; null: only by count. Default null. */
  refitEverySec: number | null;
  /** Transitions (training and gate) before the first fit. Default 200. */
  minTransitions: number;
  /**
   * Most training transitions kept (the oldest are dropped). Default 200,000 (67 min at 50 Hz).
   * Held twice, preallocated: by the worker, and by the control side's replica that restarts it
   * (each row 4 · (2 · obsDim + actDim + 1) + 14 bytes: 200,000 rows of HalfCheetah's 17 + 6 take 36 MB).
   */
  bufferCapacity: number;
  /** Every `gateEvery`-th transition is held out for the promotion gate (never trained on). Default 10. */
  gateEvery: number;
  /** Most gate transitions kept (the newest). Default 2000. */
  gateCapacity: number;
  /** Relative margin: a candidate is rejected when its gate loss > (1 + margin) · the current model's. Default 0.1. */
  maxGateLossIncrease: number;
  /** Milliseconds between heartbeats from the worker. Default 500. */
  heartbeatMs: number;
  /**
   * A worker silent this long is hung: it is terminated and restarted. Default 60. Heartbeats keep
   * coming during a fit on the default onnxruntime engine (its steps are asynchronous); see
   * `fitTimeoutSec` for fits that hold the thread.
   */
  timeoutSec: number;
  /**
   * The silence allowed while the worker reports a fit (or a policy phase) in progress. A fit on
   * the tfjs engine runs synchronously and sends nothing until it ends, so this bounds the whole
   * fit; a policy phase sends a heartbeat after every TRPO or meta-step. Default 900.
   */
  fitTimeoutSec: number;
  /** Like `timeoutSec`, until a new worker's first heartbeat (loading tfjs and onnxruntime can take a while on a small board). Default 120. */
  startTimeoutSec: number;
  /** Transitions per message to the worker. Default 64. */
  batchRows: number;
  /** Longest wait before a partial batch is sent, milliseconds. Default 250. */
  flushMs: number;
  /** First delay before restarting a failed worker, doubled per consecutive failure up to 30 s. Default 500. */
  restartDelayMs: number;
  /** Seeds the ensemble's initial weights and each fit (and the policy phases). Default 0. */
  seed: number;
  /**
   * How much lower the worker thread's OS priority is than the control thread's (added to its
   * nice value, capped at 19), so that a refit never takes a core from the control loop when both
   * want one. 0: the same priority. Default 10. Applied on Linux only, where a thread has its own
   * nice value (elsewhere the call would lower the whole process: not applied, and logged); a
   * refused change (e.g. a sandbox) is logged and the worker runs on.
   */
  workerNice: number;
  /**
   * Also learn a policy (ME-TRPO, MB-MPO): its algorithm, architecture, steps per refit, gate
   * and MB-MPO's adaptation (`LearnerPolicyConfig`); null (default): the ensemble only (PETS).
   */
  policy: LearnerPolicyConfig | null;
}

/** The learner's defaults (see `LearnerConfig`). */
export const LEARNER_DEFAULTS = {
  kind: 'learner',
  obsDim: 1,
  actDim: 1,
  ensemble: { learnReward: false },
  fit: { parallelism: 1, resetOptimizer: true },
  refitEveryTransitions: 1000,
  refitEverySec: null,
  minTransitions: 200,
  bufferCapacity: 200_000,
  gateEvery: 10,
  gateCapacity: 2000,
  maxGateLossIncrease: 0.1,
  heartbeatMs: 500,
  timeoutSec: 60,
  fitTimeoutSec: 900,
  startTimeoutSec: 120,
  batchRows: 64,
  flushMs: 250,
  restartDelayMs: 500,
  seed: 0,
  workerNice: 10,
  policy: null,
} as const satisfies LearnerConfig;

/**
 * Merges `overrides` into `LEARNER_DEFAULTS` (the nested `ensemble` and `fit` too) and validates.
 * @throws ValidationError naming the key, the value and what was expected
 */
export function makeLearnerConfig(overrides: Partial<LearnerConfig> & Pick<LearnerConfig, 'obsDim' | 'actDim'>): LearnerConfig {
  const where = 'makeLearnerConfig';
  for (const key of Object.keys(overrides)) {
    if (!(key in LEARNER_DEFAULTS)) throw new ValidationError(where, key, `unknown key; expected one of ${Object.keys(LEARNER_DEFAULTS).join(', ')}`);
  }
  const c: LearnerConfig = {
    ...LEARNER_DEFAULTS,
    ...overrides,
    ensemble: { ...LEARNER_DEFAULTS.ensemble, ...overrides.ensemble },
    fit: { ...LEARNER_DEFAULTS.fit, ...overrides.fit },
    kind: 'learner',
    policy: overrides.policy ?? null,
  };
  if (overrides.kind !== undefined && overrides.kind !== 'learner') throw new ValidationError(where, 'kind', `expected 'learner', got ${describe(overrides.kind)}`);
  const check = (key: keyof LearnerConfig, ok: (v: number) => boolean, expected: string): void => {
    const v = c[key];
    if (typeof v !== 'number' || !ok(v)) throw new ValidationError(where, key, `expected ${expected}, got ${describe(v)}`);
  };
  const posInt = (v: number): boolean => Number.isInteger(v) && v > 0;
  const pos = (v: number): boolean => Number.isFinite(v) && v > 0;
  for (const key of ['obsDim', 'actDim', 'refitEveryTransitions', 'minTransitions', 'bufferCapacity', 'gateCapacity', 'batchRows'] as const) check(key, posInt, 'a positive integer');
  check('gateEvery', (v) => Number.isInteger(v) && v >= 2, 'an integer ≥ 2');
  check('seed', (v) => Number.isInteger(v) && v >= 0, 'a non-negative integer');
  check('workerNice', (v) => Number.isInteger(v) && v >= 0 && v <= 19, 'an integer in [0, 19]');
  for (const key of ['heartbeatMs', 'timeoutSec', 'fitTimeoutSec', 'startTimeoutSec', 'flushMs', 'restartDelayMs'] as const) check(key, pos, 'a finite number > 0');
  check('maxGateLossIncrease', (v) => Number.isFinite(v) && v >= 0, 'a finite number ≥ 0');
  if (c.refitEverySec !== null) check('refitEverySec', pos, 'a finite number > 0, or null');
  if (c.timeoutSec * 1000 <= 2 * c.heartbeatMs) {
    throw new ValidationError(where, 'timeoutSec', `expected more than two heartbeats (2 × ${c.heartbeatMs} ms), got ${c.timeoutSec} s`);
  }
  makeEnsembleConfig(c.ensemble);
  makeEnsembleFitConfig(c.fit);
  if (c.policy !== null) c.policy = makeLearnerPolicyConfig(c.policy, c);
  return c;
}


/** A promoted model as the control loop sees it. Never mutated after it is published. */
export interface LearnerModel extends PromotedModel {
  /** 1 for the first promoted model (or the initial one), +1 per promotion. */
  version: number;
}

/**
 * The policy the control loop acts with (`config.policy`). Never mutated after it is published:
 * a promotion or an adaptation publishes a new object.
 */
export interface LearnerPolicy {
  /** 0 for the initial policy (or the version given with it), +1 per swap (a promotion or an adaptation). */
  version: number;
  /** The weights to act with: `base`, or (MB-MPO) `base` adapted to the newest real transitions. */
  weights: PolicyWeights;
  /** The promoted (meta-)policy: what the gate compares and checkpoints keep. */
  base: PolicyWeights;
  /** The version `base` was published as. */
  baseVersion: number;
  /** Whether `weights` are `base` adapted online (MB-MPO). */
  adapted: boolean;
  /** Real transitions the adaptation used (0 when not adapted). */
  adaptedOn: number;
  /** The gate's imagined mean returns when `base` was promoted (null for the initial policy). */
  imaginedReturn: number | null;
  runningReturn: number | null;
}

/** What happened, for logs and diagnostics. */
export type LearnerEvent =
  | { kind: 'promoted'; version: number; gateLoss: number; previousGateLoss: number | null; trainedOn: number }
  | { kind: 'rejected'; reason: string; gateLoss: number | null; previousGateLoss: number | null }
  | { kind: 'policyPromoted'; version: number; imaginedReturn: number; runningReturn: number; steps: number; seconds: number }
  | { kind: 'policyRejected'; reason: string; candidateReturn: number | null; runningReturn: number | null; steps: number }
  | { kind: 'policyAdapted'; version: number; rows: number }
  | { kind: 'workerFailed'; reason: string; restartInMs: number }
  | { kind: 'workerStarted'; restarts: number }
  | { kind: 'log'; line: string };

/** Options of `new Learner`. */
export interface LearnerOptions {
  /** The learner's configuration (overrides of `LEARNER_DEFAULTS`; `obsDim` and `actDim` required). */
  config: Partial<LearnerConfig> & Pick<LearnerConfig, 'obsDim' | 'actDim'>;
  /** A model to start from (e.g. from a checkpoint): becomes `current` (version 1) and the base of the first refit. */
  initial?: { weights: EnsembleWeights; elites: number[] };
  /** Transitions from before (e.g. `BufferSegments.recovered`), sent with the worker's start. */
  history?: ReplayBuffer;
  /**
   * With `config.policy`: the policy the control loop runs at start (e.g. from a checkpoint) and
   * its version (default 0). Default: a fresh one, `initialPolicyWeights` from stream 1 of the
   * algorithm's seed (as `trainMeTrpo` starts).
   */
  initialPolicy?: { weights: PolicyWeights; version?: number };
  /** Called on the control thread after each swap. */
  onModel?: (model: LearnerModel) => void;
  /** Called on the control thread after each policy swap (promotion or adaptation). */
  onPolicy?: (policy: LearnerPolicy) => void;
  /** Called for promotions, rejections, worker failures and log lines. */
  onEvent?: (event: LearnerEvent) => void;
  /** The worker script. Default: see the file comment. */
  workerUrl?: URL;
}

/** Counters of a `Learner`. */
export interface LearnerStats {
  /** Transitions accepted by `add`. */
  transitions: number;
  /** Transitions posted to a worker (all of them are resent to a restarted one). */
  posted: number;
  promoted: number;
  rejected: number;
  /** Workers started after a failure. */
  restarts: number;
  lastRejection: string | null;
  lastFailure: string | null;
  /** `running`, `restarting` (waiting out the delay), or `closed`. */
  worker: 'running' | 'restarting' | 'closed';
  /** Whether the worker reported a fit in progress in its last heartbeat. */
  fitting: boolean;
  /** Transitions the worker held at its last heartbeat (training and gate rows). */
  workerRows: number;
  /** The policy side (`config.policy`), or null. */
  policy: LearnerPolicyStats | null;
}

/** Counters of the learner's policy side. */
export interface LearnerPolicyStats {
  /** The running policy's version (`LearnerPolicy.version`). */
  version: number;
  /** Whether the running policy is the meta-policy adapted online (MB-MPO). */
  adapted: boolean;
  promoted: number;
  rejected: number;
  adaptations: number;
  lastRejection: string | null;
  /** The last gate's imagined mean returns (candidate, running), promoted or not. */
  lastImaginedReturn: number | null;
  lastRunningReturn: number | null;
  /** Whether the worker reported a policy phase in progress in its last heartbeat. */
  improving: boolean;
}

/** The default worker script (see the file comment). */
export function learnerWorkerUrl(): URL {
  const here = import.meta.url;
  return here.endsWith('.ts') ? new URL('../../dist/node/learnerWorker.js', here) : new URL('./learnerWorker.js', here);
}

/**
 * The learner as the control loop uses it (see the file comment).
 *
 * @example
 * const learner = new Learner({ config: { obsDim: 3, actDim: 1, refitEveryTransitions: 500 }, onModel: (m) => planner.use(m) });
 * learner.start();
 * // in the control loop, each step:
 * learner.add({ obs, action, reward, nextObs, terminated, truncated });
 * const model = learner.current; // null until the first promotion
 * // on shutdown:
 * await learner.close();
 * // learning a policy too: config.policy (ME-TRPO / MB-MPO) and
 * // onPolicy: (p) => slot.swap(policyController(spec, p.weights, …)) — p.adapted for MB-MPO's online adaptation
 */
export class Learner {
  readonly config: LearnerConfig;
  #options: LearnerOptions;
  #workerUrl: URL;
  #replica: ReplayBuffer;
  #current: LearnerModel | null = null;
  #policy: LearnerPolicy | null = null;
  #worker: Worker | null = null;
  #pending: TransitionColumns;
  #pendingRows = 0;
  #pendingSinceMs = 0;
  #lastHeartbeatMs = 0;
  /** Whether the running worker has sent anything yet. */
  #heard = false;
  #consecutiveFailures = 0;
  #restartTimer: NodeJS.Timeout | null = null;
  #watchdog: NodeJS.Timeout | null = null;
  #stats: LearnerStats = { transitions: 0, posted: 0, promoted: 0, rejected: 0, restarts: 0, lastRejection: null, lastFailure: null, worker: 'restarting', fitting: false, workerRows: 0, policy: null };

  constructor(options: LearnerOptions) {
    this.config = makeLearnerConfig(options.config);
    this.#options = options;
    this.#workerUrl = options.workerUrl ?? learnerWorkerUrl();
    const { obsDim, actDim, bufferCapacity, gateCapacity } = this.config;
    this.#replica = new ReplayBuffer({ obsDim, actDim, capacity: bufferCapacity + gateCapacity });
    if (options.history) {
      if (options.history.obsDim !== obsDim || options.history.actDim !== actDim) {
        throw new ValidationError('Learner', 'history', `expected obsDim ${obsDim} and actDim ${actDim}, got ${options.history.obsDim} and ${options.history.actDim}`);
      }
      this.#replica.addColumns(options.history.slice());
      this.#stats.transitions = options.history.size;
    }
    // An initial model counts as trained on the history given with it.
    if (options.initial) {
      this.#current = { ...options.initial, version: 1, gateLoss: Number.NaN, previousGateLoss: null, trainedOn: this.#replica.size, streamIndex: this.#replica.totalAdded, fitEpochs: 0, fitSeconds: 0 };
    }
    const p = this.config.policy;
    if (p !== null) {
      const weights = options.initialPolicy?.weights ?? initialPolicyWeights(p.spec, new Rng(p.algorithm.seed, 1));
      const version = options.initialPolicy?.version ?? 0;
      this.#policy = { version, weights, base: weights, baseVersion: version, adapted: false, adaptedOn: 0, imaginedReturn: null, runningReturn: null };
      this.#stats.policy = { version, adapted: false, promoted: 0, rejected: 0, adaptations: 0, lastRejection: null, lastImaginedReturn: null, lastRunningReturn: null, improving: false };
    } else if (options.initialPolicy) {
      throw new ValidationError('Learner', 'initialPolicy', 'given without config.policy; expected a policy config (ME-TRPO or MB-MPO) to learn it with');
    }
    this.#pending = this.#newBatch();
  }

  /** The model in use: the last one promoted (or `initial`), null before any. A reference read, never waits. */
  get current(): LearnerModel | null {
    return this.#current;
  }

  /** The policy in use (`config.policy`), or null without one. A reference read, never waits. */
  get currentPolicy(): LearnerPolicy | null {
    return this.#policy;
  }

  /** Counters (a copy). */
  get stats(): Readonly<LearnerStats> {
    return { ...this.#stats, policy: this.#stats.policy ? { ...this.#stats.policy } : null };
  }

  /** Starts the worker and the watchdog. */
  start(): void {
    if (this.#stats.worker === 'closed') throw new Error('Learner.start: the learner is closed');
    if (this.#worker !== null || this.#watchdog !== null) return;
    const file = this.#workerUrl.protocol === 'file:' ? fileURLToPath(this.#workerUrl) : null;
    if (file !== null && !existsSync(file)) {
      throw new Error(`Learner.start: the worker script ${file} does not exist; build it with \`npm run build\` (under vitest the worker runs the compiled dist/ output)`);
    }
    this.#spawn();
    this.#watchdog = setInterval(() => this.#check(), Math.min(this.config.heartbeatMs, 1000));
  }

  /**
   * Hands one transition to the learner. Validates and copies it; never waits for the worker.
   * @throws ValidationError (nothing kept) for a wrong length, a non-finite value or a bad flag
   */
  add(t: Transition): void {
    if (this.#stats.worker === 'closed') throw new Error('Learner.add: the learner is closed');
    this.#replica.add(t); // validates
    const { obsDim: od, actDim: ad } = this.config;
    const b = this.#pending;
    const r = this.#pendingRows++;
    for (let j = 0; j < od; j++) {
      b.obs[r * od + j] = t.obs[j];
      b.nextObs[r * od + j] = t.nextObs[j];
    }
    for (let j = 0; j < ad; j++) b.action[r * ad + j] = t.action[j];
    b.reward[r] = t.reward;
    b.terminated[r] = t.terminated ? 1 : 0;
    b.truncated[r] = t.truncated ? 1 : 0;
    if (r === 0) this.#pendingSinceMs = performance.now();
    this.#stats.transitions++;
    if (this.#pendingRows === this.config.batchRows) this.flush();
  }

  /** Posts the pending transitions now (the watchdog also does after `flushMs`). */
  flush(): void {
    if (this.#pendingRows === 0) return;
    const n = this.#pendingRows;
    const full = this.#pending;
    this.#pending = this.#newBatch();
    this.#pendingRows = 0;
    if (this.#worker === null) return; // restarting: the replica goes to the new worker
    const { obsDim: od, actDim: ad } = this.config;
    const batch: TransitionColumns =
      n === full.n
        ? full
        : {
            n,
            obs: full.obs.slice(0, n * od),
            action: full.action.slice(0, n * ad),
            reward: full.reward.slice(0, n),
            nextObs: full.nextObs.slice(0, n * od),
            terminated: full.terminated.slice(0, n),
            truncated: full.truncated.slice(0, n),
          };
    this.#send({ kind: 'transitions', batch }, columnsBuffers(batch));
    this.#stats.posted += n;
  }

  /** Asks the worker for a refit now (when it is not fitting already), whatever the schedule. */
  requestRefit(): void {
    this.flush();
    this.#send({ kind: 'refitNow' });
  }

  /**
   * Test hook: makes the worker misbehave. `nanCandidate` puts a NaN into the next candidate's
   * weights (the gate must reject it), `crash` throws in the worker, `hang` busy-loops it;
   * `nanPolicy`, `crashInPolicyPhase`, `hangInPolicyPhase` do the same to the next policy phase.
   * @internal
   */
  injectFault(fault: LearnerFault): void {
    this.#send({ kind: 'fault', fault });
  }

  /**
   * Stops the watchdog and the worker: it is asked to stop (a running fit ends at its next epoch
   * boundary) and terminated only if it has not exited within `stopTimeoutMs` — terminating a
   * thread inside an onnxruntime training step aborts the whole process. `current` stays
   * readable. Idempotent.
   * @param stopTimeoutMs default 60,000
   * @returns how the worker ended: `stopped` by itself, `terminated`, or `none` (no worker running)
   */
  async close(stopTimeoutMs = 60_000): Promise<'stopped' | 'terminated' | 'none'> {
    if (this.#stats.worker === 'closed') return 'none';
    this.#stats.worker = 'closed';
    if (this.#watchdog !== null) clearInterval(this.#watchdog);
    if (this.#restartTimer !== null) clearTimeout(this.#restartTimer);
    const w = this.#worker;
    this.#worker = null;
    if (w === null) return 'none';
    const exited = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), stopTimeoutMs);
      w.once('exit', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    try {
      w.postMessage({ kind: 'stop' } satisfies ToWorker);
    } catch {
      // already gone
    }
    if (await exited) return 'stopped';
    await w.terminate();
    return 'terminated';
  }

  #newBatch(): TransitionColumns {
    const { obsDim: od, actDim: ad, batchRows: n } = this.config;
    return {
      n,
      obs: new Float32Array(n * od),
      action: new Float32Array(n * ad),
      reward: new Float32Array(n),
      nextObs: new Float32Array(n * od),
      terminated: new Uint8Array(n),
      truncated: new Uint8Array(n),
    };
  }

  #send(msg: ToWorker, transfer: ArrayBuffer[] = []): void {
    this.#worker?.postMessage(msg, transfer);
  }

  #spawn(): void {
    // The priority is set by the worker's first statement, before it loads a backend (threads it starts inherit it).
    const worker = new Worker(this.#workerUrl, { workerData: { kind: 'mbrl-learner', nice: this.config.workerNice } });
    this.#worker = worker;
    this.#stats.worker = 'running';
    this.#lastHeartbeatMs = performance.now();
    this.#heard = false;
    // Pending rows are in the replica, which the new worker gets whole.
    this.#pending = this.#newBatch();
    this.#pendingRows = 0;
    const data = this.#replica.size > 0 ? this.#replica.slice() : null;
    const columns: TransitionColumns | null =
      data === null ? null : { n: data.size, obs: data.obs, action: data.action, reward: data.reward, nextObs: data.nextObs, terminated: data.terminated, truncated: data.truncated };
    const good: GoodModel | null = this.#current === null ? null : { weights: this.#current.weights, elites: this.#current.elites, streamIndex: this.#current.streamIndex };
    // The replica's rows are numbered from its first: the worker splits gate and training rows by that index.
    const firstIndex = this.#replica.totalAdded - this.#replica.size;
    const goodPolicy = this.#policy?.base ?? null;
    worker.postMessage({ kind: 'init', config: this.config, good, goodPolicy, data: columns, firstIndex } satisfies ToWorker, columns === null ? [] : columnsBuffers(columns));
    this.#stats.posted += data?.size ?? 0;
    worker.on('message', (msg: FromWorker) => {
      if (worker !== this.#worker) return;
      this.#onMessage(msg);
    });
    worker.on('error', (err) => {
      if (worker === this.#worker) this.#fail(`crashed: ${err.message}`);
    });
    worker.on('exit', (code) => {
      if (worker === this.#worker) this.#fail(`exited with code ${code}`);
    });
  }

  #onMessage(msg: FromWorker): void {
    this.#lastHeartbeatMs = performance.now();
    this.#heard = true;
    const emit = this.#options.onEvent ?? (() => {});
    switch (msg.kind) {
      case 'heartbeat':
        this.#stats.fitting = msg.fitting;
        this.#stats.workerRows = msg.rows;
        if (this.#stats.policy) this.#stats.policy.improving = msg.improving;
        break;
      case 'promoted': {
        const model: LearnerModel = { ...msg.model, version: (this.#current?.version ?? 0) + 1 };
        this.#current = model; // the swap: one reference assignment
        this.#stats.promoted++;
        this.#consecutiveFailures = 0;
        emit({ kind: 'promoted', version: model.version, gateLoss: model.gateLoss, previousGateLoss: model.previousGateLoss, trainedOn: model.trainedOn });
        this.#options.onModel?.(model);
        break;
      }
      case 'rejected':
        this.#stats.rejected++;
        this.#stats.lastRejection = msg.reason;
        this.#consecutiveFailures = 0;
        emit(msg);
        break;
      case 'policyPromoted':
      case 'policyRejected':
      case 'policyAdapted':
        this.#consecutiveFailures = 0;
        this.#onPolicyMessage(msg, emit);
        break;
      case 'log':
        emit(msg);
        break;
    }
  }

  #onPolicyMessage(msg: Extract<FromWorker, { kind: 'policyPromoted' | 'policyRejected' | 'policyAdapted' }>, emit: (e: LearnerEvent) => void): void {
    const old = this.#policy;
    const stats = this.#stats.policy;
    if (old === null || stats === null) return;
    if (msg.kind === 'policyRejected') {
      stats.rejected++;
      stats.lastRejection = msg.reason;
      stats.lastImaginedReturn = msg.candidateReturn;
      stats.lastRunningReturn = msg.runningReturn;
      emit(msg);
      return;
    }
    const version = old.version + 1;
    const next: LearnerPolicy =
      msg.kind === 'policyPromoted'
        ? { version, weights: msg.policy.weights, base: msg.policy.weights, baseVersion: version, adapted: false, adaptedOn: 0, imaginedReturn: msg.policy.imaginedReturn, runningReturn: msg.policy.runningReturn }
        : { ...old, version, weights: msg.weights, adapted: true, adaptedOn: msg.rows };
    this.#policy = next; // the swap: one reference assignment
    stats.version = version;
    stats.adapted = next.adapted;
    if (msg.kind === 'policyPromoted') {
      stats.promoted++;
      stats.lastImaginedReturn = msg.policy.imaginedReturn;
      stats.lastRunningReturn = msg.policy.runningReturn;
      emit({ kind: 'policyPromoted', version, imaginedReturn: msg.policy.imaginedReturn, runningReturn: msg.policy.runningReturn, steps: msg.policy.steps, seconds: msg.policy.seconds });
    } else {
      stats.adaptations++;
      emit({ kind: 'policyAdapted', version, rows: msg.rows });
    }
    this.#options.onPolicy?.(next);
  }

  /** Watchdog tick: flushes an old partial batch, detects a silent worker. */
  #check(): void {
    const now = performance.now();
    if (this.#pendingRows > 0 && now - this.#pendingSinceMs >= this.config.flushMs) this.flush();
    const [limitKey, what] = !this.#heard
      ? (['startTimeoutSec', 'no sign of life since it was started'] as const)
      : this.#stats.fitting
        ? (['fitTimeoutSec', this.#stats.policy?.improving ? 'no heartbeat during a policy phase' : 'no heartbeat during a fit'] as const)
        : (['timeoutSec', 'no heartbeat'] as const);
    const limitSec = this.config[limitKey];
    if (this.#worker !== null && now - this.#lastHeartbeatMs > limitSec * 1000) {
      this.#fail(`hung: ${what} for ${((now - this.#lastHeartbeatMs) / 1000).toFixed(1)} s (${limitKey} ${limitSec})`);
    }
  }

  #fail(reason: string): void {
    const w = this.#worker;
    this.#worker = null;
    if (w !== null) void w.terminate().catch(() => undefined);
    if (this.#stats.worker === 'closed') return;
    this.#stats.worker = 'restarting';
    this.#stats.fitting = false;
    if (this.#stats.policy) this.#stats.policy.improving = false;
    this.#stats.lastFailure = reason;
    this.#consecutiveFailures++;
    const delay = Math.min(30_000, this.config.restartDelayMs * 2 ** (this.#consecutiveFailures - 1));
    this.#options.onEvent?.({ kind: 'workerFailed', reason, restartInMs: delay });
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = null;
      if (this.#stats.worker === 'closed') return;
      this.#stats.restarts++;
      this.#spawn();
      this.#options.onEvent?.({ kind: 'workerStarted', restarts: this.#stats.restarts });
    }, delay);
  }
}

function columnsBuffers(c: TransitionColumns): ArrayBuffer[] {
  const buffers = [c.obs, c.action, c.reward, c.nextObs, c.terminated, c.truncated].map((a) => a.buffer as ArrayBuffer);
  return [...new Set(buffers)];
}
