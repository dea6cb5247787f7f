// safetyFilter in virtual time: clipping and the per-dimension rate limit on hand-computed
// sequences (values chosen to be exact in binary), NaN / wrong length / controller errors → the
// safe action, the watchdog's hold and release, the e-stop's latch and clear, and the counts and
// log entries of each intervention.
import { NEVER, type Observable } from 'rxjs';
import { describe, expect, it } from 'vitest';
import type { ControlState } from '../../src/pipeline/assembleState.js';
import {
  newInterventionCounts,
  safetyFilter,
  type ControlDecision,
  type InterventionReason,
  type SafeAction,
  type SafetyConfig,
  type SafetyEvent,
} from '../../src/pipeline/safetyFilter.js';
import type { IncomingMessage } from '../../src/transports/transport.js';
import { bool, field, ms, testScheduler } from './marbles.js';

/** The state at tick k (ticks every 10 ms from 10 ms). */
const st = (k: number): ControlState => ({ tick: k, stampNs: ms(10 * (k + 1)), obs: Float64Array.of(k), sampleStampsNs: [], stale: [], missing: [] });
const act = (k: number, action: number[]): ControlDecision => ({ state: st(k), action });
const fail = (k: number, message: string): ControlDecision => ({ state: st(k), error: new Error(message) });

/** The expected output at tick k. */
function out(k: number, action: number[], proposed: number[] | undefined, interventions: InterventionReason[], hold?: 'estop' | 'watchdog'): SafeAction {
  return {
    tick: k,
    stampNs: ms(10 * (k + 1)),
    state: st(k),
    action: Float64Array.from(action),
    ...(proposed ? { proposed: Float64Array.from(proposed) } : {}),
    interventions,
    ...(hold ? { hold } : {}),
  };
}

const TICKS = '10ms a 9ms b 9ms c 9ms d 9ms e 9ms f 9ms g 9ms h 9ms i';

function base(overrides: Partial<SafetyConfig> = {}): SafetyConfig {
  return { safeAction: [0], watchdogTimeoutMs: 1e9, onControllerError: 'safeAction', ...overrides };
}

