/**
 * The node as a real ROS 2 node, through rclnodejs (the ROS 2 client library for Node.js): the
 * only file that touches rclnodejs, and it imports it only when this backend is configured
 * (`import('rclnodejs')` in `connect`). rclnodejs needs a sourced ROS 2 (Humble, Jazzy or Kilted);
 * without one, use the `dds` backend, which speaks the same wire with no ROS install.
 *
 * ## What makes it a proper ROS 2 node
 *
 * - **Name, namespace, command line.** The node is `nodeName` in `namespace`; `argv` (default
 *   `process.argv`) goes to `rclnodejs.init` unchanged, so rcl applies the `--ros-args` in it as
 *   any ROS 2 node does: remaps (`-r /cmd_vel:=/robot/cmd_vel`, `-r __node:=arm`, `-r __ns:=/r1`),
 *   parameter files (`--params-file`), parameters (`-p`), log levels.
 * - **Parameters.** `parameters` (the node configuration, flattened to dotted names by
 *   `nodeConfigToRosParameters`) are declared on the node, read-only unless a parameter says
 *   otherwise: the node reads its configuration once, at start, and changing e.g. the action
 *   bounds of a running controller is unsafe. They are declared with the value the node runs
 *   with, so `ros2 param get` tells the truth; the configuration already holds the command line's
 *   `--params-file`/`-p` (`loadRosNodeConfig` merges them as rcl does), and an override that
 *   still differs is reported through `onError`.
 * - **QoS per topic.** Our `QosProfile` becomes an rclnodejs `QoS` (keep-last `depth`,
 *   reliability, durability): the control node subscribes to sensors with the sensor-data profile
 *   (best effort, depth 5) and publishes commands with the default one (reliable, depth 10).
 * - **Lifecycle variant** (`lifecycle`). A managed node (`rclnodejs.lifecycle.LifecycleNode`,
 *   driven by `ros2 lifecycle set` or the methods below): *configure* creates the publishers and
 *   subscriptions, *activate* lets commands out and starts the control timer (`onTick` every
 *   `controlPeriodMs` on the node's clock), *deactivate* stops the timer, publishes
 *   `safeCommand` and holds it (commands published while inactive are counted, not sent),
 *   *cleanup* releases the publishers and subscriptions, *shutdown* does all of that. Hooks
 *   (`onConfigure`, `onActivate`, …) let the control node follow. `/diagnostics` is published in
 *   every state, and each transition is announced there.
 * - **Diagnostics.** `diagnosticStatus()` is this transport's `diagnostic_msgs/DiagnosticStatus`
 *   (lifecycle state, counters, ROS distro, rmw) for the node's `DiagnosticArray` on `/diagnostics`.
 * - **Signals.** rclnodejs's own SIGINT handler (which shuts ROS down at once) is removed, so the
 *   control node's clean stop can still publish the safe action before `close`.
 *
 * ## Messages
 *
 * Messages are plain objects shaped like the ROS 2 message (`messages.ts`), in and out; rclnodejs
 * converts them with the message classes it generated from the sourced ROS install, so any
 * installed type works, the robot's own too. Outgoing messages of the common types are checked
 * against their definition first (`rosCodec`, shared with the `dds` backend): rclnodejs would
 * send a missing field as 0, which a robot would act on. Arrays arrive as plain arrays.
 *
 * ## The seam
 *
 * Everything this file needs from rclnodejs is the small `RclLike` interface below (the subset of
 * rclnodejs 1.x/2.x's API it calls, with its shapes), so the transport is tested against a
 * stand-in with that shape on machines without ROS.
 */
import { ValidationError, describe } from '../core/errors.js';
import { rosCodec } from './dds/rosCodec.js';
import { wallClockNs } from './loopback.js';
import { timeFromNs, type DiagnosticArray, type DiagnosticStatus } from './messages.js';
import { QOS_DEFAULT, type IncomingMessage, type QosProfile, type Transport, type Unsubscribe } from './transport.js';

// ---------------------------------------------------------------------------------------------
// The subset of rclnodejs this transport uses (names and shapes as in rclnodejs's types/*.d.ts).

/** rclnodejs's `QoS` class and its policy enums. */
export interface RclQosClass {
  new (history?: number, depth?: number, reliability?: number, durability?: number): unknown;
  readonly HistoryPolicy: { readonly RMW_QOS_POLICY_HISTORY_KEEP_LAST: number };
  readonly ReliabilityPolicy: { readonly RMW_QOS_POLICY_RELIABILITY_RELIABLE: number; readonly RMW_QOS_POLICY_RELIABILITY_BEST_EFFORT: number };
  readonly DurabilityPolicy: { readonly RMW_QOS_POLICY_DURABILITY_VOLATILE: number; readonly RMW_QOS_POLICY_DURABILITY_TRANSIENT_LOCAL: number };
}

/** Options of `createPublisher`/`createSubscription` (rclnodejs's `Options`). */
export interface RclEntityOptions {
  qos?: unknown;
  /** false: numeric arrays arrive as plain arrays, as in `messages.ts`. */
  enableTypedArray?: boolean;
}

export interface RclPublisherLike {
  publish(message: unknown): void;
}

/** A subscription or timer handle: only handed back to `destroy…`. */
export type RclSubscriptionLike = object;

export interface RclTimerLike {
  cancel(): void;
}

/** rclnodejs's `Parameter` (integers are `bigint`). */
export interface RclParameterLike {
  readonly name: string;
  readonly type: number;
  readonly value: unknown;
}

/** rcl_interfaces/msg/SetParametersResult */
export interface RclSetParametersResult {
  successful: boolean;
  reason: string;
}

