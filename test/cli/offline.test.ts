// `mbrl offline`, run in-process on a tiny random Pendulum dataset collected by `mbrl dataset
// collect`: MOPO for two epochs (metrics, curve, config, checkpoint), a resumed run that must end
// exactly where the uninterrupted one did, BC, the ONNX exports (--export and `mbrl export` on the
// checkpoint) run in onnxruntime-node, the D4RL recipe defaults, and bad command lines.
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SacAgent, sacStatePolicy, type SacAgentState } from '../../src/algorithms/sac.js';
import { loadPolicyCheckpoint } from '../../src/cli/checkpoint.js';
import { d4rlRecipe } from '../../src/cli/commands/offline.js';
import { loadOfflineCheckpoint } from '../../src/cli/offlineCheckpoint.js';
import { initBackend } from '../../src/core/backend.js';
import { Rng } from '../../src/core/rng.js';
import { d4rlNormalizedScore } from '../../src/data/d4rlRefs.js';
import { Pendulum } from '../../src/envs/pendulum.js';
import { referencePolicyForward, type GaussianMlpPolicySpec, type PolicyWeights } from '../../src/policies/gaussianMlpPolicy.js';
import { OnnxPolicy } from '../../src/policies/onnxPolicy.js';
import { runCli as run } from '../runCli.js';

