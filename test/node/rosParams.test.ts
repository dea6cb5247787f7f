// The node configuration as ROS 2 parameters (rosParams.ts), and the ROS packaging checked without
// ROS: the shipped parameters file validates; dotted and nested names agree; sections, wildcards
// and command-line overrides apply as rcl/rclcpp apply them; the launch files (the Python one
// read with python3's ast, the XML one with python3's ElementTree) declare arguments whose
// command line `mbrl run` and the loader accept; package.xml, CMakeLists.txt and the bin/mbrl_node
// wrapper fit together.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as loadYaml, stringify } from 'yaml';
import { parseCommand } from '../../src/cli/args.js';
import { runCommand } from '../../src/cli/commands/run.js';
import { ValidationError } from '../../src/core/errors.js';
import { loadNodeConfig, nodeConfigToJson, type NodeConfig } from '../../src/node/config.js';
import { loadRosNodeConfig, nodeConfigToRosParameters, parseRosArgs, ros2TransportOptions, rosSectionMatches } from '../../src/node/rosParams.js';

const ROOT = resolve(import.meta.dirname, '../..');
const PARAMS_FILE = join(ROOT, 'launch/mbrl_node.params.yaml');
const TMP = mkdtempSync(join(tmpdir(), 'mbrl-rosparams-'));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));

let fileNo = 0;
/** Writes `text` to a fresh file and returns its path. */
function file(text: string, name = `p${fileNo++}.yaml`): string {
  const p = join(TMP, name);
  writeFileSync(p, text);
  return p;
}

/** The shipped parameters, as a plain object (the ros__parameters of its one section). */
function shippedParams(): Record<string, unknown> {
  return (loadYaml(readFileSync(PARAMS_FILE, 'utf8')) as Record<string, { ros__parameters: Record<string, unknown> }>)['/**'].ros__parameters;
}

/** The config without what legitimately differs between two files of the same node. */
function comparable(c: NodeConfig): Record<string, unknown> {
  const { transport: _t, checkpointDir: _c, ...rest } = nodeConfigToJson(c);
  return rest;
}

describe('parseRosArgs', () => {
  it('splits the program arguments from the --ros-args sections, as rcl does', () => {
    const a = parseRosArgs([
      '--config', 'a.yaml',
      '--ros-args', '-r', '__node:=arm', '-r', '__ns:=robot1', '--params-file', 'a.yaml', '-p', 'controlPeriodMs:=20', '--log-level', 'debug', '--enable-stdout-logs', '--',
      '--steps', '10',
      '--ros-args', '--remap', 'arm:/cmd_vel:=/r/cmd_vel', '--param', 'learner.refitEverySec:=30', '--frobnicate',
    ]);
    expect(a.args).toEqual(['--config', 'a.yaml', '--steps', '10']);
    expect(a.nodeName).toBe('arm');
    expect(a.namespace).toBe('/robot1');
    expect(a.sources).toEqual([
      { kind: 'file', path: 'a.yaml' },
      { kind: 'param', name: 'controlPeriodMs', value: '20' },
      { kind: 'param', name: 'learner.refitEverySec', value: '30' },
    ]);
    expect(a.remaps).toEqual([
      { from: '__node', to: 'arm' },
      { from: '__ns', to: 'robot1' },
      { node: 'arm', from: '/cmd_vel', to: '/r/cmd_vel' },
    ]);
    expect(a.unknown).toEqual(['--frobnicate']);
    expect(a.rosArgs).toContain('--log-level');
  });

  it('names the flag when its value is missing or malformed', () => {
    expect(() => parseRosArgs(['--ros-args', '--params-file'])).toThrow(/--params-file: expected a value/);
    expect(() => parseRosArgs(['--ros-args', '-p', 'controlPeriodMs=20'])).toThrow(/-p controlPeriodMs=20: expected name:=value/);
    expect(() => parseRosArgs(['--ros-args', '-r', '/a:='])).toThrow(ValidationError);
  });
});

