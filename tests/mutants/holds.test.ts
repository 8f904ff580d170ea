/**
 * Holds: what tests/holds.test.ts leaves open. The commands' exact shape (two-stage pipeline,
 * after-image, the sweep's filter), a driver-retried findAndModify answered from the stored
 * image (one aggregate reads the outcome), replies a conforming server never sends, dotted and
 * custom fields, BSON number types, and the bounds exactly at their limits.
 *
 * Some tests hand the primitives a stand-in collection (real collection, scripted
 * `findOneAndUpdate`): the retried-command reply cannot be produced on demand by a server.
 */
import { type Collection, Decimal128, type Document, Long } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, MongoAtomicsError } from '../../src/errors.js';
import { confirmHold, holdQuantity, releaseExpiredHolds, releaseHold } from '../../src/holds.js';
import { sleep } from '../support/async.js';
import { useTestDatabase } from '../support/mongo.js';

const t = useTestDatabase('mutants_holds');
// biome-ignore lint/suspicious/noExplicitAny: documents of every shape, asserted field by field
type Doc = { _id: string; [key: string]: any };
const LONG_TTL = 600_000;

async function coll(...docs: Doc[]) {
  const c = t.db.collection<Doc>(t.uniqueName('products'));
  if (docs.length > 0) await c.insertMany(docs);
  t.commands.reset();
  return c;
}

/** The collection, with findOneAndUpdate answered as `answer` scripts it. */
// biome-ignore lint/suspicious/noExplicitAny: the driver's overloads, passed through
type Args = [filter: any, update: any, options: any];
function scripted(
  c: Collection<Doc>,
  answer: (real: Collection<Doc>, args: Args) => unknown,
): Collection<Doc> {
  return new Proxy(c, {
    get(target, key, receiver) {
      if (key === 'findOneAndUpdate') {
        return (...args: Args) => answer(target, args);
      }
      return Reflect.get(target, key, receiver);
    },
  });
}

describe('the commands sent', () => {
  it('holdQuantity: one findAndModify, new: true, a two-stage pipeline, a projection without _id', async () => {
    const c = await coll({ _id: 'p', stock: 5 });
    await holdQuantity(c, {
      filter: { _id: 'p' },
      field: 'stock',
      amount: 1,
      holdId: 'h',
      ttlMs: 5,
    });
    const [started] = t.commands.started;
    expect(t.commands.names()).toEqual(['findAndModify']);
    expect(started?.command.new).toBe(true);
    expect(started?.command.update).toHaveLength(2);
    expect(started?.command.fields?._id).toBe(0);
  });

  it('releaseExpiredHolds: one multi update, filtered on a non-empty holds array and $expr', async () => {
    const c = await coll();
    await releaseExpiredHolds(c, { field: 'stock', filter: { sku: 'a' } });
    const [started] = t.commands.started;
    expect(t.commands.names()).toEqual(['update']);
    const [statement] = started?.command.updates ?? [];
    expect(statement.multi).toBe(true);
    expect(statement.q.$and[0]).toEqual({ sku: 'a' });
    expect(statement.q.$and[1]['_holds.0']).toEqual({ $exists: true });
    expect(statement.q.$and[1].$expr).toBeDefined();
    expect(statement.u).toHaveLength(1);
  });
});

describe('a retried findAndModify answered from the stored image (no projection)', () => {
  it('holdQuantity: held, read by one aggregate over the image', async () => {
    const c = await coll({ _id: 'p', stock: 5 });
    const retried = scripted(c, (real, [filter, update, options]) =>
      real.findOneAndUpdate(filter, update, { ...options, projection: undefined }),
    );
    const result = await holdQuantity(retried, {
      filter: { _id: 'p' },
      field: 'stock',
      amount: 2,
      holdId: 'h',
      ttlMs: LONG_TTL,
    });
    expect(result).toMatchObject({ outcome: 'held', hold: { id: 'h', amount: 2 } });
    expect(t.commands.names()).toEqual(['findAndModify', 'aggregate']);
  });

  it('confirmHold: confirmed, read by one aggregate over the image', async () => {
    const c = await coll({ _id: 'p', stock: 5 });
    await holdQuantity(c, {
      filter: { _id: 'p' },
      field: 'stock',
      amount: 2,
      holdId: 'h',
      ttlMs: LONG_TTL,
    });
    t.commands.reset();
    const retried = scripted(c, (real, [filter, update, options]) =>
      real.findOneAndUpdate(filter, update, { ...options, projection: undefined }),
    );
    expect(
      await confirmHold(retried, { filter: { _id: 'p' }, field: 'stock', holdId: 'h' }),
    ).toMatchObject({
      outcome: 'confirmed',
      amount: 2,
      document: { stock: 3 },
    });
    expect(t.commands.names()).toEqual(['findAndModify', 'aggregate']);
  });
});