/** rclnodejs's `Node`. */
export interface RclNodeLike {
  name(): string;
  namespace(): string;
  createPublisher(typeClass: string, topic: string, options?: RclEntityOptions): RclPublisherLike;
  createSubscription(typeClass: string, topic: string, options: RclEntityOptions, callback: (message: unknown) => void): RclSubscriptionLike;
  destroyPublisher(publisher: RclPublisherLike): void;
  destroySubscription(subscription: RclSubscriptionLike): void;
  /** `period` in nanoseconds. */
  createTimer(period: bigint, callback: () => void): RclTimerLike;
  destroyTimer(timer: RclTimerLike): void;
  declareParameter(parameter: RclParameterLike, descriptor?: unknown, ignoreOverride?: boolean): RclParameterLike;
  /** Parameters set on the command line (`-p`, `--params-file`) for this node. */
  getParameterOverrides(): RclParameterLike[];
  addOnSetParametersCallback(callback: (parameters: RclParameterLike[]) => RclSetParametersResult): void;
  /** The node's clock (ROS time: simulated under `use_sim_time`). */
  now(): { readonly nanoseconds: bigint };
  /** Starts processing callbacks in the background; returns at once. */
  spin(timeoutMs?: number): void;
  destroy(): void;
}

/** rclnodejs's `lifecycle.LifecycleNode`: callbacks return a `CallbackReturnCode`. */
export interface RclLifecycleNodeLike extends RclNodeLike {
  registerOnConfigure(callback: (previous: unknown) => number): void;
  registerOnActivate(callback: (previous: unknown) => number): void;
  registerOnDeactivate(callback: (previous: unknown) => number): void;
  registerOnCleanup(callback: (previous: unknown) => number): void;
  registerOnShutdown(callback: (previous: unknown) => number): void;
  registerOnError(callback: (previous: unknown) => number): void;
  configure(): unknown;
  activate(): unknown;
  deactivate(): unknown;
  cleanup(): unknown;
  shutdown(): unknown;
}

/** rclnodejs's `ParameterType` values used here. */
export interface RclParameterTypes {
  readonly PARAMETER_BOOL: number;
  readonly PARAMETER_INTEGER: number;
  readonly PARAMETER_DOUBLE: number;
  readonly PARAMETER_STRING: number;
  readonly PARAMETER_BOOL_ARRAY: number;
  readonly PARAMETER_INTEGER_ARRAY: number;
  readonly PARAMETER_DOUBLE_ARRAY: number;
  readonly PARAMETER_STRING_ARRAY: number;
}

/** The rclnodejs module, as far as this transport uses it. */
export interface RclLike {
  /** `init(context = default, argv = process.argv)`: rcl parses the `--ros-args` in `argv`. */
  init(context?: undefined, argv?: string[]): Promise<void>;
  shutdown(): void;
  /** rclnodejs ≥ 1.0; older versions have none. */
  removeSignalHandlers?(): void;
  Node: new (nodeName: string, namespace?: string) => RclNodeLike;
  QoS: RclQosClass;
  Parameter: new (name: string, type: number, value?: unknown) => RclParameterLike;
  ParameterDescriptor: new (name: string, type: number, description?: string, readOnly?: boolean) => unknown;
  ParameterType: RclParameterTypes;
  lifecycle: {
    LifecycleNode: new (nodeName: string, namespace?: string) => RclLifecycleNodeLike;
    CallbackReturnCode: { readonly SUCCESS: number; readonly FAILURE: number };
  };
}

// ---------------------------------------------------------------------------------------------
// Options.

/** The ROS 2 distributions rclnodejs ships prebuilt binaries for, and this backend is tested with. */
export const SUPPORTED_ROS_DISTROS = ['humble', 'jazzy', 'kilted'] as const;

/** A value a ROS 2 parameter can hold. */
export type RosParamValue = boolean | number | string | boolean[] | number[] | string[];

/** One declared parameter. */
export interface Ros2Parameter {
  /** Dotted ROS name, e.g. `learner.refitEverySec`. */
  name: string;
  value: RosParamValue;
  /** `double`: declare an integral number (or list) as a double, as rcl reads `80.0`. Default: integral numbers are integers. */
  type?: 'double';
  description?: string;
  /** Default true: the node reads its configuration once; see the file comment. */
  readOnly?: boolean;
}

/** A topic the node publishes on, declared up front so that *configure* can create its publisher. */
export interface Ros2Publication {
  topic: string;
  type: string;
  /** Default ROS 2's default profile. */
  qos?: QosProfile;
}

/** The lifecycle variant's settings and hooks (all optional). Hooks run inside the transition. */
export interface Ros2LifecycleOptions {
  /** Configure and activate in `connect`, as a node that manages itself. Default false: wait for `ros2 lifecycle set`. */
  autoStart?: boolean;
  /** The control timer's period, milliseconds on the node's clock; with `onTick`. */
  controlPeriodMs?: number;
  /** Called every `controlPeriodMs` while active. */
  onTick?: () => void;
  /** Published on deactivate and shutdown (from active), then held: the actuators' safe command. */
  safeCommand?: { topic: string; type: string; data: unknown; qos?: QosProfile };
  /** Throwing fails the transition (the node stays unconfigured). */
  onConfigure?: () => void;
  /** Throwing fails the transition (the node stays inactive). */
  onActivate?: () => void;
  /** Runs before the safe command goes out; a throw is reported, the transition still succeeds (stopping must not fail). */
  onDeactivate?: () => void;
  onCleanup?: () => void;
  onShutdown?: () => void;
}

