import * as tf from '@tensorflow/tfjs';

/** The tfjs backends mbrl-node can run on, fastest first. */
export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

/** Order tried by `initBackend` when nothing is forced. */
export const BACKEND_PREFERENCE: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu'];

let chosen: Promise<BackendName> | undefined;

/** Options of `initBackend`. */
export interface InitBackendOptions {
  /**
   * Backend to use, or `auto`. Default: `$MBRL_TF_BACKEND`, else `auto` (tensorflow from
   * `@tensorflow/tfjs-node` when installed, else wasm, else cpu).
   */
  backend?: BackendName | 'auto';
  /** Where the one-line choice is logged. Default: stderr. */
  log?: (line: string) => void;
}

/**
 * Picks and initialises the tfjs backend once per process and logs the choice once.
 * Later calls return the same choice (a different `backend` request after the first is an error,
 * because tensors already made on one backend would silently move).
 *
 * - `tensorflow`: native libtensorflow via `@tensorflow/tfjs-node`, used when that optional
 *   package is installed (it cannot install where its download of libtensorflow is blocked).
 * - `wasm`: `@tensorflow/tfjs-backend-wasm`, bundled, the default here.
 * - `cpu`: plain JavaScript, the last resort.
 *
 * @example
 * const name = await initBackend(); // logs "[mbrl] tfjs backend: wasm (...)"
 */
export function initBackend(options: InitBackendOptions = {}): Promise<BackendName> {
  const requested = options.backend ?? parseBackendEnv(process.env.MBRL_TF_BACKEND);
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  if (chosen === undefined) {
    chosen = pick(requested, log);
  } else if (options.backend !== undefined && options.backend !== 'auto') {
    const wanted = options.backend;
    return chosen.then((name) => {
      if (name !== wanted) throw new Error(`initBackend: backend already initialised as ${name}; cannot switch to ${wanted} in the same process`);
      return name;
    });
  }
  return chosen;
}

function parseBackendEnv(value: string | undefined): BackendName | 'auto' {
  if (value === undefined || value === '' || value === 'auto') return 'auto';
  if ((BACKEND_PREFERENCE as readonly string[]).includes(value)) return value as BackendName;
  throw new Error(`MBRL_TF_BACKEND=${JSON.stringify(value)}: expected one of auto, ${BACKEND_PREFERENCE.join(', ')}`);
}

async function pick(requested: BackendName | 'auto', log: (line: string) => void): Promise<BackendName> {
  const order = requested === 'auto' ? BACKEND_PREFERENCE : [requested];
  const reasons: string[] = [];
  for (const name of order) {
    const why = await tryBackend(name);
    if (why === null) {
      const skipped = reasons.length > 0 ? ` (${reasons.join('; ')})` : '';
      log(`[mbrl] tfjs backend: ${name}${skipped}`);
      return name;
    }
    reasons.push(`${name}: ${why}`);
  }
  throw new Error(`No tfjs backend could start: ${reasons.join('; ')}`);
}

/** Returns null when the backend is now active, else why it is not. */
async function tryBackend(name: BackendName): Promise<string | null> {
  try {
    if (name === 'tensorflow') {
      // A variable specifier keeps bundlers and tsc from requiring this optional package.
      const pkg = '@tensorflow/tfjs-node';
      await import(pkg);
    } else if (name === 'wasm') {
      await import('@tensorflow/tfjs-backend-wasm');
    }
    const ok = await tf.setBackend(name);
    if (!ok) return 'setBackend failed';
    await tf.ready();
    return null;
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
    return /Cannot find (package|module)/.test(msg) ? 'not installed' : msg;
  }
}