describe('the shipped parameters file', () => {
  it('parses and validates through parseNodeConfig, as the same node as launch/pendulum_mqtt.yaml', () => {
    const { config, nodeName, namespace, sensorKeys } = loadRosNodeConfig({ configFile: PARAMS_FILE });
    expect(config.transport).toEqual({ kind: 'ros2', nodeName: 'mbrl_node', namespace: '/', lifecycle: false });
    expect([nodeName, namespace, sensorKeys]).toEqual(['mbrl_node', '/', ['joint_states']]);
    expect(config.obsDim).toBe(3);
    expect(config.actDim).toBe(1);
    expect(config.checkpointDir).toBe(join(ROOT, 'launch/runs/mbrl_node'));
    // Everything but the transport and the directory is the MQTT example's Pendulum node.
    expect(comparable(config)).toEqual(comparable(loadNodeConfig(join(ROOT, 'launch/pendulum_mqtt.yaml'))));
  });

  it('is a file rcl accepts: no lists of mappings, no mixed lists, one node section', () => {
    const walk = (v: unknown, path: string): void => {
      if (Array.isArray(v)) {
        expect(v.every((x) => typeof x !== 'object'), `${path} holds only scalars`).toBe(true);
        expect(new Set(v.map((x) => (typeof x === 'number' ? 'number' : typeof x))).size, `${path} is of one type`).toBeLessThanOrEqual(1);
      } else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, `${path}.${k}`);
    };
    walk(shippedParams(), 'ros__parameters');
    // Decimal points where the values are doubles: rcl would read [-2] as an integer list.
    expect(readFileSync(PARAMS_FILE, 'utf8')).toMatch(/low: \[-2\.0\]/);
  });
});

