// DO NOT COPY: the seeds' racy handlers (read, decide in JavaScript, then write), kept to show in tests and in the demo that they break. Use app.ts.
/**
 * The same routes and responses as `app.ts`, written the way seeds 000 and 002 wrote them:
 * - add: read the cart, and if the line is there `$inc` it, else `$push` it (seed 000's
 *   findOne-then-$push). Two concurrent adds of a new line both see "not there" and both push:
 *   two lines for one product; the cap is checked on a stale read and overshoots.
 * - set / remove one: read the line's quantity, compute, write it back: lost updates.
 * - merge: read the guest cart and the user cart, add each guest line to the user cart, then
 *   empty the guest cart (seed 002 before its fix). Two tabs logging in at the same moment both
 *   read the full guest cart and both add it: quantities doubled, lines duplicated.
 *
 * `afterRead`, when given, is awaited between every handler's reads and its writes, before
 * any early return. Tests pass a barrier (`barrier(n)` from `mongo-atomics/testing`) so that
 * every request has read before any writes: the worst interleaving, on every run. Without the
 * hook the window is the time between two round trips, which is real in production (a GC pause,
 * a slow replica, a busy event loop) but would show only now and then in a test.
 */
import express, { type Express } from 'express';
import type { Db, Document } from 'mongodb';
import { errorHandler, notFound, parse } from '../shared/http.js';
import { accountRoutes, lineChange, ownerId } from './app.js';
import {
  addBody,
  cartView,
  checkOptions,
  collections,
  GUEST,
  LINE_CAP,
  type Line,
  lineIdentity,
  lineNotFound,
  linesOf,
  mergeBody,
  ownerNotFound,
  planMerge,
  productNotFound,
  sameLine,
  setBody,
  USER,
} from './cart.js';

export interface NaiveOptions {
  /** Awaited between the reads and the writes of every handler (tests pass a barrier). */
  readonly afterRead?: () => Promise<void>;
}

export function createNaiveApp(db: Db, options: NaiveOptions = {}): Express {
  const afterRead = options.afterRead ?? (async () => {});
  const c = collections(db);
  const app = express();
  app.use(express.json());
  const router = express.Router();
  accountRoutes(router, c);

  for (const owner of [USER, GUEST]) {
    const base = `/${owner.kind}/:${owner.param}/cart`;
    const carts = owner.collection(c);
    const path = owner.array;
    const elem = (line: Pick<Line, 'productId' | 'size' | 'color'>) => ({
      [path]: { $elemMatch: { productId: line.productId, size: line.size, color: line.color } },
    });

    router.post(`${base}/lines`, async (req, res) => {
      const id = ownerId(owner, req);
      const { quantity, ...identity } = parse(addBody, req.body, 'body');
      const product = await c.products.findOne({ _id: identity.productId });
      const doc = await carts.findOne(owner.filter(id));
      await afterRead();
      if (product === null) throw productNotFound(identity.productId);
      checkOptions(product, identity);
      if (doc === null) throw ownerNotFound(owner, id);
      const line = linesOf(doc, owner).find((candidate) => sameLine(candidate, identity));
      if (line === undefined) {
        // "Not in the cart" was true when we read it.
        const created: Line = { ...identity, quantity, name: product.name, price: product.price };
        await carts.updateOne(owner.filter(id), { $push: { [path]: created } } as Document);
        res.status(201).json({ outcome: 'pushed', line: created });
        return;
      }
      if (line.quantity + quantity > LINE_CAP) {
        res.status(409).json({
          error: 'lineLimitReached',
          line,
          max: LINE_CAP,
          requested: quantity,
          available: Math.max(0, LINE_CAP - line.quantity),
        });
        return;
      }
      await carts.updateOne(
        { ...owner.filter(id), ...elem(identity) },
        { $inc: { [`${path}.$.quantity`]: quantity } },
      );
      res.json({ outcome: 'incremented', line: { ...line, quantity: line.quantity + quantity } });
    });

    const writeQuantity = async (id: Document, line: Line, quantity: number) => {
      if (quantity <= 0) {
        await carts.updateOne(id, { $pull: { [path]: { ...lineKey(line) } } } as Document);
      } else {
        await carts.updateOne(
          { ...id, ...elem(line) },
          { $set: { [`${path}.$.quantity`]: quantity } },
        );
      }
    };

    router.put(`${base}/lines`, async (req, res) => {
      const id = ownerId(owner, req);
      const { quantity, ...identity } = parse(setBody, req.body, 'body');
      const doc = await carts.findOne(owner.filter(id));
      await afterRead();
      if (doc === null) throw ownerNotFound(owner, id);
      const line = linesOf(doc, owner).find((candidate) => sameLine(candidate, identity));
      if (line === undefined) throw lineNotFound(identity);
      await writeQuantity(owner.filter(id), line, quantity);
      res.json(lineChange(line, quantity));
    });

    router.post(`${base}/lines/remove-one`, async (req, res) => {
      const id = ownerId(owner, req);
      const identity = parse(lineIdentity, req.body, 'body');
      const doc = await carts.findOne(owner.filter(id));
      await afterRead();
      if (doc === null) throw ownerNotFound(owner, id);
      const line = linesOf(doc, owner).find((candidate) => sameLine(candidate, identity));
      if (line === undefined) throw lineNotFound(identity);
      // quantity - 1 computed from the read: two concurrent clicks both write 1 instead of 0.
      await writeQuantity(owner.filter(id), line, line.quantity - 1);
      res.json(lineChange(line, line.quantity - 1));
    });
  }

  router.post('/users/:userId/cart/merge', async (req, res) => {
    const userId = ownerId(USER, req);
    const { sessionId } = parse(mergeBody, req.body, 'body');
    const guest = await c.sessions.findOne({ _id: sessionId });
    const cart = await c.carts.findOne({ userId });
    await afterRead();
    if (guest === null) throw ownerNotFound(GUEST, sessionId);
    if (cart === null) throw ownerNotFound(USER, userId);
    const plan = planMerge(linesOf(cart, USER), linesOf(guest, GUEST));
    // Each guest line is added to the user's cart as an add-to-cart would: $inc what the plan
    // says this merge adds, or $push a line the cart did not have when we read it.
    for (const line of plan.merged) {
      const fresh = plan.added.find((candidate) => sameLine(candidate, line));
      if (fresh === undefined) {
        await c.carts.updateOne(
          { userId, courses: { $elemMatch: lineKey(line) } },
          { $inc: { 'courses.$.quantity': line.added } },
        );
      } else {
        await c.carts.updateOne({ userId }, { $push: { courses: fresh } });
      }
    }
    await c.sessions.updateOne({ _id: sessionId }, { $set: { 'data.cart': [] } });
    res.json({ merged: plan.merged, capped: plan.capped, cart: cartView(plan.lines) });
  });

  app.use(router);
  app.use(notFound);
  app.use(errorHandler);
  return app;
}

const lineKey = (line: Pick<Line, 'productId' | 'size' | 'color'>) => ({
  productId: line.productId,
  size: line.size,
  color: line.color,
});
