/**
 * Simulated time for the control node and `SimTransport` together: an RxJS `VirtualTimeScheduler`
 * whose frames are run from the event loop (a few at a time, between `setImmediate`s) instead of
 * all at once by `flush()`, so the learner's messages, disk writes and timers keep flowing.
 *
 * Lockstep: while something holds the scheduler (`hold()`: the control node holds it while an
 * asynchronous controller is computing an action), simulated time stands still, so a slow planner
 * costs wall time, never simulated time: the simulated robot waits for its action as a real one
 * could not. Everything else runs as fast as the CPU allows, capped at `maxRealTimeFactor` times
 * the wall clock (a cap keeps cheap phases, such as random exploration before the first model,
 * from outrunning the learner by thousands of steps).
 *
 * Real time: `RealTimeScheduler` drives the node's ticks against the wall clock on a fixed grid
 * (see its comment); Node's own timers cannot hold a 1 kHz period.
 */
import { Subscription, VirtualAction, VirtualTimeScheduler, type SchedulerAction, type SchedulerLike } from 'rxjs';
import { ValidationError, describe } from '../core/errors.js';

/**
 * `VirtualAction`, except that an action rescheduling itself (as `interval` does every period) is
 * requeued as it is. `VirtualAction` instead chains a new action under the old one each time,
 * which is harmless in a short test but grows without bound over a long run: after a few thousand
 * periods, unsubscribing the chain overflows the stack.
 */
class LockstepAction<T> extends VirtualAction<T> {
  override schedule(state?: T, delay = 0): Subscription {
    if (!Number.isFinite(delay) || this.closed) return Subscription.EMPTY;
    const actions = this.scheduler.actions;
    const queued = actions.indexOf(this);
    if (queued >= 0) actions.splice(queued, 1);
    // Equal frames run in the order they were (re)scheduled, as with VirtualAction.
    this.index = this.scheduler.index += 1;
    this.id = undefined;
    return super.schedule(state, delay);
  }
}

/** Options of `new LockstepScheduler`. */
export interface LockstepSchedulerOptions {
  /** At most this many simulated milliseconds per wall millisecond. Default Infinity (no cap). */
  maxRealTimeFactor?: number;
  /** Longest run of frames between yields to the event loop, wall milliseconds. Default 5. */
  sliceMs?: number;
  /** Told when a frame's work throws (the scheduler then stops). Default: `console.error`. */
  onError?: (err: unknown) => void;
}

/**
 * A virtual-time scheduler run in lockstep with its holders (see the file comment). `now()` is
 * simulated milliseconds since the start.
 *
 * @example
 * const scheduler = new LockstepScheduler({ maxRealTimeFactor: 10 });
 * const sim = new SimTransport({ env: 'Pendulum-v1', scheduler });
 * scheduler.start();
 * const release = scheduler.hold(); // simulated time stops …
 * release();                         // … and goes on
 */
export class LockstepScheduler extends VirtualTimeScheduler {
  readonly maxRealTimeFactor: number;
  readonly #sliceMs: number;
  readonly #onError: (err: unknown) => void;
  #holds = 0;
  #running = false;
  #wake: NodeJS.Immediate | NodeJS.Timeout | null = null;
  #wallStartMs = 0;
  #frameAtStart = 0;

  constructor(options: LockstepSchedulerOptions = {}) {
    super(LockstepAction as unknown as ConstructorParameters<typeof VirtualTimeScheduler>[0]);
    const where = 'LockstepScheduler';
    const factor = options.maxRealTimeFactor ?? Infinity;
    if (!(typeof factor === 'number' && factor > 0)) throw new ValidationError(where, 'maxRealTimeFactor', `expected a number > 0 (or Infinity), got ${describe(factor)}`);
    const slice = options.sliceMs ?? 5;
    if (!(typeof slice === 'number' && Number.isFinite(slice) && slice > 0)) throw new ValidationError(where, 'sliceMs', `expected a finite number > 0, got ${describe(slice)}`);
    this.maxRealTimeFactor = factor;
    this.#sliceMs = slice;
    this.#onError = options.onError ?? ((err) => console.error('[mbrl] LockstepScheduler:', err));
  }

