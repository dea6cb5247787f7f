/**
 * Replay buffers on disk: `saveBuffer`, `loadBuffer`, and the append-only `BufferWriter` for
 * recording live.
 *
 * ## On-disk format, version 1 (also in docs/buffer-format.md)
 *
 * A buffer is a directory holding `manifest.json` and segment files `segment-NNNNNN.bin`
 * (a zero-padded decimal number, at least 6 digits). The manifest is the source of truth:
 * only the segments it lists, in its order, are the buffer's rows (oldest first).
 *
 * ```json
 * {
 *   "format": "mbrl-node.replay-buffer",
 *   "version": 1,
 *   "byteOrder": "little-endian",
 *   "obsDim": 3,
 *   "actDim": 1,
 *   "rowBytes": 46,
 *   "rows": 5000,
 *   "nextEpisodeId": 25,
 *   "columns": [
 *     { "name": "stampNs",    "dtype": "int64",   "shape": [] },
 *     { "name": "obs",        "dtype": "float32", "shape": [3] },
 *     { "name": "action",     "dtype": "float32", "shape": [1] },
 *     { "name": "reward",     "dtype": "float32", "shape": [] },
 *     { "name": "nextObs",    "dtype": "float32", "shape": [3] },
 *     { "name": "episodeId",  "dtype": "uint32",  "shape": [] },
 *     { "name": "terminated", "dtype": "uint8",   "shape": [] },
 *     { "name": "truncated",  "dtype": "uint8",   "shape": [] }
 *   ],
 *   "segments": [
 *     { "file": "segment-000000.bin", "rows": 4096, "byteLength": 188416, "crc32": 2914016215 },
 *     { "file": "segment-000001.bin", "rows": 904,  "byteLength": 41584,  "crc32": 117000512 }
 *   ]
 * }
 * ```
 *
 * - `shape` is the per-row shape (`[]` for a scalar). `rowBytes` is the bytes of one row over all
 *   columns: 8 + 4·obsDim + 4·actDim + 4 + 4·obsDim + 4 + 1 + 1.
 * - A segment file holds its `rows` rows column after column, in the manifest's column order;
 *   within a column, rows are consecutive and a vector row is its entries in order (row-major).
 *   All values are little-endian. The column order (8-byte, then 4-byte, then 1-byte columns)
 *   keeps every column naturally aligned. There is no header or padding:
 *   `byteLength = rows · rowBytes`.
 * - `crc32` is the CRC-32 (IEEE, as zlib/gzip/PNG) of the whole segment file, unsigned.
 * - `stampNs` is integer nanoseconds (two's-complement int64); flags are 0 or 1; floats are
 *   finite IEEE-754 binary32; `episodeId` is an opaque uint32 label.
 * - `nextEpisodeId` is greater than every episode id in the listed segments; a writer appending
 *   to the directory numbers new episodes from it.
 *
 * Writes are atomic (`writeFileAtomic`: temp file, fsync, rename, fsync the directory). A
 * segment is written first, then the manifest that lists it, so a crash loses at most the
 * segment being written (and rows not yet made into a segment); it never leaves a manifest
 * pointing at a partial file. A segment on disk but not in the manifest (a crash between the
 * two writes) and leftover `*.tmp-*` files are reported as warnings and ignored when loading.
 *
 * Loading checks the format name and version, the dimensions and column list, and every
 * segment's existence, byte length and CRC before returning anything, and throws
 * `BufferFormatError` naming the file and the problem.
 *
 * Readers must ignore manifest keys they do not know; a change that old readers would
 * misread increments `version`.
 */
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ValidationError, describe } from '../core/errors.js';
import { TEMP_FILE_PATTERN, writeFileAtomic } from './atomicWrite.js';
import { crc32 } from './crc32.js';
import { ReplayBuffer } from './replayBuffer.js';
import type { Batch, Transition } from './transition.js';
import { EpisodeIdAssigner, allocBatch, batchView, validateTransition } from './transition.js';

