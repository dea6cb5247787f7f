import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/core/backend.js';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { DynamicsEnsemble, ENSEMBLE_DEFAULTS, makeEnsembleConfig } from '../../src/models/ensemble.js';
import { randomEnsembleWeights, referenceForward, softplus } from '../../src/models/referenceForward.js';
import { MemberKernel } from '../../src/models/trainer.js';
import type { KernelInit } from '../../src/models/trainer.js';
import { outDimOf } from '../../src/models/types.js';
import type { EnsembleSpec } from '../../src/models/types.js';

beforeAll(async () => {
  await initBackend();
});

const spec = (over: Partial<EnsembleSpec> = {}): EnsembleSpec => ({
  numMembers: 3,
  obsDim: 4,
  actDim: 2,
  hidden: [16, 16],
  activation: 'silu',
  probabilistic: true,
  learnReward: true,
  ...over,
});

function inputs(s: EnsembleSpec, rows: number, rng: Rng): { obs: Float32Array; act: Float32Array } {
  return { obs: rng.fillNormal(new Float32Array(rows * s.obsDim), 0, 2), act: rng.fillUniform(new Float32Array(rows * s.actDim), -1, 1) };
}

/** A kernel over one member with the given flat parameters and training rows. */
function kernel(dims: number[], outDim: number, probabilistic: boolean, activation: EnsembleSpec['activation'], params: Float32Array, x: Float32Array, y: Float32Array): MemberKernel {
  const init: KernelInit = {
    dims,
    outDim,
    probabilistic,
    activation,
    members: [0],
    params: [params],
    adamM: [new Float32Array(params.length)],
    adamV: [new Float32Array(params.length)],
    adamStep: 0,
    decay: new Float32Array(params.length),
    learningRate: 1e-3,
    beta1: 0.9,
    beta2: 0.999,
    epsilon: 1e-8,
    trainX: x,
    trainY: y,
    evalX: x,
    evalY: y,
  };
  return new MemberKernel(tf, init);
}

function paramCount(dims: number[]): number {
  let n = 0;
  for (let l = 0; l + 1 < dims.length; l++) n += dims[l] * dims[l + 1] + dims[l + 1];
  return n;
}

describe('Gaussian NLL (PETS/mbrl-lib)', () => {
  it('matches a hand computation for 2 outputs with known mean, log-variance and targets', () => {
    // Zero weights: every hidden unit is silu(0) = 0, so the output is the last layer's bias,
    // i.e. mean = (0.5, −1) and raw log-variance = (0.2, −0.3) on every row.
    const dims = [3, 4, 4];
    const params = new Float32Array(paramCount(dims));
    params.set([0.5, -1, 0.2, -0.3], params.length - 4);
    const y = Float32Array.from([1, -1, 0, 0.5]); // two rows of 2 targets
    const k = kernel(dims, 2, true, 'silu', params, new Float32Array(6), y);
    const maxL = Float32Array.from([0.5, 0.4]);
    const minL = Float32Array.from([-10, -8]);
    const { loss } = k.gradients(0, Uint32Array.from([0, 1]), maxL, minL, new Float32Array(params.length));

    // By hand: logvar_1 = −10 + softplus(0.5 − softplus(0.5 − 0.2) + 10) = −0.35429,
    // logvar_2 = −8 + softplus(0.4 − softplus(0.4 + 0.3) + 8) = −0.70251; then
    // row 1: 0.25·e^{0.35429} − 0.35429 + 0 − 0.70251 = −0.70051
    // row 2: 0.25·e^{0.35429} − 0.35429 + 2.25·e^{0.70251} − 0.70251 = 3.84182; mean 1.57066.
    const expected = 1.5706552;
    expect(loss).toBeCloseTo(expected, 5);
    expect(softplus(0.3)).toBeCloseTo(0.854355, 6); // the hand values above use softplus(x) = ln(1 + eˣ)
  });

  it('is the MSE (mean over rows of Σ_d) for deterministic members', () => {
    const dims = [3, 4, 2];
    const params = new Float32Array(paramCount(dims));
    params.set([0.5, -1], params.length - 2);
    const y = Float32Array.from([1, -1, 0, 0.5]);
    const k = kernel(dims, 2, false, 'relu', params, new Float32Array(6), y);
    const { loss } = k.gradients(0, Uint32Array.from([0, 1]), new Float32Array(0), new Float32Array(0), new Float32Array(params.length));
    expect(loss).toBeCloseTo((0.25 + 0 + 0.25 + 2.25) / 2, 6);
  });
});

