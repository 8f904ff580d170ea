/**
 * The inventory example (examples/inventory/) over HTTP: the order endpoints run against both
 * apps (the driver app and the Mongoose app, examples/inventory/mongoose/) with the same cases, including the multi-line
 * order race and the Idempotency-Key race; the checkout flow (signed payment callback,
 * finalize) against the driver app.
 */
import type { Express } from 'express';
import { barrier, naiveVersusSafe, race, type StormRun } from 'mongo-atomics/testing';
import { type Db, ObjectId } from 'mongodb';
import mongoose from 'mongoose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../examples/inventory/app.js';
import { signPayload } from '../../examples/inventory/checkout.js';
import { scenario } from '../../examples/inventory/demo.js';
import {
  type CartDoc,
  type CheckoutDoc,
  COLLECTIONS,
  type OrderDoc,
  type PaymentDoc,
  type ProductDoc,
} from '../../examples/inventory/model.js';
import { createMongooseApp } from '../../examples/inventory/mongoose/app.js';
import { prepareMongoose } from '../../examples/inventory/mongoose/setup.js';
import { createNaiveApp } from '../../examples/inventory/naive.js';
import { prepare } from '../../examples/inventory/setup.js';
import {
  checkOrderRace,
  ORDER_RACE,
  type OrderRace,
  openOrderRace,
  orderBoth,
  postJson,
  type Reply,
} from '../../examples/inventory/storm.js';
import { type CommandLog, recordCommands, testUri, useTestDatabase } from '../support/mongo.js';
import { call, type Reply as HttpReply, type Listening, listen, writesDuring } from './support.js';

const t = useTestDatabase('inventory');
const SECRET = 'test-secret-0123456789abcdef';

/** Every collection the apps write, sorted: equal before and after means nothing was written. */
async function snapshot(db: Db): Promise<unknown> {
  const all: Record<string, unknown> = Object.create(null);
  for (const name of Object.values(COLLECTIONS)) {
    all[name] = await db.collection(name).find({}).sort({ _id: 1 }).toArray();
  }
  return all;
}

async function newProduct(db: Db, stock: number, name = 'P'): Promise<string> {
  const _id = new ObjectId();
  await db.collection<ProductDoc>(COLLECTIONS.products).insertOne({ _id, name, stock, price: 250 });
  return _id.toHexString();
}

async function stockOf(db: Db, id: string): Promise<number | undefined> {
  return (
    await db
      .collection<ProductDoc>(COLLECTIONS.products)
      .findOne({ _id: ObjectId.createFromHexString(id) })
  )?.stock;
}

interface AppUnderTest {
  readonly name: string;
  /**
   * Builds the safe app on the test database (called once, in beforeAll), with the log of the
   * commands ITS client sends: the Mongoose app talks through its own client, which the test
   * database's log never sees, so a "no write" assertion on that log could not fail.
   */
  open(db: Db): Promise<{ app: Express; commands: CommandLog; close(): Promise<void> }>;
}

/**
 * Mongoose 9 runs on `mongodb` 7, and this repository makes it share the app's copy (package.json
 * overrides). The `driver6` project aliases `mongodb` to v6 for the app and the tests only, so
 * there the app's ObjectIds are bson 6 values that Mongoose's driver refuses (BSONVersionError):
 * the very mismatch ../README.md warns about. The Mongoose app runs wherever the copies agree;
 * the first test below pins where that is.
 */
const SHARED_DRIVER = mongoose.mongo.ObjectId === ObjectId;

const DRIVER_APP: AppUnderTest = {
  name: 'driver app',
  open: async (db) => ({
    app: createApp(db, { paymentSecret: SECRET }),
    commands: t.commands,
    close: async () => {},
  }),
};

const MONGOOSE_APP: AppUnderTest = {
  name: 'mongoose app',
  // A dedicated Connection on the same database, closed in afterAll; Mongoose creates no
  // collection or index on its own (prepareMongoose does).
  open: async (db) => {
    const connection = await mongoose
      .createConnection(testUri(), {
        dbName: db.databaseName,
        autoIndex: false,
        autoCreate: false,
        bufferCommands: false,
        monitorCommands: true,
      })
      .asPromise();
    await prepareMongoose(connection);
    return {
      app: createMongooseApp(connection),
      commands: recordCommands(connection.getClient()),
      close: () => connection.close(),
    };
  },
};

const APPS: AppUnderTest[] = SHARED_DRIVER ? [DRIVER_APP, MONGOOSE_APP] : [DRIVER_APP];

it('the Mongoose app is tested wherever Mongoose and the app share one mongodb (all but driver6)', ({
  task,
}) => {
  expect(SHARED_DRIVER).toBe(task.file.projectName !== 'driver6');
});

beforeAll(async () => {
  await prepare(t.db);
});

/**
 * The app a storm runs against: the naive one, each request held after its read until all
 * `calls` have read (the worst interleaving, every run), or the real one.
 */
const stormApp = (run: StormRun, calls: number, safe: Express): Express =>
  run === 'naive'
    ? createNaiveApp(t.db, { paymentSecret: SECRET, afterRead: barrier(calls) })
    : safe;