/** The manifest's `format` value. */
export const BUFFER_FORMAT = 'mbrl-node.replay-buffer';
/** The format version this code writes and reads. */
export const BUFFER_FORMAT_VERSION = 1;
/** The manifest's file name inside a buffer directory. */
export const MANIFEST_FILE = 'manifest.json';
/** Rows per segment file unless told otherwise. */
export const DEFAULT_SEGMENT_ROWS = 4096;

const SEGMENT_PATTERN = /^segment-(\d{6,})\.bin$/;

/** The element type of a column. */
export type ColumnDtype = 'float32' | 'uint32' | 'int64' | 'uint8';

/** One column of the format: its name, element type and per-row shape. */
export interface ColumnSpec {
  name: 'stampNs' | 'obs' | 'action' | 'reward' | 'nextObs' | 'episodeId' | 'terminated' | 'truncated';
  dtype: ColumnDtype;
  /** Per-row shape: `[]` for a scalar, `[n]` for a vector. */
  shape: number[];
}

/** One segment file as the manifest lists it. */
export interface SegmentInfo {
  file: string;
  rows: number;
  byteLength: number;
  /** CRC-32 of the whole file, unsigned. */
  crc32: number;
}

/** The parsed `manifest.json` (see the format description at the top of this file). */
export interface BufferManifest {
  format: typeof BUFFER_FORMAT;
  version: typeof BUFFER_FORMAT_VERSION;
  byteOrder: 'little-endian';
  obsDim: number;
  actDim: number;
  rowBytes: number;
  rows: number;
  nextEpisodeId: number;
  columns: ColumnSpec[];
  segments: SegmentInfo[];
}

/** What was wrong with a buffer directory. */
export type BufferFormatProblem = 'missing' | 'truncated' | 'size' | 'checksum' | 'version' | 'format' | 'manifest' | 'data';

/**
 * A buffer directory that cannot be loaded: a missing or invalid manifest, an unknown format
 * version, a missing, truncated or corrupt segment.
 */
export class BufferFormatError extends Error {
  /** The offending file's path. */
  readonly file: string;
  /** The kind of problem, for programs; the message says it for people. */
  readonly problem: BufferFormatProblem;
  constructor(file: string, problem: BufferFormatProblem, message: string, options?: { cause?: unknown }) {
    super(`${file}: ${message}`, options);
    this.name = 'BufferFormatError';
    this.file = file;
    this.problem = problem;
  }
}

const DTYPE_BYTES: Record<ColumnDtype, number> = { float32: 4, uint32: 4, int64: 8, uint8: 1 };

/** The column list of format version 1 for the given dimensions, in on-disk order. */
export function expectedColumns(obsDim: number, actDim: number): ColumnSpec[] {
  return [
    { name: 'stampNs', dtype: 'int64', shape: [] },
    { name: 'obs', dtype: 'float32', shape: [obsDim] },
    { name: 'action', dtype: 'float32', shape: [actDim] },
    { name: 'reward', dtype: 'float32', shape: [] },
    { name: 'nextObs', dtype: 'float32', shape: [obsDim] },
    { name: 'episodeId', dtype: 'uint32', shape: [] },
    { name: 'terminated', dtype: 'uint8', shape: [] },
    { name: 'truncated', dtype: 'uint8', shape: [] },
  ];
}

/** Bytes per row over all columns. */
export function rowBytes(obsDim: number, actDim: number): number {
  return expectedColumns(obsDim, actDim).reduce((sum, c) => sum + DTYPE_BYTES[c.dtype] * perRow(c), 0);
}

function perRow(c: ColumnSpec): number {
  return c.shape.reduce((a, b) => a * b, 1);
}

/** The file name of segment number `index`. */
export function segmentFileName(index: number): string {
  return `segment-${String(index).padStart(6, '0')}.bin`;
}

// ---------------------------------------------------------------------------------------------
// Encoding (pure: bytes in, bytes out)

