/**
 * D4RL's dataset recipes (Fu, Kumar, Nachum, Tucker, Levine 2020, "D4RL: Datasets for Deep
 * Data-Driven Reinforcement Learning", https://arxiv.org/abs/2004.07219, §5.1) on this project's
 * environments, as functions of their inputs (no file system; `mbrl dataset collect --recipe`
 * reads and writes the files):
 *
 * - `random`: N steps of uniform random actions;
 * - `medium`: N steps of a policy trained to about a third of the expert's return (D4RL: SAC
 *   stopped early), acting as given (the CLI's policies act deterministically);
 * - `medium-replay`: that policy's training replay buffer, every transition it holds, episodes
 *   kept contiguous with their boundaries;
 * - `medium-expert`: a medium and an expert dataset of equal size, one after the other
 *   (`expert` is the medium recipe with a fully trained policy).
 *
 * Collection (`collectDataset`, also what plain `mbrl dataset collect` runs): episode k is reset
 * with seed S + k, and the last episode is cut at N steps with `timeouts` = 1.
 *
 * Every recipe stamps its metadata: `recipe`, `name` (D4RL's naming: the task's lower-case name
 * without version, then the recipe, e.g. `halfcheetah-medium`), `envId`, `policy` (where the
 * actions came from), `steps` (rows), `meanReturn` and `returnEpisodes`: the mean return over the
 * episodes that ended in the environment (terminated or at its time limit) and their count. An
 * episode cut by the step budget, unfinished at the end of a buffer, or missing its start (a
 * buffer that overwrote its oldest rows) is left out; with no complete episode, all are used.
 */
import { RandomAgent } from '../core/agent.js';
import type { Env } from '../core/env.js';
import { ValidationError, describe } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { OfflineDataset, type DatasetMetadata } from './dataset.js';
import { DatasetBuilder } from './datasetBuilder.js';
import type { ReplayBuffer } from './replayBuffer.js';

/** The recipes (`expert` is `medium` with an expert policy, the other half of medium-expert). */
export const D4RL_RECIPES = ['random', 'medium', 'medium-replay', 'medium-expert', 'expert'] as const;
export type D4rlRecipe = (typeof D4RL_RECIPES)[number];

/**
 * D4RL's dataset name for a task and recipe: the id in lower case without its version, then the
 * recipe.
 * @example d4rlDatasetName('HalfCheetah-v5', 'medium-replay') // 'halfcheetah-medium-replay'
 */
export function d4rlDatasetName(envId: string, recipe: D4rlRecipe): string {
  return `${envId.replace(/-v\d+$/, '').toLowerCase()}-${recipe}`;
}

/** A controller that may act asynchronously (an ONNX policy, a planner). */
export interface CollectAgent {
  act(obs: Float64Array): ArrayLike<number> | Promise<ArrayLike<number>>;
  reset?(): void;
}

/** Options of `collectDataset`. */
export interface CollectOptions {
  /** Rows N to record. */
  steps: number;
  /** Seed S: episode k is reset with S + k. */
  seed: number;
  /** Called every 100 rows and at the end (rows so far, current episode). */
  onProgress?: (rows: number, episode: number) => void;
}

/** What `collectDataset` returns besides the dataset. */
export interface CollectResult {
  dataset: OfflineDataset;
  /** Return of every episode, the cut last one included. */
  returns: number[];
  /** Episodes that ended in the environment (all but a last one cut by the budget). */
  completeEpisodes: number;
}

/**
 * `steps` transitions of `agent` in `env`: episode k reset with seed `seed + k`, the last episode
 * cut at `steps` rows (its last row `timeouts` = 1, never terminal by mistake).
 * @param metadata stamped on the dataset as given
 * @throws ValidationError for a bad `steps`/`seed`, or an action of the wrong length or not finite
 */
