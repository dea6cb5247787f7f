/**
 * A simulated robot behind the `Transport` interface: any registered environment, stepped at the
 * control period, talking the ROS 2 messages a real robot would. The control node runs against it
 * unchanged, in virtual time for tests or paced by a timer for demos.
 *
 * Per control tick (after `connect`, which resets the environment and publishes the first
 * observation):
 *   1. the latest action received on `actionTopic` (held from earlier ticks when none came, zeros
 *      before the first) is clipped to the action space and applied: `env.step(action)`;
 *   2. simulated time advances by the environment's `dt`;
 *   3. the reward is published on `rewardTopic` (`std_msgs/msg/Float64`);
 *   4. if the episode ended, `std_msgs/msg/Bool` is published on `episodeEndTopic` (`data`: true
 *      when terminated, false when cut by the time limit) and the environment is reset;
 *   5. the observation is published on `sensorTopic` as `sensor_msgs/msg/JointState`, stamped
 *      with the simulated time it was measured (after the sensor delay, if any).
 * So a subscriber sees, per tick: reward, [episode end], observation — the order a node needs to
 * pair a reward with the step that earned it.
 */
import { asyncScheduler, type SchedulerAction, type SchedulerLike, type Subscription } from 'rxjs';
import type { Env } from '../core/env.js';
import { ValidationError, checkFiniteVector, describe } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { makeEnv } from '../envs/registry.js';
import type { MakeEnvOptions } from '../envs/spec.js';
import { LoopbackTransport } from './loopback.js';
import { timeFromNs, type Bool, type Float64, type Float64MultiArray, type JointState, type Twist } from './messages.js';
import type { IncomingMessage, QosProfile, Transport, Unsubscribe } from './transport.js';

/** `sensor_msgs/msg/JointState` */
export const JOINT_STATE_TYPE = 'sensor_msgs/msg/JointState';
/** `std_msgs/msg/Float64MultiArray` */
export const FLOAT64_MULTI_ARRAY_TYPE = 'std_msgs/msg/Float64MultiArray';
/** `geometry_msgs/msg/Twist` */
export const TWIST_TYPE = 'geometry_msgs/msg/Twist';
/** `std_msgs/msg/Float64` */
export const FLOAT64_TYPE = 'std_msgs/msg/Float64';
/** `std_msgs/msg/Bool` */
export const BOOL_TYPE = 'std_msgs/msg/Bool';

/** A scalar field of `geometry_msgs/msg/Twist`. */
export type TwistField = 'linear.x' | 'linear.y' | 'linear.z' | 'angular.x' | 'angular.y' | 'angular.z';
const TWIST_FIELDS: readonly TwistField[] = ['linear.x', 'linear.y', 'linear.z', 'angular.x', 'angular.y', 'angular.z'];

/**
 * Where the entries of an observation vector go in a `JointState`: `position[i]` is
 * `obs[position[i]]`, likewise `velocity` and `effort`. Together the three lists name every
 * observation index exactly once, so `observationFromJointState` inverts the mapping.
 * (ROS expects equal lengths or empty arrays; a split such as HalfCheetah's 8 positions and
 * 9 velocities does not have them, and is still inverted exactly.)
 */
export interface JointStateLayout {
  position: readonly number[];
  velocity?: readonly number[];
  effort?: readonly number[];
}

/**
 * Checks a layout against an observation length.
 * @throws ValidationError naming the list and index that is out of range, repeated or missing
 */
export function checkJointStateLayout(layout: JointStateLayout, obsDim: number, where: string): void {
  const seen = new Int32Array(obsDim).fill(-1);
  for (const key of ['position', 'velocity', 'effort'] as const) {
    const list = layout[key] ?? [];
    if (!Array.isArray(list)) throw new ValidationError(where, `layout.${key}`, `expected an array of observation indices, got ${describe(list)}`);
    list.forEach((idx, i) => {
      if (!Number.isInteger(idx) || idx < 0 || idx >= obsDim) {
        throw new ValidationError(where, `layout.${key}[${i}]`, `expected an observation index in [0, ${obsDim}), got ${describe(idx)}`);
      }
      if (seen[idx] >= 0) throw new ValidationError(where, `layout.${key}[${i}]`, `observation index ${idx} is mapped twice`);
      seen[idx] = 1;
    });
  }
  const missing = Array.from(seen).findIndex((s) => s < 0);
  if (missing >= 0) throw new ValidationError(where, 'layout', `observation index ${missing} is not mapped; every index in [0, ${obsDim}) must appear once in position, velocity or effort`);
}

