/**
 * Direct tests of src/errors.ts, written to kill the mutants the primitives' tests left alive
 * (npm run mutation; docs/reliability.md, "Mutation testing"). Names, messages, fields, causes
 * and type guards are part of the semver contract: callers branch on them.
 */
import { describe, expect, it } from 'vitest';
import {
  GiveUpReason,
  IdempotencyKeyConflictError,
  IdempotencyResultNotStoredError,
  InvalidArgumentError,
  isIdempotencyKeyConflictError,
  isIdempotencyResultNotStoredError,
  isInvalidArgumentError,
  isMongoAtomicsError,
  isRetryBudgetExhaustedError,
  isTransactionsUnsupportedError,
  MongoAtomicsError,
  RetryBudgetExhaustedError,
  TransactionsUnsupportedError,
} from '../../src/errors.js';

const cause = new Error('the last attempt');

function everyError() {
  return {
    root: new MongoAtomicsError('root message', { cause }),
    invalid: new InvalidArgumentError('guardedDecrement', 'amount', 'must be a positive number'),
    budget: new RetryBudgetExhaustedError('gave up', {
      reason: GiveUpReason.MaxAttempts,
      attempts: 3,
      elapsedMs: 120,
      cause,
    }),
    unsupported: new TransactionsUnsupportedError(cause),
    conflict: new IdempotencyKeyConflictError('key-1'),
    notStored: new IdempotencyResultNotStoredError('key-2', { ok: 1 }, cause),
  };
}

describe('error classes', () => {
  it('have fixed names, derive from the root and from Error', () => {
    const e = everyError();
    expect(e.root.name).toBe('MongoAtomicsError');
    expect(e.invalid.name).toBe('InvalidArgumentError');
    expect(e.budget.name).toBe('RetryBudgetExhaustedError');
    expect(e.unsupported.name).toBe('TransactionsUnsupportedError');
    expect(e.conflict.name).toBe('IdempotencyKeyConflictError');
    expect(e.notStored.name).toBe('IdempotencyResultNotStoredError');
    for (const error of Object.values(e)) {
      expect(error).toBeInstanceOf(MongoAtomicsError);
      expect(error).toBeInstanceOf(Error);
    }
  });

  it('keep the cause they are given', () => {
    const e = everyError();
    expect(e.root.cause).toBe(cause);
    expect(e.budget.cause).toBe(cause);
    expect(e.unsupported.cause).toBe(cause);
    expect(e.notStored.cause).toBe(cause);
    expect(new MongoAtomicsError('no cause').cause).toBeUndefined();
  });

  it('RetryBudgetExhaustedError: the cause is always an Error; a thrown non-Error is wrapped and kept as its cause', () => {
    const budget = (thrown: unknown) =>
      new RetryBudgetExhaustedError('gave up', {
        reason: GiveUpReason.Timeout,
        attempts: 1,
        elapsedMs: 5,
        cause: thrown,
      });
    const fromString = budget('boom').cause as Error;
    expect(fromString).toBeInstanceOf(Error);
    expect(fromString.message).toBe(
      'a value that is not an Error was thrown: "boom" (it is this error\'s cause); throw Error objects to keep a stack trace',
    );
    expect(fromString.cause).toBe('boom');
    const long = budget('x'.repeat(300)).cause as Error;
    expect(long.message).toContain(`"${'x'.repeat(200)}…"`);
    const object = { code: 1 };
    const fromObject = budget(object).cause as Error;
    expect(fromObject.message).toContain('thrown: an object (');
    expect(fromObject.cause).toBe(object);
    expect((budget(null).cause as Error).message).toContain('thrown: null (');
    expect((budget(42).cause as Error).cause).toBe(42);
    const none = budget(undefined).cause as Error;
    expect(none).toBeInstanceOf(Error);
    expect(none.message).toBe('no error was recorded for the last attempt');
    expect(none.cause).toBeUndefined();
  });

  it('InvalidArgumentError names the primitive and the option in fields and message', () => {
    const { invalid } = everyError();
    expect(invalid.primitive).toBe('guardedDecrement');
    expect(invalid.option).toBe('amount');
    expect(invalid.message).toBe('guardedDecrement: option "amount" must be a positive number');
  });

  it('RetryBudgetExhaustedError carries reason, attempts and elapsed time', () => {
    const { budget } = everyError();
    expect(budget.message).toBe('gave up');
    expect(budget.reason).toBe('maxAttempts');
    expect(budget.attempts).toBe(3);
    expect(budget.elapsedMs).toBe(120);
  });

  it('GiveUpReason values are the documented strings', () => {
    expect(GiveUpReason).toEqual({
      Timeout: 'timeout',
      MaxAttempts: 'maxAttempts',
      AbortedBeforeCommit: 'abortedBeforeCommit',
      CommitOutcomeUnknown: 'commitOutcomeUnknown',
    });
  });

  it('TransactionsUnsupportedError says what to do', () => {
    expect(everyError().unsupported.message).toBe(
      'MongoDB transactions need a replica set or a sharded cluster; this server is a standalone ' +
        'mongod. A single-node replica set is enough: start mongod with --replSet rs0 and run ' +
        'rs.initiate() once.',
    );
  });

  it('IdempotencyKeyConflictError names the key', () => {
    const { conflict } = everyError();
    expect(conflict.key).toBe('key-1');
    expect(conflict.message).toBe(
      'idempotency key "key-1" was already used for a different request (fingerprint mismatch): use a fresh key for a different request, and send the same fingerprint when retrying the same one',
    );
  });

  it('IdempotencyResultNotStoredError: not written by default, with the matching message', () => {
    const { notStored } = everyError();
    expect(notStored.key).toBe('key-2');
    expect(notStored.value).toEqual({ ok: 1 });
    expect(notStored.written).toBe(false);
    expect(notStored.message).toBe(
      'idempotency key "key-2": fn ran, but its result could not be stored (see the cause); the key stays in progress until its lease ends. The work was done: use error.value as its result, do not run it again. If the result cannot be stored (over MongoDB\'s 16 MB document limit, or a value BSON cannot hold), make fn return less, such as an id',
    );
    const written = new IdempotencyResultNotStoredError('key-3', 5, cause, true);
    expect(written.written).toBe(true);
    expect(written.value).toBe(5);
    expect(written.cause).toBe(cause);
    expect(written.message).toBe(
      'idempotency key "key-3": fn ran and its result was written, but the write concern was not confirmed; duplicates replay it unless a failover rolls the write back. The work was done: use error.value as its result, do not run it again',
    );
    const unknown = new IdempotencyResultNotStoredError('key-4', 5, cause, 'unknown');
    expect(unknown.message).toBe(
      'idempotency key "key-4": fn ran, but the reply to storing its result was lost; the result may have been stored (duplicates replay it) or not (the key stays in progress until its lease ends). The work was done: use error.value as its result, do not run it again',
    );
  });
});

