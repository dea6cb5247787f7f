/**
 * How long the MQTT transport waits before each reconnection attempt: capped exponential backoff
 * with jitter ("exponential backoff and jitter", AWS Architecture Blog, 2015), restarting from the
 * first delay once a connection succeeds. A broker that comes back after a short restart is
 * found within a few hundred milliseconds; one that stays away is not hammered; and a fleet of
 * robots whose broker restarted does not reconnect in lockstep.
 */
import { ValidationError, describe } from '../core/errors.js';
import { Rng } from '../core/rng.js';

/** Reconnection backoff of an MQTT connection. */
export interface MqttBackoff {
  /** Milliseconds before the first attempt after the connection is lost. Default 250. */
  initialDelayMs: number;
  /** The longest wait between attempts, in milliseconds. Default 10000. */
  maxDelayMs: number;
  /** Each failed attempt multiplies the wait by this (≥ 1; 1 gives a fixed period). Default 2. */
  factor: number;
  /** Fraction of each wait drawn at random and taken off it, 0 … 1 (0: none). Default 0.2. */
  jitter: number;
}

/** The defaults of `MqttBackoff`. */
export const MQTT_BACKOFF_DEFAULTS = { initialDelayMs: 250, maxDelayMs: 10_000, factor: 2, jitter: 0.2 } as const satisfies MqttBackoff;

/**
 * The wait before reconnection attempt `attempt` (0 for the first after a loss):
 * `min(maxDelayMs, initialDelayMs · factor^attempt) · (1 − jitter · u)`, rounded, at least 1 ms.
 * Jitter only shortens a wait, so `maxDelayMs` is a true bound.
 * @param u a uniform draw in [0, 1) (the transport's seeded `Rng`)
 * @example reconnectDelayMs(3, MQTT_BACKOFF_DEFAULTS, 0) // 2000
 */
export function reconnectDelayMs(attempt: number, b: MqttBackoff, u: number): number {
  const base = Math.min(b.maxDelayMs, b.initialDelayMs * Math.pow(b.factor, Math.min(attempt, 1000)));
  return Math.max(1, Math.round(base * (1 - b.jitter * u)));
}

/**
 * Fills and checks backoff settings.
 * @throws ValidationError naming the key, the value and the expected range
 * @example makeMqttBackoff({ maxDelayMs: 5000 }, 'MqttTransport')
 */
export function makeMqttBackoff(overrides: Partial<MqttBackoff> = {}, where = 'makeMqttBackoff'): MqttBackoff {
  const b: MqttBackoff = { ...MQTT_BACKOFF_DEFAULTS, ...overrides };
  const check = (key: keyof MqttBackoff, ok: boolean, expected: string): void => {
    if (!ok) throw new ValidationError(where, `reconnect.${key}`, `expected ${expected}, got ${describe(b[key])}`);
  };
  const posInt = (v: number): boolean => Number.isInteger(v) && v > 0 && v <= 0x7fff_ffff;
  check('initialDelayMs', posInt(b.initialDelayMs), 'a whole number of milliseconds > 0');
  check('maxDelayMs', posInt(b.maxDelayMs) && b.maxDelayMs >= b.initialDelayMs, `a whole number of milliseconds ≥ initialDelayMs (${b.initialDelayMs})`);
  check('factor', Number.isFinite(b.factor) && b.factor >= 1, 'a number ≥ 1');
  check('jitter', Number.isFinite(b.jitter) && b.jitter >= 0 && b.jitter <= 1, 'a number 0 … 1');
  return b;
}

/**
 * The draws of one connection's jitter: seeded from its client id (FNV-1a), so a run is
 * reproducible and two clients (which must have different ids) jitter differently.
 */
export function backoffRng(clientId: string): Rng {
  let h = 0x811c9dc5;
  for (let i = 0; i < clientId.length; i++) h = Math.imul(h ^ clientId.charCodeAt(i), 0x01000193) >>> 0;
  return new Rng(h);
}