/** Options of `new Ros2Transport`. */
export interface Ros2TransportOptions {
  /** Default `mbrl_node` (rcl's `-r __node:=` overrides it). */
  nodeName?: string;
  /** Default `/` (rcl's `-r __ns:=` overrides it). */
  namespace?: string;
  /** The command line rcl parses for `--ros-args`. Default `process.argv`. */
  argv?: string[];
  /** Declared as ROS parameters at `connect`. Default none. */
  parameters?: Ros2Parameter[];
  /**
   * Asked about a change of a writable parameter (`ros2 param set`); return the reason to refuse
   * it, or undefined to accept. Default: accept.
   */
  onSetParameters?: (changes: Array<{ name: string; value: unknown }>) => string | undefined;
  /** Publishers created at `connect` (or *configure*) rather than at the first `publish`. */
  publications?: Ros2Publication[];
  /** Make it a lifecycle (managed) node. Default: a plain node, active from `connect`. */
  lifecycle?: Ros2LifecycleOptions;
  /** Where diagnostics go. Default `/diagnostics`. */
  diagnosticsTopic?: string;
  /** Dropped publications, failing callbacks and hooks, on a subscription without its own `onError`. Default `console.warn`. */
  onError?: (err: Error) => void;
  /** Clock of `nowNs` and `receivedNs`. Default: the node's clock once connected (ROS time), the wall clock before. */
  clock?: () => bigint;
  /** An rclnodejs already loaded (or a stand-in with its API); skips the environment check and the import. */
  rcl?: RclLike;
  /** How rclnodejs is imported. Default `import('rclnodejs')`. */
  importRclnodejs?: () => Promise<unknown>;
  /** The environment checked for a sourced ROS 2. Default `process.env`. */
  env?: Record<string, string | undefined>;
}

/** Counters of a `Ros2Transport`. */
export interface Ros2TransportStats {
  /** Messages handed to subscribers. */
  delivered: number;
  /** Messages sent. */
  published: number;
  /** Messages rclnodejs refused to send (reported through `onError`). */
  dropped: number;
  /** Commands published while the lifecycle node was not active: not sent (the safe command holds). */
  held: number;
  /** Subscriber callbacks that threw (reported through their `onError`). */
  callbackErrors: number;
}

/** A lifecycle node's primary state; a plain node is `active` once connected. */
export type Ros2LifecycleState = 'unconfigured' | 'inactive' | 'active' | 'finalized';

/** Why the ros2 backend cannot start. */
export type Ros2UnavailableReason = 'notSourced' | 'notInstalled' | 'loadFailed' | 'initFailed';

/** The ros2 backend cannot start on this machine (ROS 2 not sourced, rclnodejs absent or broken). */
export class Ros2UnavailableError extends Error {
  readonly reason: Ros2UnavailableReason;
  constructor(reason: Ros2UnavailableReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'Ros2UnavailableError';
    this.reason = reason;
  }
}

const SOURCE = '`source /opt/ros/<distro>/setup.bash`';
const DISTROS = 'supported distros: Humble, Jazzy, Kilted';

/**
 * Loads rclnodejs for the ros2 backend, after checking that ROS 2 is sourced (rclnodejs would
 * otherwise try to compile itself from source at import, for minutes, and then fail).
 * @param importer default `import('rclnodejs')`
 * @throws Ros2UnavailableError naming what is missing and how to fix it
 */
