// Shared pieces of the pipeline's marble tests: a TestScheduler that compares with vitest's
// deep equality (typed arrays and bigints included), and message builders. In run mode one
// frame is one millisecond of virtual time.
import { TestScheduler } from 'rxjs/testing';
import { expect } from 'vitest';
import { parseFieldSpec, type BagField } from '../../src/data/bagMapping.js';
import type { IncomingMessage } from '../../src/transports/transport.js';

export function testScheduler(): TestScheduler {
  return new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
}

/** Virtual milliseconds → nanoseconds. */
export const ms = (t: number): bigint => BigInt(t) * 1_000_000n;

/** The transport clock of a test: the scheduler's virtual time in nanoseconds. */
export const clockOf = (s: TestScheduler) => (): bigint => ms(s.now());

export function field(topic: string, spec: string): BagField {
  return parseFieldSpec(topic, spec, 'test', 'field');
}

/** A sensor_msgs/msg/JointState as delivered, stamped `stampMs` (0: no stamp set), received at `receivedMs`. */
export function jointState(position: number[], stampMs: number, receivedMs = stampMs, topic = '/joint_states'): IncomingMessage {
  const sec = Math.floor(stampMs / 1000);
  return {
    topic,
    type: 'sensor_msgs/msg/JointState',
    data: { header: { stamp: { sec, nanosec: (stampMs - sec * 1000) * 1_000_000 }, frame_id: '' }, name: [], position, velocity: [], effort: [] },
    receivedNs: ms(receivedMs),
  };
}

/** A std_msgs/msg/Float64 as delivered (no header: its stamp is the receive time). */
export function float64(topic: string, data: number, receivedMs: number): IncomingMessage {
  return { topic, type: 'std_msgs/msg/Float64', data: { data }, receivedNs: ms(receivedMs) };
}

/** A std_msgs/msg/Bool as delivered. */
export function bool(topic: string, data: boolean, receivedMs = 0): IncomingMessage {
  return { topic, type: 'std_msgs/msg/Bool', data: { data }, receivedNs: ms(receivedMs) };
}
