// D4RL's dataset recipes on Pendulum-v1 with small N: random, medium (a policy), medium-replay (the
// replay buffer of a short SAC run saved in a policy checkpoint), medium-expert; their episode
// boundaries, the next-observation rule, their metadata; and `mbrl dataset collect --recipe`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeSacConfig, trainSac, type SacResult } from '../../src/algorithms/sac.js';
import { savePolicyCheckpoint } from '../../src/cli/checkpoint.js';
import { RandomAgent } from '../../src/core/agent.js';
import { initBackend } from '../../src/core/backend.js';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { d4rlDatasetName, mediumExpertDataset, mediumReplayDataset, policyDataset, randomDataset } from '../../src/data/d4rlRecipes.js';
import { OfflineDataset } from '../../src/data/dataset.js';
import { loadHdf5Dataset } from '../../src/data/hdf5Dataset.js';
import { ReplayBuffer } from '../../src/data/replayBuffer.js';
import { Pendulum } from '../../src/envs/pendulum.js';
import { GaussianMlpPolicy, makePolicySpec } from '../../src/policies/gaussianMlpPolicy.js';
import { runCli as run } from '../runCli.js';

const dir = mkdtempSync(join(tmpdir(), 'mbrl-d4rl-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Row i's next observation equals row i+1's observation inside every episode; checks each pair. */
function expectAligned(ds: OfflineDataset): void {
  const D = ds.obsDim;
  for (const ep of ds.episodes()) {
    for (let i = ep.start; i < ep.end - 1; i++) {
      expect(Array.from(ds.next_observations.subarray(i * D, (i + 1) * D)), `row ${i}`).toEqual(Array.from(ds.observations.subarray((i + 1) * D, (i + 2) * D)));
    }
  }
  expect(ds.checkAlignment().mismatches).toBe(0);
}

const episodeReturn = (ds: OfflineDataset, start: number, end: number): number => Array.from(ds.rewards.subarray(start, end)).reduce((s, r) => s + r, 0);
const spans = (ds: OfflineDataset): [number, number, boolean, boolean][] => ds.episodes().map((e) => [e.start, e.end, e.terminated, e.truncated]);

describe('d4rlDatasetName', () => {
  it("is the id in lower case without its version, then the recipe (D4RL's names)", () => {
    expect(d4rlDatasetName('HalfCheetah-v5', 'medium')).toBe('halfcheetah-medium');
    expect(d4rlDatasetName('Hopper-v5', 'medium-replay')).toBe('hopper-medium-replay');
    expect(d4rlDatasetName('Pendulum-v1', 'medium-expert')).toBe('pendulum-medium-expert');
    expect(d4rlDatasetName('PointGoal2D', 'random')).toBe('pointgoal2d-random');
  });
});

describe('recipes', () => {
  let policy: GaussianMlpPolicy;
  beforeAll(async () => {
    await initBackend({ log: () => {} });
    policy = new GaussianMlpPolicy(makePolicySpec({ obsDim: 3, actionLow: [-2], actionHigh: [2], hidden: [16, 16] }), { rng: new Rng(5) });
  });
  afterAll(() => policy.dispose());

  it('random: N uniform random steps, episodes reset with S+k, the last cut; mean return over the complete episodes', async () => {
    const ds = await randomDataset(new Pendulum(), { steps: 450, seed: 3 });
    expect(ds.size).toBe(450);
    // Pendulum's time limit is 200 steps: two whole episodes and 50 steps cut by the budget.
    expect(spans(ds)).toEqual([[0, 200, false, true], [200, 400, false, true], [400, 450, false, true]]);
    expectAligned(ds);
    // The same actions as a random agent seeded with S, stepped by hand.
    const env = new Pendulum();
    const agent = new RandomAgent(env.actionSpace, new Rng(3));
    let { obs } = env.reset({ seed: 3 });
    for (let i = 0; i < 200; i++) {
      const a = agent.act();
      expect(Array.from(ds.observations.subarray(i * 3, i * 3 + 3))).toEqual(Array.from(Float32Array.from(obs)));
      expect(ds.actions[i]).toBe(Math.fround(a[0]));
      obs = env.step(a).obs;
    }
    const mean = (episodeReturn(ds, 0, 200) + episodeReturn(ds, 200, 400)) / 2;
    expect(ds.metadata).toMatchObject({ recipe: 'random', name: 'pendulum-random', envId: 'Pendulum-v1', policy: 'random', steps: '450', returnEpisodes: '2', seed: '3' });
    expect(Number(ds.metadata.meanReturn)).toBeCloseTo(mean, 2);
    // Random torques never hold the pendulum up: far below a swing-up's ≈ −150.
    expect(mean).toBeLessThan(-600);
  });

  it('medium: the given policy acts on every row; a budget shorter than an episode uses the cut one', async () => {
    const ds = await policyDataset(new Pendulum(), { act: (o) => policy.act(o) }, { steps: 120, seed: 7, policy: 'tiny.onnx' });
    expect(spans(ds)).toEqual([[0, 120, false, true]]);
    expectAligned(ds);
    for (let i = 0; i < 120; i++) expect(ds.actions[i]).toBeCloseTo(policy.act(Float64Array.from(ds.observations.subarray(i * 3, i * 3 + 3)))[0], 5);
    expect(ds.metadata).toMatchObject({ recipe: 'medium', name: 'pendulum-medium', envId: 'Pendulum-v1', policy: 'tiny.onnx', steps: '120', returnEpisodes: '1' });
    expect(Number(ds.metadata.meanReturn)).toBeCloseTo(episodeReturn(ds, 0, 120), 2);
    const expert = await policyDataset(new Pendulum(), { act: (o) => policy.act(o) }, { steps: 120, seed: 7, policy: 'x', recipe: 'expert' });
    expect(expert.metadata).toMatchObject({ recipe: 'expert', name: 'pendulum-expert' });
  });

  it('medium-expert: equal halves one after the other, no episode across them; refuses unequal or mismatched halves', async () => {
    const medium = await policyDataset(new Pendulum(), { act: (o) => policy.act(o) }, { steps: 250, seed: 1, policy: 'medium.onnx' });
    const expert = await policyDataset(new Pendulum(), { act: (o) => policy.act(o) }, { steps: 250, seed: 9, policy: 'expert.onnx', recipe: 'expert' });
    const me = mediumExpertDataset(medium, expert);
    expect(me.size).toBe(500);
    expect(spans(me)).toEqual([[0, 200, false, true], [200, 250, false, true], [250, 450, false, true], [450, 500, false, true]]);
    expectAligned(me);
    expect(Array.from(me.observations.subarray(250 * 3, 251 * 3))).toEqual(Array.from(expert.observations.subarray(0, 3)));
    // The mean over each half's complete episodes (its recipe counted one: the second was cut by the budget).
    expect(me.metadata).toMatchObject({ recipe: 'medium-expert', name: 'pendulum-medium-expert', envId: 'Pendulum-v1', policy: 'medium: medium.onnx; expert: expert.onnx', steps: '500', returnEpisodes: '2' });
    expect(me.metadata.mediumMeanReturn).toBe(medium.metadata.meanReturn);
    expect(Number(me.metadata.meanReturn)).toBeCloseTo((episodeReturn(me, 0, 200) + episodeReturn(me, 250, 450)) / 2, 2);
    // Halves without recipe metadata: every episode that ends with a flag counts.
    const bare = (d: OfflineDataset): OfflineDataset => new OfflineDataset(d, { obsDim: 3, actDim: 1, metadata: { envId: 'Pendulum-v1' } });
    expect(mediumExpertDataset(bare(medium), bare(expert)).metadata.returnEpisodes).toBe('4');
    expect(() => mediumExpertDataset(medium, expert.slice(0, 200))).toThrow(ValidationError);
    expect(() => mediumExpertDataset(medium, expert.slice(0, 200))).toThrow(/expert: expected 250 rows \(as the medium dataset.*got 200/);
    const mountainCar = new OfflineDataset(expert, { obsDim: 3, actDim: 1, metadata: { envId: 'MountainCarContinuous-v0' } });
    expect(() => mediumExpertDataset(medium, mountainCar)).toThrow(/expected data of Pendulum-v1 \(as the medium dataset\), got MountainCarContinuous-v0/);
  });

  it('medium-replay: a wrapped buffer keeps episodes whole and contiguous; the episode that lost its start is left out of the mean', () => {
    const buffer = new ReplayBuffer({ capacity: 300, obsDim: 3, actDim: 1 });
    const env = new Pendulum();
    const agent = new RandomAgent(env.actionSpace, new Rng(4));
    const returns: number[] = [];
    for (let ep = 0; ep < 3; ep++) {
      let { obs } = env.reset({ seed: ep });
      let ret = 0;
      for (let t = 0; t < (ep < 2 ? 200 : 60); t++) {
        const a = agent.act();
        const s = env.step(a);
        ret += Math.fround(s.reward);
        buffer.add({ obs, action: a, reward: s.reward, nextObs: s.obs, terminated: s.terminated, truncated: s.truncated });
        obs = s.obs;
      }
      returns.push(ret);
    }
    // 460 rows added to 300 slots: episode 0 lost its first 160 rows, episode 2 is unfinished.
    expect(buffer.dropped).toBe(160);
    const ds = mediumReplayDataset(buffer, { envId: 'Pendulum-v1', policy: 'run' });
    expect(ds.size).toBe(300);
    expect(spans(ds)).toEqual([[0, 40, false, true], [40, 240, false, true], [240, 300, false, false]]);
    expectAligned(ds);
    // Only episode 1 is complete with its start: the mean is its return.
    expect(ds.metadata).toMatchObject({ recipe: 'medium-replay', name: 'pendulum-medium-replay', envId: 'Pendulum-v1', policy: 'run', steps: '300', returnEpisodes: '1' });
    expect(Number(ds.metadata.meanReturn)).toBeCloseTo(returns[1], 3);
    // Told that nothing was lost (a buffer loaded from disk cannot know), episode 0's tail counts too.
    const all = mediumReplayDataset(buffer, { envId: 'Pendulum-v1', policy: 'run', firstEpisodePartial: false });
    expect(all.metadata.returnEpisodes).toBe('2');
    expect(Number(all.metadata.meanReturn)).toBeCloseTo((episodeReturn(ds, 0, 40) + returns[1]) / 2, 3);
    expect(() => mediumReplayDataset(new ReplayBuffer({ capacity: 5, obsDim: 3, actDim: 1 }), { envId: 'Pendulum-v1', policy: 'x' })).toThrow(/buffer: expected a replay buffer with transitions/);
  });
});

describe('mbrl dataset collect --recipe', () => {
  const ckpt = join(dir, 'sac-run');
  const noBuffer = join(dir, 'no-buffer');
  let sac: SacResult;
  beforeAll(async () => {
    await initBackend({ log: () => {} });
    // A tiny SAC run (450 steps, 250 of them learning) saved as a policy checkpoint with its buffer.
    const config = makeSacConfig({ env: 'Pendulum-v1', seed: 2, steps: 450, learningStartSteps: 200, batchSize: 32, hidden: [16, 16], evalEvery: 0 });
    sac = await trainSac(config, new Pendulum());
    const ck = { config: config as unknown as { kind: string; env: string }, envSteps: 450, policySpec: sac.agent.policy.spec, policyWeights: sac.agent.policy.getWeights(), ensemble: null, state: {} };
    await savePolicyCheckpoint(ckpt, { ...ck, buffer: sac.buffer });
    await savePolicyCheckpoint(noBuffer, ck);
  }, 120_000);
  afterAll(() => sac.agent.dispose());

  it('medium-replay: the checkpoint\'s training buffer, episodes and next observations intact, metadata stamped', async () => {
    const out = join(dir, 'replay.h5');
    const r = await run(['dataset', 'collect', '--recipe', 'medium-replay', '--from', ckpt, '--out', out, '--json']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const { dataset: ds } = await loadHdf5Dataset(out);
    expect(ds.size).toBe(450);
    // SAC stored the time-limit ends as truncated; its last episode was still running at 450 steps.
    expect(spans(ds)).toEqual([[0, 200, false, true], [200, 400, false, true], [400, 450, false, false]]);
    expectAligned(ds);
    // Across an episode boundary the next observation is not the next row's (a reset happened).
    expect(Array.from(ds.next_observations.subarray(199 * 3, 200 * 3))).not.toEqual(Array.from(ds.observations.subarray(200 * 3, 201 * 3)));
    // The rows are the buffer's, in order.
    const b = sac.buffer.slice(0, 450);
    expect(Array.from(ds.actions)).toEqual(Array.from(b.action));
    expect(Array.from(ds.next_observations)).toEqual(Array.from(b.nextObs));
    const returns = sac.history.episodes.map((e) => e.return);
    expect(returns).toHaveLength(2);
    const meanReturn = (returns[0] + returns[1]) / 2;
    expect(ds.metadata).toMatchObject({ recipe: 'medium-replay', name: 'pendulum-medium-replay', envId: 'Pendulum-v1', policy: `${ckpt} (sac, 450 steps)`, steps: '450', returnEpisodes: '2' });
    expect(Number(ds.metadata.meanReturn)).toBeCloseTo(meanReturn, 1);
    expect(JSON.parse(r.out)).toMatchObject({ out, recipe: 'medium-replay', name: 'pendulum-medium-replay', rows: 450, episodes: 3, returnEpisodes: 2 });
  });

  it('medium, random and medium-expert through the CLI', async () => {
    const [m, e, rnd, me] = ['m.h5', 'e.h5', 'r.h5', 'me.h5'].map((f) => join(dir, f));
    const rm = await run(['dataset', 'collect', '--recipe', 'medium', '--env', 'Pendulum-v1', '--policy', ckpt, '--steps', '300', '--seed', '4', '--out', m, '--quiet']);
    expect(rm.err).toBe('');
    expect(rm.code).toBe(0);
    expect(rm.out).toMatch(/^pendulum-medium: 300 steps in 2 episodes from .* \(sac, deterministic\), mean return -?\d+\.\d\d over 1 complete episodes → /);
    const medium = (await loadHdf5Dataset(m)).dataset;
    expect(medium.metadata).toMatchObject({ recipe: 'medium', envId: 'Pendulum-v1', policy: `${ckpt} (sac, deterministic)`, source: 'mbrl dataset collect', seed: '4', steps: '300' });
    // The deterministic SAC policy (the squashed mean) chose every action.
    for (let i = 0; i < 300; i += 37) expect(medium.actions[i]).toBeCloseTo(sac.agent.act(Float64Array.from(medium.observations.subarray(i * 3, i * 3 + 3)))[0], 4);
    expect((await run(['dataset', 'collect', '--recipe', 'expert', '--env', 'Pendulum-v1', '--policy', ckpt, '--steps', '300', '--seed', '8', '--out', e, '--quiet'])).code).toBe(0);
    const rr = await run(['dataset', 'collect', '--recipe', 'random', '--env', 'Pendulum-v1', '--steps', '300', '--out', rnd, '--quiet', '--json']);
    expect(JSON.parse(rr.out)).toMatchObject({ recipe: 'random', name: 'pendulum-random', policy: 'random', seed: 0, rows: 300, returnEpisodes: 1 });
    const rme = await run(['dataset', 'collect', '--recipe', 'medium-expert', '--medium', m, '--expert', e, '--env', 'Pendulum-v1', '--out', me, '--json']);
    expect(rme.err).toBe('');
    expect(JSON.parse(rme.out)).toMatchObject({ recipe: 'medium-expert', name: 'pendulum-medium-expert', rows: 600, episodes: 4, returnEpisodes: 2 });
    const both = (await loadHdf5Dataset(me)).dataset;
    expect(both.metadata.source).toBe(`${m} + ${e}`);
    expectAligned(both);
  });

  it('usage and input errors exit 2 and say what was expected', async () => {
    const out = join(dir, 'x.h5');
    const small = join(dir, 'small.h5');
    expect((await run(['dataset', 'collect', '--recipe', 'random', '--env', 'Pendulum-v1', '--steps', '10', '--out', small, '--quiet'])).code).toBe(0);
    const cases: [string[], string][] = [
      [['--recipe', 'expert-replay', '--out', out], '--recipe expert-replay: expected one of random, medium, medium-replay, medium-expert, expert'],
      [['--recipe', 'medium', '--env', 'Pendulum-v1', '--steps', '5', '--out', out], '--policy is required (random, FILE.onnx or a checkpoint directory)'],
      [['--recipe', 'medium', '--env', 'Pendulum-v1', '--policy', 'random', '--steps', '5', '--out', out], '--policy must be a trained policy (FILE.onnx or a checkpoint directory), not random; use --recipe random'],
      [['--recipe', 'random', '--env', 'Pendulum-v1', '--policy', ckpt, '--steps', '5', '--out', out], `--policy ${ckpt} does not apply (the random recipe acts uniformly at random`],
      [['--recipe', 'medium-replay', '--out', out], '--from is required (a checkpoint directory whose run saved its replay buffer)'],
      [['--recipe', 'medium-replay', '--from', ckpt, '--steps', '100', '--out', out], 'mbrl dataset collect --recipe medium-replay: --steps does not apply (options: --from, --env, --out'],
      [['--recipe', 'medium-replay', '--from', ckpt, '--env', 'MountainCarContinuous-v0', '--out', out], `--env: ${ckpt} was trained on Pendulum-v1, not MountainCarContinuous-v0`],
      [['--recipe', 'medium-replay', '--from', noBuffer, '--out', out], `--from: ${noBuffer} holds no replay buffer (checkpoint/buffer/)`],
      [['--recipe', 'medium-expert', '--medium', small, '--out', out], '--expert is required (the expert FILE.h5)'],
      [['--recipe', 'medium-expert', '--medium', small, '--expert', join(dir, 'm.h5'), '--out', out], 'expert: expected 10 rows (as the medium dataset'],
      [['--env', 'Pendulum-v1', '--policy', 'random', '--steps', '5', '--from', ckpt, '--out', out], 'mbrl dataset collect: --from does not apply'],
    ];
    for (const [argv, message] of cases) {
      const r = await run(['dataset', 'collect', ...argv]);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toContain(message);
    }
  });
});