describe('hand-written backward pass', () => {
  // The trainer computes gradients by hand (2-D matMuls only); check them against tfjs autodiff.
  for (const [activation, probabilistic] of [
    ['silu', true],
    ['relu', true],
    ['tanh', false],
  ] as const) {
    it(`matches tfjs autodiff (${activation}, ${probabilistic ? 'probabilistic' : 'deterministic'})`, () => {
      const rng = new Rng(3);
      const D = 3;
      const dims = [5, 7, 6, D * (probabilistic ? 2 : 1)];
      const params = rng.fillNormal(new Float32Array(paramCount(dims)), 0, 0.5);
      const n = 9;
      const x = rng.fillNormal(new Float32Array(n * dims[0]));
      const y = rng.fillNormal(new Float32Array(n * D));
      const maxL = Float32Array.from([0.5, 0.3, 0.1]);
      const minL = Float32Array.from([-1, -2, -3]); // tight, so both bounds are active somewhere
      const k = kernel(dims, D, probabilistic, activation, params.slice(), x, y);
      const ours = k.gradients(0, Uint32Array.from({ length: n }, (_, i) => i), maxL, minL, new Float32Array(params.length));

      const L = dims.length - 1;
      const vars: tf.Tensor[] = [];
      let off = 0;
      for (let l = 0; l < L; l++) {
        vars.push(tf.tensor2d(params.slice(off, off + dims[l] * dims[l + 1]), [dims[l], dims[l + 1]]));
        off += dims[l] * dims[l + 1];
        vars.push(tf.tensor1d(params.slice(off, off + dims[l + 1])));
        off += dims[l + 1];
      }
      if (probabilistic) vars.push(tf.tensor1d(maxL), tf.tensor1d(minL));
      const lossFn = (...v: tf.Tensor[]): tf.Scalar => {
        let h: tf.Tensor = tf.tensor2d(x, [n, dims[0]]);
        for (let l = 0; l < L; l++) {
          h = tf.add(tf.matMul(h as tf.Tensor2D, v[2 * l] as tf.Tensor2D), v[2 * l + 1]);
          if (l < L - 1) h = activation === 'silu' ? tf.mul(h, tf.sigmoid(h)) : activation === 'relu' ? tf.relu(h) : tf.tanh(h);
        }
        const yt = tf.tensor2d(y, [n, D]);
        if (!probabilistic) return tf.div(tf.sum(tf.square(tf.sub(h, yt))), n);
        const mean = tf.slice(h, [0, 0], [n, D]);
        const raw = tf.slice(h, [0, D], [n, D]);
        const [mx, mn] = [v[2 * L], v[2 * L + 1]];
        const upper = tf.sub(mx, tf.softplus(tf.sub(mx, raw)));
        const lv = tf.add(mn, tf.softplus(tf.sub(upper, mn)));
        return tf.div(tf.sum(tf.add(tf.mul(tf.square(tf.sub(mean, yt)), tf.exp(tf.neg(lv))), lv)), n);
      };
      const { value, grads } = tf.tidy(() => {
        const r = tf.valueAndGrads(lossFn)(vars);
        return { value: r.value.dataSync()[0], grads: r.grads.map((g) => Array.from(g.dataSync())) };
      });
      vars.forEach((t) => t.dispose());
      expect(ours.loss).toBeCloseTo(value, 4);
      const auto = grads.slice(0, 2 * L).flat();
      const scale = Math.max(...auto.map(Math.abs));
      for (let i = 0; i < auto.length; i++) expect(Math.abs(ours.grad[i] - auto[i])).toBeLessThan(1e-4 * scale + 1e-6);
      if (probabilistic) {
        const autoBounds = [...grads[2 * L], ...grads[2 * L + 1]];
        for (let i = 0; i < 2 * D; i++) expect(ours.boundGrad[i]).toBeCloseTo(autoBounds[i], 4);
      }
    });
  }
});

