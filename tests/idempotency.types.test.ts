/**
 * Type-level tests of withIdempotencyKey's public API (checked by `tsc --noEmit`; the calls sit in
 * functions that never run, so no server is needed). Type-only tests live in `*.types.test.ts`
 * and are counted apart from the behavioural tests (docs/testing.md).
 */
import type { ClientSession, Collection, MongoClient } from 'mongodb';
import { describe, expectTypeOf, it } from 'vitest';
import {
  type IdempotencyRecord,
  type IdempotencyResult,
  withIdempotencyKey,
} from '../src/idempotency.js';

describe('types', () => {
  it('fn gets a session only in transaction mode; the result narrows on outcome', () => {
    const check = (keys: Collection<IdempotencyRecord>, client: MongoClient) => {
      void withIdempotencyKey(keys, {
        key: 'k',
        fn: async (context) => {
          expectTypeOf(context.session).toEqualTypeOf<undefined>();
          expectTypeOf(context.signal).toEqualTypeOf<AbortSignal>();
          return 1;
        },
      });
      const inTransaction = withIdempotencyKey(keys, {
        key: 'k',
        client,
        fn: async ({ session, attempt }) => {
          expectTypeOf(session).toEqualTypeOf<ClientSession>();
          expectTypeOf(attempt).toEqualTypeOf<number>();
          return { orderId: 'o1' };
        },
      });
      expectTypeOf(inTransaction).resolves.toEqualTypeOf<IdempotencyResult<{ orderId: string }>>();
    };
    expectTypeOf(check).toBeFunction();
    const narrow = (result: IdempotencyResult<number>) => {
      if (result.outcome === 'inProgress') {
        expectTypeOf(result.leaseUntil).toEqualTypeOf<Date>();
        expectTypeOf(result.value).toEqualTypeOf<undefined>();
        return;
      }
      expectTypeOf(result.value).toEqualTypeOf<number>();
      if (result.outcome === 'executed') expectTypeOf(result.leaseLost).toEqualTypeOf<boolean>();
    };
    expectTypeOf(narrow).toBeFunction();
    // A plain db.collection(name) is accepted, as is a typed one.
    const plain = (keys: Collection) => withIdempotencyKey(keys, { key: 'k', fn: async () => 1 });
    expectTypeOf(plain).returns.resolves.toEqualTypeOf<IdempotencyResult<number>>();
  });
});
