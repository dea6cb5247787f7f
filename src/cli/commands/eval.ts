import { makePetsAgent } from '../../algorithms/mbrl.js';
import { initBackend } from '../../core/backend.js';
import { ValidationError } from '../../core/errors.js';
import { makeEnv } from '../../envs/registry.js';
import { runEpisodes, runEpisodesAsync } from '../../envs/runEpisodes.js';
import { GaussianMlpPolicy } from '../../policies/gaussianMlpPolicy.js';
import { OnnxPolicy } from '../../policies/onnxPolicy.js';
import { UsageError, intFlag, stringFlag, type Command } from '../args.js';
import { loadCheckpoint, loadCheckpointModels, type CheckpointModels } from '../checkpoint.js';
import { parsePhysicsFlag } from '../physicsFlag.js';
import { Progress } from '../progress.js';

/** `mbrl eval`: run a trained controller for N seeded episodes and report the returns. */
export const evalCommand: Command = {
  name: 'eval',
  summary: 'Evaluate a trained checkpoint or an exported ONNX policy: mean and std of the return over seeded episodes.',
  usage: 'mbrl eval (--checkpoint DIR | --model FILE.onnx) [--env ID] [--episodes N] [--seed S] [--physics K=V,...] [--json]',
  description:
    "Episode k is reset with seed S+k. --env defaults to the checkpoint's (or the file's mbrl.env_id) task; --physics evaluates on a physical variant.\n" +
    "--checkpoint runs the run's controller: a learned policy's deterministic action (TRPO, PPO, ME-TRPO, MB-MPO), or\n" +
    "PETS's planner over its ensemble. --model runs an exported policy (mbrl export) through onnxruntime, checked\n" +
    'against the task (sizes, bounds, env id).',
  options: {
    checkpoint: { type: 'string', valueName: 'DIR', help: 'A run directory or its checkpoint/ directory.' },
    model: { type: 'string', valueName: 'FILE', help: 'An exported ONNX policy (mbrl export --what policy).' },
    env: { type: 'string', valueName: 'ID', help: "Task id (default: the checkpoint's or the file's)." },
    episodes: { type: 'string', valueName: 'N', help: 'Episodes.', default: '5' },
    seed: { type: 'string', valueName: 'S', help: 'Seed of the first episode.', default: '0' },
    physics: { type: 'string', valueName: 'K=V,...', help: 'Physical variant, e.g. massScale=1.3.' },
    'mjcf-dir': { type: 'string', valueName: 'DIR', help: 'Directory of Gymnasium MJCF files (default: $MBRL_MJCF_DIR).' },
    json: { type: 'boolean', help: 'Print { meanReturn, stdReturn, returns } as JSON.' },
    quiet: { type: 'boolean', help: 'No progress output.' },
  },
  async run(values, positionals) {
    if (positionals.length > 0) throw new UsageError(`mbrl eval: unexpected argument "${positionals[0]}"`);
    if (values.model !== undefined && values.checkpoint !== undefined) throw new UsageError('mbrl eval: give --checkpoint DIR or --model FILE.onnx, not both');
    const episodes = intFlag(values, 'episodes', 1);
    const seed = intFlag(values, 'seed', 0);
    if (values.model !== undefined) return evalModel(stringFlag(values, 'model', 'an exported .onnx policy'), values, episodes, seed);
    const dir = stringFlag(values, 'checkpoint', 'a run or checkpoint directory (or --model FILE.onnx)');
    const models = await loadCheckpointModels(dir);
    if (models.policy) return evalPolicyCheckpoint(dir, models, values, episodes, seed);
    const state = await loadCheckpoint(dir);
    if (!state.weights) throw new ValidationError('mbrl eval', 'checkpoint', `${dir} holds no trained model yet (only warm-up data)`);
    const id = (values.env as string | undefined) ?? state.config.env;
    await initBackend();
    const env = await makeEnv(id, { physics: parsePhysicsFlag(values.physics as string | undefined), ...(values['mjcf-dir'] ? { mjcfDir: values['mjcf-dir'] as string } : {}) });
    try {
      const spec = state.weights.spec;
      if (env.observationSpace.dim !== spec.obsDim || env.actionSpace.dim !== spec.actDim) {
        throw new ValidationError('mbrl eval', 'env', `${id} has obs/act sizes ${env.observationSpace.dim}/${env.actionSpace.dim}, the checkpoint's model ${spec.obsDim}/${spec.actDim}`);
      }
      const { agent, predictor } = await makePetsAgent({ ...state.config, env: id }, state.weights, state.elites, env);
      try {
        const progress = new Progress(`eval ${id}`, episodes * env.maxEpisodeSteps, { quiet: values.quiet === true });
        const stats = await runEpisodesAsync(env, agent, { episodes, seed, onStep: (ep, step) => progress.update(ep * env.maxEpisodeSteps + step) });
        const result = { meanReturn: stats.mean, stdReturn: stats.std, returns: stats.returns, lengths: stats.lengths, env: id, episodes, seed, checkpoint: dir, trainedEnvSteps: state.envSteps };
        if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
        else process.stdout.write(`${id}: return ${stats.mean.toFixed(2)} ± ${stats.std.toFixed(2)} over ${episodes} episodes (${stats.returns.map((r) => r.toFixed(1)).join(', ')})\n`);
        return 0;
      } finally {
        predictor.dispose();
      }
    } finally {
      env.close();
    }
  },
};

