// `mbrl train --algo mbpo`: a checkpoint after every real episode; a run stopped halfway and
// resumed (with a raised --steps) equals the uninterrupted one bit for bit (SAC's actor, critics
// and Adam moments, the ensemble, both buffers, metrics); the actor exports to ONNX and evaluates
// from the checkpoint and from the file. A tiny budget on Pendulum-v1 with 100-step episodes: this
// tests the plumbing, not learning (test/algorithms/mbpo.test.ts). The split at 200 steps falls
// after one random and one learning episode, so the resumed half starts with a fitted ensemble,
// a non-empty model buffer and a SAC learner mid-training.
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/core/backend.js';
import { runCli as run } from '../runCli.js';

const dir = mkdtempSync(join(tmpdir(), 'mbrl-train-mbpo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeAll(async () => {
  await initBackend({ log: () => {} });
});

const tiny = join(dir, 'tiny-mbpo.json');
writeFileSync(
  tiny,
  JSON.stringify({
    maxEpisodeSteps: 100,
    epochLength: 100,
    initialRandomSteps: 100,
    modelTrainFreq: 100,
    rolloutEvery: 50,
    rolloutsPerStep: 4,
    rolloutLength: 1,
    updatesPerStep: 1,
    batchSize: 32,
    evalEpisodes: 1,
    ensemble: { numMembers: 3, numElites: 2, hidden: [16, 16] },
    fit: { maxEpochs: 3 },
    sac: { hidden: [16, 16] },
  }),
);

const TIMED = ['seconds', 'fitSeconds', 'rolloutSeconds', 'updateSeconds'];

/** metrics.jsonl without wall-clock fields. */
function metrics(runDir: string): Record<string, unknown>[] {
  return readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const m = JSON.parse(l) as Record<string, unknown>;
      for (const k of TIMED) delete m[k];
      return m;
    });
}

/** checkpoint.json's run state, without wall-clock fields. */
function savedState(runDir: string): Record<string, unknown> {
  const json = JSON.parse(readFileSync(join(runDir, 'checkpoint', 'checkpoint.json'), 'utf8')) as { state: { history: Record<string, unknown>[] } };
  for (const h of json.state.history) for (const k of TIMED) delete h[k];
  return json.state;
}

/** Every file of the checkpoint but checkpoint.json (which has a creation time), by relative path. */
function binaries(runDir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (rel: string): void => {
    for (const e of readdirSync(join(runDir, 'checkpoint', rel), { withFileTypes: true })) {
      const p = join(rel, e.name);
      if (e.isDirectory()) walk(p);
      else if (p !== 'checkpoint.json') out.set(p, readFileSync(join(runDir, 'checkpoint', p)));
    }
  };
  walk('');
  return out;
}

