import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Runs the direct tests in tests/mutants/ (pure functions, no waiting on a server) before the
 * primitives' tests. Stryker stops a mutant's run at its first failing test, so a mutant one of
 * them kills costs milliseconds instead of the primitives' network-bound tests.
 */
class DirectTestsFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const direct = (file: TestSpecification) => file.moduleId.includes('/tests/mutants/');
    return [...sorted.filter(direct), ...sorted.filter((file) => !direct(file))];
  }
}

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
    sequence: { sequencer: DirectTestsFirst },
  },
});
