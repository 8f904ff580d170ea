/**
 * The one place that reads raw driver errors and results. Primitives ask these questions
 * instead of inspecting `code`, labels or result shapes themselves.
 *
 * Errors are read by shape (code, labels), not by class, so they work with driver 6 and 7 and
 * with two copies of the driver in one application.
 */
import type { ClientSession } from 'mongodb';

/** Server error codes this library acts on (mongod's error_codes.yml). */
const ServerCode = {
  IllegalOperation: 20,
  MaxTimeMSExpired: 50,
  NoSuchTransaction: 251,
  DuplicateKey: 11000,
} as const;

/** Error labels (MongoDB transactions specification). */
export const ErrorLabel = {
  TransientTransactionError: 'TransientTransactionError',
  UnknownTransactionCommitResult: 'UnknownTransactionCommitResult',
} as const;
export type ErrorLabel = (typeof ErrorLabel)[keyof typeof ErrorLabel];

/**
 * The label the driver puts on `MongoPoolClearedError`. Driver 6 spells it `PoolRequstedRetry`
 * (src/error.ts, `MongoErrorLabel.PoolRequstedRetry`), driver 7 `PoolRequestedRetry`: both are
 * read, so the check works with either major and with two copies of the driver.
 */
const POOL_CLEARED_LABELS = ['PoolRequestedRetry', 'PoolRequstedRetry'] as const;

interface ErrorShape {
  code?: unknown;
  message?: unknown;
  errorLabels?: unknown;
  hasErrorLabel?: (label: string) => boolean;
  writeErrors?: unknown;
}

function shape(error: unknown): ErrorShape | undefined {
  return typeof error === 'object' && error !== null ? (error as ErrorShape) : undefined;
}

export function errorCode(error: unknown): number | undefined {
  const code = shape(error)?.code;
  return typeof code === 'number' ? code : undefined;
}

export function hasErrorLabel(error: unknown, label: ErrorLabel): boolean {
  return hasLabel(error, label);
}

function hasLabel(error: unknown, label: string): boolean {
  const candidate = shape(error);
  if (candidate === undefined) return false;
  if (typeof candidate.hasErrorLabel === 'function') return candidate.hasErrorLabel(label);
  return Array.isArray(candidate.errorLabels) && candidate.errorLabels.includes(label);
}

/**
 * MaxTimeMSExpired (50), as a command error or inside a write concern error (a commit whose
 * `maxCommitTimeMS` ran out while waiting for the write concern). Transactions convenient API
 * specification: a commit that failed this way must not be retried, even when labelled
 * UnknownTransactionCommitResult.
 */
export function isMaxTimeMSExpired(error: unknown): boolean {
  if (errorCode(error) === ServerCode.MaxTimeMSExpired) return true;
  const writeConcernError = (shape(error) as { writeConcernError?: unknown } | undefined)
    ?.writeConcernError;
  return errorCode(writeConcernError) === ServerCode.MaxTimeMSExpired;
}

/**
 * The driver's `MongoPoolClearedError`: the command waited for a connection of a pool that was
 * cleared meanwhile (another operation on the same client hit a network error or "shutting
 * down"), so it was never sent. The driver retries it itself outside a transaction (it is a
 * retryable error); inside one it raises it with no TransientTransactionError label, because
 * the label is added only to errors of commands that were sent (driver src/sdam/server.ts: a
 * checkout error is thrown before `decorateCommandError`). Recognised by its label, not its
 * class.
 */
export function isPoolCleared(error: unknown): boolean {
  return POOL_CLEARED_LABELS.some((label) => hasLabel(error, label));
}

/**
 * NoSuchTransaction (251): the server no longer has the session's transaction, because it
 * aborted it (a failed command inside it, a failover, the lifetime limit, killSessions).
 */
export function isNoSuchTransaction(error: unknown): boolean {
  return errorCode(error) === ServerCode.NoSuchTransaction;
}

