/**
 * `mbrl bench loop`: the control node's sensor-to-action latency and missed control deadlines in
 * real time, in process and over MQTT, with and without a refit of the dynamics ensemble running
 * at the same time, and its resident memory over a long run (issue 7's benchmark).
 *
 * What runs, per case:
 * - **The node**: a real `ControlNode` with its whole pipeline (validation, state assembly on the
 *   wall-clock grid, the controller, the safety filter with a rate limit and the watchdog, the
 *   action publication, transitions into the disk buffer, diagnostics every second). Controller:
 *   an ONNX policy (2 × 64 tanh MLP, 17 observations → 6 actions, HalfCheetah's sizes, seeded
 *   initial weights), one onnxruntime thread, run synchronously in the tick.
 * - **The robot stand-in**, in the same process: publishes a `sensor_msgs/msg/JointState` (9
 *   joints; position[1..8] and velocity[0..8] form the 17-value observation) at the rate, stamped
 *   with its publication time (`header.stamp`, the node's clock), and receives the action as a
 *   `sensor_msgs/msg/JointState` command (effort[0..5], as `topic_based_ros2_control` sends
 *   commands), whose `header.stamp` is the node's tick. In process both sides use one
 *   `LoopbackTransport` (cloning messages, as a serialising transport would); over MQTT each has
 *   its own client of a mosquitto broker the bench starts on a free loopback port (with
 *   `set_tcp_nodelay true`), at the QoS of the node config (default 1).
 * - **With refit**: the learner (`Learner`, the node's own class and worker thread) refits the
 *   PETS ensemble of HalfCheetah's sizes (7 × 4 × 200, the node's fit settings) back to back
 *   (a refit is due after every new transition) on a buffer of `refitRows` transitions, fed the
 *   node's transitions as the node feeds its learner. It runs beside the node rather than inside
 *   it: the node learns only for a planner or a learned policy, and a planner cannot act at
 *   1 kHz; promoted models are therefore not installed into the (ONNX) controller.
 *
 * Figures per case (`<transport>.<rate>hz[.refit].<figure>`):
 * - `p50Ms`, `p99Ms`, `maxMs`: sensor to action, from the publication of the sensor message a
 *   tick acted on (the newest one it had, `TickInfo.sampleStampsNs`) to the robot's receipt of
 *   that tick's action. It includes the sample's wait for the node's tick (the node samples on
 *   its own grid, zero-order hold), up to one period; with `tick: 'sample'` (the node's
 *   `tick.on: sample`) the message starts the tick, and that wait is gone. The robot's clock runs slightly fast (its
 *   period is shorter by period / `sweepSec`), as two free-running clocks would, so that the phase
 *   between its messages and the node's ticks sweeps the whole period every `sweepSec` instead of
 *   freezing at whatever it was at the start.
 * - `pipelineP50Ms`, `pipelineP99Ms`, `pipelineMaxMs`: from the node's tick to the robot's receipt
 *   of its action: the node's own share (pipeline, controller, safety, publication, transport).
 * - `missed`: the node's missed-deadline counter (`ControlNodeStats.deadlines.missed`: actions
 *   published more than one period after their tick was due, plus periods with no tick at all),
 *   and `skipped`, the latter alone.
 * - `ticks` (actions received while measuring), `expectedTicks` (rate × seconds measured),
 *   `watchdogTicks` (ticks the watchdog held the safe action), `cpuPct` (process CPU time, all
 *   threads, per wall second), `loadAvg1` (the machine's 1-minute load average at the end), and
 *   with a refit `refits` (refits finished while measuring) and `fittingPct` (share of 10 Hz
 *   samples at which the learner reported a fit in progress).
 *
 * Memory run (`memory.*`, and `rssDriftPct`): one long case in process with a refit, sampling
 * `process.memoryUsage()` (RSS of the whole process, worker included, and the main heap) at 1 Hz
 * after a warm-up of a tenth of the run (at most 60 s) that also lasts until the first refit
 * finished (so both sides hold a promoted model, as in the steady state); start and end are the medians over the
 * first and the last tenth of the samples (at most 30 s each), drift = (end − start) / start.
 * Latencies are kept in fixed histograms (1 µs buckets), so the bench's own memory stays flat.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, freemem, getPriority, loadavg, release, tmpdir, totalmem, type } from 'node:os';
import { join } from 'node:path';
import { interval, type Subscription } from 'rxjs';
import { makePetsConfig } from '../algorithms/mbrl.js';
import { MosquittoBroker, findMosquitto, freePort } from './mosquittoBroker.js';
import { ValidationError, describe } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { ReplayBuffer } from '../data/replayBuffer.js';
import { exportMetadataProps } from '../export/exportMetadata.js';
import { policyToOnnx } from '../export/policyOnnx.js';
import { NODE_CONFIG_DEFAULTS, parseNodeConfig, type NodeConfig } from '../node/config.js';
import { ControlNode, type TickInfo } from '../node/controlNode.js';
import { RealTimeScheduler } from '../node/controlNodeScheduler.js';
import { LEARNER_DEFAULTS, Learner } from '../node/learner.js';
import { initialPolicyWeights, makePolicySpec } from '../policies/gaussianMlpPolicy.js';
import { LoopbackTransport, wallClockNs } from '../transports/loopback.js';
import { nsFromTime, timeFromNs, type JointState } from '../transports/messages.js';
import { MqttTransport } from '../transports/mqtt.js';
import { JOINT_STATE_TYPE } from '../transports/sim.js';
import { QOS_DEFAULT, QOS_SENSOR_DATA, type Transport, type Unsubscribe } from '../transports/transport.js';

/** `inproc`: one `LoopbackTransport` in the node's process; `mqtt`: through a mosquitto broker on loopback. */
export type LoopTransport = 'inproc' | 'mqtt';

