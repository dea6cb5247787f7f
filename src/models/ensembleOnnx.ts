/**
 * The dynamics ensemble's fast forward path: `EnsembleWeights` → an ONNX graph run by
 * onnxruntime-node, and an `EnsemblePredictor` over it.
 *
 * Layout: the predictor's grouped rows (member k's B rows contiguous) are, byte for byte, a
 * [K, B, ·] tensor, so the graph's inputs are `obs` [K, batch, obsDim] and `act` [K, batch, actDim]
 * and the caller's arrays are fed without a copy. Inside, the normalised input is split by member
 * and each member runs its own chain of 2-D `Gemm`s (bias fused into the GEMM) on its [B, ·] rows;
 * the K outputs are concatenated back to [K, B, ·] for the output heads. We measured this against
 * the other natural form, one batched MatMul [K, B, in] × [K, in, out] plus a bias Add per layer:
 * for the PETS network (K = 7, 4×200 SiLU) the per-member chains are 10–25% faster from B ≈ 15
 * rows per member up (fused bias, and each member's activations stay in cache), and slower only
 * for B = 1 (0.19 ms vs 0.14 ms: 7× more kernels).
 *
 * Graph (the pass documented on `EnsembleWeights`):
 *   x = (Concat(obs, act) − inputMean) / inputStd, split into K blocks of B rows
 *   h = act(Gemm(h, W_l[k], b_l[k])) per hidden layer; SiLU is Sigmoid + Mul (opset 17 has no
 *       Swish; onnxruntime's optimiser fuses x·sigmoid(x) into one QuickGelu kernel)
 *   [mean_n, logvar_n] = Split(Concat_k(Gemm(h, W_L[k], b_L[k])))
 *   target = mean_n · targetStd + targetMean → next_obs = obs + target[..obsDim], reward = target[obsDim]
 *   logvar = minLogvar + Softplus(maxLogvar − Softplus(maxLogvar − logvar_n) − minLogvar)
 *   variance = exp(logvar) · targetStd²
 * Outputs: `next_obs` [K, batch, obsDim]; `reward` [K, batch] when the reward is learned;
 * `variance` [K, batch, outDim] when members are probabilistic.
 */
import { availableParallelism } from 'node:os';
import ort from 'onnxruntime-node';
import { ValidationError } from '../core/errors.js';
import { attr, OnnxGraphBuilder } from '../export/onnxWriter.js';
import { checkEnsembleWeights, layerDimsOf } from './referenceForward.js';
import { outDimOf } from './types.js';
import type { EnsemblePredictor, EnsembleSpec, EnsembleWeights } from './types.js';

/** Name of the dynamic rows-per-member dimension in the ensemble graph. */
export const ENSEMBLE_BATCH_DIM = 'batch';

/**
 * Builds the ONNX model of an ensemble (see the file comment for the graph).
 * The spec is stored in `metadata_props` under `mbrl.spec` (JSON), with `mbrl.kind` =
 * `dynamics-ensemble`, so a loader can check what it got; `meta` adds or overrides entries.
 * @param meta extra metadata_props entries, e.g. `{ env: 'HalfCheetah-v5', seed: '1' }`
 * @example
 * const bytes = ensembleToOnnx(ensemble.toWeights(), { env: 'HalfCheetah-v5' });
 * await writeFile('dynamics.onnx', bytes);
 */
