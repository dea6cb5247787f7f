/**
 * `OnnxPolicy`: an exported policy (`policyToOnnx`, `mbrl export`) run by onnxruntime-node, for
 * deployment and evaluation, behind the same `Agent` interface as the in-process policies.
 *
 * Why `act` can be synchronous: onnxruntime-node's public `InferenceSession.run` returns a
 * Promise, but only defers a synchronous native call to the next `setImmediate`; the inference
 * itself runs on the JS thread either way. `OnnxPolicy` calls that native session object
 * (onnxruntime-node's `dist/binding.js`, the object its own `InferenceSession` wraps) directly,
 * which saves the event-loop turn and the wrapper's per-call objects: at batch 1 for a 2 × 64
 * policy, p50 17.3 µs instead of 27.4 µs (A/B in one process on the 2-core development machine;
 * `mbrl bench inference` reports both). Where that
 * internal is absent (a future onnxruntime-node layout) or `synchronous: false` is asked for, the
 * public async API is used: `actAsync` works and `act` throws, saying so.
 *
 * Hot path: `act` copies the observation into a preallocated float32 input whose `ort.Tensor` is
 * built once, and onnxruntime writes the action into a preallocated output tensor; the action is
 * copied into a reused Float64Array. mbrl-node allocates nothing per call; onnxruntime-node's
 * binding itself creates one small result object per run, which we ignore.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import ort from 'onnxruntime-node';
import type { Agent } from '../core/agent.js';
import { ValidationError } from '../core/errors.js';
import { Box } from '../core/spaces.js';
import { readExportMetadata, type ReadExportMetadata } from '../export/exportMetadata.js';
import { decodeModelProto, OnnxDataType, type ModelProto, type ValueInfoProto } from '../export/onnxProto.js';
import { POLICY_ONNX_NAMES } from '../export/policyOnnx.js';

/** What the caller expects of the file; every given field is checked. */
export interface OnnxPolicyExpected {
  /** Observation size of the robot or environment. */
  obsDim?: number;
  /** Action size. */
  actDim?: number;
  /** Environment id the policy must have been trained on (`mbrl.env_id`). */
  envId?: string;
  /** Action bounds the policy's must equal (exactly: they are written as round-trip decimals). */
  actionSpace?: Box;
  /** Require the `mean` and `log_std` outputs of a stochastic export. */
  stochastic?: boolean;
}

/** Options of `OnnxPolicy.load`. */
export interface OnnxPolicyOptions {
  /** onnxruntime intra-op threads. @default 1 (latency-bound small graphs gain nothing from more) */
  intraOpThreads?: number;
  /** onnxruntime execution mode. @default 'sequential' */
  executionMode?: 'sequential' | 'parallel';
  /** Run inference synchronously through onnxruntime-node's native session (see the file comment). @default true */
  synchronous?: boolean;
}

type Feeds = Record<string, ort.Tensor>;

/** onnxruntime-node's native session object (the shape of its `dist/binding.d.ts`). */
interface NativeSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: ort.InferenceSession.SessionOptions): void;
  run(feeds: Feeds, fetches: Feeds, options: ort.InferenceSession.RunOptions): unknown;
  dispose(): void;
}
interface NativeBinding {
  binding: { InferenceSession: new () => NativeSession };
  initOrt: () => void;
}

/** onnxruntime-node's native binding, or undefined when its internal layout is not the one we know. */
function loadNativeBinding(): NativeBinding | undefined {
  try {
    const mod = createRequire(import.meta.url)('onnxruntime-node/dist/binding.js') as Partial<NativeBinding>;
    if (typeof mod.initOrt !== 'function' || typeof mod.binding?.InferenceSession !== 'function') return undefined;
    const proto = mod.binding.InferenceSession.prototype as Partial<NativeSession>;
    if (typeof proto.loadModel !== 'function' || typeof proto.run !== 'function' || typeof proto.dispose !== 'function') return undefined;
    return mod as NativeBinding;
  } catch {
    return undefined;
  }
}

/** Preallocated input, output and tensors for one batch size. */
interface BatchBuffers {
  n: number;
  x: Float32Array;
  feeds: Feeds;
  action: Float32Array;
  fetches: Feeds;
}