export async function loadRclnodejs(env: Record<string, string | undefined> = process.env, importer: () => Promise<unknown> = importRclnodejs): Promise<RclLike> {
  const where = 'Ros2Transport.connect';
  const distro = env.ROS_DISTRO;
  if (!distro || !env.AMENT_PREFIX_PATH) {
    const unset = [!distro ? 'ROS_DISTRO' : '', !env.AMENT_PREFIX_PATH ? 'AMENT_PREFIX_PATH' : ''].filter(Boolean).join(' and ');
    throw new Ros2UnavailableError(
      'notSourced',
      `${where}: ROS 2 is not sourced (${unset} not set); expected the environment of a ROS 2 install: run ${SOURCE} (${DISTROS}) before starting the node, or use transport kind dds, which speaks ROS 2's wire without a ROS install`,
    );
  }
  const unsupported = (SUPPORTED_ROS_DISTROS as readonly string[]).includes(distro) ? '' : `; note: ROS_DISTRO=${distro} is not one of the supported distros (Humble, Jazzy, Kilted)`;
  let mod: unknown;
  try {
    mod = await importer();
  } catch (err) {
    const e = err as { code?: unknown; message?: unknown };
    const message = typeof e.message === 'string' ? e.message : String(err);
    if (e.code === 'ERR_MODULE_NOT_FOUND' && /['"]rclnodejs['"]/.test(message)) {
      throw new Ros2UnavailableError(
        'notInstalled',
        `${where}: rclnodejs is not installed (an optional dependency, which npm skips when installing without ROS 2 sourced); expected it in node_modules: with ROS 2 sourced (${SOURCE}; ${DISTROS}), run \`npm install rclnodejs\` in the mbrl-node package${unsupported}`,
        { cause: err },
      );
    }
    throw new Ros2UnavailableError(
      'loadFailed',
      `${where}: rclnodejs is installed but did not load with ROS_DISTRO=${distro} (${message.split('\n')[0]}); expected its native addon built for the sourced ROS 2: ${SOURCE} (${DISTROS}), then \`npm rebuild rclnodejs\`${unsupported}`,
      { cause: err },
    );
  }
  const rcl = (mod !== null && typeof mod === 'object' && 'default' in mod ? (mod as { default: unknown }).default : mod) as Partial<RclLike> | undefined;
  if (!rcl || typeof rcl.init !== 'function' || typeof rcl.Node !== 'function' || !rcl.lifecycle) {
    throw new Ros2UnavailableError('loadFailed', `${where}: the module imported as rclnodejs has no init/Node/lifecycle; expected rclnodejs 1.x or 2.x${unsupported}`);
  }
  return rcl as RclLike;
}

/** A specifier held in a variable: TypeScript does not look for rclnodejs's types (absent without ROS), bundlers do not pull it in. */
const RCLNODEJS = 'rclnodejs';
async function importRclnodejs(): Promise<unknown> {
  return import(RCLNODEJS);
}

/**
 * The rclnodejs `QoS` of a `QosProfile`: keep last `depth`, its reliability and durability.
 * @example toRclQos(rcl, QOS_SENSOR_DATA) // new rcl.QoS(KEEP_LAST, 5, BEST_EFFORT, VOLATILE)
 */
export function toRclQos(rcl: Pick<RclLike, 'QoS'>, qos: QosProfile): unknown {
  const Q = rcl.QoS;
  return new Q(
    Q.HistoryPolicy.RMW_QOS_POLICY_HISTORY_KEEP_LAST,
    qos.depth,
    qos.reliability === 'reliable' ? Q.ReliabilityPolicy.RMW_QOS_POLICY_RELIABILITY_RELIABLE : Q.ReliabilityPolicy.RMW_QOS_POLICY_RELIABILITY_BEST_EFFORT,
    qos.durability === 'volatile' ? Q.DurabilityPolicy.RMW_QOS_POLICY_DURABILITY_VOLATILE : Q.DurabilityPolicy.RMW_QOS_POLICY_DURABILITY_TRANSIENT_LOCAL,
  );
}

function checkQos(qos: QosProfile, where: string): QosProfile {
  const ok =
    qos !== null &&
    typeof qos === 'object' &&
    (qos.reliability === 'reliable' || qos.reliability === 'bestEffort') &&
    (qos.durability === 'volatile' || qos.durability === 'transientLocal') &&
    Number.isInteger(qos.depth) &&
    qos.depth >= 1;
  if (!ok) throw new ValidationError(where, 'qos', `expected { reliability: reliable|bestEffort, durability: volatile|transientLocal, depth: integer ≥ 1 }, got ${JSON.stringify(qos)}`);
  return qos;
}

const sameQos = (a: QosProfile, b: QosProfile): boolean => a.reliability === b.reliability && a.durability === b.durability && a.depth === b.depth;
const qosText = (q: QosProfile): string => `${q.reliability}/${q.durability}/depth ${q.depth}`;

// ---------------------------------------------------------------------------------------------
// Parameters.

/** The rclnodejs type of a value as rcl's YAML reader would type it (integers without a fraction are integers). */
function parameterTypeOf(T: RclParameterTypes, value: RosParamValue): number | undefined {
  const scalar = (v: unknown): 'bool' | 'int' | 'double' | 'string' | undefined =>
    typeof v === 'boolean' ? 'bool' : typeof v === 'string' ? 'string' : typeof v === 'bigint' ? 'int' : typeof v === 'number' && Number.isFinite(v) ? (Number.isInteger(v) ? 'int' : 'double') : typeof v === 'number' ? 'double' : undefined;
  if (!Array.isArray(value)) {
    const s = scalar(value);
    return s === 'bool' ? T.PARAMETER_BOOL : s === 'int' ? T.PARAMETER_INTEGER : s === 'double' ? T.PARAMETER_DOUBLE : s === 'string' ? T.PARAMETER_STRING : undefined;
  }
  const kinds = new Set(value.map(scalar));
  if (kinds.size === 0 || kinds.has(undefined)) return undefined;
  if (kinds.size === 1 && kinds.has('bool')) return T.PARAMETER_BOOL_ARRAY;
  if (kinds.size === 1 && kinds.has('string')) return T.PARAMETER_STRING_ARRAY;
  if ([...kinds].every((k) => k === 'int' || k === 'double')) return kinds.has('double') ? T.PARAMETER_DOUBLE_ARRAY : T.PARAMETER_INTEGER_ARRAY;
  return undefined;
}

/** `value` in the representation rclnodejs wants for `type` (bigint for integers). */
function valueForType(T: RclParameterTypes, type: number, value: RosParamValue): unknown {
  if (type === T.PARAMETER_INTEGER) return BigInt(value as number);
  if (type === T.PARAMETER_INTEGER_ARRAY) return (value as number[]).map((v) => BigInt(v));
  if (type === T.PARAMETER_DOUBLE_ARRAY) return (value as number[]).map(Number);
  if (type === T.PARAMETER_DOUBLE) return Number(value);
  return value;
}

/** Whether a command-line override holds the same value as the configuration (numbers compared as numbers). */
function sameValue(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => sameValue(v, b[i]));
  }
  if ((typeof a === 'number' || typeof a === 'bigint') && (typeof b === 'number' || typeof b === 'bigint')) return Number(a) === Number(b);
  return a === b;
}

const printable = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? Number(x) : x));

// ---------------------------------------------------------------------------------------------
// The transport.

interface Sub {
  topic: string;
  type: string;
  qos: QosProfile;
  onMessage: (msg: IncomingMessage<unknown>) => void;
  onError?: (err: Error) => void;
  handle?: RclSubscriptionLike;
}

interface Pub {
  topic: string;
  type: string;
  qos: QosProfile;
  handle?: RclPublisherLike;
}

/**
 * A `Transport` that is a ROS 2 node through rclnodejs (see the file comment).
 *
 * @example
 * // with ROS 2 sourced and rclnodejs installed:
 * const t = new Ros2Transport({ nodeName: 'mbrl_node', parameters: nodeConfigToRosParameters(config) });
 * await t.connect(); // rcl reads the --ros-args of process.argv
 * t.subscribe<JointState>('/joint_states', 'sensor_msgs/msg/JointState', (m) => use(m.data), { qos: QOS_SENSOR_DATA });
 * t.publish('/cmd_vel', 'geometry_msgs/msg/Twist', { linear: { x: 0.2, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0.1 } });
 * await t.close();
 */
