/**
 * The node over an MQTT broker (mosquitto, EMQX, a cloud IoT hub), with the `mqtt` package: the
 * only file that imports it. For robots that do not run ROS 2 but can send JSON (a
 * microcontroller, a phone, a simulator in another language).
 *
 * ## Wire format
 *
 * - **Topics.** ROS topic `/joint_states` is MQTT topic `<prefix>/joint_states` (`/ns/cmd_vel` →
 *   `<prefix>/ns/cmd_vel`); with an empty prefix, `joint_states`. ROS names cannot hold MQTT's
 *   wildcards `+` and `#`, and these are rejected.
 * - **Payloads.** UTF-8 JSON of the ROS 2 message itself, field names as in the .msg files
 *   (`messages.ts`), no envelope: the type is implied by the topic, as in ROS. E.g. a JointState:
 *   `{"header":{"stamp":{"sec":1,"nanosec":5},"frame_id":""},"name":["j0"],"position":[0.1],"velocity":[],"effort":[]}`,
 *   a Twist: `{"linear":{"x":0.2,"y":0,"z":0},"angular":{"x":0,"y":0,"z":0.5}}`.
 *   JSON has no NaN or infinities: they are sent as `null`, and `null` in a float field of a known
 *   type is read back as NaN (as rosbridge does). `int64`/`uint64` values (`bigint`) are sent as
 *   decimal strings; typed arrays as JSON arrays.
 * - **Validation.** Payloads of the types in `messages.ts` are checked against the message's
 *   shape where they enter (zod schemas below); missing `header`, arrays and `layout` take the ROS
 *   defaults (zero stamp, empty). Anything else must be a JSON object and is passed on as parsed.
 *   A payload that is not JSON, or not of the subscribed type's shape, is counted and reported
 *   through the subscriber's `onError` (else the transport's), and never passed on.
 * - **QoS.** ROS reliability maps to MQTT QoS: `reliable` → 1 (at least once), `bestEffort` → 0;
 *   `topicQos` overrides it per topic. `transientLocal` durability → the MQTT retain flag, so a late
 *   subscriber gets the last value (e.g. an e-stop state).
 *
 * Connection: mqtt.js reconnects by itself every `reconnectPeriodMs` and resubscribes; reliable
 * messages published while offline are queued and sent on reconnection (up to `maxInFlight`
 * unacknowledged; beyond, new ones are dropped and counted), best-effort ones are dropped and
 * counted. `publish` never waits for the network.
 */
import type { IClientOptions, MqttClient } from 'mqtt';
import { z } from 'zod';
import { ValidationError, describe } from '../core/errors.js';
import { wallClockNs } from './loopback.js';
import { QOS_DEFAULT, type IncomingMessage, type QosProfile, type Transport, type Unsubscribe } from './transport.js';

/** MQTT QoS levels. */
export type MqttQos = 0 | 1 | 2;

/** Options of `new MqttTransport`. */
export interface MqttTransportOptions {
  /** Broker URL, e.g. `mqtt://localhost:1883` or `mqtts://broker:8883`. */
  url: string;
  /** Prefix of every MQTT topic. Default `'mbrl'`; `''` for none. */
  prefix?: string;
  /** MQTT QoS per ROS topic (e.g. `{ '/cmd_vel': 1 }`), overriding the one derived from the QoS profile. */
  topicQos?: Record<string, MqttQos>;
  /** MQTT client id. Default `mbrl-<random hex>` (mqtt.js's). */
  clientId?: string;
  /** How long `connect` waits for the broker. Default 5000. */
  connectTimeoutMs?: number;
  /** Milliseconds between reconnection attempts. Default 1000. */
  reconnectPeriodMs?: number;
  /** Most reliable (QoS ≥ 1) messages sent or queued and not yet acknowledged; beyond, new ones are dropped and counted. Default 1000. */
  maxInFlight?: number;
  /** Connection problems (lost connection, broker errors), and malformed payloads on a subscription without its own `onError`. Default `console.warn`. */
  onError?: (err: Error) => void;
  /** Clock of `nowNs` and `receivedNs`. Default `wallClockNs`. */
  clock?: () => bigint;
  /** Further mqtt.js options (credentials, TLS, keepalive), passed through. */
  clientOptions?: Partial<IClientOptions>;
}

