/**
 * The ensemble's forward pass written out plainly in float64: the ground truth that the tfjs model
 * and the ONNX graph are both tested against. Speed is not a goal here; readability is.
 *
 * It implements exactly the pass documented on `EnsembleWeights` (src/models/types.ts), on the
 * grouped row layout of `EnsemblePredictor`: rows [k·B, (k+1)·B) go through member k.
 */
import { ValidationError } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import { outDimOf } from './types.js';
import type { EnsembleSpec, EnsembleWeights } from './types.js';

/** Per layer [in, out]: the hidden layers, then the output layer (outDim, ×2 when probabilistic). */
export function layerDimsOf(spec: EnsembleSpec): [number, number][] {
  const widths = [spec.obsDim + spec.actDim, ...spec.hidden, outDimOf(spec) * (spec.probabilistic ? 2 : 1)];
  return widths.slice(1).map((out, l) => [widths[l], out]);
}

/**
 * Checks that every array of `w` has the length its spec implies and holds finite numbers.
 * @throws ValidationError naming the array (e.g. `weights[2]`) and the expected length
 */
export function checkEnsembleWeights(w: EnsembleWeights, where: string): void {
  const { spec } = w;
  const positive = (v: number): boolean => Number.isInteger(v) && v > 0;
  if (!positive(spec.numMembers) || !positive(spec.obsDim) || spec.actDim < 0 || !Number.isInteger(spec.actDim)) {
    throw new ValidationError(
      where,
      'spec',
      `expected positive integer numMembers and obsDim and a non-negative integer actDim, got ${JSON.stringify(spec)}`,
    );
  }
  if (!spec.hidden.every(positive)) throw new ValidationError(where, 'spec.hidden', `expected positive integers, got [${spec.hidden.join(', ')}]`);
  if (!['silu', 'relu', 'tanh'].includes(spec.activation)) {
    throw new ValidationError(where, 'spec.activation', `expected 'silu', 'relu' or 'tanh', got ${JSON.stringify(spec.activation)}`);
  }
  const dims = layerDimsOf(spec);
  const K = spec.numMembers;
  const inDim = spec.obsDim + spec.actDim;
  const outDim = outDimOf(spec);
  if (w.weights.length !== dims.length || w.biases.length !== dims.length) {
    throw new ValidationError(
      where,
      'weights',
      `expected ${dims.length} layers (hidden [${spec.hidden.join(', ')}] + output), got ${w.weights.length} weight and ${w.biases.length} bias arrays`,
    );
  }
  const check = (field: string, a: Float32Array | undefined, length: number): void => {
    if (!(a instanceof Float32Array)) throw new ValidationError(where, field, `expected a Float32Array of length ${length}, got ${a === undefined ? 'undefined' : typeof a}`);
    if (a.length !== length) throw new ValidationError(where, field, `expected length ${length}, got length ${a.length}`);
    for (let i = 0; i < a.length; i++) {
      if (!Number.isFinite(a[i])) throw new ValidationError(where, `${field}[${i}]`, `expected a finite number, got ${a[i]}`);
    }
  };
  dims.forEach(([fanIn, fanOut], l) => {
    check(`weights[${l}]`, w.weights[l], K * fanIn * fanOut);
    check(`biases[${l}]`, w.biases[l], K * fanOut);
  });
  check('inputMean', w.inputMean, inDim);
  check('inputStd', w.inputStd, inDim);
  check('targetMean', w.targetMean, outDim);
  check('targetStd', w.targetStd, outDim);
  if (spec.probabilistic) {
    check('maxLogvar', w.maxLogvar, outDim);
    check('minLogvar', w.minLogvar, outDim);
  }
}

/** softplus(x) = log(1 + eˣ), without overflow for large x. */
export function softplus(x: number): number {
  return Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
}

function activate(kind: EnsembleSpec['activation'], x: number): number {
  switch (kind) {
    case 'silu':
      return x / (1 + Math.exp(-x));
    case 'relu':
      return x > 0 ? x : 0;
    case 'tanh':
      return Math.tanh(x);
  }
}

/**
 * The ensemble forward pass in float64, on grouped rows (member k takes rows [k·B, (k+1)·B)).
 * Arguments and outputs follow `EnsemblePredictor.predict`; outputs may be float32 or float64.
 *
 * @param rowsPerMember B
 * @param outReward written when given and the reward is learned
 * @param outVar written when given and members are probabilistic
 * @example
 * const w = randomEnsembleWeights(spec, new Rng(0));
 * referenceForward(w, obs, act, 10, nextObs, reward, variance);
 */
