/**
 * `naiveVersusSafe`: the same storm against the naive code and the safe code, one call that
 * proves both halves of a race test ("the naive version breaks, the safe one holds").
 */
import { MongoAtomicsError } from '../errors.js';
import { type Violations, violationsOf } from './invariant.js';
import { type RaceContext, type RaceReport, race } from './race.js';
import { callable, errorLine, fail, nonEmptyString, positiveInteger } from './validate.js';

/** Which of the two storms is running. */
export type StormRun = 'naive' | 'safe';

/** What each call of a storm receives: the race's `sync` barrier and the storm's state. */
export interface StormContext<S> extends RaceContext {
  /** What `setup` returned for this storm. */
  readonly state: S;
}

/** The two storms of {@link naiveVersusSafe}, and the invariant that tells them apart. */
export interface NaiveVersusSafeSpec<S, N, F> {
  /** The invariant's name, quoted in errors. */
  readonly invariant: string;
  /** Concurrent calls per storm; a positive integer. */
  readonly calls: number;
  /** Creates fresh state (e.g. a new collection with its seed documents) before each storm. */
  readonly setup: (run: StormRun) => S | Promise<S>;
  /** One call of the naive code (e.g. read, `context.sync()`, then write). */
  readonly naive: (index: number, context: StormContext<S>) => N | Promise<N>;
  /** One call of the safe code, same inputs. */
  readonly safe: (index: number, context: StormContext<S>) => F | Promise<F>;
  /**
   * Checks the state after a storm; returns the violations, `[]` when the invariant holds.
   * Gets the storm's race report too, to compare the state with what the calls reported.
   */
  readonly check: (
    state: S,
    report: RaceReport<Awaited<N>> | RaceReport<Awaited<F>>,
    run: StormRun,
  ) => Violations | Promise<Violations>;
  /**
   * Whether calls of the safe storm may reject. By default each rejected safe call is a
   * violation: a safe storm in which every call threw would otherwise "hold" by doing nothing.
   * @default false
   */
  readonly allowSafeErrors?: boolean;
}

/** How one storm went. */
export interface StormVerdict<T> {
  /** Whether the invariant held (no violations). */
  readonly held: boolean;
  /** What `check` returned after the storm (plus, for the safe storm, one per rejected call unless `allowSafeErrors`). */
  readonly violations: Violations;
  /** The storm's race report: each call's outcome, the tally and the errors. */
  readonly report: RaceReport<T>;
}

/** Both verdicts of {@link naiveVersusSafe}. */
export interface NaiveVersusSafeResult<N, F> {
  /** The invariant's name, from the spec. */
  readonly invariant: string;
  /** How the naive storm went: it should have broken the invariant. */
  readonly naive: StormVerdict<N>;
  /** How the safe storm went: it should have held the invariant. */
  readonly safe: StormVerdict<F>;
}

/**
 * The comparison did not come out as "naive breaks, safe holds": either the storm did not
 * expose the race (the naive code held: the test proves nothing about the safe code) or the
 * safe code broke. `result` has both verdicts.
 */
export class NaiveVersusSafeError extends MongoAtomicsError {
  /** Always `'NaiveVersusSafeError'`. */
  override readonly name = 'NaiveVersusSafeError';
  /** Both storms' verdicts, for a closer look at what went wrong. */
  readonly result: NaiveVersusSafeResult<unknown, unknown>;

  constructor(message: string, result: NaiveVersusSafeResult<unknown, unknown>) {
    super(message);
    this.result = result;
  }
}

function describeStorm(label: string, verdict: StormVerdict<unknown>): string {
  const lines = [
    `${label}: ${verdict.held ? 'held' : 'broke'}; outcomes ${JSON.stringify({ ...verdict.report.tally })}`,
    ...verdict.violations.map((v) => `    - ${v}`),
  ];
  const errors = verdict.report.errors;
  if (errors.length > 0) {
    lines.push(`    first error: ${errorLine(errors[0])}`);
  }
  return lines.join('\n');
}

/**
 * Throws a {@link NaiveVersusSafeError} unless the naive storm broke the invariant and the safe
 * storm held it. {@link naiveVersusSafe} calls it; export for results you build yourself.
 *
 * @example
 * ```ts
 * assertNaiveBreaksSafeHolds({
 *   invariant: 'no oversold stock',
 *   naive: { held: naiveViolations.length === 0, violations: naiveViolations, report: naiveReport },
 *   safe: { held: safeViolations.length === 0, violations: safeViolations, report: safeReport },
 * });
 * ```
 */
