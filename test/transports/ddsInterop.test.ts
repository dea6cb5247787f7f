// DdsTransport against another DDS program: a C peer built here from idlc-generated types under
// the ROS 2 names (test/fixtures/ddsPeer), standing in for a ROS 2 node on rmw_cyclonedds. Both
// directions, over the loopback network (separate processes: real RTPS, discovery, fragments).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CYCLONE_LOCALHOST_CONFIG, DdsTransport } from '../../src/transports/dds/ddsTransport.js';
import type { JointState, Twist } from '../../src/transports/messages.js';

const FIXTURE = resolve(import.meta.dirname, '../fixtures/ddsPeer');
const CC = process.env.CC ?? 'gcc';
const HOME = process.env.CYCLONEDDS_HOME;
const IDLC = HOME !== undefined ? join(HOME, 'bin', 'idlc') : 'idlc';

/** Why the peer cannot be built here, or '' (it needs idlc, a C compiler and Cyclone's headers and library). */
function peerSkipReason(): string {
  if (spawnSync(IDLC, ['-v'], { encoding: 'utf8' }).error !== undefined) return `SKIPPED: no idlc (${IDLC}) to generate the peer's types (apt-get install cyclonedds-tools)`;
  if (spawnSync(CC, ['--version']).error !== undefined) return `SKIPPED: no C compiler (${CC}) for the peer and the shim (apt-get install gcc)`;
  const probe = spawnSync(CC, [...(HOME !== undefined ? [`-I${HOME}/include`, `-L${HOME}/lib`] : []), '-x', 'c', '-o', '/dev/null', '-', '-lddsc'], {
    input: '#include <dds/dds.h>\n#include <dds/ddsi/q_radmin.h>\nint main(void) { return dds_create_participant(0, 0, 0) < 0; }\n',
    encoding: 'utf8',
  });
  return probe.status === 0 ? '' : `SKIPPED: Cyclone DDS headers or libddsc not found (apt-get install cyclonedds-dev): ${probe.stderr.trim().split('\n')[0]}`;
}
const SKIP = peerSkipReason();
if (SKIP !== '') console.warn(SKIP);

const DOMAIN = 130 + (process.pid % 40);
const STATES = 3;
const BIG_JOINTS = 5000;
const TWISTS = 3;
const COMMANDS = 2;

/** What the peer publishes as JointState i (see peer.c). */
const peerState = (i: number): JointState => ({
  header: { stamp: { sec: 1000 + i, nanosec: 500_000_000 + i }, frame_id: 'base_link' },
  name: ['hip', 'knee'],
  position: [i + 0.5, -0.25 * i],
  velocity: [0.001 * i, 2],
  effort: [-3, 1e-9 * i],
});
/** The Twist and the JointState command we publish as number k. */
const ourTwist = (k: number): Twist => ({ linear: { x: k + 0.5, y: -0.25 * k, z: 1e-3 }, angular: { x: 0, y: Math.PI / (k + 1), z: -1e300 * k } });
const ourCommand = (k: number): JointState => ({
  header: { stamp: { sec: 7 + k, nanosec: 999_999_999 - k }, frame_id: `cmd_${k}` },
  name: ['shoulder', 'elbow', 'wrist'],
  position: [k / 3, -k, 0.1],
  // Empty in the middle: checks that both sides agree an empty float64 sequence takes no padding.
  velocity: [],
  effort: [k * 1e-7],
});

