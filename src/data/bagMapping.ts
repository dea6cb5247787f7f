/**
 * The YAML mapping that turns a ROS 2 bag into observation and action vectors
 * (`loadRosbagDataset`), validated where it enters.
 *
 * ```yaml
 * controlPeriodMs: 50            # the grid the topics are resampled onto (required)
 * resample: latest               # latest (zero-order hold) | linear; or per field group:
 *                                #   { observations: linear, actions: latest, rewards: latest }
 * stamp: auto                    # auto: header.stamp when the message has one, else the MCAP log time
 *                                # header | log: that source for every topic
 * gapPeriods: 5                  # a gap: two consecutive messages of a topic more than this many periods apart
 * onGap: split                   # split: drop the samples inside a gap and cut the episode there; keep: keep them
 * observations:
 *   - /joint_states: sensor_msgs/msg/JointState.position[0..5]    # entries 0 to 5 inclusive (6 values)
 *   - /odom: nav_msgs/msg/Odometry.twist.twist.linear.x
 * actions:
 *   - /cmd_vel: geometry_msgs/msg/Twist.linear.x
 *   - /cmd_vel: geometry_msgs/msg/Twist.angular.z
 * rewards: { /reward: std_msgs/msg/Float64.data }                 # optional: rewards are 0 without it
 * metadata: { envId: TurtleBot3-real, policy: teleop }            # optional, stored in the dataset
 * ```
 *
 * A field is `PACKAGE/msg/TYPE.path`: the type must be the topic's type in the bag; the path is
 * dot-separated field names, each optionally indexed `[i]`; the last may take an inclusive range
 * `[a..b]`, or name a numeric array whole (its length is then fixed by the first message).
 * Numbers, 64-bit integers (converted to float) and booleans (0/1) are accepted.
 */
import { parse as parseYaml } from 'yaml';
import { ValidationError, describe } from '../core/errors.js';
import type { DatasetMetadata } from './dataset.js';

/** How a topic's value at a grid time is taken from its messages. */
export type ResampleRule = 'latest' | 'linear';

/** One step of a field path: a field name with an optional index or inclusive range. */
export interface PathStep {
  name: string;
  index?: number;
  range?: [number, number];
}

/** One mapped field: a topic, its message type and the path to a number or numeric array. */
export interface BagField {
  topic: string;
  /** The message type as written, e.g. `sensor_msgs/msg/JointState`. */
  type: string;
  path: PathStep[];
  /** The entry as written, for messages. */
  text: string;
}

/** A validated mapping (defaults filled in). */
export interface BagMapping {
  /** The control period, milliseconds; the resampling grid's step. */
  controlPeriodMs: number;
  resample: { observations: ResampleRule; actions: ResampleRule; rewards: ResampleRule };
  stamp: 'auto' | 'header' | 'log';
  /** A gap is a silence of more than `gapPeriods` control periods on a topic. Default 5. */
  gapPeriods: number;
  onGap: 'split' | 'keep';
  observations: BagField[];
  actions: BagField[];
  rewards?: BagField;
  metadata: DatasetMetadata;
}

/** Defaults of the optional keys. */
export const BAG_MAPPING_DEFAULTS = { resample: 'latest', stamp: 'auto', gapPeriods: 5, onGap: 'split' } as const;

const KEYS = ['controlPeriodMs', 'resample', 'stamp', 'gapPeriods', 'onGap', 'observations', 'actions', 'rewards', 'metadata'];

/**
 * Parses and checks a mapping from YAML text (or an already parsed object).
 * @param where names the source in errors, e.g. the mapping file
 * @throws ValidationError naming the key (`observations[2]`) and what was expected
 * @example const mapping = parseBagMapping(readFileSync('turtlebot.yaml', 'utf8'), 'turtlebot.yaml');
 */
