/**
 * The carts example (examples/carts) over HTTP: every endpoint's answers, request validation
 * that writes nothing, and seeds 000/002's races (100 concurrent adds of one line, 50 concurrent
 * merges of one guest cart), each shown to break the naive app and to hold on the real one.
 */
import { naiveVersusSafe, race } from 'mongo-atomics/testing';
import { BSON, ObjectId } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../examples/carts/app.js';
import { collections, LINE_CAP } from '../../examples/carts/cart.js';
import { prepare, SAMPLE } from '../../examples/carts/setup.js';
import {
  ADD_REQUESTS,
  addOne,
  checkAddStorm,
  checkMergeStorm,
  MERGE_REQUESTS,
  mergeOne,
  setUpAddStorm,
  setUpMergeStorm,
} from '../../examples/carts/storm.js';
import { useTestDatabase } from '../support/mongo.js';
import { call, type Listening, listen, writesDuring } from './support.js';

const t = useTestDatabase('carts_example');
let server: Listening;
let base: string;

beforeAll(async () => {
  await prepare(t.db);
  server = await listen(createApp(t.db));
  base = server.url;
});
afterAll(async () => {
  await server?.close();
});

const TEE = SAMPLE.tee.toHexString();
const HOODIE = SAMPLE.hoodie.toHexString();
const teeM = { productId: TEE, size: 'M', color: 'black' };
const unknownId = () => new ObjectId().toHexString();

async function newUser(): Promise<string> {
  const reply = await call(base, 'POST', '/users');
  expect(reply.status).toBe(201);
  return reply.body.userId;
}
async function newSession(): Promise<string> {
  const reply = await call(base, 'POST', '/sessions');
  expect(reply.status).toBe(201);
  return reply.body.sessionId;
}
const add = (owner: string, body: unknown) => call(base, 'POST', `${owner}/cart/lines`, { body });

/** Every document of the example's collections, as canonical EJSON. */
async function snapshot(): Promise<string> {
  const { products, carts, sessions } = collections(t.db);
  const all = await Promise.all(
    [products, carts, sessions].map((c) => c.find({}, { sort: { _id: 1 } }).toArray()),
  );
  return BSON.EJSON.stringify(all);
}

type Send = () => Promise<{ status: number; body: { error: string; field?: string } }>;

/**
 * Sends the request and asserts the answer and that no document changed. With `writeCommands`
 * false (validation errors, unknown products) it also asserts that no write command was sent;
 * a 404 for a missing cart or line is the answer of a conditional write that matched nothing
 * (the guard is the write's filter), so there the write command is expected.
 */
async function expectRejected(
  send: Send,
  status: number,
  expected: { error: string; field?: string | undefined },
  writeCommands = false,
) {
  const before = await snapshot();
  let reply: Awaited<ReturnType<Send>> | undefined;
  const writes = await writesDuring(t.commands, async () => {
    reply = await send();
  });
  expect({ status: reply?.status, ...reply?.body }).toMatchObject({ status, ...expected });
  if (!writeCommands) expect(writes).toEqual([]);
  expect(await snapshot()).toBe(before);
}
const expectRejectedWithoutWrite = (
  send: Send,
  status: number,
  expected: { error: string; field?: string | undefined },
) => expectRejected(send, status, expected, false);
const expectNotFoundUnchanged = (send: Send, error: string) =>
  expectRejected(send, 404, { error }, true);

