import { cpus } from 'node:os';

/** One speed benchmark's output, in the one format of shared/BENCHMARKS.md. */
export interface BenchReport {
  benchmark: string;
  backend: string;
  node: string;
  cpus: number;
  metrics: Record<string, number>;
  /** Parts not measured, with the reason (e.g. an MJCF file not found). */
  skipped?: Record<string, string>;
}

/** Fills the common fields of a report. */
export function makeReport(benchmark: string, backend: string, metrics: Record<string, number>, skipped?: Record<string, string>): BenchReport {
  return { benchmark, backend, node: process.version, cpus: cpus().length, metrics, ...(skipped && Object.keys(skipped).length > 0 ? { skipped } : {}) };
}

/** A plain-text table of the metrics, for humans. */
export function formatReport(r: BenchReport): string {
  const lines = [`benchmark ${r.benchmark} (backend ${r.backend}, node ${r.node}, ${r.cpus} cpus)`];
  const width = Math.max(...Object.keys(r.metrics).map((k) => k.length), 10) + 2;
  for (const [k, v] of Object.entries(r.metrics)) lines.push(`  ${k.padEnd(width)}${formatNumber(v)}`);
  for (const [k, why] of Object.entries(r.skipped ?? {})) lines.push(`  ${k.padEnd(width)}skipped: ${why}`);
  return lines.join('\n');
}

function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US');
  return v.toPrecision(4);
}
