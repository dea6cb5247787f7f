// BufferSegments: the node's experience on disk in segments, recovered after a crash.
//
// The crash test kills a child process with SIGKILL while it appends, so the child runs the
// compiled module (dist/node/bufferSegments.js: `npm run build` first, which `npm test` does;
// MBRL_DIST_DIR points elsewhere). Bound checked: after `total` appends, where the writer waits
// for each segment before appending past it, at least `total − S` rows are recovered, and they
// are exactly rows 0, 1, 2, … in order (nothing corrupt, no gap, no duplicate).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadBuffer } from '../../src/data/bufferStore.js';
import type { Transition } from '../../src/data/transition.js';
import { BufferSegments } from '../../src/node/bufferSegments.js';

const DIST = process.env.MBRL_DIST_DIR ? resolve(process.env.MBRL_DIST_DIR) : resolve(import.meta.dirname, '../../dist');

/** The compiled module `src/node/<name>.ts`, checked to exist and to be newer than its source. */
function compiled(name: string): string {
  const js = join(DIST, 'node', `${name}.js`);
  const ts = resolve(import.meta.dirname, '../../src/node', `${name}.ts`);
  if (!existsSync(js)) throw new Error(`${js} is missing: this test runs the compiled module in a child process; run \`npm run build\` first (npm test does)`);
  if (statSync(js).mtimeMs < statSync(ts).mtimeMs) throw new Error(`${js} is older than ${ts}: run \`npm run build\` first`);
  return js;
}

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'mbrl-segments-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Row i of the stream: every field derived from i, so a recovered row tells which it is. */
function row(i: number): Transition {
  return { obs: [i, i + 0.5, -i], action: [i % 7], reward: i / 4, nextObs: [i + 1, i + 1.5, -i - 1], terminated: false, truncated: (i + 1) % 40 === 0, stampNs: BigInt(i) * 20_000_000n };
}

/** Checks that `buf` holds rows 0 … size−1 of `row(i)`. */
function expectRows(buf: { size: number; get(i: number): { obs: Float32Array; reward: number; stampNs: bigint } }): void {
  for (let i = 0; i < buf.size; i++) {
    const r = buf.get(i);
    if (r.obs[0] !== i || r.obs[2] !== -i || r.reward !== Math.fround(i / 4) || r.stampNs !== BigInt(i) * 20_000_000n) {
      throw new Error(`recovered row ${i} is row ${r.obs[0]} (reward ${r.reward}): out of order or corrupt`);
    }
  }
}

