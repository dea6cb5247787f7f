// Sim-to-real adaptation (issue 10): the safety and rollback rules by hand, the rollback in a run
// whose adaptation diverges, config validation, and `mbrl adapt`'s output on a tiny run. Tiny
// budgets: the plumbing and the rules, not how well adaptation works (that is the benchmark's).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADAPT_DEFAULTS,
  SafeRealSystem,
  evaluateOnFixedStarts,
  evaluatePolicyOnFixedStarts,
  makeAdaptConfig,
  rollbackFloor,
  runAdaptation,
  safeActionFor,
  shouldRollBack,
  type AdaptEpisodeRecord,
  type AdaptOverrides,
} from '../../src/algorithms/adapt.js';
import { initBackend } from '../../src/core/backend.js';
import type { Env } from '../../src/core/env.js';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { bufferFitData } from '../../src/algorithms/mbrl.js';
import { ReplayBuffer } from '../../src/data/replayBuffer.js';
import { makeEnv } from '../../src/envs/registry.js';
import { DynamicsEnsemble } from '../../src/models/ensemble.js';
import { fitEnsemble } from '../../src/models/trainer.js';
import { GaussianMlpPolicy, makePolicySpec } from '../../src/policies/gaussianMlpPolicy.js';
import { runCli } from '../runCli.js';

beforeAll(async () => {
  await initBackend({ log: () => {} });
});

describe('safeActionFor (the control node rules 4–5)', () => {
  const rules = { low: [-2, -1], high: [2, 1], maxStep: [0.5, 10], safeAction: [0, 0] };
  it('clips, then rate-limits from the last applied action', () => {
    // 3 → clipped to 2 → limited to 0 + 0.5; −5 → clipped to −1 (within 10 of 0).
    expect(safeActionFor([3, -5], [0, 0], rules)).toEqual({ action: Float64Array.of(0.5, -1), interventions: ['clip', 'rateLimit'] });
    expect(safeActionFor([1.2, 0.3], [1, 0], rules)).toEqual({ action: Float64Array.of(1.2, 0.3), interventions: [] });
    expect(safeActionFor([-1, 0], [1, 0], rules)).toEqual({ action: Float64Array.of(0.5, 0), interventions: ['rateLimit'] });
  });
  it('sends the safe action (not rate-limited) for NaN, ±Infinity or a wrong length', () => {
    expect(safeActionFor([NaN, 0], [2, 1], rules)).toEqual({ action: Float64Array.of(0, 0), interventions: ['nonFinite'] });
    expect(safeActionFor([Infinity, 0], [2, 1], rules).interventions).toEqual(['nonFinite']);
    expect(safeActionFor([1], [0, 0], rules)).toEqual({ action: Float64Array.of(0, 0), interventions: ['badLength'] });
  });
});

describe('the rollback rule', () => {
  it('takes the higher of the absolute floor and the allowed drop below the pre-adaptation return', () => {
    expect(rollbackFloor(-200, { floor: null, maxDropFraction: 0.5 })).toBe(-300);
    expect(rollbackFloor(1000, { floor: null, maxDropFraction: 0.5 })).toBe(500);
    expect(rollbackFloor(1000, { floor: 800, maxDropFraction: 0.5 })).toBe(800);
    expect(rollbackFloor(-200, { floor: -1000, maxDropFraction: 0.1 })).toBe(-220);
    expect(rollbackFloor(-200, { floor: null, maxDropFraction: null })).toBeNull();
  });
  it('rolls back below the floor and on a non-finite return, never without a floor unless non-finite', () => {
    expect(shouldRollBack(-301, -300)).toBe(true);
    expect(shouldRollBack(-300, -300)).toBe(false);
    expect(shouldRollBack(NaN, null)).toBe(true);
    expect(shouldRollBack(-1e9, null)).toBe(false);
  });
});

