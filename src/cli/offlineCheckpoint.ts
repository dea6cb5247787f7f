/**
 * Checkpoints of `mbrl offline` runs (MOPO, offline MBPO, BC), in the policy-checkpoint layout of
 * `savePolicyCheckpoint` — `checkpoint.json`, `policy.bin`, `weights.bin` (the ensemble), `buffer/`
 * (MOPO's model buffer) — so `mbrl export --checkpoint DIR` and `mbrl dataset collect --policy DIR`
 * read them unchanged. The policy is the deterministic controller that is deployed: SAC's actor
 * (MOPO, MBPO) or the BC network.
 *
 * What only a resume needs rides in the checkpoint's `state` JSON: the generator states, the
 * history, the ensemble fit's report (elites), and the learner's optimiser state — SAC's critics,
 * target critics, log α and Adam moments, or BC's Adam moments — as one float32 blob (the
 * weights codec's container: named arrays, CRC-32) in base64. Base64 in the JSON keeps the whole
 * checkpoint one atomic swap of `savePolicyCheckpoint`, at a third more bytes than a binary file.
 *
 * The dataset is not copied: the state names its path and a fingerprint (rows and a CRC-32 of its
 * columns), and a resume refuses data that differ.
 */
import { basename } from 'node:path';
import type { BcConfig, BcState } from '../algorithms/bc.js';
import type { MopoConfig, MopoState, OfflineData } from '../algorithms/mopo.js';
import { sacStatePolicy, type AdamState, type SacAgentState } from '../algorithms/sac.js';
import type { RngState } from '../core/rng.js';
import { crc32 } from '../data/crc32.js';
import { ReplayBuffer } from '../data/replayBuffer.js';
import { packFloat32Arrays, unpackFloat32Arrays, type WeightsArrayEntry } from '../models/weightsCodec.js';
import type { EnsembleFitResult } from '../models/trainer.js';
import { CheckpointError, loadPolicyCheckpoint, savePolicyCheckpoint, type PolicyRunConfig } from './checkpoint.js';

/** The algorithms `mbrl offline` runs; `mbpo` is MOPO with penaltyCoef 0. */
export const OFFLINE_ALGOS = ['mopo', 'mbpo', 'bc'] as const;
export type OfflineAlgo = (typeof OFFLINE_ALGOS)[number];

/** Identifies the logged data a run trained on. */
export interface DatasetFingerprint {
  /** The file as given on the command line. */
  path: string;
  rows: number;
  /** CRC-32 of observations, actions, rewards, next_observations and terminals, in that order (their bytes). */
  crc32: number;
}

/** What an offline run is, besides its algorithm's config. */
export interface OfflineRunInfo {
  algo: OfflineAlgo;
  dataset: DatasetFingerprint;
  /** The D4RL recipe (e.g. `halfcheetah-medium`) whose MOPO settings were used, or null. */
  recipe: string | null;
}

/** An offline run's resumable state. */
export type OfflineRunState = { info: OfflineRunInfo & { algo: 'mopo' | 'mbpo' }; state: MopoState } | { info: OfflineRunInfo & { algo: 'bc' }; state: BcState };

/** A blob of named float32 arrays, base64-encoded, with the codec's directory and checksum. */
interface PackedArrays {
  arrays: WeightsArrayEntry[];
  crc32: number;
  byteLength: number;
  base64: string;
}

/** SAC's state in the checkpoint JSON (its arrays packed). */
interface SavedSac extends Omit<SacAgentState, 'actor' | 'critic' | 'targetCritic' | 'adam'> {
  adamSteps: { actor: number; critic: number; alpha: number };
  packed: PackedArrays;
}

/** The checkpoint's `state` of an offline run. */
interface SavedOfflineState {
  offline: OfflineRunInfo & { format: typeof STATE_FORMAT; version: typeof STATE_VERSION };
  epoch: number;
  rng: RngState;
  history: unknown[];
  /** MOPO, MBPO. */
  fit?: EnsembleFitResult;
  sac?: SavedSac;
  /** BC. */
  adam?: { step: number; packed: PackedArrays };
}

