/**
 * claimOnce: outcomes, round trips, argument validation, transactions, and the payment race of
 * seed 002 (two webhook deliveries both see `isPaid: false`).
 */
import { ObjectId } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { claimOnce } from '../src/claim-once.js';
import { InvalidArgumentError, isInvalidArgumentError } from '../src/errors.js';
import { useTestDatabase } from './support/mongo.js';
import { barrier, race, useRaceClients } from './support/race.js';

interface Order {
  _id: string;
  status?: string | null;
  isPaid?: boolean;
  paidAt?: Date;
  paymentId?: string;
  payment?: { state: string };
}

const t = useTestDatabase('claim_once');
const WORKERS = 50;
const clients = useRaceClients(WORKERS);

async function orders(docs: Order[]) {
  const coll = t.db.collection<Order>(t.uniqueName('orders'));
  if (docs.length > 0) await coll.insertMany(docs);
  t.commands.reset();
  return coll;
}

describe('claimOnce outcomes', () => {
  it('claims a pending document, writes `set` with it and returns the document after', async () => {
    const coll = await orders([{ _id: 'o1', status: 'pending' }]);
    const paidAt = new Date('2026-11-23T10:00:00Z');
    const result = await claimOnce(coll, {
      filter: { _id: 'o1' },
      field: 'status',
      from: 'pending',
      to: 'paid',
      set: { paidAt, paymentId: 'pay_1' },
    });
    expect(result).toEqual({
      outcome: 'claimed',
      document: { _id: 'o1', status: 'paid', paidAt, paymentId: 'pay_1' },
    });
    expect(await coll.findOne({ _id: 'o1' })).toEqual(result.document);
  });

  it('a second claim resolves alreadyClaimed with the current document and changes nothing', async () => {
    const coll = await orders([{ _id: 'o1', status: 'paid', paymentId: 'first' }]);
    const result = await claimOnce(coll, {
      filter: { _id: 'o1' },
      field: 'status',
      from: 'pending',
      to: 'paid',
      set: { paymentId: 'second' },
    });
    expect(result).toEqual({
      outcome: 'alreadyClaimed',
      document: { _id: 'o1', status: 'paid', paymentId: 'first' },
    });
  });

  it('without `from`: a second claim resolves alreadyClaimed with the current document and changes nothing', async () => {
    const coll = await orders([{ _id: 'o1', status: 'pending' }]);
    const claim = (paymentId: string) =>
      claimOnce(coll, { filter: { _id: 'o1' }, field: 'status', to: 'paid', set: { paymentId } });
    expect(await claim('first')).toEqual({
      outcome: 'claimed',
      document: { _id: 'o1', status: 'paid', paymentId: 'first' },
    });
    t.commands.reset();
    const second = await claim('second');
    expect(second).toEqual({
      outcome: 'alreadyClaimed',
      document: { _id: 'o1', status: 'paid', paymentId: 'first' },
    });
    // The default guard (`status` ≠ `to`) refused it in the update itself; one read told why.
    expect(t.commands.names()).toEqual(['findAndModify', 'find']);
    expect(t.commands.started[0]?.command.query).toEqual({
      $and: [{ _id: 'o1' }, { status: { $ne: 'paid' } }],
    });
    expect(await coll.findOne({ _id: 'o1' })).toEqual(second.document);
  });

  it('a state outside `from` resolves preconditionFailed', async () => {
    const coll = await orders([{ _id: 'o1', status: 'cancelled' }]);
    const result = await claimOnce(coll, {
      filter: { _id: 'o1' },
      field: 'status',
      from: ['pending', 'failed'],
      to: 'paid',
    });
    expect(result).toEqual({
      outcome: 'preconditionFailed',
      document: { _id: 'o1', status: 'cancelled' },
    });
  });

  it('a failing `requires` resolves preconditionFailed (finalize only paid orders)', async () => {
    const coll = await orders([{ _id: 'o1', status: 'open', isPaid: false }]);
    const result = await claimOnce(coll, {
      filter: { _id: 'o1' },
      field: 'status',
      to: 'finalized',
      requires: { isPaid: true },
    });
    expect(result.outcome).toBe('preconditionFailed');
    expect(await coll.findOne({ _id: 'o1' })).toEqual({ _id: 'o1', status: 'open', isPaid: false });
  });

  it('alreadyClaimed wins over a failing `requires` (the state already says it happened)', async () => {
    const coll = await orders([{ _id: 'o1', status: 'finalized', isPaid: false }]);
    const result = await claimOnce(coll, {
      filter: { _id: 'o1' },
      field: 'status',
      to: 'finalized',
      requires: { isPaid: true },
    });
    expect(result.outcome).toBe('alreadyClaimed');
  });

  it('without `from`, a missing state field can be claimed', async () => {
    const coll = await orders([{ _id: 'o1' }]);
    const result = await claimOnce(coll, { filter: { _id: 'o1' }, field: 'status', to: 'paid' });
    expect(result).toEqual({ outcome: 'claimed', document: { _id: 'o1', status: 'paid' } });
  });

  it('`from: null` accepts a missing field but not another state', async () => {
    const coll = await orders([{ _id: 'a' }, { _id: 'b', status: 'pending' }]);
    const options = { field: 'status', from: null, to: 'paid' } as const;
    expect((await claimOnce(coll, { ...options, filter: { _id: 'a' } })).outcome).toBe('claimed');
    expect((await claimOnce(coll, { ...options, filter: { _id: 'b' } })).outcome).toBe(
      'preconditionFailed',
    );
  });

  it('a dotted state field is claimed in place', async () => {
    const coll = await orders([{ _id: 'o1', payment: { state: 'authorized' } }]);
    const result = await claimOnce(coll, {
      filter: { _id: 'o1' },
      field: 'payment.state',
      from: 'authorized',
      to: 'captured',
    });
    expect(result).toEqual({
      outcome: 'claimed',
      document: { _id: 'o1', payment: { state: 'captured' } },
    });
    const again = await claimOnce(coll, {
      filter: { _id: 'o1' },
      field: 'payment.state',
      from: 'authorized',
      to: 'captured',
    });
    expect(again.outcome).toBe('alreadyClaimed');
  });

  it('ObjectId states compare by value', async () => {
    const owner = new ObjectId();
    const coll = t.db.collection<{ _id: string; owner?: ObjectId }>(t.uniqueName('locks'));
    await coll.insertOne({ _id: 'job' });
    expect(
      (await claimOnce(coll, { filter: { _id: 'job' }, field: 'owner', to: owner })).outcome,
    ).toBe('claimed');
    const again = await claimOnce(coll, {
      filter: { _id: 'job' },
      field: 'owner',
      to: new ObjectId(owner.toHexString()),
    });
    expect(again.outcome).toBe('alreadyClaimed');
  });

  it('a missing document resolves notFound', async () => {
    const coll = await orders([]);
    expect(await claimOnce(coll, { filter: { _id: 'nope' }, field: 'status', to: 'paid' })).toEqual(
      { outcome: 'notFound' },
    );
  });
});

