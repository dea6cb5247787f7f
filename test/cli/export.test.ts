// Policy checkpoints, `mbrl export` and `mbrl eval --model`: a small checkpoint written here (a
// randomly initialised policy: this tests the plumbing and formats, not learning), exported,
// evaluated from the .onnx file, and the refusals (a PETS run has no policy to export).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePetsConfig } from '../../src/algorithms/mbrl.js';
import { loadCheckpoint, loadCheckpointModels, loadPolicyCheckpoint, saveCheckpoint, savePolicyCheckpoint } from '../../src/cli/checkpoint.js';
import { initBackend } from '../../src/core/backend.js';
import { Rng } from '../../src/core/rng.js';
import { ReplayBuffer } from '../../src/data/replayBuffer.js';
import { Pendulum } from '../../src/envs/pendulum.js';
import { runEpisodes } from '../../src/envs/runEpisodes.js';
import { decodeModelProto } from '../../src/export/onnxProto.js';
import { randomEnsembleWeights } from '../../src/models/referenceForward.js';
import { GaussianMlpPolicy, makePolicySpec } from '../../src/policies/gaussianMlpPolicy.js';
import { runCli as run } from '../runCli.js';

const dir = mkdtempSync(join(tmpdir(), 'mbrl-export-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const policyRun = join(dir, 'trpo-run');
const petsRun = join(dir, 'pets-run');
const spec = makePolicySpec({ obsDim: 3, actionLow: [-2], actionHigh: [2], hidden: [16, 16] });
let policy: GaussianMlpPolicy;
const ensembleSpec = { numMembers: 3, obsDim: 3, actDim: 1, hidden: [8], activation: 'silu' as const, probabilistic: true, learnReward: false };

beforeAll(async () => {
  await initBackend();
  policy = new GaussianMlpPolicy(spec, { rng: new Rng(5) });
  const w = policy.getWeights();
  w.layers[2].W = w.layers[2].W.map((v) => v * 100);
  w.obsStd = Float32Array.from([1, 1, 8]);
  policy.setWeights(w);
  await savePolicyCheckpoint(policyRun, {
    config: { kind: 'trpo', env: 'Pendulum-v1', seed: 0 },
    envSteps: 1000,
    policySpec: spec,
    policyWeights: policy.getWeights(),
    ensemble: null,
    state: { rng: new Rng(1).getState(), iterations: 5 },
  });
  await saveCheckpoint(petsRun, {
    config: makePetsConfig({ env: 'Pendulum-v1' }),
    envSteps: 50,
    episodes: 1,
    buffer: new ReplayBuffer({ capacity: 100, obsDim: 3, actDim: 1 }),
    weights: randomEnsembleWeights(ensembleSpec, new Rng(2)),
    elites: [0, 2],
    rng: new Rng(3).getState(),
    history: [],
  });
});
afterAll(() => policy.dispose());

describe('policy checkpoints', () => {
  it('round-trip the config, env steps, state and the policy bit for bit', async () => {
    const back = await loadPolicyCheckpoint(policyRun);
    expect(back.config).toEqual({ kind: 'trpo', env: 'Pendulum-v1', seed: 0 });
    expect(back.envSteps).toBe(1000);
    expect(back.state.iterations).toBe(5);
    expect(back.policySpec).toEqual(spec);
    expect(back.ensemble).toBeNull();
    const w = policy.getWeights();
    back.policyWeights.layers.forEach((l, i) => {
      expect(l.W).toEqual(w.layers[i].W);
      expect(l.b).toEqual(w.layers[i].b);
    });
    expect(back.policyWeights.logStd).toEqual(w.logStd);
    expect(back.policyWeights.obsStd).toEqual(w.obsStd);
    const models = await loadCheckpointModels(policyRun);
    expect(models.policy?.spec).toEqual(spec);
    expect(models.ensemble).toBeNull();
  });

  it('keep PETS checkpoints and policy checkpoints apart, with clear errors', async () => {
    await expect(loadCheckpoint(policyRun)).rejects.toThrow(/config\.kind "trpo" is not supported here \(expected "pets"\)/);
    await expect(loadPolicyCheckpoint(petsRun)).rejects.toThrow(/holds no policy \(config\.kind "pets": its controller is a planner over the ensemble\)/);
    const pets = await loadCheckpoint(petsRun);
    expect(pets.elites).toEqual([0, 2]);
    const models = await loadCheckpointModels(petsRun);
    expect(models).toMatchObject({ policy: null, elites: [0, 2], envSteps: 50 });
    expect(models.ensemble?.spec).toEqual(ensembleSpec);
  });

  it('detect a corrupt or missing policy.bin and a bad config', async () => {
    const bad = join(dir, 'bad-run');
    await savePolicyCheckpoint(bad, { config: { kind: 'ppo', env: 'Pendulum-v1' }, envSteps: 0, policySpec: spec, policyWeights: policy.getWeights(), ensemble: null, state: {} });
    const file = join(bad, 'checkpoint', 'policy.bin');
    const bytes = readFileSync(file);
    bytes[12] ^= 0xff;
    writeFileSync(file, bytes);
    await expect(loadPolicyCheckpoint(bad)).rejects.toThrow(/policy\.bin: checksum mismatch/);
    writeFileSync(file, bytes.subarray(0, 40));
    await expect(loadPolicyCheckpoint(bad)).rejects.toThrow(/policy\.bin: truncated/);
    await expect(savePolicyCheckpoint(bad, { config: { kind: '', env: 'Pendulum-v1' }, envSteps: 0, policySpec: spec, policyWeights: policy.getWeights(), ensemble: null, state: {} })).rejects.toThrow(/config: expected string fields kind and env/);
    await expect(
      savePolicyCheckpoint(bad, { config: { kind: 'ppo', env: 'Pendulum-v1' }, envSteps: 0, policySpec: spec, policyWeights: { ...policy.getWeights(), logStd: null }, ensemble: null, state: {} }),
    ).rejects.toThrow(/logStd: expected 1 values for stdMode 'parameter'/);
  });
});

describe('mbrl export / eval --model', () => {
  const onnxFile = join(dir, 'out', 'pendulum-trpo.onnx');

  it('exports the policy by default, with its metadata, and evaluates the file', async () => {
    const r = await run(['export', '--checkpoint', policyRun, '--out', onnxFile, '--json']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const res = JSON.parse(r.out) as { what: string; bytes: number; metadata: Record<string, string> };
    expect(res.what).toBe('policy');
    expect(res.metadata).toMatchObject({
      'mbrl.what': 'policy',
      'mbrl.env_id': 'Pendulum-v1',
      'mbrl.algorithm': 'trpo',
      'mbrl.config_kind': 'trpo',
      'mbrl.env_steps': '1000',
      'mbrl.obs_dim': '3',
      'mbrl.act_dim': '1',
      'mbrl.action_low': '-2',
      'mbrl.action_high': '2',
      'mbrl.obs_low': '-1,-1,-8',
      'mbrl.obs_names': '["cos(theta)","sin(theta)","theta_dot"]',
      'mbrl.squash': 'clip',
      'mbrl.stochastic': 'false',
    });
    const model = decodeModelProto(readFileSync(onnxFile));
    expect(model.graph.output.map((o) => o.name)).toEqual(['action']);

    const e = await run(['eval', '--model', onnxFile, '--env', 'Pendulum-v1', '--episodes', '2', '--seed', '4', '--json', '--quiet']);
    expect(e.code).toBe(0);
    const ev = JSON.parse(e.out) as { meanReturn: number; stdReturn: number; returns: number[]; trainedEnvSteps: number };
    expect(ev.returns).toHaveLength(2);
    expect(ev.meanReturn).toBeCloseTo((ev.returns[0] + ev.returns[1]) / 2, 9);
    expect(ev.trainedEnvSteps).toBe(1000);
    // The same episodes with the in-process tfjs policy: actions agree to 1e-5, returns closely.
    const ref = runEpisodes(new Pendulum(), policy, { episodes: 2, seed: 4 });
    ev.returns.forEach((ret, k) => expect(Math.abs(ret - ref.returns[k])).toBeLessThan(1e-3 * Math.abs(ref.returns[k])));
    // --env defaults to the file's task.
    const d = await run(['eval', '--model', onnxFile, '--episodes', '1', '--seed', '4', '--json', '--quiet']);
    expect(JSON.parse(d.out)).toMatchObject({ env: 'Pendulum-v1', returns: [ev.returns[0]] });
  });

  it('--stochastic adds the mean and log_std outputs', async () => {
    const file = join(dir, 'out', 'stochastic.onnx');
    const r = await run(['export', '--checkpoint', policyRun, '--out', file, '--stochastic']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/wrote .*stochastic\.onnx \(policy, \d+ bytes\): obs 3 → action 1, Pendulum-v1, trpo, 1000 env steps/);
    expect(decodeModelProto(readFileSync(file)).graph.output.map((o) => o.name)).toEqual(['action', 'mean', 'log_std']);
  });

  it('a PETS checkpoint: --what policy is refused with the reason, the default exports the ensemble', async () => {
    const p = await run(['export', '--checkpoint', petsRun, '--out', join(dir, 'out', 'x.onnx'), '--what', 'policy']);
    expect(p.code).toBe(2);
    expect(p.err).toMatch(/--what policy: .* is a PETS checkpoint: its controller is a planner .* export the dynamics model with --what ensemble/);
    const file = join(dir, 'out', 'pets-ensemble.onnx');
    const r = await run(['export', '--checkpoint', petsRun, '--out', file, '--json']);
    expect(r.code).toBe(0);
    const res = JSON.parse(r.out) as { what: string; metadata: Record<string, string> };
    expect(res.what).toBe('ensemble');
    expect(res.metadata).toMatchObject({ 'mbrl.what': 'ensemble', 'mbrl.kind': 'dynamics-ensemble', 'mbrl.elites': '0,2', 'mbrl.config_kind': 'pets', 'mbrl.env_steps': '50' });
    const input = decodeModelProto(readFileSync(file)).graph.input;
    expect(input.map((i) => i.type?.tensor_type?.shape?.dim.map((x) => x.dim_value ?? x.dim_param))).toEqual([
      [3, 'batch', 3],
      [3, 'batch', 1],
    ]);
    const elites = await run(['export', '--checkpoint', petsRun, '--out', file, '--elites-only', '--json']);
    expect(elites.code).toBe(0);
    expect(decodeModelProto(readFileSync(file)).graph.input[0].type?.tensor_type?.shape?.dim[0]).toEqual({ dim_value: 2 });
    // An ensemble file is not a controller.
    const e = await run(['eval', '--model', file, '--env', 'Pendulum-v1', '--episodes', '1']);
    expect(e.code).toBe(2);
    expect(e.err).toMatch(/mbrl\.what: expected "policy", got "ensemble"/);
  });

  it('refuses bad command lines and files for the wrong task', async () => {
    expect((await run(['export', '--checkpoint', policyRun, '--out', join(dir, 'y.onnx'), '--what', 'ensemble'])).err).toMatch(/holds no trained dynamics ensemble yet \(it has a policy: --what policy\)/);
    expect((await run(['export', '--checkpoint', policyRun, '--out', join(dir, 'y.onnx'), '--what', 'planner'])).err).toMatch(/--what planner: expected policy or ensemble/);
    expect((await run(['export', '--checkpoint', policyRun])).err).toMatch(/--out is required/);
    expect((await run(['export', '--checkpoint', join(dir, 'nope'), '--out', join(dir, 'y.onnx')])).err).toMatch(/no checkpoint found/);
    expect((await run(['eval', '--model', onnxFile, '--checkpoint', policyRun])).err).toMatch(/not both/);
    const wrong = await run(['eval', '--model', onnxFile, '--env', 'MountainCarContinuous-v0', '--episodes', '1']);
    expect(wrong.code).toBe(2);
    expect(wrong.err).toMatch(/mbrl\.obs_dim: expected observations of size 2, the file's policy takes 3/);
  });
});
