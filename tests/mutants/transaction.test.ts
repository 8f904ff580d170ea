/**
 * withRetryingTransaction and its helpers (backoffDelay, validateBackoff, sleep, isAbortSignal):
 * every default, the exact text of every refusal, the attempt cap, the two deadline checks at
 * their boundary, the `abortedBeforeCommit` limit of exactly 2, each field of the give-up error,
 * the onRetry event, and the caller's signal. Written to kill the mutants
 * tests/transaction.test.ts, tests/pool-cleared.test.ts and tests/fault-matrix.test.ts left
 * alive (npm run mutation; docs/reliability.md, "Mutation testing").
 *
 * No server here. The runner is driven through a stand-in client whose session has the shape
 * of the driver's ClientSession (startTransaction, inTransaction, commitTransaction,
 * abortTransaction, endSession; after a commit, failed or not, it is no longer in a
 * transaction, as in the driver), because these cases need what a server cannot give:
 * - an exact error at an exact point (a pool-cleared error that also carries
 *   UnknownTransactionCommitResult from the callback; a pool-cleared error carrying
 *   TransientTransactionError at the commit), in the shapes the driver raises (`code`,
 *   `errorLabels`, as in tests/mutants/driver.test.ts);
 * - a controlled clock: the deadline checks read `performance.now()`, which the driver reads
 *   too, so it can only be replaced when no driver runs;
 * - an abortTransaction or endSession that fails, and a record of every session call.
 * The same paths against the offline server, through the real driver, are in
 * tests/transaction.test.ts and tests/pool-cleared.test.ts.
 */
import { getEventListeners } from 'node:events';
import type { ClientSession, MongoClient } from 'mongodb';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  GiveUpReason,
  InvalidArgumentError,
  RetryBudgetExhaustedError,
  TransactionsUnsupportedError,
} from '../../src/errors.js';
import {
  backoffDelay,
  isAbortSignal,
  sleep as sleepOrAbort,
  type TransactionAttempt,
  type TransactionRetryEvent,
  validateBackoff,
  type WithRetryingTransactionOptions,
  withRetryingTransaction,
} from '../../src/transaction.js';
import { validator } from '../../src/validate.js';
import { rejectionOf } from '../support/async.js';

const PRIMITIVE = 'withRetryingTransaction';

afterEach(() => {
  vi.restoreAllMocks();
});

// ---------------------------------------------------------------------------------------------
// Errors in the driver's shapes.

function serverError(code: number | undefined, labels: string[], message: string): Error {
  return Object.assign(new Error(message), { code, errorLabels: labels });
}
const writeConflict = () => serverError(112, ['TransientTransactionError'], 'WriteConflict');
const noSuchTransaction = () =>
  serverError(251, ['TransientTransactionError'], 'Transaction 1 has been aborted.');
const unknownCommit = () =>
  serverError(91, ['UnknownTransactionCommitResult'], 'Replication is being shut down');
/** MongoPoolClearedError: no code, label PoolRequestedRetry (driver 7). */
const poolCleared = (...more: string[]) =>
  serverError(undefined, ['PoolRequestedRetry', ...more], 'Connection pool was cleared');
const standaloneRefusal = () =>
  serverError(20, [], 'Transaction numbers are only allowed on a replica set member or mongos');

// ---------------------------------------------------------------------------------------------
// The stand-in client (see the header comment).

interface FakeScript {
  /** Thrown by successive commits; `undefined` (or running out) commits. */
  commitErrors?: unknown[];
  abortError?: unknown;
  endError?: unknown;
}

function fake(script: FakeScript = {}) {
  const calls: string[] = [];
  const startOptions: unknown[] = [];
  const commitErrors = [...(script.commitErrors ?? [])];
  let open = false;
  const session = {
    startTransaction(options?: unknown) {
      calls.push('startTransaction');
      startOptions.push(options);
      open = true;
    },
    inTransaction() {
      return open;
    },
    async commitTransaction() {
      calls.push('commitTransaction');
      open = false;
      const error = commitErrors.shift();
      if (error !== undefined) throw error;
    },
    async abortTransaction() {
      calls.push('abortTransaction');
      // The driver refuses to abort when no transaction is open.
      if (!open) throw new Error('No transaction started');
      open = false;
      if (script.abortError !== undefined) throw script.abortError;
    },
    async endSession() {
      calls.push('endSession');
      if (script.endError !== undefined) throw script.endError;
    },
  };
  const client = {
    startSession() {
      calls.push('startSession');
      return session;
    },
  };
  return {
    client: client as unknown as MongoClient,
    session: session as unknown as ClientSession,
    calls,
    startOptions,
  };
}

/** A callback failing with `errors[n - 1]` on attempt n (undefined: succeeds with 'done'). */
function failing(errors: (() => unknown)[], seen: TransactionAttempt[] = []) {
  const thrown: unknown[] = [];
  const fn = async (_session: ClientSession, attempt: TransactionAttempt) => {
    seen.push(attempt);
    const make = errors[attempt.attempt - 1];
    if (make === undefined) return 'done';
    const error = make();
    thrown.push(error);
    throw error;
  };
  return { fn, thrown, seen };
}

function recorder() {
  const events: TransactionRetryEvent[] = [];
  return {
    events,
    onRetry: (event: TransactionRetryEvent) => {
      events.push(event);
    },
  };
}

/** No waiting between tries. */
const NO_WAIT = { initialDelayMs: 0, jitter: 'none' } as const;

/** Replaces performance.now with a clock the test moves. */
function fakeClock(start = 1_000) {
  const clock = { now: start };
  vi.spyOn(performance, 'now').mockImplementation(() => clock.now);
  return clock;
}

async function budgetError(promise: Promise<unknown>): Promise<RetryBudgetExhaustedError> {
  const error = await rejectionOf(promise);
  expect(error).toBeInstanceOf(RetryBudgetExhaustedError);
  return error as RetryBudgetExhaustedError;
}

// ---------------------------------------------------------------------------------------------

describe('backoffDelay', () => {
  const none = { initialDelayMs: 10, factor: 2, maxDelayMs: 50, jitter: 'none' } as const;

  it("'none': initialDelayMs × factor^(failedAttempt − 1), capped at maxDelayMs", () => {
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(none, n))).toEqual([10, 20, 40, 50, 50]);
  });

  it('the cap holds exactly at maxDelayMs, and a delay below it is not raised to it', () => {
    const atCap = { ...none, maxDelayMs: 40 };
    expect(backoffDelay(atCap, 3)).toBe(40);
    expect(backoffDelay(atCap, 4)).toBe(40);
    expect(backoffDelay({ ...none, maxDelayMs: 500 }, 1)).toBe(10);
  });

  it('a factor of 1.5 (the default) gives 5, 7.5, 11.25 from 5', () => {
    const spec = { initialDelayMs: 5, factor: 1.5, maxDelayMs: 500, jitter: 'none' } as const;
    expect([1, 2, 3].map((n) => backoffDelay(spec, n))).toEqual([5, 7.5, 11.25]);
  });

  it("'full': Math.random() × the computed delay", () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.25);
    const full = { ...none, jitter: 'full' } as const;
    expect([1, 2, 3, 4].map((n) => backoffDelay(full, n))).toEqual([2.5, 5, 10, 12.5]);
  });

  it("'none' does not draw a random number", () => {
    const random = vi.spyOn(Math, 'random').mockReturnValue(0.25);
    expect(backoffDelay(none, 2)).toBe(20);
    expect(random).not.toHaveBeenCalled();
  });
});

