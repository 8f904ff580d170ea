/**
 * Which MongoDB the test suite runs against, chosen once per run (see DEVELOPERS rules):
 *
 * 1. `MONGODB_URI`, when set: any real deployment (a replica set is needed for transactions;
 *    fail points need `enableTestCommands=1`).
 * 2. A mongodb-memory-server single-node replica set with `enableTestCommands=1` (a real
 *    mongod), when a binary can be had (downloaded, cached, or `MONGOMS_SYSTEM_BINARY`).
 * 3. The offline MongoDB-wire-compatible server in `offline-server/`.
 *
 * `MONGO_ATOMICS_TEST_BACKEND=uri|memory-server|offline` forces one; a forced backend that
 * cannot start fails the run instead of falling back.
 */
import { startOfflineServer } from '../../offline-server/src/index.js';

export type BackendKind = 'uri' | 'memory-server' | 'offline';

export interface Backend {
  readonly kind: BackendKind;
  readonly uri: string;
  readonly description: string;
  stop(): Promise<void>;
}

const KINDS: readonly BackendKind[] = ['uri', 'memory-server', 'offline'];

function forcedKind(): BackendKind | undefined {
  const raw = process.env.MONGO_ATOMICS_TEST_BACKEND;
  if (raw === undefined || raw === '') return undefined;
  if (!(KINDS as readonly string[]).includes(raw)) {
    throw new Error(`MONGO_ATOMICS_TEST_BACKEND must be one of ${KINDS.join(', ')}; got "${raw}"`);
  }
  return raw as BackendKind;
}

async function fromUri(): Promise<Backend> {
  const uri = process.env.MONGODB_URI;
  if (uri === undefined || uri === '') throw new Error('MONGODB_URI is not set');
  return { kind: 'uri', uri, description: 'MONGODB_URI', stop: async () => {} };
}

async function fromMemoryServer(): Promise<Backend> {
  const { MongoMemoryReplSet } = await import('mongodb-memory-server');
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
}

async function fromOfflineServer(): Promise<Backend> {
  const server = await startOfflineServer();
  return {
    kind: 'offline',
    uri: server.uri,
    description: 'offline MongoDB-compatible test server (offline-server/)',
    stop: () => server.close(),
  };
}

const starters: Record<BackendKind, () => Promise<Backend>> = {
  uri: fromUri,
  'memory-server': fromMemoryServer,
  offline: fromOfflineServer,
};

/** Picks and starts the backend; `notes` collects why earlier choices were passed over. */
export async function startBackend(notes: string[] = []): Promise<Backend> {
  const forced = forcedKind();
  if (forced !== undefined) return starters[forced]();
  if (process.env.MONGODB_URI) return fromUri();
  try {
    return await fromMemoryServer();
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    notes.push(`mongodb-memory-server unavailable: ${message}`);
  }
  return fromOfflineServer();
}
