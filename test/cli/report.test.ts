import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { meanCurve } from '../../src/cli/commands/report.js';
import { runCli } from '../runCli.js';

const dir = mkdtempSync(join(tmpdir(), 'mbrl-report-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fakeRun(name: string, kind: string, seed: number, points: [number, number][]): string {
  const run = join(dir, name);
  mkdirSync(run, { recursive: true });
  writeFileSync(join(run, 'config.json'), JSON.stringify({ kind, env: 'Pendulum-v1', seed }));
  writeFileSync(join(run, 'metrics.jsonl'), points.map(([envSteps, evalReturn]) => JSON.stringify({ envSteps, evalReturn })).join('\n') + '\n');
  return run;
}

describe('mbrl report', () => {
  it('meanCurve averages seeds at the step counts every seed reached', () => {
    const c = meanCurve({ '1': [[100, -10], [200, -4], [300, 0]], '2': [[100, -6], [200, -2]] });
    expect(c).toEqual([{ x: 100, mean: -8, std: 2 }, { x: 200, mean: -3, std: 1 }]);
  });

  it('collects runs into a result, and --compare overlays results with a table of finals', async () => {
    const a = [fakeRun('a1', 'model-gradient', 1, [[400, -1200], [800, -600]]), fakeRun('a2', 'model-gradient', 2, [[400, -1000], [800, -200]])];
    const b = [fakeRun('b1', 'me-trpo', 1, [[200, -1300], [800, -900]])];
    const ra = join(dir, 'mg.json');
    const rb = join(dir, 'metrpo.json');
    expect((await runCli(['report', '--runs', a.join(','), '--out', ra, '--command', 'x --seed {seed}'])).code).toBe(0);
    expect((await runCli(['report', '--runs', b.join(','), '--out', rb, '--command', 'y'])).code).toBe(0);
    const result = JSON.parse(readFileSync(ra, 'utf8')) as { final: { envSteps: number; mean: number; std: number }; seeds: number[] };
    expect(result.seeds).toEqual([1, 2]);
    expect(result.final).toEqual({ envSteps: 800, mean: -400, std: 200 });
    const svg = join(dir, 'cmp.svg');
    const r = await runCli(['report', '--compare', `${ra},${rb}`, '--out', svg]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('| model-gradient | 2 | 800 | -400.0 ± 200.0 |');
    expect(r.out).toContain('| me-trpo | 1 | 800 | -900.0 ± 0.0 |');
    const plot = readFileSync(svg, 'utf8');
    expect(plot).toMatch(/^<svg/);
    expect(plot).toContain('model-gradient, 2 seeds');
    expect(plot).toContain('me-trpo, 1 seeds');
  });

  it('--compare --max-steps compares at an equal budget: each result at its last step count ≤ N', async () => {
    const a = [fakeRun('c1', 'model-gradient', 1, [[1000, -900], [2000, -300], [3000, -100]]), fakeRun('c2', 'model-gradient', 2, [[1000, -700], [2000, -100], [3000, 0]])];
    const b = [fakeRun('d1', 'me-trpo', 1, [[3000, -500], [6000, -200]])];
    const ra = join(dir, 'mg-budget.json');
    const rb = join(dir, 'metrpo-budget.json');
    expect((await runCli(['report', '--runs', a.join(','), '--out', ra, '--command', 'x'])).code).toBe(0);
    expect((await runCli(['report', '--runs', b.join(','), '--out', rb, '--command', 'y'])).code).toBe(0);
    const r = await runCli(['report', '--compare', `${ra},${rb}`, '--out', join(dir, 'budget.svg'), '--max-steps', '2500']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('| model-gradient | 2 | 2000 | -200.0 ± 100.0 |');
    expect(r.out).toContain('| me-trpo | 1 | – | no point at ≤ 2500 steps |');
    const r2 = await runCli(['report', '--compare', `${ra},${rb}`, '--out', join(dir, 'budget2.svg'), '--max-steps', '3000']);
    expect(r2.out).toContain('| model-gradient | 2 | 3000 | -50.0 ± 50.0 |');
    expect(r2.out).toContain('| me-trpo | 1 | 3000 | -500.0 ± 0.0 |');
    const bad = await runCli(['report', '--compare', ra, '--out', join(dir, 'b.svg'), '--max-steps', '0']);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toContain('--max-steps 0: expected an integer ≥ 1');
  });

  it('--compare refuses a file that is not a learning result, naming it', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ benchmark: 'envs', metrics: {} }));
    const r = await runCli(['report', '--compare', bad, '--out', join(dir, 'x.svg')]);
    expect(r.code).not.toBe(0);
    expect(r.err).toContain(`${bad}: expected a learning result`);
  });
});
