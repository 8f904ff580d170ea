/**
 * The inventory service (seeds 003 and 002), on the MongoDB driver:
 *
 * - orders (orders.ts): `POST /orders` takes every line's stock or none, with
 *   `guardedDecrementAll` joined into the transaction that inserts the order, and an
 *   `Idempotency-Key` header handled by `withIdempotencyKey`;
 * - checkout (checkout.ts): a signed payment callback processed once (`claimOnce`), then
 *   finalization into exactly one order per checkout (`claimOnce` + `guardedDecrementAll` in
 *   one `withRetryingTransaction`);
 * - holds (holds.ts): hold-then-pay, `holdQuantity` reserves units while the buyer pays,
 *   `confirmHold` on payment, `releaseHold` on cancel; lapsed holds come back by themselves.
 *
 * Every write goes through a primitive of mongo-atomics; see README.md for the endpoints.
 */
import express, { type Express } from 'express';
import { guardedDecrementAll } from 'mongo-atomics';
import type { Db } from 'mongodb';
import { errorHandler, notFound } from '../shared/http.js';
import { checkoutRouter, paymentCallbackRoute } from './checkout.js';
import { holdsRouter } from './holds.js';
import { COLLECTIONS, type OrderDoc, orderView, type ProductDoc, productView } from './model.js';
import { type OrderStore, ordersRouter } from './orders.js';

export interface InventoryAppOptions {
  /** The secret the payment provider signs callbacks with (HMAC-SHA256 of the raw body). */
  readonly paymentSecret: string;
}

/** Orders stored with the driver: the store the Mongoose app replaces with its models. */
export function driverOrderStore(db: Db): OrderStore {
  const products = db.collection<ProductDoc>(COLLECTIONS.products);
  const orders = db.collection<OrderDoc>(COLLECTIONS.orders);
  return {
    client: db.client,
    idempotencyKeys: db.collection(COLLECTIONS.idempotencyKeys),
    async place(session, order) {
      // In the caller's transaction: one aggregate checks every line in the transaction's
      // snapshot; only if all suffice does one update take them all. A concurrent order that
      // took the same stock first makes this transaction's update a WriteConflict, and the
      // runner (withRetryingTransaction) runs the attempt again on fresh data.
      const taken = await guardedDecrementAll(products, {
        session,
        field: 'stock',
        items: order.items.map((line) => ({ filter: { _id: line.productId }, amount: line.qty })),
      });
      if (taken.outcome !== 'decremented') return taken;
      const doc: OrderDoc = { _id: order._id, items: order.items, createdAt: order.createdAt };
      await orders.insertOne(doc, { session });
      return { outcome: 'placed', order: orderView(doc) };
    },
    async findOrder(id) {
      const order = await orders.findOne({ _id: id });
      return order === null ? null : orderView(order);
    },
    async findProduct(id) {
      const product = await products.findOne({ _id: id });
      return product === null ? null : productView(product);
    },
  };
}

/** The app; call `prepare(db)` (setup.ts) once before serving it. */
export function createApp(db: Db, options: InventoryAppOptions): Express {
  if (typeof options.paymentSecret !== 'string' || options.paymentSecret.length < 16) {
    throw new TypeError('createApp: options.paymentSecret must be a string of 16+ characters');
  }
  const app = express();
  // Before express.json(): the callback's signature is checked over the exact bytes received.
  app.post('/payments/callback', ...paymentCallbackRoute(db, options.paymentSecret));
  app.use(express.json({ limit: '32kb' }));
  app.use(ordersRouter(driverOrderStore(db)));
  app.use(checkoutRouter(db));
  app.use(holdsRouter(db));
  app.use(notFound);
  app.use(errorHandler);
  return app;
}
