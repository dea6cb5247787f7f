import * as tf from '@tensorflow/tfjs';
import { describe, ValidationError } from '../core/errors.js';
import type { Rng } from '../core/rng.js';

/** The architecture of a `QEnsemble`; with its weights it fully defines the K action-value functions. */
export interface QEnsembleSpec {
  kind: 'q-ensemble';
  obsDim: number;
  /** Action length; the networks take actions in normalised units (−1 … 1 across the bounds). */
  actDim: number;
  /** K, the number of Q networks. Default 2 (SAC's and TD3's twin critics). */
  numQ: number;
  /** Hidden widths, the same for every member. Default [256, 256] (SAC). */
  hidden: number[];
  /** Activation of the hidden layers. Default 'relu' (SAC). */
  activation: 'relu' | 'tanh';
}

export const Q_ENSEMBLE_DEFAULTS = {
  numQ: 2,
  hidden: [256, 256],
  activation: 'relu',
} as const satisfies Partial<QEnsembleSpec>;

/** Options of `makeQEnsembleSpec`: sizes are required, the rest defaults to `Q_ENSEMBLE_DEFAULTS`. */
export type QEnsembleSpecOptions = Partial<Omit<QEnsembleSpec, 'kind'>> & { obsDim: number; actDim: number };

/**
 * Builds and validates a Q-ensemble spec.
 * @throws ValidationError naming the key, the value and what was expected
 */
export function makeQEnsembleSpec(options: QEnsembleSpecOptions): QEnsembleSpec {
  const spec: QEnsembleSpec = { kind: 'q-ensemble', ...Q_ENSEMBLE_DEFAULTS, ...options, hidden: [...(options.hidden ?? Q_ENSEMBLE_DEFAULTS.hidden)] };
  checkQEnsembleSpec(spec);
  return spec;
}

/** @throws ValidationError when a field of `spec` is malformed */
export function checkQEnsembleSpec(spec: QEnsembleSpec): void {
  const where = 'QEnsembleSpec';
  const bad = (key: string, v: unknown, expected: string): never => {
    throw new ValidationError(where, key, `expected ${expected}, got ${describe(v)}`);
  };
  const keys = ['kind', 'obsDim', 'actDim', 'numQ', 'hidden', 'activation'];
  for (const key of Object.keys(spec)) if (!keys.includes(key)) throw new ValidationError(where, key, `unknown key; expected one of ${keys.join(', ')}`);
  if (spec.kind !== 'q-ensemble') bad('kind', spec.kind, "'q-ensemble'");
  for (const key of ['obsDim', 'actDim', 'numQ'] as const) if (!Number.isInteger(spec[key]) || spec[key] < 1) bad(key, spec[key], 'a positive integer');
  if (!Array.isArray(spec.hidden) || spec.hidden.length === 0 || !spec.hidden.every((h) => Number.isInteger(h) && h > 0)) {
    bad('hidden', spec.hidden, 'a non-empty array of positive integers');
  }
  if (spec.activation !== 'relu' && spec.activation !== 'tanh') bad('activation', spec.activation, "'relu' or 'tanh'");
}

/** The weights as plain arrays: per member, per layer, `W` [in, out] row-major and `b` [out]. Layer 0's input is `[obs, actionNorm]`. */
export interface QEnsembleWeights {
  members: { layers: { W: Float32Array; b: Float32Array }[] }[];
}

/** Layer widths: obsDim + actDim, the hidden widths, 1. */
export function qEnsembleDims(spec: QEnsembleSpec): number[] {
  return [spec.obsDim + spec.actDim, ...spec.hidden, 1];
}

/**
 * `a · b` for 2-D tensors with a gradient made of plain products and explicit transposes:
 * tfjs-wasm runs only the plain, untransposed 2-D matMul on XNNPACK; its transposed and batched
 * kernels (which tfjs's own matMul gradient uses) are 7–40× slower (measured here: 256 × 256 × 256
 * forward 1.5 ms, tfjs's gradient 58 ms, this one's 8 ms). Gradients of every order are right
 * (the gradient is built from differentiable ops).
 */
