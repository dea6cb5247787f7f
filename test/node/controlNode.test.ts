// The control node assembled: the lockstep scheduler, the controller step with its deadline, and
// ControlNode over the simulator (transitions aligned with the sim's own rewards and dynamics,
// a hung controller replaced by the safe action, a promoted model swapped into the running loop
// and saved), the launch configs, and online learning of Pendulum-v1 with PETS from scratch.
// The learning test needs the learner's worker built (`npm run build`, as `npm test` does).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Subject, interval, map, take } from 'rxjs';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/core/backend.js';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import type { Transition } from '../../src/data/transition.js';
import { envSpec } from '../../src/envs/registry.js';
import { DynamicsEnsemble } from '../../src/models/ensemble.js';
import { loadNodeConfig, parseNodeConfig, type NodeConfig } from '../../src/node/config.js';
import { ControlNode, type TickInfo } from '../../src/node/controlNode.js';
import { loadNodeModel } from '../../src/node/controlNodeCheckpoint.js';
import { ControllerTimeoutError, controlStep, type ControlCall, type NodeController } from '../../src/node/controlNodeController.js';
import { LockstepScheduler } from '../../src/node/controlNodeScheduler.js';
import { makeNodeTransport } from '../../src/node/controlNodeTransport.js';
import type { ControlState } from '../../src/pipeline/assembleState.js';
import type { ControlDecision } from '../../src/pipeline/safetyFilter.js';
import type { Bool, DiagnosticArray, Float64 } from '../../src/transports/messages.js';
import { MqttTransport } from '../../src/transports/mqtt.js';
import { SimTransport } from '../../src/transports/sim.js';
import { testScheduler } from '../pipeline/marbles.js';

const dir = mkdtempSync(join(tmpdir(), 'mbrl-control-node-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeAll(async () => {
  await initBackend();
});

const LAUNCH = new URL('../../launch/', import.meta.url);

/** launch/pendulum_sim.yaml with `patch` applied at top-level keys, saving into a fresh directory. */
function simConfig(name: string, patch: Record<string, unknown> = {}): NodeConfig {
  const raw = parseYaml(readFileSync(new URL('pendulum_sim.yaml', LAUNCH), 'utf8')) as Record<string, unknown>;
  return parseNodeConfig({ ...raw, checkpointDir: join(dir, name), ...patch }, name);
}

/** Pendulum-v1's step from an observation (cos θ, sin θ, θ̇): Gymnasium's equations. */
function pendulumStep(obs: ArrayLike<number>, u: number): number[] {
  const th = Math.atan2(obs[1], obs[0]);
  const torque = Math.min(2, Math.max(-2, u));
  const thdot = Math.min(8, Math.max(-8, obs[2] + (15 * Math.sin(th) + 3 * torque) * 0.05));
  const next = th + thdot * 0.05;
  return [Math.cos(next), Math.sin(next), thdot];
}

describe('LockstepScheduler', () => {
  it('runs due frames in scheduling order, stands still while held, and survives thousands of periods', async () => {
    const scheduler = new LockstepScheduler();
    const log: string[] = [];
    // Like the simulator and the node: two 50 ms intervals, the first scheduled first.
    const sim = interval(50, scheduler).subscribe((k) => log.push(`sim${k}@${scheduler.now()}`));
    let release: (() => void) | undefined;
    const node = interval(50, scheduler)
      .pipe(take(3))
      .subscribe((k) => {
        log.push(`node${k}@${scheduler.now()}`);
        if (k === 1) release = scheduler.hold();
      });
    scheduler.start();
    while (release === undefined) await new Promise((r) => setImmediate(r));
    // Held after node1 at 100 ms: a few turns of the event loop later, time has not moved.
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(scheduler.now()).toBe(100);
    expect(log).toEqual(['sim0@50', 'node0@50', 'sim1@100', 'node1@100']);
    release();
    while (!node.closed) await new Promise((r) => setImmediate(r));
    expect(log.slice(4, 6)).toEqual(['sim2@150', 'node2@150']);
    // 20,000 more periods: VirtualTimeScheduler would chain 20,000 actions and overflow the stack on unsubscribe.
    while (scheduler.now() < 1_000_000) await new Promise((r) => setImmediate(r));
    scheduler.stop();
    expect(() => sim.unsubscribe()).not.toThrow();
    expect(scheduler.actions).toHaveLength(0);
  });
});

