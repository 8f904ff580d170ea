/**
 * Leases: the exact messages and bounds of their own checks, lease documents the library did
 * not write, fences stored as other numeric types, and LeaseLostError's texts. Written to kill
 * the mutants the behaviour tests (tests/lease*.test.ts) leave alive.
 */
import { Long } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, MongoAtomicsError } from '../../src/errors.js';
import {
  acquireLease,
  fencedUpdate,
  isLeaseLostError,
  type LeaseDocument,
  LeaseLostError,
  MAX_LEASE_TTL_MS,
  renewLease,
  withLease,
} from '../../src/lease.js';
import { useTestDatabase } from '../support/mongo.js';

const t = useTestDatabase('mutants_lease');

function leases() {
  const coll = t.db.collection<LeaseDocument>(t.uniqueName('leases'));
  t.commands.reset();
  return coll;
}

async function refusal(call: () => Promise<unknown>): Promise<InvalidArgumentError> {
  t.commands.reset();
  const error = await call().catch((e: unknown) => e);
  expect(error).toBeInstanceOf(InvalidArgumentError);
  expect(t.commands.started).toHaveLength(0);
  return error as InvalidArgumentError;
}

describe('lease checks: messages and bounds', () => {
  it('name, holder, ttlMs and token messages', async () => {
    const coll = leases();
    expect((await refusal(() => acquireLease(coll, '', { holder: 'a', ttlMs: 1 }))).message).toBe(
      'acquireLease: option "name" must be a non-empty string, got the string ""',
    );
    expect(
      (await refusal(() => acquireLease(coll, 'x'.repeat(1025), { holder: 'a', ttlMs: 1 })))
        .message,
    ).toBe('acquireLease: option "name" must be at most 1024 characters, got 1025');
    expect(
      (await refusal(() => acquireLease(coll, 'n', { holder: 'h'.repeat(1025), ttlMs: 1 })))
        .message,
    ).toBe('acquireLease: option "holder" must be at most 1024 characters, got 1025');
    expect(
      (await refusal(() => acquireLease(coll, 'n', { holder: 'a', ttlMs: MAX_LEASE_TTL_MS + 1 })))
        .message,
    ).toBe(
      `acquireLease: option "ttlMs" must be at most ${MAX_LEASE_TTL_MS} (about 24.8 days), got ${MAX_LEASE_TTL_MS + 1}`,
    );
    expect((await refusal(() => renewLease(coll, 'n', { token: -1, ttlMs: 1 }))).message).toBe(
      'renewLease: option "token" must be a token acquireLease returned (a whole number ≥ 1), got -1',
    );
    expect((await refusal(() => renewLease(coll, 'n', { token: 2 ** 53, ttlMs: 1 }))).option).toBe(
      'token',
    );
  });

  it('the longest ttlMs is accepted and sent', async () => {
    const coll = leases();
    const result = await acquireLease(coll, 'n', { holder: 'a', ttlMs: MAX_LEASE_TTL_MS });
    expect(result).toMatchObject({ outcome: 'acquired', token: 1 });
    expect(t.commands.names()).toEqual(['findAndModify']);
  });

  it('withLease: renewEveryMs must be below ttlMs (ttlMs − 1 is fine); hooks must be functions', async () => {
    const coll = leases();
    expect(
      (
        await refusal(() =>
          withLease(coll, 'n', async () => 1, { holder: 'a', ttlMs: 10, renewEveryMs: 10 }),
        )
      ).message,
    ).toBe('withLease: option "renewEveryMs" must be below ttlMs (10), got 10');
    for (const hook of ['onRenew', 'onRenewError', 'onLost', 'onReleaseError'] as const) {
      const error = await refusal(() =>
        withLease(coll, 'n', async () => 1, { holder: 'a', ttlMs: 10, [hook]: 'x' }),
      );
      expect(error.option).toBe(hook);
    }
    const ok = await withLease(coll, 'n', async () => 'ran', {
      holder: 'a',
      ttlMs: 60_000,
      renewEveryMs: 59_999,
    });
    expect(ok).toMatchObject({ outcome: 'completed', value: 'ran' });
  });

  it('fencedUpdate: what each refused update is told', async () => {
    const coll = t.db.collection<{ _id: string }>('never_written');
    const base = { filter: { _id: 'd' }, token: 1 };
    const message = async (options: object) =>
      (await refusal(() => fencedUpdate(coll, { ...base, ...options } as never))).message;
    expect(await message({ update: [{ $set: { a: 1 } }] })).toBe(
      'fencedUpdate: option "update" must be an operator update, got an array: aggregation pipelines are not supported, pass operators such as { $set: … }',
    );
    expect(await message({ update: 'x' })).toBe(
      'fencedUpdate: option "update" must be an operator update, got the string "x": pass an operator update such as { $set: … }',
    );
    expect(await message({ update: {} })).toBe('fencedUpdate: option "update" must not be empty');
    expect(await message({ update: { a: 1 } })).toBe(
      'fencedUpdate: option "update" has a field without an operator ("a"): replacement documents are not supported, use { $set: … }',
    );
    expect(await message({ update: { $where: {} } })).toBe(
      'fencedUpdate: option "update" has an unknown update operator "$where"',
    );
    expect(await message({ update: { $set: 1 } })).toBe(
      'fencedUpdate: option "update" has $set with 1; it takes an object of fields',
    );
    expect(await message({ update: { $set: { '_id.x': 1 } } })).toBe(
      'fencedUpdate: option "update" has $set on "_id.x": MongoDB does not let an update change _id',
    );
    expect(await message({ update: { $rename: { a: '_fence' } } })).toBe(
      'fencedUpdate: option "update" has $rename on "_fence", which overlaps the fence field "_fence" (fencedUpdate writes it itself)',
    );
    expect(await message({ update: { $unset: { meta: '' } }, fenceField: 'meta.fence' })).toBe(
      'fencedUpdate: option "update" has $unset on "meta", which overlaps the fence field "meta.fence" (fencedUpdate writes it itself)',
    );
  });
});

