/**
 * One step of experience, its validation, and the flat column layout (`Batch`) that buffers,
 * models and files share.
 */
import { ValidationError, checkFiniteVector, describe } from '../core/errors.js';

/**
 * One step of experience (s, a, r, s') with Gymnasium's two end flags.
 *
 * When adding to a buffer, `episodeId` and `stampNs` may be left out: the buffer assigns
 * episode ids itself (a new one after every terminated or truncated step) and stores a
 * stamp of `0n`.
 *
 * @example
 * const t: Transition = { obs: [0, 1], action: [0.5], reward: -1, nextObs: [0.1, 0.9],
 *   terminated: false, truncated: false, stampNs: 1_700_000_000_000_000_000n };
 */
export interface Transition {
  obs: ArrayLike<number>;
  action: ArrayLike<number>;
  reward: number;
  nextObs: ArrayLike<number>;
  /** s' is terminal (fallen over, goal reached): do not bootstrap past it. */
  terminated: boolean;
  /** The episode was cut (time limit, operator stop); s' is not terminal. */
  truncated: boolean;
  /** Which episode the step belongs to, an integer in [0, 2**32). Assigned by the buffer if absent. */
  episodeId?: number;
  /** When the step was taken, in integer nanoseconds (e.g. a ROS 2 stamp). Default `0n`. */
  stampNs?: bigint;
}

/** A transition as a buffer stores it: float32 vectors, and every field present. */
export interface StoredTransition extends Transition {
  obs: Float32Array;
  action: Float32Array;
  nextObs: Float32Array;
  episodeId: number;
  stampNs: bigint;
}

/**
 * `size` transitions as flat typed-array columns, row-major: row `i`'s observation is
 * `obs.subarray(i * obsDim, (i + 1) * obsDim)`. Flags are 0 or 1.
 */
export interface Batch {
  readonly size: number;
  readonly obsDim: number;
  readonly actDim: number;
  obs: Float32Array;
  action: Float32Array;
  reward: Float32Array;
  nextObs: Float32Array;
  terminated: Uint8Array;
  truncated: Uint8Array;
  episodeId: Uint32Array;
  stampNs: BigInt64Array;
}

/**
 * Allocates a zero-filled batch of `size` rows.
 * @example const b = allocBatch(256, 17, 6); b.obs.length === 256 * 17;
 */
export function allocBatch(size: number, obsDim: number, actDim: number): Batch {
  return {
    size,
    obsDim,
    actDim,
    obs: new Float32Array(size * obsDim),
    action: new Float32Array(size * actDim),
    reward: new Float32Array(size),
    nextObs: new Float32Array(size * obsDim),
    terminated: new Uint8Array(size),
    truncated: new Uint8Array(size),
    episodeId: new Uint32Array(size),
    stampNs: new BigInt64Array(size),
  };
}

/**
 * Rows `start` (inclusive) to `end` (exclusive) of `b` as a batch of views (no copy): writing
 * into the result writes into `b`.
 */