/**
 * A deterministic controller loaded from an exported `.onnx` policy: raw observation in, action
 * inside the bounds out (normalisation, clipping or tanh, and scaling are inside the graph).
 * Implements `Agent` (synchronous `act`) and `AsyncAgent`/`PlanningAgent` (`actAsync`, `reset`), so
 * it runs in `runEpisodes`, `runEpisodesAsync` and the control node alike.
 *
 * @example
 * const policy = await OnnxPolicy.load('models/pendulum-trpo.onnx', { obsDim: 3, actDim: 1, envId: 'Pendulum-v1' });
 * const action = policy.act(obs);            // Float64Array(actDim), reused by the next call
 * const stats = await runEpisodesAsync(env, policy, { episodes: 10, seed: 0 });
 * policy.dispose();
 */
export class OnnxPolicy implements Agent {
  /** The file's `mbrl.*` metadata. */
  readonly metadata: ReadExportMetadata;
  readonly obsDim: number;
  readonly actDim: number;
  /** The action bounds the file declares (every action lies inside them). */
  readonly actionSpace: Box;
  /** Whether the file also outputs `mean` and `log_std`. */
  readonly stochastic: boolean;
  /** Whether `act` works (the native session was available); otherwise use `actAsync`. */
  readonly synchronous: boolean;
  readonly #native: NativeSession | null;
  readonly #session: ort.InferenceSession | null;
  readonly #runOptions: ort.InferenceSession.RunOptions = {};
  readonly #one: BatchBuffers;
  readonly #out: Float64Array;
  #batch: BatchBuffers | null = null;
  #disposed = false;

  private constructor(meta: ReadExportMetadata, stochastic: boolean, native: NativeSession | null, session: ort.InferenceSession | null) {
    this.metadata = meta;
    this.obsDim = meta.obsDim;
    this.actDim = meta.actDim;
    this.actionSpace = new Box(meta.actionLow, meta.actionHigh);
    this.stochastic = stochastic;
    this.#native = native;
    this.#session = session;
    this.synchronous = native !== null;
    this.#one = this.#buffers(1);
    this.#out = new Float64Array(meta.actDim);
  }

