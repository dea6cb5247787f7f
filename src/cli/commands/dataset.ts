import { readFile } from 'node:fs/promises';
import { makePetsAgent } from '../../algorithms/mbrl.js';
import { RandomAgent } from '../../core/agent.js';
import { initBackend } from '../../core/backend.js';
import { ValidationError } from '../../core/errors.js';
import { Rng } from '../../core/rng.js';
import { parseBagMapping } from '../../data/bagMapping.js';
import { loadBuffer } from '../../data/bufferStore.js';
import { D4RL_RECIPES, collectDataset, mediumExpertDataset, mediumReplayDataset, policyDataset, randomDataset, type D4rlRecipe } from '../../data/d4rlRecipes.js';
import type { DatasetMetadata } from '../../data/dataset.js';
import { OfflineDataset } from '../../data/dataset.js';
import { datasetStats, type DatasetStats } from '../../data/datasetStats.js';
import { loadHdf5Dataset, saveHdf5Dataset } from '../../data/hdf5Dataset.js';
import { loadRosbagDataset, type BagImportReport } from '../../data/rosbagDataset.js';
import { loadCsvDataset, loadJsonlDataset, type ColumnMapping } from '../../data/tabularDataset.js';
import { makeEnv } from '../../envs/registry.js';
import { GaussianMlpPolicy } from '../../policies/gaussianMlpPolicy.js';
import { OnnxPolicy } from '../../policies/onnxPolicy.js';
import { UsageError, intFlag, stringFlag, type Command } from '../args.js';
import { loadCheckpoint, loadCheckpointModels, loadPolicyCheckpoint } from '../checkpoint.js';
import { parsePhysicsFlag } from '../physicsFlag.js';
import { Progress } from '../progress.js';

type Values = Record<string, string | boolean | undefined>;

const SOURCES = ['h5', 'jsonl', 'csv', 'bag', 'buffer'] as const;

/** The flags each subcommand accepts (the command's option list is their union). */
const SUBCOMMAND_FLAGS: Record<string, readonly string[]> = {
  import: ['from', 'mapping', 'out', 'env', 'policy', 'delimiter', 'compression', 'json'],
  info: ['json'],
  collect: ['recipe', 'env', 'policy', 'steps', 'seed', 'out', 'physics', 'mjcf-dir', 'from', 'medium', 'expert', 'compression', 'json', 'quiet'],
};

/** Flags of `collect` that every recipe accepts. */
const COLLECT_COMMON = ['recipe', 'out', 'compression', 'json', 'quiet'];

/** Per recipe: the flags it requires, and the others it accepts (besides `COLLECT_COMMON`). */
const RECIPE_FLAGS: Record<D4rlRecipe | 'none', { required: string[]; optional: string[] }> = {
  none: { required: ['env', 'policy', 'steps'], optional: ['seed', 'physics', 'mjcf-dir'] },
  random: { required: ['env', 'steps'], optional: ['policy', 'seed', 'physics', 'mjcf-dir'] },
  medium: { required: ['env', 'policy', 'steps'], optional: ['seed', 'physics', 'mjcf-dir'] },
  expert: { required: ['env', 'policy', 'steps'], optional: ['seed', 'physics', 'mjcf-dir'] },
  'medium-replay': { required: ['from'], optional: ['env'] },
  'medium-expert': { required: ['medium', 'expert'], optional: ['env'] },
};

/** What each flag holds, for "is required" messages. */
const FLAG_WHAT: Record<string, string> = {
  env: "a task id, see 'mbrl envs'",
  policy: 'random, FILE.onnx or a checkpoint directory',
  steps: 'an integer ≥ 1',
  from: 'a checkpoint directory whose run saved its replay buffer',
  medium: 'the medium FILE.h5',
  expert: 'the expert FILE.h5',
};

/**
 * `mbrl dataset`: offline datasets in D4RL's HDF5 layout — import them from other formats,
 * summarise them, and collect them in a simulator.
 */
