/**
 * The control node's files under `checkpointDir`:
 *
 * - `buffer/`: the transitions, in segments (`BufferSegments`, the standard buffer format);
 * - `checkpoint/`: the promoted model, in the format of `mbrl train` checkpoints
 *   (`mbrl-node.checkpoint` version 1: `checkpoint.json` with the PETS config, `weights.bin`), so
 *   `mbrl export` and `loadCheckpointModels` read it; no `buffer/` inside (the node's buffer is
 *   the segment directory beside it, so `mbrl train --resume` does not take it), and a `node`
 *   entry with the model's version;
 * - `node.json`: the node configuration it ran with (`nodeConfigToJson`).
 *
 * `checkpoint/` is replaced whole or not at all: written to a temporary directory, then swapped
 * in by two renames (as `src/cli/checkpoint.ts` does), every file through `writeFileAtomic`.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { PetsConfig } from '../algorithms/mbrl.js';
import { writeFileAtomic } from '../data/atomicWrite.js';
import type { EnsembleWeights } from '../models/types.js';
import { decodeEnsembleWeights, encodeEnsembleWeights, type WeightsHeader } from '../models/weightsCodec.js';
import type { GaussianMlpPolicySpec, PolicyWeights } from '../policies/gaussianMlpPolicy.js';
import { decodePolicyWeights, type PolicyWeightsHeader } from '../policies/policyWeightsCodec.js';

const FORMAT = 'mbrl-node.checkpoint';
const VERSION = 1;

/** The model the node saves and resumes from. */
export interface NodeModel {
  weights: EnsembleWeights;
  elites: number[];
  /** The controller version it was installed as (1 for the first model, +1 per swap). */
  version: number;
  /** Transitions stored when it was saved. */
  transitions: number;
}

/** What `loadNodeModel` found: whichever models the checkpoint holds. */
export interface LoadedNodeModel {
  /** The checkpoint directory read. */
  dir: string;
  /** The config's `kind` and `env` (`pets`, `me-trpo`, …). */
  kind: string;
  env: string;
  ensemble: { weights: EnsembleWeights; elites: number[] | null } | null;
  policy: { spec: GaussianMlpPolicySpec; weights: PolicyWeights } | null;
  /** The node's version of the model, when the checkpoint is the node's own (else null). */
  version: number | null;
}

/** A checkpoint that exists but cannot be read: the message names the file and the problem. */
export class NodeCheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NodeCheckpointError';
  }
}

/** The directory of the model checkpoint. */
export function nodeCheckpointDir(checkpointDir: string): string {
  return join(checkpointDir, 'checkpoint');
}

/**
 * Writes the model as `checkpointDir/checkpoint/` (see the file comment), replacing the previous
 * one atomically.
 */
export async function saveNodeModel(checkpointDir: string, pets: PetsConfig, model: NodeModel): Promise<void> {
  const final = nodeCheckpointDir(checkpointDir);
  const old = join(checkpointDir, 'checkpoint.old');
  const tmp = join(checkpointDir, `checkpoint.tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const enc = encodeEnsembleWeights(model.weights);
  await writeFileAtomic(join(tmp, 'weights.bin'), enc.bytes);
  const json = {
    format: FORMAT,
    version: VERSION,
    createdAt: new Date().toISOString(),
    config: pets,
    envSteps: model.transitions,
    episodes: 0,
    elites: model.elites,
    rng: null,
    history: [],
    weights: enc.header,
    node: { modelVersion: model.version, transitions: model.transitions },
  };
  await writeFileAtomic(join(tmp, 'checkpoint.json'), `${JSON.stringify(json, null, 2)}\n`);
  await rm(old, { recursive: true, force: true });
  if (existsSync(final)) await rename(final, old);
  await rename(tmp, final);
  await rm(old, { recursive: true, force: true });
}

/**
 * Reads the models of a checkpoint: the node's own `checkpointDir`, or a run directory `mbrl
 * train` wrote (its `checkpoint/`, or a `checkpoint.old/` left by a crash mid-swap).
 * @returns null when there is no checkpoint.json there
 * @throws NodeCheckpointError naming the file when one exists but cannot be read
 */
export async function loadNodeModel(dir: string): Promise<LoadedNodeModel | null> {
  const found = [dir, join(dir, 'checkpoint'), join(dir, 'checkpoint.old')].find((d) => existsSync(join(d, 'checkpoint.json')));
  if (found === undefined) return null;
  const file = join(found, 'checkpoint.json');
  let json: {
    format?: unknown;
    version?: unknown;
    config?: { kind?: unknown; env?: unknown };
    elites?: unknown;
    weights?: WeightsHeader | null;
    policy?: PolicyWeightsHeader | null;
    node?: { modelVersion?: unknown };
  };
  try {
    json = JSON.parse(await readFile(file, 'utf8')) as typeof json;
  } catch (err) {
    throw new NodeCheckpointError(`${file}: not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (json?.format !== FORMAT || json.version !== VERSION) throw new NodeCheckpointError(`${file}: expected format ${FORMAT} version ${VERSION}, got ${String(json?.format)} version ${String(json?.version)}`);
  const kind = json.config?.kind;
  const env = json.config?.env;
  if (typeof kind !== 'string' || typeof env !== 'string') throw new NodeCheckpointError(`${file}: config: expected string fields kind and env`);
  const read = async <T>(name: string, decode: (bytes: Uint8Array, where: string) => T): Promise<T> => {
    const path = join(found, name);
    if (!existsSync(path)) throw new NodeCheckpointError(`${path}: missing (${file} lists it)`);
    try {
      return decode(new Uint8Array(await readFile(path)), path);
    } catch (err) {
      throw new NodeCheckpointError(err instanceof Error ? err.message : String(err));
    }
  };
  const elites = Array.isArray(json.elites) && json.elites.every((k) => Number.isInteger(k)) ? (json.elites as number[]) : null;
  const weights = json.weights ? await read('weights.bin', (b, w) => decodeEnsembleWeights(json.weights as WeightsHeader, b, w)) : null;
  const policy = json.policy ? await read('policy.bin', (b, w) => decodePolicyWeights(json.policy as PolicyWeightsHeader, b, w)) : null;
  const v = json.node?.modelVersion;
  return {
    dir: found,
    kind,
    env,
    ensemble: weights ? { weights, elites } : null,
    policy,
    version: typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : null,
  };
}
