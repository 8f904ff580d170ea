/**
 * claimOnce: the messages and option names of its own checks, the overlap of `set` with a state
 * field nested below one of its keys, and the primitive's name in the failure read's error.
 * Written to kill the mutants tests/claim-once.test.ts left alive (npm run mutation;
 * docs/reliability.md, "Mutation testing").
 */
import type { Document } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { claimOnce } from '../../src/claim-once.js';
import { InvalidArgumentError, MongoAtomicsError } from '../../src/errors.js';
import { useTestDatabase } from '../support/mongo.js';

interface Order {
  _id: string;
  status: string;
  payment: { state: string };
}

const t = useTestDatabase('mutants_claim_once');

async function orders() {
  const coll = t.db.collection<Order>(t.uniqueName('orders'));
  await coll.insertOne({ _id: 'o1', status: 'pending', payment: { state: 'open' } });
  t.commands.reset();
  return coll;
}

async function refusal(options: Document): Promise<InvalidArgumentError> {
  const coll = await orders();
  const error = await claimOnce(coll, options as never).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(InvalidArgumentError);
  expect(t.commands.started).toHaveLength(0);
  expect(await coll.findOne({ _id: 'o1' })).toEqual({
    _id: 'o1',
    status: 'pending',
    payment: { state: 'open' },
  });
  return error as InvalidArgumentError;
}

const valid = { filter: { _id: 'o1' }, field: 'status', to: 'paid' };

describe('claimOnce: what its own checks say', () => {
  it('an empty `from`', async () => {
    const error = await refusal({ ...valid, from: [] });
    expect(error.message).toBe('claimOnce: option "from" must list at least one state');
  });

  it('a `from` holding the target state', async () => {
    const error = await refusal({ ...valid, from: ['pending', 'paid'] });
    expect(error.message).toBe('claimOnce: option "from" must not include the target state `to`');
  });

  it('two `set` keys, one inside the other', async () => {
    const error = await refusal({ ...valid, set: { meta: { a: 1 }, 'meta.b': 2 } });
    expect(error.option).toBe('set.meta.b');
    expect(error.message).toBe('claimOnce: option "set.meta.b" overlaps "meta", also in set');
  });

  it('a `set` key that contains the state field', async () => {
    const error = await refusal({
      ...valid,
      field: 'payment.state',
      set: { payment: { state: 'x' } },
    });
    expect(error.option).toBe('set.payment');
    expect(error.message).toBe(
      'claimOnce: option "set.payment" overlaps the state field "payment.state", which the claim writes itself',
    );
  });

  it('a state field that is the op id log', async () => {
    const error = await refusal({ ...valid, field: '_opIds', opId: 'req-1' });
    expect(error.option).toBe('field');
  });
});

describe('claimOnce: the failure read', () => {
  it("names claimOnce when the server's reply to the failure read lacks the verdicts", async () => {
    // A server before 4.4 would not evaluate the projection's expressions; neither mongod 4.4+
    // nor the offline server can be made to, so the real collection's findOne is replaced by
    // one resolving such a reply (the claim's findAndModify still goes to the server).
    const coll = await orders();
    coll.findOne = (async () => ({ document: { _id: 'o1' } })) as never;
    const error = await claimOnce(coll, { ...valid, from: 'open' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MongoAtomicsError);
    expect((error as Error).message).toBe(
      'claimOnce: the server did not evaluate the find projection (MongoDB 4.4+ is required)',
    );
    expect(t.commands.names()).toEqual(['findAndModify']);
  });
});
