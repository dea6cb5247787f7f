// The learner's policy phase (ME-TRPO, MB-MPO): the policy gate on imagined returns, exact on a
// hand-built model; the policy phase and MB-MPO's adaptation in the worker thread, swapped in by
// reference; a crash or hang during a policy phase keeping the last good policy; the control node
// swapping policies between ticks, saving them beside the model and resuming them; and a node
// learning InvertedPendulum-v5 with ME-TRPO from a random policy.
//
// The worker tests run the compiled worker (dist/node/learnerWorker.js: `npm run build` first,
// which `npm test` does), as test/node/learner.test.ts explains.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { parse as parseYaml } from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeMbMpoConfig, samplesOf, taskAdvantages, type MbMpoConfig } from '../../src/algorithms/mbMpo.js';
import { makeMeTrpoConfig, type MeTrpoConfig } from '../../src/algorithms/meTrpo.js';
import { vpgSurrogate } from '../../src/algorithms/metaGradient.js';
import { loadCheckpointModels } from '../../src/cli/checkpoint.js';
import { initBackend } from '../../src/core/backend.js';
import { Rng } from '../../src/core/rng.js';
import { ReplayBuffer } from '../../src/data/replayBuffer.js';
import type { Transition } from '../../src/data/transition.js';
import { pendulumTask } from '../../src/envs/pendulum.js';
import { makeEnv } from '../../src/envs/registry.js';
import { DynamicsEnsemble } from '../../src/models/ensemble.js';
import type { EnsembleWeights } from '../../src/models/types.js';
import { parseNodeConfig, type NodeConfig } from '../../src/node/config.js';
import { ControlNode, type TickInfo } from '../../src/node/controlNode.js';
import { loadNodeModel, saveNodeModel } from '../../src/node/controlNodeCheckpoint.js';
import { Learner, type LearnerConfig, type LearnerEvent, type LearnerPolicy } from '../../src/node/learner.js';
import { PolicyLearner, imaginedReturns, makeLearnerPolicyConfig, policyGate, transitionsBatch, type LearnerPolicyConfig } from '../../src/node/learnerPolicy.js';
import { GaussianMlpPolicy, initialPolicyWeights, makePolicySpec, type GaussianMlpPolicySpec, type PolicyWeights } from '../../src/policies/gaussianMlpPolicy.js';
import type { Bool, Float64 } from '../../src/transports/messages.js';
import { HAVE_MJCF, MJCF_SKIP_REASON } from '../helpers.js';

const DIST = process.env.MBRL_DIST_DIR ? resolve(process.env.MBRL_DIST_DIR) : resolve(import.meta.dirname, '../../dist');

/** The compiled worker, checked to exist and to be newer than its sources (the worker and its policy side). */
function compiledWorker(): URL {
  const js = join(DIST, 'node', 'learnerWorker.js');
  if (!existsSync(js)) throw new Error(`${js} is missing: the learner's worker thread runs compiled JavaScript; run \`npm run build\` first (npm test does)`);
  for (const name of ['learnerWorker', 'learnerPolicy']) {
    const ts = resolve(import.meta.dirname, '../../src/node', `${name}.ts`);
    if (statSync(join(DIST, 'node', `${name}.js`)).mtimeMs < statSync(ts).mtimeMs) throw new Error(`dist/node/${name}.js is older than ${ts}: run \`npm run build\` first`);
  }
  return pathToFileURL(js);
}

const dir = mkdtempSync(join(tmpdir(), 'mbrl-learner-policy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeAll(async () => {
  await initBackend({ log: () => {} });
});