export function referenceForward(
  w: EnsembleWeights,
  obs: ArrayLike<number>,
  act: ArrayLike<number>,
  rowsPerMember: number,
  outNextObs: Float32Array | Float64Array,
  outReward?: Float32Array | Float64Array,
  outVar?: Float32Array | Float64Array,
): void {
  const { spec } = w;
  const { obsDim, actDim, numMembers: K } = spec;
  const B = rowsPerMember;
  const inDim = obsDim + actDim;
  const outDim = outDimOf(spec);
  const dims = layerDimsOf(spec);
  const where = 'referenceForward';
  if (!Number.isInteger(B) || B < 0) throw new ValidationError(where, 'rowsPerMember', `expected a non-negative integer, got ${B}`);
  const lengths: [string, ArrayLike<number> | undefined, number][] = [
    ['obs', obs, K * B * obsDim],
    ['act', act, K * B * actDim],
    ['outNextObs', outNextObs, K * B * obsDim],
    ['outReward', outReward, K * B],
    ['outVar', outVar, K * B * outDim],
  ];
  for (const [field, a, n] of lengths) {
    if (a !== undefined && a.length !== n) throw new ValidationError(where, field, `expected length ${n} (K=${K}, B=${B}), got length ${a.length}`);
  }

  for (let k = 0; k < K; k++) {
    for (let b = 0; b < B; b++) {
      const row = k * B + b;
      // x = ([obs, act] − inputMean) / inputStd
      let h: number[] = new Array<number>(inDim);
      for (let i = 0; i < obsDim; i++) h[i] = (obs[row * obsDim + i] - w.inputMean[i]) / w.inputStd[i];
      for (let i = 0; i < actDim; i++) h[obsDim + i] = (act[row * actDim + i] - w.inputMean[obsDim + i]) / w.inputStd[obsDim + i];

      // h_l = act(h_{l−1} · W_l[k] + b_l[k]); the last layer is linear.
      dims.forEach(([fanIn, fanOut], l) => {
        const W = w.weights[l];
        const bias = w.biases[l];
        const next = new Array<number>(fanOut);
        for (let j = 0; j < fanOut; j++) {
          let s = bias[k * fanOut + j];
          for (let i = 0; i < fanIn; i++) s += h[i] * W[(k * fanIn + i) * fanOut + j];
          next[j] = l < dims.length - 1 ? activate(spec.activation, s) : s;
        }
        h = next;
      });

      for (let j = 0; j < outDim; j++) {
        // target = mean_n · targetStd + targetMean; nextObs = obs + Δ; reward is the last target.
        const target = h[j] * w.targetStd[j] + w.targetMean[j];
        if (j < obsDim) outNextObs[row * obsDim + j] = obs[row * obsDim + j] + target;
        else if (outReward) outReward[row] = target;
        if (spec.probabilistic && outVar) {
          const maxL = w.maxLogvar![j];
          const minL = w.minLogvar![j];
          let logvar = maxL - softplus(maxL - h[outDim + j]);
          logvar = minL + softplus(logvar - minL);
          outVar[row * outDim + j] = Math.exp(logvar) * w.targetStd[j] * w.targetStd[j];
        }
      }
    }
  }
}

/**
 * Random but plausible ensemble weights for tests: He-scaled (SiLU/ReLU) or Glorot-scaled (tanh)
 * normal weights, small non-zero biases, input and target statistics far from (0, 1), and
 * log-variance bounds near mbrl-lib's initial values (max ≈ 0.5, min ≈ −10).
 * @example
 * const w = randomEnsembleWeights({ numMembers: 7, obsDim: 17, actDim: 6, hidden: [200, 200, 200, 200],
 *   activation: 'silu', probabilistic: true, learnReward: true }, new Rng(1));
 */
export function randomEnsembleWeights(spec: EnsembleSpec, rng: Rng): EnsembleWeights {
  const K = spec.numMembers;
  const dims = layerDimsOf(spec);
  const inDim = spec.obsDim + spec.actDim;
  const outDim = outDimOf(spec);
  const weights = dims.map(([fanIn, fanOut], l) => {
    const last = l === dims.length - 1;
    const std = spec.activation === 'tanh' || last ? Math.sqrt(2 / (fanIn + fanOut)) : Math.sqrt(2 / fanIn);
    return rng.fillNormal(new Float32Array(K * fanIn * fanOut), 0, std);
  });
  const biases = dims.map(([, fanOut]) => rng.fillUniform(new Float32Array(K * fanOut), -0.1, 0.1));
  const uniform = (n: number, lo: number, hi: number): Float32Array => rng.fillUniform(new Float32Array(n), lo, hi);
  const w: EnsembleWeights = {
    spec: { ...spec, hidden: [...spec.hidden] },
    weights,
    biases,
    inputMean: rng.fillNormal(new Float32Array(inDim), 0, 2),
    inputStd: uniform(inDim, 0.2, 3),
    targetMean: rng.fillNormal(new Float32Array(outDim), 0, 0.5),
    targetStd: uniform(outDim, 0.05, 2),
  };
  if (spec.probabilistic) {
    w.maxLogvar = uniform(outDim, 0.2, 0.8);
    w.minLogvar = uniform(outDim, -10.5, -9.5);
  }
  return w;
}
