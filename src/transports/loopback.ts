/**
 * An in-memory transport: what is published on a topic is handed to that topic's subscribers in
 * the same process. The control node's tests run on it, and `SimTransport` uses it as its bus.
 */
import { ValidationError, describe } from '../core/errors.js';
import type { IncomingMessage, QosProfile, Transport, Unsubscribe } from './transport.js';

/** Options of `new LoopbackTransport`. */
export interface LoopbackTransportOptions {
  /** The clock stamped on deliveries (`receivedNs`) and returned by `nowNs`. Default `wallClockNs`. */
  clock?: () => bigint;
  /**
   * Hand each subscriber a deep copy (`structuredClone`) of what was published, as a transport
   * that serialises would: a subscriber that mutates its message, or a publisher that reuses its
   * object, cannot affect anyone else. Default true; false passes the same object (faster).
   */
  clone?: boolean;
  /** `kind` reported to diagnostics. Default `'loopback'`. */
  kind?: string;
}

interface Subscriber {
  type: string;
  onMessage: (msg: IncomingMessage<unknown>) => void;
  onError?: (err: Error) => void;
}

/** Per-topic counters of a `LoopbackTransport`. */
export interface LoopbackTopicStats {
  published: number;
  delivered: number;
  /** Deliveries whose subscriber expected another message type (reported through its `onError`). */
  typeMismatches: number;
}

/**
 * Publish → the subscribers of the same topic, synchronously, in subscription order. A message
 * published from inside a subscriber's callback is delivered before `publish` returns (depth
 * first), as a function call would; keep handlers short.
 *
 * A subscriber whose `type` differs from the publisher's gets no message: the mismatch is counted
 * and reported through its `onError` (a real transport could not decode it either). A subscriber
 * that throws does not stop delivery to the others; its error goes to its `onError`, or is
 * rethrown after the others were served when it has none.
 *
 * QoS is accepted and ignored: delivery is always reliable and in order.
 *
 * @example
 * const bus = new LoopbackTransport();
 * bus.subscribe<Float64>('/reward', 'std_msgs/msg/Float64', (m) => console.log(m.data.data));
 * bus.publish('/reward', 'std_msgs/msg/Float64', { data: -1.5 });
 */
export class LoopbackTransport implements Transport {
  readonly kind: string;
  #clock: () => bigint;
  #clone: boolean;
  #subs = new Map<string, Set<Subscriber>>();
  #stats = new Map<string, LoopbackTopicStats>();
  #closed = false;

  constructor(options: LoopbackTransportOptions = {}) {
    this.kind = options.kind ?? 'loopback';
    this.#clock = options.clock ?? wallClockNs;
    this.#clone = options.clone ?? true;
  }

  /** Nothing to open; rejects after `close`. */
  connect(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error(`${this.kind}.connect: the transport is closed`));
    return Promise.resolve();
  }

  subscribe<T = unknown>(
    topic: string,
    type: string,
    onMessage: (msg: IncomingMessage<T>) => void,
    options: { qos?: QosProfile; onError?: (err: Error) => void } = {},
  ): Unsubscribe {
    checkName(`${this.kind}.subscribe`, 'topic', topic);
    checkName(`${this.kind}.subscribe`, 'type', type);
    if (this.#closed) throw new Error(`${this.kind}.subscribe(${topic}): the transport is closed`);
    const sub: Subscriber = { type, onMessage: onMessage as (msg: IncomingMessage<unknown>) => void, onError: options.onError };
    let set = this.#subs.get(topic);
    if (set === undefined) this.#subs.set(topic, (set = new Set()));
    set.add(sub);
    return () => {
      set.delete(sub);
    };
  }

  publish(topic: string, type: string, data: unknown): void {
    checkName(`${this.kind}.publish`, 'topic', topic);
    checkName(`${this.kind}.publish`, 'type', type);
    if (this.#closed) throw new Error(`${this.kind}.publish(${topic}): the transport is closed`);
    const stats = this.#topicStats(topic);
    stats.published++;
    const set = this.#subs.get(topic);
    if (set === undefined || set.size === 0) return;
    const receivedNs = this.#clock();
    let unhandled: unknown;
    // A copy of the set: a callback may subscribe or unsubscribe.
    for (const sub of [...set]) {
      if (sub.type !== type) {
        stats.typeMismatches++;
        sub.onError?.(new ValidationError(`${this.kind}.subscribe(${topic})`, 'type', `expected messages of type ${sub.type}, got one published as ${type}; not delivered`));
        continue;
      }
      try {
        sub.onMessage({ topic, type, data: this.#clone ? structuredClone(data) : data, receivedNs });
        stats.delivered++;
      } catch (err) {
        if (sub.onError) sub.onError(err instanceof Error ? err : new Error(String(err)));
        else unhandled ??= err;
      }
    }
    if (unhandled !== undefined) throw unhandled;
  }

  nowNs(): bigint {
    return this.#clock();
  }

  /** Drops every subscription; later `publish`/`subscribe` throw. Idempotent. */
  close(): Promise<void> {
    this.#closed = true;
    this.#subs.clear();
    return Promise.resolve();
  }

  /** Counters of one topic (zeros for a topic never used). */
  topicStats(topic: string): Readonly<LoopbackTopicStats> {
    return { ...this.#topicStats(topic) };
  }

  /** Subscribers currently on `topic`. */
  subscriberCount(topic: string): number {
    return this.#subs.get(topic)?.size ?? 0;
  }

  #topicStats(topic: string): LoopbackTopicStats {
    let s = this.#stats.get(topic);
    if (s === undefined) this.#stats.set(topic, (s = { published: 0, delivered: 0, typeMismatches: 0 }));
    return s;
  }
}

function checkName(where: string, field: string, v: unknown): void {
  if (typeof v !== 'string' || v.length === 0) throw new ValidationError(where, field, `expected a non-empty string, got ${describe(v)}`);
}

const EPOCH_NS_AT_START = BigInt(Date.now()) * 1_000_000n;
const HRTIME_AT_START = process.hrtime.bigint();

/**
 * Wall-clock time in integer nanoseconds since the Unix epoch, as ROS 2 stamps it: aligned with
 * `Date.now()` once at start-up, then advanced by the monotonic `process.hrtime`, so it never
 * steps backwards when the system clock is adjusted.
 */
export function wallClockNs(): bigint {
  return EPOCH_NS_AT_START + (process.hrtime.bigint() - HRTIME_AT_START);
}
