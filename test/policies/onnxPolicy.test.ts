// OnnxPolicy: loading and checking exported files (every refusal names the file, the field and
// what was expected), acting on one observation or a batch like the tfjs policy it came from, and
// running in the episode loops (sync and async).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../src/core/agent.js';
import { initBackend } from '../../src/core/backend.js';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { Box } from '../../src/core/spaces.js';
import { Pendulum } from '../../src/envs/pendulum.js';
import { runEpisodes, runEpisodesAsync } from '../../src/envs/runEpisodes.js';
import { exportMetadataProps } from '../../src/export/exportMetadata.js';
import { OnnxGraphBuilder } from '../../src/export/onnxWriter.js';
import { float32Inward, policyToOnnx } from '../../src/export/policyOnnx.js';
import { ensembleToOnnx } from '../../src/models/ensembleOnnx.js';
import { randomEnsembleWeights } from '../../src/models/referenceForward.js';
import { GaussianMlpPolicy, makePolicySpec, type GaussianMlpPolicySpec } from '../../src/policies/gaussianMlpPolicy.js';
import { OnnxPolicy } from '../../src/policies/onnxPolicy.js';

const dir = mkdtempSync(join(tmpdir(), 'mbrl-onnx-policy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Pendulum-v1's sizes and bounds.
const SPACE = new Box([-2], [2]);
let policy: GaussianMlpPolicy;
let spec: GaussianMlpPolicySpec;

function meta(overrides: Partial<Parameters<typeof exportMetadataProps>[0]> = {}): Record<string, string> {
  return exportMetadataProps({ what: 'policy', obsDim: 3, actDim: 1, actionLow: [-2], actionHigh: [2], obsNames: ['cos(theta)', 'sin(theta)', 'theta_dot'], envId: 'Pendulum-v1', configKind: 'trpo', envSteps: 500, squash: 'clip', ...overrides });
}

beforeAll(async () => {
  await initBackend();
  spec = makePolicySpec({ obsDim: 3, actionSpace: SPACE, hidden: [16, 16] });
  policy = new GaussianMlpPolicy(spec, { rng: new Rng(4) });
  // Larger output weights than the initialisation, so the actions span the bounds.
  const w = policy.getWeights();
  w.layers[2].W = w.layers[2].W.map((v) => v * 100);
  w.obsStd = Float32Array.from([1, 1, 8]);
  policy.setWeights(w);
});
afterAll(() => policy.dispose());

describe('OnnxPolicy', () => {
  it('acts like the tfjs policy on one observation and on a batch, from a file or bytes', async () => {
    const file = join(dir, 'pendulum.onnx');
    writeFileSync(file, policyToOnnx(spec, policy.getWeights(), meta()));
    const onnx = await OnnxPolicy.load(file, { obsDim: 3, actDim: 1, envId: 'Pendulum-v1', actionSpace: SPACE });
    try {
      expect(onnx.synchronous).toBe(true);
      expect(onnx.metadata).toMatchObject({ envId: 'Pendulum-v1', configKind: 'trpo', envSteps: 500 });
      expect(Array.from(onnx.actionSpace.high)).toEqual([2]);
      const rng = new Rng(9);
      const n = 257;
      const obs = Float64Array.from({ length: n * 3 }, () => rng.normal(0, 5));
      const ref = policy.actBatch(obs, n);
      const first = onnx.act(obs.subarray(0, 3));
      for (let r = 0; r < n; r++) {
        const a = onnx.act(obs.subarray(r * 3, r * 3 + 3));
        // The output array is reused: no allocation per call.
        expect(a).toBe(first);
        expect(Math.abs(a[0] - ref[r])).toBeLessThanOrEqual(1e-5);
        expect(Math.abs((await onnx.actAsync(obs.subarray(r * 3, r * 3 + 3)))[0] - ref[r])).toBeLessThanOrEqual(1e-5);
      }
      const batch = onnx.actBatch(obs, n);
      for (let r = 0; r < n; r++) expect(Math.abs(batch[r] - ref[r])).toBeLessThanOrEqual(1e-5);
      const out = new Float64Array(n);
      expect(onnx.actBatch(obs, n, out)).toBe(out);
      expect(Array.from(out)).toEqual(Array.from(batch));
    } finally {
      onnx.dispose();
    }
  });

  it('runs episodes in runEpisodes (sync) and runEpisodesAsync with the actions of the tfjs policy', async () => {
    const onnx = await OnnxPolicy.load(policyToOnnx(spec, policy.getWeights(), meta()));
    try {
      // Each step: the ONNX action against the tfjs policy's action on the same observation.
      let worst = 0;
      const compare: Agent = {
        act: (obs) => {
          const a = onnx.act(obs);
          worst = Math.max(worst, Math.abs(a[0] - policy.act(obs)[0]));
          return a;
        },
      };
      const env = new Pendulum();
      const sync = runEpisodes(env, compare, { episodes: 2, seed: 3 });
      expect(worst).toBeLessThanOrEqual(1e-5);
      const asyncStats = await runEpisodesAsync(env, onnx, { episodes: 2, seed: 3 });
      expect(asyncStats.returns).toEqual(sync.returns);
      env.close();
    } finally {
      onnx.dispose();
    }
  });

  it('works through the public async API when asked (synchronous: false), where act says to use actAsync', async () => {
    const bytes = policyToOnnx(spec, policy.getWeights(), meta(), { stochastic: true });
    const a = await OnnxPolicy.load(bytes, { stochastic: true });
    const b = await OnnxPolicy.load(bytes, {}, { synchronous: false });
    try {
      expect(b.synchronous).toBe(false);
      const obs = Float64Array.of(0.3, -0.9, 4);
      expect(() => b.act(obs)).toThrow(/synchronous inference is not available.*use actAsync/);
      expect(Array.from(await b.actAsync(obs))).toEqual(Array.from(a.act(obs)));
      expect(Array.from(await b.actBatchAsync(obs, 1))).toEqual(Array.from(a.actBatch(obs, 1)));
      const d = await a.distribution(obs, 1);
      const w = policy.getWeights();
      expect(d.logStd[0]).toBe(w.logStd![0]);
      expect(Array.from((await b.distribution(obs, 1)).mean)).toEqual(Array.from(d.mean));
    } finally {
      a.dispose();
      b.dispose();
    }
    expect(() => a.act(Float64Array.of(0, 0, 0))).toThrow(/disposed/);
  });

  it('refuses an observation of the wrong size, naming the expected size', async () => {
    const onnx = await OnnxPolicy.load(policyToOnnx(spec, policy.getWeights(), meta()));
    try {
      expect(() => onnx.act(new Float64Array(4))).toThrow(ValidationError);
      expect(() => onnx.act(new Float64Array(4))).toThrow(/OnnxPolicy\.act: obs: expected 1 × 3 = 3 values \(obs_dim 3\), got 4/);
      expect(() => onnx.actBatch(new Float64Array(7), 2)).toThrow(/expected 2 × 3 = 6 values/);
      // NaN in, NaN out would be the graph's answer: refused instead, naming the entry.
      expect(() => onnx.act(Float64Array.of(0, NaN, 0))).toThrow(/OnnxPolicy\.act: obs\[1\]: is NaN \(row 0, entry 1 "sin\(theta\)"\)/);
      expect(() => onnx.actBatch(Float64Array.of(0, 0, 0, 0, 0, NaN), 2)).toThrow(/obs\[5\]: is NaN \(row 1, entry 2/);
      expect(() => onnx.actBatch(new Float64Array(6), 2, new Float64Array(3))).toThrow(/out: expected 2 × 1 = 2 values, got 3/);
      await expect(onnx.distribution(new Float64Array(3), 1)).rejects.toThrow(/no mean and log_std outputs/);
    } finally {
      onnx.dispose();
    }
  });

  it('refuses a file that does not fit what the caller expects', async () => {
    const bytes = policyToOnnx(spec, policy.getWeights(), meta());
    const load = (b: Uint8Array, expected = {}): Promise<OnnxPolicy> => OnnxPolicy.load(b, expected);
    await expect(load(bytes, { obsDim: 4 })).rejects.toThrow(/mbrl\.obs_dim: expected observations of size 4, the file's policy takes 3/);
    await expect(load(bytes, { actDim: 2 })).rejects.toThrow(/mbrl\.act_dim: expected actions of size 2, the file's policy gives 1/);
    await expect(load(bytes, { envId: 'HalfCheetah-v5' })).rejects.toThrow(/mbrl\.env_id: expected a policy for HalfCheetah-v5, the file's is for Pendulum-v1/);
    await expect(load(bytes, { actionSpace: new Box([-1], [1]) })).rejects.toThrow(/expected action bounds \[-1\] – \[1\], the file's are \[-2\] – \[2\]/);
    await expect(load(bytes, { stochastic: true })).rejects.toThrow(/outputs: missing output "mean" of a stochastic export/);
    await expect(load(policyToOnnx(spec, policy.getWeights(), meta({ envId: undefined })), { envId: 'Pendulum-v1' })).rejects.toThrow(/an unnamed environment \(no mbrl\.env_id\)/);
    await expect(load(new Uint8Array([1, 2, 3, 4, 5]))).rejects.toThrow(/file: not an ONNX model/);
    const file = join(dir, 'named.onnx');
    writeFileSync(file, bytes);
    await expect(OnnxPolicy.load(file, { obsDim: 5 })).rejects.toThrow(`OnnxPolicy.load(${file}): mbrl.obs_dim`);
  });

  it('refuses files whose metadata or signature is wrong: no metadata, an ensemble, sizes that disagree, a missing output', async () => {
    const w = policy.getWeights();
    await expect(OnnxPolicy.load(policyToOnnx(spec, w))).rejects.toThrow(/mbrl\.what: expected "policy" or "ensemble" \(a file exported by mbrl-node\), got no such key/);
    const ens = randomEnsembleWeights({ numMembers: 2, obsDim: 3, actDim: 1, hidden: [8], activation: 'silu', probabilistic: true, learnReward: false }, new Rng(1));
    await expect(OnnxPolicy.load(ensembleToOnnx(ens, meta({ what: 'ensemble' })))).rejects.toThrow(/mbrl\.what: expected "policy", got "ensemble"/);
    // Metadata saying obs_dim 4 on a graph taking 3: never reshaped, refused.
    await expect(OnnxPolicy.load(policyToOnnx(spec, w, meta({ obsDim: 4, obsNames: undefined })))).rejects.toThrow(/input obs: expected shape \[batch, 4\] \(mbrl\.obs_dim 4 in the metadata, dynamic batch\), got \[batch, 3\]/);
    // A graph without an `action` output.
    const g = new OnnxGraphBuilder();
    const x = g.addInput('obs', 'float32', ['batch', 3]);
    g.op('Identity', [x], undefined, 'act');
    g.addOutput('act', 'float32', ['batch', 3]);
    for (const [k, v] of Object.entries(meta())) g.setMetadata(k, v);
    await expect(OnnxPolicy.load(g.encodeModel())).rejects.toThrow(/outputs: missing output "action" \(outputs: \["act"\]\)/);
    // A fixed batch size is refused too (we only write dynamic ones).
    const h = new OnnxGraphBuilder();
    const y = h.addInput('obs', 'float32', [1, 3]);
    h.op('Slice', [y, h.addInitializer('s', [0], [1]), h.addInitializer('e', [1], [1]), h.addInitializer('ax', [1], [1])], undefined, 'action');
    h.addOutput('action', 'float32', [1, 1]);
    for (const [k, v] of Object.entries(meta())) h.setMetadata(k, v);
    await expect(OnnxPolicy.load(h.encodeModel())).rejects.toThrow(/input obs: expected shape \[batch, 3\].*got \[1, 3\]/);
  });
});

describe('float32Inward', () => {
  it('rounds bounds to the float32 on their inner side', () => {
    for (const v of [0.7, 0.3, -0.3, -0.7, 2, -2, 1e-50, -1e-50, 0, 1 / 3]) {
      const up = float32Inward(v, 'up');
      const down = float32Inward(v, 'down');
      expect(up).toBeGreaterThanOrEqual(v);
      expect(down).toBeLessThanOrEqual(v);
      expect(Math.fround(up)).toBe(up);
      expect(Math.fround(down)).toBe(down);
      // The nearest such float32: one step further in would cross v.
      expect(up - down).toBeLessThanOrEqual(Math.abs(Math.fround(v)) * 2 ** -22 + 2 ** -148);
    }
    expect(float32Inward(2, 'up')).toBe(2);
    expect(float32Inward(0.7, 'down')).toBe(Math.fround(0.7));
    expect(float32Inward(0.3, 'down')).toBeLessThan(Math.fround(0.3));
  });
});
