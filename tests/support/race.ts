/**
 * Race-test helpers, from the testing kit users get (`mongo-atomics/testing`): the project's own
 * race tests use the same `barrier`, `race` and single-connection clients. Concurrent operations
 * really interleave at the server only when they use different connections: one MongoClient
 * opens its pool lazily (`maxConnecting` 2) and queues operations, so race tests use many
 * single-connection clients. A barrier makes interleavings deterministic where a test needs the
 * worst case (every read before any write).
 */
import type { MongoClient } from 'mongodb';
import { afterAll, beforeAll } from 'vitest';
import { type RaceClients, raceClients } from '../../src/testing/index.js';
import { testUri } from './mongo.js';

export { barrier, type RaceReport, race } from '../../src/testing/index.js';

/** `count` connected single-connection clients for this file, closed after it. */
export function useRaceClients(count: number): { readonly all: readonly MongoClient[] } {
  const clients: MongoClient[] = [];
  let opened: RaceClients | undefined;
  beforeAll(async () => {
    // Command monitoring on, as on every client of the suite (tests/support/mongo.ts).
    opened = await raceClients(testUri(), count, { monitorCommands: true });
    clients.push(...opened.clients);
  });
  afterAll(async () => {
    clients.length = 0;
    await opened?.close();
  });
  return { all: clients };
}
