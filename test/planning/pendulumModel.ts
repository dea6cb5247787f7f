// Test helpers shared by the planner and ModelEnv tests: an exact Pendulum-v1 "ensemble" and an
// episode runner. Not a test file (no .test.ts), so importing it registers no tests.
import { expect } from 'vitest';
import { RandomAgent } from '../../src/core/agent.js';
import { Rng } from '../../src/core/rng.js';
import { Pendulum } from '../../src/envs/pendulum.js';
import type { EnsemblePredictor, EnsembleSpec } from '../../src/models/types.js';
import { asPlanningAgent, type PlanningAgent } from '../../src/planning/planningAgent.js';

/** Options of `PendulumPredictor`. */
export interface PendulumPredictorOptions {
  /** Members K. Default 1. */
  numMembers?: number;
  /** Per member, a constant added to every entry of its next observation (makes member choice observable). */
  biases?: number[];
  /** Also output Pendulum's reward as the learned reward. Default false. */
  learnReward?: boolean;
  /** Report this variance for every output (probabilistic members). Default: deterministic. */
  variance?: number;
}

/**
 * An `EnsemblePredictor` whose members run Gymnasium's Pendulum-v1 equations exactly
 * (gymnasium/envs/classic_control/pendulum.py, g = 10, m = l = 1, dt = 0.05), row by row, from the
 * observation [cos θ, sin θ, θ̇]: θ = atan2(sin θ, cos θ) loses nothing because the dynamics only
 * use sin θ and θ mod 2π.
 */
export class PendulumPredictor implements EnsemblePredictor {
  readonly spec: EnsembleSpec;
  /** Every call's rowsPerMember, and the obs length it came with. */
  readonly calls: { rowsPerMember: number; rows: number }[] = [];
  readonly #biases: number[];
  readonly #variance: number | undefined;

  constructor(options: PendulumPredictorOptions = {}) {
    const K = options.numMembers ?? 1;
    this.spec = {
      numMembers: K,
      obsDim: 3,
      actDim: 1,
      hidden: [],
      activation: 'silu',
      probabilistic: options.variance !== undefined,
      learnReward: options.learnReward ?? false,
    };
    this.#biases = options.biases ?? new Array<number>(K).fill(0);
    this.#variance = options.variance;
  }

  predict(obs: Float32Array, act: Float32Array, rowsPerMember: number, outNextObs: Float32Array, outReward?: Float32Array, outVar?: Float32Array): Promise<void> {
    const K = this.spec.numMembers;
    const rows = obs.length / 3;
    expect(rows).toBe(K * rowsPerMember);
    expect(act.length).toBe(rows);
    this.calls.push({ rowsPerMember, rows });
    const g = 10;
    const dt = 0.05;
    for (let i = 0; i < rows; i++) {
      const k = Math.floor(i / rowsPerMember);
      const th = Math.atan2(obs[3 * i + 1], obs[3 * i]);
      const thdot = obs[3 * i + 2];
      const u = Math.min(2, Math.max(-2, act[i]));
      let newThdot = thdot + ((3 * g) / 2 * Math.sin(th) + 3 * u) * dt;
      newThdot = Math.min(8, Math.max(-8, newThdot));
      const newTh = th + newThdot * dt;
      const b = this.#biases[k];
      outNextObs[3 * i] = Math.cos(newTh) + b;
      outNextObs[3 * i + 1] = Math.sin(newTh) + b;
      outNextObs[3 * i + 2] = newThdot + b;
      if (outReward !== undefined && this.spec.learnReward) {
        outReward[i] = -(th * th + 0.1 * thdot * thdot + 0.001 * u * u);
      }
      if (outVar !== undefined && this.#variance !== undefined) {
        const O = 3 + (this.spec.learnReward ? 1 : 0);
        for (let d = 0; d < O; d++) outVar[i * O + d] = this.#variance;
      }
    }
    return Promise.resolve();
  }

  dispose(): void {}
}

/**
 * Runs one 200-step Pendulum-v1 episode per seed with `agent`, checking that every action is finite
 * and inside [−2, 2]. Returns the episode returns.
 */
export async function runPendulum(agent: PlanningAgent, seeds: number[]): Promise<number[]> {
  const returns: number[] = [];
  for (const seed of seeds) {
    const env = new Pendulum();
    let { obs } = env.reset({ seed });
    agent.reset();
    let ret = 0;
    for (;;) {
      const action = await agent.actAsync(obs);
      expect(action.length).toBe(1);
      expect(Number.isFinite(action[0]) && action[0] >= -2 && action[0] <= 2).toBe(true);
      const s = env.step(action);
      ret += s.reward;
      obs = s.obs;
      if (s.terminated || s.truncated) break;
    }
    returns.push(ret);
  }
  return returns;
}

/** Returns of uniform random actions on the same seeds (about −1200: the pole is never held up). */
export async function randomPendulumReturns(seeds: number[]): Promise<number[]> {
  const env = new Pendulum();
  return runPendulum(asPlanningAgent(new RandomAgent(env.actionSpace, new Rng(12345))), seeds);
}

export function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}
