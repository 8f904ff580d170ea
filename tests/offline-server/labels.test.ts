/**
 * errorLabels() against server src/mongo/db/error_labels.cpp, for the cases the conformance
 * suite cannot inject through failCommand on a real mongod: codes that carry required extra info
 * (StaleConfig, StaleDbVersion, ShardCannotRefreshDueToLocksHeld, ...), the internal commit/abort
 * commands, and a write concern error without a code.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../offline-server/src/errors.js';
import {
  type ErrorContext,
  errorLabels,
  isTransientTransactionError,
} from '../../offline-server/src/labels.js';

const inTransaction = (commandName: string, wce?: number | 'no code'): ErrorContext => ({
  commandName,
  hasTxnNumber: true,
  hasAutocommit: true,
  hasWriteConcernError: wce !== undefined,
  writeConcernErrorCode: typeof wce === 'number' ? wce : undefined,
});
const retryableWrite = (commandName: string, wce?: number): ErrorContext => ({
  commandName,
  hasTxnNumber: true,
  hasAutocommit: false,
  hasWriteConcernError: wce !== undefined,
  writeConcernErrorCode: wce,
});
const plain: ErrorContext = {
  commandName: 'insert',
  hasTxnNumber: false,
  hasAutocommit: false,
  hasWriteConcernError: false,
};

describe('error_labels.cpp isTransientTransactionError', () => {
  // The switch's named codes and the SnapshotError / NeedRetargettingError categories: transient
  // on every command, commit and abort included, write concern error or not.
  it.each([
    ErrorCode.WriteConflict,
    ErrorCode.LockTimeout,
    ErrorCode.PreparedTransactionInProgress,
    ErrorCode.ShardCannotRefreshDueToLocksHeld,
    ErrorCode.ShardInvalidatedForTargeting,
    ErrorCode.StaleDbVersion,
    ErrorCode.TenantMigrationAborted,
    ErrorCode.TenantMigrationCommitted,
    ErrorCode.SnapshotTooOld,
    ErrorCode.SnapshotUnavailable,
    ErrorCode.StaleChunkHistory,
    ErrorCode.MigrationConflict,
    ErrorCode.StaleEpoch,
    ErrorCode.StaleConfig,
  ])('%i is transient everywhere', (code) => {
    for (const commitOrAbort of [false, true]) {
      for (const wce of [false, true]) {
        expect(isTransientTransactionError(code, wce, commitOrAbort)).toBe(true);
      }
    }
  });

  it('InternalTransactionNotSupported (358) is never transient, though RetriableError', () => {
    expect(
      isTransientTransactionError(ErrorCode.InternalTransactionNotSupported, false, false),
    ).toBe(false);
    expect(errorLabels(ErrorCode.InternalTransactionNotSupported, inTransaction('insert'))).toEqual(
      [],
    );
    expect(
      errorLabels(ErrorCode.InternalTransactionNotSupported, inTransaction('commitTransaction')),
    ).toEqual(['RetryableWriteError']);
  });

  it('NoSuchTransaction on commit/abort is transient only without a write concern error', () => {
    for (const name of ['commitTransaction', 'abortTransaction', 'coordinateCommitTransaction']) {
      expect(errorLabels(ErrorCode.NoSuchTransaction, inTransaction(name))).toEqual([
        'TransientTransactionError',
      ]);
      expect(errorLabels(ErrorCode.NoSuchTransaction, inTransaction(name, 'no code'))).toEqual([]);
      expect(errorLabels(ErrorCode.NoSuchTransaction, inTransaction(name, 64))).toEqual([]);
      expect(errorLabels(ErrorCode.NoSuchTransaction, inTransaction(name, 91))).toEqual([
        'RetryableWriteError',
      ]);
    }
    // Any other command in a transaction: transient whatever its write concern error.
    expect(errorLabels(ErrorCode.NoSuchTransaction, inTransaction('insert', 64))).toEqual([
      'TransientTransactionError',
    ]);
  });
});

describe('error_labels.cpp ErrorLabelBuilder::build', () => {
  it('a write concern error alone is never TransientTransactionError', () => {
    expect(errorLabels(undefined, inTransaction('insert', 91))).toEqual([]);
    expect(errorLabels(undefined, inTransaction('commitTransaction', 91))).toEqual([
      'RetryableWriteError',
    ]);
  });

  it('RetryableWriteError needs a txnNumber: no labels without a session transaction number', () => {
    expect(errorLabels(ErrorCode.NotWritablePrimary, plain)).toEqual([]);
    expect(errorLabels(ErrorCode.WriteConflict, plain)).toEqual([]);
    expect(errorLabels(ErrorCode.NotWritablePrimary, retryableWrite('update'))).toEqual([
      'RetryableWriteError',
    ]);
    expect(errorLabels(undefined, retryableWrite('update', 11602))).toEqual([
      'RetryableWriteError',
    ]);
    expect(errorLabels(ErrorCode.WriteConflict, retryableWrite('update'))).toEqual([]);
  });

  it('never sends UnknownTransactionCommitResult (the drivers add it)', () => {
    for (const code of [ErrorCode.MaxTimeMSExpired, ErrorCode.NotWritablePrimary, undefined]) {
      expect(errorLabels(code, inTransaction('commitTransaction', 64))).not.toContain(
        'UnknownTransactionCommitResult',
      );
    }
  });
});