type Column = Float32Array | Uint32Array | BigInt64Array | Uint8Array;

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * The bytes of one segment file holding every row of `batch`.
 * @example await writeFileAtomic(path, encodeSegment(buffer.slice(0, 4096)));
 */
export function encodeSegment(batch: Batch): Uint8Array {
  const cols = expectedColumns(batch.obsDim, batch.actDim);
  const out = new Uint8Array(batch.size * rowBytes(batch.obsDim, batch.actDim));
  const view = new DataView(out.buffer);
  let off = 0;
  for (const c of cols) {
    const n = batch.size * perRow(c);
    const src = (batch[c.name] as Column).subarray(0, n);
    if (LITTLE_ENDIAN_HOST || c.dtype === 'uint8') {
      out.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength), off);
    } else {
      for (let i = 0; i < n; i++) setLE(view, off + i * DTYPE_BYTES[c.dtype], c.dtype, src[i]);
    }
    off += n * DTYPE_BYTES[c.dtype];
  }
  return out;
}

/**
 * Decodes a segment file's bytes into a new batch. The length must be a whole number of rows.
 * @throws RangeError if `bytes.length` is not a multiple of the row size
 */
export function decodeSegment(bytes: Uint8Array, obsDim: number, actDim: number): Batch {
  const rb = rowBytes(obsDim, actDim);
  if (bytes.length % rb !== 0) throw new RangeError(`decodeSegment: ${bytes.length} bytes is not a multiple of the row size ${rb}`);
  const batch = allocBatch(bytes.length / rb, obsDim, actDim);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let off = 0;
  for (const c of expectedColumns(obsDim, actDim)) {
    const dst = batch[c.name] as Column;
    const nBytes = dst.length * DTYPE_BYTES[c.dtype];
    if (LITTLE_ENDIAN_HOST || c.dtype === 'uint8') {
      new Uint8Array(dst.buffer, dst.byteOffset, nBytes).set(bytes.subarray(off, off + nBytes));
    } else {
      for (let i = 0; i < dst.length; i++) dst[i] = getLE(view, off + i * DTYPE_BYTES[c.dtype], c.dtype) as never;
    }
    off += nBytes;
  }
  return batch;
}

function setLE(view: DataView, at: number, dtype: ColumnDtype, v: number | bigint): void {
  if (dtype === 'float32') view.setFloat32(at, v as number, true);
  else if (dtype === 'uint32') view.setUint32(at, v as number, true);
  else if (dtype === 'int64') view.setBigInt64(at, v as bigint, true);
  else view.setUint8(at, v as number);
}

function getLE(view: DataView, at: number, dtype: ColumnDtype): number | bigint {
  if (dtype === 'float32') return view.getFloat32(at, true);
  if (dtype === 'uint32') return view.getUint32(at, true);
  if (dtype === 'int64') return view.getBigInt64(at, true);
  return view.getUint8(at);
}

// ---------------------------------------------------------------------------------------------
// Manifest (pure: text in, validated object out)

/** A manifest for the given dims and segments. */
export function makeManifest(obsDim: number, actDim: number, segments: SegmentInfo[], nextEpisodeId: number): BufferManifest {
  return {
    format: BUFFER_FORMAT,
    version: BUFFER_FORMAT_VERSION,
    byteOrder: 'little-endian',
    obsDim,
    actDim,
    rowBytes: rowBytes(obsDim, actDim),
    rows: segments.reduce((s, g) => s + g.rows, 0),
    nextEpisodeId,
    columns: expectedColumns(obsDim, actDim),
    segments,
  };
}

function serializeManifest(m: BufferManifest): string {
  return `${JSON.stringify(m, null, 2)}\n`;
}

/**
 * Parses and checks a manifest: JSON syntax, format name, version, every key's type, the column
 * list, each segment's byte length against its rows, unique file names, the row total.
 * @param file the path used in error messages
 * @throws BufferFormatError naming `file`, the key and the problem
 */
