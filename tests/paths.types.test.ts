/**
 * Type-level tests of the typed field paths (src/paths.ts) as the primitives use them, and of
 * the call shapes under `exactOptionalPropertyTypes` (checked by `tsc --noEmit`; the calls sit
 * in functions that never run, so no server is needed). With a typed collection only paths of
 * the right kind compile; with `Collection<Document>` any string does; a path typed plain
 * `string` is left to the run-time validation.
 */
import type { ClientSession, Collection, Document, MongoClient, ObjectId } from 'mongodb';
import { describe, expectTypeOf, it } from 'vitest';
import { applyProgress } from '../src/apply-progress.js';
import { addToSetWithCapacity, removeFromSetWithCapacity } from '../src/capacity-set.js';
import { claimOnce } from '../src/claim-once.js';
import { guardedDecrement, guardedDecrementAll } from '../src/guarded-decrement.js';
import {
  type IdempotencyContext,
  type IdempotencyRecord,
  type IdempotencyTransactionContext,
  withIdempotencyKey,
} from '../src/idempotency.js';
import { type IncrementOrPushResult, incrementOrPushArrayItem } from '../src/increment-or-push.js';
import type { AlreadyApplied } from '../src/op-log.js';
import type {
  ArrayElementAt,
  ArrayPath,
  CheckedPath,
  NumericPath,
  PathValue,
  ScalarAt,
  ScalarPath,
} from '../src/paths.js';
import { updateWithVersion } from '../src/update-with-version.js';

interface Line {
  sku: string;
  qty: number;
  note?: { text: string };
}
interface Product {
  _id: string;
  name: string;
  stock: number;
  reserved?: number | null;
  inventory?: { available?: number; tags: string[] };
  lines: Line[];
  status: 'pending' | 'paid' | 'shipped';
  createdAt: Date;
  ref?: ObjectId;
  version?: number;
  extra?: unknown;
  _opIds?: string[];
}
/** Seven levels of embedded documents: deeper than MaxPathDepth (6). */
interface Deep {
  _id: string;
  a: { b: { c: { d: { e: { f: { g: number } } } } } };
}

