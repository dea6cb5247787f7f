/**
 * The control node's experience on disk, in segments, so that a crash or power loss costs at most
 * the rows since the last segment. The directory is a replay buffer in the standard format
 * (`src/data/bufferStore.ts`, docs/buffer-format.md): `mbrl train --resume`, `loadBuffer` and
 * the dataset tools read it as any other.
 *
 * Writing: rows are staged in memory; every `segmentRows` (S) rows become one segment, written in
 * the background by `BufferWriter` (segment file, then the manifest that lists it, each through
 * `writeFileAtomic`: temp file, fsync, rename, fsync the directory). `append` never waits for the
 * disk, so the control loop is never held up.
 *
 * Recovering (`open`): the manifest's segments, each checked (size and CRC-32) by `loadBuffer`.
 * A crash between a segment's rename and the manifest's leaves that segment on disk but unlisted;
 * it is complete (it was renamed into place only after an fsync), so it is adopted: checked row by
 * row and appended to the manifest. Leftover temporary files (a write cut short) are deleted.
 *
 * Loss bound: a crash loses exactly the rows not yet committed (`uncommittedRows`): the staged
 * rows (fewer than S) plus the rows of segments whose writes had not finished. When the caller
 * waits for each segment (`whenWritten`) before appending more — or the disk keeps up, a write
 * taking less than S control periods — a crash after `total` appends leaves at least `total − S`
 * rows on disk. The last recovered episode ends where the crash cut it (its last row is not
 * marked truncated); the next appended row starts a new episode.
 */
import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ValidationError, describe } from '../core/errors.js';
import { TEMP_FILE_PATTERN, writeFileAtomic } from '../data/atomicWrite.js';
import {
  BufferWriter,
  MANIFEST_FILE,
  decodeSegment,
  loadBuffer,
  makeManifest,
  readManifest,
  rowBytes,
  type SegmentInfo,
  type WriteFileFn,
} from '../data/bufferStore.js';
import { crc32 } from '../data/crc32.js';
import type { ReplayBuffer } from '../data/replayBuffer.js';
import { type Transition, validateBatch, validateTransition } from '../data/transition.js';

const SEGMENT_PATTERN = /^segment-(\d{6,})\.bin$/;

/** Options of `BufferSegments.open`. */
export interface BufferSegmentsOptions {
  obsDim: number;
  actDim: number;
  /** S: rows per segment file. Default 1000 (20 s at 50 Hz). */
  segmentRows?: number;
  /** Capacity of the `recovered` buffer (the newest rows are kept). Default: every row on disk (at least 1). */
  recoverCapacity?: number;
  /** Writes a file atomically. Default `writeFileAtomic`; tests pass one that fails to simulate a crash. */
  writeFile?: WriteFileFn;
}

/** What `open` found and did. */
export interface SegmentRecovery {
  /** Rows recovered from disk (before `recoverCapacity` trimming). */
  rows: number;
  /** Segments listed in the manifest after recovery. */
  segments: number;
  /** A complete segment that the manifest did not list yet (crash between the two writes), now listed; else null. */
  adopted: string | null;
  /** Leftover temporary files that were deleted. */
  removedTempFiles: string[];
  /** Files left alone and ignored (e.g. an unlisted segment that failed its checks). */
  warnings: string[];
  /** Oldest rows not loaded into `recovered` because of `recoverCapacity`. */
  skippedRows: number;
}

/**
 * Appends the node's transitions to a segmented buffer directory and recovers it after a crash
 * (see the file comment for the protocol and the loss bound).
 *
 * @example
 * const store = await BufferSegments.open('runs/robot/buffer', { obsDim: 17, actDim: 6, segmentRows: 1000 });
 * learner.addBuffer(store.recovered);            // what survived the last run
 * onTransition((t) => store.append(t));          // never waits for the disk
 * process.on('SIGTERM', () => store.close());    // writes the staged rows too
 */
