/**
 * Type-level tests of updateWithVersion's public API (checked by `tsc --noEmit`; the calls sit in
 * functions that never run, so no server is needed). Type-only tests live in `*.types.test.ts`
 * and are counted apart from the behavioural tests (docs/testing.md).
 */
import type { Collection, UpdateFilter, WithId } from 'mongodb';
import { describe, expectTypeOf, it } from 'vitest';
import type { AlreadyApplied } from '../src/op-log.js';
import {
  type UpdateWithVersionResult,
  updateWithVersion,
  type VersionAttempt,
  type VersionConflictEvent,
} from '../src/update-with-version.js';

describe('updateWithVersion types', () => {
  interface Typed {
    _id: string;
    xp: number;
    version?: number;
  }

  it('the callback gets the typed document; without opId the result cannot be alreadyApplied', () => {
    const check = async (coll: Collection<Typed>) => {
      const result = await updateWithVersion(coll, {
        filter: { _id: 'a' },
        update: (doc, context) => {
          expectTypeOf(doc).toEqualTypeOf<WithId<Typed>>();
          expectTypeOf(context).toEqualTypeOf<VersionAttempt>();
          return doc.xp > 10 ? null : { $inc: { xp: 1 } };
        },
      });
      expectTypeOf(result).toEqualTypeOf<UpdateWithVersionResult<Typed>>();
      expectTypeOf(result.outcome).toEqualTypeOf<'updated' | 'skipped' | 'notFound'>();
      const { document, attempts } = result;
      expectTypeOf(document).toEqualTypeOf<WithId<Typed> | undefined>();
      expectTypeOf(attempts).toEqualTypeOf<number | undefined>();
      switch (result.outcome) {
        case 'updated':
        case 'skipped':
          expectTypeOf(result.document).toEqualTypeOf<WithId<Typed>>();
          expectTypeOf(result.attempts).toEqualTypeOf<number>();
          break;
        case 'notFound':
          expectTypeOf(result.document).toEqualTypeOf<undefined>();
          expectTypeOf(result.attempts).toEqualTypeOf<undefined>();
          break;
      }
    };
    expectTypeOf(check).toBeFunction();
  });

  it('with an opId the result may be alreadyApplied; the callback may be async and return null', () => {
    const check = async (coll: Collection<Typed>, opId: string) => {
      const result = await updateWithVersion(coll, {
        filter: { _id: 'a' },
        opId,
        update: async (): Promise<UpdateFilter<Typed> | null> => null,
      });
      expectTypeOf(result).toEqualTypeOf<UpdateWithVersionResult<Typed> | AlreadyApplied<Typed>>();
    };
    expectTypeOf(check).toBeFunction();
  });

  it('a callback returning something other than an update or null does not compile', () => {
    const check = (coll: Collection<Typed>) =>
      updateWithVersion(coll, {
        filter: { _id: 'a' },
        // @ts-expect-error a number is not an update
        update: () => 5,
      });
    expectTypeOf(check).toBeFunction();
  });

  it('the conflict event carries the attempt, the version it expected and the delay', () => {
    expectTypeOf<VersionConflictEvent>().toEqualTypeOf<{
      readonly attempt: number;
      readonly expectedVersion: number;
      readonly delayMs: number;
    }>();
  });
});
