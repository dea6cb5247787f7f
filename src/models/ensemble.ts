/**
 * The dynamics ensemble: K independently initialised MLPs that each predict the normalised change
 * of state (and reward) from the normalised state and action.
 *
 * - PETS: Chua, Calandra, McAllister & Levine 2018, "Deep Reinforcement Learning in a Handful of
 *   Trials using Probabilistic Dynamics Models", https://arxiv.org/abs/1805.12114 — probabilistic
 *   members (mean and log-variance, Gaussian NLL) with learned soft bounds on the log-variance.
 * - MBPO: Janner, Fu, Zhang & Levine 2019, "When to Trust Your Model: Model-Based Policy
 *   Optimization", https://arxiv.org/abs/1906.08253 — K = 7 members, 5 elites, 4 hidden layers of
 *   200 SiLU (swish) units, the defaults here.
 * - ME-TRPO (Kurutach et al. 2018, https://arxiv.org/abs/1802.10592) and MB-MPO (Clavera et al.
 *   2018, https://arxiv.org/abs/1809.05214) use deterministic members trained with MSE.
 *
 * This module holds the model (weights, normalisation statistics, elites) and its tfjs forward
 * pass; `trainer.ts` fits it. The weights live in plain float32 arrays in the `EnsembleWeights`
 * layout (src/models/types.ts), which is also what the ONNX fast path and checkpoints read.
 */
import * as tf from '@tensorflow/tfjs';
import { ValidationError, describe } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { checkEnsembleWeights, layerDimsOf } from './referenceForward.js';
import { outDimOf } from './types.js';
import type { EnsemblePredictor, EnsembleSpec, EnsembleWeights } from './types.js';

/** Architecture of a dynamics ensemble (the data dimensions come separately). */
export interface EnsembleConfig {
  /** Always `'dynamics-ensemble'`, so a saved config can be rebuilt from its JSON. */
  kind: 'dynamics-ensemble';
  /** Members K. MBPO: 7; PETS: 5; ME-TRPO/MB-MPO: 5. Default 7. */
  numMembers: number;
  /** Hidden layer widths. MBPO/PETS: [200, 200, 200, 200]. */
  hidden: number[];
  /** Hidden activation. MBPO/PETS: SiLU (swish). Default `'silu'`. */
  activation: EnsembleSpec['activation'];
  /** Gaussian members (mean + log-variance, NLL loss) or deterministic (mean, MSE). Default true. */
  probabilistic: boolean;
  /** Whether the model also predicts the reward (the last output). MBPO: true. Default true. */
  learnReward: boolean;
  /** Elites E: the members with the lowest holdout loss after a fit. MBPO: 5 of 7. Default 5 (at most K). */
  numElites: number;
  /** Initial upper soft bound of the normalised log-variance, per output (PETS: 0.5). Trained. */
  initMaxLogvar: number;
  /** Initial lower soft bound of the normalised log-variance, per output (PETS: −10). Trained. */
  initMinLogvar: number;
}

/** MBPO's ensemble (Janner et al. 2019, appendix C): 7 probabilistic members, 5 elites, 4 × 200 SiLU. */
export const ENSEMBLE_DEFAULTS = {
  kind: 'dynamics-ensemble',
  numMembers: 7,
  hidden: [200, 200, 200, 200],
  activation: 'silu',
  probabilistic: true,
  learnReward: true,
  numElites: 5,
  initMaxLogvar: 0.5,
  initMinLogvar: -10,
} as const satisfies EnsembleConfig;

/** Per-algorithm overrides of `ENSEMBLE_DEFAULTS`, with the papers' values. */
export const ENSEMBLE_PRESETS = {
  /** MBPO (Janner et al. 2019): the defaults. */
  mbpo: {},
  /** ME-TRPO (Kurutach et al. 2018): deterministic members trained with MSE, K = 5, all used. */
  meTrpo: { numMembers: 5, numElites: 5, probabilistic: false },
  /** MB-MPO (Clavera et al. 2018): deterministic members trained with MSE, K = 5, all used. */
  mbMpo: { numMembers: 5, numElites: 5, probabilistic: false },
} as const satisfies Record<string, Partial<EnsembleConfig>>;

