/**
 * Starts an app on a free port of 127.0.0.1, for tests and the demo's races (the app factory is
 * separate from `main.ts`, which listens on a fixed port for people).
 */
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';

export interface Listening {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Stops listening and drops kept-alive connections. */
  close(): Promise<void>;
}

export async function listen(app: Express): Promise<Listening> {
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
