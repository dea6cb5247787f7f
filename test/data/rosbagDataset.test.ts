// ROS 2 bag import. Two parts:
// 1. The shared real recordings (../shared/bags, README there). Expected values were computed
//    independently by test/data/fixtures/decodeBagByHand.py, which parses MCAP records and ROS 2
//    CDR by hand with Python's struct (no MCAP or ROS library; zstd chunks through the zstd CLI),
//    then resamples with a few lines of bisect: e.g.
//      /usr/bin/python3 test/data/fixtures/decodeBagByHand.py ../shared/bags/nav2_turtlebot.mcap /odom 0 1000
// 2. A small bag written here with @mcap/core (lz4 chunks) whose stamps are chosen so that every
//    rule (out of order, duplicates, gaps, latest vs linear, the reward at t_{k+1}) has a
//    hand-computed answer.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseMessageDefinition } from '@foxglove/rosmsg';
import { MessageWriter } from '@foxglove/rosmsg2-serialization';
import { McapWriter } from '@mcap/core';
import { afterAll, describe, expect, it } from 'vitest';
import { parseBagMapping } from '../../src/data/bagMapping.js';
import { loadRosbagDataset } from '../../src/data/rosbagDataset.js';
import { BAGS_DIR, BAGS_SKIP_REASON, HAVE_BAGS } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'mbrl-bag-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** |a − b| within float32 rounding of b. */
function expectClose(actual: ArrayLike<number>, expected: number[]): void {
  expect(actual.length).toBe(expected.length);
  expected.forEach((e, i) => expect(Math.abs(actual[i] - e), `entry ${i}: ${actual[i]} vs ${e}`).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(e))));
}

const NAV2_MAPPING = `
controlPeriodMs: 100
resample: { observations: linear, actions: latest }
gapPeriods: 5
observations:
  - /odom: nav_msgs/msg/Odometry.pose.pose.position.x
  - /odom: nav_msgs/msg/Odometry.pose.pose.position.y
  - /odom: nav_msgs/msg/Odometry.pose.pose.orientation.z
  - /odom: nav_msgs/msg/Odometry.pose.pose.orientation.w
actions:  # no command topic was recorded: the measured velocities stand in for one
  - /odom: nav_msgs/msg/Odometry.twist.twist.linear.x
  - /odom: nav_msgs/msg/Odometry.twist.twist.angular.z
metadata: { envId: nav2-turtlebot }
`;

