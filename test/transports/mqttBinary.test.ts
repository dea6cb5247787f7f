// The binary payload layout of the MQTT transport (src/transports/mqttBinary.ts, docs/mqtt.md):
// exact bytes of the documented example, round trips of every type, the same messages as the
// JSON decoder gives, each malformation named, and seeded fuzzing (truncations, bit flips,
// inserted and deleted bytes) that never throws and never lets through what JSON's rules would
// refuse. Then two transports in binary mode over a real mosquitto (skipped, with the reason,
// where the binary is absent), and hostile payloads counted and dropped.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { BINARY_TYPE_IDS, decodeBinaryPayload, encodeBinaryPayload, hasBinaryLayout } from '../../src/transports/mqttBinary.js';
import { MqttTransport, decodeJsonPayload, encodeJsonPayload } from '../../src/transports/mqtt.js';
import { MOSQUITTO, MOSQUITTO_SKIP_REASON, MosquittoBroker, freePort } from '../mosquittoBroker.js';

if (MOSQUITTO === undefined) console.warn(MOSQUITTO_SKIP_REASON);

const hdr = (sec: number, nanosec: number, frame_id = 'base') => ({ stamp: { sec, nanosec }, frame_id });
const v3 = (x: number, y: number, z: number) => ({ x, y, z });
const cov = (n: number, s = 0.01) => Array.from({ length: n }, (_, i) => (i % (Math.sqrt(n) + 1) === 0 ? s : 0));

/** One message of every type with a binary layout, as the JSON decoder would give it (all fields present). */
const SAMPLES: Record<string, unknown> = {
  'sensor_msgs/msg/JointState': { header: hdr(12, 345), name: ['j0', 'joint_ü'], position: [0.25, -1.5], velocity: [Number.NaN, 3], effort: [] },
  'geometry_msgs/msg/Twist': { linear: v3(0.2, 0, 0), angular: v3(0, 0, -0.75) },
  'geometry_msgs/msg/TwistStamped': { header: hdr(-3, 999_999_999, ''), twist: { linear: v3(1, 2, 3), angular: v3(4, 5, 6) } },
  'std_msgs/msg/Float64MultiArray': { layout: { dim: [{ label: 'rows', size: 2, stride: 4 }, { label: 'cols', size: 2, stride: 2 }], data_offset: 0 }, data: [1, 2, 3, 4] },
  'std_msgs/msg/Float64': { data: -0.125 },
  'std_msgs/msg/Bool': { data: true },
  'sensor_msgs/msg/Imu': {
    header: hdr(1, 2, 'imu_link'),
    orientation: { x: 0, y: 0, z: 0.7071, w: 0.7071 },
    orientation_covariance: cov(9),
    angular_velocity: v3(0.1, 0.2, 0.3),
    angular_velocity_covariance: cov(9, 0.02),
    linear_acceleration: v3(0, 0, 9.81),
    linear_acceleration_covariance: cov(9, 0.03),
  },
  'nav_msgs/msg/Odometry': {
    header: hdr(100, 0, 'odom'),
    child_frame_id: 'base_link',
    pose: { pose: { position: v3(1, 2, 0), orientation: { x: 0, y: 0, z: 0, w: 1 } }, covariance: cov(36) },
    twist: { twist: { linear: v3(0.5, 0, 0), angular: v3(0, 0, 0.1) }, covariance: cov(36, 0.05) },
  },
  'trajectory_msgs/msg/JointTrajectory': {
    header: hdr(5, 6),
    joint_names: ['a', 'b'],
    points: [
      { positions: [0, 1], velocities: [], accelerations: [], effort: [], time_from_start: { sec: 0, nanosec: 500_000_000 } },
      { positions: [1, 2], velocities: [0.1, 0.2], accelerations: [0, 0], effort: [3, 4], time_from_start: { sec: 1, nanosec: 0 } },
    ],
  },
  'diagnostic_msgs/msg/DiagnosticArray': {
    header: hdr(7, 8, ''),
    status: [
      { level: 0, name: 'mbrl_node: control', message: 'ok', hardware_id: '', values: [{ key: 'ticks', value: '120' }, { key: 'missed', value: '0' }] },
      { level: 2, name: 'mbrl_node: learner', message: 'crashed, restarting', hardware_id: 'cpu0', values: [] },
    ],
  },
};

const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex').toUpperCase();

