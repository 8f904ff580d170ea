/**
 * Error labels mongod attaches to a failed command, after `src/mongo/db/error_labels.cpp`
 * (ErrorLabelBuilder). Fail points that set `errorLabels` bypass this, as on mongod.
 */
import { ErrorCode } from './errors.js';

export interface ErrorContext {
  readonly commandName: string;
  /** The command carried `autocommit: false`. */
  readonly inTransaction: boolean;
  /** The command carried a `txnNumber` without `autocommit` (a retryable write). */
  readonly isRetryableWrite: boolean;
  readonly hasWriteConcernError: boolean;
  /** The code of that write concern error, when there is one. */
  readonly writeConcernErrorCode?: number | undefined;
}

/** ErrorCodes::isRetriableError: the codes a retryable write may be retried on. */
export const RETRYABLE_CODES: ReadonlySet<number> = new Set([
  ErrorCode.HostUnreachable,
  ErrorCode.HostNotFound,
  ErrorCode.NetworkTimeout,
  ErrorCode.ShutdownInProgress,
  ErrorCode.PrimarySteppedDown,
  ErrorCode.ExceededTimeLimit,
  ErrorCode.SocketException,
  ErrorCode.NotWritablePrimary,
  ErrorCode.InterruptedAtShutdown,
  ErrorCode.InterruptedDueToReplStateChange,
  ErrorCode.NotPrimaryNoSecondaryOk,
  ErrorCode.NotPrimaryOrSecondary,
]);

const TRANSIENT_CODES: ReadonlySet<number> = new Set([
  ErrorCode.WriteConflict,
  ErrorCode.LockTimeout,
  ErrorCode.SnapshotTooOld,
  ErrorCode.SnapshotUnavailable,
]);

function isCommitOrAbort(name: string): boolean {
  return name === 'commitTransaction' || name === 'abortTransaction';
}

/** Labels for a command error with `code`, or for a reply whose only fault is a write concern error (`code` undefined). */
export function errorLabels(code: number | undefined, context: ErrorContext): string[] {
  const labels: string[] = [];
  const commitOrAbort = isCommitOrAbort(context.commandName);

  if (context.inTransaction && code !== undefined) {
    const transient =
      TRANSIENT_CODES.has(code) ||
      (code === ErrorCode.NoSuchTransaction && !(commitOrAbort && context.hasWriteConcernError));
    if (transient) labels.push('TransientTransactionError');
  }

  // A write concern error makes the write retryable only when its own code is retryable
  // (e.g. ShutdownInProgress 91, not WriteConcernTimeout 64).
  const wceCode = context.writeConcernErrorCode;
  const retryable =
    (context.isRetryableWrite || commitOrAbort) &&
    ((code !== undefined && RETRYABLE_CODES.has(code)) ||
      (wceCode !== undefined && RETRYABLE_CODES.has(wceCode)));
  if (retryable && !labels.includes('TransientTransactionError'))
    labels.push('RetryableWriteError');

  if (context.commandName === 'commitTransaction') {
    const unknownResult =
      retryable ||
      code === ErrorCode.MaxTimeMSExpired ||
      (context.hasWriteConcernError &&
        code === undefined &&
        wceCode !== ErrorCode.CannotSatisfyWriteConcern &&
        wceCode !== ErrorCode.UnknownReplWriteConcern);
    if (unknownResult && !labels.includes('UnknownTransactionCommitResult')) {
      labels.push('UnknownTransactionCommitResult');
    }
  }
  return labels;
}
