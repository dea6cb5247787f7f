// A real mosquitto broker for tests: started on a free loopback port, stoppable and restartable.
// Tests that need it skip with MOSQUITTO_SKIP_REASON where the binary is absent (CI installs it:
// apt-get install mosquitto).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';

/** The mosquitto binary, or undefined where it is not installed. */
export const MOSQUITTO: string | undefined = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto'].find((p) => existsSync(p)) ??
  (spawnSync('sh', ['-c', 'command -v mosquitto'], { encoding: 'utf8' }).stdout.trim() || undefined);
export const MOSQUITTO_SKIP_REASON = 'SKIPPED: mosquitto broker binary not found (apt-get install mosquitto; CI installs it)';

/** The installed mosquitto's version, [major, minor], from `mosquitto -h`; undefined if absent or unreadable. */
export const MOSQUITTO_VERSION: [number, number] | undefined = (() => {
  if (MOSQUITTO === undefined) return undefined;
  const help = spawnSync(MOSQUITTO, ['-h'], { encoding: 'utf8' });
  const m = /mosquitto version (\d+)\.(\d+)/.exec(`${help.stdout ?? ''}${help.stderr ?? ''}`);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
})();

/**
 * Lines every test broker gets: no persistence, and no Nagle delay on the sockets to its clients
 * (`set_tcp_nodelay`, mosquitto ≥ 1.5; docs/mqtt.md), as the node's users are told to configure
 * theirs. Without it, a small message forwarded to a subscriber can wait for the previous one's
 * acknowledgement: tens of milliseconds on loopback (docs/mqtt.md, "Broker settings").
 */
export const MOSQUITTO_COMMON_CONFIG = `persistence false\n${MOSQUITTO_VERSION !== undefined && (MOSQUITTO_VERSION[0] > 1 || MOSQUITTO_VERSION[1] >= 5) ? 'set_tcp_nodelay true\n' : ''}`;

/** A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * A mosquitto process on `port` in `dir`. The default config is a listener on 127.0.0.1 with
 * anonymous clients; another `config` replaces it (a TLS listener, a password file, ...).
 * `MOSQUITTO_COMMON_CONFIG` is appended to either.
 */
export class MosquittoBroker {
  #proc: ChildProcess | undefined;
  constructor(
    readonly port: number,
    readonly dir: string,
    readonly config: string = `listener ${port} 127.0.0.1\nallow_anonymous true\n`,
  ) {}
  async start(): Promise<void> {
    if (MOSQUITTO === undefined) throw new Error(MOSQUITTO_SKIP_REASON);
    const conf = join(this.dir, `mosquitto-${this.port}.conf`);
    writeFileSync(conf, `${this.config}${MOSQUITTO_COMMON_CONFIG}`);
    this.#proc = spawn(MOSQUITTO, ['-c', conf], { stdio: 'ignore' });
    const t0 = Date.now();
    while (!(await portOpen(this.port))) {
      if (this.#proc.exitCode !== null) throw new Error(`mosquitto exited with code ${this.#proc.exitCode} before listening on ${this.port} (config ${conf})`);
      if (Date.now() - t0 > 10_000) throw new Error(`mosquitto did not listen on ${this.port} within 10 s`);
      await new Promise((r) => setTimeout(r, 30));
    }
  }
  async stop(): Promise<void> {
    const p = this.#proc;
    if (p === undefined || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await exited;
    this.#proc = undefined;
  }
}
