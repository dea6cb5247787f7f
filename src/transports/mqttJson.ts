/**
 * The JSON payloads of the MQTT transport (`payload: json`, the default): encoding, and a decoder
 * that checks a payload against its message type and stops at the first problem.
 *
 * A payload comes from the network and may be hostile, and it is decoded on the node's thread,
 * between control ticks. So the decoder bounds its work before it spends any:
 *
 * 1. The transport drops a payload over `maxPayloadBytes` unread (`mqtt.ts`).
 * 2. A payload nested deeper than `MAX_JSON_DEPTH` brackets is refused by a byte scan, before
 *    `JSON.parse` (which spends ~0.25 s on 1 MiB of `[`; no ROS message nests deeper than ~6).
 * 3. The checks below stop at the first problem and report its path. (zod, used before, collects
 *    every problem: 10⁶ strings where numbers were due made 10⁶ issue objects, 19–23 s.)
 * 4. A float array of plain finite numbers, the common case, is checked by one tight loop and
 *    kept as parsed, not copied; `null` entries (NaN on the wire) are replaced in place.
 *
 * The shapes follow the ROS 2 .msg definitions of `messages.ts`: missing `header`, arrays and
 * `layout` take the ROS defaults (zero stamp, empty), unknown keys are left out, `null` in a float
 * field reads as NaN, and a non-finite number in JSON (`1e999`) is refused (JSON has none; a
 * robot sends NaN as `null`). Types without a schema here must be a JSON object and are passed
 * on as parsed.
 */
import { describe } from '../core/errors.js';

/** Deepest nesting of objects and arrays a JSON payload may have (a JointTrajectory or DiagnosticArray nests 4). */
export const MAX_JSON_DEPTH = 64;

/** JSON of a ROS-shaped message: typed arrays as arrays, bigint as decimal strings, non-finite numbers as null. */
export function encodeJsonPayload(data: unknown): string {
  return JSON.stringify(data, (_key, value: unknown) => {
    if (typeof value === 'bigint') return value.toString();
    if (ArrayBuffer.isView(value) && !(value instanceof DataView)) return Array.from(value as unknown as ArrayLike<number | bigint>, (v) => (typeof v === 'bigint' ? v.toString() : v));
    return value;
  });
}

// ---------------------------------------------------------------------------------------------
// Readers: each checks one value and returns what the message holds, or throws `Bad` at the first
// problem. The path is filled on the way out, by the readers that catch it, so a message that is
// fine costs no path strings.

/** The first problem of a payload: where (filled as it propagates) and what. */
class Bad {
  readonly path: (string | number)[] = [];
  constructor(readonly message: string) {}
}

function bad(message: string): never {
  throw new Bad(message);
}

/** Reads one JSON value as a field of a message. */
export type Reader<T = unknown> = (v: unknown) => T;

/** `read(v)`, with `key` prepended to the path of a problem. */
function at<T>(key: string | number, read: Reader<T>, v: unknown): T {
  try {
    return read(v);
  } catch (err) {
    if (err instanceof Bad) err.path.unshift(key);
    throw err;
  }
}

/** A missing value (`undefined`) becomes `make()`, e.g. ROS's empty array. */
function withDefault<T>(read: Reader<T>, make: () => T): Reader<T> {
  return (v) => (v === undefined ? make() : read(v));
}

const float: Reader<number> = (v) => {
  if (Number.isFinite(v)) return v as number;
  if (v === null) return Number.NaN;
  return bad(`expected a number (null for NaN), got ${describe(v)}`);
};

/** A float64 array (`length` entries if given): finite numbers, and null for NaN. */
function floats(length?: number): Reader<number[]> {
  return (v) => {
    if (!Array.isArray(v)) return bad(`expected an array of numbers, got ${describe(v)}`);
    if (length !== undefined && v.length !== length) bad(`expected ${length} numbers, got ${v.length}`);
    // Fast path: plain finite numbers, kept as parsed.
    let i = 0;
    const n = v.length;
    while (i < n && Number.isFinite(v[i])) i++;
    for (; i < n; i++) {
      const x: unknown = v[i];
      if (Number.isFinite(x)) continue;
      if (x !== null) at(i, float, x);
      v[i] = Number.NaN;
    }
    return v as number[];
  };
}

/** A whole number in [min, max] (JSON's number; safe integers only). */
function int(min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): Reader<number> {
  return (v) => (Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max ? (v as number) : bad(`expected a whole number ${min} … ${max}, got ${describe(v)}`));
}

const str: Reader<string> = (v) => (typeof v === 'string' ? v : bad(`expected a string, got ${describe(v)}`));
const bool: Reader<boolean> = (v) => (typeof v === 'boolean' ? v : bad(`expected true or false, got ${describe(v)}`));

const strs: Reader<string[]> = (v) => {
  if (!Array.isArray(v)) return bad(`expected an array of strings, got ${describe(v)}`);
  for (let i = 0; i < v.length; i++) if (typeof v[i] !== 'string') at(i, str, v[i]);
  return v as string[];
};

/** An array of `read` items, checked in order up to the first bad one. */
function list<T>(read: Reader<T>): Reader<T[]> {
  return (v) => {
    if (!Array.isArray(v)) return bad(`expected an array, got ${describe(v)}`);
    const out = new Array<T>(v.length);
    for (let i = 0; i < v.length; i++) out[i] = at(i, read, v[i]);
    return out;
  };
}