export const datasetCommand: Command = {
  name: 'dataset',
  summary: 'Offline datasets (D4RL HDF5): import from h5/jsonl/csv/ROS 2 bags/replay buffers, show statistics, collect in a simulator.',
  usage: [
    'mbrl dataset import --from h5|jsonl|csv|bag|buffer FILE [--mapping FILE] --out FILE.h5 [--env ID] [--policy NAME] [--json]',
    '       mbrl dataset info FILE.h5 [--json]',
    '       mbrl dataset collect --env ID --policy random|FILE.onnx|CHECKPOINT_DIR --steps N [--seed S] --out FILE.h5 [--json]',
    '       mbrl dataset collect --recipe random --env ID --steps N [--seed S] --out FILE.h5',
    '       mbrl dataset collect --recipe medium|expert --env ID --policy FILE.onnx|CHECKPOINT_DIR --steps N [--seed S] --out FILE.h5',
    '       mbrl dataset collect --recipe medium-replay --from CHECKPOINT_DIR --out FILE.h5',
    '       mbrl dataset collect --recipe medium-expert --medium FILE.h5 --expert FILE.h5 --out FILE.h5',
  ].join('\n'),
  description:
    'import: jsonl and csv need a column mapping (YAML or JSON: observations, actions, rewards, terminals, timeouts, episode,\n' +
    '  next_observations); bag needs a YAML topic mapping (controlPeriodMs, resample, stamp, gapPeriods, observations, actions,\n' +
    '  rewards); buffer reads a replay-buffer directory (docs/buffer-format.md). Without next observations, each row takes the\n' +
    "  next row's observation inside its episode and the last row of every episode is dropped.\n" +
    'info: rows, episodes, return statistics, per-dimension ranges, and the next-observation alignment check.\n' +
    'collect: episode k is reset with seed S+k; the random policy draws from a generator seeded with S; a policy checkpoint\n' +
    "  acts deterministically (the Gaussian's mean); a PETS checkpoint plans. The last episode is cut at N steps (timeouts = 1).\n" +
    "--recipe: D4RL's datasets (Fu et al. 2020), named like D4RL's (pendulum-medium): random (uniform random actions); medium\n" +
    '  (a policy trained to about a third of the expert return) and expert; medium-replay (the replay buffer saved in the\n' +
    "  medium policy's checkpoint, episodes kept whole); medium-expert (a medium and an expert file of equal size, concatenated).\n" +
    '  Each stamps metadata recipe, name, envId, policy, steps, meanReturn (over the episodes that ended in the environment).',
  options: {
    from: { type: 'string', valueName: 'KIND|DIR', help: 'import: the input format, h5, jsonl, csv, bag or buffer; collect --recipe medium-replay: the checkpoint directory.' },
    medium: { type: 'string', valueName: 'FILE.h5', help: 'collect --recipe medium-expert: the medium dataset.' },
    expert: { type: 'string', valueName: 'FILE.h5', help: 'collect --recipe medium-expert: the expert dataset (as many rows as the medium one).' },
    mapping: { type: 'string', valueName: 'FILE', help: 'import: the column (jsonl/csv) or topic (bag) mapping, YAML or JSON.' },
    out: { type: 'string', valueName: 'FILE.h5', help: 'import, collect: the HDF5 file to write (atomically).' },
    recipe: { type: 'string', valueName: 'R', help: `collect: a D4RL recipe, ${D4RL_RECIPES.join(', ')}.` },
    env: { type: 'string', valueName: 'ID', help: "collect: task id (see 'mbrl envs'; checked against --from/--medium/--expert); import: recorded as metadata envId." },
    policy: { type: 'string', valueName: 'P', help: 'collect: random, an exported FILE.onnx or a checkpoint directory; import: recorded as metadata.' },
    steps: { type: 'string', valueName: 'N', help: 'collect: environment steps to record.' },
    seed: { type: 'string', valueName: 'S', help: 'collect: seed of the first episode and of the random policy.', default: '0' },
    physics: { type: 'string', valueName: 'K=V,...', help: 'collect: physical variant, e.g. massScale=1.3.' },
    'mjcf-dir': { type: 'string', valueName: 'DIR', help: 'collect: directory of Gymnasium MJCF files (default: $MBRL_MJCF_DIR).' },
    delimiter: { type: 'string', valueName: 'C', help: 'import --from csv: the field separator.', default: ',' },
    compression: { type: 'string', valueName: 'L', help: 'import, collect: gzip level 0-9 of the HDF5 columns.', default: '0' },
    json: { type: 'boolean', help: 'Print the result as JSON on stdout.' },
    quiet: { type: 'boolean', help: 'collect: no progress output.' },
  },
  async run(values, positionals) {
    const [sub, ...rest] = positionals;
    if (sub === undefined) throw new UsageError("mbrl dataset: expected a subcommand, import, info or collect. Run 'mbrl dataset --help'.");
    const allowed = SUBCOMMAND_FLAGS[sub];
    if (!allowed) throw new UsageError(`mbrl dataset: unknown subcommand "${sub}"; expected import, info or collect`);
    for (const [k, v] of Object.entries(values)) {
      const isDefault = datasetCommand.options[k]?.default !== undefined && v === datasetCommand.options[k].default;
      if (v !== undefined && v !== false && !isDefault && !allowed.includes(k)) throw new UsageError(`mbrl dataset ${sub}: --${k} does not apply (options: ${allowed.map((f) => `--${f}`).join(', ')})`);
    }
    if (sub === 'info') return info(rest, values);
    if (sub === 'import') return importDataset(rest, values);
    return collect(rest, values);
  },
};

