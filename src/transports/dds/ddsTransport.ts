/**
 * The node on ROS 2's own wire, without a ROS install: DDS through Cyclone DDS's C library (what
 * rmw_cyclonedds uses), with the names and encoding ROS 2 nodes use, so `ros2 topic echo` on
 * another machine sees what we publish and we receive what its nodes publish.
 *
 * ## How a message travels
 *
 * - **Names** (`rosCodec.ts`). ROS topic `/joint_states` is DDS topic `rt/joint_states`; type
 *   `sensor_msgs/msg/JointState` is DDS type `sensor_msgs::msg::dds_::JointState_`.
 * - **Bytes** (`rosCodec.ts`). Messages are checked against their ROS 2 definition and encoded as
 *   XCDR1 little-endian with the `00 01 00 00` header, by `@foxglove/rosmsg2-serialization`.
 * - **Into Cyclone** (`rawCdrShim.ts`, `cyclone.ts`). Cyclone's C API moves samples only through a
 *   type support (a `ddsi_sertype`), so a small C shim, compiled on first use against the
 *   installed Cyclone and called through koffi, defines one whose samples are the CDR bytes
 *   themselves: `dds_write` copies them in, `dds_takecdr` hands them back. No type information
 *   (XTypes) is sent: peers match on topic and type name, as with rmw_cyclonedds.
 * - **Out of Cyclone** (`waitWorker.ts`). A worker thread blocks on a waitset holding a read
 *   condition per reader and wakes the event loop when data is there (publish to callback in
 *   one process: about 0.3 ms median); the main thread takes every waiting sample, decodes it
 *   and calls the subscribers. Nothing blocks the event loop.
 *
 * ## QoS
 *
 * `reliable`/`bestEffort` → DDS RELIABILITY, `volatile`/`transientLocal` → DURABILITY, `depth` →
 * HISTORY keep-last, on readers and writers alike; ROS 2's default profile (reliable, volatile,
 * keep last 10) unless given. DDS matches a reliable reader only with reliable writers, and a
 * transient-local reader only with transient-local writers, as in ROS 2. Reliable writers wait at
 * most 10 ms for acknowledgements when Cyclone's flow control holds them; past that the message
 * is dropped, counted and reported, so `publish` never stalls the control loop.
 *
 * ## Domain and discovery
 *
 * Domain `ROS_DOMAIN_ID` (default 0). `ROS_LOCALHOST_ONLY=1` (Humble),
 * `ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST` (Jazzy) or `localhostOnly` keep discovery and traffic
 * on the loopback interface, as rmw_cyclonedds does; `config` (else `CYCLONEDDS_URI`) is Cyclone's
 * XML configuration. The node appears in `ros2 topic list`/`info` (DDS discovery) but not in
 * `ros2 node list`, which needs the `ros_discovery_info` topic rmw publishes.
 *
 * A connected transport keeps the process alive (its wait worker) until `close`.
 */
import { ValidationError, describe } from '../../core/errors.js';
import { wallClockNs } from '../loopback.js';
import { QOS_DEFAULT, type IncomingMessage, type QosProfile, type Transport, type Unsubscribe } from '../transport.js';
import { DDS_RETCODE_PRECONDITION_NOT_MET, DDS_RETCODE_TIMEOUT, DdsError, loadCyclone, type Cyclone } from './cyclone.js';
import type { CycloneLibraryOptions } from './rawCdrShim.js';
import { canonicalRosType, ddsTopicName, ddsTypeName, resolveRosTopic, rosCodec, type RosCodec } from './rosCodec.js';
import { startWaitWorker, type WaitWorker } from './waitWorker.js';

/**
 * Cyclone DDS configuration that keeps a domain on the loopback interface: unicast discovery of
 * participants on this machine only (loopback has no multicast). What `localhostOnly` applies.
 */
export const CYCLONE_LOCALHOST_CONFIG =
  '<CycloneDDS><Domain id="any"><General><Interfaces><NetworkInterface address="127.0.0.1"/></Interfaces><AllowMulticast>false</AllowMulticast></General>' +
  '<Discovery><ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>32</MaxAutoParticipantIndex><Peers><Peer address="127.0.0.1"/></Peers></Discovery></Domain></CycloneDDS>';

