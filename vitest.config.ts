import { defineConfig } from 'vitest/config';

/**
 * Test files whose subject runs against the wall clock (a node or robot process at a real control
 * period, a learner's heartbeat timeout, transport latency): they run one at a time, after the
 * rest, so no other test competes with them for the 2 cores CI has.
 */
const WALL_CLOCK = [
  'test/node/e2eRobot.test.ts',
  'test/node/faults.test.ts',
  'test/node/learner.test.ts',
  'test/node/learnerPolicy.test.ts',
  'test/node/runKill.test.ts',
  'test/transports/dds*.test.ts',
  'test/transports/mqtt*.test.ts',
  'test/cli/benchLoop.test.ts',
];

const shared = {
  testTimeout: 60_000,
  hookTimeout: 60_000,
  setupFiles: ['test/setup.ts'],
};

export default defineConfig({
  test: {
    reporters: ['default'],
    projects: [
      {
        // Everything else is CPU-bound and seeded (results do not depend on timing): two files at
        // a time, one per core (vitest's default here would be cores − 1 = 1).
        test: { ...shared, name: 'compute', include: ['test/**/*.test.ts'], exclude: WALL_CLOCK, maxWorkers: 2, sequence: { groupOrder: 0 } },
      },
      {
        test: { ...shared, name: 'wall-clock', include: WALL_CLOCK, maxWorkers: 1, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
