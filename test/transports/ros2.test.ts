// Ros2Transport against a STAND-IN for rclnodejs: rclnodejs cannot be installed or loaded on a
// machine without ROS 2 (it compiles itself against the sourced ROS at install and import), so
// these tests inject `FakeRcl`, an in-process imitation with rclnodejs 2.x's API shape (init with
// argv, Node/LifecycleNode, createPublisher/createSubscription with QoS options, Parameter and
// ParameterDescriptor with bigint integers, lifecycle callbacks returning CallbackReturnCode) and
// the rcl behaviour the transport relies on (remaps and -p overrides from argv, read-only
// parameters, best-effort publishers not matching reliable subscriptions, the lifecycle state
// machine). What it cannot show is rclnodejs itself; that needs a ROS 2 machine (docs/ros2.md).
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { loadRosNodeConfig, ros2TransportOptions } from '../../src/node/rosParams.js';
import type { DiagnosticArray, Float64MultiArray, JointState } from '../../src/transports/messages.js';
import {
  Ros2Transport,
  Ros2UnavailableError,
  loadRclnodejs,
  toRclQos,
  type RclLike,
  type RclParameterLike,
  type Ros2TransportOptions,
} from '../../src/transports/ros2.js';
import { QOS_DEFAULT, QOS_SENSOR_DATA, type IncomingMessage } from '../../src/transports/transport.js';

const ROOT = resolve(import.meta.dirname, '../..');
const PARAMS_FILE = join(ROOT, 'launch/mbrl_node.params.yaml');

// ---------------------------------------------------------------------------------------------
// The stand-in.

const ParameterType = {
  PARAMETER_NOT_SET: 0,
  PARAMETER_BOOL: 1,
  PARAMETER_INTEGER: 2,
  PARAMETER_DOUBLE: 3,
  PARAMETER_STRING: 4,
  PARAMETER_BYTE_ARRAY: 5,
  PARAMETER_BOOL_ARRAY: 6,
  PARAMETER_INTEGER_ARRAY: 7,
  PARAMETER_DOUBLE_ARRAY: 8,
  PARAMETER_STRING_ARRAY: 9,
} as const;

/** rclnodejs's value check: integers are bigint, doubles number, arrays homogeneous. */
function validValue(type: number, value: unknown): boolean {
  const all = (p: (v: unknown) => boolean) => Array.isArray(value) && value.every(p);
  switch (type) {
    case ParameterType.PARAMETER_BOOL:
      return typeof value === 'boolean';
    case ParameterType.PARAMETER_INTEGER:
      return typeof value === 'bigint';
    case ParameterType.PARAMETER_DOUBLE:
      return typeof value === 'number';
    case ParameterType.PARAMETER_STRING:
      return typeof value === 'string';
    case ParameterType.PARAMETER_BOOL_ARRAY:
      return all((v) => typeof v === 'boolean');
    case ParameterType.PARAMETER_INTEGER_ARRAY:
      return all((v) => typeof v === 'bigint');
    case ParameterType.PARAMETER_DOUBLE_ARRAY:
      return all((v) => typeof v === 'number');
    case ParameterType.PARAMETER_STRING_ARRAY:
      return all((v) => typeof v === 'string');
    default:
      return false;
  }
}

class FakeParameter implements RclParameterLike {
  readonly name: string;
  readonly type: number;
  value: unknown;
  constructor(name: string, type: number, value?: unknown) {
    this.name = name;
    this.type = type;
    this.value = type === ParameterType.PARAMETER_INTEGER ? BigInt(value as number) : value;
    if (!validValue(type, this.value)) throw new TypeError(`Parameter ${name}: value ${String(value)} is not of type ${type}`);
  }
}

class FakeDescriptor {
  constructor(
    readonly name: string,
    readonly type: number,
    readonly description = '',
    readonly readOnly = false,
  ) {}
}

class FakeQoS {
  static readonly HistoryPolicy = { RMW_QOS_POLICY_HISTORY_SYSTEM_DEFAULT: 0, RMW_QOS_POLICY_HISTORY_KEEP_LAST: 1, RMW_QOS_POLICY_HISTORY_KEEP_ALL: 2 };
  static readonly ReliabilityPolicy = { RMW_QOS_POLICY_RELIABILITY_SYSTEM_DEFAULT: 0, RMW_QOS_POLICY_RELIABILITY_RELIABLE: 1, RMW_QOS_POLICY_RELIABILITY_BEST_EFFORT: 2 };
  static readonly DurabilityPolicy = { RMW_QOS_POLICY_DURABILITY_SYSTEM_DEFAULT: 0, RMW_QOS_POLICY_DURABILITY_TRANSIENT_LOCAL: 1, RMW_QOS_POLICY_DURABILITY_VOLATILE: 2 };
  constructor(
    readonly history = 0,
    readonly depth = 0,
    readonly reliability = 0,
    readonly durability = 0,
  ) {}
}