describe('loadRosNodeConfig', () => {
  it('reads dotted names and nested maps as the same parameters', () => {
    const nested = loadRosNodeConfig({ configFile: PARAMS_FILE });
    const flat = nested.parameters;
    // The same parameters, every one written as a dotted name in one flat section.
    const dotted = file(`mbrl_node:\n  ros__parameters:\n${[...flat].map(([k, v]) => `    ${k}: ${JSON.stringify(v)}`).join('\n')}\n`, 'dotted.yaml');
    const mixed = file(
      [
        'mbrl_node:',
        '  ros__parameters:',
        '    transport.kind: ros2',
        '    controlPeriodMs: 50',
        '    sensors.joint_states: { topic: /joint_states, type: sensor_msgs/msg/JointState, maxAgeMs: 100 }',
        '    sensors.joint_states.fields: ["position[0..2]"]',
        '    action: { topic: /mbrl/action, type: std_msgs/msg/Float64MultiArray, fields: ["data[0]"] }',
        '    actionBounds: { low: [-2.0], high: [2.0] }',
        '    safety.safeAction: [0.0]',
        '    safety.maxRatePerSec: 80.0',
        '    safety.watchdogTimeoutMs: 250',
        '    safety.estop.topic: /estop',
        '    reward: { kind: task, task: Pendulum-v1 }',
        '    controller.kind: planner',
        '    algorithm: { kind: pets, overrides.seed: 0, overrides.particles: 4 }',
        '    algorithm.overrides.planner: { populationSize: 100, numElites: 10, numIterations: 3, horizon: 20 }',
        '    learner: { refitEveryTransitions: 100, refitEverySec: 60 }',
        '    checkpointDir: runs/mbrl_node',
        '    buffer.segmentSize: 200',
      ].join('\n'),
      'mixed.yaml',
    );
    const a = loadRosNodeConfig({ configFile: dotted });
    const b = loadRosNodeConfig({ configFile: mixed });
    expect(a.config).toEqual({ ...nested.config, checkpointDir: join(TMP, 'runs/mbrl_node') });
    expect(b.config).toEqual(a.config);
    expect(a.sensorKeys).toEqual(['joint_states']);
  });

  it('keeps keys as written, as rcl does: tick.on is not YAML 1.1\'s boolean `on`', () => {
    const text = readFileSync(PARAMS_FILE, 'utf8').replace(/tick:\n(\s+)on: grid[^\n]*/, 'tick:\n$1on: sample\n$1topic: /joint_states');
    expect(text).toContain('on: sample');
    const { config, parameters } = loadRosNodeConfig({ configFile: file(text) });
    expect(parameters.get('tick.on')).toBe('sample');
    expect([...parameters.keys()].some((k) => k.startsWith('tick.true'))).toBe(false);
    expect(config.tick).toEqual({ on: 'sample', topic: '/joint_states', minIntervalMs: 25, fallbackAfterMs: 250 });
    // Values are still typed as rcl types them: `on` as a value is a boolean there.
    const off = loadRosNodeConfig({ configFile: file(readFileSync(PARAMS_FILE, 'utf8').replace(/lifecycle: false/, 'lifecycle: on')) });
    expect(off.config.transport).toMatchObject({ kind: 'ros2', lifecycle: true });
  });

  it('resolves relative paths against the parameters file as loadNodeConfig does (MQTT password and TLS files too)', () => {
    const params = { ...shippedParams(), transport: { kind: 'mqtt', url: 'mqtts://127.0.0.1:8883', username: 'robot', passwordFile: 'secrets/mqtt.txt', tls: { caFile: 'certs/ca.pem' } } };
    const loaded = loadRosNodeConfig({ configFile: file(stringify({ '/**': { ros__parameters: params } })) });
    expect(loaded.config.transport).toMatchObject({ kind: 'mqtt', passwordFile: join(TMP, 'secrets/mqtt.txt'), tls: { caFile: join(TMP, 'certs/ca.pem') } });
    expect(loaded.config.checkpointDir).toBe(join(TMP, 'runs/mbrl_node'));
  });

  it('applies sections as rclcpp does: wildcards, namespaces, first-seen order, later files', () => {
    const base = stringify({ 'mbrl_node': { ros__parameters: shippedParams() } });
    const ours = file(base);
    // Remapped name: the mbrl_node section no longer applies, and the error says what would.
    expect(() => loadRosNodeConfig({ configFile: ours, argv: ['--ros-args', '-r', '__node:=arm'] })).toThrow(/no section applies to the node \/arm.*found mbrl_node/);
    // `mbrl_node:` is the root namespace only; `/**/mbrl_node` any namespace.
    expect(() => loadRosNodeConfig({ configFile: ours, argv: ['--ros-args', '-r', '__ns:=/robot1'] })).toThrow(/\/robot1\/mbrl_node/);
    const anyNs = file(stringify({ '/**/mbrl_node': { ros__parameters: shippedParams() } }));
    expect(loadRosNodeConfig({ configFile: anyNs, argv: ['--ros-args', '-r', '__ns:=/robot1'] }).config.transport).toEqual({ kind: 'ros2', nodeName: 'mbrl_node', namespace: '/robot1', lifecycle: false });
    // Nested namespace keys, and the one named node as the default identity.
    const nestedNs = file(stringify({ '/robot1': { arm: { ros__parameters: shippedParams() } } }));
    const n = loadRosNodeConfig({ configFile: nestedNs });
    expect([n.nodeName, n.namespace, n.config.transport]).toEqual(['arm', '/robot1', { kind: 'ros2', nodeName: 'arm', namespace: '/robot1', lifecycle: false }]);

    // Order: sections in the order first seen, later ones win: /** then mbrl_node → mbrl_node's.
    const twoA = file(stringify({ '/**': { ros__parameters: { ...shippedParams(), controlPeriodMs: 40 } }, mbrl_node: { ros__parameters: { controlPeriodMs: 20 } } }));
    expect(loadRosNodeConfig({ configFile: twoA }).config.controlPeriodMs).toBe(20);
    const twoB = file(stringify({ mbrl_node: { ros__parameters: { controlPeriodMs: 20 } }, '/**': { ros__parameters: { ...shippedParams(), controlPeriodMs: 40 } } }));
    expect(loadRosNodeConfig({ configFile: twoB }).config.controlPeriodMs).toBe(40);

    // A later --params-file replaces values of the same section; -p belongs to /**.
    const later = file(stringify({ '/**': { ros__parameters: { learner: { refitEverySec: 30 } } } }));
    const c = loadRosNodeConfig({ configFile: PARAMS_FILE, argv: ['--ros-args', '--params-file', PARAMS_FILE, '--params-file', later, '-p', 'controlPeriodMs:=25', '-p', 'actionBounds.low:=[-1.5]'] }).config;
    expect([c.learner.refitEverySec, c.controlPeriodMs, c.actionBounds.low]).toEqual([30, 25, [-1.5]]);
    // The launch files' extra file, keyed by the node's full name (launch_ros does so).
    const launchExtra = file(stringify({ '/mbrl_node': { ros__parameters: { checkpointDir: '/var/lib/mbrl', use_sim_time: true } } }));
    const l = loadRosNodeConfig({ configFile: PARAMS_FILE, argv: ['--ros-args', '-r', '__node:=mbrl_node', '--params-file', PARAMS_FILE, '--params-file', launchExtra] });
    expect(l.config.checkpointDir).toBe('/var/lib/mbrl');
    expect(l.parameters.has('use_sim_time')).toBe(false); // rcl's own, not the node configuration
  });

  it('matches section keys as rclcpp: a leading / added, /** any path, /* one token', () => {
    expect(rosSectionMatches('/**', '/mbrl_node')).toBe(true);
    expect(rosSectionMatches('/**', '/a/b/mbrl_node')).toBe(true);
    expect(rosSectionMatches('mbrl_node', '/mbrl_node')).toBe(true);
    expect(rosSectionMatches('mbrl_node', '/a/mbrl_node')).toBe(false);
    expect(rosSectionMatches('/*/mbrl_node', '/a/mbrl_node')).toBe(true);
    expect(rosSectionMatches('/*/mbrl_node', '/a/b/mbrl_node')).toBe(false);
    expect(rosSectionMatches('/**/mbrl_node', '/mbrl_node')).toBe(true);
    expect(rosSectionMatches('/**/mbrl_node', '/a/b/other')).toBe(false);
  });

  it('refuses what rcl would refuse at init, naming the parameter and the fix', () => {
    const withList = file('mbrl_node:\n  ros__parameters:\n    sensors:\n      - { topic: /joint_states, type: sensor_msgs/msg/JointState, fields: ["position[0..2]"] }\n');
    expect(() => loadRosNodeConfig({ configFile: withList })).toThrow(/sensors: a list of mappings is not a ROS 2 parameter.*sensors: \{ joint_states:/);
    expect(() => loadRosNodeConfig({ configFile: file('mbrl_node:\n  ros__parameters:\n    actionBounds: { low: [-2, 2.5] }\n') })).toThrow(/actionBounds\.low: mixes integer and double values.*-2\.0, 2\.5/);
    expect(() => loadRosNodeConfig({ configFile: file('mbrl_node:\n  ros__parameters:\n    fields: [a, 1]\n') })).toThrow(/fields: mixes string and integer/);
    expect(() => loadRosNodeConfig({ configFile: file('mbrl_node:\n  ros__parameters:\n    fields: [x, y]\n') })).toThrow(/fields: mixes string and bool.*quote them/);
    expect(() => loadRosNodeConfig({ configFile: file('mbrl_node:\n  ros__parameters:\n    checkpointDir:\n') })).toThrow(/checkpointDir: has no value/);
    expect(() => loadRosNodeConfig({ configFile: file('mbrl_node:\n  ros__parameters:\n    learner: 5\n    learner.refitEverySec: 3\n') })).toThrow(/learner.*either a value or nested parameters/);
    expect(() => loadRosNodeConfig({ configFile: file('ros__parameters:\n  controlPeriodMs: 50\n') })).toThrow(/top level/);
    expect(() => loadRosNodeConfig({ configFile: file('mbrl_node:\n  ros__parameters: {}\nother: { x: 1 }\n') })).toThrow(/other: has no ros__parameters/);
    // Validation errors name the file and the key.
    expect(() => loadRosNodeConfig({ configFile: PARAMS_FILE, argv: ['--ros-args', '-p', 'controlPeriodMs:=-5'] })).toThrow(/mbrl_node\.params\.yaml: controlPeriodMs: expected a number > 0/);
    expect(() => loadRosNodeConfig({ configFile: join(TMP, 'absent.yaml') })).toThrow(/absent\.yaml: file: cannot read/);
  });

  it('a plain configuration is loadNodeConfig, and takes -p overrides', () => {
    const plain = join(ROOT, 'launch/pendulum_sim.yaml');
    expect(loadRosNodeConfig({ configFile: plain }).config).toEqual(loadNodeConfig(plain));
    const c = loadRosNodeConfig({ configFile: plain, argv: ['--ros-args', '-p', 'controlPeriodMs:=25', '-p', 'learner.refitEveryTransitions:=100'] }).config;
    expect([c.controlPeriodMs, c.learner.refitEveryTransitions, c.checkpointDir]).toEqual([25, 100, loadNodeConfig(plain).checkpointDir]);
    expect(() => loadRosNodeConfig({ configFile: plain, argv: ['--ros-args', '--params-file', plain] })).toThrow(/pendulum_sim\.yaml: \(root\): has no ros__parameters/);
  });
});

describe('nodeConfigToRosParameters', () => {
  it('writes the parameters back as a file that loads to the same configuration', () => {
    const loaded = loadRosNodeConfig({ configFile: PARAMS_FILE });
    const params = nodeConfigToRosParameters(loaded.config, { written: loaded.parameters, types: loaded.types, sensorKeys: loaded.sensorKeys });
    const names = params.map((p) => p.name);
    expect(new Set(names).size).toBe(names.length);
    expect(params.find((p) => p.name === 'safety.maxRatePerSec')).toEqual({ name: 'safety.maxRatePerSec', value: 80, type: 'double' });
    expect(params.find((p) => p.name === 'learner.timeoutSec')).toEqual({ name: 'learner.timeoutSec', value: 600 }); // a default, declared too
    // Doubles written with a decimal point, as rcl needs them.
    const yamlValue = (v: unknown, double: boolean): string =>
      Array.isArray(v) ? `[${v.map((x) => yamlValue(x, double)).join(', ')}]` : double && Number.isInteger(v) ? `${String(v)}.0` : JSON.stringify(v);
    const back = file(`mbrl_node:\n  ros__parameters:\n${params.map((p) => `    ${p.name}: ${yamlValue(p.value, p.type === 'double')}`).join('\n')}\n`);
    const again = loadRosNodeConfig({ configFile: back });
    expect(again.config).toEqual({ ...loaded.config, checkpointDir: join(TMP, 'runs/mbrl_node') });
  });

  it('from a configuration alone: sensors keyed by topic, values a parameter cannot hold left out', () => {
    const config = loadNodeConfig(join(ROOT, 'launch/pendulum_sim.yaml'));
    config.learner.refitEverySec = null;
    const params = new Map(nodeConfigToRosParameters(config).map((p) => [p.name, p.value]));
    expect(params.get('sensors.joint_states.topic')).toBe('/joint_states');
    expect(params.get('sensors.joint_states.fields')).toEqual(['sensor_msgs/msg/JointState.position[0..2]']);
    expect(params.get('transport.env')).toBe('Pendulum-v1');
    expect(params.has('learner.refitEverySec')).toBe(false);
    expect(params.has('transport.physics')).toBe(false);
  });

  it('ros2TransportOptions: node identity, read-only parameters, the action publisher, the safe action held', () => {
    const loaded = loadRosNodeConfig({ configFile: PARAMS_FILE, argv: ['--ros-args', '-r', '__node:=pendulum', '-r', '__ns:=/lab'] });
    const o = ros2TransportOptions(loaded.config, { argv: ['x'], written: loaded.parameters, lifecycle: { controlPeriodMs: 50 } });
    expect([o.nodeName, o.namespace, o.argv]).toEqual(['pendulum', '/lab', ['x']]);
    expect(o.publications).toEqual([{ topic: '/mbrl/action', type: 'std_msgs/msg/Float64MultiArray', qos: { reliability: 'reliable', durability: 'volatile', depth: 10 } }]);
    expect(o.lifecycle?.safeCommand).toMatchObject({ topic: '/mbrl/action', type: 'std_msgs/msg/Float64MultiArray', data: { data: [0] } });
    expect(o.parameters?.every((p) => p.readOnly === undefined)).toBe(true); // read-only by default
    expect(() => ros2TransportOptions(loadNodeConfig(join(ROOT, 'launch/pendulum_sim.yaml')))).toThrow(/transport\.kind: expected ros2, got "sim"/);
  });

  it('transport.lifecycle: true makes the node a lifecycle node holding the safe action; the default is a plain node', () => {
    const plain = loadRosNodeConfig({ configFile: PARAMS_FILE });
    expect(plain.config.transport).toMatchObject({ kind: 'ros2', lifecycle: false });
    expect(ros2TransportOptions(plain.config).lifecycle).toBeUndefined();
    const managed = loadRosNodeConfig({ configFile: PARAMS_FILE, argv: ['--ros-args', '-p', 'transport.lifecycle:=true'] });
    expect(managed.config.transport).toMatchObject({ kind: 'ros2', lifecycle: true });
    expect(ros2TransportOptions(managed.config).lifecycle).toMatchObject({
      safeCommand: { topic: '/mbrl/action', type: 'std_msgs/msg/Float64MultiArray', data: { data: [0] }, qos: { reliability: 'reliable', durability: 'volatile', depth: 10 } },
    });
    expect(() => loadRosNodeConfig({ configFile: PARAMS_FILE, argv: ['--ros-args', '-p', 'transport.lifecycle:=1'] })).toThrow(/transport\.lifecycle/);
  });
});

// ---------------------------------------------------------------------------------------------
// Launch files and packaging.

const PYTHON = spawnSync('python3', ['--version']).status === 0 ? 'python3' : undefined;
if (!PYTHON) console.warn('SKIPPED: python3 not found: the launch file checks read the .py and .xml with it');

/** python3's ast: the launch description's DeclareLaunchArgument and Node calls, as data. */
const PY_EXTRACT = String.raw`
import ast, json, sys
tree = ast.parse(open(sys.argv[1]).read())
def ev(n):
    if isinstance(n, ast.Constant): return n.value
    if isinstance(n, (ast.List, ast.Tuple)): return [ev(e) for e in n.elts]
    if isinstance(n, ast.Dict): return {'$dict': [[ev(k), ev(v)] for k, v in zip(n.keys, n.values)]}
    if isinstance(n, ast.Name): return {'$name': n.id}
    if isinstance(n, ast.Call):
        return {'$call': ast.unparse(n.func), 'args': [ev(a) for a in n.args], 'kwargs': {k.arg: ev(k.value) for k in n.keywords}}
    return {'$expr': ast.unparse(n)}
fn = next(f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == 'generate_launch_description')
assigns = {t.targets[0].id: ev(t.value) for t in ast.walk(fn) if isinstance(t, ast.Assign) and isinstance(t.targets[0], ast.Name)}
calls = [ev(c) for c in ast.walk(fn) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name) and c.func.id in ('DeclareLaunchArgument', 'Node')]
imports = {a.asname or a.name: n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
print(json.dumps({'assigns': assigns, 'calls': calls, 'imports': imports}))
`;

/** python3's ElementTree: an XML file as nested { tag, attrs, children }. */
const PY_XML = String.raw`
import json, sys, xml.etree.ElementTree as ET
def el(e): return {'tag': e.tag, 'attrs': dict(e.attrib), 'text': (e.text or '').strip(), 'children': [el(c) for c in e]}
print(json.dumps(el(ET.parse(sys.argv[1]).getroot())))
`;

interface XmlEl {
  tag: string;
  attrs: Record<string, string>;
  text: string;
  children: XmlEl[];
}
const readXml = (path: string): XmlEl => JSON.parse(execFileSync(PYTHON!, ['-c', PY_XML, path]).toString()) as XmlEl;

type PyValue = string | number | boolean | null | PyValue[] | { $name: string } | { $call: string; args: PyValue[]; kwargs: Record<string, PyValue> } | { $dict: [PyValue, PyValue][] } | { $expr: string };

/** What an installed mbrl_node looks like to launch: FindPackageShare → <prefix>/share/mbrl_node, which CMake fills from the repository. */
const SHARE = join(TMP, 'install/share/mbrl_node');
const HOME = '/home/robot';

/** Evaluates the launch substitutions the launch files use. */
function evalPy(v: PyValue, configs: Record<string, string>, assigns: Record<string, PyValue>): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map((x) => evalPy(x, configs, assigns));
  if ('$name' in v) return evalPy(assigns[v.$name], configs, assigns);
  if ('$dict' in v) return Object.fromEntries(v.$dict.map(([k, x]) => [evalPy(k, configs, assigns), evalPy(x, configs, assigns)]));
  if ('$expr' in v) throw new Error(`launch file: unsupported expression ${v.$expr}`);
  const arg = (i: number) => evalPy(v.args[i], configs, assigns);
  switch (v.$call) {
    case 'LaunchConfiguration':
      if (!(String(arg(0)) in configs)) throw new Error(`LaunchConfiguration('${String(arg(0))}') is not declared`);
      return configs[String(arg(0))];
    case 'PathJoinSubstitution':
      return join(...(arg(0) as string[]));
    case 'FindPackageShare':
      expect(arg(0)).toBe('mbrl_node');
      return SHARE;
    case 'EnvironmentVariable':
      return { HOME }[String(arg(0))] ?? evalPy(v.kwargs.default_value ?? '', configs, assigns);
    default:
      throw new Error(`launch file: unsupported call ${v.$call}`);
  }
}

