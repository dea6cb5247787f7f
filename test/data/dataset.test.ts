// The offline dataset type: validation messages, episode ranges, the next-observation alignment
// check, statistics computed by hand, and conversions to and from the replay buffer.
import { describe, expect, it } from 'vitest';
import { bufferFitData } from '../../src/algorithms/mbrl.js';
import { ValidationError } from '../../src/core/errors.js';
import { OfflineDataset, type DatasetFields } from '../../src/data/dataset.js';
import { DatasetBuilder } from '../../src/data/datasetBuilder.js';
import { datasetStats } from '../../src/data/datasetStats.js';
import { ReplayBuffer } from '../../src/data/replayBuffer.js';

/**
 * 6 rows, obsDim 2, actDim 1: the state is (t, 10 t) along a trajectory t = 0, 1, 2 | 3, 4 | 5.
 * Episode 0 = rows 0-2 (terminal at 2), episode 1 = rows 3-4 (timeout at 4), row 5 unfinished.
 */
function fields(): DatasetFields {
  const obs = [0, 0, 1, 10, 2, 20, 3, 30, 4, 40, 5, 50];
  const next = [1, 10, 2, 20, 99, 99, 4, 40, 98, 98, 97, 97];
  return {
    observations: Float32Array.from(obs),
    actions: Float32Array.from([0.5, -0.5, 1, 0, 0.25, -1]),
    rewards: Float32Array.from([1, 2, 3, -1, -2, 10]),
    next_observations: Float32Array.from(next),
    terminals: Uint8Array.from([0, 0, 1, 0, 0, 0]),
    timeouts: Uint8Array.from([0, 0, 0, 0, 1, 0]),
  };
}
const make = (f = fields()): OfflineDataset => new OfflineDataset(f, { obsDim: 2, actDim: 1, metadata: { envId: 'Toy-v0' } });

