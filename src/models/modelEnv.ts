import type { TaskFunctions } from '../core/env.js';
import { ValidationError, checkFiniteVector, describe } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import { outDimOf, type EnsemblePredictor } from './types.js';

/**
 * How a batch of states moves through the ensemble (PETS's trajectory sampling, Chua et al. 2018,
 * "Deep Reinforcement Learning in a Handful of Trials using Probabilistic Dynamics Models",
 * https://arxiv.org/abs/1805.12114; mbrl-lib's `propagation_method`):
 *
 * - `'ts1'`: every step each row is sent to a member drawn uniformly at random (mbrl-lib's
 *   `random_model`). As in mbrl-lib, the draw is a fresh random permutation of the rows cut into K
 *   equal groups, so each row's member is uniform on {0..K−1} and every member gets exactly B rows,
 *   which is the layout `EnsemblePredictor` requires.
 * - `'tsinf'`: each row keeps one member for the whole rollout (TS∞; mbrl-lib's `fixed_model`).
 *   Row r uses member r mod K. PETS draws a random permutation of each candidate's particles once per
 *   rollout; because a candidate's particles start from the same state under the same actions they
 *   are exchangeable, so a fixed r mod K assignment has the same distribution, while also giving
 *   every candidate exactly P/K particles per member when P is a multiple of K (PETS requires that).
 * - `'mean'`: every row goes through all K members and the predictions are averaged (mbrl-lib's
 *   `expectation`: the mean of the means and, for sampling, the mean of the log-variances).
 */
export type Propagation = 'ts1' | 'tsinf' | 'mean';

/**
 * How `evaluateActionSequences` turns the P particle returns of a candidate into one value.
 * `mean` is PETS's objective; `meanMinusStd` (mean − k·std over particles, k ≥ 0) and `min` are
 * risk-averse alternatives.
 */
export type ParticleObjective = { kind: 'mean' } | { kind: 'meanMinusStd'; k: number } | { kind: 'min' };

/** Options of `ModelEnv`. */
export interface ModelEnvOptions {
  /**
   * The task's known reward and termination. Without it the reward is the ensemble's learned
   * reward (the ensemble must then predict it) and no row ever terminates.
   */
  task?: TaskFunctions;
  /** Propagation method. Default `'ts1'` (mbrl-lib's default `random_model`). */
  propagation?: Propagation;
  /**
   * Whether next states (and learned rewards) are sampled from the members' Gaussians,
   * `mean + sqrt(var)·ε`, or taken as the means. Default: whether the members are probabilistic
   * (mbrl-lib's `evaluate_action_sequences` samples unless the model is deterministic).
   */
  sample?: boolean;
  /** Generator for TS1's member draws and the Gaussian samples. */
  rng: Rng;
  /** Particle aggregation of `evaluateActionSequences`. Default `{ kind: 'mean' }` (PETS). */
  objective?: ParticleObjective;
}

/**
 * What `ModelEnv.step` returns. The arrays belong to the `ModelEnv` and are overwritten by the next
 * `step` or `reset`: copy what you keep.
 */
export interface ModelStepResult {
  /** Next observations, n rows of obsDim. Rows that were already done keep their frozen state. */
  obs: Float32Array;
  /** Rewards of this step, n entries; 0 for rows that were already done. */
  rewards: Float32Array;
  /** 1 for rows that have terminated (this step or before), else 0. */
  dones: Uint8Array;
}

const WHERE = 'ModelEnv';