describe.each(APPS)('orders ($name)', (under) => {
  let server: Listening;
  let base: string;
  let safeApp: Express;
  let closeApp: () => Promise<void>;
  /** The commands the app under test sends (see AppUnderTest.open). */
  let log: CommandLog;

  beforeAll(async () => {
    const opened = await under.open(t.db);
    safeApp = opened.app;
    closeApp = opened.close;
    log = opened.commands;
    server = await listen(safeApp);
    base = server.url;
  });
  afterAll(async () => {
    await server?.close();
    await closeApp?.();
  });

  const order = (items: unknown, headers: Record<string, string> = {}) =>
    call(base, 'POST', '/orders', { body: { items }, headers });

  it("the command log the no-write assertions read sees this app's writes (else they could not fail)", async () => {
    const id = await newProduct(t.db, 5);
    const writes = await writesDuring(log, () => order([{ productId: id, qty: 1 }]));
    expect(writes).toContain('commitTransaction');
  });

  it('GET /products/:id: 200 with the product, 404 unknown, 400 malformed id', async () => {
    const id = await newProduct(t.db, 7, 'Lamp');
    const found = await call(base, 'GET', `/products/${id}`);
    expect(found.status).toBe(200);
    expect(found.body).toEqual({ id, name: 'Lamp', stock: 7, price: 250 });

    const unknown = new ObjectId().toHexString();
    const missing = await call(base, 'GET', `/products/${unknown}`);
    expect(missing).toMatchObject({ status: 404, body: { error: 'productNotFound', id: unknown } });

    const bad = await call(base, 'GET', '/products/not-an-id');
    expect(bad).toMatchObject({ status: 400, body: { error: 'invalidRequest', field: 'id' } });
  });

  it('POST /orders: 201 with the order this request created; stock taken; GET /orders/:id returns it', async () => {
    const a = await newProduct(t.db, 5);
    const b = await newProduct(t.db, 3);
    const created = await order([
      { productId: a, qty: 2 },
      { productId: b, qty: 3 },
    ]);
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      id: expect.stringMatching(/^[0-9a-f]{24}$/),
      items: [
        { productId: a, qty: 2 },
        { productId: b, qty: 3 },
      ],
      createdAt: expect.any(String),
    });
    expect(await stockOf(t.db, a)).toBe(3);
    expect(await stockOf(t.db, b)).toBe(0);

    const stored = await t.db
      .collection<OrderDoc>(COLLECTIONS.orders)
      .findOne({ _id: ObjectId.createFromHexString(created.body.id) });
    expect(stored?.items.map((i) => [i.productId.toHexString(), i.qty])).toEqual([
      [a, 2],
      [b, 3],
    ]);

    const read = await call(base, 'GET', `/orders/${created.body.id}`);
    expect(read.status).toBe(200);
    expect(read.body).toEqual(created.body);
  });

  it('GET /orders/:id: 404 unknown, 400 malformed', async () => {
    const unknown = new ObjectId().toHexString();
    expect(await call(base, 'GET', `/orders/${unknown}`)).toMatchObject({
      status: 404,
      body: { error: 'orderNotFound', id: unknown },
    });
    expect(await call(base, 'GET', '/orders/123')).toMatchObject({
      status: 400,
      body: { error: 'invalidRequest', field: 'id' },
    });
  });

  it('POST /orders: 409 lists EVERY short line (requested, available) and takes nothing', async () => {
    const a = await newProduct(t.db, 5);
    const b = await newProduct(t.db, 1);
    const c = await newProduct(t.db, 0);
    const before = await snapshot(t.db);
    const refused = await order([
      { productId: a, qty: 2 },
      { productId: b, qty: 2 },
      { productId: c, qty: 1 },
    ]);
    expect(refused.status).toBe(409);
    expect(refused.body).toEqual({
      error: 'insufficientStock',
      shortages: [
        { productId: b, requested: 2, available: 1 },
        { productId: c, requested: 1, available: 0 },
      ],
    });
    expect(await snapshot(t.db)).toEqual(before); // a's 2 units were not taken either
  });

  it('POST /orders: an unknown product is a 404 naming it, nothing taken', async () => {
    const a = await newProduct(t.db, 5);
    const unknown = new ObjectId().toHexString();
    const before = await snapshot(t.db);
    const refused = await order([
      { productId: a, qty: 1 },
      { productId: unknown, qty: 1 },
    ]);
    expect(refused).toMatchObject({
      status: 404,
      body: { error: 'productNotFound', productIds: [unknown] },
    });
    expect(await snapshot(t.db)).toEqual(before);
  });

  describe('validation: 400 naming the field, no write, nothing changed', () => {
    const id = '65aa7fae0000000000000001';
    const line = (qty: unknown) => [{ productId: id, qty }];
    const cases: [string, unknown, string, Record<string, string>?][] = [
      ['malformed JSON', '{"items": [', 'body'],
      ['no items', {}, 'items'],
      ['empty items', { items: [] }, 'items'],
      ['items not an array', { items: { productId: id, qty: 1 } }, 'items'],
      [
        '51 lines',
        {
          items: Array.from({ length: 51 }, () => ({
            productId: new ObjectId().toHexString(),
            qty: 1,
          })),
        },
        'items',
      ],
      ['malformed productId', { items: [{ productId: 'zz', qty: 1 }] }, 'items.0.productId'],
      ['$gt as productId', { items: [{ productId: { $gt: '' }, qty: 1 }] }, 'items.0.productId'],
      ['qty 0', { items: line(0) }, 'items.0.qty'],
      ['negative qty', { items: line(-1) }, 'items.0.qty'],
      ['fractional qty', { items: line(1.5) }, 'items.0.qty'],
      ['huge qty', { items: line(1e12) }, 'items.0.qty'],
      ['string qty', { items: line('1') }, 'items.0.qty'],
      ['$gt as qty', { items: line({ $gt: 0 }) }, 'items.0.qty'],
      ['extra key in a line', { items: [{ productId: id, qty: 1, price: 0 }] }, 'items.0.price'],
      ['extra key in the body', { items: line(1), coupon: 'x' }, 'coupon'],
      [
        'a product listed twice',
        {
          items: [
            { productId: id, qty: 1 },
            { productId: id.toUpperCase(), qty: 2 },
          ],
        },
        'items.1.productId',
      ],
      [
        'malformed Idempotency-Key',
        { items: line(1) },
        'idempotency-key',
        { 'Idempotency-Key': 'a b' },
      ],
    ];
    it.each(cases)('%s -> 400 %s', async (_name, body, field, headers = {}) => {
      const before = await snapshot(t.db);
      let reply: HttpReply | undefined;
      const writes = await writesDuring(log, async () => {
        reply = await call(base, 'POST', '/orders', { body, headers });
      });
      expect(reply?.status).toBe(400);
      expect(reply?.body).toMatchObject({ field });
      expect(reply?.body.error).toMatch(/^(invalidRequest|malformedJson)$/);
      expect(writes).toEqual([]);
      expect(await snapshot(t.db)).toEqual(before);
    });
  });

  it('unknown route: 404 JSON', async () => {
    expect(await call(base, 'DELETE', '/orders')).toMatchObject({
      status: 404,
      body: { error: 'notFound' },
    });
  });

  describe('Idempotency-Key', () => {
    it('a retried POST returns the first response (status and body); one order, stock taken once', async () => {
      const a = await newProduct(t.db, 5);
      const key = `k-${new ObjectId().toHexString()}`;
      const first = await order([{ productId: a, qty: 2 }], { 'Idempotency-Key': key });
      const again = await order([{ productId: a, qty: 2 }], { 'Idempotency-Key': key });
      expect(first.status).toBe(201);
      expect(again.status).toBe(201);
      expect(again.body).toEqual(first.body);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      expect(first.headers.get('idempotent-replayed')).toBeNull();
      expect(await stockOf(t.db, a)).toBe(3);
      const orders = await t.db
        .collection(COLLECTIONS.orders)
        .countDocuments({ 'items.productId': ObjectId.createFromHexString(a) });
      expect(orders).toBe(1);
    });

    it('a retry to the same route spelled differently (/ORDERS/, which express routes here) is still a replay, not a 422', async () => {
      const a = await newProduct(t.db, 5);
      const key = `k-${new ObjectId().toHexString()}`;
      const items = [{ productId: a, qty: 1 }];
      const first = await order(items, { 'Idempotency-Key': key });
      const again = await call(base, 'POST', '/ORDERS/', {
        body: { items },
        headers: { 'Idempotency-Key': key },
      });
      expect(first.status).toBe(201);
      expect(again).toMatchObject({ status: 201, body: first.body });
      expect(await stockOf(t.db, a)).toBe(4);
    });

    it('a 409 is replayed too: the retry does not take stock that came back', async () => {
      const a = await newProduct(t.db, 1);
      const key = `k-${new ObjectId().toHexString()}`;
      const first = await order([{ productId: a, qty: 2 }], { 'Idempotency-Key': key });
      expect(first.status).toBe(409);
      await t.db
        .collection<ProductDoc>(COLLECTIONS.products)
        .updateOne({ _id: ObjectId.createFromHexString(a) }, { $set: { stock: 10 } });
      const again = await order([{ productId: a, qty: 2 }], { 'Idempotency-Key': key });
      expect(again).toMatchObject({ status: 409, body: first.body });
      expect(await stockOf(t.db, a)).toBe(10);
    });

    it('the same key with another body: 422 idempotencyKeyReused, nothing taken', async () => {
      const a = await newProduct(t.db, 5);
      const key = `k-${new ObjectId().toHexString()}`;
      expect((await order([{ productId: a, qty: 1 }], { 'Idempotency-Key': key })).status).toBe(
        201,
      );
      const before = await snapshot(t.db);
      const reused = await order([{ productId: a, qty: 2 }], { 'Idempotency-Key': key });
      expect(reused).toMatchObject({
        status: 422,
        body: { error: 'idempotencyKeyReused', field: 'idempotency-key' },
      });
      expect(await snapshot(t.db)).toEqual(before);
    });

    it('50 concurrent POSTs with one key: naive runs the work many times; safe makes ONE order and 50 equal responses', async () => {
      const CALLS = 50;
      await naiveVersusSafe({
        invariant: 'one order per key; every response is the first one',
        calls: CALLS,
        setup: async (run) => {
          const app = stormApp(run, CALLS, safeApp);
          const listening = await listen(app);
          const product = await newProduct(t.db, 100);
          return { listening, product, key: `race-${run}-${new ObjectId().toHexString()}` };
        },
        naive: (_i, { state }) =>
          postJson(
            `${state.listening.url}/orders`,
            { items: [{ productId: state.product, qty: 1 }] },
            { 'Idempotency-Key': state.key },
          ),
        safe: (_i, { state }) =>
          postJson(
            `${state.listening.url}/orders`,
            { items: [{ productId: state.product, qty: 1 }] },
            { 'Idempotency-Key': state.key },
          ),
        check: async (state, report) => {
          await state.listening.close();
          const violations: string[] = [];
          const replies = report.values as Reply[];
          const stored = await t.db
            .collection<OrderDoc>(COLLECTIONS.orders)
            .find({ 'items.productId': ObjectId.createFromHexString(state.product) })
            .toArray();
          if (stored.length !== 1) violations.push(`${stored.length} orders for one key`);
          const stock = await stockOf(t.db, state.product);
          if (stock !== 99) violations.push(`stock is ${stock}, 1 unit should be taken`);
          const distinct = new Set(replies.map((r) => JSON.stringify([r.status, r.body])));
          if (distinct.size !== 1) violations.push(`${distinct.size} different responses`);
          const [first] = replies;
          if (first?.status !== 201 || first.body?.id !== stored[0]?._id.toHexString()) {
            violations.push(`responses do not name the stored order: ${JSON.stringify(first)}`);
          }
          if (replies.length !== CALLS) violations.push(`${CALLS - replies.length} calls failed`);
          return violations;
        },
      });
    });
  });

  it(`order race: ${ORDER_RACE.requests} concurrent orders of {A:1, B:1} against A=${ORDER_RACE.stockA}, B=${ORDER_RACE.stockB}: naive oversells, safe serves exactly ${ORDER_RACE.stockB}`, async () => {
    const { naive, safe } = await naiveVersusSafe({
      invariant: 'no stock below 0; units taken = 201 orders; stored orders = 201 replies, whole',
      calls: ORDER_RACE.requests,
      setup: (run): Promise<OrderRace> =>
        openOrderRace(t.db, stormApp(run, ORDER_RACE.requests, safeApp)),
      naive: (_i, { state }) => orderBoth(state),
      safe: (_i, { state }) => orderBoth(state),
      check: async (state, report) => {
        await state.close();
        return (await checkOrderRace(t.db, state, report.values as Reply[])).violations;
      },
    });
    expect({ ...safe.report.tally }).toEqual({
      201: ORDER_RACE.stockB,
      409: ORDER_RACE.requests - ORDER_RACE.stockB,
    });
    // What the naive storm did, for the report: every order "succeeded".
    expect(naive.report.count('201')).toBeGreaterThan(ORDER_RACE.stockB);
  });

  it('the storm check refuses 409s the stock does not justify (a service refusing every order does not hold)', async () => {
    const state = await openOrderRace(t.db, safeApp);
    try {
      // Stock untouched (30 and 20), yet every order "insufficient": an undersell, not a hold.
      const refused = Array.from({ length: ORDER_RACE.requests }, () => ({
        outcome: '409',
        status: 409,
        body: {
          error: 'insufficientStock',
          shortages: [{ productId: state.b.toHexString(), requested: 1, available: 0 }],
        },
      }));
      const outcome = await checkOrderRace(t.db, state, refused);
      expect(outcome.violations).toContainEqual(expect.stringContaining('409'));
    } finally {
      await state.close();
    }
  });

  it('a sequential sanity check of the storm pieces: one order takes one of each', async () => {
    const state = await openOrderRace(t.db, safeApp);
    try {
      const reply = await orderBoth(state);
      expect(reply.status).toBe(201);
      const outcome = await checkOrderRace(t.db, state, [reply]);
      expect(outcome).toEqual({
        violations: [],
        created: 1,
        finalState: expect.stringContaining('A=29 B=19 orders=1'),
      });
    } finally {
      await state.close();
    }
  });
});

