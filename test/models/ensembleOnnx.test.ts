import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { decodeModelProto } from '../../src/export/onnxProto.js';
import { ensembleToOnnx, measureGemmPeak, OrtEnsemblePredictor } from '../../src/models/ensembleOnnx.js';
import { randomEnsembleWeights, referenceForward, softplus } from '../../src/models/referenceForward.js';
import { outDimOf } from '../../src/models/types.js';
import type { EnsembleSpec, EnsembleWeights } from '../../src/models/types.js';
import { PYTHON_WITH_ONNX } from '../helpers.js';


const PETS: EnsembleSpec = {
  numMembers: 7,
  obsDim: 17,
  actDim: 6,
  hidden: [200, 200, 200, 200],
  activation: 'silu',
  probabilistic: true,
  learnReward: true,
};

/** Every fifth row is far outside the normalisation range: each input 5σ–30σ from its mean. */
const isFarRow = (row: number): boolean => row % 5 === 0;

/** Seeded inputs around the weights' input statistics: N(0, 1) in normalised units, or far outside. */
function makeInputs(w: EnsembleWeights, rows: number, rng: Rng): { obs: Float32Array; act: Float32Array } {
  const { obsDim, actDim } = w.spec;
  const obs = new Float32Array(rows * obsDim);
  const act = new Float32Array(rows * actDim);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < obsDim + actDim; i++) {
      const z = isFarRow(r) ? rng.uniform(5, 30) * (rng.random() < 0.5 ? -1 : 1) : rng.normal();
      const v = w.inputMean[i] + z * w.inputStd[i];
      if (i < obsDim) obs[r * obsDim + i] = v;
      else act[r * actDim + i - obsDim] = v;
    }
  }
  return { obs, act };
}

interface Outputs {
  nextObs: Float32Array | Float64Array;
  reward?: Float32Array | Float64Array;
  variance?: Float32Array | Float64Array;
}

/**
 * Compares the ONNX outputs with the float64 reference.
 *
 * Tolerance: 1e-5 × max(1, |reference|) per element on in-range rows, and 1e-5 × max(1, the row's
 * largest |reference output|) on far rows. A float64 reference cannot be matched to 1e-5 absolute
 * by any float32 computation once values pass ~100 (one float32 ulp at 128 is 1.5e-5), and on far
 * rows the rounding error follows the size of the intermediate values, i.e. of the row. Variances
 * are also compared in log space (1e-5 in range, 1e-4 far), which sees errors in tiny variances that
 * an absolute tolerance would miss. Any real bug (member order, split order, a sign in the soft
 * bound, a missing targetStd²) is off by orders of magnitude more.
 */
function expectMatchesReference(spec: EnsembleSpec, ort: Outputs, ref: Outputs, rows: number): void {
  const { obsDim } = spec;
  const outDim = outDimOf(spec);
  let worst = { excess: 0, what: '' };
  const check = (what: string, o: number, r: number, tol: number): void => {
    const excess = Math.abs(o - r) / tol;
    if (!(excess <= worst.excess)) worst = { excess, what: `${what}: onnx ${o}, reference ${r}, tolerance ${tol.toExponential(2)}` };
  };
  for (let row = 0; row < rows; row++) {
    const far = isFarRow(row);
    let rowScale = 1;
    for (let j = 0; j < obsDim; j++) rowScale = Math.max(rowScale, Math.abs(ref.nextObs[row * obsDim + j]));
    if (ref.reward) rowScale = Math.max(rowScale, Math.abs(ref.reward[row]));
    if (ref.variance) for (let j = 0; j < outDim; j++) rowScale = Math.max(rowScale, ref.variance[row * outDim + j]);
    const tol = (r: number): number => 1e-5 * (far ? rowScale : Math.max(1, Math.abs(r)));
    for (let j = 0; j < obsDim; j++) {
      const i = row * obsDim + j;
      check(`nextObs[${row}][${j}]`, ort.nextObs[i], ref.nextObs[i], tol(ref.nextObs[i]));
    }
    if (ref.reward) check(`reward[${row}]`, ort.reward![row], ref.reward[row], tol(ref.reward[row]));
    if (ref.variance) {
      for (let j = 0; j < outDim; j++) {
        const i = row * outDim + j;
        check(`variance[${row}][${j}]`, ort.variance![i], ref.variance[i], tol(ref.variance[i]));
        check(`log variance[${row}][${j}]`, Math.log(ort.variance![i]), Math.log(ref.variance[i]), far ? 1e-4 : 1e-5);
      }
    }
  }
  expect(worst.excess, worst.what).toBeLessThanOrEqual(1);
}