describe.skipIf(!HAVE_BAGS)(`shared recordings ${BAGS_SKIP_REASON}`, () => {
  const nav2 = (): string => join(BAGS_DIR as string, 'nav2_turtlebot.mcap');
  const testBag = (): string => join(BAGS_DIR as string, 'rosbags_test_bag_mcap');

  it('nav2_turtlebot: counts, header stamps, the 1.764 s gap, resampled values', async () => {
    const { dataset: ds, report } = await loadRosbagDataset(nav2(), NAV2_MAPPING);
    const odom = report.topics[0];
    // 2639 /odom messages (the README's count), stamped by header (sim time 928.800 … 1025.496 s,
    // every 36 ms), none out of order, one silence of 1764 ms from 969.624 s.
    expect(odom).toMatchObject({ topic: '/odom', messages: 2639, stampSource: 'header', outOfOrder: 0, duplicates: 0, zeroStamps: 0, medianPeriodMs: 36 });
    expect([odom.firstStampNs, odom.lastStampNs]).toEqual([928_800_000_000n, 1_025_496_000_000n]);
    expect(odom.gaps).toEqual([{ fromNs: 969_624_000_000n, toNs: 971_388_000_000n, periods: 17.64 }]);
    // Grid 928.8 s + k·0.1 s, k = 0 … 966 (967 samples); k = 409 … 425 lie inside the gap (17);
    // runs k = 0…408 and 426…966 give 408 + 540 = 948 transitions in 2 episodes.
    expect(report).toMatchObject({ samples: 967, samplesInGaps: 17, samplesDropped: 17, transitions: 948, episodes: 2 });
    expect(ds.episodes().map((e) => [e.start, e.end, e.truncated])).toEqual([[0, 408, true], [408, 948, true]]);
    expect([ds.obsDim, ds.actDim]).toEqual([4, 2]);
    const row = (i: number) => ({
      obs: ds.observations.subarray(i * 4, i * 4 + 4),
      act: ds.actions.subarray(i * 2, i * 2 + 2),
      next: ds.next_observations.subarray(i * 4, i * 4 + 4),
    });
    // Sample 0 is message 0 exactly (decoded by hand: position (-2.80192, 1.09779), standing still).
    expectClose(row(0).obs, [-2.8019166340612314, 1.0977901491292252, 0.08457359616958599, -0.9964172353140746]);
    expectClose(row(0).act, [0, 0]);
    // Sample 100 (t = 938.8 s): pose linearly interpolated, velocity held (python reference).
    expectClose(row(100).obs, [-0.05935349228210514, 0.04796426219541992, 0.18153055728134526, -0.9833852210199449]);
    expectClose(row(100).act, [0.4999999999937425, 0.05699549943408969]);
    // The next observation is sample 101, not sample 100.
    expectClose(row(100).next, [-0.012657517369797252, 0.030246464607227293, 0.1792381662789132, -0.9838056352024211]);
    // Row 407 ends the first run: its next observation is sample 408, the last before the gap.
    expectClose(row(407).next, [10.924961463874219, -3.159562737615792, -0.5248181732399949, -0.8512143474285161]);
    // Row 408 is sample 426, the first after the gap.
    expectClose(row(408).obs, [11.232120327308888, -2.558503428848816, -0.5192633731474964, -0.854614267190004]);
    expectClose(row(408).act, [0.3750000297948475, -0.007093401158521339]);
    expect(ds.checkAlignment().mismatches).toBe(0);
    expect(ds.metadata).toMatchObject({ envId: 'nav2-turtlebot', controlPeriodMs: '100', startNs: '928800000000' });
    expect(report.observationNames).toEqual(['/odom:pose.pose.position.x', '/odom:pose.pose.position.y', '/odom:pose.pose.orientation.z', '/odom:pose.pose.orientation.w']);
  });

  it('rosbags test bag (a directory with metadata.yaml): header and log clocks differ; joint positions and twist decoded', async () => {
    const mapping = (extra: string) => `
controlPeriodMs: 1000
${extra}
observations:
  - /test/sensor_msgs/joint_state: sensor_msgs/msg/JointState.position[0..2]
actions:
  - /test/geometry_msgs/twist: geometry_msgs/msg/Twist.linear.x
  - /test/geometry_msgs/twist: geometry_msgs/msg/Twist.angular.z
`;
    // JointState has a header (stamps 1749315324.955 and .014 s); Twist has none, so it takes the
    // log time (1749315327.003 and 1749315336.403 s): no common time, and the error says why.
    await expect(loadRosbagDataset(testBag(), mapping(''))).rejects.toThrow(/no time in common: .*joint_state \[1749315324\.955, 1749315325\.014\] s \(header stamps\).*set stamp: log/);
    // With log times for both: joint_state [29.103, 38.503], twist [27.003, 36.403] (+1749315300 s);
    // the overlap 29.103…36.403 s holds 8 samples at 1 s. Each topic's two messages are 9.4 s
    // apart, a gap of more than 5 periods, and twist's (27.003, 36.403) holds all 8 samples.
    await expect(loadRosbagDataset(testBag(), mapping('stamp: log'))).rejects.toThrow('no two consecutive samples outside gaps (8 samples, 8 in gaps)');
    const { dataset: ds, report } = await loadRosbagDataset(testBag(), mapping('stamp: log\nonGap: keep'));
    expect(report.files).toEqual([join(testBag(), 'test_bag_mcap.mcap')]);
    expect(report.topics.map((t) => [t.topic, t.messages, t.stampSource, t.gaps.length])).toEqual([
      ['/test/sensor_msgs/joint_state', 2, 'log', 1],
      ['/test/geometry_msgs/twist', 2, 'log', 1],
    ]);
    expect(report.gridStartNs).toBe(1_749_315_329_103_302_144n);
    expect(report).toMatchObject({ samples: 8, transitions: 7, episodes: 1 });
    // Decoded by hand: positions [0.1, 0.2, 0.3] and twist linear.x 1, angular.z 0.5 in both messages.
    for (let i = 0; i < 7; i++) {
      expectClose(ds.observations.subarray(i * 3, i * 3 + 3), [0.1, 0.2, 0.3]);
      expectClose(ds.actions.subarray(i * 2, i * 2 + 2), [1, 0.5]);
    }
    expect(report.observationNames).toEqual(['/test/sensor_msgs/joint_state:position[0]', '/test/sensor_msgs/joint_state:position[1]', '/test/sensor_msgs/joint_state:position[2]']);
  });

  it('names a missing topic, a wrong type and a bad field path', async () => {
    const m = (obs: string) => `controlPeriodMs: 100\nobservations:\n  - ${obs}\nactions:\n  - /odom: nav_msgs/msg/Odometry.twist.twist.linear.x\n`;
    await expect(loadRosbagDataset(nav2(), m('/joint_states: sensor_msgs/msg/JointState.position[0..5]'))).rejects.toThrow(/\/joint_states: not in the bag; its topics: .*\/odom \(nav_msgs\/msg\/Odometry\)/);
    const twistOnly = 'controlPeriodMs: 100\nobservations: [ { /odom: geometry_msgs/msg/Twist.linear.x } ]\nactions: [ { /odom: geometry_msgs/msg/Twist.angular.z } ]';
    await expect(loadRosbagDataset(nav2(), twistOnly)).rejects.toThrow('/odom: has type nav_msgs/msg/Odometry in the bag, the mapping says geometry_msgs/msg/Twist');
    await expect(loadRosbagDataset(nav2(), m('/odom: nav_msgs/msg/Odometry.pose.pose.position.q'))).rejects.toThrow('no field "q" at pose.pose.position; fields: x, y, z');
    await expect(loadRosbagDataset(nav2(), m('/odom: nav_msgs/msg/Odometry.pose.pose.position'))).rejects.toThrow('expected a number, got object with fields x, y, z');
    await expect(loadRosbagDataset(nav2(), m('/odom: nav_msgs/msg/Odometry.pose.covariance[36]'))).rejects.toThrow('"covariance" has 36 entries; index 36 is out of range');
    // A whole numeric array is accepted: covariance gives 36 values.
    const { dataset } = await loadRosbagDataset(nav2(), m('/odom: nav_msgs/msg/Odometry.pose.covariance'));
    expect(dataset.obsDim).toBe(36);
  });
});

