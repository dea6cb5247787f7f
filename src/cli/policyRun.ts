import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError, intFlag, readJsonObject } from './args.js';
import { loadPolicyCheckpoint, type PolicyCheckpoint } from './checkpoint.js';
import { parsePhysicsFlag } from './physicsFlag.js';

/**
 * The start of every `mbrl train --algo <policy algorithm>` run (ME-TRPO, MB-MPO, Model Gradient,
 * TRPO, PPO, MBPO): with `--resume DIR`, the checkpoint in DIR (refused when it is another
 * algorithm's) and its config with `--steps` raised if given; else the config from `--config`,
 * `--env`, `--seed`, `--steps`, `--physics`, and a run directory that does not hold a run yet.
 * @param make the algorithm's `makeXConfig`
 * @throws UsageError naming the flag, the directory and what was expected
 */
export async function openPolicyRun<C extends { env: string; seed: number }>(
  algo: string,
  values: Record<string, unknown>,
  make: (overrides: Record<string, unknown>) => C,
): Promise<{ runDir: string; config: C; ckpt: PolicyCheckpoint | undefined }> {
  if (typeof values.resume === 'string') {
    const runDir = values.resume;
    const ckpt = await loadPolicyCheckpoint(runDir);
    if (ckpt.config.kind !== algo) throw new UsageError(`--resume ${runDir}: the run is ${ckpt.config.kind}, not ${algo}; pass --algo ${ckpt.config.kind}`);
    const steps = values.steps === undefined ? (ckpt.config.steps as number) : intFlag(values, 'steps', 1);
    return { runDir, config: make({ ...(ckpt.config as Record<string, unknown>), steps }), ckpt };
  }
  const overrides: Record<string, unknown> = typeof values.config === 'string' ? await readJsonObject(values.config) : {};
  overrides.env = values.env as string;
  overrides.seed = intFlag(values, 'seed', 0);
  if (values.steps !== undefined) overrides.steps = intFlag(values, 'steps', 1);
  if (values.physics !== undefined) overrides.physics = parsePhysicsFlag(values.physics as string);
  const config = make(overrides);
  const runDir = typeof values.out === 'string' ? values.out : join('runs', `${config.env}-${algo}-s${config.seed}`);
  if (existsSync(join(runDir, 'checkpoint')) || existsSync(join(runDir, 'checkpoint.old'))) {
    throw new UsageError(`${runDir} already holds a run; continue it with --resume ${runDir} or choose another --out`);
  }
  return { runDir, config, ckpt: undefined };
}