/** Runs the predictor and the reference on the same inputs and compares them. */
async function compareWithReference(spec: EnsembleSpec, totalRows: number, seed: number): Promise<{ w: EnsembleWeights; ref: Outputs }> {
  const rng = new Rng(seed);
  const w = randomEnsembleWeights(spec, rng);
  const K = spec.numMembers;
  const B = Math.ceil(totalRows / K);
  const rows = K * B;
  const outDim = outDimOf(spec);
  const { obs, act } = makeInputs(w, rows, rng);
  const alloc = (n: number, on: boolean, T: typeof Float32Array | typeof Float64Array) => (on ? new T(n) : undefined);
  const ref: Outputs = {
    nextObs: new Float64Array(rows * spec.obsDim),
    reward: alloc(rows, spec.learnReward, Float64Array),
    variance: alloc(rows * outDim, spec.probabilistic, Float64Array),
  };
  referenceForward(w, obs, act, B, ref.nextObs, ref.reward, ref.variance);
  const out = {
    nextObs: new Float32Array(rows * spec.obsDim),
    reward: alloc(rows, spec.learnReward, Float32Array) as Float32Array | undefined,
    variance: alloc(rows * outDim, spec.probabilistic, Float32Array) as Float32Array | undefined,
  };
  const predictor = await OrtEnsemblePredictor.create(w, { intraOpThreads: 2 });
  try {
    await predictor.predict(obs, act, B, out.nextObs, out.reward, out.variance);
  } finally {
    predictor.dispose();
  }
  expectMatchesReference(spec, out, ref, rows);
  return { w, ref };
}