/** Options of `new DdsTransport`. */
export interface DdsTransportOptions {
  /** DDS domain, 0–232. Default env `ROS_DOMAIN_ID`, else 0. */
  domainId?: number;
  /**
   * Loopback interface only: `CYCLONE_LOCALHOST_CONFIG`, followed by `config` (else env
   * `CYCLONEDDS_URI`), which must then not select interfaces of its own. Default env
   * `ROS_LOCALHOST_ONLY=1` (Humble) or `ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST` (Jazzy).
   */
  localhostOnly?: boolean;
  /**
   * Cyclone DDS configuration: XML, `file://` URIs, or a comma-separated list of them (later ones
   * override). Default: Cyclone reads env `CYCLONEDDS_URI` itself.
   */
  config?: string;
  /** Namespace that relative topic names resolve against. Default `/`. */
  namespace?: string;
  /** Where Cyclone DDS and the shim come from (see `CycloneLibraryOptions`). */
  library?: CycloneLibraryOptions;
  /** Dropped publications, a failed receive path, and malformed messages on a subscription without its own `onError`. Default `console.warn`. */
  onError?: (err: Error) => void;
  /** Clock of `nowNs` and `receivedNs`. Default `wallClockNs`. */
  clock?: () => bigint;
}

/** Counters of a `DdsTransport`. */
export interface DdsTransportStats {
  /** Samples taken from readers. */
  received: number;
  /** Messages handed to subscribers. */
  delivered: number;
  /** Samples that did not decode as the subscribed type (never passed on). */
  malformed: number;
  /** Messages written. */
  published: number;
  /** Messages `publish` could not write (Cyclone refused or timed out). */
  dropped: number;
}

interface Subscription {
  rosTopic: string;
  ddsTopic: string;
  type: string;
  codec: RosCodec;
  qos: QosProfile;
  onMessage: (msg: IncomingMessage<unknown>) => void;
  onError?: (err: Error) => void;
  /** The reader, once connected; undefined before `connect` and after unsubscribing. */
  reader?: number;
  malformed: number;
}

/** A message type's ROS and DDS names. */
type TypeNames = Pick<RosCodec, 'type' | 'ddsTypeName'>;

interface Connection {
  cyclone: Cyclone;
  participant: number;
  waitset: number;
  worker: WaitWorker;
}

/** Domains this process created with a configuration, shared by the transports on them. */
const domains = new Map<number, { handle: number; config: string; users: number }>();

/**
 * A `Transport` that speaks ROS 2's DDS wire through Cyclone DDS (see the file comment).
 *
 * @example
 * const t = new DdsTransport({ domainId: 0 });
 * await t.connect(); // compiles the shim on first use (about half a second)
 * t.subscribe<JointState>('/joint_states', 'sensor_msgs/msg/JointState', (m) => use(m.data), { qos: QOS_SENSOR_DATA });
 * t.publish('/cmd_vel', 'geometry_msgs/msg/Twist', { linear: { x: 0.2, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0.1 } });
 * await t.close();
 */
export class DdsTransport implements Transport {
  readonly kind = 'dds';
  readonly domainId: number;
  readonly namespace: string;
  #options: DdsTransportOptions;
  #clock: () => bigint;
  #conn: Connection | undefined;
  #connecting: Promise<void> | undefined;
  #closed = false;
  #subs = new Set<Subscription>();
  #byReader = new Map<number, Subscription>();
  #topics = new Map<string, { handle: number; type: string }>();
  #writers = new Map<string, number>();
  #buf = new Uint8Array(64 * 1024);
  #out = new BigInt64Array(2);
  #stats: DdsTransportStats = { received: 0, delivered: 0, malformed: 0, published: 0, dropped: 0 };

  constructor(options: DdsTransportOptions = {}) {
    const where = 'DdsTransport';
    const envDomain = process.env.ROS_DOMAIN_ID;
    const domainId = options.domainId ?? (envDomain !== undefined && envDomain !== '' ? Number(envDomain) : 0);
    if (!Number.isInteger(domainId) || domainId < 0 || domainId > 232) {
      throw new ValidationError(where, options.domainId !== undefined ? 'domainId' : 'ROS_DOMAIN_ID', `expected an integer domain id in [0, 232], got ${describe(options.domainId ?? envDomain)}`);
    }
    this.domainId = domainId;
    this.namespace = options.namespace ?? '/';
    resolveRosTopic('check', this.namespace);
    this.#options = options;
    this.#clock = options.clock ?? wallClockNs;
  }

