// The learner: refits in a worker thread, a promotion gate, an atomic swap on the control side,
// and supervision of the worker (crash and hang → restart with the last good state).
//
// The `Learner` tests run the compiled worker (dist/node/learnerWorker.js: `npm run build` first,
// which `npm test` does; MBRL_DIST_DIR points elsewhere), because a worker thread cannot load the
// TypeScript sources that vitest runs. The gate itself is also tested in-process (LearnerCore,
// promotionGate, gateLossOf), on exact hand-computed cases.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { getPriority } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/core/backend.js';
import { Rng } from '../../src/core/rng.js';
import { ReplayBuffer } from '../../src/data/replayBuffer.js';
import type { Transition } from '../../src/data/transition.js';
import type { EnsembleWeights } from '../../src/models/types.js';
import { Learner, type LearnerConfig, type LearnerEvent, learnerWorkerUrl, makeLearnerConfig } from '../../src/node/learner.js';
import { LearnerCore, type TransitionColumns, gateLossOf, lowerThreadPriority, promotionGate } from '../../src/node/learnerWorker.js';

const DIST = process.env.MBRL_DIST_DIR ? resolve(process.env.MBRL_DIST_DIR) : resolve(import.meta.dirname, '../../dist');

/** The compiled module `src/node/<name>.ts`, checked to exist and to be newer than its source. */
function compiled(name: string): string {
  const js = join(DIST, 'node', `${name}.js`);
  const ts = resolve(import.meta.dirname, '../../src/node', `${name}.ts`);
  if (!existsSync(js)) throw new Error(`${js} is missing: the learner's worker thread runs compiled JavaScript; run \`npm run build\` first (npm test does)`);
  if (statSync(js).mtimeMs < statSync(ts).mtimeMs) throw new Error(`${js} is older than ${ts}: run \`npm run build\` first`);
  return js;
}

beforeAll(async () => {
  await initBackend({ log: () => {} });
});

/** A linear system with a little noise: s' = [s0 + 0.1·a, 0.9·s1]. */
function transitions(n: number, seed: number): Transition[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const obs = [rng.normal(), rng.normal()];
    const a = rng.uniform(-1, 1);
    return { obs, action: [a], reward: 0, nextObs: [obs[0] + 0.1 * a + 0.001 * rng.normal(), 0.9 * obs[1] + 0.001 * rng.normal()], terminated: false, truncated: false };
  });
}

function columns(ts: readonly Transition[]): TransitionColumns {
  const n = ts.length;
  const c: TransitionColumns = { n, obs: new Float32Array(2 * n), action: new Float32Array(n), reward: new Float32Array(n), nextObs: new Float32Array(2 * n), terminated: new Uint8Array(n), truncated: new Uint8Array(n) };
  ts.forEach((t, r) => {
    c.obs.set(Array.from(t.obs), 2 * r);
    c.nextObs.set(Array.from(t.nextObs), 2 * r);
    c.action[r] = t.action[0];
  });
  return c;
}

const SMALL = {
  obsDim: 2,
  actDim: 1,
  ensemble: { numMembers: 2, numElites: 2, hidden: [16], probabilistic: false, learnReward: false },
  fit: { maxEpochs: 30, patience: 30, batchSize: 32, learningRate: 3e-3 },
  refitEveryTransitions: 300,
  minTransitions: 300,
  heartbeatMs: 100,
} satisfies Partial<LearnerConfig>;

