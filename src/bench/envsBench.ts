import { RandomAgent } from '../core/agent.js';
import { Rng } from '../core/rng.js';
import { MjcfNotFoundError } from '../envs/mujocoRuntime.js';
import { ENV_SPECS } from '../envs/registry.js';
import type { MakeEnvOptions } from '../envs/spec.js';
import { VecEnv } from '../envs/vecEnv.js';

/** Options of the `envs` speed benchmark. */
export interface EnvsBenchOptions {
  /** Task ids; default every built-in task. */
  ids?: string[];
  /** Seconds of stepping per measurement. Default 1. */
  seconds?: number;
  /** Copies in the vectorised measurement. Default 8. */
  numEnvs?: number;
  /** Where MJCF files are (else `$MBRL_MJCF_DIR`). */
  mjcfDir?: string;
  /** Progress lines go here. */
  log?: (line: string) => void;
}

/**
 * Environment steps per second with uniform random actions (resets included), single and
 * vectorised (`numEnvs` copies stepped together; the figure counts every copy's steps).
 * Figures: `<envId>.stepsPerSec`, `<envId>.vecStepsPerSec`.
 */
export async function benchEnvs(options: EnvsBenchOptions = {}): Promise<{ metrics: Record<string, number>; skipped: Record<string, string> }> {
  const seconds = options.seconds ?? 1;
  const numEnvs = options.numEnvs ?? 8;
  const log = options.log ?? (() => {});
  const make: MakeEnvOptions = options.mjcfDir !== undefined ? { mjcfDir: options.mjcfDir } : {};
  const specs = options.ids ? ENV_SPECS.filter((s) => options.ids?.includes(s.id)) : ENV_SPECS;
  const metrics: Record<string, number> = {};
  const skipped: Record<string, string> = {};
  for (const spec of specs) {
    let vec: VecEnv;
    try {
      vec = await VecEnv.make(spec.id, numEnvs, make);
    } catch (err) {
      if (err instanceof MjcfNotFoundError) {
        skipped[spec.id] = `MJCF file ${spec.mjcfFile ?? ''} not found (set MBRL_MJCF_DIR or --mjcf-dir)`;
        log(`${spec.id}: skipped (${skipped[spec.id]})`);
        continue;
      }
      throw err;
    }
    try {
      const rng = new Rng(0);
      const single = vec.envs[0];
      const agent = new RandomAgent(single.actionSpace, rng);
      // Single environment.
      let steps = 0;
      single.reset({ seed: 0 });
      const t0 = performance.now();
      let deadline = t0 + seconds * 1000;
      while (performance.now() < deadline) {
        for (let k = 0; k < 100; k++) {
          const s = single.step(agent.act());
          if (s.terminated || s.truncated) single.reset();
        }
        steps += 100;
      }
      metrics[`${spec.id}.stepsPerSec`] = steps / ((performance.now() - t0) / 1000);
      // Vectorised.
      const actions = new Float64Array(numEnvs * vec.actDim);
      vec.reset({ seed: 0 });
      let vecSteps = 0;
      const t1 = performance.now();
      deadline = t1 + seconds * 1000;
      while (performance.now() < deadline) {
        for (let k = 0; k < 10; k++) {
          for (let i = 0; i < numEnvs; i++) actions.set(agent.act(), i * vec.actDim);
          vec.step(actions);
        }
        vecSteps += 10 * numEnvs;
      }
      metrics[`${spec.id}.vecStepsPerSec`] = vecSteps / ((performance.now() - t1) / 1000);
      log(`${spec.id}: ${Math.round(metrics[`${spec.id}.stepsPerSec`])} steps/s single, ${Math.round(metrics[`${spec.id}.vecStepsPerSec`])} steps/s x${numEnvs}`);
    } finally {
      vec.close();
    }
  }
  return { metrics, skipped };
}
