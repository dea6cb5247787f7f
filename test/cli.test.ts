import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { COMMANDS } from '../src/cli/main.js';
import { ENV_SPECS } from '../src/envs/registry.js';
import { runCli as run } from './runCli.js';

afterEach(() => vi.restoreAllMocks());

describe('mbrl CLI', () => {
  it('lists its commands in --help', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    for (const c of COMMANDS) expect(r.out).toContain(c.name);
  });

  it.each(COMMANDS.map((c) => [c.name]))('mbrl %s --help prints usage and options', async (name) => {
    const r = await run([name, '--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(new RegExp(`^Usage: mbrl ${name}`));
    expect(r.out).toContain('--help');
  });

  it('names an unknown flag and exits 2', async () => {
    const r = await run(['envs', '--bogus']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/mbrl envs: Unknown option '--bogus'.*mbrl envs --help/);
  });

  it('names an unknown command and exits 2', async () => {
    const r = await run(['trian']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('unknown command "trian"');
  });

  it('envs --json prints one entry per environment with the required fields', async () => {
    const r = await run(['envs', '--json']);
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.out) as Record<string, unknown>[];
    expect(rows.map((x) => x.id)).toEqual(ENV_SPECS.map((s) => s.id));
    for (const row of rows) {
      for (const k of ['id', 'obsDim', 'actDim', 'actLow', 'actHigh', 'dt', 'maxEpisodeSteps']) expect(row).toHaveProperty(k);
      expect((row.actLow as number[]).length).toBe(row.actDim);
    }
    const cheetah = rows.find((x) => x.id === 'HalfCheetah-v5');
    expect(cheetah).toMatchObject({ obsDim: 17, actDim: 6, dt: 0.05, maxEpisodeSteps: 1000 });
  });

  it('envs prints a table', async () => {
    const r = await run(['envs']);
    expect(r.code).toBe(0);
    expect(r.out.split('\n')[0]).toMatch(/^id\s+kind\s+obs\s+act/);
    expect(r.out).toContain('Pendulum-v1');
  });

  it('bench envs --json prints the BENCHMARKS.md shape', async () => {
    const r = await run(['bench', 'envs', '--json', '--seconds', '0.05', '--env', 'Pendulum-v1', '--num-envs', '2']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out) as { benchmark: string; backend: string; node: string; cpus: number; metrics: Record<string, number> };
    expect(report.benchmark).toBe('envs');
    expect(['tensorflow', 'wasm', 'cpu']).toContain(report.backend);
    expect(report.node).toBe(process.version);
    expect(report.metrics['Pendulum-v1.stepsPerSec']).toBeGreaterThan(0);
    expect(report.metrics['Pendulum-v1.vecStepsPerSec']).toBeGreaterThan(0);
  });

  it('bench rejects an unknown benchmark and a bad number', async () => {
    expect((await run(['bench', 'nope'])).err).toMatch(/unknown benchmark "nope"; expected one of envs/);
    const r = await run(['bench', 'envs', '--seconds', 'abc']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--seconds abc: expected a number > 0/);
  });

  const bin = resolve(import.meta.dirname, '../bin/mbrl.js');
  const built = existsSync(resolve(import.meta.dirname, '../dist/cli/main.js'));
  it.skipIf(!built)('the installed bin runs (needs `npm run build`, which `npm test` does first)', () => {
    const r = spawnSync(process.execPath, [bin, 'envs', '--json'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect((JSON.parse(r.stdout) as unknown[]).length).toBe(ENV_SPECS.length);
  });
});

describe('mbrl rollout', () => {
  it('runs seeded episodes, records every transition, and the buffer loads back', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { loadBuffer } = await import('../src/data/bufferStore.js');
    const dir = mkdtempSync(join(tmpdir(), 'mbrl-rollout-'));
    try {
      const out = join(dir, 'buf');
      const r = await run(['rollout', '--env', 'Pendulum-v1', '--episodes', '3', '--seed', '5', '--out', out, '--json', '--quiet']);
      expect(r.code).toBe(0);
      const summary = JSON.parse(r.out) as { steps: number; returns: number[]; meanReturn: number };
      expect(summary.steps).toBe(600);
      // Random torques never hold the pendulum up: every episode costs far more than a swing-up.
      for (const ret of summary.returns) expect(ret).toBeLessThan(-500);
      const again = await run(['rollout', '--env', 'Pendulum-v1', '--episodes', '3', '--seed', '5', '--json', '--quiet']);
      expect((JSON.parse(again.out) as { returns: number[] }).returns).toEqual(summary.returns);
      const { buffer } = await loadBuffer(out);
      expect(buffer.size).toBe(600);
      let total = 0;
      for (let i = 0; i < buffer.size; i++) total += buffer.get(i).reward;
      expect(total / 3).toBeCloseTo(summary.meanReturn, 1);
      expect(buffer.get(199).truncated).toBe(true);
      expect(buffer.get(200).episodeId).not.toBe(buffer.get(199).episodeId);
      expect(buffer.get(0).stampNs).toBe(50_000_000n);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects bad flags with the flag named', async () => {
    expect((await run(['rollout'])).err).toMatch(/--env is required/);
    expect((await run(['rollout', '--env', 'Nope-v0'])).err).toMatch(/unknown environment "Nope-v0"/);
    expect((await run(['rollout', '--env', 'Pendulum-v1', '--episodes', '0'])).err).toMatch(/--episodes 0: expected an integer ≥ 1/);
    expect((await run(['rollout', '--env', 'Pendulum-v1', '--physics', 'mass=2'])).err).toMatch(/unknown key "mass"/);
    expect((await run(['rollout', '--env', 'Pendulum-v1', '--physics', 'frictionScale=0.7'])).err).toMatch(/frictionScale: Pendulum-v1 has no friction/);
    expect((await run(['rollout', '--env', 'Pendulum-v1', '--policy', 'smart'])).err).toMatch(/--policy smart: expected random or zero/);
  });
});
