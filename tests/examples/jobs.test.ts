/**
 * The jobs example (examples/jobs, issue 13) over HTTP: a report rebuilt by one worker at a
 * time under a lease. Concurrent starts and a run paused past its lease, against the naive
 * lock (which must break) and the real app (which must hold).
 */

import type { Express } from 'express';
import { barrier } from 'mongo-atomics/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../../examples/jobs/app.js';
import { createNaiveApp } from '../../examples/jobs/naive.js';
import { leasesOf, reportsOf } from '../../examples/jobs/reports.js';
import { prepare, SAMPLE } from '../../examples/jobs/setup.js';
import { useTestDatabase } from '../support/mongo.js';
import { call, type Listening, listen, writesDuring } from './support.js';

const t = useTestDatabase('ex_jobs');
const opened: Listening[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((server) => server.close()));
});

async function serve(app: Express): Promise<string> {
  const server = await listen(app);
  opened.push(server);
  return server.url;
}

async function newReport(): Promise<string> {
  const id = `r-${Math.random().toString(36).slice(2, 10)}`;
  await reportsOf(t.db).insertOne({ _id: id, status: 'idle', runs: 0 });
  return id;
}

const run = (url: string, id: string, worker: string, workMs = 0) =>
  call(url, 'POST', `/reports/${id}/run`, { body: { worker, workMs } });

describe('the jobs service', () => {
  it('startup creates the sample report and keeps its runs when run again; a run completes, releases its lease and is visible', async () => {
    await prepare(t.db);
    const url = await serve(createApp(t.db));
    const first = await run(url, SAMPLE.daily, 'alice');
    expect(first.status).toBe(200);
    expect(first.body).toEqual({
      reportId: SAMPLE.daily,
      worker: 'alice',
      token: 1,
      outcome: 'completed',
    });
    await prepare(t.db);
    const read = await call(url, 'GET', `/reports/${SAMPLE.daily}`);
    expect(read.body.report).toMatchObject({
      status: 'done',
      runs: 1,
      finishedBy: 'alice',
      _fence: 1,
    });
    expect(read.body.lease).toMatchObject({ holder: null, token: 1 });
    expect((await run(url, SAMPLE.daily, 'bob')).body).toMatchObject({ token: 2 });
  });

  it('an unknown report is 404 reportNotFound; bad input is 400 naming the field and writes nothing', async () => {
    const url = await serve(createApp(t.db));
    const missing = await run(url, 'no-such-report', 'alice');
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ error: 'reportNotFound' });
    const id = await newReport();
    const writes = await writesDuring(t.commands, async () => {
      const bad = await call(url, 'POST', `/reports/${id}/run`, {
        body: { worker: '', workMs: 5 },
      });
      expect(bad.status).toBe(400);
      expect(bad.body).toMatchObject({ error: 'invalidRequest', field: 'worker' });
      const extra = await call(url, 'POST', `/reports/${id}/run`, {
        body: { worker: 'a', $where: '1' },
      });
      expect(extra.body).toMatchObject({ field: '$where' });
    });
    expect(writes).toEqual([]);
  });

  const STORM = 12;

  it(`naive lock: ${STORM} workers starting one report at once all run it (every lock read before any lock write)`, async () => {
    const url = await serve(createNaiveApp(t.db, { afterRead: barrier(STORM) }));
    const id = await newReport();
    const replies = await Promise.all(
      Array.from({ length: STORM }, (_, i) => run(url, id, `w${i}`, 10)),
    );
    const completed = replies.filter((reply) => reply.status === 200).length;
    expect(completed).toBeGreaterThan(1);
    expect((await reportsOf(t.db).findOne({ _id: id }))?.runs).toBeGreaterThan(1);
  });

  it(`lease: of ${STORM} workers starting one report at once exactly one runs it; the others get 409 running with its name`, async () => {
    // The winner keeps working until every other request has been answered, so all of them
    // really overlap its run (a run that ended would rightly let the next one start).
    let answered = 0;
    let allAnswered!: () => void;
    const othersDone = new Promise<void>((resolve) => {
      allAnswered = resolve;
    });
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, 10_000));
    const url = await serve(
      createApp(t.db, { duringWork: () => Promise.race([othersDone, timeout]) }),
    );
    const id = await newReport();
    const replies = await Promise.all(
      Array.from({ length: STORM }, async (_, i) => {
        const reply = await run(url, id, `w${i}`);
        if (reply.status !== 200) {
          answered += 1;
          if (answered === STORM - 1) allAnswered();
        }
        return reply;
      }),
    );
    const winners = replies.filter((reply) => reply.status === 200);
    expect(winners).toHaveLength(1);
    const winner = winners[0]?.body.worker as string;
    for (const reply of replies.filter((r) => r.status !== 200)) {
      expect(reply.status).toBe(409);
      expect(reply.body).toMatchObject({ error: 'running', holder: winner });
    }
    expect(await reportsOf(t.db).findOne({ _id: id })).toMatchObject({
      runs: 1,
      finishedBy: winner,
    });
  });

  /**
   * Worker a pauses mid-run; meanwhile its lease ends (forced here, as time would end it while
   * a process is frozen) and worker b runs the report to completion. Then a wakes up.
   */
  async function pausedHolder(kind: 'naive' | 'safe') {
    const id = await newReport();
    let url = '';
    const duringWork = async (worker: string) => {
      if (worker !== 'a') return;
      await leasesOf(t.db).updateOne({ _id: `report:${id}` }, [{ $set: { expiresAt: '$$NOW' } }]);
      const b = await run(url, id, 'b');
      expect(b.status).toBe(200);
    };
    url = await serve(
      kind === 'naive' ? createNaiveApp(t.db, { duringWork }) : createApp(t.db, { duringWork }),
    );
    const a = await run(url, id, 'a');
    return { a, report: await reportsOf(t.db).findOne({ _id: id }) };
  }

  it('naive lock: a run paused past its lock overwrites the report of the run that took over', async () => {
    const { a, report } = await pausedHolder('naive');
    expect(a.status).toBe(200);
    expect(report).toMatchObject({ finishedBy: 'a', runs: 2 });
  });

  it('lease + fencedUpdate: the paused run’s late write is refused (409 superseded), the successor’s report stays', async () => {
    const { a, report } = await pausedHolder('safe');
    expect(a.status).toBe(409);
    expect(a.body).toMatchObject({ error: 'superseded', token: 1 });
    expect(report).toMatchObject({ status: 'done', finishedBy: 'b', runs: 1, _fence: 2 });
  });
});

describe('the demo scenario (examples/jobs/demo.ts)', () => {
  it('the naive lock breaks the invariant, the lease holds it with one completed run', async () => {
    const { scenario } = await import('../../examples/jobs/demo.js');
    const naive = await scenario.run(t.db, 'naive', () => {});
    const safe = await scenario.run(t.db, 'safe', () => {});
    expect(naive.held).toBe(false);
    expect(safe).toMatchObject({ held: true, succeeded: 1 });
  });
});