describe('typed field paths', () => {
  it('lists the paths of each kind, dotted paths into embedded documents included', () => {
    expectTypeOf<NumericPath<Product>>().toEqualTypeOf<
      'stock' | 'reserved' | 'version' | 'inventory.available' | 'extra' | `extra.${string}`
    >();
    expectTypeOf<ArrayPath<Product>>().toEqualTypeOf<
      'lines' | 'inventory.tags' | '_opIds' | 'extra' | `extra.${string}`
    >();
    expectTypeOf<ScalarPath<Product>>().toEqualTypeOf<
      | '_id'
      | 'name'
      | 'stock'
      | 'reserved'
      | 'status'
      | 'createdAt'
      | 'ref'
      | 'version'
      | 'inventory.available'
      | 'extra'
      | `extra.${string}`
    >();
    // Never through arrays, never into BSON values or Dates.
    expectTypeOf<'lines.qty'>().not.toMatchTypeOf<NumericPath<Product>>();
    expectTypeOf<'createdAt.getTime'>().not.toMatchTypeOf<ScalarPath<Product>>();
    // Below the depth limit, any continuation of a listed embedded document is accepted.
    expectTypeOf<'a.b.c.d.e.f.g'>().toMatchTypeOf<NumericPath<Deep>>();
    expectTypeOf<'a.b.c.d.e.f.anything'>().toMatchTypeOf<NumericPath<Deep>>();
    expectTypeOf<'a.b.x'>().not.toMatchTypeOf<NumericPath<Deep>>();
    // Untyped schemas: any string.
    expectTypeOf<NumericPath<Document>>().toEqualTypeOf<string>();
    // biome-ignore lint/suspicious/noExplicitAny: an `any` schema is one of the cases
    expectTypeOf<ArrayPath<any>>().toEqualTypeOf<string>();
    expectTypeOf<ScalarPath<Record<string, unknown>>>().toEqualTypeOf<string>();
  });

  it('values at paths: the state field type, the element type', () => {
    expectTypeOf<PathValue<Product, 'inventory.available'>>().toEqualTypeOf<number | undefined>();
    expectTypeOf<ScalarAt<Product, 'status'>>().toEqualTypeOf<'pending' | 'paid' | 'shipped'>();
    expectTypeOf<ScalarAt<Product, 'reserved'>>().toEqualTypeOf<number>();
    expectTypeOf<ScalarAt<Document, 'x'>>().toEqualTypeOf<
      import('../src/validate.js').ScalarValue
    >();
    expectTypeOf<ArrayElementAt<Product, 'lines'>>().toEqualTypeOf<Line>();
    expectTypeOf<ArrayElementAt<Document, 'lines'>>().toEqualTypeOf<Document>();
    expectTypeOf<CheckedPath<'stock', NumericPath<Product>>>().toEqualTypeOf<'stock'>();
    expectTypeOf<CheckedPath<'stok', NumericPath<Product>>>().toEqualTypeOf<NumericPath<Product>>();
    expectTypeOf<CheckedPath<string, NumericPath<Product>>>().toEqualTypeOf<string>();
  });

  it('rejects the misuses of the issue at compile time', () => {
    const check = (products: Collection<Product>, client: MongoClient) => {
      void guardedDecrement(products, { filter: { _id: 'p' }, field: 'stock', amount: 1 });
      void guardedDecrement(products, {
        filter: { _id: 'p' },
        field: 'inventory.available',
        amount: 1,
      });
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
      void claimOnce(products, {
        filter: { _id: 'p' },
        field: 'status',
        from: 'pending',
        to: 'paid',
      });
      // @ts-expect-error a typo of the state field
      void claimOnce(products, { filter: { _id: 'p' }, field: 'stauts', to: 'paid' });
      // @ts-expect-error `to` has the field's own type
      void claimOnce(products, { filter: { _id: 'p' }, field: 'status', to: 'payed' });
      // @ts-expect-error `from` has the field's own type
      void claimOnce(products, { filter: { _id: 'p' }, field: 'status', from: 1, to: 'paid' });
      // @ts-expect-error an array is not a state field
      void claimOnce(products, { filter: { _id: 'p' }, field: 'lines', to: 'paid' });
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
      void addToSetWithCapacity(products, {
        filter: { _id: 'p' },
        array: 'inventory.tags',
        member: 'u',
        counter: 'stock',
        // @ts-expect-error a capacity path must be numeric
        capacity: 'status',
      });
      void removeFromSetWithCapacity(products, {
        filter: { _id: 'p' },
        array: 'inventory.tags',
        member: 'u',
        // @ts-expect-error `counter` must be numeric
        counter: 'createdAt',
      });
      void updateWithVersion(products, {
        filter: { _id: 'p' },
        update: () => null,
        // @ts-expect-error the version field is numeric
        versionField: 'name',
      });
      void applyProgress(products, {
        filter: { _id: 'p' },
        // @ts-expect-error counters are numeric paths
        inc: { name: 1 },
      });
      void applyProgress(products, {
        filter: { _id: 'p' },
        inc: { stock: 1 },
        // @ts-expect-error the level is stored in a numeric field
        level: { field: 'name', counter: 'stock', thresholds: [1] },
      });
      void applyProgress(products, {
        filter: { _id: 'p' },
        inc: { stock: 1 },
        // @ts-expect-error badges are kept in an array field
        badges: { field: 'name', rules: [{ badge: 'b', counter: 'stock', atLeast: 1 }] },
      });
      void applyProgress(products, {
        filter: { _id: 'p' },
        inc: { stock: 1 },
        // @ts-expect-error a rule's counter is a numeric path
        badges: { field: 'lines', rules: [{ badge: 'b', counter: 'stok', atLeast: 1 }] },
      });
      void incrementOrPushArrayItem(products, {
        filter: { _id: 'p' },
        // @ts-expect-error `array` must be an array field
        array: 'name',
        match: { sku: 'a' },
      });
      void incrementOrPushArrayItem(products, {
        filter: { _id: 'p' },
        array: 'lines',
        // @ts-expect-error match keys are the element's scalar fields
        match: { skuu: 'a' },
      });
      void incrementOrPushArrayItem(products, {
        filter: { _id: 'p' },
        array: 'lines',
        match: { sku: 'a' },
        // @ts-expect-error counters are the element's numeric fields
        inc: { sku: 1 },
      });
      void incrementOrPushArrayItem(products, {
        filter: { _id: 'p' },
        array: 'lines',
        match: { sku: 'a' },
        inc: { qty: 1 },
        // @ts-expect-error caps are the element's numeric fields
        max: { note: 1 },
      });
    };
    expectTypeOf(check).toBeFunction();
  });

  it('an untyped collection accepts any string, as before', () => {
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
      void removeFromSetWithCapacity(plain, { filter: {}, array: 'a', member: 1, counter: 'n' });
      void incrementOrPushArrayItem(plain, { filter: {}, array: 'x', match: { any: 1 } });
      void applyProgress(plain, {
        filter: {},
        inc: { 'any.path': 1 },
        level: { field: 'l', counter: 'c', thresholds: [1] },
        badges: { field: 'b', rules: [{ badge: 'x', counter: 'c', atLeast: 1 }] },
      });
      void updateWithVersion(plain, { filter: {}, update: () => null, versionField: 'v' });
    };
    expectTypeOf(check).toBeFunction();
  });

  it('a path typed plain string (options built in a variable, mapped rules) is left to run time', () => {
    const check = (products: Collection<Product>, field: string) => {
      const options = { filter: { _id: 'p' }, field: 'stock', amount: 1 };
      expectTypeOf(options.field).toEqualTypeOf<string>();
      void guardedDecrement(products, options);
      void guardedDecrement(products, { filter: { _id: 'p' }, field, amount: 1 });
      void applyProgress(products, {
        filter: { _id: 'p' },
        inc: { stock: 1 },
        badges: {
          field: 'lines',
          rules: [1, 10].map((atLeast) => ({ badge: `b${atLeast}`, counter: 'stock', atLeast })),
        },
      });
      // With a path not known at compile time, `to` is any scalar.
      void claimOnce(products, { filter: { _id: 'p' }, field, to: 42 });
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
    const once = (products: Collection<Product>, opId: string) =>
      incrementOrPushArrayItem(products, {
        filter: { _id: 'p' },
        array: 'lines',
        match: { sku: 'a' },
        opId,
      });
    expectTypeOf(once).returns.resolves.toEqualTypeOf<
      IncrementOrPushResult<Line> | AlreadyApplied<Product>
    >();
    // An untyped collection: the element is a Document, or the type the caller names.
    const plain = (carts: Collection) =>
      incrementOrPushArrayItem(carts, { filter: {}, array: 'lines', match: { sku: 'a' } });
    expectTypeOf(plain).returns.resolves.toEqualTypeOf<IncrementOrPushResult<Document>>();
    const named = (carts: Collection) =>
      incrementOrPushArrayItem<Document, Line>(carts, {
        filter: {},
        array: 'lines',
        match: { sku: 'a' },
      });
    expectTypeOf(named).returns.resolves.toEqualTypeOf<IncrementOrPushResult<Line>>();
  });
});

