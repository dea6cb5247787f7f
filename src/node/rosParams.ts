/**
 * The node configuration as ROS 2 parameters, both ways:
 *
 * - **In.** `loadRosNodeConfig` reads a ROS 2 parameters YAML, the file `ros2 launch` and
 *   `--params-file` take, and returns the node configuration in it, overridden by the
 *   `--ros-args` of the command line (`--params-file`, `-p`) as rcl would override the node's
 *   parameters, so the node runs with what `ros2 param get` shows:
 *
 *   ```yaml
 *   mbrl_node:                    # or /**, /robot1/mbrl_node, /**\/mbrl_node
 *     ros__parameters:
 *       controlPeriodMs: 50
 *       learner.refitEverySec: 60   # dotted names and nested maps are the same parameter
 *       sensors:                    # rcl allows no lists of mappings: entries are keyed by a name
 *         joint_states: { topic: /joint_states, type: sensor_msgs/msg/JointState, fields: ["position[0..2]"] }
 *   ```
 *
 *   Which sections apply, and in which order, follows rcl and rclcpp (Humble, Jazzy): rcl reads
 *   the files and `-p`s in command-line order into one table of sections, a section key seen
 *   again (spelled the same) taking the later values in its first place, `-p name:=value` going
 *   to the section `/**`; every section whose key matches the node's fully qualified name (`/**`
 *   any namespace path, `/*` one token; a key without a leading `/` is in the root namespace)
 *   then applies, in table order, later ones overriding earlier ones. ROS's own parameters
 *   (`use_sim_time`, `qos_overrides.*`, …) are left to rcl.
 * - **Out.** `nodeConfigToRosParameters` flattens a configuration to the parameters the `ros2`
 *   transport declares, named as in the file; `ros2TransportOptions` builds the whole
 *   `Ros2TransportOptions` of a configuration.
 *
 * A file without `ros__parameters` is a plain node configuration (`loadNodeConfig`'s format).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isMap, isScalar, isSeq, parseDocument, type Node as YamlNode } from 'yaml';
import { ValidationError, describe } from '../core/errors.js';
import { toActionMessage } from '../pipeline/toActionMessage.js';
import type { Ros2LifecycleOptions, Ros2Parameter, Ros2TransportOptions, RosParamValue } from '../transports/ros2.js';
import { QOS_DEFAULT, QOS_SENSOR_DATA } from '../transports/transport.js';
import { NODE_CONFIG_DEFAULTS, loadNodeConfig, nodeConfigToJson, parseNodeConfig, resolveConfigPaths, type NodeConfig } from './config.js';

/** Parameters rcl and the client libraries own: never part of the node configuration. */
export const ROS_RESERVED_PARAMETERS: readonly string[] = ['use_sim_time', 'start_type_description_service', 'qos_overrides', 'start_parameter_services', 'start_parameter_event_publisher'];

const isReserved = (name: string): boolean => ROS_RESERVED_PARAMETERS.some((r) => name === r || name.startsWith(`${r}.`));

// ---------------------------------------------------------------------------------------------
// The command line.

/** A parameter source of the command line, in order. */
export type RosParamSource = { kind: 'file'; path: string } | { kind: 'param'; node?: string; name: string; value: string };

/** A command line split as rcl splits it. */
export interface RosArgs {
  /** The arguments outside `--ros-args … [--]` sections: the program's own. */
  args: string[];
  /** The tokens inside the sections (without `--ros-args` and `--`). */
  rosArgs: string[];
  /** `--params-file FILE` and `-p name:=value`, in order. */
  sources: RosParamSource[];
  /** `-r from:=to` (`node:from:=to` sets `node`). */
  remaps: Array<{ node?: string; from: string; to: string }>;
  /** `-r __node:=NAME` (or `__name`), when given. */
  nodeName?: string;
  /** `-r __ns:=/NS`, when given. */
  namespace?: string;
  /** Flags rcl may know and this parser does not (rcl judges them at init). */
  unknown: string[];
}

const VALUE_FLAGS = new Set(['-r', '--remap', '-p', '--param', '--params-file', '-e', '--enclave', '--log-level', '--log-file-name', '--log-config-file']);
const BARE_FLAGS = new Set([
  '--enable-rosout-logs',
  '--disable-rosout-logs',
  '--enable-stdout-logs',
  '--disable-stdout-logs',
  '--enable-external-lib-logs',
  '--disable-external-lib-logs',
]);

