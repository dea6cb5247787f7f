import { ValidationError, describe } from '../core/errors.js';
import type { DatasetMetadata } from './dataset.js';
import { OfflineDataset } from './dataset.js';

/** One row appended to a `DatasetBuilder`. */
export interface DatasetRow {
  observation: ArrayLike<number>;
  action: ArrayLike<number>;
  reward: number;
  nextObservation: ArrayLike<number>;
  terminal: boolean;
  timeout: boolean;
}

/**
 * Grows D4RL columns row by row (doubling typed arrays), for loaders and collectors that do not
 * know the row count in advance. Rows are checked when appended; `build()` validates the whole.
 *
 * @example
 * const b = new DatasetBuilder(3, 1);
 * b.append({ observation: s, action: a, reward: r, nextObservation: s2, terminal: false, timeout: false });
 * const ds = b.build({ envId: 'Pendulum-v1' });
 */
export class DatasetBuilder {
  readonly obsDim: number;
  readonly actDim: number;
  #size = 0;
  #cap: number;
  #obs: Float32Array;
  #act: Float32Array;
  #rew: Float32Array;
  #next: Float32Array;
  #term: Uint8Array;
  #tout: Uint8Array;

  constructor(obsDim: number, actDim: number, initialCapacity = 1024) {
    for (const [key, v] of [['obsDim', obsDim], ['actDim', actDim], ['initialCapacity', initialCapacity]] as const) {
      if (!Number.isInteger(v) || v <= 0) throw new ValidationError('DatasetBuilder', key, `expected a positive integer, got ${describe(v)}`);
    }
    this.obsDim = obsDim;
    this.actDim = actDim;
    this.#cap = initialCapacity;
    this.#obs = new Float32Array(initialCapacity * obsDim);
    this.#act = new Float32Array(initialCapacity * actDim);
    this.#rew = new Float32Array(initialCapacity);
    this.#next = new Float32Array(initialCapacity * obsDim);
    this.#term = new Uint8Array(initialCapacity);
    this.#tout = new Uint8Array(initialCapacity);
  }

  /** Rows appended so far. */
  get size(): number {
    return this.#size;
  }

  /**
   * Appends one row.
   * @param where names the input in errors, e.g. `"run.csv line 12"`
   * @throws ValidationError for a vector of the wrong length or a non-finite entry (nothing appended)
   */
  append(row: DatasetRow, where = `DatasetBuilder row ${this.#size}`): void {
    check(row.observation, this.obsDim, where, 'observations');
    check(row.action, this.actDim, where, 'actions');
    check(row.nextObservation, this.obsDim, where, 'next_observations');
    if (typeof row.reward !== 'number' || !Number.isFinite(Math.fround(row.reward))) {
      throw new ValidationError(where, 'rewards', `expected a finite number representable as float32, got ${describe(row.reward)}`);
    }
    if (this.#size === this.#cap) this.#grow();
    const i = this.#size++;
    const od = this.obsDim;
    const ad = this.actDim;
    for (let j = 0; j < od; j++) {
      this.#obs[i * od + j] = row.observation[j];
      this.#next[i * od + j] = row.nextObservation[j];
    }
    for (let j = 0; j < ad; j++) this.#act[i * ad + j] = row.action[j];
    this.#rew[i] = row.reward;
    this.#term[i] = row.terminal ? 1 : 0;
    this.#tout[i] = row.timeout ? 1 : 0;
  }

  /** Sets `timeouts` on the last row appended (an episode cut after it), if it is not terminal. */
  markTimeout(): void {
    if (this.#size > 0 && this.#term[this.#size - 1] === 0) this.#tout[this.#size - 1] = 1;
  }

  /** The dataset of the rows appended (copies of the used part of the arrays). */
  build(metadata: DatasetMetadata = {}, where = 'DatasetBuilder.build'): OfflineDataset {
    const n = this.#size;
    const { obsDim: od, actDim: ad } = this;
    return new OfflineDataset(
      {
        observations: this.#obs.slice(0, n * od),
        actions: this.#act.slice(0, n * ad),
        rewards: this.#rew.slice(0, n),
        next_observations: this.#next.slice(0, n * od),
        terminals: this.#term.slice(0, n),
        timeouts: this.#tout.slice(0, n),
      },
      { obsDim: od, actDim: ad, metadata, where },
    );
  }

  #grow(): void {
    const cap = this.#cap * 2;
    const grow = <T extends Float32Array | Uint8Array>(a: T, w: number): T => {
      const b = new (a.constructor as new (n: number) => T)(cap * w);
      b.set(a);
      return b;
    };
    this.#obs = grow(this.#obs, this.obsDim);
    this.#act = grow(this.#act, this.actDim);
    this.#rew = grow(this.#rew, 1);
    this.#next = grow(this.#next, this.obsDim);
    this.#term = grow(this.#term, 1);
    this.#tout = grow(this.#tout, 1);
    this.#cap = cap;
  }
}

function check(v: ArrayLike<number>, n: number, where: string, field: string): void {
  if (v === null || v === undefined || typeof v.length !== 'number') throw new ValidationError(where, field, `expected a numeric vector of length ${n}, got ${describe(v)}`);
  if (v.length !== n) throw new ValidationError(where, field, `expected length ${n}, got length ${v.length}`);
  for (let j = 0; j < n; j++) {
    if (typeof v[j] !== 'number' || !Number.isFinite(Math.fround(v[j]))) {
      throw new ValidationError(where, `${field}[${j}]`, `expected a finite number representable as float32, got ${describe(v[j])}`);
    }
  }
}
