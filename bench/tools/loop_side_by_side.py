#!/usr/bin/env python3
"""Combines alternating `mbrl bench loop` runs (grid vs sample ticks) into one side-by-side result.

usage: loop_side_by_side.py OUT_STEM RUN.json [RUN.json ...]
Writes OUT_STEM.json (every run's command, load and metrics, in run order) and OUT_STEM.md
(a table per case: each run's p50 / p99 / max, missed, ticks of expected).
"""
import json
import sys

FIGS = ['p50Ms', 'p99Ms', 'maxMs', 'pipelineP99Ms', 'missed', 'skipped', 'ticks', 'expectedTicks']


def main() -> None:
    stem, files = sys.argv[1], sys.argv[2:]
    runs = []
    for f in files:
        d = json.load(open(f))
        tick = 'sample' if '--tick sample' in d['command'] else 'grid'
        runs.append({'tick': tick, 'file': f, 'command': d['command'], 'date': d['date'],
                     'loadAvgAtStart': d['machine']['loadAvgAtStart'], 'loadAvgAtEnd': d['machine']['loadAvgAtEnd'],
                     'setup': d['setup'], 'metrics': d['metrics']})
    cases = sorted({k.rsplit('.', 1)[0] for r in runs for k in r['metrics'] if k.rsplit('.', 1)[1] in FIGS},
                   key=lambda c: (c.startswith('mqtt'), 'refit' in c, c))
    out = {'benchmark': 'loop', 'variant': 'tick-side-by-side', 'runs': runs}
    json.dump(out, open(stem + '.json', 'w'), indent=1)
    lines = [f'# mbrl bench loop: ticks on the grid vs on each sensor message, side by side', '',
             'Runs alternated in one session (grid, sample, grid, sample), nothing else of ours running; commands:', '']
    for r in runs:
        lines.append(f"- {r['tick']} ({r['date']}, load {r['loadAvgAtStart'][0]:.2f} → {r['loadAvgAtEnd'][0]:.2f}): `{r['command']}`")
    lines += ['', '| case | ticks on | sensor→action p50 / p99 / max (ms) | tick→action p99 (ms) | missed (skipped) | ticks / expected |', '|---|---|---|---|---|---|']
    for c in cases:
        for r in runs:
            m = lambda k: r['metrics'].get(f'{c}.{k}')
            if m('p99Ms') is None:
                continue
            lines.append(f"| {c} | {r['tick']} | {m('p50Ms'):.3f} / {m('p99Ms'):.3f} / {m('maxMs'):.3f} | {m('pipelineP99Ms'):.3f} | {m('missed'):.0f} ({m('skipped'):.0f}) | {m('ticks'):.0f} / {m('expectedTicks'):.0f} |")
    open(stem + '.md', 'w').write('\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
