// The dds backend's codec: ROS 2 messages ↔ the CDR bytes rmw_cyclonedds sends, and the DDS names.
// Byte layouts below are written out by hand from the XCDR1 rules (see rosCodec.ts), not computed.
import { ros2humble, ros2jazzy } from '@foxglove/rosmsg-msgs-common';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { DDS_NODE_TYPES, canonicalRosType, ddsTopicName, ddsTypeName, resolveRosTopic, rosCodec } from '../../src/transports/dds/rosCodec.js';
import type { JointState, Twist } from '../../src/transports/messages.js';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const header = (sec: number, nanosec: number, frame_id: string) => ({ stamp: { sec, nanosec }, frame_id });
const cov = (n: number, scale: number) => Array.from({ length: n }, (_, i) => (i % 7 === 0 ? scale * (i + 1) : 0));

/** One message of each type the node uses, with non-default values everywhere. */
const SAMPLES: Record<(typeof DDS_NODE_TYPES)[number], unknown> = {
  'sensor_msgs/msg/JointState': { header: header(12, 345, 'base'), name: ['hip', 'knee'], position: [0.5, -1.25], velocity: [], effort: [3e-9, 7] },
  'sensor_msgs/msg/Imu': {
    header: header(1, 2, 'imu_link'),
    orientation: { x: 0, y: 0, z: 0.7071067811865476, w: 0.7071067811865476 },
    orientation_covariance: cov(9, 0.01),
    angular_velocity: { x: 0.1, y: -0.2, z: 0.3 },
    angular_velocity_covariance: cov(9, -1),
    linear_acceleration: { x: 0, y: 0, z: 9.81 },
    linear_acceleration_covariance: cov(9, 0.5),
  },
  'nav_msgs/msg/Odometry': {
    header: header(100, 999_999_999, 'odom'),
    child_frame_id: 'base_footprint',
    pose: { pose: { position: { x: 1, y: -2, z: 0 }, orientation: { x: 0, y: 0, z: 0, w: 1 } }, covariance: cov(36, 0.001) },
    twist: { twist: { linear: { x: 0.3, y: 0, z: 0 }, angular: { x: 0, y: 0, z: -0.4 } }, covariance: cov(36, 2) },
  },
  'geometry_msgs/msg/Twist': { linear: { x: 0.2, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0.5 } },
  'geometry_msgs/msg/TwistStamped': { header: header(-1, 0, ''), twist: { linear: { x: -0.1, y: 0.1, z: 0 }, angular: { x: 1, y: 2, z: 3 } } },
  'std_msgs/msg/Float64MultiArray': { layout: { dim: [{ label: 'rows', size: 2, stride: 4 }, { label: 'cols', size: 2, stride: 2 }], data_offset: 1 }, data: [1, 2, 3, 4.5] },
  'std_msgs/msg/Float64': { data: -273.15 },
  'std_msgs/msg/Bool': { data: true },
  'trajectory_msgs/msg/JointTrajectory': {
    header: header(5, 6, 'world'),
    joint_names: ['a', 'bb', 'ccc'],
    points: [
      { positions: [0, 1, 2], velocities: [], accelerations: [], effort: [], time_from_start: { sec: 0, nanosec: 500_000_000 } },
      { positions: [3, 4, 5], velocities: [0.1, 0.2, 0.3], accelerations: [], effort: [1, 1, 1], time_from_start: { sec: 1, nanosec: 0 } },
    ],
  },
  'diagnostic_msgs/msg/DiagnosticArray': {
    header: header(7, 8, ''),
    status: [
      { level: 0, name: 'motors', message: 'ok', hardware_id: 'm0', values: [{ key: 'temp', value: '41.5' }] },
      { level: 2, name: 'battery', message: 'low', hardware_id: '', values: [] },
    ],
  },
};