describe('DynamicsEnsemble', () => {
  it('has the MBPO defaults and validates its config', () => {
    expect(ENSEMBLE_DEFAULTS).toMatchObject({ kind: 'dynamics-ensemble', numMembers: 7, hidden: [200, 200, 200, 200], activation: 'silu', numElites: 5 });
    expect(makeEnsembleConfig({ numMembers: 3 }).numElites).toBe(3);
    expect(() => makeEnsembleConfig({ numElites: 9 })).toThrow(/numElites.*\[1, numMembers = 7\].*9/);
    expect(() => makeEnsembleConfig({ hidden: [200, 0] })).toThrow(ValidationError);
    const c = makeEnsembleConfig({ numMembers: 5, probabilistic: false });
    expect(makeEnsembleConfig(JSON.parse(JSON.stringify(c)) as Partial<typeof c>)).toEqual(c);
  });

  it('initialises like mbrl-lib: truncated normal with std 1/(2√fan_in), zero biases, identity normalisation', () => {
    const e = new DynamicsEnsemble({ obsDim: 17, actDim: 6, rng: new Rng(0), config: { numMembers: 2 } });
    const w = e.toWeights();
    const w0 = w.weights[0];
    const std = 1 / (2 * Math.sqrt(23));
    const emp = Math.sqrt(w0.reduce((s, v) => s + v * v, 0) / w0.length);
    expect(Math.max(...w0.map(Math.abs))).toBeLessThanOrEqual(2 * std + 1e-7);
    expect(emp).toBeGreaterThan(0.8 * std); // a normal truncated at 2σ has std 0.88σ
    expect(emp).toBeLessThan(0.95 * std);
    expect(w.biases.every((b) => b.every((v) => v === 0))).toBe(true);
    expect(Array.from(w.inputStd)).toEqual(new Array(23).fill(1));
    expect(Array.from(w.maxLogvar!)).toEqual(new Array(18).fill(0.5));
    expect(Array.from(w.minLogvar!)).toEqual(new Array(18).fill(-10));
    e.dispose();
  });

  for (const s of [
    spec(),
    spec({ activation: 'relu', probabilistic: false, learnReward: false }),
    spec({ activation: 'tanh', numMembers: 2, hidden: [8] }),
  ]) {
    it(`forwardTf matches referenceForward to 1e-5 (${s.activation}, ${s.probabilistic ? 'probabilistic' : 'deterministic'}, reward ${s.learnReward})`, () => {
      const rng = new Rng(11);
      const w = randomEnsembleWeights(s, rng);
      const e = DynamicsEnsemble.fromWeights(w);
      const B = 13;
      const { obs, act } = inputs(s, s.numMembers * B, rng);
      const f = e.forwardTf(obs, act, B);
      const rows = s.numMembers * B;
      const nextObs = new Float64Array(rows * s.obsDim);
      const reward = new Float64Array(rows);
      const variance = new Float64Array(rows * outDimOf(s));
      referenceForward(w, obs, act, B, nextObs, s.learnReward ? reward : undefined, s.probabilistic ? variance : undefined);
      const close = (a: ArrayLike<number>, b: ArrayLike<number>): void => {
        expect(a.length).toBe(b.length);
        for (let i = 0; i < b.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(b[i])));
      };
      close(f.nextObs, nextObs);
      if (s.learnReward) close(f.reward!, reward);
      else expect(f.reward).toBeUndefined();
      if (s.probabilistic) close(f.variance!, variance);
      else expect(f.variance).toBeUndefined();
      e.dispose();
    });
  }

  it('keeps the log-variance within its soft bounds [minLogvar, maxLogvar], even for extreme outputs', () => {
    const s = spec({ numMembers: 2, hidden: [8] });
    const w = randomEnsembleWeights(s, new Rng(5));
    // Output layer scaled so raw log-variances reach ±1e3.
    w.weights[1] = w.weights[1].map((v) => v * 1e3);
    w.biases[1] = w.biases[1].map((v, i) => v + (i % 2 === 0 ? 500 : -500));
    const e = DynamicsEnsemble.fromWeights(w);
    const B = 200;
    const { obs, act } = inputs(s, 2 * B, new Rng(6));
    const { logvar } = e.forwardTf(obs, act, B);
    const D = outDimOf(s);
    let hitUpper = false;
    let hitLower = false;
    for (let r = 0; r < 2 * B; r++) {
      for (let d = 0; d < D; d++) {
        const lv = logvar![r * D + d];
        const [mx, mn] = [w.maxLogvar![d], w.minLogvar![d]];
        // The lower softplus adds at most softplus(min − max) ≈ e^{−10} above the upper bound.
        expect(lv).toBeLessThanOrEqual(mx + softplus(mn - mx) + 1e-5);
        expect(lv).toBeGreaterThanOrEqual(mn - 1e-5);
        if (lv > mx - 1e-3) hitUpper = true;
        if (lv < mn + 1e-3) hitLower = true;
      }
    }
    expect(hitUpper && hitLower).toBe(true);
    e.dispose();
  });

  it('round-trips toWeights/fromWeights with identical predictions and elites', () => {
    const rng = new Rng(21);
    const a = new DynamicsEnsemble({ obsDim: 4, actDim: 2, rng, config: { numMembers: 4, numElites: 2, hidden: [16, 16] } });
    a.setWeights(randomEnsembleWeights(a.spec, rng));
    a.setElites([3, 1]);
    const b = DynamicsEnsemble.fromWeights(a.toWeights(), { elites: [...a.elites], config: { numElites: 2 } });
    expect(b.spec).toEqual(a.spec);
    expect(b.elites).toEqual([1, 3]);
    const { obs, act } = inputs(a.spec, 4 * 7, rng);
    const fa = a.forwardTf(obs, act, 7);
    const fb = b.forwardTf(obs, act, 7);
    expect(Array.from(fb.nextObs)).toEqual(Array.from(fa.nextObs));
    expect(Array.from(fb.reward!)).toEqual(Array.from(fa.reward!));
    expect(Array.from(fb.variance!)).toEqual(Array.from(fa.variance!));
    // toWeights returns copies: mutating them does not touch the model.
    a.toWeights().weights[0].fill(0);
    expect(Array.from(a.forwardTf(obs, act, 7).nextObs)).toEqual(Array.from(fa.nextObs));
    a.dispose();
    b.dispose();
  });

  it('implements EnsemblePredictor.predict through forwardTf', async () => {
    const s = spec();
    const e = DynamicsEnsemble.fromWeights(randomEnsembleWeights(s, new Rng(2)));
    const B = 5;
    const { obs, act } = inputs(s, 3 * B, new Rng(3));
    const nextObs = new Float32Array(3 * B * s.obsDim);
    const reward = new Float32Array(3 * B);
    const variance = new Float32Array(3 * B * outDimOf(s));
    await e.predict(obs, act, B, nextObs, reward, variance);
    const f = e.forwardTf(obs, act, B);
    expect(Array.from(nextObs)).toEqual(Array.from(f.nextObs));
    expect(Array.from(variance)).toEqual(Array.from(f.variance!));
    e.dispose();
  });

  it('rejects weights of another spec and inputs of the wrong length, naming the field', () => {
    const e = new DynamicsEnsemble({ obsDim: 4, actDim: 2, rng: new Rng(0), config: { numMembers: 3, hidden: [16, 16] } });
    expect(() => e.setWeights(randomEnsembleWeights(spec({ hidden: [16, 8] }), new Rng(1)))).toThrow(ValidationError);
    expect(() => e.forwardTf(new Float32Array(5), new Float32Array(6), 1)).toThrow(/obs: expected length 12/);
    e.dispose();
    expect(() => e.forwardTf(new Float32Array(12), new Float32Array(6), 1)).toThrow(/disposed/);
  });

  it('does not leak tensors over many predictions and training steps', () => {
    const s = spec();
    const e = DynamicsEnsemble.fromWeights(randomEnsembleWeights(s, new Rng(4)));
    const { obs, act } = inputs(s, 3 * 8, new Rng(5));
    e.forwardTf(obs, act, 8); // caches the weight tensors
    const dims = [6, 16, 16, 10];
    const x = new Rng(6).fillNormal(new Float32Array(64 * 6));
    const y = new Rng(7).fillNormal(new Float32Array(64 * 5));
    const k = kernel(dims, 5, true, 'silu', new Rng(8).fillNormal(new Float32Array(paramCount(dims)), 0, 0.3), x, y);
    const bounds = [new Float32Array(5).fill(0.5), new Float32Array(5).fill(-10)] as const;
    k.step([Uint32Array.from({ length: 32 }, (_, i) => i)], ...bounds);
    k.evaluate();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 50; i++) {
      e.forwardTf(obs, act, 8);
      k.step([Uint32Array.from({ length: 32 }, (_, j) => (i + j) % 64)], ...bounds);
    }
    k.evaluate();
    expect(tf.memory().numTensors).toBe(before);
    e.dispose();
    expect(tf.memory().numTensors).toBeLessThan(before);
  });
});