describe('catalogue, sign-up, guest sessions, reading a cart', () => {
  it('GET /products lists the catalogue with sizes and colors', async () => {
    const reply = await call(base, 'GET', '/products');
    expect(reply.status).toBe(200);
    expect(reply.body.products.map((p: { name: string }) => p.name)).toEqual([
      'Cap',
      'Hoodie',
      'T-shirt',
    ]);
    expect(reply.body.products[2]).toMatchObject({ _id: TEE, sizes: ['S', 'M', 'L'] });
  });

  it('POST /users creates an empty cart (201) that GET reads back', async () => {
    const userId = await newUser();
    const reply = await call(base, 'GET', `/users/${userId}/cart`);
    expect(reply.status).toBe(200);
    expect(reply.body).toEqual({ userId, cart: { lines: [], totalQuantity: 0, totalPrice: 0 } });
  });

  it('POST /sessions creates a guest session (201) with an empty cart', async () => {
    const sessionId = await newSession();
    const reply = await call(base, 'GET', `/sessions/${sessionId}/cart`);
    expect(reply.status).toBe(200);
    expect(reply.body.cart.lines).toEqual([]);
    const stored = await collections(t.db).sessions.findOne({ _id: new ObjectId(sessionId) });
    expect(stored?.data.cart).toEqual([]);
  });

  it('an unknown cart or session is a 404 naming it', async () => {
    const id = unknownId();
    expect(await call(base, 'GET', `/users/${id}/cart`)).toMatchObject({
      status: 404,
      body: { error: 'cartNotFound', userId: id },
    });
    expect(await call(base, 'GET', `/sessions/${id}/cart`)).toMatchObject({
      status: 404,
      body: { error: 'sessionNotFound', sessionId: id },
    });
  });

  it('an unknown route is a JSON 404', async () => {
    expect(await call(base, 'DELETE', '/users')).toMatchObject({
      status: 404,
      body: { error: 'notFound' },
    });
  });
});

