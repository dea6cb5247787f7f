/**
 * MCAP files (rosbag2's default storage since ROS 2 Iron) opened for indexed reading with
 * `@mcap/core`, and their ROS 2 CDR messages decoded with `@foxglove/rosmsg2-serialization`
 * using the `ros2msg` schemas stored in the file (parsed by `@foxglove/rosmsg`): no ROS install
 * and no message packages are needed.
 *
 * Chunk compression: zstd (rosbag2's `--compression-format zstd` and MCAP's default) through
 * `fzstd`, lz4 through `lz4js`; both pure JavaScript.
 */
import { open, readFile, readdir, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { parse as parseMessageDefinition } from '@foxglove/rosmsg';
import { MessageReader } from '@foxglove/rosmsg2-serialization';
import { McapIndexedReader } from '@mcap/core';
import type { McapTypes } from '@mcap/core';
import { decompress as zstdDecompress } from 'fzstd';
import { parse as parseYaml } from 'yaml';
import { ValidationError } from '../core/errors.js';

// lz4js ships CommonJS without types.
const lz4 = createRequire(import.meta.url)('lz4js') as { decompress(src: Uint8Array, maxSize?: number): Uint8Array };

/** An open MCAP file: its indexed reader; `close()` releases the file. */
export interface McapFile {
  path: string;
  reader: McapIndexedReader;
  close(): Promise<void>;
}

/**
 * Opens an MCAP file for indexed reading (the summary section must be present, as rosbag2 writes it).
 * @throws ValidationError naming the file when it is not a readable indexed MCAP file
 */
export async function openMcapFile(path: string): Promise<McapFile> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const readable = {
      size: async () => BigInt(size),
      read: async (offset: bigint, length: bigint) => {
        const buf = new Uint8Array(Number(length));
        const { bytesRead } = await fh.read(buf, 0, buf.length, Number(offset));
        if (bytesRead !== buf.length) throw new Error(`short read at ${offset}: ${bytesRead} of ${length} bytes`);
        return buf;
      },
    };
    const decompressHandlers = {
      zstd: (data: Uint8Array, size: bigint) => zstdDecompress(data, new Uint8Array(Number(size))),
      lz4: (data: Uint8Array, size: bigint) => lz4.decompress(data, Number(size)),
    };
    let reader: McapIndexedReader;
    try {
      reader = await McapIndexedReader.Initialize({ readable, decompressHandlers });
    } catch (err) {
      throw new ValidationError(`openMcapFile(${path})`, 'file', `not a readable indexed MCAP file (${err instanceof Error ? err.message : String(err)})`);
    }
    return { path, reader, close: () => fh.close() };
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/** A decoder per schema id, built on first use from the schema stored in the file. */
export class Ros2MessageDecoder {
  readonly #reader: McapIndexedReader;
  readonly #where: string;
  readonly #byChannel = new Map<number, MessageReader>();

  constructor(reader: McapIndexedReader, where: string) {
    this.#reader = reader;
    this.#where = where;
  }

  /**
   * Decodes one message of `channelId` into a plain object (nested objects, arrays or typed
   * arrays, numbers, bigints for 64-bit integers, strings).
   * @throws ValidationError when the channel is not CDR with a `ros2msg` schema
   */
  decode(message: McapTypes.Message): Record<string, unknown> {
    let r = this.#byChannel.get(message.channelId);
    if (!r) {
      const ch = this.#reader.channelsById.get(message.channelId);
      const schema = ch ? this.#reader.schemasById.get(ch.schemaId) : undefined;
      if (!ch || !schema) throw new ValidationError(this.#where, `channel ${message.channelId}`, 'has no channel or schema record');
      if (ch.messageEncoding !== 'cdr') throw new ValidationError(this.#where, ch.topic, `message encoding "${ch.messageEncoding}" is not supported (expected cdr, as rosbag2 writes)`);
      if (schema.encoding !== 'ros2msg') throw new ValidationError(this.#where, ch.topic, `schema encoding "${schema.encoding}" is not supported (expected ros2msg)`);
      r = new MessageReader(parseMessageDefinition(new TextDecoder().decode(schema.data), { ros2: true }));
      this.#byChannel.set(message.channelId, r);
    }
    return r.readMessage<Record<string, unknown>>(message.data);
  }
}

/**
 * The MCAP files of a bag: the file itself, or for a rosbag2 directory the files its
 * `metadata.yaml` lists (`relative_file_paths`), else every `*.mcap` in it by name.
 */
export async function bagFiles(path: string): Promise<string[]> {
  if (!(await stat(path)).isDirectory()) return [path];
  const where = `bagFiles(${path})`;
  let listed: string[] | undefined;
  try {
    const meta = parseYaml(await readFile(join(path, 'metadata.yaml'), 'utf8')) as { rosbag2_bagfile_information?: { relative_file_paths?: unknown; storage_identifier?: unknown } };
    const info = meta?.rosbag2_bagfile_information;
    if (info?.storage_identifier !== undefined && info.storage_identifier !== 'mcap') {
      throw new ValidationError(where, 'metadata.yaml', `storage "${String(info.storage_identifier)}" is not supported (expected mcap; convert sqlite3 bags with ros2 bag convert)`);
    }
    if (Array.isArray(info?.relative_file_paths)) listed = info.relative_file_paths.map(String);
  } catch (err) {
    if (err instanceof ValidationError) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const files = listed ?? (await readdir(path)).filter((f) => f.endsWith('.mcap')).sort();
  if (files.length === 0) throw new ValidationError(where, 'path', 'holds no .mcap file');
  return files.map((f) => join(path, f));
}