describe('controlStep', () => {
  const state = (tick: number): ControlState => ({ tick, stampNs: BigInt(tick), obs: Float64Array.of(tick), sampleStampsNs: [], stale: [], missing: [] });
  const show = (d: ControlDecision): string => (d.action ? `${d.state.tick}:${d.action[0]}` : `${d.state.tick}:${(d.error as Error).name}`);
  const never = new Promise<Float64Array>(() => undefined);
  // obs[0] = the tick. 0: answers at once; 1: a promise that resolves; 2: throws; 3 and later: never answers.
  const controller: NodeController = {
    kind: 'test',
    act(obs) {
      if (obs[0] === 0) return Float64Array.of(0.5);
      if (obs[0] === 1) return Promise.resolve(Float64Array.of(1.5));
      if (obs[0] === 2) throw new RangeError('bad state');
      return never;
    },
    reset: () => undefined,
  };

  it('answers in tick order; a throw, a missed deadline and a controller still busy become errors (virtual time)', () => {
    const ts = testScheduler();
    const calls: ControlCall[] = [];
    ts.run(({ cold, expectObservable }) => {
      const states = cold<ControlState>('a 19ms b 19ms c 19ms d|', { a: state(0), b: state(2), c: state(3), d: state(4) });
      const out = states.pipe(controlStep({ current: () => ({ controller, version: 7 }), timeoutMs: 10, timeoutScheduler: ts, onCall: (c) => calls.push(c) }), map(show));
      // Tick 3 hangs: its deadline (10 ms) gives an error at 50 ms; tick 4 finds it still running: busy, not called.
      expectObservable(out).toBe('a 19ms b 29ms c 9ms d|', { a: '0:0.5', b: '2:RangeError', c: '3:ControllerTimeoutError', d: '4:Error' });
    });
    expect(calls.map((c) => `${c.tick}:${c.outcome}:${c.version}`)).toEqual(['0:ok:7', '2:error:7', '3:timeout:7', '4:busy:7']);
    expect(new ControllerTimeoutError('pets', 3, 10).message).toBe('controller pets: no action for tick 3 within 10 ms');
  });

  it('emits an asynchronous answer when it resolves; a tick arriving first ends the wait; completion waits for a running call', async () => {
    const seen: string[] = [];
    const states = new Subject<ControlState>();
    const done = new Promise<void>((resolve) => {
      states.pipe(controlStep({ current: () => ({ controller, version: 0 }), timeoutMs: 60_000 })).subscribe({ next: (d) => seen.push(show(d)), complete: resolve });
    });
    states.next(state(1));
    expect(seen).toEqual([]);
    await Promise.resolve();
    await Promise.resolve();
    expect(seen).toEqual(['1:1.5']);
    states.next(state(3)); // hangs
    states.next(state(0)); // arrives while 3 runs: 3's action would be late; 0 is not called
    expect(seen).toEqual(['1:1.5', '3:ControllerTimeoutError', '0:Error']);
    const slow = { ...controller, act: () => new Promise<Float64Array>((resolve) => setTimeout(() => resolve(Float64Array.of(9)), 5)) };
    const seen2: string[] = [];
    const states2 = new Subject<ControlState>();
    const done2 = new Promise<void>((resolve) => {
      states2.pipe(controlStep({ current: () => ({ controller: slow, version: 0 }), timeoutMs: 60_000 })).subscribe({ next: (d) => seen2.push(show(d)), complete: resolve });
    });
    states2.next(state(5));
    states2.complete();
    await done2;
    expect(seen2).toEqual(['5:9']); // the last decision is not lost when the states complete
    states.complete();
    await done;
  });
});

