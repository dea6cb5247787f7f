import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { makeBcConfig, trainBc, type BcConfig, type BcEpochMetrics, type BcState } from '../../algorithms/bc.js';
import { makeMopoConfig, MOPO_PAPER_SETTINGS, trainMopo, type MopoConfig, type MopoEpochMetrics, type MopoState } from '../../algorithms/mopo.js';
import { sacStatePolicy } from '../../algorithms/sac.js';
import { initBackend } from '../../core/backend.js';
import type { Env } from '../../core/env.js';
import { ValidationError } from '../../core/errors.js';
import { writeFileAtomic } from '../../data/atomicWrite.js';
import { d4rlNormalizedScore, D4RL_REFERENCES } from '../../data/d4rlRefs.js';
import type { DatasetMetadata, OfflineDataset } from '../../data/dataset.js';
import { loadHdf5Dataset } from '../../data/hdf5Dataset.js';
import { ENV_IDS, makeEnv } from '../../envs/registry.js';
import { exportMetadataProps } from '../../export/exportMetadata.js';
import { policyToOnnx } from '../../export/policyOnnx.js';
import type { GaussianMlpPolicySpec, PolicyWeights } from '../../policies/gaussianMlpPolicy.js';
import { OnnxPolicy } from '../../policies/onnxPolicy.js';
import { UsageError, intFlag, type Command, readJsonObject } from '../args.js';
import { datasetFingerprint, describeDataset, loadOfflineCheckpoint, OFFLINE_ALGOS, saveOfflineCheckpoint, type OfflineAlgo, type OfflineRunInfo, type OfflineRunState } from '../offlineCheckpoint.js';
import { linePlotSvg } from '../svgPlot.js';

type Values = Record<string, string | boolean | undefined>;

/** Flags that define a new run's config; a resumed run keeps its own. */
const CONFIG_FLAGS = ['config', 'penalty-coef', 'rollout-length', 'eval-every', 'seed', 'env'] as const;

/**
 * `mbrl offline`: a policy from logged data alone (MOPO, offline MBPO, BC), evaluated in the
 * simulator as it trains, with metrics, a learning curve and a resumable checkpoint after every
 * epoch, and optionally the final policy as ONNX.
 */
