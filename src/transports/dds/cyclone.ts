/**
 * The part of Cyclone DDS's C API that `DdsTransport` calls, bound with koffi: participants,
 * domains, raw-CDR topics (through the shim, `rawCdrShim.ts`), readers and writers with their QoS,
 * waitsets and read conditions. Each call checks Cyclone's return code and throws a `DdsError`
 * that names the call, its subject and Cyclone's reason.
 */
import { createRequire } from 'node:module';
import type { QosProfile } from '../transport.js';
import { buildRawCdrShim, type CycloneLibraryOptions } from './rawCdrShim.js';

/** A Cyclone DDS call that failed. */
export class DdsError extends Error {
  /** The call and its subject, e.g. `dds_create_reader(rt/joint_states)`. */
  readonly where: string;
  /** Cyclone's return code (negative), e.g. -3 for BAD_PARAMETER. */
  readonly code: number;
  constructor(where: string, code: number, reason: string, hint = '') {
    super(`${where} failed: ${reason} (DDS return code ${code})${hint === '' ? '' : `; ${hint}`}`);
    this.name = 'DdsError';
    this.where = where;
    this.code = code;
  }
}

/** Cyclone's DDS_RETCODE_PRECONDITION_NOT_MET: e.g. a domain created twice. */
export const DDS_RETCODE_PRECONDITION_NOT_MET = -4;
/** Cyclone's DDS_RETCODE_TIMEOUT: e.g. a reliable writer whose history stayed full. */
export const DDS_RETCODE_TIMEOUT = -10;

const DDS_ANY_STATE = 127;
const DDS_RELIABILITY = { bestEffort: 0, reliable: 1 } as const;
const DDS_DURABILITY = { volatile: 0, transientLocal: 1 } as const;
const DDS_HISTORY_KEEP_LAST = 0;
/**
 * How long a reliable writer may block when its history is full of unacknowledged samples before
 * `dds_write` gives up with TIMEOUT. Keep-last writers evict the oldest sample instead of waiting,
 * so this bounds only the flow control Cyclone applies above `WhcHigh` (500 kB unacknowledged).
 */
const MAX_BLOCKING_NS = 10_000_000n;

type Fn = (...args: unknown[]) => unknown;

/** The bound functions, with Cyclone's return codes checked. */
export interface Cyclone {
  /** The libddsc the shim was built against (`libddsc.so` when a prebuilt shim was given). */
  readonly libddscPath: string;
  /** The shim, through which every function is bound (the wait worker loads it too). */
  readonly shimPath: string;
  /** The resolved path of koffi's CommonJS entry, for worker threads. */
  readonly koffiPath: string;
  createDomain(domainId: number, config: string): number;
  createParticipant(domainId: number): number;
  createRawTopic(participant: number, topic: string, typeName: string): number;
  createWriter(participant: number, topic: number, qos: QosProfile, what: string): number;
  createReader(participant: number, topic: number, qos: QosProfile, what: string): number;
  createWaitset(participant: number): number;
  createReadCondition(reader: number, what: string): number;
  attach(waitset: number, entity: number, what: string): void;
  setTrigger(waitset: number, trigger: boolean): void;
  /** Writes one CDR sample; returns Cyclone's return code (0 or negative) for the caller to judge. */
  writeRaw(writer: number, bytes: Uint8Array): number;
  /** See `mbrl_dds_take_raw` in rawCdrShim.ts. */
  takeRaw(reader: number, buf: Uint8Array, out: BigInt64Array): number;
  copyRelease(sample: bigint, buf: Uint8Array): void;
  /** Deletes an entity and its children; a handle already gone is not an error. */
  delete(entity: number): void;
  reason(code: number): string;
}

let loading: { key: string; promise: Promise<Cyclone> } | undefined;

/**
 * Loads libddsc and the raw-CDR shim (compiling it on first use) and binds the functions. The
 * first call's options decide for the whole process: a process loads one Cyclone.
 * @throws Error naming the missing piece (compiler, headers, libddsc) and how to get it
 */
export function loadCyclone(options: CycloneLibraryOptions = {}): Promise<Cyclone> {
  const key = JSON.stringify([options.cycloneHome, options.shimPath, options.cacheDir, options.cc]);
  if (loading !== undefined) {
    if (loading.key !== key) return loading.promise.then(() => Promise.reject(new Error(`loadCyclone: Cyclone DDS is already loaded in this process with other library options (${loading!.key}); got ${key}`)));
    return loading.promise;
  }
  const promise = bind(options);
  loading = { key, promise };
  // A failed load (say, before the compiler was installed) may be retried.
  promise.catch(() => {
    if (loading?.promise === promise) loading = undefined;
  });
  return promise;
}

