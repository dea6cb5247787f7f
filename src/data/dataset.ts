/**
 * `OfflineDataset`: logged transitions for offline RL, with D4RL's field names and layout
 * (Fu et al. 2020, https://arxiv.org/abs/2004.07219), so files move between this project and the
 * Python tools unchanged.
 *
 * ## Layout
 * Row `i` is one transition (s_i, a_i, r_i, s'_i), row-major flat typed arrays:
 * - `observations` [N, obsDim] float32, `next_observations` [N, obsDim] float32
 * - `actions` [N, actDim] float32, `rewards` [N] float32
 * - `terminals` [N] 0/1 (uint8): s'_i is terminal (Gymnasium's `terminated`)
 * - `timeouts` [N] 0/1 (uint8): the episode was cut after row i (`truncated`); s'_i is not terminal
 *
 * ## Episodes
 * Episodes are contiguous runs of rows. An episode ends at a row with `terminals` or `timeouts`
 * set; rows after the last such row form a final, unfinished episode (a recording that stopped
 * mid-episode). This is the only boundary information D4RL's format carries, so every producer
 * here (buffer conversion, loaders, bag import, collection) sets `timeouts` on an episode's last
 * row when the episode was cut.
 *
 * ## Next-observation rule
 * `next_observations[i]` is the observation that followed action `actions[i]` — never
 * `observations[i]` itself, and never the first observation of the next episode (D4RL's own
 * `qlearning_dataset` helper takes `observations[i+1]` across a terminal; OfflineRL-Kit documents
 * this as wrong for dynamics learning). Inside an episode it should therefore equal
 * `observations[i+1]`; `checkAlignment` counts the rows where it does not, as a warning, because
 * real data (observation noise re-sampled, dropped messages) legitimately break it.
 */
import { ValidationError, describe } from '../core/errors.js';
import { ReplayBuffer } from './replayBuffer.js';
import { allocBatch } from './transition.js';

/** D4RL's columns (flat, row-major). */
export interface DatasetFields {
  /** [N, obsDim] */
  observations: Float32Array;
  /** [N, actDim] */
  actions: Float32Array;
  /** [N] */
  rewards: Float32Array;
  /** [N, obsDim] */
  next_observations: Float32Array;
  /** [N], 0 or 1 */
  terminals: Uint8Array;
  /** [N], 0 or 1 */
  timeouts: Uint8Array;
}

/** The field names in file order. */
export const DATASET_FIELDS = ['observations', 'actions', 'rewards', 'next_observations', 'terminals', 'timeouts'] as const;

/**
 * Where a dataset came from. Keys written to HDF5 as `metadata/<snake_case key>` string datasets
 * (D4RL's layout); unknown keys round-trip.
 */
export interface DatasetMetadata {
  /** Task id the data were collected on, e.g. `"HalfCheetah-v5"`. */
  envId?: string;
  /** How the data were produced, e.g. `"mbrl dataset collect"`, `"bag:run3.mcap"`. */
  source?: string;
  /** The behaviour policy, e.g. `"random"`, a file name. */
  policy?: string;
  [key: string]: string | undefined;
}

/** Rows `start` (inclusive) to `end` (exclusive) of one episode. */
export interface EpisodeRange {
  start: number;
  end: number;
  /** The last row is terminal (`terminals` = 1). */
  terminated: boolean;
  /** The last row has `timeouts` = 1. An episode with neither flag is unfinished (the data stop mid-episode). */
  truncated: boolean;
}

/** What `checkAlignment` found: warnings, not errors. */
export interface AlignmentReport {
  /** The rule checked, for reports. */
  rule: string;
  /** Row pairs (i, i+1) inside an episode that were compared. */
  checked: number;
  /** Rows i where next_observations[i] differs from observations[i+1]. */
  mismatches: number;
  /** The first (up to 10) mismatching rows. */
  rows: number[];
  /** Largest |next_observations[i][j] − observations[i+1][j]| over the mismatches (0 if none). */
  maxAbsDiff: number;
}