describe.each([
  ['user', '/users', async () => `/users/${await newUser()}`],
  ['guest', '/sessions', async () => `/sessions/${await newSession()}`],
])('the %s cart', (_kind, prefix, create) => {
  const notFound = prefix === '/users' ? 'cartNotFound' : 'sessionNotFound';

  it('add: 201 pushed for a new line, 200 incremented after, one line per identity', async () => {
    const owner = await create();
    const first = await add(owner, teeM);
    expect(first.status).toBe(201);
    expect(first.body).toEqual({
      outcome: 'pushed',
      line: { ...teeM, quantity: 1, name: 'T-shirt', price: 1500 },
    });
    const second = await add(owner, { ...teeM, quantity: 3 });
    expect(second.status).toBe(200);
    expect(second.body).toMatchObject({ outcome: 'incremented', line: { ...teeM, quantity: 4 } });
    // Another size is another line.
    expect((await add(owner, { ...teeM, size: 'L' })).status).toBe(201);
    const cart = await call(base, 'GET', `${owner}/cart`);
    expect(cart.body.cart).toMatchObject({ totalQuantity: 5, totalPrice: 7500 });
    expect(cart.body.cart.lines.map((l: { size: string }) => l.size)).toEqual(['M', 'L']);
  });

  it('add: up to the cap is fine, past it is a 409 with the line and what is still available', async () => {
    const owner = await create();
    expect((await add(owner, { ...teeM, quantity: 7 })).status).toBe(201);
    const over = await add(owner, { ...teeM, quantity: 4 });
    expect(over.status).toBe(409);
    expect(over.body).toMatchObject({
      error: 'lineLimitReached',
      line: { ...teeM, quantity: 7 },
      max: LINE_CAP,
      requested: 4,
      available: 3,
    });
    expect(await add(owner, { ...teeM, quantity: 3 })).toMatchObject({
      status: 200,
      body: { line: { quantity: 10 } },
    });
  });

  it('add: unknown product 404, unknown cart 404, wrong size or color 400 with the allowed values, no write', async () => {
    const owner = await create();
    const productId = unknownId();
    await expectRejectedWithoutWrite(() => add(owner, { ...teeM, productId }), 404, {
      error: 'productNotFound',
    });
    await expectNotFoundUnchanged(() => add(`${prefix}/${unknownId()}`, teeM), notFound);
    await expectRejectedWithoutWrite(() => add(owner, { ...teeM, size: 'XL' }), 400, {
      error: 'invalidRequest',
      field: 'size',
    });
    const badColor = await add(owner, { ...teeM, color: 'pink' });
    expect(badColor.body).toMatchObject({ field: 'color', allowed: ['black', 'white'] });
  });

  it('set quantity: 200 updated, 0 removes the line, a missing line or cart is a 404', async () => {
    const owner = await create();
    await add(owner, { ...teeM, quantity: 2 });
    await add(owner, { productId: HOODIE, size: 'L', color: 'grey' });
    const set = await call(base, 'PUT', `${owner}/cart/lines`, { body: { ...teeM, quantity: 6 } });
    expect(set).toMatchObject({ status: 200, body: { outcome: 'updated', line: { quantity: 6 } } });
    const removed = await call(base, 'PUT', `${owner}/cart/lines`, {
      body: { ...teeM, quantity: 0 },
    });
    expect(removed.body).toMatchObject({ outcome: 'removed', line: { ...teeM, quantity: 0 } });
    const cart = await call(base, 'GET', `${owner}/cart`);
    expect(cart.body.cart.lines.map((l: { productId: string }) => l.productId)).toEqual([HOODIE]);
    await expectNotFoundUnchanged(
      () => call(base, 'PUT', `${owner}/cart/lines`, { body: { ...teeM, quantity: 1 } }),
      'lineNotFound',
    );
    await expectNotFoundUnchanged(
      () =>
        call(base, 'PUT', `${prefix}/${unknownId()}/cart/lines`, {
          body: { ...teeM, quantity: 1 },
        }),
      notFound,
    );
  });

  it('remove one: 2 → 1 → gone, then 404 lineNotFound; never below zero', async () => {
    const owner = await create();
    await add(owner, { ...teeM, quantity: 2 });
    const removeOne = () => call(base, 'POST', `${owner}/cart/lines/remove-one`, { body: teeM });
    expect(await removeOne()).toMatchObject({
      status: 200,
      body: { outcome: 'updated', line: { quantity: 1 } },
    });
    expect(await removeOne()).toMatchObject({
      status: 200,
      body: { outcome: 'removed', line: { quantity: 0 } },
    });
    expect((await call(base, 'GET', `${owner}/cart`)).body.cart.lines).toEqual([]);
    await expectNotFoundUnchanged(removeOne, 'lineNotFound');
    await expectNotFoundUnchanged(
      () => call(base, 'POST', `${prefix}/${unknownId()}/cart/lines/remove-one`, { body: teeM }),
      notFound,
    );
  });

  it('20 concurrent remove-ones on a line of 5: five 200s, fifteen 404s, the line gone', async () => {
    const owner = await create();
    await add(owner, { ...teeM, quantity: 5 });
    const report = await race(20, async () => {
      const reply = await call(base, 'POST', `${owner}/cart/lines/remove-one`, { body: teeM });
      return { outcome: reply.status === 200 ? reply.body.outcome : reply.body.error };
    });
    expect({ ...report.tally }).toEqual({ updated: 4, removed: 1, lineNotFound: 15 });
    expect((await call(base, 'GET', `${owner}/cart`)).body.cart.lines).toEqual([]);
  });
});

describe('merge at login', () => {
  async function guestWith(lines: { body: unknown }[]): Promise<string> {
    const sessionId = await newSession();
    for (const { body } of lines)
      expect((await add(`/sessions/${sessionId}`, body)).status).toBe(201);
    return sessionId;
  }
  const merge = (userId: string, sessionId: unknown) =>
    call(base, 'POST', `/users/${userId}/cart/merge`, { body: { sessionId } });

  it('sums quantities, caps them (reported), appends new lines, empties the guest cart; a repeat merges nothing', async () => {
    const userId = await newUser();
    await add(`/users/${userId}`, { ...teeM, quantity: 8 });
    const sessionId = await guestWith([
      { body: { ...teeM, quantity: 4 } },
      { body: { productId: HOODIE, size: 'L', color: 'grey', quantity: 2 } },
    ]);
    const first = await merge(userId, sessionId);
    expect(first.status).toBe(200);
    expect(first.body.merged).toEqual([
      { ...teeM, added: 2, quantity: 10 },
      { productId: HOODIE, size: 'L', color: 'grey', added: 2, quantity: 2 },
    ]);
    expect(first.body.capped).toEqual([{ ...teeM, requested: 12, kept: 10, dropped: 2 }]);
    expect(first.body.cart).toMatchObject({ totalQuantity: 12 });
    const guest = await collections(t.db).sessions.findOne({ _id: new ObjectId(sessionId) });
    expect(guest?.data.cart).toEqual([]);
    expect(guest?.data.mergedInto?.toHexString()).toBe(userId);

    const again = await merge(userId, sessionId);
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ merged: [], capped: [], cart: first.body.cart });
    expect((await call(base, 'GET', `/users/${userId}/cart`)).body.cart).toEqual(first.body.cart);
  });

  it('an unknown session or user is a 404, nothing written', async () => {
    const userId = await newUser();
    const sessionId = await guestWith([{ body: teeM }]);
    // A transaction that only read: the runner commits it (commitTransaction), nothing changes.
    await expectNotFoundUnchanged(() => merge(userId, unknownId()), 'sessionNotFound');
    await expectNotFoundUnchanged(() => merge(unknownId(), sessionId), 'cartNotFound');
  });
});