describe('documents the library did not write', () => {
  it('a lease whose token is not a number is an error, not an outcome', async () => {
    const coll = leases();
    await coll.insertOne({
      _id: 'n',
      holder: null,
      token: 'x' as never,
      expiresAt: null,
      takenOverFrom: null,
      grant: null,
    });
    const error = await renewLease(coll, 'n', { token: 1, ttlMs: 10 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MongoAtomicsError);
    expect((error as Error).message).toBe(
      'lease "n": the lease document holds the string "x" as its token; a lease collection must only be written by the lease functions',
    );
  });

  it('a lease whose expiresAt is not a date is never live: taken, and never renewed', async () => {
    const coll = leases();
    await coll.insertOne({
      _id: 'n',
      holder: 'a',
      token: 1,
      expiresAt: 'soon' as never,
      takenOverFrom: null,
      grant: null,
    });
    // A string sorts below every date: the lease counts as free and is taken.
    expect(await acquireLease(coll, 'n', { holder: 'b', ttlMs: 60_000 })).toMatchObject({
      outcome: 'acquired',
      token: 2,
      previousHolder: 'a',
    });
    // A number sorts below every date too: never live, so a renewal reports it expired.
    await coll.updateOne({ _id: 'n' }, { $set: { expiresAt: 7 as never } });
    expect(await renewLease(coll, 'n', { token: 2, ttlMs: 10 })).toEqual({
      outcome: 'lost',
      reason: 'expired',
    });
  });

  it('a fence stored as a Long or as null: compared by value, null counts as no fence', async () => {
    const data = t.db.collection<{ _id: string; _fence?: unknown; x?: number }>(t.uniqueName('d'));
    await data.insertMany([
      { _id: 'long', _fence: Long.fromNumber(5) },
      { _id: 'null', _fence: null },
    ]);
    expect(
      await fencedUpdate(data, { filter: { _id: 'long' }, update: { $set: { x: 1 } }, token: 4 }),
    ).toEqual({ outcome: 'fenced', fence: 5 });
    expect(
      await fencedUpdate(data, { filter: { _id: 'long' }, update: { $set: { x: 1 } }, token: 5 }),
    ).toEqual({ outcome: 'applied' });
    expect(
      await fencedUpdate(data, { filter: { _id: 'null' }, update: { $set: { x: 1 } }, token: 1 }),
    ).toEqual({ outcome: 'applied' });
    expect(await data.findOne({ _id: 'null' })).toEqual({ _id: 'null', _fence: 1, x: 1 });
  });
});

describe('LeaseLostError', () => {
  it('names its lease and reason, and is recognised by its guard only', () => {
    const deadline = new LeaseLostError('job', 'deadline');
    expect(deadline.message).toBe('lease "job": not renewed in time, it may have expired');
    expect(new LeaseLostError('job', 'superseded').message).toBe('lease "job" lost: superseded');
    expect(deadline).toMatchObject({ name: 'LeaseLostError', lease: 'job', reason: 'deadline' });
    expect(isLeaseLostError(deadline)).toBe(true);
    const impostor = Object.assign(new Error('x'), { name: 'LeaseLostError' });
    expect(isLeaseLostError(impostor)).toBe(false);
    expect(isLeaseLostError(new MongoAtomicsError('x'))).toBe(false);
  });

  it('an onLost hook that throws does not break the run', async () => {
    const coll = leases();
    const result = await withLease(
      coll,
      'job',
      async ({ signal }) => {
        await coll.updateOne({ _id: 'job' }, { $set: { token: 9 } });
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
        return (signal.reason as LeaseLostError).reason;
      },
      {
        holder: 'a',
        ttlMs: 60_000,
        renewEveryMs: 5,
        onLost: () => {
          throw new Error('hook bug');
        },
      },
    );
    expect(result).toMatchObject({ outcome: 'completed', value: 'superseded', lost: true });
  });
});
