/**
 * What the policy-gradient algorithms share (TRPO, PPO, and on imagined data ME-TRPO and
 * MB-MPO): the sample batch, its collection from any batched simulator, generalized advantage
 * estimation, and the flat-parameter helpers of second-order methods.
 *
 * The batch does not know where its samples came from. A `RolloutSource` is anything that steps
 * `numEnvs` copies in lockstep with same-step autoreset: real environments (`EnvRolloutSource`)
 * or a learned model (ME-TRPO's imagined rollouts wrap `ModelEnv` the same way).
 */
import * as tf from '@tensorflow/tfjs';
import type { Env, PhysicsParams } from '../core/env.js';
import { ValidationError, describe } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import { makeEnv } from '../envs/registry.js';
import { VecEnv } from '../envs/vecEnv.js';
import { gaussianLogProb } from '../policies/diagGaussian.js';
import { policyForward, type GaussianMlpPolicySpec } from '../policies/gaussianMlpPolicy.js';

// ---------------------------------------------------------------------------------------------
// Samples

/**
 * Transitions of a stochastic Gaussian policy, laid out as contiguous segments: each copy's
 * steps in time order, one copy after another. Every segment ends with `terminated` or
 * `truncated` set, so the last sample of the batch always closes a segment and `gae` can run
 * over the flat arrays.
 *
 * Row-major arrays: `obs`, `nextObs` [size, obsDim]; `u`, `actions`, `oldMean`, `oldLogStd`
 * [size, actDim]; the rest [size].
 */
export interface SampleBatch {
  size: number;
  obsDim: number;
  actDim: number;
  /** s_t */
  obs: Float32Array;
  /** s_{t+1}: the true next state, also where the episode ended (not the next episode's reset state). */
  nextObs: Float32Array;
  /** Steps since the episode began at s_t (the time feature of `LinearFeatureBaseline`). */
  timesteps: Float64Array;
  /** The raw Gaussian samples u_t ~ N(μ(s_t), σ²) in normalised action units (log-probabilities are of u). */
  u: Float32Array;
  /** The actions sent to the system, `policy.toActions(u)` (clipped or squashed into the bounds). */
  actions: Float64Array;
  rewards: Float64Array;
  /** 1 where s_{t+1} is terminal: no bootstrapping past it. */
  terminated: Uint8Array;
  /**
   * 1 where the segment stops without a terminal state — the time limit, or the end of this
   * batch in the middle of an episode: returns are bootstrapped with V(s_{t+1}).
   */
  truncated: Uint8Array;
  /** μ(s_t) and log σ(s_t) of the policy that drew u_t (the denominator of importance ratios). */
  oldMean: Float32Array;
  oldLogStd: Float32Array;
  /** Undiscounted returns and lengths of the episodes that ended inside this batch (whole episodes, also where they began in an earlier batch). */
  episodeReturns: number[];
  episodeLengths: number[];
}

/** What draws the actions: a `GaussianMlpPolicy`, or a policy with adapted parameters (MB-MPO). */
export interface ActionSampler {
  readonly obsDim: number;
  readonly actDim: number;
  /** Draws u ~ N(μ(s), σ²) for n rows and maps them to actions; returns u, the actions, μ and log σ (each [n, actDim]). */
  sample(obs: ArrayLike<number>, n: number, rng: Rng): { u: Float32Array; actions: Float64Array; mean: Float32Array; logStd: Float32Array };
}

/** One lockstep step of a `RolloutSource`. Arrays may be reused by the next step. */
export interface RolloutStep {
  /** s_{t+1} of every copy [numEnvs, obsDim], before any reset. */
  nextObs: ArrayLike<number>;
  rewards: ArrayLike<number>;
  /** Non-zero where the copy reached a terminal state. */
  terminated: ArrayLike<number>;
  /** Non-zero where the copy's episode was cut (time limit or imagined horizon). */
  truncated: ArrayLike<number>;
}

