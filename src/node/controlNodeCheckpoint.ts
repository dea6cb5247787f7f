/**
 * The control node's files under `checkpointDir`:
 *
 * - `buffer/`: the transitions, in segments (`BufferSegments`, the standard buffer format);
 * - `checkpoint/`: the promoted model, in the format of `mbrl train` checkpoints
 *   (`mbrl-node.checkpoint` version 1: `checkpoint.json` with the algorithm's config — PETS,
 *   ME-TRPO or MB-MPO —, `weights.bin`, and for a learned policy `policy.bin` with its header
 *   under `policy`, as `savePolicyCheckpoint` writes them), so `mbrl export` and
 *   `loadCheckpointModels` read it; no `buffer/` inside (the node's buffer is the segment
 *   directory beside it, so `mbrl train --resume` does not take it), and a `node` entry with the
 *   model's and the policy's versions. The policy saved is the promoted one (MB-MPO: the
 *   meta-policy, not its online adaptation, which the learner recomputes from the newest data).
 *   TRPO and the MB-MPO meta-step keep no optimiser state between policy phases, so the weights
 *   are all a restart needs to resume the policy;
 * - `node.json`: the node configuration it ran with (`nodeConfigToJson`).
 *
 * `checkpoint/` is replaced whole or not at all: written to a temporary directory, then swapped
 * in by two renames (as `src/cli/checkpoint.ts` does), every file through `writeFileAtomic`.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../data/atomicWrite.js';
import type { EnsembleWeights } from '../models/types.js';
import { decodeEnsembleWeights, encodeEnsembleWeights, type WeightsHeader } from '../models/weightsCodec.js';
import type { GaussianMlpPolicySpec, PolicyWeights } from '../policies/gaussianMlpPolicy.js';
import { decodePolicyWeights, encodePolicyWeights, type PolicyWeightsHeader } from '../policies/policyWeightsCodec.js';

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
  /** A learned policy saved with the model (`learnedPolicy`), with the controller version it was installed as. */
  policy?: { spec: GaussianMlpPolicySpec; weights: PolicyWeights; version: number };
}

/** What a node checkpoint's config must have: the algorithm's `kind` and its task (`env`). */
export interface NodeCheckpointConfig {
  kind: string;
  env: string;
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
  /** The node's version of the policy, when the checkpoint is the node's own and holds one (else null). */
  policyVersion: number | null;
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
 * Writes the model (and the policy, when given) as `checkpointDir/checkpoint/` (see the file
 * comment), replacing the previous one atomically: a reader finds the old pair or the new one.
 * @param config the algorithm's config (PETS, ME-TRPO, MB-MPO), saved as the checkpoint's `config`
 */
export async function saveNodeModel(checkpointDir: string, config: NodeCheckpointConfig, model: NodeModel): Promise<void> {
  const final = nodeCheckpointDir(checkpointDir);
  const old = join(checkpointDir, 'checkpoint.old');
  const tmp = join(checkpointDir, `checkpoint.tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const enc = encodeEnsembleWeights(model.weights);
  await writeFileAtomic(join(tmp, 'weights.bin'), enc.bytes);
  const policy = model.policy ? encodePolicyWeights(model.policy.spec, model.policy.weights) : null;
  if (policy) await writeFileAtomic(join(tmp, 'policy.bin'), policy.bytes);
  const json = {
    format: FORMAT,
    version: VERSION,
    createdAt: new Date().toISOString(),
    config,
    envSteps: model.transitions,
    episodes: 0,
    elites: model.elites,
    rng: null,
    history: [],
    weights: enc.header,
    ...(policy ? { policy: policy.header } : {}),
    node: { modelVersion: model.version, ...(model.policy ? { policyVersion: model.policy.version } : {}), transitions: model.transitions },
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
    node?: { modelVersion?: unknown; policyVersion?: unknown };
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
  const pv = json.node?.policyVersion;
  return {
    dir: found,
    kind,
    env,
    ensemble: weights ? { weights, elites } : null,
    policy,
    version: typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : null,
    policyVersion: policy && typeof pv === 'number' && Number.isInteger(pv) && pv >= 0 ? pv : null,
  };
}
