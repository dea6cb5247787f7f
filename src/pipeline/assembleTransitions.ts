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
  state: { obs: Float64Array; stale: readonly string[] };
  /** The action sent at this tick. */
  action: Float64Array;
  /** Set while an e-stop or the watchdog holds the safe action. */
  hold?: 'estop' | 'watchdog';
}

/**
 * Pairs consecutive control ticks into transitions (s_t, a_t, r_t, s_{t+1}): the next
 * observation is the next tick's state, never the current one, and `a_t` is the action sent at
 * tick t (after the safety filter), so the data describe what the robot did.
 *
 * A pair is dropped when the ticks are not consecutive (a tick was skipped), when tick t was
 * held by an e-stop or the watchdog (the robot was not under the action, or the state was not
 * real), or when either state has a stale topic. The transition before a dropped pair ends its
 * episode (`truncated`), and the next kept one starts a new episode. To know that, each
 * transition is emitted one tick late; the last one is emitted, truncated, on completion.
 * @param reward r(s, a, s'), e.g. the task's known reward
 * @param terminated the task's termination (default: never; a robot's episodes are cut, not ended)
 * @example safeActions$.pipe(assembleTransitions(pendulumReward)).subscribe((t) => buffer.add(t))
 */
export function assembleTransitions(reward: RewardFn, terminated?: TerminatedFn): OperatorFunction<TickRecord, Transition> {
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
          const usable = cur.tick === p.tick + 1 && p.hold === undefined && p.state.stale.length === 0 && cur.state.stale.length === 0;
          if (!usable) return flush(true);
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
