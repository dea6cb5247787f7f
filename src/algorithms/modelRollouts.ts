import type { Rng } from '../core/rng.js';
import { ValidationError, describe } from '../core/errors.js';
import type { ModelEnv } from '../models/modelEnv.js';
import type { GaussianMlpPolicy } from '../policies/gaussianMlpPolicy.js';
import type { ActionSampler, RolloutSource, RolloutStep } from './policyGradient.js';

/** Options of `ModelRolloutSource`. */
export interface ModelRolloutSourceOptions {
  /** Imagined episodes run side by side (rows of the model batch). */
  numEnvs: number;
  /** Imagined episode length T: episodes are truncated (and bootstrapped) after T steps. */
  horizon: number;
  /**
   * Start states, row-major [m, obsDim]; every imagined episode starts from one drawn uniformly
   * (ME-TRPO and MB-MPO start from the real system's initial states).
   */
  startStates: ArrayLike<number>;
  /** Draws the start states. */
  rng: Rng;
  /**
   * Per-dimension bounds of a plausible state (e.g. `stateBoundsOf` of the real data): a row whose
   * predicted state leaves them ends as diverged. Default: only non-finite or |x| ≥ 1e6 does.
   */
  stateBounds?: { low: ArrayLike<number>; high: ArrayLike<number> };
}

/** Largest |state| entry an imagined rollout may reach before it counts as diverged. */
const DIVERGED = 1e6;

/**
 * Imagined episodes in a learned model as a `RolloutSource`, so the policy-gradient code collects
 * them exactly as it collects real ones: `numEnvs` episodes step together through a `ModelEnv`
 * (whose propagation chooses the member of each row: ME-TRPO's random member per step is `'ts1'`;
 * a one-member predictor gives MB-MPO's per-model tasks), each restarted from a fresh start state
 * when it terminates (the task's termination function) or reaches `horizon`.
 *
 * A row whose predicted state turns non-finite or huge (a model exploited far outside its data)
 * ends there as terminal with reward 0 and is counted in `diverged`; its garbage state never
 * reaches the batch.
 */
export class ModelRolloutSource implements RolloutSource {
  readonly numEnvs: number;
  readonly obsDim: number;
  readonly actDim: number;
  readonly horizon: number;
  /** Imagined episodes stopped because the model diverged. */
  diverged = 0;
  readonly #env: ModelEnv;
  readonly #starts: ArrayLike<number>;
  readonly #numStarts: number;
  readonly #rng: Rng;
  readonly #obs: Float64Array;
  readonly #nextObs: Float64Array;
  readonly #rewards: Float64Array;
  readonly #terminated: Uint8Array;
  readonly #truncated: Uint8Array;
  readonly #timesteps: Float64Array;
  readonly #returns: Float64Array;
  readonly #low: Float64Array;
  readonly #high: Float64Array;