/** Counters of an `MqttTransport`. */
export interface MqttTransportStats {
  /** Messages received on subscribed topics. */
  received: number;
  /** Messages handed to subscribers (one per subscriber). */
  delivered: number;
  /** Payloads that were not JSON or not of the subscribed type's shape (never passed on). */
  malformed: number;
  /** Calls to `publish`. */
  published: number;
  /** Published messages dropped: best effort while offline, or reliable beyond `maxInFlight`. */
  dropped: number;
  /** Times the connection came back after being lost. */
  reconnects: number;
  /** Whether the broker connection is up now. */
  connected: boolean;
}

interface Subscriber {
  type: string;
  onMessage: (msg: IncomingMessage<unknown>) => void;
  onError?: (err: Error) => void;
}

interface TopicEntry {
  rosTopic: string;
  qos: MqttQos;
  subscribers: Set<Subscriber>;
  malformed: number;
}

/**
 * The MQTT topic of a ROS topic under `prefix` (see the file comment).
 * @throws ValidationError for an empty name, `+`/`#`, or empty levels (`//`, a trailing `/`)
 */
export function mqttTopicOf(rosTopic: string, prefix: string): string {
  const where = 'mqttTopicOf';
  if (typeof rosTopic !== 'string' || rosTopic.replace(/^\/+/, '') === '') throw new ValidationError(where, 'topic', `expected a ROS topic name such as "/joint_states", got ${describe(rosTopic)}`);
  const name = rosTopic.replace(/^\//, '');
  if (/[+#]/.test(name) || name.split('/').some((level) => level === '')) {
    throw new ValidationError(where, 'topic', `expected a ROS topic name (no '+', '#' or empty levels), got ${JSON.stringify(rosTopic)}`);
  }
  if (/[+#]/.test(prefix) || prefix.startsWith('/') || prefix.endsWith('/')) {
    throw new ValidationError(where, 'prefix', `expected MQTT topic levels without wildcards or a leading/trailing '/', got ${JSON.stringify(prefix)}`);
  }
  return prefix === '' ? name : `${prefix}/${name}`;
}

/** JSON of a ROS-shaped message (see the file comment): typed arrays as arrays, bigint as decimal strings, non-finite numbers as null. */
export function encodeJsonPayload(data: unknown): string {
  return JSON.stringify(data, (_key, value: unknown) => {
    if (typeof value === 'bigint') return value.toString();
    if (ArrayBuffer.isView(value) && !(value instanceof DataView)) return Array.from(value as unknown as ArrayLike<number | bigint>, (v) => (typeof v === 'bigint' ? v.toString() : v));
    return value;
  });
}

// ---------------------------------------------------------------------------------------------
// Schemas of the message types in messages.ts: what a JSON payload must look like.

/** A float64 field: a number, or null for NaN (JSON has no NaN). */
const float = z.union([z.number(), z.null()]).transform((v) => v ?? Number.NaN);
const floats = z.array(float);
const fixedFloats = (n: number) => floats.length(n);
const int = z.number().int();
const time = z.object({ sec: int, nanosec: int.min(0).max(999_999_999) });
const header = z.object({ stamp: time, frame_id: z.string().default('') }).default({ stamp: { sec: 0, nanosec: 0 }, frame_id: '' });
const vector3 = z.object({ x: float, y: float, z: float });
const quaternion = z.object({ x: float, y: float, z: float, w: float });
const twist = z.object({ linear: vector3, angular: vector3 });
const keyValue = z.object({ key: z.string(), value: z.string() });

/** zod schemas by ROS 2 message type. */
export const MESSAGE_SCHEMAS: Readonly<Record<string, z.ZodType>> = {
  'sensor_msgs/msg/JointState': z.object({ header, name: z.array(z.string()).default([]), position: floats.default([]), velocity: floats.default([]), effort: floats.default([]) }),
  'sensor_msgs/msg/Imu': z.object({
    header,
    orientation: quaternion,
    orientation_covariance: fixedFloats(9),
    angular_velocity: vector3,
    angular_velocity_covariance: fixedFloats(9),
    linear_acceleration: vector3,
    linear_acceleration_covariance: fixedFloats(9),
  }),
  'geometry_msgs/msg/Twist': twist,
  'geometry_msgs/msg/TwistStamped': z.object({ header, twist }),
  'nav_msgs/msg/Odometry': z.object({
    header,
    child_frame_id: z.string().default(''),
    pose: z.object({ pose: z.object({ position: vector3, orientation: quaternion }), covariance: fixedFloats(36) }),
    twist: z.object({ twist, covariance: fixedFloats(36) }),
  }),
  'std_msgs/msg/Float64': z.object({ data: float }),
  'std_msgs/msg/Float64MultiArray': z.object({
    layout: z.object({ dim: z.array(z.object({ label: z.string(), size: int.min(0), stride: int.min(0) })), data_offset: int.min(0) }).default({ dim: [], data_offset: 0 }),
    data: floats,
  }),
  'std_msgs/msg/Bool': z.object({ data: z.boolean() }),
  'trajectory_msgs/msg/JointTrajectory': z.object({
    header,
    joint_names: z.array(z.string()),
    points: z.array(
      z.object({
        positions: floats.default([]),
        velocities: floats.default([]),
        accelerations: floats.default([]),
        effort: floats.default([]),
        time_from_start: time,
      }),
    ),
  }),
  'diagnostic_msgs/msg/DiagnosticArray': z.object({
    header,
    status: z.array(z.object({ level: int.min(0).max(255), name: z.string(), message: z.string(), hardware_id: z.string().default(''), values: z.array(keyValue).default([]) })),
  }),
};

/**
 * Parses and checks one payload as `type`.
 * @returns the message, or the problem (for the error report)
 */
export function decodeJsonPayload(payload: Uint8Array | string, type: string): { ok: true; data: unknown } | { ok: false; problem: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(typeof payload === 'string' ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8'));
  } catch (err) {
    return { ok: false, problem: `not JSON (${(err as Error).message})` };
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return { ok: false, problem: `expected a JSON object, got ${describe(raw)}` };
  const schema = MESSAGE_SCHEMAS[type];
  if (schema === undefined) return { ok: true, data: raw };
  const r = schema.safeParse(raw);
  if (r.success) return { ok: true, data: r.data };
  const issue = r.error.issues[0];
  return { ok: false, problem: `not a ${type}: at ${issue.path.length > 0 ? issue.path.join('.') : '(root)'}: ${issue.message}` };
}

/**
 * A `Transport` over an MQTT broker (see the file comment for topics, payloads and QoS).
 *
 * @example
 * const t = new MqttTransport({ url: 'mqtt://localhost:1883', prefix: 'robot1' });
 * await t.connect();
 * t.subscribe<JointState>('/joint_states', 'sensor_msgs/msg/JointState', (m) => use(m.data), { qos: QOS_SENSOR_DATA, onError: warn });
 * t.publish('/cmd_vel', 'geometry_msgs/msg/Twist', { linear: { x: 0.2, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0.1 } });
 */
export class MqttTransport implements Transport {
  readonly kind = 'mqtt';
  readonly url: string;
  readonly prefix: string;
  #options: MqttTransportOptions;
  #clock: () => bigint;
  #client: MqttClient | undefined;
  #topics = new Map<string, TopicEntry>();
  #inFlight = 0;
  #everDisconnected = false;
  #closed = false;
  #stats: Omit<MqttTransportStats, 'connected'> = { received: 0, delivered: 0, malformed: 0, published: 0, dropped: 0, reconnects: 0 };

  constructor(options: MqttTransportOptions) {
    const where = 'MqttTransport';
    if (typeof options?.url !== 'string' || !/^[a-z+]+:\/\//.test(options.url)) {
      throw new ValidationError(where, 'url', `expected a broker URL such as "mqtt://localhost:1883", got ${describe(options?.url)}`);
    }
    for (const [topic, q] of Object.entries(options.topicQos ?? {})) {
      if (q !== 0 && q !== 1 && q !== 2) throw new ValidationError(where, `topicQos[${JSON.stringify(topic)}]`, `expected 0, 1 or 2, got ${describe(q)}`);
    }
    const posInt = (key: 'connectTimeoutMs' | 'reconnectPeriodMs' | 'maxInFlight'): void => {
      const v = options[key];
      if (v !== undefined && !(Number.isInteger(v) && v > 0)) throw new ValidationError(where, key, `expected a positive integer, got ${describe(v)}`);
    };
    posInt('connectTimeoutMs');
    posInt('reconnectPeriodMs');
    posInt('maxInFlight');
    this.url = options.url;
    this.prefix = options.prefix ?? 'mbrl';
    mqttTopicOf('/check', this.prefix);
    this.#options = options;
    this.#clock = options.clock ?? wallClockNs;
  }

  /** Counters (a copy). */
  get stats(): Readonly<MqttTransportStats> {
    return { ...this.#stats, connected: this.#client?.connected ?? false };
  }

  /** Malformed payloads received on one ROS topic. */
  malformedOn(rosTopic: string): number {
    return this.#topics.get(mqttTopicOf(rosTopic, this.prefix))?.malformed ?? 0;
  }

  /**
   * Connects to the broker and subscribes the topics subscribed so far.
   * @throws Error naming the URL when the broker cannot be reached within `connectTimeoutMs`
   */
  async connect(): Promise<void> {
    if (this.#closed) throw new Error(`MqttTransport(${this.url}).connect: the transport is closed`);
    if (this.#client !== undefined) return;
    const mqtt = await import('mqtt');
    const timeoutMs = this.#options.connectTimeoutMs ?? 5000;
    const client = mqtt.connect(this.url, {
      reconnectPeriod: this.#options.reconnectPeriodMs ?? 1000,
      connectTimeout: timeoutMs,
      // Best-effort messages are not worth queueing while offline: a stale sensor reading or command is dropped.
      queueQoSZero: false,
      resubscribe: true,
      ...(this.#options.clientId !== undefined ? { clientId: this.#options.clientId } : {}),
      ...this.#options.clientOptions,
    });
    await new Promise<void>((resolve, reject) => {
      const fail = (why: string): void => {
        clearTimeout(timer);
        client.removeListener('connect', ok);
        client.removeListener('error', onErr);
        client.end(true);
        reject(new Error(`MqttTransport.connect: could not reach the broker at ${this.url}: ${why}`));
      };
      const timer = setTimeout(() => fail(`no connection within ${timeoutMs} ms`), timeoutMs);
      const ok = (): void => {
        clearTimeout(timer);
        client.removeListener('error', onErr);
        resolve();
      };
      const onErr = (err: Error): void => fail(err.message);
      client.once('connect', ok);
      client.once('error', onErr);
    });
    this.#client = client;
    client.on('message', (topic, payload) => this.#onMessage(topic, payload));
    client.on('error', (err) => this.#report(new Error(`MqttTransport(${this.url}): ${err.message}`)));
    client.on('offline', () => {
      this.#everDisconnected = true;
      if (!this.#closed) this.#report(new Error(`MqttTransport(${this.url}): connection to the broker lost; reconnecting every ${this.#options.reconnectPeriodMs ?? 1000} ms`));
    });
    client.on('close', () => {
      this.#everDisconnected = true;
    });
    client.on('connect', () => {
      if (this.#everDisconnected) this.#stats.reconnects++;
    });
    for (const [mqttTopic, entry] of this.#topics) this.#mqttSubscribe(mqttTopic, entry.qos);
  }

  subscribe<T = unknown>(
    topic: string,
    type: string,
    onMessage: (msg: IncomingMessage<T>) => void,
    options: { qos?: QosProfile; onError?: (err: Error) => void } = {},
  ): Unsubscribe {
    if (this.#closed) throw new Error(`MqttTransport(${this.url}).subscribe(${topic}): the transport is closed`);
    if (typeof type !== 'string' || type === '') throw new ValidationError(`MqttTransport.subscribe(${topic})`, 'type', `expected a ROS 2 message type, got ${describe(type)}`);
    const mqttTopic = mqttTopicOf(topic, this.prefix);
    const sub: Subscriber = { type, onMessage: onMessage as (msg: IncomingMessage<unknown>) => void, onError: options.onError };
    let entry = this.#topics.get(mqttTopic);
    if (entry === undefined) {
      entry = { rosTopic: topic, qos: this.#qosFor(topic, options.qos), subscribers: new Set(), malformed: 0 };
      this.#topics.set(mqttTopic, entry);
      if (this.#client !== undefined) this.#mqttSubscribe(mqttTopic, entry.qos);
    }
    entry.subscribers.add(sub);
    const e = entry;
    return () => {
      if (!e.subscribers.delete(sub) || e.subscribers.size > 0) return;
      this.#topics.delete(mqttTopic);
      if (this.#client !== undefined && !this.#closed) this.#client.unsubscribe(mqttTopic);
    };
  }

  /**
   * Sends `data` as JSON (see the file comment). Returns at once; mqtt.js sends in the background.
   * @throws Error if not connected yet (call `connect` first) or closed
   */
  publish(topic: string, type: string, data: unknown, options: { qos?: QosProfile } = {}): void {
    const client = this.#client;
    if (client === undefined || this.#closed) throw new Error(`MqttTransport(${this.url}).publish(${topic}, ${type}): ${this.#closed ? 'the transport is closed' : 'not connected; call connect() first'}`);
    const mqttTopic = mqttTopicOf(topic, this.prefix);
    const qos = this.#qosFor(topic, options.qos);
    const retain = options.qos?.durability === 'transientLocal';
    this.#stats.published++;
    if (qos > 0) {
      if (this.#inFlight >= (this.#options.maxInFlight ?? 1000)) {
        this.#stats.dropped++;
        return;
      }
      this.#inFlight++;
    }
    client.publish(mqttTopic, encodeJsonPayload(data), { qos, retain }, (err) => {
      if (qos > 0) this.#inFlight--;
      if (err) this.#stats.dropped++;
    });
  }

  nowNs(): bigint {
    return this.#clock();
  }

  /** Disconnects (sending what is queued if connected) and drops every subscription. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#topics.clear();
    const client = this.#client;
    if (client === undefined) return;
    // Force when offline: a graceful end would wait for a broker that may never come back.
    await client.endAsync(!client.connected);
  }

  #qosFor(topic: string, profile: QosProfile | undefined): MqttQos {
    const override = this.#options.topicQos?.[topic];
    if (override !== undefined) return override;
    return (profile ?? QOS_DEFAULT).reliability === 'reliable' ? 1 : 0;
  }

  #mqttSubscribe(mqttTopic: string, qos: MqttQos): void {
    this.#client!.subscribe(mqttTopic, { qos }, (err) => {
      if (err) this.#report(new Error(`MqttTransport(${this.url}).subscribe(${mqttTopic}): the broker refused: ${err.message}`));
    });
  }

  #onMessage(mqttTopic: string, payload: Uint8Array): void {
    const entry = this.#topics.get(mqttTopic);
    if (entry === undefined) return;
    this.#stats.received++;
    const receivedNs = this.#clock();
    const decoded = new Map<string, ReturnType<typeof decodeJsonPayload>>();
    let counted = false;
    for (const sub of [...entry.subscribers]) {
      let d = decoded.get(sub.type);
      if (d === undefined) decoded.set(sub.type, (d = decodeJsonPayload(payload, sub.type)));
      if (!d.ok) {
        if (!counted) {
          this.#stats.malformed++;
          entry.malformed++;
          counted = true;
        }
        const err = new ValidationError(
          `MqttTransport(${this.url}).subscribe(${entry.rosTopic})`,
          'payload',
          `malformed ${sub.type} on MQTT topic ${mqttTopic}: ${d.problem}; dropped (${entry.malformed} malformed on this topic so far)`,
        );
        if (sub.onError) sub.onError(err);
        else this.#report(err);
        continue;
      }
      try {
        // Each subscriber gets its own copy when several share a type.
        sub.onMessage({ topic: entry.rosTopic, type: sub.type, data: entry.subscribers.size > 1 ? structuredClone(d.data) : d.data, receivedNs });
        this.#stats.delivered++;
      } catch (err) {
        const e = err instanceof Error ? err : new Error(String(err));
        if (sub.onError) sub.onError(e);
        else this.#report(e);
      }
    }
  }

  #report(err: Error): void {
    if (this.#options.onError) this.#options.onError(err);
    else console.warn(`[mbrl] ${err.message}`);
  }
}
