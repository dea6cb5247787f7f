import { mkdtemp, readFile, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { writeFileAtomic } from '../../src/data/atomicWrite.js';
import {
  BufferFormatError,
  BufferWriter,
  MANIFEST_FILE,
  decodeSegment,
  encodeSegment,
  loadBuffer,
  parseManifest,
  readManifest,
  rowBytes,
  saveBuffer,
} from '../../src/data/bufferStore.js';
import { crc32, crc32Portable } from '../../src/data/crc32.js';
import { ReplayBuffer } from '../../src/data/replayBuffer.js';
import type { Batch, Transition } from '../../src/data/transition.js';
import { allocBatch } from '../../src/data/transition.js';

const OBS = 3;
const ACT = 2;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mbrl-buffer-test-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Seeded transitions with awkward values: -0, subnormals, large and negative stamps. */
function transitions(n: number, seed: number): Transition[] {
  const rng = new Rng(seed);
  const special = [-0, 1e-40, -3.4e38, 3.4e38, 1.5e-45];
  return Array.from({ length: n }, (_, i) => ({
    obs: Array.from({ length: OBS }, (_, j) => (i === j ? special[j] : rng.normal(0, 10))),
    action: Array.from({ length: ACT }, () => rng.uniform(-1, 1)),
    reward: i === 3 ? special[3 + (i % 2)] : rng.normal(),
    nextObs: Array.from({ length: OBS }, () => rng.normal(0, 10)),
    terminated: rng.int(10) === 0,
    truncated: rng.int(15) === 0,
    stampNs: i === 0 ? -5n : i === 1 ? 2n ** 62n + 12345n : 1_700_000_000_123_456_789n + BigInt(i) * 10_000_000n,
  }));
}

function bufferOf(ts: Transition[], capacity = ts.length): ReplayBuffer {
  const buf = new ReplayBuffer({ capacity, obsDim: OBS, actDim: ACT });
  buf.addBatch(ts);
  return buf;
}

/** Every column's bytes: equality means bit-for-bit equal contents (-0 and stamps included). */
function bytesOf(b: Batch): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const key of ['obs', 'action', 'reward', 'nextObs', 'terminated', 'truncated', 'episodeId', 'stampNs'] as const) {
    const col = b[key];
    out[key] = Array.from(new Uint8Array(col.buffer, col.byteOffset, col.byteLength));
  }
  return out;
}

async function expectFormatError(p: Promise<unknown>, problem: string, ...fragments: string[]): Promise<BufferFormatError> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(BufferFormatError);
  const e = err as BufferFormatError;
  expect(e.problem).toBe(problem);
  for (const f of fragments) expect(e.message).toContain(f);
  return e;
}

describe('crc32', () => {
  it('matches the standard check value and zlib on random data', () => {
    const check = new TextEncoder().encode('123456789');
    expect(crc32(check)).toBe(0xcbf43926);
    expect(crc32Portable(check)).toBe(0xcbf43926);
    const data = new Uint8Array(10_000);
    new Rng(1).fillUniform(new Float32Array(data.buffer));
    expect(crc32Portable(data)).toBe(zlib.crc32(data));
    expect(crc32Portable(data.subarray(5000), crc32Portable(data.subarray(0, 5000)))).toBe(crc32(data));
  });
});