describe('claimOnce round trips', () => {
  it('success: exactly one findAndModify', async () => {
    const coll = await orders([{ _id: 'o1', status: 'pending' }]);
    await claimOnce(coll, { filter: { _id: 'o1' }, field: 'status', to: 'paid' });
    expect(t.commands.names()).toEqual(['findAndModify']);
  });

  it.each([
    ['alreadyClaimed', { _id: 'o1', status: 'paid' }],
    ['preconditionFailed', { _id: 'o1', status: 'void' }],
  ] as const)('%s: one findAndModify, then one find', async (_outcome, doc) => {
    const coll = await orders([doc]);
    await claimOnce(coll, { filter: { _id: 'o1' }, field: 'status', from: 'pending', to: 'paid' });
    expect(t.commands.names()).toEqual(['findAndModify', 'find']);
  });

  it('notFound: one findAndModify, then one find', async () => {
    const coll = await orders([]);
    await claimOnce(coll, { filter: { _id: 'o1' }, field: 'status', to: 'paid' });
    expect(t.commands.names()).toEqual(['findAndModify', 'find']);
  });
});

describe('claimOnce argument validation', () => {
  const valid = { filter: { _id: 'o1' }, field: 'status', to: 'paid' };
  it.each([
    ['options', null],
    ['filter', { ...valid, filter: undefined }],
    ['filter', { ...valid, filter: {} }],
    ['filter', { ...valid, filter: 'o1' }],
    ['field', { ...valid, field: '' }],
    ['field', { ...valid, field: '$set' }],
    ['field', { ...valid, field: 'a..b' }],
    ['to', { ...valid, to: undefined }],
    ['to', { ...valid, to: { $ne: 'x' } }],
    ['to', { ...valid, to: ['paid'] }],
    ['to', { ...valid, to: Number.NaN }],
    ['from', { ...valid, from: [] }],
    ['from', { ...valid, from: 'paid' }],
    ['from.1', { ...valid, from: ['pending', { $gt: '' }] }],
    ['set', { ...valid, set: 'x' }],
    ['set.status', { ...valid, set: { status: 'other' } }],
    ['set.status.at', { ...valid, set: { 'status.at': 1 } }],
    ['set.$inc', { ...valid, set: { $inc: { n: 1 } } }],
    ['requires', { ...valid, requires: [] }],
    ['session', { ...valid, session: {} }],
    ['amount', { ...valid, amount: 1 }],
  ])('invalid %s → InvalidArgumentError naming it, nothing sent', async (option, options) => {
    const coll = await orders([{ _id: 'o1', status: 'pending' }]);
    const error = await claimOnce(coll, options as never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(isInvalidArgumentError(error)).toBe(true);
    expect((error as InvalidArgumentError).option).toBe(option);
    expect((error as InvalidArgumentError).primitive).toBe('claimOnce');
    expect(t.commands.started).toHaveLength(0);
    expect(await coll.findOne({ _id: 'o1' })).toEqual({ _id: 'o1', status: 'pending' });
  });

  it('a collection that is not a driver Collection → InvalidArgumentError on "collection"', async () => {
    const error = await claimOnce({} as never, valid as never).catch((e: unknown) => e);
    expect((error as InvalidArgumentError).option).toBe('collection');
  });
});

describe('claimOnce in transactions', () => {
  it('joins the caller transaction: an abort undoes the claim', async () => {
    const coll = await orders([{ _id: 'o1', status: 'pending' }]);
    const session = t.client.startSession();
    try {
      session.startTransaction();
      const result = await claimOnce(coll, {
        filter: { _id: 'o1' },
        field: 'status',
        to: 'paid',
        session,
      });
      expect(result.outcome).toBe('claimed');
      await session.abortTransaction();
    } finally {
      await session.endSession();
    }
    expect(await coll.findOne({ _id: 'o1' })).toEqual({ _id: 'o1', status: 'pending' });
  });

  it('joins the caller transaction: a commit keeps the claim', async () => {
    const coll = await orders([{ _id: 'o1', status: 'pending' }]);
    const session = t.client.startSession();
    try {
      await session.withTransaction(async () => {
        await claimOnce(coll, { filter: { _id: 'o1' }, field: 'status', to: 'paid', session });
      });
    } finally {
      await session.endSession();
    }
    expect(await coll.findOne({ _id: 'o1' })).toEqual({ _id: 'o1', status: 'paid' });
  });
});

describe('payment verification race (seed 002): 50 concurrent webhook deliveries', () => {
  async function pendingOrder() {
    const name = t.uniqueName('race');
    await t.db.collection<Order>(name).insertOne({ _id: 'o1', isPaid: false, status: 'pending' });
    return name;
  }

  it('naive: "read isPaid, then set it" lets several deliveries fulfil the same order', async () => {
    const name = await pendingOrder();
    const allRead = barrier(WORKERS);
    const fulfilled = await Promise.all(
      clients.all.map(async (client, i) => {
        const coll = client.db(t.db.databaseName).collection<Order>(name);
        const order = await coll.findOne({ _id: 'o1' });
        await allRead();
        if (order?.isPaid) return false;
        await coll.updateOne({ _id: 'o1' }, { $set: { isPaid: true, paymentId: `pay_${i}` } });
        return true;
      }),
    );
    expect(fulfilled.filter(Boolean).length).toBeGreaterThan(1);
  });

  it('claimOnce without `from`: exactly one delivery claims the payment, 49 learn it was already claimed', async () => {
    const name = await pendingOrder();
    const { tally, values } = await race(WORKERS, (i) =>
      claimOnce(clients.all[i]!.db(t.db.databaseName).collection<Order>(name), {
        filter: { _id: 'o1' },
        field: 'status',
        to: 'paid',
        set: { isPaid: true, paymentId: `pay_${i}` },
      }),
    );
    expect(tally).toEqual({ claimed: 1, alreadyClaimed: WORKERS - 1 });
    const claimed = values.filter((r) => r.outcome === 'claimed');
    const final = await t.db.collection<Order>(name).findOne({ _id: 'o1' });
    expect(final).toEqual(claimed[0]?.document);
  });

  it('claimOnce: exactly one delivery claims the payment, 49 learn it was already claimed', async () => {
    const name = await pendingOrder();
    const { tally, values } = await race(WORKERS, (i) =>
      claimOnce(clients.all[i]!.db(t.db.databaseName).collection<Order>(name), {
        filter: { _id: 'o1' },
        field: 'status',
        from: 'pending',
        to: 'paid',
        set: { isPaid: true, paymentId: `pay_${i}` },
      }),
    );
    expect(tally).toEqual({ claimed: 1, alreadyClaimed: WORKERS - 1 });
    const claimed = values.filter((r) => r.outcome === 'claimed');
    const final = await t.db.collection<Order>(name).findOne({ _id: 'o1' });
    expect(final).toEqual(claimed[0]?.document);
  });
});
