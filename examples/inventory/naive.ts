// DO NOT COPY: the seeds' racy handlers (003 and 002), kept to show in tests and the demo that they break.
/**
 * The same routes and responses as app.ts, written the way seeds 003 and 002 wrote them:
 *
 * - POST /orders: for each line, read the product and check its stock, then decrement each line
 *   and insert the order (seed 003's "what you don't want": findById -> check -> save). Two
 *   orders that read before either writes both pass the check: stock goes negative. A line that
 *   fails mid-way leaves the earlier lines decremented: a partial order.
 * - Idempotency-Key: look the key up, do the work, then store the response. Duplicates that
 *   look up together all do the work.
 * - POST /payments/callback: read `paymentStatus`, then mark it paid and record the payment.
 *   Replays that read together all record it.
 * - POST /checkouts/:id/finalize: read the checkout, then decrement, insert the order, mark it
 *   finalized. Concurrent finalizes all create an order.
 *
 * `afterRead` is awaited between each handler's reads and its writes, on every request (before
 * any early return). Tests pass a `barrier(n)` from mongo-atomics/testing there, so every request
 * reads before any writes and the race shows on every run. The window is real in production:
 * it is simply narrower, so the bug shows now and then instead of always.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import express, { type Express } from 'express';
import { type Db, ObjectId } from 'mongodb';
import { errorHandler, HttpError, notFound, parse } from '../shared/http.js';
import { callbackBody, SIGNATURE_HEADER } from './checkout.js';
import {
  type CartDoc,
  type CheckoutDoc,
  COLLECTIONS,
  type LineDoc,
  type OrderDoc,
  orderView,
  type PaymentDoc,
  type ProductDoc,
  productView,
} from './model.js';
import { idParams, orderBody } from './orders.js';

export interface NaiveOptions {
  readonly paymentSecret: string;
  /** Awaited between the reads and the writes of every request (tests: a barrier). */
  readonly afterRead?: () => Promise<void>;
}

interface NaiveKeyDoc {
  _id: string;
  status: number;
  body: unknown;
}

