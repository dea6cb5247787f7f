// The data layer: transitions, the replay buffer and its files, running normalisers, offline
// datasets (D4RL layout) and their loaders (HDF5, JSONL/CSV, ROS 2 bags).
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
export type { AlignmentReport, AlignmentTolerance, DatasetFields, DatasetLoadResult, DatasetMetadata, EpisodeRange, FitData, OfflineDatasetOptions } from './dataset.js';
export { DATASET_FIELDS, OfflineDataset, allocFields, nextFromFollowingRow, validateDatasetFields } from './dataset.js';
export type { DatasetRow } from './datasetBuilder.js';
export { DatasetBuilder } from './datasetBuilder.js';
export type { ColumnSummary, DatasetStats, Summary } from './datasetStats.js';
export { datasetStats } from './datasetStats.js';
export type { SaveHdf5Options } from './hdf5Dataset.js';
export { loadHdf5Dataset, saveHdf5Dataset } from './hdf5Dataset.js';
export type { ColumnMapping, TabularOptions } from './tabularDataset.js';
export { loadCsvDataset, loadJsonlDataset, parseColumnMapping } from './tabularDataset.js';
export type { BagField, BagMapping, PathStep, ResampleRule } from './bagMapping.js';
export { BAG_MAPPING_DEFAULTS, fieldWidth, parseBagMapping } from './bagMapping.js';
export type { Signal, StampOrder } from './resample.js';
export { gapIntervals, makeGrid, markGaps, orderByStamp, resampleSignal, validRuns } from './resample.js';
export type { McapFile } from './mcapFile.js';
export { Ros2MessageDecoder, bagFiles, openMcapFile } from './mcapFile.js';
export type { BagImportReport, BagTopicReport } from './rosbagDataset.js';
export { loadRosbagDataset } from './rosbagDataset.js';
export { D4RL_RECIPES, d4rlDatasetName, collectDataset, randomDataset, policyDataset, mediumReplayDataset, mediumExpertDataset, type D4rlRecipe, type CollectAgent, type CollectOptions, type CollectResult, type RecipeCollectOptions } from './d4rlRecipes.js';
