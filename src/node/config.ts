/**
 * The control node's configuration: one YAML file, validated when the node starts (zod schema,
 * then the checks that span keys), every error naming the key path, the bad value and what was
 * expected. Defaults are filled in, sensor and action fields parsed, and the field paths of the
 * common ROS 2 messages checked against their definitions, so a typo stops the node at start
 * instead of showing up as dropped messages.
 *
 * ```yaml
 * transport: { kind: mqtt, url: mqtt://localhost:1883, topicPrefix: robot1 }
 * controlPeriodMs: 50
 * resample: latest                        # latest | linear (see assembleState)
 * tick: { on: grid }                      # or { on: sample, topic: /joint_states }: act on each reading at once
 * sensors:
 *   - topic: /joint_states
 *     type: sensor_msgs/msg/JointState
 *     fields:                           # a block list: YAML does not allow [ ] inside [a, b]
 *       - position[0..1]                  # or sensor_msgs/msg/JointState.position[0..1]
 *       - velocity[0..1]
 *     maxAgeMs: 100                       # drop readings stamped more than this ago (synchronised clocks)
 *     maxFutureMs: 1000                   # the default: drop readings stamped more than this ahead
 * action:
 *   topic: /cmd_vel
 *   type: geometry_msgs/msg/Twist
 *   fields: [linear.x, angular.z]         # one action dimension each; "data[0..1]" gives two
 * actionBounds: { low: [-0.5, -1], high: [0.5, 1] }
 * safety:
 *   safeAction: [0, 0]
 *   maxRatePerSec: [1, 4]                 # or one number for every dimension
 *   watchdogTimeoutMs: 250
 *   estop: { topic: /estop }              # std_msgs/msg/Bool .data: true stops, false clears
 * reward: { kind: task, task: Pendulum-v1 }
 * controller: { kind: planner }          # or { kind: learnedPolicy, deterministic: false } with me-trpo / mb-mpo
 * algorithm: { kind: pets, overrides: { planner: { kind: cem, horizon: 20 } } }
 * learner: { refitEveryTransitions: 1000, refitEverySec: 300 }   # policies: policyStepsPerRefit, promotionMargin, …
 * checkpointDir: ./checkpoints
 * ```
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { NOMINAL_PHYSICS, type PhysicsParams } from '../core/env.js';
import { ValidationError, describe } from '../core/errors.js';
import { fieldWidth, parseFieldSpec, type BagField, type ResampleRule } from '../data/bagMapping.js';
import { ENV_IDS } from '../envs/registry.js';
import type { SafetyConfig } from '../pipeline/safetyFilter.js';
import { resolveFieldPath } from '../pipeline/resolveFieldPath.js';
import { MQTT_BACKOFF_DEFAULTS, type MqttBackoff } from '../transports/mqttBackoff.js';
import { MQTT_MAX_PAYLOAD_BYTES } from '../transports/mqtt.js';
import type { ActionSpec } from '../pipeline/toActionMessage.js';
import { MAX_FUTURE_MS_DEFAULT, type SensorSpec } from '../pipeline/validateMessages.js';

/** How the node reaches the robot (or the simulator standing in for it). */
export type TransportConfig =
  | {
      kind: 'sim';
      /** The built-in task simulated, e.g. `Pendulum-v1`. */
      env: string;
      /** The simulator's physical variant (sim-to-real); the rest nominal. Default `{}`. */
      physics: Partial<PhysicsParams>;
      /** Seeds the simulator. Default 0. */
      seed: number;
      /** Where the MuJoCo tasks' MJCF files are; relative to the config file. Default: the environment's. */
      mjcfDir?: string;
    }
  | {
      kind: 'mqtt';
      /** The broker, `mqtt://`, `mqtts://`, `ws://` or `wss://`. */
      url: string;
      /** Default `mbrl-node`. */
      clientId: string;
      /** Prepended to every topic (`robot1` + `/joint_states` → `robot1/joint_states`). Default `''`. */
      topicPrefix: string;
      /** MQTT QoS of publishes and subscriptions. Default 1. */
      qos: 0 | 1 | 2;
      /** `json` (default) or `binary`: the compact layout of `src/transports/mqttBinary.ts` (docs/mqtt.md). The robot must use the same. */
      payload: 'json' | 'binary';
      /** MQTT keepalive, seconds: a dead connection is noticed (and the will published) after 1.5 × this. 0 disables it. Default 10. */
      keepaliveSec: number;
      /** Reconnection backoff: `initialDelayMs` (default 250), doubling (`factor` 2) up to `maxDelayMs` (10000), `jitter` 0.2; reset once connected. */
      reconnect: MqttBackoff;
      /**
       * Where the node announces itself (JSON `{"state":"online"|"offline",…}`, retained; the
       * broker publishes `offline` as the node's last will when its connection dies), under
       * `topicPrefix`. Default `/mbrl/status/<clientId>`; null: no status, no will.
       */
      statusTopic: string | null;
      /** User name for brokers with accounts. */
      username?: string;
      /**
       * The environment variable holding the password. The password itself is never written in
       * this file (it would sit in plain text here, in saved runs and in logs): use `passwordEnv`
       * or `passwordFile`.
       */
      passwordEnv?: string;
      /** A file holding the password (its first line; a trailing newline is ignored), relative to the config file; e.g. a mounted secret. */
      passwordFile?: string;
      /** TLS (needs an `mqtts://` or `wss://` url): PEM files relative to the config file, and whether an unverified broker certificate is refused (default true). */
      tls?: { caFile?: string; certFile?: string; keyFile?: string; rejectUnauthorized: boolean };
      /**
       * Largest payload the node decodes, bytes (64 … 268 435 455, MQTT's largest); a longer one is
       * dropped unread and counted (`tooLarge`). Default 1 048 576 (1 MiB). Decoding runs on the
       * control loop's thread, about 10–65 ms per MiB of JSON: for a fast loop, set it near the
       * largest real message (a JointState of 30 joints, with positions, velocities and efforts, is ~2.2 kB).
       */
      maxPayloadBytes: number;
    }
  | {
      kind: 'ros2';
      /** Default `mbrl_node`. */
      nodeName: string;
      /** Default `/`. */
      namespace: string;
      /**
       * A managed (lifecycle) node: configure creates publishers and subscriptions, activate lets
       * commands out, deactivate publishes the safe action and holds it, cleanup releases. Driven
       * by `ros2 lifecycle set` or a lifecycle manager. Default false: a plain node, active at once.
       */
      lifecycle: boolean;
    }
  | {
      kind: 'dds';
      /** The DDS / ROS domain id, 0–232. Default: the environment's ROS_DOMAIN_ID, else 0 (read by the transport). */
      domainId?: number;
    };

