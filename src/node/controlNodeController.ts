/**
 * What the control node asks for an action at each tick, and the RxJS operator that asks it with
 * a deadline. Controllers: uniform random or the safe action (before the first model), the PETS
 * planner over a promoted ensemble, an exported ONNX policy, a Gaussian MLP policy from a
 * checkpoint.
 */
import { Observable, asyncScheduler, type OperatorFunction, type SchedulerLike, type Subscription } from 'rxjs';
import { makePetsConfig, type PetsConfig, type PetsOverrides } from '../algorithms/mbrl.js';
import { RandomAgent } from '../core/agent.js';
import { ValidationError } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import { Box } from '../core/spaces.js';
import { envSpec } from '../envs/registry.js';
import { OrtEnsemblePredictor } from '../models/ensembleOnnx.js';
import { ModelEnv } from '../models/modelEnv.js';
import { selectMembers, type EnsembleWeights } from '../models/types.js';
import type { ControlState } from '../pipeline/assembleState.js';
import type { ControlDecision } from '../pipeline/safetyFilter.js';
import { createModelPlanningAgent } from '../planning/trajectoryOptimizerAgent.js';
import { GaussianMlpPolicy, type GaussianMlpPolicySpec, type PolicyWeights } from '../policies/gaussianMlpPolicy.js';
import { OnnxPolicy } from '../policies/onnxPolicy.js';

/**
 * A controller as the node uses it: an action per observation, synchronously (a policy) or as a
 * promise (a planner, whose ensemble runs in onnxruntime). The returned array may be reused by the
 * next call.
 */
export interface NodeController {
  /** For logs and diagnostics: `random`, `safeAction`, `pets`, `onnx`, `policy`, or a caller's. */
  readonly kind: string;
  act(obs: Float64Array): Float64Array | Promise<Float64Array>;
  /** A new episode (the robot was reset): planners drop their warm start. */
  reset(): void;
  /** Releases sessions and tensors; called once no call is running any more. */
  dispose?(): void;
}

/** Uniform random actions within `bounds` (PETS's warm-up), seeded. */
export function randomController(bounds: { low: readonly number[]; high: readonly number[] }, rng: Rng): NodeController {
  const agent = new RandomAgent(new Box(bounds.low, bounds.high), rng);
  return { kind: 'random', act: () => agent.act(), reset: () => undefined };
}

/** Always `action` (e.g. the safe action). */
export function constantController(action: readonly number[], kind = 'safeAction'): NodeController {
  const a = Float64Array.from(action);
  return { kind, act: () => a, reset: () => undefined };
}

/**
 * The PETS configuration of the node: the algorithm's overrides on the task's defaults.
 * @param task the task whose known reward the planner optimises (and whose defaults apply)
 */
export function nodePetsConfig(task: string, overrides: Record<string, unknown>): PetsConfig {
  return makePetsConfig({ ...(overrides as PetsOverrides), env: task });
}

/**
 * The PETS planner (CEM/MPPI/random shooting over TS1/TS∞ particles, `makePetsAgent`'s recipe) on
 * a promoted ensemble, within the node's action bounds.
 * @param rng forked for the model's sampling and the planner
 */
export async function petsController(config: PetsConfig, model: { weights: EnsembleWeights; elites: readonly number[] | null }, bounds: { low: readonly number[]; high: readonly number[] }, rng: Rng): Promise<NodeController> {
  const w = config.planWithElites && model.elites ? selectMembers(model.weights, [...model.elites]) : model.weights;
  const predictor = await OrtEnsemblePredictor.create(w, config.plannerThreads === null ? {} : { intraOpThreads: config.plannerThreads });
  const modelEnv = new ModelEnv(predictor, { task: envSpec(config.env).task, propagation: config.propagation, rng: rng.fork() });
  const agent = createModelPlanningAgent(modelEnv, config.planner, new Box(bounds.low, bounds.high), { rng: rng.fork(), particles: config.particles });
  return { kind: 'pets', act: (obs) => agent.actAsync(obs), reset: () => agent.reset(), dispose: () => predictor.dispose() };
}

