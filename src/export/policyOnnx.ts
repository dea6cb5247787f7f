/**
 * A Gaussian MLP policy (`src/policies/gaussianMlpPolicy.ts`) as an ONNX graph: a deterministic
 * controller whose observation normalisation, network, squashing and scaling to the action bounds
 * all live inside the graph, so a deployer feeds raw observations and gets actions that are inside
 * the bounds — the step that exports which leave clipping to the user get wrong.
 *
 * Graph (the forward definition documented on `PolicyWeights`):
 *   x      = Clip((obs − obsMean) / obsStd, −obsClip, obsClip)            (no Clip when obsClip is null)
 *   h      = act(Gemm(h, W_i, b_i)) per hidden layer (bias fused into the GEMM)
 *   out    = Gemm(h, W_L, b_L)
 *   mean   = out[:, :actDim];  logStd = clip(out[:, actDim:], logStdMin, logStdMax) (state mode)
 *   g      = mean (clip) | Tanh(mean) (tanh)
 *   action = Min(Max(g · half + mid, low), high) — for clip this is mid + half · clip(mean, −1, 1);
 *            low and high are the bounds rounded inwards to float32 (0.3 → 0.29999998), so every
 *            action lies inside the float64 bounds, exactly
 * The one exception is a NaN observation, which gives NaN actions (as the weights are checked
 * finite and the observation clip bounds every other input, nothing else can): no action is right
 * for it, and a NaN guard in the graph (IsNaN + Where) cost 2.5 µs of a 16 µs batch-1 call, so
 * `OnnxPolicy` refuses NaN observations instead, naming the entry.
 * Inputs: `obs` [batch, obsDim] float32 (dynamic batch). Outputs: `action` [batch, actDim]; with
 * `stochastic`, also `mean` and `log_std` [batch, actDim] in normalised action units (the sample
 * `u ~ N(mean, exp(log_std)²)` is an action through the same `g` and scaling).
 */
import { ValidationError } from '../core/errors.js';
import { checkPolicySpec, checkPolicyWeights, policyHeadDim, type GaussianMlpPolicySpec, type PolicyWeights } from '../policies/gaussianMlpPolicy.js';
import { attr, OnnxGraphBuilder } from './onnxWriter.js';

/** Name of the dynamic batch dimension of policy graphs. */
export const POLICY_BATCH_DIM = 'batch';

/** Graph input and output names of an exported policy. */
export const POLICY_ONNX_NAMES = { obs: 'obs', action: 'action', mean: 'mean', logStd: 'log_std' } as const;

/** Options of `policyToOnnx`. */
export interface PolicyToOnnxOptions {
  /** Also output the Gaussian's `mean` and `log_std` (normalised action units). @default false */
  stochastic?: boolean;
}

/**
 * Builds the ONNX model of a Gaussian MLP policy (see the file comment for the graph).
 * `mbrl.kind` = `gaussian-mlp-policy` and `mbrl.spec` (the spec as JSON) are always written;
 * `meta` adds the deployment metadata (see `exportMetadataProps` and docs/onnx-export.md).
 * @param meta metadata_props entries, e.g. from `exportMetadataProps({ what: 'policy', ... })`
 * @param options.stochastic default false
 * @throws ValidationError when `weights` do not fit `spec`
 * @example
 * const bytes = policyToOnnx(policy.spec, policy.getWeights(), exportMetadataProps({ what: 'policy', envId: 'Pendulum-v1', ... }));
 * await writeFileAtomic('policy.onnx', bytes);
 */