export function parseBagMapping(source: string | unknown, where = 'bag mapping'): BagMapping {
  let raw: unknown = source;
  if (typeof source === 'string') {
    try {
      raw = parseYaml(source);
    } catch (err) {
      throw new ValidationError(where, 'yaml', `not valid YAML (${err instanceof Error ? err.message : String(err)})`);
    }
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ValidationError(where, 'mapping', `expected a YAML mapping with controlPeriodMs, observations, actions, got ${describe(raw)}`);
  const m = raw as Record<string, unknown>;
  for (const k of Object.keys(m)) if (!KEYS.includes(k)) throw new ValidationError(where, k, `unknown key; expected one of ${KEYS.join(', ')}`);

  const period = m.controlPeriodMs;
  if (typeof period !== 'number' || !Number.isFinite(period) || period <= 0) throw new ValidationError(where, 'controlPeriodMs', `expected a positive number of milliseconds, got ${describe(period)}`);
  const rule = (v: unknown, key: string): ResampleRule => {
    if (v === 'latest' || v === 'linear') return v;
    throw new ValidationError(where, key, `expected latest or linear, got ${describe(v)}`);
  };
  const r = m.resample ?? BAG_MAPPING_DEFAULTS.resample;
  let resample: BagMapping['resample'];
  if (typeof r === 'string') {
    const one = rule(r, 'resample');
    resample = { observations: one, actions: one, rewards: one };
  } else if (r !== null && typeof r === 'object' && !Array.isArray(r)) {
    const o = r as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!['observations', 'actions', 'rewards'].includes(k)) throw new ValidationError(where, `resample.${k}`, 'unknown key; expected observations, actions or rewards');
    resample = {
      observations: rule(o.observations ?? BAG_MAPPING_DEFAULTS.resample, 'resample.observations'),
      actions: rule(o.actions ?? BAG_MAPPING_DEFAULTS.resample, 'resample.actions'),
      rewards: rule(o.rewards ?? BAG_MAPPING_DEFAULTS.resample, 'resample.rewards'),
    };
  } else {
    throw new ValidationError(where, 'resample', `expected latest, linear, or { observations, actions, rewards }, got ${describe(r)}`);
  }
  const stamp = m.stamp ?? BAG_MAPPING_DEFAULTS.stamp;
  if (stamp !== 'auto' && stamp !== 'header' && stamp !== 'log') throw new ValidationError(where, 'stamp', `expected auto, header or log, got ${describe(stamp)}`);
  const gapPeriods = m.gapPeriods ?? BAG_MAPPING_DEFAULTS.gapPeriods;
  if (typeof gapPeriods !== 'number' || !Number.isFinite(gapPeriods) || gapPeriods < 1) throw new ValidationError(where, 'gapPeriods', `expected a number ≥ 1 (control periods), got ${describe(gapPeriods)}`);
  const onGap = m.onGap ?? BAG_MAPPING_DEFAULTS.onGap;
  if (onGap !== 'split' && onGap !== 'keep') throw new ValidationError(where, 'onGap', `expected split or keep, got ${describe(onGap)}`);

  const fields = (key: 'observations' | 'actions'): BagField[] => {
    const v = m[key];
    if (!Array.isArray(v) || v.length === 0) throw new ValidationError(where, key, `expected a non-empty list of "- /topic: package/msg/Type.field" entries, got ${describe(v)}`);
    return v.map((e, k) => parseEntry(e, where, `${key}[${k}]`));
  };
  const metadata: DatasetMetadata = {};
  if (m.metadata !== undefined) {
    if (m.metadata === null || typeof m.metadata !== 'object' || Array.isArray(m.metadata)) throw new ValidationError(where, 'metadata', `expected a mapping of strings, got ${describe(m.metadata)}`);
    for (const [k, v] of Object.entries(m.metadata)) {
      if (typeof v !== 'string' && typeof v !== 'number') throw new ValidationError(where, `metadata.${k}`, `expected a string, got ${describe(v)}`);
      metadata[k] = String(v);
    }
  }
  const rewards = m.rewards === undefined ? undefined : parseEntry(m.rewards, where, 'rewards');
  if (rewards && (fieldWidth(rewards) ?? 1) !== 1) throw new ValidationError(where, 'rewards', `expected one number (a scalar field or one index), got ${rewards.text}`);
  return {
    controlPeriodMs: period,
    resample,
    stamp,
    gapPeriods,
    onGap,
    observations: fields('observations'),
    actions: fields('actions'),
    ...(rewards ? { rewards } : {}),
    metadata,
  };
}

