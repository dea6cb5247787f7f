// Ensemble weights (and the normalisation statistics inside them) through a checkpoint's codec,
// and parity of the two forward paths the loop uses: tfjs (training side) and onnxruntime (planning).
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/core/backend.js';
import { Rng } from '../../src/core/rng.js';
import { Box } from '../../src/core/spaces.js';
import { pendulumTask } from '../../src/envs/pendulum.js';
import { DynamicsEnsemble } from '../../src/models/ensemble.js';
import { OrtEnsemblePredictor } from '../../src/models/ensembleOnnx.js';
import { ModelEnv } from '../../src/models/modelEnv.js';
import { randomEnsembleWeights } from '../../src/models/referenceForward.js';
import type { EnsembleSpec } from '../../src/models/types.js';
import { decodeEnsembleWeights, encodeEnsembleWeights } from '../../src/models/weightsCodec.js';
import { makeCemConfig } from '../../src/planning/cem.js';
import { createModelPlanningAgent } from '../../src/planning/trajectoryOptimizerAgent.js';

beforeAll(async () => {
  await initBackend();
});

const spec: EnsembleSpec = { numMembers: 3, obsDim: 3, actDim: 1, hidden: [32, 32], activation: 'silu', probabilistic: true, learnReward: false };

function inputs(n: number, seed: number): { obs: Float32Array; act: Float32Array } {
  const rng = new Rng(seed);
  // Half the rows well outside any training range (|x| up to 30), half near it.
  const obs = new Float32Array(n * 3).map((_, i) => (i < n * 1.5 ? rng.uniform(-1.5, 1.5) : rng.uniform(-30, 30)));
  const act = new Float32Array(n).map((_, i) => (i % 3 === 0 ? (i % 2 === 0 ? 2 : -2) : rng.uniform(-2, 2)));
  return { obs, act };
}

describe('ensemble weights codec', () => {
  it('round-trips weights and normalisers bit for bit, and predictions with them', () => {
    const w = randomEnsembleWeights(spec, new Rng(1));
    const { header, bytes } = encodeEnsembleWeights(w);
    const back = decodeEnsembleWeights(JSON.parse(JSON.stringify(header)) as typeof header, bytes.slice());
    for (const key of ['inputMean', 'inputStd', 'targetMean', 'targetStd', 'maxLogvar', 'minLogvar'] as const) expect(back[key]).toEqual(w[key]);
    back.weights.forEach((a, l) => expect(a).toEqual(w.weights[l]));
    const a = DynamicsEnsemble.fromWeights(w);
    const b = DynamicsEnsemble.fromWeights(back);
    const { obs, act } = inputs(300, 2);
    expect(b.forwardTf(obs, act, 100).nextObs).toEqual(a.forwardTf(obs, act, 100).nextObs);
    a.dispose();
    b.dispose();
  });

  it('detects corruption, truncation and a missing array', () => {
    const { header, bytes } = encodeEnsembleWeights(randomEnsembleWeights(spec, new Rng(1)));
    const flipped = bytes.slice();
    flipped[7] ^= 1;
    expect(() => decodeEnsembleWeights(header, flipped, 'w.bin')).toThrow(/w\.bin: checksum mismatch/);
    expect(() => decodeEnsembleWeights(header, bytes.slice(0, 100), 'w.bin')).toThrow(/truncated: expected \d+ bytes, got 100/);
    expect(() => decodeEnsembleWeights({ ...header, arrays: header.arrays.filter((x) => x.name !== 'inputStd') }, bytes, 'w.bin')).toThrow(/array inputStd is missing/);
    expect(() => decodeEnsembleWeights({ ...header, version: 2 as 1 }, bytes, 'w.bin')).toThrow(/version 1, got .* version 2/);
  });
});

describe('forward paths', () => {
  it('onnxruntime equals tfjs to 1e-5 on 10,000 seeded inputs, in and far out of range', async () => {
    const w = randomEnsembleWeights(spec, new Rng(3));
    const ens = DynamicsEnsemble.fromWeights(w);
    const ort = await OrtEnsemblePredictor.create(w, { intraOpThreads: 1 });
    try {
      const B = 3334;
      const { obs, act } = inputs(3 * B, 4);
      const tfOut = ens.forwardTf(obs, act, B);
      const next = new Float32Array(obs.length);
      const variance = new Float32Array(obs.length);
      await ort.predict(obs, act, B, next, undefined, variance);
      // Float32 paths: 1e-5 absolute for outputs up to 1, relative beyond; for rows far outside
      // the normalisation range, relative to the row's largest output (one float32 ulp at 128 is 1.5e-5).
      let worst = 0;
      for (let r = 0; r < 3 * B; r++) {
        const row = tfOut.nextObs.subarray(3 * r, 3 * r + 3);
        const scale = r < 1.5 * B ? null : Math.max(1, ...Array.from(row, Math.abs));
        for (let j = 0; j < 3; j++) {
          const ref = row[j];
          worst = Math.max(worst, Math.abs(next[3 * r + j] - ref) / (scale ?? Math.max(1, Math.abs(ref))));
        }
      }
      expect(worst).toBeLessThan(1e-5);
      let worstVar = 0;
      for (let i = 0; i < variance.length; i++) worstVar = Math.max(worstVar, Math.abs(Math.log(variance[i]) - Math.log(tfOut.variance![i])));
      expect(worstVar).toBeLessThan(1e-4);
    } finally {
      ort.dispose();
      ens.dispose();
    }
  });

  it('keeps tf.memory().numTensors flat over 1,000 planner steps on the tfjs forward path', async () => {
    const ens = DynamicsEnsemble.fromWeights(randomEnsembleWeights(spec, new Rng(5)));
    try {
      const modelEnv = new ModelEnv(ens, { task: pendulumTask, propagation: 'ts1', rng: new Rng(6) });
      const agent = createModelPlanningAgent(modelEnv, makeCemConfig({ populationSize: 6, numElites: 2, horizon: 2, numIterations: 1 }), new Box([-2], [2]), { rng: new Rng(7), particles: 3 });
      const obs = Float64Array.of(1, 0, 0);
      await agent.actAsync(obs);
      const before = tf.memory().numTensors;
      for (let i = 0; i < 1000; i++) await agent.actAsync(obs);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      ens.dispose();
    }
  });
});
