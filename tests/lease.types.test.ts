/**
 * Type-level tests of the lease API (checked by `tsc --noEmit`; the calls sit in functions that
 * never run, so no server is needed).
 */
import type { Collection } from 'mongodb';
import { describe, expectTypeOf, it } from 'vitest';
import {
  type AcquireLeaseResult,
  type FencedUpdateResult,
  fencedUpdate,
  type LeaseDocument,
  type RenewLeaseResult,
  type WithLeaseResult,
  withLease,
} from '../src/lease.js';

describe('lease types', () => {
  it('acquireLease narrows on outcome: token only when acquired, holder only when held', () => {
    const check = (result: AcquireLeaseResult) => {
      if (result.outcome === 'acquired') {
        expectTypeOf(result.token).toEqualTypeOf<number>();
        expectTypeOf(result.previousHolder).toEqualTypeOf<string | undefined>();
        return;
      }
      expectTypeOf(result.holder).toEqualTypeOf<string>();
      expectTypeOf(result.expiresAt).toEqualTypeOf<Date>();
    };
    expectTypeOf(check).toBeFunction();
    const { token } = {} as AcquireLeaseResult;
    expectTypeOf(token).toEqualTypeOf<number | undefined>();
  });

  it('renewLease: a reason only when lost', () => {
    const check = (result: RenewLeaseResult) => {
      if (result.outcome === 'lost') {
        expectTypeOf(result.reason).toEqualTypeOf<'expired' | 'superseded' | 'released'>();
      } else expectTypeOf(result.expiresAt).toEqualTypeOf<Date>();
    };
    expectTypeOf(check).toBeFunction();
  });

  it('withLease infers fn’s value; held has no value', () => {
    const run = (leases: Collection<LeaseDocument>) =>
      withLease(
        leases,
        'job',
        async ({ signal, token }) => {
          expectTypeOf(signal).toEqualTypeOf<AbortSignal>();
          expectTypeOf(token).toEqualTypeOf<number>();
          return { rows: 3 };
        },
        { holder: 'w', ttlMs: 1000 },
      );
    expectTypeOf(run).returns.resolves.toEqualTypeOf<WithLeaseResult<{ rows: number }>>();
    const check = (result: WithLeaseResult<string>) => {
      if (result.outcome === 'completed') expectTypeOf(result.value).toEqualTypeOf<string>();
      else expectTypeOf(result.value).toEqualTypeOf<undefined>();
    };
    expectTypeOf(check).toBeFunction();
  });

  it('fencedUpdate: a typed filter and update; fence only when fenced', () => {
    interface Report {
      _id: string;
      rows?: number;
    }
    const write = (reports: Collection<Report>) => {
      void fencedUpdate(reports, { filter: { _id: 'r' }, update: { $set: { rows: 1 } }, token: 1 });
      void fencedUpdate(reports, {
        filter: { _id: 'r' },
        // @ts-expect-error rows is a number
        update: { $set: { rows: 'x' } },
        token: 1,
      });
    };
    expectTypeOf(write).toBeFunction();
    const check = (result: FencedUpdateResult) => {
      if (result.outcome === 'fenced') expectTypeOf(result.fence).toEqualTypeOf<number>();
    };
    expectTypeOf(check).toBeFunction();
  });
});
