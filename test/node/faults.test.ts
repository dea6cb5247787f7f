// Faults against the whole running control node (ControlNode over MQTT through a real mosquitto
// broker): the broker stopped and restarted mid-run, hostile payloads on the sensor topic, the
// learner's worker crashed. The robot stand-in (Pendulum-v1's equations, in this process, on its
// own MQTT connection) records every observation it publishes, so each tick and each stored
// transition can be traced to the robot's messages: none may come from anything else, none may
// hold a reading over (s' = s) or span a gap.
//
// The robot steps half a period after each of the node's ticks, with the last action it
// received, and publishes the new state, so that a tick finds one new reading whenever the
// transport delivers within half a period. Over MQTT it often does not: neither mqtt.js nor
// mosquitto set TCP_NODELAY by default, and Nagle's algorithm holds a reading back 20–65 ms.
// Such a tick finds no new reading (its pairs are skipped: noNewSample), and a reading held back
// past the next tick makes a pair that spans two or three robot steps, which no check of the
// node can see (short of `maxAgeMs` with synchronised clocks); the checks below require one step
// or more, none across a gap, and print how many of each.
//
// Hostile payloads come from another process, so that building and sending them does not load
// the node's thread; what the node spends on them is its own.
//
// The learner's worker runs compiled JavaScript (`npm run build` first, as `npm test` does).
// Skips, saying why, where mosquitto is not installed.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/core/backend.js';
import { Rng } from '../../src/core/rng.js';
import { loadBuffer } from '../../src/data/bufferStore.js';
import type { Transition } from '../../src/data/transition.js';
import { parseNodeConfig, type NodeConfig } from '../../src/node/config.js';
import { ControlNode, type ControlNodeOptions, type ControlNodeStats, type TickInfo } from '../../src/node/controlNode.js';
import { learnerWorkerUrl } from '../../src/node/learner.js';
import { TRANSITION_SKIP_REASONS } from '../../src/pipeline/assembleTransitions.js';
import { DROP_REASONS, type DropReason } from '../../src/pipeline/validateMessages.js';
import { wallClockNs } from '../../src/transports/loopback.js';
import { timeFromNs, type Float64MultiArray } from '../../src/transports/messages.js';
import { MqttTransport } from '../../src/transports/mqtt.js';
import { FLOAT64_MULTI_ARRAY_TYPE, JOINT_STATE_TYPE } from '../../src/transports/sim.js';
import { MOSQUITTO, MOSQUITTO_SKIP_REASON, MosquittoBroker, freePort } from '../mosquittoBroker.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'mbrl-faults-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
/** What a test started (brokers, nodes, robots), stopped after it in reverse order, whether it passed or not. */
const started: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of started.splice(0).reverse()) await stop().catch(() => undefined);
});
beforeAll(async () => {
  await initBackend();
});

/** Wall milliseconds per control period, on the node and the robot. */
const PERIOD_MS = 50;
/** Ticks may fall short of the wall-clock periods by this fraction, plus two (a busy 2-core machine delays timers). */
const TICK_SHORTFALL = 0.2;

if (MOSQUITTO === undefined) console.warn(MOSQUITTO_SKIP_REASON);

/** The learner's compiled worker, checked to exist and to be newer than its source (as learner.test.ts). */
function checkWorkerBuilt(): void {
  const worker = fileURLToPath(learnerWorkerUrl());
  if (!existsSync(worker)) throw new Error(`${worker} is missing: the learner's worker thread runs compiled JavaScript; run \`npm run build\` first (npm test does)`);
  if (statSync(worker).mtimeMs < statSync(join(root, 'src/node/learnerWorker.ts')).mtimeMs) throw new Error(`${worker} is older than its source: run \`npm run build\` first`);
}

/** Pendulum-v1's step from an observation (cos θ, sin θ, θ̇): Gymnasium's equations. */
function pendulumStep(obs: readonly number[], u: number): number[] {
  const th = Math.atan2(obs[1], obs[0]);
  const torque = Math.min(2, Math.max(-2, u));
  const thdot = Math.min(8, Math.max(-8, obs[2] + (15 * Math.sin(th) + 3 * torque) * 0.05));
  const next = th + thdot * 0.05;
  return [Math.cos(next), Math.sin(next), thdot];
}