/** Tolerances of `checkAlignment`: equal when |a − b| ≤ atol + rtol·|b|. */
export interface AlignmentTolerance {
  /** Default 1e-6. */
  atol?: number;
  /** Default 1e-5 (float32 rounding of values that went through float64 arithmetic). */
  rtol?: number;
}

/** The ensemble fit data shape (`bufferFitData` in algorithms/mbrl.ts). */
export interface FitData {
  obs: Float32Array;
  act: Float32Array;
  nextObs: Float32Array;
  reward: Float32Array;
  n: number;
}

/** What a loader returns: the dataset and what it did to the input (conversions, dropped rows). */
export interface DatasetLoadResult {
  dataset: OfflineDataset;
  /** One line per thing a user should know (a conversion, rows dropped and why). */
  notes: string[];
}

/** Options of `new OfflineDataset`. */
export interface OfflineDatasetOptions {
  obsDim: number;
  actDim: number;
  metadata?: DatasetMetadata;
  /** Prefix of error locations, e.g. the file being loaded. Default `"OfflineDataset"`. */
  where?: string;
}

/**
 * An offline RL dataset in D4RL's layout (see the file comment), validated on construction.
 * The arrays are held, not copied: do not modify them afterwards.
 *
 * @example
 * const ds = new OfflineDataset({ observations, actions, rewards, next_observations, terminals, timeouts }, { obsDim: 3, actDim: 1, metadata: { envId: 'Pendulum-v1' } });
 * for (const ep of ds.episodes()) console.log(ep.start, ep.end, ep.terminated);
 * const buffer = ds.toReplayBuffer();
 * const fit = ds.toFitData(); // { obs, act, nextObs, reward, n } for fitEnsemble
 */
export class OfflineDataset implements DatasetFields {
  readonly size: number;
  readonly obsDim: number;
  readonly actDim: number;
  readonly observations: Float32Array;
  readonly actions: Float32Array;
  readonly rewards: Float32Array;
  readonly next_observations: Float32Array;
  readonly terminals: Uint8Array;
  readonly timeouts: Uint8Array;
  readonly metadata: Readonly<DatasetMetadata>;
  #episodes: EpisodeRange[] | undefined;

  /**
   * @throws ValidationError naming the field, the row and the bad value: a wrong array type or
   *   length, a NaN/±Infinity entry, a flag other than 0 or 1
   */
  constructor(fields: DatasetFields, options: OfflineDatasetOptions) {
    const where = options.where ?? 'OfflineDataset';
    const size = validateDatasetFields(fields, options.obsDim, options.actDim, where);
    this.size = size;
    this.obsDim = options.obsDim;
    this.actDim = options.actDim;
    this.observations = fields.observations;
    this.actions = fields.actions;
    this.rewards = fields.rewards;
    this.next_observations = fields.next_observations;
    this.terminals = fields.terminals;
    this.timeouts = fields.timeouts;
    this.metadata = Object.freeze(cleanMetadata(options.metadata ?? {}));
  }