/**
 * The `JointState` carrying `obs` under `layout`.
 * @param names joint names, one per `position` entry
 */
export function jointStateFromObservation(obs: ArrayLike<number>, layout: JointStateLayout, stampNs: bigint, names: readonly string[], frameId = ''): JointState {
  const pick = (idx: readonly number[] | undefined): number[] => (idx ?? []).map((i) => obs[i]);
  return {
    header: { stamp: timeFromNs(stampNs), frame_id: frameId },
    name: [...names],
    position: pick(layout.position),
    velocity: pick(layout.velocity),
    effort: pick(layout.effort),
  };
}

/**
 * The observation vector a `JointState` carries under `layout` (the inverse of
 * `jointStateFromObservation`).
 * @throws ValidationError naming the array whose length differs from the layout's, or the first
 *   non-finite entry
 */
export function observationFromJointState(msg: JointState, layout: JointStateLayout, obsDim: number, where = 'observationFromJointState'): Float64Array {
  const obs = new Float64Array(obsDim);
  for (const key of ['position', 'velocity', 'effort'] as const) {
    const idx = layout[key] ?? [];
    const values = msg?.[key];
    if (idx.length === 0) continue;
    checkFiniteVector(values, idx.length, where, key);
    idx.forEach((o, i) => (obs[o] = values[i]));
  }
  return obs;
}

/**
 * The action vector a Twist carries: `fields[i]` of the twist becomes `action[i]`.
 * @throws ValidationError naming the first field that is missing or not a finite number
 */
export function actionFromTwist(t: Twist, fields: readonly TwistField[], where = 'actionFromTwist'): Float64Array {
  const out = new Float64Array(fields.length);
  fields.forEach((f, i) => {
    const [part, axis] = f.split('.') as ['linear' | 'angular', 'x' | 'y' | 'z'];
    const v = t?.[part]?.[axis];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ValidationError(where, f, `expected a finite number, got ${describe(v)}`);
    out[i] = v;
  });
  return out;
}

/** The Twist fields used for an action of `actDim` entries when none are configured. */
function defaultTwistFields(actDim: number): TwistField[] | undefined {
  // Differential-drive convention: forward speed, then yaw rate.
  if (actDim === 1) return ['linear.x'];
  if (actDim === 2) return ['linear.x', 'angular.z'];
  return undefined;
}

/** Options of `new SimTransport`. */
export interface SimTransportOptions {
  /** The simulator: an environment instance (not closed by the transport) or a registered id (built at `connect`, closed at `close`). */
  env: Env | string;
  /** Options of `makeEnv` when `env` is an id (physics variant, time limit, MJCF directory). */
  makeEnvOptions?: MakeEnvOptions;
  /** Where observations are published. Default `/joint_states`. */
  sensorTopic?: string;
  /** Where actions are read. Default `/mbrl/action`. */
  actionTopic?: string;
  /** The action message: `std_msgs/msg/Float64MultiArray` (`data` = the action, the default) or `geometry_msgs/msg/Twist`. */
  actionType?: typeof FLOAT64_MULTI_ARRAY_TYPE | typeof TWIST_TYPE;
  /** With Twist actions, the field of each action entry. Default `['linear.x']` for 1-D and `['linear.x', 'angular.z']` for 2-D actions; required otherwise. */
  twistFields?: TwistField[];
  /** Where the step's reward is published. Default `/mbrl/reward`. */
  rewardTopic?: string;
  /** Where the end of an episode is announced. Default `/mbrl/episode_end`. */
  episodeEndTopic?: string;
  /** How the observation maps onto the JointState. Default: the whole vector as `position`. */
  layout?: JointStateLayout;
  /** Names of the `position` entries. Default the environment's `obsNames` at those indices, else `obs[i]`. */
  jointNames?: string[];
  /** `header.frame_id` of the observations. Default `''`. */
  frameId?: string;
  /**
   * Milliseconds between ticks on the scheduler. Default the environment's `dt` (real-time pace).
   * Simulated time always advances by `dt` per tick, whatever the period.
   */
  controlPeriodMs?: number;
  /**
   * What drives the ticks: an RxJS scheduler (`asyncScheduler`, the default, paces them with
   * `setInterval`; a `VirtualTimeScheduler`/`TestScheduler` runs them in virtual time), or
   * `'manual'`: only `tick()` advances the simulation.
   */
  scheduler?: SchedulerLike | 'manual';
  /** Simulated time at `connect`, nanoseconds. Default 0. */
  startNs?: bigint;
  /** Seeds the first reset and the sensor noise. Default 0. */
  seed?: number;
  /**
   * Standard deviation of Gaussian sensor noise added to each published observation entry.
   * Default 0. (This is noise on the wire; `physics.obsNoiseStd` of the environment is noise the
   * simulated plant itself returns. Either models an imperfect sensor.)
   */
  obsNoiseStd?: number;
  /**
   * Sensor latency in ticks: the observation published at tick t was measured at tick t − k (and
   * is stamped with that time). Restarts at each episode: the first k ticks repeat the reset
   * observation. Default 0.
   */
  obsDelaySteps?: number;
  /** Keep applying the last action when none arrived since the last tick (a motor driver's hold). Default true; false applies zeros. */
  holdLastAction?: boolean;
  /** Called for an action that cannot be applied (wrong type, length, a non-finite entry) and for a tick that threw. */
  onError?: (err: Error) => void;
}