export function ensembleToOnnx(w: EnsembleWeights, meta: Readonly<Record<string, string>> = {}): Uint8Array {
  const where = 'ensembleToOnnx';
  checkEnsembleWeights(w, where);
  const { spec } = w;
  const { numMembers: K, obsDim, actDim } = spec;
  if (actDim < 1) throw new ValidationError(where, 'spec.actDim', `expected at least 1, got ${actDim}`);
  const outDim = outDimOf(spec);
  const B = ENSEMBLE_BATCH_DIM;
  const g = new OnnxGraphBuilder({ graphName: 'dynamics_ensemble', docString: 'mbrl-node dynamics ensemble' });
  const int64 = (name: string, values: number[]): string => g.addInitializer(name, values, [values.length]);
  const float = (name: string, values: Float32Array, dims: number[]): string => g.addInitializer(name, values, dims);

  const obs = g.addInput('obs', 'float32', [K, B, obsDim]);
  const act = g.addInput('act', 'float32', [K, B, actDim]);

  const x = g.op('Concat', [obs, act], { axis: attr.int(2) });
  const centred = g.op('Sub', [x, float('input_mean', w.inputMean, [obsDim + actDim])]);
  const normalised = g.op('Div', [centred, float('input_std', w.inputStd, [obsDim + actDim])], undefined, 'x_normalised');

  // One chain of 2-D Gemms per member on its own B rows (see the file comment for why).
  const dims = layerDimsOf(spec);
  const outWidth = dims[dims.length - 1][1];
  const blocks = K === 1 ? [normalised] : g.addNode('Split', [normalised], { outputs: K, attributes: { axis: attr.int(0) } });
  const rowsShape = int64('rows_shape', [-1, obsDim + actDim]);
  const memberOutputs = blocks.map((block, k) => {
    let h = g.op('Reshape', [block, rowsShape]);
    dims.forEach(([fanIn, fanOut], l) => {
      const W = float(`member${k}_W${l}`, w.weights[l].subarray(k * fanIn * fanOut, (k + 1) * fanIn * fanOut), [fanIn, fanOut]);
      const b = float(`member${k}_b${l}`, w.biases[l].subarray(k * fanOut, (k + 1) * fanOut), [fanOut]);
      const z = g.op('Gemm', [h, W, b]);
      if (l === dims.length - 1) h = z;
      else if (spec.activation === 'silu') h = g.op('Mul', [z, g.op('Sigmoid', [z])]);
      else h = g.op(spec.activation === 'relu' ? 'Relu' : 'Tanh', [z]);
    });
    return h;
  });
  const stacked = K === 1 ? memberOutputs[0] : g.op('Concat', memberOutputs, { axis: attr.int(0) });
  const h = g.op('Reshape', [stacked, int64('output_shape', [K, -1, outWidth])], undefined, 'member_outputs');

  let meanN = h;
  let logvarN = '';
  if (spec.probabilistic) {
    [meanN, logvarN] = g.addNode('Split', [h, int64('split_mean_logvar', [outDim, outDim])], {
      outputs: 2,
      attributes: { axis: attr.int(2) },
    });
  }
  const targetStd = float('target_std', w.targetStd, [outDim]);
  const target = g.op('Add', [g.op('Mul', [meanN, targetStd]), float('target_mean', w.targetMean, [outDim])]);
  let delta = target;
  if (spec.learnReward) {
    let rewardColumn: string;
    [delta, rewardColumn] = g.addNode('Split', [target, int64('split_delta_reward', [obsDim, 1])], {
      outputs: 2,
      attributes: { axis: attr.int(2) },
    });
    g.op('Squeeze', [rewardColumn, int64('reward_axis', [2])], undefined, 'reward');
  }
  g.op('Add', [obs, delta], undefined, 'next_obs');
  g.addOutput('next_obs', 'float32', [K, B, obsDim]);
  if (spec.learnReward) g.addOutput('reward', 'float32', [K, B]);

  if (spec.probabilistic) {
    const maxL = float('max_logvar', w.maxLogvar!, [outDim]);
    const minL = float('min_logvar', w.minLogvar!, [outDim]);
    const upper = g.op('Sub', [maxL, g.op('Softplus', [g.op('Sub', [maxL, logvarN])])]);
    const logvar = g.op('Add', [minL, g.op('Softplus', [g.op('Sub', [upper, minL])])], undefined, 'logvar');
    const stdSquared = new Float32Array(outDim).map((_, j) => w.targetStd[j] * w.targetStd[j]);
    g.op('Mul', [g.op('Exp', [logvar]), float('target_var', stdSquared, [outDim])], undefined, 'variance');
    g.addOutput('variance', 'float32', [K, B, outDim]);
    // The same in log space, raw units (what deployers of a Gaussian model usually want): log σ²_n + log σ²_target.
    const logStdSquared = stdSquared.map((v) => Math.log(v));
    g.op('Add', [logvar, float('log_target_var', logStdSquared, [outDim])], undefined, 'log_variance');
    g.addOutput('log_variance', 'float32', [K, B, outDim]);
  }

  g.setMetadata('mbrl.kind', 'dynamics-ensemble');
  g.setMetadata('mbrl.spec', JSON.stringify(spec));
  for (const [key, value] of Object.entries(meta)) g.setMetadata(key, value);
  return g.encodeModel();
}

