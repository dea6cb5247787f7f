import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { ReplayBuffer } from '../../src/data/replayBuffer.js';
import type { Batch, Transition } from '../../src/data/transition.js';
import { allocBatch } from '../../src/data/transition.js';

const OBS = 4;
const ACT = 2;

/** A transition whose every entry encodes `i`, so rows can be recognised after a wrap. */
function step(i: number, flags: Partial<Transition> = {}): Transition {
  return {
    obs: [i, i + 0.25, -i, 2 * i],
    action: [i / 8, -i / 8],
    reward: i,
    nextObs: [i + 1, i + 1.25, -i - 1, 2 * i + 2],
    terminated: false,
    truncated: false,
    stampNs: 1_000_000_000n * BigInt(i) + 7n,
    ...flags,
  };
}

function filled(capacity: number, n: number): ReplayBuffer {
  const buf = new ReplayBuffer({ capacity, obsDim: OBS, actDim: ACT });
  for (let i = 0; i < n; i++) buf.add(step(i, { terminated: i % 4 === 3 }));
  return buf;
}

/** Everything observable about a buffer, for "unchanged" checks. */
function snapshot(buf: ReplayBuffer): unknown {
  return {
    size: buf.size,
    totalAdded: buf.totalAdded,
    dropped: buf.dropped,
    nextEpisodeId: buf.nextEpisodeId,
    rows: Array.from({ length: buf.size }, (_, i) => buf.get(i)),
  };
}

function catchError(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a throw');
}

describe('ReplayBuffer basics', () => {
  it('stores a transition as float32 and returns it from get', () => {
    const buf = new ReplayBuffer({ capacity: 4, obsDim: OBS, actDim: ACT });
    const idx = buf.add({ ...step(3), obs: [0.1, 1, 2, 3], reward: 0.1 });
    expect(idx).toBe(0);
    const t = buf.get(0);
    expect(Array.from(t.obs)).toEqual([Math.fround(0.1), 1, 2, 3]);
    expect(t.reward).toBe(Math.fround(0.1));
    expect(Array.from(t.action)).toEqual([3 / 8, -3 / 8]);
    expect(Array.from(t.nextObs)).toEqual([4, 4.25, -4, 8]);
    expect(t.terminated).toBe(false);
    expect(t.stampNs).toBe(3_000_000_007n);
    expect(buf.size).toBe(1);
    expect(buf.capacity).toBe(4);
  });

  it('defaults the stamp to 0n and rejects bad constructor options', () => {
    const buf = new ReplayBuffer({ capacity: 2, obsDim: OBS, actDim: ACT });
    const { stampNs: _omit, ...noStamp } = step(1);
    buf.add(noStamp);
    expect(buf.get(0).stampNs).toBe(0n);
    expect(() => new ReplayBuffer({ capacity: 0, obsDim: 1, actDim: 1 })).toThrow(/capacity/);
    expect(() => new ReplayBuffer({ capacity: 1, obsDim: 1.5, actDim: 1 })).toThrow(/obsDim/);
  });

  it('assigns a new episode id after each terminated or truncated step, and keeps given ids', () => {
    const buf = new ReplayBuffer({ capacity: 20, obsDim: OBS, actDim: ACT });
    buf.add(step(0));
    buf.add(step(1));
    buf.add(step(2, { terminated: true }));
    buf.add(step(3));
    buf.add(step(4, { truncated: true }));
    buf.add(step(5));
    expect(Array.from({ length: 6 }, (_, i) => buf.get(i).episodeId)).toEqual([0, 0, 0, 1, 1, 2]);
    // A given id is kept; the unlabelled step after it continues that episode; after its end
    // the next automatic id is past every id seen.
    buf.add(step(6, { episodeId: 10 }));
    buf.add(step(7));
    buf.add(step(8, { terminated: true }));
    buf.add(step(9));
    expect(Array.from({ length: 4 }, (_, i) => buf.get(6 + i).episodeId)).toEqual([10, 10, 10, 11]);
    expect(buf.nextEpisodeId).toBe(12);
  });

  it('wraps around: capacity 5, 12 adds keep the newest 5 in order', () => {
    const buf = filled(5, 12);
    expect(buf.size).toBe(5);
    expect(buf.totalAdded).toBe(12);
    expect(buf.dropped).toBe(7);
    expect(Array.from({ length: 5 }, (_, k) => buf.get(k).reward)).toEqual([7, 8, 9, 10, 11]);
    expect(Array.from(buf.get(0).obs)).toEqual([7, 7.25, -7, 14]);
    expect(buf.get(4).stampNs).toBe(11_000_000_007n);
    expect(() => buf.get(5)).toThrow(ValidationError);
  });

  it('samples only rows still held (never overwritten ones), and all of them', () => {
    const buf = filled(5, 12);
    const rng = new Rng(1);
    const seen = new Set<number>();
    for (let k = 0; k < 200; k++) {
      const b = buf.sample(16, rng);
      for (let r = 0; r < b.size; r++) {
        seen.add(b.reward[r]);
        // Each sampled row is internally consistent (columns from the same slot).
        expect(b.obs[r * OBS]).toBe(b.reward[r]);
        expect(b.stampNs[r]).toBe(1_000_000_000n * BigInt(b.reward[r]) + 7n);
      }
    }
    expect([...seen].sort((a, b) => a - b)).toEqual([7, 8, 9, 10, 11]);
  });

  it('reuses its sample output, writes into a given one, and is deterministic per seed', () => {
    const buf = filled(50, 50);
    const a = buf.sample(8, new Rng(3));
    const aRewards = Array.from(a.reward);
    const b = buf.sample(8, new Rng(3));
    expect(b).toBe(a); // same reused object
    expect(Array.from(b.reward)).toEqual(aRewards);
    const out = allocBatch(8, OBS, ACT);
    expect(buf.sample(8, new Rng(3), out)).toBe(out);
    expect(Array.from(out.reward)).toEqual(aRewards);
    expect(Array.from(buf.sample(8, new Rng(4)).reward)).not.toEqual(aRewards);
    expect(() => buf.sample(8, new Rng(3), allocBatch(7, OBS, ACT))).toThrow(/out/);
    expect(() => buf.sample(0, new Rng(3))).toThrow(/batchSize/);
    expect(() => new ReplayBuffer({ capacity: 3, obsDim: 1, actDim: 1 }).sample(1, new Rng(0))).toThrow(/empty/);
  });

  it('toBatch and slice copy the rows at logical indices', () => {
    const buf = filled(5, 12);
    const b = buf.toBatch([4, 0, 2]);
    expect(b.size).toBe(3);
    expect(Array.from(b.reward)).toEqual([11, 7, 9]);
    expect(Array.from(b.nextObs.subarray(OBS, 2 * OBS))).toEqual([8, 8.25, -8, 16]);
    expect(Array.from(b.episodeId)).toEqual([buf.get(4).episodeId, buf.get(0).episodeId, buf.get(2).episodeId]);
    expect(Array.from(buf.slice(1, 3).reward)).toEqual([8, 9]);
    const e = catchError(() => buf.toBatch([0, 5])) as ValidationError;
    expect(e).toBeInstanceOf(ValidationError);
    expect(e.field).toBe('indices[1]');
  });

  it('clear empties the buffer and restarts counters and episode ids', () => {
    const buf = filled(5, 12);
    buf.clear();
    expect(buf.size).toBe(0);
    expect(buf.totalAdded).toBe(0);
    expect(buf.dropped).toBe(0);
    buf.add(step(1));
    expect(buf.get(0).episodeId).toBe(0);
    expect(buf.get(0).reward).toBe(1);
  });
});

