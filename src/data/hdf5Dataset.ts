/**
 * D4RL-format HDF5 files, read and written with h5wasm (the HDF5 C library compiled to
 * WebAssembly; its Node build reads the host file system directly).
 *
 * ## Layout (D4RL's, https://github.com/Farama-Foundation/D4RL)
 * Top-level datasets, N rows each:
 * - `observations` [N, obsDim], `actions` [N, actDim], `next_observations` [N, obsDim]: floats
 * - `rewards` [N]: float
 * - `terminals` [N], `timeouts` [N]: 0/1 flags
 * - `metadata/<key>`: scalar string datasets (e.g. `metadata/env_id`); string attributes on the
 *   root group are read as metadata too
 *
 * Written as float32 and uint8 (h5py reads uint8 flags as numbers; D4RL code uses them as
 * truth values, which works). Read: any integer or float type for the columns (float64 is
 * converted to float32 and must fit), h5py's boolean enum or any 0/1 numbers for the flags.
 * Other top-level entries (`infos/…`, D4RL's `metadata/policy/…` weights) are ignored and listed
 * in the notes.
 *
 * Files without `next_observations` (D4RL v0 datasets) get it from the next row of the same
 * episode; the last row of every episode has no next observation and is dropped (its
 * predecessor then ends the episode with `timeouts` = 1). D4RL's `qlearning_dataset` instead
 * pairs a terminal row with the next episode's first observation, which teaches a dynamics
 * model a jump that never happens.
 */
import { constants } from 'node:fs';
import { access, mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type * as H5Module from 'h5wasm/node';
import { ValidationError, describe } from '../core/errors.js';
import { writeFileAtomic } from './atomicWrite.js';
import type { DatasetFields, DatasetLoadResult, DatasetMetadata } from './dataset.js';
import { OfflineDataset, nextFromFollowingRow } from './dataset.js';

type H5 = typeof H5Module;
type H5Dataset = InstanceType<H5['Dataset']>;
type H5Group = InstanceType<H5['Group']>;

let h5Loaded: Promise<H5> | undefined;

/** h5wasm's Node build, loaded (and its WebAssembly compiled) on first use. */
async function h5(): Promise<H5> {
  h5Loaded ??= import('h5wasm/node').then(async (m) => {
    await m.ready;
    return m;
  });
  return h5Loaded;
}

const HDF5_SIGNATURE = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a];

/** Options of `saveHdf5Dataset`. */
export interface SaveHdf5Options {
  /** gzip level 1–9 for the columns (chunked by rows), or 0 for none. Default 0. */
  compression?: number;
}

/**
 * Reads a D4RL-format HDF5 file (layout and conversions in the file comment).
 * @returns the dataset and notes (conversions, ignored entries, rows dropped)
 * @throws ValidationError naming the file, the field, the row and the value: a missing column,
 *   a wrong shape, a non-finite value, a flag other than 0/1, a value that overflows float32
 * @example const { dataset, notes } = await loadHdf5Dataset('halfcheetah-medium-v2.hdf5');
 */
