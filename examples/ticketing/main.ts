/**
 * `npm run example -- ticketing`: the ticketing service on http://localhost:3000 (PORT to
 * change it), on MONGODB_URI (`npm run example` provides an embedded MongoDB when unset).
 */
import { MongoClient } from 'mongodb';
import { runExample } from '../shared/serve.js';
import { createApp } from './app.js';
import { prepare } from './setup.js';

await runExample({
  name: 'ticketing',
  open: async (uri) => {
    const client = await new MongoClient(uri).connect();
    try {
      const db = client.db('ticketing_example');
      const sample = await prepare(db);
      return {
        app: createApp(db),
        firstCurl: (url) =>
          `curl -i -X POST ${url}/events/${sample.lastSeat.toHexString()}/registrations -H 'content-type: application/json' -d '{"userId":"alice"}'`,
        close: () => client.close(),
      };
    } catch (error) {
      await client.close();
      throw error;
    }
  },
});