export const matMulFast: (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D = (() => {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const a = args[0] as tf.Tensor2D;
    const b = args[1] as tf.Tensor2D;
    (args[2] as tf.GradSaveFunc)([a, b]);
    return {
      value: tf.matMul(a, b),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => [
        matMulFast(dy as tf.Tensor2D, tf.transpose(saved[1]) as tf.Tensor2D),
        matMulFast(tf.transpose(saved[0]) as tf.Tensor2D, dy as tf.Tensor2D),
      ],
    };
  });
  return (a: tf.Tensor2D, b: tf.Tensor2D) => op(a, b) as tf.Tensor2D;
})();

/**
 * Q_k(s, a) for every member k as a pure function of the parameter tensors (`QEnsemble.variables`'
 * layout: member 0's W0 [in, h], b0 [h], …, WL [h, 1], bL [1], then member 1's, …);
 * differentiable w.r.t. the parameters and the actions (SAC's actor loss goes through it).
 * Each member is its own chain of 2-D products (`matMulFast`): on tfjs-wasm that is several times
 * faster than one batched 3-D product over the members.
 *
 * @param obs observations [n, obsDim] (as the environment gives them)
 * @param actionNorm actions in normalised units [n, actDim]
 * @returns Q [K, n]
 */
export function qEnsembleForward(spec: QEnsembleSpec, params: readonly tf.Tensor[], obs: tf.Tensor2D, actionNorm: tf.Tensor2D): tf.Tensor2D {
  const L = spec.hidden.length + 1;
  const n = obs.shape[0];
  const x = tf.concat([obs, actionNorm], 1);
  const out: tf.Tensor1D[] = [];
  for (let k = 0; k < spec.numQ; k++) {
    let h: tf.Tensor2D = x;
    for (let i = 0; i < L; i++) {
      const z = tf.add(matMulFast(h, params[2 * (k * L + i)] as tf.Tensor2D), params[2 * (k * L + i) + 1]) as tf.Tensor2D;
      h = i < L - 1 ? (spec.activation === 'relu' ? tf.relu(z) : tf.tanh(z)) : z;
    }
    out.push(tf.reshape(h, [n]));
  }
  return tf.stack(out) as tf.Tensor2D;
}

export interface QEnsembleOptions {
  /** Initial weights (e.g. from a checkpoint); otherwise drawn from `rng`. */
  weights?: QEnsembleWeights;
  /** Generator for the initial weights (required without `weights`). */
  rng?: Rng;
}

/**
 * K action-value networks Q_k(s, a) = MLP_k([s, a_n]) with actions in normalised units
 * a_n = (a − mid)/half, so that the critics' inputs are scale-free across tasks (SAC's twin
 * critics and their target copies; an ensemble of K > 2 serves REDQ-style methods). Owns its tfjs
 * variables: call `dispose()`.
 *
 * Initialisation: Glorot-uniform weights, zero biases, each member drawn independently.
 *
 * @example
 * const q = new QEnsemble(makeQEnsembleSpec({ obsDim: 3, actDim: 1 }), { rng });
 * const values = tf.tidy(() => q.forward(obsTensor, actionNormTensor)); // [2, n]
 * const target = q.clone();
 */
export class QEnsemble {
  readonly spec: Readonly<QEnsembleSpec>;
  /** Member 0's W0, b0, …, WL, bL, then member 1's, … */
  readonly variables: tf.Variable[];
  #disposed = false;

  constructor(spec: QEnsembleSpec, options: QEnsembleOptions = {}) {
    checkQEnsembleSpec(spec);
    this.spec = Object.freeze({ ...spec, hidden: [...spec.hidden] });
    let weights = options.weights;
    if (weights === undefined) {
      if (options.rng === undefined) throw new ValidationError('QEnsemble', 'options', 'expected initial `weights` or an `rng` to draw them from');
      weights = initialQEnsembleWeights(spec, options.rng);
    }
    checkQEnsembleWeights(spec, weights);
    const dims = qEnsembleDims(spec);
    this.variables = [];
    // tfjs names variables itself: explicit names must be unique per process, which clones break.
    const own = (t: tf.Tensor): tf.Variable => {
      const v = tf.variable(t, true);
      t.dispose();
      return v;
    };
    for (const member of weights.members) {
      member.layers.forEach((layer, i) => {
        this.variables.push(own(tf.tensor2d(layer.W, [dims[i], dims[i + 1]])));
        this.variables.push(own(tf.tensor1d(layer.b)));
      });
    }
  }

