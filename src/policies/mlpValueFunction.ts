import * as tf from '@tensorflow/tfjs';
import { ValidationError, describe } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import { tanhHo } from '../core/tfMath.js';
import type { Baseline } from './baseline.js';

/** Architecture and training of an `MlpValueFunction`. */
export interface MlpValueFunctionConfig {
  kind: 'mlp-value-function';
  /** Hidden widths. Default [64, 64] (Stable-Baselines3's value network). */
  hidden: number[];
  /** Default 'tanh'. */
  activation: 'tanh' | 'relu';
  /** Adam step size. Default 1e-3 (Stable-Baselines3's TRPO critic; Spinning Up's vf_lr). */
  learningRate: number;
  /** Passes over the batch per `fit`. Default 10 (SB3 TRPO's n_critic_updates). */
  epochs: number;
  /** Rows per Adam step. Default 128 (SB3 TRPO's batch_size). */
  minibatchSize: number;
  /** Normalised observations are clipped to ±obsClip; null: no clip. Default 10. */
  obsClip: number | null;
}

export const VALUE_FUNCTION_DEFAULTS = {
  kind: 'mlp-value-function',
  hidden: [64, 64],
  activation: 'tanh',
  learningRate: 1e-3,
  epochs: 10,
  minibatchSize: 128,
  obsClip: 10,
} as const satisfies MlpValueFunctionConfig;

/**
 * Merges `overrides` into `VALUE_FUNCTION_DEFAULTS` and validates.
 * @throws ValidationError naming the key, the value and what was expected
 */
export function makeValueFunctionConfig(overrides: Partial<MlpValueFunctionConfig> = {}): MlpValueFunctionConfig {
  const where = 'makeValueFunctionConfig';
  for (const key of Object.keys(overrides)) {
    if (!(key in VALUE_FUNCTION_DEFAULTS)) throw new ValidationError(where, key, `unknown key; expected one of ${Object.keys(VALUE_FUNCTION_DEFAULTS).join(', ')}`);
  }
  const c: MlpValueFunctionConfig = { ...VALUE_FUNCTION_DEFAULTS, hidden: [...VALUE_FUNCTION_DEFAULTS.hidden], ...overrides, kind: 'mlp-value-function' };
  if (overrides.kind !== undefined && overrides.kind !== 'mlp-value-function') throw new ValidationError(where, 'kind', `expected 'mlp-value-function', got ${describe(overrides.kind)}`);
  if (!Array.isArray(c.hidden) || !c.hidden.every((h) => Number.isInteger(h) && h > 0)) throw new ValidationError(where, 'hidden', `expected an array of positive integers, got ${describe(c.hidden)}`);
  if (c.activation !== 'tanh' && c.activation !== 'relu') throw new ValidationError(where, 'activation', `expected 'tanh' or 'relu', got ${describe(c.activation)}`);
  if (!(c.learningRate > 0 && Number.isFinite(c.learningRate))) throw new ValidationError(where, 'learningRate', `expected a finite number > 0, got ${describe(c.learningRate)}`);
  if (!Number.isInteger(c.epochs) || c.epochs < 0) throw new ValidationError(where, 'epochs', `expected an integer ≥ 0, got ${describe(c.epochs)}`);
  if (!Number.isInteger(c.minibatchSize) || c.minibatchSize < 1) throw new ValidationError(where, 'minibatchSize', `expected an integer ≥ 1, got ${describe(c.minibatchSize)}`);
  if (c.obsClip !== null && !(c.obsClip > 0 && Number.isFinite(c.obsClip))) throw new ValidationError(where, 'obsClip', `expected a finite number > 0, or null, got ${describe(c.obsClip)}`);
  return c;
}

/**
 * V(s) as a pure function of the parameter tensors (W0, b0, …, WL, bL; the last layer has one
 * output) on normalised observations [n, obsDim]. Returns [n].
 */
export function valueForward(config: Pick<MlpValueFunctionConfig, 'activation'>, params: readonly tf.Tensor[], obsNorm: tf.Tensor2D): tf.Tensor1D {
  const L = params.length / 2;
  let h: tf.Tensor2D = obsNorm;
  for (let i = 0; i < L; i++) {
    const z = tf.add(tf.matMul(h, params[2 * i] as tf.Tensor2D), params[2 * i + 1]) as tf.Tensor2D;
    h = i < L - 1 ? (config.activation === 'tanh' ? (tanhHo(z) as tf.Tensor2D) : tf.relu(z)) : z;
  }
  return tf.reshape(h, [-1]) as tf.Tensor1D;
}

/** Options of `MlpValueFunction`. */
export interface MlpValueFunctionOptions {
  obsDim: number;
  config?: Partial<MlpValueFunctionConfig>;
  /** Draws the initial weights and shuffles minibatches. */
  rng: Rng;
}

/**
 * A state-value MLP V_φ(s) in tfjs, fitted by Adam on minibatches (Stable-Baselines3's critic,
 * Spinning Up's `vf`). Observations are normalised as the policy's (`setObsNormalization`).
 * Hidden layers Glorot-uniform, zero biases. Owns tfjs variables and its optimizer: `dispose()`.
 *
 * @example
 * const vf = new MlpValueFunction({ obsDim: 3, rng });
 * const mseBefore = vf.fit(batch.obs, batch.timesteps, returns, batch.size);
 */
