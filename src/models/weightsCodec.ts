import { crc32 } from '../data/crc32.js';
import { checkEnsembleWeights } from './referenceForward.js';
import type { EnsembleSpec, EnsembleWeights } from './types.js';

/** One float32 array inside an encoded weights blob. */
export interface WeightsArrayEntry {
  name: string;
  /** Offset in float32 elements from the start of the blob. */
  offset: number;
  length: number;
}

/** The JSON half of encoded ensemble weights; the other half is one little-endian float32 blob. */
export interface WeightsHeader {
  format: 'mbrl-node.ensemble-weights';
  version: 1;
  spec: EnsembleSpec;
  arrays: WeightsArrayEntry[];
  /** CRC-32 of the blob. */
  crc32: number;
  byteLength: number;
}

/**
 * Packs named float32 arrays into one little-endian blob with a directory and a CRC-32: the
 * container of every weights file (ensemble and policy codecs).
 */
export function packFloat32Arrays(named: readonly (readonly [string, Float32Array])[]): { arrays: WeightsArrayEntry[]; bytes: Uint8Array; crc32: number } {
  const total = named.reduce((s, [, a]) => s + a.length, 0);
  const blob = new Float32Array(total);
  const arrays: WeightsArrayEntry[] = [];
  let offset = 0;
  for (const [name, a] of named) {
    blob.set(a, offset);
    arrays.push({ name, offset, length: a.length });
    offset += a.length;
  }
  // Float32Array is little-endian on every platform Node runs on (x86-64, arm64).
  const bytes = new Uint8Array(blob.buffer);
  return { arrays, bytes, crc32: crc32(bytes) };
}

/**
 * Checks a blob written by `packFloat32Arrays` against its size and checksum, and returns a
 * lookup of its arrays by name (copies; undefined for a name not in the directory).
 * @throws WeightsFormatError naming `where` on a wrong size, a checksum mismatch or an array outside the blob
 */
export function unpackFloat32Arrays(
  header: { arrays: readonly WeightsArrayEntry[]; crc32: number; byteLength: number },
  bytes: Uint8Array,
  where: string,
): (name: string) => Float32Array | undefined {
  if (bytes.byteLength !== header.byteLength) throw new WeightsFormatError(`${where}: truncated: expected ${header.byteLength} bytes, got ${bytes.byteLength}`);
  const sum = crc32(bytes);
  if (sum !== header.crc32) throw new WeightsFormatError(`${where}: checksum mismatch (CRC-32 ${sum} ≠ ${header.crc32} in the header): the file is corrupt`);
  if (!Array.isArray(header.arrays)) throw new WeightsFormatError(`${where}: the header has no array directory`);
  const aligned = new Float32Array(bytes.slice().buffer);
  return (name) => {
    const e = header.arrays.find((a) => a.name === name);
    if (!e) return undefined;
    if (!(Number.isInteger(e.offset) && Number.isInteger(e.length) && e.offset >= 0 && e.length >= 0 && e.offset + e.length <= aligned.length)) {
      throw new WeightsFormatError(`${where}: array ${name} lies outside the blob`);
    }
    return aligned.slice(e.offset, e.offset + e.length);
  };
}

/**
 * Encodes ensemble weights as a JSON header and one float32 blob (for checkpoints). Pure: the
 * caller writes the bytes (atomically) where it wants.
 */
export function encodeEnsembleWeights(w: EnsembleWeights): { header: WeightsHeader; bytes: Uint8Array } {
  const named: [string, Float32Array][] = [
    ...w.weights.map((a, l): [string, Float32Array] => [`weights.${l}`, a]),
    ...w.biases.map((a, l): [string, Float32Array] => [`biases.${l}`, a]),
    ['inputMean', w.inputMean],
    ['inputStd', w.inputStd],
    ['targetMean', w.targetMean],
    ['targetStd', w.targetStd],
  ];
  if (w.maxLogvar) named.push(['maxLogvar', w.maxLogvar]);
  if (w.minLogvar) named.push(['minLogvar', w.minLogvar]);
  const { arrays, bytes, crc32: sum } = packFloat32Arrays(named);
  return { header: { format: 'mbrl-node.ensemble-weights', version: 1, spec: w.spec, arrays, crc32: sum, byteLength: bytes.byteLength }, bytes };
}

/** Error for an encoded weights blob that does not match its header. */
export class WeightsFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WeightsFormatError';
  }
}

/**
 * Decodes what `encodeEnsembleWeights` wrote.
 * @param where names the file in error messages
 * @throws WeightsFormatError on a wrong format/version, size, checksum or a missing array
 */
export function decodeEnsembleWeights(header: WeightsHeader, bytes: Uint8Array, where = 'weights'): EnsembleWeights {
  if (header?.format !== 'mbrl-node.ensemble-weights' || header.version !== 1) {
    throw new WeightsFormatError(`${where}: expected format mbrl-node.ensemble-weights version 1, got ${String(header?.format)} version ${String(header?.version)}`);
  }
  const get = unpackFloat32Arrays(header, bytes, where);
  const need = (name: string): Float32Array => {
    const a = get(name);
    if (!a) throw new WeightsFormatError(`${where}: array ${name} is missing`);
    return a;
  };
  const layers = header.spec.hidden.length + 1;
  const w: EnsembleWeights = {
    spec: header.spec,
    weights: Array.from({ length: layers }, (_, l) => need(`weights.${l}`)),
    biases: Array.from({ length: layers }, (_, l) => need(`biases.${l}`)),
    inputMean: need('inputMean'),
    inputStd: need('inputStd'),
    targetMean: need('targetMean'),
    targetStd: need('targetStd'),
    ...(header.spec.probabilistic ? { maxLogvar: need('maxLogvar'), minLogvar: need('minLogvar') } : {}),
  };
  checkEnsembleWeights(w, where);
  return w;
}
