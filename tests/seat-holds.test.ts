/**
 * holdPlace / confirmPlace / releasePlace / releaseExpiredPlaces: outcomes, the one command per
 * call, the reclaim of lapsed holds inside every call, validation before any command.
 */
import type { Document } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { addToSetWithCapacity } from '../src/capacity-set.js';
import { InvalidArgumentError } from '../src/errors.js';
import {
  confirmPlace,
  holdPlace,
  releaseExpiredPlaces,
  releasePlace,
  SETTLED_HOLDS_KEPT,
} from '../src/seat-holds.js';
import { useTestDatabase } from './support/mongo.js';

const t = useTestDatabase('seat_holds');

type Event = Document & { _id: string };

async function event(doc: Document = {}) {
  const coll = t.db.collection<Event>(t.uniqueName('events'));
  await coll.insertOne({ _id: 'e1', capacity: 2, sold: 0, members: [], ...doc } as Event);
  t.commands.reset();
  return coll;
}

const set = { filter: { _id: 'e1' }, array: 'members', counter: 'sold' } as const;
const hold = (member: string, holdId: string, ttlMs = 60_000) =>
  ({ ...set, capacity: 'capacity', member, holdId, ttlMs }) as const;
const lapse = () => new Promise((resolve) => setTimeout(resolve, 5));

describe('holdPlace', () => {
  it('holds a place (counted), one findAndModify, expiresAt from the server', async () => {
    const coll = await event();
    const r = await holdPlace(coll, hold('u1', 'h1'));
    expect(r.outcome).toBe('held');
    expect(r.expiresAt).toBeInstanceOf(Date);
    expect(r.document?.sold).toBe(1);
    expect(r.document?.members).toEqual([]);
    expect(t.commands.names()).toEqual(['findAndModify']);
    const sent = t.commands.started[0]?.command as Document;
    expect(JSON.stringify(sent.update)).toContain('$$NOW');
  });

  it('refusals, each one command: alreadyHeld, alreadyMember, full, tooManyHolds, notFound', async () => {
    const coll = await event({ members: ['m'], sold: 1 });
    expect((await holdPlace(coll, hold('u1', 'h1'))).outcome).toBe('held');
    t.commands.reset();
    const again = await holdPlace(coll, hold('u1', 'h2'));
    expect(again.outcome).toBe('alreadyHeld');
    expect(again.hold?.holdId).toBe('h1');
    const sameId = await holdPlace(coll, hold('u2', 'h1'));
    expect(sameId.outcome).toBe('alreadyHeld');
    expect((await holdPlace(coll, hold('m', 'h3'))).outcome).toBe('alreadyMember');
    expect((await holdPlace(coll, hold('u3', 'h4'))).outcome).toBe('full');
    expect((await holdPlace(coll, { ...hold('u3', 'h4'), filter: { _id: 'nope' } })).outcome).toBe(
      'notFound',
    );
    expect(t.commands.names()).toEqual(Array(5).fill('findAndModify'));
    const big = await event({ capacity: 10 });
    await holdPlace(big, { ...hold('a', 'ha'), maxHolds: 1 });
    expect((await holdPlace(big, { ...hold('b', 'hb'), maxHolds: 1 })).outcome).toBe(
      'tooManyHolds',
    );
  });

  it('one live hold per member: a second holdId for the same member is alreadyHeld', async () => {
    const coll = await event({ capacity: 5 });
    await holdPlace(coll, hold('u1', 'h1'));
    const second = await holdPlace(coll, hold('u1', 'h2'));
    expect(second.outcome).toBe('alreadyHeld');
    expect(second.hold).toMatchObject({ holdId: 'h1', member: 'u1', state: 'held' });
    expect(second.document?.sold).toBe(1);
  });

  it('a full event whose hold lapsed admits the next buyer in one command (no sweeper)', async () => {
    const coll = await event({ capacity: 1 });
    expect((await holdPlace(coll, hold('u1', 'h1', 1))).outcome).toBe('held');
    await lapse();
    t.commands.reset();
    const next = await holdPlace(coll, hold('u2', 'h2'));
    expect(next.outcome).toBe('held');
    expect(next.document?.sold).toBe(1);
    expect(t.commands.names()).toEqual(['findAndModify']);
    expect((await confirmPlace(coll, { ...set, holdId: 'h1' })).outcome).toBe('expired');
  });

  it('a refused hold still writes the reclaim of lapsed holds, and reports what it saw', async () => {
    const coll = await event({ capacity: 2, members: ['m'], sold: 1 });
    await holdPlace(coll, hold('u1', 'h1', 1));
    await lapse();
    const r = await holdPlace(coll, hold('m', 'h2'));
    expect(r.outcome).toBe('alreadyMember');
    const stored = await coll.findOne({ _id: 'e1' });
    expect(stored?.sold).toBe(1);
    expect(stored?._holds).toMatchObject([{ holdId: 'h1', state: 'expired' }]);
  });

  it('a refused hold with nothing to reclaim writes nothing (no-op)', async () => {
    const coll = await event({ capacity: 1, members: ['m'], sold: 1 });
    const before = await coll.findOne({ _id: 'e1' });
    expect((await holdPlace(coll, hold('u1', 'h1'))).outcome).toBe('full');
    expect(await coll.findOne({ _id: 'e1' })).toEqual(before);
  });

  it('a plain addToSetWithCapacity never sells a held place', async () => {
    const coll = await event({ capacity: 1 });
    await holdPlace(coll, hold('u1', 'h1'));
    const add = await addToSetWithCapacity(coll, { ...set, member: 'u2', capacity: 'capacity' });
    expect(add.outcome).toBe('full');
  });

  it('a capacity field holding no number is refused, not full', async () => {
    const coll = await event({ capacity: '2' });
    await expect(holdPlace(coll, hold('u1', 'h1'))).rejects.toThrow(/capacity/);
  });
});