describe('makeNodeTransport and the launch configs', () => {
  it('builds the sim and MQTT transports of launch/pendulum_*.yaml, and names the key of what it cannot build', async () => {
    const sim = loadNodeConfig(new URL('pendulum_sim.yaml', LAUNCH).pathname);
    const mqtt = loadNodeConfig(new URL('pendulum_mqtt.yaml', LAUNCH).pathname);
    expect(sim.transport).toMatchObject({ kind: 'sim', env: 'Pendulum-v1' });
    expect(mqtt.transport).toMatchObject({ kind: 'mqtt', url: 'mqtt://localhost:1883', topicPrefix: 'pendulum' });
    for (const c of [sim, mqtt]) {
      expect([c.obsDim, c.actDim]).toEqual([3, 1]);
      expect(c.controller).toEqual({ kind: 'planner', beforeFirstModel: 'random' });
      expect(c.algorithm.kind).toBe('pets');
      expect(c.checkpointDir.startsWith(new URL('../runs/', LAUNCH).pathname)).toBe(true);
    }
    expect(makeNodeTransport(sim)).toBeInstanceOf(SimTransport);
    const t = makeNodeTransport(mqtt);
    expect(t).toBeInstanceOf(MqttTransport);
    expect((t as MqttTransport).prefix).toBe('pendulum');
    // Both build a node (no I/O until start).
    expect(new ControlNode({ config: sim }).stats.state).toBe('created');
    expect(new ControlNode({ config: mqtt }).stats.controller.kind).toBe('random');

    const error = (f: () => unknown): string => {
      try {
        f();
      } catch (err) {
        expect(err).toBeInstanceOf(ValidationError);
        return (err as Error).message;
      }
      throw new Error('expected a ValidationError');
    };
    // The ros2 backend builds without rclnodejs (it is imported at connect); without ROS sourced, connect says how to fix it.
    const ros2 = makeNodeTransport({ ...sim, transport: { kind: 'ros2', nodeName: 'n', namespace: '/', lifecycle: false } }, { env: {} });
    expect(ros2.kind).toBe('ros2');
    if (process.env.ROS_DISTRO === undefined) await expect(ros2.connect()).rejects.toThrow(/source \/opt\/ros\/<distro>\/setup\.bash/);
    expect(error(() => makeNodeTransport({ ...mqtt, transport: { ...mqtt.transport, passwordEnv: 'MBRL_TEST_NO_SUCH_VAR' } as NodeConfig['transport'] }, { env: {} }))).toMatch(/transport\.passwordEnv: the environment variable MBRL_TEST_NO_SUCH_VAR is not set/);
    const imu = parseNodeConfig({ ...parseYaml(readFileSync(new URL('pendulum_sim.yaml', LAUNCH), 'utf8')), sensors: [{ topic: '/imu', type: 'sensor_msgs/msg/Imu', fields: ['angular_velocity.x', 'angular_velocity.y', 'angular_velocity.z'] }] });
    expect(error(() => makeNodeTransport(imu))).toMatch(/sensors: the sim transport publishes the observation on one sensor_msgs\/msg\/JointState topic/);
    expect(error(() => new ControlNode({ config: mqtt, simSpeed: 10 }))).toMatch(/simSpeed: simulated time needs the simulator the node builds \(transport\.kind sim, no options\.transport\), got mqtt/);
  });
});

