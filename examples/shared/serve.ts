/**
 * Runs an example as a service: connects the example to `MONGODB_URI`, lets it prepare its
 * database and build its app, listens on `PORT` (3000 by default), prints the URL and a first
 * `curl`, and shuts down cleanly on Ctrl-C (SIGINT) or SIGTERM.
 *
 * From the repository root, `npm run example -- <name>` sets `MONGODB_URI` for you (an embedded
 * MongoDB when you have none); in your own project, `MONGODB_URI=mongodb://… npx tsx main.ts`.
 */
import type { Server } from 'node:http';
import type { Express } from 'express';

export interface OpenedExample {
  readonly app: Express;
  /** The first command to try, given the service's base URL. */
  firstCurl(baseUrl: string): string;
  /** Closes the example's own connections. */
  close(): Promise<void>;
}

export interface ExampleDefinition {
  readonly name: string;
  /** Connects to `uri`, creates indexes, seeds sample data and builds the app. */
  open(uri: string): Promise<OpenedExample>;
}

export async function runExample(example: ExampleDefinition): Promise<void> {
  const uri = process.env.MONGODB_URI;
  if (uri === undefined || uri === '') {
    console.error(
      `${example.name}: set MONGODB_URI (a replica set: the examples use transactions), or run it from the repository root with \`npm run example -- ${example.name}\`, which starts an embedded MongoDB`,
    );
    process.exitCode = 2;
    return;
  }
  const opened = await example.open(uri);
  const port = Number(process.env.PORT ?? 3000);
  const server: Server = opened.app.listen(port);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const address = server.address();
  const url = `http://localhost:${typeof address === 'object' && address !== null ? address.port : port}`;
  console.log(`${example.name} example listening on ${url}`);
  console.log(`try:\n  ${opened.firstCurl(url)}`);
  console.log('Ctrl-C stops it.');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: closing the server and the database connections`);
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await opened.close();
    console.log('stopped');
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
}