describe('makeAdaptConfig', () => {
  it('merges nested sections and keeps kind', () => {
    const c = makeAdaptConfig({ strategies: ['frozen', 'mbMpo'], refit: { simData: 'keep' }, rollback: { floor: -500 } });
    expect(c.kind).toBe('adapt');
    expect(c.refit.simWeight).toBe(ADAPT_DEFAULTS.refit.simWeight);
    expect(c.refit.simData).toBe('keep');
    expect(c.rollback).toEqual({ floor: -500, maxDropFraction: 0.5 });
    expect(JSON.parse(JSON.stringify(c))).toEqual(c);
    expect(makeAdaptConfig(JSON.parse(JSON.stringify(c)) as AdaptOverrides)).toEqual(c);
  });
  it.each([
    [{ strategies: ['frozen', 'magic'] }, /strategies\[1\]: expected one of frozen, mbMpo, refit, mpc, scratch, got "magic"/],
    [{ strategies: [] }, /strategies: expected a non-empty list/],
    [{ strategies: ['frozen', 'frozen'] }, /strategies: expected each strategy once/],
    [{ realSteps: 0 }, /realSteps: expected an integer ≥ 1, got 0/],
    [{ innerStepSize: -1 }, /innerStepSize: expected null or a finite number ≥ 0, got -1/],
    [{ refit: { simData: 'half' } }, /refit.simData: expected 'keep', 'drop' or 'downweight', got "half"/],
    [{ refit: { simWeight: 2 } }, /refit.simWeight: expected a number in \[0, 1\], got 2/],
    [{ refit: { weight: 2 } }, /refit: weight: unknown key/],
    [{ rollback: { maxDropFraction: -0.1 } }, /rollback.maxDropFraction: expected null or a finite number ≥ 0/],
    [{ safety: { maxRatePerSec: [0] } }, /safety.maxRatePerSec: expected rates > 0/],
    [{ kind: 'pets' }, /kind: expected 'adapt', got "pets"/],
    [{ env: 'Nope-v0' }, /unknown environment "Nope-v0"/],
    [{ budget: 5 }, /budget: unknown key/],
    [{ strategies: ['scratch'], scratch: { imaginedSteps: 0 } }, /makeMeTrpoConfig: imaginedSteps: expected an integer ≥ 1/],
  ])('rejects %j', (overrides, message) => {
    expect(() => makeAdaptConfig(overrides as AdaptOverrides)).toThrow(ValidationError);
    expect(() => makeAdaptConfig(overrides as AdaptOverrides)).toThrow(message);
  });
});

/**
 * Pendulum-v1 whose reward is the action cost −Σ a² of the action actually applied, started from
 * the same state every episode: the zero-mean, nearly deterministic policy below is then close to
 * optimal (return ≈ −2), so any large change to it can only lower the return.
 */
async function actionCostPendulum(): Promise<Env> {
  const env = await makeEnv('Pendulum-v1');
  return {
    id: env.id,
    observationSpace: env.observationSpace,
    actionSpace: env.actionSpace,
    dt: env.dt,
    maxEpisodeSteps: env.maxEpisodeSteps,
    obsNames: env.obsNames,
    physics: env.physics,
    reset: () => env.reset({ seed: 5 }),
    step(action) {
      const r = env.step(action);
      let cost = 0;
      for (let i = 0; i < action.length; i++) cost += action[i] * action[i];
      return { ...r, reward: -cost };
    },
    close: () => env.close(),
  };
}

/** A policy whose mean action is 0 everywhere (zero output layer) with σ = e⁻³ of the half-range. */
async function zeroPolicy(): Promise<{ spec: ReturnType<typeof makePolicySpec>; weights: ReturnType<GaussianMlpPolicy['getWeights']> }> {
  const env = await makeEnv('Pendulum-v1');
  const spec = makePolicySpec({ obsDim: 3, actionSpace: env.actionSpace, hidden: [8], activation: 'tanh', initLogStd: -3 });
  env.close();
  const p = new GaussianMlpPolicy(spec, { rng: new Rng(4) });
  const w = p.getWeights();
  p.dispose();
  const last = w.layers[w.layers.length - 1];
  last.W.fill(0);
  last.b.fill(0);
  return { spec, weights: w };
}

