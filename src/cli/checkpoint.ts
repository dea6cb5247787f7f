/**
 * Checkpoints of a training run: `DIR/checkpoint/` holds `checkpoint.json` (the config with its
 * `kind`, counters, RNG state, metrics history, and the weights' header), `weights.bin` (one
 * float32 blob with a CRC-32) and `buffer/` (the replay buffer, docs/buffer-format.md).
 *
 * Two kinds, one format (`mbrl-node.checkpoint` version 1):
 * - PETS runs (`saveCheckpoint`/`loadCheckpoint`): config `kind: 'pets'`, the ensemble in
 *   `weights.bin`, the buffer, RNG state and history; the controller is a planner.
 * - Runs with a learned policy (TRPO, PPO, ME-TRPO, …: `savePolicyCheckpoint`/`loadPolicyCheckpoint`):
 *   any config `kind`, the policy's spec and weights in `policy.bin` (header in `checkpoint.json`
 *   under `policy`, codec `policies/policyWeightsCodec.ts`), optionally the dynamics ensemble in
 *   `weights.bin`, and the algorithm's own state under `state`: JSON, except that its
 *   `Float32Array`s (value-function weights, optimizer moments) go to `state.bin` (header under
 *   `stateArrays`, the same float32 container), each replaced in the JSON by `{ "$float32": name }`.
 * `loadCheckpointModels` reads the models of either kind (for `mbrl export`) without the buffer.
 *
 * Written whole or not at all: a new checkpoint is built in a temporary directory, then swapped in
 * by two renames (old → `checkpoint.old`, new → `checkpoint`) and the old one deleted. A crash
 * between the renames leaves `checkpoint.old`, which `loadCheckpoint` falls back to.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { PetsConfig, PetsEpisodeMetrics, PetsState } from '../algorithms/mbrl.js';
import type { RngState } from '../core/rng.js';
import { writeFileAtomic } from '../data/atomicWrite.js';
import { loadBuffer, saveBuffer } from '../data/bufferStore.js';
import type { EnsembleWeights } from '../models/types.js';
import type { ReplayBuffer } from '../data/replayBuffer.js';
import { decodeEnsembleWeights, encodeEnsembleWeights, packFloat32Arrays, unpackFloat32Arrays, type WeightsArrayEntry, type WeightsHeader } from '../models/weightsCodec.js';
import type { GaussianMlpPolicySpec, PolicyWeights } from '../policies/gaussianMlpPolicy.js';
import { decodePolicyWeights, encodePolicyWeights, type PolicyWeightsHeader } from '../policies/policyWeightsCodec.js';

const FORMAT = 'mbrl-node.checkpoint';
const VERSION = 1;

/** The JSON part of a PETS checkpoint. */
interface CheckpointJson {
  format: typeof FORMAT;
  version: typeof VERSION;
  createdAt: string;
  config: PetsConfig;
  envSteps: number;
  episodes: number;
  elites: number[] | null;
  rng: RngState;
  history: PetsEpisodeMetrics[];
  weights: WeightsHeader | null;
}

/** The JSON part of a policy checkpoint (`savePolicyCheckpoint`). */
interface PolicyCheckpointJson {
  format: typeof FORMAT;
  version: typeof VERSION;
  createdAt: string;
  config: PolicyRunConfig;
  envSteps: number;
  /** The ensemble's header (model-based algorithms), or null. */
  weights: WeightsHeader | null;
  policy: PolicyWeightsHeader;
  state: Record<string, unknown>;
  /** The directory of `state.bin` (the state's Float32Arrays); absent or null when it has none. */
  stateArrays?: StateArraysHeader | null;
}

/** The header of `state.bin`. */
interface StateArraysHeader {
  arrays: WeightsArrayEntry[];
  crc32: number;
  byteLength: number;
}

/** What every checkpoint's config has: the algorithm's `kind` and the task id. */
export interface PolicyRunConfig {
  /** The algorithm's config kind, e.g. `'trpo'`, `'ppo'`, `'me-trpo'` (rebuilds the run from its JSON). */
  kind: string;
  /** Built-in task id. */
  env: string;
  [key: string]: unknown;
}

