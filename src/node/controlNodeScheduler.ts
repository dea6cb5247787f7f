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
 */
import { Subscription, VirtualAction, VirtualTimeScheduler, type SchedulerAction } from 'rxjs';
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
