/**
 * Runs an example as a service: picks the MongoDB (see `mongo.ts`), lets the example connect,
 * prepare its database and build its app, listens, prints the URL and a first `curl`, and shuts
 * down cleanly on Ctrl-C (SIGINT) or SIGTERM.
 */
import type { Server } from 'node:http';
import type { Express } from 'express';
import { startExampleMongo } from './mongo.js';

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
  const notes: string[] = [];
  const mongo = await startExampleMongo(notes);
  for (const note of notes) console.log(`note: ${note}`);
  let opened: OpenedExample;
  try {
    opened = await example.open(mongo.uri);
  } catch (error) {
    await mongo.stop();
    throw error;
  }
  const port = Number(process.env.PORT ?? 3000);
  const server: Server = opened.app.listen(port);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const address = server.address();
  const url = `http://localhost:${typeof address === 'object' && address !== null ? address.port : port}`;
  console.log(`${example.name} example listening on ${url}`);
  console.log(`MongoDB: ${mongo.description}`);
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
    await mongo.stop();
    console.log('stopped');
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
}
