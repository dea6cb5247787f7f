import { spawnSync } from 'node:child_process';
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

/**
 * The shared real ROS 2 recordings (MBRL_BAGS_DIR, set by setup.ts to ../shared/bags; see its
 * README.md). When absent, the bag tests on them are skipped and say why.
 */
export const BAGS_DIR = process.env.MBRL_BAGS_DIR;
export const HAVE_BAGS = BAGS_DIR !== undefined && existsSync(join(BAGS_DIR, 'nav2_turtlebot.mcap')) && existsSync(join(BAGS_DIR, 'rosbags_test_bag_mcap/test_bag_mcap.mcap'));
export const BAGS_SKIP_REASON = HAVE_BAGS ? '' : `SKIPPED: shared ROS 2 bags not found (MBRL_BAGS_DIR=${BAGS_DIR ?? 'unset'}; expected ../shared/bags)`;
if (!HAVE_BAGS) console.warn(BAGS_SKIP_REASON);

/**
 * A Python interpreter that can `import onnx` (the reference checker), or undefined. Debian's
 * python3-onnx installs for /usr/bin/python3, which a pyenv or venv `python3` on PATH may shadow,
 * so the system interpreter is tried first.
 */
export const PYTHON_WITH_ONNX: string | undefined = ['/usr/bin/python3', 'python3'].find(
  (py) => spawnSync(py, ['-c', 'import onnx'], { stdio: 'ignore' }).status === 0,
);
export const PY_ONNX_SKIP_REASON = 'SKIPPED: no python3 with the onnx package (Debian package python3-onnx; .ci/run installs it)';
if (PYTHON_WITH_ONNX === undefined) console.warn(PY_ONNX_SKIP_REASON);

/**
 * Runs `onnx.checker.check_model(model, full_check=True)` (which includes strict shape inference)
 * on each file in one Python process. Returns each file's problem, or '' when it passes.
 * Call only when `PYTHON_WITH_ONNX` is defined.
 */
export function pythonOnnxCheckFiles(files: readonly string[]): Record<string, string> {
  const script = [
    'import json, sys, onnx',
    'out = {}',
    'for f in sys.argv[1:]:',
    '    try:',
    '        onnx.checker.check_model(onnx.load(f), full_check=True); out[f] = ""',
    '    except Exception as e:',
    '        out[f] = f"{type(e).__name__}: {e}"',
    'print(json.dumps(out))',
  ].join('\n');
  const r = spawnSync(PYTHON_WITH_ONNX ?? 'python3', ['-c', script, ...files], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python onnx checker failed to run: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, string>;
}
