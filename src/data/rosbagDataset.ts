/**
 * ROS 2 bags (rosbag2, MCAP storage) as offline datasets: the topics and fields a `BagMapping`
 * names are decoded with the schemas stored in the bag, resampled onto the control period, and
 * paired into transitions.
 *
 * ## Rules
 * - Time: a topic's messages are stamped with `header.stamp` when its messages have a header
 *   (`stamp: auto`, the default), else with the MCAP log time (when rosbag2 received the
 *   message); `stamp: header` or `stamp: log` forces one source. The report says which each topic
 *   used. Header stamps of a simulation are simulated time while log times are wall-clock time:
 *   mixing them gives ranges that do not overlap, which is an error that says so.
 * - Grid: t_k = t_0 + k·period, from the latest first stamp to the earliest last stamp over the
 *   mapped topics (the interval where every topic has data; nothing is extrapolated).
 * - Values at t_k: `latest` (zero-order hold) or `linear` interpolation, per field group
 *   (observations, actions, rewards); see `resample.ts`. Out-of-order stamps are counted and
 *   sorted; of equal stamps the last logged message is kept.
 * - Gaps: a topic silent for more than `gapPeriods` periods. With `onGap: split` the grid
 *   samples strictly inside a gap are dropped and the episode is cut there; with `keep` they
 *   stay. Either way the report lists every gap.
 * - Transitions: sample k gives observations o_k and actions a_k; the transition is
 *   (o_k, a_k, r_{k+1}, o_{k+1}): the next observation is the next sample in time, never the
 *   current one, and the reward is the mapped value at t_{k+1} (the reward the step earned), or 0
 *   when no reward is mapped. Each run of consecutive kept samples is one episode whose last
 *   transition has `timeouts` = 1 (the recording or a gap cut it; the state is not terminal);
 *   bags carry no terminal flag, so `terminals` are 0.
 */
import { basename } from 'node:path';
import { ValidationError, describe } from '../core/errors.js';
import type { BagField, BagMapping, ResampleRule } from './bagMapping.js';
import { fieldWidth, parseBagMapping } from './bagMapping.js';
import type { OfflineDataset } from './dataset.js';
import { DatasetBuilder } from './datasetBuilder.js';
import { Ros2MessageDecoder, bagFiles, openMcapFile } from './mcapFile.js';
import type { Signal } from './resample.js';
import { gapIntervals, makeGrid, markGaps, orderByStamp, resampleSignal, validRuns } from './resample.js';

/** One mapped topic in the import report. */
export interface BagTopicReport {
  topic: string;
  type: string;
  /** Messages read. */
  messages: number;
  stampSource: 'header' | 'log';
  /** Messages stamped earlier than their predecessor (in log order). */
  outOfOrder: number;
  /** Messages dropped for a later-logged message with the same stamp. */
  duplicates: number;
  /** Messages whose header stamp is 0 (often an unset stamp). */
  zeroStamps: number;
  firstStampNs: bigint;
  lastStampNs: bigint;
  /** Median spacing of consecutive stamps, ms. */
  medianPeriodMs: number;
  /** Silences longer than `gapPeriods` periods. */
  gaps: { fromNs: bigint; toNs: bigint; periods: number }[];
}

/** What `loadRosbagDataset` did. */
export interface BagImportReport {
  files: string[];
  controlPeriodMs: number;
  resample: BagMapping['resample'];
  /** The time rule, in words. */
  stampRule: string;
  gridStartNs: bigint;
  gridEndNs: bigint;
  /** Grid samples. */
  samples: number;
  /** Grid samples strictly inside a gap of some topic. */
  samplesInGaps: number;
  /** Samples dropped (in gaps with `onGap: split`, or alone in a run). */
  samplesDropped: number;
  transitions: number;
  episodes: number;
  observationNames: string[];
  actionNames: string[];
  rewardName: string | null;
  topics: BagTopicReport[];
  notes: string[];
}