/** Options of `OrtEnsemblePredictor.create`. */
export interface OrtEnsemblePredictorOptions {
  /** onnxruntime intra-op threads. @default os.availableParallelism() */
  intraOpThreads?: number;
  /** Metadata passed to `ensembleToOnnx`. @default {} */
  meta?: Readonly<Record<string, string>>;
}

/** onnxruntime session options for a single-model, latency-bound CPU session. */
function sessionOptions(intraOpThreads: number): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: intraOpThreads,
    interOpNumThreads: 1,
    // No busy-waiting between ops, as in the trainer (models/trainer.ts): a spinning worker burns
    // the core that the JS thread or another process needs, and one that the OS has descheduled
    // holds up every op's barrier. On a 2-core machine shared with a training run, the PETS-sized
    // forward (5 × 1600 rows, 2 threads) took 95–137 ms with spinning and 40–62 ms without (one
    // spinning thread: 37–58 ms). The one large GEMM of `measureGemmPeak` (same options) is
    // unaffected either way.
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
}

/**
 * `EnsemblePredictor` backed by onnxruntime-node: the ensemble graph from `ensembleToOnnx`.
 *
 * The caller's arrays are used in place: inputs are wrapped as tensors without a copy and outputs
 * are passed to onnxruntime as pre-allocated fetches, so a call allocates no large arrays. The
 * wrapping tensors are cached per array, so a planner that reuses its buffers pays nothing per step.
 * `outNextObs` may be `obs` itself (a rollout stepping its state in place): `obs` is read by the
 * first node and by the last, which writes `next_obs` element by element.
 * Weights are baked into the session: after each refit, `create` a new predictor and `dispose`
 * the old one.
 *
 * Note that onnxruntime-node runs `session.run` synchronously on the JS thread (after a
 * `setImmediate`), so a forward pass blocks the event loop for its duration.
 *
 * @example
 * const predictor = await OrtEnsemblePredictor.create(ensemble.toWeights(), { intraOpThreads: 2 });
 * await predictor.predict(obs, act, B, nextObs, reward, variance);
 * predictor.dispose();
 */
export class OrtEnsemblePredictor implements EnsemblePredictor {
  readonly spec: EnsembleSpec;
  #session: ort.InferenceSession | null;
  readonly #outDim: number;
  /** Tensors wrapping caller arrays, keyed by the array; reused while the shape is unchanged. */
  #tensors = new WeakMap<Float32Array, ort.Tensor>();

  private constructor(spec: EnsembleSpec, session: ort.InferenceSession) {
    this.spec = spec;
    this.#session = session;
    this.#outDim = outDimOf(spec);
  }

  /**
   * Builds the graph for `weights` and opens an onnxruntime session on it.
   * @param options.intraOpThreads default `os.availableParallelism()`
   */
  static async create(weights: EnsembleWeights, options: OrtEnsemblePredictorOptions = {}): Promise<OrtEnsemblePredictor> {
    const threads = options.intraOpThreads ?? availableParallelism();
    if (!Number.isInteger(threads) || threads < 1) {
      throw new ValidationError('OrtEnsemblePredictor.create', 'intraOpThreads', `expected a positive integer, got ${threads}`);
    }
    const bytes = ensembleToOnnx(weights, options.meta);
    const session = await ort.InferenceSession.create(bytes, sessionOptions(threads));
    return new OrtEnsemblePredictor({ ...weights.spec, hidden: [...weights.spec.hidden] }, session);
  }