describe('ControlNode over the simulator', () => {
  it.each(['grid', 'sample'] as const)('stores every transition aligned: the reward the sim published for that step, its dynamics, none across a reset (ticks on the %s)', async (on) => {
    // Reward from the topic the simulator publishes it on, so alignment is visible: the
    // transition (s_t, a_t, s_t+1) must carry the reward of exactly that step.
    const tick = on === 'sample' ? { on, topic: '/joint_states' } : { on };
    const config = simConfig(`aligned-${on}`, { reward: { kind: 'topic', topic: '/mbrl/reward' }, tick });
    const transitions: Transition[] = [];
    const node = new ControlNode({ config, simSpeed: Infinity, maxTicks: 450, learn: false, diagnosticsPeriodMs: 0, log: () => undefined, onTransition: (t) => transitions.push(t) });
    let ends = 0;
    node.transport.subscribe<Bool>('/mbrl/episode_end', 'std_msgs/msg/Bool', () => ends++);
    await node.start();
    expect(await node.done).toEqual({ kind: 'stopped' });
    const stats = node.stats;
    expect(stats.ticks).toBe(450);
    expect(ends).toBe(2); // the simulator's time limit: 200 steps
    expect(stats.episodes).toBe(2);
    // Every consecutive pair of ticks is a transition except the two across a reset.
    expect(transitions).toHaveLength(450 - 1 - 2);
    expect(stats.transitions).toEqual({ stored: 447, recovered: 0, noReward: 0, invalid: 0 });
    const task = envSpec('Pendulum-v1').task;
    const r = new Float64Array(1);
    for (const t of transitions) {
      const predicted = pendulumStep(t.obs, t.action[0]);
      expect(Math.max(...Array.from(t.nextObs, (v, i) => Math.abs(v - predicted[i])))).toBeLessThan(1e-6); // float32 inside the simulator; a misaligned action is off by ~0.1
      task.reward(t.obs, t.action, t.nextObs, 1, r);
      expect(t.reward).toBeCloseTo(r[0], 5);
    }
    // The episode before each reset, and the last one, end truncated.
    expect(transitions.filter((t) => t.truncated)).toHaveLength(3);
    expect(stats.interventions.controllerError).toBe(0);
    expect(stats.buffer).toMatchObject({ committedRows: 447, uncommittedRows: 0 });
  });

  it('replaces a hung controller by the safe action at its deadline, never calls it again, and takes a swapped-in one at the next tick', async () => {
    const config = simConfig('hang');
    const ticks: TickInfo[] = [];
    const diagnostics: DiagnosticArray[] = [];
    let calls = 0;
    // Answers 1.5 five times, then never answers.
    const hangs: NodeController = {
      kind: 'hangs',
      act: () => (++calls <= 5 ? Promise.resolve(Float64Array.of(1.5)) : new Promise<Float64Array>(() => undefined)),
      reset: () => undefined,
    };
    const node: ControlNode = new ControlNode({
      config,
      simSpeed: Infinity,
      maxTicks: 14,
      learn: false,
      controllerTimeoutMs: 30,
      diagnosticsPeriodMs: 10,
      log: () => undefined,
      onTick(t) {
        ticks.push(t);
        if (ticks.length === 10) node.useController({ kind: 'steady', act: () => Float64Array.of(-1), reset: () => undefined });
      },
    });
    node.transport.subscribe<DiagnosticArray>('/diagnostics', 'diagnostic_msgs/msg/DiagnosticArray', (m) => diagnostics.push(m.data));
    expect(node.useController(hangs)).toBe(1);
    await node.start();
    await node.done;
    expect(ticks.map((t) => t.action[0])).toEqual([1.5, 1.5, 1.5, 1.5, 1.5, 0, 0, 0, 0, 0, -1, -1, -1, -1]);
    expect(ticks.map((t) => t.interventions.join())).toEqual([...Array(5).fill(''), ...Array(5).fill('controllerError'), ...Array(4).fill('')]);
    expect(ticks.map((t) => `${t.controller.kind} v${t.controller.version}`)).toEqual([...Array(10).fill('hangs v1'), ...Array(4).fill('steady v2')]);
    expect(calls).toBe(6); // the hung controller was not called again while its call ran
    const stats = node.stats;
    expect(stats.controller).toMatchObject({ kind: 'steady', version: 2, timeouts: 1, busy: 4, errors: 0 });
    expect(stats.interventions.controllerError).toBe(5);
    // What the simulator applied: the published actions (the last one is the safe action sent on stop).
    const sim = node.transport as SimTransport;
    expect(sim.stats.actionsReceived).toBe(15);
    // Diagnostics were published on /diagnostics, the last at the stop, with the counts.
    expect(diagnostics.length).toBeGreaterThanOrEqual(1);
    const last = diagnostics[diagnostics.length - 1];
    const loop = last.status.find((s) => s.name === 'mbrl_node: control loop');
    expect(loop?.values).toEqual(expect.arrayContaining([{ key: 'controller_timeouts', value: '1' }, { key: 'controller_busy', value: '4' }, { key: 'controller_version', value: '2' }]));
    expect(last.status.find((s) => s.name === 'mbrl_node: safety')?.values).toEqual(expect.arrayContaining([{ key: 'interventions/controllerError', value: '5' }]));
    expect(last.status.map((s) => s.name)).toEqual(['mbrl_node: control loop', 'mbrl_node: sensors', 'mbrl_node: safety', 'mbrl_node: learner', 'mbrl_node: buffer']);
  });

  it('swaps a promoted model into the running loop without stopping it, and saves it to the checkpoint', async () => {
    const config = simConfig('promote', { algorithm: { kind: 'pets', overrides: { planner: { populationSize: 20, numElites: 4, numIterations: 2, horizon: 5 }, particles: 2 } } });
    const ticks: TickInfo[] = [];
    const node = new ControlNode({ config, simSpeed: Infinity, learn: false, diagnosticsPeriodMs: 0, log: () => undefined, onTick: (t) => ticks.push(t) });
    const ensemble = new DynamicsEnsemble({ obsDim: 3, actDim: 1, rng: new Rng(3), config: { numMembers: 2, numElites: 2, hidden: [8], learnReward: false } });
    const weights = ensemble.toWeights();
    ensemble.dispose();
    await node.start();
    while (ticks.length < 5) await new Promise((r) => setImmediate(r));
    const before = ticks.length;
    const version = await node.promote({ weights, elites: [0, 1] });
    const at = ticks.length;
    while (ticks.length < at + 5) await new Promise((r) => setImmediate(r));
    await node.stop();
    expect(version).toBe(1);
    // Random exploration until the swap, the planner on the new model from the next tick on.
    expect(ticks.slice(0, before).every((t) => t.controller.kind === 'random' && t.controller.version === 0)).toBe(true);
    expect(ticks.slice(at + 1).every((t) => t.controller.kind === 'pets' && t.controller.version === 1)).toBe(true);
    expect(ticks.slice(at + 1).every((t) => t.interventions.length === 0 && Math.abs(t.action[0]) <= 2)).toBe(true);
    expect(node.stats).toMatchObject({ promotions: 1, savedModelVersion: 1 });
    const saved = await loadNodeModel(config.checkpointDir);
    expect(saved?.version).toBe(1);
    expect(saved?.ensemble?.elites).toEqual([0, 1]);
    expect(saved?.ensemble?.weights.weights[0]).toEqual(weights.weights[0]);
    await expect(node.promote({ weights: { ...weights, spec: { ...weights.spec, obsDim: 4 } }, elites: [0] })).rejects.toThrow(/ControlNode\.promote: model: expected obsDim 3 and actDim 1/);
  });
});

