import type { Env, TaskFunctions } from '../core/env.js';
import type { MujocoEnvOptions } from './mujocoEnv.js';

/** Options accepted by every environment factory (MuJoCo ones also read the MJCF location). */
export type MakeEnvOptions = MujocoEnvOptions;

/**
 * Static facts about a built-in task (what `mbrl envs` prints) and how to build it. The facts are
 * Gymnasium's; `test/envs/*.test.ts` checks them against a constructed instance.
 */
export interface EnvSpec {
  id: string;
  /** `classic`: pure TypeScript; `mujoco`: real MuJoCo through mujoco-js (needs an MJCF file). */
  kind: 'classic' | 'mujoco';
  obsDim: number;
  actDim: number;
  actLow: number[];
  actHigh: number[];
  /** Seconds per step. */
  dt: number;
  maxEpisodeSteps: number;
  /** The MJCF file name looked up by `resolveMjcf` (MuJoCo tasks only). */
  mjcfFile?: string;
  /** One line: what the task is and where it is defined. */
  description: string;
  /** Known reward and termination functions of (obs, action, nextObs). */
  task: TaskFunctions;
  /** Builds an instance. */
  make(options?: MakeEnvOptions): Promise<Env>;
}
