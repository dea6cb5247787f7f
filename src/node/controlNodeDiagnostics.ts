/**
 * The control node's statistics, and the same as a ROS 2 `diagnostic_msgs/DiagnosticArray` (one
 * status each for the control loop, the sensors, the safety filter, the learner and the buffer),
 * the shape `rqt_robot_monitor` and the diagnostic aggregator read.
 */
import { TRANSITION_SKIP_REASONS, type TransitionSkipReason } from '../pipeline/assembleTransitions.js';
import { DROP_REASONS, type DropReason, type MessageCounters } from '../pipeline/validateMessages.js';
import { INTERVENTION_REASONS, type InterventionCounts } from '../pipeline/safetyFilter.js';
import { timeFromNs, type DiagnosticArray, type DiagnosticStatus, type KeyValue } from '../transports/messages.js';
import type { LearnerStats } from './learner.js';

/** `DiagnosticStatus.level` values. */
export const DIAGNOSTIC_LEVEL = { ok: 0, warn: 1, error: 2, stale: 3 } as const;

/** A snapshot of the node (`ControlNode.stats`). Rates are per second of the transport's clock over the last diagnostics window. */
export interface ControlNodeStats {
  state: 'created' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';
  /** The transport's `kind`. */
  transport: string;
  /** Control ticks run (one action published each). */
  ticks: number;
  rates: {
    ticksPerSec: number;
    /** Validated sensor samples. */
    samplesPerSec: number;
    transitionsPerSec: number;
  };
  /** Transport-clock seconds per wall second over the last window (1 in real time; more in lockstep simulation). */
  realTimeFactor: number | null;
  /**
   * Control deadlines in real time (null in lockstep simulated time, which waits for the loop): a
   * tick's deadline is one control period after it was due on the wall-clock grid.
   */
  deadlines: {
    /** Ticks whose action was published after the deadline, plus periods that got no tick at all (`skipped`). */
    missed: number;
    /** Periods with no tick: the loop was more than a period late, and went on from the latest grid point. */
    skipped: number;
    /** The longest time from a tick's due time to its action's publication, wall milliseconds; null before any. */
    maxDelayMs: number | null;
  } | null;
  /** Per sensor topic: received, passed, dropped per reason. */
  sensors: MessageCounters;
  /** Dropped sensor messages per reason, all topics. */
  dropped: Record<DropReason, number>;
  /** Ticks per safety intervention reason. */
  interventions: InterventionCounts;
  /**
   * The transport's own counters, where it keeps them (its `stats`: numbers and flags only), else
   * null. MQTT: `connected`, `reconnects`, `offlineMs`, `malformed`, `dropped`, … — a broker
   * outage shows here, in the watchdog's ticks and in `transitionsSkipped`.
   */
  link: Readonly<Record<string, number | boolean>> | null;
  controller: {
    kind: string;
    /** 0 for the controller the node started with; +1 per swap (a promoted model). */
    version: number;
    calls: number;
    errors: number;
    timeouts: number;
    /** Ticks that found the controller still computing an earlier action. */
    busy: number;
    /** Wall milliseconds per answered call over the last window; null when none. */
    meanMs: number | null;
    maxMs: number | null;
  };
  transitions: {
    /** Stored this run (buffer and learner). */
    stored: number;
    /** Recovered from `checkpointDir/buffer` at start. */
    recovered: number;
    /** Dropped because no reward arrived for their step (reward topic). */
    noReward: number;
    /** Rejected by the buffer's checks (never stored). */
    invalid: number;
  };
  /**
   * Pairs of consecutive ticks not stored as transitions, per reason (`TransitionSkipReason`): a
   * sensor gap gives `noNewSample` at its start and `hold` while the watchdog holds.
   */
  transitionsSkipped: Record<TransitionSkipReason, number>;
  /** The segment store, or null before it opened. */
  buffer: { committedRows: number; stagedRows: number; uncommittedRows: number; segmentRows: number } | null;
  /** The learner, or null when the node does not learn. */
  learner: LearnerStats | null;
  /** Models installed by promotion (learner or `promote`) this run. */
  promotions: number;
  /** The last model saved to `checkpointDir/checkpoint`: its version, or null. */
  savedModelVersion: number | null;
  /** Episodes ended (from the episode-end topic). */
  episodes: number;
  /** Errors reported by the transport, the buffer or the checkpoint writer. */
  errors: number;
  lastError: string | null;
}

const fmt = (v: number | null): string => (v === null ? '' : Number.isInteger(v) ? String(v) : v.toPrecision(4));

/**
 * The stats as a `DiagnosticArray` stamped `stampNs`: the control loop WARNs on controller errors
 * or timeouts, the safety filter on a hold (e-stop, watchdog), the learner on a restart; a
 * stopped or failed node is STALE / ERROR.
 * @param name prefix of the status names, e.g. `mbrl_node`
 */