// ---- A bag written here -------------------------------------------------------------------

const POINT_STAMPED = `std_msgs/Header header
geometry_msgs/Point point
================================================================================
MSG: std_msgs/Header
builtin_interfaces/Time stamp
string frame_id
================================================================================
MSG: builtin_interfaces/Time
int32 sec
uint32 nanosec
================================================================================
MSG: geometry_msgs/Point
float64 x
float64 y
float64 z`;
const FLOAT64 = 'float64 data';
const MS = 1_000_000n;

/**
 * /state (PointStamped, header stamps in ms, logged in this order): 0, 10, 30, 20 (out of order),
 * 40 (x = −1), 40 again (x = 4: the later one wins), 50, then silence until 200, 210, 220; x is
 * stamp/10 otherwise. /cmd (Float64, no header: log time) every 7 ms from 0 to 224, data = time
 * in ms. /reward (Float64) every 10 ms from 0 to 230, data = time/100.
 */
async function writeSyntheticBag(path: string): Promise<void> {
  const lz4 = createRequire(import.meta.url)('lz4js') as { compress(d: Uint8Array): Uint8Array };
  const chunks: Uint8Array[] = [];
  let pos = 0n;
  const writer = new McapWriter({
    writable: { write: async (b: Uint8Array) => void (chunks.push(b.slice()), (pos += BigInt(b.length))), position: () => pos },
    chunkSize: 512,
    compressChunk: (data) => ({ compression: 'lz4', compressedData: lz4.compress(data) }),
  });
  await writer.start({ profile: 'ros2', library: 'mbrl-node test' });
  const channel = async (topic: string, type: string, text: string) => {
    const schemaId = await writer.registerSchema({ name: type, encoding: 'ros2msg', data: new TextEncoder().encode(text) });
    const id = await writer.registerChannel({ schemaId, topic, messageEncoding: 'cdr', metadata: new Map() });
    return { id, w: new MessageWriter(parseMessageDefinition(text, { ros2: true })) };
  };
  const state = await channel('/state', 'geometry_msgs/msg/PointStamped', POINT_STAMPED);
  const cmd = await channel('/cmd', 'std_msgs/msg/Float64', FLOAT64);
  const reward = await channel('/reward', 'std_msgs/msg/Float64', FLOAT64);
  const msgs: { logTime: bigint; channel: number; data: Uint8Array }[] = [];
  const stateStamps: [number, number][] = [[0, 0], [10, 1], [30, 3], [20, 2], [40, -1], [40, 4], [50, 5], [200, 20], [210, 21], [220, 22]];
  stateStamps.forEach(([ms, x], k) => {
    const data = state.w.writeMessage({ header: { stamp: { sec: 0, nanosec: ms * 1e6 }, frame_id: 'map' }, point: { x, y: 0, z: 0 } });
    msgs.push({ logTime: BigInt(k) * MS + 500n * MS, channel: state.id, data }); // logged in list order, on another clock
  });
  for (let t = 0; t <= 224; t += 7) msgs.push({ logTime: BigInt(t) * MS, channel: cmd.id, data: cmd.w.writeMessage({ data: t }) });
  for (let t = 0; t <= 230; t += 10) msgs.push({ logTime: BigInt(t) * MS, channel: reward.id, data: reward.w.writeMessage({ data: t / 100 }) });
  msgs.sort((a, b) => (a.logTime < b.logTime ? -1 : a.logTime > b.logTime ? 1 : 0));
  let seq = 0;
  for (const m of msgs) await writer.addMessage({ channelId: m.channel, sequence: seq++, logTime: m.logTime, publishTime: m.logTime, data: m.data });
  await writer.end();
  writeFileSync(path, Buffer.concat(chunks));
}

