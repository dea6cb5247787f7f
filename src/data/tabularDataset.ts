/**
 * JSONL and CSV logs as offline datasets, through a column mapping that says which columns make
 * the observation and action vectors, the reward and the episode flags.
 *
 * ```yaml
 * observations: [x, y, vx]        # or 'obs_{0..16}' for obs_0 … obs_16, or (JSONL) 'obs' holding an array
 * actions: [u]
 * rewards: r
 * terminals: done                 # optional: 0/1, true/false
 * timeouts: truncated             # optional
 * episode: episode_id             # optional: a change of value ends an episode
 * next_observations: [nx, ny, nvx] # optional; else the next row of the same episode
 * ```
 *
 * Rules:
 * - An episode ends at a row whose `terminals` or `timeouts` is set, or (with `episode`) whose
 *   next row has another episode value; the latter rows get `timeouts` = 1.
 * - Without `next_observations`, row i's is row i+1's observation inside an episode, and the
 *   last row of every episode (which has none) is dropped (see `nextFromFollowingRow`).
 * - JSONL column names may be paths: `state.pos` (nested objects), `obs[2]` (an array element);
 *   a name for a vector field that holds an array contributes all its entries (the length is
 *   fixed by the first row). CSV names are matched exactly against the header row.
 * - Errors name the file, the line (1-based, physical) and the column.
 */
import { readFile } from 'node:fs/promises';
import { ValidationError, describe } from '../core/errors.js';
import type { DatasetFields, DatasetLoadResult, DatasetMetadata } from './dataset.js';
import { OfflineDataset, nextFromFollowingRow } from './dataset.js';

/** Which columns make each dataset field (see the file comment). */
export interface ColumnMapping {
  observations: string | string[];
  actions: string | string[];
  rewards: string;
  next_observations?: string | string[];
  terminals?: string;
  timeouts?: string;
  /** A column whose value changes from one episode to the next. */
  episode?: string;
}

/** Options of the tabular loaders. */
export interface TabularOptions {
  /** Stored in the dataset (`source` defaults to the file name). */
  metadata?: DatasetMetadata;
  /** CSV only: the field separator. Default `,`. */
  delimiter?: string;
}

/**
 * Checks a column mapping read from YAML or JSON, and expands `name{a..b}` ranges.
 * @throws ValidationError naming the key and what was expected
 */
export function parseColumnMapping(raw: unknown, where = 'column mapping'): Required<Pick<ColumnMapping, 'rewards'>> & { observations: string[]; actions: string[]; next_observations?: string[]; terminals?: string; timeouts?: string; episode?: string } {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ValidationError(where, 'mapping', `expected an object with observations, actions, rewards, got ${describe(raw)}`);
  const m = raw as Record<string, unknown>;
  const allowed = ['observations', 'actions', 'rewards', 'next_observations', 'terminals', 'timeouts', 'episode'];
  for (const k of Object.keys(m)) if (!allowed.includes(k)) throw new ValidationError(where, k, `unknown key; expected one of ${allowed.join(', ')}`);
  const list = (key: string, required: boolean): string[] | undefined => {
    const v = m[key];
    if (v === undefined && !required) return undefined;
    const items = typeof v === 'string' ? [v] : Array.isArray(v) ? v : undefined;
    if (!items || items.length === 0 || !items.every((x) => typeof x === 'string' && x !== '')) {
      throw new ValidationError(where, key, `expected a column name or a non-empty list of column names, got ${describe(v)}`);
    }
    return (items as string[]).flatMap(expandRange);
  };
  const one = (key: string, required: boolean): string | undefined => {
    const v = m[key];
    if (v === undefined && !required) return undefined;
    if (typeof v !== 'string' || v === '') throw new ValidationError(where, key, `expected one column name, got ${describe(v)}`);
    return v;
  };
  const out = {
    observations: list('observations', true) as string[],
    actions: list('actions', true) as string[],
    rewards: one('rewards', true) as string,
    ...(m.next_observations !== undefined ? { next_observations: list('next_observations', false) } : {}),
    ...(m.terminals !== undefined ? { terminals: one('terminals', false) } : {}),
    ...(m.timeouts !== undefined ? { timeouts: one('timeouts', false) } : {}),
    ...(m.episode !== undefined ? { episode: one('episode', false) } : {}),
  };
  return out;
}

/** `obs_{0..2}` → obs_0, obs_1, obs_2 (inclusive); other names unchanged. */
function expandRange(name: string): string[] {
  const m = /^(.*)\{(\d+)\.\.(\d+)\}(.*)$/.exec(name);
  if (!m) return [name];
  const a = Number(m[2]);
  const b = Number(m[3]);
  if (b < a) throw new ValidationError('column mapping', name, `range {${a}..${b}} is empty (the end is inclusive and must be ≥ the start)`);
  return Array.from({ length: b - a + 1 }, (_, k) => `${m[1]}${a + k}${m[4]}`);
}

/** One parsed input row: a value getter and the line it came from. */
interface SourceRow {
  line: number;
  get(column: string): unknown;
}