/** An object with exactly these keys read (others left out), in order, up to the first bad one. */
function object(shape: Record<string, Reader>): Reader<Record<string, unknown>> {
  const keys = Object.keys(shape);
  return (v) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return bad(`expected an object, got ${describe(v)}`);
    const o = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const key of keys) out[key] = at(key, shape[key], Object.hasOwn(o, key) ? o[key] : undefined);
    return out;
  };
}

const time = object({ sec: int(), nanosec: int(0, 999_999_999) });
const header = withDefault(object({ stamp: time, frame_id: withDefault(str, () => '') }), () => ({ stamp: { sec: 0, nanosec: 0 }, frame_id: '' }));
const vector3 = object({ x: float, y: float, z: float });
const quaternion = object({ x: float, y: float, z: float, w: float });
const twist = object({ linear: vector3, angular: vector3 });
const emptyFloats = withDefault(floats(), () => []);
const emptyStrs = withDefault(strs, () => []);

/** The readers of the message types in `messages.ts`, by ROS 2 type: what a JSON payload must look like. */
export const MESSAGE_READERS: Readonly<Record<string, Reader>> = {
  'sensor_msgs/msg/JointState': object({ header, name: emptyStrs, position: emptyFloats, velocity: emptyFloats, effort: emptyFloats }),
  'sensor_msgs/msg/Imu': object({
    header,
    orientation: quaternion,
    orientation_covariance: floats(9),
    angular_velocity: vector3,
    angular_velocity_covariance: floats(9),
    linear_acceleration: vector3,
    linear_acceleration_covariance: floats(9),
  }),
  'geometry_msgs/msg/Twist': twist,
  'geometry_msgs/msg/TwistStamped': object({ header, twist }),
  'nav_msgs/msg/Odometry': object({
    header,
    child_frame_id: withDefault(str, () => ''),
    pose: object({ pose: object({ position: vector3, orientation: quaternion }), covariance: floats(36) }),
    twist: object({ twist, covariance: floats(36) }),
  }),
  'std_msgs/msg/Float64': object({ data: float }),
  'std_msgs/msg/Float64MultiArray': object({
    layout: withDefault(object({ dim: list(object({ label: str, size: int(0), stride: int(0) })), data_offset: int(0) }), () => ({ dim: [], data_offset: 0 })),
    data: floats(),
  }),
  'std_msgs/msg/Bool': object({ data: bool }),
  'trajectory_msgs/msg/JointTrajectory': object({
    header,
    joint_names: strs,
    points: list(object({ positions: emptyFloats, velocities: emptyFloats, accelerations: emptyFloats, effort: emptyFloats, time_from_start: time })),
  }),
  'diagnostic_msgs/msg/DiagnosticArray': object({
    header,
    status: list(
      object({
        level: int(0, 255),
        name: str,
        message: str,
        hardware_id: withDefault(str, () => ''),
        values: withDefault(list(object({ key: str, value: str })), () => []),
      }),
    ),
  }),
};

/** `position[2]`, `header.stamp.sec`, or `(root)`. */
function pathText(path: readonly (string | number)[]): string {
  if (path.length === 0) return '(root)';
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

const OPEN_BRACKET = 0x5b;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACKET = 0x5d;
const CLOSE_BRACE = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Where `text` (UTF-8 bytes or a string) first nests objects and arrays deeper than `max`, or -1.
 * Brackets inside strings do not count; UTF-8 continuation bytes never equal these ASCII codes.
 */
export function jsonNestingBeyond(text: Uint8Array | string, max: number): number {
  const bytes = typeof text !== 'string';
  const n = text.length;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < n; i++) {
    const c = bytes ? (text as Uint8Array)[i] : (text as string).charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++depth > max) return i;
    } else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) depth--;
  }
  return -1;
}

/**
 * Parses and checks one JSON payload as `type` (see the file comment), stopping at the first
 * problem. The payload's size is the caller's to bound (the transport's `maxPayloadBytes`).
 * @returns the message, or the problem (for the transport's malformed-payload report)
 * @example decodeJsonPayload('{"position":[0.1,null]}', 'sensor_msgs/msg/JointState') // { ok: true, data: { header: …, position: [0.1, NaN], … } }
 */
export function decodeJsonPayload(payload: Uint8Array | string, type: string): { ok: true; data: unknown } | { ok: false; problem: string } {
  const deep = jsonNestingBeyond(payload, MAX_JSON_DEPTH);
  if (deep >= 0) return { ok: false, problem: `nested deeper than ${MAX_JSON_DEPTH} objects or arrays (at ${typeof payload === 'string' ? 'character' : 'byte'} ${deep}); no message type nests so deep` };
  let raw: unknown;
  try {
    raw = JSON.parse(typeof payload === 'string' ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8'));
  } catch (err) {
    return { ok: false, problem: `not JSON (${(err as Error).message})` };
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return { ok: false, problem: `expected a JSON object, got ${describe(raw)}` };
  const read = MESSAGE_READERS[type];
  if (read === undefined) return { ok: true, data: raw };
  try {
    return { ok: true, data: read(raw) };
  } catch (err) {
    if (!(err instanceof Bad)) throw err;
    return { ok: false, problem: `not a ${type}: at ${pathText(err.path)}: ${err.message}` };
  }
}
