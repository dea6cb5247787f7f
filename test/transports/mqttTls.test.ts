// MqttTransport over TLS with accounts, against a real mosquitto: a throw-away CA and server
// certificate (for 127.0.0.1 and localhost) made with openssl at test time, a password file made
// with mosquitto_passwd, anonymous clients refused. Right CA and password: messages flow, also
// through a node configuration (passwordFile, tls.caFile); wrong CA, wrong password, no
// username, no client certificate where one is required: connect rejects at once, naming the
// broker and the reason, never the password. Skipped, with the reason printed, where mosquitto,
// mosquitto_passwd or openssl is absent.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { loadNodeConfig } from '../../src/node/config.js';
import { makeNodeTransport } from '../../src/node/controlNodeTransport.js';
import type { JointState } from '../../src/transports/messages.js';
import { MqttTransport } from '../../src/transports/mqtt.js';
import { MOSQUITTO, MOSQUITTO_SKIP_REASON, MosquittoBroker, freePort } from '../mosquittoBroker.js';

const which = (name: string): string | undefined => spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim() || undefined;
const OPENSSL = which('openssl');
const MOSQUITTO_PASSWD = ['/usr/bin/mosquitto_passwd', '/usr/local/bin/mosquitto_passwd'].find((p) => existsSync(p)) ?? which('mosquitto_passwd');
const SKIP_REASON =
  MOSQUITTO === undefined ? MOSQUITTO_SKIP_REASON : OPENSSL === undefined ? 'SKIPPED: openssl not found (apt-get install openssl)' : MOSQUITTO_PASSWD === undefined ? 'SKIPPED: mosquitto_passwd not found (apt-get install mosquitto)' : undefined;
if (SKIP_REASON !== undefined) console.warn(SKIP_REASON);

const PASSWORD = 'c0rrect-h0rse';

function run(cmd: string, args: string[], cwd: string): void {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
}