async function info(rest: string[], values: Values): Promise<number> {
  if (rest.length !== 1) throw new UsageError(`mbrl dataset info: expected one FILE.h5, got ${rest.length === 0 ? 'none' : rest.join(' ')}`);
  const file = rest[0];
  const { dataset, notes } = await loadHdf5Dataset(file);
  const stats = datasetStats(dataset);
  if (values.json) process.stdout.write(`${JSON.stringify({ file, ...stats, notes })}\n`);
  else process.stdout.write(`${formatStats(file, stats, notes)}\n`);
  return 0;
}

async function importDataset(rest: string[], values: Values): Promise<number> {
  const from = stringFlag(values, 'from', SOURCES.join('|'));
  if (!(SOURCES as readonly string[]).includes(from)) throw new UsageError(`--from ${from}: expected one of ${SOURCES.join(', ')}`);
  if (rest.length !== 1) throw new UsageError(`mbrl dataset import: expected one input FILE, got ${rest.length === 0 ? 'none' : rest.join(' ')}`);
  const input = rest[0];
  const out = stringFlag(values, 'out', 'the FILE.h5 to write');
  const compression = intFlag(values, 'compression', 0);
  const mappingFile = values.mapping as string | undefined;
  if ((from === 'jsonl' || from === 'csv' || from === 'bag') && mappingFile === undefined) throw new UsageError(`mbrl dataset import --from ${from}: --mapping FILE is required`);
  if ((from === 'h5' || from === 'buffer') && mappingFile !== undefined) throw new UsageError(`mbrl dataset import --from ${from}: --mapping does not apply`);
  const extra: DatasetMetadata = {
    ...(values.env ? { envId: values.env as string } : {}),
    ...(values.policy ? { policy: values.policy as string } : {}),
  };

  let dataset: OfflineDataset;
  let notes: string[] = [];
  let report: BagImportReport | undefined;
  if (from === 'h5') {
    ({ dataset, notes } = await loadHdf5Dataset(input));
  } else if (from === 'buffer') {
    const loaded = await loadBuffer(input);
    dataset = OfflineDataset.fromReplayBuffer(loaded.buffer, { source: input });
    notes = loaded.warnings;
  } else {
    const text = await readFile(mappingFile as string, 'utf8');
    if (from === 'bag') {
      ({ dataset, report } = await loadRosbagDataset(input, parseBagMapping(text, mappingFile)));
      notes = report.notes;
    } else {
      const { parse } = await import('yaml');
      let mapping: unknown;
      try {
        mapping = parse(text);
      } catch (err) {
        throw new ValidationError(mappingFile as string, 'yaml', `not valid YAML or JSON (${err instanceof Error ? err.message : String(err)})`);
      }
      const load = from === 'csv' ? loadCsvDataset : loadJsonlDataset;
      ({ dataset, notes } = await load(input, mapping as ColumnMapping, { delimiter: values.delimiter as string }));
    }
  }
  if (Object.keys(extra).length > 0) dataset = new OfflineDataset(dataset, { obsDim: dataset.obsDim, actDim: dataset.actDim, metadata: { ...dataset.metadata, ...extra } });
  await saveHdf5Dataset(dataset, out, { compression });
  const stats = datasetStats(dataset);
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ out, from, input, rows: stats.rows, obsDim: stats.obsDim, actDim: stats.actDim, episodes: stats.episodes, alignment: stats.alignment, notes, ...(report ? { report } : {}) }, bigintToString)}\n`);
  } else {
    const lines = [`${input} (${from}) → ${out}: ${stats.rows} rows, obsDim ${stats.obsDim}, actDim ${stats.actDim}, ${stats.episodes} episodes`];
    if (report) lines.push(...formatBagReport(report));
    for (const n of notes) lines.push(`note: ${n}`);
    if (stats.alignment.mismatches > 0) lines.push(`warning: ${alignmentLine(stats)}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  return 0;
}

