/**
 * The control node: sensor messages in, one action out per control period, learning online
 * without ever stalling the loop. Everything is assembled from parts with their own tests:
 *
 *   transport (sim | mqtt | dds)
 *     → fromTransport → validateMessages (per sensor topic; drops counted per reason)
 *     → assembleState (one state per control period)
 *     → controlStep (the controller in the slot, with a deadline; never the learner)
 *     → safetyFilter (bounds, rate limit, NaN, e-stop, watchdog)
 *     → publish the action
 *     → assembleTransitions (reward from the task or the reward topic; pairs of ticks across a
 *       hold, a stale or held reading, or an episode end are skipped and counted)
 *     → BufferSegments (disk, in segments) and Learner (worker thread)
 *
 * The learner refits the dynamics ensemble in a worker and hands promoted models back; the node
 * builds the planner for a new model off the loop and swaps it into the controller slot in one
 * assignment, so a tick uses the old controller or the new one, never waits for either. Every
 * promoted model is saved to `checkpointDir/checkpoint`, the transitions to
 * `checkpointDir/buffer`; a restart on the same directory resumes with both (see
 * `controlNodeCheckpoint.ts`). `kill -9` loses at most the rows of the segment being filled.
 *
 * Simulated robots (`transport.kind: sim`) run in real time by default, or in lockstep simulated
 * time (`simSpeed`): the simulation then waits for each action, so a slow planner costs wall
 * time, not control quality. In real time the ticks run on a fixed wall-clock grid
 * (`RealTimeScheduler`); an action published more than a period after its tick was due, or a
 * period with no tick at all, is a missed deadline (`stats.deadlines`). With `tick.on: sample`
 * each reading of the trigger topic starts a tick as it arrives (grid ticks only while that
 * sensor is silent), so a reading does not wait up to a period for the grid; a tick is then due
 * when its reading arrived.
 *
 * Controllers by `controller.kind`:
 * - `planner`: PETS (CEM/MPPI/random shooting on the learned ensemble, the task's known reward).
 *   Before the first model: uniform random actions within the bounds (`beforeFirstModel: random`,
 *   PETS's warm-up) or the safe action. The learner runs.
 * - `onnx`: an exported policy (`mbrl export`); nothing is learned.
 * - `learnedPolicy`: a Gaussian MLP policy (ME-TRPO or MB-MPO, `algorithm.kind`): from a checkpoint,
 *   or a fresh random one. When the task's reward is known (`reward.kind: task`, or the sim), the
 *   learner refits the ensemble and, after each promoted model, runs the algorithm's policy phase
 *   on it; a policy that passes the gate (imagined return ≥ the running one's +
 *   `learner.promotionMargin`) is swapped into the slot like a model, and saved with the model.
 *   MB-MPO also swaps in the meta-policy adapted to the newest real transitions as they arrive
 *   (`learnerPolicy.ts`). Without a known reward the policy is acted on as loaded.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Subject, asyncScheduler, map, merge, share, takeUntil, tap, type Observable, type Subscription } from 'rxjs';
import { makeMbMpoConfig, type MbMpoConfig, type MbMpoOverrides } from '../algorithms/mbMpo.js';
import { makeMeTrpoConfig, type MeTrpoConfig, type MeTrpoOverrides } from '../algorithms/meTrpo.js';
import type { PetsConfig } from '../algorithms/mbrl.js';
import { initBackend } from '../core/backend.js';
import { ValidationError, describe } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { writeFileAtomic } from '../data/atomicWrite.js';
import { extractField } from '../data/bagMapping.js';
import type { Transition } from '../data/transition.js';
import { envSpec } from '../envs/registry.js';
import type { EnsembleWeights } from '../models/types.js';
import { initialPolicyWeights, makePolicySpec, type GaussianMlpPolicySpec, type PolicyWeights } from '../policies/gaussianMlpPolicy.js';
import { assembleState, type ControlState } from '../pipeline/assembleState.js';
import { TRANSITION_SKIP_REASONS, assembleTransitions, type RewardFn, type TerminatedFn, type TransitionSkipReason } from '../pipeline/assembleTransitions.js';
import { fromTransport } from '../pipeline/fromTransport.js';
import { newInterventionCounts, safetyFilter, type SafeAction, type SafetyEvent } from '../pipeline/safetyFilter.js';
import { taskStepFunctions } from '../pipeline/taskStepFunctions.js';
import { toActionMessage } from '../pipeline/toActionMessage.js';
import { DROP_REASONS, countUndecodable, validateMessages, type DropReason, type MessageCounters } from '../pipeline/validateMessages.js';
import { QOS_DEFAULT, QOS_SENSOR_DATA, type IncomingMessage, type Transport, type Unsubscribe } from '../transports/transport.js';
import type { DiagnosticArray, DiagnosticStatus } from '../transports/messages.js';
import { SimTransport, BOOL_TYPE } from '../transports/sim.js';
import { BufferSegments } from './bufferSegments.js';
import { nodeConfigToJson, type NodeConfig } from './config.js';
import { loadNodeModel, saveNodeModel } from './controlNodeCheckpoint.js';
import {
  constantController,
  controlStep,
  nodePetsConfig,
  onnxController,
  petsController,
  policyController,
  randomController,
  type ControlCall,
  type ControllerSlot,
  type NodeController,
} from './controlNodeController.js';
import { statsLine, statsToDiagnostics, type ControlNodeStats } from './controlNodeDiagnostics.js';
import { LockstepScheduler, RealTimeScheduler } from './controlNodeScheduler.js';
import { DIAGNOSTICS_TOPIC, DIAGNOSTIC_ARRAY_TYPE, makeNodeTransport } from './controlNodeTransport.js';
import { Learner, type LearnerConfig, type LearnerEvent, type LearnerModel, type LearnerPolicy } from './learner.js';
import type { LearnerFault } from './learnerWorker.js';

export type { ControlNodeStats } from './controlNodeDiagnostics.js';

/** Options of `new ControlNode`. */
export interface ControlNodeOptions {
  /** The validated configuration (`loadNodeConfig`). */
  config: NodeConfig;
  /** A transport to use instead of the one `config.transport` describes; the node connects and closes it. */
  transport?: Transport;
  /**
   * Sim transport only: run simulated time in lockstep with the controller, at most this many
   * times faster than the wall clock (`Infinity`: as fast as the CPU allows). Default: real time,
   * ticks paced by the wall clock.
   */
  simSpeed?: number;
  /** Stop by itself after this many control ticks. Default: run until `stop()`. */
  maxTicks?: number;
  /** Wall milliseconds between diagnostics (logged, published on `/diagnostics`, `onStats`). Default 1000; 0 disables. */
  diagnosticsPeriodMs?: number;
  /** The controller's deadline, wall milliseconds. Default: one control period in real time, 10 s in lockstep (simulated time waits). */
  controllerTimeoutMs?: number;
  /**
   * Learn online. Default: true for the `planner` controller, and for `learnedPolicy` when the
   * task's reward is known; false for `onnx` (see the file comment).
   */
  learn?: boolean;
  /** Learner settings beyond what the config sets (heartbeat, gate margin, …). */
  learner?: Partial<LearnerConfig>;
  /** The learner's worker script (default: `learnerWorkerUrl()`). */
  learnerWorkerUrl?: URL;
  /**
   * A `std_msgs/msg/Bool` topic announcing that the robot was reset (an episode ended): the pair
   * of ticks across it is not a transition, and the controller is reset. Default
   * `/mbrl/episode_end` (where `SimTransport` announces its resets); null: none.
   */
  episodeEndTopic?: string | null;
  /** Seeds exploration and the planner. Default: the simulator's seed, else 0. */
  seed?: number;
  /** Log lines (start, resume, promotions, safety events, diagnostics). Default: stderr. */
  log?: (line: string) => void;
  /** After each published action. */
  onTick?: (tick: TickInfo) => void;
  /** After each stored transition. */
  onTransition?: (t: Transition) => void;
  /** With each diagnostics snapshot. */
  onStats?: (stats: ControlNodeStats) => void;
}

