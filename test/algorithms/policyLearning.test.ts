// Seeded learning tests of model-free TRPO and PPO (issue 5: "both also run model-free on a real
// environment: they are our baselines"). Each trains on a CI-size budget and evaluates the
// deterministic policy (the mean action) on 5 episodes with fresh reset seeds. Each also measures
// what chance gets on the same episodes — uniform random actions, and the untrained policy — so
// the threshold's distance from chance is checked, not just asserted in a comment:
// - Pendulum-v1: without swinging the rod up and holding it, a step near the bottom costs ~π²;
//   random torques and the untrained policy score ≈ −1200 over 200 steps. −500 over 5 episodes
//   needs a controller that swings up from any start and balances.
// - InvertedPendulum-v5: the pole leaves the ±0.2 rad band in ~5 steps under random forces and in
//   tens of steps under a near-zero one (the untrained policy); 150 steps means it is balanced.
// Measured returns for other seeds and budgets are in the comments of each test.
import { beforeAll, describe, expect, it } from 'vitest';
import { makeEnvCopies } from '../../src/algorithms/policyGradient.js';
import { makePpoConfig, trainPpo } from '../../src/algorithms/ppo.js';
import { makeTrpoConfig, trainTrpo } from '../../src/algorithms/trpo.js';
import { RandomAgent, type Agent } from '../../src/core/agent.js';
import { initBackend } from '../../src/core/backend.js';
import type { Env } from '../../src/core/env.js';
import { Rng } from '../../src/core/rng.js';
import { makeEnv } from '../../src/envs/registry.js';
import { runEpisodes } from '../../src/envs/runEpisodes.js';
import { GaussianMlpPolicy, makePolicySpec } from '../../src/policies/gaussianMlpPolicy.js';
import { HAVE_MJCF, MJCF_SKIP_REASON } from '../helpers.js';

beforeAll(async () => {
  await initBackend({ log: () => {} });
});

const EVAL = { episodes: 5, seed: 10_000 };

/** Mean evaluation return of the better of two chance policies: uniform random actions, and an untrained policy's mean action. */
function chance(env: Env): number {
  const random = runEpisodes(env, new RandomAgent(env.actionSpace, new Rng(0)), EVAL).mean;
  const untrained = new GaussianMlpPolicy(makePolicySpec({ obsDim: env.observationSpace.dim, actionSpace: env.actionSpace }), { rng: new Rng(0) });
  const zero = runEpisodes(env, untrained, EVAL).mean;
  untrained.dispose();
  return Math.max(random, zero);
}

function evaluate(env: Env, agent: Agent, label: string, base: number): number {
  const stats = runEpisodes(env, agent, EVAL);
  console.log(`${label}: eval returns ${stats.returns.map((r) => r.toFixed(1)).join(', ')}; mean ${stats.mean.toFixed(1)} (chance ${base.toFixed(1)})`);
  return stats.mean;
}

describe('TRPO (learning tests)', () => {
  it('swings up and holds Pendulum-v1: mean return ≥ −500 after 100,000 steps', async () => {
    // Measured, 100k steps (~30 s): seeds 0/1/2/3 → −161/−184/−163/−107. At 80k steps one seed of
    // four stayed near −540 (the swing-up is learned between 80k and 100k), hence 100k.
    const config = makeTrpoConfig({ env: 'Pendulum-v1', seed: 0, steps: 100_000 });
    const envs = await makeEnvCopies(config);
    const { policy, baseline } = await trainTrpo(config, envs);
    for (const e of envs) e.close();
    const env = await makeEnv(config.env);
    const base = chance(env);
    expect(base).toBeLessThan(-900);
    expect(evaluate(env, policy, 'TRPO Pendulum-v1 100k', base)).toBeGreaterThanOrEqual(-500);
    policy.dispose();
    baseline.dispose?.();
  }, 300_000);

  it.skipIf(!HAVE_MJCF)(`balances InvertedPendulum-v5: mean return ≥ 150 after 25,000 steps ${MJCF_SKIP_REASON}`, async () => {
    // Measured, 25k steps (~10 s): seeds 0–7 → 1000/1000/1000/244/1000/1000/1000/1000.
    const config = makeTrpoConfig({ env: 'InvertedPendulum-v5', seed: 0, steps: 25_000 });
    const envs = await makeEnvCopies(config);
    const { policy, baseline } = await trainTrpo(config, envs);
    for (const e of envs) e.close();
    const env = await makeEnv(config.env);
    const base = chance(env);
    expect(base).toBeLessThan(50);
    expect(evaluate(env, policy, 'TRPO InvertedPendulum-v5 25k', base)).toBeGreaterThanOrEqual(150);
    policy.dispose();
    baseline.dispose?.();
    env.close();
  }, 300_000);
});

describe('PPO (learning test)', () => {
  it.skipIf(!HAVE_MJCF)(`balances InvertedPendulum-v5: mean return ≥ 150 after 25,000 steps ${MJCF_SKIP_REASON}`, async () => {
    // Measured, 25k steps (~45 s): seeds 0–3 → 1000/1000/1000/1000.
    const config = makePpoConfig({ env: 'InvertedPendulum-v5', seed: 0, steps: 25_000 });
    const envs = await makeEnvCopies(config);
    const { policy, valueFunction } = await trainPpo(config, envs);
    for (const e of envs) e.close();
    const env = await makeEnv(config.env);
    const base = chance(env);
    expect(base).toBeLessThan(50);
    expect(evaluate(env, policy, 'PPO InvertedPendulum-v5 25k', base)).toBeGreaterThanOrEqual(150);
    policy.dispose();
    valueFunction.dispose();
    env.close();
  }, 300_000);
});