  /**
   * @throws ValidationError for a bad count, horizon or start-state array
   */
  constructor(modelEnv: ModelEnv, options: ModelRolloutSourceOptions) {
    const where = 'ModelRolloutSource';
    const { numEnvs, horizon, startStates } = options;
    const D = modelEnv.obsDim;
    if (!Number.isInteger(numEnvs) || numEnvs < 1) throw new ValidationError(where, 'numEnvs', `expected an integer ≥ 1, got ${describe(numEnvs)}`);
    if (!Number.isInteger(horizon) || horizon < 1) throw new ValidationError(where, 'horizon', `expected an integer ≥ 1, got ${describe(horizon)}`);
    if (startStates.length === 0 || startStates.length % D !== 0) {
      throw new ValidationError(where, 'startStates', `expected a non-empty array of rows of obsDim ${D}, got length ${startStates.length}`);
    }
    this.#env = modelEnv;
    this.numEnvs = numEnvs;
    this.obsDim = D;
    this.actDim = modelEnv.actDim;
    this.horizon = horizon;
    this.#starts = startStates;
    this.#numStarts = startStates.length / D;
    this.#rng = options.rng;
    this.#low = new Float64Array(D).fill(-DIVERGED);
    this.#high = new Float64Array(D).fill(DIVERGED);
    if (options.stateBounds) {
      const { low, high } = options.stateBounds;
      if (low.length !== D || high.length !== D) throw new ValidationError(where, 'stateBounds', `expected low and high of length obsDim ${D}, got ${low.length} and ${high.length}`);
      for (let d = 0; d < D; d++) {
        if (!(low[d] <= high[d])) throw new ValidationError(where, `stateBounds[${d}]`, `expected low ≤ high, got ${low[d]} > ${high[d]}`);
        this.#low[d] = Math.max(-DIVERGED, low[d]);
        this.#high[d] = Math.min(DIVERGED, high[d]);
      }
    }
    this.#obs = new Float64Array(numEnvs * D);
    this.#nextObs = new Float64Array(numEnvs * D);
    this.#rewards = new Float64Array(numEnvs);
    this.#terminated = new Uint8Array(numEnvs);
    this.#truncated = new Uint8Array(numEnvs);
    this.#timesteps = new Float64Array(numEnvs);
    this.#returns = new Float64Array(numEnvs);
    const init = new Float64Array(numEnvs * D);
    for (let i = 0; i < numEnvs; i++) this.#drawStart(init, i);
    modelEnv.reset(init, numEnvs);
    this.#obs.set(init);
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

  async step(actions: Float64Array): Promise<RolloutStep> {
    const r = await this.#env.step(actions);
    const n = this.numEnvs;
    const D = this.obsDim;
    const restart: number[] = [];
    for (let i = 0; i < n; i++) {
      let bad = false;
      for (let d = 0; d < D; d++) {
        const x = r.obs[i * D + d];
        if (!(x > this.#low[d] && x < this.#high[d])) bad = true;
      }
      const reward = r.rewards[i];
      if (bad || !Number.isFinite(reward)) {
        this.diverged++;
        for (let d = 0; d < D; d++) this.#nextObs[i * D + d] = this.#obs[i * D + d];
        this.#rewards[i] = 0;
        this.#terminated[i] = 1;
        this.#truncated[i] = 0;
      } else {
        for (let d = 0; d < D; d++) this.#nextObs[i * D + d] = r.obs[i * D + d];
        this.#rewards[i] = reward;
        this.#terminated[i] = r.dones[i];
        this.#truncated[i] = r.dones[i] === 0 && this.#timesteps[i] + 1 >= this.horizon ? 1 : 0;
      }
      if (this.#terminated[i] || this.#truncated[i]) {
        restart.push(i);
        this.#timesteps[i] = 0;
        this.#returns[i] = 0;
      } else {
        this.#timesteps[i] += 1;
        this.#returns[i] += this.#rewards[i];
      }
    }
    this.#obs.set(this.#nextObs);
    if (restart.length > 0) {
      const states = new Float64Array(restart.length * D);
      restart.forEach((row, j) => {
        this.#drawStart(this.#obs, row);
        states.set(this.#obs.subarray(row * D, (row + 1) * D), j * D);
      });
      this.#env.restartRows(restart, states);
    }
    return { nextObs: this.#nextObs, rewards: this.#rewards, terminated: this.#terminated, truncated: this.#truncated };
  }

  #drawStart(into: Float64Array, row: number): void {
    const D = this.obsDim;
    const s = this.#numStarts === 1 ? 0 : this.#rng.int(this.#numStarts);
    for (let d = 0; d < D; d++) into[row * D + d] = this.#starts[s * D + d];
  }
}

/**
 * The range of the states in `obs` (row-major, `obsDim` per row) widened by `margin` times its
 * width on each side: where imagined states stop being plausible. A model that leaves the region
 * its data cover extrapolates freely (a deterministic HalfCheetah model reached joint velocities of
 * several hundred, returns of −10⁵ per 100 steps); ending such rollouts keeps their garbage out of
 * the policy gradient.
 * @param margin fraction of each dimension's data range added on both sides (≥ 0)
 */
export function stateBoundsOf(obs: ArrayLike<number>, obsDim: number, margin: number): { low: Float64Array; high: Float64Array } {
  if (!(margin >= 0)) throw new ValidationError('stateBoundsOf', 'margin', `expected a number ≥ 0, got ${describe(margin)}`);
  if (obs.length === 0 || obs.length % obsDim !== 0) throw new ValidationError('stateBoundsOf', 'obs', `expected a non-empty array of rows of obsDim ${obsDim}, got length ${obs.length}`);
  const low = new Float64Array(obsDim).fill(Infinity);
  const high = new Float64Array(obsDim).fill(-Infinity);
  for (let i = 0; i < obs.length; i += obsDim) {
    for (let d = 0; d < obsDim; d++) {
      const x = obs[i + d];
      if (x < low[d]) low[d] = x;
      if (x > high[d]) high[d] = x;
    }
  }
  for (let d = 0; d < obsDim; d++) {
    // A constant dimension still gets a little room: 1e-6 of its magnitude, at least 1e-6.
    const w = Math.max(high[d] - low[d], 1e-6 * Math.max(1, Math.abs(high[d])));
    low[d] -= margin * w;
    high[d] += margin * w;
  }
  return { low, high };
}

/**
 * The policy's deterministic controller as an `ActionSampler` (u = μ(s)), for evaluating a
 * policy with the rollout code (ME-TRPO's per-model validation).
 */
export function meanActionSampler(policy: GaussianMlpPolicy): ActionSampler {
  return {
    obsDim: policy.obsDim,
    actDim: policy.actDim,
    sample(obs: ArrayLike<number>, n: number) {
      const { mean } = policy.forwardFast(obs, n);
      return { u: mean, actions: policy.toActions(mean, n), mean, logStd: new Float32Array(mean.length) };
    },
  };
}
