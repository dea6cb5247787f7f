import { Observable, asyncScheduler, type OperatorFunction, type SchedulerLike } from 'rxjs';
import { ValidationError } from '../core/errors.js';
import { extractField, type BagField } from '../data/bagMapping.js';
import type { IncomingMessage } from '../transports/transport.js';
import type { ControlState } from './assembleState.js';

/** The safety settings (the node config's `safety`, parsed). */
export interface SafetyConfig {
  /** The action held on e-stop, watchdog and controller errors; inside the action bounds. */
  safeAction: readonly number[];
  /** Largest change per second of each action dimension; undefined: no rate limit. */
  maxRatePerSec?: readonly number[];
  /** Longer than this without any sensor sample holds the safe action, milliseconds. */
  watchdogTimeoutMs: number;
  /** What a controller error does: send the safe action, hold the last sent action, or send the safe action and end the stream with the error. */
  onControllerError: 'safeAction' | 'holdLast' | 'stop';
  /** The e-stop topic: a non-zero / true `field` engages (latches) the stop, zero / false clears it. */
  estop?: { topic: string; type: string; field: BagField };
}

/** What the controller proposed at one tick. */
export interface ControlDecision {
  state: ControlState;
  /** The proposed action; absent when the controller failed (`error`). */
  action?: ArrayLike<number>;
  /** The controller's error, if it threw or timed out. */
  error?: unknown;
}

/**
 * Why the filter changed an action. `estop`, `watchdog`: the safe action is held (latched);
 * `controllerError`: the controller failed; `nonFinite`: NaN or ±Infinity in the action;
 * `badLength`: the action has the wrong length; `clip`: outside the bounds; `rateLimit`: a
 * change faster than `maxRatePerSec`.
 */
export type InterventionReason = 'estop' | 'watchdog' | 'controllerError' | 'nonFinite' | 'badLength' | 'clip' | 'rateLimit';

/** The reasons, in the order they are checked. */
export const INTERVENTION_REASONS: readonly InterventionReason[] = ['estop', 'watchdog', 'controllerError', 'nonFinite', 'badLength', 'clip', 'rateLimit'];

/** Ticks per intervention reason. */
export type InterventionCounts = Record<InterventionReason, number>;

/** The action to send at one tick, and what the filter did to it. */
export interface SafeAction {
  tick: number;
  stampNs: bigint;
  state: ControlState;
  /** The action to publish: inside the bounds, rate-limited, finite. */
  action: Float64Array;
  /** What the controller proposed (absent on a controller error). */
  proposed?: Float64Array;
  /** Every intervention at this tick, in check order; empty when the action passed unchanged. */
  interventions: InterventionReason[];
  /** Set while the safe action is held because of an e-stop or the watchdog: the robot is not under the controller. */
  hold?: 'estop' | 'watchdog';
}

/**
 * One entry of the safety log: an intervention, or the release of a held condition. An e-stop or
 * watchdog hold is logged once when it starts and once when it ends, not at every tick it lasts.
 */
export interface SafetyEvent {
  reason: InterventionReason;
  /** `engaged`: a hold begins (or an e-stop message latches); `released`: it ends; `tick`: a one-tick intervention. */
  phase: 'engaged' | 'released' | 'tick';
  /** The control tick, when the event belongs to one (an e-stop message arrives between ticks). */
  tick?: number;
  detail: string;
}

