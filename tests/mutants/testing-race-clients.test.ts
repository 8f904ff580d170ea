/**
 * Direct tests of src/testing/race-clients.ts, written to kill the mutants the kit's tests left
 * alive (npm run mutation; docs/reliability.md, "Mutation testing"), against the test backend.
 *
 * Pinned: every refusal by its option and full message (and that it opens nothing), the pool
 * size forced to 1 even when the caller asks for more, the caller's options passed through, a
 * `close()` that closes every client once and returns the same promise each time, and a failed
 * connect that closes every client and rethrows the driver's own error.
 */
import { MongoClient } from 'mongodb';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import { type RaceClientsOptions, raceClients } from '../../src/testing/race-clients.js';
import { rejectionOf } from '../support/async.js';
import { testUri } from '../support/mongo.js';

const call = raceClients as (...args: unknown[]) => Promise<unknown>;

afterEach(() => {
  vi.restoreAllMocks();
});

describe('raceClients: arguments', () => {
  it('refuses each bad argument with its option and full message, connecting nothing', async () => {
    const connect = vi.spyOn(MongoClient.prototype, 'connect');
    for (const [args, option, message] of [
      [['', 2], 'uri', 'raceClients: option "uri" must be a non-empty string, got the string ""'],
      [[testUri(), 0], 'count', 'raceClients: option "count" must be a positive integer, got 0'],
      [[testUri(), 2, null], 'options', 'raceClients: option "options" must be an object'],
      [[testUri(), 2, 'x'], 'options', 'raceClients: option "options" must be an object'],
    ] as const) {
      const error = await rejectionOf(call(...args));
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).primitive).toBe('raceClients');
      expect((error as InvalidArgumentError).option).toBe(option);
      expect((error as Error).message).toBe(message);
    }
    expect(connect).not.toHaveBeenCalled();
  });
});

describe('raceClients: clients', () => {
  it('opens exactly count clients (one is enough), pool of 1 even when asked for more, options passed on', async () => {
    const options = { appName: 'kit-direct', maxPoolSize: 7 } as RaceClientsOptions;
    const { clients, close } = await raceClients(testUri(), 1, options);
    try {
      expect(clients).toHaveLength(1);
      expect(clients[0]).toBeInstanceOf(MongoClient);
      expect(clients[0]?.options.maxPoolSize).toBe(1);
      expect(clients[0]?.options.appName).toBe('kit-direct');
    } finally {
      await close();
    }
  });

  it('close() closes every client once and returns the same promise on every call', async () => {
    const closeSpy = vi.spyOn(MongoClient.prototype, 'close');
    const { clients, close } = await raceClients(testUri(), 3);
    expect(clients).toHaveLength(3);
    const first = close();
    const second = close();
    expect(first).toBeInstanceOf(Promise);
    expect(second).toBe(first);
    await expect(first).resolves.toBeUndefined();
    expect(closeSpy).toHaveBeenCalledTimes(3);
    expect(new Set(closeSpy.mock.contexts)).toEqual(new Set(clients));
  });

  it('when the clients cannot connect, closes every one and rethrows the driver error', async () => {
    const closeSpy = vi.spyOn(MongoClient.prototype, 'close');
    const error = await rejectionOf(
      raceClients('mongodb://127.0.0.1:1/?directConnection=true', 2, {
        serverSelectionTimeoutMS: 200,
      }),
    );
    expect(error).not.toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).name).toBe('MongoServerSelectionError');
    expect(closeSpy).toHaveBeenCalledTimes(2);
  });
});
