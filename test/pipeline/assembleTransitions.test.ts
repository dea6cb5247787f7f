// assembleTransitions: s_{t+1} is the next tick's state, a_t the action sent at t; pairs across
// an e-stop / watchdog hold, a skipped tick, a stale topic or a held observation (no new sample)
// are dropped, counted by reason, and the episode is cut before them. The reward encodes (s, a, s') so any misalignment changes it.
import { describe, it } from 'vitest';
import type { Transition } from '../../src/data/transition.js';
import { expect } from 'vitest';
import { assembleTransitions, type RewardFn, type TickRecord, type TransitionSkipReason } from '../../src/pipeline/assembleTransitions.js';
import { ms, testScheduler } from './marbles.js';

/** Tick k: observation [k] from one topic (/js, with a new sample unless `held`), action [10 k], stamped 10 (k + 1) ms. */
function rec(k: number, extra: { hold?: 'estop' | 'watchdog'; stale?: string[]; held?: boolean } = {}): TickRecord {
  return {
    tick: k,
    stampNs: ms(10 * (k + 1)),
    state: { obs: Float64Array.of(k), stale: extra.stale ?? [], missing: extra.held ? ['/js'] : [], sampleStampsNs: [ms(10 * k + 5)] },
    action: Float64Array.of(10 * k),
    ...(extra.hold ? { hold: extra.hold } : {}),
  };
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
    const skipped: string[] = [];
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
      expectObservable(ticks.pipe(assembleTransitions(reward, undefined, (reason, tick) => skipped.push(`${reason}@${tick}`)))).toBe('30ms a 9ms b 29ms c 19ms d 19ms |', {
        a: tr(0, 1),
        b: tr(1, 2, { truncated: true }), // (2, 3) is dropped: the watchdog held tick 2
        c: tr(3, 4, { truncated: true }), // (4, 6) is dropped: tick 5 is missing
        d: tr(6, 7, { truncated: true }), // (7, 8) and (8, 9) are dropped: tick 8 is stale
      });
    });
    expect(skipped).toEqual(['hold@2', 'notConsecutive@4', 'stale@7', 'stale@8']);
  });

  it('drops both pairs around a tick that got no new sample: s_{t+1} read before a_t was sent, then two robot steps under one action', () => {
    const scheduler = testScheduler();
    const skipped: TransitionSkipReason[] = [];
    scheduler.run(({ hot, expectObservable }) => {
      // Tick 2 holds tick 1's reading (the sample came just after the tick): (1, 2) would say a_1 did nothing,
      // (2, 3) would credit a_2 with two steps of motion.
      const ticks = hot('10ms a 9ms b 9ms c 9ms d 9ms e 9ms f 9ms |', { a: rec(0), b: rec(1), c: rec(2, { held: true }), d: rec(3), e: rec(4), f: rec(5) });
      expectObservable(ticks.pipe(assembleTransitions(reward, undefined, (reason) => skipped.push(reason)))).toBe('30ms a 29ms b 9ms (c|)', {
        a: tr(0, 1, { truncated: true }),
        b: tr(3, 4),
        c: tr(4, 5, { truncated: true }),
      });
    });
    expect(skipped).toEqual(['noNewSample', 'noNewSample']);
  });

  it('keeps a pair when one of several topics was held (zero-order hold; maxAgeMs bounds its age)', () => {
    const scheduler = testScheduler();
    const twoTopics = (k: number, missing: string[]): TickRecord => {
      const r = rec(k);
      return { ...r, state: { ...r.state, missing, sampleStampsNs: [ms(10 * k + 5), ms(10 * k + 5)] } };
    };
    scheduler.run(({ hot, expectObservable }) => {
      const ticks = hot('10ms a 9ms b 9ms c 9ms |', { a: twoTopics(0, []), b: twoTopics(1, ['/slow']), c: twoTopics(2, ['/slow', '/fast']) });
      expectObservable(ticks.pipe(assembleTransitions(reward))).toBe('30ms a 9ms |', { a: tr(0, 1, { truncated: true }) });
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
