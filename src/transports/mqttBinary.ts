/**
 * The compact binary payload of the MQTT transport (`payload: binary`): a fixed little-endian
 * header, the lengths of the message's float64 arrays, the arrays, then its strings. Meant for
 * robots that would rather `memcpy` doubles than print and parse JSON (a microcontroller, a
 * real-time loop), and for high rates: a JointState of 3 positions is 58 bytes instead of 179 of
 * JSON, and neither side formats or parses numbers (decoding is several times faster than JSON's,
 * see docs/mqtt.md, which describes the same layout with a worked example and a Python encoder).
 *
 * ## Layout, version 1 (every multi-byte field little-endian)
 *
 * | offset | size | type | field |
 * |---|---|---|---|
 * | 0 | 2 | u8 × 2 | magic: `0x4D 0x42` (ASCII `MB`) |
 * | 2 | 1 | u8 | version: `1` |
 * | 3 | 1 | u8 | type id (table below) |
 * | 4 | 4 | i32 | `header.stamp.sec` (0 for a type without a header; ignored when read) |
 * | 8 | 4 | u32 | `header.stamp.nanosec`, 0 … 999 999 999 |
 * | 12 | 2 | u16 | A: the number of float64 arrays |
 * | 14 | 2 | u16 | S: the number of strings |
 * | 16 | 4·A | u32 × A | n₀ … n_{A−1}: each array's length, in values |
 * | 16 + 4·A | 0 or 4 | zero bytes | padding when A is odd, so that the doubles start at a multiple of 8 |
 * | D = 16 + 4·A rounded up to 8 | 8·Σn | f64 × Σn | the arrays' values, array 0 first, no gaps |
 * | D + 8·Σn | … | S × (u16 L, L bytes) | the strings: byte length, then UTF-8 (no terminator) |
 *
 * The payload ends after the last string; anything after it is an error. Integers (sizes, levels,
 * durations) travel as float64 too and must be whole numbers in range; a bool is 0 or 1.
 * Non-finite floats are sent as they are (NaN, ±Infinity; JSON would turn the infinities into
 * NaN) and rejected later by the pipeline's validation where an observation cannot hold them.
 *
 * ## Types (arrays and strings, in order)
 *
 * | id | type | A arrays | S strings |
 * |---|---|---|---|
 * | 1 | `sensor_msgs/msg/JointState` | 3: position, velocity, effort | 1 + N: frame_id, name[0 … N−1] |
 * | 2 | `geometry_msgs/msg/Twist` | 1 of 6: linear.x, .y, .z, angular.x, .y, .z | 0 |
 * | 3 | `geometry_msgs/msg/TwistStamped` | 1 of 6, as Twist | 1: frame_id |
 * | 4 | `std_msgs/msg/Float64MultiArray` | 3: data; 2·D: size, stride of each layout.dim; 1: data_offset | D: each dim's label |
 * | 5 | `std_msgs/msg/Float64` | 1 of 1: data | 0 |
 * | 6 | `std_msgs/msg/Bool` | 1 of 1: data, 0 or 1 | 0 |
 * | 7 | `sensor_msgs/msg/Imu` | 6: orientation (x, y, z, w) 4; orientation_covariance 9; angular_velocity 3; its covariance 9; linear_acceleration 3; its covariance 9 | 1: frame_id |
 * | 8 | `nav_msgs/msg/Odometry` | 6: pose.pose.position 3; pose.pose.orientation 4; pose.covariance 36; twist.twist.linear 3; twist.twist.angular 3; twist.covariance 36 | 2: frame_id, child_frame_id |
 * | 9 | `trajectory_msgs/msg/JointTrajectory` | 5 per point: positions, velocities, accelerations, effort, time_from_start (2: sec, nanosec) | 1 + J: frame_id, joint_names |
 * | 10 | `diagnostic_msgs/msg/DiagnosticArray` | 2 of N (one per status): level (0 … 255); the number k of key/value pairs | 1 + Σ(3 + 2k): frame_id, then per status: name, message, hardware_id, k × (key, value) |
 *
 * Any other type has no binary layout and is sent as JSON in binary mode too.
 *
 * Example, a `std_msgs/msg/Float64MultiArray` with `data = [0.5]` and no layout (48 bytes):
 * `4D 42 01 04 | 00000000 | 00000000 | 0300 | 0000 | 01000000 00000000 01000000 | 00000000 (pad) |
 * 000000000000E03F (0.5) | 0000000000000000 (data_offset 0)`.
 *
 * A payload that breaks any rule above (too short, wrong magic or version, another type's id,
 * counts that do not add up to its length, a fraction or NaN where an integer is due, bad UTF-8)
 * is rejected with the reason, and the transport counts and drops it as it does malformed JSON.
 */