function mutate(bytes: Uint8Array, rng: Rng): Uint8Array {
  const b = Uint8Array.from(bytes);
  switch (b.length === 0 ? 2 : rng.int(4)) {
    case 0:
      return b.subarray(0, rng.int(b.length)); // truncated
    case 1: {
      for (let k = 0, n = 1 + rng.int(4); k < n; k++) b[rng.int(b.length)] ^= 1 << rng.int(8); // bit flips
      return b;
    }
    case 2: {
      const at = rng.int(b.length + 1); // a byte inserted
      const out = new Uint8Array(b.length + 1);
      out.set(b.subarray(0, at));
      out[at] = rng.int(256);
      out.set(b.subarray(at), at + 1);
      return out;
    }
    default: {
      const at = rng.int(b.length); // a byte deleted
      const out = new Uint8Array(b.length - 1);
      out.set(b.subarray(0, at));
      out.set(b.subarray(at + 1), at);
      return out;
    }
  }
}

describe('binary payload layout', () => {
  it('writes the documented example byte for byte', () => {
    const bytes = encodeBinaryPayload('std_msgs/msg/Float64MultiArray', { data: [0.5] });
    // magic MB, version 1, type 4 | sec | nanosec | A = 3 | S = 0 | lengths 1, 0, 1 | pad | 0.5 | data_offset 0
    expect(hexOf(bytes)).toBe('4D420104' + '00000000' + '00000000' + '0300' + '0000' + '01000000' + '00000000' + '01000000' + '00000000' + '000000000000E03F' + '0000000000000000');
    expect(bytes.length).toBe(48);
    // A Twist: 16-byte header, one length, 4 bytes of padding, 6 doubles.
    const twist = encodeBinaryPayload('geometry_msgs/msg/Twist', SAMPLES['geometry_msgs/msg/Twist']);
    expect(twist.length).toBe(16 + 4 + 4 + 48);
    expect(new DataView(twist.buffer, twist.byteOffset).getFloat64(24, true)).toBe(0.2);
    expect(new DataView(twist.buffer, twist.byteOffset).getFloat64(24 + 5 * 8, true)).toBe(-0.75);
    // Strings: u16 length + UTF-8, after the doubles. A JointState with 2 names: 16 + 12 + 4 pad + 4·8 + (2+4) + (2+2) + (2+8).
    const js = encodeBinaryPayload('sensor_msgs/msg/JointState', SAMPLES['sensor_msgs/msg/JointState']);
    expect(js.length).toBe(16 + 12 + 4 + 32 + 6 + 4 + 10);
    expect(Buffer.from(js.subarray(64, 70)).toString('hex')).toBe('0400' + Buffer.from('base').toString('hex'));
  });

  it('round-trips every type, NaN, infinities and UTF-8 included, to what the JSON decoder gives', () => {
    expect(Object.keys(SAMPLES).sort()).toEqual(Object.keys(BINARY_TYPE_IDS).sort());
    for (const [type, msg] of Object.entries(SAMPLES)) {
      const back = decodeBinaryPayload(encodeBinaryPayload(type, msg), type);
      expect(back, type).toEqual({ ok: true, data: msg });
      expect(decodeJsonPayload(encodeJsonPayload(msg), type), type).toEqual(back);
    }
    const inf = decodeBinaryPayload(encodeBinaryPayload('std_msgs/msg/Float64MultiArray', { data: [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0] }), 'std_msgs/msg/Float64MultiArray');
    expect(inf).toMatchObject({ ok: true, data: { data: [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0] } });
  });

  it('fills ROS defaults when encoding, as the JSON decoder does, and takes typed arrays and bigint', () => {
    const minimal = encodeBinaryPayload('sensor_msgs/msg/JointState', { position: new Float64Array([1, 2]) });
    expect(decodeBinaryPayload(minimal, 'sensor_msgs/msg/JointState')).toEqual(decodeJsonPayload('{"position":[1,2]}', 'sensor_msgs/msg/JointState'));
    const fma = encodeBinaryPayload('std_msgs/msg/Float64MultiArray', { data: new Float32Array([0.5, 1.5]), layout: { dim: [{ label: 'x', size: 2n, stride: 2 }], data_offset: 0 } });
    expect(decodeBinaryPayload(fma, 'std_msgs/msg/Float64MultiArray')).toEqual({ ok: true, data: { layout: { dim: [{ label: 'x', size: 2, stride: 2 }], data_offset: 0 }, data: [0.5, 1.5] } });
  });

  it('names the field when a message cannot be encoded', () => {
    const err = (type: string, data: unknown) => {
      try {
        encodeBinaryPayload(type, data, 'where');
      } catch (e) {
        expect(e).toBeInstanceOf(ValidationError);
        return (e as Error).message;
      }
      throw new Error('expected a throw');
    };
    expect(err('geometry_msgs/msg/Twist', { linear: v3(1, 2, 3) })).toBe('where: angular: expected an object (geometry_msgs/msg/Twist), got undefined');
    expect(err('std_msgs/msg/Bool', { data: 1 })).toBe('where: data: expected true or false (std_msgs/msg/Bool), got 1');
    expect(err('sensor_msgs/msg/JointState', { position: [1, 'x'] })).toBe('where: position[1]: expected a number (sensor_msgs/msg/JointState), got "x"');
    expect(err('sensor_msgs/msg/JointState', { header: hdr(2 ** 31, 0) })).toBe('where: header.stamp.sec: expected a whole number of seconds that fits int32 (sensor_msgs/msg/JointState), got 2147483648');
    expect(err('sensor_msgs/msg/Imu', { ...(SAMPLES['sensor_msgs/msg/Imu'] as object), orientation_covariance: [1] })).toBe('where: orientation_covariance: expected 9 numbers (sensor_msgs/msg/Imu), got array(1)');
    expect(err('custom_msgs/msg/Thing', {})).toMatch(/^where: type: custom_msgs\/msg\/Thing has no binary layout; expected one of sensor_msgs\/msg\/JointState, /);
    expect(hasBinaryLayout('custom_msgs/msg/Thing')).toBe(false);
  });

  it('rejects each malformation with its reason', () => {
    const JS = 'sensor_msgs/msg/JointState';
    const good = encodeBinaryPayload(JS, SAMPLES[JS]);
    const problem = (bytes: Uint8Array, type = JS) => {
      const r = decodeBinaryPayload(bytes, type);
      expect(r.ok).toBe(false);
      return (r as { problem: string }).problem;
    };
    const edit = (f: (b: Uint8Array, v: DataView) => void, from: Uint8Array = good) => {
      const b = Uint8Array.from(from);
      f(b, new DataView(b.buffer));
      return b;
    };
    expect(problem(good.subarray(0, 10))).toBe('not a binary sensor_msgs/msg/JointState: truncated: 10 bytes, shorter than the 16-byte header');
    expect(problem(edit((b) => (b[0] = 0x58)))).toBe('not a binary sensor_msgs/msg/JointState: wrong magic 0x5842, expected 0x4D42 ("MB")');
    expect(problem(Buffer.from(encodeJsonPayload(SAMPLES[JS])))).toContain('wrong magic 0x7B22, expected 0x4D42 ("MB") (it looks like JSON; this topic is configured for the binary layout, payload: binary)');
    expect(problem(edit((b) => (b[2] = 2)))).toBe('not a binary sensor_msgs/msg/JointState: layout version 2, expected 1');
    expect(problem(encodeBinaryPayload('geometry_msgs/msg/Twist', SAMPLES['geometry_msgs/msg/Twist']))).toBe('not a binary sensor_msgs/msg/JointState: type id 2 (geometry_msgs/msg/Twist), expected 1 (sensor_msgs/msg/JointState)');
    expect(problem(edit((b) => (b[3] = 99)))).toContain('type id 99 (unknown)');
    expect(problem(edit((_, v) => v.setUint32(8, 1_000_000_000, true)))).toContain('header.stamp.nanosec 1000000000, expected 0 … 999999999');
    // A hostile count: 4 × 10⁹ doubles announced in an 84-byte payload. Refused before anything is allocated.
    expect(problem(edit((_, v) => v.setUint32(16, 0xffff_ffff, true)))).toContain('truncated or wrong counts: the array lengths add up to 4294967297 doubles');
    expect(problem(good.subarray(0, good.length - 1))).toContain('truncated: string 2 of 3 is 8 bytes from byte 76, past the end (83 bytes)');
    expect(problem(Uint8Array.from([...good, 0]))).toBe('not a binary sensor_msgs/msg/JointState: 1 bytes after the last string; expected the payload to end at byte 84');
    expect(problem(edit((b) => (b[29] = 1)))).toContain('padding byte 29 is 1, expected 0');
    expect(problem(edit((b) => (b[good.length - 1] = 0xff)))).toContain('string 2 is not valid UTF-8');
    const noFrame = encodeBinaryPayload(JS, SAMPLES[JS]).subarray(0, 64);
    expect(problem(edit((_, v) => v.setUint16(14, 0, true), noFrame))).toContain('0 strings, expected 1 + the number of names (frame_id, name[])');

    // Integers carried as doubles follow JSON's rules for the same field: no NaN, no fraction, in range.
    const FMA = 'std_msgs/msg/Float64MultiArray';
    const fma = encodeBinaryPayload(FMA, SAMPLES[FMA]);
    const fmaDoubles = 16 + 12 + 4; // 4 data, then size/stride ×2, then data_offset
    expect(problem(edit((_, v) => v.setFloat64(fmaDoubles + 8 * 8, Number.NaN, true), fma), FMA)).toBe('not a binary std_msgs/msg/Float64MultiArray: layout.data_offset: expected a whole number 0 … 9007199254740991, got NaN');
    expect(problem(edit((_, v) => v.setFloat64(fmaDoubles + 4 * 8, 1.5, true), fma), FMA)).toContain('layout.dim[0].size: expected a whole number 0 … 9007199254740991, got 1.5');
    expect(problem(edit((_, v) => (v.setUint32(16, 6, true), v.setUint32(20, 3, true)), encodeBinaryPayload(FMA, { data: [1, 2, 3, 4, 5, 6, 7, 8, 9], layout: { dim: [], data_offset: 0 } })), FMA)).toContain('layout.dim sizes and strides: 3 values, expected 2 per dimension');
    const bool = encodeBinaryPayload('std_msgs/msg/Bool', { data: false });
    expect(problem(edit((_, v) => v.setFloat64(24, 0.5, true), bool), 'std_msgs/msg/Bool')).toContain('data: expected 0 or 1 (a bool), got 0.5');
    const DIAG = 'diagnostic_msgs/msg/DiagnosticArray';
    const diag = encodeBinaryPayload(DIAG, SAMPLES[DIAG]);
    expect(problem(edit((_, v) => v.setFloat64(16 + 8, 256, true), diag), DIAG)).toContain('status[0].level: expected a whole number 0 … 255, got 256');
    expect(problem(edit((_, v) => v.setFloat64(16 + 8 + 16, 3, true), diag), DIAG)).toContain('11 strings, expected 13');
    const twist = encodeBinaryPayload('geometry_msgs/msg/Twist', SAMPLES['geometry_msgs/msg/Twist']);
    expect(problem(edit((_, v) => v.setUint32(16, 7, true), twist), 'geometry_msgs/msg/Twist')).toContain('truncated or wrong counts');
    // NaN where a float is allowed (as JSON's null) passes.
    expect(decodeBinaryPayload(edit((_, v) => v.setFloat64(24, Number.NaN, true), twist), 'geometry_msgs/msg/Twist')).toMatchObject({ ok: true, data: { linear: { x: Number.NaN } } });
  });

  it('fuzz: 20 000 seeded mutations never throw, and whatever is accepted also passes the JSON rules', () => {
    const rng = new Rng(7);
    let accepted = 0;
    let rejected = 0;
    for (const [type, msg] of Object.entries(SAMPLES)) {
      const good = encodeBinaryPayload(type, msg);
      const prefix = `not a binary ${type}: `;
      for (let i = 0; i < 2000; i++) {
        let bytes = mutate(good, rng);
        if (rng.random() < 0.3) bytes = mutate(bytes, rng);
        const r = decodeBinaryPayload(bytes, type);
        if (r.ok) {
          accepted++;
          // Infinities aside (JSON has none), the same message through JSON is valid too.
          const json = decodeJsonPayload(encodeJsonPayload(r.data), type);
          expect(json.ok, `${type} mutation ${i}: ${hexOf(bytes)}`).toBe(true);
        } else {
          rejected++;
          if (!r.problem.startsWith(prefix)) expect(r.problem).toBe(`${prefix}…`);
        }
      }
    }
    expect(accepted + rejected).toBe(20_000);
    // Bit flips in a double's bits give another valid message; every truncation or count change is caught.
    expect(rejected).toBeGreaterThan(10_000);
    expect(accepted).toBeGreaterThan(1000);
    console.log(`binary fuzz: ${accepted} mutations accepted (still well-formed), ${rejected} rejected`);
  });
});

