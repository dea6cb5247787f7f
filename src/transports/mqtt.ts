/**
 * The node over an MQTT broker (mosquitto, EMQX, a cloud IoT hub), with the `mqtt` package: the
 * only file that imports it. For robots that do not run ROS 2 but can send JSON or a few packed
 * doubles (a microcontroller, a phone, a simulator in another language). docs/mqtt.md has the
 * whole protocol for whoever writes the robot's side.
 *
 * ## Wire format
 *
 * - **Topics.** ROS topic `/joint_states` is MQTT topic `<prefix>/joint_states` (`/ns/cmd_vel` →
 *   `<prefix>/ns/cmd_vel`); with an empty prefix, `joint_states`. ROS names cannot hold MQTT's
 *   wildcards `+` and `#`, and these are rejected.
 * - **Payloads** (`payload: 'json'`, the default). UTF-8 JSON of the ROS 2 message itself, field
 *   names as in the .msg files (`messages.ts`), no envelope: the type is implied by the topic, as
 *   in ROS. E.g. a JointState:
 *   `{"header":{"stamp":{"sec":1,"nanosec":5},"frame_id":""},"name":["j0"],"position":[0.1],"velocity":[],"effort":[]}`,
 *   a Twist: `{"linear":{"x":0.2,"y":0,"z":0},"angular":{"x":0,"y":0,"z":0.5}}`.
 *   JSON has no NaN or infinities: they are sent as `null`, and `null` in a float field of a known
 *   type is read back as NaN (as rosbridge does). `int64`/`uint64` values (`bigint`) are sent as
 *   decimal strings; typed arrays as JSON arrays.
 * - **Binary payloads** (`payload: 'binary'`). The types of `messages.ts` travel in the compact
 *   layout of `mqttBinary.ts` (a 16-byte little-endian header, the array lengths, float64 arrays,
 *   then strings); any other type still as JSON. Both ends must agree: a JSON payload where the
 *   binary layout is expected (or the reverse) is malformed.
 * - **Validation.** A payload longer than `maxPayloadBytes` (default 1 MiB) is dropped unread,
 *   counted as `tooLarge`: decoding runs on the node's thread, between control ticks, and one
 *   11 MB array cost it 1.6–2.8 s of ticks. Payloads of the types in `messages.ts` are then
 *   checked against the message's shape where they enter (`mqttJson.ts`, stopping at the first
 *   problem, or the binary layout's rules); missing `header`, arrays and `layout` take the ROS
 *   defaults (zero stamp, empty) in JSON. Anything else must be a JSON object and is passed on as
 *   parsed. A payload that does not decode, or not as the subscribed type, is counted as
 *   `malformed`. Either way it is reported through the subscriber's `onError` (else the
 *   transport's) as a `ValidationError` whose `dropReason` says which, and never passed on.
 * - **QoS.** ROS reliability maps to MQTT QoS: `reliable` → 1 (at least once), `bestEffort` → 0;
 *   `topicQos` overrides it per topic. `transientLocal` durability → the MQTT retain flag, so a late
 *   subscriber gets the last value (e.g. an e-stop state).
 * - **Status and last will.** Unless `statusTopic` is null, the transport announces itself,
 *   retained and at QoS 1, on `<prefix>/mbrl/status/<clientId>` (always JSON, `MqttStatus`):
 *   `{"state":"online","clientId":"mbrl-node","stamp":{"sec":…,"nanosec":…}}` on every
 *   connection; `close()` publishes `{"state":"offline","reason":"closed",…}` before it
 *   disconnects; and the broker itself publishes the will `{"state":"offline","reason":"lost",…}`
 *   (stamped when that connection was opened) when the connection dies without a DISCONNECT: a
 *   crash, a `kill -9`, a cut cable noticed after 1.5 × `keepaliveSec`.
 *
 * ## Connection
 *
 * A lost connection is retried with capped exponential backoff and jitter (`mqttBackoff.ts`:
 * 250 ms, 500 ms, 1 s, … up to 10 s by default, back to 250 ms once connected); subscriptions are
 * renewed on each new connection. `publish` never waits for the network.
 *
 * **Nothing is carried across an outage** (unless a topic is listed in `queueOffline`). What the
 * node publishes is state that the next message supersedes: an action every control period,
 * diagnostics every few seconds, the status on every connection. Sent late, an action is a stale
 * command, and a queue of them is a burst of stale commands that the robot would execute when
 * the broker comes back. So:
 * - a message published while disconnected is dropped and counted (`droppedOffline`); the first
 *   publish after the reconnection (the node's next tick) carries fresh data;
 * - reliable (QoS ≥ 1) messages the broker had not acknowledged when the connection died (sent
 *   into a dead link during the 1.5 × `keepaliveSec` it may take to notice) are discarded and
 *   counted (`droppedUnacked`), where mqtt.js would resend them on reconnection.
 * QoS 1 thus means: acknowledged by the broker within one connection (`maxInFlight` bounds the
 * unacknowledged ones), never resent across connections. Queueing is harmless only for messages
 * whose every copy matters and whose age does not (an event log, an audit trail; not a command,
 * not a reading, not an episode boundary, which is wrong once late): list such ROS topics in
 * `queueOffline`, and their reliable messages are kept, up to `maxInFlight` unacknowledged, and
 * sent in order on reconnection. The node lists none.
 *
 * **Latency.** The socket to the broker is set to no-delay (`TCP_NODELAY`, for `mqtt://` and
 * `mqtts://`; mqtt.js does not set it): without it Nagle's algorithm holds a small message back
 * until the previous one is acknowledged: a control loop's reading reached the node after p50
 * 23 ms / p99 39 ms on loopback, against 0.6 / 5.4 ms with no-delay on every socket. The broker
 * must do the same for the messages it forwards: mosquitto's `set_tcp_nodelay true`
 * (docs/mqtt.md, "Broker settings", has the measurement).
 *
 * TLS: an `mqtts://` (or `wss://`) URL, with `tls.caFile` for a broker whose certificate a private
 * CA signed, `tls.certFile` and `tls.keyFile` for a client certificate. `username` and `password`
 * for brokers with accounts; the password is never logged or put in an error message. A broker
 * that refuses the TLS handshake or the credentials makes `connect` reject at once, with the
 * reason.
 */
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { Rng } from '../core/rng.js';
import { ValidationError, describe } from '../core/errors.js';
import { wallClockNs } from './loopback.js';
import { timeFromNs, type Time } from './messages.js';
import { backoffRng, makeMqttBackoff, reconnectDelayMs, type MqttBackoff } from './mqttBackoff.js';
import { decodeBinaryPayload, encodeBinaryPayload, hasBinaryLayout } from './mqttBinary.js';
import { decodeJsonPayload, encodeJsonPayload } from './mqttJson.js';
import { QOS_DEFAULT, type IncomingMessage, type QosProfile, type Transport, type Unsubscribe } from './transport.js';

