/**
 * Type-level tests of applyProgress's public API (checked by `tsc --noEmit`; the calls sit in
 * functions that never run, so no server is needed). Type-only tests live in `*.types.test.ts`
 * and are counted apart from the behavioural tests (docs/testing.md).
 */
import type { Collection, WithId } from 'mongodb';
import { describe, expectTypeOf, it } from 'vitest';
import {
  type ApplyProgressOnceResult,
  type ApplyProgressOptions,
  type ApplyProgressResult,
  applyProgress,
} from '../src/apply-progress.js';

/** The student of seed 001, as an application would type it. */
interface Student {
  _id: string;
  name?: string;
  xp?: number;
  auraPoints?: number;
  submissions?: number;
  streak?: unknown;
  level?: number;
  badges?: string[];
  stats?: { xp?: number; submissions?: number };
  progress?: { level?: number; badges?: string[] };
  _opIds?: string[];
  meta?: { ops?: string[] };
}

describe('types', () => {
  it('without opId the result is applied | notFound; with one, alreadyApplied is added', () => {
    const coll = {} as Collection<Student>;
    const plain = () => applyProgress(coll, { filter: { _id: 's1' }, inc: { xp: 10 } });
    expectTypeOf(plain).returns.resolves.toEqualTypeOf<ApplyProgressResult<Student>>();
    const once = () => applyProgress(coll, { filter: { _id: 's1' }, inc: { xp: 10 }, opId: 'r1' });
    expectTypeOf(once).returns.resolves.toEqualTypeOf<ApplyProgressOnceResult<Student>>();
    const maybe = (opId: string | undefined) =>
      applyProgress(coll, { filter: { _id: 's1' }, inc: { xp: 10 }, ...(opId ? { opId } : {}) });
    expectTypeOf(maybe).returns.resolves.toEqualTypeOf<ApplyProgressOnceResult<Student>>();
    expectTypeOf<ApplyProgressResult<Student>['outcome']>().toEqualTypeOf<'applied' | 'notFound'>();
    expectTypeOf<ApplyProgressOnceResult<Student>['outcome']>().toEqualTypeOf<
      'applied' | 'notFound' | 'alreadyApplied'
    >();
  });

  it('narrows on outcome, and destructuring narrows too', () => {
    const narrow = (result: ApplyProgressOnceResult<Student>) => {
      if (result.outcome === 'applied') {
        expectTypeOf(result.document).toEqualTypeOf<WithId<Student>>();
        expectTypeOf(result.levelsGained).toEqualTypeOf<number[]>();
        expectTypeOf(result.badgesEarned).toEqualTypeOf<string[]>();
      } else if (result.outcome === 'alreadyApplied') {
        expectTypeOf(result.document).toEqualTypeOf<WithId<Student>>();
        expectTypeOf(result.levelsGained).toEqualTypeOf<undefined>();
      } else {
        expectTypeOf(result.document).toEqualTypeOf<undefined>();
      }
    };
    expectTypeOf(narrow).toBeFunction();
    const { outcome, document, levelsGained } = {} as ApplyProgressOnceResult<Student>;
    expectTypeOf(outcome).toEqualTypeOf<'applied' | 'notFound' | 'alreadyApplied'>();
    expectTypeOf(document).toEqualTypeOf<WithId<Student> | undefined>();
    expectTypeOf(levelsGained).toEqualTypeOf<number[] | undefined>();
  });

  it('options: typed filter, numeric counters, readonly rule lists, no unknown options', () => {
    const coll = {} as Collection<Student>;
    const check = () => {
      void applyProgress(coll, {
        filter: { _id: 's1' },
        inc: { xp: 10, 'stats.submissions': 1 },
        level: { field: 'level', counter: 'xp', thresholds: [100, 500, 1400] },
        // A readonly (`as const`) rule list, as apply-progress.test.ts declares its badges.
        badges: {
          field: 'badges',
          rules: [{ badge: 'first-submission', counter: 'submissions', atLeast: 1 }],
        } as const,
        opId: 'r1',
        opIdLog: { field: '_ops', size: 100 },
      });
      // @ts-expect-error filter and inc are required
      void applyProgress(coll, { filter: { _id: 's1' } });
      // @ts-expect-error counters are numbers
      void applyProgress(coll, { filter: { _id: 's1' }, inc: { xp: '10' } });
      // @ts-expect-error the filter is typed by the collection (_id is a string)
      void applyProgress(coll, { filter: { _id: 1 }, inc: { xp: 10 } });
      // @ts-expect-error unknown options are rejected (typo of `level`)
      void applyProgress(coll, { filter: { _id: 's1' }, inc: { xp: 10 }, levels: LEVEL });
      void applyProgress(coll, {
        filter: { _id: 's1' },
        inc: { xp: 10 },
        // @ts-expect-error a badge rule needs badge, counter and atLeast
        badges: { field: 'badges', rules: [{ badge: 'b', counter: 'xp' }] },
      });
    };
    expectTypeOf(check).toBeFunction();
    const options: ApplyProgressOptions<Student> = { filter: { _id: 's1' }, inc: { xp: 1 } };
    // @ts-expect-error options are readonly
    options.inc = { xp: 2 };
  });
});
