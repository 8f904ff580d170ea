/**
 * `npm run example -- gamification`: the gamification service on http://localhost:3000 (PORT
 * to change it), on MONGODB_URI (`npm run example` provides an embedded MongoDB when unset). No
 * transactions: a standalone server will do.
 */
import { MongoClient } from 'mongodb';
import { runExample } from '../shared/serve.js';
import { createApp } from './app.js';
import { prepare } from './setup.js';

await runExample({
  name: 'gamification',
  open: async (uri) => {
    const client = await new MongoClient(uri).connect();
    try {
      const db = client.db('gamification_example');
      const sample = await prepare(db);
      return {
        app: createApp(db),
        firstCurl: (url) =>
          `curl -i -X POST ${url}/students/${sample.studentId}/submissions -H 'content-type: application/json' -d '{"assignmentId":"${sample.assignmentId}"}'`,
        close: () => client.close(),
      };
    } catch (error) {
      await client.close();
      throw error;
    }
  },
});
