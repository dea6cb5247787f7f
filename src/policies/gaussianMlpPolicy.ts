import * as tf from '@tensorflow/tfjs';
import type { Agent } from '../core/agent.js';
import { describe, ValidationError } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import type { Box } from '../core/spaces.js';
import { tanhHo } from '../core/tfMath.js';
import { gaussianLogProb, tanhLogDetJacobian } from './diagGaussian.js';

/** Activation of the hidden layers. */
export type PolicyActivation = 'tanh' | 'relu';

/**
 * How an unbounded Gaussian sample `u` (in normalised action units) becomes an action inside the
 * bounds: `a = mid + half · g(u)` with `mid = (high + low)/2`, `half = (high − low)/2` and
 * - `clip`: `g(u) = clip(u, −1, 1)` — the Gaussian policy of rllab/TRPO/PPO, whose samples the
 *   environment would clip; the clip is part of the policy (and of its ONNX export), so a deployed
 *   policy can never command outside the bounds;
 * - `tanh`: `g(u) = tanh(u)` — SAC's squashed Gaussian (log-probabilities carry the Jacobian).
 */
export type PolicySquash = 'clip' | 'tanh';

/**
 * Where the standard deviation comes from: `parameter` — one learned log-std per action dimension,
 * independent of the state (TRPO, PPO, ME-TRPO, MB-MPO); `state` — a second output head,
 * `log σ(s) = clip(head(s), logStdMin, logStdMax)` (SAC).
 */
export type PolicyStdMode = 'parameter' | 'state';

/** The architecture of a Gaussian MLP policy; with its weights it fully defines the policy. */
export interface GaussianMlpPolicySpec {
  kind: 'gaussian-mlp-policy';
  obsDim: number;
  actDim: number;
  /** Hidden layer widths. Default [32, 32] (ME-TRPO's and MB-MPO's policy). */
  hidden: number[];
  /** Default 'tanh' (the papers' policies). */
  activation: PolicyActivation;
  /** Default 'clip'. */
  squash: PolicySquash;
  /** Default 'parameter'. */
  stdMode: PolicyStdMode;
  /** Initial log-std (normalised action units) for `stdMode: 'parameter'`. Default 0. */
  initLogStd: number;
  /** Bounds of the state-dependent log-std (SAC's −20 and 2). */
  logStdMin: number;
  logStdMax: number;
  /** Normalised observations are clipped to ±obsClip (Stable-Baselines3's VecNormalize: 10); null: no clip. */
  obsClip: number | null;
  /** Action bounds (finite). */
  actionLow: number[];
  actionHigh: number[];
}

export const POLICY_DEFAULTS = {
  hidden: [32, 32],
  activation: 'tanh',
  squash: 'clip',
  stdMode: 'parameter',
  initLogStd: 0,
  logStdMin: -20,
  logStdMax: 2,
  obsClip: 10,
} as const satisfies Partial<GaussianMlpPolicySpec>;

/** Options of `makePolicySpec`: sizes and bounds are required, the rest defaults to `POLICY_DEFAULTS`. */
export type PolicySpecOptions = Partial<Omit<GaussianMlpPolicySpec, 'kind' | 'obsDim' | 'actDim' | 'actionLow' | 'actionHigh'>> & {
  obsDim: number;
  actionSpace?: Box;
  actionLow?: ArrayLike<number>;
  actionHigh?: ArrayLike<number>;
};

/**
 * Builds and validates a policy spec.
 * @throws ValidationError naming the key, the value and what was expected
 */
export function makePolicySpec(options: PolicySpecOptions): GaussianMlpPolicySpec {
  const where = 'makePolicySpec';
  const low = options.actionSpace?.low ?? options.actionLow;
  const high = options.actionSpace?.high ?? options.actionHigh;
  if (low === undefined || high === undefined) throw new ValidationError(where, 'actionSpace', 'expected an action space or actionLow and actionHigh');
  const { actionSpace: _a, actionLow: _l, actionHigh: _h, ...rest } = options;
  const spec: GaussianMlpPolicySpec = {
    kind: 'gaussian-mlp-policy',
    ...POLICY_DEFAULTS,
    hidden: [...POLICY_DEFAULTS.hidden],
    ...rest,
    actDim: low.length,
    actionLow: Array.from(low),
    actionHigh: Array.from(high),
  };
  checkPolicySpec(spec);
  return spec;
}

