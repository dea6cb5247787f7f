// The MQTT transport's JSON decoding (mqttJson.ts) and the guard in front of it
// (decodeMqttPayload): hand-written payloads decode to the exact messages, with ROS defaults,
// unknown keys left out and null read as NaN; a bad one is refused at its first problem, with its
// path; nesting beyond MAX_JSON_DEPTH is refused before JSON.parse, a payload over maxPayloadBytes
// before anything. The last test prints what the hostile payloads of the fault tests (and the
// worst ones within the 1 MiB default) cost to decode, before (zod, which collects every issue, no
// size limit: the transport's decoder until this change) and after; timings are printed, never
// asserted (the speed targets are benchmarks' business).
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { MAX_JSON_DEPTH, MQTT_MAX_PAYLOAD_BYTES, decodeJsonPayload, decodeMqttPayload } from '../../src/transports/mqtt.js';
import { encodeBinaryPayload } from '../../src/transports/mqttBinary.js';
import { jsonNestingBeyond } from '../../src/transports/mqttJson.js';

const JS = 'sensor_msgs/msg/JointState';
const problemOf = (payload: string, type = JS): string => {
  const r = decodeJsonPayload(payload, type);
  if (r.ok) throw new Error(`expected ${payload.slice(0, 80)} to be refused`);
  return r.problem;
};