/** One sensor topic: its fields enter the observation in order. */
export interface SensorConfig extends SensorSpec {
  fields: BagField[];
  /**
   * Readings stamped more than this ahead of the node's clock are dropped (`future`), ms; null:
   * no limit. Default 1000 (`MAX_FUTURE_MS_DEFAULT`); `parseNodeConfig` always fills it. See
   * `SensorSpec.maxFutureMs` for why and how to choose it.
   */
  maxFutureMs?: number | null;
  /** `sensorData` (default: best effort, which also receives from reliable publishers) or `default` (reliable). */
  qos: 'sensorData' | 'default';
}

/** The command topic and how the action vector maps onto its message. */
export interface ActionConfig extends ActionSpec {
  topic: string;
  fields: BagField[];
  /** Default `default` (reliable). */
  qos: 'sensorData' | 'default';
}

/** The reward of the transitions the learner gets. */
export type RewardConfig =
  | {
      kind: 'task';
      /** A built-in task whose known reward r(s, a, s') applies (its observation layout must match the sensors'). */
      task: string;
    }
  | {
      kind: 'topic';
      /** A topic the robot publishes its reward on, one number (e.g. std_msgs/msg/Float64.data). */
      topic: string;
      type: string;
      field: BagField;
    };

/** What turns the state into an action at each tick. */
export type ControllerConfig =
  | {
      kind: 'planner';
      /** Plan with the learned ensemble (PETS); a saved run to start from, relative to the config file. */
      checkpoint?: string;
      /** Before the first model exists: uniform random actions within the bounds (PETS's warm-up), or the safe action. Default `random`. */
      beforeFirstModel: 'random' | 'safeAction';
    }
  | {
      kind: 'onnx';
      /** An exported policy (`mbrl export`), relative to the config file. */
      model: string;
      /** onnxruntime intra-op threads. Default: onnxruntime's. */
      threads?: number;
    }
  | {
      kind: 'learnedPolicy';
      /**
       * The Gaussian MLP policy ME-TRPO or MB-MPO (`algorithm.kind`) trains: a saved run to start
       * from, relative to the config file; without one, a fresh random policy. Learned online when
       * the task's reward is known (`reward.kind: task`, or the sim): each promoted policy (and
       * MB-MPO's online adaptation of it) is swapped in; see `learner`.
       */
      checkpoint?: string;
      /**
       * Act with the policy's mean (default true) rather than sampling. Learning from scratch needs
       * `false`: the data then explore, as ME-TRPO and MB-MPO collect with the stochastic policy,
       * and MB-MPO's inner step learns from the sampled actions (from the mean it learns nothing).
       */
      deterministic: boolean;
    };

/** The model-based algorithm the learner runs. */
export interface AlgorithmSelection {
  kind: 'pets' | 'me-trpo' | 'mb-mpo';
  /** Passed to the algorithm's `makePetsConfig` / `makeMeTrpoConfig` / `makeMbMpoConfig`, which check them. Default `{}`. */
  overrides: Record<string, unknown>;
}

/**
 * When and how the learner refits and promotes. Models are promoted when finite and not worse on
 * held-out transitions; with `learnedPolicy`, each promoted model is followed by the algorithm's
 * policy phase (ME-TRPO's TRPO steps, MB-MPO's meta-steps) on it, and the candidate policy is
 * promoted by its imagined return (the keys below).
 */
export interface LearnerConfig {
  /** Refit after this many new transitions; null: not by count. Default 1000. */
  refitEveryTransitions: number | null;
  /** Refit after this many seconds; null: not by time. Default 300. Whichever comes first. */
  refitEverySec: number | null;
  /**
   * A candidate policy replaces the running one only if its imagined mean return is at least the
   * running one's plus this (return units; negative tolerates a worse one). Default 0.
   */
  promotionMargin: number;
  /** Imagined episodes (on the new ensemble, same start states and model draws for both) the candidate and the running policy are evaluated on. Default 5. */
  imaginedEvalEpisodes: number;
  /**
   * Most TRPO steps (ME-TRPO, whose validation rule may stop earlier) or meta-steps (MB-MPO) per
   * refit; null (default): the algorithm's `maxPolicyIterations` / `metaStepsPerIteration`.
   */
  policyStepsPerRefit: number | null;
  /** MB-MPO: the newest real transitions the deployed policy is adapted on (the inner step). Default 200. */
  adaptWindow: number;
  /** MB-MPO: adapt again after this many new transitions (and after each promotion). Default 100. */
  adaptEveryTransitions: number;
  /** A refit or policy phase running longer than this is abandoned (the controller keeps the running model and policy), seconds. Default 600. */
  timeoutSec: number;
  /**
   * How much lower the learner thread's OS priority (nice) is than the control thread's, 0–19, so
   * a refit never takes a core the control loop wants; Linux only (see the learner's `workerNice`).
   * The learner then also yields to every other process at normal priority: on a machine busy with
   * other work, refits slow down (set 0 where learning speed matters more than the loop's tail
   * latency). Default 10.
   */
  workerNice: number;
}

/**
 * What starts a control tick. `grid` (default): a fixed wall-clock grid of `controlPeriodMs`; a
 * reading waits up to a period for the next tick. `sample`: each reading of `topic` starts a tick
 * at once (sensor→action is then the node's own latency), at most one per `minIntervalMs`
 * (default half a period); after `fallbackAfterMs` with no reading (default the watchdog's
 * timeout), ticks go on on the grid, so the watchdog engages and holds the safe action as with
 * `grid` (`SampleTrigger`). Until then a late reading is waited for: no action is sent on a held
 * one (a shorter `fallbackAfterMs`, e.g. 1.5 periods, acts on held readings as the grid does).
 */