/** A run with a learned policy, as `savePolicyCheckpoint` stores it. */
export interface PolicyCheckpoint {
  /** The algorithm's full config (JSON), with its `kind` and `env`. */
  config: PolicyRunConfig;
  /** Real environment steps trained on. */
  envSteps: number;
  policySpec: GaussianMlpPolicySpec;
  policyWeights: PolicyWeights;
  /** The dynamics ensemble of a model-based algorithm (ME-TRPO, MB-MPO), or null. */
  ensemble: EnsembleWeights | null;
  /**
   * The algorithm's other state to resume from: JSON (RNG state, counters, metrics history), in
   * which `Float32Array`s may appear at any depth (stored in `state.bin`, read back as such).
   */
  state: Record<string, unknown>;
  /** The real transitions of a model-based run (written to `buffer/` as PETS's), or absent. */
  buffer?: ReplayBuffer;
}

/** The models a checkpoint of either kind holds (what `mbrl export` needs). */
export interface CheckpointModels {
  /** The checkpoint directory actually read. */
  dir: string;
  config: PolicyRunConfig;
  envSteps: number;
  ensemble: EnsembleWeights | null;
  /** PETS: the members the planner uses; null when not recorded. */
  elites: number[] | null;
  policy: { spec: GaussianMlpPolicySpec; weights: PolicyWeights } | null;
}

/** A checkpoint that cannot be read: the message names the file and the problem. */
export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

/** Writes `state` as `runDir/checkpoint/`, replacing any previous checkpoint atomically. */
export async function saveCheckpoint(runDir: string, state: PetsState): Promise<void> {
  await writeCheckpointDir(runDir, async (tmp) => {
    let weights: WeightsHeader | null = null;
    if (state.weights) {
      const enc = encodeEnsembleWeights(state.weights);
      weights = enc.header;
      await writeFileAtomic(join(tmp, 'weights.bin'), enc.bytes);
    }
    await saveBuffer(state.buffer, join(tmp, 'buffer'));
    const json: CheckpointJson = {
      format: FORMAT,
      version: VERSION,
      createdAt: new Date().toISOString(),
      config: state.config,
      envSteps: state.envSteps,
      episodes: state.episodes,
      elites: state.elites,
      rng: state.rng,
      history: state.history,
      weights,
    };
    await writeFileAtomic(join(tmp, 'checkpoint.json'), `${JSON.stringify(json, null, 1)}\n`);
  });
}

/**
 * Writes a run with a learned policy as `runDir/checkpoint/` (atomically, as `saveCheckpoint`):
 * `checkpoint.json`, `policy.bin`, and `weights.bin` when an ensemble is given. Algorithms build
 * the `PolicyCheckpoint` (they touch no file system); the CLI calls this.
 * @throws CheckpointError for a config without `kind`/`env` or a bad `envSteps`; ValidationError
 *   when the weights do not fit the spec
 * @example
 * await savePolicyCheckpoint('runs/pendulum-trpo-s0', { config: trpoConfig, envSteps: 20000,
 *   policySpec: policy.spec, policyWeights: policy.getWeights(), ensemble: null, state: { rng: rng.getState() } });
 */
export async function savePolicyCheckpoint(runDir: string, ckpt: PolicyCheckpoint): Promise<void> {
  const { config, envSteps } = ckpt;
  if (typeof config?.kind !== 'string' || config.kind === '' || typeof config.env !== 'string' || config.env === '') {
    throw new CheckpointError(`savePolicyCheckpoint: config: expected string fields kind and env, got kind ${JSON.stringify(config?.kind)}, env ${JSON.stringify(config?.env)}`);
  }
  if (!Number.isInteger(envSteps) || envSteps < 0) throw new CheckpointError(`savePolicyCheckpoint: envSteps: expected a non-negative integer, got ${envSteps}`);
  const policy = encodePolicyWeights(ckpt.policySpec, ckpt.policyWeights);
  const named: [string, Float32Array][] = [];
  const state = extractFloat32Arrays(ckpt.state ?? {}, 'state', named) as Record<string, unknown>;
  await writeCheckpointDir(runDir, async (tmp) => {
    let weights: WeightsHeader | null = null;
    if (ckpt.ensemble) {
      const enc = encodeEnsembleWeights(ckpt.ensemble);
      weights = enc.header;
      await writeFileAtomic(join(tmp, 'weights.bin'), enc.bytes);
    }
    await writeFileAtomic(join(tmp, 'policy.bin'), policy.bytes);
    let stateArrays: StateArraysHeader | null = null;
    if (named.length > 0) {
      const packed = packFloat32Arrays(named);
      stateArrays = { arrays: packed.arrays, crc32: packed.crc32, byteLength: packed.bytes.byteLength };
      await writeFileAtomic(join(tmp, 'state.bin'), packed.bytes);
    }
    if (ckpt.buffer) await saveBuffer(ckpt.buffer, join(tmp, 'buffer'));
    const json: PolicyCheckpointJson = {
      format: FORMAT,
      version: VERSION,
      createdAt: new Date().toISOString(),
      config,
      envSteps,
      weights,
      policy: policy.header,
      state,
      ...(stateArrays ? { stateArrays } : {}),
    };
    await writeFileAtomic(join(tmp, 'checkpoint.json'), `${JSON.stringify(json, null, 1)}\n`);
  });
}