/** Options of `benchLoop`. */
export interface LoopBenchOptions {
  /** In-process control rates, Hz. @default [100, 500, 1000] */
  rates?: number[];
  /** The control rate over MQTT, Hz. @default 200 */
  mqttRate?: number;
  /** Transports measured. @default ['inproc', 'mqtt'] */
  transports?: LoopTransport[];
  /** Refit modes measured: false without, true with a refit running. @default [false, true] */
  refit?: boolean[];
  /** Seconds measured per case. @default 20 */
  durationSec?: number;
  /** Seconds run before measuring each case (after the refit started). @default 3 */
  warmupSec?: number;
  /** Minutes of the memory run (in process, with a refit); 0 skips it. @default 10 */
  memoryMinutes?: number;
  /** The memory run's rate, Hz. @default 500 */
  memoryRate?: number;
  /** Transitions in the refit's buffer (its capacity too, so it is full from the start). @default 20000 */
  refitRows?: number;
  /** The learner worker thread's priority offset (`LearnerConfig.workerNice`, as the node's default). @default 10 */
  workerNice?: number;
  /** Seconds for the phase between the robot's messages and the node's ticks to sweep a whole period (see the file comment). @default 5 */
  sweepSec?: number;
  /**
   * What starts the node's ticks (`NodeConfig.tick`): `grid` (the node's default, a fixed
   * wall-clock grid) or `sample` (each sensor message at once, the grid only while it is silent).
   * @default 'grid'
   */
  tick?: 'grid' | 'sample';
  /** The mosquitto binary. Default: looked up in the usual places and on PATH; null: MQTT skipped. */
  mosquitto?: string | null;
  /** Progress lines. Default: none. */
  log?: (line: string) => void;
}

/** One measured case. */
export interface LoopCaseResult {
  /** The metrics prefix, e.g. `inproc.1000hz.refit`. */
  name: string;
  transport: LoopTransport;
  rateHz: number;
  refit: boolean;
  /** Seconds actually measured. */
  seconds: number;
  /** The case's figures (names without the prefix; see the file comment). */
  figures: Record<string, number>;
}

/** The long run's memory figures and samples. */
export interface LoopMemoryResult {
  minutes: number;
  rateHz: number;
  /** Seconds the warm-up took (see the file comment). */
  warmupSec: number;
  /** [seconds since the end of the warm-up, RSS MB, main heap used MB], one per sample. */
  samples: [number, number, number][];
  figures: Record<string, number>;
}

/** One of the issue's goals, as measured. */
export interface LoopGoal {
  goal: string;
  /** The figure(s) checked. */
  figure: string;
  value: number;
  met: boolean;
}

/** What `benchLoop` returns. */
export interface LoopBenchResult {
  /** Every case's figures under its prefix, `memory.*` and `rssDriftPct` (see the file comment). */
  metrics: Record<string, number>;
  /** Cases not run, with the reason (e.g. mosquitto not installed). */
  skipped: Record<string, string>;
  cases: LoopCaseResult[];
  memory: LoopMemoryResult | null;
  goals: LoopGoal[];
  /** The set-up, in words and numbers, for the committed result. */
  setup: Record<string, unknown>;
}

const SENSOR_TOPIC = '/joint_states';
const ACTION_TOPIC = '/joint_commands';
const TOPIC_PREFIX = 'mbrl_bench';
const JOINTS = ['rootx', 'rootz', 'rooty', 'bthigh', 'bshin', 'bfoot', 'fthigh', 'fshin', 'ffoot'];
const OBS_DIM = 17;
const ACT_DIM = 6;
const TASK = 'HalfCheetah-v5';

/**
 * Runs the cases and the memory run (see the file comment) and returns their figures and the
 * issue's goals as measured. Cases run one after the other, each with a fresh node (and learner).
 * @example const r = await benchLoop({ rates: [1000], transports: ['inproc'], memoryMinutes: 0 });
 */
