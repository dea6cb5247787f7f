/**
 * The learner's thread: receives transitions from the control side (`learner.ts`), refits the
 * dynamics ensemble on a schedule, and hands back a model only when it passes the promotion gate.
 *
 * Read top to bottom:
 *   1. every transition is kept; every `gateEvery`-th one (by its index in the stream) goes to the
 *      gate set instead of the training buffer, so no model ever trains on it;
 *   2. a refit is due after `refitEveryTransitions` new transitions, or `refitEverySec` seconds with
 *      at least one, once `minTransitions` have arrived. It starts from the last promoted weights
 *      and runs `refitKeepingLastGood` (PETS's refit: `src/algorithms/mbrl.ts`) on the training buffer;
 *   3. promotion gate: the candidate's weights must all be finite, and its gate loss (below) no
 *      worse than the current model's by more than `maxGateLossIncrease` (relative); both losses
 *      are measured now, on the same gate rows. The first model needs only to be finite;
 *   4. promoted: the weights go to the control side (transferred, not copied) and become the base
 *      of the next refit; rejected: the reason goes back, and the next refit starts from the
 *      current model again;
 *   5. with a policy (`config.policy`: ME-TRPO, MB-MPO), each promoted model is followed by the
 *      algorithm's policy phase on it and the policy gate on imagined returns (`learnerPolicy.ts`);
 *      a promoted policy goes to the control side like a model. MB-MPO's adapted policy (the inner
 *      step on the newest real transitions) is recomputed as data arrive, between the steps of a
 *      refit or phase too, and sent as well.
 *
 * Gate loss: the mean over the model's elites, the gate rows and the target dimensions of
 * ((predicted − observed) / σ_d)², targets Δobs (and the reward when it is learned), σ_d the
 * standard deviation of target d over the gate rows (1 where it is below 1e-6). Dividing by the
 * gate set's own σ makes the loss independent of each model's normalisation.
 *
 * A heartbeat goes to the control side every `heartbeatMs`, and one just before and after each
 * fit and after every policy step; the control side restarts a thread that stays silent for
 * `timeoutSec` (`fitTimeoutSec` during a fit or a policy phase).
 *
 * This module is the worker's entry point when loaded by `Learner` (`workerData.kind ===
 * 'mbrl-learner'`); imported anywhere else it only exports `LearnerCore`, the same logic without a
 * thread (the tests use it directly).
 */
import { getPriority, setPriority } from 'node:os';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { refitKeepingLastGood } from '../algorithms/mbrl.js';
import { initBackend } from '../core/backend.js';
import { Rng } from '../core/rng.js';
import { ReplayBuffer } from '../data/replayBuffer.js';
import { DynamicsEnsemble } from '../models/ensemble.js';
import { checkEnsembleWeights } from '../models/referenceForward.js';
import { outDimOf, selectMembers, type EnsembleWeights } from '../models/types.js';
import { initialPolicyWeights, type PolicyWeights } from '../policies/gaussianMlpPolicy.js';
import type { LearnerConfig } from './learner.js';
import { PolicyLearner, type PolicyOutcome, type PromotedPolicy } from './learnerPolicy.js';

// ---------------------------------------------------------------------------------------------
// Messages between the two sides (structured-cloned; typed arrays transferred).

/** Transitions in columns, `n` rows, row-major. */
export interface TransitionColumns {
  n: number;
  obs: Float32Array;
  action: Float32Array;
  reward: Float32Array;
  nextObs: Float32Array;
  terminated: Uint8Array;
  truncated: Uint8Array;
}

/** The model a worker starts from: the last promoted one. */
export interface GoodModel {
  weights: EnsembleWeights;
  elites: number[];
  /** Transitions in the stream when its fit started: later ones are new to it. */
  streamIndex: number;
}

/** A promoted model: what the control side swaps in. */
export interface PromotedModel {
  weights: EnsembleWeights;
  elites: number[];
  /** Its gate loss when promoted. */
  gateLoss: number;
  /** The previous model's gate loss on the same rows (null for the first model). */
  previousGateLoss: number | null;
  /** Transitions it was trained on (training rows held by the worker when the fit started). */
  trainedOn: number;
  /** Transitions in the stream when its fit started (training and gate rows, since the first ever). */
  streamIndex: number;
  fitEpochs: number;
  fitSeconds: number;
}

