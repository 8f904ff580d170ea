/**
 * Direct tests of src/driver.ts, the one place that reads raw driver errors and results,
 * written to kill the mutants the primitives' tests left alive (npm run mutation;
 * docs/reliability.md, "Mutation testing"). Errors are built in the shapes the drivers produce
 * (code, errorLabels or hasErrorLabel, writeErrors, writeConcernError with the reply kept as
 * `result`, driver 7's rethrown "retryable writes" error with `errorResponse.originalError`).
 */
import type { ClientSession } from 'mongodb';
import { describe, expect, it } from 'vitest';
import {
  ErrorLabel,
  errorCode,
  hasErrorLabel,
  isDuplicateKeyError,
  isMaxTimeMSExpired,
  isNoSuchTransaction,
  isPoolCleared,
  isTransactionsUnsupported,
  modifyFacts,
  primaryRead,
  writeConcernErrorMatched,
  writeMayHaveApplied,
} from '../../src/driver.js';

describe('errorCode', () => {
  it('reads a numeric code only', () => {
    expect(errorCode({ code: 11000 })).toBe(11000);
    expect(errorCode({ code: '11000' })).toBeUndefined();
    expect(errorCode({})).toBeUndefined();
    expect(errorCode(null)).toBeUndefined();
    expect(errorCode(11000)).toBeUndefined();
    expect(errorCode(undefined)).toBeUndefined();
  });

  it('reads objects only: a thrown function carrying a code is not a server error', () => {
    // JavaScript can throw anything; only an object is read as an error shape.
    const thrown = Object.assign(() => undefined, { code: 11000 });
    expect(errorCode(thrown)).toBeUndefined();
    expect(isDuplicateKeyError(thrown)).toBe(false);
  });
});

describe('hasErrorLabel', () => {
  it('asks the error its labels when it can answer (driver errors)', () => {
    const asked: string[] = [];
    const error = {
      errorLabels: [],
      hasErrorLabel: (label: string) => {
        asked.push(label);
        return label === ErrorLabel.TransientTransactionError;
      },
    };
    expect(hasErrorLabel(error, ErrorLabel.TransientTransactionError)).toBe(true);
    expect(hasErrorLabel(error, ErrorLabel.UnknownTransactionCommitResult)).toBe(false);
    expect(asked).toEqual(['TransientTransactionError', 'UnknownTransactionCommitResult']);
  });

  it('reads an errorLabels array otherwise', () => {
    const error = { errorLabels: ['UnknownTransactionCommitResult'] };
    expect(hasErrorLabel(error, ErrorLabel.UnknownTransactionCommitResult)).toBe(true);
    expect(hasErrorLabel(error, ErrorLabel.TransientTransactionError)).toBe(false);
    expect(
      hasErrorLabel(
        { errorLabels: 'UnknownTransactionCommitResult' },
        'UnknownTransactionCommitResult',
      ),
    ).toBe(false);
    expect(hasErrorLabel({}, ErrorLabel.TransientTransactionError)).toBe(false);
    expect(hasErrorLabel(null, ErrorLabel.TransientTransactionError)).toBe(false);
    expect(hasErrorLabel('TransientTransactionError', ErrorLabel.TransientTransactionError)).toBe(
      false,
    );
  });

  it('labels are the transactions specification strings', () => {
    expect(ErrorLabel).toEqual({
      TransientTransactionError: 'TransientTransactionError',
      UnknownTransactionCommitResult: 'UnknownTransactionCommitResult',
    });
  });
});

describe('isMaxTimeMSExpired', () => {
  it('is true for code 50 as a command error or in a write concern error', () => {
    expect(isMaxTimeMSExpired({ code: 50 })).toBe(true);
    expect(isMaxTimeMSExpired({ code: 64, writeConcernError: { code: 50 } })).toBe(true);
  });

  it('is false for other codes, anywhere', () => {
    expect(isMaxTimeMSExpired({ code: 51 })).toBe(false);
    expect(isMaxTimeMSExpired({ writeConcernError: { code: 64 } })).toBe(false);
    expect(isMaxTimeMSExpired({})).toBe(false);
    expect(isMaxTimeMSExpired(null)).toBe(false);
  });
});

