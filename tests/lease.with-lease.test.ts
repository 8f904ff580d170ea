/**
 * withLease: runs fn under a lease, renews it in the background, aborts fn's signal the moment
 * the lease is lost or may have run out (monotonic clock, from when the request was sent),
 * releases it on every exit, and never calls fn when someone else holds the lease.
 */
import type { Collection } from 'mongodb';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isInvalidArgumentError } from '../src/errors.js';
import {
  acquireLease,
  isLeaseLostError,
  type LeaseDocument,
  LeaseLostError,
  releaseLease,
  withLease,
} from '../src/lease.js';
import { sleep } from './support/async.js';
import { useTestDatabase } from './support/mongo.js';

const t = useTestDatabase('with_lease');
const LONG = 60_000;

function leases(): Collection<LeaseDocument> {
  const coll = t.db.collection<LeaseDocument>(t.uniqueName('leases'));
  t.commands.reset();
  return coll;
}

/** Resolves with the signal's reason once it is aborted. */
const aborted = (signal: AbortSignal): Promise<unknown> =>
  new Promise((resolve) => {
    if (signal.aborted) resolve(signal.reason);
    else signal.addEventListener('abort', () => resolve(signal.reason), { once: true });
  });

/**
 * `coll` with its findOneAndUpdate (acquire and renew) and updateOne (release) replaced for the
 * calls after the first `passFirst` findOneAndUpdate calls: delayed, or failing.
 */