/** An observation as the buffer stores it (float32), as a map key. */
const keyOf = (v: ArrayLike<number>): string => Array.from(v, (x) => Math.fround(x)).join(',');

/**
 * The robot stand-in: steps Pendulum-v1 with the last action received when told (`afterTick`)
 * and publishes the new state, stamped with its wall clock, as a robot does. Until the node's
 * first tick it repeats its first state every period (the node ticks only once it has a reading).
 */
class Robot {
  /** Each published observation (float32 key) → its step index (0: the initial state). */
  readonly published = new Map<string, number>();
  /** The state published at each step. */
  readonly states: number[][] = [];
  actionsReceived = 0;
  readonly transport: MqttTransport;
  #obs = [Math.cos(2), Math.sin(2), 0];
  #u = 0;
  #waiting: NodeJS.Timeout | undefined;
  #timers = new Set<NodeJS.Timeout>();
  #paused = false;

  constructor(url: string, prefix: string) {
    this.transport = new MqttTransport({ url, prefix, clientId: `fault-robot-${prefix}`, reconnectPeriodMs: 200, onError: () => undefined });
  }

  async start(): Promise<void> {
    await this.transport.connect();
    this.transport.subscribe<Float64MultiArray>('/mbrl/action', FLOAT64_MULTI_ARRAY_TYPE, (m) => {
      this.#u = m.data.data[0];
      this.actionsReceived++;
    });
    this.#record();
    this.#publish();
    this.#waiting = setInterval(() => this.#publish(), PERIOD_MS);
  }

  get steps(): number {
    return this.states.length - 1;
  }

  /** Steps half a period after a tick of the node. */
  afterTick(): void {
    clearInterval(this.#waiting);
    if (this.#paused) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (this.#paused) return;
      this.#obs = pendulumStep(this.#obs, this.#u);
      this.#record();
      this.#publish();
    }, PERIOD_MS / 2);
    this.#timers.add(timer);
  }

