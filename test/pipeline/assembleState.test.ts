// assembleState: one state per control tick in virtual time, nothing before every topic has a
// value, held values marked missing, silent topics marked stale, and linear alignment computed by
// hand.
import { describe, expect, it } from 'vitest';
import { assembleState, type ControlState } from '../../src/pipeline/assembleState.js';
import type { Sample } from '../../src/pipeline/validateMessages.js';
import { clockOf, ms, testScheduler } from './marbles.js';

const s = (topic: string, values: number[], stampMs: number): Sample => ({ topic, values: Float64Array.from(values), stampNs: ms(stampMs), receivedNs: ms(stampMs) });

function state(tick: number, atMs: number, obs: number[], sampleStampsMs: number[], stale: string[], missing: string[]): ControlState {
  return { tick, stampNs: ms(atMs), obs: Float64Array.from(obs), sampleStampsNs: sampleStampsMs.map(ms), stale, missing };
}

describe('assembleState', () => {
  it('emits at the control rate from the latest values, once every topic has one, marking held and stale topics', () => {
    const scheduler = testScheduler();
    scheduler.run(({ hot, expectObservable }) => {
      // /a at 3, 13, 23, 33 then silent; /b (two values a message) at 15 and 35.
      const samples = hot('3ms a 9ms b 1ms c 7ms d 9ms e 1ms f', {
        a: s('/a', [1], 3),
        b: s('/a', [2], 13),
        c: s('/b', [10, 20], 15),
        d: s('/a', [3], 23),
        e: s('/a', [4], 33),
        f: s('/b', [11, 21], 35),
      });
      const out = samples.pipe(assembleState({ sensors: [{ topic: '/a', maxAgeMs: 25 }, { topic: '/b' }], periodMs: 10, scheduler, clock: clockOf(scheduler) }));
      // Tick 0 (10 ms): /b has no value yet, so no state.
      expectObservable(out, '^ 64ms !').toBe('20ms p 9ms q 9ms r 9ms t 9ms u', {
        p: state(1, 20, [2, 10, 20], [13, 15], [], []),
        q: state(2, 30, [3, 10, 20], [23, 15], [], ['/b']),
        r: state(3, 40, [4, 11, 21], [33, 35], [], []),
        t: state(4, 50, [4, 11, 21], [33, 35], [], ['/a', '/b']), // /a 17 ms old: within 25
        u: state(5, 60, [4, 11, 21], [33, 35], ['/a'], ['/a', '/b']), // /a 27 ms old
      });
    });
  });

  it('linear: interpolates every topic to the newest instant all of them cover', () => {
    const scheduler = testScheduler();
    scheduler.run(({ hot, expectObservable }) => {
      // /fast every 4 ms with value = stamp; /slow at 6 ms (100) and 14 ms (200).
      const samples = hot('a 3ms b 1ms s 1ms c 3ms d 1ms t 1ms e', {
        a: s('/fast', [0], 0),
        b: s('/fast', [4], 4),
        s: s('/slow', [100], 6),
        c: s('/fast', [8], 8),
        d: s('/fast', [12], 12),
        t: s('/slow', [200], 14),
        e: s('/fast', [16], 16),
      });
      const out = samples.pipe(assembleState({ sensors: [{ topic: '/fast' }, { topic: '/slow' }], periodMs: 10, rule: 'linear', scheduler }));
      // At 10 ms the newest stamps are 8 and 6: evaluated at 6, /fast lies halfway from 4 to 8.
      // At 20 ms they are 16 and 14: /fast is evaluated at 14, halfway from 12 to 16.
      expectObservable(out, '^ 24ms !').toBe('10ms p 9ms q', {
        p: state(0, 10, [6, 100], [8, 6], [], []),
        q: state(1, 20, [14, 200], [16, 14], [], []),
      });
    });
  });

  it('sample trigger: a tick at each sample of the topic, at most one per minIntervalMs, grid ticks while it is silent', () => {
    const scheduler = testScheduler();
    scheduler.run(({ hot, expectObservable }) => {
      // /b at 1; /a (the trigger) at 3, 5 (2 ms after a tick: too soon), 12, then silent until 40.
      const samples = hot('1ms b 1ms a 1ms c 6ms d 27ms e', {
        b: s('/b', [10], 1),
        a: s('/a', [1], 3),
        c: s('/a', [2], 5),
        d: s('/a', [3], 12),
        e: s('/a', [4], 40),
      });
      const trigger = { topic: '/a', minIntervalMs: 5, fallbackAfterMs: 15 };
      const out = samples.pipe(assembleState({ sensors: [{ topic: '/a' }, { topic: '/b' }], periodMs: 10, trigger, scheduler, clock: clockOf(scheduler) }));
      // Fallback ticks 15 ms after the tick at 12 (27), then every period (37) until the sample at 40.
      expectObservable(out, '^ 49ms !').toBe('3ms p 8ms q 14ms r 9ms t 2ms u', {
        p: state(0, 3, [1, 10], [3, 1], [], []),
        q: state(1, 12, [3, 10], [12, 1], [], ['/b']),
        r: state(2, 27, [3, 10], [12, 1], [], ['/a', '/b']),
        t: state(3, 37, [3, 10], [12, 1], [], ['/a', '/b']),
        u: state(4, 40, [4, 10], [40, 1], [], ['/b']),
      });
    });
  });

  it('sample trigger: ticks on the fallback grid before the trigger topic speaks, and rejects bad trigger settings', () => {
    const scheduler = testScheduler();
    scheduler.run(({ hot, expectObservable }) => {
      const samples = hot('2ms b', { b: s('/b', [7], 2) });
      const trigger = { topic: '/a', minIntervalMs: 5, fallbackAfterMs: 15 };
      // /a never speaks: no state (it has no value); /b alone as the trigger's other topic.
      expectObservable(samples.pipe(assembleState({ sensors: [{ topic: '/a' }, { topic: '/b' }], periodMs: 10, trigger, scheduler })), '^ 40ms !').toBe('');
      const only = { topic: '/b', minIntervalMs: 5, fallbackAfterMs: 15 };
      // The trigger's own first sample ticks at 2; then fallback at 17, 27, 37.
      expectObservable(samples.pipe(assembleState({ sensors: [{ topic: '/b' }], periodMs: 10, trigger: only, scheduler, clock: clockOf(scheduler) })), '^ 40ms !').toBe('2ms p 14ms q 9ms r 9ms t', {
        p: state(0, 2, [7], [2], [], []),
        q: state(1, 17, [7], [2], [], ['/b']),
        r: state(2, 27, [7], [2], [], ['/b']),
        t: state(3, 37, [7], [2], [], ['/b']),
      });
    });
    const sensors = [{ topic: '/a' }];
    expect(() => assembleState({ sensors, periodMs: 10, trigger: { topic: '/z', minIntervalMs: 5, fallbackAfterMs: 15 } })).toThrow('/z is not one of the sensors (/a)');
    expect(() => assembleState({ sensors, periodMs: 10, trigger: { topic: '/a', minIntervalMs: 11, fallbackAfterMs: 15 } })).toThrow('trigger.minIntervalMs');
    expect(() => assembleState({ sensors, periodMs: 10, trigger: { topic: '/a', minIntervalMs: 5, fallbackAfterMs: 9 } })).toThrow('trigger.fallbackAfterMs');
  });

  it('completes with its samples and rejects a topic it was not configured with', () => {
    const scheduler = testScheduler();
    scheduler.run(({ cold, expectObservable }) => {
      const done = cold('a 14ms |', { a: s('/a', [1], 0) });
      expectObservable(done.pipe(assembleState({ sensors: [{ topic: '/a' }], periodMs: 10, scheduler }))).toBe('10ms p 4ms |', {
        p: state(0, 10, [1], [0], [], []),
      });
      const stray = cold('a', { a: s('/z', [1], 0) });
      expectObservable(stray.pipe(assembleState({ sensors: [{ topic: '/a' }], periodMs: 10, scheduler }))).toBe(
        '#',
        undefined,
        expect.objectContaining({ message: expect.stringContaining('/z is not one of the configured sensors (/a)') }),
      );
    });
  });
});
