/**
 * `mongo-atomics/testing`: tools to prove your own MongoDB code correct under concurrency and
 * faults, in your own test suite. No test-runner dependency (works under vitest, jest,
 * node:test, mocha): failures are plain `Error`s with descriptive messages.
 *
 * - {@link race} and {@link barrier}: release N calls at once, force the worst interleaving,
 *   tally the outcomes; {@link raceClients}: one connection per call, so they really
 *   interleave at the server.
 * - {@link naiveVersusSafe}: the same storm against the naive and the safe code, in one call
 *   that fails unless the naive code breaks the invariant and the safe code holds it.
 * - {@link assertInvariant}: check the database after a storm, every violation listed.
 * - {@link withFailPoint}, {@link setFailPoint}, {@link clearFailPoint}: the server's
 *   `failCommand` fail point, turned off again in every case.
 *
 * @packageDocumentation
 */

export { type Barrier, barrier } from './barrier.js';
export {
  clearFailPoint,
  type FailCommandData,
  FailPointError,
  type FailPointMode,
  type FailPointSpec,
  setFailPoint,
  uniqueAppName,
  withFailPoint,
} from './fail-point.js';
export { assertInvariant, InvariantViolationError, type Violations } from './invariant.js';
export {
  assertNaiveBreaksSafeHolds,
  NaiveVersusSafeError,
  type NaiveVersusSafeResult,
  type NaiveVersusSafeSpec,
  naiveVersusSafe,
  type StormContext,
  type StormRun,
  type StormVerdict,
} from './naive-versus-safe.js';
export { type RaceContext, type RaceOptions, type RaceReport, race } from './race.js';
export { type RaceClients, type RaceClientsOptions, raceClients } from './race-clients.js';
