/**
 * The transport a node configuration names, built but not connected: `sim` (the simulator
 * speaking the configured topics), `mqtt`, `dds`, `ros2` (rclnodejs, loaded only then).
 */
import { readFileSync } from 'node:fs';
import type { SchedulerLike } from 'rxjs';
import { ValidationError, describe } from '../core/errors.js';
import type { BagField } from '../data/bagMapping.js';
import { DdsTransport } from '../transports/dds/ddsTransport.js';
import { MqttTransport, type MqttQos } from '../transports/mqtt.js';
import { FLOAT64_MULTI_ARRAY_TYPE, JOINT_STATE_TYPE, SimTransport, TWIST_TYPE, type TwistField } from '../transports/sim.js';
import type { Transport } from '../transports/transport.js';
import { Ros2Transport } from '../transports/ros2.js';
import { ros2TransportOptions } from './rosParams.js';
import type { NodeConfig } from './config.js';

/** Where the node publishes its `DiagnosticArray`. */
export const DIAGNOSTICS_TOPIC = '/diagnostics';
/** `diagnostic_msgs/msg/DiagnosticArray` */
export const DIAGNOSTIC_ARRAY_TYPE = 'diagnostic_msgs/msg/DiagnosticArray';

/** Options of `makeNodeTransport`. */
export interface NodeTransportOptions {
  /** `sim` only: what drives the simulator's ticks (a `LockstepScheduler` for simulated time). Default: the wall clock. */
  scheduler?: SchedulerLike;
  /** Told about the transport's own problems (lost connection, rejected actions). */
  onError?: (err: Error) => void;
  /** Looks up `transport.passwordEnv` (MQTT). Default `process.env`. */
  env?: Record<string, string | undefined>;
}

/**
 * Builds the transport of `config.transport` (not connected).
 * @throws ValidationError naming the key when the configuration does not fit the transport:
 *   a sim whose sensors or action the simulator cannot speak, an MQTT
 *   password variable that is not set or password file that cannot be read
 * @example const transport = makeNodeTransport(loadNodeConfig('launch/pendulum_sim.yaml'));
 */
export function makeNodeTransport(config: NodeConfig, options: NodeTransportOptions = {}): Transport {
  const t = config.transport;
  const where = 'makeNodeTransport';
  switch (t.kind) {
    case 'sim':
      return simTransport(config, options);
    case 'mqtt': {
      const qos = t.qos as MqttQos;
      const topics = [...config.sensors.map((s) => s.topic), config.action.topic, DIAGNOSTICS_TOPIC];
      if (config.safety.estop) topics.push(config.safety.estop.topic);
      if (config.reward.kind === 'topic') topics.push(config.reward.topic);
      const password = mqttPassword(t, options.env ?? process.env, where);
      return new MqttTransport({
        url: t.url,
        prefix: t.topicPrefix,
        clientId: t.clientId,
        topicQos: Object.fromEntries(topics.map((topic) => [topic, qos])),
        payload: t.payload,
        keepaliveSec: t.keepaliveSec,
        reconnect: t.reconnect,
        statusTopic: t.statusTopic,
        maxPayloadBytes: t.maxPayloadBytes,
        ...(t.username !== undefined ? { username: t.username } : {}),
        ...(password !== undefined ? { password } : {}),
        ...(t.tls !== undefined ? { tls: t.tls } : {}),
        ...(options.onError ? { onError: options.onError } : {}),
      });
    }
    case 'dds':
      return new DdsTransport(t.domainId !== undefined ? { domainId: t.domainId } : {}); // else ROS_DOMAIN_ID, else 0
    case 'ros2':
      return new Ros2Transport(ros2TransportOptions(config, { ...(options.onError ? { onError: options.onError } : {}) }));
    default:
      throw new ValidationError(where, 'transport.kind', `expected sim, mqtt, dds or ros2, got ${describe((t as { kind: unknown }).kind)}`);
  }
}