/** An agent whose action may be computed asynchronously (a planner). */
interface CollectAgent {
  act(obs: Float64Array): Promise<Float64Array>;
  reset(): void;
  dispose(): void;
  description: string;
}

async function collect(rest: string[], values: Values): Promise<number> {
  if (rest.length > 0) throw new UsageError(`mbrl dataset collect: unexpected argument "${rest[0]}"`);
  const recipe = values.recipe === undefined ? undefined : (values.recipe as string);
  if (recipe !== undefined && !(D4RL_RECIPES as readonly string[]).includes(recipe)) throw new UsageError(`--recipe ${recipe}: expected one of ${D4RL_RECIPES.join(', ')}`);
  const rules = RECIPE_FLAGS[(recipe as D4rlRecipe | undefined) ?? 'none'];
  const label = recipe === undefined ? 'mbrl dataset collect' : `mbrl dataset collect --recipe ${recipe}`;
  for (const [k, v] of Object.entries(values)) {
    const isDefault = datasetCommand.options[k]?.default !== undefined && v === datasetCommand.options[k].default;
    if (v === undefined || v === false || isDefault) continue;
    if (!COLLECT_COMMON.includes(k) && !rules.required.includes(k) && !rules.optional.includes(k)) {
      throw new UsageError(`${label}: --${k} does not apply (options: ${[...rules.required, ...rules.optional, ...COLLECT_COMMON.filter((f) => f !== 'recipe')].map((f) => `--${f}`).join(', ')})`);
    }
  }
  for (const k of rules.required) stringFlag(values, k, FLAG_WHAT[k] ?? 'a value');
  const out = stringFlag(values, 'out', 'the FILE.h5 to write');
  const compression = intFlag(values, 'compression', 0);
  if (recipe === 'random' && values.policy !== undefined && values.policy !== 'random') {
    throw new UsageError(`${label}: --policy ${String(values.policy)} does not apply (the random recipe acts uniformly at random; for a trained policy use --recipe medium or expert)`);
  }
  if ((recipe === 'medium' || recipe === 'expert') && values.policy === 'random') {
    throw new UsageError(`${label}: --policy must be a trained policy (FILE.onnx or a checkpoint directory), not random; use --recipe random`);
  }

  let dataset: OfflineDataset;
  let seed: number | undefined;
  if (recipe === 'medium-replay') {
    dataset = await mediumReplayFromCheckpoint(values.from as string, values.env as string | undefined);
  } else if (recipe === 'medium-expert') {
    const [medium, expert] = [(await loadHdf5Dataset(values.medium as string)).dataset, (await loadHdf5Dataset(values.expert as string)).dataset];
    const tag = (ds: OfflineDataset, file: string): OfflineDataset => new OfflineDataset(ds, { obsDim: ds.obsDim, actDim: ds.actDim, metadata: { ...ds.metadata, source: file } });
    dataset = mediumExpertDataset(tag(medium, values.medium as string), tag(expert, values.expert as string));
    if (values.env !== undefined && dataset.metadata.envId !== values.env) {
      throw new ValidationError(label, '--env', `the datasets hold ${String(dataset.metadata.envId)}, not ${String(values.env)}`);
    }
  } else {
    const id = values.env as string;
    const steps = intFlag(values, 'steps', 1);
    seed = intFlag(values, 'seed', 0);
    const env = await makeEnv(id, { physics: parsePhysicsFlag(values.physics as string | undefined), ...(values['mjcf-dir'] ? { mjcfDir: values['mjcf-dir'] as string } : {}) });
    let agent: CollectAgent | undefined;
    try {
      const progress = new Progress(`collect ${id}`, steps, { quiet: values.quiet === true });
      const onProgress = (rows: number, episode: number): void => progress.update(rows, `episode ${episode}`);
      const metadata = { source: 'mbrl dataset collect' };
      if (recipe === 'random') {
        dataset = await randomDataset(env, { steps, seed, onProgress, metadata });
      } else {
        agent = await makeCollectAgent(values.policy as string, env, id, seed);
        dataset =
          recipe === undefined
            ? (await collectDataset(env, agent, { steps, seed, onProgress }, { envId: id, ...metadata, policy: agent.description, seed: String(seed), steps: String(steps) })).dataset
            : await policyDataset(env, agent, { steps, seed, onProgress, metadata, policy: agent.description, recipe: recipe as 'medium' | 'expert' });
      }
      progress.update(steps);
    } finally {
      agent?.dispose();
      env.close();
    }
  }

  await saveHdf5Dataset(dataset, out, { compression });
  const stats = datasetStats(dataset);
  const meta = dataset.metadata;
  const policy = meta.policy ?? '?';
  if (recipe === undefined) {
    if (values.json) process.stdout.write(`${JSON.stringify({ out, env: meta.envId, policy, seed, rows: stats.rows, episodes: stats.episodes, returns: stats.returns })}\n`);
    else process.stdout.write(`${meta.envId}: ${stats.rows} steps in ${stats.episodes} episodes with ${policy}, return ${stats.returns.mean.toFixed(2)} ± ${stats.returns.std.toFixed(2)} → ${out}\n`);
    return 0;
  }
  const meanReturn = Number(meta.meanReturn);
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ out, recipe, name: meta.name, env: meta.envId, policy, ...(seed !== undefined ? { seed } : {}), rows: stats.rows, episodes: stats.episodes, meanReturn, returnEpisodes: Number(meta.returnEpisodes), alignment: stats.alignment })}\n`);
  } else {
    const lines = [`${meta.name}: ${stats.rows} steps in ${stats.episodes} episodes from ${policy}, mean return ${meanReturn.toFixed(2)} over ${meta.returnEpisodes} complete episodes → ${out}`];
    if (stats.alignment.mismatches > 0) lines.push(`warning: ${alignmentLine(stats)}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  return 0;
}

