/**
 * The small C library that lets JavaScript hand Cyclone DDS serialized samples as they are: a
 * `ddsi_sertype` whose samples are opaque CDR byte strings (the approach of rmw_cyclonedds's
 * `serdata_rmw` and zenoh-bridge-ros2dds's blob sertype, minus their (de)serializers). Cyclone
 * 0.10's public C API reads and writes samples only through a sertype: `dds_create_topic` needs an
 * idlc-generated descriptor fixed at compile time, so a type known only at run time needs a
 * sertype of its own, and that takes C function pointers and struct layouts from Cyclone's
 * headers, which an FFI cannot fill in portably. Hence this shim, compiled with the system's C
 * compiler against the installed Cyclone headers on first use, cached, and called through koffi.
 *
 * What it exports:
 * - `mbrl_dds_create_raw_topic(participant, topic, typeName, qos)`: a keyless topic of that DDS
 *   type name whose samples are CDR bytes (encapsulation header included).
 * - `mbrl_dds_write_raw(writer, bytes, size)`: `dds_write` of one such sample (copied, and
 *   zero-padded to a multiple of 4 as rmw_cyclonedds does).
 * - `mbrl_dds_take_raw(reader, buf, cap, out)`: `dds_takecdr` of the next valid sample, copied
 *   into `buf` when it fits (returns 1, `out[0]` = size); when it does not, returns 2 with
 *   `out[0]` = size and `out[1]` = the sample, for `mbrl_dds_copy_release(sample, bigger)`;
 *   0 when none is waiting; a negative DDS return code on error.
 *
 * The library is linked with `-z nodelete`: it, and the libddsc it depends on, then stay loaded
 * until the process exits. Without that, koffi unloads libddsc while the isolate is torn down at a
 * natural exit, under Cyclone threads still running for a domain that outlived its last
 * participant, and the process dies with SIGSEGV.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** The shim's C source (Cyclone DDS 0.10.x: ROS 2 Humble and Jazzy ship 0.10). */