  /**
   * Loads an exported policy and checks it: one input `obs` [batch, obsDim] float32, an output
   * `action` [batch, actDim] (and `mean`, `log_std` when `expected.stochastic`), `mbrl.what` =
   * `policy`, sizes that agree between the graph and the metadata, and every field of `expected`.
   * @param source a file path or the file's bytes
   * @param expected what the caller's robot or environment needs (checked; nothing is reshaped)
   * @param options session options; defaults: 1 intra-op thread, sequential, synchronous
   * @throws ValidationError naming the file, the field, what it holds and what was expected
   */
  static async load(source: string | Uint8Array, expected: OnnxPolicyExpected = {}, options: OnnxPolicyOptions = {}): Promise<OnnxPolicy> {
    const name = typeof source === 'string' ? source : `<${source.byteLength} bytes>`;
    const where = `OnnxPolicy.load(${name})`;
    const bytes = typeof source === 'string' ? new Uint8Array(await readFile(source)) : source;
    let model: ModelProto;
    try {
      model = decodeModelProto(bytes);
    } catch (err) {
      throw new ValidationError(where, 'file', `not an ONNX model (${err instanceof Error ? err.message : String(err)})`);
    }
    if (!model.graph) throw new ValidationError(where, 'file', 'not an ONNX model (no graph)');
    const props: Record<string, string> = {};
    for (const { key, value } of model.metadata_props ?? []) props[key] = value;
    const meta = readExportMetadata(props, where);
    if (meta.what !== 'policy') {
      throw new ValidationError(where, 'mbrl.what', `expected "policy", got "${meta.what}" (a dynamics ensemble: its inputs are obs and act, see OrtEnsemblePredictor)`);
    }
    const stochastic = checkSignature(model, meta, where, expected.stochastic === true);
    checkExpected(meta, expected, where);

    const threads = options.intraOpThreads ?? 1;
    if (!Number.isInteger(threads) || threads < 1) throw new ValidationError('OnnxPolicy.load', 'options.intraOpThreads', `expected a positive integer, got ${threads}`);
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      executionMode: options.executionMode ?? 'sequential',
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      // No busy-waiting threads (see models/ensembleOnnx.ts): they would steal the core a control loop needs.
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    };
    const binding = options.synchronous === false ? undefined : loadNativeBinding();
    if (binding !== undefined) {
      binding.initOrt();
      const native = new binding.binding.InferenceSession();
      try {
        native.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, sessionOptions);
      } catch (err) {
        throw new ValidationError(where, 'file', `onnxruntime cannot load it: ${err instanceof Error ? err.message : String(err)}`);
      }
      return new OnnxPolicy(meta, stochastic, native, null);
    }
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, sessionOptions);
    } catch (err) {
      throw new ValidationError(where, 'file', `onnxruntime cannot load it: ${err instanceof Error ? err.message : String(err)}`);
    }
    return new OnnxPolicy(meta, stochastic, null, session);
  }

  /**
   * The action for one observation. The returned array is reused by the next call.
   * @throws ValidationError for an observation of the wrong length or with a NaN entry; Error when
   *   `synchronous` is false
   */
  act(obs: Float64Array): Float64Array {
    const b = this.#one;
    if (obs.length !== this.obsDim) this.#badObs(obs.length, 1, 'act');
    const x = b.x;
    for (let i = 0; i < x.length; i++) {
      const v = obs[i];
      if (Number.isNaN(v)) this.#nanObs(i, 'act');
      x[i] = v;
    }
    this.#runSync(b, 'act');
    return this.#toAction(b.action);
  }

  /** `act` for loops that await (`runEpisodesAsync`, the control node); works without the native session too. */
  async actAsync(obs: Float64Array): Promise<Float64Array> {
    if (this.#native !== null) return this.act(obs);
    const b = this.#one;
    if (obs.length !== this.obsDim) this.#badObs(obs.length, 1, 'actAsync');
    for (let i = 0; i < b.x.length; i++) {
      const v = obs[i];
      if (Number.isNaN(v)) this.#nanObs(i, 'actAsync');
      b.x[i] = v;
    }
    await this.#runAsync(b, 'actAsync');
    return this.#toAction(b.action);
  }

  /**
   * Actions for `n` observations (row-major [n, obsDim]) into `out` [n, actDim]. Buffers for the last batch size are kept, so a loop with a
   * fixed batch allocates nothing when it passes `out`.
   */
  actBatch(obs: ArrayLike<number>, n: number, out: Float64Array = new Float64Array(n * this.actDim)): Float64Array {
    const b = this.#prepareBatch(obs, n, out, 'actBatch');
    this.#runSync(b, 'actBatch');
    out.set(b.action);
    return out;
  }

  /** `actBatch` through the async path. */
  async actBatchAsync(obs: ArrayLike<number>, n: number, out: Float64Array = new Float64Array(n * this.actDim)): Promise<Float64Array> {
    if (this.#native !== null) return this.actBatch(obs, n, out);
    const b = this.#prepareBatch(obs, n, out, 'actBatchAsync');
    await this.#runAsync(b, 'actBatchAsync');
    out.set(b.action);
    return out;
  }

  /**
   * The Gaussian's mean and log-std [n, actDim] (normalised action units) of a stochastic export.
   * Not for the hot path (allocates its outputs).
   * @throws ValidationError when the file was exported without them
   */
  async distribution(obs: ArrayLike<number>, n: number): Promise<{ mean: Float32Array; logStd: Float32Array; action: Float32Array }> {
    if (!this.stochastic) throw new ValidationError('OnnxPolicy.distribution', 'outputs', 'this file has no mean and log_std outputs (export it with stochastic: true)');
    const where = 'OnnxPolicy.distribution';
    this.#checkLive(where);
    if (!Number.isInteger(n) || n < 1) throw new ValidationError(where, 'n', `expected a positive integer, got ${n}`);
    if (obs.length !== n * this.obsDim) this.#badObs(obs.length, n, where);
    const x = Float32Array.from(obs);
    const A = this.actDim;
    const mean = new Float32Array(n * A);
    const logStd = new Float32Array(n * A);
    const action = new Float32Array(n * A);
    const N = POLICY_ONNX_NAMES;
    const feeds = { [N.obs]: new ort.Tensor('float32', x, [n, this.obsDim]) };
    const fetches = {
      [N.action]: new ort.Tensor('float32', action, [n, A]),
      [N.mean]: new ort.Tensor('float32', mean, [n, A]),
      [N.logStd]: new ort.Tensor('float32', logStd, [n, A]),
    };
    if (this.#native !== null) this.#native.run(feeds, fetches, this.#runOptions);
    else await this.#session!.run(feeds, fetches);
    return { mean, logStd, action };
  }

  /** Stateless policy: nothing to reset (here for `AsyncAgent`/`PlanningAgent`). */
  reset(): void {}

  /** Releases the onnxruntime session; later calls throw. Safe to call twice. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#native?.dispose();
    if (this.#session !== null) void this.#session.release();
  }

  /** The float32 action as float64, in the reused output (the graph keeps it inside the float64 bounds). */
  #toAction(a: Float32Array): Float64Array {
    const out = this.#out;
    for (let j = 0; j < out.length; j++) out[j] = a[j];
    return out;
  }

  #buffers(n: number): BatchBuffers {
    const x = new Float32Array(n * this.obsDim);
    const action = new Float32Array(n * this.actDim);
    return {
      n,
      x,
      feeds: { [POLICY_ONNX_NAMES.obs]: new ort.Tensor('float32', x, [n, this.obsDim]) },
      action,
      fetches: { [POLICY_ONNX_NAMES.action]: new ort.Tensor('float32', action, [n, this.actDim]) },
    };
  }

  #prepareBatch(obs: ArrayLike<number>, n: number, out: Float64Array, where: string): BatchBuffers {
    if (!Number.isInteger(n) || n < 1) throw new ValidationError(`OnnxPolicy.${where}`, 'n', `expected a positive integer, got ${n}`);
    if (obs.length !== n * this.obsDim) this.#badObs(obs.length, n, where);
    if (out.length !== n * this.actDim) throw new ValidationError(`OnnxPolicy.${where}`, 'out', `expected ${n} × ${this.actDim} = ${n * this.actDim} values, got ${out.length}`);
    let b = n === 1 ? this.#one : this.#batch;
    if (b === null || b.n !== n) b = this.#batch = this.#buffers(n);
    const x = b.x;
    for (let i = 0; i < x.length; i++) {
      const v = obs[i];
      if (Number.isNaN(v)) this.#nanObs(i, where);
      x[i] = v;
    }
    return b;
  }

  #runSync(b: BatchBuffers, where: string): void {
    if (this.#disposed) this.#checkLive(`OnnxPolicy.${where}`);
    const native = this.#native;
    if (native === null) {
      throw new Error(`OnnxPolicy.${where}: synchronous inference is not available (onnxruntime-node's native session was not found, or synchronous: false was asked for); use ${where}Async`);
    }
    native.run(b.feeds, b.fetches, this.#runOptions);
  }

  async #runAsync(b: BatchBuffers, where: string): Promise<void> {
    this.#checkLive(`OnnxPolicy.${where}`);
    await this.#session!.run(b.feeds, b.fetches);
  }

  #checkLive(where: string): void {
    if (this.#disposed) throw new Error(`${where}: the policy was disposed`);
  }

  #nanObs(i: number, where: string): never {
    const row = Math.floor(i / this.obsDim);
    const name = this.metadata.obsNames?.[i % this.obsDim];
    throw new ValidationError(`OnnxPolicy.${where}`, `obs[${i}]`, `is NaN (row ${row}, entry ${i % this.obsDim}${name ? ` "${name}"` : ''}); expected a number: no action is right for a NaN observation`);
  }

  #badObs(length: number, n: number, where: string): never {
    throw new ValidationError(`OnnxPolicy.${where}`, 'obs', `expected ${n} × ${this.obsDim} = ${n * this.obsDim} values (obs_dim ${this.obsDim}), got ${length}`);
  }
}

