/**
 * The errors this library throws. Expected business outcomes ("insufficient", "already
 * claimed", …) are never errors: they are the `outcome` of a resolved result. Errors are for
 * misuse (bad arguments) and infrastructure (retry budget spent, no transactions).
 *
 * The classes, their `name`s and the type guards are part of the semver contract. Prefer the
 * type guards over `instanceof`: they also recognise errors thrown by another copy of this
 * package (two versions installed side by side), through a brand shared by all copies.
 */

const BRAND = Symbol.for('mongo-atomics.error');

/** Root of every error thrown by mongo-atomics. */
export class MongoAtomicsError extends Error {
  /** Fixed per class (`'MongoAtomicsError'` here; each subclass sets its own class name). */
  override name = 'MongoAtomicsError';
  /** @internal Brand shared across copies of the package; see the type guards. */
  readonly [BRAND] = true;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * An argument or option is invalid. Thrown before anything is sent to the server, so an
 * invalid call never writes. A few options name a field of the matched document that a guard
 * compares (guardedDecrement's `field`, addToSetWithCapacity's `capacity` and `counter`,
 * updateWithVersion's `versionField`): when that document holds there what the guard can
 * never match (a missing `field` or `capacity`, a string, NaN, …), the read the call already
 * makes throws this error on that option instead of reporting a business outcome; nothing was
 * written then either. The message says what the document holds and what to do.
 */
export class InvalidArgumentError extends MongoAtomicsError {
  /** Always `'InvalidArgumentError'`; {@link isInvalidArgumentError} tests it. */
  override readonly name = 'InvalidArgumentError';
  /** The primitive that rejected the call, e.g. `'guardedDecrement'`. */
  readonly primitive: string;
  /** The offending option as a path into the options object, e.g. `'match.courseId'`. */
  readonly option: string;

  constructor(primitive: string, option: string, problem: string) {
    super(`${primitive}: option "${option}" ${problem}`);
    this.primitive = primitive;
    this.option = option;
  }
}

/** Why a retry loop gave up. */
export const GiveUpReason = {
  /** The time budget (`timeoutMs`) was spent. */
  Timeout: 'timeout',
  /** The attempt cap (`maxAttempts`) was reached. */
  MaxAttempts: 'maxAttempts',
  /**
   * The server kept aborting the transaction before commit although the callback completed:
   * most likely the callback caught and ignored a server error (e.g. a duplicate key), which
   * aborts a transaction server-side.
   */
  AbortedBeforeCommit: 'abortedBeforeCommit',
  /**
   * The budget ran out while retrying a commit whose outcome was unknown (network error,
   * failover): the transaction MAY HAVE BEEN COMMITTED. Check before doing the work again.
   */
  CommitOutcomeUnknown: 'commitOutcomeUnknown',
} as const;
/** One of the {@link GiveUpReason} values: why a retry loop gave up. */
export type GiveUpReason = (typeof GiveUpReason)[keyof typeof GiveUpReason];

/**
 * The `cause` of a RetryBudgetExhaustedError: always an Error. A thrown value that is not one
 * (a string, a plain object) is wrapped, and kept as the wrapper's own `cause`.
 */
function asError(value: unknown): Error {
  if (value instanceof Error) return value;
  if (value === undefined) return new Error('no error was recorded for the last attempt');
  const shown =
    typeof value === 'string'
      ? JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value)
      : typeof value === 'object' && value !== null
        ? 'an object'
        : String(value);
  return new Error(
    `a value that is not an Error was thrown: ${shown} (it is this error's cause); throw Error objects to keep a stack trace`,
    { cause: value },
  );
}

/**
 * A retry loop ran out of attempts or time. The last error is the `cause`, always an `Error`:
 * a thrown value that is not one is wrapped (the value is then the wrapper's own `cause`).
 */
export class RetryBudgetExhaustedError extends MongoAtomicsError {
  /** Always `'RetryBudgetExhaustedError'`; {@link isRetryBudgetExhaustedError} tests it. */
  override readonly name = 'RetryBudgetExhaustedError';
  /**
   * Why the loop gave up: the time budget (`'timeout'`), the attempt cap (`'maxAttempts'`), a
   * transaction the server kept aborting before commit (`'abortedBeforeCommit'`), or a commit
   * whose outcome stayed unknown (`'commitOutcomeUnknown'`: the work MAY HAVE BEEN COMMITTED,
   * check before doing it again). See {@link GiveUpReason}.
   */
  readonly reason: GiveUpReason;
  /** Attempts made, the failed last one included. */
  readonly attempts: number;
  /** Milliseconds from the first attempt's start to giving up. */
  readonly elapsedMs: number;

