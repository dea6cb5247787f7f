/**
 * ROS 2 messages ↔ the bytes rmw_cyclonedds puts on the wire, and the DDS names it uses, so
 * that `DdsTransport` speaks to ROS 2 nodes without a ROS install.
 *
 * - **Payload.** XCDR1 (plain CDR), little-endian, after the 4-byte encapsulation header
 *   `00 01 00 00` (CDR_LE, options 0); primitives aligned to their size counted from the end of
 *   that header; strings as uint32 length (NUL included) + bytes + NUL; sequences as uint32 count
 *   + elements; fixed arrays (`float64[9]`) as bare elements. Encoded and decoded by
 *   `@foxglove/rosmsg2-serialization` from the definitions in `@foxglove/rosmsg-msgs-common`
 *   (ROS 2 Humble's; Jazzy's are identical for the types the node uses, see the tests).
 * - **Type names.** `sensor_msgs/msg/JointState` → DDS type `sensor_msgs::msg::dds_::JointState_`.
 * - **Topic names.** ROS topic `/joint_states` → DDS topic `rt/joint_states`; relative names
 *   resolve against a namespace (`cmd_vel` in `/robot1` → `rt/robot1/cmd_vel`).
 *
 * Messages are checked against their definition before encoding (CDR itself would write a
 * missing or mistyped field as 0 or NaN, which a robot would then act on). Decoded numeric arrays
 * are plain arrays, as in `messages.ts` (`uint8`/`int8` arrays stay typed arrays, bytes); times
 * are `{ sec, nanosec }`; 64-bit integers are `bigint`.
 *
 * Every type of the common ROS 2 packages in `@foxglove/rosmsg-msgs-common` works; the node's own
 * ones are listed in `DDS_NODE_TYPES`.
 */
import { ros2humble } from '@foxglove/rosmsg-msgs-common';
import { MessageReader, MessageWriter } from '@foxglove/rosmsg2-serialization';
import { ValidationError, describe } from '../../core/errors.js';

type MessageDefinition = ConstructorParameters<typeof MessageWriter>[0][number];
type FieldDefinition = MessageDefinition['definitions'][number];

/** The message types the control node exchanges (all covered by the codec tests). */
export const DDS_NODE_TYPES = [
  'sensor_msgs/msg/JointState',
  'sensor_msgs/msg/Imu',
  'nav_msgs/msg/Odometry',
  'geometry_msgs/msg/Twist',
  'geometry_msgs/msg/TwistStamped',
  'std_msgs/msg/Float64MultiArray',
  'std_msgs/msg/Float64',
  'std_msgs/msg/Bool',
  'trajectory_msgs/msg/JointTrajectory',
  'diagnostic_msgs/msg/DiagnosticArray',
] as const;

/** Encoder and decoder of one ROS 2 message type. */
export interface RosCodec<T = unknown> {
  /** `package/msg/Type`. */
  readonly type: string;
  /** The DDS type name rmw_cyclonedds registers, e.g. `geometry_msgs::msg::dds_::Twist_`. */
  readonly ddsTypeName: string;
  /**
   * The CDR bytes of `message`, encapsulation header included.
   * @param where names the caller in errors. Default `rosCodec(<type>).encode`.
   * @throws ValidationError naming the first field that is missing or of the wrong kind
   */
  encode(message: T, where?: string): Uint8Array;
  /**
   * The message in `bytes` (encapsulation header included; trailing padding ignored).
   * @throws Error when the bytes end before the message does
   */
  decode(bytes: Uint8Array): T;
}

const DEFINITIONS = ros2humble as unknown as Readonly<Record<string, MessageDefinition>>;
const TYPE_RE = /^([A-Za-z][A-Za-z0-9_]*)\/(?:msg\/)?([A-Za-z][A-Za-z0-9_]*)$/;
const TOKEN_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * `package/msg/Type` for a ROS 2 message type written `package/msg/Type` or `package/Type`.
 * @throws ValidationError for anything else
 */
export function canonicalRosType(type: string): string {
  const m = typeof type === 'string' ? TYPE_RE.exec(type) : null;
  if (m === null) throw new ValidationError('canonicalRosType', 'type', `expected a ROS 2 message type such as "geometry_msgs/msg/Twist", got ${describe(type)}`);
  return `${m[1]}/msg/${m[2]}`;
}

/**
 * The DDS type name of a ROS 2 message type, as rmw_cyclonedds (and every DDS-based rmw) writes it.
 * @example ddsTypeName('sensor_msgs/msg/JointState') // 'sensor_msgs::msg::dds_::JointState_'
 */
export function ddsTypeName(type: string): string {
  const [pkg, , name] = canonicalRosType(type).split('/');
  return `${pkg}::msg::dds_::${name}_`;
}

