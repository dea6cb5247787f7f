import type { TaskFunctions } from '../core/env.js';
import { ValidationError, checkFiniteVector, describe } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import { outDimOf, type EnsemblePredictor } from './types.js';

/**
 * Uncertainty penalties u(s, a) of MOPO's reward r̃ = r − λ·u (Yu et al. 2020,
 * https://arxiv.org/abs/2005.13239), from every member's predicted mean and variance of the
 * target [Δobs, reward?] at one (s, a):
 * - `maxStd`: max_k ‖σ_k(s, a)‖₂ — the paper's choice (the official code's
 *   `amax(norm(stds, axis=2), axis=0)`);
 * - `disagreement`: max_k ‖μ_k(s, a) − μ̄(s, a)‖₂ — the members' spread around their mean
 *   (the ensemble-discrepancy penalty of MOReL-style methods), usable with deterministic members.
 */
export type PenaltyKind = 'maxStd' | 'disagreement';

/**
 * MOPO's uncertainty u for one row.
 * @param means K × outDim member means (row-major), in any consistent units
 * @param variances K × outDim member variances (required for `maxStd`)
 */
export function mopoPenalty(kind: PenaltyKind, means: ArrayLike<number>, variances: ArrayLike<number> | undefined, K: number, outDim: number): number {
  if (kind === 'maxStd') {
    if (variances === undefined) throw new ValidationError('mopoPenalty', 'variances', "required for 'maxStd' (probabilistic members); use 'disagreement' with deterministic ones");
    let best = 0;
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let j = 0; j < outDim; j++) s += variances[k * outDim + j];
      best = Math.max(best, Math.sqrt(s));
    }
    return best;
  }
  let best = 0;
  for (let k = 0; k < K; k++) {
    let s = 0;
    for (let j = 0; j < outDim; j++) {
      let mean = 0;
      for (let i = 0; i < K; i++) mean += means[i * outDim + j];
      mean /= K;
      s += (means[k * outDim + j] - mean) ** 2;
    }
    best = Math.max(best, Math.sqrt(s));
  }
  return best;
}

/** Options of `branchedRollouts`. */
export interface BranchedRolloutOptions {
  /** Rollout length h (MBPO: 1–15 by task; MOPO: 1 or 5). */
  horizon: number;
  /** Members a row's next state is drawn from (MBPO/MOPO: the elites). Default all. */
  members?: readonly number[];
  /** The task's known reward and termination; without it the learned reward is used and nothing terminates. */
  task?: TaskFunctions;
  /**
   * Where the reward comes from when a task is given: `'task'` (its known reward, default) or
   * `'model'` (the learned reward, as MOPO; the task then only decides termination).
   */
  rewardFrom?: 'task' | 'model';
  /** MOPO's penalty: r̃ = r − lambda·u. Default none (MBPO). */
  penalty?: { kind: PenaltyKind; lambda: number };
  /** Sample next states from the chosen member's Gaussian (default: when the members are probabilistic). */
  sample?: boolean;
  rng: Rng;
}

/** Imagined transitions, row-major; `reward` is the (penalised) reward the learner sees. */
export interface ModelTransitions {
  size: number;
  obs: Float32Array;
  action: Float32Array;
  reward: Float32Array;
  nextObs: Float32Array;
  terminated: Uint8Array;
  /** u(s, a) of each transition (0 without a penalty). */
  penalty: Float32Array;
}

/**
 * MBPO's branched rollouts (Janner et al. 2019, https://arxiv.org/abs/1906.08253): from `n`
 * start states (sampled from the real data by the caller), `horizon` steps of the policy in the
 * model. Every step, all K members predict every row; each row's next state comes from one member
 * of `members` drawn uniformly (sampled from its Gaussian), the reward from the task (or the same
 * member's learned reward), minus MOPO's penalty over all K members when given. Rows stop at a
 * predicted termination (and at a non-finite prediction, which is dropped). Returns every
 * transition taken, in step order.
 *
 * @param act the policy: actions for `m` observations (row-major), e.g. a stochastic SAC policy
 */
