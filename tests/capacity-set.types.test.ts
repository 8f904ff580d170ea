/**
 * Type-level tests of addToSetWithCapacity's and removeFromSetWithCapacity's public API (checked
 * by `tsc --noEmit`; the calls sit in functions that never run, so no server is needed).
 * Type-only tests live in `*.types.test.ts` and are counted apart from the behavioural tests
 * (docs/testing.md).
 */
import { type Collection, type Document, ObjectId, type WithId } from 'mongodb';
import { describe, expectTypeOf, it } from 'vitest';
import {
  type AddToSetWithCapacityOptions,
  type AddToSetWithCapacityResult,
  addToSetWithCapacity,
  type RemoveFromSetWithCapacityResult,
  removeFromSetWithCapacity,
} from '../src/capacity-set.js';

interface Event {
  _id: string;
  capacity?: unknown;
  tickets_sold?: number;
  registration_ids?: string[];
  limits?: { seats: number };
  booking?: { attendees?: string[]; stats?: { sold: number } };
  _opIds?: string[];
  log?: { ids: string[] };
}

describe('capacity set types', () => {
  it('without opId the result cannot be alreadyApplied; with opId (literal or string) it can', () => {
    const check = async (events: Collection<Event>, requestId: string) => {
      const base = { filter: { _id: 'e1' }, array: 'registration_ids', member: 'u1' } as const;
      const plain = await addToSetWithCapacity(events, {
        ...base,
        counter: 'tickets_sold',
        capacity: 'capacity',
      });
      expectTypeOf(plain.outcome).toEqualTypeOf<'added' | 'alreadyMember' | 'full' | 'notFound'>();
      expectTypeOf(plain).toEqualTypeOf<AddToSetWithCapacityResult<Event>>();

      const once = await addToSetWithCapacity(events, {
        ...base,
        counter: 'tickets_sold',
        capacity: 5,
        opId: requestId,
      });
      expectTypeOf(once.outcome).toEqualTypeOf<
        'added' | 'alreadyMember' | 'full' | 'notFound' | 'alreadyApplied'
      >();
      if (once.outcome === 'alreadyApplied') {
        expectTypeOf(once.document).toEqualTypeOf<WithId<Event>>();
      }

      const removal = await removeFromSetWithCapacity(events, { ...base, counter: 'tickets_sold' });
      expectTypeOf(removal).toEqualTypeOf<RemoveFromSetWithCapacityResult<Event>>();
      const retried = await removeFromSetWithCapacity(events, {
        ...base,
        counter: 'tickets_sold',
        opId: 'cancel-1',
      });
      expectTypeOf(retried.outcome).toEqualTypeOf<
        'removed' | 'notMember' | 'notFound' | 'alreadyApplied'
      >();

      // Options built elsewhere may carry an opId: the result type says alreadyApplied is possible.
      const stored = {} as AddToSetWithCapacityOptions<Event>;
      const fromStored = await addToSetWithCapacity(events, stored);
      expectTypeOf(fromStored.outcome).toEqualTypeOf<
        'added' | 'alreadyMember' | 'full' | 'notFound' | 'alreadyApplied'
      >();
    };
    expectTypeOf(check).toBeFunction();
  });

  it('narrows on outcome; destructured document is absent only on notFound', () => {
    const { outcome, document } = {} as AddToSetWithCapacityResult<Event>;
    expectTypeOf(outcome).toEqualTypeOf<'added' | 'alreadyMember' | 'full' | 'notFound'>();
    expectTypeOf(document).toEqualTypeOf<WithId<Event> | undefined>();
    const check = (result: RemoveFromSetWithCapacityResult<Event>) => {
      if (result.outcome === 'notFound') {
        expectTypeOf(result.document).toEqualTypeOf<undefined>();
        return;
      }
      expectTypeOf(result.document.tickets_sold).toEqualTypeOf<number | undefined>();
    };
    expectTypeOf(check).toBeFunction();
  });

  it('the collection schema flows into the options and the document; members must be scalars', () => {
    const check = async (events: Collection<Event>, plain: Collection<Document>) => {
      const result = await addToSetWithCapacity(events, {
        filter: { _id: { $in: ['e1', 'e2'] } },
        array: 'registration_ids',
        member: new ObjectId(),
        counter: 'tickets_sold',
        capacity: 'capacity',
      });
      if (result.outcome === 'added') expectTypeOf(result.document._id).toEqualTypeOf<string>();
      const untyped = await removeFromSetWithCapacity(plain, {
        filter: { slug: 'launch' },
        array: 'ids',
        member: 1,
        counter: 'n',
      });
      if (untyped.outcome === 'removed')
        expectTypeOf(untyped.document).toEqualTypeOf<WithId<Document>>();
      await addToSetWithCapacity(events, {
        filter: { _id: 'e1' },
        array: 'registration_ids',
        // @ts-expect-error a query operator is not a member
        member: { $ne: null },
        counter: 'tickets_sold',
        capacity: 1,
      });
      await removeFromSetWithCapacity(events, {
        filter: { _id: 'e1' },
        array: 'registration_ids',
        member: 'u1',
        counter: 'tickets_sold',
        // @ts-expect-error capacity is not an option of removal (excess property check)
        capacity: 1,
      });
      // @ts-expect-error the counter must be named
      await addToSetWithCapacity(events, {
        filter: { _id: 'e1' },
        array: 'registration_ids',
        member: 'u',
        capacity: 1,
      });
    };
    expectTypeOf(check).toBeFunction();
  });
});