export type TickConfig = { on: 'grid' } | { on: 'sample'; topic: string; minIntervalMs: number; fallbackAfterMs: number };

/** The node's replay buffer. */
export interface BufferConfig {
  /** Transitions held. Default 1,000,000. */
  capacity: number;
  /** Transitions per saved segment (`bufferStore`), at most `capacity`. Default 10,000. */
  segmentSize: number;
}

/** A validated node configuration, defaults filled in. */
export interface NodeConfig {
  transport: TransportConfig;
  /** The control period, milliseconds (one state, one action, one transition per period). */
  controlPeriodMs: number;
  /** How the state is assembled from the sensors (`assembleState`). Default `latest`. */
  resample: ResampleRule;
  /** What starts a tick (`TickConfig`). Default `{ on: 'grid' }`. */
  tick: TickConfig;
  sensors: SensorConfig[];
  action: ActionConfig;
  actionBounds: { low: number[]; high: number[] };
  /** The safety filter's settings; `watchdogTimeoutMs` defaults to 5 control periods, `onControllerError` to `safeAction`. */
  safety: SafetyConfig & { safeAction: number[]; maxRatePerSec?: number[] };
  reward: RewardConfig;
  controller: ControllerConfig;
  algorithm: AlgorithmSelection;
  learner: LearnerConfig;
  /** Where runs, models and the buffer are saved; relative to the config file. */
  checkpointDir: string;
  buffer: BufferConfig;
  /** The action's length (derived from `action.fields`). */
  actDim: number;
  /** The observation's length, or null when a whole variable-length array is mapped (the first message fixes it). */
  obsDim: number | null;
}

/** The defaults of the optional keys. */
export const NODE_CONFIG_DEFAULTS = {
  resample: 'latest',
  /** `tick: { on: sample }`: a fraction of the control period (`fallbackAfterMs` defaults to the watchdog's timeout). */
  tickMinIntervalPeriods: 0.5,
  sensorQos: 'sensorData',
  actionQos: 'default',
  /** Control periods. */
  watchdogPeriods: 5,
  onControllerError: 'safeAction',
  estopType: 'std_msgs/msg/Bool',
  estopField: 'data',
  learner: { refitEveryTransitions: 1000, refitEverySec: 300, promotionMargin: 0, imaginedEvalEpisodes: 5, policyStepsPerRefit: null, adaptWindow: 200, adaptEveryTransitions: 100, timeoutSec: 600, workerNice: 10 },
  buffer: { capacity: 1_000_000, segmentSize: 10_000 },
  /** MQTT; `statusTopic` defaults to `/mbrl/status/<clientId>`. */
  mqtt: { clientId: 'mbrl-node', topicPrefix: '', qos: 1, payload: 'json', keepaliveSec: 10, reconnect: MQTT_BACKOFF_DEFAULTS, maxPayloadBytes: MQTT_MAX_PAYLOAD_BYTES },
  ros2: { nodeName: 'mbrl_node', namespace: '/', lifecycle: false },
} as const;

// ---------------------------------------------------------------------------------------------
// Shape: the zod schema. Cross-key rules (lengths, bounds, field paths) come after it.

const TOPIC = z.string().regex(/^(\/[A-Za-z_][A-Za-z0-9_]*)+$/, 'expected an absolute ROS 2 topic name such as /joint_states');
const MSG_TYPE = z.string().regex(/^[A-Za-z_]\w*\/msg\/[A-Za-z_]\w*$/, 'expected a message type package/msg/Type, e.g. sensor_msgs/msg/JointState');
const FINITE = z.number().refine(Number.isFinite, 'expected a finite number');
const POSITIVE = z.number().positive().refine(Number.isFinite, 'expected a finite number');
const COUNT = z.int().positive();
const QOS = z.enum(['sensorData', 'default']);
const PATH = z.string().min(1);

const PHYSICS = z.strictObject(Object.fromEntries(Object.keys(NOMINAL_PHYSICS).map((k) => [k, FINITE.optional()])) as Record<keyof PhysicsParams, z.ZodOptional<typeof FINITE>>);

