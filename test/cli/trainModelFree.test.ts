// `mbrl train --algo trpo|ppo`: a checkpoint after every iteration; a run stopped halfway and
// resumed equals the uninterrupted one bit for bit (policy, value function, Adam moments, metrics);
// the trained policy exports to ONNX and evaluates from the checkpoint and from the file. Tiny
// budgets on Pendulum-v1: this tests the plumbing, not learning (test/algorithms/policyLearning.test.ts).
// Batches of 150 steps per copy cut Pendulum's 200-step episodes in the middle, so resuming must
// rebuild environments mid-episode (`ResumableEnvSource`), not only restart them.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectRollouts } from '../../src/algorithms/policyGradient.js';
import { adamSnapshot, restoreAdam } from '../../src/algorithms/ppo.js';
import { ResumableEnvSource } from '../../src/algorithms/trpo.js';
import { initBackend } from '../../src/core/backend.js';
import type { Env } from '../../src/core/env.js';
import { Rng } from '../../src/core/rng.js';
import { makeEnv } from '../../src/envs/registry.js';
import { GaussianMlpPolicy, makePolicySpec } from '../../src/policies/gaussianMlpPolicy.js';
import { runCli as run } from '../runCli.js';

const dir = mkdtempSync(join(tmpdir(), 'mbrl-train-model-free-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeAll(async () => {
  await initBackend({ log: () => {} });
});

const tinyTrpo = join(dir, 'tiny-trpo.json');
writeFileSync(tinyTrpo, JSON.stringify({ batchSize: 300, numEnvs: 2, policy: { hidden: [16, 16] } }));
const tinyPpo = join(dir, 'tiny-ppo.json');
writeFileSync(tinyPpo, JSON.stringify({ nSteps: 150, numEnvs: 2, epochs: 2, minibatchSize: 100, policy: { hidden: [16, 16] }, valueFunction: { hidden: [16, 16] } }));

/** metrics.jsonl without wall-clock fields. */
function metrics(runDir: string): Record<string, unknown>[] {
  return readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const m = JSON.parse(l) as Record<string, unknown>;
      delete m.seconds;
      return m;
    });
}

/** checkpoint.json's run state, without wall-clock fields. */
function savedState(runDir: string): Record<string, unknown> {
  const json = JSON.parse(readFileSync(join(runDir, 'checkpoint', 'checkpoint.json'), 'utf8')) as { state: { history: Record<string, unknown>[] } };
  for (const h of json.state.history) delete h.seconds;
  return json.state;
}

/** Trains `algo` 4 iterations straight and 2 + 2 resumed; both must agree exactly. */
async function wholeAndSplit(algo: 'trpo' | 'ppo', config: string, seed: string): Promise<{ whole: string; split: string }> {
  const whole = join(dir, `${algo}-whole`);
  const split = join(dir, `${algo}-split`);
  const common = ['train', '--algo', algo, '--seed', seed, '--config', config, '--quiet'];
  const w = await run([...common, '--steps', '1200', '--out', whole]);
  expect(w.code, w.err).toBe(0);
  expect(JSON.parse(w.out)).toMatchObject({ runDir: whole, envSteps: 1200, iterations: 4 });
  expect((await run([...common, '--steps', '600', '--out', split])).code).toBe(0);
  expect(metrics(split)).toHaveLength(2);
  const again = await run([...common, '--steps', '600', '--out', split]);
  expect(again.code).toBe(2);
  expect(again.err).toMatch(/already holds a run; continue it with --resume/);
  const r = await run(['train', '--algo', algo, '--resume', split, '--steps', '1200', '--quiet']);
  expect(r.code, r.err).toBe(0);
  return { whole, split };
}

