/**
 * Section 3: each primitive against the equivalent raw driver call (what a careful user would
 * write by hand for the same success path), through the real driver and server, sequentially
 * and with 16 concurrent clients. Reported as the ratio of operations per second,
 * primitive / raw, per interleaved round.
 */

import {
  addToSetWithCapacity,
  applyProgress,
  claimOnce,
  guardedDecrement,
  type IdempotencyRecord,
  incrementOrPushArrayItem,
  removeFromSetWithCapacity,
  updateWithVersion,
  withIdempotencyKey,
  withRetryingTransaction,
} from 'mongo-atomics';
import type { ClientSession, Document } from 'mongodb';
import type { AnyDoc, BenchContext } from '../context.js';
import { concurrently, interleave, over, rate, ratio } from '../interleave.js';
import type { Spread } from '../stats.js';

export interface DriverRow {
  readonly id: string;
  readonly primitive: string;
  readonly raw: string;
  readonly clients: number;
  /** Per-round ops/s of the primitive / ops/s of the raw call. */
  readonly ratio: Spread;
  readonly libraryOpsPerSec: Spread;
  readonly rawOpsPerSec: Spread;
}

interface Pair {
  readonly primitive: string;
  readonly raw: string;
  readonly seed: () => Promise<void>;
  /** One operation, `i` unique within the run, `w` the worker. */
  readonly library: (i: number, w: number) => Promise<unknown>;
  readonly rawCall: (i: number, w: number) => Promise<unknown>;
}