export class MlpValueFunction implements Baseline {
  readonly obsDim: number;
  readonly config: Readonly<MlpValueFunctionConfig>;
  /** W0, b0, …, WL, bL. */
  readonly variables: tf.Variable[];
  readonly #rng: Rng;
  readonly #optimizer: tf.AdamOptimizer;
  #obsMean: tf.Tensor1D;
  #obsStd: tf.Tensor1D;

  constructor(options: MlpValueFunctionOptions) {
    const { obsDim, rng } = options;
    if (!Number.isInteger(obsDim) || obsDim < 1) throw new ValidationError('MlpValueFunction', 'obsDim', `expected a positive integer, got ${describe(obsDim)}`);
    this.obsDim = obsDim;
    this.config = Object.freeze(makeValueFunctionConfig(options.config));
    this.#rng = rng;
    const dims = [obsDim, ...this.config.hidden, 1];
    this.variables = [];
    for (let i = 0; i + 1 < dims.length; i++) {
      const limit = Math.sqrt(6 / (dims[i] + dims[i + 1]));
      const W = rng.fillUniform(new Float32Array(dims[i] * dims[i + 1]), -limit, limit);
      this.variables.push(tf.variable(tf.tensor2d(W, [dims[i], dims[i + 1]]), true));
      this.variables.push(tf.variable(tf.zeros([dims[i + 1]]), true));
    }
    this.#optimizer = tf.train.adam(this.config.learningRate);
    this.#obsMean = tf.keep(tf.zeros([obsDim]));
    this.#obsStd = tf.keep(tf.ones([obsDim]));
  }

  setObsNormalization(mean: ArrayLike<number>, std: ArrayLike<number>): void {
    if (mean.length !== this.obsDim || std.length !== this.obsDim) throw new ValidationError('MlpValueFunction.setObsNormalization', 'mean/std', `expected ${this.obsDim} entries each, got ${mean.length} and ${std.length}`);
    this.#obsMean.dispose();
    this.#obsStd.dispose();
    this.#obsMean = tf.keep(tf.tensor1d(Float32Array.from(mean)));
    this.#obsStd = tf.keep(tf.tensor1d(Float32Array.from(std, (s) => Math.max(s, 1e-6))));
  }

  /** `clip((obs − mean)/std, ±obsClip)` for a batch tensor [n, obsDim]. */
  normalizeObs(obs: tf.Tensor2D): tf.Tensor2D {
    const x = tf.div(tf.sub(obs, this.#obsMean), this.#obsStd) as tf.Tensor2D;
    const c = this.config.obsClip;
    return c === null ? x : tf.clipByValue(x, -c, c);
  }

  /** V of normalised observations with the current variables (differentiable). [n] */
  valueOf(obsNorm: tf.Tensor2D): tf.Tensor1D {
    return valueForward(this.config, this.variables, obsNorm);
  }

  predict(obs: ArrayLike<number>, _timesteps: ArrayLike<number>, n: number): Float64Array {
    if (n === 0) return new Float64Array(0);
    const v = tf.tidy(() => this.valueOf(this.normalizeObs(tf.tensor2d(Float32Array.from(obs), [n, this.obsDim]))));
    const out = Float64Array.from(v.dataSync());
    v.dispose();
    return out;
  }

  /**
   * `epochs` passes of Adam over shuffled minibatches of the mean squared error to `targets`.
   * @returns the mean squared error before the fit
   */
  fit(obs: ArrayLike<number>, _timesteps: ArrayLike<number>, targets: ArrayLike<number>, n: number): number {
    if (n === 0) return 0;
    const x = tf.tidy(() => this.normalizeObs(tf.tensor2d(Float32Array.from(obs), [n, this.obsDim])));
    const y = tf.tensor1d(Float32Array.from(targets));
    const before = tf.tidy(() => tf.mean(tf.square(tf.sub(this.valueOf(x), y))));
    const mse = before.dataSync()[0];
    before.dispose();
    const mb = Math.min(this.config.minibatchSize, n);
    for (let epoch = 0; epoch < this.config.epochs; epoch++) {
      const perm = this.#rng.permutation(n);
      for (let start = 0; start < n; start += mb) {
        const idx = tf.tensor1d(Int32Array.from(perm.subarray(start, Math.min(start + mb, n))), 'int32');
        tf.tidy(() => {
          const xb = tf.gather(x, idx) as tf.Tensor2D;
          const yb = tf.gather(y, idx);
          this.#optimizer.minimize(() => tf.mean(tf.square(tf.sub(this.valueOf(xb), yb))) as tf.Scalar, false, this.variables);
        });
        idx.dispose();
      }
    }
    tf.dispose([x, y]);
    return mse;
  }

  dispose(): void {
    for (const v of this.variables) v.dispose();
    this.#optimizer.dispose();
    this.#obsMean.dispose();
    this.#obsStd.dispose();
  }
}