describe('mbrl train --algo trpo', () => {
  it('resumes to exactly the uninterrupted run; exports; evaluates from the checkpoint and the file', async () => {
    const { whole, split } = await wholeAndSplit('trpo', tinyTrpo, '3');
    const m = metrics(whole);
    expect(m).toHaveLength(4);
    expect(m.map((x) => x.envSteps)).toEqual([300, 600, 900, 1200]);
    expect(m.every((x) => typeof x.klAfter === 'number' && typeof x.backtracks === 'number')).toBe(true);
    expect(metrics(split)).toEqual(m);
    expect(readFileSync(join(split, 'checkpoint', 'policy.bin'))).toEqual(readFileSync(join(whole, 'checkpoint', 'policy.bin')));
    // Baseline coefficients, observation statistics, RNG and environment positions too.
    expect(savedState(split)).toEqual(savedState(whole));
    expect(readFileSync(join(whole, 'curve.svg'), 'utf8')).toMatch(/^<svg/);
    expect(JSON.parse(readFileSync(join(whole, 'config.json'), 'utf8'))).toMatchObject({ kind: 'trpo', env: 'Pendulum-v1', seed: 3, steps: 1200, batchSize: 300 });

    const onnx = join(dir, 'trpo.onnx');
    const ex = await run(['export', '--checkpoint', whole, '--out', onnx, '--json']);
    expect(ex.code, ex.err).toBe(0);
    expect(JSON.parse(ex.out)).toMatchObject({ what: 'policy', metadata: { 'mbrl.config_kind': 'trpo', 'mbrl.env_steps': '1200' } });
    const fromCkpt = await run(['eval', '--checkpoint', whole, '--episodes', '2', '--seed', '1', '--json', '--quiet']);
    expect(fromCkpt.code, fromCkpt.err).toBe(0);
    const c = JSON.parse(fromCkpt.out) as { returns: number[]; algo: string; trainedEnvSteps: number; env: string };
    expect(c).toMatchObject({ algo: 'trpo', trainedEnvSteps: 1200, env: 'Pendulum-v1' });
    const fromFile = await run(['eval', '--model', onnx, '--episodes', '2', '--seed', '1', '--json', '--quiet']);
    expect(fromFile.code, fromFile.err).toBe(0);
    const f = JSON.parse(fromFile.out) as { returns: number[] };
    // The same deterministic controller (tfjs here, onnxruntime there: float32 rounding apart).
    for (let k = 0; k < 2; k++) expect(Math.abs(f.returns[k] - c.returns[k])).toBeLessThan(1e-3 * Math.abs(c.returns[k]));
  }, 240_000);

  it('refuses to resume a run as another algorithm, and PETS-only flags', async () => {
    const r = await run(['train', '--algo', 'ppo', '--resume', join(dir, 'trpo-whole'), '--quiet']);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/the run is trpo, not ppo; pass --algo trpo/);
    const p = await run(['train', '--algo', 'trpo', '--particles', '5', '--quiet']);
    expect(p.code).toBe(2);
    expect(p.err).toMatch(/--particles applies to --algo pets only/);
    const u = await run(['train', '--algo', 'a2c', '--quiet']);
    expect(u.code).toBe(2);
    expect(u.err).toMatch(/expected pets, me-trpo, mb-mpo, model-gradient, mbpo, trpo or ppo/);
  });
});

describe('mbrl train --algo ppo', () => {
  it('resumes exactly: value function and Adam moments (state.bin) included', async () => {
    const { whole, split } = await wholeAndSplit('ppo', tinyPpo, '2');
    const m = metrics(whole);
    expect(m).toHaveLength(4);
    expect(m.every((x) => typeof x.approxKl === 'number' && typeof x.clipFraction === 'number')).toBe(true);
    expect(metrics(split)).toEqual(m);
    for (const file of ['policy.bin', 'state.bin']) {
      expect(readFileSync(join(split, 'checkpoint', file))).toEqual(readFileSync(join(whole, 'checkpoint', file)));
    }
    expect(savedState(split)).toEqual(savedState(whole));
    const ev = await run(['eval', '--checkpoint', split, '--episodes', '1', '--json', '--quiet']);
    expect(ev.code, ev.err).toBe(0);
    expect(JSON.parse(ev.out)).toMatchObject({ algo: 'ppo', trainedEnvSteps: 1200, lengths: [200] });
  }, 240_000);
});