/**
 * Splits a command line into the program's arguments and rcl's `--ros-args` sections, and reads
 * the parts that decide the node's identity and parameters.
 * @throws ValidationError naming the flag when a value is missing or is not `name:=value`
 * @example
 * parseRosArgs(['--config', 'a.yaml', '--ros-args', '-r', '__node:=arm', '--params-file', 'a.yaml'])
 * // { args: ['--config', 'a.yaml'], nodeName: 'arm', sources: [{ kind: 'file', path: 'a.yaml' }], … }
 */
export function parseRosArgs(argv: readonly string[]): RosArgs {
  const where = 'command line (--ros-args)';
  const out: RosArgs = { args: [], rosArgs: [], sources: [], remaps: [], unknown: [] };
  let inRos = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--ros-args') {
      inRos = true;
      continue;
    }
    if (!inRos) {
      out.args.push(a);
      continue;
    }
    if (a === '--') {
      inRos = false;
      continue;
    }
    out.rosArgs.push(a);
    if (BARE_FLAGS.has(a)) continue;
    if (!VALUE_FLAGS.has(a)) {
      out.unknown.push(a);
      continue;
    }
    const value = argv[i + 1];
    if (value === undefined || value === '--' || value === '--ros-args') throw new ValidationError(where, a, `expected a value after ${a}`);
    out.rosArgs.push(value);
    i++;
    if (a === '--params-file') {
      out.sources.push({ kind: 'file', path: value });
    } else if (a === '-p' || a === '--param') {
      const rule = splitRule(value);
      if (!rule || rule.from === '') throw new ValidationError(where, `${a} ${value}`, 'expected name:=value, e.g. -p controlPeriodMs:=20');
      out.sources.push({ kind: 'param', ...(rule.node !== undefined ? { node: rule.node } : {}), name: rule.from, value: rule.to });
    } else if (a === '-r' || a === '--remap') {
      const rule = splitRule(value);
      if (!rule || rule.from === '' || rule.to === '') throw new ValidationError(where, `${a} ${value}`, 'expected from:=to, e.g. -r /cmd_vel:=/robot/cmd_vel or -r __node:=arm');
      out.remaps.push(rule.node !== undefined ? { node: rule.node, from: rule.from, to: rule.to } : { from: rule.from, to: rule.to });
      if (rule.node === undefined && (rule.from === '__node' || rule.from === '__name')) out.nodeName = rule.to;
      if (rule.node === undefined && rule.from === '__ns') out.namespace = rule.to.startsWith('/') ? rule.to : `/${rule.to}`;
    }
  }
  return out;
}

/** `[node:]from:=to`. */
function splitRule(text: string): { node?: string; from: string; to: string } | undefined {
  const at = text.indexOf(':=');
  if (at < 0) return undefined;
  const lhs = text.slice(0, at);
  const to = text.slice(at + 2);
  const colon = lhs.indexOf(':');
  return colon < 0 ? { from: lhs, to } : { node: lhs.slice(0, colon), from: lhs.slice(colon + 1), to };
}

// ---------------------------------------------------------------------------------------------
// Parameter files.

/** One `<key>: ros__parameters:` section of a parameters file, flattened to dotted names. */
export interface RosParamsSection {
  /** The key as rcl holds it: namespaces joined by `/` (`mbrl_node`, `/robot1/mbrl_node`, `/**`). */
  key: string;
  params: Map<string, unknown>;
  /** The type rcl reads each value as (of the elements, for lists). */
  types: Map<string, RosScalarType>;
}

/** The type rcl gives a YAML scalar: `50` is an integer, `50.0` a double. */
export type RosScalarType = 'bool' | 'integer' | 'double' | 'string';

/**
 * The sections of a ROS 2 parameters YAML, or null when the text has no `ros__parameters`
 * (a plain node configuration). Values are checked as rcl checks them, so a file this accepts
 * does not stop rcl at init: lists hold scalars of one type (`[-2.0, 2.5]`, not `[-2, 2.5]`),
 * never mappings.
 * @param where names the file in errors
 * @throws ValidationError naming the file and the parameter
 */
