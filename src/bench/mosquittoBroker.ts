/**
 * A local mosquitto broker on a free loopback port: what `mbrl bench loop` measures MQTT through,
 * and what the MQTT tests run against (test/mosquittoBroker.ts re-exports this). The binary and
 * its version are looked up on first use, not at import.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';

const MOSQUITTO_PATHS = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto'];
let found: { bin: string | undefined } | undefined;

/** The mosquitto binary in the usual places or on PATH, or undefined where it is not installed. */
export function findMosquitto(): string | undefined {
  if (found === undefined) {
    const known = MOSQUITTO_PATHS.find((p) => existsSync(p));
    found = { bin: known ?? (spawnSync('sh', ['-c', 'command -v mosquitto'], { encoding: 'utf8' }).stdout?.trim() || undefined) };
  }
  return found.bin;
}

/** A mosquitto binary's version, [major, minor], from `mosquitto -h`; undefined if unreadable. */
export function mosquittoVersion(bin: string): [number, number] | undefined {
  const help = spawnSync(bin, ['-h'], { encoding: 'utf8' });
  const m = /mosquitto version (\d+)\.(\d+)/.exec(`${help.stdout ?? ''}${help.stderr ?? ''}`);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/**
 * Lines every local broker gets: no persistence, and no Nagle delay on the sockets to its clients
 * (`set_tcp_nodelay`, mosquitto ≥ 1.5; docs/mqtt.md), as the node's users are told to configure
 * theirs. Without it, a small message forwarded to a subscriber can wait for the previous one's
 * acknowledgement: tens of milliseconds on loopback (docs/mqtt.md, "Broker settings").
 */
export function mosquittoCommonConfig(version: [number, number] | undefined): string {
  return `persistence false\n${version !== undefined && (version[0] > 1 || version[1] >= 5) ? 'set_tcp_nodelay true\n' : ''}`;
}

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

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
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
 * `mosquittoCommonConfig` is appended to either.
 * @example const broker = new MosquittoBroker(await freePort(), dir); await broker.start(); … await broker.stop();
 */
export class MosquittoBroker {
  #proc: ChildProcess | undefined;
  constructor(
    readonly port: number,
    readonly dir: string,
    readonly config: string = `listener ${port} 127.0.0.1\nallow_anonymous true\n`,
    readonly bin: string | undefined = findMosquitto(),
  ) {}
  /** `mqtt://127.0.0.1:<port>`. */
  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }
  /** Starts the broker and waits (up to 10 s) until it listens. @throws Error when the binary is missing or the broker does not come up */
  async start(): Promise<void> {
    const bin = this.bin;
    if (bin === undefined) throw new Error('mosquitto broker binary not found (apt-get install mosquitto)');
    const conf = join(this.dir, `mosquitto-${this.port}.conf`);
    writeFileSync(conf, `${this.config}${mosquittoCommonConfig(mosquittoVersion(bin))}`);
    const proc = spawn(bin, ['-c', conf], { stdio: 'ignore' });
    this.#proc = proc;
    const t0 = Date.now();
    while (!(await portOpen(this.port))) {
      if (proc.exitCode !== null) throw new Error(`mosquitto (${bin}) exited with code ${proc.exitCode} before listening on 127.0.0.1:${this.port} (config ${conf})`);
      if (Date.now() - t0 > 10_000) {
        proc.kill('SIGTERM');
        throw new Error(`mosquitto (${bin}) did not listen on 127.0.0.1:${this.port} within 10 s`);
      }
      await new Promise((r) => setTimeout(r, 30));
    }
  }
  /** Stops the broker (SIGTERM) and waits for it to exit; a no-op when it is not running. */
  async stop(): Promise<void> {
    const p = this.#proc;
    if (p === undefined || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await exited;
    this.#proc = undefined;
  }
}