import { ValidationError, describe } from '../core/errors.js';

/** `MB`: the first two bytes of every binary payload. */
export const BINARY_MAGIC = [0x4d, 0x42] as const;
/** The layout version this module writes and reads. */
export const BINARY_VERSION = 1;
/** Bytes before the array lengths. */
export const BINARY_HEADER_BYTES = 16;

/** Type ids of the binary layout, by ROS 2 message type (see the file comment). */
export const BINARY_TYPE_IDS: Readonly<Record<string, number>> = {
  'sensor_msgs/msg/JointState': 1,
  'geometry_msgs/msg/Twist': 2,
  'geometry_msgs/msg/TwistStamped': 3,
  'std_msgs/msg/Float64MultiArray': 4,
  'std_msgs/msg/Float64': 5,
  'std_msgs/msg/Bool': 6,
  'sensor_msgs/msg/Imu': 7,
  'nav_msgs/msg/Odometry': 8,
  'trajectory_msgs/msg/JointTrajectory': 9,
  'diagnostic_msgs/msg/DiagnosticArray': 10,
};

const TYPE_OF_ID = new Map(Object.entries(BINARY_TYPE_IDS).map(([t, id]) => [id, t]));

/** Whether `type` has a binary layout (else the transport sends it as JSON). */
export function hasBinaryLayout(type: string): boolean {
  return Object.hasOwn(BINARY_TYPE_IDS, type);
}

/** A message taken apart: what the layout carries. */
interface Parts {
  sec: number;
  nanosec: number;
  arrays: ArrayLike<number>[];
  strings: string[];
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });
const U16_MAX = 0xffff;

// ---------------------------------------------------------------------------------------------
// Encoding: a ROS-shaped message (as the node publishes it) → Parts → bytes.

type Obj = Record<string, unknown>;

/** Reads the fields of a message being encoded; missing optional parts take ROS's defaults, as JSON's decoder does. */
class Fields {
  constructor(
    readonly where: string,
    readonly type: string,
  ) {}

  fail(path: string, expected: string, got: unknown): never {
    throw new ValidationError(this.where, path, `expected ${expected} (${this.type}), got ${describe(got)}`);
  }

  obj(v: unknown, path: string): Obj {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(path, 'an object', v);
    return v as Obj;
  }

  num(v: unknown, path: string): number {
    if (typeof v === 'number') return v;
    if (typeof v === 'bigint') return Number(v);
    return this.fail(path, 'a number', v);
  }