/**
 * A batched simulator made of a learned dynamics ensemble: n states advance together through an
 * `EnsemblePredictor`, with the task's known reward and termination (or the learned reward).
 * mbrl-lib's `ModelEnv` with PETS's trajectory sampling (https://arxiv.org/abs/1805.12114).
 *
 * The predictor wants rows grouped by member, B rows per member. Each step the n rows are permuted
 * into K groups (padded to a multiple of K with copies of real rows whose outputs are discarded),
 * sent through the predictor, and the outputs are scattered back to their rows. All buffers are
 * allocated by `reset` when the batch size changes; `step` allocates none.
 *
 * Termination is absorbing: once a row terminates, later steps give it reward 0 and leave its state
 * unchanged (mbrl-lib zeroes the rewards of terminated rows in `evaluate_action_sequences`).
 *
 * Not re-entrant: one `step` or `evaluateActionSequences` at a time (they are async because the
 * predictor is); a second concurrent call throws.
 *
 * @example
 * const modelEnv = new ModelEnv(ensemble, { task: pendulumTask, propagation: 'ts1', rng: new Rng(0) });
 * modelEnv.reset(obs, 20);                       // 20 copies of obs
 * const { obs: next, rewards, dones } = await modelEnv.step(actions); // actions: 20 rows of actDim
 * const values = await modelEnv.evaluateActionSequences(obs, seqs, 30, 20); // seqs: [pop, 30, actDim]
 */
export class ModelEnv {
  readonly predictor: EnsemblePredictor;
  readonly propagation: Propagation;
  readonly sample: boolean;
  readonly objective: Readonly<ParticleObjective>;
  readonly obsDim: number;
  readonly actDim: number;
  /** Ensemble members K. */
  readonly numMembers: number;

  readonly #task: TaskFunctions | undefined;
  readonly #rng: Rng;
  readonly #outDim: number;
  readonly #learnReward: boolean;

  // Rollout state: n rows.
  #n = 0;
  #obs = new Float32Array(0);
  #next = new Float32Array(0);
  #rewards = new Float32Array(0);
  #learned = new Float32Array(0);
  #done = new Uint8Array(0);
  #term = new Uint8Array(0);

  // Model batch: M slots in K groups of B. #slotRow[s] is the row in slot s; values ≥ n are padding.
  #slots = 0;
  #rowsPerMember = 0;
  #slotRow = new Uint32Array(0);
  #inObs = new Float32Array(0);
  #inAct = new Float32Array(0);
  #outNext = new Float32Array(0);
  #outReward: Float32Array | undefined;
  #outVar: Float32Array | undefined;
  /** N(0, 1) draws for one step's samples, laid out as #outVar; filled in one `fillNormal` call. */
  #noise = new Float64Array(0);

  // evaluateActionSequences buffers: N = populationSize · particles rows.
  #evalAct = new Float32Array(0);
  #evalReturns = new Float64Array(0);

  #busy = false;

  /**
   * @param predictor the ensemble's batched forward pass
   * @param options task functions, propagation (default `'ts1'`), sampling (default: the members
   *   are probabilistic), the generator, the particle objective (default mean)
   * @throws ValidationError when there is neither a task nor a learned reward, when sampling is
   *   asked of deterministic members, or for an unknown propagation or objective
   */
  constructor(predictor: EnsemblePredictor, options: ModelEnvOptions) {
    const spec = predictor.spec;
    this.predictor = predictor;
    this.obsDim = spec.obsDim;
    this.actDim = spec.actDim;
    this.numMembers = spec.numMembers;
    this.#outDim = outDimOf(spec);
    this.#learnReward = spec.learnReward;
    this.#task = options.task;
    this.#rng = options.rng;
    if (!Number.isInteger(spec.numMembers) || spec.numMembers < 1) {
      throw new ValidationError(WHERE, 'predictor.spec.numMembers', `expected an integer ≥ 1, got ${describe(spec.numMembers)}`);
    }
    const propagation = options.propagation ?? 'ts1';
    if (propagation !== 'ts1' && propagation !== 'tsinf' && propagation !== 'mean') {
      throw new ValidationError(WHERE, 'propagation', `expected 'ts1', 'tsinf' or 'mean', got ${describe(propagation)}`);
    }
    this.propagation = propagation;
    this.sample = options.sample ?? spec.probabilistic;
    if (this.sample && !spec.probabilistic) {
      throw new ValidationError(WHERE, 'sample', 'expected false: the ensemble members are deterministic (spec.probabilistic is false), there is no variance to sample from');
    }
    if (options.task === undefined && !spec.learnReward) {
      throw new ValidationError(WHERE, 'task', 'no reward available: pass the task\'s reward function (options.task) or use an ensemble that learns the reward (spec.learnReward)');
    }
    const objective = options.objective ?? { kind: 'mean' };
    if (objective.kind === 'meanMinusStd') {
      if (!Number.isFinite(objective.k) || objective.k < 0) {
        throw new ValidationError(WHERE, 'objective.k', `expected a finite number ≥ 0, got ${describe(objective.k)}`);
      }
    } else if (objective.kind !== 'mean' && objective.kind !== 'min') {
      throw new ValidationError(WHERE, 'objective.kind', `expected 'mean', 'meanMinusStd' or 'min', got ${describe((objective as { kind: unknown }).kind)}`);
    }
    this.objective = Object.freeze({ ...objective });
  }