describe('runAdaptation: the safety rules stay in force', () => {
  it('rate-limits a saturated policy from the safe action at every episode start (hand-computed return)', async () => {
    const { spec, weights } = await zeroPolicy();
    weights.layers[weights.layers.length - 1].b.fill(10); // mean action +2 (the upper bound) everywhere
    // 5 N·m/s × dt 0.05 s = 0.25 per step: the applied torque ramps 0.25, 0.5, …, 1.75, then 2.
    const config = makeAdaptConfig({ strategies: ['frozen'], realSteps: 400, safety: { maxRatePerSec: [5], safeAction: [0] } });
    const { records } = await runAdaptation({ config, trained: { policySpec: spec, policyWeights: weights, ensemble: null }, makeRealEnv: actionCostPendulum });
    expect(records).toHaveLength(2);
    // −Σ a²: 0.25² · (1² + … + 7²) + 193 · 2² = 8.75 + 772.
    for (const r of records) {
      expect(r.episodeReturn).toBeCloseTo(-780.75, 6);
      expect(r.interventions.rateLimit).toBeGreaterThanOrEqual(7);
      expect(r.interventions.rateLimit).toBeLessThanOrEqual(8);
      expect(r.interventions.clip + r.interventions.nonFinite + r.interventions.badLength).toBe(0);
    }
  });
});

describe('the fixed-start evaluation', () => {
  it('scores a controller on the same start states every time, behind the safety rules, outside the budget', async () => {
    const { spec, weights } = await zeroPolicy();
    weights.layers[weights.layers.length - 1].b.fill(10); // mean action +2 everywhere
    const env = new SafeRealSystem(await actionCostPendulum(), { maxRatePerSec: [5], safeAction: [0] });
    try {
      // The rate limit restarts from the safe action each episode: the hand-computed −780.75 of the test above.
      const returns = await evaluatePolicyOnFixedStarts(env, spec, weights, { episodes: 3, seed: 7 });
      expect(returns).toHaveLength(3);
      for (const r of returns) expect(r).toBeCloseTo(-780.75, 6);
    } finally {
      env.close();
    }
    // Start states follow the seeds: the same seeds give the same episodes, others differ.
    const pendulum = await makeEnv('Pendulum-v1');
    const starts: number[][] = [];
    const act = (obs: Float64Array): number[] => {
      if (starts.length === 0 || starts[starts.length - 1].length === 0) starts[starts.length - 1] = Array.from(obs);
      return [-obs[2]];
    };
    const onReset = (): void => {
      starts.push([]);
    };
    try {
      const a = await evaluateOnFixedStarts(pendulum, act, onReset, { episodes: 3, seed: 1_000_000 });
      const firstStarts = starts.splice(0);
      const b = await evaluateOnFixedStarts(pendulum, act, onReset, { episodes: 3, seed: 1_000_000 });
      expect(b).toEqual(a);
      expect(starts).toEqual(firstStarts);
      expect(new Set(firstStarts.map((s) => s.join())).size).toBe(3);
      const c = await evaluateOnFixedStarts(pendulum, act, onReset, { episodes: 3, seed: 2_000_000 });
      expect(c).not.toEqual(a);
      expect(await evaluateOnFixedStarts(pendulum, act, onReset, { episodes: 0, seed: 1 })).toEqual([]);
    } finally {
      pendulum.close();
    }
  });

  it('is part of each run: the final controller on the fixed starts, not counted as real steps', async () => {
    const { spec, weights } = await zeroPolicy();
    weights.layers[weights.layers.length - 1].b.fill(10);
    const config = makeAdaptConfig({ strategies: ['frozen'], realSteps: 200, safety: { maxRatePerSec: [5], safeAction: [0] }, evaluation: { episodes: 2 } });
    const { summaries } = await runAdaptation({ config, trained: { policySpec: spec, policyWeights: weights, ensemble: null }, makeRealEnv: actionCostPendulum });
    expect(summaries[0].realSteps).toBe(200);
    expect(summaries[0].evalReturns).toHaveLength(2);
    expect(summaries[0].evalReturn).toBeCloseTo(-780.75, 6);
    const off = makeAdaptConfig({ ...config, evaluation: { episodes: 0 } });
    const r = await runAdaptation({ config: off, trained: { policySpec: spec, policyWeights: weights, ensemble: null }, makeRealEnv: actionCostPendulum });
    expect(r.summaries[0].evalReturns).toEqual([]);
    expect(r.summaries[0].evalReturn).toBeNaN();
  });
});