/** Counters of a `SimTransport`. */
export interface SimTransportStats {
  /** Control ticks run (environment steps). */
  ticks: number;
  /** Episodes finished. */
  episodes: number;
  /** Action messages received and accepted. */
  actionsReceived: number;
  /** Action messages rejected (reported through `onError`). */
  invalidActions: number;
  /** Applied actions that had to be clipped into the action space. */
  clippedActions: number;
  /** Ticks that had no new action since the previous tick (the held or zero action was applied). */
  ticksWithoutNewAction: number;
  /** Sum of rewards of the episode in progress. */
  episodeReturn: number;
  /** Return of the last finished episode, or null. */
  lastEpisodeReturn: number | null;
}

/**
 * A `Transport` around an in-process simulator (see the file comment for what each tick does).
 * Anything else published through it is delivered to the subscribers of that topic, as on a
 * ROS graph; `nowNs` is simulated time.
 *
 * @example
 * const sim = new SimTransport({ env: 'Pendulum-v1', scheduler: 'manual' });
 * sim.subscribe<JointState>('/joint_states', JOINT_STATE_TYPE, (m) => act(m.data.position));
 * await sim.connect();              // resets, publishes the first observation
 * sim.publish('/mbrl/action', FLOAT64_MULTI_ARRAY_TYPE, { layout: { dim: [], data_offset: 0 }, data: [0.5] });
 * sim.tick();                       // steps with 0.5; publishes reward and the next observation
 */
export class SimTransport implements Transport {
  readonly kind = 'sim';
  #options: SimTransportOptions;
  #bus: LoopbackTransport;
  #env: Env | undefined;
  #ownsEnv: boolean;
  #sensorTopic: string;
  #actionTopic: string;
  #rewardTopic: string;
  #episodeEndTopic: string;
  #actionType: string;
  #twistFields: TwistField[] = [];
  #layout: JointStateLayout = { position: [] };
  #names: string[] = [];
  #dtNs = 0n;
  #nowNs: bigint;
  #noise: Rng;
  #delayLine: { obs: Float64Array; stampNs: bigint }[] = [];
  #action: Float64Array = new Float64Array(0);
  #newAction = false;
  #timer: Subscription | undefined;
  #unsubAction: Unsubscribe | undefined;
  #connected = false;
  #closed = false;
  #stats: SimTransportStats = { ticks: 0, episodes: 0, actionsReceived: 0, invalidActions: 0, clippedActions: 0, ticksWithoutNewAction: 0, episodeReturn: 0, lastEpisodeReturn: null };