/** `mbrl eval --checkpoint DIR` of a run with a learned policy: its deterministic action (the squashed mean). */
async function evalPolicyCheckpoint(dir: string, m: CheckpointModels, values: Record<string, string | boolean | undefined>, episodes: number, seed: number): Promise<number> {
  const { spec, weights } = m.policy!;
  const id = (values.env as string | undefined) ?? m.config.env;
  await initBackend();
  const env = await makeEnv(id, { physics: parsePhysicsFlag(values.physics as string | undefined), ...(values['mjcf-dir'] ? { mjcfDir: values['mjcf-dir'] as string } : {}) });
  try {
    const bounds = (a: ArrayLike<number>): string => JSON.stringify(Array.from(a));
    if (env.observationSpace.dim !== spec.obsDim || env.actionSpace.dim !== spec.actDim) {
      throw new ValidationError('mbrl eval', 'env', `${id} has obs/act sizes ${env.observationSpace.dim}/${env.actionSpace.dim}, the checkpoint's policy ${spec.obsDim}/${spec.actDim}`);
    }
    if (bounds(env.actionSpace.low) !== bounds(spec.actionLow) || bounds(env.actionSpace.high) !== bounds(spec.actionHigh)) {
      throw new ValidationError('mbrl eval', 'env', `${id} has action bounds ${bounds(env.actionSpace.low)}…${bounds(env.actionSpace.high)}, the checkpoint's policy ${bounds(spec.actionLow)}…${bounds(spec.actionHigh)}`);
    }
    const policy = new GaussianMlpPolicy(spec, { weights });
    try {
      const progress = new Progress(`eval ${id}`, episodes * env.maxEpisodeSteps, { quiet: values.quiet === true });
      let ep = 0;
      let step = 0;
      const stats = runEpisodes(env, policy, {
        episodes,
        seed,
        onStep: (_o, _a, _s, e) => {
          if (e !== ep) [ep, step] = [e, 0];
          progress.update(ep * env.maxEpisodeSteps + ++step);
        },
      });
      const result = { meanReturn: stats.mean, stdReturn: stats.std, returns: stats.returns, lengths: stats.lengths, env: id, episodes, seed, checkpoint: dir, algo: m.config.kind, trainedEnvSteps: m.envSteps };
      if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
      else process.stdout.write(`${id}: return ${stats.mean.toFixed(2)} ± ${stats.std.toFixed(2)} over ${episodes} episodes (${stats.returns.map((r) => r.toFixed(1)).join(', ')}), ${m.config.kind} policy\n`);
      return 0;
    } finally {
      policy.dispose();
    }
  } finally {
    env.close();
  }
}

/** `mbrl eval --model FILE.onnx`: an exported policy through onnxruntime (`OnnxPolicy`). */
async function evalModel(file: string, values: Record<string, string | boolean | undefined>, episodes: number, seed: number): Promise<number> {
  // Read the file's metadata first, for its env id; then check it against the task's sizes and bounds.
  const probe = await OnnxPolicy.load(file);
  const fileEnv = probe.metadata.envId;
  probe.dispose();
  const id = (values.env as string | undefined) ?? fileEnv;
  if (id === undefined) throw new UsageError(`mbrl eval: ${file} names no environment (no mbrl.env_id); pass --env ID`);
  const env = await makeEnv(id, { physics: parsePhysicsFlag(values.physics as string | undefined), ...(values['mjcf-dir'] ? { mjcfDir: values['mjcf-dir'] as string } : {}) });
  try {
    const policy = await OnnxPolicy.load(file, {
      obsDim: env.observationSpace.dim,
      actDim: env.actionSpace.dim,
      actionSpace: env.actionSpace,
      // A file that names its task must name this one; one that names none is checked by sizes and bounds only.
      ...(fileEnv !== undefined ? { envId: id } : {}),
    });
    try {
      const progress = new Progress(`eval ${id}`, episodes * env.maxEpisodeSteps, { quiet: values.quiet === true });
      const stats = await runEpisodesAsync(env, policy, { episodes, seed, onStep: (ep, step) => progress.update(ep * env.maxEpisodeSteps + step) });
      const result = {
        meanReturn: stats.mean,
        stdReturn: stats.std,
        returns: stats.returns,
        lengths: stats.lengths,
        env: id,
        episodes,
        seed,
        model: file,
        trainedEnvSteps: policy.metadata.envSteps ?? null,
      };
      if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
      else process.stdout.write(`${id}: return ${stats.mean.toFixed(2)} ± ${stats.std.toFixed(2)} over ${episodes} episodes (${stats.returns.map((r) => r.toFixed(1)).join(', ')})\n`);
      return 0;
    } finally {
      policy.dispose();
    }
  } finally {
    env.close();
  }
}