describe('replies a conforming server never sends', () => {
  it.each([
    ['no r', {}],
    ['r without fieldOk', { r: { layoutOk: true } }],
    ['r not an object', { r: 3 }],
  ])('%s: MongoAtomicsError, not an outcome', async (_name, reply) => {
    const c = await coll({ _id: 'p', stock: 5 });
    const odd = scripted(c, async () => reply);
    for (const call of [
      () =>
        holdQuantity(odd, {
          filter: { _id: 'p' },
          field: 'stock',
          amount: 1,
          holdId: 'h',
          ttlMs: 5,
        }),
      () => confirmHold(odd, { filter: { _id: 'p' }, field: 'stock', holdId: 'h' }),
    ]) {
      const error = await call().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MongoAtomicsError);
      expect(error).not.toBeInstanceOf(InvalidArgumentError);
    }
  });
});

describe('fields and numbers', () => {
  it('dotted field and custom holds fields: held, confirmed and reclaimed there', async () => {
    const c = await coll({ _id: 'p', inv: { available: 5 } });
    const layout = { holdsField: 'meta.live', settledField: 'meta.done' };
    const opts = { filter: { _id: 'p' }, field: 'inv.available', ...layout };
    expect(
      (await holdQuantity(c, { ...opts, amount: 2, holdId: 'a', ttlMs: LONG_TTL })).outcome,
    ).toBe('held');
    expect((await confirmHold(c, { ...opts, holdId: 'a' })).outcome).toBe('confirmed');
    expect((await holdQuantity(c, { ...opts, amount: 1, holdId: 'b', ttlMs: 1 })).outcome).toBe(
      'held',
    );
    await sleep(15);
    expect(await releaseExpiredHolds(c, { field: 'inv.available', ...layout })).toEqual({
      matched: 1,
      reclaimed: 1,
    });
    const doc = await c.findOne({ _id: 'p' });
    expect(doc?.inv).toEqual({ available: 3 });
    expect(doc?.meta.live).toEqual([]);
    expect(doc?.meta.done.map((h: Document) => [h.id, h.outcome])).toEqual([
      ['a', 'confirmed'],
      ['b', 'expired'],
    ]);
    expect(doc?._holds).toBeUndefined();
  });

  it('Decimal128 and Long stock keep their type through hold and release', async () => {
    const c = await coll(
      { _id: 'd', stock: Decimal128.fromString('5') },
      { _id: 'l', stock: Long.fromNumber(5) },
    );
    for (const _id of ['d', 'l']) {
      await holdQuantity(c, {
        filter: { _id },
        field: 'stock',
        amount: 2,
        holdId: 'h',
        ttlMs: LONG_TTL,
      });
      await releaseHold(c, { filter: { _id }, field: 'stock', holdId: 'h' });
    }
    const raw = await c.find({}, { promoteLongs: false, sort: { _id: 1 } }).toArray();
    expect(raw[0]?.stock).toBeInstanceOf(Decimal128);
    expect(Number(raw[0]?.stock.toString())).toBe(5);
    expect(raw[1]?.stock).toBeInstanceOf(Long);
  });

  it('confirmHold on a document whose field holds no number: InvalidArgumentError on field, nothing changed', async () => {
    const c = await coll({
      _id: 'p',
      stock: 'x',
      _holds: [{ id: 'h', amount: 1, expiresAt: new Date(0) }],
    });
    const error = await confirmHold(c, { filter: { _id: 'p' }, field: 'stock', holdId: 'h' }).catch(
      (e: unknown) => e,
    );
    expect((error as InvalidArgumentError).option).toBe('field');
    expect((await c.findOne({ _id: 'p' }))?._holds).toHaveLength(1);
  });

  it('a lapsed hold without a number field is not reclaimed by the sweep (nothing written)', async () => {
    const c = await coll({ _id: 'p', _holds: [{ id: 'h', amount: 1, expiresAt: new Date(0) }] });
    expect(await releaseExpiredHolds(c, { field: 'stock' })).toEqual({ matched: 1, reclaimed: 0 });
  });
});

