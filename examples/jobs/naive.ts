// DO NOT COPY: the racy lock without fencing, kept to show (in the tests and the demo) what goes wrong. Use app.ts.
/**
 * The same route and responses as app.ts, with the lock most codebases write: read the lock
 * document, decide "free" with the client's clock, write the holder, then write the report
 * with plain updates.
 *
 * - Concurrent runs all read "free" before any writes it: several run the job at once
 *   (`runs` counts each of them);
 * - a run paused past its lock (GC, network) wakes up and overwrites the report of the run
 *   that took the lock over: nothing tells it that it lost the lock.
 *
 * `afterRead` is awaited between the lock read and the lock write (tests and the demo pass a
 * `barrier(n)`), so the race shows on every run.
 */
import { type Express, Router } from 'express';
import type { Db } from 'mongodb';
import { HttpError } from '../shared/http.js';
import {
  assemble,
  LEASE_TTL_MS,
  leasesOf,
  parseBody,
  parseParams,
  reportsOf,
  sleep,
} from './reports.js';

export interface NaiveOptions {
  /** Awaited between the lock read and the lock write (tests: a `barrier(n)`). */
  readonly afterRead?: () => Promise<void>;
  /** Awaited in the middle of each run's work (tests: to pause a run past its lock). */
  readonly duringWork?: (worker: string) => Promise<void>;
}

export function createNaiveApp(db: Db, options: NaiveOptions = {}): Express {
  const reports = reportsOf(db);
  const locks = leasesOf(db);
  const writes = Router();

  writes.post('/reports/:reportId/run', async (req, res) => {
    const { reportId } = parseParams(req);
    const { worker, workMs } = parseBody(req);
    const name = `report:${reportId}`;
    const lock = await locks.findOne({ _id: name });
    const now = Date.now();
    const busy = lock !== null && lock.holder !== null && (lock.expiresAt?.getTime() ?? 0) > now;
    await options.afterRead?.();
    if (busy) {
      throw new HttpError(409, {
        error: 'running',
        message: `${lock.holder} is running this report`,
        holder: lock.holder,
      });
    }
    await locks.updateOne(
      { _id: name },
      { $set: { holder: worker, expiresAt: new Date(now + LEASE_TTL_MS) } },
      { upsert: true },
    );
    try {
      const started = await reports.updateOne(
        { _id: reportId },
        { $set: { status: 'running', startedBy: worker } },
      );
      if (started.matchedCount === 0)
        throw new HttpError(404, { error: 'reportNotFound', reportId });
      await sleep(workMs);
      await options.duringWork?.(worker);
      await reports.updateOne(
        { _id: reportId },
        { $set: { status: 'done', finishedBy: worker }, $inc: { runs: 1 } },
      );
      res.json({ reportId, worker, outcome: 'completed' });
    } finally {
      await locks.updateOne(
        { _id: name, holder: worker },
        { $set: { holder: null, expiresAt: null } },
      );
    }
  });

  return assemble(db, writes);
}