/**
 * Merges `overrides` into `ENSEMBLE_DEFAULTS` and validates the result.
 * `numElites` defaults to min(5, numMembers).
 * @throws ValidationError naming the key, the bad value and what was expected
 */
export function makeEnsembleConfig(overrides: Partial<EnsembleConfig> = {}): EnsembleConfig {
  const where = 'makeEnsembleConfig';
  for (const key of Object.keys(overrides)) {
    if (!(key in ENSEMBLE_DEFAULTS)) throw new ValidationError(where, key, `unknown key; expected one of ${Object.keys(ENSEMBLE_DEFAULTS).join(', ')}`);
  }
  const numMembers = overrides.numMembers ?? ENSEMBLE_DEFAULTS.numMembers;
  const c: EnsembleConfig = {
    ...ENSEMBLE_DEFAULTS,
    numElites: Math.min(ENSEMBLE_DEFAULTS.numElites, Number.isInteger(numMembers) ? numMembers : 1),
    ...overrides,
    hidden: [...(overrides.hidden ?? ENSEMBLE_DEFAULTS.hidden)],
    kind: 'dynamics-ensemble',
  };
  const posInt = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v > 0;
  if (overrides.kind !== undefined && overrides.kind !== 'dynamics-ensemble') {
    throw new ValidationError(where, 'kind', `expected 'dynamics-ensemble', got ${describe(overrides.kind)}`);
  }
  if (!posInt(c.numMembers)) throw new ValidationError(where, 'numMembers', `expected a positive integer, got ${describe(c.numMembers)}`);
  if (!Array.isArray(c.hidden) || c.hidden.length === 0 || !c.hidden.every(posInt)) {
    throw new ValidationError(where, 'hidden', `expected a non-empty array of positive integers, got ${JSON.stringify(overrides.hidden)}`);
  }
  if (!['silu', 'relu', 'tanh'].includes(c.activation)) {
    throw new ValidationError(where, 'activation', `expected 'silu', 'relu' or 'tanh', got ${describe(c.activation)}`);
  }
  if (typeof c.probabilistic !== 'boolean') throw new ValidationError(where, 'probabilistic', `expected a boolean, got ${describe(c.probabilistic)}`);
  if (typeof c.learnReward !== 'boolean') throw new ValidationError(where, 'learnReward', `expected a boolean, got ${describe(c.learnReward)}`);
  if (!posInt(c.numElites) || c.numElites > c.numMembers) {
    throw new ValidationError(where, 'numElites', `expected an integer in [1, numMembers = ${c.numMembers}], got ${describe(c.numElites)}`);
  }
  if (!Number.isFinite(c.initMaxLogvar) || !Number.isFinite(c.initMinLogvar) || c.initMinLogvar >= c.initMaxLogvar) {
    throw new ValidationError(
      where,
      'initMinLogvar',
      `expected finite initMinLogvar < initMaxLogvar, got ${describe(c.initMinLogvar)} and ${describe(c.initMaxLogvar)}`,
    );
  }
  return c;
}

/** Options of `new DynamicsEnsemble`. */
export interface DynamicsEnsembleOptions {
  /** Observation dimension. */
  obsDim: number;
  /** Action dimension. */
  actDim: number;
  /** Seeds the initial weights. */
  rng: Rng;
  /** Architecture overrides of `ENSEMBLE_DEFAULTS`. */
  config?: Partial<EnsembleConfig>;
}

