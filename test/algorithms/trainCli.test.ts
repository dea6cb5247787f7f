// The train → checkpoint → resume → eval workflow through the CLI, on a deliberately tiny
// configuration (this tests plumbing and file formats; the learning test is pets.test.ts).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/cli/checkpoint.js';
import { runCli as run } from '../runCli.js';

const dir = mkdtempSync(join(tmpdir(), 'mbrl-train-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('mbrl train / eval', () => {
  const runDir = join(dir, 'run');
  const tiny = join(dir, 'tiny.json');
  writeFileSync(
    tiny,
    JSON.stringify({ ensemble: { numMembers: 2, numElites: 2, hidden: [16, 16] }, fit: { maxEpochs: 5 }, planner: { kind: 'cem', populationSize: 20, numElites: 4, horizon: 5, numIterations: 2 }, particles: 2, maxEpisodeSteps: 50 }),
  );

  it('trains, writes metrics, a plot and a checkpoint', async () => {
    const r = await run(['train', '--env', 'Pendulum-v1', '--steps', '100', '--seed', '3', '--out', runDir, '--config', tiny, '--quiet']);
    expect(r.err).not.toMatch(/error|failed/i);
    expect(r.code).toBe(0);
    const lines = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l.envSteps, l.policy])).toEqual([
      [50, 'random'],
      [100, 'cem'],
    ]);
    expect((lines[1].holdoutLoss as number[]).length).toBe(2);
    expect(typeof lines[1].planMsPerStep).toBe('number');
    expect(readFileSync(join(runDir, 'curve.svg'), 'utf8')).toMatch(/^<svg[\s\S]*<\/svg>\n$/);
    const cfg = JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8')) as { kind: string; seed: number };
    expect(cfg).toMatchObject({ kind: 'pets', seed: 3 });
    const st = await loadCheckpoint(runDir);
    expect(st.envSteps).toBe(100);
    expect(st.buffer.size).toBe(100);
    expect(st.weights?.spec.hidden).toEqual([16, 16]);
  }, 120_000);

  it('refuses to overwrite a run, and resumes it with more steps', async () => {
    const again = await run(['train', '--env', 'Pendulum-v1', '--steps', '100', '--out', runDir, '--quiet']);
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/already holds a run; continue it with --resume/);
    const r = await run(['train', '--resume', runDir, '--steps', '150', '--quiet']);
    expect(r.code).toBe(0);
    const lines = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(3);
    const st = await loadCheckpoint(runDir);
    expect(st.envSteps).toBe(150);
    expect(st.buffer.size).toBe(150);
    expect(existsSync(join(runDir, 'checkpoint.old'))).toBe(false);
  }, 120_000);

  it('resuming gives the same run as not stopping', async () => {
    const straight = join(dir, 'straight');
    const r = await run(['train', '--env', 'Pendulum-v1', '--steps', '150', '--seed', '3', '--out', straight, '--config', tiny, '--quiet']);
    expect(r.code).toBe(0);
    const a = readFileSync(join(straight, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { episodeReturn: number }).episodeReturn);
    const b = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { episodeReturn: number }).episodeReturn);
    expect(b).toEqual(a);
  }, 120_000);

  it('eval --json prints meanReturn, stdReturn and returns', async () => {
    const r = await run(['eval', '--checkpoint', runDir, '--episodes', '2', '--seed', '7', '--json', '--quiet']);
    expect(r.code).toBe(0);
    const res = JSON.parse(r.out) as { meanReturn: number; stdReturn: number; returns: number[] };
    expect(res.returns).toHaveLength(2);
    expect(res.meanReturn).toBeCloseTo((res.returns[0] + res.returns[1]) / 2, 9);
    expect(res.stdReturn).toBeGreaterThanOrEqual(0);
  }, 120_000);

  it('reports a missing or corrupt checkpoint clearly', async () => {
    expect((await run(['eval', '--checkpoint', join(dir, 'nope')])).err).toMatch(/no checkpoint found: looked for checkpoint\.json in/);
    const bad = join(dir, 'bad');
    const st = await run(['train', '--env', 'Pendulum-v1', '--steps', '100', '--seed', '1', '--out', bad, '--config', tiny, '--quiet']);
    expect(st.code).toBe(0);
    const wfile = join(bad, 'checkpoint', 'weights.bin');
    const bytes = readFileSync(wfile);
    bytes[10] ^= 0xff;
    writeFileSync(wfile, bytes);
    const r = await run(['eval', '--checkpoint', bad]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/weights\.bin: checksum mismatch/);
  }, 120_000);

  it('report collects runs into the BENCHMARKS.md result format with a plot', async () => {
    const out = join(dir, 'pets-Pendulum-v1-tiny.json');
    const r = await run(['report', '--runs', `${runDir},${join(dir, 'bad')}`, '--out', out, '--command', 'npx mbrl train --seed {seed}', '--variant', 'tiny', '--reference-source', 'none', '--reference-mean=-150']);
    expect(r.code).toBe(0);
    const res = JSON.parse(readFileSync(out, 'utf8')) as { algo: string; env: string; seeds: number[]; curves: Record<string, [number, number][]>; final: { envSteps: number; mean: number } };
    expect(res).toMatchObject({ algo: 'pets', env: 'Pendulum-v1', seeds: [3, 1] });
    expect(res.curves['3'].map((p) => p[0])).toEqual([50, 100, 150]);
    expect(res.final.envSteps).toBe(100);
    expect(res.final.mean).toBeCloseTo((res.curves['3'][2][1] + res.curves['1'][1][1]) / 2, 9);
    expect(readFileSync(out.replace('.json', '.svg'), 'utf8')).toContain('seed 3');
  }, 60_000);
});