export async function benchLoop(options: LoopBenchOptions = {}): Promise<LoopBenchResult> {
  const rates = options.rates ?? [100, 500, 1000];
  const mqttRate = options.mqttRate ?? 200;
  const transports = options.transports ?? ['inproc', 'mqtt'];
  const refitModes = options.refit ?? [false, true];
  const durationSec = options.durationSec ?? 20;
  const warmupSec = options.warmupSec ?? 3;
  const memoryMinutes = options.memoryMinutes ?? 10;
  const memoryRate = options.memoryRate ?? 500;
  const refitRows = options.refitRows ?? 20_000;
  const workerNice = options.workerNice ?? LEARNER_DEFAULTS.workerNice;
  const sweepSec = options.sweepSec ?? 5;
  const tick = options.tick ?? 'grid';
  const log = options.log ?? (() => undefined);
  const where = 'benchLoop';
  for (const [key, rs] of [['rates', rates], ['mqttRate', [mqttRate]], ['memoryRate', [memoryRate]]] as const) {
    for (const r of rs) if (!(Number.isFinite(r) && r > 0 && r <= 10_000)) throw new ValidationError(where, key, `expected rates in Hz in (0, 10000], got ${describe(r)}`);
  }
  for (const [key, v, min] of [['durationSec', durationSec, 0], ['sweepSec', sweepSec, 0]] as const) if (!(Number.isFinite(v) && v > min)) throw new ValidationError(where, key, `expected a number of seconds > ${min}, got ${describe(v)}`);
  for (const [key, v] of [['warmupSec', warmupSec], ['memoryMinutes', memoryMinutes]] as const) if (!(Number.isFinite(v) && v >= 0)) throw new ValidationError(where, key, `expected a number ≥ 0, got ${describe(v)}`);
  if (!(Number.isInteger(refitRows) && refitRows >= 500)) throw new ValidationError(where, 'refitRows', `expected an integer ≥ 500, got ${describe(refitRows)}`);
  if (!(Number.isInteger(workerNice) && workerNice >= 0 && workerNice <= 19)) throw new ValidationError(where, 'workerNice', `expected an integer in [0, 19], got ${describe(workerNice)}`);
  if (tick !== 'grid' && tick !== 'sample') throw new ValidationError(where, 'tick', `expected 'grid' or 'sample', got ${describe(tick)}`);

  const dir = await mkdtemp(join(tmpdir(), 'mbrl-bench-loop-'));
  const metrics: Record<string, number> = {};
  const skipped: Record<string, string> = {};
  const cases: LoopCaseResult[] = [];
  let memory: LoopMemoryResult | null = null;
  let broker: MosquittoBroker | null = null;
  try {
    const policyFile = join(dir, 'policy.onnx');
    await writeFile(policyFile, benchPolicyOnnx());
    const env: CaseEnv = { dir, policyFile, refitRows, workerNice, sweepSec, warmupSec, tick, log, brokerUrl: null, index: 0 };

    const specs: { transport: LoopTransport; rateHz: number; refit: boolean }[] = [];
    for (const transport of transports) {
      for (const rateHz of transport === 'inproc' ? rates : [mqttRate]) for (const refit of refitModes) specs.push({ transport, rateHz, refit });
    }
    if (specs.some((s) => s.transport === 'mqtt')) {
      const bin = options.mosquitto === undefined ? findMosquitto() : options.mosquitto;
      if (bin === null || bin === undefined) {
        for (const s of specs.filter((x) => x.transport === 'mqtt')) skipped[caseName(s)] = 'mosquitto broker binary not found (apt-get install mosquitto)';
      } else {
        broker = new MosquittoBroker(await freePort(), dir, undefined, bin);
        await broker.start();
        env.brokerUrl = broker.url;
        log(`mosquitto ${bin} on ${broker.url}`);
      }
    }
    for (const spec of specs) {
      const name = caseName(spec);
      if (name in skipped) continue;
      const r = await runCase({ ...spec, name, durationSec }, env);
      cases.push(r.result);
      for (const [k, v] of Object.entries(r.result.figures)) metrics[`${name}.${k}`] = v;
      log(caseLine(r.result));
    }
    if (memoryMinutes > 0) {
      const totalSec = memoryMinutes * 60;
      const warm = Math.min(60, totalSec / 10);
      log(`memory run: ${memoryMinutes} min at ${memoryRate} Hz in process with a refit (warm-up: ${warm.toFixed(1)} s and until the first refit finished)`);
      const r = await runCase({ transport: 'inproc', rateHz: memoryRate, refit: true, name: 'memory', durationSec: totalSec, memory: true, warmupSec: warm }, env);
      const samples = r.memorySamples as [number, number, number][];
      const figures: Record<string, number> = { ...r.result.figures, ...memoryFigures(samples), minutes: memoryMinutes };
      memory = { minutes: memoryMinutes, rateHz: memoryRate, warmupSec: +r.warmedSec.toFixed(1), samples, figures };
      for (const [k, v] of Object.entries(figures)) metrics[`memory.${k}`] = v;
      metrics.rssDriftPct = figures.rssDriftPct;
      log(`${caseLine({ ...r.result, name: 'memory' })}; RSS ${figures.rssStartMb.toFixed(1)} → ${figures.rssEndMb.toFixed(1)} MB (max ${figures.rssMaxMb.toFixed(1)}), drift ${figures.rssDriftPct.toFixed(2)} %`);
    }
  } finally {
    await broker?.stop();
    await rm(dir, { recursive: true, force: true });
  }
  return {
    metrics,
    skipped,
    cases,
    memory,
    goals: loopGoals(metrics),
    setup: {
      controller: 'ONNX policy, 2 × 64 tanh MLP, 17 observations → 6 actions, 1 onnxruntime thread, synchronous',
      sensor: `sensor_msgs/msg/JointState on ${SENSOR_TOPIC} (9 joints; observation position[1..8], velocity[0..8])`,
      action: `sensor_msgs/msg/JointState on ${ACTION_TOPIC} (effort[0..5], header.stamp = the tick)`,
      safety: 'bounds ±1, rate limit 50 /s, watchdog 5 periods',
      inproc: 'LoopbackTransport (structuredClone per delivery), robot stand-in in the same process',
      mqtt: `mosquitto on 127.0.0.1 (set_tcp_nodelay true), node and robot stand-in as two MqttTransport clients in the bench process, QoS ${NODE_CONFIG_DEFAULTS.mqtt.qos} (the node config's default), JSON payloads`,
      refit: `Learner worker thread refitting the PETS ensemble (${TASK} sizes: 7 × 4 × 200) back to back on ${refitRows} transitions, fed the node's transitions; promoted models not installed (ONNX controller); the worker thread at nice +${workerNice} relative to the control thread (learner.workerNice, Linux)`,
      tick: tick === 'sample' ? `on each ${SENSOR_TOPIC} message (tick.on: sample; at most one per half period; grid ticks after the watchdog's timeout of silence)` : 'fixed wall-clock grid (tick.on: grid, the default)',
      robotClock: `robot period shorter by period / ${sweepSec} s, so the sensor/tick phase sweeps a period every ${sweepSec} s`,
      durationSec,
      warmupSec,
      rates,
      mqttRate,
      memoryMinutes,
      memoryRate,
    },
  };
}