export class BufferSegments {
  readonly dir: string;
  readonly obsDim: number;
  readonly actDim: number;
  readonly segmentRows: number;
  /** The rows on disk at `open`, oldest first. */
  readonly recovered: ReplayBuffer;
  readonly recovery: SegmentRecovery;
  #writer: BufferWriter;
  #staged: Transition[] = [];
  #appended = 0;
  #closed = false;

  private constructor(dir: string, segmentRows: number, writer: BufferWriter, recovered: ReplayBuffer, recovery: SegmentRecovery) {
    this.dir = dir;
    this.obsDim = writer.obsDim;
    this.actDim = writer.actDim;
    this.segmentRows = segmentRows;
    this.#writer = writer;
    this.recovered = recovered;
    this.recovery = recovery;
  }

  /**
   * Opens `dir` (creating it), recovering what a previous run left.
   * @throws ValidationError for bad options or dims that differ from the buffer on disk;
   *   BufferFormatError (naming the file) when a listed segment is missing or corrupt
   */
  static async open(dir: string, options: BufferSegmentsOptions): Promise<BufferSegments> {
    const where = 'BufferSegments.open';
    const { obsDim, actDim, segmentRows = 1000, writeFile = writeFileAtomic } = options;
    for (const [key, v] of [['obsDim', obsDim], ['actDim', actDim], ['segmentRows', segmentRows]] as const) {
      if (!Number.isInteger(v) || v <= 0) throw new ValidationError(where, key, `expected a positive integer, got ${describe(v)}`);
    }
    if (options.recoverCapacity !== undefined && !(Number.isInteger(options.recoverCapacity) && options.recoverCapacity > 0)) {
      throw new ValidationError(where, 'recoverCapacity', `expected a positive integer, got ${describe(options.recoverCapacity)}`);
    }
    // Opening in append mode creates the directory and an empty manifest when there is none.
    let writer = await BufferWriter.open(dir, { obsDim, actDim, segmentRows, mode: 'append', writeFile });
    const names = await readdir(dir);
    const removedTempFiles: string[] = [];
    for (const name of names.filter((n) => TEMP_FILE_PATTERN.test(n)).sort()) {
      await rm(join(dir, name), { force: true });
      removedTempFiles.push(name);
    }
    const adoption = await adoptUnlistedSegment(dir, names, obsDim, actDim, writeFile);
    // The writer read the manifest before the adoption: reopen so that it appends after it.
    if (adoption.adopted !== null) writer = await BufferWriter.open(dir, { obsDim, actDim, segmentRows, mode: 'append', writeFile });
    const loaded = await loadBuffer(dir, options.recoverCapacity === undefined ? {} : { capacity: options.recoverCapacity });
    const recovery: SegmentRecovery = {
      rows: loaded.manifest.rows,
      segments: loaded.manifest.segments.length,
      adopted: adoption.adopted,
      removedTempFiles,
      warnings: [...adoption.warnings, ...loaded.warnings],
      skippedRows: loaded.skippedRows,
    };
    return new BufferSegments(dir, segmentRows, writer, loaded.buffer, recovery);
  }

  /** Rows appended since `open`. */
  get appendedRows(): number {
    return this.#appended;
  }

  /** Rows held in memory, not yet handed to a segment (fewer than `segmentRows`). */
  get stagedRows(): number {
    return this.#staged.length;
  }

  /** Rows listed in the manifest on disk, those recovered at `open` included. */
  get committedRows(): number {
    return this.#writer.rowsOnDisk;
  }

  /** Rows appended since `open` that a crash now would lose. */
  get uncommittedRows(): number {
    return this.recovery.rows + this.#appended - this.#writer.rowsOnDisk;
  }

