// Exported policies and ensembles against the in-process tfjs models they come from: parity on
// 10,000 seeded inputs (in range, far outside the normalisation range, and saturating the action
// bounds), the metadata round trip, and the Python ONNX checker.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/core/backend.js';
import { Rng } from '../../src/core/rng.js';
import { exportMetadataProps, readExportMetadata } from '../../src/export/exportMetadata.js';
import { decodeModelProto } from '../../src/export/onnxProto.js';
import { MBRL_NODE_VERSION } from '../../src/export/onnxWriter.js';
import { policyToOnnx } from '../../src/export/policyOnnx.js';
import { DynamicsEnsemble } from '../../src/models/ensemble.js';
import { ensembleToOnnx } from '../../src/models/ensembleOnnx.js';
import { randomEnsembleWeights } from '../../src/models/referenceForward.js';
import type { EnsembleSpec } from '../../src/models/types.js';
import { GaussianMlpPolicy, makePolicySpec, referencePolicyForward, type GaussianMlpPolicySpec, type PolicySpecOptions } from '../../src/policies/gaussianMlpPolicy.js';
import { PY_ONNX_SKIP_REASON, PYTHON_WITH_ONNX, pythonOnnxCheckFiles } from '../helpers.js';

const ROWS = 10_000;
const OBS_DIM = 5;
const LOW = [-2, 0, -0.3];
const HIGH = [2, 1, 0.7];

/** Every exportable policy type: clip/parameter std (TRPO, PPO), tanh/state std (SAC), relu and tanh hidden layers, with and without the observation clip. */
const VARIANTS: Record<string, Partial<PolicySpecOptions>> = {
  'clip, parameter std, tanh hidden': { squash: 'clip', stdMode: 'parameter', activation: 'tanh', hidden: [64, 64], initLogStd: -0.5 },
  'clip, parameter std, relu hidden, no obs clip': { squash: 'clip', stdMode: 'parameter', activation: 'relu', hidden: [32, 16], obsClip: null },
  'tanh, state std, relu hidden': { squash: 'tanh', stdMode: 'state', activation: 'relu', hidden: [64, 64] },
  'tanh, state std, tanh hidden, obs clip 3': { squash: 'tanh', stdMode: 'state', activation: 'tanh', hidden: [32], obsClip: 3 },
};

const dir = mkdtempSync(join(tmpdir(), 'mbrl-policy-onnx-'));
/** Files handed to the Python checker at the end, by test name. */
const written: Record<string, string> = {};
const sessions: ort.InferenceSession[] = [];