describe('BufferSegments', () => {
  it('writes a segment every S rows, reports what a crash would lose, and recovers the committed rows', async () => {
    const dir = tempDir();
    const s = await BufferSegments.open(dir, { obsDim: 3, actDim: 1, segmentRows: 10 });
    expect(s.recovered.size).toBe(0);
    const completed: number[] = [];
    for (let i = 0; i < 25; i++) if (s.append(row(i))) completed.push(i);
    expect(completed).toEqual([9, 19]);
    await s.whenWritten();
    expect({ committed: s.committedRows, uncommitted: s.uncommittedRows, staged: s.stagedRows }).toEqual({ committed: 20, uncommitted: 5, staged: 5 });
    expect(readdirSync(dir).sort()).toEqual(['manifest.json', 'segment-000000.bin', 'segment-000001.bin']);
    // A "crash" (the first instance is abandoned): the 20 committed rows come back, the 5 staged do not.
    const again = await BufferSegments.open(dir, { obsDim: 3, actDim: 1, segmentRows: 10 });
    expect(again.recovered.size).toBe(20);
    expectRows(again.recovered);
    expect(again.recovery).toEqual({ rows: 20, segments: 2, adopted: null, removedTempFiles: [], warnings: [], skippedRows: 0 });
    // Closing writes the staged rows as a shorter segment.
    for (let i = 20; i < 23; i++) again.append(row(i));
    await again.close();
    expect(() => again.append(row(23))).toThrow(`BufferSegments.append: ${dir} is closed`);
    const { buffer } = await loadBuffer(dir);
    expect(buffer.size).toBe(23);
    expectRows(buffer);
  });

  it('adopts a complete segment that a crash left unlisted, and deletes leftover temporary files', async () => {
    const dir = tempDir();
    let manifestWrites = 0;
    // The second manifest update "crashes": segment 1 is on disk, the manifest still lists segment 0 only.
    const s = await BufferSegments.open(dir, {
      obsDim: 3,
      actDim: 1,
      segmentRows: 8,
      writeFile: async (path, data) => {
        if (path.endsWith('manifest.json') && ++manifestWrites === 3) throw new Error('simulated crash');
        const { writeFileAtomic } = await import('../../src/data/atomicWrite.js');
        await writeFileAtomic(path, data);
      },
    });
    for (let i = 0; i < 16; i++) s.append(row(i));
    await expect(s.whenWritten()).rejects.toThrow(/simulated crash/);
    writeFileSync(join(dir, 'segment-000002.bin.tmp-4242-0'), 'half a write');
    const r = await BufferSegments.open(dir, { obsDim: 3, actDim: 1, segmentRows: 8 });
    expect(r.recovery).toEqual({ rows: 16, segments: 2, adopted: 'segment-000001.bin', removedTempFiles: ['segment-000002.bin.tmp-4242-0'], warnings: [], skippedRows: 0 });
    expectRows(r.recovered);
    // Appends continue after the adopted segment.
    for (let i = 16; i < 24; i++) r.append(row(i));
    await r.whenWritten();
    const { buffer, manifest } = await loadBuffer(dir);
    expect(manifest.segments.map((g) => g.file)).toEqual(['segment-000000.bin', 'segment-000001.bin', 'segment-000002.bin']);
    expectRows(buffer);
    expect(buffer.size).toBe(24);
  });

  it('keeps the newest rows with recoverCapacity, and refuses a directory of other dimensions', async () => {
    const dir = tempDir();
    const s = await BufferSegments.open(dir, { obsDim: 3, actDim: 1, segmentRows: 5 });
    for (let i = 0; i < 15; i++) s.append(row(i));
    await s.close();
    const r = await BufferSegments.open(dir, { obsDim: 3, actDim: 1, segmentRows: 5, recoverCapacity: 4 });
    expect(r.recovered.size).toBe(4);
    expect(r.recovered.get(0).obs[0]).toBe(11);
    expect(r.recovery).toMatchObject({ rows: 15, skippedRows: 11 });
    await expect(BufferSegments.open(dir, { obsDim: 4, actDim: 1 })).rejects.toThrow(`BufferWriter.open: obsDim: the buffer in ${dir} has obsDim 3, got 4`);
  });

  it('after SIGKILL mid-stream, recovers at least total − S rows, all intact and in order (4 kills, restarting each time)', async () => {
    const modUrl = pathToFileURL(compiled('bufferSegments')).href;
    const dir = tempDir();
    const script = join(tempDir(), 'appender.mjs');
    // Appends row(i) forever; announces each total before the append (so the announced maximum
    // is ≥ the true total), and waits for each completed segment before appending past it. Kills
    // land while a segment is being written (the worst case: S rows in flight) or between
    // boundaries (fewer staged rows lost).
    writeFileSync(
      script,
      `const { BufferSegments } = await import(process.argv[2]);
const S = Number(process.argv[4]);
const row = ${row.toString()};
const store = await BufferSegments.open(process.argv[3], { obsDim: 3, actDim: 1, segmentRows: S });
let i = store.recovered.size;
process.stdout.write('recovered ' + i + '\\n');
for (;;) {
  process.stdout.write('total ' + (i + 1) + '\\n');
  if (store.append(row(i++))) await store.whenWritten();
  // A pause now and then, so that kills also land between segment boundaries.
  else if (i % 10 === 3) await new Promise((r) => setTimeout(r, 1));
}
`,
    );
    const S = 50;
    let expectedStart = 0;
    for (const extra of [150, 260, 75, 311]) {
      const child = spawn(process.execPath, [script, modUrl, dir, String(S)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      let killed = false;
      const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, signal) => r(signal)));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /total (\d+)\n[^\n]*$/.exec(out);
        if (!killed && m && Number(m[1]) >= expectedStart + extra) {
          killed = true;
          child.kill('SIGKILL');
        }
      });
      const signal = await exited;
      expect(err).toBe('');
      expect(signal).toBe('SIGKILL');
      expect(Number(/recovered (\d+)/.exec(out)?.[1])).toBe(expectedStart); // the child resumed where the last run's recovery ended
      const announced = Math.max(...[...out.matchAll(/total (\d+)/g)].map((m) => Number(m[1])));
      // Restart: recovery must succeed (every listed segment passes its size and CRC checks).
      const store = await BufferSegments.open(dir, { obsDim: 3, actDim: 1, segmentRows: S });
      const n = store.recovered.size;
      expect(n).toBeGreaterThanOrEqual(announced - S);
      expect(n).toBeLessThanOrEqual(announced);
      expectRows(store.recovered);
      expect((await loadBuffer(dir)).buffer.size).toBe(n);
      expectedStart = n;
    }
  });
});