async function bind(options: CycloneLibraryOptions): Promise<Cyclone> {
  const libs = await buildRawCdrShim(options);
  const { default: koffi } = await import('koffi');
  // Cyclone's own functions are looked up through the shim too (dlsym searches a library's
  // dependencies): the libddsc it was linked against, which it keeps loaded (-z nodelete), and
  // which a robot with only the runtime package installs under a versioned name.
  const shim = koffi.load(libs.shim);
  const f = (proto: string): Fn => shim.func(proto) as Fn;
  const createDomain = f('int32_t dds_create_domain(uint32_t domain, const char *config)');
  const createParticipant = f('int32_t dds_create_participant(uint32_t domain, void *qos, void *listener)');
  const createQos = f('void *dds_create_qos()');
  const deleteQos = f('void dds_delete_qos(void *qos)');
  const qsetReliability = f('void dds_qset_reliability(void *qos, int kind, int64_t maxBlockingTime)');
  const qsetDurability = f('void dds_qset_durability(void *qos, int kind)');
  const qsetHistory = f('void dds_qset_history(void *qos, int kind, int32_t depth)');
  const createWriter = f('int32_t dds_create_writer(int32_t participant, int32_t topic, void *qos, void *listener)');
  const createReader = f('int32_t dds_create_reader(int32_t participant, int32_t topic, void *qos, void *listener)');
  const createWaitset = f('int32_t dds_create_waitset(int32_t owner)');
  const createReadCondition = f('int32_t dds_create_readcondition(int32_t reader, uint32_t mask)');
  const waitsetAttach = f('int32_t dds_waitset_attach(int32_t waitset, int32_t entity, intptr_t arg)');
  const waitsetSetTrigger = f('int32_t dds_waitset_set_trigger(int32_t waitset, bool trigger)');
  const ddsDelete = f('int32_t dds_delete(int32_t entity)');
  const strretcode = f('const char *dds_strretcode(int32_t rc)');
  const createRawTopic = f('int32_t mbrl_dds_create_raw_topic(int32_t participant, const char *topic, const char *typeName, void *qos)');
  const writeRaw = f('int32_t mbrl_dds_write_raw(int32_t writer, const uint8_t *data, uint32_t size)');
  const takeRaw = f('int32_t mbrl_dds_take_raw(int32_t reader, uint8_t *buf, uint32_t cap, int64_t *out)');
  const copyRelease = f('void mbrl_dds_copy_release(int64_t sample, uint8_t *buf)');

  const reason = (code: number): string => String(strretcode(code));
  const checked = (where: string, rc: unknown, hint = ''): number => {
    const code = Number(rc);
    if (code < 0) throw new DdsError(where, code, reason(code), hint);
    return code;
  };
  const withQos = <R>(profile: QosProfile, use: (qos: unknown) => R): R => {
    const qos = createQos();
    try {
      qsetReliability(qos, DDS_RELIABILITY[profile.reliability], MAX_BLOCKING_NS);
      qsetDurability(qos, DDS_DURABILITY[profile.durability]);
      qsetHistory(qos, DDS_HISTORY_KEEP_LAST, profile.depth);
      return use(qos);
    } finally {
      deleteQos(qos);
    }
  };

  return {
    libddscPath: libs.libddsc,
    shimPath: libs.shim,
    koffiPath: createRequire(import.meta.url).resolve('koffi'),
    createDomain: (domainId, config) =>
      checked(`dds_create_domain(${domainId})`, createDomain(domainId, config), `Cyclone DDS refused the configuration (it printed why on stderr): ${config.length > 400 ? `${config.slice(0, 400)}…` : config}`),
    createParticipant: (domainId) =>
      checked(`dds_create_participant(domain ${domainId})`, createParticipant(domainId, null, null), `Cyclone DDS printed why on stderr; check CYCLONEDDS_URI (${process.env.CYCLONEDDS_URI ?? 'unset'}) and the network interfaces it names`),
    createRawTopic: (participant, topic, typeName) => checked(`dds_create_topic_sertype(${topic}, ${typeName})`, createRawTopic(participant, topic, typeName, null)),
    createWriter: (participant, topic, qos, what) => withQos(qos, (q) => checked(`dds_create_writer(${what})`, createWriter(participant, topic, q, null))),
    createReader: (participant, topic, qos, what) => withQos(qos, (q) => checked(`dds_create_reader(${what})`, createReader(participant, topic, q, null))),
    createWaitset: (participant) => checked('dds_create_waitset', createWaitset(participant)),
    createReadCondition: (reader, what) => checked(`dds_create_readcondition(${what})`, createReadCondition(reader, DDS_ANY_STATE)),
    attach: (waitset, entity, what) => void checked(`dds_waitset_attach(${what})`, waitsetAttach(waitset, entity, entity)),
    setTrigger: (waitset, trigger) => void checked('dds_waitset_set_trigger', waitsetSetTrigger(waitset, trigger)),
    writeRaw: (writer, bytes) => Number(writeRaw(writer, bytes, bytes.byteLength)),
    takeRaw: (reader, buf, out) => Number(takeRaw(reader, buf, buf.byteLength, out)),
    copyRelease: (sample, buf) => void copyRelease(sample, buf),
    delete: (entity) => void ddsDelete(entity),
    reason,
  };
}
