/**
 * A Mongoose user's first mistake: passing the Model (`Product`) where the primitives take a
 * driver Collection (`Product.collection`). Every primitive that takes a collection refuses it
 * with an InvalidArgumentError that says what to pass instead, before anything is sent.
 *
 * Uses a real Mongoose 9 Model on a Connection whose driver client is monitored, so "nothing
 * sent" covers Mongoose's own client too.
 */
import type { Collection } from 'mongodb';
import mongoose from 'mongoose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyProgress } from '../src/apply-progress.js';
import { addToSetWithCapacity, removeFromSetWithCapacity } from '../src/capacity-set.js';
import { claimOnce } from '../src/claim-once.js';
import { InvalidArgumentError } from '../src/errors.js';
import { guardedDecrement, guardedDecrementAll } from '../src/guarded-decrement.js';
import { ensureIdempotencyIndexes, withIdempotencyKey } from '../src/idempotency.js';
import { incrementOrPushArrayItem } from '../src/increment-or-push.js';
import { updateWithVersion } from '../src/update-with-version.js';
import { rejectionOf } from './support/async.js';
import { type CommandLog, recordCommands, testUri, useTestDatabase } from './support/mongo.js';

const t = useTestDatabase('mongoose_model');
let connection: mongoose.Connection;
let mongooseCommands: CommandLog;

beforeAll(async () => {
  connection = await mongoose
    .createConnection(testUri(), {
      dbName: t.db.databaseName,
      autoIndex: false,
      autoCreate: false,
      bufferCommands: false,
      monitorCommands: true,
    })
    .asPromise();
  mongooseCommands = recordCommands(connection.getClient());
});

afterAll(async () => {
  await connection?.close();
});

/** Each primitive that takes a collection, called with `target` in its place. */
const CALLS: [name: string, call: (target: never) => Promise<unknown>][] = [
  ['guardedDecrement', (c) => guardedDecrement(c, { filter: {}, field: 'stock', amount: 1 })],
  [
    'guardedDecrementAll',
    (c) =>
      guardedDecrementAll(c, {
        client: t.client,
        field: 'stock',
        items: [{ filter: {}, amount: 1 }],
      }),
  ],
  [
    'addToSetWithCapacity',
    (c) =>
      addToSetWithCapacity(c, {
        filter: {},
        array: 'members',
        member: 'u1',
        counter: 'count',
        capacity: 5,
      }),
  ],
  [
    'removeFromSetWithCapacity',
    (c) =>
      removeFromSetWithCapacity(c, {
        filter: {},
        array: 'members',
        member: 'u1',
        counter: 'count',
      }),
  ],
  ['claimOnce', (c) => claimOnce(c, { filter: {}, field: 'status', to: 'paid' })],
  [
    'incrementOrPushArrayItem',
    (c) =>
      incrementOrPushArrayItem(c, {
        filter: {},
        array: 'items',
        match: { sku: 'a' },
        inc: { qty: 1 },
      }),
  ],
  ['updateWithVersion', (c) => updateWithVersion(c, { filter: {}, update: () => null })],
  ['applyProgress', (c) => applyProgress(c, { filter: {}, inc: { xp: 1 } })],
  ['withIdempotencyKey', (c) => withIdempotencyKey(c, { key: 'k', fn: async () => 1 })],
  ['ensureIdempotencyIndexes', (c) => ensureIdempotencyIndexes(c)],
];

describe('a Mongoose Model passed instead of Model.collection', () => {
  it.each(CALLS)(
    '%s: InvalidArgumentError on "collection" saying to pass Product.collection; nothing sent',
    async (name, call) => {
      const Product = connection.model(
        `Product_${name}`,
        new mongoose.Schema({ stock: Number, status: String }),
      );
      t.commands.reset();
      mongooseCommands.reset();
      const error = await rejectionOf(call(Product as never));
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).primitive).toBe(name);
      expect((error as InvalidArgumentError).option).toBe('collection');
      expect((error as Error).message).toBe(
        `${name}: option "collection" must be a driver Collection, got the Mongoose Model Product_${name}: pass its driver collection, Product_${name}.collection, instead (these calls bypass Mongoose middleware, validation and timestamps)`,
      );
      expect(t.commands.names()).toEqual([]);
      expect(mongooseCommands.names()).toEqual([]);
    },
  );

  it('the Model.collection it points to is accepted (the same call then runs)', async () => {
    const Product = connection.model(
      'ProductAccepted',
      new mongoose.Schema({ _id: String, stock: Number }),
    );
    await Product.collection.insertOne({ _id: 'p1', stock: 2 } as never);
    // The documented cast: the Model's collection, typed with the document's shape.
    const products = Product.collection as unknown as Collection<{ _id: string; stock: number }>;
    const result = await guardedDecrement(products, {
      filter: { _id: 'p1' },
      field: 'stock',
      amount: 1,
    });
    expect(result).toEqual({ outcome: 'decremented', document: { _id: 'p1', stock: 1 } });
  });

  it('a model name that is not an identifier is quoted', async () => {
    const Odd = connection.model('odd name', new mongoose.Schema({ stock: Number }));
    const error = await rejectionOf(
      guardedDecrement(Odd as never, { filter: {}, field: 'stock', amount: 1 }),
    );
    expect((error as Error).message).toContain(
      'got the Mongoose Model "odd name": pass its driver collection, "odd name".collection, instead',
    );
  });

  it('any other function is still "must be a driver Collection (db.collection(name))"', async () => {
    const error = await rejectionOf(
      guardedDecrement((() => {}) as never, { filter: {}, field: 'stock', amount: 1 }),
    );
    expect((error as Error).message).toBe(
      'guardedDecrement: option "collection" must be a driver Collection (db.collection(name)), got a function',
    );
  });
});