export { decodeJsonPayload, encodeJsonPayload, MAX_JSON_DEPTH } from './mqttJson.js';

/** Default `maxPayloadBytes`: 1 MiB, far above any sensor message the node reads (a JointState of 30 joints with positions, velocities and efforts is ~2.2 kB of JSON). */
export const MQTT_MAX_PAYLOAD_BYTES = 1_048_576;

/** MQTT QoS levels. */
export type MqttQos = 0 | 1 | 2;

/** How messages of the types in `messages.ts` are written on the wire (see the file comment). */
export type MqttPayloadFormat = 'json' | 'binary';

/** TLS settings of an `mqtts://` or `wss://` connection: files, read when `connect` is called. */
export interface MqttTlsOptions {
  /** PEM file of the CA that signed the broker's certificate. Default: Node's built-in public CAs. */
  caFile?: string;
  /** PEM file of this client's certificate, for brokers that require one (`require_certificate true`). Needs `keyFile`. */
  certFile?: string;
  /** PEM file of this client's private key (unencrypted). */
  keyFile?: string;
  /** Whether a broker certificate that does not verify (unknown CA, wrong host name, expired) is refused. Default true; false only for a test bench. */
  rejectUnauthorized?: boolean;
}

/** Options of `new MqttTransport`. */
export interface MqttTransportOptions {
  /** Broker URL, e.g. `mqtt://localhost:1883` or `mqtts://broker:8883`. */
  url: string;
  /** Prefix of every MQTT topic. Default `'mbrl'`; `''` for none. */
  prefix?: string;
  /** MQTT QoS per ROS topic (e.g. `{ '/cmd_vel': 1 }`), overriding the one derived from the QoS profile. */
  topicQos?: Record<string, MqttQos>;
  /** MQTT client id; must differ between the clients of a broker. Default `mbrl-<8 random hex digits>`. */
  clientId?: string;
  /** `json` (default) or `binary` (see the file comment). */
  payload?: MqttPayloadFormat;
  /** How long `connect` waits for the broker, and `close` for its last acknowledgements. Default 5000. */
  connectTimeoutMs?: number;
  /** Reconnection backoff (`MQTT_BACKOFF_DEFAULTS`: 250 ms doubling up to 10 s, jitter 0.2). */
  reconnect?: Partial<MqttBackoff>;
  /** @deprecated the same as `reconnect.initialDelayMs` (this was a fixed period before backoff). */
  reconnectPeriodMs?: number;
  /** MQTT keepalive, seconds: the broker declares the connection dead (and publishes the will) after 1.5 × this without a packet. 0 disables it. Default 10. */
  keepaliveSec?: number;
  /** ROS-style name of the status topic (under the prefix like every topic), or null for no status and no will. Default `/mbrl/status/<clientId>`. */
  statusTopic?: string | null;
  /** User name for brokers with accounts. */
  username?: string;
  /** Password of `username`. Never logged nor shown in errors. Take it from a secret store, never from a config file. */
  password?: string;
  /** TLS settings; needs an `mqtts://` or `wss://` URL. */
  tls?: MqttTlsOptions;
  /** Most reliable (QoS ≥ 1) messages sent or queued and not yet acknowledged; beyond, new ones are dropped and counted. Default 1000. */
  maxInFlight?: number;
  /**
   * Largest payload decoded, bytes; a longer one is dropped unread and counted (`tooLarge`).
   * Default `MQTT_MAX_PAYLOAD_BYTES` (1 MiB). Decoding blocks the node's thread: JSON costs about
   * 10–65 ms per MiB here, so a fast loop wants this near its largest real message.
   */
  maxPayloadBytes?: number;
  /**
   * ROS topics whose reliable (QoS ≥ 1) messages are kept while offline and sent, in order, on
   * reconnection: events whose every copy matters and whose age does not (see the file comment).
   * Default none: every other message published while offline is dropped, and unacknowledged
   * ones are not resent. Never list a command or sensor topic.
   */
  queueOffline?: readonly string[];
  /** Connection problems (lost connection, broker errors), and malformed payloads on a subscription without its own `onError`. Default `console.warn`. */
  onError?: (err: Error) => void;
  /** Clock of `nowNs`, `receivedNs` and status stamps. Default `wallClockNs`. */
  clock?: () => bigint;
  /** Further mqtt.js options, passed through last (they override the above). */
  clientOptions?: Partial<IClientOptions>;
}