describe('confirmPlace / releasePlace', () => {
  it('confirm: the held place becomes a member, counted once; repeats say alreadyConfirmed', async () => {
    const coll = await event();
    await holdPlace(coll, hold('u1', 'h1'));
    t.commands.reset();
    const c = await confirmPlace(coll, { ...set, holdId: 'h1' });
    expect(c.outcome).toBe('confirmed');
    expect(c.document?.members).toEqual(['u1']);
    expect(c.document?.sold).toBe(1);
    expect((await confirmPlace(coll, { ...set, holdId: 'h1' })).outcome).toBe('alreadyConfirmed');
    expect((await releasePlace(coll, { ...set, holdId: 'h1' })).outcome).toBe('alreadyConfirmed');
    expect((await confirmPlace(coll, { ...set, holdId: 'zz' })).outcome).toBe('unknownHold');
    expect(
      (await confirmPlace(coll, { ...set, filter: { _id: 'nope' }, holdId: 'h1' })).outcome,
    ).toBe('notFound');
    expect(t.commands.names()).toEqual(Array(5).fill('findAndModify'));
  });

  it('release gives the place back; confirm after release says alreadyReleased', async () => {
    const coll = await event();
    await holdPlace(coll, hold('u1', 'h1'));
    const r = await releasePlace(coll, { ...set, holdId: 'h1' });
    expect(r.outcome).toBe('released');
    expect(r.document?.sold).toBe(0);
    expect((await releasePlace(coll, { ...set, holdId: 'h1' })).outcome).toBe('alreadyReleased');
    expect((await confirmPlace(coll, { ...set, holdId: 'h1' })).outcome).toBe('alreadyReleased');
    expect((await holdPlace(coll, hold('u1', 'h1'))).outcome).toBe('alreadySettled');
  });

  it('confirm of a lapsed hold: expired, the place given back once', async () => {
    const coll = await event();
    await holdPlace(coll, hold('u1', 'h1', 1));
    await lapse();
    const c = await confirmPlace(coll, { ...set, holdId: 'h1' });
    expect(c.outcome).toBe('expired');
    expect(c.document?.sold).toBe(0);
    expect(c.document?.members).toEqual([]);
    expect((await releasePlace(coll, { ...set, holdId: 'h1' })).outcome).toBe('expired');
    expect((await coll.findOne({ _id: 'e1' }))?.sold).toBe(0);
  });

  it('confirm when the member was added meanwhile: not added twice, the hold place freed', async () => {
    const coll = await event({ capacity: 3 });
    await holdPlace(coll, hold('u1', 'h1'));
    await addToSetWithCapacity(coll, { ...set, member: 'u1', capacity: 'capacity' });
    const c = await confirmPlace(coll, { ...set, holdId: 'h1' });
    expect(c.outcome).toBe('confirmed');
    expect(c.document?.members).toEqual(['u1']);
    expect(c.document?.sold).toBe(1);
  });

  it(`keeps at most ${SETTLED_HOLDS_KEPT} settled records, newest last`, async () => {
    const coll = await event({
      capacity: 1000,
      _holds: Array.from({ length: SETTLED_HOLDS_KEPT }, (_, i) => ({
        holdId: `old${i}`,
        member: `o${i}`,
        expiresAt: new Date(0),
        state: 'released',
        call: 'x',
      })),
    });
    await holdPlace(coll, hold('u1', 'h1'));
    await releasePlace(coll, { ...set, holdId: 'h1' });
    const stored = (await coll.findOne({ _id: 'e1' }))?._holds as Document[];
    expect(stored).toHaveLength(SETTLED_HOLDS_KEPT);
    expect(stored.at(-1)?.holdId).toBe('h1');
    expect(stored[0]?.holdId).toBe('old1');
  });
});

