import { ValidationError, checkFiniteVector, describe } from '../core/errors.js';
import type { BagField } from '../data/bagMapping.js';
import { timeFromNs } from '../transports/messages.js';
import { defaultFieldValue, defaultMessage } from './defaultMessage.js';
import { messageDefinition, type MessageDefinition } from './messageDefinition.js';

/** Where the action vector goes (the node config's `action`, parsed). */
export interface ActionSpec {
  /** The ROS 2 message type, e.g. `geometry_msgs/msg/Twist`. */
  type: string;
  /**
   * One field per scalar, or an index range per block, filled from the action vector in order:
   * `geometry_msgs/msg/Twist.linear.x`, `…angular.z` or `std_msgs/msg/Float64MultiArray.data[0..1]`.
   */
  fields: readonly BagField[];
}

/** One action entry's place in the message: the object path and the key (or array index) it sets. */
interface Slot {
  path: (string | number)[];
  /** Converts the float to the field's ROS type (integers rounded, 64-bit ones to bigint, bool). */
  convert: (v: number) => unknown;
}

const asIs = (v: number): unknown => v;
const INTEGER_TYPES = new Set(['byte', 'char', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32']);

function converter(rosType: string | undefined): (v: number) => unknown {
  if (rosType === 'bool') return (v) => v !== 0;
  if (rosType === 'int64' || rosType === 'uint64') return (v) => BigInt(Math.round(v));
  if (rosType !== undefined && INTEGER_TYPES.has(rosType)) return (v) => Math.round(v);
  return asIs;
}

/**
 * Builds the function that turns an action vector into the message to publish: a complete
 * message of the type (every field at its ROS default when the type is a common one, see
 * `defaultMessage`) with the mapped fields set; arrays grow to the highest mapped index. When
 * the message has a `header` and a stamp is given, `header.stamp` is set to it.
 * @throws ValidationError when a field cannot take a number (a whole array without an index)
 * @example
 * const toMsg = toActionMessage({ type: 'geometry_msgs/msg/Twist', fields: [linearX, angularZ] });
 * transport.publish('/cmd_vel', 'geometry_msgs/msg/Twist', toMsg([0.2, -0.5]));
 * // { linear: { x: 0.2, y: 0, z: 0 }, angular: { x: 0, y: 0, z: -0.5 } }
 */
export function toActionMessage(spec: ActionSpec): (action: ArrayLike<number>, stampNs?: bigint) => Record<string, unknown> {
  const where = `toActionMessage(${spec.type})`;
  const template = defaultMessage(spec.type) ?? {};
  const slots: Slot[] = [];
  for (const field of spec.fields) {
    const prefix: (string | number)[] = [];
    let def: MessageDefinition | undefined = messageDefinition(spec.type);
    let node: Record<string, unknown> = template;
    field.path.forEach((step, s) => {
      const last = s === field.path.length - 1;
      const fdef = def?.definitions.find((f) => f.name === step.name && !f.isConstant);
      prefix.push(step.name);
      if (step.index === undefined && !step.range) {
        if (last) {
          if (Array.isArray(node[step.name]) || fdef?.isArray) throw new ValidationError(where, field.text, `"${step.name}" is an array: name the entries, e.g. ${step.name}[0..1]`);
          if (fdef?.isComplex) throw new ValidationError(where, field.text, `"${step.name}" is a ${fdef.type} message, not a number: name one of its fields`);
          slots.push({ path: [...prefix], convert: converter(fdef?.type) });
          return;
        }
        if (node[step.name] === undefined || node[step.name] === null || typeof node[step.name] !== 'object') node[step.name] = {};
        node = node[step.name] as Record<string, unknown>;
        def = fdef?.isComplex ? messageDefinition(fdef.type) : undefined;
        return;
      }
      const [a, b] = step.range ?? [step.index as number, step.index as number];
      if (node[step.name] === undefined) node[step.name] = [];
      const arr = node[step.name];
      if (!Array.isArray(arr)) throw new ValidationError(where, field.text, `"${step.name}" is ${describe(arr)}, not an array`);
      const element = fdef ? () => defaultFieldValue(fdef) : () => (last ? 0 : {});
      while (arr.length <= b) arr.push(element());
      if (last) {
        if (fdef?.isComplex) throw new ValidationError(where, field.text, `"${step.name}" holds ${fdef.type} messages, not numbers: name one of their fields`);
        for (let i = a; i <= b; i++) slots.push({ path: [...prefix, i], convert: converter(fdef?.type) });
        return;
      }
      prefix.push(a);
      node = arr[a] as Record<string, unknown>;
      def = fdef?.isComplex ? messageDefinition(fdef.type) : undefined;
    });
  }
  const hasHeader = template.header !== null && typeof template.header === 'object';
  return (action, stampNs) => {
    checkFiniteVector(action, slots.length, where, 'action');
    const msg = structuredClone(template);
    for (let k = 0; k < slots.length; k++) {
      const path = slots[k].path;
      let node = msg as Record<string | number, unknown>;
      for (let s = 0; s < path.length - 1; s++) node = node[path[s]] as Record<string | number, unknown>;
      node[path[path.length - 1]] = slots[k].convert(action[k]);
    }
    if (hasHeader && stampNs !== undefined) (msg.header as Record<string, unknown>).stamp = timeFromNs(stampNs);
    return msg;
  };
}