const STATE_FORMAT = 'mbrl-node.offline-run';
const STATE_VERSION = 1;

/** The fingerprint of `data` as loaded from `path`. */
export function datasetFingerprint(path: string, data: Pick<OfflineData, 'size' | 'observations' | 'actions' | 'rewards' | 'next_observations' | 'terminals'>): DatasetFingerprint {
  let c = 0;
  for (const a of [data.observations, data.actions, data.rewards, data.next_observations, data.terminals]) c = crc32(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), c);
  return { path, rows: data.size, crc32: c };
}

/**
 * Writes an offline run's state as `runDir/checkpoint/` (atomically, by `savePolicyCheckpoint`).
 * @example await saveOfflineCheckpoint('runs/hc-mopo', { algo: 'mopo', dataset, recipe: null }, mopoState);
 */
export async function saveOfflineCheckpoint(runDir: string, run: OfflineRunState): Promise<void> {
  const offline = { format: STATE_FORMAT, version: STATE_VERSION, ...run.info } as const;
  if (run.info.algo === 'bc') {
    const s = run.state as BcState;
    const saved: SavedOfflineState = { offline, epoch: s.epoch, rng: s.rng, history: s.history, adam: { step: s.adam.step, packed: pack([['m', s.adam.m], ['v', s.adam.v]]) } };
    await savePolicyCheckpoint(runDir, {
      config: s.config as unknown as PolicyRunConfig,
      envSteps: 0,
      policySpec: s.spec,
      policyWeights: s.policy,
      ensemble: null,
      state: saved as unknown as Record<string, unknown>,
    });
    return;
  }
  const s = run.state as MopoState;
  const { actor, critic, targetCritic, adam, ...rest } = s.agent;
  const sac: SavedSac = {
    ...rest,
    adamSteps: { actor: adam.actor.step, critic: adam.critic.step, alpha: adam.alpha.step },
    packed: pack([
      ['actor', actor],
      ['critic', critic],
      ['targetCritic', targetCritic],
      ['adam.actor.m', adam.actor.m],
      ['adam.actor.v', adam.actor.v],
      ['adam.critic.m', adam.critic.m],
      ['adam.critic.v', adam.critic.v],
      ['adam.alpha.m', adam.alpha.m],
      ['adam.alpha.v', adam.alpha.v],
    ]),
  };
  const saved: SavedOfflineState = { offline, epoch: s.epoch, rng: s.rng, history: s.history, fit: s.fit, sac };
  const policy = sacStatePolicy(s.agent);
  await savePolicyCheckpoint(runDir, {
    config: s.config as unknown as PolicyRunConfig,
    envSteps: 0,
    policySpec: policy.spec,
    policyWeights: policy.weights,
    ensemble: s.ensemble,
    state: saved as unknown as Record<string, unknown>,
    buffer: s.modelBuffer,
  });
}

/**
 * Reads an offline run's checkpoint (from `runDir`, its `checkpoint/`, or a `checkpoint.old/`
 * left by a crash).
 * @throws CheckpointError naming the directory and what is missing or wrong (another kind of run,
 *   a damaged state blob)
 */
