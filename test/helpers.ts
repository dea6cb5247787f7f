import { existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Whether Gymnasium's MJCF files are reachable (MBRL_MJCF_DIR, set by setup.ts to ../shared/mujoco).
 * When not, MuJoCo tests are skipped and say why.
 */
export const MJCF_DIR = process.env.MBRL_MJCF_DIR;
export const HAVE_MJCF = MJCF_DIR !== undefined && existsSync(join(MJCF_DIR, 'half_cheetah.xml'));
export const MJCF_SKIP_REASON = HAVE_MJCF
  ? ''
  : `SKIPPED: Gymnasium MJCF files not found (MBRL_MJCF_DIR=${MJCF_DIR ?? 'unset'}; expected ../shared/mujoco)`;
if (!HAVE_MJCF) console.warn(MJCF_SKIP_REASON);
