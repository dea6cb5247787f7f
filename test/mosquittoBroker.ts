// A real mosquitto broker for tests (src/bench/mosquittoBroker.ts): started on a free loopback
// port, stoppable and restartable. Tests that need it skip with MOSQUITTO_SKIP_REASON where the
// binary is absent (CI installs it: apt-get install mosquitto).
import { findMosquitto, mosquittoCommonConfig, mosquittoVersion } from '../src/bench/mosquittoBroker.js';

export { MosquittoBroker, freePort, portOpen } from '../src/bench/mosquittoBroker.js';

/** The mosquitto binary, or undefined where it is not installed. */
export const MOSQUITTO: string | undefined = findMosquitto();
export const MOSQUITTO_SKIP_REASON = 'SKIPPED: mosquitto broker binary not found (apt-get install mosquitto; CI installs it)';
/** The installed mosquitto's version, [major, minor]; undefined if absent or unreadable. */
export const MOSQUITTO_VERSION: [number, number] | undefined = MOSQUITTO === undefined ? undefined : mosquittoVersion(MOSQUITTO);
/** The lines every test broker's config ends with (`mosquittoCommonConfig`). */
export const MOSQUITTO_COMMON_CONFIG = mosquittoCommonConfig(MOSQUITTO_VERSION);
