/**
 * A state-value estimate V(s) for advantage estimation: `LinearFeatureBaseline` (rllab's, used
 * by the original TRPO, ME-TRPO and MB-MPO code) or `MlpValueFunction`.
 */
export interface Baseline {
  /**
   * V(s) for `n` rows.
   * @param obs raw observations, row-major [n, obsDim]
   * @param timesteps steps since each row's episode began (used by the linear baseline's time features)
   */
  predict(obs: ArrayLike<number>, timesteps: ArrayLike<number>, n: number): Float64Array;
  /** Regresses V on `targets` (e.g. GAE's λ-returns); returns the mean squared error before the fit. */
  fit(obs: ArrayLike<number>, timesteps: ArrayLike<number>, targets: ArrayLike<number>, n: number): number;
  /** The observation normalisation the policy uses (baselines that work on raw observations ignore it). */
  setObsNormalization?(mean: ArrayLike<number>, std: ArrayLike<number>): void;
  dispose?(): void;
}