  /**
   * Validates and stages one transition; every `segmentRows` rows, starts that segment's write
   * (in the background). Never waits for the disk.
   * @returns true when this row completed a segment (its write has started)
   * @throws ValidationError (nothing staged) for a bad transition; Error if closed or an earlier
   *   segment write failed (nothing more is written then)
   */
  append(t: Transition): boolean {
    if (this.#closed) throw new Error(`BufferSegments.append: ${this.dir} is closed`);
    validateTransition(t, this.obsDim, this.actDim, 'BufferSegments.append');
    this.#staged.push({
      ...t,
      obs: Float32Array.from(t.obs),
      action: Float32Array.from(t.action),
      nextObs: Float32Array.from(t.nextObs),
    });
    this.#appended++;
    if (this.#staged.length < this.segmentRows) return false;
    const rows = this.#staged;
    this.#staged = [];
    // The writer's own staging fills to segmentRows here and is enqueued as one segment.
    for (const r of rows) this.#writer.append(r);
    return true;
  }

  /** Waits until every segment started so far is on disk (no shorter segment is cut). */
  async whenWritten(): Promise<void> {
    // The writer holds no staged rows between appends (see `append`), so its flush only waits.
    await this.#writer.flush();
  }

  /** Writes the staged rows as a (shorter) segment too, and waits for every write. */
  async flush(): Promise<void> {
    const rows = this.#staged;
    this.#staged = [];
    for (const r of rows) this.#writer.append(r);
    await this.#writer.flush();
  }

  /** Flushes and closes; later `append` calls throw. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    const rows = this.#staged;
    this.#staged = [];
    this.#closed = true;
    try {
      for (const r of rows) this.#writer.append(r);
    } finally {
      await this.#writer.close();
    }
  }
}

/**
 * Lists in the manifest the one segment a crash can leave written but unlisted: the
 * highest-numbered segment file, when it is numbered after every listed one and holds whole,
 * valid rows. Anything else unlisted is left alone (reported by `loadBuffer` as a warning).
 */
async function adoptUnlistedSegment(
  dir: string,
  names: readonly string[],
  obsDim: number,
  actDim: number,
  writeFile: WriteFileFn,
): Promise<{ adopted: string | null; warnings: string[] }> {
  const manifest = await readManifest(dir);
  const listed = new Set(manifest.segments.map((s) => s.file));
  const index = (name: string): number => Number(SEGMENT_PATTERN.exec(name)?.[1] ?? -1);
  const lastListed = Math.max(-1, ...manifest.segments.map((s) => index(s.file)));
  const candidates = names.filter((n) => SEGMENT_PATTERN.test(n) && !listed.has(n) && index(n) > lastListed).sort((a, b) => index(a) - index(b));
  const file = candidates.at(-1);
  if (file === undefined) return { adopted: null, warnings: [] };
  const bytes = new Uint8Array(await readFile(join(dir, file)));
  const rb = rowBytes(obsDim, actDim);
  const skip = (why: string): { adopted: null; warnings: string[] } => ({ adopted: null, warnings: [`${file}: not listed in ${MANIFEST_FILE} and not adopted: ${why}`] });
  if (bytes.length === 0 || bytes.length % rb !== 0) return skip(`${bytes.length} bytes is not a whole number of ${rb}-byte rows`);
  const batch = decodeSegment(bytes, obsDim, actDim);
  try {
    validateBatch(batch, obsDim, actDim, file);
  } catch (err) {
    return skip((err as Error).message);
  }
  let nextEpisodeId = manifest.nextEpisodeId;
  for (const id of batch.episodeId) nextEpisodeId = Math.max(nextEpisodeId, (id + 1) % 2 ** 32);
  const segment: SegmentInfo = { file, rows: batch.size, byteLength: bytes.length, crc32: crc32(bytes) };
  const next = makeManifest(obsDim, actDim, [...manifest.segments, segment], nextEpisodeId);
  await writeFile(join(dir, MANIFEST_FILE), `${JSON.stringify(next, null, 2)}\n`);
  return { adopted: file, warnings: [] };
}
