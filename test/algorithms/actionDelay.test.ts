// Action delay compensation (actionDelay.ts): the pairing of states with the command that acted,
// the prediction through the pending commands, and the delay estimate, on a hand-made linear
// plant whose every number can be worked out by hand.
import { describe, expect, it } from 'vitest';
import { ActionDelayCompensator, delayedActions, estimateActionDelay, type CommandedEpisode } from '../../src/algorithms/actionDelay.js';
import type { EnsemblePredictor } from '../../src/models/types.js';

/** Two members of s' = 0.9 s + b_k u on a 1-D state, b = 1 ± 0.1 (mean 1): the plant without delay (float32 outputs, as a real predictor's). */
function linearEnsemble(): EnsemblePredictor & { calls: number } {
  const b = [0.9, 1.1];
  return {
    spec: { numMembers: 2, obsDim: 1, actDim: 1, hidden: [], probabilistic: false, learnReward: false } as unknown as EnsemblePredictor['spec'],
    calls: 0,
    predict(obs, act, rowsPerMember, outNextObs) {
      this.calls++;
      for (let k = 0; k < 2; k++) for (let r = 0; r < rowsPerMember; r++) outNextObs[k * rowsPerMember + r] = 0.9 * obs[k * rowsPerMember + r] + b[k] * act[k * rowsPerMember + r];
      return Promise.resolve();
    },
    dispose() {},
  };
}

/** An episode of the plant s' = 0.9 s + u_{t−d} (delay line starting at 0) under the commands `u`. */
function delayedPlant(u: number[], d: number): CommandedEpisode {
  const obs: number[] = [];
  const next: number[] = [];
  let s = 1;
  u.forEach((_, t) => {
    obs.push(s);
    s = 0.9 * s + (t >= d ? u[t - d] : 0);
    next.push(s);
  });
  return { obs: Float64Array.from(obs), actions: Float64Array.from(u), nextObs: Float64Array.from(next) };
}

describe('delayedActions', () => {
  it('shifts the commands by the delay, the initial command first', () => {
    expect(Array.from(delayedActions(Float64Array.of(1, 2, 3), 1, 1, [0]))).toEqual([0, 1, 2]);
    expect(Array.from(delayedActions(Float64Array.of(1, 10, 2, 20, 3, 30), 2, 2, [7, 8]))).toEqual([7, 8, 7, 8, 1, 10]);
    expect(Array.from(delayedActions(Float64Array.of(1, 2), 1, 0, [0]))).toEqual([1, 2]);
    expect(() => delayedActions(Float64Array.of(1, 2, 3), 2, 1, [0, 0])).toThrow(/multiple of actDim = 2/);
    expect(() => delayedActions(Float64Array.of(1), 1, -1, [0])).toThrow(/delaySteps.*expected an integer in \[0, 100\]/);
  });
});

describe('ActionDelayCompensator', () => {
  it('predicts the state the pending commands lead to, with the ensemble mean; none pending without a delay', async () => {
    const model = linearEnsemble();
    const c = new ActionDelayCompensator(2, [0.5]);
    // Pending [0.5, 0.5] at the start: 2 → 0.9·2 + 0.5 = 2.3 → 0.9·2.3 + 0.5 = 2.57.
    expect((await c.predictAhead(model, [2]))[0]).toBeCloseTo(2.57, 6);
    c.push([1]);
    c.push([-1]);
    // Pending [1, −1]: 2 → 2.8 → 1.52.
    expect((await c.predictAhead(model, [2]))[0]).toBeCloseTo(1.52, 6);
    c.reset();
    expect((await c.predictAhead(model, [2]))[0]).toBeCloseTo(2.57, 6);
    const none = new ActionDelayCompensator(0, [0]);
    const calls = model.calls;
    none.push([3]);
    expect(Array.from(await none.predictAhead(model, [2]))).toEqual([2]);
    expect(model.calls).toBe(calls);
    expect(() => c.push([1, 2])).toThrow(/expected 1 values, got 2/);
  });

  it('with the delay compensated, the predicted state is the one the delayed plant reaches', async () => {
    const model = linearEnsemble();
    const u = [0.3, -0.2, 0.7, 0.1, -0.5];
    const ep = delayedPlant(u, 2);
    const c = new ActionDelayCompensator(2, [0]);
    for (let t = 0; t + 2 < u.length; t++) {
      expect((await c.predictAhead(model, [ep.obs[t]]))[0]).toBeCloseTo(ep.obs[t + 2], 6);
      c.push([u[t]]);
    }
  });
});

describe('estimateActionDelay', () => {
  const u = Array.from({ length: 60 }, (_, t) => Math.sin(0.7 * t) + 0.5 * Math.cos(2.3 * t));
  it('finds the delay of the data under a model fitted without one, the errors zero there', async () => {
    for (const d of [0, 1, 3]) {
      const est = await estimateActionDelay(linearEnsemble(), [delayedPlant(u, d), delayedPlant(u.slice(7), d)], 4, [0]);
      expect(est.delaySteps).toBe(d);
      expect(est.errors).toHaveLength(5);
      // The ensemble mean is the exact plant, so the true pairing predicts exactly.
      expect(est.errors[d]).toBeLessThan(1e-12);
      for (let k = 0; k < 5; k++) if (k !== d) expect(est.errors[k]).toBeGreaterThan(0.01);
    }
  });

  it('names what is wrong with no data or a bad maximum', async () => {
    await expect(estimateActionDelay(linearEnsemble(), [], 2, [0])).rejects.toThrow(/episodes.*at least one step/);
    await expect(estimateActionDelay(linearEnsemble(), [delayedPlant(u, 1)], 1.5, [0])).rejects.toThrow(/delaySteps/);
  });
});