/**
 * Loads a JSON-lines file (one object per line; blank lines skipped) through `mapping`.
 * @throws ValidationError naming the file, the line and the column
 * @example const { dataset } = await loadJsonlDataset('log.jsonl', { observations: 'obs', actions: 'act', rewards: 'r', terminals: 'done' });
 */
export async function loadJsonlDataset(path: string, mapping: ColumnMapping, options: TabularOptions = {}): Promise<DatasetLoadResult> {
  const where = `loadJsonlDataset(${path})`;
  const text = await readFile(path, 'utf8');
  const rows: SourceRow[] = [];
  const lines = text.split('\n');
  for (let k = 0; k < lines.length; k++) {
    const src = lines[k].trim();
    if (src === '') continue;
    let obj: unknown;
    try {
      obj = JSON.parse(src);
    } catch (err) {
      throw new ValidationError(where, `line ${k + 1}`, `not valid JSON (${err instanceof Error ? err.message : String(err)})`);
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new ValidationError(where, `line ${k + 1}`, `expected a JSON object, got ${describe(obj)}`);
    rows.push({ line: k + 1, get: (c) => lookupPath(obj, c) });
  }
  return fromRows(rows, parseColumnMapping(mapping, where), where, path, options.metadata, true);
}

/**
 * Loads a CSV file with a header row (RFC 4180 quoting: `"a,b"`, `""` for a quote) through
 * `mapping`.
 * @throws ValidationError naming the file, the line and the column
 * @example const { dataset } = await loadCsvDataset('log.csv', { observations: ['x', 'v'], actions: ['u'], rewards: 'r', timeouts: 'cut' });
 */
export async function loadCsvDataset(path: string, mapping: ColumnMapping, options: TabularOptions = {}): Promise<DatasetLoadResult> {
  const where = `loadCsvDataset(${path})`;
  const delimiter = options.delimiter ?? ',';
  if (delimiter.length !== 1 || delimiter === '"' || delimiter === '\n') throw new ValidationError(where, 'options.delimiter', `expected one character other than a quote or newline, got ${describe(delimiter)}`);
  const records = parseCsv(await readFile(path, 'utf8'), delimiter, where);
  if (records.length === 0) throw new ValidationError(where, 'line 1', 'expected a header row, the file is empty');
  const [header, ...body] = records;
  const index = new Map<string, number>();
  header.fields.forEach((name, k) => {
    if (index.has(name)) throw new ValidationError(where, `line ${header.line}, column "${name}"`, 'the header names this column twice');
    index.set(name, k);
  });
  const m = parseColumnMapping(mapping, where);
  for (const c of [...m.observations, ...m.actions, m.rewards, ...(m.next_observations ?? []), m.terminals, m.timeouts, m.episode]) {
    if (c !== undefined && !index.has(c)) throw new ValidationError(where, `column "${c}"`, `not in the header (line ${header.line}: ${header.fields.map((f) => JSON.stringify(f)).join(', ')})`);
  }
  const rows: SourceRow[] = body.map((r) => {
    if (r.fields.length !== header.fields.length) throw new ValidationError(where, `line ${r.line}`, `expected ${header.fields.length} fields (as the header), got ${r.fields.length}`);
    return { line: r.line, get: (c) => r.fields[index.get(c) as number] };
  });
  return fromRows(rows, m, where, path, options.metadata, false);
}

function fromRows(rows: SourceRow[], m: ReturnType<typeof parseColumnMapping>, where: string, path: string, metadata: DatasetMetadata | undefined, arraysAllowed: boolean): DatasetLoadResult {
  const notes: string[] = [];
  const n = rows.length;
  // Vector widths: a column holding an array (JSONL) counts its entries, fixed by the first row.
  const widths = (cols: string[]): number[] => cols.map((c) => (arraysAllowed && n > 0 && Array.isArray(rows[0].get(c)) ? (rows[0].get(c) as unknown[]).length : 1));
  const obsW = widths(m.observations);
  const actW = widths(m.actions);
  const obsDim = obsW.reduce((a, b) => a + b, 0);
  const actDim = actW.reduce((a, b) => a + b, 0);
  if (m.next_observations) {
    const nextDim = widths(m.next_observations).reduce((a, b) => a + b, 0);
    if (nextDim !== obsDim) throw new ValidationError(where, 'next_observations', `maps to ${nextDim} values, observations to ${obsDim}; they must match`);
  }
  const f: DatasetFields = {
    observations: new Float32Array(n * obsDim),
    actions: new Float32Array(n * actDim),
    rewards: new Float32Array(n),
    next_observations: new Float32Array(n * obsDim),
    terminals: new Uint8Array(n),
    timeouts: new Uint8Array(n),
  };
  const fill = (row: SourceRow, cols: string[], w: number[], out: Float32Array, offset: number): void => {
    let j = offset;
    cols.forEach((c, k) => {
      const v = row.get(c);
      if (Array.isArray(v) && arraysAllowed) {
        if (v.length !== w[k]) throw new ValidationError(where, `line ${row.line}, column "${c}"`, `expected an array of ${w[k]} numbers (as line ${rows[0].line}), got ${v.length}`);
        v.forEach((x, e) => (out[j++] = number(x, row, `${c}[${e}]`)));
      } else {
        out[j++] = number(v, row, c);
      }
    });
  };
  const number = (v: unknown, row: SourceRow, c: string): number => {
    const x = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
    if (!Number.isFinite(x) || !Number.isFinite(Math.fround(x))) {
      throw new ValidationError(where, `line ${row.line}, column "${c}"`, `expected a finite number representable as float32, got ${v === undefined ? 'nothing (missing)' : describe(v)}`);
    }
    return x;
  };
  const flag = (v: unknown, row: SourceRow, c: string): 0 | 1 => {
    if (v === true || v === 1 || (typeof v === 'string' && ['1', 'true', 'True', 'TRUE', '1.0'].includes(v.trim()))) return 1;
    if (v === false || v === 0 || (typeof v === 'string' && ['0', 'false', 'False', 'FALSE', '0.0', ''].includes(v.trim()))) return 0;
    throw new ValidationError(where, `line ${row.line}, column "${c}"`, `expected a flag (0/1, true/false), got ${v === undefined ? 'nothing (missing)' : describe(v)}`);
  };
  const episodeKey = (row: SourceRow): string => {
    const v = row.get(m.episode as string);
    if (v === undefined || v === null || v === '') throw new ValidationError(where, `line ${row.line}, column "${m.episode}"`, 'expected an episode value, got nothing');
    return JSON.stringify(v);
  };
  rows.forEach((row, i) => {
    fill(row, m.observations, obsW, f.observations, i * obsDim);
    fill(row, m.actions, actW, f.actions, i * actDim);
    if (m.next_observations) fill(row, m.next_observations, widths(m.next_observations), f.next_observations, i * obsDim);
    f.rewards[i] = number(row.get(m.rewards), row, m.rewards);
    if (m.terminals) f.terminals[i] = flag(row.get(m.terminals), row, m.terminals);
    if (m.timeouts) f.timeouts[i] = flag(row.get(m.timeouts), row, m.timeouts);
  });
  if (m.episode) {
    let cut = 0;
    for (let i = 0; i + 1 < n; i++) {
      if (episodeKey(rows[i]) !== episodeKey(rows[i + 1]) && f.terminals[i] === 0 && f.timeouts[i] === 0) {
        f.timeouts[i] = 1;
        cut++;
      }
    }
    if (cut > 0) notes.push(`${cut} episode ends taken from changes of "${m.episode}" (timeouts set)`);
  }
  const meta = { source: path, ...metadata };
  if (m.next_observations) return { dataset: new OfflineDataset(f, { obsDim, actDim, metadata: meta, where }), notes };
  const { fields, dropped } = nextFromFollowingRow(f, obsDim, actDim);
  notes.push(`no next_observations mapped: taken from the next row of the same episode; the last row of each episode (${dropped} rows) has none and was dropped`);
  return { dataset: new OfflineDataset(fields, { obsDim, actDim, metadata: meta, where }), notes };
}

/** `a.b[2].c` in nested objects and arrays; a key containing dots is tried whole first. */
function lookupPath(obj: unknown, path: string): unknown {
  const rec = obj as Record<string, unknown>;
  if (path in rec) return rec[path];
  let cur: unknown = obj;
  for (const part of path.match(/[^.[\]]+|\[\d+\]/g) ?? []) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = part.startsWith('[') ? (cur as unknown[])[Number(part.slice(1, -1))] : (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** CSV records with the physical line each starts on; blank lines are skipped. */
function parseCsv(text: string, delimiter: string, where: string): { line: number; fields: string[] }[] {
  const out: { line: number; fields: string[] }[] = [];
  let line = 1;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0; // a byte-order mark
  while (i < text.length) {
    const start = line;
    const fields: string[] = [];
    let field = '';
    let quoted = false;
    let atFieldStart = true;
    for (; i < text.length; i++) {
      const ch = text[i];
      if (quoted) {
        if (ch === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i++;
          } else quoted = false;
        } else {
          if (ch === '\n') line++;
          field += ch;
        }
      } else if (ch === '"' && atFieldStart) {
        quoted = true;
        atFieldStart = false;
      } else if (ch === delimiter) {
        fields.push(field);
        field = '';
        atFieldStart = true;
      } else if (ch === '\n' || ch === '\r') {
        if (ch === '\r' && text[i + 1] === '\n') i++;
        i++;
        line++;
        break;
      } else {
        field += ch;
        atFieldStart = false;
      }
    }
    if (quoted) throw new ValidationError(where, `line ${start}`, 'a quoted field is not closed before the end of the file');
    fields.push(field);
    if (!(fields.length === 1 && fields[0].trim() === '')) out.push({ line: start, fields: fields.map((f) => f.trim()) });
  }
  return out;
}