export async function loadHdf5Dataset(path: string): Promise<DatasetLoadResult> {
  const where = `loadHdf5Dataset(${path})`;
  await access(path, constants.R_OK);
  await checkSignature(path, where);
  const { File, Dataset, Group } = await h5();
  let file: InstanceType<H5['File']>;
  try {
    file = new File(resolve(path), 'r');
  } catch (err) {
    throw new ValidationError(where, 'file', `not a readable HDF5 file (${String(err)})`);
  }
  try {
    const notes: string[] = [];
    const keys = file.keys();
    const get = (name: string, required: boolean): H5Dataset | null => {
      const e = file.get(name);
      if (e === null) {
        if (required) throw new ValidationError(where, name, `missing (the file has: ${keys.join(', ')})`);
        return null;
      }
      if (!(e instanceof Dataset)) throw new ValidationError(where, name, `expected a dataset, got a ${e.constructor.name}`);
      return e;
    };
    const obsD = get('observations', true) as H5Dataset;
    const actD = get('actions', true) as H5Dataset;
    const rewD = get('rewards', true) as H5Dataset;
    const termD = get('terminals', true) as H5Dataset;
    const toutD = get('timeouts', false);
    const nextD = get('next_observations', false);

    const obsShape = matrixShape(obsD, 'observations', where);
    const n = obsShape[0];
    const obsDim = obsShape[1];
    const actShape = matrixShape(actD, 'actions', where);
    expectRows(actShape[0], n, 'actions', where);
    expectRows(vectorLength(rewD, 'rewards', where), n, 'rewards', where);
    expectRows(vectorLength(termD, 'terminals', where), n, 'terminals', where);
    if (toutD) expectRows(vectorLength(toutD, 'timeouts', where), n, 'timeouts', where);
    else notes.push('no timeouts dataset: all 0');
    if (nextD) {
      const s = matrixShape(nextD, 'next_observations', where);
      if (s[0] !== n || s[1] !== obsDim) throw new ValidationError(where, 'next_observations', `expected shape [${n}, ${obsDim}] (as observations), got [${s.join(', ')}]`);
    }

    const f: DatasetFields = {
      observations: floatColumn(obsD, obsDim, 'observations', where, notes),
      actions: floatColumn(actD, actShape[1], 'actions', where, notes),
      rewards: floatColumn(rewD, 1, 'rewards', where, notes),
      next_observations: nextD ? floatColumn(nextD, obsDim, 'next_observations', where, notes) : new Float32Array(n * obsDim),
      terminals: flagColumn(termD, 'terminals', where),
      timeouts: toutD ? flagColumn(toutD, 'timeouts', where) : new Uint8Array(n),
    };
    const metadata = readMetadata(file, Dataset, Group, notes);
    const known = new Set(['observations', 'actions', 'rewards', 'terminals', 'timeouts', 'next_observations', 'metadata']);
    const ignored = keys.filter((k) => !known.has(k));
    if (ignored.length > 0) notes.push(`ignored: ${ignored.join(', ')}`);
    const opts = { obsDim, actDim: actShape[1], metadata: { source: path, ...metadata }, where };
    if (nextD) return { dataset: new OfflineDataset(f, opts), notes };
    const { fields, dropped } = nextFromFollowingRow(f, obsDim, actShape[1]);
    notes.push(`no next_observations dataset: taken from the next row of the same episode; the last row of each episode (${dropped} rows) has none and was dropped`);
    return { dataset: new OfflineDataset(fields, opts), notes };
  } finally {
    file.close();
  }
}

/**
 * Writes `dataset` as a D4RL-format HDF5 file (layout in the file comment), atomically: the file
 * is built in a private temporary directory, then `writeFileAtomic` puts it in place (temp file
 * beside `path`, fsync, rename), so readers see the old file or the whole new one. Creates the
 * parent directory if needed.
 * @example await saveHdf5Dataset(ds, 'data/pendulum-random.h5');
 */