  /** Episode ranges in row order (see the file comment for the rule). Computed once. */
  episodes(): readonly EpisodeRange[] {
    if (this.#episodes) return this.#episodes;
    const out: EpisodeRange[] = [];
    let start = 0;
    for (let i = 0; i < this.size; i++) {
      const terminated = this.terminals[i] === 1;
      const truncated = this.timeouts[i] === 1;
      if (terminated || truncated) {
        out.push({ start, end: i + 1, terminated, truncated });
        start = i + 1;
      }
    }
    if (start < this.size) out.push({ start, end: this.size, terminated: false, truncated: false });
    this.#episodes = out;
    return out;
  }

  /**
   * Counts the rows inside an episode where `next_observations[i]` ≠ `observations[i+1]` (the
   * next-observation rule, see the file comment). Warnings: real data may break it.
   */
  checkAlignment(tolerance: AlignmentTolerance = {}): AlignmentReport {
    const atol = tolerance.atol ?? 1e-6;
    const rtol = tolerance.rtol ?? 1e-5;
    const od = this.obsDim;
    const report: AlignmentReport = {
      rule: `inside an episode, next_observations[i] = observations[i+1] (|a − b| ≤ ${atol} + ${rtol}·|b|)`,
      checked: 0,
      mismatches: 0,
      rows: [],
      maxAbsDiff: 0,
    };
    for (const ep of this.episodes()) {
      for (let i = ep.start; i < ep.end - 1; i++) {
        report.checked++;
        let worst = 0;
        let bad = false;
        for (let j = 0; j < od; j++) {
          const a = this.next_observations[i * od + j];
          const b = this.observations[(i + 1) * od + j];
          const d = Math.abs(a - b);
          if (d > atol + rtol * Math.abs(b)) bad = true;
          if (d > worst) worst = d;
        }
        if (bad) {
          report.mismatches++;
          if (report.rows.length < 10) report.rows.push(i);
          if (worst > report.maxAbsDiff) report.maxAbsDiff = worst;
        }
      }
    }
    return report;
  }

  /** The columns in the ensemble trainer's shape (views, not copies). */
  toFitData(): FitData {
    return { obs: this.observations, act: this.actions, nextObs: this.next_observations, reward: this.rewards, n: this.size };
  }

  /**
   * The rows as a replay buffer, in order, episode k of `episodes()` with episode id k, stamps 0.
   * @param capacity default the dataset's size (at least 1)
   */
  toReplayBuffer(capacity = Math.max(1, this.size)): ReplayBuffer {
    if (!Number.isInteger(capacity) || capacity < this.size) {
      throw new ValidationError('OfflineDataset.toReplayBuffer', 'capacity', `expected an integer ≥ ${this.size} (the dataset's size), got ${describe(capacity)}`);
    }
    const buf = new ReplayBuffer({ capacity, obsDim: this.obsDim, actDim: this.actDim });
    const b = allocBatch(this.size, this.obsDim, this.actDim);
    b.obs.set(this.observations);
    b.action.set(this.actions);
    b.reward.set(this.rewards);
    b.nextObs.set(this.next_observations);
    b.terminated.set(this.terminals);
    b.truncated.set(this.timeouts);
    this.episodes().forEach((ep, k) => b.episodeId.fill(k, ep.start, ep.end));
    buf.addColumns(b);
    return buf;
  }

  /** Rows `start` to `end` (exclusive) as a new dataset (copies), with the same metadata. */
  slice(start: number, end: number = this.size): OfflineDataset {
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > this.size || start > end) {
      throw new ValidationError('OfflineDataset.slice', 'range', `expected 0 <= start <= end <= ${this.size}, got [${start}, ${end})`);
    }
    const { obsDim: od, actDim: ad } = this;
    return new OfflineDataset(
      {
        observations: this.observations.slice(start * od, end * od),
        actions: this.actions.slice(start * ad, end * ad),
        rewards: this.rewards.slice(start, end),
        next_observations: this.next_observations.slice(start * od, end * od),
        terminals: this.terminals.slice(start, end),
        timeouts: this.timeouts.slice(start, end),
      },
      { obsDim: od, actDim: ad, metadata: { ...this.metadata } },
    );
  }