/** One control tick, as published. */
export interface TickInfo {
  /** The tick's index (it skips one at each episode boundary, which breaks the chain of transitions). */
  tick: number;
  stampNs: bigint;
  obs: Float64Array;
  action: Float64Array;
  proposed?: Float64Array;
  interventions: SafeAction['interventions'];
  hold?: SafeAction['hold'];
  /** The controller that proposed the action and its version (see `ControlNodeStats.controller`). */
  controller: { kind: string; version: number };
  /** The stamp of each sensor topic's newest sample in the state acted on, in the configured order (`ControlState.sampleStampsNs`). */
  sampleStampsNs: readonly bigint[];
}

/** How `done` ends: stopped on request (`stop`, `maxTicks`), or failed. */
export type ControlNodeExit = { kind: 'stopped' } | { kind: 'failed'; error: Error };

const LOCKSTEP_TIMEOUT_MS = 10_000;
/** Longest wait at stop for the learner's refit to end before its worker is terminated. */
const CLOSE_WAIT_SEC = 30;
/** Where resets are announced by default (`SimTransport`'s topic). */
export const EPISODE_END_TOPIC = '/mbrl/episode_end';

/**
 * The control node (see the file comment).
 *
 * @example
 * const node = new ControlNode({ config: loadNodeConfig('launch/pendulum_sim.yaml') });
 * await node.start();                  // resumes from checkpointDir when it holds a run
 * process.on('SIGINT', () => void node.stop());
 * const exit = await node.done;         // after stop(): buffer flushed, model saved
 */
export class ControlNode {
  readonly config: NodeConfig;
  /** The transport (built by the constructor, connected by `start`). */
  readonly transport: Transport;
  /** Resolves when the node has stopped (`stop`, `maxTicks`, or a failure); never rejects. */
  readonly done: Promise<ControlNodeExit>;
  #options: ControlNodeOptions;
  #log: (line: string) => void;
  #scheduler: LockstepScheduler | undefined;
  /** The ticks' scheduler in real time (no lockstep): on a fixed wall-clock grid. */
  #realTime: RealTimeScheduler | undefined;
  /** When each state's tick was due (wall ms, `performance.now()`), by its observation array; real time only. */
  #tickDueMs = new WeakMap<Float64Array, number>();
  #deadlines = { late: 0, maxDelayMs: null as number | null };
  #resolveDone!: (exit: ControlNodeExit) => void;
  #state: ControlNodeStats['state'] = 'created';
  #stop$ = new Subject<void>();
  #pipeline: Subscription | undefined;
  #pipelineDone: Promise<void> = Promise.resolve();
  #aux: Unsubscribe[] = [];
  #diagTimer: NodeJS.Timeout | undefined;
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #failure: Error | undefined;
  #holdForStop: (() => void) | undefined;

  #rng: Rng;
  #pets: PetsConfig | null = null;
  /** `learnedPolicy` learning online: the algorithm (ME-TRPO or MB-MPO) and the policy's architecture. */
  #policyAlgo: MeTrpoConfig | MbMpoConfig | null = null;
  #policySpec: GaussianMlpPolicySpec | null = null;
  /** `learnedPolicy`: the promoted policy (not an adaptation of it) and its version: what checkpoints save. */
  #basePolicy: { weights: PolicyWeights; version: number } | null = null;
  /** `learnedPolicy`: the learner's version of `#currentModel` (PETS: the slot's). */
  #modelVersion = 0;
  #adaptationLogged = false;
  #slot: ControllerSlot;
  /** The model behind the current planner (the learner's `initial`). */
  #currentModel: { weights: EnsembleWeights; elites: number[] } | null = null;
  #installSeq = 0;
  #retired = new Set<NodeController>();
  #pendingCalls = new Map<NodeController, number>();
  #tickController = new Map<number, { kind: string; version: number }>();

  #segments: BufferSegments | undefined;
  #learner: Learner | null = null;
  #saving: Promise<void> = Promise.resolve();
  #publishAction: (action: ArrayLike<number>, stampNs?: bigint) => void = () => undefined;

  // Counters.
  #sensors: MessageCounters = {};
  #interventions = newInterventionCounts();
  #ticks = 0;
  #samples = 0;
  #calls = { calls: 0, errors: 0, timeouts: 0, busy: 0, windowMs: 0, windowCalls: 0, windowMax: 0 };
  #transitions = { stored: 0, recovered: 0, noReward: 0, invalid: 0 };
  #skipped = Object.fromEntries(TRANSITION_SKIP_REASONS.map((r) => [r, 0])) as Record<TransitionSkipReason, number>;
  #promotions = 0;
  #savedVersion: number | null = null;
  #episodes = 0;
  #errors = 0;
  #lastError: string | null = null;
  #window = { atNs: 0n, wallMs: 0, ticks: 0, samples: 0, transitions: 0 };
  #rates: ControlNodeStats['rates'] = { ticksPerSec: 0, samplesPerSec: 0, transitionsPerSec: 0 };
  #realTimeFactor: number | null = null;
  #previousStats: ControlNodeStats | undefined;
  #safetyLogAt: Partial<Record<SafetyEvent['reason'], { atMs: number; suppressed: number }>> = {};
  #controllerWindow = { meanMs: null as number | null, maxMs: null as number | null };