describe('sleep (the backoff wait)', () => {
  it('resolves after the delay and leaves no listener on the signal', async () => {
    const controller = new AbortController();
    await expect(sleepOrAbort(5, controller.signal)).resolves.toBeUndefined();
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('an already aborted signal: rejects with its reason without waiting', async () => {
    const controller = new AbortController();
    const reason = new Error('stop');
    controller.abort(reason);
    expect(await rejectionOf(sleepOrAbort(5, controller.signal))).toBe(reason);
  });

  it('an abort during the wait: rejects with its reason at once, no listener left', async () => {
    const controller = new AbortController();
    const reason = new Error('stop');
    const waiting = sleepOrAbort(2_000, controller.signal);
    setTimeout(() => controller.abort(reason), 1);
    expect(await rejectionOf(waiting)).toBe(reason);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });
});

describe('isAbortSignal', () => {
  const fn = () => undefined;
  it('a real AbortSignal is one', () => {
    expect(isAbortSignal(new AbortController().signal)).toBe(true);
    expect(isAbortSignal(AbortSignal.abort())).toBe(true);
  });

  it.each([
    ['null', null],
    ['undefined', undefined],
    ['a string', 'signal'],
    ['an AbortController', new AbortController()],
    ['no aborted', { addEventListener: fn, removeEventListener: fn }],
    ['aborted not a boolean', { aborted: 0, addEventListener: fn, removeEventListener: fn }],
    ['no addEventListener', { aborted: false, removeEventListener: fn }],
    ['no removeEventListener', { aborted: false, addEventListener: fn }],
    [
      'a function carrying the members',
      Object.assign(() => undefined, {
        aborted: false,
        addEventListener: fn,
        removeEventListener: fn,
      }),
    ],
  ])('%s is not', (_label, value) => {
    expect(isAbortSignal(value)).toBe(false);
  });

  it('an object with exactly the three members is (the check is by shape)', () => {
    expect(isAbortSignal({ aborted: true, addEventListener: fn, removeEventListener: fn })).toBe(
      true,
    );
  });
});

describe('validateBackoff', () => {
  const vv = validator(PRIMITIVE);

  it('absent: the defaults 5, 1.5, 500, full', () => {
    expect(validateBackoff(vv, undefined)).toEqual({
      initialDelayMs: 5,
      factor: 1.5,
      maxDelayMs: 500,
      jitter: 'full',
    });
  });

  it('an empty object: the defaults, field by field', () => {
    expect(validateBackoff(vv, {})).toEqual({
      initialDelayMs: 5,
      factor: 1.5,
      maxDelayMs: 500,
      jitter: 'full',
    });
  });

  it('every field given is kept; the boundaries 0, 1, 0 are accepted', () => {
    expect(
      validateBackoff(vv, { initialDelayMs: 7, factor: 3, maxDelayMs: 70, jitter: 'none' }),
    ).toEqual({ initialDelayMs: 7, factor: 3, maxDelayMs: 70, jitter: 'none' });
    expect(
      validateBackoff(vv, { initialDelayMs: 0, factor: 1, maxDelayMs: 0, jitter: 'full' }),
    ).toEqual({ initialDelayMs: 0, factor: 1, maxDelayMs: 0, jitter: 'full' });
  });

  it("errors carry the calling primitive's name", () => {
    expect(() => validateBackoff(validator('somePrimitive'), 5)).toThrow(
      'somePrimitive: option "backoff" must be an object, got 5',
    );
  });

  const P = `${PRIMITIVE}: option `;
  it.each([
    ['fast', `${P}"backoff" must be an object, got the string "fast"`],
    [null, `${P}"backoff" must be an object, got null`],
    [
      { delay: 5 },
      `${P}"backoff.delay" is not a backoff option (known: initialDelayMs, factor, maxDelayMs, jitter)`,
    ],
    [{ initialDelayMs: -1 }, `${P}"backoff.initialDelayMs" must be ≥ 0, got -1`],
    [
      { initialDelayMs: '5' },
      `${P}"backoff.initialDelayMs" must be a finite number, got the string "5"`,
    ],
    [{ maxDelayMs: -0.5 }, `${P}"backoff.maxDelayMs" must be ≥ 0, got -0.5`],
    [{ maxDelayMs: Number.NaN }, `${P}"backoff.maxDelayMs" must be a finite number, got NaN`],
    [{ factor: 0.5 }, `${P}"backoff.factor" must be ≥ 1, got 0.5`],
    [{ factor: 0 }, `${P}"backoff.factor" must be ≥ 1, got 0`],
    [{ factor: '2' }, `${P}"backoff.factor" must be a finite number, got the string "2"`],
    [{ jitter: 'half' }, `${P}"backoff.jitter" must be 'full' or 'none', got the string "half"`],
    [{ jitter: null }, `${P}"backoff.jitter" must be 'full' or 'none', got null`],
  ])('%j is refused: %s', (value, message) => {
    let error: unknown;
    try {
      validateBackoff(vv, value);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toBe(message);
  });
});

describe('option checks of withRetryingTransaction: exact message, no session started', () => {
  const P = `${PRIMITIVE}: option `;
  const ok = async () => 1;
  const wc = (writeConcern: unknown) => ({ transactionOptions: { writeConcern } });
  const cases: [string, unknown, string][] = [
    ['options 5', 5, `${P}"options" must be an object, got 5`],
    [
      'a session',
      { session: {} },
      `${P}"session" is not accepted: withRetryingTransaction starts, owns and ends its own session; use the session it passes to the callback`,
    ],
    [
      'an unknown option',
      { timeout: 5 },
      `${P}"timeout" is not an option of withRetryingTransaction (known: timeoutMs, maxAttempts, backoff, onRetry, signal, transactionOptions)`,
    ],
    [
      'timeoutMs 0',
      { timeoutMs: 0 },
      `${P}"timeoutMs" must be a finite number greater than 0, got 0`,
    ],
    [
      'timeoutMs one past setTimeout’s largest delay',
      { timeoutMs: 2_147_483_648 },
      `${P}"timeoutMs" must be at most 2147483647 (~24.8 days)`,
    ],
    ['maxAttempts 0', { maxAttempts: 0 }, `${P}"maxAttempts" must be a whole number ≥ 1, got 0`],
    [
      'maxAttempts -Infinity',
      { maxAttempts: Number.NEGATIVE_INFINITY },
      `${P}"maxAttempts" must be a whole number ≥ 1, got -Infinity`,
    ],
    [
      'maxAttempts 2.5',
      { maxAttempts: 2.5 },
      `${P}"maxAttempts" must be a whole number ≥ 1, got 2.5`,
    ],
    [
      'onRetry a string',
      { onRetry: 'log' },
      `${P}"onRetry" must be a function, got the string "log"`,
    ],
    ['signal {}', { signal: {} }, `${P}"signal" must be an AbortSignal, got an object`],
    ['signal true', { signal: true }, `${P}"signal" must be an AbortSignal, got a boolean`],
    ['backoff 5', { backoff: 5 }, `${P}"backoff" must be an object, got 5`],
    [
      'transactionOptions a string',
      { transactionOptions: 'snapshot' },
      `${P}"transactionOptions" must be an object, got the string "snapshot"`,
    ],
    [
      'transactionOptions an unknown key',
      { transactionOptions: { timeoutMS: 5 } },
      `${P}"transactionOptions.timeoutMS" is not accepted (known: readConcern, writeConcern, readPreference, maxCommitTimeMS)`,
    ],
    ...(
      [
        ['linearizable', 'the string "linearizable"'],
        [{ level: 'available' }, 'an object'],
        [{}, 'an object'],
        [null, 'null'],
        [5, '5'],
      ] as const
    ).map(([readConcern, got]): [string, unknown, string] => [
      `readConcern ${JSON.stringify(readConcern)}`,
      { transactionOptions: { readConcern } },
      `${P}"transactionOptions.readConcern" must be 'local', 'majority', 'snapshot' or { level }, got ${got}`,
    ]),
    [
      'writeConcern a string',
      wc('majority'),
      `${P}"transactionOptions.writeConcern" must be an object, got the string "majority"`,
    ],
    [
      'writeConcern null',
      wc(null),
      `${P}"transactionOptions.writeConcern" must be an object, got null`,
    ],
    [
      'writeConcern an unknown key (typo)',
      wc({ wtimeoutMs: 5 }),
      `${P}"transactionOptions.writeConcern.wtimeoutMs" is not a key of transactionOptions.writeConcern (known: w, j, journal, wtimeout, wtimeoutMS, fsync)`,
    ],
    [
      'w 0',
      wc({ w: 0 }),
      `${P}"transactionOptions.writeConcern.w" must be a whole number ≥ 1, got 0`,
    ],
    [
      'w true',
      wc({ w: true }),
      `${P}"transactionOptions.writeConcern.w" must be a whole number ≥ 1, got a boolean`,
    ],
    [
      "w ''",
      wc({ w: '' }),
      `${P}"transactionOptions.writeConcern.w" must be a non-empty mode name of at most 1024 characters`,
    ],
    [
      'w of 1025 characters',
      wc({ w: 'a'.repeat(1025) }),
      `${P}"transactionOptions.writeConcern.w" must be a non-empty mode name of at most 1024 characters`,
    ],
    [
      'j a string',
      wc({ j: 'yes' }),
      `${P}"transactionOptions.writeConcern.j" must be true or false, got the string "yes"`,
    ],
    [
      'journal 1',
      wc({ journal: 1 }),
      `${P}"transactionOptions.writeConcern.journal" must be true or false, got 1`,
    ],
    [
      'fsync 2',
      wc({ fsync: 2 }),
      `${P}"transactionOptions.writeConcern.fsync" must be true or false, got 2`,
    ],
    [
      'wtimeout -1',
      wc({ wtimeout: -1 }),
      `${P}"transactionOptions.writeConcern.wtimeout" must be a whole number ≥ 0, got -1`,
    ],
    [
      'wtimeoutMS 1.5',
      wc({ wtimeoutMS: 1.5 }),
      `${P}"transactionOptions.writeConcern.wtimeoutMS" must be a whole number ≥ 0, got 1.5`,
    ],
    ...(
      [
        ['secondary', 'the string "secondary"'],
        [{ mode: 'nearest' }, 'an object'],
        [{}, 'an object'],
        [null, 'null'],
      ] as const
    ).map(([readPreference, got]): [string, unknown, string] => [
      `readPreference ${JSON.stringify(readPreference)}`,
      { transactionOptions: { readPreference } },
      `${P}"transactionOptions.readPreference" must be 'primary' (transactions read from the primary), got ${got}`,
    ]),
    [
      'maxCommitTimeMS 0',
      { transactionOptions: { maxCommitTimeMS: 0 } },
      `${P}"transactionOptions.maxCommitTimeMS" must be a whole number ≥ 1, got 0`,
    ],
  ];

  it.each(cases)('%s', async (_label, options, message) => {
    const f = fake();
    const error = await rejectionOf(
      withRetryingTransaction(f.client, ok, options as WithRetryingTransactionOptions),
    );
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toBe(message);
    expect(f.calls).toEqual([]);
  });

  it('a client that is no client, and a callback that is no function', async () => {
    expect(
      ((await rejectionOf(withRetryingTransaction({} as MongoClient, ok))) as Error).message,
    ).toBe(`${P}"client" must be a connected MongoClient, got an object`);
    const f = fake();
    expect(
      ((await rejectionOf(withRetryingTransaction(f.client, 'x' as never))) as Error).message,
    ).toBe(`${P}"fn" must be a function, got the string "x"`);
    expect(f.calls).toEqual([]);
  });
});

describe('accepted options: the call runs and passes transactionOptions through unchanged', () => {
  const fn = () => undefined;
  // Typed loosely: some shapes (w 1, fsync 1) are wider than the declared option types.
  const accepted: [string, unknown][] = [
    ['no options object', undefined as never],
    ['an empty options object', {}],
    ['timeoutMs at setTimeout’s largest delay', { timeoutMs: 2_147_483_647 }],
    ['timeoutMs a fraction', { timeoutMs: 0.5 }],
    ['maxAttempts 1', { maxAttempts: 1 }],
    ['maxAttempts Infinity', { maxAttempts: Number.POSITIVE_INFINITY }],
    ['onRetry', { onRetry: fn }],
    ['a signal', { signal: new AbortController().signal }],
    ['backoff', { backoff: { initialDelayMs: 0, factor: 1, maxDelayMs: 0, jitter: 'none' } }],
    ['transactionOptions {}', { transactionOptions: {} }],
    ...(['local', 'majority', 'snapshot'] as const).flatMap((level): [string, unknown][] => [
      [`readConcern '${level}'`, { transactionOptions: { readConcern: level as never } }],
      [`readConcern { level: '${level}' }`, { transactionOptions: { readConcern: { level } } }],
    ]),
    ['w 1', { transactionOptions: { writeConcern: { w: 1 } } }],
    ["w 'majority'", { transactionOptions: { writeConcern: { w: 'majority' } } }],
    ['w of 1024 characters', { transactionOptions: { writeConcern: { w: 'a'.repeat(1024) } } }],
    [
      'every other write concern key at its edge',
      {
        transactionOptions: {
          writeConcern: { j: true, journal: false, fsync: 1, wtimeout: 0, wtimeoutMS: 0 },
        },
      },
    ],
    ['fsync true', { transactionOptions: { writeConcern: { fsync: true } } }],
    ["readPreference 'primary'", { transactionOptions: { readPreference: 'primary' } }],
    [
      "readPreference { mode: 'primary' }",
      { transactionOptions: { readPreference: { mode: 'primary' } as never } },
    ],
    ['maxCommitTimeMS 1', { transactionOptions: { maxCommitTimeMS: 1 } }],
  ];

  it.each(accepted)('%s', async (_label, given) => {
    const options = given as WithRetryingTransactionOptions | undefined;
    const f = fake();
    expect(await withRetryingTransaction(f.client, async () => 'v', options)).toBe('v');
    expect(f.calls).toEqual([
      'startSession',
      'startTransaction',
      'commitTransaction',
      'endSession',
    ]);
    expect(f.startOptions).toHaveLength(1);
    expect(f.startOptions[0]).toBe(options?.transactionOptions);
  });
});

describe('one try', () => {
  it('the callback gets attempt 1 and an unaborted signal; its value is returned after one commit', async () => {
    const f = fake();
    const seen: TransactionAttempt[] = [];
    const result = await withRetryingTransaction(f.client, async (session, attempt) => {
      expect(session).toBe(f.session);
      seen.push(attempt);
      return { moved: 20 };
    });
    expect(result).toEqual({ moved: 20 });
    expect(seen).toHaveLength(1);
    expect(seen[0]?.attempt).toBe(1);
    expect(seen[0]?.signal).toBeInstanceOf(AbortSignal);
    expect(seen[0]?.signal.aborted).toBe(false);
    expect(f.calls).toEqual([
      'startSession',
      'startTransaction',
      'commitTransaction',
      'endSession',
    ]);
  });

  it('a callback that committed itself is not committed again; one that aborted itself is not aborted again', async () => {
    const committed = fake();
    await withRetryingTransaction(committed.client, async (session) => {
      await session.commitTransaction();
      return 1;
    });
    expect(committed.calls).toEqual([
      'startSession',
      'startTransaction',
      'commitTransaction',
      'endSession',
    ]);
    const aborted = fake();
    expect(
      await withRetryingTransaction(aborted.client, async (session) => {
        await session.abortTransaction();
        return 2;
      }),
    ).toBe(2);
    expect(aborted.calls).toEqual([
      'startSession',
      'startTransaction',
      'abortTransaction',
      'endSession',
    ]);
  });

  it('a non-transient error from the callback: the same object, the open transaction aborted, one run', async () => {
    const f = fake();
    const r = recorder();
    const { fn, thrown } = failing([() => serverError(11000, [], 'E11000 duplicate key')]);
    const error = await rejectionOf(withRetryingTransaction(f.client, fn, { onRetry: r.onRetry }));
    expect(error).toBe(thrown[0]);
    expect(r.events).toEqual([]);
    expect(f.calls).toEqual(['startSession', 'startTransaction', 'abortTransaction', 'endSession']);
  });

  it('an error thrown after the callback closed the transaction itself: no abort is sent', async () => {
    const f = fake();
    const boom = new Error('after commit');
    const error = await rejectionOf(
      withRetryingTransaction(f.client, async (session) => {
        await session.commitTransaction();
        throw boom;
      }),
    );
    expect(error).toBe(boom);
    expect(f.calls).toEqual([
      'startSession',
      'startTransaction',
      'commitTransaction',
      'endSession',
    ]);
  });

  it('a failing abortTransaction does not hide the callback error; a failing endSession does not hide the value', async () => {
    const abortFails = fake({ abortError: new Error('abort failed') });
    const boom = new Error('callback');
    expect(
      await rejectionOf(
        withRetryingTransaction(abortFails.client, async () => {
          throw boom;
        }),
      ),
    ).toBe(boom);
    const endFails = fake({ endError: new Error('end failed') });
    expect(await withRetryingTransaction(endFails.client, async () => 'kept')).toBe('kept');
    expect(endFails.calls.at(-1)).toBe('endSession');
  });

  it('a non-retryable commit error is rethrown unchanged, once committed, the session ended', async () => {
    const refusal = serverError(11000, [], 'E11000 at commit');
    const f = fake({ commitErrors: [refusal] });
    expect(await rejectionOf(withRetryingTransaction(f.client, async () => 1))).toBe(refusal);
    expect(f.calls).toEqual([
      'startSession',
      'startTransaction',
      'commitTransaction',
      'endSession',
    ]);
  });

  it('a commit failing with MaxTimeMSExpired (50), labelled UnknownTransactionCommitResult, is not re-sent', async () => {
    const expired = serverError(
      50,
      ['UnknownTransactionCommitResult'],
      'operation exceeded time limit',
    );
    const f = fake({ commitErrors: [expired] });
    expect(await rejectionOf(withRetryingTransaction(f.client, async () => 1))).toBe(expired);
    expect(f.calls.filter((c) => c === 'commitTransaction')).toHaveLength(1);
  });

  it('a standalone refusal, from the callback or from the commit: TransactionsUnsupportedError with it as cause', async () => {
    const fromCallback = standaloneRefusal();
    const f = fake();
    const first = await rejectionOf(
      withRetryingTransaction(f.client, async () => {
        throw fromCallback;
      }),
    );
    expect(first).toBeInstanceOf(TransactionsUnsupportedError);
    expect((first as Error).cause).toBe(fromCallback);
    const fromCommit = standaloneRefusal();
    const g = fake({ commitErrors: [fromCommit] });
    const second = await rejectionOf(withRetryingTransaction(g.client, async () => 1));
    expect(second).toBeInstanceOf(TransactionsUnsupportedError);
    expect((second as Error).cause).toBe(fromCommit);
  });
});

describe('retries: reasons, attempt numbers, onRetry events', () => {
  it('transient errors from the callback: the whole callback runs again after each backoff', async () => {
    const f = fake();
    const r = recorder();
    const { fn, thrown, seen } = failing([writeConflict, writeConflict]);
    const result = await withRetryingTransaction(f.client, fn, {
      onRetry: r.onRetry,
      backoff: { initialDelayMs: 3, factor: 2, jitter: 'none' },
    });
    expect(result).toBe('done');
    expect(seen.map((a) => a.attempt)).toEqual([1, 2, 3]);
    // One signal for the whole call.
    expect(seen[1]?.signal).toBe(seen[0]?.signal);
    expect(r.events).toEqual([
      { attempt: 1, reason: 'transientTransactionError', error: thrown[0], delayMs: 3 },
      { attempt: 2, reason: 'transientTransactionError', error: thrown[1], delayMs: 6 },
    ]);
    expect(f.calls).toEqual([
      'startSession',
      'startTransaction',
      'abortTransaction',
      'startTransaction',
      'abortTransaction',
      'startTransaction',
      'commitTransaction',
      'endSession',
    ]);
  });

  it('a pool-cleared error from the callback: the whole callback runs again, reason poolCleared', async () => {
    const f = fake();
    const r = recorder();
    const { fn, thrown } = failing([poolCleared]);
    expect(
      await withRetryingTransaction(f.client, fn, { onRetry: r.onRetry, backoff: NO_WAIT }),
    ).toBe('done');
    expect(r.events).toEqual([{ attempt: 1, reason: 'poolCleared', error: thrown[0], delayMs: 0 }]);
  });

  it('a pool-cleared error from the callback that also says UnknownTransactionCommitResult is rethrown unchanged', async () => {
    const f = fake();
    const r = recorder();
    const { fn, thrown } = failing([() => poolCleared('UnknownTransactionCommitResult')]);
    const error = await rejectionOf(
      withRetryingTransaction(f.client, fn, { onRetry: r.onRetry, backoff: NO_WAIT }),
    );
    expect(error).toBe(thrown[0]);
    expect(r.events).toEqual([]);
  });

  it('unknown commit results: only the commit is re-sent; the callback ran once', async () => {
    const first = unknownCommit();
    const second = unknownCommit();
    const f = fake({ commitErrors: [first, second] });
    const r = recorder();
    const { fn, seen } = failing([]);
    expect(
      await withRetryingTransaction(f.client, fn, {
        onRetry: r.onRetry,
        backoff: { initialDelayMs: 2, factor: 3, jitter: 'none' },
      }),
    ).toBe('done');
    expect(seen.map((a) => a.attempt)).toEqual([1]);
    expect(r.events).toEqual([
      { attempt: 1, reason: 'unknownCommitResult', error: first, delayMs: 2 },
      { attempt: 2, reason: 'unknownCommitResult', error: second, delayMs: 6 },
    ]);
    expect(f.calls).toEqual([
      'startSession',
      'startTransaction',
      'commitTransaction',
      'commitTransaction',
      'commitTransaction',
      'endSession',
    ]);
  });

  it.each([
    ['an unknown commit result', unknownCommit, 'unknownCommitResult'],
    ['a pool-cleared commit', () => poolCleared(), 'poolCleared'],
  ])(
    'a commit-only retry counts as a try: after %s, then a transient commit, the callback runs as attempt 3',
    async (_label, makeFirst, reason) => {
      const first = makeFirst();
      const transient = writeConflict();
      const f = fake({ commitErrors: [first, transient] });
      const r = recorder();
      const { fn, seen } = failing([]);
      expect(
        await withRetryingTransaction(f.client, fn, { onRetry: r.onRetry, backoff: NO_WAIT }),
      ).toBe('done');
      expect(seen.map((a) => a.attempt)).toEqual([1, 3]);
      expect(r.events).toEqual([
        { attempt: 1, reason, error: first, delayMs: 0 },
        { attempt: 2, reason: 'transientTransactionError', error: transient, delayMs: 0 },
      ]);
    },
  );

  it('a transient commit error: the whole callback runs again, reason transientTransactionError', async () => {
    const transient = writeConflict();
    const f = fake({ commitErrors: [transient] });
    const r = recorder();
    const { fn, seen } = failing([]);
    await withRetryingTransaction(f.client, fn, { onRetry: r.onRetry, backoff: NO_WAIT });
    expect(seen.map((a) => a.attempt)).toEqual([1, 2]);
    expect(r.events).toEqual([
      { attempt: 1, reason: 'transientTransactionError', error: transient, delayMs: 0 },
    ]);
  });

  it('a pool-cleared commit error that is also transient: the whole callback runs again, not the commit alone', async () => {
    const both = poolCleared('TransientTransactionError');
    const f = fake({ commitErrors: [both] });
    const r = recorder();
    const { fn, seen } = failing([]);
    await withRetryingTransaction(f.client, fn, { onRetry: r.onRetry, backoff: NO_WAIT });
    expect(seen.map((a) => a.attempt)).toEqual([1, 2]);
    expect(r.events.map((e) => e.reason)).toEqual(['transientTransactionError']);
  });

  it('an onRetry that returns a rejected promise ends the call with its error after one run', async () => {
    const f = fake();
    const hookError = new Error('hook');
    const { fn, seen } = failing([writeConflict, writeConflict]);
    const error = await rejectionOf(
      withRetryingTransaction(f.client, fn, {
        backoff: NO_WAIT,
        onRetry: async () => {
          throw hookError;
        },
      }),
    );
    expect(error).toBe(hookError);
    expect(seen).toHaveLength(1);
    expect(f.calls.at(-1)).toBe('endSession');
  });
});

describe('giving up on attempts', () => {
  it('maxAttempts 3: exactly 3 runs, then RetryBudgetExhaustedError with every field', async () => {
    const f = fake();
    const r = recorder();
    const { fn, thrown, seen } = failing([
      writeConflict,
      writeConflict,
      writeConflict,
      writeConflict,
    ]);
    const before = performance.now();
    const error = await budgetError(
      withRetryingTransaction(f.client, fn, {
        maxAttempts: 3,
        backoff: NO_WAIT,
        onRetry: r.onRetry,
      }),
    );
    const measured = performance.now() - before;
    expect(error.message).toBe(
      `${PRIMITIVE}: gave up after 3 attempt(s) (maxAttempts): every attempt ended in a retryable error (the last is the cause). Raise maxAttempts to allow more tries, or make the transaction less contended`,
    );
    expect(error.reason).toBe(GiveUpReason.MaxAttempts);
    expect(error.attempts).toBe(3);
    expect(error.cause).toBe(thrown[2]);
    expect(Number.isInteger(error.elapsedMs)).toBe(true);
    expect(error.elapsedMs).toBeGreaterThanOrEqual(0);
    expect(error.elapsedMs).toBeLessThanOrEqual(Math.ceil(measured));
    expect(seen).toHaveLength(3);
    expect(r.events.map((e) => e.attempt)).toEqual([1, 2]);
    expect(f.calls.at(-1)).toBe('endSession');
  });

  it('maxAttempts 1: no retry at all', async () => {
    const f = fake();
    const { fn, thrown } = failing([writeConflict]);
    const error = await budgetError(withRetryingTransaction(f.client, fn, { maxAttempts: 1 }));
    expect(error.message).toBe(
      `${PRIMITIVE}: gave up after 1 attempt(s) (maxAttempts): every attempt ended in a retryable error (the last is the cause). Raise maxAttempts to allow more tries, or make the transaction less contended`,
    );
    expect(error.attempts).toBe(1);
    expect(error.cause).toBe(thrown[0]);
  });

  it('the default cap is 100 tries', async () => {
    const f = fake();
    const { fn, seen } = failing(Array.from({ length: 101 }, () => writeConflict));
    const error = await budgetError(withRetryingTransaction(f.client, fn, { backoff: NO_WAIT }));
    expect(error.message).toBe(
      `${PRIMITIVE}: gave up after 100 attempt(s) (maxAttempts): every attempt ended in a retryable error (the last is the cause). Raise maxAttempts to allow more tries, or make the transaction less contended`,
    );
    expect(error.reason).toBe('maxAttempts');
    expect(error.attempts).toBe(100);
    expect(seen).toHaveLength(100);
  });

  it('unknown commit results until the cap: commitOutcomeUnknown, saying the transaction may have been committed', async () => {
    const errors = [unknownCommit(), unknownCommit(), unknownCommit()];
    const f = fake({ commitErrors: errors });
    const error = await budgetError(
      withRetryingTransaction(f.client, async () => 1, { maxAttempts: 2, backoff: NO_WAIT }),
    );
    expect(error.message).toBe(
      `${PRIMITIVE}: gave up after 2 attempt(s) (maxAttempts), while the outcome of the commit was unknown: the transaction may have been committed. Check whether its writes were applied before doing the work again; raise maxAttempts to keep retrying the commit longer`,
    );
    expect(error.reason).toBe(GiveUpReason.CommitOutcomeUnknown);
    expect(error.attempts).toBe(2);
    expect(error.cause).toBe(errors[1]);
  });

  it('a pool-cleared commit with no earlier send that may have applied gives up as maxAttempts', async () => {
    const cleared = poolCleared();
    const f = fake({ commitErrors: [cleared] });
    const error = await budgetError(
      withRetryingTransaction(f.client, async () => 1, { maxAttempts: 1 }),
    );
    expect(error.reason).toBe('maxAttempts');
    expect(error.message).toBe(
      `${PRIMITIVE}: gave up after 1 attempt(s) (maxAttempts): every attempt ended in a retryable error (the last is the cause). Raise maxAttempts to allow more tries, or make the transaction less contended`,
    );
    expect(error.cause).toBe(cleared);
  });

  it('a pool-cleared commit after an unknown commit result gives up as commitOutcomeUnknown', async () => {
    const cleared = poolCleared();
    const f = fake({ commitErrors: [unknownCommit(), cleared] });
    const error = await budgetError(
      withRetryingTransaction(f.client, async () => 1, { maxAttempts: 2, backoff: NO_WAIT }),
    );
    expect(error.reason).toBe('commitOutcomeUnknown');
    expect(error.attempts).toBe(2);
    expect(error.cause).toBe(cleared);
  });

  it('maxAttempts Infinity: retried until success', async () => {
    const f = fake();
    const { fn, seen } = failing([writeConflict, writeConflict]);
    expect(
      await withRetryingTransaction(f.client, fn, {
        maxAttempts: Number.POSITIVE_INFINITY,
        backoff: NO_WAIT,
      }),
    ).toBe('done');
    expect(seen).toHaveLength(3);
  });
});

describe('abortedBeforeCommit: NoSuchTransaction exactly twice in a row', () => {
  // The whole text: it once read "withRetryingTransaction: withRetryingTransaction: the server
  // had…" (the constant started with the primitive's name and giveUp() prefixes it again).
  const BODY =
    'the server had already aborted the transaction when the callback finished, ' +
    '2 attempts in a row (NoSuchTransaction). Most likely the callback catches a server error ' +
    '(such as a duplicate key, E11000) and carries on: a failed command aborts the transaction ' +
    'on the server. Rethrow errors inside the callback, and check expected conflicts before ' +
    'writing instead. (A callback running longer than the server’s ' +
    'transactionLifetimeLimitSeconds ends the same way.)';
  const expectAbortedBeforeCommitMessage = (message: string) => {
    expect(message).toBe(`${PRIMITIVE}: ${BODY}`);
  };

  it('from the callback: gives up after the second, with every field', async () => {
    const f = fake();
    const r = recorder();
    const { fn, thrown } = failing([noSuchTransaction, noSuchTransaction, noSuchTransaction]);
    const error = await budgetError(
      withRetryingTransaction(f.client, fn, { backoff: NO_WAIT, onRetry: r.onRetry }),
    );
    expectAbortedBeforeCommitMessage(error.message);
    expect(error.reason).toBe(GiveUpReason.AbortedBeforeCommit);
    expect(error.attempts).toBe(2);
    expect(error.cause).toBe(thrown[1]);
    expect(r.events).toHaveLength(1);
  });

  it('from the commit: gives up after the second', async () => {
    const errors = [noSuchTransaction(), noSuchTransaction(), noSuchTransaction()];
    const f = fake({ commitErrors: errors });
    const error = await budgetError(
      withRetryingTransaction(f.client, async () => 1, { backoff: NO_WAIT }),
    );
    expectAbortedBeforeCommitMessage(error.message);
    expect(error.reason).toBe('abortedBeforeCommit');
    expect(error.attempts).toBe(2);
    expect(error.cause).toBe(errors[1]);
  });

  it('one NoSuchTransaction is retried, from the callback and from the commit', async () => {
    const f = fake();
    expect(
      await withRetryingTransaction(f.client, failing([noSuchTransaction]).fn, {
        backoff: NO_WAIT,
      }),
    ).toBe('done');
    const g = fake({ commitErrors: [noSuchTransaction()] });
    expect(await withRetryingTransaction(g.client, async () => 2, { backoff: NO_WAIT })).toBe(2);
  });

  it('other transient errors do not count: WriteConflict three times in a row is retried', async () => {
    const f = fake();
    const { fn, seen } = failing([writeConflict, writeConflict, writeConflict]);
    expect(await withRetryingTransaction(f.client, fn, { backoff: NO_WAIT })).toBe('done');
    expect(seen).toHaveLength(4);
    const g = fake({ commitErrors: [writeConflict(), writeConflict(), writeConflict()] });
    expect(await withRetryingTransaction(g.client, async () => 3, { backoff: NO_WAIT })).toBe(3);
  });

  it('another error in between resets the count (callback and commit)', async () => {
    const f = fake();
    const { fn } = failing([noSuchTransaction, writeConflict, noSuchTransaction]);
    expect(await withRetryingTransaction(f.client, fn, { backoff: NO_WAIT })).toBe('done');
    const g = fake({
      commitErrors: [noSuchTransaction(), writeConflict(), noSuchTransaction()],
    });
    expect(await withRetryingTransaction(g.client, async () => 4, { backoff: NO_WAIT })).toBe(4);
  });
});

describe('the adaptive policy (no backoff): holding time × max(3 × (waiting + 1), 1.5^(n − 1))', () => {
  /** A client whose every session is a fresh fake one (concurrent calls do not share one). */
  const manySessions = () => ({ startSession: () => fake().session }) as unknown as MongoClient;
  /**
   * A callback that spends `ms[n − 1]` on the fake clock in attempt n, then fails with a write
   * conflict while `ms` has an entry for the next attempt too, else returns.
   */
  function timed(clock: { now: number }, ms: number[]) {
    return async (_session: ClientSession, { attempt }: TransactionAttempt) => {
      clock.now += ms[attempt - 1] ?? 0;
      if (attempt < ms.length) throw writeConflict();
      return attempt;
    };
  }

  it('the unit is the smoothed duration of committed attempts of that client, not of another', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const clock = fakeClock();
    const a = manySessions();
    const b = manySessions();
    const r = recorder();
    // a: no commit yet, the failed attempt's 4 ms (0.5 × 4 × 3 = 6); its commit holds 10 ms.
    await withRetryingTransaction(a, timed(clock, [4, 10]), { onRetry: r.onRetry });
    // a's unit is now 10 (the first commit measured): 0.5 × 10 × 3, whatever its attempt took.
    // Its commit (30 ms) moves the unit a tenth of the way: 10 + 0.1 × 20 = 12.
    await withRetryingTransaction(a, timed(clock, [1, 30]), { onRetry: r.onRetry });
    await withRetryingTransaction(a, timed(clock, [1, 1]), { onRetry: r.onRetry });
    // b learnt nothing from a: its own failed attempt's 2 ms.
    await withRetryingTransaction(b, timed(clock, [2, 1]), { onRetry: r.onRetry });
    expect(r.events.map((e) => e.delayMs)).toEqual([6, 15, 18, 3]);
  });

  it('a call meeting conflict after conflict alone backs off by 1.5 per try, in holding times, up to 500 ms', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.1);
    const clock = fakeClock();
    const r = recorder();
    // 16 failed attempts of 2 ms each (no commit measured: the unit is 2 ms), then a commit.
    const ms = [...Array.from({ length: 16 }, () => 2), 0];
    await withRetryingTransaction(manySessions(), timed(clock, ms), { onRetry: r.onRetry });
    const turns = (n: number) => Math.max(3, 1.5 ** (n - 1));
    expect(r.events.map((e) => e.delayMs)).toEqual(
      Array.from({ length: 16 }, (_, i) => 0.1 * Math.min(2 * turns(i + 1), 500)),
    );
    // 3 holding times until 1.5^(n − 1) passes 3 (try 4), then 1.5 per try; 2 × 1.5^15 ≈ 876:
    // capped at 500.
    expect(r.events.slice(2, 5).map((e) => e.delayMs)).toEqual([0.1 * 6, 0.1 * 6.75, 0.1 * 10.125]);
    expect(r.events.at(-1)?.delayMs).toBe(0.1 * 500);
  });

  it('each call of the client waiting to retry lengthens the next wait by 3 holding times, and stops counting when its wait ends, however it ends', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const clock = fakeClock();
    const client = manySessions();
    const r = recorder();
    let waitingFirst!: () => void;
    const firstWaits = new Promise<void>((resolve) => {
      waitingFirst = resolve;
    });
    const controller = new AbortController();
    // A waits 0.5 × 50 × 3 = 75 ms (its own attempt's 50 ms: no commit yet).
    const a = withRetryingTransaction(client, timed(clock, [50, 0]), {
      signal: controller.signal,
      onRetry: (event) => {
        r.onRetry(event);
        waitingFirst();
      },
    });
    await firstWaits;
    // A macrotask later A is in its wait: B's place in the queue is 2 (0.5 × 50 × 6).
    await new Promise((resolve) => setImmediate(resolve));
    // Once B has chosen its wait, A's ends by its signal, B's by its timer: neither is
    // counted any more.
    const b = withRetryingTransaction(client, timed(clock, [50, 10]), {
      onRetry: (event) => {
        r.onRetry(event);
        controller.abort(new Error('caller gone'));
      },
    });
    await expect(a).rejects.toThrow('caller gone');
    await b;
    // B's commit held 10 ms. Nobody waits now: 0.5 × 10 × 3 (a count left at 1 would give 30).
    await withRetryingTransaction(client, timed(clock, [1, 0]), { onRetry: r.onRetry });
    expect(r.events.map((e) => e.delayMs)).toEqual([75, 150, 15]);
  });
});