describe('ReplayBuffer validation leaves the buffer unchanged', () => {
  const cases: [string, Partial<Record<keyof Transition, unknown>>, string, RegExp][] = [
    ['short obs', { obs: [1, 2, 3] }, 'obs', /expected length 4, got length 3/],
    ['NaN in obs', { obs: [0, 0, 0, NaN] }, 'obs[3]', /NaN/],
    ['Infinity in obs', { obs: [0, 0, 0, Infinity] }, 'obs[3]', /Infinity/],
    ['float32 overflow in nextObs', { nextObs: [0, 1e39, 0, 0] }, 'nextObs[1]', /1e\+39/],
    ['-Infinity in action', { action: [-Infinity, 0] }, 'action[0]', /-Infinity/],
    ['long action', { action: [0, 0, 0] }, 'action', /expected length 2/],
    ['string in action', { action: [0, '1'] }, 'action[1]', /"1"/],
    ['NaN reward', { reward: NaN }, 'reward', /NaN/],
    ['reward overflowing float32', { reward: -1e39 }, 'reward', /-1e\+39/],
    ['reward as a string', { reward: '1' }, 'reward', /"1"/],
    ['numeric terminated flag', { terminated: 1 }, 'terminated', /boolean, got 1/],
    ['missing truncated flag', { truncated: undefined }, 'truncated', /boolean, got undefined/],
    ['negative episode id', { episodeId: -1 }, 'episodeId', /-1/],
    ['fractional episode id', { episodeId: 1.5 }, 'episodeId', /1\.5/],
    ['episode id beyond uint32', { episodeId: 2 ** 32 }, 'episodeId', /4294967296/],
    ['number stamp', { stampNs: 5 }, 'stampNs', /bigint.*got 5/],
    ['stamp beyond int64', { stampNs: 2n ** 63n }, 'stampNs', /9223372036854775808/],
  ];

  for (const [name, patch, field, message] of cases) {
    it(`add rejects ${name}, naming ${field}`, () => {
      for (const buf of [filled(10, 3), filled(3, 7)]) {
        const before = snapshot(buf);
        const e = catchError(() => buf.add({ ...step(99), ...patch } as Transition)) as ValidationError;
        expect(e).toBeInstanceOf(ValidationError);
        expect(e.field).toBe(field);
        expect(e.message).toMatch(message);
        expect(e.message).toContain('ReplayBuffer.add');
        expect(snapshot(buf)).toEqual(before);
      }
    });
  }

  it('add rejects a non-object', () => {
    const buf = filled(10, 3);
    const before = snapshot(buf);
    expect(() => buf.add(null as unknown as Transition)).toThrow(/transition: expected a transition object, got null/);
    expect(snapshot(buf)).toEqual(before);
  });

  it('addBatch validates every row before writing any', () => {
    for (const buf of [filled(10, 3), filled(4, 6)]) {
      const before = snapshot(buf);
      const rows = [step(20), step(21), { ...step(22), obs: [0, 0, 0, 1e39] }, step(23)];
      const e = catchError(() => buf.addBatch(rows)) as ValidationError;
      expect(e).toBeInstanceOf(ValidationError);
      expect(e.field).toBe('transitions[2].obs[3]');
      expect(e.message).toMatch(/1e\+39/);
      expect(snapshot(buf)).toEqual(before);
    }
  });

  it('addBatch appends valid rows in order', () => {
    const buf = filled(10, 3);
    buf.addBatch([step(20), step(21, { truncated: true }), step(22)]);
    expect(buf.size).toBe(6);
    expect([3, 4, 5].map((i) => buf.get(i).reward)).toEqual([20, 21, 22]);
    expect(buf.get(5).episodeId).toBe(buf.get(4).episodeId + 1);
  });

  it('addColumns rejects NaN and bad flags, naming the flat index, and leaves the buffer unchanged', () => {
    const buf = filled(10, 3);
    const before = snapshot(buf);
    const b = allocBatch(2, OBS, ACT);
    b.obs[5] = NaN;
    expect(() => buf.addColumns(b)).toThrow(/obs\[5\].*row 1/);
    b.obs[5] = 0;
    b.truncated[1] = 2;
    expect(() => buf.addColumns(b)).toThrow(/truncated\[1\]: expected 0 or 1, got 2/);
    const short: Batch = { ...allocBatch(2, OBS, ACT), reward: new Float32Array(1) };
    expect(() => buf.addColumns(short)).toThrow(/reward/);
    expect(snapshot(buf)).toEqual(before);
    b.truncated[1] = 1;
    buf.addColumns(b);
    expect(buf.size).toBe(5);
  });
});