describe('decodeJsonPayload', () => {
  it('decodes hand-written messages exactly: ROS defaults filled, unknown keys left out, null read as NaN', () => {
    expect(decodeJsonPayload('{"position":[1,null,-0.5],"extra":{"a":1}}', JS)).toEqual({
      ok: true,
      data: { header: { stamp: { sec: 0, nanosec: 0 }, frame_id: '' }, name: [], position: [1, Number.NaN, -0.5], velocity: [], effort: [] },
    });
    expect(decodeJsonPayload('{"header":{"stamp":{"sec":-3,"nanosec":999999999}},"name":["a"],"position":[],"velocity":[2],"effort":[null]}', JS)).toEqual({
      ok: true,
      data: { header: { stamp: { sec: -3, nanosec: 999_999_999 }, frame_id: '' }, name: ['a'], position: [], velocity: [2], effort: [Number.NaN] },
    });
    expect(decodeJsonPayload('{"layout":{"dim":[{"label":"x","size":2,"stride":2}],"data_offset":0},"data":[0.5,1.5]}', 'std_msgs/msg/Float64MultiArray')).toEqual({
      ok: true,
      data: { layout: { dim: [{ label: 'x', size: 2, stride: 2 }], data_offset: 0 }, data: [0.5, 1.5] },
    });
    expect(decodeJsonPayload('{"status":[{"level":2,"name":"n","message":"m"}]}', 'diagnostic_msgs/msg/DiagnosticArray')).toEqual({
      ok: true,
      data: { header: { stamp: { sec: 0, nanosec: 0 }, frame_id: '' }, status: [{ level: 2, name: 'n', message: 'm', hardware_id: '', values: [] }] },
    });
    expect(decodeJsonPayload('{"data":true}', 'std_msgs/msg/Bool')).toEqual({ ok: true, data: { data: true } });
    // A type without a schema: any JSON object, as parsed.
    expect(decodeJsonPayload('{"anything":[1,{"b":null}]}', 'custom_msgs/msg/Thing')).toEqual({ ok: true, data: { anything: [1, { b: null }] } });
  });

  it('refuses a payload at its first problem, naming the path', () => {
    expect(problemOf('{"position":[0.1,"a","b","c"]}')).toBe('not a sensor_msgs/msg/JointState: at position[1]: expected a number (null for NaN), got "a"');
    expect(problemOf('{"position":[0.1,0.2,1e999]}')).toBe('not a sensor_msgs/msg/JointState: at position[2]: expected a number (null for NaN), got Infinity');
    expect(problemOf('{"position":[[0.1],[0.2]]}')).toBe('not a sensor_msgs/msg/JointState: at position[0]: expected a number (null for NaN), got array(1)');
    expect(problemOf('{"position":{"0":0.1}}')).toBe('not a sensor_msgs/msg/JointState: at position: expected an array of numbers, got object');
    expect(problemOf('{"header":{"stamp":{"sec":"now","nanosec":0}},"position":[1]}')).toBe(
      'not a sensor_msgs/msg/JointState: at header.stamp.sec: expected a whole number -9007199254740991 … 9007199254740991, got "now"',
    );
    expect(problemOf('{"header":{"stamp":{"sec":1,"nanosec":1e9}}}')).toBe('not a sensor_msgs/msg/JointState: at header.stamp.nanosec: expected a whole number 0 … 999999999, got 1000000000');
    expect(problemOf('{"header":[[]],"position":[1]}')).toBe('not a sensor_msgs/msg/JointState: at header: expected an object, got array(1)');
    expect(problemOf('{"name":["a",2]}')).toBe('not a sensor_msgs/msg/JointState: at name[1]: expected a string, got 2');
    expect(problemOf('{"status":[{"level":1,"name":"a","message":""},{"level":1,"name":"b","message":"","values":[{"key":"k","value":3}]}]}', 'diagnostic_msgs/msg/DiagnosticArray')).toBe(
      'not a diagnostic_msgs/msg/DiagnosticArray: at status[1].values[0].value: expected a string, got 3',
    );
    const imu = { header: { stamp: { sec: 0, nanosec: 0 }, frame_id: '' }, orientation: { x: 0, y: 0, z: 0, w: 1 }, orientation_covariance: [1, 2] };
    expect(problemOf(JSON.stringify(imu), 'sensor_msgs/msg/Imu')).toBe('not a sensor_msgs/msg/Imu: at orientation_covariance: expected 9 numbers, got 2');
    expect(problemOf('{"data":"yes"}', 'std_msgs/msg/Bool')).toBe('not a std_msgs/msg/Bool: at data: expected true or false, got "yes"');
    expect(problemOf('{"data":[1,2]}', 'std_msgs/msg/Float64')).toBe('not a std_msgs/msg/Float64: at data: expected a number (null for NaN), got array(2)');
    expect(problemOf('[1,2]')).toBe('expected a JSON object, got array(2)');
    expect(problemOf('{"position":')).toMatch(/^not JSON \(/);
  });

  it('refuses nesting deeper than MAX_JSON_DEPTH before parsing; brackets inside strings do not count', () => {
    const nested = (depth: number): string => `{"position":${'['.repeat(depth - 1)}0.1${']'.repeat(depth - 1)}}`;
    expect(MAX_JSON_DEPTH).toBe(64);
    // 64 levels (the object and 63 arrays) parse, and fail only as a JointState.
    expect(problemOf(nested(64))).toBe('not a sensor_msgs/msg/JointState: at position[0]: expected a number (null for NaN), got array(1)');
    // `{"position":` is characters 0–11; the 64th `[` (depth 65) is character 75.
    expect(problemOf(nested(65))).toBe('nested deeper than 64 objects or arrays (at character 75); no message type nests so deep');
    expect(problemOf(nested(100_000))).toBe('nested deeper than 64 objects or arrays (at character 75); no message type nests so deep');
    expect(decodeJsonPayload(`{"header":{"stamp":{"sec":1,"nanosec":0},"frame_id":"${'['.repeat(100)}\\"{"},"position":[1]}`, JS)).toMatchObject({ ok: true });
    expect(jsonNestingBeyond(Buffer.from('{"a":[[1]],"b":"[[[["}'), 2)).toBe(6);
    expect(jsonNestingBeyond(Buffer.from('{"a":[[1]],"b":"[[[["}'), 3)).toBe(-1);
  });
});

describe('decodeMqttPayload', () => {
  it('drops a payload over the limit unread (garbage included), and decodes the rest in the configured format', () => {
    const garbage = Buffer.alloc(2000, 0xff);
    expect(decodeMqttPayload(garbage, JS, 'json', 1999)).toEqual({ ok: false, reason: 'tooLarge', problem: '2000 bytes, more than maxPayloadBytes (1999)' });
    expect(decodeMqttPayload(garbage, JS, 'json', 2000)).toMatchObject({ ok: false, reason: 'malformed' });
    expect(decodeMqttPayload(Buffer.from('{"data":0.5}'), 'std_msgs/msg/Float64', 'json')).toEqual({ ok: true, data: { data: 0.5 } });
    const binary = encodeBinaryPayload('std_msgs/msg/Float64', { data: 0.5 });
    expect(decodeMqttPayload(binary, 'std_msgs/msg/Float64', 'binary')).toEqual({ ok: true, data: { data: 0.5 } });
    expect(decodeMqttPayload(binary, 'std_msgs/msg/Float64', 'binary', binary.byteLength - 1)).toMatchObject({ ok: false, reason: 'tooLarge' });
    expect(decodeMqttPayload(binary, 'std_msgs/msg/Float64', 'json')).toMatchObject({ ok: false, reason: 'malformed', problem: expect.stringMatching(/^not JSON/) });
  });

  it('prints the decode cost of hostile payloads before (zod, no size limit) and after (1 MiB limit, first-error checks); no timing asserted', () => {
    // The JointState schema as the transport had it before: zod, collecting every issue.
    const float = z.union([z.number(), z.null()]).transform((v) => v ?? Number.NaN);
    const floats = z.array(float).default([]);
    const time = z.object({ sec: z.number().int(), nanosec: z.number().int().min(0).max(999_999_999) });
    const header = z.object({ stamp: time, frame_id: z.string().default('') }).default({ stamp: { sec: 0, nanosec: 0 }, frame_id: '' });
    const zodJointState = z.object({ header, name: z.array(z.string()).default([]), position: floats, velocity: floats, effort: floats });
    const before = (payload: Buffer): boolean => {
      const raw: unknown = JSON.parse(payload.toString('utf8'));
      return zodJointState.safeParse(raw).success;
    };
    const js = (position: unknown, frame = ''): Buffer => Buffer.from(JSON.stringify({ header: { stamp: { sec: 1, nanosec: 0 }, frame_id: frame }, name: ['p'], position, velocity: [], effort: [] }));
    const nested = (depth: number): Buffer => Buffer.from(`{"position":${'['.repeat(depth)}0.1${']'.repeat(depth)}}`);
    // The largest count of `item` that keeps the payload within the default limit.
    const fill = (item: unknown, bytesEach: number): unknown[] => Array.from({ length: Math.floor((MQTT_MAX_PAYLOAD_BYTES - 200) / bytesEach) }, () => item);
    const cases: [string, Buffer, boolean][] = [
      // [what, payload, whether zod runs: 10⁶ strings and 1 MiB of strings take it 5–25 s]
      ['fault test: 10⁶ numbers (11 MB)', js(Array.from({ length: 1_000_000 }, (_, i) => (i + 1) * 1e-6)), true],
      ['fault test: 10⁶ strings', js(Array.from({ length: 1_000_000 }, () => 'a')), false],
      ['fault test: 4 MB frame_id, NaN positions', js([null, null, null], 'x'.repeat(4_000_000)), true],
      ['fault test: 10⁵-deep nesting', nested(100_000), true],
      ['10⁵ strings', js(Array.from({ length: 100_000 }, () => 'a')), true],
      ['numbers filling 1 MiB', js(fill(0.123456789, 12)), true],
      ['nulls filling 1 MiB', js(fill(null, 5)), true],
      ['strings filling 1 MiB', js(fill('a', 4)), false],
      ['nesting filling 1 MiB', nested(Math.floor((MQTT_MAX_PAYLOAD_BYTES - 20) / 2)), true],
    ];
    // Warm both decoders up on an ordinary message first.
    for (let i = 0; i < 200; i++) {
      before(js([0.1, 0.2, 0.3]));
      decodeMqttPayload(js([0.1, 0.2, 0.3]), JS, 'json');
    }
    const ms = (f: () => unknown): [number, unknown] => {
      const t0 = performance.now();
      const r = f();
      return [performance.now() - t0, r];
    };
    const lines: string[] = [];
    for (const [what, payload, runZod] of cases) {
      expect(payload.byteLength > MQTT_MAX_PAYLOAD_BYTES).toBe(what.startsWith('fault test') && !what.includes('nesting'));
      const [zodMs, zodOk] = runZod ? ms(() => before(payload)) : [Number.NaN, undefined];
      const [afterMs, after] = ms(() => decodeMqttPayload(payload, JS, 'json'));
      const [unlimitedMs, unlimited] = ms(() => decodeMqttPayload(payload, JS, 'json', Number.POSITIVE_INFINITY));
      const outcome = (r: unknown): string => ((r as { ok: boolean }).ok ? 'passed' : (r as { reason: string }).reason);
      lines.push(
        `${what.padEnd(42)} ${String(payload.byteLength).padStart(9)} B | before ${runZod ? `${zodMs.toFixed(1).padStart(7)} ms (${zodOk ? 'passed' : 'refused'})` : '   (not run)      '} | after ${afterMs.toFixed(2).padStart(7)} ms (${outcome(after)}) | after, no size limit ${unlimitedMs.toFixed(1).padStart(6)} ms (${outcome(unlimited)})`,
      );
      // What the node decides: over 1 MiB never parsed; the valid-looking arrays of numbers and nulls pass (the pipeline drops them by length); the rest refused.
      expect(outcome(after)).toBe(payload.byteLength > MQTT_MAX_PAYLOAD_BYTES ? 'tooLarge' : /numbers|nulls/.test(what) ? 'passed' : 'malformed');
    }
    console.log(`decode cost of one JointState payload on this machine (Node ${process.version}):\n${lines.join('\n')}`);
  }, 120_000);
});