/** The issue's goals, from the metrics: p99 ≤ 1 ms in process at 1 kHz, ≤ 5 ms over MQTT at 200 Hz, no missed deadline during a refit, RSS within ±5 %. */
export function loopGoals(metrics: Record<string, number>): LoopGoal[] {
  const goals: LoopGoal[] = [];
  for (const suffix of ['', '.refit']) {
    const inproc = metrics[`inproc.1000hz${suffix}.p99Ms`];
    if (inproc !== undefined) goals.push({ goal: `p99 ≤ 1 ms in process at 1 kHz${suffix ? ' during a refit' : ''}`, figure: `inproc.1000hz${suffix}.p99Ms`, value: inproc, met: inproc <= 1 });
    const mqtt = metrics[`mqtt.200hz${suffix}.p99Ms`];
    if (mqtt !== undefined) goals.push({ goal: `p99 ≤ 5 ms over MQTT at 200 Hz${suffix ? ' during a refit' : ''}`, figure: `mqtt.200hz${suffix}.p99Ms`, value: mqtt, met: mqtt <= 5 });
  }
  const refitMissed = Object.keys(metrics).filter((k) => /\.refit\.missed$/.test(k) || k === 'memory.missed');
  if (refitMissed.length > 0) {
    const value = refitMissed.reduce((n, k) => n + metrics[k], 0);
    goals.push({ goal: 'zero missed deadlines during a refit', figure: refitMissed.join(' + '), value, met: value === 0 });
  }
  if (metrics.rssDriftPct !== undefined) goals.push({ goal: `resident memory flat (± 5 %) over the ${metrics['memory.minutes']}-minute run`, figure: 'rssDriftPct', value: metrics.rssDriftPct, met: Math.abs(metrics.rssDriftPct) <= 5 });
  return goals;
}

/** The metrics prefix of a case. */
function caseName(s: { transport: LoopTransport; rateHz: number; refit: boolean }): string {
  return `${s.transport}.${s.rateHz}hz${s.refit ? '.refit' : ''}`;
}

function caseLine(r: LoopCaseResult): string {
  const f = r.figures;
  return `${r.name}: sensor→action p50 ${f.p50Ms.toFixed(3)} p99 ${f.p99Ms.toFixed(3)} max ${f.maxMs.toFixed(3)} ms; tick→action p99 ${f.pipelineP99Ms.toFixed(3)} ms; missed ${f.missed} (skipped ${f.skipped}); ${f.ticks}/${f.expectedTicks} ticks; CPU ${f.cpuPct.toFixed(0)} %; load ${f.loadAvg1.toFixed(2)}${r.refit ? `; ${f.refits} refits, fitting ${f.fittingPct.toFixed(0)} %` : ''}`;
}

// ---------------------------------------------------------------------------------------------
// One case.

interface CaseEnv {
  dir: string;
  policyFile: string;
  refitRows: number;
  workerNice: number;
  sweepSec: number;
  warmupSec: number;
  tick: 'grid' | 'sample';
  log: (line: string) => void;
  brokerUrl: string | null;
  /** Cases run so far (unique MQTT client ids). */
  index: number;
}

interface CaseSpec {
  transport: LoopTransport;
  rateHz: number;
  refit: boolean;
  name: string;
  durationSec: number;
  /** Sample the process's memory while measuring. */
  memory?: boolean;
  /** Overrides the environment's warm-up; with `memory`, the warm-up also lasts until the first refit finished. */
  warmupSec?: number;
}

/** Longest wait for the learner's worker to start its first fit. */
const FIT_START_TIMEOUT_SEC = 180;
/** Longest wait for the memory run's first refit to finish (its warm-up lasts until then). */
const FIRST_REFIT_TIMEOUT_SEC = 1200;

