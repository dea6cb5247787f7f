/**
 * Model-based control of a plant that applies each command `d` control steps late (actuation
 * and communication latency: issue 10's "one step of action delay").
 *
 * With a delay the pair (s_t, a_t) does not determine s_{t+1}: the plant moved under the command
 * sent d steps earlier. A model fitted on (s_t, a_t, s_{t+1}) learns a blur of the two, and a
 * planner acting on s_t plans for a state the plant has already left. The remedy used by
 * delay-aware MPC (a model-based Smith predictor; e.g. Chen et al. 2020, "Delay-aware model-based
 * reinforcement learning for continuous control", arXiv 2005.05440):
 *
 * - fit the model on (s_t, u_{t−d}, s_{t+1}), the command that acted during the step
 *   (`delayedActions`);
 * - at each step, roll the model forward from s_t through the d commands already sent and not yet
 *   applied (`ActionDelayCompensator.predictAhead`), and plan from that predicted state: the
 *   command chosen now acts from step t+d on.
 *
 * The delay itself is estimated from real data when not known (`estimateActionDelay`): the model's
 * one-step prediction error over the candidate pairings is smallest at the true delay.
 */
import { ValidationError } from '../core/errors.js';
import type { EnsemblePredictor } from '../models/types.js';

/** One real episode as the plant saw it: states, the commands sent, the states that followed. */
export interface CommandedEpisode {
  /** T rows of obsDim: s_0 … s_{T−1}. */
  obs: Float64Array;
  /** T rows of actDim: the command sent at each step (after the safety rules). */
  actions: Float64Array;
  /** T rows of obsDim: s_1 … s_T. */
  nextObs: Float64Array;
}

/**
 * The command that acted during each step of an episode with a delay of `delaySteps`: row t is
 * u_{t−d}, and `initial` (what the plant held at the episode's start) for t < d.
 * @example delayedActions(Float64Array.of(1, 2, 3), 1, 1, Float64Array.of(0)) // [0, 1, 2]
 */
export function delayedActions(actions: Float64Array, actDim: number, delaySteps: number, initial: ArrayLike<number>): Float64Array {
  checkDelay('delayedActions', delaySteps);
  if (initial.length !== actDim) throw new ValidationError('delayedActions', 'initial', `expected ${actDim} values, got ${initial.length}`);
  if (actions.length % actDim !== 0) throw new ValidationError('delayedActions', 'actions', `expected a multiple of actDim = ${actDim} values, got ${actions.length}`);
  const out = new Float64Array(actions.length);
  const T = actions.length / actDim;
  for (let t = 0; t < T; t++) {
    if (t < delaySteps) for (let j = 0; j < actDim; j++) out[t * actDim + j] = initial[j];
    else out.set(actions.subarray((t - delaySteps) * actDim, (t - delaySteps + 1) * actDim), t * actDim);
  }
  return out;
}

/**
 * The commands sent but not yet applied, and the state they will lead to. `reset` at every
 * episode start; `push` every command sent (after the safety rules).
 */
export class ActionDelayCompensator {
  readonly delaySteps: number;
  readonly #actDim: number;
  readonly #initial: Float64Array;
  /** The last `delaySteps` commands, oldest first. */
  #pending: Float64Array[] = [];

  /**
   * @param initial the command the plant holds at an episode's start (the simulators' delay line
   *   starts at zeros; a robot's holds its safe action)
   */
  constructor(delaySteps: number, initial: ArrayLike<number>) {
    checkDelay('ActionDelayCompensator', delaySteps);
    this.delaySteps = delaySteps;
    this.#actDim = initial.length;
    this.#initial = Float64Array.from(initial);
    this.reset();
  }

  reset(): void {
    this.#pending = Array.from({ length: this.delaySteps }, () => Float64Array.from(this.#initial));
  }