  /** Rows in the current rollout. */
  get batchSize(): number {
    return this.#n;
  }

  /**
   * Starts a rollout of n rows.
   * @param initialObs either one observation (copied to every row) or n rows of obsDim
   * @param n rows (a positive integer)
   * @throws ValidationError for a bad n, a wrong length or a non-finite entry
   */
  reset(initialObs: ArrayLike<number>, n: number): void {
    this.#checkIdle('reset');
    this.#reset(initialObs, n);
  }

  /**
   * Advances every row one step.
   * @param actions n rows of actDim (row-major); not clipped here — planners keep them in bounds
   * @returns next observations, rewards and done flags (buffers reused by the next call)
   * @throws ValidationError before `reset`, or for a wrong actions length
   */
  async step(actions: Float32Array | Float64Array): Promise<ModelStepResult> {
    this.#checkIdle('step');
    this.#busy = true;
    try {
      return await this.#step(actions);
    } finally {
      this.#busy = false;
    }
  }

  /**
   * The value of each candidate action sequence from `initObs`: each candidate is replicated into
   * `particles` rows, all rows are rolled out for `horizon` steps, and each candidate's particle
   * returns (undiscounted sums of rewards) are aggregated by `objective` (default: their mean, PETS's
   * objective; mbrl-lib's `evaluate_action_sequences`). Row c·P + p is particle p of candidate c.
   *
   * @param initObs the current observation (obsDim)
   * @param actionSeqs candidates, row-major [populationSize, horizon, actDim]
   * @param horizon steps per sequence
   * @param particles P, rollouts per candidate (use a multiple of K with `'tsinf'`)
   * @param out receives the values (default: a new array of populationSize)
   * @returns the value of each candidate; NaN where the model diverged (planners treat it as −∞)
   */
  async evaluateActionSequences(
    initObs: ArrayLike<number>,
    actionSeqs: Float32Array | Float64Array,
    horizon: number,
    particles: number,
    out?: Float64Array,
  ): Promise<Float64Array> {
    const where = `${WHERE}.evaluateActionSequences`;
    this.#checkIdle('evaluateActionSequences');
    if (!Number.isInteger(horizon) || horizon < 1) {
      throw new ValidationError(where, 'horizon', `expected an integer ≥ 1, got ${describe(horizon)}`);
    }
    if (!Number.isInteger(particles) || particles < 1) {
      throw new ValidationError(where, 'particles', `expected an integer ≥ 1, got ${describe(particles)}`);
    }
    const A = this.actDim;
    const perSeq = horizon * A;
    const pop = actionSeqs.length / perSeq;
    if (!Number.isInteger(pop) || pop < 1) {
      throw new ValidationError(where, 'actionSeqs', `expected length populationSize·horizon·actDim (a positive multiple of ${horizon}·${A} = ${perSeq}), got length ${actionSeqs.length}`);
    }
    if (out !== undefined && out.length !== pop) {
      throw new ValidationError(where, 'out', `expected length ${pop} (populationSize), got length ${out.length}`);
    }
    const n = pop * particles;
    this.#busy = true;
    try {
      this.#reset(initObs, n);
      if (this.#evalAct.length !== n * A) this.#evalAct = new Float32Array(n * A);
      if (this.#evalReturns.length !== n) this.#evalReturns = new Float64Array(n);
      const act = this.#evalAct;
      const ret = this.#evalReturns;
      ret.fill(0);
      for (let t = 0; t < horizon; t++) {
        for (let c = 0; c < pop; c++) {
          const src = (c * horizon + t) * A;
          for (let p = 0; p < particles; p++) {
            const dst = (c * particles + p) * A;
            for (let a = 0; a < A; a++) act[dst + a] = actionSeqs[src + a];
          }
        }
        const { rewards } = await this.#step(act);
        for (let r = 0; r < n; r++) ret[r] += rewards[r];
      }
      return aggregateParticles(ret, pop, particles, this.objective, out ?? new Float64Array(pop));
    } finally {
      this.#busy = false;
    }
  }

  /**
   * Restarts single rows from new states while the others continue (a same-step autoreset for
   * policy rollouts in the model, e.g. ME-TRPO's imagined episodes): row `rows[i]` gets state
   * `states[i·obsDim ..]` and is no longer done. Call between `step`s; it overwrites the row in the
   * `obs` array the last `step` returned, so copy what you keep first.
   * @throws ValidationError for a row out of range, a wrong length or a non-finite state
   */
  restartRows(rows: ArrayLike<number>, states: ArrayLike<number>): void {
    const where = `${WHERE}.restartRows`;
    this.#checkIdle('restartRows');
    const D = this.obsDim;
    if (states.length !== rows.length * D) throw new ValidationError(where, 'states', `expected ${rows.length} rows of obsDim ${D} (length ${rows.length * D}), got length ${states.length}`);
    checkFiniteVector(states, states.length, where, 'states');
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i];
      if (!Number.isInteger(r) || r < 0 || r >= this.#n) throw new ValidationError(where, `rows[${i}]`, `expected a row index in [0, ${this.#n}), got ${describe(r)}`);
      for (let d = 0; d < D; d++) this.#obs[r * D + d] = states[i * D + d];
      this.#done[r] = 0;
    }
  }

  #checkIdle(method: string): void {
    if (this.#busy) {
      throw new ValidationError(`${WHERE}.${method}`, 'state', 'called while another step or evaluateActionSequences is running; await it first (a ModelEnv holds one rollout)');
    }
  }