describe('isPoolCleared', () => {
  it('recognises both spellings of the driver label', () => {
    expect(isPoolCleared({ errorLabels: ['PoolRequestedRetry'] })).toBe(true);
    expect(isPoolCleared({ errorLabels: ['PoolRequstedRetry'] })).toBe(true);
    expect(isPoolCleared({ errorLabels: ['RetryableWriteError'] })).toBe(false);
    expect(isPoolCleared({})).toBe(false);
  });
});

describe('isNoSuchTransaction', () => {
  it('is code 251 only', () => {
    expect(isNoSuchTransaction({ code: 251 })).toBe(true);
    expect(isNoSuchTransaction({ code: 250 })).toBe(false);
    expect(isNoSuchTransaction(undefined)).toBe(false);
  });
});

describe('isDuplicateKeyError', () => {
  it('reads a command error code and write errors', () => {
    expect(isDuplicateKeyError({ code: 11000 })).toBe(true);
    expect(isDuplicateKeyError({ writeErrors: [{ code: 2 }, { code: 11000 }] })).toBe(true);
  });

  it('is false for other codes and for writeErrors that is not an array', () => {
    expect(isDuplicateKeyError({ code: 11001 })).toBe(false);
    expect(isDuplicateKeyError({ writeErrors: [{ code: 2 }] })).toBe(false);
    expect(isDuplicateKeyError({ writeErrors: [] })).toBe(false);
    expect(isDuplicateKeyError({ writeErrors: { code: 11000 } })).toBe(false);
    expect(isDuplicateKeyError({})).toBe(false);
    expect(isDuplicateKeyError(null)).toBe(false);
  });
});

describe('writeConcernErrorMatched', () => {
  it("returns the reply's n when a write concern error came with it", () => {
    expect(writeConcernErrorMatched({ writeConcernError: { code: 64 }, result: { n: 1 } })).toBe(1);
    expect(writeConcernErrorMatched({ writeConcernError: { code: 64 }, result: { n: 0 } })).toBe(0);
  });

  it('is undefined without a write concern error object or without a numeric n', () => {
    expect(writeConcernErrorMatched({ result: { n: 1 } })).toBeUndefined();
    expect(writeConcernErrorMatched({ writeConcernError: null, result: { n: 1 } })).toBeUndefined();
    expect(writeConcernErrorMatched({ writeConcernError: 'x', result: { n: 1 } })).toBeUndefined();
    expect(writeConcernErrorMatched({ writeConcernError: {}, result: { n: '1' } })).toBeUndefined();
    expect(writeConcernErrorMatched({ writeConcernError: {}, result: null })).toBeUndefined();
    expect(writeConcernErrorMatched({ writeConcernError: {} })).toBeUndefined();
    expect(writeConcernErrorMatched(null)).toBeUndefined();
  });
});

describe('writeMayHaveApplied', () => {
  it('a server reply (numeric code and an errorResponse): the write did not apply', () => {
    expect(writeMayHaveApplied({ code: 2, errorResponse: { ok: 0, code: 2 } })).toBe(false);
    expect(writeMayHaveApplied({ code: 11000, errorResponse: {}, name: 'MongoServerError' })).toBe(
      false,
    );
  });

  it('half a server reply is not one: a code alone, an errorResponse alone or null', () => {
    expect(writeMayHaveApplied({ code: 2 })).toBe(true);
    expect(writeMayHaveApplied({ code: '2', errorResponse: {} })).toBe(true);
    expect(writeMayHaveApplied({ errorResponse: {} })).toBe(true);
    expect(writeMayHaveApplied({ code: 2, errorResponse: null })).toBe(true);
    expect(writeMayHaveApplied({ code: 2, errorResponse: 'x' })).toBe(true);
  });

  it('refused by the driver before sending (BSON, invalid argument): did not apply', () => {
    expect(writeMayHaveApplied({ name: 'BSONError', message: 'cannot encode' })).toBe(false);
    expect(writeMayHaveApplied({ name: 'MongoInvalidArgumentError' })).toBe(false);
  });

  it('a lost reply (network error, timeout, anything else, or not an error object) may have applied', () => {
    expect(writeMayHaveApplied({ name: 'MongoNetworkError' })).toBe(true);
    expect(writeMayHaveApplied({ name: 'MongoNetworkTimeoutError', code: undefined })).toBe(true);
    expect(writeMayHaveApplied({ name: '' })).toBe(true);
    expect(writeMayHaveApplied({})).toBe(true);
    expect(writeMayHaveApplied(undefined)).toBe(true);
    expect(writeMayHaveApplied('boom')).toBe(true);
  });
});

