import { ValidationError, describe } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import type { Batch, StoredTransition, Transition } from './transition.js';
import { EpisodeIdAssigner, allocBatch, validateBatch, validateTransition } from './transition.js';

/** Options of `new ReplayBuffer`. */
export interface ReplayBufferOptions {
  /** Most transitions held; the oldest are overwritten beyond it. A positive integer. */
  capacity: number;
  /** Length of an observation. A positive integer. */
  obsDim: number;
  /** Length of an action. A positive integer. */
  actDim: number;
}

/** Options of `ReplayBuffer.minibatches`. */
export interface MinibatchOptions {
  /** Leave out the last, smaller minibatch. Default false (every index is visited). */
  dropLast?: boolean;
}

/** What `ReplayBuffer.splitByEpisode` returns: ascending logical indices. */
export interface EpisodeSplit {
  train: Uint32Array;
  holdout: Uint32Array;
}

/**
 * A fixed-capacity ring buffer of transitions on typed arrays (one preallocated column per
 * field, as `Batch`), for model-based RL: uniform sampling, episode-wise train/holdout splits
 * for the dynamics model, and seeded minibatch epochs.
 *
 * Indices are logical: 0 is the oldest row held and `size - 1` the newest. Once the buffer is
 * full, every `add` shifts them by one, so take indices (a split, a minibatch) after adding.
 *
 * Column types: vectors and rewards are float32 (what the models consume; half the memory of
 * float64); flags are uint8; stamps are int64 nanoseconds. Episode ids are uint32 rather than
 * float64: 4 bytes a row instead of 8, exact, and 2**32 episodes cannot be exhausted in practice;
 * ids are only compared for equality, and automatic ids wrap modulo 2**32.
 *
 * Every add is validated before anything is written, so a rejected add (or a rejected
 * `addBatch`, any row of it) leaves the buffer exactly as it was.
 *
 * @example
 * const buf = new ReplayBuffer({ capacity: 100_000, obsDim: 3, actDim: 1 });
 * buf.add({ obs, action, reward, nextObs, terminated: false, truncated: false });
 * const batch = buf.sample(256, rng); // batch.obs: Float32Array(256 * 3)
 * const { train, holdout } = buf.splitByEpisode(0.1, rng);
 * for (const idx of buf.minibatches(train, 256, rng)) model.trainOn(buf.toBatch(idx));
 */
export class ReplayBuffer {
  readonly capacity: number;
  readonly obsDim: number;
  readonly actDim: number;
  #obs: Float32Array;
  #action: Float32Array;
  #reward: Float32Array;
  #nextObs: Float32Array;
  #terminated: Uint8Array;
  #truncated: Uint8Array;
  #episodeId: Uint32Array;
  #stampNs: BigInt64Array;
  /** Physical slot of logical row 0. */
  #start = 0;
  #size = 0;
  #totalAdded = 0;
  #dropped = 0;
  #episodes = new EpisodeIdAssigner();
  #sampleOut: Batch | undefined;

  constructor(options: ReplayBufferOptions) {
    for (const key of ['capacity', 'obsDim', 'actDim'] as const) {
      const v = options?.[key];
      if (!Number.isInteger(v) || v <= 0) {
        throw new ValidationError('ReplayBuffer', key, `expected a positive integer, got ${describe(v)}`);
      }
    }
    this.capacity = options.capacity;
    this.obsDim = options.obsDim;
    this.actDim = options.actDim;
    const b = allocBatch(this.capacity, this.obsDim, this.actDim);
    this.#obs = b.obs;
    this.#action = b.action;
    this.#reward = b.reward;
    this.#nextObs = b.nextObs;
    this.#terminated = b.terminated;
    this.#truncated = b.truncated;
    this.#episodeId = b.episodeId;
    this.#stampNs = b.stampNs;
  }

  /** Rows held now. */
  get size(): number {
    return this.#size;
  }

  /** Rows accepted since construction (or the last `clear`), including overwritten ones. */
  get totalAdded(): number {
    return this.#totalAdded;
  }

  /** Rows overwritten by newer ones since construction (or the last `clear`). */
  get dropped(): number {
    return this.#dropped;
  }

  /** The id the next automatically numbered episode will get. */
  get nextEpisodeId(): number {
    return this.#episodes.nextId;
  }