async function until(cond: () => boolean, what: string, timeoutMs = 120_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

// ---------------------------------------------------------------------------------------------
// Small Pendulum-v1 settings: every phase takes a second or two.

const SMALL_ALGO = {
  env: 'Pendulum-v1',
  seed: 0,
  ensemble: { numMembers: 2, numElites: 2, hidden: [16], probabilistic: false, learnReward: false },
  fit: { maxEpochs: 5, patience: 5, batchSize: 64 },
  policy: { hidden: [8] },
  imaginedHorizon: 20,
};
const ME_TRPO: MeTrpoConfig = makeMeTrpoConfig({ ...SMALL_ALGO, imaginedSteps: 400, imaginedEnvs: 10, validationStarts: 2 });
const MB_MPO: MbMpoConfig = makeMbMpoConfig({ ...SMALL_ALGO, trajectoriesPerTask: 3, metaGradient: 'firstOrder' });

function specOf(algo: MeTrpoConfig | MbMpoConfig): GaussianMlpPolicySpec {
  return makePolicySpec({ obsDim: 3, actionLow: [-2], actionHigh: [2], ...algo.policy });
}

function policyConfig(algo: MeTrpoConfig | MbMpoConfig, over: Partial<LearnerPolicyConfig> = {}): LearnerPolicyConfig {
  return { algorithm: algo, spec: specOf(algo), stepsPerRefit: 2, promotionMargin: 0, imaginedEvalEpisodes: 3, adaptWindow: 50, adaptEveryTransitions: 50, ...over };
}

function learnerConfig(algo: MeTrpoConfig | MbMpoConfig, policy: Partial<LearnerPolicyConfig> = {}, over: Partial<LearnerConfig> = {}): Partial<LearnerConfig> & Pick<LearnerConfig, 'obsDim' | 'actDim'> {
  return {
    obsDim: 3,
    actDim: 1,
    ensemble: algo.ensemble,
    fit: algo.fit,
    refitEveryTransitions: 200,
    minTransitions: 200,
    heartbeatMs: 100,
    restartDelayMs: 100,
    policy: policyConfig(algo, policy),
    ...over,
  };
}

/** Seeded Pendulum-v1 transitions with uniform random torques, in episodes of `episodeSteps`. */
async function pendulumTransitions(n: number, seed: number, episodeSteps = 100): Promise<Transition[]> {
  const env = await makeEnv('Pendulum-v1');
  const rng = new Rng(seed);
  const out: Transition[] = [];
  let obs = Float64Array.from(env.reset({ seed }).obs);
  for (let i = 0; i < n; i++) {
    const action = [rng.uniform(-2, 2)];
    const r = env.step(Float64Array.from(action));
    out.push({ obs: Array.from(obs), action, reward: r.reward, nextObs: Array.from(r.obs), terminated: false, truncated: false });
    obs = (i + 1) % episodeSteps === 0 ? Float64Array.from(env.reset().obs) : Float64Array.from(r.obs);
  }
  env.close();
  return out;
}

/**
 * A deterministic ensemble that predicts no change: Δs = 0 (output layer zeroed, target mean 0),
 * so an imagined Pendulum episode stays where it starts. From the upright state (cos 1, sin 0,
 * θ̇ 0) the reward −(θ² + 0.1 θ̇² + 0.001 u²) is then −0.001 u² at every step.
 */
function stillEnsemble(): EnsembleWeights {
  const e = new DynamicsEnsemble({ obsDim: 3, actDim: 1, rng: new Rng(5), config: { numMembers: 2, numElites: 2, hidden: [8], probabilistic: false, learnReward: false } });
  const w = e.toWeights();
  e.dispose();
  w.weights[w.weights.length - 1].fill(0);
  w.biases[w.biases.length - 1].fill(0);
  w.targetMean.fill(0);
  w.targetStd.fill(1);
  return w;
}

/** A policy whose mean is `mean` everywhere (zero weights, output bias `mean`): action 2·clip(mean) on Pendulum. */
function constantPolicy(spec: GaussianMlpPolicySpec, mean: number): PolicyWeights {
  const w = initialPolicyWeights(spec, new Rng(0));
  for (const l of w.layers) {
    l.W.fill(0);
    l.b.fill(0);
  }
  w.layers[w.layers.length - 1].b.fill(mean);
  return w;
}

const UPRIGHT = Float32Array.of(1, 0, 0);

// ---------------------------------------------------------------------------------------------

describe('policy gate (in-process)', () => {
  const spec = specOf(ME_TRPO);

  it('policyGate: finite weights and an imagined return ≥ the running one + margin; reasons name the numbers', () => {
    const w = constantPolicy(spec, 0);
    expect(policyGate(spec, w, -100, -120, 0)).toEqual({ kind: 'promoted' });
    expect(policyGate(spec, w, -120, -120, 0)).toEqual({ kind: 'promoted' }); // a tie passes a margin of 0
    expect(policyGate(spec, w, -130, -120, 0)).toEqual({ kind: 'rejected', reason: "imagined return -130 is below the running policy's -120 + margin 0" });
    expect(policyGate(spec, w, -115, -120, 10)).toEqual({ kind: 'rejected', reason: "imagined return -115 is below the running policy's -120 + margin 10" });
    expect(policyGate(spec, w, -125, -120, -10)).toEqual({ kind: 'promoted' }); // a negative margin tolerates a worse one
    expect(policyGate(spec, w, -Infinity, -120, -1e9)).toEqual({ kind: 'rejected', reason: "the candidate's imagined return is -Infinity (it diverges in the model)" });
    expect(policyGate(spec, w, -500, -Infinity, 0)).toEqual({ kind: 'promoted' }); // the running one diverges: any finite candidate wins
    const nan = constantPolicy(spec, 0);
    nan.layers[1].W[3] = Number.NaN;
    expect(policyGate(spec, nan, 0, -120, -1e9)).toEqual({ kind: 'rejected', reason: 'non-finite policy weights: PolicyWeights: layers[1].W[3]: expected a finite number, got NaN' });
  });

  it('imaginedReturns: on a model that predicts no change, from upright, only −0.001 u² counts: 0 for u = 0, −0.004 · T for u = 2', async () => {
    const policies = [new GaussianMlpPolicy(spec, { weights: constantPolicy(spec, 0) }), new GaussianMlpPolicy(spec, { weights: constantPolicy(spec, 1) }), new GaussianMlpPolicy(spec, { weights: constantPolicy(spec, 0.25) })];
    const returns = await imaginedReturns(stillEnsemble(), policies, UPRIGHT, { episodes: 4, horizon: 20, task: pendulumTask, seed: 3 });
    for (const p of policies) p.dispose();
    expect(returns[0]).toBe(0);
    expect(returns[1]).toBeCloseTo(-0.004 * 20, 5); // u = 2: −0.001 · 4 per step
    expect(returns[2]).toBeCloseTo(-0.00025 * 20, 6); // u = 0.5: −0.001 · 0.25 per step
  });

  it('PolicyLearner.gate: a candidate worse in imagined return is rejected with the reason, a NaN one before any rollout, a better one promoted', async () => {
    const config = makeLearnerPolicyConfig(policyConfig(ME_TRPO, { imaginedEvalEpisodes: 2 }), { obsDim: 3, actDim: 1 });
    const learner = new PolicyLearner(config, constantPolicy(spec, 0), 0);
    expect((await learner.gate(stillEnsemble(), constantPolicy(spec, 1), 1)).decision).toEqual({ kind: 'rejected', reason: 'no real start states yet' });
    learner.add(UPRIGHT, Float32Array.of(0), 0, UPRIGHT, false, false);
    expect(learner.startStates).toBe(1);
    // u = 2 everywhere against the running u = 0: T = 20 steps of −0.004.
    const worse = await learner.gate(stillEnsemble(), constantPolicy(spec, 1), 1);
    expect(worse).toEqual({ decision: { kind: 'rejected', reason: "imagined return -0.08000 is below the running policy's 0 + margin 0" }, candidateReturn: expect.closeTo(-0.08, 6), runningReturn: 0 });
    const nan = constantPolicy(spec, 0);
    nan.logStd![0] = Number.NaN;
    expect(await learner.gate(stillEnsemble(), nan, 1)).toEqual({ decision: { kind: 'rejected', reason: 'non-finite policy weights: PolicyWeights: logStd[0]: expected a finite number, got NaN' }, candidateReturn: null, runningReturn: null });
    const runningBad = new PolicyLearner(config, constantPolicy(spec, 1), 0);
    runningBad.add(UPRIGHT, Float32Array.of(2), -0.004, UPRIGHT, false, false);
    expect(await runningBad.gate(stillEnsemble(), constantPolicy(spec, 0), 1)).toEqual({ decision: { kind: 'promoted' }, candidateReturn: 0, runningReturn: expect.closeTo(-0.08, 6) });
  });

  it('PolicyLearner.improve (ME-TRPO): from u = 2 on the still model the phase finds lower torques and is promoted; a NaN candidate is rejected', async () => {
    const config = makeLearnerPolicyConfig(policyConfig(ME_TRPO, { stepsPerRefit: 3 }), { obsDim: 3, actDim: 1 });
    const learner = new PolicyLearner(config, constantPolicy(spec, 1), 0);
    const train = new ReplayBuffer({ obsDim: 3, actDim: 1, capacity: 100 });
    for (const t of await pendulumTransitions(50, 1)) train.add(t);
    learner.add(UPRIGHT, Float32Array.of(2), -0.004, UPRIGHT, false, false);
    const out = await learner.improve(stillEnsemble(), train);
    if (out.kind !== 'policyPromoted') throw new Error(`expected a promotion, got: ${out.reason}`);
    // The running policy scores −0.08 (u = 2 for 20 steps); anything lower in torque scores more.
    expect(out.policy.runningReturn).toBeCloseTo(-0.08, 6);
    expect(out.policy.imaginedReturn).toBeGreaterThan(out.policy.runningReturn);
    expect(learner.running).toBe(out.policy.weights);
    const tensors = tf.memory().numTensors;
    learner.inject('nanPolicy');
    expect(await learner.improve(stillEnsemble(), train)).toMatchObject({ kind: 'policyRejected', reason: expect.stringMatching(/^non-finite policy weights: PolicyWeights: layers\[0\]\.W\[0\]: expected a finite number, got NaN$/), candidateReturn: null });
    expect(learner.running).toBe(out.policy.weights); // kept
    expect(tf.memory().numTensors).toBe(tensors); // a phase keeps no tensors
  });

  it('PolicyLearner.adapt (MB-MPO): due every adaptEveryTransitions rows and after a new meta-policy; the inner step raises the surrogate on the window; no tensors kept', async () => {
    const spec = specOf(MB_MPO);
    const config = makeLearnerPolicyConfig(policyConfig(MB_MPO, { adaptWindow: 40, adaptEveryTransitions: 20 }), { obsDim: 3, actDim: 1 });
    const meta = initialPolicyWeights(spec, new Rng(4, 1));
    const learner = new PolicyLearner(config, meta, 0);
    const data = await pendulumTransitions(60, 7, 25);
    const add = (t: Transition): void => learner.add(Float32Array.from(t.obs), Float32Array.from(t.action), t.reward, Float32Array.from(t.nextObs), t.terminated, t.truncated);
    data.slice(0, 19).forEach(add);
    expect(learner.adaptDue).toBe(false); // 19 < min(40, 20)
    add(data[19]);
    expect(learner.adaptDue).toBe(true); // the first: a new meta-policy and 20 rows
    const tensors = tf.memory().numTensors;
    const first = learner.adapt()!;
    expect(tf.memory().numTensors).toBe(tensors);
    expect(first.rows).toBe(20);
    expect(learner.adaptDue).toBe(false);
    data.slice(20, 39).forEach(add);
    expect(learner.adaptDue).toBe(false);
    add(data[39]);
    const second = learner.adapt()!;
    expect(second.rows).toBe(40);
    expect(learner.running).toBe(meta); // adaptation never changes the meta-policy
    // θ' = θ + α∇J is a step up the policy-gradient surrogate J on the window's own samples.
    const rows = new ReplayBuffer({ obsDim: 3, actDim: 1, capacity: 40 });
    data.slice(0, 40).forEach((t) => rows.add(t));
    const before = new GaussianMlpPolicy(spec, { weights: meta });
    const after = new GaussianMlpPolicy(spec, { weights: second.weights });
    const batch = transitionsBatch(rows.slice(), before);
    const samples = samplesOf(before, batch, taskAdvantages(batch, MB_MPO.gamma, MB_MPO.gaeLambda));
    const j0 = tf.tidy(() => vpgSurrogate(spec, before.variables, samples).dataSync()[0]);
    const j1 = tf.tidy(() => vpgSurrogate(spec, after.variables, samples).dataSync()[0]);
    tf.dispose([samples.obsNorm, samples.u, samples.adv]);
    before.dispose();
    after.dispose();
    expect(j1).toBeGreaterThan(j0);
  });

  it('PolicyLearner.improve (MB-MPO): the meta-steps on the still model lower the torque of u = 2, and the candidate is promoted', async () => {
    const config = makeLearnerPolicyConfig(policyConfig(MB_MPO, { stepsPerRefit: 3 }), { obsDim: 3, actDim: 1 });
    const learner = new PolicyLearner(config, constantPolicy(specOf(MB_MPO), 1), 0);
    const train = new ReplayBuffer({ obsDim: 3, actDim: 1, capacity: 100 });
    for (const t of await pendulumTransitions(50, 1)) train.add(t);
    learner.add(UPRIGHT, Float32Array.of(2), -0.004, UPRIGHT, false, false);
    const out = await learner.improve(stillEnsemble(), train);
    if (out.kind !== 'policyPromoted') throw new Error(`expected a promotion, got: ${out.reason}`);
    expect(out.policy).toMatchObject({ steps: 3, runningReturn: expect.closeTo(-0.08, 6) });
    expect(out.policy.imaginedReturn).toBeGreaterThan(out.policy.runningReturn);
  });

  it('transitionsBatch: u recovered from the actions, segments split where a state does not follow, the ends truncated', () => {
    const policy = new GaussianMlpPolicy(spec, { weights: constantPolicy(spec, 0) });
    const rows = new ReplayBuffer({ obsDim: 3, actDim: 1, capacity: 10 });
    const s = (x: number): number[] => [x, 0, 0];
    rows.add({ obs: s(1), action: [1], reward: -1, nextObs: s(2), terminated: false, truncated: false });
    rows.add({ obs: s(2), action: [-2], reward: -2, nextObs: s(3), terminated: false, truncated: false });
    rows.add({ obs: s(7), action: [0.5], reward: -3, nextObs: s(8), terminated: false, truncated: false }); // a reset: 7 ≠ 3
    rows.add({ obs: s(8), action: [2], reward: -4, nextObs: s(9), terminated: true, truncated: false });
    rows.add({ obs: s(9), action: [0], reward: -5, nextObs: s(10), terminated: false, truncated: false }); // after a terminal row
    const b = transitionsBatch(rows.slice(), policy);
    policy.dispose();
    expect(Array.from(b.u)).toEqual([0.5, -1, 0.25, 1, 0]); // (a − 0) / 2 on [−2, 2]
    expect(Array.from(b.timesteps)).toEqual([0, 1, 0, 1, 0]);
    expect(Array.from(b.terminated)).toEqual([0, 0, 0, 1, 0]);
    expect(Array.from(b.truncated)).toEqual([0, 1, 0, 0, 1]);
    expect(Array.from(b.rewards)).toEqual([-1, -2, -3, -4, -5]);
  });

  it('makeLearnerPolicyConfig names the key, the value and what was expected', () => {
    const dims = { obsDim: 3, actDim: 1 };
    expect(() => makeLearnerPolicyConfig(policyConfig(ME_TRPO, { stepsPerRefit: 0 }), dims)).toThrow('makeLearnerConfig: policy.stepsPerRefit: expected an integer ≥ 1, got 0');
    expect(() => makeLearnerPolicyConfig(policyConfig(ME_TRPO, { adaptWindow: 1 }), dims)).toThrow('makeLearnerConfig: policy.adaptWindow: expected an integer ≥ 2, got 1');
    expect(() => makeLearnerPolicyConfig({ ...policyConfig(ME_TRPO), algorithm: { ...ME_TRPO, kind: 'pets' } as never }, dims)).toThrow(`makeLearnerConfig: policy.algorithm.kind: expected 'me-trpo' or 'mb-mpo', got "pets"`);
    expect(() => makeLearnerPolicyConfig(policyConfig(ME_TRPO), { obsDim: 4, actDim: 1 })).toThrow('makeLearnerConfig: policy.spec: expected obsDim 4 and actDim 1 (the learner\'s), got 3 and 1');
  });
});

// ---------------------------------------------------------------------------------------------

describe('Learner with a policy, in its worker thread', () => {
  let learner: Learner | undefined;
  afterEach(async () => {
    await learner?.close();
    learner = undefined;
  });

  it('ME-TRPO: after the first promoted model the policy phase runs in the worker; the promoted policy replaces currentPolicy by reference only', async () => {
    const events: LearnerEvent[] = [];
    const seen: LearnerPolicy[] = [];
    learner = new Learner({ config: learnerConfig(ME_TRPO, { promotionMargin: -1e9 }), workerUrl: compiledWorker(), onEvent: (e) => events.push(e), onPolicy: (p) => seen.push(p) });
    const p0 = learner.currentPolicy!;
    // The default start: a fresh policy from stream 1 of the algorithm's seed, as trainMeTrpo's.
    expect(p0).toMatchObject({ version: 0, adapted: false, baseVersion: 0 });
    expect(p0.weights).toEqual(initialPolicyWeights(specOf(ME_TRPO), new Rng(0, 1)));
    const p0Copy = structuredClone(p0);
    learner.start();
    for (const t of await pendulumTransitions(200, 1)) learner.add(t);
    await until(() => learner!.stats.policy!.promoted === 1, 'the first policy promotion');
    const p1 = learner.currentPolicy!;
    expect(p1).not.toBe(p0);
    expect(p1).toMatchObject({ version: 1, baseVersion: 1, adapted: false });
    expect(p1.base).toBe(p1.weights);
    expect(p1.weights).not.toEqual(p0.weights);
    expect(p0).toEqual(p0Copy); // the old object is untouched: a reader holding it keeps a whole policy
    expect(seen).toEqual([p1]);
    expect(learner.current?.version).toBe(1); // the model came first
    const kinds = events.map((e) => e.kind).filter((k) => k !== 'log');
    expect(kinds).toEqual(['promoted', 'policyPromoted']);
    expect(learner.stats.policy).toMatchObject({ version: 1, promoted: 1, rejected: 0, adaptations: 0, adapted: false, improving: false });
    expect(Number.isFinite(learner.stats.policy!.lastImaginedReturn)).toBe(true);
  });

  it('rejects a candidate policy with NaN weights, naming them, and keeps the running policy', async () => {
    learner = new Learner({ config: learnerConfig(ME_TRPO, { promotionMargin: -1e9 }), workerUrl: compiledWorker() });
    const p0 = learner.currentPolicy;
    learner.start();
    learner.injectFault('nanPolicy');
    for (const t of await pendulumTransitions(200, 2)) learner.add(t);
    await until(() => learner!.stats.policy!.rejected === 1, 'the rejection');
    expect(learner.stats.policy!.lastRejection).toMatch(/^non-finite policy weights: PolicyWeights: layers\[0\]\.W\[0\]: expected a finite number, got NaN$/);
    expect(learner.currentPolicy).toBe(p0);
    expect(learner.current?.version).toBe(1); // the model was promoted all the same
  });

  it('a crash in the policy phase: the worker restarts from the last good model and policy, which stay in use meanwhile', async () => {
    const events: LearnerEvent[] = [];
    learner = new Learner({ config: learnerConfig(ME_TRPO, { promotionMargin: -1e9 }), workerUrl: compiledWorker(), onEvent: (e) => events.push(e) });
    const p0 = learner.currentPolicy;
    learner.start();
    learner.injectFault('crashInPolicyPhase');
    for (const t of await pendulumTransitions(200, 3)) learner.add(t);
    await until(() => learner!.stats.restarts === 1, 'the restart');
    expect(learner.stats.lastFailure).toBe('crashed: learner worker: injected crash in the policy phase');
    expect(learner.currentPolicy).toBe(p0);
    const m1 = learner.current;
    expect(m1?.version).toBe(1);
    // The restarted worker holds the model and the policy in use and every transition: its next refit's phase promotes.
    for (const t of await pendulumTransitions(200, 4)) learner.add(t);
    await until(() => learner!.stats.policy!.promoted === 1, 'a policy promotion by the restarted worker');
    expect(learner.current!.trainedOn).toBe(360); // 400 rows less every 10th
    expect(learner.currentPolicy!.version).toBe(1);
    expect(events.filter((e) => e.kind === 'workerFailed')).toHaveLength(1);
  });

  it('a hang in the policy phase: terminated after fitTimeoutSec without a heartbeat, the policy kept', async () => {
    learner = new Learner({ config: learnerConfig(ME_TRPO, { promotionMargin: -1e9 }, { timeoutSec: 1, fitTimeoutSec: 3 }), workerUrl: compiledWorker() });
    const p0 = learner.currentPolicy;
    learner.start();
    learner.injectFault('hangInPolicyPhase');
    for (const t of await pendulumTransitions(200, 5)) learner.add(t);
    await until(() => learner!.stats.restarts === 1, 'the restart');
    expect(learner.stats.lastFailure).toMatch(/^hung: no heartbeat during a policy phase for \d+\.\d s \(fitTimeoutSec 3\)$/);
    expect(learner.currentPolicy).toBe(p0);
    expect(learner.current?.version).toBe(1);
  });

  it('MB-MPO: the deployed policy is the meta-policy adapted on the newest transitions, recomputed as fresh data arrive', async () => {
    const events: LearnerEvent[] = [];
    // No refit within this test (minTransitions 10,000): the adaptation needs no model.
    learner = new Learner({ config: learnerConfig(MB_MPO, {}, { minTransitions: 10_000 }), workerUrl: compiledWorker(), onEvent: (e) => events.push(e) });
    const meta = learner.currentPolicy!;
    learner.start();
    const data = await pendulumTransitions(100, 6);
    for (const t of data.slice(0, 50)) learner.add(t);
    learner.flush();
    await until(() => learner!.stats.policy!.adaptations === 1, 'the first adaptation');
    const a1 = learner.currentPolicy!;
    expect(a1).toMatchObject({ version: 1, adapted: true, adaptedOn: 50, baseVersion: 0 });
    expect(a1.base).toBe(meta.base); // the meta-policy is unchanged; checkpoints keep it
    expect(a1.weights).not.toEqual(meta.weights);
    // The inner step moved the weights by α ∇J with α = 0.001: a small, finite change.
    const d1 = maxAbsDiff(a1.weights, meta.weights);
    expect(d1).toBeGreaterThan(0);
    expect(d1).toBeLessThan(0.05);
    // Fresh data: a new adaptation, from the same meta-policy, on the newest 50 rows.
    for (const t of data.slice(50)) learner.add(t);
    learner.flush();
    await until(() => learner!.stats.policy!.adaptations === 2, 'the second adaptation');
    const a2 = learner.currentPolicy!;
    expect(a2).toMatchObject({ version: 2, adapted: true, baseVersion: 0 });
    expect(a2.weights).not.toEqual(a1.weights);
    expect(learner.stats.policy).toMatchObject({ version: 2, adapted: true, adaptations: 2, promoted: 0 });
    expect(events.filter((e) => e.kind === 'policyAdapted').map((e) => (e as { version: number }).version)).toEqual([1, 2]);
  });
});

function maxAbsDiff(a: PolicyWeights, b: PolicyWeights): number {
  let m = 0;
  const pairs: [Float32Array, Float32Array][] = [...a.layers.flatMap((l, i): [Float32Array, Float32Array][] => [[l.W, b.layers[i].W], [l.b, b.layers[i].b]]), [a.logStd!, b.logStd!]];
  for (const [x, y] of pairs) for (let k = 0; k < x.length; k++) m = Math.max(m, Math.abs(x[k] - y[k]));
  return m;
}

// ---------------------------------------------------------------------------------------------

const LAUNCH = new URL('../../launch/', import.meta.url);

/** launch/pendulum_sim.yaml with `patch` applied at top-level keys, saving into `checkpointDir`. */
function simConfig(checkpointDir: string, patch: Record<string, unknown> = {}): NodeConfig {
  const raw = parseYaml(readFileSync(new URL('pendulum_sim.yaml', LAUNCH), 'utf8')) as Record<string, unknown>;
  return parseNodeConfig({ ...raw, checkpointDir, ...patch }, 'test');
}

describe('ControlNode with a learned policy (sim transport)', () => {
  const swapDir = join(dir, 'swap');
  const { env: _task, ...small } = SMALL_ALGO; // the node sets the task
  const algorithm = { kind: 'me-trpo', overrides: { ...small, imaginedSteps: 400, imaginedEnvs: 10, validationStarts: 2 } };

  it('swaps the promoted policy in between ticks: every action is the old or the new policy\'s, switching once; saved beside the model', async () => {
    const config = simConfig(swapDir, {
      controller: { kind: 'learnedPolicy', deterministic: true },
      algorithm,
      learner: { refitEveryTransitions: 10_000, refitEverySec: null, policyStepsPerRefit: 2, promotionMargin: -1e9, imaginedEvalEpisodes: 2 },
    });
    const ticks: TickInfo[] = [];
    let promotedAt: number | null = null;
    const node = new ControlNode({
      config,
      simSpeed: 4,
      diagnosticsPeriodMs: 0,
      log: () => undefined,
      learner: { minTransitions: 200, heartbeatMs: 100 },
      learnerWorkerUrl: compiledWorker(),
      onTick: (t) => {
        ticks.push(t);
        if (promotedAt === null && node.stats.learner?.policy?.promoted === 1) promotedAt = ticks.length;
        if (promotedAt !== null && ticks.length === promotedAt + 40) void node.stop();
      },
    });
    await node.start();
    expect(node.stats.controller).toMatchObject({ kind: 'policy', version: 0 });
    expect(await node.done).toEqual({ kind: 'stopped' });
    expect(promotedAt).not.toBeNull();
    const stats = node.stats;
    expect(stats.learner?.policy).toMatchObject({ version: 1, promoted: 1, rejected: 0 });
    expect(stats.promotions).toBe(1); // one model
    // The checkpoint holds the model and the promoted policy, written together.
    const saved = await loadNodeModel(config.checkpointDir);
    expect(saved).toMatchObject({ kind: 'me-trpo', version: 1, policyVersion: 1 });
    expect(saved?.ensemble?.weights.spec.numMembers).toBe(2);
    const spec = saved!.policy!.spec;
    const v0 = new GaussianMlpPolicy(spec, { weights: initialPolicyWeights(spec, new Rng(0, 1)) });
    const v1 = new GaussianMlpPolicy(spec, { weights: saved!.policy!.weights });
    // Each tick's action is exactly one version's; the version never goes back.
    let last = 0;
    let switches = 0;
    for (const t of ticks) {
      const { version } = t.controller;
      expect(version === 0 || version === 1).toBe(true);
      if (version !== last) switches++;
      last = version;
      const policy = version === 0 ? v0 : v1;
      expect(Array.from(t.proposed ?? t.action)).toEqual(Array.from(policy.toActions(policy.forwardFast(t.obs, 1).mean, 1)));
    }
    expect(switches).toBe(1);
    expect(ticks.filter((t) => t.controller.version === 1).length).toBeGreaterThanOrEqual(39);
    // The two policies act differently (else this test could not tell them apart).
    expect(ticks.some((t) => v0.forwardFast(t.obs, 1).mean[0] !== v1.forwardFast(t.obs, 1).mean[0])).toBe(true);
    v0.dispose();
    // mbrl export reads it too (the format of `mbrl train` checkpoints).
    const models = await loadCheckpointModels(config.checkpointDir);
    expect(models.policy?.weights).toEqual(saved!.policy!.weights);

    // A restart on the same directory resumes with that policy and model.
    const ticks2: TickInfo[] = [];
    const again = new ControlNode({ config, simSpeed: 4, maxTicks: 5, diagnosticsPeriodMs: 0, log: () => undefined, learnerWorkerUrl: compiledWorker(), onTick: (t) => ticks2.push(t) });
    await again.start();
    expect(again.stats.controller).toMatchObject({ kind: 'policy', version: 1 });
    expect(await again.done).toEqual({ kind: 'stopped' });
    expect(again.stats.learner?.policy).toMatchObject({ version: 1, promoted: 0 });
    for (const t of ticks2) expect(Array.from(t.proposed ?? t.action)).toEqual(Array.from(v1.toActions(v1.forwardFast(t.obs, 1).mean, 1)));
    v1.dispose();
  }, 300_000);

  it('MB-MPO: the node deploys the adapted policy as fresh transitions arrive, and its diagnostics say so', async () => {
    const { env: _t, ...mbMpoSmall } = SMALL_ALGO;
    const config = simConfig(join(dir, 'adapt'), {
      controller: { kind: 'learnedPolicy', deterministic: false },
      algorithm: { kind: 'mb-mpo', overrides: { ...mbMpoSmall, trajectoriesPerTask: 3, metaGradient: 'firstOrder' } },
      learner: { refitEveryTransitions: 10_000, refitEverySec: null, adaptWindow: 50, adaptEveryTransitions: 50 },
    });
    const versions: number[] = [];
    // No refit (minTransitions 10,000): adaptation needs no model. At most 2× real time, so the worker keeps up.
    const node = new ControlNode({ config, simSpeed: 2, maxTicks: 400, diagnosticsPeriodMs: 0, log: () => undefined, learner: { minTransitions: 10_000, heartbeatMs: 100 }, learnerWorkerUrl: compiledWorker(), onTick: (t) => versions.push(t.controller.version) });
    await node.start();
    expect(await node.done).toEqual({ kind: 'stopped' });
    const p = node.stats.learner!.policy!;
    console.log(`control node MB-MPO adaptation: ${p.adaptations} adaptations over ${node.stats.transitions.stored} transitions, controller versions ${[...new Set(versions)].join(', ')}`);
    // 400 transitions, adapted every 50 (rows that queue up while the worker starts are adapted on
    // once, the newest 50; the last batch may arrive after the stop): several swaps, no promotion.
    expect(p.adaptations).toBeGreaterThanOrEqual(3);
    expect(p).toMatchObject({ adapted: true, promoted: 0, version: p.adaptations });
    expect(versions[0]).toBe(0);
    expect(versions.every((v, i) => i === 0 || v >= versions[i - 1])).toBe(true);
    expect(new Set(versions).size).toBeGreaterThanOrEqual(3);
    const learnerStatus = node.diagnostics().status.find((st) => st.name === 'mbrl_node: learner');
    expect(learnerStatus?.values).toEqual(expect.arrayContaining([{ key: 'policy/adapted', value: 'true' }, { key: 'policy/version', value: String(p.version) }, { key: 'policy/promoted', value: '0' }]));
    expect(learnerStatus?.message).toMatch(/policy v\d+ \(adapted\), 0 promoted, 0 rejected$/);
  }, 120_000);

  it('saveNodeModel writes model and policy in one atomic swap; loadNodeModel reads both with their versions', async () => {
    const d = join(dir, 'ckpt');
    const spec = specOf(ME_TRPO);
    const weights = stillEnsemble();
    await saveNodeModel(d, ME_TRPO, { weights, elites: [0, 1], version: 3, transitions: 10, policy: { spec, weights: constantPolicy(spec, 0.5), version: 7 } });
    const back = await loadNodeModel(d);
    expect(back).toMatchObject({ kind: 'me-trpo', env: 'Pendulum-v1', version: 3, policyVersion: 7 });
    expect(back?.policy?.weights).toEqual(constantPolicy(spec, 0.5));
    expect(back?.ensemble?.weights.weights[0]).toEqual(weights.weights[0]);
    // A model without a policy (PETS) has no policyVersion.
    await saveNodeModel(d, ME_TRPO, { weights, elites: [0, 1], version: 4, transitions: 10 });
    expect(await loadNodeModel(d)).toMatchObject({ version: 4, policyVersion: null, policy: null });
    expect(existsSync(join(d, 'checkpoint', 'policy.bin'))).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------

describe.skipIf(!HAVE_MJCF)(`ControlNode learning InvertedPendulum-v5 with ME-TRPO from a random policy (sim transport; ${MJCF_SKIP_REASON || 'MJCF from $MBRL_MJCF_DIR'})`, () => {
  // The return is the number of steps the pole stays up (at most 1000). The fresh Gaussian policy
  // (mean ≈ 0, σ = half the force range) scores about 4 per episode; over 100 seeded episodes a
  // uniformly random policy scores 4.8 (best 19) and the zero force 25.2 (best 48). A mean of 40
  // over ten consecutive episodes is out of chance's reach. Budget: 4,000 simulated steps (160 s
  // simulated, lockstep at most 2× real time while the learner refits every 250 transitions and
  // takes at most 10 TRPO steps per refit). Measured here in two runs (2 loaded cores): the random
  // policy 4.2 per episode (over 236 and 204 episodes), the last ten 165.8 and 150.2 (each with
  // one 1000-step episode; 55.8 over the other nine of the second run), 5 and 4 policies
  // promoted, none rejected, 103 s and 82 s.
  const THRESHOLD = 40;
  const BUDGET_TICKS = 4000;

  it(`raises the real episode return from random level (~4) to a mean ≥ ${THRESHOLD} over the last ten episodes within ${BUDGET_TICKS} simulated steps`, async () => {
    const config = parseNodeConfig(
      {
        transport: { kind: 'sim', env: 'InvertedPendulum-v5', seed: 1 },
        controlPeriodMs: 40,
        sensors: [{ topic: '/joint_states', type: 'sensor_msgs/msg/JointState', fields: ['position[0..3]'], maxAgeMs: 100 }],
        action: { topic: '/mbrl/action', type: 'std_msgs/msg/Float64MultiArray', fields: ['data[0]'] },
        actionBounds: { low: [-3], high: [3] },
        safety: { safeAction: [0] },
        reward: { kind: 'task', task: 'InvertedPendulum-v5' },
        // Sampling: the real data explore, as ME-TRPO collects with its stochastic policy.
        controller: { kind: 'learnedPolicy', deterministic: false },
        algorithm: { kind: 'me-trpo', overrides: { seed: 1 } },
        learner: { refitEveryTransitions: 250, refitEverySec: null, policyStepsPerRefit: 10 },
        checkpointDir: join(dir, 'invpend'),
      },
      'test',
    );
    const returns: { ret: number; version: number }[] = [];
    let ret = 0;
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    const lastTenMean = (): number => mean(returns.slice(-10).map((r) => r.ret));
    const node: ControlNode = new ControlNode({
      config,
      simSpeed: 2,
      maxTicks: BUDGET_TICKS,
      diagnosticsPeriodMs: 0,
      log: (l) => {
        if (l.startsWith('learner: policy')) console.log(l);
      },
      learnerWorkerUrl: compiledWorker(),
    });
    node.transport.subscribe<Float64>('/mbrl/reward', 'std_msgs/msg/Float64', (m) => (ret += m.data.data));
    node.transport.subscribe<Bool>('/mbrl/episode_end', 'std_msgs/msg/Bool', () => {
      returns.push({ ret, version: node.stats.controller.version });
      ret = 0;
      // Stop once ten episodes reach the threshold rather than run out the budget: a learned
      // policy balances for 1000-step episodes, which would take most of the budget's wall time.
      if (returns.length >= 10 && lastTenMean() >= THRESHOLD) void node.stop();
    });
    const t0 = performance.now();
    await node.start();
    expect(await node.done).toEqual({ kind: 'stopped' });
    const stats = node.stats;
    const random = returns.filter((r) => r.version === 0).map((r) => r.ret);
    const lastTen = returns.slice(-10).map((r) => r.ret);
    const versions = [...new Set(returns.map((r) => r.version))];
    console.log(
      `control node ME-TRPO InvertedPendulum-v5: ${returns.length} episodes; mean return per policy version: ` +
        `${versions.map((v) => `v${v} ${mean(returns.filter((r) => r.version === v).map((r) => r.ret)).toFixed(1)} (${returns.filter((r) => r.version === v).length})`).join(', ')}; ` +
        `last ten ${lastTen.map((r) => r.toFixed(0)).join(', ')} (mean ${mean(lastTen).toFixed(1)}); ` +
        `${stats.learner?.policy?.promoted} policies promoted, ${stats.learner?.policy?.rejected} rejected; ${stats.ticks} ticks, ${((performance.now() - t0) / 1000).toFixed(0)} s`,
    );
    expect(mean(random)).toBeLessThan(15);
    expect(lastTen).toHaveLength(10);
    expect(mean(lastTen)).toBeGreaterThanOrEqual(THRESHOLD);
    expect(stats.learner?.policy?.promoted).toBeGreaterThanOrEqual(1);
    expect(stats.learner?.restarts).toBe(0);
    expect(stats.interventions.controllerError).toBe(0);
  }, 900_000);
});