  constructor(
    message: string,
    details: { reason: GiveUpReason; attempts: number; elapsedMs: number; cause: unknown },
  ) {
    super(message, { cause: asError(details.cause) });
    this.reason = details.reason;
    this.attempts = details.attempts;
    this.elapsedMs = details.elapsedMs;
  }
}

/**
 * The deployment does not support transactions: a standalone mongod. Transactions need a
 * replica set (a single-node replica set is enough) or a sharded cluster.
 */
export class TransactionsUnsupportedError extends MongoAtomicsError {
  /** Always `'TransactionsUnsupportedError'`; {@link isTransactionsUnsupportedError} tests it. */
  override readonly name = 'TransactionsUnsupportedError';

  constructor(cause: unknown) {
    super(
      'MongoDB transactions need a replica set or a sharded cluster; this server is a standalone ' +
        'mongod. A single-node replica set is enough: start mongod with --replSet rs0 and run ' +
        'rs.initiate() once.',
      { cause },
    );
  }
}

/**
 * An idempotency key was reused for a different request: the stored fingerprint differs from
 * the one given. Usually a client bug (a key reused across requests); never replayed.
 */
export class IdempotencyKeyConflictError extends MongoAtomicsError {
  /** Always `'IdempotencyKeyConflictError'`; {@link isIdempotencyKeyConflictError} tests it. */
  override readonly name = 'IdempotencyKeyConflictError';
  /** The key that was reused. */
  readonly key: string;

  constructor(key: string) {
    super(
      `idempotency key ${JSON.stringify(key)} was already used for a different request (fingerprint mismatch): use a fresh key for a different request, and send the same fingerprint when retrying the same one`,
    );
    this.key = key;
  }
}

/**
 * `fn` ran, but its result was not stored durably under the idempotency key. The work WAS
 * done: do not treat this as "nothing happened". `value` is what `fn` returned; `cause` why
 * storing it failed. Three cases, told apart by `written`:
 * - `written: false`: the server refused the completion, or the driver never sent it (a value
 *   MongoDB cannot store): the key stays in progress until its lease ends; after that a
 *   duplicate may run `fn` again.
 * - `written: true`: the completion applied on the primary but came back with a write concern
 *   error. Duplicates are replayed `value`, unless a failover rolls the write back, in which
 *   case the key is in progress again until its lease ends.
 * - `written: 'unknown'`: the reply was lost (network error, timeout): the completion may have
 *   applied, even after this error (a delayed command still runs). Either duplicates are
 *   replayed `value`, or the key stays in progress until its lease ends; read the record to
 *   know which.
 */
export class IdempotencyResultNotStoredError extends MongoAtomicsError {
  /** Always `'IdempotencyResultNotStoredError'`; {@link isIdempotencyResultNotStoredError} tests it. */
  override readonly name = 'IdempotencyResultNotStoredError';
  /** The idempotency key whose result was not stored. */
  readonly key: string;
  /** What `fn` returned: the result of work that WAS done. Use it; do not run `fn` again. */
  readonly value: unknown;
  /**
   * Whether the completion applied: `true` (write concern unconfirmed), `false` (it did not),
   * `'unknown'` (the reply was lost). See above.
   */
  readonly written: boolean | 'unknown';

