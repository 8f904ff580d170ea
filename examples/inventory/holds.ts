/**
 * Hold-then-pay (issue 13): reserve units while the buyer pays, then confirm on payment or
 * release on cancel. A hold nobody settles lapses by the server's clock and its units come back
 * by themselves, in the next call on the product: no cron job to run late or twice.
 *
 * POST /products/:id/holds  { qty, holdId, ttlSeconds? }
 *   201 { holdId, qty, expiresAt, stock }       the units are held (stock is what is left)
 *   200 { holdId, qty, expiresAt, repeat: true } this holdId is held already (a retried request)
 *   409 { error: 'insufficientStock', available }   nothing held
 *   409 { error: 'tooManyHolds' } | { error: 'holdSettled', settled }   nothing held
 *   404 { error: 'productNotFound' }
 * POST /products/:id/holds/:holdId/confirm   (the payment succeeded)
 *   200 { outcome: 'confirmed' | 'alreadyConfirmed', qty }   the units are sold
 *   410 { error: 'holdExpired', qty }    too late: the units went back, refund the payment
 *   409 { error: 'holdReleased', qty }   cancelled before: refund the payment
 *   404 { error: 'holdNotFound' }
 * POST /products/:id/holds/:holdId/release   (the buyer cancelled)
 *   200 { outcome: 'released' | 'alreadyReleased' | 'expired', qty }   the units are back
 *   409 { error: 'holdConfirmed', qty }   already paid: refund through your payment flow instead
 *   404 { error: 'holdNotFound' }
 */
import { Router } from 'express';
import { confirmHold, holdQuantity, releaseHold } from 'mongo-atomics';
import type { Db } from 'mongodb';
import { z } from 'zod';
import { HttpError, objectId, parse, quantity, token } from '../shared/http.js';
import { COLLECTIONS, type ProductDoc } from './model.js';

/** The longest hold a client may ask for, and the default. */
export const MAX_HOLD_SECONDS = 3600;
export const DEFAULT_HOLD_SECONDS = 600;

const holdBody = z.strictObject({
  qty: quantity(1000),
  // Chosen by the client (e.g. its checkout id), so that a retried request holds once.
  holdId: token,
  ttlSeconds: z.number().int().min(1).max(MAX_HOLD_SECONDS).optional(),
});
const productParams = z.strictObject({ id: objectId });
const holdParams = z.strictObject({ id: objectId, holdId: token });

export function holdsRouter(db: Db): Router {
  const products = db.collection<ProductDoc>(COLLECTIONS.products);
  const router = Router();

  router.post('/products/:id/holds', async (req, res) => {
    const { id } = parse(productParams, req.params, 'params');
    const body = parse(holdBody, req.body, 'body');
    const held = await holdQuantity(products, {
      filter: { _id: id },
      field: 'stock',
      amount: body.qty,
      holdId: body.holdId,
      ttlMs: (body.ttlSeconds ?? DEFAULT_HOLD_SECONDS) * 1000,
    });
    switch (held.outcome) {
      case 'held':
        res.status(201).json({
          holdId: held.hold.id,
          qty: held.hold.amount,
          expiresAt: held.hold.expiresAt,
          stock: held.document.stock,
        });
        return;
      case 'alreadyHeld':
        res.status(200).json({
          holdId: held.hold.id,
          qty: held.hold.amount,
          expiresAt: held.hold.expiresAt,
          repeat: true,
        });
        return;
      case 'insufficient':
        throw new HttpError(409, { error: 'insufficientStock', available: held.available });
      case 'tooManyHolds':
        throw new HttpError(409, { error: 'tooManyHolds' });
      case 'alreadySettled':
        throw new HttpError(409, { error: 'holdSettled', settled: held.settled });
      case 'notFound':
        throw new HttpError(404, { error: 'productNotFound' });
    }
  });

  router.post('/products/:id/holds/:holdId/confirm', async (req, res) => {
    const { id, holdId } = parse(holdParams, req.params, 'params');
    const done = await confirmHold(products, { filter: { _id: id }, field: 'stock', holdId });
    switch (done.outcome) {
      case 'confirmed':
      case 'alreadyConfirmed':
        res.json({ outcome: done.outcome, qty: done.amount });
        return;
      case 'expired':
        throw new HttpError(410, { error: 'holdExpired', qty: done.amount });
      case 'alreadyReleased':
        throw new HttpError(409, { error: 'holdReleased', qty: done.amount });
      case 'unknownHold':
        throw new HttpError(404, { error: 'holdNotFound' });
      case 'notFound':
        throw new HttpError(404, { error: 'productNotFound' });
    }
  });

  router.post('/products/:id/holds/:holdId/release', async (req, res) => {
    const { id, holdId } = parse(holdParams, req.params, 'params');
    const done = await releaseHold(products, { filter: { _id: id }, field: 'stock', holdId });
    switch (done.outcome) {
      case 'released':
      case 'alreadyReleased':
      case 'expired':
        res.json({ outcome: done.outcome, qty: done.amount });
        return;
      case 'alreadyConfirmed':
        throw new HttpError(409, { error: 'holdConfirmed', qty: done.amount });
      case 'unknownHold':
        throw new HttpError(404, { error: 'holdNotFound' });
      case 'notFound':
        throw new HttpError(404, { error: 'productNotFound' });
    }
  });

  return router;
}