/**
 * `numEnvs` copies of a system stepped together. A copy whose episode ends is reset within the
 * same `step` (Gymnasium's same-step autoreset): afterwards `obs` holds its new start state.
 * The source keeps each copy's running episode return and step count, so episodes may span
 * several `collectRollouts` calls.
 */
export interface RolloutSource {
  readonly numEnvs: number;
  readonly obsDim: number;
  readonly actDim: number;
  /** The states the next step starts from [numEnvs, obsDim]. */
  readonly obs: ArrayLike<number>;
  /** Steps taken so far in each copy's current episode. */
  readonly timesteps: ArrayLike<number>;
  /** Undiscounted return so far of each copy's current episode. */
  readonly episodeReturns: ArrayLike<number>;
  step(actions: Float64Array): RolloutStep | Promise<RolloutStep>;
}

/** How much `collectRollouts` gathers. */
export type RolloutAmount =
  /** At least `steps` samples: ⌈steps / numEnvs⌉ steps of every copy; open episodes are cut (and bootstrapped). */
  | { steps: number }
  /** Whole episodes: steps until `episodes` have ended; the unfinished tails of other copies are dropped. */
  | { episodes: number };

/**
 * Real environments as a `RolloutSource`. Copy i is reset with `seed + i` once, at construction;
 * later episodes continue each copy's own generator, so a run is reproducible from one seed.
 * The environments stay the caller's (no `close`).
 */
export class EnvRolloutSource implements RolloutSource {
  readonly numEnvs: number;
  readonly obsDim: number;
  readonly actDim: number;
  readonly #vec: VecEnv;
  #obs: Float64Array;
  readonly #nextObs: Float64Array;
  readonly #timesteps: Float64Array;
  readonly #returns: Float64Array;

  constructor(envs: Env | readonly Env[], options: { seed: number }) {
    this.#vec = new VecEnv(Array.isArray(envs) ? [...(envs as readonly Env[])] : [envs as Env]);
    this.numEnvs = this.#vec.numEnvs;
    this.obsDim = this.#vec.obsDim;
    this.actDim = this.#vec.actDim;
    this.#obs = this.#vec.reset({ seed: options.seed });
    this.#nextObs = new Float64Array(this.numEnvs * this.obsDim);
    this.#timesteps = new Float64Array(this.numEnvs);
    this.#returns = new Float64Array(this.numEnvs);
  }

  get obs(): Float64Array {
    return this.#obs;
  }
  get timesteps(): Float64Array {
    return this.#timesteps;
  }
  get episodeReturns(): Float64Array {
    return this.#returns;
  }

