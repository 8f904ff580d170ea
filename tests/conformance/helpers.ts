/**
 * Small helpers shared by the conformance suite (not a test file itself).
 *
 * Server-global state (the `failCommand` fail point, server parameters) is shared by every test
 * file running against the same server, and vitest runs files in parallel processes. The
 * `serverLock` below serialises the conformance files that touch such state, so that one file's
 * `configureFailPoint` never replaces another's mid-test.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Db, type Document, MongoError, MongoServerError, type ObjectId } from 'mongodb';
import { expect } from 'vitest';
import { testUri } from '../support/mongo.js';

/** A schema-less document whose _id may be of any BSON type (the driver's default is ObjectId). */
export interface Doc extends Document {
  _id?: number | string | ObjectId | Document;
}

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves to what `promise` rejected with; fails the test if it resolved. */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the operation to fail, but it succeeded');
}

/** Resolves to the MongoServerError that `promise` rejected with. */
export async function serverError(promise: Promise<unknown>): Promise<MongoServerError> {
  const error = await rejectionOf(promise);
  expect(error).toBeInstanceOf(MongoServerError);
  return error as MongoServerError;
}

/** Resolves to the MongoError (server, network or driver) that `promise` rejected with. */
export async function mongoError(promise: Promise<unknown>): Promise<MongoError> {
  const error = await rejectionOf(promise);
  expect(error).toBeInstanceOf(MongoError);
  return error as MongoError;
}

/** Tracks whether a promise has settled yet, without awaiting it. */
export function track<T>(promise: Promise<T>): { readonly settled: boolean; promise: Promise<T> } {
  const state = { settled: false, promise };
  promise.then(
    () => {
      state.settled = true;
    },
    () => {
      state.settled = true;
    },
  );
  return state;
}

/** A barrier for `parties` callers: each `arrive()` resolves once all of them have arrived. */
export function barrier(parties: number): () => Promise<void> {
  let arrived = 0;
  let release: () => void = () => {};
  const open = new Promise<void>((resolve) => {
    release = resolve;
  });
  return async () => {
    arrived += 1;
    if (arrived === parties) release();
    await open;
  };
}

export type FailPointMode = 'alwaysOn' | 'off' | { times: number } | { skip: number };

/** Configures the server's `failCommand` fail point (sent to `admin`). */
export async function failCommand(db: Db, mode: FailPointMode, data?: Document): Promise<void> {
  const command: Document = { configureFailPoint: 'failCommand', mode };
  if (data !== undefined) command.data = data;
  const reply = await db.admin().command(command);
  expect(reply.ok).toBe(1);
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
let appCounter = 0;
export function uniqueAppName(prefix: string): string {
  appCounter += 1;
  return `${prefix}-${process.pid}-${appCounter}-${Math.random().toString(36).slice(2, 8)}`;
}