export async function saveHdf5Dataset(dataset: OfflineDataset, path: string, options: SaveHdf5Options = {}): Promise<void> {
  const level = options.compression ?? 0;
  if (!Number.isInteger(level) || level < 0 || level > 9) throw new ValidationError('saveHdf5Dataset', 'options.compression', `expected an integer in [0, 9], got ${describe(level)}`);
  const { File } = await h5();
  const work = await mkdtemp(join(tmpdir(), 'mbrl-h5-'));
  try {
    const tmp = join(work, 'dataset.h5');
    const file = new File(tmp, 'w');
    try {
      const n = dataset.size;
      const put = (name: string, data: Float32Array | Uint8Array, width: number | null): void => {
        const shape = width === null ? [n] : [n, width];
        const compress = level > 0 && n > 0 ? { chunks: width === null ? [Math.min(n, 65536)] : [Math.min(n, 16384), width], compression: level } : {};
        file.create_dataset({ name, data, shape, dtype: data instanceof Uint8Array ? '<B' : '<f', ...compress });
      };
      put('observations', dataset.observations, dataset.obsDim);
      put('actions', dataset.actions, dataset.actDim);
      put('rewards', dataset.rewards, null);
      put('next_observations', dataset.next_observations, dataset.obsDim);
      put('terminals', dataset.terminals, null);
      put('timeouts', dataset.timeouts, null);
      const meta = Object.entries(dataset.metadata).filter((e): e is [string, string] => typeof e[1] === 'string');
      if (meta.length > 0) {
        const group = file.create_group('metadata');
        for (const [k, v] of meta) group.create_dataset({ name: toSnake(k), data: v });
      }
    } finally {
      file.close();
    }
    const bytes = await readFile(tmp);
    await mkdir(dirname(resolve(path)), { recursive: true });
    await writeFileAtomic(path, bytes);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function checkSignature(path: string, where: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    const buf = new Uint8Array(8);
    const { bytesRead } = await fh.read(buf, 0, 8, 0);
    // HDF5 files may start with a user block (512, 1024, … bytes); h5wasm checks those.
    if (bytesRead < 8) throw new ValidationError(where, 'file', `not an HDF5 file (${bytesRead} bytes)`);
    if (HDF5_SIGNATURE.every((b, i) => buf[i] === b)) return;
    if (buf[0] === 0x7b || buf[0] === 0x5b) throw new ValidationError(where, 'file', 'not an HDF5 file (it looks like JSON; use --from jsonl)');
  } finally {
    await fh.close();
  }
}

function matrixShape(d: H5Dataset, name: string, where: string): [number, number] {
  const s = d.shape;
  if (s === null || s.length < 1 || s.length > 2) throw new ValidationError(where, name, `expected shape [N, dim] or [N], got ${s === null ? 'null' : `[${s.join(', ')}]`}`);
  return [s[0], s.length === 2 ? s[1] : 1];
}

function vectorLength(d: H5Dataset, name: string, where: string): number {
  const s = d.shape;
  if (s === null || !(s.length === 1 || (s.length === 2 && s[1] === 1))) throw new ValidationError(where, name, `expected shape [N], got ${s === null ? 'null' : `[${s.join(', ')}]`}`);
  return s[0];
}

function expectRows(rows: number, n: number, name: string, where: string): void {
  if (rows !== n) throw new ValidationError(where, name, `expected ${n} rows (as observations), got ${rows}`);
}

function numericValue(d: H5Dataset, name: string, where: string): ArrayLike<number | bigint> {
  const v = d.value;
  if (!ArrayBuffer.isView(v) || v instanceof DataView) {
    throw new ValidationError(where, name, `expected a numeric dataset, got dtype ${JSON.stringify(d.dtype)} (${describe(v)})`);
  }
  return v as unknown as ArrayLike<number | bigint>;
}

function floatColumn(d: H5Dataset, width: number, name: string, where: string, notes: string[]): Float32Array {
  const v = numericValue(d, name, where);
  if (v instanceof Float32Array) return v;
  notes.push(`${name}: ${d.dtype} converted to float32`);
  const out = new Float32Array(v.length);
  for (let k = 0; k < v.length; k++) {
    const x = Number(v[k]);
    out[k] = x;
    if (Number.isFinite(x) && !Number.isFinite(out[k])) {
      const row = Math.floor(k / width);
      throw new ValidationError(where, width === 1 ? `${name}[${row}]` : `${name}[${row}][${k % width}]`, `expected a number representable as float32, got ${x} (row ${row})`);
    }
  }
  return out;
}

function flagColumn(d: H5Dataset, name: string, where: string): Uint8Array {
  const v = numericValue(d, name, where);
  const out = new Uint8Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const x = Number(v[i]);
    if (x !== 0 && x !== 1) throw new ValidationError(where, `${name}[${i}]`, `expected 0 or 1 (a boolean), got ${describe(x)} (row ${i})`);
    out[i] = x;
  }
  return out;
}

function readMetadata(file: H5Group, Dataset: H5['Dataset'], Group: H5['Group'], notes: string[]): DatasetMetadata {
  const out: DatasetMetadata = {};
  for (const [k, a] of Object.entries(file.attrs)) {
    const v = a.value;
    if (typeof v === 'string' || typeof v === 'number') out[toCamel(k)] = String(v);
  }
  const g = file.get('metadata');
  if (g instanceof Group) {
    const skipped: string[] = [];
    for (const k of g.keys()) {
      const e = g.get(k);
      const v = e instanceof Dataset && (e.shape?.length ?? 0) === 0 ? e.value : undefined;
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[toCamel(k)] = String(v);
      else skipped.push(`metadata/${k}`);
    }
    if (skipped.length > 0) notes.push(`metadata entries that are not scalars ignored: ${skipped.join(', ')}`);
  }
  return out;
}

function toSnake(k: string): string {
  return k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function toCamel(k: string): string {
  return k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}