/** Output of `DynamicsEnsemble.forwardTf`, all on the grouped rows (member k: rows [k·B, (k+1)·B)). */
export interface EnsembleForward {
  /** Predicted mean next observation, raw units, K·B rows of obsDim. */
  nextObs: Float32Array;
  /** Predicted mean reward, K·B (when the reward is learned). */
  reward?: Float32Array;
  /** Predicted variance of [nextObs, reward?], raw units, K·B rows of outDim (probabilistic only). */
  variance?: Float32Array;
  /** The members' normalised mean outputs (before de-normalisation), K·B rows of outDim. */
  meanNormalized: Float32Array;
  /** The soft-bounded normalised log-variance, K·B rows of outDim (probabilistic only). */
  logvar?: Float32Array;
}

/**
 * K MLP members per `EnsembleSpec`, with the input/target normalisation statistics and the
 * elites. Members predict the normalised target [Δobs, reward?] from normalised [obs, act]; the
 * exact forward pass is the one documented on `EnsembleWeights`.
 *
 * Weights are initialised as mbrl-lib and MBPO do: truncated normal with std 1/(2√fan_in)
 * (cut at ±2 std), zero biases; normalisation is the identity until the first fit; the soft bounds
 * of the log-variance start at `initMaxLogvar` / `initMinLogvar` for every output.
 *
 * Fit it with `fitEnsemble` (trainer.ts). Implements `EnsemblePredictor` through tfjs; planners
 * should use the ONNX fast path (`OrtEnsemblePredictor.create(ensemble.toWeights())`).
 *
 * @example
 * await initBackend();
 * const ensemble = new DynamicsEnsemble({ obsDim: 17, actDim: 6, rng: new Rng(0) });
 * await fitEnsemble(ensemble, data, {}, new Rng(1));
 * const { nextObs, variance } = ensemble.forwardTf(obs, act, rowsPerMember);
 * ensemble.dispose();
 */
export class DynamicsEnsemble implements EnsemblePredictor {
  readonly spec: EnsembleSpec;
  readonly config: EnsembleConfig;
  #w: EnsembleWeights;
  #elites: number[];
  /** Per member, per layer [W, b] tensors for `forwardTf`, made on first use and dropped when the weights change. */
  #tensors: { W: tf.Tensor2D[]; b: tf.Tensor1D[] }[] | null = null;
  #disposed = false;

  constructor(options: DynamicsEnsembleOptions) {
    const where = 'DynamicsEnsemble';
    const { obsDim, actDim, rng } = options;
    if (!Number.isInteger(obsDim) || obsDim < 1) throw new ValidationError(where, 'obsDim', `expected a positive integer, got ${describe(obsDim)}`);
    if (!Number.isInteger(actDim) || actDim < 0) throw new ValidationError(where, 'actDim', `expected a non-negative integer, got ${describe(actDim)}`);
    this.config = makeEnsembleConfig(options.config);
    const c = this.config;
    this.spec = {
      numMembers: c.numMembers,
      obsDim,
      actDim,
      hidden: [...c.hidden],
      activation: c.activation,
      probabilistic: c.probabilistic,
      learnReward: c.learnReward,
    };
    this.#w = initialWeights(this.spec, c, rng);
    this.#elites = range(c.numElites);
  }

  /**
   * Rebuilds an ensemble from exported weights (copied). Architecture fields of the config come
   * from `w.spec`; `config` may set the rest (`numElites`, initial bounds).
   * @param elites member indices; default the first `numElites`
   */
  static fromWeights(w: EnsembleWeights, options: { config?: Partial<EnsembleConfig>; elites?: number[] } = {}): DynamicsEnsemble {
    checkEnsembleWeights(w, 'DynamicsEnsemble.fromWeights');
    const { spec } = w;
    const config: Partial<EnsembleConfig> = {
      ...options.config,
      numMembers: spec.numMembers,
      hidden: [...spec.hidden],
      activation: spec.activation,
      probabilistic: spec.probabilistic,
      learnReward: spec.learnReward,
    };
    if (options.config?.numElites === undefined) config.numElites = Math.min(ENSEMBLE_DEFAULTS.numElites, spec.numMembers);
    // The seed only draws initial weights, which setWeights replaces at once.
    const e = new DynamicsEnsemble({ obsDim: spec.obsDim, actDim: spec.actDim, rng: new Rng(0), config });
    e.setWeights(w);
    if (options.elites !== undefined) e.setElites(options.elites);
    return e;
  }