describe('rosCodec', () => {
  it('writes a Twist as the 4-byte CDR_LE header and six little-endian float64 (52 bytes)', () => {
    const twist: Twist = { linear: { x: 1.5, y: -0.5, z: 0.25 }, angular: { x: 0.1, y: -2, z: 3 } };
    const bytes = rosCodec<Twist>('geometry_msgs/msg/Twist').encode(twist);
    expect(hex(bytes)).toBe(
      [
        '00010000', // encapsulation: CDR_LE, options 0
        '000000000000f83f', // linear.x   1.5  = 0x3FF8000000000000
        '000000000000e0bf', // linear.y  -0.5  = 0xBFE0000000000000
        '000000000000d03f', // linear.z   0.25 = 0x3FD0000000000000
        '9a9999999999b93f', // angular.x  0.1  = 0x3FB999999999999A
        '00000000000000c0', // angular.y -2    = 0xC000000000000000
        '0000000000000840', // angular.z  3    = 0x4008000000000000
      ].join(''),
    );
    expect(bytes.byteLength).toBe(4 + 48);
    expect(rosCodec('geometry_msgs/msg/Twist').decode(bytes)).toEqual(twist);
  });

  it('writes a JointState with strings, sequences and alignment padding where XCDR1 puts them', () => {
    const js: JointState = { header: header(1, 2, 'a'), name: ['j0'], position: [1.5], velocity: [], effort: [-2] };
    const bytes = rosCodec<JointState>('sensor_msgs/msg/JointState').encode(js);
    // Offsets count from the end of the encapsulation header.
    expect(hex(bytes)).toBe(
      [
        '00010000', //              encapsulation
        '01000000', //  0 int32    header.stamp.sec = 1
        '02000000', //  4 uint32   header.stamp.nanosec = 2
        '02000000', //  8 uint32   header.frame_id length, NUL included
        '6100', //     12          'a' NUL
        '0000', //     14          padding to 4 for the next uint32
        '01000000', // 16 uint32   name: 1 string
        '03000000', // 20 uint32   length of "j0" + NUL
        '6a3000', //   24          'j' '0' NUL
        '00', //       27          padding to 4
        '01000000', // 28 uint32   position: 1 float64 (already 8-aligned at 32)
        '000000000000f83f', // 32  1.5
        '00000000', // 40 uint32   velocity: 0 float64 (no padding for an empty sequence)
        '01000000', // 44 uint32   effort: 1 float64 (already 8-aligned at 48)
        '00000000000000c0', // 48  -2
      ].join(''),
    );
    expect(rosCodec('sensor_msgs/msg/JointState').decode(bytes)).toEqual(js);
  });

  it('writes Float64 and Bool as bare primitives after the header', () => {
    expect(hex(rosCodec('std_msgs/msg/Float64').encode({ data: 1.5 }))).toBe('00010000' + '000000000000f83f');
    expect(hex(rosCodec('std_msgs/msg/Bool').encode({ data: true }))).toBe('00010000' + '01');
    expect(hex(rosCodec('std_msgs/msg/Bool').encode({ data: false }))).toBe('00010000' + '00');
  });

  it.each(DDS_NODE_TYPES)('round-trips %s byte for byte, decoding to plain arrays', (type) => {
    const codec = rosCodec(type);
    const bytes = codec.encode(SAMPLES[type]);
    expect(hex(bytes.subarray(0, 4))).toBe('00010000');
    const decoded = codec.decode(bytes);
    expect(decoded).toEqual(SAMPLES[type]);
    expect(hex(codec.encode(decoded))).toBe(hex(bytes));
    // Plain arrays, as messages.ts declares (the reader alone would give Float64Array views).
    const arrays: unknown[] = [];
    JSON.stringify(decoded, (_k, v: unknown) => (ArrayBuffer.isView(v) ? arrays.push(v) : v));
    expect(arrays).toEqual([]);
    // Padding a receiver finds after the message (payloads travel in multiples of 4 bytes) is ignored.
    const padded = new Uint8Array(bytes.byteLength + 3);
    padded.set(bytes);
    expect(codec.decode(padded)).toEqual(SAMPLES[type]);
  });

  it('accepts typed arrays for float arrays and `package/Type` spellings', () => {
    const codec = rosCodec('std_msgs/Float64MultiArray');
    expect(codec.type).toBe('std_msgs/msg/Float64MultiArray');
    const fromTyped = codec.encode({ layout: { dim: [], data_offset: 0 }, data: new Float64Array([1, 2]) });
    expect(hex(fromTyped)).toBe(hex(codec.encode({ layout: { dim: [], data_offset: 0 }, data: [1, 2] })));
  });

  it('rejects a message that does not fit its definition, naming the field and what was expected', () => {
    const twist = rosCodec('geometry_msgs/msg/Twist');
    const err = (fn: () => unknown): ValidationError => {
      try {
        fn();
      } catch (e) {
        return e as ValidationError;
      }
      throw new Error('expected a throw');
    };
    const e1 = err(() => twist.encode({ linear: { x: 1, y: 0 }, angular: { x: 0, y: 0, z: 0 } }, 'publish(/cmd_vel)'));
    expect(e1).toBeInstanceOf(ValidationError);
    expect(e1.message).toBe('publish(/cmd_vel): linear.z: missing (expected a float64 of geometry_msgs/Vector3)');
    expect(err(() => twist.encode({ linear: { x: '1', y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0 } })).message).toBe(
      'rosCodec(geometry_msgs/msg/Twist).encode: linear.x: expected a number (float64), got "1"',
    );
    expect(err(() => twist.encode(null)).message).toContain('message: expected a geometry_msgs/Twist object, got null');
    const imu = { ...(SAMPLES['sensor_msgs/msg/Imu'] as object), orientation_covariance: cov(8, 1) };
    expect(err(() => rosCodec('sensor_msgs/msg/Imu').encode(imu)).message).toContain('orientation_covariance: expected exactly 9 elements (an array of 9 float64), got 8');
    const diag = { header: header(0, 0, ''), status: [{ level: 300, name: 'x', message: '', hardware_id: '', values: [] }] };
    expect(err(() => rosCodec('diagnostic_msgs/msg/DiagnosticArray').encode(diag)).message).toContain('status[0].level: expected an integer in [0, 255] (uint8), got 300');
    const js = { header: { stamp: { sec: 1.5, nanosec: 0 }, frame_id: '' }, name: [], position: [], velocity: [], effort: [] };
    expect(err(() => rosCodec('sensor_msgs/msg/JointState').encode(js)).message).toContain('header.stamp.sec: expected an integer in [-2147483648, 2147483647] (int32), got 1.5');
    expect(err(() => rosCodec('std_msgs/msg/Bool').encode({ data: 1 })).message).toContain('data: expected a boolean (bool), got 1');
    expect(err(() => rosCodec('sensor_msgs/msg/JointState').encode({ ...js, header: header(0, 0, ''), name: [1] })).message).toContain('name[0]: expected a string (string), got 1');
  });

  it('throws when the bytes end before the message does', () => {
    const bytes = rosCodec('sensor_msgs/msg/JointState').encode(SAMPLES['sensor_msgs/msg/JointState'] as JointState);
    expect(() => rosCodec('sensor_msgs/msg/JointState').decode(bytes.subarray(0, 30))).toThrow();
    expect(() => rosCodec('geometry_msgs/msg/Twist').decode(bytes.subarray(0, 20))).toThrow();
  });

  it('refuses types outside the common packages, naming them', () => {
    expect(() => rosCodec('my_robot_msgs/msg/Gripper')).toThrow('"my_robot_msgs/msg/Gripper" is not a message of the common ROS 2 packages');
    expect(() => rosCodec('Twist')).toThrow('expected a ROS 2 message type such as "geometry_msgs/msg/Twist", got "Twist"');
  });

  it('uses definitions that are the same in Humble and Jazzy for every type the node uses', () => {
    const humble = ros2humble as unknown as Record<string, { definitions: { type: string; isComplex?: boolean }[] }>;
    const jazzy = ros2jazzy as unknown as typeof humble;
    const seen = new Set<string>();
    const visit = (name: string): void => {
      if (seen.has(name)) return;
      seen.add(name);
      expect(jazzy[name], name).toEqual(humble[name]);
      for (const f of humble[name].definitions) if (f.isComplex === true) visit(f.type);
    };
    for (const t of DDS_NODE_TYPES) visit(t.replace('/msg/', '/'));
    expect(seen.size).toBeGreaterThan(DDS_NODE_TYPES.length);
  });
});