export function parseManifest(text: string, file = MANIFEST_FILE): BufferManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new BufferFormatError(file, 'manifest', `manifest JSON invalid: ${(err as Error).message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new BufferFormatError(file, 'manifest', `manifest JSON invalid: expected an object, got ${describe(raw)}`);
  }
  const obj = raw as Record<string, unknown>;
  if (obj.format !== BUFFER_FORMAT) {
    throw new BufferFormatError(file, 'format', `not a replay buffer manifest: format is ${describe(obj.format)}, expected "${BUFFER_FORMAT}"`);
  }
  if (obj.version !== BUFFER_FORMAT_VERSION) {
    throw new BufferFormatError(file, 'version', `unknown version ${describe(obj.version)}: this reader reads version ${BUFFER_FORMAT_VERSION}`);
  }
  const bad = (key: string, msg: string): never => {
    throw new BufferFormatError(file, 'manifest', `manifest invalid at ${key}: ${msg}`);
  };
  const int = (v: unknown, key: string, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) {
      bad(key, `expected an integer in [${min}, ${max}], got ${describe(v)}`);
    }
    return v as number;
  };
  if (obj.byteOrder !== 'little-endian') bad('byteOrder', `expected "little-endian", got ${describe(obj.byteOrder)}`);
  const obsDim = int(obj.obsDim, 'obsDim', 1);
  const actDim = int(obj.actDim, 'actDim', 1);
  const rb = rowBytes(obsDim, actDim);
  if (obj.rowBytes !== rb) bad('rowBytes', `expected ${rb} for obsDim ${obsDim}, actDim ${actDim}, got ${describe(obj.rowBytes)}`);
  const rows = int(obj.rows, 'rows', 0);
  const nextEpisodeId = int(obj.nextEpisodeId, 'nextEpisodeId', 0, 0xffffffff);
  const columns = expectedColumns(obsDim, actDim);
  if (!Array.isArray(obj.columns)) bad('columns', `expected an array, got ${describe(obj.columns)}`);
  const gotCols = obj.columns as unknown[];
  if (gotCols.length !== columns.length) bad('columns', `expected ${columns.length} columns, got ${gotCols.length}`);
  columns.forEach((c, i) => {
    const g = gotCols[i] as Partial<ColumnSpec> | null;
    if (g === null || typeof g !== 'object' || g.name !== c.name || g.dtype !== c.dtype || JSON.stringify(g.shape) !== JSON.stringify(c.shape)) {
      bad(`columns[${i}]`, `expected ${JSON.stringify(c)} (format version ${BUFFER_FORMAT_VERSION}, obsDim ${obsDim}, actDim ${actDim}), got ${JSON.stringify(g)}`);
    }
  });
  if (!Array.isArray(obj.segments)) bad('segments', `expected an array, got ${describe(obj.segments)}`);
  const segments: SegmentInfo[] = [];
  const seen = new Set<string>();
  let total = 0;
  (obj.segments as unknown[]).forEach((raw, i) => {
    const key = `segments[${i}]`;
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) bad(key, `expected an object, got ${describe(raw)}`);
    const g = raw as Record<string, unknown>;
    // The pattern also keeps a crafted manifest from naming files outside the directory.
    if (typeof g.file !== 'string' || !SEGMENT_PATTERN.test(g.file)) bad(`${key}.file`, `expected a name like "segment-000000.bin", got ${describe(g.file)}`);
    const segFile = g.file as string;
    if (seen.has(segFile)) bad(`${key}.file`, `${segFile} is listed twice`);
    seen.add(segFile);
    const segRows = int(g.rows, `${key}.rows`, 1);
    const byteLength = int(g.byteLength, `${key}.byteLength`, 1);
    if (byteLength !== segRows * rb) bad(`${key}.byteLength`, `expected ${segRows} rows × ${rb} bytes = ${segRows * rb}, got ${byteLength}`);
    const crc = int(g.crc32, `${key}.crc32`, 0, 0xffffffff);
    segments.push({ file: segFile, rows: segRows, byteLength, crc32: crc });
    total += segRows;
  });
  if (rows !== total) bad('rows', `expected the segments' total ${total}, got ${rows}`);
  return {
    format: BUFFER_FORMAT,
    version: BUFFER_FORMAT_VERSION,
    byteOrder: 'little-endian',
    obsDim,
    actDim,
    rowBytes: rb,
    rows,
    nextEpisodeId,
    columns,
    segments,
  };
}

