// `mbrl train --algo me-trpo|mb-mpo|model-gradient`: checkpoints after every iteration, a resumed run equals an
// uninterrupted one, and the trained policy exports to ONNX and evaluates from the file. Tiny
// budgets: this tests the plumbing, not learning (the learning tests are in test/algorithms).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli as run } from '../runCli.js';

const dir = mkdtempSync(join(tmpdir(), 'mbrl-train-policy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tiny = join(dir, 'tiny.json');
writeFileSync(tiny, JSON.stringify({ imaginedSteps: 600, imaginedEnvs: 6, maxPolicyIterations: 2, validationStarts: 3, evalEpisodes: 1, fit: { maxEpochs: 3 } }));
const tinyMbMpo = join(dir, 'tiny-mbmpo.json');
writeFileSync(tinyMbMpo, JSON.stringify({ trajectoriesPerTask: 3, imaginedHorizon: 20, metaStepsPerIteration: 1, evalEpisodes: 1, fit: { maxEpochs: 3 } }));
const tinyMg = join(dir, 'tiny-mg.json');
writeFileSync(
  tinyMg,
  JSON.stringify({ realEpisodesPerIteration: 1, ensemble: { hidden: [16, 16] }, mgSteps: 2, segmentLength: 10, policyIterations: 2, imaginedSteps: 200, imaginedEnvs: 4, evalEpisodes: 1, fit: { maxEpochs: 3 } }),
);

/** metrics.jsonl without wall-clock fields. */
function metrics(runDir: string): unknown[] {
  return readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const m = JSON.parse(l) as Record<string, unknown>;
      delete m.seconds;
      return m;
    });
}

describe('mbrl train --algo me-trpo', () => {
  it('resumes to exactly the uninterrupted run, then exports and evaluates the policy', async () => {
    const whole = join(dir, 'whole');
    const split = join(dir, 'split');
    expect((await run(['train', '--algo', 'me-trpo', '--steps', '400', '--seed', '3', '--out', whole, '--config', tiny, '--quiet'])).code).toBe(0);
    expect((await run(['train', '--algo', 'me-trpo', '--steps', '200', '--seed', '3', '--out', split, '--config', tiny, '--quiet'])).code).toBe(0);
    const again = await run(['train', '--algo', 'me-trpo', '--steps', '200', '--seed', '3', '--out', split, '--config', tiny, '--quiet']);
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/already holds a run; continue it with --resume/);
    expect((await run(['train', '--algo', 'me-trpo', '--resume', split, '--steps', '400', '--quiet'])).code).toBe(0);
    expect(metrics(split)).toEqual(metrics(whole));
    expect(readFileSync(join(split, 'checkpoint', 'policy.bin'))).toEqual(readFileSync(join(whole, 'checkpoint', 'policy.bin')));

    const onnx = join(dir, 'me-trpo.onnx');
    const ex = await run(['export', '--checkpoint', whole, '--out', onnx]);
    expect(ex.code).toBe(0);
    const ev = await run(['eval', '--model', onnx, '--env', 'Pendulum-v1', '--episodes', '2', '--seed', '1', '--json']);
    expect(ev.code).toBe(0);
    const r = JSON.parse(ev.out) as { returns: number[]; trainedEnvSteps: number };
    expect(r.returns).toHaveLength(2);
    expect(r.trainedEnvSteps).toBe(400);
  }, 300_000);

  it('refuses to resume a run as another algorithm and PETS-only flags', async () => {
    const runDir = join(dir, 'whole');
    const r = await run(['train', '--algo', 'mb-mpo', '--resume', runDir, '--quiet']);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/the run is me-trpo, not mb-mpo/);
    const p = await run(['train', '--algo', 'me-trpo', '--planner', 'cem', '--quiet']);
    expect(p.code).toBe(2);
    expect(p.err).toMatch(/--planner applies to --algo pets only/);
  });
});

describe('mbrl train --algo mb-mpo', () => {
  it('trains, checkpoints and resumes exactly', async () => {
    const whole = join(dir, 'mbmpo-whole');
    const split = join(dir, 'mbmpo-split');
    expect((await run(['train', '--algo', 'mb-mpo', '--steps', '400', '--seed', '2', '--out', whole, '--config', tinyMbMpo, '--quiet'])).code).toBe(0);
    expect((await run(['train', '--algo', 'mb-mpo', '--steps', '200', '--seed', '2', '--out', split, '--config', tinyMbMpo, '--quiet'])).code).toBe(0);
    expect((await run(['train', '--algo', 'mb-mpo', '--resume', split, '--steps', '400', '--quiet'])).code).toBe(0);
    expect(metrics(split)).toEqual(metrics(whole));
    const m = metrics(whole) as { evalReturn: number; evalReturnAdapted: number }[];
    expect(m).toHaveLength(2);
    expect(Number.isFinite(m[1].evalReturn) && Number.isFinite(m[1].evalReturnAdapted)).toBe(true);
  }, 300_000);
});

describe('mbrl train --algo model-gradient', () => {
  it('trains, checkpoints, resumes exactly and exports the policy', async () => {
    const whole = join(dir, 'mg-whole');
    const split = join(dir, 'mg-split');
    const first = await run(['train', '--algo', 'model-gradient', '--steps', '400', '--seed', '1', '--out', whole, '--config', tinyMg, '--quiet']);
    expect(first.code, first.err).toBe(0);
    const half = await run(['train', '--algo', 'model-gradient', '--steps', '200', '--seed', '1', '--out', split, '--config', tinyMg, '--quiet']);
    expect(half.code, half.err).toBe(0);
    const resumed = await run(['train', '--algo', 'model-gradient', '--resume', split, '--steps', '400', '--quiet']);
    expect(resumed.code, resumed.err).toBe(0);
    expect(metrics(split)).toEqual(metrics(whole));
    const m = metrics(whole) as { envSteps: number; evalReturn: number }[];
    expect(m.map((x) => x.envSteps)).toEqual([200, 400]);
    expect(Number.isFinite(m[1].evalReturn)).toBe(true);
    const onnx = join(dir, 'mg.onnx');
    const ex = await run(['export', '--checkpoint', whole, '--out', onnx]);
    expect(ex.code, ex.err).toBe(0);
    const ev = await run(['eval', '--model', onnx, '--episodes', '1', '--json', '--quiet']);
    expect(ev.code, ev.err).toBe(0);
    expect(Number.isFinite((JSON.parse(ev.out) as { meanReturn: number }).meanReturn)).toBe(true);
  }, 300_000);
});