describe('releaseExpiredPlaces', () => {
  it('reclaims lapsed holds of untouched documents in one update; a second sweep finds none', async () => {
    const coll = await event({ capacity: 3 });
    await holdPlace(coll, hold('u2', 'h2'));
    await holdPlace(coll, hold('u1', 'h1', 1));
    await lapse();
    t.commands.reset();
    expect(await releaseExpiredPlaces(coll, { counter: 'sold' })).toEqual({ swept: 1 });
    expect(t.commands.names()).toEqual(['update']);
    expect(await releaseExpiredPlaces(coll, { counter: 'sold' })).toEqual({ swept: 0 });
    expect((await coll.findOne({ _id: 'e1' }))?.sold).toBe(1);
  });
});

describe('validation: a typed error naming the option, zero commands sent', () => {
  const cases: [string, Document][] = [
    ['filter', { filter: { capacity: 2 } }],
    ['holdId', { holdId: '' }],
    ['holdId', { holdId: 42 }],
    ['ttlMs', { ttlMs: 0 }],
    ['ttlMs', { ttlMs: 1.5 }],
    ['ttlMs', { ttlMs: 366 * 24 * 3600 * 1000 }],
    ['maxHolds', { maxHolds: 0 }],
    ['maxHolds', { maxHolds: 10_001 }],
    ['member', { member: { $gt: '' } }],
    ['capacity', { capacity: 0 }],
    ['capacity', { capacity: 'sold' }],
    ['holdsField', { holdsField: 'members' }],
    ['holdsField', { holdsField: '__proto__.x' }],
    ['counter', { counter: 'members' }],
    ['bogus', { bogus: 1 }],
  ];
  it.each(cases)('holdPlace: %s', async (option, extra) => {
    const coll = await event();
    const error = await holdPlace(coll, { ...hold('u1', 'h1'), ...extra } as never).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).option).toBe(option);
    expect(t.commands.started).toHaveLength(0);
  });
  it.each([
    ['holdId', { holdId: undefined }],
    ['filter', { filter: { _id: { $in: ['e1'] } } }],
  ])('confirmPlace / releasePlace / releaseExpiredPlaces: %s', async (option, extra) => {
    const coll = await event();
    for (const call of [confirmPlace, releasePlace]) {
      const error = await call(coll, { ...set, holdId: 'h1', ...extra } as never).catch(
        (e: unknown) => e,
      );
      expect((error as InvalidArgumentError).option).toBe(option);
    }
    const sweep = await releaseExpiredPlaces(coll, { counter: 'sold', holdsField: 'sold' }).catch(
      (e: unknown) => e,
    );
    expect((sweep as InvalidArgumentError).option).toBe('holdsField');
    expect(t.commands.started).toHaveLength(0);
  });
});