  /** Stops stepping (the node goes on without readings). */
  pause(): void {
    this.#paused = true;
    clearInterval(this.#waiting);
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }

  async stop(): Promise<void> {
    this.pause();
    await this.transport.close();
  }

  #record(): void {
    const key = keyOf(this.#obs);
    if (!this.published.has(key)) this.published.set(key, this.states.length);
    this.states.push([...this.#obs]);
  }

  #publish(): void {
    this.transport.publish('/joint_states', JOINT_STATE_TYPE, { header: { stamp: timeFromNs(this.transport.nowNs()), frame_id: '' }, name: ['pendulum'], position: this.#obs, velocity: [], effort: [] });
  }
}

/** launch/pendulum_mqtt.yaml on the test broker with a fast period, a small planner and ensemble, and `patch`, saving under `dir`. */
function nodeConfig(name: string, url: string, patch: Record<string, unknown>): NodeConfig {
  const raw = parseYaml(readFileSync(join(root, 'launch/pendulum_mqtt.yaml'), 'utf8')) as Record<string, unknown>;
  return parseNodeConfig(
    {
      ...raw,
      transport: { kind: 'mqtt', url, clientId: `fault-node-${name}`, topicPrefix: name, qos: 1 },
      controlPeriodMs: PERIOD_MS,
      safety: { ...(raw.safety as Record<string, unknown>), maxRatePerSec: 4 / (PERIOD_MS / 1000), watchdogTimeoutMs: 5 * PERIOD_MS },
      algorithm: {
        kind: 'pets',
        overrides: {
          seed: 0,
          initialRandomSteps: 60,
          planner: { populationSize: 20, numElites: 4, numIterations: 2, horizon: 5 },
          particles: 2,
          ensemble: { numMembers: 2, numElites: 2, hidden: [32, 32] },
          fit: { maxEpochs: 20, patience: 20, batchSize: 32 },
        },
      },
      learner: { refitEveryTransitions: 60, refitEverySec: null },
      checkpointDir: join(dir, name),
      buffer: { segmentSize: 50 },
      ...patch,
    },
    name,
  );
}

/** The node and the robot on one broker, and what they did. */
interface Rig {
  node: ControlNode;
  robot: Robot;
  ticks: TickInfo[];
  /** Wall time (performance.now) of each tick. */
  tickAtMs: number[];
  transitions: Transition[];
  logs: string[];
  config: NodeConfig;
}

/** A mosquitto broker on a free port, stopped after the test. */
async function startBroker(): Promise<{ broker: MosquittoBroker; url: string }> {
  const broker = new MosquittoBroker(await freePort(), dir);
  started.push(() => broker.stop());
  await broker.start();
  return { broker, url: `mqtt://127.0.0.1:${broker.port}` };
}

/** The node on `config`, then the robot; both stopped after the test. */
async function startRig(name: string, url: string, patch: Record<string, unknown>, options: Partial<ControlNodeOptions> = {}): Promise<Rig> {
  const ticks: TickInfo[] = [];
  const tickAtMs: number[] = [];
  const transitions: Transition[] = [];
  const logs: string[] = [];
  const config = nodeConfig(name, url, patch);
  const robot = new Robot(url, name);
  const node = new ControlNode({
    config,
    diagnosticsPeriodMs: 500,
    log: (line) => logs.push(line),
    onTick: (t) => {
      ticks.push(t);
      tickAtMs.push(performance.now());
      robot.afterTick();
    },
    onTransition: (t) => transitions.push(t),
    learner: { heartbeatMs: 100, restartDelayMs: 200 },
    ...options,
  });
  started.push(() => node.stop());
  await node.start();
  started.push(() => robot.stop());
  await robot.start();
  return { node, robot, ticks, tickAtMs, transitions, logs, config };
}

/** Waits for `cond`, failing with the node's last log lines if it takes longer than `timeoutMs` or the node stops. */
async function until(rig: Rig, cond: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const t0 = performance.now();
  while (!cond()) {
    const state = rig.node.stats.state;
    if (state !== 'running') throw new Error(`the node is ${state} while waiting for ${what}; its log:\n${rig.logs.slice(-30).join('\n')}`);
    if (performance.now() - t0 > timeoutMs) throw new Error(`no ${what} within ${timeoutMs} ms; the node's log:\n${rig.logs.slice(-30).join('\n')}`);
    await sleep(20);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Ticks counted over `run`, and the wall-clock periods it lasted. */
async function countTicks(rig: Rig, run: () => Promise<void>): Promise<{ ticks: number; periods: number }> {
  const t0 = performance.now();
  const n0 = rig.node.stats.ticks;
  await run();
  return { ticks: rig.node.stats.ticks - n0, periods: Math.floor((performance.now() - t0) / PERIOD_MS) };
}

/** The loop kept its rate: at most TICK_SHORTFALL of the periods (plus two) went without a tick. */
function expectKeptRate(c: { ticks: number; periods: number }, what: string): void {
  expect(c.ticks, `${what}: ${c.ticks} ticks in ${c.periods} periods`).toBeGreaterThanOrEqual(Math.floor((1 - TICK_SHORTFALL) * c.periods) - 2);
}

/**
 * After the node stopped: every pair of consecutive ticks was either stored or skipped for a
 * counted reason; every tick's and every stored transition's observation (in memory and on disk)
 * is one the robot published; no transition holds a reading over (s' = s).
 * @returns the robot steps each stored transition spans (nextObs's step − obs's step)
 */
async function checkTraced(rig: Rig, final: ControlNodeStats): Promise<number[]> {
  const { robot } = rig;
  const skipped = TRANSITION_SKIP_REASONS.reduce((n, r) => n + final.transitionsSkipped[r], 0);
  expect(final.transitions.stored + final.transitions.noReward + final.transitions.invalid + skipped, 'every pair of ticks stored or skipped for a reason').toBe(final.ticks - 1);
  expect(final.transitions.stored).toBe(rig.transitions.length);
  expect(rig.ticks.filter((t) => !robot.published.has(keyOf(t.obs)))).toEqual([]);
  const onDisk = await loadBuffer(join(rig.config.checkpointDir, 'buffer'));
  expect(onDisk.buffer.size).toBe(final.transitions.stored);
  const rows = onDisk.buffer.slice();
  const steps: number[] = [];
  for (let k = 0; k < onDisk.buffer.size; k++) {
    const obs = rows.obs.subarray(3 * k, 3 * k + 3);
    const next = rows.nextObs.subarray(3 * k, 3 * k + 3);
    const i = robot.published.get(keyOf(obs));
    const j = robot.published.get(keyOf(next));
    if (i === undefined || j === undefined) throw new Error(`buffer row ${k}: ${i === undefined ? `obs [${Array.from(obs).join(', ')}]` : `nextObs [${Array.from(next).join(', ')}]`} is no observation the robot published`);
    expect(keyOf(rig.transitions[k].obs)).toBe(keyOf(obs));
    steps.push(j - i);
  }
  expect(steps.filter((d) => d <= 0), 'transitions whose next observation is not after their observation').toEqual([]);
  return steps;
}

/**
 * Publishes each file's bytes, in order, at QoS 1 on the MQTT topic `topic` from a process of its
 * own, `gapMs` apart; resolves when it has sent them all.
 */
async function attack(url: string, topic: string, files: string[], gapMs: number): Promise<void> {
  const script = [
    "import mqtt from 'mqtt';",
    "import { readFileSync } from 'node:fs';",
    'const [url, topic, gapMs, ...files] = process.argv.slice(1);',
    "const client = await mqtt.connectAsync(url, { clientId: 'fault-attacker', reconnectPeriod: 0 });",
    'for (const f of files) {',
    '  await client.publishAsync(topic, readFileSync(f), { qos: 1 });',
    '  await new Promise((r) => setTimeout(r, Number(gapMs)));',
    '}',
    'await client.endAsync();',
  ].join('\n');
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, url, topic, String(gapMs), ...files], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`the attacking process exited with ${code}: ${stderr}`);
}

/** Counts of each value in `xs`, for messages. */
function histogram(xs: number[]): Record<number, number> {
  const h: Record<number, number> = {};
  for (const x of xs) h[x] = (h[x] ?? 0) + 1;
  return h;
}

describe.skipIf(MOSQUITTO === undefined)('ControlNode over MQTT under faults (mosquitto)', () => {
  beforeAll(() => checkWorkerBuilt());

  it('rides out a broker restart: reconnects, holds the safe action through the gap, counts it, stores no transition across it', async () => {
    const { broker, url } = await startBroker();
    // As the launch file: readings older than two periods are stale.
    const rig = await startRig('restart', url, { sensors: [{ topic: '/joint_states', type: JOINT_STATE_TYPE, fields: ['position[0..2]'], maxAgeMs: 2 * PERIOD_MS }] });
    const { node, robot } = rig;
    // Learning and refitting: the planner on a promoted model drives the robot when the broker goes.
    await until(rig, () => node.stats.promotions >= 1 && node.stats.controller.kind === 'pets', 'first promotion');
    const before = node.stats;
    const stepsBefore = robot.steps;
    const ticksBefore = rig.ticks.length;
    const gap = await countTicks(rig, async () => {
      await broker.stop();
      await sleep(2000);
      await broker.start();
    });
    const stepsAfter = robot.steps;
    const ticksAfter = rig.ticks.length;
    // The loop went on through the gap, holding the safe action once the watchdog tripped.
    expect(node.stats.state).toBe('running');
    expectKeptRate(gap, 'ticks while the broker was down');
    const held = rig.ticks.slice(ticksBefore, ticksAfter).filter((t) => t.hold === 'watchdog');
    expect(held.length).toBeGreaterThanOrEqual(Math.floor(((2000 - 5 * PERIOD_MS) / PERIOD_MS) * (1 - TICK_SHORTFALL)) - 2);
    expect(held.every((t) => t.action[0] === 0)).toBe(true);
    // It reconnects (its backoff may take a few seconds more), and the robot gets actions from the planner again.
    await until(rig, () => node.stats.link?.connected === true && node.stats.link.reconnects === 1, 'reconnection', 30_000);
    const actions = robot.actionsReceived;
    const stored = node.stats.transitions.stored;
    await until(rig, () => robot.actionsReceived >= actions + 40 && node.stats.transitions.stored >= stored + 40, 'actions and transitions after the reconnection');
    const firstFresh = rig.ticks.findIndex((t, k) => k >= ticksAfter && t.hold === undefined);
    expect(rig.ticks.slice(firstFresh).filter((t) => t.hold === undefined).every((t) => t.controller.kind === 'pets')).toBe(true);
    const after = node.stats;
    const afterDiagnostics = node.diagnostics();
    robot.pause();
    await sleep(2 * PERIOD_MS);
    await node.stop();
    expect(await node.done).toEqual({ kind: 'stopped' });
    const final = node.stats;

    // The gap in the node's stats and diagnostics: the reconnection, the outage's length, the
    // watchdog's ticks, and the pairs of ticks it kept out of the buffer.
    expect(after.link).toMatchObject({ reconnects: 1, connected: true });
    expect(after.link?.offlineMs).toBeGreaterThanOrEqual(1900);
    expect(after.interventions.watchdog - before.interventions.watchdog).toBeGreaterThanOrEqual(held.length);
    expect(after.transitionsSkipped.hold - before.transitionsSkipped.hold).toBeGreaterThanOrEqual(held.length - 1);
    expect(after.transitionsSkipped.noNewSample + after.transitionsSkipped.stale - before.transitionsSkipped.noNewSample - before.transitionsSkipped.stale).toBeGreaterThanOrEqual(1);
    const loop = afterDiagnostics.status.find((s) => s.name === 'mbrl_node: control loop');
    expect(loop?.values).toEqual(expect.arrayContaining([{ key: 'transport/reconnects', value: '1' }, { key: 'transport/connected', value: 'true' }]));
    const buffer = afterDiagnostics.status.find((s) => s.name === 'mbrl_node: buffer');
    expect(buffer?.values).toEqual(expect.arrayContaining([{ key: 'transitions_skipped/hold', value: String(after.transitionsSkipped.hold) }]));
    // The periodic stats lines said so while it happened, and after.
    expect(rig.logs.some((l) => l.startsWith('running: ') && l.includes('; mqtt disconnected;'))).toBe(true);
    expect(rig.logs.some((l) => l.startsWith('running: ') && l.includes('; 1 reconnects;'))).toBe(true);
    expect(final.learner?.restarts).toBe(0);

    // No stored transition spans the gap or holds a reading over it: each goes from one robot
    // step to a later one, and none from before the broker stopped to after it restarted.
    const steps = await checkTraced(rig, final);
    const spanning = rig.transitions.filter((t) => (robot.published.get(keyOf(t.obs)) as number) <= stepsBefore + 1 && (robot.published.get(keyOf(t.nextObs)) as number) >= stepsAfter - 1);
    expect(spanning).toEqual([]);
    console.log(
      `broker restart: ${gap.ticks} ticks in the ${gap.periods}-period gap (${held.length} held by the watchdog), reconnected after ${after.link?.offlineMs} ms offline; ` +
        `transitions ${final.transitions.stored} (robot steps spanned: ${JSON.stringify(histogram(steps))}), skipped ${JSON.stringify(final.transitionsSkipped)}`,
    );
  }, 120_000);

  it('counts and drops hostile sensor payloads by reason, keeps its rate, and stores only what the robot published', async () => {
    const { url } = await startBroker();
    const name = 'hostile';
    // No staleness limit: every drop below is the validation's, and stamps far in the past are only non-monotonic.
    const rig = await startRig(name, url, { sensors: [{ topic: '/joint_states', type: JOINT_STATE_TYPE, fields: ['position[0..2]'] }] }, { learn: false });
    const { node, robot } = rig;
    await until(rig, () => rig.ticks.length >= 20, '20 ticks');
    const topic = `${name}/joint_states`;
    const stamp = (secAgo: number): { sec: number; nanosec: number } => timeFromNs(wallClockNs() - BigInt(Math.round(secAgo * 1e9)));
    const js = (position: unknown, extra: Record<string, unknown> = {}): string => JSON.stringify({ header: { stamp: stamp(0), frame_id: '' }, name: ['pendulum'], position, velocity: [], effort: [], ...extra });
    const deep = (depth: number, inner: string): string => '['.repeat(depth) + inner + ']'.repeat(depth);
    const rng = new Rng(7);
    const garbage = Buffer.from(Array.from({ length: 512 }, () => rng.int(256)));
    // Each payload, what makes it bad, and the reason it must be counted under.
    const small: [string, string | Buffer, DropReason][] = [
      ['invalid JSON', '{"position": [0.1, 0.2', 'malformed'],
      ['empty payload', '', 'malformed'],
      ['binary garbage', garbage, 'malformed'],
      ['a JSON array, not a message', '[0.1, 0.2, 0.3]', 'malformed'],
      ['a JSON number, not a message', '42', 'malformed'],
      ['JSON null', 'null', 'malformed'],
      ['two positions (index 2 out of range)', js([0.5, 0.5]), 'size'],
      ['four positions (another layout)', js([0.1, 0.2, 0.3, 0.4]), 'size'],
      ['NaN as null', js([null, 0.2, 0.3]), 'nonFinite'],
      ['NaN as a string', js(['NaN', 0.2, 0.3]), 'malformed'],
      ['Infinity as a string', js([0.1, 'Infinity', 0.3]), 'malformed'],
      ['a number beyond float64 (1e999)', `{"position":[0.1,0.2,1e999]}`, 'malformed'],
      ['strings in the numeric array', js(['a', 'b', 'c']), 'malformed'],
      ['an object for the array', js({ 0: 0.1, 1: 0.2, 2: 0.3 }), 'malformed'],
      ['a number for the array', js(0.5), 'malformed'],
      ['arrays in the array', js([[0.1], [0.2], [0.3]]), 'malformed'],
      ['100,000-deep nesting in the array', `{"position":${deep(100_000, '0.1')}}`, 'malformed'],
      ['100,000-deep nesting in the header', `{"header":${deep(100_000, '')},"position":[0.1,0.2,0.3]}`, 'malformed'],
      ['a string stamp', js([0.1, 0.2, 0.3], { header: { stamp: { sec: 'now', nanosec: 0 }, frame_id: '' } }), 'malformed'],
      ['a stamp 10 s in the past (non-monotonic)', js([0.9, 0.1, 7.5], { header: { stamp: stamp(10), frame_id: '' } }), 'nonMonotonic'],
      ['the same, 1 ms in the past', js([0.8, 0.2, 6.5], { header: { stamp: stamp(0.001), frame_id: '' } }), 'nonMonotonic'],
      ['a stamp 60 s in the future (would block every later reading)', js([0.7, 0.3, 5.5], { header: { stamp: stamp(-60), frame_id: '' } }), 'future'],
    ];
    const huge: [string, string | Buffer, DropReason][] = [
      // First entries that look like a pendulum's: only the array's length gives it away.
      ['10⁶ positions (11 MB)', js(Array.from({ length: 1_000_000 }, (_, i) => (i < 3 ? [0.6, 0.8, 1][i] : i * 1e-6))), 'tooLarge'],
      ['a 4 MB frame_id with NaN positions', js([null, null, null], { header: { stamp: stamp(0), frame_id: 'x'.repeat(4_000_000) } }), 'tooLarge'],
    ];
    const expected = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
    for (const [, , reason] of [...small, ...huge]) expected[reason] += 2;
    const files = (list: [string, string | Buffer, DropReason][], tag: string): string[] =>
      list.map(([, payload], k) => {
        const file = join(dir, `${tag}-${k}.bin`);
        writeFileSync(file, payload);
        return file;
      });
    const smallFiles = files(small, 'small');
    const hugeFiles = files(huge, 'huge');
    const hostileCount = (): number => node.stats.sensors['/joint_states'].received - node.stats.sensors['/joint_states'].passed;

    // The small ones, twice each, one every 20 ms among the robot's messages: the loop keeps its rate.
    const smallPhase = await countTicks(rig, async () => {
      await attack(url, topic, [...smallFiles, ...smallFiles], 20);
      await until(rig, () => hostileCount() >= 2 * small.length, 'every small hostile payload counted');
      await sleep(5 * PERIOD_MS);
    });
    expectKeptRate(smallPhase, 'ticks while small hostile payloads arrived');
    // The huge ones, twice each, back to back: the node survives them and goes on (what they cost: see the log line).
    const ticksBeforeHuge = rig.ticks.length;
    const hugePhase = await countTicks(rig, async () => {
      await attack(url, topic, [...hugeFiles, ...hugeFiles], 0);
      await until(rig, () => hostileCount() >= 2 * (small.length + huge.length), 'every hostile payload counted');
    });
    await until(rig, () => rig.ticks.length >= ticksBeforeHuge + hugePhase.ticks + 40, '40 ticks after the huge payloads');
    const hugeTickGapsMs = rig.tickAtMs.slice(ticksBeforeHuge, ticksBeforeHuge + hugePhase.ticks + 1).map((t, k, a) => (k === 0 ? 0 : t - a[k - 1]));
    robot.pause();
    await sleep(2 * PERIOD_MS);
    await node.stop();
    expect(await node.done).toEqual({ kind: 'stopped' });
    const final = node.stats;

    // Every hostile payload counted under its reason on the sensor topic; every robot message passed.
    const counts = final.sensors['/joint_states'];
    expect(counts.dropped).toEqual(expected);
    expect(final.dropped).toEqual(expected);
    expect(counts.received).toBe(counts.passed + 2 * (small.length + huge.length));
    expect(counts.passed).toBeGreaterThanOrEqual(robot.states.length - 2); // the last readings may arrive after the stop
    expect(final.errors).toBe(0); // drops are not errors of the node
    expect(final.controller.errors + final.interventions.nonFinite + final.interventions.badLength).toBe(0);
    // Nothing of theirs reached a tick or the buffer.
    const steps = await checkTraced(rig, final);
    console.log(
      `hostile payloads: dropped ${JSON.stringify(counts.dropped)}; ${smallPhase.ticks} ticks in ${smallPhase.periods} periods among the small ones, ` +
        `${hugePhase.ticks} in ${hugePhase.periods} among the huge ones (longest wait between ticks ${Math.max(...hugeTickGapsMs).toFixed(0)} ms); transitions ${final.transitions.stored} (robot steps spanned: ${JSON.stringify(histogram(steps))}), skipped ${JSON.stringify(final.transitionsSkipped)}`,
    );
  }, 120_000);

  it('keeps ticking when the learner worker crashes; the learner restarts and a later refit is promoted', async () => {
    const { url } = await startBroker();
    const rig = await startRig('learner', url, {});
    const { node } = rig;
    await until(rig, () => node.stats.promotions >= 1 && node.stats.controller.kind === 'pets', 'first promotion');
    const before = node.stats;
    let promotionsAtRestart = 0;
    const window = await countTicks(rig, async () => {
      node.injectLearnerFault('crash');
      await until(rig, () => node.stats.learner?.restarts === 1 && node.stats.learner.worker === 'running', 'learner restart', 30_000);
      promotionsAtRestart = node.stats.promotions;
      await until(rig, () => node.stats.promotions > promotionsAtRestart, 'a promotion from the restarted worker');
    });
    const after = node.stats;
    expect(after.state).toBe('running');
    expectKeptRate(window, 'ticks from the crash to the next promotion');
    expect(after.learner?.lastFailure).toBe('crashed: learner worker: injected crash');
    expect(after.controller.version).toBeGreaterThan(before.controller.version);
    expect(rig.logs.some((l) => /learner: worker crashed: learner worker: injected crash; restarting in \d+ ms/.test(l))).toBe(true);
    const learner = node.diagnostics().status.find((s) => s.name === 'mbrl_node: learner');
    expect(learner?.values).toEqual(expect.arrayContaining([{ key: 'restarts', value: '1' }]));
    rig.robot.pause();
    await sleep(2 * PERIOD_MS);
    await node.stop();
    expect(await node.done).toEqual({ kind: 'stopped' });
    const final = node.stats;
    expect(final.savedModelVersion).toBe(final.controller.version);
    await checkTraced(rig, final);
    console.log(`learner crash: ${window.ticks} ticks in ${window.periods} periods from the crash to promotion ${after.promotions} (controller v${after.controller.version}); controller timeouts ${after.controller.timeouts}, busy ${after.controller.busy}`);
  }, 120_000);
});
