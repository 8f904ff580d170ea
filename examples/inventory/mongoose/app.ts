/**
 * The inventory service's orders on Mongoose: the same HTTP contract as the driver app
 * (../orders.ts: POST /orders with Idempotency-Key, GET /orders/:id, GET /products/:id), with
 * the models of seed 003.
 *
 * The primitives take driver objects, and Mongoose hands them out:
 * - `Product.collection`: the model's collection, passed to `guardedDecrementAll`;
 * - `connection.getClient()`: the MongoClient the transactions run on (the same client the
 *   models use, so the session's statements are in its transaction);
 * - the `session` of that transaction, passed to `guardedDecrementAll` and to `Order.create`:
 *   the stock and the order commit together or not at all.
 *
 * Mongoose and mongo-atomics must resolve the same `mongodb` package (`npm ls mongodb`),
 * otherwise the types of `Product.collection` and of the session do not line up.
 */
import express, { type Express } from 'express';
import { guardedDecrementAll } from 'mongo-atomics';
import type { Connection } from 'mongoose';
import { errorHandler, notFound } from '../../shared/http.js';
import { COLLECTIONS, type OrderDoc, orderView, type ProductDoc, productView } from '../model.js';
import { type OrderStore, ordersRouter } from '../orders.js';
import { inventoryModels } from './models.js';

/** Orders stored through the Mongoose models. */
export function mongooseOrderStore(connection: Connection): OrderStore {
  const { Product, Order } = inventoryModels(connection);
  const db = connection.db;
  if (db === undefined) throw new TypeError('createMongooseApp: the connection is not open yet');
  return {
    client: connection.getClient(),
    idempotencyKeys: db.collection(COLLECTIONS.idempotencyKeys),
    async place(session, order) {
      // The same guarded, all-or-nothing decrement as the driver app, on the model's collection
      // and in the caller's transaction. Not Product.findOneAndUpdate per line (seed 003's
      // "better approach"): outside a transaction that leaves partial decrements, and it stops
      // at the first short line instead of listing every one.
      const taken = await guardedDecrementAll(Product.collection, {
        session,
        field: 'stock',
        items: order.items.map((line) => ({ filter: { _id: line.productId }, amount: line.qty })),
      });
      if (taken.outcome !== 'decremented') return taken;
      // Through the model (casting, validators), in the same transaction. The response is built
      // from what this request inserted: never "the latest order" (seed 003's
      // `Order.find().sort({ _id: -1 }).limit(1)` returns someone else's under concurrency).
      const doc: OrderDoc = { _id: order._id, items: order.items, createdAt: order.createdAt };
      await Order.create([doc], { session });
      return { outcome: 'placed', order: orderView(doc) };
    },
    async findOrder(id) {
      const order = await Order.findById(id).lean<OrderDoc>();
      return order === null ? null : orderView(order);
    },
    async findProduct(id) {
      const product = await Product.findById(id).lean<ProductDoc>();
      return product === null ? null : productView(product);
    },
  };
}

/** The Mongoose app; call `prepareMongoose(connection)` (setup.ts) once before serving it. */
export function createMongooseApp(connection: Connection): Express {
  const app = express();
  app.use(express.json({ limit: '32kb' }));
  app.use(ordersRouter(mongooseOrderStore(connection)));
  app.use(notFound);
  app.use(errorHandler);
  return app;
}
