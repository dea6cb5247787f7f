import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { SafeRealSystem, evaluatePolicyOnFixedStarts, makeAdaptConfig, nominalReturn, runAdaptation, type AdaptEpisodeRecord, type AdaptOverrides, type AdaptRunSummary, type AdaptStrategy } from '../../algorithms/adapt.js';
import { initBackend } from '../../core/backend.js';
import { ValidationError } from '../../core/errors.js';
import { writeFileAtomic } from '../../data/atomicWrite.js';
import { makeEnv } from '../../envs/registry.js';
import { UsageError, stringFlag, type Command } from '../args.js';
import { loadPolicyCheckpoint } from '../checkpoint.js';
import { linePlotSvg, type PlotSeries } from '../svgPlot.js';
import { runPolicyAlgo } from './trainPolicyAlgo.js';

/**
 * The file's own keys; every other key is the adaptation config (`AdaptConfig`, validated by
 * `makeAdaptConfig`). Exactly one of `checkpoint` and `train`.
 */
const AdaptFileSchema = z.looseObject({
  /** A policy checkpoint (`mbrl train --algo mb-mpo|me-trpo`); `{seed}` is replaced by each seed. */
  checkpoint: z.string().min(1).optional(),
  /** Train on the nominal simulator first (one run per seed, kept in OUT/train-s{seed}; reused when present). */
  train: z
    .strictObject({
      algo: z.enum(['mb-mpo', 'me-trpo']),
      steps: z.number().int().positive().optional(),
      /** The algorithm's config overrides (as `mbrl train --config`). */
      config: z.record(z.string(), z.unknown()).optional(),
    })
    .optional(),
  /** Seeds, each a full run of every strategy. Default [config.seed ?? 0]. */
  seeds: z.array(z.number().int().nonnegative()).min(1).optional(),
  /** The output directory (the --out flag wins). */
  out: z.string().min(1).optional(),
});

/**
 * `mbrl adapt --config FILE.yaml`: deploys a policy trained on the nominal simulator to a
 * perturbed "real" system and compares adaptation strategies at equal real steps.
 */