export function parseRosParams(text: string, where: string): RosParamsSection[] | null {
  const doc = parseDocument(text, { schema: 'yaml-1.1' });
  if (doc.errors.length > 0) throw new ValidationError(where, 'yaml', `not valid YAML (${doc.errors[0].message})`);
  const root = doc.contents;
  if (root === null || !isMap(root) || !hasRosParameters(root)) return null;
  const sections: RosParamsSection[] = [];
  const walk = (map: YamlNode, path: string[]): void => {
    if (!isMap(map)) throw new ValidationError(where, path.join('/') || '(root)', 'expected a mapping of node names to ros__parameters');
    for (const pair of map.items) {
      const key = paramKey(pair.key);
      if (key === 'ros__parameters') {
        if (path.length === 0) throw new ValidationError(where, 'ros__parameters', 'is at the top level; expected it under a node name: mbrl_node: { ros__parameters: { … } } (or /** for every node)');
        const params = new Map<string, unknown>();
        const types = new Map<string, RosScalarType>();
        flatten(pair.value as YamlNode | null, '', params, types, `${where}: ${path.join('/')}`);
        sections.push({ key: sectionKey(path), params, types });
      } else if (isMap(pair.value) && hasRosParameters(pair.value)) {
        walk(pair.value, [...path, key]);
      } else {
        throw new ValidationError(where, [...path, key].join('/'), `has no ros__parameters; expected <node name>: { ros__parameters: { … } } (or a namespace holding such nodes)`);
      }
    }
  };
  walk(root, []);
  return sections;
}

/**
 * A mapping key as rcl reads it: the text as written. YAML 1.1 (the schema that types the values as
 * rcl does) would resolve a plain key such as `on`, `yes` or `no` to a boolean, so `tick: { on: grid }`
 * became `tick.true`; rcl's parser never resolves keys.
 */
function paramKey(key: unknown): string {
  if (isScalar(key)) return typeof key.source === 'string' ? key.source : String(key.value);
  return String(key);
}

function hasRosParameters(node: YamlNode): boolean {
  if (!isMap(node)) return false;
  return node.items.some((p) => (isScalar(p.key) && p.key.value === 'ros__parameters') || (p.value !== null && hasRosParameters(p.value as YamlNode)));
}

function sectionKey(path: string[]): string {
  return path.join('/').replace(/\/{2,}/g, '/');
}

type ScalarKind = RosScalarType | 'null';

function scalarKind(node: YamlNode): ScalarKind {
  if (!isScalar(node)) return 'string';
  const v = node.value;
  if (v === null) return 'null';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number' || typeof v === 'bigint') return /^[-+]?(0|[1-9][0-9_]*|0x[0-9a-fA-F_]+|0o?[0-7_]+)$/.test(node.source ?? String(v)) ? 'integer' : 'double';
  return 'string';
}

/** Nested maps and dotted keys → one flat map of dotted names (later keys replace earlier ones). */
function flatten(node: YamlNode | null, prefix: string, out: Map<string, unknown>, types: Map<string, RosScalarType>, where: string): void {
  if (node !== null && isMap(node)) {
    for (const pair of node.items) {
      const key = paramKey(pair.key);
      flatten(pair.value as YamlNode | null, prefix === '' ? key : `${prefix}.${key}`, out, types, where);
    }
    return;
  }
  const setType = (kind: ScalarKind | undefined): void => {
    types.delete(prefix);
    if (kind !== undefined && kind !== 'null') types.set(prefix, kind);
  };
  if (prefix === '') throw new ValidationError(where, 'ros__parameters', 'expected a mapping of parameter names to values');
  if (node !== null && isSeq(node)) {
    const items = node.items as YamlNode[];
    if (items.some((it) => isMap(it) || isSeq(it))) {
      throw new ValidationError(
        where,
        prefix,
        `a list of ${items.some((it) => isMap(it)) ? 'mappings' : 'lists'} is not a ROS 2 parameter (rcl takes lists of booleans, numbers or strings); ${prefix === 'sensors' ? 'key each sensor by a name instead: sensors: { joint_states: { topic: /joint_states, … } }' : 'write it as a mapping'}`,
      );
    }
    const kinds = new Set(items.map(scalarKind));
    if (kinds.size > 1) {
      const hint =
        kinds.size === 2 && kinds.has('integer') && kinds.has('double')
          ? ' (write every number with a decimal point, e.g. [-2.0, 2.5])'
          : kinds.has('bool') && kinds.has('string')
            ? ' (rcl reads y, n, yes, no, on, off as booleans: quote them, e.g. ["x", "y"])'
            : '';
      throw new ValidationError(where, prefix, `mixes ${[...kinds].join(' and ')} values; rcl takes lists of one type${hint}`);
    }
    out.delete(prefix);
    out.set(prefix, items.map((it) => (isScalar(it) ? it.value : null)));
    setType([...kinds][0]);
    return;
  }
  // rcl refuses `key:` with nothing after it ("No value"); `~` and `null` it reads as strings.
  if (node === null || (isScalar(node) && node.value === null && (node.source ?? '') === '')) {
    throw new ValidationError(where, prefix, 'has no value; rcl refuses empty parameters (write a value, or leave the key out for its default)');
  }
  out.delete(prefix);
  out.set(prefix, isScalar(node) ? node.value : null);
  setType(scalarKind(node));
}

