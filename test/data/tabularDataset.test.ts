// JSONL and CSV loaders: the column mapping (lists, ranges, array columns, paths), episode
// boundaries from flags or an episode column, next observations from the next row, and errors
// that name the line and the column.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCsvDataset, loadJsonlDataset, parseColumnMapping } from '../../src/data/tabularDataset.js';

const dir = mkdtempSync(join(tmpdir(), 'mbrl-tab-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

describe('CSV', () => {
  const csv = ['x,v,u,r,done,"nx, quoted",nv', '0,1,0.5,-1,0,1,2', '1,2,0.25,-2,0,2,3', '', '2,3,0,-3,true,9,9', '10,0,1,5,0,11,1'].join('\r\n');

  it('maps columns to fields; explicit next observations; blank lines skipped', async () => {
    const p = file('a.csv', csv);
    const { dataset: ds, notes } = await loadCsvDataset(p, { observations: ['x', 'v'], actions: 'u', rewards: 'r', terminals: 'done', next_observations: ['nx, quoted', 'nv'] });
    expect([ds.size, ds.obsDim, ds.actDim]).toEqual([4, 2, 1]);
    expect(Array.from(ds.observations)).toEqual([0, 1, 1, 2, 2, 3, 10, 0]);
    expect(Array.from(ds.next_observations)).toEqual([1, 2, 2, 3, 9, 9, 11, 1]);
    expect(Array.from(ds.actions)).toEqual([0.5, 0.25, 0, 1]);
    expect(Array.from(ds.rewards)).toEqual([-1, -2, -3, 5]);
    expect(Array.from(ds.terminals)).toEqual([0, 0, 1, 0]);
    expect(ds.episodes().length).toBe(2);
    expect(ds.metadata.source).toBe(p);
    expect(notes).toEqual([]);
  });

  it('without next observations: the next row of the same episode, episode ends dropped', async () => {
    const p = file('b.csv', csv);
    const { dataset: ds, notes } = await loadCsvDataset(p, { observations: ['x', 'v'], actions: ['u'], rewards: 'r', terminals: 'done' });
    // Episode rows 0-2 (terminal at 2) and row 3 (unfinished): rows 2 and 3 have no next row.
    expect(Array.from(ds.observations)).toEqual([0, 1, 1, 2]);
    expect(Array.from(ds.next_observations)).toEqual([1, 2, 2, 3]);
    expect(Array.from(ds.timeouts)).toEqual([0, 1]);
    expect(notes[0]).toContain('(2 rows) has none and was dropped');
  });

  it('names the line and the column of a bad value', async () => {
    const bad = file('c.csv', 'x,u,r\n1,2,3\n4,abc,6\n');
    await expect(loadCsvDataset(bad, { observations: 'x', actions: 'u', rewards: 'r' })).rejects.toThrow(`loadCsvDataset(${bad}): line 3, column "u": expected a finite number representable as float32, got "abc"`);
    const flag = file('d.csv', 'x,u,r,d\n1,2,3,maybe\n');
    await expect(loadCsvDataset(flag, { observations: 'x', actions: 'u', rewards: 'r', terminals: 'd' })).rejects.toThrow('line 2, column "d": expected a flag (0/1, true/false), got "maybe"');
    const ragged = file('e.csv', 'x,u,r\n1,2\n');
    await expect(loadCsvDataset(ragged, { observations: 'x', actions: 'u', rewards: 'r' })).rejects.toThrow('line 2: expected 3 fields (as the header), got 2');
    await expect(loadCsvDataset(ragged, { observations: 'y', actions: 'u', rewards: 'r' })).rejects.toThrow('column "y": not in the header (line 1: "x", "u", "r")');
    const empty = file('f.csv', 'x,u,r\n1,,3\n');
    await expect(loadCsvDataset(empty, { observations: 'x', actions: 'u', rewards: 'r' })).rejects.toThrow('line 2, column "u": expected a finite number representable as float32, got ""');
  });

  it('episode column: a change of value ends an episode; ranges in names; another delimiter', async () => {
    const p = file('g.csv', ['ep;o_0;o_1;a;r', 'A;0;0;1;1', 'A;1;1;1;1', 'B;5;5;0;2', 'B;6;6;0;2', 'B;7;7;0;2'].join('\n'));
    const { dataset: ds, notes } = await loadCsvDataset(p, { observations: 'o_{0..1}', actions: 'a', rewards: 'r', episode: 'ep' }, { delimiter: ';' });
    // A: rows 0-1 → keeps row 0 (next = row 1); B: rows 2-4 → keeps 2, 3.
    expect(Array.from(ds.observations)).toEqual([0, 0, 5, 5, 6, 6]);
    expect(Array.from(ds.next_observations)).toEqual([1, 1, 6, 6, 7, 7]);
    expect(Array.from(ds.timeouts)).toEqual([1, 0, 0]);
    expect(notes[0]).toBe('1 episode ends taken from changes of "ep" (timeouts set)');
  });
});

describe('JSONL', () => {
  it('array columns, nested paths and element indices', async () => {
    const lines = [
      { obs: [0, 1, 2], act: { u: 0.5 }, r: 1, done: false, next: [1, 2, 3] },
      { obs: [1, 2, 3], act: { u: -0.5 }, r: 2, done: true, next: [7, 7, 7] },
    ];
    const p = file('a.jsonl', `${lines.map((l) => JSON.stringify(l)).join('\n')}\n\n`);
    const { dataset: ds } = await loadJsonlDataset(p, { observations: 'obs', actions: 'act.u', rewards: 'r', terminals: 'done', next_observations: 'next' });
    expect([ds.size, ds.obsDim, ds.actDim]).toEqual([2, 3, 1]);
    expect(Array.from(ds.next_observations)).toEqual([1, 2, 3, 7, 7, 7]);
    expect(Array.from(ds.actions)).toEqual([0.5, -0.5]);
    const { dataset: two } = await loadJsonlDataset(p, { observations: ['obs[0]', 'obs[2]'], actions: ['act.u'], rewards: 'r', terminals: 'done', next_observations: ['next[0]', 'next[2]'] });
    expect(Array.from(two.observations)).toEqual([0, 2, 1, 3]);
  });

  it('names the line and the column', async () => {
    const p = file('b.jsonl', ['{"obs":[0,1],"a":0,"r":0}', '{"obs":[0],"a":0,"r":0}'].join('\n'));
    await expect(loadJsonlDataset(p, { observations: 'obs', actions: 'a', rewards: 'r' })).rejects.toThrow('line 2, column "obs": expected an array of 2 numbers (as line 1), got 1');
    const q = file('c.jsonl', ['{"obs":[0,1],"a":0,"r":0}', '{"obs":[0,null],"a":0,"r":0}'].join('\n'));
    await expect(loadJsonlDataset(q, { observations: 'obs', actions: 'a', rewards: 'r' })).rejects.toThrow('line 2, column "obs[1]": expected a finite number representable as float32, got null');
    const s = file('d.jsonl', '{"obs":[0,1],"a":0,"r":0}\n{"obs":[0,1],"r":0}\n');
    await expect(loadJsonlDataset(s, { observations: 'obs', actions: 'a', rewards: 'r' })).rejects.toThrow('line 2, column "a": expected a finite number representable as float32, got nothing (missing)');
    const t = file('e.jsonl', '{"obs":[0,1],"a":0,"r":0}\n{"obs":[0,1],\n');
    await expect(loadJsonlDataset(t, { observations: 'obs', actions: 'a', rewards: 'r' })).rejects.toThrow(/line 2: not valid JSON/);
  });
});

describe('parseColumnMapping', () => {
  it('names the bad key', () => {
    expect(() => parseColumnMapping({ observations: ['x'], actions: [], rewards: 'r' })).toThrow('actions: expected a column name or a non-empty list of column names, got array(0)');
    expect(() => parseColumnMapping({ observations: ['x'], actions: ['u'], rewards: 'r', reward: 'q' })).toThrow('reward: unknown key');
    expect(() => parseColumnMapping({ observations: 'x', actions: 'u' })).toThrow('rewards: expected one column name, got undefined');
    expect(parseColumnMapping({ observations: 'q{1..3}', actions: 'u', rewards: 'r' }).observations).toEqual(['q1', 'q2', 'q3']);
  });
});
