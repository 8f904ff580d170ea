/**
 * Type-level tests of the holds API (checked by `tsc --noEmit`; the calls sit in functions that
 * never run, so no server is needed).
 */
import type { Collection, WithId } from 'mongodb';
import { describe, expectTypeOf, it } from 'vitest';
import {
  type ConfirmHoldResult,
  confirmHold,
  type HoldQuantityResult,
  holdQuantity,
  type ReleaseHoldResult,
} from '../src/holds.js';

interface Product {
  _id: string;
  name: string;
  stock: number;
  inventory: { available: number };
}

describe('holds types', () => {
  it('narrows holdQuantity results on outcome', () => {
    const result = {} as HoldQuantityResult<Product>;
    expectTypeOf(result.outcome).toEqualTypeOf<
      'held' | 'alreadyHeld' | 'alreadySettled' | 'insufficient' | 'tooManyHolds' | 'notFound'
    >();
    if (result.outcome === 'held') {
      expectTypeOf(result.document).toEqualTypeOf<WithId<Product>>();
      expectTypeOf(result.hold.expiresAt).toEqualTypeOf<Date>();
    }
    if (result.outcome === 'insufficient') expectTypeOf(result.available).toBeNumber();
    if (result.outcome === 'alreadySettled') {
      expectTypeOf(result.settled).toEqualTypeOf<'confirmed' | 'released' | 'expired'>();
    }
    const { document } = result;
    expectTypeOf(document).toEqualTypeOf<WithId<Product> | undefined>();
  });

  it('narrows confirm and release results on outcome', () => {
    const confirmed = {} as ConfirmHoldResult<Product>;
    if (confirmed.outcome === 'confirmed')
      expectTypeOf(confirmed.document).toEqualTypeOf<WithId<Product>>();
    if (confirmed.outcome === 'expired') expectTypeOf(confirmed.amount).toBeNumber();
    const released = {} as ReleaseHoldResult<Product>;
    expectTypeOf(released.outcome).toEqualTypeOf<
      'released' | 'expired' | 'alreadyConfirmed' | 'alreadyReleased' | 'unknownHold' | 'notFound'
    >();
  });

  it('checks field against the numeric paths of a typed collection', () => {
    const products = {} as Collection<Product>;
    const ok = () => [
      holdQuantity(products, {
        filter: { _id: 'p' },
        field: 'stock',
        amount: 1,
        holdId: 'h',
        ttlMs: 1,
      }),
      holdQuantity(products, {
        filter: { _id: 'p' },
        field: 'inventory.available',
        amount: 1,
        holdId: 'h',
        ttlMs: 1,
      }),
      confirmHold(products, { filter: { _id: 'p' }, field: 'stock', holdId: 'h' }),
    ];
    const bad = () => [
      holdQuantity(products, {
        filter: { _id: 'p' },
        // @ts-expect-error name holds a string, not a number
        field: 'name',
        amount: 1,
        holdId: 'h',
        ttlMs: 1,
      }),
      // @ts-expect-error no such field
      confirmHold(products, { filter: { _id: 'p' }, field: 'stok', holdId: 'h' }),
    ];
    expectTypeOf(ok).toBeFunction();
    expectTypeOf(bad).toBeFunction();
  });
});