  /**
   * Appends one transition in O(1), overwriting the oldest when full.
   * @throws ValidationError (buffer unchanged) for a wrong length, NaN/Inf or a value that
   *   overflows float32, a non-boolean flag, a bad episode id or stamp; names the field.
   * @returns the new row's logical index (`size - 1`)
   */
  add(t: Transition): number {
    validateTransition(t, this.obsDim, this.actDim, 'ReplayBuffer.add');
    this.#write(t);
    return this.#size - 1;
  }

  /**
   * Appends transitions in order. All rows are validated first: one bad row rejects the whole
   * batch and leaves the buffer unchanged.
   * @throws ValidationError naming the row, e.g. `transitions[7].obs[3]`
   */
  addBatch(transitions: readonly Transition[]): void {
    if (!Array.isArray(transitions)) {
      throw new ValidationError('ReplayBuffer.addBatch', 'transitions', `expected an array of transitions, got ${describe(transitions)}`);
    }
    for (let r = 0; r < transitions.length; r++) {
      validateTransition(transitions[r], this.obsDim, this.actDim, 'ReplayBuffer.addBatch', `transitions[${r}].`);
    }
    for (const t of transitions) this.#write(t);
  }

  /**
   * Appends the rows of a columnar batch, episode ids and stamps as given (the loader uses it).
   * Validated in full first; the buffer is unchanged on error.
   * @throws ValidationError naming the column and flat index, e.g. `obs[12]`
   */
  addColumns(batch: Batch): void {
    validateBatch(batch, this.obsDim, this.actDim, 'ReplayBuffer.addColumns');
    const { obsDim: od, actDim: ad } = this;
    for (let r = 0; r < batch.size; r++) {
      const p = this.#claimSlot();
      this.#obs.set(batch.obs.subarray(r * od, (r + 1) * od), p * od);
      this.#action.set(batch.action.subarray(r * ad, (r + 1) * ad), p * ad);
      this.#nextObs.set(batch.nextObs.subarray(r * od, (r + 1) * od), p * od);
      this.#reward[p] = batch.reward[r];
      this.#terminated[p] = batch.terminated[r];
      this.#truncated[p] = batch.truncated[r];
      this.#episodeId[p] = batch.episodeId[r];
      this.#stampNs[p] = batch.stampNs[r];
      this.#episodes.observe(batch.episodeId[r], batch.terminated[r] === 1 || batch.truncated[r] === 1);
    }
  }

  /**
   * A copy of row `i` (0 = oldest).
   * @throws ValidationError if `i` is not an integer in [0, size)
   */
  get(i: number): StoredTransition {
    this.#checkIndex(i, 'ReplayBuffer.get', 'i');
    const p = this.#slot(i);
    const { obsDim: od, actDim: ad } = this;
    return {
      obs: this.#obs.slice(p * od, (p + 1) * od),
      action: this.#action.slice(p * ad, (p + 1) * ad),
      reward: this.#reward[p],
      nextObs: this.#nextObs.slice(p * od, (p + 1) * od),
      terminated: this.#terminated[p] === 1,
      truncated: this.#truncated[p] === 1,
      episodeId: this.#episodeId[p],
      stampNs: this.#stampNs[p],
    };
  }