async function runCase(spec: CaseSpec, env: CaseEnv): Promise<{ result: LoopCaseResult; warmedSec: number; memorySamples?: [number, number, number][] }> {
  const index = env.index++;
  const periodMs = 1000 / spec.rateHz;
  const checkpointDir = join(env.dir, `case-${index}`);
  await mkdir(checkpointDir, { recursive: true });
  const mqttUrl = spec.transport === 'mqtt' ? env.brokerUrl : null;
  if (spec.transport === 'mqtt' && mqttUrl === null) throw new Error(`benchLoop: case ${spec.name} needs the broker`);
  const config = benchNodeConfig({ periodMs, tick: env.tick, policyFile: env.policyFile, checkpointDir, mqtt: mqttUrl === null ? null : { url: mqttUrl, clientId: `mbrl-bench-node-${index}` } });
  const bus = mqttUrl === null ? new LoopbackTransport() : null;
  const robotTransport: Transport =
    bus ??
    new MqttTransport({
      url: mqttUrl as string,
      prefix: TOPIC_PREFIX,
      clientId: `mbrl-bench-robot-${index}`,
      topicQos: { [SENSOR_TOPIC]: config.transport.kind === 'mqtt' ? config.transport.qos : 1, [ACTION_TOPIC]: config.transport.kind === 'mqtt' ? config.transport.qos : 1 },
      onError: (err) => env.log(`${spec.name}: robot stand-in: ${err.message}`),
    });
  const robot = new RobotStandIn(robotTransport, periodMs * (1 - periodMs / (env.sweepSec * 1000)));
  const learner = spec.refit ? refitLearner(env.refitRows, env.workerNice, env.log) : null;
  const nodeLog = (line: string): void => {
    if (/^(error|failed)/.test(line)) env.log(`${spec.name}: node: ${line}`);
  };
  const node = new ControlNode({
    config,
    ...(bus ? { transport: bus } : {}),
    learn: false,
    log: nodeLog,
    onTick: (t) => robot.onTick(t),
    ...(learner ? { onTransition: (t) => learner.add(t) } : {}),
  });
  let memorySamples: [number, number, number][] | undefined;
  try {
    learner?.start();
    await node.start();
    if (!bus) await robotTransport.connect();
    robot.start();
    if (learner) {
      const t0 = performance.now();
      while (!learner.stats.fitting) {
        if (performance.now() - t0 > FIT_START_TIMEOUT_SEC * 1000) throw new Error(`benchLoop: the learner did not start a fit within ${FIT_START_TIMEOUT_SEC} s (${learner.stats.lastFailure ?? 'no failure reported'})`);
        await sleep(100);
      }
    }
    const warmStart = performance.now();
    await sleep((spec.warmupSec ?? env.warmupSec) * 1000);
    if (spec.memory && learner) {
      // The steady state has a promoted model on both sides (the worker's copy and the one sent back).
      while (learner.stats.promoted + learner.stats.rejected === 0) {
        if (performance.now() - warmStart > FIRST_REFIT_TIMEOUT_SEC * 1000) throw new Error(`benchLoop: the memory run's first refit did not finish within ${FIRST_REFIT_TIMEOUT_SEC} s`);
        await sleep(500);
      }
    }
    const warmedSec = (performance.now() - warmStart) / 1000;

    const before = snapshot(node, learner);
    const memory: [number, number, number][] = [];
    let fittingSamples = 0;
    let fittingOn = 0;
    robot.recording = true;
    const t0 = performance.now();
    const endMs = t0 + spec.durationSec * 1000;
    const memoryEveryMs = Math.min(1000, (spec.durationSec * 1000) / 20);
    let nextMemoryMs = spec.memory ? t0 : Infinity;
    let nextFitMs = learner ? t0 : Infinity;
    while (performance.now() < endMs) {
      const now = performance.now();
      if (spec.memory && now >= nextMemoryMs) {
        const m = process.memoryUsage();
        memory.push([(now - t0) / 1000, m.rss / 2 ** 20, m.heapUsed / 2 ** 20]);
        nextMemoryMs += memoryEveryMs;
      }
      if (learner && now >= nextFitMs) {
        fittingSamples++;
        if (learner.stats.fitting) fittingOn++;
        nextFitMs += 100;
      }
      await sleep(Math.max(1, Math.min(nextMemoryMs, nextFitMs, endMs) - performance.now()));
    }
    robot.recording = false;
    const seconds = (performance.now() - t0) / 1000;
    const after = snapshot(node, learner);
    const figures: Record<string, number> = {
      p50Ms: robot.e2e.quantile(0.5),
      p99Ms: robot.e2e.quantile(0.99),
      maxMs: robot.e2e.maxMs,
      pipelineP50Ms: robot.pipeline.quantile(0.5),
      pipelineP99Ms: robot.pipeline.quantile(0.99),
      pipelineMaxMs: robot.pipeline.maxMs,
      missed: after.missed - before.missed,
      skipped: after.skipped - before.skipped,
      ticks: robot.e2e.count,
      expectedTicks: Math.round(seconds * spec.rateHz),
      watchdogTicks: after.watchdog - before.watchdog,
      cpuPct: ((after.cpuUs - before.cpuUs) / 1e6 / seconds) * 100,
      loadAvg1: loadavg()[0],
    };
    if (learner) {
      figures.refits = after.refits - before.refits;
      figures.fittingPct = fittingSamples > 0 ? (100 * fittingOn) / fittingSamples : 0;
    }
    if (spec.memory) memorySamples = memory;
    return { result: { name: spec.name, transport: spec.transport, rateHz: spec.rateHz, refit: spec.refit, seconds, figures }, warmedSec, ...(memorySamples ? { memorySamples } : {}) };
  } finally {
    robot.stop();
    await node.stop();
    const exit = await node.done;
    if (exit.kind === 'failed') env.log(`${spec.name}: node failed: ${exit.error.message}`);
    await learner?.close();
    if (!bus) await robotTransport.close();
    await rm(checkpointDir, { recursive: true, force: true });
  }
}

