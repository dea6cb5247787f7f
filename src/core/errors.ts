/**
 * Errors and input checks shared by every layer. Every message says what was wrong, where,
 * and what was expected, so a user can fix the input without reading our code.
 */

/** An input (an action, an observation, a file, a config value) that failed validation. */
export class ValidationError extends Error {
  /** Where the bad value was found, e.g. `"Pendulum-v1.step(action)"`. */
  readonly where: string;
  /** The field or key that was bad, e.g. `"action[1]"`. */
  readonly field: string;
  constructor(where: string, field: string, message: string) {
    super(`${where}: ${field}: ${message}`);
    this.name = 'ValidationError';
    this.where = where;
    this.field = field;
  }
}

/**
 * Checks that `values` is a numeric vector of length `expectedLength` with finite entries.
 * @throws ValidationError naming `where`, the field (with the first bad index) and the value.
 */
export function checkFiniteVector(
  values: ArrayLike<number> | null | undefined,
  expectedLength: number,
  where: string,
  field: string,
): void {
  if (values === null || values === undefined || typeof values.length !== 'number') {
    throw new ValidationError(where, field, `expected a numeric vector of length ${expectedLength}, got ${describe(values)}`);
  }
  if (values.length !== expectedLength) {
    throw new ValidationError(where, field, `expected length ${expectedLength}, got length ${values.length}`);
  }
  for (let i = 0; i < expectedLength; i++) {
    const v = values[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new ValidationError(where, `${field}[${i}]`, `expected a finite number, got ${describe(v)}`);
    }
  }
}

/** A short, printable description of an arbitrary value for error messages. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${(v as unknown as ArrayLike<number>).length})`;
  if (Array.isArray(v)) return `array(${v.length})`;
  return typeof v;
}