export function policyToOnnx(
  spec: GaussianMlpPolicySpec,
  weights: PolicyWeights,
  meta: Readonly<Record<string, string>> = {},
  options: PolicyToOnnxOptions = {},
): Uint8Array {
  checkPolicySpec(spec);
  checkPolicyWeights(spec, weights);
  const stochastic = options.stochastic ?? false;
  if (typeof stochastic !== 'boolean') throw new ValidationError('policyToOnnx', 'options.stochastic', `expected true or false, got ${String(stochastic)}`);
  const { obsDim, actDim: A } = spec;
  const B = POLICY_BATCH_DIM;
  const N = POLICY_ONNX_NAMES;
  const g = new OnnxGraphBuilder({ graphName: 'gaussian_mlp_policy', docString: 'mbrl-node Gaussian MLP policy (deterministic action; see mbrl.* metadata)' });
  const scalar = (name: string, v: number): string => g.addInitializer(name, new Float32Array([v]), []);
  const vector = (name: string, v: ArrayLike<number>): string => g.addInitializer(name, Float32Array.from(v), [v.length]);

  const obs = g.addInput(N.obs, 'float32', [B, obsDim]);
  // Div (not a multiply by 1/std) so the rounding is the tfjs policy's.
  let x = g.op('Div', [g.op('Sub', [obs, vector('obs_mean', weights.obsMean)]), vector('obs_std', weights.obsStd)]);
  if (spec.obsClip !== null) x = g.op('Clip', [x, scalar('obs_clip_min', -spec.obsClip), scalar('obs_clip_max', spec.obsClip)]);

  const dims = [obsDim, ...spec.hidden, policyHeadDim(spec)];
  let h = x;
  weights.layers.forEach((layer, l) => {
    const W = g.addInitializer(`W${l}`, layer.W, [dims[l], dims[l + 1]]);
    const b = g.addInitializer(`b${l}`, layer.b, [dims[l + 1]]);
    const z = g.op('Gemm', [h, W, b]);
    h = l === weights.layers.length - 1 ? z : g.op(spec.activation === 'tanh' ? 'Tanh' : 'Relu', [z]);
  });

  let mean = h;
  let logStdHead = '';
  if (spec.stdMode === 'state') {
    [mean, logStdHead] = g.addNode('Split', [h, g.addInitializer('split_mean_log_std', [A, A], [2])], { outputs: 2, attributes: { axis: attr.int(1) } });
  }

  // The clamp to the bounds is needed anyway (float32 rounding of mid + half·g can overstep them,
  // and onnxruntime's tanh can return 1 + 1 ulp); for clip it also does the clip, since
  // min(max(mid + half·mean, low), high) = mid + half·clip(mean, −1, 1).
  const squashed = spec.squash === 'tanh' ? g.op('Tanh', [mean]) : mean;
  const mid = spec.actionLow.map((lo, j) => (spec.actionHigh[j] + lo) / 2);
  const half = spec.actionLow.map((lo, j) => (spec.actionHigh[j] - lo) / 2);
  const scaled = g.op('Add', [g.op('Mul', [squashed, vector('action_half_range', half)]), vector('action_mid', mid)]);
  const low = g.addInitializer('action_low', Float32Array.from(spec.actionLow, (v) => float32Inward(v, 'up')), [A]);
  const high = g.addInitializer('action_high', Float32Array.from(spec.actionHigh, (v) => float32Inward(v, 'down')), [A]);
  g.op('Min', [g.op('Max', [scaled, low]), high], undefined, N.action);
  g.addOutput(N.action, 'float32', [B, A]);

  if (stochastic) {
    g.op('Identity', [mean], undefined, N.mean);
    g.addOutput(N.mean, 'float32', [B, A]);
    if (spec.stdMode === 'state') {
      g.op('Clip', [logStdHead, scalar('log_std_min', spec.logStdMin), scalar('log_std_max', spec.logStdMax)], undefined, N.logStd);
    } else {
      // Broadcast the state-independent log-std to [batch, actDim] (Expand to [Shape(obs)[0], actDim]).
      const batch = g.op('Shape', [obs], { start: attr.int(0), end: attr.int(1) });
      const shape = g.op('Concat', [batch, g.addInitializer('act_dim', [A], [1])], { axis: attr.int(0) });
      g.op('Expand', [vector('log_std_param', weights.logStd as Float32Array), shape], undefined, N.logStd);
    }
    g.addOutput(N.logStd, 'float32', [B, A]);
  }

  g.setMetadata('mbrl.kind', spec.kind);
  g.setMetadata('mbrl.spec', JSON.stringify(spec));
  for (const [key, value] of Object.entries(meta)) g.setMetadata(key, value);
  return g.encodeModel();
}

/**
 * The float32 nearest to `v` on the inner side: `up` gives the smallest float32 ≥ v, `down` the
 * largest ≤ v (so a float32 action clamped to them is inside the float64 bounds).
 */
export function float32Inward(v: number, direction: 'up' | 'down'): number {
  const f = Math.fround(v);
  if (f === v || !Number.isFinite(f)) return f;
  if (direction === 'up' ? f > v : f < v) return f;
  // One float32 step towards the inside: adjust the bit pattern's magnitude.
  const bits = new Float32Array([f]);
  const int = new Int32Array(bits.buffer);
  const towardZero = direction === 'up' ? f < 0 : f > 0;
  int[0] += towardZero ? -1 : 1;
  return bits[0];
}
