// Whether the Cyclone DDS tests can run here: the DDS transport needs libddsc, its headers and a
// C compiler for its raw-CDR shim (.ci/run installs cyclonedds-dev and gcc). Shared by the tests
// that use the transport, so they skip with the same visible reason.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** Why Cyclone DDS cannot be used here, or '' when it can. */
function cycloneSkipReason(): string {
  const cc = process.env.CC ?? 'gcc';
  const home = process.env.CYCLONEDDS_HOME;
  if (home !== undefined) return existsSync(join(home, 'lib', 'libddsc.so')) ? '' : `SKIPPED: CYCLONEDDS_HOME=${home} has no lib/libddsc.so`;
  const lib = spawnSync(cc, ['-print-file-name=libddsc.so'], { encoding: 'utf8' });
  if (lib.error !== undefined) return `SKIPPED: no C compiler (${cc}) to build the raw-CDR shim (apt-get install gcc)`;
  if (!lib.stdout.trim().startsWith('/')) return 'SKIPPED: libddsc.so not found (apt-get install cyclonedds-dev)';
  const headers = spawnSync(cc, ['-E', '-x', 'c', '-'], { input: '#include <dds/ddsi/q_radmin.h>\n', encoding: 'utf8' });
  return headers.status === 0 ? '' : 'SKIPPED: Cyclone DDS headers not found (apt-get install cyclonedds-dev)';
}

/** '' when Cyclone DDS can be used, else the reason its tests skip (printed once by each user). */
export const CYCLONE_SKIP_REASON = cycloneSkipReason();