/**
 * The values a field contributes when the path alone says: 1 for an index, b − a + 1 for a
 * range; undefined for a plain name (a scalar or a whole array: the first message tells).
 */
export function fieldWidth(f: BagField): number | undefined {
  const last = f.path[f.path.length - 1];
  if (last.range) return last.range[1] - last.range[0] + 1;
  return last.index !== undefined ? 1 : undefined;
}

function parseEntry(e: unknown, where: string, key: string): BagField {
  let topic: unknown;
  let spec: unknown;
  if (e !== null && typeof e === 'object' && !Array.isArray(e)) {
    const o = e as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 2 && 'topic' in o && 'field' in o) {
      topic = o.topic;
      spec = o.field;
    } else if (keys.length === 1) {
      topic = keys[0];
      spec = o[keys[0]];
    }
  }
  if (typeof topic !== 'string' || typeof spec !== 'string') {
    throw new ValidationError(where, key, `expected "/topic: package/msg/Type.field" (or { topic, field }), got ${describe(e)}`);
  }
  if (!topic.startsWith('/')) throw new ValidationError(where, key, `expected a topic name starting with "/", got ${JSON.stringify(topic)}`);
  return parseFieldSpec(topic, spec, where, key);
}

/**
 * Parses one field in the mapping syntax, `package/msg/Type.path` (e.g.
 * `sensor_msgs/msg/JointState.position[0..5]`), read from `topic`. The control node's sensor and
 * action mappings use the same syntax (`src/node/config.ts`).
 * @param where names the source in errors, e.g. the config file
 * @param key the entry's key in that source, e.g. `sensors[0].fields[1]`
 * @throws ValidationError naming `key`, the text and what was expected
 * @example parseFieldSpec('/cmd_vel', 'geometry_msgs/msg/Twist.linear.x', 'node.yaml', 'action.fields[0]')
 */
export function parseFieldSpec(topic: string, spec: string, where: string, key: string): BagField {
  const dot = spec.indexOf('.');
  const type = dot < 0 ? '' : spec.slice(0, dot);
  if (!/^[A-Za-z_][\w]*\/(msg\/)?[A-Za-z_]\w*$/.test(type)) {
    throw new ValidationError(where, key, `expected "package/msg/Type.field" after the topic, got ${JSON.stringify(spec)} (e.g. sensor_msgs/msg/JointState.position[0..5])`);
  }
  // Split at dots outside brackets: `position[0..5]` keeps its range.
  const parts = spec.slice(dot + 1).split(/\.(?![^[]*\])/);
  const path: PathStep[] = parts.map((p, k) => {
    const mm = /^([A-Za-z_]\w*)(?:\[(\d+)(?:\.\.(\d+))?\])?$/.exec(p);
    if (!mm) throw new ValidationError(where, key, `bad field path step ${JSON.stringify(p)} in ${JSON.stringify(spec)}: expected name, name[i] or name[a..b]`);
    const step: PathStep = { name: mm[1] };
    if (mm[3] !== undefined) {
      const a = Number(mm[2]);
      const b = Number(mm[3]);
      if (k !== parts.length - 1) throw new ValidationError(where, key, `a range [${a}..${b}] may only end the path (${JSON.stringify(spec)})`);
      if (b < a) throw new ValidationError(where, key, `range [${a}..${b}] is empty (inclusive; the end must be ≥ the start)`);
      step.range = [a, b];
    } else if (mm[2] !== undefined) {
      step.index = Number(mm[2]);
    }
    return step;
  });
  return { topic, type, path, text: `${topic}: ${spec}` };
}