/** @throws ValidationError when a field of `spec` is malformed */
export function checkPolicySpec(spec: GaussianMlpPolicySpec): void {
  const where = 'GaussianMlpPolicySpec';
  const bad = (key: string, v: unknown, expected: string): never => {
    throw new ValidationError(where, key, `expected ${expected}, got ${Array.isArray(v) ? `[${v.join(', ')}]` : describe(v)}`);
  };
  if (spec.kind !== 'gaussian-mlp-policy') bad('kind', spec.kind, "'gaussian-mlp-policy'");
  if (!Number.isInteger(spec.obsDim) || spec.obsDim < 1) bad('obsDim', spec.obsDim, 'a positive integer');
  if (!Number.isInteger(spec.actDim) || spec.actDim < 1) bad('actDim', spec.actDim, 'a positive integer');
  if (!Array.isArray(spec.hidden) || !spec.hidden.every((h) => Number.isInteger(h) && h > 0)) bad('hidden', spec.hidden, 'an array of positive integers');
  if (spec.activation !== 'tanh' && spec.activation !== 'relu') bad('activation', spec.activation, "'tanh' or 'relu'");
  if (spec.squash !== 'clip' && spec.squash !== 'tanh') bad('squash', spec.squash, "'clip' or 'tanh'");
  if (spec.stdMode !== 'parameter' && spec.stdMode !== 'state') bad('stdMode', spec.stdMode, "'parameter' or 'state'");
  if (!Number.isFinite(spec.initLogStd)) bad('initLogStd', spec.initLogStd, 'a finite number');
  if (!Number.isFinite(spec.logStdMin) || !Number.isFinite(spec.logStdMax) || spec.logStdMin >= spec.logStdMax) {
    bad('logStdMin', [spec.logStdMin, spec.logStdMax], 'finite logStdMin < logStdMax');
  }
  if (spec.obsClip !== null && !(spec.obsClip > 0 && Number.isFinite(spec.obsClip))) bad('obsClip', spec.obsClip, 'a finite number > 0, or null');
  if (spec.actionLow.length !== spec.actDim || spec.actionHigh.length !== spec.actDim) bad('actionLow', spec.actionLow, `${spec.actDim} lower and upper bounds`);
  for (let j = 0; j < spec.actDim; j++) {
    const lo = spec.actionLow[j];
    const hi = spec.actionHigh[j];
    if (!Number.isFinite(lo) || !Number.isFinite(hi) || !(lo < hi)) bad(`actionLow[${j}]/actionHigh[${j}]`, [lo, hi], 'finite bounds with low < high');
  }
}

/** Output width of the network's last layer. */
export function policyHeadDim(spec: GaussianMlpPolicySpec): number {
  return spec.stdMode === 'state' ? 2 * spec.actDim : spec.actDim;
}

/**
 * A policy's weights as plain arrays (checkpoints, ONNX export, reference forward).
 *
 * The forward definition, in float32, that every implementation (tfjs, ONNX, the reference)
 * follows:
 * ```
 * x      = clip((obs − obsMean) / obsStd, −obsClip, obsClip)        (no clip when obsClip is null)
 * h      = act(h W_i + b_i) for each hidden layer (W row-major [in, out])
 * out    = h W_L + b_L
 * mean   = out[:, :actDim]
 * logStd = logStd (parameter)  |  clip(out[:, actDim:], logStdMin, logStdMax) (state)
 * action = mid + half · clip(mean, −1, 1)   |   mid + half · tanh(mean)      (deterministic)
 * ```
 */
export interface PolicyWeights {
  layers: { W: Float32Array; b: Float32Array }[];
  /** [actDim] for `stdMode: 'parameter'`, else null. */
  logStd: Float32Array | null;
  obsMean: Float32Array;
  obsStd: Float32Array;
}

/** Mean and log-std in normalised action units, for a batch. */
export interface PolicyDistribution {
  /** [n, actDim] */
  mean: tf.Tensor2D;
  /** [actDim] (parameter mode) or [n, actDim] (state mode) */
  logStd: tf.Tensor;
}