/** E11000, from findAndModify (a command error) or from a write command (`writeErrors`). */
export function isDuplicateKeyError(error: unknown): boolean {
  if (errorCode(error) === ServerCode.DuplicateKey) return true;
  const writeErrors = shape(error)?.writeErrors;
  return (
    Array.isArray(writeErrors) &&
    writeErrors.some((entry) => errorCode(entry) === ServerCode.DuplicateKey)
  );
}

/**
 * A write whose reply carried a write concern error (driver: MongoWriteConcernError, the reply
 * kept as `result`): the server reports that error only after the write applied on the
 * primary, so the write DID happen, unconfirmed (a failover may still roll it back). Returns
 * the reply's `n` (for an update: the documents matched), or undefined for any other error.
 */
export function writeConcernErrorMatched(error: unknown): number | undefined {
  const candidate = shape(error) as { writeConcernError?: unknown; result?: unknown } | undefined;
  if (typeof candidate?.writeConcernError !== 'object' || candidate.writeConcernError === null) {
    return undefined;
  }
  const n = (candidate.result as { n?: unknown } | null | undefined)?.n;
  return typeof n === 'number' ? n : undefined;
}

/**
 * Could a single-document write that failed with `error` have applied all the same?
 * - No when the server answered it with an error: the write is atomic, and a retried write is
 *   answered from the record of an attempt that applied, so an error reply means none did.
 * - No when the driver refused it before sending (a value BSON cannot encode, an invalid
 *   argument).
 * - Yes otherwise: the reply was lost (network error, socket or operation timeout, a server
 *   selection that failed after an attempt was sent): the server may have applied it, even
 *   after the driver gave up (a blocked command runs once unblocked).
 * A write concern error is a reply to a write that applied: see `writeConcernErrorMatched`.
 */
export function writeMayHaveApplied(error: unknown): boolean {
  const candidate = shape(error) as
    | (ErrorShape & { name?: unknown; errorResponse?: unknown })
    | undefined;
  if (candidate === undefined) return true;
  const serverReply =
    typeof candidate.code === 'number' &&
    typeof candidate.errorResponse === 'object' &&
    candidate.errorResponse !== null;
  if (serverReply) return false;
  return !(candidate.name === 'BSONError' || candidate.name === 'MongoInvalidArgumentError');
}

/**
 * A standalone mongod refusing a transaction: IllegalOperation (20) "Transaction numbers are
 * only allowed on a replica set member or mongos". Driver 7 rethrows that reply as "This
 * MongoDB deployment does not support retryable writes…" (no code, the reply kept as
 * `errorResponse.originalError`); both forms are recognised.
 */
export function isTransactionsUnsupported(error: unknown): boolean {
  const message = shape(error)?.message;
  const text = typeof message === 'string' ? message : '';
  if (errorCode(error) === ServerCode.IllegalOperation && /transaction numbers/i.test(text)) {
    return true;
  }
  if (/does not support retryable writes/i.test(text)) return true;
  const original = (shape(error) as { errorResponse?: { originalError?: unknown } } | undefined)
    ?.errorResponse?.originalError;
  return original !== undefined && original !== error && isTransactionsUnsupported(original);
}

/**
 * Read options for a failure-path read: the primary, so a loser never reads a stale secondary
 * (outside transactions; a transaction reads from the primary anyway).
 */
export function primaryRead(session: ClientSession | undefined): {
  readPreference?: 'primary';
  session?: ClientSession;
} {
  if (session === undefined) return { readPreference: 'primary' };
  return session.inTransaction() ? { session } : { session, readPreference: 'primary' };
}

/** `lastErrorObject` facts of a findAndModify run with `includeResultMetadata: true`. */
export interface ModifyFacts<T> {
  readonly value: T | null;
  /** An existing document was updated (false when nothing matched or an upsert inserted). */
  readonly updatedExisting: boolean;
  /** The upsert inserted a document. */
  readonly upserted: boolean;
}

export function modifyFacts<T>(result: {
  value: T | null;
  lastErrorObject?: { updatedExisting?: unknown; upserted?: unknown };
}): ModifyFacts<T> {
  return {
    value: result.value,
    updatedExisting: result.lastErrorObject?.updatedExisting === true,
    upserted: result.lastErrorObject?.upserted !== undefined,
  };
}
