// D4RL-format HDF5: a file written by h5py in D4RL's layout (test/data/fixtures/d4rl-small.hdf5,
// made by makeD4rlFixture.py: h5py booleans, float64 actions, infos/, metadata/), a write/read
// round trip, the reconstruction of next_observations, errors, atomic writes, and (when a Python
// with h5py is present) h5py reading what we wrote.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OfflineDataset } from '../../src/data/dataset.js';
import { loadHdf5Dataset, saveHdf5Dataset } from '../../src/data/hdf5Dataset.js';

const FIXTURE = join(import.meta.dirname, 'fixtures/d4rl-small.hdf5');
const dir = mkdtempSync(join(tmpdir(), 'mbrl-h5-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PYTHON_WITH_H5PY = ['/usr/bin/python3', 'python3'].find((py) => spawnSync(py, ['-c', 'import h5py'], { stdio: 'ignore' }).status === 0);
const H5PY_SKIP = 'SKIPPED: no python3 with h5py (Debian package python3-h5py)';
if (!PYTHON_WITH_H5PY) console.warn(H5PY_SKIP);

describe('loadHdf5Dataset', () => {
  it('reads a D4RL-layout file written by h5py', async () => {
    const { dataset: ds, notes } = await loadHdf5Dataset(FIXTURE);
    expect([ds.size, ds.obsDim, ds.actDim]).toEqual([7, 3, 2]);
    // Row i: observations [i, 10 i, -i], actions [i/2, -i/2] (float64 in the file), reward i/4.
    expect(Array.from(ds.observations.subarray(3 * 3, 4 * 3))).toEqual([3, 30, -3]);
    expect(Array.from(ds.actions.subarray(5 * 2, 6 * 2))).toEqual([2.5, -2.5]);
    expect(ds.rewards[6]).toBe(1.5);
    expect(Array.from(ds.terminals)).toEqual([0, 0, 1, 0, 0, 0, 0]);
    expect(Array.from(ds.timeouts)).toEqual([0, 0, 0, 0, 0, 1, 0]);
    expect(ds.episodes().map((e) => [e.start, e.end])).toEqual([[0, 3], [3, 6], [6, 7]]);
    // Terminal row 2's next observation is its own terminal state [200, 0, 0], not row 3's.
    expect(Array.from(ds.next_observations.subarray(2 * 3, 3 * 3))).toEqual([200, 0, 0]);
    // The fixture breaks the rule once, at row 4 (next_observations[4][1] off by 0.5).
    expect(ds.checkAlignment()).toMatchObject({ checked: 4, mismatches: 1, rows: [4], maxAbsDiff: 0.5 });
    expect(ds.metadata).toEqual({ source: FIXTURE, envId: 'Fixture-v0', algorithm: 'SAC', policy: 'fixture-policy' });
    expect(notes).toContain('actions: <d converted to float32');
    expect(notes).toContain('ignored: infos');
  });

  it('round-trips every column and the metadata', async () => {
    const { dataset: a } = await loadHdf5Dataset(FIXTURE);
    const out = join(dir, 'sub/round.h5');
    await saveHdf5Dataset(a, out, { compression: 4 });
    const { dataset: b, notes } = await loadHdf5Dataset(out);
    for (const k of ['observations', 'actions', 'rewards', 'next_observations', 'terminals', 'timeouts'] as const) expect(b[k]).toEqual(a[k]);
    expect([b.obsDim, b.actDim]).toEqual([3, 2]);
    expect(b.metadata).toEqual({ ...a.metadata, source: a.metadata.source });
    expect(notes).toEqual([]);
    // No temporary file is left beside the output.
    expect(readdirSync(join(dir, 'sub'))).toEqual(['round.h5']);
  });

  it('writes and reads an empty dataset', async () => {
    const empty = new OfflineDataset(
      { observations: new Float32Array(0), actions: new Float32Array(0), rewards: new Float32Array(0), next_observations: new Float32Array(0), terminals: new Uint8Array(0), timeouts: new Uint8Array(0) },
      { obsDim: 4, actDim: 2 },
    );
    const out = join(dir, 'empty.h5');
    await saveHdf5Dataset(empty, out);
    const { dataset } = await loadHdf5Dataset(out);
    expect([dataset.size, dataset.obsDim, dataset.actDim]).toEqual([0, 4, 2]);
  });

  it.skipIf(!PYTHON_WITH_H5PY)('writes files that h5py reads with D4RL names and shapes', async () => {
    const { dataset } = await loadHdf5Dataset(FIXTURE);
    const out = join(dir, 'for-h5py.h5');
    await saveHdf5Dataset(dataset, out);
    const script = [
      'import sys, json, h5py',
      'f = h5py.File(sys.argv[1], "r")',
      'print(json.dumps({k: [list(f[k].shape), str(f[k].dtype)] for k in ["observations", "actions", "rewards", "next_observations", "terminals", "timeouts"]} | {"obs3": f["observations"][3].tolist(), "env": f["metadata/env_id"][()].decode()}))',
    ].join('\n');
    const r = spawnSync(PYTHON_WITH_H5PY as string, ['-c', script, out], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({
      observations: [[7, 3], 'float32'],
      actions: [[7, 2], 'float32'],
      rewards: [[7], 'float32'],
      next_observations: [[7, 3], 'float32'],
      terminals: [[7], 'uint8'],
      timeouts: [[7], 'uint8'],
      obs3: [3, 30, -3],
      env: 'Fixture-v0',
    });
  });

  it.skipIf(!PYTHON_WITH_H5PY)('without next_observations: takes the next row of the same episode and drops each episode end', async () => {
    const out = join(dir, 'v0.h5');
    const r = spawnSync(PYTHON_WITH_H5PY as string, ['-c', ['import sys, h5py', 'src = h5py.File(sys.argv[1], "r"); dst = h5py.File(sys.argv[2], "w")', 'for k in ["observations", "actions", "rewards", "terminals", "timeouts"]: dst[k] = src[k][()]'].join('\n'), FIXTURE, out]);
    expect(r.status).toBe(0);
    const { dataset: ds, notes } = await loadHdf5Dataset(out);
    // Episodes 0-2 (terminal), 3-5 (timeout), 6 (unfinished): rows 2, 5, 6 have no next row and are dropped.
    expect(ds.size).toBe(4);
    expect(Array.from(ds.observations.filter((_, k) => k % 3 === 0))).toEqual([0, 1, 3, 4]);
    expect(Array.from(ds.next_observations.filter((_, k) => k % 3 === 0))).toEqual([1, 2, 4, 5]);
    // Row 1 (was 1) now ends episode 0 and row 3 (was 4) episode 1, both cut rather than terminal.
    expect(Array.from(ds.timeouts)).toEqual([0, 1, 0, 1]);
    expect(Array.from(ds.terminals)).toEqual([0, 0, 0, 0]);
    expect(ds.checkAlignment().mismatches).toBe(0);
    expect(notes.join('\n')).toContain('(3 rows) has none and was dropped');
  });

  it('names the file and the problem', async () => {
    const json = join(dir, 'x.json');
    writeFileSync(json, '{"observations": []}');
    await expect(loadHdf5Dataset(json)).rejects.toThrow('it looks like JSON');
    await expect(loadHdf5Dataset(join(dir, 'missing.h5'))).rejects.toThrow('ENOENT');
    // Files that break the rules, written with h5wasm directly (saveHdf5Dataset only writes valid data).
    const h5 = await import('h5wasm/node');
    await h5.ready;
    const write = (name: string, cols: Record<string, { data: Float32Array | Float64Array | Uint8Array; shape: number[] }>): string => {
      const p = join(dir, name);
      const f = new h5.File(p, 'w');
      for (const [k, v] of Object.entries(cols)) f.create_dataset({ name: k, data: v.data, shape: v.shape });
      f.close();
      return p;
    };
    const good = {
      observations: { data: new Float32Array(6), shape: [3, 2] },
      actions: { data: new Float32Array(3), shape: [3, 1] },
      rewards: { data: new Float32Array(3), shape: [3] },
      next_observations: { data: new Float32Array(6), shape: [3, 2] },
      terminals: { data: new Uint8Array(3), shape: [3] },
      timeouts: { data: new Uint8Array(3), shape: [3] },
    };
    const nan = write('nan.h5', { ...good, next_observations: { data: Float32Array.from([0, 0, 0, 0, 0, NaN]), shape: [3, 2] } });
    await expect(loadHdf5Dataset(nan)).rejects.toThrow(`loadHdf5Dataset(${nan}): next_observations[2][1]: expected a finite number, got NaN (row 2)`);
    const big = write('big.h5', { ...good, rewards: { data: Float64Array.from([0, 1e39, 0]), shape: [3] } });
    await expect(loadHdf5Dataset(big)).rejects.toThrow('rewards[1]: expected a number representable as float32, got 1e+39 (row 1)');
    const flag = write('flag.h5', { ...good, terminals: { data: Uint8Array.from([0, 0, 3]), shape: [3] } });
    await expect(loadHdf5Dataset(flag)).rejects.toThrow('terminals[2]: expected 0 or 1 (a boolean), got 3 (row 2)');
    const short = write('short.h5', { ...good, actions: { data: new Float32Array(2), shape: [2, 1] } });
    await expect(loadHdf5Dataset(short)).rejects.toThrow('actions: expected 3 rows (as observations), got 2');
    const { observations: _o, ...noObs } = good;
    await expect(loadHdf5Dataset(write('noobs.h5', noObs))).rejects.toThrow('observations: missing (the file has: actions, next_observations, rewards, terminals, timeouts)');
  });
});
