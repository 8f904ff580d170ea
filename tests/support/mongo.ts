/**
 * Per-file database helpers. Every test file gets its own database (random suffix) and drops it
 * afterwards, so files can run in parallel against one server.
 */
import { randomBytes } from 'node:crypto';
import { type CommandStartedEvent, type Db, MongoClient, type MongoClientOptions } from 'mongodb';
import { afterAll, beforeAll, inject } from 'vitest';
import { HOUSEKEEPING } from './housekeeping.js';

export function testUri(): string {
  return inject('mongoUri');
}

export function backendKind(): 'uri' | 'memory-server' | 'offline' {
  return inject('backendKind');
}

/** A new client to the test backend; the caller closes it. */
export function newClient(options: MongoClientOptions = {}): MongoClient {
  return new MongoClient(testUri(), { monitorCommands: true, ...options });
}

export interface CommandLog {
  /** Every command started on the client since the last `reset()`, housekeeping excluded. */
  readonly started: CommandStartedEvent[];
  /** Names of those commands, in order. */
  names(): string[];
  reset(): void;
}

export function recordCommands(client: MongoClient): CommandLog {
  const started: CommandStartedEvent[] = [];
  client.on('commandStarted', (event) => {
    if (!HOUSEKEEPING.has(event.commandName)) started.push(event);
  });
  return {
    started,
    names: () => started.map((event) => event.commandName),
    reset: () => {
      started.length = 0;
    },
  };
}

export interface TestDatabase {
  readonly client: MongoClient;
  readonly db: Db;
  readonly commands: CommandLog;
  /** A collection name unique to this call, for tests that want a fresh collection. */
  uniqueName(prefix: string): string;
}

/**
 * Registers beforeAll/afterAll hooks that open a client and a fresh database for this file.
 * Access the result's properties inside tests (they are set in beforeAll).
 */
export function useTestDatabase(label: string): TestDatabase {
  const suffix = randomBytes(4).toString('hex');
  const name = `ma_${label.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 30)}_${suffix}`;
  let client: MongoClient | undefined;
  let commands: CommandLog | undefined;
  let counter = 0;
  beforeAll(async () => {
    client = newClient();
    await client.connect();
    commands = recordCommands(client);
  });
  afterAll(async () => {
    if (client === undefined) return;
    await client.db(name).dropDatabase();
    await client.close();
  });
  const fail = (): never => {
    throw new Error('useTestDatabase: access properties inside tests, not at collection time');
  };
  return {
    get client() {
      return client ?? fail();
    },
    get db() {
      return (client ?? fail()).db(name);
    },
    get commands() {
      return commands ?? fail();
    },
    uniqueName(prefix: string) {
      counter += 1;
      return `${prefix}_${counter}`;
    },
  };
}

export const isOffline = (): boolean => backendKind() === 'offline';