  /**
   * `batchSize` rows drawn uniformly with replacement from the rows held.
   *
   * Writes into `out` if given, else into a batch the buffer keeps and reuses: the result is
   * overwritten by the next `sample` call of the same size, so copy what you keep.
   * @param out a batch from `allocBatch(batchSize, obsDim, actDim)`
   * @throws ValidationError if the buffer is empty or `batchSize` is not a positive integer
   */
  sample(batchSize: number, rng: Rng, out?: Batch): Batch {
    if (!Number.isInteger(batchSize) || batchSize <= 0) {
      throw new ValidationError('ReplayBuffer.sample', 'batchSize', `expected a positive integer, got ${describe(batchSize)}`);
    }
    if (this.#size === 0) throw new ValidationError('ReplayBuffer.sample', 'buffer', 'cannot sample from an empty buffer');
    let dst = out;
    if (dst === undefined) {
      if (this.#sampleOut?.size !== batchSize) this.#sampleOut = allocBatch(batchSize, this.obsDim, this.actDim);
      dst = this.#sampleOut;
    } else {
      this.#checkOut(dst, batchSize, 'ReplayBuffer.sample');
    }
    for (let r = 0; r < batchSize; r++) this.#copyRow(this.#slot(rng.int(this.#size)), dst, r);
    return dst;
  }

  /**
   * The rows at logical `indices`, as a new batch (or written into `out`).
   * @throws ValidationError naming the first index out of [0, size)
   */
  toBatch(indices: ArrayLike<number>, out?: Batch): Batch {
    const n = indices.length;
    for (let k = 0; k < n; k++) this.#checkIndex(indices[k], 'ReplayBuffer.toBatch', `indices[${k}]`);
    const dst = out ?? allocBatch(n, this.obsDim, this.actDim);
    if (out !== undefined) this.#checkOut(out, n, 'ReplayBuffer.toBatch');
    for (let k = 0; k < n; k++) this.#copyRow(this.#slot(indices[k]), dst, k);
    return dst;
  }

  /**
   * Rows `start` (inclusive) to `end` (exclusive) in order, as a new batch: `toBatch` of a
   * contiguous range, without building the index array.
   */
  slice(start = 0, end = this.#size): Batch {
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > this.#size || start > end) {
      throw new ValidationError('ReplayBuffer.slice', 'range', `expected 0 <= start <= end <= ${this.#size}, got [${start}, ${end})`);
    }
    const dst = allocBatch(end - start, this.obsDim, this.actDim);
    for (let k = 0; k < end - start; k++) this.#copyRow(this.#slot(start + k), dst, k);
    return dst;
  }

  /**
   * Splits the rows into train and holdout sets by whole episodes, so that no episode is on
   * both sides (the holdout then measures generalisation to unseen trajectories, not to
   * neighbouring steps of a trajectory the model trained on).
   *
   * Episodes are shuffled with `rng`, then taken into the holdout one by one whenever that
   * brings its row count closer to `holdoutFraction · size`. So the fraction of rows is met
   * approximately (within half the longest episode). With `holdoutFraction > 0` and at least
   * two episodes, the holdout gets at least one episode (the shortest, if every episode alone
   * overshoots the target) and the train set keeps at least one.
   * A single episode, or `holdoutFraction = 0`, gives an empty holdout.
   *
   * @param holdoutFraction share of rows to hold out, in [0, 1)
   * @example const { train, holdout } = buf.splitByEpisode(0.2, new Rng(0));
   */
  splitByEpisode(holdoutFraction: number, rng: Rng): EpisodeSplit {
    if (typeof holdoutFraction !== 'number' || !(holdoutFraction >= 0 && holdoutFraction < 1)) {
      throw new ValidationError('ReplayBuffer.splitByEpisode', 'holdoutFraction', `expected a number in [0, 1), got ${describe(holdoutFraction)}`);
    }
    // Episode ids in order of first appearance, with their row counts.
    const order: number[] = [];
    const counts = new Map<number, number>();
    for (let i = 0; i < this.#size; i++) {
      const id = this.#episodeId[this.#slot(i)];
      const c = counts.get(id);
      if (c === undefined) order.push(id);
      counts.set(id, (c ?? 0) + 1);
    }
    const perm = rng.permutation(order.length);
    const target = holdoutFraction * this.#size;
    const held = new Set<number>();
    let heldRows = 0;
    if (holdoutFraction > 0 && order.length >= 2) {
      for (let k = 0; k < perm.length && held.size < order.length - 1; k++) {
        const id = order[perm[k]];
        const rows = counts.get(id) ?? 0;
        if (Math.abs(heldRows + rows - target) < Math.abs(heldRows - target)) {
          held.add(id);
          heldRows += rows;
        }
      }
      if (held.size === 0) {
        // Every episode overshoots the target alone: hold out the shortest (first in shuffled order).
        let best = order[perm[0]];
        for (const k of perm) if ((counts.get(order[k]) ?? 0) < (counts.get(best) ?? 0)) best = order[k];
        held.add(best);
        heldRows = counts.get(best) ?? 0;
      }
    }
    const train = new Uint32Array(this.#size - heldRows);
    const holdout = new Uint32Array(heldRows);
    let t = 0;
    let h = 0;
    for (let i = 0; i < this.#size; i++) {
      if (held.has(this.#episodeId[this.#slot(i)])) holdout[h++] = i;
      else train[t++] = i;
    }
    return { train, holdout };
  }

  /**
   * One epoch over `indices` in a seeded random order, in minibatches of `batchSize` (the last
   * one smaller unless `dropLast`). Every index is yielded exactly once per call. The order is
   * drawn from `rng` when `minibatches` is called, not lazily.
   *
   * The yielded arrays are views into one private shuffled copy; they stay valid.
   * @example for (const idx of buf.minibatches(train, 256, rng)) step(buf.toBatch(idx));
   */
  minibatches(indices: ArrayLike<number>, batchSize: number, rng: Rng, options: MinibatchOptions = {}): IterableIterator<Uint32Array> {
    const { dropLast = false } = options;
    if (!Number.isInteger(batchSize) || batchSize <= 0) {
      throw new ValidationError('ReplayBuffer.minibatches', 'batchSize', `expected a positive integer, got ${describe(batchSize)}`);
    }
    for (let k = 0; k < indices.length; k++) this.#checkIndex(indices[k], 'ReplayBuffer.minibatches', `indices[${k}]`);
    const order = rng.shuffle(Uint32Array.from(indices));
    const end = dropLast ? order.length - (order.length % batchSize) : order.length;
    return (function* () {
      for (let s = 0; s < end; s += batchSize) yield order.subarray(s, Math.min(s + batchSize, end));
    })();
  }

  /** Empties the buffer and resets the counters and episode numbering, as if newly built. */
  clear(): void {
    this.#start = 0;
    this.#size = 0;
    this.#totalAdded = 0;
    this.#dropped = 0;
    this.#episodes.reset();
  }

  #write(t: Transition): void {
    const p = this.#claimSlot();
    const { obsDim: od, actDim: ad } = this;
    for (let j = 0; j < od; j++) {
      this.#obs[p * od + j] = t.obs[j];
      this.#nextObs[p * od + j] = t.nextObs[j];
    }
    for (let j = 0; j < ad; j++) this.#action[p * ad + j] = t.action[j];
    this.#reward[p] = t.reward;
    this.#terminated[p] = t.terminated ? 1 : 0;
    this.#truncated[p] = t.truncated ? 1 : 0;
    const id = this.#episodes.peek(t.episodeId);
    this.#episodeId[p] = id;
    this.#stampNs[p] = t.stampNs ?? 0n;
    this.#episodes.observe(id, t.terminated || t.truncated);
  }

  /** The physical slot for the next row, evicting the oldest when full. */
  #claimSlot(): number {
    this.#totalAdded++;
    if (this.#size < this.capacity) {
      this.#size++;
      return (this.#start + this.#size - 1) % this.capacity;
    }
    const p = this.#start;
    this.#start = (this.#start + 1) % this.capacity;
    this.#dropped++;
    return p;
  }

  #slot(i: number): number {
    return (this.#start + i) % this.capacity;
  }

  #checkIndex(i: number, where: string, field: string): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.#size) {
      throw new ValidationError(where, field, `expected an integer in [0, ${this.#size}), got ${describe(i)}`);
    }
  }

  #checkOut(out: Batch, n: number, where: string): void {
    if (out.size !== n || out.obsDim !== this.obsDim || out.actDim !== this.actDim) {
      throw new ValidationError(where, 'out', `expected a batch of size ${n}, obsDim ${this.obsDim}, actDim ${this.actDim} (allocBatch), got size ${out.size}, obsDim ${out.obsDim}, actDim ${out.actDim}`);
    }
  }

  #copyRow(p: number, dst: Batch, r: number): void {
    const { obsDim: od, actDim: ad } = this;
    dst.obs.set(this.#obs.subarray(p * od, (p + 1) * od), r * od);
    dst.action.set(this.#action.subarray(p * ad, (p + 1) * ad), r * ad);
    dst.nextObs.set(this.#nextObs.subarray(p * od, (p + 1) * od), r * od);
    dst.reward[r] = this.#reward[p];
    dst.terminated[r] = this.#terminated[p];
    dst.truncated[r] = this.#truncated[p];
    dst.episodeId[r] = this.#episodeId[p];
    dst.stampNs[r] = this.#stampNs[p];
  }
}
