import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { makeMbMpoConfig, trainMbMpo, type MbMpoConfig, type MbMpoIterationMetrics, type MbMpoOverrides, type MbMpoState } from '../../algorithms/mbMpo.js';
import { makeModelGradientConfig, trainModelGradient, type ModelGradientConfig, type ModelGradientIterationMetrics, type ModelGradientOverrides, type ModelGradientState } from '../../algorithms/modelGradient.js';
import { makeMeTrpoConfig, trainMeTrpo, type MeTrpoConfig, type MeTrpoIterationMetrics, type MeTrpoOverrides, type MeTrpoState } from '../../algorithms/meTrpo.js';
import { initBackend } from '../../core/backend.js';
import type { RngState } from '../../core/rng.js';
import { writeFileAtomic } from '../../data/atomicWrite.js';
import { makeEnv } from '../../envs/registry.js';
import { makePolicySpec } from '../../policies/gaussianMlpPolicy.js';
import { CheckpointError, savePolicyCheckpoint } from '../checkpoint.js';
import { openPolicyRun } from '../policyRun.js';
import { linePlotSvg } from '../svgPlot.js';

/** The model-based algorithms with a learned policy that `mbrl train --algo` runs. */
export const POLICY_ALGOS = ['me-trpo', 'mb-mpo', 'model-gradient'] as const;
export type PolicyAlgo = (typeof POLICY_ALGOS)[number];

type AnyConfig = MeTrpoConfig | MbMpoConfig | ModelGradientConfig;
type AnyState = MeTrpoState | MbMpoState | ModelGradientState;
type AnyMetrics = MeTrpoIterationMetrics | MbMpoIterationMetrics | ModelGradientIterationMetrics;

/** What the checkpoint's `state` holds besides the models and the buffer. */
interface SavedState {
  iteration: number;
  startStates: number[];
  rng: RngState;
  history: AnyMetrics[];
}

/**
 * `mbrl train --algo me-trpo|mb-mpo|model-gradient`: the run loop with a checkpoint (policy, ensemble, buffer,
 * RNG state, history) after every iteration, metrics.jsonl and curve.svg, and `--resume`.
 */
export async function runPolicyAlgo(algo: PolicyAlgo, values: Record<string, unknown>): Promise<number> {
  const make = (o: Record<string, unknown>): AnyConfig =>
    algo === 'me-trpo' ? makeMeTrpoConfig(o as MeTrpoOverrides) : algo === 'mb-mpo' ? makeMbMpoConfig(o as MbMpoOverrides) : makeModelGradientConfig(o as ModelGradientOverrides);
  const { runDir, config, ckpt: resumeCkpt } = await openPolicyRun(algo, values, make);
  await mkdir(runDir, { recursive: true });
  await initBackend();
  const env = await makeEnv(config.env, {
    physics: config.physics,
    ...(config.maxEpisodeSteps ? { maxEpisodeSteps: config.maxEpisodeSteps } : {}),
    ...(values['mjcf-dir'] ? { mjcfDir: values['mjcf-dir'] as string } : {}),
  });
  const policySpec = makePolicySpec({ obsDim: env.observationSpace.dim, actionSpace: env.actionSpace, ...config.policy });
  await writeFileAtomic(join(runDir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  const log = (line: string): void => {
    if (!values.quiet) process.stderr.write(`${line}\n`);
  };
  let resume: AnyState | undefined;
  if (resumeCkpt) {
    const saved = resumeCkpt.state as unknown as SavedState;
    if (!resumeCkpt.buffer || !Array.isArray(saved.startStates) || !Array.isArray(saved.history) || typeof saved.iteration !== 'number') {
      throw new CheckpointError(`${runDir}: the checkpoint lacks the buffer or the run state (iteration, startStates, history) needed to resume ${algo}`);
    }
    resume = {
      config,
      envSteps: resumeCkpt.envSteps,
      iteration: saved.iteration,
      buffer: resumeCkpt.buffer,
      startStates: saved.startStates,
      policy: resumeCkpt.policyWeights,
      ensemble: resumeCkpt.ensemble,
      rng: saved.rng,
      history: saved.history,
    } as AnyState;
  }
  log(`mbrl train: ${config.env}, ${algo}, ${config.steps} steps, seed ${config.seed}, run dir ${runDir}${resume ? ` (resumed at ${resume.envSteps} steps)` : ''}`);
  const onIteration = async (m: AnyMetrics, st: AnyState): Promise<void> => {
    const saved: SavedState = { iteration: st.iteration, startStates: st.startStates, rng: st.rng, history: st.history };
    await savePolicyCheckpoint(runDir, {
      config: st.config as unknown as Parameters<typeof savePolicyCheckpoint>[1]['config'],
      envSteps: st.envSteps,
      policySpec,
      policyWeights: st.policy,
      ensemble: st.ensemble,
      state: saved as unknown as Record<string, unknown>,
      buffer: st.buffer,
    });
    await writeFileAtomic(join(runDir, 'metrics.jsonl'), st.history.map((h) => JSON.stringify(h)).join('\n') + '\n');
    const svg = linePlotSvg(
      [{ label: `${algo} seed ${st.config.seed} (deterministic policy)`, points: st.history.filter((h) => h.evalReturn !== null).map((h) => [h.envSteps, h.evalReturn as number]) }],
      { title: `${st.config.env}: evaluation return`, xLabel: 'environment steps', yLabel: 'episode return' },
    );
    await writeFileAtomic(join(runDir, 'curve.svg'), svg);
    void m;
  };
  try {
    const state =
      algo === 'me-trpo'
        ? await trainMeTrpo(config as MeTrpoConfig, env, { log, onIteration }, resume as MeTrpoState | undefined)
        : algo === 'mb-mpo'
          ? await trainMbMpo(config as MbMpoConfig, env, { log, onIteration }, resume as MbMpoState | undefined)
          : await trainModelGradient(config as ModelGradientConfig, env, { log, onIteration }, resume as ModelGradientState | undefined);
    const last = state.history[state.history.length - 1];
    process.stdout.write(`${JSON.stringify({ runDir, envSteps: state.envSteps, iterations: state.iteration, lastEvalReturn: last?.evalReturn ?? null })}\n`);
    return 0;
  } finally {
    env.close();
  }
}