/**
 * The command line launch_ros builds for a Node (launch_ros/actions/node.py, Humble): the
 * executable, its arguments, then `--ros-args -r __node:= -r __ns:=` and one `--params-file` per
 * parameters entry (a dict → a temporary file keyed by the node's full name).
 */
function launchRosCommand(node: { arguments: string[]; name: string; namespace: string; parameters: Array<string | Record<string, unknown>> }): string[] {
  const ns = node.namespace === '' ? '/' : node.namespace.startsWith('/') ? node.namespace : `/${node.namespace}`;
  const fqn = ns === '/' ? `/${node.name}` : `${ns}/${node.name}`;
  const cmd = [...node.arguments, '--ros-args', '-r', `__node:=${node.name}`, '-r', `__ns:=${ns}`];
  for (const p of node.parameters) {
    if (typeof p === 'string') cmd.push('--params-file', p);
    else {
      // launch evaluates substitution values as YAML (so 'false' is a bool).
      const values = Object.fromEntries(Object.entries(p).map(([k, v]) => [k, typeof v === 'string' ? loadYaml(v) : v]));
      cmd.push('--params-file', file(stringify({ [fqn]: { ros__parameters: values } }), `launch_params_${fileNo++}.yaml`));
    }
  }
  return cmd;
}

/** Install the launch directory as CMakeLists.txt does (launch/ → share/mbrl_node/launch/). */
function installShare(): void {
  mkdirSync(join(SHARE, 'launch'), { recursive: true });
  for (const f of ['mbrl_node.params.yaml', 'mbrl_node.launch.py', 'mbrl_node.launch.xml']) copyFileSync(join(ROOT, 'launch', f), join(SHARE, 'launch', f));
}