describe('checkout flow (driver app): signed payment callback, finalize', () => {
  let server: Listening;
  let base: string;
  let safeApp: Express;

  beforeAll(async () => {
    safeApp = createApp(t.db, { paymentSecret: SECRET });
    server = await listen(safeApp);
    base = server.url;
  });
  afterAll(async () => {
    await server?.close();
  });

  const checkouts = () => t.db.collection<CheckoutDoc>(COLLECTIONS.checkouts);
  const payments = () => t.db.collection<PaymentDoc>(COLLECTIONS.payments);
  const oid = (hex: string) => ObjectId.createFromHexString(hex);

  async function newCart(lines: { productId: string; qty: number }[]): Promise<string> {
    const _id = new ObjectId();
    await t.db.collection<CartDoc>(COLLECTIONS.carts).insertOne({
      _id,
      lines: lines.map((l) => ({ productId: oid(l.productId), qty: l.qty })),
    });
    return _id.toHexString();
  }

  /** A cart of 2 × a (stock `stockA`) and 1 × b (stock 5), and its open checkout. */
  async function newCheckout(stockA = 10) {
    const a = await newProduct(t.db, stockA);
    const b = await newProduct(t.db, 5);
    const cartId = await newCart([
      { productId: a, qty: 2 },
      { productId: b, qty: 1 },
    ]);
    const created = await call(base, 'POST', '/checkouts', { body: { cartId } });
    expect(created.status).toBe(201);
    return { a, b, cartId, checkout: created.body as { id: string; amount: number } };
  }

  /** POSTs the callback: `raw` signed with `secret` unless `signature` is given. */
  function callback(
    url: string,
    raw: string,
    options: { secret?: string; signature?: string | null } = {},
  ) {
    const signature =
      options.signature === undefined
        ? signPayload(options.secret ?? SECRET, raw)
        : options.signature;
    return call(url, 'POST', '/payments/callback', {
      body: raw,
      headers: signature === null ? {} : { 'X-Signature': signature },
    });
  }
  const payload = (checkoutId: string, amount: number, paymentId = 'pay_1') =>
    JSON.stringify({ checkoutId, paymentId, amount });

  async function paidCheckout(stockA = 10) {
    const made = await newCheckout(stockA);
    const paid = await callback(base, payload(made.checkout.id, made.checkout.amount));
    expect(paid.body).toMatchObject({ status: 'processed' });
    return made;
  }

  it('POST /checkouts: 201 with the cart lines and the amount; GET /checkouts/:id returns it', async () => {
    const { a, b, cartId, checkout } = await newCheckout();
    expect(checkout).toEqual({
      id: expect.stringMatching(/^[0-9a-f]{24}$/),
      cartId,
      lines: [
        { productId: a, qty: 2 },
        { productId: b, qty: 1 },
      ],
      amount: 3 * 250,
      status: 'open',
      paymentStatus: 'pending',
    });
    const read = await call(base, 'GET', `/checkouts/${checkout.id}`);
    expect(read).toMatchObject({ status: 200, body: checkout });
  });

  it('POST /checkouts: 404 unknown cart, 409 empty cart, 404 a product gone, 400 malformed or $-operator cartId (no write)', async () => {
    const unknown = new ObjectId().toHexString();
    expect(await call(base, 'POST', '/checkouts', { body: { cartId: unknown } })).toMatchObject({
      status: 404,
      body: { error: 'cartNotFound', id: unknown },
    });
    const empty = await newCart([]);
    expect(await call(base, 'POST', '/checkouts', { body: { cartId: empty } })).toMatchObject({
      status: 409,
      body: { error: 'cartEmpty' },
    });
    const ghost = new ObjectId().toHexString();
    const withGhost = await newCart([{ productId: ghost, qty: 1 }]);
    expect(await call(base, 'POST', '/checkouts', { body: { cartId: withGhost } })).toMatchObject({
      status: 404,
      body: { error: 'productNotFound', productIds: [ghost] },
    });
    for (const [body, field] of [
      [{ cartId: { $gt: '' } }, 'cartId'],
      [{ cartId: 'nope' }, 'cartId'],
      [{ cartId: empty, x: 1 }, 'x'],
      ['{', 'body'],
    ] as const) {
      const before = await snapshot(t.db);
      let reply: HttpReply | undefined;
      const writes = await writesDuring(t.commands, async () => {
        reply = await call(base, 'POST', '/checkouts', { body });
      });
      expect(reply?.status).toBe(400);
      expect(reply?.body.field).toBe(field);
      expect(writes).toEqual([]);
      expect(await snapshot(t.db)).toEqual(before);
    }
  });

  it('POST /checkouts with an Idempotency-Key: 20 concurrent submits make ONE checkout, every reply is its 201', async () => {
    const a = await newProduct(t.db, 3);
    const cartId = await newCart([{ productId: a, qty: 1 }]);
    const key = `co-${new ObjectId().toHexString()}`;
    const report = await race(20, () =>
      call(base, 'POST', '/checkouts', { body: { cartId }, headers: { 'Idempotency-Key': key } }),
    );
    expect(report.errors).toEqual([]);
    const replies = report.values as HttpReply[];
    expect(new Set(replies.map((r) => JSON.stringify([r.status, r.body]))).size).toBe(1);
    expect(replies[0]?.status).toBe(201);
    const stored = await checkouts()
      .find({ cartId: oid(cartId) })
      .toArray();
    expect(stored.map((c) => c._id.toHexString())).toEqual([replies[0]?.body.id]);
    // The same key for another cart: 422, nothing written.
    const other = await newCart([{ productId: a, qty: 1 }]);
    const before = await snapshot(t.db);
    expect(
      await call(base, 'POST', '/checkouts', {
        body: { cartId: other },
        headers: { 'Idempotency-Key': key },
      }),
    ).toMatchObject({ status: 422, body: { error: 'idempotencyKeyReused' } });
    expect(await snapshot(t.db)).toEqual(before);
  });

  it('GET /checkouts/:id: 404 unknown, 400 malformed', async () => {
    expect((await call(base, 'GET', `/checkouts/${new ObjectId().toHexString()}`)).status).toBe(
      404,
    );
    expect(await call(base, 'GET', '/checkouts/x')).toMatchObject({
      status: 400,
      body: { field: 'id' },
    });
  });

  describe('POST /payments/callback', () => {
    it('a missing, wrong or tampered signature: 401, no write', async () => {
      const { checkout } = await newCheckout();
      const raw = payload(checkout.id, checkout.amount);
      const tampered = payload(checkout.id, 1);
      for (const [reply, label] of [
        [() => callback(base, raw, { signature: null }), 'missing'],
        [() => callback(base, raw, { secret: 'another-secret-0123456789' }), 'other secret'],
        [() => callback(base, tampered, { signature: signPayload(SECRET, raw) }), 'tampered'],
        [() => callback(base, raw, { signature: 'zz' }), 'not hex'],
      ] as const) {
        const before = await snapshot(t.db);
        let got: HttpReply | undefined;
        const writes = await writesDuring(t.commands, async () => {
          got = await reply();
        });
        expect(got, label).toMatchObject({ status: 401, body: { error: 'invalidSignature' } });
        expect(writes).toEqual([]);
        expect(await snapshot(t.db)).toEqual(before);
      }
    });

    it('signed but invalid: malformed JSON, $ operators, bad amount, extra keys -> 400 naming the field, no write', async () => {
      const { checkout } = await newCheckout();
      const cases: [string, string][] = [
        ['{"checkoutId":', 'body'],
        [JSON.stringify({ checkoutId: { $gt: '' }, paymentId: 'p', amount: 1 }), 'checkoutId'],
        [
          JSON.stringify({ checkoutId: checkout.id, paymentId: { $ne: 1 }, amount: 1 }),
          'paymentId',
        ],
        [JSON.stringify({ checkoutId: checkout.id, paymentId: 'p', amount: 1.5 }), 'amount'],
        [JSON.stringify({ checkoutId: checkout.id, paymentId: 'p', amount: -1 }), 'amount'],
        [JSON.stringify({ checkoutId: checkout.id, paymentId: 'p', amount: '750' }), 'amount'],
        [
          JSON.stringify({ checkoutId: checkout.id, paymentId: 'p', amount: 750, paid: true }),
          'paid',
        ],
      ];
      for (const [raw, field] of cases) {
        const before = await snapshot(t.db);
        let got: HttpReply | undefined;
        const writes = await writesDuring(t.commands, async () => {
          got = await callback(base, raw);
        });
        expect(got?.status, raw).toBe(400);
        expect(got?.body.field, raw).toBe(field);
        expect(writes).toEqual([]);
        expect(await snapshot(t.db)).toEqual(before);
      }
    });

    it('first delivery: 200 processed, checkout paid, one ledger entry; a replay: 200 alreadyProcessed, nothing more', async () => {
      const { checkout } = await newCheckout();
      const raw = payload(checkout.id, checkout.amount, 'pay_A');
      const first = await callback(base, raw);
      expect(first).toMatchObject({
        status: 200,
        body: { status: 'processed', checkoutId: checkout.id, paymentId: 'pay_A' },
      });
      const stored = await checkouts().findOne({ _id: oid(checkout.id) });
      expect(stored).toMatchObject({
        paymentStatus: 'paid',
        status: 'open',
        payment: { id: 'pay_A', amount: checkout.amount, paidAt: expect.any(Date) },
      });
      const before = await snapshot(t.db);
      const replay = await callback(base, raw);
      expect(replay).toMatchObject({
        status: 200,
        body: { status: 'alreadyProcessed', checkoutId: checkout.id, paymentId: 'pay_A' },
      });
      expect(await snapshot(t.db)).toEqual(before);
      expect(await payments().countDocuments({ checkoutId: oid(checkout.id) })).toBe(1);
    });

    it('another payment for a paid checkout: 409 alreadyPaid naming the first; wrong amount: 409 amountMismatch; unknown checkout: 404; nothing changes', async () => {
      const { checkout } = await newCheckout();
      expect((await callback(base, payload(checkout.id, checkout.amount + 1))).body).toEqual({
        error: 'amountMismatch',
        expected: checkout.amount,
        received: checkout.amount + 1,
      });
      expect((await checkouts().findOne({ _id: oid(checkout.id) }))?.paymentStatus).toBe('pending');
      await callback(base, payload(checkout.id, checkout.amount, 'pay_A'));
      const before = await snapshot(t.db);
      const second = await callback(base, payload(checkout.id, checkout.amount, 'pay_B'));
      expect(second).toMatchObject({
        status: 409,
        body: { error: 'alreadyPaid', checkoutId: checkout.id, paymentId: 'pay_A' },
      });
      const unknown = new ObjectId().toHexString();
      expect(await callback(base, payload(unknown, 100))).toMatchObject({
        status: 404,
        body: { error: 'checkoutNotFound', id: unknown },
      });
      expect(await snapshot(t.db)).toEqual(before);
    });

    it('50 concurrent replays of one callback: naive records the payment many times; safe processes it once', async () => {
      const CALLS = 50;
      const { naive, safe } = await naiveVersusSafe({
        invariant: 'one ledger entry per paid checkout; exactly one reply says processed',
        calls: CALLS,
        setup: async (run) => {
          const app = stormApp(run, CALLS, safeApp);
          const listening = await listen(app);
          const { checkout } = await newCheckout();
          return { listening, checkout, raw: payload(checkout.id, checkout.amount, `pay_${run}`) };
        },
        naive: (_i, { state }) => callback(state.listening.url, state.raw),
        safe: (_i, { state }) => callback(state.listening.url, state.raw),
        check: async (state, report) => {
          await state.listening.close();
          const replies = report.values as HttpReply[];
          const violations: string[] = [];
          const entries = await payments().countDocuments({ checkoutId: oid(state.checkout.id) });
          if (entries !== 1) violations.push(`${entries} ledger entries for one payment`);
          const processed = replies.filter((r) => r.body?.status === 'processed').length;
          const already = replies.filter((r) => r.body?.status === 'alreadyProcessed').length;
          if (processed !== 1) violations.push(`${processed} replies say processed`);
          if (processed + already !== CALLS) violations.push('some replies are neither');
          if (processed !== entries) violations.push('the replies disagree with the ledger');
          return violations;
        },
      });
      expect(safe.violations).toEqual([]);
      expect(naive.violations.length).toBeGreaterThan(0);
    });
  });

  describe('POST /checkouts/:id/finalize', () => {
    it('unpaid: 409 notPaid, nothing changes; unknown: 404; malformed id: 400', async () => {
      const { checkout } = await newCheckout();
      const before = await snapshot(t.db);
      expect(await call(base, 'POST', `/checkouts/${checkout.id}/finalize`)).toMatchObject({
        status: 409,
        body: { error: 'notPaid', id: checkout.id },
      });
      const unknown = new ObjectId().toHexString();
      expect(await call(base, 'POST', `/checkouts/${unknown}/finalize`)).toMatchObject({
        status: 404,
        body: { error: 'checkoutNotFound' },
      });
      expect(await snapshot(t.db)).toEqual(before);
      const writes = await writesDuring(t.commands, async () => {
        expect((await call(base, 'POST', '/checkouts/%7B%24gt%7D/finalize')).status).toBe(400);
      });
      expect(writes).toEqual([]);
    });

    it('paid: 201 one order, stock taken, cart emptied, checkout finalized; a repeat: 200 the same order', async () => {
      const { a, b, cartId, checkout } = await paidCheckout();
      const first = await call(base, 'POST', `/checkouts/${checkout.id}/finalize`);
      expect(first.status).toBe(201);
      expect(first.body).toEqual({
        id: expect.stringMatching(/^[0-9a-f]{24}$/),
        items: [
          { productId: a, qty: 2 },
          { productId: b, qty: 1 },
        ],
        createdAt: expect.any(String),
        checkoutId: checkout.id,
      });
      expect(await stockOf(t.db, a)).toBe(8);
      expect(await stockOf(t.db, b)).toBe(4);
      expect(
        (await t.db.collection<CartDoc>(COLLECTIONS.carts).findOne({ _id: oid(cartId) }))?.lines,
      ).toEqual([]);
      expect(await checkouts().findOne({ _id: oid(checkout.id) })).toMatchObject({
        status: 'finalized',
        orderId: oid(first.body.id),
      });
      const before = await snapshot(t.db);
      const again = await call(base, 'POST', `/checkouts/${checkout.id}/finalize`);
      expect(again).toMatchObject({ status: 200, body: first.body });
      expect(await snapshot(t.db)).toEqual(before);
      expect((await call(base, 'GET', `/orders/${first.body.id}`)).body).toEqual(first.body);
    });

    it('stock short: 409 insufficientStock listing the line, nothing changes (still open, cart kept)', async () => {
      const { a, checkout } = await paidCheckout(1);
      const before = await snapshot(t.db);
      const refused = await call(base, 'POST', `/checkouts/${checkout.id}/finalize`);
      expect(refused).toMatchObject({
        status: 409,
        body: {
          error: 'insufficientStock',
          shortages: [{ productId: a, requested: 2, available: 1 }],
        },
      });
      expect(await snapshot(t.db)).toEqual(before);
    });

    it('a product gone since checkout: 404 productNotFound naming it, nothing changes', async () => {
      const { b, checkout } = await paidCheckout();
      await t.db.collection(COLLECTIONS.products).deleteOne({ _id: oid(b) });
      const before = await snapshot(t.db);
      expect(await call(base, 'POST', `/checkouts/${checkout.id}/finalize`)).toMatchObject({
        status: 404,
        body: { error: 'productNotFound', productIds: [b] },
      });
      expect(await snapshot(t.db)).toEqual(before);
    });

    it('50 concurrent finalizes of one paid checkout: naive creates many orders; safe exactly one, taken once, every reply names it', async () => {
      const CALLS = 50;
      await naiveVersusSafe({
        invariant: 'one order per checkout; stock taken once; every reply names that order',
        calls: CALLS,
        setup: async (run) => {
          const app = stormApp(run, CALLS, safeApp);
          const listening = await listen(app);
          return { listening, ...(await paidCheckout(1_000)) };
        },
        naive: (_i, { state }) =>
          call(state.listening.url, 'POST', `/checkouts/${state.checkout.id}/finalize`),
        safe: (_i, { state }) =>
          call(state.listening.url, 'POST', `/checkouts/${state.checkout.id}/finalize`),
        check: async (state, report) => {
          await state.listening.close();
          const replies = report.values as HttpReply[];
          const violations: string[] = [];
          const orders = await t.db
            .collection<OrderDoc>(COLLECTIONS.orders)
            .find({ checkoutId: oid(state.checkout.id) })
            .toArray();
          if (orders.length !== 1) violations.push(`${orders.length} orders for one checkout`);
          const stockA = await stockOf(t.db, state.a);
          if (stockA !== 998) violations.push(`stock of a is ${stockA}, 2 units should be taken`);
          const named = new Set(replies.map((r) => r.body?.id));
          if (named.size !== 1 || !named.has(orders[0]?._id.toHexString())) {
            violations.push(`replies name ${named.size} order(s)`);
          }
          const created = replies.filter((r) => r.status === 201).length;
          if (created !== 1) violations.push(`${created} replies are 201`);
          return violations;
        },
      });
    });
  });
});

