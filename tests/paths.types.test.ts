/**
 * Type-level tests of the typed field paths (src/paths.ts) as the primitives use them: with a
 * typed collection only paths of the right kind compile; with `Collection<Document>` any string
 * does (checked by `tsc --noEmit`; the calls sit in functions that never run).
 */
import type { ClientSession, Collection, Document, MongoClient } from 'mongodb';
import { describe, expectTypeOf, it } from 'vitest';
import { addToSetWithCapacity } from '../src/capacity-set.js';
import { claimOnce } from '../src/claim-once.js';
import { guardedDecrement, guardedDecrementAll } from '../src/guarded-decrement.js';
import { type IncrementOrPushResult, incrementOrPushArrayItem } from '../src/increment-or-push.js';
import type { AlreadyApplied } from '../src/op-log.js';
import type { ArrayPath, NumericPath, ScalarPath } from '../src/paths.js';
import { updateWithVersion } from '../src/update-with-version.js';

interface Line {
  sku: string;
  qty: number;
}
interface Product {
  _id: string;
  name: string;
  stock: number;
  inventory?: { available?: number; tags: string[] };
  lines: Line[];
  status: 'pending' | 'paid';
  version?: number;
}

describe('typed field paths', () => {
  it('lists the paths of each kind, dotted paths into embedded documents included', () => {
    expectTypeOf<NumericPath<Product>>().toEqualTypeOf<
      'stock' | 'version' | 'inventory.available'
    >();
    expectTypeOf<ArrayPath<Product>>().toEqualTypeOf<'lines' | 'inventory.tags'>();
    expectTypeOf<ScalarPath<Product>>().toEqualTypeOf<
      '_id' | 'name' | 'stock' | 'status' | 'version' | 'inventory.available'
    >();
    expectTypeOf<NumericPath<Document>>().toEqualTypeOf<string>();
  });

  it('rejects the misuses of the issue at compile time', () => {
    const check = (products: Collection<Product>, client: MongoClient) => {
      void guardedDecrement(products, { filter: { _id: 'p' }, field: 'stock', amount: 1 });
      // @ts-expect-error a typo of a field
      void guardedDecrement(products, { filter: { _id: 'p' }, field: 'stok', amount: 1 });
      // @ts-expect-error a non-numeric field
      void guardedDecrement(products, { filter: { _id: 'p' }, field: 'name', amount: 1 });
      void guardedDecrementAll(products, {
        client,
        // @ts-expect-error a typo of a field
        field: 'stok',
        items: [{ filter: { _id: 'p' }, amount: 1 }],
      });
      void claimOnce(products, { filter: { _id: 'p' }, field: 'status', to: 'paid' });
      // @ts-expect-error a typo of the state field
      void claimOnce(products, { filter: { _id: 'p' }, field: 'stauts', to: 'paid' });
      // @ts-expect-error `to` has the field's own type
      void claimOnce(products, { filter: { _id: 'p' }, field: 'status', to: 'payed' });
      // @ts-expect-error `from` has the field's own type
      void claimOnce(products, { filter: { _id: 'p' }, field: 'status', from: 1, to: 'paid' });
      void addToSetWithCapacity(products, {
        filter: { _id: 'p' },
        // @ts-expect-error `array` must be an array field
        array: 'name',
        member: 'u',
        counter: 'stock',
        capacity: 5,
      });
      void addToSetWithCapacity(products, {
        filter: { _id: 'p' },
        array: 'inventory.tags',
        member: 'u',
        // @ts-expect-error `counter` must be numeric
        counter: 'name',
        capacity: 'inventory.available',
      });
      void updateWithVersion(products, {
        filter: { _id: 'p' },
        update: () => null,
        // @ts-expect-error the version field is numeric
        versionField: 'name',
      });
      void incrementOrPushArrayItem(products, {
        filter: { _id: 'p' },
        array: 'lines',
        // @ts-expect-error match keys are the element's fields
        match: { skuu: 'a' },
      });
    };
    expectTypeOf(check).toBeFunction();
  });

  it('an untyped collection accepts any string', () => {
    const check = (plain: Collection<Document>, client: MongoClient) => {
      void guardedDecrement(plain, { filter: {}, field: 'anything.at.all', amount: 1 });
      void guardedDecrementAll(plain, { client, field: 'x', items: [{ filter: {}, amount: 1 }] });
      void claimOnce(plain, { filter: {}, field: 'stauts', to: 'paid' });
      void addToSetWithCapacity(plain, {
        filter: {},
        array: 'a',
        member: 1,
        counter: 'n',
        capacity: 'c',
      });
      void incrementOrPushArrayItem(plain, { filter: {}, array: 'x', match: { any: 1 } });
    };
    expectTypeOf(check).toBeFunction();
  });

  it('incrementOrPushArrayItem infers the element type from the array path', () => {
    const add = (products: Collection<Product>) =>
      incrementOrPushArrayItem(products, {
        filter: { _id: 'p' },
        array: 'lines',
        match: { sku: 'a' },
        inc: { qty: 1 },
      });
    expectTypeOf(add).returns.resolves.toEqualTypeOf<IncrementOrPushResult<Line>>();
  });

  it('exactOptionalPropertyTypes: opId and session may be explicitly undefined', () => {
    const check = async (
      products: Collection<Product>,
      opId: string | undefined,
      session: ClientSession | undefined,
    ) => {
      const result = await guardedDecrement(products, {
        filter: { _id: 'p' },
        field: 'stock',
        amount: 1,
        opId,
        session,
      });
      expectTypeOf(result).toMatchTypeOf<AlreadyApplied<Product> | { outcome: string }>();
      expectTypeOf(result.outcome).toEqualTypeOf<
        'decremented' | 'insufficient' | 'notFound' | 'alreadyApplied'
      >();
      const plain = await claimOnce(products, {
        filter: { _id: 'p' },
        field: 'status',
        to: 'paid',
        session,
      });
      expectTypeOf(plain.outcome).toEqualTypeOf<
        'claimed' | 'alreadyClaimed' | 'preconditionFailed' | 'notFound'
      >();
    };
    expectTypeOf(check).toBeFunction();
  });
});