interface FakeEndpoint {
  node: FakeNode;
  typeClass: string;
  topic: string;
  qos: FakeQoS;
  options: Record<string, unknown>;
  destroyed: boolean;
}
interface FakeSub extends FakeEndpoint {
  callback: (msg: unknown) => void;
}
interface FakePub extends FakeEndpoint {
  publish(msg: unknown): void;
  sent: unknown[];
}
interface FakeTimer {
  period: bigint;
  callback: () => void;
  canceled: boolean;
  destroyed: boolean;
  cancel(): void;
}

/** One process's ROS graph (what DDS discovery would connect). */
class FakeGraph {
  subs: FakeSub[] = [];
  pubs: FakePub[] = [];
  deliver(pub: FakePub, msg: unknown): void {
    for (const s of this.subs) {
      if (s.destroyed || !s.node.spinning || s.topic !== pub.topic || s.typeClass !== pub.typeClass) continue;
      // DDS: a best-effort writer does not match a reliable reader.
      if (pub.qos.reliability === FakeQoS.ReliabilityPolicy.RMW_QOS_POLICY_RELIABILITY_BEST_EFFORT && s.qos.reliability === FakeQoS.ReliabilityPolicy.RMW_QOS_POLICY_RELIABILITY_RELIABLE) continue;
      s.callback(structuredClone(msg)); // a serialising middleware hands each subscriber its own copy
    }
  }
}

/** rcl's parsing of the --ros-args in argv: remaps and -p overrides (both global). */
function rclArgs(argv: readonly string[]): { remaps: Map<string, string>; overrides: FakeParameter[] } {
  const remaps = new Map<string, string>();
  const overrides: FakeParameter[] = [];
  let inRos = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--ros-args') inRos = true;
    else if (argv[i] === '--') inRos = false;
    else if (inRos && (argv[i] === '-r' || argv[i] === '-p')) {
      const [from, to] = argv[++i].split(':=');
      if (argv[i - 1] === '-r') remaps.set(from, to);
      else {
        const num = Number(to);
        overrides.push(
          /^-?\d+$/.test(to)
            ? new FakeParameter(from, ParameterType.PARAMETER_INTEGER, num)
            : Number.isFinite(num)
              ? new FakeParameter(from, ParameterType.PARAMETER_DOUBLE, num)
              : new FakeParameter(from, ParameterType.PARAMETER_STRING, to),
        );
      }
    }
  }
  return { remaps, overrides };
}

class FakeNode {
  readonly graph: FakeGraph;
  readonly rcl: FakeRclState;
  readonly ctorArgs: unknown[];
  #name: string;
  #namespace: string;
  spinning = false;
  destroyed = false;
  parameters = new Map<string, FakeParameter>();
  descriptors = new Map<string, FakeDescriptor>();
  setCallbacks: Array<(params: RclParameterLike[]) => { successful: boolean; reason: string }> = [];
  timers: FakeTimer[] = [];
  declared: Array<{ name: string; ignoreOverride: boolean }> = [];

