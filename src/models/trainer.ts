/**
 * Fits a `DynamicsEnsemble` to transitions: bootstrap resamples per member, a holdout split,
 * minibatch Adam, early stopping on the holdout loss, best weights kept per member, elites.
 *
 * The procedure is MBPO's (Janner et al. 2019, https://arxiv.org/abs/1906.08253, `bnn.py`),
 * which is PETS's (Chua et al. 2018, https://arxiv.org/abs/1805.12114) with a holdout set:
 *   1. holdout: 20 % of the rows, at most 5000 (MBPO `holdout_ratio = 0.2`, `max_logging = 5000`;
 *      mbrl-lib's MBPO configs use `validation_ratio: 0.2` too), by whole episodes when ids are given;
 *   2. normalisation statistics of inputs and targets from the training rows;
 *   3. member k trains on its own bootstrap resample (n draws with replacement), reshuffled every
 *      epoch, in minibatches of 256 (the last one smaller);
 *   4. loss, summed over members (PETS/MBPO):
 *        probabilistic: mean over the batch of Σ_d [(μ − y)² · e^{−logvar} + logvar]
 *        deterministic: mean over the batch of Σ_d (μ − y)²
 *      plus Σ_l λ_l · ½‖W_l‖² (MBPO's per-layer decays 2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4) and
 *      0.01 · (Σ maxLogvar − Σ minLogvar) (PETS's penalty on the learned soft bounds);
 *   5. after each epoch, the holdout MSE of each member's mean (normalised targets); a member whose
 *      holdout MSE improved by more than 1 % keeps a copy of its weights; training stops after 5
 *      epochs without any member improving (MBPO `max_epochs_since_update`, mbrl-lib `patience` /
 *      `improvement_threshold = 0.01`);
 *   6. every member gets its best weights back (the shared log-variance bounds keep their last
 *      values, as in MBPO), and the elites are the E members with the lowest best holdout MSE.
 *
 * Speed. The backward pass is written out by hand (see `MemberKernel`) and runs on one of two
 * engines; Adam runs in JavaScript on the float32 parameters for both. Measured on the shared 2-core
 * machine under load from other jobs, PETS architecture (K = 7, 23 → 4 × 200 → 34, batch 256;
 * `npx mbrl bench ensemble-fit` re-measures it):
 * - `onnxruntime` (the default): the whole step for all members is one ONNX graph (batched
 *   MatMuls over members, MLAS GEMMs) run by onnxruntime-node: the graph alone ~50 GFLOP/s on one
 *   thread, a whole fit ~5000–5800 transitions/s (28–32 GFLOP/s, Adam and batching included).
 * - `tfjs` (the fallback): one 2-D matMul chain per member with explicit transposes, because
 *   tfjs-wasm's batched 3-D matMul and its transposed 2-D kernels run at ~2 GFLOP/s and its plain
 *   2-D matMul at ~15–20; ~1400–2000 transitions/s (8–11 GFLOP/s). Members are spread over
 *   `parallelism` lanes: the calling thread plus worker threads, each with its own tfjs instance.
 *   The only per-step exchange between members is the gradient of the shared log-variance bounds,
 *   summed in member order, so the result is identical for any number of lanes.
 * Both engines are checked against each other and the tfjs kernel against tfjs autodiff.
 */
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import ort from 'onnxruntime-node';
import { ValidationError, describe } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import { attr, OnnxGraphBuilder } from '../export/onnxWriter.js';
import type { DynamicsEnsemble } from './ensemble.js';
import { layerDimsOf } from './referenceForward.js';
import { outDimOf } from './types.js';
import type { EnsembleSpec } from './types.js';

/** Training hyper-parameters of `fitEnsemble`. */
export interface EnsembleFitConfig {
  /** Always `'ensemble-fit'`, so a saved config can be rebuilt from its JSON. */
  kind: 'ensemble-fit';
  /** Adam step size. MBPO/mbrl-lib: 1e-3. */
  learningRate: number;
  /**
   * L2 coefficient λ_l per layer (hidden layers, then the output layer): the loss gains
   * Σ_l λ_l · ½‖W_l‖² (biases are not decayed). MBPO: [2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4] for its
   * 4 hidden layers + output. A single number applies to every layer. Left unset for an ensemble of
   * another depth, it runs linearly from 2.5e-5 (first layer) to 1e-4 (output layer).
   */
  weightDecay: number | number[];
  /** Minibatch rows per member per step. MBPO/mbrl-lib: 256. */
  batchSize: number;
  /** Fraction of the rows held out to evaluate members (MBPO `holdout_ratio`, mbrl-lib `validation_ratio`): 0.2. */
  holdoutRatio: number;
  /** Cap on holdout rows (MBPO `max_logging`): 5000. With episode ids, whole episodes are added until the target is reached. */
  maxHoldout: number;
  /** Hard cap on epochs. MBPO has none (it stops early); default 200 as a safety net. */
  maxEpochs: number;
  /** Wall-clock cap in seconds, checked after each epoch (MBPO `max_t`); null for none (the default). */
  maxSeconds: number | null;
  /** Epochs without any member improving before stopping (MBPO `max_epochs_since_update`, mbrl-lib `patience`): 5. */
  patience: number;
  /** Relative holdout improvement a member needs to count as improved: 0.01 (mbrl-lib `improvement_threshold`, MBPO `_save_best`). */
  improvementThreshold: number;
  /** Coefficient of Σ maxLogvar − Σ minLogvar in the loss (PETS): 0.01. */
  logvarBoundPenalty: number;
  /** Each member trains on its own resample with replacement (PETS/MBPO): true. */
  bootstrap: boolean;
  /** Input/target dimensions with std below this get std 1 (mbrl-lib's `Normalizer` rule): 1e-6. */
  minStd: number;
  /** Adam β₁, β₂, ε (PyTorch/mbrl-lib defaults). */
  adamBeta1: number;
  adamBeta2: number;
  adamEpsilon: number;
  /**
   * Where the training steps run: `onnxruntime` (one graph per step for all members, the fast
   * path), `tfjs` (per-member 2-D matMuls on the tfjs backend, in lanes), or `auto`: onnxruntime,
   * else tfjs when onnxruntime cannot start. Default `'auto'`.
   */
  engine: 'auto' | 'onnxruntime' | 'tfjs';
  /**
   * Threads for training: onnxruntime's intra-op threads, or on the tfjs engine the lanes
   * (the calling thread plus `parallelism − 1` worker threads). `'auto'`: os.availableParallelism()
   * (at most K lanes; 1 lane on the tfjs `tensorflow` backend, which is multi-threaded already).
   * Use 1 where other work (a control loop) needs a core.
   */
  parallelism: number | 'auto';
  /** Start Adam from zero moments instead of the ensemble's state from its previous fit. Default false. */
  resetOptimizer: boolean;
}

/** MBPO's training set-up (see the file comment for sources). */
export const ENSEMBLE_FIT_DEFAULTS = {
  kind: 'ensemble-fit',
  learningRate: 1e-3,
  weightDecay: [2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4],
  batchSize: 256,
  holdoutRatio: 0.2,
  maxHoldout: 5000,
  maxEpochs: 200,
  maxSeconds: null,
  patience: 5,
  improvementThreshold: 0.01,
  logvarBoundPenalty: 0.01,
  bootstrap: true,
  minStd: 1e-6,
  adamBeta1: 0.9,
  adamBeta2: 0.999,
  adamEpsilon: 1e-8,
  engine: 'auto',
  parallelism: 'auto',
  resetOptimizer: false,
} as const satisfies EnsembleFitConfig;

/**
 * Merges `overrides` into `ENSEMBLE_FIT_DEFAULTS` and validates it (for `layers` layers when given).
 * @throws ValidationError naming the key, the bad value and what was expected
 */
export function makeEnsembleFitConfig(overrides: Partial<EnsembleFitConfig> = {}, layers?: number): EnsembleFitConfig {
  const where = 'makeEnsembleFitConfig';
  for (const key of Object.keys(overrides)) {
    if (!(key in ENSEMBLE_FIT_DEFAULTS)) throw new ValidationError(where, key, `unknown key; expected one of ${Object.keys(ENSEMBLE_FIT_DEFAULTS).join(', ')}`);
  }
  const c: EnsembleFitConfig = { ...ENSEMBLE_FIT_DEFAULTS, weightDecay: [...ENSEMBLE_FIT_DEFAULTS.weightDecay], ...overrides, kind: 'ensemble-fit' };
  const bad = (key: string, v: unknown, expected: string): never => {
    throw new ValidationError(where, key, `expected ${expected}, got ${Array.isArray(v) ? `[${v.join(', ')}]` : describe(v)}`);
  };
  if (overrides.kind !== undefined && overrides.kind !== 'ensemble-fit') bad('kind', overrides.kind, "'ensemble-fit'");
  const num = (key: keyof EnsembleFitConfig, ok: (v: number) => boolean, expected: string): void => {
    const v = c[key];
    if (typeof v !== 'number' || Number.isNaN(v) || !ok(v)) bad(key, v, expected);
  };
  const posInt = (v: number): boolean => Number.isInteger(v) && v > 0;
  num('learningRate', (v) => v > 0 && Number.isFinite(v), 'a finite number > 0');
  num('batchSize', posInt, 'a positive integer');
  num('holdoutRatio', (v) => v >= 0 && v < 1, 'a number in [0, 1)');
  num('maxHoldout', (v) => Number.isInteger(v) && v >= 0, 'a non-negative integer');
  num('maxEpochs', posInt, 'a positive integer');
  if (c.maxSeconds !== null) num('maxSeconds', (v) => v > 0, 'a number > 0, or null for no limit');
  num('patience', posInt, 'a positive integer');
  num('improvementThreshold', (v) => v >= 0 && Number.isFinite(v), 'a finite number >= 0');
  num('logvarBoundPenalty', (v) => v >= 0 && Number.isFinite(v), 'a finite number >= 0');
  num('minStd', (v) => v >= 0 && Number.isFinite(v), 'a finite number >= 0');
  num('adamBeta1', (v) => v >= 0 && v < 1, 'a number in [0, 1)');
  num('adamBeta2', (v) => v >= 0 && v < 1, 'a number in [0, 1)');
  num('adamEpsilon', (v) => v > 0 && Number.isFinite(v), 'a finite number > 0');
  if (typeof c.bootstrap !== 'boolean') bad('bootstrap', c.bootstrap, 'a boolean');
  if (typeof c.resetOptimizer !== 'boolean') bad('resetOptimizer', c.resetOptimizer, 'a boolean');
  if (!['auto', 'onnxruntime', 'tfjs'].includes(c.engine)) bad('engine', c.engine, "'auto', 'onnxruntime' or 'tfjs'");
  if (c.parallelism !== 'auto' && !(typeof c.parallelism === 'number' && posInt(c.parallelism))) bad('parallelism', c.parallelism, "'auto' or a positive integer");
  if (overrides.weightDecay === undefined && layers !== undefined && layers !== ENSEMBLE_FIT_DEFAULTS.weightDecay.length) {
    // MBPO's schedule is for its 5 layers; other depths get the same range, linearly from first to last layer.
    const [first, last] = [ENSEMBLE_FIT_DEFAULTS.weightDecay[0], ENSEMBLE_FIT_DEFAULTS.weightDecay[4]];
    c.weightDecay = Array.from({ length: layers }, (_, l) => (layers === 1 ? last : first + ((last - first) * l) / (layers - 1)));
  }
  const wd = c.weightDecay;
  const decayOk = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  if (typeof wd === 'number') {
    if (!decayOk(wd)) bad('weightDecay', wd, 'finite numbers >= 0');
  } else if (!Array.isArray(wd) || !wd.every(decayOk)) {
    bad('weightDecay', wd, 'a finite number >= 0 or an array of them');
  } else {
    c.weightDecay = [...wd];
    if (layers !== undefined && wd.length !== layers) {
      bad('weightDecay', wd, `${layers} values, one per layer of the ensemble (${layers - 1} hidden + output), or a single number`);
    }
  }
  return c;
}