export const offlineCommand: Command = {
  name: 'offline',
  summary: 'Offline RL from a D4RL-format dataset: MOPO, MBPO (MOPO without the penalty) or behaviour cloning.',
  usage:
    'mbrl offline --dataset FILE.h5 --algo mopo|mbpo|bc [--env ID] [--steps N] [--out DIR] [--seed S] [--config FILE.json]\n' +
    '       [--penalty-coef L] [--rollout-length H] [--eval-every N] [--export FILE.onnx]\n' +
    '       mbrl offline --resume DIR [--steps N] [--dataset FILE.h5] [--export FILE.onnx]',
  description:
    'mopo: fits a probabilistic ensemble on the data, then trains SAC on dataset + model rollouts whose reward is\n' +
    '  penalised by the ensemble uncertainty, r − λ·u (Yu et al. 2020). mbpo: the same with λ = 0. bc: regresses\n' +
    "  the logged actions on the observations. λ and h default to MOPO's paper values when the dataset names a\n" +
    '  D4RL recipe in its metadata (recipe, name, envId) or file name (e.g. halfcheetah_medium-v2.hdf5), else to\n' +
    `  MOPO_DEFAULTS; --config values and flags win. Recipes: ${Object.keys(MOPO_PAPER_SETTINGS).join(', ')}.\n` +
    '--steps N: gradient steps of the policy in total (SAC updates, or BC steps), a multiple of the steps of one epoch\n' +
    '  (sacUpdatesPerEpoch, default 1000; BC stepsPerEpoch, default 1000). Default: the config\'s epochs.\n' +
    'Every epoch: the deterministic policy is evaluated in the simulator (return, and the D4RL-normalised score on\n' +
    `  ${Object.keys(D4RL_REFERENCES).join(', ')}), and DIR/metrics.jsonl, DIR/curve.svg and DIR/checkpoint/ are written\n` +
    "  (the policy, ensemble, model buffer, optimiser and RNG state). DIR/config.json is the algorithm's config.\n" +
    "--resume DIR continues a run (same data; only --steps may change); 'mbrl export --checkpoint DIR' exports its policy.",
  options: {
    dataset: { type: 'string', valueName: 'FILE.h5', help: 'The logged data (D4RL HDF5; see mbrl dataset). On --resume: default the recorded path.' },
    algo: { type: 'string', valueName: 'NAME', help: 'mopo, mbpo or bc.' },
    env: { type: 'string', valueName: 'ID', help: "Task the data came from, for evaluation (default: the dataset's envId metadata)." },
    steps: { type: 'string', valueName: 'N', help: 'Gradient steps of the policy in total.' },
    out: { type: 'string', valueName: 'DIR', help: 'Run directory (default runs/offline-<env>-<algo>-s<seed>).' },
    seed: { type: 'string', valueName: 'S', help: 'Seed of everything (default 0).' },
    resume: { type: 'string', valueName: 'DIR', help: 'Continue the run in DIR from its checkpoint.' },
    config: { type: 'string', valueName: 'FILE', help: "JSON file of the algorithm's config overrides (MopoConfig or BcConfig; flags win)." },
    'penalty-coef': { type: 'string', valueName: 'L', help: 'mopo: λ of r − λ·u.' },
    'rollout-length': { type: 'string', valueName: 'H', help: 'mopo, mbpo: model rollout length h.' },
    'eval-every': { type: 'string', valueName: 'N', help: 'Evaluate every N epochs (and after the last).' },
    export: { type: 'string', valueName: 'FILE.onnx', help: 'Also write the final policy as ONNX (as mbrl export).' },
    'mjcf-dir': { type: 'string', valueName: 'DIR', help: 'Directory of Gymnasium MJCF files (default: $MBRL_MJCF_DIR).' },
    quiet: { type: 'boolean', help: 'No progress output.' },
  },
  async run(values, positionals) {
    if (positionals.length > 0) throw new UsageError(`mbrl offline: unexpected argument "${positionals[0]}"`);
    const log = (line: string): void => {
      if (!values.quiet) process.stderr.write(`${line}\n`);
    };
    const setup = typeof values.resume === 'string' ? await resumeRun(values.resume, values) : await newRun(values, log);
    const { runDir, info, data } = setup;
    await mkdir(runDir, { recursive: true });
    await initBackend({ log });
    const config = setup.config;
    const env = await makeEnv(config.env, values['mjcf-dir'] ? { mjcfDir: values['mjcf-dir'] as string } : {});
    try {
      await writeFileAtomic(join(runDir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
      const done = setup.resume?.epoch ?? 0;
      log(`mbrl offline: ${info.algo} on ${describeDataset(info.dataset)}, ${config.env}, seed ${config.seed}, ${config.epochs} epochs of ${perEpoch(config)} steps${info.recipe ? ` (MOPO settings of ${info.recipe})` : ''}, run dir ${runDir}${setup.resume ? ` (resumed after epoch ${done})` : ''}`);
      const write = async (state: OfflineRunState): Promise<void> => {
        await saveOfflineCheckpoint(runDir, state);
        const lines = metricsLines(info.algo, config, state.state.history);
        await writeFileAtomic(join(runDir, 'metrics.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
        await writeFileAtomic(join(runDir, 'curve.svg'), curveSvg(info.algo, config, lines));
      };
      let policy: { spec: GaussianMlpPolicySpec; weights: PolicyWeights };
      let history: readonly (MopoEpochMetrics | BcEpochMetrics)[];
      if (config.kind === 'bc') {
        const r = await trainBc(config, data, env, { log, onEpoch: (_m, state) => write({ info: { ...info, algo: 'bc' }, state }) }, setup.resume as BcState | undefined);
        policy = { spec: r.policy.spec, weights: r.policy.getWeights() };
        history = r.history;
        r.policy.dispose();
      } else {
        const mopoInfo = { ...info, algo: info.algo as 'mopo' | 'mbpo' };
        const r = await trainMopo(config, data, env, { log, onEpoch: (_m, state) => write({ info: mopoInfo, state }) }, setup.resume as MopoState | undefined);
        policy = sacStatePolicy(r.agent.getState());
        history = r.history;
        r.agent.dispose();
      }
      let exported: string | null = null;
      if (typeof values.export === 'string') {
        exported = values.export;
        await exportPolicy(exported, policy, env, info.algo, config);
        log(`mbrl offline: wrote ${exported}`);
      }
      const lastEval = [...history].reverse().find((h) => h.evalReturn !== null)?.evalReturn ?? null;
      const epochs = history.length;
      process.stdout.write(
        `${JSON.stringify({ runDir, algo: info.algo, epochs, gradientSteps: epochs * perEpoch(config), lastEvalReturn: lastEval, normalizedScore: lastEval === null ? null : d4rlNormalizedScore(config.env, lastEval), export: exported })}\n`,
      );
      return 0;
    } finally {
      env.close();
    }
  },
};

/** Where a run starts: a new one from flags, or a checkpoint. */
interface RunSetup {
  runDir: string;
  info: OfflineRunInfo;
  config: MopoConfig | BcConfig;
  data: OfflineDataset;
  resume?: MopoState | BcState;
}

async function newRun(values: Values, log: (line: string) => void): Promise<RunSetup> {
  const algo = values.algo as string | undefined;
  if (algo === undefined) throw new UsageError(`--algo is required (${OFFLINE_ALGOS.join(', ')})`);
  if (!(OFFLINE_ALGOS as readonly string[]).includes(algo)) throw new UsageError(`--algo ${algo}: expected one of ${OFFLINE_ALGOS.join(', ')}`);
  if (typeof values.dataset !== 'string' || values.dataset === '') throw new UsageError('--dataset is required (a D4RL-format FILE.h5)');
  if (algo === 'bc') {
    for (const f of ['penalty-coef', 'rollout-length']) if (values[f] !== undefined) throw new UsageError(`--${f} applies to --algo mopo and mbpo only`);
  }
  const datasetPath = values.dataset;
  const { dataset: data, notes } = await loadHdf5Dataset(datasetPath);
  for (const n of notes) log(`mbrl offline: ${datasetPath}: ${n}`);
  const envId = (values.env as string | undefined) ?? (data.metadata.envId && ENV_IDS.includes(data.metadata.envId) ? data.metadata.envId : undefined);
  if (envId === undefined) throw new UsageError(`--env is required: ${datasetPath} names no built-in task (metadata envId ${JSON.stringify(data.metadata.envId ?? null)}); see 'mbrl envs'`);
  if (data.metadata.envId && data.metadata.envId !== envId && ENV_IDS.includes(data.metadata.envId)) log(`mbrl offline: note: the dataset says it was collected on ${data.metadata.envId}; training for --env ${envId}`);
  const file: Record<string, unknown> = typeof values.config === 'string' ? await readJsonObject(values.config) : {};
  const seed = intFlag(values, 'seed', 0, 0);
  const steps = values.steps === undefined ? undefined : intFlag(values, 'steps', 1);
  let config: MopoConfig | BcConfig;
  let recipe: string | null = null;
  if (algo === 'bc') {
    const o: Record<string, unknown> = { ...file, env: envId, seed };
    if (values['eval-every'] !== undefined) o.evalEvery = intFlag(values, 'eval-every', 1);
    const probe = makeBcConfig(o as Partial<BcConfig>);
    config = makeBcConfig({ ...probe, epochs: steps === undefined ? probe.epochs : epochsFor(steps, probe.stepsPerEpoch, 'stepsPerEpoch') });
  } else {
    recipe = d4rlRecipe(data.metadata, datasetPath);
    const paper = recipe ? MOPO_PAPER_SETTINGS[recipe] : undefined;
    const o: Record<string, unknown> = { ...(paper ? (algo === 'mbpo' ? { rolloutLength: paper.rolloutLength } : paper) : {}), ...file, env: envId, seed };
    if (values['rollout-length'] !== undefined) o.rolloutLength = intFlag(values, 'rollout-length', 1);
    if (values['penalty-coef'] !== undefined) o.penaltyCoef = numberFlag(values, 'penalty-coef', 0);
    if (algo === 'mbpo') {
      if (o.penaltyCoef !== undefined && o.penaltyCoef !== 0) {
        throw new UsageError(`--algo mbpo is MOPO with penaltyCoef 0, but ${values['penalty-coef'] !== undefined ? `--penalty-coef ${String(values['penalty-coef'])}` : `--config ${String(values.config)}`} sets ${String(o.penaltyCoef)}; use --algo mopo for a penalised run`);
      }
      o.penaltyCoef = 0;
    }
    if (values['eval-every'] !== undefined) o.evalEvery = intFlag(values, 'eval-every', 1);
    const probe = makeMopoConfig(o as Partial<MopoConfig>);
    config = makeMopoConfig({ ...probe, epochs: steps === undefined ? probe.epochs : epochsFor(steps, probe.sacUpdatesPerEpoch, 'sacUpdatesPerEpoch') });
    if (recipe) log(`mbrl offline: ${datasetPath} is D4RL ${recipe}: MOPO's settings h = ${paper?.rolloutLength}, λ = ${paper?.penaltyCoef} (config: h = ${config.rolloutLength}, λ = ${config.penaltyCoef})`);
  }
  const runDir = typeof values.out === 'string' ? values.out : join('runs', `offline-${config.env}-${algo}-s${config.seed}`);
  if (existsSync(join(runDir, 'checkpoint')) || existsSync(join(runDir, 'checkpoint.old'))) {
    throw new UsageError(`${runDir} already holds a run; continue it with --resume ${runDir} or choose another --out`);
  }
  return { runDir, info: { algo: algo as OfflineAlgo, dataset: datasetFingerprint(datasetPath, data), recipe }, config, data };
}

async function resumeRun(runDir: string, values: Values): Promise<RunSetup> {
  for (const f of CONFIG_FLAGS) {
    if (values[f] !== undefined) throw new UsageError(`--${f} does not apply with --resume: the run keeps its config (${join(runDir, 'config.json')}); only --steps may extend it`);
  }
  if (values.out !== undefined && values.out !== runDir) throw new UsageError(`--out does not apply with --resume: the run continues in ${runDir}`);
  const saved = await loadOfflineCheckpoint(runDir);
  const { info, state } = saved;
  if (values.algo !== undefined && values.algo !== info.algo) throw new UsageError(`--resume ${runDir}: the run is ${info.algo}, not ${String(values.algo)}`);
  const datasetPath = typeof values.dataset === 'string' ? values.dataset : info.dataset.path;
  if (!existsSync(datasetPath)) throw new UsageError(`--resume ${runDir}: the run's dataset ${datasetPath} is not there; pass its current path with --dataset`);
  const { dataset: data } = await loadHdf5Dataset(datasetPath);
  const fp = datasetFingerprint(datasetPath, data);
  if (fp.rows !== info.dataset.rows || fp.crc32 !== info.dataset.crc32) {
    throw new ValidationError('mbrl offline --resume', '--dataset', `expected the run's data ${describeDataset(info.dataset)}, got ${describeDataset(fp)}`);
  }
  const per = perEpoch(state.config);
  const epochs = values.steps === undefined ? state.config.epochs : epochsFor(intFlag(values, 'steps', 1), per, state.config.kind === 'bc' ? 'stepsPerEpoch' : 'sacUpdatesPerEpoch');
  if (epochs < state.epoch) throw new UsageError(`--steps ${String(values.steps)}: the run has done ${state.epoch * per} steps already`);
  const config = state.config.kind === 'bc' ? makeBcConfig({ ...state.config, epochs }) : makeMopoConfig({ ...state.config, epochs });
  return { runDir, info: { ...info, dataset: { ...info.dataset, path: datasetPath } }, config, data, resume: state };
}

/**
 * The D4RL recipe a dataset names (a key of `MOPO_PAPER_SETTINGS`), from its metadata (`recipe`,
 * `datasetName`, `name`, `envId`, `source`) or the file name: lower-cased, extension and version
 * suffix dropped, `_` read as `-` (`halfcheetah_medium-v2.hdf5` → `halfcheetah-medium`). Null if none.
 */
export function d4rlRecipe(metadata: Readonly<DatasetMetadata>, file: string): string | null {
  const candidates = [metadata.recipe, metadata.datasetName, metadata.name, metadata.envId, metadata.source, file];
  for (const c of candidates) {
    if (typeof c !== 'string' || c === '') continue;
    const key = basename(c)
      .toLowerCase()
      .replace(/\.(hdf5|h5)$/, '')
      .replace(/_/g, '-')
      .replace(/-v\d+$/, '');
    if (Object.hasOwn(MOPO_PAPER_SETTINGS, key)) return key;
  }
  return null;
}

/** Policy gradient steps per epoch. */
function perEpoch(config: MopoConfig | BcConfig): number {
  return config.kind === 'bc' ? config.stepsPerEpoch : config.sacUpdatesPerEpoch;
}

function epochsFor(steps: number, per: number, key: string): number {
  if (steps % per !== 0) throw new UsageError(`--steps ${steps}: expected a multiple of ${key} (${per}, the gradient steps of one epoch), e.g. ${Math.max(per, Math.round(steps / per) * per)}`);
  return steps / per;
}

/** One metrics.jsonl line per epoch: the algorithm's metrics, the gradient steps, and the D4RL score where the task has references. */
function metricsLines(algo: OfflineAlgo, config: MopoConfig | BcConfig, history: readonly (MopoEpochMetrics | BcEpochMetrics)[]): Record<string, unknown>[] {
  return history.map((h) => ({
    algo,
    ...h,
    gradientSteps: h.epoch * perEpoch(config),
    normalizedScore: h.evalReturn === null ? null : d4rlNormalizedScore(config.env, h.evalReturn),
  }));
}

function curveSvg(algo: OfflineAlgo, config: MopoConfig | BcConfig, lines: Record<string, unknown>[]): string {
  const evals = lines.filter((l) => l.evalReturn !== null);
  const last = evals[evals.length - 1];
  const score = typeof last?.normalizedScore === 'number' ? ` (D4RL score ${last.normalizedScore.toFixed(1)})` : '';
  return linePlotSvg([{ label: `${algo} seed ${config.seed} (deterministic policy)`, points: evals.map((l) => [l.gradientSteps as number, l.evalReturn as number]) }], {
    title: `${config.env} offline: evaluation return${score}`,
    xLabel: 'policy gradient steps',
    yLabel: 'episode return',
  });
}

/** Writes the policy as ONNX with `mbrl export`'s metadata, after loading it back as a deployer would. */
async function exportPolicy(out: string, policy: { spec: GaussianMlpPolicySpec; weights: PolicyWeights }, env: Env, algo: OfflineAlgo, config: MopoConfig | BcConfig): Promise<void> {
  const { spec, weights } = policy;
  const D = spec.obsDim;
  const meta = exportMetadataProps({
    what: 'policy',
    obsDim: D,
    actDim: spec.actDim,
    actionLow: spec.actionLow,
    actionHigh: spec.actionHigh,
    ...(env.obsNames?.length === D ? { obsNames: [...env.obsNames] } : {}),
    ...(env.observationSpace.dim === D ? { obsLow: env.observationSpace.low, obsHigh: env.observationSpace.high } : {}),
    envId: config.env,
    algorithm: algo,
    configKind: config.kind,
    envSteps: 0,
    squash: spec.squash,
    stochastic: false,
  });
  const bytes = policyToOnnx(spec, weights, meta);
  const check = await OnnxPolicy.load(bytes, { obsDim: D, actDim: spec.actDim, envId: config.env });
  check.dispose();
  await mkdir(dirname(out), { recursive: true });
  await writeFileAtomic(out, bytes);
}

function numberFlag(values: Values, name: string, min: number): number {
  const raw = values[name];
  const v = Number(raw);
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(v) || v < min) throw new UsageError(`--${name} ${String(raw)}: expected a finite number ≥ ${min}`);
  return v;
}