  floats(v: unknown, path: string, length?: number, optional = false): ArrayLike<number> {
    if (v === undefined && optional) return [];
    if (v instanceof Float64Array) {
      if (length !== undefined && v.length !== length) this.fail(path, `${length} numbers`, v);
      return v;
    }
    const isArray = Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));
    if (!isArray) return this.fail(path, length === undefined ? 'an array of numbers' : `${length} numbers`, v);
    const a = v as ArrayLike<unknown>;
    if (length !== undefined && a.length !== length) this.fail(path, `${length} numbers`, v);
    const out = new Array<number>(a.length);
    for (let i = 0; i < a.length; i++) out[i] = this.num(a[i], `${path}[${i}]`);
    return out;
  }

  str(v: unknown, path: string, optional = false): string {
    if (v === undefined && optional) return '';
    if (typeof v !== 'string') return this.fail(path, 'a string', v);
    return v;
  }

  strs(v: unknown, path: string, optional = false): string[] {
    if (v === undefined && optional) return [];
    if (!Array.isArray(v)) return this.fail(path, 'an array of strings', v);
    return v.map((s, i) => this.str(s, `${path}[${i}]`));
  }

  /** `header` (optional: zero stamp, empty frame) → stamp and frame_id. */
  header(msg: Obj): { sec: number; nanosec: number; frame: string } {
    if (msg.header === undefined) return { sec: 0, nanosec: 0, frame: '' };
    const h = this.obj(msg.header, 'header');
    const stamp = this.obj(h.stamp, 'header.stamp');
    return { sec: this.num(stamp.sec, 'header.stamp.sec'), nanosec: this.num(stamp.nanosec, 'header.stamp.nanosec'), frame: this.str(h.frame_id, 'header.frame_id', true) };
  }

  vec3(v: unknown, path: string): number[] {
    const o = this.obj(v, path);
    return [this.num(o.x, `${path}.x`), this.num(o.y, `${path}.y`), this.num(o.z, `${path}.z`)];
  }

  quat(v: unknown, path: string): number[] {
    const o = this.obj(v, path);
    return [this.num(o.x, `${path}.x`), this.num(o.y, `${path}.y`), this.num(o.z, `${path}.z`), this.num(o.w, `${path}.w`)];
  }

  twist(v: unknown, path: string): number[] {
    const o = this.obj(v, path);
    return [...this.vec3(o.linear, `${path === '' ? '' : `${path}.`}linear`), ...this.vec3(o.angular, `${path === '' ? '' : `${path}.`}angular`)];
  }
}

type Encoder = (msg: Obj, f: Fields) => Parts;

