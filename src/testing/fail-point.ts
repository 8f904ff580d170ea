/**
 * The `failCommand` fail point: make the server fail, close or stall chosen commands, to test
 * what your code does when the network or the server misbehaves.
 *
 * `failCommand` is a mongod/mongos test command: it exists only when the server runs with
 * `--setParameter enableTestCommands=1` (mongodb-memory-server and the drivers' test
 * clusters do; Atlas and production deployments do not). It is server-wide: while it is on,
 * it fires for EVERY client of that server sending one of `failCommands`, including other test
 * files running in parallel. Target your client with `data.appName` (create the client with
 * the same `appName`), and turn it off afterwards ({@link withFailPoint} does).
 *
 * Reference: the drivers' specifications, `source/transactions/tests/README` ("failCommand"),
 * and MongoDB's `src/mongo/db/commands/fail_point_cmd.cpp`.
 */
import type { Document, MongoClient } from 'mongodb';
import { MongoAtomicsError } from '../errors.js';
import {
  callable,
  errorLine,
  fail,
  nonEmptyString,
  nonNegativeInteger,
  positiveInteger,
} from './validate.js';

/**
 * When the fail point fires: on every matching command (`'alwaysOn'`), on the next `times`
 * matching commands, or on every matching command after the first `skip`.
 */
export type FailPointMode =
  | 'alwaysOn'
  | {
      /** Fire on the next `times` matching commands (a positive integer), then turn off. */
      readonly times: number;
    }
  | {
      /** Let the first `skip` matching commands through (a non-negative integer), then fire on every one. */
      readonly skip: number;
    };

/** The `data` of a `failCommand` fail point: which commands, which client, what fault. */
export interface FailCommandData {
  /** Names of the commands to fail, e.g. `['findAndModify']`, `['commitTransaction']`. */
  readonly failCommands: readonly string[];
  /**
   * Only commands from a client with this `appName` (the `MongoClient` option) fire the fail
   * point. Strongly advised: the fail point is server-wide.
   */
  readonly appName?: string;
  /** Answer with this error code (e.g. 112 WriteConflict, 91 ShutdownInProgress). */
  readonly errorCode?: number;
  /** Error labels on that error reply (e.g. `['RetryableWriteError']`). */
  readonly errorLabels?: readonly string[];
  /** Close the connection instead of answering (a network error for the driver). */
  readonly closeConnection?: boolean;
  /** Hold the connection for `blockTimeMS` before carrying on. */
  readonly blockConnection?: boolean;
  /** How long `blockConnection` holds the connection, in milliseconds. */
  readonly blockTimeMS?: number;
  /** Apply the command, then answer with this write concern error. */
  readonly writeConcernError?: {
    /** The write concern error's code, e.g. 91 (ShutdownInProgress) or 64 (WriteConcernFailed). */
    readonly code: number;
    /** The write concern error's message. */
    readonly errmsg: string;
  };
  /** Further fields the server understands, passed through unchanged. */
  readonly [field: string]: unknown;
}

/** A fail point to turn on: {@link setFailPoint}, {@link withFailPoint}. */
export interface FailPointSpec {
  /** When it fires: `'alwaysOn'`, `{ times: n }` or `{ skip: n }`. */
  readonly mode: FailPointMode;
  /** Which commands (and client) it fires for, and what fault it causes. */
  readonly data: FailCommandData;
}

/** The server refused or failed `configureFailPoint`. The server's error is the `cause`. */
export class FailPointError extends MongoAtomicsError {
  /** Always `'FailPointError'`. */
  override readonly name = 'FailPointError';
}

/** mongod's reply to an unknown command: `{ ok: 0, code: 59, codeName: 'CommandNotFound' }`. */
const COMMAND_NOT_FOUND = 59;

function checkSpec(helper: string, spec: FailPointSpec): Document {
  if (typeof spec !== 'object' || spec === null) fail(helper, 'spec', 'must be an object');
  const { mode, data } = spec;
  let sentMode: Document | string;
  if (mode === 'alwaysOn') sentMode = mode;
  else if (typeof mode === 'object' && mode !== null && Object.hasOwn(mode, 'times')) {
    sentMode = {
      times: positiveInteger(helper, 'spec.mode.times', (mode as { times: unknown }).times),
    };
  } else if (typeof mode === 'object' && mode !== null && Object.hasOwn(mode, 'skip')) {
    sentMode = {
      skip: nonNegativeInteger(helper, 'spec.mode.skip', (mode as { skip: unknown }).skip),
    };
  } else {
    fail(
      helper,
      'spec.mode',
      `must be 'alwaysOn', { times: n } or { skip: n } (turn it off with clearFailPoint)`,
    );
  }
  if (typeof data !== 'object' || data === null) fail(helper, 'spec.data', 'must be an object');
  const commands: unknown = data.failCommands;
  if (!Array.isArray(commands) || commands.length === 0) {
    fail(helper, 'spec.data.failCommands', 'must be a non-empty array of command names');
  }
  commands.forEach((name, index) => {
    nonEmptyString(helper, `spec.data.failCommands.${index}`, name);
  });
  if (data.appName !== undefined) nonEmptyString(helper, 'spec.data.appName', data.appName);
  // A spread copies own properties only, as data properties: nothing inherited is sent, and an
  // own `__proto__` key stays a key.
  return { configureFailPoint: 'failCommand', mode: sentMode, data: { ...data } };
}