describe('documents with a field named like the projection', () => {
  it('a stored field "r" (an array of documents) does not change what the calls report', async () => {
    const c = await coll({ _id: 'p', stock: 5, r: [{ mine: 1 }, { live: 2 }] });
    const opts = { filter: { _id: 'p' }, field: 'stock' };
    expect(await holdQuantity(c, { ...opts, amount: 9, holdId: 'h', ttlMs: LONG_TTL })).toEqual({
      outcome: 'insufficient',
      available: 5,
    });
    expect(
      (await holdQuantity(c, { ...opts, amount: 2, holdId: 'h', ttlMs: LONG_TTL })).outcome,
    ).toBe('held');
    expect(await confirmHold(c, { ...opts, holdId: 'h' })).toMatchObject({
      outcome: 'confirmed',
      amount: 2,
    });
    expect((await c.findOne({ _id: 'p' }))?.r).toEqual([{ mine: 1 }, { live: 2 }]);
  });
});

describe('bounds exactly at their limits', () => {
  it('maxHolds: the holds up to the bound are taken, the next is refused', async () => {
    const c = await coll({ _id: 'p', stock: 10 });
    const hold = (holdId: string) =>
      holdQuantity(c, {
        filter: { _id: 'p' },
        field: 'stock',
        amount: 1,
        holdId,
        ttlMs: LONG_TTL,
        maxHolds: 3,
      });
    expect([
      (await hold('a')).outcome,
      (await hold('b')).outcome,
      (await hold('c')).outcome,
    ]).toEqual(['held', 'held', 'held']);
    expect((await hold('d')).outcome).toBe('tooManyHolds');
  });

  it('floor: exactly down to the floor is held; one more is insufficient with available 0', async () => {
    const c = await coll({ _id: 'p', stock: 5 });
    const hold = (holdId: string, amount: number) =>
      holdQuantity(c, {
        filter: { _id: 'p' },
        field: 'stock',
        amount,
        holdId,
        ttlMs: LONG_TTL,
        floor: 2,
      });
    expect((await hold('a', 3)).outcome).toBe('held');
    expect(await hold('b', 1)).toEqual({ outcome: 'insufficient', available: 0 });
  });

  it('limits accepted at the maximum: maxHolds 1000, keepSettled 1000, ttlMs ten years', async () => {
    const c = await coll({ _id: 'p', stock: 10 });
    const result = await holdQuantity(c, {
      filter: { _id: 'p' },
      field: 'stock',
      amount: 1,
      holdId: 'x'.repeat(200),
      ttlMs: 10 * 365 * 24 * 60 * 60 * 1000,
      maxHolds: 1000,
      keepSettled: 1000,
    });
    expect(result.outcome).toBe('held');
  });

  it('overlapping fields are refused with the option that overlaps', async () => {
    const c = await coll();
    const base = { filter: { _id: 'p' }, field: 'a.b', amount: 1, holdId: 'h', ttlMs: 5 };
    for (const [options, option] of [
      [{ ...base, holdsField: 'a' }, 'holdsField'],
      [{ ...base, settledField: 'a.b.c' }, 'settledField'],
      [{ ...base, holdsField: 'x', settledField: 'x.y' }, 'settledField'],
    ] as const) {
      const error = await holdQuantity(c, options).catch((e: unknown) => e);
      expect((error as InvalidArgumentError).option).toBe(option);
    }
    expect(t.commands.started).toHaveLength(0);
  });
});