const ENCODERS: Record<string, Encoder> = {
  'sensor_msgs/msg/JointState': (m, f) => {
    const h = f.header(m);
    return {
      sec: h.sec,
      nanosec: h.nanosec,
      arrays: [f.floats(m.position, 'position', undefined, true), f.floats(m.velocity, 'velocity', undefined, true), f.floats(m.effort, 'effort', undefined, true)],
      strings: [h.frame, ...f.strs(m.name, 'name', true)],
    };
  },
  'geometry_msgs/msg/Twist': (m, f) => ({ sec: 0, nanosec: 0, arrays: [f.twist(m, '')], strings: [] }),
  'geometry_msgs/msg/TwistStamped': (m, f) => {
    const h = f.header(m);
    return { sec: h.sec, nanosec: h.nanosec, arrays: [f.twist(m.twist, 'twist')], strings: [h.frame] };
  },
  'std_msgs/msg/Float64MultiArray': (m, f) => {
    const layout = m.layout === undefined ? { dim: [], data_offset: 0 } : f.obj(m.layout, 'layout');
    const dimsRaw = layout.dim ?? [];
    if (!Array.isArray(dimsRaw)) f.fail('layout.dim', 'an array', dimsRaw);
    const dims: number[] = [];
    const labels: string[] = [];
    (dimsRaw as unknown[]).forEach((d, i) => {
      const o = f.obj(d, `layout.dim[${i}]`);
      labels.push(f.str(o.label, `layout.dim[${i}].label`));
      dims.push(f.num(o.size, `layout.dim[${i}].size`), f.num(o.stride, `layout.dim[${i}].stride`));
    });
    return { sec: 0, nanosec: 0, arrays: [f.floats(m.data, 'data'), dims, [f.num(layout.data_offset ?? 0, 'layout.data_offset')]], strings: labels };
  },
  'std_msgs/msg/Float64': (m, f) => ({ sec: 0, nanosec: 0, arrays: [[f.num(m.data, 'data')]], strings: [] }),
  'std_msgs/msg/Bool': (m, f) => {
    if (typeof m.data !== 'boolean') f.fail('data', 'true or false', m.data);
    return { sec: 0, nanosec: 0, arrays: [[m.data ? 1 : 0]], strings: [] };
  },
  'sensor_msgs/msg/Imu': (m, f) => {
    const h = f.header(m);
    return {
      sec: h.sec,
      nanosec: h.nanosec,
      arrays: [
        f.quat(m.orientation, 'orientation'),
        f.floats(m.orientation_covariance, 'orientation_covariance', 9),
        f.vec3(m.angular_velocity, 'angular_velocity'),
        f.floats(m.angular_velocity_covariance, 'angular_velocity_covariance', 9),
        f.vec3(m.linear_acceleration, 'linear_acceleration'),
        f.floats(m.linear_acceleration_covariance, 'linear_acceleration_covariance', 9),
      ],
      strings: [h.frame],
    };
  },
  'nav_msgs/msg/Odometry': (m, f) => {
    const h = f.header(m);
    const pose = f.obj(m.pose, 'pose');
    const posePose = f.obj(pose.pose, 'pose.pose');
    const twist = f.obj(m.twist, 'twist');
    const twistTwist = f.obj(twist.twist, 'twist.twist');
    return {
      sec: h.sec,
      nanosec: h.nanosec,
      arrays: [
        f.vec3(posePose.position, 'pose.pose.position'),
        f.quat(posePose.orientation, 'pose.pose.orientation'),
        f.floats(pose.covariance, 'pose.covariance', 36),
        f.vec3(twistTwist.linear, 'twist.twist.linear'),
        f.vec3(twistTwist.angular, 'twist.twist.angular'),
        f.floats(twist.covariance, 'twist.covariance', 36),
      ],
      strings: [h.frame, f.str(m.child_frame_id, 'child_frame_id', true)],
    };
  },
  'trajectory_msgs/msg/JointTrajectory': (m, f) => {
    const h = f.header(m);
    if (!Array.isArray(m.points)) f.fail('points', 'an array', m.points);
    const arrays: ArrayLike<number>[] = [];
    (m.points as unknown[]).forEach((p, i) => {
      const o = f.obj(p, `points[${i}]`);
      const t = f.obj(o.time_from_start, `points[${i}].time_from_start`);
      arrays.push(
        f.floats(o.positions, `points[${i}].positions`, undefined, true),
        f.floats(o.velocities, `points[${i}].velocities`, undefined, true),
        f.floats(o.accelerations, `points[${i}].accelerations`, undefined, true),
        f.floats(o.effort, `points[${i}].effort`, undefined, true),
        [f.num(t.sec, `points[${i}].time_from_start.sec`), f.num(t.nanosec, `points[${i}].time_from_start.nanosec`)],
      );
    });
    return { sec: h.sec, nanosec: h.nanosec, arrays, strings: [h.frame, ...f.strs(m.joint_names, 'joint_names')] };
  },
  'diagnostic_msgs/msg/DiagnosticArray': (m, f) => {
    const h = f.header(m);
    if (!Array.isArray(m.status)) f.fail('status', 'an array', m.status);
    const levels: number[] = [];
    const counts: number[] = [];
    const strings = [h.frame];
    (m.status as unknown[]).forEach((s, i) => {
      const o = f.obj(s, `status[${i}]`);
      levels.push(f.num(o.level, `status[${i}].level`));
      strings.push(f.str(o.name, `status[${i}].name`), f.str(o.message, `status[${i}].message`), f.str(o.hardware_id, `status[${i}].hardware_id`, true));
      const values = o.values === undefined ? [] : o.values;
      if (!Array.isArray(values)) f.fail(`status[${i}].values`, 'an array', values);
      counts.push((values as unknown[]).length);
      (values as unknown[]).forEach((kv, j) => {
        const p = f.obj(kv, `status[${i}].values[${j}]`);
        strings.push(f.str(p.key, `status[${i}].values[${j}].key`), f.str(p.value, `status[${i}].values[${j}].value`));
      });
    });
    return { sec: h.sec, nanosec: h.nanosec, arrays: [levels, counts], strings };
  },
};