  constructor(key: string, value: unknown, cause: unknown, written: boolean | 'unknown' = false) {
    const quoted = JSON.stringify(key);
    super(
      written === true
        ? `idempotency key ${quoted}: fn ran and its result was written, but the write concern was not confirmed; duplicates replay it unless a failover rolls the write back. The work was done: use error.value as its result, do not run it again`
        : written === 'unknown'
          ? `idempotency key ${quoted}: fn ran, but the reply to storing its result was lost; the result may have been stored (duplicates replay it) or not (the key stays in progress until its lease ends). The work was done: use error.value as its result, do not run it again`
          : `idempotency key ${quoted}: fn ran, but its result could not be stored (see the cause); the key stays in progress until its lease ends. The work was done: use error.value as its result, do not run it again. If the result cannot be stored (over MongoDB's 16 MB document limit, or a value BSON cannot hold), make fn return less, such as an id`,
      { cause },
    );
    this.key = key;
    this.value = value;
    this.written = written;
  }
}

function branded(value: unknown): value is MongoAtomicsError {
  return (
    typeof value === 'object' && value !== null && (value as { [BRAND]?: unknown })[BRAND] === true
  );
}

/**
 * Whether `value` is an error thrown by mongo-atomics (by any copy of the package).
 *
 * @example
 * ```ts
 * try {
 *   await guardedDecrement(products, { filter: { _id: sku }, field: 'stock', amount: 1 });
 * } catch (error) {
 *   if (isMongoAtomicsError(error)) console.error(error.name, error.message);
 *   throw error;
 * }
 * ```
 */
export function isMongoAtomicsError(value: unknown): value is MongoAtomicsError {
  return branded(value);
}

/**
 * Whether `value` is an {@link InvalidArgumentError} (from any copy of the package): a call
 * refused before anything was written, or a guarded field the matched document holds in a
 * form the guard can never match.
 *
 * @example
 * ```ts
 * try {
 *   await guardedDecrement(products, { filter: { _id: sku }, field: 'stock', amount: quantity });
 * } catch (error) {
 *   if (isInvalidArgumentError(error)) {
 *     // error.primitive === 'guardedDecrement'; error.option names the option, e.g. 'amount'
 *     return { status: 400, body: error.message };
 *   }
 *   throw error;
 * }
 * ```
 */
export function isInvalidArgumentError(value: unknown): value is InvalidArgumentError {
  return branded(value) && value.name === 'InvalidArgumentError';
}

/**
 * Whether `value` is a {@link RetryBudgetExhaustedError} (from any copy of the package).
 *
 * @example
 * ```ts
 * try {
 *   await withRetryingTransaction(client, async (session) => {
 *     await orders.insertOne({ _id: orderId, total }, { session });
 *   });
 * } catch (error) {
 *   if (isRetryBudgetExhaustedError(error) && error.reason === 'commitOutcomeUnknown') {
 *     // The order MAY have been committed: look it up before placing it again.
 *     const placed = await orders.findOne({ _id: orderId });
 *     if (placed) return placed;
 *   }
 *   throw error;
 * }
 * ```
 */
export function isRetryBudgetExhaustedError(value: unknown): value is RetryBudgetExhaustedError {
  return branded(value) && value.name === 'RetryBudgetExhaustedError';
}

/**
 * Whether `value` is a {@link TransactionsUnsupportedError} (from any copy of the package):
 * the server is a standalone mongod.
 *
 * @example
 * ```ts
 * try {
 *   await withRetryingTransaction(client, async (session) => {
 *     await accounts.updateOne({ _id: from }, { $inc: { balance: -amount } }, { session });
 *     await accounts.updateOne({ _id: to }, { $inc: { balance: amount } }, { session });
 *   });
 * } catch (error) {
 *   if (isTransactionsUnsupportedError(error)) {
 *     throw new Error('start mongod as a replica set (--replSet rs0, then rs.initiate())', {
 *       cause: error,
 *     });
 *   }
 *   throw error;
 * }
 * ```
 */
export function isTransactionsUnsupportedError(
  value: unknown,
): value is TransactionsUnsupportedError {
  return branded(value) && value.name === 'TransactionsUnsupportedError';
}

/**
 * Whether `value` is an {@link IdempotencyKeyConflictError} (from any copy of the package):
 * a key reused for a different request.
 *
 * @example
 * ```ts
 * try {
 *   return await withIdempotencyKey(idempotencyKeys, {
 *     key,
 *     fingerprint,
 *     fn: () => chargeCard(order),
 *   });
 * } catch (error) {
 *   if (isIdempotencyKeyConflictError(error)) {
 *     return { status: 422, body: `key ${error.key} was used for a different request` };
 *   }
 *   throw error;
 * }
 * ```
 */
export function isIdempotencyKeyConflictError(
  value: unknown,
): value is IdempotencyKeyConflictError {
  return branded(value) && value.name === 'IdempotencyKeyConflictError';
}

/**
 * Whether `value` is an {@link IdempotencyResultNotStoredError} (from any copy of the
 * package): the work was done, but its result was not stored under the key.
 *
 * @example
 * ```ts
 * try {
 *   return await withIdempotencyKey(idempotencyKeys, { key, fn: () => chargeCard(order) });
 * } catch (error) {
 *   if (isIdempotencyResultNotStoredError(error)) {
 *     // The card WAS charged: answer with the result, do not charge again.
 *     return error.value;
 *   }
 *   throw error;
 * }
 * ```
 */
export function isIdempotencyResultNotStoredError(
  value: unknown,
): value is IdempotencyResultNotStoredError {
  return branded(value) && value.name === 'IdempotencyResultNotStoredError';
}