async function until(cond: () => boolean, what: string, timeoutMs = 90_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('promotion gate (in-process)', () => {
  /**
   * obsDim 1, actDim 1, one ReLU unit: Δs = c · relu(s) with identity normalisation, so on gate rows
   * s ∈ {1, 2, 3} with true Δs = s the loss is mean((c − 1)² s²) / var(s) = (c − 1)² · (14/3) / (2/3).
   */
  function linear(c: number): EnsembleWeights {
    return {
      spec: { numMembers: 1, obsDim: 1, actDim: 1, hidden: [1], activation: 'relu', probabilistic: false, learnReward: false },
      weights: [Float32Array.of(1, 0), Float32Array.of(c)],
      biases: [Float32Array.of(0), Float32Array.of(0)],
      inputMean: Float32Array.of(0, 0),
      inputStd: Float32Array.of(1, 1),
      targetMean: Float32Array.of(0),
      targetStd: Float32Array.of(1),
    };
  }
  const gate = { size: 3, obs: Float32Array.of(1, 2, 3), action: Float32Array.of(0, 0, 0), nextObs: Float32Array.of(2, 4, 6), reward: new Float32Array(3) };

  it('gateLossOf: hand-computed losses', () => {
    expect(gateLossOf(linear(1), [0], gate)).toBeCloseTo(0, 10);
    expect(gateLossOf(linear(0), [0], gate)).toBeCloseTo(7, 5);
    expect(gateLossOf(linear(0.5), [0], gate)).toBeCloseTo(1.75, 5);
  });

  it('promotes within the margin, rejects beyond it, rejects NaN weights, and promotes a first finite model', () => {
    const current = { weights: linear(0.5), elites: [0] }; // loss 1.75
    const slightlyWorse = { weights: linear(0.45), elites: [0] }; // (0.55)² · 7 = 2.1175, ratio 1.21
    expect(promotionGate(slightlyWorse, current, gate, 0.25)).toMatchObject({ kind: 'promoted', previousGateLoss: expect.closeTo(1.75, 5), gateLoss: expect.closeTo(2.1175, 4) });
    expect(promotionGate(slightlyWorse, current, gate, 0.2)).toEqual({
      kind: 'rejected',
      reason: "gate loss 2.118 is worse than the current model's 1.750 by more than 20 %",
      gateLoss: expect.closeTo(2.1175, 4),
      previousGateLoss: expect.closeTo(1.75, 5),
    });
    const nan = linear(1);
    nan.weights[1][0] = Number.NaN;
    expect(promotionGate({ weights: nan, elites: [0] }, current, gate, 10)).toMatchObject({ kind: 'rejected', reason: expect.stringMatching(/^non-finite weights: candidate: weights\[1\]/) });
    expect(promotionGate({ weights: linear(0.9), elites: [0] }, null, gate, 0)).toMatchObject({ kind: 'promoted', previousGateLoss: null });
    expect(promotionGate({ weights: linear(0.9), elites: [0] }, current, null, 0)).toMatchObject({ kind: 'rejected', reason: 'no gate rows to compare the candidate with the current model on' });
  });

  it('makeLearnerConfig names the key, the value and what was expected', () => {
    expect(() => makeLearnerConfig({ ...SMALL, gateEvery: 1 })).toThrow('makeLearnerConfig: gateEvery: expected an integer ≥ 2, got 1');
    expect(() => makeLearnerConfig({ ...SMALL, workerNice: 20 })).toThrow('makeLearnerConfig: workerNice: expected an integer in [0, 19], got 20');
    expect(() => makeLearnerConfig({ ...SMALL, workerNice: -1 })).toThrow('makeLearnerConfig: workerNice: expected an integer in [0, 19], got -1');
    expect(() => makeLearnerConfig({ ...SMALL, refitEvery: 5 } as never)).toThrow(/^makeLearnerConfig: refitEvery: unknown key; expected one of kind, obsDim/);
    expect(() => makeLearnerConfig({ ...SMALL, timeoutSec: 0.1 })).toThrow('makeLearnerConfig: timeoutSec: expected more than two heartbeats (2 × 100 ms), got 0.1 s');
    expect(() => makeLearnerConfig({ ...SMALL, fit: { batchSize: 0 } })).toThrow('makeEnsembleFitConfig: batchSize: expected a positive integer, got 0');
  });

  it('LearnerCore routes every gateEvery-th transition to the gate, refits when due, and leaks no tensors', async () => {
    const core = new LearnerCore(makeLearnerConfig({ ...SMALL, gateEvery: 4, fit: { ...SMALL.fit, maxEpochs: 3 } }), null, 2);
    core.add(columns(transitions(150, 1)));
    // Stream indices 2 … 151: the ones ≡ 3 (mod 4) are 3, 7, …, 151: 38 rows.
    expect(core.rows).toEqual({ train: 112, gate: 38 });
    expect(core.due).toBe(false); // 150 < minTransitions 300
    core.add(columns(transitions(150, 2)));
    expect(core.due).toBe(true);
    const first = await core.refit();
    expect(first.kind).toBe('promoted');
    expect(core.due).toBe(false);
    core.add(columns(transitions(299, 3)));
    expect(core.due).toBe(false); // 299 new < refitEveryTransitions 300
    core.add(columns(transitions(1, 4)));
    expect(core.due).toBe(true);
    const tensors = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) await core.refit();
    expect(tf.memory().numTensors).toBe(tensors);
    core.inject('nanCandidate');
    expect(await core.refit()).toMatchObject({ kind: 'rejected', reason: expect.stringMatching(/^non-finite weights/) });
    core.dispose();
  });
});

