/**
 * The demo's gamification scenario (seed 001): one pomodoro session finished 50 times at once
 * with the same operation id (double clicks, a client's retries, a second device), sent over
 * HTTP to the naive app and to the real one. The naive app checks "processed ids" before its
 * `$inc`, and every request checks before any records (a barrier between its read and its
 * write, as in the test, so the break shows on every run): the session is awarded 50 times.
 * The real app awards it once and answers the other 49 with the same body, marked a repeat.
 */
import { barrier, race } from 'mongo-atomics/testing';
import type { DemoScenario } from '../demo/scenario.js';
import { listen } from '../shared/listen.js';
import { createApp } from './app.js';
import { createNaiveApp } from './naive.js';
import { prepare } from './setup.js';
import {
  checkPomodoroStorm,
  finishOne,
  POMODORO_STORM,
  type Replied,
  setupPomodoroStorm,
} from './storm.js';

export const scenario: DemoScenario = {
  title: `Gamification: one pomodoro finished ${POMODORO_STORM.requests}× (same opId)`,
  seed: '001',
  requests: POMODORO_STORM.requests,
  invariant: 'awarded once: xp = 25, 1 session; one 201, the rest 200 repeats with the same body',
  async run(db, kind, onDone) {
    await prepare(db);
    const state = await setupPomodoroStorm(db);
    const gate = barrier(POMODORO_STORM.requests);
    const app = kind === 'naive' ? createNaiveApp(db, { afterRead: () => gate() }) : createApp(db);
    const server = await listen(app);
    try {
      const report = await race(POMODORO_STORM.requests, async () => {
        try {
          return await finishOne(server.url, state);
        } finally {
          onDone();
        }
      });
      const replies: Replied[] = [...report.values];
      const { violations, finalState } = await checkPomodoroStorm(
        db,
        state,
        replies,
        report.errors.length,
      );
      return {
        succeeded: replies.filter((r) => r.status === 201).length,
        finalState,
        held: violations.length === 0,
      };
    } finally {
      await server.close();
    }
  },
};
