// The node's YAML config: a full valid file parses to the expected typed config (defaults filled,
// fields parsed, relative paths resolved) and round-trips; bad files fail with messages that
// name the key path, the value and what was expected.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { parseFieldSpec } from '../../src/data/bagMapping.js';
import { NODE_CONFIG_DEFAULTS, loadNodeConfig, nodeConfigToJson, parseNodeConfig, type NodeConfig } from '../../src/node/config.js';

const dir = mkdtempSync(join(tmpdir(), 'mbrl-node-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const VALID = `
transport: { kind: mqtt, url: mqtt://localhost:1883, topicPrefix: robot1 }
controlPeriodMs: 50
sensors:
  - topic: /joint_states
    type: sensor_msgs/msg/JointState
    fields:                 # block list: [ ] inside a flow list [a, b] is not YAML
      - position[0..1]
      - sensor_msgs/msg/JointState.velocity[0]
    maxAgeMs: 100
  - topic: /imu
    type: sensor_msgs/msg/Imu
    fields: [angular_velocity.z, orientation_covariance]
action:
  topic: /cmd_vel
  type: geometry_msgs/msg/Twist
  fields: [linear.x, angular.z]
actionBounds: { low: [-0.5, -1], high: [0.5, 1] }
safety:
  safeAction: [0, 0]
  maxRatePerSec: 2
  estop: { topic: /estop }
reward: { kind: task, task: Pendulum-v1 }
controller: { kind: planner }
algorithm: { kind: pets, overrides: { planner: { kind: cem, horizon: 20 } } }
checkpointDir: runs/robot1
`;

const f = (topic: string, spec: string) => parseFieldSpec(topic, spec, 'test', 'field');

/** The valid file with `patch` applied at a dotted key (`safety.safeAction`); undefined deletes it. */
function variant(patch: Record<string, unknown>): unknown {
  const raw = parseYaml(VALID) as Record<string, unknown>;
  for (const [key, value] of Object.entries(patch)) {
    const parts = key.split('.');
    let node = raw as Record<string, unknown>;
    for (const p of parts.slice(0, -1)) node = node[p] as Record<string, unknown>;
    if (value === undefined) delete node[parts[parts.length - 1]];
    else node[parts[parts.length - 1]] = value;
  }
  return raw;
}

function errorOf(raw: unknown): ValidationError {
  try {
    parseNodeConfig(raw, 'robot.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error('expected parseNodeConfig to throw');
}

describe('parseNodeConfig', () => {
  it('parses a valid file, filling every default and parsing the fields', () => {
    const config = parseNodeConfig(parseYaml(VALID), 'robot.yaml');
    const expected: NodeConfig = {
      transport: {
        kind: 'mqtt',
        url: 'mqtt://localhost:1883',
        clientId: 'mbrl-node',
        topicPrefix: 'robot1',
        qos: 1,
        payload: 'json',
        keepaliveSec: 10,
        reconnect: { initialDelayMs: 250, maxDelayMs: 10_000, factor: 2, jitter: 0.2 },
        statusTopic: '/mbrl/status/mbrl-node',
        maxPayloadBytes: 1_048_576,
      },
      controlPeriodMs: 50,
      resample: 'latest',
      tick: { on: 'grid' },
      sensors: [
        {
          topic: '/joint_states',
          type: 'sensor_msgs/msg/JointState',
          fields: [f('/joint_states', 'sensor_msgs/msg/JointState.position[0..1]'), f('/joint_states', 'sensor_msgs/msg/JointState.velocity[0]')],
          maxAgeMs: 100,
          maxFutureMs: 1000,
          qos: 'sensorData',
        },
        {
          topic: '/imu',
          type: 'sensor_msgs/msg/Imu',
          fields: [f('/imu', 'sensor_msgs/msg/Imu.angular_velocity.z'), f('/imu', 'sensor_msgs/msg/Imu.orientation_covariance')],
          maxFutureMs: 1000,
          qos: 'sensorData',
        },
      ],
      action: { topic: '/cmd_vel', type: 'geometry_msgs/msg/Twist', fields: [f('/cmd_vel', 'geometry_msgs/msg/Twist.linear.x'), f('/cmd_vel', 'geometry_msgs/msg/Twist.angular.z')], qos: 'default' },
      actionBounds: { low: [-0.5, -1], high: [0.5, 1] },
      safety: {
        safeAction: [0, 0],
        maxRatePerSec: [2, 2], // one number: every dimension
        watchdogTimeoutMs: 250, // 5 control periods
        onControllerError: 'safeAction',
        estop: { topic: '/estop', type: 'std_msgs/msg/Bool', field: f('/estop', 'std_msgs/msg/Bool.data') },
      },
      reward: { kind: 'task', task: 'Pendulum-v1' },
      controller: { kind: 'planner', beforeFirstModel: 'random' },
      algorithm: { kind: 'pets', overrides: { planner: { kind: 'cem', horizon: 20 } } },
      learner: { ...NODE_CONFIG_DEFAULTS.learner },
      checkpointDir: 'runs/robot1',
      buffer: { capacity: 1_000_000, segmentSize: 10_000 },
      actDim: 2,
      obsDim: 13, // 2 + 1 + 1 + 9 (orientation_covariance is float64[9])
    };
    expect(config).toEqual(expected);
  });

  it('round-trips through its JSON form', () => {
    const config = parseNodeConfig(parseYaml(VALID), 'robot.yaml');
    const json = JSON.parse(JSON.stringify(nodeConfigToJson(config)));
    expect(parseNodeConfig(json, 'saved')).toEqual(config);
  });

  it('takes a sensor\'s future-stamp tolerance, or null for none, and keeps it through the JSON form', () => {
    const config = parseNodeConfig(variant({ 'sensors.0.maxFutureMs': 150, 'sensors.1.maxFutureMs': null }), 'robot.yaml');
    expect(config.sensors.map((s) => s.maxFutureMs)).toEqual([150, null]);
    expect(parseNodeConfig(JSON.parse(JSON.stringify(nodeConfigToJson(config))), 'saved')).toEqual(config);
  });

  it('takes a sample trigger for the ticks, filling its intervals from the period, and names a bad one', () => {
    const config = parseNodeConfig(variant({ tick: { on: 'sample', topic: '/joint_states' } }), 'robot.yaml');
    expect(config.tick).toEqual({ on: 'sample', topic: '/joint_states', minIntervalMs: 25, fallbackAfterMs: 250 });
    expect(parseNodeConfig(JSON.parse(JSON.stringify(nodeConfigToJson(config))), 'saved')).toEqual(config);
    expect(parseNodeConfig(variant({ tick: { on: 'sample', topic: '/joint_states', minIntervalMs: 0, fallbackAfterMs: 50 } })).tick).toEqual({ on: 'sample', topic: '/joint_states', minIntervalMs: 0, fallbackAfterMs: 50 });
    expect(errorOf(variant({ tick: { on: 'sample', topic: '/odom' } })).message).toMatch(/tick\.topic.*\/odom is not a sensor topic \(\/joint_states, /);
    expect(errorOf(variant({ tick: { on: 'sample', topic: '/joint_states', minIntervalMs: 60 } })).message).toMatch(/tick\.minIntervalMs.*60 is longer than controlPeriodMs \(50\)/);
    expect(errorOf(variant({ tick: { on: 'sample', topic: '/joint_states', fallbackAfterMs: 40 } })).message).toMatch(/tick\.fallbackAfterMs.*40 is outside \[controlPeriodMs, safety\.watchdogTimeoutMs\]/);
    expect(errorOf(variant({ tick: { on: 'event' } })).message).toMatch(/tick\.on/);
  });

  it('takes the learner thread\'s priority offset (workerNice, default 10) within the nice range', () => {
    expect(parseNodeConfig(parseYaml(VALID), 'robot.yaml').learner.workerNice).toBe(10);
    const withNice = (workerNice: number): unknown => ({ ...(parseYaml(VALID) as object), learner: { workerNice } });
    expect(parseNodeConfig(withNice(0), 'robot.yaml').learner.workerNice).toBe(0);
    expect(() => parseNodeConfig(withNice(20), 'robot.yaml')).toThrow(/learner\.workerNice/);
  });

  it('fills each transport kind\'s defaults and leaves obsDim open for a variable-length array', () => {
    const ros2 = parseNodeConfig(variant({ transport: { kind: 'ros2' } }));
    expect(ros2.transport).toEqual({ kind: 'ros2', nodeName: 'mbrl_node', namespace: '/', lifecycle: false });
    expect(parseNodeConfig(variant({ transport: { kind: 'dds', domainId: 7 } })).transport).toEqual({ kind: 'dds', domainId: 7 });
    // No domainId: left to the transport, which reads ROS_DOMAIN_ID as a ROS 2 node does.
    expect(parseNodeConfig(variant({ transport: { kind: 'dds' } })).transport).toEqual({ kind: 'dds' });
    const sim = parseNodeConfig(variant({ transport: { kind: 'sim', env: 'Pendulum-v1', physics: { massScale: 1.3 } } }));
    expect(sim.transport).toEqual({ kind: 'sim', env: 'Pendulum-v1', physics: { massScale: 1.3 }, seed: 0 });
    const whole = parseNodeConfig(variant({ 'sensors.0.fields': ['position'] }));
    expect(whole.obsDim).toBeNull();
  });

  it('names the key, the value and the expectation for a bad value', () => {
    expect(errorOf(variant({ controlPeriodMs: -5 })).message).toBe('robot.yaml: controlPeriodMs: expected a number > 0, got -5');
    expect(errorOf(variant({ 'sensors.0.maxAgeMs': 'fast' })).message).toBe('robot.yaml: sensors[0].maxAgeMs: expected a number, got "fast"');
    expect(errorOf(variant({ 'sensors.0.maxFutureMs': -1 })).message).toBe('robot.yaml: sensors[0].maxFutureMs: expected a number > 0, got -1');
    expect(errorOf(variant({ 'transport.kind': 'zenoh' })).message).toBe('robot.yaml: transport.kind: expected one of sim, mqtt, ros2, dds, got "zenoh"');
    expect(errorOf(variant({ 'transport.qos': 3 })).message).toBe('robot.yaml: transport.qos: expected an MQTT QoS: 0, 1 or 2, got 3');
    expect(errorOf(variant({ 'sensors.1.topic': 'imu' })).message).toBe('robot.yaml: sensors[1].topic: expected an absolute ROS 2 topic name such as /joint_states, got "imu"');
    expect(errorOf(variant({ 'safety.onControllerError': 'ignore' })).message).toBe('robot.yaml: safety.onControllerError: expected one of safeAction, holdLast, stop, got "ignore"');
  });

  it('names a missing key and an unknown one, listing the keys allowed there', () => {
    const missing = errorOf(variant({ checkpointDir: undefined }));
    expect(missing.field).toBe('checkpointDir');
    expect(missing.message).toBe('robot.yaml: checkpointDir: required: expected a string');
    expect(errorOf(variant({ 'safety.watchdogMs': 100 })).message).toBe(
      'robot.yaml: safety.watchdogMs: unknown key; expected one of safeAction, maxRatePerSec, watchdogTimeoutMs, estop, onControllerError',
    );
    expect(errorOf(variant({ 'controller.model': 'p.onnx' })).message).toBe('robot.yaml: controller.model: unknown key; expected one of kind, checkpoint, beforeFirstModel');
  });

  it('checks field paths against the message definitions', () => {
    expect(errorOf(variant({ 'action.fields': ['linear.w', 'angular.z'] })).message).toBe(
      'robot.yaml: action.fields[0]: "linear.w": no field "w" in geometry_msgs/Vector3 (at linear); fields: x, y, z',
    );
    expect(errorOf(variant({ 'sensors.0.fields': ['name[0]'] })).message).toBe('robot.yaml: sensors[0].fields[0]: "name[0]" holds string values; expected a numeric field');
    expect(errorOf(variant({ 'sensors.0.fields': ['sensor_msgs/msg/Imu.angular_velocity.x'] })).message).toBe(
      'robot.yaml: sensors[0].fields[0]: "sensor_msgs/msg/Imu.angular_velocity.x" names the type sensor_msgs/msg/Imu, but the topic\'s type is sensor_msgs/msg/JointState; expected sensor_msgs/msg/JointState.<path> or the path alone',
    );
    expect(errorOf(variant({ 'sensors.0.fields': ['position[3..1]'] })).message).toBe('robot.yaml: sensors[0].fields[0]: range [3..1] is empty (inclusive; the end must be ≥ the start)');
    expect(errorOf(variant({ action: { topic: '/cmd', type: 'std_msgs/msg/Float64MultiArray', fields: ['data'] } })).message).toContain(
      'action.fields[0]: "data" is a whole array; name the entries the action fills, e.g. data[0..1]',
    );
  });

  it('checks lengths and ranges across keys', () => {
    expect(errorOf(variant({ 'actionBounds.low': [-1] })).message).toBe(
      'robot.yaml: actionBounds.low: expected 2 values (one per action dimension: geometry_msgs/msg/Twist.linear.x, geometry_msgs/msg/Twist.angular.z), got 1',
    );
    expect(errorOf(variant({ 'safety.safeAction': [0, 2] })).message).toBe('robot.yaml: safety.safeAction[1]: 2 is outside the bounds [-1, 1]; the safe action must be a valid action');
    expect(errorOf(variant({ 'safety.watchdogTimeoutMs': 20 })).message).toBe(
      'robot.yaml: safety.watchdogTimeoutMs: 20 is shorter than controlPeriodMs (50); expected at least one control period, or the watchdog would trip between ticks',
    );
    expect(errorOf(variant({ 'algorithm.kind': 'me-trpo' })).message).toBe(
      'robot.yaml: controller.kind: planner plans with the PETS ensemble; expected algorithm.kind pets, got me-trpo (use learnedPolicy for me-trpo)',
    );
    expect(errorOf(variant({ 'reward.task': 'Pendulum' })).message).toMatch(/^robot\.yaml: reward\.task: expected a built-in task \(Pendulum-v1, .*\), got "Pendulum"$/);
    expect(errorOf(variant({ buffer: { capacity: 100, segmentSize: 1000 } })).message).toBe('robot.yaml: buffer.segmentSize: 1000 is larger than buffer.capacity (100); expected at most the capacity');
  });

  it('reports every problem, the first as the field', () => {
    const err = errorOf(variant({ controlPeriodMs: 0, 'buffer': { capacity: 1.5 } }));
    expect(err.field).toBe('controlPeriodMs');
    expect(err.message).toBe('robot.yaml: controlPeriodMs: expected a number > 0, got 0; and 1 more: buffer.capacity: expected an integer, got 1.5');
  });
});

describe('the mqtt transport section', () => {
  const mqttVariant = (transport: Record<string, unknown>) => variant({ transport: { kind: 'mqtt', url: 'mqtts://broker:8883', ...transport } });

  it('takes payload, keepalive, backoff, status topic, credentials by reference and TLS files', () => {
    const t = parseNodeConfig(
      mqttVariant({
        clientId: 'arm_2',
        payload: 'binary',
        keepaliveSec: 5,
        reconnect: { initialDelayMs: 100, maxDelayMs: 2000 },
        username: 'robot',
        passwordFile: 'secrets/mqtt_password',
        tls: { caFile: 'certs/ca.pem' },
      }),
    ).transport;
    expect(t).toEqual({
      kind: 'mqtt',
      url: 'mqtts://broker:8883',
      clientId: 'arm_2',
      topicPrefix: '',
      qos: 1,
      payload: 'binary',
      keepaliveSec: 5,
      reconnect: { initialDelayMs: 100, maxDelayMs: 2000, factor: 2, jitter: 0.2 },
      statusTopic: '/mbrl/status/arm_2',
      username: 'robot',
      passwordFile: 'secrets/mqtt_password',
      tls: { caFile: 'certs/ca.pem', rejectUnauthorized: true },
      maxPayloadBytes: 1_048_576,
    });
    expect(parseNodeConfig(mqttVariant({ maxPayloadBytes: 65_536 })).transport).toMatchObject({ maxPayloadBytes: 65_536 });
    expect(parseNodeConfig(mqttVariant({ statusTopic: null })).transport).toMatchObject({ statusTopic: null });
    expect(parseNodeConfig(mqttVariant({ statusTopic: '/fleet/arm-2/status' })).transport).toMatchObject({ statusTopic: '/fleet/arm-2/status' });
    const config = parseNodeConfig(mqttVariant({ username: 'u', passwordEnv: 'MQTT_PASSWORD', tls: { rejectUnauthorized: false } }));
    expect(parseNodeConfig(JSON.parse(JSON.stringify(nodeConfigToJson(config))), 'saved')).toEqual(config);
  });

  it('refuses a password written in the file without repeating it, and names the key for every other mistake', () => {
    const pw = errorOf(mqttVariant({ username: 'robot', password: 'hunter2' }));
    expect(pw.message).toBe(
      'robot.yaml: transport.password: a password is never written in the config file (it would sit in plain text here, in saved runs and in logs); expected transport.passwordEnv (an environment variable holding it) or transport.passwordFile (a file holding it)',
    );
    expect(pw.message).not.toContain('hunter2');
    expect(errorOf(mqttVariant({ username: 'u', passwordEnv: 'P', passwordFile: 'p.txt' })).message).toBe('robot.yaml: transport.passwordFile: the password comes from passwordEnv (P) already; expected one of passwordEnv or passwordFile');
    expect(errorOf(mqttVariant({ passwordEnv: 'P' })).message).toBe('robot.yaml: transport.username: required with passwordEnv or passwordFile: MQTT sends a password only with a user name');
    expect(errorOf(mqttVariant({ url: 'mqtt://broker:1883', tls: { caFile: 'ca.pem' } })).message).toBe(
      'robot.yaml: transport.tls: TLS settings need an mqtts:// or wss:// url; expected transport.url such as mqtts://broker:8883, got "mqtt://broker:1883"',
    );
    expect(errorOf(mqttVariant({ tls: { certFile: 'c.pem' } })).message).toBe('robot.yaml: transport.tls.keyFile: a client certificate needs both tls.certFile and tls.keyFile');
    expect(errorOf(mqttVariant({ tls: { ca: 'ca.pem' } })).message).toBe('robot.yaml: transport.tls.ca: unknown key; expected one of caFile, certFile, keyFile, rejectUnauthorized');
    expect(errorOf(mqttVariant({ tls: { rejectUnauthorized: 'no' } })).message).toBe('robot.yaml: transport.tls.rejectUnauthorized: expected true or false, got "no"');
    expect(errorOf(mqttVariant({ payload: 'cbor' })).message).toBe('robot.yaml: transport.payload: expected one of json, binary, got "cbor"');
    expect(errorOf(mqttVariant({ keepaliveSec: -1 })).message).toBe('robot.yaml: transport.keepaliveSec: expected a number ≥ 0, got -1');
    const bytes = "expected a whole number of bytes, 64 … 268435455 (MQTT's largest payload; 1048576 is 1 MiB)";
    expect(errorOf(mqttVariant({ maxPayloadBytes: 0 })).message).toBe(`robot.yaml: transport.maxPayloadBytes: ${bytes}, got 0`);
    expect(errorOf(mqttVariant({ maxPayloadBytes: 1.5e9 })).message).toBe(`robot.yaml: transport.maxPayloadBytes: ${bytes}, got 1500000000`);
    expect(errorOf(mqttVariant({ maxPayloadBytes: 1024.5 })).message).toBe(`robot.yaml: transport.maxPayloadBytes: ${bytes}, got 1024.5`);
    expect(errorOf(mqttVariant({ maxPayloadBytes: '1MiB' })).message).toBe('robot.yaml: transport.maxPayloadBytes: expected a number, got "1MiB"');
    expect(errorOf(mqttVariant({ reconnect: { factor: 0.5 } })).message).toBe('robot.yaml: transport.reconnect.factor: expected a number ≥ 1, got 0.5');
    expect(errorOf(mqttVariant({ reconnect: { initialDelayMs: 5000, maxDelayMs: 1000 } })).message).toBe(
      'robot.yaml: transport.reconnect.maxDelayMs: 1000 is below reconnect.initialDelayMs (5000); expected the longest wait ≥ the first',
    );
    expect(errorOf(mqttVariant({ statusTopic: 'status' })).message).toBe(
      'robot.yaml: transport.statusTopic: expected a topic such as /mbrl/status/robot1 (levels after /, no MQTT wildcards # +), or null for none, got "status"',
    );
    expect(errorOf(mqttVariant({ clientId: 'arm+1' })).message).toBe(
      'robot.yaml: transport.clientId: "arm+1" cannot name the default status topic /mbrl/status/<clientId>; expected a client id without # + or empty /-levels, or transport.statusTopic set (null for none)',
    );
  });

  it('resolves the password and TLS files against the config file (loadNodeConfig)', () => {
    const file = join(dir, 'mqtt.yaml');
    writeFileSync(
      file,
      VALID.replace(
        'transport: { kind: mqtt, url: mqtt://localhost:1883, topicPrefix: robot1 }',
        'transport: { kind: mqtt, url: "mqtts://localhost:8883", username: robot, passwordFile: secrets/pw, tls: { caFile: certs/ca.pem, certFile: /etc/c.pem, keyFile: certs/k.pem } }',
      ),
    );
    expect(loadNodeConfig(file).transport).toMatchObject({ passwordFile: join(dir, 'secrets/pw'), tls: { caFile: join(dir, 'certs/ca.pem'), certFile: '/etc/c.pem', keyFile: join(dir, 'certs/k.pem') } });
  });
});

describe('loadNodeConfig', () => {
  it('reads a file and resolves relative paths against its directory', () => {
    const file = join(dir, 'robot.yaml');
    writeFileSync(file, VALID.replace('controller: { kind: planner }', 'controller: { kind: onnx, model: policies/p.onnx }'));
    const config = loadNodeConfig(file);
    expect(config.checkpointDir).toBe(join(dir, 'runs/robot1'));
    expect(config.controller).toEqual({ kind: 'onnx', model: join(dir, 'policies/p.onnx') });
  });

  it('names the file for unreadable files and bad YAML', () => {
    expect(() => loadNodeConfig(join(dir, 'absent.yaml'))).toThrow(`${join(dir, 'absent.yaml')}: file: cannot read the node config (ENOENT`);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'controlPeriodMs: [50\n');
    expect(() => loadNodeConfig(bad)).toThrow(`${bad}: yaml: not valid YAML (`);
  });
});