/** Options of `safetyFilter`. */
export interface SafetyFilterOptions {
  safety: SafetyConfig;
  /** The action bounds (`actionBounds` in the config). */
  bounds: { low: ArrayLike<number>; high: ArrayLike<number> };
  /** The control period, milliseconds: the rate limit allows `maxRatePerSec × periodMs / 1000` per tick. */
  periodMs: number;
  /**
   * Any emission is sensor data arriving (the validated samples): it feeds the watchdog. Pass the
   * same shared stream (`share()`) that feeds `assembleState`, so the transport is subscribed once.
   */
  sensorData: Observable<unknown>;
  /** The e-stop topic's messages (`fromTransport`); required when `safety.estop` is set. */
  estop?: Observable<IncomingMessage>;
  /** Times the watchdog. Default `asyncScheduler`; tests pass a `TestScheduler`. */
  scheduler?: SchedulerLike;
  /** Ticks are added here per reason (create it with `newInterventionCounts()` to read it). */
  counters?: InterventionCounts;
  /** Told about every intervention and release. */
  log?: (event: SafetyEvent) => void;
}

/** A zeroed `InterventionCounts`. */
export function newInterventionCounts(): InterventionCounts {
  const c = {} as InterventionCounts;
  for (const r of INTERVENTION_REASONS) c[r] = 0;
  return c;
}

/**
 * The last word before an action reaches the robot. At each tick, in order:
 * 1. e-stop latched (a true / non-zero e-stop message, or one that cannot be read) → the safe
 *    action, until a false / zero message clears it;
 * 2. watchdog: no sensor sample for longer than `watchdogTimeoutMs` → the safe action, until
 *    samples arrive again;
 * 3. controller error → per `onControllerError`;
 * 4. NaN, ±Infinity or a wrong length in the proposed action → the safe action;
 * 5. clip to the bounds, then limit each dimension's change since the last sent action to
 *    `maxRatePerSec × periodMs / 1000`.
 * Safe actions are sent as they are (not rate-limited: stopping comes first); the rate limit
 * starts from the safe action, so the controller ramps back up after a hold. Before the first
 * tick the last sent action is taken to be the safe action. Conditions take effect at the next
 * tick (within one period).
 * @example
 * decisions$.pipe(safetyFilter({ safety, bounds, periodMs: 50, sensorData: samples$, estop: estop$, counters, log }))
 */
