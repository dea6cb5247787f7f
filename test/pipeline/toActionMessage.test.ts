// toActionMessage and the message-definition helpers: complete messages with ROS defaults, the
// mapped fields set in order, header stamps, and config-time path checks.
import { describe, expect, it } from 'vitest';
import { defaultMessage } from '../../src/pipeline/defaultMessage.js';
import { resolveFieldPath } from '../../src/pipeline/resolveFieldPath.js';
import { toActionMessage } from '../../src/pipeline/toActionMessage.js';
import { field } from './marbles.js';

describe('toActionMessage', () => {
  it('fills a Twist per dimension, leaving the other fields at zero', () => {
    const toMsg = toActionMessage({ type: 'geometry_msgs/msg/Twist', fields: [field('/cmd_vel', 'geometry_msgs/msg/Twist.linear.x'), field('/cmd_vel', 'geometry_msgs/msg/Twist.angular.z')] });
    expect(toMsg([0.2, -0.5])).toEqual({ linear: { x: 0.2, y: 0, z: 0 }, angular: { x: 0, y: 0, z: -0.5 } });
    const a = toMsg([1, 2]);
    const b = toMsg([3, 4]);
    expect(a).not.toBe(b);
    expect(a).toEqual({ linear: { x: 1, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 2 } }); // not changed by the later call
  });

  it('fills a Float64MultiArray range, growing the array to the highest index', () => {
    const toMsg = toActionMessage({ type: 'std_msgs/msg/Float64MultiArray', fields: [field('/cmd', 'std_msgs/msg/Float64MultiArray.data[1..2]')] });
    expect(toMsg(Float64Array.of(0.5, -0.25))).toEqual({ layout: { dim: [], data_offset: 0 }, data: [0, 0.5, -0.25] });
  });

  it('stamps a header and reaches into message arrays (JointTrajectory points[0])', () => {
    const stamped = toActionMessage({ type: 'geometry_msgs/msg/TwistStamped', fields: [field('/cmd', 'geometry_msgs/msg/TwistStamped.twist.linear.x')] });
    expect(stamped([0.75], 3_000_000_123n)).toEqual({ header: { stamp: { sec: 3, nanosec: 123 }, frame_id: '' }, twist: { linear: { x: 0.75, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0 } } });
    const traj = toActionMessage({ type: 'trajectory_msgs/msg/JointTrajectory', fields: [field('/jt', 'trajectory_msgs/msg/JointTrajectory.points[0].positions[0..1]')] });
    expect(traj([1, 2])).toEqual({
      header: { stamp: { sec: 0, nanosec: 0 }, frame_id: '' },
      joint_names: [],
      points: [{ positions: [1, 2], velocities: [], accelerations: [], effort: [], time_from_start: { sec: 0, nanosec: 0 } }],
    });
  });

  it('builds a robot\'s own message type from the paths alone, and converts to integer and bool fields', () => {
    const own = toActionMessage({ type: 'my_robot/msg/Command', fields: [field('/c', 'my_robot/msg/Command.wheels.left'), field('/c', 'my_robot/msg/Command.gains[1]')] });
    expect(own([0.5, 2])).toEqual({ wheels: { left: 0.5 }, gains: [0, 2] });
    const ints = toActionMessage({ type: 'std_msgs/msg/Int64', fields: [field('/i', 'std_msgs/msg/Int64.data')] });
    expect(ints([2.6])).toEqual({ data: 3n });
    const flag = toActionMessage({ type: 'std_msgs/msg/Bool', fields: [field('/b', 'std_msgs/msg/Bool.data')] });
    expect(flag([1])).toEqual({ data: true });
  });

  it('rejects a whole array, a message-valued field, and an action of the wrong length', () => {
    expect(() => toActionMessage({ type: 'std_msgs/msg/Float64MultiArray', fields: [field('/cmd', 'std_msgs/msg/Float64MultiArray.data')] })).toThrow(
      '"data" is an array: name the entries, e.g. data[0..1]',
    );
    expect(() => toActionMessage({ type: 'geometry_msgs/msg/Twist', fields: [field('/cmd', 'geometry_msgs/msg/Twist.linear')] })).toThrow('"linear" is a geometry_msgs/Vector3 message, not a number');
    const toMsg = toActionMessage({ type: 'geometry_msgs/msg/Twist', fields: [field('/cmd', 'geometry_msgs/msg/Twist.linear.x')] });
    expect(() => toMsg([1, 2])).toThrow('toActionMessage(geometry_msgs/msg/Twist): action: expected length 1, got length 2');
  });
});

describe('message definitions', () => {
  it('builds complete default messages: declared defaults, fixed-length arrays filled', () => {
    const imu = defaultMessage('sensor_msgs/msg/Imu') as Record<string, unknown>;
    expect(imu.orientation).toEqual({ x: 0, y: 0, z: 0, w: 1 }); // Quaternion.msg: float64 w 1
    expect(imu.orientation_covariance).toEqual(new Array(9).fill(0));
    expect(defaultMessage('my_robot/msg/Command')).toBeUndefined();
  });

  it('resolves field paths and says what is wrong with a bad one', () => {
    const path = (spec: string) => field('/t', spec).path;
    expect(resolveFieldPath('sensor_msgs/msg/JointState', path('sensor_msgs/msg/JointState.position[0..5]'))).toMatchObject({ numeric: true, width: 6 });
    expect(resolveFieldPath('sensor_msgs/msg/Imu', path('sensor_msgs/msg/Imu.orientation_covariance'))).toMatchObject({ numeric: true, width: 9 });
    expect(resolveFieldPath('sensor_msgs/msg/JointState', path('sensor_msgs/msg/JointState.position'))).toMatchObject({ numeric: true, width: undefined });
    expect(resolveFieldPath('geometry_msgs/msg/Twist', path('geometry_msgs/msg/Twist.linear.w'))).toBe('no field "w" in geometry_msgs/Vector3 (at linear); fields: x, y, z');
    expect(resolveFieldPath('sensor_msgs/msg/Imu', path('sensor_msgs/msg/Imu.orientation_covariance[9]'))).toBe('"orientation_covariance" in sensor_msgs/Imu has 9 entries; index 9 is out of range');
    expect(resolveFieldPath('sensor_msgs/msg/JointState', path('sensor_msgs/msg/JointState.name[0]'))).toMatchObject({ numeric: false });
    expect(resolveFieldPath('geometry_msgs/msg/Twist', path('geometry_msgs/msg/Twist.linear[0]'))).toBe('"linear" in geometry_msgs/Twist is a single geometry_msgs/Vector3, not an array; drop the index');
    expect(resolveFieldPath('my_robot/msg/Command', path('my_robot/msg/Command.anything'))).toBeUndefined();
  });
});
