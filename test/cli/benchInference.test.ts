// `mbrl bench inference --json` prints the figures shared/BENCHMARKS.md names (with few calls here:
// this checks the shape, the committed figures come from the default 100,000 calls).
import { describe, expect, it } from 'vitest';
import { runCli as run } from '../runCli.js';

describe('mbrl bench inference', () => {
  it('--json prints the BENCHMARKS.md figures for both policy sizes', async () => {
    const r = await run(['bench', 'inference', '--json', '--calls', '300', '--seconds', '0.05']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out) as { benchmark: string; cpus: number; metrics: Record<string, number> };
    expect(report.benchmark).toBe('inference');
    for (const s of ['mlp64', 'mlp256']) {
      for (const k of [`onnx.${s}.p50Us`, `onnx.${s}.p99Us`, `tfjs.${s}.p50Us`, `speedupVsTfjs.${s}`, `onnx.${s}.batch1024PerSec`, `tfjs.${s}.batch1024PerSec`]) {
        expect(report.metrics[k], k).toBeGreaterThan(0);
      }
      expect(report.metrics[`onnx.${s}.p99Us`]).toBeGreaterThanOrEqual(report.metrics[`onnx.${s}.p50Us`]);
      expect(report.metrics[`onnx.${s}.calls`]).toBe(300);
      expect(report.metrics[`tfjs.${s}.calls`]).toBe(100);
    }
  }, 60_000);
});
