import { adaptedPolicy, makeMbMpoConfig, samplesOf, taskAdvantages, trainMbMpo } from '../algorithms/mbMpo.js';
import { ModelRolloutSource } from '../algorithms/modelRollouts.js';
import { collectRollouts } from '../algorithms/policyGradient.js';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../core/rng.js';
import { makeEnv } from '../envs/registry.js';
import { OrtEnsemblePredictor } from '../models/ensembleOnnx.js';
import { ModelEnv } from '../models/modelEnv.js';
import { selectMembers, type EnsembleWeights } from '../models/types.js';
import { GaussianMlpPolicy, makePolicySpec } from '../policies/gaussianMlpPolicy.js';
import { envSpec } from '../envs/registry.js';

/** Options of `benchPlasticity`. */
export interface PlasticityOptions {
  seed?: number;
  /** Real steps of MB-MPO training on PointGoal2D. @default 600 */
  steps?: number;
  /** Grid points per axis over [−2, 2]². @default 21 */
  grid?: number;
  log?: (line: string) => void;
}

/** The per-state KL map and its summary. */
export interface PlasticityResult {
  /** Row-major [grid, grid] KL(π_θ(·|s) ‖ π_θ'(·|s)), averaged over the members' adaptations; row = y, column = x. */
  kl: number[];
  grid: number;
  /** Grid coordinates along each axis. */
  axis: number[];
  goal: [number, number];
  metrics: {
    /** Pearson correlation between the KL and the distance to the goal over the grid. */
    'plasticity.corrKlDistance': number;
    /** Mean KL within 0.5 of the goal, and beyond 1.5. */
    'plasticity.klNear': number;
    'plasticity.klFar': number;
    'plasticity.trainSteps': number;
    'plasticity.evalReturn': number;
  };
}

/**
 * MB-MPO's plasticity experiment (Clavera et al. 2018, §6, the point environment): train a
 * meta-policy on `PointGoal2D`, adapt it with the inner step to each ensemble member (a task),
 * and measure, per state of a grid, the KL divergence between the pre- and the post-update policy.
 * The paper's finding: the meta-policy is most plastic (largest KL) where the tasks disagree, far
 * from the goal.
 */