export function statsToDiagnostics(stats: ControlNodeStats, stampNs: bigint, name = 'mbrl_node', previous?: ControlNodeStats): DiagnosticArray {
  const kv = (entries: [string, string | number | boolean | null][]): KeyValue[] => entries.map(([key, value]) => ({ key, value: typeof value === 'number' ? fmt(value) : String(value ?? '') }));
  const since = <T extends Record<string, number>>(now: T, before: T | undefined, key: keyof T): number => now[key] - (before?.[key] ?? 0);
  const status: DiagnosticStatus[] = [];
  const c = stats.controller;
  const newErrors = c.errors - (previous?.controller.errors ?? 0) + c.timeouts - (previous?.controller.timeouts ?? 0);
  const linkDown = stats.link?.connected === false;
  const newMissed = (stats.deadlines?.missed ?? 0) - (previous?.deadlines?.missed ?? 0);
  status.push({
    level: stats.state === 'failed' ? DIAGNOSTIC_LEVEL.error : stats.state !== 'running' ? DIAGNOSTIC_LEVEL.stale : newErrors > 0 || linkDown || newMissed > 0 ? DIAGNOSTIC_LEVEL.warn : DIAGNOSTIC_LEVEL.ok,
    name: `${name}: control loop`,
    message: `${stats.state}, ${stats.rates.ticksPerSec.toFixed(1)} Hz, controller ${c.kind} v${c.version}${newErrors > 0 ? `, ${newErrors} controller errors` : ''}${newMissed > 0 ? `, ${newMissed} missed deadlines` : ''}${linkDown ? `, ${stats.transport} disconnected` : ''}`,
    hardware_id: stats.transport,
    values: kv([
      ['ticks', stats.ticks],
      ['tick_rate_hz', stats.rates.ticksPerSec],
      ['real_time_factor', stats.realTimeFactor],
      ['deadlines_missed', stats.deadlines?.missed ?? null],
      ['deadlines_skipped_ticks', stats.deadlines?.skipped ?? null],
      ['max_action_delay_ms', stats.deadlines?.maxDelayMs ?? null],
      ['controller', c.kind],
      ['controller_version', c.version],
      ['controller_calls', c.calls],
      ['controller_errors', c.errors],
      ['controller_timeouts', c.timeouts],
      ['controller_busy', c.busy],
      ['controller_mean_ms', c.meanMs],
      ['controller_max_ms', c.maxMs],
      ['episodes', stats.episodes],
      ['errors', stats.errors],
      ['last_error', stats.lastError],
      ...Object.entries(stats.link ?? {}).map(([key, value]): [string, number | boolean] => [`transport/${key}`, value]),
    ]),
  });
  const droppedNow = DROP_REASONS.reduce((n, r) => n + since(stats.dropped, previous?.dropped, r), 0);
  status.push({
    level: droppedNow > 0 ? DIAGNOSTIC_LEVEL.warn : DIAGNOSTIC_LEVEL.ok,
    name: `${name}: sensors`,
    message: `${stats.rates.samplesPerSec.toFixed(1)} samples/s${droppedNow > 0 ? `, ${droppedNow} dropped` : ''}`,
    hardware_id: stats.transport,
    values: kv([
      ...Object.entries(stats.sensors).flatMap(([topic, t]): [string, number][] => [
        [`${topic}/received`, t.received],
        [`${topic}/passed`, t.passed],
        ...DROP_REASONS.filter((r) => t.dropped[r] > 0).map((r): [string, number] => [`${topic}/dropped/${r}`, t.dropped[r]]),
      ]),
      ...DROP_REASONS.map((r): [string, number] => [`dropped/${r}`, stats.dropped[r]]),
    ]),
  });
  const holding = since(stats.interventions, previous?.interventions, 'estop') + since(stats.interventions, previous?.interventions, 'watchdog');
  status.push({
    level: holding > 0 ? DIAGNOSTIC_LEVEL.warn : DIAGNOSTIC_LEVEL.ok,
    name: `${name}: safety`,
    message: holding > 0 ? 'holding the safe action (e-stop or watchdog)' : 'ok',
    hardware_id: stats.transport,
    values: kv(INTERVENTION_REASONS.map((r): [string, number] => [`interventions/${r}`, stats.interventions[r]])),
  });
  const l = stats.learner;
  status.push({
    level: l === null ? DIAGNOSTIC_LEVEL.ok : l.worker === 'restarting' ? DIAGNOSTIC_LEVEL.warn : DIAGNOSTIC_LEVEL.ok,
    name: `${name}: learner`,
    message: l === null ? 'not learning' : `${l.worker}${l.fitting ? ', fitting' : ''}, ${stats.promotions} promoted, ${l.rejected} rejected, ${l.restarts} restarts${l.policy ? `; policy v${l.policy.version}${l.policy.adapted ? ' (adapted)' : ''}, ${l.policy.promoted} promoted, ${l.policy.rejected} rejected` : ''}`,
    hardware_id: stats.transport,
    values: kv(
      l === null
        ? [['promotions', stats.promotions]]
        : [
            ['worker', l.worker],
            ['fitting', l.fitting],
            ['transitions', l.transitions],
            ['promotions', stats.promotions],
            ['rejected', l.rejected],
            ['restarts', l.restarts],
            ['last_rejection', l.lastRejection],
            ['last_failure', l.lastFailure],
            ...(l.policy
              ? ([
                  ['policy/version', l.policy.version],
                  ['policy/adapted', l.policy.adapted],
                  ['policy/improving', l.policy.improving],
                  ['policy/promoted', l.policy.promoted],
                  ['policy/rejected', l.policy.rejected],
                  ['policy/adaptations', l.policy.adaptations],
                  ['policy/last_rejection', l.policy.lastRejection],
                  ['policy/last_imagined_return', l.policy.lastImaginedReturn],
                  ['policy/last_running_return', l.policy.lastRunningReturn],
                ] satisfies [string, string | number | boolean | null][])
              : []),
          ],
    ),
  });
  const b = stats.buffer;
  status.push({
    level: DIAGNOSTIC_LEVEL.ok,
    name: `${name}: buffer`,
    message: b === null ? 'not open' : `${b.committedRows} rows on disk, ${b.uncommittedRows} not yet`,
    hardware_id: stats.transport,
    values: kv([
      ['transitions_stored', stats.transitions.stored],
      ['transitions_recovered', stats.transitions.recovered],
      ['transitions_no_reward', stats.transitions.noReward],
      ['transitions_invalid', stats.transitions.invalid],
      ...TRANSITION_SKIP_REASONS.map((r): [string, number] => [`transitions_skipped/${r}`, stats.transitionsSkipped[r]]),
      ['transitions_per_sec', stats.rates.transitionsPerSec],
      ['committed_rows', b?.committedRows ?? null],
      ['uncommitted_rows', b?.uncommittedRows ?? null],
      ['segment_rows', b?.segmentRows ?? null],
      ['saved_model_version', stats.savedModelVersion],
    ]),
  });
  return { header: { stamp: timeFromNs(stampNs), frame_id: '' }, status };
}

