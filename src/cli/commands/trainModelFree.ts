import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { makePpoConfig, trainPpo, type PpoConfig, type PpoIterationMetrics, type PpoOverrides, type PpoState } from '../../algorithms/ppo.js';
import { makeTrpoConfig, trainTrpo, type TrpoConfig, type TrpoIterationMetrics, type TrpoOverrides, type TrpoState } from '../../algorithms/trpo.js';
import type { Env } from '../../core/env.js';
import { initBackend } from '../../core/backend.js';
import { writeFileAtomic } from '../../data/atomicWrite.js';
import { makeEnv } from '../../envs/registry.js';
import { makePolicySpec, type GaussianMlpPolicySpec } from '../../policies/gaussianMlpPolicy.js';
import { CheckpointError, savePolicyCheckpoint, type PolicyCheckpoint, type PolicyRunConfig } from '../checkpoint.js';
import { openPolicyRun } from '../policyRun.js';
import { linePlotSvg } from '../svgPlot.js';

/** The model-free algorithms that `mbrl train --algo` runs. */
export const MODEL_FREE_ALGOS = ['trpo', 'ppo'] as const;
export type ModelFreeAlgo = (typeof MODEL_FREE_ALGOS)[number];

type AnyConfig = TrpoConfig | PpoConfig;
type AnyState = TrpoState | PpoState;
type AnyMetrics = TrpoIterationMetrics | PpoIterationMetrics;

/** A run state less what the checkpoint keeps elsewhere (the config, env steps, and the policy in `policy.bin`). */
type SavedState = Omit<TrpoState, 'config' | 'envSteps' | 'policy'> | Omit<PpoState, 'config' | 'envSteps' | 'policy'>;

/** The fields a checkpoint's `state` must have to resume each algorithm. */
const SAVED_FIELDS: Record<ModelFreeAlgo, readonly string[]> = {
  trpo: ['iteration', 'episodes', 'baseline', 'obsNormalizer', 'rng', 'envs', 'history'],
  ppo: ['iteration', 'episodes', 'valueFunction', 'optimizer', 'obsNormalizer', 'rng', 'envs', 'history'],
};

/**
 * `mbrl train --algo trpo|ppo`: model-free TRPO or PPO on `numEnvs` copies of a built-in
 * simulator, with a checkpoint after every iteration (policy, baseline or value function, the
 * optimizer, observation statistics, RNG state, where the environments stand, history),
 * metrics.jsonl and curve.svg (training-episode return), and `--resume`, which continues exactly
 * as the uninterrupted run would have.
 */
export async function runModelFree(algo: ModelFreeAlgo, values: Record<string, unknown>): Promise<number> {
  const make = (o: Record<string, unknown>): AnyConfig => (algo === 'trpo' ? makeTrpoConfig(o as TrpoOverrides) : makePpoConfig(o as PpoOverrides));
  const { runDir, config, ckpt } = await openPolicyRun(algo, values, make);
  const resume = ckpt ? resumeState(algo, config, ckpt, runDir) : undefined;
  await mkdir(runDir, { recursive: true });
  await initBackend();
  const envs: Env[] = [];
  try {
    for (let i = 0; i < config.numEnvs; i++) {
      envs.push(
        await makeEnv(config.env, {
          physics: config.physics,
          ...(config.maxEpisodeSteps ? { maxEpisodeSteps: config.maxEpisodeSteps } : {}),
          ...(values['mjcf-dir'] ? { mjcfDir: values['mjcf-dir'] as string } : {}),
        }),
      );
    }
    const policySpec = makePolicySpec({ obsDim: envs[0].observationSpace.dim, actionSpace: envs[0].actionSpace, ...config.policy });
    await writeFileAtomic(join(runDir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    const log = (line: string): void => {
      if (!values.quiet) process.stderr.write(`${line}\n`);
    };
    log(`mbrl train: ${config.env}, ${algo}, ${config.steps} steps, seed ${config.seed}, ${config.numEnvs} env copies, run dir ${runDir}${resume ? ` (resumed at ${resume.envSteps} steps)` : ''}`);
    const onCheckpoint = (st: AnyState): Promise<void> => writeRun(runDir, algo, policySpec, st);
    const result =
      algo === 'trpo'
        ? await trainTrpo(config as TrpoConfig, envs, { log, onCheckpoint }, resume as TrpoState | undefined)
        : await trainPpo(config as PpoConfig, envs, { log, onCheckpoint }, resume as PpoState | undefined);
    result.policy.dispose();
    if ('valueFunction' in result) result.valueFunction.dispose();
    else result.baseline.dispose?.();
    const last = result.history[result.history.length - 1];
    process.stdout.write(`${JSON.stringify({ runDir, envSteps: result.state.envSteps, iterations: result.state.iteration, lastReturn: last?.meanReturn ?? null })}\n`);
    return 0;
  } finally {
    for (const e of envs) e.close();
  }
}

/** The run state of a checkpoint, with `config` (the checkpoint's, `steps` possibly raised). */
function resumeState(algo: ModelFreeAlgo, config: AnyConfig, ckpt: PolicyCheckpoint, runDir: string): AnyState {
  const missing = SAVED_FIELDS[algo].filter((k) => ckpt.state[k] === undefined);
  if (missing.length > 0) throw new CheckpointError(`${runDir}: the checkpoint's state lacks ${missing.join(', ')}, needed to resume ${algo}`);
  return { ...(ckpt.state as unknown as SavedState), config, envSteps: ckpt.envSteps, policy: ckpt.policyWeights } as AnyState;
}

/** The checkpoint (atomically), then metrics.jsonl and curve.svg rewritten from the history. */
async function writeRun(runDir: string, algo: ModelFreeAlgo, policySpec: GaussianMlpPolicySpec, st: AnyState): Promise<void> {
  const { config, envSteps, policy, ...saved } = st;
  await savePolicyCheckpoint(runDir, {
    config: config as unknown as PolicyRunConfig,
    envSteps,
    policySpec,
    policyWeights: policy,
    ensemble: null,
    state: saved as unknown as Record<string, unknown>,
  });
  const history: AnyMetrics[] = st.history;
  await writeFileAtomic(join(runDir, 'metrics.jsonl'), history.map((h) => JSON.stringify(h)).join('\n') + '\n');
  const svg = linePlotSvg(
    [{ label: `${algo} seed ${config.seed} (training episodes)`, points: history.filter((h) => h.meanReturn !== null).map((h) => [h.envSteps, h.meanReturn as number]) }],
    { title: `${config.env}: episode return`, xLabel: 'environment steps', yLabel: 'episode return' },
  );
  await writeFileAtomic(join(runDir, 'curve.svg'), svg);
}
