// @ts-check
/**
 * Mutation testing (not part of CI: it is slow). Run it through `npm run mutation`, which calls
 * scripts/mutation.mjs to mutate one source file per Stryker run and writes a summary table;
 * see docs/reliability.md, "Mutation testing".
 *
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  testRunner: 'vitest',
  plugins: ['@stryker-mutator/vitest-runner'],
  vitest: { configFile: 'vitest.stryker.config.ts' },
  // Only the tests that cover a mutant run against it.
  coverageAnalysis: 'perTest',
  // The machine is shared; one test process at a time.
  concurrency: 1,
  // Type errors in mutants are not checked: a mutant that does not type-check still runs (the
  // tests run on the transpiled source), which can only make the score harder to reach.
  checkers: [],
  reporters: ['clear-text', 'json', 'progress'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
  // Generous: on a loaded machine a slow test that times out would count as a kill.
  timeoutMS: 20_000,
  // The initial run is the whole driver-7 suite with per-test coverage: minutes on a loaded
  // 2-core machine, past Stryker's default limit of 5.
  dryRunTimeoutMinutes: 30,
  timeoutFactor: 2,
  ignorePatterns: ['dist', 'coverage', 'docs/api', 'reports', '.vitest-cache', 'bench', 'examples'],
};