export function assertNaiveBreaksSafeHolds(result: NaiveVersusSafeResult<unknown, unknown>): void {
  const problems: string[] = [];
  if (result.naive.held) {
    problems.push(
      'the naive code held, so this storm does not expose the race (and proves nothing about the safe code): make the storm harsher (more calls, one connection per call with raceClients, or a wider gap between the naive read and write)',
    );
  }
  if (!result.safe.held) problems.push('the safe code broke the invariant');
  if (problems.length === 0) return;
  throw new NaiveVersusSafeError(
    `naiveVersusSafe "${result.invariant}": ${problems.join('; ')}\n` +
      `${describeStorm('naive', result.naive)}\n${describeStorm('safe', result.safe)}`,
    result,
  );
}

/**
 * Runs the same storm twice: `calls` concurrent calls of `naive` on fresh state, then of
 * `safe` on fresh state (see {@link race}); checks the invariant after each, and THROWS unless
 * the naive storm broke it and the safe storm held it. So one `await` is a whole race test:
 * it fails if the storm is too weak to show the race as surely as if the safe code broke,
 * and a test that ignores the returned value still fails when it should.
 *
 * Resolves to both verdicts (violations and race reports), for further assertions.
 *
 * @example
 * ```ts
 * interface Product { _id: string; stock: number }
 * await naiveVersusSafe({
 *   invariant: 'stock never below 0',
 *   calls: 30,
 *   setup: async (run) => {
 *     const products = db.collection<Product>(`products-${run}-${Date.now()}`);
 *     await products.insertOne({ _id: 'p1', stock: 20 });
 *     return products;
 *   },
 *   naive: async (_i, { state: products, sync }) => {
 *     const { stock } = (await products.findOne({ _id: 'p1' }))!;
 *     await sync(); // every call reads before any writes
 *     if (stock >= 1) await products.updateOne({ _id: 'p1' }, { $inc: { stock: -1 } });
 *   },
 *   safe: (_i, { state: products }) =>
 *     guardedDecrement(products, { filter: { _id: 'p1' }, field: 'stock', amount: 1 }),
 *   check: async (products) => {
 *     const { stock } = (await products.findOne({ _id: 'p1' }))!;
 *     return stock >= 0 ? [] : [`stock is ${stock}`];
 *   },
 * });
 * ```
 *
 * @throws NaiveVersusSafeError when the naive storm held or the safe storm broke.
 * @throws InvalidArgumentError naming the bad field of `spec`, before any storm runs.
 */
export async function naiveVersusSafe<S, N, F>(
  spec: NaiveVersusSafeSpec<S, N, F>,
): Promise<NaiveVersusSafeResult<Awaited<N>, Awaited<F>>> {
  const helper = 'naiveVersusSafe';
  if (typeof spec !== 'object' || spec === null) fail(helper, 'spec', 'must be an object');
  const invariant = nonEmptyString(helper, 'invariant', spec.invariant);
  const calls = positiveInteger(helper, 'calls', spec.calls);
  for (const key of ['setup', 'naive', 'safe', 'check'] as const) callable(helper, key, spec[key]);
  if (spec.allowSafeErrors !== undefined && typeof spec.allowSafeErrors !== 'boolean') {
    fail(helper, 'allowSafeErrors', 'must be a boolean');
  }

  async function storm<T>(
    run: StormRun,
    call: (index: number, context: StormContext<S>) => T | Promise<T>,
  ): Promise<StormVerdict<Awaited<T>>> {
    const state = await spec.setup(run);
    const report = await race(calls, (index, { sync }) => call(index, { sync, state }));
    const found = [
      ...(await violationsOf(helper, () =>
        // T is N (naive storm) or F (safe storm).
        spec.check(
          state,
          report as unknown as RaceReport<Awaited<N>> | RaceReport<Awaited<F>>,
          run,
        ),
      )),
    ];
    if (run === 'safe' && spec.allowSafeErrors !== true) {
      report.settled.forEach((result, index) => {
        if (result.status === 'rejected') {
          found.push(`call ${index} threw ${errorLine(result.reason)}`);
        }
      });
    }
    return { held: found.length === 0, violations: Object.freeze(found), report };
  }

  const naive = await storm('naive', spec.naive);
  const safe = await storm('safe', spec.safe);
  const result = { invariant, naive, safe };
  assertNaiveBreaksSafeHolds(result);
  return result;
}