/** A buffer of `episodes` episodes with seeded lengths in [5, 30]. */
function episodic(episodes: number, seed: number): { buf: ReplayBuffer; maxLen: number } {
  const rng = new Rng(seed);
  const lengths = Array.from({ length: episodes }, () => 5 + rng.int(26));
  const total = lengths.reduce((a, b) => a + b, 0);
  const buf = new ReplayBuffer({ capacity: total, obsDim: OBS, actDim: ACT });
  let i = 0;
  for (const len of lengths) for (let k = 0; k < len; k++) buf.add(step(i++, { truncated: k === len - 1 }));
  return { buf, maxLen: Math.max(...lengths) };
}

describe('splitByEpisode', () => {
  it('puts no episode on both sides, covers every row once, and respects the fraction', () => {
    const { buf, maxLen } = episodic(40, 11);
    for (const fraction of [0.1, 0.2, 0.5]) {
      const { train, holdout } = buf.splitByEpisode(fraction, new Rng(5));
      const trainEps = new Set(Array.from(train, (i) => buf.get(i).episodeId));
      const holdEps = new Set(Array.from(holdout, (i) => buf.get(i).episodeId));
      expect([...trainEps].filter((e) => holdEps.has(e))).toEqual([]);
      expect(holdEps.size).toBeGreaterThan(0);
      const all = [...train, ...holdout].sort((a, b) => a - b);
      expect(all).toEqual(Array.from({ length: buf.size }, (_, i) => i));
      expect(Array.from(train)).toEqual([...train].sort((a, b) => a - b));
      // Greedy on whole episodes: within half the longest episode of the target.
      expect(Math.abs(holdout.length - fraction * buf.size)).toBeLessThanOrEqual(maxLen / 2);
    }
  });

  it('is deterministic per seed and differs between seeds', () => {
    const { buf } = episodic(40, 11);
    const a = buf.splitByEpisode(0.2, new Rng(5));
    const b = buf.splitByEpisode(0.2, new Rng(5));
    const c = buf.splitByEpisode(0.2, new Rng(6));
    expect(Array.from(a.holdout)).toEqual(Array.from(b.holdout));
    expect(Array.from(a.train)).toEqual(Array.from(b.train));
    expect(Array.from(c.holdout)).not.toEqual(Array.from(a.holdout));
  });

  it('handles the edges: fraction 0, one episode, two episodes with a large fraction, a bad fraction', () => {
    const { buf } = episodic(5, 2);
    expect(buf.splitByEpisode(0, new Rng(0)).holdout.length).toBe(0);
    const one = filled(10, 3); // episode 0 only (terminations every 4th step: rows 0..2)
    expect(one.splitByEpisode(0.5, new Rng(0)).holdout.length).toBe(0);
    const two = new ReplayBuffer({ capacity: 10, obsDim: OBS, actDim: ACT });
    for (let i = 0; i < 10; i++) two.add(step(i, { terminated: i === 4 }));
    const s = two.splitByEpisode(0.95, new Rng(0));
    expect(s.train.length).toBe(5);
    expect(s.holdout.length).toBe(5);
    // Every episode alone overshoots a tiny target: the shortest one is held out.
    const uneven = new ReplayBuffer({ capacity: 30, obsDim: OBS, actDim: ACT });
    for (let i = 0; i < 30; i++) uneven.add(step(i, { terminated: i === 19 || i === 25 }));
    expect(Array.from(uneven.splitByEpisode(0.01, new Rng(0)).holdout)).toEqual([26, 27, 28, 29]); // episodes: 20, 6 and 4 rows
    expect(() => buf.splitByEpisode(1, new Rng(0))).toThrow(/holdoutFraction/);
    expect(() => buf.splitByEpisode(NaN, new Rng(0))).toThrow(/holdoutFraction/);
  });

  it('groups interleaved episodes by their ids', () => {
    const buf = new ReplayBuffer({ capacity: 40, obsDim: OBS, actDim: ACT });
    for (let i = 0; i < 40; i++) buf.add(step(i, { episodeId: i % 4 })); // four parallel envs
    const { holdout } = buf.splitByEpisode(0.25, new Rng(9));
    const ids = new Set(Array.from(holdout, (i) => buf.get(i).episodeId));
    expect(ids.size).toBe(1);
    expect(holdout.length).toBe(10);
  });
});

