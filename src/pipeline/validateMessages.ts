import { Observable, type OperatorFunction } from 'rxjs';
import { ValidationError, describe } from '../core/errors.js';
import { extractField, headerStampNs, type BagField, type FieldProblem } from '../data/bagMapping.js';
import type { IncomingMessage } from '../transports/transport.js';

/** One sensor topic and the fields of it that enter the observation (from the node's config). */
export interface SensorSpec {
  topic: string;
  /** The ROS 2 message type, e.g. `sensor_msgs/msg/JointState`. */
  type: string;
  /** The fields, in order, in the bag-mapping syntax (`parseFieldSpec`). */
  fields: readonly BagField[];
  /** A message whose stamp is older than this, by the transport's clock, is dropped. Default: no limit. */
  maxAgeMs?: number;
  /**
   * A message stamped more than this ahead of the transport's clock is dropped (`future`);
   * milliseconds. Default `MAX_FUTURE_MS_DEFAULT` (1000); null: no limit. Without a bound, one
   * well-formed message stamped far ahead (a robot's clock jump, a hostile or buggy publisher)
   * would pass, and every later reading, stamped before it, would then be dropped as
   * non-monotonic until the clock caught up with it. With the bound it can hold readings back for
   * at most this long. Keep it above the clock offset between robot and node (with NTP or chrony
   * on a LAN, a few milliseconds).
   */
  maxFutureMs?: number | null;
}

/** `SensorSpec.maxFutureMs` by default: 1 s. */
export const MAX_FUTURE_MS_DEFAULT = 1000;

/** A validated reading of one topic: its configured fields, concatenated. */
export interface Sample {
  topic: string;
  values: Float64Array;
  /** `header.stamp` when the message has a non-zero one, else when it was received; nanoseconds. */
  stampNs: bigint;
  receivedNs: bigint;
}

/**
 * Why a message was dropped. `type`: not the configured message type; `tooLarge`: the transport
 * dropped its payload unread, longer than its limit (MQTT's `maxPayloadBytes`: see
 * `countUndecodable`); `malformed`: the transport could not decode it (not JSON, not the type's
 * shape), or a field is missing or not numeric; `size`: an index past the array's end, or an
 * array whose length differs from the topic's first message; `nonFinite`: NaN or ±Infinity;
 * `future`: stamped more than `maxFutureMs` ahead of the transport's clock; `nonMonotonic`: its
 * stamp is not after the last passed message's (duplicates and reordering); `stale`: older than
 * `maxAgeMs` by the transport's clock.
 */
export type DropReason = 'type' | 'tooLarge' | 'malformed' | 'size' | 'nonFinite' | 'future' | 'nonMonotonic' | 'stale';

/** The reasons, in the order they are checked. */
export const DROP_REASONS: readonly DropReason[] = ['type', 'tooLarge', 'malformed', 'size', 'nonFinite', 'future', 'nonMonotonic', 'stale'];

/** What `validateMessages` counted on one topic. */
export interface TopicCounts {
  received: number;
  passed: number;
  dropped: Record<DropReason, number>;
  /** The last drop, for diagnostics: reason, what was wrong, when received. */
  lastDrop?: { reason: DropReason; detail: string; receivedNs: bigint };
}

/** Counts per topic; `validateMessages` adds a topic's entry when it first subscribes. */
export type MessageCounters = Record<string, TopicCounts>;

const PROBLEM_REASON: Record<FieldProblem['kind'], DropReason> = {
  missing: 'malformed',
  notArray: 'malformed',
  notNumber: 'malformed',
  range: 'size',
  nonFinite: 'nonFinite',
};

/**
 * Turns one topic's messages into samples of its configured fields and drops, never passes on,
 * a message that is of the wrong type, malformed, of the wrong size, non-finite, stamped in the
 * future, not after the previous one, or stale (see `DropReason`); each drop is counted in
 * `counters[spec.topic]`.
 *
 * Every array a field reads, whole (`position`) or by index (`position[0..2]`), takes its length
 * from the first message that passes; later messages of another length are dropped as `size`.
 * An index means a position in a fixed layout, so a message of another length (another set of
 * joints, a hostile 10⁶-entry array whose first entries look plausible) is not read by it. A zero
 * `header.stamp` (a publisher that never sets it) counts as no stamp: the receive time is used.
 *
 * A stamp is checked against the clock before it is compared with the previous one: a message
 * stamped more than `maxFutureMs` ahead never becomes the reference that later readings must
 * follow.
 * @param clock the transport's clock (`() => transport.nowNs()`), nanoseconds; staleness and
 *   future stamps are measured against it
 * @throws ValidationError naming the topic when `spec.maxFutureMs` is not a positive number or null
 * @example
 * const counters: MessageCounters = {};
 * fromTransport(t, '/imu', 'sensor_msgs/msg/Imu').pipe(validateMessages(imuSpec, counters, () => t.nowNs()));
 */
