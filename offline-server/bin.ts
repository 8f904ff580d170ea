/**
 * Starts the offline server on its own and prints its connection string on stdout:
 *
 *   npm run offline-server -- [--port 27017] [--host 127.0.0.1] [--replSet rs0]
 *
 * Stops on SIGINT/SIGTERM.
 */
import { parseArgs } from 'node:util';
import { startOfflineServer } from './src/index.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    replSet: { type: 'string', default: 'rs0' },
  },
});

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`--port must be an integer from 0 to 65535; got ${values.port}`);
  process.exit(2);
}

const server = await startOfflineServer({
  port,
  host: values.host,
  replicaSetName: values.replSet,
});
console.log(server.uri);

const stop = async (): Promise<void> => {
  await server.close();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
