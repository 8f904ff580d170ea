/**
 * Which MongoDB the test suite runs against, chosen once per run:
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
import {
  type EmbeddedMongo,
  startEmbeddedMongo,
  startMemoryServer,
  startOffline,
} from '../../offline-server/src/embedded.js';

export type BackendKind = 'uri' | EmbeddedMongo['kind'];

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

function fromUri(): Backend {
  const uri = process.env.MONGODB_URI;
  if (uri === undefined || uri === '') {
    throw new Error('MONGO_ATOMICS_TEST_BACKEND=uri needs MONGODB_URI');
  }
  return { kind: 'uri', uri, description: 'MONGODB_URI', stop: async () => {} };
}

/** Picks and starts the backend; `notes` collects why earlier choices were passed over. */
export async function startBackend(notes: string[] = []): Promise<Backend> {
  switch (forcedKind()) {
    case 'uri':
      return fromUri();
    case 'memory-server':
      return startMemoryServer();
    case 'offline':
      return startOffline();
    case undefined:
      if (process.env.MONGODB_URI) return fromUri();
      return startEmbeddedMongo(notes);
  }
}
