/**
 * Section 1: round trips per primitive × path, counted with the driver's command monitoring
 * (`commandStarted`, housekeeping excluded), beside the naive pattern (read, check in
 * JavaScript, write) and the hand-written safe pattern (the guarded command a careful user
 * writes by hand). Each path is run alone on freshly prepared documents and its outcome is
 * checked, so a count always belongs to the path it is labelled with.
 */

import {
  acquireLease,
  addToSetWithCapacity,
  applyProgress,
  claimOnce,
  confirmHold,
  confirmPlace,
  fencedUpdate,
  guardedDecrement,
  guardedDecrementAll,
  holdPlace,
  holdQuantity,
  type IdempotencyRecord,
  incrementOrPushArrayItem,
  releaseExpiredHolds,
  releaseExpiredPlaces,
  releaseHold,
  releaseLease,
  releasePlace,
  removeFromSetWithCapacity,
  renewLease,
  updateWithVersion,
  withIdempotencyKey,
  withRetryingTransaction,
} from 'mongo-atomics';
import type { Collection, Document } from 'mongodb';
import type { AnyDoc, BenchContext } from '../context.js';

export interface RoundTripRow {
  /** Stable id, for the baseline comparison and the test. */
  readonly id: string;
  readonly primitive: string;
  readonly path: string;
  /** `library`, `naive` or `hand-written safe`. */
  readonly pattern: string;
  readonly commands: number;
  readonly names: readonly string[];
}

/** The k of guardedDecrementAll's round-trip rows (section 1). */
export const DECREMENT_ALL_KS = [1, 5, 20, 100] as const;

type Outcome = { readonly outcome: string } | undefined;