async function configure(helper: string, client: MongoClient, command: Document): Promise<void> {
  try {
    await client.db('admin').command(command);
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    const hint =
      code === COMMAND_NOT_FOUND
        ? ': the server has no configureFailPoint command. Fail points are test commands: start ' +
          'mongod with `--setParameter enableTestCommands=1` (mongodb-memory-server: ' +
          "`instance: { args: ['--setParameter', 'enableTestCommands=1'] }`)"
        : `: ${errorLine(error)}`;
    throw new FailPointError(`${helper}: configureFailPoint failed${hint}`, { cause: error });
  }
}

/**
 * Turns the `failCommand` fail point on (one `configureFailPoint` command on `admin`).
 * Prefer {@link withFailPoint}, which always turns it off again.
 *
 * @example
 * ```ts
 * const appName = uniqueAppName('checkout');
 * const client = new MongoClient(uri, { appName });
 * await setFailPoint(adminClient, {
 *   mode: { times: 1 },
 *   data: { failCommands: ['commitTransaction'], errorCode: 112, appName },
 * });
 * try {
 *   await placeOrder(client); // the first commit fails with WriteConflict, the retry commits
 * } finally {
 *   await clearFailPoint(adminClient);
 * }
 * ```
 *
 * @throws InvalidArgumentError naming the bad field of `spec`, before anything is sent.
 * @throws FailPointError when the server refuses (no `enableTestCommands=1`, not authorised).
 */
export async function setFailPoint(client: MongoClient, spec: FailPointSpec): Promise<void> {
  await configure('setFailPoint', client, checkSpec('setFailPoint', spec));
}

/**
 * Turns the `failCommand` fail point off (one `configureFailPoint` command on `admin`).
 *
 * @example
 * ```ts
 * afterEach(async () => {
 *   await clearFailPoint(adminClient); // a test that failed midway never leaves it on
 * });
 * ```
 *
 * @throws FailPointError when the server refuses.
 */
export async function clearFailPoint(client: MongoClient): Promise<void> {
  await configure('clearFailPoint', client, { configureFailPoint: 'failCommand', mode: 'off' });
}

/**
 * Turns the fail point on, runs `fn`, and turns it off in every case (`finally`), so a failing
 * test never leaves it on for the next one. Resolves to `fn`'s result.
 *
 * If `fn` throws, that error is rethrown once the fail point is off. If turning it off fails
 * too, a {@link FailPointError} says the fail point may still be on, with both errors in an
 * `AggregateError` as its `cause`.
 *
 * @example
 * ```ts
 * const appName = uniqueAppName();
 * const client = new MongoClient(uri, { appName });
 * await withFailPoint(adminClient, {
 *   mode: { times: 1 },
 *   data: { failCommands: ['findAndModify'], closeConnection: true, appName },
 * }, async () => {
 *   await expect(reserve(client)).rejects.toThrow();
 * });
 * ```
 *
 * @throws InvalidArgumentError naming the bad argument, before anything is sent.
 * @throws FailPointError when the server refuses (no `enableTestCommands=1`, not authorised).
 */
export async function withFailPoint<R>(
  client: MongoClient,
  spec: FailPointSpec,
  fn: () => R | Promise<R>,
): Promise<Awaited<R>> {
  const command = checkSpec('withFailPoint', spec);
  callable('withFailPoint', 'fn', fn);
  await configure('withFailPoint', client, command);
  let result: Awaited<R>;
  try {
    result = await fn();
  } catch (error) {
    try {
      await clearFailPoint(client);
    } catch (clearError) {
      throw new FailPointError(
        'withFailPoint: the callback failed, then turning the fail point off failed: it may still be on. Turn it off with clearFailPoint(client) (or restart the server) before running more tests',
        { cause: new AggregateError([error, clearError], 'callback error, then clear error') },
      );
    }
    throw error;
  }
  await clearFailPoint(client);
  return result;
}

let appNames = 0;

/**
 * A fresh `appName` (prefix, process id, counter, random suffix) for a client a fail point
 * should target alone.
 *
 * @example
 * ```ts
 * const appName = uniqueAppName('inventory'); // e.g. 'inventory-4242-1-k3j9x0'
 * const client = new MongoClient(uri, { appName });
 * // data: { failCommands: ['update'], errorCode: 91, appName } now fires for this client only
 * ```
 */
export function uniqueAppName(prefix = 'mongo-atomics-test'): string {
  appNames += 1;
  return `${prefix}-${process.pid}-${appNames}-${Math.random().toString(36).slice(2, 8)}`;
}
