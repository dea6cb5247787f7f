// The shared algorithm battery (STYLE.md, "Tests that can fail" 4; d3rlpy's approach): every
// algorithm that yields a policy or a controller — TRPO, PPO, ME-TRPO, MB-MPO, SAC, MOPO, PETS —
// is trained a few steps on a tiny Pendulum-v1 config (the plumbing, not learning: the learning
// tests are per algorithm), then
//   1. its config round-trips through JSON: makeXConfig(JSON.parse(JSON.stringify(config))) is the
//      same config, with its `kind`;
//   2. its controller round-trips through a checkpoint (`savePolicyCheckpoint`, or PETS's
//      `saveCheckpoint`) and the reloaded one acts identically (SAC and MOPO also through
//      `SacAgent.getState`/`setState`; PETS's planner over the reloaded ensemble plans the same actions);
//   3. its ONNX export (`policyToOnnx`; `ensembleToOnnx` for every dynamics ensemble), run in
//      onnxruntime-node, matches the in-process deterministic action (`actBatch`, and the plain-JS
//      `actBatchFast` the rollouts use) to 1e-5 on a batch of observations, some far outside
//      the training data (the observation clip and the action bounds inside the graph).
// Pendulum-v1 needs no MJCF files, so nothing here is skipped.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeMbMpoConfig, trainMbMpo } from '../../src/algorithms/mbMpo.js';
import { makePetsAgent, makePetsConfig, trainPets, type PetsConfig } from '../../src/algorithms/mbrl.js';
import { makeMeTrpoConfig, trainMeTrpo } from '../../src/algorithms/meTrpo.js';
import { makeMopoConfig, trainMopo, type OfflineData } from '../../src/algorithms/mopo.js';
import { makePpoConfig, trainPpo } from '../../src/algorithms/ppo.js';
import { makeSacConfig, SacAgent, trainSac } from '../../src/algorithms/sac.js';
import { makeTrpoConfig, trainTrpo } from '../../src/algorithms/trpo.js';
import { loadCheckpoint, loadPolicyCheckpoint, saveCheckpoint, savePolicyCheckpoint, type PolicyRunConfig } from '../../src/cli/checkpoint.js';
import { RandomAgent } from '../../src/core/agent.js';
import { initBackend } from '../../src/core/backend.js';
import type { Env } from '../../src/core/env.js';
import { Rng } from '../../src/core/rng.js';
import { makeEnv } from '../../src/envs/registry.js';
import { policyToOnnx } from '../../src/export/policyOnnx.js';
import { DynamicsEnsemble } from '../../src/models/ensemble.js';
import { ensembleToOnnx, OrtEnsemblePredictor } from '../../src/models/ensembleOnnx.js';
import { outDimOf, type EnsembleWeights } from '../../src/models/types.js';
import { GaussianMlpPolicy, makePolicySpec } from '../../src/policies/gaussianMlpPolicy.js';

