/**
 * Section 5: contention on a few hot documents.
 *
 * - Money transfers between 4 hot accounts at 1, 8 and 32 clients: withRetryingTransaction
 *   (defaults) against the driver's session.withTransaction. Commits/s ratio, attempts per
 *   commit of each (callback invocations / commits, the same count for both), p50/p99 latency
 *   of a transfer, and the invariant: the total balance never changes.
 * - A flash sale: 32 clients, one stock document, more requests than units, so it sells out
 *   and most requests fail: guardedDecrement against the raw guarded findOneAndUpdate and the
 *   naive read-then-update. Requests/s ratio and oversells (units sold beyond the stock). A
 *   fourth variant sells through a hold that is confirmed at once (holdQuantity, then
 *   confirmHold for the held ones): the price of a hold-then-pay checkout in the same burst.
 * - An idempotency duplicate burst: repeats of one completed key through withIdempotencyKey,
 *   against the one read a duplicate needs at least. Round trips per request and req/s ratio.
 */

import {
  confirmHold,
  guardedDecrement,
  holdQuantity,
  type IdempotencyRecord,
  withIdempotencyKey,
  withRetryingTransaction,
} from 'mongo-atomics';
import type { ClientSession } from 'mongodb';
import type { AnyDoc, BenchContext } from '../context.js';
import { concurrently, interleave, over, rate, ratio, type Sample } from '../interleave.js';
import { quantile, type Spread, spread, sum } from '../stats.js';

export interface TransferRow {
  readonly id: string;
  readonly clients: number;
  /** Per-round commits/s of withRetryingTransaction / of the driver's withTransaction. */
  readonly commitsRatio: Spread;
  readonly libraryAttemptsPerCommit: number;
  readonly driverAttemptsPerCommit: number;
  readonly libraryP50: number;
  readonly libraryP99: number;
  readonly driverP50: number;
  readonly driverP99: number;
  /** Per-round p99 of the library / p99 of the driver. */
  readonly p99Ratio: Spread;
  /** Transfers that threw (budget spent…), each. */
  readonly libraryFailed: number;
  readonly driverFailed: number;
  /** Rounds whose total balance changed, each (must be 0). */
  readonly libraryInvariantBroken: number;
  readonly driverInvariantBroken: number;
}

export interface FlashSaleRow {
  readonly id: string;
  readonly variant: string;
  readonly units: number;
  readonly requests: number;
  readonly clients: number;
  /** Per-round requests/s of this variant / of the raw guarded findOneAndUpdate. */
  readonly ratio: Spread;
  readonly requestsPerSec: Spread;
  /** Units sold beyond the stock, summed over the rounds. */
  readonly oversells: number;
  /** Rounds measured (oversells are summed over them). */
  readonly rounds: number;
}

export interface IdempotencyBurstRow {
  readonly id: string;
  readonly variant: string;
  readonly requests: number;
  readonly clients: number;
  readonly roundTripsPerRequest: number;
  /** Per-round req/s / req/s of the raw read. */
  readonly ratio: Spread;
  readonly requestsPerSec: Spread;
}

export const TRANSFER_CLIENTS = [1, 8, 32] as const;
const ACCOUNTS = 4;
const OPENING = 1_000_000;

const p = (latencies: readonly number[], q: number) =>
  quantile(
    [...latencies].sort((a, b) => a - b),
    q,
  );