beforeAll(async () => {
  await initBackend();
});
afterAll(async () => {
  for (const s of sessions) await s.release();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * A policy with non-trivial normalisation and an output layer scaled up, so that a good share of
 * the inputs drive the clip policy exactly onto its bounds and tanh into saturation: ×300 after
 * tanh hidden layers (|h| ≤ 1), ×30 after relu ones, whose unbounded values the scale would
 * otherwise turn into float32 rounding differences of 1e-5 between any two summation orders.
 */
function makePolicy(options: Partial<PolicySpecOptions>, seed: number): GaussianMlpPolicy {
  const spec = makePolicySpec({ obsDim: OBS_DIM, actionLow: LOW, actionHigh: HIGH, ...options });
  const policy = new GaussianMlpPolicy(spec, { rng: new Rng(seed) });
  const w = policy.getWeights();
  const last = w.layers[w.layers.length - 1];
  const scale = spec.activation === 'tanh' ? 300 : 30;
  last.W = last.W.map((v) => v * scale);
  last.b = last.b.map((_, k) => 0.1 * Math.sin(k + 1));
  w.obsMean = Float32Array.from([1, -3, 0.5, 100, 0]);
  w.obsStd = Float32Array.from([2, 0.5, 1, 20, 0.01]);
  policy.setWeights(w);
  return policy;
}

/**
 * 70% of rows N(mean, std²), 20% 5–1000 σ from the mean (far outside the range), 10% ±1e4 raw
 * (up to 1e6 σ: the obs clip's case). Without an obs clip the far rows reach 30 σ and the last
 * rows are 30 σ too: unclipped, a 1000 σ input makes the relu network's values ~1e5, and where the
 * mean then cancels to near ±1, two float32 summation orders disagree by ~1e-4 (an ulp of 1e5 is
 * 8e-3), so neither path would be more right than the other.
 */
function makeObs(policy: GaussianMlpPolicy, rng: Rng): Float64Array {
  const { obsMean, obsStd } = policy.getWeights();
  const clipped = policy.spec.obsClip !== null;
  const farMax = clipped ? 1000 : 30;
  const obs = new Float64Array(ROWS * OBS_DIM);
  for (let r = 0; r < ROWS; r++) {
    const kind = r % 10;
    for (let i = 0; i < OBS_DIM; i++) {
      const sign = rng.random() < 0.5 ? -1 : 1;
      const z = kind < 7 ? rng.normal() : kind < 9 ? sign * Math.exp(rng.uniform(Math.log(5), Math.log(farMax))) : sign * farMax;
      obs[r * OBS_DIM + i] = kind === 9 && clipped ? sign * 1e4 : obsMean[i] + z * obsStd[i];
    }
  }
  return obs;
}

async function open(bytes: Uint8Array): Promise<ort.InferenceSession> {
  const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
  sessions.push(s);
  return s;
}

function metaFor(spec: GaussianMlpPolicySpec, stochastic: boolean): Record<string, string> {
  return exportMetadataProps({ what: 'policy', obsDim: spec.obsDim, actDim: spec.actDim, actionLow: spec.actionLow, actionHigh: spec.actionHigh, envId: 'Test-v0', configKind: 'test', envSteps: 1234, squash: spec.squash, stochastic });
}

describe('policyToOnnx parity with the tfjs GaussianMlpPolicy', () => {
  it.each(Object.keys(VARIANTS))('%s: action, mean and log_std on 10,000 seeded inputs', async (name) => {
    const policy = makePolicy(VARIANTS[name], 7);
    try {
      const spec = policy.spec as GaussianMlpPolicySpec;
      const bytes = policyToOnnx(spec, policy.getWeights(), metaFor(spec, true), { stochastic: true });
      written[name] = join(dir, `${name.replace(/[^a-z0-9]+/gi, '_')}.onnx`);
      writeFileSync(written[name], bytes);
      const obs = makeObs(policy, new Rng(11));
      const A = spec.actDim;

      const tfAction = policy.actBatch(obs, ROWS);
      const ref = referencePolicyForward(spec, policy.getWeights(), obs, ROWS);
      const [meanT, logStdT] = tf.tidy(() => {
        const d = policy.distribution(tf.tensor2d(Float32Array.from(obs), [ROWS, OBS_DIM]));
        return [d.mean, tf.broadcastTo(d.logStd, [ROWS, A])];
      });
      const tfMean = meanT.dataSync() as Float32Array;
      const tfLogStd = logStdT.dataSync() as Float32Array;
      tf.dispose([meanT, logStdT]);

      const session = await open(bytes);
      const out = await session.run({ obs: new ort.Tensor('float32', Float32Array.from(obs), [ROWS, OBS_DIM]) });
      expect(out.action.dims).toEqual([ROWS, A]);
      expect(out.log_std.dims).toEqual([ROWS, A]);
      const action = out.action.data as Float32Array;
      const mean = out.mean.data as Float32Array;
      const logStd = out.log_std.data as Float32Array;

      let actionErr = 0;
      let logStdErr = 0;
      let meanErr = 0;
      let atBound = 0;
      let onnxVsRef = 0;
      let tfVsRef = 0;
      for (let k = 0; k < ROWS * A; k++) {
        const j = k % A;
        onnxVsRef = Math.max(onnxVsRef, Math.abs(action[k] - ref.action[k]));
        tfVsRef = Math.max(tfVsRef, Math.abs(tfAction[k] - ref.action[k]));
        actionErr = Math.max(actionErr, Math.abs(action[k] - tfAction[k]));
        logStdErr = Math.max(logStdErr, Math.abs(logStd[k] - tfLogStd[k]));
        // The mean is unbounded (|mean| reaches 1e3 on far rows with these scaled weights), and
        // float32 cannot hold 1e-5 absolute beyond 128 (one ulp there is 1.5e-5): relative above 1.
        meanErr = Math.max(meanErr, Math.abs(mean[k] - tfMean[k]) / Math.max(1, Math.abs(tfMean[k])));
        // Inside the bounds, exactly (the graph rounds non-representable bounds such as 0.7 inwards).
        expect(action[k]).toBeGreaterThanOrEqual(LOW[j]);
        expect(action[k]).toBeLessThanOrEqual(HIGH[j]);
        if (Math.abs(tfAction[k] - LOW[j]) < 1e-12 || Math.abs(tfAction[k] - HIGH[j]) < 1e-12) atBound++;
      }
      console.log(`policy export parity (${name}): max |Δaction| ${actionErr.toExponential(2)}, max |Δlog_std| ${logStdErr.toExponential(2)}, max Δmean/max(1,|mean|) ${meanErr.toExponential(2)}, ${atBound} of ${ROWS * A} actions exactly at a bound; vs the float64 reference: onnx ${onnxVsRef.toExponential(2)}, tfjs ${tfVsRef.toExponential(2)}`);
      expect(actionErr).toBeLessThanOrEqual(1e-5);
      expect(logStdErr).toBeLessThanOrEqual(1e-5);
      expect(meanErr).toBeLessThanOrEqual(1e-5);
      // The inputs exercise the bounds: the clip policy sits exactly on them for many rows.
      if (spec.squash === 'clip') expect(atBound).toBeGreaterThan(ROWS * A * 0.05);
    } finally {
      policy.dispose();
    }
  });

  it('a deterministic export has only the action output, and the same actions', async () => {
    const policy = makePolicy(VARIANTS['clip, parameter std, tanh hidden'], 3);
    try {
      const spec = policy.spec as GaussianMlpPolicySpec;
      const bytes = policyToOnnx(spec, policy.getWeights(), metaFor(spec, false));
      written.deterministic = join(dir, 'deterministic.onnx');
      writeFileSync(written.deterministic, bytes);
      const session = await open(bytes);
      expect(session.inputNames).toEqual(['obs']);
      expect(session.outputNames).toEqual(['action']);
      expect(session.inputMetadata[0]).toMatchObject({ name: 'obs', type: 'float32', shape: ['batch', OBS_DIM] });
      const obs = makeObs(policy, new Rng(5)).subarray(0, 100 * OBS_DIM);
      const { action } = await session.run({ obs: new ort.Tensor('float32', Float32Array.from(obs), [100, OBS_DIM]) });
      const ref = policy.actBatch(obs, 100);
      for (let k = 0; k < ref.length; k++) expect(Math.abs((action.data as Float32Array)[k] - ref[k])).toBeLessThanOrEqual(1e-5);
    } finally {
      policy.dispose();
    }
  });

  it('writes the deployment metadata, and reads it back', () => {
    const spec = makePolicySpec({ obsDim: 3, actionLow: [-2], actionHigh: [2] });
    const policy = new GaussianMlpPolicy(spec, { rng: new Rng(1) });
    const props = exportMetadataProps({
      what: 'policy',
      obsDim: 3,
      actDim: 1,
      actionLow: [-2],
      actionHigh: [2],
      obsLow: [-1, -1, -8],
      obsHigh: [1, 1, 8],
      obsNames: ['cos(theta)', 'sin(theta)', 'theta_dot'],
      envId: 'Pendulum-v1',
      configKind: 'trpo',
      envSteps: 20000,
      squash: 'clip',
      stochastic: false,
      createdAt: '2025-01-02T03:04:05.000Z',
    });
    const model = decodeModelProto(policyToOnnx(spec, policy.getWeights(), props));
    policy.dispose();
    const kv = Object.fromEntries((model.metadata_props ?? []).map(({ key, value }) => [key, value]));
    expect(kv).toMatchObject({
      'mbrl.what': 'policy',
      'mbrl.kind': 'gaussian-mlp-policy',
      'mbrl.obs_dim': '3',
      'mbrl.act_dim': '1',
      'mbrl.action_low': '-2',
      'mbrl.action_high': '2',
      'mbrl.obs_low': '-1,-1,-8',
      'mbrl.obs_names': '["cos(theta)","sin(theta)","theta_dot"]',
      'mbrl.env_id': 'Pendulum-v1',
      'mbrl.algorithm': 'trpo',
      'mbrl.config_kind': 'trpo',
      'mbrl.env_steps': '20000',
      'mbrl.version': MBRL_NODE_VERSION,
      'mbrl.created_at': '2025-01-02T03:04:05.000Z',
      'mbrl.squash': 'clip',
      'mbrl.stochastic': 'false',
    });
    expect(JSON.parse(kv['mbrl.spec'])).toEqual(spec);
    const back = readExportMetadata(kv);
    expect(back).toMatchObject({ what: 'policy', obsDim: 3, actDim: 1, actionLow: [-2], actionHigh: [2], obsHigh: [1, 1, 8], envSteps: 20000, stochastic: false, obsNames: ['cos(theta)', 'sin(theta)', 'theta_dot'] });
    // Unbounded observations round-trip as Infinity (what Python's float() and C's strtod read).
    const inf = exportMetadataProps({ what: 'ensemble', obsDim: 2, actDim: 1, actionLow: [-1], actionHigh: [1], obsLow: [-Infinity, 0], obsHigh: [Infinity, 1] });
    expect(inf['mbrl.obs_low']).toBe('-Infinity,0');
    expect(readExportMetadata(inf).obsLow).toEqual([-Infinity, 0]);
    expect(() => exportMetadataProps({ what: 'policy', obsDim: 3, actDim: 1, actionLow: [-2, 0], actionHigh: [2] })).toThrow(/actionLow: expected 1 entries, got 2/);
    expect(() => readExportMetadata({ ...kv, 'mbrl.action_low': '-2,x' })).toThrow(/mbrl\.action_low: expected 1 comma-separated numbers/);
  });
});

describe('ensemble export parity with the tfjs DynamicsEnsemble', () => {
  const SPECS: Record<string, EnsembleSpec> = {
    'probabilistic, learned reward, silu': { numMembers: 3, obsDim: 4, actDim: 2, hidden: [32, 32], activation: 'silu', probabilistic: true, learnReward: true },
    'deterministic, tanh': { numMembers: 2, obsDim: 4, actDim: 2, hidden: [16], activation: 'tanh', probabilistic: false, learnReward: false },
  };

  it.each(Object.keys(SPECS))('%s: next_obs, reward and variance on 10,000 seeded rows', async (name) => {
    const spec = SPECS[name];
    const w = randomEnsembleWeights(spec, new Rng(21));
    const K = spec.numMembers;
    const B = Math.ceil(ROWS / K);
    const rng = new Rng(22);
    const inDim = spec.obsDim + spec.actDim;
    const obs = new Float32Array(K * B * spec.obsDim);
    const act = new Float32Array(K * B * spec.actDim);
    for (let r = 0; r < K * B; r++) {
      const far = r % 5 === 0;
      for (let i = 0; i < inDim; i++) {
        const z = far ? rng.uniform(5, 30) * (rng.random() < 0.5 ? -1 : 1) : rng.normal();
        const v = w.inputMean[i] + z * w.inputStd[i];
        if (i < spec.obsDim) obs[r * spec.obsDim + i] = v;
        else act[r * spec.actDim + i - spec.obsDim] = v;
      }
    }
    const ensemble = DynamicsEnsemble.fromWeights(w);
    const ref = ensemble.forwardTf(obs, act, B);
    ensemble.dispose();
    const meta = exportMetadataProps({ what: 'ensemble', obsDim: spec.obsDim, actDim: spec.actDim, actionLow: [-1, -1], actionHigh: [1, 1], envId: 'Test-v0', configKind: 'pets', envSteps: 10, elites: [0, 1] });
    const bytes = ensembleToOnnx(w, meta);
    written[`ensemble ${name}`] = join(dir, `ensemble_${name.replace(/[^a-z0-9]+/gi, '_')}.onnx`);
    writeFileSync(written[`ensemble ${name}`], bytes);
    const session = await open(bytes);
    const out = await session.run({ obs: new ort.Tensor('float32', obs, [K, B, spec.obsDim]), act: new ort.Tensor('float32', act, [K, B, spec.actDim]) });
    // Tolerance as in test/models/weightsCodec.test.ts: 1e-5 × max(1, |value|) on in-range rows,
    // and 1e-5 × max(1, the row's largest |output|) on far rows, whose outputs reach ~100 (one
    // float32 ulp there is 7.6e-6; two float32 paths with different GEMM summation orders differ
    // by a few ulps of the row's intermediate values). Variances are compared in log space.
    const D = spec.obsDim;
    const nextObs = out.next_obs.data as Float32Array;
    const errs: Record<string, number> = { next_obs: 0 };
    if (spec.learnReward) errs.reward = 0;
    if (spec.probabilistic) {
      errs.logVariance = 0;
      errs.logVarianceOutput = 0;
    }
    let absNext = 0;
    const outDim = D + (spec.learnReward ? 1 : 0);
    for (let r = 0; r < K * B; r++) {
      let rowScale = 1;
      for (let j = 0; j < D; j++) rowScale = Math.max(rowScale, Math.abs(ref.nextObs[r * D + j]));
      if (ref.reward) rowScale = Math.max(rowScale, Math.abs(ref.reward[r]));
      const scale = (v: number): number => (r % 5 === 0 ? rowScale : Math.max(1, Math.abs(v)));
      for (let j = 0; j < D; j++) {
        const k = r * D + j;
        absNext = Math.max(absNext, Math.abs(nextObs[k] - ref.nextObs[k]));
        errs.next_obs = Math.max(errs.next_obs, Math.abs(nextObs[k] - ref.nextObs[k]) / scale(ref.nextObs[k]));
      }
      if (ref.reward) errs.reward = Math.max(errs.reward, Math.abs((out.reward.data as Float32Array)[r] - ref.reward[r]) / scale(ref.reward[r]));
      if (ref.variance) {
        for (let j = 0; j < outDim; j++) {
          const k = r * outDim + j;
          errs.logVariance = Math.max(errs.logVariance, Math.abs(Math.log((out.variance.data as Float32Array)[k]) - Math.log(ref.variance[k])) / scale(Math.log(ref.variance[k])));
          // The log_variance output against the reference's log variance (same scaling as above).
          errs.logVarianceOutput = Math.max(errs.logVarianceOutput, Math.abs((out.log_variance.data as Float32Array)[k] - Math.log(ref.variance[k])) / scale(Math.log(ref.variance[k])));
        }
      }
    }
    console.log(`ensemble export parity (${name}): ${Object.entries(errs).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', ')} (scaled error); next_obs max |Δ| ${absNext.toExponential(2)}`);
    for (const [k, v] of Object.entries(errs)) expect(v, k).toBeLessThanOrEqual(1e-5);
    const kv = Object.fromEntries((decodeModelProto(bytes).metadata_props ?? []).map(({ key, value }) => [key, value]));
    expect(readExportMetadata(kv)).toMatchObject({ what: 'ensemble', kind: 'dynamics-ensemble', obsDim: 4, actDim: 2, elites: [0, 1], configKind: 'pets' });
  });
});

describe('python onnx checker', () => {
  it.skipIf(PYTHON_WITH_ONNX === undefined)(`every export above passes check_model(full_check=True) ${PYTHON_WITH_ONNX === undefined ? PY_ONNX_SKIP_REASON : ''}`, () => {
    const files = Object.values(written);
    expect(files.length).toBe(Object.keys(VARIANTS).length + 3);
    const result = pythonOnnxCheckFiles(files);
    for (const [name, file] of Object.entries(written)) expect(result[file], name).toBe('');
  });
});
