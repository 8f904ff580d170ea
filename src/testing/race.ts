/**
 * `race`: release N calls at once and tally how they ended.
 */
import { barrier } from './barrier.js';
import { callable, errorName, fail, positiveInteger } from './validate.js';

/** What each call of a {@link race} receives besides its index. */
export interface RaceContext {
  /**
   * A barrier shared by the calls of this race: resolves once every call still running has
   * reached it, so a test can force the worst interleaving ("every read before any write").
   * A call that settles without reaching it is withdrawn, so a failed call never leaves the
   * others waiting. Each call counts once: calling it again (e.g. on a retry) waits for the
   * same opening, or passes straight through once it has opened.
   */
  readonly sync: () => Promise<void>;
}

/** Options of {@link race}. */
export interface RaceOptions<T> {
  /**
   * Names the outcome of a call that resolved, for the tally. Its return value is used as a
   * key of a null-prototype object, so any string is safe, `'__proto__'` included.
   *
   * @default the value's own `outcome` property when it is a string (every mongo-atomics
   * result has one); `String(value)` for a string, number, boolean, bigint, null or undefined;
   * `'fulfilled'` for any other value.
   */
  readonly outcome?: (value: T, index: number) => string;
}

/** How a {@link race} went: per call, and tallied. */
export interface RaceReport<T> {
  /** Every call's settled result, in index order. */
  readonly settled: readonly PromiseSettledResult<T>[];
  /** The values of the calls that resolved, in index order. */
  readonly values: readonly T[];
  /** The rejection reasons of the calls that rejected, in index order. */
  readonly errors: readonly unknown[];
  /**
   * How many calls ended with each outcome: resolved calls under their outcome (see
   * {@link RaceOptions.outcome}), rejected calls under `error:` and the error's `name`
   * (e.g. `'error:MongoServerError'`). The counts add up to the number of calls. A
   * null-prototype object: outcome strings can come from user data, so no key can reach
   * `Object.prototype`, and a missing key reads `undefined` (see {@link RaceReport.count}).
   */
  readonly tally: Readonly<Record<string, number>>;
  /** The tally's count for one outcome; 0 when no call ended with it. */
  count(outcome: string): number;
}

function defaultOutcome(value: unknown): string {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) {
    return typeof value === 'symbol' ? 'fulfilled' : String(value);
  }
  // Own property only: an inherited `outcome` is not the call's result.
  if (Object.hasOwn(value, 'outcome')) {
    const outcome = (value as { outcome: unknown }).outcome;
    if (typeof outcome === 'string') return outcome;
  }
  return 'fulfilled';
}

/**
 * Starts `calls` calls of `fn` together and waits for all of them to settle; never rejects
 * because a call rejected (the report lists errors), only on invalid arguments or when the
 * `outcome` option throws or returns a non-string.
 *
 * Every call is started in the same turn of the event loop, after all of them have been set up,
 * so none gets a head start. That is all a single process can do: whether the operations
 * really interleave at the server depends on their connections. One `MongoClient` queues
 * operations on its connection pool, which opens connections lazily (`maxConnecting`, 2 by
 * default) and hands them out in queue order, so 50 "concurrent" calls through one client can
 * run a few at a time, in order, and hide the race you want to see. Give each call its own
 * single-connection client ({@link raceClients}); use `context.sync` to force an interleaving.
 *
 * @example 50 buyers of one unit, stock 20:
 * ```ts
 * const { tally } = await race(50, (i) =>
 *   guardedDecrement(products(clients[i]!), { filter: { _id: 'p1' }, field: 'stock', amount: 1 }),
 * );
 * // tally: { decremented: 20, insufficient: 30 }
 * ```
 *
 * @param calls - How many calls to start; a positive integer.
 * @param fn - One call, given its index (0 to `calls` − 1) and the race's {@link RaceContext}.
 * @throws InvalidArgumentError (option `calls`, `fn`, `options.outcome`) on a bad argument,
 * before any call starts.
 */
export async function race<T>(
  calls: number,
  fn: (index: number, context: RaceContext) => T | Promise<T>,
  options: RaceOptions<Awaited<T>> = {},
): Promise<RaceReport<Awaited<T>>> {
  positiveInteger('race', 'calls', calls);
  callable('race', 'fn', fn);
  if (typeof options !== 'object' || options === null) {
    fail('race', 'options', 'must be an object');
  }
  const outcome = options.outcome;
  if (outcome !== undefined) callable('race', 'options.outcome', outcome);

  const sync = barrier(calls);
  let start: () => void = () => {};
  const started = new Promise<void>((resolve) => {
    start = resolve;
  });
  const runs = Array.from({ length: calls }, async (_, index): Promise<Awaited<T>> => {
    // The first call arrives; later ones wait for the same opening without counting again.
    let arrival: Promise<void> | undefined;
    const context: RaceContext = {
      sync: () => {
        arrival ??= sync();
        return arrival;
      },
    };
    await started;
    try {
      return await fn(index, context);
    } finally {
      // A call that will never reach `sync` must not hold the others at it.
      if (arrival === undefined && !sync.isOpen) sync.leave();
    }
  });
  start();
  const settled = await Promise.allSettled(runs);

  const tally: Record<string, number> = Object.create(null);
  const values: Awaited<T>[] = [];
  const errors: unknown[] = [];
  settled.forEach((result, index) => {
    let key: string;
    if (result.status === 'fulfilled') {
      values.push(result.value);
      key = outcome === undefined ? defaultOutcome(result.value) : outcome(result.value, index);
      if (typeof key !== 'string') {
        fail('race', 'options.outcome', `must return a string, returned a ${typeof key}`);
      }
    } else {
      errors.push(result.reason);
      key = `error:${errorName(result.reason)}`;
    }
    // `tally` has no prototype: a key `__proto__` (outcome names come from the caller) is an
    // ordinary own property here, never a prototype write.
    tally[key] = (tally[key] ?? 0) + 1;
  });
  Object.freeze(tally);
  return {
    settled,
    values,
    errors,
    tally,
    count: (key: string) => (Object.hasOwn(tally, key) ? (tally[key] as number) : 0),
  };
}