/** The checks both launch files must pass with their command line. */
function checkCommandLine(cmd: string[], expected: { checkpointDir: string; nodeName: string; namespace: string }): void {
  const { args, unknown } = parseRosArgs(cmd);
  expect(unknown).toEqual([]);
  // The program's part is what `mbrl run` accepts.
  const parsed = parseCommand(runCommand, args);
  expect(parsed.values.config).toBe(join(SHARE, 'launch/mbrl_node.params.yaml'));
  // The whole line is what the loader turns into a valid configuration.
  const loaded = loadRosNodeConfig({ configFile: parsed.values.config as string, argv: cmd });
  expect(loaded.config.checkpointDir).toBe(expected.checkpointDir);
  expect(loaded.config.transport).toEqual({ kind: 'ros2', nodeName: expected.nodeName, namespace: expected.namespace, lifecycle: false });
  expect(loaded.config.controlPeriodMs).toBe(50);
}

describe.skipIf(!PYTHON)('launch files', () => {
  const DECLARED = ['config', 'node_name', 'namespace', 'checkpoint_dir', 'use_sim_time'];

  it('mbrl_node.launch.py: its arguments give a command line the node accepts', () => {
    installShare();
    const py = JSON.parse(execFileSync(PYTHON!, ['-c', PY_EXTRACT, join(ROOT, 'launch/mbrl_node.launch.py')]).toString()) as {
      assigns: Record<string, PyValue>;
      calls: Array<{ $call: string; args: PyValue[]; kwargs: Record<string, PyValue> }>;
      imports: Record<string, string>;
    };
    expect(py.imports).toMatchObject({ LaunchDescription: 'launch', DeclareLaunchArgument: 'launch.actions', LaunchConfiguration: 'launch.substitutions', Node: 'launch_ros.actions', FindPackageShare: 'launch_ros.substitutions' });
    const declared = py.calls.filter((c) => c.$call === 'DeclareLaunchArgument');
    expect(declared.map((d) => d.args[0])).toEqual(DECLARED);
    expect(declared.every((d) => typeof d.kwargs.description === 'string')).toBe(true);
    const run = (overrides: Record<string, string>) => {
      const configs: Record<string, string> = {};
      for (const d of declared) configs[String(d.args[0])] = String(evalPy(d.kwargs.default_value, configs, py.assigns));
      Object.assign(configs, overrides);
      const [node] = py.calls.filter((c) => c.$call === 'Node');
      const k = (name: string) => evalPy(node.kwargs[name], configs, py.assigns);
      expect([k('package'), k('executable')]).toEqual(['mbrl_node', 'mbrl_node']);
      return launchRosCommand({ arguments: k('arguments') as string[], name: k('name') as string, namespace: k('namespace') as string, parameters: k('parameters') as Array<string | Record<string, unknown>> });
    };
    const cmd = run({});
    expect(cmd.slice(0, 2)).toEqual(['--config', join(SHARE, 'launch/mbrl_node.params.yaml')]);
    checkCommandLine(cmd, { checkpointDir: `${HOME}/.ros/mbrl_node`, nodeName: 'mbrl_node', namespace: '/' });
    checkCommandLine(run({ node_name: 'arm', namespace: '/robot1', checkpoint_dir: '/data/arm' }), { checkpointDir: '/data/arm', nodeName: 'arm', namespace: '/robot1' });
  });

  it('mbrl_node.launch.xml: the same arguments, defaults and command line', () => {
    installShare();
    const xml = readXml(join(ROOT, 'launch/mbrl_node.launch.xml'));
    expect(xml.tag).toBe('launch');
    const args = xml.children.filter((c) => c.tag === 'arg');
    expect(args.map((a) => a.attrs.name)).toEqual(DECLARED);
    const sub = (text: string, configs: Record<string, string>): string =>
      text.replace(/\$\((var|env|find-pkg-share) ([^)\s]+)\)/g, (_m, kind: string, name: string) => {
        if (kind === 'var') {
          if (!(name in configs)) throw new Error(`$(var ${name}) is not declared`);
          return configs[name];
        }
        if (kind === 'env') return { HOME }[name] ?? '';
        expect(name).toBe('mbrl_node');
        return SHARE;
      });
    const run = (overrides: Record<string, string>) => {
      const configs: Record<string, string> = {};
      for (const a of args) configs[a.attrs.name] = sub(a.attrs.default, configs);
      Object.assign(configs, overrides);
      const [node] = xml.children.filter((c) => c.tag === 'node');
      expect([node.attrs.pkg, node.attrs.exec]).toEqual(['mbrl_node', 'mbrl_node']);
      // <param from> is a file; each <param name value> a dict (launch_ros parses them so).
      const parameters = node.children.map((p) => (p.attrs.from !== undefined ? sub(p.attrs.from, configs) : { [p.attrs.name]: sub(p.attrs.value, configs) }));
      return launchRosCommand({ arguments: sub(node.attrs.args, configs).split(/\s+/), name: sub(node.attrs.name, configs), namespace: sub(node.attrs.namespace, configs), parameters });
    };
    checkCommandLine(run({}), { checkpointDir: `${HOME}/.ros/mbrl_node`, nodeName: 'mbrl_node', namespace: '/' });
    checkCommandLine(run({ node_name: 'arm', namespace: '/robot1', checkpoint_dir: '/data/arm' }), { checkpointDir: '/data/arm', nodeName: 'arm', namespace: '/robot1' });
  });
});

