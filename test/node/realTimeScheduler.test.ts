// RealTimeScheduler: a repeating action stays on its grid (due = first due + k · period, however
// late a run was), periods it was too late for are skipped and counted (runs + skipped = periods
// elapsed), a one-off action runs once, and an unsubscribed one never. The assertions hold
// whatever the machine's load: they check the grid arithmetic, not how punctual the runs were.
import { interval, lastValueFrom, take, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { RealTimeScheduler } from '../../src/node/controlNodeScheduler.js';

/** Blocks the thread for `ms` (a stand-in for a tick whose work overran its period). */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

describe('RealTimeScheduler', () => {
  it('keeps interval() on a fixed grid and skips, counting them, the periods a late run missed', async () => {
    const period = 10;
    // As interval() on any scheduler: 0, 1, 2, … and completion with take().
    expect(await lastValueFrom(interval(period, new RealTimeScheduler()).pipe(take(4), toArray()))).toEqual([0, 1, 2, 3]);

    // Recording each run's due time, with run 2 overrunning by 3.5 periods.
    const dues: number[] = [];
    let early = 0;
    const s2 = new RealTimeScheduler();
    await new Promise<void>((resolve) => {
      const sub = interval(period, s2).subscribe((k) => {
        const due = s2.currentDueMs as number;
        dues.push(due);
        if (performance.now() < due) early++;
        if (k === 2) busy(3.5 * period);
        if (k === 7) {
          sub.unsubscribe();
          resolve();
        }
      });
    });
    expect(early).toBe(0); // never before its due time
    expect(s2.currentDueMs).toBeUndefined(); // outside a run
    const steps = dues.slice(1).map((d, i) => (d - dues[i]) / period);
    // Every due time is a whole number of periods after the previous one (no drift) …
    for (const k of steps) expect(Math.abs(k - Math.round(k))).toBeLessThan(1e-6);
    // … the overrun skipped at least the 2 periods it fully covered, and every period is a run or a skip.
    const stats = s2.stats;
    expect(stats.runs).toBe(8);
    expect(stats.skipped).toBeGreaterThanOrEqual(2);
    expect(Math.round((dues[7] - dues[0]) / period)).toBe(stats.runs - 1 + stats.skipped);
    expect(steps[2]).toBeGreaterThanOrEqual(3); // the run after the overrun moved to a later grid point
    expect(stats.maxLatenessMs).toBeLessThan(period); // after skipping, a run is less than a period late
  });

  it('runs a one-off action once, never runs an unsubscribed one, and rejects a bad spinMs or napMs', async () => {
    const scheduler = new RealTimeScheduler({ spinMs: 0 });
    let once = 0;
    let cancelled = 0;
    const action = scheduler.schedule(() => void once++, 5);
    scheduler.schedule(() => void cancelled++, 5).unsubscribe();
    await new Promise((r) => setTimeout(r, 30));
    expect(once).toBe(1);
    expect(action.closed).toBe(true);
    expect(cancelled).toBe(0);
    expect(scheduler.stats.runs).toBe(1);
    expect(() => new RealTimeScheduler({ spinMs: -1 })).toThrow(ValidationError);
    expect(() => new RealTimeScheduler({ spinMs: -1 })).toThrow(/RealTimeScheduler: spinMs: expected a finite number of milliseconds ≥ 0, got -1/);
    expect(() => new RealTimeScheduler({ napMs: 2 })).toThrow(/RealTimeScheduler: napMs: expected a number of milliseconds in \[0, 1\], got 2/);
  });
});
