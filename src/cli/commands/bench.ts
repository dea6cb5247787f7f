import { loadavg } from 'node:os';
import { basename } from 'node:path';
import { benchEnsembleFit } from '../../bench/ensembleFitBench.js';
import { benchEnvs } from '../../bench/envsBench.js';
import { benchInference } from '../../bench/inferenceBench.js';
import { benchLoop, loopSummaryMarkdown, machineFacts, type LoopBenchOptions, type LoopTransport } from '../../bench/loopBench.js';
import { benchPlan } from '../../bench/planBench.js';
import { benchPlasticity, plasticitySvg } from '../../bench/plasticityBench.js';
import { benchSampleEfficiency } from '../../bench/sampleEfficiencyBench.js';
import { linePlotSvg } from '../svgPlot.js';
import { writeFileAtomic } from '../../data/atomicWrite.js';
import { formatReport, makeReport, type BenchReport } from '../../bench/report.js';
import { initBackend } from '../../core/backend.js';
import { measureGemmPeak } from '../../models/ensembleOnnx.js';
import { UsageError, intFlag, type Command } from '../args.js';

const BENCHMARKS: Record<string, string> = {
  envs: 'environment steps per second, single and vectorised (figures <envId>.stepsPerSec, <envId>.vecStepsPerSec)',
  'ensemble-fit': 'one training epoch of the PETS ensemble (7 × 4 × 200, batch 256, HalfCheetah sizes) vs the same-run GEMM peak',
  plan: 'CEM plan time per control step (population 400, horizon 30, 5 iterations, 20 particles, TS1) vs the GEMM peak',
  plasticity: "MB-MPO's plasticity experiment: per-state KL between pre- and post-update policy on PointGoal2D (--out FILE.json writes the map and an SVG)",
  'sample-efficiency': 'MB-MPO and ME-TRPO vs model-free TRPO on InvertedPendulum-v5: return vs real steps, steps ratio (--out FILE.json writes curves and an SVG)',
  inference: 'policy latency at batch 1 (p50, p99) and throughput at batch 1024, OnnxPolicy vs tfjs, 2 × 64 and 2 × 256 tanh',
  loop: 'the control node in real time: sensor-to-action latency (p50, p99, max) and missed deadlines in process and over MQTT (mosquitto on loopback), with and without a concurrent refit, and RSS over a long run (--out FILE.json writes the result, a summary .md and the memory plot)',
};

