/**
 * The `metadata_props` every mbrl-node ONNX export carries, written and read in one place, so a
 * deployer (and `OnnxPolicy`) can check a file against the robot it is meant for. The keys are
 * listed in docs/onnx-export.md; all are namespaced `mbrl.` and all values are strings:
 * - numbers as JavaScript writes them (shortest round-trip decimal; `Infinity`/`-Infinity` for
 *   unbounded observations, which Python's `float()` and C's `strtod` both read);
 * - numeric vectors comma-separated (`-2,2`), so no JSON reader is needed for them;
 * - names as a JSON array of strings; booleans as `true`/`false`.
 */
import { ValidationError } from '../core/errors.js';
import { MBRL_NODE_VERSION } from './onnxWriter.js';

/** Version of the metadata layout (`mbrl.metadata_version`), raised when a key changes meaning. */
export const EXPORT_METADATA_VERSION = 1;

/** What a deployer needs to know about an exported model. */
export interface ExportMetadata {
  /** What the graph computes: a controller (`policy`) or a dynamics model (`ensemble`). */
  what: 'policy' | 'ensemble';
  obsDim: number;
  actDim: number;
  /** Action bounds (the policy's actions always lie inside them). */
  actionLow: ArrayLike<number>;
  actionHigh: ArrayLike<number>;
  /** Observation bounds, where known (may be infinite). */
  obsLow?: ArrayLike<number>;
  obsHigh?: ArrayLike<number>;
  /** Names of the observation's entries, in order, where the environment knows them. */
  obsNames?: readonly string[];
  /** Environment id the model was trained on, e.g. `Pendulum-v1`. */
  envId?: string;
  /** The training algorithm, e.g. `pets`, `trpo`, `me-trpo`. Default: `configKind`. */
  algorithm?: string;
  /** The `kind` of the training config, so the run can be rebuilt from its JSON. */
  configKind?: string;
  /** Real environment steps the model was trained on. */
  envSteps?: number;
  /** Policies: `clip` or `tanh` squashing of the Gaussian into the bounds. */
  squash?: 'clip' | 'tanh';
  /** Policies: whether the graph also outputs `mean` and `log_std`. */
  stochastic?: boolean;
  /** Ensembles: the members the planner used (elites), where known. */
  elites?: readonly number[];
  /** Creation time, ISO 8601. Default: now. */
  createdAt?: string;
}

/** The metadata read back from a file (`readExportMetadata`); absent keys are undefined. */
export interface ReadExportMetadata extends Omit<ExportMetadata, 'actionLow' | 'actionHigh' | 'obsLow' | 'obsHigh' | 'createdAt'> {
  actionLow: number[];
  actionHigh: number[];
  obsLow?: number[];
  obsHigh?: number[];
  createdAt?: string;
  /** mbrl-node version that wrote the file. */
  version?: string;
  metadataVersion?: number;
  /** `mbrl.kind`: `gaussian-mlp-policy` or `dynamics-ensemble`. */
  kind?: string;
}

const vec = (v: ArrayLike<number>): string => Array.from(v, (x) => String(x)).join(',');

/**
 * The `metadata_props` entries for `meta` (see the file comment for the encoding).
 * @throws ValidationError for sizes that disagree (bounds vs `actDim`, names vs `obsDim`)
 * @example
 * const props = exportMetadataProps({ what: 'policy', obsDim: 3, actDim: 1, actionLow: [-2], actionHigh: [2], envId: 'Pendulum-v1' });
 * // props['mbrl.action_low'] === '-2'
 */
export function exportMetadataProps(meta: ExportMetadata): Record<string, string> {
  const where = 'exportMetadataProps';
  const { obsDim, actDim } = meta;
  if (!Number.isInteger(obsDim) || obsDim < 1) throw new ValidationError(where, 'obsDim', `expected a positive integer, got ${obsDim}`);
  if (!Number.isInteger(actDim) || actDim < 1) throw new ValidationError(where, 'actDim', `expected a positive integer, got ${actDim}`);
  const sized = (name: string, v: ArrayLike<number> | readonly unknown[] | undefined, n: number): void => {
    if (v !== undefined && v.length !== n) throw new ValidationError(where, name, `expected ${n} entries, got ${v.length}`);
  };
  sized('actionLow', meta.actionLow, actDim);
  sized('actionHigh', meta.actionHigh, actDim);
  sized('obsLow', meta.obsLow, obsDim);
  sized('obsHigh', meta.obsHigh, obsDim);
  sized('obsNames', meta.obsNames, obsDim);
  if (meta.envSteps !== undefined && !(Number.isInteger(meta.envSteps) && meta.envSteps >= 0)) {
    throw new ValidationError(where, 'envSteps', `expected a non-negative integer, got ${meta.envSteps}`);
  }
  const props: Record<string, string> = {
    'mbrl.metadata_version': String(EXPORT_METADATA_VERSION),
    'mbrl.what': meta.what,
    'mbrl.version': MBRL_NODE_VERSION,
    'mbrl.created_at': meta.createdAt ?? new Date().toISOString(),
    'mbrl.obs_dim': String(obsDim),
    'mbrl.act_dim': String(actDim),
    'mbrl.action_low': vec(meta.actionLow),
    'mbrl.action_high': vec(meta.actionHigh),
  };
  if (meta.obsLow !== undefined) props['mbrl.obs_low'] = vec(meta.obsLow);
  if (meta.obsHigh !== undefined) props['mbrl.obs_high'] = vec(meta.obsHigh);
  if (meta.obsNames !== undefined) props['mbrl.obs_names'] = JSON.stringify(meta.obsNames);
  if (meta.envId !== undefined) props['mbrl.env_id'] = meta.envId;
  const algorithm = meta.algorithm ?? meta.configKind;
  if (algorithm !== undefined) props['mbrl.algorithm'] = algorithm;
  if (meta.configKind !== undefined) props['mbrl.config_kind'] = meta.configKind;
  if (meta.envSteps !== undefined) props['mbrl.env_steps'] = String(meta.envSteps);
  if (meta.squash !== undefined) props['mbrl.squash'] = meta.squash;
  if (meta.stochastic !== undefined) props['mbrl.stochastic'] = String(meta.stochastic);
  if (meta.elites !== undefined) props['mbrl.elites'] = vec(meta.elites);
  return props;
}

