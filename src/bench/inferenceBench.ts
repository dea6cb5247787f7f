import { Rng } from '../core/rng.js';
import { exportMetadataProps } from '../export/exportMetadata.js';
import { policyToOnnx } from '../export/policyOnnx.js';
import { GaussianMlpPolicy, initialPolicyWeights, makePolicySpec, type GaussianMlpPolicySpec, type PolicyWeights } from '../policies/gaussianMlpPolicy.js';
import { OnnxPolicy } from '../policies/onnxPolicy.js';

/** Options of the `inference` speed benchmark. */
export interface InferenceBenchOptions {
  /** Timed batch-1 calls per ONNX latency figure (after up to 5,000 warm-up calls). @default 100000 */
  onnxCalls?: number;
  /** Timed batch-1 calls of the tfjs policy (much slower per call). @default 2000 */
  tfjsCalls?: number;
  /** Seconds per batch-1024 throughput measurement. @default 1 */
  seconds?: number;
  log?: (line: string) => void;
}

/** The two policies measured: 2 × 64 and 2 × 256 tanh, HalfCheetah's sizes (17 obs, 6 act). */
const SIZES = { mlp64: 64, mlp256: 256 } as const;
const OBS_DIM = 17;
const ACT_DIM = 6;
const BATCH = 1024;

/** The p-th quantile (0..1) of sorted `t` (nearest rank). */
function quantile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

/** Per-call latencies in µs of `call`, each timed on its own (after `warmup` untimed calls). */
function latencies(calls: number, warmup: number, call: (i: number) => void): Float64Array {
  for (let i = 0; i < warmup; i++) call(i);
  const t = new Float64Array(calls);
  for (let i = 0; i < calls; i++) {
    const start = performance.now();
    call(i);
    t[i] = (performance.now() - start) * 1000;
  }
  return t.sort();
}

/** As `latencies`, for an async call. */
async function latenciesAsync(calls: number, warmup: number, call: (i: number) => Promise<unknown>): Promise<Float64Array> {
  for (let i = 0; i < warmup; i++) await call(i);
  const t = new Float64Array(calls);
  for (let i = 0; i < calls; i++) {
    const start = performance.now();
    await call(i);
    t[i] = (performance.now() - start) * 1000;
  }
  return t.sort();
}

/** Rows per second of `call` on a batch of `BATCH` rows, over about `seconds`. */
function throughput(seconds: number, call: () => void): number {
  call();
  let runs = 0;
  const start = performance.now();
  let elapsedMs = 0;
  do {
    call();
    runs++;
    elapsedMs = performance.now() - start;
  } while (elapsedMs < seconds * 1000);
  return (runs * BATCH) / (elapsedMs / 1000);
}

/**
 * Latency per action at batch 1 (p50, p99) and throughput at batch 1024 of an exported policy in
 * onnxruntime-node (`OnnxPolicy`, 1 intra-op thread, sequential execution, synchronous native
 * run), next to the same policy in tfjs (`GaussianMlpPolicy.act`, the current tfjs backend), for
 * 2 × 64 and 2 × 256 tanh networks with HalfCheetah's sizes. Figures per size `s`:
 * `onnx.s.p50Us`, `onnx.s.p99Us`, `onnx.s.calls`, `onnx.s.asyncP50Us` (the public async API,
 * `actAsync` without the native session), `onnx.s.batch1024PerSec`, `tfjs.s.p50Us`,
 * `tfjs.s.p99Us`, `tfjs.s.calls`, `tfjs.s.batch1024PerSec`, `speedupVsTfjs.s` (tfjs p50 / onnx p50)
 * and `speedupVsTfjs.s.p99` (the same for p99).
 * Observations vary per call (a seeded pool), so no result is cached anywhere.
 */
