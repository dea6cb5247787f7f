// `mbrl dataset import | info | collect`, run in-process: collection with a random policy, a
// policy checkpoint and its ONNX export (checked against the policy stepped by hand), imports from
// every source, the info summary, and usage errors.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { savePolicyCheckpoint } from '../../src/cli/checkpoint.js';
import { RandomAgent } from '../../src/core/agent.js';
import { initBackend } from '../../src/core/backend.js';
import { Rng } from '../../src/core/rng.js';
import { saveBuffer } from '../../src/data/bufferStore.js';
import { datasetStats } from '../../src/data/datasetStats.js';
import { loadHdf5Dataset } from '../../src/data/hdf5Dataset.js';
import { ReplayBuffer } from '../../src/data/replayBuffer.js';
import { Pendulum } from '../../src/envs/pendulum.js';
import { GaussianMlpPolicy, makePolicySpec } from '../../src/policies/gaussianMlpPolicy.js';
import { BAGS_DIR, BAGS_SKIP_REASON, HAVE_BAGS } from '../helpers.js';
import { runCli as run } from '../runCli.js';

const dir = mkdtempSync(join(tmpdir(), 'mbrl-dataset-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const FIXTURE = join(import.meta.dirname, '../data/fixtures/d4rl-small.hdf5');

describe('mbrl dataset collect', () => {
  const out = join(dir, 'random.h5');

  it('records N steps of the random policy, episodes reset with seed S+k, the last one cut', async () => {
    const r = await run(['dataset', 'collect', '--env', 'Pendulum-v1', '--policy', 'random', '--steps', '450', '--seed', '3', '--out', out, '--quiet', '--json']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ out, env: 'Pendulum-v1', policy: 'random', seed: 3, rows: 450, episodes: 3 });
    const { dataset: ds } = await loadHdf5Dataset(out);
    expect(ds.metadata).toMatchObject({ envId: 'Pendulum-v1', source: 'mbrl dataset collect', policy: 'random', seed: '3', steps: '450' });
    // Pendulum's time limit is 200 steps: episodes 0-199, 200-399 and 400-449 (cut by the budget).
    expect(ds.episodes().map((e) => [e.start, e.end, e.truncated, e.terminated])).toEqual([[0, 200, true, false], [200, 400, true, false], [400, 450, true, false]]);
    expect(ds.checkAlignment()).toMatchObject({ checked: 447, mismatches: 0 });
    // Step the same episodes by hand: same observations, actions and rewards (float32).
    const env = new Pendulum();
    const agent = new RandomAgent(env.actionSpace, new Rng(3));
    let row = 0;
    for (let ep = 0; ep < 3; ep++) {
      let { obs } = env.reset({ seed: 3 + ep });
      for (let t = 0; t < (ep < 2 ? 200 : 50); t++, row++) {
        const a = Float64Array.from(agent.act());
        const s = env.step(a);
        expect(Array.from(ds.observations.subarray(row * 3, row * 3 + 3))).toEqual(Array.from(Float32Array.from(obs)));
        expect(ds.actions[row]).toBe(Math.fround(a[0]));
        expect(ds.rewards[row]).toBe(Math.fround(s.reward));
        obs = s.obs;
      }
    }
  });

  it('info prints sizes, episodes, returns and per-dimension ranges; --json matches datasetStats', async () => {
    const r = await run(['dataset', 'info', out]);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`${out}: 450 rows, obsDim 3, actDim 1`);
    expect(r.out).toContain('episodes: 3 (0 terminated, 3 cut by a timeout, 0 unfinished); length mean 150.0, min 50, max 200');
    expect(r.out).toMatch(/returns: mean -?\d/);
    expect(r.out).toContain('next observations: aligned (447 in-episode rows checked)');
    expect(r.out).toMatch(/actions:\n {2}dim +min +max +mean +std {2}name\n {2}0 +-\d\.\d{4} +\d\.\d{4}/);
    const j = await run(['dataset', 'info', out, '--json']);
    const parsed = JSON.parse(j.out) as Record<string, unknown>;
    const expected = datasetStats((await loadHdf5Dataset(out)).dataset);
    expect(parsed).toMatchObject({ file: out, rows: 450, episodes: 3, returns: expected.returns, observations: expected.observations });
    // Every observation lies within Pendulum's bounds: cos, sin in [-1, 1], speed in [-8, 8].
    expect(Math.max(...expected.observations.max.slice(0, 2))).toBeLessThanOrEqual(1);
    expect(expected.observations.max[2]).toBeLessThanOrEqual(8);
    expect(expected.actions.min[0]).toBeGreaterThanOrEqual(-2);
  });

  describe('with a learned policy', () => {
    const runDir = join(dir, 'trpo-run');
    const onnx = join(dir, 'policy.onnx');
    let policy: GaussianMlpPolicy;
    beforeAll(async () => {
      await initBackend();
      policy = new GaussianMlpPolicy(makePolicySpec({ obsDim: 3, actionLow: [-2], actionHigh: [2], hidden: [16, 16] }), { rng: new Rng(5) });
      const w = policy.getWeights();
      w.layers[2].W = w.layers[2].W.map((v) => v * 100); // actions far from 0, so a wrong policy would show
      policy.setWeights(w);
      await savePolicyCheckpoint(runDir, { config: { kind: 'trpo', env: 'Pendulum-v1' }, envSteps: 0, policySpec: policy.spec, policyWeights: policy.getWeights(), ensemble: null, state: {} });
      const e = await run(['export', '--checkpoint', runDir, '--out', onnx]);
      expect(e.code).toBe(0);
    });
    afterAll(() => policy.dispose());

    it('a checkpoint acts with the deterministic policy; its ONNX export gives the same actions', async () => {
      const fromCkpt = join(dir, 'ckpt.h5');
      const fromOnnx = join(dir, 'onnx.h5');
      for (const [p, o] of [[runDir, fromCkpt], [onnx, fromOnnx]]) {
        const r = await run(['dataset', 'collect', '--env', 'Pendulum-v1', '--policy', p, '--steps', '60', '--seed', '7', '--out', o, '--quiet']);
        expect(r.err).toBe('');
        expect(r.code).toBe(0);
      }
      const a = (await loadHdf5Dataset(fromCkpt)).dataset;
      const b = (await loadHdf5Dataset(fromOnnx)).dataset;
      expect(a.metadata.policy).toBe(`${runDir} (trpo, deterministic)`);
      // The first action is the policy's on the seed-7 reset; later ones follow the trajectory.
      const first = policy.act(new Pendulum().reset({ seed: 7 }).obs);
      expect(a.actions[0]).toBeCloseTo(first[0], 5);
      expect(Math.abs(a.actions[0])).toBeGreaterThan(0.1);
      for (let i = 0; i < 60; i++) expect(Math.abs(a.actions[i] - b.actions[i])).toBeLessThan(1e-4);
    });

    it('refuses a checkpoint of another task', async () => {
      const r = await run(['dataset', 'collect', '--env', 'MountainCarContinuous-v0', '--policy', runDir, '--steps', '5', '--out', join(dir, 'x.h5')]);
      expect(r.code).toBe(2);
      expect(r.err).toContain(`--policy: ${runDir} was trained on Pendulum-v1, not MountainCarContinuous-v0`);
    });
  });
});

