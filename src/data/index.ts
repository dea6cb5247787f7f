// The data layer: transitions, the replay buffer and its files, running normalisers.
export type { Batch, StoredTransition, Transition } from './transition.js';
export { EpisodeIdAssigner, MAX_EPISODE_ID, allocBatch, batchView, checkFloat32Vector, validateBatch, validateTransition } from './transition.js';
export type { EpisodeSplit, MinibatchOptions, ReplayBufferOptions } from './replayBuffer.js';
export { ReplayBuffer } from './replayBuffer.js';
export type {
  BufferFormatProblem,
  BufferManifest,
  BufferWriterOptions,
  ColumnDtype,
  ColumnSpec,
  LoadBufferOptions,
  LoadedBuffer,
  SaveBufferOptions,
  SegmentInfo,
  WriteFileFn,
} from './bufferStore.js';
export {
  BUFFER_FORMAT,
  BUFFER_FORMAT_VERSION,
  BufferFormatError,
  BufferWriter,
  DEFAULT_SEGMENT_ROWS,
  MANIFEST_FILE,
  decodeSegment,
  encodeSegment,
  expectedColumns,
  loadBuffer,
  makeManifest,
  parseManifest,
  readManifest,
  rowBytes,
  saveBuffer,
  segmentFileName,
} from './bufferStore.js';
export { TEMP_FILE_PATTERN, writeFileAtomic } from './atomicWrite.js';
export { crc32 } from './crc32.js';
export type { RunningNormalizerJSON, RunningNormalizerOptions } from './normalizer.js';
export { RunningNormalizer } from './normalizer.js';