describe('referenceForward', () => {
  // K = 2, obsDim 1, actDim 1, hidden [2] (ReLU), probabilistic, learned reward: every number by hand.
  const spec: EnsembleSpec = { numMembers: 2, obsDim: 1, actDim: 1, hidden: [2], activation: 'relu', probabilistic: true, learnReward: true };
  const w: EnsembleWeights = {
    spec,
    // W0[k] is [2 × 2]: member 0 identity, member 1 minus identity
    weights: [new Float32Array([1, 0, 0, 1, -1, 0, 0, -1]), new Float32Array([0.5, 2, 0, 0, 9, 9, 9, 9, 7, 7, 7, 7, 1, -2, 0.5, 0.5])],
    biases: [new Float32Array([0, 0.5, 0, 0]), new Float32Array([0, 0, 0.25, -1, 0, 0, 0, 0])],
    inputMean: new Float32Array([1, 0]),
    inputStd: new Float32Array([2, 1]),
    targetMean: new Float32Array([0.125, -1]),
    targetStd: new Float32Array([2, 3]),
    maxLogvar: new Float32Array([0.5, 0.5]),
    minLogvar: new Float32Array([-10, -10]),
  };
  const obs = new Float32Array([3, 3]);
  const act = new Float32Array([-1, -1]);
  // x = [(3 − 1)/2, (−1 − 0)/1] = [1, −1] for both rows.
  // member 0: relu([1, −1] + [0, 0.5]) = [1, 0] → out = row 0 of W1[0] + b1[0] = [0.5, 2, 0.25, −1]
  // member 1: relu([−1, 1] + [0, 0]) = [0, 1] → out = row 1 of W1[1] + b1[1] = [1, −2, 0.5, 0.5]
  const bounded = (lv: number): number => -10 + softplus(0.5 - softplus(0.5 - lv) + 10);
  const expected = {
    nextObs: [3 + (0.5 * 2 + 0.125), 3 + (1 * 2 + 0.125)],
    reward: [2 * 3 - 1, -2 * 3 - 1],
    variance: [Math.exp(bounded(0.25)) * 4, Math.exp(bounded(-1)) * 9, Math.exp(bounded(0.5)) * 4, Math.exp(bounded(0.5)) * 9],
  };

  it('computes a hand-worked two-member case', () => {
    const nextObs = new Float64Array(2);
    const reward = new Float64Array(2);
    const variance = new Float64Array(4);
    referenceForward(w, obs, act, 1, nextObs, reward, variance);
    expect(Array.from(nextObs)).toEqual(expected.nextObs);
    expect(Array.from(reward)).toEqual(expected.reward);
    expected.variance.forEach((v, i) => expect(variance[i]).toBeCloseTo(v, 12));
    // The soft bounds: softplus(0.5 − 0.25) = ln(1 + e^0.25) ≈ 0.825939, so logvar ≈ −0.325939 (+6e-5 from the lower bound).
    expect(Math.log(variance[0] / 4)).toBeCloseTo(-0.325876, 5);
  });

  it('the ONNX predictor reproduces the hand-worked case', async () => {
    const predictor = await OrtEnsemblePredictor.create(w, { intraOpThreads: 1 });
    const nextObs = new Float32Array(2);
    const reward = new Float32Array(2);
    const variance = new Float32Array(4);
    await predictor.predict(obs, act, 1, nextObs, reward, variance);
    predictor.dispose();
    expected.nextObs.forEach((v, i) => expect(nextObs[i]).toBeCloseTo(v, 6));
    expected.reward.forEach((v, i) => expect(reward[i]).toBeCloseTo(v, 6));
    // float32: the variances (≈ 2.9 and 6.5) are within a few ulp.
    expected.variance.forEach((v, i) => expect(variance[i]).toBeCloseTo(v, 5));
  });

  it('randomEnsembleWeights is deterministic per seed', () => {
    const a = randomEnsembleWeights(PETS, new Rng(3));
    const b = randomEnsembleWeights(PETS, new Rng(3));
    const c = randomEnsembleWeights(PETS, new Rng(4));
    // Compare bytes: a deep equal over 300k floats takes seconds.
    const bytes = (w: EnsembleWeights): Buffer =>
      Buffer.concat([...w.weights, ...w.biases, w.inputMean, w.inputStd, w.targetMean, w.targetStd, w.maxLogvar!, w.minLogvar!].map((x) => Buffer.from(x.buffer, x.byteOffset, x.byteLength)));
    expect(bytes(a).equals(bytes(b))).toBe(true);
    expect(bytes(a).equals(bytes(c))).toBe(false);
    expect(a.spec).toEqual(PETS);
    expect(a.weights.map((x) => x.length)).toEqual([7 * 23 * 200, 7 * 200 * 200, 7 * 200 * 200, 7 * 200 * 200, 7 * 200 * 36]);
  });
});

describe('ensembleToOnnx / OrtEnsemblePredictor match referenceForward on 10,000 rows', () => {
  const cases: EnsembleSpec[] = [];
  for (const activation of ['silu', 'relu', 'tanh'] as const) {
    for (const probabilistic of [false, true]) {
      for (const learnReward of [false, true]) {
        for (const numMembers of [1, 7]) {
          cases.push({ numMembers, obsDim: 5, actDim: 2, hidden: [32, 24], activation, probabilistic, learnReward });
        }
      }
    }
  }
  const name = (s: EnsembleSpec): string =>
    `${s.activation}, ${s.probabilistic ? 'probabilistic' : 'deterministic'}, ${s.learnReward ? 'learned reward' : 'no reward'}, K=${s.numMembers}`;

  it.each(cases.map((s, i) => [name(s), s, i] as const))('%s', async (_, spec, i) => {
    const { w, ref } = await compareWithReference(spec, 10_000, 100 + i);
    if (spec.probabilistic && spec.activation !== 'tanh') {
      // The far rows must drive the log-variance into both soft bounds, or the bounds went untested.
      // (tanh hidden units are bounded, so its outputs stay inside; ReLU/SiLU cover the bounds.)
      const outDim = outDimOf(spec);
      let nearMax = 0;
      let nearMin = 0;
      ref.variance!.forEach((v, i) => {
        const logvar = Math.log(v / w.targetStd[i % outDim] ** 2);
        if (logvar > w.maxLogvar![i % outDim] - 0.01) nearMax++;
        if (logvar < w.minLogvar![i % outDim] + 0.01) nearMin++;
      });
      expect(nearMax).toBeGreaterThan(100);
      expect(nearMin).toBeGreaterThan(100);
    }
  });

  it('PETS architecture (K=7, 4×200 SiLU, probabilistic, learned reward)', async () => {
    await compareWithReference(PETS, 10_000, 7);
  });
});