  constructor(state: FakeRclState, nodeName: string, namespace = '', ...rest: unknown[]) {
    if (!state.initialized) throw new Error('The context is not initialized');
    this.rcl = state;
    this.graph = state.graph;
    this.ctorArgs = [nodeName, namespace, ...rest];
    const { remaps } = rclArgs(state.argv);
    this.#name = remaps.get('__node') ?? nodeName;
    this.#namespace = remaps.get('__ns') ?? (namespace || '/');
    state.nodes.push(this);
  }
  name(): string {
    return this.#name;
  }
  namespace(): string {
    return this.#namespace;
  }
  #resolve(topic: string): string {
    const abs = topic.startsWith('/') ? topic : this.#namespace === '/' ? `/${topic}` : `${this.#namespace}/${topic}`;
    return rclArgs(this.rcl.argv).remaps.get(abs) ?? abs;
  }
  createPublisher(typeClass: string, topic: string, options: Record<string, unknown> = {}): FakePub {
    const graph = this.graph;
    const pub: FakePub = {
      node: this,
      typeClass,
      topic: this.#resolve(topic),
      qos: (options.qos as FakeQoS | undefined) ?? new FakeQoS(1, 10, 1, 2),
      options,
      destroyed: false,
      sent: [],
      publish(msg: unknown) {
        if (this.destroyed) throw new Error('publisher destroyed');
        this.sent.push(structuredClone(msg));
        graph.deliver(this, msg);
      },
    };
    this.graph.pubs.push(pub);
    return pub;
  }
  createSubscription(typeClass: string, topic: string, options: Record<string, unknown>, callback: (msg: unknown) => void): FakeSub {
    const sub: FakeSub = { node: this, typeClass, topic: this.#resolve(topic), qos: (options.qos as FakeQoS | undefined) ?? new FakeQoS(1, 10, 1, 2), options, destroyed: false, callback };
    this.graph.subs.push(sub);
    return sub;
  }
  destroyPublisher(p: FakePub): void {
    p.destroyed = true;
  }
  destroySubscription(s: FakeSub): void {
    s.destroyed = true;
  }
  createTimer(period: bigint, callback: () => void): FakeTimer {
    if (typeof period !== 'bigint') throw new TypeError('period must be a bigint (nanoseconds)');
    const t: FakeTimer = {
      period,
      callback,
      canceled: false,
      destroyed: false,
      cancel() {
        this.canceled = true;
      },
    };
    this.timers.push(t);
    return t;
  }
  destroyTimer(t: FakeTimer): void {
    t.destroyed = true;
  }
  getParameterOverrides(): FakeParameter[] {
    return rclArgs(this.rcl.argv).overrides;
  }
  declareParameter(parameter: FakeParameter, descriptor?: FakeDescriptor, ignoreOverride = false): FakeParameter {
    if (this.parameters.has(parameter.name)) throw new Error(`Parameter(${parameter.name}) already declared.`);
    const override = this.getParameterOverrides().find((p) => p.name === parameter.name);
    const p = !ignoreOverride && override ? override : parameter;
    const d = descriptor ?? new FakeDescriptor(p.name, p.type);
    if (d.type !== p.type) throw new Error(`Parameter ${p.name}: type ${p.type} does not match its descriptor's ${d.type}`);
    this.declared.push({ name: p.name, ignoreOverride });
    this.parameters.set(p.name, p);
    this.descriptors.set(p.name, d);
    return p;
  }
  getParameter(name: string): FakeParameter | undefined {
    return this.parameters.get(name);
  }
  /** What `ros2 param set` reaches. */
  setParameters(params: FakeParameter[]): Array<{ successful: boolean; reason: string }> {
    return params.map((p) => {
      const d = this.descriptors.get(p.name);
      if (!d) return { successful: false, reason: 'parameter not declared' };
      if (d.readOnly) return { successful: false, reason: `Parameter ${p.name} is read-only` };
      for (const cb of this.setCallbacks) {
        const r = cb([p]);
        if (!r.successful) return r;
      }
      this.parameters.set(p.name, p);
      return { successful: true, reason: '' };
    });
  }
  addOnSetParametersCallback(cb: (params: RclParameterLike[]) => { successful: boolean; reason: string }): void {
    this.setCallbacks.unshift(cb);
  }
  now(): { nanoseconds: bigint } {
    return { nanoseconds: this.rcl.clockNs };
  }
  spin(): void {
    if (this.spinning) throw new Error('The node is already spinning.');
    this.spinning = true;
  }
  destroy(): void {
    this.destroyed = true;
    this.spinning = false;
    for (const e of [...this.graph.subs, ...this.graph.pubs]) if (e.node === this) e.destroyed = true;
  }
}

const Codes = { SUCCESS: 97, FAILURE: 98, ERROR: 99 };
type LcState = 'unconfigured' | 'inactive' | 'active' | 'finalized';
const TRANSITIONS: Record<string, { from: LcState[]; to: LcState; cb: string }> = {
  configure: { from: ['unconfigured'], to: 'inactive', cb: 'configure' },
  activate: { from: ['inactive'], to: 'active', cb: 'activate' },
  deactivate: { from: ['active'], to: 'inactive', cb: 'deactivate' },
  cleanup: { from: ['inactive'], to: 'unconfigured', cb: 'cleanup' },
  shutdown: { from: ['unconfigured', 'inactive', 'active'], to: 'finalized', cb: 'shutdown' },
};

class FakeLifecycleNode extends FakeNode {
  state: LcState = 'unconfigured';
  callbacks = new Map<string, (prev: unknown) => number>();
  registerOnConfigure(cb: (prev: unknown) => number): void {
    this.callbacks.set('configure', cb);
  }
  registerOnActivate(cb: (prev: unknown) => number): void {
    this.callbacks.set('activate', cb);
  }
  registerOnDeactivate(cb: (prev: unknown) => number): void {
    this.callbacks.set('deactivate', cb);
  }
  registerOnCleanup(cb: (prev: unknown) => number): void {
    this.callbacks.set('cleanup', cb);
  }
  registerOnShutdown(cb: (prev: unknown) => number): void {
    this.callbacks.set('shutdown', cb);
  }
  registerOnError(cb: (prev: unknown) => number): void {
    this.callbacks.set('error', cb);
  }
  /** rclnodejs's _changeState: invalid transitions throw; FAILURE returns to the start state; ERROR runs on_error. */
  #change(label: string): { id: number; label: string } {
    const t = TRANSITIONS[label];
    if (!t.from.includes(this.state)) throw new Error(`No transition available from state ${label}`);
    const prev = this.state;
    const cb = this.callbacks.get(t.cb);
    let code = Codes.SUCCESS;
    if (cb) {
      try {
        code = cb({ label: prev });
      } catch {
        code = Codes.ERROR;
      }
    }
    if (code === Codes.SUCCESS) this.state = t.to;
    else if (code === Codes.ERROR) {
      this.callbacks.get('error')?.({ label: prev });
      this.state = 'unconfigured';
    }
    return { id: 0, label: this.state };
  }
  configure() {
    return this.#change('configure');
  }
  activate() {
    return this.#change('activate');
  }
  deactivate() {
    return this.#change('deactivate');
  }
  cleanup() {
    return this.#change('cleanup');
  }
  shutdown() {
    return this.#change('shutdown');
  }
  /** The ChangeState service (`ros2 lifecycle set`): reports success, never throws. */
  changeState(label: string): boolean {
    const before = this.state;
    try {
      this.#change(label);
    } catch {
      return false;
    }
    return this.state !== before;
  }
}