/** The tensor's element type and dims (a string for a named dynamic dim), or undefined for a non-tensor. */
function tensorInfo(v: ValueInfoProto): { elemType: number; dims: (number | string | undefined)[] } | undefined {
  const t = v.type?.tensor_type;
  if (t === undefined) return undefined;
  return { elemType: t.elem_type, dims: (t.shape?.dim ?? []).map((d) => d.dim_value ?? d.dim_param) };
}

/** Checks the graph's inputs and outputs against the metadata; returns whether it is stochastic. */
function checkSignature(model: ModelProto, meta: ReadExportMetadata, where: string, requireStochastic: boolean): boolean {
  const N = POLICY_ONNX_NAMES;
  const { input, output } = model.graph;
  const fmtDims = (d: (number | string | undefined)[]): string => `[${d.map((x) => (x === undefined ? '?' : String(x))).join(', ')}]`;
  const check = (kind: 'input' | 'output', v: ValueInfoProto, width: number, widthKey: string): void => {
    const info = tensorInfo(v);
    if (info === undefined || info.elemType !== OnnxDataType.FLOAT) {
      throw new ValidationError(where, `${kind} ${v.name}`, `expected a float32 tensor, got ${info === undefined ? 'no tensor type' : `element type ${info.elemType}`}`);
    }
    const ok = info.dims.length === 2 && typeof info.dims[0] !== 'number' && info.dims[1] === width;
    if (!ok) {
      throw new ValidationError(where, `${kind} ${v.name}`, `expected shape [batch, ${width}] (${widthKey} ${width} in the metadata, dynamic batch), got ${fmtDims(info.dims)}`);
    }
  };
  if (input.length !== 1 || input[0].name !== N.obs) {
    throw new ValidationError(where, 'inputs', `expected one input "${N.obs}", got ${JSON.stringify(input.map((i) => i.name))}`);
  }
  check('input', input[0], meta.obsDim, 'mbrl.obs_dim');
  const find = (name: string): ValueInfoProto | undefined => output.find((o) => o.name === name);
  const names = JSON.stringify(output.map((o) => o.name));
  const action = find(N.action);
  if (action === undefined) throw new ValidationError(where, 'outputs', `missing output "${N.action}" (outputs: ${names})`);
  check('output', action, meta.actDim, 'mbrl.act_dim');
  const mean = find(N.mean);
  const logStd = find(N.logStd);
  if (requireStochastic && (mean === undefined || logStd === undefined)) {
    throw new ValidationError(where, 'outputs', `missing output "${mean === undefined ? N.mean : N.logStd}" of a stochastic export (outputs: ${names}; export with stochastic: true)`);
  }
  if (mean !== undefined) check('output', mean, meta.actDim, 'mbrl.act_dim');
  if (logStd !== undefined) check('output', logStd, meta.actDim, 'mbrl.act_dim');
  return mean !== undefined && logStd !== undefined;
}

