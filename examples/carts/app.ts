/**
 * The carts service (seeds 000 and 002): signed-in carts and guest carts, add / set / remove
 * one, and the guest → user merge at login.
 *
 * Every write is decided by the server in one step, never by JavaScript on a stale read:
 * - add:            `incrementOrPushArrayItem`, one pipeline update that finds the line by
 *                   `{ productId, size, color }`, increments it within the cap or appends it;
 * - set/remove one: one conditional pipeline update whose filter requires the line;
 * - merge:          `withRetryingTransaction`: read both carts, write both, commit together;
 *                   two merges of one guest cart conflict and the loser re-runs against the
 *                   winner's result (an empty guest cart), so the cart is merged once.
 * See README.md for the reasons and the races each choice closes.
 */
import express, { type Express, type Request, type Router } from 'express';
import { incrementOrPushArrayItem, withRetryingTransaction } from 'mongo-atomics';
import { type Db, type Document, ObjectId } from 'mongodb';
import { z } from 'zod';
import { errorHandler, notFound, objectId, parse } from '../shared/http.js';
import {
  addBody,
  type Collections,
  cartView,
  checkOptions,
  collections,
  GUEST,
  type Identity,
  LINE_CAP,
  type Line,
  lineIdentity,
  lineNotFound,
  linesOf,
  mergeBody,
  type Owner,
  ownerNotFound,
  planMerge,
  productNotFound,
  sameLine,
  setBody,
  USER,
} from './cart.js';

/** The owner's id from the route (`:userId` or `:sessionId`), a 400 naming it if malformed. */
export function ownerId(owner: Owner, req: Request): ObjectId {
  const params = parse(z.strictObject({ [owner.param]: objectId }), req.params, 'params');
  return params[owner.param] as ObjectId;
}

/**
 * Routes the real and the naive app share, none of which can race: the catalogue, sign-up, a new
 * guest session and reading a cart.
 */
export function accountRoutes(router: Router, c: Collections): void {
  router.get('/products', async (_req, res) => {
    res.json({ products: await c.products.find({}, { sort: { name: 1 } }).toArray() });
  });

  // Sign-up creates the user's (empty) cart with a fresh id: an insert of a new document
  // cannot race with anything. In a real service the users collection would own the id.
  router.post('/users', async (_req, res) => {
    const cart = { userId: new ObjectId(), courses: [] as Line[] };
    await c.carts.insertOne(cart);
    res.status(201).json({ userId: cart.userId, cart: cartView([]) });
  });

  // A guest session, as an express-session store would create it on the first visit.
  router.post('/sessions', async (_req, res) => {
    const { insertedId } = await c.sessions.insertOne({
      _id: new ObjectId(),
      data: { cart: [] },
      createdAt: new Date(),
    });
    res.status(201).json({ sessionId: insertedId, cart: cartView([]) });
  });

  for (const owner of [USER, GUEST]) {
    router.get(`/${owner.kind}/:${owner.param}/cart`, async (req, res) => {
      const id = ownerId(owner, req);
      const doc = await owner.collection(c).findOne(owner.filter(id));
      if (doc === null) throw ownerNotFound(owner, id);
      res.json({ [owner.param]: id, cart: cartView(linesOf(doc, owner)) });
    });
  }
}

