import { describe, expect, it } from 'vitest';
import { PETS_DEFAULTS, makePetsConfig } from '../../src/algorithms/mbrl.js';

describe('makePetsConfig', () => {
  it('applies the task overrides, then the caller’s, and keeps kind', () => {
    const c = makePetsConfig({ env: 'Pendulum-v1', planner: { horizon: 12 } });
    expect(c.kind).toBe('pets');
    expect(c.planner).toMatchObject({ kind: 'cem', horizon: 12, populationSize: 200 });
    expect(c.ensemble).toMatchObject({ hidden: [64, 64, 64], learnReward: false });
    expect(JSON.parse(JSON.stringify(c))).toEqual(c);
    expect(makePetsConfig(JSON.parse(JSON.stringify(c)) as typeof c)).toEqual(c);
  });

  it('starts another planner kind from that kind’s defaults', () => {
    const c = makePetsConfig({ env: 'Pendulum-v1', planner: { kind: 'mppi' } });
    expect(c.planner.kind).toBe('mppi');
    expect(c.planner.horizon).toBe(30);
  });

  it('uses PETS defaults for tasks without overrides', () => {
    const c = makePetsConfig({ env: 'HalfCheetah-v5' });
    expect(c.planner).toMatchObject({ kind: 'cem', populationSize: 400, horizon: 30, numIterations: 5 });
    expect(c.particles).toBe(PETS_DEFAULTS.particles);
  });

  it.each([
    [{ particle: 5 }, /makePetsConfig: particle: unknown key/],
    [{ steps: 0 }, /steps: expected an integer ≥ 1, got 0/],
    [{ env: 'Nope' }, /unknown environment "Nope"/],
    [{ propagation: 'ts2' }, /propagation: expected 'ts1', 'tsinf' or 'mean', got "ts2"/],
    [{ planner: { kind: 'ga' } }, /planner\.kind: expected 'cem', 'mppi' or 'randomShooting'/],
    [{ ensemble: { hiden: [8] } }, /makeEnsembleConfig: hiden: unknown key/],
    [{ fit: { maxEpochs: -1 } }, /makeEnsembleFitConfig: maxEpochs/],
  ])('rejects %j with a message naming the key', (overrides, message) => {
    expect(() => makePetsConfig(overrides as never)).toThrow(message);
  });
});
