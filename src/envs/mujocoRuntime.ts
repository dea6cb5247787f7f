import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { MainModule } from 'mujoco-js';

let modulePromise: Promise<MainModule> | undefined;
let fileCounter = 0;

/**
 * The MuJoCo WebAssembly module (`mujoco-js`, the official build), loaded once per process on
 * first use (~150 ms). Every MuJoCo environment shares it; each has its own model and data.
 */
export function loadMujoco(): Promise<MainModule> {
  modulePromise ??= import('mujoco-js').then(async (m) => m.default());
  return modulePromise;
}

/** Where to look for a task's MJCF file. */
export interface MjcfLocation {
  /** An explicit MJCF file (highest priority). */
  mjcfPath?: string;
  /** A directory holding Gymnasium's MJCF files under their usual names. */
  mjcfDir?: string;
}

/** Error thrown when no MJCF file can be found; `tried` lists every path looked at. */
export class MjcfNotFoundError extends Error {
  readonly tried: string[];
  constructor(fileName: string, tried: string[]) {
    super(
      `MJCF file ${fileName} not found. Tried:\n${tried.map((p) => `  - ${p}`).join('\n') || '  (no location configured)'}\n` +
        'Pass mjcfPath/mjcfDir (CLI: --mjcf-dir) or set MBRL_MJCF_DIR to a directory holding Gymnasium\'s MuJoCo assets.',
    );
    this.name = 'MjcfNotFoundError';
    this.tried = tried;
  }
}

/**
 * Resolves the MJCF file of a task: `mjcfPath`, then `mjcfDir/fileName`, then
 * `$MBRL_MJCF_DIR/fileName`.
 * @throws MjcfNotFoundError listing the paths tried.
 */
export function resolveMjcf(fileName: string, loc: MjcfLocation = {}, env: NodeJS.ProcessEnv = process.env): string {
  const candidates: string[] = [];
  if (loc.mjcfPath !== undefined) candidates.push(resolve(loc.mjcfPath));
  if (loc.mjcfDir !== undefined) candidates.push(resolve(loc.mjcfDir, fileName));
  const envDir = env.MBRL_MJCF_DIR;
  if (envDir !== undefined && envDir !== '') candidates.push(isAbsolute(envDir) ? join(envDir, fileName) : resolve(envDir, fileName));
  for (const p of candidates) if (existsSync(p)) return p;
  throw new MjcfNotFoundError(fileName, candidates);
}

/**
 * Copies an MJCF file into the module's virtual file system and compiles it.
 * @throws Error with MuJoCo's own compiler message on an invalid model.
 */
export function compileMjcf(mj: MainModule, path: string): InstanceType<MainModule['MjModel']> {
  const xml = readFileSync(path, 'utf8');
  if (!mj.FS.analyzePath('/mbrl', false).exists) mj.FS.mkdir('/mbrl');
  const vfsPath = `/mbrl/model${fileCounter++}.xml`;
  mj.FS.writeFile(vfsPath, xml);
  try {
    return mj.MjModel.loadFromXML(vfsPath);
  } catch (err) {
    throw new Error(`MuJoCo could not compile ${path}: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    mj.FS.unlink(vfsPath);
  }
}