/**
 * Whether the section key `key` applies to the node `fqn`, as rclcpp decides: a leading `/` is
 * added, then `/**` matches any namespace path and `/*` one token.
 * @example rosSectionMatches('/**', '/robot1/mbrl_node') // true
 * @example rosSectionMatches('mbrl_node', '/robot1/mbrl_node') // false: root namespace only
 */
export function rosSectionMatches(key: string, fqn: string): boolean {
  const name = key.startsWith('/') ? key : `/${key}`;
  let re = '';
  for (let i = 0; i < name.length; i++) {
    if (name.startsWith('/**', i)) {
      re += '(/\\w+)*';
      i += 2;
    } else if (name.startsWith('/*', i)) {
      re += '(/\\w+)';
      i += 1;
    } else {
      re += name[i].replace(/[.+?^${}()|[\]\\*]/g, '\\$&');
    }
  }
  return new RegExp(`^${re}$`).test(fqn);
}

// ---------------------------------------------------------------------------------------------
// Loading.

/** What `loadRosNodeConfig` read. */
export interface RosNodeConfig {
  /** The validated configuration; relative paths resolved against the config file. */
  config: NodeConfig;
  /** The node the parameters were selected for. */
  nodeName: string;
  namespace: string;
  /** The names the sensors were keyed by in the file, in order (`nodeConfigToRosParameters` names them so again). */
  sensorKeys: string[];
  /** The effective parameters, flat, as rcl holds them for the node (ROS's own left out). */
  parameters: Map<string, unknown>;
  /** The type rcl reads each of `parameters` as, where a file or `-p` gave it. */
  types: Map<string, RosScalarType>;
}

/** Options of `loadRosNodeConfig`. */
export interface LoadRosNodeConfigOptions {
  /** The node configuration: a ROS 2 parameters YAML or a plain configuration. */
  configFile?: string;
  /** The command line (with its `--ros-args`); default none. */
  argv?: readonly string[];
  /** The node's name when the command line does not remap it. Default: the one node the config file names, else `mbrl_node`. */
  nodeName?: string;
  /** The node's namespace when the command line does not remap it. Default as `nodeName`, else `/`. */
  namespace?: string;
}

/**
 * The node configuration of a ROS 2 launch: the config file (ROS form or plain), then the
 * command line's `--params-file`s and `-p`s, selected for the node as rcl selects them (see the
 * file comment), validated by `parseNodeConfig`. A plain file and no parameters on the command
 * line is exactly `loadNodeConfig(configFile)`.
 * @throws ValidationError naming the file and the key: unreadable or invalid YAML, a value rcl
 *   would refuse, no section for the node, or what `parseNodeConfig` rejects
 * @example
 * // mbrl_node --config robot.params.yaml --ros-args -r __node:=arm --params-file robot.params.yaml
 * const { config } = loadRosNodeConfig({ configFile: 'robot.params.yaml', argv: process.argv.slice(2) });
 */