export async function driverRatios(ctx: BenchContext): Promise<DriverRow[]> {
  const { db, client } = ctx;
  const c = db.collection<AnyDoc>('drv');
  const keys = db.collection<AnyDoc>('drv_keys');
  const records = db.collection<IdempotencyRecord>('drv_keys');
  const DOCS = 32;
  let run = 0; // distinguishes runs, so unique values never repeat across rounds
  const seedMany = (make: (i: number) => AnyDoc) => async () => {
    await c.deleteMany({});
    await c.insertMany(Array.from({ length: DOCS }, (_, i) => make(i)));
  };
  const doc = (w: number) => `d${w % DOCS}`;

  const pairs: Pair[] = [
    {
      primitive: 'guardedDecrement',
      raw: 'findOneAndUpdate with the guard',
      seed: seedMany((i) => ({ _id: `d${i}`, stock: 1e9 })),
      library: (_, w) =>
        guardedDecrement(c, { filter: { _id: doc(w) }, field: 'stock', amount: 1 }),
      rawCall: (_, w) =>
        c.findOneAndUpdate(
          { _id: doc(w), stock: { $gte: 1 } },
          { $inc: { stock: -1 } },
          { returnDocument: 'after' },
        ),
    },
    {
      primitive: 'incrementOrPushArrayItem',
      raw: 'updateOne positional $inc (existing line)',
      seed: seedMany((i) => ({
        _id: `d${i}`,
        courses: Array.from({ length: 10 }, (_, j) => ({ courseId: `c${j}`, quantity: 1 })),
      })),
      library: (i, w) =>
        incrementOrPushArrayItem(c, {
          filter: { _id: doc(w) },
          array: 'courses',
          match: { courseId: `c${i % 10}` },
        }),
      rawCall: (i, w) =>
        c.updateOne(
          { _id: doc(w), 'courses.courseId': `c${i % 10}` },
          { $inc: { 'courses.$.quantity': 1 } },
        ),
    },
    {
      primitive: 'claimOnce',
      raw: 'findOneAndUpdate with the state guard',
      seed: seedMany((i) => ({ _id: `d${i}`, status: 'new' })),
      library: (i, w) =>
        claimOnce(c, { filter: { _id: doc(w) }, field: 'status', to: `s${run}-${i}` }),
      rawCall: (i, w) =>
        c.findOneAndUpdate(
          { _id: doc(w), status: { $ne: `s${run}-${i}` } },
          { $set: { status: `s${run}-${i}` } },
          { returnDocument: 'after' },
        ),
    },
    {
      primitive: 'addToSetWithCapacity + removeFromSetWithCapacity',
      raw: 'two guarded findOneAndUpdate',
      seed: seedMany((i) => ({ _id: `d${i}`, capacity: 1e9, sold: 0, members: [] })),
      library: async (i, w) => {
        const member = `m${i}`;
        await addToSetWithCapacity(c, {
          filter: { _id: doc(w) },
          array: 'members',
          member,
          counter: 'sold',
          capacity: 'capacity',
        });
        await removeFromSetWithCapacity(c, {
          filter: { _id: doc(w) },
          array: 'members',
          member,
          counter: 'sold',
        });
      },
      rawCall: async (i, w) => {
        const member = `m${i}`;
        await c.findOneAndUpdate(
          { _id: doc(w), members: { $ne: member }, $expr: { $lt: ['$sold', '$capacity'] } },
          { $push: { members: member }, $inc: { sold: 1 } } as Document,
          { returnDocument: 'after' },
        );
        await c.findOneAndUpdate(
          { _id: doc(w), members: member },
          { $pull: { members: member }, $inc: { sold: -1 } } as Document,
          { returnDocument: 'after' },
        );
      },
    },
    {
      primitive: 'applyProgress',
      raw: 'findOneAndUpdate $inc',
      seed: seedMany((i) => ({ _id: `d${i}`, xp: 0, level: 0, badges: [] })),
      library: (_, w) =>
        applyProgress(c, {
          filter: { _id: doc(w) },
          inc: { xp: 1 },
          level: { field: 'level', counter: 'xp', thresholds: [100, 500, 1400, 3000] },
        }),
      rawCall: (_, w) =>
        c.findOneAndUpdate({ _id: doc(w) }, { $inc: { xp: 1 } }, { returnDocument: 'after' }),
    },
    {
      primitive: 'updateWithVersion',
      raw: 'findOne + versioned updateOne',
      seed: seedMany((i) => ({ _id: `d${i}`, xp: 0, version: 0 })),
      library: (_, w) =>
        updateWithVersion(c, {
          filter: { _id: doc(w) },
          update: (s) => ({ $set: { xp: (s.xp as number) + 1 } }),
        }),
      rawCall: async (_, w) => {
        const current = await c.findOne({ _id: doc(w) });
        if (current === null) return;
        await c.updateOne(
          { _id: doc(w), version: current.version },
          { $set: { xp: (current.xp as number) + 1 }, $inc: { version: 1 } },
        );
      },
    },
    {
      primitive: 'withIdempotencyKey (new key)',
      raw: 'insertOne + updateOne',
      seed: async () => {
        await keys.deleteMany({});
      },
      library: (i) =>
        withIdempotencyKey(records, { key: `r${run}-L${i}`, fn: async () => ({ status: 201 }) }),
      rawCall: async (i) => {
        const key = `r${run}-R${i}`;
        await keys.insertOne({ _id: key, state: 'inProgress' });
        await keys.updateOne(
          { _id: key },
          { $set: { state: 'completed', value: { status: 201 } } },
        );
      },
    },
    {
      primitive: 'withRetryingTransaction',
      raw: 'session.withTransaction',
      seed: seedMany((i) => ({ _id: `d${i}`, balance: 1e9 })),
      library: (_, w) => withRetryingTransaction(client, async (session) => transfer(session, w)),
      rawCall: async (_, w) => {
        const session = client.startSession();
        try {
          await session.withTransaction(() => transfer(session, w));
        } finally {
          await session.endSession();
        }
      },
    },
  ];
  // Each worker moves money between its own two accounts: no conflicts, the runner's cost alone.
  const transfer = async (session: ClientSession, w: number) => {
    await c.updateOne({ _id: `d${(2 * w) % DOCS}` }, { $inc: { balance: -1 } }, { session });
    await c.updateOne({ _id: `d${(2 * w + 1) % DOCS}` }, { $inc: { balance: 1 } }, { session });
  };

  const rows: DriverRow[] = [];
  for (const pair of pairs) {
    for (const clients of [1, 16]) {
      ctx.progress(`driver: ${pair.primitive} × ${clients}`);
      await pair.seed();
      const ops = ctx.size(10, 100) * (clients === 1 ? 1 : 2);
      const variant = (name: string, op: Pair['library']) => ({
        name,
        prepare: async () => {
          run += 1;
        },
        run: async () => {
          await concurrently(clients, ops, op);
          return { ops };
        },
      });
      const [lib, raw] = await interleave(
        [variant('library', pair.library), variant('raw', pair.rawCall)],
        {
          rounds: ctx.size(2, 7),
          warmupRounds: 1,
        },
      );
      rows.push({
        id: `${pair.primitive}/${clients}`,
        primitive: pair.primitive,
        raw: pair.raw,
        clients,
        ratio: ratio(raw ?? [], lib ?? [], rate),
        libraryOpsPerSec: over(lib ?? [], rate),
        rawOpsPerSec: over(raw ?? [], rate),
      });
    }
  }
  return rows;
}