export async function benchInference(options: InferenceBenchOptions = {}): Promise<Record<string, number>> {
  const onnxCalls = options.onnxCalls ?? 100_000;
  const tfjsCalls = options.tfjsCalls ?? 2000;
  const seconds = options.seconds ?? 1;
  const log = options.log ?? (() => undefined);
  const metrics: Record<string, number> = {};
  const rng = new Rng(0);
  const pool = 1024;
  const obsPool = Array.from({ length: pool }, () => Float64Array.from({ length: OBS_DIM }, () => rng.normal(0, 1)));
  const batchObs = Float64Array.from({ length: BATCH * OBS_DIM }, () => rng.normal(0, 1));
  for (const [name, width] of Object.entries(SIZES)) {
    const spec: GaussianMlpPolicySpec = makePolicySpec({ obsDim: OBS_DIM, actionLow: new Array<number>(ACT_DIM).fill(-1), actionHigh: new Array<number>(ACT_DIM).fill(1), hidden: [width, width], activation: 'tanh' });
    const weights: PolicyWeights = initialPolicyWeights(spec, new Rng(1));
    const bytes = policyToOnnx(spec, weights, exportMetadataProps({ what: 'policy', obsDim: OBS_DIM, actDim: ACT_DIM, actionLow: spec.actionLow, actionHigh: spec.actionHigh, squash: spec.squash }));

    const onnx = await OnnxPolicy.load(bytes);
    try {
      const t = latencies(onnxCalls, Math.min(5000, onnxCalls), (i) => onnx.act(obsPool[i % pool]));
      metrics[`onnx.${name}.p50Us`] = quantile(t, 0.5);
      metrics[`onnx.${name}.p99Us`] = quantile(t, 0.99);
      metrics[`onnx.${name}.calls`] = onnxCalls;
      log(`onnx ${name}: p50 ${quantile(t, 0.5).toFixed(1)} µs, p99 ${quantile(t, 0.99).toFixed(1)} µs over ${onnxCalls} calls`);
      const out = new Float64Array(BATCH * ACT_DIM);
      metrics[`onnx.${name}.batch1024PerSec`] = throughput(seconds, () => onnx.actBatch(batchObs, BATCH, out));
      log(`onnx ${name}: ${Math.round(metrics[`onnx.${name}.batch1024PerSec`])} actions/s at batch ${BATCH}`);
    } finally {
      onnx.dispose();
    }
    const onnxAsync = await OnnxPolicy.load(bytes, {}, { synchronous: false });
    try {
      const calls = Math.min(onnxCalls, 20_000);
      const t = await latenciesAsync(calls, Math.min(1000, calls), (i) => onnxAsync.actAsync(obsPool[i % pool]));
      metrics[`onnx.${name}.asyncP50Us`] = quantile(t, 0.5);
      log(`onnx ${name} (public async API): p50 ${quantile(t, 0.5).toFixed(1)} µs over ${calls} calls`);
    } finally {
      onnxAsync.dispose();
    }

    const policy = new GaussianMlpPolicy(spec, { weights });
    try {
      const t = latencies(tfjsCalls, Math.min(200, tfjsCalls), (i) => policy.act(obsPool[i % pool]));
      metrics[`tfjs.${name}.p50Us`] = quantile(t, 0.5);
      metrics[`tfjs.${name}.p99Us`] = quantile(t, 0.99);
      metrics[`tfjs.${name}.calls`] = tfjsCalls;
      log(`tfjs ${name}: p50 ${quantile(t, 0.5).toFixed(1)} µs, p99 ${quantile(t, 0.99).toFixed(1)} µs over ${tfjsCalls} calls`);
      metrics[`tfjs.${name}.batch1024PerSec`] = throughput(seconds, () => policy.actBatch(batchObs, BATCH));
    } finally {
      policy.dispose();
    }
    metrics[`speedupVsTfjs.${name}`] = metrics[`tfjs.${name}.p50Us`] / metrics[`onnx.${name}.p50Us`];
    metrics[`speedupVsTfjs.${name}.p99`] = metrics[`tfjs.${name}.p99Us`] / metrics[`onnx.${name}.p99Us`];
  }
  return metrics;
}
