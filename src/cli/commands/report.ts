import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../data/atomicWrite.js';
import { UsageError, stringFlag, type Command } from '../args.js';
import { linePlotSvg } from '../svgPlot.js';

interface RunConfig {
  kind: string;
  env: string;
  seed: number;
}

/**
 * `mbrl report`: turns finished (or stopped) runs into one learning-result file in the format of
 * shared/BENCHMARKS.md (`bench/results/<algo>-<env>[-<variant>].json`) and its plot (`.svg`).
 */
export const reportCommand: Command = {
  name: 'report',
  summary: 'Collect runs (one per seed) into a learning-result JSON and SVG plot (BENCHMARKS.md format).',
  usage:
    'mbrl report --runs DIR[,DIR...] --out FILE.json --command "..." [--variant NAME] [--reference-source S --reference-mean M --reference-std SD]\n' +
    '       mbrl report --compare RESULT.json[,RESULT.json...] --out FILE.svg [--title T] [--max-steps N]',
  description:
    'Curves are [envSteps, episodeReturn] of every episode the run recorded. For PETS a planned training episode is\n' +
    'itself a noise-free evaluation of the current controller (as in the PETS paper); warm-up episodes are random.\n' +
    'For learned-policy runs (ME-TRPO, MB-MPO) the points are each iteration\'s evaluation return (deterministic policy).\n' +
    'final is the mean and std over seeds of the last episode return; final.envSteps is the smallest step count reached.\n' +
    '--compare overlays learning results (files this command wrote) in one plot: per result, the mean over seeds\n' +
    'of the return at each step count every seed reached (± std as a band), and prints a table of the finals.\n' +
    '--max-steps N (with --compare) keeps only points at ≤ N env steps, for a comparison at an equal real budget:\n' +
    'the table then gives each result at the last step count ≤ N that all its seeds reached.',
  options: {
    runs: { type: 'string', valueName: 'DIRS', help: 'Comma-separated run directories (each with config.json and metrics.jsonl).' },
    out: { type: 'string', valueName: 'FILE', help: 'Result JSON to write; the plot goes beside it with .svg.' },
    command: { type: 'string', valueName: 'CMD', help: 'The command that produced the runs ({seed} for the seed).' },
    variant: { type: 'string', valueName: 'NAME', help: 'Variant label (e.g. reduced).', default: '' },
    'reference-source': { type: 'string', valueName: 'S', help: 'Where the reference number comes from.' },
    'reference-mean': { type: 'string', valueName: 'M', help: 'Reference mean return.' },
    'reference-std': { type: 'string', valueName: 'SD', help: 'Reference std.' },
    compare: { type: 'string', valueName: 'FILES', help: 'Comma-separated result JSONs to overlay in one plot (--out FILE.svg).' },
    title: { type: 'string', valueName: 'T', help: 'The --compare plot title.' },
    'max-steps': { type: 'string', valueName: 'N', help: 'With --compare: only points at ≤ N env steps (equal-budget comparison).' },
  },
  async run(values) {
    if (values.compare !== undefined) {
      let maxSteps = Infinity;
      if (values['max-steps'] !== undefined) {
        maxSteps = Number(values['max-steps']);
        if (!Number.isInteger(maxSteps) || maxSteps < 1) throw new UsageError(`--max-steps ${String(values['max-steps'])}: expected an integer ≥ 1`);
      }
      return compareResults(String(values.compare).split(','), stringFlag(values, 'out', 'the plot path (.svg)'), values.title as string | undefined, maxSteps);
    }
    if (values['max-steps'] !== undefined) throw new UsageError('--max-steps applies to --compare only');
    const dirs = stringFlag(values, 'runs', 'comma-separated run directories').split(',');
    const out = stringFlag(values, 'out', 'the result JSON path');
    if (!out.endsWith('.json')) throw new UsageError(`--out ${out}: expected a .json path`);
    const command = stringFlag(values, 'command', 'the command that produced the runs');
    const curves: Record<string, [number, number][]> = {};
    const seeds: number[] = [];
    let algo = '';
    let env = '';
    for (const dir of dirs) {
      const cfg = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as RunConfig;
      const lines = (await readFile(join(dir, 'metrics.jsonl'), 'utf8')).trim().split('\n').filter((l) => l !== '');
      const points = lines.map((l, i) => {
        const m = JSON.parse(l) as { envSteps?: number; episodeReturn?: number; evalReturn?: number | null };
        const ret = m.episodeReturn ?? m.evalReturn;
        if (typeof m.envSteps !== 'number' || typeof ret !== 'number') throw new UsageError(`${join(dir, 'metrics.jsonl')} line ${i + 1}: expected envSteps and episodeReturn (or evalReturn) numbers`);
        return [m.envSteps, ret] as [number, number];
      });
      if ((algo && cfg.kind !== algo) || (env && cfg.env !== env)) throw new UsageError(`${dir}: ${cfg.kind} on ${cfg.env} differs from the other runs (${algo} on ${env})`);
      algo = cfg.kind;
      env = cfg.env;
      seeds.push(cfg.seed);
      curves[String(cfg.seed)] = points;
    }
    const finals = Object.values(curves).map((c) => c[c.length - 1]);
    const mean = finals.reduce((a, p) => a + p[1], 0) / finals.length;
    const std = Math.sqrt(finals.reduce((a, p) => a + (p[1] - mean) ** 2, 0) / finals.length);
    const refMean = values['reference-mean'] === undefined ? undefined : Number(values['reference-mean']);
    const refStd = values['reference-std'] === undefined ? undefined : Number(values['reference-std']);
    const reference = values['reference-source'] ? { source: values['reference-source'] as string, mean: refMean ?? null, std: refStd ?? null } : undefined;
    const algoName = algo === 'pets' ? 'pets' : algo;
    const result = {
      algo: algoName,
      env,
      variant: values.variant as string,
      command,
      seeds,
      curves,
      final: { envSteps: Math.min(...finals.map((p) => p[0])), mean, std },
      ...(reference ? { reference } : {}),
    };
    await writeFileAtomic(out, `${JSON.stringify(result, null, 1)}\n`);
    const svg = linePlotSvg(
      Object.entries(curves).map(([seed, points]) => ({ label: `seed ${seed}`, points })),
      {
        title: `${algoName} on ${env}${result.variant ? ` (${result.variant})` : ''}: episode return`,
        xLabel: 'environment steps',
        yLabel: 'episode return',
        ...(reference && refMean !== undefined ? { reference: { y: refMean, label: reference.source } } : {}),
      },
    );
    await writeFileAtomic(out.replace(/\.json$/, '.svg'), svg);
    process.stdout.write(`${out}: ${seeds.length} seeds, final ${mean.toFixed(1)} ± ${std.toFixed(1)} at ${result.final.envSteps} steps\n`);
    return 0;
  },
};