export const RAW_CDR_SHIM_SOURCE = String.raw`
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dds/dds.h"
#include "dds/version.h"
#include "dds/ddsi/ddsi_sertype.h"
#include "dds/ddsi/ddsi_serdata.h"
#include "dds/ddsi/q_radmin.h"

#if DDS_VERSION_MAJOR != 0 || DDS_VERSION_MINOR != 10
#error "mbrl-node's raw-CDR shim is written against Cyclone DDS 0.10.x (the one ROS 2 Humble and Jazzy ship)"
#endif

/* A sample: CDR bytes, encapsulation header included, padded with zeros to a multiple of 4. */
struct raw_serdata {
  struct ddsi_serdata c;
  uint32_t size;
  unsigned char *data;
};

/* What dds_write takes and to_sample gives: a borrowed view of the bytes. */
struct raw_sample {
  const unsigned char *data;
  uint32_t size;
};

/* A keyless type's key is empty: an empty CDR_LE body. */
static const unsigned char empty_cdr[4] = { 0, 1, 0, 0 };

static struct raw_serdata *raw_new(const struct ddsi_sertype *type, enum ddsi_serdata_kind kind, size_t size)
{
  const size_t padded = (size + 3u) & ~(size_t)3u;
  struct raw_serdata *d = malloc(sizeof(*d));
  if (d == NULL) return NULL;
  d->data = malloc(padded > 0 ? padded : 1);
  if (d->data == NULL) { free(d); return NULL; }
  ddsi_serdata_init(&d->c, type, kind);
  d->c.hash = type->serdata_basehash;
  d->size = (uint32_t)padded;
  memset(d->data + size, 0, padded - size);
  return d;
}

static struct ddsi_serdata *raw_key_only(const struct ddsi_sertype *type)
{
  struct raw_serdata *d = raw_new(type, SDK_KEY, sizeof(empty_cdr));
  if (d == NULL) return NULL;
  memcpy(d->data, empty_cdr, sizeof(empty_cdr));
  return &d->c;
}

static uint32_t raw_get_size(const struct ddsi_serdata *dcmn) { return ((const struct raw_serdata *)dcmn)->size; }

static void raw_free(struct ddsi_serdata *dcmn)
{
  struct raw_serdata *d = (struct raw_serdata *)dcmn;
  free(d->data);
  free(d);
}

/* Keyless: every sample belongs to the one instance. */
static bool raw_eqkey(const struct ddsi_serdata *a, const struct ddsi_serdata *b) { (void)a; (void)b; return true; }

/* From the network: the payload arrives as a chain of (possibly overlapping) fragments. */
static struct ddsi_serdata *raw_from_ser(const struct ddsi_sertype *type, enum ddsi_serdata_kind kind, const struct nn_rdata *fragchain, size_t size)
{
  struct raw_serdata *d = raw_new(type, kind, size);
  if (d == NULL) return NULL;
  uint32_t off = 0;
  for (; fragchain != NULL; fragchain = fragchain->nextfrag) {
    if (fragchain->maxp1 <= off) continue;
    const unsigned char *payload = NN_RMSG_PAYLOADOFF(fragchain->rmsg, NN_RDATA_PAYLOAD_OFF(fragchain));
    const uint32_t end = fragchain->maxp1 < size ? fragchain->maxp1 : (uint32_t)size;
    memcpy(d->data + off, payload + off - fragchain->min, end - off);
    off = end;
  }
  return &d->c;
}

static struct ddsi_serdata *raw_from_ser_iov(const struct ddsi_sertype *type, enum ddsi_serdata_kind kind, ddsrt_msg_iovlen_t niov, const ddsrt_iovec_t *iov, size_t size)
{
  struct raw_serdata *d = raw_new(type, kind, size);
  if (d == NULL) return NULL;
  size_t off = 0;
  for (ddsrt_msg_iovlen_t i = 0; i < niov && off < size; i++) {
    const size_t n = iov[i].iov_len < size - off ? iov[i].iov_len : size - off;
    memcpy(d->data + off, iov[i].iov_base, n);
    off += n;
  }
  return &d->c;
}

static struct ddsi_serdata *raw_from_keyhash(const struct ddsi_sertype *type, const struct ddsi_keyhash *keyhash)
{
  (void)keyhash;
  return raw_key_only(type);
}

static struct ddsi_serdata *raw_from_sample(const struct ddsi_sertype *type, enum ddsi_serdata_kind kind, const void *sample)
{
  if (kind != SDK_DATA) return raw_key_only(type);
  const struct raw_sample *s = sample;
  struct raw_serdata *d = raw_new(type, kind, s->size);
  if (d == NULL) return NULL;
  memcpy(d->data, s->data, s->size);
  return &d->c;
}

static struct ddsi_serdata *raw_to_untyped(const struct ddsi_serdata *dcmn)
{
  struct ddsi_serdata *u = raw_key_only(dcmn->type);
  if (u != NULL) u->type = NULL;
  return u;
}

static void raw_to_ser(const struct ddsi_serdata *dcmn, size_t off, size_t sz, void *buf)
{
  memcpy(buf, ((const struct raw_serdata *)dcmn)->data + off, sz);
}

static struct ddsi_serdata *raw_to_ser_ref(const struct ddsi_serdata *dcmn, size_t off, size_t sz, ddsrt_iovec_t *ref)
{
  ref->iov_base = ((const struct raw_serdata *)dcmn)->data + off;
  ref->iov_len = (ddsrt_iov_len_t)sz;
  return ddsi_serdata_ref(dcmn);
}

static void raw_to_ser_unref(struct ddsi_serdata *dcmn, const ddsrt_iovec_t *ref)
{
  (void)ref;
  ddsi_serdata_unref(dcmn);
}

static bool raw_to_sample(const struct ddsi_serdata *dcmn, void *sample, void **bufptr, void *buflim)
{
  (void)bufptr; (void)buflim;
  const struct raw_serdata *d = (const struct raw_serdata *)dcmn;
  struct raw_sample *s = sample;
  s->data = d->data;
  s->size = d->size;
  return true;
}

static bool raw_untyped_to_sample(const struct ddsi_sertype *type, const struct ddsi_serdata *d, void *sample, void **bufptr, void *buflim)
{
  (void)type; (void)d; (void)bufptr; (void)buflim;
  struct raw_sample *s = sample;
  s->data = empty_cdr;
  s->size = sizeof(empty_cdr);
  return true;
}

static size_t raw_print(const struct ddsi_sertype *type, const struct ddsi_serdata *dcmn, char *buf, size_t bufsize)
{
  (void)type;
  return (size_t)snprintf(buf, bufsize, "(%u bytes of CDR)", (unsigned)((const struct raw_serdata *)dcmn)->size);
}

static void raw_get_keyhash(const struct ddsi_serdata *d, struct ddsi_keyhash *buf, bool force_md5)
{
  (void)d; (void)force_md5;
  memset(buf, 0, sizeof(*buf));
}

static const struct ddsi_serdata_ops raw_serdata_ops = {
  .eqkey = raw_eqkey,
  .get_size = raw_get_size,
  .from_ser = raw_from_ser,
  .from_ser_iov = raw_from_ser_iov,
  .from_keyhash = raw_from_keyhash,
  .from_sample = raw_from_sample,
  .to_ser = raw_to_ser,
  .to_ser_ref = raw_to_ser_ref,
  .to_ser_unref = raw_to_ser_unref,
  .to_sample = raw_to_sample,
  .to_untyped = raw_to_untyped,
  .untyped_to_sample = raw_untyped_to_sample,
  .free = raw_free,
  .print = raw_print,
  .get_keyhash = raw_get_keyhash,
};

static void raw_sertype_free(struct ddsi_sertype *tp)
{
  ddsi_sertype_fini(tp);
  free(tp);
}

static void raw_zero_samples(const struct ddsi_sertype *tp, void *samples, size_t count)
{
  (void)tp;
  memset(samples, 0, count * sizeof(struct raw_sample));
}

static void raw_realloc_samples(void **ptrs, const struct ddsi_sertype *tp, void *old, size_t oldcount, size_t count)
{
  (void)tp;
  struct raw_sample *s = realloc(old, (count > 0 ? count : 1) * sizeof(struct raw_sample));
  if (s != NULL && count > oldcount) memset(s + oldcount, 0, (count - oldcount) * sizeof(*s));
  for (size_t i = 0; i < count; i++) ptrs[i] = s != NULL ? s + i : NULL;
}

static void raw_free_samples(const struct ddsi_sertype *tp, void **ptrs, size_t count, dds_free_op_t op)
{
  (void)tp; (void)count;
  /* The bytes are borrowed from the serdata: only the array itself is ours. */
  if ((op & DDS_FREE_ALL_BIT) && ptrs[0] != NULL) free(ptrs[0]);
}

/* Nothing beyond the type name (which Cyclone compares itself) tells two raw sertypes apart. */
static bool raw_sertype_equal(const struct ddsi_sertype *a, const struct ddsi_sertype *b) { (void)a; (void)b; return true; }
static uint32_t raw_sertype_hash(const struct ddsi_sertype *tp) { (void)tp; return 0x6d62726cu; }

static size_t raw_get_serialized_size(const struct ddsi_sertype *tp, const void *sample)
{
  (void)tp;
  return ((const struct raw_sample *)sample)->size;
}

static bool raw_serialize_into(const struct ddsi_sertype *tp, const void *sample, void *dst, size_t dst_size)
{
  (void)tp;
  const struct raw_sample *s = sample;
  if (dst_size < s->size) return false;
  memcpy(dst, s->data, s->size);
  return true;
}

static const struct ddsi_sertype_ops raw_sertype_ops = {
  .version = ddsi_sertype_v0,
  .arg = NULL,
  .free = raw_sertype_free,
  .zero_samples = raw_zero_samples,
  .realloc_samples = raw_realloc_samples,
  .free_samples = raw_free_samples,
  .equal = raw_sertype_equal,
  .hash = raw_sertype_hash,
  /* No XTypes type information: peers match on the type name, as with rmw_cyclonedds. */
  .type_id = NULL,
  .type_map = NULL,
  .type_info = NULL,
  .derive_sertype = NULL,
  .get_serialized_size = raw_get_serialized_size,
  .serialize_into = raw_serialize_into,
};

dds_entity_t mbrl_dds_create_raw_topic(dds_entity_t participant, const char *topic_name, const char *type_name, const dds_qos_t *qos)
{
  struct ddsi_sertype *st = calloc(1, sizeof(*st));
  if (st == NULL) return DDS_RETCODE_OUT_OF_RESOURCES;
  ddsi_sertype_init_flags(st, type_name, &raw_sertype_ops, &raw_serdata_ops, DDSI_SERTYPE_FLAG_TOPICKIND_NO_KEY);
  struct ddsi_sertype *actual = st;
  const dds_entity_t topic = dds_create_topic_sertype(participant, topic_name, &actual, qos, NULL, NULL);
  /* On success Cyclone owns st (and may have swapped in an equal sertype it already knew). */
  if (topic < 0) raw_sertype_free(st);
  return topic;
}

dds_return_t mbrl_dds_write_raw(dds_entity_t writer, const unsigned char *data, uint32_t size)
{
  const struct raw_sample s = { data, size };
  return dds_write(writer, &s);
}

int32_t mbrl_dds_take_raw(dds_entity_t reader, unsigned char *buf, uint32_t cap, int64_t *out)
{
  for (;;) {
    struct ddsi_serdata *sd = NULL;
    dds_sample_info_t info;
    const dds_return_t n = dds_takecdr(reader, &sd, 1, &info, DDS_ANY_STATE);
    if (n <= 0) return n;
    /* Unregistrations and disposals carry no data: skip them. */
    if (!info.valid_data) { ddsi_serdata_unref(sd); continue; }
    const uint32_t size = ddsi_serdata_size(sd);
    out[0] = size;
    if (size <= cap) {
      ddsi_serdata_to_ser(sd, 0, size, buf);
      ddsi_serdata_unref(sd);
      return 1;
    }
    out[1] = (int64_t)(intptr_t)sd;
    return 2;
  }
}

void mbrl_dds_copy_release(int64_t sample, unsigned char *buf)
{
  struct ddsi_serdata *sd = (struct ddsi_serdata *)(intptr_t)sample;
  ddsi_serdata_to_ser(sd, 0, ddsi_serdata_size(sd), buf);
  ddsi_serdata_unref(sd);
}
`;