describe('OrtEnsemblePredictor', () => {
  const spec: EnsembleSpec = { ...PETS, hidden: [16, 16] };
  const w = randomEnsembleWeights(spec, new Rng(11));
  const K = spec.numMembers;

  it.each([1, 7, 300])('serves any rows per member from one session: B = %i', async (B) => {
    const predictor = await OrtEnsemblePredictor.create(w, { intraOpThreads: 1 });
    try {
      for (const b of [B, 3, B]) {
        const { obs, act } = makeInputs(w, K * b, new Rng(b));
        const nextObs = new Float32Array(K * b * 17);
        const reward = new Float32Array(K * b);
        const variance = new Float32Array(K * b * 18);
        await predictor.predict(obs, act, b, nextObs, reward, variance);
        const ref = { nextObs: new Float64Array(nextObs.length), reward: new Float64Array(reward.length), variance: new Float64Array(variance.length) };
        referenceForward(w, obs, act, b, ref.nextObs, ref.reward, ref.variance);
        expectMatchesReference(spec, { nextObs, reward, variance }, ref, K * b);
      }
    } finally {
      predictor.dispose();
    }
  });

  it('writes into the caller’s arrays, subarray views included, and repeats exactly on reused buffers', async () => {
    const predictor = await OrtEnsemblePredictor.create(w, { intraOpThreads: 1 });
    const B = 5;
    const { obs, act } = makeInputs(w, K * B, new Rng(5));
    const backing = new Float32Array(K * B * 17 + 8).fill(-7);
    const nextObs = backing.subarray(4, 4 + K * B * 17);
    await predictor.predict(obs, act, B, nextObs);
    const first = Float32Array.from(nextObs);
    expect(first.some((v) => v === -7)).toBe(false);
    expect(Array.from(backing.subarray(0, 4))).toEqual([-7, -7, -7, -7]);
    expect(Array.from(backing.subarray(backing.length - 4))).toEqual([-7, -7, -7, -7]);
    nextObs.fill(0);
    await predictor.predict(obs, act, B, nextObs);
    expect(nextObs).toEqual(first);
    predictor.dispose();
  });

  it('steps obs in place when outNextObs is obs itself', async () => {
    const predictor = await OrtEnsemblePredictor.create(w, { intraOpThreads: 2 });
    const B = 300;
    const { obs, act } = makeInputs(w, K * B, new Rng(8));
    const separate = new Float32Array(obs.length);
    await predictor.predict(obs, act, B, separate);
    await predictor.predict(obs, act, B, obs);
    expect(obs).toEqual(separate);
    predictor.dispose();
  });

  it('throws a clear ValidationError on wrong lengths and on outputs the ensemble lacks', async () => {
    const predictor = await OrtEnsemblePredictor.create(w, { intraOpThreads: 1 });
    const B = 4;
    const obs = new Float32Array(K * B * 17);
    const act = new Float32Array(K * B * 6);
    const next = new Float32Array(K * B * 17);
    await expect(predictor.predict(obs.subarray(1), act, B, next)).rejects.toThrow(
      'OrtEnsemblePredictor.predict: obs: expected length 476 (K·B = 7·4 rows of 17), got length 475',
    );
    await expect(predictor.predict(obs, new Float32Array(10), B, next)).rejects.toThrow(/act: expected length 168 .* got length 10/);
    await expect(predictor.predict(obs, act, B, new Float32Array(3))).rejects.toThrow(/outNextObs: expected length 476/);
    await expect(predictor.predict(obs, act, B, next, new Float32Array(5))).rejects.toThrow(/outReward: expected length 28 .* got length 5/);
    await expect(predictor.predict(obs, act, B, next, undefined, new Float32Array(1))).rejects.toThrow(/outVar: expected length 504/);
    await expect(predictor.predict(obs, act, 0, next)).rejects.toThrow(/rowsPerMember: expected a positive integer, got 0/);
    await expect(predictor.predict(obs, act, B, next)).resolves.toBeUndefined();
    await expect(predictor.predict(obs, act, 2, next)).rejects.toBeInstanceOf(ValidationError);
    predictor.dispose();
    await expect(predictor.predict(obs, act, B, next)).rejects.toThrow(/disposed/);
    predictor.dispose();

    const deterministic = randomEnsembleWeights({ ...spec, probabilistic: false, learnReward: false }, new Rng(1));
    const det = await OrtEnsemblePredictor.create(deterministic, { intraOpThreads: 1 });
    await expect(det.predict(obs, act, B, next, new Float32Array(K * B))).rejects.toThrow(/outReward: this ensemble does not learn the reward/);
    await expect(det.predict(obs, act, B, next, undefined, new Float32Array(K * B * 17))).rejects.toThrow(/outVar: this ensemble is deterministic/);
    det.dispose();
  });
});