function interposed(
  coll: Collection<LeaseDocument>,
  behaviour: {
    passFirst?: number;
    delayMs?: number;
    fail?: boolean;
    failRelease?: boolean;
    /** Runs as findOneAndUpdate call `n` (1-based) is sent. */
    onCall?: (n: number) => void;
  },
): Collection<LeaseDocument> {
  let calls = 0;
  return new Proxy(coll, {
    get(target, key, receiver) {
      if (key === 'findOneAndUpdate') {
        return async (...args: unknown[]) => {
          calls += 1;
          behaviour.onCall?.(calls);
          const call = () =>
            (target.findOneAndUpdate as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          if (calls <= (behaviour.passFirst ?? 0)) return call();
          if (behaviour.fail === true) throw new Error('network down (test)');
          const result = await call();
          await sleep(behaviour.delayMs ?? 0);
          return result;
        };
      }
      if (key === 'updateOne' && behaviour.failRelease === true) {
        return async () => {
          throw new Error('release failed (test)');
        };
      }
      return Reflect.get(target, key, receiver);
    },
  });
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('withLease', () => {
  it('runs fn with the token and a live signal, releases after, and resolves completed: acquire + release, 2 commands', async () => {
    const coll = leases();
    const result = await withLease(
      coll,
      'job',
      async ({ signal, token }) => {
        expect(signal.aborted).toBe(false);
        expect((await coll.findOne({ _id: 'job' }))?.holder).toBe('w1');
        return `ran with ${token}`;
      },
      { holder: 'w1', ttlMs: LONG },
    );
    expect(result).toEqual({ outcome: 'completed', value: 'ran with 1', token: 1, lost: false });
    expect(t.commands.names()).toEqual(['findAndModify', 'find', 'update']);
    expect(await coll.findOne({ _id: 'job' })).toMatchObject({ holder: null, token: 1 });
  });

  it('when someone holds the lease, resolves held without calling fn, in one command', async () => {
    const coll = leases();
    await acquireLease(coll, 'job', { holder: 'other', ttlMs: LONG });
    t.commands.reset();
    const fn = vi.fn();
    const result = await withLease(coll, 'job', fn, { holder: 'w1', ttlMs: LONG });
    expect(result).toEqual({ outcome: 'held', holder: 'other', expiresAt: expect.any(Date) });
    expect(fn).not.toHaveBeenCalled();
    expect(t.commands.names()).toEqual(['findAndModify']);
  });

  it('fn throws: the lease is released, then the same error is rethrown', async () => {
    const coll = leases();
    const boom = new Error('boom');
    const error = await withLease(
      coll,
      'job',
      () => {
        throw boom;
      },
      { holder: 'w1', ttlMs: LONG },
    ).catch((e: unknown) => e);
    expect(error).toBe(boom);
    expect(await coll.findOne({ _id: 'job' })).toMatchObject({ holder: null });
    expect(await acquireLease(coll, 'job', { holder: 'w2', ttlMs: LONG })).toMatchObject({
      outcome: 'acquired',
      token: 2,
    });
  });

  it('renews in the background while fn runs (one findAndModify per renewal, onRenew each time), and the lease is never lost', async () => {
    const coll = leases();
    const renewals: Date[] = [];
    let third!: () => void;
    const threeRenewals = new Promise<void>((resolve) => {
      third = resolve;
    });
    const result = await withLease(
      coll,
      'job',
      async ({ signal }) => {
        await threeRenewals;
        return signal.aborted;
      },
      {
        holder: 'w1',
        ttlMs: LONG,
        renewEveryMs: 5,
        onRenew: ({ expiresAt }) => {
          renewals.push(expiresAt);
          if (renewals.length === 3) third();
        },
      },
    );
    expect(result).toMatchObject({ outcome: 'completed', value: false, lost: false });
    expect(renewals.length).toBeGreaterThanOrEqual(3);
    const names = t.commands.names();
    expect(names[0]).toBe('findAndModify');
    expect(names.at(-1)).toBe('update');
    expect(names.filter((name) => name === 'findAndModify')).toHaveLength(1 + renewals.length);
  });

  it('a renewal that reports the lease lost (taken over) aborts the signal at once with a LeaseLostError, and the exit release leaves the successor alone', async () => {
    const coll = leases();
    const onLost = vi.fn();
    const result = await withLease(
      coll,
      'job',
      async ({ signal }) => {
        // Someone takes the lease over (as after an expiry).
        await coll.updateOne({ _id: 'job' }, [{ $set: { expiresAt: '$$NOW' } }]);
        expect(await acquireLease(coll, 'job', { holder: 'w2', ttlMs: LONG })).toMatchObject({
          outcome: 'acquired',
          token: 2,
          previousHolder: 'w1',
        });
        return aborted(signal);
      },
      { holder: 'w1', ttlMs: LONG, renewEveryMs: 5, onLost },
    );
    expect(result).toMatchObject({ outcome: 'completed', token: 1, lost: true });
    const reason = result.value as LeaseLostError;
    expect(isLeaseLostError(reason)).toBe(true);
    expect(reason).toBeInstanceOf(LeaseLostError);
    expect(reason).toMatchObject({ name: 'LeaseLostError', lease: 'job', reason: 'superseded' });
    expect(onLost).toHaveBeenCalledExactlyOnceWith(reason);
    expect(await coll.findOne({ _id: 'job' })).toMatchObject({ holder: 'w2', token: 2 });
  });

  it('renewals that fail go to onRenewError, and the signal aborts with reason deadline once ttlMs has passed without a successful one', async () => {
    const coll = leases();
    const errors: unknown[] = [];
    const result = await withLease(
      interposed(coll, { passFirst: 1, fail: true }),
      'job',
      async ({ signal }) => aborted(signal),
      { holder: 'w1', ttlMs: 60, renewEveryMs: 10, onRenewError: (e) => errors.push(e) },
    );
    expect(result).toMatchObject({ outcome: 'completed', lost: true });
    expect(result.value).toMatchObject({ name: 'LeaseLostError', reason: 'deadline' });
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]).toMatchObject({ message: 'network down (test)' });
  });

  it('the deadline counts from when the request was SENT: an acquire whose reply takes longer than ttlMs starts fn with the signal already aborted', async () => {
    const coll = leases();
    const result = await withLease(
      interposed(coll, { delayMs: 30 }),
      'job',
      async ({ signal }) => ({ aborted: signal.aborted, reason: signal.reason as unknown }),
      { holder: 'w1', ttlMs: 10, renewEveryMs: 5 },
    );
    expect(result).toMatchObject({
      outcome: 'completed',
      lost: true,
      value: { aborted: true, reason: { reason: 'deadline' } },
    });
  });

  it('a renewal answered after the deadline does not un-abort the signal', async () => {
    const coll = leases();
    const onRenew = vi.fn();
    const result = await withLease(
      interposed(coll, { passFirst: 1, delayMs: 60 }),
      'job',
      async ({ signal }) => {
        const reason = await aborted(signal);
        await sleep(80); // the slow renewal comes back "renewed" meanwhile
        return { reason, still: signal.aborted };
      },
      { holder: 'w1', ttlMs: 30, renewEveryMs: 5, onRenew },
    );
    expect(result.value).toMatchObject({ reason: { reason: 'deadline' }, still: true });
    expect(onRenew).not.toHaveBeenCalled();
  });

  it('a client wall clock that jumps a year ahead while the acquire and a renewal are in flight (an NTP step) changes nothing: the deadline uses the monotonic clock', async () => {
    const coll = leases();
    const realNow = Date.now.bind(Date);
    let offset = 0;
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() + offset);
    const onRenew = vi.fn();
    const result = await withLease(
      interposed(coll, {
        onCall: () => {
          offset += 365 * 86_400_000;
        },
      }),
      'job',
      async ({ signal }) => {
        for (let i = 0; i < 200 && onRenew.mock.calls.length < 2; i += 1) await sleep(5);
        return signal.aborted;
      },
      { holder: 'w1', ttlMs: LONG, renewEveryMs: 5, onRenew },
    );
    expect(onRenew.mock.calls.length).toBeGreaterThanOrEqual(2);
    expect(result).toMatchObject({ outcome: 'completed', value: false, lost: false });
  });

  it('the renewal deadline also counts from when the renewal was SENT: renewals that each take 60 ms, under a 100 ms lease, abort the signal although every one succeeds', async () => {
    // Sent at s, answered at s + 60 (the server extended the lease at some point in between):
    // the lease is sure to last until s + 100 only. The next renewal is answered at s + 125,
    // so the signal must abort at s + 100. Counting from the answer (s + 160) would never.
    const coll = leases();
    const onRenew = vi.fn();
    const result = await withLease(
      interposed(coll, { passFirst: 1, delayMs: 60 }),
      'job',
      async ({ signal }) => aborted(signal),
      { holder: 'w1', ttlMs: 100, renewEveryMs: 5, onRenew },
    );
    expect(onRenew).toHaveBeenCalled();
    expect(result.value).toMatchObject({ reason: 'deadline' });
  });

  it('a failed release goes to onReleaseError; fn’s value is still returned; hooks that throw are ignored', async () => {
    const coll = leases();
    const releaseErrors: unknown[] = [];
    const result = await withLease(
      interposed(coll, { passFirst: 100, failRelease: true }),
      'job',
      async () => {
        await sleep(20);
        return 42;
      },
      {
        holder: 'w1',
        ttlMs: LONG,
        renewEveryMs: 5,
        onRenew: () => {
          throw new Error('hook bug');
        },
        onReleaseError: (e) => releaseErrors.push(e),
      },
    );
    expect(result).toMatchObject({ outcome: 'completed', value: 42, lost: false });
    expect(releaseErrors).toEqual([expect.objectContaining({ message: 'release failed (test)' })]);
    // Not released: it expires by itself; the token still releases it.
    expect(await releaseLease(coll, 'job', { token: 1 })).toEqual({ outcome: 'released' });
  });

  const fn = async () => 1;
  const cases: [string, () => Promise<unknown>][] = [
    ['fn', () => withLease(leases(), 'job', 'nope' as never, { holder: 'w', ttlMs: 10 })],
    ['name', () => withLease(leases(), '', fn, { holder: 'w', ttlMs: 10 })],
    ['holder', () => withLease(leases(), 'job', fn, { holder: 7 as never, ttlMs: 10 })],
    ['ttlMs', () => withLease(leases(), 'job', fn, { holder: 'w', ttlMs: Number.NaN })],
    [
      'renewEveryMs',
      () => withLease(leases(), 'job', fn, { holder: 'w', ttlMs: 10, renewEveryMs: 10 }),
    ],
    [
      'renewEveryMs',
      () => withLease(leases(), 'job', fn, { holder: 'w', ttlMs: 10, renewEveryMs: 0 }),
    ],
    [
      'onRenewError',
      () => withLease(leases(), 'job', fn, { holder: 'w', ttlMs: 10, onRenewError: 1 as never }),
    ],
    [
      'signal',
      () => withLease(leases(), 'job', fn, { holder: 'w', ttlMs: 10, signal: 1 } as never),
    ],
  ];
  it.each(cases)(
    'refuses a bad %s with InvalidArgumentError, sending nothing',
    async (option, call) => {
      t.commands.reset();
      const error = await call().catch((e: unknown) => e);
      expect(isInvalidArgumentError(error), String(error)).toBe(true);
      expect(error).toMatchObject({ primitive: 'withLease', option });
      expect(t.commands.started).toEqual([]);
    },
  );
});