export function validateMessages(spec: SensorSpec, counters: MessageCounters, clock: () => bigint): OperatorFunction<IncomingMessage, Sample> {
  const normType = spec.type.replace('/msg/', '/');
  const maxAgeNs = spec.maxAgeMs === undefined ? undefined : BigInt(Math.round(spec.maxAgeMs * 1e6));
  const maxFutureMs = spec.maxFutureMs === undefined ? MAX_FUTURE_MS_DEFAULT : spec.maxFutureMs;
  if (maxFutureMs !== null && !(Number.isFinite(maxFutureMs) && maxFutureMs > 0)) {
    throw new ValidationError(`validateMessages(${spec.topic})`, 'maxFutureMs', `expected a number of milliseconds > 0, or null for no limit, got ${describe(maxFutureMs)}`);
  }
  const maxFutureNs = maxFutureMs === null ? undefined : BigInt(Math.round(maxFutureMs * 1e6));
  return (source) =>
    new Observable<Sample>((subscriber) => {
      const counts = (counters[spec.topic] ??= newCounts());
      const widths: (number | undefined)[] = spec.fields.map(() => undefined);
      // Per field, the length of each array its indexed steps read, fixed by the first passed message.
      const layouts: (number[] | undefined)[] = spec.fields.map(() => undefined);
      const lengths: number[][] = spec.fields.map(() => []);
      let lastStampNs: bigint | undefined;
      const values: number[] = [];
      const drop = (reason: DropReason, detail: string, msg: IncomingMessage): void => {
        counts.dropped[reason]++;
        counts.lastDrop = { reason, detail, receivedNs: msg.receivedNs };
      };
      return source.subscribe({
        next(msg) {
          counts.received++;
          if (msg.type.replace('/msg/', '/') !== normType) return drop('type', `expected ${spec.type}, got ${msg.type}`, msg);
          values.length = 0;
          const start: number[] = [];
          for (let f = 0; f < spec.fields.length; f++) {
            const field = spec.fields[f];
            start.push(values.length);
            const problem = extractField(msg.data, field, values);
            if (problem) return drop(PROBLEM_REASON[problem.kind], `${field.text}: ${problem.message}`, msg);
            const width = values.length - start[f];
            const expected = widths[f];
            if (expected !== undefined && width !== expected) return drop('size', `${field.text}: expected ${expected} values (as the first message), got ${width}`, msg);
            indexedArrayLengths(msg.data, field, lengths[f]);
            const layout = layouts[f];
            const k = layout === undefined ? -1 : layout.findIndex((n, i) => lengths[f][i] !== n);
            if (layout !== undefined && k >= 0) {
              const name = field.path.filter((step) => step.index !== undefined || step.range)[k].name;
              return drop('size', `${field.text}: "${name}" has ${lengths[f][k]} entries; the topic's first message had ${layout[k]}`, msg);
            }
          }
          const header = headerStampNs(msg.data);
          const stampNs = header !== undefined && header > 0n ? header : msg.receivedNs;
          const nowNs = maxFutureNs !== undefined || maxAgeNs !== undefined ? clock() : 0n;
          if (maxFutureNs !== undefined && stampNs - nowNs > maxFutureNs) {
            return drop('future', `stamp ${stampNs} ns is ${Number(stampNs - nowNs) / 1e6} ms ahead of the clock; maxFutureMs is ${maxFutureMs} (are the robot's and the node's clocks synchronised?)`, msg);
          }
          if (lastStampNs !== undefined && stampNs <= lastStampNs) return drop('nonMonotonic', `stamp ${stampNs} ns is not after the previous ${lastStampNs} ns`, msg);
          if (maxAgeNs !== undefined) {
            const ageNs = nowNs - stampNs;
            if (ageNs > maxAgeNs) return drop('stale', `${Number(ageNs) / 1e6} ms old; maxAgeMs is ${spec.maxAgeMs}`, msg);
          }
          for (let f = 0; f < spec.fields.length; f++) {
            widths[f] ??= (f + 1 < start.length ? start[f + 1] : values.length) - start[f];
            layouts[f] ??= [...lengths[f]];
          }
          lastStampNs = stampNs;
          counts.passed++;
          subscriber.next({ topic: spec.topic, values: Float64Array.from(values), stampNs, receivedNs: msg.receivedNs });
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => subscriber.complete(),
      });
    });
}

/**
 * Counts a message on `topic` that the transport dropped before decoding it or could not decode
 * (reported through the subscription's `onError`) as received and dropped, so that
 * `received = passed + dropped` holds with such payloads too. The reason is the error's
 * `dropReason` when it is `tooLarge` (the MQTT transport's `MqttPayloadError` for a payload over
 * `maxPayloadBytes`), else `malformed` (not JSON, not the message type's shape).
 * @param receivedNs when it was reported (the transport's clock)
 * @example
 * fromTransport(t, '/joint_states', JOINT_STATE_TYPE, { onError: (err) => countUndecodable(counters, '/joint_states', err, t.nowNs()) })
 */
export function countUndecodable(counters: MessageCounters, topic: string, err: Error & { dropReason?: unknown }, receivedNs: bigint): void {
  const counts = (counters[topic] ??= newCounts());
  const reason: DropReason = err.dropReason === 'tooLarge' ? 'tooLarge' : 'malformed';
  counts.received++;
  counts.dropped[reason]++;
  counts.lastDrop = { reason, detail: err.message, receivedNs };
}

/** Sets `out` to the length of each array that `field`'s indexed steps read in `msg` (which `extractField` read without a problem). */
function indexedArrayLengths(msg: unknown, field: BagField, out: number[]): void {
  out.length = 0;
  let cur: unknown = msg;
  for (const step of field.path) {
    cur = (cur as Record<string, unknown>)[step.name];
    if (step.index === undefined && !step.range) continue;
    const array = cur as ArrayLike<unknown>;
    out.push(array.length);
    if (!step.range) cur = array[step.index as number];
  }
}

function newCounts(): TopicCounts {
  const dropped = {} as Record<DropReason, number>;
  for (const r of DROP_REASONS) dropped[r] = 0;
  return { received: 0, passed: 0, dropped };
}