// ---------------------------------------------------------------------------------------------
// Directory I/O (small functions; everything above is pure)

/**
 * Reads and checks `dir/manifest.json`.
 * @throws BufferFormatError if it is missing or invalid
 */
export async function readManifest(dir: string): Promise<BufferManifest> {
  const file = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new BufferFormatError(file, 'missing', 'missing: no manifest.json (not a replay buffer directory, or nothing was ever written)');
    }
    throw err;
  }
  return parseManifest(text, file);
}

/** Reads one segment and checks its existence, byte length and CRC against the manifest. */
async function readSegment(dir: string, seg: SegmentInfo): Promise<Uint8Array> {
  const file = join(dir, seg.file);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new BufferFormatError(file, 'missing', `missing: segment listed in ${MANIFEST_FILE} (${seg.rows} rows) does not exist`);
    }
    throw err;
  }
  if (bytes.length < seg.byteLength) {
    throw new BufferFormatError(file, 'truncated', `truncated: expected ${seg.byteLength} bytes, got ${bytes.length}`);
  }
  if (bytes.length > seg.byteLength) {
    throw new BufferFormatError(file, 'size', `wrong size: expected ${seg.byteLength} bytes, got ${bytes.length} (trailing data)`);
  }
  const actual = crc32(bytes);
  if (actual !== seg.crc32) {
    throw new BufferFormatError(file, 'checksum', `checksum mismatch: manifest says crc32 ${hex(seg.crc32)}, file has ${hex(actual)} (the file is corrupt)`);
  }
  return bytes;
}

function hex(x: number): string {
  return `0x${x.toString(16).padStart(8, '0')}`;
}

/** Segment files on disk but not in the manifest, and leftover temp files, as warnings. */
function strayWarnings(names: readonly string[], manifest: BufferManifest): string[] {
  const listed = new Set(manifest.segments.map((s) => s.file));
  const warnings: string[] = [];
  for (const name of [...names].sort()) {
    if (SEGMENT_PATTERN.test(name) && !listed.has(name)) {
      warnings.push(`${name}: on disk but not in ${MANIFEST_FILE} (a write interrupted before the manifest was updated); ignored`);
    } else if (TEMP_FILE_PATTERN.test(name)) {
      warnings.push(`${name}: leftover temporary file (an interrupted write); ignored`);
    }
  }
  return warnings;
}

/** One more than the largest segment number among `names` (0 if none). */
function nextSegmentIndex(names: readonly string[], manifest?: BufferManifest): number {
  let next = 0;
  for (const name of [...names, ...(manifest?.segments.map((s) => s.file) ?? [])]) {
    const m = SEGMENT_PATTERN.exec(name);
    if (m) next = Math.max(next, Number(m[1]) + 1);
  }
  return next;
}

// ---------------------------------------------------------------------------------------------
// Save and load

/** Options of `saveBuffer`. */
export interface SaveBufferOptions {
  /** Rows per segment file. Default 4096 (`DEFAULT_SEGMENT_ROWS`). */
  segmentRows?: number;
  /**
   * Replace a buffer already saved in `dir`. Default false: refuse. The new segments get new
   * file names and the manifest switches to them atomically; the old segment files are then
   * deleted, so a crash leaves either the old buffer or the new one (plus stray warnings).
   */
  overwrite?: boolean;
}

/**
 * Saves every row of `buffer` (oldest first) to `dir`, creating it if needed.
 * @returns the manifest written
 * @example await saveBuffer(buf, 'runs/pendulum/buffer', { overwrite: true });
 */
