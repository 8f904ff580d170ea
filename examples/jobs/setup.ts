/**
 * Startup: the sample report. Safe to run again: an existing report keeps its runs. The lease
 * collection needs no index (one document per lease name, selected by `_id`).
 */
import type { Db } from 'mongodb';
import { reportsOf } from './reports.js';

export const SAMPLE = { daily: 'daily-sales' } as const;

export async function prepare(db: Db): Promise<typeof SAMPLE> {
  await reportsOf(db).updateOne(
    { _id: SAMPLE.daily },
    { $setOnInsert: { status: 'idle', runs: 0 } },
    { upsert: true },
  );
  return SAMPLE;
}