describe('mbrl train --algo mbpo', () => {
  it('resumes to exactly the uninterrupted run; exports; evaluates from the checkpoint and the file', async () => {
    const whole = join(dir, 'whole');
    const split = join(dir, 'split');
    const common = ['train', '--algo', 'mbpo', '--seed', '3', '--config', tiny, '--quiet'];
    const w = await run([...common, '--steps', '400', '--out', whole]);
    expect(w.code, w.err).toBe(0);
    expect(JSON.parse(w.out)).toMatchObject({ runDir: whole, envSteps: 400, episodes: 4 });
    const m = metrics(whole);
    expect(m.map((x) => x.envSteps)).toEqual([100, 200, 300, 400]);
    expect(m.map((x) => x.policy)).toEqual(['random', 'sac', 'sac', 'sac']);
    // A fit and two rounds of 4 × 50 one-step rollouts per learning episode; one update per step.
    expect(m.map((x) => x.fits)).toEqual([0, 1, 1, 1]);
    expect(m.map((x) => x.modelBufferSize)).toEqual([0, 400, 400, 400]);
    expect(m.map((x) => x.updates)).toEqual([0, 100, 200, 300]);

    expect((await run([...common, '--steps', '200', '--out', split])).code).toBe(0);
    expect(metrics(split)).toHaveLength(2);
    const again = await run([...common, '--steps', '200', '--out', split]);
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/already holds a run; continue it with --resume/);
    const r = await run(['train', '--algo', 'mbpo', '--resume', split, '--steps', '400', '--quiet']);
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ envSteps: 400, episodes: 4 });

    expect(metrics(split)).toEqual(m);
    // policy.bin, weights.bin (ensemble), state.bin (SAC's networks and Adam moments, the model
    // buffer) and buffer/ (the real transitions), byte for byte; RNG states and history too.
    const [a, b] = [binaries(whole), binaries(split)];
    expect([...a.keys()].sort()).toEqual(expect.arrayContaining(['policy.bin', 'weights.bin', 'state.bin']));
    expect([...a.keys()].some((k) => k.startsWith('buffer'))).toBe(true);
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [k, v] of a) expect(b.get(k), k).toEqual(v);
    expect(savedState(split)).toEqual(savedState(whole));
    expect(readFileSync(join(whole, 'curve.svg'), 'utf8')).toMatch(/^<svg/);
    expect(JSON.parse(readFileSync(join(split, 'config.json'), 'utf8'))).toMatchObject({ kind: 'mbpo', env: 'Pendulum-v1', seed: 3, steps: 400, rolloutsPerStep: 4 });

    const onnx = join(dir, 'mbpo.onnx');
    const ex = await run(['export', '--checkpoint', whole, '--out', onnx, '--json']);
    expect(ex.code, ex.err).toBe(0);
    expect(JSON.parse(ex.out)).toMatchObject({ what: 'policy', metadata: { 'mbrl.config_kind': 'mbpo', 'mbrl.env_steps': '400' } });
    const fromCkpt = await run(['eval', '--checkpoint', whole, '--episodes', '2', '--seed', '1', '--json', '--quiet']);
    expect(fromCkpt.code, fromCkpt.err).toBe(0);
    const c = JSON.parse(fromCkpt.out) as { returns: number[] };
    expect(JSON.parse(fromCkpt.out)).toMatchObject({ algo: 'mbpo', trainedEnvSteps: 400, env: 'Pendulum-v1' });
    const fromFile = await run(['eval', '--model', onnx, '--episodes', '2', '--seed', '1', '--json', '--quiet']);
    expect(fromFile.code, fromFile.err).toBe(0);
    const f = JSON.parse(fromFile.out) as { returns: number[] };
    // The same deterministic controller (tfjs here, onnxruntime there: float32 rounding apart).
    for (let k = 0; k < 2; k++) expect(Math.abs(f.returns[k] - c.returns[k])).toBeLessThan(1e-3 * Math.abs(c.returns[k]));
  }, 120_000);

  it('rejects bad flags and configs with exit 2, naming the problem', async () => {
    const p = await run(['train', '--algo', 'mbpo', '--particles', '5', '--quiet']);
    expect(p.code).toBe(2);
    expect(p.err).toMatch(/--particles applies to --algo pets only/);
    const s = await run(['train', '--algo', 'mbpo', '--steps', '0', '--quiet', '--out', join(dir, 'bad')]);
    expect(s.code).toBe(2);
    expect(s.err).toMatch(/--steps 0: expected an integer ≥ 1/);
    const bad = join(dir, 'bad-mbpo.json');
    writeFileSync(bad, JSON.stringify({ horizon: 5 }));
    const k = await run(['train', '--algo', 'mbpo', '--config', bad, '--quiet', '--out', join(dir, 'bad')]);
    expect(k.code).toBe(2);
    expect(k.err).toMatch(/makeMbpoConfig: horizon: unknown key/);
    const u = await run(['train', '--algo', 'sac', '--quiet']);
    expect(u.code).toBe(2);
    expect(u.err).toMatch(/expected pets, me-trpo, mb-mpo, model-gradient, mbpo, trpo or ppo/);
    // Resuming a run as another algorithm, either way round.
    const t = await run(['train', '--algo', 'trpo', '--resume', join(dir, 'whole'), '--quiet']);
    expect(t.code).toBe(2);
    expect(t.err).toMatch(/the run is mbpo, not trpo; pass --algo mbpo/);
  });
});