/**
 * D4RL's medium-replay from a policy checkpoint whose run saved its replay buffer (`buffer/`).
 * @throws ValidationError when it holds no buffer or `--env` names another task
 */
async function mediumReplayFromCheckpoint(dir: string, env: string | undefined): Promise<OfflineDataset> {
  const where = 'mbrl dataset collect --recipe medium-replay';
  const ckpt = await loadPolicyCheckpoint(dir);
  const { kind, env: envId } = ckpt.config;
  if (env !== undefined && env !== envId) throw new ValidationError(where, '--env', `${dir} was trained on ${envId}, not ${env}`);
  if (!ckpt.buffer || ckpt.buffer.size === 0) {
    throw new ValidationError(where, '--from', `${dir} holds no replay buffer (checkpoint/buffer/); medium-replay needs the checkpoint of a run that saved its training buffer`);
  }
  // The buffer dropped its oldest rows when the run took more steps than it holds.
  return mediumReplayDataset(ckpt.buffer, { envId, policy: `${dir} (${kind}, ${ckpt.envSteps} steps)`, firstEpisodePartial: ckpt.envSteps > ckpt.buffer.size });
}

/** random | FILE.onnx | a checkpoint directory (a learned policy, or PETS's planner). */
async function makeCollectAgent(policy: string, env: Awaited<ReturnType<typeof makeEnv>>, id: string, seed: number): Promise<CollectAgent> {
  if (policy === 'random') {
    const a = new RandomAgent(env.actionSpace, new Rng(seed));
    return { act: async () => a.act(), reset: () => undefined, dispose: () => undefined, description: 'random' };
  }
  if (policy.endsWith('.onnx')) {
    const probe = await OnnxPolicy.load(policy);
    const fileEnv = probe.metadata.envId;
    probe.dispose();
    const p = await OnnxPolicy.load(policy, { obsDim: env.observationSpace.dim, actDim: env.actionSpace.dim, actionSpace: env.actionSpace, ...(fileEnv !== undefined ? { envId: id } : {}) });
    return { act: (o) => p.actAsync(o), reset: () => undefined, dispose: () => p.dispose(), description: policy };
  }
  const models = await loadCheckpointModels(policy);
  if (models.config.env !== id) throw new ValidationError('mbrl dataset collect', '--policy', `${policy} was trained on ${models.config.env}, not ${id}`);
  await initBackend();
  if (models.policy) {
    const p = new GaussianMlpPolicy(models.policy.spec, { weights: models.policy.weights });
    return { act: async (o) => p.act(o), reset: () => undefined, dispose: () => p.dispose(), description: `${policy} (${models.config.kind}, deterministic)` };
  }
  if (models.config.kind === 'pets') {
    const state = await loadCheckpoint(policy);
    if (!state.weights) throw new ValidationError('mbrl dataset collect', '--policy', `${policy} holds no trained model yet (only warm-up data)`);
    const { agent, predictor } = await makePetsAgent(state.config, state.weights, state.elites, env, new Rng(seed, 2));
    return { act: (o) => agent.actAsync(o), reset: () => agent.reset(), dispose: () => predictor.dispose(), description: `${policy} (pets)` };
  }
  throw new ValidationError('mbrl dataset collect', '--policy', `${policy} holds neither a policy nor a PETS model (config.kind ${JSON.stringify(models.config.kind)})`);
}