/** Transitions to fit, as flat row-major float32 arrays of n rows. */
export interface EnsembleFitData {
  /** Observations, n rows of obsDim. */
  obs: Float32Array;
  /** Actions, n rows of actDim. */
  act: Float32Array;
  /** Next observations, n rows of obsDim. */
  nextObs: Float32Array;
  /** Rewards, n (required when the ensemble learns the reward). */
  reward?: Float32Array;
  /** Rows. */
  n: number;
  /** Episode id of each row (n); when given, the holdout is made of whole episodes. */
  episodeIds?: ArrayLike<number>;
}

/** One epoch's figures, passed to `onEpoch`. */
export interface EnsembleEpochReport {
  /** 1-based. */
  epoch: number;
  /** Mean training loss per member over the epoch (NLL or MSE as trained, normalised targets). */
  trainLoss: number[];
  /** Holdout MSE of each member's mean (normalised targets). */
  holdoutLoss: number[];
  /** Members whose holdout MSE improved by more than `improvementThreshold` (their weights were kept). */
  improved: boolean[];
  /** Seconds since the fit started. */
  seconds: number;
}

/** Result of `fitEnsemble`. */
export interface EnsembleFitResult {
  /** Epochs run. */
  epochs: number;
  /** Why training stopped. */
  stopReason: 'patience' | 'maxEpochs' | 'maxSeconds';
  /** Per epoch, per member: mean training loss. */
  trainLoss: number[][];
  /** Per epoch, per member: holdout MSE. */
  holdoutLoss: number[][];
  /** Per member: the holdout MSE of the weights it kept. */
  bestHoldoutLoss: number[];
  /** The elites, ascending member indices (also set on the ensemble). */
  elites: number[];
  /** How the holdout was drawn: whole episodes, single rows, or none (members are then scored on the training rows). */
  split: 'episodes' | 'rows' | 'none';
  numTrain: number;
  numHoldout: number;
  /** The engine the steps ran on. */
  engine: 'onnxruntime' | 'tfjs';
  /** onnxruntime threads, or tfjs lanes (calling thread + workers). */
  threads: number;
  /** Why `engine`/`parallelism: 'auto'` fell back (to tfjs, or to the calling thread alone), when it did. */
  fallback?: string;
  /** Training transitions per second through the whole ensemble (every member's forward + backward + Adam), epochs · numTrain / training time. */
  samplesPerSec: number;
  /** Effective GFLOP/s of the training steps: 6 · K · rows · Σ_l in_l·out_l per epoch (forward 2·MACs, backward 4·MACs). */
  gflops: number;
  /** Seconds in training steps (excludes holdout evaluation and set-up). */
  trainSeconds: number;
  /** Wall-clock seconds of the whole fit. */
  seconds: number;
}

/** A fit that could not finish; the ensemble keeps the weights it had before the call. */
export class EnsembleFitError extends Error {
  /** 1-based epoch, or 0 when the failure came before training. */
  readonly epoch: number;
  constructor(message: string, epoch: number) {
    super(message);
    this.name = 'EnsembleFitError';
    this.epoch = epoch;
  }
}

/**
 * Training flops of `rows` transitions through every member: 6 · K · rows · Σ_l in_l·out_l
 * (a forward pass is 2 flops per multiply-accumulate, the backward pass twice that).
 */
export function ensembleTrainFlops(spec: EnsembleSpec, rows: number): number {
  const macs = layerDimsOf(spec).reduce((s, [i, o]) => s + i * o, 0);
  return 6 * spec.numMembers * rows * macs;
}

/**
 * Fits `ensemble` to `data` (see the file comment for the procedure). On success the ensemble
 * holds each member's best weights, the new normalisation statistics and the new elites, and
 * keeps its Adam state for the next fit (as mbrl-lib's and MBPO's persistent optimisers do).
 * On failure (a non-finite loss, a worker that died) it throws `EnsembleFitError` and the ensemble
 * is left exactly as it was.
 *
 * @param config overrides of `ENSEMBLE_FIT_DEFAULTS`
 * @param rng draws the holdout split, the bootstrap resamples and the minibatch order
 * @param onEpoch called after every epoch
 * @throws ValidationError on bad data (wrong length, a non-finite value: the message names the array, row and column)
 * @throws EnsembleFitError when training diverges
 * @example
 * const result = await fitEnsemble(ensemble, { obs, act, nextObs, reward, n }, { batchSize: 256 }, new Rng(1));
 * console.log(result.epochs, result.elites, result.samplesPerSec);
 */