/**
 * Faults the tests inject: a model candidate with NaN weights, an exception, a busy loop; a policy
 * candidate with NaN weights, an exception or a busy loop after the first step of the next policy phase.
 */
export type LearnerFault = 'nanCandidate' | 'crash' | 'hang' | 'nanPolicy' | 'crashInPolicyPhase' | 'hangInPolicyPhase';

/** Control side → worker. */
export type ToWorker =
  /** `goodPolicy`: the policy the control side runs (its meta-policy), with `config.policy`; else null. */
  | { kind: 'init'; config: LearnerConfig; good: GoodModel | null; goodPolicy: PolicyWeights | null; data: TransitionColumns | null; firstIndex: number }
  | { kind: 'transitions'; batch: TransitionColumns }
  | { kind: 'refitNow' }
  | { kind: 'fault'; fault: LearnerFault }
  /** Finish (or abort at the next epoch boundary) the current fit, then end the thread. */
  | { kind: 'stop' };

/** Worker → control side. */
export type FromWorker =
  /** `fitting`: a refit or a policy phase is running (the longer silence allowed); `improving`: the policy phase. */
  | { kind: 'heartbeat'; fitting: boolean; improving: boolean; rows: number }
  | { kind: 'promoted'; model: PromotedModel }
  | { kind: 'rejected'; reason: string; gateLoss: number | null; previousGateLoss: number | null }
  | { kind: 'policyPromoted'; policy: PromotedPolicy }
  | { kind: 'policyRejected'; reason: string; candidateReturn: number | null; runningReturn: number | null; steps: number }
  /** MB-MPO: the running policy adapted on the newest `rows` real transitions. */
  | { kind: 'policyAdapted'; weights: PolicyWeights; rows: number }
  | { kind: 'log'; line: string };

// ---------------------------------------------------------------------------------------------
// The learner's logic, without a thread.

/** What one refit decided. */
export type RefitOutcome = { kind: 'promoted'; model: PromotedModel } | { kind: 'rejected'; reason: string; gateLoss: number | null; previousGateLoss: number | null };

/**
 * The worker's state and decisions: the training and gate buffers, the schedule, the refit and the
 * promotion gate. `learnerWorker` wires it to a thread; tests drive it directly.
 * Call `initBackend()` before `refit`.
 */
export class LearnerCore {
  readonly config: LearnerConfig;
  #train: ReplayBuffer;
  #gate: ReplayBuffer;
  #ensemble: DynamicsEnsemble;
  #good: GoodModel | null;
  #rng: Rng;
  /** Stream index of the next transition added. */
  #nextIndex: number;
  /** Stream index when the last refit started (or the starting model's fit), or −1 for none. */
  #refitIndex: number;
  #lastRefitMs = performance.now();
  #fitting = false;
  #improving = false;
  #fault: LearnerFault | null = null;
  #policy: PolicyLearner | null = null;
  /** Whether the last refit promoted a model the policy phase has not run on yet. */
  #policyDue = false;
  /** Called after every epoch of a fit (the thread's heartbeat while it fits). */
  onFitEpoch: (() => void) | null = null;

  /**
   * @param good the last promoted model, or null
   * @param firstIndex stream index of the first transition that will be added (decides which go to
   *   the gate, and with `good.streamIndex` which are new)
   * @param goodPolicy with `config.policy`: the policy the control side runs; null: a fresh one
   *   (`initialPolicyWeights` from stream 1 of the algorithm's seed, as `trainMeTrpo` starts)
   */
  constructor(config: LearnerConfig, good: GoodModel | null = null, firstIndex = 0, goodPolicy: PolicyWeights | null = null) {
    this.config = config;
    const { obsDim, actDim } = config;
    this.#train = new ReplayBuffer({ obsDim, actDim, capacity: config.bufferCapacity });
    this.#gate = new ReplayBuffer({ obsDim, actDim, capacity: config.gateCapacity });
    this.#rng = new Rng(config.seed, 11);
    this.#ensemble = good
      ? DynamicsEnsemble.fromWeights(good.weights, { config: config.ensemble, elites: good.elites })
      : new DynamicsEnsemble({ obsDim, actDim, rng: new Rng(config.seed, 12), config: config.ensemble });
    this.#good = good;
    this.#nextIndex = firstIndex;
    this.#refitIndex = good?.streamIndex ?? -1;
    if (config.policy !== null) {
      const p = config.policy;
      this.#policy = new PolicyLearner(p, goodPolicy ?? initialPolicyWeights(p.spec, new Rng(p.algorithm.seed, 1)), config.seed);
    }
  }

