import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * The suite runs once per supported driver major: `driver7` uses the `mongodb` dev dependency,
 * `driver6` the same tests with `mongodb` resolved to the `mongodb6` alias package
 * (npm:mongodb@6). Both talk to the one backend started by the global setup.
 *
 * `tests/packaging/` packs the package and loads it in a child process, without the driver under
 * test: it runs once, in `driver7`.
 * `tests/bench.test.ts` runs the benchmark suite in a child process (the installed `mongodb`,
 * whatever the project's alias): it too runs once, in `driver7`.
 *
 * Files named `*.serial.test.ts` change server-wide state (server parameters) and run in the
 * `serial` project, after the parallel projects have finished (`sequence.groupOrder`).
 */
const SERIAL = 'tests/**/*.serial.test.ts';
const src = (path: string): string => fileURLToPath(new URL(`./src/${path}`, import.meta.url));

export default defineConfig({
  resolve: {
    alias: [
      { find: /^mongo-atomics$/, replacement: src('index.ts') },
      { find: /^mongo-atomics\/testing$/, replacement: src('testing/index.ts') },
    ],
  },
  test: {
    globalSetup: ['tests/support/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'driver7',
          include: ['tests/**/*.test.ts'],
          exclude: [SERIAL],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'driver6',
          include: ['tests/**/*.test.ts'],
          exclude: [SERIAL, 'tests/offline-server/**', 'tests/packaging/**', 'tests/bench.test.ts'],
          sequence: { groupOrder: 0 },
        },
        resolve: { alias: [{ find: /^mongodb$/, replacement: 'mongodb6' }] },
      },
      {
        extends: true,
        test: {
          name: 'serial',
          include: [SERIAL],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