/** `mbrl bench <name> [--json]`: speed benchmarks in the format of shared/BENCHMARKS.md. */
export const benchCommand: Command = {
  name: 'bench',
  summary: 'Run a speed benchmark; prints one JSON object with --json (progress goes to stderr).',
  usage: 'mbrl bench <name> [--json] [options]',
  description: `Benchmarks:\n${Object.entries(BENCHMARKS).map(([k, v]) => `  ${k.padEnd(14)}${v}`).join('\n')}`,
  options: {
    json: { type: 'boolean', help: 'Print the report as one JSON object on stdout (a summary goes to stderr).' },
    seconds: { type: 'string', valueName: 'S', help: 'Seconds per measurement.', default: '1' },
    'num-envs': { type: 'string', valueName: 'N', help: 'Copies in vectorised measurements.', default: '8' },
    env: { type: 'string', valueName: 'IDS', help: 'Comma-separated task ids (default: all).' },
    calls: { type: 'string', valueName: 'N', help: 'inference: timed batch-1 ONNX calls per figure (tfjs: N/50, at least 100).', default: '100000' },
    'mjcf-dir': { type: 'string', valueName: 'DIR', help: 'Directory of Gymnasium MJCF files (default: $MBRL_MJCF_DIR).' },
    seed: { type: 'string', valueName: 'S', help: 'plasticity: seed.', default: '0' },
    steps: { type: 'string', valueName: 'N', help: 'plasticity: real training steps.', default: '600' },
    out: { type: 'string', valueName: 'FILE', help: 'plasticity: write the KL map (JSON) there and the heat map beside it (.svg); loop: the result (JSON), a summary (.md) and the memory plot (-memory.svg) beside it.' },
    rates: { type: 'string', valueName: 'HZ,…', help: 'loop: in-process control rates.', default: '100,500,1000' },
    'mqtt-rate': { type: 'string', valueName: 'HZ', help: 'loop: the control rate over MQTT.', default: '200' },
    duration: { type: 'string', valueName: 'S', help: 'loop: seconds measured per case.', default: '20' },
    warmup: { type: 'string', valueName: 'S', help: 'loop: seconds run before measuring each case (after the refit started).', default: '3' },
    transport: { type: 'string', valueName: 'KIND', help: 'loop: inproc, mqtt or all (MQTT is skipped, with the reason, where mosquitto is not installed).', default: 'all' },
    refit: { type: 'string', valueName: 'MODE', help: 'loop: off, on (a refit running in the learner worker) or both.', default: 'both' },
    'memory-minutes': { type: 'string', valueName: 'M', help: 'loop: minutes of the memory run (in process, with a refit); 0 skips it.', default: '10' },
    'memory-rate': { type: 'string', valueName: 'HZ', help: 'loop: the memory run\'s control rate.', default: '500' },
    'refit-rows': { type: 'string', valueName: 'N', help: 'loop: transitions in the refit\'s buffer.', default: '20000' },
    'worker-nice': { type: 'string', valueName: 'N', help: 'loop: the learner worker thread\'s priority offset (learner.workerNice; 0 = the control thread\'s priority).', default: '10' },
    tick: { type: 'string', valueName: 'ON', help: 'loop: what starts the node\'s ticks (tick.on): grid (a fixed wall-clock grid, the default) or sample (each sensor message at once).', default: 'grid' },
  },
  async run(values, positionals) {
    const name = positionals[0];
    if (name === undefined) throw new UsageError(`mbrl bench: which benchmark? Expected one of ${Object.keys(BENCHMARKS).join(', ')}`);
    if (!(name in BENCHMARKS)) throw new UsageError(`mbrl bench: unknown benchmark "${name}"; expected one of ${Object.keys(BENCHMARKS).join(', ')}`);
    if (positionals.length > 1) throw new UsageError(`mbrl bench: unexpected argument "${positionals[1]}"`);
    const seconds = Number(values.seconds);
    if (!Number.isFinite(seconds) || seconds <= 0) throw new UsageError(`--seconds ${String(values.seconds)}: expected a number > 0`);
    const numEnvs = intFlag(values, 'num-envs', 1);
    const backend = await initBackend();
    const log = (line: string): void => void process.stderr.write(`${line}\n`);
    let report: BenchReport;
    if (name === 'envs') {
      const ids = typeof values.env === 'string' ? values.env.split(',') : undefined;
      const { metrics, skipped } = await benchEnvs({ ids, seconds, numEnvs, mjcfDir: values['mjcf-dir'] as string | undefined, log });
      report = makeReport('envs', backend, metrics, skipped);
    } else if (name === 'plasticity') {
      const r = await benchPlasticity({ seed: intFlag(values, 'seed', 0), steps: intFlag(values, 'steps', 1), log });
      if (typeof values.out === 'string') {
        await writeFileAtomic(values.out, `${JSON.stringify({ ...r, command: `npx mbrl bench plasticity --seed ${String(values.seed)} --steps ${String(values.steps)} --out ${values.out}` }, null, 1)}\n`);
        await writeFileAtomic(values.out.replace(/\.json$/, '') + '.svg', plasticitySvg(r));
      }
      report = makeReport('plasticity', backend, r.metrics);
    } else if (name === 'sample-efficiency') {
      const r = await benchSampleEfficiency({ seed: intFlag(values, 'seed', 0), log, mjcfDir: values['mjcf-dir'] as string | undefined });
      if (typeof values.out === 'string') {
        await writeFileAtomic(values.out, `${JSON.stringify({ ...r, command: `npx mbrl bench sample-efficiency --seed ${String(values.seed)} --out ${values.out}` }, null, 1)}\n`);
        const svg = linePlotSvg(
          Object.entries(r.curves).map(([label, points]) => ({ label, points })),
          { title: `${r.env}: deterministic evaluation return vs real steps (seed ${r.seed})`, xLabel: 'real environment steps (log scale not used)', yLabel: 'return' },
        );
        await writeFileAtomic(values.out.replace(/\.json$/, '') + '.svg', svg);
      }
      const metrics: Record<string, number> = {};
      for (const [algo, c] of Object.entries(r.comparison)) {
        metrics[`${algo}.target`] = c.target;
        metrics[`${algo}.modelBasedSteps`] = c.modelBasedSteps;
        metrics[`${algo}.trpoSteps`] = c.modelFreeSteps ?? NaN;
        metrics[`${algo}.ratio`] = c.ratio ?? NaN;
      }
      report = makeReport('sample-efficiency', backend, metrics);
    } else if (name === 'loop') {
      const loop = loopOptions(values);
      const machineAtStart = machineFacts();
      const date = new Date().toISOString();
      const r = await benchLoop({ ...loop, log });
      report = makeReport('loop', backend, r.metrics, r.skipped);
      for (const g of r.goals) log(`goal: ${g.goal}: ${g.figure} = ${g.value.toFixed(3)}: ${g.met ? 'met' : 'NOT met'}`);
      if (typeof values.out === 'string') {
        const base = values.out.replace(/\.json$/, '');
        const command = `npx mbrl bench loop ${loopFlags(values)}${values.json ? ' --json' : ''} --out ${values.out}`;
        const loadAvgAtEnd = loadavg().map((v) => +v.toFixed(2));
        const memoryPlot = r.memory ? `${base}-memory.svg` : undefined;
        const result = { ...report, command, date, machine: { ...machineAtStart, loadAvgAtStart: machineAtStart.loadAvg, loadAvgAtEnd }, setup: r.setup, goals: r.goals, cases: r.cases, memory: r.memory };
        await writeFileAtomic(values.out, `${JSON.stringify(result, null, 1)}\n`);
        await writeFileAtomic(`${base}.md`, loopSummaryMarkdown(r, { command, date, machineAtStart, loadAvgAtEnd, ...(memoryPlot ? { memoryPlot: basename(memoryPlot) } : {}) }));
        if (r.memory && memoryPlot) {
          const svg = linePlotSvg(
            [
              { label: 'RSS (whole process)', points: r.memory.samples.map(([t, rss]) => [t / 60, rss]) },
              { label: 'main heap used', points: r.memory.samples.map(([t, , heap]) => [t / 60, heap]) },
            ],
            { title: `mbrl bench loop: memory over ${r.memory.minutes} min at ${r.memory.rateHz} Hz with back-to-back refits (RSS drift ${r.memory.figures.rssDriftPct.toFixed(2)} %)`, xLabel: 'minutes after the warm-up', yLabel: 'MB' },
          );
          await writeFileAtomic(memoryPlot, svg);
        }
      }
    } else if (name === 'inference') {
      const calls = intFlag(values, 'calls', 1);
      const metrics = await benchInference({ onnxCalls: calls, tfjsCalls: Math.max(100, Math.round(calls / 50)), seconds, log });
      report = makeReport('inference', backend, metrics);
    } else {
      // The peak is measured in the same process, before and after, so the ratio holds on a noisy machine.
      const peakBefore = await measureGemmPeak({ seconds: Math.min(2, seconds) });
      log(`GEMM peak (onnxruntime, n=1024): ${peakBefore.toFixed(1)} GFLOP/s`);
      const metrics: Record<string, number> = {};
      if (name === 'ensemble-fit') {
        const r = await benchEnsembleFit({ seconds: Math.max(seconds, 1) * 5, log });
        metrics.samplesPerSec = r.samplesPerSec;
        metrics.gflops = r.gflops;
      } else {
        const r = await benchPlan({ steps: Math.max(1, Math.round(seconds * 3)), log });
        metrics.msPerStep = r.msPerStep;
        metrics.gflops = r.gflops;
      }
      const peakAfter = await measureGemmPeak({ seconds: Math.min(2, seconds) });
      metrics.peakGflops = Math.max(peakBefore, peakAfter);
      metrics.ratioToPeak = metrics.gflops / metrics.peakGflops;
      report = makeReport(name, backend, metrics);
    }
    if (values.json) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
      process.stderr.write(`${formatReport(report)}\n`);
    } else {
      process.stdout.write(`${formatReport(report)}\n`);
    }
    return 0;
  },
};

