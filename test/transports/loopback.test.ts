// LoopbackTransport: publish → the subscribers of the same topic, and nothing else.
import { describe, expect, it } from 'vitest';
import { LoopbackTransport, wallClockNs } from '../../src/transports/loopback.js';

describe('LoopbackTransport', () => {
  it('delivers to the subscribers of the published topic only, in order, stamped by its clock', async () => {
    let now = 100n;
    const bus = new LoopbackTransport({ clock: () => now });
    await bus.connect();
    const a: unknown[] = [];
    const b: unknown[] = [];
    const unsubA = bus.subscribe('/x', 'std_msgs/msg/Float64', (m) => a.push([m.topic, m.type, m.data, m.receivedNs]));
    bus.subscribe('/y', 'std_msgs/msg/Float64', (m) => b.push(m.data));
    bus.publish('/x', 'std_msgs/msg/Float64', { data: 1 });
    now = 250n;
    bus.publish('/x', 'std_msgs/msg/Float64', { data: 2 });
    expect(a).toEqual([
      ['/x', 'std_msgs/msg/Float64', { data: 1 }, 100n],
      ['/x', 'std_msgs/msg/Float64', { data: 2 }, 250n],
    ]);
    expect(b).toEqual([]);
    unsubA();
    unsubA(); // harmless twice
    bus.publish('/x', 'std_msgs/msg/Float64', { data: 3 });
    expect(a).toHaveLength(2);
    expect(bus.topicStats('/x')).toEqual({ published: 3, delivered: 2, typeMismatches: 0 });
    expect(bus.nowNs()).toBe(250n);
    await bus.close();
    expect(() => bus.publish('/x', 'std_msgs/msg/Float64', { data: 4 })).toThrow('loopback.publish(/x): the transport is closed');
  });

  it('hands each subscriber its own copy, reports a type mismatch instead of delivering, and isolates a throwing subscriber', () => {
    const bus = new LoopbackTransport();
    const msg = { data: [1, 2] };
    const got: { data: number[] }[] = [];
    const errors: string[] = [];
    bus.subscribe<{ data: number[] }>('/t', 'std_msgs/msg/Float64MultiArray', (m) => {
      got.push(m.data);
      m.data.data[0] = 99;
    });
    bus.subscribe('/t', 'std_msgs/msg/Float64MultiArray', () => {
      throw new Error('boom');
    }, { onError: (e) => errors.push(e.message) });
    bus.subscribe('/t', 'sensor_msgs/msg/JointState', () => errors.push('delivered'), { onError: (e) => errors.push(e.message) });
    bus.publish('/t', 'std_msgs/msg/Float64MultiArray', msg);
    expect(msg.data).toEqual([1, 2]);
    expect(got).toEqual([{ data: [99, 2] }]);
    expect(errors).toEqual(['boom', 'loopback.subscribe(/t): type: expected messages of type sensor_msgs/msg/JointState, got one published as std_msgs/msg/Float64MultiArray; not delivered']);
    expect(bus.topicStats('/t')).toEqual({ published: 1, delivered: 1, typeMismatches: 1 });
  });

  it('wallClockNs follows the epoch and never goes backwards', () => {
    const t0 = wallClockNs();
    const t1 = wallClockNs();
    expect(t1 >= t0).toBe(true);
    expect(Number(t0 / 1_000_000n) - Date.now()).toBeLessThan(1000);
    expect(Math.abs(Number(t0 / 1_000_000n) - Date.now())).toBeLessThan(1000);
  });
});
