import type { TaskFunctions } from '../core/env.js';
import type { RewardFn, TerminatedFn } from './assembleTransitions.js';

/**
 * One-step reward and termination from a task's batched functions (`envSpec(id).task`), for
 * `assembleTransitions`.
 * @example const { reward, terminated } = taskStepFunctions(envSpec('Pendulum-v1').task);
 */
export function taskStepFunctions(task: TaskFunctions): { reward: RewardFn; terminated: TerminatedFn } {
  const r = new Float64Array(1);
  const done = new Uint8Array(1);
  return {
    reward(obs, action, nextObs) {
      task.reward(obs, action, nextObs, 1, r);
      return r[0];
    },
    terminated(obs, action, nextObs) {
      task.terminated(obs, action, nextObs, 1, done);
      return done[0] === 1;
    },
  };
}