describe('safetyFilter', () => {
  it('clips to the bounds, then limits each dimension\'s change per tick (from the safe action at start)', () => {
    const scheduler = testScheduler();
    const counters = newInterventionCounts();
    const log: SafetyEvent[] = [];
    scheduler.run(({ hot, expectObservable }) => {
      // maxRatePerSec [12.5, 100] at 10 ms a tick: steps of at most 0.125 and 1.
      const safety = base({ safeAction: [0, 0], maxRatePerSec: [12.5, 100] });
      const decisions = hot('10ms a 9ms b 9ms c 9ms d', { a: act(0, [0.0625, 5]), b: act(1, [0.5, 1.5]), c: act(2, [0.25, 1.25]), d: act(3, [-3, -2]) });
      const filtered = decisions.pipe(safetyFilter({ safety, bounds: { low: [-1, -2], high: [1, 2] }, periodMs: 10, sensorData: NEVER, scheduler, counters, log: (e) => log.push(e) }));
      expectObservable(filtered).toBe('10ms a 9ms b 9ms c 9ms d', {
        a: out(0, [0.0625, 1], [0.0625, 5], ['clip', 'rateLimit']), // 5 → 2 (bound) → 1 (0 + 1)
        b: out(1, [0.1875, 1.5], [0.5, 1.5], ['rateLimit']), // 0.0625 + 0.125
        c: out(2, [0.25, 1.25], [0.25, 1.25], []),
        d: out(3, [0.125, 0.25], [-3, -2], ['clip', 'rateLimit']), // → [-1, -2] → [0.25 − 0.125, 1.25 − 1]
      });
    });
    expect(counters).toEqual({ ...newInterventionCounts(), clip: 2, rateLimit: 3 });
    expect(log.map((e) => `${e.tick} ${e.reason} ${e.phase}`)).toEqual(['0 clip tick', '0 rateLimit tick', '1 rateLimit tick', '3 clip tick', '3 rateLimit tick']);
    expect(log[0].detail).toBe('proposed [0.0625, 5] clipped to [0.0625, 2]');
  });

  it('sends the safe action for NaN, ±Infinity, a wrong length and a controller error', () => {
    const scheduler = testScheduler();
    const counters = newInterventionCounts();
    scheduler.run(({ hot, expectObservable }) => {
      const decisions = hot('10ms a 9ms b 9ms c 9ms d 9ms e', { a: act(0, [0.75]), b: act(1, [NaN]), c: fail(2, 'planner threw'), d: act(3, [0.5, 0.5]), e: act(4, [-Infinity]) });
      const filtered = decisions.pipe(safetyFilter({ safety: base({ safeAction: [0.25] }), bounds: { low: [-1], high: [1] }, periodMs: 10, sensorData: NEVER, scheduler, counters }));
      expectObservable(filtered).toBe('10ms a 9ms b 9ms c 9ms d 9ms e', {
        a: out(0, [0.75], [0.75], []),
        b: out(1, [0.25], [NaN], ['nonFinite']),
        c: out(2, [0.25], undefined, ['controllerError']),
        d: out(3, [0.25], [0.5, 0.5], ['badLength']),
        e: out(4, [0.25], [-Infinity], ['nonFinite']),
      });
    });
    expect(counters).toEqual({ ...newInterventionCounts(), nonFinite: 2, controllerError: 1, badLength: 1 });
  });

  it('on a controller error holds the last action (holdLast), or sends the safe action and ends with the error (stop)', () => {
    const scheduler = testScheduler();
    scheduler.run(({ hot, expectObservable }) => {
      const decisions = hot('10ms a 9ms b 9ms c', { a: act(0, [0.75]), b: fail(1, 'timed out'), c: act(2, [0.5]) });
      const opts = { bounds: { low: [-1], high: [1] }, periodMs: 10, sensorData: NEVER, scheduler };
      expectObservable(decisions.pipe(safetyFilter({ ...opts, safety: base({ onControllerError: 'holdLast' }) }))).toBe('10ms a 9ms b 9ms c', {
        a: out(0, [0.75], [0.75], []),
        b: out(1, [0.75], undefined, ['controllerError']),
        c: out(2, [0.5], [0.5], []),
      });
      expectObservable(decisions.pipe(safetyFilter({ ...opts, safety: base({ onControllerError: 'stop' }) }))).toBe(
        '10ms a 9ms (b#)',
        { a: out(0, [0.75], [0.75], []), b: out(1, [0], undefined, ['controllerError']) },
        new Error('timed out'),
      );
    });
  });

  it('watchdog: holds the safe action while no sensor data has come for longer than watchdogTimeoutMs, then ramps back', () => {
    const scheduler = testScheduler();
    const counters = newInterventionCounts();
    const log: SafetyEvent[] = [];
    scheduler.run(({ hot, expectObservable }) => {
      // Sensor data at 0, 5, 15, then nothing until 62, then every 5 ms.
      const sensors = hot('x 4ms x 9ms x 46ms x 2ms x 4ms x 4ms x 4ms x', { x: 1 });
      const decisions = hot('10ms a 9ms b 9ms c 9ms d 9ms e 9ms f 9ms g 9ms h', { a: act(0, [1]), b: act(1, [1]), c: act(2, [1]), d: act(3, [1]), e: act(4, [1]), f: act(5, [1]), g: act(6, [1]), h: act(7, [1]) });
      const safety = base({ watchdogTimeoutMs: 25, maxRatePerSec: [25] }); // steps of 0.25
      const filtered = decisions.pipe(safetyFilter({ safety, bounds: { low: [-1], high: [1] }, periodMs: 10, sensorData: sensors, scheduler, counters, log: (e) => log.push(e) }));
      expectObservable(filtered).toBe('10ms a 9ms b 9ms c 9ms d 9ms e 9ms f 9ms g 9ms h', {
        a: out(0, [0.25], [1], ['rateLimit']),
        b: out(1, [0.5], [1], ['rateLimit']),
        c: out(2, [0.75], [1], ['rateLimit']),
        d: out(3, [1], [1], []), // at 40 ms: 25 ms since the last data, not more
        e: out(4, [0], [1], ['watchdog'], 'watchdog'), // at 50 ms: 35 ms
        f: out(5, [0], [1], ['watchdog'], 'watchdog'),
        g: out(6, [0.25], [1], ['rateLimit']), // data at 62 ms: released, ramping from the safe action
        h: out(7, [0.5], [1], ['rateLimit']),
      });
    });
    expect(counters).toEqual({ ...newInterventionCounts(), watchdog: 2, rateLimit: 5 });
    const holds = log.filter((e) => e.reason === 'watchdog');
    expect(holds.map((e) => `${e.tick} ${e.phase}`)).toEqual(['4 engaged', '6 released']);
    expect(holds[0].detail).toContain('no sensor data for 35 ms (watchdogTimeoutMs 25)');
  });

  it('e-stop: a true message latches the safe action until a false one; an unreadable one stops too', () => {
    const scheduler = testScheduler();
    const counters = newInterventionCounts();
    const log: SafetyEvent[] = [];
    const unreadable: IncomingMessage = { topic: '/estop', type: 'std_msgs/msg/Bool', data: { state: 'on' }, receivedNs: 0n };
    scheduler.run(({ hot, expectObservable }) => {
      const sensors = hot('x 4ms x 4ms x 4ms x 4ms x 4ms x 4ms x 4ms x 4ms x 4ms x 4ms x 4ms x 4ms x 4ms x 4ms x 4ms x 4ms x 4ms x 4ms x 4ms x', { x: 1 });
      // Stop at 25 (and again at 35: no change), clear at 55, unreadable at 75.
      const estop: Observable<IncomingMessage> = hot('25ms s 9ms s 19ms c 19ms u', { s: bool('/estop', true), c: bool('/estop', false), u: unreadable });
      const decisions = hot(TICKS, { a: act(0, [0.5]), b: act(1, [0.5]), c: act(2, [0.5]), d: act(3, [0.5]), e: act(4, [0.5]), f: act(5, [0.5]), g: act(6, [0.5]), h: act(7, [0.5]), i: act(8, [0.5]) });
      const safety = base({ watchdogTimeoutMs: 25, estop: { topic: '/estop', type: 'std_msgs/msg/Bool', field: field('/estop', 'std_msgs/msg/Bool.data') } });
      const filtered = decisions.pipe(safetyFilter({ safety, bounds: { low: [-1], high: [1] }, periodMs: 10, sensorData: sensors, estop, scheduler, counters, log: (e) => log.push(e) }));
      expectObservable(filtered).toBe(TICKS, {
        a: out(0, [0.5], [0.5], []),
        b: out(1, [0.5], [0.5], []),
        c: out(2, [0], [0.5], ['estop'], 'estop'),
        d: out(3, [0], [0.5], ['estop'], 'estop'),
        e: out(4, [0], [0.5], ['estop'], 'estop'),
        f: out(5, [0.5], [0.5], []),
        g: out(6, [0.5], [0.5], []),
        h: out(7, [0], [0.5], ['estop'], 'estop'),
        i: out(8, [0], [0.5], ['estop'], 'estop'),
      });
    });
    expect(counters).toEqual({ ...newInterventionCounts(), estop: 5 });
    expect(log.map((e) => `${e.reason} ${e.phase}: ${e.detail}`)).toEqual([
      'estop engaged: e-stop by /estop',
      'estop released: cleared by /estop',
      'estop engaged: unreadable e-stop message on /estop (no field "data" at the message root; fields: state): stopping',
    ]);
  });

  it('rejects bounds and rates that do not match the safe action', () => {
    expect(() => safetyFilter({ safety: base({ safeAction: [0, 0] }), bounds: { low: [-1], high: [1] }, periodMs: 10, sensorData: NEVER })).toThrow(
      'safetyFilter: bounds: expected 2 bounds (the safe action\'s length), got low 1, high 1',
    );
    expect(() => safetyFilter({ safety: base({ maxRatePerSec: [1, 2] }), bounds: { low: [-1], high: [1] }, periodMs: 10, sensorData: NEVER })).toThrow('safety.maxRatePerSec: expected 1 rates, got 2');
  });
});
