/**
 * The checkout flow of seed 002: a checkout snapshots a cart and its amount; the payment
 * provider confirms the payment with a signed callback (processed once however often it is
 * replayed); finalizing the paid checkout creates exactly one order, takes the stock and empties
 * the cart, all or nothing.
 *
 * POST /checkouts                { cartId }, optional Idempotency-Key
 *                                                    201 checkout | 404 cartNotFound | 409 cartEmpty
 * GET  /checkouts/:id                                200 checkout | 404 checkoutNotFound
 * POST /payments/callback        { checkoutId, paymentId, amount }, header X-Signature
 *   200 { status: 'processed' } the first time, 200 { status: 'alreadyProcessed' } on a replay,
 *   401 invalidSignature (no write), 409 amountMismatch / alreadyPaid, 404 checkoutNotFound
 * POST /checkouts/:id/finalize
 *   201 the order (first time), 200 the same order on a repeat, 409 notPaid / insufficientStock
 *   (nothing changes), 404 checkoutNotFound / productNotFound
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import express, { type RequestHandler, Router } from 'express';
import { claimOnce, guardedDecrementAll, withRetryingTransaction } from 'mongo-atomics';
import { type Db, ObjectId } from 'mongodb';
import { z } from 'zod';
import { HttpError, objectId, parse, token } from '../shared/http.js';
import { respondOnce } from './idempotent.js';
import {
  type CartDoc,
  type CheckoutDoc,
  COLLECTIONS,
  checkoutView,
  type LineDoc,
  type OrderDoc,
  orderView,
  type PaymentDoc,
  type ProductDoc,
} from './model.js';
import { idParams } from './orders.js';

/** The header carrying the hex HMAC-SHA256 of the raw request body. */
export const SIGNATURE_HEADER = 'x-signature';

/** What a provider signs: hex HMAC-SHA256 of the exact body bytes with the shared secret. */
export function signPayload(secret: string, body: string | Buffer): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

const checkoutBody = z.strictObject({ cartId: objectId });

export const callbackBody = z.strictObject({
  checkoutId: objectId,
  paymentId: token,
  /** In cents. */
  amount: z
    .number({ error: 'must be a number' })
    .int('must be a whole number of cents')
    .min(1)
    .max(1e9),
});

function collectionsOf(db: Db) {
  return {
    products: db.collection<ProductDoc>(COLLECTIONS.products),
    orders: db.collection<OrderDoc>(COLLECTIONS.orders),
    carts: db.collection<CartDoc>(COLLECTIONS.carts),
    checkouts: db.collection<CheckoutDoc>(COLLECTIONS.checkouts),
    payments: db.collection<PaymentDoc>(COLLECTIONS.payments),
  };
}

/** True when `signature` (hex) is the HMAC of `raw`; compared in constant time. */
function signatureMatches(secret: string, raw: Buffer, signature: string | undefined): boolean {
  if (signature === undefined || !/^[0-9a-f]{64}$/i.test(signature)) return false;
  const expected = Buffer.from(signPayload(secret, raw), 'hex');
  return timingSafeEqual(expected, Buffer.from(signature, 'hex'));
}

/**
 * `POST /payments/callback`, mounted before `express.json()`: `express.raw` keeps the body as
 * the bytes that were signed (re-serialising parsed JSON would not give them back).
 */
export function paymentCallbackRoute(db: Db, secret: string): RequestHandler[] {
  const { checkouts, payments } = collectionsOf(db);
  const handler: RequestHandler = async (req, res) => {
    const raw: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    // The signature first: an unsigned request learns nothing, not even whether its JSON parses.
    if (!signatureMatches(secret, raw, req.get(SIGNATURE_HEADER))) {
      throw new HttpError(401, {
        error: 'invalidSignature',
        field: SIGNATURE_HEADER,
        message: 'missing or wrong signature',
      });
    }
    let json: unknown;
    try {
      json = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new HttpError(400, {
        error: 'malformedJson',
        field: 'body',
        message: 'body is not valid JSON',
      });
    }
    const { checkoutId, paymentId, amount } = parse(callbackBody, json, 'body');

    // The claim and the ledger entry commit together: a crash between them cannot leave a paid
    // checkout without its payment, or a payment recorded twice. Of N concurrent replays one
    // claim applies; the others' claims conflict with it, are retried by the runner, and find
    // the checkout paid: `alreadyClaimed`.
    const response = await withRetryingTransaction(db.client, async (session) => {
      const claim = await claimOnce(checkouts, {
        filter: { _id: checkoutId },
        field: 'paymentStatus',
        from: 'pending',
        to: 'paid',
        set: { payment: { id: paymentId, amount, paidAt: new Date() } },
        // A callback for another amount must not mark the checkout paid.
        requires: { amount },
        session,
      });
      switch (claim.outcome) {
        case 'claimed':
          await payments.insertOne(
            { _id: new ObjectId(), checkoutId, paymentId, amount, processedAt: new Date() },
            { session },
          );
          return {
            status: 200,
            body: { status: 'processed', checkoutId: checkoutId.toHexString(), paymentId },
          };
        case 'alreadyClaimed': {
          const first = claim.document.payment?.id;
          if (first === paymentId) {
            return {
              status: 200,
              body: { status: 'alreadyProcessed', checkoutId: checkoutId.toHexString(), paymentId },
            };
          }
          // Paid by ANOTHER payment: the customer was charged twice; the caller must refund.
          return {
            status: 409,
            body: {
              error: 'alreadyPaid',
              checkoutId: checkoutId.toHexString(),
              paymentId: first ?? null,
            },
          };
        }
        case 'preconditionFailed':
          // `from: 'pending'` holds unless paid (that is alreadyClaimed): so the amount differs.
          return {
            status: 409,
            body: { error: 'amountMismatch', expected: claim.document.amount, received: amount },
          };
        case 'notFound':
          return { status: 404, body: { error: 'checkoutNotFound', id: checkoutId.toHexString() } };
      }
    });
    res.status(response.status).json(response.body);
  };
  return [express.raw({ type: () => true, limit: '16kb' }), handler];
}

