// `mbrl bench loop --json` prints every figure of every case (in process at 100, 500 and
// 1000 Hz, over MQTT at 200 Hz, each with and without a refit) and of the memory run, finite and
// consistent: p50 ≤ p99 ≤ max, the node's share (tick → action) within the whole (sensor →
// action) sample by sample, a tick or a counted skip for every period measured, the refit
// actually running during the refit cases. A very short run (1 s per case, a 3-second memory
// run): no timing thresholds here, the committed figures come from the full run
// (bench/results/loop.json). `--out` writes the result, its summary and the memory plot.
// Needs the learner's worker built (`npx tsc -p tsconfig.build.json`, as `npm test` does). The
// MQTT cases run where mosquitto is installed; elsewhere the report lists them as skipped.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LatencyHistogram } from '../../src/bench/loopBench.js';
import { MOSQUITTO, MOSQUITTO_SKIP_REASON } from '../mosquittoBroker.js';
import { runCli as run } from '../runCli.js';

const dir = mkdtempSync(join(tmpdir(), 'mbrl-bench-loop-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const FIGURES = ['p50Ms', 'p99Ms', 'maxMs', 'pipelineP50Ms', 'pipelineP99Ms', 'pipelineMaxMs', 'missed', 'skipped', 'ticks', 'expectedTicks', 'watchdogTicks', 'cpuPct', 'loadAvg1'];
const DURATION_SEC = 1;

describe('LatencyHistogram', () => {
  it('gives nearest-rank quantiles at 1 µs resolution, never above the maximum', () => {
    const h = new LatencyHistogram();
    expect(h.quantile(0.5)).toBeNaN();
    for (let i = 1; i <= 100; i++) h.add(i / 10); // 0.1 … 10 ms
    expect(h.count).toBe(100);
    expect(h.quantile(0.5)).toBeCloseTo(5.001, 9); // the 50th value, 5.0 ms, in the bucket [5.000, 5.001)
    expect(h.quantile(0.99)).toBeCloseTo(9.901, 9);
    expect(h.quantile(1)).toBe(10); // capped at the exact maximum
    expect(h.maxMs).toBe(10);
    h.add(-1); // a negative latency (clock noise) counts as 0
    h.add(1e6); // beyond the last bucket: counted there, the maximum kept exactly
    expect(h.quantile(1 / 102)).toBeCloseTo(0.001, 9);
    expect(h.maxMs).toBe(1e6);
  });
});

describe('mbrl bench loop', () => {
  it('--json prints the figures of every case and of the memory run; --out writes loop.json, its summary and plot', async () => {
    if (MOSQUITTO === undefined) console.warn(`benchLoop.test: MQTT cases ${MOSQUITTO_SKIP_REASON}`);
    const out = join(dir, 'loop.json');
    const r = await run(['bench', 'loop', '--json', '--duration', String(DURATION_SEC), '--warmup', '0.5', '--memory-minutes', '0.05', '--refit-rows', '2000', '--out', out]);
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out) as { benchmark: string; cpus: number; metrics: Record<string, number>; skipped?: Record<string, string> };
    expect(report.benchmark).toBe('loop');
    const m = report.metrics;

    const cases = [...[100, 500, 1000].flatMap((hz) => [`inproc.${hz}hz`, `inproc.${hz}hz.refit`]), 'mqtt.200hz', 'mqtt.200hz.refit'];
    for (const c of cases) {
      if (c.startsWith('mqtt') && MOSQUITTO === undefined) {
        expect(report.skipped?.[c]).toMatch(/mosquitto/);
        continue;
      }
      const f = (k: string): number => m[`${c}.${k}`];
      for (const k of FIGURES) expect(Number.isFinite(f(k)), `${c}.${k} = ${f(k)}`).toBe(true);
      expect(f('p50Ms'), c).toBeGreaterThanOrEqual(0);
      expect(f('p50Ms'), c).toBeLessThanOrEqual(f('p99Ms'));
      expect(f('p99Ms'), c).toBeLessThanOrEqual(f('maxMs'));
      expect(f('pipelineP50Ms'), c).toBeLessThanOrEqual(f('pipelineP99Ms'));
      expect(f('pipelineP99Ms'), c).toBeLessThanOrEqual(f('pipelineMaxMs'));
      // Tick → action is part of sensor → action for every tick, so every quantile is too.
      expect(f('pipelineP50Ms'), c).toBeLessThanOrEqual(f('p50Ms'));
      expect(f('pipelineP99Ms'), c).toBeLessThanOrEqual(f('p99Ms'));
      expect(f('pipelineMaxMs'), c).toBeLessThanOrEqual(f('maxMs'));
      // Periods measured: rate × the window (a little over 1 s); each one got a tick or was skipped
      // (a few at the window's edges, and actions still in flight over MQTT, aside).
      const hz = Number(/\.(\d+)hz/.exec(c)?.[1]);
      expect(f('expectedTicks'), c).toBeGreaterThanOrEqual(hz * DURATION_SEC);
      expect(f('expectedTicks'), c).toBeLessThanOrEqual(hz * DURATION_SEC * 1.3 + 2);
      expect(f('ticks'), c).toBeGreaterThan(0);
      expect(Math.abs(f('ticks') + f('skipped') - f('expectedTicks')), c).toBeLessThanOrEqual(0.1 * f('expectedTicks') + 5);
      expect(f('missed'), c).toBeGreaterThanOrEqual(f('skipped'));
      expect(f('missed'), c).toBeLessThanOrEqual(f('expectedTicks') + 5);
      expect(f('cpuPct'), c).toBeGreaterThan(0);
      if (c.endsWith('.refit')) {
        expect(f('refits'), c).toBeGreaterThanOrEqual(0);
        // The refit was running while the loop was measured.
        expect(f('fittingPct'), c).toBeGreaterThan(0);
        expect(f('fittingPct'), c).toBeLessThanOrEqual(100);
      } else {
        expect(f('refits'), c).toBeUndefined();
      }
    }

    // The memory run: start/end medians within the samples' range, drift as defined.
    for (const k of ['rssStartMb', 'rssEndMb', 'rssMaxMb', 'heapStartMb', 'heapEndMb', 'heapMaxMb', 'p99Ms', 'missed', 'ticks', 'refits', 'samples']) expect(Number.isFinite(m[`memory.${k}`]), `memory.${k}`).toBe(true);
    expect(m['memory.rssStartMb']).toBeGreaterThan(10);
    expect(m['memory.rssMaxMb']).toBeGreaterThanOrEqual(Math.max(m['memory.rssStartMb'], m['memory.rssEndMb']));
    expect(m['memory.samples']).toBeGreaterThanOrEqual(15);
    expect(m.rssDriftPct).toBeCloseTo(((m['memory.rssEndMb'] - m['memory.rssStartMb']) / m['memory.rssStartMb']) * 100, 9);
    expect(m['memory.rssDriftPct']).toBe(m.rssDriftPct);

    // --out: the report plus the command, the machine and its load, the goals; the summary and the plot.
    const saved = JSON.parse(readFileSync(out, 'utf8')) as { metrics: Record<string, number>; command: string; machine: { loadAvgAtStart: number[]; loadAvgAtEnd: number[]; cores: number }; goals: { figure: string; value: number; met: boolean }[]; cases: unknown[] };
    expect(saved.metrics).toEqual(m);
    expect(saved.command).toMatch(/^npx mbrl bench loop --rates 100,500,1000 .*--duration 1 .*--json --out /);
    expect(saved.machine.loadAvgAtStart).toHaveLength(3);
    expect(saved.machine.loadAvgAtEnd).toHaveLength(3);
    expect(saved.goals.map((g) => g.figure)).toEqual(
      expect.arrayContaining(['inproc.1000hz.p99Ms', 'inproc.1000hz.refit.p99Ms', 'rssDriftPct', ...(MOSQUITTO ? ['mqtt.200hz.p99Ms', 'mqtt.200hz.refit.p99Ms'] : [])]),
    );
    for (const g of saved.goals) expect(g.met).toBe(g.figure === 'rssDriftPct' ? Math.abs(g.value) <= 5 : g.figure.includes('missed') ? g.value === 0 : g.value <= (g.figure.startsWith('mqtt') ? 5 : 1));
    expect(saved.cases).toHaveLength(MOSQUITTO ? 8 : 6);
    const md = readFileSync(join(dir, 'loop.md'), 'utf8');
    expect(md).toContain('| inproc.1000hz.refit |');
    expect(md).toContain('## Goals');
    expect(existsSync(join(dir, 'loop-memory.svg'))).toBe(true);
    expect(readFileSync(join(dir, 'loop-memory.svg'), 'utf8')).toMatch(/^<svg/);
  }, 300_000);

  it('--tick sample: the node ticks on the sensor messages, one tick per message and no grid skips', async () => {
    const out = join(dir, 'loop-sample.json');
    const r = await run(['bench', 'loop', '--json', '--tick', 'sample', '--transport', 'inproc', '--rates', '500', '--refit', 'off', '--duration', String(DURATION_SEC), '--warmup', '0.5', '--memory-minutes', '0', '--out', out]);
    expect(r.code, r.err).toBe(0);
    const saved = JSON.parse(readFileSync(out, 'utf8')) as { metrics: Record<string, number>; command: string; setup: { tick: string } };
    expect(saved.command).toMatch(/--tick sample/);
    expect(saved.setup.tick).toMatch(/on each \/joint_states message \(tick\.on: sample/);
    const f = (k: string): number => saved.metrics[`inproc.500hz.${k}`];
    for (const k of FIGURES) expect(Number.isFinite(f(k)), `${k} = ${f(k)}`).toBe(true);
    // No grid: nothing is skipped; the robot's messages (its clock runs slightly fast) each start a tick.
    expect(f('skipped')).toBe(0);
    expect(Math.abs(f('ticks') - f('expectedTicks'))).toBeLessThanOrEqual(0.1 * f('expectedTicks') + 5);
    expect(f('pipelineP50Ms')).toBeLessThanOrEqual(f('p50Ms'));
    expect(readFileSync(join(dir, 'loop-sample.md'), 'utf8')).toContain('ticks: on each /joint_states message');
  }, 120_000);

  it('names the flag and what was expected for a bad --rates, --transport or --refit', async () => {
    for (const [flag, value, expected] of [
      ['--rates', '100,x', /--rates 100,x: expected comma-separated rates in Hz/],
      ['--transport', 'udp', /--transport udp: expected inproc, mqtt or all/],
      ['--refit', 'maybe', /--refit maybe: expected on, off or both/],
      ['--duration', '0', /--duration 0: expected a number of seconds > 0/],
      ['--tick', 'event', /--tick event: expected grid or sample/],
    ] as const) {
      const r = await run(['bench', 'loop', flag, value]);
      expect(r.code, `${flag} ${value}`).toBe(2);
      expect(r.err).toMatch(expected);
    }
  });
});