describe('refit schedule (in-process)', () => {
  it('refits by time too with refitEverySec, but only when a transition is new', async () => {
    const core = new LearnerCore(makeLearnerConfig({ ...SMALL, refitEverySec: 1, fit: { ...SMALL.fit, maxEpochs: 2 } }));
    core.add(columns(transitions(300, 1)));
    expect((await core.refit()).kind).toBe('promoted');
    await new Promise((r) => setTimeout(r, 1050));
    expect(core.due).toBe(false); // nothing new
    core.add(columns(transitions(1, 2)));
    expect(core.due).toBe(true); // 1 new row, 1.05 s ≥ 1 s since the last refit
    await core.refit();
    core.add(columns(transitions(1, 3)));
    expect(core.due).toBe(false); // new, but the last refit started < 1 s ago (a 2-epoch fit of 300 rows)
    core.dispose();
  });
});

describe('Learner with its worker thread', () => {
  let learner: Learner | undefined;
  afterEach(async () => {
    await learner?.close();
    learner = undefined;
  });

  it('defaults to the compiled worker in dist/ when running from the TypeScript sources', () => {
    expect(learnerWorkerUrl().href).toBe(pathToFileURL(resolve(import.meta.dirname, '../../dist/node/learnerWorker.js')).href);
  });

  it('refits in the worker and promotes: a model that learned the dynamics, swapped in by reference, then a better one', async () => {
    const events: LearnerEvent[] = [];
    const models: unknown[] = [];
    learner = new Learner({ config: SMALL, workerUrl: pathToFileURL(compiled('learnerWorker')), onEvent: (e) => events.push(e), onModel: (m) => models.push(m) });
    learner.start();
    const t0 = performance.now();
    for (const t of transitions(300, 1)) learner.add(t);
    // The control side only copies: 300 adds take far less than a fit.
    expect(performance.now() - t0).toBeLessThan(500);
    expect(learner.current).toBeNull();
    await until(() => learner!.current !== null, 'the first promotion');
    const v1 = learner.current!;
    expect(v1.version).toBe(1);
    expect(v1.previousGateLoss).toBeNull();
    expect(v1.trainedOn).toBe(270); // 300 rows less every 10th (30) held out for the gate
    // Predicting Δs = 0 scores ≈ 1 + mean²/var ≥ 1 on this gate; the fitted model must do far better.
    expect(v1.gateLoss).toBeLessThan(0.3);
    for (const t of transitions(300, 2)) learner.add(t);
    await until(() => learner!.current?.version === 2, 'the second promotion');
    const v2 = learner.current!;
    expect(v2).not.toBe(v1);
    expect(v2.trainedOn).toBe(540);
    expect(v2.gateLoss).toBeLessThanOrEqual(1.1 * v2.previousGateLoss!);
    expect(models).toEqual([v1, v2]);
    expect(v1.version).toBe(1); // the old object is untouched: readers holding it keep a whole model
    expect(events.filter((e) => e.kind === 'promoted').map((e) => (e as { version: number }).version)).toEqual([1, 2]);
    expect(learner.stats).toMatchObject({ transitions: 600, posted: 600, promoted: 2, rejected: 0, restarts: 0, worker: 'running' });
  });

  it('rejects a candidate with NaN weights and keeps the current model', async () => {
    learner = new Learner({ config: SMALL, workerUrl: pathToFileURL(compiled('learnerWorker')) });
    learner.start();
    for (const t of transitions(300, 1)) learner.add(t);
    await until(() => learner!.current !== null, 'the first promotion');
    const v1 = learner.current;
    learner.injectFault('nanCandidate');
    learner.requestRefit();
    await until(() => learner!.stats.rejected === 1, 'the rejection');
    expect(learner.stats.lastRejection).toMatch(/^non-finite weights: candidate: weights\[0\]\[0\]/);
    expect(learner.current).toBe(v1);
    // The next refit starts from the kept model again and is promoted.
    learner.requestRefit();
    await until(() => learner!.current?.version === 2, 'a promotion after the rejection');
  });

  it('restarts a crashed worker with the last good state: the model is kept meanwhile, and the data survives', async () => {
    const events: LearnerEvent[] = [];
    learner = new Learner({ config: { ...SMALL, restartDelayMs: 100 }, workerUrl: pathToFileURL(compiled('learnerWorker')), onEvent: (e) => events.push(e) });
    learner.start();
    for (const t of transitions(300, 1)) learner.add(t);
    await until(() => learner!.current !== null, 'the first promotion');
    const v1 = learner.current;
    learner.injectFault('crash');
    await until(() => learner!.stats.restarts === 1, 'the restart');
    expect(learner.stats.lastFailure).toBe('crashed: learner worker: injected crash');
    expect(learner.current).toBe(v1);
    expect(events.map((e) => e.kind)).toContain('workerFailed');
    // The new worker got every transition: its next model is trained on the rows from before the crash too.
    for (const t of transitions(300, 2)) learner.add(t);
    await until(() => learner!.current?.version === 2, 'a promotion from the restarted worker');
    expect(learner.current!.trainedOn).toBe(540);
    expect(learner.stats.restarts).toBe(1);
  });

  it('terminates and restarts a hung worker (no heartbeat for timeoutSec), keeping the model', async () => {
    learner = new Learner({ config: { ...SMALL, timeoutSec: 1.5, restartDelayMs: 100 }, workerUrl: pathToFileURL(compiled('learnerWorker')) });
    learner.start();
    for (const t of transitions(300, 1)) learner.add(t);
    await until(() => learner!.current !== null, 'the first promotion');
    const v1 = learner.current;
    expect(learner.stats.restarts).toBe(0);
    const t0 = performance.now();
    learner.injectFault('hang');
    await until(() => learner!.stats.restarts === 1, 'the restart');
    const detectedSec = (performance.now() - t0) / 1000;
    expect(detectedSec).toBeGreaterThanOrEqual(1.4);
    expect(learner.stats.lastFailure).toMatch(/^hung: no heartbeat for \d+\.\d s \(timeoutSec 1\.5\)$/);
    expect(learner.current).toBe(v1);
    learner.requestRefit();
    await until(() => learner!.stats.promoted + learner!.stats.rejected === 2, 'a refit by the restarted worker');
  });

  it('starts from a checkpoint: the initial model is current at once, and the history is not new to it', async () => {
    const core = new LearnerCore(makeLearnerConfig(SMALL));
    core.add(columns(transitions(300, 1)));
    const first = await core.refit();
    core.dispose();
    if (first.kind !== 'promoted') throw new Error(`expected a promotion, got ${first.reason}`);
    const history = new ReplayBuffer({ obsDim: 2, actDim: 1, capacity: 1000 });
    history.addBatch(transitions(300, 1));
    learner = new Learner({ config: SMALL, initial: { weights: first.model.weights, elites: first.model.elites }, history, workerUrl: pathToFileURL(compiled('learnerWorker')) });
    expect(learner.current).toMatchObject({ version: 1, trainedOn: 300 });
    learner.start();
    for (const t of transitions(299, 2)) learner.add(t);
    learner.flush();
    await until(() => learner!.stats.workerRows === 599, 'the worker to hold history and new rows');
    await new Promise((r) => setTimeout(r, 500)); // a refit, if (wrongly) due, would have started by now
    expect(learner.stats).toMatchObject({ promoted: 0, rejected: 0, fitting: false }); // 299 new < refitEveryTransitions
    learner.add(transitions(1, 3)[0]);
    await until(() => learner!.stats.promoted + learner!.stats.rejected === 1, 'the first refit');
    expect(learner.stats.lastRejection).toBeNull();
    expect(learner.current).toMatchObject({ version: 2, trainedOn: 540 }); // history and new rows, less every 10th
  });

  it('does not take a long fit that holds the worker thread (tfjs engine) for a hang: fitTimeoutSec applies during fits', async () => {
    const config = {
      ...SMALL,
      ensemble: { ...SMALL.ensemble, numMembers: 5, numElites: 5, hidden: [64, 64] },
      fit: { engine: 'tfjs', maxEpochs: 60, patience: 60, batchSize: 32 },
      refitEveryTransitions: 1000,
      minTransitions: 1000,
      timeoutSec: 1,
    } satisfies Partial<LearnerConfig>;
    learner = new Learner({ config, workerUrl: pathToFileURL(compiled('learnerWorker')) });
    learner.start();
    for (const t of transitions(1000, 3)) learner.add(t);
    await until(() => learner!.current !== null, 'the promotion');
    // The fit held the thread for longer than timeoutSec (else this test would prove nothing); 60
    // epochs take about 4 s here, so a machine three times faster still holds it past 1.2 s.
    expect(learner.current!.fitSeconds).toBeGreaterThan(1.2 * config.timeoutSec);
    expect(learner.stats.restarts).toBe(0);
  });

  it('closes during a fit by asking the worker to stop: the fit ends at an epoch boundary and the process survives', async () => {
    // Terminating the thread inside an onnxruntime training step aborts the whole process
    // ("terminate called after throwing an instance of 'Napi::Error'"): close() must not do that.
    const config = { ...SMALL, fit: { ...SMALL.fit, maxEpochs: 500, patience: 500 } } satisfies Partial<LearnerConfig>;
    learner = new Learner({ config, workerUrl: pathToFileURL(compiled('learnerWorker')) });
    learner.start();
    for (const t of transitions(300, 4)) learner.add(t);
    await until(() => learner!.stats.fitting, 'the fit to start');
    expect(await learner.close()).toBe('stopped'); // it left by itself, not terminated mid-step
    expect(learner.stats.worker).toBe('closed');
    expect(learner.current).toBeNull(); // the aborted fit promoted nothing
  });

  it('runs the worker thread at a lower OS priority than the control thread (workerNice)', async () => {
    // Elsewhere than Linux the call would lower the whole process: it is not made.
    expect(lowerThreadPriority(5, 'darwin')).toMatch(/not lowered \(workerNice 5\): .*Linux only/);
    expect(lowerThreadPriority(0)).toBe('learner worker: priority unchanged (workerNice 0)');
    if (process.platform !== 'linux') return;
    const mine = getPriority(0);
    const expected = Math.min(19, mine + 7);
    const lines: string[] = [];
    learner = new Learner({ config: { ...SMALL, workerNice: 7 }, workerUrl: pathToFileURL(compiled('learnerWorker')), onEvent: (e) => e.kind === 'log' && lines.push(e.line) });
    learner.start();
    await until(() => lines.some((l) => l.includes('thread priority')), "the worker's priority line");
    expect(lines.find((l) => l.includes('thread priority'))).toBe(`learner worker: thread priority nice ${mine} → ${expected} (workerNice 7; the control thread keeps its own)`);
    // The kernel's view (/proc/self/task/<tid>/stat, field 19 = nice): one thread more at the lowered
    // level, and this (control) thread unchanged.
    const nices = (): number[] =>
      readdirSync('/proc/self/task').flatMap((tid) => {
        try {
          const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
          return [Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])];
        } catch {
          return []; // a thread that ended meanwhile
        }
      });
    const before = nices().filter((n) => n === expected).length;
    expect(getPriority(0)).toBe(mine);
    await learner.close();
    learner = undefined;
    if (expected !== mine) expect(nices().filter((n) => n === expected).length).toBeLessThan(before);
  });

  it('refuses to start without the worker script, naming it', () => {
    const l = new Learner({ config: SMALL, workerUrl: pathToFileURL('/nonexistent/learnerWorker.js') });
    expect(() => l.start()).toThrow('Learner.start: the worker script /nonexistent/learnerWorker.js does not exist; build it with `npm run build`');
  });
});