export function batchView(b: Batch, start: number, end: number): Batch {
  const { obsDim: od, actDim: ad } = b;
  return {
    size: end - start,
    obsDim: od,
    actDim: ad,
    obs: b.obs.subarray(start * od, end * od),
    action: b.action.subarray(start * ad, end * ad),
    reward: b.reward.subarray(start, end),
    nextObs: b.nextObs.subarray(start * od, end * od),
    terminated: b.terminated.subarray(start, end),
    truncated: b.truncated.subarray(start, end),
    episodeId: b.episodeId.subarray(start, end),
    stampNs: b.stampNs.subarray(start, end),
  };
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
/** Largest episode id: ids are stored as uint32. */
export const MAX_EPISODE_ID = 0xffffffff;

/**
 * Like `checkFiniteVector`, and also rejects values that are finite as doubles but overflow
 * to ±Infinity when stored as float32 (|x| ≳ 3.4e38, e.g. 1e39).
 * @throws ValidationError naming `field[i]` and the value
 */
export function checkFloat32Vector(values: ArrayLike<number>, expectedLength: number, where: string, field: string): void {
  checkFiniteVector(values, expectedLength, where, field);
  for (let i = 0; i < expectedLength; i++) {
    if (!Number.isFinite(Math.fround(values[i]))) {
      throw new ValidationError(where, `${field}[${i}]`, `expected a number representable as float32, got ${values[i]} (overflows to ${Math.fround(values[i])})`);
    }
  }
}

/**
 * Checks every field of `t` without storing anything.
 * @param prefix prepended to field names, e.g. `"transitions[4]."` in a batch
 * @throws ValidationError naming the field (`obs[3]`, `reward`, `terminated`, ...) and the value
 */
export function validateTransition(t: Transition, obsDim: number, actDim: number, where: string, prefix = ''): void {
  if (t === null || typeof t !== 'object') {
    throw new ValidationError(where, prefix === '' ? 'transition' : prefix.replace(/\.$/, ''), `expected a transition object, got ${describe(t)}`);
  }
  checkFloat32Vector(t.obs, obsDim, where, `${prefix}obs`);
  checkFloat32Vector(t.action, actDim, where, `${prefix}action`);
  checkFloat32Vector(t.nextObs, obsDim, where, `${prefix}nextObs`);
  if (typeof t.reward !== 'number' || !Number.isFinite(Math.fround(t.reward))) {
    throw new ValidationError(where, `${prefix}reward`, `expected a finite number representable as float32, got ${describe(t.reward)}`);
  }
  for (const flag of ['terminated', 'truncated'] as const) {
    if (typeof t[flag] !== 'boolean') {
      throw new ValidationError(where, `${prefix}${flag}`, `expected a boolean, got ${describe(t[flag])}`);
    }
  }
  if (t.episodeId !== undefined && (!Number.isInteger(t.episodeId) || t.episodeId < 0 || t.episodeId > MAX_EPISODE_ID)) {
    throw new ValidationError(where, `${prefix}episodeId`, `expected an integer in [0, 2**32), got ${describe(t.episodeId)}`);
  }
  if (t.stampNs !== undefined) {
    if (typeof t.stampNs !== 'bigint') {
      throw new ValidationError(where, `${prefix}stampNs`, `expected a bigint (integer nanoseconds), got ${describe(t.stampNs)}`);
    }
    if (t.stampNs < INT64_MIN || t.stampNs > INT64_MAX) {
      throw new ValidationError(where, `${prefix}stampNs`, `expected a signed 64-bit integer, got ${t.stampNs}`);
    }
  }
}

/**
 * Checks a columnar batch: column lengths match `size` and the dims, floats are finite,
 * flags are 0 or 1. Fields are named as `obs[row * obsDim + j]` with the row spelled out.
 * @throws ValidationError naming the column, the flat index and the value
 */
export function validateBatch(b: Batch, obsDim: number, actDim: number, where: string): void {
  if (b === null || typeof b !== 'object' || !Number.isInteger(b.size) || b.size < 0) {
    throw new ValidationError(where, 'batch', `expected a Batch with a non-negative integer size, got ${describe(b)}`);
  }
  if (b.obsDim !== obsDim || b.actDim !== actDim) {
    throw new ValidationError(where, 'batch', `expected obsDim ${obsDim} and actDim ${actDim}, got ${b.obsDim} and ${b.actDim}`);
  }
  const n = b.size;
  const expect: [keyof Batch, ArrayLike<unknown> | undefined, number, unknown][] = [
    ['obs', b.obs, n * obsDim, Float32Array],
    ['action', b.action, n * actDim, Float32Array],
    ['reward', b.reward, n, Float32Array],
    ['nextObs', b.nextObs, n * obsDim, Float32Array],
    ['terminated', b.terminated, n, Uint8Array],
    ['truncated', b.truncated, n, Uint8Array],
    ['episodeId', b.episodeId, n, Uint32Array],
    ['stampNs', b.stampNs, n, BigInt64Array],
  ];
  for (const [name, col, len, ctor] of expect) {
    if (!(col instanceof (ctor as new () => object)) || col.length < len) {
      throw new ValidationError(where, name, `expected a ${(ctor as { name: string }).name} of length ${len}, got ${describe(col)}`);
    }
  }
  for (const name of ['obs', 'action', 'reward', 'nextObs'] as const) {
    const col = b[name];
    const dim = name === 'reward' ? 1 : name === 'action' ? actDim : obsDim;
    for (let i = 0; i < n * dim; i++) {
      if (!Number.isFinite(col[i])) {
        throw new ValidationError(where, `${name}[${i}]`, `expected a finite number (row ${Math.floor(i / dim)}), got ${describe(col[i])}`);
      }
    }
  }
  for (const name of ['terminated', 'truncated'] as const) {
    const col = b[name];
    for (let i = 0; i < n; i++) {
      if (col[i] > 1) throw new ValidationError(where, `${name}[${i}]`, `expected 0 or 1, got ${col[i]}`);
    }
  }
}

/**
 * Assigns episode ids to a stream of transitions: consecutive unlabelled steps share an id, and
 * a new id starts after each terminated or truncated step. Explicit ids are kept, and later
 * automatic ids never reuse them (the counter moves past the largest id seen). Ids wrap modulo
 * 2**32, which cannot make two episodes in one buffer share an id unless it holds 2**32 rows.
 */
export class EpisodeIdAssigner {
  #next = 0;
  /** The id of the episode in progress, or -1 when the next unlabelled step starts a new one. */
  #open = -1;

  /** The id for a step (without recording it). */
  peek(given: number | undefined): number {
    if (given !== undefined) return given;
    return this.#open >= 0 ? this.#open : this.#next;
  }

  /** Records a stored step: its id and whether it ended its episode. */
  observe(id: number, done: boolean): void {
    if (id >= this.#next) this.#next = (id + 1) % (MAX_EPISODE_ID + 1);
    this.#open = done ? -1 : id;
  }

  /** The id the next new episode will get. */
  get nextId(): number {
    return this.#next;
  }

  /** Starts from a given next id, with no episode in progress. */
  reset(nextId = 0): void {
    this.#next = nextId;
    this.#open = -1;
  }
}