export function createApp(db: Db): Express {
  const c = collections(db);
  const app = express();
  app.use(express.json());
  const router = express.Router();
  accountRoutes(router, c);

  for (const owner of [USER, GUEST]) {
    const base = `/${owner.kind}/:${owner.param}/cart`;
    const carts = owner.collection(c);

    // Add: one findAndModify decides "increment or push" and checks the cap on the server, so
    // 100 concurrent adds of one line leave one line, never two, and never more than the cap.
    router.post(`${base}/lines`, async (req, res) => {
      const id = ownerId(owner, req);
      const { quantity, ...identity } = parse(addBody, req.body, 'body');
      // The product is read only to validate the request and copy its name and price into a
      // new line; a concurrent price change cannot corrupt the cart, at worst the line keeps
      // the price the customer saw.
      const product = await c.products.findOne({ _id: identity.productId });
      if (product === null) throw productNotFound(identity.productId);
      checkOptions(product, identity);
      const result = await incrementOrPushArrayItem<Document, Line>(carts, {
        filter: owner.filter(id),
        array: owner.array,
        match: { productId: identity.productId, size: identity.size, color: identity.color },
        inc: { quantity },
        fields: { name: product.name, price: product.price },
        max: { quantity: LINE_CAP },
      });
      switch (result.outcome) {
        case 'notFound':
          throw ownerNotFound(owner, id);
        case 'pushed':
          res.status(201).json({ outcome: 'pushed', line: result.item });
          return;
        case 'incremented':
          res.json({ outcome: 'incremented', line: result.item });
          return;
        case 'limitReached':
          // Nothing changed; tell the client how many more units the line can take.
          res.status(409).json({
            error: 'lineLimitReached',
            line: result.item,
            max: LINE_CAP,
            requested: quantity,
            available: Math.max(0, LINE_CAP - result.item.quantity),
          });
          return;
      }
    });

    // Set a line's quantity (0 removes it).
    router.put(`${base}/lines`, async (req, res) => {
      const id = ownerId(owner, req);
      const { quantity, ...identity } = parse(setBody, req.body, 'body');
      const before = await changeLine(c, owner, id, identity, { $literal: quantity });
      res.json(lineChange(before, quantity));
    });

    // Remove one unit; the line disappears when it reaches zero.
    router.post(`${base}/lines/remove-one`, async (req, res) => {
      const id = ownerId(owner, req);
      const identity = parse(lineIdentity, req.body, 'body');
      const before = await changeLine(c, owner, id, identity, {
        $subtract: ['$$line.quantity', 1],
      });
      res.json(lineChange(before, before.quantity - 1));
    });
  }

  // The merge at login. Both carts change together or not at all, and of two concurrent merges
  // of one guest cart (two tabs logging in) exactly one moves the lines.
  router.post('/users/:userId/cart/merge', async (req, res) => {
    const userId = ownerId(USER, req);
    const { sessionId } = parse(mergeBody, req.body, 'body');
    const outcome = await withRetryingTransaction(
      db.client,
      async (session) => {
        // Reads inside the transaction see one snapshot. If another merge commits after it was
        // taken, our writes below touch documents it changed: the server answers WriteConflict,
        // the runner aborts and re-runs this callback, which then reads the emptied guest cart.
        const guest = await c.sessions.findOne({ _id: sessionId }, { session });
        if (guest === null) return { found: 'sessionNotFound' } as const;
        const cart = await c.carts.findOne({ userId }, { session });
        if (cart === null) return { found: 'cartNotFound' } as const;
        const guestLines = linesOf(guest, GUEST);
        const userLines = linesOf(cart, USER);
        if (guestLines.length === 0) {
          // Already merged (by the other tab) or nothing to merge: a repeat, not an error.
          return { found: 'ok', plan: planMerge(userLines, []) } as const;
        }
        const plan = planMerge(userLines, guestLines);
        // Both documents are written, so two merges always conflict on both: "first writer
        // wins" then guarantees a single merge. Writing the whole array is safe here: a
        // concurrent add that committed after our snapshot makes this write conflict too, and
        // the retry sums from the add's result instead of overwriting it.
        await c.carts.updateOne({ userId }, { $set: { courses: plan.lines } }, { session });
        await c.sessions.updateOne(
          { _id: sessionId },
          { $set: { 'data.cart': [], 'data.mergedInto': userId, 'data.mergedAt': new Date() } },
          { session },
        );
        return { found: 'ok', plan } as const;
      },
      { timeoutMs: 10_000 },
    );
    if (outcome.found === 'sessionNotFound') throw ownerNotFound(GUEST, sessionId);
    if (outcome.found === 'cartNotFound') throw ownerNotFound(USER, userId);
    const { plan } = outcome;
    res.json({ merged: plan.merged, capped: plan.capped, cart: cartView(plan.lines) });
  });

  app.use(router);
  app.use(notFound);
  app.use(errorHandler);
  return app;
}

/**
 * Sets the line `identity` of owner `id` to the quantity expression `next` (evaluated on the
 * server with `$$line` bound to the stored line), dropping the line when the result is 0 or
 * less. One findAndModify: the filter requires the line, so "is it there?" and "change it"
 * cannot be separated by another request; concurrent remove-ones serialise on the document and
 * each sees the previous one's result, so the quantity never goes below zero.
 * Returns the line as it was before; 404 when the cart or the line is missing.
 */
async function changeLine(
  c: Collections,
  owner: Owner,
  id: ObjectId,
  identity: Identity,
  next: Document,
): Promise<Line> {
  const path = owner.array;
  const isTarget = {
    $and: [
      { $eq: ['$$line.productId', { $literal: identity.productId }] },
      { $eq: ['$$line.size', { $literal: identity.size }] },
      { $eq: ['$$line.color', { $literal: identity.color }] },
    ],
  };
  const before = await owner.collection(c).findOneAndUpdate(
    {
      ...owner.filter(id),
      [path]: {
        $elemMatch: { productId: identity.productId, size: identity.size, color: identity.color },
      },
    },
    [
      {
        $set: {
          [path]: {
            $filter: {
              input: {
                $map: {
                  input: `$${path}`,
                  as: 'line',
                  in: {
                    $cond: [isTarget, { $mergeObjects: ['$$line', { quantity: next }] }, '$$line'],
                  },
                },
              },
              as: 'line',
              // Drop only the target line, and only when it reached 0.
              cond: { $or: [{ $not: [isTarget] }, { $gt: ['$$line.quantity', 0] }] },
            },
          },
        },
      },
    ],
    { returnDocument: 'before' },
  );
  if (before === null) {
    // The failure read tells a missing cart from a missing line (only on this path).
    const exists = await owner.collection(c).findOne(owner.filter(id), { projection: { _id: 1 } });
    throw exists === null ? ownerNotFound(owner, id) : lineNotFound(identity);
  }
  const line = linesOf(before, owner).find((candidate) => sameLine(candidate, identity));
  if (line === undefined) throw new Error('the matched cart holds no such line');
  return line;
}

/** The response of set / remove one, from the line before and its new quantity. */
export function lineChange(before: Line, quantity: number) {
  return quantity <= 0
    ? { outcome: 'removed', line: { ...before, quantity: 0 } }
    : { outcome: 'updated', line: { ...before, quantity } };
}
