// MqttTransport against a real mosquitto broker that the test starts on a free port (and restarts,
// for the reconnection tests). Skipped, with the reason printed, where the mosquitto binary is
// absent (CI installs it: apt-get install mosquitto). The status and last-will test puts a TCP
// proxy between the transport and the broker and cuts it, so the connection dies without a
// DISCONNECT as it would when the robot's process is killed or its cable pulled; the test of
// stale messages also stalls it, so that messages go out but are never acknowledged, as on a
// link that died before anyone noticed.
// Binary payloads: mqttBinary.test.ts; JSON decoding and its cost: mqttJson.test.ts; TLS and
// passwords: mqttTls.test.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import { type Server, Socket, createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { JointState, Twist } from '../../src/transports/messages.js';
import { ValidationError } from '../../src/core/errors.js';
import { MQTT_MAX_PAYLOAD_BYTES, MqttPayloadError, MqttTransport, decodeJsonPayload, encodeJsonPayload, mqttTopicOf, type MqttStatus } from '../../src/transports/mqtt.js';
import { MQTT_BACKOFF_DEFAULTS, backoffRng, makeMqttBackoff, reconnectDelayMs } from '../../src/transports/mqttBackoff.js';
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

/**
 * A TCP proxy to the broker whose connections the test can cut (both sides closed, no MQTT
 * DISCONNECT), or stall: what the clients send is swallowed, so their messages leave but are
 * never acknowledged, as on a link that died unnoticed.
 */
