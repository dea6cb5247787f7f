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
  usage: 'mbrl report --runs DIR[,DIR...] --out FILE.json --command "..." [--variant NAME] [--reference-source S --reference-mean M --reference-std SD]',
  description:
    'Curves are [envSteps, episodeReturn] of every episode the run recorded. For PETS a planned training episode is\n' +
    'itself a noise-free evaluation of the current controller (as in the PETS paper); warm-up episodes are random.\n' +
    'For learned-policy runs (ME-TRPO, MB-MPO) the points are each iteration\'s evaluation return (deterministic policy).\n' +
    'final is the mean and std over seeds of the last episode return; final.envSteps is the smallest step count reached.',
  options: {
    runs: { type: 'string', valueName: 'DIRS', help: 'Comma-separated run directories (each with config.json and metrics.jsonl).' },
    out: { type: 'string', valueName: 'FILE', help: 'Result JSON to write; the plot goes beside it with .svg.' },
    command: { type: 'string', valueName: 'CMD', help: 'The command that produced the runs ({seed} for the seed).' },
    variant: { type: 'string', valueName: 'NAME', help: 'Variant label (e.g. reduced).', default: '' },
    'reference-source': { type: 'string', valueName: 'S', help: 'Where the reference number comes from.' },
    'reference-mean': { type: 'string', valueName: 'M', help: 'Reference mean return.' },
    'reference-std': { type: 'string', valueName: 'SD', help: 'Reference std.' },
  },
  async run(values) {
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