interface Snapshot {
  missed: number;
  skipped: number;
  watchdog: number;
  refits: number;
  cpuUs: number;
}

function snapshot(node: ControlNode, learner: Learner | null): Snapshot {
  const s = node.stats;
  const cpu = process.cpuUsage();
  const l = learner?.stats;
  return {
    missed: s.deadlines?.missed ?? Number.NaN,
    skipped: s.deadlines?.skipped ?? Number.NaN,
    watchdog: s.interventions.watchdog,
    refits: l ? l.promoted + l.rejected : 0,
    cpuUs: cpu.user + cpu.system,
  };
}

/** The node's configuration for a case (see the file comment). */
function benchNodeConfig(o: { periodMs: number; tick: 'grid' | 'sample'; policyFile: string; checkpointDir: string; mqtt: { url: string; clientId: string } | null }): NodeConfig {
  const fill = (v: number): number[] => new Array<number>(ACT_DIM).fill(v);
  return parseNodeConfig(
    {
      // In process the node is handed the loopback bus (`options.transport`), which replaces this entry.
      transport: o.mqtt ? { kind: 'mqtt', url: o.mqtt.url, clientId: o.mqtt.clientId, topicPrefix: TOPIC_PREFIX } : { kind: 'dds' },
      controlPeriodMs: o.periodMs,
      tick: o.tick === 'sample' ? { on: 'sample', topic: SENSOR_TOPIC } : { on: 'grid' },
      sensors: [{ topic: SENSOR_TOPIC, type: JOINT_STATE_TYPE, fields: ['position[1..8]', 'velocity[0..8]'], maxAgeMs: 100 }],
      action: { topic: ACTION_TOPIC, type: JOINT_STATE_TYPE, fields: ['effort[0..5]'] },
      actionBounds: { low: fill(-1), high: fill(1) },
      safety: { safeAction: fill(0), maxRatePerSec: 50 },
      reward: { kind: 'task', task: TASK },
      controller: { kind: 'onnx', model: o.policyFile, threads: 1 },
      algorithm: { kind: 'pets' },
      checkpointDir: o.checkpointDir,
    },
    'mbrl bench loop',
  );
}

/** The controller: a 2 × 64 tanh Gaussian MLP policy with seeded initial weights, exported to ONNX. */
function benchPolicyOnnx(): Uint8Array {
  const spec = makePolicySpec({ obsDim: OBS_DIM, actionLow: new Array<number>(ACT_DIM).fill(-1), actionHigh: new Array<number>(ACT_DIM).fill(1), hidden: [64, 64], activation: 'tanh' });
  const weights = initialPolicyWeights(spec, new Rng(1));
  return policyToOnnx(spec, weights, exportMetadataProps({ what: 'policy', obsDim: OBS_DIM, actDim: ACT_DIM, actionLow: spec.actionLow, actionHigh: spec.actionHigh, squash: spec.squash }));
}

/**
 * The learner refitting back to back: the node's PETS ensemble and fit settings for the task, a
 * full buffer of `rows` transitions from the robot's trajectory (random actions) to start with,
 * a refit due after every new transition.
 */
function refitLearner(rows: number, workerNice: number, log: (line: string) => void): Learner {
  const pets = makePetsConfig({ env: TASK });
  const history = new ReplayBuffer({ obsDim: OBS_DIM, actDim: ACT_DIM, capacity: rows });
  const rng = new Rng(7);
  const dtSec = 0.01;
  for (let i = 0; i < rows; i++) {
    const tSec = i * dtSec;
    history.add({
      obs: observationAt(tSec),
      action: Float64Array.from({ length: ACT_DIM }, () => rng.uniform(-1, 1)),
      reward: rng.normal(0, 1),
      nextObs: observationAt(tSec + dtSec),
      terminated: false,
      truncated: false,
    });
  }
  return new Learner({
    config: {
      obsDim: OBS_DIM,
      actDim: ACT_DIM,
      ensemble: pets.ensemble,
      fit: pets.fit,
      seed: pets.seed,
      bufferCapacity: rows,
      minTransitions: 1,
      refitEveryTransitions: 1,
      refitEverySec: null,
      workerNice,
    },
    history,
    onEvent: (e) => {
      if (e.kind === 'workerFailed') log(`learner: worker ${e.reason}`);
    },
  });
}

// ---------------------------------------------------------------------------------------------
// The robot stand-in.

/** The robot's joint state at `tSec`: smooth motions of a few tenths of a radian, 0.5–3.5 Hz. */
function jointStateAt(tSec: number): { position: number[]; velocity: number[] } {
  const position: number[] = [];
  const velocity: number[] = [];
  for (let j = 0; j < JOINTS.length; j++) {
    const w = 2 * Math.PI * (0.5 + 0.37 * j);
    position.push(0.3 * Math.sin(w * tSec + 0.7 * j));
    velocity.push(0.3 * w * Math.cos(w * tSec + 0.7 * j));
  }
  return { position, velocity };
}

/** The 17-value observation the node assembles from `jointStateAt(tSec)`. */
function observationAt(tSec: number): Float64Array {
  const { position, velocity } = jointStateAt(tSec);
  return Float64Array.from([...position.slice(1), ...velocity]);
}

