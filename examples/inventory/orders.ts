/**
 * `POST /orders`, `GET /orders/:id` and `GET /products/:id`: the HTTP contract both inventory
 * apps serve (the driver app in app.ts, the Mongoose app in mongoose/app.ts). What differs
 * between them is only how an order is stored, behind `OrderStore`.
 *
 * POST /orders  { items: [{ productId, qty }] }   optional header `Idempotency-Key`
 *   201 the order this request created (every line served, stock taken, in one transaction)
 *   409 { error: 'insufficientStock', shortages: [{ productId, requested, available }] }
 *       every short line, and nothing taken (never a partial order)
 *   404 { error: 'productNotFound', productIds }   nothing taken
 *   400 invalid body or header; a productId listed twice is refused (see `orderBody`)
 *   422 { error: 'idempotencyKeyReused' }  the key was first used for another body
 *   409 { error: 'requestInProgress' }     the key's first request is still running after 10 s
 */
import { Router } from 'express';
import type { GuardedDecrementAllResult } from 'mongo-atomics';
import type { ClientSession, Collection, MongoClient } from 'mongodb';
import { ObjectId } from 'mongodb';
import { z } from 'zod';
import { HttpError, objectId, parse, quantity } from '../shared/http.js';
import { respondOnce, type StoredResponse } from './idempotent.js';
import type { LineDoc, OrderView, ProductView } from './model.js';

/** The most units of one product one line may ask for, and the most lines per order. */
export const MAX_QTY = 1_000;
export const MAX_LINES = 50;

/**
 * `{ items: [{ productId, qty }] }`, strict (unknown keys are refused). A product listed twice
 * is a 400 naming the second line (`items.2.productId`): merging silently would store an order
 * whose lines differ from what the client sent, and the 409 could not say which line is short.
 */
export const orderBody = z.strictObject({
  items: z
    .array(z.strictObject({ productId: objectId, qty: quantity(MAX_QTY) }))
    .min(1, 'must list at least one item')
    .max(MAX_LINES, `must list at most ${MAX_LINES} items`)
    .superRefine((items, ctx) => {
      const seen = new Set<string>();
      items.forEach((item, index) => {
        // zod still runs this refinement when a line failed its own checks: skip those lines
        // (their productId may be any JSON value), their own issue is already reported.
        if (!(item.productId instanceof ObjectId)) return;
        const hex = item.productId.toHexString();
        if (seen.has(hex)) {
          ctx.addIssue({
            code: 'custom',
            path: [index, 'productId'],
            message: 'lists a product already listed: one line per product',
          });
        }
        seen.add(hex);
      });
    }),
});

export const idParams = z.strictObject({ id: objectId });

/** What a placed order answers, kept as plain JSON so it can be stored and replayed as is. */
export type OrderResponse = StoredResponse;

/** How an app stores orders: the driver app and the Mongoose app each implement it. */
export interface OrderStore {
  /** The client transactions run on (the one the collections belong to). */
  readonly client: MongoClient;
  /** Where idempotency keys live (the TTL index is made by the app's `prepare`). */
  readonly idempotencyKeys: Collection;
  /**
   * In the transaction of `session`: takes every line's stock with `guardedDecrementAll` and,
   * only if all were taken, inserts the order. On a shortage nothing has been written.
   */
  place(
    session: ClientSession,
    order: { readonly _id: ObjectId; readonly items: LineDoc[]; readonly createdAt: Date },
  ): Promise<
    | { outcome: 'placed'; order: OrderView }
    | Exclude<GuardedDecrementAllResult, { outcome: 'decremented' }>
  >;
  findOrder(id: ObjectId): Promise<OrderView | null>;
  findProduct(id: ObjectId): Promise<ProductView | null>;
}

/** The response for an order: 201, or the 409/404 that says what to change. */
async function placeOrder(
  store: OrderStore,
  session: ClientSession,
  items: LineDoc[],
): Promise<OrderResponse> {
  // Called once per transaction attempt: a retried attempt gets a new id, and the aborted
  // attempt's insert went with its transaction.
  const result = await store.place(session, { _id: new ObjectId(), items, createdAt: new Date() });
  switch (result.outcome) {
    case 'placed':
      return { status: 201, body: { ...result.order } };
    case 'insufficient':
      return {
        status: 409,
        body: {
          error: 'insufficientStock',
          // `index` points into `items`, which is exactly the request's lines, in order.
          shortages: result.shortages.map((s) => ({
            productId: lineAt(items, s.index).productId.toHexString(),
            requested: s.requested,
            available: s.available,
          })),
        },
      };
    case 'notFound':
      return {
        status: 404,
        body: {
          error: 'productNotFound',
          productIds: result.missing.map((i) => lineAt(items, i).productId.toHexString()),
        },
      };
  }
}

function lineAt(items: readonly LineDoc[], index: number): LineDoc {
  const line = items[index];
  if (line === undefined) throw new Error(`no line at index ${index}`);
  return line;
}

/** The routes of the HTTP contract above, over `store`. */
export function ordersRouter(store: OrderStore): Router {
  const router = Router();

  router.post('/orders', async (req, res) => {
    const { items } = parse(orderBody, req.body, 'body');
    const lines: LineDoc[] = items.map((i) => ({ productId: i.productId, qty: i.qty }));
    await respondOnce(req, res, {
      client: store.client,
      keys: store.idempotencyKeys,
      scope: 'orders',
      canonicalBody: JSON.stringify(lines.map((l) => [l.productId.toHexString(), l.qty])),
      run: (session) => placeOrder(store, session, lines),
    });
  });

  router.get('/orders/:id', async (req, res) => {
    const { id } = parse(idParams, req.params, 'params');
    const order = await store.findOrder(id);
    if (order === null) throw new HttpError(404, { error: 'orderNotFound', id: id.toHexString() });
    res.json(order);
  });

  router.get('/products/:id', async (req, res) => {
    const { id } = parse(idParams, req.params, 'params');
    const product = await store.findProduct(id);
    if (product === null) {
      throw new HttpError(404, { error: 'productNotFound', id: id.toHexString() });
    }
    res.json(product);
  });

  return router;
}
