import { loadRosNodeConfig, ros2TransportOptions } from '../../node/rosParams.js';
import { Ros2Transport } from '../../transports/ros2.js';
import { ControlNode, type ControlNodeStats } from '../../node/controlNode.js';
import { UsageError, intFlag, stringFlag, type Command } from '../args.js';

/**
 * `mbrl run --config FILE.yaml`: the control node (`ControlNode`) until SIGINT/SIGTERM, a time
 * limit or a tick budget; every stop is clean (last transition stored, buffer flushed, model
 * saved, safe action sent). A second signal exits at once (exit code 130).
 */
export const runCommand: Command = {
  name: 'run',
  summary: 'Run the control node: sensors in, actions out at a fixed rate, learning online.',
  usage: 'mbrl run --config FILE.yaml [--duration-sec S] [--steps N] [--sim-speed X|max] [--stats-every-sec S] [--json] [--ros-args ...]',
  description:
    'Reads the node configuration (transport, sensors, action, safety, controller, algorithm, learner,\n' +
    'checkpointDir; see launch/pendulum_sim.yaml) and runs until SIGINT or SIGTERM, --duration-sec or\n' +
    '--steps. Resumes from checkpointDir (buffer segments and model) when it holds a previous run.\n' +
    'Diagnostics go to stderr and, as diagnostic_msgs/DiagnosticArray, to /diagnostics.',
  options: {
    config: { type: 'string', valueName: 'FILE', help: 'The node configuration (YAML).' },
    'duration-sec': { type: 'string', valueName: 'S', help: 'Stop after S seconds (wall clock).' },
    steps: { type: 'string', valueName: 'N', help: 'Stop after N control ticks.' },
    'sim-speed': { type: 'string', valueName: 'X', help: 'Sim transport: lockstep simulated time, at most X times real time ("max": no cap). Default: real time.' },
    'stats-every-sec': { type: 'string', valueName: 'S', help: 'Seconds between diagnostics.', default: '5' },
    json: { type: 'boolean', help: 'Also print each diagnostics snapshot as one JSON line on stdout.' },
  },
  async run(values, _positionals, argv = []) {
    const file = stringFlag(values, 'config', 'the node configuration, e.g. launch/pendulum_sim.yaml');
    const durationSec = numberFlag(values, 'duration-sec');
    const steps = values.steps === undefined ? undefined : intFlag(values, 'steps', 1);
    const statsSec = numberFlag(values, 'stats-every-sec') ?? 5;
    const rawSpeed = values['sim-speed'];
    const simSpeed = rawSpeed === undefined ? undefined : rawSpeed === 'max' ? Infinity : numberFlag(values, 'sim-speed');
    // A plain node config, or a ROS parameters file (`/**: ros__parameters:`), with --ros-args applied.
    const loaded = loadRosNodeConfig({ configFile: file, argv });
    const config = loaded.config;
    const transport =
      config.transport.kind === 'ros2'
        ? new Ros2Transport(ros2TransportOptions(config, { written: loaded.parameters, types: loaded.types, sensorKeys: loaded.sensorKeys }))
        : undefined;
    const node = new ControlNode({
      config,
      ...(transport ? { transport } : {}),
      ...(simSpeed !== undefined ? { simSpeed } : {}),
      ...(steps !== undefined ? { maxTicks: steps } : {}),
      diagnosticsPeriodMs: statsSec * 1000,
      ...(values.json ? { onStats: (s: ControlNodeStats) => process.stdout.write(`${JSON.stringify(s, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}\n`) } : {}),
    });
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals): void => {
      signals++;
      if (signals > 1) {
        process.stderr.write(`[mbrl] ${signal} again: exiting without a clean stop\n`);
        process.exit(130);
      }
      process.stderr.write(`[mbrl] ${signal}: stopping (saving the buffer and the model)\n`);
      void node.stop();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const timer = durationSec === undefined ? undefined : setTimeout(() => void node.stop(), durationSec * 1000);
    try {
      await node.start();
      const exit = await node.done;
      if (exit.kind === 'failed') {
        process.stderr.write(`mbrl run: ${exit.error.message}\n`);
        return 1;
      }
      return 0;
    } finally {
      clearTimeout(timer);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
};

/** A positive number flag, or undefined when absent. */
function numberFlag(values: Record<string, unknown>, name: string): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (!(Number.isFinite(v) && v > 0)) throw new UsageError(`--${name} ${String(raw)}: expected a number > 0`);
  return v;
}