/** One line for logs: rate, controller, drops, interventions, learner, buffer. */
export function statsLine(s: ControlNodeStats): string {
  const dropped = DROP_REASONS.filter((r) => s.dropped[r] > 0).map((r) => `${r} ${s.dropped[r]}`);
  const held = INTERVENTION_REASONS.filter((r) => s.interventions[r] > 0).map((r) => `${r} ${s.interventions[r]}`);
  const skipped = TRANSITION_SKIP_REASONS.filter((r) => s.transitionsSkipped[r] > 0).map((r) => `${r} ${s.transitionsSkipped[r]}`);
  const link = s.link === null ? '' : `${s.link.connected === false ? `; ${s.transport} disconnected` : ''}${typeof s.link.reconnects === 'number' && s.link.reconnects > 0 ? `; ${s.link.reconnects} reconnects` : ''}`;
  const l = s.learner;
  return [
    `${s.state}: ${s.ticks} ticks, ${s.rates.ticksPerSec.toFixed(1)} Hz${s.realTimeFactor !== null && Math.abs(s.realTimeFactor - 1) > 0.05 ? ` (${s.realTimeFactor.toFixed(1)}× real time)` : ''}${link}`,
    `controller ${s.controller.kind} v${s.controller.version}${s.controller.meanMs !== null ? ` ${s.controller.meanMs.toFixed(1)} ms` : ''}${s.controller.errors + s.controller.timeouts + s.controller.busy > 0 ? ` (errors ${s.controller.errors}, timeouts ${s.controller.timeouts}, busy ${s.controller.busy})` : ''}`,
    `transitions ${s.transitions.recovered + s.transitions.stored}${s.buffer ? ` (${s.buffer.committedRows} on disk)` : ''}${skipped.length ? ` (skipped: ${skipped.join(', ')})` : ''}`,
    `dropped: ${dropped.length ? dropped.join(', ') : 'none'}`,
    `interventions: ${held.length ? held.join(', ') : 'none'}`,
    l === null ? 'learner off' : `learner ${l.worker}${l.fitting ? ' (fitting)' : ''}, ${s.promotions} promoted, ${l.rejected} rejected, ${l.restarts} restarts${l.policy ? `, policy v${l.policy.version}${l.policy.adapted ? ' adapted' : ''} (${l.policy.promoted} promoted, ${l.policy.rejected} rejected)` : ''}`,
  ].join('; ');
}
