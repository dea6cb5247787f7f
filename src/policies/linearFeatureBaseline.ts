import { ValidationError, describe } from '../core/errors.js';
import type { Baseline } from './baseline.js';

/** Options of `LinearFeatureBaseline`. */
export interface LinearFeatureBaselineOptions {
  obsDim: number;
  /** Initial ridge coefficient; multiplied by 10 (up to 4 times) until the solution is finite. Default 1e-5 (rllab's). */
  regCoeff?: number;
}

/**
 * rllab's linear feature baseline (rllab/baselines/linear_feature_baseline.py; the baseline of
 * the original TRPO benchmarks, ME-TRPO and MB-MPO): a ridge regression of the returns on
 *
 *   φ(s, t) = [o, o², t/100, (t/100)², (t/100)³, 1],   o = clip(s, −10, 10)  (raw observations)
 *
 * with t the step within the episode. Fit: w = (ΦᵀΦ + c I)⁻¹ Φᵀ y, solved by Cholesky in float64;
 * when that fails (not positive definite, or a non-finite result) c grows tenfold, up to 4 times
 * (garage's retry; the last good weights are kept if all fail). Before the first fit V = 0.
 *
 * @example
 * const baseline = new LinearFeatureBaseline({ obsDim: 3 });
 * const v = baseline.predict(batch.obs, batch.timesteps, batch.size);
 * baseline.fit(batch.obs, batch.timesteps, returns, batch.size);
 */
export class LinearFeatureBaseline implements Baseline {
  readonly obsDim: number;
  readonly regCoeff: number;
  #coeffs: Float64Array | null = null;

  constructor(options: LinearFeatureBaselineOptions) {
    const { obsDim, regCoeff = 1e-5 } = options;
    if (!Number.isInteger(obsDim) || obsDim < 1) throw new ValidationError('LinearFeatureBaseline', 'obsDim', `expected a positive integer, got ${describe(obsDim)}`);
    if (!(regCoeff >= 0 && Number.isFinite(regCoeff))) throw new ValidationError('LinearFeatureBaseline', 'regCoeff', `expected a finite number ≥ 0, got ${describe(regCoeff)}`);
    this.obsDim = obsDim;
    this.regCoeff = regCoeff;
  }

  /** Number of features: 2·obsDim + 4. */
  get numFeatures(): number {
    return 2 * this.obsDim + 4;
  }

  /** The regression weights (null before the first fit). */
  get coeffs(): Float64Array | null {
    return this.#coeffs && Float64Array.from(this.#coeffs);
  }

  /** φ(s, t) for n rows, row-major [n, numFeatures]. */
  features(obs: ArrayLike<number>, timesteps: ArrayLike<number>, n: number): Float64Array {
    const D = this.obsDim;
    const F = this.numFeatures;
    if (obs.length < n * D || timesteps.length < n) throw new ValidationError('LinearFeatureBaseline', 'obs', `expected ${n} rows of ${D} and ${n} timesteps, got ${obs.length} values and ${timesteps.length} timesteps`);
    const phi = new Float64Array(n * F);
    for (let r = 0; r < n; r++) {
      const row = r * F;
      for (let j = 0; j < D; j++) {
        const o = Math.min(10, Math.max(-10, obs[r * D + j]));
        phi[row + j] = o;
        phi[row + D + j] = o * o;
      }
      const a = timesteps[r] / 100;
      phi[row + 2 * D] = a;
      phi[row + 2 * D + 1] = a * a;
      phi[row + 2 * D + 2] = a * a * a;
      phi[row + 2 * D + 3] = 1;
    }
    return phi;
  }

  predict(obs: ArrayLike<number>, timesteps: ArrayLike<number>, n: number): Float64Array {
    const out = new Float64Array(n);
    const w = this.#coeffs;
    if (w === null) return out;
    const F = this.numFeatures;
    const phi = this.features(obs, timesteps, n);
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let k = 0; k < F; k++) s += phi[r * F + k] * w[k];
      out[r] = s;
    }
    return out;
  }

  fit(obs: ArrayLike<number>, timesteps: ArrayLike<number>, targets: ArrayLike<number>, n: number): number {
    const F = this.numFeatures;
    const before = this.predict(obs, timesteps, n);
    let mse = 0;
    for (let r = 0; r < n; r++) mse += (before[r] - targets[r]) ** 2;
    const phi = this.features(obs, timesteps, n);
    const gram = new Float64Array(F * F);
    const rhs = new Float64Array(F);
    for (let r = 0; r < n; r++) {
      const row = r * F;
      for (let i = 0; i < F; i++) {
        const pi = phi[row + i];
        rhs[i] += pi * targets[r];
        for (let j = 0; j <= i; j++) gram[i * F + j] += pi * phi[row + j];
      }
    }
    let reg = this.regCoeff;
    for (let attempt = 0; attempt < 5; attempt++, reg *= 10) {
      const w = solveRidge(gram, rhs, F, reg);
      if (w !== null) {
        this.#coeffs = w;
        break;
      }
    }
    return n > 0 ? mse / n : 0;
  }
}

/**
 * Solves (G + reg·I) w = b by Cholesky for the lower triangle of a symmetric G [F, F].
 * @returns w, or null when the matrix is not numerically positive definite or w is not finite
 */
export function solveRidge(gram: Float64Array, b: Float64Array, F: number, reg: number): Float64Array | null {
  const L = new Float64Array(F * F);
  for (let i = 0; i < F; i++) {
    for (let j = 0; j <= i; j++) {
      let s = gram[i * F + j] + (i === j ? reg : 0);
      for (let k = 0; k < j; k++) s -= L[i * F + k] * L[j * F + k];
      if (i === j) {
        if (!(s > 0)) return null;
        L[i * F + i] = Math.sqrt(s);
      } else {
        L[i * F + j] = s / L[j * F + j];
      }
    }
  }
  const y = new Float64Array(F);
  for (let i = 0; i < F; i++) {
    let s = b[i];
    for (let k = 0; k < i; k++) s -= L[i * F + k] * y[k];
    y[i] = s / L[i * F + i];
  }
  const w = new Float64Array(F);
  for (let i = F - 1; i >= 0; i--) {
    let s = y[i];
    for (let k = i + 1; k < F; k++) s -= L[k * F + i] * w[k];
    w[i] = s / L[i * F + i];
  }
  return w.every(Number.isFinite) ? w : null;
}
