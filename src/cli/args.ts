import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

/** One command-line option of a command. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  /** One line for `--help`. */
  help: string;
  /** Shown in `--help` for string options, e.g. `ID`. */
  valueName?: string;
  default?: string | boolean;
  short?: string;
}

/** A CLI command: its name, usage line, description, options, and what it does. */
export interface Command {
  name: string;
  summary: string;
  usage: string;
  description?: string;
  options: Record<string, OptionSpec>;
  /** Runs the command; returns the process exit code. */
  /** `argv`: the command's raw arguments (for `run`: with its `--ros-args` sections, which rcl reads). */
  run(values: Record<string, string | boolean | undefined>, positionals: string[], argv?: string[]): Promise<number>;
}

/** A bad command line: the message names the flag and what was expected; exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Parses `argv` for `cmd` (strict: unknown flags and missing values are `UsageError`s). */
export function parseCommand(cmd: Command, argv: string[]): { values: Record<string, string | boolean | undefined>; positionals: string[]; help: boolean } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; default?: string | boolean }> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, spec] of Object.entries(cmd.options)) {
    options[name] = { type: spec.type, ...(spec.short ? { short: spec.short } : {}), ...(spec.default !== undefined ? { default: spec.default } : {}) };
  }
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    const help = values.help === true;
    delete values.help;
    return { values: values as Record<string, string | boolean | undefined>, positionals, help };
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new UsageError(`mbrl ${cmd.name}: ${msg.replace(/\. To specify a positional argument.*$/s, '')}. Run 'mbrl ${cmd.name} --help' for the options.`);
  }
}

/** The `--help` text of a command. */
export function commandHelp(cmd: Command): string {
  const lines = [`Usage: ${cmd.usage}`, '', cmd.summary];
  if (cmd.description) lines.push('', cmd.description);
  lines.push('', 'Options:');
  const rows: [string, string][] = Object.entries(cmd.options).map(([name, s]) => {
    const flag = `${s.short ? `-${s.short}, ` : ''}--${name}${s.type === 'string' ? ` ${s.valueName ?? 'VALUE'}` : ''}`;
    const def = s.default !== undefined && s.default !== false ? ` (default: ${String(s.default)})` : '';
    return [flag, `${s.help}${def}`];
  });
  rows.push(['-h, --help', 'Show this help.']);
  const width = Math.max(...rows.map(([f]) => f.length)) + 2;
  for (const [f, h] of rows) lines.push(`  ${f.padEnd(width)}${h}`);
  return lines.join('\n');
}

/** Reads an integer flag. @throws UsageError naming the flag, the value and the expected range. */
export function intFlag(values: Record<string, unknown>, name: string, min: number, fallback?: number): number {
  const raw = values[name];
  if (raw === undefined) {
    if (fallback === undefined) throw new UsageError(`--${name} is required (an integer ≥ ${min})`);
    return fallback;
  }
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min) throw new UsageError(`--${name} ${String(raw)}: expected an integer ≥ ${min}`);
  return v;
}

/** Reads a required string flag. */
export function stringFlag(values: Record<string, unknown>, name: string, what: string): string {
  const raw = values[name];
  if (typeof raw !== 'string' || raw === '') throw new UsageError(`--${name} is required (${what})`);
  return raw;
}

/**
 * Reads `--config FILE`: a JSON object of config overrides.
 * @throws UsageError naming the flag, the file and what is wrong with it
 */
export async function readJsonObject(file: string): Promise<Record<string, unknown>> {
  try {
    const v = JSON.parse(await readFile(file, 'utf8')) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('expected a JSON object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new UsageError(`--config ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