  /**
   * The rows of a replay buffer as a dataset. Rows are grouped by episode id in order of first
   * appearance (a vectorised collector interleaves episodes; D4RL's layout needs them
   * contiguous), keeping each episode's row order. An episode that is followed by another but has
   * neither flag on its last row (it was cut without a flag) gets `timeouts` = 1 there, so the
   * boundary survives; the buffer's last episode keeps its flags (unfinished if none).
   */
  static fromReplayBuffer(buffer: ReplayBuffer, metadata: DatasetMetadata = {}): OfflineDataset {
    const n = buffer.size;
    const b = buffer.slice(0, n);
    const order: number[] = [];
    const rowsOf = new Map<number, number[]>();
    for (let i = 0; i < n; i++) {
      const id = b.episodeId[i];
      let rows = rowsOf.get(id);
      if (!rows) {
        rows = [];
        rowsOf.set(id, rows);
        order.push(id);
      }
      rows.push(i);
    }
    const { obsDim: od, actDim: ad } = buffer;
    const f = allocFields(n, od, ad);
    let r = 0;
    order.forEach((id, k) => {
      const rows = rowsOf.get(id) as number[];
      for (const i of rows) {
        f.observations.set(b.obs.subarray(i * od, (i + 1) * od), r * od);
        f.next_observations.set(b.nextObs.subarray(i * od, (i + 1) * od), r * od);
        f.actions.set(b.action.subarray(i * ad, (i + 1) * ad), r * ad);
        f.rewards[r] = b.reward[i];
        f.terminals[r] = b.terminated[i];
        f.timeouts[r] = b.truncated[i];
        r++;
      }
      if (k < order.length - 1 && f.terminals[r - 1] === 0 && f.timeouts[r - 1] === 0) f.timeouts[r - 1] = 1;
    });
    return new OfflineDataset(f, { obsDim: od, actDim: ad, metadata: { source: 'replay buffer', ...metadata }, where: 'OfflineDataset.fromReplayBuffer' });
  }

  /**
   * Datasets one after another (D4RL's medium-expert is medium + expert). Each part's unfinished
   * last episode gets `timeouts` = 1 on its last row, so episodes do not run across parts.
   * Metadata: the first part's, with `source` listing all parts' sources.
   */
  static concat(parts: readonly OfflineDataset[]): OfflineDataset {
    if (parts.length === 0) throw new ValidationError('OfflineDataset.concat', 'parts', 'expected at least one dataset');
    const { obsDim: od, actDim: ad } = parts[0];
    parts.forEach((p, k) => {
      if (p.obsDim !== od || p.actDim !== ad) {
        throw new ValidationError('OfflineDataset.concat', `parts[${k}]`, `expected obsDim ${od} and actDim ${ad} (as parts[0]), got ${p.obsDim} and ${p.actDim}`);
      }
    });
    const n = parts.reduce((s, p) => s + p.size, 0);
    const f = allocFields(n, od, ad);
    let r = 0;
    for (const p of parts) {
      f.observations.set(p.observations, r * od);
      f.next_observations.set(p.next_observations, r * od);
      f.actions.set(p.actions, r * ad);
      f.rewards.set(p.rewards, r);
      f.terminals.set(p.terminals, r);
      f.timeouts.set(p.timeouts, r);
      r += p.size;
      if (p.size > 0 && f.terminals[r - 1] === 0) f.timeouts[r - 1] = 1;
    }
    const sources = parts.map((p) => p.metadata.source ?? '?').join(' + ');
    return new OfflineDataset(f, { obsDim: od, actDim: ad, metadata: { ...parts[0].metadata, source: sources } });
  }
}

/** Zero-filled columns for `n` rows. */
export function allocFields(n: number, obsDim: number, actDim: number): DatasetFields {
  return {
    observations: new Float32Array(n * obsDim),
    actions: new Float32Array(n * actDim),
    rewards: new Float32Array(n),
    next_observations: new Float32Array(n * obsDim),
    terminals: new Uint8Array(n),
    timeouts: new Uint8Array(n),
  };
}

/**
 * `next_observations` for columns that lack it: row i's is row i+1's observation when both are in
 * one episode; the last row of each episode, which has no next observation, is dropped and its
 * predecessor ends the episode with `timeouts` = 1 (cut, since s'_i is a real state, not a
 * terminal one). When the data stop mid-episode, the new last row stays unflagged (unfinished).
 */