export function loadRosNodeConfig(options: LoadRosNodeConfigOptions): RosNodeConfig {
  const rosArgs = parseRosArgs(options.argv ?? []);
  const file = options.configFile;
  const base = file === undefined ? null : readConfigFile(file);
  const remapped = rosArgs.nodeName !== undefined || rosArgs.namespace !== undefined;

  // The node's identity: remapped on the command line, given, or the one node the file names.
  let nodeName = rosArgs.nodeName ?? options.nodeName;
  let namespace = rosArgs.namespace ?? options.namespace;
  if (base?.sections) {
    const named = base.sections.filter((s) => !s.key.includes('*'));
    if (named.length === 1 && nodeName === undefined) {
      const parts = named[0].key.split('/').filter(Boolean);
      nodeName = parts[parts.length - 1];
      namespace ??= parts.length > 1 ? `/${parts.slice(0, -1).join('/')}` : '/';
    }
  }
  nodeName ??= NODE_CONFIG_DEFAULTS.ros2.nodeName;
  namespace ??= NODE_CONFIG_DEFAULTS.ros2.namespace;
  const fqn = namespace === '/' ? `/${nodeName}` : `${namespace}/${nodeName}`;

  // Plain file, nothing on the command line: the ordinary loader.
  if (base !== null && base.sections === null && rosArgs.sources.length === 0) {
    const config = loadNodeConfig(file!);
    return { config, nodeName, namespace, sensorKeys: sensorKeysOf(config), parameters: flatParams(nodeConfigToJson(config)), types: new Map() };
  }

  // rcl's parameter table: section key → parameters, later files replacing earlier values.
  const table = new Map<string, Map<string, { value: unknown; type?: RosScalarType }>>();
  const merge = (key: string, params: Map<string, unknown>, types: Map<string, RosScalarType>): void => {
    const into = table.get(key) ?? new Map<string, { value: unknown; type?: RosScalarType }>();
    for (const [k, value] of params) {
      into.delete(k);
      const type = types.get(k);
      into.set(k, type === undefined ? { value } : { value, type });
    }
    table.set(key, into);
  };
  for (const s of base?.sections ?? []) merge(s.key, s.params, s.types);
  for (const src of rosArgs.sources) {
    if (src.kind === 'file') {
      const read = readConfigFile(src.path);
      if (read.sections === null) throw new ValidationError(src.path, '(root)', 'has no ros__parameters; expected a ROS 2 parameters file (<node name>: { ros__parameters: { … } }) after --params-file');
      for (const s of read.sections) merge(s.key, s.params, s.types);
    } else {
      const params = new Map<string, unknown>();
      const types = new Map<string, RosScalarType>();
      const doc = parseDocument(src.value, { schema: 'yaml-1.1' });
      if (doc.errors.length > 0) throw new ValidationError('command line (--ros-args)', `-p ${src.name}`, `the value ${describe(src.value)} is not valid YAML (${doc.errors[0].message})`);
      flatten(doc.contents as YamlNode | null, src.name, params, types, 'command line (--ros-args)');
      merge(src.node === undefined ? '/**' : sectionKey([src.node]), params, types);
    }
  }

  const applied = [...table.keys()].filter((k) => rosSectionMatches(k, fqn));
  if (base?.sections && applied.length === 0) {
    throw new ValidationError(file!, '(root)', `no section applies to the node ${fqn}; expected a key ${fqn}, ${nodeName}${namespace === '/' ? '' : ` (root namespace only)`}, /**/${nodeName} or /** holding ros__parameters; found ${[...table.keys()].join(', ')}${remapped ? '' : ' (the node name comes from -r __node:=NAME, else from the one node the file names)'}`);
  }
  const parameters = new Map<string, unknown>(base !== null && base.sections === null ? flatParams(base.plain) : []);
  const types = new Map<string, RosScalarType>();
  for (const key of applied) {
    for (const [k, { value, type }] of table.get(key)!) {
      if (isReserved(k)) continue;
      parameters.delete(k);
      parameters.set(k, value);
      if (type === undefined) types.delete(k);
      else types.set(k, type);
    }
  }

  const where = file ?? 'ROS parameters (--ros-args)';
  const { raw, sensorKeys } = unflatten(parameters, where);
  const transport = raw.transport;
  if (transport !== null && typeof transport === 'object' && !Array.isArray(transport) && (transport as Record<string, unknown>).kind === 'ros2') {
    const t = transport as Record<string, unknown>;
    t.nodeName ??= nodeName;
    t.namespace ??= namespace;
  }
  const config = parseNodeConfig(raw, where);
  resolveConfigPaths(config, file === undefined ? process.cwd() : dirname(resolve(file)));
  return { config, nodeName, namespace, sensorKeys, parameters, types };
}

