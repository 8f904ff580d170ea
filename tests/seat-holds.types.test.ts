/**
 * Type-level tests of the seat-hold API (checked by `tsc --noEmit`; the calls sit in functions
 * that never run, so no server is needed).
 */
import type { Collection, WithId } from 'mongodb';
import { describe, expectTypeOf, it } from 'vitest';
import {
  confirmPlace,
  type HoldPlaceResult,
  holdPlace,
  type PlaceHold,
  releasePlace,
} from '../src/seat-holds.js';

interface Event {
  _id: string;
  capacity: number;
  tickets_sold: number;
  registration_ids: string[];
  name: string;
}

const set = { filter: { _id: 'e1' }, array: 'registration_ids', counter: 'tickets_sold' } as const;

describe('seat hold types', () => {
  it('outcomes narrow: held has expiresAt and the hold; alreadyHeld the hold; notFound no document', () => {
    const check = async (events: Collection<Event>) => {
      const r = await holdPlace(events, {
        ...set,
        capacity: 'capacity',
        member: 'u1',
        holdId: 'h1',
        ttlMs: 1000,
      });
      expectTypeOf(r).toEqualTypeOf<HoldPlaceResult<Event>>();
      expectTypeOf(r.outcome).toEqualTypeOf<
        | 'held'
        | 'alreadyHeld'
        | 'alreadySettled'
        | 'alreadyMember'
        | 'full'
        | 'tooManyHolds'
        | 'notFound'
      >();
      if (r.outcome === 'held') {
        expectTypeOf(r.expiresAt).toEqualTypeOf<Date>();
        expectTypeOf(r.document).toEqualTypeOf<WithId<Event>>();
      }
      if (r.outcome === 'alreadyHeld') expectTypeOf(r.hold).toEqualTypeOf<PlaceHold>();
      if (r.outcome === 'notFound') expectTypeOf(r.document).toEqualTypeOf<undefined>();
    };
    expectTypeOf(check).toBeFunction();
  });

  it('confirm and release: their own winning outcome only', () => {
    const check = async (events: Collection<Event>) => {
      const c = await confirmPlace(events, { ...set, holdId: 'h1' });
      expectTypeOf(c.outcome).toEqualTypeOf<
        | 'confirmed'
        | 'alreadyConfirmed'
        | 'alreadyReleased'
        | 'expired'
        | 'unknownHold'
        | 'notFound'
      >();
      const r = await releasePlace(events, { ...set, holdId: 'h1' });
      expectTypeOf(r.outcome).toEqualTypeOf<
        'released' | 'alreadyConfirmed' | 'alreadyReleased' | 'expired' | 'unknownHold' | 'notFound'
      >();
    };
    expectTypeOf(check).toBeFunction();
  });

  it('paths are checked against the schema', () => {
    const check = async (events: Collection<Event>) => {
      // @ts-expect-error: 'name' holds no array
      await confirmPlace(events, { ...set, array: 'name', holdId: 'h1' });
      // @ts-expect-error: 'name' holds no number
      await releasePlace(events, { ...set, counter: 'name', holdId: 'h1' });
    };
    expectTypeOf(check).toBeFunction();
  });
});