describe('validation: 400 naming the field, nothing written', () => {
  let user: string;
  let guest: string;
  beforeAll(async () => {
    user = `/users/${await newUser()}`;
    guest = `/sessions/${await newSession()}`;
    await add(user, teeM);
  });

  const bodies: [string, unknown, string][] = [
    ['productId not an ObjectId', { ...teeM, productId: 'abc' }, 'productId'],
    ['productId an operator', { ...teeM, productId: { $gt: '' } }, 'productId'],
    ['size an operator', { ...teeM, size: { $gt: '' } }, 'size'],
    ['size with a $', { ...teeM, size: '$size' }, 'size'],
    ['color a number', { ...teeM, color: 5 }, 'color'],
    ['quantity 0', { ...teeM, quantity: 0 }, 'quantity'],
    ['quantity negative', { ...teeM, quantity: -1 }, 'quantity'],
    ['quantity fractional', { ...teeM, quantity: 1.5 }, 'quantity'],
    ['quantity huge', { ...teeM, quantity: 1e9 }, 'quantity'],
    ['quantity over the cap', { ...teeM, quantity: LINE_CAP + 1 }, 'quantity'],
    ['quantity a string', { ...teeM, quantity: '2' }, 'quantity'],
    ['quantity an operator', { ...teeM, quantity: { $gt: 0 } }, 'quantity'],
    ['an extra key', { ...teeM, price: 1 }, 'price'],
    ['an array', [teeM], 'body'],
    ['no product', { size: 'M', color: 'black' }, 'productId'],
  ];

  it.each(bodies)('add: %s', async (_name, body, field) => {
    for (const owner of [user, guest]) {
      await expectRejectedWithoutWrite(() => add(owner, body), 400, {
        error: 'invalidRequest',
        field,
      });
    }
  });

  it('add: malformed JSON and no body', async () => {
    await expectRejectedWithoutWrite(() => add(user, '{"productId":'), 400, {
      error: 'malformedJson',
      field: 'body',
    });
    await expectRejectedWithoutWrite(() => call(base, 'POST', `${user}/cart/lines`), 400, {
      error: 'invalidRequest',
      field: 'body',
    });
  });

  it.each([
    ['POST', '/cart/lines', teeM],
    ['PUT', '/cart/lines', { ...teeM, quantity: 1 }],
    ['POST', '/cart/lines/remove-one', teeM],
    ['GET', '/cart', undefined],
  ])('%s …%s: a malformed user or session id', async (method, path, body) => {
    for (const [owner, field] of [
      ['/users/abc', 'userId'],
      ['/sessions/64b0000000000000000000b', 'sessionId'],
      ['/users/%7B%22%24gt%22%3A%22%22%7D', 'userId'],
    ]) {
      await expectRejectedWithoutWrite(
        () => call(base, method, `${owner}${path}`, body === undefined ? {} : { body }),
        400,
        { error: 'invalidRequest', field },
      );
    }
  });

  it.each([
    ['quantity negative', { ...teeM, quantity: -1 }, 'quantity'],
    ['quantity over the cap', { ...teeM, quantity: LINE_CAP + 1 }, 'quantity'],
    ['quantity fractional', { ...teeM, quantity: 0.5 }, 'quantity'],
    ['quantity missing', teeM, 'quantity'],
    ['quantity an operator', { ...teeM, quantity: { $inc: 1 } }, 'quantity'],
    ['productId an operator', { ...teeM, productId: { $ne: null }, quantity: 1 }, 'productId'],
  ])('set quantity: %s', async (_name, body, field) => {
    await expectRejectedWithoutWrite(() => call(base, 'PUT', `${user}/cart/lines`, { body }), 400, {
      error: 'invalidRequest',
      field,
    });
  });

  it.each([
    ['an extra key (quantity)', { ...teeM, quantity: 1 }, 'quantity'],
    ['size an operator', { ...teeM, size: { $exists: true } }, 'size'],
  ])('remove one: %s', async (_name, body, field) => {
    await expectRejectedWithoutWrite(
      () => call(base, 'POST', `${user}/cart/lines/remove-one`, { body }),
      400,
      { error: 'invalidRequest', field },
    );
  });

  it.each([
    ['sessionId malformed', { sessionId: 'abc' }, 'sessionId'],
    ['sessionId an operator', { sessionId: { $gt: '' } }, 'sessionId'],
    ['no sessionId', {}, 'sessionId'],
    ['an extra key', { sessionId: SAMPLE.sessionId.toHexString(), userId: 'x' }, 'userId'],
  ])('merge: %s', async (_name, body, field) => {
    await expectRejectedWithoutWrite(
      () => call(base, 'POST', `${user}/cart/merge`, { body }),
      400,
      { error: 'invalidRequest', field },
    );
  });
});