/** `/checkouts` routes (after `express.json()`). */
export function checkoutRouter(db: Db): Router {
  const { products, orders, carts, checkouts } = collectionsOf(db);
  const router = Router();

  router.post('/checkouts', async (req, res) => {
    const { cartId } = parse(checkoutBody, req.body, 'body');
    // Seed 002's "checkout creation double submit": with an Idempotency-Key, two clicks make one
    // checkout and both get its 201. The reads and the insert run in the transaction.
    await respondOnce(req, res, {
      client: db.client,
      keys: db.collection(COLLECTIONS.idempotencyKeys),
      scope: 'checkouts',
      canonicalBody: cartId.toHexString(),
      run: async (session) => {
        const cart = await carts.findOne({ _id: cartId }, { session });
        if (cart === null) {
          return { status: 404, body: { error: 'cartNotFound', id: cartId.toHexString() } };
        }
        if (cart.lines.length === 0) {
          return { status: 409, body: { error: 'cartEmpty', id: cartId.toHexString() } };
        }
        const priced = await products
          .find(
            { _id: { $in: cart.lines.map((l) => l.productId) } },
            { projection: { price: 1 }, session },
          )
          .toArray();
        const prices = new Map(priced.map((p) => [p._id.toHexString(), p.price]));
        const missing = cart.lines.filter((l) => !prices.has(l.productId.toHexString()));
        if (missing.length > 0) {
          return {
            status: 404,
            body: {
              error: 'productNotFound',
              productIds: missing.map((l) => l.productId.toHexString()),
            },
          };
        }
        const lines: LineDoc[] = cart.lines.map((l) => ({ productId: l.productId, qty: l.qty }));
        const checkout: CheckoutDoc = {
          _id: new ObjectId(),
          cartId,
          lines,
          amount: lines.reduce(
            (sum, l) => sum + (prices.get(l.productId.toHexString()) ?? 0) * l.qty,
            0,
          ),
          status: 'open',
          paymentStatus: 'pending',
          createdAt: new Date(),
        };
        // A snapshot of the cart: it may be stale when finalized, but finalization takes the
        // stock with guards, so a stale checkout can only be refused, never oversell.
        await checkouts.insertOne(checkout, { session });
        return { status: 201, body: { ...checkoutView(checkout) } };
      },
    });
  });

  router.get('/checkouts/:id', async (req, res) => {
    const { id } = parse(idParams, req.params, 'params');
    const checkout = await checkouts.findOne({ _id: id });
    if (checkout === null)
      throw new HttpError(404, { error: 'checkoutNotFound', id: id.toHexString() });
    res.json(checkoutView(checkout));
  });

  router.post('/checkouts/:id/finalize', async (req, res) => {
    const { id } = parse(idParams, req.params, 'params');
    // One transaction: the claim (open -> finalized), the stock, the order and the cart commit
    // together or not at all. Concurrent finalizes of one checkout: one claim applies, the
    // others conflict, are retried by the runner and find it finalized (`alreadyClaimed`).
    const response = await withRetryingTransaction(db.client, async (session) => {
      const orderId = new ObjectId();
      const claim = await claimOnce(checkouts, {
        filter: { _id: id },
        field: 'status',
        from: 'open',
        to: 'finalized',
        requires: { paymentStatus: 'paid' },
        set: { orderId, finalizedAt: new Date() },
        session,
      });
      switch (claim.outcome) {
        case 'notFound':
          return { status: 404, body: { error: 'checkoutNotFound', id: id.toHexString() } };
        case 'preconditionFailed':
          return { status: 409, body: { error: 'notPaid', id: id.toHexString() } };
        case 'alreadyClaimed': {
          // A repeat: the order the first finalize created, read in this transaction's snapshot.
          const first = claim.document.orderId;
          const order =
            first === undefined ? null : await orders.findOne({ _id: first }, { session });
          if (order === null)
            throw new Error(`finalized checkout ${id.toHexString()} has no order`);
          return { status: 200, body: { ...orderView(order) } };
        }
        case 'claimed':
          break;
      }
      const checkout = claim.document;
      const taken = await guardedDecrementAll(products, {
        session,
        field: 'stock',
        items: checkout.lines.map((l) => ({ filter: { _id: l.productId }, amount: l.qty })),
      });
      if (taken.outcome !== 'decremented') {
        // Thrown, not returned: the runner aborts the transaction, which undoes the claim, so
        // the checkout stays open and can be finalized once stock comes back.
        throw new HttpError(
          taken.outcome === 'insufficient' ? 409 : 404,
          taken.outcome === 'insufficient'
            ? {
                error: 'insufficientStock',
                shortages: taken.shortages.map((s) => ({
                  productId: checkout.lines[s.index]?.productId.toHexString(),
                  requested: s.requested,
                  available: s.available,
                })),
              }
            : {
                error: 'productNotFound',
                productIds: taken.missing.map((i) => checkout.lines[i]?.productId.toHexString()),
              },
        );
      }
      const order: OrderDoc = {
        _id: orderId,
        items: checkout.lines,
        createdAt: new Date(),
        checkoutId: checkout._id,
      };
      await orders.insertOne(order, { session });
      // Only the transaction that won the claim gets here, so the cart is emptied once.
      await carts.updateOne({ _id: checkout.cartId }, { $set: { lines: [] } }, { session });
      return { status: 201, body: { ...orderView(order) } };
    });
    res.status(response.status).json(response.body);
  });

  return router;
}