  /** The policy side, with `config.policy`; else null. */
  get policy(): PolicyLearner | null {
    return this.#policy;
  }

  /** Whether a policy phase is running. */
  get improving(): boolean {
    return this.#improving;
  }

  /** Training and gate rows held. */
  get rows(): { train: number; gate: number } {
    return { train: this.#train.size, gate: this.#gate.size };
  }

  get fitting(): boolean {
    return this.#fitting;
  }

  /** Whether a refit is due now (see the file comment). */
  get due(): boolean {
    const c = this.config;
    const fresh = this.#nextIndex - this.#refitIndex;
    if (this.#fitting || this.#train.size + this.#gate.size < c.minTransitions || (this.#refitIndex >= 0 && fresh <= 0)) return false;
    if (this.#good === null || fresh >= c.refitEveryTransitions) return true;
    return c.refitEverySec !== null && performance.now() - this.#lastRefitMs >= c.refitEverySec * 1000;
  }

  /** Sets a fault for the next refit (`nanCandidate`) or policy phase (`nanPolicy`). */
  inject(fault: LearnerFault): void {
    if (fault === 'nanPolicy') this.#policy?.inject(fault);
    else this.#fault = fault;
  }

  /** Adds transitions, routing every `gateEvery`-th (by stream index) to the gate set. */
  add(b: TransitionColumns): void {
    const { obsDim: od, actDim: ad, gateEvery } = this.config;
    for (let r = 0; r < b.n; r++) {
      const t = {
        obs: b.obs.subarray(r * od, (r + 1) * od),
        action: b.action.subarray(r * ad, (r + 1) * ad),
        reward: b.reward[r],
        nextObs: b.nextObs.subarray(r * od, (r + 1) * od),
        terminated: b.terminated[r] === 1,
        truncated: b.truncated[r] === 1,
      };
      if (this.#nextIndex % gateEvery === gateEvery - 1) this.#gate.add(t);
      else this.#train.add(t);
      this.#policy?.add(t.obs, t.action, t.reward, t.nextObs, t.terminated, t.truncated);
      this.#nextIndex++;
    }
  }

  /**
   * Refits from the last promoted model and applies the promotion gate.
   */
  async refit(): Promise<RefitOutcome> {
    if (this.#fitting) throw new Error('LearnerCore.refit: a refit is already running');
    this.#fitting = true;
    const streamIndex = this.#nextIndex;
    this.#refitIndex = streamIndex;
    this.#lastRefitMs = performance.now();
    const t0 = performance.now();
    const trainedOn = this.#train.size;
    try {
      if (this.#good !== null) {
        this.#ensemble.setWeights(this.#good.weights);
        this.#ensemble.setElites(this.#good.elites);
      }
      let refit;
      try {
        refit = await refitKeepingLastGood(this.#ensemble, this.#train, { ...this.config.fit }, this.#rng.fork(), this.#good !== null, () => this.onFitEpoch?.());
      } catch (err) {
        return { kind: 'rejected', reason: `fit failed: ${(err as Error).message}`, gateLoss: null, previousGateLoss: null };
      }
      if (refit.fit === null) return { kind: 'rejected', reason: `fit failed: ${refit.error}`, gateLoss: null, previousGateLoss: null };
      const candidate = { weights: this.#ensemble.toWeights(), elites: [...this.#ensemble.elites] };
      if (this.#fault === 'nanCandidate') {
        this.#fault = null;
        candidate.weights.weights[0][0] = Number.NaN;
      }
      const decision = promotionGate(candidate, this.#good, this.#gate.size > 0 ? this.#gate.slice() : null, this.config.maxGateLossIncrease);
      if (decision.kind === 'rejected') return decision;
      this.#good = { ...candidate, streamIndex };
      this.#policyDue = this.#policy !== null;
      const model: PromotedModel = {
        weights: candidate.weights,
        elites: candidate.elites,
        gateLoss: decision.gateLoss,
        previousGateLoss: decision.previousGateLoss,
        trainedOn,
        streamIndex,
        fitEpochs: refit.fit.epochs,
        fitSeconds: (performance.now() - t0) / 1000,
      };
      return { kind: 'promoted', model };
    } finally {
      this.#fitting = false;
    }
  }

  /** Whether a policy phase is due: a model was promoted since the last one. */
  get policyDue(): boolean {
    return this.#policyDue && !this.#fitting && !this.#improving;
  }

  /**
   * The policy phase on the last promoted model and its gate (`PolicyLearner.improve`); null
   * when none is due. A phase that throws (other than by `onStep`) is a rejection naming the error.
   * @param onStep after every TRPO or meta-step (a throw aborts the phase and is rethrown)
   */
  async improvePolicy(onStep?: (steps: number) => void, log?: (line: string) => void): Promise<PolicyOutcome | null> {
    if (!this.policyDue || this.#good === null || this.#policy === null) return null;
    this.#policyDue = false;
    this.#improving = true;
    let aborted: unknown = null;
    const step = (k: number): void => {
      try {
        onStep?.(k);
      } catch (err) {
        aborted = err;
        throw err;
      }
    };
    try {
      return await this.#policy.improve(this.#good.weights, this.#train, step, log);
    } catch (err) {
      if (aborted !== null) throw err;
      return { kind: 'policyRejected', reason: `policy phase failed: ${(err as Error).message}`, candidateReturn: null, runningReturn: null, steps: 0 };
    } finally {
      this.#improving = false;
    }
  }

  /** Releases the ensemble's tensors. */
  dispose(): void {
    this.#ensemble.dispose();
  }
}

/** The models a promotion gate compares: weights and the elites used to predict. */
export interface GateModel {
  weights: EnsembleWeights;
  elites: readonly number[];
}

/** Rows of the gate set, as `ReplayBuffer.slice` returns them. */
export interface GateRows {
  size: number;
  obs: Float32Array;
  action: Float32Array;
  nextObs: Float32Array;
  reward: Float32Array;
}

/**
 * The promotion gate (see the file comment): a candidate with a non-finite weight or gate loss is
 * rejected; so is one whose gate loss exceeds (1 + `margin`) · the current model's. Without a
 * current model, finite weights (and a finite loss, when there are gate rows) suffice.
 * @example promotionGate(candidate, current, gate, 0.1).kind === 'promoted'
 */
export function promotionGate(
  candidate: GateModel,
  current: GateModel | null,
  gate: GateRows | null,
  margin: number,
): { kind: 'promoted'; gateLoss: number; previousGateLoss: number | null } | Extract<RefitOutcome, { kind: 'rejected' }> {
  try {
    checkEnsembleWeights(candidate.weights, 'candidate');
  } catch (err) {
    return { kind: 'rejected', reason: `non-finite weights: ${(err as Error).message}`, gateLoss: null, previousGateLoss: null };
  }
  if (gate === null || gate.size === 0) {
    // Nothing to compare on yet (fewer than gateEvery transitions): finite weights suffice for a first model.
    return current === null
      ? { kind: 'promoted', gateLoss: Number.NaN, previousGateLoss: null }
      : { kind: 'rejected', reason: 'no gate rows to compare the candidate with the current model on', gateLoss: null, previousGateLoss: null };
  }
  const gateLoss = gateLossOf(candidate.weights, candidate.elites, gate);
  const previousGateLoss = current === null ? null : gateLossOf(current.weights, current.elites, gate);
  if (!Number.isFinite(gateLoss)) return { kind: 'rejected', reason: `gate loss is ${gateLoss}`, gateLoss, previousGateLoss };
  if (previousGateLoss !== null && Number.isFinite(previousGateLoss) && gateLoss > (1 + margin) * previousGateLoss) {
    return {
      kind: 'rejected',
      reason: `gate loss ${gateLoss.toPrecision(4)} is worse than the current model's ${previousGateLoss.toPrecision(4)} by more than ${+(margin * 100).toFixed(2)} %`,
      gateLoss,
      previousGateLoss,
    };
  }
  return { kind: 'promoted', gateLoss, previousGateLoss };
}

/**
 * The gate loss of a model's `elites` on `gate` rows (see the file comment), through the tfjs
 * forward pass.
 */
export function gateLossOf(weights: EnsembleWeights, elites: readonly number[], gate: GateRows): number {
  const w = selectMembers(weights, elites);
  const { obsDim: od, actDim: ad, learnReward } = w.spec;
  const E = elites.length;
  const n = gate.size;
  const D = outDimOf(w.spec);
  // Targets and their spread over the gate rows.
  const target = new Float64Array(n * D);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < od; j++) target[r * D + j] = gate.nextObs[r * od + j] - gate.obs[r * od + j];
    if (learnReward) target[r * D + od] = gate.reward[r];
  }
  const sigma = new Float64Array(D);
  for (let j = 0; j < D; j++) {
    let mean = 0;
    for (let r = 0; r < n; r++) mean += target[r * D + j] / n;
    let v = 0;
    for (let r = 0; r < n; r++) v += (target[r * D + j] - mean) ** 2 / n;
    sigma[j] = Math.sqrt(v) < 1e-6 ? 1 : Math.sqrt(v);
  }
  // Every elite on every gate row: rows tiled E times.
  const obs = new Float32Array(E * n * od);
  const act = new Float32Array(E * n * ad);
  for (let k = 0; k < E; k++) {
    obs.set(gate.obs.subarray(0, n * od), k * n * od);
    act.set(gate.action.subarray(0, n * ad), k * n * ad);
  }
  const model = DynamicsEnsemble.fromWeights(w, { config: { numElites: E } });
  try {
    const f = model.forwardTf(obs, act, n);
    let sum = 0;
    for (let k = 0; k < E; k++) {
      for (let r = 0; r < n; r++) {
        const row = k * n + r;
        for (let j = 0; j < od; j++) sum += ((f.nextObs[row * od + j] - obs[row * od + j] - target[r * D + j]) / sigma[j]) ** 2;
        if (learnReward) sum += ((f.reward![row] - target[r * D + od]) / sigma[od]) ** 2;
      }
    }
    return sum / (E * n * D);
  } finally {
    model.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// The thread.

/** Runs the learner on `port` (the worker's `parentPort`) until the thread is terminated. */
/**
 * Lowers the calling thread's OS priority by `nice` (`LearnerConfig.workerNice`) and says what
 * happened. On Linux, setpriority(PRIO_PROCESS, 0) — what `os.setPriority(0, …)` calls — changes
 * the calling thread only (each thread has its own nice value); elsewhere it would change the
 * whole process, so it is not applied there.
 */
export function lowerThreadPriority(nice: number, platform: NodeJS.Platform = process.platform): string {
  if (nice === 0) return 'learner worker: priority unchanged (workerNice 0)';
  if (platform !== 'linux') return `learner worker: priority not lowered (workerNice ${nice}): a thread's own priority is settable on Linux only`;
  try {
    const before = getPriority(0);
    const target = Math.min(19, before + nice);
    setPriority(0, target);
    return `learner worker: thread priority nice ${before} → ${getPriority(0)} (workerNice ${nice}; the control thread keeps its own)`;
  } catch (err) {
    return `learner worker: could not lower the thread priority by ${nice} (${err instanceof Error ? err.message : String(err)}); running at the control thread's priority`;
  }
}

function serve(port: NonNullable<typeof parentPort>, priorityLine: string | null = null): void {
  let core: LearnerCore | null = null;
  let refitting = false;
  let stopping = false;
  const exitIfStopping = (): void => {
    if (stopping && !refitting) process.exit(0); // in a worker: ends this thread only
  };
  let adapting = false;
  let fault: LearnerFault | null = null;
  const post = (msg: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(msg, transfer);
  const log = (line: string): void => post({ kind: 'log', line });
  if (priorityLine !== null) log(priorityLine);
  const backend = initBackend({ log });
  const rows = (): number => (core ? core.rows.train + core.rows.gate : 0);
  const heartbeat = (): void => post({ kind: 'heartbeat', fitting: (core?.fitting ?? false) || (core?.improving ?? false), improving: core?.improving ?? false, rows: rows() });
  /** After every policy step: a heartbeat, the way out when stopping, the injected faults. */
  const onPolicyStep = (): void => {
    if (stopping) throw new Error('learner stopping');
    post({ kind: 'heartbeat', fitting: true, improving: true, rows: rows() });
    if (fault === 'crashInPolicyPhase') {
      fault = null;
      throw new Error('learner worker: injected crash in the policy phase');
    }
    if (fault === 'hangInPolicyPhase') for (;;);
    // MB-MPO: the deployed policy keeps adapting while the meta-policy improves.
    void maybeAdapt();
  };

  /** MB-MPO: adapts the running policy on the newest real rows when due (synchronous once the backend is up). */
  const maybeAdapt = async (): Promise<void> => {
    if (core === null || adapting || stopping || !core.policy?.adaptDue) return;
    adapting = true;
    try {
      await backend;
      // Rows that arrived while the backend loaded may be due again at once: adapt on the newest.
      while (!stopping && core.policy.adaptDue) {
        const adapted = core.policy.adapt();
        if (adapted !== null) post({ kind: 'policyAdapted', weights: adapted.weights, rows: adapted.rows }, policyBuffers(adapted.weights));
      }
    } finally {
      adapting = false;
    }
  };

  const maybeRefit = async (force = false): Promise<void> => {
    if (core === null || refitting || stopping || !(force || core.due)) return;
    refitting = true;
    try {
      await backend;
      // Announce the fit: the control side then allows fitTimeoutSec of silence (a tfjs-engine fit holds the thread).
      post({ kind: 'heartbeat', fitting: true, improving: false, rows: rows() });
      const outcome = await core.refit();
      if (outcome.kind === 'promoted') {
        // The core keeps the promoted weights as its base: send a copy, and transfer that.
        const copy = structuredClone(outcome.model);
        post({ kind: 'promoted', model: copy }, [...new Set(collectBuffers(copy.weights))]);
      } else {
        post(outcome);
      }
      if (core.policyDue && !stopping) {
        post({ kind: 'heartbeat', fitting: true, improving: true, rows: rows() });
        const policy = await core.improvePolicy(onPolicyStep, log);
        if (policy?.kind === 'policyPromoted') {
          const copy = structuredClone(policy.policy);
          post({ kind: 'policyPromoted', policy: copy }, policyBuffers(copy.weights));
        } else if (policy !== null) {
          post(policy);
        }
      }
    } catch (err) {
      if (!stopping) throw err;
    } finally {
      refitting = false;
      heartbeat();
    }
    exitIfStopping();
    void maybeAdapt();
    // Transitions that arrived during the fit may already make the next one due.
    if (core.due) void maybeRefit();
  };

  port.on('message', (msg: ToWorker) => {
    switch (msg.kind) {
      case 'init':
        core = new LearnerCore(msg.config, msg.good, msg.firstIndex, msg.goodPolicy);
        core.onFitEpoch = () => {
          // Abort between epochs (a JS exception, never inside a native training step): terminating
          // a thread in the middle of an onnxruntime call aborts the whole process.
          if (stopping) throw new Error('learner stopping');
          post({ kind: 'heartbeat', fitting: true, improving: false, rows: rows() });
        };
        if (msg.data !== null) core.add(msg.data);
        setInterval(heartbeat, msg.config.heartbeatMs);
        if (msg.config.refitEverySec !== null) setInterval(() => void maybeRefit(), Math.min(1000, msg.config.refitEverySec * 1000));
        heartbeat();
        void maybeRefit();
        break;
      case 'transitions':
        core?.add(msg.batch);
        void maybeAdapt();
        void maybeRefit();
        break;
      case 'refitNow':
        void maybeRefit(true);
        break;
      case 'stop':
        stopping = true;
        exitIfStopping();
        break;
      case 'fault':
        if (msg.fault === 'crash') {
          setTimeout(() => {
            throw new Error('learner worker: injected crash');
          });
        } else if (msg.fault === 'hang') {
          // A busy loop: the thread stops answering, as a real deadlock or runaway loop would.
          for (;;);
        } else if (msg.fault === 'crashInPolicyPhase' || msg.fault === 'hangInPolicyPhase') {
          fault = msg.fault;
        } else {
          core?.inject(msg.fault);
        }
        break;
    }
  });
}

/** The buffers of a policy's weights (each array owns its buffer: `getWeights` and the codec copy). */
function policyBuffers(w: PolicyWeights): ArrayBuffer[] {
  const arrays = [...w.layers.flatMap((l) => [l.W, l.b]), w.obsMean, w.obsStd];
  if (w.logStd) arrays.push(w.logStd);
  return [...new Set(arrays.map((a) => a.buffer as ArrayBuffer))];
}

function collectBuffers(w: EnsembleWeights): ArrayBuffer[] {
  const arrays = [...w.weights, ...w.biases, w.inputMean, w.inputStd, w.targetMean, w.targetStd];
  if (w.maxLogvar) arrays.push(w.maxLogvar);
  if (w.minLogvar) arrays.push(w.minLogvar);
  return arrays.map((a) => a.buffer as ArrayBuffer);
}

if (!isMainThread && parentPort !== null && (workerData as { kind?: unknown } | null)?.kind === 'mbrl-learner') {
  const nice = (workerData as { nice?: unknown }).nice;
  serve(parentPort, typeof nice === 'number' ? lowerThreadPriority(nice) : null);
}