/** The `loop` flags as `benchLoop` options. @throws UsageError naming the flag, the value and what was expected */
function loopOptions(values: Record<string, string | boolean | undefined>): LoopBenchOptions {
  const num = (flag: string, ok: (v: number) => boolean, expected: string): number => {
    const v = Number(values[flag]);
    if (!ok(v)) throw new UsageError(`--${flag} ${String(values[flag])}: expected ${expected}`);
    return v;
  };
  const rate = (v: number): boolean => Number.isFinite(v) && v > 0 && v <= 10_000;
  const rates = String(values.rates).split(',').map((x) => {
    const v = Number(x);
    if (x.trim() === '' || !rate(v)) throw new UsageError(`--rates ${String(values.rates)}: expected comma-separated rates in Hz, each in (0, 10000]`);
    return v;
  });
  const transport = String(values.transport);
  if (!['inproc', 'mqtt', 'all'].includes(transport)) throw new UsageError(`--transport ${transport}: expected inproc, mqtt or all`);
  const refit = String(values.refit);
  if (!['on', 'off', 'both'].includes(refit)) throw new UsageError(`--refit ${refit}: expected on, off or both`);
  const tick = String(values.tick);
  if (tick !== 'grid' && tick !== 'sample') throw new UsageError(`--tick ${tick}: expected grid or sample`);
  return {
    rates,
    mqttRate: num('mqtt-rate', rate, 'a rate in Hz in (0, 10000]'),
    durationSec: num('duration', (v) => Number.isFinite(v) && v > 0, 'a number of seconds > 0'),
    warmupSec: num('warmup', (v) => Number.isFinite(v) && v >= 0, 'a number of seconds ≥ 0'),
    transports: transport === 'all' ? ['inproc', 'mqtt'] : [transport as LoopTransport],
    refit: refit === 'both' ? [false, true] : [refit === 'on'],
    memoryMinutes: num('memory-minutes', (v) => Number.isFinite(v) && v >= 0, 'a number of minutes ≥ 0'),
    memoryRate: num('memory-rate', rate, 'a rate in Hz in (0, 10000]'),
    refitRows: intFlag(values, 'refit-rows', 500),
    workerNice: num('worker-nice', (v) => Number.isInteger(v) && v >= 0 && v <= 19, 'an integer in [0, 19]'),
    tick,
  };
}

/** The `loop` flags as given (defaults included), for the command line of a committed result. */
function loopFlags(values: Record<string, string | boolean | undefined>): string {
  return ['rates', 'mqtt-rate', 'duration', 'warmup', 'transport', 'refit', 'memory-minutes', 'memory-rate', 'refit-rows', 'worker-nice', 'tick'].map((k) => `--${k} ${String(values[k])}`).join(' ');
}