/** Where the shim and Cyclone DDS come from. */
export interface CycloneLibraryOptions {
  /**
   * Cyclone DDS install prefix holding `include/` and `lib/` (e.g. `/opt/ros/jazzy`, or a source
   * build's install dir). Default env `CYCLONEDDS_HOME`, else the system's (Debian/Ubuntu
   * `cyclonedds-dev`, found by the C compiler).
   */
  cycloneHome?: string;
  /** A prebuilt shim to load instead of compiling one (a robot without a compiler). Default env `MBRL_DDS_SHIM`. */
  shimPath?: string;
  /** Where compiled shims are cached. Default env `MBRL_DDS_CACHE_DIR`, else `<os tmpdir>/mbrl-node-dds-<uid>`. */
  cacheDir?: string;
  /** The C compiler. Default env `CC`, else `gcc`. */
  cc?: string;
}

/** The libraries to load: libddsc and a shim built against it. */
export interface CycloneLibraries {
  /** Absolute path of the libddsc the shim links, or `libddsc.so` when a prebuilt shim was given (it brings its own). */
  libddsc: string;
  shim: string;
}

const HOW_TO_INSTALL = 'install Cyclone DDS 0.10 and a C compiler (Debian/Ubuntu: apt-get install cyclonedds-dev gcc), set CYCLONEDDS_HOME to an install prefix, or set MBRL_DDS_SHIM to a prebuilt shim';