function bigintToString(_key: string, v: unknown): unknown {
  return typeof v === 'bigint' ? String(v) : v;
}

function alignmentLine(s: DatasetStats): string {
  const a = s.alignment;
  return `${a.mismatches} of ${a.checked} in-episode rows break the next-observation rule (${a.rule}); first rows ${a.rows.join(', ')}; largest difference ${a.maxAbsDiff.toPrecision(3)}`;
}

function formatBagReport(r: BagImportReport): string[] {
  const lines = [
    `  grid: every ${r.controlPeriodMs} ms from ${fmtNs(r.gridStartNs)} to ${fmtNs(r.gridEndNs)} s: ${r.samples} samples, ${r.samplesInGaps} in gaps, ${r.samplesDropped} dropped`,
    `  resample: observations ${r.resample.observations}, actions ${r.resample.actions}${r.rewardName ? `, rewards ${r.resample.rewards}` : ''}; stamps: ${r.stampRule}`,
  ];
  for (const t of r.topics) {
    lines.push(
      `  ${t.topic} (${t.type}): ${t.messages} messages, ${t.stampSource === 'header' ? 'header stamps' : 'log time'}, median period ${t.medianPeriodMs.toFixed(1)} ms, ${t.outOfOrder} out of order, ${t.duplicates} duplicate stamps, ${t.gaps.length} gaps`,
    );
    for (const g of t.gaps.slice(0, 5)) lines.push(`    gap ${fmtNs(g.fromNs)} → ${fmtNs(g.toNs)} s (${g.periods.toFixed(1)} periods)`);
    if (t.gaps.length > 5) lines.push(`    … ${t.gaps.length - 5} more`);
  }
  return lines;
}

function fmtNs(ns: bigint): string {
  return `${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0').slice(0, 3)}`;
}

function formatStats(file: string, s: DatasetStats, notes: string[]): string {
  const f = (x: number) => (Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(3) : x.toFixed(4));
  const lines = [
    `${file}: ${s.rows} rows, obsDim ${s.obsDim}, actDim ${s.actDim}`,
    `episodes: ${s.episodes} (${s.terminatedEpisodes} terminated, ${s.truncatedEpisodes} cut by a timeout, ${s.unfinishedEpisodes} unfinished); length mean ${s.lengths.mean.toFixed(1)}, min ${s.lengths.min}, max ${s.lengths.max}`,
    `returns: mean ${f(s.returns.mean)} ± ${f(s.returns.std)} (min ${f(s.returns.min)}, max ${f(s.returns.max)})`,
    `rewards: mean ${f(s.rewards.mean)} ± ${f(s.rewards.std)} (min ${f(s.rewards.min)}, max ${f(s.rewards.max)})`,
    `next observations: ${s.alignment.mismatches === 0 ? `aligned (${s.alignment.checked} in-episode rows checked)` : alignmentLine(s)}`,
  ];
  const meta = Object.entries(s.metadata).filter(([k]) => k !== 'observationNames' && k !== 'actionNames');
  if (meta.length > 0) lines.push(`metadata: ${meta.map(([k, v]) => `${k}=${v}`).join(', ')}`);
  const table = (title: string, c: DatasetStats['observations'], names: string[] | undefined) => {
    lines.push(`${title}:`, `  ${'dim'.padEnd(5)}${'min'.padStart(12)}${'max'.padStart(12)}${'mean'.padStart(12)}${'std'.padStart(12)}  name`);
    c.min.forEach((_, j) => lines.push(`  ${String(j).padEnd(5)}${f(c.min[j]).padStart(12)}${f(c.max[j]).padStart(12)}${f(c.mean[j]).padStart(12)}${f(c.std[j]).padStart(12)}  ${names?.[j] ?? ''}`.trimEnd()));
  };
  const names = (k: string) => (s.metadata[k] ? (s.metadata[k] as string).split(',') : undefined);
  table('observations', s.observations, names('observationNames'));
  table('actions', s.actions, names('actionNames'));
  for (const n of notes) lines.push(`note: ${n}`);
  return lines.join('\n');
}
