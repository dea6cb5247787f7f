import type { PhysicsParams } from '../core/env.js';
import { NOMINAL_PHYSICS } from '../core/env.js';
import { UsageError } from './args.js';

/**
 * Parses `--physics massScale=1.3,frictionScale=0.7,actuatorGain=0.8,obsNoiseStd=0.01,actionDelaySteps=1`.
 * Range checks happen in the environment (`resolvePhysics`); this checks names and numbers.
 */
export function parsePhysicsFlag(raw: string | undefined): Partial<PhysicsParams> {
  if (raw === undefined || raw === '') return {};
  const out: Partial<PhysicsParams> = {};
  for (const part of raw.split(',')) {
    const [key, value, ...rest] = part.split('=');
    if (value === undefined || rest.length > 0 || key === '') {
      throw new UsageError(`--physics: "${part}" is not KEY=NUMBER (keys: ${Object.keys(NOMINAL_PHYSICS).join(', ')})`);
    }
    if (!(key in NOMINAL_PHYSICS)) throw new UsageError(`--physics: unknown key "${key}"; expected one of ${Object.keys(NOMINAL_PHYSICS).join(', ')}`);
    const v = Number(value);
    if (value.trim() === '' || !Number.isFinite(v)) throw new UsageError(`--physics: ${key}=${value} is not a finite number`);
    out[key as keyof PhysicsParams] = v;
  }
  return out;
}