  /** Schedules as `VirtualTimeScheduler` does, and wakes the pump if it was idle. */
  override schedule<T>(work: (this: SchedulerAction<T>, state?: T) => void, delay = 0, state?: T): Subscription {
    const sub = super.schedule(work, delay, state);
    if (this.#holds === 0) this.#schedulePump(0);
    return sub;
  }

  /** Whether frames are being run (between `start` and `stop`). */
  get running(): boolean {
    return this.#running;
  }

  /** Active holds. */
  get holds(): number {
    return this.#holds;
  }

  /** Starts running frames from the event loop. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#wallStartMs = performance.now();
    this.#frameAtStart = this.frame;
    this.#schedulePump(0);
  }

  /** Stops running frames; what is queued stays queued. Idempotent. */
  stop(): void {
    this.#running = false;
    this.#cancelPump();
  }

  /**
   * Stops simulated time until the returned function is called (once; later calls do nothing).
   * Holds nest: time goes on when every one is released.
   */
  hold(): () => void {
    this.#holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#holds--;
      if (this.#holds === 0) this.#schedulePump(0);
    };
  }

  #cancelPump(): void {
    if (this.#wake === null) return;
    if (typeof (this.#wake as NodeJS.Timeout).refresh === 'function') clearTimeout(this.#wake as NodeJS.Timeout);
    else clearImmediate(this.#wake as NodeJS.Immediate);
    this.#wake = null;
  }

  #schedulePump(delayMs: number): void {
    if (!this.#running || this.#wake !== null) return;
    this.#wake = delayMs > 0 ? setTimeout(this.#pump, delayMs) : setImmediate(this.#pump);
  }

  /** Runs frames until a hold, an empty queue, the real-time cap or the end of the slice. */
  #pump = (): void => {
    this.#wake = null;
    const sliceEnd = performance.now() + this.#sliceMs;
    while (this.#running && this.#holds === 0) {
      const next = this.actions[0];
      if (next === undefined) return; // idle until `schedule` or a release wakes the pump
      const allowed = this.#frameAtStart + (performance.now() - this.#wallStartMs) * this.maxRealTimeFactor;
      if (next.delay > allowed) {
        this.#schedulePump(Math.max(1, (next.delay - allowed) / this.maxRealTimeFactor));
        return;
      }
      // Runs every action due at that frame (and those they schedule for the same frame).
      this.maxFrames = next.delay;
      try {
        this.flush();
      } catch (err) {
        this.stop();
        this.#onError(err);
        return;
      }
      if (performance.now() >= sliceEnd) break;
    }
    this.#schedulePump(0);
  };
}

/** Options of `new RealTimeScheduler`. */
export interface RealTimeSchedulerOptions {
  /**
   * The last stretch before a due time that is waited out by polling the event loop
   * (`setImmediate`, so I/O keeps flowing) instead of a timer, wall milliseconds. Node's timers
   * have a 1 ms resolution and fire up to a millisecond or more late. 0: timers only. Default 2.
   */
  spinMs?: number;
  /**
   * Between two polls, the thread sleeps this long (`Atomics.wait`, a futex with a timeout)
   * while the due time is further away, wall milliseconds; 0 polls without sleeping. Sleeping
   * keeps the polling's CPU cost low and, on a loaded machine, keeps the thread a sleeper that
   * the kernel runs as soon as it wakes instead of a busy task waiting for its turn. Measured on
   * the 2-core development machine at load 6–8 (nice 5, 5 s at 1 kHz, three runs each): 10–25 %
   * of the periods skipped against 20–37 % with a busy poll, at 25–29 % CPU against 53–76 %; at
   * 100 Hz a p99 lateness of 1.4–4.7 ms against 4.8–7.9 ms. I/O is handled at most this much
   * later. Default 0.05.
   */
  napMs?: number;
}

/** Counters of a `RealTimeScheduler`, over all its actions. */
export interface RealTimeSchedulerStats {
  /** Actions run. */
  runs: number;
  /**
   * Periods of a repeating action (`interval`) that got no run: the action was more than a period
   * late, ran once for the latest of them, and the grid went on from there.
   */
  skipped: number;
  /** The largest lateness of a run (after skipping), wall milliseconds; 0 before any. */
  maxLatenessMs: number;
}

/**
 * An RxJS scheduler for a real-time control loop: each action runs at its due time on the wall
 * clock (`performance.now()`), reached by a timer to `spinMs` before it and from there polling of
 * the event loop with short sleeps in between (`napMs`), so it is typically a few microseconds
 * late instead of up to a millisecond or more. A repeating action (rescheduled from its own run, as `interval` does) keeps a fixed grid,
 * due = previous due + period, so the rate does not drift by the run's own time as `setInterval`
 * does (measured here: `setInterval(…, 1)` gives about 880 Hz). When a run is more than a period
 * late (the thread was busy or descheduled), the periods it missed are skipped, not caught up
 * with a burst of runs; they are counted (`stats.skipped`).
 *
 * It does not make the thread real-time: a busy event loop, a GC pause or the operating system
 * preempting the process still delays a run; `stats` shows by how much.
 *
 * @example
 * const scheduler = new RealTimeScheduler();
 * interval(1, scheduler).subscribe(tick);   // 1 kHz, on the grid
 * scheduler.stats;                          // { runs, skipped, maxLatenessMs }
 */
export class RealTimeScheduler implements SchedulerLike {
  readonly spinMs: number;
  readonly napMs: number;
  readonly #host: ActionHost;

  constructor(options: RealTimeSchedulerOptions = {}) {
    const spin = options.spinMs ?? 2;
    if (!(typeof spin === 'number' && Number.isFinite(spin) && spin >= 0)) throw new ValidationError('RealTimeScheduler', 'spinMs', `expected a finite number of milliseconds ≥ 0, got ${describe(spin)}`);
    const nap = options.napMs ?? 0.05;
    if (!(typeof nap === 'number' && Number.isFinite(nap) && nap >= 0 && nap <= 1)) throw new ValidationError('RealTimeScheduler', 'napMs', `expected a number of milliseconds in [0, 1], got ${describe(nap)}`);
    this.spinMs = spin;
    this.napMs = nap;
    this.#host = { spinMs: spin, napMs: nap, counters: { runs: 0, skipped: 0, maxLatenessMs: 0 }, runningDueMs: undefined };
  }

  /** Wall milliseconds (`performance.now()`). */
  now(): number {
    return performance.now();
  }

  schedule<T>(work: (this: SchedulerAction<T>, state?: T) => void, delay = 0, state?: T): Subscription {
    return new RealTimeAction<T>(this.#host, work).schedule(state, delay);
  }

  /** A copy of the counters. */
  get stats(): RealTimeSchedulerStats {
    return { ...this.#host.counters };
  }

  /**
   * While an action runs: the wall time it was due at (`performance.now()` milliseconds, after
   * skipping), so the work can tell how late it is; undefined otherwise.
   */
  get currentDueMs(): number | undefined {
    return this.#host.runningDueMs;
  }
}

/** What a scheduler shares with its actions. */
interface ActionHost {
  readonly spinMs: number;
  readonly napMs: number;
  readonly counters: RealTimeSchedulerStats;
  /** The due time of the action running now. */
  runningDueMs: number | undefined;
}

/** What `Atomics.wait` sleeps on (never notified: every wait ends by its timeout). */
const NAP_CELL = new Int32Array(new SharedArrayBuffer(4));
/** A nap ends at least this long before the due time. */
const NAP_MARGIN_MS = 0.03;

/** One action of a `RealTimeScheduler`: a timer, then polling with short sleeps, then the work. */
class RealTimeAction<T> extends Subscription implements SchedulerAction<T> {
  readonly #host: ActionHost;
  readonly #work: (this: SchedulerAction<T>, state?: T) => void;
  #state: T | undefined;
  #dueMs = Number.NaN;
  #periodMs = 0;
  /** Whether the due time continues the grid of the previous run (a rescheduling from the work). */
  #onGrid = false;
  #running = false;
  #timer: NodeJS.Timeout | null = null;
  #immediate: NodeJS.Immediate | null = null;

  constructor(host: ActionHost, work: (this: SchedulerAction<T>, state?: T) => void) {
    super(() => this.#cancel());
    this.#host = host;
    this.#work = work;
  }

  schedule(state?: T, delay = 0): Subscription {
    if (this.closed) return this;
    const d = Number.isFinite(delay) && delay > 0 ? delay : 0;
    this.#state = state;
    // Rescheduled from its own run: the next point of the grid, not `d` after now.
    this.#onGrid = this.#running && Number.isFinite(this.#dueMs);
    this.#dueMs = this.#onGrid ? this.#dueMs + d : performance.now() + d;
    this.#periodMs = d;
    this.#cancel();
    this.#arm();
    return this;
  }

  #arm(): void {
    const timerMs = this.#dueMs - performance.now() - this.#host.spinMs;
    // Node's timers count whole milliseconds; a shorter wait is polled.
    if (timerMs >= 1) this.#timer = setTimeout(this.#poll, Math.floor(timerMs));
    else this.#immediate = setImmediate(this.#poll);
  }

  #cancel(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    if (this.#immediate !== null) clearImmediate(this.#immediate);
    this.#timer = null;
    this.#immediate = null;
  }

  #poll = (): void => {
    this.#timer = null;
    this.#immediate = null;
    if (this.closed) return;
    const now = performance.now();
    if (now < this.#dueMs) {
      // A short sleep while the due time is not near (the wake-up itself takes some 20–50 µs).
      const { napMs } = this.#host;
      if (napMs > 0 && this.#dueMs - now > napMs + NAP_MARGIN_MS) Atomics.wait(NAP_CELL, 0, 0, napMs);
      return this.#arm();
    }
    let lateMs = now - this.#dueMs;
    const counters = this.#host.counters;
    if (this.#onGrid && this.#periodMs > 0 && lateMs >= this.#periodMs) {
      const missed = Math.floor(lateMs / this.#periodMs);
      counters.skipped += missed;
      this.#dueMs += missed * this.#periodMs;
      lateMs -= missed * this.#periodMs;
    }
    counters.runs++;
    if (lateMs > counters.maxLatenessMs) counters.maxLatenessMs = lateMs;
    this.#running = true;
    const outer = this.#host.runningDueMs;
    this.#host.runningDueMs = this.#dueMs;
    try {
      this.#work.call(this, this.#state);
    } catch (err) {
      // As RxJS's own schedulers: the action ends and the error is thrown (uncaught, from a timer).
      this.unsubscribe();
      throw err;
    } finally {
      this.#running = false;
      this.#host.runningDueMs = outer;
    }
    // Not rescheduled by the work: done.
    if (this.#timer === null && this.#immediate === null) this.unsubscribe();
  };
}