/**
 * The policy's forward pass as a pure function of its parameter tensors, in the order of
 * `GaussianMlpPolicy.variables` (W0, b0, …, WL, bL, then logStd in parameter mode). MB-MPO calls it
 * with adapted parameters θ' = θ + α∇J, through which gradients flow.
 * @param obsNorm normalised (and clipped) observations [n, obsDim], from `normalizeObs`
 */
export function policyForward(spec: GaussianMlpPolicySpec, params: readonly tf.Tensor[], obsNorm: tf.Tensor2D): PolicyDistribution {
  const L = spec.hidden.length + 1;
  let h: tf.Tensor2D = obsNorm;
  for (let i = 0; i < L; i++) {
    const z = tf.add(tf.matMul(h, params[2 * i] as tf.Tensor2D), params[2 * i + 1]) as tf.Tensor2D;
    // tanhHo: tfjs's tanh has a wrong second-order gradient (see core/tfMath.ts).
    h = i < L - 1 ? (spec.activation === 'tanh' ? (tanhHo(z) as tf.Tensor2D) : tf.relu(z)) : z;
  }
  if (spec.stdMode === 'parameter') return { mean: h, logStd: params[2 * L] };
  const A = spec.actDim;
  const mean = tf.slice(h, [0, 0], [-1, A]);
  const logStd = tf.clipByValue(tf.slice(h, [0, A], [-1, A]), spec.logStdMin, spec.logStdMax);
  return { mean, logStd };
}

export interface GaussianMlpPolicyOptions {
  /** Initial weights (e.g. from a checkpoint); otherwise drawn from `rng`. */
  weights?: PolicyWeights;
  /** Generator for the initial weights (required without `weights`). */
  rng?: Rng;
}

/**
 * A Gaussian MLP policy in tfjs: `u ~ N(μ_θ(s), σ²)`, action `mid + half · g(u)` (see
 * `PolicySquash`). The learned policy of TRPO, PPO, ME-TRPO and MB-MPO (parameter log-std, clip)
 * and of SAC (state log-std, tanh). Owns its tfjs variables: call `dispose()`.
 *
 * Initialisation: hidden layers Glorot-uniform (rllab's default), zero biases; the output layer
 * Glorot-uniform scaled by 0.01 so the initial mean is near the middle of the bounds (as
 * Stable-Baselines3's policy head), log-std `initLogStd`.
 *
 * As an `Agent`, `act` is the deterministic controller (the mean, squashed); `sample` draws.
 *
 * @example
 * const policy = new GaussianMlpPolicy(makePolicySpec({ obsDim: 3, actionSpace: env.actionSpace }), { rng });
 * const a = policy.act(obs);
 * const { u, actions } = policy.sample(batchObs, n, rng);
 */
export class GaussianMlpPolicy implements Agent {
  readonly spec: Readonly<GaussianMlpPolicySpec>;
  /** Trainable parameters: W0, b0, …, WL, bL, then logStd in parameter mode. */
  readonly variables: tf.Variable[];
  #obsMean: tf.Tensor1D;
  #obsStd: tf.Tensor1D;
  #obsMeanData: Float32Array;
  #obsStdData: Float32Array;
  readonly #mid: Float64Array;
  readonly #half: Float64Array;
  readonly #actOut: Float64Array;
  #disposed = false;
  /** Plain-JS copy of the weights for small-batch forwards, and the variables' data ids it was read from. */
  #js: PolicyWeights | null = null;
  #jsDataIds: unknown[] = [];

