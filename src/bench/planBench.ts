import { Rng } from '../core/rng.js';
import { Box } from '../core/spaces.js';
import { halfCheetahTask } from '../envs/halfCheetah.js';
import { OrtEnsemblePredictor } from '../models/ensembleOnnx.js';
import { ModelEnv } from '../models/modelEnv.js';
import { layerDimsOf, randomEnsembleWeights } from '../models/referenceForward.js';
import { selectMembers, type EnsembleSpec } from '../models/types.js';
import { makeCemConfig } from '../planning/cem.js';
import { createModelPlanningAgent } from '../planning/trajectoryOptimizerAgent.js';

/** Options of the `plan` speed benchmark. */
export interface PlanBenchOptions {
  /** Planned control steps to time (after one warm-up step). Default 3. */
  steps?: number;
  /** onnxruntime threads; default all cores. */
  intraOpThreads?: number;
  log?: (line: string) => void;
}

/**
 * CEM plan time per control step for PETS's set-up: population 400, 40 elites, horizon 30,
 * 5 iterations, 20 particles with TS1, over the 5 elites of a 7 × 4 × 200 SiLU probabilistic
 * ensemble with HalfCheetah's sizes (17 obs, 6 act) and its known reward. Weights are random
 * (the cost does not depend on them). `gflops` counts the ensemble's forward flops only
 * (2 per multiply-accumulate): the share of plan time the network gets is part of the figure.
 */
export async function benchPlan(options: PlanBenchOptions = {}): Promise<{ msPerStep: number; gflops: number; rowsPerStep: number }> {
  const steps = options.steps ?? 3;
  const spec: EnsembleSpec = { numMembers: 7, obsDim: 17, actDim: 6, hidden: [200, 200, 200, 200], activation: 'silu', probabilistic: true, learnReward: false };
  const weights = selectMembers(randomEnsembleWeights(spec, new Rng(0)), [0, 1, 2, 3, 4]);
  const predictor = await OrtEnsemblePredictor.create(weights, options.intraOpThreads ? { intraOpThreads: options.intraOpThreads } : {});
  try {
    const modelEnv = new ModelEnv(predictor, { task: halfCheetahTask, propagation: 'ts1', rng: new Rng(1) });
    const planner = makeCemConfig({ populationSize: 400, numElites: 40, horizon: 30, numIterations: 5 });
    const particles = 20;
    const agent = createModelPlanningAgent(modelEnv, planner, Box.uniform(6, -1, 1), { rng: new Rng(2), particles });
    const obs = new Float64Array(17);
    const rng = new Rng(3);
    for (let i = 0; i < 17; i++) obs[i] = rng.normal(0, 0.1);
    await agent.actAsync(obs);
    const t0 = performance.now();
    for (let s = 0; s < steps; s++) {
      await agent.actAsync(obs);
      options.log?.(`plan step ${s + 1}/${steps}: ${((performance.now() - t0) / (s + 1)).toFixed(0)} ms/step`);
    }
    const msPerStep = (performance.now() - t0) / steps;
    const rowsPerStep = planner.populationSize * particles * planner.horizon * planner.numIterations;
    const flopsPerRow = 2 * layerDimsOf(spec).reduce((a, [i, o]) => a + i * o, 0);
    return { msPerStep, gflops: (rowsPerStep * flopsPerRow) / (msPerStep / 1000) / 1e9, rowsPerStep };
  } finally {
    predictor.dispose();
  }
}
