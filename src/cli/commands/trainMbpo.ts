import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { makeMbpoConfig, modelBufferCapacity, trainMbpo, type MbpoConfig, type MbpoEpisodeMetrics, type MbpoOverrides, type MbpoState } from '../../algorithms/mbpo.js';
import { sacStatePolicy, type SacAgentState } from '../../algorithms/sac.js';
import { initBackend } from '../../core/backend.js';
import type { RngState } from '../../core/rng.js';
import { writeFileAtomic } from '../../data/atomicWrite.js';
import { ReplayBuffer } from '../../data/replayBuffer.js';
import { allocBatch } from '../../data/transition.js';
import { makeEnv } from '../../envs/registry.js';
import { CheckpointError, savePolicyCheckpoint, type PolicyCheckpoint, type PolicyRunConfig } from '../checkpoint.js';
import { openPolicyRun } from '../policyRun.js';
import { linePlotSvg } from '../svgPlot.js';

/**
 * The model buffer's rows, oldest first, as float32 columns (`state.bin`); the flags as 0/1.
 * Episode ids and stamps are not kept: model rows carry none (all 0).
 */
interface SavedModelBuffer {
  size: number;
  obs: Float32Array;
  action: Float32Array;
  reward: Float32Array;
  nextObs: Float32Array;
  terminated: Float32Array;
  truncated: Float32Array;
}

/**
 * The checkpoint's `state`: what a resume needs besides the policy (`policy.bin`), the ensemble
 * (`weights.bin`) and the real buffer (`buffer/`). The SAC agent's state is stored as it is: its
 * networks and Adam moments are Float32Arrays, which `savePolicyCheckpoint` puts in `state.bin`
 * (MOPO's checkpoints predate that and pack them as base64 in the JSON).
 */
interface SavedState {
  episodes: number;
  agent: SacAgentState;
  elites: number[] | null;
  rolloutLength: number;
  rng: RngState;
  history: MbpoEpisodeMetrics[];
  modelBuffer: SavedModelBuffer;
}

const SAVED_FIELDS: readonly (keyof SavedState)[] = ['episodes', 'agent', 'elites', 'rolloutLength', 'rng', 'history', 'modelBuffer'];

/**
 * `mbrl train --algo mbpo`: online MBPO (`algorithms/mbpo.ts`) on a built-in simulator, with a
 * checkpoint after every real episode (SAC's actor as the policy, so `mbrl export` and
 * `mbrl eval --checkpoint` read it as any other; the ensemble; the real and model buffers; the
 * SAC learner's full state; RNG state and history), metrics.jsonl, curve.svg (training and
 * evaluation returns) and `--resume`, which continues exactly as the uninterrupted run would have
 * (`--steps` may be raised).
 */