  get numParams(): number {
    return this.variables.reduce((s, v) => s + v.size, 0);
  }

  /** Q [K, n] of observations [n, obsDim] and normalised actions [n, actDim] (differentiable). */
  forward(obs: tf.Tensor2D, actionNorm: tf.Tensor2D): tf.Tensor2D {
    return qEnsembleForward(this.spec, this.variables, obs, actionNorm);
  }

  /** A copy of the weights as plain arrays. */
  getWeights(): QEnsembleWeights {
    const L = this.spec.hidden.length + 1;
    const members: QEnsembleWeights['members'] = [];
    for (let k = 0; k < this.spec.numQ; k++) {
      const layers: QEnsembleWeights['members'][number]['layers'] = [];
      for (let i = 0; i < L; i++) {
        const j = 2 * (k * L + i);
        layers.push({ W: Float32Array.from(this.variables[j].dataSync()), b: Float32Array.from(this.variables[j + 1].dataSync()) });
      }
      members.push({ layers });
    }
    return { members };
  }

  /** Replaces all weights. @throws ValidationError for a shape mismatch or non-finite entries */
  setWeights(weights: QEnsembleWeights): void {
    checkQEnsembleWeights(this.spec, weights);
    const L = this.spec.hidden.length + 1;
    weights.members.forEach((member, k) => {
      member.layers.forEach((layer, i) => {
        const j = 2 * (k * L + i);
        tf.tidy(() => {
          this.variables[j].assign(tf.tensor(layer.W, this.variables[j].shape));
          this.variables[j + 1].assign(tf.tensor(layer.b, this.variables[j + 1].shape));
        });
      });
    });
  }

  /** An independent copy (its own variables): e.g. SAC's target networks. */
  clone(): QEnsemble {
    return new QEnsemble(this.spec, { weights: this.getWeights() });
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const v of this.variables) v.dispose();
  }
}

/** Glorot-uniform weights, zero biases, member by member. */
export function initialQEnsembleWeights(spec: QEnsembleSpec, rng: Rng): QEnsembleWeights {
  const dims = qEnsembleDims(spec);
  const members: QEnsembleWeights['members'] = [];
  for (let k = 0; k < spec.numQ; k++) {
    const layers: QEnsembleWeights['members'][number]['layers'] = [];
    for (let i = 0; i + 1 < dims.length; i++) {
      const limit = Math.sqrt(6 / (dims[i] + dims[i + 1]));
      layers.push({ W: rng.fillUniform(new Float32Array(dims[i] * dims[i + 1]), -limit, limit), b: new Float32Array(dims[i + 1]) });
    }
    members.push({ layers });
  }
  return { members };
}

/** @throws ValidationError when `weights` do not fit `spec` or hold non-finite values */
export function checkQEnsembleWeights(spec: QEnsembleSpec, weights: QEnsembleWeights): void {
  const where = 'QEnsembleWeights';
  const dims = qEnsembleDims(spec);
  if (!Array.isArray(weights?.members) || weights.members.length !== spec.numQ) {
    throw new ValidationError(where, 'members', `expected ${spec.numQ} members, got ${describe(weights?.members)}`);
  }
  const finite = (a: ArrayLike<number>, name: string, len: number): void => {
    if (a?.length !== len) throw new ValidationError(where, name, `expected ${len} values, got ${describe(a)}`);
    for (let k = 0; k < len; k++) if (!Number.isFinite(a[k])) throw new ValidationError(where, `${name}[${k}]`, `expected a finite number, got ${a[k]}`);
  };
  weights.members.forEach((member, k) => {
    if (!Array.isArray(member?.layers) || member.layers.length !== dims.length - 1) {
      throw new ValidationError(where, `members[${k}].layers`, `expected ${dims.length - 1} layers, got ${describe(member?.layers)}`);
    }
    member.layers.forEach((l, i) => {
      finite(l.W, `members[${k}].layers[${i}].W`, dims[i] * dims[i + 1]);
      finite(l.b, `members[${k}].layers[${i}].b`, dims[i + 1]);
    });
  });
}