describe('exactOptionalPropertyTypes: undefined options pick the right form', () => {
  it('opId: string | undefined admits alreadyApplied; absent or undefined does not', () => {
    const check = async (
      products: Collection<Product>,
      opId: string | undefined,
      session: ClientSession | undefined,
    ) => {
      const maybe = await guardedDecrement(products, {
        filter: { _id: 'p' },
        field: 'stock',
        amount: 1,
        opId,
        session,
      });
      expectTypeOf(maybe.outcome).toEqualTypeOf<
        'decremented' | 'insufficient' | 'notFound' | 'alreadyApplied'
      >();
      const none = await guardedDecrement(products, {
        filter: { _id: 'p' },
        field: 'stock',
        amount: 1,
        opId: undefined,
        session,
      });
      expectTypeOf(none.outcome).toEqualTypeOf<'decremented' | 'insufficient' | 'notFound'>();
      const claim = await claimOnce(products, {
        filter: { _id: 'p' },
        field: 'status',
        to: 'paid',
        session,
        opIdLog: undefined,
      });
      expectTypeOf(claim.outcome).toEqualTypeOf<
        'claimed' | 'alreadyClaimed' | 'preconditionFailed' | 'notFound'
      >();
      const award = await applyProgress(products, {
        filter: { _id: 'p' },
        inc: { stock: 1 },
        opId,
      });
      expectTypeOf(award.outcome).toEqualTypeOf<'applied' | 'notFound' | 'alreadyApplied'>();
      const version = await updateWithVersion(products, {
        filter: { _id: 'p' },
        update: () => null,
        session,
        versionField: undefined,
      });
      expectTypeOf(version.outcome).toEqualTypeOf<'updated' | 'skipped' | 'notFound'>();
      const seat = await addToSetWithCapacity(products, {
        filter: { _id: 'p' },
        array: 'inventory.tags',
        member: 'u',
        counter: 'stock',
        capacity: 3,
        opId,
        session,
      });
      expectTypeOf(seat.outcome).toEqualTypeOf<
        'added' | 'alreadyMember' | 'full' | 'notFound' | 'alreadyApplied'
      >();
      void incrementOrPushArrayItem(products, {
        filter: { _id: 'p' },
        array: 'lines',
        match: { sku: 'a' },
        opId,
        session,
        inc: undefined,
      });
    };
    expectTypeOf(check).toBeFunction();
  });

  it('guardedDecrementAll: the other mode may be given as undefined; both at once do not compile', () => {
    const check = (products: Collection<Product>, client: MongoClient, session: ClientSession) => {
      const items = [{ filter: { _id: 'p' }, amount: 1 }];
      void guardedDecrementAll(products, { client, session: undefined, field: 'stock', items });
      void guardedDecrementAll(products, {
        client,
        transaction: undefined,
        field: 'stock',
        items,
      });
      void guardedDecrementAll(products, {
        session,
        client: undefined,
        transaction: undefined,
        field: 'stock',
        items,
      });
      // @ts-expect-error the caller's transaction or one of its own, not both
      void guardedDecrementAll(products, { client, session, field: 'stock', items });
      // @ts-expect-error one of them is needed
      void guardedDecrementAll(products, { field: 'stock', items });
    };
    expectTypeOf(check).toBeFunction();
  });

  it('withIdempotencyKey: client picks the mode, client: undefined is the plain mode', () => {
    const check = (keys: Collection<IdempotencyRecord>, client: MongoClient) => {
      void withIdempotencyKey(keys, {
        key: 'k',
        client: undefined,
        transaction: undefined,
        fn: async (context) => {
          expectTypeOf(context).toEqualTypeOf<IdempotencyContext>();
          return 1;
        },
      });
      void withIdempotencyKey(keys, {
        key: 'k',
        client,
        transaction: undefined,
        fn: async (context) => {
          expectTypeOf(context).toEqualTypeOf<IdempotencyTransactionContext>();
          return 1;
        },
      });
      // @ts-expect-error a transaction budget needs the transaction mode
      void withIdempotencyKey(keys, { key: 'k', transaction: {}, fn: async () => 1 });
      // @ts-expect-error the key is a string: reported once, against the transaction mode
      void withIdempotencyKey(keys, { key: 1, client, fn: async () => 1 });
    };
    expectTypeOf(check).toBeFunction();
  });
});
