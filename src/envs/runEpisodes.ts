import type { Agent } from '../core/agent.js';
import type { Env, StepResult } from '../core/env.js';

/** Options of `runEpisodes`. */
export interface RunEpisodesOptions {
  /** Episodes to run. */
  episodes: number;
  /** Seed of the first episode's reset; episode k uses `seed + k`. Default 0. */
  seed?: number;
  /** Called after every step (e.g. to append the transition to a buffer). */
  onStep?: (obs: Float64Array, action: Float64Array, step: StepResult, episode: number) => void;
  /** Called after every episode. */
  onEpisode?: (episode: number, ret: number, length: number) => void;
}

/** Per-episode returns and lengths of `runEpisodes`. */
export interface EpisodeStats {
  returns: number[];
  lengths: number[];
  mean: number;
  std: number;
}

/**
 * Runs whole episodes of `agent` in `env` (up to the time limit) and reports their returns.
 * The reset seed of episode k is `seed + k`, so evaluations are reproducible.
 */
export function runEpisodes(env: Env, agent: Agent, options: RunEpisodesOptions): EpisodeStats {
  const seed = options.seed ?? 0;
  const returns: number[] = [];
  const lengths: number[] = [];
  for (let ep = 0; ep < options.episodes; ep++) {
    let { obs } = env.reset({ seed: seed + ep });
    agent.reset?.();
    let ret = 0;
    let len = 0;
    for (;;) {
      const action = Float64Array.from(agent.act(obs));
      const s = env.step(action);
      options.onStep?.(obs, action, s, ep);
      ret += s.reward;
      len++;
      obs = s.obs;
      if (s.terminated || s.truncated) break;
    }
    returns.push(ret);
    lengths.push(len);
    options.onEpisode?.(ep, ret, len);
  }
  return summarize(returns, lengths);
}

/** An agent whose action is computed asynchronously (a planner over a learned model). */
export interface AsyncAgent {
  actAsync(obs: Float64Array): Promise<Float64Array>;
  reset(): void;
}

/** `runEpisodes` for an agent that acts asynchronously (planners); same seeding and statistics. */
export async function runEpisodesAsync(env: Env, agent: AsyncAgent, options: Omit<RunEpisodesOptions, 'onStep'> & { onStep?: (episode: number, step: number) => void }): Promise<EpisodeStats> {
  const seed = options.seed ?? 0;
  const returns: number[] = [];
  const lengths: number[] = [];
  for (let ep = 0; ep < options.episodes; ep++) {
    let { obs } = env.reset({ seed: seed + ep });
    agent.reset();
    let ret = 0;
    let len = 0;
    for (;;) {
      const s = env.step(await agent.actAsync(obs));
      ret += s.reward;
      len++;
      options.onStep?.(ep, len);
      obs = s.obs;
      if (s.terminated || s.truncated) break;
    }
    returns.push(ret);
    lengths.push(len);
    options.onEpisode?.(ep, ret, len);
  }
  return summarize(returns, lengths);
}

function summarize(returns: number[], lengths: number[]): EpisodeStats {
  const mean = returns.reduce((a, b) => a + b, 0) / Math.max(1, returns.length);
  const std = Math.sqrt(returns.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, returns.length));
  return { returns, lengths, mean, std };
}
