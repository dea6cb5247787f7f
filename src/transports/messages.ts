/**
 * Our own TypeScript shapes of the ROS 2 messages the node uses (rclnodejs's generated typings
 * exist only on a machine with ROS installed). Field names and types follow the .msg definitions
 * of ROS 2 Humble/Jazzy; `int64`/`uint64` fields would be `bigint`, float fields `number`, and
 * fixed-size arrays (`float64[9]`) plain arrays of that length.
 */

export interface Time {
  sec: number;
  nanosec: number;
}

export interface Header {
  stamp: Time;
  frame_id: string;
}

export interface Vector3 {
  x: number;
  y: number;
  z: number;
}

export interface Quaternion {
  x: number;
  y: number;
  z: number;
  w: number;
}

/** sensor_msgs/msg/JointState */
export interface JointState {
  header: Header;
  name: string[];
  position: number[];
  velocity: number[];
  effort: number[];
}

/** sensor_msgs/msg/Imu (covariances: row-major 3 × 3, 9 values each) */
export interface Imu {
  header: Header;
  orientation: Quaternion;
  orientation_covariance: number[];
  angular_velocity: Vector3;
  angular_velocity_covariance: number[];
  linear_acceleration: Vector3;
  linear_acceleration_covariance: number[];
}

/** geometry_msgs/msg/Twist */
export interface Twist {
  linear: Vector3;
  angular: Vector3;
}

/** geometry_msgs/msg/TwistStamped */
export interface TwistStamped {
  header: Header;
  twist: Twist;
}

/** nav_msgs/msg/Odometry (covariances: row-major 6 × 6, 36 values each) */
export interface Odometry {
  header: Header;
  child_frame_id: string;
  pose: { pose: { position: Vector3; orientation: Quaternion }; covariance: number[] };
  twist: { twist: Twist; covariance: number[] };
}

/** std_msgs/msg/MultiArrayDimension */
export interface MultiArrayDimension {
  label: string;
  size: number;
  stride: number;
}

/** std_msgs/msg/Float64MultiArray */
export interface Float64MultiArray {
  layout: { dim: MultiArrayDimension[]; data_offset: number };
  data: number[];
}

/** std_msgs/msg/Float64 */
export interface Float64 {
  data: number;
}

/** std_msgs/msg/Bool */
export interface Bool {
  data: boolean;
}

/** builtin_interfaces/msg/Duration */
export interface Duration {
  sec: number;
  nanosec: number;
}

/** trajectory_msgs/msg/JointTrajectoryPoint */
export interface JointTrajectoryPoint {
  positions: number[];
  velocities: number[];
  accelerations: number[];
  effort: number[];
  time_from_start: Duration;
}

/** trajectory_msgs/msg/JointTrajectory */
export interface JointTrajectory {
  header: Header;
  joint_names: string[];
  points: JointTrajectoryPoint[];
}

/** diagnostic_msgs/msg/KeyValue */
export interface KeyValue {
  key: string;
  value: string;
}

/** diagnostic_msgs/msg/DiagnosticStatus (level: 0 OK, 1 WARN, 2 ERROR, 3 STALE) */
export interface DiagnosticStatus {
  level: number;
  name: string;
  message: string;
  hardware_id: string;
  values: KeyValue[];
}

/** diagnostic_msgs/msg/DiagnosticArray */
export interface DiagnosticArray {
  header: Header;
  status: DiagnosticStatus[];
}

/** Nanoseconds → builtin_interfaces/Time. */
export function timeFromNs(ns: bigint): Time {
  const sec = ns / 1_000_000_000n;
  return { sec: Number(sec), nanosec: Number(ns - sec * 1_000_000_000n) };
}

/** builtin_interfaces/Time → nanoseconds. */
export function nsFromTime(t: Time): bigint {
  return BigInt(t.sec) * 1_000_000_000n + BigInt(t.nanosec);
}