  step(actions: Float64Array): RolloutStep {
    const r = this.#vec.step(actions);
    const D = this.obsDim;
    for (let i = 0; i < this.numEnvs; i++) {
      const final = r.finalObs[i];
      this.#nextObs.set(final ?? r.obs.subarray(i * D, (i + 1) * D), i * D);
      if (final) {
        this.#timesteps[i] = 0;
        this.#returns[i] = 0;
      } else {
        this.#timesteps[i] += 1;
        this.#returns[i] += r.rewards[i];
      }
    }
    this.#obs = r.obs;
    return { nextObs: this.#nextObs, rewards: r.rewards, terminated: r.terminated, truncated: r.truncated };
  }
}

/**
 * The `numEnvs` environment copies a run's config asks for (TRPO, PPO), built from its task id,
 * physical variant and time limit.
 * @example
 * const config = makeTrpoConfig({ env: 'InvertedPendulum-v5' });
 * const { policy } = await trainTrpo(config, await makeEnvCopies(config));
 */
export async function makeEnvCopies(config: { env: string; numEnvs: number; physics: Partial<PhysicsParams>; maxEpisodeSteps: number | null }): Promise<Env[]> {
  const envs: Env[] = [];
  try {
    for (let i = 0; i < config.numEnvs; i++) {
      envs.push(await makeEnv(config.env, { physics: config.physics, ...(config.maxEpisodeSteps === null ? {} : { maxEpisodeSteps: config.maxEpisodeSteps }) }));
    }
  } catch (err) {
    for (const e of envs) e.close();
    throw err;
  }
  return envs;
}

/**
 * Runs a stochastic policy in a `RolloutSource` and returns the samples as a `SampleBatch`.
 * One `sampler.sample` call per lockstep step draws the actions of all copies.
 *
 * @param amount `{ steps }` (PPO/TRPO batches: open episodes are cut and bootstrapped) or
 *   `{ episodes }` (whole episodes only)
 * @example
 * const source = new EnvRolloutSource(env, { seed: 0 });
 * const batch = await collectRollouts(source, policy, rng, { steps: 2048 });
 */
export async function collectRollouts(source: RolloutSource, sampler: ActionSampler, rng: Rng, amount: RolloutAmount): Promise<SampleBatch> {
  const where = 'collectRollouts';
  const n = source.numEnvs;
  const D = source.obsDim;
  const A = source.actDim;
  if (sampler.obsDim !== D || sampler.actDim !== A) {
    throw new ValidationError(where, 'sampler', `expected obsDim ${D} and actDim ${A} (the source's), got ${sampler.obsDim} and ${sampler.actDim}`);
  }
  const byEpisodes = 'episodes' in amount;
  const target = byEpisodes ? amount.episodes : amount.steps;
  if (!Number.isInteger(target) || target < 1) {
    throw new ValidationError(where, byEpisodes ? 'episodes' : 'steps', `expected an integer ≥ 1, got ${describe(target)}`);
  }
  const streams = Array.from({ length: n }, () => new Stream());
  const episodeReturns: number[] = [];
  const episodeLengths: number[] = [];
  const stepsPerCopy = byEpisodes ? Infinity : Math.ceil(target / n);
  const obsBefore = new Float64Array(n * D);
  const tBefore = new Float64Array(n);
  const retBefore = new Float64Array(n);
  for (let t = 0; t < stepsPerCopy && !(byEpisodes && episodeReturns.length >= target); t++) {
    obsBefore.set(source.obs);
    tBefore.set(source.timesteps);
    retBefore.set(source.episodeReturns);
    const s = sampler.sample(obsBefore, n, rng);
    const pending = source.step(s.actions);
    const r = pending instanceof Promise ? await pending : pending;
    for (let i = 0; i < n; i++) {
      const term = r.terminated[i] !== 0;
      const trunc = r.truncated[i] !== 0;
      streams[i].push(obsBefore, r.nextObs, i, D, s, A, tBefore[i], r.rewards[i], term, trunc);
      if (term || trunc) {
        episodeReturns.push(retBefore[i] + r.rewards[i]);
        episodeLengths.push(tBefore[i] + 1);
        streams[i].closedAt = streams[i].length;
      }
    }
  }
  if (byEpisodes) {
    for (const st of streams) st.length = st.closedAt;
  } else {
    // The batch ends mid-episode: mark the cut so that GAE bootstraps there.
    for (const st of streams) if (st.length > 0 && st.terminated[st.length - 1] === 0) st.truncated[st.length - 1] = 1;
  }
  return streamsToBatch(streams, D, A, episodeReturns, episodeLengths);
}

/** One copy's samples while collecting (plain growable arrays). */
class Stream {
  obs: number[] = [];
  nextObs: number[] = [];
  timesteps: number[] = [];
  u: number[] = [];
  actions: number[] = [];
  mean: number[] = [];
  logStd: number[] = [];
  rewards: number[] = [];
  terminated: number[] = [];
  truncated: number[] = [];
  length = 0;
  /** Length up to the last episode end. */
  closedAt = 0;