/**
 * An exported policy (`mbrl export`) run by onnxruntime, checked against the node's sizes.
 * @throws ValidationError naming the file and what does not fit
 */
export async function onnxController(file: string, dims: { obsDim: number; actDim: number }, threads?: number): Promise<NodeController> {
  const policy = await OnnxPolicy.load(file, dims, threads === undefined ? {} : { intraOpThreads: threads });
  return {
    kind: 'onnx',
    act: (obs) => (policy.synchronous ? policy.act(obs) : policy.actAsync(obs)),
    reset: () => policy.reset(),
    dispose: () => policy.dispose(),
  };
}

/**
 * A Gaussian MLP policy (ME-TRPO, MB-MPO, …) from its spec and weights: its mean action
 * (`deterministic`) or a sample. The weights are copied: the controller never changes, a new
 * policy is a new controller swapped into the slot. Each action is computed in plain JavaScript
 * (`forwardFast`, no tfjs call on the control loop). Needs the tfjs backend (`initBackend`) to
 * hold the weights.
 */
export function policyController(spec: GaussianMlpPolicySpec, weights: PolicyWeights, deterministic: boolean, rng: Rng): NodeController {
  const policy = new GaussianMlpPolicy(spec, { weights });
  const batch = new Float64Array(spec.obsDim);
  const out = new Float64Array(spec.actDim);
  return {
    kind: 'policy',
    act(obs) {
      batch.set(obs);
      if (deterministic) return policy.toActions(policy.forwardFast(batch, 1).mean, 1, out);
      return Float64Array.from(policy.sample(batch, 1, rng).actions);
    },
    reset: () => undefined,
    dispose: () => policy.dispose(),
  };
}

/** The controller in use and its version (0 before any model; +1 per swap). Swapped as one object. */
export interface ControllerSlot {
  controller: NodeController;
  version: number;
}

/** One call of the controller, as `controlStep` reports it. */
export interface ControlCall {
  tick: number;
  /** The slot's version and controller kind when the call was made. */
  version: number;
  kind: string;
  /** `busy`: not called, the previous call was still running. */
  outcome: 'ok' | 'error' | 'timeout' | 'busy';
  /** Wall milliseconds until it answered (the deadline for a timeout). */
  ms: number;
}

/** Options of `controlStep`. */
export interface ControlStepOptions {
  /** The slot read at each tick (the node swaps it on promotion; never awaited). */
  current: () => ControllerSlot;
  /**
   * An answer later than this is a controller error (`timeout`); wall milliseconds. A tick that
   * arrives while the previous call is still running ends that call's wait too (its action would
   * be late), and gets `busy` itself: a controller is never called twice at once (a swapped-in
   * one is called at once).
   */
  timeoutMs: number;
  /** Times the deadline. Default `asyncScheduler` (wall clock: a hang is a wall-clock fact). */
  timeoutScheduler?: SchedulerLike;
  /** Called when an asynchronous call starts; the returned function when its decision is out (lockstep holds simulated time meanwhile). */
  onAsyncCall?: () => () => void;
  /** Told about every call: the slot's version, how it ended, wall milliseconds. */
  onCall?: (info: ControlCall) => void;
}

/** The error of a controller that answered too late. */
export class ControllerTimeoutError extends Error {
  constructor(kind: string, tick: number, timeoutMs: number) {
    super(`controller ${kind}: no action for tick ${tick} within ${timeoutMs} ms`);
    this.name = 'ControllerTimeoutError';
  }
}

/**
 * The controller between state assembly and the safety filter: one `ControlDecision` per state,
 * in tick order, with the action, or the error when the controller threw, returned a bad value,
 * hung past `timeoutMs`, or was still busy with an earlier tick. A synchronous controller's
 * decision is emitted at once; an asynchronous one's when it resolves. On completion of the
 * states, a running call is waited for (bounded by its deadline) so the last decision is not
 * lost.
 * @example states$.pipe(controlStep({ current: () => slot, timeoutMs: 50 }), safetyFilter({ … }))
 */
