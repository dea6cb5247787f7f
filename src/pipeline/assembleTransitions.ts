import { Observable, type OperatorFunction } from 'rxjs';
import type { Transition } from '../data/transition.js';

/** r(s, a, s') of one step. */
export type RewardFn = (obs: Float64Array, action: Float64Array, nextObs: Float64Array) => number;

/** Whether s' is terminal (the task's termination). */
export type TerminatedFn = (obs: Float64Array, action: Float64Array, nextObs: Float64Array) => boolean;

/** What `assembleTransitions` reads of each tick (a `SafeAction`). */
export interface TickRecord {
  tick: number;
  stampNs: bigint;
  state: {
    obs: Float64Array;
    stale: readonly string[];
    /** Topics with no new sample since the previous tick (their value is held). */
    missing: readonly string[];
    /** Stamp of each topic's newest sample: one per configured topic. */
    sampleStampsNs: readonly bigint[];
  };
  /** The action sent at this tick. */
  action: Float64Array;
  /** Set while an e-stop or the watchdog holds the safe action. */
  hold?: 'estop' | 'watchdog';
}

/**
 * Why a pair of ticks (t, t+1) is not stored as a transition. `notConsecutive`: a tick between
 * them is missing (an episode boundary, or a period the loop was too late for); `hold`: an e-stop or the watchdog held tick t;
 * `stale`: a topic of either state is older than its `maxAgeMs`; `noNewSample`: no topic
 * delivered a new sample before tick t or before tick t+1 (its observation is a held one).
 */
export type TransitionSkipReason = 'notConsecutive' | 'hold' | 'stale' | 'noNewSample';

/** The reasons, in the order they are checked. */
export const TRANSITION_SKIP_REASONS: readonly TransitionSkipReason[] = ['notConsecutive', 'hold', 'stale', 'noNewSample'];

/**
 * Pairs consecutive control ticks into transitions (s_t, a_t, r_t, s_{t+1}): the next
 * observation is the next tick's state, never the current one, and `a_t` is the action sent at
 * tick t (after the safety filter), so the data describe what the robot did.
 *
 * A pair is dropped (see `TransitionSkipReason`) when the ticks are not consecutive (a tick was
 * skipped), when tick t was held by an e-stop or the watchdog (the robot was not under the
 * action, or the state was not real), when either state has a stale topic, or when either tick
 * got no new sample on any topic. The last rule keeps held observations out: s_{t+1} read before
 * a_t was sent says nothing about a_t (it is s_t again), and the pair after it spans two of the
 * robot's steps under one action. This happens at every sensor gap (a broker restart, a robot
 * that stopped publishing) before the watchdog or `maxAgeMs` trips, and whenever a robot
 * publishing at the control rate delivers a reading just after a tick instead of just before
 * it. The transition before a dropped pair ends its episode (`truncated`), and the next kept
 * one starts a new episode. To know that, each transition is emitted one tick late; the last
 * one is emitted, truncated, on completion.
 * @param reward r(s, a, s'), e.g. the task's known reward
 * @param terminated the task's termination (default: never; a robot's episodes are cut, not ended)
 * @param onSkip told about each dropped pair: why, and tick t (for counters)
 * @example safeActions$.pipe(assembleTransitions(pendulumReward)).subscribe((t) => buffer.add(t))
 */
export function assembleTransitions(reward: RewardFn, terminated?: TerminatedFn, onSkip?: (reason: TransitionSkipReason, tick: number) => void): OperatorFunction<TickRecord, Transition> {
  return (source) =>
    new Observable<Transition>((subscriber) => {
      let prev: TickRecord | undefined;
      let pending: Transition | undefined;
      const flush = (truncated: boolean): void => {
        if (!pending) return;
        const t = pending;
        pending = undefined;
        subscriber.next({ ...t, truncated });
      };
      return source.subscribe({
        next(cur) {
          const p = prev;
          prev = cur;
          if (!p) return;
          const skip = skipReason(p, cur);
          if (skip !== undefined) {
            onSkip?.(skip, p.tick);
            return flush(true);
          }
          const obs = p.state.obs;
          const action = p.action;
          const nextObs = cur.state.obs;
          const t: Transition = {
            obs,
            action,
            reward: reward(obs, action, nextObs),
            nextObs,
            terminated: terminated ? terminated(obs, action, nextObs) : false,
            truncated: false,
            stampNs: p.stampNs,
          };
          flush(false);
          if (t.terminated) subscriber.next(t);
          else pending = t;
        },
        error: (err: unknown) => subscriber.error(err),
        complete() {
          flush(true);
          subscriber.complete();
        },
      });
    });
}

/** Why (p, cur) is not a transition, or undefined when it is one. */
function skipReason(p: TickRecord, cur: TickRecord): TransitionSkipReason | undefined {
  if (cur.tick !== p.tick + 1) return 'notConsecutive';
  if (p.hold !== undefined) return 'hold';
  if (p.state.stale.length > 0 || cur.state.stale.length > 0) return 'stale';
  // Every topic held: nothing was read since the previous tick.
  const held = (s: TickRecord['state']): boolean => s.missing.length > 0 && s.missing.length >= s.sampleStampsNs.length;
  if (held(p.state) || held(cur.state)) return 'noNewSample';
  return undefined;
}