describe('ResumableEnvSource', () => {
  const copies = (physics = {}): Promise<Env[]> => Promise.all([0, 1].map(() => makeEnv('Pendulum-v1', { physics })));

  it('rebuilds copies mid-episode from their state and continues exactly; with observation noise too', async () => {
    for (const physics of [{}, { obsNoiseStd: 0.05 }]) {
      const policy = new GaussianMlpPolicy(makePolicySpec({ obsDim: 3, actionLow: [-2], actionHigh: [2], hidden: [8] }), { rng: new Rng(1) });
      const source = new ResumableEnvSource(await copies(physics), { seed: 7 });
      // 2 × 330 steps: each copy finished one episode and is 130 steps into the next.
      await collectRollouts(source, policy, new Rng(2), { steps: 660 });
      const state = source.getState();
      expect(state.timesteps).toEqual([130, 130]);
      // Without noise only the open episode's actions are kept; with noise every action.
      expect(state.actions.map((a) => a.length)).toEqual('obsNoiseStd' in physics ? [330, 330] : [130, 130]);
      expect(state.resets).toEqual('obsNoiseStd' in physics ? [0, 0] : [1, 1]);
      const restored = new ResumableEnvSource(await copies(physics), { seed: 7, state: JSON.parse(JSON.stringify(state)) });
      const a = await collectRollouts(source, policy, new Rng(3), { steps: 400 });
      const b = await collectRollouts(restored, policy, new Rng(3), { steps: 400 });
      expect(b).toEqual(a);
      expect(a.episodeReturns).toHaveLength(2);
      policy.dispose();
    }
  });

  it('refuses a state its replay does not reproduce, naming the entry', async () => {
    const policy = new GaussianMlpPolicy(makePolicySpec({ obsDim: 3, actionLow: [-2], actionHigh: [2], hidden: [8] }), { rng: new Rng(1) });
    const source = new ResumableEnvSource(await copies(), { seed: 7 });
    await collectRollouts(source, policy, new Rng(2), { steps: 100 });
    const state = source.getState();
    // Restored onto a heavier pendulum: the replayed trajectory differs from the saved one.
    await expect(async () => new ResumableEnvSource(await copies({ massScale: 1.5 }), { seed: 7, state })).rejects.toThrow(/state\.obs\[\d+\]: replaying copy 0 \(seed 7, 0 resets, 50 actions\) gave .*expected the saved/);
    await expect(async () => new ResumableEnvSource(await copies(), { seed: 8, state })).rejects.toThrow(/state\.seed: expected 8 \(this run's seed\), got 7/);
    policy.dispose();
  });
});

describe('restoreAdam', () => {
  it('gives a fresh optimizer the saved one\'s moments, step count and β powers: both then step identically', async () => {
    const target = tf.tensor1d([0.5, -0.5, 2]);
    const loss = (x: tf.Variable): (() => tf.Scalar) => () => tf.sum(tf.square(tf.sub(x, target)));
    const a = tf.variable(tf.tensor1d([1, -2, 3]));
    const optA = tf.train.adam(0.01, 0.9, 0.999, 1e-5);
    // 150 steps: tfjs's setWeights alone would set β₁ᵗ⁺¹ as a power, which here rounds differently
    // from the running float32 product Adam keeps (they differ at most step counts past 20).
    for (let k = 0; k < 150; k++) optA.minimize(loss(a), false, [a]);
    const saved = adamSnapshot(optA);
    expect(saved.iterations).toBe(150);
    const b = tf.variable(a.clone());
    const optB = tf.train.adam(0.01, 0.9, 0.999, 1e-5);
    await restoreAdam(optB, JSON.parse(JSON.stringify(saved, (_k, v: unknown) => (v instanceof Float32Array ? Array.from(v) : v))) as typeof saved, [b]);
    expect(adamSnapshot(optB)).toEqual(saved);
    for (let k = 0; k < 20; k++) {
      optA.minimize(loss(a), false, [a]);
      optB.minimize(loss(b), false, [b]);
    }
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    await expect(restoreAdam(tf.train.adam(0.01), { ...saved, m: [] }, [b])).rejects.toThrow(/restoreAdam: m: expected 1 arrays \(one per variable\)/);
    optA.dispose();
    optB.dispose();
    tf.dispose([a, b, target]);
  });
});