/**
 * The broker password of an MQTT configuration: from the environment variable `passwordEnv`, or
 * the file `passwordFile` (its content without one trailing newline); undefined without either.
 * @throws ValidationError naming the key when the variable is not set or the file cannot be read
 *   or is empty (never showing the password)
 */
function mqttPassword(t: Extract<NodeConfig['transport'], { kind: 'mqtt' }>, env: Record<string, string | undefined>, where: string): string | undefined {
  if (t.passwordEnv !== undefined) {
    const password = env[t.passwordEnv];
    if (password === undefined) throw new ValidationError(where, 'transport.passwordEnv', `the environment variable ${t.passwordEnv} is not set; expected it to hold the broker password`);
    return password;
  }
  if (t.passwordFile === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(t.passwordFile, 'utf8');
  } catch (err) {
    throw new ValidationError(where, 'transport.passwordFile', `cannot read ${JSON.stringify(t.passwordFile)} (${(err as Error).message}); expected a file holding the broker password`);
  }
  const password = text.replace(/\r?\n$/, '');
  if (password === '') throw new ValidationError(where, 'transport.passwordFile', `${JSON.stringify(t.passwordFile)} is empty; expected it to hold the broker password`);
  return password;
}

/** The simulator publishing the observation as the configured JointState and reading the configured action message. */
function simTransport(config: NodeConfig, options: NodeTransportOptions): SimTransport {
  const t = config.transport;
  if (t.kind !== 'sim') throw new Error('simTransport: not a sim config');
  const where = 'makeNodeTransport(sim)';
  if (config.sensors.length !== 1 || config.sensors[0].type !== JOINT_STATE_TYPE) {
    throw new ValidationError(where, 'sensors', `the sim transport publishes the observation on one ${JOINT_STATE_TYPE} topic (as position[]); expected one sensor of that type, got ${config.sensors.map((s) => `${s.topic} (${s.type})`).join(', ')}`);
  }
  const actionType = config.action.type;
  let twistFields: TwistField[] | undefined;
  if (actionType === TWIST_TYPE) {
    twistFields = config.action.fields.map((f) => pathText(f) as TwistField);
  } else if (actionType === FLOAT64_MULTI_ARRAY_TYPE) {
    const indices = config.action.fields.flatMap((f) => {
      const step = f.path.length === 1 && f.path[0].name === 'data' ? f.path[0] : undefined;
      if (!step) return [Number.NaN];
      const [a, b] = step.range ?? [step.index ?? Number.NaN, step.index ?? Number.NaN];
      return Array.from({ length: b - a + 1 }, (_, i) => a + i);
    });
    if (!indices.every((v, i) => v === i)) {
      throw new ValidationError(where, 'action.fields', `the simulator reads the whole data[] of ${FLOAT64_MULTI_ARRAY_TYPE} as the action; expected data[0..${config.actDim - 1}] in order, got ${config.action.fields.map(pathText).join(', ')}`);
    }
  } else {
    throw new ValidationError(where, 'action.type', `the simulator reads ${FLOAT64_MULTI_ARRAY_TYPE} or ${TWIST_TYPE} actions; got ${actionType}`);
  }
  return new SimTransport({
    env: t.env,
    makeEnvOptions: { physics: t.physics, ...(t.mjcfDir !== undefined ? { mjcfDir: t.mjcfDir } : {}) },
    sensorTopic: config.sensors[0].topic,
    actionTopic: config.action.topic,
    actionType,
    ...(twistFields ? { twistFields } : {}),
    controlPeriodMs: config.controlPeriodMs,
    seed: t.seed,
    ...(options.scheduler ? { scheduler: options.scheduler } : {}),
    ...(options.onError ? { onError: options.onError } : {}),
  });
}

/** A field's path as written after the type (`linear.x`, `data[0..1]`). */
function pathText(f: BagField): string {
  return f.path.map((s) => `${s.name}${s.range ? `[${s.range[0]}..${s.range[1]}]` : s.index !== undefined ? `[${s.index}]` : ''}`).join('.');
}