  #reset(initialObs: ArrayLike<number>, n: number): void {
    const where = `${WHERE}.reset`;
    if (!Number.isInteger(n) || n < 1) throw new ValidationError(where, 'n', `expected an integer ≥ 1, got ${describe(n)}`);
    const D = this.obsDim;
    if (initialObs.length !== D && initialObs.length !== n * D) {
      throw new ValidationError(where, 'initialObs', `expected length ${D} (one observation) or ${n * D} (n = ${n} rows), got length ${initialObs.length}`);
    }
    checkFiniteVector(initialObs, initialObs.length, where, 'initialObs');
    if (n !== this.#n) this.#allocate(n);
    if (initialObs.length === D) {
      for (let r = 0; r < n; r++) for (let d = 0; d < D; d++) this.#obs[r * D + d] = initialObs[d];
    } else {
      for (let i = 0; i < n * D; i++) this.#obs[i] = initialObs[i];
    }
    this.#done.fill(0);
  }

  #allocate(n: number): void {
    const K = this.numMembers;
    const D = this.obsDim;
    const A = this.actDim;
    this.#n = n;
    this.#obs = new Float32Array(n * D);
    this.#next = new Float32Array(n * D);
    this.#rewards = new Float32Array(n);
    this.#learned = new Float32Array(n);
    this.#done = new Uint8Array(n);
    this.#term = new Uint8Array(n);
    const B = this.propagation === 'mean' ? n : Math.ceil(n / K);
    const M = K * B;
    this.#slots = M;
    this.#rowsPerMember = B;
    this.#inObs = new Float32Array(M * D);
    this.#inAct = new Float32Array(M * A);
    this.#outNext = new Float32Array(M * D);
    this.#outReward = this.#learnReward ? new Float32Array(M) : undefined;
    // Variances are only read when sampling; without the buffer the predictor can skip them.
    this.#outVar = this.sample ? new Float32Array(M * this.#outDim) : undefined;
    this.#noise = new Float64Array(this.sample ? (this.propagation === 'mean' ? n : M) * this.#outDim : 0);
    this.#slotRow = new Uint32Array(this.propagation === 'mean' ? 0 : M);
    if (this.propagation === 'ts1') {
      for (let s = 0; s < M; s++) this.#slotRow[s] = s;
    } else if (this.propagation === 'tsinf') {
      // Slot k·B + j holds row k + j·K (member k = r mod K); slots past the last such row are padding.
      let pad = n;
      for (let k = 0; k < K; k++) {
        for (let j = 0; j < B; j++) {
          const r = k + j * K;
          this.#slotRow[k * B + j] = r < n ? r : pad++;
        }
      }
    }
  }

  async #step(actions: Float32Array | Float64Array): Promise<ModelStepResult> {
    const n = this.#n;
    if (n === 0) throw new ValidationError(`${WHERE}.step`, 'state', 'step() called before reset(); call reset(initialObs, n) first');
    const A = this.actDim;
    if (actions.length !== n * A) {
      throw new ValidationError(`${WHERE}.step`, 'actions', `expected length ${n * A} (n = ${n} rows of actDim ${A}), got length ${actions.length}`);
    }
    if (this.propagation === 'mean') await this.#predictMean(actions);
    else await this.#predictGrouped(actions);

    const D = this.obsDim;
    const obs = this.#obs;
    const next = this.#next;
    const done = this.#done;
    const rewards = this.#rewards;
    for (let r = 0; r < n; r++) {
      if (done[r]) for (let d = 0; d < D; d++) next[r * D + d] = obs[r * D + d];
    }
    const task = this.#task;
    if (task !== undefined) {
      task.reward(obs, actions, next, n, rewards);
      task.terminated(obs, actions, next, n, this.#term);
    } else {
      rewards.set(this.#learned);
      this.#term.fill(0);
    }
    const term = this.#term;
    for (let r = 0; r < n; r++) {
      if (done[r]) rewards[r] = 0;
      else if (term[r]) done[r] = 1;
    }
    this.#obs = next;
    this.#next = obs;
    return { obs: next, rewards, dones: done };
  }

  /** TS1 / TS∞: regroup rows into K member groups, predict, scatter back (sampling if asked). */
  async #predictGrouped(actions: Float32Array | Float64Array): Promise<void> {
    const n = this.#n;
    const M = this.#slots;
    const D = this.obsDim;
    const A = this.actDim;
    const slotRow = this.#slotRow;
    // One member needs no draw; skipping it also leaves the generator untouched.
    if (this.propagation === 'ts1' && this.numMembers > 1) this.#rng.shuffle(slotRow);
    const obs = this.#obs;
    const inObs = this.#inObs;
    const inAct = this.#inAct;
    for (let s = 0; s < M; s++) {
      const v = slotRow[s];
      // Padding slots carry a copy of a real row so the member sees in-distribution input.
      const r = v < n ? v : v % n;
      for (let d = 0; d < D; d++) inObs[s * D + d] = obs[r * D + d];
      for (let a = 0; a < A; a++) inAct[s * A + a] = actions[r * A + a];
    }
    await this.predictor.predict(inObs, inAct, this.#rowsPerMember, this.#outNext, this.#outReward, this.#outVar);

    const outNext = this.#outNext;
    const outReward = this.#outReward;
    const outVar = this.#outVar;
    const next = this.#next;
    const learned = this.#learned;
    const done = this.#done;
    const O = this.#outDim;
    if (outVar !== undefined) {
      // One draw per output of every slot (padding and done rows included: a fixed count per step).
      const noise = this.#rng.fillNormal(this.#noise);
      for (let s = 0; s < M; s++) {
        const r = slotRow[s];
        if (r >= n || done[r]) continue;
        for (let d = 0; d < D; d++) next[r * D + d] = outNext[s * D + d] + Math.sqrt(outVar[s * O + d]) * noise[s * O + d];
        if (outReward !== undefined) learned[r] = outReward[s] + Math.sqrt(outVar[s * O + D]) * noise[s * O + D];
      }
    } else {
      for (let s = 0; s < M; s++) {
        const r = slotRow[s];
        if (r >= n || done[r]) continue;
        for (let d = 0; d < D; d++) next[r * D + d] = outNext[s * D + d];
        if (outReward !== undefined) learned[r] = outReward[s];
      }
    }
  }

  /** Mean propagation: every member on every row; mean of the means, mean of the log-variances. */
  async #predictMean(actions: Float32Array | Float64Array): Promise<void> {
    const n = this.#n;
    const K = this.numMembers;
    const D = this.obsDim;
    const A = this.actDim;
    const O = this.#outDim;
    const obs = this.#obs;
    for (let k = 0; k < K; k++) {
      this.#inObs.set(obs, k * n * D);
      for (let i = 0; i < n * A; i++) this.#inAct[k * n * A + i] = actions[i];
    }
    await this.predictor.predict(this.#inObs, this.#inAct, n, this.#outNext, this.#outReward, this.#outVar);

    const outNext = this.#outNext;
    const outReward = this.#outReward;
    const outVar = this.#outVar;
    const next = this.#next;
    const learned = this.#learned;
    const done = this.#done;
    const noise = this.#noise;
    if (outVar !== undefined) this.#rng.fillNormal(noise);
    for (let r = 0; r < n; r++) {
      if (done[r]) continue;
      for (let d = 0; d < D; d++) {
        let m = 0;
        for (let k = 0; k < K; k++) m += outNext[(k * n + r) * D + d];
        m /= K;
        if (outVar !== undefined) m += Math.sqrt(meanLogVariance(outVar, K, n, r, d, O)) * noise[r * O + d];
        next[r * D + d] = m;
      }
      if (outReward !== undefined) {
        let m = 0;
        for (let k = 0; k < K; k++) m += outReward[k * n + r];
        m /= K;
        if (outVar !== undefined) m += Math.sqrt(meanLogVariance(outVar, K, n, r, D, O)) * noise[r * O + D];
        learned[r] = m;
      }
    }
  }
}

