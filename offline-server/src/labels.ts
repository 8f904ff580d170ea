/**
 * Error labels mongod 7.0 attaches to a failed command, after `src/mongo/db/error_labels.cpp`
 * (getErrorLabels, ErrorLabelBuilder::build, isTransientTransactionError) and the error
 * categories of `src/mongo/base/error_codes.yml`.
 *
 * - A `failCommand` fail point that carries `errorLabels` replaces the computed labels with
 *   exactly those (an empty array: no labels at all); the dispatcher handles that override.
 * - TransientTransactionError: the command carries `txnNumber` and `autocommit`, it failed with
 *   a code (a write concern error alone never qualifies), and isTransientTransactionError holds.
 * - Otherwise RetryableWriteError: a retryable write (`txnNumber` without `autocommit`), or a
 *   commit/abort of a transaction, whose error code or write concern error code is a
 *   RetriableError. Never both labels: TransientTransactionError wins.
 * - mongod never sends UnknownTransactionCommitResult: drivers add it themselves
 *   (mongodb/specifications transactions spec).
 * - NonResumableChangeStreamError: any command failing with a NonResumableChangeStreamError code.
 *   NoWritesPerformed and ResumableChangeStreamError are not computed (see
 *   offline-server/README.md).
 */
import { ErrorCode } from './errors.js';

export interface ErrorContext {
  readonly commandName: string;
  /** The command carried a `txnNumber`. */
  readonly hasTxnNumber: boolean;
  /** The command carried `autocommit` (always false when present): it runs in a transaction. */
  readonly hasAutocommit: boolean;
  /** The code of the reply's write concern error, when the reply carries one. */
  readonly writeConcernErrorCode?: number | undefined;
  /** The reply carries a `writeConcernError` (with or without a numeric code). */
  readonly hasWriteConcernError: boolean;
}

/** error_codes.yml, category RetriableError (ErrorCodes::isRetriableError), as of r7.0. */
export const RETRIABLE_ERROR_CODES: ReadonlySet<number> = new Set([
  ErrorCode.HostUnreachable,
  ErrorCode.HostNotFound,
  ErrorCode.NetworkTimeout,
  ErrorCode.ShutdownInProgress,
  ErrorCode.ReadConcernMajorityNotAvailableYet,
  ErrorCode.PrimarySteppedDown,
  ErrorCode.ExceededTimeLimit,
  ErrorCode.ConnectionPoolExpired,
  ErrorCode.InternalTransactionNotSupported,
  ErrorCode.ConnectionError,
  ErrorCode.SocketException,
  ErrorCode.NotWritablePrimary,
  ErrorCode.InterruptedAtShutdown,
  ErrorCode.InterruptedDueToReplStateChange,
  ErrorCode.NotPrimaryNoSecondaryOk,
  ErrorCode.NotPrimaryOrSecondary,
  ErrorCode.BackupCursorOpenConflictWithCheckpoint,
]);

/** error_codes.yml, category SnapshotError (ErrorCodes::isSnapshotError). */
export const SNAPSHOT_ERROR_CODES: ReadonlySet<number> = new Set([
  ErrorCode.SnapshotTooOld,
  ErrorCode.SnapshotUnavailable,
  ErrorCode.StaleChunkHistory,
  ErrorCode.MigrationConflict,
]);

/** error_codes.yml, category NeedRetargettingError (ErrorCodes::isNeedRetargettingError). */
export const NEED_RETARGETTING_ERROR_CODES: ReadonlySet<number> = new Set([
  ErrorCode.StaleEpoch,
  ErrorCode.StaleConfig,
]);

/** error_codes.yml, category NonResumableChangeStreamError. */
export const NON_RESUMABLE_CHANGE_STREAM_ERROR_CODES: ReadonlySet<number> = new Set([
  ErrorCode.ChangeStreamFatalError,
  ErrorCode.ChangeStreamHistoryLost,
]);

/** The codes isTransientTransactionError names one by one (transient on every command). */
const ALWAYS_TRANSIENT_CODES: ReadonlySet<number> = new Set([
  ErrorCode.WriteConflict,
  ErrorCode.LockTimeout,
  ErrorCode.PreparedTransactionInProgress,
  ErrorCode.ShardCannotRefreshDueToLocksHeld,
  ErrorCode.ShardInvalidatedForTargeting,
  ErrorCode.StaleDbVersion,
  ErrorCode.TenantMigrationAborted,
  ErrorCode.TenantMigrationCommitted,
]);

/** error_labels.cpp's commitOrAbortCommands (the cluster and coordinator forms are internal). */
const COMMIT_OR_ABORT_COMMANDS: ReadonlySet<string> = new Set([
  'abortTransaction',
  'clusterAbortTransaction',
  'clusterCommitTransaction',
  'commitTransaction',
  'coordinateCommitTransaction',
]);

/** mongo::isTransientTransactionError(code, hasWriteConcernError, isCommitOrAbort). */
export function isTransientTransactionError(
  code: number,
  hasWriteConcernError: boolean,
  isCommitOrAbort: boolean,
): boolean {
  // A retryable write error that must not make a transaction retry itself.
  if (code === ErrorCode.InternalTransactionNotSupported) return false;
  if (ALWAYS_TRANSIENT_CODES.has(code)) return true;
  if (SNAPSHOT_ERROR_CODES.has(code) || NEED_RETARGETTING_ERROR_CODES.has(code)) return true;
  if (isCommitOrAbort) {
    // Retrying the whole transaction is safe only if its data cannot be rolled back.
    return code === ErrorCode.NoSuchTransaction && !hasWriteConcernError;
  }
  return RETRIABLE_ERROR_CODES.has(code) || code === ErrorCode.NoSuchTransaction;
}

/**
 * The labels mongod computes for a reply that failed with `code` (undefined when the command
 * succeeded and only its write concern failed).
 */
export function errorLabels(code: number | undefined, context: ErrorContext): string[] {
  const labels = transactionLabels(code, context);
  // build(): ResumableChangeStreamError (not computed: no change streams) or else this one.
  if (code !== undefined && NON_RESUMABLE_CHANGE_STREAM_ERROR_CODES.has(code)) {
    labels.push('NonResumableChangeStreamError');
  }
  return labels;
}

/** TransientTransactionError, or else RetryableWriteError, or neither. */
function transactionLabels(code: number | undefined, context: ErrorContext): string[] {
  const commitOrAbort = COMMIT_OR_ABORT_COMMANDS.has(context.commandName);
  if (
    code !== undefined &&
    context.hasTxnNumber &&
    context.hasAutocommit &&
    isTransientTransactionError(code, context.hasWriteConcernError, commitOrAbort)
  ) {
    return ['TransientTransactionError'];
  }
  const retryableWrite = context.hasTxnNumber && !context.hasAutocommit;
  const transactionCommitOrAbort = context.hasTxnNumber && context.hasAutocommit && commitOrAbort;
  if (retryableWrite || transactionCommitOrAbort) {
    const wceCode = context.writeConcernErrorCode;
    if (
      (code !== undefined && RETRIABLE_ERROR_CODES.has(code)) ||
      (wceCode !== undefined && RETRIABLE_ERROR_CODES.has(wceCode))
    ) {
      return ['RetryableWriteError'];
    }
  }
  return [];
}