export async function roundTrips(ctx: BenchContext): Promise<RoundTripRow[]> {
  const { db, client, commands } = ctx;
  const rows: RoundTripRow[] = [];
  const stock = db.collection<AnyDoc>('rt_stock');
  const carts = db.collection<AnyDoc>('rt_carts');
  const orders = db.collection<AnyDoc>('rt_orders');
  const events = db.collection<AnyDoc>('rt_events');
  const students = db.collection<AnyDoc>('rt_students');
  const keys = db.collection<AnyDoc>('rt_keys');
  const records = db.collection<IdempotencyRecord>('rt_keys');
  const accounts = db.collection<AnyDoc>('rt_accounts');

  /** Resets `collection` to `docs`, then counts the commands of `call` and checks its outcome. */
  const count = async (
    spec: { primitive: string; path: string; pattern?: string; expect?: string },
    reset: () => Promise<unknown>,
    call: () => Promise<Outcome | unknown>,
  ): Promise<void> => {
    await reset();
    commands.reset();
    const result = (await call()) as Outcome;
    const names = commands.names();
    if (spec.expect !== undefined && result?.outcome !== spec.expect) {
      throw new Error(
        `round trips, ${spec.primitive} ${spec.path}: expected outcome ${spec.expect}, got ${result?.outcome}`,
      );
    }
    const pattern = spec.pattern ?? 'library';
    rows.push({
      id: `${spec.primitive}/${spec.path}/${pattern}`,
      primitive: spec.primitive,
      path: spec.path,
      pattern,
      commands: names.length,
      names,
    });
  };
  const seed = (collection: Collection<AnyDoc>, docs: AnyDoc[]) => async () => {
    await collection.deleteMany({});
    if (docs.length > 0) await collection.insertMany(docs.map((d) => ({ ...d })));
  };

  // guardedDecrement
  const stock5 = seed(stock, [{ _id: 'p1', stock: 5 }]);
  const gd = (amount: number, id = 'p1', opId?: string) =>
    guardedDecrement(stock, {
      filter: { _id: id },
      field: 'stock',
      amount,
      ...(opId === undefined ? {} : { opId }),
    });
  await count(
    { primitive: 'guardedDecrement', path: 'success', expect: 'decremented' },
    stock5,
    () => gd(1),
  );
  await count(
    { primitive: 'guardedDecrement', path: 'insufficient', expect: 'insufficient' },
    stock5,
    () => gd(9),
  );
  await count({ primitive: 'guardedDecrement', path: 'notFound', expect: 'notFound' }, stock5, () =>
    gd(1, 'nope'),
  );
  await count({ primitive: 'guardedDecrement', path: 'opId', expect: 'decremented' }, stock5, () =>
    gd(1, 'p1', 'op-1'),
  );
  await count(
    { primitive: 'guardedDecrement', path: 'opId repeat', expect: 'alreadyApplied' },
    async () => {
      await stock5();
      await gd(1, 'p1', 'op-1');
    },
    () => gd(1, 'p1', 'op-1'),
  );
  await count(
    { primitive: 'guardedDecrement', path: 'success', pattern: 'naive' },
    stock5,
    async () => {
      const doc = await stock.findOne({ _id: 'p1' });
      if ((doc?.stock as number) >= 1)
        await stock.updateOne({ _id: 'p1' }, { $inc: { stock: -1 } });
    },
  );
  await count(
    { primitive: 'guardedDecrement', path: 'success', pattern: 'hand-written safe' },
    stock5,
    () =>
      stock.findOneAndUpdate(
        { _id: 'p1', stock: { $gte: 1 } },
        { $inc: { stock: -1 } },
        { returnDocument: 'after' },
      ),
  );
  await count(
    { primitive: 'guardedDecrement', path: 'insufficient', pattern: 'hand-written safe' },
    stock5,
    async () => {
      // The guarded update matches nothing; telling "insufficient" from "not found" needs a read.
      const done = await stock.findOneAndUpdate(
        { _id: 'p1', stock: { $gte: 9 } },
        { $inc: { stock: -9 } },
      );
      if (done === null) await stock.findOne({ _id: 'p1' });
    },
  );

  // guardedDecrementAll at every k: the library (own transaction) against k findOneAndUpdate
  // in a driver transaction (the naive all-or-nothing way: k statements + the commit).
  for (const k of DECREMENT_ALL_KS) {
    const docs = Array.from({ length: k }, (_, i) => ({ _id: `s${i}`, stock: 10 }));
    const items = docs.map((d) => ({ filter: { _id: d._id }, amount: 1 }));
    await count(
      { primitive: 'guardedDecrementAll', path: `success k=${k}`, expect: 'decremented' },
      seed(stock, docs),
      () => guardedDecrementAll(stock, { client, field: 'stock', items }),
    );
    await count(
      { primitive: 'guardedDecrementAll', path: `success k=${k}`, pattern: 'naive' },
      seed(stock, docs),
      async () => {
        const session = client.startSession();
        try {
          await session.withTransaction(async () => {
            for (const item of items) {
              const done = await stock.findOneAndUpdate(
                { ...item.filter, stock: { $gte: 1 } },
                { $inc: { stock: -1 } },
                { session },
              );
              if (done === null) throw new Error('short');
            }
          });
        } finally {
          await session.endSession();
        }
      },
    );
  }
  const two = [
    { _id: 's0', stock: 10 },
    { _id: 's1', stock: 0 },
  ];
  await count(
    { primitive: 'guardedDecrementAll', path: 'insufficient k=2', expect: 'insufficient' },
    seed(stock, two),
    () =>
      guardedDecrementAll(stock, {
        client,
        field: 'stock',
        items: two.map((d) => ({ filter: { _id: d._id }, amount: 1 })),
      }),
  );
  await count(
    { primitive: 'guardedDecrementAll', path: 'notFound k=2', expect: 'notFound' },
    seed(stock, two),
    () =>
      guardedDecrementAll(stock, {
        client,
        field: 'stock',
        items: [
          { filter: { _id: 's0' }, amount: 1 },
          { filter: { _id: 'nope' }, amount: 1 },
        ],
      }),
  );

  // incrementOrPushArrayItem
  const cart = seed(carts, [{ _id: 'c1', courses: [{ courseId: 'a', quantity: 1 }] }]);
  const iop = (courseId: string, extra: Document = {}) =>
    incrementOrPushArrayItem(carts, {
      filter: { _id: 'c1' },
      array: 'courses',
      match: { courseId },
      ...extra,
    });
  await count(
    { primitive: 'incrementOrPushArrayItem', path: 'incremented', expect: 'incremented' },
    cart,
    () => iop('a'),
  );
  await count(
    { primitive: 'incrementOrPushArrayItem', path: 'pushed', expect: 'pushed' },
    cart,
    () => iop('b'),
  );
  await count(
    { primitive: 'incrementOrPushArrayItem', path: 'limitReached', expect: 'limitReached' },
    cart,
    () => iop('a', { max: { quantity: 1 } }),
  );
  await count(
    { primitive: 'incrementOrPushArrayItem', path: 'notFound', expect: 'notFound' },
    cart,
    () =>
      incrementOrPushArrayItem(carts, {
        filter: { _id: 'nope' },
        array: 'courses',
        match: { courseId: 'a' },
      }),
  );
  await count(
    { primitive: 'incrementOrPushArrayItem', path: 'upsert (created)', expect: 'pushed' },
    cart,
    () =>
      incrementOrPushArrayItem(carts, {
        filter: { _id: 'c2' },
        array: 'courses',
        match: { courseId: 'a' },
        upsert: true,
      }),
  );
  await count(
    { primitive: 'incrementOrPushArrayItem', path: 'opId', expect: 'incremented' },
    cart,
    () => iop('a', { opId: 'op-1' }),
  );
  await count(
    { primitive: 'incrementOrPushArrayItem', path: 'opId repeat', expect: 'alreadyApplied' },
    async () => {
      await cart();
      await iop('a', { opId: 'op-1' });
    },
    () => iop('a', { opId: 'op-1' }),
  );
  const naivePush = async (courseId: string) => {
    const r = await carts.updateOne(
      { _id: 'c1', 'courses.courseId': courseId },
      { $inc: { 'courses.$.quantity': 1 } },
    );
    if (r.matchedCount === 0)
      await carts.updateOne({ _id: 'c1' }, {
        $push: { courses: { courseId, quantity: 1 } },
      } as Document);
  };
  await count(
    { primitive: 'incrementOrPushArrayItem', path: 'incremented', pattern: 'naive' },
    cart,
    () => naivePush('a'),
  );
  await count(
    { primitive: 'incrementOrPushArrayItem', path: 'pushed', pattern: 'naive' },
    cart,
    () => naivePush('b'),
  );

  // claimOnce
  const order = seed(orders, [{ _id: 'o1', status: 'pending' }]);
  const claim = (id = 'o1', extra: Document = {}) =>
    claimOnce(orders, {
      filter: { _id: id },
      field: 'status',
      from: 'pending',
      to: 'paid',
      ...extra,
    });
  await count({ primitive: 'claimOnce', path: 'claimed', expect: 'claimed' }, order, () => claim());
  await count(
    { primitive: 'claimOnce', path: 'alreadyClaimed', expect: 'alreadyClaimed' },
    seed(orders, [{ _id: 'o1', status: 'paid' }]),
    () => claim(),
  );
  await count(
    { primitive: 'claimOnce', path: 'preconditionFailed', expect: 'preconditionFailed' },
    seed(orders, [{ _id: 'o1', status: 'shipped' }]),
    () => claim(),
  );
  await count({ primitive: 'claimOnce', path: 'notFound', expect: 'notFound' }, order, () =>
    claim('nope'),
  );
  await count({ primitive: 'claimOnce', path: 'opId', expect: 'claimed' }, order, () =>
    claim('o1', { opId: 'op-1' }),
  );
  await count(
    { primitive: 'claimOnce', path: 'opId repeat', expect: 'alreadyApplied' },
    async () => {
      await order();
      await claim('o1', { opId: 'op-1' });
    },
    () => claim('o1', { opId: 'op-1' }),
  );
  await count({ primitive: 'claimOnce', path: 'claimed', pattern: 'naive' }, order, async () => {
    const doc = await orders.findOne({ _id: 'o1' });
    if (doc?.status === 'pending')
      await orders.updateOne({ _id: 'o1' }, { $set: { status: 'paid' } });
  });
  await count(
    { primitive: 'claimOnce', path: 'claimed', pattern: 'hand-written safe' },
    order,
    () => orders.findOneAndUpdate({ _id: 'o1', status: 'pending' }, { $set: { status: 'paid' } }),
  );

  // addToSetWithCapacity / removeFromSetWithCapacity
  const event = seed(events, [{ _id: 'e1', capacity: 2, sold: 1, members: ['u0'] }]);
  const add = (member: string, id = 'e1', extra: Document = {}) =>
    addToSetWithCapacity(events, {
      filter: { _id: id },
      array: 'members',
      member,
      counter: 'sold',
      capacity: 'capacity',
      ...extra,
    });
  const remove = (member: string, id = 'e1') =>
    removeFromSetWithCapacity(events, {
      filter: { _id: id },
      array: 'members',
      member,
      counter: 'sold',
    });
  await count({ primitive: 'addToSetWithCapacity', path: 'added', expect: 'added' }, event, () =>
    add('u1'),
  );
  await count(
    { primitive: 'addToSetWithCapacity', path: 'alreadyMember', expect: 'alreadyMember' },
    event,
    () => add('u0'),
  );
  await count(
    { primitive: 'addToSetWithCapacity', path: 'full', expect: 'full' },
    seed(events, [{ _id: 'e1', capacity: 1, sold: 1, members: ['u0'] }]),
    () => add('u1'),
  );
  await count(
    { primitive: 'addToSetWithCapacity', path: 'notFound', expect: 'notFound' },
    event,
    () => add('u1', 'nope'),
  );
  await count({ primitive: 'addToSetWithCapacity', path: 'opId', expect: 'added' }, event, () =>
    add('u1', 'e1', { opId: 'op-1' }),
  );
  await count(
    { primitive: 'addToSetWithCapacity', path: 'opId repeat', expect: 'alreadyApplied' },
    async () => {
      await event();
      await add('u1', 'e1', { opId: 'op-1' });
    },
    () => add('u1', 'e1', { opId: 'op-1' }),
  );
  await count(
    { primitive: 'addToSetWithCapacity', path: 'added', pattern: 'naive' },
    event,
    async () => {
      const doc = await events.findOne({ _id: 'e1' });
      if (doc !== null && doc.sold < doc.capacity && !doc.members.includes('u1')) {
        await events.updateOne({ _id: 'e1' }, {
          $push: { members: 'u1' },
          $inc: { sold: 1 },
        } as Document);
      }
    },
  );
  await count(
    { primitive: 'addToSetWithCapacity', path: 'added', pattern: 'hand-written safe' },
    event,
    () =>
      events.findOneAndUpdate(
        { _id: 'e1', members: { $ne: 'u1' }, $expr: { $lt: ['$sold', '$capacity'] } },
        { $push: { members: 'u1' }, $inc: { sold: 1 } } as Document,
      ),
  );
  await count(
    { primitive: 'removeFromSetWithCapacity', path: 'removed', expect: 'removed' },
    event,
    () => remove('u0'),
  );
  await count(
    { primitive: 'removeFromSetWithCapacity', path: 'notMember', expect: 'notMember' },
    event,
    () => remove('u9'),
  );
  await count(
    { primitive: 'removeFromSetWithCapacity', path: 'notFound', expect: 'notFound' },
    event,
    () => remove('u0', 'nope'),
  );

  // applyProgress
  const student = seed(students, [{ _id: 's1', xp: 90, level: 0, badges: [], submissions: 0 }]);
  const progress = (id = 's1', extra: Document = {}) =>
    applyProgress(students, {
      filter: { _id: id },
      inc: { xp: 20, submissions: 1 },
      level: { field: 'level', counter: 'xp', thresholds: [100, 500, 1400] },
      badges: { field: 'badges', rules: [{ badge: 'first', counter: 'submissions', atLeast: 1 }] },
      ...extra,
    });
  await count({ primitive: 'applyProgress', path: 'applied', expect: 'applied' }, student, () =>
    progress(),
  );
  await count({ primitive: 'applyProgress', path: 'notFound', expect: 'notFound' }, student, () =>
    progress('nope'),
  );
  await count(
    { primitive: 'applyProgress', path: 'notFound (opId)', expect: 'notFound' },
    student,
    () => progress('nope', { opId: 'op-1' }),
  );
  await count({ primitive: 'applyProgress', path: 'opId', expect: 'applied' }, student, () =>
    progress('s1', { opId: 'op-1' }),
  );
  await count(
    { primitive: 'applyProgress', path: 'opId repeat', expect: 'alreadyApplied' },
    async () => {
      await student();
      await progress('s1', { opId: 'op-1' });
    },
    () => progress('s1', { opId: 'op-1' }),
  );
  await count(
    { primitive: 'applyProgress', path: 'applied', pattern: 'naive' },
    student,
    async () => {
      const doc = await students.findOne({ _id: 's1' });
      if (doc !== null) {
        const xp = (doc.xp as number) + 20;
        await students.updateOne(
          { _id: 's1' },
          { $set: { xp, level: xp >= 100 ? 1 : 0 }, $inc: { submissions: 1 } },
        );
      }
    },
  );

  // updateWithVersion
  const versioned = seed(students, [{ _id: 's1', xp: 0, version: 3 }]);
  const uwv = (id = 's1', extra: Document = {}, skip = false) =>
    updateWithVersion(students, {
      filter: { _id: id },
      update: (s) => (skip ? null : { $set: { xp: (s.xp as number) + 1 } }),
      ...extra,
    });
  await count(
    { primitive: 'updateWithVersion', path: 'updated', expect: 'updated' },
    versioned,
    () => uwv(),
  );
  await count(
    { primitive: 'updateWithVersion', path: 'skipped', expect: 'skipped' },
    versioned,
    () => uwv('s1', {}, true),
  );
  await count(
    { primitive: 'updateWithVersion', path: 'notFound', expect: 'notFound' },
    versioned,
    () => uwv('nope'),
  );
  await count({ primitive: 'updateWithVersion', path: 'opId', expect: 'updated' }, versioned, () =>
    uwv('s1', { opId: 'op-1' }),
  );
  await count(
    { primitive: 'updateWithVersion', path: 'opId repeat', expect: 'alreadyApplied' },
    async () => {
      await versioned();
      await uwv('s1', { opId: 'op-1' });
    },
    () => uwv('s1', { opId: 'op-1' }),
  );
  await count(
    { primitive: 'updateWithVersion', path: 'updated', pattern: 'naive' },
    versioned,
    async () => {
      const doc = await students.findOne({ _id: 's1' });
      if (doc !== null)
        await students.updateOne({ _id: 's1' }, { $set: { xp: (doc.xp as number) + 1 } });
    },
  );
  await count(
    { primitive: 'updateWithVersion', path: 'updated', pattern: 'hand-written safe' },
    versioned,
    async () => {
      const doc = await students.findOne({ _id: 's1' });
      if (doc !== null) {
        await students.updateOne(
          { _id: 's1', version: doc.version },
          { $set: { xp: (doc.xp as number) + 1 }, $inc: { version: 1 } },
        );
      }
    },
  );

  // withIdempotencyKey (fn sends nothing, so only the library's own commands are counted)
  const noKeys = seed(keys, []);
  const idem = (key: string, extra: Document = {}) =>
    withIdempotencyKey(records, { key, fn: async () => ({ status: 201 }), ...extra });
  await count(
    { primitive: 'withIdempotencyKey', path: 'executed', expect: 'executed' },
    noKeys,
    () => idem('k1'),
  );
  await count(
    { primitive: 'withIdempotencyKey', path: 'duplicate (replayed)', expect: 'replayed' },
    async () => {
      await noKeys();
      await idem('k1');
    },
    () => idem('k1'),
  );
  await count(
    { primitive: 'withIdempotencyKey', path: 'executed (transaction mode)', expect: 'executed' },
    noKeys,
    () => idem('k1', { client }),
  );
  await count(
    { primitive: 'withIdempotencyKey', path: 'fn threw', pattern: 'library' },
    noKeys,
    () =>
      withIdempotencyKey(records, {
        key: 'k1',
        fn: async () => {
          throw new Error('business failure');
        },
      }).catch(() => undefined),
  );
  await count(
    { primitive: 'withIdempotencyKey', path: 'duplicate (replayed)', pattern: 'naive' },
    async () => {
      await noKeys();
      await keys.insertOne({ _id: 'k1', value: { status: 201 } });
    },
    () => keys.findOne({ _id: 'k1' }),
  );

  // Quantity holds: every path one findAndModify; the sweep one update. A lapsed hold is one
  // taken with ttlMs 1 and waited out (the server's clock decides).
  const held = db.collection<AnyDoc>('rt_held');
  const lapse = () => new Promise((done) => setTimeout(done, 5));
  const take = (holdId: string, amount = 1, ttlMs = 60_000) =>
    holdQuantity(held, { filter: { _id: 'p1' }, field: 'stock', amount, holdId, ttlMs });
  const settle = { filter: { _id: 'p1' }, field: 'stock' } as const;
  const held5 = seed(held, [{ _id: 'p1', stock: 5 }]);
  const heldH1 = async () => {
    await held5();
    await take('h1');
  };
  await count({ primitive: 'holdQuantity', path: 'held', expect: 'held' }, held5, () => take('h1'));
  await count(
    { primitive: 'holdQuantity', path: 'alreadyHeld', expect: 'alreadyHeld' },
    heldH1,
    () => take('h1'),
  );
  await count(
    { primitive: 'holdQuantity', path: 'insufficient', expect: 'insufficient' },
    held5,
    () => take('h1', 6),
  );
  await count(
    { primitive: 'holdQuantity', path: 'held, reclaiming a lapsed hold', expect: 'held' },
    async () => {
      await held5();
      await take('h0', 5, 1);
      await lapse();
    },
    () => take('h1', 5),
  );
  await count({ primitive: 'confirmHold', path: 'confirmed', expect: 'confirmed' }, heldH1, () =>
    confirmHold(held, { ...settle, holdId: 'h1' }),
  );
  await count({ primitive: 'releaseHold', path: 'released', expect: 'released' }, heldH1, () =>
    releaseHold(held, { ...settle, holdId: 'h1' }),
  );
  await count(
    { primitive: 'confirmHold', path: 'expired', expect: 'expired' },
    async () => {
      await held5();
      await take('h1', 1, 1);
      await lapse();
    },
    () => confirmHold(held, { ...settle, holdId: 'h1' }),
  );
  await count(
    { primitive: 'releaseExpiredHolds', path: 'sweep' },
    async () => {
      await held5();
      await take('h1', 1, 1);
      await lapse();
    },
    () => releaseExpiredHolds(held, { field: 'stock' }),
  );
  await count({ primitive: 'holdQuantity', path: 'held', pattern: 'naive' }, held5, async () => {
    // Decrement now and record the hold beside it; a cron job restores lapsed holds later.
    const doc = await held.findOne({ _id: 'p1' });
    if (doc !== null && doc.stock >= 1) {
      await held.updateOne({ _id: 'p1' }, {
        $inc: { stock: -1 },
        $push: { _holds: { id: 'h1', amount: 1, expiresAt: new Date(Date.now() + 60_000) } },
      } as Document);
    }
  });

  // Seat holds on a capacity set.
  const seats = db.collection<AnyDoc>('rt_seats');
  const seatsOpen = seed(seats, [{ _id: 'e1', capacity: 2, sold: 0, members: [] }]);
  const place = { filter: { _id: 'e1' }, array: 'members', counter: 'sold' } as const;
  const holdSeat = (member: string, holdId: string, ttlMs = 60_000) =>
    holdPlace(seats, { ...place, member, capacity: 'capacity', holdId, ttlMs });
  const seatHeld = async () => {
    await seatsOpen();
    await holdSeat('u1', 'h1');
  };
  await count({ primitive: 'holdPlace', path: 'held', expect: 'held' }, seatsOpen, () =>
    holdSeat('u1', 'h1'),
  );
  await count(
    { primitive: 'holdPlace', path: 'full', expect: 'full' },
    async () => {
      await seatsOpen();
      await holdSeat('u1', 'h1');
      await holdSeat('u2', 'h2');
    },
    () => holdSeat('u3', 'h3'),
  );
  await count(
    { primitive: 'holdPlace', path: 'held, reclaiming a lapsed hold', expect: 'held' },
    async () => {
      await seatsOpen();
      await holdSeat('u1', 'h1', 1);
      await holdSeat('u2', 'h2', 1);
      await lapse();
    },
    () => holdSeat('u3', 'h3'),
  );
  await count({ primitive: 'confirmPlace', path: 'confirmed', expect: 'confirmed' }, seatHeld, () =>
    confirmPlace(seats, { ...place, holdId: 'h1' }),
  );
  await count({ primitive: 'releasePlace', path: 'released', expect: 'released' }, seatHeld, () =>
    releasePlace(seats, { ...place, holdId: 'h1' }),
  );
  await count(
    { primitive: 'releaseExpiredPlaces', path: 'sweep' },
    async () => {
      await seatsOpen();
      await holdSeat('u1', 'h1', 1);
      await lapse();
    },
    () => releaseExpiredPlaces(seats, { counter: 'sold' }),
  );

  // Leases and fencing. A lapsed lease is one taken with ttlMs 1 and waited out.
  const leases = db.collection<AnyDoc>('rt_leases');
  const fenced = db.collection<AnyDoc>('rt_fenced');
  const noLeases = seed(leases, []);
  const acquire = (holder: string, ttlMs = 60_000) =>
    acquireLease(leases, 'job', { holder, ttlMs });
  const heldByW1 = async () => {
    await noLeases();
    await acquire('w1');
  };
  await count({ primitive: 'acquireLease', path: 'acquired', expect: 'acquired' }, noLeases, () =>
    acquire('w1'),
  );
  await count({ primitive: 'acquireLease', path: 'held', expect: 'held' }, heldByW1, () =>
    acquire('w2'),
  );
  await count(
    { primitive: 'acquireLease', path: 'takeover after expiry', expect: 'acquired' },
    async () => {
      await noLeases();
      await acquire('w1', 1);
      await lapse();
    },
    () => acquire('w2'),
  );
  await count({ primitive: 'renewLease', path: 'renewed', expect: 'renewed' }, heldByW1, () =>
    renewLease(leases, 'job', { token: 1, ttlMs: 60_000 }),
  );
  await count(
    { primitive: 'renewLease', path: 'lost (expired)', expect: 'lost' },
    async () => {
      await noLeases();
      await acquire('w1', 1);
      await lapse();
    },
    () => renewLease(leases, 'job', { token: 1, ttlMs: 60_000 }),
  );
  await count({ primitive: 'releaseLease', path: 'released', expect: 'released' }, heldByW1, () =>
    releaseLease(leases, 'job', { token: 1 }),
  );
  await count(
    { primitive: 'acquireLease', path: 'acquired', pattern: 'naive' },
    noLeases,
    async () => {
      // Read the lock, decide "free" with the client's clock, then write it.
      const lock = await leases.findOne({ _id: 'job' });
      if (lock === null || (lock.expiresAt as Date) <= new Date()) {
        await leases.updateOne(
          { _id: 'job' },
          { $set: { holder: 'w1', expiresAt: new Date(Date.now() + 60_000) } },
          { upsert: true },
        );
      }
    },
  );
  const report = seed(fenced, [{ _id: 'r1', rows: 0, _fence: 2 }]);
  await count({ primitive: 'fencedUpdate', path: 'applied', expect: 'applied' }, report, () =>
    fencedUpdate(fenced, { filter: { _id: 'r1' }, update: { $set: { rows: 1 } }, token: 2 }),
  );
  await count({ primitive: 'fencedUpdate', path: 'fenced', expect: 'fenced' }, report, () =>
    fencedUpdate(fenced, { filter: { _id: 'r1' }, update: { $set: { rows: 1 } }, token: 1 }),
  );

  // withRetryingTransaction: a transfer (2 updates + commit) against the driver's withTransaction
  const twoAccounts = seed(accounts, [
    { _id: 'a', balance: 100 },
    { _id: 'b', balance: 100 },
  ]);
  const transfer = async (session: import('mongodb').ClientSession) => {
    await accounts.updateOne({ _id: 'a' }, { $inc: { balance: -1 } }, { session });
    await accounts.updateOne({ _id: 'b' }, { $inc: { balance: 1 } }, { session });
  };
  await count(
    { primitive: 'withRetryingTransaction', path: 'transfer, no conflict' },
    twoAccounts,
    () => withRetryingTransaction(client, (session) => transfer(session)),
  );
  await count(
    {
      primitive: 'withRetryingTransaction',
      path: 'transfer, no conflict',
      pattern: 'driver withTransaction',
    },
    twoAccounts,
    async () => {
      const session = client.startSession();
      try {
        await session.withTransaction(() => transfer(session));
      } finally {
        await session.endSession();
      }
    },
  );
  return rows;
}