describe.skipIf(!PYTHON)('ament package', () => {
  it('package.xml is well-formed format 3, named as the launch files say, versioned as package.json', () => {
    const pkg = readXml(join(ROOT, 'package.xml'));
    const text = (tag: string) => pkg.children.filter((c) => c.tag === tag).map((c) => c.text);
    expect(pkg.tag).toBe('package');
    expect(pkg.attrs.format).toBe('3');
    expect(text('name')).toEqual(['mbrl_node']);
    expect(text('version')).toEqual([(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version]);
    expect(text('license')).toEqual(['Apache-2.0']);
    expect(pkg.children.find((c) => c.tag === 'maintainer')?.attrs.email).toMatch(/@/);
    expect(text('buildtool_depend')).toEqual(['ament_cmake']);
    expect(text('exec_depend')).toEqual(expect.arrayContaining(['nodejs', 'launch_ros', 'launch_xml', 'sensor_msgs', 'diagnostic_msgs', 'lifecycle_msgs']));
    const build = pkg.children.find((c) => c.tag === 'export')?.children.find((c) => c.tag === 'build_type');
    expect(build?.text).toBe('ament_cmake');
  });

  it('CMakeLists.txt installs the wrapper as lib/mbrl_node/mbrl_node, the launch files and the npm package', () => {
    const cmake = readFileSync(join(ROOT, 'CMakeLists.txt'), 'utf8');
    expect(cmake).toMatch(/^project\(mbrl_node\b/m);
    expect(cmake).toMatch(/find_package\(ament_cmake REQUIRED\)/);
    expect(cmake).toMatch(/install\(PROGRAMS bin\/mbrl_node DESTINATION lib\/\$\{PROJECT_NAME\}\)/);
    expect(cmake).toMatch(/install\(DIRECTORY launch\/ DESTINATION share\/\$\{PROJECT_NAME\}\/launch\)/);
    expect(cmake).toMatch(/install\(DIRECTORY bin dist node_modules models\s+DESTINATION share\/\$\{PROJECT_NAME\}\/node/);
    expect(cmake).toMatch(/^ament_package\(\)/m);
  });

  it('bin/mbrl_node runs `mbrl run` with its arguments, installed by colcon or in the source tree', () => {
    const wrapper = join(ROOT, 'bin/mbrl_node');
    expect(statSync(wrapper).mode & 0o111).not.toBe(0);
    expect(readFileSync(wrapper, 'utf8').split('\n')[0]).toBe('#!/bin/sh');
    expect(spawnSync('sh', ['-n', wrapper]).status).toBe(0);
    // A stand-in mbrl.js that prints its arguments, laid out as colcon installs the package.
    const fake = "process.stdout.write(JSON.stringify(process.argv.slice(2)))";
    const prefix = join(TMP, 'prefix');
    mkdirSync(join(prefix, 'lib/mbrl_node'), { recursive: true });
    mkdirSync(join(prefix, 'share/mbrl_node/node/bin'), { recursive: true });
    copyFileSync(wrapper, join(prefix, 'lib/mbrl_node/mbrl_node'));
    chmodSync(join(prefix, 'lib/mbrl_node/mbrl_node'), 0o755);
    writeFileSync(join(prefix, 'share/mbrl_node/node/bin/mbrl.js'), fake);
    const env = { PATH: `${dirname(process.execPath)}:/usr/bin:/bin` };
    const argv = ['--config', '/x y/p.yaml', '--ros-args', '-r', '__node:=arm'];
    const installed = spawnSync(join(prefix, 'lib/mbrl_node/mbrl_node'), argv, { env, encoding: 'utf8' });
    expect(installed.stderr).toBe('');
    expect(JSON.parse(installed.stdout)).toEqual(['run', ...argv]);
    // In a source checkout: next to bin/mbrl.js.
    const src = join(TMP, 'src/bin');
    mkdirSync(src, { recursive: true });
    copyFileSync(wrapper, join(src, 'mbrl_node'));
    writeFileSync(join(src, 'mbrl.js'), fake);
    expect(JSON.parse(spawnSync('sh', [join(src, 'mbrl_node'), '--help'], { env, encoding: 'utf8' }).stdout)).toEqual(['run', '--help']);
    // Nowhere to be found, or no Node.js: exit 127 with the reason.
    const lost = join(TMP, 'lost');
    mkdirSync(lost, { recursive: true });
    copyFileSync(wrapper, join(lost, 'mbrl_node'));
    const r = spawnSync('sh', [join(lost, 'mbrl_node')], { env, encoding: 'utf8' });
    expect([r.status, r.stderr]).toEqual([127, expect.stringMatching(/cannot find the mbrl-node package.*MBRL_NODE_HOME/)]);
    const noNode = spawnSync('/bin/sh', [join(prefix, 'lib/mbrl_node/mbrl_node')], { env: { PATH: '/usr/bin:/bin', MBRL_NODE_NODEJS: 'nodejs-missing' }, encoding: 'utf8' });
    expect([noNode.status, noNode.stderr]).toEqual([127, expect.stringMatching(/Node\.js \(nodejs-missing\) not found/)]);
  });
});