/** Unmatched stamps kept (a tick whose action was lost, the safe action sent at stop). */
const PENDING_LIMIT = 4096;

/**
 * Publishes the sensor message on its own real-time grid, receives the actions, and pairs each
 * action (by its header stamp, the node's tick) with the tick's record from `onTick` (which
 * sample it acted on), whichever comes first: in process the action arrives inside the node's
 * publication, before `onTick`; over MQTT after it.
 */
class RobotStandIn {
  readonly e2e = new LatencyHistogram();
  readonly pipeline = new LatencyHistogram();
  /** Record latencies (the measuring window). */
  recording = false;
  readonly #t: Transport;
  readonly #periodMs: number;
  readonly #scheduler = new RealTimeScheduler();
  #ticks: Subscription | null = null;
  #actions: Unsubscribe | null = null;
  #k = 0;
  /** Tick stamp → the stamp of the sample it acted on (from `onTick`, waiting for the action). */
  #sampleOfTick = new Map<bigint, bigint>();
  /** Tick stamp → when its action arrived (waiting for `onTick`). */
  #arrivalOfTick = new Map<bigint, bigint>();

  constructor(transport: Transport, periodMs: number) {
    this.#t = transport;
    this.#periodMs = periodMs;
  }

  start(): void {
    this.#actions = this.#t.subscribe<JointState>(ACTION_TOPIC, JOINT_STATE_TYPE, (m) => this.#onAction(m.data), { qos: QOS_DEFAULT });
    this.#ticks = interval(this.#periodMs, this.#scheduler).subscribe(() => this.#publish());
  }

  stop(): void {
    this.recording = false;
    this.#ticks?.unsubscribe();
    this.#actions?.();
    this.#ticks = null;
    this.#actions = null;
  }

  /** The node's `onTick`. */
  onTick(t: TickInfo): void {
    const sampleNs = t.sampleStampsNs[0];
    if (sampleNs === undefined) return;
    const arrivedNs = this.#arrivalOfTick.get(t.stampNs);
    if (arrivedNs === undefined) return remember(this.#sampleOfTick, t.stampNs, sampleNs);
    this.#arrivalOfTick.delete(t.stampNs);
    this.#record(t.stampNs, sampleNs, arrivedNs);
  }

  #publish(): void {
    const stampNs = wallClockNs();
    const { position, velocity } = jointStateAt((this.#k++ * this.#periodMs) / 1000);
    const msg: JointState = { header: { stamp: timeFromNs(stampNs), frame_id: 'base' }, name: JOINTS, position, velocity, effort: [] };
    this.#t.publish(SENSOR_TOPIC, JOINT_STATE_TYPE, msg, { qos: QOS_SENSOR_DATA });
  }

  #onAction(msg: JointState): void {
    const arrivedNs = wallClockNs();
    const tickNs = nsFromTime(msg.header.stamp);
    const sampleNs = this.#sampleOfTick.get(tickNs);
    if (sampleNs === undefined) return remember(this.#arrivalOfTick, tickNs, arrivedNs);
    this.#sampleOfTick.delete(tickNs);
    this.#record(tickNs, sampleNs, arrivedNs);
  }

  #record(tickNs: bigint, sampleNs: bigint, arrivedNs: bigint): void {
    if (!this.recording) return;
    this.e2e.add(Number(arrivedNs - sampleNs) / 1e6);
    this.pipeline.add(Number(arrivedNs - tickNs) / 1e6);
  }
}

function remember(map: Map<bigint, bigint>, key: bigint, value: bigint): void {
  map.set(key, value);
  // Maps iterate in insertion order: the oldest go first.
  while (map.size > PENDING_LIMIT) map.delete(map.keys().next().value as bigint);
}

/**
 * Latencies in fixed 1 µs buckets up to 250 ms (later ones in the last bucket; the exact maximum
 * is kept), so a long run allocates nothing per sample. Quantiles are nearest-rank, reported as
 * the bucket's upper edge (at most the maximum).
 */
export class LatencyHistogram {
  static readonly BUCKETS = 250_000;
  readonly #counts = new Uint32Array(LatencyHistogram.BUCKETS);
  #count = 0;
  #maxMs = Number.NaN;

