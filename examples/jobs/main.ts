/**
 * `npm run example -- jobs`: the jobs service on http://localhost:3000 (PORT to change it), on
 * MONGODB_URI (`npm run example` provides an embedded MongoDB when unset).
 */
import { MongoClient } from 'mongodb';
import { runExample } from '../shared/serve.js';
import { createApp } from './app.js';
import { prepare } from './setup.js';

await runExample({
  name: 'jobs',
  open: async (uri) => {
    const client = await new MongoClient(uri).connect();
    try {
      const db = client.db('jobs_example');
      const sample = await prepare(db);
      return {
        app: createApp(db),
        firstCurl: (url) =>
          `curl -i -X POST ${url}/reports/${sample.daily}/run -H 'content-type: application/json' -d '{"worker":"alice"}'`,
        close: () => client.close(),
      };
    } catch (error) {
      await client.close();
      throw error;
    }
  },
});
