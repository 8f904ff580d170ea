import { defineConfig } from 'vitest/config';

/**
 * The vitest configuration Stryker runs (see stryker.config.mjs and scripts/mutation.mjs): the
 * library's behavioural tests on the `driver7` driver only, against the backend started by the
 * same global setup as `npm test` (set `MONGO_ATOMICS_TEST_BACKEND=offline` for the offline
 * server). Left out: the driver-6 rerun (same tests, same source), the offline server's own
 * tests and the conformance suite (they do not import `src/`), the serial files (they change
 * server-wide state) and the type-only tests (`*.types.test.ts`: they check types, not
 * behaviour, and must not count as killing a mutant).
 */
export default defineConfig({
  test: {
    name: 'driver7',
    globalSetup: ['tests/support/global-setup.ts'],
    include: ['tests/**/*.test.ts'],
    exclude: [
      'tests/**/*.serial.test.ts',
      'tests/**/*.types.test.ts',
      'tests/conformance/**',
      'tests/offline-server/**',
    ],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