/**
 * Builds a checkpoint in a temporary directory beside `runDir/checkpoint`, then swaps it in by two
 * renames (old → `checkpoint.old`, new → `checkpoint`) and deletes the old one.
 */
async function writeCheckpointDir(runDir: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const final = join(runDir, 'checkpoint');
  const old = join(runDir, 'checkpoint.old');
  const tmp = join(runDir, `checkpoint.tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await write(tmp);
  await rm(old, { recursive: true, force: true });
  if (existsSync(final)) await rename(final, old);
  await rename(tmp, final);
  await rm(old, { recursive: true, force: true });
}

/**
 * Reads `runDir/checkpoint/` (or `runDir/checkpoint.old/` left by a crash mid-swap); `runDir` may
 * also be the checkpoint directory itself.
 * @throws CheckpointError naming the file and what is wrong; never returns a half-read state
 */
export async function loadCheckpoint(runDir: string): Promise<PetsState> {
  const { dir, file, json } = await readCheckpointJson<CheckpointJson>(runDir);
  if (json.config?.kind !== 'pets') throw new CheckpointError(`${file}: config.kind ${JSON.stringify(json.config?.kind)} is not supported here (expected "pets")`);
  const weights = await readEnsemble(dir, json.weights);
  const { buffer } = await loadBuffer(join(dir, 'buffer'), { capacity: json.config.bufferCapacity });
  return { config: json.config, envSteps: json.envSteps, episodes: json.episodes, buffer, weights, elites: json.elites, rng: json.rng, history: json.history };
}

/**
 * Reads a checkpoint written by `savePolicyCheckpoint` (from `runDir`, its `checkpoint/` or a
 * `checkpoint.old/` left by a crash).
 * @throws CheckpointError naming the file and the problem; for a checkpoint without a policy (PETS)
 *   it says so
 */
export async function loadPolicyCheckpoint(runDir: string): Promise<PolicyCheckpoint> {
  const { dir, file, json } = await readCheckpointJson<Partial<PolicyCheckpointJson>>(runDir);
  const config = checkRunConfig(json.config, file);
  if (!json.policy) throw new CheckpointError(`${file}: holds no policy (config.kind ${JSON.stringify(config.kind)}${config.kind === 'pets' ? ': its controller is a planner over the ensemble' : ''})`);
  const policy = await readPolicy(dir, json.policy);
  const ensemble = await readEnsemble(dir, json.weights ?? null);
  let state = json.state !== null && typeof json.state === 'object' && !Array.isArray(json.state) ? json.state : {};
  if (json.stateArrays) state = (await readStateArrays(dir, json.stateArrays, state)) as Record<string, unknown>;
  const capacity = typeof config.bufferCapacity === 'number' ? config.bufferCapacity : undefined;
  const buffer = existsSync(join(dir, 'buffer')) ? (await loadBuffer(join(dir, 'buffer'), capacity ? { capacity } : {})).buffer : undefined;
  return { config, envSteps: checkEnvSteps(json.envSteps, file), policySpec: policy.spec, policyWeights: policy.weights, ensemble, state, ...(buffer ? { buffer } : {}) };
}

/**
 * Reads the models of a checkpoint of either kind (no buffer): the config, env steps, the ensemble
 * (and PETS elites) if any, the policy if any.
 * @throws CheckpointError naming the file and the problem
 */
export async function loadCheckpointModels(runDir: string): Promise<CheckpointModels> {
  const { dir, file, json } = await readCheckpointJson<Partial<PolicyCheckpointJson> & { elites?: unknown }>(runDir);
  const config = checkRunConfig(json.config, file);
  const elites = Array.isArray(json.elites) && json.elites.every((k) => Number.isInteger(k)) ? (json.elites as number[]) : null;
  return {
    dir,
    config,
    envSteps: checkEnvSteps(json.envSteps, file),
    ensemble: await readEnsemble(dir, json.weights ?? null),
    elites,
    policy: json.policy ? await readPolicy(dir, json.policy) : null,
  };
}

/** Finds and parses `checkpoint.json` and checks its format and version (the rest is the caller's to check). */
async function readCheckpointJson<T>(runDir: string): Promise<{ dir: string; file: string; json: T }> {
  const candidates = [runDir, join(runDir, 'checkpoint'), join(runDir, 'checkpoint.old')];
  const dir = candidates.find((d) => existsSync(join(d, 'checkpoint.json')));
  if (!dir) throw new CheckpointError(`no checkpoint found: looked for checkpoint.json in ${candidates.join(', ')}`);
  const file = join(dir, 'checkpoint.json');
  let json: { format?: unknown; version?: unknown } | null;
  try {
    json = JSON.parse(await readFile(file, 'utf8')) as { format?: unknown; version?: unknown } | null;
  } catch (err) {
    throw new CheckpointError(`${file}: not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (json?.format !== FORMAT || json.version !== VERSION) {
    throw new CheckpointError(`${file}: expected format ${FORMAT} version ${VERSION}, got ${String(json?.format)} version ${String(json?.version)}`);
  }
  return { dir, file, json: json as T };
}

function checkRunConfig(config: unknown, file: string): PolicyRunConfig {
  const c = config as Partial<PolicyRunConfig> | undefined;
  if (typeof c?.kind !== 'string' || typeof c.env !== 'string') {
    throw new CheckpointError(`${file}: config: expected an object with string fields kind and env, got ${JSON.stringify(config)?.slice(0, 80)}`);
  }
  return c as PolicyRunConfig;
}

function checkEnvSteps(v: unknown, file: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new CheckpointError(`${file}: envSteps: expected a non-negative integer, got ${JSON.stringify(v)}`);
  return v;
}

async function readEnsemble(dir: string, header: WeightsHeader | null): Promise<EnsembleWeights | null> {
  if (!header) return null;
  const wfile = join(dir, 'weights.bin');
  if (!existsSync(wfile)) throw new CheckpointError(`${wfile}: missing (checkpoint.json lists weights)`);
  try {
    return decodeEnsembleWeights(header, new Uint8Array(await readFile(wfile)), wfile);
  } catch (err) {
    throw new CheckpointError(err instanceof Error ? err.message : String(err));
  }
}

async function readPolicy(dir: string, header: PolicyWeightsHeader): Promise<{ spec: GaussianMlpPolicySpec; weights: PolicyWeights }> {
  const pfile = join(dir, 'policy.bin');
  if (!existsSync(pfile)) throw new CheckpointError(`${pfile}: missing (checkpoint.json lists a policy)`);
  try {
    return decodePolicyWeights(header, new Uint8Array(await readFile(pfile)), pfile);
  } catch (err) {
    throw new CheckpointError(err instanceof Error ? err.message : String(err));
  }
}

/**
 * Replaces every `Float32Array` in a JSON-like value by `{ $float32: path }` and collects it
 * under that path (the rest is copied as is).
 * @throws CheckpointError for another typed array (store float64 values as a number array)
 */
function extractFloat32Arrays(value: unknown, path: string, out: [string, Float32Array][]): unknown {
  if (value instanceof Float32Array) {
    out.push([path, value]);
    return { $float32: path };
  }
  if (ArrayBuffer.isView(value)) {
    throw new CheckpointError(`savePolicyCheckpoint: ${path}: a ${value.constructor.name}; expected a Float32Array (stored in state.bin) or a plain array`);
  }
  if (Array.isArray(value)) return value.map((v, i) => extractFloat32Arrays(v, `${path}.${i}`, out));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, extractFloat32Arrays(v, `${path}.${k}`, out)]));
  }
  return value;
}

/** Puts the arrays of `state.bin` back where `extractFloat32Arrays` left `{ $float32: name }`. */
async function readStateArrays(dir: string, header: StateArraysHeader, state: unknown): Promise<unknown> {
  const sfile = join(dir, 'state.bin');
  if (!existsSync(sfile)) throw new CheckpointError(`${sfile}: missing (checkpoint.json lists state arrays)`);
  let get: (name: string) => Float32Array | undefined;
  try {
    get = unpackFloat32Arrays(header, new Uint8Array(await readFile(sfile)), sfile);
  } catch (err) {
    throw new CheckpointError(err instanceof Error ? err.message : String(err));
  }
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v === null || typeof v !== 'object') return v;
    const entries = Object.entries(v);
    if (entries.length === 1 && entries[0][0] === '$float32') {
      const name = String(entries[0][1]);
      const a = get(name);
      if (!a) throw new CheckpointError(`${sfile}: array ${name} (referenced by checkpoint.json's state) is missing`);
      return a;
    }
    return Object.fromEntries(entries.map(([k, x]) => [k, walk(x)]));
  };
  return walk(state);
}