  constructor(spec: GaussianMlpPolicySpec, options: GaussianMlpPolicyOptions = {}) {
    checkPolicySpec(spec);
    this.spec = Object.freeze({ ...spec, hidden: [...spec.hidden], actionLow: [...spec.actionLow], actionHigh: [...spec.actionHigh] });
    const weights = options.weights ?? initialPolicyWeights(spec, requireRng(options.rng));
    checkPolicyWeights(spec, weights);
    this.variables = [];
    const dims = [spec.obsDim, ...spec.hidden, policyHeadDim(spec)];
    // tfjs names variables itself: explicit names must be unique per process, which clones break.
    const own = (t: tf.Tensor): tf.Variable => {
      const v = tf.variable(t, true);
      t.dispose();
      return v;
    };
    weights.layers.forEach((layer, i) => {
      this.variables.push(own(tf.tensor2d(layer.W, [dims[i], dims[i + 1]])));
      this.variables.push(own(tf.tensor1d(layer.b)));
    });
    if (spec.stdMode === 'parameter') this.variables.push(own(tf.tensor1d(weights.logStd as Float32Array)));
    this.#obsMeanData = Float32Array.from(weights.obsMean);
    this.#obsStdData = Float32Array.from(weights.obsStd);
    this.#obsMean = tf.keep(tf.tensor1d(this.#obsMeanData));
    this.#obsStd = tf.keep(tf.tensor1d(this.#obsStdData));
    this.#mid = Float64Array.from(spec.actionLow, (lo, j) => (spec.actionHigh[j] + lo) / 2);
    this.#half = Float64Array.from(spec.actionLow, (lo, j) => (spec.actionHigh[j] - lo) / 2);
    this.#actOut = new Float64Array(spec.actDim);
  }

  get obsDim(): number {
    return this.spec.obsDim;
  }
  get actDim(): number {
    return this.spec.actDim;
  }
  /** Number of trainable scalars. */
  get numParams(): number {
    return this.variables.reduce((s, v) => s + v.size, 0);
  }

  /**
   * Sets the observation normalisation (e.g. from a `RunningNormalizer` over the collected
   * states). `std` entries are floored at 1e-6.
   * @throws ValidationError for a wrong length or a non-finite entry
   */
  setObsNormalization(mean: ArrayLike<number>, std: ArrayLike<number>): void {
    const D = this.spec.obsDim;
    if (mean.length !== D || std.length !== D) throw new ValidationError('GaussianMlpPolicy.setObsNormalization', 'mean/std', `expected ${D} entries each, got ${mean.length} and ${std.length}`);
    for (let i = 0; i < D; i++) {
      if (!Number.isFinite(mean[i]) || !Number.isFinite(std[i]) || std[i] < 0) {
        throw new ValidationError('GaussianMlpPolicy.setObsNormalization', `[${i}]`, `expected a finite mean and std >= 0, got ${mean[i]} and ${std[i]}`);
      }
    }
    this.#obsMeanData = Float32Array.from(mean);
    this.#obsStdData = Float32Array.from(std, (s) => Math.max(s, 1e-6));
    this.#obsMean.dispose();
    this.#obsStd.dispose();
    this.#obsMean = tf.keep(tf.tensor1d(this.#obsMeanData));
    this.#obsStd = tf.keep(tf.tensor1d(this.#obsStdData));
  }

  /** `clip((obs − mean)/std, ±obsClip)` for a batch tensor [n, obsDim]. */
  normalizeObs(obs: tf.Tensor2D): tf.Tensor2D {
    const x = tf.div(tf.sub(obs, this.#obsMean), this.#obsStd) as tf.Tensor2D;
    const c = this.spec.obsClip;
    return c === null ? x : tf.clipByValue(x, -c, c);
  }

  /** Mean and log-std for raw observations [n, obsDim] (differentiable w.r.t. `variables`). */
  distribution(obs: tf.Tensor2D): PolicyDistribution {
    return policyForward(this.spec, this.variables, this.normalizeObs(obs));
  }

  /**
   * log π(u | s) of raw Gaussian samples `u` [n, actDim] (normalised units), including the tanh
   * Jacobian for `squash: 'tanh'` (the clip of `squash: 'clip'` is treated as the environment's,
   * as in rllab and Stable-Baselines3). Returns [n].
   */
  logProb(obs: tf.Tensor2D, u: tf.Tensor2D): tf.Tensor1D {
    const { mean, logStd } = this.distribution(obs);
    const lp = gaussianLogProb(u, mean, logStd);
    return this.spec.squash === 'tanh' ? (tf.sub(lp, tanhLogDetJacobian(u)) as tf.Tensor1D) : lp;
  }

  /** Maps raw samples (normalised units) to actions inside the bounds, in place of `out`. */
  toActions(u: ArrayLike<number>, n: number, out: Float64Array = new Float64Array(n * this.spec.actDim)): Float64Array {
    const A = this.spec.actDim;
    const tanh = this.spec.squash === 'tanh';
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < A; j++) {
        const x = u[i * A + j];
        const g = tanh ? Math.tanh(x) : x < -1 ? -1 : x > 1 ? 1 : x;
        // NaN (a diverged network) maps to the middle of the bounds rather than out of them.
        out[i * A + j] = this.#mid[j] + this.#half[j] * (Number.isNaN(g) ? 0 : g);
      }
    }
    return out;
  }

