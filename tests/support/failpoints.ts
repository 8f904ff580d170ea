/**
 * Fail point helpers. The `failCommand` fail point is server-wide while vitest runs files (and
 * the driver6/driver7 projects) in parallel against one server, so every test that uses it:
 * - takes the cross-process `serverLock('failCommand')` while the fail point may be on,
 * - targets a dedicated client through `data.appName`,
 * - turns the fail point off afterwards.
 * `useFailPointClients` registers all of that as beforeEach/afterEach hooks.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Db, Document, MongoClient, MongoClientOptions } from 'mongodb';
import { afterEach, beforeEach, expect } from 'vitest';
import { uniqueAppName } from '../../src/testing/index.js';
import { sleep } from './async.js';
import { type CommandLog, newClient, recordCommands, testUri } from './mongo.js';

export type FailPointMode = 'alwaysOn' | 'off' | { times: number } | { skip: number };

/** Configures the server's `failCommand` fail point (sent to `admin`). */
export async function failCommand(db: Db, mode: FailPointMode, data?: Document): Promise<void> {
  const command: Document = { configureFailPoint: 'failCommand', mode };
  if (data !== undefined) command.data = data;
  const reply = await db.admin().command(command);
  expect(reply.ok).toBe(1);
}

/**
 * The next `commandName` sent by the client named `appName` is applied, then answered with a
 * write concern error 91 (ShutdownInProgress). The server labels it RetryableWriteError
 * (error_labels.cpp), so the driver resends the command with the same lsid and txnNumber, and
 * the server answers that retry from its record of the first execution (retryable writes).
 */
export async function retryNextWrite(db: Db, appName: string, commandName: string): Promise<void> {
  await failCommand(
    db,
    { times: 1 },
    {
      failCommands: [commandName],
      writeConcernError: { code: 91, errmsg: 'Replication is being shut down' },
      appName,
    },
  );
}

function lockPath(name: string): string {
  const server = createHash('sha256').update(testUri()).digest('hex').slice(0, 12);
  return join(tmpdir(), `mongo-atomics-conformance-${server}-${name}.lock`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A cross-process lock (an atomic `mkdir`) named per server. Returns the release function.
 * A lock left behind by a dead process is taken over.
 */
export async function serverLock(name: string, timeoutMs = 60_000): Promise<() => Promise<void>> {
  const path = lockPath(name);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await mkdir(path);
      await writeFile(join(path, 'owner'), String(process.pid));
      return async () => {
        await rm(path, { recursive: true, force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number(await readFile(join(path, 'owner'), 'utf8').catch(() => ''));
      if (owner > 0 && !alive(owner)) {
        await rm(path, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for lock ${path}`);
      await sleep(25);
    }
  }
}

/** Unique appName for a test's dedicated client, so fail points only hit that client. */
export { uniqueAppName } from '../../src/testing/index.js';

export interface FailPointClient {
  readonly client: MongoClient;
  readonly appName: string;
  readonly commands: CommandLog;
}

/**
 * Hooks for a file whose tests use fail points: the lock around each test, the fail point
 * turned off and the dedicated clients closed after it. `db()` is the database the admin
 * commands go through (any database of the test client).
 */
export function useFailPointClients(db: () => Db, prefix: string) {
  let release: (() => Promise<void>) | undefined;
  const opened: MongoClient[] = [];
  beforeEach(async () => {
    release = await serverLock('failCommand');
  });
  afterEach(async () => {
    try {
      await failCommand(db(), 'off');
    } finally {
      await Promise.all(opened.splice(0).map((client) => client.close()));
      await release?.();
      release = undefined;
    }
  });
  return {
    /** A connected client with its own appName, so a fail point can target it alone. */
    async appClient(options: MongoClientOptions = {}): Promise<FailPointClient> {
      const appName = uniqueAppName(prefix);
      const client = newClient({ appName, ...options });
      opened.push(client);
      await client.connect();
      return { client, appName, commands: recordCommands(client) };
    },
  };
}