/** Counters of an `MqttTransport`. */
export interface MqttTransportStats {
  /** Messages received on subscribed topics. */
  received: number;
  /** Messages handed to subscribers (one per subscriber). */
  delivered: number;
  /** Payloads that did not decode, or not as the subscribed type (never passed on). */
  malformed: number;
  /** Payloads longer than `maxPayloadBytes`, dropped unread (not counted as `malformed`). */
  tooLarge: number;
  /** Calls to `publish`. */
  published: number;
  /** Published messages not delivered to the broker, for any reason: the three below, and send errors. */
  dropped: number;
  /** Of `dropped`: published while disconnected (not queued, see the file comment). */
  droppedOffline: number;
  /** Of `dropped`: reliable messages unacknowledged when the connection was lost, discarded instead of resent. */
  droppedUnacked: number;
  /** Of `dropped`: reliable messages beyond `maxInFlight` unacknowledged ones. */
  droppedBacklog: number;
  /** Reliable messages sent (or, for `queueOffline` topics, queued) and not yet acknowledged, now. */
  inFlight: number;
  /** Times the connection came back after being lost. */
  reconnects: number;
  /** Reconnection attempts made, successful or not. */
  reconnectAttempts: number;
  /** The wait before the next reconnection attempt, ms (while connected: the first wait after a loss). */
  reconnectDelayMs: number;
  /** Milliseconds spent disconnected since the first connection, the current outage included. */
  offlineMs: number;
  /** Whether the broker connection is up now. */
  connected: boolean;
}

/** The JSON announced on the status topic (see the file comment). */
export interface MqttStatus {
  state: 'online' | 'offline';
  /** `offline` only: `closed` by `close()`, or `lost` (the will, published by the broker). */
  reason?: 'closed' | 'lost';
  clientId: string;
  /** When it was announced (the will: when the connection it covers was opened), on the transport's clock. */
  stamp: Time;
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
  tooLarge: number;
}

/** Why the transport dropped a received payload: longer than `maxPayloadBytes`, or not decodable as the subscribed type. */
export type MqttPayloadDropReason = 'tooLarge' | 'malformed';

/**
 * A received payload the transport dropped, as reported to the subscriber's `onError`; its
 * `dropReason` tells the pipeline under which reason to count it (`countUndecodable`).
 */
export class MqttPayloadError extends ValidationError {
  constructor(
    where: string,
    message: string,
    readonly dropReason: MqttPayloadDropReason,
  ) {
    super(where, 'payload', message);
    this.name = 'MqttPayloadError';
  }
}

/** The error a discarded unacknowledged message's send callback gets (see the file comment). */
class DiscardedOnLoss extends Error {}