describe('races: the seeds break, the example holds', () => {
  it(`${ADD_REQUESTS} concurrent adds of one line: naive pushes duplicate lines; real keeps one line whose quantity is the number of 200/201 answers, capped`, async () => {
    const result = await naiveVersusSafe({
      invariant: 'one line; quantity = adds answered 200/201 ≤ cap; one 201',
      calls: ADD_REQUESTS,
      setup: (run) => setUpAddStorm(t.db, run),
      naive: (_i, { state }) => addOne(state),
      safe: (_i, { state }) => addOne(state),
      check: async (state, report) => {
        try {
          return await checkAddStorm(
            state,
            report.values.map((value) => value.outcome),
          );
        } finally {
          await state.app.close();
        }
      },
    });
    // Every naive request read "no such line" before any wrote: each pushed its own line.
    expect({ ...result.naive.report.tally }).toEqual({ pushed: ADD_REQUESTS });
    expect(result.naive.violations).toContain(`${ADD_REQUESTS} lines for one product/size/color`);
    expect({ ...result.safe.report.tally }).toEqual({
      pushed: 1,
      incremented: LINE_CAP - 1,
      lineLimitReached: ADD_REQUESTS - LINE_CAP,
    });
  });

  it(`${MERGE_REQUESTS} concurrent merges of one guest cart (two tabs logging in): naive adds it ${MERGE_REQUESTS} times; real merges it once`, async () => {
    const result = await naiveVersusSafe({
      invariant:
        'merged once: summed and capped, no line twice, guest cart empty, one merge reported',
      calls: MERGE_REQUESTS,
      setup: (run) => setUpMergeStorm(t.db, run),
      naive: (_i, { state }) => mergeOne(state),
      safe: (_i, { state }) => mergeOne(state),
      check: async (state, report) => {
        try {
          return await checkMergeStorm(state, report.values);
        } finally {
          await state.app.close();
        }
      },
    });
    expect({ ...result.naive.report.tally }).toEqual({ merged: MERGE_REQUESTS });
    expect({ ...result.safe.report.tally }).toEqual({
      merged: 1,
      nothingMerged: MERGE_REQUESTS - 1,
    });
  });
});