export function controlStep(options: ControlStepOptions): OperatorFunction<ControlState, ControlDecision> {
  const { timeoutMs } = options;
  if (!(timeoutMs > 0)) throw new ValidationError('controlStep', 'timeoutMs', `expected a positive number of milliseconds, got ${timeoutMs}`);
  const timeoutScheduler = options.timeoutScheduler ?? asyncScheduler;
  const report = options.onCall ?? (() => undefined);
  return (source) =>
    new Observable<ControlDecision>((subscriber) => {
      /** The call whose decision is not out yet. */
      let waiting: {
        state: ControlState;
        kind: string;
        t0: number;
        report: (outcome: ControlCall['outcome'], ms: number) => void;
        finish: (d: ControlDecision) => void;
        abandon: () => void;
      } | null = null;
      /** Controllers with a call still running (its decision may already be out, by timeout). */
      const running = new Set<NodeController>();
      let completed = false;
      const maybeComplete = (): void => {
        if (completed && waiting === null) subscriber.complete();
      };
      const sub: Subscription = source.subscribe({
        next(state) {
          const { controller, version } = options.current();
          if (waiting !== null) {
            // A new tick: the previous action would be late now.
            const late = waiting;
            late.report('timeout', performance.now() - late.t0);
            late.finish({ state: late.state, error: new ControllerTimeoutError(late.kind, late.state.tick, timeoutMs) });
          }
          const t0 = performance.now();
          const tick = state.tick;
          if (running.has(controller)) {
            report({ tick, version, kind: controller.kind, outcome: 'busy', ms: 0 });
            subscriber.next({ state, error: new Error(`controller ${controller.kind} is still computing an earlier tick's action`) });
            return;
          }
          let result: Float64Array | Promise<Float64Array>;
          try {
            result = controller.act(state.obs);
          } catch (err) {
            report({ tick, version, kind: controller.kind, outcome: 'error', ms: performance.now() - t0 });
            subscriber.next({ state, error: err });
            return;
          }
          if (!isPromise(result)) {
            report({ tick, version, kind: controller.kind, outcome: 'ok', ms: performance.now() - t0 });
            subscriber.next({ state, action: result });
            return;
          }
          running.add(controller);
          const release = options.onAsyncCall?.() ?? (() => undefined);
          const deadline: { timer?: Subscription } = {};
          const entry = {
            state,
            kind: controller.kind,
            t0,
            report: (outcome: ControlCall['outcome'], ms: number) => report({ tick, version, kind: controller.kind, outcome, ms }),
            finish(d: ControlDecision): void {
              if (waiting !== entry) return;
              waiting = null;
              deadline.timer?.unsubscribe();
              subscriber.next(d);
              release();
              maybeComplete();
            },
            abandon(): void {
              deadline.timer?.unsubscribe();
              release();
            },
          };
          waiting = entry;
          deadline.timer = timeoutScheduler.schedule(() => {
            if (waiting !== entry) return;
            entry.report('timeout', performance.now() - t0);
            entry.finish({ state, error: new ControllerTimeoutError(controller.kind, state.tick, timeoutMs) });
          }, timeoutMs);
          result.then(
            (action) => {
              running.delete(controller);
              if (waiting !== entry) return; // too late: its tick already got an error decision
              entry.report('ok', performance.now() - t0);
              entry.finish({ state, action: Float64Array.from(action) });
            },
            (err: unknown) => {
              running.delete(controller);
              if (waiting !== entry) return;
              entry.report('error', performance.now() - t0);
              entry.finish({ state, error: err });
            },
          );
        },
        error: (err: unknown) => subscriber.error(err),
        complete() {
          completed = true;
          maybeComplete();
        },
      });
      return () => {
        sub.unsubscribe();
        // The subscriber is gone: nothing to emit, but the deadline and the lockstep hold must go.
        waiting?.abandon();
        waiting = null;
      };
    });
}

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}