const TRANSPORT = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('sim'), env: z.string(), physics: PHYSICS.default({}), seed: z.int().min(0).default(0), mjcfDir: PATH.optional() }),
  z.strictObject({
    kind: z.literal('mqtt'),
    url: z.string().regex(/^(mqtts?|wss?|tcp):\/\/[^\s/]+/, 'expected a broker URL such as mqtt://localhost:1883 (mqtt, mqtts, ws, wss or tcp)'),
    clientId: z.string().min(1).default(NODE_CONFIG_DEFAULTS.mqtt.clientId),
    topicPrefix: z.string().regex(/^[^#+]*$/, 'expected a topic prefix without MQTT wildcards (# +)').default(NODE_CONFIG_DEFAULTS.mqtt.topicPrefix),
    qos: z.union([z.literal(0), z.literal(1), z.literal(2)], { error: 'expected an MQTT QoS: 0, 1 or 2' }).default(NODE_CONFIG_DEFAULTS.mqtt.qos),
    payload: z.enum(['json', 'binary']).default(NODE_CONFIG_DEFAULTS.mqtt.payload),
    keepaliveSec: z.int().min(0).max(65535).default(NODE_CONFIG_DEFAULTS.mqtt.keepaliveSec),
    reconnect: z
      .strictObject({
        initialDelayMs: z.int().positive().max(2_147_483_647).default(MQTT_BACKOFF_DEFAULTS.initialDelayMs),
        maxDelayMs: z.int().positive().max(2_147_483_647).default(MQTT_BACKOFF_DEFAULTS.maxDelayMs),
        factor: z.number().min(1).refine(Number.isFinite, 'expected a finite number').default(MQTT_BACKOFF_DEFAULTS.factor),
        jitter: z.number().min(0).max(1).default(MQTT_BACKOFF_DEFAULTS.jitter),
      })
      .default({ ...MQTT_BACKOFF_DEFAULTS }),
    statusTopic: z.string().regex(/^(\/[^/#+\s]+)+$/, 'expected a topic such as /mbrl/status/robot1 (levels after /, no MQTT wildcards # +), or null for none').nullable().optional(),
    username: z.string().min(1).optional(),
    passwordEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected the name of an environment variable').optional(),
    passwordFile: PATH.optional(),
    // Accepted by the shape only to be refused by name (mqttTransportConfig), without echoing it.
    password: z.unknown().optional(),
    tls: z
      .strictObject({ caFile: PATH.optional(), certFile: PATH.optional(), keyFile: PATH.optional(), rejectUnauthorized: z.boolean({ error: 'expected true or false' }).default(true) })
      .optional(),
    maxPayloadBytes: z
      .number()
      .refine((v) => Number.isInteger(v) && v >= 64 && v <= 268_435_455, 'expected a whole number of bytes, 64 … 268435455 (MQTT\'s largest payload; 1048576 is 1 MiB)')
      .default(NODE_CONFIG_DEFAULTS.mqtt.maxPayloadBytes),
  }),
  z.strictObject({
    kind: z.literal('ros2'),
    nodeName: z.string().regex(/^[A-Za-z][A-Za-z0-9_]*$/, 'expected a ROS 2 node name: a letter, then letters, digits or _').default(NODE_CONFIG_DEFAULTS.ros2.nodeName),
    namespace: z.string().regex(/^\/([A-Za-z][A-Za-z0-9_]*(\/[A-Za-z][A-Za-z0-9_]*)*)?$/, 'expected a ROS 2 namespace such as / or /robot1').default(NODE_CONFIG_DEFAULTS.ros2.namespace),
    lifecycle: z.boolean({ error: 'expected true (a lifecycle node) or false' }).default(NODE_CONFIG_DEFAULTS.ros2.lifecycle),
  }),
  z.strictObject({ kind: z.literal('dds'), domainId: z.int().min(0).max(232).optional() }),
]);

const SENSOR = z.strictObject({
  topic: TOPIC,
  type: MSG_TYPE,
  fields: z.array(z.string()).min(1),
  maxAgeMs: POSITIVE.optional(),
  maxFutureMs: POSITIVE.nullable().default(MAX_FUTURE_MS_DEFAULT),
  qos: QOS.default(NODE_CONFIG_DEFAULTS.sensorQos),
});

const SCHEMA = z.strictObject({
  transport: TRANSPORT,
  controlPeriodMs: POSITIVE,
  resample: z.enum(['latest', 'linear']).default(NODE_CONFIG_DEFAULTS.resample),
  tick: z
    .discriminatedUnion('on', [
      z.strictObject({ on: z.literal('grid') }),
      z.strictObject({ on: z.literal('sample'), topic: TOPIC, minIntervalMs: z.number().min(0).refine(Number.isFinite, 'expected a finite number').optional(), fallbackAfterMs: POSITIVE.optional() }),
    ])
    .default({ on: 'grid' }),
  sensors: z.array(SENSOR).min(1),
  action: z.strictObject({ topic: TOPIC, type: MSG_TYPE, fields: z.array(z.string()).min(1), qos: QOS.default(NODE_CONFIG_DEFAULTS.actionQos) }),
  actionBounds: z.strictObject({ low: z.array(FINITE).min(1), high: z.array(FINITE).min(1) }),
  safety: z.strictObject({
    safeAction: z.array(FINITE).min(1),
    maxRatePerSec: z.union([POSITIVE, z.array(POSITIVE)], { error: 'expected a positive number (units per second) or a list of them, one per action dimension' }).optional(),
    watchdogTimeoutMs: POSITIVE.optional(),
    estop: z.strictObject({ topic: TOPIC, type: MSG_TYPE.default(NODE_CONFIG_DEFAULTS.estopType), field: z.string().default(NODE_CONFIG_DEFAULTS.estopField) }).optional(),
    onControllerError: z.enum(['safeAction', 'holdLast', 'stop']).default(NODE_CONFIG_DEFAULTS.onControllerError),
  }),
  reward: z.discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('task'), task: z.string() }),
    z.strictObject({ kind: z.literal('topic'), topic: TOPIC, type: MSG_TYPE.default('std_msgs/msg/Float64'), field: z.string().default('data') }),
  ]),
  controller: z.discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('planner'), checkpoint: PATH.optional(), beforeFirstModel: z.enum(['random', 'safeAction']).default('random') }),
    z.strictObject({ kind: z.literal('onnx'), model: PATH, threads: COUNT.optional() }),
    z.strictObject({ kind: z.literal('learnedPolicy'), checkpoint: PATH.optional(), deterministic: z.boolean().default(true) }),
  ]),
  algorithm: z.strictObject({ kind: z.enum(['pets', 'me-trpo', 'mb-mpo']), overrides: z.record(z.string(), z.unknown()).default({}) }),
  learner: z
    .strictObject({
      refitEveryTransitions: COUNT.nullable().default(NODE_CONFIG_DEFAULTS.learner.refitEveryTransitions),
      refitEverySec: POSITIVE.nullable().default(NODE_CONFIG_DEFAULTS.learner.refitEverySec),
      promotionMargin: FINITE.default(NODE_CONFIG_DEFAULTS.learner.promotionMargin),
      imaginedEvalEpisodes: COUNT.default(NODE_CONFIG_DEFAULTS.learner.imaginedEvalEpisodes),
      policyStepsPerRefit: COUNT.nullable().default(NODE_CONFIG_DEFAULTS.learner.policyStepsPerRefit),
      adaptWindow: z.int().min(2).default(NODE_CONFIG_DEFAULTS.learner.adaptWindow),
      adaptEveryTransitions: COUNT.default(NODE_CONFIG_DEFAULTS.learner.adaptEveryTransitions),
      timeoutSec: POSITIVE.default(NODE_CONFIG_DEFAULTS.learner.timeoutSec),
      workerNice: z.int().min(0).max(19).default(NODE_CONFIG_DEFAULTS.learner.workerNice),
    })
    .default({ ...NODE_CONFIG_DEFAULTS.learner }),
  checkpointDir: PATH,
  buffer: z.strictObject({ capacity: COUNT.default(NODE_CONFIG_DEFAULTS.buffer.capacity), segmentSize: COUNT.default(NODE_CONFIG_DEFAULTS.buffer.segmentSize) }).default({ ...NODE_CONFIG_DEFAULTS.buffer }),
});

