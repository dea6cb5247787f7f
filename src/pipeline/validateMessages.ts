import { Observable, type OperatorFunction } from 'rxjs';
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
}

/** A validated reading of one topic: its configured fields, concatenated. */
export interface Sample {
  topic: string;
  values: Float64Array;
  /** `header.stamp` when the message has a non-zero one, else when it was received; nanoseconds. */
  stampNs: bigint;
  receivedNs: bigint;
}

/**
 * Why a message was dropped. `type`: not the configured message type; `malformed`: a field is
 * missing or not numeric; `size`: an index past the array's end, or a whole array whose length
 * differs from the topic's first message; `nonFinite`: NaN or ±Infinity; `nonMonotonic`: its
 * stamp is not after the last passed message's (duplicates and reordering); `stale`: older than
 * `maxAgeMs` by the transport's clock.
 */
export type DropReason = 'type' | 'malformed' | 'size' | 'nonFinite' | 'nonMonotonic' | 'stale';

/** The reasons, in the order they are checked. */
export const DROP_REASONS: readonly DropReason[] = ['type', 'malformed', 'size', 'nonFinite', 'nonMonotonic', 'stale'];

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
 * a message that is of the wrong type, malformed, of the wrong size, non-finite, not after the
 * previous one, or stale (see `DropReason`); each drop is counted in `counters[spec.topic]`.
 *
 * A whole-array field (`position` without an index) takes its length from the first message that
 * passes; later messages of another length are dropped as `size`. A zero `header.stamp` (a
 * publisher that never sets it) counts as no stamp: the receive time is used.
 * @param clock the transport's clock (`() => transport.nowNs()`), nanoseconds; staleness is
 *   measured against it
 * @example
 * const counters: MessageCounters = {};
 * fromTransport(t, '/imu', 'sensor_msgs/msg/Imu').pipe(validateMessages(imuSpec, counters, () => t.nowNs()));
 */
export function validateMessages(spec: SensorSpec, counters: MessageCounters, clock: () => bigint): OperatorFunction<IncomingMessage, Sample> {
  const normType = spec.type.replace('/msg/', '/');
  const maxAgeNs = spec.maxAgeMs === undefined ? undefined : BigInt(Math.round(spec.maxAgeMs * 1e6));
  return (source) =>
    new Observable<Sample>((subscriber) => {
      const counts = (counters[spec.topic] ??= newCounts());
      const widths: (number | undefined)[] = spec.fields.map(() => undefined);
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
          }
          const header = headerStampNs(msg.data);
          const stampNs = header !== undefined && header > 0n ? header : msg.receivedNs;
          if (lastStampNs !== undefined && stampNs <= lastStampNs) return drop('nonMonotonic', `stamp ${stampNs} ns is not after the previous ${lastStampNs} ns`, msg);
          if (maxAgeNs !== undefined) {
            const ageNs = clock() - stampNs;
            if (ageNs > maxAgeNs) return drop('stale', `${Number(ageNs) / 1e6} ms old; maxAgeMs is ${spec.maxAgeMs}`, msg);
          }
          for (let f = 0; f < spec.fields.length; f++) widths[f] ??= (f + 1 < start.length ? start[f + 1] : values.length) - start[f];
          lastStampNs = stampNs;
          counts.passed++;
          subscriber.next({ topic: spec.topic, values: Float64Array.from(values), stampNs, receivedNs: msg.receivedNs });
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => subscriber.complete(),
      });
    });
}

function newCounts(): TopicCounts {
  const dropped = {} as Record<DropReason, number>;
  for (const r of DROP_REASONS) dropped[r] = 0;
  return { received: 0, passed: 0, dropped };
}