interface FakeRclState {
  graph: FakeGraph;
  argv: string[];
  initialized: boolean;
  inits: Array<{ context: unknown; argv: string[] }>;
  shutdowns: number;
  signalHandlersRemoved: number;
  nodes: FakeNode[];
  clockNs: bigint;
}

/** A stand-in with rclnodejs's API shape (see the file comment). */
function fakeRcl(): { rcl: RclLike; state: FakeRclState } {
  const state: FakeRclState = { graph: new FakeGraph(), argv: [], initialized: false, inits: [], shutdowns: 0, signalHandlersRemoved: 0, nodes: [], clockNs: 1_000_000_000n };
  class Node extends FakeNode {
    constructor(nodeName: string, namespace?: string, ...rest: unknown[]) {
      super(state, nodeName, namespace, ...rest);
    }
  }
  class LifecycleNode extends FakeLifecycleNode {
    constructor(nodeName: string, namespace?: string, ...rest: unknown[]) {
      super(state, nodeName, namespace, ...rest);
    }
  }
  const rcl = {
    async init(context?: unknown, argv: string[] = process.argv) {
      if (state.initialized) throw new Error('The context has already been initialized.');
      state.inits.push({ context, argv });
      state.argv = argv;
      state.initialized = true;
    },
    shutdown() {
      state.shutdowns++;
      state.initialized = false;
    },
    removeSignalHandlers() {
      state.signalHandlersRemoved++;
    },
    Node,
    QoS: FakeQoS,
    Parameter: FakeParameter,
    ParameterDescriptor: FakeDescriptor,
    ParameterType,
    lifecycle: { LifecycleNode, CallbackReturnCode: Codes },
  };
  return { rcl: rcl as unknown as RclLike, state };
}

/** The transport's node in the stand-in, and a second node playing the robot. */
async function connected(options: Ros2TransportOptions = {}): Promise<{ t: Ros2Transport; state: FakeRclState; node: FakeNode; robot: FakeNode; errors: Error[] }> {
  const { rcl, state } = fakeRcl();
  const errors: Error[] = [];
  const t = new Ros2Transport({ argv: ['node', 'mbrl.js', 'run'], onError: (e) => errors.push(e), ...options, rcl });
  await t.connect();
  const node = state.nodes[0];
  const robot = new (rcl.Node as unknown as new (n: string) => FakeNode)('robot');
  robot.spin();
  return { t, state, node, robot, errors };
}

const JOINT_STATE: JointState = { header: { stamp: { sec: 3, nanosec: 7 }, frame_id: 'base' }, name: ['pole'], position: [1, 0, 0.25], velocity: [], effort: [] };
const torque = (u: number): Float64MultiArray => ({ layout: { dim: [], data_offset: 0 }, data: [u] });

// ---------------------------------------------------------------------------------------------

