/**
 * addToSetWithCapacity / removeFromSetWithCapacity with an `_id` filter: one command on every
 * path (issue 11), through updateWithVerdicts (src/failure-read.ts). The pipeline write must
 * leave exactly what the operator update (`$inc` + `$addToSet`/`$pull` + the op log `$push`)
 * leaves, types and field order included; and a refused call must write nothing.
 */
import { Decimal128, type Document, Double, Int32, Long } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { addToSetWithCapacity, removeFromSetWithCapacity } from '../src/capacity-set.js';
import { useTestDatabase } from './support/mongo.js';

const t = useTestDatabase('capacity_set_one_command');

const raw = { promoteLongs: false, promoteValues: false } as const;

type Event = Document & { _id: string };

async function stored(docs: Document[]) {
  const coll = t.db.collection<Event>(t.uniqueName('events'));
  if (docs.length > 0) await coll.insertMany(docs.map((doc) => ({ ...doc }) as Event));
  t.commands.reset();
  return coll;
}

async function rawDoc(coll: { findOne: (f: Document, o: Document) => Promise<unknown> }) {
  return (await coll.findOne({ _id: 'e1' }, raw)) as Document | null;
}

const add = { array: 'members', counter: 'count', capacity: 'capacity', member: 'u1' } as const;
const remove = { array: 'members', counter: 'count', member: 'u1' } as const;

describe('the one-command write leaves what the operator update leaves (types, field order)', () => {
  // Each document is written twice: through the `_id` path (a pipeline) and through a filter
  // that is no `_id` equality (the operator update), then both are read back unpromoted.
  const adds: [string, Document, Document][] = [
    ['int counter', { capacity: 5, count: new Int32(1), members: ['a'] }, {}],
    [
      'int counter at 2^31-1 (becomes a long)',
      { capacity: Long.fromString('9999999999'), count: new Int32(2147483647), members: [] },
      {},
    ],
    ['long counter', { capacity: 5, count: Long.fromNumber(1), members: ['a'] }, {}],
    ['double counter', { capacity: 5, count: new Double(1.5), members: ['a'] }, {}],
    [
      'Decimal128 counter',
      { capacity: 5, count: Decimal128.fromString('1.0'), members: ['a'] },
      {},
    ],
    ['counter and array missing', { zeta: 1, capacity: 5, alpha: 2 }, {}],
    ['counter, array and op log missing, with opId', { zeta: 1, capacity: 5 }, { opId: 'r1' }],
    [
      'op log full, with opId and size 2',
      { capacity: 5, _opIds: ['a', 'b'], count: 0 },
      { opId: 'r1', opIdLog: { size: 2 } },
    ],
    ['nested paths missing', { capacity: 5, z: 1 }, { array: 'b.members', counter: 'a.count' }],
    [
      'nested parent present',
      { capacity: 5, b: { y: 1 }, a: { x: 1 } },
      { array: 'b.members', counter: 'a.count' },
    ],
  ];
  it.each(adds)('add, %s', async (_case, doc, extra) => {
    const coll = await stored([{ _id: 'e1', ...doc }]);
    const other = await stored([{ _id: 'e1', ...doc }]);
    const one = await addToSetWithCapacity(coll, { ...add, filter: { _id: 'e1' }, ...extra });
    const byId = await rawDoc(coll);
    const two = await addToSetWithCapacity(other, {
      ...add,
      filter: { _id: { $in: ['e1'] } },
      ...extra,
    });
    const byOperators = await rawDoc(other);
    expect(one.outcome).toBe('added');
    expect(two).toEqual(one);
    expect(byId).toStrictEqual(byOperators);
    expect(JSON.stringify(byId)).toBe(JSON.stringify(byOperators));
  });

  const removes: [string, Document, Document][] = [
    [
      'int counter, member twice among others',
      { count: new Int32(3), members: ['a', 'u1', 'b', 'u1'] },
      {},
    ],
    ['long counter', { count: Long.fromNumber(1), members: ['u1'] }, {}],
    ['Decimal128 counter', { count: Decimal128.fromString('2'), members: ['u1', 'x'] }, {}],
    ['counter missing', { members: ['u1'], z: 1 }, {}],
    ['with opId, log missing', { count: 1, members: ['u1'] }, { opId: 'r1' }],
  ];
  it.each(removes)('remove, %s', async (_case, doc, extra) => {
    const coll = await stored([{ _id: 'e1', ...doc }]);
    const other = await stored([{ _id: 'e1', ...doc }]);
    const one = await removeFromSetWithCapacity(coll, {
      ...remove,
      filter: { _id: 'e1' },
      ...extra,
    });
    const byId = await rawDoc(coll);
    const two = await removeFromSetWithCapacity(other, {
      ...remove,
      filter: { _id: { $in: ['e1'] } },
      ...extra,
    });
    const byOperators = await rawDoc(other);
    expect(one.outcome).toBe('removed');
    expect(two).toEqual(one);
    expect(byId).toStrictEqual(byOperators);
    expect(JSON.stringify(byId)).toBe(JSON.stringify(byOperators));
  });
});

