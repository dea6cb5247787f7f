// The model-based loops' refit rule (PETS, ME-TRPO, MB-MPO): a failed fit keeps the last good model
// when there is one, and is an error before any good fit.
import { beforeAll, describe, expect, it } from 'vitest';
import { refitKeepingLastGood } from '../../src/algorithms/mbrl.js';
import { initBackend } from '../../src/core/backend.js';
import { Rng } from '../../src/core/rng.js';
import { ReplayBuffer } from '../../src/data/replayBuffer.js';
import { DynamicsEnsemble } from '../../src/models/ensemble.js';
import { EnsembleFitError } from '../../src/models/trainer.js';

beforeAll(async () => {
  await initBackend({ log: () => {} });
});

describe('refitKeepingLastGood', () => {
  it('returns the fit, or after a diverged fit the error with the ensemble unchanged', async () => {
    const rng = new Rng(3);
    const buffer = new ReplayBuffer({ obsDim: 2, actDim: 1, capacity: 400 });
    for (let i = 0; i < 300; i++) {
      const obs = [rng.normal(), rng.normal()];
      const a = [rng.uniform(-1, 1)];
      buffer.add({ obs, action: a, reward: 0, nextObs: [obs[0] + 0.1 * a[0], 0.9 * obs[1]], terminated: false, truncated: false });
    }
    const ensemble = new DynamicsEnsemble({ obsDim: 2, actDim: 1, rng: new Rng(1), config: { numMembers: 2, numElites: 2, hidden: [16], learnReward: false } });
    const ok = await refitKeepingLastGood(ensemble, buffer, { maxEpochs: 2, parallelism: 1 }, new Rng(1), false);
    expect(ok.fit?.epochs).toBe(2);
    const good = ensemble.toWeights().weights.map((w) => Array.from(w));
    // A learning rate that diverges: before any good fit it is an error, after one the model is kept.
    const diverge = { maxEpochs: 20, learningRate: 1e4, parallelism: 1 } as const;
    await expect(refitKeepingLastGood(ensemble, buffer, diverge, new Rng(2), false)).rejects.toBeInstanceOf(EnsembleFitError);
    const kept = await refitKeepingLastGood(ensemble, buffer, diverge, new Rng(2), true);
    expect(kept.fit).toBeNull();
    expect(kept.error).toMatch(/diverged/);
    expect(ensemble.toWeights().weights.map((w) => Array.from(w))).toEqual(good);
    ensemble.dispose();
  });
});
