// MqttTransport against a real mosquitto broker that the test starts on a free port (and restarts,
// for the reconnection test). Skipped, with the reason printed, where the mosquitto binary is
// absent (CI installs it: apt-get install mosquitto).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JointState, Twist } from '../../src/transports/messages.js';
import { MqttTransport, decodeJsonPayload, encodeJsonPayload, mqttTopicOf } from '../../src/transports/mqtt.js';
import { QOS_SENSOR_DATA } from '../../src/transports/transport.js';
import { MOSQUITTO, MOSQUITTO_SKIP_REASON, MosquittoBroker as Broker, freePort } from '../mosquittoBroker.js';

if (MOSQUITTO === undefined) console.warn(MOSQUITTO_SKIP_REASON);

async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const JS: JointState = {
  header: { stamp: { sec: 12, nanosec: 345 }, frame_id: 'base' },
  name: ['j0', 'j1'],
  position: [0.25, -1.5],
  velocity: [Number.NaN, 3],
  effort: [],
};
const TWIST: Twist = { linear: { x: 0.2, y: 0, z: 0 }, angular: { x: 0, y: 0, z: -0.75 } };

describe.skipIf(MOSQUITTO === undefined)('MqttTransport with a real mosquitto', () => {
  let broker: Broker;
  let dir: string;
  let url: string;
  const open: MqttTransport[] = [];
  const transport = (o: Partial<ConstructorParameters<typeof MqttTransport>[0]> = {}): MqttTransport => {
    const t = new MqttTransport({ url, prefix: 'test/robot', reconnectPeriodMs: 100, onError: () => {}, ...o });
    open.push(t);
    return t;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mbrl-mqtt-'));
    broker = new Broker(await freePort(), dir);
    url = `mqtt://127.0.0.1:${broker.port}`;
    await broker.start();
  });

  afterAll(async () => {
    for (const t of open) await t.close();
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('round-trips a JointState (NaN included) and a Twist between two transports, as documented JSON on <prefix>/<topic>', async () => {
    const pub = transport();
    const sub = transport({ clock: () => 42n });
    await pub.connect();
    await sub.connect();
    const states: unknown[] = [];
    const twists: unknown[] = [];
    sub.subscribe<JointState>('/joint_states', 'sensor_msgs/msg/JointState', (m) => states.push(m), { qos: QOS_SENSOR_DATA });
    sub.subscribe<Twist>('/cmd_vel', 'geometry_msgs/msg/Twist', (m) => twists.push(m.data));
    // A plain MQTT client sees the documented wire format.
    const raw = await mqtt.connectAsync(url);
    const rawSeen: [string, string][] = [];
    raw.on('message', (topic, payload) => rawSeen.push([topic, payload.toString('utf8')]));
    await raw.subscribeAsync('test/robot/#', { qos: 1 });
    await new Promise((r) => setTimeout(r, 100)); // let the SUBSCRIBEs reach the broker
    pub.publish('/joint_states', 'sensor_msgs/msg/JointState', JS, { qos: QOS_SENSOR_DATA });
    pub.publish('/cmd_vel', 'geometry_msgs/msg/Twist', TWIST);
    await until(() => states.length === 1 && twists.length === 1 && rawSeen.length === 2, 'both messages');
    expect(states[0]).toEqual({ topic: '/joint_states', type: 'sensor_msgs/msg/JointState', data: JS, receivedNs: 42n });
    expect(twists[0]).toEqual(TWIST);
    expect(rawSeen).toContainEqual([
      'test/robot/joint_states',
      '{"header":{"stamp":{"sec":12,"nanosec":345},"frame_id":"base"},"name":["j0","j1"],"position":[0.25,-1.5],"velocity":[null,3],"effort":[]}',
    ]);
    expect(rawSeen).toContainEqual(['test/robot/cmd_vel', '{"linear":{"x":0.2,"y":0,"z":0},"angular":{"x":0,"y":0,"z":-0.75}}']);
    expect(sub.stats).toMatchObject({ received: 2, delivered: 2, malformed: 0, connected: true });
    await raw.endAsync();
    await pub.close();
    await sub.close();
  });

  it('counts malformed payloads and reports them through onError, never passing them on', async () => {
    const sub = transport();
    await sub.connect();
    const got: JointState[] = [];
    const errors: string[] = [];
    sub.subscribe<JointState>('/joint_states', 'sensor_msgs/msg/JointState', (m) => got.push(m.data), { onError: (e) => errors.push(e.message) });
    const raw = await mqtt.connectAsync(url);
    await new Promise((r) => setTimeout(r, 100));
    await raw.publishAsync('test/robot/joint_states', 'not json{', { qos: 1 });
    await raw.publishAsync('test/robot/joint_states', '{"position":"fast"}', { qos: 1 });
    await raw.publishAsync('test/robot/joint_states', '[1,2]', { qos: 1 });
    // Minimal but valid: header and the other arrays take ROS's defaults.
    await raw.publishAsync('test/robot/joint_states', '{"position":[1,2]}', { qos: 1 });
    await until(() => got.length === 1, 'the valid message');
    expect(got[0]).toEqual({ header: { stamp: { sec: 0, nanosec: 0 }, frame_id: '' }, name: [], position: [1, 2], velocity: [], effort: [] });
    expect(sub.stats.malformed).toBe(3);
    expect(sub.malformedOn('/joint_states')).toBe(3);
    expect(errors).toHaveLength(3);
    expect(errors[0]).toMatch(/^MqttTransport\(mqtt:\/\/127\.0\.0\.1:\d+\)\.subscribe\(\/joint_states\): payload: malformed sensor_msgs\/msg\/JointState on MQTT topic test\/robot\/joint_states: not JSON \(.+\); dropped \(1 malformed on this topic so far\)$/);
    expect(errors[1]).toContain('not a sensor_msgs/msg/JointState: at position: ');
    expect(errors[2]).toContain('expected a JSON object, got array(2)');
    await raw.endAsync();
  });

  it('reconnects after the broker restarts: resubscribes, counts best-effort messages dropped while offline', async () => {
    const pub = transport();
    const sub = transport();
    const connErrors: string[] = [];
    const sub2 = transport({ onError: (e) => connErrors.push(e.message) });
    await pub.connect();
    await sub.connect();
    await sub2.connect();
    const got: number[] = [];
    sub.subscribe<{ data: number }>('/counter', 'std_msgs/msg/Float64', (m) => got.push(m.data.data));
    await new Promise((r) => setTimeout(r, 100));
    pub.publish('/counter', 'std_msgs/msg/Float64', { data: 1 });
    await until(() => got.length === 1, 'the message before the restart');

    await broker.stop();
    await until(() => !pub.stats.connected && !sub.stats.connected, 'both clients to notice the broker is gone');
    const droppedBefore = pub.stats.dropped;
    pub.publish('/counter', 'std_msgs/msg/Float64', { data: 99 }, { qos: QOS_SENSOR_DATA }); // best effort: dropped
    await until(() => pub.stats.dropped === droppedBefore + 1, 'the offline best-effort message to be counted as dropped');

    await broker.start();
    await until(() => pub.stats.connected && sub.stats.connected, 'both clients to reconnect');
    expect(sub.stats.reconnects).toBeGreaterThanOrEqual(1);
    // The broker kept no state (persistence false): only the client's resubscription brings messages back.
    await until(() => {
      pub.publish('/counter', 'std_msgs/msg/Float64', { data: 2 });
      return got.includes(2);
    }, 'a message after the restart');
    expect(got).not.toContain(99);
    expect(got[0]).toBe(1);
    expect(connErrors[0]).toBe(`MqttTransport(${url}): connection to the broker lost; reconnecting every 100 ms`);
  });

  it('rejects connect with an error naming the URL when no broker listens', async () => {
    const port = await freePort();
    const t = new MqttTransport({ url: `mqtt://127.0.0.1:${port}`, connectTimeoutMs: 2000 });
    await expect(t.connect()).rejects.toThrow(`MqttTransport.connect: could not reach the broker at mqtt://127.0.0.1:${port}: `);
    await t.close();
  });
});

describe('MQTT mapping and payloads', () => {
  it('maps ROS topics under the prefix and rejects wildcards', () => {
    expect(mqttTopicOf('/joint_states', 'mbrl')).toBe('mbrl/joint_states');
    expect(mqttTopicOf('/ns/cmd_vel', 'a/b')).toBe('a/b/ns/cmd_vel');
    expect(mqttTopicOf('/joint_states', '')).toBe('joint_states');
    expect(() => mqttTopicOf('/a/#', 'mbrl')).toThrow("mqttTopicOf: topic: expected a ROS topic name (no '+', '#' or empty levels), got \"/a/#\"");
    expect(() => mqttTopicOf('/a//b', 'mbrl')).toThrow(/empty levels/);
    expect(() => new MqttTransport({ url: 'localhost' })).toThrow('MqttTransport: url: expected a broker URL such as "mqtt://localhost:1883", got "localhost"');
  });

  it('encodes typed arrays, bigint and NaN as documented and decodes them back', () => {
    expect(encodeJsonPayload({ data: new Float32Array([0.5, Number.POSITIVE_INFINITY]), n: 5n })).toBe('{"data":[0.5,null],"n":"5"}');
    const back = decodeJsonPayload('{"layout":{"dim":[],"data_offset":0},"data":[0.5,null]}', 'std_msgs/msg/Float64MultiArray');
    expect(back).toEqual({ ok: true, data: { layout: { dim: [], data_offset: 0 }, data: [0.5, Number.NaN] } });
    expect(decodeJsonPayload('{"data":"yes"}', 'std_msgs/msg/Bool')).toMatchObject({ ok: false, problem: expect.stringContaining('not a std_msgs/msg/Bool: at data:') });
    expect(decodeJsonPayload('{"anything":1}', 'custom_msgs/msg/Thing')).toEqual({ ok: true, data: { anything: 1 } });
  });
});
