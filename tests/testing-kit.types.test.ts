/**
 * Type-level tests of `mongo-atomics/testing` (checked by `tsc --noEmit`; the calls sit in
 * functions that never run, so no server is needed).
 */
import type { MongoClient } from 'mongodb';
import { describe, expectTypeOf, it } from 'vitest';
import type { ClaimOnceResult } from '../src/claim-once.js';
import {
  assertInvariant,
  type Barrier,
  barrier,
  type FailPointSpec,
  type NaiveVersusSafeResult,
  naiveVersusSafe,
  type RaceClients,
  type RaceReport,
  race,
  raceClients,
  type StormRun,
  type Violations,
  withFailPoint,
} from '../src/testing/index.js';

/** Declares type assertions without running them. */
const typesOnly = (_check: (client: MongoClient) => void): void => {};

interface Order {
  _id: string;
  status: string;
}

describe('mongo-atomics/testing types', () => {
  it('race infers the report from the call, unwrapping promises', () => {
    typesOnly(() => {
      expectTypeOf(race(3, async () => 1)).toEqualTypeOf<Promise<RaceReport<number>>>();
      expectTypeOf(race(3, () => 'x' as const)).toEqualTypeOf<Promise<RaceReport<'x'>>>();
      expectTypeOf(race(3, async () => ({}) as ClaimOnceResult<Order>)).toEqualTypeOf<
        Promise<RaceReport<ClaimOnceResult<Order>>>
      >();
    });
  });

  it('race passes the index and a sync barrier, and types the outcome callback by the value', () => {
    typesOnly(() => {
      void race(
        2,
        (index, context) => {
          expectTypeOf(index).toEqualTypeOf<number>();
          expectTypeOf(context.sync).toEqualTypeOf<() => Promise<void>>();
          return Promise.resolve({ sold: true });
        },
        {
          outcome: (value, index) => {
            expectTypeOf(value).toEqualTypeOf<{ sold: boolean }>();
            expectTypeOf(index).toEqualTypeOf<number>();
            return value.sold ? 'sold' : 'refused';
          },
        },
      );
      // @ts-expect-error the outcome callback must return a string
      void race(2, () => 1, { outcome: () => 1 });
    });
  });

  it('a race report is read-only and its tally maps strings to numbers', () => {
    type Report = RaceReport<{ outcome: 'a' | 'b' }>;
    expectTypeOf<Report['settled']>().toEqualTypeOf<
      readonly PromiseSettledResult<{ outcome: 'a' | 'b' }>[]
    >();
    expectTypeOf<Report['values']>().toEqualTypeOf<readonly { outcome: 'a' | 'b' }[]>();
    expectTypeOf<Report['errors']>().toEqualTypeOf<readonly unknown[]>();
    expectTypeOf<Report['tally']>().toEqualTypeOf<Readonly<Record<string, number>>>();
    expectTypeOf<Report['count']>().toEqualTypeOf<(outcome: string) => number>();
  });

  it('barrier is callable and exposes its state read-only', () => {
    expectTypeOf(barrier).returns.toEqualTypeOf<Barrier>();
    expectTypeOf<Barrier>().toBeCallableWith();
    expectTypeOf<ReturnType<Barrier>>().toEqualTypeOf<Promise<void>>();
    const check = (gate: Barrier) => {
      // @ts-expect-error read-only
      gate.parties = 3;
    };
    expectTypeOf(check).toBeFunction();
  });

  it('raceClients resolves to clients and close; the pool size is not an option', () => {
    typesOnly(() => {
      expectTypeOf(raceClients('mongodb://x', 2)).toEqualTypeOf<Promise<RaceClients>>();
      expectTypeOf<RaceClients['clients']>().toEqualTypeOf<readonly MongoClient[]>();
      // @ts-expect-error maxPoolSize is fixed to 1
      void raceClients('mongodb://x', 2, { maxPoolSize: 5 });
      void raceClients('mongodb://x', 2, { appName: 'race', monitorCommands: true });
    });
  });

  it('naiveVersusSafe threads the state type through setup, the calls and the check', () => {
    typesOnly(() => {
      const result = naiveVersusSafe({
        invariant: 'one claim',
        calls: 10,
        setup: async (run) => {
          expectTypeOf(run).toEqualTypeOf<StormRun>();
          return { collection: 'c' as const };
        },
        naive: async (_index, { state, sync }) => {
          expectTypeOf(state).toEqualTypeOf<{ collection: 'c' }>();
          expectTypeOf(sync).toEqualTypeOf<() => Promise<void>>();
          return true;
        },
        safe: async (_index, { state }) => {
          expectTypeOf(state).toEqualTypeOf<{ collection: 'c' }>();
          return { outcome: 'claimed' as const };
        },
        check: (state, report, run) => {
          expectTypeOf(state).toEqualTypeOf<{ collection: 'c' }>();
          expectTypeOf(report).toEqualTypeOf<
            RaceReport<boolean> | RaceReport<{ outcome: 'claimed' }>
          >();
          expectTypeOf(run).toEqualTypeOf<StormRun>();
          return [];
        },
      });
      expectTypeOf(result).toEqualTypeOf<
        Promise<NaiveVersusSafeResult<boolean, { outcome: 'claimed' }>>
      >();
    });
  });

  it('assertInvariant takes a check returning violations (strings), sync or async', () => {
    typesOnly(() => {
      expectTypeOf(assertInvariant('x', () => [])).toEqualTypeOf<Promise<void>>();
      expectTypeOf(assertInvariant('x', async () => ['a'])).toEqualTypeOf<Promise<void>>();
      expectTypeOf<Violations>().toEqualTypeOf<readonly string[]>();
      // @ts-expect-error a boolean is not a list of violations
      void assertInvariant('x', () => true);
    });
  });

  it('withFailPoint returns the callback result; the spec has no "off" mode', () => {
    typesOnly((client) => {
      const spec: FailPointSpec = { mode: { times: 1 }, data: { failCommands: ['insert'] } };
      expectTypeOf(withFailPoint(client, spec, async () => 7)).toEqualTypeOf<Promise<number>>();
      expectTypeOf(withFailPoint(client, spec, () => 'x')).toEqualTypeOf<Promise<string>>();
      // @ts-expect-error turn it off with clearFailPoint, not a spec
      const off: FailPointSpec = { mode: 'off', data: { failCommands: ['insert'] } };
      expectTypeOf(off).toBeObject();
    });
  });
});