/** Why `extractField` could not take a field's values from a message. */
export interface FieldProblem {
  /**
   * `missing`: a field on the path is absent; `notArray`: an indexed field is not an array;
   * `range`: an index is past the array's end; `notNumber`: a value is not a number, 64-bit
   * integer or boolean; `nonFinite`: a value is NaN or ±Infinity.
   */
  kind: 'missing' | 'notArray' | 'range' | 'notNumber' | 'nonFinite';
  /** What was found and what was expected, e.g. `"position" has 2 entries; index 5 is out of range`. */
  message: string;
}

/**
 * Appends the numbers `field` selects in `msg` to `out`: numbers as they are, 64-bit integers
 * converted to float, booleans as 0/1; a whole numeric array contributes every entry.
 * Stops at the first problem and returns it (values appended before it stay in `out`), so a
 * caller that drops bad messages need not catch exceptions.
 * @example
 * const out: number[] = [];
 * const problem = extractField(jointState, field, out); // field: /js: sensor_msgs/msg/JointState.position[0..1]
 * if (problem) console.warn(problem.message); else use(out); // out: [q0, q1]
 */
export function extractField(msg: unknown, field: BagField, out: number[]): FieldProblem | undefined {
  let cur: unknown = msg;
  for (let s = 0; s < field.path.length; s++) {
    const step = field.path[s];
    if (cur === null || typeof cur !== 'object' || ArrayBuffer.isView(cur) || Array.isArray(cur) || !(step.name in (cur as object))) {
      const have = cur !== null && typeof cur === 'object' && !Array.isArray(cur) && !ArrayBuffer.isView(cur) ? `; fields: ${Object.keys(cur).join(', ')}` : '';
      return { kind: 'missing', message: `no field "${step.name}" at ${field.path.slice(0, s).map((p) => p.name).join('.') || 'the message root'}${have}` };
    }
    cur = (cur as Record<string, unknown>)[step.name];
    if (step.index !== undefined || step.range) {
      if (!isNumericArrayLike(cur)) return { kind: 'notArray', message: `"${step.name}" is ${describe(cur)}, not an array` };
      const [a, b] = step.range ?? [step.index as number, step.index as number];
      if (b >= cur.length) return { kind: 'range', message: `"${step.name}" has ${cur.length} entries; index ${b} is out of range` };
      if (step.range) {
        for (let i = a; i <= b; i++) {
          const problem = pushNumber(cur[i], out);
          if (problem) return problem;
        }
        return undefined;
      }
      cur = cur[a];
    }
  }
  if (isNumericArrayLike(cur)) {
    for (let i = 0; i < cur.length; i++) {
      const problem = pushNumber(cur[i], out);
      if (problem) return problem;
    }
    return undefined;
  }
  return pushNumber(cur, out);
}

/**
 * `header.stamp` as integer nanoseconds, or undefined when the message has no header stamp.
 * @example headerStampNs({ header: { stamp: { sec: 2, nanosec: 5 }, frame_id: '' } }) // 2_000_000_005n
 */
export function headerStampNs(msg: unknown): bigint | undefined {
  if (msg === null || typeof msg !== 'object') return undefined;
  const h = (msg as { header?: { stamp?: { sec?: unknown; nanosec?: unknown } } }).header;
  const s = h?.stamp;
  if (s === undefined || s === null || typeof s.sec !== 'number' || typeof s.nanosec !== 'number') return undefined;
  if (!Number.isInteger(s.sec) || !Number.isInteger(s.nanosec)) return undefined;
  return BigInt(s.sec) * 1_000_000_000n + BigInt(s.nanosec);
}

function isNumericArrayLike(v: unknown): v is ArrayLike<unknown> {
  return Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));
}

function pushNumber(v: unknown, out: number[]): FieldProblem | undefined {
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return { kind: 'nonFinite', message: `expected a finite number, got ${describe(v)}` };
    out.push(v);
    return undefined;
  }
  if (typeof v === 'bigint') {
    out.push(Number(v));
    return undefined;
  }
  if (typeof v === 'boolean') {
    out.push(v ? 1 : 0);
    return undefined;
  }
  return { kind: 'notNumber', message: `expected a number, got ${describe(v)}${v !== null && typeof v === 'object' ? ` with fields ${Object.keys(v).join(', ')}` : ''}` };
}
