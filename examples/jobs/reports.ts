/**
 * The jobs example's data and HTTP plumbing, shared by app.ts and naive.ts: the report a job
 * builds, the lease collection, request parsing, and the read route.
 */
import express, { type Express, type Router } from 'express';
import type { LeaseDocument } from 'mongo-atomics';
import type { Collection, Db } from 'mongodb';
import { z } from 'zod';
import { errorHandler, notFound, parse } from '../shared/http.js';

/** One report, rebuilt by a job run: `runs` counts the runs that completed. */
export interface ReportDoc {
  _id: string;
  status: 'idle' | 'running' | 'done';
  runs: number;
  startedBy?: string;
  finishedBy?: string;
  /** The newest lease token that wrote this report (written by fencedUpdate). */
  _fence?: number;
}

export const reportsOf = (db: Db): Collection<ReportDoc> => db.collection<ReportDoc>('reports');
export const leasesOf = (db: Db): Collection<LeaseDocument> =>
  db.collection<LeaseDocument>('job_leases');

/** How long a run's lease lasts unless renewed (withLease renews it every third of this). */
export const LEASE_TTL_MS = 10_000;

const params = z.object({ reportId: z.string().regex(/^[a-z0-9-]{1,64}$/) });
const body = z
  .object({
    worker: z.string().min(1).max(100),
    /** How long the run works (the test's stand-in for real work, or a pause), 0 to 2000 ms. */
    workMs: z.number().int().min(0).max(2_000).default(0),
  })
  .strict();

export const parseParams = (req: express.Request) => parse(params, req.params, 'params');
export const parseBody = (req: express.Request) => parse(body, req.body ?? {}, 'body');

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** GET /reports/:reportId, then the writes, then 404 and the error handler. */
export function assemble(db: Db, writes: Router): Express {
  const app = express();
  app.use(express.json());
  app.get('/reports/:reportId', async (req, res) => {
    const { reportId } = parseParams(req);
    const [report, lease] = await Promise.all([
      reportsOf(db).findOne({ _id: reportId }),
      leasesOf(db).findOne({ _id: `report:${reportId}` }),
    ]);
    if (report === null) {
      res.status(404).json({ error: 'reportNotFound', reportId });
      return;
    }
    res.json({ report, lease });
  });
  app.use(writes);
  app.use(notFound);
  app.use(errorHandler);
  return app;
}