  /** Output width of one member's mean: obsDim, plus 1 when the reward is learned. */
  get outDim(): number {
    return outDimOf(this.spec);
  }

  /** The member indices used for prediction (lowest holdout loss after the last fit), ascending. */
  get elites(): readonly number[] {
    return this.#elites;
  }

  /** Sets the elites. @throws ValidationError on indices out of range or repeated */
  setElites(elites: readonly number[]): void {
    const K = this.spec.numMembers;
    const ok = elites.length > 0 && elites.every((k) => Number.isInteger(k) && k >= 0 && k < K) && new Set(elites).size === elites.length;
    if (!ok) throw new ValidationError('DynamicsEnsemble.setElites', 'elites', `expected distinct member indices in [0, ${K}), got [${elites.join(', ')}]`);
    this.#elites = [...elites].sort((a, b) => a - b);
  }

  /** The weights and statistics as plain float32 arrays (copies) in the `EnsembleWeights` layout. */
  toWeights(): EnsembleWeights {
    return copyWeights(this.#w);
  }

  /**
   * Replaces the weights and statistics (copied). The spec must equal this ensemble's.
   * @throws ValidationError naming the bad array
   */
  setWeights(w: EnsembleWeights): void {
    const where = 'DynamicsEnsemble.setWeights';
    this.#checkLive(where);
    checkEnsembleWeights(w, where);
    const a = JSON.stringify(specKey(w.spec));
    const b = JSON.stringify(specKey(this.spec));
    if (a !== b) throw new ValidationError(where, 'spec', `expected ${b}, got ${a}`);
    for (const field of ['inputStd', 'targetStd'] as const) {
      const s = w[field];
      for (let i = 0; i < s.length; i++) {
        if (!(s[i] > 0)) throw new ValidationError(where, `${field}[${i}]`, `expected a positive standard deviation, got ${s[i]}`);
      }
    }
    this.#w = copyWeights(w);
    this.#dropTensors();
  }

  /**
   * The forward pass in tfjs (one 2-D matMul chain per member), on the grouped rows of
   * `EnsemblePredictor`: rows [k·B, (k+1)·B) go through member k. Returns plain typed arrays;
   * no tensor outlives the call.
   * @param obs raw observations, K·B rows of obsDim
   * @param act raw actions, K·B rows of actDim
   * @param rowsPerMember B
   * @example
   * const { nextObs, reward, variance } = ensemble.forwardTf(obs, act, 10);
   */
  forwardTf(obs: Float32Array, act: Float32Array, rowsPerMember: number): EnsembleForward {
    const where = 'DynamicsEnsemble.forwardTf';
    this.#checkLive(where);
    const { numMembers: K, obsDim, actDim, probabilistic } = this.spec;
    const B = rowsPerMember;
    const D = this.outDim;
    const inDim = obsDim + actDim;
    if (!Number.isInteger(B) || B < 1) throw new ValidationError(where, 'rowsPerMember', `expected a positive integer, got ${describe(B)}`);
    if (obs.length !== K * B * obsDim) throw new ValidationError(where, 'obs', `expected length ${K * B * obsDim} (K·B = ${K}·${B} rows of ${obsDim}), got length ${obs.length}`);
    if (act.length !== K * B * actDim) throw new ValidationError(where, 'act', `expected length ${K * B * actDim} (K·B = ${K}·${B} rows of ${actDim}), got length ${act.length}`);
    const w = this.#w;
    const x = new Float32Array(K * B * inDim);
    for (let r = 0; r < K * B; r++) {
      for (let i = 0; i < obsDim; i++) x[r * inDim + i] = (obs[r * obsDim + i] - w.inputMean[i]) / w.inputStd[i];
      for (let i = 0; i < actDim; i++) x[r * inDim + obsDim + i] = (act[r * actDim + i] - w.inputMean[obsDim + i]) / w.inputStd[obsDim + i];
    }
    const params = this.#memberTensors();
    const meanNormalized = new Float32Array(K * B * D);
    const logvar = probabilistic ? new Float32Array(K * B * D) : undefined;
    const maxT = probabilistic ? tf.tensor1d(w.maxLogvar!) : null;
    const minT = probabilistic ? tf.tensor1d(w.minLogvar!) : null;
    try {
      for (let k = 0; k < K; k++) {
        const [meanT, lvT] = tf.tidy(() => {
          let h: tf.Tensor2D = tf.tensor2d(x.subarray(k * B * inDim, (k + 1) * B * inDim), [B, inDim]);
          const { W, b } = params[k];
          for (let l = 0; l < W.length; l++) {
            const z = tf.fused.matMul({ a: h, b: W[l], bias: b[l] }) as tf.Tensor2D;
            h = l < W.length - 1 ? activate(this.spec.activation, z) : z;
          }
          if (maxT === null || minT === null) return [h];
          const mean = tf.slice(h, [0, 0], [B, D]);
          const raw = tf.slice(h, [0, D], [B, D]);
          // logvar = maxLogvar − softplus(maxLogvar − raw); logvar = minLogvar + softplus(logvar − minLogvar)
          const upper = tf.sub(maxT, tf.softplus(tf.sub(maxT, raw)));
          return [mean, tf.add(minT, tf.softplus(tf.sub(upper, minT)))];
        });
        meanNormalized.set(meanT.dataSync(), k * B * D);
        meanT.dispose();
        if (lvT !== undefined) {
          logvar!.set(lvT.dataSync(), k * B * D);
          lvT.dispose();
        }
      }
    } finally {
      maxT?.dispose();
      minT?.dispose();
    }
    // De-normalise: target = mean_n · targetStd + targetMean; nextObs = obs + Δobs.
    const nextObs = new Float32Array(K * B * obsDim);
    const reward = this.spec.learnReward ? new Float32Array(K * B) : undefined;
    const variance = logvar ? new Float32Array(K * B * D) : undefined;
    for (let r = 0; r < K * B; r++) {
      for (let j = 0; j < D; j++) {
        const target = meanNormalized[r * D + j] * w.targetStd[j] + w.targetMean[j];
        if (j < obsDim) nextObs[r * obsDim + j] = obs[r * obsDim + j] + target;
        else reward![r] = target;
        if (variance) variance[r * D + j] = Math.exp(logvar![r * D + j]) * w.targetStd[j] * w.targetStd[j];
      }
    }
    const out: EnsembleForward = { nextObs, meanNormalized };
    if (reward) out.reward = reward;
    if (variance) {
      out.variance = variance;
      out.logvar = logvar;
    }
    return out;
  }

  /** `EnsemblePredictor.predict` through `forwardTf` (for tests and small batches; planners use the ONNX path). */
  async predict(
    obs: Float32Array,
    act: Float32Array,
    rowsPerMember: number,
    outNextObs: Float32Array,
    outReward?: Float32Array,
    outVar?: Float32Array,
  ): Promise<void> {
    const where = 'DynamicsEnsemble.predict';
    const f = this.forwardTf(obs, act, rowsPerMember);
    const put = (field: string, out: Float32Array | undefined, value: Float32Array | undefined, why: string): void => {
      if (out === undefined) return;
      if (value === undefined) throw new ValidationError(where, field, why);
      if (out.length !== value.length) throw new ValidationError(where, field, `expected length ${value.length}, got length ${out.length}`);
      out.set(value);
    };
    put('outNextObs', outNextObs, f.nextObs, '');
    put('outReward', outReward, f.reward, 'this ensemble does not learn the reward (spec.learnReward is false)');
    put('outVar', outVar, f.variance, 'this ensemble is deterministic (spec.probabilistic is false)');
  }

  /** Releases the cached tensors. Later calls to `forwardTf`/`setWeights` throw. Safe to call twice. */
  dispose(): void {
    this.#dropTensors();
    this.#disposed = true;
  }

  #checkLive(where: string): void {
    if (this.#disposed) throw new Error(`${where}: the ensemble was disposed`);
  }

  #memberTensors(): { W: tf.Tensor2D[]; b: tf.Tensor1D[] }[] {
    if (this.#tensors !== null) return this.#tensors;
    const dims = layerDimsOf(this.spec);
    const w = this.#w;
    this.#tensors = range(this.spec.numMembers).map((k) => ({
      W: dims.map(([i, o], l) => tf.tensor2d(w.weights[l].slice(k * i * o, (k + 1) * i * o), [i, o])),
      b: dims.map(([, o], l) => tf.tensor1d(w.biases[l].slice(k * o, (k + 1) * o))),
    }));
    return this.#tensors;
  }

  #dropTensors(): void {
    if (this.#tensors === null) return;
    for (const { W, b } of this.#tensors) {
      W.forEach((t) => t.dispose());
      b.forEach((t) => t.dispose());
    }
    this.#tensors = null;
  }
}

