import { makeMbMpoConfig, trainMbMpo } from '../algorithms/mbMpo.js';
import { makeMeTrpoConfig, trainMeTrpo } from '../algorithms/meTrpo.js';
import { meanActionSampler } from '../algorithms/modelRollouts.js';
import { collectRollouts, EnvRolloutSource, makeEnvCopies, meanOrNull } from '../algorithms/policyGradient.js';
import { makeTrpoConfig, trainTrpo } from '../algorithms/trpo.js';
import { Rng } from '../core/rng.js';
import { makeEnv } from '../envs/registry.js';

/** Options of `benchSampleEfficiency`. */
export interface SampleEfficiencyOptions {
  env?: string;
  seed?: number;
  /** Real steps of the model-based runs. @default 3000 */
  modelBasedSteps?: number;
  /** Real steps of model-free TRPO. @default 40000 */
  modelFreeSteps?: number;
  /** Directory of Gymnasium MJCF files. */
  mjcfDir?: string;
  log?: (line: string) => void;
}

/** One algorithm's learning curve: [real env steps, mean deterministic evaluation return]. */
export type Curve = [number, number][];

export interface SampleEfficiencyResult {
  env: string;
  seed: number;
  curves: { 'mb-mpo': Curve; 'me-trpo': Curve; trpo: Curve };
  /**
   * For each model-based algorithm: the best evaluation return R it reached and the steps it
   * took (N_mb), the steps model-free TRPO took to first reach R (N_mf; null if it never did
   * within its budget), and N_mf / N_mb.
   */
  comparison: Record<'mb-mpo' | 'me-trpo', Comparison>;
}

/** How a model-based curve compares with TRPO's. */
export interface Comparison {
  /** At the model-based run's best evaluation: its return, its steps, TRPO's steps to first reach it, their ratio. */
  target: number;
  modelBasedSteps: number;
  modelFreeSteps: number | null;
  ratio: number | null;
  /** The same at every evaluation of the model-based run (ratio null where TRPO never reached it). */
  points: { steps: number; return: number; trpoSteps: number | null; ratio: number | null }[];
}

/**
 * The model-based methods' claim of sample efficiency, measured side by side on one task: MB-MPO
 * and ME-TRPO against model-free TRPO (same policy architecture, deterministic evaluation over 3
 * seeded episodes after every iteration, evaluation steps not counted).
 */
export async function benchSampleEfficiency(options: SampleEfficiencyOptions = {}): Promise<SampleEfficiencyResult> {
  const log = options.log ?? (() => {});
  const envId = options.env ?? 'InvertedPendulum-v5';
  const seed = options.seed ?? 1;
  const mk = options.mjcfDir ? { mjcfDir: options.mjcfDir } : {};
  const evalEnv = await makeEnv(envId, mk);

  const mbMpo: Curve = [];
  {
    const config = makeMbMpoConfig({ env: envId, seed, steps: options.modelBasedSteps ?? 3000 });
    const env = await makeEnv(envId, mk);
    await trainMbMpo(config, env, { log, onIteration: (m) => void mbMpo.push([m.envSteps, m.evalReturn ?? NaN]) });
    env.close();
  }
  const meTrpo: Curve = [];
  {
    const config = makeMeTrpoConfig({ env: envId, seed, steps: options.modelBasedSteps ?? 3000 });
    const env = await makeEnv(envId, mk);
    await trainMeTrpo(config, env, { log, onIteration: (m) => void meTrpo.push([m.envSteps, m.evalReturn ?? NaN]) });
    env.close();
  }
  const trpo: Curve = [];
  {
    const config = makeTrpoConfig({ env: envId, seed, steps: options.modelFreeSteps ?? 40_000 });
    const envs = await makeEnvCopies(config);
    const evalRng = new Rng(seed, 9);
    await trainTrpo(config, envs, {
      onIteration: async (m, policy) => {
        const ev = await collectRollouts(new EnvRolloutSource(evalEnv, { seed: 1_000_000 + m.iteration }), meanActionSampler(policy), evalRng, { episodes: 3 });
        trpo.push([m.envSteps, meanOrNull(ev.episodeReturns) ?? NaN]);
        if (m.iteration % 5 === 0) log(`trpo: ${m.envSteps} steps, eval ${trpo[trpo.length - 1][1].toFixed(1)}`);
      },
    });
    for (const e of envs) e.close();
  }
  evalEnv.close();

  const trpoSteps = (r: number): number | null => trpo.find((p) => p[1] >= r)?.[0] ?? null;
  const compare = (curve: Curve): Comparison => {
    let best: [number, number] = curve[0];
    for (const p of curve) if (p[1] > best[1]) best = p;
    const hit = trpoSteps(best[1]);
    const points = curve.map(([steps, r]) => {
      const t = trpoSteps(r);
      return { steps, return: r, trpoSteps: t, ratio: t === null ? null : t / steps };
    });
    return { target: best[1], modelBasedSteps: best[0], modelFreeSteps: hit, ratio: hit === null ? null : hit / best[0], points };
  };
  return { env: envId, seed, curves: { 'mb-mpo': mbMpo, 'me-trpo': meTrpo, trpo }, comparison: { 'mb-mpo': compare(mbMpo), 'me-trpo': compare(meTrpo) } };
}
