/**
 * The ROS 2 definitions of the common message packages (std_msgs, geometry_msgs, sensor_msgs,
 * nav_msgs, trajectory_msgs, diagnostic_msgs, …: the set `@foxglove/rosmsg-msgs-common` ships for
 * Humble), so configs can be checked and complete messages built without a ROS installation.
 */
import { ros2humble } from '@foxglove/rosmsg-msgs-common';

/** One field of a message definition, as `@foxglove/rosmsg` parses a .msg file. */
export interface MessageFieldDefinition {
  name: string;
  /** A primitive (`float64`, `bool`, `string`, `time`, …) or a message type `package/Type`. */
  type: string;
  isComplex?: boolean;
  isArray?: boolean;
  /** Fixed array length (`float64[9]`); absent for variable-length arrays. */
  arrayLength?: number;
  /** A default declared in the .msg file (`float64 w 1` in geometry_msgs/Quaternion). */
  defaultValue?: unknown;
  /** Constants (`int8 STATUS_FIX=0`) are listed among the fields; they carry no data. */
  isConstant?: boolean;
}

/** A message definition: its type name and its fields in order. */
export interface MessageDefinition {
  name?: string;
  definitions: MessageFieldDefinition[];
}

const COMMON = ros2humble as unknown as Record<string, MessageDefinition>;

/**
 * The definition of a common ROS 2 message type, or undefined for a type outside the common
 * packages (a robot's own messages): callers then skip the checks that need it.
 * @param type `package/msg/Type` or `package/Type`
 * @example messageDefinition('geometry_msgs/msg/Twist')?.definitions.map((f) => f.name) // ['linear', 'angular']
 */
export function messageDefinition(type: string): MessageDefinition | undefined {
  const key = type.replace('/msg/', '/');
  return Object.prototype.hasOwnProperty.call(COMMON, key) ? COMMON[key] : undefined;
}
