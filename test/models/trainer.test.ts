import * as tf from '@tensorflow/tfjs';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/core/backend.js';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { DynamicsEnsemble } from '../../src/models/ensemble.js';
import type { EnsembleConfig } from '../../src/models/ensemble.js';
import {
  ENSEMBLE_FIT_DEFAULTS,
  EnsembleFitError,
  ensembleTrainFlops,
  fitEnsemble,
  makeEnsembleFitConfig,
  MemberKernel,
  shutdownEnsembleWorkers,
  trainStepGraph,
} from '../../src/models/trainer.js';
import type { EnsembleEpochReport, EnsembleFitConfig, EnsembleFitData, EnsembleFitResult } from '../../src/models/trainer.js';
import { outDimOf } from '../../src/models/types.js';
import type { EnsembleSpec, EnsembleWeights } from '../../src/models/types.js';
import { layerDimsOf, randomEnsembleWeights } from '../../src/models/referenceForward.js';

beforeAll(async () => {
  await initBackend();
});

afterAll(async () => {
  await shutdownEnsembleWorkers();
});

const OBS = 3;
const ACT = 2;
const SIGMA = 0.01;

/**
 * A seeded linear system x' = A x + B u + ε, ε ~ N(0, σ² I), σ = 0.01, with reward −x₀² + ε,
 * in episodes of the given lengths (each starts from x ~ N(0, I), actions uniform in [−1, 1]).
 */
function linearSystem(episodeLengths: number[], seed: number): EnsembleFitData & { episodeIds: Int32Array } {
  const rng = new Rng(seed);
  const A = [
    [0.9, 0.1, 0],
    [-0.1, 0.9, 0.05],
    [0, 0.2, 0.8],
  ];
  const B = [
    [0.5, 0],
    [0, 0.3],
    [0.2, -0.4],
  ];
  const n = episodeLengths.reduce((a, b) => a + b, 0);
  const obs = new Float32Array(n * OBS);
  const act = new Float32Array(n * ACT);
  const nextObs = new Float32Array(n * OBS);
  const reward = new Float32Array(n);
  const episodeIds = new Int32Array(n);
  let r = 0;
  episodeLengths.forEach((len, ep) => {
    let x = [rng.normal(), rng.normal(), rng.normal()];
    for (let t = 0; t < len; t++, r++) {
      const u = [rng.uniform(-1, 1), rng.uniform(-1, 1)];
      const y = A.map((row, i) => row[0] * x[0] + row[1] * x[1] + row[2] * x[2] + B[i][0] * u[0] + B[i][1] * u[1] + rng.normal(0, SIGMA));
      obs.set(x, r * OBS);
      act.set(u, r * ACT);
      nextObs.set(y, r * OBS);
      reward[r] = -(x[0] * x[0]) + rng.normal(0, SIGMA);
      episodeIds[r] = ep;
      x = y;
    }
  });
  return { obs, act, nextObs, reward, n, episodeIds };
}

const small = (config: Partial<EnsembleConfig> = {}, seed = 1): DynamicsEnsemble =>
  new DynamicsEnsemble({ obsDim: OBS, actDim: ACT, rng: new Rng(seed), config: { numMembers: 3, numElites: 2, hidden: [32, 32], ...config } });

const flat = (w: EnsembleWeights): number[] => [...w.weights, ...w.biases, w.maxLogvar ?? [], w.minLogvar ?? []].flatMap((a) => Array.from(a));

/** Per member: MSE of its mean over `rows`, in normalised target units (what the trainer scores). */
function memberMse(e: DynamicsEnsemble, data: EnsembleFitData, rows: number[]): number[] {
  const K = e.spec.numMembers;
  const B = rows.length;
  const obs = new Float32Array(K * B * OBS);
  const act = new Float32Array(K * B * ACT);
  for (let k = 0; k < K; k++) {
    rows.forEach((r, i) => {
      obs.set(data.obs.subarray(r * OBS, (r + 1) * OBS), (k * B + i) * OBS);
      act.set(data.act.subarray(r * ACT, (r + 1) * ACT), (k * B + i) * ACT);
    });
  }
  const f = e.forwardTf(obs, act, B);
  const { targetStd } = e.toWeights();
  return Array.from({ length: K }, (_, k) => {
    let s = 0;
    rows.forEach((r, i) => {
      for (let j = 0; j < OBS; j++) s += ((f.nextObs[(k * B + i) * OBS + j] - data.nextObs[r * OBS + j]) / targetStd[j]) ** 2;
      s += ((f.reward![k * B + i] - data.reward![r]) / targetStd[OBS]) ** 2;
    });
    return s / (B * (OBS + 1));
  });
}

