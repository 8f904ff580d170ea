/**
 * Section 2: the library's own CPU cost per call, against a stub collection (see
 * stub-collection.ts): µs per call of each primitive beside the same collection calls made
 * directly on the stub, and their ratio. Server-independent, so the most stable numbers of the
 * suite. Measured with tinybench; each round is one Bench with both tasks (their order
 * alternating from round to round), and the per-round ratio of medians is what is reported.
 */

import {
  addToSetWithCapacity,
  applyProgress,
  claimOnce,
  guardedDecrement,
  guardedDecrementAll,
  type IdempotencyRecord,
  incrementOrPushArrayItem,
  removeFromSetWithCapacity,
  updateWithVersion,
  withIdempotencyKey,
  withRetryingTransaction,
} from 'mongo-atomics';
import type { Collection, MongoClient } from 'mongodb';
import { Bench } from 'tinybench';
import type { AnyDoc, BenchContext } from '../context.js';
import { type Spread, spread } from '../stats.js';
import { record, StubClient, StubCollection } from '../stub-collection.js';

export interface CpuRow {
  readonly id: string;
  readonly primitive: string;
  readonly path: string;
  /** µs per call of the primitive on the stub. */
  readonly libraryUs: Spread;
  /** µs per call of the same collection calls made directly on the stub. */
  readonly directUs: Spread;
  /** Per-round library/direct. */
  readonly ratio: Spread;
  /** library − direct: the primitive's own work, µs. */
  readonly ownUs: Spread;
}

interface CpuCase {
  readonly primitive: string;
  readonly path: string;
  /** Documents the recording run starts from. */
  readonly seed: AnyDoc[];
  /** The call, on whatever collection it is given (the recorder, then the stub). */
  readonly call: (collection: Collection<AnyDoc>, client: MongoClient) => Promise<unknown>;
}

/** The recorder and the stub stand in for a collection of idempotency records. */
const records = (c: Collection<AnyDoc>) => c as unknown as Collection<IdempotencyRecord>;

const items5 = Array.from({ length: 5 }, (_, i) => ({ filter: { _id: `s${i}` }, amount: 1 }));

const CASES: readonly CpuCase[] = [
  {
    primitive: 'guardedDecrement',
    path: 'success',
    seed: [{ _id: 'p1', stock: 1e9 }],
    call: (c) => guardedDecrement(c, { filter: { _id: 'p1' }, field: 'stock', amount: 1 }),
  },
  {
    primitive: 'guardedDecrement',
    path: 'insufficient',
    seed: [{ _id: 'p1', stock: 0 }],
    call: (c) => guardedDecrement(c, { filter: { _id: 'p1' }, field: 'stock', amount: 1 }),
  },
  {
    primitive: 'guardedDecrement',
    path: 'opId',
    seed: [{ _id: 'p1', stock: 1e9 }],
    call: (c) =>
      guardedDecrement(c, { filter: { _id: 'p1' }, field: 'stock', amount: 1, opId: 'op-1' }),
  },
  {
    primitive: 'guardedDecrementAll',
    path: 'success k=5',
    seed: items5.map((i) => ({ _id: i.filter._id, stock: 1e9 })),
    call: (c, client) => guardedDecrementAll(c, { client, field: 'stock', items: items5 }),
  },
  {
    primitive: 'incrementOrPushArrayItem',
    path: 'incremented',
    seed: [{ _id: 'c1', courses: [{ courseId: 'a', quantity: 1 }] }],
    call: (c) =>
      incrementOrPushArrayItem(c, {
        filter: { _id: 'c1' },
        array: 'courses',
        match: { courseId: 'a' },
      }),
  },
  {
    primitive: 'claimOnce',
    path: 'claimed',
    seed: [{ _id: 'o1', status: 'pending' }],
    call: (c) =>
      claimOnce(c, { filter: { _id: 'o1' }, field: 'status', from: 'pending', to: 'paid' }),
  },
  {
    primitive: 'addToSetWithCapacity',
    path: 'added',
    seed: [{ _id: 'e1', capacity: 100, sold: 0, members: [] }],
    call: (c) =>
      addToSetWithCapacity(c, {
        filter: { _id: 'e1' },
        array: 'members',
        member: 'u1',
        counter: 'sold',
        capacity: 'capacity',
      }),
  },
  {
    primitive: 'removeFromSetWithCapacity',
    path: 'removed',
    seed: [{ _id: 'e1', capacity: 100, sold: 1, members: ['u1'] }],
    call: (c) =>
      removeFromSetWithCapacity(c, {
        filter: { _id: 'e1' },
        array: 'members',
        member: 'u1',
        counter: 'sold',
      }),
  },
  {
    primitive: 'applyProgress',
    path: 'applied',
    seed: [{ _id: 's1', xp: 90, level: 0, badges: [], submissions: 0 }],
    call: (c) =>
      applyProgress(c, {
        filter: { _id: 's1' },
        inc: { xp: 20, submissions: 1 },
        level: { field: 'level', counter: 'xp', thresholds: [100, 500, 1400] },
        badges: {
          field: 'badges',
          rules: [{ badge: 'first', counter: 'submissions', atLeast: 1 }],
        },
      }),
  },
  {
    primitive: 'updateWithVersion',
    path: 'updated',
    seed: [{ _id: 's1', xp: 0, version: 1 }],
    call: (c) =>
      updateWithVersion(c, {
        filter: { _id: 's1' },
        update: (s) => ({ $set: { xp: (s.xp as number) + 1 } }),
      }),
  },
  {
    primitive: 'withIdempotencyKey',
    path: 'executed',
    seed: [],
    call: (c) => withIdempotencyKey(records(c), { key: 'k1', fn: async () => ({ status: 201 }) }),
  },
  {
    primitive: 'withIdempotencyKey',
    path: 'duplicate (replayed)',
    seed: [
      {
        _id: 'k1',
        state: 'completed',
        owner: 'x',
        value: { status: 201 },
        createdAt: new Date(),
        completedAt: new Date(),
        expiresAt: new Date(Date.now() + 864e5),
      },
    ],
    call: (c) => withIdempotencyKey(records(c), { key: 'k1', fn: async () => ({ status: 201 }) }),
  },
];