describe('ControlNode learning Pendulum-v1 online (PETS through the learner worker)', () => {
  // Random torques score about −1200 per episode on Pendulum-v1 (−1485 on this seed's first
  // episode): they never swing the rod up and hold it, and every step near the bottom costs ~π².
  // −400 needs a swing-up within a couple of seconds and balancing for the rest of the episode,
  // which chance does not do. Budget: 4,000 simulated steps (20 episodes, 200 s simulated); the
  // test stops at the first episode that reaches the threshold. PETS through the node reached it
  // in episodes 6, 7 and 9 in three runs (the CLI's PETS, which refits between episodes instead of
  // alongside them: episode 5), in 70–100 s on a heavily loaded 2-core machine.
  const THRESHOLD = -400;
  const BUDGET_TICKS = 4000;

  it(`raises the episode return from random level to ≥ ${THRESHOLD} within ${BUDGET_TICKS} simulated steps`, async () => {
    // launch/pendulum_sim.yaml as it is, saving elsewhere, but with the learner thread at the
    // control thread's priority: this test runs beside another test file on CI's 2 cores, and at
    // the default nice +10 the refits get a small share of a contended core and fall behind the
    // simulated clock (one CI run: models v2–v5 only over 20 episodes, best −637). The priority
    // itself is tested in learner.test.ts.
    const base = simConfig('learn');
    const config = { ...base, learner: { ...base.learner, workerNice: 0 } };
    const returns: { ret: number; controller: string }[] = [];
    let ret = 0;
    // Simulated time in lockstep, at most twice real time: random exploration does not outrun the first fit by much.
    const node: ControlNode = new ControlNode({ config, simSpeed: 2, maxTicks: BUDGET_TICKS, diagnosticsPeriodMs: 0, log: () => undefined });
    node.transport.subscribe<Float64>('/mbrl/reward', 'std_msgs/msg/Float64', (m) => (ret += m.data.data));
    node.transport.subscribe<Bool>('/mbrl/episode_end', 'std_msgs/msg/Bool', () => {
      const s = node.stats;
      returns.push({ ret, controller: `${s.controller.kind} v${s.controller.version}` });
      ret = 0;
      if (returns[returns.length - 1].ret >= THRESHOLD) void node.stop();
    });
    const t0 = performance.now();
    await node.start();
    expect(await node.done).toEqual({ kind: 'stopped' });
    const stats = node.stats;
    console.log(
      `control node PETS Pendulum-v1: returns ${returns.map((r) => `${r.ret.toFixed(0)} (${r.controller})`).join(', ')}; ` +
        `${stats.ticks} ticks, ${stats.promotions} models promoted, ${((performance.now() - t0) / 1000).toFixed(0)} s`,
    );
    expect(returns[0].ret).toBeLessThan(-700); // the warm-up episode: random torques
    expect(Math.max(...returns.map((r) => r.ret))).toBeGreaterThanOrEqual(THRESHOLD);
    expect(stats.promotions).toBeGreaterThanOrEqual(1);
    expect(stats.learner?.restarts).toBe(0);
    expect(stats.interventions.controllerError).toBe(0);
    expect(stats.savedModelVersion).toBe(stats.controller.version);
  }, 900_000);
});
