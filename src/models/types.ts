/**
 * The contracts between the dynamics ensemble (trained in tfjs), its fast forward path (an ONNX
 * graph run by onnxruntime-node), the model environment, and the planners.
 */

/** Architecture and output kind of a dynamics ensemble; everything needed to rebuild it. */
export interface EnsembleSpec {
  /** Members K (PETS/MBPO: 7; ME-TRPO/MB-MPO: 5). */
  numMembers: number;
  obsDim: number;
  actDim: number;
  /** Hidden layer widths, e.g. [200, 200, 200, 200]. */
  hidden: number[];
  /** Hidden activation. PETS/MBPO use SiLU (swish). */
  activation: 'silu' | 'relu' | 'tanh';
  /** Gaussian members (mean and log-variance, NLL loss) or deterministic (mean, MSE). */
  probabilistic: boolean;
  /** Whether the model also predicts the reward (one extra output, last). */
  learnReward: boolean;
}

/**
 * Everything that defines an ensemble's function, as plain arrays: the weights and the
 * normalisation statistics. The tfjs model exports it (`toWeights`), the ONNX writer turns it
 * into a graph, checkpoints store it. Layouts are row-major float32.
 *
 * Forward pass of member k on raw (obs, act):
 *   x = ([obs, act] − inputMean) / inputStd
 *   h_l = act(h_{l−1} · W_l[k] + b_l[k])  for the hidden layers, then the linear output layer
 *   mean_n = first outDim outputs; if probabilistic, logvar_n = next outDim outputs, soft-bounded:
 *     logvar = maxLogvar − softplus(maxLogvar − logvar_n); logvar = minLogvar + softplus(logvar − minLogvar)
 *   target = mean_n · targetStd + targetMean      (target = [Δobs, reward?])
 *   nextObs = obs + target[0..obsDim);  reward = target[obsDim] when learnReward
 *   variance (raw units) = exp(logvar) · targetStd²
 */
export interface EnsembleWeights {
  spec: EnsembleSpec;
  /** Per layer l: W_l with shape [K, in_l, out_l] flattened; the last layer's out is outDim (×2 when probabilistic). */
  weights: Float32Array[];
  /** Per layer l: b_l with shape [K, out_l] flattened. */
  biases: Float32Array[];
  /** Input normalisation, length obsDim + actDim. */
  inputMean: Float32Array;
  inputStd: Float32Array;
  /** Target normalisation, length outDim (= obsDim + (learnReward ? 1 : 0)). */
  targetMean: Float32Array;
  targetStd: Float32Array;
  /** Learned soft bounds of the log-variance, length outDim (probabilistic only). */
  maxLogvar?: Float32Array;
  minLogvar?: Float32Array;
}

/** Output width of one member: obsDim, plus 1 when the reward is learned. */
export function outDimOf(spec: EnsembleSpec): number {
  return spec.obsDim + (spec.learnReward ? 1 : 0);
}

/**
 * A batched forward pass of every member, each on its own rows: rows [k·B, (k+1)·B) go through
 * member k. This is the layout planners and model rollouts use (TS1 regroups rows by sampled
 * member each step; TS∞ keeps particle p on member p mod K).
 */
export interface EnsemblePredictor {
  readonly spec: EnsembleSpec;
  /**
   * @param obs raw observations, K·B rows of obsDim
   * @param act raw actions, K·B rows of actDim
   * @param rowsPerMember B
   * @param outNextObs receives the predicted mean next observation (raw units), K·B rows of obsDim
   * @param outReward receives the predicted mean reward (K·B) when the reward is learned
   * @param outVar receives the predicted variance of [nextObs, reward?] (raw units), K·B rows of outDim, for probabilistic members
   */
  predict(
    obs: Float32Array,
    act: Float32Array,
    rowsPerMember: number,
    outNextObs: Float32Array,
    outReward?: Float32Array,
    outVar?: Float32Array,
  ): Promise<void>;
  /** Releases native resources. */
  dispose(): void;
}

/**
 * The weights of a subset of members (e.g. the elites), in the given order: an ensemble of
 * `members.length` members with the same normalisation. Planning on the elites only is what
 * PETS/MBPO do after each fit.
 */
export function selectMembers(w: EnsembleWeights, members: readonly number[]): EnsembleWeights {
  const K = w.spec.numMembers;
  for (const k of members) {
    if (!Number.isInteger(k) || k < 0 || k >= K) throw new RangeError(`selectMembers: member ${k} is not in [0, ${K})`);
  }
  const pick = (flat: Float32Array): Float32Array => {
    const per = flat.length / K;
    const out = new Float32Array(per * members.length);
    members.forEach((k, i) => out.set(flat.subarray(k * per, (k + 1) * per), i * per));
    return out;
  };
  return {
    ...w,
    spec: { ...w.spec, hidden: [...w.spec.hidden], numMembers: members.length },
    weights: w.weights.map(pick),
    biases: w.biases.map(pick),
  };
}
