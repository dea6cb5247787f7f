// validateMessages: every drop reason on a hand-built message sequence, in virtual time, with
// the exact counts; passed samples carry the configured fields and the right stamp.
import { describe, expect, it } from 'vitest';
import { validateMessages, type MessageCounters, type Sample, type SensorSpec } from '../../src/pipeline/validateMessages.js';
import { clockOf, field, float64, jointState, ms, testScheduler } from './marbles.js';

const SPEC: SensorSpec = {
  topic: '/joint_states',
  type: 'sensor_msgs/msg/JointState',
  fields: [field('/joint_states', 'sensor_msgs/msg/JointState.position[0..1]')],
  maxAgeMs: 50,
};

const sample = (values: number[], stampMs: number, receivedMs = stampMs, topic = '/joint_states'): Sample => ({
  topic,
  values: Float64Array.from(values),
  stampNs: ms(stampMs),
  receivedNs: ms(receivedMs),
});

describe('validateMessages', () => {
  it('passes good messages and drops each bad one, counting it by reason', () => {
    const scheduler = testScheduler();
    const counters: MessageCounters = {};
    scheduler.run(({ hot, expectObservable }) => {
      // Times: a 10, b 20, c 30, d 40, e 50, f 60, g 70, h 200, i 210.
      const input = hot('10ms a 9ms b 9ms c 9ms d 9ms e 9ms f 9ms g 129ms h 9ms i', {
        a: jointState([1, 2, 3], 10), // good: the first two positions
        b: jointState([1], 20), // position[1] does not exist
        c: jointState([NaN, 2], 30),
        d: jointState([4, 5], 10, 40), // stamp 10 ms again: not after the last passed one
        e: jointState([4, 5], 0, 50), // no stamp set: received at 50 ms, passes
        f: { ...jointState([6, 7], 60), data: { header: { stamp: { sec: 0, nanosec: 60_000_000 } } } }, // no position field
        g: { ...jointState([6, 7], 70), type: 'sensor_msgs/msg/Imu' },
        h: jointState([8, 9], 120, 200), // after e, but stamped 80 ms before the clock: older than maxAgeMs 50
        i: jointState([10, 11], 209, 210), // 1 ms old: fine
      });
      expectObservable(input.pipe(validateMessages(SPEC, counters, clockOf(scheduler)))).toBe('10ms a 39ms e 159ms i', {
        a: sample([1, 2], 10),
        e: sample([4, 5], 50),
        i: sample([10, 11], 209, 210),
      });
    });
    expect(counters['/joint_states']).toMatchObject({
      received: 9,
      passed: 3,
      dropped: { type: 1, malformed: 1, size: 1, nonFinite: 1, nonMonotonic: 1, stale: 1 },
    });
    expect(counters['/joint_states'].lastDrop?.reason).toBe('stale');
    expect(counters['/joint_states'].lastDrop?.detail).toContain('80 ms old; maxAgeMs is 50');
  });

  it('fixes a whole array\'s length at the first message and drops other lengths as size', () => {
    const scheduler = testScheduler();
    const counters: MessageCounters = {};
    const spec: SensorSpec = { topic: '/joint_states', type: 'sensor_msgs/msg/JointState', fields: [field('/joint_states', 'sensor_msgs/msg/JointState.position')] };
    scheduler.run(({ hot, expectObservable }) => {
      const input = hot('a 1ms b 1ms c', { a: jointState([1, 2], 1, 0), b: jointState([1, 2, 3], 2, 2), c: jointState([3, 4], 3, 4) });
      expectObservable(input.pipe(validateMessages(spec, counters, clockOf(scheduler)))).toBe('a 3ms c', {
        a: sample([1, 2], 1, 0),
        c: sample([3, 4], 3, 4),
      });
    });
    expect(counters['/joint_states'].dropped.size).toBe(1);
    expect(counters['/joint_states'].lastDrop?.detail).toContain('expected 2 values (as the first message), got 3');
  });

  it('uses the receive time for a message without a header, and several fields in order', () => {
    const scheduler = testScheduler();
    const counters: MessageCounters = {};
    const spec: SensorSpec = { topic: '/r', type: 'std_msgs/msg/Float64', fields: [field('/r', 'std_msgs/msg/Float64.data'), field('/r', 'std_msgs/msg/Float64.data')] };
    scheduler.run(({ hot, expectObservable }) => {
      const input = hot('--a--b', { a: float64('/r', 0.5, 2), b: float64('/r', Infinity, 5) });
      expectObservable(input.pipe(validateMessages(spec, counters, clockOf(scheduler)))).toBe('--a', { a: sample([0.5, 0.5], 2, 2, '/r') });
    });
    expect(counters['/r']).toMatchObject({ received: 2, passed: 1, dropped: { nonFinite: 1 } });
  });
});