/**
 * Encodes a ROS-shaped message of `type` in the binary layout (see the file comment). Missing
 * headers, arrays and `layout` take ROS's defaults (zero stamp, empty), as in JSON.
 * @param where names the caller in errors (e.g. the transport and topic)
 * @throws ValidationError for a type without a binary layout, or a field of the wrong kind or
 *   out of the layout's range (a stamp beyond int32, a string longer than 65 535 bytes), naming it
 * @example publish(topic, encodeBinaryPayload('geometry_msgs/msg/Twist', { linear: {x: 0.2, y: 0, z: 0}, angular: {x: 0, y: 0, z: 1} }))
 */
export function encodeBinaryPayload(type: string, data: unknown, where = 'encodeBinaryPayload'): Uint8Array {
  const encode = ENCODERS[type];
  if (encode === undefined) throw new ValidationError(where, 'type', `${type} has no binary layout; expected one of ${Object.keys(BINARY_TYPE_IDS).join(', ')}`);
  const f = new Fields(where, type);
  const p = encode(f.obj(data, '(message)'), f);
  if (!(Number.isInteger(p.sec) && p.sec >= -0x8000_0000 && p.sec <= 0x7fff_ffff)) f.fail('header.stamp.sec', 'a whole number of seconds that fits int32', p.sec);
  if (!(Number.isInteger(p.nanosec) && p.nanosec >= 0 && p.nanosec <= 999_999_999)) f.fail('header.stamp.nanosec', 'a whole number 0 … 999999999', p.nanosec);
  if (p.arrays.length > U16_MAX) f.fail('(message)', `at most ${U16_MAX} arrays`, p.arrays.length);
  if (p.strings.length > U16_MAX) f.fail('(message)', `at most ${U16_MAX} strings`, p.strings.length);
  const encoded = p.strings.map((s) => Buffer.from(s, 'utf8'));
  encoded.forEach((b, i) => b.length > U16_MAX && f.fail(`string ${i}`, `at most ${U16_MAX} bytes of UTF-8`, p.strings[i]));
  let values = 0;
  for (const a of p.arrays) values += a.length;
  const dataAt = floatsOffset(p.arrays.length);
  const size = dataAt + 8 * values + encoded.reduce((n, b) => n + 2 + b.length, 0);
  const out = Buffer.alloc(size);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out[0] = BINARY_MAGIC[0];
  out[1] = BINARY_MAGIC[1];
  out[2] = BINARY_VERSION;
  out[3] = BINARY_TYPE_IDS[type];
  view.setInt32(4, p.sec, true);
  view.setUint32(8, p.nanosec, true);
  view.setUint16(12, p.arrays.length, true);
  view.setUint16(14, p.strings.length, true);
  let at = BINARY_HEADER_BYTES;
  for (const a of p.arrays) {
    view.setUint32(at, a.length, true);
    at += 4;
  }
  at = dataAt;
  for (const a of p.arrays) {
    for (let i = 0; i < a.length; i++, at += 8) view.setFloat64(at, a[i], true);
  }
  for (const b of encoded) {
    view.setUint16(at, b.length, true);
    out.set(b, at + 2);
    at += 2 + b.length;
  }
  return out;
}

/** Where the doubles start after `arrays` lengths: 8-aligned. */
function floatsOffset(arrays: number): number {
  const end = BINARY_HEADER_BYTES + 4 * arrays;
  return end + (end % 8);
}

// ---------------------------------------------------------------------------------------------
// Decoding: bytes → Parts (layout rules) → the message (the type's rules).

/** A rule of the layout or the type was broken: the reason, for the transport's report. */
class Malformed extends Error {}

function bad(problem: string): never {
  throw new Malformed(problem);
}

