/**
 * `raceClients`: one connection per racing call, so concurrent operations interleave at the
 * server rather than queue in one client's pool.
 */
import { MongoClient, type MongoClientOptions } from 'mongodb';
import { fail, nonEmptyString, positiveInteger } from './validate.js';

/** Options of {@link raceClients}: any `MongoClientOptions` but the pool size, which is 1. */
export type RaceClientsOptions = Omit<MongoClientOptions, 'maxPoolSize' | 'minPoolSize'>;

/** The connected clients of {@link raceClients} and the way to close them. */
export interface RaceClients {
  /** `count` connected clients, each with a pool of one connection. */
  readonly clients: readonly MongoClient[];
  /** Closes every client; safe to call more than once. */
  close(): Promise<void>;
}

/**
 * Opens `count` clients to `uri`, each with `maxPoolSize: 1`, and connects them all.
 *
 * Why not one client with a large pool: a `MongoClient` opens connections lazily, at most
 * `maxConnecting` (2 by default) at a time, and hands them to queued operations in order, so
 * N operations started together through one client often run over a couple of sockets, one
 * after the other, and a read-then-write race never shows. With one client per call, each
 * call has its own socket and the server serves them concurrently.
 *
 * Call `close()` when done (e.g. in `afterAll`). If any client fails to connect, the ones
 * opened are closed and the first error is thrown.
 *
 * @param uri - The connection string.
 * @param count - How many clients; a positive integer (one per concurrent call of a race).
 * @param options - Passed to every `MongoClient`; `maxPoolSize` is fixed to 1 (`minPoolSize` left at its default, 0).
 * @example
 * ```ts
 * const { clients, close } = await raceClients(uri, 50);
 * try {
 *   const report = await race(50, (i) =>
 *     guardedDecrement(clients[i]!.db('shop').collection<Product>('products'), {
 *       filter: { _id: 'p1' },
 *       field: 'stock',
 *       amount: 1,
 *     }),
 *   );
 *   console.log(report.tally); // { decremented: 20, insufficient: 30 } with a stock of 20
 * } finally {
 *   await close();
 * }
 * ```
 *
 * @throws InvalidArgumentError (option `uri`, `count` or `options`) on a bad argument.
 */
export async function raceClients(
  uri: string,
  count: number,
  options: RaceClientsOptions = {},
): Promise<RaceClients> {
  nonEmptyString('raceClients', 'uri', uri);
  positiveInteger('raceClients', 'count', count);
  if (typeof options !== 'object' || options === null) {
    fail('raceClients', 'options', 'must be an object');
  }
  const clients = Array.from(
    { length: count },
    () => new MongoClient(uri, { ...options, maxPoolSize: 1 }),
  );
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= Promise.allSettled(clients.map((client) => client.close())).then(() => {});
    return closing;
  };
  const connected = await Promise.allSettled(clients.map((client) => client.connect()));
  const failure = connected.find((result) => result.status === 'rejected');
  if (failure !== undefined) {
    await close();
    throw failure.reason;
  }
  return { clients, close };
}