/** `decodeMqttPayload`'s answer: the message, or why and what was wrong. */
export type DecodedPayload = { ok: true; data: unknown } | { ok: false; reason: MqttPayloadDropReason; problem: string };

/**
 * One received payload as `type`, the way the transport reads it (see the file comment): longer
 * than `maxPayloadBytes`, dropped unread; else decoded in `format` (the binary layout for the
 * types that have one), stopping at the first problem. Never throws: a decoder bug counts as a
 * malformed payload.
 * @param maxPayloadBytes default `MQTT_MAX_PAYLOAD_BYTES` (1 MiB)
 * @example decodeMqttPayload(Buffer.from('{"data":0.5}'), 'std_msgs/msg/Float64', 'json') // { ok: true, data: { data: 0.5 } }
 */
export function decodeMqttPayload(payload: Uint8Array, type: string, format: MqttPayloadFormat, maxPayloadBytes = MQTT_MAX_PAYLOAD_BYTES): DecodedPayload {
  // Before any parsing: what a payload may cost the node's thread is bounded by its length.
  if (payload.byteLength > maxPayloadBytes) return { ok: false, reason: 'tooLarge', problem: `${payload.byteLength} bytes, more than maxPayloadBytes (${maxPayloadBytes})` };
  let d: { ok: true; data: unknown } | { ok: false; problem: string };
  try {
    d = format === 'binary' && hasBinaryLayout(type) ? decodeBinaryPayload(payload, type) : decodeJsonPayload(payload, type);
  } catch (err) {
    d = { ok: false, problem: `the decoder failed (${err instanceof Error ? err.message : String(err)})` };
  }
  return d.ok ? d : { ok: false, reason: 'malformed', problem: d.problem };
}

/** Node's codes for a broker certificate that does not verify, and mqtt.js's own. */
const SERVER_CERT_ERRORS = /^(SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_|CERT_|ERR_TLS_CERT_ALTNAME_INVALID|not authorized$)/;

/**
 * Turns Nagle's algorithm off on the socket under an mqtt.js stream (see the file comment): a
 * `net.Socket` (`mqtt://`) or `tls.TLSSocket` (`mqtts://`, which passes it to its TCP socket).
 * WebSocket streams (`ws://`, `wss://`) have no such method here and are left as they are.
 */
