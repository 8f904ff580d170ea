/**
 * Type-level tests of guardedDecrement's public API (checked by `tsc --noEmit`; the calls sit in
 * functions that never run, so no server is needed). Type-only tests live in `*.types.test.ts`
 * and are counted apart from the behavioural tests (docs/testing.md).
 */
import type { WithId } from 'mongodb';
import { describe, expectTypeOf, it } from 'vitest';
import type {
  GuardedDecrementAllResult,
  GuardedDecrementResult,
  guardedDecrementAll,
} from '../src/guarded-decrement.js';

interface Product {
  _id: string;
  stock?: number;
  inventory?: { available: number };
  name?: string;
}

describe('guardedDecrement types', () => {
  it('narrows on outcome', () => {
    const { outcome, document, available } = {} as GuardedDecrementResult<Product>;
    expectTypeOf(outcome).toEqualTypeOf<'decremented' | 'insufficient' | 'notFound'>();
    expectTypeOf(document).toEqualTypeOf<WithId<Product> | undefined>();
    expectTypeOf(available).toEqualTypeOf<number | undefined>();
    const all = {} as GuardedDecrementAllResult;
    if (all.outcome === 'insufficient') expectTypeOf(all.shortages[0]!.available).toBeNumber();
    if (all.outcome === 'notFound') expectTypeOf(all.missing).toEqualTypeOf<readonly number[]>();
  });

  it('requires exactly one of session or client', () => {
    type Options = Parameters<typeof guardedDecrementAll>[1];
    expectTypeOf<{ field: string; items: [] }>().not.toMatchTypeOf<Options>();
  });
});