/** Collected messages of one topic: stamps and log times in log order, values per field. */
interface TopicData {
  topic: string;
  type: string;
  fields: { field: BagField; group: 'observations' | 'actions' | 'rewards'; width: number | undefined; values: number[] }[];
  stamps: bigint[];
  stampSource: 'header' | 'log' | undefined;
  zeroStamps: number;
}

/**
 * Imports a rosbag2 MCAP bag (a `.mcap` file or a bag directory) through `mapping` (a parsed
 * `BagMapping` or its YAML text). Rules in the file comment.
 * @returns the dataset and the import report (stamp sources, out-of-order counts, gaps)
 * @throws ValidationError naming the topic, field or key: a topic missing from the bag, a type
 *   that differs, a path that does not lead to a number, topics whose times do not overlap
 * @example
 * const { dataset, report } = await loadRosbagDataset('run3/', readFileSync('mapping.yaml', 'utf8'));
 */
export async function loadRosbagDataset(path: string, mapping: BagMapping | string): Promise<{ dataset: OfflineDataset; report: BagImportReport }> {
  const where = `loadRosbagDataset(${path})`;
  const m = typeof mapping === 'string' ? parseBagMapping(mapping, `${where} mapping`) : mapping;
  const files = await bagFiles(path);
  const topics = new Map<string, TopicData>();
  const entries: [BagField, TopicData['fields'][number]['group']][] = [
    ...m.observations.map((f) => [f, 'observations'] as [BagField, 'observations']),
    ...m.actions.map((f) => [f, 'actions'] as [BagField, 'actions']),
    ...(m.rewards ? [[m.rewards, 'rewards'] as [BagField, 'rewards']] : []),
  ];
  for (const [field, group] of entries) {
    let t = topics.get(field.topic);
    if (!t) {
      t = { topic: field.topic, type: field.type, fields: [], stamps: [], stampSource: undefined, zeroStamps: 0 };
      topics.set(field.topic, t);
    }
    if (normType(t.type) !== normType(field.type)) throw new ValidationError(where, field.text, `topic ${field.topic} is mapped with two types, ${t.type} and ${field.type}`);
    t.fields.push({ field, group, width: fieldWidth(field), values: [] });
  }

  const notes: string[] = [];
  for (const file of files) {
    const mcap = await openMcapFile(file);
    try {
      const fileWhere = `${where} ${basename(file)}`;
      const available = new Map<string, string>();
      for (const ch of mcap.reader.channelsById.values()) available.set(ch.topic, mcap.reader.schemasById.get(ch.schemaId)?.name ?? '?');
      for (const t of topics.values()) {
        const type = available.get(t.topic);
        if (type === undefined) {
          if (files.length > 1) continue;
          const list = [...available].map(([k, v]) => `${k} (${v})`).join(', ');
          throw new ValidationError(fileWhere, t.topic, `not in the bag; its topics: ${list}`);
        }
        if (normType(type) !== normType(t.type)) throw new ValidationError(fileWhere, t.topic, `has type ${type} in the bag, the mapping says ${t.type}`);
      }
      const decoder = new Ros2MessageDecoder(mcap.reader, fileWhere);
      for await (const msg of mcap.reader.readMessages({ topics: [...topics.keys()] })) {
        const topic = mcap.reader.channelsById.get(msg.channelId)?.topic as string;
        const t = topics.get(topic) as TopicData;
        const decoded = decoder.decode(msg);
        const k = t.stamps.length;
        const header = headerStamp(decoded);
        if (t.stampSource === undefined) {
          if (m.stamp === 'header' && header === undefined) throw new ValidationError(fileWhere, topic, `stamp: header, but ${t.type} has no header.stamp (use stamp: auto or log)`);
          t.stampSource = m.stamp === 'log' || header === undefined ? 'log' : 'header';
        }
        if (t.stampSource === 'header') {
          if (header === undefined) throw new ValidationError(fileWhere, `${topic} message ${k}`, 'has no header.stamp although the first message had one');
          if (header === 0n) t.zeroStamps++;
          t.stamps.push(header);
        } else {
          t.stamps.push(msg.logTime);
        }
        for (const f of t.fields) {
          const before = f.values.length;
          extract(decoded, f.field, f.values, fileWhere, k);
          const got = f.values.length - before;
          if (f.width === undefined) f.width = got;
          else if (got !== f.width) throw new ValidationError(fileWhere, `${f.field.text} (message ${k})`, `gives ${got} values, earlier messages ${f.width}: a whole array must keep its length (map a range such as [0..${f.width - 1}])`);
        }
      }
    } finally {
      await mcap.close();
    }
  }

  // Sort each topic by stamp and build its signals.
  const periodNs = Math.round(m.controlPeriodMs * 1e6);
  const maxGapNs = m.gapPeriods * periodNs;
  const topicReports: BagTopicReport[] = [];
  const sorted = new Map<string, { stamps: bigint[]; order: number[] }>();
  for (const t of topics.values()) {
    if (t.stamps.length === 0) throw new ValidationError(where, t.topic, 'has no messages in the bag');
    const o = orderByStamp(t.stamps);
    const stamps = o.order.map((i) => t.stamps[i]);
    sorted.set(t.topic, { stamps, order: o.order });
    const diffs = stamps.slice(1).map((s, i) => Number(s - stamps[i])).sort((a, b) => a - b);
    topicReports.push({
      topic: t.topic,
      type: t.type,
      messages: t.stamps.length,
      stampSource: t.stampSource as 'header' | 'log',
      outOfOrder: o.outOfOrder,
      duplicates: o.duplicates,
      zeroStamps: t.zeroStamps,
      firstStampNs: stamps[0],
      lastStampNs: stamps[stamps.length - 1],
      medianPeriodMs: diffs.length > 0 ? diffs[Math.floor(diffs.length / 2)] / 1e6 : 0,
      gaps: [],
    });
    if (t.zeroStamps > 0) notes.push(`${t.topic}: ${t.zeroStamps} messages have a zero header stamp (unset?)`);
  }
  const t0 = topicReports.reduce((a, r) => (r.firstStampNs > a ? r.firstStampNs : a), topicReports[0].firstStampNs);
  const t1 = topicReports.reduce((a, r) => (r.lastStampNs < a ? r.lastStampNs : a), topicReports[0].lastStampNs);
  if (t1 < t0) {
    const ranges = topicReports.map((r) => `${r.topic} [${fmtSec(r.firstStampNs)}, ${fmtSec(r.lastStampNs)}] s (${r.stampSource === 'header' ? 'header stamps' : 'log time'})`).join('; ');
    throw new ValidationError(where, 'time', `the mapped topics have no time in common: ${ranges}. Header stamps and log times are different clocks in simulation; set stamp: log to use log times for all`);
  }
  const grid = makeGrid(0, Number(t1 - t0), periodNs);
  if (grid.length < 2) throw new ValidationError(where, 'time', `the topics overlap for ${fmtSec(t1 - t0)} s, less than two control periods of ${m.controlPeriodMs} ms`);

  // Resample every field onto the grid; mark the samples inside gaps.
  const inGap = new Uint8Array(grid.length);
  const obsNames: string[] = [];
  const actNames: string[] = [];
  let rewardName: string | null = null;
  const widthOfGroup = (g: string): number => [...topics.values()].flatMap((t) => t.fields).filter((f) => f.group === g).reduce((s, f) => s + (f.width as number), 0);
  const obsDim = widthOfGroup('observations');
  const actDim = widthOfGroup('actions');
  const O = new Float64Array(grid.length * obsDim);
  const A = new Float64Array(grid.length * actDim);
  const R = new Float64Array(grid.length);
  const offsets = { observations: 0, actions: 0, rewards: 0 };
  // Fields in mapping order, so vectors are laid out as the mapping lists them.
  for (const [field] of entries) {
    const t = topics.get(field.topic) as TopicData;
    const f = t.fields.find((x) => x.field === field) as TopicData['fields'][number];
    const { stamps, order } = sorted.get(t.topic) as { stamps: bigint[]; order: number[] };
    const w = f.width as number;
    const values = new Float64Array(order.length * w);
    order.forEach((i, r) => {
      for (let d = 0; d < w; d++) values[r * w + d] = f.values[i * w + d];
    });
    const signal: Signal = { stampsNs: Float64Array.from(stamps, (s) => Number(s - t0)), values, dim: w };
    const rule: ResampleRule = m.resample[f.group];
    const [out, dim, names] = f.group === 'observations' ? [O, obsDim, obsNames] : f.group === 'actions' ? [A, actDim, actNames] : [R, 1, null];
    resampleSignal(signal, grid, rule, out, dim, offsets[f.group]);
    offsets[f.group] += w;
    const fieldNames = valueNames(field, w);
    if (names) names.push(...fieldNames);
    else rewardName = fieldNames[0];
  }
  for (const r of topicReports) {
    const stamps = Float64Array.from((sorted.get(r.topic) as { stamps: bigint[] }).stamps, (s) => Number(s - t0));
    const gaps = gapIntervals(stamps, maxGapNs);
    r.gaps = gaps.map(([a, b]) => ({ fromNs: t0 + BigInt(a), toNs: t0 + BigInt(b), periods: (b - a) / periodNs }));
    markGaps(grid, gaps, inGap);
  }
  const samplesInGaps = inGap.reduce((s, x) => s + x, 0);
  const runs = m.onGap === 'split' ? validRuns(inGap) : [[0, grid.length] as [number, number]];

  const builder = new DatasetBuilder(obsDim, actDim, Math.max(1, grid.length));
  let kept = 0;
  for (const [a, b] of runs) {
    if (b - a < 2) continue;
    kept += b - a;
    for (let k = a; k < b - 1; k++) {
      builder.append(
        {
          observation: O.subarray(k * obsDim, (k + 1) * obsDim),
          action: A.subarray(k * actDim, (k + 1) * actDim),
          reward: m.rewards ? R[k + 1] : 0,
          nextObservation: O.subarray((k + 1) * obsDim, (k + 2) * obsDim),
          terminal: false,
          timeout: k === b - 2,
        },
        `${where} sample ${k}`,
      );
    }
  }
  if (builder.size === 0) throw new ValidationError(where, 'time', `no two consecutive samples outside gaps (${grid.length} samples, ${samplesInGaps} in gaps); raise gapPeriods or set onGap: keep`);
  const rules = { observations: m.resample.observations, actions: m.resample.actions, ...(m.rewards ? { rewards: m.resample.rewards } : {}) };
  const resampleText = new Set(Object.values(rules)).size === 1 ? m.resample.observations : Object.entries(rules).map(([k, v]) => `${k} ${v}`).join(', ');
  const stampRule =
    m.stamp === 'auto' ? 'header.stamp when the message has a header, else the MCAP log time' : m.stamp === 'header' ? 'header.stamp' : 'the MCAP log time';
  const dataset = builder.build(
    {
      source: `rosbag2:${path}`,
      controlPeriodMs: String(m.controlPeriodMs),
      resample: resampleText,
      stamp: stampRule,
      startNs: String(t0),
      observationNames: obsNames.join(','),
      actionNames: actNames.join(','),
      ...m.metadata,
    },
    where,
  );
  if (!m.rewards) notes.push('no rewards mapped: rewards are 0');
  notes.push('bags carry no terminal flag: terminals are 0; each episode ends with timeouts = 1');
  return {
    dataset,
    report: {
      files,
      controlPeriodMs: m.controlPeriodMs,
      resample: m.resample,
      stampRule,
      gridStartNs: t0,
      gridEndNs: t0 + BigInt(grid[grid.length - 1]),
      samples: grid.length,
      samplesInGaps,
      samplesDropped: grid.length - kept,
      transitions: dataset.size,
      episodes: dataset.episodes().length,
      observationNames: obsNames,
      actionNames: actNames,
      rewardName,
      topics: topicReports,
      notes,
    },
  };
}