describe('DDS names', () => {
  it('gives every node type its rmw_cyclonedds type name', () => {
    expect(DDS_NODE_TYPES.map(ddsTypeName)).toEqual([
      'sensor_msgs::msg::dds_::JointState_',
      'sensor_msgs::msg::dds_::Imu_',
      'nav_msgs::msg::dds_::Odometry_',
      'geometry_msgs::msg::dds_::Twist_',
      'geometry_msgs::msg::dds_::TwistStamped_',
      'std_msgs::msg::dds_::Float64MultiArray_',
      'std_msgs::msg::dds_::Float64_',
      'std_msgs::msg::dds_::Bool_',
      'trajectory_msgs::msg::dds_::JointTrajectory_',
      'diagnostic_msgs::msg::dds_::DiagnosticArray_',
    ]);
    expect(rosCodec('std_msgs/Bool').ddsTypeName).toBe('std_msgs::msg::dds_::Bool_');
    expect(canonicalRosType('nav_msgs/Odometry')).toBe('nav_msgs/msg/Odometry');
  });

  it('prefixes fully qualified topic names with rt, resolving relative ones against the namespace', () => {
    expect(ddsTopicName('/joint_states')).toBe('rt/joint_states');
    expect(ddsTopicName('joint_states')).toBe('rt/joint_states');
    expect(ddsTopicName('cmd_vel', '/robot1')).toBe('rt/robot1/cmd_vel');
    expect(ddsTopicName('/cmd_vel', '/robot1')).toBe('rt/cmd_vel');
    expect(ddsTopicName('arm/joint_states', '/a/b')).toBe('rt/a/b/arm/joint_states');
    expect(resolveRosTopic('_hidden')).toBe('/_hidden');
  });

  it.each(['', '/', '/a//b', '/a/', '/1abc', '~/private', '/a-b', '/{node}/x'])('rejects the topic name %j', (name) => {
    expect(() => ddsTopicName(name)).toThrow(ValidationError);
  });

  it('rejects a relative namespace', () => {
    expect(() => ddsTopicName('x', 'robot1')).toThrow('namespace: expected an absolute namespace such as "/" or "/robot1", got "robot1"');
  });
});
