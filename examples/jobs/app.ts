/**
 * The jobs service: `POST /reports/:reportId/run` rebuilds a report, one worker at a time.
 *
 * The run holds the lease `report:<id>` (withLease): it is acquired in one command by the
 * server's clock, renewed in the background, and released when the run ends. A second
 * request while a run holds it gets 409 with the holder. Every write to the report goes
 * through fencedUpdate with the lease's token, so a run that was paused past its lease (and
 * whose lease another run has taken over) cannot overwrite its successor's report: its late
 * write is refused and it answers 409 superseded. naive.ts shows what goes wrong without.
 */
import { type Express, Router } from 'express';
import { fencedUpdate, withLease } from 'mongo-atomics';
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

export interface AppOptions {
  /** Awaited in the middle of each run's work (tests: to pause a run past its lease). */
  readonly duringWork?: (worker: string) => Promise<void>;
}

export function createApp(db: Db, options: AppOptions = {}): Express {
  const reports = reportsOf(db);
  const writes = Router();

  // Run: 200 completed | 409 running (someone holds the lease) | 409 superseded (the lease
  // was taken over while this run was paused: its writes were refused) | 404 reportNotFound.
  writes.post('/reports/:reportId/run', async (req, res) => {
    const { reportId } = parseParams(req);
    const { worker, workMs } = parseBody(req);
    const run = await withLease(
      leasesOf(db),
      `report:${reportId}`,
      async ({ signal, token }) => {
        const started = await fencedUpdate(reports, {
          filter: { _id: reportId },
          update: { $set: { status: 'running', startedBy: worker } },
          token,
        });
        if (started.outcome !== 'applied') return started.outcome;
        await sleep(workMs);
        await options.duringWork?.(worker);
        // The signal says the lease is gone (or may be): a well-behaved run stops here. A run
        // that cannot notice (it was frozen) is still stopped by the fence below.
        if (signal.aborted) return 'superseded';
        const finished = await fencedUpdate(reports, {
          filter: { _id: reportId },
          update: { $set: { status: 'done', finishedBy: worker }, $inc: { runs: 1 } },
          token,
        });
        return finished.outcome === 'fenced' ? 'superseded' : finished.outcome;
      },
      { holder: worker, ttlMs: LEASE_TTL_MS },
    );
    if (run.outcome === 'held') {
      throw new HttpError(409, {
        error: 'running',
        message: `${run.holder} is running this report`,
        holder: run.holder,
        expiresAt: run.expiresAt.toISOString(),
      });
    }
    switch (run.value) {
      case 'applied':
        res.json({ reportId, worker, token: run.token, outcome: 'completed' });
        return;
      case 'notFound':
        throw new HttpError(404, { error: 'reportNotFound', reportId });
      default:
        throw new HttpError(409, {
          error: 'superseded',
          message: 'the lease was taken over while this run was paused; its writes were refused',
          token: run.token,
        });
    }
  });

  return assemble(db, writes);
}
