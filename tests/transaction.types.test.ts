/**
 * Type-level tests of withRetryingTransaction's public API (checked by `tsc --noEmit`; the
 * calls sit in functions that never run, so no server is needed).
 */
import type { ClientSession, MongoClient } from 'mongodb';
import { describe, expectTypeOf, it } from 'vitest';
import type { GiveUpReason } from '../src/errors.js';
import {
  type TransactionAttempt,
  type TransactionRetryEvent,
  TransactionRetryReason,
  type WithRetryingTransactionOptions,
  withRetryingTransaction,
} from '../src/transaction.js';

/** Declares type assertions without running them. */
const typesOnly = (_check: (client: MongoClient) => void): void => {};

describe('withRetryingTransaction types', () => {
  it('infers the result type from the callback', () => {
    typesOnly((client) => {
      expectTypeOf(withRetryingTransaction(client, async () => 42)).toEqualTypeOf<
        Promise<number>
      >();
      expectTypeOf(
        withRetryingTransaction(client, async () => ({ moved: 20, id: 'a' as const })),
      ).toEqualTypeOf<Promise<{ moved: number; id: 'a' }>>();
      expectTypeOf(withRetryingTransaction(client, async () => {})).toEqualTypeOf<Promise<void>>();
    });
  });

  it('types the callback parameters: the session and the attempt context', () => {
    typesOnly((client) => {
      void withRetryingTransaction(client, async (session, context) => {
        expectTypeOf(session).toEqualTypeOf<ClientSession>();
        expectTypeOf(context).toEqualTypeOf<TransactionAttempt>();
        expectTypeOf(context.attempt).toEqualTypeOf<number>();
        expectTypeOf(context.signal).toEqualTypeOf<AbortSignal>();
        // Read-only: the runner owns the attempt number.
        // @ts-expect-error attempt is readonly
        context.attempt = 2;
      });
    });
  });

  it('the retry event and its reason are closed unions', () => {
    expectTypeOf<TransactionRetryEvent['reason']>().toEqualTypeOf<
      'transientTransactionError' | 'unknownCommitResult' | 'poolCleared'
    >();
    expectTypeOf(TransactionRetryReason.UnknownCommitResult).toEqualTypeOf<'unknownCommitResult'>();
    expectTypeOf<TransactionRetryEvent['attempt']>().toEqualTypeOf<number>();
    expectTypeOf<GiveUpReason>().toEqualTypeOf<
      'timeout' | 'maxAttempts' | 'abortedBeforeCommit' | 'commitOutcomeUnknown'
    >();
  });

  it('rejects misuse at compile time', () => {
    typesOnly((client) => {
      // @ts-expect-error the callback must return a promise
      void withRetryingTransaction(client, () => 42);
      // @ts-expect-error the runner owns its session
      void withRetryingTransaction(client, async () => 1, { session: {} as ClientSession });
      // @ts-expect-error jitter is 'full' or 'none'
      void withRetryingTransaction(client, async () => 1, { backoff: { jitter: 'half' } });
      // @ts-expect-error timeoutMs is a number of milliseconds
      void withRetryingTransaction(client, async () => 1, { timeoutMs: '5s' });
      const options: WithRetryingTransactionOptions = {
        timeoutMs: 5_000,
        maxAttempts: 10,
        backoff: { initialDelayMs: 10, factor: 2, maxDelayMs: 200, jitter: 'none' },
        onRetry: async (event) => {
          expectTypeOf(event.error).toEqualTypeOf<unknown>();
        },
        signal: AbortSignal.timeout(1_000),
        transactionOptions: { maxCommitTimeMS: 1_000 },
      };
      void withRetryingTransaction(client, async () => 1, options);
    });
  });
});