describe('runAdaptation: rollback when adaptation diverges', () => {
  // α = 1e4: the inner step throws the policy far from the (near-optimal) trained one.
  const run = async (rollback: AdaptOverrides['rollback']): Promise<{ records: AdaptEpisodeRecord[]; final: Float32Array; initial: Float32Array }> => {
    const { spec, weights } = await zeroPolicy();
    const config = makeAdaptConfig({ strategies: ['mbMpo'], realSteps: 1200, seed: 3, innerStepSize: 1e4, rollback });
    const result = await runAdaptation({ config, trained: { policySpec: spec, policyWeights: weights, ensemble: null }, makeRealEnv: actionCostPendulum });
    const flat = (w: typeof weights): Float32Array => {
      const p = new GaussianMlpPolicy(spec, { weights: w });
      const f = p.getFlatParams();
      p.dispose();
      return f;
    };
    return { records: result.records, final: flat(result.finalPolicies.mbMpo!), initial: flat(weights) };
  };

  it('rolls every diverged trial back and keeps the deployed return at the last good level', async () => {
    const { records, final, initial } = await run({ floor: null, maxDropFraction: 0.5 });
    expect(records).toHaveLength(6);
    const pre = records[0].episodeReturn;
    expect(pre).toBeLessThan(0);
    expect(pre).toBeGreaterThan(-10);
    expect(records[0].floor).toBeCloseTo(pre - 0.5 * Math.abs(pre), 9);
    // Episodes alternate: the last good policy, then a trial of the policy adapted on its episode.
    expect(records.map((r) => r.trial)).toEqual([false, true, false, true, false, true]);
    const trials = records.filter((r) => r.trial);
    const deployed = records.filter((r) => !r.trial);
    for (const t of trials) {
      expect(t.rolledBack).toBe(true);
      expect(t.episodeReturn).toBeLessThan(t.floor!);
    }
    expect(records[records.length - 1].rollbacks).toBe(3);
    expect(records.every((r) => r.version === 0)).toBe(true);
    // The last good policy runs after every rollback, at its pre-adaptation level.
    for (const d of deployed) expect(Math.abs(d.episodeReturn - pre)).toBeLessThan(0.5 * Math.abs(pre));
    expect(Array.from(final)).toEqual(Array.from(initial));
  }, 60_000);

  it('without a floor the diverged policy stays deployed (what the rule prevents)', async () => {
    const { records, final, initial } = await run({ floor: null, maxDropFraction: null });
    expect(records.some((r) => r.rolledBack)).toBe(false);
    const pre = records[0].episodeReturn;
    // Every later episode runs an adapted policy and is far below the pre-adaptation return.
    for (const r of records.slice(1)) expect(r.episodeReturn).toBeLessThan(pre - 10 * Math.abs(pre));
    expect(Array.from(final)).not.toEqual(Array.from(initial));
  }, 60_000);
});