function normType(t: string): string {
  return t.replace('/msg/', '/');
}

/** `header.stamp` as integer nanoseconds, or undefined when the message has none. */
function headerStamp(msg: Record<string, unknown>): bigint | undefined {
  const h = msg.header as { stamp?: { sec?: unknown; nanosec?: unknown } } | undefined;
  const s = h?.stamp;
  if (s === undefined || typeof s.sec !== 'number' || typeof s.nanosec !== 'number') return undefined;
  return BigInt(s.sec) * 1_000_000_000n + BigInt(s.nanosec);
}

/** Appends the values `field` selects in `msg` to `out`. */
function extract(msg: Record<string, unknown>, field: BagField, out: number[], where: string, k: number): void {
  let cur: unknown = msg;
  const at = `${field.text} (message ${k})`;
  field.path.forEach((step, s) => {
    if (cur === null || typeof cur !== 'object' || ArrayBuffer.isView(cur) || Array.isArray(cur) || !(step.name in (cur as object))) {
      const have = cur !== null && typeof cur === 'object' && !Array.isArray(cur) && !ArrayBuffer.isView(cur) ? `; fields: ${Object.keys(cur).join(', ')}` : '';
      throw new ValidationError(where, at, `no field "${step.name}" at ${field.path.slice(0, s).map((p) => p.name).join('.') || 'the message root'}${have}`);
    }
    cur = (cur as Record<string, unknown>)[step.name];
    const last = s === field.path.length - 1;
    if (step.index !== undefined || step.range) {
      if (!isArrayLike(cur)) throw new ValidationError(where, at, `"${step.name}" is ${describe(cur)}, not an array`);
      const [a, b] = step.range ?? [step.index as number, step.index as number];
      if (b >= cur.length) throw new ValidationError(where, at, `"${step.name}" has ${cur.length} entries; index ${b} is out of range`);
      if (step.range) {
        for (let i = a; i <= b; i++) out.push(toNumber(cur[i], where, at));
        return;
      }
      cur = cur[a];
    }
    if (last) {
      if (isArrayLike(cur)) for (let i = 0; i < cur.length; i++) out.push(toNumber(cur[i], where, at));
      else out.push(toNumber(cur, where, at));
    }
  });
}