function readConfigFile(file: string): { sections: RosParamsSection[] | null; plain: unknown } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ValidationError(file, 'file', `cannot read the parameters file (${err instanceof Error ? err.message : String(err)})`);
  }
  const sections = parseRosParams(text, file);
  if (sections !== null) return { sections, plain: null };
  const doc = parseDocument(text);
  if (doc.errors.length > 0) throw new ValidationError(file, 'yaml', `not valid YAML (${doc.errors[0].message})`);
  return { sections: null, plain: doc.toJS() as unknown };
}

/** A plain configuration object → flat dotted names (lists of mappings, such as the sensors, stay whole). */
function flatParams(obj: unknown): Map<string, unknown> {
  const out = new Map<string, unknown>();
  const walk = (v: unknown, prefix: string): void => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) walk(x, prefix === '' ? k : `${prefix}.${k}`);
    } else if (prefix !== '') {
      out.set(prefix, v);
    }
  };
  walk(obj, '');
  return out;
}

/** Flat dotted names → the nested configuration object; `sensors` keyed by name → the list. */
function unflatten(params: Map<string, unknown>, where: string): { raw: Record<string, unknown>; sensorKeys: string[] } {
  const raw: Record<string, unknown> = {};
  for (const [name, value] of params) {
    const parts = name.split('.');
    let node = raw;
    for (let i = 0; i < parts.length - 1; i++) {
      const next = node[parts[i]];
      if (next === undefined) node[parts[i]] = {};
      else if (next === null || typeof next !== 'object' || Array.isArray(next)) {
        throw new ValidationError(where, name, `${parts.slice(0, i + 1).join('.')} is also set to ${describe(next)}; expected either a value or nested parameters, not both`);
      }
      node = node[parts[i]] as Record<string, unknown>;
    }
    const last = parts[parts.length - 1];
    const existing = node[last];
    if (existing !== null && typeof existing === 'object' && !Array.isArray(existing)) {
      throw new ValidationError(where, name, `also has nested parameters (${Object.keys(existing).map((k) => `${name}.${k}`).join(', ')}); expected either a value or nested parameters, not both`);
    }
    node[last] = value;
  }
  let sensorKeys: string[] = [];
  const sensors = raw.sensors;
  if (sensors !== null && typeof sensors === 'object' && !Array.isArray(sensors)) {
    sensorKeys = Object.keys(sensors);
    raw.sensors = Object.values(sensors);
  } else if (Array.isArray(sensors)) {
    sensorKeys = sensors.map((s, i) => topicKey((s as { topic?: unknown } | null)?.topic, i));
  }
  return { raw, sensorKeys };
}

/** A parameter-name token for a sensor topic: `/robot1/imu` → `robot1_imu`. */
function topicKey(topic: unknown, index: number): string {
  const key = typeof topic === 'string' ? topic.replace(/^\/+/, '').replace(/[^A-Za-z0-9_]/g, '_') : '';
  return /^[A-Za-z_]/.test(key) ? key : `sensor${index}`;
}

function sensorKeysOf(config: NodeConfig): string[] {
  return config.sensors.map((s, i) => topicKey(s.topic, i));
}

// ---------------------------------------------------------------------------------------------
// Out: the parameters the ros2 transport declares.

/**
 * The configuration as ROS 2 parameters: the parameters as written (`written`, from
 * `loadRosNodeConfig`), then `nodeConfigToJson`'s keys flattened to dotted names for the rest
 * (defaults filled in), each sensor under `sensors.<key>.` (the keys of the file it came from,
 * else its topic without the leading `/`). Values a parameter cannot hold are left out: nulls
 * (`refitEverySec: null`), empty lists, lists of mappings inside `algorithm.overrides`.
 * @param options.sensorKeys default: from the topics
 * @param options.written names as rcl holds them for the node; they win over the configuration's
 *   normalised form (`maxRatePerSec: 80` stays 80, not [80]; fields stay as written)
 * @param options.types rcl's types of `written` (`loadRosNodeConfig`'s `types`): a number
 *   written `80.0` is declared a double
 * @example nodeConfigToRosParameters(config)[0] // { name: 'transport.kind', value: 'ros2' }
 */
