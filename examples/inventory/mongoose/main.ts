/**
 * `npm run example -- inventory/mongoose`: the orders of the inventory service on Mongoose
 * (http://localhost:3000, PORT to change it; MONGODB_URI or an embedded server).
 */
import mongoose from 'mongoose';
import { runExample } from '../../shared/serve.js';
import { createMongooseApp } from './app.js';
import { prepareMongoose } from './setup.js';

await runExample({
  name: 'inventory/mongoose',
  open: async (uri) => {
    // A connection of its own, not mongoose.connect(): nothing global, closed with the app.
    // bufferCommands off: a query made while disconnected fails at once instead of queueing.
    const connection = await mongoose
      .createConnection(uri, {
        dbName: 'inventory_mongoose_example',
        autoIndex: false,
        autoCreate: false,
        bufferCommands: false,
      })
      .asPromise();
    let sample: Awaited<ReturnType<typeof prepareMongoose>>;
    try {
      sample = await prepareMongoose(connection);
    } catch (error) {
      // A failed start must not leave the connection holding the process open.
      await connection.close();
      throw error;
    }
    return {
      app: createMongooseApp(connection),
      firstCurl: (url) =>
        `curl -s -X POST ${url}/orders -H 'content-type: application/json' -d '{"items":[{"productId":"${sample.keyboard.toHexString()}","qty":1},{"productId":"${sample.mouse.toHexString()}","qty":1}]}'`,
      close: () => connection.close(),
    };
  },
});
