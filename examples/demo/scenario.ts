/**
 * What the demo runs: one scenario per seed, each a storm of concurrent HTTP requests sent to an
 * example app twice, once to its naive handler and once to its real one, under the same load.
 * Every example exports its scenario from `examples/<name>/demo.ts`.
 */
import type { Db } from 'mongodb';

export interface RunResult {
  /** Requests that reported success to their caller (e.g. 201 Created). */
  readonly succeeded: number;
  /** What the database holds afterwards, in a few words ("sold=3, registrations=3"). */
  readonly finalState: string;
  /** Whether the invariant held, the final state matching what the responses said included. */
  readonly held: boolean;
}

export interface DemoScenario {
  /** e.g. "Ticketing: 50 registrations, 1 seat" */
  readonly title: string;
  /** The seed document's number, e.g. "004". */
  readonly seed: string;
  /** How many concurrent requests each run sends. */
  readonly requests: number;
  /** The invariant in words, e.g. "at most 1 registration; sold = registrations". */
  readonly invariant: string;
  /**
   * Sets up fresh data in `db`, starts the naive (`'naive'`) or the real (`'safe'`) app on a free
   * port, sends `requests` concurrent requests (calling `onDone` as each one settles), checks
   * the database, stops the app and returns the result.
   */
  run(db: Db, kind: 'naive' | 'safe', onDone: () => void): Promise<RunResult>;
}