describe('mbrl dataset import', () => {
  it('from h5: re-validates and rewrites, adding --env and --policy as metadata', async () => {
    const out = join(dir, 'imported.h5');
    const r = await run(['dataset', 'import', '--from', 'h5', FIXTURE, '--out', out, '--env', 'Other-v1', '--policy', 'expert']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('(h5) → ');
    expect(r.out).toContain(': 7 rows, obsDim 3, actDim 2, 3 episodes');
    expect(r.out).toContain('note: ignored: infos');
    expect(r.out).toContain('warning: 1 of 4 in-episode rows break the next-observation rule');
    const { dataset } = await loadHdf5Dataset(out);
    expect(dataset.metadata).toMatchObject({ envId: 'Other-v1', policy: 'expert', algorithm: 'SAC' });
  });

  it('from csv and jsonl with a mapping file', async () => {
    const csv = join(dir, 'log.csv');
    writeFileSync(csv, 'x,v,u,r,done\n0,0,1,1,0\n1,1,1,1,0\n2,2,1,1,1\n');
    const mapping = join(dir, 'map.yaml');
    writeFileSync(mapping, 'observations: [x, v]\nactions: u\nrewards: r\nterminals: done\n');
    const out = join(dir, 'csv.h5');
    const r = await run(['dataset', 'import', '--from', 'csv', csv, '--mapping', mapping, '--out', out, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ out, from: 'csv', rows: 2, obsDim: 2, actDim: 1, episodes: 1 });
    const jsonl = join(dir, 'log.jsonl');
    writeFileSync(jsonl, '{"s":[0,0],"a":[1],"r":1,"s2":[1,1]}\n{"s":[1,1],"a":[1],"r":"x","s2":[2,2]}\n');
    const jmap = join(dir, 'map.json');
    writeFileSync(jmap, JSON.stringify({ observations: 's', actions: 'a', rewards: 'r', next_observations: 's2' }));
    const bad = await run(['dataset', 'import', '--from', 'jsonl', jsonl, '--mapping', jmap, '--out', join(dir, 'j.h5')]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('line 2, column "r": expected a finite number representable as float32, got "x"');
  });

  it('from a replay-buffer directory', async () => {
    const buf = new ReplayBuffer({ capacity: 10, obsDim: 2, actDim: 1 });
    for (let i = 0; i < 5; i++) buf.add({ obs: [i, 0], action: [1], reward: i, nextObs: [i + 1, 0], terminated: false, truncated: i === 2 });
    const bdir = join(dir, 'buffer');
    await saveBuffer(buf, bdir);
    const out = join(dir, 'buffer.h5');
    const r = await run(['dataset', 'import', '--from', 'buffer', bdir, '--out', out]);
    expect(r.code).toBe(0);
    const { dataset } = await loadHdf5Dataset(out);
    expect(Array.from(dataset.timeouts)).toEqual([0, 0, 1, 0, 0]);
    expect(dataset.metadata.source).toBe(bdir);
  });

  it.skipIf(!HAVE_BAGS)(`from a ROS 2 bag with a topic mapping ${BAGS_SKIP_REASON}`, async () => {
    const mapping = join(dir, 'nav2.yaml');
    writeFileSync(mapping, 'controlPeriodMs: 100\nobservations:\n  - /odom: nav_msgs/msg/Odometry.pose.pose.position.x\n  - /odom: nav_msgs/msg/Odometry.pose.pose.position.y\nactions:\n  - /odom: nav_msgs/msg/Odometry.twist.twist.linear.x\n');
    const out = join(dir, 'nav2.h5');
    const r = await run(['dataset', 'import', '--from', 'bag', join(BAGS_DIR as string, 'nav2_turtlebot.mcap'), '--mapping', mapping, '--out', out]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain(': 948 rows, obsDim 2, actDim 1, 2 episodes');
    expect(r.out).toContain('/odom (nav_msgs/msg/Odometry): 2639 messages, header stamps, median period 36.0 ms, 0 out of order, 0 duplicate stamps, 1 gaps');
    expect(r.out).toContain('gap 969.624 → 971.388 s (17.6 periods)');
    const info = await run(['dataset', 'info', out]);
    expect(info.out).toMatch(/0 +-?\d.*\/odom:pose\.pose\.position\.x/);
  });

  it('usage errors exit 2 and say what was expected', async () => {
    const cases: [string[], string][] = [
      [['dataset'], 'expected a subcommand, import, info or collect'],
      [['dataset', 'export'], 'unknown subcommand "export"'],
      [['dataset', 'import', '--from', 'csv', 'x.csv', '--out', 'y.h5'], '--mapping FILE is required'],
      [['dataset', 'import', '--from', 'parquet', 'x', '--out', 'y.h5'], '--from parquet: expected one of h5, jsonl, csv, bag, buffer'],
      [['dataset', 'info', FIXTURE, '--steps', '3'], 'mbrl dataset info: --steps does not apply'],
      [['dataset', 'info'], 'expected one FILE.h5, got none'],
      [['dataset', 'collect', '--env', 'Pendulum-v1', '--policy', 'random', '--steps', '0', '--out', 'x.h5'], '--steps 0: expected an integer ≥ 1'],
    ];
    for (const [argv, message] of cases) {
      const r = await run(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err).toContain(message);
    }
  });
});
