import { ENV_SPECS } from '../../envs/registry.js';
import type { Command } from '../args.js';

/** `mbrl envs [--json]`: the built-in environments and their sizes, bounds, dt and time limits. */
export const envsCommand: Command = {
  name: 'envs',
  summary: 'List the built-in environments.',
  usage: 'mbrl envs [--json]',
  description:
    'One entry per environment: id, obsDim, actDim, actLow, actHigh, dt (seconds per step), maxEpisodeSteps.\n' +
    'MuJoCo tasks need their MJCF file at run time (--mjcf-dir on commands that build them, or MBRL_MJCF_DIR).',
  options: { json: { type: 'boolean', help: 'Print a JSON array instead of a table.' } },
  run(values) {
    const rows = ENV_SPECS.map((s) => ({
      id: s.id,
      kind: s.kind,
      obsDim: s.obsDim,
      actDim: s.actDim,
      actLow: s.actLow,
      actHigh: s.actHigh,
      dt: s.dt,
      maxEpisodeSteps: s.maxEpisodeSteps,
      ...(s.mjcfFile ? { mjcfFile: s.mjcfFile } : {}),
      description: s.description,
    }));
    if (values.json) {
      process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      return Promise.resolve(0);
    }
    const header = ['id', 'kind', 'obs', 'act', 'action bounds', 'dt', 'steps'];
    const table = rows.map((r) => [r.id, r.kind, String(r.obsDim), String(r.actDim), boundsText(r.actLow, r.actHigh), String(r.dt), String(r.maxEpisodeSteps)]);
    const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)));
    const fmt = (row: string[]): string => row.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
    process.stdout.write(`${[fmt(header), ...table.map(fmt)].join('\n')}\n`);
    return Promise.resolve(0);
  },
};

function boundsText(low: number[], high: number[]): string {
  const allSame = low.every((l) => l === low[0]) && high.every((h) => h === high[0]);
  return allSame ? `[${low[0]}, ${high[0]}]^${low.length}` : low.map((l, i) => `[${l}, ${high[i]}]`).join(' ');
}