export class Ros2Transport implements Transport {
  readonly kind = 'ros2';
  readonly nodeName: string;
  readonly namespace: string;
  #options: Ros2TransportOptions;
  #lifecycle: Ros2LifecycleOptions | undefined;
  #diagnosticsTopic: string;
  #onError: (err: Error) => void;
  #rcl: RclLike | undefined;
  #node: RclNodeLike | undefined;
  #lcNode: RclLifecycleNodeLike | undefined;
  #connecting: Promise<void> | undefined;
  #closed = false;
  #state: Ros2LifecycleState = 'unconfigured';
  #subs = new Set<Sub>();
  #pubs = new Map<string, Pub>();
  #timer: RclTimerLike | undefined;
  #transitionError: Error | undefined;
  /** The safe command went out at the last deactivation and nothing was sent since. */
  #holdingSafe = false;
  #stats: Ros2TransportStats = { delivered: 0, published: 0, dropped: 0, held: 0, callbackErrors: 0 };

  constructor(options: Ros2TransportOptions = {}) {
    const where = 'Ros2Transport';
    this.nodeName = options.nodeName ?? 'mbrl_node';
    this.namespace = options.namespace ?? '/';
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(this.nodeName)) throw new ValidationError(where, 'nodeName', `expected a ROS 2 node name (a letter, then letters, digits or _), got ${describe(this.nodeName)}`);
    if (!/^\/([A-Za-z][A-Za-z0-9_]*(\/[A-Za-z][A-Za-z0-9_]*)*)?$/.test(this.namespace)) throw new ValidationError(where, 'namespace', `expected a ROS 2 namespace such as / or /robot1, got ${describe(this.namespace)}`);
    const lc = options.lifecycle;
    if (lc?.onTick !== undefined && !(typeof lc.controlPeriodMs === 'number' && lc.controlPeriodMs > 0 && Number.isFinite(lc.controlPeriodMs))) {
      throw new ValidationError(where, 'lifecycle.controlPeriodMs', `expected a period > 0 (milliseconds) for the control timer of onTick, got ${describe(lc.controlPeriodMs)}`);
    }
    this.#options = options;
    this.#lifecycle = lc;
    this.#diagnosticsTopic = options.diagnosticsTopic ?? '/diagnostics';
    this.#onError = options.onError ?? ((err) => console.warn(`[ros2] ${err.message}`));
    for (const p of options.publications ?? []) this.#declarePub(p.topic, p.type, checkQos(p.qos ?? QOS_DEFAULT, `${where}.publications(${p.topic})`), `${where}.publications`);
    if (lc?.safeCommand) {
      const s = lc.safeCommand;
      this.#declarePub(s.topic, s.type, checkQos(s.qos ?? QOS_DEFAULT, `${where}.lifecycle.safeCommand`), `${where}.lifecycle.safeCommand`);
      this.#check(s.type, s.data, `${where}.lifecycle.safeCommand`);
    }
  }

  /** The lifecycle state (a plain node: `unconfigured` before `connect`, then `active`). */
  get state(): Ros2LifecycleState {
    return this.#state;
  }

  /** Whether this is the lifecycle variant. */
  get isLifecycle(): boolean {
    return this.#lifecycle !== undefined;
  }

  /** A copy of the counters. */
  get stats(): Ros2TransportStats {
    return { ...this.#stats };
  }

  /**
   * Loads rclnodejs (unless given), initialises rcl with `argv`, creates the node, declares the
   * parameters and starts spinning; a plain node then creates its publishers and subscriptions.
   * @throws Ros2UnavailableError when ROS 2 is not sourced or rclnodejs is missing or broken;
   *   ValidationError when a parameter's value is not one a ROS parameter can hold
   */
  connect(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error(`Ros2Transport(${this.#fqn()}).connect: the transport is closed`));
    this.#connecting ??= this.#open().catch((err: unknown) => {
      this.#connecting = undefined;
      this.#teardown();
      throw err;
    });
    return this.#connecting;
  }

  subscribe<T = unknown>(
    topic: string,
    type: string,
    onMessage: (msg: IncomingMessage<T>) => void,
    options: { qos?: QosProfile; onError?: (err: Error) => void } = {},
  ): Unsubscribe {
    const where = `Ros2Transport.subscribe(${topic})`;
    if (this.#closed) throw new Error(`${where}: the transport is closed`);
    checkName(topic, type, where);
    const sub: Sub = { topic, type, qos: checkQos(options.qos ?? QOS_DEFAULT, where), onMessage: onMessage as (msg: IncomingMessage<unknown>) => void, ...(options.onError ? { onError: options.onError } : {}) };
    this.#subs.add(sub);
    if (this.#configured()) this.#createSub(sub);
    return () => {
      if (!this.#subs.delete(sub)) return;
      this.#destroySub(sub);
    };
  }

  /**
   * Publishes `data` on `topic`. A lifecycle node that is not active holds its commands: they are
   * counted (`stats.held`), not sent; diagnostics go out in every state.
   * @throws Error before `connect` or after `close`; ValidationError when a message of a common
   *   type does not fit its definition, or the topic was published with another type or QoS
   */
  publish(topic: string, type: string, data: unknown, options: { qos?: QosProfile } = {}): void {
    const where = `Ros2Transport.publish(${topic}, ${type})`;
    if (this.#closed || this.#node === undefined) throw new Error(`${where}: ${this.#closed ? 'the transport is closed' : 'not connected; call connect() first'}`);
    checkName(topic, type, where);
    this.#check(type, data, where);
    const pub = this.#declarePub(topic, type, checkQos(options.qos ?? QOS_DEFAULT, where), where);
    const always = topic === this.#diagnosticsTopic;
    if (!always && this.#state !== 'active') {
      this.#stats.held++;
      return;
    }
    this.#send(pub, data, where);
  }

  /** The transport's clock: the node's (ROS time) once connected unless `clock` was given. */
  nowNs(): bigint {
    if (this.#options.clock) return this.#options.clock();
    return this.#node ? this.#node.now().nanoseconds : wallClockNs();
  }

  /**
   * This transport's status for the node's `DiagnosticArray`: OK while active, WARN otherwise
   * (a lifecycle node not active holds the safe command), with the counters.
   */
  diagnosticStatus(): DiagnosticStatus {
    const active = this.#state === 'active';
    const env = this.#options.env ?? process.env;
    const s = this.#stats;
    return {
      level: active ? 0 : 1,
      name: `${this.#fqn()}: ros2 transport`,
      message: active ? 'active' : this.#lifecycle ? `${this.#state}: commands held${this.#holdingSafe ? ' at the safe command' : ''}` : this.#state,
      hardware_id: '',
      values: [
        { key: 'lifecycle', value: this.#lifecycle ? 'yes' : 'no' },
        { key: 'state', value: this.#state },
        { key: 'subscriptions', value: String(this.#subs.size) },
        { key: 'publishers', value: String([...this.#pubs.values()].filter((p) => p.handle).length) },
        { key: 'delivered', value: String(s.delivered) },
        { key: 'published', value: String(s.published) },
        { key: 'dropped', value: String(s.dropped) },
        { key: 'held', value: String(s.held) },
        { key: 'callback errors', value: String(s.callbackErrors) },
        { key: 'ROS_DISTRO', value: env.ROS_DISTRO ?? '' },
        { key: 'RMW_IMPLEMENTATION', value: env.RMW_IMPLEMENTATION ?? '(default)' },
      ],
    };
  }

  // Lifecycle transitions, as `ros2 lifecycle set <node> <transition>` would trigger them.

  /** unconfigured → inactive: creates the publishers and subscriptions. @throws when the transition fails */
  configure(): void {
    this.#transition('configure', (n) => n.configure());
  }

  /** inactive → active: commands go out, the control timer runs. @throws when the transition fails */
  activate(): void {
    this.#transition('activate', (n) => n.activate());
  }

  /** active → inactive: stops the timer, publishes and holds the safe command. */
  deactivate(): void {
    this.#transition('deactivate', (n) => n.deactivate());
  }

  /** inactive → unconfigured: releases the publishers and subscriptions. */
  cleanup(): void {
    this.#transition('cleanup', (n) => n.cleanup());
  }

  /** Any primary state → finalized (the safe command first when active). */
  shutdown(): void {
    this.#transition('shutdown', (n) => n.shutdown());
  }

  /** Stops the timer, destroys the node and shuts rcl down. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#connecting?.catch(() => undefined);
    this.#teardown();
  }

  // -------------------------------------------------------------------------------------------

  async #open(): Promise<void> {
    const o = this.#options;
    const rcl = o.rcl ?? (await loadRclnodejs(o.env ?? process.env, o.importRclnodejs));
    // Our SIGINT handling stops the node cleanly (safe action out, buffer saved) before close.
    rcl.removeSignalHandlers?.();
    const argv = o.argv ?? process.argv;
    try {
      await rcl.init(undefined, argv);
    } catch (err) {
      throw new Ros2UnavailableError('initFailed', `Ros2Transport.connect: rcl could not initialise with argv ${printable(argv)} (${(err as Error).message}); expected valid --ros-args (remaps -r from:=to, -p name:=value, --params-file FILE)`, { cause: err });
    }
    this.#rcl = rcl;
    if (this.#closed) return;
    const lc = this.#lifecycle;
    if (lc) {
      const node = new rcl.lifecycle.LifecycleNode(this.nodeName, this.namespace);
      this.#node = this.#lcNode = node;
      this.#registerLifecycle(rcl, node, lc);
    } else {
      this.#node = new rcl.Node(this.nodeName, this.namespace);
    }
    this.#declareParameters(rcl, this.#node);
    this.#ensurePublisher(this.#declarePub(this.#diagnosticsTopic, DIAGNOSTIC_ARRAY_TYPE, QOS_DEFAULT, 'Ros2Transport.connect'));
    this.#node.spin();
    if (!lc) {
      this.#createEntities();
      this.#state = 'active';
    } else if (lc.autoStart) {
      this.configure();
      this.activate();
    }
  }

  #declareParameters(rcl: RclLike, node: RclNodeLike): void {
    const where = 'Ros2Transport.connect';
    const T = rcl.ParameterType;
    const overrides = new Map(node.getParameterOverrides().map((p) => [p.name, p]));
    const writable = new Set<string>();
    for (const spec of this.#options.parameters ?? []) {
      const inferred = parameterTypeOf(T, spec.value);
      if (inferred === undefined) throw new ValidationError(where, `parameters.${spec.name}`, `expected a boolean, number or string, or a non-empty list of one of them, got ${printable(spec.value)}`);
      const override = overrides.get(spec.name);
      if (override !== undefined && !sameValue(override.value, spec.value)) {
        this.#onError(
          new Error(
            `${where}: parameter ${spec.name}: rcl's override (-p or --params-file) is ${printable(override.value)}, the node configuration ${printable(spec.value)}; the node runs with, and declares, ${printable(spec.value)} (load the configuration with loadRosNodeConfig from the same command line to merge the overrides)`,
          ),
        );
      }
      // The type rcl read the same value as, else the one the file spelled, else the value's own.
      const type =
        override !== undefined && sameValue(override.value, spec.value) && parameterTypeOf(T, override.value as RosParamValue) !== undefined
          ? override.type
          : spec.type === 'double'
            ? Array.isArray(spec.value)
              ? T.PARAMETER_DOUBLE_ARRAY
              : T.PARAMETER_DOUBLE
            : inferred;
      const readOnly = spec.readOnly ?? true;
      if (!readOnly) writable.add(spec.name);
      const description = spec.description ?? (readOnly ? 'mbrl node configuration (read at start; edit the parameters file and restart to change it)' : 'mbrl node configuration');
      // ignoreOverride: the value declared is the one the node runs with (see the file comment).
      node.declareParameter(new rcl.Parameter(spec.name, type, valueForType(T, type, spec.value)), new rcl.ParameterDescriptor(spec.name, type, description, readOnly), true);
    }
    const onSet = this.#options.onSetParameters;
    node.addOnSetParametersCallback((params) => {
      const ours = params.filter((p) => writable.has(p.name));
      if (ours.length === 0 || !onSet) return { successful: true, reason: '' };
      try {
        const reason = onSet(ours.map((p) => ({ name: p.name, value: p.value })));
        return reason === undefined ? { successful: true, reason: '' } : { successful: false, reason };
      } catch (err) {
        return { successful: false, reason: (err as Error).message };
      }
    });
  }

  #registerLifecycle(rcl: RclLike, node: RclLifecycleNodeLike, lc: Ros2LifecycleOptions): void {
    const codes = rcl.lifecycle.CallbackReturnCode;
    // A hook that throws fails configure/activate (the node stays where it was), as rclcpp's FAILURE does.
    const guarded = (name: string, body: () => void): number => {
      try {
        body();
        return codes.SUCCESS;
      } catch (err) {
        this.#transitionError = new Error(`Ros2Transport(${this.#fqn()}).${name}: ${(err as Error).message}`, { cause: err });
        this.#onError(this.#transitionError);
        return codes.FAILURE;
      }
    };
    node.registerOnConfigure(() =>
      guarded('configure', () => {
        this.#createEntities();
        try {
          lc.onConfigure?.();
        } catch (err) {
          this.#releaseEntities();
          throw err;
        }
        this.#state = 'inactive';
        this.#announce();
      }),
    );
    node.registerOnActivate(() =>
      guarded('activate', () => {
        lc.onActivate?.();
        this.#state = 'active';
        if (lc.onTick && lc.controlPeriodMs) {
          const onTick = lc.onTick;
          this.#timer = node.createTimer(BigInt(Math.round(lc.controlPeriodMs * 1e6)), () => this.#safely('onTick', onTick));
        }
        this.#announce();
      }),
    );
    // Stopping never fails: the timer stops and the safe command goes out whatever a hook does.
    node.registerOnDeactivate(() => {
      this.#stopAndHold();
      this.#announce();
      return codes.SUCCESS;
    });
    node.registerOnCleanup(() => {
      this.#safely('onCleanup', () => lc.onCleanup?.());
      this.#releaseEntities();
      this.#state = 'unconfigured';
      this.#announce();
      return codes.SUCCESS;
    });
    node.registerOnShutdown(() => {
      if (this.#state === 'active') this.#stopAndHold();
      this.#safely('onShutdown', () => lc.onShutdown?.());
      this.#releaseEntities();
      this.#state = 'finalized';
      this.#announce();
      return codes.SUCCESS;
    });
    node.registerOnError(() => {
      this.#stopTimer();
      this.#releaseEntities();
      this.#state = 'unconfigured';
      return codes.SUCCESS;
    });
  }

  /** Deactivation: timer off, hook, then the safe command out and held. */
  #stopAndHold(): void {
    const lc = this.#lifecycle!;
    this.#stopTimer();
    this.#safely('onDeactivate', () => lc.onDeactivate?.());
    if (lc.safeCommand) {
      const s = lc.safeCommand;
      this.#holdingSafe = this.#send(this.#pubs.get(s.topic)!, s.data, `Ros2Transport(${this.#fqn()}).deactivate: safe command`);
    }
    this.#state = 'inactive';
  }

  #transition(name: string, run: (node: RclLifecycleNodeLike) => unknown): void {
    const where = `Ros2Transport(${this.#fqn()}).${name}`;
    const node = this.#lcNode;
    if (!node) throw new Error(`${where}: ${this.#lifecycle ? 'not connected; call connect() first' : 'not a lifecycle node (set the lifecycle option)'}`);
    const before = this.#state;
    this.#transitionError = undefined;
    try {
      run(node);
    } catch (err) {
      throw new Error(`${where}: not available from state ${before} (${(err as Error).message})`, { cause: err });
    }
    if (this.#transitionError) throw this.#transitionError;
  }

  #announce(): void {
    const node = this.#node;
    if (!node || this.#closed) return;
    const msg: DiagnosticArray = { header: { stamp: timeFromNs(this.nowNs()), frame_id: '' }, status: [this.diagnosticStatus()] };
    const pub = this.#pubs.get(this.#diagnosticsTopic);
    if (pub) this.#send(pub, msg, `Ros2Transport(${this.#fqn()}): lifecycle diagnostics`);
  }

  #safely(name: string, body: () => void): void {
    try {
      body();
    } catch (err) {
      this.#onError(new Error(`Ros2Transport(${this.#fqn()}).${name}: ${(err as Error).message}`, { cause: err }));
    }
  }

  #configured(): boolean {
    return this.#node !== undefined && !this.#closed && (this.#state === 'inactive' || this.#state === 'active');
  }

  /** The publisher record of `topic` (one type and QoS per topic). */
  #declarePub(topic: string, type: string, qos: QosProfile, where: string): Pub {
    let pub = this.#pubs.get(topic);
    if (pub === undefined) {
      pub = { topic, type, qos };
      this.#pubs.set(topic, pub);
      if (this.#configured() || (this.#node && topic === this.#diagnosticsTopic)) this.#ensurePublisher(pub);
      return pub;
    }
    if (pub.type !== type) throw new ValidationError(where, 'type', `${topic} is published as ${pub.type}; expected one type per topic, got ${type}`);
    if (!sameQos(pub.qos, qos)) throw new ValidationError(where, 'qos', `${topic} is published with ${qosText(pub.qos)}; expected one QoS per topic, got ${qosText(qos)}`);
    return pub;
  }

  #ensurePublisher(pub: Pub): RclPublisherLike {
    pub.handle ??= this.#node!.createPublisher(pub.type, pub.topic, { qos: toRclQos(this.#rcl!, pub.qos) });
    return pub.handle;
  }

  /** @returns whether rclnodejs took the message */
  #send(pub: Pub, data: unknown, where: string): boolean {
    try {
      this.#ensurePublisher(pub).publish(data);
      this.#stats.published++;
      if (pub.topic !== this.#diagnosticsTopic) this.#holdingSafe = false;
      return true;
    } catch (err) {
      this.#stats.dropped++;
      this.#onError(new Error(`${where}: rclnodejs did not publish (${(err as Error).message})`, { cause: err }));
      return false;
    }
  }

  #check(type: string, data: unknown, where: string): void {
    let codec: ReturnType<typeof rosCodec> | undefined;
    try {
      codec = rosCodec(type);
    } catch {
      return; // A type outside the common packages (the robot's own): rclnodejs checks it.
    }
    codec.encode(data, where);
  }

  #createEntities(): void {
    for (const pub of this.#pubs.values()) this.#ensurePublisher(pub);
    for (const sub of this.#subs) this.#createSub(sub);
  }

  #createSub(sub: Sub): void {
    if (sub.handle) return;
    sub.handle = this.#node!.createSubscription(sub.type, sub.topic, { qos: toRclQos(this.#rcl!, sub.qos), enableTypedArray: false }, (message) => {
      if (!this.#subs.has(sub)) return;
      const msg: IncomingMessage<unknown> = { topic: sub.topic, type: sub.type, data: message, receivedNs: this.nowNs() };
      try {
        sub.onMessage(msg);
        this.#stats.delivered++;
      } catch (err) {
        this.#stats.callbackErrors++;
        (sub.onError ?? this.#onError)(new Error(`Ros2Transport.subscribe(${sub.topic}): the callback threw: ${(err as Error).message}`, { cause: err }));
      }
    });
  }

  #destroySub(sub: Sub): void {
    const h = sub.handle;
    sub.handle = undefined;
    if (h && this.#node) this.#quietly(() => this.#node!.destroySubscription(h));
  }

  /** Destroys the subscriptions and the command publishers (diagnostics stay). */
  #releaseEntities(): void {
    for (const sub of this.#subs) this.#destroySub(sub);
    for (const pub of this.#pubs.values()) {
      if (pub.topic === this.#diagnosticsTopic || !pub.handle) continue;
      const h = pub.handle;
      pub.handle = undefined;
      this.#quietly(() => this.#node!.destroyPublisher(h));
    }
  }

  #stopTimer(): void {
    const t = this.#timer;
    this.#timer = undefined;
    if (t && this.#node) {
      this.#quietly(() => t.cancel());
      this.#quietly(() => this.#node!.destroyTimer(t));
    }
  }

  #teardown(): void {
    this.#stopTimer();
    const node = this.#node;
    if (node) {
      this.#releaseEntities();
      const diag = this.#pubs.get(this.#diagnosticsTopic);
      if (diag) diag.handle = undefined;
      this.#quietly(() => node.destroy());
    }
    this.#node = this.#lcNode = undefined;
    if (this.#rcl) {
      const rcl = this.#rcl;
      this.#rcl = undefined;
      this.#quietly(() => rcl.shutdown());
    }
    this.#state = this.#closed ? 'finalized' : 'unconfigured';
  }

  #quietly(body: () => void): void {
    try {
      body();
    } catch (err) {
      this.#onError(new Error(`Ros2Transport(${this.#fqn()}): while releasing: ${(err as Error).message}`, { cause: err }));
    }
  }

  #fqn(): string {
    return this.namespace === '/' ? `/${this.nodeName}` : `${this.namespace}/${this.nodeName}`;
  }
}

/** `diagnostic_msgs/msg/DiagnosticArray` */
const DIAGNOSTIC_ARRAY_TYPE = 'diagnostic_msgs/msg/DiagnosticArray';

function checkName(topic: string, type: string, where: string): void {
  if (typeof topic !== 'string' || !/^\/?[A-Za-z_~{][A-Za-z0-9_/{}~]*$/.test(topic) || topic.endsWith('/') || topic.includes('//')) {
    throw new ValidationError(where, 'topic', `expected a ROS 2 topic name such as /joint_states, got ${describe(topic)}`);
  }
  if (typeof type !== 'string' || !/^[A-Za-z][A-Za-z0-9_]*\/msg\/[A-Za-z][A-Za-z0-9_]*$/.test(type)) {
    throw new ValidationError(where, 'type', `expected a ROS 2 message type package/msg/Type (as rclnodejs takes it), got ${describe(type)}`);
  }
}