interface LearningResult {
  algo: string;
  env: string;
  variant: string;
  seeds: number[];
  curves: Record<string, [number, number][]>;
  final: { envSteps: number; mean: number; std: number };
}

/**
 * The mean and population std over seeds at each step count that every seed's curve has (the
 * seeds of one run share their evaluation schedule; a seed that stopped early ends the curve).
 */
export function meanCurve(curves: Record<string, [number, number][]>): { x: number; mean: number; std: number }[] {
  const perSeed = Object.values(curves).map((c) => new Map(c.map(([x, y]) => [x, y])));
  if (perSeed.length === 0) return [];
  const xs = [...perSeed[0].keys()].filter((x) => perSeed.every((m) => m.has(x))).sort((a, b) => a - b);
  return xs.map((x) => {
    const ys = perSeed.map((m) => m.get(x) as number);
    const mean = ys.reduce((a, b) => a + b, 0) / ys.length;
    return { x, mean, std: Math.sqrt(ys.reduce((a, y) => a + (y - mean) ** 2, 0) / ys.length) };
  });
}

async function compareResults(files: string[], out: string, title: string | undefined, maxSteps = Infinity): Promise<number> {
  if (!out.endsWith('.svg')) throw new UsageError(`--out ${out}: --compare writes a plot; expected a .svg path`);
  const results: { file: string; r: LearningResult }[] = [];
  for (const file of files) {
    const r = JSON.parse(await readFile(file, 'utf8')) as LearningResult;
    if (typeof r.algo !== 'string' || typeof r.curves !== 'object' || r.curves === null || typeof r.final?.mean !== 'number') {
      throw new UsageError(`${file}: expected a learning result (algo, curves, final) as written by mbrl report --runs`);
    }
    results.push({ file, r });
  }
  const envs = new Set(results.map(({ r }) => r.env));
  if (envs.size !== 1) throw new UsageError(`--compare: the results are on different environments (${[...envs].join(', ')})`);
  const label = (r: LearningResult): string => `${r.algo}${r.variant ? ` (${r.variant})` : ''}`;
  const clipped = (r: LearningResult): { x: number; mean: number; std: number }[] => meanCurve(r.curves).filter((p) => p.x <= maxSteps);
  const series = results.map(({ r }) => {
    const c = clipped(r);
    return { label: `${label(r)}, ${r.seeds.length} seeds`, points: c.map((p) => [p.x, p.mean] as [number, number]), band: c.map((p) => [p.x, p.mean - p.std, p.mean + p.std] as [number, number, number]) };
  });
  const env = [...envs][0];
  await writeFileAtomic(out, linePlotSvg(series, { title: title ?? `${env}: mean episode return over seeds (± std)`, xLabel: 'real environment steps', yLabel: 'episode return' }));
  const rows = results.map(({ r }) => {
    if (maxSteps === Infinity) return `| ${label(r)} | ${r.seeds.length} | ${r.final.envSteps} | ${r.final.mean.toFixed(1)} ± ${r.final.std.toFixed(1)} |`;
    const last = clipped(r).at(-1);
    return last ? `| ${label(r)} | ${r.seeds.length} | ${last.x} | ${last.mean.toFixed(1)} ± ${last.std.toFixed(1)} |` : `| ${label(r)} | ${r.seeds.length} | – | no point at ≤ ${maxSteps} steps |`;
  });
  process.stdout.write(`${out}: ${results.length} results on ${env}\n| algorithm | seeds | steps | final return |\n|---|---|---|---|\n${rows.join('\n')}\n`);
  return 0;
}
