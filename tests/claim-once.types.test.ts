/**
 * Type-level tests of claimOnce's public API (checked by `tsc --noEmit`; the calls sit in
 * functions that never run, so no server is needed). Type-only tests live in `*.types.test.ts`
 * and are counted apart from the behavioural tests (docs/testing.md).
 */
import type { WithId } from 'mongodb';
import { describe, expectTypeOf, it } from 'vitest';
import type { ClaimOnceResult } from '../src/claim-once.js';

interface Order {
  _id: string;
  status?: string | null;
  isPaid?: boolean;
  paidAt?: Date;
  paymentId?: string;
  payment?: { state: string };
}

describe('claimOnce types', () => {
  it('narrows on outcome; document is absent only on notFound', () => {
    expectTypeOf<ClaimOnceResult<Order>>().toHaveProperty('outcome');
    const check = (result: ClaimOnceResult<Order>) => {
      if (result.outcome === 'notFound') {
        expectTypeOf(result.document).toEqualTypeOf<undefined>();
        return;
      }
      expectTypeOf(result.document._id).toEqualTypeOf<string>();
      expectTypeOf(result.document.status).toEqualTypeOf<string | null | undefined>();
    };
    expectTypeOf(check).toBeFunction();
    const { outcome, document } = {} as ClaimOnceResult<Order>;
    expectTypeOf(outcome).toEqualTypeOf<
      'claimed' | 'alreadyClaimed' | 'preconditionFailed' | 'notFound'
    >();
    expectTypeOf(document).toEqualTypeOf<WithId<Order> | undefined>();
  });
});
