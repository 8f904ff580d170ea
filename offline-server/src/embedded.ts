/**
 * Starts a MongoDB for local use (tests, the demo, benchmarks): a mongodb-memory-server
 * single-node replica set (a real mongod) when a binary can be had, else this offline server.
 */
import { startOfflineServer } from './server.js';

export type EmbeddedKind = 'memory-server' | 'offline';

export interface EmbeddedMongo {
  readonly kind: EmbeddedKind;
  readonly uri: string;
  readonly description: string;
  stop(): Promise<void>;
}

/**
 * A real mongod through mongodb-memory-server, with `enableTestCommands=1` so fail points work.
 * mongodb-memory-server prints its own failure to the console; that output is captured and
 * returned in the error instead, so callers decide what to show.
 */
export async function startMemoryServer(): Promise<EmbeddedMongo> {
  const { MongoMemoryReplSet } = await import('mongodb-memory-server');
  const captured: string[] = [];
  const original = { warn: console.warn, error: console.error };
  console.warn = (...args: unknown[]) => void captured.push(args.map(String).join(' '));
  console.error = console.warn;
  try {
    const replSet = await MongoMemoryReplSet.create({
      replSet: {
        count: 1,
        storageEngine: 'wiredTiger',
        args: ['--setParameter', 'enableTestCommands=1'],
      },
    });
    return {
      kind: 'memory-server',
      uri: replSet.getUri(),
      description: 'mongodb-memory-server replica set (real mongod)',
      stop: async () => {
        await replSet.stop();
      },
    };
  } finally {
    console.warn = original.warn;
    console.error = original.error;
  }
}

export async function startOffline(): Promise<EmbeddedMongo> {
  const server = await startOfflineServer();
  return {
    kind: 'offline',
    uri: server.uri,
    description: 'offline MongoDB-compatible test server (offline-server/)',
    stop: () => server.close(),
  };
}

/** mongodb-memory-server when it starts, else the offline server; `notes` says why. */
export async function startEmbeddedMongo(notes: string[] = []): Promise<EmbeddedMongo> {
  try {
    return await startMemoryServer();
  } catch (error) {
    const message = error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error);
    notes.push(`mongodb-memory-server unavailable (${message.trim()}); using the offline server`);
  }
  return startOffline();
}

/**
 * A standalone server (no replica set), for tests of what happens without transactions: a
 * mongodb-memory-server standalone mongod when `preferReal` and one can start, else this server
 * in standalone mode.
 */
export async function startStandalone(preferReal: boolean): Promise<EmbeddedMongo> {
  if (preferReal) {
    const { MongoMemoryServer } = await import('mongodb-memory-server');
    const server = await MongoMemoryServer.create();
    return {
      kind: 'memory-server',
      uri: server.getUri(),
      description: 'mongodb-memory-server standalone mongod',
      stop: async () => {
        await server.stop();
      },
    };
  }
  const server = await startOfflineServer({ standalone: true });
  return {
    kind: 'offline',
    uri: server.uri,
    description: 'offline test server in standalone mode',
    stop: () => server.close(),
  };
}