  /**
   * Builds the transport (not connected yet) and checks what can be checked without I/O.
   * @throws ValidationError naming the key: a sim the
   *   sensors or action do not fit, `simSpeed` without the sim transport, a planner without a
   *   task reward, whole-array sensor fields (the observation size must be known)
   */
  constructor(options: ControlNodeOptions) {
    const where = 'ControlNode';
    this.config = options.config;
    this.#options = options;
    this.#log = options.log ?? ((line) => process.stderr.write(`[mbrl] ${line}\n`));
    const c = options.config;
    if (c.obsDim === null) throw new ValidationError(where, 'sensors', 'a field maps a whole variable-length array; give its index range (e.g. position[0..5]) so the observation size is known at start');
    if (options.simSpeed !== undefined) {
      if (c.transport.kind !== 'sim' || options.transport !== undefined) {
        throw new ValidationError(where, 'simSpeed', `simulated time needs the simulator the node builds (transport.kind sim, no options.transport), got ${options.transport ? `a ${options.transport.kind} transport` : c.transport.kind}`);
      }
      if (!(options.simSpeed > 0)) throw new ValidationError(where, 'simSpeed', `expected a real-time factor > 0 (or Infinity), got ${describe(options.simSpeed)}`);
    }
    if (options.maxTicks !== undefined && !(Number.isInteger(options.maxTicks) && options.maxTicks > 0)) throw new ValidationError(where, 'maxTicks', `expected a positive integer, got ${describe(options.maxTicks)}`);
    if (options.controllerTimeoutMs !== undefined && !(options.controllerTimeoutMs > 0)) throw new ValidationError(where, 'controllerTimeoutMs', `expected a number of milliseconds > 0, got ${describe(options.controllerTimeoutMs)}`);
    if (c.controller.kind === 'planner') {
      const task = c.reward.kind === 'task' ? c.reward.task : c.transport.kind === 'sim' ? c.transport.env : undefined;
      if (task === undefined) throw new ValidationError(where, 'reward', 'the planner optimises a known task reward; expected reward.kind task (or the sim transport, whose task is known)');
      if (envSpec(task).obsDim !== c.obsDim) throw new ValidationError(where, 'sensors', `the planner uses ${task}'s reward, which reads ${envSpec(task).obsDim} observation values; the sensors give ${c.obsDim}`);
      this.#pets = nodePetsConfig(task, c.algorithm.overrides);
    }
    if (c.controller.kind === 'learnedPolicy') {
      const task = c.reward.kind === 'task' ? c.reward.task : c.transport.kind === 'sim' ? c.transport.env : undefined;
      if (options.learn === true && task === undefined) {
        throw new ValidationError(where, 'reward', `learning the policy online scores imagined rollouts with a known task reward; expected reward.kind task (or the sim transport), or learn: false to act with the checkpoint's policy as it is`);
      }
      if ((options.learn ?? true) && task !== undefined) {
        if (envSpec(task).obsDim !== c.obsDim) throw new ValidationError(where, 'sensors', `the learner's imagined rollouts use ${task}'s reward, which reads ${envSpec(task).obsDim} observation values; the sensors give ${c.obsDim}`);
        const overrides = { ...c.algorithm.overrides, env: task };
        this.#policyAlgo = c.algorithm.kind === 'mb-mpo' ? makeMbMpoConfig(overrides as MbMpoOverrides) : makeMeTrpoConfig(overrides as MeTrpoOverrides);
        this.#policySpec = makePolicySpec({ obsDim: c.obsDim, actionLow: c.actionBounds.low, actionHigh: c.actionBounds.high, ...this.#policyAlgo.policy });
      }
    }
    this.#scheduler = options.simSpeed !== undefined ? new LockstepScheduler({ maxRealTimeFactor: options.simSpeed, onError: (err) => this.#fail(err) }) : undefined;
    this.#realTime = this.#scheduler ? undefined : new RealTimeScheduler();
    this.transport = options.transport ?? makeNodeTransport(c, { ...(this.#scheduler ? { scheduler: this.#scheduler } : {}), onError: (err) => this.#error(err) });
    const seed = options.seed ?? (c.transport.kind === 'sim' ? c.transport.seed : 0);
    this.#rng = new Rng(seed, 21);
    this.#slot = { controller: this.#track(this.#initialController()), version: 0 };
    this.done = new Promise((resolve) => (this.#resolveDone = resolve));
  }

  /** A snapshot of the counters (see `ControlNodeStats`). */
  get stats(): ControlNodeStats {
    const dropped = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
    for (const t of Object.values(this.#sensors)) for (const r of DROP_REASONS) dropped[r] += t.dropped[r];
    const seg = this.#segments;
    return {
      state: this.#state,
      transport: this.transport.kind,
      ticks: this.#ticks,
      rates: { ...this.#rates },
      realTimeFactor: this.#realTimeFactor,
      deadlines: this.#realTime
        ? { missed: this.#deadlines.late + this.#realTime.stats.skipped, skipped: this.#realTime.stats.skipped, maxDelayMs: this.#deadlines.maxDelayMs }
        : null,
      sensors: structuredClone(this.#sensors),
      dropped,
      interventions: { ...this.#interventions },
      link: this.#link(),
      controller: {
        kind: this.#slot.controller.kind,
        version: this.#slot.version,
        calls: this.#calls.calls,
        errors: this.#calls.errors,
        timeouts: this.#calls.timeouts,
        busy: this.#calls.busy,
        ...this.#controllerWindow,
      },
      transitions: { ...this.#transitions },
      transitionsSkipped: { ...this.#skipped },
      buffer: seg ? { committedRows: seg.committedRows, stagedRows: seg.stagedRows, uncommittedRows: seg.uncommittedRows, segmentRows: seg.segmentRows } : null,
      learner: this.#learner?.stats ?? null,
      promotions: this.#promotions,
      savedModelVersion: this.#savedVersion,
      episodes: this.#episodes,
      errors: this.#errors,
      lastError: this.#lastError,
    };
  }

  /** The stats as a ROS 2 `DiagnosticArray`, stamped with the transport's clock. */
  diagnostics(): DiagnosticArray {
    return statsToDiagnostics(this.stats, this.transport.nowNs(), 'mbrl_node', this.#previousStats);
  }

  /**
   * Connects the transport, resumes from `checkpointDir` (buffer segments, model) or
   * `controller.checkpoint`, starts the learner and the control loop.
   * @throws what the transport's `connect` throws (naming the endpoint), NodeCheckpointError for a
   *   checkpoint that cannot be read, ValidationError for one that does not fit the config
   */
  start(): Promise<void> {
    if (this.#state !== 'created') return Promise.reject(new Error(`ControlNode.start: the node is ${this.#state}; a node starts once`));
    this.#state = 'starting';
    this.#starting = this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    try {
      // The endpoint first: an unreachable broker fails the start before files or a worker exist.
      await this.transport.connect();
      this.#checkSimulator();
      await this.#resume();
      this.#startLearner();
      this.#wire();
      this.#scheduler?.start();
      this.#startDiagnostics();
      this.#state = 'running';
      const c = this.config;
      this.#log(
        `running: ${this.transport.kind} transport, ${c.controlPeriodMs} ms period${c.tick.on === 'sample' ? ` (ticks on ${c.tick.topic} readings)` : ''}${this.#scheduler ? ` (lockstep simulated time, at most ${this.#scheduler.maxRealTimeFactor}× real time)` : ''}, controller ${this.#slot.controller.kind} v${this.#slot.version}, ${this.#learner ? 'learning online' : 'not learning'}`,
      );
    } catch (err) {
      this.#state = 'failed';
      this.#failure = err instanceof Error ? err : new Error(String(err));
      await this.#teardown().catch(() => undefined);
      this.#resolveDone({ kind: 'failed', error: this.#failure });
      throw err;
    }
  }

  /**
   * Stops cleanly: completes the control loop (the last transition is stored), publishes the safe
   * action, stops the learner, writes the staged buffer rows and the model, closes the transport.
   * Idempotent; resolves when everything is written.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  /**
   * Installs a model as the learner's promotions do: builds the planner for it off the loop, then
   * swaps it into the controller slot (the next tick uses it) and saves it to the checkpoint.
   * @returns the controller version it was installed as, or null when a later install overtook it
   * @throws ValidationError when the controller is not the planner or the model's sizes differ
   */
  async promote(model: { weights: EnsembleWeights; elites: readonly number[] }): Promise<number | null> {
    const where = 'ControlNode.promote';
    if (this.#pets === null) throw new ValidationError(where, 'controller.kind', `models drive the planner; this node's controller is ${this.config.controller.kind}`);
    const { obsDim, actDim } = model.weights.spec;
    if (obsDim !== this.config.obsDim || actDim !== this.config.actDim) {
      throw new ValidationError(where, 'model', `expected obsDim ${this.config.obsDim} and actDim ${this.config.actDim} (the config's), got ${obsDim} and ${actDim}`);
    }
    const version = await this.#install(model);
    if (version !== null) {
      this.#promotions++;
      this.#save({ weights: model.weights, elites: [...model.elites] }, version);
    }
    return version;
  }

  /**
   * Swaps `controller` into the slot (the next tick uses it); the old one is disposed once no call
   * is running on it. For controllers built elsewhere (tests, a caller's policy).
   * @returns its version
   */
  useController(controller: NodeController): number {
    return this.#swap(controller);
  }

  /**
   * Test hook: makes the learner's worker misbehave (`Learner.injectFault`: `crash`, `hang`,
   * `nanCandidate`), to check that the loop goes on and the learner comes back.
   * @throws Error when the node does not learn (or has not started)
   * @internal
   */
  injectLearnerFault(fault: LearnerFault): void {
    if (this.#learner === null) throw new Error(`ControlNode.injectLearnerFault(${fault}): the node is not learning (state ${this.#state})`);
    this.#learner.injectFault(fault);
  }

  // -------------------------------------------------------------------------------------------
  // Start.

  #initialController(): NodeController {
    const c = this.config;
    if (c.controller.kind === 'planner' && c.controller.beforeFirstModel === 'random') return randomController(c.actionBounds, this.#rng.fork());
    return constantController(c.safety.safeAction);
  }

  async #resume(): Promise<void> {
    const c = this.config;
    await mkdir(c.checkpointDir, { recursive: true });
    await writeFileAtomic(join(c.checkpointDir, 'node.json'), `${JSON.stringify(nodeConfigToJson(c), null, 2)}\n`);
    const obsDim = c.obsDim as number;
    this.#segments = await BufferSegments.open(join(c.checkpointDir, 'buffer'), {
      obsDim,
      actDim: c.actDim,
      segmentRows: c.buffer.segmentSize,
      recoverCapacity: c.buffer.capacity,
    });
    const rec = this.#segments.recovery;
    this.#transitions.recovered = this.#segments.recovered.size;
    if (rec.rows > 0 || rec.adopted || rec.removedTempFiles.length > 0) {
      this.#log(`resumed buffer: ${rec.rows} transitions in ${rec.segments} segments${rec.adopted ? ` (adopted ${rec.adopted})` : ''}${rec.removedTempFiles.length ? `, removed ${rec.removedTempFiles.length} partial writes` : ''}`);
    }
    for (const w of rec.warnings) this.#log(`buffer: ${w}`);

    // The node's own checkpoint first; else the configured starting point.
    const own = await loadNodeModel(c.checkpointDir);
    const configured = c.controller.kind !== 'onnx' && c.controller.checkpoint !== undefined ? c.controller.checkpoint : undefined;
    const loaded = own ?? (configured !== undefined ? await loadNodeModel(configured) : null);
    if (configured !== undefined && loaded === null) throw new ValidationError('ControlNode', 'controller.checkpoint', `no checkpoint.json in ${configured} (nor its checkpoint/ directory)`);

    switch (c.controller.kind) {
      case 'planner': {
        if (loaded === null) break;
        if (loaded.ensemble === null) throw new ValidationError('ControlNode', 'controller.checkpoint', `${loaded.dir} holds no dynamics ensemble for the planner`);
        const { weights, elites } = loaded.ensemble;
        this.#checkModelDims(weights, loaded.dir);
        const version = await this.#install({ weights, elites: elites ?? [...Array(weights.spec.numMembers).keys()] }, loaded.version ?? 1);
        this.#savedVersion = own?.version ?? null;
        this.#log(`resumed model: ${loaded.dir} (${loaded.kind}, ${weights.spec.numMembers} members), controller pets v${version}`);
        break;
      }
      case 'learnedPolicy': {
        const algo = this.#policyAlgo;
        if (loaded === null) {
          if (algo === null) {
            this.#log('learnedPolicy: no checkpoint; holding the safe action');
            break;
          }
          // A fresh policy as `trainMeTrpo`/`trainMbMpo` start theirs: near-zero mean actions, log σ initLogStd.
          const spec = this.#policySpec as GaussianMlpPolicySpec;
          const weights = initialPolicyWeights(spec, new Rng(algo.seed, 1));
          await initBackend();
          this.#basePolicy = { weights, version: 0 };
          this.#swap(policyController(spec, weights, c.controller.deterministic, this.#rng.fork()), 0);
          this.#log(`learnedPolicy: no checkpoint; starting from a random policy, learned online with ${algo.kind}${c.controller.deterministic ? ' (deterministic: true acts with the mean, which explores little; set deterministic: false to learn from scratch)' : ''}`);
          break;
        }
        if (loaded.policy === null) throw new ValidationError('ControlNode', 'controller.checkpoint', `${loaded.dir} holds no policy (config.kind ${loaded.kind})`);
        const { spec, weights } = loaded.policy;
        if (spec.obsDim !== obsDim || spec.actDim !== c.actDim) throw new ValidationError('ControlNode', 'controller.checkpoint', `${loaded.dir}: the policy takes ${spec.obsDim} observations and gives ${spec.actDim} actions; the config has ${obsDim} and ${c.actDim}`);
        await initBackend();
        const version = loaded.policyVersion ?? loaded.version ?? 1;
        this.#swap(policyController(spec, weights, c.controller.deterministic, this.#rng.fork()), version);
        if (algo !== null) {
          // Learning continues from this policy (its own architecture) and, when it has one, this ensemble.
          this.#policySpec = spec;
          this.#basePolicy = { weights, version };
          if (loaded.ensemble !== null) {
            this.#checkModelDims(loaded.ensemble.weights, loaded.dir);
            this.#currentModel = { weights: loaded.ensemble.weights, elites: loaded.ensemble.elites ?? [...Array(loaded.ensemble.weights.spec.numMembers).keys()] };
            this.#modelVersion = loaded.version ?? 1;
          }
          this.#savedVersion = own?.version ?? null;
        }
        this.#log(`loaded policy: ${loaded.dir} (${loaded.kind}), controller policy v${version}${algo !== null ? `, learned online with ${algo.kind}` : ''}`);
        break;
      }
      case 'onnx':
        this.#swap(await onnxController(c.controller.model, { obsDim, actDim: c.actDim }, c.controller.threads), 1);
        this.#log(`loaded ONNX policy: ${c.controller.model}`);
        break;
    }
  }

  #checkModelDims(weights: EnsembleWeights, dir: string): void {
    const { obsDim, actDim } = weights.spec;
    if (obsDim !== this.config.obsDim || actDim !== this.config.actDim) {
      throw new ValidationError('ControlNode', 'checkpoint', `${dir}: the ensemble models ${obsDim} observations and ${actDim} actions; the config has ${this.config.obsDim} and ${this.config.actDim}`);
    }
  }

  #startLearner(): void {
    const c = this.config;
    const learn = this.#options.learn ?? (c.controller.kind === 'planner' || this.#policyAlgo !== null);
    if (!learn) return;
    if (this.#policyAlgo !== null) return this.#startPolicyLearner(this.#policyAlgo);
    if (this.#pets === null) throw new ValidationError('ControlNode', 'learn', `online learning refits the planner's ensemble or learns a policy; this node's controller is ${c.controller.kind}`);
    const pets = this.#pets;
    const current = this.#slot.controller.kind === 'pets' ? this.#currentModel : null;
    // The config's learner keys: the schedule as it is; `timeoutSec` bounds a refit (the learner's
    // fitTimeoutSec). `promotionMargin` and `imaginedEvalEpisodes` gate policies on imagined
    // returns (`#startPolicyLearner`); models are gated on held-out loss (`maxGateLossIncrease`,
    // settable through `options.learner`).
    // The first fit waits for PETS's warm-up (`initialRandomSteps`, default one episode).
    this.#learner = new Learner({
      config: {
        obsDim: c.obsDim as number,
        actDim: c.actDim,
        ensemble: pets.ensemble,
        fit: pets.fit,
        seed: pets.seed,
        minTransitions: pets.initialRandomSteps ?? envSpec(pets.env).maxEpisodeSteps,
        bufferCapacity: c.buffer.capacity,
        refitEveryTransitions: c.learner.refitEveryTransitions ?? Number.MAX_SAFE_INTEGER,
        refitEverySec: c.learner.refitEverySec,
        fitTimeoutSec: c.learner.timeoutSec,
        workerNice: c.learner.workerNice,
        ...this.#options.learner,
      },
      ...(current ? { initial: current } : {}),
      ...(this.#segments && this.#segments.recovered.size > 0 ? { history: this.#segments.recovered } : {}),
      onModel: (m) => this.#onPromoted(m),
      onEvent: (e) => this.#onLearnerEvent(e),
      ...(this.#options.learnerWorkerUrl ? { workerUrl: this.#options.learnerWorkerUrl } : {}),
    });
    this.#learner.start();
  }

  /**
   * The learner of a `learnedPolicy` node: the algorithm's ensemble refitted on the config's
   * schedule, then its policy phase after each promoted model, gated on `promotionMargin` over
   * `imaginedEvalEpisodes` imagined episodes; `timeoutSec` bounds a refit or a policy phase.
   */
  #startPolicyLearner(algo: MeTrpoConfig | MbMpoConfig): void {
    const c = this.config;
    const l = c.learner;
    const maxEpisodeSteps = envSpec(algo.env).maxEpisodeSteps;
    const spec = this.#policySpec as GaussianMlpPolicySpec;
    const base = this.#basePolicy as { weights: PolicyWeights; version: number };
    this.#learner = new Learner({
      config: {
        obsDim: c.obsDim as number,
        actDim: c.actDim,
        ensemble: algo.ensemble,
        fit: algo.fit,
        seed: algo.seed,
        // The first fit after one episode's worth of steps (or the refit interval, when shorter).
        minTransitions: Math.min(maxEpisodeSteps, l.refitEveryTransitions ?? maxEpisodeSteps),
        bufferCapacity: c.buffer.capacity,
        refitEveryTransitions: l.refitEveryTransitions ?? Number.MAX_SAFE_INTEGER,
        refitEverySec: l.refitEverySec,
        fitTimeoutSec: l.timeoutSec,
        workerNice: l.workerNice,
        policy: {
          algorithm: algo,
          spec,
          stepsPerRefit: l.policyStepsPerRefit ?? (algo.kind === 'me-trpo' ? algo.maxPolicyIterations : algo.metaStepsPerIteration),
          promotionMargin: l.promotionMargin,
          imaginedEvalEpisodes: l.imaginedEvalEpisodes,
          adaptWindow: l.adaptWindow,
          adaptEveryTransitions: l.adaptEveryTransitions,
        },
        ...this.#options.learner,
      },
      ...(this.#currentModel ? { initial: this.#currentModel } : {}),
      initialPolicy: base,
      ...(this.#segments && this.#segments.recovered.size > 0 ? { history: this.#segments.recovered } : {}),
      onModel: (m) => this.#onPromoted(m),
      onPolicy: (p) => this.#onPolicy(p),
      onEvent: (e) => this.#onLearnerEvent(e),
      ...(this.#options.learnerWorkerUrl ? { workerUrl: this.#options.learnerWorkerUrl } : {}),
    });
    if (algo.kind === 'mb-mpo' && c.controller.kind === 'learnedPolicy' && c.controller.deterministic) {
      this.#log('learner: MB-MPO adapts on the real actions; with deterministic: true they are the mean and the inner step learns nothing (set deterministic: false)');
    }
    this.#learner.start();
  }

  /** With the simulator: its action size must be the config's (else every action is rejected). */
  #checkSimulator(): void {
    if (!(this.transport instanceof SimTransport)) return;
    const env = this.transport.env;
    if (env.actionSpace.dim !== this.config.actDim) {
      throw new ValidationError('ControlNode', 'action.fields', `the simulated ${env.id} takes ${env.actionSpace.dim} action values; the config maps ${this.config.actDim}`);
    }
  }

  /** The control loop (see the file comment). */
  #wire(): void {
    const c = this.config;
    const t = this.transport;
    const clock = (): bigint => t.nowNs();
    const scheduler = this.#scheduler;
    const onTransportError = (err: Error): void => this.#error(err);
    // A sensor message the transport could not decode (not JSON, not the type's shape) is a drop
    // of that topic, counted with the others; anything else is the node's own error.
    const onSensorError = (topic: string) => (err: Error) => (err instanceof ValidationError ? countUndecodable(this.#sensors, topic, err, t.nowNs()) : this.#error(err));
    const samples = merge(
      ...c.sensors.map((s) =>
        fromTransport(t, s.topic, s.type, { qos: s.qos === 'sensorData' ? QOS_SENSOR_DATA : QOS_DEFAULT, onError: onSensorError(s.topic) }).pipe(validateMessages(s, this.#sensors, clock)),
      ),
    ).pipe(
      tap(() => this.#samples++),
      takeUntil(this.#stop$),
      share(),
    );
    const estop$: Observable<IncomingMessage> | undefined = c.safety.estop ? fromTransport(t, c.safety.estop.topic, c.safety.estop.type, { qos: QOS_DEFAULT, onError: onTransportError }) : undefined;

    // Episode boundaries (a reset robot): the next state follows no action of ours.
    let episodeEnded = false;
    let tickOffset = 0;
    const episodeEndTopic = this.#options.episodeEndTopic !== undefined ? this.#options.episodeEndTopic : EPISODE_END_TOPIC;
    if (episodeEndTopic !== null) {
      this.#aux.push(
        t.subscribe(episodeEndTopic, BOOL_TYPE, () => {
          episodeEnded = true;
          this.#episodes++;
        }, { onError: onTransportError }),
      );
    }

    // Rewards from a topic: summed between ticks, paired with the state that follows them.
    const rewardOfNextObs = new WeakMap<Float64Array, number>();
    let rewardSum = 0;
    let rewardCount = 0;
    let reward: RewardFn;
    let terminated: TerminatedFn | undefined;
    if (c.reward.kind === 'task') {
      ({ reward, terminated } = taskStepFunctions(envSpec(c.reward.task).task));
    } else {
      const field = c.reward.field;
      const values: number[] = [];
      this.#aux.push(
        t.subscribe(c.reward.topic, c.reward.type, (m) => {
          values.length = 0;
          const problem = extractField(m.data, field, values);
          if (problem || values.length !== 1 || !Number.isFinite(values[0])) return this.#error(new ValidationError(`reward topic ${field.topic}`, field.text, problem ? problem.message : `expected one finite number, got [${values.join(', ')}]`));
          rewardSum += values[0];
          rewardCount++;
        }, { onError: onTransportError }),
      );
      reward = (_obs, _action, nextObs) => rewardOfNextObs.get(nextObs) ?? Number.NaN;
    }
    // A sample-started tick is due when its reading arrived, which is now; the fallback's grid
    // ticks run on a plain timer (their timing matters only while the sensor is silent).
    const trigger = c.tick.on === 'sample' ? c.tick : undefined;
    const onState = (state: ControlState): ControlState => {
      const dueMs = trigger ? (scheduler ? undefined : performance.now()) : this.#realTime?.currentDueMs;
      if (dueMs !== undefined) this.#tickDueMs.set(state.obs, dueMs);
      if (c.reward.kind === 'topic') {
        rewardOfNextObs.set(state.obs, rewardCount > 0 ? rewardSum : Number.NaN);
        rewardSum = 0;
        rewardCount = 0;
      }
      if (episodeEnded) {
        episodeEnded = false;
        tickOffset++;
        this.#slot.controller.reset();
      }
      return tickOffset === 0 ? state : { ...state, tick: state.tick + tickOffset };
    };

    const toMsg = toActionMessage(c.action);
    const actionQos = c.action.qos === 'sensorData' ? QOS_SENSOR_DATA : QOS_DEFAULT;
    this.#publishAction = (action, stampNs) => t.publish(c.action.topic, c.action.type, toMsg(action, stampNs), { qos: actionQos });
    const timeoutMs = this.#options.controllerTimeoutMs ?? (scheduler ? LOCKSTEP_TIMEOUT_MS : c.controlPeriodMs);

    const pipeline = samples.pipe(
      assembleState({
        sensors: c.sensors,
        periodMs: c.controlPeriodMs,
        rule: c.resample,
        clock,
        ...(trigger ? { trigger } : {}),
        scheduler: scheduler ?? (trigger ? asyncScheduler : this.#realTime),
      }),
      map(onState),
      controlStep({
        current: () => this.#slot,
        timeoutMs,
        ...(scheduler ? { onAsyncCall: () => scheduler.hold() } : {}),
        onCall: (call) => this.#onCall(call),
      }),
      safetyFilter({
        safety: c.safety,
        bounds: c.actionBounds,
        periodMs: c.controlPeriodMs,
        sensorData: samples,
        ...(estop$ ? { estop: estop$ } : {}),
        ...(scheduler ? { scheduler } : {}),
        counters: this.#interventions,
        log: (e) => this.#onSafetyEvent(e),
      }),
      tap((a) => this.#onAction(a)),
      assembleTransitions(reward, terminated, (reason) => this.#skipped[reason]++),
    );
    this.#pipelineDone = new Promise((resolve) => {
      this.#pipeline = pipeline.subscribe({
        next: (tr) => this.#onTransition(tr),
        error: (err: unknown) => {
          this.#fail(err);
          resolve();
        },
        complete: () => resolve(),
      });
    });
  }

  #startDiagnostics(): void {
    const period = this.#options.diagnosticsPeriodMs ?? 1000;
    this.#window = { atNs: this.transport.nowNs(), wallMs: performance.now(), ticks: 0, samples: 0, transitions: 0 };
    if (period <= 0) return;
    this.#diagTimer = setInterval(() => this.#emitDiagnostics(), period);
  }

  // -------------------------------------------------------------------------------------------
  // The loop's callbacks.

  #onCall(call: ControlCall): void {
    const k = this.#calls;
    k.calls++;
    if (call.outcome === 'error') k.errors++;
    else if (call.outcome === 'timeout') k.timeouts++;
    else if (call.outcome === 'busy') k.busy++;
    else {
      k.windowMs += call.ms;
      k.windowCalls++;
      k.windowMax = Math.max(k.windowMax, call.ms);
    }
    this.#tickController.set(call.tick, { kind: call.kind, version: call.version });
  }

  #onAction(a: SafeAction): void {
    try {
      this.#publishAction(a.action, a.stampNs);
    } catch (err) {
      this.#error(err);
    }
    this.#countDeadline(a.state.obs);
    this.#ticks++;
    const ctrl = this.#tickController.get(a.tick) ?? { kind: this.#slot.controller.kind, version: this.#slot.version };
    this.#tickController.delete(a.tick);
    this.#options.onTick?.({
      tick: a.tick,
      stampNs: a.stampNs,
      obs: a.state.obs,
      action: a.action,
      ...(a.proposed ? { proposed: a.proposed } : {}),
      interventions: a.interventions,
      ...(a.hold ? { hold: a.hold } : {}),
      controller: ctrl,
      sampleStampsNs: a.state.sampleStampsNs,
    });
    const max = this.#options.maxTicks;
    if (max !== undefined && this.#ticks === max) {
      // Freeze simulated time at once (no tick beyond the budget); stop off this call stack.
      this.#holdForStop = this.#scheduler?.hold();
      setImmediate(() => void this.stop());
    }
  }

  /**
   * Real time: a tick's deadline is one control period after it was due; an action published
   * later missed it (the controller's timeout, a late tick, a slow pipeline).
   */
  #countDeadline(obs: Float64Array): void {
    const dueMs = this.#tickDueMs.get(obs);
    if (dueMs === undefined) return;
    const delayMs = performance.now() - dueMs;
    if (delayMs > this.config.controlPeriodMs) this.#deadlines.late++;
    if (this.#deadlines.maxDelayMs === null || delayMs > this.#deadlines.maxDelayMs) this.#deadlines.maxDelayMs = delayMs;
  }

  #onTransition(t: Transition): void {
    if (!Number.isFinite(t.reward)) {
      this.#transitions.noReward++;
      return;
    }
    try {
      this.#segments?.append(t);
      this.#learner?.add(t);
    } catch (err) {
      this.#transitions.invalid++;
      this.#error(err);
      return;
    }
    this.#transitions.stored++;
    this.#options.onTransition?.(t);
  }

  #onSafetyEvent(e: SafetyEvent): void {
    // One-tick interventions (clip, rate limit) are counted, not logged: they can happen every tick.
    if (e.phase === 'tick' && (e.reason === 'clip' || e.reason === 'rateLimit')) return;
    const line = `safety: ${e.reason}${e.phase === 'tick' ? '' : ` ${e.phase}`}${e.tick !== undefined ? ` at tick ${e.tick}` : ''}: ${e.detail}`;
    if (e.phase !== 'tick') return this.#log(line);
    // Per-tick ones (controller errors, bad actions) at most once a second per reason, with a count of the rest.
    const now = performance.now();
    const t = (this.#safetyLogAt[e.reason] ??= { atMs: -Infinity, suppressed: 0 });
    if (now - t.atMs < 1000) {
      t.suppressed++;
      return;
    }
    this.#log(t.suppressed > 0 ? `${line} (and ${t.suppressed} more ${e.reason} ticks since the last line)` : line);
    t.atMs = now;
    t.suppressed = 0;
  }

  #onLearnerEvent(e: LearnerEvent): void {
    switch (e.kind) {
      case 'promoted':
        this.#log(`learner: model promoted (gate loss ${e.gateLoss.toPrecision(4)}${e.previousGateLoss !== null ? ` vs ${e.previousGateLoss.toPrecision(4)}` : ''}, trained on ${e.trainedOn} transitions)`);
        break;
      case 'rejected':
        this.#log(`learner: candidate rejected: ${e.reason}`);
        break;
      case 'workerFailed':
        this.#log(`learner: worker ${e.reason}; restarting in ${e.restartInMs} ms (the controller keeps its model)`);
        break;
      case 'workerStarted':
        this.#log(`learner: worker restarted (${e.restarts} restarts)`);
        break;
      case 'policyPromoted':
        this.#log(`learner: policy v${e.version} promoted (imagined return ${e.imaginedReturn.toPrecision(4)} vs the running policy's ${e.runningReturn.toPrecision(4)}, ${e.steps} policy steps in ${e.seconds.toFixed(1)} s)`);
        break;
      case 'policyRejected':
        this.#log(`learner: policy candidate rejected: ${e.reason}`);
        break;
      case 'policyAdapted':
        // One line for the first: adaptations come every few seconds (they are counted in the stats).
        if (!this.#adaptationLogged) this.#log(`learner: policy v${e.version}: the meta-policy adapted on the newest ${e.rows} real transitions (further adaptations are counted in the stats)`);
        this.#adaptationLogged = true;
        break;
      case 'log':
        this.#log(`learner: ${e.line}`);
        break;
    }
  }

  /** A policy from the learner (promoted or adapted): swapped into the slot at once; a promoted one is saved. */
  #onPolicy(p: LearnerPolicy): void {
    if (this.#state !== 'running' && this.#state !== 'starting') return;
    const c = this.config;
    const deterministic = c.controller.kind === 'learnedPolicy' && c.controller.deterministic;
    let controller: NodeController;
    try {
      controller = policyController(this.#policySpec as GaussianMlpPolicySpec, p.weights, deterministic, this.#rng.fork());
    } catch (err) {
      this.#error(new Error(`installing policy v${p.version} failed, keeping the current controller: ${err instanceof Error ? err.message : String(err)}`));
      return;
    }
    this.#swap(controller, p.version);
    if (p.baseVersion === p.version) {
      this.#basePolicy = { weights: p.base, version: p.version };
      if (this.#currentModel !== null) this.#save(this.#currentModel, this.#modelVersion);
    }
  }

  #onPromoted(model: LearnerModel): void {
    if (this.#state !== 'running' && this.#state !== 'starting') return;
    if (this.#policyAlgo !== null) {
      // A learned policy acts; the model is the policy phase's (it runs in the worker) and is saved with the policy.
      this.#currentModel = { weights: model.weights, elites: [...model.elites] };
      this.#modelVersion = model.version;
      this.#promotions++;
      this.#save(this.#currentModel, model.version);
      return;
    }
    void this.#install(model).then(
      (version) => {
        if (version === null) return;
        this.#promotions++;
        this.#save(model, version);
      },
      (err: unknown) => this.#error(new Error(`installing the promoted model failed, keeping the current controller: ${err instanceof Error ? err.message : String(err)}`)),
    );
  }

  // -------------------------------------------------------------------------------------------
  // The controller slot.

  /** Builds the planner for `model` and swaps it in, unless a later install finished first. */
  async #install(model: { weights: EnsembleWeights; elites: readonly number[] }, version?: number): Promise<number | null> {
    const seq = ++this.#installSeq;
    const controller = await petsController(this.#pets as PetsConfig, model, this.config.actionBounds, this.#rng.fork());
    if (seq !== this.#installSeq || this.#state === 'stopping' || this.#state === 'stopped' || this.#state === 'failed') {
      controller.dispose?.();
      return null;
    }
    this.#currentModel = { weights: model.weights, elites: [...model.elites] };
    return this.#swap(controller, version);
  }

  /** The swap: one assignment of the slot. The old controller is disposed once idle. */
  #swap(inner: NodeController, version?: number): number {
    const controller = this.#track(inner);
    const old = this.#slot;
    this.#slot = { controller, version: version ?? old.version + 1 };
    this.#retire(old.controller);
    return this.#slot.version;
  }

  /** Wraps a controller to count its running calls, so it is disposed only when idle. */
  #track(inner: NodeController): NodeController {
    const pending = this.#pendingCalls;
    const wrapped: NodeController = {
      kind: inner.kind,
      act: (obs) => {
        const r = inner.act(obs);
        if (typeof (r as Promise<Float64Array>).then !== 'function') return r;
        pending.set(wrapped, (pending.get(wrapped) ?? 0) + 1);
        const settle = (): void => {
          const n = (pending.get(wrapped) ?? 1) - 1;
          if (n > 0) pending.set(wrapped, n);
          else pending.delete(wrapped);
          if (n <= 0 && this.#retired.has(wrapped)) this.#dispose(wrapped);
        };
        (r as Promise<Float64Array>).then(settle, settle);
        return r;
      },
      reset: () => inner.reset(),
      dispose: () => inner.dispose?.(),
    };
    return wrapped;
  }

  #retire(c: NodeController): void {
    this.#retired.add(c);
    if (!this.#pendingCalls.has(c)) this.#dispose(c);
  }

  #dispose(c: NodeController): void {
    this.#retired.delete(c);
    try {
      c.dispose?.();
    } catch (err) {
      this.#error(err);
    }
  }

  /**
   * Queues the model's checkpoint (with the promoted policy, for `learnedPolicy`) after the ones
   * before it (never awaited by the loop).
   */
  #save(model: { weights: EnsembleWeights; elites: number[] }, version: number): void {
    const config = (this.#policyAlgo ?? this.#pets) as MeTrpoConfig | MbMpoConfig | PetsConfig;
    const base = this.#policyAlgo !== null ? this.#basePolicy : null;
    const policy = base !== null ? { spec: this.#policySpec as GaussianMlpPolicySpec, weights: base.weights, version: base.version } : undefined;
    const transitions = this.#transitions.recovered + this.#transitions.stored;
    this.#saving = this.#saving
      .then(() => saveNodeModel(this.config.checkpointDir, config, { weights: model.weights, elites: model.elites, version, transitions, ...(policy ? { policy } : {}) }))
      .then(
        () => {
          this.#savedVersion = version;
        },
        (err: unknown) => this.#error(new Error(`saving the model (v${version}) to ${this.config.checkpointDir} failed: ${err instanceof Error ? err.message : String(err)}`)),
      );
  }

  // -------------------------------------------------------------------------------------------
  // Diagnostics, errors, stop.

  #emitDiagnostics(): void {
    const nowNs = this.transport.nowNs();
    const wallMs = performance.now();
    const w = this.#window;
    const dtSec = Number(nowNs - w.atNs) / 1e9;
    const dWallSec = (wallMs - w.wallMs) / 1000;
    const transitions = this.#transitions.stored;
    if (dtSec > 0) {
      this.#rates = {
        ticksPerSec: (this.#ticks - w.ticks) / dtSec,
        samplesPerSec: (this.#samples - w.samples) / dtSec,
        transitionsPerSec: (transitions - w.transitions) / dtSec,
      };
    }
    this.#realTimeFactor = dWallSec > 0 ? dtSec / dWallSec : null;
    const k = this.#calls;
    this.#controllerWindow = { meanMs: k.windowCalls > 0 ? k.windowMs / k.windowCalls : null, maxMs: k.windowCalls > 0 ? k.windowMax : null };
    k.windowMs = 0;
    k.windowCalls = 0;
    k.windowMax = 0;
    this.#window = { atNs: nowNs, wallMs, ticks: this.#ticks, samples: this.#samples, transitions };
    const stats = this.stats;
    const diag = statsToDiagnostics(stats, nowNs, 'mbrl_node', this.#previousStats);
    // A transport with its own status (the ros2 backend: lifecycle state, held commands) adds it.
    const own = (this.transport as { diagnosticStatus?: () => DiagnosticStatus }).diagnosticStatus?.();
    if (own) diag.status.push(own);
    this.#previousStats = stats;
    this.#log(statsLine(stats));
    if (this.#state === 'running' || this.#state === 'stopping') {
      try {
        this.transport.publish(DIAGNOSTICS_TOPIC, DIAGNOSTIC_ARRAY_TYPE, diag, { qos: QOS_DEFAULT });
      } catch (err) {
        this.#error(err);
      }
    }
    this.#options.onStats?.(stats);
  }

  /** The transport's own counters (`ControlNodeStats.link`). */
  #link(): Record<string, number | boolean> | null {
    const own = (this.transport as { stats?: unknown }).stats;
    if (own === null || typeof own !== 'object') return null;
    const entries = Object.entries(own).filter((e): e is [string, number | boolean] => typeof e[1] === 'number' || typeof e[1] === 'boolean');
    return entries.length > 0 ? Object.fromEntries(entries) : null;
  }

  #error(err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
    this.#errors++;
    // The same message over and over (a broker down, a flood of bad actions) is logged once in a row.
    if (e.message !== this.#lastError) this.#log(`error: ${e.message}`);
    this.#lastError = e.message;
  }

  #fail(err: unknown): void {
    this.#failure ??= err instanceof Error ? err : new Error(String(err));
    this.#log(`failed: ${this.#failure.message}`);
    void this.stop();
  }

  async #stop(): Promise<void> {
    if (this.#state === 'created' || this.#state === 'stopped') {
      this.#state = 'stopped';
      this.#resolveDone({ kind: 'stopped' });
      return;
    }
    if (this.#state === 'starting') await this.#starting?.catch(() => undefined);
    if (this.#state === 'failed' && this.#pipeline === undefined) return; // a failed start cleaned up and resolved `done`
    this.#state = 'stopping';
    // Simulated time stands still while the loop completes; its last transition is stored.
    const hold = this.#scheduler?.hold();
    this.#stop$.next();
    this.#stop$.complete();
    await this.#pipelineDone;
    hold?.();
    this.#holdForStop?.();
    this.#scheduler?.stop();
    try {
      this.#publishAction(this.config.safety.safeAction, this.transport.nowNs());
    } catch (err) {
      this.#error(err);
    }
    if (this.#options.diagnosticsPeriodMs !== 0) this.#emitDiagnostics();
    await this.#teardown();
    this.#state = this.#failure ? 'failed' : 'stopped';
    this.#log(`stopped: ${this.#transitions.recovered + this.#transitions.stored} transitions in ${this.config.checkpointDir}${this.#savedVersion !== null ? `, model v${this.#savedVersion} saved` : ''}`);
    this.#resolveDone(this.#failure ? { kind: 'failed', error: this.#failure } : { kind: 'stopped' });
  }

  /**
   * Closes the learner once no refit is running: terminating the worker in the middle of an
   * onnxruntime training step aborts the whole process (a native exception escapes the
   * terminated thread), so the node waits for the refit to end, at most `CLOSE_WAIT_SEC` (the
   * buffer and the model are on disk by then either way). `fitting` comes with the worker's
   * heartbeats: it is trusted once two heartbeat periods passed without a fit. A policy phase is
   * not waited for: asked to stop, the worker ends it at its next step (its result would not be
   * installed any more).
   */
  async #closeLearner(): Promise<void> {
    const learner = this.#learner;
    if (learner === null) return;
    const { heartbeatMs } = learner.config;
    const deadline = performance.now() + CLOSE_WAIT_SEC * 1000;
    let idleSince = learner.stats.fitting ? null : performance.now();
    let told = false;
    while (performance.now() < deadline && learner.stats.worker === 'running') {
      if (learner.stats.policy?.improving) break;
      if (learner.stats.fitting) {
        idleSince = null;
        if (!told) this.#log('waiting for the learner\'s refit to finish before stopping its worker');
        told = true;
      } else {
        idleSince ??= performance.now();
        if (performance.now() - idleSince >= 2 * heartbeatMs) break;
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(100, heartbeatMs)));
    }
    await learner.close();
  }

  /** Releases everything `start` acquired; each step runs even when an earlier one failed. */
  async #teardown(): Promise<void> {
    // Data first: the buffer's staged rows and the model are on disk before anything else can fail.
    const steps: (() => Promise<void> | void)[] = [
      () => clearInterval(this.#diagTimer),
      () => this.#pipeline?.unsubscribe(),
      () => this.#aux.splice(0).forEach((u) => u()),
      () => this.#segments?.close(),
      () => this.#saving,
      () => this.#closeLearner(),
      () => this.transport.close(),
      () => {
        this.#retire(this.#slot.controller);
        for (const c of [...this.#retired]) this.#dispose(c);
      },
    ];
    for (const step of steps) {
      try {
        await step();
      } catch (err) {
        this.#error(err);
      }
    }
  }
}
