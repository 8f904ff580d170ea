/**
 * Race-test helpers. Concurrent operations really interleave at the server only when they use
 * different connections: one MongoClient opens its pool lazily (`maxConnecting` 2) and queues
 * operations, so race tests use many single-connection clients. A barrier makes interleavings
 * deterministic where a test needs the worst case (every read before any write).
 */
import type { MongoClient } from 'mongodb';
import { afterAll, beforeAll } from 'vitest';
import { newClient } from './mongo.js';

/** A barrier for `parties` callers: each `arrive()` resolves once all of them have arrived. */
export function barrier(parties: number): () => Promise<void> {
  let arrived = 0;
  let release: () => void = () => {};
  const open = new Promise<void>((resolve) => {
    release = resolve;
  });
  return async () => {
    arrived += 1;
    if (arrived === parties) release();
    await open;
  };
}

/** `count` connected single-connection clients for this file, closed after it. */
export function useRaceClients(count: number): { readonly all: readonly MongoClient[] } {
  const clients: MongoClient[] = [];
  beforeAll(async () => {
    for (let i = 0; i < count; i++) clients.push(newClient({ maxPoolSize: 1 }));
    await Promise.all(clients.map((client) => client.connect()));
  });
  afterAll(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
  });
  return { all: clients };
}