describe('runAdaptation: mpc on a real system with an action delay', () => {
  it('estimates the one-step delay from the first episode, refits on the commands that acted and plans with it', async () => {
    // A small ensemble fitted on 1,000 random steps of the nominal (undelayed) pendulum (normalised
    // one-step error ≈ 0.005 at the true delay against ≈ 0.019 at the others; 40 epochs left it at
    // ≈ 0.24 for every candidate, too coarse to tell them apart).
    const nominal = await makeEnv('Pendulum-v1');
    const rng = new Rng(21);
    const buffer = new ReplayBuffer({ obsDim: 3, actDim: 1, capacity: 1000 });
    let { obs } = nominal.reset({ seed: 21 });
    while (buffer.size < 1000) {
      const action = Float64Array.of(rng.uniform(-2, 2));
      const r = nominal.step(action);
      buffer.add({ obs, action, reward: r.reward, nextObs: r.obs, terminated: r.terminated, truncated: r.truncated });
      obs = r.terminated || r.truncated ? nominal.reset().obs : r.obs;
    }
    nominal.close();
    const ensembleConfig = { numMembers: 2, numElites: 2, hidden: [32, 32], learnReward: false };
    const ensemble = new DynamicsEnsemble({ obsDim: 3, actDim: 1, rng: rng.fork(), config: ensembleConfig });
    await fitEnsemble(ensemble, bufferFitData(buffer), { maxEpochs: 300 }, rng.fork());
    const { spec, weights } = await zeroPolicy();
    const trained = { policySpec: spec, policyWeights: weights, ensemble: ensemble.toWeights(), ensembleConfig };
    ensemble.dispose();
    const physics = { actionDelaySteps: 1 };
    const makeRealEnv = (): Promise<Env> => makeEnv('Pendulum-v1', { physics });
    const mpc = { planner: { kind: 'cem' as const, horizon: 5, populationSize: 20, numElites: 4, numIterations: 1 }, particles: 2 };
    const base = { strategies: ['mpc' as const], realSteps: 400, physics, refit: { fit: { maxEpochs: 3 } }, evaluation: { episodes: 1 }, rollback: { floor: null, maxDropFraction: null } };
    const { records, summaries } = await runAdaptation({ config: makeAdaptConfig({ ...base, mpc: { ...mpc, actionDelaySteps: 'estimate' } }), trained, makeRealEnv });
    expect(records).toHaveLength(2);
    for (const r of records) {
      expect(r.actionDelaySteps).toBe(1);
      expect(r.delayErrors).toHaveLength(4);
    }
    // The nominal model explains the delayed plant's steps far better with the command sent one
    // step earlier (after the first refit, on 200 real rows for 3 epochs, the margin is smaller).
    const e = records[0].delayErrors!;
    expect(e[1]).toBeLessThan(0.5 * Math.min(e[0], e[2], e[3]));
    expect(summaries[0].evalReturns).toHaveLength(1);
    // A known delay: used from the first step, never estimated.
    const known = await runAdaptation({ config: makeAdaptConfig({ ...base, mpc: { ...mpc, actionDelaySteps: 1 } }), trained, makeRealEnv });
    expect(known.records.map((r) => [r.actionDelaySteps, r.delayErrors])).toEqual([[1, undefined], [1, undefined]]);
    expect(() => makeAdaptConfig({ mpc: { actionDelaySteps: -1 } })).toThrow(/mpc\.actionDelaySteps/);
  }, 120_000);
});

