import type { Env, EnvInfo } from '../core/env.js';
import { ValidationError, checkFiniteVector } from '../core/errors.js';
import type { Box } from '../core/spaces.js';
import { makeEnv } from './registry.js';
import type { MakeEnvOptions } from './spec.js';

/** What `VecEnv.step` returns; arrays are reused by the next call. */
export interface VecStepResult {
  /** Observations after the step, row-major (numEnvs × obsDim); a finished copy's row is its reset observation. */
  obs: Float64Array;
  rewards: Float64Array;
  terminated: Uint8Array;
  truncated: Uint8Array;
  /** For each copy that finished this step, its last observation (before the automatic reset); else null. */
  finalObs: (Float64Array | null)[];
  /** For each copy that finished this step, its last step's info; else null. */
  finalInfo: (EnvInfo | null)[];
}

/**
 * N copies of one environment stepped together, for collection and evaluation, with flat
 * row-major observation and action arrays. A copy that terminates or truncates is reset at once
 * (Gymnasium's "same-step" autoreset): its row of `obs` holds the new episode's first
 * observation, and its last observation is in `finalObs`.
 *
 * Copy i is seeded with `seed + i` on `reset({ seed })`; later episodes continue each copy's own
 * generator, so a run is reproducible from one seed.
 *
 * @example
 * const vec = await VecEnv.make('Pendulum-v1', 8);
 * let obs = vec.reset({ seed: 0 });
 * const { rewards } = vec.step(new Float64Array(8 * vec.actDim));
 */
export class VecEnv {
  readonly envs: readonly Env[];
  readonly numEnvs: number;
  readonly obsDim: number;
  readonly actDim: number;
  readonly observationSpace: Box;
  readonly actionSpace: Box;
  readonly #result: VecStepResult;

  /** @param envs the copies; all must share the observation and action sizes. */
  constructor(envs: Env[]) {
    if (envs.length === 0) throw new ValidationError('VecEnv', 'envs', 'expected at least one environment');
    const first = envs[0];
    for (const [i, e] of envs.entries()) {
      if (e.observationSpace.dim !== first.observationSpace.dim || e.actionSpace.dim !== first.actionSpace.dim) {
        throw new ValidationError('VecEnv', `envs[${i}]`, `sizes (${e.observationSpace.dim}, ${e.actionSpace.dim}) differ from envs[0]'s (${first.observationSpace.dim}, ${first.actionSpace.dim})`);
      }
    }
    this.envs = envs;
    this.numEnvs = envs.length;
    this.obsDim = first.observationSpace.dim;
    this.actDim = first.actionSpace.dim;
    this.observationSpace = first.observationSpace;
    this.actionSpace = first.actionSpace;
    this.#result = {
      obs: new Float64Array(this.numEnvs * this.obsDim),
      rewards: new Float64Array(this.numEnvs),
      terminated: new Uint8Array(this.numEnvs),
      truncated: new Uint8Array(this.numEnvs),
      finalObs: new Array<Float64Array | null>(this.numEnvs).fill(null),
      finalInfo: new Array<EnvInfo | null>(this.numEnvs).fill(null),
    };
  }

  /** Builds `n` copies of a built-in task with the same options. */
  static async make(id: string, n: number, options: MakeEnvOptions = {}): Promise<VecEnv> {
    if (!Number.isInteger(n) || n <= 0) throw new ValidationError('VecEnv.make', 'n', `expected a positive integer, got ${String(n)}`);
    const envs: Env[] = [];
    try {
      for (let i = 0; i < n; i++) envs.push(await makeEnv(id, options));
    } catch (err) {
      for (const e of envs) e.close();
      throw err;
    }
    return new VecEnv(envs);
  }

  /** Resets every copy; returns the observations (numEnvs × obsDim, a fresh array). */
  reset(options: { seed?: number } = {}): Float64Array {
    const out = new Float64Array(this.numEnvs * this.obsDim);
    for (let i = 0; i < this.numEnvs; i++) {
      const { obs } = this.envs[i].reset(options.seed === undefined ? {} : { seed: options.seed + i });
      out.set(obs, i * this.obsDim);
    }
    return out;
  }

  /**
   * Steps every copy with its row of `actions` (numEnvs × actDim).
   * @throws ValidationError naming the copy and entry for a wrong length or non-finite action;
   *   no copy is stepped then.
   */
  step(actions: ArrayLike<number>): VecStepResult {
    checkFiniteVector(actions, this.numEnvs * this.actDim, 'VecEnv.step', 'actions');
    const r = this.#result;
    const a = new Float64Array(this.actDim);
    for (let i = 0; i < this.numEnvs; i++) {
      for (let j = 0; j < this.actDim; j++) a[j] = actions[i * this.actDim + j];
      const s = this.envs[i].step(a);
      r.rewards[i] = s.reward;
      r.terminated[i] = s.terminated ? 1 : 0;
      r.truncated[i] = s.truncated ? 1 : 0;
      if (s.terminated || s.truncated) {
        r.finalObs[i] = s.obs;
        r.finalInfo[i] = s.info;
        r.obs.set(this.envs[i].reset().obs, i * this.obsDim);
      } else {
        r.finalObs[i] = null;
        r.finalInfo[i] = null;
        r.obs.set(s.obs, i * this.obsDim);
      }
    }
    return r;
  }

  close(): void {
    for (const e of this.envs) e.close();
  }
}
