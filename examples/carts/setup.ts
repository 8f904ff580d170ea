/**
 * Startup work for the carts example: the indexes the app relies on, and a little sample data.
 * Both are idempotent: running `prepare` twice changes nothing the second time.
 */
import { type Db, ObjectId } from 'mongodb';
import { collections, type Line, type Product } from './cart.js';

/** Fixed ids, so the sample curl lines in the README work on every start. */
export const SAMPLE = {
  tee: ObjectId.createFromHexString('64b000000000000000000001'),
  hoodie: ObjectId.createFromHexString('64b000000000000000000002'),
  cap: ObjectId.createFromHexString('64b000000000000000000003'),
  userId: ObjectId.createFromHexString('64b0000000000000000000a1'),
  sessionId: ObjectId.createFromHexString('64b0000000000000000000b1'),
} as const;

export const PRODUCTS: readonly Product[] = [
  {
    _id: SAMPLE.tee,
    name: 'T-shirt',
    price: 1500,
    sizes: ['S', 'M', 'L'],
    colors: ['black', 'white'],
  },
  { _id: SAMPLE.hoodie, name: 'Hoodie', price: 4500, sizes: ['M', 'L'], colors: ['grey'] },
  { _id: SAMPLE.cap, name: 'Cap', price: 1200, sizes: ['one-size'], colors: ['black', 'red'] },
];

/**
 * One cart per user: `carts.userId` is unique. Without it a bug (or an upsert) could create
 * two carts for one user, and every "find the user's cart" would pick one of them at random.
 */
export async function createIndexes(db: Db): Promise<void> {
  await collections(db).carts.createIndex({ userId: 1 }, { unique: true, name: 'userId_unique' });
}

export interface Sample {
  readonly userId: ObjectId;
  readonly sessionId: ObjectId;
  readonly productId: ObjectId;
}

/** Creates the indexes and the sample catalogue, a user with an empty cart and a guest session with one line. */
export async function prepare(db: Db): Promise<Sample> {
  await createIndexes(db);
  const { products, carts, sessions } = collections(db);
  for (const product of PRODUCTS) {
    await products.updateOne({ _id: product._id }, { $setOnInsert: product }, { upsert: true });
  }
  await carts.updateOne(
    { userId: SAMPLE.userId },
    { $setOnInsert: { userId: SAMPLE.userId, courses: [] } },
    { upsert: true },
  );
  const guestLine: Line = {
    productId: SAMPLE.tee,
    size: 'M',
    color: 'black',
    quantity: 2,
    name: 'T-shirt',
    price: 1500,
  };
  await sessions.updateOne(
    { _id: SAMPLE.sessionId },
    { $setOnInsert: { data: { cart: [guestLine] }, createdAt: new Date() } },
    { upsert: true },
  );
  return { userId: SAMPLE.userId, sessionId: SAMPLE.sessionId, productId: SAMPLE.tee };
}