describe('type guards', () => {
  const guards = {
    root: isMongoAtomicsError,
    invalid: isInvalidArgumentError,
    budget: isRetryBudgetExhaustedError,
    unsupported: isTransactionsUnsupportedError,
    conflict: isIdempotencyKeyConflictError,
    notStored: isIdempotencyResultNotStoredError,
  } as const;

  it('each guard recognises its own class and no other; the root guard recognises all', () => {
    const errors = everyError();
    for (const [guardName, guard] of Object.entries(guards)) {
      for (const [errorName, error] of Object.entries(errors)) {
        const expected = guardName === 'root' || guardName === errorName;
        expect(guard(error), `${guardName}(${errorName})`).toBe(expected);
      }
    }
  });

  it('recognise an error of another copy of the package by its brand and name', () => {
    const brand = Symbol.for('mongo-atomics.error');
    const foreign = Object.assign(new Error('from another copy'), {
      name: 'InvalidArgumentError',
      [brand]: true,
    });
    expect(isMongoAtomicsError(foreign)).toBe(true);
    expect(isInvalidArgumentError(foreign)).toBe(true);
    expect(isRetryBudgetExhaustedError(foreign)).toBe(false);
  });

  it('refuse unbranded look-alikes, a brand that is not exactly true, and non-objects', () => {
    const brand = Symbol.for('mongo-atomics.error');
    const lookalike = Object.assign(new Error('x'), { name: 'InvalidArgumentError' });
    const truthy = Object.assign(new Error('x'), { name: 'InvalidArgumentError', [brand]: 1 });
    for (const guard of Object.values(guards)) {
      expect(guard(lookalike)).toBe(false);
      expect(guard(truthy)).toBe(false);
      for (const value of [null, undefined, 'InvalidArgumentError', 1, true]) {
        expect(guard(value)).toBe(false);
      }
    }
  });
});