function checkExpected(meta: ReadExportMetadata, expected: OnnxPolicyExpected, where: string): void {
  if (expected.obsDim !== undefined && expected.obsDim !== meta.obsDim) {
    throw new ValidationError(where, 'mbrl.obs_dim', `expected observations of size ${expected.obsDim}, the file's policy takes ${meta.obsDim}`);
  }
  if (expected.actDim !== undefined && expected.actDim !== meta.actDim) {
    throw new ValidationError(where, 'mbrl.act_dim', `expected actions of size ${expected.actDim}, the file's policy gives ${meta.actDim}`);
  }
  if (expected.envId !== undefined && expected.envId !== meta.envId) {
    throw new ValidationError(where, 'mbrl.env_id', `expected a policy for ${expected.envId}, the file's is for ${meta.envId === undefined ? 'an unnamed environment (no mbrl.env_id)' : meta.envId}`);
  }
  const space = expected.actionSpace;
  if (space !== undefined) {
    const same = space.dim === meta.actDim && meta.actionLow.every((v, j) => v === space.low[j] && meta.actionHigh[j] === space.high[j]);
    if (!same) {
      throw new ValidationError(
        where,
        'mbrl.action_low/mbrl.action_high',
        `expected action bounds [${Array.from(space.low).join(', ')}] – [${Array.from(space.high).join(', ')}], the file's are [${meta.actionLow.join(', ')}] – [${meta.actionHigh.join(', ')}]`,
      );
    }
  }
}