/** h = act(z) in tfjs. */
function activate(kind: EnsembleSpec['activation'], z: tf.Tensor2D): tf.Tensor2D {
  if (kind === 'silu') return tf.mul(z, tf.sigmoid(z));
  if (kind === 'relu') return tf.relu(z);
  return tf.tanh(z);
}

/** mbrl-lib/MBPO initialisation: W ~ truncated normal(0, 1/(2√fan_in)) cut at ±2 std, b = 0. */
function initialWeights(spec: EnsembleSpec, c: EnsembleConfig, rng: Rng): EnsembleWeights {
  const K = spec.numMembers;
  const dims = layerDimsOf(spec);
  const inDim = spec.obsDim + spec.actDim;
  const D = outDimOf(spec);
  const weights = dims.map(([fanIn, fanOut]) => {
    const std = 1 / (2 * Math.sqrt(fanIn));
    const a = new Float32Array(K * fanIn * fanOut);
    for (let i = 0; i < a.length; i++) {
      let v = rng.normal();
      while (Math.abs(v) > 2) v = rng.normal();
      a[i] = v * std;
    }
    return a;
  });
  const w: EnsembleWeights = {
    spec: { ...spec, hidden: [...spec.hidden] },
    weights,
    biases: dims.map(([, fanOut]) => new Float32Array(K * fanOut)),
    inputMean: new Float32Array(inDim),
    inputStd: new Float32Array(inDim).fill(1),
    targetMean: new Float32Array(D),
    targetStd: new Float32Array(D).fill(1),
  };
  if (spec.probabilistic) {
    w.maxLogvar = new Float32Array(D).fill(c.initMaxLogvar);
    w.minLogvar = new Float32Array(D).fill(c.initMinLogvar);
  }
  return w;
}

function copyWeights(w: EnsembleWeights): EnsembleWeights {
  const out: EnsembleWeights = {
    spec: { ...w.spec, hidden: [...w.spec.hidden] },
    weights: w.weights.map((a) => a.slice()),
    biases: w.biases.map((a) => a.slice()),
    inputMean: w.inputMean.slice(),
    inputStd: w.inputStd.slice(),
    targetMean: w.targetMean.slice(),
    targetStd: w.targetStd.slice(),
  };
  if (w.maxLogvar) out.maxLogvar = w.maxLogvar.slice();
  if (w.minLogvar) out.minLogvar = w.minLogvar.slice();
  return out;
}

/** The spec's fields in a fixed order, for equality checks. */
function specKey(s: EnsembleSpec): unknown[] {
  return [s.numMembers, s.obsDim, s.actDim, s.hidden, s.activation, s.probabilistic, s.learnReward];
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
