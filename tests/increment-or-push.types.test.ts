/**
 * Type tests for incrementOrPushArrayItem's public API: the result narrows on `outcome`, and the
 * options reject what the runtime would (checked by `tsc --noEmit`; the runtime part is a no-op).
 */
import type { ClientSession, Collection, Document, ObjectId } from 'mongodb';
import { describe, expectTypeOf, it } from 'vitest';
import {
  type IncrementOrPushOptions,
  type IncrementOrPushOutcome,
  type IncrementOrPushResult,
  incrementOrPushArrayItem,
} from '../src/increment-or-push.js';
import type { AlreadyApplied } from '../src/op-log.js';
import type { ScalarValue } from '../src/validate.js';

interface CartLine {
  courseId: string;
  quantity: number;
  title?: string;
}
interface Cart {
  _id: ObjectId;
  userId: string;
  courses: CartLine[];
}
interface GuestSession {
  _id: string;
  data?: { cart?: CartLine[] };
}

describe('incrementOrPushArrayItem types', () => {
  it('resolves to a union discriminated on outcome', () => {
    expectTypeOf<IncrementOrPushOutcome>().toEqualTypeOf<
      'incremented' | 'pushed' | 'limitReached' | 'notFound'
    >();
    const add = (carts: Collection<Cart>) =>
      incrementOrPushArrayItem<Cart, CartLine>(carts, {
        filter: { userId: 'u1' },
        array: 'courses',
        match: { courseId: 'c1' },
      });
    expectTypeOf(add).returns.resolves.toEqualTypeOf<IncrementOrPushResult<CartLine>>();
  });

  it('adds alreadyApplied to the result only when an opId may be given', () => {
    const once = (carts: Collection<Cart>) =>
      incrementOrPushArrayItem<Cart, CartLine>(carts, {
        filter: { userId: 'u1' },
        array: 'courses',
        match: { courseId: 'c1' },
        opId: 'request-1',
      });
    expectTypeOf(once).returns.resolves.toEqualTypeOf<
      IncrementOrPushResult<CartLine> | AlreadyApplied<Cart>
    >();
    const maybe = (carts: Collection<Cart>, opId: string | undefined) =>
      incrementOrPushArrayItem<Cart, CartLine>(carts, {
        filter: { userId: 'u1' },
        array: 'courses',
        match: { courseId: 'c1' },
        ...(opId === undefined ? {} : { opId }),
      });
    expectTypeOf(maybe).returns.resolves.toEqualTypeOf<
      IncrementOrPushResult<CartLine> | AlreadyApplied<Cart>
    >();
  });

  it('narrows: item on incremented/pushed/limitReached, created only on pushed, nothing on notFound', () => {
    const narrow = (result: IncrementOrPushResult<CartLine>) => {
      switch (result.outcome) {
        case 'incremented':
        case 'limitReached':
          expectTypeOf(result.item).toEqualTypeOf<CartLine>();
          expectTypeOf(result.created).toEqualTypeOf<undefined>();
          break;
        case 'pushed':
          expectTypeOf(result.item).toEqualTypeOf<CartLine>();
          expectTypeOf(result.created).toEqualTypeOf<boolean>();
          break;
        case 'notFound':
          expectTypeOf(result.item).toEqualTypeOf<undefined>();
          expectTypeOf(result.created).toEqualTypeOf<undefined>();
          break;
      }
    };
    expectTypeOf(narrow).toBeFunction();
  });

  it('destructuring narrows too (zod-style `?: never`)', () => {
    const destructure = ({ outcome, item, created }: IncrementOrPushResult<CartLine>) => {
      if (outcome === 'pushed') {
        expectTypeOf(item).toEqualTypeOf<CartLine>();
        expectTypeOf(created).toEqualTypeOf<boolean>();
      }
      if (outcome === 'notFound') expectTypeOf(item).toEqualTypeOf<undefined>();
      // Before narrowing, item may be absent and created only exists on pushed.
      expectTypeOf(item).toEqualTypeOf<CartLine | undefined>();
      expectTypeOf(created).toEqualTypeOf<boolean | undefined>();
    };
    expectTypeOf(destructure).toBeFunction();
  });

  it('items default to Document', () => {
    expectTypeOf<IncrementOrPushResult>().toEqualTypeOf<IncrementOrPushResult<Document>>();
  });

  it('options: required fields, scalar identity values, numeric counters, typed filter', () => {
    const carts = {} as Collection<Cart>;
    const sessions = {} as Collection<GuestSession>;
    const session = {} as ClientSession;
    const check = () => {
      void incrementOrPushArrayItem(carts, {
        filter: { userId: 'u1' },
        array: 'courses',
        match: { courseId: 'c1' },
        inc: { quantity: 2 },
        fields: { title: 'Intro', price: { amount: 10, currency: 'EUR' } },
        max: { quantity: 10 },
        upsert: true,
        session,
      });
      // A string _id in the filter, typed by the collection's schema; a dotted array path.
      void incrementOrPushArrayItem(sessions, {
        filter: { _id: 'sess-1' },
        array: 'data.cart',
        match: { courseId: 'c1' },
      });
      // Every scalar kind as an identity value (an untyped element accepts any field names).
      void incrementOrPushArrayItem({} as Collection, {
        filter: { userId: 'u1' },
        array: 'data.cart',
        match: { courseId: 'c1', size: 2, gift: false, at: new Date() },
      });
      // @ts-expect-error filter, array and match are required
      void incrementOrPushArrayItem(carts, { filter: { userId: 'u1' }, array: 'courses' });
      void incrementOrPushArrayItem(carts, {
        filter: { userId: 'u1' },
        array: 'courses',
        // @ts-expect-error identity values are scalars: no operator objects
        match: { courseId: { $ne: null } },
      });
      void incrementOrPushArrayItem(carts, {
        filter: { userId: 'u1' },
        array: 'courses',
        // @ts-expect-error identity values are scalars: no arrays
        match: { courseId: ['c1'] },
      });
      void incrementOrPushArrayItem(carts, {
        filter: { userId: 'u1' },
        array: 'courses',
        match: { courseId: 'c1' },
        // @ts-expect-error counters are numbers
        inc: { quantity: '1' },
      });
      void incrementOrPushArrayItem(carts, {
        filter: { userId: 'u1' },
        array: 'courses',
        match: { courseId: 'c1' },
        // @ts-expect-error upsert is a boolean
        upsert: 'yes',
      });
      void incrementOrPushArrayItem(carts, {
        // @ts-expect-error the filter is typed by the collection (userId is a string)
        filter: { userId: 42 },
        array: 'courses',
        match: { courseId: 'c1' },
      });
      void incrementOrPushArrayItem(carts, {
        filter: { userId: 'u1' },
        array: 'courses',
        match: { courseId: 'c1' },
        // @ts-expect-error unknown options are rejected (typo of `inc`)
        increment: { quantity: 1 },
      });
    };
    expectTypeOf(check).toBeFunction();
  });

  it('options are readonly', () => {
    expectTypeOf<IncrementOrPushOptions['match']>().toEqualTypeOf<
      Readonly<Record<string, ScalarValue>>
    >();
    const options: IncrementOrPushOptions = { filter: { a: 1 }, array: 'x', match: { k: 'v' } };
    // @ts-expect-error options are readonly
    options.array = 'y';
  });
});
