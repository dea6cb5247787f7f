/**
 * D4RL's reference returns and normalised score (Fu et al. 2020, https://arxiv.org/abs/2004.07219):
 *
 *   score = 100 · (return − random) / (expert − random)
 *
 * so 0 is a uniformly random policy and 100 an online-trained expert (SAC). The values are D4RL's
 * `REF_MIN_SCORE` / `REF_MAX_SCORE` (d4rl/infos.py), one pair per task, shared by all its datasets
 * (random, medium, medium-replay, medium-expert, expert; v0–v2).
 *
 * D4RL measured them on Gym's MuJoCo v2/v3 tasks; our -v5 tasks keep those tasks' reward terms
 * (forward velocity, control cost, healthy reward), so the scores are comparable in the usual
 * sense of papers that report D4RL scores on later Gym versions. Ant is left out: Ant-v5's
 * observation and contact cost differ from the task D4RL's ant references were taken on.
 */

/** A task's D4RL reference returns. */
export interface D4rlReference {
  /** D4RL's task name (the prefix of its dataset names, e.g. `halfcheetah` for `halfcheetah-medium-v2`). */
  d4rlTask: string;
  /** Mean return of the uniformly random policy (`REF_MIN_SCORE`). */
  randomReturn: number;
  /** Mean return of D4RL's expert (`REF_MAX_SCORE`). */
  expertReturn: number;
}

/** D4RL's reference returns by our task id. */
export const D4RL_REFERENCES: Readonly<Record<string, D4rlReference>> = Object.freeze({
  'HalfCheetah-v5': { d4rlTask: 'halfcheetah', randomReturn: -280.178953, expertReturn: 12135.0 },
  'Hopper-v5': { d4rlTask: 'hopper', randomReturn: -20.272305, expertReturn: 3234.3 },
  'Walker2d-v5': { d4rlTask: 'walker2d', randomReturn: 1.629008, expertReturn: 4592.3 },
});

/**
 * The D4RL-normalised score of `ret` on task `envId`, or null when the task has no reference returns.
 * @example d4rlNormalizedScore('HalfCheetah-v5', 5000) // ≈ 42.9
 */
export function d4rlNormalizedScore(envId: string, ret: number): number | null {
  const ref = D4RL_REFERENCES[envId];
  if (!ref) return null;
  return (100 * (ret - ref.randomReturn)) / (ref.expertReturn - ref.randomReturn);
}