describe('Ros2Transport on the rclnodejs stand-in', () => {
  it('round-trips message objects: robot → subscriber, publish → robot, stamped with the node clock', async () => {
    const { t, state, robot } = await connected();
    const got: IncomingMessage<JointState>[] = [];
    t.subscribe<JointState>('/joint_states', 'sensor_msgs/msg/JointState', (m) => got.push(m), { qos: QOS_SENSOR_DATA });
    const robotPub = robot.createPublisher('sensor_msgs/msg/JointState', '/joint_states', { qos: new FakeQoS(1, 5, 2, 2) });
    state.clockNs = 5_000_000_123n;
    robotPub.publish(JOINT_STATE);
    expect(got).toHaveLength(1);
    expect(got[0]).toEqual({ topic: '/joint_states', type: 'sensor_msgs/msg/JointState', data: JOINT_STATE, receivedNs: 5_000_000_123n });
    expect(t.nowNs()).toBe(5_000_000_123n);

    const commands: unknown[] = [];
    robot.createSubscription('std_msgs/msg/Float64MultiArray', '/mbrl/action', {}, (m) => commands.push(m));
    t.publish('/mbrl/action', 'std_msgs/msg/Float64MultiArray', torque(-1.5));
    expect(commands).toEqual([torque(-1.5)]);
    expect(t.stats).toMatchObject({ delivered: 1, published: 1, dropped: 0, held: 0 });

    // Arrays as plain arrays (rclnodejs's enableTypedArray: false).
    expect(state.graph.subs.find((s) => s.topic === '/joint_states' && s.node !== robot)!.options.enableTypedArray).toBe(false);
    await t.close();
  });

  it('maps QoS profiles to rclnodejs QoS, and the mapping decides which publishers reach a subscriber', async () => {
    const { rcl } = fakeRcl();
    expect(toRclQos(rcl, QOS_SENSOR_DATA)).toEqual(new FakeQoS(1, 5, 2, 2)); // keep last 5, best effort, volatile
    expect(toRclQos(rcl, QOS_DEFAULT)).toEqual(new FakeQoS(1, 10, 1, 2)); // keep last 10, reliable, volatile
    expect(toRclQos(rcl, { reliability: 'reliable', durability: 'transientLocal', depth: 1 })).toEqual(new FakeQoS(1, 1, 1, 1));

    const { t, state, robot } = await connected();
    const sensorData: unknown[] = [];
    const reliable: unknown[] = [];
    t.subscribe('/imu_fast', 'std_msgs/msg/Float64', (m) => sensorData.push(m.data), { qos: QOS_SENSOR_DATA });
    t.subscribe('/imu_fast', 'std_msgs/msg/Float64', (m) => reliable.push(m.data), { qos: QOS_DEFAULT });
    const bestEffortDriver = robot.createPublisher('std_msgs/msg/Float64', '/imu_fast', { qos: new FakeQoS(1, 5, 2, 2) });
    bestEffortDriver.publish({ data: 1 });
    // A best-effort driver reaches the sensor-data subscription only, as with DDS.
    expect(sensorData).toEqual([{ data: 1 }]);
    expect(reliable).toEqual([]);

    t.publish('/cmd', 'std_msgs/msg/Float64', { data: 2 }, { qos: QOS_DEFAULT });
    expect(state.graph.pubs.find((p) => p.topic === '/cmd')!.qos).toEqual(new FakeQoS(1, 10, 1, 2));
    expect(() => t.publish('/cmd', 'std_msgs/msg/Float64', { data: 3 }, { qos: QOS_SENSOR_DATA })).toThrow(/one QoS per topic/);
    expect(() => t.subscribe('/x', 'std_msgs/msg/Float64', () => undefined, { qos: { reliability: 'sometimes', durability: 'volatile', depth: 1 } as never })).toThrow(ValidationError);
    await t.close();
  });

  it('checks outgoing messages of the common types and names the bad field; other types pass to rclnodejs', async () => {
    const { t, robot } = await connected();
    const got: unknown[] = [];
    robot.createSubscription('geometry_msgs/msg/Twist', '/cmd_vel', {}, (m) => got.push(m));
    expect(() => t.publish('/cmd_vel', 'geometry_msgs/msg/Twist', { linear: { x: 1, y: 0, z: 0 } })).toThrow(/angular.*missing/);
    expect(() => t.publish('/cmd_vel', 'geometry_msgs/msg/Twist', { linear: { x: '1', y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0 } })).toThrow(/linear\.x/);
    expect(got).toEqual([]);
    t.publish('/mine', 'my_robot_msgs/msg/Gripper', { width: 0.04 });
    expect(() => t.publish('/mine', 'std_msgs/msg/Float64', { data: 1 })).toThrow(/one type per topic/);
    await t.close();
    expect(() => t.publish('/cmd_vel', 'geometry_msgs/msg/Twist', {})).toThrow(/closed/);
    expect(() => new Ros2Transport({ rcl: fakeRcl().rcl }).publish('/a', 'std_msgs/msg/Float64', { data: 1 })).toThrow(/not connected/);
  });

  it('reports a throwing subscriber through its onError and keeps delivering', async () => {
    const { t, robot } = await connected();
    const errors: Error[] = [];
    const got: unknown[] = [];
    t.subscribe('/n', 'std_msgs/msg/Float64', () => { throw new Error('boom'); }, { onError: (e) => errors.push(e) });
    const off = t.subscribe('/n', 'std_msgs/msg/Float64', (m) => got.push(m.data));
    const pub = robot.createPublisher('std_msgs/msg/Float64', '/n');
    pub.publish({ data: 1 });
    off();
    pub.publish({ data: 2 });
    // The throwing subscriber stays subscribed (both messages reach it); the other got the first only.
    expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/\/n.*boom/), expect.stringMatching(/\/n.*boom/)]);
    expect(got).toEqual([{ data: 1 }]);
    expect(t.stats).toMatchObject({ callbackErrors: 2, delivered: 1 });
    await t.close();
  });

  it('passes argv to rclnodejs.init unchanged: rcl applies the remaps and the node name', async () => {
    const argv = ['/usr/bin/node', '/opt/mbrl/bin/mbrl.js', 'run', '--config', 'x.yaml', '--ros-args', '-r', '__node:=arm', '-r', '/mbrl/action:=/robot/torque'];
    const { t, state, node, robot } = await connected({ argv, nodeName: 'mbrl_node', namespace: '/lab' });
    expect(state.inits).toEqual([{ context: undefined, argv }]);
    expect(state.signalHandlersRemoved).toBe(1); // our clean stop handles SIGINT, not rclnodejs
    expect(node.ctorArgs.slice(0, 2)).toEqual(['mbrl_node', '/lab']);
    expect(node.name()).toBe('arm');
    const got: unknown[] = [];
    robot.createSubscription('std_msgs/msg/Float64MultiArray', '/robot/torque', {}, (m) => got.push(m));
    t.publish('/mbrl/action', 'std_msgs/msg/Float64MultiArray', torque(0.5));
    expect(got).toEqual([torque(0.5)]);
    await t.close();
    expect(node.destroyed).toBe(true);
    expect(state.shutdowns).toBe(1);
    await t.close();
    expect(state.shutdowns).toBe(1);
  });

  it('declares the parameters file as read-only ROS parameters, with rclnodejs types', async () => {
    const loaded = loadRosNodeConfig({ configFile: PARAMS_FILE, argv: ['--ros-args', '--params-file', PARAMS_FILE] });
    const argv = ['node', 'mbrl.js', 'run', '--config', PARAMS_FILE, '--ros-args', '--params-file', PARAMS_FILE];
    const options = ros2TransportOptions(loaded.config, { argv, written: loaded.parameters, types: loaded.types, sensorKeys: loaded.sensorKeys });
    const { t, node, errors } = await connected(options);
    const get = (name: string) => node.getParameter(name);
    expect(get('controlPeriodMs')).toMatchObject({ type: ParameterType.PARAMETER_INTEGER, value: 50n });
    // As written: 80.0 is a double (not the configuration's normalised [80]), [-2.0] a double array.
    expect(get('safety.maxRatePerSec')).toMatchObject({ type: ParameterType.PARAMETER_DOUBLE, value: 80 });
    expect(get('actionBounds.low')).toMatchObject({ type: ParameterType.PARAMETER_DOUBLE_ARRAY, value: [-2] });
    expect(get('checkpointDir')?.value).toBe('runs/mbrl_node');
    expect(get('sensors.joint_states.fields')).toMatchObject({ type: ParameterType.PARAMETER_STRING_ARRAY, value: ['position[0..2]'] });
    expect(get('sensors.joint_states.qos')).toMatchObject({ type: ParameterType.PARAMETER_STRING, value: 'sensorData' });
    expect(get('transport.kind')?.value).toBe('ros2');
    expect(get('transport.nodeName')?.value).toBe('mbrl_node');
    // Defaults the file leaves out are declared too.
    expect(get('learner.timeoutSec')?.value).toBe(600n);
    expect(get('safety.onControllerError')?.value).toBe('safeAction');
    expect([...node.descriptors.values()].every((d) => d.readOnly)).toBe(true);
    expect(node.declared.every((d) => d.ignoreOverride)).toBe(true);
    expect(node.setParameters([new FakeParameter('controlPeriodMs', ParameterType.PARAMETER_INTEGER, 10)])).toEqual([{ successful: false, reason: expect.stringMatching(/read-only/) }]);
    expect(errors).toEqual([]);
    await t.close();
  });

  it('reports a command-line override that differs from the configuration and declares what the node runs with', async () => {
    const argv = ['node', 'mbrl.js', '--ros-args', '-p', 'controlPeriodMs:=20'];
    const { t, node, errors } = await connected({ argv, parameters: [{ name: 'controlPeriodMs', value: 50 }, { name: 'learner.promotionMargin', value: 0.5, readOnly: false }] });
    expect(node.getParameter('controlPeriodMs')?.value).toBe(50n);
    expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/controlPeriodMs.*20.*50/)]);
    await t.close();
  });

  it('asks onSetParameters about writable parameters only', async () => {
    const asked: unknown[] = [];
    const { t, node } = await connected({
      parameters: [
        { name: 'learner.promotionMargin', value: 0.5, readOnly: false },
        { name: 'controlPeriodMs', value: 50 },
      ],
      onSetParameters: (changes) => {
        asked.push(changes);
        return (changes[0].value as number) < 0 ? 'expected a margin ≥ 0' : undefined;
      },
    });
    expect(node.setParameters([new FakeParameter('learner.promotionMargin', ParameterType.PARAMETER_DOUBLE, 2.5)])).toEqual([{ successful: true, reason: '' }]);
    expect(node.setParameters([new FakeParameter('learner.promotionMargin', ParameterType.PARAMETER_DOUBLE, -1)])).toEqual([{ successful: false, reason: 'expected a margin ≥ 0' }]);
    expect(node.getParameter('learner.promotionMargin')?.value).toBe(2.5);
    expect(asked).toEqual([[{ name: 'learner.promotionMargin', value: 2.5 }], [{ name: 'learner.promotionMargin', value: -1 }]]);
    await t.close();
  });

  it('refuses a parameter value ROS cannot hold, and releases rcl', async () => {
    const { rcl, state } = fakeRcl();
    const t = new Ros2Transport({ rcl, argv: [], parameters: [{ name: 'mixed', value: [1, 'a'] as never }] });
    await expect(t.connect()).rejects.toThrow(/parameters\.mixed/);
    expect(state.shutdowns).toBe(1);
    expect(state.nodes[0].destroyed).toBe(true);
  });
});