/** A CA, a certificate it signs for `cn` (with `san` alt names when given), keys: P-256, valid a day. */
function makeCerts(dir: string): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run(OPENSSL!, ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=mbrl test CA'], dir);
  run(OPENSSL!, ['req', '-x509', ...ec, '-keyout', 'other-ca.key', '-out', 'other-ca.crt', '-days', '1', '-subj', '/CN=someone else'], dir);
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  for (const [name, subj, ext] of [
    ['server', '/CN=localhost', ['-extfile', 'server.ext']],
    ['client', '/CN=robot', []],
  ] as const) {
    run(OPENSSL!, ['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj], dir);
    run(OPENSSL!, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', ...ext], dir);
  }
}

describe.skipIf(SKIP_REASON !== undefined)('MqttTransport over TLS with a password, real mosquitto', () => {
  let dir: string;
  let broker: MosquittoBroker;
  /** TLS listener; `certPort` also requires a client certificate. */
  let url: string;
  let certUrl: string;
  /** mqtts:// to a listener without TLS. */
  let plainTlsUrl: string;
  const open: MqttTransport[] = [];
  const transport = (o: Partial<ConstructorParameters<typeof MqttTransport>[0]> = {}): MqttTransport => {
    const t = new MqttTransport({ url, prefix: 'tls', username: 'robot', password: PASSWORD, tls: { caFile: join(dir, 'ca.crt') }, statusTopic: null, connectTimeoutMs: 4000, onError: () => {}, ...o });
    open.push(t);
    return t;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mbrl-mqtt-tls-'));
    makeCerts(dir);
    run(MOSQUITTO_PASSWD!, ['-b', '-c', join(dir, 'passwd'), 'robot', PASSWORD], dir);
    const port = await freePort();
    const certPort = await freePort();
    const plainPort = await freePort();
    const tls = (p: number) => `listener ${p} 127.0.0.1\ncafile ${join(dir, 'ca.crt')}\ncertfile ${join(dir, 'server.crt')}\nkeyfile ${join(dir, 'server.key')}\n`;
    broker = new MosquittoBroker(
      port,
      dir,
      [
        // As root, mosquitto drops to the `mosquitto` user, which cannot read this private temp dir.
        ...(process.getuid?.() === 0 ? ['user root'] : []),
        'per_listener_settings false',
        'allow_anonymous false',
        `password_file ${join(dir, 'passwd')}`,
        tls(port),
        `${tls(certPort)}require_certificate true`,
        `listener ${plainPort} 127.0.0.1`,
        '',
      ].join('\n'),
    );
    url = `mqtts://127.0.0.1:${port}`;
    certUrl = `mqtts://127.0.0.1:${certPort}`;
    plainTlsUrl = `mqtts://127.0.0.1:${plainPort}`;
    await broker.start();
  });

  afterAll(async () => {
    for (const t of open) await t.close();
    await broker?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('exchanges messages over mqtts:// with the right CA and password, Nagle off on the TLS sockets', async () => {
    const a = transport();
    const b = transport({ payload: 'binary' });
    const c = transport({ payload: 'binary' });
    // tls.TLSSocket inherits net.Socket's setNoDelay, which passes it to the TCP socket under the TLS layer.
    const setNoDelay = vi.spyOn(Socket.prototype, 'setNoDelay');
    try {
      await Promise.all([a.connect(), b.connect(), c.connect()]);
      const port = Number(new URL(url).port);
      const sockets = [...new Set(setNoDelay.mock.contexts as Socket[])].filter((s) => s.remotePort === port);
      const noDelayOf = (s: Socket): unknown => (s as unknown as Record<symbol, unknown>)[Object.getOwnPropertySymbols(s).find((k) => k.description === 'kSetNoDelay') as symbol];
      expect(sockets.map((s) => [s.constructor.name, noDelayOf(s)])).toEqual([
        ['TLSSocket', true],
        ['TLSSocket', true],
        ['TLSSocket', true],
      ]);
    } finally {
      setNoDelay.mockRestore();
    }
    const got: JointState[] = [];
    c.subscribe<JointState>('/joint_states', 'sensor_msgs/msg/JointState', (m) => got.push(m.data));
    const estops: string[] = [];
    a.subscribe<{ data: boolean }>('/estop', 'std_msgs/msg/Bool', (m) => estops.push(String(m.data.data)));
    await new Promise((r) => setTimeout(r, 150));
    const js: JointState = { header: { stamp: { sec: 1, nanosec: 2 }, frame_id: '' }, name: ['j'], position: [0.5], velocity: [], effort: [] };
    b.publish('/joint_states', 'sensor_msgs/msg/JointState', js);
    b.publish('/estop', 'std_msgs/msg/Bool', { data: true }); // binary from b, but a reads JSON: malformed
    const t0 = Date.now();
    while ((got.length < 1 || a.stats.malformed < 1) && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
    expect(got).toEqual([js]);
    expect(a.stats.malformed).toBe(1); // both ends must agree on the payload format
    expect(estops).toEqual([]);
  });

  it('builds the transport from a node config: password from a file, CA relative to the config file', async () => {
    writeFileSync(join(dir, 'mqtt_password'), `${PASSWORD}\n`);
    const file = join(dir, 'node.yaml');
    const yaml = readFileSync(new URL('../../launch/pendulum_mqtt.yaml', import.meta.url), 'utf8').replace(
      /^transport:\n( {2}.*\n)+/m,
      `transport:\n  kind: mqtt\n  url: ${url}\n  clientId: node-from-config\n  topicPrefix: pendulum\n  username: robot\n  passwordFile: mqtt_password\n  tls: { caFile: ca.crt }\n`,
    );
    writeFileSync(file, yaml);
    const config = loadNodeConfig(file);
    expect(config.transport).toMatchObject({ passwordFile: join(dir, 'mqtt_password'), tls: { caFile: join(dir, 'ca.crt'), rejectUnauthorized: true }, statusTopic: '/mbrl/status/node-from-config' });
    const t = makeNodeTransport(config) as MqttTransport;
    open.push(t);
    const observer = await mqtt.connectAsync(url, { ca: readFileSync(join(dir, 'ca.crt')), username: 'robot', password: PASSWORD });
    const seen: string[] = [];
    observer.on('message', (topic, payload) => seen.push(`${topic} ${payload.toString('utf8')}`));
    await observer.subscribeAsync('pendulum/#', { qos: 1 });
    await t.connect();
    t.publish('/mbrl/action', 'std_msgs/msg/Float64MultiArray', { layout: { dim: [], data_offset: 0 }, data: [1.5] });
    const t0 = Date.now();
    while (seen.length < 2 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
    expect(seen).toContainEqual(expect.stringMatching(/^pendulum\/mbrl\/status\/node-from-config \{"state":"online","clientId":"node-from-config","stamp":/));
    expect(seen).toContainEqual('pendulum/mbrl/action {"layout":{"dim":[],"data_offset":0},"data":[1.5]}');
    await observer.endAsync();

    writeFileSync(join(dir, 'empty_password'), '');
    expect(() => makeNodeTransport({ ...config, transport: { ...config.transport, passwordFile: join(dir, 'empty_password') } as typeof config.transport })).toThrow(
      `makeNodeTransport: transport.passwordFile: "${join(dir, 'empty_password')}" is empty; expected it to hold the broker password`,
    );
    expect(() => makeNodeTransport({ ...config, transport: { ...config.transport, passwordFile: join(dir, 'absent') } as typeof config.transport })).toThrow(
      `makeNodeTransport: transport.passwordFile: cannot read "${join(dir, 'absent')}" (ENOENT`,
    );
  });

  it('refuses a broker whose certificate another CA signed, at once and saying why', async () => {
    const t = transport({ tls: { caFile: join(dir, 'other-ca.crt') } });
    const t0 = Date.now();
    const err = await t.connect().then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(
      new RegExp(
        `^MqttTransport\\.connect: the TLS handshake with the broker at ${url.replace(/\./g, '\\.')} failed: its certificate was not accepted \\(self[- ]signed certificate in certificate chain; SELF_SIGNED_CERT_IN_CHAIN\\): check tls\\.caFile \\(the CA that signed the broker's certificate, now ".*other-ca\\.crt"\\) and that the URL's host name is in that certificate$`,
      ),
    );
    expect(Date.now() - t0).toBeLessThan(4000); // refused, not the 4 s connect timeout
    // Without verification (a test bench only) the same CA file is not checked.
    const lax = transport({ tls: { caFile: join(dir, 'other-ca.crt'), rejectUnauthorized: false } });
    await lax.connect();
    expect(lax.stats.connected).toBe(true);
    // A CA file that is not there: named before any connection.
    await expect(transport({ tls: { caFile: join(dir, 'nope.crt') } }).connect()).rejects.toThrow(ValidationError);
    await expect(transport({ tls: { caFile: join(dir, 'nope.crt') } }).connect()).rejects.toThrow(`MqttTransport(${url}).connect: tls.caFile: cannot read "${join(dir, 'nope.crt')}" (ENOENT`);
  });

  it('refuses a wrong password or no account with the broker, the reason and no password in the message', async () => {
    const wrong = await transport({ password: 'wrong-password' }).connect().then(
      () => undefined,
      (e: Error) => e,
    );
    expect(wrong?.message).toBe(`MqttTransport.connect: the broker at ${url} refused the connection: Not authorized (CONNACK code 5): check the credentials; username "robot" with the password given`);
    expect(wrong?.message).not.toContain('wrong-password');
    const anonymous = await transport({ username: undefined, password: undefined }).connect().then(
      () => undefined,
      (e: Error) => e,
    );
    expect(anonymous?.message).toBe(
      `MqttTransport.connect: the broker at ${url} refused the connection: Not authorized (CONNACK code 5): check the credentials; no username was given (the broker may not allow anonymous clients)`,
    );
  });

  it('presents a client certificate where the listener requires one; says which side of the handshake failed', async () => {
    const withCert = transport({ url: certUrl, tls: { caFile: join(dir, 'ca.crt'), certFile: join(dir, 'client.crt'), keyFile: join(dir, 'client.key') } });
    await withCert.connect();
    expect(withCert.stats.connected).toBe(true);
    const without = await transport({ url: certUrl }).connect().then(
      () => undefined,
      (e: Error) => e,
    );
    // TLS 1.3 reports the missing certificate as an alert from the broker.
    expect(without?.message).toMatch(
      new RegExp(`^MqttTransport\\.connect: the broker at ${certUrl.replace(/\./g, '\\.')} refused this client's certificate in the TLS handshake \\(.*certificate required; ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED\\): it requires one: set tls\\.certFile and tls\\.keyFile$`),
    );
    // TLS to a listener without it.
    const plain = await transport({ url: plainTlsUrl }).connect().then(
      () => undefined,
      (e: Error) => e,
    );
    expect(plain?.message).toBe(`MqttTransport.connect: could not reach the broker at ${plainTlsUrl}: read ECONNRESET (is that port the broker's TLS listener?)`);
  });
});
