/**
 * A Gaussian MLP policy's spec and weights as a JSON header and one float32 blob (`policy.bin` in
 * checkpoints), in the container of the ensemble codec (`models/weightsCodec.ts`): named arrays,
 * little-endian, with a CRC-32.
 */
import { ValidationError } from '../core/errors.js';
import { packFloat32Arrays, unpackFloat32Arrays, WeightsFormatError, type WeightsArrayEntry } from '../models/weightsCodec.js';
import { checkPolicySpec, checkPolicyWeights, type GaussianMlpPolicySpec, type PolicyWeights } from './gaussianMlpPolicy.js';

/** The JSON half of encoded policy weights. */
export interface PolicyWeightsHeader {
  format: 'mbrl-node.policy-weights';
  version: 1;
  spec: GaussianMlpPolicySpec;
  /** `layers.<i>.W`, `layers.<i>.b`, `logStd` (parameter std mode), `obsMean`, `obsStd`. */
  arrays: WeightsArrayEntry[];
  /** CRC-32 of the blob. */
  crc32: number;
  byteLength: number;
}

/**
 * Encodes a policy's spec and weights. Pure: the caller writes the bytes where it wants.
 * @throws ValidationError when `weights` do not fit `spec`
 * @example
 * const { header, bytes } = encodePolicyWeights(policy.spec, policy.getWeights());
 */
export function encodePolicyWeights(spec: GaussianMlpPolicySpec, weights: PolicyWeights): { header: PolicyWeightsHeader; bytes: Uint8Array } {
  checkPolicySpec(spec);
  checkPolicyWeights(spec, weights);
  const named: [string, Float32Array][] = [];
  weights.layers.forEach((l, i) => named.push([`layers.${i}.W`, l.W], [`layers.${i}.b`, l.b]));
  if (weights.logStd) named.push(['logStd', weights.logStd]);
  named.push(['obsMean', weights.obsMean], ['obsStd', weights.obsStd]);
  const { arrays, bytes, crc32 } = packFloat32Arrays(named);
  const plainSpec: GaussianMlpPolicySpec = { ...spec, hidden: [...spec.hidden], actionLow: [...spec.actionLow], actionHigh: [...spec.actionHigh] };
  return { header: { format: 'mbrl-node.policy-weights', version: 1, spec: plainSpec, arrays, crc32, byteLength: bytes.byteLength }, bytes };
}

/**
 * Decodes what `encodePolicyWeights` wrote and validates spec and weights.
 * @param where names the file in error messages
 * @throws WeightsFormatError on a wrong format or version, size, checksum, a missing array, or a
 *   spec or weights that fail validation (the message names the field)
 */
export function decodePolicyWeights(header: PolicyWeightsHeader, bytes: Uint8Array, where = 'policy weights'): { spec: GaussianMlpPolicySpec; weights: PolicyWeights } {
  if (header?.format !== 'mbrl-node.policy-weights' || header.version !== 1) {
    throw new WeightsFormatError(`${where}: expected format mbrl-node.policy-weights version 1, got ${String(header?.format)} version ${String(header?.version)}`);
  }
  const spec = header.spec;
  try {
    checkPolicySpec(spec);
  } catch (err) {
    throw new WeightsFormatError(`${where}: spec: ${err instanceof Error ? err.message : String(err)}`);
  }
  const get = unpackFloat32Arrays(header, bytes, where);
  const need = (name: string): Float32Array => {
    const a = get(name);
    if (!a) throw new WeightsFormatError(`${where}: array ${name} is missing`);
    return a;
  };
  const weights: PolicyWeights = {
    layers: Array.from({ length: spec.hidden.length + 1 }, (_, i) => ({ W: need(`layers.${i}.W`), b: need(`layers.${i}.b`) })),
    logStd: spec.stdMode === 'parameter' ? need('logStd') : null,
    obsMean: need('obsMean'),
    obsStd: need('obsStd'),
  };
  try {
    checkPolicyWeights(spec, weights);
  } catch (err) {
    if (err instanceof ValidationError) throw new WeightsFormatError(`${where}: ${err.message}`);
    throw err;
  }
  return { spec, weights };
}
