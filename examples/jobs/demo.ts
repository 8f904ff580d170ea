/**
 * The jobs scenario: 20 workers start the same report at the same moment, once against the
 * naive lock and once against the real lease. Invariant: one run builds the report.
 */
import { barrier, race } from 'mongo-atomics/testing';
import type { Db } from 'mongodb';
import type { DemoScenario } from '../demo/scenario.js';
import { listen } from '../shared/listen.js';
import { createApp } from './app.js';
import { createNaiveApp } from './naive.js';
import { reportsOf } from './reports.js';

const REQUESTS = 20;

async function freshReport(db: Db): Promise<string> {
  const id = `storm-${Math.random().toString(36).slice(2, 10)}`;
  await reportsOf(db).insertOne({ _id: id, status: 'idle', runs: 0 });
  return id;
}

export const scenario: DemoScenario = {
  title: `Jobs: ${REQUESTS} workers start one report`,
  seed: 'issue 13',
  requests: REQUESTS,
  invariant: 'one run completes; runs = 1',
  async run(db, kind, onDone) {
    const id = await freshReport(db);
    // The naive app waits, after its lock read, until every request has read it; the real
    // one's winning run keeps working until every other request has been answered. Either way
    // all the requests overlap, on every run.
    let answered = 0;
    let othersAnswered!: () => void;
    const othersDone = new Promise<void>((resolve) => {
      othersAnswered = resolve;
    });
    const atMost = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
    const app =
      kind === 'naive'
        ? createNaiveApp(db, { afterRead: barrier(REQUESTS) })
        : createApp(db, { duringWork: () => Promise.race([othersDone, atMost(5_000)]) });
    const server = await listen(app);
    try {
      const report = await race(REQUESTS, async (index) => {
        try {
          const response = await fetch(`${server.url}/reports/${id}/run`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ worker: `w${index}`, workMs: 20 }),
          });
          if (response.status === 200) return 'completed';
          answered += 1;
          if (answered === REQUESTS - 1) othersAnswered();
          return String(response.status);
        } finally {
          onDone();
        }
      });
      const doc = await reportsOf(db).findOne({ _id: id });
      const completed = report.count('completed');
      return {
        succeeded: completed,
        finalState: `runs=${doc?.runs}, completed responses=${completed}`,
        held: doc?.runs === 1 && completed === 1,
      };
    } finally {
      await server.close();
    }
  },
};