type Parsed = z.output<typeof SCHEMA>;

/** One problem found: the key path and what was wrong (value and expectation). */
interface Problem {
  key: string;
  message: string;
}

/**
 * Validates a parsed YAML/JSON object as the node's configuration and fills the defaults.
 * Relative paths are kept as written (`loadNodeConfig` resolves them against the file).
 * @param where names the source in errors, e.g. the config file
 * @throws ValidationError naming the first bad key path (`sensors[0].maxAgeMs`), its value and
 *   what was expected; further problems follow in the same message
 * @example const config = parseNodeConfig(parseYaml(text), 'robot.yaml');
 */
export function parseNodeConfig(obj: unknown, where = 'node config'): NodeConfig {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new ValidationError(where, '(root)', `expected a mapping with transport, controlPeriodMs, sensors, action, actionBounds, safety, reward, controller, algorithm, checkpointDir; got ${describe(obj)}`);
  }
  const result = SCHEMA.safeParse(obj);
  if (!result.success) fail(where, result.error.issues.map((issue) => formatIssue(issue, obj)));
  const problems: Problem[] = [];
  const config = crossCheck(result.data, where, problems);
  if (problems.length > 0) fail(where, problems);
  return config;
}

/**
 * Reads, parses and validates a node configuration file (YAML; JSON is YAML too). Relative
 * paths in it (`checkpointDir`, `controller.model`, `controller.checkpoint`, `transport.mjcfDir`)
 * are resolved against the file's directory, so the node finds them from any working directory.
 * @throws ValidationError naming the file, the key path, the value and what was expected
 * @example const config = loadNodeConfig('config/turtlebot.yaml');
 */
export function loadNodeConfig(file: string): NodeConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ValidationError(file, 'file', `cannot read the node config (${err instanceof Error ? err.message : String(err)})`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ValidationError(file, 'yaml', `not valid YAML (${err instanceof Error ? err.message : String(err)})`);
  }
  const config = parseNodeConfig(raw, file);
  resolveConfigPaths(config, dirname(resolve(file)));
  return config;
}

/**
 * Makes the configuration's relative paths absolute against `base` (the config file's directory),
 * in place: the checkpoint directory, the controller's model or checkpoint, the simulator's MJCF
 * directory, the MQTT password and TLS files. `loadNodeConfig` and the ROS parameters form
 * (`loadRosNodeConfig`) both use it.
 */
export function resolveConfigPaths(config: NodeConfig, base: string): void {
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  config.checkpointDir = abs(config.checkpointDir);
  if (config.controller.kind === 'onnx') config.controller.model = abs(config.controller.model);
  else if (config.controller.checkpoint !== undefined) config.controller.checkpoint = abs(config.controller.checkpoint);
  if (config.transport.kind === 'sim' && config.transport.mjcfDir !== undefined) config.transport.mjcfDir = abs(config.transport.mjcfDir);
  if (config.transport.kind === 'mqtt') resolveMqttPaths(config.transport, abs);
}

/**
 * The configuration as plain data in the file's form (fields as text, derived keys left out):
 * what a run saves next to its checkpoints, and what `parseNodeConfig` turns back into an equal
 * `NodeConfig`.
 * @example writeFileSync(join(dir, 'node.json'), JSON.stringify(nodeConfigToJson(config), null, 2));
 */
export function nodeConfigToJson(config: NodeConfig): Record<string, unknown> {
  const spec = (f: BagField): string => f.text.slice(f.topic.length + 2);
  const { estop, ...safety } = config.safety;
  return {
    transport: structuredClone(config.transport),
    controlPeriodMs: config.controlPeriodMs,
    resample: config.resample,
    tick: { ...config.tick },
    sensors: config.sensors.map((s) => ({
      topic: s.topic,
      type: s.type,
      fields: s.fields.map(spec),
      ...(s.maxAgeMs !== undefined ? { maxAgeMs: s.maxAgeMs } : {}),
      ...(s.maxFutureMs !== undefined ? { maxFutureMs: s.maxFutureMs } : {}),
      qos: s.qos,
    })),
    action: { topic: config.action.topic, type: config.action.type, fields: config.action.fields.map(spec), qos: config.action.qos },
    actionBounds: structuredClone(config.actionBounds),
    safety: { ...structuredClone(safety), ...(estop ? { estop: { topic: estop.topic, type: estop.type, field: spec(estop.field) } } : {}) },
    reward: config.reward.kind === 'task' ? { ...config.reward } : { kind: 'topic', topic: config.reward.topic, type: config.reward.type, field: spec(config.reward.field) },
    controller: { ...config.controller },
    algorithm: structuredClone(config.algorithm),
    learner: { ...config.learner },
    checkpointDir: config.checkpointDir,
    buffer: { ...config.buffer },
  };
}

function fail(where: string, problems: Problem[]): never {
  const [first, ...rest] = problems;
  const more = rest.length === 0 ? '' : `; and ${rest.length} more: ${rest.map((p) => `${p.key}: ${p.message}`).join('; ')}`;
  throw new ValidationError(where, first.key, `${first.message}${more}`);
}

// ---------------------------------------------------------------------------------------------
// Rules that span keys.

