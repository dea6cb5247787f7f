import { ConstantAgent, RandomAgent, type Agent } from '../../core/agent.js';
import { Rng } from '../../core/rng.js';
import { BufferWriter } from '../../data/bufferStore.js';
import { makeEnv } from '../../envs/registry.js';
import { runEpisodes } from '../../envs/runEpisodes.js';
import { UsageError, intFlag, stringFlag, type Command } from '../args.js';
import { parsePhysicsFlag } from '../physicsFlag.js';
import { Progress } from '../progress.js';

/**
 * `mbrl rollout`: run episodes of a simple controller in a built-in simulator and, with `--out`,
 * record every transition into a crash-safe replay-buffer directory (docs/buffer-format.md).
 */
export const rolloutCommand: Command = {
  name: 'rollout',
  summary: 'Run episodes in a simulator and optionally record the transitions to a replay buffer.',
  usage: 'mbrl rollout --env ID [--episodes N] [--seed S] [--policy random|zero] [--physics K=V,...] [--out DIR] [--json]',
  description:
    'Episode k is reset with seed S+k; the random policy draws from its own generator seeded with S.\n' +
    'Transitions carry simulated time stamps (step × dt, integer nanoseconds).\n' +
    'Physics keys: massScale, frictionScale, actuatorGain, obsNoiseStd, actionDelaySteps.',
  options: {
    env: { type: 'string', valueName: 'ID', help: "Task id (see 'mbrl envs')." },
    episodes: { type: 'string', valueName: 'N', help: 'Episodes to run.', default: '10' },
    seed: { type: 'string', valueName: 'S', help: 'Seed of the first episode.', default: '0' },
    policy: { type: 'string', valueName: 'NAME', help: 'random (uniform in the action bounds) or zero.', default: 'random' },
    physics: { type: 'string', valueName: 'K=V,...', help: 'Physical variant, e.g. massScale=1.3,actionDelaySteps=1.' },
    'max-steps': { type: 'string', valueName: 'N', help: "Time limit per episode (default: the task's)." },
    out: { type: 'string', valueName: 'DIR', help: 'Record transitions into this replay-buffer directory (created; must not hold a buffer).' },
    'mjcf-dir': { type: 'string', valueName: 'DIR', help: 'Directory of Gymnasium MJCF files (default: $MBRL_MJCF_DIR).' },
    json: { type: 'boolean', help: 'Print a JSON summary on stdout.' },
    quiet: { type: 'boolean', help: 'No progress output.' },
  },
  async run(values, positionals) {
    if (positionals.length > 0) throw new UsageError(`mbrl rollout: unexpected argument "${positionals[0]}"`);
    const id = stringFlag(values, 'env', "a task id, see 'mbrl envs'");
    const episodes = intFlag(values, 'episodes', 1);
    const seed = intFlag(values, 'seed', 0);
    const policy = values.policy as string;
    if (policy !== 'random' && policy !== 'zero') throw new UsageError(`--policy ${policy}: expected random or zero`);
    const physics = parsePhysicsFlag(values.physics as string | undefined);
    const maxEpisodeSteps = values['max-steps'] === undefined ? undefined : intFlag(values, 'max-steps', 1);
    const env = await makeEnv(id, { physics, ...(maxEpisodeSteps ? { maxEpisodeSteps } : {}), ...(values['mjcf-dir'] ? { mjcfDir: values['mjcf-dir'] as string } : {}) });
    const out = values.out as string | undefined;
    const writer = out ? await BufferWriter.open(out, { obsDim: env.observationSpace.dim, actDim: env.actionSpace.dim }) : undefined;
    try {
      const agent: Agent = policy === 'random' ? new RandomAgent(env.actionSpace, new Rng(seed)) : new ConstantAgent(new Float64Array(env.actionSpace.dim));
      const progress = new Progress(`rollout ${id}`, episodes, { quiet: values.quiet === true });
      const dtNs = BigInt(Math.round(env.dt * 1e9));
      let step = 0n;
      let lastEpisode = -1;
      const stats = runEpisodes(env, agent, {
        episodes,
        seed,
        onStep: (obs, action, s, episode) => {
          if (episode !== lastEpisode) {
            lastEpisode = episode;
            step = 0n;
          }
          step++;
          writer?.append({ obs, action, reward: s.reward, nextObs: s.obs, terminated: s.terminated, truncated: s.truncated, stampNs: step * dtNs });
        },
        onEpisode: (ep, ret) => progress.update(ep + 1, `return ${ret.toFixed(1)}`),
      });
      await writer?.close();
      const steps = stats.lengths.reduce((a, b) => a + b, 0);
      const summary = { env: id, policy, episodes, seed, physics: env.physics, steps, meanReturn: stats.mean, stdReturn: stats.std, returns: stats.returns, lengths: stats.lengths, ...(out ? { out } : {}) };
      if (values.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
      else process.stdout.write(`${id}: ${episodes} episodes, ${steps} steps, return ${stats.mean.toFixed(2)} ± ${stats.std.toFixed(2)}${out ? `, transitions in ${out}` : ''}\n`);
      return 0;
    } finally {
      await writer?.close();
      env.close();
    }
  },
};
