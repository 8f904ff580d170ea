/**
 * The examples' shared error handler (examples/shared/http.ts), on errors no example test can
 * provoke on demand: a transaction runner that ran out of retries.
 */
import express from 'express';
import { type GiveUpReason, RetryBudgetExhaustedError } from 'mongo-atomics';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { errorHandler } from '../../examples/shared/http.js';
import { call, type Listening, listen } from './support.js';

let server: Listening;

beforeAll(async () => {
  const app = express();
  app.get('/gave-up/:reason', (req) => {
    throw new RetryBudgetExhaustedError('gave up', {
      reason: req.params.reason as GiveUpReason,
      attempts: 100,
      elapsedMs: 1234,
      cause: new Error('WriteConflict'),
    });
  });
  app.use(errorHandler);
  server = await listen(app);
});
afterAll(async () => {
  await server?.close();
});

describe('errorHandler and an exhausted retry budget', () => {
  it.each(['maxAttempts', 'timeout'])(
    'reason %s: nothing was committed, so 503 busy with Retry-After (not a logged 500)',
    async (reason) => {
      const logged = vi.spyOn(console, 'error').mockImplementation(() => {});
      try {
        const reply = await call(server.url, 'GET', `/gave-up/${reason}`);
        expect(reply.status).toBe(503);
        expect(reply.body).toMatchObject({ error: 'busy', retryAfterSeconds: 1 });
        expect(reply.headers.get('retry-after')).toBe('1');
        expect(logged).not.toHaveBeenCalled();
      } finally {
        logged.mockRestore();
      }
    },
  );

  it.each(['commitOutcomeUnknown', 'abortedBeforeCommit'])(
    'reason %s (the work may be committed / a bug in the callback): a logged 500, no "try again"',
    async (reason) => {
      const logged = vi.spyOn(console, 'error').mockImplementation(() => {});
      try {
        const reply = await call(server.url, 'GET', `/gave-up/${reason}`);
        expect(reply.status).toBe(500);
        expect(reply.body).toEqual({ error: 'internal', message: 'internal server error' });
        expect(reply.headers.get('retry-after')).toBeNull();
        expect(logged).toHaveBeenCalledTimes(1);
      } finally {
        logged.mockRestore();
      }
    },
  );
});