describe('fitEnsemble', () => {
  for (const engine of ['onnxruntime', 'tfjs'] as const) {
    it(`learns a seeded linear system to near its noise floor (${engine} engine)`, async () => {
      const data = linearSystem(new Array(40).fill(50), 2);
      const e = small();
      const result = await fitEnsemble(e, data, { learningRate: 1e-2, batchSize: 32, maxEpochs: 100, engine, parallelism: 1 }, new Rng(3));
      expect(result.engine).toBe(engine);
      // Noise floor in normalised units: σ² / targetStd² averaged over the 4 outputs. Predicting the
      // mean target scores 1 by construction of the normalisation, and an untrained or random network
      // scores about 1 or worse, so a holdout MSE a few times the floor (~1e-3) cannot happen by chance.
      const floor = Array.from(e.toWeights().targetStd).reduce((s, sd) => s + (SIGMA / sd) ** 2, 0) / 4;
      expect(floor).toBeGreaterThan(1e-4);
      expect(floor).toBeLessThan(3e-3);
      expect(Math.min(...result.bestHoldoutLoss)).toBeLessThan(5 * floor);
      expect(Math.max(...result.bestHoldoutLoss)).toBeLessThan(10 * floor);
      expect(result.holdoutLoss[0].every((v) => v > 20 * floor)).toBe(true); // the first epoch is still far off
      // Fresh data from the same system: the elites' one-step error stays near the floor.
      const fresh = linearSystem([200], 99);
      const rows = Array.from({ length: 200 }, (_, i) => i);
      for (const k of e.elites) expect(memberMse(e, fresh, rows)[k]).toBeLessThan(10 * floor);
      expect(result.split).toBe('episodes');
      expect(result.samplesPerSec).toBeGreaterThan(0);
      expect(result.gflops).toBeCloseTo(ensembleTrainFlops(e.spec, result.epochs * result.numTrain) / result.trainSeconds / 1e9, 6);
      e.dispose();
    });
  }

  it('computes the same loss and gradients on the onnxruntime graph as the tfjs kernel', async () => {
    const variants: Partial<EnsembleSpec>[] = [{}, { activation: 'relu', probabilistic: false }, { activation: 'tanh', learnReward: false }];
    for (const over of variants) {
      const spec: EnsembleSpec = { numMembers: 2, obsDim: 3, actDim: 2, hidden: [7, 6], activation: 'silu', probabilistic: true, learnReward: true, ...over };
      const rng = new Rng(5);
      const w = randomEnsembleWeights(spec, rng);
      const dims = layerDimsOf(spec);
      const D = outDimOf(spec);
      const B = 5;
      const x = rng.fillNormal(new Float32Array(2 * B * 5));
      const y = rng.fillNormal(new Float32Array(2 * B * D));
      const maxL = Float32Array.from({ length: D }, () => 0.3);
      const minL = Float32Array.from({ length: D }, () => -1.5);
      const feeds: Record<string, ort.Tensor> = {
        x: new ort.Tensor('float32', x, [2, B, 5]),
        y: new ort.Tensor('float32', y, [2, B, D]),
        inv_batch: new ort.Tensor('float32', Float32Array.of(1 / B), [1]),
      };
      dims.forEach(([i, o], l) => {
        feeds[`W${l}`] = new ort.Tensor('float32', w.weights[l], [2, i, o]);
        feeds[`b${l}`] = new ort.Tensor('float32', w.biases[l], [2, 1, o]);
      });
      if (spec.probabilistic) {
        feeds.max_logvar = new ort.Tensor('float32', maxL, [D]);
        feeds.min_logvar = new ort.Tensor('float32', minL, [D]);
      }
      const session = await ort.InferenceSession.create(trainStepGraph(spec));
      const out = await session.run(feeds);
      await session.release();
      for (let k = 0; k < 2; k++) {
        // Member k alone in the tfjs kernel, on the same rows.
        const params: number[] = [];
        dims.forEach(([i, o], l) => params.push(...w.weights[l].subarray(k * i * o, (k + 1) * i * o), ...w.biases[l].subarray(k * o, (k + 1) * o)));
        const kernel = new MemberKernel(tf, {
          dims: [5, ...dims.map(([, o]) => o)], outDim: D, probabilistic: spec.probabilistic, activation: spec.activation, members: [k],
          params: [Float32Array.from(params)], adamM: [new Float32Array(params.length)], adamV: [new Float32Array(params.length)], adamStep: 0,
          decay: new Float32Array(params.length), learningRate: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8,
          trainX: x.slice(k * B * 5, (k + 1) * B * 5), trainY: y.slice(k * B * D, (k + 1) * B * D), evalX: x, evalY: y,
        });
        const g = kernel.gradients(0, Uint32Array.from({ length: B }, (_, i) => i), maxL, minL, new Float32Array(params.length));
        expect((out.loss.data as Float32Array)[k]).toBeCloseTo(g.loss, 4);
        let off = 0;
        dims.forEach(([i, o], l) => {
          const dW = (out[`dW${l}`].data as Float32Array).subarray(k * i * o, (k + 1) * i * o);
          const db = (out[`db${l}`].data as Float32Array).subarray(k * o, (k + 1) * o);
          for (let j = 0; j < i * o; j++) expect(dW[j]).toBeCloseTo(g.grad[off + j], 4);
          off += i * o;
          for (let j = 0; j < o; j++) expect(db[j]).toBeCloseTo(g.grad[off + j], 4);
          off += o;
        });
        if (spec.probabilistic) {
          for (let d = 0; d < D; d++) {
            expect((out.dmax.data as Float32Array)[k * D + d]).toBeCloseTo(g.boundGrad[d], 4);
            expect((out.dmin.data as Float32Array)[k * D + d]).toBeCloseTo(g.boundGrad[D + d], 4);
          }
        }
      }
    }
  });

  it('stops early on an easy problem, keeps each member its best weights and picks the elites by holdout loss', async () => {
    // Episodes of distinct lengths, so the holdout episode can be recognised from its size.
    const lengths = [400, 700, 900];
    const data = linearSystem(lengths, 4);
    const e = small({ numMembers: 4, numElites: 2 });
    const reports: EnsembleEpochReport[] = [];
    const maxEpochs = 150;
    const result = await fitEnsemble(e, data, { learningRate: 1e-2, batchSize: 64, maxEpochs, patience: 5, parallelism: 1 }, new Rng(5), (r) => reports.push(r));
    expect(result.stopReason).toBe('patience');
    expect(result.epochs).toBeLessThan(maxEpochs);
    expect(reports.length).toBe(result.epochs);
    // The last 5 epochs improved no member by more than 1 %; the one before improved some.
    expect(reports.slice(-5).every((r) => r.improved.every((x) => !x))).toBe(true);
    expect(reports[reports.length - 6].improved.some(Boolean)).toBe(true);

    const ep = lengths.indexOf(result.numHoldout);
    expect(ep).toBeGreaterThanOrEqual(0);
    const start = lengths.slice(0, ep).reduce((a, b) => a + b, 0);
    const holdoutRows = Array.from({ length: lengths[ep] }, (_, i) => start + i);
    const mse = memberMse(e, data, holdoutRows);
    for (let k = 0; k < 4; k++) {
      // The kept weights score exactly the best holdout loss, which may be from an earlier epoch than the last.
      expect(mse[k]).toBeCloseTo(result.bestHoldoutLoss[k], 5);
      expect(result.bestHoldoutLoss[k]).toBe(Math.min(...result.holdoutLoss.filter((_, i) => reports[i].improved[k]).map((h) => h[k])));
    }
    const byLoss = [0, 1, 2, 3].sort((a, b) => mse[a] - mse[b]);
    expect(result.elites).toEqual(byLoss.slice(0, 2).sort((a, b) => a - b));
    expect(e.elites).toEqual(result.elites);
    e.dispose();
  });

  it('trains each member on its own bootstrap resample', async () => {
    // Identical initial members and full-batch steps: without bootstrap they see the same data and
    // differ only through the order of float sums; with bootstrap they drift apart.
    const data = linearSystem([150, 150], 6);
    const spread = async (bootstrap: boolean): Promise<number> => {
      const e = small();
      const w = e.toWeights();
      const dims = [OBS + ACT, 32, 32, 8];
      for (let l = 0; l < 3; l++) {
        const size = dims[l] * dims[l + 1];
        for (let k = 1; k < 3; k++) w.weights[l].copyWithin(k * size, 0, size);
      }
      e.setWeights(w);
      await fitEnsemble(e, data, { bootstrap, batchSize: 1024, maxEpochs: 20, patience: 100, learningRate: 1e-2, parallelism: 1 }, new Rng(7));
      const out = e.toWeights().weights[1];
      const size = 32 * 32;
      let d = 0;
      for (let i = 0; i < size; i++) d = Math.max(d, Math.abs(out[size + i] - out[i]), Math.abs(out[2 * size + i] - out[i]));
      e.dispose();
      return d;
    };
    const without = await spread(false);
    const withBootstrap = await spread(true);
    expect(without).toBeLessThan(1e-4);
    expect(withBootstrap).toBeGreaterThan(1e-2);
  });

  it('is deterministic: the same seed gives identical weights (and on tfjs, whatever the number of worker lanes)', async () => {
    const data = linearSystem([100, 100, 100, 100], 8);
    const run = async (config: Partial<EnsembleFitConfig>, seed = 9): Promise<{ w: number[]; r: EnsembleFitResult }> => {
      const e = small();
      const r = await fitEnsemble(e, data, { maxEpochs: 3, batchSize: 32, ...config }, new Rng(seed));
      const w = flat(e.toWeights());
      e.dispose();
      return { w, r };
    };
    const ortA = await run({ engine: 'onnxruntime', parallelism: 2 });
    const ortB = await run({ engine: 'onnxruntime', parallelism: 2 });
    expect(ortB.w).toEqual(ortA.w);
    expect((await run({ engine: 'onnxruntime', parallelism: 2 }, 10)).w).not.toEqual(ortA.w);
    const a = await run({ engine: 'tfjs', parallelism: 1 });
    const b = await run({ engine: 'tfjs', parallelism: 1 });
    const c = await run({ engine: 'tfjs', parallelism: 3 }); // the calling thread + 2 worker threads
    expect(c.r.threads).toBe(3);
    expect(b.w).toEqual(a.w);
    expect(c.w).toEqual(a.w);
    expect(c.r.trainLoss).toEqual(a.r.trainLoss);
    expect(c.r.elites).toEqual(a.r.elites);
    // The two engines run the same math in a different float order: close, not identical.
    const diff = a.w.reduce((m, v, i) => Math.max(m, Math.abs(v - ortA.w[i])), 0);
    expect(diff).toBeLessThan(0.05);
  });

  it('refuses a second concurrent fit of the same ensemble', async () => {
    const data = linearSystem([60, 60], 15);
    const e = small();
    const first = fitEnsemble(e, data, { maxEpochs: 2 }, new Rng(1));
    await expect(fitEnsemble(e, data, { maxEpochs: 2 }, new Rng(2))).rejects.toThrow(/already being fitted/);
    await first;
    await fitEnsemble(e, data, { maxEpochs: 1 }, new Rng(3)); // and a later one is fine
    e.dispose();
  });

  it('rejects a NaN in the data with a clear error and leaves the ensemble untouched', async () => {
    const data = linearSystem([60, 60], 11);
    data.obs[7] = NaN;
    const e = small();
    const before = flat(e.toWeights());
    await expect(fitEnsemble(e, data, { parallelism: 1 }, new Rng(1))).rejects.toThrow(ValidationError);
    await expect(fitEnsemble(e, data, { parallelism: 1 }, new Rng(1))).rejects.toThrow(/data\.obs\[7\].*NaN \(row 2, column 1\)/);
    expect(flat(e.toWeights())).toEqual(before);
    data.obs[7] = 0;
    data.reward![3] = Infinity;
    await expect(fitEnsemble(e, data, { parallelism: 1 }, new Rng(1))).rejects.toThrow(/data\.reward\[3\]/);
    e.dispose();
  });

  it('throws when training diverges and keeps the previous good weights', async () => {
    const data = linearSystem([100, 100, 100], 12);
    const e = small();
    await fitEnsemble(e, data, { maxEpochs: 2, parallelism: 1 }, new Rng(1));
    const good = e.toWeights();
    const elites = [...e.elites];
    const err = await fitEnsemble(e, data, { maxEpochs: 20, learningRate: 1e4, parallelism: 1 }, new Rng(2)).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(EnsembleFitError);
    expect(String(err)).toMatch(/diverged: member \d had (loss|holdout MSE) (NaN|-?Infinity).*keeps its previous weights/);
    expect(flat(e.toWeights())).toEqual(flat(good));
    expect(Array.from(e.toWeights().inputMean)).toEqual(Array.from(good.inputMean));
    expect(e.elites).toEqual(elites);
    e.dispose();
  });

  it('does not leak tensors over a fit and predictions', async () => {
    const data = linearSystem([80, 80], 13);
    const e = small({ probabilistic: false });
    const predict = (): unknown => e.forwardTf(data.obs.subarray(0, 3 * 4 * OBS), data.act.subarray(0, 3 * 4 * ACT), 4);
    await fitEnsemble(e, data, { maxEpochs: 1, engine: 'tfjs', parallelism: 1 }, new Rng(1));
    predict();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      await fitEnsemble(e, data, { maxEpochs: 2, engine: 'tfjs', parallelism: 1 }, new Rng(i));
      predict();
    }
    // setWeights drops the cached weight tensors, forwardTf makes them again: same count.
    expect(tf.memory().numTensors).toBe(before);
    e.dispose();
    expect(tf.memory().numTensors).toBe(before - 3 * 3 * 2);
  });

  it('holds out whole episodes, or rows when there are none, capped at maxHoldout', async () => {
    const data = linearSystem([30, 30, 30, 30, 30, 30, 30, 30, 30, 30], 14);
    const e = small({ numMembers: 2, numElites: 1, hidden: [8] });
    const byEpisode = await fitEnsemble(e, data, { maxEpochs: 1, parallelism: 1 }, new Rng(1));
    expect(byEpisode.split).toBe('episodes');
    expect(byEpisode.numHoldout).toBe(60); // 20 % of 300 rows = 2 episodes of 30
    const byRow = await fitEnsemble(e, { ...data, episodeIds: undefined }, { maxEpochs: 1, maxHoldout: 45, parallelism: 1 }, new Rng(1));
    expect(byRow.split).toBe('rows');
    expect(byRow.numHoldout).toBe(45);
    const none = await fitEnsemble(e, data, { maxEpochs: 1, holdoutRatio: 0, parallelism: 1 }, new Rng(1));
    expect(none.split).toBe('none');
    expect(none.numTrain).toBe(300);
    e.dispose();
  });

  it('validates its config, naming the key and what was expected', () => {
    expect(ENSEMBLE_FIT_DEFAULTS).toMatchObject({ kind: 'ensemble-fit', learningRate: 1e-3, batchSize: 256, holdoutRatio: 0.2, patience: 5, improvementThreshold: 0.01, engine: 'auto' });
    expect(() => makeEnsembleFitConfig({ engine: 'gpu' as never })).toThrow(/engine: expected 'auto', 'onnxruntime' or 'tfjs'/);
    expect(() => makeEnsembleFitConfig({ batchSize: 0 })).toThrow(/batchSize: expected a positive integer, got 0/);
    expect(() => makeEnsembleFitConfig({ holdoutRatio: 1 })).toThrow(/holdoutRatio/);
    expect(() => makeEnsembleFitConfig({ weightDecay: [1e-4, 1e-4] }, 5)).toThrow(/weightDecay: expected 5 values/);
    expect(() => makeEnsembleFitConfig({ parallelism: 0 })).toThrow(/parallelism/);
    expect(makeEnsembleFitConfig({}, 3).weightDecay).toEqual([2.5e-5, 6.25e-5, 1e-4]);
    const c = makeEnsembleFitConfig({ batchSize: 128 });
    expect(makeEnsembleFitConfig(JSON.parse(JSON.stringify(c)) as Partial<typeof c>)).toEqual(c);
  });
});