/**
 * Parses the `mbrl.*` entries of a file's `metadata_props` (the inverse of `exportMetadataProps`).
 * @param where names the file in error messages
 * @throws ValidationError naming the key when a value is malformed or `mbrl.what` is missing
 */
export function readExportMetadata(props: Readonly<Record<string, string>>, where = 'ONNX metadata'): ReadExportMetadata {
  const get = (key: string): string | undefined => (Object.prototype.hasOwnProperty.call(props, key) ? props[key] : undefined);
  const what = get('mbrl.what');
  if (what !== 'policy' && what !== 'ensemble') {
    throw new ValidationError(where, 'mbrl.what', `expected "policy" or "ensemble" (a file exported by mbrl-node), got ${what === undefined ? 'no such key' : JSON.stringify(what)}`);
  }
  const int = (key: string): number | undefined => {
    const s = get(key);
    if (s === undefined) return undefined;
    const v = Number(s);
    if (s.trim() === '' || !Number.isInteger(v) || v < 0) throw new ValidationError(where, key, `expected a non-negative integer, got ${JSON.stringify(s)}`);
    return v;
  };
  const numbers = (key: string, n: number | undefined): number[] | undefined => {
    const s = get(key);
    if (s === undefined) return undefined;
    const v = s === '' ? [] : s.split(',').map(Number);
    if (v.some(Number.isNaN) || (n !== undefined && v.length !== n)) {
      throw new ValidationError(where, key, `expected ${n ?? 'a list of'} comma-separated numbers, got ${JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s)}`);
    }
    return v;
  };
  const obsDim = int('mbrl.obs_dim');
  const actDim = int('mbrl.act_dim');
  if (obsDim === undefined || obsDim < 1) throw new ValidationError(where, 'mbrl.obs_dim', `expected a positive integer, got ${get('mbrl.obs_dim') ?? 'no such key'}`);
  if (actDim === undefined || actDim < 1) throw new ValidationError(where, 'mbrl.act_dim', `expected a positive integer, got ${get('mbrl.act_dim') ?? 'no such key'}`);
  const actionLow = numbers('mbrl.action_low', actDim);
  const actionHigh = numbers('mbrl.action_high', actDim);
  if (actionLow === undefined || actionHigh === undefined) throw new ValidationError(where, 'mbrl.action_low/mbrl.action_high', 'missing');
  let obsNames: string[] | undefined;
  const names = get('mbrl.obs_names');
  if (names !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(names);
    } catch {
      parsed = undefined;
    }
    if (!Array.isArray(parsed) || parsed.length !== obsDim || !parsed.every((x) => typeof x === 'string')) {
      throw new ValidationError(where, 'mbrl.obs_names', `expected a JSON array of ${obsDim} strings`);
    }
    obsNames = parsed as string[];
  }
  const squash = get('mbrl.squash');
  if (squash !== undefined && squash !== 'clip' && squash !== 'tanh') throw new ValidationError(where, 'mbrl.squash', `expected "clip" or "tanh", got ${JSON.stringify(squash)}`);
  const stochastic = get('mbrl.stochastic');
  if (stochastic !== undefined && stochastic !== 'true' && stochastic !== 'false') {
    throw new ValidationError(where, 'mbrl.stochastic', `expected "true" or "false", got ${JSON.stringify(stochastic)}`);
  }
  const out: ReadExportMetadata = { what, obsDim, actDim, actionLow, actionHigh };
  const set = <K extends keyof ReadExportMetadata>(key: K, v: ReadExportMetadata[K] | undefined): void => {
    if (v !== undefined) out[key] = v;
  };
  set('obsLow', numbers('mbrl.obs_low', obsDim));
  set('obsHigh', numbers('mbrl.obs_high', obsDim));
  set('obsNames', obsNames);
  set('envId', get('mbrl.env_id'));
  set('algorithm', get('mbrl.algorithm'));
  set('configKind', get('mbrl.config_kind'));
  set('envSteps', int('mbrl.env_steps'));
  set('squash', squash as 'clip' | 'tanh' | undefined);
  set('stochastic', stochastic === undefined ? undefined : stochastic === 'true');
  set('elites', numbers('mbrl.elites', undefined));
  set('createdAt', get('mbrl.created_at'));
  set('version', get('mbrl.version'));
  set('metadataVersion', int('mbrl.metadata_version'));
  set('kind', get('mbrl.kind'));
  return out;
}
