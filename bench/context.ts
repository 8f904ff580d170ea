/**
 * What every case gets: the client (command monitoring on), a database of its own, the command
 * counter, and the size knobs of `--quick` versus the full run.
 */
import type { CommandStartedEvent, Db, MongoClient } from 'mongodb';
import { HOUSEKEEPING } from '../tests/support/housekeeping.js';

/** Counts the commands a client starts (its `commandStarted` events), housekeeping excluded. */
export interface CommandCounter {
  /** Commands started since the last reset, by name, in order. */
  names(): string[];
  count(): number;
  reset(): void;
}

export function countCommands(client: MongoClient): CommandCounter {
  const names: string[] = [];
  client.on('commandStarted', (event: CommandStartedEvent) => {
    if (!HOUSEKEEPING.has(event.commandName)) names.push(event.commandName);
  });
  return {
    names: () => [...names],
    count: () => names.length,
    reset: () => {
      names.length = 0;
    },
  };
}

export interface BenchContext {
  readonly quick: boolean;
  /** A client with `monitorCommands: true` and a pool large enough for 32 workers. */
  readonly client: MongoClient;
  readonly db: Db;
  readonly commands: CommandCounter;
  /** `quick` when `--quick`, else `full`: round counts, operations per round. */
  size(quick: number, full: number): number;
  progress(message: string): void;
}

/**
 * The schema of the bench's collections: string ids, any other field (the primitives then
 * accept any path, as with Mongoose's `Model.collection`).
 */
export interface AnyDoc {
  _id: string;
  // biome-ignore lint/suspicious/noExplicitAny: an untyped schema, as Collection<Document>'s
  [field: string]: any;
}