  /** See `EnsemblePredictor.predict`. @throws ValidationError on a wrong length or an output the ensemble does not produce */
  async predict(
    obs: Float32Array,
    act: Float32Array,
    rowsPerMember: number,
    outNextObs: Float32Array,
    outReward?: Float32Array,
    outVar?: Float32Array,
  ): Promise<void> {
    const where = 'OrtEnsemblePredictor.predict';
    const session = this.#session;
    if (session === null) throw new Error(`${where}: the predictor was disposed`);
    const { numMembers: K, obsDim, actDim } = this.spec;
    const B = rowsPerMember;
    if (!Number.isInteger(B) || B < 1) throw new ValidationError(where, 'rowsPerMember', `expected a positive integer, got ${B}`);
    const rows = `K·B = ${K}·${B} rows`;
    const expect = (field: string, a: Float32Array, width: number): void => {
      if (!(a instanceof Float32Array)) throw new ValidationError(where, field, `expected a Float32Array, got ${typeof a}`);
      if (a.length !== K * B * width) {
        throw new ValidationError(where, field, `expected length ${K * B * width} (${rows} of ${width}), got length ${a.length}`);
      }
    };
    expect('obs', obs, obsDim);
    expect('act', act, actDim);
    expect('outNextObs', outNextObs, obsDim);
    const fetches: Record<string, ort.Tensor> = { next_obs: this.#tensor(outNextObs, [K, B, obsDim]) };
    if (outReward !== undefined) {
      if (!this.spec.learnReward) throw new ValidationError(where, 'outReward', 'this ensemble does not learn the reward (spec.learnReward is false)');
      expect('outReward', outReward, 1);
      fetches.reward = this.#tensor(outReward, [K, B]);
    }
    if (outVar !== undefined) {
      if (!this.spec.probabilistic) throw new ValidationError(where, 'outVar', 'this ensemble is deterministic (spec.probabilistic is false)');
      expect('outVar', outVar, this.#outDim);
      fetches.variance = this.#tensor(outVar, [K, B, this.#outDim]);
    }
    const feeds = { obs: this.#tensor(obs, [K, B, obsDim]), act: this.#tensor(act, [K, B, actDim]) };
    await session.run(feeds, fetches);
  }

  /** Releases the onnxruntime session; `predict` throws afterwards. Safe to call twice. */
  dispose(): void {
    const session = this.#session;
    this.#session = null;
    this.#tensors = new WeakMap();
    if (session !== null) void session.release();
  }

  /** A tensor over `data` (no copy), cached per array while its dims stay the same. */
  #tensor(data: Float32Array, dims: number[]): ort.Tensor {
    const cached = this.#tensors.get(data);
    if (cached !== undefined && cached.dims.length === dims.length && cached.dims.every((d, i) => d === dims[i])) {
      return cached;
    }
    const tensor = new ort.Tensor('float32', data, dims);
    this.#tensors.set(data, tensor);
    return tensor;
  }
}

/** Options of `measureGemmPeak`. */
export interface GemmPeakOptions {
  /** Matrix size: one n×n · n×n product per run. @default 1024 */
  n?: number;
  /** Timed duration, after one warm-up run. @default 1 */
  seconds?: number;
  /** onnxruntime intra-op threads. @default os.availableParallelism() */
  intraOpThreads?: number;
}

/**
 * The GFLOP/s of one large square GEMM (an ONNX MatMul graph) through onnxruntime-node in this
 * process: the `peakGflops` that benchmarks divide their own GFLOP/s by, so ratios hold on a noisy
 * machine. Counts 2n³ flops per product; returns total flops over total time of the timed runs.
 * @example
 * const peakGflops = await measureGemmPeak({ n: 1024, seconds: 2 });
 */
export async function measureGemmPeak(options: GemmPeakOptions = {}): Promise<number> {
  const n = options.n ?? 1024;
  const seconds = options.seconds ?? 1;
  const threads = options.intraOpThreads ?? availableParallelism();
  const g = new OnnxGraphBuilder({ graphName: 'gemm_peak' });
  const a = g.addInput('a', 'float32', [n, n]);
  // Deterministic, well-scaled data; the values do not affect the speed of a dense GEMM.
  const bData = new Float32Array(n * n).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  g.op('MatMul', [a, g.addInitializer('b', bData, [n, n])], undefined, 'c');
  g.addOutput('c', 'float32', [n, n]);
  const session = await ort.InferenceSession.create(g.encodeModel(), sessionOptions(threads));
  try {
    const feeds = { a: new ort.Tensor('float32', bData.slice(), [n, n]) };
    const fetches = { c: new ort.Tensor('float32', new Float32Array(n * n), [n, n]) };
    await session.run(feeds, fetches);
    let runs = 0;
    const start = performance.now();
    let elapsedMs = 0;
    do {
      await session.run(feeds, fetches);
      runs++;
      elapsedMs = performance.now() - start;
    } while (elapsedMs < seconds * 1000);
    return (2 * n * n * n * runs) / (elapsedMs * 1e6);
  } finally {
    await session.release();
  }
}