export async function collectDataset(env: Env, agent: CollectAgent, options: CollectOptions, metadata: DatasetMetadata = {}): Promise<CollectResult> {
  const where = 'collectDataset';
  const { steps, seed } = options;
  if (!Number.isInteger(steps) || steps < 1) throw new ValidationError(where, 'steps', `expected an integer ≥ 1, got ${describe(steps)}`);
  if (!Number.isInteger(seed) || seed < 0) throw new ValidationError(where, 'seed', `expected an integer ≥ 0, got ${describe(seed)}`);
  const builder = new DatasetBuilder(env.observationSpace.dim, env.actionSpace.dim, Math.min(steps, 1 << 20));
  const returns: number[] = [];
  let complete = 0;
  let episode = 0;
  while (builder.size < steps) {
    let { obs } = env.reset({ seed: seed + episode });
    agent.reset?.();
    let ret = 0;
    for (;;) {
      const action = Float64Array.from(await agent.act(obs));
      const s = env.step(action);
      ret += s.reward;
      const cut = builder.size + 1 >= steps;
      const timeout = !s.terminated && (s.truncated || cut);
      builder.append({ observation: obs, action, reward: s.reward, nextObservation: s.obs, terminal: s.terminated, timeout }, `${env.id} step ${builder.size}`);
      obs = s.obs;
      if (builder.size % 100 === 0) options.onProgress?.(builder.size, episode);
      if (s.terminated || s.truncated) complete++;
      if (s.terminated || timeout) break;
    }
    returns.push(ret);
    episode++;
  }
  options.onProgress?.(builder.size, episode - 1);
  return { dataset: builder.build(metadata, where), returns, completeEpisodes: complete };
}

/** Options of the collected recipes. */
export interface RecipeCollectOptions {
  steps: number;
  seed: number;
  onProgress?: (rows: number, episode: number) => void;
  /** More metadata to stamp (e.g. `source`); the recipe's own keys win. */
  metadata?: DatasetMetadata;
}

/**
 * D4RL's `random`: `steps` rows of uniform random actions (drawn from a generator seeded with
 * `seed`; episode k reset with `seed + k`).
 * @example const ds = await randomDataset(new Pendulum(), { steps: 1000, seed: 0 });
 */
export async function randomDataset(env: Env, options: RecipeCollectOptions): Promise<OfflineDataset> {
  const agent = new RandomAgent(env.actionSpace, new Rng(options.seed));
  const r = await collectDataset(env, { act: () => agent.act() }, options);
  return stamp(r.dataset, 'random', env.id, 'random', completeReturns(r), { ...options.metadata, seed: String(options.seed) });
}

/**
 * D4RL's `medium` (or `expert`): `steps` rows of `agent` (a partially trained policy for
 * medium, about a third of the expert's return; a fully trained one for expert).
 * @param policy where the actions come from, recorded as metadata `policy` (e.g. the file)
 * @example const ds = await policyDataset(env, onnxPolicy, { steps: 1000, seed: 0, policy: 'sac.onnx' });
 */
export async function policyDataset(env: Env, agent: CollectAgent, options: RecipeCollectOptions & { policy: string; recipe?: 'medium' | 'expert' }): Promise<OfflineDataset> {
  const r = await collectDataset(env, agent, options);
  return stamp(r.dataset, options.recipe ?? 'medium', env.id, options.policy, completeReturns(r), { ...options.metadata, seed: String(options.seed) });
}

/**
 * D4RL's `medium-replay`: the replay buffer a policy was trained with, as a dataset. Rows keep
 * their order within each episode and episodes stay contiguous (`OfflineDataset.fromReplayBuffer`:
 * an episode cut without a flag gets `timeouts` = 1; the buffer's last, unfinished episode keeps
 * no flag).
 * @param options.policy the run the buffer came from (metadata `policy`)
 * @param options.firstEpisodePartial the oldest episode lost its first rows (the buffer overwrote
 *   them), so its return is left out of `meanReturn`. Default: whether this buffer dropped rows
 *   (a buffer loaded from disk does not know; a checkpoint does: its env steps exceed the rows)
 * @throws ValidationError for an empty buffer
 */
export function mediumReplayDataset(buffer: ReplayBuffer, options: { envId: string; policy: string; firstEpisodePartial?: boolean }): OfflineDataset {
  if (buffer.size === 0) throw new ValidationError('mediumReplayDataset', 'buffer', 'expected a replay buffer with transitions, got an empty one');
  // Returns of the episodes whose end the environment flagged, read before conversion adds flags;
  // the first episode lost its start when the buffer overwrote rows.
  const b = buffer.slice(0, buffer.size);
  const sums = new Map<number, { ret: number; ended: boolean }>();
  for (let i = 0; i < b.size; i++) {
    const e = sums.get(b.episodeId[i]) ?? { ret: 0, ended: false };
    e.ret += b.reward[i];
    if (b.terminated[i] === 1 || b.truncated[i] === 1) e.ended = true;
    sums.set(b.episodeId[i], e);
  }
  const partialFirst = (options.firstEpisodePartial ?? buffer.dropped > 0) ? b.episodeId[0] : undefined;
  const all = [...sums.values()].map((e) => e.ret);
  const complete = [...sums.entries()].filter(([id, e]) => e.ended && id !== partialFirst).map(([, e]) => e.ret);
  const ds = OfflineDataset.fromReplayBuffer(buffer);
  return stamp(ds, 'medium-replay', options.envId, options.policy, complete.length > 0 ? complete : all, { source: ds.metadata.source });
}