describe('the time budget, on a controlled clock', () => {
  it('a backoff that would end exactly at the deadline is not started: timeout, no onRetry', async () => {
    fakeClock();
    const f = fake();
    const r = recorder();
    const { fn, thrown } = failing([writeConflict]);
    const error = await budgetError(
      withRetryingTransaction(f.client, fn, {
        timeoutMs: 100,
        backoff: { initialDelayMs: 100, maxDelayMs: 100, jitter: 'none' },
        onRetry: r.onRetry,
      }),
    );
    expect(error.message).toBe(
      `${PRIMITIVE}: gave up after 1 attempt(s): the time budget of 100 ms (timeoutMs) is spent. Raise timeoutMs to allow more time, or make the transaction shorter or less contended`,
    );
    expect(error.reason).toBe(GiveUpReason.Timeout);
    expect(error.attempts).toBe(1);
    expect(error.elapsedMs).toBe(0);
    expect(error.cause).toBe(thrown[0]);
    expect(r.events).toEqual([]);
  });

  it('a backoff ending just before the deadline is taken', async () => {
    fakeClock();
    const f = fake();
    const r = recorder();
    const { fn } = failing([writeConflict]);
    expect(
      await withRetryingTransaction(f.client, fn, {
        timeoutMs: 100,
        backoff: { initialDelayMs: 5, jitter: 'none' },
        onRetry: r.onRetry,
      }),
    ).toBe('done');
    expect(r.events.map((e) => e.delayMs)).toEqual([5]);
  });

  it('the deadline is checked again after onRetry: time spent in the hook counts', async () => {
    const clock = fakeClock();
    const f = fake();
    const { fn, seen } = failing([writeConflict]);
    const error = await budgetError(
      withRetryingTransaction(f.client, fn, {
        timeoutMs: 100,
        backoff: { initialDelayMs: 50, jitter: 'none' },
        onRetry: () => {
          // 50 + 50 reaches the deadline exactly.
          clock.now += 50;
        },
      }),
    );
    expect(error.reason).toBe('timeout');
    expect(error.message).toBe(
      `${PRIMITIVE}: gave up after 1 attempt(s): the time budget of 100 ms (timeoutMs) is spent. Raise timeoutMs to allow more time, or make the transaction shorter or less contended`,
    );
    expect(error.elapsedMs).toBe(50);
    expect(seen).toHaveLength(1);
  });

  it('elapsedMs is the time since the call started, rounded', async () => {
    const clock = fakeClock(1_000);
    const f = fake();
    const error = await budgetError(
      withRetryingTransaction(
        f.client,
        async () => {
          clock.now = 1_234.4;
          throw writeConflict();
        },
        { maxAttempts: 1 },
      ),
    );
    expect(error.elapsedMs).toBe(234);
  });

  it('the default budget is 120000 ms', async () => {
    fakeClock();
    const atDeadline = fake();
    const error = await budgetError(
      withRetryingTransaction(atDeadline.client, failing([writeConflict]).fn, {
        backoff: { initialDelayMs: 120_000, maxDelayMs: 120_000, jitter: 'none' },
      }),
    );
    expect(error.message).toBe(
      `${PRIMITIVE}: gave up after 1 attempt(s): the time budget of 120000 ms (timeoutMs) is spent. Raise timeoutMs to allow more time, or make the transaction shorter or less contended`,
    );
    // 1 ms less fits: the hook runs (and ends the call, to skip the two-minute wait).
    const stop = new Error('stop before the wait');
    const inBudget = fake();
    expect(
      await rejectionOf(
        withRetryingTransaction(inBudget.client, failing([writeConflict]).fn, {
          backoff: { initialDelayMs: 119_999, maxDelayMs: 120_000, jitter: 'none' },
          onRetry: () => {
            throw stop;
          },
        }),
      ),
    ).toBe(stop);
  });

  it('the default backoff: full jitter under 3 holding times, capped at 500', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const clock = fakeClock();
    const r = recorder();
    // The failed attempt lasts 4 ms (no commit measured yet): 0.5 × 4 × 3.
    const slow = (ms: number) => () => {
      clock.now += ms;
      return writeConflict();
    };
    await withRetryingTransaction(fake().client, failing([slow(4)]).fn, { onRetry: r.onRetry });
    // 400 ms: 0.5 × min(1 200, 500).
    await withRetryingTransaction(fake().client, failing([slow(400)]).fn, { onRetry: r.onRetry });
    expect(r.events.map((e) => e.delayMs)).toEqual([6, 250]);
  });

  it('an unknown commit result when the budget is spent: commitOutcomeUnknown with the timeout message', async () => {
    fakeClock();
    const last = unknownCommit();
    const f = fake({ commitErrors: [last] });
    const error = await budgetError(
      withRetryingTransaction(f.client, async () => 1, {
        timeoutMs: 10,
        backoff: { initialDelayMs: 10, jitter: 'none' },
      }),
    );
    expect(error.message).toBe(
      `${PRIMITIVE}: gave up after 1 attempt(s): the time budget of 10 ms (timeoutMs) is spent, while the outcome of the commit was unknown: the transaction may have been committed. Check whether its writes were applied before doing the work again; raise timeoutMs to keep retrying the commit longer`,
    );
    expect(error.reason).toBe('commitOutcomeUnknown');
    expect(error.cause).toBe(last);
  });
});