describe('Ros2Transport lifecycle variant', () => {
  it('configure creates, activate starts the timer, deactivate stops it and holds the safe action, cleanup releases', async () => {
    const hooks: string[] = [];
    const loaded = loadRosNodeConfig({ configFile: PARAMS_FILE });
    const options = ros2TransportOptions(loaded.config, {
      argv: [],
      lifecycle: {
        controlPeriodMs: loaded.config.controlPeriodMs,
        onTick: () => hooks.push('tick'),
        onConfigure: () => hooks.push('configure'),
        onActivate: () => hooks.push('activate'),
        onDeactivate: () => hooks.push('deactivate'),
        onCleanup: () => hooks.push('cleanup'),
      },
    });
    const { t, state, node, robot } = await connected(options);
    const lc = node as FakeLifecycleNode;
    expect(lc).toBeInstanceOf(FakeLifecycleNode);
    const commands: Float64MultiArray[] = [];
    robot.createSubscription('std_msgs/msg/Float64MultiArray', '/mbrl/action', {}, (m) => commands.push(m as Float64MultiArray));
    const diagnostics: DiagnosticArray[] = [];
    robot.createSubscription('diagnostic_msgs/msg/DiagnosticArray', '/diagnostics', {}, (m) => diagnostics.push(m as DiagnosticArray));
    const states: string[] = [];
    t.subscribe('/joint_states', 'sensor_msgs/msg/JointState', () => states.push('js'), { qos: QOS_SENSOR_DATA });
    const ours = () => state.graph.subs.filter((s) => s.node === node && !s.destroyed).map((s) => s.topic);

    // Unconfigured: nothing but diagnostics; commands held.
    expect(t.state).toBe('unconfigured');
    expect(ours()).toEqual([]);
    t.publish('/mbrl/action', 'std_msgs/msg/Float64MultiArray', torque(1));
    expect(commands).toEqual([]);

    t.configure();
    expect(t.state).toBe('inactive');
    expect(ours()).toEqual(['/joint_states']);
    expect(state.graph.pubs.some((p) => p.node === node && p.topic === '/mbrl/action' && !p.destroyed)).toBe(true);
    t.publish('/mbrl/action', 'std_msgs/msg/Float64MultiArray', torque(1));
    expect(commands).toEqual([]);

    // `ros2 lifecycle set /mbrl_node activate` goes through the same callbacks.
    expect(lc.changeState('activate')).toBe(true);
    expect(t.state).toBe('active');
    const timer = lc.timers[0];
    expect(timer.period).toBe(50_000_000n);
    timer.callback();
    timer.callback();
    t.publish('/mbrl/action', 'std_msgs/msg/Float64MultiArray', torque(1.5));
    expect(commands).toEqual([torque(1.5)]);

    t.deactivate();
    expect(t.state).toBe('inactive');
    expect(timer.canceled && timer.destroyed).toBe(true);
    // The safe action (safety.safeAction [0], as the action message) went out last, and holds.
    expect(commands.at(-1)?.data).toEqual([0]);
    t.publish('/mbrl/action', 'std_msgs/msg/Float64MultiArray', torque(2));
    expect(commands.at(-1)?.data).toEqual([0]);
    expect(t.stats.held).toBe(3);

    t.cleanup();
    expect(t.state).toBe('unconfigured');
    expect(ours()).toEqual([]);
    expect(state.graph.pubs.filter((p) => p.node === node && !p.destroyed).map((p) => p.topic)).toEqual(['/diagnostics']);
    robot.createPublisher('sensor_msgs/msg/JointState', '/joint_states', { qos: new FakeQoS(1, 5, 2, 2) }).publish(JOINT_STATE);
    expect(states).toEqual([]);

    expect(hooks).toEqual(['configure', 'activate', 'tick', 'tick', 'deactivate', 'cleanup']);
    expect(diagnostics.map((d) => d.status[0].values.find((v) => v.key === 'state')?.value)).toEqual(['inactive', 'active', 'inactive', 'unconfigured']);
    expect(diagnostics[0].status[0].message).toBe('inactive: commands held'); // nothing sent yet
    expect(diagnostics[1].status[0]).toMatchObject({ level: 0, message: 'active' });
    expect(diagnostics[2].status[0]).toMatchObject({ level: 1, name: '/mbrl_node: ros2 transport', message: 'inactive: commands held at the safe command' });

    // Configure again: the same subscriptions come back.
    t.configure();
    expect(ours()).toEqual(['/joint_states']);
    await t.close();
  });

  it('a failing activate hook leaves the node inactive and says why; a failing deactivate hook still stops', async () => {
    let refuse = true;
    const errors: Error[] = [];
    const { t, node } = await connected({
      onError: (e) => errors.push(e),
      lifecycle: {
        autoStart: false,
        controlPeriodMs: 10,
        onTick: () => undefined,
        onActivate: () => {
          if (refuse) throw new Error('no model yet');
        },
        onDeactivate: () => {
          throw new Error('learner busy');
        },
        safeCommand: { topic: '/cmd_vel', type: 'geometry_msgs/msg/Twist', data: { linear: { x: 0, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0 } } },
      },
    });
    t.configure();
    expect(() => t.activate()).toThrow(/activate: no model yet/);
    expect(t.state).toBe('inactive');
    expect((node as FakeLifecycleNode).state).toBe('inactive');
    refuse = false;
    t.activate();
    t.deactivate();
    expect(t.state).toBe('inactive');
    expect((node as FakeLifecycleNode).timers[0].canceled).toBe(true);
    expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/no model yet/), expect.stringMatching(/onDeactivate: learner busy/)]);
    expect(() => t.deactivate()).toThrow(/not available from state inactive/);
    await t.close();
  });

  it('autoStart configures and activates in connect; a plain node has no transitions', async () => {
    const { t } = await connected({ lifecycle: { autoStart: true } });
    expect(t.state).toBe('active');
    await t.close();
    const plain = await connected();
    expect(plain.t.state).toBe('active');
    expect(() => plain.t.configure()).toThrow(/not a lifecycle node/);
    await plain.t.close();
  });
});

