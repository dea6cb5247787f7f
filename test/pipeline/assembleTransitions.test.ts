// assembleTransitions: s_{t+1} is the next tick's state, a_t the action sent at t; pairs across
// an e-stop / watchdog hold, a skipped tick or a stale topic are dropped and the episode is cut
// before them. The reward encodes (s, a, s') so any misalignment changes it.
import { describe, it } from 'vitest';
import type { Transition } from '../../src/data/transition.js';
import { assembleTransitions, type RewardFn, type TickRecord } from '../../src/pipeline/assembleTransitions.js';
import { ms, testScheduler } from './marbles.js';

/** Tick k: observation [k], action [10 k], stamped 10 (k + 1) ms. */
function rec(k: number, extra: { hold?: 'estop' | 'watchdog'; stale?: string[] } = {}): TickRecord {
  return { tick: k, stampNs: ms(10 * (k + 1)), state: { obs: Float64Array.of(k), stale: extra.stale ?? [] }, action: Float64Array.of(10 * k), ...(extra.hold ? { hold: extra.hold } : {}) };
}

/** r = s + 100 a + 1000 s': each of s, a, s' is recoverable from r. */
const reward: RewardFn = (o, a, n) => o[0] + 100 * a[0] + 1000 * n[0];

function tr(k: number, next: number, flags: { truncated?: boolean; terminated?: boolean } = {}): Transition {
  return {
    obs: Float64Array.of(k),
    action: Float64Array.of(10 * k),
    reward: k + 1000 * k + 1000 * next,
    nextObs: Float64Array.of(next),
    terminated: flags.terminated ?? false,
    truncated: flags.truncated ?? false,
    stampNs: ms(10 * (k + 1)),
  };
}

describe('assembleTransitions', () => {
  it('pairs tick t with tick t+1, one tick late, and cuts the episode at the end of the stream', () => {
    const scheduler = testScheduler();
    scheduler.run(({ hot, expectObservable }) => {
      const ticks = hot('10ms a 9ms b 9ms c 9ms d 9ms e 9ms |', { a: rec(0), b: rec(1), c: rec(2), d: rec(3), e: rec(4) });
      expectObservable(ticks.pipe(assembleTransitions(reward))).toBe('30ms a 9ms b 9ms c 9ms (d|)', {
        a: tr(0, 1), // r = 0 + 0 + 1000
        b: tr(1, 2), // r = 1 + 1000 + 2000
        c: tr(2, 3),
        d: tr(3, 4, { truncated: true }),
      });
    });
  });

  it('drops pairs across a hold, a skipped tick or a stale topic, truncating the transition before each', () => {
    const scheduler = testScheduler();
    scheduler.run(({ hot, expectObservable }) => {
      // Ticks 0 1 2(held by the watchdog) 3 4 _ 6 7 8(stale) 9 arrive at 10 (k + 1) ms.
      const ticks = hot('10ms a 9ms b 9ms c 9ms d 9ms e 19ms g 9ms h 9ms i 9ms j 9ms |', {
        a: rec(0),
        b: rec(1),
        c: rec(2, { hold: 'watchdog' }),
        d: rec(3),
        e: rec(4),
        g: rec(6),
        h: rec(7),
        i: rec(8, { stale: ['/imu'] }),
        j: rec(9),
      });
      expectObservable(ticks.pipe(assembleTransitions(reward))).toBe('30ms a 9ms b 29ms c 19ms d 19ms |', {
        a: tr(0, 1),
        b: tr(1, 2, { truncated: true }), // (2, 3) is dropped: the watchdog held tick 2
        c: tr(3, 4, { truncated: true }), // (4, 6) is dropped: tick 5 is missing
        d: tr(6, 7, { truncated: true }), // (7, 8) and (8, 9) are dropped: tick 8 is stale
      });
    });
  });

  it('emits a terminal transition at once, ending its episode', () => {
    const scheduler = testScheduler();
    scheduler.run(({ hot, expectObservable }) => {
      const ticks = hot('10ms a 9ms b 9ms c 9ms d 9ms |', { a: rec(0), b: rec(1), c: rec(2), d: rec(3) });
      const done = (_o: Float64Array, _a: Float64Array, n: Float64Array): boolean => n[0] >= 2;
      expectObservable(ticks.pipe(assembleTransitions(reward, done))).toBe('30ms (ab) 6ms c 9ms |', {
        a: tr(0, 1),
        b: tr(1, 2, { terminated: true }),
        c: tr(2, 3, { terminated: true }),
      });
    });
  });
});
