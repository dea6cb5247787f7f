import { ValidationError } from '../core/errors.js';
import { UsageError, commandHelp, parseCommand, type Command } from './args.js';
import { adaptCommand } from './commands/adapt.js';
import { benchCommand } from './commands/bench.js';
import { datasetCommand } from './commands/dataset.js';
import { envsCommand } from './commands/envs.js';
import { evalCommand } from './commands/eval.js';
import { exportCommand } from './commands/export.js';
import { offlineCommand } from './commands/offline.js';
import { reportCommand } from './commands/report.js';
import { rolloutCommand } from './commands/rollout.js';
import { runCommand } from './commands/run.js';
import { trainCommand } from './commands/train.js';
import { parseRosArgs } from '../node/rosParams.js';

/** Every `mbrl` command, in the order `mbrl --help` lists them. */
export const COMMANDS: readonly Command[] = [trainCommand, evalCommand, exportCommand, envsCommand, rolloutCommand, datasetCommand, offlineCommand, runCommand, adaptCommand, benchCommand, reportCommand];

function topHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    'Usage: mbrl <command> [options]',
    '',
    'Model-based reinforcement learning for robots.',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
    "Run 'mbrl <command> --help' for a command's options.",
  ].join('\n');
}

/**
 * Runs the CLI on `argv` (without `node` and the script) and returns the exit code:
 * 0 success, 1 a failure while running, 2 a bad command line or input.
 */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${topHelp()}\n`);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    const { readFileSync } = await import('node:fs');
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    process.stderr.write(`mbrl: unknown command "${name}". Commands: ${COMMANDS.map((c) => c.name).join(', ')}. Run 'mbrl --help'.\n`);
    return 2;
  }
  try {
    // `mbrl run` is also started by ROS 2 launch with `--ros-args ...`: those sections are rcl's, not ours.
    const { values, positionals, help } = parseCommand(cmd, cmd.name === 'run' ? parseRosArgs(rest).args : rest);
    if (help) {
      process.stdout.write(`${commandHelp(cmd)}\n`);
      return 0;
    }
    return await cmd.run(values, positionals, rest);
  } catch (err) {
    if (err instanceof UsageError || err instanceof ValidationError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    const e = err instanceof Error ? err : new Error(String(err));
    process.stderr.write(`mbrl ${name}: ${e.message}\n`);
    if (process.env.MBRL_DEBUG) process.stderr.write(`${e.stack ?? ''}\n`);
    return 1;
  }
}
