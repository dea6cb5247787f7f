// Seeded learning test of the model-based loop (issue: "Pendulum-v1 with CEM over a learned
// ensemble reaches mean return ≥ −300 over 5 evaluation episodes after at most 5,000 environment
// steps"). Random torques score about −1200 on Pendulum-v1 (and −869 on this run's warm-up
// episode): they never swing the rod up and hold it, so every step near the bottom costs ~π².
// A mean of −300 over 5 fresh seeds needs a controller that swings up from any start within a
// few seconds and balances — chance cannot do that.
import { beforeAll, describe, expect, it } from 'vitest';
import { makePetsAgent, makePetsConfig, trainPets, type PetsEpisodeMetrics } from '../../src/algorithms/mbrl.js';
import { initBackend } from '../../src/core/backend.js';
import { makeEnv } from '../../src/envs/registry.js';
import { runEpisodesAsync } from '../../src/envs/runEpisodes.js';

beforeAll(async () => {
  await initBackend();
});

describe('PETS on Pendulum-v1 (learning test)', () => {
  it('reaches a mean return ≥ −300 over 5 evaluation episodes within 1,200 env steps', async () => {
    const config = makePetsConfig({ env: 'Pendulum-v1', steps: 1200, seed: 1 });
    const env = await makeEnv(config.env);
    const history: PetsEpisodeMetrics[] = [];
    const state = await trainPets(config, env, { onEpisode: (m) => void history.push(m) });
    expect(state.envSteps).toBe(1200);
    expect(history.map((m) => m.policy)).toEqual(['random', 'cem', 'cem', 'cem', 'cem', 'cem']);
    expect(state.weights).not.toBeNull();
    const { agent, predictor } = await makePetsAgent(config, state.weights!, state.elites, env);
    try {
      const stats = await runEpisodesAsync(env, agent, { episodes: 5, seed: 1000 });
      console.log(`PETS Pendulum-v1 after 1200 steps: eval returns ${stats.returns.map((r) => r.toFixed(1)).join(', ')}; mean ${stats.mean.toFixed(1)}`);
      expect(stats.mean).toBeGreaterThanOrEqual(-300);
    } finally {
      predictor.dispose();
      env.close();
    }
  }, 600_000);
});
