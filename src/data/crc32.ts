/**
 * CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320: the checksum of zip, gzip and PNG).
 *
 * Uses `zlib.crc32` where Node has it (added in Node 20.15 / 22.2) and a table-driven
 * fallback otherwise, since `package.json` allows any Node 20. Both give identical values.
 */
import * as zlib from 'node:zlib';

type Crc32Fn = (data: Uint8Array, value?: number) => number;

let table: Uint32Array | undefined;

/**
 * The portable implementation (exported so tests can compare it with `zlib.crc32`).
 * @param data bytes to checksum
 * @param value a running CRC from a previous call, to checksum data in pieces. Default 0.
 * @example crc32Portable(new TextEncoder().encode('123456789')) === 0xcbf43926
 */
export function crc32Portable(data: Uint8Array, value = 0): number {
  if (table === undefined) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let crc = (value ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) crc = table[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

// Looked up dynamically: older Node 20 releases have no zlib.crc32.
const native = (zlib as unknown as { crc32?: Crc32Fn }).crc32;

/**
 * CRC-32 of `data` as an unsigned 32-bit integer.
 * @param value a running CRC to continue from. Default 0.
 * @example crc32(new TextEncoder().encode('123456789')) === 0xcbf43926
 */
export function crc32(data: Uint8Array, value = 0): number {
  return native !== undefined ? native(data, value) >>> 0 : crc32Portable(data, value);
}
