// SimTransport: a registered environment behind the Transport interface. Each test compares what
// the transport publishes with a reference instance of the same environment stepped by hand, so a
// wrong action, a skipped step, a misplaced reward or a wrong stamp fails.
import { VirtualTimeScheduler } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { makeEnv } from '../../src/envs/registry.js';
import { nsFromTime, type Bool, type Float64, type JointState } from '../../src/transports/messages.js';
import {
  BOOL_TYPE,
  FLOAT64_MULTI_ARRAY_TYPE,
  FLOAT64_TYPE,
  JOINT_STATE_TYPE,
  SimTransport,
  TWIST_TYPE,
  actionFromTwist,
  checkJointStateLayout,
  jointStateFromObservation,
  observationFromJointState,
} from '../../src/transports/sim.js';

const action = (...data: number[]) => ({ layout: { dim: [], data_offset: 0 }, data });

/** Records every message of the sim's outgoing topics, in order. */
function record(sim: SimTransport): { log: [string, unknown, bigint][]; obs: JointState[] } {
  const log: [string, unknown, bigint][] = [];
  const obs: JointState[] = [];
  sim.subscribe<JointState>('/joint_states', JOINT_STATE_TYPE, (m) => {
    log.push(['obs', m.data, m.receivedNs]);
    obs.push(m.data);
  });
  sim.subscribe<Float64>('/mbrl/reward', FLOAT64_TYPE, (m) => log.push(['reward', m.data.data, m.receivedNs]));
  sim.subscribe<Bool>('/mbrl/episode_end', BOOL_TYPE, (m) => log.push(['end', m.data.data, m.receivedNs]));
  return { log, obs };
}