describe('the time budget, on the real clock', () => {
  it("the callback's signal aborts at the deadline with a timeout error whose cause is the last failure; the finished callback is still committed", async () => {
    const f = fake();
    const first = writeConflict();
    let reason: unknown;
    const before = performance.now();
    const result = await withRetryingTransaction(
      f.client,
      async (_session, { attempt, signal }) => {
        if (attempt === 1) throw first;
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
        reason = signal.reason;
        return 'late';
      },
      { timeoutMs: 30, backoff: NO_WAIT },
    );
    const measured = performance.now() - before;
    expect(result).toBe('late');
    expect(reason).toBeInstanceOf(RetryBudgetExhaustedError);
    const error = reason as RetryBudgetExhaustedError;
    expect(error.message).toBe(
      `${PRIMITIVE}: gave up after 2 attempt(s): the time budget of 30 ms (timeoutMs) is spent. Raise timeoutMs to allow more time, or make the transaction shorter or less contended`,
    );
    expect(error.reason).toBe('timeout');
    expect(error.attempts).toBe(2);
    expect(error.cause).toBe(first);
    expect(error.elapsedMs).toBeLessThanOrEqual(Math.ceil(measured));
    expect(f.calls.slice(-2)).toEqual(['commitTransaction', 'endSession']);
  });
});