const ENV = 'Pendulum-v1';
const dir = mkdtempSync(join(tmpdir(), 'mbrl-battery-'));
beforeAll(async () => {
  await initBackend({ log: () => {} });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What a trained algorithm hands the battery. */
interface Trained {
  /** The config as the algorithm used it. */
  config: { kind: string; env: string };
  /** Its deployable policy (null for PETS, whose controller is a planner). */
  policy: GaussianMlpPolicy | null;
  /** Its dynamics ensemble, if it has one. */
  ensemble: EnsembleWeights | null;
  /** Real environment steps trained on. */
  envSteps: number;
  /** Algorithm-specific save/load checks beyond the policy's (SAC's agent state, PETS's planner). */
  extraRoundTrip?: () => Promise<void>;
  dispose: () => void;
}

/** One algorithm of the battery. */
interface BatteryCase {
  name: string;
  /** makeXConfig, for the JSON round trip. */
  makeConfig: (json: never) => unknown;
  train: () => Promise<Trained>;
}

const envCopies = (n: number, options: { maxEpisodeSteps?: number } = {}): Promise<Env[]> => Promise.all(Array.from({ length: n }, () => makeEnv(ENV, options)));

/** 300 transitions of uniform random actions, as D4RL fields (MOPO's logged data). */
function randomData(n: number, seed: number, env: Env): OfflineData {
  const agent = new RandomAgent(env.actionSpace, new Rng(seed));
  const d: OfflineData = { size: n, obsDim: 3, actDim: 1, observations: new Float32Array(n * 3), actions: new Float32Array(n), rewards: new Float32Array(n), next_observations: new Float32Array(n * 3), terminals: new Uint8Array(n) };
  let { obs } = env.reset({ seed });
  for (let i = 0; i < n; i++) {
    const a = agent.act();
    const s = env.step(a);
    d.observations.set(obs, i * 3);
    d.actions[i] = a[0];
    d.rewards[i] = s.reward;
    d.next_observations.set(s.obs, i * 3);
    obs = s.truncated || s.terminated ? env.reset().obs : s.obs;
  }
  return d;
}

/** SAC's and MOPO's agent: getState → a fresh agent's setState acts (deterministically) the same. */
function sacStateRoundTrip(agent: SacAgent, obsDim: number, env: Env, seed: number): () => Promise<void> {
  return async () => {
    const copy = new SacAgent({ obsDim, actionSpace: env.actionSpace, config: agent.config, rng: new Rng(seed + 1000) });
    try {
      const obs = observations(16, new Rng(9));
      expect(Array.from(copy.actBatch(obs, 16, true))).not.toEqual(Array.from(agent.actBatch(obs, 16, true)));
      copy.setState(agent.getState());
      expect(Array.from(copy.actBatch(obs, 16, true))).toEqual(Array.from(agent.actBatch(obs, 16, true)));
    } finally {
      copy.dispose();
    }
  };
}

const CASES: BatteryCase[] = [
  {
    name: 'TRPO',
    makeConfig: makeTrpoConfig,
    train: async () => {
      const config = makeTrpoConfig({ env: ENV, seed: 1, steps: 400, batchSize: 200, numEnvs: 2, policy: { hidden: [16, 16] } });
      const envs = await envCopies(2);
      const r = await trainTrpo(config, envs);
      return { config, policy: r.policy, ensemble: null, envSteps: r.state.envSteps, dispose: () => (r.policy.dispose(), envs.forEach((e) => e.close())) };
    },
  },
  {
    name: 'PPO',
    makeConfig: makePpoConfig,
    train: async () => {
      const config = makePpoConfig({ env: ENV, seed: 1, steps: 400, nSteps: 100, numEnvs: 2, epochs: 2, policy: { hidden: [16, 16] }, valueFunction: { hidden: [16] } });
      const envs = await envCopies(2);
      const r = await trainPpo(config, envs);
      return { config, policy: r.policy, ensemble: null, envSteps: r.state.envSteps, dispose: () => (r.policy.dispose(), r.valueFunction.dispose(), envs.forEach((e) => e.close())) };
    },
  },
  {
    name: 'ME-TRPO',
    makeConfig: makeMeTrpoConfig,
    train: async () => {
      const config = makeMeTrpoConfig({
        env: ENV,
        seed: 1,
        steps: 100,
        maxEpisodeSteps: 100,
        ensemble: { numMembers: 3, numElites: 3, hidden: [16, 16] },
        fit: { maxEpochs: 3 },
        imaginedSteps: 300,
        imaginedEnvs: 6,
        imaginedHorizon: 20,
        maxPolicyIterations: 2,
        validationStarts: 2,
        evalEpisodes: 0,
      });
      const env = await makeEnv(ENV, { maxEpisodeSteps: 100 });
      const s = await trainMeTrpo(config, env);
      const policy = new GaussianMlpPolicy(makePolicySpec({ obsDim: 3, actionSpace: env.actionSpace, ...config.policy }), { weights: s.policy });
      return { config, policy, ensemble: s.ensemble, envSteps: s.envSteps, dispose: () => (policy.dispose(), env.close()) };
    },
  },
  {
    name: 'MB-MPO',
    makeConfig: makeMbMpoConfig,
    train: async () => {
      const config = makeMbMpoConfig({
        env: ENV,
        seed: 1,
        steps: 100,
        maxEpisodeSteps: 100,
        ensemble: { numMembers: 3, numElites: 3, hidden: [16, 16] },
        fit: { maxEpochs: 3 },
        trajectoriesPerTask: 2,
        imaginedHorizon: 10,
        metaStepsPerIteration: 1,
        evalEpisodes: 0,
      });
      const env = await makeEnv(ENV, { maxEpisodeSteps: 100 });
      const s = await trainMbMpo(config, env);
      const policy = new GaussianMlpPolicy(makePolicySpec({ obsDim: 3, actionSpace: env.actionSpace, ...config.policy }), { weights: s.policy });
      return { config, policy, ensemble: s.ensemble, envSteps: s.envSteps, dispose: () => (policy.dispose(), env.close()) };
    },
  },
  {
    name: 'SAC',
    makeConfig: makeSacConfig,
    train: async () => {
      const config = makeSacConfig({ env: ENV, seed: 1, steps: 150, learningStartSteps: 100, batchSize: 32, hidden: [16, 16], evalEvery: 0 });
      const env = await makeEnv(ENV, { maxEpisodeSteps: 100 });
      const r = await trainSac(config, env);
      return {
        config,
        policy: r.agent.policy,
        ensemble: null,
        envSteps: config.steps,
        extraRoundTrip: sacStateRoundTrip(r.agent, 3, env, config.seed),
        dispose: () => (r.agent.dispose(), env.close()),
      };
    },
  },
  {
    name: 'MOPO',
    makeConfig: makeMopoConfig,
    train: async () => {
      const config = makeMopoConfig({
        env: ENV,
        seed: 1,
        epochs: 1,
        sacUpdatesPerEpoch: 5,
        rolloutBatchSize: 20,
        rolloutLength: 2,
        batchSize: 32,
        evalEpisodes: 1,
        ensemble: { numMembers: 3, numElites: 2, hidden: [16, 16] },
        fit: { maxEpochs: 3 },
        sac: { hidden: [16, 16] },
      });
      const env = await makeEnv(ENV);
      const r = await trainMopo(config, randomData(300, 2, env), env);
      return {
        config,
        policy: r.agent.policy,
        ensemble: r.ensemble,
        envSteps: 0,
        extraRoundTrip: sacStateRoundTrip(r.agent, 3, env, config.seed),
        dispose: () => (r.agent.dispose(), env.close()),
      };
    },
  },
  {
    name: 'PETS',
    makeConfig: makePetsConfig,
    train: async () => {
      const config = makePetsConfig({
        env: ENV,
        seed: 1,
        steps: 100,
        maxEpisodeSteps: 50,
        initialRandomSteps: 50,
        ensemble: { numMembers: 3, numElites: 2, hidden: [16, 16] },
        fit: { maxEpochs: 3 },
        planner: { populationSize: 20, numElites: 4, horizon: 5, numIterations: 2 },
        particles: 2,
      });
      const env = await makeEnv(ENV, { maxEpisodeSteps: 50 });
      const s = await trainPets(config, env);
      expect(s.weights).not.toBeNull();
      return { config, policy: null, ensemble: s.weights, envSteps: s.envSteps, extraRoundTrip: () => petsRoundTrip(config, s, env), dispose: () => env.close() };
    },
  },
];

/** PETS: the checkpoint's ensemble predicts as the trained one, and the planner over it plans the same actions. */
async function petsRoundTrip(config: PetsConfig, s: Awaited<ReturnType<typeof trainPets>>, env: Env): Promise<void> {
  const runDir = join(dir, 'pets');
  await saveCheckpoint(runDir, s);
  const back = await loadCheckpoint(runDir);
  expect(back.config).toEqual(config);
  expect(back.elites).toEqual(s.elites);
  const plan = async (w: EnsembleWeights): Promise<number[]> => {
    const { agent, predictor } = await makePetsAgent(config, w, s.elites, env, new Rng(5));
    try {
      const out: number[] = [];
      for (const obs of [Float64Array.of(1, 0, 0), Float64Array.of(-1, 0, 1), Float64Array.of(0, 1, -3)]) out.push(...(await agent.actAsync(obs)));
      return out;
    } finally {
      predictor.dispose();
    }
  };
  expect(await plan(back.weights!)).toEqual(await plan(s.weights!));
}

/**
 * n Pendulum observations [cos θ, sin θ, θ̇]: every fourth row far outside anything trained on
 * (|θ̇| up to 200, |cos|, |sin| up to 20), which the observation clip and the bounds must handle.
 */
function observations(n: number, rng: Rng): Float64Array {
  const obs = new Float64Array(n * 3);
  for (let i = 0; i < n; i++) {
    const th = rng.uniform(-Math.PI, Math.PI);
    const far = i % 4 === 0 ? 20 : 1;
    obs.set([far * Math.cos(th), far * Math.sin(th), far * 10 * rng.uniform(-8, 8)], i * 3);
  }
  return obs;
}

/** The policy's ONNX export run in onnxruntime-node on `obs` (n rows). */
async function onnxActions(policy: GaussianMlpPolicy, obs: Float64Array, n: number): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(policyToOnnx(policy.spec, policy.getWeights()));
  try {
    const out = await session.run({ obs: new ort.Tensor('float32', Float32Array.from(obs), [n, policy.spec.obsDim]) });
    return out.action.data as Float32Array;
  } finally {
    await session.release();
  }
}

/** Largest |a − b| over two equally long arrays. */
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe.each(CASES)('battery: $name', (c) => {
  let t: Trained;
  beforeAll(async () => {
    t = await c.train();
  }, 120_000);
  afterAll(() => t?.dispose());

  it('trains a few steps on the tiny config', () => {
    expect(t.policy !== null || t.ensemble !== null).toBe(true);
    if (t.config.kind !== 'mopo') expect(t.envSteps).toBeGreaterThan(0);
    if (t.policy) expect(t.policy.getFlatParams().every(Number.isFinite)).toBe(true);
  });

  it('round-trips its config through JSON, kind included', () => {
    const json = JSON.parse(JSON.stringify(t.config)) as never;
    expect((json as { kind: string }).kind).toBe(t.config.kind);
    expect(c.makeConfig(json)).toEqual(t.config);
  });

  it('save/load: the reloaded controller acts identically', async () => {
    if (t.policy) {
      const runDir = join(dir, t.config.kind);
      await savePolicyCheckpoint(runDir, {
        config: t.config as PolicyRunConfig,
        envSteps: t.envSteps,
        policySpec: t.policy.spec,
        policyWeights: t.policy.getWeights(),
        ensemble: t.ensemble,
        state: {},
      });
      const back = await loadPolicyCheckpoint(runDir);
      expect(back.config).toEqual(JSON.parse(JSON.stringify(t.config)));
      expect(back.envSteps).toBe(t.envSteps);
      if (t.ensemble) expect(back.ensemble).toEqual(t.ensemble);
      const reloaded = new GaussianMlpPolicy(back.policySpec, { weights: back.policyWeights });
      try {
        const obs = observations(32, new Rng(3));
        expect(Array.from(reloaded.actBatch(obs, 32))).toEqual(Array.from(t.policy.actBatch(obs, 32)));
        expect(Array.from(reloaded.actBatchFast(obs, 32))).toEqual(Array.from(t.policy.actBatchFast(obs, 32)));
      } finally {
        reloaded.dispose();
      }
    }
    await t.extraRoundTrip?.();
  });

  it('exports to ONNX: onnxruntime matches the in-process deterministic action to 1e-5', async () => {
    if (t.policy) {
      const n = 64;
      const obs = observations(n, new Rng(4));
      const onnx = await onnxActions(t.policy, obs, n);
      const predicted = t.policy.actBatch(obs, n);
      expect(maxAbsDiff(onnx, predicted)).toBeLessThan(1e-5);
      expect(maxAbsDiff(onnx, t.policy.actBatchFast(obs, n))).toBeLessThan(1e-5);
      // Inside the bounds, and not a constant: the comparison sees the network.
      const low = t.policy.spec.actionLow[0];
      const high = t.policy.spec.actionHigh[0];
      expect(Array.from(onnx).every((a) => a >= low && a <= high)).toBe(true);
      expect(new Set(Array.from(onnx)).size).toBeGreaterThan(n / 2);
    }
    if (t.ensemble) await expectEnsembleExportMatches(t.ensemble);
  });
});

/**
 * The ensemble's ONNX graph in onnxruntime against the in-process (tfjs) forward of the same
 * weights: next observations (and variances of probabilistic members) to 1e-5 relative.
 */
async function expectEnsembleExportMatches(w: EnsembleWeights): Promise<void> {
  const { numMembers: K, obsDim, actDim } = w.spec;
  const B = 16;
  const rng = new Rng(6);
  const obs = Float32Array.from(observations(K * B, rng));
  const act = Float32Array.from({ length: K * B * actDim }, () => rng.uniform(-2, 2));
  const outDim = outDimOf(w.spec);
  const run = async (p: { predict: DynamicsEnsemble['predict']; dispose(): void }): Promise<{ next: Float32Array; variance: Float32Array | undefined }> => {
    const next = new Float32Array(K * B * obsDim);
    const variance = w.spec.probabilistic ? new Float32Array(K * B * outDim) : undefined;
    const reward = w.spec.learnReward ? new Float32Array(K * B) : undefined;
    await p.predict(obs, act, B, next, reward, variance);
    p.dispose();
    return { next, variance };
  };
  // ensembleToOnnx is what OrtEnsemblePredictor runs; build it once here too to see it is valid standalone.
  expect(ensembleToOnnx(w).byteLength).toBeGreaterThan(0);
  const onnx = await run(await OrtEnsemblePredictor.create(w, { intraOpThreads: 1 }));
  const tfjs = await run(DynamicsEnsemble.fromWeights(w));
  const close = (a: Float32Array, b: Float32Array): void => {
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i]), `entry ${i}: onnx ${a[i]}, tfjs ${b[i]}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(b[i])));
  };
  close(onnx.next, tfjs.next);
  if (onnx.variance && tfjs.variance) close(onnx.variance, tfjs.variance);
}