export const adaptCommand: Command = {
  name: 'adapt',
  summary: 'Sim-to-real: adapt a trained policy on a perturbed system, comparing strategies.',
  usage: 'mbrl adapt --config FILE.yaml [--out DIR] [--quiet]',
  description:
    'Reads the checkpoint (or `train:` settings), the env, the perturbation (`physics`), the strategies\n' +
    '(frozen, mbMpo, refit, mpc, scratch), `realSteps` and `seeds` from FILE (see launch/adapt_pendulum.yaml).\n' +
    'Writes DIR/adapt.jsonl (one line per real episode per strategy per seed), DIR/adapt.svg (real return\n' +
    'against real steps, mean over seeds) and DIR/adapt-summary.json, and prints the summary as JSON\n' +
    '(the last line of stdout: a `train:` run first prints its own result line).',
  options: {
    config: { type: 'string', valueName: 'FILE', help: 'The adaptation run (YAML or JSON).' },
    out: { type: 'string', valueName: 'DIR', help: "Output directory (default: the file's `out`, else runs/adapt-ENV)." },
    quiet: { type: 'boolean', help: 'No progress lines on stderr.' },
  },
  async run(values) {
    const file = stringFlag(values, 'config', 'the adaptation run, e.g. launch/adapt_pendulum.yaml');
    const { parse } = await import('yaml');
    let raw: unknown;
    try {
      raw = parse(await readFile(file, 'utf8'));
    } catch (err) {
      throw new ValidationError(file, 'yaml', `not readable YAML or JSON (${err instanceof Error ? err.message : String(err)})`);
    }
    const parsed = AdaptFileSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ValidationError(file, issue.path.join('.') || 'config', issue.message);
    }
    const { checkpoint, train, seeds: seedList, out, ...rest } = parsed.data;
    if ((checkpoint === undefined) === (train === undefined)) throw new ValidationError(file, 'checkpoint', 'expected exactly one of `checkpoint` (a trained run) and `train` (train first)');
    if (seedList && rest.seed !== undefined) throw new ValidationError(file, 'seed', 'give `seeds` (a list) or `seed`, not both');
    const base = makeAdaptConfig(rest as AdaptOverrides);
    const seeds = seedList ?? [base.seed];
    const dir = typeof values.out === 'string' ? values.out : (out ?? join('runs', `adapt-${base.env}`));
    const log = (line: string): void => {
      if (!values.quiet) process.stderr.write(`${line}\n`);
    };
    await mkdir(dir, { recursive: true });
    await initBackend();
    // The perturbation is checked by the environment itself: fail now, not after training.
    (await makeEnv(base.env, { physics: base.physics, ...(base.maxEpisodeSteps === null ? {} : { maxEpisodeSteps: base.maxEpisodeSteps }) })).close();
    const jsonl = join(dir, 'adapt.jsonl');
    await writeFileAtomic(jsonl, '');
    const records: AdaptEpisodeRecord[] = [];
    const summaries: (AdaptRunSummary & { nominalReturn: number; nominalEvalReturn: number })[] = [];
    for (const seed of seeds) {
      const config = makeAdaptConfig({ ...(rest as AdaptOverrides), seed });
      let runDir: string;
      if (train) {
        runDir = join(dir, `train-s${seed}`);
        if (!existsSync(join(runDir, 'checkpoint'))) {
          const trainConfig = join(dir, `train-s${seed}.config.json`);
          await writeFileAtomic(trainConfig, `${JSON.stringify({ ...train.config, maxEpisodeSteps: config.maxEpisodeSteps })}\n`);
          log(`adapt: training ${train.algo} on the nominal ${config.env}, seed ${seed} → ${runDir}`);
          const code = await runPolicyAlgo(train.algo, { env: config.env, seed: String(seed), ...(train.steps ? { steps: String(train.steps) } : {}), out: runDir, config: trainConfig, quiet: values.quiet });
          if (code !== 0) return code;
        }
      } else {
        runDir = (checkpoint as string).replaceAll('{seed}', String(seed));
      }
      const ckpt = await loadPolicyCheckpoint(runDir);
      if (ckpt.config.env !== config.env) throw new UsageError(`${runDir}: the checkpoint was trained on ${ckpt.config.env}, but the adaptation config's env is ${config.env}`);
      const envOptions = config.maxEpisodeSteps === null ? {} : { maxEpisodeSteps: config.maxEpisodeSteps };
      const trained = {
        policySpec: ckpt.policySpec,
        policyWeights: ckpt.policyWeights,
        ensemble: ckpt.ensemble,
        ...(typeof ckpt.config.ensemble === 'object' && ckpt.config.ensemble !== null ? { ensembleConfig: ckpt.config.ensemble } : {}),
        ...(ckpt.buffer ? { simBuffer: ckpt.buffer } : {}),
        ...(typeof ckpt.config.innerStepSize === 'number' ? { innerStepSize: ckpt.config.innerStepSize } : {}),
      };
      const nominal = await makeEnv(config.env, envOptions);
      let nominalRet: number;
      try {
        nominalRet = await nominalReturn(nominal, trained, { episodes: 3, seed: 1_000_000 + seed });
      } finally {
        nominal.close();
      }
      // The like-for-like level: the same fixed start states as each strategy's final evaluation.
      let nominalEval = NaN;
      if (config.evaluation.episodes > 0) {
        const nominalSafe = new SafeRealSystem(await makeEnv(config.env, envOptions), config.safety);
        try {
          nominalEval = mean(await evaluatePolicyOnFixedStarts(nominalSafe, trained.policySpec, trained.policyWeights, config.evaluation));
        } finally {
          nominalSafe.close();
        }
      }
      log(`adapt: seed ${seed}: nominal-simulator return ${nominalRet.toFixed(1)}${config.evaluation.episodes > 0 ? ` (on ${config.evaluation.episodes} fixed starts ${nominalEval.toFixed(1)})` : ''}; real system physics ${JSON.stringify(config.physics)}`);
      const result = await runAdaptation(
        { config, trained, makeRealEnv: () => makeEnv(config.env, { ...envOptions, physics: config.physics }) },
        {
          log,
          onEpisode: async (r) => {
            records.push(r);
            await appendFile(jsonl, `${JSON.stringify(r)}\n`);
          },
        },
      );
      summaries.push(...result.summaries.map((s) => ({ ...s, nominalReturn: nominalRet, nominalEvalReturn: nominalEval })));
    }
    const strategies = base.strategies;
    await writeFileAtomic(
      join(dir, 'adapt.svg'),
      linePlotSvg(curves(records, strategies), {
        title: `${base.env}: adaptation on the perturbed system (${seeds.length} seed${seeds.length > 1 ? 's' : ''})`,
        xLabel: 'real env steps',
        yLabel: 'real episode return',
        reference: { y: mean(summaries.map((s) => s.nominalReturn)), label: 'nominal-simulator return' },
      }),
    );
    const summary = {
      kind: 'adapt-summary',
      env: base.env,
      physics: base.physics,
      realSteps: base.realSteps,
      seeds,
      evaluation: base.evaluation,
      strategies: strategies.map((strategy) => {
        const runs = summaries.filter((s) => s.strategy === strategy);
        const nominalRet = mean(runs.map((s) => s.nominalReturn));
        const final = mean(runs.map((s) => s.finalReturnMean3));
        const nominalEval = mean(runs.map((s) => s.nominalEvalReturn));
        const evalRet = mean(runs.map((s) => s.evalReturn));
        return {
          strategy,
          nominalReturn: nominalRet,
          preReturn: mean(runs.map((s) => s.preReturn)),
          finalReturnMean3: final,
          /** For returns of either sign: 1 at the nominal return, falling as the final return falls below it. */
          recovery: recoveryOf(final, nominalRet),
          /** The fixed-start evaluation (`evaluation`): the trained policy on the nominal simulator, and the final controller on the real system. */
          nominalEvalReturn: nominalEval,
          evalReturn: evalRet,
          evalReturnStd: std(runs.map((s) => s.evalReturn)),
          evalRecovery: recoveryOf(evalRet, nominalEval),
          rollbacks: runs.reduce((a, s) => a + s.rollbacks, 0),
          runs,
        };
      }),
    };
    for (const s of summary.strategies) {
      log(`adapt: ${s.strategy.padEnd(8)} last-3 training episodes ${s.finalReturnMean3.toFixed(1)} (recovery ${fmt(s.recovery)}); fixed-start evaluation ${s.evalReturn.toFixed(1)} ± ${s.evalReturnStd.toFixed(1)} of nominal ${s.nominalEvalReturn.toFixed(1)} (recovery ${fmt(s.evalRecovery)}), rollbacks ${s.rollbacks}`);
    }
    await writeFileAtomic(join(dir, 'adapt-summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return 0;
  },
};

/** Return against real steps per strategy: the mean over seeds at each episode index. */
function curves(records: readonly AdaptEpisodeRecord[], strategies: readonly AdaptStrategy[]): PlotSeries[] {
  return strategies.map((strategy) => {
    const byEpisode = new Map<number, AdaptEpisodeRecord[]>();
    for (const r of records) if (r.strategy === strategy) byEpisode.set(r.episode, [...(byEpisode.get(r.episode) ?? []), r]);
    const points = [...byEpisode.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([, rs]) => [mean(rs.map((r) => r.realSteps)), mean(rs.map((r) => r.episodeReturn))] as [number, number]);
    return { label: strategy, points };
  });
}

/**
 * The fraction of the nominal return recovered, for returns of either sign: final / nominal for
 * positive returns; nominal / final for negative ones (a cost twice the nominal gives 0.5).
 */
function recoveryOf(final: number, nominal: number): number | null {
  if (!Number.isFinite(final) || !Number.isFinite(nominal) || nominal === 0) return null;
  if (nominal > 0) return final / nominal;
  return final >= 0 ? 1 : nominal / final;
}

function mean(xs: readonly number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Population standard deviation over seeds (NaN when empty). */
function std(xs: readonly number[]): number {
  const m = mean(xs);
  return Math.sqrt(mean(xs.map((x) => (x - m) ** 2)));
}

function fmt(x: number | null): string {
  return x === null ? 'n/a' : x.toFixed(2);
}
