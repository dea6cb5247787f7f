// validateMessages: every drop reason on a hand-built message sequence, in virtual time, with
// the exact counts; passed samples carry the configured fields and the right stamp.
import { describe, expect, it } from 'vitest';
import { DROP_REASONS, MAX_FUTURE_MS_DEFAULT, countUndecodable, validateMessages, type MessageCounters, type Sample, type SensorSpec } from '../../src/pipeline/validateMessages.js';
import { MqttPayloadError } from '../../src/transports/mqtt.js';
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
        a: jointState([1, 2], 10), // good
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

  it('fixes the length of an indexed array at the first message: a longer or shorter one is another layout, dropped as size', () => {
    const scheduler = testScheduler();
    const counters: MessageCounters = {};
    const spec: SensorSpec = { topic: '/joint_states', type: 'sensor_msgs/msg/JointState', fields: [field('/joint_states', 'sensor_msgs/msg/JointState.position[0..1]')] };
    const huge = Array.from({ length: 100_000 }, (_, i) => i);
    scheduler.run(({ hot, expectObservable }) => {
      const input = hot('a 1ms b 1ms c 1ms d 1ms e', {
        a: jointState([1, 2, 3], 1, 0), // the first two of three positions
        b: jointState([4, 5, 6, 7], 2, 2),
        c: jointState(huge, 3, 4), // a hostile array whose first entries look like positions
        d: jointState([4, 5], 4, 6),
        e: jointState([8, 9, 10], 5, 8),
      });
      expectObservable(input.pipe(validateMessages(spec, counters, clockOf(scheduler)))).toBe('a 7ms e', {
        a: sample([1, 2], 1, 0),
        e: sample([8, 9], 5, 8),
      });
    });
    expect(counters['/joint_states']).toMatchObject({ received: 5, passed: 2, dropped: { size: 3 } });
    expect(counters['/joint_states'].lastDrop?.detail).toBe('/joint_states: sensor_msgs/msg/JointState.position[0..1]: "position" has 2 entries; the topic\'s first message had 3');
  });

  it('counts a payload the transport could not decode as received and dropped (malformed)', () => {
    const counters: MessageCounters = {};
    countUndecodable(counters, '/joint_states', new Error('not JSON (Unexpected token)'), 7n);
    expect(counters['/joint_states']).toMatchObject({ received: 1, passed: 0, dropped: { malformed: 1 }, lastDrop: { reason: 'malformed', detail: 'not JSON (Unexpected token)', receivedNs: 7n } });
  });

  it('counts a payload the transport dropped unread for its length under its own reason (tooLarge)', () => {
    const counters: MessageCounters = {};
    countUndecodable(counters, '/joint_states', new MqttPayloadError('t', '11534336 bytes, more than maxPayloadBytes (1048576)', 'tooLarge'), 8n);
    countUndecodable(counters, '/joint_states', new MqttPayloadError('t', 'malformed sensor_msgs/msg/JointState', 'malformed'), 9n);
    // Any other error of the transport is a malformed payload.
    countUndecodable(counters, '/joint_states', Object.assign(new Error('odd'), { dropReason: 'size' }), 10n);
    expect(counters['/joint_states']).toMatchObject({ received: 3, passed: 0, dropped: { tooLarge: 1, malformed: 2 } });
    expect(DROP_REASONS.reduce((n, r) => n + counters['/joint_states'].dropped[r], 0)).toBe(3);
  });

  it('drops a reading stamped beyond maxFutureMs ahead of the clock, so that it cannot block the later ones as non-monotonic', () => {
    const scheduler = testScheduler();
    const counters: MessageCounters = {};
    const spec: SensorSpec = { ...SPEC, maxAgeMs: undefined, maxFutureMs: 30 };
    scheduler.run(({ hot, expectObservable }) => {
      // Times: a 10, b 20, c 30, d 40, e 50.
      const input = hot('10ms a 9ms b 9ms c 9ms d 9ms e', {
        a: jointState([1, 2], 10),
        b: jointState([3, 4], 10_000, 20), // 9980 ms ahead: dropped (future), never the reference
        c: jointState([5, 6], 30), // would be non-monotonic after b had it passed
        d: jointState([7, 8], 70, 40), // 30 ms ahead: the bound itself, passes
        e: jointState([9, 10], 81, 50), // 31 ms ahead: dropped
      });
      expectObservable(input.pipe(validateMessages(spec, counters, clockOf(scheduler)))).toBe('10ms a 19ms c 9ms d', {
        a: sample([1, 2], 10),
        c: sample([5, 6], 30),
        d: sample([7, 8], 70, 40),
      });
    });
    expect(counters['/joint_states']).toMatchObject({ received: 5, passed: 3, dropped: { future: 2, nonMonotonic: 0 } });
    expect(counters['/joint_states'].lastDrop?.detail).toBe(
      "stamp 81000000 ns is 31 ms ahead of the clock; maxFutureMs is 30 (are the robot's and the node's clocks synchronised?)",
    );
  });

  it('bounds future stamps at MAX_FUTURE_MS_DEFAULT (1 s) unless told otherwise; null lifts the bound', () => {
    const run = (maxFutureMs: number | null | undefined): number[] => {
      const scheduler = testScheduler();
      const counters: MessageCounters = {};
      const spec: SensorSpec = { ...SPEC, maxAgeMs: undefined, ...(maxFutureMs !== undefined ? { maxFutureMs } : {}) };
      const passed: number[] = [];
      scheduler.run(({ hot }) => {
        const input = hot('a b c', {
          a: jointState([1, 0], 1000, 0), // 1 s ahead: the default's edge
          b: jointState([2, 0], 1002, 1), // 1.001 s ahead
          c: jointState([3, 0], 60_000, 2), // a minute ahead
        });
        input.pipe(validateMessages(spec, counters, clockOf(scheduler))).subscribe((s) => passed.push(s.values[0]));
      });
      return passed;
    };
    expect(MAX_FUTURE_MS_DEFAULT).toBe(1000);
    expect(run(undefined)).toEqual([1]);
    expect(run(null)).toEqual([1, 2, 3]);
    expect(() => validateMessages({ ...SPEC, maxFutureMs: -5 }, {}, () => 0n)).toThrow('validateMessages(/joint_states): maxFutureMs: expected a number of milliseconds > 0, or null for no limit, got -5');
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