function noDelay(stream: unknown): void {
  const socket = stream as { setNoDelay?: (on: boolean) => unknown } | undefined;
  if (typeof socket?.setNoDelay === 'function') socket.setNoDelay(true);
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

/**
 * A `Transport` over an MQTT broker (see the file comment for topics, payloads, status and
 * reconnection).
 *
 * @example
 * const t = new MqttTransport({ url: 'mqtts://broker:8883', prefix: 'robot1', tls: { caFile: 'ca.pem' }, username: 'robot1', password: process.env.MQTT_PASSWORD });
 * await t.connect();
 * t.subscribe<JointState>('/joint_states', 'sensor_msgs/msg/JointState', (m) => use(m.data), { qos: QOS_SENSOR_DATA, onError: warn });
 * t.publish('/cmd_vel', 'geometry_msgs/msg/Twist', { linear: { x: 0.2, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0.1 } });
 */
export class MqttTransport implements Transport {
  readonly kind = 'mqtt';
  readonly url: string;
  readonly prefix: string;
  readonly clientId: string;
  /** The MQTT topic of the status and the will, or null for none. */
  readonly statusTopic: string | null;
  readonly payload: MqttPayloadFormat;
  #options: MqttTransportOptions;
  #backoff: MqttBackoff;
  #rng: Rng;
  #clock: () => bigint;
  #client: MqttClient | undefined;
  #topics = new Map<string, TopicEntry>();
  #inFlight = 0;
  #attempt = 0;
  /** `performance.now()` when the current outage began; undefined while connected or before the first connection. */
  #offlineSince: number | undefined;
  #offlineMs = 0;
  #everConnected = false;
  #closed = false;
  #maxPayloadBytes: number;
  /** The MQTT topics of `queueOffline`. */
  #queueOffline: ReadonlySet<string>;
  #stats = { received: 0, delivered: 0, malformed: 0, tooLarge: 0, published: 0, dropped: 0, droppedOffline: 0, droppedUnacked: 0, droppedBacklog: 0, reconnects: 0, reconnectAttempts: 0 };

  constructor(options: MqttTransportOptions) {
    const where = 'MqttTransport';
    if (typeof options?.url !== 'string' || !/^[a-z+]+:\/\//.test(options.url)) {
      throw new ValidationError(where, 'url', `expected a broker URL such as "mqtt://localhost:1883", got ${describe(options?.url)}`);
    }
    for (const [topic, q] of Object.entries(options.topicQos ?? {})) {
      if (q !== 0 && q !== 1 && q !== 2) throw new ValidationError(where, `topicQos[${JSON.stringify(topic)}]`, `expected 0, 1 or 2, got ${describe(q)}`);
    }
    const posInt = (key: 'connectTimeoutMs' | 'reconnectPeriodMs' | 'maxInFlight' | 'maxPayloadBytes'): void => {
      const v = options[key];
      if (v !== undefined && !(Number.isInteger(v) && v > 0)) throw new ValidationError(where, key, `expected a positive integer, got ${describe(v)}`);
    };
    posInt('connectTimeoutMs');
    posInt('reconnectPeriodMs');
    posInt('maxInFlight');
    posInt('maxPayloadBytes');
    if (options.queueOffline !== undefined && !Array.isArray(options.queueOffline)) throw new ValidationError(where, 'queueOffline', `expected a list of ROS topic names, got ${describe(options.queueOffline)}`);
    const k = options.keepaliveSec;
    if (k !== undefined && !(Number.isInteger(k) && k >= 0 && k <= 65535)) throw new ValidationError(where, 'keepaliveSec', `expected a whole number of seconds 0 … 65535, got ${describe(k)}`);
    if (options.payload !== undefined && options.payload !== 'json' && options.payload !== 'binary') throw new ValidationError(where, 'payload', `expected "json" or "binary", got ${describe(options.payload)}`);
    const period = options.reconnectPeriodMs;
    this.#backoff = makeMqttBackoff(
      { ...(period !== undefined ? { initialDelayMs: period, maxDelayMs: Math.max(period, options.reconnect?.maxDelayMs ?? 10_000) } : {}), ...options.reconnect },
      where,
    );
    if (options.tls !== undefined) {
      if (!/^(mqtts|wss):\/\//.test(options.url)) throw new ValidationError(where, 'tls', `TLS settings need an mqtts:// or wss:// URL, got ${JSON.stringify(options.url)}`);
      if ((options.tls.certFile === undefined) !== (options.tls.keyFile === undefined)) {
        throw new ValidationError(where, options.tls.certFile === undefined ? 'tls.certFile' : 'tls.keyFile', 'a client certificate needs both tls.certFile and tls.keyFile');
      }
    }
    if (options.password !== undefined && options.username === undefined) throw new ValidationError(where, 'username', 'a password was given without a username; MQTT sends a password only with a username');
    this.url = options.url;
    this.prefix = options.prefix ?? 'mbrl';
    mqttTopicOf('/check', this.prefix);
    this.clientId = options.clientId ?? `mbrl-${randomBytes(4).toString('hex')}`;
    if (typeof this.clientId !== 'string' || this.clientId === '') throw new ValidationError(where, 'clientId', `expected a non-empty string, got ${describe(this.clientId)}`);
    const status = options.statusTopic === undefined ? `/mbrl/status/${this.clientId}` : options.statusTopic;
    try {
      this.statusTopic = status === null ? null : mqttTopicOf(status, this.prefix);
    } catch (err) {
      const why = options.statusTopic === undefined ? `the default /mbrl/status/<clientId> does not make a topic of client id ${JSON.stringify(this.clientId)}; set statusTopic (or null for none)` : (err as Error).message;
      throw new ValidationError(where, 'statusTopic', why);
    }
    this.payload = options.payload ?? 'json';
    this.#maxPayloadBytes = options.maxPayloadBytes ?? MQTT_MAX_PAYLOAD_BYTES;
    this.#queueOffline = new Set(
      (options.queueOffline ?? []).map((topic, i) => {
        try {
          return mqttTopicOf(topic, this.prefix);
        } catch (err) {
          throw new ValidationError(where, `queueOffline[${i}]`, (err as Error).message);
        }
      }),
    );
    this.#options = options;
    this.#clock = options.clock ?? wallClockNs;
    this.#rng = backoffRng(this.clientId);
  }

  /** Counters (a copy). */
  get stats(): Readonly<MqttTransportStats> {
    const outage = this.#offlineSince === undefined ? 0 : performance.now() - this.#offlineSince;
    return {
      ...this.#stats,
      inFlight: this.#inFlight,
      reconnectDelayMs: this.#client?.options.reconnectPeriod ?? reconnectDelayMs(0, this.#backoff, 0),
      offlineMs: Math.round(this.#offlineMs + outage),
      connected: this.#client?.connected ?? false,
    };
  }

  /** Malformed payloads received on one ROS topic. */
  malformedOn(rosTopic: string): number {
    return this.#topics.get(mqttTopicOf(rosTopic, this.prefix))?.malformed ?? 0;
  }

  /**
   * Connects to the broker, announces `online` on the status topic and subscribes the topics
   * subscribed so far.
   * @throws ValidationError naming the TLS file that cannot be read; Error naming the URL and the
   *   reason when the broker cannot be reached within `connectTimeoutMs`, refuses the TLS
   *   handshake (e.g. a certificate the CA in `tls.caFile` did not sign) or the credentials
   */
  async connect(): Promise<void> {
    if (this.#closed) throw new Error(`MqttTransport(${this.url}).connect: the transport is closed`);
    if (this.#client !== undefined) return;
    const tls = this.#readTls();
    const mqtt = await import('mqtt');
    const timeoutMs = this.#options.connectTimeoutMs ?? 5000;
    const o = this.#options;
    const client = mqtt.connect(this.url, {
      clientId: this.clientId,
      // mqtt.js waits `reconnectPeriod` before each attempt and reads it anew every time: the
      // 'reconnect' and 'connect' handlers below keep it at the next wait of the backoff.
      reconnectPeriod: this.#nextDelay(0),
      // A broker that refuses a reconnection (e.g. restarting, "server unavailable") is retried, with backoff.
      reconnectOnConnackError: true,
      connectTimeout: timeoutMs,
      keepalive: o.keepaliveSec ?? 10,
      // `publish` drops what is published offline before mqtt.js sees it (see the file comment);
      // this keeps mqtt.js from queueing a best-effort message in any case.
      queueQoSZero: false,
      resubscribe: true,
      ...(this.statusTopic !== null ? { will: { topic: this.statusTopic, payload: this.#statusPayload('offline', 'lost'), qos: 1 as const, retain: true } } : {}),
      ...(o.username !== undefined ? { username: o.username } : {}),
      ...(o.password !== undefined ? { password: o.password } : {}),
      ...tls,
      ...o.clientOptions,
    });
    // mqtt.connect opened the first socket already (its CONNECT went out before any listener could
    // see it); #listen sets the sockets of later connections.
    noDelay(client.stream);
    this.#listen(client);
    await new Promise<void>((resolve, reject) => {
      const fail = (why: string): void => {
        clearTimeout(timer);
        client.removeListener('connect', ok);
        client.removeListener('error', onErr);
        client.end(true);
        reject(new Error(`MqttTransport.connect: ${why}`));
      };
      const timer = setTimeout(() => fail(`could not reach the broker at ${this.url}: no connection within ${timeoutMs} ms`), timeoutMs);
      const ok = (): void => {
        clearTimeout(timer);
        client.removeListener('error', onErr);
        resolve();
      };
      const onErr = (err: Error): void => fail(this.#explain(err));
      client.once('connect', ok);
      client.once('error', onErr);
    });
    this.#client = client;
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
      entry = { rosTopic: topic, qos: this.#qosFor(topic, options.qos), subscribers: new Set(), malformed: 0, tooLarge: 0 };
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
   * Sends `data` as JSON or in the binary layout (see the file comment). Returns at once; mqtt.js
   * sends in the background.
   * @throws Error if not connected yet (call `connect` first) or closed; ValidationError naming the
   *   field when binary mode cannot encode `data` as `type` (a field missing or of the wrong kind)
   */
  publish(topic: string, type: string, data: unknown, options: { qos?: QosProfile } = {}): void {
    const client = this.#client;
    if (client === undefined || this.#closed) throw new Error(`MqttTransport(${this.url}).publish(${topic}, ${type}): ${this.#closed ? 'the transport is closed' : 'not connected; call connect() first'}`);
    const mqttTopic = mqttTopicOf(topic, this.prefix);
    const qos = this.#qosFor(topic, options.qos);
    const retain = options.qos?.durability === 'transientLocal';
    const body = this.payload === 'binary' && hasBinaryLayout(type) ? Buffer.from(encodeBinaryPayload(type, data, `MqttTransport(${this.url}).publish(${topic})`)) : encodeJsonPayload(data);
    this.#stats.published++;
    const queued = qos > 0 && this.#queueOffline.has(mqttTopic);
    if (!client.connected && !queued) {
      // Not queued: the next publish after the reconnection carries fresh data (see the file comment).
      this.#stats.dropped++;
      this.#stats.droppedOffline++;
      return;
    }
    if (qos > 0) {
      if (this.#inFlight >= (this.#options.maxInFlight ?? 1000)) {
        this.#stats.dropped++;
        this.#stats.droppedBacklog++;
        return;
      }
      this.#inFlight++;
    }
    client.publish(mqttTopic, body, { qos, retain }, (err) => {
      if (qos > 0) this.#inFlight--;
      if (!err) return;
      this.#stats.dropped++;
      if (err instanceof DiscardedOnLoss) this.#stats.droppedUnacked++;
    });
  }

  nowNs(): bigint {
    return this.#clock();
  }

  /**
   * Announces `offline` (reason `closed`) on the status topic, then disconnects cleanly, so that
   * the broker discards the will; sends what is queued if connected (waiting at most
   * `connectTimeoutMs`); drops every subscription. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#topics.clear();
    const client = this.#client;
    if (client === undefined) return;
    const timeoutMs = this.#options.connectTimeoutMs ?? 5000;
    const within = (p: Promise<unknown>): Promise<boolean> => {
      let timer: NodeJS.Timeout | undefined;
      return Promise.race([p.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs)))]).finally(() => clearTimeout(timer));
    };
    if (client.connected && this.statusTopic !== null) {
      await within(client.publishAsync(this.statusTopic, this.#statusPayload('offline', 'closed'), { qos: 1, retain: true }).catch(() => undefined));
    }
    // Force when offline: a graceful end would wait for a broker that may never come back.
    if (!(await within(client.endAsync(!client.connected)))) await client.endAsync(true);
    if (this.#offlineSince !== undefined) this.#offlineMs += performance.now() - this.#offlineSince;
    this.#offlineSince = undefined;
  }

  /** The wait before reconnection attempt `attempt`, with a fresh jitter draw. */
  #nextDelay(attempt: number): number {
    return reconnectDelayMs(attempt, this.#backoff, this.#rng.random());
  }

  /** The connection's lifecycle: backoff, status, counters, reports. */
  #listen(client: MqttClient): void {
    client.on('message', (topic, payload) => this.#onMessage(topic, payload));
    // CONNECT is the first packet written on each new socket (a reconnection's): set no-delay before anything else goes out.
    client.on('packetsend', (packet) => {
      if (packet.cmd === 'connect') noDelay(client.stream);
    });
    client.on('reconnect', () => {
      this.#stats.reconnectAttempts++;
      this.#attempt++;
      client.options.reconnectPeriod = this.#nextDelay(this.#attempt);
      // The will is sent with each CONNECT: stamp it with this connection's opening.
      if (client.options.will) client.options.will.payload = this.#statusPayload('offline', 'lost');
    });
    client.on('connect', () => {
      if (this.#offlineSince !== undefined) {
        this.#offlineMs += performance.now() - this.#offlineSince;
        this.#offlineSince = undefined;
        this.#stats.reconnects++;
      }
      this.#everConnected = true;
      this.#attempt = 0;
      client.options.reconnectPeriod = this.#nextDelay(0);
      if (this.statusTopic !== null) client.publish(this.statusTopic, this.#statusPayload('online'), { qos: 1, retain: true });
    });
    client.on('close', () => {
      if (this.#everConnected && this.#offlineSince === undefined && !this.#closed) this.#offlineSince = performance.now();
      if (!this.#closed) this.#discardUnacked(client);
    });
    client.on('offline', () => {
      if (this.#client === undefined || this.#closed) return;
      this.#report(new Error(`MqttTransport(${this.url}): connection to the broker lost; reconnecting in ${client.options.reconnectPeriod} ms, then backing off ×${this.#backoff.factor} up to ${this.#backoff.maxDelayMs} ms`));
    });
    client.on('error', (err) => {
      if (this.#client === undefined || this.#closed) return; // connect() reports the first one
      this.#report(new Error(`MqttTransport(${this.url}): ${this.#explain(err)}`));
    });
  }

  /**
   * After a connection loss: removes the reliable messages the broker had not acknowledged (but
   * those of `queueOffline` topics) from mqtt.js's outgoing store, which it would resend on
   * reconnection, and fails their callbacks with `DiscardedOnLoss` (see the file comment).
   * mqtt.js's in-memory store answers `get` and `del` at once, before any reconnection.
   */
  #discardUnacked(client: MqttClient): void {
    for (const [key, pending] of Object.entries(client.outgoing)) {
      if (pending.volatile || pending.cmd !== 'publish') continue;
      const messageId = Number(key);
      client.outgoingStore.get({ messageId }, (err, packet) => {
        if (err || packet?.cmd !== 'publish' || this.#queueOffline.has(packet.topic)) return;
        client.outgoingStore.del({ messageId }, () => undefined);
        // mqtt.js frees the message ids itself on reconnection (messageIdProvider.clear()).
        if (client.outgoing[messageId] === pending) delete client.outgoing[messageId];
        pending.cb(new DiscardedOnLoss(`MqttTransport(${this.url}): ${packet.topic}: not acknowledged before the connection was lost; discarded, not resent`));
      });
    }
  }

  /** The status JSON (see `MqttStatus`), stamped now. */
  #statusPayload(state: 'online' | 'offline', reason?: 'closed' | 'lost'): Buffer {
    const status: MqttStatus = { state, ...(reason ? { reason } : {}), clientId: this.clientId, stamp: timeFromNs(this.#clock()) };
    return Buffer.from(JSON.stringify(status), 'utf8');
  }

  /** mqtt.js's TLS options from `tls`: the files read now. */
  #readTls(): Partial<IClientOptions> {
    const t = this.#options.tls;
    if (t === undefined) return {};
    const read = (key: 'caFile' | 'certFile' | 'keyFile'): Buffer | undefined => {
      const file = t[key];
      if (file === undefined) return undefined;
      try {
        return readFileSync(file);
      } catch (err) {
        throw new ValidationError(`MqttTransport(${this.url}).connect`, `tls.${key}`, `cannot read ${JSON.stringify(file)} (${(err as Error).message})`);
      }
    };
    const ca = read('caFile');
    const cert = read('certFile');
    const key = read('keyFile');
    return { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}), rejectUnauthorized: t.rejectUnauthorized ?? true };
  }

  /** A connection error in words: who refused what, and what to check. Never shows the password. */
  #explain(err: Error): string {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'number') {
      // CONNACK refusals: MQTT 3.1.1 return codes 1–5, MQTT 5 reason codes ≥ 128.
      const who = this.#options.username === undefined ? 'no username was given (the broker may not allow anonymous clients)' : `username ${JSON.stringify(this.#options.username)}${this.#options.password === undefined ? ' without a password' : ' with the password given'}`;
      const hint = code === 4 || code === 5 || code === 134 || code === 135 ? `: check the credentials; ${who}` : '';
      return `the broker at ${this.url} refused the connection: ${err.message.replace(/^Connection refused: /, '')} (CONNACK code ${code})${hint}`;
    }
    if (typeof code === 'string' || err.message === 'TLS not authorized') {
      // OpenSSL's messages are long "…:SSL routines:function:reason:file:line…" lines: the reason is enough.
      const brief = /SSL routines:[^:]*:([^:]+)/.exec(err.message)?.[1] ?? err.message;
      const c = typeof code === 'string' ? code : 'not authorized';
      const tls = this.#options.tls;
      if (SERVER_CERT_ERRORS.test(c)) {
        return `the TLS handshake with the broker at ${this.url} failed: its certificate was not accepted (${brief}; ${c}): check tls.caFile (the CA that signed the broker's certificate${tls?.caFile ? `, now ${JSON.stringify(tls.caFile)}` : ''}) and that the URL's host name is in that certificate`;
      }
      if (/^ERR_SSL_.*(CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN)/.test(c)) {
        const fix = tls?.certFile ? `check tls.certFile (now ${JSON.stringify(tls.certFile)}): a certificate the broker's CA signed, with its tls.keyFile` : 'it requires one: set tls.certFile and tls.keyFile';
        return `the broker at ${this.url} refused this client's certificate in the TLS handshake (${brief}; ${c}): ${fix}`;
      }
      if (c.startsWith('ERR_SSL_')) return `the TLS handshake with the broker at ${this.url} failed (${brief}; ${c}): check that the port is the broker's TLS listener`;
    }
    // A TLS hello on a plain MQTT port: mosquitto reads it as a bad packet and resets the connection.
    const hint = /^(mqtts|wss):/.test(this.url) && (code === 'ECONNRESET' || code === 'EPIPE') ? " (is that port the broker's TLS listener?)" : '';
    return `could not reach the broker at ${this.url}: ${err.message}${hint}`;
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
    const decoded = new Map<string, DecodedPayload>();
    let counted = false;
    for (const sub of [...entry.subscribers]) {
      let d = decoded.get(sub.type);
      if (d === undefined) decoded.set(sub.type, (d = decodeMqttPayload(payload, sub.type, this.payload, this.#maxPayloadBytes)));
      if (!d.ok) {
        if (!counted) {
          this.#stats[d.reason]++;
          entry[d.reason]++;
          counted = true;
        }
        const what =
          d.reason === 'tooLarge'
            ? `${payload.byteLength} bytes on MQTT topic ${mqttTopic}, more than maxPayloadBytes (${this.#maxPayloadBytes}); dropped unread (${entry.tooLarge} too large on this topic so far)`
            : `malformed ${sub.type} on MQTT topic ${mqttTopic}: ${d.problem}; dropped (${entry.malformed} malformed on this topic so far)`;
        const err = new MqttPayloadError(`MqttTransport(${this.url}).subscribe(${entry.rosTopic})`, what, d.reason);
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
