/**
 * `prepareMongoose(connection)`: what Mongoose is told not to do on its own (autoCreate,
 * autoIndex off in models.ts), done once at startup, plus the sample products. Safe to run twice.
 */
import { ensureIdempotencyIndexes } from 'mongo-atomics';
import type { Connection } from 'mongoose';
import { COLLECTIONS } from '../model.js';
import { SAMPLE } from '../setup.js';
import { inventoryModels } from './models.js';

export async function prepareMongoose(connection: Connection): Promise<typeof SAMPLE> {
  const { Product, Order } = inventoryModels(connection);
  const db = connection.db;
  if (db === undefined) throw new TypeError('prepareMongoose: the connection is not open yet');
  await ensureIdempotencyIndexes(db.collection(COLLECTIONS.idempotencyKeys));
  // Collections before the first transaction (a transaction must not be what creates them),
  // and the schemas' indexes now rather than in the background.
  const existing = new Set(
    (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name),
  );
  for (const model of [Product, Order]) {
    if (!existing.has(model.collection.collectionName)) await model.createCollection();
    await model.createIndexes();
  }
  const samples = [
    { _id: SAMPLE.keyboard, name: 'Keyboard', stock: 30, price: 4_900 },
    { _id: SAMPLE.mouse, name: 'Mouse', stock: 20, price: 1_900 },
    { _id: SAMPLE.monitor, name: 'Monitor', stock: 2, price: 19_900 },
  ];
  for (const { _id, ...fields } of samples) {
    await Product.updateOne({ _id }, { $setOnInsert: fields }, { upsert: true });
  }
  return SAMPLE;
}
