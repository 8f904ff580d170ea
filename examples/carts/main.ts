/**
 * `npm run example -- carts`: the carts service on the embedded MongoDB (or `MONGODB_URI`),
 * on `PORT` (3000 by default).
 */
import { MongoClient } from 'mongodb';
import { runExample } from '../shared/serve.js';
import { createApp } from './app.js';
import { prepare } from './setup.js';

await runExample({
  name: 'carts',
  open: async (uri) => {
    const client = await new MongoClient(uri).connect();
    try {
      const db = client.db(process.env.CARTS_DB ?? 'carts_example');
      const sample = await prepare(db);
      return {
        app: createApp(db),
        firstCurl: (url) =>
          `curl -s -X POST ${url}/users/${sample.userId}/cart/lines -H 'content-type: application/json' -d '{"productId":"${sample.productId}","size":"M","color":"black"}'`,
        close: () => client.close(),
      };
    } catch (error) {
      await client.close();
      throw error;
    }
  },
});