  /** Counters (a copy). */
  get stats(): Readonly<DdsTransportStats> {
    return { ...this.#stats };
  }

  /** Malformed samples received on one ROS topic, over its subscriptions. */
  malformedOn(topic: string): number {
    const rosTopic = resolveRosTopic(topic, this.namespace);
    let n = 0;
    for (const s of this.#subs) if (s.rosTopic === rosTopic) n += s.malformed;
    return n;
  }

  /**
   * Loads Cyclone DDS (compiling the shim on first use), joins the domain and creates the readers
   * of the subscriptions made so far.
   * @throws Error naming the domain and what failed (library, configuration, network)
   */
  connect(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error(`DdsTransport(domain ${this.domainId}).connect: the transport is closed`));
    this.#connecting ??= this.#open().catch((err: Error) => {
      this.#connecting = undefined;
      throw new Error(`DdsTransport(domain ${this.domainId}).connect: ${err.message}`, { cause: err });
    });
    return this.#connecting;
  }

  subscribe<T = unknown>(
    topic: string,
    type: string,
    onMessage: (msg: IncomingMessage<T>) => void,
    options: { qos?: QosProfile; onError?: (err: Error) => void } = {},
  ): Unsubscribe {
    const where = `DdsTransport.subscribe(${topic})`;
    if (this.#closed) throw new Error(`${where}: the transport is closed`);
    const rosTopic = resolveRosTopic(topic, this.namespace);
    const sub: Subscription = {
      rosTopic,
      ddsTopic: ddsTopicName(rosTopic),
      type,
      codec: rosCodec(type),
      qos: checkQos(options.qos ?? QOS_DEFAULT, where),
      onMessage: onMessage as (msg: IncomingMessage<unknown>) => void,
      onError: options.onError,
      malformed: 0,
    };
    if (this.#conn !== undefined) this.#createReader(this.#conn, sub);
    this.#subs.add(sub);
    return () => {
      if (!this.#subs.delete(sub)) return;
      if (sub.reader !== undefined) {
        this.#byReader.delete(sub.reader);
        // Deleting the reader deletes its read condition, which leaves the waitset with it.
        this.#conn?.cyclone.delete(sub.reader);
        sub.reader = undefined;
      }
    };
  }

  /**
   * Encodes `data` and writes it. Returns once Cyclone has it (sending is Cyclone's threads' job).
   * @throws ValidationError when `data` is not a `type` (naming the field); Error before `connect` or after `close`
   */
  publish(topic: string, type: string, data: unknown, options: { qos?: QosProfile } = {}): void {
    const where = `DdsTransport.publish(${topic}, ${type})`;
    const conn = this.#conn;
    if (conn === undefined || this.#closed) throw new Error(`${where}: ${this.#closed ? 'the transport is closed' : 'not connected; call connect() first'}`);
    const codec = rosCodec(type);
    const bytes = codec.encode(data, where);
    this.#writeBytes(conn, topic, codec, bytes, checkQos(options.qos ?? QOS_DEFAULT, where), where);
  }

  /**
   * Writes CDR bytes as they are (encapsulation header included), e.g. a message replayed from a
   * ROS 2 bag, without decoding them: `type` may be any `package/msg/Type`, the robot's own too.
   * Same errors as `publish`, less the message checks.
   */
  publishRaw(topic: string, type: string, cdr: Uint8Array, options: { qos?: QosProfile } = {}): void {
    const where = `DdsTransport.publishRaw(${topic}, ${type})`;
    const conn = this.#conn;
    if (conn === undefined || this.#closed) throw new Error(`${where}: ${this.#closed ? 'the transport is closed' : 'not connected; call connect() first'}`);
    if (!(cdr instanceof Uint8Array) || cdr.byteLength < 4) throw new ValidationError(where, 'cdr', `expected CDR bytes with their 4-byte encapsulation header, got ${describe(cdr)}`);
    this.#writeBytes(conn, topic, { type: canonicalRosType(type), ddsTypeName: ddsTypeName(type) }, cdr, checkQos(options.qos ?? QOS_DEFAULT, where), where);
  }

  nowNs(): bigint {
    return this.#clock();
  }

  /** Stops receiving, deletes every reader, writer and topic with the participant, and leaves the domain. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#connecting?.catch(() => undefined);
    const conn = this.#conn;
    this.#conn = undefined;
    this.#subs.clear();
    this.#byReader.clear();
    this.#topics.clear();
    this.#writers.clear();
    if (conn === undefined) return;
    await conn.worker.stop(() => conn.cyclone.setTrigger(conn.waitset, true));
    conn.cyclone.delete(conn.participant);
    releaseDomain(conn.cyclone, this.domainId);
  }

  async #open(): Promise<void> {
    const cyclone = await loadCyclone(this.#options.library);
    const localhostOnly = this.#options.localhostOnly ?? (process.env.ROS_LOCALHOST_ONLY === '1' || process.env.ROS_AUTOMATIC_DISCOVERY_RANGE === 'LOCALHOST');
    const user = this.#options.config ?? (localhostOnly ? process.env.CYCLONEDDS_URI : undefined);
    const parts = [localhostOnly ? CYCLONE_LOCALHOST_CONFIG : undefined, user].filter((p): p is string => p !== undefined && p.trim() !== '');
    const domainConfig = localhostOnly || this.#options.config !== undefined ? parts.join(',') : undefined;
    acquireDomain(cyclone, this.domainId, domainConfig);
    let participant: number | undefined;
    try {
      participant = cyclone.createParticipant(this.domainId);
      const waitset = cyclone.createWaitset(participant);
      // Attached to itself, the waitset wakes its waiter on set_trigger (how close stops the
      // worker), and is never empty: Cyclone 0.10 returns at once from a wait on an empty one,
      // which would spin the worker while there are no subscriptions.
      cyclone.attach(waitset, waitset, 'waitset');
      const worker = await startWaitWorker(
        { koffiPath: cyclone.koffiPath, shimPath: cyclone.shimPath, waitset },
        () => this.#drain(),
        (err) => this.#report(err),
      );
      const conn: Connection = { cyclone, participant, waitset, worker };
      if (this.#closed) {
        await worker.stop(() => cyclone.setTrigger(waitset, true));
        throw new Error('the transport was closed while connecting');
      }
      this.#conn = conn;
      for (const sub of this.#subs) this.#createReader(conn, sub);
    } catch (err) {
      this.#conn = undefined;
      if (participant !== undefined) cyclone.delete(participant);
      releaseDomain(cyclone, this.domainId);
      throw err;
    }
  }

  #topic(conn: Connection, ddsTopic: string, codec: TypeNames, where: string): number {
    const known = this.#topics.get(ddsTopic);
    if (known !== undefined) {
      if (known.type !== codec.type) throw new ValidationError(where, 'type', `topic ${ddsTopic} already carries ${known.type} in this transport; one topic has one type in DDS, got ${codec.type}`);
      return known.handle;
    }
    const handle = conn.cyclone.createRawTopic(conn.participant, ddsTopic, codec.ddsTypeName);
    this.#topics.set(ddsTopic, { handle, type: codec.type });
    return handle;
  }

  #createReader(conn: Connection, sub: Subscription): void {
    const what = `${sub.ddsTopic}, ${sub.type}`;
    const topic = this.#topic(conn, sub.ddsTopic, sub.codec, `DdsTransport.subscribe(${sub.rosTopic})`);
    const reader = conn.cyclone.createReader(conn.participant, topic, sub.qos, what);
    try {
      conn.cyclone.attach(conn.waitset, conn.cyclone.createReadCondition(reader, what), what);
    } catch (err) {
      conn.cyclone.delete(reader);
      throw err;
    }
    sub.reader = reader;
    this.#byReader.set(reader, sub);
  }

  #writeBytes(conn: Connection, topic: string, codec: TypeNames, bytes: Uint8Array, qos: QosProfile, where: string): void {
    const ddsTopic = ddsTopicName(topic, this.namespace);
    const ddsTopicHandle = this.#topic(conn, ddsTopic, codec, where);
    const key = `${ddsTopic}|${qos.reliability}|${qos.durability}|${qos.depth}`;
    let writer = this.#writers.get(key);
    if (writer === undefined) {
      writer = conn.cyclone.createWriter(conn.participant, ddsTopicHandle, qos, `${ddsTopic}, ${codec.type}`);
      this.#writers.set(key, writer);
    }
    const rc = conn.cyclone.writeRaw(writer, bytes);
    if (rc < 0) {
      this.#stats.dropped++;
      const hint = rc === DDS_RETCODE_TIMEOUT ? 'reliable subscribers did not acknowledge earlier messages in time' : '';
      this.#report(new DdsError(`${where}: dds_write(${ddsTopic})`, rc, conn.cyclone.reason(rc), hint === '' ? 'message dropped' : `${hint}; message dropped`));
      return;
    }
    this.#stats.published++;
  }

  /** Takes every waiting sample of every reader and hands it on, then lets the worker wait again. */
  #drain(): void {
    const conn = this.#conn;
    if (conn === undefined) return;
    try {
      for (const [reader, sub] of [...this.#byReader]) {
        // A callback may unsubscribe this subscription (or close the transport) midway.
        while (sub.reader === reader && !this.#closed) {
          const rc = conn.cyclone.takeRaw(reader, this.#buf, this.#out);
          if (rc === 0) break;
          if (rc < 0) {
            this.#report(new DdsError(`DdsTransport: dds_takecdr(${sub.ddsTopic})`, rc, conn.cyclone.reason(rc)));
            break;
          }
          const size = Number(this.#out[0]);
          let bytes: Uint8Array;
          if (rc === 2) {
            bytes = new Uint8Array(size);
            conn.cyclone.copyRelease(this.#out[1], bytes);
            // Grow the shared buffer (up to 16 MiB) so a stream of large messages avoids this path.
            if (size <= 16 * 1024 * 1024) this.#buf = new Uint8Array(2 ** Math.ceil(Math.log2(size)));
          } else {
            // A copy: decoded typed arrays may be views of their input.
            bytes = this.#buf.slice(0, size);
          }
          this.#stats.received++;
          this.#deliver(sub, bytes);
        }
      }
    } finally {
      conn.worker.ack();
    }
  }

  /** Decodes and calls the subscriber; what fails goes to its `onError` (else the transport's). */
  #deliver(sub: Subscription, bytes: Uint8Array): void {
    let data: unknown;
    try {
      data = sub.codec.decode(bytes);
    } catch (err) {
      sub.malformed++;
      this.#stats.malformed++;
      this.#fail(
        sub,
        new ValidationError(
          `DdsTransport.subscribe(${sub.rosTopic})`,
          'sample',
          `${bytes.byteLength} bytes on ${sub.ddsTopic} do not decode as ${sub.type}: ${(err as Error).message}; dropped (${sub.malformed} malformed on this subscription so far)`,
        ),
      );
      return;
    }
    try {
      sub.onMessage({ topic: sub.rosTopic, type: sub.type, data, receivedNs: this.#clock() });
      this.#stats.delivered++;
    } catch (err) {
      this.#fail(sub, err instanceof Error ? err : new Error(String(err)));
    }
  }

  #fail(sub: Subscription, err: Error): void {
    if (sub.onError) sub.onError(err);
    else this.#report(err);
  }

  #report(err: Error): void {
    if (this.#options.onError) this.#options.onError(err);
    else console.warn(`[mbrl] ${err.message}`);
  }
}

function checkQos(qos: QosProfile, where: string): QosProfile {
  if (qos?.reliability !== 'reliable' && qos?.reliability !== 'bestEffort') throw new ValidationError(where, 'qos.reliability', `expected 'reliable' or 'bestEffort', got ${describe(qos?.reliability)}`);
  if (qos.durability !== 'volatile' && qos.durability !== 'transientLocal') throw new ValidationError(where, 'qos.durability', `expected 'volatile' or 'transientLocal', got ${describe(qos.durability)}`);
  if (!Number.isInteger(qos.depth) || qos.depth < 1) throw new ValidationError(where, 'qos.depth', `expected a positive integer, got ${describe(qos.depth)}`);
  return qos;
}

/** Creates the domain with `config` on first use in this process, or joins the one created with the same config. */
function acquireDomain(cyclone: Cyclone, domainId: number, config: string | undefined): void {
  const known = domains.get(domainId);
  if (known !== undefined) {
    if (config !== undefined && config !== known.config) {
      throw new Error(`domain ${domainId} was already created in this process with another Cyclone configuration; transports on one domain in one process share its configuration`);
    }
    known.users++;
    return;
  }
  if (config === undefined) return; // Cyclone creates the domain with the participant, from CYCLONEDDS_URI.
  try {
    domains.set(domainId, { handle: cyclone.createDomain(domainId, config), config, users: 1 });
  } catch (err) {
    if (err instanceof DdsError && err.code === DDS_RETCODE_PRECONDITION_NOT_MET) {
      throw new Error(`domain ${domainId} already exists in this process without this configuration (a transport without config or localhostOnly joined it first)`, { cause: err });
    }
    throw err;
  }
}

/** Leaves a created domain, deleting it with its last user (which stops its threads now, not at exit). */
function releaseDomain(cyclone: Cyclone, domainId: number): void {
  const known = domains.get(domainId);
  if (known === undefined) return;
  if (--known.users > 0) return;
  domains.delete(domainId);
  cyclone.delete(known.handle);
}