export async function fitEnsemble(
  ensemble: DynamicsEnsemble,
  data: EnsembleFitData,
  config: Partial<EnsembleFitConfig>,
  rng: Rng,
  onEpoch?: (report: EnsembleEpochReport) => void,
): Promise<EnsembleFitResult> {
  const t0 = performance.now();
  const spec = ensemble.spec;
  const dims = layerDimsOf(spec);
  const cfg = makeEnsembleFitConfig(config, dims.length);
  if (fitting.has(ensemble)) throw new EnsembleFitError('fitEnsemble: this ensemble is already being fitted; await the running fit first', 0);
  const K = spec.numMembers;
  const D = outDimOf(spec);
  const inDim = spec.obsDim + spec.actDim;
  const { inputs, targets, n } = checkedTransitions(spec, data);

  // 1. Holdout split.
  const split = holdoutSplit(n, data.episodeIds, cfg, rng);
  const nTrain = split.train.length;

  // 2. Normalisation statistics from the training rows.
  const inStats = columnStats(inputs, inDim, split.train, cfg.minStd);
  const tgStats = columnStats(targets, D, split.train, cfg.minStd);
  const trainX = normalizedRows(inputs, inDim, split.train, inStats);
  const trainY = normalizedRows(targets, D, split.train, tgStats);
  const hasHoldout = split.holdout.length > 0;
  const evalX = hasHoldout ? normalizedRows(inputs, inDim, split.holdout, inStats) : trainX;
  const evalY = hasHoldout ? normalizedRows(targets, D, split.holdout, tgStats) : trainY;

  // 3. Bootstrap resamples (MBPO: np.random.randint(n, size=[K, n])).
  const order: Uint32Array[] = [];
  for (let k = 0; k < K; k++) {
    const idx = new Uint32Array(nTrain);
    for (let i = 0; i < nTrain; i++) idx[i] = cfg.bootstrap ? rng.int(nTrain) : i;
    order.push(idx);
  }

  // The engine works on copies of the weights and optimiser state: a failed fit leaves the ensemble untouched.
  const start = ensemble.toWeights();
  const saved = cfg.resetOptimizer ? undefined : optimizerStates.get(ensemble);
  const state = saved !== undefined ? copyOptimizerState(saved) : freshOptimizerState(dims, K, D);
  const maxLogvar = start.maxLogvar?.slice() ?? new Float32Array(0);
  const minLogvar = start.minLogvar?.slice() ?? new Float32Array(0);
  const init: EngineInit = {
    spec,
    dims,
    weights: start.weights,
    biases: start.biases,
    state,
    decay: dims.map((_, l) => (typeof cfg.weightDecay === 'number' ? cfg.weightDecay : cfg.weightDecay[l])),
    cfg,
    trainX,
    trainY,
    evalX,
    evalY,
  };
  const trainLoss: number[][] = [];
  const holdoutLoss: number[][] = [];
  const best = new Array<number>(K).fill(Infinity);
  let stopReason: EnsembleFitResult['stopReason'] = 'maxEpochs';
  let trainMs = 0;
  let epoch = 0;
  let stepInEpoch = 0;
  let engine: TrainEngine | null = null;
  fitting.add(ensemble);
  try {
    engine = await createEngine(init);
    const steps = Math.ceil(nTrain / cfg.batchSize);
    let sinceImproved = 0;
    let adamStep = state.step;
    const lossSum = new Float64Array(K);
    while (epoch < cfg.maxEpochs) {
      epoch++;
      for (const idx of order) rng.shuffle(idx);
      lossSum.fill(0);
      const tEpoch = performance.now();
      for (stepInEpoch = 0; stepInEpoch < steps; stepInEpoch++) {
        const lo = stepInEpoch * cfg.batchSize;
        const hi = Math.min(nTrain, lo + cfg.batchSize);
        const out = await engine.step(
          order.map((idx) => idx.subarray(lo, hi)),
          maxLogvar,
          minLogvar,
        );
        adamStep++;
        // Losses and the bounds' gradient, summed in member order.
        const boundGrad = new Float64Array(2 * D);
        for (let k = 0; k < K; k++) {
          const loss = out.losses[k];
          if (!Number.isFinite(loss)) {
            throw new EnsembleFitError(
              `fitEnsemble: training diverged: member ${k} had loss ${loss} at epoch ${epoch}, step ${stepInEpoch + 1} of ${steps}; the ensemble keeps its previous weights (try a smaller learningRate)`,
              epoch,
            );
          }
          lossSum[k] += loss * (hi - lo);
          if (spec.probabilistic) for (let d = 0; d < 2 * D; d++) boundGrad[d] += out.boundGrads[k * 2 * D + d];
        }
        if (spec.probabilistic) {
          // ∂/∂max = Σ_k ∂loss_k/∂max + penalty; ∂/∂min = Σ_k ∂loss_k/∂min − penalty.
          for (let d = 0; d < D; d++) {
            boundGrad[d] += cfg.logvarBoundPenalty;
            boundGrad[D + d] -= cfg.logvarBoundPenalty;
          }
          adamUpdateBounds(maxLogvar, minLogvar, boundGrad, state.boundM, state.boundV, adamStep, cfg);
        }
      }
      trainMs += performance.now() - tEpoch;

      const holdout = Array.from(await engine.evaluate());
      const bad = holdout.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) {
        throw new EnsembleFitError(
          `fitEnsemble: training diverged: member ${bad} had holdout MSE ${holdout[bad]} after epoch ${epoch}; the ensemble keeps its previous weights (try a smaller learningRate)`,
          epoch,
        );
      }
      // MBPO `_save_best`: a member improves when (best − current) / best > threshold.
      const improved = holdout.map((v, k) => best[k] === Infinity || (best[k] - v) / Math.abs(best[k]) > cfg.improvementThreshold);
      improved.forEach((yes, k) => yes && (best[k] = holdout[k]));
      await engine.snapshot(improved.flatMap((yes, k) => (yes ? [k] : [])));
      sinceImproved = improved.some(Boolean) ? 0 : sinceImproved + 1;

      const epochTrain = Array.from(lossSum, (s) => s / nTrain);
      trainLoss.push(epochTrain);
      holdoutLoss.push(holdout);
      onEpoch?.({ epoch, trainLoss: epochTrain, holdoutLoss: holdout, improved, seconds: (performance.now() - t0) / 1000 });
      if (sinceImproved >= cfg.patience) {
        stopReason = 'patience';
        break;
      }
      if (cfg.maxSeconds !== null && (performance.now() - t0) / 1000 >= cfg.maxSeconds) {
        stopReason = 'maxSeconds';
        break;
      }
    }

    // Each member's best weights and the optimiser state, committed all at once.
    const final = await engine.finish();
    const next = ensemble.toWeights();
    next.weights = final.weights;
    next.biases = final.biases;
    next.inputMean = inStats.mean;
    next.inputStd = inStats.std;
    next.targetMean = tgStats.mean;
    next.targetStd = tgStats.std;
    if (spec.probabilistic) {
      next.maxLogvar = maxLogvar;
      next.minLogvar = minLogvar;
    }
    const elites = Array.from(best.keys())
      .sort((a, b) => best[a] - best[b] || a - b)
      .slice(0, ensemble.config.numElites)
      .sort((a, b) => a - b);
    ensemble.setWeights(next);
    ensemble.setElites(elites);
    optimizerStates.set(ensemble, { ...final.state, step: adamStep, boundM: state.boundM, boundV: state.boundV });

    const trainSeconds = trainMs / 1000;
    return {
      epochs: epoch,
      stopReason,
      trainLoss,
      holdoutLoss,
      bestHoldoutLoss: best,
      elites,
      split: split.kind,
      numTrain: nTrain,
      numHoldout: split.holdout.length,
      engine: engine.name,
      threads: engine.threads,
      ...(engine.fallback !== undefined ? { fallback: engine.fallback } : {}),
      samplesPerSec: (epoch * nTrain) / trainSeconds,
      gflops: ensembleTrainFlops(spec, epoch * nTrain) / trainSeconds / 1e9,
      trainSeconds,
      seconds: (performance.now() - t0) / 1000,
    };
  } catch (err) {
    if (err instanceof EnsembleFitError || err instanceof ValidationError) throw err;
    const msg = err instanceof Error ? err.message : String(err);
    throw new EnsembleFitError(`fitEnsemble: failed at epoch ${epoch}, step ${stepInEpoch + 1}: ${msg}; the ensemble keeps its previous weights`, epoch);
  } finally {
    fitting.delete(ensemble);
    await engine?.dispose();
  }
}

/** Ensembles with a fit in progress (two concurrent fits would both commit). */
const fitting = new WeakSet<DynamicsEnsemble>();

// ---------------------------------------------------------------------------------------------
// Data preparation

/** Validates the transitions; returns inputs [obs, act] and targets [Δobs, reward?] as float32 rows. */
function checkedTransitions(spec: EnsembleSpec, data: EnsembleFitData): { inputs: Float32Array; targets: Float32Array; n: number } {
  const where = 'fitEnsemble';
  const { obsDim, actDim, learnReward } = spec;
  const n = data?.n;
  if (!Number.isInteger(n) || n < 2) throw new ValidationError(where, 'data.n', `expected an integer >= 2 (rows), got ${describe(n)}`);
  const arrays: [string, Float32Array | undefined, number][] = [
    ['obs', data.obs, obsDim],
    ['act', data.act, actDim],
    ['nextObs', data.nextObs, obsDim],
  ];
  if (learnReward) arrays.push(['reward', data.reward, 1]);
  for (const [field, a, width] of arrays) {
    if (!(a instanceof Float32Array)) throw new ValidationError(where, `data.${field}`, `expected a Float32Array of ${n} rows of ${width}, got ${describe(a)}`);
    if (a.length !== n * width) throw new ValidationError(where, `data.${field}`, `expected length ${n * width} (${n} rows of ${width}), got length ${a.length}`);
    for (let i = 0; i < a.length; i++) {
      if (!Number.isFinite(a[i])) {
        throw new ValidationError(where, `data.${field}[${i}]`, `expected a finite number, got ${describe(a[i])} (row ${Math.floor(i / width)}, column ${i % width}); remove or repair such transitions before fitting`);
      }
    }
  }
  const ids = data.episodeIds;
  if (ids !== undefined && ids.length !== n) throw new ValidationError(where, 'data.episodeIds', `expected length ${n}, got length ${ids.length}`);
  const inDim = obsDim + actDim;
  const D = outDimOf(spec);
  const inputs = new Float32Array(n * inDim);
  const targets = new Float32Array(n * D);
  for (let r = 0; r < n; r++) {
    inputs.set(data.obs.subarray(r * obsDim, (r + 1) * obsDim), r * inDim);
    inputs.set(data.act.subarray(r * actDim, (r + 1) * actDim), r * inDim + obsDim);
    for (let j = 0; j < obsDim; j++) targets[r * D + j] = data.nextObs[r * obsDim + j] - data.obs[r * obsDim + j];
    if (learnReward) targets[r * D + obsDim] = data.reward![r];
  }
  return { inputs, targets, n };
}

interface Split {
  kind: EnsembleFitResult['split'];
  train: Uint32Array;
  holdout: Uint32Array;
}

/** Holdout rows: min(⌊ratio·n⌋, maxHoldout), drawn as whole episodes when ids are given (at least one episode stays for training). */
function holdoutSplit(n: number, ids: ArrayLike<number> | undefined, cfg: EnsembleFitConfig, rng: Rng): Split {
  const target = Math.min(Math.floor(cfg.holdoutRatio * n), cfg.maxHoldout, n - 1);
  if (target <= 0) return { kind: 'none', train: Uint32Array.from({ length: n }, (_, i) => i), holdout: new Uint32Array(0) };
  const inHoldout = new Uint8Array(n);
  let kind: Split['kind'] = 'rows';
  const episodes = new Map<number, number[]>();
  if (ids !== undefined) for (let r = 0; r < n; r++) (episodes.get(ids[r]) ?? episodes.set(ids[r], []).get(ids[r])!).push(r);
  if (episodes.size >= 2) {
    kind = 'episodes';
    const keys = rng.shuffle([...episodes.keys()]);
    let count = 0;
    for (let e = 0; e < keys.length - 1 && count < target; e++) {
      for (const r of episodes.get(keys[e])!) inHoldout[r] = 1;
      count += episodes.get(keys[e])!.length;
    }
  } else {
    const perm = rng.permutation(n);
    for (let i = 0; i < target; i++) inHoldout[perm[i]] = 1;
  }
  const holdout: number[] = [];
  const train: number[] = [];
  for (let r = 0; r < n; r++) (inHoldout[r] ? holdout : train).push(r);
  return { kind, train: Uint32Array.from(train), holdout: Uint32Array.from(holdout) };
}

interface ColumnStats {
  mean: Float32Array;
  std: Float32Array;
}

/** Per-column mean and population std over `rows` (float64); std < minStd becomes 1. */
function columnStats(a: Float32Array, width: number, rows: Uint32Array, minStd: number): ColumnStats {
  const mean = new Float64Array(width);
  const m2 = new Float64Array(width);
  for (const r of rows) for (let j = 0; j < width; j++) mean[j] += a[r * width + j];
  for (let j = 0; j < width; j++) mean[j] /= rows.length;
  for (const r of rows) {
    for (let j = 0; j < width; j++) {
      const d = a[r * width + j] - mean[j];
      m2[j] += d * d;
    }
  }
  const std = new Float32Array(width);
  for (let j = 0; j < width; j++) {
    const s = Math.sqrt(m2[j] / rows.length);
    std[j] = s < minStd ? 1 : s;
  }
  return { mean: Float32Array.from(mean), std };
}