describe('a synthetic bag (lz4 chunks)', () => {
  const bag = join(dir, 'synthetic.mcap');
  const mapping = (extra = '') => `
controlPeriodMs: 10
gapPeriods: 5
${extra}
observations: [ { /state: geometry_msgs/msg/PointStamped.point.x } ]
actions: [ { /cmd: std_msgs/msg/Float64.data } ]
rewards: { /reward: std_msgs/msg/Float64.data }
`;

  it('orders stamps, keeps the later duplicate, cuts at the gap, and pairs each sample with the next', async () => {
    await writeSyntheticBag(bag);
    const { dataset: ds, report } = await loadRosbagDataset(bag, mapping());
    const state = report.topics.find((t) => t.topic === '/state');
    expect(state).toMatchObject({ messages: 10, stampSource: 'header', outOfOrder: 1, duplicates: 1 });
    expect(state?.gaps).toEqual([{ fromNs: 50n * MS, toNs: 200n * MS, periods: 15 }]);
    expect(report.topics.find((t) => t.topic === '/cmd')).toMatchObject({ messages: 33, stampSource: 'log', outOfOrder: 0 });
    // Grid 0…220 ms (the earliest last stamp, /state's): 23 samples; 60…190 ms (14) lie in the gap.
    // Runs 0…50 (6 samples, 5 transitions) and 200…220 (3 samples, 2 transitions).
    expect(report).toMatchObject({ samples: 23, samplesInGaps: 14, samplesDropped: 14, transitions: 7, episodes: 2 });
    expect(Array.from(ds.observations)).toEqual([0, 1, 2, 3, 4, 20, 21]);
    expect(Array.from(ds.next_observations)).toEqual([1, 2, 3, 4, 5, 21, 22]);
    // latest: the last /cmd at or before t = 0, 10, 20, 30, 40 | 200, 210 ms.
    expect(Array.from(ds.actions)).toEqual([0, 7, 14, 28, 35, 196, 210]);
    // The reward of transition k is /reward at t_{k+1}.
    expectClose(ds.rewards, [0.1, 0.2, 0.3, 0.4, 0.5, 2.1, 2.2]);
    expect(Array.from(ds.timeouts)).toEqual([0, 0, 0, 0, 1, 0, 1]);
    expect(Array.from(ds.terminals)).toEqual([0, 0, 0, 0, 0, 0, 0]);
  });

  it('linear interpolation and onGap: keep', async () => {
    await writeSyntheticBag(bag);
    const { dataset: ds, report } = await loadRosbagDataset(bag, mapping('resample: linear\nonGap: keep'));
    expect(report).toMatchObject({ samples: 23, samplesInGaps: 14, samplesDropped: 0, transitions: 22, episodes: 1 });
    // /cmd interpolated between its 7 ms messages equals t exactly.
    expectClose(ds.actions.subarray(0, 5), [0, 10, 20, 30, 40]);
    // Inside the gap /state is interpolated between x = 5 at 50 ms and x = 20 at 200 ms: at 60 ms, 6.
    expectClose(ds.observations.subarray(5, 8), [5, 6, 7]);
    expect(ds.timeouts[21]).toBe(1);
  });

  it('stamp: header fails on a topic without a header', async () => {
    await writeSyntheticBag(bag);
    await expect(loadRosbagDataset(bag, mapping('stamp: header'))).rejects.toThrow('/cmd: stamp: header, but std_msgs/msg/Float64 has no header.stamp (use stamp: auto or log)');
  });
});