describe('one command on failure, with an `_id` filter', () => {
  it.each([
    ['full', { capacity: 1, count: 1, members: ['x'] }, {}],
    ['alreadyMember', { capacity: 1, count: 1, members: ['u1'] }, {}],
    ['alreadyApplied', { capacity: 1, count: 1, members: ['u1'], _opIds: ['r1'] }, { opId: 'r1' }],
  ])('add: %s', async (outcome, doc, extra) => {
    const coll = await stored([{ _id: 'e1', ...doc }]);
    const result = await addToSetWithCapacity(coll, { ...add, filter: { _id: 'e1' }, ...extra });
    expect(result).toEqual({ outcome, document: { _id: 'e1', ...doc } });
    expect(t.commands.names()).toEqual(['findAndModify']);
  });

  it.each([
    ['notMember', { count: 1, members: ['x'] }, {}],
    ['alreadyApplied', { count: 0, members: ['u1'], _opIds: ['r1'] }, { opId: 'r1' }],
  ])('remove: %s', async (outcome, doc, extra) => {
    const coll = await stored([{ _id: 'e1', ...doc }]);
    const result = await removeFromSetWithCapacity(coll, {
      ...remove,
      filter: { _id: 'e1' },
      ...extra,
    });
    expect(result).toEqual({ outcome, document: { _id: 'e1', ...doc } });
    expect(t.commands.names()).toEqual(['findAndModify']);
  });

  it('notFound: one command each', async () => {
    const coll = await stored([]);
    expect(await addToSetWithCapacity(coll, { ...add, filter: { _id: 'e1' } })).toEqual({
      outcome: 'notFound',
    });
    expect(await removeFromSetWithCapacity(coll, { ...remove, filter: { _id: 'e1' } })).toEqual({
      outcome: 'notFound',
    });
    expect(t.commands.names()).toEqual(['findAndModify', 'findAndModify']);
  });
});

describe('a refused call writes nothing', () => {
  // mongod skips the storage write of an update whose result is byte-identical to the stored
  // document (pipeline_executor.cpp "Check for noop"): no oplog entry, nothing for another
  // transaction to conflict with. The offline server's behaviour is pinned in
  // tests/conformance/noop-updates.test.ts.
  it('refused adds and removes inside a transaction leave the document free: another transaction updates it and commits, and so does the first', async () => {
    const doc = { _id: 'e1', capacity: 1, count: 1, members: ['x'], name: 'gig', _opIds: ['r0'] };
    const coll = await stored([doc]);
    const first = t.client.startSession();
    const second = t.client.startSession();
    try {
      first.startTransaction();
      const session = first;
      const outcomes = [
        (await addToSetWithCapacity(coll, { ...add, filter: { _id: 'e1' }, session })).outcome,
        (await addToSetWithCapacity(coll, { ...add, member: 'x', filter: { _id: 'e1' }, session }))
          .outcome,
        (await addToSetWithCapacity(coll, { ...add, filter: { _id: 'e1' }, session, opId: 'r0' }))
          .outcome,
        (await removeFromSetWithCapacity(coll, { ...remove, filter: { _id: 'e1' }, session }))
          .outcome,
        (
          await removeFromSetWithCapacity(coll, {
            ...remove,
            member: 'x',
            filter: { _id: 'e1' },
            session,
            opId: 'r0',
          })
        ).outcome,
      ];
      expect(outcomes).toEqual([
        'full',
        'alreadyMember',
        'alreadyApplied',
        'notMember',
        'alreadyApplied',
      ]);
      second.startTransaction();
      // Had a refused call written (even the same values), this would be a WriteConflict.
      await coll.updateOne({ _id: 'e1' }, { $set: { name: 'concert' } }, { session: second });
      await second.commitTransaction();
      await first.commitTransaction();
    } finally {
      await first.endSession();
      await second.endSession();
    }
    expect(await coll.findOne({ _id: 'e1' })).toEqual({ ...doc, name: 'concert' });
  });

  it('a refused call leaves the document byte for byte as it was (types, field order, op log)', async () => {
    const doc = {
      _id: 'e1',
      // (2.5: the offline server stores a whole-valued double as an int, a gap of its own.)
      seats: { capacity: Long.fromNumber(2), count: new Double(2.5) },
      name: 'gig',
      members: ['a', 'b'],
      _opIds: ['old'],
    };
    const coll = await stored([doc]);
    const result = await addToSetWithCapacity(coll, {
      ...add,
      counter: 'seats.count',
      capacity: 'seats.capacity',
      filter: { _id: 'e1' },
      opId: 'r1',
    });
    expect(result.outcome).toBe('full');
    const after = await rawDoc(coll);
    expect(after).toStrictEqual(doc);
    expect(Object.keys(after ?? {})).toEqual(['_id', 'seats', 'name', 'members', '_opIds']);
    expect(Object.keys(after?.seats ?? {})).toEqual(['capacity', 'count']);
  });
});

describe('data the operators refuse is left to the operator update, which the server refuses as before', () => {
  // The pipeline would accept it (`$ifNull` reads null as missing): its guard requires a
  // numeric or missing counter and an array (or missing) in the array's place instead.
  it('remove, a null counter: TypeMismatch (14) from `$inc`, nothing written', async () => {
    const doc = { _id: 'e1', count: null, members: ['u1'] };
    const coll = await stored([doc]);
    const error = await removeFromSetWithCapacity(coll, {
      ...remove,
      filter: { _id: 'e1' },
    }).catch((e: unknown) => e);
    expect((error as { code?: unknown }).code).toBe(14);
    expect(t.commands.names()).toEqual(['findAndModify', 'findAndModify']);
    expect(await coll.findOne({ _id: 'e1' })).toEqual(doc);
  });

  it('add, a string where the array should be: the server refuses `$addToSet`, nothing written', async () => {
    const doc = { _id: 'e1', capacity: 5, count: 0, members: 'u0' };
    const coll = await stored([doc]);
    const error = await addToSetWithCapacity(coll, { ...add, filter: { _id: 'e1' } }).catch(
      (e: unknown) => e,
    );
    expect((error as { codeName?: unknown }).codeName).toBeDefined();
    expect(t.commands.names()).toEqual(['findAndModify', 'findAndModify']);
    expect(await coll.findOne({ _id: 'e1' })).toEqual(doc);
  });
});