describe('minibatches', () => {
  it('visits every index exactly once per epoch, in batches of the requested size', () => {
    const { buf } = episodic(10, 4);
    const { train } = buf.splitByEpisode(0.2, new Rng(1));
    const batches = [...buf.minibatches(train, 7, new Rng(2))];
    const seen = batches.flatMap((b) => Array.from(b));
    expect(seen.length).toBe(train.length);
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from(train));
    expect(batches.slice(0, -1).every((b) => b.length === 7)).toBe(true);
    expect(batches.at(-1)!.length).toBe(train.length % 7 || 7);
    expect(seen).not.toEqual(Array.from(train)); // shuffled
  });

  it('gives the same order for the same seed and a new order each epoch', () => {
    const { buf } = episodic(10, 4);
    const idx = Array.from({ length: buf.size }, (_, i) => i);
    const order = (rng: Rng): number[] => [...buf.minibatches(idx, 16, rng)].flatMap((b) => Array.from(b));
    expect(order(new Rng(7))).toEqual(order(new Rng(7)));
    const rng = new Rng(7);
    const epoch1 = order(rng);
    const epoch2 = order(rng);
    expect(epoch2).not.toEqual(epoch1);
    expect([...epoch2].sort((a, b) => a - b)).toEqual(idx);
  });

  it('drops the short last batch on request and rejects bad indices', () => {
    const buf = filled(20, 20);
    const idx = Array.from({ length: 20 }, (_, i) => i);
    const batches = [...buf.minibatches(idx, 6, new Rng(0), { dropLast: true })];
    expect(batches.map((b) => b.length)).toEqual([6, 6, 6]);
    expect(() => buf.minibatches([0, 20], 4, new Rng(0))).toThrow(/indices\[1\]/);
    expect(() => buf.minibatches(idx, 0, new Rng(0))).toThrow(/batchSize/);
  });
});