describe('SimTransport', () => {
  it('publishes the reset observation, applies received actions, and publishes reward then observation per tick at simulated time', async () => {
    const sim = new SimTransport({ env: 'Pendulum-v1', scheduler: 'manual', seed: 5, startNs: 1_000n });
    const { log, obs } = record(sim);
    await sim.connect();
    const ref = await makeEnv('Pendulum-v1');
    const r0 = ref.reset({ seed: 5 });
    expect(obs).toHaveLength(1);
    expect(obs[0].position).toEqual(Array.from(r0.obs));
    expect(obs[0].name).toEqual(['cos(theta)', 'sin(theta)', 'theta_dot'].map((n, i) => ref.obsNames?.[i] ?? n));
    expect(nsFromTime(obs[0].header.stamp)).toBe(1_000n);

    const actions = [1.5, -0.7, 0.2];
    for (const a of actions) {
      sim.publish('/mbrl/action', FLOAT64_MULTI_ARRAY_TYPE, action(a));
      sim.tick();
    }
    const dtNs = 50_000_000n; // Pendulum dt = 0.05 s
    const expected: [string, unknown, bigint][] = [['obs', obs[0], 1_000n]];
    actions.forEach((a, i) => {
      const s = ref.step([a]);
      const t = 1_000n + BigInt(i + 1) * dtNs;
      expected.push(['reward', s.reward, t]);
      expected.push(['obs', { header: { stamp: { sec: 0, nanosec: Number(t) }, frame_id: '' }, name: obs[0].name, position: Array.from(s.obs), velocity: [], effort: [] }, t]);
    });
    expect(log).toEqual(expected);
    expect(sim.nowNs()).toBe(1_000n + 3n * dtNs);
    expect(sim.stats).toMatchObject({ ticks: 3, actionsReceived: 3, ticksWithoutNewAction: 0 });
    await sim.close();
    ref.close();
  });

  it('holds the last action between messages (or applies zeros), and clips actions to the action space', async () => {
    for (const hold of [true, false]) {
      const sim = new SimTransport({ env: 'Pendulum-v1', scheduler: 'manual', holdLastAction: hold });
      const { obs } = record(sim);
      await sim.connect();
      const ref = await makeEnv('Pendulum-v1');
      ref.reset({ seed: 0 });
      sim.publish('/mbrl/action', FLOAT64_MULTI_ARRAY_TYPE, action(5)); // beyond max torque 2
      sim.tick();
      sim.tick();
      ref.step([2]);
      const s = ref.step([hold ? 2 : 0]);
      expect(obs[2].position).toEqual(Array.from(s.obs));
      expect(sim.stats).toMatchObject({ clippedActions: 1, ticksWithoutNewAction: 1 });
      await sim.close();
      ref.close();
    }
  });

  it('announces the end of an episode (truncated: false) and starts the next one with a reset observation', async () => {
    const sim = new SimTransport({ env: 'Pendulum-v1', scheduler: 'manual', makeEnvOptions: { maxEpisodeSteps: 3 } });
    const { log } = record(sim);
    await sim.connect();
    const ref = await makeEnv('Pendulum-v1', { maxEpisodeSteps: 3 });
    ref.reset({ seed: 0 });
    for (let i = 0; i < 4; i++) sim.tick();
    for (let i = 0; i < 3; i++) ref.step([0]);
    const next = ref.reset();
    const kinds = log.map(([k]) => k);
    expect(kinds).toEqual(['obs', 'reward', 'obs', 'reward', 'obs', 'reward', 'end', 'obs', 'reward', 'obs']);
    expect(log[6][1]).toBe(false); // cut by the time limit, not terminal
    expect((log[7][1] as JointState).position).toEqual(Array.from(next.obs));
    expect(sim.stats).toMatchObject({ episodes: 1 });
    expect(sim.stats.lastEpisodeReturn).toBeCloseTo((log[1][1] as number) + (log[3][1] as number) + (log[5][1] as number), 12);
    await sim.close();
    ref.close();
  });

  it('reads Twist actions through the configured fields', async () => {
    const sim = new SimTransport({ env: 'PointGoal2D', scheduler: 'manual', actionType: TWIST_TYPE, twistFields: ['linear.x', 'linear.y'], seed: 2 });
    const { obs } = record(sim);
    await sim.connect();
    const ref = await makeEnv('PointGoal2D');
    ref.reset({ seed: 2 });
    sim.publish('/mbrl/action', TWIST_TYPE, { linear: { x: 0.05, y: -0.03, z: 9 }, angular: { x: 0, y: 0, z: 7 } });
    sim.tick();
    expect(obs[1].position).toEqual(Array.from(ref.step([0.05, -0.03]).obs));
    await sim.close();
    ref.close();
    expect(Array.from(actionFromTwist({ linear: { x: 1, y: 2, z: 3 }, angular: { x: 4, y: 5, z: 6 } }, ['angular.z', 'linear.x']))).toEqual([6, 1]);
  });

  it('rejects an action of the wrong length or with NaN: counted, reported, not applied', async () => {
    const errors: Error[] = [];
    const sim = new SimTransport({ env: 'Pendulum-v1', scheduler: 'manual', onError: (e) => errors.push(e) });
    const { obs } = record(sim);
    await sim.connect();
    sim.publish('/mbrl/action', FLOAT64_MULTI_ARRAY_TYPE, action(1));
    sim.publish('/mbrl/action', FLOAT64_MULTI_ARRAY_TYPE, action(1, 2));
    sim.publish('/mbrl/action', FLOAT64_MULTI_ARRAY_TYPE, action(Number.NaN));
    sim.tick();
    expect(sim.stats.invalidActions).toBe(2);
    expect(errors.map((e) => e.message)).toEqual([
      'SimTransport(Pendulum-v1)./mbrl/action: data: expected length 1, got length 2',
      'SimTransport(Pendulum-v1)./mbrl/action: data[0]: expected a finite number, got NaN',
    ]);
    const ref = await makeEnv('Pendulum-v1');
    ref.reset({ seed: 0 });
    expect(obs[1].position).toEqual(Array.from(ref.step([1]).obs)); // the valid action was kept
    await sim.close();
    ref.close();
  });

  it('adds seeded sensor noise and delays observations by k ticks, stamped with their measurement time', async () => {
    const run = async (): Promise<JointState[]> => {
      const sim = new SimTransport({ env: 'Pendulum-v1', scheduler: 'manual', obsNoiseStd: 0.01, obsDelaySteps: 2, seed: 3 });
      const { obs } = record(sim);
      await sim.connect();
      for (let i = 0; i < 5; i++) sim.tick();
      await sim.close();
      return obs;
    };
    const a = await run();
    expect(await run()).toEqual(a); // seeded
    const ref = await makeEnv('Pendulum-v1');
    const truth = [ref.reset({ seed: 3 }).obs, ...Array.from({ length: 5 }, () => ref.step([0]).obs)];
    ref.close();
    // Published at tick t: the measurement of tick max(0, t − 2), noise of std 0.01 on top.
    const source = [0, 0, 0, 1, 2, 3];
    a.forEach((m, t) => {
      const s = truth[source[t]];
      const err = m.position.map((v, j) => v - s[j]);
      expect(Math.max(...err.map(Math.abs))).toBeLessThan(0.05);
      expect(Math.max(...err.map(Math.abs))).toBeGreaterThan(0);
      expect(nsFromTime(m.header.stamp)).toBe(BigInt(source[t]) * 50_000_000n);
    });
  });

  it('ticks in virtual time on an RxJS VirtualTimeScheduler, one tick per control period', async () => {
    const scheduler = new VirtualTimeScheduler();
    const sim = new SimTransport({ env: 'Pendulum-v1', scheduler, controlPeriodMs: 20 });
    const { obs } = record(sim);
    await sim.connect();
    scheduler.maxFrames = 200;
    scheduler.flush();
    expect(sim.stats.ticks).toBe(10); // frames 20, 40, …, 200
    expect(obs).toHaveLength(11);
    expect(sim.nowNs()).toBe(10n * 50_000_000n);
    await sim.close();
  });

  it('ticks in real time on the default scheduler (setInterval) until closed', async () => {
    const sim = new SimTransport({ env: 'Pendulum-v1', controlPeriodMs: 10 });
    await sim.connect();
    await new Promise((r) => setTimeout(r, 300));
    await sim.close();
    const ticks = sim.stats.ticks;
    // ~30 expected; a loaded 2-core machine can delay timers, never speed them up.
    expect(ticks).toBeGreaterThanOrEqual(5);
    expect(ticks).toBeLessThanOrEqual(31);
    await new Promise((r) => setTimeout(r, 50));
    expect(sim.stats.ticks).toBe(ticks);
  });

  it('passes other topics through like a ROS graph, and checks its configuration against the environment', async () => {
    const sim = new SimTransport({ env: 'Pendulum-v1', scheduler: 'manual' });
    const got: unknown[] = [];
    sim.subscribe('/diagnostics', 'diagnostic_msgs/msg/DiagnosticArray', (m) => got.push(m.data));
    await sim.connect();
    sim.publish('/diagnostics', 'diagnostic_msgs/msg/DiagnosticArray', { status: [] });
    expect(got).toEqual([{ status: [] }]);
    await sim.close();
    await expect(new SimTransport({ env: 'PointGoal2D', actionType: TWIST_TYPE, twistFields: ['linear.x'], scheduler: 'manual' }).connect()).rejects.toThrow(
      "SimTransport(PointGoal2D): twistFields: expected 2 of linear.x, linear.y, linear.z, angular.x, angular.y, angular.z, got [\"linear.x\"]",
    );
    await expect(new SimTransport({ env: 'Pendulum-v1', scheduler: 'manual', layout: { position: [0, 1] } }).connect()).rejects.toThrow(
      'SimTransport(Pendulum-v1): layout: observation index 2 is not mapped',
    );
    expect(() => new SimTransport({ env: 'Pendulum-v1', obsDelaySteps: 1.5 })).toThrow(ValidationError);
  });
});

describe('JointState layout', () => {
  it('splits an observation into position/velocity/effort and inverts exactly', () => {
    const layout = { position: [0, 2], velocity: [1, 3], effort: [4] };
    checkJointStateLayout(layout, 5, 't');
    const obs = [10, 11, 12, 13, 14];
    const msg = jointStateFromObservation(obs, layout, 2_500_000_000n, ['a', 'b']);
    expect(msg).toEqual({ header: { stamp: { sec: 2, nanosec: 500_000_000 }, frame_id: '' }, name: ['a', 'b'], position: [10, 12], velocity: [11, 13], effort: [14] });
    expect(Array.from(observationFromJointState(msg, layout, 5))).toEqual(obs);
    expect(() => observationFromJointState({ ...msg, velocity: [1] }, layout, 5)).toThrow('observationFromJointState: velocity: expected length 2, got length 1');
    expect(() => checkJointStateLayout({ position: [0, 0] }, 1, 't')).toThrow('t: layout.position[1]: observation index 0 is mapped twice');
  });
});