export async function transfers(ctx: BenchContext): Promise<TransferRow[]> {
  const { db, client } = ctx;
  const accounts = db.collection<AnyDoc>('hot_accounts');
  const rows: TransferRow[] = [];
  const reset = async () => {
    await accounts.deleteMany({});
    await accounts.insertMany(
      Array.from({ length: ACCOUNTS }, (_, i) => ({ _id: `a${i}`, balance: OPENING })),
    );
  };
  const total = async () =>
    sum((await accounts.find({}).toArray()).map((d) => d.balance as number));
  // A deterministic sequence of (from, to) pairs, the same for both variants.
  const pair = (i: number): [string, string] => {
    const from = (i * 7 + 3) % ACCOUNTS;
    const to = (from + 1 + (i % (ACCOUNTS - 1))) % ACCOUNTS;
    return [`a${from}`, `a${to}`];
  };
  const move = async (session: ClientSession, i: number) => {
    const [from, to] = pair(i);
    await accounts.updateOne({ _id: from }, { $inc: { balance: -1 } }, { session });
    await accounts.updateOne({ _id: to }, { $inc: { balance: 1 } }, { session });
  };

  for (const clients of TRANSFER_CLIENTS) {
    ctx.progress(`contention: transfers × ${clients}`);
    const ops = ctx.size(clients === 1 ? 10 : 24, clients === 1 ? 100 : 150);
    const variant = (name: string, one: (i: number, calls: { n: number }) => Promise<unknown>) => ({
      name,
      prepare: reset,
      run: async () => {
        const calls = { n: 0 };
        let failed = 0;
        const latencies = await concurrently(clients, ops, (i) =>
          one(i, calls).catch(() => {
            failed += 1;
          }),
        );
        const broken = (await total()) === ACCOUNTS * OPENING ? 0 : 1;
        return { ops: ops - failed, latencies, extras: { attempts: calls.n, failed, broken } };
      },
    });
    const [lib, drv] = await interleave(
      [
        variant('withRetryingTransaction', (i, calls) =>
          withRetryingTransaction(client, async (session) => {
            calls.n += 1;
            await move(session, i);
          }),
        ),
        variant('driver withTransaction', async (i, calls) => {
          const session = client.startSession();
          try {
            await session.withTransaction(async () => {
              calls.n += 1;
              await move(session, i);
            });
          } finally {
            await session.endSession();
          }
        }),
      ],
      { rounds: ctx.size(2, 9), warmupRounds: 1 },
    );
    const l = lib ?? [];
    const d = drv ?? [];
    const extra = (samples: readonly Sample[], key: string) =>
      sum(samples.map((s) => s.extras?.[key] ?? 0));
    const commits = (samples: readonly Sample[]) => sum(samples.map((s) => s.ops));
    const all = (samples: readonly Sample[]) => samples.flatMap((s) => s.latencies ?? []);
    rows.push({
      id: `transfers/${clients}`,
      clients,
      commitsRatio: ratio(d, l, rate),
      libraryAttemptsPerCommit: extra(l, 'attempts') / commits(l),
      driverAttemptsPerCommit: extra(d, 'attempts') / commits(d),
      libraryP50: p(all(l), 0.5),
      libraryP99: p(all(l), 0.99),
      driverP50: p(all(d), 0.5),
      driverP99: p(all(d), 0.99),
      p99Ratio: spread(
        l.map((s, i) => p(s.latencies ?? [], 0.99) / p(d[i]?.latencies ?? [], 0.99)),
      ),
      libraryFailed: extra(l, 'failed'),
      driverFailed: extra(d, 'failed'),
      libraryInvariantBroken: extra(l, 'broken'),
      driverInvariantBroken: extra(d, 'broken'),
    });
  }
  return rows;
}