export async function runMbpo(values: Record<string, unknown>): Promise<number> {
  const { runDir, config, ckpt } = await openPolicyRun('mbpo', values, (o) => makeMbpoConfig(o as MbpoOverrides));
  // The state as saved, its own config included: trainMbpo checks that only `steps` differs and
  // grows the real buffer to a raised budget.
  const resume = ckpt ? resumeState(makeMbpoConfig(ckpt.config as unknown as MbpoOverrides), ckpt, runDir) : undefined;
  await mkdir(runDir, { recursive: true });
  await initBackend();
  const env = await makeEnv(config.env, {
    physics: config.physics,
    ...(config.maxEpisodeSteps ? { maxEpisodeSteps: config.maxEpisodeSteps } : {}),
    ...(values['mjcf-dir'] ? { mjcfDir: values['mjcf-dir'] as string } : {}),
  });
  try {
    await writeFileAtomic(join(runDir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    const log = (line: string): void => {
      if (!values.quiet) process.stderr.write(`${line}\n`);
    };
    log(`mbrl train: ${config.env}, mbpo, ${config.steps} steps, seed ${config.seed}, run dir ${runDir}${resume ? ` (resumed at ${resume.envSteps} steps)` : ''}`);
    const { state, agent } = await trainMbpo(config, env, { log, onEpisode: (_m, st) => writeRun(runDir, st) }, resume);
    agent.dispose();
    const last = state.history[state.history.length - 1];
    const lastEval = [...state.history].reverse().find((h) => h.evalReturn !== null);
    process.stdout.write(`${JSON.stringify({ runDir, envSteps: state.envSteps, episodes: state.episodes, lastReturn: last?.return ?? null, lastEvalReturn: lastEval?.evalReturn ?? null })}\n`);
    return 0;
  } finally {
    env.close();
  }
}

/** The run state of a checkpoint, with `config` (the checkpoint's). */
function resumeState(config: MbpoConfig, ckpt: PolicyCheckpoint, runDir: string): MbpoState {
  const saved = ckpt.state as unknown as Partial<SavedState>;
  const missing = SAVED_FIELDS.filter((k) => saved[k] === undefined);
  if (missing.length > 0) throw new CheckpointError(`${runDir}: the checkpoint's state lacks ${missing.join(', ')}, needed to resume mbpo`);
  if (!ckpt.buffer) throw new CheckpointError(`${runDir}: the checkpoint has no buffer/ (the real transitions), needed to resume mbpo`);
  if ((ckpt.ensemble === null) !== (saved.elites === null)) throw new CheckpointError(`${runDir}: the checkpoint has ${ckpt.ensemble ? 'an ensemble but no elites' : 'elites but no ensemble (weights.bin)'}`);
  const s = saved as SavedState;
  const { obsDim, actDim } = ckpt.buffer;
  // Sampling sees rows by logical index only, so copying them oldest first into a buffer of the
  // live run's capacity restores it exactly (the loader sizes it by `bufferCapacity`).
  const buffer = new ReplayBuffer({ obsDim, actDim, capacity: Math.min(config.bufferCapacity, config.steps) });
  if (ckpt.buffer.size > 0) buffer.addColumns(ckpt.buffer.slice(0, ckpt.buffer.size));
  const modelBuffer = new ReplayBuffer({ obsDim, actDim, capacity: modelBufferCapacity(config, s.rolloutLength) });
  const mb = s.modelBuffer;
  if (mb.size > 0) {
    const b = allocBatch(mb.size, obsDim, actDim);
    b.obs.set(mb.obs);
    b.action.set(mb.action);
    b.reward.set(mb.reward);
    b.nextObs.set(mb.nextObs);
    b.terminated.set(mb.terminated);
    b.truncated.set(mb.truncated);
    modelBuffer.addColumns(b);
  }
  return {
    config,
    envSteps: ckpt.envSteps,
    episodes: s.episodes,
    buffer,
    modelBuffer,
    agent: s.agent,
    ensemble: ckpt.ensemble,
    elites: s.elites,
    rolloutLength: s.rolloutLength,
    rng: s.rng,
    history: s.history,
  };
}

/** The checkpoint (atomically), then metrics.jsonl and curve.svg rewritten from the history. */
async function writeRun(runDir: string, st: MbpoState): Promise<void> {
  const m = st.modelBuffer.slice(0, st.modelBuffer.size);
  const saved: SavedState = {
    episodes: st.episodes,
    agent: st.agent,
    elites: st.elites,
    rolloutLength: st.rolloutLength,
    rng: st.rng,
    history: st.history,
    modelBuffer: { size: m.size, obs: m.obs, action: m.action, reward: m.reward, nextObs: m.nextObs, terminated: Float32Array.from(m.terminated), truncated: Float32Array.from(m.truncated) },
  };
  const policy = sacStatePolicy(st.agent);
  await savePolicyCheckpoint(runDir, {
    config: st.config as unknown as PolicyRunConfig,
    envSteps: st.envSteps,
    policySpec: policy.spec,
    policyWeights: policy.weights,
    ensemble: st.ensemble,
    state: saved as unknown as Record<string, unknown>,
    buffer: st.buffer,
  });
  const { history, config } = st;
  await writeFileAtomic(join(runDir, 'metrics.jsonl'), history.map((h) => JSON.stringify(h)).join('\n') + '\n');
  const svg = linePlotSvg(
    [
      { label: `mbpo seed ${config.seed} (training episodes)`, points: history.map((h) => [h.envSteps, h.return]) },
      { label: `mbpo seed ${config.seed} (deterministic evaluation)`, points: history.filter((h) => h.evalReturn !== null).map((h) => [h.envSteps, h.evalReturn as number]) },
    ],
    { title: `${config.env}: episode return`, xLabel: 'environment steps', yLabel: 'episode return' },
  );
  await writeFileAtomic(join(runDir, 'curve.svg'), svg);
}