  constructor(options: SimTransportOptions) {
    const where = 'SimTransport';
    if (options === null || typeof options !== 'object') throw new ValidationError(where, 'options', `expected an options object, got ${describe(options)}`);
    if (typeof options.env !== 'string' && (options.env === null || typeof options.env !== 'object' || typeof options.env.step !== 'function')) {
      throw new ValidationError(where, 'env', `expected an Env or a registered environment id, got ${describe(options.env)}`);
    }
    const nonNeg = (key: 'obsNoiseStd' | 'obsDelaySteps' | 'controlPeriodMs', integer: boolean, positive = false): void => {
      const v = options[key];
      if (v === undefined) return;
      const ok = typeof v === 'number' && Number.isFinite(v) && (positive ? v > 0 : v >= 0) && (!integer || Number.isInteger(v));
      if (!ok) throw new ValidationError(where, key, `expected a ${positive ? 'positive' : 'non-negative'} ${integer ? 'integer' : 'finite number'}, got ${describe(v)}`);
    };
    nonNeg('obsNoiseStd', false);
    nonNeg('obsDelaySteps', true);
    nonNeg('controlPeriodMs', false, true);
    const actionType = options.actionType ?? FLOAT64_MULTI_ARRAY_TYPE;
    if (actionType !== FLOAT64_MULTI_ARRAY_TYPE && actionType !== TWIST_TYPE) {
      throw new ValidationError(where, 'actionType', `expected '${FLOAT64_MULTI_ARRAY_TYPE}' or '${TWIST_TYPE}', got ${describe(actionType)}`);
    }
    this.#options = options;
    this.#actionType = actionType;
    this.#ownsEnv = typeof options.env === 'string';
    this.#sensorTopic = options.sensorTopic ?? '/joint_states';
    this.#actionTopic = options.actionTopic ?? '/mbrl/action';
    this.#rewardTopic = options.rewardTopic ?? '/mbrl/reward';
    this.#episodeEndTopic = options.episodeEndTopic ?? '/mbrl/episode_end';
    this.#nowNs = options.startNs ?? 0n;
    this.#noise = new Rng(options.seed ?? 0, 7);
    this.#bus = new LoopbackTransport({ clock: () => this.#nowNs, kind: 'sim' });
  }

