/**
 * Section 4: scaling curves, as the ratio of time per operation, primitive / alternative, per
 * interleaved round.
 *
 * - incrementOrPushArrayItem on an array of n elements (incrementing the LAST element, the
 *   worst case of any scan) against the naive two-step a user writes (updateOne with the
 *   positional `$`, then `$push` when nothing matched; the element exists, so one command).
 * - guardedDecrementAll of k items (its own transaction) against k guarded findOneAndUpdate in
 *   the driver's session.withTransaction.
 */

import { guardedDecrementAll, incrementOrPushArrayItem } from 'mongo-atomics';
import type { Document } from 'mongodb';
import type { AnyDoc, BenchContext } from '../context.js';
import { interleave, over, perOp, ratio } from '../interleave.js';
import type { Spread } from '../stats.js';

export interface ScalingRow {
  readonly id: string;
  readonly curve: 'incrementOrPushArrayItem' | 'guardedDecrementAll';
  /** Array size n, or item count k. */
  readonly size: number;
  /** Per-round time per op of the primitive / of the alternative. */
  readonly ratio: Spread;
  readonly libraryMsPerOp: Spread;
  readonly alternativeMsPerOp: Spread;
}

export const ARRAY_SIZES = [1, 100, 1000, 5000] as const;
export const DECREMENT_KS = [1, 5, 20, 50, 100] as const;

export async function scaling(ctx: BenchContext): Promise<ScalingRow[]> {
  const { db, client } = ctx;
  const rows: ScalingRow[] = [];
  const carts = db.collection<AnyDoc>('scale_carts');
  for (const n of ARRAY_SIZES) {
    ctx.progress(`scaling: incrementOrPushArrayItem n=${n}`);
    await carts.deleteMany({});
    const lines = Array.from({ length: n }, (_, j) => ({ courseId: `c${j}`, quantity: 1 }));
    await carts.insertMany([
      { _id: 'lib', courses: lines },
      { _id: 'naive', courses: lines },
    ]);
    const last = `c${n - 1}`;
    // Fewer operations on big arrays, so every size costs about the same wall time: a round
    // of each variant takes 0.1–0.4 s. (Rounds of 20 ms, as earlier, swung with every pause of
    // the shared machine: the per-round ratio at 1 000 elements spread over 0.98–1.61.)
    const ops = Math.max(
      ctx.size(2, 4),
      Math.round(ctx.size(10, 400) / Math.max(1, Math.log10(n))),
    );
    const [lib, naive] = await interleave(
      [
        {
          name: 'library',
          run: async () => {
            for (let i = 0; i < ops; i += 1) {
              const r = await incrementOrPushArrayItem(carts, {
                filter: { _id: 'lib' },
                array: 'courses',
                match: { courseId: last },
              });
              if (r.outcome !== 'incremented') throw new Error(`scaling: got ${r.outcome}`);
            }
            return { ops };
          },
        },
        {
          name: 'naive two-step',
          run: async () => {
            for (let i = 0; i < ops; i += 1) {
              const r = await carts.updateOne(
                { _id: 'naive', 'courses.courseId': last },
                { $inc: { 'courses.$.quantity': 1 } },
              );
              if (r.matchedCount === 0) {
                await carts.updateOne({ _id: 'naive' }, {
                  $push: { courses: { courseId: last, quantity: 1 } },
                } as Document);
              }
            }
            return { ops };
          },
        },
      ],
      { rounds: ctx.size(2, 9), warmupRounds: 1 },
    );
    rows.push({
      id: `incrementOrPushArrayItem/${n}`,
      curve: 'incrementOrPushArrayItem',
      size: n,
      ratio: ratio(naive ?? [], lib ?? [], perOp),
      libraryMsPerOp: over(lib ?? [], perOp),
      alternativeMsPerOp: over(naive ?? [], perOp),
    });
  }

  const stock = db.collection<AnyDoc>('scale_stock');
  for (const k of DECREMENT_KS) {
    ctx.progress(`scaling: guardedDecrementAll k=${k}`);
    await stock.deleteMany({});
    await stock.insertMany(Array.from({ length: k }, (_, i) => ({ _id: `s${i}`, stock: 1e9 })));
    const items = Array.from({ length: k }, (_, i) => ({ filter: { _id: `s${i}` }, amount: 1 }));
    const ops = Math.max(
      ctx.size(2, 4),
      Math.round(ctx.size(6, 60) / Math.max(1, Math.sqrt(k) / 2)),
    );
    const [lib, naive] = await interleave(
      [
        {
          name: 'library',
          run: async () => {
            for (let i = 0; i < ops; i += 1) {
              const r = await guardedDecrementAll(stock, { client, field: 'stock', items });
              if (r.outcome !== 'decremented') throw new Error(`scaling: got ${r.outcome}`);
            }
            return { ops };
          },
        },
        {
          name: 'k findOneAndUpdate in withTransaction',
          run: async () => {
            for (let i = 0; i < ops; i += 1) {
              const session = client.startSession();
              try {
                await session.withTransaction(async () => {
                  for (const item of items) {
                    const done = await stock.findOneAndUpdate(
                      { ...item.filter, stock: { $gte: item.amount } },
                      { $inc: { stock: -item.amount } },
                      { session },
                    );
                    if (done === null) throw new Error('scaling: short');
                  }
                });
              } finally {
                await session.endSession();
              }
            }
            return { ops };
          },
        },
      ],
      { rounds: ctx.size(2, 9), warmupRounds: 1 },
    );
    rows.push({
      id: `guardedDecrementAll/${k}`,
      curve: 'guardedDecrementAll',
      size: k,
      ratio: ratio(naive ?? [], lib ?? [], perOp),
      libraryMsPerOp: over(lib ?? [], perOp),
      alternativeMsPerOp: over(naive ?? [], perOp),
    });
  }
  return rows;
}