describe('the time budget spent during the first attempt', () => {
  it("the callback's signal reason has an Error cause saying no attempt had failed yet", async () => {
    const f = fake();
    let reason: unknown;
    await withRetryingTransaction(
      f.client,
      async (_session, { signal }) => {
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
        reason = signal.reason;
        return 'late';
      },
      { timeoutMs: 20, backoff: NO_WAIT },
    );
    const error = reason as RetryBudgetExhaustedError;
    expect(error.reason).toBe('timeout');
    expect(error.cause).toBeInstanceOf(Error);
    expect((error.cause as Error).message).toBe(
      'the time budget ran out during attempt 1, before any attempt failed',
    );
  });
});

describe("the caller's signal", () => {
  it('already aborted: rejects with its reason, no session started, the callback never runs', async () => {
    const f = fake();
    const reason = new Error('cancelled');
    let ran = false;
    const error = await rejectionOf(
      withRetryingTransaction(
        f.client,
        async () => {
          ran = true;
        },
        { signal: AbortSignal.abort(reason) },
      ),
    );
    expect(error).toBe(reason);
    expect(ran).toBe(false);
    expect(f.calls).toEqual([]);
  });

  it("aborted during the callback: the callback's signal aborts with the same reason; no commit, the transaction aborted", async () => {
    const f = fake();
    const controller = new AbortController();
    const reason = new Error('cancelled');
    let seenReason: unknown;
    const error = await rejectionOf(
      withRetryingTransaction(
        f.client,
        async (_session, { signal }) => {
          controller.abort(reason);
          seenReason = signal.aborted ? signal.reason : 'not aborted';
          return 1;
        },
        { signal: controller.signal },
      ),
    );
    expect(error).toBe(reason);
    expect(seenReason).toBe(reason);
    expect(f.calls).toEqual(['startSession', 'startTransaction', 'abortTransaction', 'endSession']);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('aborted during the callback, which then fails transiently: rejects with the reason, no onRetry, no second run', async () => {
    const f = fake();
    const controller = new AbortController();
    const reason = new Error('cancelled');
    const r = recorder();
    let runs = 0;
    const error = await rejectionOf(
      withRetryingTransaction(
        f.client,
        async () => {
          runs += 1;
          controller.abort(reason);
          throw writeConflict();
        },
        { signal: controller.signal, onRetry: r.onRetry, maxAttempts: 1, backoff: NO_WAIT },
      ),
    );
    expect(error).toBe(reason);
    expect(runs).toBe(1);
    expect(r.events).toEqual([]);
  });

  it('aborted during a backoff: rejects with its reason at once', async () => {
    const f = fake();
    const controller = new AbortController();
    const reason = new Error('cancelled');
    const { fn, seen } = failing([writeConflict]);
    const error = await rejectionOf(
      withRetryingTransaction(f.client, fn, {
        signal: controller.signal,
        backoff: { initialDelayMs: 5_000, jitter: 'none' },
        onRetry: () => {
          setTimeout(() => controller.abort(reason), 1);
        },
      }),
    );
    expect(error).toBe(reason);
    expect(seen).toHaveLength(1);
    expect(f.calls.at(-1)).toBe('endSession');
  });

  it('no listener is left on the caller’s signal after the call', async () => {
    const controller = new AbortController();
    await withRetryingTransaction(fake().client, async () => 1, { signal: controller.signal });
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    await rejectionOf(
      withRetryingTransaction(fake().client, failing([writeConflict]).fn, {
        signal: controller.signal,
        maxAttempts: 1,
      }),
    );
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });
});

describe('no timer outlives its purpose (fake timers count them)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sleep aborted: its timer is cleared, not left to fire into a settled promise', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const controller = new AbortController();
    const slept = sleepOrAbort(60_000, controller.signal).catch((error: unknown) => error);
    expect(vi.getTimerCount()).toBe(1);
    const reason = new Error('stop');
    controller.abort(reason);
    expect(await slept).toBe(reason);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("the call's time budget: its timer is cleared when the call ends, and the callback's signal never aborts afterwards", async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const f = fake();
    let seen: AbortSignal | undefined;
    const result = await withRetryingTransaction(
      f.client,
      async (_session, { signal }) => {
        seen = signal;
        return 'done';
      },
      { timeoutMs: 1_000 },
    );
    expect(result).toBe('done');
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(2_000);
    expect(seen?.aborted).toBe(false);
  });
});