export async function saveBuffer(buffer: ReplayBuffer, dir: string, options: SaveBufferOptions = {}): Promise<BufferManifest> {
  const { segmentRows = DEFAULT_SEGMENT_ROWS, overwrite = false } = options;
  checkSegmentRows(segmentRows, 'saveBuffer');
  await mkdir(dir, { recursive: true });
  const before = await readdir(dir);
  if (before.includes(MANIFEST_FILE) && !overwrite) {
    throw new ValidationError('saveBuffer', 'dir', `${dir} already holds a replay buffer (${MANIFEST_FILE}); pass { overwrite: true } to replace it`);
  }
  let index = nextSegmentIndex(before);
  const segments: SegmentInfo[] = [];
  for (let start = 0; start < buffer.size; start += segmentRows) {
    const bytes = encodeSegment(buffer.slice(start, Math.min(start + segmentRows, buffer.size)));
    const file = segmentFileName(index++);
    await writeFileAtomic(join(dir, file), bytes);
    segments.push({ file, rows: bytes.length / rowBytes(buffer.obsDim, buffer.actDim), byteLength: bytes.length, crc32: crc32(bytes) });
  }
  const manifest = makeManifest(buffer.obsDim, buffer.actDim, segments, buffer.nextEpisodeId);
  await writeFileAtomic(join(dir, MANIFEST_FILE), serializeManifest(manifest));
  if (overwrite) {
    for (const name of before) if (SEGMENT_PATTERN.test(name)) await rm(join(dir, name), { force: true });
  }
  return manifest;
}

/** Options of `loadBuffer`. */
export interface LoadBufferOptions {
  /**
   * Capacity of the returned buffer. Default: the number of rows saved (at least 1). A smaller
   * capacity keeps the newest rows.
   */
  capacity?: number;
}

/** What `loadBuffer` returns. */
export interface LoadedBuffer {
  buffer: ReplayBuffer;
  manifest: BufferManifest;
  /** Files that were ignored: segments not in the manifest, leftover temp files. */
  warnings: string[];
  /** Oldest rows left out because `capacity` was smaller than the rows saved. */
  skippedRows: number;
}

/**
 * Loads a buffer saved by `saveBuffer` or recorded by `BufferWriter`. Every listed segment is
 * checked (existence, byte length, CRC), including those older than `capacity` keeps, and
 * nothing is returned unless all pass. Episode numbering continues after the loaded ids.
 *
 * @throws BufferFormatError naming the file and the problem
 * @example
 * const { buffer, warnings } = await loadBuffer('runs/pendulum/buffer', { capacity: 100_000 });
 * for (const w of warnings) console.warn(w);
 */
export async function loadBuffer(dir: string, options: LoadBufferOptions = {}): Promise<LoadedBuffer> {
  const manifest = await readManifest(dir);
  const warnings = strayWarnings(await readdir(dir), manifest);
  const capacity = options.capacity ?? Math.max(1, manifest.rows);
  if (!Number.isInteger(capacity) || capacity <= 0) {
    throw new ValidationError('loadBuffer', 'capacity', `expected a positive integer, got ${describe(capacity)}`);
  }
  const buffer = new ReplayBuffer({ capacity, obsDim: manifest.obsDim, actDim: manifest.actDim });
  const skippedRows = Math.max(0, manifest.rows - capacity);
  let skip = skippedRows;
  for (const seg of manifest.segments) {
    const bytes = await readSegment(dir, seg);
    if (skip >= seg.rows) {
      skip -= seg.rows;
      continue;
    }
    const batch = decodeSegment(bytes, manifest.obsDim, manifest.actDim);
    try {
      buffer.addColumns(batchView(batch, skip, batch.size));
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      throw new BufferFormatError(join(dir, seg.file), 'data', `invalid data (checksum matches, so it was written so): ${err.field}: ${err.message}`, { cause: err });
    }
    skip = 0;
  }
  return { buffer, manifest, warnings, skippedRows };
}

