// The operators wired as the control node wires them, on an in-memory Transport driven by the
// TestScheduler's virtual clock: fromTransport → validateMessages → assembleState → (a
// proportional controller) → safetyFilter → toActionMessage / assembleTransitions. Checks the
// publish rate, what was published, the transitions, and that fromTransport unsubscribes.
import { map, merge, share, type Subscription } from 'rxjs';
import type { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import type { Transition } from '../../src/data/transition.js';
import { assembleState } from '../../src/pipeline/assembleState.js';
import { assembleTransitions } from '../../src/pipeline/assembleTransitions.js';
import { fromTransport } from '../../src/pipeline/fromTransport.js';
import { newInterventionCounts, safetyFilter, type SafetyConfig } from '../../src/pipeline/safetyFilter.js';
import { toActionMessage } from '../../src/pipeline/toActionMessage.js';
import { validateMessages, type MessageCounters, type SensorSpec } from '../../src/pipeline/validateMessages.js';
import type { IncomingMessage, Transport, Unsubscribe } from '../../src/transports/transport.js';
import { bool, field, jointState, ms, testScheduler } from './marbles.js';

/** A Transport in memory: `deliver` hands a message to the topic's subscribers; publishes are recorded. */
class MemoryTransport implements Transport {
  readonly kind = 'memory';
  readonly published: { atMs: number; topic: string; type: string; data: unknown }[] = [];
  readonly subscribers = new Map<string, Set<(m: IncomingMessage) => void>>();
  constructor(private readonly scheduler: TestScheduler) {}
  async connect(): Promise<void> {}
  subscribe<T>(topic: string, _type: string, onMessage: (msg: IncomingMessage<T>) => void): Unsubscribe {
    const set = this.subscribers.get(topic) ?? new Set();
    this.subscribers.set(topic, set);
    const cb = onMessage as (m: IncomingMessage) => void;
    set.add(cb);
    return () => set.delete(cb);
  }
  publish(topic: string, type: string, data: unknown): void {
    this.published.push({ atMs: this.scheduler.now(), topic, type, data });
  }
  nowNs(): bigint {
    return ms(this.scheduler.now());
  }
  async close(): Promise<void> {}
  deliver(msg: IncomingMessage, atMs: number): void {
    this.scheduler.schedule(() => this.subscribers.get(msg.topic)?.forEach((cb) => cb({ ...msg, receivedNs: ms(atMs) })), atMs);
  }
}

describe('the control loop, wired', () => {
  it('publishes one bounded command per tick from fresh sensor data, holds on silence, and records aligned transitions', () => {
    const scheduler = testScheduler();
    const transport = new MemoryTransport(scheduler);
    const counters: MessageCounters = {};
    const interventions = newInterventionCounts();
    const transitions: Transition[] = [];
    let subscription: Subscription | undefined;
    const sensor: SensorSpec = { topic: '/joint_states', type: 'sensor_msgs/msg/JointState', fields: [field('/joint_states', 'sensor_msgs/msg/JointState.position[0]')], maxAgeMs: 30 };
    const safety: SafetyConfig = {
      safeAction: [0],
      watchdogTimeoutMs: 25,
      onControllerError: 'safeAction',
      estop: { topic: '/estop', type: 'std_msgs/msg/Bool', field: field('/estop', 'std_msgs/msg/Bool.data') },
    };
    const toMsg = toActionMessage({ type: 'geometry_msgs/msg/Twist', fields: [field('/cmd_vel', 'geometry_msgs/msg/Twist.angular.z')] });
    scheduler.run(() => {
      const clock = () => transport.nowNs();
      const samples = merge(fromTransport(transport, sensor.topic, sensor.type).pipe(validateMessages(sensor, counters, clock))).pipe(share());
      const safe = samples.pipe(
        assembleState({ sensors: [sensor], periodMs: 10, scheduler, clock }),
        map((state) => ({ state, action: [-2 * state.obs[0]] })), // u = −2 q, bounds ±1
        safetyFilter({ safety, bounds: { low: [-1], high: [1] }, periodMs: 10, sensorData: samples, estop: fromTransport(transport, '/estop', 'std_msgs/msg/Bool'), scheduler, counters: interventions }),
        share(),
      );
      subscription = safe.subscribe((a) => transport.publish('/cmd_vel', 'geometry_msgs/msg/Twist', toMsg(a.action, a.stampNs)));
      subscription.add(safe.pipe(assembleTransitions((o, a) => -(o[0] * o[0]) - 0.5 * a[0] * a[0])).subscribe((t) => transitions.push(t)));
      // q = 0.25, 0.5, 1 at 5, 15, 25 ms (one NaN reading at 20 ms is dropped), then silence until 75 ms.
      transport.deliver(jointState([0.25], 5), 5);
      transport.deliver(jointState([0.5], 15), 15);
      transport.deliver(jointState([NaN], 20), 20);
      transport.deliver(jointState([1], 25), 25);
      transport.deliver(jointState([0.125], 75), 75);
      transport.deliver(bool('/estop', true), 92);
      scheduler.schedule(() => subscription?.unsubscribe(), 105);
    });

    // A command every 10 ms from the first tick with data; holds (0) while the watchdog trips (60, 70 ms) and after the e-stop.
    expect(transport.published.map((p) => [p.atMs, (p.data as { angular: { z: number } }).angular.z])).toEqual([
      [10, -0.5],
      [20, -1],
      [30, -1], // −2 clipped
      [40, -1], // 15 ms since data
      [50, -1], // 25 ms: not more than the timeout
      [60, 0], // watchdog
      [70, 0],
      [80, -0.25], // data again at 75 ms
      [90, -0.25],
      [100, 0], // e-stop at 92 ms
    ]);
    expect(transport.published[0].data).toEqual({ linear: { x: 0, y: 0, z: 0 }, angular: { x: 0, y: 0, z: -0.5 } });
    expect(counters['/joint_states']).toMatchObject({ received: 5, passed: 4, dropped: { nonFinite: 1 } });
    expect(interventions).toEqual({ ...newInterventionCounts(), clip: 3, watchdog: 2, estop: 1 }); // −2 at 30, 40, 50 ms
    // Transitions: 10→20 and 20→30, each from a new reading to the next. No reading arrives between 30 and
    // 40 ms, so the state at 40 is the one at 30 held (q = 1 again, not what −1 did): 30→40 and 40→50 are
    // dropped, and 20→30 ends its episode; the state at 60 ms is stale (q from 25 ms, maxAgeMs 30) and the
    // watchdog holds 60 and 70. The reading at 75 ms is the only one before the e-stop, so 80→90 and 90→100
    // hold it and are dropped too.
    expect(transitions.map((t) => [t.obs[0], t.action[0], t.nextObs[0], t.truncated])).toEqual([
      [0.25, -0.5, 0.5, false],
      [0.5, -1, 1, true],
    ]);
    expect(transitions[0].reward).toBe(-(0.25 * 0.25) - 0.5 * 0.25);
    expect(transitions[0].stampNs).toBe(ms(10));
    // Unsubscribing released the transport's subscriptions.
    expect([...transport.subscribers.values()].every((s) => s.size === 0)).toBe(true);
  });
});
