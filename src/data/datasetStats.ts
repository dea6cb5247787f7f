import type { AlignmentReport, DatasetMetadata, OfflineDataset } from './dataset.js';

/** Mean, population standard deviation (divides by n), min and max; all 0 for no values. */
export interface Summary {
  mean: number;
  std: number;
  min: number;
  max: number;
}

/** Per-dimension summaries of a [N, dim] column. */
export interface ColumnSummary {
  min: number[];
  max: number[];
  mean: number[];
  std: number[];
}

/** What `mbrl dataset info` reports. */
export interface DatasetStats {
  rows: number;
  obsDim: number;
  actDim: number;
  /** All episodes, the unfinished last one included. */
  episodes: number;
  /** Episodes whose last row is terminal. */
  terminatedEpisodes: number;
  /** Episodes whose last row has `timeouts` set (and is not terminal). */
  truncatedEpisodes: number;
  /** Episodes with neither flag at the end (at most one: the last). */
  unfinishedEpisodes: number;
  /** Sum of rewards per episode, over all episodes. */
  returns: Summary;
  /** Rows per episode. */
  lengths: Summary;
  rewards: Summary;
  observations: ColumnSummary;
  actions: ColumnSummary;
  alignment: AlignmentReport;
  metadata: DatasetMetadata;
}

/**
 * Sizes, episode counts, return and length statistics, per-dimension ranges of observations and
 * actions, and the next-observation alignment check of a dataset. Sums are in float64.
 * @example const s = datasetStats(ds); console.log(s.returns.mean, s.observations.max);
 */
export function datasetStats(ds: OfflineDataset): DatasetStats {
  const eps = ds.episodes();
  const returns: number[] = [];
  const lengths: number[] = [];
  for (const ep of eps) {
    let r = 0;
    for (let i = ep.start; i < ep.end; i++) r += ds.rewards[i];
    returns.push(r);
    lengths.push(ep.end - ep.start);
  }
  return {
    rows: ds.size,
    obsDim: ds.obsDim,
    actDim: ds.actDim,
    episodes: eps.length,
    terminatedEpisodes: eps.filter((e) => e.terminated).length,
    truncatedEpisodes: eps.filter((e) => e.truncated && !e.terminated).length,
    unfinishedEpisodes: eps.filter((e) => !e.terminated && !e.truncated).length,
    returns: summarize(returns),
    lengths: summarize(lengths),
    rewards: summarize(ds.rewards),
    observations: columnSummary(ds.observations, ds.obsDim),
    actions: columnSummary(ds.actions, ds.actDim),
    alignment: ds.checkAlignment(),
    metadata: { ...ds.metadata },
  };
}

/** Mean, population std, min and max of `xs` (zeros when empty). */
export function summarize(xs: ArrayLike<number>): Summary {
  const n = xs.length;
  if (n === 0) return { mean: 0, std: 0, min: 0, max: 0 };
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    sum += xs[i];
    if (xs[i] < min) min = xs[i];
    if (xs[i] > max) max = xs[i];
  }
  const mean = sum / n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (xs[i] - mean) ** 2;
  return { mean, std: Math.sqrt(ss / n), min, max };
}

function columnSummary(col: Float32Array, dim: number): ColumnSummary {
  const n = col.length / dim;
  const out: ColumnSummary = { min: [], max: [], mean: [], std: [] };
  const xs = new Float64Array(n);
  for (let j = 0; j < dim; j++) {
    for (let i = 0; i < n; i++) xs[i] = col[i * dim + j];
    const s = summarize(xs);
    out.min.push(s.min);
    out.max.push(s.max);
    out.mean.push(s.mean);
    out.std.push(s.std);
  }
  return out;
}