export async function benchPlasticity(options: PlasticityOptions = {}): Promise<PlasticityResult> {
  const log = options.log ?? (() => {});
  const G = options.grid ?? 21;
  const config = makeMbMpoConfig({
    env: 'PointGoal2D',
    seed: options.seed ?? 0,
    steps: options.steps ?? 600,
    realEpisodesPerIteration: 5,
    ensemble: { numMembers: 5, numElites: 5, probabilistic: false, learnReward: false, hidden: [32, 32] },
    metaStepsPerIteration: 10,
    evalEpisodes: 3,
  });
  const env = await makeEnv(config.env);
  const state = await trainMbMpo(config, env, { log });
  env.close();
  const spec = makePolicySpec({ obsDim: 2, actionSpace: env.actionSpace, ...config.policy });
  const policy = new GaussianMlpPolicy(spec, { weights: state.policy });
  const axis = Array.from({ length: G }, (_, i) => -2 + (4 * i) / (G - 1));
  const points = new Float64Array(G * G * 2);
  for (let r = 0; r < G; r++) {
    for (let c = 0; c < G; c++) {
      points[(r * G + c) * 2] = axis[c];
      points[(r * G + c) * 2 + 1] = axis[r];
    }
  }
  const before = policy.forwardFast(points, G * G);
  const kl = new Float64Array(G * G);
  const weights = state.ensemble as EnsembleWeights;
  const K = weights.spec.numMembers;
  const rng = new Rng(config.seed, 7);
  for (let k = 0; k < K; k++) {
    const predictor = await OrtEnsemblePredictor.create(selectMembers(weights, [k]), { intraOpThreads: 1 });
    try {
      const source = new ModelRolloutSource(new ModelEnv(predictor, { task: envSpec(config.env).task, rng: rng.fork() }), {
        numEnvs: config.trajectoriesPerTask,
        horizon: env.maxEpisodeSteps,
        startStates: state.startStates,
        rng: rng.fork(),
      });
      const pre = await collectRollouts(source, policy, rng, { episodes: config.trajectoriesPerTask });
      const samples = samplesOf(policy, pre, taskAdvantages(pre, config.gamma, config.gaeLambda));
      const adapted = adaptedPolicy(policy, samples, config.innerStepSize);
      tf.dispose([samples.obsNorm, samples.u, samples.adv]);
      const after = adapted.forwardFast(points, G * G);
      adapted.dispose();
      for (let i = 0; i < G * G; i++) {
        let d = 0;
        for (let j = 0; j < 2; j++) {
          const a = i * 2 + j;
          const s0 = Math.exp(before.logStd[a]);
          const s1 = Math.exp(after.logStd[a]);
          d += Math.log(s1 / s0) + (s0 * s0 + (before.mean[a] - after.mean[a]) ** 2) / (2 * s1 * s1) - 0.5;
        }
        kl[i] += d / K;
      }
    } finally {
      predictor.dispose();
    }
  }
  policy.dispose();
  const goal: [number, number] = [0, 0];
  const dist = Array.from({ length: G * G }, (_, i) => Math.hypot(points[2 * i] - goal[0], points[2 * i + 1] - goal[1]));
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const klArr = Array.from(kl);
  const near = klArr.filter((_, i) => dist[i] < 0.5);
  const far = klArr.filter((_, i) => dist[i] > 1.5);
  const last = state.history[state.history.length - 1];
  return {
    kl: klArr,
    grid: G,
    axis,
    goal,
    metrics: {
      'plasticity.corrKlDistance': pearson(klArr, dist),
      'plasticity.klNear': mean(near),
      'plasticity.klFar': mean(far),
      'plasticity.trainSteps': state.envSteps,
      'plasticity.evalReturn': last?.evalReturn ?? NaN,
    },
  };
}

function pearson(a: number[], b: number[]): number {
  const n = a.length;
  const ma = a.reduce((s, x) => s + x, 0) / n;
  const mb = b.reduce((s, x) => s + x, 0) / n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

/** An SVG heat map of the KL grid (darker = larger KL), with the goal marked. */
export function plasticitySvg(r: PlasticityResult): string {
  const G = r.grid;
  const cell = 20;
  const size = G * cell;
  const margin = 50;
  const max = Math.max(...r.kl, 1e-12);
  const rects: string[] = [];
  for (let row = 0; row < G; row++) {
    for (let c = 0; c < G; c++) {
      const v = r.kl[row * G + c] / max;
      const shade = Math.round(255 * (1 - v));
      // y grows upwards in the plane, downwards in SVG.
      rects.push(`<rect x="${margin + c * cell}" y="${margin + (G - 1 - row) * cell}" width="${cell}" height="${cell}" fill="rgb(255,${shade},${shade})"/>`);
    }
  }
  const gx = margin + ((r.goal[0] + 2) / 4) * (size - cell) + cell / 2;
  const gy = margin + (1 - (r.goal[1] + 2) / 4) * (size - cell) + cell / 2;
  const m = r.metrics;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${size + 2 * margin}" height="${size + 2 * margin + 30}" font-family="sans-serif" font-size="12">`,
    `<text x="${margin}" y="20" font-size="14">MB-MPO plasticity on PointGoal2D: KL(pre ‖ post-update) per state</text>`,
    `<text x="${margin}" y="38">max KL ${max.toExponential(2)} (darkest); corr(KL, distance to goal) ${m['plasticity.corrKlDistance'].toFixed(2)}</text>`,
    ...rects,
    `<circle cx="${gx}" cy="${gy}" r="5" fill="none" stroke="black" stroke-width="2"/>`,
    `<text x="${margin}" y="${margin + size + 18}">x from −2 to 2 (left to right), y from −2 to 2 (bottom to top); circle: goal</text>`,
    '</svg>',
  ].join('\n');
}