  /** Adds one latency, milliseconds (negative ones count as 0). */
  add(ms: number): void {
    const v = ms > 0 ? ms : 0;
    this.#counts[Math.min(LatencyHistogram.BUCKETS - 1, Math.floor(v * 1000))]++;
    this.#count++;
    if (!(v <= this.#maxMs)) this.#maxMs = v;
  }

  get count(): number {
    return this.#count;
  }

  /** The largest latency added, milliseconds; NaN before any. */
  get maxMs(): number {
    return this.#maxMs;
  }

  /** The p-quantile (0 < p ≤ 1), milliseconds; NaN before any. */
  quantile(p: number): number {
    if (this.#count === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(p * this.#count));
    let seen = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i];
      if (seen >= rank) return Math.min((i + 1) / 1000, this.#maxMs);
    }
    return this.#maxMs;
  }
}

// ---------------------------------------------------------------------------------------------
// Memory.

/** Start, end, max and drift of RSS and heap over the samples (see the file comment). */
function memoryFigures(samples: readonly [number, number, number][]): Record<string, number> {
  const window = Math.max(1, Math.min(30, Math.round(samples.length / 10)));
  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  const figures: Record<string, number> = { samples: samples.length };
  for (const [col, name] of [[1, 'rss'], [2, 'heap']] as const) {
    const xs = samples.map((s) => s[col]);
    const start = median(xs.slice(0, window));
    const end = median(xs.slice(-window));
    figures[`${name}StartMb`] = start;
    figures[`${name}EndMb`] = end;
    figures[`${name}MaxMb`] = Math.max(...xs);
    figures[`${name}DriftPct`] = ((end - start) / start) * 100;
  }
  return figures;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------------------------
// The committed result.

/** The machine the bench ran on, with its load (the 1-, 5- and 15-minute load averages). */
export function machineFacts(): Record<string, unknown> {
  const c = cpus();
  return {
    cpuModel: c[0]?.model ?? 'unknown',
    cores: c.length,
    memoryGb: +(totalmem() / 2 ** 30).toFixed(1),
    freeMemoryGb: +(freemem() / 2 ** 30).toFixed(1),
    os: `${type()} ${release()}`,
    node: process.version,
    /** The bench process's nice value (long runs on the shared machine run at `nice -n 5`). */
    nice: getPriority(),
    loadAvg: loadavg().map((v) => +v.toFixed(2)),
  };
}

/** A short markdown summary of a result: the cases, the memory run, the goals. */
export function loopSummaryMarkdown(r: LoopBenchResult, extra: { command: string; date: string; machineAtStart: Record<string, unknown>; loadAvgAtEnd: number[]; memoryPlot?: string }): string {
  const f = (v: number | undefined, digits = 3): string => (v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits));
  const m = extra.machineAtStart;
  const lines = [
    '# `mbrl bench loop`: sensor-to-action latency, missed deadlines, memory',
    '',
    `Command: \`${extra.command}\` (${extra.date}).`,
    '',
    `Machine: ${String(m.cpuModel)}, ${String(m.cores)} cores, ${String(m.memoryGb)} GB, ${String(m.os)}, Node ${String(m.node)}, bench at nice ${String(m.nice)}. Load average (1, 5, 15 min) at the start ${(m.loadAvg as number[]).join(', ')}, at the end ${extra.loadAvgAtEnd.join(', ')}: the machine was shared with other work, so the tails (p99, max, missed) include time the operating system gave to other processes.`,
    '',
    `Set-up: ${String(r.setup.controller)}; sensor ${String(r.setup.sensor)}; action ${String(r.setup.action)}; refit: ${String(r.setup.refit)}; ticks: ${String(r.setup.tick ?? 'fixed wall-clock grid')}. Sensor→action runs from the sensor message's publication to the robot's receipt of the action computed from it, including its wait for the node's tick (on the grid up to a period: the node samples on its own grid; with ticks on the sensor's messages none); tick→action is the node's share. Missed: the node's own counter (actions published more than a period after the tick was due, plus ticks skipped).`,
    '',
    '| case | sensor→action p50 / p99 / max (ms) | tick→action p50 / p99 / max (ms) | missed (skipped) | ticks / expected | watchdog | refits (fitting %) | CPU % | load |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const c of r.cases) {
    const x = c.figures;
    lines.push(
      `| ${c.name} | ${f(x.p50Ms)} / ${f(x.p99Ms)} / ${f(x.maxMs)} | ${f(x.pipelineP50Ms)} / ${f(x.pipelineP99Ms)} / ${f(x.pipelineMaxMs)} | ${x.missed} (${x.skipped}) | ${x.ticks} / ${x.expectedTicks} | ${x.watchdogTicks} | ${c.refit ? `${x.refits} (${f(x.fittingPct, 0)})` : '–'} | ${f(x.cpuPct, 0)} | ${f(x.loadAvg1, 2)} |`,
    );
  }
  for (const [k, why] of Object.entries(r.skipped)) lines.push(`| ${k} | skipped: ${why} | | | | | | | |`);
  if (r.memory) {
    const x = r.memory.figures;
    lines.push(
      '',
      `Memory run: ${r.memory.minutes} min at ${r.memory.rateHz} Hz in process with back-to-back refits, sampled at 1 Hz after a ${r.memory.warmupSec} s warm-up: RSS ${f(x.rssStartMb, 1)} → ${f(x.rssEndMb, 1)} MB (max ${f(x.rssMaxMb, 1)}), drift ${f(x.rssDriftPct, 2)} %; main heap ${f(x.heapStartMb, 1)} → ${f(x.heapEndMb, 1)} MB (max ${f(x.heapMaxMb, 1)}), drift ${f(x.heapDriftPct, 2)} %. Over the run: sensor→action p50 / p99 / max ${f(x.p50Ms)} / ${f(x.p99Ms)} / ${f(x.maxMs)} ms, ${x.missed} missed deadlines (${x.skipped} skipped) of ${x.expectedTicks} periods, ${x.refits} refits.${extra.memoryPlot ? ` Plot: ${extra.memoryPlot}.` : ''}`,
    );
  }
  lines.push('', '## Goals', '', '| goal | figure | measured | met |', '|---|---|---|---|');
  for (const g of r.goals) lines.push(`| ${g.goal} | \`${g.figure}\` | ${f(g.value)} | ${g.met ? 'yes' : '**no**'} |`);
  return `${lines.join('\n')}\n`;
}
