/**
 * addToSetWithCapacity / removeFromSetWithCapacity: the messages of their own checks, an array
 * nested inside the counter, and the primitive's name in the failure read's error. Written to
 * kill the mutants tests/capacity-set.test.ts left alive (npm run mutation; docs/reliability.md,
 * "Mutation testing").
 */
import type { Collection } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { addToSetWithCapacity, removeFromSetWithCapacity } from '../../src/capacity-set.js';
import { InvalidArgumentError, isMongoAtomicsError } from '../../src/errors.js';
import { useTestDatabase } from '../support/mongo.js';

const t = useTestDatabase('mutants_capacity_set');

interface Event {
  _id: string;
  capacity: number;
  count: number;
  members: string[];
}

async function events() {
  const coll = t.db.collection<Event>(t.uniqueName('events'));
  await coll.insertOne({ _id: 'e1', capacity: 1, count: 1, members: ['u0'] });
  t.commands.reset();
  return coll;
}

const base = { filter: { _id: 'e1' }, member: 'u1' };

describe('capacity set option checks: which option, what message, nothing sent', () => {
  it.each([
    ['add', { ...base, array: 'x.list', counter: 'x', capacity: 5 }],
    ['remove', { ...base, array: 'x.list', counter: 'x' }],
  ])(
    '%s: an array inside the counter ("x.list" under "x") is refused on counter',
    async (kind, options) => {
      const coll = await events();
      const error = await (kind === 'add'
        ? addToSetWithCapacity(coll, options as never)
        : removeFromSetWithCapacity(coll, options as never)
      ).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(error).toMatchObject({ option: 'counter' });
      expect((error as Error).message).toContain('overlaps the array "x.list"');
      expect((error as Error).message).toContain('the counter must be a field of its own');
      expect(t.commands.names()).toEqual([]);
    },
  );

  it('a capacity field that is the counter is refused with its reason', async () => {
    const coll = await events();
    const error = await addToSetWithCapacity(coll, {
      ...base,
      array: 'members',
      counter: 'count',
      capacity: 'count',
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({ option: 'capacity' });
    expect((error as Error).message).toContain(
      'must name a field of its own, not the counter or the array',
    );
    expect(t.commands.names()).toEqual([]);
  });
});

describe("the failure read's error names the primitive", () => {
  // A reply without the verdicts asked for (what a server before 4.4 would answer, if it
  // answered at all): refused, with the primitive's name first. With an `_id` filter the
  // verdicts come in the findAndModify reply (no `r`: unevaluated); with another filter, from
  // the find after it.
  const stub = {
    collectionName: 'old_server',
    findOneAndUpdate: async (filter: { _id?: unknown }) =>
      typeof filter._id === 'string' ? { _id: 'e1', capacity: 1, count: 1, members: ['u0'] } : null,
    findOne: async () => ({ _id: 'e1', capacity: 1, count: 1, members: ['u0'] }),
  } as unknown as Collection<Event>;

  it.each(
    [{ _id: 'e1' }, { _id: { $in: ['e1'] } }].flatMap((filter) => [
      [
        'addToSetWithCapacity',
        filter,
        () =>
          addToSetWithCapacity(stub, {
            ...base,
            filter,
            array: 'members',
            counter: 'count',
            capacity: 'capacity',
          }),
      ] as const,
      [
        'removeFromSetWithCapacity',
        filter,
        () =>
          removeFromSetWithCapacity(stub, { ...base, filter, array: 'members', counter: 'count' }),
      ] as const,
    ]),
  )('%s, filter %o', async (name, _filter, call) => {
    const error = await call().catch((e: unknown) => e);
    expect(isMongoAtomicsError(error)).toBe(true);
    expect((error as Error).message.startsWith(`${name}: `)).toBe(true);
  });
});
