/**
 * `prepare(db)`: the indexes the inventory app needs and a little sample data. Safe to run
 * twice (indexes are created only if missing, samples are upserted under fixed ids).
 */
import { ensureIdempotencyIndexes } from 'mongo-atomics';
import { type Db, ObjectId } from 'mongodb';
import { type CartDoc, COLLECTIONS, type ProductDoc } from './model.js';

/** Fixed ids, so the first curl printed at startup works on every run. */
export const SAMPLE = {
  keyboard: new ObjectId('65aa7fae0000000000000001'),
  mouse: new ObjectId('65aa7fae0000000000000002'),
  monitor: new ObjectId('65aa7fae0000000000000003'),
  cart: new ObjectId('65aa7fae00000000000000c1'),
} as const;

export async function prepare(db: Db): Promise<typeof SAMPLE> {
  // The TTL index that deletes idempotency records once their retention has passed
  // (withIdempotencyKey's records carry `expiresAt`). Without it they pile up forever.
  await ensureIdempotencyIndexes(db.collection(COLLECTIONS.idempotencyKeys));
  // Create the collections up front: transactions must not be the first to create them.
  const existing = new Set(
    (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name),
  );
  for (const name of Object.values(COLLECTIONS)) {
    if (!existing.has(name)) await db.createCollection(name);
  }

  const products = db.collection<ProductDoc>(COLLECTIONS.products);
  const samples: ProductDoc[] = [
    { _id: SAMPLE.keyboard, name: 'Keyboard', stock: 30, price: 4_900 },
    { _id: SAMPLE.mouse, name: 'Mouse', stock: 20, price: 1_900 },
    { _id: SAMPLE.monitor, name: 'Monitor', stock: 2, price: 19_900 },
  ];
  for (const { _id, ...fields } of samples) {
    // $setOnInsert: a restart keeps the stock the service has sold down to.
    await products.updateOne({ _id }, { $setOnInsert: fields }, { upsert: true });
  }
  await db.collection<CartDoc>(COLLECTIONS.carts).updateOne(
    { _id: SAMPLE.cart },
    {
      $setOnInsert: {
        lines: [
          { productId: SAMPLE.keyboard, qty: 1 },
          { productId: SAMPLE.mouse, qty: 2 },
        ],
      },
    },
    { upsert: true },
  );
  return SAMPLE;
}