export async function branchedRollouts(
  predictor: EnsemblePredictor,
  startObs: ArrayLike<number>,
  act: (obs: Float32Array, m: number) => ArrayLike<number> | Promise<ArrayLike<number>>,
  options: BranchedRolloutOptions,
): Promise<ModelTransitions> {
  const where = 'branchedRollouts';
  const spec = predictor.spec;
  const { obsDim: D, actDim: A, numMembers: K } = spec;
  const O = outDimOf(spec);
  if (startObs.length === 0 || startObs.length % D !== 0) throw new ValidationError(where, 'startObs', `expected rows of obsDim ${D}, got length ${startObs.length}`);
  checkFiniteVector(startObs, startObs.length, where, 'startObs');
  if (!Number.isInteger(options.horizon) || options.horizon < 1) throw new ValidationError(where, 'horizon', `expected an integer ≥ 1, got ${describe(options.horizon)}`);
  const members = options.members ?? Array.from({ length: K }, (_, k) => k);
  if (members.length === 0 || members.some((k) => !Number.isInteger(k) || k < 0 || k >= K)) throw new ValidationError(where, 'members', `expected member indices in [0, ${K}), got [${members.join(', ')}]`);
  if (options.task === undefined && !spec.learnReward) throw new ValidationError(where, 'task', 'no reward: pass the task or use an ensemble that learns the reward');
  const rewardFromModel = options.task === undefined || options.rewardFrom === 'model';
  if (rewardFromModel && !spec.learnReward) throw new ValidationError(where, 'rewardFrom', "'model' needs an ensemble that learns the reward (spec.learnReward)");
  const sample = options.sample ?? spec.probabilistic;
  if (sample && !spec.probabilistic) throw new ValidationError(where, 'sample', 'the members are deterministic: nothing to sample from');
  const penalty = options.penalty;
  if (penalty && !(penalty.lambda >= 0 && Number.isFinite(penalty.lambda))) throw new ValidationError(where, 'penalty.lambda', `expected a finite number ≥ 0, got ${describe(penalty.lambda)}`);
  const needVar = sample || penalty?.kind === 'maxStd';
  if (needVar && !spec.probabilistic) throw new ValidationError(where, 'penalty.kind', "'maxStd' needs probabilistic members; use 'disagreement'");
  const rng = options.rng;

  let obs = Float32Array.from(startObs);
  let n = obs.length / D;
  const out = { obs: [] as number[], action: [] as number[], reward: [] as number[], nextObs: [] as number[], terminated: [] as number[], penalty: [] as number[] };
  for (let t = 0; t < options.horizon && n > 0; t++) {
    const a = Float32Array.from(await act(obs, n));
    if (a.length !== n * A) throw new ValidationError(where, 'act', `expected ${n} × ${A} actions, got ${a.length}`);
    // Every member on every row: rows [k·n, (k+1)·n) go through member k.
    const inObs = new Float32Array(K * n * D);
    const inAct = new Float32Array(K * n * A);
    for (let k = 0; k < K; k++) {
      inObs.set(obs, k * n * D);
      inAct.set(a, k * n * A);
    }
    const mean = new Float32Array(K * n * D);
    const rew = spec.learnReward ? new Float32Array(K * n) : undefined;
    const variance = needVar ? new Float32Array(K * n * O) : undefined;
    await predictor.predict(inObs, inAct, n, mean, rew, variance);

    const next = new Float32Array(n * D);
    const learned = new Float32Array(n);
    const u = new Float32Array(n);
    const rowMeans = new Float64Array(K * O);
    const rowVars = variance ? new Float64Array(K * O) : undefined;
    for (let r = 0; r < n; r++) {
      const k = members[members.length === 1 ? 0 : rng.int(members.length)];
      for (let d = 0; d < D; d++) {
        const m = mean[(k * n + r) * D + d];
        next[r * D + d] = sample && variance ? m + Math.sqrt(variance[(k * n + r) * O + d]) * rng.normal() : m;
      }
      if (rew) learned[r] = sample && variance ? rew[k * n + r] + Math.sqrt(variance[(k * n + r) * O + D]) * rng.normal() : rew[k * n + r];
      if (penalty) {
        // u over all K members, on the target [next obs, reward?] (Δobs and next obs differ by obs only).
        for (let i = 0; i < K; i++) {
          for (let d = 0; d < D; d++) rowMeans[i * O + d] = mean[(i * n + r) * D + d];
          if (rew) rowMeans[i * O + D] = rew[i * n + r];
          if (rowVars && variance) for (let j = 0; j < O; j++) rowVars[i * O + j] = variance[(i * n + r) * O + j];
        }
        u[r] = mopoPenalty(penalty.kind, rowMeans, rowVars, K, O);
      }
    }
    const reward = new Float32Array(n);
    const term = new Uint8Array(n);
    if (options.task) options.task.terminated(obs, a, next, n, term);
    if (rewardFromModel) reward.set(learned);
    else options.task?.reward(obs, a, next, n, reward);
    const keep: number[] = [];
    for (let r = 0; r < n; r++) {
      let finite = Number.isFinite(reward[r]) && Number.isFinite(u[r]);
      for (let d = 0; d < D && finite; d++) finite = Number.isFinite(next[r * D + d]);
      if (!finite) continue;
      for (let d = 0; d < D; d++) {
        out.obs.push(obs[r * D + d]);
        out.nextObs.push(next[r * D + d]);
      }
      for (let j = 0; j < A; j++) out.action.push(a[r * A + j]);
      out.reward.push(reward[r] - (penalty ? penalty.lambda * u[r] : 0));
      out.terminated.push(term[r]);
      out.penalty.push(u[r]);
      if (!term[r]) keep.push(r);
    }
    const cont = new Float32Array(keep.length * D);
    keep.forEach((r, i) => cont.set(next.subarray(r * D, (r + 1) * D), i * D));
    obs = cont;
    n = keep.length;
  }
  const size = out.reward.length;
  return {
    size,
    obs: Float32Array.from(out.obs),
    action: Float32Array.from(out.action),
    reward: Float32Array.from(out.reward),
    nextObs: Float32Array.from(out.nextObs),
    terminated: Uint8Array.from(out.terminated),
    penalty: Float32Array.from(out.penalty),
  };
}