async function measurePair(
  ctx: BenchContext,
  library: () => Promise<unknown>,
  direct: () => Promise<unknown>,
): Promise<Pick<CpuRow, 'libraryUs' | 'directUs' | 'ratio' | 'ownUs'>> {
  const rounds = ctx.size(3, 9);
  const time = ctx.size(25, 150);
  const lib: number[] = [];
  const dir: number[] = [];
  // The first case would otherwise pay for the JIT compiling the library's shared code.
  for (let i = 0; i < ctx.size(100, 300); i += 1) {
    await library();
    await direct();
  }
  for (let round = 0; round < rounds; round += 1) {
    const bench = new Bench({ time, warmupTime: time / 3, iterations: 50, throws: true });
    const tasks: [string, () => Promise<unknown>][] = [
      ['library', library],
      ['direct', direct],
    ];
    if (round % 2 === 1) tasks.reverse();
    // `async: true`: tinybench otherwise calls the function once, unawaited, to find out, and
    // that stray call would take replies from the stub's script out of turn.
    for (const [name, fn] of tasks) bench.add(name, fn, { async: true });
    await bench.run();
    const median = (name: string): number => {
      const result = bench.getTask(name)?.result;
      if (result === undefined || result.state !== 'completed') {
        throw new Error(`cpu bench: task ${name} did not complete (${result?.state})`);
      }
      return result.latency.p50 * 1000;
    };
    lib.push(median('library'));
    dir.push(median('direct'));
  }
  return {
    libraryUs: spread(lib),
    directUs: spread(dir),
    ratio: spread(lib.map((l, i) => l / (dir[i] as number))),
    ownUs: spread(lib.map((l, i) => l - (dir[i] as number))),
  };
}

export async function cpuPerCall(ctx: BenchContext): Promise<CpuRow[]> {
  const rows: CpuRow[] = [];
  const collection = ctx.db.collection<AnyDoc>('cpu_record');
  for (const c of CASES) {
    ctx.progress(`cpu: ${c.primitive} ${c.path}`);
    await collection.deleteMany({});
    if (c.seed.length > 0) await collection.insertMany(c.seed.map((d) => ({ ...d })));
    const script = await record(collection, (recording) => c.call(recording, ctx.client));
    // One stub per task: each replays the script from its own position.
    const stub = new StubCollection(collection.collectionName, collection.dbName, script);
    const directStub = new StubCollection(collection.collectionName, collection.dbName, script);
    // guardedDecrementAll runs its own transaction on the client it is given: a stub client,
    // whose sessions only keep the in-transaction state.
    const client = new StubClient() as unknown as MongoClient;
    const m = await measurePair(
      ctx,
      () => c.call(stub.asCollection(), client),
      () => directStub.direct(),
    );
    if (!stub.aligned || !directStub.aligned)
      throw new Error(`cpu bench: ${c.primitive} ${c.path} left the stub script mid-way`);
    rows.push({ id: `${c.primitive}/${c.path}`, primitive: c.primitive, path: c.path, ...m });
  }

  // The transaction runner around a callback that sends nothing, against starting, committing
  // and ending a stub session by hand.
  ctx.progress('cpu: withRetryingTransaction');
  const client = new StubClient();
  const m = await measurePair(
    ctx,
    () => withRetryingTransaction(client as unknown as MongoClient, async () => 1),
    async () => {
      const session = client.startSession();
      session.startTransaction();
      await (async () => 1)();
      await session.commitTransaction();
      await session.endSession();
    },
  );
  rows.push({
    id: 'withRetryingTransaction/empty callback',
    primitive: 'withRetryingTransaction',
    path: 'empty callback',
    ...m,
  });
  return rows;
}