export function nodeConfigToRosParameters(
  config: NodeConfig,
  options: { sensorKeys?: readonly string[]; written?: ReadonlyMap<string, unknown>; types?: ReadonlyMap<string, RosScalarType> } = {},
): Ros2Parameter[] {
  const sensorKeys = options.sensorKeys ?? sensorKeysOf(config);
  const json = nodeConfigToJson(config);
  const sensors = json.sensors as Array<Record<string, unknown>>;
  const keyed: Record<string, unknown> = {};
  sensors.forEach((s, i) => {
    let key = sensorKeys[i] ?? topicKey(s.topic, i);
    if (key in keyed) key = `${key}_${i}`;
    keyed[key] = s;
  });
  const out: Ros2Parameter[] = [];
  const written = [...(options.written ?? new Map<string, unknown>()).entries()].filter((e): e is [string, RosParamValue] => !isReserved(e[0]) && isParamValue(e[1]));
  for (const [name, value] of written) {
    const type = options.types?.get(name);
    out.push(type === 'double' ? { name, value, type } : { name, value });
  }
  const clash = (name: string): boolean => written.some(([w]) => w === name || name.startsWith(`${w}.`) || w.startsWith(`${name}.`));
  for (const [name, value] of flatParams({ ...json, sensors: keyed })) {
    if (isParamValue(value) && !clash(name)) out.push({ name, value });
  }
  return out;
}

function isParamValue(v: unknown): v is RosParamValue {
  if (typeof v === 'boolean' || typeof v === 'string') return true;
  if (typeof v === 'number') return true;
  if (!Array.isArray(v) || v.length === 0) return false;
  const t = typeof v[0];
  return (t === 'boolean' || t === 'string' || t === 'number') && v.every((x) => typeof x === t);
}

/** Options of `ros2TransportOptions` beyond the configuration. */
export interface Ros2TransportExtras {
  /** The command line rcl reads. Default `process.argv`. */
  argv?: string[];
  /** The sensors' parameter keys (`loadRosNodeConfig`'s `sensorKeys`). */
  sensorKeys?: readonly string[];
  /** The parameters as written (`loadRosNodeConfig`'s `parameters`). */
  written?: ReadonlyMap<string, unknown>;
  /** Their types (`loadRosNodeConfig`'s `types`). */
  types?: ReadonlyMap<string, RosScalarType>;
  /**
   * The lifecycle variant's settings (its `safeCommand` is filled in from the configuration's safe
   * action). A configuration with `transport.lifecycle: true` gets the variant without them.
   */
  lifecycle?: Omit<Ros2LifecycleOptions, 'safeCommand'>;
  onError?: (err: Error) => void;
}

/**
 * The `Ros2TransportOptions` of a configuration with `transport.kind: ros2`: node name and
 * namespace, the configuration as read-only parameters, the action's publisher and, for the
 * lifecycle variant, the safe action as the message held while inactive.
 * @throws ValidationError when the configuration's transport is not `ros2`
 * @example const transport = new Ros2Transport(ros2TransportOptions(config, { argv: process.argv }));
 */
export function ros2TransportOptions(config: NodeConfig, extras: Ros2TransportExtras = {}): Ros2TransportOptions {
  const t = config.transport;
  if (t.kind !== 'ros2') throw new ValidationError('ros2TransportOptions', 'transport.kind', `expected ros2, got ${describe(t.kind)}`);
  const actionQos = config.action.qos === 'sensorData' ? QOS_SENSOR_DATA : QOS_DEFAULT;
  return {
    nodeName: t.nodeName,
    namespace: t.namespace,
    ...(extras.argv ? { argv: extras.argv } : {}),
    parameters: nodeConfigToRosParameters(config, {
      ...(extras.sensorKeys ? { sensorKeys: extras.sensorKeys } : {}),
      ...(extras.written ? { written: extras.written } : {}),
      ...(extras.types ? { types: extras.types } : {}),
    }),
    publications: [{ topic: config.action.topic, type: config.action.type, qos: actionQos }],
    ...(extras.lifecycle || t.lifecycle
      ? { lifecycle: { ...extras.lifecycle, safeCommand: { topic: config.action.topic, type: config.action.type, data: toActionMessage(config.action)(config.safety.safeAction), qos: actionQos } } }
      : {}),
    ...(extras.onError ? { onError: extras.onError } : {}),
  };
}
