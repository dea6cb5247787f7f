import { initBackend } from '../core/backend.js';
import { Rng } from '../core/rng.js';
import { DynamicsEnsemble } from '../models/ensemble.js';
import type { EnsembleFitConfig, EnsembleFitData } from '../models/trainer.js';
import { fitEnsemble, shutdownEnsembleWorkers } from '../models/trainer.js';

/** Options of the `ensemble-fit` speed benchmark. */
export interface EnsembleFitBenchOptions {
  /** Target duration of the timed epoch, in seconds. Default 5. */
  seconds?: number;
  /** As `EnsembleFitConfig.engine`. Default `'auto'` (onnxruntime, else tfjs). */
  engine?: EnsembleFitConfig['engine'];
  /** onnxruntime threads or tfjs lanes, as `EnsembleFitConfig.parallelism`. Default `'auto'`. */
  parallelism?: EnsembleFitConfig['parallelism'];
  /** Progress lines go here. */
  log?: (line: string) => void;
}

/** Figures of the `ensemble-fit` benchmark. */
export interface EnsembleFitBenchResult {
  /** Training transitions per second through the whole ensemble (each through all 7 members: forward, backward, Adam). */
  samplesPerSec: number;
  /** Effective GFLOP/s: 6 · K · rows · Σ in·out over the training time. */
  gflops: number;
  /** The engine the steps ran on. */
  engine: 'onnxruntime' | 'tfjs';
  /** onnxruntime threads, or tfjs lanes. */
  threads: number;
  /** Training rows in the timed epoch. */
  rows: number;
}

/** HalfCheetah's dimensions. */
const OBS_DIM = 17;
const ACT_DIM = 6;

/**
 * One training epoch of the PETS/MBPO ensemble (7 probabilistic members, 4 × 200 SiLU, Gaussian
 * NLL, batch 256, bootstrap) on synthetic transitions with HalfCheetah's dimensions (17 obs +
 * 6 actions in, 2 × 17 out), through `fitEnsemble`. A short warm-up fit starts the engine (and
 * worker lanes) and calibrates the epoch size to about `seconds`. Figures: `samplesPerSec`, `gflops`.
 *
 * @example
 * const { samplesPerSec, gflops } = await benchEnsembleFit({ seconds: 5 });
 */
export async function benchEnsembleFit(options: EnsembleFitBenchOptions = {}): Promise<EnsembleFitBenchResult> {
  const seconds = options.seconds ?? 5;
  const log = options.log ?? (() => {});
  await initBackend();
  const rng = new Rng(0);
  const ensemble = new DynamicsEnsemble({
    obsDim: OBS_DIM,
    actDim: ACT_DIM,
    rng,
    config: { numMembers: 7, hidden: [200, 200, 200, 200], activation: 'silu', probabilistic: true, learnReward: false },
  });
  const config: Partial<EnsembleFitConfig> = {
    batchSize: 256,
    maxEpochs: 1,
    holdoutRatio: 0.05,
    engine: options.engine ?? 'auto',
    parallelism: options.parallelism ?? 'auto',
  };
  try {
    const warm = await fitEnsemble(ensemble, syntheticTransitions(256 * 6, rng), config, new Rng(1));
    log(`ensemble-fit: warm-up ${warm.samplesPerSec.toFixed(0)} samples/s on ${warm.engine} (${warm.threads} thread(s))${warm.fallback ? `; ${warm.fallback}` : ''}`);
    // Whole batches of 256 after the 5 % holdout, at least 8 steps.
    const steps = Math.max(8, Math.round((warm.samplesPerSec * seconds) / 256));
    const n = Math.ceil((steps * 256) / 0.95) + 1;
    const result = await fitEnsemble(ensemble, syntheticTransitions(n, rng), config, new Rng(2));
    log(`ensemble-fit: ${result.numTrain} rows in ${result.trainSeconds.toFixed(2)} s`);
    return { samplesPerSec: result.samplesPerSec, gflops: result.gflops, engine: result.engine, threads: result.threads, rows: result.numTrain };
  } finally {
    ensemble.dispose();
    await shutdownEnsembleWorkers();
  }
}

/** Random states and actions with a smooth random dynamics; the values do not affect the speed. */
function syntheticTransitions(n: number, rng: Rng): EnsembleFitData {
  const obs = rng.fillNormal(new Float32Array(n * OBS_DIM));
  const act = rng.fillUniform(new Float32Array(n * ACT_DIM), -1, 1);
  const mix = rng.fillNormal(new Float32Array(OBS_DIM * (OBS_DIM + ACT_DIM)), 0, 0.2);
  const nextObs = new Float32Array(n * OBS_DIM);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < OBS_DIM; i++) {
      let s = 0;
      for (let j = 0; j < OBS_DIM; j++) s += mix[i * (OBS_DIM + ACT_DIM) + j] * obs[r * OBS_DIM + j];
      for (let j = 0; j < ACT_DIM; j++) s += mix[i * (OBS_DIM + ACT_DIM) + OBS_DIM + j] * act[r * ACT_DIM + j];
      nextObs[r * OBS_DIM + i] = obs[r * OBS_DIM + i] + 0.1 * Math.tanh(s);
    }
  }
  return { obs, act, nextObs, n };
}
