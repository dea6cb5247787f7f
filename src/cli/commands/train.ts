import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { makePetsConfig, trainPets, type PetsEpisodeMetrics, type PetsOverrides, type PetsState } from '../../algorithms/mbrl.js';
import { initBackend } from '../../core/backend.js';
import { writeFileAtomic } from '../../data/atomicWrite.js';
import { makeEnv } from '../../envs/registry.js';
import { UsageError, intFlag, type Command } from '../args.js';
import { loadCheckpoint, saveCheckpoint } from '../checkpoint.js';
import { parsePhysicsFlag } from '../physicsFlag.js';
import { Progress } from '../progress.js';
import { linePlotSvg } from '../svgPlot.js';
import { runMbpo } from './trainMbpo.js';
import { MODEL_FREE_ALGOS, runModelFree, type ModelFreeAlgo } from './trainModelFree.js';
import { POLICY_ALGOS, runPolicyAlgo, type PolicyAlgo } from './trainPolicyAlgo.js';

const PLANNERS: Record<string, 'cem' | 'mppi' | 'randomShooting'> = { cem: 'cem', mppi: 'mppi', rs: 'randomShooting', 'random-shooting': 'randomShooting' };

/**
 * `mbrl train`: the model-based loop (PETS: ensemble + planner), ME-TRPO and MB-MPO (ensemble +
 * learned policy), MBPO (ensemble + SAC) or the model-free baselines TRPO and PPO on a built-in simulator, with metrics,
 * a learning-curve plot and a checkpoint after every episode or iteration, resumable after a crash.
 */