describe('mbrl adapt', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mbrl-adapt-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('trains on the nominal simulator, runs every strategy and writes adapt.jsonl, adapt.svg and the summary', async () => {
    const file = join(dir, 'adapt.yaml');
    writeFileSync(
      file,
      [
        'train:',
        '  algo: mb-mpo',
        '  steps: 200',
        '  config: { trajectoriesPerTask: 2, imaginedHorizon: 10, metaStepsPerIteration: 1, evalEpisodes: 0, fit: { maxEpochs: 2 }, ensemble: { hidden: [16, 16] } }',
        'env: Pendulum-v1',
        'physics: { massScale: 1.3, actuatorGain: 0.8, actionDelaySteps: 1 }',
        'strategies: [frozen, mbMpo, refit, mpc, scratch]',
        'realSteps: 400',
        'seeds: [1]',
        'refit: { fit: { maxEpochs: 2 }, trpoSteps: 1, imaginedSteps: 100, imaginedEnvs: 4, imaginedHorizon: 10 }',
        'mpc: { planner: { kind: cem, horizon: 4, populationSize: 20, numElites: 4, numIterations: 1 }, particles: 2 }',
        'scratch: { imaginedSteps: 100, imaginedEnvs: 4, imaginedHorizon: 10, maxPolicyIterations: 1, validationStarts: 2, fit: { maxEpochs: 2 }, ensemble: { hidden: [16, 16] } }',
        'safety: { maxRatePerSec: [100] }',
        'evaluation: { episodes: 2 }',
      ].join('\n'),
    );
    const out = join(dir, 'out');
    const r = await runCli(['adapt', '--config', file, '--out', out, '--quiet']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const lines = readFileSync(join(out, 'adapt.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AdaptEpisodeRecord);
    const strategies = ['frozen', 'mbMpo', 'refit', 'mpc', 'scratch'];
    expect([...new Set(lines.map((l) => l.strategy))]).toEqual(strategies);
    for (const s of strategies) {
      const rs = lines.filter((l) => l.strategy === s);
      // Pendulum episodes are 200 steps: two episodes reach the 400-step budget.
      expect(rs.map((x) => [x.episode, x.realSteps, x.episodeLength, x.seed])).toEqual([
        [1, 200, 200, 1],
        [2, 400, 200, 1],
      ]);
      for (const x of rs) {
        expect(Object.keys(x).sort()).toEqual(expect.arrayContaining(['episodeReturn', 'floor', 'interventions', 'rollbacks', 'rolledBack', 'trial', 'version']));
        expect(Number.isFinite(x.episodeReturn)).toBe(true);
        expect(Object.keys(x.interventions).sort()).toEqual(['badLength', 'clip', 'nonFinite', 'rateLimit']);
      }
    }
    // The refitting strategies report each refit's holdout loss.
    expect(lines.filter((l) => l.strategy === 'refit' || l.strategy === 'mpc').every((l) => Array.isArray(l.holdoutLoss))).toBe(true);
    // The summary is the last line (training first prints its own result line).
    const outLines = r.out.trim().split('\n');
    expect(outLines).toHaveLength(2);
    const summary = JSON.parse(outLines[1]) as {
      kind: string;
      physics: object;
      strategies: { strategy: string; nominalReturn: number; finalReturnMean3: number; nominalEvalReturn: number; evalReturn: number; evalRecovery: number | null; runs: { evalReturns: number[] }[] }[];
    };
    expect(summary.kind).toBe('adapt-summary');
    expect(summary.physics).toEqual({ massScale: 1.3, actuatorGain: 0.8, actionDelaySteps: 1 });
    expect(summary.strategies.map((s) => s.strategy)).toEqual(strategies);
    for (const s of summary.strategies) {
      expect(s.runs).toHaveLength(1);
      expect(Number.isFinite(s.nominalReturn)).toBe(true);
      const own = lines.filter((l) => l.strategy === s.strategy).map((l) => l.episodeReturn);
      expect(s.finalReturnMean3).toBeCloseTo(own.reduce((a, b) => a + b, 0) / own.length, 9);
      // The fixed-start evaluation: 2 episodes of the final controller, against the same starts on the nominal simulator.
      expect(s.runs[0].evalReturns).toHaveLength(2);
      expect(Number.isFinite(s.evalReturn)).toBe(true);
      expect(Number.isFinite(s.nominalEvalReturn)).toBe(true);
      expect(s.evalRecovery).not.toBeNull();
    }
    // One nominal level for all strategies (the same trained policy and starts).
    expect(new Set(summary.strategies.map((s) => s.nominalEvalReturn)).size).toBe(1);
    const svg = readFileSync(join(out, 'adapt.svg'), 'utf8');
    for (const s of strategies) expect(svg).toContain(`>${s}</text>`);
    expect(JSON.parse(readFileSync(join(out, 'adapt-summary.json'), 'utf8'))).toEqual(summary);
  }, 180_000);

  it('rejects a file with both checkpoint and train, or neither, naming the key', async () => {
    const both = join(dir, 'both.yaml');
    writeFileSync(both, 'checkpoint: runs/x\ntrain: { algo: mb-mpo }\nenv: Pendulum-v1\n');
    const r = await runCli(['adapt', '--config', both, '--out', join(dir, 'x')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/both\.yaml: checkpoint: expected exactly one of `checkpoint`/);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'checkpoint: runs/x\nstrategies: [frozen, warp]\n');
    const b = await runCli(['adapt', '--config', bad, '--out', join(dir, 'y')]);
    expect(b.code).toBe(2);
    expect(b.err).toMatch(/strategies\[1\]: expected one of/);
    const algo = join(dir, 'algo.yaml');
    writeFileSync(algo, 'train: { algo: pets }\n');
    const a = await runCli(['adapt', '--config', algo, '--out', join(dir, 'z')]);
    expect(a.code).toBe(2);
    expect(a.err).toMatch(/algo\.yaml: train\.algo: /);
  });
});