describe('parseBagMapping', () => {
  it('fills defaults and parses field paths', () => {
    const m = parseBagMapping(`
controlPeriodMs: 20
observations:
  - /joint_states: sensor_msgs/msg/JointState.position[0..5]
  - { topic: /tf, field: 'tf2_msgs/msg/TFMessage.transforms[0].transform.translation.x' }
actions:
  - /cmd_vel: geometry_msgs/msg/Twist.linear.x
`);
    expect(m).toMatchObject({ controlPeriodMs: 20, resample: { observations: 'latest', actions: 'latest', rewards: 'latest' }, stamp: 'auto', gapPeriods: 5, onGap: 'split', metadata: {} });
    expect(m.observations[0]).toEqual({ topic: '/joint_states', type: 'sensor_msgs/msg/JointState', path: [{ name: 'position', range: [0, 5] }], text: '/joint_states: sensor_msgs/msg/JointState.position[0..5]' });
    expect(m.observations[1].path).toEqual([{ name: 'transforms', index: 0 }, { name: 'transform' }, { name: 'translation' }, { name: 'x' }]);
  });

  it('names the bad key', () => {
    const base = 'observations: [ { /a: pkg/msg/T.x } ]\nactions: [ { /b: pkg/msg/T.y } ]\n';
    expect(() => parseBagMapping(base)).toThrow('controlPeriodMs: expected a positive number of milliseconds, got undefined');
    expect(() => parseBagMapping(`controlPeriodMs: 10\nresample: cubic\n${base}`)).toThrow('resample: expected latest or linear, got "cubic"');
    expect(() => parseBagMapping(`controlPeriodMs: 10\nperiod: 3\n${base}`)).toThrow('period: unknown key');
    expect(() => parseBagMapping('controlPeriodMs: 10\nobservations: [ { /a: JointState.position } ]\nactions: [ { /b: pkg/msg/T.y } ]')).toThrow('observations[0]: expected "package/msg/Type.field" after the topic');
    expect(() => parseBagMapping('controlPeriodMs: 10\nobservations: [ { /a: "pkg/msg/T.p[3..1]" } ]\nactions: [ { /b: pkg/msg/T.y } ]')).toThrow('observations[0]: range [3..1] is empty');
    expect(() => parseBagMapping('controlPeriodMs: 10\nobservations: [ { /a: "pkg/msg/T.p[0..1].x" } ]\nactions: [ { /b: pkg/msg/T.y } ]')).toThrow('may only end the path');
    expect(() => parseBagMapping(`controlPeriodMs: 10\nrewards: { /r: 'pkg/msg/T.v[0..1]' }\n${base}`)).toThrow('rewards: expected one number');
    expect(() => parseBagMapping('controlPeriodMs: [')).toThrow('yaml: not valid YAML');
  });
});