function crossCheck(c: Parsed, where: string, problems: Problem[]): NodeConfig {
  const problem = (key: string, message: string): void => {
    problems.push({ key, message });
  };

  if (c.transport.kind === 'sim' && !ENV_IDS.includes(c.transport.env)) problem('transport.env', `expected a built-in task (${ENV_IDS.join(', ')}), got ${describe(c.transport.env)}`);
  const transport = c.transport.kind === 'mqtt' ? mqttTransportConfig(c.transport, problem) : (c.transport as TransportConfig);

  // Sensors: fields parsed and, for common messages, checked against the definition.
  const seen = new Map<string, number>();
  let obsDim: number | null = 0;
  const sensors: SensorConfig[] = c.sensors.map((s, i) => {
    const before = seen.get(s.topic);
    if (before !== undefined) problem(`sensors[${i}].topic`, `${s.topic} is already sensors[${before}]; list all of a topic's fields under one entry`);
    seen.set(s.topic, i);
    const fields: BagField[] = [];
    s.fields.forEach((text, j) => {
      const key = `sensors[${i}].fields[${j}]`;
      const f = parseField(s.topic, s.type, text, where, key, problem);
      if (!f) return;
      const resolved = resolveFieldPath(s.type, f.path);
      if (typeof resolved === 'string') return problem(key, `${describe(text)}: ${resolved}`);
      if (resolved && !resolved.numeric) return problem(key, `${describe(text)} holds ${resolved.leaf.type} values; expected a numeric field`);
      fields.push(f);
      const width = resolved ? resolved.width : fieldWidth(f) ?? 1;
      obsDim = width === undefined || obsDim === null ? null : obsDim + width;
    });
    return { topic: s.topic, type: s.type, fields, qos: s.qos, ...(s.maxAgeMs !== undefined ? { maxAgeMs: s.maxAgeMs } : {}), maxFutureMs: s.maxFutureMs };
  });

  // Action: every field must say how many numbers it takes.
  const actionFields: BagField[] = [];
  let actDim = 0;
  c.action.fields.forEach((text, j) => {
    const key = `action.fields[${j}]`;
    const f = parseField(c.action.topic, c.action.type, text, where, key, problem);
    if (!f) return;
    if (actionFields.some((g) => g.text === f.text)) return problem(key, `${describe(text)} is mapped twice`);
    const resolved = resolveFieldPath(c.action.type, f.path);
    if (typeof resolved === 'string') return problem(key, `${describe(text)}: ${resolved}`);
    if (resolved && !resolved.numeric) return problem(key, `${describe(text)} holds ${resolved.leaf.type} values; expected a numeric field`);
    const last = f.path[f.path.length - 1];
    if (resolved?.leaf.isArray && last.index === undefined && !last.range) return problem(key, `${describe(text)} is a whole array; name the entries the action fills, e.g. ${last.name}[0..1]`);
    actionFields.push(f);
    actDim += fieldWidth(f) ?? 1;
  });
  if (sensors.some((s) => s.topic === c.action.topic)) problem('action.topic', `${c.action.topic} is also a sensor topic; the node would read its own commands`);

  // Bounds, safe action, rates: one per action dimension.
  const { low, high } = c.actionBounds;
  // A bad action field leaves the dimension unknown: lengths are not checked against a wrong one.
  const actionOk = actionFields.length === c.action.fields.length;
  const dims = `(one per action dimension: ${actionFields.map((f) => f.text.slice(f.topic.length + 2)).join(', ')})`;
  const checkLength = (key: string, v: readonly unknown[]): boolean => {
    if (!actionOk) return false;
    if (v.length === actDim) return true;
    problem(key, `expected ${actDim} values ${dims}, got ${v.length}`);
    return false;
  };
  const boundsOk = checkLength('actionBounds.low', low) && checkLength('actionBounds.high', high);
  if (boundsOk) low.forEach((l, i) => l > high[i] && problem(`actionBounds.low[${i}]`, `${l} is above actionBounds.high[${i}] = ${high[i]}; expected low ≤ high`));
  if (checkLength('safety.safeAction', c.safety.safeAction) && boundsOk) {
    c.safety.safeAction.forEach((v, i) => (v < low[i] || v > high[i]) && problem(`safety.safeAction[${i}]`, `${v} is outside the bounds [${low[i]}, ${high[i]}]; the safe action must be a valid action`));
  }
  const rate = c.safety.maxRatePerSec;
  const maxRatePerSec = rate === undefined ? undefined : typeof rate === 'number' ? new Array<number>(actDim).fill(rate) : rate;
  if (Array.isArray(rate)) checkLength('safety.maxRatePerSec', rate);
  const watchdogTimeoutMs = c.safety.watchdogTimeoutMs ?? NODE_CONFIG_DEFAULTS.watchdogPeriods * c.controlPeriodMs;
  if (watchdogTimeoutMs < c.controlPeriodMs) {
    problem('safety.watchdogTimeoutMs', `${watchdogTimeoutMs} is shorter than controlPeriodMs (${c.controlPeriodMs}); expected at least one control period, or the watchdog would trip between ticks`);
  }
  let tick: TickConfig = { on: 'grid' };
  if (c.tick.on === 'sample') {
    const period = c.controlPeriodMs;
    const minIntervalMs = c.tick.minIntervalMs ?? NODE_CONFIG_DEFAULTS.tickMinIntervalPeriods * period;
    const fallbackAfterMs = c.tick.fallbackAfterMs ?? watchdogTimeoutMs;
    if (!seen.has(c.tick.topic)) problem('tick.topic', `${c.tick.topic} is not a sensor topic (${[...seen.keys()].join(', ')}); expected the sensor whose readings start the ticks`);
    if (minIntervalMs > period) problem('tick.minIntervalMs', `${minIntervalMs} is longer than controlPeriodMs (${period}); expected at most one period`);
    if (fallbackAfterMs < period || fallbackAfterMs > watchdogTimeoutMs) {
      problem('tick.fallbackAfterMs', `${fallbackAfterMs} is outside [controlPeriodMs, safety.watchdogTimeoutMs] = [${period}, ${watchdogTimeoutMs}]; expected the grid to take over before the watchdog must act`);
    }
    tick = { on: 'sample', topic: c.tick.topic, minIntervalMs, fallbackAfterMs };
  }
  let estop: SafetyConfig['estop'];
  if (c.safety.estop) {
    const e = c.safety.estop;
    const f = parseField(e.topic, e.type, e.field, where, 'safety.estop.field', problem);
    const resolved = f && resolveFieldPath(e.type, f.path);
    if (typeof resolved === 'string') problem('safety.estop.field', `${describe(e.field)}: ${resolved}`);
    else if (f && (resolved ? resolved.width !== 1 || !resolved.numeric : (fieldWidth(f) ?? 1) !== 1)) problem('safety.estop.field', `${describe(e.field)}: expected one boolean or number (true / non-zero stops)`);
    else if (f) estop = { topic: e.topic, type: e.type, field: f };
    if (seen.has(e.topic) || e.topic === c.action.topic) problem('safety.estop.topic', `${e.topic} is also a sensor or the action topic; expected a topic of its own`);
  }

  // Reward.
  let reward: RewardConfig;
  if (c.reward.kind === 'task') {
    if (!ENV_IDS.includes(c.reward.task)) problem('reward.task', `expected a built-in task (${ENV_IDS.join(', ')}), got ${describe(c.reward.task)}`);
    reward = { kind: 'task', task: c.reward.task };
  } else {
    const r = c.reward;
    const f = parseField(r.topic, r.type, r.field, where, 'reward.field', problem);
    const resolved = f && resolveFieldPath(r.type, f.path);
    if (typeof resolved === 'string') problem('reward.field', `${describe(r.field)}: ${resolved}`);
    else if (f && (resolved ? resolved.width !== 1 || !resolved.numeric : (fieldWidth(f) ?? 1) !== 1)) problem('reward.field', `${describe(r.field)}: expected one number (a scalar field or one index)`);
    reward = { kind: 'topic', topic: r.topic, type: r.type, field: f ?? { topic: r.topic, type: r.type, path: [], text: r.field } };
  }

  // Controller and algorithm must fit together.
  const ctrl = c.controller.kind;
  const algo = c.algorithm.kind;
  if (ctrl === 'planner' && algo !== 'pets') problem('controller.kind', `planner plans with the PETS ensemble; expected algorithm.kind pets, got ${algo} (use learnedPolicy for ${algo})`);
  if (ctrl === 'learnedPolicy' && algo === 'pets') problem('controller.kind', 'learnedPolicy needs an algorithm that trains a policy; expected algorithm.kind me-trpo or mb-mpo, got pets (use planner for pets)');
  if (c.controller.kind === 'onnx' && !c.controller.model.endsWith('.onnx')) problem('controller.model', `expected an .onnx file (mbrl export), got ${describe(c.controller.model)}`);

  if (c.learner.refitEveryTransitions === null && c.learner.refitEverySec === null) problem('learner', 'refitEveryTransitions and refitEverySec are both null; expected at least one, or the model is never refitted');
  if (c.buffer.segmentSize > c.buffer.capacity) problem('buffer.segmentSize', `${c.buffer.segmentSize} is larger than buffer.capacity (${c.buffer.capacity}); expected at most the capacity`);

  return {
    transport,
    controlPeriodMs: c.controlPeriodMs,
    resample: c.resample,
    tick,
    sensors,
    action: { topic: c.action.topic, type: c.action.type, fields: actionFields, qos: c.action.qos },
    actionBounds: { low, high },
    safety: {
      safeAction: c.safety.safeAction,
      ...(maxRatePerSec ? { maxRatePerSec } : {}),
      watchdogTimeoutMs,
      onControllerError: c.safety.onControllerError,
      ...(estop ? { estop } : {}),
    },
    reward,
    controller: c.controller as ControllerConfig,
    algorithm: { kind: algo, overrides: c.algorithm.overrides },
    learner: c.learner,
    checkpointDir: c.checkpointDir,
    buffer: c.buffer,
    actDim,
    obsDim,
  };
}