export function safetyFilter(options: SafetyFilterOptions): OperatorFunction<ControlDecision, SafeAction> {
  const { safety, bounds, periodMs } = options;
  const dim = safety.safeAction.length;
  const where = 'safetyFilter';
  if (bounds.low.length !== dim || bounds.high.length !== dim) throw new ValidationError(where, 'bounds', `expected ${dim} bounds (the safe action's length), got low ${bounds.low.length}, high ${bounds.high.length}`);
  if (safety.maxRatePerSec && safety.maxRatePerSec.length !== dim) throw new ValidationError(where, 'safety.maxRatePerSec', `expected ${dim} rates, got ${safety.maxRatePerSec.length}`);
  if (safety.estop && !options.estop) throw new ValidationError(where, 'estop', `safety.estop names ${safety.estop.topic} but no e-stop stream was given`);
  const scheduler = options.scheduler ?? asyncScheduler;
  const counters = options.counters ?? newInterventionCounts();
  const log = options.log ?? (() => undefined);
  const safe = Float64Array.from(safety.safeAction);
  const maxStep = safety.maxRatePerSec?.map((r) => (r * periodMs) / 1000);
  return (source) =>
    new Observable<SafeAction>((subscriber) => {
      let estopped = false;
      let lastSensorMs = scheduler.now();
      let hold: SafeAction['hold'];
      let last: Float64Array = Float64Array.from(safe);
      const subs = [
        options.sensorData.subscribe({ next: () => (lastSensorMs = scheduler.now()), error: (err: unknown) => subscriber.error(err) }),
      ];
      if (safety.estop && options.estop) {
        const field = safety.estop.field;
        subs.push(
          options.estop.subscribe({
            next(msg) {
              const values: number[] = [];
              const problem = extractField(msg.data, field, values);
              const engage = problem !== undefined || values.length !== 1 || values[0] !== 0;
              if (engage === estopped) return;
              estopped = engage;
              log({
                reason: 'estop',
                phase: engage ? 'engaged' : 'released',
                detail: problem ? `unreadable e-stop message on ${msg.topic} (${problem.message}): stopping` : `${engage ? 'e-stop' : 'cleared'} by ${msg.topic}`,
              });
            },
            error: (err: unknown) => subscriber.error(err),
          }),
        );
      }
      subs.push(
        source.subscribe({
          next(decision) {
            const { state } = decision;
            const interventions: InterventionReason[] = [];
            const note = (reason: InterventionReason, detail: string): void => {
              interventions.push(reason);
              counters[reason]++;
              log({ reason, phase: 'tick', tick: state.tick, detail });
            };
            const silentMs = scheduler.now() - lastSensorMs;
            const nowHold: SafeAction['hold'] = estopped ? 'estop' : silentMs > safety.watchdogTimeoutMs ? 'watchdog' : undefined;
            // The e-stop logs its latch as messages arrive; the watchdog logs here, at the ticks it starts and ends.
            if (hold !== nowHold) {
              if (hold === 'watchdog') log({ reason: 'watchdog', phase: 'released', tick: state.tick, detail: 'sensor data again: watchdog released' });
              if (nowHold === 'watchdog') log({ reason: 'watchdog', phase: 'engaged', tick: state.tick, detail: `no sensor data for ${silentMs} ms (watchdogTimeoutMs ${safety.watchdogTimeoutMs}): holding the safe action` });
              hold = nowHold;
            }
            const proposed = decision.action === undefined ? undefined : Float64Array.from(decision.action);
            const emit = (a: Float64Array): void => {
              last = a;
              subscriber.next({
                tick: state.tick,
                stampNs: state.stampNs,
                state,
                action: Float64Array.from(a),
                ...(proposed ? { proposed } : {}),
                interventions,
                ...(hold ? { hold } : {}),
              });
            };
            let action: Float64Array;
            if (hold) {
              interventions.push(hold);
              counters[hold]++;
              action = Float64Array.from(safe);
            } else if (decision.error !== undefined || proposed === undefined) {
              const message = decision.error instanceof Error ? decision.error.message : String(decision.error ?? 'no action');
              action = safety.onControllerError === 'holdLast' ? Float64Array.from(last) : Float64Array.from(safe);
              note('controllerError', `controller failed (${message}): ${safety.onControllerError === 'holdLast' ? 'holding the last action' : 'safe action'}`);
              if (safety.onControllerError === 'stop') {
                emit(action);
                subscriber.error(decision.error instanceof Error ? decision.error : new Error(message));
                return;
              }
            } else if (proposed.length !== dim) {
              action = Float64Array.from(safe);
              note('badLength', `expected ${dim} values, got ${proposed.length}: safe action`);
            } else if (proposed.some((v) => !Number.isFinite(v))) {
              action = Float64Array.from(safe);
              note('nonFinite', `proposed [${Array.from(proposed).join(', ')}]: safe action`);
            } else {
              action = Float64Array.from(proposed);
              let clipped = false;
              for (let i = 0; i < dim; i++) {
                const v = Math.min(bounds.high[i], Math.max(bounds.low[i], action[i]));
                if (v !== action[i]) clipped = true;
                action[i] = v;
              }
              if (clipped) note('clip', `proposed [${Array.from(proposed).join(', ')}] clipped to [${Array.from(action).join(', ')}]`);
              if (maxStep) {
                let limited = false;
                for (let i = 0; i < dim; i++) {
                  const v = Math.min(last[i] + maxStep[i], Math.max(last[i] - maxStep[i], action[i]));
                  if (v !== action[i]) limited = true;
                  action[i] = v;
                }
                if (limited) note('rateLimit', `limited to [${Array.from(action).join(', ')}] from [${Array.from(last).join(', ')}]`);
              }
            }
            emit(action);
          },
          error: (err: unknown) => subscriber.error(err),
          complete: () => subscriber.complete(),
        }),
      );
      return () => subs.forEach((s) => s.unsubscribe());
    });
}