export async function flashSale(ctx: BenchContext): Promise<FlashSaleRow[]> {
  const stock = ctx.db.collection<AnyDoc>('flash_stock');
  const units = ctx.size(30, 300);
  const requests = ctx.size(300, 3000);
  const clients = 32;
  const id = 'sku';
  const variant = (name: string, buy: () => Promise<boolean>) => ({
    name,
    prepare: async () => {
      await stock.deleteMany({});
      await stock.insertOne({ _id: id, stock: units });
    },
    run: async () => {
      let sold = 0;
      await concurrently(clients, requests, async () => {
        if (await buy()) sold += 1;
      });
      const left = ((await stock.findOne({ _id: id }))?.stock as number) ?? 0;
      // Sold beyond the stock: more successes than units, or a stock below zero.
      const oversold = Math.max(sold - units, -left, 0);
      return { ops: requests, extras: { oversold } };
    },
  });
  ctx.progress('contention: flash sale');
  // Eleven rounds of 3 000 requests: the requests/s of one round swing with the shared
  // machine; the median of eleven per-round ratios holds still where five (of 2 000) did not.
  const rounds = ctx.size(2, 11);
  let holdIds = 0;
  const [lib, raw, naive, held] = await interleave(
    [
      variant('guardedDecrement', async () => {
        const r = await guardedDecrement(stock, { filter: { _id: id }, field: 'stock', amount: 1 });
        return r.outcome === 'decremented';
      }),
      variant('raw guarded findOneAndUpdate', async () => {
        const r = await stock.findOneAndUpdate(
          { _id: id, stock: { $gte: 1 } },
          { $inc: { stock: -1 } },
        );
        return r !== null;
      }),
      variant('naive read-then-update', async () => {
        const current = await stock.findOne({ _id: id });
        if (current === null || (current.stock as number) < 1) return false;
        await stock.updateOne({ _id: id }, { $inc: { stock: -1 } });
        return true;
      }),
      variant('holdQuantity + confirmHold', async () => {
        holdIds += 1;
        const holdId = `h${holdIds}`;
        const hold = await holdQuantity(stock, {
          filter: { _id: id },
          field: 'stock',
          amount: 1,
          holdId,
          ttlMs: 60_000,
        });
        if (hold.outcome !== 'held') return false;
        const done = await confirmHold(stock, { filter: { _id: id }, field: 'stock', holdId });
        return done.outcome === 'confirmed';
      }),
    ],
    { rounds, warmupRounds: 1 },
  );
  const base = raw ?? [];
  const row = (name: string, samples: readonly Sample[]): FlashSaleRow => ({
    id: `flash/${name}`,
    variant: name,
    units,
    requests,
    clients,
    ratio: ratio(base, samples, rate),
    requestsPerSec: over(samples, rate),
    oversells: sum(samples.map((s) => s.extras?.oversold ?? 0)),
    rounds: samples.length,
  });
  return [
    row('guardedDecrement', lib ?? []),
    row('raw guarded findOneAndUpdate', base),
    row('naive read-then-update', naive ?? []),
    row('holdQuantity + confirmHold', held ?? []),
  ];
}

export async function idempotencyBurst(ctx: BenchContext): Promise<IdempotencyBurstRow[]> {
  const keys = ctx.db.collection<AnyDoc>('burst_keys');
  const records = ctx.db.collection<IdempotencyRecord>('burst_keys');
  const requests = ctx.size(60, 1000);
  const clients = 16;
  ctx.progress('contention: idempotency duplicate burst');
  await keys.deleteMany({});
  const first = await withIdempotencyKey(records, {
    key: 'burst',
    fn: async () => ({ status: 201 }),
  });
  if (first.outcome !== 'executed')
    throw new Error(`idempotency burst: first call ${first.outcome}`);
  const variant = (name: string, op: () => Promise<unknown>) => ({
    name,
    run: async () => {
      ctx.commands.reset();
      await concurrently(clients, requests, op);
      return { ops: requests, extras: { commands: ctx.commands.count() } };
    },
  });
  const [lib, raw] = await interleave(
    [
      variant('withIdempotencyKey duplicate', async () => {
        const r = await withIdempotencyKey(records, {
          key: 'burst',
          fn: async () => ({ status: 201 }),
        });
        if (r.outcome !== 'replayed') throw new Error(`idempotency burst: got ${r.outcome}`);
      }),
      variant('raw findOne of the record', () => keys.findOne({ _id: 'burst' })),
    ],
    { rounds: ctx.size(2, 5), warmupRounds: 1 },
  );
  const base = raw ?? [];
  const row = (name: string, samples: readonly Sample[]): IdempotencyBurstRow => ({
    id: `idempotency/${name}`,
    variant: name,
    requests,
    clients,
    roundTripsPerRequest:
      sum(samples.map((s) => s.extras?.commands ?? 0)) / sum(samples.map((s) => s.ops)),
    ratio: ratio(base, samples, rate),
    requestsPerSec: over(samples, rate),
  });
  return [row('withIdempotencyKey duplicate', lib ?? []), row('raw findOne of the record', base)];
}