/** The header, lengths, doubles and strings of a payload, each bound checked against its length. */
function readParts(bytes: Uint8Array, typeId: number): Parts {
  const n = bytes.byteLength;
  if (n < BINARY_HEADER_BYTES) bad(`truncated: ${n} bytes, shorter than the ${BINARY_HEADER_BYTES}-byte header`);
  if (bytes[0] !== BINARY_MAGIC[0] || bytes[1] !== BINARY_MAGIC[1]) {
    const hint = bytes[0] === 0x7b ? ' (it looks like JSON; this topic is configured for the binary layout, payload: binary)' : '';
    bad(`wrong magic 0x${hex(bytes[0])}${hex(bytes[1])}, expected 0x4D42 ("MB")${hint}`);
  }
  if (bytes[2] !== BINARY_VERSION) bad(`layout version ${bytes[2]}, expected ${BINARY_VERSION}`);
  if (bytes[3] !== typeId) {
    const other = TYPE_OF_ID.get(bytes[3]);
    bad(`type id ${bytes[3]}${other ? ` (${other})` : ' (unknown)'}, expected ${typeId} (${TYPE_OF_ID.get(typeId)})`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const sec = view.getInt32(4, true);
  const nanosec = view.getUint32(8, true);
  if (nanosec > 999_999_999) bad(`header.stamp.nanosec ${nanosec}, expected 0 … 999999999`);
  const arrayCount = view.getUint16(12, true);
  const stringCount = view.getUint16(14, true);
  const dataAt = floatsOffset(arrayCount);
  if (n < dataAt) bad(`truncated: ${n} bytes, but ${arrayCount} array lengths need ${dataAt}`);
  for (let i = BINARY_HEADER_BYTES + 4 * arrayCount; i < dataAt; i++) if (bytes[i] !== 0) bad(`padding byte ${i} is ${bytes[i]}, expected 0`);
  const lengths = new Array<number>(arrayCount);
  let values = 0;
  for (let i = 0; i < arrayCount; i++) {
    lengths[i] = view.getUint32(BINARY_HEADER_BYTES + 4 * i, true);
    values += lengths[i];
  }
  // Before allocating anything: the doubles must fit in what arrived (a hostile count cannot make us allocate).
  const stringsAt = dataAt + 8 * values;
  if (stringsAt > n) bad(`truncated or wrong counts: the array lengths add up to ${values} doubles (${stringsAt} bytes with the header), but the payload has ${n} bytes`);
  if (stringCount * 2 > n - stringsAt) bad(`truncated or wrong counts: ${stringCount} strings need at least ${stringCount * 2} bytes after the doubles, ${n - stringsAt} left`);
  const arrays: number[][] = [];
  let at = dataAt;
  for (const len of lengths) {
    const a = new Array<number>(len);
    for (let i = 0; i < len; i++, at += 8) a[i] = view.getFloat64(at, true);
    arrays.push(a);
  }
  const strings: string[] = [];
  for (let i = 0; i < stringCount; i++) {
    if (at + 2 > n) bad(`truncated: string ${i} of ${stringCount} starts at byte ${at}, past the end (${n} bytes)`);
    const len = view.getUint16(at, true);
    if (at + 2 + len > n) bad(`truncated: string ${i} of ${stringCount} is ${len} bytes from byte ${at + 2}, past the end (${n} bytes)`);
    try {
      strings.push(UTF8.decode(bytes.subarray(at + 2, at + 2 + len)));
    } catch {
      bad(`string ${i} is not valid UTF-8`);
    }
    at += 2 + len;
  }
  if (at !== n) bad(`${n - at} bytes after the last string; expected the payload to end at byte ${at}`);
  return { sec, nanosec, arrays, strings };
}

function hex(b: number | undefined): string {
  return (b ?? 0).toString(16).toUpperCase().padStart(2, '0');
}

/** Checks the number of arrays and strings and the fixed lengths (undefined: any). */
function shape(p: Parts, arrays: number, strings: number | undefined, lengths: (number | undefined)[], names: string[]): void {
  if (p.arrays.length !== arrays) bad(`${p.arrays.length} arrays, expected ${arrays} (${names.join(', ')})`);
  lengths.forEach((len, i) => {
    if (len !== undefined && p.arrays[i].length !== len) bad(`${names[i]}: ${p.arrays[i].length} values, expected ${len}`);
  });
  if (strings !== undefined && p.strings.length !== strings) bad(`${p.strings.length} strings, expected ${strings}`);
}

/** An integer field carried as a double: whole and within [min, max] (JSON's rules for the same field). */
function whole(v: number, field: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!(Number.isInteger(v) && v >= min && v <= max)) bad(`${field}: expected a whole number ${min} … ${max}, got ${describe(v)}`);
  return v;
}

const header = (p: Parts) => ({ stamp: { sec: p.sec, nanosec: p.nanosec }, frame_id: p.strings[0] });
const vec3 = (a: number[], o = 0) => ({ x: a[o], y: a[o + 1], z: a[o + 2] });
const quat = (a: number[]) => ({ x: a[0], y: a[1], z: a[2], w: a[3] });
const twist = (a: number[]) => ({ linear: vec3(a, 0), angular: vec3(a, 3) });

type Decoder = (p: Parts) => unknown;

const DECODERS: Record<string, Decoder> = {
  'sensor_msgs/msg/JointState': (p) => {
    shape(p, 3, undefined, [undefined, undefined, undefined], ['position', 'velocity', 'effort']);
    if (p.strings.length < 1) bad('0 strings, expected 1 + the number of names (frame_id, name[])');
    const [position, velocity, effort] = p.arrays as number[][];
    return { header: header(p), name: p.strings.slice(1), position, velocity, effort };
  },
  'geometry_msgs/msg/Twist': (p) => {
    shape(p, 1, 0, [6], ['linear and angular']);
    return twist(p.arrays[0] as number[]);
  },
  'geometry_msgs/msg/TwistStamped': (p) => {
    shape(p, 1, 1, [6], ['twist']);
    return { header: header(p), twist: twist(p.arrays[0] as number[]) };
  },
  'std_msgs/msg/Float64MultiArray': (p) => {
    shape(p, 3, undefined, [undefined, undefined, 1], ['data', 'layout.dim sizes and strides', 'layout.data_offset']);
    const dims = p.arrays[1] as number[];
    if (dims.length % 2 !== 0) bad(`layout.dim sizes and strides: ${dims.length} values, expected 2 per dimension`);
    if (p.strings.length !== dims.length / 2) bad(`${p.strings.length} strings, expected ${dims.length / 2} (one label per layout.dim)`);
    const dim = p.strings.map((label, i) => ({ label, size: whole(dims[2 * i], `layout.dim[${i}].size`, 0), stride: whole(dims[2 * i + 1], `layout.dim[${i}].stride`, 0) }));
    return { layout: { dim, data_offset: whole(p.arrays[2][0], 'layout.data_offset', 0) }, data: p.arrays[0] };
  },
  'std_msgs/msg/Float64': (p) => {
    shape(p, 1, 0, [1], ['data']);
    return { data: p.arrays[0][0] };
  },
  'std_msgs/msg/Bool': (p) => {
    shape(p, 1, 0, [1], ['data']);
    const v = p.arrays[0][0];
    if (v !== 0 && v !== 1) bad(`data: expected 0 or 1 (a bool), got ${describe(v)}`);
    return { data: v === 1 };
  },
  'sensor_msgs/msg/Imu': (p) => {
    const names = ['orientation', 'orientation_covariance', 'angular_velocity', 'angular_velocity_covariance', 'linear_acceleration', 'linear_acceleration_covariance'];
    shape(p, 6, 1, [4, 9, 3, 9, 3, 9], names);
    const a = p.arrays as number[][];
    return {
      header: header(p),
      orientation: quat(a[0]),
      orientation_covariance: a[1],
      angular_velocity: vec3(a[2]),
      angular_velocity_covariance: a[3],
      linear_acceleration: vec3(a[4]),
      linear_acceleration_covariance: a[5],
    };
  },
  'nav_msgs/msg/Odometry': (p) => {
    const names = ['pose.pose.position', 'pose.pose.orientation', 'pose.covariance', 'twist.twist.linear', 'twist.twist.angular', 'twist.covariance'];
    shape(p, 6, 2, [3, 4, 36, 3, 3, 36], names);
    const a = p.arrays as number[][];
    return {
      header: header(p),
      child_frame_id: p.strings[1],
      pose: { pose: { position: vec3(a[0]), orientation: quat(a[1]) }, covariance: a[2] },
      twist: { twist: { linear: vec3(a[3]), angular: vec3(a[4]) }, covariance: a[5] },
    };
  },
  'trajectory_msgs/msg/JointTrajectory': (p) => {
    if (p.arrays.length % 5 !== 0) bad(`${p.arrays.length} arrays, expected 5 per point (positions, velocities, accelerations, effort, time_from_start)`);
    if (p.strings.length < 1) bad('0 strings, expected 1 + the number of joints (frame_id, joint_names[])');
    const a = p.arrays as number[][];
    const points = [];
    for (let i = 0; i < a.length; i += 5) {
      const t = a[i + 4];
      const k = i / 5;
      if (t.length !== 2) bad(`points[${k}].time_from_start: ${t.length} values, expected 2 (sec, nanosec)`);
      points.push({
        positions: a[i],
        velocities: a[i + 1],
        accelerations: a[i + 2],
        effort: a[i + 3],
        time_from_start: { sec: whole(t[0], `points[${k}].time_from_start.sec`, Number.MIN_SAFE_INTEGER), nanosec: whole(t[1], `points[${k}].time_from_start.nanosec`, 0, 999_999_999) },
      });
    }
    return { header: header(p), joint_names: p.strings.slice(1), points };
  },
  'diagnostic_msgs/msg/DiagnosticArray': (p) => {
    shape(p, 2, undefined, [undefined, p.arrays[0]?.length], ['level', 'values count']);
    const [levels, counts] = p.arrays as number[][];
    let need = 1;
    counts.forEach((c, i) => (need += 3 + 2 * whole(c, `status[${i}] values count`, 0)));
    if (p.strings.length !== need) bad(`${p.strings.length} strings, expected ${need} (frame_id, then name, message, hardware_id and the key/value pairs of each status)`);
    let s = 1;
    const status = levels.map((level, i) => {
      const [name, message, hardware_id] = p.strings.slice(s, s + 3);
      s += 3;
      const values = [];
      for (let j = 0; j < counts[i]; j++, s += 2) values.push({ key: p.strings[s], value: p.strings[s + 1] });
      return { level: whole(level, `status[${i}].level`, 0, 255), name, message, hardware_id, values };
    });
    return { header: header(p), status };
  },
};

/**
 * Reads one binary payload as `type` (see the file comment). Malformed bytes never make it throw:
 * every length is checked against the payload's before it is used.
 * @returns the message (shaped as the JSON decoder's: plain arrays, `header` filled), or the
 *   problem, for the transport's malformed-payload report
 * @example decodeBinaryPayload(bytes, 'sensor_msgs/msg/JointState') // { ok: true, data: { header: …, position: [0.1], … } }
 */
export function decodeBinaryPayload(payload: Uint8Array, type: string): { ok: true; data: unknown } | { ok: false; problem: string } {
  const decode = DECODERS[type];
  if (decode === undefined) return { ok: false, problem: `${type} has no binary layout` };
  try {
    return { ok: true, data: decode(readParts(payload, BINARY_TYPE_IDS[type])) };
  } catch (err) {
    if (err instanceof Malformed) return { ok: false, problem: `not a binary ${type}: ${err.message}` };
    throw err;
  }
}