describe.skipIf(MOSQUITTO === undefined)('MqttTransport in binary mode with a real mosquitto', () => {
  let broker: MosquittoBroker;
  let dir: string;
  let url: string;
  const open: MqttTransport[] = [];
  const transport = (o: Partial<ConstructorParameters<typeof MqttTransport>[0]> = {}): MqttTransport => {
    const t = new MqttTransport({ url, prefix: 'bin/robot', payload: 'binary', statusTopic: null, onError: () => {}, ...o });
    open.push(t);
    return t;
  };
  const until = async (cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> => {
    const t0 = Date.now();
    while (!cond()) {
      if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mbrl-mqtt-bin-'));
    broker = new MosquittoBroker(await freePort(), dir);
    url = `mqtt://127.0.0.1:${broker.port}`;
    await broker.start();
  });

  afterAll(async () => {
    for (const t of open) await t.close();
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('exchanges every type in the binary layout, and a type without one as JSON', async () => {
    const pub = transport();
    const sub = transport();
    await pub.connect();
    await sub.connect();
    const got = new Map<string, unknown>();
    const types = [...Object.keys(SAMPLES), 'custom_msgs/msg/Thing'];
    const topicOf = (type: string) => `/${type.replace(/\//g, '_')}`;
    for (const type of types) sub.subscribe(topicOf(type), type, (m) => got.set(type, m.data));
    const raw = await mqtt.connectAsync(url);
    const rawSeen = new Map<string, Buffer>();
    raw.on('message', (topic, payload) => rawSeen.set(topic, payload));
    await raw.subscribeAsync('bin/robot/#', { qos: 1 });
    await new Promise((r) => setTimeout(r, 100));
    for (const [type, msg] of Object.entries(SAMPLES)) pub.publish(topicOf(type), type, msg);
    pub.publish(topicOf('custom_msgs/msg/Thing'), 'custom_msgs/msg/Thing', { anything: [1, 2] });
    await until(() => got.size === types.length && rawSeen.size === types.length, 'every message');
    for (const [type, msg] of Object.entries(SAMPLES)) expect(got.get(type), type).toEqual(msg);
    expect(got.get('custom_msgs/msg/Thing')).toEqual({ anything: [1, 2] });
    expect(rawSeen.get('bin/robot/sensor_msgs_msg_JointState')?.subarray(0, 4).toString('hex')).toBe('4d420101');
    expect(rawSeen.get('bin/robot/custom_msgs_msg_Thing')?.toString('utf8')).toBe('{"anything":[1,2]}');
    expect(sub.stats).toMatchObject({ received: types.length, delivered: types.length, malformed: 0 });
    await raw.endAsync();
  });

  it('counts and drops hostile payloads exactly as malformed JSON; none throws, none gets through unchecked', async () => {
    const sub = transport();
    await sub.connect();
    const JS = 'sensor_msgs/msg/JointState';
    const delivered: unknown[] = [];
    const errors: Error[] = [];
    sub.subscribe('/joint_states', JS, (m) => delivered.push(m.data), { onError: (e) => errors.push(e) });
    const raw = await mqtt.connectAsync(url);
    await new Promise((r) => setTimeout(r, 100));
    const rng = new Rng(11);
    const good = encodeBinaryPayload(JS, SAMPLES[JS]);
    const payloads: Uint8Array[] = [good, Buffer.from(encodeJsonPayload(SAMPLES[JS])), new Uint8Array(0), Buffer.from('MB')];
    while (payloads.length < 300) payloads.push(mutate(good, rng));
    for (const p of payloads) await raw.publishAsync('bin/robot/joint_states', Buffer.from(p), { qos: 1 });
    await until(() => sub.stats.received === payloads.length, 'every payload');
    const s = sub.stats;
    expect(s.delivered + s.malformed).toBe(payloads.length);
    expect(sub.malformedOn('/joint_states')).toBe(s.malformed);
    expect(errors).toHaveLength(s.malformed);
    expect(errors.every((e) => e instanceof ValidationError && e.message.includes('payload: malformed sensor_msgs/msg/JointState on MQTT topic bin/robot/joint_states: not a binary sensor_msgs/msg/JointState: '))).toBe(true);
    expect(errors[0].message).toContain('it looks like JSON');
    expect(delivered[0]).toEqual(SAMPLES[JS]);
    for (const d of delivered) expect(decodeJsonPayload(encodeJsonPayload(d), JS).ok).toBe(true);
    expect(s.malformed).toBeGreaterThan(150);
    await raw.endAsync();
  });
});