export function createNaiveApp(db: Db, options: NaiveOptions): Express {
  const afterRead = options.afterRead ?? (async () => {});
  const products = db.collection<ProductDoc>(COLLECTIONS.products);
  const orders = db.collection<OrderDoc>(COLLECTIONS.orders);
  const carts = db.collection<CartDoc>(COLLECTIONS.carts);
  const checkouts = db.collection<CheckoutDoc>(COLLECTIONS.checkouts);
  const payments = db.collection<PaymentDoc>(COLLECTIONS.payments);
  const keys = db.collection<NaiveKeyDoc>('naive_idempotency_keys');
  const app = express();

  app.post('/payments/callback', express.raw({ type: () => true }), async (req, res) => {
    const raw: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const expected = createHmac('sha256', options.paymentSecret).update(raw).digest();
    const given = Buffer.from(req.get(SIGNATURE_HEADER) ?? '', 'hex');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new HttpError(401, { error: 'invalidSignature', field: SIGNATURE_HEADER });
    }
    const { checkoutId, paymentId, amount } = parse(
      callbackBody,
      JSON.parse(raw.toString()),
      'body',
    );
    const checkout = await checkouts.findOne({ _id: checkoutId }); // 1. read
    await afterRead();
    if (checkout === null) throw new HttpError(404, { error: 'checkoutNotFound' });
    if (checkout.paymentStatus === 'paid') {
      // 2. check: "Payment already processed" (seed 002) - on data read before the others wrote
      res.json({ status: 'alreadyProcessed', checkoutId: checkoutId.toHexString(), paymentId });
      return;
    }
    if (checkout.amount !== amount) throw new HttpError(409, { error: 'amountMismatch' });
    await checkouts.updateOne(
      { _id: checkoutId },
      { $set: { paymentStatus: 'paid', payment: { id: paymentId, amount, paidAt: new Date() } } },
    ); // 3. write
    await payments.insertOne({
      _id: new ObjectId(),
      checkoutId,
      paymentId,
      amount,
      processedAt: new Date(),
    });
    res.json({ status: 'processed', checkoutId: checkoutId.toHexString(), paymentId });
  });

  app.use(express.json());

  app.post('/orders', async (req, res) => {
    const { items } = parse(orderBody, req.body, 'body');
    const key = req.get('idempotency-key');
    const seen = key === undefined ? null : await keys.findOne({ _id: key }); // read the key
    const found: (ProductDoc | null)[] = [];
    for (const item of items) found.push(await products.findOne({ _id: item.productId })); // read stock
    await afterRead();
    if (seen !== null) {
      res.status(seen.status).json(seen.body);
      return;
    }
    let response: { status: number; body: unknown };
    const missing = items.filter((_, i) => found[i] === null);
    const short = items.flatMap((item, i) => {
      const stock = found[i]?.stock ?? 0;
      return found[i] !== null && stock < item.qty
        ? [{ productId: item.productId.toHexString(), requested: item.qty, available: stock }]
        : [];
    });
    if (missing.length > 0) {
      response = {
        status: 404,
        body: {
          error: 'productNotFound',
          productIds: missing.map((i) => i.productId.toHexString()),
        },
      };
    } else if (short.length > 0) {
      response = { status: 409, body: { error: 'insufficientStock', shortages: short } };
    } else {
      // The checks passed on what was read; the stock may be gone by now.
      for (const item of items) {
        await products.updateOne({ _id: item.productId }, { $inc: { stock: -item.qty } });
      }
      const order: OrderDoc = { _id: new ObjectId(), items, createdAt: new Date() };
      await orders.insertOne(order);
      response = { status: 201, body: orderView(order) };
    }
    if (key !== undefined) {
      // Remember the response, after the work: duplicates that looked up earlier did it too.
      await keys.updateOne({ _id: key }, { $set: response }, { upsert: true });
    }
    res.status(response.status).json(response.body);
  });

  app.get('/orders/:id', async (req, res) => {
    const { id } = parse(idParams, req.params, 'params');
    const order = await orders.findOne({ _id: id });
    if (order === null) throw new HttpError(404, { error: 'orderNotFound', id: id.toHexString() });
    res.json(orderView(order));
  });

  app.get('/products/:id', async (req, res) => {
    const { id } = parse(idParams, req.params, 'params');
    const product = await products.findOne({ _id: id });
    if (product === null)
      throw new HttpError(404, { error: 'productNotFound', id: id.toHexString() });
    res.json(productView(product));
  });

  app.post('/checkouts/:id/finalize', async (req, res) => {
    const { id } = parse(idParams, req.params, 'params');
    const checkout = await checkouts.findOne({ _id: id }); // 1. read
    await afterRead();
    if (checkout === null) throw new HttpError(404, { error: 'checkoutNotFound' });
    if (checkout.status === 'finalized' && checkout.orderId !== undefined) {
      const order = await orders.findOne({ _id: checkout.orderId });
      res.json(order === null ? null : orderView(order));
      return;
    }
    if (checkout.paymentStatus !== 'paid') throw new HttpError(409, { error: 'notPaid' });
    // Seed 002's "stock lock": decrement, then complain if it went negative (no transaction here
    // to roll the decrement back).
    for (const line of checkout.lines) {
      await products.updateOne({ _id: line.productId }, { $inc: { stock: -line.qty } });
    }
    const items: LineDoc[] = checkout.lines;
    const order: OrderDoc = { _id: new ObjectId(), items, createdAt: new Date(), checkoutId: id };
    await orders.insertOne(order);
    await checkouts.updateOne({ _id: id }, { $set: { status: 'finalized', orderId: order._id } });
    await carts.updateOne({ _id: checkout.cartId }, { $set: { lines: [] } });
    res.status(201).json(orderView(order));
  });

  app.use(notFound);
  app.use(errorHandler);
  return app;
}