describe('segment encoding', () => {
  it('lays columns out back to back, little-endian, in the manifest order', () => {
    const b = allocBatch(2, 1, 1);
    b.stampNs.set([1n, -2n]);
    b.obs.set([1, 2]);
    b.action.set([3, 4]);
    b.reward.set([1, -1]);
    b.nextObs.set([5, 6]);
    b.episodeId.set([0x01020304, 7]);
    b.terminated.set([1, 0]);
    b.truncated.set([0, 1]);
    const bytes = encodeSegment(b);
    expect(rowBytes(1, 1)).toBe(8 + 4 + 4 + 4 + 4 + 4 + 1 + 1);
    expect(bytes.length).toBe(2 * 30);
    expect(Array.from(bytes.subarray(0, 16))).toEqual([1, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    // obs at 16, action at 24, reward at 32: 1.0f = 00 00 80 3f, -1.0f = 00 00 80 bf.
    expect(Array.from(bytes.subarray(32, 40))).toEqual([0, 0, 0x80, 0x3f, 0, 0, 0x80, 0xbf]);
    // nextObs at 40, episodeId at 48, terminated at 56, truncated at 58.
    expect(Array.from(bytes.subarray(48, 52))).toEqual([4, 3, 2, 1]);
    expect(Array.from(bytes.subarray(56, 60))).toEqual([1, 0, 0, 1]);
    expect(bytesOf(decodeSegment(bytes, 1, 1))).toEqual(bytesOf(b));
  });
});

describe('saveBuffer / loadBuffer', () => {
  it('round-trips bit for bit, across several segments', async () => {
    const buf = bufferOf(transitions(30, 1));
    const manifest = await saveBuffer(buf, dir, { segmentRows: 7 });
    expect(manifest.segments.map((s) => s.rows)).toEqual([7, 7, 7, 7, 2]);
    expect((await readdir(dir)).sort()).toEqual([MANIFEST_FILE, ...manifest.segments.map((s) => s.file)].sort());
    const onDisk = JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8'));
    expect(onDisk).toMatchObject({ format: 'mbrl-node.replay-buffer', version: 1, obsDim: OBS, actDim: ACT, rows: 30 });
    expect(onDisk.columns.map((c: { name: string; dtype: string; shape: number[] }) => `${c.name}:${c.dtype}[${c.shape}]`)).toEqual([
      'stampNs:int64[]',
      'obs:float32[3]',
      'action:float32[2]',
      'reward:float32[]',
      'nextObs:float32[3]',
      'episodeId:uint32[]',
      'terminated:uint8[]',
      'truncated:uint8[]',
    ]);
    const { buffer, warnings, skippedRows } = await loadBuffer(dir);
    expect(warnings).toEqual([]);
    expect(skippedRows).toBe(0);
    expect(buffer.size).toBe(30);
    expect(buffer.capacity).toBe(30);
    expect(bytesOf(buffer.slice())).toEqual(bytesOf(buf.slice()));
    expect(buffer.get(0).stampNs).toBe(-5n);
    expect(buffer.get(1).stampNs).toBe(2n ** 62n + 12345n);
    expect(Object.is(buffer.get(0).obs[0], -0)).toBe(true);
    expect(buffer.nextEpisodeId).toBe(buf.nextEpisodeId);
  });

  it('saves a wrapped buffer oldest first, and an empty one', async () => {
    const ts = transitions(12, 2);
    const buf = bufferOf(ts, 5);
    await saveBuffer(buf, dir, { segmentRows: 2 });
    const { buffer } = await loadBuffer(dir);
    expect(bytesOf(buffer.slice())).toEqual(bytesOf(buf.slice()));
    expect(Array.from(buffer.slice().reward)).toEqual(ts.slice(7).map((t) => Math.fround(t.reward)));

    const empty = join(dir, 'empty');
    await saveBuffer(new ReplayBuffer({ capacity: 3, obsDim: OBS, actDim: ACT }), empty);
    const loaded = await loadBuffer(empty);
    expect(loaded.buffer.size).toBe(0);
    expect(loaded.manifest.segments).toEqual([]);
  });

  it('keeps the newest rows when loading into a smaller capacity', async () => {
    const ts = transitions(30, 3);
    await saveBuffer(bufferOf(ts), dir, { segmentRows: 7 });
    const { buffer, skippedRows } = await loadBuffer(dir, { capacity: 10 });
    expect(skippedRows).toBe(20);
    expect(buffer.capacity).toBe(10);
    expect(bytesOf(buffer.slice())).toEqual(bytesOf(bufferOf(ts).slice(20, 30)));
    const larger = await loadBuffer(dir, { capacity: 100 });
    expect(larger.buffer.size).toBe(30);
    expect(larger.buffer.capacity).toBe(100);
  });

  it('refuses to overwrite unless asked, and replaces the old segments when asked', async () => {
    await saveBuffer(bufferOf(transitions(10, 4)), dir, { segmentRows: 3 });
    await expect(saveBuffer(bufferOf(transitions(5, 5)), dir)).rejects.toThrow(/already holds a replay buffer.*overwrite/);
    const next = bufferOf(transitions(5, 5));
    const m = await saveBuffer(next, dir, { segmentRows: 3, overwrite: true });
    expect(m.segments.map((s) => s.file)).toEqual(['segment-000004.bin', 'segment-000005.bin']);
    expect((await readdir(dir)).sort()).toEqual([MANIFEST_FILE, 'segment-000004.bin', 'segment-000005.bin']);
    const { buffer, warnings } = await loadBuffer(dir);
    expect(warnings).toEqual([]);
    expect(bytesOf(buffer.slice())).toEqual(bytesOf(next.slice()));
  });
});

describe('corrupt directories are detected', () => {
  beforeEach(async () => {
    await saveBuffer(bufferOf(transitions(20, 6)), dir, { segmentRows: 8 }); // segments 0, 1, 2
  });

  it('a flipped byte: checksum mismatch naming the segment', async () => {
    const file = join(dir, 'segment-000001.bin');
    const bytes = await readFile(file);
    bytes[100] ^= 0x10;
    await writeFile(file, bytes);
    const e = await expectFormatError(loadBuffer(dir), 'checksum', 'segment-000001.bin', 'checksum mismatch');
    expect(e.file).toBe(file);
  });

  it('a truncated segment: expected and actual byte counts', async () => {
    const file = join(dir, 'segment-000002.bin');
    const size = (await stat(file)).size;
    expect(size).toBe(4 * rowBytes(OBS, ACT));
    await truncate(file, size - 10);
    await expectFormatError(loadBuffer(dir), 'truncated', 'segment-000002.bin', `truncated: expected ${size} bytes, got ${size - 10}`);
  });

  it('trailing bytes: wrong size', async () => {
    const file = join(dir, 'segment-000000.bin');
    const bytes = await readFile(file);
    await writeFile(file, Buffer.concat([bytes, Buffer.from([0])]));
    await expectFormatError(loadBuffer(dir), 'size', 'segment-000000.bin', `expected ${bytes.length} bytes, got ${bytes.length + 1}`);
  });

  it('a deleted segment, and a deleted manifest', async () => {
    await rm(join(dir, 'segment-000001.bin'));
    await expectFormatError(loadBuffer(dir), 'missing', 'segment-000001.bin', 'does not exist');
    await rm(join(dir, MANIFEST_FILE));
    await expectFormatError(loadBuffer(dir), 'missing', MANIFEST_FILE);
  });

  it('a corrupt segment older than the capacity keeps is still reported', async () => {
    const file = join(dir, 'segment-000000.bin');
    const bytes = await readFile(file);
    bytes[0] ^= 1;
    await writeFile(file, bytes);
    await expectFormatError(loadBuffer(dir, { capacity: 4 }), 'checksum', 'segment-000000.bin');
  });

  it('garbage and invalid manifests', async () => {
    const path = join(dir, MANIFEST_FILE);
    const good = JSON.parse(await readFile(path, 'utf8'));
    const cases: [string, string, ...string[]][] = [
      ['{"format": "mbrl-node.replay', 'manifest', 'manifest JSON invalid'],
      ['[1, 2]', 'manifest', 'expected an object'],
      [JSON.stringify({ ...good, format: 'something-else' }), 'format', '"something-else"'],
      [JSON.stringify({ ...good, version: 2 }), 'version', 'unknown version 2'],
      [JSON.stringify({ ...good, obsDim: 0 }), 'manifest', 'obsDim'],
      [JSON.stringify({ ...good, rowBytes: 1 }), 'manifest', 'rowBytes'],
      [JSON.stringify({ ...good, rows: 21 }), 'manifest', 'rows', 'total 20'],
      [JSON.stringify({ ...good, columns: good.columns.slice(1) }), 'manifest', 'columns', 'expected 8 columns'],
      [JSON.stringify({ ...good, columns: [{ ...good.columns[0], dtype: 'float64' }, ...good.columns.slice(1)] }), 'manifest', 'columns[0]'],
      [JSON.stringify({ ...good, segments: [{ ...good.segments[0], crc32: -1 }, ...good.segments.slice(1)] }), 'manifest', 'segments[0].crc32'],
      [JSON.stringify({ ...good, segments: [{ ...good.segments[0], file: '../../etc/passwd' }] }), 'manifest', 'segments[0].file'],
      [JSON.stringify({ ...good, segments: [good.segments[0], good.segments[0]] }), 'manifest', 'segments[1].file', 'listed twice'],
      [JSON.stringify({ ...good, segments: [{ ...good.segments[0], byteLength: 3 }] }), 'manifest', 'segments[0].byteLength'],
    ];
    for (const [text, problem, ...fragments] of cases) {
      await writeFile(path, text);
      await expectFormatError(loadBuffer(dir), problem, MANIFEST_FILE, ...fragments);
      expect(() => parseManifest(text)).toThrow(BufferFormatError);
    }
    // Unknown keys are ignored (forward compatible additions).
    await writeFile(path, JSON.stringify({ ...good, comment: 'recorded on robot 3' }));
    expect((await loadBuffer(dir)).buffer.size).toBe(20);
  });

  it('a segment not in the manifest and a leftover temp file: warnings, the rest loaded', async () => {
    const original = (await loadBuffer(dir)).buffer.slice();
    await writeFile(join(dir, 'segment-000003.bin'), encodeSegment(bufferOf(transitions(4, 9)).slice()));
    await writeFile(join(dir, `${MANIFEST_FILE}.tmp-123-4`), '{"partial');
    await writeFile(join(dir, 'README.txt'), 'notes');
    const { buffer, warnings } = await loadBuffer(dir);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/manifest\.json\.tmp-123-4: leftover temporary file/);
    expect(warnings[1]).toMatch(/segment-000003\.bin: on disk but not in manifest\.json/);
    expect(bytesOf(buffer.slice())).toEqual(bytesOf(original));
  });
});

describe('BufferWriter', () => {
  it('after a crash (writer dropped unflushed), loading returns exactly the flushed rows', async () => {
    const ts = transitions(13, 7);
    const writer = await BufferWriter.open(dir, { obsDim: OBS, actDim: ACT, segmentRows: 4 });
    for (const t of ts.slice(0, 10)) writer.append(t); // two full segments written in the background
    await writer.flush(); // and a third with rows 8, 9
    expect(writer.rowsOnDisk).toBe(10);
    expect(writer.segmentCount).toBe(3);
    for (const t of ts.slice(10)) writer.append(t); // staged only: lost in the "crash"
    expect(writer.rowsAppended).toBe(13);
    // The writer is dropped here without flush or close.
    const { buffer, warnings } = await loadBuffer(dir);
    expect(warnings).toEqual([]);
    expect(buffer.size).toBe(10);
    expect(bytesOf(buffer.slice())).toEqual(bytesOf(bufferOf(ts).slice(0, 10)));
  });

  it('writes full segments without flush, and close writes the rest', async () => {
    const ts = transitions(9, 8);
    const writer = await BufferWriter.open(dir, { obsDim: OBS, actDim: ACT, segmentRows: 4 });
    expect((await loadBuffer(dir)).buffer.size).toBe(0); // an empty manifest from the start
    for (const t of ts) writer.append(t);
    await writer.close();
    await writer.close(); // idempotent
    expect(() => writer.append(ts[0])).toThrow(/closed/);
    const { buffer, manifest } = await loadBuffer(dir);
    expect(manifest.segments.map((s) => s.rows)).toEqual([4, 4, 1]);
    expect(bytesOf(buffer.slice())).toEqual(bytesOf(bufferOf(ts).slice()));
  });

  it('rejects a bad row without staging it', async () => {
    const writer = await BufferWriter.open(dir, { obsDim: OBS, actDim: ACT, segmentRows: 2 });
    writer.append(transitions(1, 1)[0]);
    const bad = { ...transitions(1, 2)[0], nextObs: [0, NaN, 0] };
    expect(() => writer.append(bad)).toThrow(ValidationError);
    expect(() => writer.append(bad)).toThrow(/nextObs\[1\]/);
    expect(writer.rowsAppended).toBe(1);
    await writer.close();
    expect((await loadBuffer(dir)).buffer.size).toBe(1);
  });

  it('refuses an existing buffer in create mode, and continues it in append mode', async () => {
    const ts = transitions(10, 9).map((t) => ({ ...t, terminated: false, truncated: false }));
    const first = await BufferWriter.open(dir, { obsDim: OBS, actDim: ACT, segmentRows: 3 });
    for (const t of ts.slice(0, 5)) first.append(t);
    await first.close();
    await expect(BufferWriter.open(dir, { obsDim: OBS, actDim: ACT })).rejects.toThrow(/already holds a replay buffer.*append/);
    await expect(BufferWriter.open(dir, { obsDim: OBS + 1, actDim: ACT, mode: 'append' })).rejects.toThrow(/obsDim/);
    const second = await BufferWriter.open(dir, { obsDim: OBS, actDim: ACT, segmentRows: 3, mode: 'append' });
    for (const t of ts.slice(5)) second.append(t);
    await second.close();
    const { buffer, manifest } = await loadBuffer(dir);
    expect(manifest.segments.map((s) => s.file)).toEqual(['segment-000000.bin', 'segment-000001.bin', 'segment-000002.bin', 'segment-000003.bin']);
    expect(buffer.size).toBe(10);
    // The restarted recording is a new episode.
    expect(Array.from(buffer.slice().episodeId)).toEqual([0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
    expect(Array.from(buffer.slice().reward)).toEqual(Array.from(bufferOf(ts).slice().reward));
  });

  it('a crash between a segment and its manifest update leaves a stray segment, reported and ignored', async () => {
    let manifestWrites = 0;
    const failing = async (path: string, data: Uint8Array | string): Promise<void> => {
      if (path.endsWith(MANIFEST_FILE) && ++manifestWrites === 3) throw new Error('simulated power loss');
      await writeFileAtomic(path, data);
    };
    const ts = transitions(12, 10);
    // Manifest writes: 1 at open, 2 after segment 0; the one after segment 1 "crashes".
    const writer = await BufferWriter.open(dir, { obsDim: OBS, actDim: ACT, segmentRows: 4, writeFile: failing });
    for (const t of ts.slice(0, 8)) writer.append(t);
    await expect(writer.flush()).rejects.toThrow(/earlier segment write .* failed.*simulated power loss/);
    expect(() => writer.append(ts[8])).toThrow(/simulated power loss/);
    expect(writer.rowsOnDisk).toBe(4);
    const { buffer, warnings } = await loadBuffer(dir);
    expect(buffer.size).toBe(4);
    expect(bytesOf(buffer.slice())).toEqual(bytesOf(bufferOf(ts).slice(0, 4)));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/segment-000001\.bin: on disk but not in manifest\.json/);
    // A writer continuing the directory does not reuse the stray's name.
    const again = await BufferWriter.open(dir, { obsDim: OBS, actDim: ACT, segmentRows: 4, mode: 'append' });
    again.append(ts[8]);
    await again.close();
    expect((await readManifest(dir)).segments.map((s) => s.file)).toEqual(['segment-000000.bin', 'segment-000002.bin']);
  });
});

describe('writeFileAtomic', () => {
  it('writes and replaces a file, leaving no temporary files', async () => {
    const path = join(dir, 'x.json');
    await writeFileAtomic(path, '{"a":1}');
    await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
    expect(Array.from(await readFile(path))).toEqual([1, 2, 3]);
    expect(await readdir(dir)).toEqual(['x.json']);
  });

  it('fails without a trace when the directory does not exist', async () => {
    await expect(writeFileAtomic(join(dir, 'missing', 'x.bin'), 'data')).rejects.toThrow(/ENOENT/);
    expect(await readdir(dir)).toEqual([]);
  });
});
