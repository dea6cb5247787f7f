/**
 * The receive path's wait, off the event loop: a worker thread blocks in `dds_waitset_wait` on
 * the transport's waitset (one read condition per reader), posts a message when a reader has
 * data, then sleeps on an `Atomics.wait` until the main thread has taken it all and acknowledges.
 * Without the hand-shake the worker would spin: a read condition stays triggered until the data
 * is taken. What it adds to a sample's way to its callback is a thread wake-up and a message
 * post: in one process, `publish` to callback takes about 0.3 ms median (encode, Cyclone's local
 * delivery, wake-up, take, decode; ddsTransport.test.ts prints it), against up to a full period
 * for polling with a timer.
 *
 * Not koffi's `.async` calls: they run on libuv's thread pool (4 threads, shared with fs, dns and
 * crypto), and this wait would hold one of them for the transport's whole life.
 */
import { Worker } from 'node:worker_threads';

/** The worker's code (CommonJS, evaluated: it runs from src/ under vitest and from dist/ alike). */
const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const koffi = require(workerData.koffiPath);
const wait = koffi.load(workerData.shimPath).func('int32_t dds_waitset_wait(int32_t waitset, void *xs, size_t nxs, int64_t reltimeout)');
const flags = new Int32Array(workerData.flags);
parentPort.postMessage({ started: true });
while (Atomics.load(flags, 1) === 0) {
  // A timeout bounds how long a lost stop signal could keep the thread alive.
  const rc = wait(workerData.waitset, null, 0, 1000000000n);
  if (Atomics.load(flags, 1) !== 0) break;
  if (rc < 0) { parentPort.postMessage({ error: rc }); break; }
  if (rc > 0) {
    parentPort.postMessage({ ready: rc });
    Atomics.wait(flags, 0, 0);
    Atomics.store(flags, 0, 0);
  }
}
`;

/** A running wait worker. */
export interface WaitWorker {
  /** Tells the worker the data it signalled was taken: it waits again. */
  ack(): void;
  /** Stops the worker (after `wake` interrupts its wait) and resolves when it has exited. */
  stop(wake: () => void): Promise<void>;
}

/**
 * Starts the worker and resolves once it waits.
 * @param onReady called on the main thread when some reader has data; must end with `ack()`
 * @param onError called when the wait itself fails (the worker then stops)
 */
export async function startWaitWorker(
  setup: { koffiPath: string; shimPath: string; waitset: number },
  onReady: () => void,
  onError: (err: Error) => void,
): Promise<WaitWorker> {
  const flags = new Int32Array(new SharedArrayBuffer(8));
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { ...setup, flags: flags.buffer } });
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the DDS wait worker exited with code ${code} before starting`)));
  });
  worker.removeAllListeners('error');
  worker.on('error', (err) => onError(new Error(`the DDS wait worker failed: ${err.message}`)));
  worker.on('message', (msg: { ready?: number; error?: number }) => {
    if (msg.error !== undefined) onError(new Error(`dds_waitset_wait failed with DDS return code ${msg.error}; no more messages will be received`));
    else if (msg.ready !== undefined) onReady();
  });
  return {
    ack() {
      Atomics.store(flags, 0, 1);
      Atomics.notify(flags, 0);
    },
    async stop(wake) {
      Atomics.store(flags, 1, 1);
      wake();
      Atomics.store(flags, 0, 1);
      Atomics.notify(flags, 0);
      await exited;
    },
  };
}