describe('isTransactionsUnsupported', () => {
  const mongodMessage = 'Transaction numbers are only allowed on a replica set member or mongos';

  it("recognises a standalone mongod's IllegalOperation reply", () => {
    expect(isTransactionsUnsupported({ code: 20, message: mongodMessage })).toBe(true);
  });

  it('needs both the code and the message', () => {
    expect(isTransactionsUnsupported({ code: 20, message: 'some other illegal operation' })).toBe(
      false,
    );
    expect(isTransactionsUnsupported({ code: 21, message: mongodMessage })).toBe(false);
    expect(isTransactionsUnsupported({ code: 20 })).toBe(false);
    expect(isTransactionsUnsupported({ code: 20, message: 42 })).toBe(false);
    // only a string message is read, not whatever an object's toString makes of it
    expect(
      isTransactionsUnsupported({ code: 20, message: { toString: () => mongodMessage } }),
    ).toBe(false);
  });

  it("recognises driver 7's rethrown form, by message or by the original reply", () => {
    expect(
      isTransactionsUnsupported({
        message: 'This MongoDB deployment Does Not Support Retryable Writes. Please add…',
      }),
    ).toBe(true);
    expect(
      isTransactionsUnsupported({
        message: 'wrapped',
        errorResponse: { originalError: { code: 20, message: mongodMessage } },
      }),
    ).toBe(true);
    expect(
      isTransactionsUnsupported({
        message: 'wrapped',
        errorResponse: { originalError: { code: 20, message: 'other' } },
      }),
    ).toBe(false);
  });

  it('does not loop on an error that is its own original', () => {
    const error: { message: string; errorResponse?: unknown } = { message: 'self' };
    error.errorResponse = { originalError: error };
    expect(isTransactionsUnsupported(error)).toBe(false);
    expect(isTransactionsUnsupported(null)).toBe(false);
  });
});

describe('primaryRead', () => {
  const session = (inTransaction: boolean) =>
    ({ inTransaction: () => inTransaction }) as unknown as ClientSession;

  it('reads the primary outside a transaction, with or without a session', () => {
    expect(primaryRead(undefined)).toEqual({ readPreference: 'primary' });
    const outside = session(false);
    const options = primaryRead(outside);
    expect(options).toEqual({ session: outside, readPreference: 'primary' });
    expect(options.session).toBe(outside);
  });

  it('sets no read preference inside a transaction (the driver refuses one there)', () => {
    const inside = session(true);
    const options = primaryRead(inside);
    expect(options).toStrictEqual({ session: inside });
    expect(Object.hasOwn(options, 'readPreference')).toBe(false);
  });
});

describe('modifyFacts', () => {
  it('reads updatedExisting and upserted from lastErrorObject', () => {
    expect(
      modifyFacts({ value: { a: 1 }, lastErrorObject: { updatedExisting: true } }),
    ).toStrictEqual({ value: { a: 1 }, updatedExisting: true, upserted: false });
    expect(
      modifyFacts({ value: null, lastErrorObject: { updatedExisting: false, upserted: 'id' } }),
    ).toStrictEqual({ value: null, updatedExisting: false, upserted: true });
  });

  it('treats a missing lastErrorObject or a truthy non-true flag as not updated', () => {
    expect(modifyFacts({ value: null })).toStrictEqual({
      value: null,
      updatedExisting: false,
      upserted: false,
    });
    expect(
      modifyFacts({ value: null, lastErrorObject: { updatedExisting: 1 } }).updatedExisting,
    ).toBe(false);
  });
});