function isArrayLike(v: unknown): v is ArrayLike<unknown> {
  return Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));
}

function toNumber(v: unknown, where: string, at: string): number {
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new ValidationError(where, at, `expected a finite number, got ${describe(v)}`);
    return v;
  }
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  throw new ValidationError(where, at, `expected a number, got ${describe(v)}${v !== null && typeof v === 'object' ? ` with fields ${Object.keys(v).join(', ')}` : ''}`);
}

/** `/odom:pose.pose.position.x`, `/joint_states:position[3]`, one name per value. */
function valueNames(f: BagField, width: number): string[] {
  const last = f.path[f.path.length - 1];
  const stem = f.path.map((p, i) => (i < f.path.length - 1 && p.index !== undefined ? `${p.name}[${p.index}]` : p.name)).join('.');
  if (last.index !== undefined) return [`${f.topic}:${stem}[${last.index}]`];
  if (last.range) return Array.from({ length: width }, (_, i) => `${f.topic}:${stem}[${(last.range as [number, number])[0] + i}]`);
  return width === 1 ? [`${f.topic}:${stem}`] : Array.from({ length: width }, (_, i) => `${f.topic}:${stem}[${i}]`);
}

function fmtSec(ns: bigint): string {
  return (Number(ns) / 1e9).toFixed(3);
}
