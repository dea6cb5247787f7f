// Test set-up: point MuJoCo tasks at the shared Gymnasium models, and the bag tests at the shared
// ROS 2 recordings, unless the caller chose directories. Tests that need them skip with a visible
// reason when they are absent (helpers.ts).
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

const shared = resolve(import.meta.dirname, '../../shared/mujoco');
if (!process.env.MBRL_MJCF_DIR && existsSync(shared)) process.env.MBRL_MJCF_DIR = shared;

const bags = resolve(import.meta.dirname, '../../shared/bags');
if (!process.env.MBRL_BAGS_DIR && existsSync(bags)) process.env.MBRL_BAGS_DIR = bags;
