import { Observable, Subscription, asyncScheduler, interval, type OperatorFunction, type SchedulerAction, type SchedulerLike } from 'rxjs';
import { ValidationError } from '../core/errors.js';
import type { ResampleRule } from '../data/bagMapping.js';
import type { Sample } from './validateMessages.js';

/** The observation at one control tick. */
export interface ControlState {
  /**
   * The tick's index: on the grid 0 at the first period after subscribing, +1 each period (ticks
   * before every topic had a value are not emitted); with a sample trigger 0, 1, 2, … per tick.
   */
  tick: number;
  /** The clock at the tick, nanoseconds. */
  stampNs: bigint;
  /** The sensors' fields concatenated in the configured order. */
  obs: Float64Array;
  /** Stamp of each topic's newest sample, in the configured order, nanoseconds. */
  sampleStampsNs: bigint[];
  /** Topics whose newest sample is older than their `maxAgeMs` at the tick. */
  stale: string[];
  /** Topics with no new sample since the previous tick (their value is held). */
  missing: string[];
}

/** Options of `assembleState`. */
export interface AssembleStateOptions {
  /** The topics in observation order, each with its staleness limit (default none). */
  sensors: readonly { topic: string; maxAgeMs?: number }[];
  /** The control period, milliseconds. */
  periodMs: number;
  /**
   * `latest` (default): each topic's newest value (zero-order hold). `linear`: every topic
   * interpolated to the newest instant all of them cover (the oldest of their newest stamps),
   * so fast topics line up with the slowest instead of being extrapolated; the state then lags
   * by up to the slowest topic's period.
   */
  rule?: ResampleRule;
  /**
   * What starts a tick. Default: the grid, one tick every `periodMs`. With a `SampleTrigger`, a
   * tick follows each sample of its topic at once (so the action does not wait for the grid).
   */
  trigger?: SampleTrigger;
  /** Drives the ticks (the grid's, or a trigger's fallback ticks). Default `asyncScheduler`; tests pass a `TestScheduler`. */
  scheduler?: SchedulerLike;
  /** The clock staleness is measured on, nanoseconds (the transport's `nowNs`). Default: the scheduler's `now()`. */
  clock?: () => bigint;
}

/**
 * Ticks on a sensor's samples instead of the grid: each sample of `topic` (once every topic has
 * delivered one) starts a tick at once, unless the previous sample-started tick was less than
 * `minIntervalMs` ago (a burst of samples is not a burst of actions; the sample's value is still
 * used by the next tick). When no tick has come for `fallbackAfterMs`, ticks go on on the grid (every
 * `periodMs`) until the topic's next sample, so a silent sensor still gets ticks: the watchdog
 * and the safe action run on them as on the grid.
 */
export interface SampleTrigger {
  topic: string;
  minIntervalMs: number;
  fallbackAfterMs: number;
}

/** Samples kept per topic for `linear`; beyond it the oldest go (a hold at the oldest kept). */
const HISTORY_LIMIT = 4096;

/**
 * Samples the latest sensor values on the control grid: emits one `ControlState` per control
 * tick (RxJS `interval(periodMs)` on the given scheduler, or a `SampleTrigger`'s samples), none
 * until every topic has delivered a sample. Completes when the samples complete.
 * @example
 * merge(...sensorStreams).pipe(assembleState({ sensors, periodMs: 50, rule: 'latest', clock: () => t.nowNs() }))
 */