export function nextFromFollowingRow(f: DatasetFields, obsDim: number, actDim: number): { fields: DatasetFields; dropped: number } {
  const n = f.rewards.length;
  const keep: number[] = [];
  const endsEpisode = (i: number): boolean => f.terminals[i] === 1 || f.timeouts[i] === 1;
  for (let i = 0; i < n; i++) if (i + 1 < n && !endsEpisode(i)) keep.push(i);
  const out = allocFields(keep.length, obsDim, actDim);
  keep.forEach((i, r) => {
    out.observations.set(f.observations.subarray(i * obsDim, (i + 1) * obsDim), r * obsDim);
    out.next_observations.set(f.observations.subarray((i + 1) * obsDim, (i + 2) * obsDim), r * obsDim);
    out.actions.set(f.actions.subarray(i * actDim, (i + 1) * actDim), r * actDim);
    out.rewards[r] = f.rewards[i];
    // The row after i ended an episode and is dropped: i now ends it, cut rather than terminal
    // (s'_i is a real state, not a terminal one).
    out.timeouts[r] = endsEpisode(i + 1) ? 1 : 0;
  });
  return { fields: out, dropped: n - keep.length };
}

/**
 * Checks D4RL columns: array types, lengths that agree with one row count N and the dims,
 * finite floats, 0/1 flags.
 * @returns N
 * @throws ValidationError naming the field with its row (and column), e.g.
 *   `observations[12][3]: expected a finite number, got NaN`
 */
export function validateDatasetFields(fields: DatasetFields, obsDim: number, actDim: number, where: string): number {
  for (const [key, v] of [['obsDim', obsDim], ['actDim', actDim]] as const) {
    if (!Number.isInteger(v) || v <= 0) throw new ValidationError(where, key, `expected a positive integer, got ${describe(v)}`);
  }
  if (fields === null || typeof fields !== 'object') throw new ValidationError(where, 'fields', `expected an object with ${DATASET_FIELDS.join(', ')}, got ${describe(fields)}`);
  const width: Record<(typeof DATASET_FIELDS)[number], number> = { observations: obsDim, actions: actDim, rewards: 1, next_observations: obsDim, terminals: 1, timeouts: 1 };
  for (const name of DATASET_FIELDS) {
    const col = fields[name];
    const ctor = name === 'terminals' || name === 'timeouts' ? Uint8Array : Float32Array;
    if (!(col instanceof ctor)) throw new ValidationError(where, name, `expected a ${ctor.name}, got ${describe(col)}`);
    if (col.length % width[name] !== 0) throw new ValidationError(where, name, `expected a length divisible by ${width[name]} (rows × width), got ${col.length}`);
  }
  const n = fields.rewards.length;
  for (const name of DATASET_FIELDS) {
    const rows = fields[name].length / width[name];
    if (rows !== n) {
      throw new ValidationError(where, name, `expected ${n} rows (as rewards) of width ${width[name]}, got ${rows} rows (length ${fields[name].length})`);
    }
  }
  for (const name of ['observations', 'actions', 'next_observations', 'rewards'] as const) {
    const col = fields[name];
    const w = width[name];
    for (let k = 0; k < col.length; k++) {
      if (!Number.isFinite(col[k])) {
        const row = Math.floor(k / w);
        throw new ValidationError(where, w === 1 ? `${name}[${row}]` : `${name}[${row}][${k % w}]`, `expected a finite number, got ${describe(col[k])} (row ${row})`);
      }
    }
  }
  for (const name of ['terminals', 'timeouts'] as const) {
    const col = fields[name];
    for (let i = 0; i < n; i++) {
      if (col[i] > 1) throw new ValidationError(where, `${name}[${i}]`, `expected 0 or 1, got ${col[i]} (row ${i})`);
    }
  }
  return n;
}

function cleanMetadata(m: DatasetMetadata): DatasetMetadata {
  const out: DatasetMetadata = {};
  for (const [k, v] of Object.entries(m)) {
    if (v === undefined) continue;
    if (typeof v !== 'string') throw new ValidationError('OfflineDataset', `metadata.${k}`, `expected a string, got ${describe(v)}`);
    out[k] = v;
  }
  return out;
}
