/**
 * Seat holds: the messages of their own checks, the bounds exactly at their limits, data of
 * another shape refused on the option that names it (nothing written), and the primitive's
 * name in the error for a reply without the projection. Written, as tests/mutants/ are, to kill
 * what the behavioural tests (tests/seat-holds*.test.ts) could leave alive.
 */
import type { Collection, Document } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, isMongoAtomicsError } from '../../src/errors.js';
import {
  confirmPlace,
  holdPlace,
  releaseExpiredPlaces,
  releasePlace,
} from '../../src/seat-holds.js';
import { useTestDatabase } from '../support/mongo.js';

const t = useTestDatabase('mutants_seat_holds');
type Event = Document & { _id: string };

async function event(doc: Document = {}) {
  const coll = t.db.collection<Event>(t.uniqueName('events'));
  await coll.insertOne({ _id: 'e1', capacity: 5, sold: 0, members: [], ...doc } as Event);
  t.commands.reset();
  return coll;
}
const set = { filter: { _id: 'e1' }, array: 'members', counter: 'sold' } as const;
const hold = { ...set, capacity: 'capacity', member: 'u1', holdId: 'h1', ttlMs: 60_000 } as const;

describe('option checks: which option, what message, nothing sent', () => {
  it.each([
    ['filter', { filter: { capacity: 5 } }, 'must select one document by `_id` equality'],
    ['holdId', { holdId: 'x'.repeat(1025) }, 'must be a string of 1 to 1024 characters'],
    ['ttlMs', { ttlMs: 31_536_000_001 }, 'must be at most one year (31536000000)'],
    ['maxHolds', { maxHolds: 10_001 }, 'must be at most 10000'],
    ['counter', { counter: 'members.n' }, 'overlaps the array "members"'],
    ['holdsField', { holdsField: 'sold' }, 'must name a field of its own'],
    ['capacity', { capacity: '_holds' }, 'must name a field of its own'],
  ])('%s', async (option, extra, message) => {
    const coll = await event();
    const error = await holdPlace(coll, { ...hold, ...extra } as never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error).toMatchObject({ option });
    expect((error as Error).message).toContain(message);
    expect((error as Error).message).toContain('holdPlace');
    expect(t.commands.names()).toEqual([]);
  });

  it('the bounds themselves are accepted: ttlMs one year, maxHolds 10 000, holdId 1024 characters', async () => {
    const coll = await event();
    const r = await holdPlace(coll, {
      ...hold,
      ttlMs: 31_536_000_000,
      maxHolds: 10_000,
      holdId: 'x'.repeat(1024),
    });
    expect(r.outcome).toBe('held');
  });

  it('a sweep refuses an unknown option and a holdsField overlapping the counter', async () => {
    const coll = await event();
    for (const [options, option] of [
      [{ counter: 'sold', bogus: 1 }, 'bogus'],
      [{ counter: 'sold.x', holdsField: 'sold' }, 'holdsField'],
    ] as const) {
      const error = await releaseExpiredPlaces(coll, options as never).catch((e: unknown) => e);
      expect(error).toMatchObject({ option });
    }
    expect(t.commands.names()).toEqual([]);
  });
});

describe('data of another shape: refused on the option naming it, nothing written', () => {
  it.each([
    ['counter', { sold: 'three' }],
    ['array', { members: 'u0' }],
    ['holdsField', { _holds: 7 }],
  ])('%s', async (option, doc) => {
    const coll = await event(doc);
    const before = await coll.findOne({ _id: 'e1' });
    for (const call of [
      () => holdPlace(coll, hold),
      () => confirmPlace(coll, { ...set, holdId: 'h1' }),
      () => releasePlace(coll, { ...set, holdId: 'h1' }),
    ]) {
      const error = await call().catch((e: unknown) => e);
      // Not `full` nor `unknownHold`: the data cannot be counted.
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(error).toMatchObject({ option });
    }
    expect(await coll.findOne({ _id: 'e1' })).toEqual(before);
  });

  it('a sweep leaves a document whose counter is no number alone', async () => {
    const coll = await event({
      sold: 'x',
      _holds: [{ holdId: 'h', member: 'm', expiresAt: new Date(0), state: 'held', call: 'c' }],
    });
    expect(await releaseExpiredPlaces(coll, { counter: 'sold' })).toEqual({ swept: 0 });
  });
});

describe('a reply without the projection is refused, naming the primitive', () => {
  const stub = {
    collectionName: 'old_server',
    findOneAndUpdate: async () => ({ document: { _id: 'e1' } }),
  } as unknown as Collection<Event>;
  it.each([
    ['holdPlace', () => holdPlace(stub, hold)],
    ['confirmPlace', () => confirmPlace(stub, { ...set, holdId: 'h1' })],
    ['releasePlace', () => releasePlace(stub, { ...set, holdId: 'h1' })],
  ])('%s', async (name, call) => {
    const error = await call().catch((e: unknown) => e);
    expect(isMongoAtomicsError(error)).toBe(true);
    expect((error as Error).message).toMatch(new RegExp(`^${name}: the server did not evaluate`));
    expect((error as Error).message).toContain('MongoDB 4.4 or later is required');
  });
});
