/**
 * The MongoDB the examples and the demo run on, chosen the way the test suite chooses: the
 * deployment at `MONGODB_URI` when it is set, else a real mongod from mongodb-memory-server
 * (downloaded on first use), else the repository's offline MongoDB-compatible test server.
 *
 * Repository plumbing, not part of an example: in your service the URI comes from your config.
 */
import { startEmbeddedMongo } from '../../offline-server/src/embedded.js';

export interface ExampleMongo {
  readonly uri: string;
  /** Which server this is, for the startup banner. */
  readonly description: string;
  stop(): Promise<void>;
}

/** Starts (or points at) the MongoDB to use; `notes` says why earlier choices were passed over. */
export async function startExampleMongo(notes: string[] = []): Promise<ExampleMongo> {
  const uri = process.env.MONGODB_URI;
  if (uri !== undefined && uri !== '') {
    return { uri, description: 'MONGODB_URI', stop: async () => {} };
  }
  return startEmbeddedMongo(notes);
}