function checkSegmentRows(segmentRows: number, where: string): void {
  if (!Number.isInteger(segmentRows) || segmentRows <= 0) {
    throw new ValidationError(where, 'segmentRows', `expected a positive integer, got ${describe(segmentRows)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Live recording

/** Options of `BufferWriter.open`. */
export interface BufferWriterOptions {
  obsDim: number;
  actDim: number;
  /** Rows per segment: a segment is written each time this many rows are appended. Default 4096. */
  segmentRows?: number;
  /**
   * `create` (default): start a new buffer; refuse a directory that already has a manifest.
   * `append`: continue the buffer in `dir` (dims must match; created if absent). Episode
   * numbering continues from the manifest's `nextEpisodeId`, and the first appended step
   * starts a new episode.
   */
  mode?: 'create' | 'append';
  /** Writes a file atomically. Default `writeFileAtomic`; tests pass one that fails to simulate a crash. */
  writeFile?: WriteFileFn;
}

/** Writes a whole file atomically (the signature of `writeFileAtomic`). */
export type WriteFileFn = (path: string, data: Uint8Array | string) => Promise<void>;

/**
 * Records transitions to a buffer directory as they happen (on a robot: from the control loop).
 *
 * `append` only validates and copies the row into memory (O(1), no I/O, never blocks the loop).
 * Every `segmentRows` rows, the rows become a segment that is written in the background:
 * segment file, then manifest, each atomically, one segment at a time in order. `flush()` also
 * writes the rows staged so far (a shorter segment) and waits until everything is on disk.
 *
 * Durability: after `flush()` resolves, every row appended before it survives a crash. A crash
 * otherwise loses the staged rows and any segment whose manifest update had not finished.
 *
 * If a background write fails, the writer stops: the error is thrown by the next `append`,
 * `flush` or `close`, and nothing more is written (the manifest still describes the rows that
 * were written before the failure).
 *
 * @example
 * const writer = await BufferWriter.open('runs/robot/buffer', { obsDim: 17, actDim: 6 });
 * onStep((t) => writer.append(t)); // stampNs from the robot's clock
 * await writer.close();
 */
export class BufferWriter {
  readonly dir: string;
  readonly obsDim: number;
  readonly actDim: number;
  readonly segmentRows: number;
  #staging: ReplayBuffer;
  #episodes = new EpisodeIdAssigner();
  #manifest: BufferManifest;
  #nextSegment: number;
  #writeFile: WriteFileFn;
  #chain: Promise<void> = Promise.resolve();
  #error: unknown = undefined;
  #closed = false;
  #appended = 0;

  private constructor(dir: string, manifest: BufferManifest, nextSegment: number, segmentRows: number, writeFile: WriteFileFn) {
    this.dir = dir;
    this.obsDim = manifest.obsDim;
    this.actDim = manifest.actDim;
    this.segmentRows = segmentRows;
    this.#manifest = manifest;
    this.#nextSegment = nextSegment;
    this.#writeFile = writeFile;
    this.#staging = new ReplayBuffer({ capacity: segmentRows, obsDim: manifest.obsDim, actDim: manifest.actDim });
    this.#episodes.reset(manifest.nextEpisodeId);
  }

  /**
   * Opens `dir` for recording (creating it), and writes an empty manifest in `create` mode so
   * the directory loads as an empty buffer from the start.
   * @throws ValidationError for bad options, an existing buffer in `create` mode, or dims that
   *   differ from the existing buffer's in `append` mode; BufferFormatError for a corrupt manifest
   */
  static async open(dir: string, options: BufferWriterOptions): Promise<BufferWriter> {
    const { obsDim, actDim, segmentRows = DEFAULT_SEGMENT_ROWS, mode = 'create', writeFile = writeFileAtomic } = options;
    for (const [key, v] of [['obsDim', obsDim], ['actDim', actDim]] as const) {
      if (!Number.isInteger(v) || v <= 0) throw new ValidationError('BufferWriter.open', key, `expected a positive integer, got ${describe(v)}`);
    }
    checkSegmentRows(segmentRows, 'BufferWriter.open');
    if (mode !== 'create' && mode !== 'append') {
      throw new ValidationError('BufferWriter.open', 'mode', `expected "create" or "append", got ${describe(mode)}`);
    }
    await mkdir(dir, { recursive: true });
    const names = await readdir(dir);
    let manifest: BufferManifest;
    if (names.includes(MANIFEST_FILE)) {
      if (mode === 'create') {
        throw new ValidationError('BufferWriter.open', 'dir', `${dir} already holds a replay buffer (${MANIFEST_FILE}); use mode "append" to continue it`);
      }
      manifest = await readManifest(dir);
      for (const [key, v] of [['obsDim', obsDim], ['actDim', actDim]] as const) {
        if (manifest[key] !== v) throw new ValidationError('BufferWriter.open', key, `the buffer in ${dir} has ${key} ${manifest[key]}, got ${v}`);
      }
    } else {
      manifest = makeManifest(obsDim, actDim, [], 0);
      await writeFile(join(dir, MANIFEST_FILE), serializeManifest(manifest));
    }
    return new BufferWriter(dir, manifest, nextSegmentIndex(names, manifest), segmentRows, writeFile);
  }

  /** Rows accepted by `append` since `open`. */
  get rowsAppended(): number {
    return this.#appended;
  }

  /** Rows in the manifest on disk (including those from before `open` in `append` mode). */
  get rowsOnDisk(): number {
    return this.#manifest.rows;
  }

  /** Segments in the manifest on disk. */
  get segmentCount(): number {
    return this.#manifest.segments.length;
  }

  /**
   * Validates and stages one transition; episode ids are assigned as in `ReplayBuffer`.
   * @throws ValidationError (nothing staged) as `ReplayBuffer.add`; Error if closed or a
   *   background write has failed
   */
  append(t: Transition): void {
    this.#checkUsable('append');
    validateTransition(t, this.obsDim, this.actDim, 'BufferWriter.append');
    const id = this.#episodes.peek(t.episodeId);
    this.#staging.add({ ...t, episodeId: id });
    this.#episodes.observe(id, t.terminated || t.truncated);
    this.#appended++;
    if (this.#staging.size === this.segmentRows) this.#enqueueSegment();
  }

  /** Writes the staged rows as a segment (if any) and waits for every pending write. */
  async flush(): Promise<void> {
    this.#checkUsable('flush');
    this.#enqueueSegment();
    await this.#chain;
    this.#throwIfFailed('flush');
  }

  /** Flushes and closes (also when it throws); later calls to `append` throw. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#error === undefined) this.#enqueueSegment();
    this.#closed = true;
    await this.#chain;
    this.#throwIfFailed('close');
  }

  #enqueueSegment(): void {
    if (this.#staging.size === 0) return;
    const bytes = encodeSegment(this.#staging.slice());
    const rows = this.#staging.size;
    this.#staging.clear();
    const nextEpisodeId = this.#episodes.nextId;
    const file = segmentFileName(this.#nextSegment++);
    this.#chain = this.#chain.then(async () => {
      if (this.#error !== undefined) return;
      try {
        await this.#writeFile(join(this.dir, file), bytes);
        const segment: SegmentInfo = { file, rows, byteLength: bytes.length, crc32: crc32(bytes) };
        const next = makeManifest(this.obsDim, this.actDim, [...this.#manifest.segments, segment], nextEpisodeId);
        await this.#writeFile(join(this.dir, MANIFEST_FILE), serializeManifest(next));
        this.#manifest = next;
      } catch (err) {
        this.#error = err;
      }
    });
  }

  #checkUsable(op: string): void {
    if (this.#closed) throw new Error(`BufferWriter.${op}: the writer for ${this.dir} is closed`);
    this.#throwIfFailed(op);
  }

  #throwIfFailed(op: string): void {
    if (this.#error !== undefined) {
      const msg = this.#error instanceof Error ? this.#error.message : String(this.#error);
      throw new Error(`BufferWriter.${op}: an earlier segment write to ${this.dir} failed, nothing more is written: ${msg}`, { cause: this.#error });
    }
  }
}