type MqttTransportConfig = Extract<TransportConfig, { kind: 'mqtt' }>;

/** The MQTT transport's rules that span keys: credentials, TLS, backoff, the status topic (filled). */
function mqttTransportConfig(t: Extract<Parsed['transport'], { kind: 'mqtt' }>, problem: (key: string, message: string) => void): MqttTransportConfig {
  const { password, ...rest } = t;
  // Never echoed: the value is a secret.
  if (password !== undefined) {
    problem('transport.password', 'a password is never written in the config file (it would sit in plain text here, in saved runs and in logs); expected transport.passwordEnv (an environment variable holding it) or transport.passwordFile (a file holding it)');
  }
  if (t.passwordEnv !== undefined && t.passwordFile !== undefined) problem('transport.passwordFile', `the password comes from passwordEnv (${t.passwordEnv}) already; expected one of passwordEnv or passwordFile`);
  if ((t.passwordEnv !== undefined || t.passwordFile !== undefined) && t.username === undefined) problem('transport.username', 'required with passwordEnv or passwordFile: MQTT sends a password only with a user name');
  if (t.tls !== undefined) {
    if (!/^(mqtts|wss):\/\//.test(t.url)) problem('transport.tls', `TLS settings need an mqtts:// or wss:// url; expected transport.url such as mqtts://broker:8883, got ${describe(t.url)}`);
    if ((t.tls.certFile === undefined) !== (t.tls.keyFile === undefined)) problem(t.tls.certFile === undefined ? 'transport.tls.certFile' : 'transport.tls.keyFile', 'a client certificate needs both tls.certFile and tls.keyFile');
  }
  if (t.reconnect.maxDelayMs < t.reconnect.initialDelayMs) problem('transport.reconnect.maxDelayMs', `${t.reconnect.maxDelayMs} is below reconnect.initialDelayMs (${t.reconnect.initialDelayMs}); expected the longest wait ≥ the first`);
  let statusTopic = t.statusTopic;
  if (statusTopic === undefined) {
    statusTopic = `/mbrl/status/${t.clientId}`;
    if (/[#+]/.test(t.clientId) || t.clientId.split('/').some((level) => level === '')) {
      problem('transport.clientId', `${describe(t.clientId)} cannot name the default status topic /mbrl/status/<clientId>; expected a client id without # + or empty /-levels, or transport.statusTopic set (null for none)`);
    }
  }
  return { ...rest, statusTopic };
}

/** `loadNodeConfig`'s resolution of the MQTT transport's files against the config file's directory. */
function resolveMqttPaths(t: MqttTransportConfig, abs: (p: string) => string): void {
  if (t.passwordFile !== undefined) t.passwordFile = abs(t.passwordFile);
  if (t.tls === undefined) return;
  for (const key of ['caFile', 'certFile', 'keyFile'] as const) {
    const file = t.tls[key];
    if (file !== undefined) t.tls[key] = abs(file);
  }
}

/**
 * A field as written under a topic of `type`: either the full bag-mapping form
 * (`sensor_msgs/msg/JointState.position[0..5]`, whose type must be the topic's) or the path
 * alone (`position[0..5]`).
 */
function parseField(topic: string, type: string, text: string, where: string, key: string, problem: (key: string, message: string) => void): BagField | undefined {
  const prefixed = /^[A-Za-z_]\w*\/(msg\/)?[A-Za-z_]\w*\./.exec(text);
  if (prefixed) {
    const written = prefixed[0].slice(0, -1);
    if (written.replace('/msg/', '/') !== type.replace('/msg/', '/')) {
      problem(key, `${describe(text)} names the type ${written}, but the topic's type is ${type}; expected ${type}.<path> or the path alone`);
      return undefined;
    }
  }
  try {
    return parseFieldSpec(topic, prefixed ? `${type}${text.slice(prefixed[0].length - 1)}` : `${type}.${text}`, where, key);
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    problem(key, err.message.slice(`${err.where}: ${err.field}: `.length));
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// zod issues → our messages: key path, value, expectation.

type Issue = z.core.$ZodIssue;

function keyPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out || '(root)';
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let cur = root;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[p];
  }
  return cur;
}

const NOUNS: Record<string, string> = {
  number: 'a number',
  int: 'an integer',
  string: 'a string',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
  record: 'a mapping',
  null: 'null',
};

function formatIssue(issue: Issue, root: unknown): Problem {
  const value = valueAt(root, issue.path);
  const got = `, got ${describe(value)}`;
  switch (issue.code) {
    case 'invalid_type':
      if (value === undefined) return { key: keyPath(issue.path), message: `required: expected ${NOUNS[issue.expected] ?? issue.expected}` };
      return { key: keyPath(issue.path), message: `expected ${NOUNS[issue.expected] ?? issue.expected}${got}` };
    case 'too_small': {
      const min = String(issue.minimum);
      if (issue.origin === 'array') return { key: keyPath(issue.path), message: `expected at least ${min} ${min === '1' ? 'entry' : 'entries'}${got}` };
      if (issue.origin === 'string') return { key: keyPath(issue.path), message: `expected a non-empty string${got}` };
      return { key: keyPath(issue.path), message: `expected ${issue.origin === 'int' ? 'an integer' : 'a number'} ${issue.inclusive ? '≥' : '>'} ${min}${got}` };
    }
    case 'too_big': {
      const max = String(issue.maximum);
      if (issue.origin === 'array') return { key: keyPath(issue.path), message: `expected at most ${max} entries${got}` };
      return { key: keyPath(issue.path), message: `expected ${issue.origin === 'int' ? 'an integer' : 'a number'} ${issue.inclusive ? '≤' : '<'} ${max}${got}` };
    }
    case 'invalid_value':
      return { key: keyPath(issue.path), message: `expected one of ${issue.values.map((v) => String(v)).join(', ')}${got}` };
    case 'unrecognized_keys': {
      const known = knownKeys(issue.path, root);
      return {
        key: keyPath([...issue.path, issue.keys[0]]),
        message: `unknown key${issue.keys.length > 1 ? `s ${issue.keys.join(', ')}` : ''}${known ? `; expected one of ${known.join(', ')}` : ''}`,
      };
    }
    case 'invalid_union':
      if (issue.discriminator !== undefined) {
        const options = (issue as { options?: unknown[] }).options ?? [];
        return { key: keyPath(issue.path), message: `expected one of ${options.map(String).join(', ')}${got}` };
      }
      return { key: keyPath(issue.path), message: `${issue.message}${got}` };
    case 'not_multiple_of':
      return { key: keyPath(issue.path), message: `expected a multiple of ${String(issue.divisor)}${got}` };
    default:
      return { key: keyPath(issue.path), message: `${issue.message}${got}` };
  }
}

/** The keys the schema allows at `path` (following the `kind` of discriminated unions in `root`). */
function knownKeys(path: readonly PropertyKey[], root: unknown): string[] | undefined {
  let schema: z.core.$ZodType | undefined = SCHEMA;
  const at = (s: z.core.$ZodType, raw: unknown): z.core.$ZodType => {
    let cur = s;
    for (;;) {
      const def = cur._zod.def as { type: string; innerType?: z.core.$ZodType; in?: z.core.$ZodType; options?: z.core.$ZodType[]; discriminator?: string };
      if (def.innerType) cur = def.innerType;
      else if (def.type === 'pipe' && def.in) cur = def.in;
      else if (def.type === 'union' && def.discriminator && def.options) {
        const kind = raw !== null && typeof raw === 'object' ? (raw as Record<string, unknown>)[def.discriminator] : undefined;
        const match = def.options.find((o) => {
          const shape = (o._zod.def as { shape?: Record<string, z.core.$ZodType> }).shape;
          const lit = shape?.[def.discriminator as string]?._zod.def as { values?: unknown[] } | undefined;
          return lit?.values?.includes(kind);
        });
        if (!match) return cur;
        cur = match;
      } else return cur;
    }
  };
  let raw = root;
  schema = at(schema, raw);
  for (const p of path) {
    const def = schema._zod.def as { type: string; shape?: Record<string, z.core.$ZodType>; element?: z.core.$ZodType };
    const next: z.core.$ZodType | undefined = def.type === 'object' ? def.shape?.[String(p)] : def.type === 'array' ? def.element : undefined;
    if (!next) return undefined;
    raw = raw !== null && typeof raw === 'object' ? (raw as Record<PropertyKey, unknown>)[p] : undefined;
    schema = at(next, raw);
  }
  const shape = (schema._zod.def as { shape?: Record<string, unknown> }).shape;
  return shape ? Object.keys(shape) : undefined;
}