class TcpProxy {
  #sockets = new Set<Socket>();
  #link = { stalled: false };
  private constructor(
    readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<TcpProxy> {
    const sockets = new Set<Socket>();
    const link = { stalled: false };
    const server = createServer((downstream) => {
      const upstream = createConnection({ port: targetPort, host: '127.0.0.1' });
      for (const s of [downstream, upstream]) {
        sockets.add(s);
        s.on('error', () => {});
        s.on('close', () => {
          sockets.delete(s);
          downstream.destroy();
          upstream.destroy();
        });
      }
      downstream.on('data', (chunk: Buffer) => {
        if (!link.stalled) upstream.write(chunk);
      });
      upstream.pipe(downstream);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const proxy = new TcpProxy(server, (server.address() as { port: number }).port);
    proxy.#sockets = sockets;
    proxy.#link = link;
    return proxy;
  }

  /** Swallows what clients send from now on, until `cut`. */
  stall(): void {
    this.#link.stalled = true;
  }

  /** Closes every connection (and ends a stall: new connections pass again). */
  cut(): void {
    this.#link.stalled = false;
    for (const s of this.#sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((r) => this.server.close(r));
  }
}

describe.skipIf(MOSQUITTO === undefined)('MqttTransport with a real mosquitto', () => {
  let broker: Broker;
  let dir: string;
  let url: string;
  const open: MqttTransport[] = [];
  const transport = (o: Partial<ConstructorParameters<typeof MqttTransport>[0]> = {}): MqttTransport => {
    const t = new MqttTransport({ url, prefix: 'test/robot', reconnectPeriodMs: 100, statusTopic: null, onError: () => {}, ...o });
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

  it('drops a payload longer than maxPayloadBytes unread, counted as tooLarge (not malformed), and passes one of exactly that length', async () => {
    const sub = transport({ maxPayloadBytes: 1024 });
    await sub.connect();
    const got: JointState[] = [];
    const errors: Error[] = [];
    sub.subscribe<JointState>('/joint_states', 'sensor_msgs/msg/JointState', (m) => got.push(m.data), { onError: (e) => errors.push(e) });
    const raw = await mqtt.connectAsync(url);
    await new Promise((r) => setTimeout(r, 100));
    // A valid JointState padded (in frame_id) to `bytes` bytes.
    const padded = (bytes: number, position: number): string => {
      const base = (frame: string) => JSON.stringify({ header: { stamp: { sec: 1, nanosec: 0 }, frame_id: frame }, position: [position] });
      return base('x'.repeat(bytes - base('').length));
    };
    expect(Buffer.byteLength(padded(1025, 2))).toBe(1025);
    await raw.publishAsync('test/robot/joint_states', padded(1025, 2), { qos: 1 });
    await raw.publishAsync('test/robot/joint_states', padded(1024, 1), { qos: 1 });
    await until(() => got.length === 1, 'the message of exactly maxPayloadBytes');
    expect(got[0].position).toEqual([1]);
    expect(sub.stats).toMatchObject({ received: 2, delivered: 1, tooLarge: 1, malformed: 0 });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(MqttPayloadError);
    expect((errors[0] as MqttPayloadError).dropReason).toBe('tooLarge');
    expect(errors[0].message).toMatch(
      /^MqttTransport\(mqtt:\/\/127\.0\.0\.1:\d+\)\.subscribe\(\/joint_states\): payload: 1025 bytes on MQTT topic test\/robot\/joint_states, more than maxPayloadBytes \(1024\); dropped unread \(1 too large on this topic so far\)$/,
    );
    expect(new MqttTransport({ url: 'mqtt://h:1883' }).stats.tooLarge).toBe(0);
    expect(MQTT_MAX_PAYLOAD_BYTES).toBe(1_048_576);
    expect(() => new MqttTransport({ url: 'mqtt://h:1883', maxPayloadBytes: 0 })).toThrow('MqttTransport: maxPayloadBytes: expected a positive integer, got 0');
    await raw.endAsync();
  });

  it('turns Nagle off (TCP_NODELAY) on its socket to the broker, on the first connection and on every reconnection', async () => {
    const proxy = await TcpProxy.start(broker.port);
    const setNoDelay = vi.spyOn(Socket.prototype, 'setNoDelay');
    try {
      const t = transport({ url: `mqtt://127.0.0.1:${proxy.port}`, reconnect: { initialDelayMs: 50, maxDelayMs: 200 } });
      await t.connect();
      // The sockets of this transport (to the proxy's port), and what Node recorded it set on each.
      const sockets = (): Socket[] => [...new Set(setNoDelay.mock.contexts as Socket[])].filter((s) => s.remotePort === proxy.port);
      const noDelayOf = (s: Socket): unknown => {
        const key = Object.getOwnPropertySymbols(s).find((k) => k.description === 'kSetNoDelay');
        return key === undefined ? undefined : (s as unknown as Record<symbol, unknown>)[key];
      };
      expect(sockets()).toHaveLength(1);
      expect(noDelayOf(sockets()[0])).toBe(true);
      expect(setNoDelay.mock.calls.every(([on]) => on === true)).toBe(true);
      proxy.cut();
      await until(() => t.stats.reconnects === 1, 'the reconnection');
      expect(sockets()).toHaveLength(2);
      expect(sockets().map(noDelayOf)).toEqual([true, true]);
    } finally {
      setNoDelay.mockRestore();
      await proxy.close();
    }
  });

  it('sends no stale message after an outage: drops what is published offline, does not resend what was unacknowledged; queues only queueOffline topics', async () => {
    // The node's side, through a proxy that can stall and cut its link, and the robot's side on the broker directly.
    const proxy = await TcpProxy.start(broker.port);
    const node = transport({ url: `mqtt://127.0.0.1:${proxy.port}`, clientId: 'stale-node', reconnect: { initialDelayMs: 50, maxDelayMs: 200 }, queueOffline: ['/log'] });
    const robot = transport({ clientId: 'stale-robot', reconnect: { initialDelayMs: 50, maxDelayMs: 200 } });
    await node.connect();
    await robot.connect();
    const actions: number[] = [];
    const logs: number[] = [];
    robot.subscribe<{ data: number[] }>('/mbrl/action', 'std_msgs/msg/Float64MultiArray', (m) => actions.push(m.data.data[0]));
    robot.subscribe<{ data: number }>('/log', 'std_msgs/msg/Float64', (m) => logs.push(m.data.data));
    await new Promise((r) => setTimeout(r, 100));
    const act = (u: number): void => node.publish('/mbrl/action', 'std_msgs/msg/Float64MultiArray', { data: [u] }); // QoS 1 (reliable)
    const log = (v: number): void => node.publish('/log', 'std_msgs/msg/Float64', { data: v });
    act(1);
    log(1);
    await until(() => actions.length === 1 && logs.length === 1, 'the first action and log entry');

    // 1. The broker stops: actions published meanwhile are dropped, not queued; the log entries are queued.
    await broker.stop();
    await until(() => !node.stats.connected && !robot.stats.connected, 'both sides to notice the broker is gone');
    for (let u = 100; u < 105; u++) act(u);
    log(2);
    log(3);
    expect(node.stats).toMatchObject({ dropped: 5, droppedOffline: 5, droppedUnacked: 0 });
    await broker.start();
    await until(() => node.stats.connected && robot.stats.connected, 'both sides to reconnect');
    // The first publish after the reconnection is fresh (the node's next tick).
    await until(() => {
      act(2);
      return actions.includes(2);
    }, 'a fresh action after the restart');
    await until(() => logs.length === 3, 'the queued log entries');
    expect(logs).toEqual([1, 2, 3]);

    // 2. The link dies unnoticed: actions go out but are never acknowledged; when the loss is
    // seen (here: the proxy cuts), they are discarded instead of resent on the reconnection.
    await until(() => node.stats.inFlight === 0, 'every earlier message acknowledged');
    proxy.stall();
    for (let u = 200; u < 205; u++) act(u);
    log(4);
    expect(node.stats).toMatchObject({ connected: true, inFlight: 6 });
    await new Promise((r) => setTimeout(r, 100));
    proxy.cut();
    await until(() => node.stats.reconnects === 2, 'the second reconnection');
    await until(() => {
      act(3);
      return actions.includes(3);
    }, 'a fresh action after the second reconnection');
    await until(() => logs.length === 4, 'the unacknowledged log entry, resent');
    expect(logs).toEqual([1, 2, 3, 4]);
    await new Promise((r) => setTimeout(r, 200)); // a late resend would arrive by now

    expect(actions.filter((u) => u >= 100)).toEqual([]);
    expect(actions.filter((u) => u !== 2 && u !== 3)).toEqual([1]);
    expect(node.stats).toMatchObject({ droppedOffline: 5, droppedUnacked: 5, droppedBacklog: 0 });
    // The status published on each connection was not resent either: nothing else was dropped.
    expect(node.stats.dropped).toBe(10);
    console.log(`stale messages: ${JSON.stringify({ actionsReceived: actions, logs, node: node.stats })}`);
    await proxy.close();
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
    // Jitter takes up to 20 % off the first wait of 100 ms.
    expect(connErrors[0]).toMatch(new RegExp(`^MqttTransport\\(${url.replace(/[.]/g, '\\.')}\\): connection to the broker lost; reconnecting in (8\\d|9\\d|100) ms, then backing off ×2 up to 10000 ms$`));
    expect(sub.stats.offlineMs).toBeGreaterThan(0);
  });

  it('backs off exponentially up to the cap while the broker is down, and starts again from the first wait once connected', async () => {
    // A broker of its own: this test keeps it down for seconds.
    const own = new Broker(await freePort(), dir);
    await own.start();
    const t = transport({ url: `mqtt://127.0.0.1:${own.port}`, clientId: 'backoff-test', reconnect: { initialDelayMs: 50, maxDelayMs: 400, factor: 2, jitter: 0 } });
    t.subscribe('/x', 'std_msgs/msg/Float64', () => {});
    await t.connect();
    expect(t.stats.reconnectDelayMs).toBe(50);

    await own.stop();
    await until(() => !t.stats.connected, 'the loss to be noticed');
    // The wait mqtt.js uses next, after each attempt: 100, 200, 400, then 400 (the cap).
    const waits: number[] = [];
    const attemptsAt: number[] = [];
    const t0 = performance.now();
    let seen = t.stats.reconnectAttempts;
    while (performance.now() - t0 < 2500) {
      const s = t.stats;
      if (s.reconnectAttempts > seen) {
        seen = s.reconnectAttempts;
        attemptsAt.push(Math.round(performance.now() - t0));
        waits.push(s.reconnectDelayMs);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    console.log(`backoff: attempts at ${attemptsAt.join(', ')} ms after the loss was seen; next waits ${waits.join(', ')} ms`);
    expect(waits.slice(0, 4)).toEqual([100, 200, 400, 400]);
    expect(waits.every((w) => w <= 400)).toBe(true);
    // 50 + 100 + 200 + 400 + 400 + … : about 8 attempts in 2.5 s. A fixed 50 ms period would make ~50.
    expect(attemptsAt.length).toBeGreaterThanOrEqual(4);
    expect(attemptsAt.length).toBeLessThanOrEqual(12);

    await own.start();
    await until(() => t.stats.connected, 'the reconnection');
    expect(t.stats).toMatchObject({ reconnects: 1, reconnectDelayMs: 50 });
    expect(t.stats.offlineMs).toBeGreaterThanOrEqual(2500);
    // Second outage: the backoff starts again from 50 ms (the next wait after the first attempt is 100, not 400).
    const before = t.stats.reconnectAttempts;
    await own.stop();
    await until(() => t.stats.reconnectAttempts > before, 'the first attempt of the second outage');
    expect(t.stats.reconnectDelayMs).toBe(100);
    await t.close();
  });

  it('announces online on its status topic, the broker publishes the retained will when the connection dies, close() says offline', async () => {
    const proxy = await TcpProxy.start(broker.port);
    const clock = () => 1_700_000_000_123_456_789n;
    const t = transport({ url: `mqtt://127.0.0.1:${proxy.port}`, clientId: 'robot-7', statusTopic: undefined, clock, reconnect: { initialDelayMs: 50, maxDelayMs: 200 } });
    expect(t.statusTopic).toBe('test/robot/mbrl/status/robot-7');
    const statuses: MqttStatus[] = [];
    const observer = await mqtt.connectAsync(url);
    observer.on('message', (topic, payload) => topic === 'test/robot/mbrl/status/robot-7' && statuses.push(JSON.parse(payload.toString('utf8')) as MqttStatus));
    await observer.subscribeAsync('test/robot/mbrl/status/+', { qos: 1 });
    const stamp = { sec: 1_700_000_000, nanosec: 123_456_789 };

    await t.connect();
    await until(() => statuses.length === 1, 'online');
    expect(statuses[0]).toEqual({ state: 'online', clientId: 'robot-7', stamp });

    // The connection dies without a DISCONNECT: the broker publishes the will.
    proxy.cut();
    await until(() => statuses.length >= 2, 'the will');
    expect(statuses[1]).toEqual({ state: 'offline', reason: 'lost', clientId: 'robot-7', stamp });
    // The will is retained: a dashboard that connects now still sees the robot offline.
    const late = await mqtt.connectAsync(url);
    const retained = new Promise<[MqttStatus, boolean]>((resolve) => late.on('message', (_t, p, packet) => resolve([JSON.parse(p.toString('utf8')) as MqttStatus, packet.retain])));
    await late.subscribeAsync('test/robot/mbrl/status/robot-7', { qos: 1 });
    expect(await retained).toEqual([{ state: 'offline', reason: 'lost', clientId: 'robot-7', stamp }, true]);
    await late.endAsync();

    // It reconnects through the proxy (still listening) and says so again.
    await until(() => t.stats.reconnects === 1 && statuses.length >= 3, 'the reconnection and online again');
    expect(statuses[2]).toEqual({ state: 'online', clientId: 'robot-7', stamp });

    // A clean close: offline, reason closed, and no will after it.
    await t.close();
    await until(() => statuses.length >= 4, 'offline on close');
    expect(statuses[3]).toEqual({ state: 'offline', reason: 'closed', clientId: 'robot-7', stamp });
    await new Promise((r) => setTimeout(r, 300));
    expect(statuses).toHaveLength(4);
    await observer.endAsync();
    await proxy.close();
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

describe('reconnection backoff', () => {
  it('doubles from the first wait up to the cap; jitter only shortens a wait', () => {
    const b = { initialDelayMs: 250, maxDelayMs: 10_000, factor: 2, jitter: 0.2 };
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((n) => reconnectDelayMs(n, b, 0))).toEqual([250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
    expect(reconnectDelayMs(3, b, 0.5)).toBe(1800); // 2000 · (1 − 0.2 · 0.5)
    expect(reconnectDelayMs(1e6, b, 0.999)).toBe(8002); // capped, no overflow
    expect(reconnectDelayMs(5, { ...b, factor: 1 }, 0)).toBe(250); // factor 1: a fixed period
    expect(makeMqttBackoff()).toEqual(MQTT_BACKOFF_DEFAULTS);
    expect(() => makeMqttBackoff({ initialDelayMs: 500, maxDelayMs: 100 }, 'here')).toThrow('here: reconnect.maxDelayMs: expected a whole number of milliseconds ≥ initialDelayMs (500), got 100');
    expect(() => makeMqttBackoff({ factor: 0.5 }, 'here')).toThrow('here: reconnect.factor: expected a number ≥ 1, got 0.5');
    expect(() => makeMqttBackoff({ jitter: 2 }, 'here')).toThrow('here: reconnect.jitter: expected a number 0 … 1, got 2');
    // Seeded from the client id: reproducible, and different for two clients.
    expect(backoffRng('robot-1').random()).toBe(backoffRng('robot-1').random());
    expect(backoffRng('robot-1').random()).not.toBe(backoffRng('robot-2').random());
  });

  it('checks the transport options: TLS only with mqtts/wss, a password only with a username, the status topic', () => {
    expect(() => new MqttTransport({ url: 'mqtt://h:1883', tls: { caFile: 'ca.pem' } })).toThrow('MqttTransport: tls: TLS settings need an mqtts:// or wss:// URL, got "mqtt://h:1883"');
    expect(() => new MqttTransport({ url: 'mqtts://h:8883', tls: { certFile: 'c.pem' } })).toThrow('MqttTransport: tls.keyFile: a client certificate needs both tls.certFile and tls.keyFile');
    expect(() => new MqttTransport({ url: 'mqtt://h:1883', password: 'x' })).toThrow('MqttTransport: username: a password was given without a username');
    expect(() => new MqttTransport({ url: 'mqtt://h:1883', payload: 'cbor' as 'json' })).toThrow('MqttTransport: payload: expected "json" or "binary", got "cbor"');
    expect(() => new MqttTransport({ url: 'mqtt://h:1883', clientId: 'a+b' })).toThrow(ValidationError);
    expect(() => new MqttTransport({ url: 'mqtt://h:1883', clientId: 'a+b' })).toThrow('statusTopic: the default /mbrl/status/<clientId> does not make a topic of client id "a+b"; set statusTopic (or null for none)');
    expect(new MqttTransport({ url: 'mqtt://h:1883', clientId: 'a+b', statusTopic: null }).statusTopic).toBeNull();
    expect(new MqttTransport({ url: 'mqtt://h:1883', prefix: 'p', statusTopic: '/fleet/status' }).statusTopic).toBe('p/fleet/status');
    expect(new MqttTransport({ url: 'mqtt://h:1883' }).clientId).toMatch(/^mbrl-[0-9a-f]{8}$/);
    // The deprecated fixed period is the first wait now.
    expect(new MqttTransport({ url: 'mqtt://h:1883', reconnectPeriodMs: 200, reconnect: { jitter: 0 } }).stats.reconnectDelayMs).toBe(200);
  });
});