describe('OfflineDataset', () => {
  it('splits episodes at terminals and timeouts; the trailing rows form an unfinished episode', () => {
    expect(make().episodes()).toEqual([
      { start: 0, end: 3, terminated: true, truncated: false },
      { start: 3, end: 5, terminated: false, truncated: true },
      { start: 5, end: 6, terminated: false, truncated: false },
    ]);
  });

  it('names the field, row, column and value of a bad entry', () => {
    const f = fields();
    f.observations[7] = NaN; // row 3, column 1
    expect(() => make(f)).toThrow(ValidationError);
    expect(() => make(f)).toThrow('observations[3][1]: expected a finite number, got NaN (row 3)');
    const g = fields();
    g.rewards[4] = Infinity;
    expect(() => make(g)).toThrow('rewards[4]: expected a finite number, got Infinity');
    const h = fields();
    h.timeouts[2] = 2;
    expect(() => make(h)).toThrow('timeouts[2]: expected 0 or 1, got 2 (row 2)');
    const k = fields();
    k.actions = new Float32Array(5);
    expect(() => make(k)).toThrow('actions: expected 6 rows (as rewards) of width 1, got 5 rows');
    const m = fields();
    m.next_observations = new Float32Array(11);
    expect(() => make(m)).toThrow('next_observations: expected a length divisible by 2');
    expect(() => new OfflineDataset({ ...fields(), terminals: new Float32Array(6) as unknown as Uint8Array }, { obsDim: 2, actDim: 1 })).toThrow('terminals: expected a Uint8Array, got Float32Array(6)');
  });

  it('counts next_observations[i] != observations[i+1] inside episodes only, as a warning', () => {
    const ds = make();
    // Pairs inside episodes: (0,1), (1,2), (3,4) — all aligned; rows 2, 4, 5 end episodes.
    expect(ds.checkAlignment()).toMatchObject({ checked: 3, mismatches: 0, rows: [], maxAbsDiff: 0 });
    const f = fields();
    f.next_observations[1] = 10.5; // row 0, column 1: off by 0.5
    const r = make(f).checkAlignment();
    expect(r).toMatchObject({ checked: 3, mismatches: 1, rows: [0], maxAbsDiff: 0.5 });
    expect(r.rule).toContain('next_observations[i] = observations[i+1]');
    // float32 rounding noise is not a mismatch
    f.next_observations[1] = 10 * (1 + 2e-6);
    expect(make(f).checkAlignment().mismatches).toBe(0);
  });

  it('computes statistics by hand', () => {
    const s = datasetStats(make());
    expect(s).toMatchObject({ rows: 6, obsDim: 2, actDim: 1, episodes: 3, terminatedEpisodes: 1, truncatedEpisodes: 1, unfinishedEpisodes: 1 });
    // Returns: 1+2+3 = 6, -1-2 = -3, 10. Mean 13/3; population variance ((6-13/3)² + (-3-13/3)² + (10-13/3)²)/3.
    const mean = 13 / 3;
    expect(s.returns.mean).toBeCloseTo(mean, 12);
    expect(s.returns.std).toBeCloseTo(Math.sqrt(((6 - mean) ** 2 + (-3 - mean) ** 2 + (10 - mean) ** 2) / 3), 12);
    expect([s.returns.min, s.returns.max]).toEqual([-3, 10]);
    expect(s.lengths).toMatchObject({ min: 1, max: 3, mean: 2 });
    expect(s.observations.min).toEqual([0, 0]);
    expect(s.observations.max).toEqual([5, 50]);
    expect(s.observations.mean).toEqual([2.5, 25]);
    expect(s.actions.min).toEqual([-1]);
    expect(s.actions.max).toEqual([1]);
    expect(s.actions.mean[0]).toBeCloseTo(0.25 / 6, 7);
    expect(s.metadata).toEqual({ envId: 'Toy-v0' });
  });

  it('round-trips through the replay buffer, episode ids from the episode ranges', () => {
    const ds = make();
    const buf = ds.toReplayBuffer();
    expect(buf.size).toBe(6);
    expect(Array.from({ length: 6 }, (_, i) => buf.get(i).episodeId)).toEqual([0, 0, 0, 1, 1, 2]);
    expect(buf.get(2)).toMatchObject({ terminated: true, truncated: false, reward: 3 });
    const back = OfflineDataset.fromReplayBuffer(buf, { envId: 'Toy-v0' });
    for (const k of ['observations', 'actions', 'rewards', 'next_observations', 'terminals', 'timeouts'] as const) expect(back[k]).toEqual(ds[k]);
    expect(back.metadata).toEqual({ source: 'replay buffer', envId: 'Toy-v0' });
    // The fit data are those of the training loop's bufferFitData on the same buffer.
    const a = ds.toFitData();
    const b = bufferFitData(buf);
    expect(a.n).toBe(b.n);
    for (const k of ['obs', 'act', 'nextObs', 'reward'] as const) expect(a[k]).toEqual(b[k]);
  });

  it('from a buffer: groups interleaved episodes and marks an unflagged episode end as a timeout', () => {
    const buf = new ReplayBuffer({ capacity: 10, obsDim: 1, actDim: 1 });
    const t = (x: number, episodeId: number, terminated = false) => ({ obs: [x], action: [0], reward: x, nextObs: [x + 1], terminated, truncated: false, episodeId });
    // Two episodes interleaved (a vectorised collector): ids 7, 9, 7, 9 (9 terminal), 7.
    buf.addBatch([t(0, 7), t(100, 9), t(1, 7), t(101, 9, true), t(2, 7)]);
    const ds = OfflineDataset.fromReplayBuffer(buf);
    expect(Array.from(ds.observations)).toEqual([0, 1, 2, 100, 101]);
    // Episode 7 is followed by episode 9 but carries no flag: its last row gets timeouts = 1.
    expect(Array.from(ds.timeouts)).toEqual([0, 0, 1, 0, 0]);
    expect(Array.from(ds.terminals)).toEqual([0, 0, 0, 0, 1]);
  });

  it('slice and concat keep episodes apart', () => {
    const ds = make();
    const tail = ds.slice(3);
    expect(tail.size).toBe(3);
    expect(Array.from(tail.observations)).toEqual([3, 30, 4, 40, 5, 50]);
    const both = OfflineDataset.concat([ds, tail]);
    expect(both.size).toBe(9);
    // Row 5 (ds's unfinished episode) is cut so that it does not run into tail's first row.
    expect(Array.from(both.timeouts)).toEqual([0, 0, 0, 0, 1, 1, 0, 1, 1]);
    expect(both.episodes().length).toBe(5);
  });

  it('DatasetBuilder grows past its initial capacity and checks rows', () => {
    const b = new DatasetBuilder(2, 1, 2);
    for (let i = 0; i < 5; i++) b.append({ observation: [i, -i], action: [i / 2], reward: i, nextObservation: [i + 1, -i - 1], terminal: i === 4, timeout: false });
    const ds = b.build({ policy: 'test' });
    expect(ds.size).toBe(5);
    expect(Array.from(ds.next_observations.subarray(8, 10))).toEqual([5, -5]);
    expect(Array.from(ds.terminals)).toEqual([0, 0, 0, 0, 1]);
    expect(() => b.append({ observation: [0, NaN], action: [0], reward: 0, nextObservation: [0, 0], terminal: false, timeout: false }, 'run.csv line 7')).toThrow(
      'run.csv line 7: observations[1]: expected a finite number representable as float32, got NaN',
    );
    expect(b.size).toBe(5);
  });
});