  /** The deterministic action for one observation (the squashed mean). The array is reused. */
  act(obs: Float64Array): Float64Array {
    this.#checkObs(obs, 1, 'act');
    const mean = this.meanBatch(obs, 1);
    return this.toActions(mean, 1, this.#actOut);
  }

  /** Deterministic actions for `n` observations (row-major [n, obsDim]); a new array [n, actDim]. */
  actBatch(obs: ArrayLike<number>, n: number): Float64Array {
    this.#checkObs(obs, n, 'actBatch');
    return this.toActions(this.meanBatch(obs, n), n);
  }

  /** The Gaussian means [n, actDim] (normalised units) as a plain array. */
  meanBatch(obs: ArrayLike<number>, n: number): Float32Array {
    const mean = tf.tidy(() => this.distribution(tf.tensor2d(Float32Array.from(obs), [n, this.spec.obsDim])).mean);
    const data = mean.dataSync() as Float32Array;
    mean.dispose();
    return data;
  }

  /**
   * Draws `u = μ + σ ε` for `n` observations and maps them to actions.
   * @returns `u` (for log-probabilities), the actions, and the means and log-stds used, all row-major [n, actDim]
   */
  sample(obs: ArrayLike<number>, n: number, rng: Rng): { u: Float32Array; actions: Float64Array; mean: Float32Array; logStd: Float32Array } {
    this.#checkObs(obs, n, 'sample');
    const A = this.spec.actDim;
    const { mean, logStd } = this.forwardFast(obs, n);
    const u = new Float32Array(n * A);
    for (let k = 0; k < u.length; k++) u[k] = mean[k] + Math.exp(logStd[k]) * rng.normal();
    return { u, actions: this.toActions(u, n), mean, logStd };
  }

  /**
   * Means and log-stds [n, actDim] computed in plain JavaScript (float64, rounded to float32) from
   * a copy of the weights, refreshed whenever a variable was assigned. For the small batches of
   * rollouts: a tfjs call costs 0.1–1 ms of overhead whatever its size, while a 32 × 32 network on
   * 20 rows takes about 10 µs here. Agrees with `distribution` to float32 rounding.
   */
  forwardFast(obs: ArrayLike<number>, n: number): { mean: Float32Array; logStd: Float32Array } {
    this.#checkObs(obs, n, 'forwardFast');
    const ids = this.variables.map((v) => (v as unknown as { dataId: unknown }).dataId);
    if (this.#js === null || ids.some((id, i) => id !== this.#jsDataIds[i])) {
      this.#js = this.getWeights();
      this.#jsDataIds = ids;
    }
    this.#js.obsMean = this.#obsMeanData;
    this.#js.obsStd = this.#obsStdData;
    const r = referencePolicyForward(this.spec, this.#js, obs, n);
    return { mean: Float32Array.from(r.mean), logStd: Float32Array.from(r.logStd) };
  }

  /** Deterministic actions for `n` observations via `forwardFast`; a new array [n, actDim]. */
  actBatchFast(obs: ArrayLike<number>, n: number): Float64Array {
    return this.toActions(this.forwardFast(obs, n).mean, n);
  }

  /** An `Agent` that samples (exploration), e.g. for data collection. */
  stochasticAgent(rng: Rng): Agent {
    const out = new Float64Array(this.spec.actDim);
    return {
      act: (obs: Float64Array): Float64Array => {
        out.set(this.sample(obs, 1, rng).actions);
        return out;
      },
    };
  }

  /** A copy of the weights as plain arrays. */
  getWeights(): PolicyWeights {
    const L = this.spec.hidden.length + 1;
    const layers: PolicyWeights['layers'] = [];
    for (let i = 0; i < L; i++) {
      layers.push({ W: Float32Array.from(this.variables[2 * i].dataSync()), b: Float32Array.from(this.variables[2 * i + 1].dataSync()) });
    }
    return {
      layers,
      logStd: this.spec.stdMode === 'parameter' ? Float32Array.from(this.variables[2 * L].dataSync()) : null,
      obsMean: Float32Array.from(this.#obsMeanData),
      obsStd: Float32Array.from(this.#obsStdData),
    };
  }

  /** Replaces all weights. @throws ValidationError for a shape mismatch or non-finite entries */
  setWeights(weights: PolicyWeights): void {
    checkPolicyWeights(this.spec, weights);
    const L = this.spec.hidden.length + 1;
    weights.layers.forEach((layer, i) => {
      tf.tidy(() => {
        this.variables[2 * i].assign(tf.tensor(layer.W, this.variables[2 * i].shape));
        this.variables[2 * i + 1].assign(tf.tensor1d(layer.b));
      });
    });
    if (weights.logStd) {
      const logStd = weights.logStd;
      tf.tidy(() => this.variables[2 * L].assign(tf.tensor1d(logStd)));
    }
    this.setObsNormalization(weights.obsMean, weights.obsStd);
  }

  /** All trainable parameters concatenated in `variables` order. */
  getFlatParams(): Float32Array {
    const out = new Float32Array(this.numParams);
    let o = 0;
    for (const v of this.variables) {
      out.set(v.dataSync(), o);
      o += v.size;
    }
    return out;
  }

  /** Sets all trainable parameters from one flat vector (`getFlatParams`'s layout). */
  setFlatParams(flat: ArrayLike<number>): void {
    if (flat.length !== this.numParams) throw new ValidationError('GaussianMlpPolicy.setFlatParams', 'flat', `expected ${this.numParams} values, got ${flat.length}`);
    let o = 0;
    for (const v of this.variables) {
      const part = Float32Array.from({ length: v.size }, (_, k) => flat[o + k]);
      tf.tidy(() => v.assign(tf.tensor(part, v.shape)));
      o += v.size;
    }
  }

  /** An independent copy (its own variables). */
  clone(): GaussianMlpPolicy {
    return new GaussianMlpPolicy(this.spec, { weights: this.getWeights() });
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const v of this.variables) v.dispose();
    this.#obsMean.dispose();
    this.#obsStd.dispose();
  }

  #checkObs(obs: ArrayLike<number>, n: number, where: string): void {
    const want = n * this.spec.obsDim;
    if (obs.length !== want) {
      throw new ValidationError(`GaussianMlpPolicy.${where}`, 'obs', `expected ${n} × ${this.spec.obsDim} = ${want} values, got ${obs.length}`);
    }
  }
}

function requireRng(rng: Rng | undefined): Rng {
  if (rng === undefined) throw new ValidationError('GaussianMlpPolicy', 'options', 'expected initial `weights` or an `rng` to draw them from');
  return rng;
}

/** Glorot-uniform hidden layers, a 0.01-scaled output layer, zero biases, log-std `initLogStd`. */
export function initialPolicyWeights(spec: GaussianMlpPolicySpec, rng: Rng): PolicyWeights {
  const dims = [spec.obsDim, ...spec.hidden, policyHeadDim(spec)];
  const layers: PolicyWeights['layers'] = [];
  for (let i = 0; i + 1 < dims.length; i++) {
    const fanIn = dims[i];
    const fanOut = dims[i + 1];
    const limit = Math.sqrt(6 / (fanIn + fanOut)) * (i + 2 === dims.length ? 0.01 : 1);
    const W = new Float32Array(fanIn * fanOut);
    for (let k = 0; k < W.length; k++) W[k] = rng.uniform(-limit, limit);
    layers.push({ W, b: new Float32Array(fanOut) });
  }
  return {
    layers,
    logStd: spec.stdMode === 'parameter' ? new Float32Array(spec.actDim).fill(spec.initLogStd) : null,
    obsMean: new Float32Array(spec.obsDim),
    obsStd: new Float32Array(spec.obsDim).fill(1),
  };
}

/** @throws ValidationError when `weights` do not fit `spec` or hold non-finite values */
export function checkPolicyWeights(spec: GaussianMlpPolicySpec, weights: PolicyWeights): void {
  const where = 'PolicyWeights';
  const dims = [spec.obsDim, ...spec.hidden, policyHeadDim(spec)];
  if (weights.layers.length !== dims.length - 1) throw new ValidationError(where, 'layers', `expected ${dims.length - 1} layers, got ${weights.layers.length}`);
  const finite = (a: ArrayLike<number>, name: string, len: number): void => {
    if (a.length !== len) throw new ValidationError(where, name, `expected ${len} values, got ${a.length}`);
    for (let k = 0; k < a.length; k++) if (!Number.isFinite(a[k])) throw new ValidationError(where, `${name}[${k}]`, `expected a finite number, got ${a[k]}`);
  };
  weights.layers.forEach((l, i) => {
    finite(l.W, `layers[${i}].W`, dims[i] * dims[i + 1]);
    finite(l.b, `layers[${i}].b`, dims[i + 1]);
  });
  if (spec.stdMode === 'parameter') {
    if (!weights.logStd) throw new ValidationError(where, 'logStd', `expected ${spec.actDim} values for stdMode 'parameter', got none`);
    finite(weights.logStd, 'logStd', spec.actDim);
  } else if (weights.logStd) {
    throw new ValidationError(where, 'logStd', "expected null for stdMode 'state' (the log-std is an output head)");
  }
  finite(weights.obsMean, 'obsMean', spec.obsDim);
  finite(weights.obsStd, 'obsStd', spec.obsDim);
  for (let k = 0; k < spec.obsDim; k++) if (!(weights.obsStd[k] > 0)) throw new ValidationError(where, `obsStd[${k}]`, `expected > 0, got ${weights.obsStd[k]}`);
}

/**
 * The forward definition in float64 plain JS (the reference for export parity tests).
 * @returns means [n, actDim], log-stds [n, actDim] and deterministic actions [n, actDim]
 */
export function referencePolicyForward(
  spec: GaussianMlpPolicySpec,
  weights: PolicyWeights,
  obs: ArrayLike<number>,
  n: number,
): { mean: Float64Array; logStd: Float64Array; action: Float64Array } {
  const dims = [spec.obsDim, ...spec.hidden, policyHeadDim(spec)];
  const A = spec.actDim;
  const mean = new Float64Array(n * A);
  const logStd = new Float64Array(n * A);
  const action = new Float64Array(n * A);
  const c = spec.obsClip;
  for (let r = 0; r < n; r++) {
    let h = new Float64Array(spec.obsDim);
    for (let i = 0; i < spec.obsDim; i++) {
      const x = (obs[r * spec.obsDim + i] - weights.obsMean[i]) / weights.obsStd[i];
      h[i] = c === null ? x : Math.min(c, Math.max(-c, x));
    }
    for (let l = 0; l + 1 < dims.length; l++) {
      const { W, b } = weights.layers[l];
      const next = new Float64Array(dims[l + 1]);
      for (let o = 0; o < dims[l + 1]; o++) {
        let s = b[o];
        for (let i = 0; i < dims[l]; i++) s += h[i] * W[i * dims[l + 1] + o];
        next[o] = l + 2 < dims.length ? (spec.activation === 'tanh' ? Math.tanh(s) : Math.max(0, s)) : s;
      }
      h = next;
    }
    for (let j = 0; j < A; j++) {
      const m = h[j];
      mean[r * A + j] = m;
      logStd[r * A + j] = spec.stdMode === 'parameter' ? (weights.logStd as Float32Array)[j] : Math.min(spec.logStdMax, Math.max(spec.logStdMin, h[A + j]));
      const g = spec.squash === 'tanh' ? Math.tanh(m) : Math.min(1, Math.max(-1, m));
      const lo = spec.actionLow[j];
      const hi = spec.actionHigh[j];
      action[r * A + j] = (hi + lo) / 2 + ((hi - lo) / 2) * g;
    }
  }
  return { mean, logStd, action };
}