  push(command: ArrayLike<number>): void {
    if (command.length !== this.#actDim) throw new ValidationError('ActionDelayCompensator.push', 'command', `expected ${this.#actDim} values, got ${command.length}`);
    if (this.delaySteps === 0) return;
    this.#pending.shift();
    this.#pending.push(Float64Array.from(command));
  }

  /**
   * The state `delaySteps` steps after `obs`, stepping the ensemble's mean prediction with the
   * pending commands; `obs` itself (a copy) without a delay.
   */
  async predictAhead(predictor: EnsemblePredictor, obs: ArrayLike<number>): Promise<Float64Array> {
    const state = Float64Array.from(obs);
    if (this.delaySteps === 0) return state;
    const { numMembers: K, obsDim, actDim } = predictor.spec;
    if (obs.length !== obsDim || actDim !== this.#actDim) throw new ValidationError('ActionDelayCompensator.predictAhead', 'obs', `expected ${obsDim} observations and ${actDim} actions for this ensemble, got ${obs.length} and ${this.#actDim}`);
    const o = new Float32Array(K * obsDim);
    const a = new Float32Array(K * actDim);
    const next = new Float32Array(K * obsDim);
    for (const command of this.#pending) {
      for (let k = 0; k < K; k++) {
        o.set(state, k * obsDim);
        a.set(command, k * actDim);
      }
      await predictor.predict(o, a, 1, next);
      for (let i = 0; i < obsDim; i++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += next[k * obsDim + i];
        state[i] = s / K;
      }
    }
    return state;
  }
}

/** What `estimateActionDelay` found. */
export interface DelayEstimate {
  delaySteps: number;
  /** The ensemble-mean one-step error for each candidate delay 0 … maxDelaySteps (see `estimateActionDelay`). */
  errors: number[];
}

/**
 * The action delay that best explains real episodes under a dynamics model: for each candidate
 * d in 0 … `maxDelaySteps`, the ensemble-mean prediction of s_{t+1} from (s_t, u_{t−d}) over all
 * steps, its squared error per observation dimension divided by that dimension's variance in the
 * data (so no dimension dominates by its units), averaged; the smallest wins (ties: the shorter
 * delay). Works with a model fitted without the delay (a simulator's): only the pairing changes.
 * @throws ValidationError for no data or a bad maximum
 */
export async function estimateActionDelay(predictor: EnsemblePredictor, episodes: readonly CommandedEpisode[], maxDelaySteps: number, initial: ArrayLike<number>): Promise<DelayEstimate> {
  const where = 'estimateActionDelay';
  checkDelay(where, maxDelaySteps);
  const { numMembers: K, obsDim, actDim } = predictor.spec;
  const rows = episodes.reduce((n, e) => n + e.obs.length / obsDim, 0);
  if (rows === 0) throw new ValidationError(where, 'episodes', 'expected at least one step of real data');
  // Per-dimension variance of the targets.
  const mean = new Float64Array(obsDim);
  const variance = new Float64Array(obsDim);
  for (const e of episodes) for (let i = 0; i < e.nextObs.length; i++) mean[i % obsDim] += e.nextObs[i] / rows;
  for (const e of episodes) for (let i = 0; i < e.nextObs.length; i++) variance[i % obsDim] += (e.nextObs[i] - mean[i % obsDim]) ** 2 / rows;
  const errors: number[] = [];
  for (let d = 0; d <= maxDelaySteps; d++) {
    let total = 0;
    for (const e of episodes) {
      const T = e.obs.length / obsDim;
      const acts = delayedActions(e.actions, actDim, d, initial);
      const o = new Float32Array(K * T * obsDim);
      const a = new Float32Array(K * T * actDim);
      for (let k = 0; k < K; k++) {
        o.set(e.obs, k * T * obsDim);
        a.set(acts, k * T * actDim);
      }
      const next = new Float32Array(K * T * obsDim);
      await predictor.predict(o, a, T, next);
      for (let t = 0; t < T; t++) {
        for (let i = 0; i < obsDim; i++) {
          let p = 0;
          for (let k = 0; k < K; k++) p += next[(k * T + t) * obsDim + i];
          total += (p / K - e.nextObs[t * obsDim + i]) ** 2 / Math.max(variance[i], 1e-12);
        }
      }
    }
    errors.push(total / (rows * obsDim));
  }
  let best = 0;
  for (let d = 1; d < errors.length; d++) if (errors[d] < errors[best]) best = d;
  return { delaySteps: best, errors };
}

function checkDelay(where: string, d: number): void {
  if (!(Number.isInteger(d) && d >= 0 && d <= 100)) throw new ValidationError(where, 'delaySteps', `expected an integer in [0, 100], got ${String(d)}`);
}
