// Seeded learning tests of the model-based policy learners (CI-size) on InvertedPendulum-v5.
// The return is the number of steps the pole stays up (at most 1000). Measured over 100 seeded
// episodes: a uniformly random policy scores 4.8 on average (best 19), the constant zero action
// 25.2 (best 48). A mean evaluation return of 100 over 3 episodes is out of chance's reach.
import { beforeAll, describe, expect, it } from 'vitest';
import { makeMbMpoConfig, trainMbMpo } from '../../src/algorithms/mbMpo.js';
import { makeMeTrpoConfig, trainMeTrpo } from '../../src/algorithms/meTrpo.js';
import { initBackend } from '../../src/core/backend.js';
import { makeEnv } from '../../src/envs/registry.js';
import { HAVE_MJCF } from '../helpers.js';

const THRESHOLD = 100;

beforeAll(async () => {
  await initBackend({ log: () => {} });
});

describe.skipIf(!HAVE_MJCF)('model-based policy learning on InvertedPendulum-v5 (MJCF from $MBRL_MJCF_DIR)', () => {
  it('MB-MPO balances the pole (mean eval return ≥ 100) within a 1,500-step budget', async () => {
    const config = makeMbMpoConfig({ env: 'InvertedPendulum-v5', seed: 1, steps: 1500 });
    const env = await makeEnv(config.env);
    const state = await trainMbMpo(config, env);
    env.close();
    const last = state.history[state.history.length - 1];
    console.log(`MB-MPO InvertedPendulum seed 1: ${state.history.map((h) => `${h.envSteps} steps → ${h.evalReturn?.toFixed(1)}`).join(', ')}`);
    // The budget is checked between iterations: the last iteration's five episodes may run past it.
    expect(state.envSteps).toBeLessThanOrEqual(1500 + 5 * 1000);
    expect(last.evalReturn).toBeGreaterThanOrEqual(THRESHOLD);
  }, 600_000);

  it('ME-TRPO balances the pole (mean eval return ≥ 100) within a 1,500-step budget', async () => {
    const config = makeMeTrpoConfig({ env: 'InvertedPendulum-v5', seed: 1, steps: 1500 });
    const env = await makeEnv(config.env);
    const state = await trainMeTrpo(config, env);
    env.close();
    const last = state.history[state.history.length - 1];
    console.log(`ME-TRPO InvertedPendulum seed 1: ${state.history.map((h) => `${h.envSteps} steps → ${h.evalReturn?.toFixed(1)}`).join(', ')}`);
    expect(last.evalReturn).toBeGreaterThanOrEqual(THRESHOLD);
  }, 600_000);
});