/** (a[rows] − mean) / std, in a SharedArrayBuffer so worker lanes read it without a copy. */
function normalizedRows(a: Float32Array, width: number, rows: Uint32Array, s: ColumnStats): Float32Array {
  const out = new Float32Array(new SharedArrayBuffer(rows.length * width * 4));
  rows.forEach((r, i) => {
    for (let j = 0; j < width; j++) out[i * width + j] = (a[r * width + j] - s.mean[j]) / s.std[j];
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Parameters and Adam

/** Adam moments in the `EnsembleWeights` layout (per layer: [K·in·out] and [K·out]), plus the bounds'. */
interface OptimizerState {
  step: number;
  mW: Float32Array[];
  vW: Float32Array[];
  mB: Float32Array[];
  vB: Float32Array[];
  /** [maxLogvar (D), minLogvar (D)]. */
  boundM: Float32Array;
  boundV: Float32Array;
}

/** Adam moments per ensemble, carried from one fit to the next (mbrl-lib and MBPO keep one optimiser). */
const optimizerStates = new WeakMap<DynamicsEnsemble, OptimizerState>();

function freshOptimizerState(dims: [number, number][], K: number, D: number): OptimizerState {
  const w = (): Float32Array[] => dims.map(([i, o]) => new Float32Array(K * i * o));
  const b = (): Float32Array[] => dims.map(([, o]) => new Float32Array(K * o));
  return { step: 0, mW: w(), vW: w(), mB: b(), vB: b(), boundM: new Float32Array(2 * D), boundV: new Float32Array(2 * D) };
}

function copyOptimizerState(s: OptimizerState): OptimizerState {
  const copy = (a: Float32Array[]): Float32Array[] => a.map((x) => x.slice());
  return { step: s.step, mW: copy(s.mW), vW: copy(s.vW), mB: copy(s.mB), vB: copy(s.vB), boundM: s.boundM.slice(), boundV: s.boundV.slice() };
}

/**
 * One Adam step (PyTorch form, with the L2 term added to the gradient as torch.optim.Adam's
 * `weight_decay` and MBPO's loss term do) on `p` in place: g ← g + λp;
 * m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; p ← p − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε).
 */
function adamStep(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, decay: number, t: number, cfg: EnsembleFitConfig): void {
  const { adamBeta1: b1, adamBeta2: b2, adamEpsilon: eps } = cfg;
  const c1 = 1 - b1;
  const c2 = 1 - b2;
  const stepSize = cfg.learningRate / (1 - b1 ** t);
  const invBc2 = 1 / Math.sqrt(1 - b2 ** t);
  for (let i = 0; i < p.length; i++) {
    const pi = p[i];
    const gi = g[i] + decay * pi;
    const mi = b1 * m[i] + c1 * gi;
    const vi = b2 * v[i] + c2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - (stepSize * mi) / (Math.sqrt(vi) * invBc2 + eps);
  }
}

/** Adam on the shared log-variance bounds; `grad` is [∂max (D), ∂min (D)], `m`/`v` likewise. */
function adamUpdateBounds(
  maxLogvar: Float32Array,
  minLogvar: Float32Array,
  grad: Float64Array,
  m: Float32Array,
  v: Float32Array,
  t: number,
  cfg: EnsembleFitConfig,
): void {
  const D = maxLogvar.length;
  const p = new Float32Array(2 * D);
  p.set(maxLogvar, 0);
  p.set(minLogvar, D);
  adamStep(p, Float32Array.from(grad), m, v, 0, t, cfg);
  maxLogvar.set(p.subarray(0, D));
  minLogvar.set(p.subarray(D));
}

// ---------------------------------------------------------------------------------------------
// Engines

/** What an engine starts from (it owns these arrays). */
interface EngineInit {
  spec: EnsembleSpec;
  dims: [number, number][];
  /** Weights and biases in the `EnsembleWeights` layout. */
  weights: Float32Array[];
  biases: Float32Array[];
  state: OptimizerState;
  /** λ_l per layer. */
  decay: number[];
  cfg: EnsembleFitConfig;
  /** Normalised training rows (inputs, targets) and the rows members are scored on; SharedArrayBuffer-backed. */
  trainX: Float32Array;
  trainY: Float32Array;
  evalX: Float32Array;
  evalY: Float32Array;
}

/** One step's output, in member order. */
interface EngineStepOutput {
  /** Per member: its minibatch loss. */
  losses: Float64Array;
  /** Per member: [∂loss/∂maxLogvar (D), ∂loss/∂minLogvar (D)] (probabilistic only). */
  boundGrads: Float32Array;
}

/** What an engine hands back: each member's best weights and the Adam moments, in the `EnsembleWeights` layout. */
interface EngineResult {
  weights: Float32Array[];
  biases: Float32Array[];
  state: Pick<OptimizerState, 'mW' | 'vW' | 'mB' | 'vB'>;
}

/** Runs the training steps for every member: the loss, hand-written gradients and Adam (see the file comment). */
interface TrainEngine {
  readonly name: 'onnxruntime' | 'tfjs';
  readonly threads: number;
  readonly fallback?: string;
  /** One Adam step for every member, member k on the training rows `batches[k]` (all of one length). */
  step(batches: Uint32Array[], maxLogvar: Float32Array, minLogvar: Float32Array): Promise<EngineStepOutput>;
  /** Per member: MSE of its mean on the evaluation rows, averaged over rows and outputs. */
  evaluate(): Promise<Float64Array>;
  /** Keeps the current weights of these members as their best. */
  snapshot(members: number[]): Promise<void>;
  finish(): Promise<EngineResult>;
  dispose(): Promise<void>;
}

async function createEngine(init: EngineInit): Promise<TrainEngine> {
  const { cfg } = init;
  let fallback: string | undefined;
  if (cfg.engine !== 'tfjs') {
    try {
      return await OrtEngine.create(init, cfg.parallelism === 'auto' ? availableParallelism() : cfg.parallelism);
    } catch (err) {
      if (cfg.engine === 'onnxruntime') throw err;
      fallback = `onnxruntime did not start (${firstLine(err)}); trained on tfjs`;
    }
  }
  return TfjsEngine.create(init, fallback);
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0];
}

// ---------------------------------------------------------------------------------------------
// The onnxruntime engine

/**
 * All members' training step as one ONNX graph run by onnxruntime-node: batched MatMuls
 * [K, batch, in] × [K, in, out] (MLAS runs them as K GEMMs), the same hand-written backward pass
 * as `MemberKernel`, Adam in JavaScript. The parameter arrays are wrapped as tensors once and
 * updated in place; gradients land in pre-allocated outputs.
 */
class OrtEngine implements TrainEngine {
  readonly name = 'onnxruntime';
  readonly threads: number;
  #init: EngineInit;
  #train: ort.InferenceSession;
  #eval: ort.InferenceSession;
  #t: number;
  #bestW: Float32Array[];
  #bestB: Float32Array[];
  #params: Record<string, ort.Tensor>;
  #batches = new Map<number, { x: Float32Array; y: Float32Array; feeds: Record<string, ort.Tensor>; fetches: Record<string, ort.Tensor> }>();

  private constructor(init: EngineInit, threads: number, train: ort.InferenceSession, evaluate: ort.InferenceSession) {
    this.#init = init;
    this.threads = threads;
    this.#train = train;
    this.#eval = evaluate;
    this.#t = init.state.step;
    this.#bestW = init.weights.map((w) => w.slice());
    this.#bestB = init.biases.map((b) => b.slice());
    const K = init.spec.numMembers;
    this.#params = {};
    init.dims.forEach(([i, o], l) => {
      this.#params[`W${l}`] = new ort.Tensor('float32', init.weights[l], [K, i, o]);
      this.#params[`b${l}`] = new ort.Tensor('float32', init.biases[l], [K, 1, o]);
    });
  }

  static async create(init: EngineInit, threads: number): Promise<OrtEngine> {
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      // Spinning workers wait for the next op by busy-looping; on a shared 2-core machine (other
      // processes, the control loop) that made 2 threads 1.7× slower than 1. Without it, 2 threads
      // are never slower than 1.
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    };
    const train = await ort.InferenceSession.create(trainStepGraph(init.spec), options);
    try {
      return new OrtEngine(init, threads, train, await ort.InferenceSession.create(evalGraph(init.spec), options));
    } catch (err) {
      await train.release();
      throw err;
    }
  }

  async step(batches: Uint32Array[], maxLogvar: Float32Array, minLogvar: Float32Array): Promise<EngineStepOutput> {
    const { spec, dims, trainX, trainY, cfg, state, decay } = this.#init;
    const K = spec.numMembers;
    const D = outDimOf(spec);
    const inDim = dims[0][0];
    const b = batches[0].length;
    const buf = this.#batch(b);
    const { x, y } = buf;
    for (let k = 0; k < K; k++) {
      const idx = batches[k];
      for (let r = 0; r < b; r++) {
        // Plain loops: a subarray per row costs more than copying 20-odd floats.
        const src = idx[r];
        const row = k * b + r;
        for (let j = 0; j < inDim; j++) x[row * inDim + j] = trainX[src * inDim + j];
        for (let j = 0; j < D; j++) y[row * D + j] = trainY[src * D + j];
      }
    }
    const feeds = { ...buf.feeds, ...this.#params };
    if (spec.probabilistic) {
      feeds.max_logvar = new ort.Tensor('float32', maxLogvar, [D]);
      feeds.min_logvar = new ort.Tensor('float32', minLogvar, [D]);
    }
    await this.#train.run(feeds, buf.fetches);
    const f = buf.fetches;
    this.#t++;
    dims.forEach((_, l) => {
      adamStep(this.#init.weights[l], f[`dW${l}`].data as Float32Array, state.mW[l], state.vW[l], decay[l], this.#t, cfg);
      adamStep(this.#init.biases[l], f[`db${l}`].data as Float32Array, state.mB[l], state.vB[l], 0, this.#t, cfg);
    });
    const losses = Float64Array.from(f.loss.data as Float32Array);
    const boundGrads = new Float32Array(K * 2 * D);
    if (spec.probabilistic) {
      const dMax = f.dmax.data as Float32Array;
      const dMin = f.dmin.data as Float32Array;
      for (let k = 0; k < K; k++) {
        boundGrads.set(dMax.subarray(k * D, (k + 1) * D), k * 2 * D);
        boundGrads.set(dMin.subarray(k * D, (k + 1) * D), k * 2 * D + D);
      }
    }
    return { losses, boundGrads };
  }

  async evaluate(): Promise<Float64Array> {
    const { spec, dims, evalX, evalY } = this.#init;
    const K = spec.numMembers;
    const D = outDimOf(spec);
    const inDim = dims[0][0];
    const rows = evalX.length / inDim;
    const sse = new Float64Array(K);
    const chunk = 2048;
    for (let r0 = 0; r0 < rows; r0 += chunk) {
      const r1 = Math.min(rows, r0 + chunk);
      // slice() copies out of the SharedArrayBuffer into memory onnxruntime can wrap.
      const out = await this.#eval.run({
        x: new ort.Tensor('float32', evalX.slice(r0 * inDim, r1 * inDim), [1, r1 - r0, inDim]),
        y: new ort.Tensor('float32', evalY.slice(r0 * D, r1 * D), [1, r1 - r0, D]),
        ...this.#params,
      });
      const s = out.sse.data as Float32Array;
      for (let k = 0; k < K; k++) sse[k] += s[k];
    }
    return sse.map((v) => v / (rows * D));
  }

  async snapshot(members: number[]): Promise<void> {
    const { dims, weights, biases } = this.#init;
    for (const k of members) {
      dims.forEach(([i, o], l) => {
        this.#bestW[l].set(weights[l].subarray(k * i * o, (k + 1) * i * o), k * i * o);
        this.#bestB[l].set(biases[l].subarray(k * o, (k + 1) * o), k * o);
      });
    }
  }

  async finish(): Promise<EngineResult> {
    const { mW, vW, mB, vB } = this.#init.state;
    return { weights: this.#bestW, biases: this.#bestB, state: { mW, vW, mB, vB } };
  }

  async dispose(): Promise<void> {
    await Promise.allSettled([this.#train.release(), this.#eval.release()]);
  }

  /** Input buffers and pre-allocated outputs for minibatches of b rows per member. */
  #batch(b: number): { x: Float32Array; y: Float32Array; feeds: Record<string, ort.Tensor>; fetches: Record<string, ort.Tensor> } {
    const cached = this.#batches.get(b);
    if (cached !== undefined) return cached;
    const { spec, dims } = this.#init;
    const K = spec.numMembers;
    const D = outDimOf(spec);
    const inDim = dims[0][0];
    const x = new Float32Array(K * b * inDim);
    const y = new Float32Array(K * b * D);
    const feeds = {
      x: new ort.Tensor('float32', x, [K, b, inDim]),
      y: new ort.Tensor('float32', y, [K, b, D]),
      inv_batch: new ort.Tensor('float32', Float32Array.of(1 / b), [1]),
    };
    const fetches: Record<string, ort.Tensor> = { loss: new ort.Tensor('float32', new Float32Array(K), [K]) };
    dims.forEach(([i, o], l) => {
      fetches[`dW${l}`] = new ort.Tensor('float32', new Float32Array(K * i * o), [K, i, o]);
      fetches[`db${l}`] = new ort.Tensor('float32', new Float32Array(K * o), [K, 1, o]);
    });
    if (spec.probabilistic) {
      fetches.dmax = new ort.Tensor('float32', new Float32Array(K * D), [K, D]);
      fetches.dmin = new ort.Tensor('float32', new Float32Array(K * D), [K, D]);
    }
    const entry = { x, y, feeds, fetches };
    this.#batches.set(b, entry);
    return entry;
  }
}

/** The member forward pass in the graph: returns the hidden activations h_0 = x, h_1.., their activation aux (for act'), and the output. */
function graphForward(g: OnnxGraphBuilder, spec: EnsembleSpec, x: string): { hs: string[]; aux: string[]; out: string } {
  const dims = layerDimsOf(spec);
  const K = spec.numMembers;
  const zero = spec.activation === 'relu' ? g.addInitializer('zero', Float32Array.of(0), []) : '';
  const hs = [x];
  const aux: string[] = [];
  let h = x;
  dims.forEach(([i, o], l) => {
    const W = g.addInput(`W${l}`, 'float32', [K, i, o]);
    const b = g.addInput(`b${l}`, 'float32', [K, 1, o]);
    const z = g.op('Add', [g.op('MatMul', [h, W]), b]);
    if (l === dims.length - 1) {
      h = z;
      return;
    }
    if (spec.activation === 'silu') {
      const s = g.op('Sigmoid', [z]);
      h = g.op('Mul', [z, s]);
      aux.push(s);
    } else if (spec.activation === 'relu') {
      h = g.op('Relu', [z]);
      aux.push(g.op('Cast', [g.op('Greater', [z, zero])], { to: attr.int(1) })); // 1 = FLOAT
    } else {
      h = g.op('Tanh', [z]);
      aux.push(h);
    }
    hs.push(h);
  });
  return { hs, aux, out: h };
}

/**
 * @internal
 * The training step as an ONNX graph, the math of `MemberKernel` for all K members at once.
 * Inputs: x [K, batch, in], y [K, batch, D], inv_batch [1] (= 1/batch), W_l [K, in, out],
 * b_l [K, 1, out], and max_logvar, min_logvar [D] when probabilistic.
 * Outputs: loss [K], dW_l, db_l (the parameters' shapes), and dmax, dmin [K, D] when probabilistic.
 */
export function trainStepGraph(spec: EnsembleSpec): Uint8Array {
  const dims = layerDimsOf(spec);
  const K = spec.numMembers;
  const D = outDimOf(spec);
  const L = dims.length;
  const g = new OnnxGraphBuilder({ graphName: 'ensemble_train_step' });
  const scalar = (name: string, v: number): string => g.addInitializer(name, Float32Array.of(v), []);
  const axes = (name: string, v: number[]): string => g.addInitializer(name, v, [v.length]);
  const reduceSum = (x: string, ax: string, keep: number, output?: string): string => g.op('ReduceSum', [x, ax], { keepdims: attr.int(keep) }, output);
  const x = g.addInput('x', 'float32', [K, 'batch', dims[0][0]]);
  const y = g.addInput('y', 'float32', [K, 'batch', D]);
  const invB = g.addInput('inv_batch', 'float32', [1]);
  const { hs, aux, out } = graphForward(g, spec, x);
  const rowsAndOutputs = axes('axes_rows_outputs', [1, 2]);
  const rows = axes('axes_rows', [1]);
  let dz: string;
  if (spec.probabilistic) {
    const maxL = g.addInput('max_logvar', 'float32', [D]);
    const minL = g.addInput('min_logvar', 'float32', [D]);
    const [mean, raw] = g.addNode('Split', [out, axes('split_mean_logvar', [D, D])], { outputs: 2, attributes: { axis: attr.int(2) } });
    const t1 = g.op('Sub', [maxL, raw]);
    const upper = g.op('Sub', [maxL, g.op('Softplus', [t1])]);
    const t2 = g.op('Sub', [upper, minL]);
    const lv = g.op('Add', [minL, g.op('Softplus', [t2])]);
    const e = g.op('Sub', [mean, y]);
    const iv = g.op('Exp', [g.op('Neg', [lv])]);
    const e2iv = g.op('Mul', [g.op('Mul', [e, e]), iv]);
    g.op('Mul', [reduceSum(g.op('Add', [e2iv, lv]), rowsAndOutputs, 0), invB], undefined, 'loss');
    const dMean = g.op('Mul', [g.op('Mul', [e, iv]), g.op('Mul', [invB, scalar('two', 2)])]);
    const dLv = g.op('Mul', [g.op('Sub', [scalar('one', 1), e2iv]), invB]);
    const dUpper = g.op('Mul', [dLv, g.op('Sigmoid', [t2])]);
    const dRaw = g.op('Mul', [dUpper, g.op('Sigmoid', [t1])]);
    reduceSum(g.op('Sub', [dUpper, dRaw]), rows, 0, 'dmax');
    reduceSum(g.op('Sub', [dLv, dUpper]), rows, 0, 'dmin');
    dz = g.op('Concat', [dMean, dRaw], { axis: attr.int(2) });
  } else {
    const e = g.op('Sub', [out, y]);
    g.op('Mul', [reduceSum(g.op('Mul', [e, e]), rowsAndOutputs, 0), invB], undefined, 'loss');
    dz = g.op('Mul', [e, g.op('Mul', [invB, scalar('two', 2)])]);
  }
  const transpose = (t: string): string => g.op('Transpose', [t], { perm: attr.ints([0, 2, 1]) });
  for (let l = L - 1; l >= 0; l--) {
    g.op('MatMul', [transpose(hs[l]), dz], undefined, `dW${l}`);
    reduceSum(dz, rows, 1, `db${l}`);
    if (l > 0) {
      const dh = g.op('MatMul', [dz, transpose(`W${l}`)]);
      const a = aux[l - 1];
      const h = hs[l];
      if (spec.activation === 'silu') dz = g.op('Mul', [dh, g.op('Add', [g.op('Sub', [h, g.op('Mul', [h, a])]), a])]);
      else if (spec.activation === 'relu') dz = g.op('Mul', [dh, a]);
      else dz = g.op('Mul', [dh, g.op('Sub', [scalar(`one_${l}`, 1), g.op('Mul', [h, h])])]);
    }
  }
  g.addOutput('loss', 'float32', [K]);
  dims.forEach(([i, o], l) => {
    g.addOutput(`dW${l}`, 'float32', [K, i, o]);
    g.addOutput(`db${l}`, 'float32', [K, 1, o]);
  });
  if (spec.probabilistic) {
    g.addOutput('dmax', 'float32', [K, D]);
    g.addOutput('dmin', 'float32', [K, D]);
  }
  return g.encodeModel();
}

/** Per member, the sum of squared errors of its mean on shared rows: x [1, n, in], y [1, n, D] → sse [K]. */
function evalGraph(spec: EnsembleSpec): Uint8Array {
  const K = spec.numMembers;
  const D = outDimOf(spec);
  const g = new OnnxGraphBuilder({ graphName: 'ensemble_holdout_sse' });
  const x = g.addInput('x', 'float32', [1, 'n', spec.obsDim + spec.actDim]);
  const y = g.addInput('y', 'float32', [1, 'n', D]);
  let { out } = graphForward(g, spec, x);
  if (spec.probabilistic) {
    [out] = g.addNode('Split', [out, g.addInitializer('split_mean_logvar', [D, D], [2])], { outputs: 2, attributes: { axis: attr.int(2) } });
  }
  const e = g.op('Sub', [out, y]);
  g.op('ReduceSum', [g.op('Mul', [e, e]), g.addInitializer('axes_rows_outputs', [1, 2], [2])], { keepdims: attr.int(0) }, 'sse');
  g.addOutput('sse', 'float32', [K]);
  return g.encodeModel();
}

// ---------------------------------------------------------------------------------------------
// The per-lane training kernel

/** @internal What a lane needs to train its members. */
export interface KernelInit {
  /** Layer widths [in, hidden..., outWidth]. */
  dims: number[];
  /** D: outputs per member mean. */
  outDim: number;
  probabilistic: boolean;
  activation: EnsembleSpec['activation'];
  /** Global member indices trained by this lane. */
  members: number[];
  /** Per member: flat parameters [W_0, b_0, W_1, b_1, ...] (owned by the kernel). */
  params: Float32Array[];
  adamM: Float32Array[];
  adamV: Float32Array[];
  adamStep: number;
  /** L2 coefficient per parameter. */
  decay: Float32Array;
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  /** Normalised training rows (inputs, targets) and the rows members are scored on. */
  trainX: Float32Array;
  trainY: Float32Array;
  evalX: Float32Array;
  evalY: Float32Array;
}

/** @internal One training step's output of a lane. */
export interface StepOutput {
  /** Per member of the lane: the minibatch loss. */
  losses: Float64Array;
  /** Per member of the lane: [∂loss/∂maxLogvar (D), ∂loss/∂minLogvar (D)]. */
  boundGrads: Float32Array;
}

/** @internal A lane's final state. */
export interface KernelResult {
  /** Per member: its best parameters (or its last, when it never improved). */
  params: Float32Array[];
  adamM: Float32Array[];
  adamV: Float32Array[];
}

// Type-only aliases: erased at compile time, so `MemberKernel` can use them and still run from its source text.
type Tf = typeof tf;
type Tensor = tf.Tensor;
type Tensor1D = tf.Tensor1D;
type Tensor2D = tf.Tensor2D;

/**
 * @internal
 * Trains some members: hand-written forward and backward passes with plain 2-D matMuls (the fast
 * tfjs-wasm path; see the file comment) and Adam in JavaScript.
 *
 * It is also run in worker threads from its source text (`MemberKernel.toString()`), so it must
 * not refer to anything outside its own body: no imports, no module-level helpers or constants.
 * `tf` is passed in.
 *
 * Backward pass for one member, n rows (σ = sigmoid, ⊙ = elementwise):
 *   out = [mean, raw];  upper = maxL − softplus(maxL − raw);  lv = minL + softplus(upper − minL)
 *   loss = Σ [(mean − y)² e^{−lv} + lv] / n
 *   ∂mean = 2 (mean − y) e^{−lv} / n;   ∂lv = (1 − (mean − y)² e^{−lv}) / n
 *   ∂upper = ∂lv ⊙ σ(upper − minL);      ∂minL = Σ_rows (∂lv − ∂upper)
 *   ∂raw = ∂upper ⊙ σ(maxL − raw);       ∂maxL = Σ_rows (∂upper − ∂raw)
 *   per layer l (top down): ∂W_l = h_{l−1}ᵀ ∂z_l, ∂b_l = Σ_rows ∂z_l, ∂h_{l−1} = ∂z_l W_lᵀ,
 *   ∂z = ∂h ⊙ act'(z) with silu'(z) = σ(z) + h (1 − σ(z)), relu'(z) = [z > 0], tanh'(z) = 1 − h².
 */
export class MemberKernel {
  #tf: Tf;
  #dims: number[];
  #D: number;
  #probabilistic: boolean;
  #activation: EnsembleSpec['activation'];
  readonly members: number[];
  #params: Float32Array[];
  #m: Float32Array[];
  #v: Float32Array[];
  #best: (Float32Array | null)[];
  #t: number;
  #decay: Float32Array;
  #lr: number;
  #b1: number;
  #b2: number;
  #eps: number;
  #trainX: Float32Array;
  #trainY: Float32Array;
  #evalX: Float32Array;
  #evalY: Float32Array;
  #grad: Float32Array;

  constructor(tfjs: Tf, init: KernelInit) {
    this.#tf = tfjs;
    this.#dims = init.dims;
    this.#D = init.outDim;
    this.#probabilistic = init.probabilistic;
    this.#activation = init.activation;
    this.members = init.members;
    this.#params = init.params;
    this.#m = init.adamM;
    this.#v = init.adamV;
    this.#best = init.params.map(() => null);
    this.#t = init.adamStep;
    this.#decay = init.decay;
    this.#lr = init.learningRate;
    this.#b1 = init.beta1;
    this.#b2 = init.beta2;
    this.#eps = init.epsilon;
    this.#trainX = init.trainX;
    this.#trainY = init.trainY;
    this.#evalX = init.evalX;
    this.#evalY = init.evalY;
    this.#grad = new Float32Array(init.decay.length);
  }

  /** One Adam step for every member of the lane, each on its own minibatch (row indices into the training rows). */
  step(batches: Uint32Array[], maxLogvar: Float32Array, minLogvar: Float32Array): StepOutput {
    const D = this.#D;
    const losses = new Float64Array(this.members.length);
    const boundGrads = new Float32Array(this.members.length * 2 * D);
    this.#t++;
    for (let j = 0; j < this.members.length; j++) {
      const g = this.gradients(j, batches[j], maxLogvar, minLogvar, this.#grad);
      losses[j] = g.loss;
      boundGrads.set(g.boundGrad, j * 2 * D);
      this.#adam(j);
    }
    return { losses, boundGrads };
  }

  /**
   * Loss and gradient (written into `grad`, the member's flat layout, without weight decay) of
   * local member j on the training rows `idx`; `boundGrad` is [∂maxLogvar, ∂minLogvar].
   */
  gradients(
    j: number,
    idx: Uint32Array,
    maxLogvar: Float32Array,
    minLogvar: Float32Array,
    grad: Float32Array,
  ): { loss: number; grad: Float32Array; boundGrad: Float32Array } {
    const tf = this.#tf;
    const dims = this.#dims;
    const L = dims.length - 1;
    const D = this.#D;
    const inDim = dims[0];
    const n = idx.length;
    const xb = new Float32Array(n * inDim);
    const yb = new Float32Array(n * D);
    const trainX = this.#trainX;
    const trainY = this.#trainY;
    for (let r = 0; r < n; r++) {
      const i = idx[r];
      for (let j = 0; j < inDim; j++) xb[r * inDim + j] = trainX[i * inDim + j];
      for (let j = 0; j < D; j++) yb[r * D + j] = trainY[i * D + j];
    }
    const p = this.#params[j];
    const act = this.#activation;
    const probabilistic = this.#probabilistic;
    const outs = tf.tidy(() => {
      const x = tf.tensor2d(xb, [n, inDim]);
      const y = tf.tensor2d(yb, [n, D]);
      const W: Tensor2D[] = [];
      const b: Tensor1D[] = [];
      let off = 0;
      for (let l = 0; l < L; l++) {
        const size = dims[l] * dims[l + 1];
        W.push(tf.tensor2d(p.subarray(off, off + size), [dims[l], dims[l + 1]]));
        off += size;
        b.push(tf.tensor1d(p.subarray(off, off + dims[l + 1])));
        off += dims[l + 1];
      }
      const hs: Tensor2D[] = [x];
      const aux: Tensor2D[] = [];
      let h = x;
      for (let l = 0; l < L - 1; l++) {
        const z = tf.fused.matMul({ a: h, b: W[l], bias: b[l] }) as Tensor2D;
        if (act === 'silu') {
          const s = tf.sigmoid(z);
          h = tf.mul<Tensor2D>(z, s);
          aux.push(s);
        } else if (act === 'relu') {
          h = tf.relu(z);
          aux.push(tf.step(z) as Tensor2D);
        } else {
          h = tf.tanh(z);
          aux.push(h);
        }
        hs.push(h);
      }
      const o = tf.fused.matMul({ a: h, b: W[L - 1], bias: b[L - 1] }) as Tensor2D;
      let loss: Tensor;
      let dz: Tensor2D;
      const bound: Tensor[] = [];
      if (probabilistic) {
        const maxT = tf.tensor1d(maxLogvar);
        const minT = tf.tensor1d(minLogvar);
        const mean = tf.slice(o, [0, 0], [n, D]);
        const raw = tf.slice(o, [0, D], [n, D]);
        const t1 = tf.sub(maxT, raw);
        const upper = tf.sub(maxT, tf.softplus(t1));
        const t2 = tf.sub(upper, minT);
        const lv = tf.add(minT, tf.softplus(t2));
        const e = tf.sub(mean, y);
        const iv = tf.exp(tf.neg(lv));
        const e2iv = tf.mul(tf.square(e), iv);
        loss = tf.div(tf.sum(tf.add(e2iv, lv)), n);
        const dMean = tf.mul(tf.mul(e, iv), 2 / n);
        const dLv = tf.div(tf.sub(1, e2iv), n);
        const dUpper = tf.mul(dLv, tf.sigmoid(t2));
        const dRaw = tf.mul(dUpper, tf.sigmoid(t1));
        bound.push(tf.sum(tf.sub(dUpper, dRaw), 0), tf.sum(tf.sub(dLv, dUpper), 0));
        dz = tf.concat([dMean, dRaw], 1) as Tensor2D;
      } else {
        const e = tf.sub(o, y);
        loss = tf.div(tf.sum(tf.square(e)), n);
        dz = tf.mul(e, 2 / n);
      }
      const grads: Tensor[] = new Array(2 * L);
      for (let l = L - 1; l >= 0; l--) {
        // Explicit transposes: tfjs-wasm's transposed matMul kernels are ~10× slower than a transpose + plain matMul.
        grads[2 * l] = tf.matMul(tf.transpose(hs[l]), dz);
        grads[2 * l + 1] = tf.sum(dz, 0);
        if (l > 0) {
          const dh = tf.matMul(dz, tf.transpose(W[l]));
          const a = aux[l - 1];
          if (act === 'silu') dz = tf.mul(dh, tf.add(tf.sub(hs[l], tf.mul(hs[l], a)), a));
          else if (act === 'relu') dz = tf.mul(dh, a);
          else dz = tf.mul(dh, tf.sub(1, tf.square(a)));
        }
      }
      return [loss, ...grads, ...bound];
    });
    let off = 0;
    for (let l = 0; l < 2 * L; l++) {
      const g = outs[1 + l].dataSync() as Float32Array;
      grad.set(g, off);
      off += g.length;
    }
    const loss = outs[0].dataSync()[0];
    const boundGrad = new Float32Array(2 * D);
    if (probabilistic) {
      boundGrad.set(outs[1 + 2 * L].dataSync() as Float32Array, 0);
      boundGrad.set(outs[2 + 2 * L].dataSync() as Float32Array, D);
    }
    for (const t of outs) t.dispose();
    return { loss, grad, boundGrad };
  }

  /** Per member of the lane: MSE of its mean on the evaluation rows (normalised targets), averaged over rows and outputs. */
  evaluate(): Float64Array {
    const tf = this.#tf;
    const dims = this.#dims;
    const L = dims.length - 1;
    const D = this.#D;
    const inDim = dims[0];
    const rows = this.#evalX.length / inDim;
    const chunk = 2048;
    const out = new Float64Array(this.members.length);
    for (let j = 0; j < this.members.length; j++) {
      const p = this.#params[j];
      const params = tf.tidy(() => {
        const ts: Tensor[] = [];
        let off = 0;
        for (let l = 0; l < L; l++) {
          const size = dims[l] * dims[l + 1];
          ts.push(tf.tensor2d(p.subarray(off, off + size), [dims[l], dims[l + 1]]));
          off += size;
          ts.push(tf.tensor1d(p.subarray(off, off + dims[l + 1])));
          off += dims[l + 1];
        }
        return ts;
      });
      let sum = 0;
      for (let r0 = 0; r0 < rows; r0 += chunk) {
        const r1 = Math.min(rows, r0 + chunk);
        const se = tf.tidy(() => {
          let h = tf.tensor2d(this.#evalX.subarray(r0 * inDim, r1 * inDim), [r1 - r0, inDim]);
          for (let l = 0; l < L; l++) {
            const z = tf.fused.matMul({ a: h, b: params[2 * l] as Tensor2D, bias: params[2 * l + 1] }) as Tensor2D;
            if (l === L - 1) h = z;
            else if (this.#activation === 'silu') h = tf.mul<Tensor2D>(z, tf.sigmoid(z));
            else if (this.#activation === 'relu') h = tf.relu(z);
            else h = tf.tanh(z);
          }
          const mean = tf.slice(h, [0, 0], [r1 - r0, D]);
          return tf.sum(tf.square(tf.sub(mean, tf.tensor2d(this.#evalY.subarray(r0 * D, r1 * D), [r1 - r0, D]))));
        });
        sum += se.dataSync()[0];
        se.dispose();
      }
      for (const t of params) t.dispose();
      out[j] = sum / (rows * D);
    }
    return out;
  }

  /** Keeps a copy of the current parameters of these (global) members as their best. */
  snapshot(members: number[]): void {
    for (const k of members) {
      const j = this.members.indexOf(k);
      this.#best[j] = this.#params[j].slice();
    }
  }

  /** Each member's best parameters (its last when it never improved) and the Adam moments. */
  finish(): KernelResult {
    return {
      params: this.#params.map((p, j) => this.#best[j] ?? p),
      adamM: this.#m,
      adamV: this.#v,
    };
  }

  /** Nothing to release: tensors live only within calls. */
  dispose(): void {
    this.#best = this.#best.map(() => null);
  }

  /** Adam (PyTorch form, L2 added to the gradient as torch.optim.Adam's weight_decay does) on local member j. */
  #adam(j: number): void {
    const p = this.#params[j];
    const m = this.#m[j];
    const v = this.#v[j];
    const g = this.#grad;
    const decay = this.#decay;
    const b1 = this.#b1;
    const b2 = this.#b2;
    const c1 = 1 - b1;
    const c2 = 1 - b2;
    const stepSize = this.#lr / (1 - b1 ** this.#t);
    const invBc2 = 1 / Math.sqrt(1 - b2 ** this.#t);
    const eps = this.#eps;
    for (let i = 0; i < p.length; i++) {
      const pi = p[i];
      const gi = g[i] + decay[i] * pi;
      const mi = b1 * m[i] + c1 * gi;
      const vi = b2 * v[i] + c2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      p[i] = pi - (stepSize * mi) / (Math.sqrt(vi) * invBc2 + eps);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The tfjs engine: members in lanes

/**
 * Members spread over lanes: the calling thread (the smallest share, since it also coordinates)
 * and worker threads, each running a `MemberKernel` on its own tfjs backend.
 */
class TfjsEngine implements TrainEngine {
  readonly name = 'tfjs';
  readonly threads: number;
  readonly fallback?: string;
  #init: EngineInit;
  #layout: ParamLayout;
  #groups: number[][];
  #local: MemberKernel;
  #remote: RemoteKernel[];
  #acquired: boolean;

  private constructor(init: EngineInit, layout: ParamLayout, groups: number[][], local: MemberKernel, remote: RemoteKernel[], acquired: boolean, fallback?: string) {
    this.#init = init;
    this.#layout = layout;
    this.#groups = groups;
    this.#local = local;
    this.#remote = remote;
    this.#acquired = acquired;
    this.threads = groups.length;
    if (fallback !== undefined) this.fallback = fallback;
  }

  static async create(init: EngineInit, fallback?: string): Promise<TfjsEngine> {
    const { spec, dims, state, cfg } = init;
    const K = spec.numMembers;
    const layout = paramLayout(dims);
    const decay = decayVector(dims, init.decay, layout.size);
    const kernelInit = (members: number[]): KernelInit => ({
      dims: [dims[0][0], ...dims.map(([, o]) => o)],
      outDim: outDimOf(spec),
      probabilistic: spec.probabilistic,
      activation: spec.activation,
      members,
      params: members.map((k) => packMember(init.weights, init.biases, dims, layout, k)),
      adamM: members.map((k) => packMember(state.mW, state.mB, dims, layout, k)),
      adamV: members.map((k) => packMember(state.vW, state.vB, dims, layout, k)),
      adamStep: state.step,
      decay,
      learningRate: cfg.learningRate,
      beta1: cfg.adamBeta1,
      beta2: cfg.adamBeta2,
      epsilon: cfg.adamEpsilon,
      trainX: init.trainX,
      trainY: init.trainY,
      evalX: init.evalX,
      evalY: init.evalY,
    });
    let groups = memberGroups(K, tfjsLanes(cfg.parallelism, K));
    const remote: RemoteKernel[] = [];
    let acquired = false;
    if (groups.length > 1) {
      try {
        const workers = acquireWorkers(groups.length - 1);
        acquired = true;
        for (let i = 1; i < groups.length; i++) remote.push(await RemoteKernel.create(workers[i - 1], kernelInit(groups[i])));
      } catch (err) {
        await Promise.allSettled(remote.splice(0).map((r) => r.dispose()));
        if (acquired) releaseWorkers();
        acquired = false;
        // 'auto' degrades to the calling thread (e.g. where worker threads cannot load tfjs); an explicit request fails.
        if (cfg.parallelism !== 'auto') throw err;
        fallback = [fallback, `worker lanes did not start (${firstLine(err)}); trained on the calling thread`].filter((s) => s !== undefined).join('; ');
        groups = memberGroups(K, 1);
      }
    }
    return new TfjsEngine(init, layout, groups, new MemberKernel(tf, kernelInit(groups[0])), remote, acquired, fallback);
  }

  async step(batches: Uint32Array[], maxLogvar: Float32Array, minLogvar: Float32Array): Promise<EngineStepOutput> {
    // Post the remote lanes' work first so they run while this thread computes its share.
    const pending = this.#remote.map((r) => r.step(r.members.map((k) => batches[k].slice()), maxLogvar, minLogvar));
    const outs = [this.#local.step(this.#groups[0].map((k) => batches[k]), maxLogvar, minLogvar), ...(await Promise.all(pending))];
    const K = this.#init.spec.numMembers;
    const width = 2 * outDimOf(this.#init.spec);
    const losses = new Float64Array(K);
    const boundGrads = new Float32Array(K * width);
    this.#groups.forEach((g, lane) =>
      g.forEach((k, j) => {
        losses[k] = outs[lane].losses[j];
        boundGrads.set(outs[lane].boundGrads.subarray(j * width, (j + 1) * width), k * width);
      }),
    );
    return { losses, boundGrads };
  }

  async evaluate(): Promise<Float64Array> {
    const pending = this.#remote.map((r) => r.evaluate());
    const outs = [this.#local.evaluate(), ...(await Promise.all(pending))];
    const mse = new Float64Array(this.#init.spec.numMembers);
    this.#groups.forEach((g, lane) => g.forEach((k, j) => (mse[k] = outs[lane][j])));
    return mse;
  }

  async snapshot(members: number[]): Promise<void> {
    this.#local.snapshot(members.filter((k) => this.#groups[0].includes(k)));
    await Promise.all(this.#remote.map((r) => r.snapshot(members.filter((k) => r.members.includes(k)))));
  }

  async finish(): Promise<EngineResult> {
    const finals = [this.#local.finish(), ...(await Promise.all(this.#remote.map((r) => r.finish())))];
    const { dims, spec } = this.#init;
    const K = spec.numMembers;
    const w = (): Float32Array[] => dims.map(([i, o]) => new Float32Array(K * i * o));
    const b = (): Float32Array[] => dims.map(([, o]) => new Float32Array(K * o));
    const out: EngineResult = { weights: w(), biases: b(), state: { mW: w(), vW: w(), mB: b(), vB: b() } };
    this.#groups.forEach((g, lane) =>
      g.forEach((k, j) => {
        unpackMember(finals[lane].params[j], out.weights, out.biases, dims, this.#layout, k);
        unpackMember(finals[lane].adamM[j], out.state.mW, out.state.mB, dims, this.#layout, k);
        unpackMember(finals[lane].adamV[j], out.state.vW, out.state.vB, dims, this.#layout, k);
      }),
    );
    return out;
  }

  async dispose(): Promise<void> {
    this.#local.dispose();
    await Promise.allSettled(this.#remote.map((r) => r.dispose()));
    if (this.#acquired) releaseWorkers();
    this.#acquired = false;
  }
}

/** Offsets of W_l and b_l in a member's flat parameter vector [W_0, b_0, W_1, b_1, ...]. */
interface ParamLayout {
  wOffset: number[];
  bOffset: number[];
  size: number;
}

function paramLayout(dims: [number, number][]): ParamLayout {
  const wOffset: number[] = [];
  const bOffset: number[] = [];
  let off = 0;
  for (const [i, o] of dims) {
    wOffset.push(off);
    off += i * o;
    bOffset.push(off);
    off += o;
  }
  return { wOffset, bOffset, size: off };
}

/** Member k's slice of per-layer arrays in the `EnsembleWeights` layout, as one flat vector. */
function packMember(ws: Float32Array[], bs: Float32Array[], dims: [number, number][], layout: ParamLayout, k: number): Float32Array {
  const p = new Float32Array(layout.size);
  dims.forEach(([i, o], l) => {
    p.set(ws[l].subarray(k * i * o, (k + 1) * i * o), layout.wOffset[l]);
    p.set(bs[l].subarray(k * o, (k + 1) * o), layout.bOffset[l]);
  });
  return p;
}

function unpackMember(p: Float32Array, ws: Float32Array[], bs: Float32Array[], dims: [number, number][], layout: ParamLayout, k: number): void {
  dims.forEach(([i, o], l) => {
    ws[l].set(p.subarray(layout.wOffset[l], layout.wOffset[l] + i * o), k * i * o);
    bs[l].set(p.subarray(layout.bOffset[l], layout.bOffset[l] + o), k * o);
  });
}

/** λ_l for every weight of layer l, 0 for biases: the L2 term's gradient is decay ⊙ params. */
function decayVector(dims: [number, number][], decay: number[], size: number): Float32Array {
  const d = new Float32Array(size);
  const layout = paramLayout(dims);
  dims.forEach(([i, o], l) => d.fill(decay[l], layout.wOffset[l], layout.wOffset[l] + i * o));
  return d;
}

// ---------------------------------------------------------------------------------------------
// Lanes in worker threads

/** Lanes for the tfjs engine: `parallelism`, or for 'auto' one per core (one on the already multi-threaded `tensorflow` backend). */
function tfjsLanes(p: EnsembleFitConfig['parallelism'], K: number): number {
  if (p !== 'auto') return Math.min(p, K);
  if (tf.getBackend() === 'tensorflow') return 1;
  return Math.max(1, Math.min(availableParallelism(), K));
}

/** Contiguous member groups, the smallest first (the calling thread, which also coordinates, takes it). */
function memberGroups(K: number, lanes: number): number[][] {
  const groups: number[][] = [];
  const base = Math.floor(K / lanes);
  const extra = K % lanes;
  let k = 0;
  for (let i = 0; i < lanes; i++) {
    const size = base + (i >= lanes - extra ? 1 : 0);
    groups.push(Array.from({ length: size }, () => k++));
  }
  return groups;
}

interface PooledWorker {
  worker: Worker;
  pending: Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>;
  nextId: number;
  dead: Error | null;
}

const pool: PooledWorker[] = [];
let activeFits = 0;

/** The worker program: loads tfjs and the backend the caller runs on, then serves `MemberKernel` calls. */
function workerSource(): string {
  return `'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const tf = require(workerData.tfPath);
if (workerData.backendPath) require(workerData.backendPath);
const MemberKernel = (${MemberKernel.toString()});
const kernels = new Map();
const ready = tf.setBackend(workerData.backend).then((ok) => {
  if (!ok) throw new Error('tfjs backend ' + workerData.backend + ' did not start in the worker');
  return tf.ready();
});
function transferables(value, out) {
  if (value === null || typeof value !== 'object') return out;
  if (ArrayBuffer.isView(value)) { if (value.buffer instanceof ArrayBuffer && !out.includes(value.buffer)) out.push(value.buffer); return out; }
  for (const v of Object.values(value)) transferables(v, out);
  return out;
}
parentPort.on('message', (msg) => {
  ready.then(() => {
    let result = null;
    if (msg.method === 'create') kernels.set(msg.handle, new MemberKernel(tf, msg.args[0]));
    else if (msg.method === 'dispose') { const k = kernels.get(msg.handle); if (k) k.dispose(); kernels.delete(msg.handle); }
    else result = kernels.get(msg.handle)[msg.method](...msg.args);
    parentPort.postMessage({ id: msg.id, result }, transferables(result, []));
  }).catch((err) => parentPort.postMessage({ id: msg.id, error: String((err && err.stack) || err) }));
});`;
}

function spawnWorker(): PooledWorker {
  const require = createRequire(import.meta.url);
  const backend = tf.getBackend();
  const backendPath = backend === 'wasm' ? require.resolve('@tensorflow/tfjs-backend-wasm') : undefined;
  const worker = new Worker(workerSource(), {
    eval: true,
    workerData: { tfPath: require.resolve('@tensorflow/tfjs'), backendPath, backend },
  });
  const pw: PooledWorker = { worker, pending: new Map(), nextId: 1, dead: null };
  const fail = (err: Error): void => {
    pw.dead = err;
    for (const p of pw.pending.values()) p.reject(err);
    pw.pending.clear();
    const i = pool.indexOf(pw);
    if (i >= 0) pool.splice(i, 1);
  };
  worker.on('message', (msg: { id: number; result?: unknown; error?: string }) => {
    const p = pw.pending.get(msg.id);
    if (p === undefined) return;
    pw.pending.delete(msg.id);
    if (msg.error !== undefined) p.reject(new Error(`ensemble worker: ${msg.error}`));
    else p.resolve(msg.result);
  });
  worker.on('error', (err) => fail(err instanceof Error ? err : new Error(String(err))));
  worker.on('exit', (code) => fail(new Error(`ensemble worker exited with code ${code}`)));
  return pw;
}

/** Worker threads for a fit, reused across fits (starting one with tfjs-wasm takes ~0.5 s). */
function acquireWorkers(count: number): PooledWorker[] {
  while (pool.length < count) pool.push(spawnWorker());
  activeFits++;
  const workers = pool.slice(0, count);
  for (const w of workers) w.worker.ref();
  return workers;
}

/** Lets the process exit while workers idle between fits. */
function releaseWorkers(): void {
  activeFits--;
  if (activeFits === 0) for (const w of pool) w.worker.unref();
}

/** Terminates the idle worker threads kept for later fits (e.g. before exiting a test or a CLI command). */
export async function shutdownEnsembleWorkers(): Promise<void> {
  const workers = pool.splice(0, pool.length);
  await Promise.all(workers.map((w) => w.worker.terminate()));
}

let nextHandle = 1;

/** A `MemberKernel` living in a worker thread. */
class RemoteKernel {
  readonly members: number[];
  #w: PooledWorker;
  #handle: number;

  private constructor(w: PooledWorker, handle: number, members: number[]) {
    this.#w = w;
    this.#handle = handle;
    this.members = members;
  }

  static async create(w: PooledWorker, init: KernelInit): Promise<RemoteKernel> {
    const handle = nextHandle++;
    const transfer = [...init.params, ...init.adamM, ...init.adamV].map((a) => a.buffer as ArrayBuffer);
    const r = new RemoteKernel(w, handle, init.members);
    await r.#call('create', [init], transfer);
    return r;
  }

  step(batches: Uint32Array[], maxLogvar: Float32Array, minLogvar: Float32Array): Promise<StepOutput> {
    return this.#call('step', [batches, maxLogvar, minLogvar], batches.map((b) => b.buffer as ArrayBuffer)) as Promise<StepOutput>;
  }

  evaluate(): Promise<Float64Array> {
    return this.#call('evaluate', []) as Promise<Float64Array>;
  }

  snapshot(members: number[]): Promise<void> {
    return members.length === 0 ? Promise.resolve() : (this.#call('snapshot', [members]) as Promise<void>);
  }

  finish(): Promise<KernelResult> {
    return this.#call('finish', []) as Promise<KernelResult>;
  }

  dispose(): Promise<unknown> {
    return this.#call('dispose', []);
  }

  #call(method: string, args: unknown[], transfer: ArrayBuffer[] = []): Promise<unknown> {
    const w = this.#w;
    if (w.dead !== null) return Promise.reject(w.dead);
    const id = w.nextId++;
    return new Promise((resolve, reject) => {
      w.pending.set(id, { resolve, reject });
      w.worker.postMessage({ id, handle: this.#handle, method, args }, transfer);
    });
  }
}