describe('without ROS 2', () => {
  const ROS = { ROS_DISTRO: 'jazzy', AMENT_PREFIX_PATH: '/opt/ros/jazzy' };
  const notFound = (): Promise<never> => Promise.reject(Object.assign(new Error("Cannot find package 'rclnodejs' imported from /x/dist/transports/ros2.js"), { code: 'ERR_MODULE_NOT_FOUND' }));

  it('not sourced: names `source /opt/ros/<distro>/setup.bash` and the supported distros, before importing anything', async () => {
    let imported = false;
    const err = await loadRclnodejs({}, async () => {
      imported = true;
      return {};
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Ros2UnavailableError);
    expect((err as Ros2UnavailableError).reason).toBe('notSourced');
    expect((err as Error).message).toContain('source /opt/ros/<distro>/setup.bash');
    expect((err as Error).message).toContain('Humble, Jazzy, Kilted');
    expect((err as Error).message).toMatch(/ROS_DISTRO and AMENT_PREFIX_PATH not set/);
    expect((err as Error).message).toMatch(/transport kind dds/);
    expect(imported).toBe(false);
  });

  it('rclnodejs missing: says how to install it with ROS sourced', async () => {
    const err = (await loadRclnodejs(ROS, notFound).catch((e: unknown) => e)) as Ros2UnavailableError;
    expect(err.reason).toBe('notInstalled');
    expect(err.message).toMatch(/npm install rclnodejs/);
    expect(err.message).toContain('source /opt/ros/<distro>/setup.bash');
    expect(err.message).toContain('Humble, Jazzy, Kilted');
  });

  it('rclnodejs broken, or an unsupported distro: says so with the cause', async () => {
    const err = (await loadRclnodejs({ ROS_DISTRO: 'iron', AMENT_PREFIX_PATH: '/opt/ros/iron' }, () => Promise.reject(new Error('librcl.so: cannot open shared object file'))).catch((e: unknown) => e)) as Ros2UnavailableError;
    expect(err.reason).toBe('loadFailed');
    expect(err.message).toMatch(/ROS_DISTRO=iron.*librcl\.so/);
    expect(err.message).toMatch(/iron is not one of the supported distros \(Humble, Jazzy, Kilted\)/);
  });

  it('accepts the module as ESM default export or as the CommonJS object', async () => {
    const { rcl } = fakeRcl();
    await expect(loadRclnodejs(ROS, async () => ({ default: rcl }))).resolves.toBe(rcl);
    await expect(loadRclnodejs(ROS, async () => rcl)).resolves.toBe(rcl);
    await expect(loadRclnodejs(ROS, async () => ({ default: {} }))).rejects.toMatchObject({ reason: 'loadFailed' });
  });

  it('connect rejects with the clear error and can be retried', async () => {
    const t = new Ros2Transport({ env: ROS, importRclnodejs: notFound });
    await expect(t.connect()).rejects.toMatchObject({ name: 'Ros2UnavailableError', reason: 'notInstalled' });
    await expect(t.connect()).rejects.toMatchObject({ reason: 'notInstalled' });
    expect(t.state).toBe('unconfigured');
    await t.close();
  });

  const installed = (() => {
    try {
      createRequire(import.meta.url).resolve('rclnodejs');
      return true;
    } catch {
      return false;
    }
  })();
  // Where rclnodejs is installed (a ROS machine), importing it is the real thing, not this check.
  it.skipIf(installed)('the real import here: rclnodejs is not installed, and the error says so', async () => {
    const t = new Ros2Transport({ env: ROS });
    await expect(t.connect()).rejects.toMatchObject({ reason: 'notInstalled', message: expect.stringMatching(/npm install rclnodejs/) });
    await t.close();
  });

  it('ros2.ts is the only source file that mentions rclnodejs in an import, and it imports it dynamically', () => {
    const files: string[] = [];
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (p.endsWith('.ts')) files.push(p);
      }
    };
    walk(join(ROOT, 'src'));
    const importing = files.filter((f) => /(from|import\()\s*['"]rclnodejs['"]|RCLNODEJS\s*=\s*['"]rclnodejs['"]/.test(readFileSync(f, 'utf8')));
    expect(importing.map((f) => f.slice(ROOT.length + 1))).toEqual(['src/transports/ros2.ts']);
    const text = readFileSync(join(ROOT, 'src/transports/ros2.ts'), 'utf8');
    expect(text).not.toMatch(/^import[^;]*['"]rclnodejs['"]/m);
    expect(text).toMatch(/return import\(RCLNODEJS\)/);
  });
});