export function assembleState(options: AssembleStateOptions): OperatorFunction<Sample, ControlState> {
  const { sensors, periodMs } = options;
  const rule = options.rule ?? 'latest';
  const scheduler = options.scheduler ?? asyncScheduler;
  const clock = options.clock ?? (() => BigInt(Math.round(scheduler.now() * 1e6)));
  if (!(periodMs > 0)) throw new ValidationError('assembleState', 'periodMs', `expected a positive number of milliseconds, got ${periodMs}`);
  const index = new Map(sensors.map((s, i) => [s.topic, i]));
  if (index.size !== sensors.length) throw new ValidationError('assembleState', 'sensors', 'expected each topic once');
  const maxAgeNs = sensors.map((s) => (s.maxAgeMs === undefined ? undefined : BigInt(Math.round(s.maxAgeMs * 1e6))));
  const trigger = options.trigger;
  const triggerIndex = trigger ? index.get(trigger.topic) : undefined;
  if (trigger) {
    if (triggerIndex === undefined) throw new ValidationError('assembleState', 'trigger.topic', `${trigger.topic} is not one of the sensors (${sensors.map((s) => s.topic).join(', ')})`);
    if (!(trigger.minIntervalMs >= 0 && trigger.minIntervalMs <= periodMs)) throw new ValidationError('assembleState', 'trigger.minIntervalMs', `expected milliseconds in [0, periodMs = ${periodMs}], got ${trigger.minIntervalMs}`);
    if (!(trigger.fallbackAfterMs >= periodMs && Number.isFinite(trigger.fallbackAfterMs))) throw new ValidationError('assembleState', 'trigger.fallbackAfterMs', `expected finite milliseconds ≥ periodMs (${periodMs}), got ${trigger.fallbackAfterMs}`);
  }
  return (source) =>
    new Observable<ControlState>((subscriber) => {
      const history: Sample[][] = sensors.map(() => []);
      const fresh = sensors.map(() => false);
      /** Emits the tick's state; false when some topic has had no sample yet. */
      const emit = (tick: number): boolean => {
        if (history.some((h) => h.length === 0)) return false;
        const nowNs = clock();
        const newest = history.map((h) => h[h.length - 1]);
        const atNs = rule === 'linear' ? newest.reduce((m, s) => (s.stampNs < m ? s.stampNs : m), newest[0].stampNs) : undefined;
        const parts = history.map((h) => (atNs === undefined ? h[h.length - 1].values : interpolate(h, atNs)));
        const obs = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
        let offset = 0;
        for (const p of parts) {
          obs.set(p, offset);
          offset += p.length;
        }
        const stale = sensors.filter((s, i) => maxAgeNs[i] !== undefined && nowNs - newest[i].stampNs > (maxAgeNs[i] as bigint)).map((s) => s.topic);
        const missing = sensors.filter((_, i) => !fresh[i]).map((s) => s.topic);
        fresh.fill(false);
        subscriber.next({ tick, stampNs: nowNs, obs, sampleStampsNs: newest.map((s) => s.stampNs), stale, missing });
        return true;
      };
      // The grid; or, with a trigger, the fallback. Its timer is not re-armed at every sample
      // (a timer reset per message costs more than the tick): when it fires it checks the time
      // since the last tick and waits the rest. That check also absorbs timers that fire early
      // (Node's run on whole milliseconds).
      let ticks: Subscription = Subscription.EMPTY;
      let nextTick = 0;
      let lastTickMs = Number.NEGATIVE_INFINITY;
      let lastSampleTickMs = Number.NEGATIVE_INFINITY;
      /** Whether the fallback is ticking (the trigger topic silent for `fallbackAfterMs`). */
      let fallbackTicking = false;
      const onTick = (): boolean => {
        if (!emit(nextTick)) return false;
        nextTick++;
        lastTickMs = scheduler.now();
        return true;
      };
      if (trigger) {
        ticks = scheduler.schedule(function (this: SchedulerAction<undefined>) {
          const wait = lastTickMs + (fallbackTicking ? periodMs : trigger.fallbackAfterMs) - scheduler.now();
          if (wait > 0) {
            this.schedule(undefined, wait);
            return;
          }
          fallbackTicking = true;
          onTick();
          this.schedule(undefined, periodMs);
        }, trigger.fallbackAfterMs);
      } else {
        ticks = interval(periodMs, scheduler).subscribe((tick) => emit(tick));
      }
      const samples = source.subscribe({
        next(sample) {
          const i = index.get(sample.topic);
          if (i === undefined) return subscriber.error(new ValidationError('assembleState', 'sample.topic', `${sample.topic} is not one of the configured sensors (${sensors.map((s) => s.topic).join(', ')})`));
          const h = history[i];
          const last = h[h.length - 1];
          if (last && sample.values.length !== last.values.length) {
            return subscriber.error(new ValidationError('assembleState', sample.topic, `expected ${last.values.length} values as before, got ${sample.values.length} (validateMessages drops such messages)`));
          }
          fresh[i] = true;
          if (rule === 'latest') h[0] = sample;
          else if (!last || sample.stampNs > last.stampNs) h.push(sample);
          else return; // out of order: validateMessages drops these; keep the history sorted regardless
          if (rule === 'linear') prune(history);
          if (i === triggerIndex && scheduler.now() - lastSampleTickMs >= (trigger as SampleTrigger).minIntervalMs && onTick()) {
            lastSampleTickMs = lastTickMs;
            fallbackTicking = false;
          }
        },
        error: (err: unknown) => subscriber.error(err),
        complete: () => subscriber.complete(),
      });
      return () => {
        ticks.unsubscribe();
        samples.unsubscribe();
      };
    });
}

/** The value at `atNs`, linear between the samples around it; the nearest end outside them. */
function interpolate(h: readonly Sample[], atNs: bigint): Float64Array {
  let k = h.length - 1;
  while (k > 0 && h[k].stampNs > atNs) k--;
  const a = h[k];
  const b = h[k + 1];
  if (!b || a.stampNs >= atNs) return a.values;
  const w = Number(atNs - a.stampNs) / Number(b.stampNs - a.stampNs);
  const out = new Float64Array(a.values.length);
  for (let i = 0; i < out.length; i++) out[i] = a.values[i] + w * (b.values[i] - a.values[i]);
  return out;
}

/**
 * Drops samples no longer needed: everything before the last sample at or before the instant
 * `linear` evaluates at (the oldest newest stamp), which can only move forward.
 */
function prune(history: Sample[][]): void {
  if (history.some((h) => h.length === 0)) {
    for (const h of history) if (h.length > HISTORY_LIMIT) h.splice(0, h.length - HISTORY_LIMIT);
    return;
  }
  const atNs = history.reduce((m, h) => (h[h.length - 1].stampNs < m ? h[h.length - 1].stampNs : m), history[0][history[0].length - 1].stampNs);
  for (const h of history) {
    let k = h.length - 1;
    while (k > 0 && h[k].stampNs > atNs) k--;
    if (k > 0) h.splice(0, k);
    if (h.length > HISTORY_LIMIT) h.splice(0, h.length - HISTORY_LIMIT);
  }
}