/**
 * Finds libddsc and compiles the shim against it, or finds it in the cache (keyed by the source,
 * the compiler flags and the libddsc file, so an upgraded Cyclone gets a fresh shim). Compiling
 * takes about half a second, once.
 * @throws Error naming what is missing (compiler, headers, library) and how to install it
 */
export async function buildRawCdrShim(options: CycloneLibraryOptions = {}): Promise<CycloneLibraries> {
  const where = 'buildRawCdrShim';
  const prebuilt = options.shimPath ?? process.env.MBRL_DDS_SHIM;
  if (prebuilt !== undefined) {
    if (!existsSync(prebuilt)) throw new Error(`${where}: the prebuilt shim ${prebuilt} (shimPath / MBRL_DDS_SHIM) does not exist`);
    return { libddsc: 'libddsc.so', shim: prebuilt };
  }
  const home = options.cycloneHome ?? process.env.CYCLONEDDS_HOME;
  const cc = options.cc ?? process.env.CC ?? 'gcc';
  let libddsc = home !== undefined ? join(home, 'lib', 'libddsc.so') : undefined;
  if (libddsc === undefined) {
    try {
      const { stdout } = await execFileAsync(cc, ['-print-file-name=libddsc.so']);
      // The compiler prints the bare name back when it finds nothing.
      if (stdout.trim().startsWith('/')) libddsc = stdout.trim();
    } catch (err) {
      throw new Error(`${where}: could not run the C compiler ${cc} (${(err as Error).message}); ${HOW_TO_INSTALL}`);
    }
  }
  if (libddsc === undefined || !existsSync(libddsc)) {
    throw new Error(`${where}: libddsc.so not found (${home !== undefined ? `looked in ${home}/lib` : `${cc} -print-file-name=libddsc.so found nothing`}); ${HOW_TO_INSTALL}`);
  }
  const flags = ['-shared', '-fPIC', '-O2', '-Wall', '-Wextra', '-Wl,-z,nodelete'];
  if (home !== undefined) flags.push(`-I${join(home, 'include')}`, `-L${join(home, 'lib')}`, `-Wl,-rpath,${join(home, 'lib')}`);
  const lib = statSync(libddsc);
  const key = createHash('sha256')
    .update([RAW_CDR_SHIM_SOURCE, cc, flags.join(' '), libddsc, lib.size, lib.mtimeMs].join('\0'))
    .digest('hex')
    .slice(0, 16);
  const dir = cacheDirectory(options.cacheDir);
  const shim = join(dir, `rawCdrShim-${key}.so`);
  if (existsSync(shim)) return { libddsc, shim };
  // Compile beside the final name, then rename: concurrent processes never load half a file.
  const stem = `${shim}.${process.pid}`;
  writeFileSync(`${stem}.c`, RAW_CDR_SHIM_SOURCE);
  try {
    await execFileAsync(cc, [...flags, '-o', `${stem}.tmp`, `${stem}.c`, '-lddsc']);
    renameSync(`${stem}.tmp`, shim);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${where}: compiling the raw-CDR shim with ${cc} against ${libddsc} failed: ${(e.stderr ?? e.message).trim().slice(0, 2000)}; ${HOW_TO_INSTALL}`);
  } finally {
    rmSync(`${stem}.c`, { force: true });
    rmSync(`${stem}.tmp`, { force: true });
  }
  return { libddsc, shim };
}

/** The cache directory, private to this user: a library loaded from a directory others can write to would run their code. */
function cacheDirectory(requested: string | undefined): string {
  const uid = process.getuid?.() ?? 0;
  const dir = requested ?? process.env.MBRL_DDS_CACHE_DIR ?? join(tmpdir(), `mbrl-node-dds-${uid}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = statSync(dir);
  if (process.getuid !== undefined && (st.uid !== uid || (st.mode & 0o022) !== 0)) {
    throw new Error(`buildRawCdrShim: the cache directory ${dir} must belong to this user (uid ${uid}) and not be group- or world-writable (owner ${st.uid}, mode ${(st.mode & 0o777).toString(8)}); set cacheDir or MBRL_DDS_CACHE_DIR to a private directory`);
  }
  return dir;
}