describe.skipIf(SKIP !== '')('DdsTransport ↔ a Cyclone DDS C program (ROS 2 names, idlc types)', () => {
  let dir = '';
  let peerPath = '';

  beforeAll(() => {
    const started = performance.now();
    dir = mkdtempSync(join(tmpdir(), 'mbrl-dds-peer-'));
    for (const idl of ['JointState.idl', 'Twist.idl']) {
      const r = spawnSync(IDLC, ['-o', dir, join(FIXTURE, idl)], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`idlc ${idl} failed: ${r.stderr}`);
    }
    peerPath = join(dir, 'peer');
    const home = HOME !== undefined ? [`-I${HOME}/include`, `-L${HOME}/lib`, `-Wl,-rpath,${HOME}/lib`] : [];
    const r = spawnSync(CC, ['-O1', '-Wall', '-I', dir, ...home, '-o', peerPath, join(FIXTURE, 'peer.c'), join(dir, 'JointState.c'), join(dir, 'Twist.c'), '-lddsc'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`compiling the peer failed: ${r.stderr}`);
    console.log(`peer generated and compiled in ${(performance.now() - started).toFixed(0)} ms`);
  });
  afterAll(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('receives what the peer publishes and the peer receives what we publish, value for value', async () => {
    expect(existsSync(peerPath)).toBe(true);
    const errors: Error[] = [];
    const t = new DdsTransport({ domainId: DOMAIN, localhostOnly: true, onError: (e) => errors.push(e) });
    await t.connect();
    const states: JointState[] = [];
    t.subscribe<JointState>('/joint_states', 'sensor_msgs/msg/JointState', (m) => states.push(m.data), { onError: (e) => errors.push(e) });

    const started = performance.now();
    const peer = spawn(peerPath, [DOMAIN, STATES, BIG_JOINTS, TWISTS, COMMANDS, 20].map(String), { env: { ...process.env, CYCLONEDDS_URI: CYCLONE_LOCALHOST_CONFIG } });
    let stdout = '';
    let stderr = '';
    peer.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    peer.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((res) => peer.on('exit', (code) => res(code)));

    // Volatile topics deliver only to readers already matched, so keep publishing, one new
    // message every 50 ms, until the peer has what it waits for and exits.
    let k = 0;
    let firstStateMs: number | undefined;
    const publisher = setInterval(() => {
      if (firstStateMs === undefined && states.length > 0) firstStateMs = performance.now() - started;
      t.publish('/cmd_vel', 'geometry_msgs/msg/Twist', ourTwist(k));
      t.publish('joint_commands', 'sensor_msgs/msg/JointState', ourCommand(k));
      k++;
    }, 50);
    const code = await exited;
    clearInterval(publisher);
    await t.close();
    console.log(`peer ran ${(performance.now() - started).toFixed(0)} ms (first JointState after ${firstStateMs?.toFixed(0)} ms), we published ${k} Twists and commands`);
    expect(stderr).toBe('');
    expect(code, `peer stdout:\n${stdout}`).toBe(0);
    expect(errors).toEqual([]);

    // Peer → us: the small JointStates in order, then the big one (about 140 kB: DDSI fragments).
    expect(states.slice(0, STATES)).toEqual(Array.from({ length: STATES }, (_, i) => peerState(i)));
    expect(states).toHaveLength(STATES + 1);
    const big = states[STATES];
    expect(big.header).toEqual({ stamp: { sec: 0, nanosec: 0 }, frame_id: 'big' });
    expect(big.name).toEqual(Array.from({ length: BIG_JOINTS }, (_, j) => `j${j}`));
    expect(big.position).toEqual(Array.from({ length: BIG_JOINTS }, (_, j) => 0.5 * j));
    expect(big.velocity).toEqual(Array.from({ length: BIG_JOINTS }, (_, j) => -j));
    expect(big.effort).toEqual([]);

    // Us → peer: what it printed (%.17g, exact for doubles) is what we sent, in order, with no gaps after the first.
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toBe('ready');
    expect(lines.at(-1)).toBe('done');
    const twists = lines.filter((l) => l.startsWith('twist ')).map((l) => l.split(' ').slice(1).map(Number));
    expect(twists.length).toBeGreaterThanOrEqual(TWISTS);
    const first = twists[0][0] - 0.5;
    twists.forEach((v, i) => {
      const sent = ourTwist(first + i);
      expect(v, `twist line ${i}`).toEqual([sent.linear.x, sent.linear.y, sent.linear.z, sent.angular.x, sent.angular.y, sent.angular.z]);
    });
    const commands = lines.filter((l) => l.startsWith('joint_command '));
    expect(commands.length).toBeGreaterThanOrEqual(COMMANDS);
    const firstCommand = Number(/frame_id=cmd_(\d+) /.exec(commands[0])![1]);
    commands.forEach((line, i) => {
      const c = ourCommand(firstCommand + i);
      expect(parseCommand(line), `joint_command line ${i}`).toEqual({
        sec: c.header.stamp.sec,
        nanosec: c.header.stamp.nanosec,
        frame_id: c.header.frame_id,
        name: c.name.join(','),
        position: c.position,
        velocity: c.velocity,
        effort: c.effort,
      });
    });
  }, 30_000);
});

/** The fields of a `joint_command ...` line of the peer. */
function parseCommand(line: string): Record<string, unknown> {
  const fields = Object.fromEntries(
    line
      .split(' ')
      .slice(1)
      .map((kv) => kv.split('=') as [string, string]),
  );
  const numbers = (s: string): number[] => (s === '' ? [] : s.split(',').map(Number));
  return {
    sec: Number(fields.sec),
    nanosec: Number(fields.nanosec),
    frame_id: fields.frame_id,
    name: fields.name,
    position: numbers(fields.position),
    velocity: numbers(fields.velocity),
    effort: numbers(fields.effort),
  };
}