/**
 * D4RL's `medium-expert`: `medium` then `expert`, of equal size (`OfflineDataset.concat`: no
 * episode runs across the halves). The mean return is over both halves' complete episodes: those
 * their recipe metadata counted (`meanReturn`, `returnEpisodes`), else every episode that ends
 * with a flag.
 * @throws ValidationError when the sizes, dimensions or recorded tasks differ
 */
export function mediumExpertDataset(medium: OfflineDataset, expert: OfflineDataset): OfflineDataset {
  const where = 'mediumExpertDataset';
  if (medium.obsDim !== expert.obsDim || medium.actDim !== expert.actDim) {
    throw new ValidationError(where, 'expert', `expected obsDim ${medium.obsDim} and actDim ${medium.actDim} (as the medium dataset), got ${expert.obsDim} and ${expert.actDim}`);
  }
  if (medium.size !== expert.size) throw new ValidationError(where, 'expert', `expected ${medium.size} rows (as the medium dataset: D4RL's halves are of equal size), got ${expert.size}`);
  const [mEnv, eEnv] = [medium.metadata.envId, expert.metadata.envId];
  if (mEnv !== undefined && eEnv !== undefined && mEnv !== eEnv) throw new ValidationError(where, 'expert', `expected data of ${mEnv} (as the medium dataset), got ${eEnv}`);
  const envId = mEnv ?? eEnv;
  if (envId === undefined) throw new ValidationError(where, 'metadata.envId', 'neither dataset records its task (metadata envId)');
  const parts = [medium, expert].map(partReturns);
  const n = parts[0].n + parts[1].n;
  const mean = (parts[0].mean * parts[0].n + parts[1].mean * parts[1].n) / n;
  const both = OfflineDataset.concat([medium, expert]);
  const policy = `medium: ${medium.metadata.policy ?? '?'}; expert: ${expert.metadata.policy ?? '?'}`;
  return stamp(both, 'medium-expert', envId, policy, { mean, n }, {
    source: both.metadata.source,
    ...(medium.metadata.meanReturn !== undefined ? { mediumMeanReturn: medium.metadata.meanReturn } : {}),
    ...(expert.metadata.meanReturn !== undefined ? { expertMeanReturn: expert.metadata.meanReturn } : {}),
  });
}

function completeReturns(r: CollectResult): number[] {
  return r.completeEpisodes > 0 ? r.returns.slice(0, r.completeEpisodes) : r.returns;
}

/** A dataset's mean return and episode count: from its recipe metadata, else over its episodes that end with a flag. */
function partReturns(d: OfflineDataset): { mean: number; n: number } {
  const [mean, n] = [Number(d.metadata.meanReturn), Number(d.metadata.returnEpisodes)];
  if (d.metadata.meanReturn !== undefined && Number.isFinite(mean) && Number.isInteger(n) && n > 0) return { mean, n };
  const returns = d.episodes()
    .filter((e) => e.terminated || e.truncated)
    .map((e) => d.rewards.subarray(e.start, e.end).reduce((s, r) => s + r, 0));
  return { mean: returns.reduce((s, x) => s + x, 0) / returns.length, n: returns.length };
}

/** The dataset with the recipe's metadata (its own kept where not replaced). */
function stamp(ds: OfflineDataset, recipe: D4rlRecipe, envId: string, policy: string, returns: number[] | { mean: number; n: number }, extra: DatasetMetadata): OfflineDataset {
  const { mean: meanReturn, n } = Array.isArray(returns) ? { mean: returns.reduce((s, x) => s + x, 0) / returns.length, n: returns.length } : returns;
  const metadata: DatasetMetadata = {
    ...ds.metadata,
    ...extra,
    recipe,
    name: d4rlDatasetName(envId, recipe),
    envId,
    policy,
    steps: String(ds.size),
    meanReturn: String(meanReturn),
    returnEpisodes: String(n),
  };
  return new OfflineDataset(ds, { obsDim: ds.obsDim, actDim: ds.actDim, metadata });
}