const dir = mkdtempSync(join(tmpdir(), 'mbrl-offline-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const data = join(dir, 'pendulum-random.h5');
const other = join(dir, 'pendulum-random-s2.h5');
const tiny = join(dir, 'tiny-mopo.json');
const tinyBc = join(dir, 'tiny-bc.json');

// Every size cut to the bone: this tests the plumbing, checkpoints and resume, not learning
// (test/algorithms/mopo.test.ts and bc.test.ts do that).
const TINY_MOPO = {
  sacUpdatesPerEpoch: 5,
  rolloutBatchSize: 20,
  rolloutLength: 2,
  batchSize: 16,
  evalEpisodes: 1,
  ensemble: { numMembers: 3, numElites: 2, hidden: [16, 16] },
  fit: { maxEpochs: 3 },
  sac: { hidden: [16, 16] },
};
const TINY_BC = { stepsPerEpoch: 20, batchSize: 32, hidden: [16, 16], evalEpisodes: 1 };

beforeAll(async () => {
  await initBackend({ log: () => {} });
  for (const [out, seed] of [[data, '0'], [other, '2']]) {
    const r = await run(['dataset', 'collect', '--env', 'Pendulum-v1', '--policy', 'random', '--steps', '400', '--seed', seed, '--out', out, '--quiet']);
    expect(r.code, r.err).toBe(0);
  }
  writeFileSync(tiny, JSON.stringify(TINY_MOPO));
  writeFileSync(tinyBc, JSON.stringify(TINY_BC));
});

const lines = (runDir: string): Record<string, unknown>[] =>
  readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
const withoutTimes = (ls: Record<string, unknown>[]): Record<string, unknown>[] => ls.map(({ seconds: _s, ...rest }) => rest);

/** ONNX actions of a file vs the float64 reference forward of the given policy, on random observations. */
async function checkOnnx(file: string, policy: { spec: GaussianMlpPolicySpec; weights: PolicyWeights }): Promise<void> {
  const onnx = await OnnxPolicy.load(file, { obsDim: 3, actDim: 1, envId: 'Pendulum-v1' });
  const rng = new Rng(4);
  const obs = Float64Array.from({ length: 60 }, (_, k) => (k % 3 === 2 ? rng.uniform(-8, 8) : rng.uniform(-1, 1)));
  const ref = referencePolicyForward(policy.spec, policy.weights, obs, 20).action;
  for (let i = 0; i < 20; i++) {
    const a = onnx.act(obs.subarray(3 * i, 3 * i + 3))[0];
    expect(Math.abs(a - ref[i])).toBeLessThan(1e-5);
    expect(Math.abs(a)).toBeLessThanOrEqual(2);
  }
  onnx.dispose();
}

describe('mbrl offline --algo mopo', () => {
  const full = join(dir, 'mopo-full');
  const split = join(dir, 'mopo-split');
  const onnx = join(dir, 'mopo.onnx');

  it('trains epochs of SAC on dataset + penalised model data; writes metrics, curve, config, checkpoint and ONNX', async () => {
    const r = await run(['offline', '--dataset', data, '--algo', 'mopo', '--steps', '10', '--seed', '1', '--config', tiny, '--out', full, '--export', onnx, '--quiet']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.out) as Record<string, unknown>;
    // The env came from the dataset's metadata (envId Pendulum-v1, written by mbrl dataset collect).
    expect(summary).toMatchObject({ runDir: full, algo: 'mopo', epochs: 2, gradientSteps: 10, normalizedScore: null, export: onnx });
    expect(typeof summary.lastEvalReturn).toBe('number');
    const m = lines(full);
    expect(m.map((l) => [l.algo, l.epoch, l.gradientSteps])).toEqual([['mopo', 1, 5], ['mopo', 2, 10]]);
    for (const l of m) {
      expect(l.evalReturn).toBeLessThan(0);
      expect(l.normalizedScore).toBeNull();
      expect(l.meanPenalty).toBeGreaterThan(0);
    }
    expect(readFileSync(join(full, 'curve.svg'), 'utf8')).toMatch(/^<svg[\s\S]*Pendulum-v1 offline: evaluation return[\s\S]*<\/svg>\n$/);
    const config = JSON.parse(readFileSync(join(full, 'config.json'), 'utf8')) as Record<string, unknown>;
    // No D4RL recipe in the name: MOPO_DEFAULTS' λ, the config file's h.
    expect(config).toMatchObject({ kind: 'mopo', env: 'Pendulum-v1', seed: 1, epochs: 2, penaltyCoef: 1, rolloutLength: 2 });

    // The checkpoint is a policy checkpoint: SAC's actor as the policy, the ensemble, the model buffer.
    const ckpt = await loadPolicyCheckpoint(full);
    expect(ckpt.config.kind).toBe('mopo');
    expect(ckpt.policySpec).toMatchObject({ squash: 'tanh', stdMode: 'state', hidden: [16, 16] });
    expect(ckpt.ensemble?.spec.numMembers).toBe(3);
    // Rollouts of 20 starts × 2 steps per epoch (Pendulum never terminates): 80 rows.
    expect(ckpt.buffer?.size).toBe(80);
    const saved = await loadOfflineCheckpoint(full);
    expect(saved.info).toMatchObject({ algo: 'mopo', recipe: null, dataset: { path: data, rows: 400 } });
    const agentState = (saved.state as { agent: SacAgentState }).agent;
    const policy = sacStatePolicy(agentState);
    expect(policy.weights).toEqual(ckpt.policyWeights);
    // …and that policy is the actor a SacAgent restored from the state acts with.
    const agent = new SacAgent({ obsDim: 3, actionSpace: new Pendulum().actionSpace, config: agentState.config, rng: new Rng(0) });
    agent.setState(agentState);
    expect(agent.policy.spec).toEqual(policy.spec);
    expect(agent.policy.getWeights()).toEqual(policy.weights);
    agent.dispose();

    // --export and `mbrl export` on the checkpoint: the same controller, run in onnxruntime-node.
    await checkOnnx(onnx, policy);
    const viaExport = join(dir, 'mopo-export.onnx');
    const e = await run(['export', '--checkpoint', full, '--out', viaExport]);
    expect(e.code, e.err).toBe(0);
    await checkOnnx(viaExport, policy);
  }, 60_000);

  it('--resume continues exactly: one epoch, then resumed to two, equals the uninterrupted run', async () => {
    const a = await run(['offline', '--dataset', data, '--algo', 'mopo', '--steps', '5', '--seed', '1', '--config', tiny, '--out', split, '--quiet']);
    expect(a.code, a.err).toBe(0);
    const b = await run(['offline', '--resume', split, '--steps', '10', '--quiet']);
    expect(b.code, b.err).toBe(0);
    const [x, y] = [await loadOfflineCheckpoint(full), await loadOfflineCheckpoint(split)];
    // Everything a checkpoint holds agrees: SAC (actor, critics, targets, α, Adam, generators), the
    // model buffer, the run's generator and the history (wall times aside).
    expect(y.state.epoch).toBe(2);
    expect((y.state as { agent: unknown }).agent).toEqual((x.state as { agent: unknown }).agent);
    const bufs = [x, y].map((s) => (s.state as { modelBuffer: { slice(): unknown } }).modelBuffer.slice());
    expect(bufs[1]).toEqual(bufs[0]);
    expect(y.state.rng).toEqual(x.state.rng);
    expect(withoutTimes(lines(split))).toEqual(withoutTimes(lines(full)));
    expect(JSON.parse(readFileSync(join(split, 'config.json'), 'utf8'))).toEqual(JSON.parse(readFileSync(join(full, 'config.json'), 'utf8')));
  }, 60_000);

  it('refuses a resume with other data, config flags, or fewer steps than done', async () => {
    const d = await run(['offline', '--resume', split, '--dataset', other, '--steps', '15']);
    expect(d.code).toBe(2);
    expect(d.err).toMatch(/--dataset: expected the run's data pendulum-random\.h5 \(400 rows, CRC-32 \d+\), got pendulum-random-s2\.h5/);
    const s = await run(['offline', '--resume', split, '--seed', '3']);
    expect(s.code).toBe(2);
    expect(s.err).toMatch(/--seed does not apply with --resume: the run keeps its config/);
    const f = await run(['offline', '--resume', split, '--steps', '5']);
    expect(f.code).toBe(2);
    expect(f.err).toMatch(/--steps 5: the run has done 10 steps already/);
    const g = await run(['offline', '--resume', split, '--algo', 'bc']);
    expect(g.code).toBe(2);
    expect(g.err).toMatch(/the run is mopo, not bc/);
    const n = await run(['offline', '--resume', join(dir, 'nothing-here')]);
    expect(n.code).toBe(1);
    expect(n.err).toMatch(/no checkpoint found/);
  });
});

describe('mbrl offline --algo bc', () => {
  it('clones the logged actions; the checkpoint exports with mbrl export; --resume matches', async () => {
    const out = join(dir, 'bc');
    const onnx = join(dir, 'bc.onnx');
    const r = await run(['offline', '--dataset', data, '--algo', 'bc', '--env', 'Pendulum-v1', '--steps', '40', '--config', tinyBc, '--out', out, '--export', onnx, '--quiet']);
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ algo: 'bc', epochs: 2, gradientSteps: 40 });
    const m = lines(out);
    expect(m.map((l) => [l.algo, l.epoch, l.gradientSteps])).toEqual([['bc', 1, 20], ['bc', 2, 40]]);
    expect(m[1].loss).toBeLessThan(m[0].loss as number);
    const ckpt = await loadPolicyCheckpoint(out);
    expect(ckpt.config).toMatchObject({ kind: 'bc', env: 'Pendulum-v1', epochs: 2 });
    expect(ckpt.policySpec).toMatchObject({ squash: 'clip', stdMode: 'parameter' });
    expect(ckpt.ensemble).toBeNull();
    await checkOnnx(onnx, { spec: ckpt.policySpec, weights: ckpt.policyWeights });
    const viaExport = join(dir, 'bc-export.onnx');
    const e = await run(['export', '--checkpoint', out, '--out', viaExport, '--stochastic']);
    expect(e.code, e.err).toBe(0);
    await checkOnnx(viaExport, { spec: ckpt.policySpec, weights: ckpt.policyWeights });

    const split = join(dir, 'bc-split');
    expect((await run(['offline', '--dataset', data, '--algo', 'bc', '--steps', '20', '--config', tinyBc, '--out', split, '--quiet'])).code).toBe(0);
    expect((await run(['offline', '--resume', split, '--steps', '40', '--quiet'])).code).toBe(0);
    expect((await loadPolicyCheckpoint(split)).policyWeights).toEqual(ckpt.policyWeights);
    expect(withoutTimes(lines(split))).toEqual(withoutTimes(lines(out)));
  }, 60_000);
});

describe('MOPO settings from the D4RL recipe', () => {
  it('reads the recipe from metadata or the file name', () => {
    expect(d4rlRecipe({}, '/data/halfcheetah_medium-v2.hdf5')).toBe('halfcheetah-medium');
    expect(d4rlRecipe({}, 'halfcheetah-medium-replay-v2.h5')).toBe('halfcheetah-medium-replay');
    expect(d4rlRecipe({ envId: 'halfcheetah-medium-expert-v2' }, 'x.h5')).toBe('halfcheetah-medium-expert');
    expect(d4rlRecipe({ recipe: 'halfcheetah-random' }, 'halfcheetah_medium-v2.hdf5')).toBe('halfcheetah-random');
    // What `mbrl dataset collect --recipe` stamps (src/data/d4rlRecipes.ts): the recipe alone, and D4RL's name.
    expect(d4rlRecipe({ recipe: 'medium-replay', name: 'halfcheetah-medium-replay', envId: 'HalfCheetah-v5' }, 'run.h5')).toBe('halfcheetah-medium-replay');
    expect(d4rlRecipe({ envId: 'Pendulum-v1' }, 'pendulum.h5')).toBeNull();
    expect(d4rlRecipe({}, 'halfcheetah-mediumish-v2.h5')).toBeNull();
  });

  it("takes h and λ of halfcheetah-medium (1, 1); mbpo takes h and λ = 0; flags win", async () => {
    // Pendulum data under a D4RL name: only the settings are looked at here.
    const named = join(dir, 'halfcheetah_medium-v2.h5');
    copyFileSync(data, named);
    const cfg = async (args: string[]): Promise<Record<string, unknown>> => {
      const out = join(dir, `recipe-${args.join('')}`);
      const r = await run(['offline', '--dataset', named, '--env', 'Pendulum-v1', '--steps', '5', '--config', tiny, '--out', out, '--quiet', ...args]);
      expect(r.code, r.err).toBe(0);
      return JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    };
    // The config file sets rolloutLength 2, which wins over the recipe's 1; λ comes from the recipe.
    expect(await cfg(['--algo', 'mopo', '--penalty-coef', '2.5'])).toMatchObject({ penaltyCoef: 2.5, rolloutLength: 2 });
    writeFileSync(tiny, JSON.stringify({ ...TINY_MOPO, rolloutLength: undefined }));
    try {
      expect(await cfg(['--algo', 'mopo'])).toMatchObject({ penaltyCoef: 1, rolloutLength: 1 });
      expect(await cfg(['--algo', 'mbpo', '--rollout-length', '3'])).toMatchObject({ penaltyCoef: 0, rolloutLength: 3 });
    } finally {
      writeFileSync(tiny, JSON.stringify(TINY_MOPO));
    }
    expect(d4rlNormalizedScore('HalfCheetah-v5', -280.178953)).toBeCloseTo(0, 9);
    expect(d4rlNormalizedScore('HalfCheetah-v5', 12135)).toBeCloseTo(100, 9);
  }, 60_000);
});

describe('mbrl offline: bad command lines', () => {
  it('names the flag and what was expected', async () => {
    const cases: [string[], RegExp][] = [
      [['--dataset', data], /--algo is required \(mopo, mbpo, bc\)/],
      [['--dataset', data, '--algo', 'cql'], /--algo cql: expected one of mopo, mbpo, bc/],
      [['--algo', 'mopo'], /--dataset is required/],
      [['--dataset', data, '--algo', 'mopo', '--steps', '7', '--config', tiny], /--steps 7: expected a multiple of sacUpdatesPerEpoch \(5, the gradient steps of one epoch\), e\.g\. 5/],
      [['--dataset', data, '--algo', 'bc', '--penalty-coef', '1'], /--penalty-coef applies to --algo mopo and mbpo only/],
      [['--dataset', data, '--algo', 'mopo', '--penalty-coef=-1'], /--penalty-coef -1: expected a finite number ≥ 0/],
      [['--dataset', data, '--algo', 'mbpo', '--penalty-coef', '1'], /--algo mbpo is MOPO with penaltyCoef 0, but --penalty-coef 1 sets 1; use --algo mopo/],
      [['--dataset', data, '--algo', 'mopo', '--rollout-length', '0'], /--rollout-length 0: expected an integer ≥ 1/],
      [['--dataset', data, '--algo', 'mopo', '--env', 'Nope-v0'], /unknown environment "Nope-v0"/],
      [['--dataset', join(dir, 'missing.h5'), '--algo', 'bc'], /missing\.h5/],
      [['--dataset', data, '--algo', 'mopo', '--out', join(dir, 'mopo-full')], /already holds a run; continue it with --resume/],
      [['--dataset', data, '--algo', 'mopo', '--config', tinyBc], /makeMopoConfig: stepsPerEpoch: unknown key/],
    ];
    for (const [args, message] of cases) {
      const r = await run(['offline', ...args, '--quiet']);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.err, args.join(' ')).toMatch(message);
    }
    // Data of another task's sizes: trainMopo refuses before any training.
    const r = await run(['offline', '--dataset', data, '--algo', 'mopo', '--env', 'MountainCarContinuous-v0', '--config', tiny, '--steps', '5', '--out', join(dir, 'mc'), '--quiet']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/trainMopo: data: expected obsDim 2 and actDim 1 \(MountainCarContinuous-v0\), got 3 and 1/);
    expect(existsSync(join(dir, 'mc', 'checkpoint'))).toBe(false);
  });
});