  /** The simulator (after `connect`). */
  get env(): Env {
    if (this.#env === undefined) throw new Error('SimTransport.env: not connected; call connect() first');
    return this.#env;
  }

  /** Counters (a copy). */
  get stats(): Readonly<SimTransportStats> {
    return { ...this.#stats };
  }

  /**
   * Builds the environment (when given an id), checks the layout and Twist mapping against it,
   * resets it, publishes the first observation and starts the ticks.
   * @throws ValidationError for a layout or Twist mapping that does not fit the environment
   */
  async connect(): Promise<void> {
    if (this.#closed) throw new Error('SimTransport.connect: the transport is closed');
    if (this.#connected) return;
    const o = this.#options;
    const env = typeof o.env === 'string' ? await makeEnv(o.env, o.makeEnvOptions) : o.env;
    this.#env = env;
    const where = `SimTransport(${env.id})`;
    const obsDim = env.observationSpace.dim;
    const actDim = env.actionSpace.dim;
    this.#layout = o.layout ?? { position: Array.from({ length: obsDim }, (_, i) => i) };
    checkJointStateLayout(this.#layout, obsDim, where);
    const names = o.jointNames ?? this.#layout.position.map((i) => env.obsNames?.[i] ?? `obs[${i}]`);
    if (names.length !== this.#layout.position.length) {
      throw new ValidationError(where, 'jointNames', `expected ${this.#layout.position.length} names (one per position entry), got ${names.length}`);
    }
    this.#names = [...names];
    if (this.#actionType === TWIST_TYPE) {
      const fields = o.twistFields ?? defaultTwistFields(actDim);
      if (fields === undefined) throw new ValidationError(where, 'twistFields', `required for Twist actions of ${actDim} entries (defaults exist for 1 and 2)`);
      if (fields.length !== actDim || !fields.every((f) => TWIST_FIELDS.includes(f))) {
        throw new ValidationError(where, 'twistFields', `expected ${actDim} of ${TWIST_FIELDS.join(', ')}, got ${JSON.stringify(fields)}`);
      }
      this.#twistFields = [...fields];
    }
    this.#dtNs = BigInt(Math.round(env.dt * 1e9));
    this.#action = new Float64Array(actDim);
    this.#clipInto(this.#action);
    this.#unsubAction = this.#bus.subscribe(this.#actionTopic, this.#actionType, (m) => this.#onAction(m.data));
    this.#connected = true;
    this.#startEpisode(env.reset({ seed: o.seed ?? 0 }).obs);
    const scheduler = o.scheduler ?? asyncScheduler;
    if (scheduler !== 'manual') {
      const period = o.controlPeriodMs ?? env.dt * 1000;
      const tick = (): void => {
        try {
          this.tick();
        } catch (err) {
          this.#report(err);
        }
      };
      this.#timer = scheduler.schedule(function (this: SchedulerAction<undefined>) {
        tick();
        // Rescheduling with the same delay makes the async scheduler keep one setInterval.
        this.schedule(undefined, period);
      }, period);
    }
  }

  /**
   * One control tick (see the file comment). Called by the scheduler, or by hand with
   * `scheduler: 'manual'`.
   * @throws Error if not connected
   */
  tick(): void {
    if (!this.#connected || this.#env === undefined) throw new Error('SimTransport.tick: not connected; call connect() first');
    const env = this.#env;
    if (!this.#newAction) {
      this.#stats.ticksWithoutNewAction++;
      if (this.#options.holdLastAction === false) {
        this.#action.fill(0);
        this.#clipInto(this.#action);
      }
    }
    this.#newAction = false;
    const step = env.step(this.#action);
    this.#nowNs += this.#dtNs;
    this.#stats.ticks++;
    this.#stats.episodeReturn += step.reward;
    this.#bus.publish(this.#rewardTopic, FLOAT64_TYPE, { data: step.reward } satisfies Float64);
    if (step.terminated || step.truncated) {
      this.#stats.episodes++;
      this.#stats.lastEpisodeReturn = this.#stats.episodeReturn;
      this.#stats.episodeReturn = 0;
      this.#bus.publish(this.#episodeEndTopic, BOOL_TYPE, { data: step.terminated } satisfies Bool);
      this.#startEpisode(env.reset().obs);
    } else {
      this.#measure(step.obs);
    }
  }

  subscribe<T = unknown>(
    topic: string,
    type: string,
    onMessage: (msg: IncomingMessage<T>) => void,
    options?: { qos?: QosProfile; onError?: (err: Error) => void },
  ): Unsubscribe {
    return this.#bus.subscribe(topic, type, onMessage, options);
  }

  /** Delivers to the subscribers of `topic`; on `actionTopic`, also sets the action of the next tick. */
  publish(topic: string, type: string, data: unknown): void {
    this.#bus.publish(topic, type, data);
  }

  /** Simulated time: `startNs` plus `dt` per tick. */
  nowNs(): bigint {
    return this.#nowNs;
  }

  /** Stops the ticks, drops subscriptions, closes the environment if the transport built it. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#timer?.unsubscribe();
    this.#unsubAction?.();
    this.#connected = false;
    await this.#bus.close();
    if (this.#ownsEnv) this.#env?.close();
  }

  #startEpisode(obs: Float64Array): void {
    this.#delayLine = [];
    const k = this.#options.obsDelaySteps ?? 0;
    for (let i = 0; i < k; i++) this.#delayLine.push({ obs, stampNs: this.#nowNs });
    this.#measure(obs);
  }

  /** Records a measurement and publishes the one the delay line releases. */
  #measure(obs: Float64Array): void {
    this.#delayLine.push({ obs, stampNs: this.#nowNs });
    const out = this.#delayLine.shift()!;
    const std = this.#options.obsNoiseStd ?? 0;
    const reading = Float64Array.from(out.obs);
    if (std > 0) for (let i = 0; i < reading.length; i++) reading[i] += this.#noise.normal(0, std);
    this.#bus.publish(this.#sensorTopic, JOINT_STATE_TYPE, jointStateFromObservation(reading, this.#layout, out.stampNs, this.#names, this.#options.frameId ?? ''));
  }

  #onAction(data: unknown): void {
    const env = this.#env!;
    const where = `SimTransport(${env.id}).${this.#actionTopic}`;
    let action: Float64Array;
    try {
      if (this.#actionType === TWIST_TYPE) {
        action = actionFromTwist(data as Twist, this.#twistFields, where);
      } else {
        const values = (data as Float64MultiArray | null)?.data;
        checkFiniteVector(values, env.actionSpace.dim, where, 'data');
        action = Float64Array.from(values as number[]);
      }
    } catch (err) {
      this.#stats.invalidActions++;
      this.#report(err);
      return;
    }
    if (this.#clipInto(action)) this.#stats.clippedActions++;
    this.#action = action;
    this.#newAction = true;
    this.#stats.actionsReceived++;
  }

  /** Clips in place into the action space; returns whether anything changed. */
  #clipInto(a: Float64Array): boolean {
    const { low, high } = this.#env!.actionSpace;
    let clipped = false;
    for (let i = 0; i < a.length; i++) {
      const v = Math.min(high[i], Math.max(low[i], a[i]));
      if (v !== a[i]) clipped = true;
      a[i] = v;
    }
    return clipped;
  }

  #report(err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
    if (this.#options.onError) this.#options.onError(e);
    else console.error(`[mbrl] ${e.message}`);
  }
}
