import type { PathStep } from '../data/bagMapping.js';
import { messageDefinition, type MessageFieldDefinition } from './messageDefinition.js';

/** Primitive ROS types that read as numbers (booleans as 0/1, 64-bit integers as floats). */
export const NUMERIC_ROS_TYPES: ReadonlySet<string> = new Set([
  'bool', 'byte', 'char', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'float32', 'float64',
]);

/** What a field path ends on, per the message definition. */
export interface ResolvedField {
  /** The leaf's definition (its ROS type, whether it is an array, a fixed length). */
  leaf: MessageFieldDefinition;
  /** Whether the leaf, as indexed by the path, is a number: a numeric scalar or one entry of a numeric array. */
  numeric: boolean;
  /**
   * Values the path selects when the definition fixes it: 1 for a numeric scalar or one index,
   * b − a + 1 for a range, the fixed length of a whole `float64[9]`; undefined for a whole
   * variable-length array (the first message tells).
   */
  width: number | undefined;
}

/**
 * Checks a field path (`linear.x`, `position[0..5]`) against the definition of a common message
 * type, so a typo is reported when the config is read rather than as dropped messages later.
 * @returns the leaf, a string saying what is wrong, or undefined when `type` is not a common
 *   message (then nothing can be checked before messages arrive)
 * @example resolveFieldPath('geometry_msgs/msg/Twist', [{ name: 'linear' }, { name: 'w' }])
 * // 'no field "w" in geometry_msgs/Vector3 (at linear); fields: x, y, z'
 */
export function resolveFieldPath(type: string, path: readonly PathStep[]): ResolvedField | string | undefined {
  let def = messageDefinition(type);
  if (!def) return undefined;
  let typeName = type.replace('/msg/', '/');
  for (let s = 0; s < path.length; s++) {
    const step = path[s];
    const at = path.slice(0, s).map((p) => p.name).join('.');
    const fields = def.definitions.filter((f) => !f.isConstant);
    const field = fields.find((f) => f.name === step.name);
    if (!field) return `no field "${step.name}" in ${typeName}${at ? ` (at ${at})` : ''}; fields: ${fields.map((f) => f.name).join(', ')}`;
    const indexed = step.index !== undefined || step.range !== undefined;
    if (indexed && !field.isArray) return `"${step.name}" in ${typeName} is a single ${field.type}, not an array; drop the index`;
    if (indexed && field.arrayLength !== undefined) {
      const last = step.range ? step.range[1] : (step.index as number);
      if (last >= field.arrayLength) return `"${step.name}" in ${typeName} has ${field.arrayLength} entries; index ${last} is out of range`;
    }
    if (s === path.length - 1) {
      const numericType = NUMERIC_ROS_TYPES.has(field.type);
      if (step.range) return { leaf: field, numeric: numericType, width: step.range[1] - step.range[0] + 1 };
      if (indexed || !field.isArray) return { leaf: field, numeric: numericType, width: numericType ? 1 : undefined };
      return { leaf: field, numeric: numericType, width: field.arrayLength };
    }
    if (!field.isComplex) return `"${step.name}" in ${typeName} is a ${field.type}${field.isArray ? ' array' : ''}, which has no field "${path[s + 1].name}"`;
    if (field.isArray && !indexed) return `"${step.name}" in ${typeName} is an array of ${field.type}; pick one entry, e.g. ${step.name}[0]`;
    const next = messageDefinition(field.type);
    if (!next) return undefined;
    def = next;
    typeName = field.type;
  }
  return undefined;
}