  push(obs: ArrayLike<number>, nextObs: ArrayLike<number>, i: number, D: number, s: ReturnType<ActionSampler['sample']>, A: number, t: number, reward: number, term: boolean, trunc: boolean): void {
    for (let k = 0; k < D; k++) {
      this.obs.push(obs[i * D + k]);
      this.nextObs.push(nextObs[i * D + k]);
    }
    for (let k = 0; k < A; k++) {
      this.u.push(s.u[i * A + k]);
      this.actions.push(s.actions[i * A + k]);
      this.mean.push(s.mean[i * A + k]);
      this.logStd.push(s.logStd[i * A + k]);
    }
    this.timesteps.push(t);
    this.rewards.push(reward);
    this.terminated.push(term ? 1 : 0);
    this.truncated.push(trunc && !term ? 1 : 0);
    this.length++;
  }
}

function streamsToBatch(streams: Stream[], D: number, A: number, episodeReturns: number[], episodeLengths: number[]): SampleBatch {
  const size = streams.reduce((s, st) => s + st.length, 0);
  const b = emptyBatch(size, D, A);
  let o = 0;
  for (const st of streams) {
    const m = st.length;
    b.obs.set(st.obs.slice(0, m * D), o * D);
    b.nextObs.set(st.nextObs.slice(0, m * D), o * D);
    b.u.set(st.u.slice(0, m * A), o * A);
    b.actions.set(st.actions.slice(0, m * A), o * A);
    b.oldMean.set(st.mean.slice(0, m * A), o * A);
    b.oldLogStd.set(st.logStd.slice(0, m * A), o * A);
    b.timesteps.set(st.timesteps.slice(0, m), o);
    b.rewards.set(st.rewards.slice(0, m), o);
    b.terminated.set(st.terminated.slice(0, m), o);
    b.truncated.set(st.truncated.slice(0, m), o);
    o += m;
  }
  b.episodeReturns = episodeReturns;
  b.episodeLengths = episodeLengths;
  return b;
}

function emptyBatch(size: number, obsDim: number, actDim: number): SampleBatch {
  return {
    size,
    obsDim,
    actDim,
    obs: new Float32Array(size * obsDim),
    nextObs: new Float32Array(size * obsDim),
    timesteps: new Float64Array(size),
    u: new Float32Array(size * actDim),
    actions: new Float64Array(size * actDim),
    rewards: new Float64Array(size),
    terminated: new Uint8Array(size),
    truncated: new Uint8Array(size),
    oldMean: new Float32Array(size * actDim),
    oldLogStd: new Float32Array(size * actDim),
    episodeReturns: [],
    episodeLengths: [],
  };
}

/** Concatenates batches (e.g. the imagined rollouts of several ensemble members) in order. */
export function concatBatches(batches: readonly SampleBatch[]): SampleBatch {
  if (batches.length === 0) throw new ValidationError('concatBatches', 'batches', 'expected at least one batch');
  const { obsDim: D, actDim: A } = batches[0];
  for (const [i, b] of batches.entries()) {
    if (b.obsDim !== D || b.actDim !== A) throw new ValidationError('concatBatches', `batches[${i}]`, `expected obsDim ${D} and actDim ${A}, got ${b.obsDim} and ${b.actDim}`);
  }
  const out = emptyBatch(
    batches.reduce((s, b) => s + b.size, 0),
    D,
    A,
  );
  let o = 0;
  for (const b of batches) {
    out.obs.set(b.obs, o * D);
    out.nextObs.set(b.nextObs, o * D);
    out.u.set(b.u, o * A);
    out.actions.set(b.actions, o * A);
    out.oldMean.set(b.oldMean, o * A);
    out.oldLogStd.set(b.oldLogStd, o * A);
    out.timesteps.set(b.timesteps, o);
    out.rewards.set(b.rewards, o);
    out.terminated.set(b.terminated, o);
    out.truncated.set(b.truncated, o);
    out.episodeReturns.push(...b.episodeReturns);
    out.episodeLengths.push(...b.episodeLengths);
    o += b.size;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Returns and advantages

/**
 * Generalized advantage estimation (Schulman et al. 2016, "High-Dimensional Continuous Control
 * Using Generalized Advantage Estimation", https://arxiv.org/abs/1506.02438, eq. 16):
 *
 *   δ_t = r_t + γ (1 − terminated_t) V(s_{t+1}) − V(s_t)
 *   Â_t = δ_t + γλ (1 − end_t) Â_{t+1},        end_t = terminated_t ∨ truncated_t
 *
 * over flat arrays of consecutive segments (a `SampleBatch`'s layout). A truncated step (time
 * limit, or a batch cut mid-episode) bootstraps with V(s_{t+1}); a terminal one does not. The
 * last sample always ends its segment. Pure.
 *
 * @param nextValues V(s_{t+1}) for every t (the value of the true next state, also at episode ends)
 * @returns the advantages Â and the λ-returns Â + V (the value-function targets)
 */
export function gae(
  rewards: ArrayLike<number>,
  values: ArrayLike<number>,
  nextValues: ArrayLike<number>,
  terminated: ArrayLike<number>,
  truncated: ArrayLike<number>,
  gamma: number,
  lambda: number,
): { advantages: Float64Array; returns: Float64Array } {
  const n = rewards.length;
  for (const [name, a] of [['values', values], ['nextValues', nextValues], ['terminated', terminated], ['truncated', truncated]] as const) {
    if (a.length !== n) throw new ValidationError('gae', name, `expected ${n} entries (one per reward), got ${a.length}`);
  }
  const advantages = new Float64Array(n);
  const returns = new Float64Array(n);
  let next = 0;
  for (let t = n - 1; t >= 0; t--) {
    const term = terminated[t] !== 0;
    const end = term || truncated[t] !== 0 || t === n - 1;
    const delta = rewards[t] + (term ? 0 : gamma * nextValues[t]) - values[t];
    next = delta + (end ? 0 : gamma * lambda * next);
    advantages[t] = next;
    returns[t] = next + values[t];
  }
  return { advantages, returns };
}

/**
 * y_t = x_t + γ y_{t+1}, restarting after every index where `ends` is non-zero (and at the
 * last). Pure.
 */
export function discountedCumsum(x: ArrayLike<number>, gamma: number, ends?: ArrayLike<number>): Float64Array {
  const y = new Float64Array(x.length);
  let acc = 0;
  for (let t = x.length - 1; t >= 0; t--) {
    if (t === x.length - 1 || (ends !== undefined && ends[t] !== 0)) acc = 0;
    acc = x[t] + gamma * acc;
    y[t] = acc;
  }
  return y;
}

/** (x − mean) / (std + 1e-8): rllab's `center_adv`. Pure; a new array. */
export function standardize(x: ArrayLike<number>): Float64Array {
  const n = x.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[i];
  mean /= Math.max(n, 1);
  let v = 0;
  for (let i = 0; i < n; i++) v += (x[i] - mean) ** 2;
  const std = Math.sqrt(v / Math.max(n, 1));
  return Float64Array.from(x, (a) => (a - mean) / (std + 1e-8));
}

/** Mean of the episode returns, or null when no episode ended. */
export function meanOrNull(xs: readonly number[]): number | null {
  return xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length;
}

// ---------------------------------------------------------------------------------------------
// Tensors of a batch, and flat parameters

/** A batch as tensors for a policy update (dispose with `disposeBatchTensors`). */
export interface BatchTensors {
  /** [n, obsDim] observations normalised as the policy normalises them */
  obsNorm: tf.Tensor2D;
  /** [n, actDim] */
  u: tf.Tensor2D;
  /** [n] */
  advantages: tf.Tensor1D;
  /** [n] log π_old(u_t | s_t) of the sampling policy */
  oldLogProb: tf.Tensor1D;
}

/**
 * Moves a batch to tensors. `normalizeObs` is the policy's (`policy.normalizeObs`): the update
 * must see the observations exactly as the policy did when it acted.
 */
export function batchTensors(batch: SampleBatch, normalizeObs: (obs: tf.Tensor2D) => tf.Tensor2D, advantages: ArrayLike<number>): BatchTensors {
  if (advantages.length !== batch.size) throw new ValidationError('batchTensors', 'advantages', `expected ${batch.size} entries, got ${advantages.length}`);
  return tf.tidy(() => {
    const n = batch.size;
    const obsNorm = normalizeObs(tf.tensor2d(batch.obs, [n, batch.obsDim]));
    const u = tf.tensor2d(batch.u, [n, batch.actDim]);
    const oldLogProb = gaussianLogProb(u, tf.tensor2d(batch.oldMean, [n, batch.actDim]), tf.tensor2d(batch.oldLogStd, [n, batch.actDim]));
    return { obsNorm, u, advantages: tf.tensor1d(Float32Array.from(advantages)), oldLogProb };
  });
}

export function disposeBatchTensors(t: BatchTensors): void {
  tf.dispose([t.obsNorm, t.u, t.advantages, t.oldLogProb]);
}

/**
 * log π_θ(u | s) of raw Gaussian samples for explicit parameters (differentiable, also twice).
 * The tanh squash's Jacobian is left out: it does not depend on θ, and cancels in ratios. [n]
 */
export function policyLogProb(spec: GaussianMlpPolicySpec, params: readonly tf.Tensor[], obsNorm: tf.Tensor2D, u: tf.Tensor2D): tf.Tensor1D {
  const { mean, logStd } = policyForward(spec, params, obsNorm);
  return gaussianLogProb(u, mean, logStd);
}

/** Shapes of a parameter list (the layout of its flat vector). */
export function paramShapes(params: readonly tf.Tensor[]): number[][] {
  return params.map((p) => [...p.shape]);
}

/** Concatenates tensors into one flat [Σ size] tensor. */
export function flattenTensors(tensors: readonly tf.Tensor[]): tf.Tensor1D {
  return tf.concat(tensors.map((t) => tf.reshape(t, [-1]))) as tf.Tensor1D;
}

/** Tensors of the given shapes from a flat vector (plain array or tensor). */
export function unflatten(flat: ArrayLike<number> | tf.Tensor1D, shapes: readonly number[][]): tf.Tensor[] {
  const sizes = shapes.map((s) => s.reduce((a, b) => a * b, 1));
  const total = sizes.reduce((a, b) => a + b, 0);
  const length = flat instanceof tf.Tensor ? flat.size : flat.length;
  if (length !== total) throw new ValidationError('unflatten', 'flat', `expected ${total} values for shapes ${JSON.stringify(shapes)}, got ${length}`);
  if (flat instanceof tf.Tensor) return tf.split(flat, sizes).map((t, i) => tf.reshape(t, shapes[i]));
  const data = Float32Array.from(flat);
  let o = 0;
  return shapes.map((shape, i) => {
    const t = tf.tensor(data.subarray(o, o + sizes[i]), shape);
    o += sizes[i];
    return t;
  });
}

/** Reads tensors into one Float64Array (synchronously). */
export function readFlat(tensors: readonly tf.Tensor[]): Float64Array {
  const out = new Float64Array(tensors.reduce((s, t) => s + t.size, 0));
  let o = 0;
  for (const t of tensors) {
    out.set(t.dataSync(), o);
    o += t.size;
  }
  return out;
}

/**
 * The value of a scalar function of the parameters and its gradient, flat.
 * @returns f(θ) and ∇_θ f(θ) (Float64Array in the flat layout of `params`)
 */
export function valueAndFlatGrad(f: (params: readonly tf.Tensor[]) => tf.Scalar, params: readonly tf.Tensor[]): { value: number; grad: Float64Array } {
  const { value, grads } = tf.valueAndGrads((...p: tf.Tensor[]) => f(p))([...params]);
  const v = value.dataSync()[0];
  const grad = readFlat(grads);
  tf.dispose([value, ...grads]);
  return { value: v, grad };
}

/** Dot product of two plain vectors (float64 accumulation). */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}
