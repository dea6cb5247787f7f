/**
 * Checkpoints of a training run: `DIR/checkpoint/` holds `checkpoint.json` (the config with its
 * `kind`, counters, RNG state, metrics history, and the weights' header), `weights.bin` (one
 * float32 blob with a CRC-32) and `buffer/` (the replay buffer, docs/buffer-format.md).
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
import { decodeEnsembleWeights, encodeEnsembleWeights, type WeightsHeader } from '../models/weightsCodec.js';

const FORMAT = 'mbrl-node.checkpoint';
const VERSION = 1;

/** The JSON part of a checkpoint. */
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

/** A checkpoint that cannot be read: the message names the file and the problem. */
export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

/** Writes `state` as `runDir/checkpoint/`, replacing any previous checkpoint atomically. */
export async function saveCheckpoint(runDir: string, state: PetsState): Promise<void> {
  const final = join(runDir, 'checkpoint');
  const old = join(runDir, 'checkpoint.old');
  const tmp = join(runDir, `checkpoint.tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
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
  const candidates = [runDir, join(runDir, 'checkpoint'), join(runDir, 'checkpoint.old')];
  const dir = candidates.find((d) => existsSync(join(d, 'checkpoint.json')));
  if (!dir) throw new CheckpointError(`no checkpoint found: looked for checkpoint.json in ${candidates.join(', ')}`);
  const file = join(dir, 'checkpoint.json');
  let json: CheckpointJson;
  try {
    json = JSON.parse(await readFile(file, 'utf8')) as CheckpointJson;
  } catch (err) {
    throw new CheckpointError(`${file}: not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (json.format !== FORMAT || json.version !== VERSION) {
    throw new CheckpointError(`${file}: expected format ${FORMAT} version ${VERSION}, got ${String(json.format)} version ${String(json.version)}`);
  }
  if (json.config?.kind !== 'pets') throw new CheckpointError(`${file}: config.kind ${JSON.stringify(json.config?.kind)} is not supported here (expected "pets")`);
  let weights = null;
  if (json.weights) {
    const wfile = join(dir, 'weights.bin');
    if (!existsSync(wfile)) throw new CheckpointError(`${wfile}: missing (checkpoint.json lists weights)`);
    try {
      weights = decodeEnsembleWeights(json.weights, new Uint8Array(await readFile(wfile)), wfile);
    } catch (err) {
      throw new CheckpointError(err instanceof Error ? err.message : String(err));
    }
  }
  const { buffer } = await loadBuffer(join(dir, 'buffer'), { capacity: json.config.bufferCapacity });
  return { config: json.config, envSteps: json.envSteps, episodes: json.episodes, buffer, weights, elites: json.elites, rng: json.rng, history: json.history };
}
