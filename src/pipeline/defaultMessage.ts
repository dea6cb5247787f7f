import { messageDefinition, type MessageFieldDefinition } from './messageDefinition.js';

/**
 * A complete message of a common ROS 2 type with every field at its ROS default: the default
 * the .msg file declares (geometry_msgs/Quaternion's `w` is 1), else numbers 0 (64-bit integers
 * `0n`), booleans false, strings empty, `time`/`duration` zero, variable-length arrays empty and
 * fixed-length arrays (`float64[9]`) filled. Serialisers that need every field
 * (CDR) can then encode what `toActionMessage` builds.
 * @returns a fresh object, or undefined when `type` is not a common message
 * @example defaultMessage('geometry_msgs/msg/Twist') // { linear: { x: 0, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0 } }
 */
export function defaultMessage(type: string): Record<string, unknown> | undefined {
  const def = messageDefinition(type);
  if (!def) return undefined;
  const out: Record<string, unknown> = {};
  for (const f of def.definitions) {
    if (f.isConstant) continue;
    if (f.defaultValue !== undefined) out[f.name] = Array.isArray(f.defaultValue) ? [...(f.defaultValue as unknown[])] : f.defaultValue;
    else if (!f.isArray) out[f.name] = defaultFieldValue(f);
    else out[f.name] = f.arrayLength === undefined ? [] : Array.from({ length: f.arrayLength }, () => defaultFieldValue(f));
  }
  return out;
}

/** The default of one (non-array) value of the field's type; `{}` for an unknown message type. */
export function defaultFieldValue(f: Pick<MessageFieldDefinition, 'type' | 'isComplex'>): unknown {
  if (f.isComplex) return defaultMessage(f.type) ?? {};
  switch (f.type) {
    case 'bool':
      return false;
    case 'string':
    case 'wstring':
      return '';
    case 'int64':
    case 'uint64':
      return 0n;
    case 'time':
    case 'duration':
      return { sec: 0, nanosec: 0 };
    default:
      return 0;
  }
}