it('the demo scenario (examples/inventory/demo.ts): naive breaks the invariant, safe holds it', async () => {
  const naive = await scenario.run(t.db, 'naive', () => {});
  const safe = await scenario.run(t.db, 'safe', () => {});
  expect(naive.held).toBe(false);
  expect(naive.succeeded).toBeGreaterThan(ORDER_RACE.stockB);
  expect(safe).toEqual({
    succeeded: ORDER_RACE.stockB,
    finalState: 'A=10 B=0 orders=20',
    held: true,
  });
});

describe('hold-then-pay (driver app): hold, then confirm on payment or release on cancel', () => {
  let server: Listening;
  let base: string;

  beforeAll(async () => {
    server = await listen(createApp(t.db, { paymentSecret: SECRET }));
    base = server.url;
  });
  afterAll(async () => {
    await server?.close();
  });

  const holdOf = (product: string, body: unknown) =>
    call(base, 'POST', `/products/${product}/holds`, { body });
  const settle = (product: string, holdId: string, action: 'confirm' | 'release') =>
    call(base, 'POST', `/products/${product}/holds/${holdId}/${action}`);

  it('hold (201, stock down), repeat (200, nothing more), pay → confirmed, and the stock stays taken', async () => {
    const p = await newProduct(t.db, 5);
    const held = await holdOf(p, { qty: 2, holdId: 'chk-1' });
    expect(held.status).toBe(201);
    expect(held.body).toMatchObject({ holdId: 'chk-1', qty: 2, stock: 3 });
    expect(new Date(held.body.expiresAt).getTime()).toBeGreaterThan(0);
    const again = await holdOf(p, { qty: 2, holdId: 'chk-1' });
    expect(again).toMatchObject({ status: 200, body: { repeat: true, qty: 2 } });
    expect(await stockOf(t.db, p)).toBe(3);
    expect(await settle(p, 'chk-1', 'confirm')).toMatchObject({
      status: 200,
      body: { outcome: 'confirmed', qty: 2 },
    });
    expect(await settle(p, 'chk-1', 'confirm')).toMatchObject({
      status: 200,
      body: { outcome: 'alreadyConfirmed' },
    });
    expect(await settle(p, 'chk-1', 'release')).toMatchObject({ status: 409 });
    expect(await stockOf(t.db, p)).toBe(3);
  });

  it('cancel → released: the units are back; paying afterwards is refused (409)', async () => {
    const p = await newProduct(t.db, 5);
    expect((await holdOf(p, { qty: 5, holdId: 'chk-2' })).status).toBe(201);
    expect(await holdOf(p, { qty: 1, holdId: 'chk-3' })).toMatchObject({
      status: 409,
      body: { error: 'insufficientStock', available: 0 },
    });
    expect(await settle(p, 'chk-2', 'release')).toMatchObject({
      status: 200,
      body: { outcome: 'released', qty: 5 },
    });
    expect(await stockOf(t.db, p)).toBe(5);
    expect(await settle(p, 'chk-2', 'confirm')).toMatchObject({
      status: 409,
      body: { error: 'holdReleased' },
    });
  });

  it('a hold nobody settles lapses: the next buyer gets the units, the late payment is told 410', async () => {
    const p = await newProduct(t.db, 3);
    await t.db
      .collection<ProductDoc>(COLLECTIONS.products)
      .updateOne({ _id: ObjectId.createFromHexString(p) }, {
        $set: { stock: 0 },
        $push: { _holds: { id: 'gone', amount: 3, expiresAt: new Date(0), call: 'x' } },
      } as never);
    expect((await holdOf(p, { qty: 3, holdId: 'next' })).status).toBe(201);
    expect(await settle(p, 'gone', 'confirm')).toMatchObject({
      status: 410,
      body: { error: 'holdExpired', qty: 3 },
    });
    expect(await stockOf(t.db, p)).toBe(0);
  });

  it('404 unknown product or hold, 400 bad body (no write)', async () => {
    const p = await newProduct(t.db, 3);
    expect((await holdOf(new ObjectId().toHexString(), { qty: 1, holdId: 'a' })).status).toBe(404);
    expect((await settle(p, 'nope', 'confirm')).status).toBe(404);
    expect(
      await writesDuring(t.commands, async () => {
        expect((await holdOf(p, { qty: 0, holdId: 'a' })).body).toMatchObject({ field: 'qty' });
        expect((await holdOf(p, { qty: 1, holdId: { $ne: 1 } })).body).toMatchObject({
          field: 'holdId',
        });
        expect((await holdOf(p, { qty: 1, holdId: 'a', ttlSeconds: 99_999 })).status).toBe(400);
      }),
    ).toEqual([]);
  });

  it('20 concurrent holds of 1 unit against a stock of 5: exactly 5 are held, stock 0', async () => {
    const p = await newProduct(t.db, 5);
    const { tally } = await race(
      20,
      async (i) => (await holdOf(p, { qty: 1, holdId: `c${i}` })).status,
    );
    expect(tally).toEqual({ 201: 5, 409: 15 });
    expect(await stockOf(t.db, p)).toBe(0);
  });
});