/** exp(mean over members of log var) of output d of row r: mbrl-lib's `logvar.mean(dim=0)`. */
function meanLogVariance(outVar: Float32Array, K: number, n: number, r: number, d: number, O: number): number {
  let s = 0;
  for (let k = 0; k < K; k++) s += Math.log(outVar[(k * n + r) * O + d]);
  return Math.exp(s / K);
}

/**
 * Aggregates the particle returns of each candidate (rows c·P .. c·P+P−1) into `out[c]`.
 * Pure; exported for tests and for callers that run their own rollouts.
 * @param rowReturns populationSize·particles returns
 */
export function aggregateParticles(
  rowReturns: ArrayLike<number>,
  populationSize: number,
  particles: number,
  objective: ParticleObjective,
  out: Float64Array = new Float64Array(populationSize),
): Float64Array {
  const P = particles;
  for (let c = 0; c < populationSize; c++) {
    let sum = 0;
    let min = Infinity;
    for (let p = 0; p < P; p++) {
      const v = rowReturns[c * P + p];
      sum += v;
      if (v < min || Number.isNaN(v)) min = v;
    }
    const mean = sum / P;
    if (objective.kind === 'mean') out[c] = mean;
    else if (objective.kind === 'min') out[c] = min;
    else {
      let ss = 0;
      for (let p = 0; p < P; p++) ss += (rowReturns[c * P + p] - mean) ** 2;
      out[c] = mean - objective.k * Math.sqrt(ss / P);
    }
  }
  return out;
}
