/**
 * `npm run example -- inventory`: the inventory service on http://localhost:3000 (PORT to
 * change it), on MONGODB_URI or an embedded server. PAYMENT_SECRET sets the callback secret.
 */
import { MongoClient } from 'mongodb';
import { runExample } from '../shared/serve.js';
import { createApp } from './app.js';
import { prepare } from './setup.js';

const paymentSecret = process.env.PAYMENT_SECRET ?? 'dev-secret-change-me-0123456789';

await runExample({
  name: 'inventory',
  open: async (uri) => {
    const client = await new MongoClient(uri).connect();
    try {
      const db = client.db('inventory_example');
      const sample = await prepare(db);
      return {
        app: createApp(db, { paymentSecret }),
        firstCurl: (url) =>
          `curl -s -X POST ${url}/orders -H 'content-type: application/json' -H 'Idempotency-Key: first-order' -d '{"items":[{"productId":"${sample.keyboard.toHexString()}","qty":1},{"productId":"${sample.mouse.toHexString()}","qty":1}]}'`,
        close: () => client.close(),
      };
    } catch (error) {
      // A failed start must not leave the client's sockets holding the process open.
      await client.close();
      throw error;
    }
  },
});
