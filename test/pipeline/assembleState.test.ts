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
