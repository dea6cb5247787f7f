// Test set-up: point MuJoCo tasks at the shared Gymnasium models unless the caller chose a
// directory. Tests that need them skip with a visible reason when they are absent (helpers.ts).
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

const shared = resolve(import.meta.dirname, '../../shared/mujoco');
if (!process.env.MBRL_MJCF_DIR && existsSync(shared)) process.env.MBRL_MJCF_DIR = shared;