export async function loadOfflineCheckpoint(runDir: string): Promise<OfflineRunState> {
  const ckpt = await loadPolicyCheckpoint(runDir);
  const where = `${runDir}: checkpoint state`;
  const saved = ckpt.state as unknown as Partial<SavedOfflineState>;
  const info = saved.offline;
  if (info?.format !== STATE_FORMAT || info.version !== STATE_VERSION) {
    throw new CheckpointError(`${runDir}: not an 'mbrl offline' run (config.kind ${JSON.stringify(ckpt.config.kind)}; expected state.offline format ${STATE_FORMAT} version ${STATE_VERSION})`);
  }
  if (!(OFFLINE_ALGOS as readonly string[]).includes(info.algo)) throw new CheckpointError(`${where}: offline.algo: expected one of ${OFFLINE_ALGOS.join(', ')}, got ${JSON.stringify(info.algo)}`);
  if (typeof saved.epoch !== 'number' || !Array.isArray(saved.history) || !saved.rng) throw new CheckpointError(`${where}: expected epoch, rng and history`);
  const d = info.dataset as Partial<DatasetFingerprint> | undefined;
  if (typeof d?.path !== 'string' || typeof d.rows !== 'number' || typeof d.crc32 !== 'number') throw new CheckpointError(`${where}: offline.dataset: expected { path, rows, crc32 }, got ${JSON.stringify(d)}`);
  const runInfo: OfflineRunInfo = { algo: info.algo, dataset: info.dataset, recipe: info.recipe ?? null };
  if (info.algo === 'bc') {
    if (ckpt.config.kind !== 'bc' || !saved.adam) throw new CheckpointError(`${where}: a bc run needs config.kind "bc" and state.adam, got kind ${JSON.stringify(ckpt.config.kind)}`);
    const get = unpack(saved.adam.packed, `${where}.adam`);
    const state: BcState = {
      config: ckpt.config as unknown as BcConfig,
      epoch: saved.epoch,
      spec: ckpt.policySpec,
      policy: ckpt.policyWeights,
      adam: { m: get('m'), v: get('v'), step: saved.adam.step },
      rng: saved.rng,
      history: saved.history as BcState['history'],
    };
    return { info: { ...runInfo, algo: 'bc' }, state };
  }
  if (ckpt.config.kind !== 'mopo' || !saved.sac || !saved.fit) throw new CheckpointError(`${where}: a ${info.algo} run needs config.kind "mopo", state.sac and state.fit, got kind ${JSON.stringify(ckpt.config.kind)}`);
  if (!ckpt.ensemble) throw new CheckpointError(`${runDir}: the checkpoint has no ensemble (weights.bin), which a ${info.algo} run needs`);
  const config = ckpt.config as unknown as MopoConfig;
  const { packed, adamSteps, ...rest } = saved.sac;
  const get = unpack(packed, `${where}.sac`);
  const adam = (k: 'actor' | 'critic' | 'alpha'): AdamState => ({ m: get(`adam.${k}.m`), v: get(`adam.${k}.v`), step: adamSteps[k] });
  const agent: SacAgentState = { ...rest, actor: get('actor'), critic: get('critic'), targetCritic: get('targetCritic'), adam: { actor: adam('actor'), critic: adam('critic'), alpha: adam('alpha') } };
  const capacity = config.rolloutBatchSize * config.rolloutLength * config.modelRetainEpochs;
  const modelBuffer = new ReplayBuffer({ obsDim: ckpt.ensemble.spec.obsDim, actDim: ckpt.ensemble.spec.actDim, capacity });
  // The saved rows, oldest first: the buffer's logical order, which is all sampling sees.
  if (ckpt.buffer && ckpt.buffer.size > 0) modelBuffer.addColumns(ckpt.buffer.slice(0, ckpt.buffer.size));
  const state: MopoState = { config, epoch: saved.epoch, ensemble: ckpt.ensemble, fit: saved.fit, agent, modelBuffer, rng: saved.rng, history: saved.history as MopoState['history'] };
  return { info: { ...runInfo, algo: info.algo as 'mopo' | 'mbpo' }, state };
}

/** A short description of the dataset for messages. */
export function describeDataset(d: DatasetFingerprint): string {
  return `${basename(d.path)} (${d.rows} rows, CRC-32 ${d.crc32})`;
}

function pack(named: [string, Float32Array][]): PackedArrays {
  const { arrays, bytes, crc32: sum } = packFloat32Arrays(named);
  return { arrays, crc32: sum, byteLength: bytes.byteLength, base64: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64') };
}

function unpack(p: PackedArrays | undefined, where: string): (name: string) => Float32Array {
  if (!p || typeof p.base64 !== 'string') throw new CheckpointError(`${where}: missing its packed arrays`);
  let get: (name: string) => Float32Array | undefined;
  try {
    const buf = Buffer.from(p.base64, 'base64');
    get = unpackFloat32Arrays(p, new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), where);
  } catch (err) {
    throw new CheckpointError(err instanceof Error ? err.message : String(err));
  }
  return (name) => {
    const a = get(name);
    if (!a) throw new CheckpointError(`${where}: array ${name} is missing`);
    return a;
  };
}