/**
 * The fully qualified ROS 2 name of `topic`: relative names resolve against `namespace`.
 * Private (`~`) and substituted (`{node}`) names are not supported: the transport is no ROS node.
 * @param namespace default `/`
 * @throws ValidationError naming the rule the name breaks
 * @example resolveRosTopic('cmd_vel', '/robot1') // '/robot1/cmd_vel'
 */
export function resolveRosTopic(topic: string, namespace = '/'): string {
  const where = 'resolveRosTopic';
  const check = (field: string, name: string, what: string): void => {
    if (name === '/') return;
    const tokens = name.replace(/^\//, '').split('/');
    if (name.endsWith('/') || tokens.some((t) => !TOKEN_RE.test(t))) {
      throw new ValidationError(where, field, `expected a ROS 2 ${what}: tokens of letters, digits and '_' (not starting with a digit) separated by single '/', no trailing '/', got ${JSON.stringify(name)}`);
    }
  };
  if (typeof topic !== 'string' || topic === '' || topic === '/') throw new ValidationError(where, 'topic', `expected a ROS 2 topic name such as "/joint_states", got ${describe(topic)}`);
  if (typeof namespace !== 'string' || !namespace.startsWith('/')) throw new ValidationError(where, 'namespace', `expected an absolute namespace such as "/" or "/robot1", got ${describe(namespace)}`);
  check('namespace', namespace, 'namespace');
  check('topic', topic, 'topic name');
  if (topic.startsWith('/')) return topic;
  return namespace === '/' ? `/${topic}` : `${namespace}/${topic}`;
}

/**
 * The DDS topic of a ROS 2 topic: `rt` + its fully qualified name.
 * @param namespace that relative names resolve against; default `/`
 * @example ddsTopicName('/joint_states') // 'rt/joint_states'
 */
export function ddsTopicName(topic: string, namespace = '/'): string {
  return `rt${resolveRosTopic(topic, namespace)}`;
}

const codecs = new Map<string, RosCodec>();

/**
 * The codec of `type` (cached).
 * @param type `package/msg/Type` (or `package/Type`) of a common ROS 2 package
 * @throws ValidationError when the type is unknown
 * @example
 * const twist = rosCodec('geometry_msgs/msg/Twist');
 * const bytes = twist.encode({ linear: { x: 0.2, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0.5 } }); // 52 bytes
 * twist.decode(bytes); // the same Twist
 */
export function rosCodec<T = unknown>(type: string): RosCodec<T> {
  const canonical = canonicalRosType(type);
  let codec = codecs.get(canonical);
  if (codec === undefined) {
    codec = makeCodec(canonical);
    codecs.set(canonical, codec);
  }
  return codec as RosCodec<T>;
}

function makeCodec(type: string): RosCodec {
  const root = type.replace('/msg/', '/');
  const byName = new Map<string, MessageDefinition>();
  const collect = (name: string, from: string): void => {
    if (byName.has(name)) return;
    const def = Object.prototype.hasOwnProperty.call(DEFINITIONS, name) ? DEFINITIONS[name] : undefined;
    if (def === undefined) {
      throw new ValidationError('rosCodec', 'type', `${from} is not a message of the common ROS 2 packages that @foxglove/rosmsg-msgs-common defines (e.g. ${DDS_NODE_TYPES.slice(0, 3).join(', ')})`);
    }
    byName.set(name, def);
    for (const f of def.definitions) if (f.isComplex === true && f.isConstant !== true) collect(f.type, `${f.type} (field ${f.name} of ${name})`);
  };
  collect(root, JSON.stringify(type));
  // The writer and reader take the root definition first, then the ones it refers to.
  const defs = [...byName.values()];
  const writer = new MessageWriter(defs);
  const reader = new MessageReader(defs);
  const ddsName = ddsTypeName(type);
  return {
    type,
    ddsTypeName: ddsName,
    encode(message: unknown, where = `rosCodec(${type}).encode`): Uint8Array {
      checkMessage(message, root, byName, where, '');
      return writer.writeMessage(message);
    },
    decode(bytes: Uint8Array): unknown {
      return plainArrays(reader.readMessage(bytes), root, byName);
    },
  };
}

const INT_RANGES: Readonly<Record<string, readonly [number, number]>> = {
  int8: [-128, 127],
  uint8: [0, 255],
  byte: [0, 255],
  char: [0, 255],
  int16: [-32768, 32767],
  uint16: [0, 65535],
  int32: [-2147483648, 2147483647],
  uint32: [0, 4294967295],
};
const INT64_RANGES: Readonly<Record<string, readonly [bigint, bigint]>> = {
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
};
const BYTE_TYPES = new Set(['int8', 'uint8', 'byte', 'char']);

/** Throws a ValidationError at the first value of `message` that does not fit the definition of `typeName`. */
function checkMessage(message: unknown, typeName: string, byName: ReadonlyMap<string, MessageDefinition>, where: string, path: string): void {
  if (message === null || typeof message !== 'object' || Array.isArray(message)) {
    throw new ValidationError(where, path === '' ? 'message' : path, `expected a ${typeName} object, got ${describe(message)}`);
  }
  const record = message as Record<string, unknown>;
  for (const field of byName.get(typeName)!.definitions) {
    if (field.isConstant === true) continue;
    const fieldPath = path === '' ? field.name : `${path}.${field.name}`;
    const value = record[field.name];
    if (value === undefined) throw new ValidationError(where, fieldPath, `missing (expected ${describeField(field)} of ${typeName})`);
    if (field.isArray === true) checkArray(value, field, byName, where, fieldPath);
    else checkElement(value, field, byName, where, fieldPath);
  }
}

function checkArray(value: unknown, field: FieldDefinition, byName: ReadonlyMap<string, MessageDefinition>, where: string, path: string): void {
  const isTyped = ArrayBuffer.isView(value) && !(value instanceof DataView);
  if (!Array.isArray(value) && !(isTyped && field.isComplex !== true)) throw new ValidationError(where, path, `expected ${describeField(field)}, got ${describe(value)}`);
  const items = value as ArrayLike<unknown>;
  if (field.arrayLength !== undefined && items.length !== field.arrayLength) {
    throw new ValidationError(where, path, `expected exactly ${field.arrayLength} elements (${describeField(field)}), got ${items.length}`);
  }
  // A typed array holds numbers only, so it fits a float field as it is; integers still need their range checked.
  if (isTyped && (field.type === 'float64' || field.type === 'float32')) return;
  for (let i = 0; i < items.length; i++) checkElement(items[i], field, byName, where, `${path}[${i}]`);
}

function checkElement(value: unknown, field: FieldDefinition, byName: ReadonlyMap<string, MessageDefinition>, where: string, path: string): void {
  const t = field.type;
  if (field.isComplex === true) return checkMessage(value, t, byName, where, path);
  const fail = (expected: string): never => {
    throw new ValidationError(where, path, `expected ${expected}, got ${describe(value)}`);
  };
  if (t === 'float64' || t === 'float32') {
    if (typeof value !== 'number') fail(`a number (${t})`);
  } else if (t === 'bool') {
    if (typeof value !== 'boolean') fail('a boolean (bool)');
  } else if (t === 'string' || t === 'wstring') {
    if (typeof value !== 'string') fail(`a string (${t})`);
  } else if (t in INT_RANGES) {
    const [lo, hi] = INT_RANGES[t];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < lo || value > hi) fail(`an integer in [${lo}, ${hi}] (${t})`);
  } else if (t in INT64_RANGES) {
    const [lo, hi] = INT64_RANGES[t];
    const ok = (typeof value === 'bigint' && value >= lo && value <= hi) || (typeof value === 'number' && Number.isSafeInteger(value) && BigInt(value) >= lo);
    if (!ok) fail(`a bigint (or safe integer) in [${lo}, ${hi}] (${t})`);
  } else if (t === 'time' || t === 'duration') {
    const v = value as { sec?: unknown; nanosec?: unknown } | null;
    if (v === null || typeof v !== 'object') fail(`{ sec, nanosec } (builtin_interfaces/${t === 'time' ? 'Time' : 'Duration'})`);
    checkElement(v!.sec, { name: 'sec', type: 'int32' }, byName, where, `${path}.sec`);
    checkElement(v!.nanosec, { name: 'nanosec', type: 'uint32' }, byName, where, `${path}.nanosec`);
  } else {
    fail(`a value of the unsupported primitive type ${t}`);
  }
}

function describeField(field: FieldDefinition): string {
  const t = field.type === 'time' ? 'builtin_interfaces/Time' : field.type === 'duration' ? 'builtin_interfaces/Duration' : field.type;
  if (field.isArray !== true) return field.isComplex === true ? `a ${t} object` : `a ${t}`;
  return field.arrayLength !== undefined ? `an array of ${field.arrayLength} ${t}` : `an array of ${t}`;
}

/** Replaces the reader's typed arrays (views into its input) with plain arrays, except bytes. */
function plainArrays(message: unknown, typeName: string, byName: ReadonlyMap<string, MessageDefinition>): unknown {
  const record = message as Record<string, unknown>;
  for (const field of byName.get(typeName)!.definitions) {
    if (field.isConstant === true) continue;
    const value = record[field.name];
    if (field.isComplex === true) {
      if (field.isArray === true) for (const item of value as unknown[]) plainArrays(item, field.type, byName);
      else plainArrays(value, field.type, byName);
    } else if (field.isArray === true && ArrayBuffer.isView(value)) {
      const typed = value as unknown as ArrayLike<number | bigint> & { slice(): unknown };
      record[field.name] = BYTE_TYPES.has(field.type) ? typed.slice() : Array.from(typed);
    }
  }
  return message;
}