describe('ensembleToOnnx', () => {
  const w = randomEnsembleWeights({ ...PETS, hidden: [8] }, new Rng(2));

  it('stores the spec and the caller’s metadata in metadata_props, and names the graph I/O', () => {
    const model = decodeModelProto(ensembleToOnnx(w, { env: 'HalfCheetah-v5', seed: '1' }));
    const meta = Object.fromEntries(model.metadata_props!.map((p) => [p.key, p.value]));
    expect(meta['mbrl.kind']).toBe('dynamics-ensemble');
    expect(JSON.parse(meta['mbrl.spec'])).toEqual(w.spec);
    expect(meta.env).toBe('HalfCheetah-v5');
    expect(meta.seed).toBe('1');
    expect(model.graph.input.map((i) => i.name)).toEqual(['obs', 'act']);
    expect(model.graph.output.map((o) => o.name)).toEqual(['next_obs', 'reward', 'variance', 'log_variance']);
    expect(model.graph.input[0].type?.tensor_type?.shape?.dim).toEqual([{ dim_value: 7 }, { dim_param: 'batch' }, { dim_value: 17 }]);
  });

  it('rejects weights whose sizes disagree with the spec, naming the array', () => {
    const bad = { ...w, biases: [w.biases[0], new Float32Array(3)] };
    expect(() => ensembleToOnnx(bad)).toThrow('ensembleToOnnx: biases[1]: expected length 252, got length 3');
    const nan = { ...w, inputStd: Float32Array.from(w.inputStd, (v, i) => (i === 2 ? NaN : v)) };
    expect(() => ensembleToOnnx(nan)).toThrow('ensembleToOnnx: inputStd[2]: expected a finite number, got NaN');
    expect(() => ensembleToOnnx({ ...w, maxLogvar: undefined })).toThrow(/maxLogvar: expected a Float32Array of length 18/);
  });

  it.skipIf(PYTHON_WITH_ONNX === undefined)('passes the Python onnx checker (full_check, with shape inference)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mbrl-onnx-'));
    try {
      const file = join(dir, 'ensemble.onnx');
      writeFileSync(file, ensembleToOnnx(w));
      const script = 'import sys, onnx; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True); print("ok")';
      const r = spawnSync(PYTHON_WITH_ONNX ?? 'python3', ['-c', script, file], { encoding: 'utf8' });
      expect(`${r.stdout}${r.stderr}`).toContain('ok');
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('measureGemmPeak', () => {
  it('returns a positive, finite GFLOP/s', async () => {
    const gflops = await measureGemmPeak({ n: 128, seconds: 0.05, intraOpThreads: 1 });
    expect(Number.isFinite(gflops)).toBe(true);
    expect(gflops).toBeGreaterThan(0.1);
  });
});