export const trainCommand: Command = {
  name: 'train',
  summary: 'Train on a built-in simulator: model-based (PETS: ensemble + planner; ME-TRPO, MB-MPO: ensemble + learned policy; MBPO: ensemble + SAC) or model-free (TRPO, PPO).',
  usage: 'mbrl train [--env ID] [--algo pets|me-trpo|mb-mpo|model-gradient|mbpo|trpo|ppo] [--steps N] [--seed S] [--out DIR] [--resume DIR] [options]',
  description:
    'Writes DIR/metrics.jsonl (one line per episode: env steps, return, holdout loss per member, fit and plan time),\n' +
    'DIR/curve.svg (return vs env steps), DIR/config.json and DIR/checkpoint/ (config, weights, buffer, RNG state).\n' +
    '--resume DIR continues a stopped run from its checkpoint (optionally with a larger --steps).\n' +
    "Defaults: Pendulum-v1, seed 0, out runs/<env>-<algo>-s<seed>, steps from the task's config (Pendulum PETS: 2000).\n" +
    'ME-TRPO, MB-MPO and Model Gradient checkpoint their policy, ensemble and buffer after every iteration; curve.svg plots the\n' +
    "deterministic policy's evaluation return; 'mbrl export --checkpoint DIR' writes the policy as ONNX.\n" +
    "MBPO checkpoints SAC's actor (the policy), its critics and optimiser, the ensemble and the real and model buffers\n" +
    "after every real episode; curve.svg plots training and evaluation returns; a resumed run equals an uninterrupted one.\n" +
    "TRPO and PPO (model-free, on the config's numEnvs copies) checkpoint their policy, baseline or value function,\n" +
    'optimizer, RNG state and environments after every iteration (metrics.jsonl: one line per iteration with env\n' +
    "steps, return, KL, ...; curve.svg: the training episodes' return); a resumed run equals an uninterrupted one.",
  options: {
    env: { type: 'string', valueName: 'ID', help: "Task id (see 'mbrl envs').", default: 'Pendulum-v1' },
    algo: { type: 'string', valueName: 'NAME', help: 'Algorithm: pets, me-trpo, mb-mpo, model-gradient, mbpo, trpo or ppo.', default: 'pets' },
    steps: { type: 'string', valueName: 'N', help: 'Real environment steps in total.' },
    seed: { type: 'string', valueName: 'S', help: 'Seed of everything.', default: '0' },
    out: { type: 'string', valueName: 'DIR', help: 'Run directory (default runs/<env>-<algo>-s<seed>).' },
    resume: { type: 'string', valueName: 'DIR', help: 'Continue the run in DIR from its checkpoint.' },
    planner: { type: 'string', valueName: 'NAME', help: 'cem, mppi or rs (random shooting).' },
    horizon: { type: 'string', valueName: 'H', help: 'Planning horizon (steps).' },
    population: { type: 'string', valueName: 'N', help: 'Candidate sequences per planner iteration.' },
    particles: { type: 'string', valueName: 'P', help: 'Particles per candidate.' },
    propagation: { type: 'string', valueName: 'NAME', help: 'ts1, tsinf or mean.' },
    physics: { type: 'string', valueName: 'K=V,...', help: 'Physical variant of the simulator, e.g. massScale=1.3.' },
    config: { type: 'string', valueName: 'FILE', help: "JSON file of the algorithm's config overrides (flags win)." },
    'mjcf-dir': { type: 'string', valueName: 'DIR', help: 'Directory of Gymnasium MJCF files (default: $MBRL_MJCF_DIR).' },
    quiet: { type: 'boolean', help: 'No progress output.' },
  },
  async run(values, positionals) {
    if (positionals.length > 0) throw new UsageError(`mbrl train: unexpected argument "${positionals[0]}"`);
    const policyAlgo = (POLICY_ALGOS as readonly string[]).includes(values.algo as string);
    const modelFree = (MODEL_FREE_ALGOS as readonly string[]).includes(values.algo as string);
    const mbpo = values.algo === 'mbpo';
    if (policyAlgo || modelFree || mbpo) {
      for (const flag of ['planner', 'horizon', 'population', 'particles', 'propagation']) {
        if (values[flag] !== undefined) throw new UsageError(`--${flag} applies to --algo pets only`);
      }
      if (mbpo) return runMbpo(values);
      return policyAlgo ? runPolicyAlgo(values.algo as PolicyAlgo, values) : runModelFree(values.algo as ModelFreeAlgo, values);
    }
    if (values.algo !== 'pets') throw new UsageError(`--algo ${String(values.algo)}: expected pets, me-trpo, mb-mpo, model-gradient, mbpo, trpo or ppo`);
    let resume: PetsState | undefined;
    let runDir: string;
    let config;
    if (typeof values.resume === 'string') {
      runDir = values.resume;
      resume = await loadCheckpoint(runDir);
      const steps = values.steps === undefined ? resume.config.steps : intFlag(values, 'steps', 1);
      config = { ...resume.config, steps };
      resume.config = config;
    } else {
      const overrides: PetsOverrides = typeof values.config === 'string' ? await readOverrides(values.config) : {};
      overrides.env = values.env as string;
      overrides.seed = intFlag(values, 'seed', 0);
      if (values.steps !== undefined) overrides.steps = intFlag(values, 'steps', 1);
      const planner: Record<string, unknown> = { ...overrides.planner };
      if (values.planner !== undefined) {
        const kind = PLANNERS[values.planner as string];
        if (!kind) throw new UsageError(`--planner ${String(values.planner)}: expected cem, mppi or rs`);
        planner.kind = kind;
      }
      if (values.horizon !== undefined) planner.horizon = intFlag(values, 'horizon', 1);
      if (values.population !== undefined) planner.populationSize = intFlag(values, 'population', 1);
      if (Object.keys(planner).length > 0) overrides.planner = planner;
      if (values.particles !== undefined) overrides.particles = intFlag(values, 'particles', 1);
      if (values.propagation !== undefined) overrides.propagation = values.propagation as PetsOverrides['propagation'];
      if (values.physics !== undefined) overrides.physics = parsePhysicsFlag(values.physics as string);
      config = makePetsConfig(overrides);
      runDir = typeof values.out === 'string' ? values.out : join('runs', `${config.env}-pets-s${config.seed}`);
      const { existsSync } = await import('node:fs');
      if (existsSync(join(runDir, 'checkpoint')) || existsSync(join(runDir, 'checkpoint.old'))) {
        throw new UsageError(`${runDir} already holds a run; continue it with --resume ${runDir} or choose another --out`);
      }
    }
    await mkdir(runDir, { recursive: true });
    await initBackend();
    const env = await makeEnv(config.env, { physics: config.physics, ...(config.maxEpisodeSteps ? { maxEpisodeSteps: config.maxEpisodeSteps } : {}), ...(values['mjcf-dir'] ? { mjcfDir: values['mjcf-dir'] as string } : {}) });
    await writeFileAtomic(join(runDir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    const log = (line: string): void => {
      if (!values.quiet) process.stderr.write(`${process.stderr.isTTY ? '\r\x1b[K' : ''}${line}\n`);
    };
    log(`mbrl train: ${config.env}, pets/${config.planner.kind}, ${config.steps} steps, seed ${config.seed}, run dir ${runDir}${resume ? ` (resumed at ${resume.envSteps} steps)` : ''}`);
    const progress = new Progress('train', config.steps, { quiet: values.quiet === true });
    let lastReturn = '';
    try {
      const state = await trainPets(config, env, {
        log,
        onStep: (_s, _m, envSteps) => progress.update(envSteps, lastReturn),
        onEpisode: async (m, st) => {
          lastReturn = `last return ${m.episodeReturn.toFixed(1)}`;
          log(formatEpisode(m));
          await saveCheckpoint(runDir, st);
          await writeRunFiles(runDir, st);
        },
      }, resume);
      const last = state.history[state.history.length - 1];
      process.stdout.write(`${JSON.stringify({ runDir, envSteps: state.envSteps, episodes: state.episodes, lastReturn: last?.episodeReturn ?? null })}\n`);
      return 0;
    } finally {
      env.close();
    }
  },
};

async function readOverrides(file: string): Promise<PetsOverrides> {
  const { readFile } = await import('node:fs/promises');
  try {
    const v = JSON.parse(await readFile(file, 'utf8')) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('expected a JSON object');
    return v as PetsOverrides;
  } catch (err) {
    throw new UsageError(`--config ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function formatEpisode(m: PetsEpisodeMetrics): string {
  const parts = [`episode ${m.episode}`, `steps ${m.envSteps}`, `${m.policy}`, `return ${m.episodeReturn.toFixed(1)}`];
  if (m.fitSeconds !== null) parts.push(`fit ${m.fitSeconds.toFixed(1)}s/${m.fitEpochs ?? 0} ep`);
  if (m.planMsPerStep !== null) parts.push(`plan ${m.planMsPerStep.toFixed(1)} ms/step`);
  if (m.fitError) parts.push(`FIT FAILED (kept previous model): ${m.fitError}`);
  return parts.join(', ');
}

/** Rewrites metrics.jsonl and curve.svg from the state's history (whole files, atomically). */
async function writeRunFiles(runDir: string, st: PetsState): Promise<void> {
  await writeFileAtomic(join(runDir, 'metrics.jsonl'), st.history.map((m) => JSON.stringify(m)).join('\n') + '\n');
  const svg = linePlotSvg([{ label: `PETS-${st.config.planner.kind} seed ${st.config.seed}`, points: st.history.map((m) => [m.envSteps, m.episodeReturn]) }], {
    title: `${st.config.env}: episode return`,
    xLabel: 'environment steps',
    yLabel: 'episode return',
  });
  await writeFileAtomic(join(runDir, 'curve.svg'), svg);
}
